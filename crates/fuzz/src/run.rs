//! The driver: a simulated network (model clients and servers, `cdra_sim`) around the
//! engine, fuzz events drawn from the case's seed and applied one per step, and every
//! invariant ([`crate::check`]) checked after every event of the simulation.
//!
//! A step draws one event from its own generator (seeded by the case's seed and the step
//! number, so dropping a step leaves the others' draws alone), applies it, and lets some
//! simulated time pass. Events ([`crate::gen`]): model-client and server actions, client
//! datagrams (well-formed, mutated captures, the wire corpus; in frames from the client
//! they name, from another host, or not read), server replies (spoofed on a downstream
//! link, from unconfigured addresses, with a forged xid/chaddr/giaddr, NAKs for clients
//! that asked nothing, mutated captures), probe answers (ARP from any MAC; ICMP echo
//! replies carrying the probe's random identifier, another probe's, or a guess), steps of
//! the engine's clock forward and back, long waits, and restarts from mutated persisted
//! records.

use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};

use cdra_core::{Destination, EchoId, Mode};
use cdra_sim::engine_api::Snapshot;
use cdra_sim::{IdStyle, Millis, Sim, SimRng, WireEvent};
use cdra_wire::{Message, MessageType, Op};

use crate::adapter;
use crate::adapter::{PoolEntryView, RecordView};
use crate::case::{Case, Failure, Params};
use crate::check::{self, Broken, Invariant};
use crate::gen::{FuzzEvent, FuzzId};
use crate::mutate::mutate_record;
use crate::oracle::{Judgement, Oracle};

/// What a run did (for long-run reports and coverage).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Simulation events processed (each followed by every check).
    pub events: u64,
    /// Steps whose event was applied.
    pub applied: u64,
    /// Client datagrams injected.
    pub client_datagrams: u64,
    /// Server-side datagrams injected.
    pub server_datagrams: u64,
    /// Probe answers injected.
    pub probe_answers: u64,
    /// Requests that reached the engine in a frame from another host than the client they
    /// name.
    pub unverified: u64,
    /// Clock steps.
    pub clock_steps: u64,
    /// Restarts (and records mutated in them).
    pub restarts: u64,
    /// Records mutated before a restore.
    pub records_mutated: u64,
    /// Replies judged genuine / forged when they reached the engine.
    pub genuine_replies: u64,
    /// See `genuine_replies`.
    pub forged_replies: u64,
    /// Local ACKs checked.
    pub local_acks: u64,
    /// Events drawn but not applied (they would aim an on-path copy at a model client).
    pub skipped: u64,
    /// Most records seen at once.
    pub max_records: usize,
    /// The fullest each bounded structure got, in thousandths of its bound, in the order of
    /// [`adapter::usage`].
    pub fullest: [u64; 12],
    /// A digest of everything that crossed the engine's edge (same case, same digest).
    pub digest: u64,
}

impl Stats {
    /// Add another run's counts (the digest is combined).
    pub fn add(&mut self, o: &Stats) {
        self.events += o.events;
        self.applied += o.applied;
        self.client_datagrams += o.client_datagrams;
        self.server_datagrams += o.server_datagrams;
        self.probe_answers += o.probe_answers;
        self.unverified += o.unverified;
        self.clock_steps += o.clock_steps;
        self.restarts += o.restarts;
        self.records_mutated += o.records_mutated;
        self.genuine_replies += o.genuine_replies;
        self.forged_replies += o.forged_replies;
        self.local_acks += o.local_acks;
        self.skipped += o.skipped;
        self.max_records = self.max_records.max(o.max_records);
        for (a, b) in self.fullest.iter_mut().zip(o.fullest) {
            *a = (*a).max(b);
        }
        self.digest = self.digest.rotate_left(5) ^ o.digest;
    }
}

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// A datagram seen at the engine's edge, kept for mutation.
#[derive(Debug, Clone)]
pub(crate) struct Capture {
    /// It came from a server (op BOOTREPLY into the engine).
    pub(crate) from_server: Option<Ipv4Addr>,
    pub(crate) data: Vec<u8>,
}

/// The first bytes of a flooding host's random MACs.
pub(crate) const FLOOD_MAC: [u8; 2] = [0x02, 0xfd];

/// An OFFER relayed to a flooding MAC.
#[derive(Debug, Clone)]
pub(crate) struct FloodOffer {
    pub(crate) chaddr: Vec<u8>,
    pub(crate) xid: u32,
    pub(crate) address: Ipv4Addr,
    pub(crate) link: usize,
}

/// Captures kept.
const CAPTURES: usize = 64;
/// Why a genuine reply may change no record.
const UNVERIFIED_REPLY: &str = "answers only requests from other hosts' frames";
/// Recent fuzz events kept for a failure report.
const RECENT: usize = 24;

/// The fuzzer's state for one case.
pub(crate) struct Fuzzer {
    pub(crate) case: Case,
    pub(crate) params: Params,
    pub(crate) sim: Sim,
    pub(crate) oracle: Oracle,
    pub(crate) fuzz: Vec<FuzzId>,
    pub(crate) captures: VecDeque<Capture>,
    pub(crate) probe_targets: VecDeque<(u32, Ipv4Addr, EchoId)>,
    /// OFFERs made to flooding MACs, for the REQUESTs of the next flood.
    pub(crate) flood_offers: VecDeque<FloodOffer>,
    /// Records whose lease cannot be compared with the servers' bindings until a server
    /// answers for them again (their cached reply changes): restored from mutated bytes,
    /// touched by a copy of a genuine reply the fuzzer injected, or learnt before a step of
    /// the engine's clock (the engine then believes up to the step
    /// more or less of it, by design: docs/design.md, "Clocks behind the store"). Key ->
    /// hash of the cached reply.
    tainted: HashMap<Vec<u8>, u64>,
    /// Pool entries whose lease was learnt before a step of the engine's clock, as (link,
    /// number, lease end): the same for the pool clients given them, until renewed.
    pool_tainted: HashSet<(usize, u16, Option<Millis>)>,
    /// The engine's clock was stepped: from then on the simulation's host invariants, which
    /// compare what clients hold with the servers' bindings, are not reported (the engine's
    /// own invariants, and [`Invariant::LeaseBeyondServer`] for untainted records, are).
    clock_stepped: bool,
    /// Tolerance of the lease comparison with the servers (message latency).
    lease_tolerance: Millis,
    /// Every model client's keys (option 61 and hardware): fuzz datagrams never carry them.
    pub(crate) model_keys: HashSet<Vec<u8>>,
    pub(crate) model_macs: Vec<[u8; 6]>,
    /// The table after the last event that reached the engine.
    before: Vec<RecordView>,
    /// The pool's entries then (pool mode).
    before_pool: Vec<PoolEntryView>,
    /// `engine_calls` when the engine was last checked.
    checked_calls: u64,
    /// Hashes of (key, cached reply) pairs the oracle accepted (it never takes one back).
    verified: HashSet<u64>,
    /// Check the reply-acceptance invariants (issue 10 item 1)?
    strict: bool,
    /// Server identifiers the engine may intercept (spoofing mode): the configured servers,
    /// and those named by replies the oracle judged genuine or by records restored.
    server_ids: HashSet<Ipv4Addr>,
    /// Datagrams the fuzzer injected that have not reached the engine yet.
    injected: Vec<Vec<u8>>,
    recent: VecDeque<String>,
    /// Every applied event, when asked for ([`applied_events`]).
    log_all: Option<Vec<String>>,
    step: usize,
    last_forward_step: Option<Millis>,
    pub(crate) stats: Stats,
}

impl Fuzzer {
    fn new(case: &Case) -> Self {
        let params = Params::of(case.seed, case.mode);
        let cfg = params.sim_config(case.seed);
        let mut sim = Sim::new(cfg);
        sim.set_wire_log(true);
        let mut r = SimRng::new(case.seed ^ 0xc11e_4750);
        let mut model_keys = HashSet::new();
        let mut model_macs = Vec::new();
        for _ in 0..params.clients {
            let link = r.below(2) as usize;
            let style = match r.below(3) {
                0 => IdStyle::Hardware,
                1 => IdStyle::MacId,
                _ => IdStyle::Duid { iaid: r.next_u32() },
            };
            let n = sim.clients().len() as u32;
            let mut cc = cdra_sim::ClientConfig::numbered(n, link, style);
            cc.broadcast_flag = r.chance(0.3);
            cc.bootp = r.chance(0.1);
            let c = sim.add_client(cc);
            let cl = sim.client(c);
            model_keys.insert(cl.key());
            model_keys.insert(adapter::hardware_key(1, &cl.mac()));
            model_macs.push(cl.mac());
            let at = sim.now() + r.below(5000);
            sim.schedule(at, cdra_sim::Action::PowerOn(c));
        }
        let fuzz = (0..6u8)
            .map(|i| {
                let mac = [0x02, 0xf0, 0, 0, 0, i];
                let client_id = match i % 3 {
                    0 => None,
                    1 => Some(vec![1, 0x02, 0xf0, 0, 0, 0, i]),
                    // Shared by two MACs: one client that changed its network card.
                    _ => Some(vec![0xff, 0, 0, 0, 9, 0, 3, 0, 1, 0x02, 0xf0, 0xee]),
                };
                FuzzId { mac, client_id, xid: r.next_u32(), link: r.below(2) as usize, offered: None, acked: None }
            })
            .collect();
        let c = sim.config();
        let lease_tolerance = c.lease_tolerance_ms;
        let server_ids = c.servers.iter().map(|s| s.addr).collect();
        let oracle = Oracle::new(
            c.servers.iter().map(|s| s.addr).collect(),
            c.links.iter().map(|l| l.ifindex).collect(),
            vec![c.upstream_ifindex],
        );
        Fuzzer {
            case: case.clone(),
            params,
            sim,
            oracle,
            fuzz,
            captures: VecDeque::new(),
            probe_targets: VecDeque::new(),
            flood_offers: VecDeque::new(),
            tainted: HashMap::new(),
            pool_tainted: HashSet::new(),
            clock_stepped: false,
            lease_tolerance,
            model_keys,
            model_macs,
            before: Vec::new(),
            before_pool: Vec::new(),
            checked_calls: u64::MAX,
            verified: HashSet::new(),
            strict: case.profile.checks_reply_acceptance(),
            server_ids,
            injected: Vec::new(),
            recent: VecDeque::new(),
            log_all: None,
            step: 0,
            last_forward_step: None,
            stats: Stats { digest: 0xcbf2_9ce4_8422_2325, ..Stats::default() },
        }
    }

    /// The generator of step `k`.
    fn step_rng(&self, k: usize) -> SimRng {
        SimRng::new(self.case.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (k as u64).wrapping_mul(0xd6e8_feb8_6659_fd93))
    }

    fn run(&mut self) -> Result<(), Broken> {
        // Let the model clients boot.
        self.advance(5_000)?;
        for k in 0..self.case.steps {
            self.step = k;
            let mut r = self.step_rng(k);
            let event = self.generate(&mut r);
            let pause = pause(&mut r);
            if self.case.applies(k) {
                self.note(k, &event.to_string());
                self.stats.applied += 1;
                self.apply(event, &mut r)?;
            }
            self.advance(pause)?;
        }
        self.advance(30_000)
    }

    fn note(&mut self, k: usize, what: &str) {
        if self.recent.len() >= RECENT {
            self.recent.pop_front();
        }
        let t = cdra_sim::trace::fmt_time(self.sim.elapsed());
        let line = format!("#{k} {t} {what}");
        if let Some(all) = &mut self.log_all {
            all.push(line.clone());
        }
        self.recent.push_back(line);
    }

    /// `--events`: after an event that changed them, the pool's entries and the records
    /// (what each holds), so a pool-mode failure can be followed from the event list.
    fn log_state_change(&mut self, records: &[RecordView], pool: &[PoolEntryView]) {
        let summary = |rs: &[RecordView]| -> Vec<String> {
            rs.iter()
                .map(|r| {
                    let restart = if r.must_restart { " must_restart" } else { "" };
                    format!("{} if{} {} {} {}{restart}", r.key_text, r.downstream, r.address, r.state, r.origin)
                })
                .collect()
        };
        let entries = |es: &[PoolEntryView]| -> Vec<String> {
            es.iter().map(|e| format!("{}:{} {} {} {:?}", e.link, e.n, e.state, e.address, e.client)).collect()
        };
        let (now, was) = (summary(records), summary(&self.before));
        let (pool_now, pool_was) = (entries(pool), entries(&self.before_pool));
        if now == was && pool_now == pool_was {
            return;
        }
        let t = cdra_sim::trace::fmt_time(self.sim.elapsed());
        if let Some(all) = &mut self.log_all {
            all.push(format!("    {t} pool [{}]", pool_now.join(", ")));
            all.push(format!("    {t} records [{}]", now.join(", ")));
        }
    }

    fn apply(&mut self, event: FuzzEvent, r: &mut SimRng) -> Result<(), Broken> {
        match event {
            FuzzEvent::Model(a) => {
                self.sim.act(a);
                self.after_event()
            }
            FuzzEvent::Inject { ifindex, link_source, src, dst, data, server_side, .. } => {
                if server_side {
                    self.stats.server_datagrams += 1;
                } else {
                    self.stats.client_datagrams += 1;
                }
                self.injected.push(data.clone());
                self.sim.inject_to_engine(ifindex, link_source, src, dst, data);
                Ok(())
            }
            FuzzEvent::Flood { datagrams, .. } => {
                for (ifindex, link_source, dst, data) in datagrams {
                    self.stats.client_datagrams += 1;
                    self.injected.push(data.clone());
                    let src = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68);
                    self.sim.inject_to_engine(ifindex, link_source, src, dst, data);
                }
                Ok(())
            }
            FuzzEvent::Probe { ifindex, target, reply, .. } => {
                self.stats.probe_answers += 1;
                self.sim.inject_probe_answer(ifindex, target, reply);
                Ok(())
            }
            FuzzEvent::ClockStep(ms) => {
                self.step_clock(ms);
                self.after_event()
            }
            FuzzEvent::Wait(ms) => self.advance(ms),
            FuzzEvent::Restart { clock } => self.restart(r, clock),
            FuzzEvent::Skipped(_) => {
                self.stats.skipped += 1;
                Ok(())
            }
        }
    }

    fn step_clock(&mut self, ms: i64) {
        self.stats.clock_steps += 1;
        if ms > 0 {
            self.last_forward_step = Some(self.sim.now());
        }
        self.clock_stepped = true;
        for v in adapter::records(self.sim.engine()) {
            self.tainted.insert(v.key.clone(), reply_hash(&v));
        }
        for e in adapter::pool_entries(self.sim.engine()) {
            self.pool_tainted.insert((e.link, e.n, e.lease_end));
        }
        self.sim.step_engine_clock(ms);
    }

    /// Let `ms` of simulated time pass, checking after every event.
    fn advance(&mut self, ms: Millis) -> Result<(), Broken> {
        let until = self.sim.now().saturating_add(ms);
        while self.sim.step(until) {
            self.stats.events += 1;
            self.after_event()?;
        }
        self.sim.advance_to(until);
        self.host_ok()
    }

    /// Restart the engine from its dump, some records mutated, dropped or doubled (never a
    /// model client's own record: the simulation's lease invariant would then judge the
    /// store, not the engine).
    fn restart(&mut self, r: &mut SimRng, clock: Option<i64>) -> Result<(), Broken> {
        self.stats.restarts += 1;
        if let Some(ms) = clock {
            // The host's clock was set while the engine was down.
            self.step_clock(ms);
        }
        let snap = self.sim.engine_snapshot();
        let templates = snap.templates();
        let now = self.sim.engine_now();
        let addresses: Vec<[u8; 4]> = adapter::records(self.sim.engine()).iter().map(|v| v.address.octets()).collect();
        // Pool mode with safe_network: the addresses of model clients' records and pool
        // entries, which a damaged record must not claim (see `keep` below).
        let model_addresses: HashSet<Ipv4Addr> = adapter::records(self.sim.engine())
            .iter()
            .filter(|v| self.model_keys.contains(&v.key) || v.is_pool_client())
            .map(|v| v.address)
            .chain(adapter::pool_entries(self.sim.engine()).iter().map(|e| e.address))
            .filter(|a| !a.is_unspecified())
            .collect();
        let mut out = Vec::new();
        let mut mutated_keys = Vec::new();
        let mut what = Vec::new();
        for rec in snap.records {
            let key = adapter::persisted_key(&rec, &templates);
            // A pool entry's own lease is a model client's as soon as one is given it.
            let model = key.as_ref().is_some_and(|k| self.model_keys.contains(k) || adapter::is_pool_key(k));
            let roll = r.below(100);
            // Pool mode with safe_network: the store is all that says a pool address is in
            // use by a client (no probe asks the network), so a lost model client's or pool
            // entry's record lets the address be given twice, by design: kept, and without a
            // damaged copy beside it, nor any damaged record claiming its address (one with
            // the same address, newer, would supersede it: seed 0x898, restore keeping a
            // stranger's damaged record on a pool client's address, then the client's entry
            // released as surplus while it held the address).
            let safe_pool = self.params.mode == Mode::Pool && self.params.safe_network;
            let keep = model && safe_pool;
            if roll < 10 && !keep {
                what.push("drop".to_string());
                continue;
            }
            // A stranger's record is mutated in place; beside any record, a mutated copy.
            let copy = roll >= 90;
            if copy || (roll < 45 && !model) {
                let mut m = rec.clone();
                let how = mutate_record(r, &mut m, now, &addresses);
                let mkey = adapter::persisted_key(&m, &templates);
                if copy {
                    out.push(rec);
                }
                let protected = mkey.as_ref().is_some_and(|k| self.model_keys.contains(k) || adapter::is_pool_key(k))
                    || adapter::persisted_is_pool_lease(&m, &templates)
                    || keep
                    || (safe_pool
                        && adapter::persisted_address(&m, &templates).is_some_and(|a| model_addresses.contains(&a)));
                if protected {
                    what.push(format!("{how} (a model client's or pool key: left out)"));
                } else {
                    what.push(if copy { format!("copy+{how}") } else { how });
                    mutated_keys.extend(mkey);
                    out.push(m);
                    self.stats.records_mutated += 1;
                }
                continue;
            }
            out.push(rec);
        }
        if r.chance(0.3) {
            out.reverse();
        }
        // Restore learns the server identifier of every record it reads (superseded or not).
        self.server_ids.extend(out.iter().filter_map(|b| adapter::persisted_server_id(b, &templates)));
        // Entries doubtful before the restart stay so: restore dates an entry stored ahead of
        // the clock (a clock stepped back) from now, a new lease end learnt from no server.
        let doubtful: HashSet<(usize, u16)> = self.pool_tainted.iter().map(|(link, n, _)| (*link, *n)).collect();
        self.sim.restart_engine(Some(&Snapshot { records: out, templates: snap.templates }));
        for e in adapter::pool_entries(self.sim.engine()) {
            if doubtful.contains(&(e.link, e.n)) {
                self.pool_tainted.insert((e.link, e.n, e.lease_end));
            }
        }
        let records = adapter::records(self.sim.engine());
        for v in &records {
            if let Some(reply) = &v.reply {
                self.oracle.trust_stored(&v.key, reply, v.is_pool_client());
            }
            if mutated_keys.contains(&v.key) {
                self.tainted.insert(v.key.clone(), reply_hash(v));
            }
        }
        if let Some(last) = self.recent.back_mut() {
            last.push_str(&format!(" [{}]", what.join(" ")));
        }
        if let Some(last) = self.log_all.as_mut().and_then(|a| a.last_mut()) {
            last.push_str(&format!(" [{}]", what.join(" ")));
        }
        for reply in adapter::pool_entry_replies(self.sim.engine()) {
            self.oracle.trust_stored_pool_entry(&reply);
        }
        self.before = records;
        self.before_pool = adapter::pool_entries(self.sim.engine());
        self.after_event()
    }

    fn host_ok(&self) -> Result<(), Broken> {
        if self.clock_stepped {
            return Ok(());
        }
        match self.sim.violations().first() {
            Some(v) => {
                let text = v.to_string();
                Err(Broken::new(Invariant::Host, text.lines().next().unwrap_or("").to_string()))
            }
            None => Ok(()),
        }
    }

    fn capture(&mut self, from_server: Option<Ipv4Addr>, data: &[u8]) {
        if self.captures.len() >= CAPTURES {
            self.captures.pop_front();
        }
        self.captures.push_back(Capture { from_server, data: data.to_vec() });
    }

    /// Everything checked after one event of the simulation.
    fn after_event(&mut self) -> Result<(), Broken> {
        let log = self.sim.take_wire_log();
        let engine_now = self.sim.engine_now();
        let caches = adapter::caches(self.sim.engine());
        // `Some(None)`: a genuine reply was handled; `Some(Some(why))`: a forged one.
        let mut reply_in: Option<Option<&'static str>> = None;
        // A genuine RFC 4388 DHCPLEASEACTIVE was handled: it may make a record (suspect,
        // from the server's own answer to the engine's query), which is then trusted as a
        // stored one is.
        let mut lease_active = false;
        // Clients a copy of a genuine reply the fuzzer injected may have touched.
        let mut copied_for = Vec::new();
        let mut to_clients = Vec::new();
        // The key named by a request in a frame from another host (issue 10 item 2).
        let mut unverified: Option<Vec<u8>> = None;
        for ev in &log {
            match ev {
                WireEvent::EngineIn { ifindex, link_source, src, data, .. } => {
                    self.stats.digest = fnv(self.stats.digest, data);
                    let injected = match self.injected.iter().position(|d| d == data) {
                        Some(i) => {
                            self.injected.swap_remove(i);
                            true
                        }
                        None => false,
                    };
                    let Ok(m) = Message::new_checked(&data[..]) else {
                        self.capture(None, data);
                        continue;
                    };
                    if m.op() != Op::BootReply {
                        // The frame is another host's than the client the request names:
                        // its Ethernet chaddr is not the frame's source. (A chaddr that is
                        // not an Ethernet address, such as hlen 0 with option 61, can name
                        // a client only by its option 61, which any host can also claim
                        // with its own MAC as chaddr: docs/design.md, "what it cannot
                        // check". The engine does not compare those, nor does this.)
                        let downstream = self.sim.config().links.iter().any(|l| l.ifindex == *ifindex);
                        let chaddr = m.ethernet_chaddr();
                        if downstream && chaddr.is_some() && link_source.is_some_and(|s| chaddr != Some(s)) {
                            self.stats.unverified += 1;
                            unverified = Some(adapter::key_of(&m));
                        }
                        self.capture(None, data);
                        continue;
                    }
                    self.capture(Some(*src.ip()), data);
                    let judged = self.oracle.judge(engine_now, *ifindex, *src.ip(), &m);
                    if matches!(judged, Judgement::Genuine(_)) {
                        self.server_ids.insert(m.server_identifier().unwrap_or(*src.ip()));
                    }
                    match judged {
                        Judgement::Genuine(keys) if keys.is_empty() => {
                            // Answers only requests from other hosts' frames: relayed as a
                            // plain relay would, into no record.
                            self.stats.genuine_replies += 1;
                            self.oracle.accept(&m, keys, !injected);
                            reply_in = Some(Some(UNVERIFIED_REPLY));
                        }
                        Judgement::Genuine(keys) => {
                            self.stats.genuine_replies += 1;
                            lease_active |= crate::oracle::is_leasequery_answer(&m);
                            if injected {
                                copied_for.extend(keys.iter().cloned());
                            }
                            self.oracle.accept(&m, keys, !injected);
                            reply_in = Some(None);
                        }
                        Judgement::Forged(why) => {
                            self.stats.forged_replies += 1;
                            reply_in = Some(Some(why));
                        }
                    }
                }
                WireEvent::EngineOut { dest, data, .. } => {
                    self.stats.digest = fnv(self.stats.digest, data);
                    self.capture(None, data);
                    match dest {
                        Destination::Server { addr, .. } => {
                            self.oracle.forwarded(engine_now, *addr, data, unverified.is_none())
                        }
                        Destination::ClientUnicast { ifindex, .. } | Destination::ClientLink { ifindex, .. } => {
                            to_clients.push((*ifindex, data.clone()))
                        }
                    }
                }
                WireEvent::Probe { ifindex, target, echo, .. } => {
                    if self.probe_targets.len() >= 16 {
                        self.probe_targets.pop_front();
                    }
                    self.probe_targets.push_back((*ifindex, *target, *echo));
                }
            }
        }
        let calls = self.sim.engine_calls();
        if calls == self.checked_calls && log.is_empty() {
            // The event did not reach the engine: nothing of it can have changed.
            return self.host_ok();
        }
        self.checked_calls = calls;
        let records = adapter::records(self.sim.engine());
        let pool = adapter::pool_entries(self.sim.engine());
        if self.log_all.is_some() {
            self.log_state_change(&records, &pool);
        }
        self.stats.max_records = self.stats.max_records.max(records.len());
        for v in records.iter().filter(|v| copied_for.contains(&v.key)) {
            // A replayed or corrupted copy names the request but is not the server's answer
            // to it: what the record now believes of its lease is not the server's.
            self.tainted.insert(v.key.clone(), reply_hash(v));
        }
        let (before, after) = (check::digest(&self.before), check::digest(&records));
        // What must have left the table and the pool as they were.
        let untouched = match (reply_in, &unverified) {
            (Some(Some(UNVERIFIED_REPLY)), _) => {
                Some((Invariant::UnverifiedSourceActed, format!("a reply ({UNVERIFIED_REPLY})")))
            }
            (Some(Some(why)), _) if self.strict => {
                check::reply_effect(&before, &after, Some(why))?;
                Some((Invariant::TableChangedByForgedReply, format!("a forged reply ({why})")))
            }
            (Some(None), _) if self.strict && lease_active => {
                for (key, v) in after.iter().filter(|(k, _)| !before.contains_key(*k)) {
                    if let Some(reply) = &v.reply {
                        self.oracle.trust_stored(key, reply, false);
                    }
                }
                None
            }
            (Some(None), _) if self.strict => {
                check::reply_effect(&before, &after, None)?;
                None
            }
            (_, Some(key)) => Some((
                Invariant::UnverifiedSourceActed,
                format!("a request naming {} from another host's frame", adapter::key_text(key)),
            )),
            _ => None,
        };
        if let Some((invariant, what)) = &untouched {
            check::unchanged(&before, &after, *invariant, what)?;
            if self.before_pool != pool {
                let changed = pool.iter().find(|e| !self.before_pool.contains(e));
                let gone = self.before_pool.iter().find(|e| !pool.contains(e));
                return Err(Broken::new(*invariant, format!("{what} changed the pool: {gone:?} -> {changed:?}")));
            }
        }
        if let Some(key) = &unverified {
            let what = format!("a request naming {} from another host's frame", adapter::key_text(key));
            if let Some((_, d)) = to_clients.iter().find(|(_, d)| {
                Message::new_checked(&d[..]).is_ok_and(|m| m.op() == Op::BootReply && adapter::is_local_answer(&m))
            }) {
                let m = Message::new_checked(&d[..]).map(|m| format!("{:?} yiaddr={}", m.message_type(), m.yiaddr()));
                return Err(Broken::new(
                    Invariant::UnverifiedSourceActed,
                    format!("{what} got a local answer: {}", m.unwrap_or_default()),
                ));
            }
        }
        if caches {
            for v in &records {
                if let Some(reply) = &v.reply {
                    let h = fnv(fnv(0xcbf2_9ce4_8422_2325, &v.key), reply);
                    if self.verified.contains(&h) {
                        continue;
                    }
                    match self.oracle.check_cached(&v.key, reply, v.is_pool_client()) {
                        Ok(()) => {
                            self.verified.insert(h);
                        }
                        Err(why) if self.strict => {
                            return Err(Broken::new(
                                Invariant::ForgedReplyCached,
                                format!("record {} ({}): {why}", v.key_text, v.address),
                            ))
                        }
                        Err(_) => {}
                    }
                }
            }
        }
        for (ifindex, data) in &to_clients {
            self.learn_from_answer(*ifindex, data);
            self.check_to_client(data, caches, &records)?;
        }
        let engine = self.sim.engine();
        check::table_consistent(
            &records,
            |k| adapter::slot_of_key(engine, k),
            |a| adapter::slot_of_address(engine, a),
        )?;
        let usage = adapter::usage(engine);
        for (fullest, (_, used, limit)) in self.stats.fullest.iter_mut().zip(usage) {
            *fullest = (*fullest).max((used as u64 * 1000).checked_div(limit as u64).unwrap_or(0));
        }
        check::within_bounds(&usage)?;
        if let Some(a) = adapter::intercepted(engine).into_iter().find(|a| !self.server_ids.contains(a)) {
            return Err(Broken::new(
                Invariant::InterceptUnbelieved,
                format!("client unicasts to {a} are taken, yet no server the engine believed named it"),
            ));
        }
        if self.sim.engine().pool().is_reconciled() {
            // Before its first timer a restarted engine has not matched restored entries
            // with their clients' records yet (`pool_reconcile`): an entry given out before
            // the restart is free and held back (never given out) until then.
            let stale = |e: &PoolEntryView| self.pool_tainted.contains(&(e.link, e.n, e.lease_end));
            let doubtful = |r: &RecordView| {
                self.tainted.contains_key(&r.key)
                    || r.pool_entry()
                        .is_some_and(|(link, n)| pool.iter().any(|e| e.link == link && e.n == n && stale(e)))
            };
            check::pool_consistent(&pool, &records, stale, doubtful)?;
        }
        self.tainted.retain(|k, h| records.iter().any(|v| v.key == *k && reply_hash(v) == *h));
        self.pool_tainted.retain(|t| pool.iter().any(|e| (e.link, e.n, e.lease_end) == *t));
        self.before = records;
        self.before_pool = pool;
        self.host_ok()
    }

    /// Remember what a fuzz identity was offered or given (so its next request can use it).
    fn learn_from_answer(&mut self, ifindex: u32, data: &[u8]) {
        let Ok(m) = Message::new_checked(data) else { return };
        if m.chaddr().starts_with(&FLOOD_MAC) && m.message_type() == Some(MessageType::Offer) {
            let link = self.sim.config().links.iter().position(|l| l.ifindex == ifindex).unwrap_or(0);
            if self.flood_offers.len() >= 256 {
                self.flood_offers.pop_front();
            }
            self.flood_offers.push_back(FloodOffer {
                chaddr: m.chaddr().to_vec(),
                xid: m.xid(),
                address: m.yiaddr(),
                link,
            });
        }
        let Some(f) = self.fuzz.iter_mut().find(|f| m.chaddr() == f.mac) else { return };
        match m.message_type() {
            Some(MessageType::Offer) => f.offered = Some(m.yiaddr()),
            Some(MessageType::Ack) if !m.yiaddr().is_unspecified() => f.acked = Some(m.yiaddr()),
            Some(MessageType::Nak) => f.acked = None,
            _ => {}
        }
    }

    /// A datagram to a client: a relayed reply must be genuine; a local answer must be for an
    /// address no other record holds, with no more lease than the record and the server's
    /// binding have left.
    fn check_to_client(&mut self, data: &[u8], caches: bool, records: &[RecordView]) -> Result<(), Broken> {
        let Ok(m) = Message::new_checked(data) else { return Ok(()) };
        if !adapter::is_local_answer(&m) {
            if caches && self.strict && !self.oracle.check_relayed(&m) {
                return Err(Broken::new(
                    Invariant::ForgedReplyRelayed,
                    format!(
                        "relayed a reply no server sent for a forwarded request: {:?} xid={:08x} yiaddr={} to {}",
                        m.message_type(),
                        m.xid(),
                        m.yiaddr(),
                        adapter::key_text(&adapter::key_of(&m))
                    ),
                ));
            }
            return Ok(());
        }
        let kind = m.message_type();
        let is_ack = kind == Some(MessageType::Ack) || (kind.is_none() && m.op() == Op::BootReply);
        let address = m.yiaddr();
        if !(is_ack || kind == Some(MessageType::Offer)) || address.is_unspecified() {
            return Ok(());
        }
        let engine = self.sim.engine();
        let key = adapter::key_of(&m);
        let holder = adapter::slot_of_address(engine, address);
        let mine = adapter::slot_of_key(engine, &key);
        if holder.is_some() && holder != mine {
            let other = adapter::records(engine).into_iter().find(|v| Some(v.slot) == holder);
            return Err(Broken::new(
                Invariant::AckForAddressOfAnother,
                format!(
                    "local {:?} of {address} to {} while the record of {} holds it",
                    kind,
                    adapter::key_text(&key),
                    other.map(|v| v.key_text).unwrap_or_default()
                ),
            ));
        }
        if !is_ack {
            return Ok(());
        }
        self.stats.local_acks += 1;
        let now = self.sim.now();
        let engine_now = self.sim.engine_now();
        let lease = m.lease_time();
        if let (Some(l), Some(left)) = (lease, adapter::lease_left_secs(engine, &key, engine_now)) {
            // An answer held for renew_reply_delay was computed up to that long ago (and a
            // second boundary may have passed); a forward clock step in between shortens
            // what is left.
            let recent_step = self.last_forward_step.is_some_and(|t| now.saturating_sub(t) <= 1000);
            if u64::from(l) > u64::from(left) + 1 && !recent_step {
                return Err(Broken::new(
                    Invariant::LeaseBeyondRecord,
                    format!(
                        "local ACK of {address} to {} for {l}s, the record has {left}s left",
                        adapter::key_text(&key)
                    ),
                ));
            }
        }
        // Judged against the server only when the record is what a server said: not restored
        // from mutated bytes, and holding a reply a model server really sent to this client
        // (not a corrupted copy, nor, when the reply-acceptance checks are off, a forged one).
        // A pool client's record holds its pool identity's reply, and the server binds the
        // address to that identity (paper 4.3; `Sim::pool_backs` judges model clients so).
        let record = records.iter().find(|v| v.key == key);
        let pooled = record.is_some_and(|v| v.is_pool_client());
        let genuine = record.and_then(|v| v.reply.as_ref()).is_some_and(|reply| {
            if pooled {
                self.oracle.really_sent_to_pool(reply)
            } else {
                self.oracle.really_sent(&key, reply)
            }
        });
        let stale_entry = record.and_then(|v| v.pool_entry()).is_some_and(|(link, n)| {
            adapter::pool_entries(self.sim.engine())
                .iter()
                .any(|e| e.link == link && e.n == n && self.pool_tainted.contains(&(link, n, e.lease_end)))
        });
        if self.tainted.contains_key(&key) || !genuine || stale_entry {
            return Ok(());
        }
        let tolerance = self.lease_tolerance;
        let binding = self.sim.servers().iter().find(|s| s.owns(address)).and_then(|s| s.binding(address));
        let client_end = lease.map(|l| if l == u32::MAX { Millis::MAX } else { now + u64::from(l) * 1000 });
        let ok = match (binding, client_end) {
            (Some((k, _)), _) if k != key.as_slice() && !(pooled && adapter::is_pool_key(k)) => false,
            (Some((_, end)), Some(c)) => end.saturating_add(tolerance) >= c,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !ok {
            return Err(Broken::new(
                Invariant::LeaseBeyondServer,
                format!(
                    "local ACK of {address} to {} for {:?}s; the server's binding: {}",
                    adapter::key_text(&key),
                    lease,
                    match binding {
                        None => "none".to_string(),
                        Some((k, end)) =>
                            format!("{} for {}s more", adapter::key_text(k), end.saturating_sub(now) as i64 / 1000),
                    }
                ),
            ));
        }
        Ok(())
    }

    /// Every record's address, every model client's, every fuzz identity's: addresses
    /// worth asking for, probing and spoofing.
    pub(crate) fn known_addresses(&self) -> Vec<Ipv4Addr> {
        let mut v: Vec<Ipv4Addr> = adapter::records(self.sim.engine()).iter().map(|r| r.address).collect();
        for c in 0..self.sim.clients().len() {
            v.extend(self.sim.client(c).lease().map(|l| l.address));
        }
        for f in &self.fuzz {
            v.extend(f.offered);
            v.extend(f.acked);
        }
        v.retain(|a| !a.is_unspecified());
        v.sort();
        v.dedup();
        v
    }

    fn failure(&self, b: Broken) -> Failure {
        Failure {
            case: self.case.clone(),
            params: self.params.clone(),
            step: self.step,
            at: self.sim.elapsed(),
            engine_clock_offset: self.sim.engine_now() as i64 - self.sim.now() as i64,
            invariant: b.invariant,
            detail: b.detail,
            recent: self.recent.iter().cloned().collect(),
            trace: self.sim.trace_dump(),
        }
    }
}

fn reply_hash(v: &RecordView) -> u64 {
    fnv(0xcbf2_9ce4_8422_2325, v.reply.as_deref().unwrap_or(&[]))
}

/// Time to let pass after a step: mostly a protocol exchange's worth, sometimes retries'.
fn pause(r: &mut SimRng) -> Millis {
    match r.below(20) {
        0..=13 => r.below(1500),
        14..=18 => r.range(1500, 20_000),
        _ => r.range(20_000, 120_000),
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(non-string panic payload)".into())
}

/// Run `case`: `Ok` with what it did, or the first invariant it broke.
pub fn run(case: &Case) -> Result<Stats, Box<Failure>> {
    run_logged(case, false).0
}

/// Run `case` and list every event it applied (`#step time what`), up to a failure: what a
/// case (a regression line) still exercises after the generator or the engine changed.
pub fn applied_events(case: &Case) -> (Result<Stats, Box<Failure>>, Vec<String>) {
    run_logged(case, true)
}

fn run_logged(case: &Case, log: bool) -> (Result<Stats, Box<Failure>>, Vec<String>) {
    let mut fuzzer: Option<Fuzzer> = None;
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let f = fuzzer.insert(Fuzzer::new(case));
        if log {
            f.log_all = Some(Vec::new());
        }
        f.run()
    }));
    let events = fuzzer.as_mut().and_then(|f| f.log_all.take()).unwrap_or_default();
    (outcome_of(case, outcome, fuzzer), events)
}

fn outcome_of(
    case: &Case,
    outcome: std::thread::Result<Result<(), Broken>>,
    fuzzer: Option<Fuzzer>,
) -> Result<Stats, Box<Failure>> {
    let broken = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(b)) => Some(b),
        Err(p) => Some(Broken::new(Invariant::Panic, panic_text(&*p))),
    };
    match (broken, fuzzer) {
        (None, Some(f)) => Ok(f.stats),
        (Some(b), Some(f)) => Err(Box::new(f.failure(b))),
        (b, None) => Err(Box::new(Failure {
            case: case.clone(),
            params: Params::of(case.seed, case.mode),
            step: 0,
            at: 0,
            engine_clock_offset: 0,
            invariant: Invariant::Panic,
            detail: format!("while setting up: {}", b.map(|b| b.detail).unwrap_or_default()),
            recent: Vec::new(),
            trace: String::new(),
        })),
    }
}

/// Shrink a failing case: cut it at the failing step, then drop the applied steps that are
/// not needed for the same invariant to break (halves, then quarters, ... of what is left),
/// within `budget` runs. Returns the smallest case found and its failure.
pub fn minimize(failure: &Failure, budget: usize) -> Failure {
    let mut best = failure.clone();
    let prefix = failure.shortest_prefix();
    if let Err(f) = run(&prefix) {
        if f.invariant == failure.invariant {
            best = *f;
        }
    }
    let mut runs = 1;
    let mut chunk = best.case.steps.div_ceil(2).max(1);
    loop {
        let kept: Vec<usize> = match &best.case.keep {
            Some(k) => k.iter().copied().collect(),
            None => (0..best.case.steps).collect(),
        };
        let mut progressed = false;
        let mut start = 0;
        while start < kept.len() && runs < budget {
            let drop: BTreeSet<usize> = kept.iter().skip(start).take(chunk).copied().collect();
            let mut candidate = best.case.clone();
            candidate.keep = Some(kept.iter().copied().filter(|s| !drop.contains(s)).collect());
            runs += 1;
            match run(&candidate) {
                Err(f) if f.invariant == failure.invariant => {
                    best = *f;
                    best.case = Failure::shortest_prefix(&best);
                    progressed = true;
                    break;
                }
                _ => start += chunk,
            }
        }
        if runs >= budget {
            break;
        }
        if !progressed {
            if chunk == 1 {
                break;
            }
            chunk = chunk.div_ceil(2);
        }
    }
    best
}
