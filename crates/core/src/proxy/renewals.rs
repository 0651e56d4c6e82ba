//! Automated lease renewals (paper 2.3, 5.3): clients get short leases from us
//! (`client_lease`), renew them with us, and we keep the server's lease renewed.
//!
//! - Every lease a client gets (a local ACK, or a server ACK passed on) is at most
//!   `client_lease` ([`crate::lease::local_lease_secs`], `shorten_reply`).
//! - Its end is remembered (`client_lease_end`) and one lapse timer per record watches
//!   it (the lapse queue of `timers.rs`, `ClientRecord::lapse_filed`). Paper 2.3: "When a short term lease expires, the CDRA
//!   sends a RELEASE message to the server" — after a probe (paper 3.3,
//!   [`super::probes`]): nobody answers, RELEASE; another host answers, release nothing
//!   (A.2); the client's own MAC answers, it is still there and keeps everything.
//! - Paper 5.3: past the server lease's T1 a local ACK also renews upstream
//!   (`renew_upstream_if_due`). This needs no timer: it happens when the client
//!   asks, at most once per `UPSTREAM_RENEWAL_RETRY` (the table remembers the renewals sent
//!   that long, [`crate::table::ClientTable::upstream_renewal_sent`]).

use core::time::Duration;

use cdra_wire::options::OptionCode;
use cdra_wire::{Message, MessageBuilder, MessageType, Op};

use super::ClientRequest;
use crate::counters::{MessageKind, ProxyEvent};
use crate::engine::Engine;
use crate::lease::{default_t1, default_t2, finite_secs, INFINITE};
use crate::outbox::{Destination, Emitted, Outbox};
use crate::relay::{Targets, Track, Upstream};
use crate::table::{ParamList, Removal, Slot};
use crate::time::Timestamp;
use crate::transactions::Expect;

/// An upstream renewal without an answer is sent again after this long.
pub(crate) const UPSTREAM_RENEWAL_RETRY: Duration = Duration::from_secs(30);
/// A client's short lease counts as lapsed this long after its end (message latency).
pub(crate) const LAPSE_GRACE: Duration = Duration::from_secs(2);
/// A lapse whose probe cannot start (`max_pending_probes` in flight) is looked at again
/// after this long.
const LAPSE_RETRY: Duration = Duration::from_secs(1);

impl Engine {
    /// With automated lease renewals, remember when the client's short lease ends so a lapse
    /// is noticed.
    pub(crate) fn note_client_lease(&mut self, now: Timestamp, slot: Slot, lease_secs: u32) {
        if self.client_lease_of(slot).is_none() || lease_secs == INFINITE {
            // No short lease: the client holds the server's lease now, and a short one it
            // held before (a pool client's, before it moved onto a lease of its own) is
            // superseded: it must not lapse at that one's end.
            self.forget_client_lease(slot);
            return;
        }
        let end = now.saturating_add(Duration::from_secs(u64::from(lease_secs)));
        let Some(r) = self.table.get_mut(slot) else { return };
        r.set_client_lease_end(Some(end));
        let key = r.key.clone();
        self.note_change(&key);
        self.arm_lapse(slot);
    }

    /// The client in `slot` holds no short lease from us any more (the server's own was
    /// passed on to it): nothing lapses.
    pub(crate) fn forget_client_lease(&mut self, slot: Slot) {
        let Some(r) = self.table.get_mut(slot) else { return };
        if r.client_lease_end().is_some() {
            r.set_client_lease_end(None);
            let key = r.key.clone();
            self.note_change(&key);
        }
    }

    /// File the record's lapse timer for `client_lease_end` + grace, unless one filed
    /// earlier will see it (`ClientRecord::lapse_filed`: it files another when it fires
    /// early).
    pub(crate) fn arm_lapse(&mut self, slot: Slot) {
        let Some(r) = self.table.get_mut(slot) else { return };
        let Some(end) = r.client_lease_end() else { return };
        if r.lapse_filed() {
            return;
        }
        r.set_lapse_filed(true);
        if let Some(record) = self.table.reference(slot) {
            self.lapses.file(end.saturating_add(LAPSE_GRACE), record);
        }
    }

    /// A lapse timer of `record` fell due: if its short lease is over (and the grace), the
    /// lapse (paper 2.3); if not, another timer for its end.
    pub(crate) fn lapse_due(&mut self, now: Timestamp, record: crate::table::RecordRef, outbox: &mut Outbox) {
        let Some(slot) = self.table.resolve(record) else { return };
        let Some(r) = self.table.get_mut(slot) else { return };
        let key = r.key.clone();
        if !r.lapse_filed() {
            return; // stale: no lapse is watched, or a later timer was made redundant by this one's
        }
        r.set_lapse_filed(false);
        let lapsed = r.client_lease_end().is_some_and(|e| e.saturating_add(LAPSE_GRACE) <= now);
        if !lapsed || r.reply.is_none() {
            // Renewed meanwhile: watch the new end.
            self.arm_lapse(slot);
            return;
        }
        if self.proxy.probes.is_probing(&key) {
            // A local ACK's probe runs: its outcome decides; look again after it.
            self.rearm_lapse(now, slot);
            return;
        }
        let link = self.table.get(slot).map(|r| usize::from(r.downstream));
        let up =
            link.and_then(|l| self.config.downstream.get(l)).is_some_and(|d| d.state == crate::config::LinkState::Up);
        if !up {
            // Its link is not up: the client could not renew; nothing lapses until it is.
            // Left unwatched (not filed again every second, work growing with the records
            // of a link that stays down): the link's return watches it again
            // (`arm_link_lapses`), and a lapse past due then runs at once.
            return;
        }
        if self.config.proxy.safe_network {
            self.counters.proxy.add(ProxyEvent::Lapsed);
            self.record_event(crate::events::EventKind::Proxy(ProxyEvent::Lapsed), slot, None);
            self.send_release(slot, outbox);
            return;
        }
        if self.start_lapse_probe(now, slot, outbox) {
            self.counters.proxy.add(ProxyEvent::Lapsed);
            self.record_event(crate::events::EventKind::Proxy(ProxyEvent::Lapsed), slot, None);
        } else {
            // Rather than release unprobed, try again shortly.
            self.rearm_lapse(now, slot);
        }
    }

    /// Link `ds` is up again: its records whose lapse waited for it are watched again.
    pub(crate) fn arm_link_lapses(&mut self, ds: usize) {
        let waiting: Vec<Slot> = self
            .table
            .iter()
            .filter(|(_, r)| usize::from(r.downstream) == ds && !r.lapse_filed())
            .map(|(slot, _)| slot)
            .collect();
        for slot in waiting {
            self.arm_lapse(slot);
        }
    }

    pub(crate) fn rearm_lapse(&mut self, now: Timestamp, slot: Slot) {
        let Some(r) = self.table.get_mut(slot) else { return };
        r.set_lapse_filed(true);
        if let Some(record) = self.table.reference(slot) {
            self.lapses.file(now.saturating_add(LAPSE_RETRY), record);
        }
    }

    /// A lapsed client's own MAC answered the probe: it is still there. Its record and
    /// server lease stay; it is watched for another `client_lease`.
    pub(crate) fn client_still_there(&mut self, now: Timestamp, slot: Slot) {
        let Some(short) = self.client_lease_of(slot) else { return };
        let Some(r) = self.table.get_mut(slot) else { return };
        r.set_client_lease_end(Some(now.saturating_add(short)));
        let key = r.key.clone();
        self.note_change(&key);
        self.arm_lapse(slot);
    }

    /// The short lease the client in `slot` gets from us, if any: `[pool] client_lease` for
    /// a pool client, `[proxy] client_lease` for the others.
    pub(crate) fn client_lease_of(&self, slot: Slot) -> Option<Duration> {
        match self.table.get(slot).map(|r| r.origin()) {
            Some(crate::table::Origin::Pool { .. }) => Some(self.config.pool.client_lease),
            _ => self.config.proxy.client_lease,
        }
    }

    /// The longest short lease any client holds from us: `[proxy] client_lease`, and in pool
    /// mode `[pool] client_lease` (a pool client moved onto a lease of its own still holds
    /// the pool's until it renews).
    pub(crate) fn longest_client_lease(&self) -> Option<Duration> {
        let pool = (self.config.mode.address_source() == crate::mode::AddressSource::ServersAndPool)
            .then_some(self.config.pool.client_lease);
        match (self.config.proxy.client_lease, pool) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Give the client the short lease in a server reply we pass on (paper 5.1: "the
    /// configuration information relative to the leases ... must also be modified before
    /// forwarding to the client"): the datagram `sent`, as [`Engine::deliver_to_client`]
    /// wrote it. Returns the lease the client got (`None`: not shortened).
    pub(crate) fn shorten_reply(&mut self, outbox: &mut Outbox, sent: Emitted) -> Option<u32> {
        let short = finite_secs(self.config.proxy.client_lease?);
        let out = outbox.get_mut(sent)?;
        let mut m = Message::new_unchecked(out.payload_mut());
        let lease = m.lease_time()?.min(short);
        m.patch_option_u32(OptionCode::LEASE_TIME, lease);
        m.patch_option_u32(OptionCode::RENEWAL_T1, default_t1(lease));
        m.patch_option_u32(OptionCode::REBINDING_T2, default_t2(lease));
        Some(lease)
    }

    /// Paper 2.3 / 3.3: release a lapsed client's lease at its server, as the client would:
    /// its address in ciaddr, its hardware address, its client identifier, and the server's
    /// identifier (RFC 2131 4.4.6). Then forget the client.
    pub(crate) fn send_release(&mut self, slot: Slot, outbox: &mut Outbox) {
        if self.pool_entry_of(slot).is_some() {
            // A pool client's lease at the server is the pool's: its address goes back to
            // the pool, nothing to the server.
            self.pool_client_gone(slot, Removal::ReturnedToPool);
            return;
        }
        let xid = self.table.next_random() as u32;
        let built = self.table.get(slot).and_then(|r| {
            let server = r.server()?;
            let iface = self.config.downstream.get(usize::from(r.downstream))?;
            let (emitted, out) = outbox.emit()?;
            // The cached reply names the client's hardware address (its key's, or, for a
            // client keyed by option 61, the one it was answered at).
            let n = r.expand_reply(&mut self.scratch)?;
            let reply = Message::new_unchecked(self.scratch.get(..n)?);
            let built = (|| {
                let mut b = MessageBuilder::new(out.buffer_mut(), Op::BootRequest, Some(MessageType::Release))?;
                b.xid(xid).ciaddr(r.address).giaddr(iface.address.addr).hops(1).chaddr(reply.htype(), reply.chaddr());
                b.option(OptionCode::SERVER_ID, &server.id.octets())?;
                if let Some(id) = r.key.client_id_bytes() {
                    b.option(OptionCode::CLIENT_ID, id)?;
                }
                b.finish()
            })();
            match built {
                Ok(len) => {
                    out.set_len(len);
                    out.destination = Destination::Server { addr: server.addr, relay_port: false };
                    Some(emitted)
                }
                Err(_) => {
                    outbox.unwind();
                    None
                }
            }
        });
        if built.is_some() {
            self.counters.proxy.add(ProxyEvent::ReleaseSent);
            let upstream = self.config.downstream.len();
            self.counters.sent(upstream, MessageKind::Dhcp(MessageType::Release));
        } else {
            self.counters.proxy.add(ProxyEvent::ReleaseNotSent);
        }
        self.drop_record(slot, Removal::Released);
    }

    /// Paper 5.3: "If it's past T1, the relay will still issue a new short term lease to the
    /// client ... and it will also forward the lease request to the client's server or all
    /// known servers depending on whether the lease has passed T2. When the server sends the
    /// ACK back to the relay, the relay updates the lease information in the client DB and
    /// silently discards the packet." Done after every local ACK (RENEW, and also
    /// INIT-REBOOT and SELECTING, so a client that reboots more often than it renews keeps
    /// its server lease fresh); the client's ACK never waits for it. At most one renewal per
    /// client is in flight within `UPSTREAM_RENEWAL_RETRY`.
    pub(crate) fn renew_upstream_if_due<T: AsRef<[u8]>>(
        &mut self,
        req: &ClientRequest<'_, T>,
        slot: Slot,
        outbox: &mut Outbox,
    ) {
        let (now, request) = (req.now, req.msg);
        let Some(r) = self.table.get(slot) else { return };
        let sent = self.table.upstream_renewal_sent(slot);
        let recently = sent.is_some_and(|sent| now.since(sent) < UPSTREAM_RENEWAL_RETRY);
        if !r.past_t1(now) || recently {
            return;
        }
        let past_t2 = r.past_t2(now);
        let server = self.server_of(r.server());
        let targets = match server {
            Some((i, _)) if !past_t2 => Targets::One(i),
            _ => Targets::Chosen,
        };
        // A SELECTING request names us; the server gets its own identifier back.
        let server_id = match (request.server_identifier(), server) {
            (Some(_), Some((_, b))) => Some(b.id),
            _ => None,
        };
        let params = request.parameter_request_list().map(ParamList::new).unwrap_or(ParamList::EMPTY);
        self.table.set_upstream_renewal_sent(slot, Some(now));
        self.counters.proxy.add(ProxyEvent::UpstreamRenewal);
        let track = Track::Reply { expect: Expect::UpstreamRenewal, party: self.party_of(slot), params };
        self.forward_request(now, req.ds, request, req.admitted, Upstream { targets, server_id }, track, outbox);
    }
}
