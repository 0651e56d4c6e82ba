//! Giving pool addresses to clients, taking them back, and moving pool clients onto leases
//! of their own when the servers answer again.
//!
//! **Giving.** A new client (no record holding a server's answer) on a link with a free
//! entry: with `assign = "always"` at its DISCOVER; with `"outage"` when every server is
//! known to be down, or when no server's OFFER reached it within `fallback_after`
//! ([`crate::timers::Timer::PoolFallback`]). Its record takes the entry's address and the
//! server's ACK for the entry (the options it gets: subnet mask, routers, DNS ...), with
//! the client's own hardware address; the address is probed (as for a local ACK, unless
//! `safe_network`) before the OFFER, and the client's REQUEST for it is ACKed as proxy mode
//! would (our address as server identifier). Pool clients get `[pool] client_lease`.
//!
//! **Taking back.** A pool client's RELEASE, or its short lease lapsing with nobody on the
//! address, makes the entry free again (the pool lease is ours: nothing goes to the
//! server); its DECLINE, or a probe finding another host on the address, declines the
//! entry at the server (RFC 2131 4.4.1) and drops it.
//!
//! **Back to the server** (`assign = "outage"`). At a pool client's next request once its
//! entry's server answers again, after answering it as before: the pool lease is released
//! and, in the same batch, the address is requested under the client's own identity (a
//! SELECTING-style REQUEST: the server's identifier and the address; Kea with
//! `authoritative` NAKs an INIT-REBOOT for an address the client holds no lease on, but
//! grants this for a free address). The server's ACK becomes the client's record (absorbed,
//! like an upstream renewal: the client already holds a lease from us), so from then on the
//! server's lease on the address carries the client's identity. On a NAK or no answer the
//! address is requested back under the pool identity at once, and the client gets a NAK at
//! its next request so that it starts over with the server. Between the RELEASE and the
//! REQUEST the address is free at the server for the time of one message; the simulation
//! checks under server flaps, restarts and squatters that no two clients ever hold one
//! address and that the server leases each address to one identity.

use cdra_wire::options::OptionCode;
use cdra_wire::{Message, MessageBuilder, MessageType, Op};

use super::upkeep::{PoolMessage, RENEW_RETRY, REQUEST_TIMEOUT};
use super::{EntryRef, EntryState};
use crate::config::PoolAssign;
use crate::counters::ProxyEvent;
use crate::engine::Engine;
use crate::outbox::Outbox;
use crate::proxy::probes::ProbeFor;
use crate::proxy::replies::ServerReply;
use crate::proxy::{ClientRequest, LocalAnswer};
use crate::relay::{Admitted, Targets, Track, Upstream};
use crate::table::{ClientKey, ClientKind, ClientState, Origin, ParamList, Removal, Slot};
use crate::templates::ReplyContext;
use crate::time::Timestamp;
use crate::timers::Timer;
use crate::transactions::{Expect, RequestId};
use crate::verdict::{DiscardReason, DropReason, Verdict};

/// How long an entry whose address another host answered for is held back before it is
/// probed again.
pub const IN_USE_HOLD: core::time::Duration = core::time::Duration::from_secs(3600);

/// How long a move waits for the server's answer to the client's REQUEST before it asks the
/// address back under the pool identity. Meanwhile the address is free at the server (the
/// pool lease was released) while the client uses it, so it is short: the server answered
/// the entry's RENEW an instant before, and answers this as fast. (A server that ignores
/// the client, by policy, never answers; one that answers later than this finds the address
/// asked back: the client starts over and the server's lease decides.)
pub const MIGRATION_TIMEOUT: core::time::Duration = core::time::Duration::from_secs(2);

/// A DISCOVER waiting to see whether a server answers it (`assign = "outage"`).
#[derive(Debug, Clone)]
pub(crate) struct Fallback {
    request: Vec<u8>,
    admitted: Admitted,
    ds: usize,
}

/// The DISCOVERs waiting for a fallback, bounded by `[limits] pending_clients`.
#[derive(Debug, Default)]
pub(crate) struct Fallbacks {
    waiting: hashbrown::HashMap<RequestId, Fallback>,
}

impl Fallbacks {
    /// Is the DISCOVER `id` waiting for its fallback?
    pub(crate) fn is_waiting(&self, id: &RequestId) -> bool {
        self.waiting.contains_key(id)
    }
}

impl Engine {
    /// Pool mode, a DISCOVER from a client with no server-answered record: answer it from
    /// the pool now? (`assign = "always"`, or every server known to be down.)
    pub(crate) fn pool_answers_at_once(&self, now: Timestamp) -> bool {
        match self.config.pool.assign {
            PoolAssign::Always => true,
            PoolAssign::Outage => {
                let n = self.servers.servers().len();
                n > 0 && (0..n).all(|i| !self.servers.is_up(i, now))
            }
        }
    }

    /// Pool mode, `assign = "outage"`: a new client's DISCOVER was forwarded; if no server's
    /// OFFER reaches it within `fallback_after`, the pool answers.
    pub(crate) fn pool_arm_fallback<T: AsRef<[u8]>>(&mut self, req: &ClientRequest<'_, T>) {
        if self.pool_fallbacks.waiting.len() >= self.config.limits.pending_clients {
            self.counters.proxy.add(ProxyEvent::PoolFallbackRefused);
            return;
        }
        let id = RequestId::of(req.msg, req.ds);
        let fallback = Fallback { request: req.msg.as_bytes().to_vec(), admitted: req.admitted, ds: req.ds };
        self.pool_fallbacks.waiting.insert(id, fallback);
        self.timers.arm(req.now.saturating_add(self.config.pool.fallback_after), Timer::PoolFallback(Box::new(id)));
    }

    /// A DISCOVER's fallback time is up: the pool answers unless a server did.
    pub(crate) fn pool_fallback_due(&mut self, now: Timestamp, id: RequestId, outbox: &mut Outbox) {
        let Some(f) = self.pool_fallbacks.waiting.remove(&id) else { return };
        let answered = self.transactions.get(&id, now).is_none_or(|tx| tx.offer_passed);
        let msg = Message::new_unchecked(&f.request[..]);
        let key = ClientKey::of(&msg);
        let slot = self.table.find(&key);
        let bound = slot.and_then(|s| self.table.get(s)).is_some_and(|r| r.reply.is_some());
        if answered || bound {
            return;
        }
        let req = ClientRequest {
            now,
            ds: f.ds,
            dst: core::net::Ipv4Addr::BROADCAST,
            msg: &msg,
            admitted: f.admitted,
            key,
            slot,
        };
        self.counters.proxy.add(ProxyEvent::PoolFallback);
        if let Some(tx) = self.transactions.get_mut(&id) {
            // One OFFER per DISCOVER (paper 5.2): a server's late one is discarded.
            tx.offer_passed = true;
        }
        self.pool_offer(&req, outbox);
    }

    /// Answer `req` (a DISCOVER) from a free entry of its link: the client's record takes
    /// the entry, the address is probed, then offered. `NoServer` when the link's pool is
    /// empty.
    pub(crate) fn pool_offer<T: AsRef<[u8]>>(&mut self, req: &ClientRequest<'_, T>, outbox: &mut Outbox) -> Verdict {
        let Some(r) = self.pool.pick_free(req.ds) else {
            self.counters.proxy.add(ProxyEvent::PoolEmpty);
            return self.drop(req.ds, DropReason::NoServer);
        };
        let slot = self.record_of(req, ClientKind::Dhcp);
        if !self.pool_give(req.now, r, slot, req.msg) {
            return self.drop(req.ds, DropReason::NoServer);
        }
        self.counters.proxy.add(ProxyEvent::PoolAssigned);
        self.record_event(crate::events::EventKind::Proxy(ProxyEvent::PoolAssigned), slot, None);
        self.arm_pool_refill(req.now);
        if self.config.proxy.safe_network {
            return self.answer_from_cache(req, slot, LocalAnswer::Offer, outbox);
        }
        self.start_probe(req, slot, ProbeFor::PoolOffer, outbox)
    }

    /// The record in `slot` takes entry `r`: its link, its address, the server's ACK for it
    /// (with the client's hardware address), its server and lease.
    fn pool_give<T: AsRef<[u8]>>(&mut self, now: Timestamp, r: EntryRef, slot: Slot, request: &Message<T>) -> bool {
        // A pool client given another entry (its record ran out before its entry's timer
        // did, say) leaves the one it had: free again, held back until the lease it had from
        // us ends, as when a pool client's record goes (`pool_client_record_gone`).
        if let Some(old) = self.pool_entry_of(slot).filter(|old| *old != r) {
            if let Some(had) = self.table.get(slot).cloned() {
                self.pool_client_record_gone(&had, old.n, Removal::Expired);
            }
        }
        let Some(e) = self.pool.get(r) else { return false };
        let (address, server, times, lease_start) = (e.address, e.server, e.times, e.lease_start);
        let Some(len) = e.reply.as_ref().and_then(|c| c.expand_into(&e.reply_context(), &mut self.scratch)) else {
            return false;
        };
        let Some(bytes) = self.scratch.get_mut(..len) else { return false };
        {
            let mut m = Message::new_unchecked(&mut bytes[..]);
            m.set_hardware(request.htype(), request.chaddr());
        }
        let Some(key) = self.table.get(slot).map(|c| c.key.clone()) else { return false };
        // What the client asks for (the server will be asked it when the client moves onto a
        // lease of its own), else what the pool lease asked; what the record holds (its key,
        // and the address and lease times set below) is not kept twice.
        let params = ParamList::new(request.parameter_request_list().unwrap_or(super::upkeep::POOL_PARAMETERS));
        let ctx =
            ReplyContext { key: Some(&key), address, lease_secs: times.lease, t1_secs: times.t1, t2_secs: times.t2 };
        let Some(reply) = crate::table::CachedReply::new(bytes, &ctx, &params) else { return false };
        if let Some(e) = self.pool.get_mut(r) {
            e.state = EntryState::Assigned(key.clone());
            e.assigned_at = now;
        }
        if let Some(evicted) = self.table.store_reply(slot, reply) {
            self.forgotten(&evicted, Removal::Evicted);
        }
        if let Some(other) = self.table.set_address(slot, address) {
            self.drop_record(other, Removal::AddressReassigned);
        }
        let Some(c) = self.table.get_mut(slot) else { return false };
        // The record is on the entry's link from now on, as a server's answer on a link
        // moves it there (`cache_reply`): a client heard first on another link (its record
        // still waiting there) holds this link's address.
        c.downstream = r.link;
        // A pool address is a DHCP lease, whatever the record began as (a machine that sent
        // a BOOTREQUEST, then DISCOVERs).
        c.set_kind(ClientKind::Dhcp);
        c.set_origin(Origin::Pool { n: r.n });
        c.set_server(server);
        c.lease_secs = times.lease;
        c.t1_secs = times.t1;
        c.t2_secs = times.t2;
        c.set_lease_start(lease_start);
        c.set_last_update(now);
        c.set_must_restart(false);
        c.set_confirmed(false);
        self.note_change(&key);
        true
    }

    /// The probe before a pool OFFER found another host on the address: the entry is held
    /// back (its lease kept, so that the server gives the address to nobody else; see
    /// [`Engine::pool_client_record_gone`]), and the client is offered another one.
    pub(crate) fn pool_offer_refused(
        &mut self,
        now: Timestamp,
        slot: Option<Slot>,
        request: &[u8],
        admitted: Admitted,
        ds: usize,
        outbox: &mut Outbox,
    ) {
        if let Some(s) = slot.filter(|s| self.pool_entry_of(*s).is_some()) {
            self.drop_record(s, Removal::AddressInUse);
        }
        let msg = Message::new_unchecked(request);
        let key = ClientKey::of(&msg);
        let slot = self.table.find(&key);
        let req = ClientRequest { now, ds, dst: core::net::Ipv4Addr::BROADCAST, msg: &msg, admitted, key, slot };
        self.pool_offer(&req, outbox);
    }

    /// The entry a pool client's record was given, if it still has it.
    pub(crate) fn pool_entry_of(&self, slot: Slot) -> Option<EntryRef> {
        let c = self.table.get(slot)?;
        let Origin::Pool { n } = c.origin() else { return None };
        let r = self.pool.reference(usize::from(c.downstream), n)?;
        let e = self.pool.get(r)?;
        let given = matches!(&e.state, EntryState::Assigned(k) | EntryState::Migrating(k) if *k == c.key);
        (given && e.address == c.address).then_some(r)
    }

    /// A pool client is gone (RELEASE, or its lease lapsed with nobody on the address):
    /// its entry is free again and its record removed.
    pub(crate) fn pool_client_gone(&mut self, slot: Slot, why: Removal) {
        if let Some(r) = self.pool_entry_of(slot) {
            if let Some(e) = self.pool.get_mut(r) {
                if matches!(e.state, EntryState::Assigned(_)) {
                    e.state = EntryState::Free;
                    self.counters.proxy.add(ProxyEvent::PoolReturned);
                    self.record_event(crate::events::EventKind::Proxy(ProxyEvent::PoolReturned), slot, None);
                }
            }
        }
        self.drop_record(slot, why);
    }

    /// A pool client's record left the table (`why`): its entry, if still given to it, is
    /// free again, or held back when someone may be on its address.
    ///
    /// - The client released it (or left; its lapse probe found nobody): free now.
    /// - A probe found another host on the address: held back for [`IN_USE_HOLD`] (then
    ///   probed again before use), its pool lease kept renewed so that the server gives the
    ///   address to nobody else (a DECLINE would free it at the server after the server's
    ///   own probation period, for the next client to collide with). At most `[pool] size`
    ///   entries a link are held back for that: beyond, the entry is dropped and its lease
    ///   left to run out (a host answering for every address cannot make the pool grow).
    /// - Anything else (evicted, flushed, NAKed, expired ...): the client may still hold
    ///   the address until its lease from us ends; held back until then.
    pub(crate) fn pool_client_record_gone(&mut self, removed: &crate::table::ClientRecord, n: u16, why: Removal) {
        let now = self.event_time;
        let link = usize::from(removed.downstream);
        let Some(r) = self.pool.reference(link, n) else { return };
        let held_back = self.pool.held_back(link);
        let size = self.config.pool.size;
        let client_lease = self.config.pool.client_lease;
        let Some(e) = self.pool.get_mut(r) else { return };
        if e.state != EntryState::Assigned(removed.key.clone()) || e.address != removed.address {
            return;
        }
        e.state = EntryState::Free;
        match why {
            Removal::ReturnedToPool | Removal::ClientGaveUp => {
                e.held_back_until = None;
                self.counters.proxy.add(ProxyEvent::PoolReturned);
                let kind = crate::events::EventKind::Proxy(ProxyEvent::PoolReturned);
                self.push_event(crate::events::LeaseEvent::of_record(now, kind, removed, None));
            }
            Removal::AddressInUse if held_back >= size => {
                self.pool_entry_lost(now, r, ProxyEvent::PoolInUseDropped);
            }
            Removal::AddressInUse => {
                e.held_back_until = Some(now.saturating_add(IN_USE_HOLD));
                e.confirmed = false;
                self.counters.proxy.add(ProxyEvent::PoolHeldBack);
                self.arm_pool_refill(now);
            }
            _ => {
                let until = removed.client_lease_end().unwrap_or(now.saturating_add(client_lease)).max(now);
                e.held_back_until = Some(until);
                self.counters.proxy.add(ProxyEvent::PoolHeldBack);
                self.arm_pool_refill(now);
            }
        }
        // The store keeps the entry free or held back, not given to a client that is gone.
        self.note_pool_change(r);
    }

    /// A pool client (its record on `link`, given entry `n` for `address`) has been given
    /// a lease of its own by a server: the entry is free again, unless it is the very
    /// lease being handed over ([`Engine::pool_migration_answered`] removes that one).
    pub(crate) fn pool_client_left_for_server(
        &mut self,
        link: usize,
        n: u16,
        client: &ClientKey,
        address: core::net::Ipv4Addr,
    ) {
        let Some(r) = self.pool.reference(link, n) else { return };
        let Some(e) = self.pool.get_mut(r) else { return };
        if e.state == EntryState::Assigned(client.clone()) && e.address == address {
            e.state = EntryState::Free;
            // The client may still use the pool address until it takes the server's.
            e.held_back_until = Some(self.event_time.saturating_add(REQUEST_TIMEOUT));
            self.counters.proxy.add(ProxyEvent::PoolReturned);
        }
    }

    /// A held-back entry's time is up: probe its address (as before a local
    /// ACK). It stays held back until the probe finds nobody
    /// ([`Engine::pool_held_back_probed`]); with `safe_network` there is nobody to ask and
    /// it is free at once.
    pub(crate) fn pool_probe_held_back(&mut self, now: Timestamp, r: EntryRef, outbox: &mut Outbox) {
        if self.config.proxy.safe_network {
            if let Some(e) = self.pool.get_mut(r) {
                e.held_back_until = None;
            }
            return;
        }
        let started = self.start_pool_entry_probe(now, r, outbox);
        if let Some(e) = self.pool.get_mut(r) {
            // Till the probe's answer (or, if none could be started, a minute from now).
            e.held_back_until = Some(now.saturating_add(if started { IN_USE_HOLD } else { RENEW_RETRY }));
        }
    }

    /// The probe of held-back entry `r`'s address could not be made: it stays held back and
    /// is probed again a minute from now.
    pub(crate) fn pool_held_back_unprobed(&mut self, now: Timestamp, r: EntryRef) {
        let Some(e) = self.pool.get_mut(r) else { return };
        if e.state != EntryState::Free {
            return;
        }
        let until = now.saturating_add(RENEW_RETRY);
        e.held_back_until = Some(until);
        self.arm_pool_entry(r, until);
    }

    /// The probe of held-back entry `r`'s address ended: `in_use` if some host answered.
    pub(crate) fn pool_held_back_probed(&mut self, now: Timestamp, r: EntryRef, in_use: bool) {
        let Some(e) = self.pool.get_mut(r) else { return };
        if e.state != EntryState::Free {
            return;
        }
        if in_use {
            e.held_back_until = Some(now.saturating_add(IN_USE_HOLD));
            e.confirmed = false;
            self.counters.proxy.add(ProxyEvent::PoolHeldBack);
        } else {
            e.held_back_until = None;
            e.confirmed = true;
            self.counters.proxy.add(ProxyEvent::PoolHoldLifted);
        }
        self.arm_pool_entry(r, now);
    }

    /// A pool client declined its address (it found it in use): so does the entry, at the
    /// server.
    pub(crate) fn pool_client_declined(&mut self, now: Timestamp, slot: Slot, outbox: &mut Outbox) {
        if let Some(r) = self.pool_entry_of(slot) {
            self.pool_send(now, r, PoolMessage::Decline, outbox);
            self.pool_entry_lost(now, r, ProxyEvent::PoolDeclined);
        }
        self.drop_record(slot, Removal::ClientGaveUp);
    }

    /// After a local ACK to a pool client (`assign = "outage"`): renew its entry's lease
    /// now, at most once per a quarter of `[pool] client_lease` (half the client's renewal
    /// interval) or [`RENEW_RETRY`], whichever is shorter, marked so that the server's ACK starts the
    /// client's move onto a lease of its own ([`Engine::pool_start_migration`]). The ACK is
    /// the proof, milliseconds old, that the server answers again; during an outage the
    /// RENEW is lost and nothing else changes.
    pub(crate) fn pool_migrate_if_due(&mut self, now: Timestamp, slot: Slot, outbox: &mut Outbox) {
        if self.config.pool.assign != PoolAssign::Outage {
            return;
        }
        let Some(r) = self.pool_entry_of(slot) else { return };
        let Some(e) = self.pool.get_mut(r) else { return };
        if !matches!(e.state, EntryState::Assigned(_)) || e.server.is_none() {
            return;
        }
        // Asked lately: at most once per half of a pool client's renewal interval (so that
        // each of its renewals asks once, whatever `client_lease`, and its retransmissions
        // do not), and at least once per RENEW_RETRY.
        let interval = RENEW_RETRY.min(self.config.pool.client_lease / 4);
        if e.migrate_on_ack && now.since(e.sent_at) < interval {
            return;
        }
        e.migrate_on_ack = true;
        e.xid = self.table.next_random() as u32;
        self.pool_send(now, r, PoolMessage::Renew, outbox);
    }

    /// The server has just ACKed entry `r`'s renewal: move the client it is given to onto a
    /// lease of its own. The pool lease is released and, in the same batch, the address is
    /// requested under the client's identity (SELECTING: the server's identifier and the
    /// address), as the client would, through our relay path.
    pub(crate) fn pool_start_migration(&mut self, now: Timestamp, r: EntryRef, outbox: &mut Outbox) {
        let Some(e) = self.pool.get(r) else { return };
        let (EntryState::Assigned(key), Some(server)) = (e.state.clone(), e.server) else { return };
        let (address, ds) = (e.address, usize::from(r.link));
        let Some(index) = self.servers.index_of(server.addr) else { return };
        let Some(slot) = self.table.find(&key) else { return };
        let Some(len) = self.table.get(slot).and_then(|c| c.expand_reply(&mut self.scratch)) else {
            return;
        };
        let Some(reply) = self.scratch.get(..len) else { return };
        let reply = Message::new_unchecked(reply);
        let (htype, chaddr) = (reply.htype(), reply.chaddr().to_vec());
        let params = self.table.get(slot).map(|c| c.param_list()).unwrap_or(ParamList::EMPTY);
        let mut buf = vec![0u8; crate::outbox::OUT_BUFFER_SIZE];
        let xid = self.table.next_random() as u32;
        let built = (|| {
            let mut b = MessageBuilder::new(&mut buf, Op::BootRequest, Some(MessageType::Request))?;
            b.xid(xid).chaddr(htype, &chaddr);
            if let Some(id) = key.client_id_bytes() {
                b.option(OptionCode::CLIENT_ID, id)?;
            }
            b.option(OptionCode::REQUESTED_IP, &address.octets())?;
            b.option(OptionCode::SERVER_ID, &server.id.octets())?;
            let asked: Vec<u8> = params.codes().collect();
            let asked = if asked.is_empty() { super::upkeep::POOL_PARAMETERS } else { &asked[..] };
            b.option(OptionCode::PARAMETER_REQUEST_LIST, asked)?;
            b.finish()
        })();
        let Ok(len) = built else { return };
        buf.truncate(len);
        // Release the pool lease first: the server grants the address to the client only
        // once it is free.
        self.pool_send(now, r, PoolMessage::Release, outbox);
        if let Some(e) = self.pool.get_mut(r) {
            e.state = EntryState::Migrating(key);
            e.sent_at = now;
        }
        self.counters.proxy.add(ProxyEvent::PoolMigrationStarted);
        let msg = Message::new_unchecked(&buf[..]);
        let params = msg.parameter_request_list().map(ParamList::new).unwrap_or(ParamList::EMPTY);
        let track = Track::Reply { expect: Expect::Migration, party: self.party_of(slot), params };
        let to = Upstream { targets: Targets::One(index), server_id: None };
        let admitted = Admitted::OURS;
        self.forward_request(now, ds, &msg, admitted, to, track, outbox);
        self.arm_pool_entry(r, now.saturating_add(MIGRATION_TIMEOUT));
    }

    /// The server answered a migration request.
    pub(crate) fn pool_migration_answered<T: AsRef<[u8]>>(
        &mut self,
        reply: &ServerReply<'_, T>,
        outbox: &mut Outbox,
    ) -> Verdict {
        let Some(slot) = reply.slot else {
            return self.discard(DiscardReason::UpstreamRenewalAnswer);
        };
        let Some(r) = self.pool_entry_of(slot) else {
            return self.discard(DiscardReason::UpstreamRenewalAnswer);
        };
        let address = self.table.get(slot).map(|c| c.address);
        match reply.msg.message_type() {
            Some(MessageType::Ack) if Some(reply.msg.yiaddr()) == address => {
                // The client holds the address under its own identity now; the entry's
                // lease was released: it leaves the pool.
                self.pool.remove(r);
                self.note_pool_change(r);
                if let Some(c) = self.table.get_mut(slot) {
                    c.set_origin(Origin::Server);
                }
                self.cache_reply(reply, slot, ClientKind::Dhcp);
                self.counters.proxy.add(ProxyEvent::PoolMigrated);
                self.record_event(crate::events::EventKind::Proxy(ProxyEvent::PoolMigrated), slot, None);
                self.arm_pool_refill(reply.now);
            }
            _ => self.pool_migration_failed(reply.now, r, outbox),
        }
        self.discard(DiscardReason::UpstreamRenewalAnswer)
    }

    /// A migration got a NAK or no answer: the address is requested back under the pool
    /// identity, and the client starts over at its next request.
    pub(crate) fn pool_migration_failed(&mut self, now: Timestamp, r: EntryRef, outbox: &mut Outbox) {
        let Some(e) = self.pool.get_mut(r) else { return };
        let EntryState::Migrating(key) = e.state.clone() else { return };
        let (Some(server), address) = (e.server, e.address) else { return };
        e.state = EntryState::Reacquiring(key.clone());
        e.xid = self.table.next_random() as u32;
        self.counters.proxy.add(ProxyEvent::PoolMigrationFailed);
        if let Some(c) = self.table.find(&key).and_then(|s| self.table.get_mut(s)) {
            c.set_must_restart(true);
        }
        self.pool_send(now, r, PoolMessage::Select { server, address }, outbox);
        self.arm_pool_entry(r, now.saturating_add(REQUEST_TIMEOUT));
    }

    /// A client whose migration failed asks again: it gets a NAK (a DISCOVER starts it
    /// afresh), its record goes and its entry is free again.
    pub(crate) fn pool_restart_client<T: AsRef<[u8]>>(
        &mut self,
        req: &ClientRequest<'_, T>,
        slot: Slot,
        outbox: &mut Outbox,
    ) -> Option<Verdict> {
        self.counters.proxy.add(ProxyEvent::PoolClientRestarted);
        self.pool_client_gone(slot, Removal::ServerNak);
        match req.msg.message_type() {
            Some(MessageType::Request) => Some(self.send_nak(req.ds, req.msg, outbox)),
            _ => None,
        }
    }

    /// Start-up in pool mode, once the store is loaded: entries given to clients before the
    /// restart are theirs again; a pool client whose entry is gone starts over.
    pub(crate) fn pool_reconcile(&mut self) {
        let clients: Vec<(Slot, usize, u16, ClientKey, core::net::Ipv4Addr)> = self
            .table
            .iter()
            .filter_map(|(s, c)| match c.origin() {
                Origin::Pool { n } => Some((s, usize::from(c.downstream), n, c.key.clone(), c.address)),
                _ => None,
            })
            .collect();
        for (slot, link, n, key, address) in clients {
            // The entry of that number, still leased for the client's address (the number may
            // have been reused for another address after the client's entry was lost).
            let entry = self.pool.reference(link, n);
            let free = entry
                .and_then(|r| self.pool.get(r))
                .is_some_and(|e| e.state == EntryState::Free && e.address == address);
            match (entry, free) {
                (Some(r), true) => {
                    if let Some(e) = self.pool.get_mut(r) {
                        e.state = EntryState::Assigned(key);
                        e.held_back_until = None;
                    }
                }
                _ => {
                    if let Some(c) = self.table.get_mut(slot) {
                        c.set_must_restart(true);
                    }
                }
            }
        }
    }

    /// Is the record in `slot` a pool client whose answer was probed when it was offered
    /// (its REQUEST for that OFFER needs no second probe)?
    pub(crate) fn pool_offer_was_probed(&self, slot: Slot) -> bool {
        self.table.get(slot).is_some_and(|c| {
            matches!(c.origin(), Origin::Pool { .. }) && c.offer_probed() && c.state == ClientState::OfferedLocally
        })
    }

    /// The DISCOVERs waiting for a fallback.
    pub(crate) fn pool_fallbacks_waiting_len(&self) -> usize {
        self.pool_fallbacks.waiting.len()
    }
}
