//! What the engine did with a datagram, and every reason it can drop one.

use cdra_wire::WireError;

/// Why a datagram was dropped. Each reason is also a metric label ([`DropReason::label`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not a DHCP/BOOTP message we can read (see the wire error).
    Malformed(WireError),
    /// Arrived on an interface that is neither downstream nor upstream.
    UnknownInterface,
    /// A BOOTREQUEST arrived on an upstream-only interface.
    RequestOnUpstream,
    /// RFC 1542 4.1.1: hops would exceed the configured maximum.
    HopLimit,
    /// giaddr is one of our own addresses: the request has looped back to us.
    GiaddrIsOurs,
    /// RFC 3046 2.1: giaddr 0 with option 82 already present, from an untrusted circuit.
    UntrustedOption82,
    /// The request already carried option 82 and the policy is `drop`.
    Option82Policy,
    /// A BOOTREPLY from an address that is not a configured server.
    ReplyFromUnknownServer,
    /// A BOOTREPLY whose giaddr is not one of our downstream addresses.
    ReplyNotForUs,
    /// The reply could not be rewritten into the output buffer.
    ReplyTooLarge,
    /// No server could be chosen (none configured).
    NoServer,
    /// The outbox is full (bounded): more actions in one batch than it holds.
    OutboxFull,
}

impl DropReason {
    /// Every reason except the per-wire-error detail, for counter tables.
    pub const ALL: [DropReason; 12] = [
        DropReason::Malformed(WireError::Truncated),
        DropReason::UnknownInterface,
        DropReason::RequestOnUpstream,
        DropReason::HopLimit,
        DropReason::GiaddrIsOurs,
        DropReason::UntrustedOption82,
        DropReason::Option82Policy,
        DropReason::ReplyFromUnknownServer,
        DropReason::ReplyNotForUs,
        DropReason::ReplyTooLarge,
        DropReason::NoServer,
        DropReason::OutboxFull,
    ];
    /// Number of counter slots ([`DropReason::index`]).
    pub const COUNT: usize = Self::ALL.len();

    /// Dense index for counter arrays (all malformed messages share one slot).
    pub const fn index(self) -> usize {
        match self {
            DropReason::Malformed(_) => 0,
            DropReason::UnknownInterface => 1,
            DropReason::RequestOnUpstream => 2,
            DropReason::HopLimit => 3,
            DropReason::GiaddrIsOurs => 4,
            DropReason::UntrustedOption82 => 5,
            DropReason::Option82Policy => 6,
            DropReason::ReplyFromUnknownServer => 7,
            DropReason::ReplyNotForUs => 8,
            DropReason::ReplyTooLarge => 9,
            DropReason::NoServer => 10,
            DropReason::OutboxFull => 11,
        }
    }

    /// Stable label.
    pub const fn label(self) -> &'static str {
        match self {
            DropReason::Malformed(_) => "malformed",
            DropReason::UnknownInterface => "unknown_interface",
            DropReason::RequestOnUpstream => "request_on_upstream",
            DropReason::HopLimit => "hop_limit",
            DropReason::GiaddrIsOurs => "giaddr_is_ours",
            DropReason::UntrustedOption82 => "untrusted_option82",
            DropReason::Option82Policy => "option82_policy",
            DropReason::ReplyFromUnknownServer => "reply_from_unknown_server",
            DropReason::ReplyNotForUs => "reply_not_for_us",
            DropReason::ReplyTooLarge => "reply_too_large",
            DropReason::NoServer => "no_server",
            DropReason::OutboxFull => "outbox_full",
        }
    }
}

/// The outcome of one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A client request was relayed to `copies` servers.
    RelayedToServers { copies: u8 },
    /// A server reply was delivered to a client.
    DeliveredToClient,
    /// Proxy mode: answered from the client table (OFFER, ACK, NAK or spoofed BOOTREPLY).
    AnsweredLocally,
    /// Proxy mode: a probe of the address is in flight; the answer follows it.
    AwaitingProbe,
    /// Caching modes: silently discarded, for this reason (Table 1's "silent discard" rows and
    /// the other messages that need no action). Counted per reason.
    Discarded(DiscardReason),
    /// Dropped, for this reason.
    Dropped(DropReason),
}

crate::counters::labelled_enum! {
    /// Why a message was silently discarded in a caching mode (not an error: Table 1 says so,
    /// or the message needs nothing more).
    pub enum DiscardReason {
        /// Table 1: "DHCPOFFER: Forward to client if client is in INIT state, otherwise
        /// silent discard" (paper 5.2: one OFFER per DISCOVER).
        OfferNotInInit => "offer_not_in_init", "OFFERs for a client not in INIT (one OFFER per DISCOVER, paper 5.2).";
        /// An OFFER kept while the offer window is open (offer choice other than `first`).
        OfferHeldForChoice => "offer_held_for_choice", "OFFERs kept while the offer window is open (offer_choice).";
        /// Table 1: an ACK the client is not waiting for.
        AckNotAwaited => "ack_not_awaited", "ACKs for a client not in REQUESTING, REBOOTING, RENEWING or REBINDING (Table 1).";
        /// Table 1: a NAK the client is not waiting for.
        NakNotAwaited => "nak_not_awaited", "NAKs for a client not in REQUESTING, REBOOTING, RENEWING or REBINDING (Table 1).";
        /// Paper 5.3: the server's answer to a renewal we sent for the client, absorbed.
        UpstreamRenewalAnswer => "upstream_renewal_answer", "Server answers to renewals cdra sent on a client's behalf, absorbed (paper 5.3).";
        /// A retransmitted request while the probe for its answer is in flight.
        RetransmissionDuringProbe => "retransmission_during_probe", "Retransmitted requests while the probe for their answer runs.";
    }
}
