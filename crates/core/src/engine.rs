//! The engine and its whole sans-IO surface, in one place (quinn-proto's `Connection`
//! keeps `handle_event` / `poll_timeout` / `handle_timeout` / `poll_transmit` together).
//!
//! | entry | what comes in | what it does |
//! |---|---|---|
//! | [`Engine::handle_datagram`] | one received UDP payload ([`Ingress`]) | relays it, or (caching modes) answers or forwards it as Table 1 says |
//! | [`Engine::handle_probe_answer`] | an ARP or ICMP answer to a [`crate::ProbeRequest`] | marks the probes it decides ([`crate::proxy::probes`]) |
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
use crate::outbox::{HeldReplies, Outbox};
use crate::persist::{Change, ChangeLog, RestoreReport};
use crate::proxy::ProxyState;
use crate::servers::ServerPool;
use crate::table::{ClientKey, ClientRecord, ClientTable};
use crate::time::Timestamp;
use crate::timers::{Timer, Timers};
use crate::verdict::{DropReason, Verdict};

/// One received UDP datagram, as the I/O layer saw it.
#[derive(Debug, Clone, Copy)]
pub struct Ingress<'a> {
    /// Interface it arrived on (IP_PKTINFO `ipi_ifindex`).
    pub ifindex: u32,
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
    /// Every timer ([`crate::timers`]).
    pub(crate) timers: Timers,
    pub(crate) changes: ChangeLog,
    /// Working space for expanding and rewriting messages (no allocation per packet).
    pub(crate) scratch: Box<[u8]>,
    /// Local answers to unicast renewals, held for `renew_reply_delay`.
    pub(crate) held: HeldReplies,
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
        let table = ClientTable::new(config.proxy.max_clients, config.proxy.max_tracked_requests, config.proxy.seed);
        let holds = config.mode.caches() && !config.proxy.renew_reply_delay.is_zero();
        let held = if holds { config.proxy.max_held_replies } else { 0 };
        let mut timers = Timers::default();
        if config.mode.caches() {
            timers.arm(Timestamp::default(), Timer::Sweep);
        }
        Engine {
            config,
            servers,
            counters,
            table,
            proxy: ProxyState::default(),
            timers,
            changes: Default::default(),
            scratch: vec![0u8; crate::outbox::OUT_BUFFER_SIZE].into_boxed_slice(),
            held: HeldReplies::new(held),
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
        let slot = self.slot_of(ingress.ifindex);
        let msg = match Message::new_checked(ingress.data) {
            Ok(m) => m,
            Err(e) => {
                self.counters.count_malformed(e);
                return self.drop(slot, DropReason::Malformed);
            }
        };
        self.counters.received(slot, MessageKind::of(&msg));
        let downstream = self.downstream_index(ingress.ifindex);
        let upstream = self.config.upstream.contains(&ingress.ifindex);
        let caches = self.config.mode.caches();
        match msg.op() {
            Op::BootRequest => match downstream {
                Some(ds) if caches => self.cache_request(now, ds, &ingress, &msg, outbox),
                Some(ds) => self.relay_request(now, ds, &msg, outbox),
                None if upstream => self.drop(slot, DropReason::RequestOnUpstream),
                None => self.drop(slot, DropReason::UnknownInterface),
            },
            Op::BootReply => {
                if downstream.is_none() && !upstream && !self.config.upstream.is_empty() {
                    return self.drop(slot, DropReason::UnknownInterface);
                }
                if caches {
                    self.cache_reply_from_server(now, slot, *ingress.src.ip(), &msg, outbox)
                } else {
                    self.relay_reply(now, slot, *ingress.src.ip(), &msg, outbox)
                }
            }
        }
    }

    /// Some host answered a probe: an ARP reply or request naming `address` as its sender
    /// (`mac` is then its hardware address), or an ICMP echo reply from it (`mac` None).
    /// What it means is [`crate::proxy::probes`]; what follows is sent as timers fire.
    pub fn handle_probe_answer(
        &mut self,
        now: Timestamp,
        ifindex: u32,
        address: Ipv4Addr,
        mac: Option<[u8; 6]>,
        outbox: &mut Outbox,
    ) {
        if self.config.mode.caches() {
            self.probe_answered(now, ifindex, address, mac);
            self.handle_timeout(now, outbox);
        }
    }

    /// When [`Engine::handle_timeout`] must next be called (`None`: never). A deadline at
    /// or before the current time means work was left for lack of outbox room: call again
    /// once the outbox has been sent.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.next_deadline()
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
        // The most one timer sends: a local ACK plus a renewal to every server (paper 5.3,
        // past T2), or one probe.
        let room_needed = 1 + self.servers.servers().len();
        for _ in 0..self.timers.len() {
            if self.timers.next_deadline().is_none_or(|t| t > now) {
                return;
            }
            if outbox.remaining() < room_needed || outbox.probes_remaining() == 0 {
                self.counters.proxy.add(ProxyEvent::TimersDeferred);
                return;
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
                Timer::Lapse(key) => self.lapse_due(now, at, key, outbox),
                Timer::Sweep => self.sweep_due(now),
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

    /// Hand every change since the last call to `f` (an upsert carries the record encoded;
    /// a key whose record is gone is a delete). Returns false when too many changes piled
    /// up and the caller must instead write the whole table ([`Engine::dump`]).
    pub fn drain_changes(&mut self, scratch: &mut Vec<u8>, f: impl FnMut(Change<'_>)) -> bool {
        self.persist_changes(scratch, f)
    }

    /// Every record worth keeping, encoded (the paper's whole-table dump, paper 5.4).
    pub fn dump(&self, scratch: &mut Vec<u8>, f: impl FnMut(&ClientKey, &[u8])) {
        self.persist_dump(scratch, f)
    }

    /// Load records read back from the store. Records past `max_age` (paper 5.6) or past
    /// their server lease are dropped, as are records for interfaces no longer configured;
    /// records dated in the future are clamped to `now`.
    pub fn restore(
        &mut self,
        now: Timestamp,
        records: impl IntoIterator<Item = (ClientRecord, String)>,
    ) -> RestoreReport {
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
        self.restore_record(now, rec, iface, report);
        self.compact_timers();
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

    /// Timers filed (live and stale).
    pub fn timers_filed(&self) -> usize {
        self.timers.len()
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

    /// Most timers live at once (`timers.rs`): two per probe (its deadline, and its outcome
    /// once an answer decides it), one per offer window, one lapse per record, the
    /// held-reply timer and the sweep.
    fn live_timer_bound(&self) -> usize {
        let p = &self.config.proxy;
        2 * p.max_pending_probes + p.max_offer_windows + p.max_clients.max(1) + 2
    }

    /// Drop the stale timers once the heap holds twice what can be live (`timers.rs`), so
    /// churn (records evicted, probes and windows forgotten before their deadline) cannot
    /// grow it beyond a bound set by configuration.
    fn compact_timers(&mut self) {
        if self.timers.len() <= 2 * self.live_timer_bound() {
            return;
        }
        let (probes, offers, table) = (&self.proxy.probes, &self.proxy.offers, &self.table);
        self.timers.retain(|at, timer| match timer {
            Timer::Probe(id) => probes.contains(*id),
            Timer::OfferWindow(id) => offers.contains(*id),
            Timer::Lapse(key) => table.find(key).and_then(|s| table.get(s)).is_some_and(|r| r.lapse_armed == Some(at)),
            Timer::HeldReply | Timer::Sweep => true,
        });
    }

    /// Index of the downstream interface `ifindex`.
    pub(crate) fn downstream_index(&self, ifindex: u32) -> Option<usize> {
        self.config.downstream.iter().position(|d| d.ifindex == ifindex)
    }

    /// Counter slot of an interface.
    pub(crate) fn slot_of(&self, ifindex: u32) -> usize {
        self.downstream_index(ifindex).unwrap_or(self.config.downstream.len())
    }

    /// Is `addr` one of our own addresses (any downstream or upstream address)?
    pub(crate) fn is_our_address(&self, addr: Ipv4Addr) -> bool {
        self.config.downstream.iter().any(|d| d.all_addresses.contains(&addr))
            || self.config.upstream_addresses.contains(&addr)
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
}
