//! Keeping the pool full and its leases alive: for each entry cdra acts as a DHCP client
//! would (RFC 2131 4.4), through its own relay path, so the server sees a relayed client on
//! the link (giaddr) like any other.
//!
//! | entry | timer fires | answer |
//! |---|---|---|
//! | acquiring | DISCOVER (again after 4, 8, ... 64 s without an OFFER) | OFFER: REQUEST for it, same xid (RFC 2131 4.4.1), to the offering server |
//! | requesting | no ACK within [`REQUEST_TIMEOUT`]: acquiring again | ACK: leased, free; NAK: acquiring again |
//! | free, assigned | T1: RENEW to its server; T2: REBIND to the servers; lease end: lost | ACK: lease renewed (and the assigned client's record with it); NAK: lost |
//!
//! A lost entry is removed; a client it was assigned to must start over (its next request
//! gets a NAK, and its lease from us never outlives the entry's). Refilling keeps
//! `[pool] size` entries free (or on their way) on each link.

use core::net::Ipv4Addr;
use core::time::Duration;

use cdra_wire::options::OptionCode;
use cdra_wire::{Message, MessageBuilder, MessageType, Op};

use super::{EntryRef, EntryState, PoolIdentity};
use crate::counters::ProxyEvent;
use crate::engine::Engine;
use crate::lease::ServerLeaseTimes;
use crate::outbox::Outbox;
use crate::proxy::kept_reply;
use crate::proxy::replies::ServerReply;
use crate::relay::{Admitted, Targets, Track, Upstream};
use crate::table::{CachedReply, ClientState, ParamList, Removal, ServerBinding};
use crate::templates::ReplyContext;
use crate::time::Timestamp;
use crate::timers::Timer;
use crate::transactions::{Expect, Party};
use crate::verdict::{DiscardReason, Verdict};

/// An entry's REQUEST without an ACK this long starts over with a DISCOVER.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait between two DISCOVERs for an entry (RFC 2131 4.1: "up to a maximum of 64
/// seconds").
pub const MAX_DISCOVER_BACKOFF: Duration = Duration::from_secs(64);
/// A RENEW or REBIND without an answer is sent again after this long (RFC 2131 4.4.5: "one
/// half of the remaining time ... down to a minimum of 60 seconds").
pub const RENEW_RETRY: Duration = Duration::from_secs(60);

/// The options a pool lease asks the server for: what clients commonly ask (RFC 2132:
/// subnet mask, router, DNS, host and domain name, MTU, broadcast, static routes, NTP,
/// domain search, classless routes), so that pool clients get what they would have got.
pub const POOL_PARAMETERS: &[u8] = &[1, 3, 6, 12, 15, 26, 28, 33, 42, 119, 121];

/// One message of an entry's conversation with the servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PoolMessage {
    /// DISCOVER.
    Discover,
    /// REQUEST for `address` offered by `server` (SELECTING: option 54 and 50).
    Select { server: ServerBinding, address: Ipv4Addr },
    /// REQUEST with ciaddr to its server (RENEWING).
    Renew,
    /// REQUEST with ciaddr to the servers (REBINDING).
    Rebind,
    /// RELEASE of its lease (RFC 2131 4.4.6).
    Release,
    /// DECLINE of `address`: some host uses it (RFC 2131 4.4.1).
    Decline,
}

impl Engine {
    /// Make each link's pool hold `[pool] size` free entries (or entries on their way).
    pub(crate) fn pool_refill(&mut self, now: Timestamp) {
        self.pool.refill_armed = false;
        for link in 0..self.pool.links() {
            // A link that is not up now is refilled when it is (`Engine::set_link`).
            let up = self.config.downstream.get(link).is_some_and(|d| d.state == crate::config::LinkState::Up);
            while up && self.pool.free_or_coming(link) < self.config.pool.size {
                let Some(r) = self.pool.create(link, now) else {
                    self.counters.proxy.add(ProxyEvent::PoolFull);
                    break;
                };
                self.arm_pool_entry(r, now);
            }
        }
    }

    /// Refill soon (an entry was given out or lost).
    pub(crate) fn arm_pool_refill(&mut self, now: Timestamp) {
        if !self.pool.refill_armed {
            self.pool.refill_armed = true;
            self.timers.arm(now, Timer::PoolRefill);
        }
    }

    /// File the entry's one timer for `at` (an earlier armed one re-arms itself).
    pub(crate) fn arm_pool_entry(&mut self, r: EntryRef, at: Timestamp) {
        let Some(e) = self.pool.get_mut(r) else { return };
        if e.timer.is_some_and(|armed| armed <= at) {
            return;
        }
        e.timer = Some(at);
        self.timers.arm(at, Timer::Pool(r));
    }

    /// An entry's timer fired at its deadline `at`.
    pub(crate) fn pool_entry_due(&mut self, now: Timestamp, at: Timestamp, r: EntryRef, outbox: &mut Outbox) {
        let Some(e) = self.pool.get_mut(r) else { return };
        if e.timer != Some(at) {
            return; // superseded by another deadline
        }
        e.timer = None;
        match e.state.clone() {
            EntryState::Acquiring => {
                e.attempts = e.attempts.saturating_add(1);
                if e.attempts == 1 {
                    // A new transaction; its retransmissions keep the xid, so a late OFFER
                    // still answers it.
                    e.xid = self.table.next_random() as u32;
                }
                let backoff =
                    Duration::from_secs(4u64 << e.attempts.min(4).saturating_sub(1)).min(MAX_DISCOVER_BACKOFF);
                self.pool_send(now, r, PoolMessage::Discover, outbox);
                self.arm_pool_entry(r, now.saturating_add(backoff));
            }
            EntryState::Requesting => {
                // No ACK: start over.
                e.state = EntryState::Acquiring;
                e.attempts = 0;
                self.arm_pool_entry(r, now);
            }
            EntryState::Migrating(_) => self.pool_migration_failed(now, r, outbox),
            EntryState::Reacquiring(_) => self.pool_entry_lost(now, r, ProxyEvent::PoolLeaseLost),
            EntryState::Free | EntryState::Assigned(_) => {
                let (t1, t2, end) = (e.at(e.times.t1), e.at(e.times.t2), e.lease_end());
                if e.held_back_until.is_some_and(|until| until <= now) {
                    self.pool_probe_held_back(now, r, outbox);
                }
                let link = usize::from(r.link);
                let Some(e) = self.pool.get_mut(r) else { return };
                if e.is_available() && now >= t1 && self.pool.free_or_coming(link) > self.config.pool.size {
                    // More free than `size` (entries held back came free again): give this
                    // one back to the server rather than renew it.
                    self.pool_send(now, r, PoolMessage::Release, outbox);
                    self.pool.remove(r);
                    self.note_pool_change(r);
                    self.counters.proxy.add(ProxyEvent::PoolSurplusReleased);
                    return;
                }
                let Some(e) = self.pool.get_mut(r) else { return };
                let hold = e.held_back_until;
                if end.is_some_and(|end| end <= now) {
                    self.pool_entry_lost(now, r, ProxyEvent::PoolLeaseExpired);
                    return;
                } else if now >= t2 && e.times.lease != crate::lease::INFINITE {
                    e.xid = self.table.next_random() as u32;
                    self.pool_send(now, r, PoolMessage::Rebind, outbox);
                    let next =
                        end.map_or(now.saturating_add(RENEW_RETRY), |end| end.min(now.saturating_add(RENEW_RETRY)));
                    self.arm_pool_entry(r, next);
                } else if now >= t1 && e.times.lease != crate::lease::INFINITE {
                    e.xid = self.table.next_random() as u32;
                    self.pool_send(now, r, PoolMessage::Renew, outbox);
                    self.arm_pool_entry(r, t2.min(now.saturating_add(RENEW_RETRY)));
                } else if e.times.lease != crate::lease::INFINITE {
                    self.arm_pool_entry(r, t1);
                }
                if let Some(until) = hold {
                    self.arm_pool_entry(r, until);
                }
            }
        }
    }

    /// Send `what` for entry `r`, as a client on its link would, through our relay path.
    pub(crate) fn pool_send(&mut self, now: Timestamp, r: EntryRef, what: PoolMessage, outbox: &mut Outbox) {
        let ds = usize::from(r.link);
        let (Some(iface), Some(e)) = (self.config.downstream.get(ds), self.pool.get(r)) else { return };
        let identity = PoolIdentity::new(iface.address.addr, r.n);
        let (xid, address, server) = (e.xid, e.address, e.server);
        let kind = match what {
            PoolMessage::Discover => MessageType::Discover,
            PoolMessage::Select { .. } | PoolMessage::Renew | PoolMessage::Rebind => MessageType::Request,
            PoolMessage::Release => MessageType::Release,
            PoolMessage::Decline => MessageType::Decline,
        };
        let mut buf = vec![0u8; crate::outbox::OUT_BUFFER_SIZE];
        let built = (|| {
            let mut b = MessageBuilder::new(&mut buf, Op::BootRequest, Some(kind))?;
            b.xid(xid).chaddr(1, &identity.mac);
            if matches!(what, PoolMessage::Renew | PoolMessage::Rebind | PoolMessage::Release) {
                b.ciaddr(address);
            }
            b.option(OptionCode::CLIENT_ID, &identity.client_id)?;
            match what {
                PoolMessage::Select { server, address } => {
                    b.option(OptionCode::REQUESTED_IP, &address.octets())?;
                    b.option(OptionCode::SERVER_ID, &server.id.octets())?;
                }
                PoolMessage::Release => {
                    if let Some(s) = server {
                        b.option(OptionCode::SERVER_ID, &s.id.octets())?;
                    }
                }
                PoolMessage::Decline => {
                    b.option(OptionCode::REQUESTED_IP, &address.octets())?;
                    if let Some(s) = server {
                        b.option(OptionCode::SERVER_ID, &s.id.octets())?;
                    }
                }
                PoolMessage::Discover | PoolMessage::Renew | PoolMessage::Rebind => {}
            }
            if matches!(kind, MessageType::Discover | MessageType::Request) {
                b.option(OptionCode::PARAMETER_REQUEST_LIST, POOL_PARAMETERS)?;
                // What operators see in the server's lease table.
                b.option(OptionCode::HOSTNAME, format!("cdra-pool-{}", r.n).as_bytes())?;
            }
            b.finish()
        })();
        let Ok(len) = built else { return };
        buf.truncate(len);
        let msg = Message::new_unchecked(&buf[..]);
        let one = |s: Option<ServerBinding>| match s.and_then(|b| self.servers.index_of(b.addr)) {
            Some(i) => Upstream { targets: Targets::One(i), server_id: None },
            None => Upstream::CHOSEN,
        };
        let (to, expect) = match what {
            PoolMessage::Discover => (Upstream::CHOSEN, Some(Expect::Offer)),
            PoolMessage::Select { server, .. } => (one(Some(server)), Some(Expect::Ack(ClientState::Requesting))),
            PoolMessage::Renew => (one(server), Some(Expect::Ack(ClientState::Renewing))),
            PoolMessage::Rebind => (Upstream::CHOSEN, Some(Expect::Ack(ClientState::Rebinding))),
            PoolMessage::Release | PoolMessage::Decline => (one(server), None),
        };
        let track = match expect {
            Some(expect) => Track::Reply { expect, party: Party::Pool(r), params: ParamList::new(POOL_PARAMETERS) },
            None => Track::Nothing,
        };
        if let Some(e) = self.pool.get_mut(r) {
            e.sent_at = now;
        }
        self.counters.proxy.add(match what {
            PoolMessage::Discover | PoolMessage::Select { .. } => ProxyEvent::PoolRequestSent,
            PoolMessage::Renew | PoolMessage::Rebind => ProxyEvent::PoolRenewalSent,
            PoolMessage::Release => ProxyEvent::PoolReleaseSent,
            PoolMessage::Decline => ProxyEvent::PoolDeclineSent,
        });
        let admitted = Admitted::OURS;
        self.forward_request(now, ds, &msg, admitted, to, track, outbox);
    }

    /// A server's answer to one of an entry's requests: never passed to a client.
    pub(crate) fn pool_reply<T: AsRef<[u8]>>(
        &mut self,
        reply: &ServerReply<'_, T>,
        r: EntryRef,
        outbox: &mut Outbox,
    ) -> Verdict {
        let (now, msg) = (reply.now, reply.msg);
        let Some(e) = self.pool.get_mut(r) else {
            return self.discard(DiscardReason::PoolUpkeepAnswer);
        };
        let current = msg.xid() == e.xid;
        match (msg.message_type(), e.state.clone()) {
            (Some(MessageType::Offer), EntryState::Acquiring) if current && !msg.yiaddr().is_unspecified() => {
                // RFC 2131 4.4.1: the REQUEST that follows an OFFER carries its xid.
                let address = msg.yiaddr();
                e.state = EntryState::Requesting;
                e.attempts = 0;
                e.address = address;
                self.pool_send(now, r, PoolMessage::Select { server: reply.server, address }, outbox);
                self.arm_pool_entry(r, now.saturating_add(REQUEST_TIMEOUT));
            }
            (
                Some(MessageType::Ack),
                EntryState::Requesting | EntryState::Reacquiring(_) | EntryState::Free | EntryState::Assigned(_),
            ) if current && !msg.yiaddr().is_unspecified() => {
                self.pool_leased(reply, r);
                let migrate = self.pool.get_mut(r).is_some_and(|e| {
                    let due = e.migrate_on_ack && matches!(e.state, EntryState::Assigned(_));
                    e.migrate_on_ack = false;
                    due
                });
                if migrate {
                    self.pool_start_migration(now, r, outbox);
                }
            }
            (Some(MessageType::Nak), EntryState::Reacquiring(_)) if current => {
                self.counters.proxy.add(ProxyEvent::PoolNak);
                self.pool_entry_lost(now, r, ProxyEvent::PoolLeaseLost);
            }
            (Some(MessageType::Nak), EntryState::Requesting) if current => {
                if let Some(e) = self.pool.get_mut(r) {
                    e.state = EntryState::Acquiring;
                    e.address = Ipv4Addr::UNSPECIFIED;
                    e.attempts = 0;
                }
                self.counters.proxy.add(ProxyEvent::PoolNak);
                self.arm_pool_entry(r, now.saturating_add(Duration::from_secs(4)));
            }
            (Some(MessageType::Nak), EntryState::Free | EntryState::Assigned(_)) if current => {
                self.counters.proxy.add(ProxyEvent::PoolNak);
                self.pool_entry_lost(now, r, ProxyEvent::PoolLeaseLost);
            }
            _ => {}
        }
        self.discard(DiscardReason::PoolUpkeepAnswer)
    }

    /// An entry's lease was granted or renewed by `reply`.
    fn pool_leased<T: AsRef<[u8]>>(&mut self, reply: &ServerReply<'_, T>, r: EntryRef) {
        let (now, msg) = (reply.now, reply.msg);
        let Some(times) = ServerLeaseTimes::of(msg) else { return };
        let address = msg.yiaddr();
        // The pool's own lease names no client (`PoolEntry::reply_context`).
        let ctx = super::PoolEntry::lease_context(address, times);
        let Some(kept) = kept_reply(msg, &mut self.scratch, &ctx, &ParamList::EMPTY) else { return };
        let Some(e) = self.pool.get_mut(r) else { return };
        let moved = e.is_leased() && e.address != address;
        let first = e.state == EntryState::Requesting;
        if let EntryState::Reacquiring(key) = e.state.clone() {
            // Back under the pool identity; its client starts over at its next request.
            e.state = EntryState::Assigned(key);
        }
        if moved {
            // The server renewed another address than ours: treat as lost.
            self.pool_entry_lost(now, r, ProxyEvent::PoolLeaseLost);
            return;
        }
        e.address = address;
        e.server = Some(reply.server);
        e.times = times;
        e.lease_start = reply.tx.sent_at.min(now);
        e.reply = Some(kept);
        e.attempts = 0;
        if first {
            e.state = EntryState::Free;
        }
        let assigned = match &e.state {
            EntryState::Assigned(key) => Some(key.clone()),
            _ => None,
        };
        let (lease_start, lease_secs, t1, t2) = (e.lease_start, times.lease, times.t1, times.t2);
        let t1_at = e.at(times.t1);
        self.counters.proxy.add(if first { ProxyEvent::PoolLeased } else { ProxyEvent::PoolRenewed });
        // The server has given this address to this identity: another entry that believed
        // it held it (its lease ended at the server while we counted on it, as after a step
        // of the clock) has lost it, so that no two entries, nor their clients, share it.
        while let Some(other) = self.pool.holding_other_than(Some(r), address) {
            self.pool_entry_lost(now, other, ProxyEvent::PoolLeaseLost);
        }
        // The server has given this address to our pool identity: any record that still
        // held it is stale (the table's rule, as for a client's ACK).
        if let Some(other) = self.table.find_address(address) {
            let holder = self.table.get(other).map(|c| c.key.clone());
            if holder.is_some() && holder != assigned {
                self.drop_record(other, Removal::AddressReassigned);
            }
        }
        // An assigned client's record follows the pool lease it is answered from.
        if let Some(slot) = assigned.and_then(|k| self.table.find(&k)) {
            let n = r.n;
            let ours =
                |c: &crate::table::ClientRecord| c.origin() == crate::table::Origin::Pool { n } && c.address == address;
            if self.table.get(slot).is_some_and(ours) {
                self.pool_client_lease_times(slot, ServerLeaseTimes { lease: lease_secs, t1, t2 });
            }
            if let Some(c) = self.table.get_mut(slot).filter(|c| ours(c)) {
                c.set_lease_start(lease_start);
                c.set_last_update(now);
                // Written with it: restored as it was at the entry's first lease, the
                // record would look long expired after a restart.
                let key = c.key.clone();
                self.note_change(&key);
            }
        }
        self.note_pool_change(r);
        self.arm_pool_entry(r, t1_at);
    }

    /// The pool client in `slot` takes its entry's renewed lease `times`; its cached reply
    /// stays byte for byte the ACK it was given (`pool_give`): the reply's own bytes leave
    /// the lease times to the record ([`crate::templates`]), so it is split again with the
    /// new ones.
    fn pool_client_lease_times(&mut self, slot: crate::table::Slot, times: ServerLeaseTimes) {
        let Some(c) = self.table.get(slot) else { return };
        let ctx = c.reply_context();
        let ctx = ReplyContext { lease_secs: times.lease, t1_secs: times.t1, t2_secs: times.t2, ..ctx };
        let params = c.param_list();
        let resplit =
            c.expand_reply(&mut self.scratch).and_then(|n| CachedReply::new(self.scratch.get(..n)?, &ctx, &params));
        if let Some(reply) = resplit {
            if let Some(evicted) = self.table.store_reply(slot, reply) {
                self.forgotten(&evicted, Removal::Evicted);
            }
        }
        if let Some(c) = self.table.get_mut(slot) {
            c.lease_secs = times.lease;
            c.t1_secs = times.t1;
            c.t2_secs = times.t2;
        }
    }

    /// An entry's lease is gone (NAK, expiry): remove it; a client it was given to starts
    /// over at its next request.
    pub(crate) fn pool_entry_lost(&mut self, now: Timestamp, r: EntryRef, why: ProxyEvent) {
        self.counters.proxy.add(why);
        self.note_pool_change(r);
        if let Some(e) = self.pool.remove(r) {
            if let EntryState::Assigned(key) | EntryState::Migrating(key) | EntryState::Reacquiring(key) = e.state {
                if let Some(c) = self.table.find(&key).and_then(|s| self.table.get_mut(s)) {
                    c.set_must_restart(true);
                }
            }
        }
        self.arm_pool_refill(now);
    }

    /// The store must write (or delete) entry `r`.
    pub(crate) fn note_pool_change(&mut self, r: EntryRef) {
        let Some(iface) = self.config.downstream.get(usize::from(r.link)) else { return };
        let key = PoolIdentity::new(iface.address.addr, r.n).key();
        self.note_change(&key);
    }
}
