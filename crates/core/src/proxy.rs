//! Proxy mode: the paper's proxying caching relay (sections 2, 3, 4.1 and 5).
//!
//! cdra relays like a relay agent, remembers each client's last DHCPACK and then answers
//! that client itself, presenting itself as the client's server (option 54 = our
//! downstream address). What it does with each message is paper Table 1:
//!
//! | message      | action |
//! |--------------|--------|
//! | DHCPDISCOVER | proxy if able, otherwise forward to server |
//! | DHCPREQUEST  | proxy if able, otherwise forward to server |
//! | DHCPINFORM   | forward to server |
//! | DHCPDECLINE  | forward to server, remove client from DB |
//! | DHCPRELEASE  | forward to server, remove client from DB |
//! | DHCPOFFER    | forward to client if client is in INIT state, otherwise silent discard |
//! | DHCPACK      | forward to client if client is in REQUESTING, REBOOTING, RENEWING or REBINDING state, otherwise silent discard |
//! | DHCPNAK      | (same as DHCPACK) |
//! | BOOTREQUEST  | spoof if able, otherwise forward to server |
//! | BOOTREPLY    | forward to client |
//!
//! "Able" means the record holds a server reply that is still good: younger than
//! `max_age` (paper 5.6), with enough of the server's lease left, for an address on the
//! subnet of the link the request came in on, and asked for nothing the cached reply does
//! not answer (Appendix B). Precautions (paper 3.2) unless `safe_network`: a local ACK to
//! a SELECTING or INIT-REBOOT REQUEST waits for a probe of the address (ARP + ICMP); if
//! anything answers, the client gets a NAK and the record goes. A broadcast REBIND is
//! forwarded so the server renews first.

use core::net::Ipv4Addr;
use core::time::Duration;

use cdra_wire::options::OptionCode;
use cdra_wire::rewrite::rewrite;
use cdra_wire::{Message, MessageBuilder, MessageType, Op};

use crate::config::OfferChoice;
use crate::counters::MessageKind;
use crate::engine::{Engine, Ingress};
use crate::outbox::{Destination, Outbox, ProbeRequest, BROADCAST_MAC};
use crate::relay::{reply_destination, Admitted, Targets};
use crate::table::{
    CachedReply, ClientKey, ClientKind, ClientRecord, ClientState, ParamList, Removal, ServerBinding, Slot,
};
use crate::time::Timestamp;
use crate::verdict::{DropReason, Verdict};

/// How often the table is swept for records past `max_age` or past their server lease.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Slots examined per sweep tick (so a sweep of a large table never stalls the loop).
const SWEEP_SLOTS_PER_TICK: usize = 4096;
/// A record that never got a server reply is forgotten after this long without contact.
const UNANSWERED_RECORD_TTL: Duration = Duration::from_secs(300);
/// A forwarded request's xid is remembered this long for matching the reply.
const XID_TTL: Duration = Duration::from_secs(60);
/// An upstream renewal without an answer is sent again after this long.
const UPSTREAM_RENEWAL_RETRY: Duration = Duration::from_secs(30);
/// A client's short lease counts as lapsed this long after its end (message latency).
const LAPSE_GRACE: Duration = Duration::from_secs(2);

/// Why an address is being probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProbePurpose {
    /// A local ACK waits for it (paper 3.2).
    LocalAck,
    /// A client's short lease lapsed; a DHCPRELEASE to the server waits for it (paper 3.3).
    Lapse,
}

/// A probe in flight.
#[derive(Debug, Clone)]
pub(crate) struct PendingProbe {
    purpose: ProbePurpose,
    ds: usize,
    ifindex: u32,
    target: Ipv4Addr,
    key: ClientKey,
    client_mac: Option<[u8; 6]>,
    /// An ICMP echo reply came back. It carries no MAC address: it counts as a conflict
    /// only if no ARP answer shows it was the client itself.
    icmp_answered: bool,
    /// The client's own MAC answered the ARP probe (it still has the address configured).
    client_answered: bool,
    deadline: Timestamp,
    /// The client's REQUEST, answered when the probe times out (empty for a lapse).
    request: Vec<u8>,
}

/// OFFERs collected for one DISCOVER (offer choice other than `first`).
#[derive(Debug, Clone)]
pub(crate) struct OfferCollection {
    key: ClientKey,
    xid: u32,
    ds: usize,
    deadline: Timestamp,
    preferred_server: Option<usize>,
    best: Option<(Vec<u8>, ServerBinding, u32)>,
}

/// Proxy-mode state inside the engine.
#[derive(Debug, Default)]
pub(crate) struct ProxyState {
    pub probes: Vec<PendingProbe>,
    pub offers: Vec<OfferCollection>,
    /// When clients' short leases end (automated lease renewals), earliest first. Entries
    /// are checked against the record when they come due (a renewal pushes a new one).
    pub lapses: std::collections::BinaryHeap<core::cmp::Reverse<(Timestamp, ClientKey)>>,
    pub next_sweep: Timestamp,
    pub sweep_cursor: usize,
}

/// The message up to and including END (the padding after it is not worth keeping).
fn trimmed<T: AsRef<[u8]>>(m: &Message<T>) -> Option<&[u8]> {
    let end = m.options_end().map(|e| e + 1).unwrap_or(m.as_bytes().len());
    m.as_bytes().get(..end)
}

/// A client request in proxy mode, as `proxy_request` found it: the context every
/// Table 1 handler needs.
struct ClientRequest<'a, T: AsRef<[u8]>> {
    now: Timestamp,
    /// Downstream interface it arrived on.
    ds: usize,
    /// Destination address of its IP header (a REBINDING client broadcasts).
    dst: Ipv4Addr,
    msg: &'a Message<T>,
    admitted: Admitted,
    /// Its identity and, if the table knows it, its record.
    key: ClientKey,
    slot: Option<Slot>,
}

/// Where a forwarded request goes, and the server identifier it gets back (paper 5.1).
#[derive(Debug, Clone, Copy)]
struct Upstream {
    targets: Targets,
    server_id: Option<Ipv4Addr>,
}

impl Upstream {
    /// As the selection policy says, unchanged.
    const CHOSEN: Upstream = Upstream { targets: Targets::Chosen, server_id: None };
}

/// Is `dst` a broadcast address on the link of `ds` (a REBINDING client broadcasts)?
fn is_broadcast(dst: Ipv4Addr, net: &crate::config::Ipv4Net) -> bool {
    let bcast = Ipv4Addr::from(u32::from(net.addr) | !u32::from(net.netmask()));
    dst.is_broadcast() || dst == bcast
}

/// The lease a client gets from us at `now`: what is left of the server's lease, and no
/// more than `client_lease` when automated short leases are on (paper 5.1, 5.3).
fn local_lease_secs(r: &ClientRecord, now: Timestamp, client_lease: Option<Duration>) -> u32 {
    let left = r.lease_left_secs(now);
    match client_lease {
        Some(c) => left.min(c.as_secs().min(u64::from(u32::MAX - 1)) as u32),
        None => left,
    }
}

impl Engine {
    fn proxy_drop_record(&mut self, slot: Slot, why: Removal) {
        let Some(removed) = self.table.remove(slot) else {
            return;
        };
        if removed.reply.is_some() {
            self.note_change(&removed.key);
        }
        let c = &mut self.counters.proxy;
        match why {
            Removal::ClientGaveUp => c.removed_client_gave_up += 1,
            Removal::ServerNak => c.removed_server_nak += 1,
            Removal::Evicted => c.evicted += 1,
            Removal::Expired => c.expired += 1,
            Removal::WrongSubnet => c.wrong_subnet += 1,
            Removal::AddressInUse => c.removed_in_use += 1,
            Removal::AddressReassigned => c.reassigned += 1,
            Removal::Flushed => c.flushed += 1,
        }
        self.proxy.probes.retain(|p| self.table.find(&p.key).is_some());
    }

    /// The record for `key`, created (state INIT) when absent.
    fn proxy_record(&mut self, key: ClientKey, kind: ClientKind, ds: usize, now: Timestamp) -> Slot {
        if let Some(slot) = self.table.find(&key) {
            return slot;
        }
        let (slot, evicted) = self.table.insert(ClientRecord::new(key, kind, ds as u16, now));
        if let Some(gone) = evicted {
            self.counters.proxy.evicted += 1;
            if gone.reply.is_some() {
                self.note_change(&gone.key);
            }
        }
        slot
    }

    /// Forward a client's request and note the state the client is now in (paper 5.2: "If
    /// the relay must forward the request to the client's server, it places the client in
    /// the RENEWING state", and so on). With a `state`, the request's xid and option 55 are
    /// remembered to match the server's reply.
    fn forward_for<T: AsRef<[u8]>>(
        &mut self,
        req: &ClientRequest<'_, T>,
        slot: Option<Slot>,
        state: Option<ClientState>,
        to: Upstream,
        outbox: &mut Outbox,
    ) -> Verdict {
        let msg = req.msg;
        if let (Some(slot), Some(state)) = (slot, state) {
            let params = msg.parameter_request_list().map(ParamList::new).unwrap_or(ParamList::EMPTY);
            if !self.table.track_xid(slot, msg.xid(), req.now, params) {
                self.counters.proxy.requests_untracked += 1;
            }
            if let Some(r) = self.table.get_mut(slot) {
                r.state = state;
            }
        }
        self.counters.proxy.forwarded += 1;
        self.forward_request(req.now, req.ds, msg, req.admitted, to.targets, to.server_id, outbox)
    }

    /// Can the record in `slot` answer this request from the table? Removes records that
    /// turn out to be stale (too old, wrong subnet).
    fn cache_hit<T: AsRef<[u8]>>(
        &mut self,
        now: Timestamp,
        ds: usize,
        slot: Slot,
        kind: ClientKind,
        wanted: Option<Ipv4Addr>,
        msg: &Message<T>,
    ) -> bool {
        let proxy = &self.config.proxy;
        let Some(iface) = self.config.downstream.get(ds) else { return false };
        let Some(r) = self.table.get(slot) else { return false };
        if r.reply.is_none() || r.kind != kind {
            return false;
        }
        // Paper 5.6: "The data is only considered valid for a certain term (default is 9
        // days). After expiration of the data, the client record is deleted."
        if now.since(r.last_update) > proxy.max_age {
            self.proxy_drop_record(slot, Removal::Expired);
            return false;
        }
        if kind == ClientKind::Dhcp && u64::from(r.lease_left_secs(now)) < proxy.min_lease_left.as_secs() {
            return false;
        }
        // Appendix B, "Validity of client data": never offer an address that is not on the
        // subnet of the link the request came in on (the client has moved).
        if !iface.address.contains(r.address) {
            self.proxy_drop_record(slot, Removal::WrongSubnet);
            return false;
        }
        // Appendix B, "What happens if the client request changes?": a request for another
        // address, or for parameters the server was not asked for, goes to the server.
        let changed = wanted.is_some_and(|w| w != r.address)
            || msg.parameter_request_list().is_some_and(|p| !r.param_list.covers(p));
        if changed {
            self.counters.proxy.changed_requests += 1;
            return false;
        }
        true
    }

    /// A BOOTREQUEST from downstream interface `ds` in proxy mode.
    pub(crate) fn proxy_request<T: AsRef<[u8]>>(
        &mut self,
        now: Timestamp,
        ds: usize,
        ingress: &Ingress<'_>,
        msg: &Message<T>,
        outbox: &mut Outbox,
    ) -> Verdict {
        let admitted = match self.admit_request(ds, msg) {
            Ok(a) => a,
            Err(reason) => return self.drop(ds, reason),
        };
        if !admitted.first_hop {
            // Paper 3.5: with another relay in front, the server answers that relay, not
            // us: "This makes it impossible for the CDRA to perform any caching for this
            // type of client." Relay it.
            return self.forward_request(now, ds, msg, admitted, Targets::Chosen, None, outbox);
        }
        let key = ClientKey::of(msg);
        let slot = self.table.find(&key);
        if let Some(r) = slot.and_then(|s| self.table.get_mut(s)) {
            r.last_contact = now;
            r.downstream = ds as u16;
        }
        let req = ClientRequest { now, ds, dst: ingress.dst, msg, admitted, key, slot };
        match msg.message_type() {
            None => self.proxy_bootrequest(req, outbox),
            Some(MessageType::Discover) => self.proxy_discover(req, outbox),
            Some(MessageType::Request) => self.proxy_dhcprequest(req, outbox),
            Some(MessageType::Decline) | Some(MessageType::Release) => self.proxy_release(req, outbox),
            // Table 1: "DHCPINFORM: Forward to Server". Anything else is relayed too.
            Some(_) => self.forward_for(&req, None, None, Upstream::CHOSEN, outbox),
        }
    }

    /// The client's record, created (state INIT) when absent.
    fn record_of<T: AsRef<[u8]>>(&mut self, req: &ClientRequest<'_, T>, kind: ClientKind) -> Slot {
        match req.slot.filter(|s| self.table.get(*s).is_some()) {
            Some(s) => s,
            None => self.proxy_record(req.key.clone(), kind, req.ds, req.now),
        }
    }

    /// Answer an ACK from the table, after a probe of the address unless `safe_network`
    /// (paper 3.2: SELECTING and INIT-REBOOT requests).
    fn ack_after_probe<T: AsRef<[u8]>>(
        &mut self,
        req: &ClientRequest<'_, T>,
        slot: Slot,
        outbox: &mut Outbox,
    ) -> Verdict {
        if self.config.proxy.safe_network {
            self.answer_from_cache(req.now, req.ds, slot, req.msg, Some(MessageType::Ack), false, outbox)
        } else {
            self.start_probe(req, slot, outbox)
        }
    }

    /// Table 1: "BOOTREQUEST: Spoof if able, otherwise forward to server."
    fn proxy_bootrequest<T: AsRef<[u8]>>(&mut self, req: ClientRequest<'_, T>, outbox: &mut Outbox) -> Verdict {
        if let Some(s) = req.slot {
            if self.cache_hit(req.now, req.ds, s, ClientKind::Bootp, None, req.msg) {
                return self.answer_from_cache(req.now, req.ds, s, req.msg, None, false, outbox);
            }
        }
        let slot = self.record_of(&req, ClientKind::Bootp);
        self.forward_for(&req, Some(slot), Some(ClientState::Init), Upstream::CHOSEN, outbox)
    }

    /// Table 1: "DHCPDISCOVER: Proxy if able, otherwise forward to server." A DISCOVER
    /// answered from the table needs no precaution: the REQUEST that follows does.
    fn proxy_discover<T: AsRef<[u8]>>(&mut self, req: ClientRequest<'_, T>, outbox: &mut Outbox) -> Verdict {
        if let Some(s) = req.slot {
            if self.cache_hit(req.now, req.ds, s, ClientKind::Dhcp, req.msg.requested_ip(), req.msg) {
                return self.answer_from_cache(req.now, req.ds, s, req.msg, Some(MessageType::Offer), false, outbox);
            }
        }
        self.proxy.offers.retain(|o| o.key != req.key);
        let slot = self.record_of(&req, ClientKind::Dhcp);
        if let Some(r) = self.table.get_mut(slot) {
            r.offered_by = None;
        }
        self.forward_for(&req, Some(slot), Some(ClientState::Init), Upstream::CHOSEN, outbox)
    }

    /// The server a record's lease is with, as a pool index.
    fn server_of(&self, binding: Option<ServerBinding>) -> Option<(usize, ServerBinding)> {
        let b = binding?;
        Some((self.servers.index_of(b.addr)?, b))
    }

    /// Table 1: "DHCPREQUEST: Proxy if able, otherwise forward to server", with the
    /// client's state told apart as in RFC 2131 4.3.2 and the precautions of paper 3.2.
    fn proxy_dhcprequest<T: AsRef<[u8]>>(&mut self, req: ClientRequest<'_, T>, outbox: &mut Outbox) -> Verdict {
        let (now, ds, msg) = (req.now, req.ds, req.msg);
        let ciaddr = msg.ciaddr();
        let requested = msg.requested_ip();
        // RFC 2131 4.3.2 tells the client states apart: SELECTING names a server and has
        // ciaddr 0 (a non-compliant client that names us while renewing is RENEWING).
        if let Some(sid) = msg.server_identifier().filter(|_| ciaddr.is_unspecified()) {
            // SELECTING: the client answers an OFFER. RFC 2131 4.3.2: "If the DHCPREQUEST
            // message contains a 'server identifier' option, the message is in response to
            // a DHCPOFFER message."
            if !self.is_our_address(sid) {
                // It chose a server that is not us (reachable some other way): relay.
                let slot = self.record_of(&req, ClientKind::Dhcp);
                return self.forward_for(&req, Some(slot), Some(ClientState::Requesting), Upstream::CHOSEN, outbox);
            }
            // Appendix B, "The server-identifier option": when we no longer know which
            // server made the offer, "it sends a NAK to the client, forcing it to restart
            // its initialization and send out a DISCOVER".
            let Some((s, state, offered_by, server)) =
                req.slot.and_then(|s| self.table.get(s).map(|r| (s, r.state, r.offered_by, r.server)))
            else {
                return self.send_nak(ds, msg, outbox);
            };
            if state == ClientState::OfferedLocally && self.cache_hit(now, ds, s, ClientKind::Dhcp, requested, msg) {
                return self.ack_after_probe(&req, s, outbox);
            }
            // The offer came from a server (or ours can no longer be honoured): paper 5.1,
            // put the real server's identifier back before forwarding.
            return match self.server_of(offered_by.or(server)) {
                Some((index, binding)) => {
                    let to = Upstream { targets: Targets::One(index), server_id: Some(binding.id) };
                    self.forward_for(&req, Some(s), Some(ClientState::Requesting), to, outbox)
                }
                None => self.send_nak(ds, msg, outbox),
            };
        }
        if ciaddr.is_unspecified() {
            let Some(wanted) = requested else {
                // Neither SELECTING nor INIT-REBOOT: malformed, but the server may know.
                return self.forward_for(&req, None, None, Upstream::CHOSEN, outbox);
            };
            // INIT-REBOOT: option 50 filled in, ciaddr zero, no server identifier.
            if let Some(s) = req.slot {
                if self.cache_hit(now, ds, s, ClientKind::Dhcp, Some(wanted), msg) {
                    return self.ack_after_probe(&req, s, outbox);
                }
            }
            let slot = self.record_of(&req, ClientKind::Dhcp);
            return self.forward_for(&req, Some(slot), Some(ClientState::Rebooting), Upstream::CHOSEN, outbox);
        }
        // RENEWING (unicast to us) or REBINDING (broadcast): ciaddr filled in.
        let Some(iface) = self.config.downstream.get(ds) else {
            return self.drop(ds, DropReason::UnknownInterface);
        };
        let rebinding = is_broadcast(req.dst, &iface.address);
        let hit = req.slot.is_some_and(|s| self.cache_hit(now, ds, s, ClientKind::Dhcp, Some(ciaddr), msg));
        let slot = self.record_of(&req, ClientKind::Dhcp);
        if rebinding {
            if hit && self.config.proxy.safe_network {
                return self.answer_from_cache(now, ds, slot, msg, Some(MessageType::Ack), false, outbox);
            }
            // Paper 3.2: "before the CDRA ACKs the request, it must first renew the lease
            // with the server" — the client's REBIND goes to the servers and only their
            // answer reaches the client.
            if hit {
                self.counters.proxy.rebinds_forwarded += 1;
            }
            return self.forward_for(&req, Some(slot), Some(ClientState::Rebinding), Upstream::CHOSEN, outbox);
        }
        if hit {
            // Paper 3.2: "DHCPREQUEST used to RENEW a lease (unicast request) ... No
            // precautions are required." Past the server lease's T1 the answer also renews
            // upstream (see `renew_upstream_if_due`).
            self.counters.proxy.local_renewals += 1;
            return self.answer_from_cache(now, ds, slot, msg, Some(MessageType::Ack), true, outbox);
        }
        let to = match self.table.get(slot).and_then(|r| self.server_of(r.server)) {
            Some((i, _)) => Upstream { targets: Targets::One(i), server_id: None },
            None => Upstream::CHOSEN,
        };
        self.forward_for(&req, Some(slot), Some(ClientState::Renewing), to, outbox)
    }

    /// Table 1: "DHCPDECLINE / DHCPRELEASE: Forward to Server, Remove client from DB." The
    /// client names us in option 54; the server gets its own identifier back.
    fn proxy_release<T: AsRef<[u8]>>(&mut self, req: ClientRequest<'_, T>, outbox: &mut Outbox) -> Verdict {
        let binding = req.slot.and_then(|s| self.table.get(s)).and_then(|r| r.server.or(r.offered_by));
        if let Some(s) = req.slot {
            self.proxy_drop_record(s, Removal::ClientGaveUp);
        }
        let names_us = req.msg.server_identifier().is_some_and(|sid| self.is_our_address(sid));
        match self.server_of(binding) {
            Some((i, b)) => {
                let to = Upstream { targets: Targets::One(i), server_id: names_us.then_some(b.id) };
                self.forward_for(&req, None, None, to, outbox)
            }
            None if names_us => {
                // We do not know the server: each one gets a copy naming itself.
                let mut verdict = Verdict::Dropped(DropReason::NoServer);
                for i in 0..self.servers.servers().len() {
                    let id = self.servers.servers().get(i).map(|s| s.addr);
                    verdict = self.forward_for(
                        &req,
                        None,
                        None,
                        Upstream { targets: Targets::One(i), server_id: id },
                        outbox,
                    );
                }
                verdict
            }
            None => self.forward_for(&req, None, None, Upstream::CHOSEN, outbox),
        }
    }

    /// Answer from the cached server reply: copy it and patch what differs (paper 5:
    /// "it makes a copy of the stored message, modifies a few of the fields, and forwards
    /// it to the client"). `reply_type` None is a spoofed BOOTREPLY.
    #[allow(clippy::too_many_arguments)]
    fn answer_from_cache<T: AsRef<[u8]>>(
        &mut self,
        now: Timestamp,
        ds: usize,
        slot: Slot,
        request: &Message<T>,
        reply_type: Option<MessageType>,
        unicast_renewal: bool,
        outbox: &mut Outbox,
    ) -> Verdict {
        let client_lease = self.config.proxy.client_lease;
        let Some(iface) = self.config.downstream.get(ds) else {
            return self.drop(ds, DropReason::UnknownInterface);
        };
        let ours = iface.address.addr;
        let Some(out) = outbox.next_slot() else {
            return self.drop(ds, DropReason::OutboxFull);
        };
        // The cached reply is kept compact (table.rs, CachedReply): expand it into the
        // outbox slot, then patch it there.
        let (address, server, lease, expanded) = match self.table.get(slot) {
            Some(r) => {
                let n = r.reply.as_ref().and_then(|c| c.expand_into(out.buffer_mut()));
                (r.address, r.server, local_lease_secs(r, now, client_lease), n)
            }
            None => (Ipv4Addr::UNSPECIFIED, None, 0, None),
        };
        let Some(len) = expanded else {
            outbox.unwind();
            return self.drop(ds, DropReason::NoServer);
        };
        out.set_len(len);
        // RFC 6842: "If the 'client identifier' option is present in a message received
        // from a client, the server MUST return the 'client identifier' option, unaltered,
        // in its response message" — and must not return one the client did not send.
        let wanted_cid = request.client_identifier();
        let mismatch = match Message::new_checked(out.payload()) {
            Ok(m) => m.client_identifier() != wanted_cid,
            Err(_) => true,
        };
        if mismatch {
            let rewritten = match Message::new_checked(out.payload()) {
                Ok(m) => rewrite(&m, &mut self.scratch, &[OptionCode::CLIENT_ID], |w| match wanted_cid {
                    Some(id) => w.option(OptionCode::CLIENT_ID, id),
                    None => Ok(()),
                }),
                Err(e) => Err(e),
            };
            let copied = match (rewritten.ok(), out.buffer_mut()) {
                (Some(n), dst) => match (dst.get_mut(..n), self.scratch.get(..n)) {
                    (Some(d), Some(src)) => {
                        d.copy_from_slice(src);
                        Some(n)
                    }
                    _ => None,
                },
                (None, _) => None,
            };
            match copied {
                Some(n) => out.set_len(n),
                None => {
                    outbox.unwind();
                    return self.drop(ds, DropReason::ReplyTooLarge);
                }
            }
        }
        let Ok(mut m) = Message::new_checked(out.payload_mut()) else {
            outbox.unwind();
            return self.drop(ds, DropReason::ReplyTooLarge);
        };
        // RFC 2131 table 3: xid and flags from the client's message; ciaddr 0 in an OFFER,
        // the client's ciaddr in an ACK; giaddr as in the request (0: we are on its link).
        m.set_op(Op::BootReply);
        m.set_xid(request.xid());
        m.set_flags(request.flags());
        m.set_secs(0);
        m.set_hops(0);
        m.set_giaddr(Ipv4Addr::UNSPECIFIED);
        m.set_yiaddr(address);
        m.set_ciaddr(if reply_type == Some(MessageType::Ack) { request.ciaddr() } else { Ipv4Addr::UNSPECIFIED });
        if let Some(t) = reply_type {
            // Paper 4.1, 5.1: to the client we are the server; lease time, T1 and T2 reflect
            // what we really give. One walk over the options patches them all.
            let lease_bytes = lease.to_be_bytes();
            let t1 = (lease / 2).to_be_bytes();
            let t2 = ((u64::from(lease) * 7 / 8) as u32).to_be_bytes();
            let ours_bytes = ours.octets();
            let type_byte = [t.to_u8()];
            let patches: [(u8, &[u8]); 5] = [
                (OptionCode::MESSAGE_TYPE, &type_byte),
                (OptionCode::SERVER_ID, &ours_bytes),
                (OptionCode::LEASE_TIME, &lease_bytes),
                (OptionCode::RENEWAL_T1, &t1),
                (OptionCode::REBINDING_T2, &t2),
            ];
            // An infinite lease stays infinite: patch only type and server identifier.
            let n = if lease == u32::MAX { 2 } else { patches.len() };
            m.patch_options(patches.get(..n).unwrap_or(&[]));
            if server.is_some_and(|b| m.siaddr() == b.id || m.siaddr() == b.addr) {
                m.set_siaddr(ours);
            }
        }
        let destination = reply_destination(&m, iface, ours);
        let kind = MessageKind::of(&m);
        out.destination = destination;
        self.counters.sent(ds, kind);
        let c = &mut self.counters.proxy;
        match reply_type {
            Some(MessageType::Offer) => c.local_offers += 1,
            Some(_) => c.local_acks += 1,
            None => c.bootp_spoofed += 1,
        }
        if let Some(r) = self.table.get_mut(slot) {
            // Paper 5.2: "If the relay is able to reply to the client, it will place the
            // client in the BOUND state (the relay assumes the client receives the reply)."
            r.state =
                if reply_type == Some(MessageType::Offer) { ClientState::OfferedLocally } else { ClientState::Bound };
        }
        if unicast_renewal && !self.config.proxy.renew_reply_delay.is_zero() {
            // Some clients (busybox udhcpc) send a RENEW from a short-lived socket bound to
            // their address and connected to the server, and close it right after sending:
            // an answer that arrives within ~0.2 ms lands in that socket and is lost with
            // it, and the client falls back to REBINDING. A server across a network never
            // answers that fast; we do. So the ACK is held back briefly.
            let due = now.saturating_add(self.config.proxy.renew_reply_delay);
            if self.held.hold(due, outbox) {
                self.counters.proxy.renewal_answers_held += 1;
            } else {
                self.counters.proxy.renewal_answers_not_held += 1;
            }
        }
        if reply_type == Some(MessageType::Ack) {
            self.note_client_lease(now, slot, lease);
            self.renew_upstream_if_due(now, ds, slot, request, outbox);
        }
        Verdict::AnsweredLocally
    }

    /// Paper 5.3: "If it's past T1, the relay will still issue a new short term lease to the
    /// client ... and it will also forward the lease request to the client's server or all
    /// known servers depending on whether the lease has passed T2. When the server sends the
    /// ACK back to the relay, the relay updates the lease information in the client DB and
    /// silently discards the packet." Done after every local ACK (RENEW, and also
    /// INIT-REBOOT and SELECTING, so a client that reboots more often than it renews keeps
    /// its server lease fresh); the client's ACK never waits for it. At most one renewal per
    /// client is in flight within `UPSTREAM_RENEWAL_RETRY`.
    fn renew_upstream_if_due<T: AsRef<[u8]>>(
        &mut self,
        now: Timestamp,
        ds: usize,
        slot: Slot,
        request: &Message<T>,
        outbox: &mut Outbox,
    ) {
        let Some(r) = self.table.get(slot) else { return };
        if !r.past_t1(now) || (r.upstream_renewal && now.since(r.pending_since) < UPSTREAM_RENEWAL_RETRY) {
            return;
        }
        let past_t2 = r.past_t2(now);
        let server = self.server_of(r.server);
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
        if !self.table.track_xid(slot, request.xid(), now, params) {
            self.counters.proxy.requests_untracked += 1;
        }
        if let Some(r) = self.table.get_mut(slot) {
            r.upstream_renewal = true;
        }
        self.counters.proxy.upstream_renewals += 1;
        let admitted = Admitted { first_hop: true, has_option82: request.relay_agent_info().is_some() };
        self.forward_request(now, ds, request, admitted, targets, server_id, outbox);
    }

    /// With automated lease renewals, remember when the client's short lease ends so a lapse
    /// is noticed (paper 2.3: "When a short term lease expires, the CDRA sends a RELEASE
    /// message to the server").
    fn note_client_lease(&mut self, now: Timestamp, slot: Slot, lease_secs: u32) {
        if self.config.proxy.client_lease.is_none() || lease_secs == u32::MAX {
            return;
        }
        let end = now.saturating_add(Duration::from_secs(u64::from(lease_secs)));
        let Some(r) = self.table.get_mut(slot) else { return };
        r.client_lease_end = Some(end);
        let key = r.key.clone();
        self.note_change(&key);
        self.proxy.lapses.push(core::cmp::Reverse((end.saturating_add(LAPSE_GRACE), key)));
    }

    /// Give the client the short lease in a server reply we pass on (paper 5.1: "the
    /// configuration information relative to the leases ... must also be modified before
    /// forwarding to the client"). Returns the lease the client got.
    fn shorten_last_reply(&mut self, outbox: &mut Outbox) -> Option<u32> {
        let short = self.config.proxy.client_lease?;
        let short = short.as_secs().min(u64::from(u32::MAX - 1)) as u32;
        let out = outbox.last_mut()?;
        let mut m = Message::new_checked(out.payload_mut()).ok()?;
        let lease = m.lease_time()?.min(short);
        m.patch_option_u32(OptionCode::LEASE_TIME, lease);
        m.patch_option_u32(OptionCode::RENEWAL_T1, lease / 2);
        m.patch_option_u32(OptionCode::REBINDING_T2, (u64::from(lease) * 7 / 8) as u32);
        Some(lease)
    }

    /// A client's short lease came due: probe its address, then release it upstream or not.
    fn lapse(&mut self, now: Timestamp, key: ClientKey, outbox: &mut Outbox) {
        let Some(slot) = self.table.find(&key) else { return };
        let Some(r) = self.table.get(slot) else { return };
        if r.client_lease_end.is_none_or(|e| e.saturating_add(LAPSE_GRACE) > now) || r.reply.is_none() {
            return; // renewed meanwhile, or nothing to release
        }
        if self.proxy.probes.iter().any(|p| p.key == key) {
            return;
        }
        self.counters.proxy.lapsed += 1;
        let ds = usize::from(r.downstream);
        let target = r.address;
        if self.config.proxy.safe_network {
            self.send_release(slot, outbox);
            return;
        }
        let Some(iface) = self.config.downstream.get(ds) else { return };
        let probe =
            ProbeRequest { ifindex: iface.ifindex, sender_mac: iface.mac, sender_ip: iface.address.addr, target };
        if self.proxy.probes.len() >= self.config.proxy.max_pending_probes || !outbox.push_probe(probe) {
            // Try again shortly rather than release unprobed.
            self.proxy.lapses.push(core::cmp::Reverse((now.saturating_add(Duration::from_secs(1)), key)));
            return;
        }
        self.counters.proxy.probes_started += 1;
        self.proxy.probes.push(PendingProbe {
            purpose: ProbePurpose::Lapse,
            ds,
            ifindex: iface.ifindex,
            target,
            key,
            client_mac: None,
            icmp_answered: false,
            client_answered: false,
            deadline: now.saturating_add(self.config.proxy.probe_timeout),
            request: Vec::new(),
        });
    }

    /// Paper 2.3 / 3.3: release a lapsed client's lease at its server, as the client would:
    /// its address in ciaddr, its hardware address, its client identifier, and the server's
    /// identifier (RFC 2131 4.4.6). Then forget the client.
    fn send_release(&mut self, slot: Slot, outbox: &mut Outbox) {
        let xid = self.table.next_random() as u32;
        let Some(r) = self.table.get(slot) else { return };
        let (Some(server), Some(reply)) = (r.server, r.reply.as_ref()) else {
            self.proxy_drop_record(slot, Removal::Expired);
            return;
        };
        let Some(n) = reply.expand_into(&mut self.scratch) else { return };
        let Some(Ok(cached)) = self.scratch.get(..n).map(Message::new_checked) else { return };
        let (htype, chaddr_len) = (cached.htype(), cached.chaddr().len());
        let mut chaddr = [0u8; 16];
        if let (Some(d), Some(src)) = (chaddr.get_mut(..chaddr_len), cached.chaddr().get(..chaddr_len)) {
            d.copy_from_slice(src);
        }
        let Some(iface) = self.config.downstream.get(usize::from(r.downstream)) else { return };
        let giaddr = iface.address.addr;
        let address = r.address;
        let client_id = r.key.client_id_bytes().map(<[u8]>::to_vec);
        let Some(out) = outbox.next_slot() else { return };
        let built = (|| {
            let mut b = MessageBuilder::new(out.buffer_mut(), Op::BootRequest, Some(MessageType::Release))?;
            b.xid(xid).ciaddr(address).giaddr(giaddr).hops(1).chaddr(htype, chaddr.get(..chaddr_len).unwrap_or(&[]));
            b.option(OptionCode::SERVER_ID, &server.id.octets())?;
            if let Some(id) = &client_id {
                b.option(OptionCode::CLIENT_ID, id)?;
            }
            b.finish()
        })();
        match built {
            Ok(len) => {
                out.set_len(len);
                out.destination = Destination::Server { addr: server.addr };
                self.counters.proxy.releases_sent += 1;
                let upstream = self.config.downstream.len();
                self.counters.sent(upstream, MessageKind::Dhcp(MessageType::Release));
            }
            Err(_) => outbox.unwind(),
        }
        self.proxy_drop_record(slot, Removal::ClientGaveUp);
    }

    /// A DHCPNAK from us, broadcast on the client's link (RFC 2131 4.3.2).
    fn send_nak<T: AsRef<[u8]>>(&mut self, ds: usize, request: &Message<T>, outbox: &mut Outbox) -> Verdict {
        let Some(iface) = self.config.downstream.get(ds) else {
            return self.drop(ds, DropReason::UnknownInterface);
        };
        let ours = iface.address.addr;
        let ifindex = iface.ifindex;
        let Some(out) = outbox.next_slot() else {
            return self.drop(ds, DropReason::OutboxFull);
        };
        let built = (|| {
            let mut b = MessageBuilder::new(out.buffer_mut(), Op::BootReply, Some(MessageType::Nak))?;
            b.xid(request.xid())
                .flags(request.flags() | cdra_wire::message::BROADCAST_FLAG)
                .chaddr(request.htype(), request.chaddr());
            b.option(OptionCode::SERVER_ID, &ours.octets())?;
            if let Some(id) = request.client_identifier() {
                b.option(OptionCode::CLIENT_ID, id)?;
            }
            b.option(OptionCode::MESSAGE, b"address not available from the cache")?;
            b.finish()
        })();
        match built {
            Ok(len) => out.set_len(len),
            Err(_) => {
                outbox.unwind();
                return self.drop(ds, DropReason::ReplyTooLarge);
            }
        }
        out.destination = Destination::ClientLink { ifindex, mac: BROADCAST_MAC, src: ours, dst: Ipv4Addr::BROADCAST };
        self.counters.sent(ds, MessageKind::Dhcp(MessageType::Nak));
        self.counters.proxy.local_naks += 1;
        Verdict::AnsweredLocally
    }

    /// Paper 3.2: "If the CDRA's response would be an ACK, the CDRA should first issue an
    /// ICMP echo request ... on the requested IP address. If a host replies, the CDRA should
    /// respond with a NAK and remove the address from its database." We also send an ARP
    /// probe (RFC 5227), more reliable on the client's own link. The ACK waits; others are
    /// served meanwhile.
    fn start_probe<T: AsRef<[u8]>>(&mut self, req: &ClientRequest<'_, T>, slot: Slot, outbox: &mut Outbox) -> Verdict {
        let (now, ds, msg) = (req.now, req.ds, req.msg);
        let Some(r) = self.table.get(slot) else {
            return self.drop(ds, DropReason::NoServer);
        };
        let key = r.key.clone();
        let target = r.address;
        if self.proxy.probes.iter().any(|p| p.key == key) {
            // A retransmission while the probe runs: the answer is on its way.
            return Verdict::Discarded;
        }
        let Some(iface) = self.config.downstream.get(ds) else {
            return self.drop(ds, DropReason::UnknownInterface);
        };
        if self.proxy.probes.len() >= self.config.proxy.max_pending_probes {
            // Bounded: rather than ACK unprobed, let the server answer.
            self.counters.proxy.probes_refused_full += 1;
            let state =
                if msg.server_identifier().is_some() { ClientState::Requesting } else { ClientState::Rebooting };
            let to = match (msg.server_identifier(), self.table.get(slot).and_then(|r| self.server_of(r.server))) {
                // A SELECTING request for our own offer: its server gets its identifier back.
                (Some(_), Some((i, b))) => Upstream { targets: Targets::One(i), server_id: Some(b.id) },
                _ => Upstream::CHOSEN,
            };
            return self.forward_for(req, Some(slot), Some(state), to, outbox);
        }
        let probe =
            ProbeRequest { ifindex: iface.ifindex, sender_mac: iface.mac, sender_ip: iface.address.addr, target };
        if !outbox.push_probe(probe) {
            return self.drop(ds, DropReason::OutboxFull);
        }
        self.counters.proxy.probes_started += 1;
        self.proxy.probes.push(PendingProbe {
            purpose: ProbePurpose::LocalAck,
            ds,
            ifindex: iface.ifindex,
            target,
            key,
            client_mac: msg.ethernet_chaddr(),
            icmp_answered: false,
            client_answered: false,
            deadline: now.saturating_add(self.config.proxy.probe_timeout),
            request: msg.as_bytes().to_vec(),
        });
        Verdict::AwaitingProbe
    }

    /// Some host answered a probe: an ARP reply or request naming `address` as its sender
    /// (`mac` is then its hardware address), or an ICMP echo reply from it (`mac` None).
    ///
    /// For a local ACK, an ARP answer from another MAC is a conflict at once; an answer
    /// from the requesting client's own MAC is the client itself (it kept the address
    /// configured); an ICMP reply is a conflict when the probe ends unless the client's own
    /// MAC answered ARP. For a lapsed lease any answer means the address is in use.
    pub fn handle_probe_answer(
        &mut self,
        now: Timestamp,
        ifindex: u32,
        address: Ipv4Addr,
        mac: Option<[u8; 6]>,
        outbox: &mut Outbox,
    ) {
        let _ = now;
        let mut i = 0;
        while i < self.proxy.probes.len() {
            let Some(p) = self.proxy.probes.get_mut(i) else { break };
            if p.ifindex != ifindex || p.target != address {
                i += 1;
                continue;
            }
            let conflict = match (p.purpose, mac) {
                (ProbePurpose::Lapse, _) => true,
                (ProbePurpose::LocalAck, Some(m)) if Some(m) == p.client_mac => {
                    p.client_answered = true;
                    false
                }
                (ProbePurpose::LocalAck, Some(_)) => true,
                (ProbePurpose::LocalAck, None) => {
                    p.icmp_answered = true;
                    false
                }
            };
            if !conflict {
                i += 1;
                continue;
            }
            let p = self.proxy.probes.swap_remove(i);
            self.probe_found_in_use(p, outbox);
        }
    }

    /// The probed address is in use by someone else.
    fn probe_found_in_use(&mut self, p: PendingProbe, outbox: &mut Outbox) {
        self.counters.proxy.probes_found_in_use += 1;
        if p.purpose == ProbePurpose::Lapse {
            // Appendix A.2: the address is in use; release nothing.
            self.counters.proxy.lapsed_still_in_use += 1;
            if let Some(slot) = self.table.find(&p.key) {
                self.proxy_drop_record(slot, Removal::AddressInUse);
            }
            return;
        }
        // Paper 3.2: "If a host replies, the CDRA should respond with a NAK and remove the
        // address from its database."
        if let Some(slot) = self.table.find(&p.key) {
            self.proxy_drop_record(slot, Removal::AddressInUse);
        }
        if let Ok(request) = Message::new_checked(&p.request[..]) {
            self.send_nak(p.ds, &request, outbox);
        }
    }

    /// A probe timed out: nobody uses the address; ACK if the record still allows it.
    fn finish_probe(&mut self, now: Timestamp, p: PendingProbe, outbox: &mut Outbox) {
        if p.icmp_answered && !p.client_answered {
            return self.probe_found_in_use(p, outbox);
        }
        self.counters.proxy.probes_timed_out += 1;
        if p.purpose == ProbePurpose::Lapse {
            if let Some(slot) = self.table.find(&p.key) {
                self.send_release(slot, outbox);
            }
            return;
        }
        let Ok(request) = Message::new_checked(&p.request[..]) else { return };
        let Some(slot) = self.table.find(&p.key) else { return };
        if self.cache_hit(now, p.ds, slot, ClientKind::Dhcp, request.requested_ip(), &request) {
            self.answer_from_cache(now, p.ds, slot, &request, Some(MessageType::Ack), false, outbox);
        }
    }

    /// Find the record a server reply is for: by the xid of the request we forwarded, else
    /// by option 61 echoed (RFC 6842), else by hardware address.
    fn record_for_reply<T: AsRef<[u8]>>(&self, msg: &Message<T>) -> Option<Slot> {
        self.table
            .find_xid(msg.xid(), msg.htype(), msg.chaddr())
            .or_else(|| self.table.find(&ClientKey::of(msg)))
            .or_else(|| self.table.find(&ClientKey::hardware(msg.htype(), msg.chaddr())))
    }

    /// Store a server's ACK / BOOTREPLY as the record's configuration.
    fn cache_reply<T: AsRef<[u8]>>(
        &mut self,
        now: Timestamp,
        slot: Slot,
        msg: &Message<T>,
        binding: ServerBinding,
        kind: ClientKind,
    ) {
        let lease_secs = match kind {
            ClientKind::Bootp => u32::MAX,
            ClientKind::Dhcp => match msg.lease_time() {
                Some(l) => l,
                None => return, // an ACK without a lease time cannot be answered from
            },
        };
        // Kept without option 82 and without the padding after END.
        let reply = if msg.relay_agent_info().is_some() {
            match rewrite(msg, &mut self.scratch, &[OptionCode::RELAY_AGENT_INFO], |_| Ok(())) {
                Ok(len) => match self.scratch.get(..len).map(Message::new_checked) {
                    Some(Ok(m)) => trimmed(&m).and_then(CachedReply::new),
                    _ => None,
                },
                Err(_) => None,
            }
        } else {
            trimmed(msg).and_then(CachedReply::new)
        };
        let Some(reply) = reply else { return };
        let address = msg.yiaddr();
        // What the client asked for in the request this answers (if it was tracked; else
        // what it asked before).
        let params = self.table.params_for_xid(msg.xid(), slot);
        let Some(r) = self.table.get_mut(slot) else { return };
        // The lease runs from when the request was sent (RFC 2131 4.4.1 has the client
        // count from its request too), so we never believe in more lease than there is.
        let start = if r.pending_xid == msg.xid() { r.pending_since } else { now };
        r.kind = kind;
        r.reply = Some(reply);
        r.lease_secs = lease_secs;
        r.lease_start = start;
        let default_t1 = lease_secs / 2;
        let default_t2 = (u64::from(lease_secs) * 7 / 8) as u32;
        r.t1_secs = msg.renewal_time().unwrap_or(default_t1).min(lease_secs);
        r.t2_secs = msg.rebinding_time().unwrap_or(default_t2).min(lease_secs);
        r.last_update = now;
        r.server = Some(binding);
        r.state = ClientState::Bound;
        r.param_list = params.unwrap_or(r.param_list);
        let key = r.key.clone();
        self.note_change(&key);
        if let Some(other) = self.table.set_address(slot, address) {
            // The server has given this address to this client: any other record holding
            // it is stale.
            self.proxy_drop_record(other, Removal::AddressReassigned);
        }
    }

    /// A BOOTREPLY in proxy mode (Table 1, server-to-client rows).
    pub(crate) fn proxy_reply<T: AsRef<[u8]>>(
        &mut self,
        now: Timestamp,
        slot_for_counters: usize,
        src: Ipv4Addr,
        msg: &Message<T>,
        outbox: &mut Outbox,
    ) -> Verdict {
        let (server_index, ds) = match self.accept_reply(now, src, msg) {
            Ok(x) => x,
            Err(reason) => return self.drop(slot_for_counters, reason),
        };
        let binding = ServerBinding { addr: src, id: msg.server_identifier().unwrap_or(src) };
        let slot = self.record_for_reply(msg);
        let state = slot.and_then(|s| self.table.get(s)).map(|r| r.state);
        // Paper 5.3: "When the server sends the ACK back to the relay, the relay updates the
        // lease information in the client DB and silently discards the packet."
        let upstream_renewal =
            slot.and_then(|s| self.table.get(s)).is_some_and(|r| r.upstream_renewal && r.pending_xid == msg.xid());
        if let (true, Some(s)) = (upstream_renewal, slot) {
            match msg.message_type() {
                Some(MessageType::Ack) if !msg.yiaddr().is_unspecified() => {
                    self.cache_reply(now, s, msg, binding, ClientKind::Dhcp);
                    self.counters.proxy.upstream_renewals_acked += 1;
                }
                Some(MessageType::Nak) => self.proxy_drop_record(s, Removal::ServerNak),
                _ => {}
            }
            if let Some(r) = self.table.get_mut(s) {
                r.upstream_renewal = false;
            }
            return Verdict::Discarded;
        }
        match msg.message_type() {
            None => {
                // "BOOTREPLY: Forward to client", and remember it for spoofing.
                let slot = match slot {
                    Some(s) => s,
                    None => self.proxy_record(ClientKey::of(msg), ClientKind::Bootp, ds, now),
                };
                self.cache_reply(now, slot, msg, binding, ClientKind::Bootp);
                self.deliver_to_client(ds, msg, None, outbox)
            }
            Some(MessageType::Offer) => match (slot, state) {
                (Some(s), Some(ClientState::Init)) => self.choose_offer(now, ds, s, server_index, msg, binding, outbox),
                (Some(_), Some(_)) => {
                    // "DHCPOFFER: Forward to client if client is in INIT state, otherwise
                    // silent discard" (paper 5.2: one OFFER per DISCOVER).
                    self.counters.proxy.offers_discarded += 1;
                    Verdict::Discarded
                }
                _ => {
                    // No record (evicted while the DISCOVER was out): pass it on and
                    // remember who offered, so the REQUEST can be routed.
                    let s = self.proxy_record(ClientKey::of(msg), ClientKind::Dhcp, ds, now);
                    self.pass_offer(s, ds, msg, binding, outbox)
                }
            },
            Some(MessageType::Ack) => {
                if msg.yiaddr().is_unspecified() {
                    // The answer to an INFORM: no lease to remember.
                    return self.deliver_to_client(ds, msg, Some(binding), outbox);
                }
                // RFC 4039 rapid commit: an ACK may answer a DISCOVER directly.
                let rapid = state == Some(ClientState::Init) && msg.option(OptionCode::RAPID_COMMIT).is_some();
                match (slot, state) {
                    (Some(s), Some(st)) if st.awaits_ack() || rapid => {
                        self.cache_reply(now, s, msg, binding, ClientKind::Dhcp);
                        let verdict = self.deliver_to_client(ds, msg, Some(binding), outbox);
                        if let Some(lease) = self.shorten_last_reply(outbox) {
                            self.note_client_lease(now, s, lease);
                        }
                        verdict
                    }
                    (Some(_), Some(_)) => {
                        self.counters.proxy.acks_discarded += 1;
                        Verdict::Discarded
                    }
                    _ => {
                        let s = self.proxy_record(ClientKey::of(msg), ClientKind::Dhcp, ds, now);
                        self.cache_reply(now, s, msg, binding, ClientKind::Dhcp);
                        let verdict = self.deliver_to_client(ds, msg, Some(binding), outbox);
                        if let Some(lease) = self.shorten_last_reply(outbox) {
                            self.note_client_lease(now, s, lease);
                        }
                        verdict
                    }
                }
            }
            Some(MessageType::Nak) => match (slot, state) {
                (Some(s), Some(st)) if st.awaits_ack() => {
                    self.proxy_drop_record(s, Removal::ServerNak);
                    self.deliver_to_client(ds, msg, Some(binding), outbox)
                }
                (Some(_), Some(_)) => {
                    self.counters.proxy.naks_discarded += 1;
                    Verdict::Discarded
                }
                _ => self.deliver_to_client(ds, msg, Some(binding), outbox),
            },
            Some(_) => self.deliver_to_client(ds, msg, Some(binding), outbox),
        }
    }

    /// Pass an OFFER to the client: the client is now REQUESTING (paper 5.2) and its
    /// REQUEST will be routed to the offering server.
    fn pass_offer<T: AsRef<[u8]>>(
        &mut self,
        slot: Slot,
        ds: usize,
        msg: &Message<T>,
        binding: ServerBinding,
        outbox: &mut Outbox,
    ) -> Verdict {
        if let Some(r) = self.table.get_mut(slot) {
            r.state = ClientState::Requesting;
            r.offered_by = Some(binding);
        }
        let verdict = self.deliver_to_client(ds, msg, Some(binding), outbox);
        self.shorten_last_reply(outbox);
        verdict
    }

    /// Appendix B, "Choosing the optimal OFFER".
    #[allow(clippy::too_many_arguments)]
    fn choose_offer<T: AsRef<[u8]>>(
        &mut self,
        now: Timestamp,
        ds: usize,
        slot: Slot,
        server_index: usize,
        msg: &Message<T>,
        binding: ServerBinding,
        outbox: &mut Outbox,
    ) -> Verdict {
        let choice = self.config.proxy.offer_choice;
        if choice == OfferChoice::First || self.servers.servers().len() < 2 {
            return self.pass_offer(slot, ds, msg, binding, outbox);
        }
        let Some(key) = self.table.get(slot).map(|r| r.key.clone()) else {
            return self.pass_offer(slot, ds, msg, binding, outbox);
        };
        let xid = msg.xid();
        let lease = msg.lease_time().unwrap_or(0);
        let n_servers = self.servers.servers().len();
        let position = self.proxy.offers.iter().position(|o| o.key == key && o.xid == xid);
        let index = match position {
            Some(i) => i,
            None => {
                if self.proxy.offers.len() >= self.config.proxy.max_offer_windows {
                    self.counters.proxy.offer_windows_full += 1;
                    return self.pass_offer(slot, ds, msg, binding, outbox);
                }
                let preferred_server = (choice == OfferChoice::Spread).then(|| {
                    use core::hash::{Hash, Hasher};
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    key.hash(&mut h);
                    (h.finish() % n_servers as u64) as usize
                });
                let deadline = now.saturating_add(self.config.proxy.offer_window);
                self.proxy.offers.push(OfferCollection { key, xid, ds, deadline, preferred_server, best: None });
                self.proxy.offers.len() - 1
            }
        };
        let Some(c) = self.proxy.offers.get_mut(index) else {
            return self.pass_offer(slot, ds, msg, binding, outbox);
        };
        if c.preferred_server == Some(server_index) {
            self.proxy.offers.swap_remove(index);
            return self.pass_offer(slot, ds, msg, binding, outbox);
        }
        let better = match (&c.best, choice) {
            (None, _) => true,
            (Some((_, _, best_lease)), OfferChoice::LongestLease) => lease > *best_lease,
            _ => false,
        };
        if better {
            c.best = Some((msg.as_bytes().to_vec(), binding, lease));
        }
        Verdict::Discarded
    }

    /// The engine's next deadline (probe timeouts, offer windows, the table sweep).
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        if self.config.mode != crate::config::Mode::Proxy {
            return None;
        }
        let probes = self.proxy.probes.iter().map(|p| p.deadline);
        let offers = self.proxy.offers.iter().map(|o| o.deadline);
        let lapse = self.proxy.lapses.peek().map(|core::cmp::Reverse((t, _))| *t);
        let held = self.held.next_due();
        probes.chain(offers).chain(lapse).chain(held).chain(core::iter::once(self.proxy.next_sweep)).min()
    }

    /// Do whatever is due at `now`.
    pub fn handle_timeout(&mut self, now: Timestamp, outbox: &mut Outbox) {
        if self.config.mode != crate::config::Mode::Proxy {
            return;
        }
        self.held.release(now, outbox);
        let mut i = 0;
        while i < self.proxy.probes.len() {
            if self.proxy.probes.get(i).is_some_and(|p| p.deadline <= now) {
                let p = self.proxy.probes.swap_remove(i);
                self.finish_probe(now, p, outbox);
            } else {
                i += 1;
            }
        }
        let mut i = 0;
        while i < self.proxy.offers.len() {
            if self.proxy.offers.get(i).is_some_and(|o| o.deadline <= now) {
                let o = self.proxy.offers.swap_remove(i);
                if let (Some((bytes, binding, _)), Some(slot)) = (o.best, self.table.find(&o.key)) {
                    if let Ok(m) = Message::new_checked(&bytes[..]) {
                        self.pass_offer(slot, o.ds, &m, binding, outbox);
                    }
                }
            } else {
                i += 1;
            }
        }
        while self.proxy.lapses.peek().is_some_and(|core::cmp::Reverse((t, _))| *t <= now) {
            if let Some(core::cmp::Reverse((_, key))) = self.proxy.lapses.pop() {
                self.lapse(now, key, outbox);
            }
        }
        if now >= self.proxy.next_sweep {
            self.proxy.next_sweep = now.saturating_add(SWEEP_INTERVAL);
            self.sweep(now);
        }
    }

    /// Remove records past `max_age` (paper 5.6), past their server lease, or never answered,
    /// a slice of the table at a time.
    fn sweep(&mut self, now: Timestamp) {
        let max_age = self.config.proxy.max_age;
        let n = self.table.slot_count();
        if n == 0 {
            return;
        }
        let start = self.proxy.sweep_cursor.min(n);
        let end = (start + SWEEP_SLOTS_PER_TICK).min(n);
        for slot in start..end {
            let Some(r) = self.table.get(slot as Slot) else { continue };
            let expired = match &r.reply {
                Some(_) => now.since(r.last_update) > max_age || r.lease_end().is_some_and(|e| e <= now),
                None => now.since(r.last_contact) > UNANSWERED_RECORD_TTL,
            };
            if expired {
                self.proxy_drop_record(slot as Slot, Removal::Expired);
            }
        }
        self.proxy.sweep_cursor = if end >= n { 0 } else { end };
        if let Some(older) = now.as_millis().checked_sub(XID_TTL.as_millis() as u64) {
            self.table.expire_xids(Timestamp::from_millis(older));
        }
    }

    /// Remove the record of `key` (operator flush). True if there was one.
    pub fn flush_client(&mut self, key: &ClientKey) -> bool {
        match self.table.find(key) {
            Some(slot) => {
                self.proxy_drop_record(slot, Removal::Flushed);
                true
            }
            None => false,
        }
    }

    /// Remove the record holding `address`. True if there was one.
    pub fn flush_address(&mut self, address: Ipv4Addr) -> bool {
        match self.table.find_address(address) {
            Some(slot) => {
                self.proxy_drop_record(slot, Removal::Flushed);
                true
            }
            None => false,
        }
    }

    /// Remove every record; returns how many there were.
    pub fn flush_all(&mut self) -> usize {
        let slots: Vec<Slot> = self.table.iter().map(|(s, _)| s).collect();
        let n = slots.len();
        for s in slots {
            self.proxy_drop_record(s, Removal::Flushed);
        }
        n
    }
}
