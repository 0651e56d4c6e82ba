//! The caching relay: the paper's proxying CDRA (sections 2, 3, 4.1 and 5), written so the
//! spoofing (4.2) and address-pooling (4.3) relays reuse it through [`crate::mode`].
//!
//! cdra relays like a relay agent, remembers each client's last DHCPACK and then answers
//! that client itself. What it does with each message is paper Table 1; each row lives
//! in one function:
//!
//! | message      | Table 1 action | where |
//! |--------------|----------------|-------|
//! | DHCPDISCOVER | proxy if able, otherwise forward to server | [`requests`] `discover` |
//! | DHCPREQUEST  | proxy if able, otherwise forward to server | [`requests`] `dhcp_request` |
//! | DHCPINFORM   | forward to server | [`requests`] `client_request` |
//! | DHCPDECLINE  | forward to server, remove client from DB | [`requests`] `gave_up` |
//! | DHCPRELEASE  | forward to server, remove client from DB | [`requests`] `gave_up` |
//! | DHCPOFFER    | forward to client if client is in INIT state, otherwise silent discard | [`replies`] `offer`, [`offers`] |
//! | DHCPACK      | forward to client if client is in REQUESTING, REBOOTING, RENEWING or REBINDING state, otherwise silent discard | [`replies`] `ack` |
//! | DHCPNAK      | (same as DHCPACK) | [`replies`] `nak` |
//! | BOOTREQUEST  | spoof if able, otherwise forward to server | [`requests`] `bootrequest` |
//! | BOOTREPLY    | forward to client | [`replies`] `bootreply` |
//!
//! "Able" ([`requests`] `cache_hit`) means the record holds a server reply that is still
//! good: younger than `max_age` (paper 5.6), with enough of the server's lease left, for an
//! address on the subnet of the link the request came in on, and asking for nothing the
//! cached reply does not answer (Appendix B). The rest, by what it does:
//!
//! - [`answer`]: making a local OFFER / ACK / BOOTREPLY from the cached reply, and our NAKs.
//! - [`probes`]: the precautions of paper 3.2 and 3.3 (probe before a local ACK to a
//!   SELECTING or INIT-REBOOT request, and before releasing a lapsed lease).
//! - [`renewals`]: automated short leases (paper 2.3, 5.3): lapses, RELEASEs, renewing
//!   upstream past T1. The arithmetic itself is [`crate::lease`].
//! - [`records`]: the life of a record: creating, removing (every cause counted), the
//!   sweep (paper 5.6), operator flushes, restoring from the store.
//!
//! Where the paper's modes differ (the identity a client sees, how many OFFERs it gets)
//! the code asks [`crate::mode`]; everything here is shared.

use core::net::Ipv4Addr;

use cdra_wire::options::OptionCode;
use cdra_wire::rewrite::rewrite;
use cdra_wire::{Message, MessageType};

use crate::counters::ProxyEvent;
use crate::engine::{Engine, Ingress};
use crate::outbox::Outbox;
use crate::relay::{Admitted, Track, Upstream};
use crate::table::{CachedReply, ClientKey, Pool, Slot};
use crate::time::Timestamp;
use crate::verdict::{DropReason, Verdict};

pub mod answer;
pub mod leasequery;
pub mod offers;
pub mod probes;
pub mod records;
pub mod renewals;
pub mod replies;
pub mod requests;
#[cfg(test)]
mod shared_reply_differential;

/// The caching relay's own state (the client table itself is [`crate::table`]); each part
/// is owned by its module and changed only through its methods.
#[derive(Debug, Default)]
pub(crate) struct ProxyState {
    /// Probes in flight ([`probes`]).
    pub(crate) probes: probes::Probes,
    /// OFFERs being collected ([`offers`]).
    pub(crate) offers: offers::OfferWindows,
    /// Where the next sweep slice starts ([`records`]).
    pub(crate) sweep_cursor: usize,
}

/// A client request as the caching relay found it: the context every Table 1 handler needs,
/// passed whole.
pub(crate) struct ClientRequest<'a, T: AsRef<[u8]>> {
    pub(crate) now: Timestamp,
    /// Downstream interface it arrived on.
    pub(crate) ds: usize,
    /// Destination address of its IP header (a REBINDING client broadcasts).
    pub(crate) dst: Ipv4Addr,
    pub(crate) msg: &'a Message<T>,
    pub(crate) admitted: Admitted,
    /// Its identity and, if the table knows it, its record.
    pub(crate) key: ClientKey,
    pub(crate) slot: Option<Slot>,
}

/// What a local answer is (paper 5: "it makes a copy of the stored message, modifies a
/// few of the fields, and forwards it to the client").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LocalAnswer {
    /// A DHCPOFFER to a DISCOVER.
    Offer,
    /// A DHCPOFFER of the address of an expired record (paper 5.7): the REQUEST that
    /// follows is forwarded as an INIT-REBOOT.
    OfferOfExpired,
    /// A DHCPACK to a REQUEST; `hold` for a unicast RENEW (sent after `renew_reply_delay`).
    Ack { hold: bool },
    /// A BOOTREPLY to a BOOTREQUEST (Table 1: "spoof").
    BootReply,
}

impl LocalAnswer {
    /// The DHCP message type it carries (`None`: plain BOOTP).
    pub(crate) fn message_type(self) -> Option<MessageType> {
        match self {
            LocalAnswer::Offer | LocalAnswer::OfferOfExpired => Some(MessageType::Offer),
            LocalAnswer::Ack { .. } => Some(MessageType::Ack),
            LocalAnswer::BootReply => None,
        }
    }
}

/// The message up to and including END (the padding after it is not worth keeping).
pub(crate) fn trimmed<T: AsRef<[u8]>>(m: &Message<T>) -> Option<&[u8]> {
    let end = m.options_end().map(|e| e + 1).unwrap_or(m.as_bytes().len());
    m.as_bytes().get(..end)
}

/// A server's reply `msg` as a record (or pool entry) of context `ctx` keeps it, the answer
/// to a request with option 55 `params`: option 82 removed (rewritten through `scratch`),
/// nothing after END.
pub(crate) fn kept_reply<T: AsRef<[u8]>>(
    msg: &Message<T>,
    scratch: &mut [u8],
    ctx: &crate::templates::ReplyContext<'_>,
    params: &crate::table::ParamList,
) -> Option<CachedReply> {
    let keep = |b: &[u8]| CachedReply::new(b, ctx, params);
    if msg.relay_agent_info().is_none() {
        return trimmed(msg).and_then(keep);
    }
    let len = rewrite(msg, scratch, &[OptionCode::RELAY_AGENT_INFO], |_| Ok(())).ok()?;
    scratch.get(..len).and_then(|b| trimmed(&Message::new_unchecked(b)).and_then(keep))
}

impl Engine {
    /// A BOOTREQUEST from downstream interface `ds` in a caching mode: Table 1's
    /// client-to-server rows.
    pub(crate) fn cache_request<T: AsRef<[u8]>>(
        &mut self,
        now: Timestamp,
        ds: usize,
        ingress: &Ingress<'_>,
        msg: &Message<T>,
        outbox: &mut Outbox,
    ) -> Verdict {
        let admitted = match self.admit_request(ds, ingress.dst, msg) {
            Ok(a) => a,
            Err(reason) => return self.drop(ds, reason),
        };
        if !admitted.first_hop {
            // Paper 3.5: with another relay in front, the server answers that relay, not
            // us: "This makes it impossible for the CDRA to perform any caching for this
            // type of client." Relay it.
            if !self.spend_interface_budget(now, ds) {
                return self.drop(ds, DropReason::InterfaceRateLimited);
            }
            return self.forward_request(now, ds, msg, admitted, Upstream::CHOSEN, Track::Nothing, outbox);
        }
        let key = ClientKey::of(msg);
        let slot = self.table.find(&key);
        if let Err(reason) = self.spend_budget(now, ds, msg, slot) {
            return self.drop(ds, reason);
        }
        if let (Some(source), Some(chaddr)) = (ingress.link_source, msg.ethernet_chaddr()) {
            if source != chaddr {
                // Not verifiably the client it names (RFC 2131 2: chaddr is the client's
                // hardware address, the one it sends from on its own link). Such a request
                // must not act for that client: it is relayed as a plain relay would, the
                // table neither consulted nor changed, and a RELEASE or DECLINE for a cached
                // client is dropped ([`requests`] `gave_up`).
                self.counters.proxy.add(ProxyEvent::UnverifiedSource);
                let ends_lease = matches!(msg.message_type(), Some(MessageType::Release | MessageType::Decline));
                if slot.is_some() && ends_lease {
                    return self.drop(ds, DropReason::ReleaseMismatch);
                }
                let track = Track::relayed(msg, admitted);
                return self.forward_request(now, ds, msg, admitted, Upstream::CHOSEN, track, outbox);
            }
        }
        if let Some(r) = slot.and_then(|s| self.table.get_mut(s)) {
            r.set_last_contact(now);
        }
        let req = ClientRequest { now, ds, dst: ingress.dst, msg, admitted, key, slot };
        self.client_request(&req, outbox)
    }

    /// Spend the budget a request from downstream link `ds` is charged to ([`crate::limits`]):
    /// the client's own when it is the record's client (a bound record, heard on its link,
    /// from the hardware address its server answered); the interface's for everything else
    /// (a new client, one still waiting for a server, or someone else using the client's
    /// identifier), so a stranger's messages never spend the client's budget. A record
    /// still waiting spends both.
    fn spend_budget<T: AsRef<[u8]>>(
        &mut self,
        now: Timestamp,
        ds: usize,
        msg: &Message<T>,
        slot: Option<Slot>,
    ) -> Result<(), DropReason> {
        let rate = self.config.limits.client_rate;
        let own = slot.filter(|s| {
            self.table.get(*s).is_some_and(|r| {
                usize::from(r.downstream) == ds && (r.reply.is_none() || r.reply_chaddr() == msg.chaddr())
            })
        });
        let (client_ok, pool) = match own {
            Some(s) => (self.table.take_budget(s, now, rate), self.table.get(s).map(|r| r.pool())),
            None => (true, None),
        };
        if !client_ok {
            return Err(DropReason::ClientRateLimited);
        }
        if pool != Some(Pool::Bound) && !self.spend_interface_budget(now, ds) {
            return Err(DropReason::InterfaceRateLimited);
        }
        Ok(())
    }
}
