//! The client emulator: a table of clients, each with its own MAC (chaddr and Ethernet
//! source), and the exchanges they run: DORA, INIT-REBOOT, RENEW, RELEASE.
//!
//! It is sans-IO: the caller passes the time, hands in received frames and sends the frames
//! this puts in an [`Outbox`]. Guarantees:
//! * a client runs at most one exchange at a time; its xid is `(client index << 8) | seq`,
//!   where `seq` changes with every exchange, so a reply is matched to its exchange by xid
//!   and chaddr, and a reply to an earlier exchange is counted as late, never as a success;
//! * exchanges begin at the offered rate (token bucket, bucket of 5 ms of traffic; offered
//!   load the generator could not place is visible as `offered_rate` < `rate`), or, with
//!   rate 0, as fast as a window of outstanding exchanges allows;
//! * an exchange is dropped when a reply does not come within the timeout (after the
//!   configured retransmissions, none by default); latency runs from its first send to its
//!   final reply;
//! * ARP requests for an address a bound client holds are answered with that client's MAC
//!   (a client in DORA or INIT-REBOOT holds no address yet and does not answer).

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use cdra_wire::options::OptionCode;
use cdra_wire::{Message, MessageBuilder, MessageType, Op};

use crate::frame::{
    finish_udp_frame, parse_arp_request, parse_udp, write_arp_reply, UdpFrameSpec, BROADCAST_MAC, CLIENT_PORT,
    DHCP_OFFSET, FRAME_CAP, SERVER_PORT,
};
use crate::report::{KindStats, PacketCounters};

/// Largest client table (the xid holds 24 bits of client index).
pub const MAX_CLIENTS: u32 = 1 << 24;
/// Parameter request list sent in DISCOVER and REQUEST (what dhclient asks for, roughly).
const PRL: [u8; 8] = [1, 3, 6, 15, 51, 54, 58, 59];
/// Most exchanges begun per `start_due` call, so receiving is interleaved with sending.
const MAX_STARTS_PER_CALL: usize = 256;

/// What a phase does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Fresh clients: DISCOVER, OFFER, REQUEST, ACK.
    Dora,
    /// Clients that hold a lease reboot: broadcast REQUEST with option 50 (RFC 2131 4.3.2).
    InitReboot,
    /// Clients renew at T1: REQUEST with ciaddr, unicast to their server-id.
    Renew,
    /// Clients release: RELEASE with ciaddr, unicast to their server-id; no reply.
    Release,
    /// A mixture (see [`MixWeights`]).
    Mix,
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "dora" => Ok(Scenario::Dora),
            "init-reboot" => Ok(Scenario::InitReboot),
            "renew" => Ok(Scenario::Renew),
            "release" => Ok(Scenario::Release),
            "mix" => Ok(Scenario::Mix),
            other => Err(format!("{other:?} is not one of dora, init-reboot, renew, release, mix")),
        }
    }
}

impl Scenario {
    /// The command-line name.
    pub fn label(self) -> &'static str {
        match self {
            Scenario::Dora => "dora",
            Scenario::InitReboot => "init-reboot",
            Scenario::Renew => "renew",
            Scenario::Release => "release",
            Scenario::Mix => "mix",
        }
    }
}

/// One exchange type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// DISCOVER..ACK.
    Dora = 0,
    /// REQUEST (option 50)..ACK.
    InitReboot = 1,
    /// REQUEST (ciaddr, unicast)..ACK.
    Renew = 2,
    /// RELEASE.
    Release = 3,
}

/// All exchange types, indexable by `Kind as usize`.
pub const KINDS: [Kind; 4] = [Kind::Dora, Kind::InitReboot, Kind::Renew, Kind::Release];

impl Kind {
    /// Report label.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Dora => "dora",
            Kind::InitReboot => "init-reboot",
            Kind::Renew => "renew",
            Kind::Release => "release",
        }
    }
}

/// One phase: a scenario at a rate for a time.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseSpec {
    /// Scenario.
    pub scenario: Scenario,
    /// Exchanges begun per second; 0 = as fast as the window allows.
    pub rate: f64,
    /// How long exchanges are begun.
    pub duration: Duration,
    /// For init-reboot, renew, release (and those parts of mix): use only the first N
    /// clients that got a lease. `None`: all.
    pub clients: Option<u32>,
}

impl FromStr for PhaseSpec {
    type Err = String;
    /// `SCENARIO:RATE:DURATION[:CLIENTS]`, e.g. `dora:2000:10s`, `renew:0:5s:500`.
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() < 3 || parts.len() > 4 {
            return Err(format!("{s:?}: expected SCENARIO:RATE:DURATION[:CLIENTS]"));
        }
        let scenario = parts[0].parse()?;
        let rate: f64 = parts[1].parse().map_err(|_| format!("{s:?}: rate {:?} is not a number", parts[1]))?;
        if !rate.is_finite() || rate < 0.0 {
            return Err(format!("{s:?}: rate must be >= 0"));
        }
        let duration = humantime::parse_duration(parts[2]).map_err(|e| format!("{s:?}: duration: {e}"))?;
        let clients = match parts.get(3) {
            Some(c) => Some(c.parse::<u32>().map_err(|_| format!("{s:?}: clients {c:?} is not a count"))?),
            None => None,
        };
        Ok(PhaseSpec { scenario, rate, duration, clients })
    }
}

/// Relative weights of the exchange types in the `mix` scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MixWeights {
    /// DORA of a new (or released) client.
    pub dora: u32,
    /// INIT-REBOOT.
    pub init_reboot: u32,
    /// RENEW.
    pub renew: u32,
    /// RELEASE.
    pub release: u32,
}

impl Default for MixWeights {
    /// Mostly renewals (every bound client renews at T1), some reboots, some new clients,
    /// a few releases.
    fn default() -> Self {
        MixWeights { dora: 15, init_reboot: 20, renew: 60, release: 5 }
    }
}

impl FromStr for MixWeights {
    type Err = String;
    /// `dora=15,init-reboot=20,renew=60,release=5` (missing types weigh 0).
    fn from_str(s: &str) -> Result<Self, String> {
        let mut w = MixWeights { dora: 0, init_reboot: 0, renew: 0, release: 0 };
        for item in s.split(',').filter(|i| !i.trim().is_empty()) {
            let (k, v) = item.split_once('=').ok_or_else(|| format!("{item:?}: expected TYPE=WEIGHT"))?;
            let v: u32 = v.trim().parse().map_err(|_| format!("{item:?}: weight is not a number"))?;
            match k.trim() {
                "dora" => w.dora = v,
                "init-reboot" => w.init_reboot = v,
                "renew" => w.renew = v,
                "release" => w.release = v,
                other => return Err(format!("{other:?} is not one of dora, init-reboot, renew, release")),
            }
        }
        if w.dora + w.init_reboot + w.renew + w.release == 0 {
            return Err("all mix weights are 0".into());
        }
        Ok(w)
    }
}

/// Generator settings.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// Size of the client table.
    pub clients: u32,
    /// Index of the first client: client `i` has MAC 02:PP:(first+i as 4 bytes).
    pub first_client: u32,
    /// Second byte of every client MAC.
    pub mac_prefix: u8,
    /// Send option 61 = 01 + MAC (as udhcpc does).
    pub client_id: bool,
    /// Set the BROADCAST flag in DISCOVER/REQUEST.
    pub broadcast_flag: bool,
    /// Wait this long for each reply.
    pub timeout: Duration,
    /// Retransmissions of a message before the exchange counts as dropped.
    pub retries: u8,
    /// Outstanding exchanges with rate 0.
    pub window: usize,
    /// Ethernet destination of unicast renewals/releases; default the source MAC of the
    /// ACK that gave the lease (the router or relay in front of the client).
    pub router_mac: Option<[u8; 6]>,
    /// Mix weights.
    pub mix: MixWeights,
    /// Random seed (mix choices).
    pub seed: u64,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            clients: 10_000,
            first_client: 0,
            mac_prefix: 0xcd,
            client_id: false,
            broadcast_flag: false,
            timeout: Duration::from_secs(2),
            retries: 0,
            window: 256,
            router_mac: None,
            mix: MixWeights::default(),
            seed: 1,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Lease {
    addr: Ipv4Addr,
    server_id: Ipv4Addr,
    /// Ethernet source of the ACK: where unicasts to the server go first.
    gw_mac: [u8; 6],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// DISCOVER sent, waiting for an OFFER.
    Selecting,
    /// REQUEST sent, waiting for an ACK or NAK.
    Requesting,
}

#[derive(Debug, Clone, Copy)]
struct Busy {
    kind: Kind,
    stage: Stage,
    started: Instant,
    tries: u8,
    /// DORA: the offered address and the offering server.
    offer: Option<(Ipv4Addr, Ipv4Addr)>,
    /// Token of the timer armed for the message in flight; older timers are stale.
    timer: u64,
}

#[derive(Debug, Clone)]
struct Client {
    mac: [u8; 6],
    lease: Option<Lease>,
    busy: Option<Busy>,
    seq: u8,
    /// In `leased_order` already.
    listed: bool,
}

#[derive(Debug, Clone, Copy)]
struct Timer {
    deadline: Instant,
    idx: u32,
    /// Unique per armed message (the 8-bit xid sequence wraps; this does not).
    token: u64,
}

/// Outgoing frames of one kind, in fixed-size slots (no allocation once warm).
#[derive(Debug, Default)]
pub struct FrameQueue {
    buf: Vec<u8>,
    lens: Vec<usize>,
}

impl FrameQueue {
    pub(crate) fn slot(&mut self) -> &mut [u8] {
        let i = self.lens.len();
        if self.buf.len() < (i + 1) * FRAME_CAP {
            self.buf.resize((i + 1) * FRAME_CAP, 0);
        }
        &mut self.buf[i * FRAME_CAP..(i + 1) * FRAME_CAP]
    }

    pub(crate) fn commit(&mut self, len: usize) {
        if len > 0 {
            self.lens.push(len);
        }
    }

    /// Queues a copy of `frame` (truncated to [`FRAME_CAP`]).
    pub fn push(&mut self, frame: &[u8]) {
        let n = frame.len().min(FRAME_CAP);
        self.slot()[..n].copy_from_slice(&frame[..n]);
        self.commit(n);
    }

    /// Queued frames.
    pub fn frames(&self) -> Vec<&[u8]> {
        self.lens.iter().enumerate().map(|(i, &n)| &self.buf[i * FRAME_CAP..i * FRAME_CAP + n]).collect()
    }

    /// Number of queued frames.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Forgets the queued frames (after sending them).
    pub fn clear(&mut self) {
        self.lens.clear();
    }
}

/// Frames to send: DHCP frames go out on the IPv4 socket, ARP replies on the ARP socket.
#[derive(Debug, Default)]
pub struct Outbox {
    /// DHCP (IPv4) frames.
    pub ip: FrameQueue,
    /// ARP frames.
    pub arp: FrameQueue,
}

/// The message a client sends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Msg {
    Discover,
    Selecting { addr: Ipv4Addr, server_id: Ipv4Addr },
    InitReboot { addr: Ipv4Addr },
    Renew { lease: Lease },
    Release { lease: Lease },
}

/// What a finished phase hands back for the report.
#[derive(Debug, Default)]
pub struct PhaseStats {
    /// Per exchange type, indexed by `Kind as usize`.
    pub kinds: [KindStats; 4],
    /// DISCOVER to OFFER, microseconds.
    pub offer_latency_us: Vec<u32>,
    /// Packet counters.
    pub packets: PacketCounters,
    /// Exchanges that could not begin for lack of an idle client.
    pub no_idle_client: u64,
    /// Time from the phase start to the last send / to the end of the drain.
    pub send_window: Duration,
    /// Whole phase.
    pub elapsed: Duration,
}

/// The emulator.
#[derive(Debug)]
pub struct Generator {
    opts: GenOptions,
    clients: Vec<Client>,
    /// Bound clients by address (for ARP).
    by_addr: HashMap<Ipv4Addr, u32>,
    /// Clients in the order they first got a lease.
    leased_order: Vec<u32>,
    fresh: usize,
    rr_leased: usize,
    rr_any: usize,
    rng: u64,
    timers: VecDeque<Timer>,
    next_token: u64,
    outstanding: usize,
    // Current phase.
    spec: PhaseSpec,
    phase_start: Instant,
    send_end: Instant,
    credit: f64,
    last_credit: Instant,
    stats: PhaseStats,
}

/// The MAC of client `i`: locally administered, unicast.
pub fn client_mac(prefix: u8, i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, prefix, b[0], b[1], b[2], b[3]]
}

impl Generator {
    /// A table of `opts.clients` idle clients without leases.
    pub fn new(opts: GenOptions, now: Instant) -> Self {
        let n = opts.clients.min(MAX_CLIENTS - 1);
        let clients = (0..n)
            .map(|i| Client {
                mac: client_mac(opts.mac_prefix, opts.first_client.wrapping_add(i)),
                lease: None,
                busy: None,
                seq: 0,
                listed: false,
            })
            .collect();
        let rng = opts.seed.max(1);
        Generator {
            opts,
            clients,
            by_addr: HashMap::new(),
            leased_order: Vec::new(),
            fresh: 0,
            rr_leased: 0,
            rr_any: 0,
            rng,
            timers: VecDeque::new(),
            next_token: 0,
            outstanding: 0,
            spec: PhaseSpec { scenario: Scenario::Dora, rate: 0.0, duration: Duration::ZERO, clients: None },
            phase_start: now,
            send_end: now,
            credit: 0.0,
            last_credit: now,
            stats: PhaseStats::default(),
        }
    }

    /// Clients that hold a lease now.
    pub fn leased(&self) -> usize {
        self.clients.iter().filter(|c| c.lease.is_some()).count()
    }

    /// Every client holding a lease now, in the order they first got one: its MAC, its
    /// address and the server identifier it knows (what `run --save-leases` writes).
    pub fn leases(&self) -> Vec<([u8; 6], Ipv4Addr, Ipv4Addr)> {
        self.leased_order
            .iter()
            .filter_map(|&i| self.clients.get(i as usize))
            .filter_map(|c| c.lease.map(|l| (c.mac, l.addr, l.server_id)))
            .collect()
    }

    /// Starts a phase at `now`: counters reset, exchanges begin from now on.
    pub fn begin_phase(&mut self, spec: PhaseSpec, now: Instant) {
        self.stats = PhaseStats::default();
        self.phase_start = now;
        self.send_end = now + spec.duration;
        self.credit = 0.0;
        self.last_credit = now;
        self.spec = spec;
    }

    /// Ends sending now (e.g. on a signal); the phase then drains.
    pub fn stop_sending(&mut self, now: Instant) {
        if now < self.send_end {
            self.send_end = now;
        }
    }

    fn drain_deadline(&self) -> Instant {
        self.send_end + self.opts.timeout * (u32::from(self.opts.retries) + 1) + Duration::from_millis(20)
    }

    /// True once sending is over and every exchange has ended (or the drain time passed).
    pub fn phase_done(&self, now: Instant) -> bool {
        now >= self.send_end && (self.outstanding == 0 || now >= self.drain_deadline())
    }

    /// Ends the phase: exchanges still waiting count as dropped. Returns the counters.
    pub fn finish_phase(&mut self, now: Instant) -> PhaseStats {
        for c in &mut self.clients {
            if let Some(b) = c.busy.take() {
                self.stats.kinds[b.kind as usize].dropped += 1;
            }
        }
        // Clients that still hold a lease are bound again (the ones that were rebooting
        // gave up, as a real client falls back eventually; keep their records usable).
        self.by_addr.clear();
        for (i, c) in self.clients.iter().enumerate() {
            if let Some(l) = c.lease {
                self.by_addr.insert(l.addr, i as u32);
            }
        }
        self.outstanding = 0;
        self.timers.clear();
        let mut stats = std::mem::take(&mut self.stats);
        stats.send_window = self.send_end.saturating_duration_since(self.phase_start);
        stats.elapsed = now.saturating_duration_since(self.phase_start);
        stats
    }

    /// How long the caller may wait before calling again (0: call again now).
    pub fn next_wakeup(&self, now: Instant) -> Duration {
        let mut wait = Duration::from_millis(10);
        if now < self.send_end {
            if self.spec.rate > 0.0 {
                let need = (1.0 - self.credit).max(0.0) / self.spec.rate;
                wait = wait.min(Duration::from_secs_f64(need));
            } else if self.outstanding < self.opts.window {
                return Duration::ZERO;
            }
            wait = wait.min(self.send_end - now);
        } else {
            wait = wait.min(self.drain_deadline().saturating_duration_since(now));
        }
        if let Some(t) = self.timers.front() {
            wait = wait.min(t.deadline.saturating_duration_since(now));
        }
        wait
    }

    /// Begins the exchanges that are due at `now`. Returns how many began.
    pub fn start_due(&mut self, now: Instant, out: &mut Outbox) -> usize {
        let n = if self.spec.rate > 0.0 {
            // Credit accrues up to the end of the window, so a window of D seconds offers
            // rate * D exchanges however coarse the caller's wake-ups are.
            let t = now.min(self.send_end);
            if t <= self.last_credit && now >= self.send_end {
                return 0;
            }
            let dt = t.saturating_duration_since(self.last_credit).as_secs_f64();
            self.last_credit = t;
            let burst = (self.spec.rate * 0.005).max(64.0);
            self.credit = (self.credit + dt * self.spec.rate).min(burst);
            let n = (self.credit.floor() as usize).min(MAX_STARTS_PER_CALL);
            self.credit -= n as f64;
            n
        } else if now < self.send_end {
            self.opts.window.saturating_sub(self.outstanding).min(MAX_STARTS_PER_CALL)
        } else {
            return 0;
        };
        let mut began = 0;
        for _ in 0..n {
            if self.start_one(now, out) {
                began += 1;
            } else {
                self.stats.no_idle_client += 1;
                if self.spec.rate <= 0.0 {
                    break;
                }
            }
        }
        began
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn choose_kind(&mut self) -> Kind {
        match self.spec.scenario {
            Scenario::Dora => Kind::Dora,
            Scenario::InitReboot => Kind::InitReboot,
            Scenario::Renew => Kind::Renew,
            Scenario::Release => Kind::Release,
            Scenario::Mix => {
                let w = self.opts.mix;
                let total = u64::from(w.dora + w.init_reboot + w.renew + w.release).max(1);
                let mut r = self.next_rand() % total;
                for (k, wk) in [(Kind::Renew, w.renew), (Kind::InitReboot, w.init_reboot), (Kind::Release, w.release)] {
                    if r < u64::from(wk) {
                        return k;
                    }
                    r -= u64::from(wk);
                }
                Kind::Dora
            }
        }
    }

    /// A client for a DORA: the next never-used one, else any idle client.
    fn pick_for_dora(&mut self) -> Option<usize> {
        while self.fresh < self.clients.len() {
            let i = self.fresh;
            self.fresh += 1;
            if self.clients[i].busy.is_none() {
                return Some(i);
            }
        }
        let n = self.clients.len();
        if n == 0 {
            return None;
        }
        // Prefer clients without a lease (released ones), then any idle one.
        let mut any = None;
        for _ in 0..n.min(1024) {
            let i = self.rr_any % n;
            self.rr_any = self.rr_any.wrapping_add(1);
            let c = &self.clients[i];
            if c.busy.is_none() {
                if c.lease.is_none() {
                    return Some(i);
                }
                any.get_or_insert(i);
            }
        }
        any
    }

    /// An idle client with a lease, among the first `spec.clients` that got one.
    fn pick_leased(&mut self) -> Option<usize> {
        let limit = self.spec.clients.map(|c| c as usize).unwrap_or(usize::MAX);
        let n = self.leased_order.len().min(limit);
        if n == 0 {
            return None;
        }
        for _ in 0..n.min(4096) {
            let i = self.leased_order[self.rr_leased % n] as usize;
            self.rr_leased = self.rr_leased.wrapping_add(1);
            let c = &self.clients[i];
            if c.lease.is_some() && c.busy.is_none() {
                return Some(i);
            }
        }
        None
    }

    fn start_one(&mut self, now: Instant, out: &mut Outbox) -> bool {
        let mut kind = self.choose_kind();
        let mut idx = match kind {
            Kind::Dora => self.pick_for_dora(),
            _ => self.pick_leased(),
        };
        if idx.is_none() && self.spec.scenario == Scenario::Mix && kind != Kind::Dora {
            kind = Kind::Dora;
            idx = self.pick_for_dora();
        }
        let Some(i) = idx else {
            return false;
        };
        let c = &mut self.clients[i];
        c.seq = c.seq.wrapping_add(1);
        let lease = c.lease;
        let msg = match (kind, lease) {
            (Kind::Dora, _) => {
                // A client in INIT has no address.
                if let Some(l) = c.lease.take() {
                    self.by_addr.remove(&l.addr);
                }
                Msg::Discover
            }
            (Kind::InitReboot, Some(l)) => {
                // Rebooting: the address is not configured until the ACK.
                self.by_addr.remove(&l.addr);
                Msg::InitReboot { addr: l.addr }
            }
            (Kind::Renew, Some(l)) => Msg::Renew { lease: l },
            (Kind::Release, Some(l)) => Msg::Release { lease: l },
            _ => return false,
        };
        let stage = if kind == Kind::Dora { Stage::Selecting } else { Stage::Requesting };
        self.stats.kinds[kind as usize].started += 1;
        self.send(i, msg, out);
        if kind == Kind::Release {
            // RFC 2131 4.4.6: no reply; the client forgets its lease.
            let c = &mut self.clients[i];
            if let Some(l) = c.lease.take() {
                self.by_addr.remove(&l.addr);
            }
            self.stats.kinds[kind as usize].completed += 1;
            return true;
        }
        let timer = self.arm(now, i);
        self.clients[i].busy = Some(Busy { kind, stage, started: now, tries: 0, offer: None, timer });
        self.outstanding += 1;
        true
    }

    /// Arms the reply timeout of the message client `i` just sent; returns its token.
    fn arm(&mut self, now: Instant, i: usize) -> u64 {
        self.next_token += 1;
        let token = self.next_token;
        self.timers.push_back(Timer { deadline: now + self.opts.timeout, idx: i as u32, token });
        token
    }

    fn xid(&self, i: usize) -> u32 {
        ((i as u32) << 8) | u32::from(self.clients[i].seq)
    }

    /// Builds and queues the frame for `msg` from client `i`.
    fn send(&mut self, i: usize, msg: Msg, out: &mut Outbox) {
        let xid = self.xid(i);
        let c = &self.clients[i];
        let mac = c.mac;
        let slot = out.ip.slot();
        let len = build_frame(slot, &self.opts, mac, xid, msg).unwrap_or(0);
        out.ip.commit(len);
        if len > 0 {
            self.stats.packets.sent += 1;
        } else {
            self.stats.packets.send_errors += 1;
        }
    }

    /// Handles retransmissions and timeouts due at `now`.
    pub fn expire(&mut self, now: Instant, out: &mut Outbox) {
        while let Some(t) = self.timers.front().copied() {
            if t.deadline > now {
                break;
            }
            self.timers.pop_front();
            let i = t.idx as usize;
            let Some(c) = self.clients.get(i) else { continue };
            let Some(b) = c.busy else { continue };
            if b.timer != t.token {
                continue; // answered, or already retransmitted
            }
            if b.tries < self.opts.retries {
                let (kind, stage, offer) = (b.kind, b.stage, b.offer);
                let lease = c.lease;
                let msg = match (kind, stage, offer, lease) {
                    (Kind::Dora, Stage::Selecting, _, _) => Some(Msg::Discover),
                    (Kind::Dora, Stage::Requesting, Some((addr, server_id)), _) => {
                        Some(Msg::Selecting { addr, server_id })
                    }
                    (Kind::InitReboot, _, _, Some(l)) => Some(Msg::InitReboot { addr: l.addr }),
                    (Kind::Renew, _, _, Some(l)) => Some(Msg::Renew { lease: l }),
                    _ => None,
                };
                if let Some(msg) = msg {
                    self.stats.kinds[kind as usize].retransmits += 1;
                    self.send(i, msg, out);
                    let timer = self.arm(now, i);
                    self.clients[i].busy = Some(Busy { tries: b.tries + 1, timer, ..b });
                    continue;
                }
            }
            let kind = b.kind;
            self.clients[i].busy = None;
            self.outstanding -= 1;
            // A client whose INIT-REBOOT got no answer keeps its lease record (usable by
            // later phases) but answers no ARP until the phase ends.
            self.stats.kinds[kind as usize].dropped += 1;
        }
    }

    /// Handles one received frame (a DHCP reply to port 68).
    pub fn on_frame(&mut self, now: Instant, frame: &[u8], out: &mut Outbox) {
        self.stats.packets.received += 1;
        let Some(f) = parse_udp(frame) else {
            self.stats.packets.stray += 1;
            return;
        };
        if f.dst_port != CLIENT_PORT {
            self.stats.packets.stray += 1;
            return;
        }
        let Ok(m) = Message::new_checked(f.payload) else {
            self.stats.packets.stray += 1;
            return;
        };
        if m.op() != Op::BootReply {
            self.stats.packets.stray += 1;
            return;
        }
        let xid = m.xid();
        let i = (xid >> 8) as usize;
        let seq = xid as u8;
        let Some(c) = self.clients.get_mut(i) else {
            self.stats.packets.stray += 1;
            return;
        };
        if m.chaddr().get(..6) != Some(&c.mac[..]) {
            self.stats.packets.stray += 1;
            return;
        }
        if seq != c.seq {
            self.stats.packets.late += 1;
            return;
        }
        let Some(b) = c.busy else {
            // Same exchange, already finished: a second answer. (A dropped exchange that is
            // answered after its timeout also lands here; it was counted as dropped.)
            self.stats.packets.duplicates += 1;
            return;
        };
        let elapsed_us =
            |since: Instant| now.saturating_duration_since(since).as_micros().min(u128::from(u32::MAX)) as u32;
        match (m.message_type(), b.stage) {
            (Some(MessageType::Offer), Stage::Selecting) if b.kind == Kind::Dora => {
                let addr = m.yiaddr();
                let server_id = m.server_identifier().unwrap_or(f.src_ip);
                self.stats.offer_latency_us.push(elapsed_us(b.started));
                self.send(i, Msg::Selecting { addr, server_id }, out);
                let timer = self.arm(now, i);
                self.clients[i].busy =
                    Some(Busy { stage: Stage::Requesting, tries: 0, offer: Some((addr, server_id)), timer, ..b });
            }
            (Some(MessageType::Ack), Stage::Requesting) => {
                let previous = c.lease;
                let addr = match m.yiaddr() {
                    a if !a.is_unspecified() => a,
                    _ => previous.map(|l| l.addr).unwrap_or(Ipv4Addr::UNSPECIFIED),
                };
                let server_id = m
                    .server_identifier()
                    .or(b.offer.map(|o| o.1))
                    .or(previous.map(|l| l.server_id))
                    .unwrap_or(f.src_ip);
                c.lease = Some(Lease { addr, server_id, gw_mac: f.src_mac });
                c.busy = None;
                let first = !c.listed;
                c.listed = true;
                if let Some(p) = previous {
                    if p.addr != addr {
                        self.by_addr.remove(&p.addr);
                    }
                }
                self.by_addr.insert(addr, i as u32);
                if first {
                    self.leased_order.push(i as u32);
                }
                self.outstanding -= 1;
                let k = &mut self.stats.kinds[b.kind as usize];
                k.completed += 1;
                k.latency_us.push(elapsed_us(b.started));
            }
            (Some(MessageType::Nak), _) => {
                if let Some(l) = c.lease.take() {
                    self.by_addr.remove(&l.addr);
                }
                c.busy = None;
                self.outstanding -= 1;
                self.stats.kinds[b.kind as usize].naks += 1;
            }
            (Some(MessageType::Offer), Stage::Requesting) => self.stats.packets.duplicates += 1,
            _ => self.stats.packets.stray += 1,
        }
    }

    /// Handles one received ARP frame: answers for a bound client's address.
    pub fn on_arp(&mut self, frame: &[u8], out: &mut Outbox) {
        let Some(req) = parse_arp_request(frame) else { return };
        let Some(&i) = self.by_addr.get(&req.target_ip) else { return };
        let Some(c) = self.clients.get(i as usize) else { return };
        let slot = out.arp.slot();
        let n = write_arp_reply(slot, c.mac, req.target_ip, &req);
        out.arp.commit(n);
        self.stats.packets.arp_replies += 1;
    }
}

/// Writes the frame of `msg` from the client with `mac` into `slot`; returns its length.
pub(crate) fn build_frame(slot: &mut [u8], opts: &GenOptions, mac: [u8; 6], xid: u32, msg: Msg) -> Option<usize> {
    let dhcp = slot.get_mut(DHCP_OFFSET..)?;
    let mt = match msg {
        Msg::Discover => MessageType::Discover,
        Msg::Selecting { .. } | Msg::InitReboot { .. } | Msg::Renew { .. } => MessageType::Request,
        Msg::Release { .. } => MessageType::Release,
    };
    let mut b = MessageBuilder::new(dhcp, Op::BootRequest, Some(mt)).ok()?;
    b.xid(xid).chaddr(1, &mac);
    let broadcast_ok = matches!(msg, Msg::Discover | Msg::Selecting { .. } | Msg::InitReboot { .. });
    if opts.broadcast_flag && broadcast_ok {
        b.flags(0x8000);
    }
    let mut cid = [0u8; 7];
    cid[0] = 1; // RFC 2132 9.14: type 1 (Ethernet) + MAC
    cid[1..].copy_from_slice(&mac);
    match msg {
        Msg::Discover => {}
        // RFC 2131 4.3.2 SELECTING: option 50 and 54, ciaddr 0.
        Msg::Selecting { addr, server_id } => {
            b.options().option_addr(OptionCode::REQUESTED_IP, addr).ok()?;
            b.options().option_addr(OptionCode::SERVER_ID, server_id).ok()?;
        }
        // INIT-REBOOT: option 50, no server identifier, ciaddr 0.
        Msg::InitReboot { addr } => {
            b.options().option_addr(OptionCode::REQUESTED_IP, addr).ok()?;
        }
        // RENEWING: ciaddr, no 50/54; unicast to the server.
        Msg::Renew { lease } => {
            b.ciaddr(lease.addr);
        }
        // RFC 2131 4.4.6: ciaddr and the server identifier.
        Msg::Release { lease } => {
            b.ciaddr(lease.addr);
            b.options().option_addr(OptionCode::SERVER_ID, lease.server_id).ok()?;
        }
    }
    if opts.client_id {
        b.options().option(OptionCode::CLIENT_ID, &cid).ok()?;
    }
    if !matches!(msg, Msg::Release { .. }) {
        b.options().option(OptionCode::PARAMETER_REQUEST_LIST, &PRL).ok()?;
    }
    let n = b.finish().ok()?;
    let spec = match msg {
        Msg::Renew { lease } | Msg::Release { lease } => UdpFrameSpec {
            dst_mac: opts.router_mac.unwrap_or(lease.gw_mac),
            src_mac: mac,
            src_ip: lease.addr,
            dst_ip: lease.server_id,
            src_port: CLIENT_PORT,
            dst_port: SERVER_PORT,
        },
        _ => UdpFrameSpec {
            dst_mac: BROADCAST_MAC,
            src_mac: mac,
            src_ip: Ipv4Addr::UNSPECIFIED,
            dst_ip: Ipv4Addr::BROADCAST,
            src_port: CLIENT_PORT,
            dst_port: SERVER_PORT,
        },
    };
    finish_udp_frame(slot, &spec, n).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::ETH_HLEN;
    use crate::reflect::{answer, ReflectConfig};

    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    /// Runs a phase against the in-process reflector, with `lose` deciding (by sequence
    /// number of the frame) which client frames vanish.
    fn run_phase(g: &mut Generator, spec: PhaseSpec, t0: Instant, lose: &dyn Fn(u64) -> bool) -> (PhaseStats, Instant) {
        let cfg = ReflectConfig { server_ip: SERVER, server_mac: SERVER_MAC, lease_time: 3600 };
        let mut out = Outbox::default();
        let mut now = t0;
        g.begin_phase(spec, now);
        let mut n = 0u64;
        let mut reply = [0u8; FRAME_CAP];
        loop {
            g.expire(now, &mut out);
            g.start_due(now, &mut out);
            // Deliver every queued frame; replies may queue more (REQUEST after OFFER).
            while !out.ip.is_empty() {
                let frames: Vec<Vec<u8>> = out.ip.frames().iter().map(|f| f.to_vec()).collect();
                out.ip.clear();
                for f in frames {
                    n += 1;
                    if lose(n) {
                        continue;
                    }
                    if let Some(len) = answer(&f, &cfg, &mut reply) {
                        g.on_frame(now + Duration::from_micros(300), &reply[..len], &mut out);
                    }
                }
            }
            if g.phase_done(now) {
                break;
            }
            now += Duration::from_millis(1);
        }
        (g.finish_phase(now), now)
    }

    fn opts(clients: u32) -> GenOptions {
        GenOptions { clients, timeout: Duration::from_millis(50), ..GenOptions::default() }
    }

    fn phase(s: &str) -> PhaseSpec {
        s.parse().expect("phase spec")
    }

    #[test]
    fn phase_spec_parsing() {
        let p = phase("renew:2500:3s:500");
        assert_eq!(p.scenario, Scenario::Renew);
        assert_eq!(p.rate, 2500.0);
        assert_eq!(p.duration, Duration::from_secs(3));
        assert_eq!(p.clients, Some(500));
        assert!("dora:x:1s".parse::<PhaseSpec>().is_err());
        assert!("bogus:1:1s".parse::<PhaseSpec>().is_err());
        assert!("dora:1".parse::<PhaseSpec>().is_err());
        let w: MixWeights = "renew=3,dora=1".parse().expect("weights");
        assert_eq!((w.renew, w.dora, w.init_reboot, w.release), (3, 1, 0, 0));
        assert!("renew=0".parse::<MixWeights>().is_err());
    }

    #[test]
    fn discover_frame_looks_like_a_client() {
        let o = GenOptions { client_id: true, ..opts(4) };
        let mut slot = [0u8; FRAME_CAP];
        let mac = client_mac(0xcd, 3);
        let n = build_frame(&mut slot, &o, mac, 0x0300, Msg::Discover).expect("builds");
        assert_eq!(&slot[0..6], &BROADCAST_MAC);
        assert_eq!(&slot[6..12], &mac);
        let f = parse_udp(&slot[..n]).expect("udp");
        assert_eq!((f.src_ip, f.dst_ip, f.src_port, f.dst_port), (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, 68, 67));
        let m = Message::new_checked(f.payload).expect("dhcp");
        assert_eq!(m.message_type(), Some(MessageType::Discover));
        assert_eq!(m.giaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(m.ethernet_chaddr(), Some(mac));
        assert_eq!(m.client_identifier(), Some(&[1, 2, 0xcd, 0, 0, 0, 3][..]));
        assert!(!m.broadcast());
        assert_eq!(slot[ETH_HLEN + 8], 64, "TTL");
    }

    #[test]
    fn dora_then_renew_init_reboot_release() {
        let t0 = Instant::now();
        let mut g = Generator::new(opts(200), t0);
        let (st, t) = run_phase(&mut g, phase("dora:10000:20ms"), t0, &|_| false);
        let d = &st.kinds[Kind::Dora as usize];
        assert_eq!(d.started, 200, "rate 10k/s for 20 ms = 200 exchanges");
        assert_eq!(d.completed, 200);
        assert_eq!(d.dropped, 0);
        assert_eq!(st.offer_latency_us.len(), 200);
        assert_eq!(g.leased(), 200);

        let (st, t) = run_phase(&mut g, phase("renew:5000:20ms:50"), t, &|_| false);
        let r = &st.kinds[Kind::Renew as usize];
        assert_eq!((r.started, r.completed, r.dropped), (100, 100, 0));
        assert_eq!(st.packets.stray + st.packets.late + st.packets.duplicates, 0);

        let (st, t) = run_phase(&mut g, phase("init-reboot:5000:10ms"), t, &|_| false);
        let r = &st.kinds[Kind::InitReboot as usize];
        assert_eq!((r.started, r.completed), (50, 50));

        let (st, _) = run_phase(&mut g, phase("release:10000:5ms"), t, &|_| false);
        assert_eq!(st.kinds[Kind::Release as usize].completed, 50);
        assert_eq!(g.leased(), 150);
    }

    #[test]
    fn losses_are_drops_and_retries_recover_them() {
        let t0 = Instant::now();
        let mut g = Generator::new(opts(100), t0);
        // Every 10th client frame is lost: with no retries those exchanges are dropped.
        let (st, t) = run_phase(&mut g, phase("dora:10000:10ms"), t0, &|n| n % 10 == 0);
        let d = &st.kinds[Kind::Dora as usize];
        assert_eq!(d.started, 100);
        assert_eq!(d.completed + d.dropped, 100);
        assert!(d.dropped >= 10, "{d:?}");

        let mut g = Generator::new(GenOptions { retries: 2, ..opts(100) }, t);
        let (st, _) = run_phase(&mut g, phase("dora:10000:10ms"), t, &|n| n % 10 == 0);
        let d = &st.kinds[Kind::Dora as usize];
        assert_eq!((d.completed, d.dropped), (100, 0));
        assert!(d.retransmits > 0);
    }

    #[test]
    fn sequence_wrap_does_not_fire_stale_timers() {
        // One client doing far more than 256 exchanges within one timeout, each answered
        // one tick later: the 8-bit xid sequence wraps, stale timers must not drop anything.
        // Timeouts around 256 exchanges (2 ticks each) make a stale timer meet a reused xid.
        for timeout_us in [255_500, 256_000, 256_500, 512_000, 1_000_000] {
            sequence_wrap_case(Duration::from_micros(timeout_us));
        }
    }

    fn sequence_wrap_case(timeout: Duration) {
        let t0 = Instant::now();
        let cfg = ReflectConfig { server_ip: SERVER, server_mac: SERVER_MAC, lease_time: 60 };
        let mut g = Generator::new(GenOptions { timeout, window: 1, ..opts(1) }, t0);
        let mut out = Outbox::default();
        let mut reply = [0u8; FRAME_CAP];
        let mut pending: Vec<Vec<u8>> = Vec::new();
        let mut now = t0;
        g.begin_phase(phase("dora:0:1500ms"), now);
        loop {
            for f in pending.drain(..) {
                g.on_frame(now, &f, &mut out);
            }
            g.expire(now, &mut out);
            g.start_due(now, &mut out);
            for f in out.ip.frames() {
                if let Some(n) = answer(f, &cfg, &mut reply) {
                    pending.push(reply[..n].to_vec());
                }
            }
            out.ip.clear();
            if g.phase_done(now) {
                break;
            }
            now += Duration::from_micros(500);
        }
        let st = g.finish_phase(now);
        let d = &st.kinds[Kind::Dora as usize];
        assert!(d.completed > 600, "{timeout:?} {d:?}");
        assert_eq!(d.dropped, 0, "{timeout:?} {d:?}");
        assert_eq!(st.packets.late + st.packets.duplicates, 0);
    }

    #[test]
    fn unlimited_rate_keeps_the_window() {
        let t0 = Instant::now();
        let mut g = Generator::new(GenOptions { window: 8, ..opts(1000) }, t0);
        let (st, _) = run_phase(&mut g, phase("dora:0:5ms"), t0, &|_| false);
        let d = &st.kinds[Kind::Dora as usize];
        assert!(d.completed >= 8 * 5, "{d:?}");
        assert_eq!(d.dropped, 0);
    }

    #[test]
    fn mix_uses_every_type() {
        let t0 = Instant::now();
        let mut g = Generator::new(opts(400), t0);
        let (_, t) = run_phase(&mut g, phase("dora:20000:10ms"), t0, &|_| false);
        let (st, _) = run_phase(&mut g, phase("mix:20000:20ms"), t, &|_| false);
        for k in KINDS {
            assert!(st.kinds[k as usize].started > 0, "{k:?} never ran");
            assert_eq!(st.kinds[k as usize].dropped, 0);
        }
    }

    #[test]
    fn stray_late_and_duplicate_replies() {
        let t0 = Instant::now();
        let mut g = Generator::new(opts(2), t0);
        let cfg = ReflectConfig { server_ip: SERVER, server_mac: SERVER_MAC, lease_time: 60 };
        let mut out = Outbox::default();
        g.begin_phase(phase("dora:1000:1ms"), t0);
        g.start_due(t0 + Duration::from_millis(1), &mut out);
        let discover = out.ip.frames()[0].to_vec();
        out.ip.clear();
        let mut offer = [0u8; FRAME_CAP];
        let n = answer(&discover, &cfg, &mut offer).expect("offer");
        g.on_frame(t0, &offer[..n], &mut out);
        g.on_frame(t0, &offer[..n], &mut out); // second OFFER: duplicate
                                               // An OFFER for another MAC with this xid: stray.
        let mut other = offer;
        other[DHCP_OFFSET + 28 + 5] ^= 0xff;
        g.on_frame(t0, &other[..n], &mut out);
        assert_eq!(g.stats.packets.duplicates, 1);
        assert_eq!(g.stats.packets.stray, 1);
        // Garbage.
        g.on_frame(t0, &[0u8; 10], &mut out);
        assert_eq!(g.stats.packets.stray, 2);
    }
}
