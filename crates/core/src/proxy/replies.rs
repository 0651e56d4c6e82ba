//! Table 1, server-to-client rows: what the caching relay does with each server reply,
//! and how a reply becomes the client's record (paper 5: "Msg", the last DHCPACK).
//!
//! A reply is matched to the client whose request it answers by everything a server copies
//! from the request ([`RequestId`]: xid, htype, hlen, chaddr, and the link its giaddr
//! names), never by xid alone; a reply to a request we did not track (the bound
//! `max_tracked_requests`, or a request that was only relayed) is matched by the client's
//! identity.

use cdra_wire::options::OptionCode;
use cdra_wire::rewrite::rewrite;
use cdra_wire::{Message, MessageType};

use super::trimmed;
use crate::counters::ProxyEvent;
use crate::engine::Engine;
use crate::lease::ServerLeaseTimes;
use crate::outbox::Outbox;
use crate::table::{CachedReply, ClientKey, ClientKind, ClientState, Removal, RequestId, ServerBinding, Slot};
use crate::time::Timestamp;
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
    /// The request it answers, as it names it.
    pub(crate) id: RequestId,
    /// The client's record, and the state it is in.
    pub(crate) slot: Option<Slot>,
    pub(crate) state: Option<ClientState>,
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
        let (server_index, ds) = match self.accept_reply(now, src, msg) {
            Ok(x) => x,
            Err(reason) => return self.drop(counter_slot, reason),
        };
        let server = ServerBinding { addr: src, id: msg.server_identifier().unwrap_or(src) };
        let id = RequestId::of(msg, ds);
        let slot = self.record_for_reply(msg, &id);
        let record = slot.and_then(|s| self.table.get(s));
        let state = record.map(|r| r.state);
        // Paper 5.3: "When the server sends the ACK back to the relay, the relay updates the
        // lease information in the client DB and silently discards the packet."
        let absorbed = record.is_some_and(|r| r.upstream_renewal && r.pending == Some(id));
        let reply = ServerReply { now, ds, server_index, server, msg, id, slot, state };
        if let (Some(s), true) = (slot, absorbed) {
            return self.upstream_renewal_answered(&reply, s);
        }
        match msg.message_type() {
            None => self.bootreply(&reply, outbox),
            Some(MessageType::Offer) => self.offer(&reply, outbox),
            Some(MessageType::Ack) => self.ack(&reply, outbox),
            Some(MessageType::Nak) => self.nak(&reply, outbox),
            Some(_) => {
                let result = self.deliver_to_client(ds, msg, server, outbox);
                self.delivered(ds, result)
            }
        }
    }

    /// Count a Table 1 silent discard.
    pub(crate) fn discard(&mut self, reason: DiscardReason) -> Verdict {
        self.counters.proxy.discarded.add(reason);
        Verdict::Discarded(reason)
    }

    /// The record a server reply is for: the client whose tracked request it answers, else
    /// (request not tracked) the client it names — by option 61 echoed (RFC 6842), else by
    /// hardware address — unless that client has another request outstanding.
    fn record_for_reply<T: AsRef<[u8]>>(&self, msg: &Message<T>, id: &RequestId) -> Option<Slot> {
        if let Some(slot) = self.table.find_request(id) {
            return Some(slot);
        }
        self.table
            .find(&ClientKey::of(msg))
            .or_else(|| self.table.find(&ClientKey::hardware(msg.htype(), msg.chaddr())))
    }

    fn upstream_renewal_answered<T: AsRef<[u8]>>(&mut self, reply: &ServerReply<'_, T>, slot: Slot) -> Verdict {
        let msg = reply.msg;
        match msg.message_type() {
            Some(MessageType::Ack) if !msg.yiaddr().is_unspecified() => {
                self.cache_reply(reply, slot, ClientKind::Dhcp);
                self.counters.proxy.add(ProxyEvent::UpstreamRenewalAcked);
            }
            Some(MessageType::Nak) => self.drop_record(slot, Removal::ServerNak),
            _ => {}
        }
        if let Some(r) = self.table.get_mut(slot) {
            r.upstream_renewal = false;
        }
        self.discard(DiscardReason::UpstreamRenewalAnswer)
    }

    /// "BOOTREPLY: Forward to client", and remember it for spoofing. A BOOTREPLY without an
    /// address (yiaddr 0: a BOOTP server that only names a boot file) is passed on but not
    /// kept: it could not be answered from, nor restored.
    fn bootreply<T: AsRef<[u8]>>(&mut self, reply: &ServerReply<'_, T>, outbox: &mut Outbox) -> Verdict {
        let msg = reply.msg;
        if !msg.yiaddr().is_unspecified() {
            let slot = match reply.slot {
                Some(s) => s,
                None => self.record_for(ClientKey::of(msg), ClientKind::Bootp, reply.ds, reply.now),
            };
            self.cache_reply(reply, slot, ClientKind::Bootp);
        }
        let result = self.deliver_to_client(reply.ds, msg, reply.server, outbox);
        self.delivered(reply.ds, result)
    }

    /// "DHCPOFFER: Forward to client if client is in INIT state, otherwise silent discard"
    /// (paper 5.2: one OFFER per DISCOVER; which one is [`super::offers`]).
    fn offer<T: AsRef<[u8]>>(&mut self, reply: &ServerReply<'_, T>, outbox: &mut Outbox) -> Verdict {
        match (reply.slot, reply.state) {
            (Some(s), Some(ClientState::Init)) => self.choose_offer(reply, s, outbox),
            (Some(_), Some(_)) if self.config.mode.offers_per_discover() == crate::mode::OffersPerDiscover::One => {
                self.discard(DiscardReason::OfferNotInInit)
            }
            (Some(s), Some(_)) => self.pass_offer(reply.now, s, reply.ds, reply.msg, reply.server, outbox),
            _ => {
                // No record (evicted while the DISCOVER was out): pass it on and remember
                // who offered, so the REQUEST can be routed.
                let s = self.record_for(ClientKey::of(reply.msg), ClientKind::Dhcp, reply.ds, reply.now);
                self.pass_offer(reply.now, s, reply.ds, reply.msg, reply.server, outbox)
            }
        }
    }

    /// Pass an OFFER to the client: the client is now REQUESTING (paper 5.2) and its
    /// REQUEST will be routed to the offering server.
    pub(crate) fn pass_offer<T: AsRef<[u8]>>(
        &mut self,
        _now: Timestamp,
        slot: Slot,
        ds: usize,
        msg: &Message<T>,
        server: ServerBinding,
        outbox: &mut Outbox,
    ) -> Verdict {
        if let Some(r) = self.table.get_mut(slot) {
            r.state = ClientState::Requesting;
            r.offered_by = Some(server);
        }
        let result = self.deliver_to_client(ds, msg, server, outbox);
        if let Ok(sent) = result {
            self.shorten_reply(outbox, sent);
        }
        self.delivered(ds, result)
    }

    /// "DHCPACK: Forward to client if client is in REQUESTING, REBOOTING, RENEWING or
    /// REBINDING state, otherwise silent discard"; the ACK becomes the client's record.
    fn ack<T: AsRef<[u8]>>(&mut self, reply: &ServerReply<'_, T>, outbox: &mut Outbox) -> Verdict {
        let msg = reply.msg;
        if msg.yiaddr().is_unspecified() {
            // The answer to an INFORM: no lease to remember.
            let result = self.deliver_to_client(reply.ds, msg, reply.server, outbox);
            return self.delivered(reply.ds, result);
        }
        // RFC 4039 rapid commit: an ACK may answer a DISCOVER directly.
        let rapid = reply.state == Some(ClientState::Init) && msg.option(OptionCode::RAPID_COMMIT).is_some();
        let slot = match (reply.slot, reply.state) {
            (Some(s), Some(st)) if st.awaits_ack() || rapid => s,
            (Some(_), Some(_)) => return self.discard(DiscardReason::AckNotAwaited),
            _ => self.record_for(ClientKey::of(msg), ClientKind::Dhcp, reply.ds, reply.now),
        };
        self.cache_reply(reply, slot, ClientKind::Dhcp);
        let result = self.deliver_to_client(reply.ds, msg, reply.server, outbox);
        if let Ok(sent) = result {
            if let Some(lease) = self.shorten_reply(outbox, sent) {
                self.note_client_lease(reply.now, slot, lease);
            }
        }
        self.delivered(reply.ds, result)
    }

    /// "DHCPNAK: (same as DHCPACK)"; a NAK also removes the record.
    fn nak<T: AsRef<[u8]>>(&mut self, reply: &ServerReply<'_, T>, outbox: &mut Outbox) -> Verdict {
        match (reply.slot, reply.state) {
            (Some(s), Some(st)) if st.awaits_ack() => self.drop_record(s, Removal::ServerNak),
            (Some(_), Some(_)) => return self.discard(DiscardReason::NakNotAwaited),
            _ => {}
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
        // Kept without option 82 and without the padding after END.
        let kept = if msg.relay_agent_info().is_some() {
            match rewrite(msg, &mut self.scratch, &[OptionCode::RELAY_AGENT_INFO], |_| Ok(())) {
                Ok(len) => {
                    self.scratch.get(..len).and_then(|b| trimmed(&Message::new_unchecked(b)).and_then(CachedReply::new))
                }
                Err(_) => None,
            }
        } else {
            trimmed(msg).and_then(CachedReply::new)
        };
        let Some(kept) = kept else { return };
        let address = msg.yiaddr();
        // What the client asked for in the request this answers (if it was tracked; else
        // what it asked before).
        let params = self.table.params_for(&reply.id, slot);
        let Some(r) = self.table.get_mut(slot) else { return };
        // The lease runs from when the request was sent (RFC 2131 4.4.1 has the client
        // count from its request too), so we never believe in more lease than there is.
        let start = if r.pending == Some(reply.id) { r.pending_since } else { now };
        r.kind = kind;
        r.reply = Some(kept);
        r.lease_secs = times.lease;
        r.t1_secs = times.t1;
        r.t2_secs = times.t2;
        r.lease_start = start;
        r.last_update = now;
        r.server = Some(server);
        r.state = ClientState::Bound;
        r.param_list = params.unwrap_or(r.param_list);
        let key = r.key.clone();
        self.note_change(&key);
        if let Some(other) = self.table.set_address(slot, address) {
            // The server has given this address to this client: any other record holding
            // it is stale.
            self.drop_record(other, Removal::AddressReassigned);
        }
    }
}
