//! The engine's runtime model of its configuration: interfaces already resolved to
//! indexes and addresses, every value validated. The binary builds it from the TOML file
//! or the dhcrelay-style command line; the core never parses text.

use core::net::Ipv4Addr;
use core::time::Duration;

use crate::limits::Rate;

/// RFC 1542 4.1.1: "The relay agent MUST silently discard BOOTREQUEST messages whose
/// 'hops' field exceeds the value 16."
pub const HARD_MAX_HOPS: u8 = 16;
/// Default hop limit (a relay chain longer than this is a loop or a mistake).
pub const DEFAULT_MAX_HOPS: u8 = 4;
/// Default largest DHCP payload sent to a server after adding option 82 (Ethernet MTU
/// minus IPv4 and UDP headers).
pub const DEFAULT_MAX_PACKET_SIZE: usize = 1472;

/// An IPv4 address with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    /// The address.
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix_len: u8,
}

impl Ipv4Net {
    /// The netmask.
    pub fn netmask(&self) -> Ipv4Addr {
        let bits = if self.prefix_len == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix_len.min(32))) };
        Ipv4Addr::from(bits)
    }
    /// The network's directed broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !u32::from(self.netmask()))
    }
    /// True if `a` is in this network.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        let m = u32::from(self.netmask());
        u32::from(a) & m == u32::from(self.addr) & m
    }
}

/// What cdra does with client traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A standard relay agent (RFC 1542, RFC 2131 4.1, RFC 3046).
    Relay,
    /// The paper's proxying caching relay (4.1): cdra is the clients' server.
    Proxy,
    /// The paper's spoofing caching relay (4.2): on the router, answering as the real
    /// server and intercepting client unicasts to it.
    Spoof,
    /// The paper's address-pooling caching relay (4.3), with an unmodified server: proxy
    /// mode plus a pool of addresses leased ahead under cdra's own identities, for the
    /// clients the servers cannot serve (`[pool]`).
    Pool,
}

/// When pool addresses are given to new clients (`[pool] assign`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolAssign {
    /// When the servers cannot serve: no OFFER within `fallback_after`, or every server
    /// known to be down. Pool clients move onto leases of their own when the servers
    /// answer again.
    Outage,
    /// At once, to every new client (the paper's pure pooling CDRA): the servers see only
    /// the pool's upkeep.
    Always,
}

/// Address-pooling settings (`[pool]`, paper 4.3).
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// Free addresses kept leased per downstream interface.
    pub size: usize,
    /// When they are given out.
    pub assign: PoolAssign,
    /// How long a new client's DISCOVER waits for a server's OFFER before the pool answers
    /// (`assign = outage`).
    pub fallback_after: Duration,
    /// Lease a pool client gets from us.
    pub client_lease: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            size: 8,
            assign: PoolAssign::Outage,
            fallback_after: Duration::from_secs(2),
            client_lease: Duration::from_secs(600),
        }
    }
}

/// How requests are spread over servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerSelection {
    /// Every request to every server (ISC dhcrelay's behaviour).
    All,
    /// Every request to the first server that is answering; on to the next when it stops.
    Failover,
}

/// What to do with a request that already carries option 82.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Option82Policy {
    /// Forward it unchanged; do not add ours.
    Forward,
    /// Remove it and insert ours (when inserting).
    Replace,
    /// Drop the request.
    Drop,
}

/// Relay Agent Information (option 82) settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Option82Config {
    /// Insert option 82 into requests (circuit-id always, the rest as configured).
    pub insert: bool,
    /// Agent Remote ID sub-option, when set (a link's own [`Downstream::remote_id`] comes
    /// first).
    pub remote_id: Option<Vec<u8>>,
    /// What to do with requests that already carry option 82.
    pub policy: Option82Policy,
    /// RFC 3527 Link Selection sub-option: the downstream interface's address (as ISC
    /// dhcrelay and SONiC send it; a server selects the subnet containing it). Always
    /// added on a link with a [`Downstream::source_address`].
    pub link_selection: bool,
    /// RFC 5107 Server Identifier Override sub-option: the downstream interface's address.
    pub server_id_override: bool,
    /// RFC 6607 Virtual Subnet Selection sub-option (151) and its Control (152): the VRF
    /// the downstream interface is enslaved to (type 0, its name), or the global VPN (type
    /// 255) for an interface in the default VRF.
    pub vss: bool,
    /// RFC 5010 Relay Agent Flags sub-option (10): whether the client's message reached
    /// us as a unicast.
    pub flags: bool,
}

impl Default for Option82Config {
    fn default() -> Self {
        Option82Config {
            insert: false,
            remote_id: None,
            policy: Option82Policy::Forward,
            link_selection: false,
            server_id_override: false,
            vss: false,
            flags: false,
        }
    }
}

/// A client-facing interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downstream {
    /// Interface name (for logs and the default circuit-id).
    pub name: String,
    /// Kernel interface index.
    pub ifindex: u32,
    /// The address used as giaddr and as the source of replies; its prefix is the subnet
    /// served on this link.
    pub address: Ipv4Net,
    /// Every IPv4 address of the interface (a reply to any of them is ours).
    pub all_addresses: Vec<Ipv4Addr>,
    /// The interface's MAC address (ARP probes, proxy mode).
    pub mac: Option<[u8; 6]>,
    /// Agent Circuit ID sub-option value (default: the interface name).
    pub circuit_id: Vec<u8>,
    /// Agent Remote ID sub-option value for this link (`None`: `option82.remote_id`).
    pub remote_id: Option<Vec<u8>>,
    /// The "source interface" address (SONiC's `source_interface`, ISC dhcrelay's `-U`):
    /// put in giaddr instead of `address` when we add option 82 to a request, with the
    /// link selection sub-option naming `address` (RFC 3527), so that the servers reach us
    /// at an address of their own VRF or network; their replies to it are ours. `None`:
    /// giaddr is `address`.
    pub source_address: Option<Ipv4Addr>,
    /// The VRF device the interface is enslaved to (its name), `None` in the default VRF
    /// (the VSS sub-option names it).
    pub vrf: Option<String>,
    /// RFC 3046 2.1: requests with giaddr 0 and option 82 are accepted only from trusted
    /// circuits.
    pub trusted: bool,
    /// Whether the link is usable now ([`crate::Engine::set_link`]).
    pub state: LinkState,
}

impl Downstream {
    /// A link that is up, at `address` (its only address), with the defaults the
    /// configuration file gives: the name as circuit id, no remote id, no source interface,
    /// the default VRF, not trusted.
    pub fn up(name: &str, ifindex: u32, address: Ipv4Net, mac: Option<[u8; 6]>) -> Self {
        Downstream {
            name: name.to_string(),
            ifindex,
            address,
            all_addresses: vec![address.addr],
            mac,
            circuit_id: name.as_bytes().to_vec(),
            remote_id: None,
            source_address: None,
            vrf: None,
            trusted: false,
            state: LinkState::Up,
        }
    }
}

/// Where a configured downstream interface is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkState {
    /// It exists, is up and has its IPv4 address: clients on it are served.
    #[default]
    Up,
    /// Configured, but it does not exist (yet), is down or has no IPv4 address. Nothing
    /// arrives from it; its records and pool entries are kept (a flap loses nothing), no
    /// short lease lapses on it, and its pool is not refilled. `ifindex`, `address` and
    /// `mac` are the last known (0 and 0.0.0.0/32 if it never was up).
    Waiting,
    /// No longer configured (after a reload). Its slot stays, so that every other link
    /// keeps its index; its records and pool entries are gone. A reload that configures
    /// it again reuses the slot.
    Removed,
}

impl Downstream {
    /// The address this link's first-hop requests carry in giaddr when option 82 is
    /// added: the source address if there is one, else the link's own.
    pub fn giaddr(&self) -> Ipv4Addr {
        self.source_address.unwrap_or(self.address.addr)
    }

    /// Is `addr` one this link's replies come to (one of its addresses, or its source
    /// address)?
    pub fn owns_giaddr(&self, addr: Ipv4Addr) -> bool {
        self.all_addresses.contains(&addr) || self.source_address == Some(addr)
    }
}

impl LinkState {
    /// Its name in logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            LinkState::Up => "up",
            LinkState::Waiting => "waiting",
            LinkState::Removed => "removed",
        }
    }
}

/// How one OFFER is chosen when several servers answer a DISCOVER (paper Appendix B,
/// "Choosing the optimal OFFER": a proxy can pass only one OFFER per DISCOVER).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferChoice {
    /// The first OFFER to arrive (the paper's FCFS).
    First,
    /// The OFFER with the longest lease among those arriving within the offer window.
    LongestLease,
    /// Spread clients over the servers: each client is steered to one server by a hash of
    /// its identity; that server's OFFER is taken if it arrives within the window, else
    /// the first.
    Spread,
}

/// Which probes are sent before a local ACK (paper 3.2), a paper 5.7 OFFER, a pool OFFER and
/// the release of a lapsed lease (paper 3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IcmpProbe {
    /// An ARP probe on a link with a MAC address, an ICMP echo only on a link without one.
    /// On the client's link ARP finds every host an echo could (the echo itself waits for
    /// the kernel's ARP resolution of the address, so a host that does not answer ARP never
    /// receives it), and more (hosts that drop echo requests); the echo adds a neighbour
    /// table entry and the kernel's own ARP requests per probe, and under a storm the
    /// kernel refuses most of them.
    #[default]
    Auto,
    /// An ICMP echo with every probe, besides the ARP probe (cdra before issue 14).
    Always,
}

/// Proxy-mode settings (paper sections 3 and 5).
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    /// Paper 3.1: in a "safe network" the precautions (probe before ACK, renew before
    /// ACKing a REBIND) are not needed and are turned off.
    pub safe_network: bool,
    /// Paper 5.6: a record whose configuration was last refreshed by a server longer ago
    /// than this is deleted (default 9 days).
    pub max_age: Duration,
    /// Which OFFER reaches the client when several servers answer.
    pub offer_choice: OfferChoice,
    /// How long OFFERs are collected for `LongestLease` and `Spread`.
    pub offer_window: Duration,
    /// How long a probe waits for an answer before the address counts as free.
    pub probe_timeout: Duration,
    /// Whether probes include an ICMP echo everywhere or only where ARP is impossible.
    pub icmp_probe: IcmpProbe,
    /// Most client records held; beyond it the least recently seen are evicted (counted).
    pub max_clients: usize,
    /// Most probes in flight; beyond it a request needing a probe is forwarded instead, or
    /// dropped when no server answers (the client retransmits).
    pub max_pending_probes: usize,
    /// Most answers to renewals held back at once (`renew_reply_delay`); beyond it an
    /// answer is sent at once (counted).
    pub max_held_replies: usize,
    /// Most DISCOVERs collecting OFFERs at once (`longest_lease`, `spread`); beyond it the
    /// first OFFER is passed on (counted).
    pub max_offer_windows: usize,
    /// A local answer needs at least this much of the server's lease left.
    pub min_lease_left: Duration,
    /// Issue 4: lease given to clients (None: what is left of the server's lease).
    pub client_lease: Option<Duration>,
    /// How long a local ACK to a unicast RENEW is held back (0: not at all). busybox
    /// udhcpc sends its renewal from a socket it closes ~0.2 ms later; a faster answer is
    /// lost with that socket.
    pub renew_reply_delay: Duration,
    /// Seed for the engine's own pseudo-random choices (eviction sampling, probe
    /// identifiers, the xids of its own messages): the binary draws it from the operating
    /// system at start-up so an outsider cannot predict them; tests fix it so runs are
    /// reproducible.
    pub seed: u64,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            safe_network: false,
            max_age: Duration::from_secs(9 * 24 * 3600),
            offer_choice: OfferChoice::First,
            offer_window: Duration::from_millis(300),
            probe_timeout: Duration::from_millis(500),
            icmp_probe: IcmpProbe::Auto,
            max_clients: 1_000_000,
            // About 640 bytes each in flight (crates/core/examples/probe_memory.rs), 20 MiB
            // at most: a storm of 65,000 INIT-REBOOTs a second at the default probe_timeout.
            max_pending_probes: 32_768,
            max_held_replies: 1024,
            max_offer_windows: 1024,
            min_lease_left: Duration::from_secs(10),
            client_lease: None,
            renew_reply_delay: Duration::from_millis(2),
            seed: 0x5eed_cd7a,
        }
    }
}

/// Bounds on what clients and servers can make the engine do or hold (`[limits]`; see
/// [`crate::limits`] and [`crate::transactions`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Requests per second of one client cdra has a record for, and its burst.
    pub client_rate: Rate,
    /// Requests per second per downstream interface from clients without a server-answered
    /// record (all requests in relay mode), and its burst.
    pub interface_rate: Rate,
    /// Most records still waiting for a server answer (a pool apart from the bound ones).
    pub pending_clients: usize,
    /// Most forwarded requests waiting for their reply; beyond it the oldest is forgotten.
    pub transactions: usize,
    /// How long a forwarded request waits for its reply: a later reply is not believed.
    pub reply_timeout: Duration,
    /// Most shared reply templates (paper 5.7, [`crate::templates`]); beyond it a reply keeps
    /// a template of its own.
    pub reply_templates: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            client_rate: Rate { per_second: 10, burst: 30 },
            interface_rate: Rate { per_second: 1000, burst: 5000 },
            pending_clients: 4096,
            transactions: 65_536,
            reply_timeout: Duration::from_secs(30),
            reply_templates: crate::templates::DEFAULT_MAX_TEMPLATES,
        }
    }
}

/// RFC 4388 leasequery settings (`[leasequery]`, [`crate::leasequery`]): refilling the
/// client table from the servers when it starts empty or a downstream interface is added,
/// and settling a record the engine doubts.
#[derive(Debug, Clone, PartialEq)]
pub struct LeasequeryConfig {
    /// Off unless asked for (a server must allow it: ISC dhcpd's `allow leasequery;`).
    pub enabled: bool,
    /// Queries per second, at most (token bucket; bursts of a tenth of a second's worth).
    pub rate: u32,
    /// The subnets whose addresses are queried, each on the downstream link whose subnet
    /// holds it; empty: every downstream link's own subnet.
    pub subnets: Vec<Ipv4Net>,
    /// Most queries waiting for an answer at once; the sweep waits for room beyond it.
    pub max_outstanding: usize,
    /// How long a query waits for its answer; a later answer is not believed.
    pub query_timeout: Duration,
    /// Queries in a row a server leaves unanswered before it counts as not answering
    /// leasequery (left alone until the next sweep).
    pub unanswered_limit: u32,
}

impl Default for LeasequeryConfig {
    fn default() -> Self {
        LeasequeryConfig {
            enabled: false,
            rate: 50,
            subnets: Vec::new(),
            max_outstanding: 64,
            query_timeout: Duration::from_secs(2),
            unanswered_limit: 3,
        }
    }
}

/// Everything the engine needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Relay or proxy.
    pub mode: Mode,
    /// Server addresses, in order of preference.
    pub servers: Vec<Ipv4Addr>,
    /// Client-facing interfaces.
    pub downstream: Vec<Downstream>,
    /// Server-facing interface indexes (requests arriving there are dropped).
    pub upstream: Vec<u32>,
    /// Our addresses on upstream interfaces (loop detection).
    pub upstream_addresses: Vec<Ipv4Addr>,
    /// Requests whose hops would exceed this are dropped (1..=16).
    pub max_hops: u8,
    /// How requests are spread over servers.
    pub server_selection: ServerSelection,
    /// Option 82 settings.
    pub option82: Option82Config,
    /// Largest DHCP payload sent to a server; option 82 is not added beyond it
    /// (RFC 3046 2.1).
    pub max_packet_size: usize,
    /// A server is considered down after this long without answering requests that
    /// expect an answer.
    pub server_timeout: Duration,
    /// How many unanswered requests (at least) make a server down.
    pub server_unanswered_limit: u32,
    /// How often a down server is tried again (failover mode).
    pub server_retry_interval: Duration,
    /// Proxy-mode settings (ignored in relay mode).
    pub proxy: ProxyConfig,
    /// Rate limits and bounds that apply in every mode.
    pub limits: Limits,
    /// Address-pooling settings (pool mode).
    pub pool: PoolConfig,
    /// RFC 4388 leasequery (caching modes).
    pub leasequery: LeasequeryConfig,
    /// RFC 8357: the UDP port our first-hop requests leave from when it is not 67 (the
    /// relay source port sub-option asks the server to answer there). The engine only
    /// marks those datagrams ([`crate::Destination::Server`]'s `relay_port`); the I/O
    /// layer owns the socket.
    pub source_port: Option<u16>,
}

impl EngineConfig {
    /// A relay-mode configuration with defaults for everything but the interfaces and
    /// servers.
    pub fn relay(servers: Vec<Ipv4Addr>, downstream: Vec<Downstream>, upstream: Vec<u32>) -> Self {
        EngineConfig {
            mode: Mode::Relay,
            servers,
            downstream,
            upstream,
            upstream_addresses: Vec::new(),
            max_hops: DEFAULT_MAX_HOPS,
            server_selection: ServerSelection::All,
            option82: Option82Config::default(),
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            server_timeout: Duration::from_secs(10),
            server_unanswered_limit: 3,
            server_retry_interval: Duration::from_secs(30),
            proxy: ProxyConfig::default(),
            limits: Limits::default(),
            pool: PoolConfig::default(),
            leasequery: LeasequeryConfig::default(),
            source_port: None,
        }
    }
}
