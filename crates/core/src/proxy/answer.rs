//! Local answers: the client's cached server reply, copied and patched (paper 5: "it
//! makes a copy of the stored message, modifies a few of the fields, and forwards it to the
//! client"), and the NAKs we send ourselves.
//!
//! What is patched, and from where:
//!
//! | field | from | rule |
//! |---|---|---|
//! | op, xid, flags, secs, hops, giaddr | the request | RFC 2131 table 3 (giaddr 0: we are on the client's link) |
//! | htype, hlen, chaddr | the request | the client may have a new MAC under the same option 61 |
//! | ciaddr | the request (ACK), 0 (OFFER) | RFC 2131 table 3 |
//! | option 61 | the request | RFC 6842: returned unaltered, never added |
//! | option 54, siaddr, IPv4 source | our downstream address (proxy), the server's identifier (spoof) | paper 4.1, 5.1; 4.2 (`shown_identity`, below) |
//! | options 51, 58, 59 | [`crate::lease`] | paper 5.1, 5.3: what we really give |

use core::net::Ipv4Addr;

use cdra_wire::options::OptionCode;
use cdra_wire::rewrite::rewrite;
use cdra_wire::{Message, MessageBuilder, MessageType, Op};

use super::{ClientRequest, LocalAnswer};
use crate::counters::{MessageKind, ProxyEvent};
use crate::engine::Engine;
use crate::lease::{default_t1, default_t2, finite_secs, local_lease_secs, INFINITE};
use crate::mode::ServerIdentity;
use crate::outbox::{Destination, Outbox, BROADCAST_MAC};
use crate::relay::reply_destination;
use crate::table::{ClientKey, ClientState, Origin, ServerBinding, Slot};
use crate::timers::Timer;
use crate::verdict::{DropReason, Verdict};

/// RFC 6842: "If the 'client identifier' option is present in a message received from a
/// client, the server MUST return the 'client identifier' option, unaltered, in its
/// response message" — and must not return one the client did not send. Rewrites the
/// answer in `out` (through `scratch`) when the cached one differs; false if it no longer
/// fits.
pub(super) fn echo_client_identifier<T: AsRef<[u8]>>(
    out: &mut crate::outbox::Outgoing,
    request: &Message<T>,
    scratch: &mut [u8],
) -> bool {
    let wanted = request.client_identifier();
    let cached = Message::new_unchecked(out.payload());
    if cached.client_identifier() == wanted {
        return true;
    }
    let rewritten = rewrite(&cached, scratch, &[OptionCode::CLIENT_ID], |w| match wanted {
        Some(id) => w.option(OptionCode::CLIENT_ID, id),
        None => Ok(()),
    });
    let copied = rewritten.ok().and_then(|n| {
        let (dst, src) = (out.buffer_mut().get_mut(..n)?, scratch.get(..n)?);
        dst.copy_from_slice(src);
        Some(n)
    });
    match copied {
        Some(n) => {
            out.set_len(n);
            true
        }
        None => false,
    }
}

impl Engine {
    /// Answer `req` from the record in `slot`.
    pub(crate) fn answer_from_cache<T: AsRef<[u8]>>(
        &mut self,
        req: &ClientRequest<'_, T>,
        slot: Slot,
        answer: LocalAnswer,
        outbox: &mut Outbox,
    ) -> Verdict {
        let (now, ds, request) = (req.now, req.ds, req.msg);
        let Some(iface) = self.config.downstream.get(ds) else {
            return self.drop(ds, DropReason::UnknownInterface);
        };
        let Some(r) = self.table.get(slot) else {
            return self.drop(ds, DropReason::NoServer);
        };
        let lease = self.local_answer_lease(r, now, answer);
        let (address, server) = (r.address, r.server());
        let identity = self.shown_identity(ds, server, request);
        let Some((emitted, out)) = outbox.emit() else {
            return self.drop(ds, DropReason::OutboxFull);
        };
        // The cached reply is kept compact (table.rs, CachedReply): expand it into the
        // outbox slot, then patch it there.
        let Some(len) = r.expand_reply(out.buffer_mut()) else {
            outbox.unwind();
            return self.drop(ds, DropReason::NoServer);
        };
        out.set_len(len);
        if !echo_client_identifier(out, request, &mut self.scratch) {
            outbox.unwind();
            return self.drop(ds, DropReason::ReplyTooLarge);
        }
        let mut m = Message::new_unchecked(out.payload_mut());
        let rewrite_siaddr = self.config.mode.server_identity() == ServerIdentity::Ours;
        patch_answer(&mut m, request, answer, Patch { address, lease, identity, rewrite_siaddr, server });
        let (destination, kind) = (reply_destination(&m, iface, identity), MessageKind::of(&m));
        out.destination = destination;
        self.counters.sent(ds, kind);
        let event = match answer {
            LocalAnswer::Offer | LocalAnswer::OfferOfExpired => ProxyEvent::LocalOffer,
            LocalAnswer::Ack { .. } => ProxyEvent::LocalAck,
            LocalAnswer::BootReply => ProxyEvent::BootpSpoofed,
        };
        self.counters.proxy.add(event);
        self.record_event(crate::events::EventKind::Proxy(event), slot, Some(kind));
        self.after_local_answer(req, slot, answer, lease, emitted, outbox);
        Verdict::AnsweredLocally
    }

    /// The lease a local answer from record `r` gives.
    fn local_answer_lease(
        &self,
        r: &crate::table::ClientRecord,
        now: crate::time::Timestamp,
        answer: LocalAnswer,
    ) -> u32 {
        // Pool clients get `[pool] client_lease` (never more than is left of the pool lease).
        let client_lease = match r.origin() {
            Origin::Pool { .. } => Some(self.config.pool.client_lease),
            Origin::Server | Origin::PoolLease { .. } => self.config.proxy.client_lease,
        };
        match answer {
            // Paper 5.7: an offer, not a grant (the server decides at the REQUEST): the lease
            // the server last gave, no more than a client gets from us.
            LocalAnswer::OfferOfExpired => client_lease.map_or(r.lease_secs, |c| r.lease_secs.min(finite_secs(c))),
            _ => local_lease_secs(r, now, client_lease),
        }
    }

    /// What follows a local answer (emitted as outbox slot `emitted`): the record's state,
    /// a RENEW's ACK held back, the client's short lease noted, and the upstream renewal
    /// (or, for a pool client, the move to the server) when due.
    fn after_local_answer<T: AsRef<[u8]>>(
        &mut self,
        req: &ClientRequest<'_, T>,
        slot: Slot,
        answer: LocalAnswer,
        lease: u32,
        emitted: crate::outbox::Emitted,
        outbox: &mut Outbox,
    ) {
        let now = req.now;
        let pool_client = self.table.get(slot).is_some_and(|r| matches!(r.origin(), Origin::Pool { .. }));
        if let Some(r) = self.table.get_mut(slot) {
            // An OFFER made after a pool probe marks itself (proxy/probes.rs); any answer
            // ends what that probe vouched for.
            r.set_offer_probed(false);
            // Paper 5.2: "If the relay is able to reply to the client, it will place the
            // client in the BOUND state (the relay assumes the client receives the reply)."
            r.state = match answer {
                LocalAnswer::Offer => ClientState::OfferedLocally,
                LocalAnswer::OfferOfExpired => ClientState::OfferedExpired,
                LocalAnswer::Ack { .. } | LocalAnswer::BootReply => ClientState::Bound,
            };
        }
        if answer == (LocalAnswer::Ack { hold: true }) && !self.config.proxy.renew_reply_delay.is_zero() {
            // Some clients (busybox udhcpc) send a RENEW from a short-lived socket bound to
            // their address and connected to the server, and close it right after sending:
            // an answer that arrives within ~0.2 ms lands in that socket and is lost with
            // it, and the client falls back to REBINDING. A server across a network never
            // answers that fast; we do. So the ACK is held back briefly.
            let due = now.saturating_add(self.config.proxy.renew_reply_delay);
            if self.held.hold(due, outbox, emitted) {
                if let Some(at) = self.held.timer_to_file() {
                    self.timers.arm(at, Timer::HeldReply);
                }
                self.counters.proxy.add(ProxyEvent::RenewalAnswerHeld);
            } else {
                self.counters.proxy.add(ProxyEvent::RenewalAnswerNotHeld);
            }
        }
        if matches!(answer, LocalAnswer::Ack { .. }) {
            self.note_client_lease(now, slot, lease);
            if pool_client {
                // Its lease at the server is the pool's (kept renewed by the pool); once the
                // servers answer, the client moves onto one of its own.
                self.pool_migrate_if_due(now, slot, outbox);
            } else {
                self.renew_upstream_if_due(req, slot, outbox);
            }
        }
    }

    /// The server identity a client sees in our answer on link `ds` for a record bound to
    /// `server` ([`crate::mode::ServerIdentity`]): our address on the link (proxy), or the
    /// server's identifier (spoof: the record's server, else the one the request names,
    /// else the first configured server).
    pub(crate) fn shown_identity<T: AsRef<[u8]>>(
        &self,
        ds: usize,
        server: Option<ServerBinding>,
        request: &Message<T>,
    ) -> Ipv4Addr {
        let ours = self.config.downstream.get(ds).map(|d| d.address.addr).unwrap_or(Ipv4Addr::UNSPECIFIED);
        match self.config.mode.server_identity() {
            ServerIdentity::Server => server
                .map(|b| b.id)
                .or_else(|| request.server_identifier())
                .or_else(|| self.config.servers.first().copied())
                .unwrap_or(ours),
            ServerIdentity::Ours | ServerIdentity::AsSent => ours,
        }
    }

    /// A DHCPNAK from us, broadcast on the client's link (RFC 2131 4.3.2), from the identity
    /// the client knows as its server.
    pub(crate) fn send_nak<T: AsRef<[u8]>>(&mut self, ds: usize, request: &Message<T>, outbox: &mut Outbox) -> Verdict {
        let server = self.table.find(&ClientKey::of(request)).and_then(|s| self.table.get(s)).and_then(|r| r.server());
        let identity = self.shown_identity(ds, server, request);
        let Some(iface) = self.config.downstream.get(ds) else {
            return self.drop(ds, DropReason::UnknownInterface);
        };
        let ifindex = iface.ifindex;
        let Some((_, out)) = outbox.emit() else {
            return self.drop(ds, DropReason::OutboxFull);
        };
        let built = (|| {
            let mut b = MessageBuilder::new(out.buffer_mut(), Op::BootReply, Some(MessageType::Nak))?;
            b.xid(request.xid())
                .flags(request.flags() | cdra_wire::message::BROADCAST_FLAG)
                .chaddr(request.htype(), request.chaddr());
            b.option(OptionCode::SERVER_ID, &identity.octets())?;
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
        out.destination =
            Destination::ClientLink { ifindex, mac: BROADCAST_MAC, src: identity, dst: Ipv4Addr::BROADCAST };
        self.counters.sent(ds, MessageKind::Dhcp(MessageType::Nak));
        self.counters.proxy.add(ProxyEvent::LocalNak);
        self.message_event(crate::events::EventKind::Proxy(ProxyEvent::LocalNak), ds, request, Some(identity));
        Verdict::AnsweredLocally
    }
}

/// What a local answer carries besides the cached reply.
pub(super) struct Patch {
    pub(super) address: Ipv4Addr,
    pub(super) lease: u32,
    /// The server identity the client sees (option 54).
    pub(super) identity: Ipv4Addr,
    /// Put it in siaddr too where the server had put itself (proxy mode).
    pub(super) rewrite_siaddr: bool,
    pub(super) server: Option<ServerBinding>,
}

/// Patch the cached reply `m` into the answer to `request` (the table in the module docs).
pub(super) fn patch_answer<T: AsRef<[u8]> + AsMut<[u8]>, R: AsRef<[u8]>>(
    m: &mut Message<T>,
    request: &Message<R>,
    answer: LocalAnswer,
    Patch { address, lease, identity, rewrite_siaddr, server }: Patch,
) {
    // RFC 2131 table 3: xid and flags from the client's message; ciaddr 0 in an OFFER,
    // the client's ciaddr in an ACK; giaddr as in the request (0: we are on its link).
    // The hardware address is the request's: a client keyed by option 61 may come back
    // with another MAC, and the answer goes to the MAC that asked.
    m.set_op(Op::BootReply);
    m.set_xid(request.xid());
    m.set_flags(request.flags());
    m.set_secs(0);
    m.set_hops(0);
    m.set_giaddr(Ipv4Addr::UNSPECIFIED);
    m.set_hardware(request.htype(), request.chaddr());
    m.set_yiaddr(address);
    m.set_ciaddr(if matches!(answer, LocalAnswer::Ack { .. }) { request.ciaddr() } else { Ipv4Addr::UNSPECIFIED });
    if let Some(t) = answer.message_type() {
        // Paper 4.1, 5.1: to the client we are the server (4.2: the spoofing relay speaks as
        // the server); lease time, T1 and T2 reflect what we really give. One walk over the
        // options patches them all.
        let lease_bytes = lease.to_be_bytes();
        let t1 = default_t1(lease).to_be_bytes();
        let t2 = default_t2(lease).to_be_bytes();
        let identity_bytes = identity.octets();
        let type_byte = [t.to_u8()];
        let patches: [(u8, &[u8]); 5] = [
            (OptionCode::MESSAGE_TYPE, &type_byte),
            (OptionCode::SERVER_ID, &identity_bytes),
            (OptionCode::LEASE_TIME, &lease_bytes),
            (OptionCode::RENEWAL_T1, &t1),
            (OptionCode::REBINDING_T2, &t2),
        ];
        // An infinite lease stays infinite: patch only type and server identifier.
        let n = if lease == INFINITE { 2 } else { patches.len() };
        m.patch_options(patches.get(..n).unwrap_or(&[]));
        if rewrite_siaddr && server.is_some_and(|b| m.siaddr() == b.id || m.siaddr() == b.addr) {
            m.set_siaddr(identity);
        }
    }
}
