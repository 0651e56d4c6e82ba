//! The simulated network: the engine between client links and the servers, a virtual
//! clock, and an invariant checker run after every event.
//!
//! Topology. Each downstream link has an engine address (its giaddr and the address
//! proxied replies come from) and, optionally, a *bypass relay*: a plain relay agent on the
//! same link that reaches the servers without going through cdra (the paper's "some other
//! source", Appendix A). The engine host is also the router between the links and the
//! servers, so a client's unicast to a server address is forwarded by the kernel straight
//! to the server, never seen by the engine (as on a real host), while a unicast to an
//! engine address reaches the engine on the client's link.
//!
//! Delivery rules:
//! - client broadcast: to the engine (if reachable) on the link's ifindex, and to the
//!   link's bypass relay if it is on;
//! - client unicast: to the engine if addressed to an engine address; to the server if
//!   addressed to a server (when the direct path is up); else lost;
//! - server reply: to `giaddr` (the engine, or a bypass relay), else to `ciaddr` (the
//!   client configured with it, on the link of that subnet);
//! - engine output: `Server` to that server; `ClientLink` to the client on that link
//!   whose MAC matches (a broadcast reaches the client whose chaddr it carries: DHCP
//!   clients drop the rest); `ClientUnicast` to the client configured with that address on
//!   that link;
//! - probes: answered after `probe_answer_ms` if a client or squatter has the target
//!   configured on the probed link (ARP) or on the link of the target's subnet (ICMP);
//!   else nothing, and the engine's probe times out.
//!
//! Clocks: the network runs on the simulation's clock; the engine is handed its own, which
//! is the same unless [`Sim::step_engine_clock`] stepped it (a host clock set forward or
//! back). A step back widens invariant (b)'s tolerance by its size: the engine cannot tell.
//!
//! Invariants, checked after every event for every address the event touched (and over
//! everything every `full_check_every` events):
//! - (a) no two hosts hold the same address at the same time;
//! - (b) no client holds an address beyond the server's lease for it: the server owning
//!   the address has it bound to this client until at least the client's lease end minus
//!   `lease_tolerance_ms`.

use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use cdra_core::config::{Downstream, EngineConfig, Ipv4Net, Limits, Mode, PoolConfig, ProxyConfig, ServerSelection};
use cdra_core::mode::Unicasts;
use cdra_core::outbox::BROADCAST_MAC;
use cdra_core::{Destination, DropReason, EchoId, Engine, Ingress, Outbox, Timestamp, Verdict};
use cdra_wire::{Message, Op};

use crate::client::{AddrChange, ClientConfig, ClientState, ClientTx, IdStyle, ModelClient, TxClass, TxTo};
use crate::engine_api::{self, RecordView, Snapshot};
use crate::msg::{Kind, KindCounts, Summary};
use crate::rng::SimRng;
use crate::sched::{Millis, Scheduler};
use crate::server::{ModelServer, Pool, ServerConfig};
use crate::trace::{fmt_time, Trace, TraceEvent};

/// Seconds to milliseconds.
pub const fn secs(s: u64) -> Millis {
    s * 1000
}
/// Minutes to milliseconds.
pub const fn mins(m: u64) -> Millis {
    m * 60_000
}
/// Hours to milliseconds.
pub const fn hours(h: u64) -> Millis {
    h * 3_600_000
}
/// Days to milliseconds.
pub const fn days(d: u64) -> Millis {
    d * 86_400_000
}

/// A client-facing link.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Interface name.
    pub name: String,
    /// Interface index on the engine host.
    pub ifindex: u32,
    /// The engine's address and prefix on the link.
    pub relay: Ipv4Net,
    /// The engine's MAC on the link.
    pub mac: [u8; 6],
    /// Address of the bypass relay on this link (used while it is switched on).
    pub bypass: Ipv4Addr,
}

/// One-way delays.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// Client <-> engine or bypass relay.
    pub link_ms: Millis,
    /// Engine or bypass relay <-> server, and client <-> server direct.
    pub server_ms: Millis,
    /// From a probe to its answer.
    pub probe_answer_ms: Millis,
}

impl Default for Latency {
    fn default() -> Self {
        Latency { link_ms: 1, server_ms: 2, probe_answer_ms: 20 }
    }
}

/// Everything a simulation is made of.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Relay or proxy.
    pub mode: Mode,
    /// Proxy settings (proxy mode).
    pub proxy: ProxyConfig,
    /// Pool settings (pool mode).
    pub pool: PoolConfig,
    /// Rate limits and bounds (`[limits]`, every mode).
    pub limits: Limits,
    /// RFC 4388 leasequery (`[leasequery]`).
    pub leasequery: cdra_core::LeasequeryConfig,
    /// How the engine spreads requests over servers.
    pub server_selection: ServerSelection,
    /// Client links.
    pub links: Vec<LinkConfig>,
    /// Servers (disjoint ranges).
    pub servers: Vec<ServerConfig>,
    /// The engine's upstream interface.
    pub upstream_ifindex: u32,
    /// The engine's upstream address.
    pub upstream_addr: Ipv4Addr,
    /// Delays.
    pub latency: Latency,
    /// Events kept for violation reports.
    pub trace_len: usize,
    /// Check every held address every this many events (0: never; the touched addresses
    /// are checked after every event regardless).
    pub full_check_every: u64,
    /// Panic at the first violation (with the trace) instead of recording it.
    pub panic_on_violation: bool,
    /// Slack allowed between a client's lease end and the server's (message latency).
    pub lease_tolerance_ms: Millis,
    /// Virtual time at the start.
    pub start: Millis,
    /// Track, for proxy mode, which client transactions the proxy should answer alone
    /// (see [`Expectations`]).
    pub track_expectations: bool,
    /// Keep every event involving this client (by index) in an unbounded log
    /// ([`Sim::watch_log`]), to follow one client through a long run.
    pub watch: Option<usize>,
    /// Run the engine's timers at most this often, except at probe deadlines, which are
    /// always honoured. The engine sweeps its table every second; over a simulated week
    /// that dominates the run time. Only valid when the engine has no other precise
    /// deadlines: `offer_choice = First` and `client_lease = None` (checked).
    pub engine_timer_coarsening: Option<Millis>,
}

/// Address of the first server in the default topologies.
pub const SERVER1: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// Address of the second server.
pub const SERVER2: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 9);

impl SimConfig {
    /// Two links (10.77.1.0/24 on ifindex 2, 10.77.2.0/24 on ifindex 3; engine at .1,
    /// bypass relay at .254), one server at 10.77.0.1 leasing .100-.199 on both for an hour.
    pub fn small(seed: u64, mode: Mode) -> Self {
        let links: Vec<LinkConfig> = (0..2u8)
            .map(|i| LinkConfig {
                name: format!("ds{i}"),
                ifindex: 2 + u32::from(i),
                relay: Ipv4Net { addr: Ipv4Addr::new(10, 77, 1 + i, 1), prefix_len: 24 },
                mac: [0x02, 0xcd, 0x7a, 0, 0, 1 + i],
                bypass: Ipv4Addr::new(10, 77, 1 + i, 254),
            })
            .collect();
        let pools = links
            .iter()
            .map(|l| {
                let o = l.relay.addr.octets();
                Pool {
                    subnet: l.relay,
                    router: l.relay.addr,
                    first: Ipv4Addr::new(o[0], o[1], o[2], 100),
                    last: Ipv4Addr::new(o[0], o[1], o[2], 199),
                }
            })
            .collect();
        SimConfig {
            seed,
            mode,
            // Model clients listen on one socket: no need to hold answers to renewals (the
            // real-client reason for `renew_reply_delay`, tested in the core and end to end).
            proxy: ProxyConfig { seed, renew_reply_delay: std::time::Duration::ZERO, ..ProxyConfig::default() },
            pool: PoolConfig::default(),
            limits: Limits::default(),
            leasequery: cdra_core::LeasequeryConfig::default(),
            server_selection: ServerSelection::All,
            links,
            servers: vec![ServerConfig::new(SERVER1, pools)],
            upstream_ifindex: 10,
            upstream_addr: Ipv4Addr::new(10, 77, 0, 2),
            latency: Latency::default(),
            trace_len: 80,
            full_check_every: 1,
            panic_on_violation: true,
            lease_tolerance_ms: 1000,
            start: 1_000_000_000,
            track_expectations: false,
            engine_timer_coarsening: None,
            watch: None,
        }
    }

    /// Two /20 links (10.64.0.0/20 and 10.80.0.0/20) with 2048-address ranges, for
    /// thousands of clients.
    pub fn large(seed: u64, mode: Mode) -> Self {
        let mut c = Self::small(seed, mode);
        for (i, l) in c.links.iter_mut().enumerate() {
            let b = 64 + 16 * i as u8;
            l.relay = Ipv4Net { addr: Ipv4Addr::new(10, b, 0, 1), prefix_len: 20 };
            l.bypass = Ipv4Addr::new(10, b, 15, 254);
        }
        let pools = c
            .links
            .iter()
            .map(|l| {
                let o = l.relay.addr.octets();
                Pool {
                    subnet: l.relay,
                    router: l.relay.addr,
                    first: Ipv4Addr::new(o[0], o[1], 1, 0),
                    last: Ipv4Addr::new(o[0], o[1], 8, 255),
                }
            })
            .collect();
        c.servers = vec![ServerConfig::new(SERVER1, pools)];
        c.full_check_every = 0;
        c.trace_len = 60;
        c
    }

    /// Split every pool of the first server between it and a second server at
    /// 10.77.0.9 (first half, second half).
    pub fn with_second_server(mut self) -> Self {
        let mut s1 = self.servers[0].clone();
        let mut s2 = s1.clone();
        s2.addr = SERVER2;
        for (p1, p2) in s1.pools.iter_mut().zip(s2.pools.iter_mut()) {
            let (a, b) = (u32::from(p1.first), u32::from(p1.last));
            let mid = a + (b - a) / 2;
            p1.last = Ipv4Addr::from(mid);
            p2.first = Ipv4Addr::from(mid + 1);
        }
        self.servers = vec![s1, s2];
        self
    }

    /// The engine configuration this network implies.
    pub fn engine_config(&self) -> EngineConfig {
        let downstream = self.links.iter().map(|l| Downstream::up(&l.name, l.ifindex, l.relay, Some(l.mac))).collect();
        let mut c =
            EngineConfig::relay(self.servers.iter().map(|s| s.addr).collect(), downstream, vec![self.upstream_ifindex]);
        c.upstream_addresses = vec![self.upstream_addr];
        c.mode = self.mode;
        c.proxy = self.proxy.clone();
        c.pool = self.pool.clone();
        c.limits = self.limits.clone();
        c.leasequery = self.leasequery.clone();
        c.server_selection = self.server_selection;
        c
    }
}

/// Scripted or workload actions, run at a scheduled time.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Power a client on.
    PowerOn(usize),
    /// Power a client off, releasing its lease or not.
    PowerOff { client: usize, release: bool },
    /// Wipe a (powered-off) client's remembered lease.
    ForgetLease(usize),
    /// Plug a client into another link.
    Move { client: usize, link: usize },
    /// Renew before T1.
    RenewNow(usize),
    /// Decline the address.
    Decline(usize),
    /// Send a DHCPINFORM.
    Inform(usize),
    /// Stop a server (it receives nothing).
    StopServer(usize),
    /// Start it again.
    StartServer(usize),
    /// Cut the engine off the network, or reconnect it (its state is kept).
    EngineReachable(bool),
    /// Switch a link's bypass relay on or off.
    Bypass { link: usize, on: bool },
    /// Cut or restore the direct path between clients and servers (unicast renewals to a
    /// server, the server's unicast replies to clients).
    DirectPath(bool),
}

#[derive(Debug)]
enum Ev {
    EngineRx {
        ifindex: u32,
        src: SocketAddrV4,
        dst: Ipv4Addr,
        data: Vec<u8>,
    },
    /// A frame from a hostile host: on `ifindex`, with that Ethernet source.
    HostileRx {
        ifindex: u32,
        link_source: Option<[u8; 6]>,
        src: SocketAddrV4,
        dst: Ipv4Addr,
        data: Vec<u8>,
    },
    ServerRx {
        server: usize,
        src: Ipv4Addr,
        data: Vec<u8>,
    },
    LinkFrame {
        link: usize,
        mac: [u8; 6],
        data: Vec<u8>,
    },
    IpToClient {
        link: Option<usize>,
        dst: Ipv4Addr,
        data: Vec<u8>,
    },
    BypassRx {
        link: usize,
        data: Vec<u8>,
    },
    BypassReply {
        link: usize,
        data: Vec<u8>,
    },
    ProbeAnswer {
        ifindex: u32,
        target: Ipv4Addr,
        reply: ProbeReply,
    },
    EngineTimer,
    ClientTimer {
        client: usize,
        gen: u64,
    },
    Act(Action),
}

/// A host holding an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Holder {
    /// A model client.
    Client(usize),
    /// A statically configured host.
    Squatter(usize),
}

/// A host with a static address (no DHCP): it answers probes and counts for invariant (a).
#[derive(Debug, Clone)]
pub struct Squatter {
    /// Its link.
    pub link: usize,
    /// Its address.
    pub addr: Ipv4Addr,
    /// Its MAC.
    pub mac: [u8; 6],
    /// Is it up?
    pub up: bool,
}

/// What crossed the engine's edge, kept when the wire log is on ([`Sim::set_wire_log`]) for
/// whoever drives the simulation and judges the engine from outside (the engine fuzzer).
/// Times are the simulation's clock (the engine's may differ: [`Sim::step_engine_clock`]).
#[derive(Debug, Clone)]
pub enum WireEvent {
    /// A datagram handed to the engine.
    EngineIn {
        /// When.
        at: Millis,
        /// Ingress interface.
        ifindex: u32,
        /// The frame's Ethernet source, as the I/O layer handed it to the engine.
        link_source: Option<[u8; 6]>,
        /// IP source and port.
        src: SocketAddrV4,
        /// IP destination.
        dst: Ipv4Addr,
        /// The UDP payload.
        data: Vec<u8>,
    },
    /// A datagram the engine produced.
    EngineOut {
        /// When.
        at: Millis,
        /// Where it goes.
        dest: Destination,
        /// The UDP payload.
        data: Vec<u8>,
    },
    /// A probe the engine asked for.
    Probe {
        /// When.
        at: Millis,
        /// The link probed.
        ifindex: u32,
        /// The address probed.
        target: Ipv4Addr,
        /// The identifier and sequence number of its ICMP echo (an echo reply counts only
        /// if it carries them back).
        echo: EchoId,
    },
}

/// A probe answer a driver hands the engine ([`Sim::inject_probe_answer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeReply {
    /// An ARP packet from this hardware address claiming the address.
    Arp([u8; 6]),
    /// An ICMP echo reply from the address carrying this identifier and sequence number.
    Echo(EchoId),
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViolationKind {
    /// (a) Several hosts hold `addr`.
    DuplicateAddress {
        /// The address.
        addr: Ipv4Addr,
        /// Who holds it.
        holders: Vec<Holder>,
    },
    /// (b) `client` holds `addr` until `client_end` but the server's binding does not cover
    /// it: `server` is (bound to this client?, binding end), or `None` if the server has no
    /// binding for the address (or no server owns it).
    LeaseBeyondServer {
        /// The client.
        client: usize,
        /// The address.
        addr: Ipv4Addr,
        /// The client's lease end.
        client_end: Millis,
        /// The server's binding.
        server: Option<(bool, Millis)>,
    },
}

/// An invariant violation, with the events that led to it.
#[derive(Debug, Clone)]
pub struct Violation {
    /// When it was found.
    pub at: Millis,
    /// The simulation's start (times print relative to it).
    pub start: Millis,
    /// What.
    pub kind: ViolationKind,
    /// The last events, oldest first.
    pub trace: Vec<String>,
}

impl Violation {
    /// The address concerned.
    pub fn addr(&self) -> Ipv4Addr {
        match &self.kind {
            ViolationKind::DuplicateAddress { addr, .. } | ViolationKind::LeaseBeyondServer { addr, .. } => *addr,
        }
    }
    /// Does it involve client `c`?
    pub fn involves(&self, c: usize) -> bool {
        match &self.kind {
            ViolationKind::DuplicateAddress { holders, .. } => holders.contains(&Holder::Client(c)),
            ViolationKind::LeaseBeyondServer { client, .. } => *client == c,
        }
    }
    /// Is it a duplicate address (invariant a)?
    pub fn is_duplicate(&self) -> bool {
        matches!(self.kind, ViolationKind::DuplicateAddress { .. })
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            ViolationKind::DuplicateAddress { addr, holders } => {
                writeln!(f, "INVARIANT (a) violated: {addr} held by {holders:?}")?
            }
            ViolationKind::LeaseBeyondServer { client, addr, client_end, server } => {
                let srv = match server {
                    None => "no server binding".to_string(),
                    Some((same, end)) => format!(
                        "server binding {} until {}",
                        if *same { "to this client" } else { "to ANOTHER client" },
                        fmt_time(end.saturating_sub(self.start))
                    ),
                };
                writeln!(
                    f,
                    "INVARIANT (b) violated: client#{client} holds {addr} until {} but {srv}",
                    fmt_time(client_end.saturating_sub(self.start))
                )?
            }
        }
        writeln!(f, "found at {}; last {} events:", fmt_time(self.at.saturating_sub(self.start)), self.trace.len())?;
        for l in &self.trace {
            writeln!(f, "  {l}")?;
        }
        Ok(())
    }
}

/// Network-level counters.
#[derive(Debug, Clone, Default)]
pub struct SimStats {
    /// Events processed.
    pub events: u64,
    /// Datagrams the engine received from clients, by kind.
    pub engine_from_clients: KindCounts,
    /// Datagrams the engine received from servers, by kind.
    pub engine_from_servers: KindCounts,
    /// Datagrams the engine sent to servers, by kind.
    pub engine_to_servers: KindCounts,
    /// Server replies the engine passed to clients, by kind.
    pub forwarded_replies: KindCounts,
    /// Replies the engine made itself (no server reply behind them), by kind.
    pub local_answers: KindCounts,
    /// Probes the engine asked for.
    pub probes: u64,
    /// Probes answered.
    pub probes_answered: u64,
    /// Datagrams lost (engine unreachable, server stopped, no route, nobody there).
    pub lost: u64,
    /// Requests the bypass relays carried.
    pub bypass_relayed: u64,
}

/// One client transaction the proxy should handle alone (see [`Expectations`]).
#[derive(Debug, Clone)]
pub struct Expected {
    /// The client.
    pub client: usize,
    /// What it sent.
    pub class: TxClass,
    /// When.
    pub at: Millis,
    /// Was any server stopped when it was sent?
    pub during_outage: bool,
    /// Did a server see this xid?
    pub seen_by_server: bool,
    /// Did the client get its ACK?
    pub served: bool,
    /// Did the client power off or move before the answer could come?
    pub abandoned: bool,
}

/// Proxy-mode expectations (paper sections 2 and 5): a DISCOVER, reboot (INIT-REBOOT) or
/// renewal before the server lease's T1, from a client whose record the proxy
/// holds in state `bound`, for the address it asks for, on that address's subnet, with at
/// least two minutes of server lease left, must be answered by the proxy alone: no server
/// sees its xid, and the client gets an ACK (unless it powered off first). Only tracked
/// with `track_expectations`, while the engine is reachable.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    /// By xid.
    pub by_xid: HashMap<u32, Expected>,
}

impl Expectations {
    /// (eligible, seen by a server, served, abandoned) for a class, optionally only those
    /// sent during an outage.
    pub fn tally(&self, class: TxClass, outage_only: bool) -> (usize, usize, usize, usize) {
        let mut t = (0, 0, 0, 0);
        for e in self.by_xid.values().filter(|e| e.class == class && (!outage_only || e.during_outage)) {
            t.0 += 1;
            t.1 += usize::from(e.seen_by_server);
            t.2 += usize::from(e.served);
            t.3 += usize::from(e.abandoned && !e.served);
        }
        t
    }
    /// Eligible transactions a server saw, or that went unanswered though not abandoned.
    pub fn failures(&self) -> Vec<(u32, &Expected)> {
        let mut v: Vec<(u32, &Expected)> = self
            .by_xid
            .iter()
            .filter(|(_, e)| e.seen_by_server || (!e.served && !e.abandoned))
            .map(|(x, e)| (*x, e))
            .collect();
        v.sort_by_key(|(x, e)| (e.at, *x));
        v
    }
}

/// The simulation.
pub struct Sim {
    cfg: SimConfig,
    sched: Scheduler<Ev>,
    rng: SimRng,
    engine_cfg: EngineConfig,
    engine: Engine,
    engine_up: bool,
    engine_timer: Option<Millis>,
    outbox: Outbox,
    servers: Vec<ModelServer>,
    clients: Vec<ModelClient>,
    client_timer_gen: Vec<u64>,
    mac_index: HashMap<[u8; 6], usize>,
    squatters: Vec<Squatter>,
    bypass_on: Vec<bool>,
    direct_path: bool,
    holders: HashMap<Ipv4Addr, Vec<Holder>>,
    dirty: Vec<Ipv4Addr>,
    trace: Trace,
    violations: Vec<Violation>,
    reported: HashSet<String>,
    stats: SimStats,
    probes_by_target: HashMap<Ipv4Addr, u64>,
    /// The echo identifier of the latest probe of each address: a probe's second
    /// transmission carries the same one and is not a new probe.
    probe_echo_by_target: HashMap<Ipv4Addr, cdra_core::EchoId>,
    held_replies: HashMap<(u32, Kind, [u8; 6]), Millis>,
    last_reply: HashMap<(usize, [u8; 6]), Vec<u8>>,
    expectations: Expectations,
    since_full_check: u64,
    probe_deadlines: Vec<Millis>,
    last_engine_wake: Millis,
    watch_log: Trace,
    /// The engine's clock minus the simulation's ([`Sim::step_engine_clock`]).
    engine_clock_offset: i64,
    /// `Some` while the wire log is on.
    wire_log: Option<Vec<WireEvent>>,
    /// Calls into the engine so far (datagrams, probe answers, timers, restarts).
    engine_calls: u64,
}

impl Sim {
    /// A network per `cfg`, with no clients yet.
    pub fn new(cfg: SimConfig) -> Self {
        if cfg.engine_timer_coarsening.is_some() {
            assert!(
                cfg.proxy.offer_choice == cdra_core::OfferChoice::First && cfg.proxy.client_lease.is_none(),
                "engine_timer_coarsening needs offer_choice = First and client_lease = None"
            );
        }
        let mut rng = SimRng::new(cfg.seed);
        let engine_cfg = cfg.engine_config();
        let engine = Engine::new(engine_cfg.clone());
        let servers = cfg.servers.iter().cloned().map(ModelServer::new).collect();
        let sched = Scheduler::new(cfg.start);
        let trace = Trace::new(cfg.trace_len, cfg.start);
        let bypass_on = vec![false; cfg.links.len()];
        let _ = rng.next_u64();
        let mut sim = Sim {
            sched,
            rng,
            engine_cfg,
            engine,
            engine_up: true,
            engine_timer: None,
            outbox: Outbox::new(256),
            servers,
            clients: Vec::new(),
            client_timer_gen: Vec::new(),
            mac_index: HashMap::new(),
            squatters: Vec::new(),
            bypass_on,
            direct_path: true,
            holders: HashMap::new(),
            dirty: Vec::new(),
            trace,
            violations: Vec::new(),
            reported: HashSet::new(),
            stats: SimStats::default(),
            probes_by_target: HashMap::new(),
            probe_echo_by_target: HashMap::new(),
            held_replies: HashMap::new(),
            last_reply: HashMap::new(),
            expectations: Expectations::default(),
            since_full_check: 0,
            probe_deadlines: Vec::new(),
            last_engine_wake: 0,
            watch_log: Trace::new(if cfg.watch.is_some() { usize::MAX } else { 0 }, cfg.start),
            engine_clock_offset: 0,
            wire_log: None,
            engine_calls: 0,
            cfg,
        };
        // The engine may have work before any packet arrives (pool mode fills its pool).
        sim.reschedule_engine_timer();
        sim
    }

    // ------------------------------------------------------------------ set-up

    /// Add a client (powered off). Returns its index.
    pub fn add_client(&mut self, cfg: ClientConfig) -> usize {
        let i = self.clients.len();
        assert!(cfg.link < self.cfg.links.len(), "no link {}", cfg.link);
        assert!(!self.mac_index.contains_key(&cfg.mac), "duplicate MAC");
        self.mac_index.insert(cfg.mac, i);
        let rng = self.rng.fork(i as u64 + 1);
        self.clients.push(ModelClient::new(cfg, rng));
        self.client_timer_gen.push(0);
        i
    }

    /// Add a DHCP client on `link` with a MAC derived from its index.
    pub fn add_dhcp_client(&mut self, link: usize, style: IdStyle) -> usize {
        let n = self.clients.len() as u32;
        self.add_client(ClientConfig::numbered(n, link, style))
    }

    /// Add a host with a static address on `link`.
    pub fn add_squatter(&mut self, link: usize, addr: Ipv4Addr) -> usize {
        let i = self.squatters.len();
        let b = (i as u32).to_be_bytes();
        self.squatters.push(Squatter { link, addr, mac: [0x02, 0x5a, b[0], b[1], b[2], b[3]], up: true });
        self.holders.entry(addr).or_default().push(Holder::Squatter(i));
        self.dirty.push(addr);
        self.check_dirty();
        i
    }

    /// Take a squatter off the network.
    pub fn remove_squatter(&mut self, i: usize) {
        if let Some(s) = self.squatters.get_mut(i) {
            s.up = false;
            let a = s.addr;
            if let Some(v) = self.holders.get_mut(&a) {
                v.retain(|h| *h != Holder::Squatter(i));
            }
        }
    }

    // ------------------------------------------------------------------ access

    /// Virtual time now.
    pub fn now(&self) -> Millis {
        self.sched.now()
    }
    /// Time since the start.
    pub fn elapsed(&self) -> Millis {
        self.now() - self.cfg.start
    }
    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }
    /// A client.
    pub fn client(&self, c: usize) -> &ModelClient {
        &self.clients[c]
    }
    /// Every client.
    pub fn clients(&self) -> &[ModelClient] {
        &self.clients
    }
    /// A server.
    pub fn server(&self, s: usize) -> &ModelServer {
        &self.servers[s]
    }
    /// A server, mutable (to change its settings between steps).
    pub fn server_mut(&mut self, s: usize) -> &mut ModelServer {
        &mut self.servers[s]
    }
    /// Every server.
    pub fn servers(&self) -> &[ModelServer] {
        &self.servers
    }
    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
    /// The engine's address on `link`.
    pub fn link_addr(&self, link: usize) -> Ipv4Addr {
        self.cfg.links[link].relay.addr
    }
    /// The address `client` holds now.
    pub fn held(&self, c: usize) -> Option<Ipv4Addr> {
        self.clients[c].held(self.now()).map(|(a, _)| a)
    }
    /// The engine's records.
    pub fn engine_records(&self) -> Vec<RecordView> {
        engine_api::records(&self.engine)
    }
    /// The engine's record for `client`.
    pub fn engine_record(&self, c: usize) -> Option<RecordView> {
        let cl = &self.clients[c];
        engine_api::record_for(&self.engine, cl.client_id().as_deref(), cl.mac())
    }
    /// The engine's pool entries (pool mode).
    pub fn pool_entries(&self) -> Vec<engine_api::PoolEntryView> {
        engine_api::pool_entries(&self.engine)
    }
    /// Network counters.
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }
    /// How many probes the engine asked for `addr`.
    pub fn probes_for(&self, addr: Ipv4Addr) -> u64 {
        self.probes_by_target.get(&addr).copied().unwrap_or(0)
    }
    /// The last reply `server` sent for the client with `mac`.
    pub fn last_reply_from(&self, server: usize, mac: [u8; 6]) -> Option<&[u8]> {
        self.last_reply.get(&(server, mac)).map(|v| &v[..])
    }
    /// Violations found so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }
    /// Proxy expectations tracked so far.
    pub fn expectations(&self) -> &Expectations {
        &self.expectations
    }
    /// The last events, formatted.
    pub fn trace_dump(&self) -> String {
        self.render_trace().join("\n")
    }

    /// Panic (with traces) if any invariant was violated.
    pub fn assert_ok(&self) {
        if let Some(v) = self.violations.first() {
            panic!("{} violation(s); first:\n{v}", self.violations.len());
        }
    }

    /// Sum of what every server received, by kind.
    pub fn server_received(&self) -> KindCounts {
        let mut k = KindCounts::default();
        for s in &self.servers {
            for (i, n) in s.stats.received.0.iter().enumerate() {
                k.0[i] += n;
            }
        }
        k
    }

    /// Sum of what every client received (addressed to it), by kind.
    pub fn client_received(&self) -> KindCounts {
        let mut k = KindCounts::default();
        for c in &self.clients {
            for (i, n) in c.stats.received.0.iter().enumerate() {
                k.0[i] += n;
            }
        }
        k
    }

    /// Sum over clients of transmissions by class.
    pub fn client_sent_classes(&self) -> [u64; TxClass::COUNT] {
        let mut v = [0u64; TxClass::COUNT];
        for c in &self.clients {
            for (i, n) in c.stats.sent_class.iter().enumerate() {
                v[i] += n;
            }
        }
        v
    }

    /// A human-readable summary of the counters.
    pub fn report(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "simulated {} ({} events), mode {:?}",
            fmt_time(self.elapsed()),
            self.stats.events,
            self.cfg.mode
        );
        for (i, srv) in self.servers.iter().enumerate() {
            let r = &srv.stats.requests;
            let _ = writeln!(
                s,
                "  server#{i} {} received: {} | requests selecting={} init-reboot={} renew-direct={} ciaddr-relayed={} | sent: {} | no-address={} other-server-id={} cached={}",
                srv.addr(),
                srv.stats.received,
                r[0],
                r[1],
                r[2],
                r[3],
                srv.stats.sent,
                srv.stats.no_address,
                srv.stats.other_server_id,
                srv.stats.cached_renewals
            );
        }
        let sent = self.client_sent_classes();
        let classes: Vec<String> =
            TxClass::ALL.iter().map(|c| format!("{}={}", c.label(), sent[*c as usize])).collect();
        let _ = writeln!(s, "  clients sent: {}", classes.join(" "));
        let _ = writeln!(s, "  clients received: {}", self.client_received());
        let (acks, naks, extra, exp): (u64, u64, u64, u64) = self.clients.iter().fold((0, 0, 0, 0), |a, c| {
            (a.0 + c.stats.acks, a.1 + c.stats.naks, a.2 + c.stats.extra_offers, a.3 + c.stats.expirations)
        });
        let _ = writeln!(s, "  client acks={acks} naks={naks} extra-offers={extra} expirations={exp}");
        let st = &self.stats;
        let _ = writeln!(
            s,
            "  engine from clients: {} | to servers: {} | from servers: {}",
            st.engine_from_clients, st.engine_to_servers, st.engine_from_servers
        );
        let _ = writeln!(
            s,
            "  engine forwarded: {} | local answers: {} | probes={} answered={} | lost={} bypass={}",
            st.forwarded_replies, st.local_answers, st.probes, st.probes_answered, st.lost, st.bypass_relayed
        );
        s
    }

    // ------------------------------------------------------------------ driving

    /// Schedule an action at absolute time `at`.
    pub fn schedule(&mut self, at: Millis, a: Action) {
        self.sched.at(at, Ev::Act(a));
    }

    /// Run an action now.
    pub fn act(&mut self, a: Action) {
        self.do_action(a);
        self.check_dirty();
    }

    /// Power a client on now.
    pub fn power_on(&mut self, c: usize) {
        self.act(Action::PowerOn(c));
    }
    /// Power a client off now.
    pub fn power_off(&mut self, c: usize, release: bool) {
        self.act(Action::PowerOff { client: c, release });
    }
    /// Forget a powered-off client's lease.
    pub fn forget_lease(&mut self, c: usize) {
        self.act(Action::ForgetLease(c));
    }
    /// Move a client to another link.
    pub fn move_client(&mut self, c: usize, link: usize) {
        self.act(Action::Move { client: c, link });
    }
    /// Stop a server.
    pub fn stop_server(&mut self, s: usize) {
        self.act(Action::StopServer(s));
    }
    /// Start a server.
    pub fn start_server(&mut self, s: usize) {
        self.act(Action::StartServer(s));
    }
    /// Cut the engine off / reconnect it.
    pub fn set_engine_reachable(&mut self, up: bool) {
        self.act(Action::EngineReachable(up));
    }
    /// Switch a bypass relay.
    pub fn set_bypass(&mut self, link: usize, on: bool) {
        self.act(Action::Bypass { link, on });
    }
    /// Cut / restore the direct client <-> server path.
    pub fn set_direct_path(&mut self, up: bool) {
        self.act(Action::DirectPath(up));
    }

    /// What a persisted engine would keep (its whole table, encoded as the store keeps it).
    pub fn engine_snapshot(&self) -> Snapshot {
        engine_api::export_records(&self.engine)
    }

    /// Replace the engine by a new one (a restart), loading `snapshot` if given. Timers and
    /// in-flight work of the old engine are gone.
    pub fn restart_engine(&mut self, snapshot: Option<&Snapshot>) {
        self.engine = Engine::new(self.engine_cfg.clone());
        self.engine_calls += 1;
        if let Some(s) = snapshot {
            let now = self.engine_now();
            engine_api::import_records(&mut self.engine, now, s);
        }
        self.outbox.clear();
        self.engine_timer = None;
        self.tr(TraceEvent::Action("engine restarted".into()));
        self.reschedule_engine_timer();
    }

    /// Run every event up to and including `t`, then set the clock to `t`.
    pub fn run_until(&mut self, t: Millis) {
        while self.step(t) {}
        self.advance_to(t);
    }

    /// Run the next event if it is due at or before `t`, with the invariant checks; false
    /// when none is (the clock is then left where it is: see [`Sim::advance_to`]). For a
    /// driver that inspects the network between events.
    pub fn step(&mut self, t: Millis) -> bool {
        let Some(ev) = self.sched.pop_until(t) else { return false };
        self.stats.events += 1;
        self.dispatch(ev);
        self.check_dirty();
        if self.cfg.full_check_every > 0 {
            self.since_full_check += 1;
            if self.since_full_check >= self.cfg.full_check_every {
                self.since_full_check = 0;
                self.check_all();
            }
        }
        true
    }

    /// Set the clock to `t` (after [`Sim::step`] returned false for it).
    pub fn advance_to(&mut self, t: Millis) {
        self.sched.advance_to(t);
        self.check_dirty();
    }

    /// The engine's clock: the simulation's, plus every [`Sim::step_engine_clock`] so far.
    pub fn engine_now(&self) -> Millis {
        self.to_engine_time(self.now())
    }

    fn to_engine_time(&self, t: Millis) -> Millis {
        t.saturating_add_signed(self.engine_clock_offset)
    }

    /// Step the engine's clock by `delta_ms` (negative: back), as a host clock set by NTP or
    /// by hand does; the rest of the network keeps its time. The invariant checker's lease
    /// tolerance grows by the size of every step: the engine cannot know its clock jumped,
    /// so what it believes is left of a lease it learnt before may be that much longer (a
    /// step back) or shorter (a step forward: a short lease seen as lapsed is released
    /// early, unprobed with `safe_network`).
    pub fn step_engine_clock(&mut self, delta_ms: i64) {
        let now = self.now();
        // The engine's clock never goes below zero.
        let floor = -i64::try_from(now).unwrap_or(i64::MAX);
        let before = self.engine_clock_offset;
        self.engine_clock_offset = before.saturating_add(delta_ms).max(floor);
        let moved = before.abs_diff(self.engine_clock_offset);
        self.cfg.lease_tolerance_ms = self.cfg.lease_tolerance_ms.saturating_add(moved);
        self.tr(TraceEvent::Action(format!("engine clock stepped by {delta_ms} ms")));
        self.engine_timer = None;
        self.reschedule_engine_timer();
    }

    /// How many times the engine was called so far (a datagram, a probe answer, its timers,
    /// a restart): a driver that inspects the engine after every event can skip the events
    /// that did not reach it.
    pub fn engine_calls(&self) -> u64 {
        self.engine_calls
    }

    /// Keep (or stop keeping) every datagram and probe crossing the engine's edge; drained
    /// with [`Sim::take_wire_log`].
    pub fn set_wire_log(&mut self, on: bool) {
        self.wire_log = on.then(Vec::new);
    }

    /// What crossed the engine's edge since the last call.
    pub fn take_wire_log(&mut self) -> Vec<WireEvent> {
        self.wire_log.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn log_wire(&mut self, ev: impl FnOnce() -> WireEvent) {
        if let Some(log) = &mut self.wire_log {
            log.push(ev());
        }
    }

    /// Hand `data` to the engine as received on `ifindex` from `src` for `dst`, in a frame
    /// from Ethernet address `link_source` (`None`: the I/O layer did not read the frame, as
    /// for replies on the upstream socket), as the next event (whatever the network would
    /// have done with it: spoofed, replayed, mangled).
    pub fn inject_to_engine(
        &mut self,
        ifindex: u32,
        link_source: Option<[u8; 6]>,
        src: SocketAddrV4,
        dst: Ipv4Addr,
        data: Vec<u8>,
    ) {
        self.sched.after(0, Ev::HostileRx { ifindex, link_source, src, dst, data });
    }

    /// Hand the engine a probe answer, as the next event: an ARP packet claiming `target`
    /// on `ifindex`, or an ICMP echo reply from `target` (whatever identifier it carries),
    /// whoever really holds it.
    pub fn inject_probe_answer(&mut self, ifindex: u32, target: Ipv4Addr, reply: ProbeReply) {
        self.sched.after(0, Ev::ProbeAnswer { ifindex, target, reply });
    }

    /// Run for `d` milliseconds.
    pub fn run_for(&mut self, d: Millis) {
        let t = self.now() + d;
        self.run_until(t);
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::EngineRx { ifindex, src, dst, data } => self.engine_rx(ifindex, src, dst, &data),
            Ev::HostileRx { ifindex, link_source, src, dst, data } => {
                self.engine_rx_from(ifindex, link_source, src, dst, &data)
            }
            Ev::ServerRx { server, src, data } => self.server_rx(server, src, &data),
            Ev::LinkFrame { link, mac, data } => self.link_frame(link, mac, &data),
            Ev::IpToClient { link, dst, data } => self.ip_to_client(link, dst, &data),
            Ev::BypassRx { link, data } => self.bypass_rx(link, data),
            Ev::BypassReply { link, data } => self.bypass_reply(link, &data),
            Ev::ProbeAnswer { ifindex, target, reply } => {
                if self.engine_up {
                    self.stats.probes_answered += 1;
                    let mac = match reply {
                        ProbeReply::Arp(mac) => Some(mac),
                        ProbeReply::Echo(_) => None,
                    };
                    self.tr(TraceEvent::ProbeAnswer { target, mac });
                    let now = self.engine_now();
                    self.engine_calls += 1;
                    engine_api::probe_answer(&mut self.engine, now, ifindex, target, reply, &mut self.outbox);
                    self.flush_outbox(false);
                    self.reschedule_engine_timer();
                }
            }
            Ev::EngineTimer => self.engine_timer_fired(),
            Ev::ClientTimer { client, gen } => {
                let (t, g) = self.clients[client].timer();
                if g == gen && t.is_some() {
                    let now = self.now();
                    self.clients[client].on_timer(now);
                    self.after_client(client);
                }
            }
            Ev::Act(a) => self.do_action(a),
        }
    }

    fn do_action(&mut self, a: Action) {
        let now = self.now();
        self.tr(TraceEvent::Action(format!("{a:?}")));
        match a {
            Action::PowerOn(c) => {
                self.clients[c].power_on(now);
                self.after_client(c);
            }
            Action::PowerOff { client, release } => {
                self.abandon_expectations(client);
                self.clients[client].power_off(now, release);
                self.after_client(client);
            }
            Action::ForgetLease(c) => self.clients[c].forget_lease(),
            Action::Move { client, link } => {
                self.abandon_expectations(client);
                self.clients[client].set_link(link);
                self.clients[client].link_changed(now);
                self.after_client(client);
            }
            Action::RenewNow(c) => {
                self.clients[c].renew_now(now);
                self.after_client(c);
            }
            Action::Decline(c) => {
                self.clients[c].decline(now);
                self.after_client(c);
            }
            Action::Inform(c) => {
                self.clients[c].inform(now);
                self.after_client(c);
            }
            Action::StopServer(s) => self.servers[s].set_up(false),
            Action::StartServer(s) => self.servers[s].set_up(true),
            Action::EngineReachable(up) => self.engine_up = up,
            Action::Bypass { link, on } => self.bypass_on[link] = on,
            Action::DirectPath(up) => self.direct_path = up,
        }
    }

    // ------------------------------------------------------------------ clients

    fn after_client(&mut self, c: usize) {
        for tx in self.clients[c].take_tx() {
            self.route_client_tx(c, tx);
        }
        for ch in self.clients[c].take_changes() {
            let end = self.clients[c].lease().map(|l| l.end()).unwrap_or(0);
            self.tr(TraceEvent::Addr { client: c, change: ch, end });
            match ch {
                AddrChange::Configured(a) => {
                    let v = self.holders.entry(a).or_default();
                    if !v.contains(&Holder::Client(c)) {
                        v.push(Holder::Client(c));
                    }
                    self.dirty.push(a);
                }
                AddrChange::Unconfigured(a) => {
                    if let Some(v) = self.holders.get_mut(&a) {
                        v.retain(|h| *h != Holder::Client(c));
                    }
                }
            }
        }
        let (t, gen) = self.clients[c].timer();
        if let Some(t) = t {
            if gen != self.client_timer_gen[c] {
                self.client_timer_gen[c] = gen;
                self.sched.at(t, Ev::ClientTimer { client: c, gen });
            }
        }
    }

    fn engine_addr_link(&self, a: Ipv4Addr) -> Option<usize> {
        self.cfg.links.iter().position(|l| l.relay.addr == a)
    }

    fn route_client_tx(&mut self, c: usize, tx: ClientTx) {
        let link = self.clients[c].link();
        let ifindex = self.cfg.links[link].ifindex;
        let s = Summary::parse(&tx.data);
        let lat = self.cfg.latency;
        match tx.to {
            TxTo::Broadcast { src } => {
                if let Some(s) = s {
                    self.tr(TraceEvent::ClientTx { client: c, s, to: "broadcast" });
                }
                if self.engine_up {
                    self.note_expectation(c, &tx);
                    self.sched.after(
                        lat.link_ms,
                        Ev::EngineRx {
                            ifindex,
                            src: SocketAddrV4::new(src, 68),
                            dst: Ipv4Addr::BROADCAST,
                            data: tx.data.clone(),
                        },
                    );
                }
                if self.bypass_on[link] {
                    self.sched.after(lat.link_ms, Ev::BypassRx { link, data: tx.data });
                }
            }
            TxTo::Unicast { src, dst } => {
                if self.engine_addr_link(dst).is_some() {
                    if let Some(s) = s {
                        self.tr(TraceEvent::ClientTx { client: c, s, to: "engine (unicast)" });
                    }
                    if self.engine_up {
                        self.note_expectation(c, &tx);
                        self.sched.after(
                            lat.link_ms,
                            Ev::EngineRx { ifindex, src: SocketAddrV4::new(src, 68), dst, data: tx.data },
                        );
                    } else {
                        self.lost("engine unreachable", s);
                    }
                } else if let Some(server) = self.servers.iter().position(|sv| sv.addr() == dst) {
                    if self.cfg.mode.unicasts() == Unicasts::Intercepted && self.engine_up {
                        // The engine runs on the router the unicast crosses (paper 4.2): it
                        // sees it first, and what it does not take the router forwards.
                        if let Some(s) = s {
                            self.tr(TraceEvent::ClientTx { client: c, s, to: "server (via the spoofing router)" });
                        }
                        self.note_expectation(c, &tx);
                        let src = SocketAddrV4::new(src, 68);
                        self.sched.after(lat.link_ms, Ev::EngineRx { ifindex, src, dst, data: tx.data });
                        return;
                    }
                    if let Some(s) = s {
                        self.tr(TraceEvent::ClientTx { client: c, s, to: "server (direct)" });
                    }
                    if self.direct_path {
                        self.sched.after(lat.link_ms + lat.server_ms, Ev::ServerRx { server, src, data: tx.data });
                    } else {
                        self.lost("direct path cut", s);
                    }
                } else {
                    self.lost("no route", s);
                }
            }
        }
    }

    fn tr(&mut self, ev: TraceEvent) {
        let at = self.sched.now();
        if let Some(w) = self.cfg.watch {
            let mac = self.clients.get(w).map(|c| c.mac());
            let involved = match &ev {
                TraceEvent::ClientTx { client, .. }
                | TraceEvent::ClientRx { client, .. }
                | TraceEvent::Addr { client, .. } => *client == w,
                TraceEvent::EngineRx { s, .. }
                | TraceEvent::EngineTx { s, .. }
                | TraceEvent::ServerRx { s, .. }
                | TraceEvent::ServerTx { s, .. }
                | TraceEvent::Bypass { s, .. } => Some(s.mac) == mac,
                TraceEvent::Lost { s, .. } => s.is_some_and(|s| Some(s.mac) == mac),
                TraceEvent::Probe { target, .. } | TraceEvent::ProbeAnswer { target, .. } => {
                    self.clients.get(w).and_then(|c| c.lease()).is_some_and(|l| l.address == *target)
                }
                TraceEvent::EngineTimeout => false,
                TraceEvent::Action(a) => {
                    a.contains(&format!("({w})"))
                        || a.contains(&format!("client: {w},"))
                        || a.contains("Server")
                        || a.contains("Engine")
                        || a.contains("Bypass")
                        || a.contains("DirectPath")
                }
            };
            if involved {
                self.watch_log.push(at, ev.clone());
            }
        }
        self.trace.push(at, ev);
    }

    /// Every event involving the watched client ([`SimConfig::watch`]), formatted.
    pub fn watch_log(&self) -> String {
        let idx = &self.mac_index;
        let name = move |mac: [u8; 6]| -> String {
            idx.get(&mac).map(|c| format!("client#{c}")).unwrap_or_else(|| crate::msg::mac_str(mac))
        };
        self.watch_log.render(&name).join("\n")
    }

    fn lost(&mut self, why: &'static str, s: Option<Summary>) {
        self.stats.lost += 1;
        self.tr(TraceEvent::Lost { why, s });
    }

    fn deliver_to_client(&mut self, c: usize, data: &[u8]) {
        let now = self.now();
        let acks_before = self.clients[c].stats.acks + self.clients[c].stats.bootreplies;
        self.clients[c].receive(now, data);
        let got_ack = self.clients[c].stats.acks + self.clients[c].stats.bootreplies > acks_before;
        if let Some(s) = Summary::parse(data) {
            self.tr(TraceEvent::ClientRx { client: c, s, state_after: self.clients[c].state() });
            if got_ack {
                if let Some(e) = self.expectations.by_xid.get_mut(&s.xid) {
                    if e.client == c {
                        e.served = true;
                    }
                }
            }
        }
        self.after_client(c);
    }

    fn link_frame(&mut self, link: usize, mac: [u8; 6], data: &[u8]) {
        let Ok(m) = Message::new_checked(data) else { return };
        let Some(chaddr) = m.ethernet_chaddr() else { return };
        if mac != BROADCAST_MAC && mac != chaddr {
            // A frame to one MAC carrying another client's chaddr: the MAC's owner drops it.
            self.lost("frame for another chaddr", Some(Summary::of(&m)));
            return;
        }
        match self.mac_index.get(&chaddr).copied() {
            Some(c) if self.clients[c].link() == link && self.clients[c].is_on() => self.deliver_to_client(c, data),
            _ => self.lost("client not on link", Some(Summary::of(&m))),
        }
    }

    fn link_of_subnet(&self, a: Ipv4Addr) -> Option<usize> {
        self.cfg.links.iter().position(|l| l.relay.contains(a))
    }

    fn ip_to_client(&mut self, link: Option<usize>, dst: Ipv4Addr, data: &[u8]) {
        let link = link.or_else(|| self.link_of_subnet(dst));
        let target = self.holders.get(&dst).and_then(|v| {
            v.iter().find_map(|h| match *h {
                Holder::Client(c)
                    if Some(self.clients[c].link()) == link && self.clients[c].configured() == Some(dst) =>
                {
                    Some(c)
                }
                _ => None,
            })
        });
        match target {
            Some(c) => self.deliver_to_client(c, data),
            None => self.lost("nobody has that address on the link", Summary::parse(data)),
        }
    }

    // ------------------------------------------------------------------ engine

    fn engine_rx(&mut self, ifindex: u32, src: SocketAddrV4, dst: Ipv4Addr, data: &[u8]) {
        // Model clients send from their own MAC, which the I/O layer reads off the frame.
        let from_server = ifindex == self.cfg.upstream_ifindex;
        let link_source = if from_server { None } else { Summary::parse(data).map(|s| s.mac) };
        self.engine_rx_from(ifindex, link_source, src, dst, data);
    }

    fn engine_rx_from(
        &mut self,
        ifindex: u32,
        link_source: Option<[u8; 6]>,
        src: SocketAddrV4,
        dst: Ipv4Addr,
        data: &[u8],
    ) {
        if !self.engine_up {
            self.lost("engine unreachable", Summary::parse(data));
            return;
        }
        let now = self.now();
        self.engine_calls += 1;
        self.log_wire(|| WireEvent::EngineIn { at: now, ifindex, link_source, src, dst, data: data.to_vec() });
        let from_server = ifindex == self.cfg.upstream_ifindex;
        let verdict = self.engine.handle_datagram(
            Timestamp::from_millis(self.to_engine_time(now)),
            Ingress { link_source, ifindex, src, dst, data },
            &mut self.outbox,
        );
        if verdict == Verdict::Dropped(DropReason::NotAddressedToUs) {
            // Not ours: the router forwards it to its destination.
            if let Some(server) = self.servers.iter().position(|sv| sv.addr() == dst) {
                let routed = Ev::ServerRx { server, src: *src.ip(), data: data.to_vec() };
                self.sched.after(self.cfg.latency.server_ms, routed);
            }
        }
        if let Some(s) = Summary::parse(data) {
            if from_server {
                self.stats.engine_from_servers.bump(s.kind);
            } else {
                self.stats.engine_from_clients.bump(s.kind);
            }
            self.tr(TraceEvent::EngineRx { ifindex, s, verdict });
            let produced_client_output =
                self.outbox.iter().any(|o| !matches!(o.destination, Destination::Server { .. }));
            if from_server && !produced_client_output {
                // Held back (e.g. an offer window): if it comes out later it is not local.
                self.held_replies.insert((s.xid, s.kind, s.mac), now);
            }
        }
        self.flush_outbox(from_server);
        self.reschedule_engine_timer();
    }

    fn engine_timer_fired(&mut self) {
        let now = self.now();
        if self.engine_timer.is_some_and(|t| t <= now) {
            self.engine_timer = None;
        }
        let engine_now = self.to_engine_time(now);
        if engine_api::poll_timeout(&self.engine).is_some_and(|t| t <= engine_now) {
            self.last_engine_wake = now;
            self.engine_calls += 1;
            engine_api::handle_timeout(&mut self.engine, engine_now, &mut self.outbox);
            self.probe_deadlines.retain(|d| *d > now);
            if !self.outbox.is_empty() || !self.outbox.probes().is_empty() {
                self.tr(TraceEvent::EngineTimeout);
            }
            if self.engine_up {
                self.flush_outbox(false);
            } else {
                self.outbox.clear();
            }
        }
        self.reschedule_engine_timer();
    }

    fn reschedule_engine_timer(&mut self) {
        let now = self.now();
        if let Some(t) = engine_api::poll_timeout(&self.engine) {
            // The engine's deadline on the simulation's clock.
            let t = t.saturating_add_signed(self.engine_clock_offset.saturating_neg());
            // Never spin: a timer that is still due after handle_timeout runs 1 ms later.
            let mut t = t.max(now + 1);
            if let Some(g) = self.cfg.engine_timer_coarsening {
                let next_probe = self.probe_deadlines.iter().copied().filter(|d| *d >= t).min();
                t = t.max(self.last_engine_wake + g);
                if let Some(d) = next_probe {
                    t = t.min(d);
                }
            }
            if self.engine_timer.is_none_or(|s| t < s) {
                self.engine_timer = Some(t);
                self.sched.at(t, Ev::EngineTimer);
            }
        }
    }

    fn flush_outbox(&mut self, from_server: bool) {
        let now = self.now();
        let lat = self.cfg.latency;
        let out: Vec<(Destination, Vec<u8>)> =
            self.outbox.iter().map(|o| (o.destination, o.payload().to_vec())).collect();
        let probes = self.outbox.probes().to_vec();
        self.outbox.clear();
        if self.held_replies.len() > 10_000 {
            self.held_replies.retain(|_, t| now.saturating_sub(*t) < 60_000);
        }
        for (dest, data) in out {
            self.log_wire(|| WireEvent::EngineOut { at: now, dest, data: data.clone() });
            let s = Summary::parse(&data);
            let mut local = false;
            if let (Some(s), false) = (s, matches!(dest, Destination::Server { .. })) {
                let forwarded = from_server || self.held_replies.remove(&(s.xid, s.kind, s.mac)).is_some();
                local = !forwarded;
                if local {
                    self.stats.local_answers.bump(s.kind);
                } else {
                    self.stats.forwarded_replies.bump(s.kind);
                }
            }
            if let Some(s) = s {
                self.tr(TraceEvent::EngineTx { dest, s, local });
            }
            match dest {
                Destination::Server { addr, .. } => {
                    if let Some(s) = s {
                        self.stats.engine_to_servers.bump(s.kind);
                    }
                    match self.servers.iter().position(|sv| sv.addr() == addr) {
                        Some(server) => {
                            self.sched.after(lat.server_ms, Ev::ServerRx { server, src: self.cfg.upstream_addr, data })
                        }
                        None => self.lost("no such server", s),
                    }
                }
                Destination::ClientUnicast { ifindex, dst, .. } => {
                    match self.cfg.links.iter().position(|l| l.ifindex == ifindex) {
                        Some(link) => self.sched.after(lat.link_ms, Ev::IpToClient { link: Some(link), dst, data }),
                        None => self.lost("unknown ifindex", s),
                    }
                }
                Destination::ClientLink { ifindex, mac, .. } => {
                    match self.cfg.links.iter().position(|l| l.ifindex == ifindex) {
                        Some(link) => self.sched.after(lat.link_ms, Ev::LinkFrame { link, mac, data }),
                        None => self.lost("unknown ifindex", s),
                    }
                }
            }
        }
        for p in probes {
            self.log_wire(|| WireEvent::Probe { at: now, ifindex: p.ifindex, target: p.target, echo: p.echo });
            if self.probe_echo_by_target.insert(p.target, p.echo) != Some(p.echo) {
                self.probe_deadlines.push(now + self.cfg.proxy.probe_timeout.as_millis() as Millis);
                self.stats.probes += 1;
                *self.probes_by_target.entry(p.target).or_insert(0) += 1;
            }
            let holder = self.probe_holder(&p);
            self.tr(TraceEvent::Probe { ifindex: p.ifindex, target: p.target, holder });
            if let Some(mac) = holder {
                self.sched.after(
                    lat.probe_answer_ms,
                    Ev::ProbeAnswer { ifindex: p.ifindex, target: p.target, reply: ProbeReply::Arp(mac) },
                );
            }
        }
    }

    /// Who answers a probe: a host with its target configured on the probed link (an ARP
    /// probe) or on the link of the target's subnet (an ICMP echo, routed there).
    fn probe_holder(&self, p: &cdra_core::ProbeRequest) -> Option<[u8; 6]> {
        let target = p.target;
        let link = self.cfg.links.iter().position(|l| l.ifindex == p.ifindex);
        let home = self.link_of_subnet(target);
        let reach = |l: usize| (p.arp() && Some(l) == link) || (p.icmp && Some(l) == home);
        self.holders.get(&target)?.iter().find_map(|h| match *h {
            Holder::Client(c) => {
                let cl = &self.clients[c];
                (cl.configured() == Some(target) && reach(cl.link())).then(|| cl.mac())
            }
            Holder::Squatter(i) => {
                let s = &self.squatters[i];
                (s.up && reach(s.link)).then_some(s.mac)
            }
        })
    }

    // ------------------------------------------------------------------ servers

    fn server_rx(&mut self, server: usize, src: Ipv4Addr, data: &[u8]) {
        let now = self.now();
        let s = Summary::parse(data);
        if !self.servers[server].is_up() {
            self.lost("server stopped", s);
            return;
        }
        if let Some(s) = s {
            self.tr(TraceEvent::ServerRx { server, s });
            if let Some(e) = self.expectations.by_xid.get_mut(&s.xid) {
                e.seen_by_server = true;
            }
        }
        let reply = self.servers[server].handle(now, src, data);
        let touched = self.servers[server].take_touched();
        self.dirty.extend(touched);
        let Some(reply) = reply else { return };
        let rs = Summary::parse(&reply.data);
        if let Some(rs) = rs {
            self.tr(TraceEvent::ServerTx { server, s: rs });
            self.last_reply.insert((server, rs.mac), reply.data.clone());
        }
        let lat = self.cfg.latency;
        let srv_addr = self.servers[server].addr();
        if self.engine_addr_link(reply.dst).is_some() {
            if self.engine_up {
                self.sched.after(
                    lat.server_ms,
                    Ev::EngineRx {
                        ifindex: self.cfg.upstream_ifindex,
                        src: SocketAddrV4::new(srv_addr, 67),
                        dst: reply.dst,
                        data: reply.data,
                    },
                );
            } else {
                self.lost("engine unreachable", rs);
            }
        } else if let Some(link) = self.cfg.links.iter().position(|l| l.bypass == reply.dst) {
            if self.bypass_on[link] {
                self.sched.after(lat.server_ms, Ev::BypassReply { link, data: reply.data });
            } else {
                self.lost("bypass relay off", rs);
            }
        } else if self.direct_path {
            self.sched
                .after(lat.server_ms + lat.link_ms, Ev::IpToClient { link: None, dst: reply.dst, data: reply.data });
        } else {
            self.lost("direct path cut", rs);
        }
    }

    /// Deliver raw bytes to the engine as if `server` had sent them to `giaddr` (e.g. a
    /// replayed ACK, to see that the engine discards it).
    pub fn inject_from_server(&mut self, server: usize, giaddr: Ipv4Addr, data: Vec<u8>) {
        let src = SocketAddrV4::new(self.servers[server].addr(), 67);
        self.sched.after(
            self.cfg.latency.server_ms,
            Ev::EngineRx { ifindex: self.cfg.upstream_ifindex, src, dst: giaddr, data },
        );
    }

    /// Deliver raw bytes to the engine as a hostile host on client link `link` sends them:
    /// a frame from Ethernet address `link_source`, IPv4 `src` to `dst` (a forged server
    /// reply, or a message in another client's name).
    pub fn inject_on_link(
        &mut self,
        link: usize,
        link_source: [u8; 6],
        src: SocketAddrV4,
        dst: Ipv4Addr,
        data: Vec<u8>,
    ) {
        let ifindex = self.cfg.links.get(link).map(|l| l.ifindex).unwrap_or(0);
        self.sched
            .after(self.cfg.latency.link_ms, Ev::HostileRx { ifindex, link_source: Some(link_source), src, dst, data });
    }

    // ------------------------------------------------------------------ bypass relays

    fn bypass_rx(&mut self, link: usize, mut data: Vec<u8>) {
        if !self.bypass_on[link] {
            return;
        }
        let addr = self.cfg.links[link].bypass;
        let Ok(mut m) = Message::new_checked(&mut data[..]) else { return };
        if m.op() != Op::BootRequest {
            return;
        }
        // RFC 1542 4.1.1: fill giaddr if zero, count the hop.
        if m.giaddr().is_unspecified() {
            m.set_giaddr(addr);
        }
        let hops = m.hops().saturating_add(1);
        m.set_hops(hops);
        let s = Summary::of(&m);
        self.stats.bypass_relayed += 1;
        self.tr(TraceEvent::Bypass { link, s, up: true });
        for server in 0..self.servers.len() {
            self.sched.after(self.cfg.latency.server_ms, Ev::ServerRx { server, src: addr, data: data.clone() });
        }
    }

    fn bypass_reply(&mut self, link: usize, data: &[u8]) {
        let Ok(m) = Message::new_checked(data) else { return };
        let s = Summary::of(&m);
        self.tr(TraceEvent::Bypass { link, s, up: false });
        let lat = self.cfg.latency.link_ms;
        // RFC 2131 4.1 delivery, as the bypass relay does it.
        let d = data.to_vec();
        if s.kind == Kind::Nak || m.broadcast() || m.yiaddr().is_unspecified() && m.ciaddr().is_unspecified() {
            self.sched.after(lat, Ev::LinkFrame { link, mac: BROADCAST_MAC, data: d });
        } else if !m.ciaddr().is_unspecified() {
            self.sched.after(lat, Ev::IpToClient { link: Some(link), dst: m.ciaddr(), data: d });
        } else {
            let mac = m.ethernet_chaddr().unwrap_or(BROADCAST_MAC);
            self.sched.after(lat, Ev::LinkFrame { link, mac, data: d });
        }
    }

    // ------------------------------------------------------------------ expectations

    fn note_expectation(&mut self, c: usize, tx: &ClientTx) {
        if !self.cfg.track_expectations || !tx.first || !self.cfg.mode.caches() {
            return;
        }
        if !matches!(tx.class, TxClass::InitReboot | TxClass::Discover | TxClass::Renew) {
            return;
        }
        let Some(rec) = self.engine_record(c) else { return };
        let now = self.now();
        let Ok(m) = Message::new_checked(&tx.data[..]) else { return };
        let asked = match tx.class {
            TxClass::InitReboot => m.requested_ip(),
            TxClass::Renew => Some(m.ciaddr()),
            _ => None,
        };
        let link = self.clients[c].link();
        let eligible = rec.state == "bound"
            && rec.has_reply
            && !rec.address.is_unspecified()
            && asked.is_none_or(|a| a == rec.address)
            && self.cfg.links[link].relay.contains(rec.address)
            && rec.lease_end.is_none_or(|e| e >= now + 120_000)
            // Past the server lease's T1 a local ACK also renews upstream with the client's
            // own request (paper 5.3; for a DISCOVER, the REQUEST of the same xid that
            // follows), so the server sees that xid: not "alone" any more.
            && rec.t1_at.is_none_or(|t1| now + 1000 < t1);
        if eligible {
            let during_outage = self.servers.iter().any(|s| !s.is_up());
            self.expectations.by_xid.insert(
                m.xid(),
                Expected {
                    client: c,
                    class: tx.class,
                    at: now,
                    during_outage,
                    seen_by_server: false,
                    served: false,
                    abandoned: false,
                },
            );
        }
    }

    fn abandon_expectations(&mut self, c: usize) {
        if !self.cfg.track_expectations {
            return;
        }
        let now = self.now();
        for e in self.expectations.by_xid.values_mut() {
            // A transaction younger than 10 s may not have been answered yet.
            if e.client == c && !e.served && now.saturating_sub(e.at) < 10_000 {
                e.abandoned = true;
            }
        }
    }

    // ------------------------------------------------------------------ invariants

    fn render_trace(&self) -> Vec<String> {
        let idx = &self.mac_index;
        let sq = &self.squatters;
        let name = move |mac: [u8; 6]| -> String {
            if let Some(c) = idx.get(&mac) {
                return format!("client#{c}");
            }
            if let Some(i) = sq.iter().position(|s| s.mac == mac) {
                return format!("squatter#{i}");
            }
            crate::msg::mac_str(mac)
        };
        self.trace.render(&name)
    }

    fn report_violation(&mut self, kind: ViolationKind) {
        let sig = match &kind {
            ViolationKind::DuplicateAddress { addr, holders } => format!("a {addr} {holders:?}"),
            ViolationKind::LeaseBeyondServer { client, addr, client_end, .. } => {
                format!("b {client} {addr} {client_end}")
            }
        };
        if !self.reported.insert(sig) {
            return;
        }
        let v = Violation { at: self.now(), start: self.cfg.start, kind, trace: self.render_trace() };
        if self.cfg.panic_on_violation {
            panic!("{v}");
        }
        if self.violations.len() < 1000 {
            self.violations.push(v);
        }
    }

    fn check_addr(&mut self, a: Ipv4Addr) {
        let now = self.now();
        let Some(hs) = self.holders.get(&a) else { return };
        let holding: Vec<Holder> = hs
            .iter()
            .copied()
            .filter(|h| match *h {
                Holder::Client(c) => self.clients[c].held(now).is_some_and(|(x, _)| x == a),
                Holder::Squatter(i) => self.squatters[i].up,
            })
            .collect();
        if holding.len() > 1 {
            self.report_violation(ViolationKind::DuplicateAddress { addr: a, holders: holding.clone() });
        }
        for h in holding {
            let Holder::Client(c) = h else { continue };
            let Some((_, end)) = self.clients[c].held(now) else { continue };
            let key = self.clients[c].key();
            let binding = self
                .servers
                .iter()
                .find(|s| s.owns(a))
                .and_then(|s| s.binding(a))
                .map(|(k, e)| (k == key.as_slice(), e));
            let covers = |e: Millis| e.saturating_add(self.cfg.lease_tolerance_ms) >= end;
            let ok = match binding {
                Some((true, e)) => covers(e),
                // Pool mode: the server leases the address to one of cdra's pool identities,
                // which gave it to this client; or the lease is being handed over to the
                // client (released by the pool identity, requested in the client's name).
                Some((false, e)) => self.pool_backs(c, a, covers(e)),
                None => false,
            };
            if !ok {
                self.report_violation(ViolationKind::LeaseBeyondServer {
                    client: c,
                    addr: a,
                    client_end: end,
                    server: binding,
                });
            }
        }
    }

    /// Pool mode, invariant (b): client `c` holds `a`, which the server binds to another
    /// identity: fine if that is a pool identity whose lease covers the client's
    /// (`covered`), or if the engine is handing the address over from the pool identity to
    /// the client (entry migrating or reacquiring for it).
    fn pool_backs(&self, c: usize, a: Ipv4Addr, covered: bool) -> bool {
        let Some(srv) = self.servers.iter().find(|s| s.owns(a)) else { return false };
        let Some((key, _)) = srv.binding(a) else { return false };
        if !engine_api::is_pool_identity(key) {
            return false;
        }
        if covered {
            return true;
        }
        let Some(record) = self.engine_record(c) else { return false };
        engine_api::pool_entries(&self.engine).iter().any(|e| {
            e.address == a
                && matches!(e.state, "migrating" | "reacquiring")
                && e.client.as_deref() == Some(record.key.as_str())
        })
    }

    fn check_dirty(&mut self) {
        for srv in &mut self.servers {
            let t = srv.take_touched();
            self.dirty.extend(t);
        }
        if self.dirty.is_empty() {
            return;
        }
        let mut d = std::mem::take(&mut self.dirty);
        d.sort();
        d.dedup();
        for a in d {
            self.check_addr(a);
        }
    }

    /// Check both invariants for every held address.
    pub fn check_all(&mut self) {
        let mut addrs: Vec<Ipv4Addr> = self.holders.iter().filter(|(_, v)| !v.is_empty()).map(|(a, _)| *a).collect();
        addrs.sort();
        for a in addrs {
            self.check_addr(a);
        }
    }

    /// Is the client in a state that uses an address?
    pub fn client_state(&self, c: usize) -> ClientState {
        self.clients[c].state()
    }
}
