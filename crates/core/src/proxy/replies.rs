//! Table 1, server-to-client rows: what the caching relay does with each server reply,
//! and how a reply becomes the client's record (paper 5: "Msg", the last DHCPACK).
//!
//! A reply gets here only when it answers a request we forwarded
//! ([`crate::transactions`]: xid, htype, hlen, chaddr, the link its giaddr names, and the
//! server it went to, within `reply_timeout`); it is then handled as Table 1 says for the
//! state that request put the client in ([`Expect`]), and it only ever updates the record
//! that request was filed for. A reply never creates a record: when the record went away
//! while the request was out, the reply is passed on and not kept.

use cdra_wire::options::OptionCode;
use cdra_wire::{Message, MessageType};

use super::kept_reply;
use crate::counters::ProxyEvent;
use crate::engine::Engine;
use crate::lease::ServerLeaseTimes;
use crate::mode::OffersPerDiscover;
use crate::outbox::Outbox;
use crate::relay::AcceptedReply;
use crate::table::{ClientKind, ClientState, Origin, Removal, ServerBinding, Slot};
use crate::templates::ReplyContext;
use crate::time::Timestamp;
use crate::transactions::{Expect, Party, RequestId, Transaction};
use crate::verdict::{DiscardReason, Verdict};

/// A server reply with what the checks found: the context every row handler needs.
pub(crate) struct ServerReply<'a, T: AsRef<[u8]>> {
    pub(crate) now: Timestamp,
    /// The downstream link its giaddr names.
    pub(crate) ds: usize,
    /// Index of the server in the pool.
    pub(crate) server_index: usize,
    /// The server, as the client's record will name it.
    pub(crate) server: ServerBinding,
    pub(crate) msg: &'a Message<T>,
    /// The request it answers, as it names it, and that request.
    pub(crate) id: RequestId,
    pub(crate) tx: Transaction,
    /// The record that request was filed for, if it is still there.
    pub(crate) slot: Option<Slot>,
}

impl Engine {
    /// A BOOTREPLY in a caching mode (Table 1, server-to-client rows).
    pub(crate) fn cache_reply_from_server<T: AsRef<[u8]>>(
        &mut self,
        now: Timestamp,
        counter_slot: usize,
        src: core::net::Ipv4Addr,
        msg: &Message<T>,
        outbox: &mut Outbox,
    ) -> Verdict {
        let AcceptedReply { server: server_index, ds, id, tx } = match self.accept_reply(now, src, msg) {
            Ok(a) => a,
            Err(reason) => return self.drop(counter_slot, reason),
        };
        let server = ServerBinding { addr: src, id: msg.server_identifier().unwrap_or(src) };
        let slot = tx.party.client().and_then(|r| self.table.resolve(r));
        let reply = ServerReply { now, ds, server_index, server, msg, id, tx, slot };
        if let Party::Pool(entry) = tx.party {
            // Pool mode: an answer to cdra's own request for a pool lease.
            return self.pool_reply(&reply, entry, outbox);
        }
        // RFC 4039 rapid commit: an ACK may answer a DISCOVER directly.
        let rapid = msg.option(OptionCode::RAPID_COMMIT).is_some();
        match (msg.message_type(), tx.expect) {
            // Paper 5.3: "When the server sends the ACK back to the relay, the relay updates
            // the lease information in the client DB and silently discards the packet."
            (_, Expect::UpstreamRenewal) if !tx.answered => self.upstream_renewal_answered(&reply),
            (_, Expect::UpstreamRenewal) => self.discard(DiscardReason::UpstreamRenewalAnswer),
            (_, Expect::Migration) if !tx.answered => {
                self.answered(&id);
                self.pool_migration_answered(&reply, outbox)
            }
            (_, Expect::Migration) => self.discard(DiscardReason::UpstreamRenewalAnswer),
            (None, Expect::BootReply) => self.bootreply(&reply, outbox),
            (Some(MessageType::Offer), Expect::Offer) => self.offer(&reply, outbox),
            (Some(MessageType::Offer), _) => self.discard(DiscardReason::OfferNotInInit),
            (Some(MessageType::Ack), Expect::Inform) => {
                // The answer to an INFORM: configuration without a lease, nothing to keep.
                let result = self.deliver_to_client(ds, msg, server, outbox);
                self.delivered(ds, result)
            }
            (Some(MessageType::Ack), Expect::Ack(_)) if !tx.answered => self.ack(&reply, outbox),
            (Some(MessageType::Ack), Expect::Offer) if rapid && !tx.answered => self.ack(&reply, outbox),
            (Some(MessageType::Ack), _) => self.discard(DiscardReason::AckNotAwaited),
            (Some(MessageType::Nak), Expect::Ack(_)) if !tx.answered => self.nak(&reply, outbox),
            (Some(MessageType::Nak), _) => self.discard(DiscardReason::NakNotAwaited),
            _ => self.discard(DiscardReason::UnexpectedReply),
        }
    }

    /// Count a Table 1 silent discard.
    pub(crate) fn discard(&mut self, reason: DiscardReason) -> Verdict {
        self.counters.proxy.discarded.add(reason);
        Verdict::Discarded(reason)
    }

    /// The client's request has its final answer (ACK or NAK): later ones for it find the
    /// client BOUND, or restarting, and are discarded (Table 1).
    fn answered(&mut self, id: &RequestId) {
        if let Some(tx) = self.transactions.get_mut(id) {
            tx.answered = true;
        }
    }

    fn upstream_renewal_answered<T: AsRef<[u8]>>(&mut self, reply: &ServerReply<'_, T>) -> Verdict {
        let msg = reply.msg;
        self.answered(&reply.id);
        let Some(slot) = reply.slot else {
            self.counters.proxy.add(ProxyEvent::ReplyForGoneRecord);
            return self.discard(DiscardReason::UpstreamRenewalAnswer);
        };
        match msg.message_type() {
            Some(MessageType::Ack) if !msg.yiaddr().is_unspecified() => {
                self.cache_reply(reply, slot, ClientKind::Dhcp);
                self.counters.proxy.add(ProxyEvent::UpstreamRenewalAcked);
            }
            Some(MessageType::Nak) => self.drop_record(slot, Removal::ServerNak),
            _ => {}
        }
        self.table.set_upstream_renewal_sent(slot, None);
        self.discard(DiscardReason::UpstreamRenewalAnswer)
    }

    /// "BOOTREPLY: Forward to client", and remember it for spoofing. A BOOTREPLY without an
    /// address (yiaddr 0: a BOOTP server that only names a boot file) is passed on but not
    /// kept: it could not be answered from, nor restored.
    fn bootreply<T: AsRef<[u8]>>(&mut self, reply: &ServerReply<'_, T>, outbox: &mut Outbox) -> Verdict {
        let msg = reply.msg;
        if !msg.yiaddr().is_unspecified() {
            match reply.slot {
                Some(s) => self.cache_reply(reply, s, ClientKind::Bootp),
                None => self.counters.proxy.add(ProxyEvent::ReplyForGoneRecord),
            }
        }
        let result = self.deliver_to_client(reply.ds, msg, reply.server, outbox);
        self.delivered(reply.ds, result)
    }

    /// "DHCPOFFER: Forward to client if client is in INIT state, otherwise silent discard"
    /// (paper 5.2: in the proxy, one OFFER per DISCOVER; which one is [`super::offers`]).
    fn offer<T: AsRef<[u8]>>(&mut self, reply: &ServerReply<'_, T>, outbox: &mut Outbox) -> Verdict {
        let one = self.config.mode.offers_per_discover() == OffersPerDiscover::One;
        if one && reply.tx.offer_passed {
            return self.discard(DiscardReason::OfferNotInInit);
        }
        if one {
            self.choose_offer(reply, outbox)
        } else {
            self.pass_offer(reply.ds, &reply.id, reply.slot, reply.msg, reply.server, outbox)
        }
    }

    /// Pass an OFFER to the client: the client is now REQUESTING (paper 5.2), and its
    /// REQUEST, which carries the same xid, will be routed to the offering server.
    pub(crate) fn pass_offer<T: AsRef<[u8]>>(
        &mut self,
        ds: usize,
        id: &RequestId,
        slot: Option<Slot>,
        msg: &Message<T>,
        server: ServerBinding,
        outbox: &mut Outbox,
    ) -> Verdict {
        if let Some(tx) = self.transactions.get_mut(id) {
            tx.offer_passed = true;
            tx.offered_by = Some(server);
        }
        match slot.and_then(|s| self.table.get_mut(s)) {
            Some(r) => r.state = ClientState::Requesting,
            None => self.counters.proxy.add(ProxyEvent::ReplyForGoneRecord),
        }
        let result = self.deliver_to_client(ds, msg, server, outbox);
        if let (Ok(sent), Some(_)) = (result, slot) {
            self.shorten_reply(outbox, sent);
        }
        self.delivered(ds, result)
    }

    /// "DHCPACK: Forward to client if client is in REQUESTING, REBOOTING, RENEWING or
    /// REBINDING state, otherwise silent discard"; the ACK becomes the client's record.
    fn ack<T: AsRef<[u8]>>(&mut self, reply: &ServerReply<'_, T>, outbox: &mut Outbox) -> Verdict {
        let msg = reply.msg;
        self.answered(&reply.id);
        let slot = reply.slot.filter(|_| !msg.yiaddr().is_unspecified());
        match slot {
            Some(s) => self.cache_reply(reply, s, ClientKind::Dhcp),
            None => self.counters.proxy.add(ProxyEvent::ReplyForGoneRecord),
        }
        let result = self.deliver_to_client(reply.ds, msg, reply.server, outbox);
        if let (Ok(sent), Some(s)) = (result, slot) {
            match self.shorten_reply(outbox, sent) {
                Some(lease) => self.note_client_lease(reply.now, s, lease),
                // The client holds the server's lease itself now: no short lease of ours is
                // left to watch (a pool client moved onto a lease of its own had the pool's).
                None => self.forget_client_lease(s),
            }
        }
        self.delivered(reply.ds, result)
    }

    /// "DHCPNAK: (same as DHCPACK)"; a NAK also removes the record — when the NAKed
    /// request came from the record's own client (its server-answered hardware address):
    /// a NAK for someone using the client's identifier from another machine is passed on
    /// to that machine and leaves the client's record alone.
    fn nak<T: AsRef<[u8]>>(&mut self, reply: &ServerReply<'_, T>, outbox: &mut Outbox) -> Verdict {
        self.answered(&reply.id);
        if let Some(s) = reply.slot {
            let own = self.table.get(s).is_some_and(|r| r.reply.is_none() || r.reply_chaddr() == reply.msg.chaddr());
            if own {
                self.drop_record(s, Removal::ServerNak);
            }
        }
        let result = self.deliver_to_client(reply.ds, reply.msg, reply.server, outbox);
        self.delivered(reply.ds, result)
    }

    /// Store a server's ACK / BOOTREPLY as the record's configuration.
    pub(crate) fn cache_reply<T: AsRef<[u8]>>(&mut self, reply: &ServerReply<'_, T>, slot: Slot, kind: ClientKind) {
        let (now, msg, server) = (reply.now, reply.msg, reply.server);
        let times = match kind {
            ClientKind::Bootp => ServerLeaseTimes::BOOTP,
            ClientKind::Dhcp => match ServerLeaseTimes::of(msg) {
                Some(t) => t,
                None => return, // an ACK without a lease time cannot be answered from
            },
        };
        let address = msg.yiaddr();
        let Some(r) = self.table.get_mut(slot) else { return };
        // Kept without option 82 and without the padding after END, with what the client
        // asked for in the request this answers; what the record holds (its key, and the
        // address and lease times set below) is not kept twice.
        let ctx =
            ReplyContext { key: Some(&r.key), address, lease_secs: times.lease, t1_secs: times.t1, t2_secs: times.t2 };
        let Some(kept) = kept_reply(msg, &mut self.scratch, &ctx, &reply.tx.params) else { return };
        // A pool client the server has now given a lease of its own: its pool entry is free
        // again (the client has left the pool address for the server's).
        let left_pool = match r.origin() {
            Origin::Pool { n } => Some((usize::from(r.downstream), n, r.key.clone(), r.address)),
            _ => None,
        };
        r.set_origin(Origin::Server);
        // The lease runs from when the request was sent (RFC 2131 4.4.1 has the client
        // count from its request too), so we never believe in more lease than there is.
        let start = reply.tx.sent_at.min(now);
        r.set_kind(kind);
        r.downstream = reply.ds as u16;
        r.lease_secs = times.lease;
        r.t1_secs = times.t1;
        r.t2_secs = times.t2;
        r.set_lease_start(start);
        r.set_last_update(now);
        r.set_server(Some(server));
        r.state = ClientState::Bound;
        r.set_confirmed(true);
        let server_id = server.id;
        let key = r.key.clone();
        if let Some((link, n, client, old_address)) = left_pool {
            self.pool_client_left_for_server(link, n, &client, old_address);
        }
        // Pool mode: the server has given this address to this client, so a pool entry that
        // believed it held it (its lease ended at the server while we counted on it, as
        // after a step of the clock) has lost it, as when it leases it to another entry
        // (`pool_leased`): the pool never gives out an address a server gave a client.
        while let Some(stale) = self.pool.holding_other_than(None, address) {
            self.pool_entry_lost(now, stale, ProxyEvent::PoolLeaseLost);
        }
        if let Some(evicted) = self.table.store_reply(slot, kept) {
            self.forgotten(&evicted, Removal::Evicted);
        }
        // Paper 4.2: its clients will unicast to the identifier the server gave them.
        self.learn_server_id(server_id);
        self.note_change(&key);
        if let Some(other) = self.table.set_address(slot, address) {
            // The server has given this address to this client: any other record holding
            // it is stale.
            self.drop_record(other, Removal::AddressReassigned);
        }
    }
}
