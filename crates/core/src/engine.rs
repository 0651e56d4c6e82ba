//! The engine and its whole sans-IO surface, in one place (quinn-proto's `Connection`
//! keeps `handle_event` / `poll_timeout` / `handle_timeout` / `poll_transmit` together).
//!
//! | entry | what comes in | what it does |
//! |---|---|---|
//! | [`Engine::handle_datagram`] | one received UDP payload ([`Ingress`]) | relays it, or (caching modes) answers or forwards it as Table 1 says |
//! | [`Engine::handle_probe_answer`] | an ARP or ICMP answer ([`crate::ProbeAnswer`]) to a [`crate::ProbeRequest`] | marks the probes it decides ([`crate::proxy::probes`]) |
//! | [`Engine::handle_probe_unsent`], [`Engine::handle_probe_answers_lost`] | a probe the I/O layer could not send; answers it may have lost | such probes conclude nothing ([`crate::proxy::probes`]) |
//! | [`Engine::poll_timeout`] | — | the earliest timer deadline ([`crate::timers`]) |
//! | [`Engine::handle_timeout`] | the time | fires what is due, while the outbox has room |
//! | [`Engine::flush_client`], [`Engine::flush_address`], [`Engine::flush_all`] | an operator's command | removes records |
//! | [`Engine::drain_changes`], [`Engine::dump`] | — | what the store must write ([`crate::persist`]) |
//! | [`Engine::restore`], [`Engine::restore_one`] | records the store read back | rebuilds the table at start-up |
//!
//! Everything the engine decides goes into the caller's [`Outbox`] (datagrams and probes to
//! send); nothing else leaves it. Every call is bounded: one datagram's work, or at most the
//! timers filed when `handle_timeout` was entered.

use core::net::{Ipv4Addr, SocketAddrV4};

use cdra_wire::{Message, Op};

use crate::config::EngineConfig;
use crate::counters::{Counters, MessageKind, ProxyEvent};
use crate::events::EventQueue;
use crate::leasequery::LeasequeryState;
use crate::limits::TokenBucket;
use crate::mode::{AddressSource, Unicasts};
use crate::outbox::{HeldReplies, Outbox, ProbeAnswer};
use crate::persist::{Change, ChangeLog, RestoreReport};
use crate::pool::assign::Fallbacks;
use crate::pool::PoolState;
use crate::proxy::ProxyState;
use crate::servers::ServerPool;
use crate::table::{ClientKey, ClientRecord, ClientTable};
use crate::time::Timestamp;
use crate::timers::{LapseQueue, Timer, Timers};
use crate::transactions::Transactions;
use crate::verdict::{DropReason, Verdict};

/// One received UDP datagram, as the I/O layer saw it.
#[derive(Debug, Clone, Copy)]
pub struct Ingress<'a> {
    /// Interface it arrived on (IP_PKTINFO `ipi_ifindex`, or the packet socket's).
    pub ifindex: u32,
    /// The Ethernet source address of the frame, when the I/O layer read the frame (client
    /// requests on downstream interfaces); `None` when it does not know it.
    pub link_source: Option<[u8; 6]>,
    /// Sender address and port.
    pub src: SocketAddrV4,
    /// Destination address in the IP header (IP_PKTINFO `ipi_addr`).
    pub dst: Ipv4Addr,
    /// The UDP payload.
    pub data: &'a [u8],
}

/// The relay/caching engine. Owns all state; see the module docs.
#[derive(Debug)]
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) servers: ServerPool,
    pub(crate) counters: Counters,
    /// The client table (caching modes).
    pub(crate) table: ClientTable,
    /// Probes and offer windows (caching modes).
    pub(crate) proxy: ProxyState,
    /// Every timer but the lapse timers ([`crate::timers`]).
    pub(crate) timers: Timers,
    /// The lapse timers, one per record with a short client lease ([`crate::timers`]).
    pub(crate) lapses: LapseQueue,
    pub(crate) changes: ChangeLog,
    /// Working space for expanding and rewriting messages (no allocation per packet).
    pub(crate) scratch: Box<[u8]>,
    /// Local answers to unicast renewals, held for `renew_reply_delay`.
    pub(crate) held: HeldReplies,
    /// Requests forwarded and waiting for their reply ([`crate::transactions`]).
    pub(crate) transactions: Transactions,
    /// Each downstream interface's budget for new clients ([`crate::limits`]).
    pub(crate) interface_budgets: Vec<TokenBucket>,
    /// Spoofing mode: the server addresses whose client unicasts we take (the configured
    /// servers and the identifiers their ACKs carry).
    pub(crate) intercepted: InterceptSet,
    /// Pool mode: the addresses leased ahead ([`crate::pool`]).
    pub(crate) pool: PoolState,
    /// Pool mode: DISCOVERs waiting to see whether a server answers.
    pub(crate) pool_fallbacks: Fallbacks,
    /// The time of the event being handled (for work done where no `now` is passed, such
    /// as a record's removal).
    pub(crate) event_time: Timestamp,
    /// The per-client event log ([`crate::events`]; off unless [`Engine::set_event_log`]).
    pub(crate) events: EventQueue,
    /// RFC 4388 leasequery ([`crate::leasequery`]).
    pub(crate) leasequery: LeasequeryState,
}

/// The addresses whose client unicasts a spoofing relay takes (paper 4.2), and those not yet
/// handed to the I/O layer, which makes the router stop forwarding them. Bounded: the
/// configured servers and one identifier each seen in their ACKs, at most
/// [`MAX_INTERCEPTED`] (more: not taken, counted).
#[derive(Debug, Default)]
pub struct InterceptSet {
    addresses: Vec<Ipv4Addr>,
    unannounced: Vec<Ipv4Addr>,
    refused: u64,
}

/// Most addresses intercepted: two for each server a configuration may name.
pub const MAX_INTERCEPTED: usize = 2 * crate::servers::MAX_SERVERS;

impl InterceptSet {
    /// Is `addr` intercepted?
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        self.addresses.contains(&addr)
    }

    /// The addresses.
    pub fn addresses(&self) -> &[Ipv4Addr] {
        &self.addresses
    }

    /// Addresses that could not be added (the bound).
    pub fn refused(&self) -> u64 {
        self.refused
    }

    pub(crate) fn learn(&mut self, addr: Ipv4Addr) {
        if addr.is_unspecified() || addr.is_broadcast() || self.contains(addr) {
            return;
        }
        if self.addresses.len() >= MAX_INTERCEPTED {
            self.refused += 1;
            return;
        }
        self.addresses.push(addr);
        self.unannounced.push(addr);
    }
}

impl Engine {
    /// An engine for `config` (already validated by the caller).
    pub fn new(config: EngineConfig) -> Self {
        let servers = ServerPool::new(
            &config.servers,
            config.server_selection,
            config.server_timeout,
            config.server_unanswered_limit,
            config.server_retry_interval,
        );
        let counters = Counters::new(config.downstream.len() + 1, config.servers.len());
        let mut table = ClientTable::new(config.proxy.max_clients, config.limits.pending_clients, config.proxy.seed);
        table.set_max_templates(config.limits.reply_templates);
        let transactions = Transactions::new(config.limits.transactions, config.limits.reply_timeout);
        let interface_budgets = vec![TokenBucket::full(); config.downstream.len()];
        let mut intercepted = InterceptSet::default();
        if config.mode.unicasts() == Unicasts::Intercepted {
            for s in &config.servers {
                intercepted.learn(*s);
            }
        }
        let holds = config.mode.caches() && !config.proxy.renew_reply_delay.is_zero();
        let held = if holds { config.proxy.max_held_replies } else { 0 };
        let mut timers = Timers::default();
        if config.mode.caches() {
            timers.arm(Timestamp::default(), Timer::Sweep);
        }
        let mut pool = PoolState::new(if config.mode.address_source() == AddressSource::ServersAndPool {
            config.downstream.len()
        } else {
            0
        });
        if pool.links() > 0 {
            pool.refill_armed = true;
            timers.arm(Timestamp::default(), Timer::PoolRefill);
        }
        let mut leasequery = LeasequeryState::new(config.servers.len());
        if config.leasequery.enabled && config.mode.caches() {
            // Fires after the restore: an empty table then is swept (`crate::leasequery`).
            leasequery.timer_filed = true;
            timers.arm(Timestamp::default(), Timer::Leasequery);
        }
        Engine {
            config,
            servers,
            counters,
            table,
            proxy: ProxyState::default(),
            timers,
            lapses: LapseQueue::default(),
            changes: Default::default(),
            scratch: vec![0u8; crate::outbox::OUT_BUFFER_SIZE].into_boxed_slice(),
            held: HeldReplies::new(held),
            transactions,
            interface_budgets,
            intercepted,
            pool,
            pool_fallbacks: Fallbacks::default(),
            event_time: Timestamp::default(),
            events: EventQueue::default(),
            leasequery,
        }
    }

    /// Handle one received datagram at time `now`; what must be sent is appended to
    /// `outbox`. Never panics, whatever the bytes.
    pub fn handle_datagram(&mut self, now: Timestamp, ingress: Ingress<'_>, outbox: &mut Outbox) -> Verdict {
        let verdict = self.datagram(now, ingress, outbox);
        self.compact_timers();
        verdict
    }

    fn datagram(&mut self, now: Timestamp, ingress: Ingress<'_>, outbox: &mut Outbox) -> Verdict {
        self.event_time = now;
        let downstream = self.downstream_index(ingress.ifindex);
        // Counters: the downstream link's slot, or the one after them for all others.
        let slot = downstream.unwrap_or(self.config.downstream.len());
        let msg = match Message::new_checked(ingress.data) {
            Ok(m) => m,
            Err(e) => {
                self.counters.count_malformed(e);
                return self.drop(slot, DropReason::Malformed);
            }
        };
        self.counters.received(slot, MessageKind::of(&msg));
        let upstream = self.config.upstream.contains(&ingress.ifindex);
        let caches = self.config.mode.caches();
        match msg.op() {
            Op::BootRequest => match downstream {
                // A client's unicast to another host (its renewal to its server) is routed
                // past us by the kernel: ours to see on the link, not to handle (a relay
                // that handled it too would send the server a second copy).
                Some(ds) if !self.addressed_to_us(ds, ingress.dst) => {
                    if self.intercepted.contains(ingress.dst) {
                        // Paper 4.2: a spoofing relay takes a client's unicast to its
                        // server (the router does not forward it) and handles it.
                        self.counters.proxy.add(ProxyEvent::Intercepted);
                        return self.cache_request(now, ds, &ingress, &msg, outbox);
                    }
                    self.drop(slot, DropReason::NotAddressedToUs)
                }
                Some(ds) if caches => self.cache_request(now, ds, &ingress, &msg, outbox),
                Some(ds) => self.relay_request(now, ds, ingress.dst, &msg, outbox),
                None if upstream => self.drop(slot, DropReason::RequestOnUpstream),
                None => self.drop(slot, DropReason::UnknownInterface),
            },
            Op::BootReply => {
                // A server reply arrives on an upstream interface; with none configured, on
                // any interface that is not downstream. One that arrives on a downstream
                // interface is a forgery from the client segment (whatever its IPv4 source
                // says: a loose rp_filter lets a spoofed source through), unless that
                // interface is also upstream (a one-armed relay): then only the match with
                // an outstanding request protects it (`crate::transactions`).
                let from_upstream = if self.config.upstream.is_empty() { downstream.is_none() } else { upstream };
                if !from_upstream {
                    let reason =
                        if downstream.is_some() { DropReason::ReplyOnDownstream } else { DropReason::UnknownInterface };
                    return self.drop(slot, reason);
                }
                if caches {
                    // RFC 4388: an answer to one of our own queries is ours, believed only as
                    // any server reply is (`crate::leasequery`).
                    if let Some(verdict) = self.leasequery_reply(now, slot, *ingress.src.ip(), &msg) {
                        return verdict;
                    }
                    self.cache_reply_from_server(now, slot, *ingress.src.ip(), &msg, outbox)
                } else {
                    self.relay_reply(now, slot, *ingress.src.ip(), &msg, outbox)
                }
            }
        }
    }

    /// Some host answered a probe: an ARP packet naming an address as its sender, or an ICMP
    /// echo reply. What it means is [`crate::proxy::probes`]; what follows is sent as
    /// timers fire.
    pub fn handle_probe_answer(&mut self, now: Timestamp, answer: ProbeAnswer, outbox: &mut Outbox) {
        self.event_time = now;
        if self.config.mode.caches() {
            self.probe_answered(now, answer);
            self.handle_timeout(now, outbox);
        }
    }

    /// The I/O layer could send none of `probe`'s packets (the kernel refused them): the
    /// probe proves nothing, and what waited for it is not answered unprobed
    /// ([`crate::proxy::probes`]); it is decided when [`Engine::handle_timeout`] next runs
    /// (at once: its timer is filed for `now`).
    pub fn handle_probe_unsent(&mut self, now: Timestamp, probe: &crate::ProbeRequest) {
        self.event_time = now;
        if self.config.mode.caches() {
            self.probe_unsent(now, probe);
        }
    }

    /// Answers to probes may have been lost (a probe socket's receive queue overflowed):
    /// every probe in flight is sent again before it may conclude that nobody uses its
    /// address ([`crate::proxy::probes`]).
    pub fn handle_probe_answers_lost(&mut self, now: Timestamp) {
        self.event_time = now;
        if self.config.mode.caches() {
            self.probe_answers_lost();
        }
    }

    /// When [`Engine::handle_timeout`] must next be called (`None`: never). A deadline at
    /// or before the current time means work was left for lack of outbox room: call again
    /// once the outbox has been sent.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match (self.timers.next_deadline(), self.lapses.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fire the timers due at `now`, in deadline order. Stops, leaving the rest due (and
    /// counting `timers_deferred`), when the outbox could not hold what the next one may
    /// send, so no accepted work is lost to the size of one batch; at most the timers filed
    /// on entry fire, so a timer re-armed at `now` cannot loop.
    pub fn handle_timeout(&mut self, now: Timestamp, outbox: &mut Outbox) {
        self.fire_timers(now, outbox);
        self.compact_timers();
    }

    fn fire_timers(&mut self, now: Timestamp, outbox: &mut Outbox) {
        self.event_time = now;
        // The most one timer sends: a local ACK plus a renewal to every server (paper 5.3,
        // past T2), a pool entry's RELEASE and REQUEST, or one probe.
        let room_needed = 2 + self.servers.servers().len();
        for _ in 0..self.timers.len() + self.lapses.len() {
            if self.poll_timeout().is_none_or(|t| t > now) {
                return;
            }
            if outbox.remaining() < room_needed || outbox.probes_remaining() == 0 {
                self.counters.proxy.add(ProxyEvent::TimersDeferred);
                return;
            }
            // The lapse queue's earliest, unless another timer falls due first (or with it).
            let lapse_first = match (self.timers.next_deadline(), self.lapses.next_deadline()) {
                (Some(t), Some(l)) => l < t,
                (None, Some(_)) => true,
                _ => false,
            };
            if lapse_first {
                let Some(record) = self.lapses.pop_due(now) else { return };
                self.lapse_due(now, record, outbox);
                continue;
            }
            let Some((at, timer)) = self.timers.pop_due(now) else { return };
            match timer {
                Timer::Probe(id) => self.probe_due(now, id, outbox),
                Timer::OfferWindow(id) => self.offer_window_due(now, id, outbox),
                Timer::HeldReply => {
                    // Whatever the outbox had no room for is still due: the timer is filed
                    // again for the oldest held reply, due or not.
                    self.held.timer_fired();
                    let _all_due_sent = self.held.release(now, outbox);
                    if let Some(at) = self.held.timer_to_file() {
                        self.timers.arm(at, Timer::HeldReply);
                    }
                }
                Timer::Sweep => self.sweep_due(now),
                Timer::Pool(r) => self.pool_entry_due(now, at, r, outbox),
                Timer::PoolRefill => {
                    if !self.pool.reconciled {
                        // The store has been loaded by now (restore comes before the first
                        // call): entries meet their clients again.
                        self.pool.reconciled = true;
                        self.pool_reconcile();
                    }
                    self.pool_refill(now);
                }
                Timer::PoolFallback(id) => self.pool_fallback_due(now, *id, outbox),
                Timer::Leasequery => self.leasequery_due(now, outbox),
            }
        }
    }

    /// Remove the record of `key` (operator flush). True if there was one.
    pub fn flush_client(&mut self, key: &ClientKey) -> bool {
        let slot = self.table.find(key);
        self.flush(slot) == 1
    }

    /// Remove the record holding `address`. True if there was one.
    pub fn flush_address(&mut self, address: Ipv4Addr) -> bool {
        let slot = self.table.find_address(address);
        self.flush(slot) == 1
    }

    /// Remove every record; returns how many there were.
    pub fn flush_all(&mut self) -> usize {
        let slots: Vec<_> = self.table.iter().map(|(s, _)| s).collect();
        self.flush(slots)
    }

    /// This relay became the standby of a pair sharing its table (the daemon's `[ha]`):
    /// drop every record, counted `handed_over` (the active relay holds them, in the
    /// shared store). Returns how many there were. The changes this makes are the caller's
    /// to discard: the standby must not write them.
    /// Leasequery forgets its state too (queries, sweeps, what each server did): the
    /// check for an empty table is made again when the relay serves
    /// ([`Engine::set_serving`]).
    pub fn hand_over(&mut self) -> usize {
        self.leasequery.reset();
        let slots: Vec<_> = self.table.iter().map(|(s, _)| s).collect();
        self.remove_all_of(slots, crate::table::Removal::HandedOver)
    }

    /// Hand every change since the last call to `f` (an upsert carries the record encoded;
    /// a key whose record is gone is a delete). Returns false when too many changes piled
    /// up and the caller must instead write the whole table ([`Engine::dump`]).
    pub fn drain_changes(&mut self, scratch: &mut Vec<u8>, f: impl FnMut(Change<'_>)) -> bool {
        self.persist_changes(scratch, f)
    }

    /// Every record worth keeping, encoded (the paper's whole-table dump, paper 5.4). The
    /// shared reply templates its records name go with it ([`Engine::dump_templates`]).
    pub fn dump(&self, scratch: &mut Vec<u8>, f: impl FnMut(&ClientKey, &[u8])) {
        self.persist_dump(scratch, f)
    }

    /// Every shared reply template (paper 5.7, [`crate::templates`]) as `(id, bytes)`, to be
    /// stored under [`crate::persist::template_key`] with a [`Engine::dump`].
    pub fn dump_templates(&self, f: impl FnMut(u64, &[u8])) {
        self.persist_dump_templates(f)
    }

    /// Load records read back from the store. Records past `max_age` (paper 5.6) are
    /// dropped, as are records for interfaces no longer configured (records past their
    /// server lease are kept: paper 5.7); records dated in the future are clamped to `now`.
    pub fn restore(
        &mut self,
        now: Timestamp,
        records: impl IntoIterator<Item = (ClientRecord, String)>,
    ) -> RestoreReport {
        self.event_time = now;
        let mut report = RestoreReport::default();
        let records = records.into_iter();
        self.table.reserve(records.size_hint().0);
        for (rec, iface) in records {
            self.restore_record(now, rec, &iface, &mut report);
        }
        report.loaded = self.table.len();
        self.compact_timers();
        report
    }

    /// Restore one record (see [`Engine::restore`]); `report` counts what happened. For
    /// start-up straight from the store's iterator, without collecting the records first
    /// (call [`Engine::reserve`] with the count beforehand).
    pub fn restore_one(&mut self, now: Timestamp, rec: ClientRecord, iface: &str, report: &mut RestoreReport) {
        self.event_time = now;
        self.restore_record(now, rec, iface, report);
        self.compact_timers();
    }

    /// Bytes the timers take: the lapse queue (one 12-byte entry a record with a short
    /// client lease) and the heap of the others.
    pub fn timers_memory(&self) -> usize {
        self.timers.memory() + self.lapses.memory()
    }

    /// Make room for `records` more client records (before a large restore).
    pub fn reserve(&mut self, records: usize) {
        self.table.reserve(records);
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The client table (caching modes).
    pub fn table(&self) -> &ClientTable {
        &self.table
    }

    /// The servers and their liveness.
    pub fn servers(&self) -> &ServerPool {
        &self.servers
    }

    /// Probes in flight.
    pub fn pending_probes(&self) -> usize {
        self.proxy.probes.len()
    }

    /// The most probes in flight at once since the engine started (to size
    /// `max_pending_probes`).
    pub fn pending_probes_peak(&self) -> usize {
        self.proxy.probes.peak()
    }

    /// Forwarded requests waiting for their reply.
    pub fn outstanding_requests(&self) -> &Transactions {
        &self.transactions
    }

    /// Pool mode: the addresses leased ahead (paper 4.3). Empty in the other modes.
    pub fn pool(&self) -> &PoolState {
        &self.pool
    }

    /// Pool mode: DISCOVERs waiting to see whether a server answers them.
    pub fn pool_fallbacks_waiting(&self) -> usize {
        self.pool_fallbacks_waiting_len()
    }

    /// Spoofing mode: the server addresses whose client unicasts are ours to take (paper
    /// 4.2). Empty in the other modes.
    pub fn intercepted_addresses(&self) -> &InterceptSet {
        &self.intercepted
    }

    /// Spoofing mode: hand `f` every intercepted address the I/O layer has not been told
    /// of yet (a server identifier first seen in an ACK), so that the router stops
    /// forwarding client unicasts to it.
    pub fn drain_new_intercepts(&mut self, mut f: impl FnMut(Ipv4Addr)) {
        for a in self.intercepted.unannounced.drain(..) {
            f(a);
        }
    }

    /// A server identifier seen in a believed reply or a restored record: intercepted from
    /// now on in spoofing mode.
    pub(crate) fn learn_server_id(&mut self, id: Ipv4Addr) {
        if self.config.mode.unicasts() == Unicasts::Intercepted {
            self.intercepted.learn(id);
        }
    }

    /// Timers filed (live and stale), lapse timers included.
    pub fn timers_filed(&self) -> usize {
        self.timers.len() + self.lapses.len()
    }

    /// Lapse timers filed (live and stale): at most twice the records the table may hold
    /// (`max_clients` + `[limits] pending_clients`).
    pub fn lapse_timers_filed(&self) -> usize {
        self.lapses.len()
    }

    /// RFC 4388 leasequery: queries outstanding, sweeps left, what each server does
    /// ([`crate::leasequery`]).
    pub fn leasequery(&self) -> &LeasequeryState {
        &self.leasequery
    }

    /// Offer windows open (`max_offer_windows`).
    pub fn offer_windows(&self) -> usize {
        self.proxy.offers.len()
    }

    /// Local answers held back (`max_held_replies`).
    pub fn held_replies(&self) -> usize {
        self.held.len()
    }

    /// Names of the counter interface slots: each downstream interface, then "upstream"
    /// (everything else).
    pub fn interface_slot_names(&self) -> impl Iterator<Item = &str> {
        self.config.downstream.iter().map(|d| d.name.as_str()).chain(core::iter::once("upstream"))
    }

    /// Most timers live at once in the heap (`timers.rs`): two per probe (its deadline, and
    /// its outcome once an answer decides it), one per offer window, the held-reply timer
    /// and the sweep; in pool mode also one per pool entry (at most
    /// [`crate::pool::MAX_ENTRIES_PER_LINK`] a link), the refill, and one per DISCOVER
    /// waiting for its fallback (`[limits] pending_clients`).
    fn live_timer_bound(&self) -> usize {
        let p = &self.config.proxy;
        // The held-reply timer, the sweep and the leasequery timer.
        let mut bound = 2 * p.max_pending_probes + p.max_offer_windows + 3;
        if self.pool.links() > 0 {
            bound += self.pool.len() + 1 + self.config.limits.pending_clients;
        }
        bound
    }

    /// Most lapse timers live at once: one per record (bound and pending): the records the
    /// table may hold, or those it holds when there are more (a reload that lowered
    /// `max_clients` or `pending_clients` evicts nothing at once: the table shrinks to the
    /// new bounds only as records are added).
    fn live_lapse_bound(&self) -> usize {
        let may_hold = self.config.proxy.max_clients.max(1) + self.config.limits.pending_clients.max(1);
        may_hold.max(self.table.len())
    }

    /// Drop the stale timers once the heap (or the lapse queue) holds twice what can be live
    /// (`timers.rs`), so churn (records evicted, probes and windows forgotten before their
    /// deadline, pool entries re-armed or dropped) cannot grow it beyond a bound set by
    /// configuration (for the lapse queue: or by the records held, when a reload lowered the
    /// bounds below them; against the bounds alone, every call would compact a queue of live
    /// entries, a sort of the whole queue per timer).
    fn compact_timers(&mut self) {
        if self.lapses.len() > 2 * self.live_lapse_bound() {
            let table = &self.table;
            self.lapses
                .retain_earliest(|r| table.resolve(r).and_then(|s| table.get(s)).is_some_and(|r| r.lapse_filed()));
        }
        if self.timers.len() <= 2 * self.live_timer_bound() {
            return;
        }
        let (probes, offers) = (&self.proxy.probes, &self.proxy.offers);
        let (pool, fallbacks) = (&self.pool, &self.pool_fallbacks);
        // A timer filed again for a deadline it already had (an entry's or a record's timer
        // interrupted by an earlier one, then re-armed for the same deadline) is redundant:
        // the first to fire clears the deadline and the others are ignored. One is kept.
        let mut seen = std::collections::BTreeSet::new();
        self.timers.retain(|at, timer| {
            let live = match timer {
                Timer::Probe(id) => probes.contains(*id),
                Timer::OfferWindow(id) => offers.contains(*id),
                Timer::Pool(r) => pool.get(*r).is_some_and(|e| e.timer == Some(at)),
                Timer::PoolFallback(id) => fallbacks.is_waiting(id),
                Timer::HeldReply | Timer::Sweep | Timer::PoolRefill | Timer::Leasequery => true,
            };
            live && seen.insert((at, timer.clone()))
        });
    }

    /// Index of the downstream interface `ifindex`.
    /// (Only an interface that is up: nothing is believed to come from one that is not.)
    pub(crate) fn downstream_index(&self, ifindex: u32) -> Option<usize> {
        self.config.downstream.iter().position(|d| d.ifindex == ifindex && d.state == crate::config::LinkState::Up)
    }

    /// Is a request to `dst` on downstream link `ds` for us: a broadcast on that link, or
    /// one of our addresses?
    fn addressed_to_us(&self, ds: usize, dst: Ipv4Addr) -> bool {
        let on_link_broadcast =
            self.config.downstream.get(ds).is_some_and(|d| crate::proxy::requests::is_broadcast(dst, &d.address));
        on_link_broadcast || self.is_our_address(dst)
    }

    /// Is `addr` one of our own addresses (any downstream, source or upstream address)?
    pub(crate) fn is_our_address(&self, addr: Ipv4Addr) -> bool {
        self.config.downstream.iter().any(|d| d.owns_giaddr(addr)) || self.config.upstream_addresses.contains(&addr)
    }

    /// Count a drop and say so.
    pub(crate) fn drop(&mut self, slot: usize, reason: DropReason) -> Verdict {
        self.counters.dropped(slot, reason);
        Verdict::Dropped(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_mode_files_no_timers() {
        let e = Engine::new(EngineConfig::relay(vec![], vec![], vec![]));
        assert_eq!(e.poll_timeout(), None);
        assert_eq!(e.config().mode, crate::config::Mode::Relay);
    }

    /// Found by the engine fuzzer (`crates/fuzz/regressions.txt`, `bound_exceeded`,
    /// mode=pool): an interrupted pool entry timer is filed again for the deadline it had, so
    /// an entry can hold several timers for its one deadline, each of which looks live (its
    /// deadline is the entry's). Identical timers are redundant (the first to fire clears
    /// the deadline, the others are then ignored): compaction keeps one of each.
    #[test]
    fn compaction_keeps_one_of_identical_timers() {
        use crate::config::{Downstream, Ipv4Net, Mode};
        let ds = Downstream::up("rd0", 2, Ipv4Net { addr: Ipv4Addr::new(10, 77, 1, 1), prefix_len: 24 }, None);
        let mut c = EngineConfig::relay(vec![Ipv4Addr::new(10, 77, 0, 1)], vec![ds], vec![3]);
        c.mode = Mode::Pool;
        c.proxy.max_clients = 1;
        c.proxy.max_pending_probes = 1;
        c.proxy.max_offer_windows = 1;
        c.limits.pending_clients = 1;
        let mut e = Engine::new(c);
        let now = Timestamp::from_secs(100);
        let t1 = Timestamp::from_secs(1900);
        let entries: Vec<_> = (0..4).filter_map(|_| e.pool.create(0, now)).collect();
        for r in &entries {
            if let Some(entry) = e.pool.get_mut(*r) {
                entry.timer = Some(t1);
            }
            for _ in 0..8 {
                e.timers.arm(t1, Timer::Pool(*r));
            }
        }
        assert!(e.timers.len() > 2 * e.live_timer_bound());
        e.compact_timers();
        let pool_timers = e.timers.len() - 2; // the sweep and the refill
        assert_eq!(pool_timers, entries.len(), "one timer an entry");
        assert!(e.timers.len() <= e.live_timer_bound());
    }

    /// A reload that lowers `max_clients` or `pending_clients` below the records held evicts
    /// nothing at once (`ClientTable::set_bounds`): their live lapse timers then number more
    /// than twice the new bound. Compaction measured against the bound alone ran at every timeout, a sort
    /// of the whole queue each time (a million clients: some 100 ms per timer, the loop
    /// stalled); measured against the records held, it runs once the queue holds twice
    /// those.
    #[test]
    fn lapse_queue_compaction_follows_the_records_held_after_a_reload_lowers_the_bound() {
        use crate::table::ClientKind;
        let mut c = EngineConfig::relay(vec![Ipv4Addr::new(10, 77, 0, 1)], vec![], vec![3]);
        c.mode = crate::config::Mode::Proxy;
        c.proxy.client_lease = Some(core::time::Duration::from_secs(60));
        // Records without a server answer (pending) are simplest to make here.
        c.proxy.max_clients = 1;
        c.limits.pending_clients = 100;
        let mut e = Engine::new(c);
        let now = Timestamp::from_secs(100);
        let mut outbox = Outbox::new(16);
        let mut first = None;
        for i in 0..100u8 {
            let mut r = ClientRecord::new(ClientKey::hardware(1, &[2, 0, 0, 0, 1, i]), ClientKind::Dhcp, 0, now);
            r.lease_secs = 3600;
            r.set_client_lease_end(Some(now.saturating_add(core::time::Duration::from_secs(60))));
            let (slot, evicted) = e.table.insert(r);
            assert!(evicted.is_none());
            e.arm_lapse(slot);
            first = first.or(e.table.reference(slot));
        }
        // The reload: `pending_clients` lowered to 1.
        let mut lowered = e.config.clone();
        lowered.limits.pending_clients = 1;
        e.reconfigure(now, lowered, &mut outbox).expect("reloaded");
        assert_eq!(e.table.len(), 100, "nothing evicted at once");
        // One record's redundant second entry (as an end moved earlier leaves): compaction
        // would drop it.
        e.lapses.file(now.saturating_add(core::time::Duration::from_secs(100)), first.expect("a record"));
        assert_eq!(e.lapses.len(), 101);
        for _ in 0..3 {
            e.handle_timeout(now, &mut outbox);
            assert_eq!(e.lapses.len(), 101, "no more than twice the records held: left as it is");
        }
        // Stale entries beyond twice the records held: compacted.
        let gone = first.expect("a record");
        e.table.remove(gone.slot);
        for _ in 0..100 {
            e.lapses.file(now.saturating_add(core::time::Duration::from_secs(100)), gone);
        }
        e.handle_timeout(now, &mut outbox);
        assert_eq!(e.lapses.len(), 99, "one entry a live record");
    }
}
