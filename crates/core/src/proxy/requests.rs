//! Table 1, client-to-server rows: what the caching relay does with each client request.
//!
//! Each request is either answered from the table ([`super::answer`], after a probe where
//! paper 3.2 asks for one) or forwarded, and the state the client is then in is noted
//! (paper 5.2, "roughly synonymous to those shown in Figure 5 of [RFC 2131]").

use core::net::Ipv4Addr;

use cdra_wire::MessageType;

use super::probes::ProbeFor;
use super::{ClientRequest, LocalAnswer};
use crate::config::Ipv4Net;
use crate::config::PoolAssign;
use crate::counters::ProxyEvent;
use crate::engine::Engine;
use crate::mode::{AddressSource, ServerIdentity};
use crate::outbox::Outbox;
use crate::relay::{Targets, Track, Upstream};
use crate::table::{ClientKind, ClientState, Origin, ParamList, Removal, ServerBinding, Slot};
use crate::transactions::{Expect, Party, RequestId};
use crate::verdict::{DiscardReason, DropReason, Verdict};

/// Is `dst` a broadcast address on the link of `net` (a REBINDING client broadcasts)?
pub(crate) fn is_broadcast(dst: Ipv4Addr, net: &Ipv4Net) -> bool {
    dst.is_broadcast() || dst == net.broadcast()
}

/// What a record can do for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answerable {
    /// Answer it from the table.
    Yes,
    /// Its server lease has run out (paper 5.7): its address may be offered again, after a
    /// probe, but only the server may grant it.
    Expired,
    /// Forward the request.
    No,
}

/// What a forwarded request waits for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Awaiting {
    /// No reply (DECLINE, RELEASE: RFC 2131 4.3.3 and 4.3.4, the server sends none).
    Nothing,
    /// A reply of this kind, for the client in `slot` (`None`: relayed for nobody we
    /// keep, such as an INFORM).
    Reply(Option<Slot>, Expect),
}

impl Expect {
    /// The state a client waiting for this is in (paper 5.2), if it changes it.
    fn client_state(self) -> Option<ClientState> {
        match self {
            Expect::Offer | Expect::BootReply => Some(ClientState::Init),
            Expect::Ack(state) => Some(state),
            Expect::Inform | Expect::UpstreamRenewal | Expect::Migration => None,
        }
    }
}

impl Engine {
    /// Dispatch on the message type (Table 1's rows).
    pub(crate) fn client_request<T: AsRef<[u8]>>(
        &mut self,
        req: &ClientRequest<'_, T>,
        outbox: &mut Outbox,
    ) -> Verdict {
        if let Some(s) = req.slot.filter(|s| self.table.get(*s).is_some_and(|r| r.must_restart())) {
            // Pool mode: its move to the server failed, or its pool lease is gone: a NAK
            // (to a REQUEST), and it starts over like a new client.
            if let Some(verdict) = self.pool_restart_client(req, s, outbox) {
                return verdict;
            }
            let fresh = ClientRequest { slot: None, key: req.key.clone(), ..*req };
            return self.client_request(&fresh, outbox);
        }
        match req.msg.message_type() {
            None => self.bootrequest(req, outbox),
            Some(MessageType::Discover) => self.discover(req, outbox),
            Some(MessageType::Request) => self.dhcp_request(req, outbox),
            Some(MessageType::Decline) | Some(MessageType::Release) => self.gave_up(req, outbox),
            // Table 1: "DHCPINFORM: Forward to Server". Anything else is relayed too.
            Some(MessageType::Inform) => {
                self.forward_for(req, Awaiting::Reply(None, Expect::Inform), Upstream::CHOSEN, outbox)
            }
            Some(_) => {
                let awaiting = Awaiting::Reply(None, Expect::Ack(ClientState::Requesting));
                self.forward_for(req, awaiting, Upstream::CHOSEN, outbox)
            }
        }
    }

    /// Forward a client's request and note the state the client is now in (paper 5.2: "If
    /// the relay must forward the request to the client's server, it places the client in
    /// the RENEWING state", and so on). The request is filed ([`crate::transactions`]) with
    /// what it waits for and its option 55, so its reply can be matched.
    pub(crate) fn forward_for<T: AsRef<[u8]>>(
        &mut self,
        req: &ClientRequest<'_, T>,
        awaiting: Awaiting,
        to: Upstream,
        outbox: &mut Outbox,
    ) -> Verdict {
        let msg = req.msg;
        let track = match awaiting {
            Awaiting::Nothing => Track::Nothing,
            Awaiting::Reply(slot, expect) => {
                // The record shows the state of its client on its own link; a request in its
                // name from elsewhere leaves it as it is (only the server's answer moves it).
                let own = slot.and_then(|s| self.table.get_mut(s)).filter(|r| usize::from(r.downstream) == req.ds);
                if let (Some(r), Some(state)) = (own, expect.client_state()) {
                    r.state = state;
                }
                let params = msg.parameter_request_list().map(ParamList::new).unwrap_or(ParamList::EMPTY);
                Track::Reply { expect, party: slot.map_or(Party::Nobody, |s| self.party_of(s)), params }
            }
        };
        self.counters.proxy.add(ProxyEvent::Forwarded);
        self.forward_request(req.now, req.ds, msg, req.admitted, to, track, outbox)
    }

    /// The party a request for the record in `slot` is filed for.
    pub(crate) fn party_of(&self, slot: Slot) -> Party {
        self.table.reference(slot).map_or(Party::Nobody, Party::Client)
    }

    /// The server a record's lease is with, as a pool index.
    pub(crate) fn server_of(&self, binding: Option<ServerBinding>) -> Option<(usize, ServerBinding)> {
        let b = binding?;
        Some((self.servers.index_of(b.addr)?, b))
    }

    /// Can the record in `slot` answer this request from the table ("if able")? Removes
    /// records that turn out to be stale (too old, wrong subnet).
    pub(crate) fn cache_hit<T: AsRef<[u8]>>(
        &mut self,
        req: &ClientRequest<'_, T>,
        slot: Slot,
        kind: ClientKind,
        wanted: Option<Ipv4Addr>,
    ) -> bool {
        self.answerable(req, slot, kind, wanted) == Answerable::Yes
    }

    /// What the record in `slot` can do for this request ("if able", and paper 5.7's
    /// expired records). Removes records that turn out to be stale (too old, wrong subnet).
    pub(crate) fn answerable<T: AsRef<[u8]>>(
        &mut self,
        req: &ClientRequest<'_, T>,
        slot: Slot,
        kind: ClientKind,
        wanted: Option<Ipv4Addr>,
    ) -> Answerable {
        let (now, msg) = (req.now, req.msg);
        self.clamp_future_dated(now, slot);
        let proxy = &self.config.proxy;
        let Some(iface) = self.config.downstream.get(req.ds) else { return Answerable::No };
        let Some(r) = self.table.get(slot) else { return Answerable::No };
        if r.reply.is_none() || r.kind() != kind {
            return Answerable::No;
        }
        // A request from another link than the client's is not answered from the table
        // (Appendix B, "Validity of client data": the client may have moved) and does not
        // change the record: it is forwarded, and only the server's answer to it moves the
        // record (a stranger elsewhere using the client's identity cannot).
        if usize::from(r.downstream) != req.ds {
            return Answerable::No;
        }
        // Paper 5.6: "The data is only considered valid for a certain term (default is 9
        // days). After expiration of the data, the client record is deleted."
        if now.since(r.last_update()) > proxy.max_age {
            self.drop_record(slot, Removal::Expired);
            return Answerable::No;
        }
        // Appendix B, "Validity of client data": never offer an address that is not on the
        // subnet of the link the request came in on (the link was renumbered).
        if !iface.address.contains(r.address) {
            self.drop_record(slot, Removal::WrongSubnet);
            return Answerable::No;
        }
        // Appendix B, "What happens if the client request changes?": a request for another
        // address, or for parameters the server was not asked for, goes to the server.
        // (A pool client has what the pool lease was given: there is no server to ask.)
        let pool_client = matches!(r.origin(), Origin::Pool { .. });
        let changed = wanted.is_some_and(|w| w != r.address)
            || (!pool_client && msg.parameter_request_list().is_some_and(|p| !r.param_list().covers(p)));
        if changed {
            self.counters.proxy.add(ProxyEvent::ChangedRequest);
            return Answerable::No;
        }
        // Paper 5.7: a record whose server lease has run out is kept (until max_age): its
        // client will most likely be given the same configuration again.
        if kind == ClientKind::Dhcp && r.lease_end().is_some_and(|end| end <= now) {
            return Answerable::Expired;
        }
        if kind == ClientKind::Dhcp && u64::from(r.lease_left_secs(now)) < proxy.min_lease_left.as_secs() {
            return Answerable::No;
        }
        Answerable::Yes
    }

    /// The client's record, created (state INIT) when absent.
    pub(crate) fn record_of<T: AsRef<[u8]>>(&mut self, req: &ClientRequest<'_, T>, kind: ClientKind) -> Slot {
        match req.slot.filter(|s| self.table.get(*s).is_some()) {
            Some(s) => s,
            None => self.record_for(req.key.clone(), kind, req.ds, req.now),
        }
    }

    /// Table 1: "BOOTREQUEST: Spoof if able, otherwise forward to server."
    fn bootrequest<T: AsRef<[u8]>>(&mut self, req: &ClientRequest<'_, T>, outbox: &mut Outbox) -> Verdict {
        if let Some(s) = req.slot {
            if self.cache_hit(req, s, ClientKind::Bootp, None) {
                return self.answer_from_cache(req, s, LocalAnswer::BootReply, outbox);
            }
        }
        let slot = self.record_of(req, ClientKind::Bootp);
        self.forward_for(req, Awaiting::Reply(Some(slot), Expect::BootReply), Upstream::CHOSEN, outbox)
    }

    /// Table 1: "DHCPDISCOVER: Proxy if able, otherwise forward to server." A DISCOVER
    /// answered from the table needs no precaution: the REQUEST that follows does.
    fn discover<T: AsRef<[u8]>>(&mut self, req: &ClientRequest<'_, T>, outbox: &mut Outbox) -> Verdict {
        let pool_mode = self.config.mode.address_source() == AddressSource::ServersAndPool;
        if let Some(s) = req.slot {
            // A pool client is offered its pool address, whatever its DISCOVER asks for (it
            // may name the address it had before it released it).
            let pool_client = self.table.get(s).is_some_and(|r| matches!(r.origin(), Origin::Pool { .. }));
            if pool_client && self.proxy.probes.is_probing(&req.key) {
                // Its record holds the entry's address before the probe that precedes the
                // pool OFFER has found nobody on it: a retransmission waits for that probe
                // (never an unprobed pool OFFER).
                self.counters.proxy.discarded.add(DiscardReason::RetransmissionDuringProbe);
                return Verdict::Discarded(DiscardReason::RetransmissionDuringProbe);
            }
            let wanted = if pool_client { None } else { req.msg.requested_ip() };
            match self.answerable(req, s, ClientKind::Dhcp, wanted) {
                Answerable::Yes => return self.answer_from_cache(req, s, LocalAnswer::Offer, outbox),
                // Issue 12 (paper 5.7): "serving an expired address while the servers are
                // unreachable stays off; the pool replaces it". With every server down, a
                // client whose record ran out gets a pool address instead of an OFFER of
                // its old one that no server would confirm.
                Answerable::Expired if pool_mode && self.pool_answers_at_once(req.now) => {
                    let verdict = self.pool_offer(req, outbox);
                    if verdict != Verdict::Dropped(DropReason::NoServer) {
                        return verdict;
                    }
                }
                // Paper 5.7: "The relay could respond to this message with a DHCPOFFER even
                // though the lease has expired" — after a probe of the address, unless
                // safe_network: the address is no longer the client's anywhere.
                Answerable::Expired if self.config.proxy.safe_network => {
                    return self.answer_from_cache(req, s, LocalAnswer::OfferOfExpired, outbox)
                }
                Answerable::Expired => return self.start_probe(req, s, ProbeFor::OfferOfExpired, outbox),
                Answerable::No => {}
            }
        }
        self.proxy.offers.close_for(&req.key);
        // Paper 4.3: a client the servers may not serve gets a pool address.
        let new_client = req.slot.and_then(|s| self.table.get(s)).is_none_or(|r| r.reply.is_none());
        let pool = new_client && pool_mode;
        if pool && self.pool_answers_at_once(req.now) {
            let verdict = self.pool_offer(req, outbox);
            if verdict != Verdict::Dropped(DropReason::NoServer) {
                return verdict;
            }
        }
        let slot = self.record_of(req, ClientKind::Dhcp);
        let verdict = self.forward_for(req, Awaiting::Reply(Some(slot), Expect::Offer), Upstream::CHOSEN, outbox);
        if pool && self.config.pool.assign == PoolAssign::Outage {
            self.pool_arm_fallback(req);
        }
        verdict
    }

    /// Answer an ACK from the table, after a probe of the address unless `safe_network`
    /// (paper 3.2: SELECTING and INIT-REBOOT requests).
    fn ack_after_probe<T: AsRef<[u8]>>(
        &mut self,
        req: &ClientRequest<'_, T>,
        slot: Slot,
        outbox: &mut Outbox,
    ) -> Verdict {
        if self.config.proxy.safe_network || self.pool_offer_was_probed(slot) {
            self.answer_from_cache(req, slot, LocalAnswer::Ack { hold: false }, outbox)
        } else {
            self.start_probe(req, slot, ProbeFor::Ack, outbox)
        }
    }

    /// Table 1: "DHCPREQUEST: Proxy if able, otherwise forward to server", with the
    /// client's state told apart as in RFC 2131 4.3.2 and the precautions of paper 3.2.
    fn dhcp_request<T: AsRef<[u8]>>(&mut self, req: &ClientRequest<'_, T>, outbox: &mut Outbox) -> Verdict {
        let msg = req.msg;
        let ciaddr = msg.ciaddr();
        // RFC 2131 4.3.2 tells the client states apart: SELECTING names a server and has
        // ciaddr 0 (a non-compliant client that names us while renewing is RENEWING).
        if let Some(sid) = msg.server_identifier().filter(|_| ciaddr.is_unspecified()) {
            return self.selecting(req, sid, outbox);
        }
        if ciaddr.is_unspecified() {
            let Some(wanted) = msg.requested_ip() else {
                // Neither SELECTING nor INIT-REBOOT: malformed, but the server may know.
                let awaiting = Awaiting::Reply(None, Expect::Ack(ClientState::Requesting));
                return self.forward_for(req, awaiting, Upstream::CHOSEN, outbox);
            };
            // INIT-REBOOT: option 50 filled in, ciaddr zero, no server identifier.
            if let Some(s) = req.slot {
                if self.cache_hit(req, s, ClientKind::Dhcp, Some(wanted)) {
                    return self.ack_after_probe(req, s, outbox);
                }
            }
            let slot = self.record_of(req, ClientKind::Dhcp);
            let awaiting = Awaiting::Reply(Some(slot), Expect::Ack(ClientState::Rebooting));
            return self.forward_for(req, awaiting, Upstream::CHOSEN, outbox);
        }
        self.renewing_or_rebinding(req, ciaddr, outbox)
    }

    /// SELECTING: the client answers an OFFER. RFC 2131 4.3.2: "If the DHCPREQUEST message
    /// contains a 'server identifier' option, the message is in response to a DHCPOFFER
    /// message."
    fn selecting<T: AsRef<[u8]>>(&mut self, req: &ClientRequest<'_, T>, sid: Ipv4Addr, outbox: &mut Outbox) -> Verdict {
        let requesting = Expect::Ack(ClientState::Requesting);
        // Is this the answer to an OFFER we made? We made it as the identity the client sees
        // (`shown_identity`): our address (proxy), or the server's (spoof).
        let record = req.slot.and_then(|s| self.table.get(s).map(|r| (s, r.state, r.server())));
        let offered = |state| matches!(state, ClientState::OfferedLocally | ClientState::OfferedExpired);
        let our_offer = match self.config.mode.server_identity() {
            ServerIdentity::Server => {
                record.is_some_and(|(_, state, server)| offered(state) && server.is_some_and(|b| b.id == sid))
            }
            ServerIdentity::Ours | ServerIdentity::AsSent => self.is_our_address(sid),
        };
        if !our_offer {
            // It chose another server's OFFER (a spoofing relay passes every one on, or the
            // server is reachable some other way): to that server.
            let slot = self.record_of(req, ClientKind::Dhcp);
            let to = match self.servers.index_of(sid) {
                Some(i) => Upstream { targets: Targets::One(i), server_id: None },
                None => Upstream::CHOSEN,
            };
            return self.forward_for(req, Awaiting::Reply(Some(slot), requesting), to, outbox);
        }
        if let Some((s, state, _)) = record {
            if state == ClientState::OfferedExpired {
                return self.request_expired_as_init_reboot(req, s, outbox);
            }
            if state == ClientState::OfferedLocally && self.cache_hit(req, s, ClientKind::Dhcp, req.msg.requested_ip())
            {
                return self.ack_after_probe(req, s, outbox);
            }
        }
        // The offer came from a server (or ours can no longer be honoured): paper 5.1, put
        // the real server's identifier back before forwarding. The REQUEST carries the
        // DISCOVER's xid (RFC 2131 4.4.1), so the DISCOVER's transaction names the server
        // whose OFFER was passed on.
        let offered_by = self.transactions.get(&RequestId::of(req.msg, req.ds), req.now).and_then(|t| t.offered_by);
        let server = req.slot.and_then(|s| self.table.get(s)).and_then(|r| r.server());
        match self.server_of(offered_by.or(server)) {
            Some((index, binding)) => {
                let slot = self.record_of(req, ClientKind::Dhcp);
                let to = Upstream { targets: Targets::One(index), server_id: Some(binding.id) };
                self.forward_for(req, Awaiting::Reply(Some(slot), requesting), to, outbox)
            }
            // Appendix B, "The server-identifier option": when we no longer know which
            // server made the offer, "it sends a NAK to the client, forcing it to restart
            // its initialization and send out a DISCOVER".
            None => self.send_nak(req.ds, req.msg, outbox),
        }
    }

    /// Paper 5.7: "The client would respond with a DHCPREQUEST of the REQUESTING type. The
    /// relay could convert this REQUESTING DHCPREQUEST to a REBOOTING DHCPREQUEST and
    /// forward it to the server. This saves the server from having to process the
    /// DHCPDISCOVER." The server identifier goes (RFC 2131 4.3.2: an INIT-REBOOT request
    /// names no server); the requested address stays. Only the server's answer reaches the
    /// client: "serving an expired address while the servers are unreachable" stays off.
    fn request_expired_as_init_reboot<T: AsRef<[u8]>>(
        &mut self,
        req: &ClientRequest<'_, T>,
        slot: Slot,
        outbox: &mut Outbox,
    ) -> Verdict {
        let mut buf = vec![0u8; crate::outbox::OUT_BUFFER_SIZE];
        let len =
            match cdra_wire::rewrite::rewrite(req.msg, &mut buf, &[cdra_wire::options::OptionCode::SERVER_ID], |_| {
                Ok(())
            }) {
                Ok(n) => n,
                Err(_) => return self.drop(req.ds, DropReason::ReplyTooLarge),
            };
        buf.truncate(len);
        let msg = cdra_wire::Message::new_unchecked(&buf[..]);
        self.counters.proxy.add(ProxyEvent::ExpiredRequestForwarded);
        let converted = ClientRequest {
            now: req.now,
            ds: req.ds,
            dst: req.dst,
            msg: &msg,
            admitted: req.admitted,
            key: req.key.clone(),
            slot: req.slot,
        };
        let to = match self.table.get(slot).and_then(|r| self.server_of(r.server())) {
            Some((i, _)) => Upstream { targets: Targets::One(i), server_id: None },
            None => Upstream::CHOSEN,
        };
        self.forward_for(&converted, Awaiting::Reply(Some(slot), Expect::Ack(ClientState::Rebooting)), to, outbox)
    }

    /// RENEWING (unicast to us) or REBINDING (broadcast): ciaddr filled in.
    fn renewing_or_rebinding<T: AsRef<[u8]>>(
        &mut self,
        req: &ClientRequest<'_, T>,
        ciaddr: Ipv4Addr,
        outbox: &mut Outbox,
    ) -> Verdict {
        let Some(iface) = self.config.downstream.get(req.ds) else {
            return self.drop(req.ds, DropReason::UnknownInterface);
        };
        let rebinding = is_broadcast(req.dst, &iface.address);
        let hit = req.slot.is_some_and(|s| self.cache_hit(req, s, ClientKind::Dhcp, Some(ciaddr)));
        let slot = self.record_of(req, ClientKind::Dhcp);
        // A pool client's lease is ours at the server (cdra keeps it renewed): the REBIND
        // precaution of paper 3.2 concerns leases a server holds for the client itself.
        let pool_client = self.table.get(slot).is_some_and(|r| matches!(r.origin(), Origin::Pool { .. }));
        if rebinding {
            if hit && (self.config.proxy.safe_network || pool_client) {
                return self.answer_from_cache(req, slot, LocalAnswer::Ack { hold: false }, outbox);
            }
            // Paper 3.2: "before the CDRA ACKs the request, it must first renew the lease
            // with the server" — the client's REBIND goes to the servers and only their
            // answer reaches the client.
            if hit {
                self.counters.proxy.add(ProxyEvent::RebindForwarded);
            }
            let awaiting = Awaiting::Reply(Some(slot), Expect::Ack(ClientState::Rebinding));
            return self.forward_for(req, awaiting, Upstream::CHOSEN, outbox);
        }
        if hit && self.renew_needs_the_server(slot) {
            self.counters.proxy.add(ProxyEvent::SuspectRenewalForwarded);
        } else if hit {
            // Paper 3.2: "DHCPREQUEST used to RENEW a lease (unicast request) ... No
            // precautions are required." Past the server lease's T1 the answer also renews
            // upstream (see `renew_upstream_if_due`).
            self.counters.proxy.add(ProxyEvent::LocalRenewal);
            return self.answer_from_cache(req, slot, LocalAnswer::Ack { hold: true }, outbox);
        }
        let to = match self.table.get(slot).and_then(|r| self.server_of(r.server())) {
            Some((i, _)) => Upstream { targets: Targets::One(i), server_id: None },
            None => Upstream::CHOSEN,
        };
        self.forward_for(req, Awaiting::Reply(Some(slot), Expect::Ack(ClientState::Renewing)), to, outbox)
    }

    /// Spoofing mode, with precautions: an intercepted RENEW for a record that is suspect
    /// (restored from the store and not confirmed since) goes to the server first. Paper
    /// 3.2 needs no precaution for a RENEW because a client renewing with a proxy got its
    /// lease through it; a RENEW to the real server proves nothing of the kind, and paper
    /// 4.2 expects clients to renew "directly" by another path while the spoofing relay is
    /// down — a lease we would then extend from a stale record could outlive the server's
    /// (the REBIND case of Appendix A.1).
    fn renew_needs_the_server(&self, slot: Slot) -> bool {
        self.config.mode.unicasts() == crate::mode::Unicasts::Intercepted
            && !self.config.proxy.safe_network
            && self.table.get(slot).is_some_and(|r| !r.confirmed())
    }

    /// Table 1: "DHCPDECLINE / DHCPRELEASE: Forward to Server, Remove client from DB." The
    /// client names us in option 54; the server gets its own identifier back.
    ///
    /// No authentication protects these (RFC 3118 is not used in practice), so a cached
    /// client's record is removed only by a message that is consistent with it, checked
    /// as far as a relay can: it arrived on the client's link (from the client's own
    /// hardware address: `cache_request`), and names the client's address — RFC 2131
    /// 4.4.6, a RELEASE carries the released address in ciaddr; 4.4.4 / table 5, a DECLINE
    /// carries the declined address in option 50. Anything else is dropped and counted,
    /// and the record stays: a stranger's message costs the stranger, not the client.
    fn gave_up<T: AsRef<[u8]>>(&mut self, req: &ClientRequest<'_, T>, outbox: &mut Outbox) -> Verdict {
        let msg = req.msg;
        let cached = req.slot.and_then(|s| self.table.get(s)).filter(|r| r.reply.is_some());
        if let Some(r) = cached {
            let named = match msg.message_type() {
                Some(MessageType::Decline) => msg.requested_ip(),
                _ => Some(msg.ciaddr()),
            };
            if named != Some(r.address) || usize::from(r.downstream) != req.ds {
                return self.drop(req.ds, DropReason::ReleaseMismatch);
            }
        }
        let binding = cached.and_then(|r| r.server());
        if let Some(s) = req.slot.filter(|s| self.pool_entry_of(*s).is_some()) {
            // Pool mode: the lease is ours, not the client's, at the server; the server
            // hears of it only if the address is in use (DECLINE).
            match msg.message_type() {
                Some(MessageType::Decline) => self.pool_client_declined(req.now, s, outbox),
                _ => self.pool_client_gone(s, Removal::ReturnedToPool),
            }
            return Verdict::AnsweredLocally;
        }
        if let Some(s) = req.slot {
            self.drop_record(s, Removal::ClientGaveUp);
        }
        let names_us = msg.server_identifier().is_some_and(|sid| self.is_our_address(sid));
        match self.server_of(binding) {
            Some((i, b)) => {
                let to = Upstream { targets: Targets::One(i), server_id: names_us.then_some(b.id) };
                self.forward_for(req, Awaiting::Nothing, to, outbox)
            }
            None if names_us => {
                // We do not know the server: each one gets a copy naming itself.
                let mut verdict = Verdict::Dropped(DropReason::NoServer);
                for i in 0..self.servers.servers().len() {
                    let id = self.servers.servers().get(i).map(|s| s.addr);
                    let to = Upstream { targets: Targets::One(i), server_id: id };
                    verdict = self.forward_for(req, Awaiting::Nothing, to, outbox);
                }
                verdict
            }
            None => self.forward_for(req, Awaiting::Nothing, Upstream::CHOSEN, outbox),
        }
    }
}
