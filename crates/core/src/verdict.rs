//! What the engine did with a datagram, and every reason it can drop one.

crate::counters::labelled_enum! {
    /// Why a datagram was dropped: each reason with its metric label and help, one counter
    /// each (per interface). A malformed datagram's wire error is counted apart
    /// ([`crate::Counters::malformed`]).
    pub enum DropReason {
        /// Not a DHCP/BOOTP message we can read (see the wire error).
        Malformed => "malformed", "Not a DHCP/BOOTP message that can be read (counted by wire error in cdra_malformed_total).";
        /// Arrived on an interface that is neither downstream nor upstream.
        UnknownInterface => "unknown_interface", "Arrived on an interface that is neither downstream nor upstream.";
        /// A client request to another host, routed past us (seen on the link, not ours).
        NotAddressedToUs => "not_addressed_to_us", "A client request to another host's address (a unicast renewal to its server) seen on the link: routed on by the kernel, not handled.";
        /// A BOOTREQUEST arrived on an upstream-only interface.
        RequestOnUpstream => "request_on_upstream", "A BOOTREQUEST arrived on an upstream-only interface.";
        /// RFC 1542 4.1.1: hops would exceed the configured maximum.
        HopLimit => "hop_limit", "Hops would exceed max_hops (RFC 1542 4.1.1).";
        /// giaddr is one of our own addresses: the request has looped back to us.
        GiaddrIsOurs => "giaddr_is_ours", "giaddr is one of our addresses: the request looped back.";
        /// RFC 3046 2.1: giaddr 0 with option 82 already present, from an untrusted circuit.
        UntrustedOption82 => "untrusted_option82", "giaddr 0 with option 82 already present, from an untrusted circuit (RFC 3046 2.1).";
        /// The request already carried option 82 and the policy is `drop`.
        Option82Policy => "option82_policy", "The request already carried option 82 and option82.policy is drop.";
        /// A BOOTREPLY from an address that is not a configured server.
        ReplyFromUnknownServer => "reply_from_unknown_server", "A BOOTREPLY from an address that is not a configured server.";
        /// A BOOTREPLY whose giaddr is not one of our downstream addresses.
        ReplyNotForUs => "reply_not_for_us", "A BOOTREPLY whose giaddr is not one of our downstream addresses.";
        /// A BOOTREPLY that arrived on a downstream interface: never a server reply.
        ReplyOnDownstream => "reply_on_downstream", "A BOOTREPLY that arrived on a downstream (client-side) interface: never a server reply.";
        /// A BOOTREPLY that answers no request of ours (xid, htype/chaddr, giaddr), or came
        /// after `reply_timeout`.
        ReplyUnmatched => "reply_unmatched", "A BOOTREPLY that answers no request cdra forwarded (xid, htype/chaddr, giaddr) within reply_timeout.";
        /// A BOOTREPLY from a server the request it names was not sent to.
        ReplyFromWrongServer => "reply_from_wrong_server", "A BOOTREPLY from a configured server that the request it names was not sent to.";
        /// The client's own request budget is spent (`[limits] client_rate`).
        ClientRateLimited => "client_rate_limited", "Requests over the client's own budget (limits.client_rate, client_burst).";
        /// The interface's budget for new clients is spent (`[limits] interface_rate`).
        InterfaceRateLimited => "interface_rate_limited", "Requests of clients without a server-answered record (all, in relay mode) over the interface's budget (limits.interface_rate, interface_burst).";
        /// A RELEASE or DECLINE naming a cached client that did not come from it.
        ReleaseMismatch => "release_mismatch", "DHCPRELEASE/DHCPDECLINE naming a cached client but not from it (other address, other link, other Ethernet source): dropped, record kept.";
        /// The reply could not be rewritten into the output buffer.
        ReplyTooLarge => "reply_too_large", "The answer could not be written into the output buffer.";
        /// No server could be chosen (none configured), or a record lost its reply.
        NoServer => "no_server", "No server could be chosen, or the record to answer from is gone.";
        /// The outbox is full (bounded): more actions in one batch than it holds.
        OutboxFull => "outbox_full", "More to send in one batch than the output batch holds.";
        /// Paper 3.2's probe could not be made (`max_pending_probes` in flight, the address
        /// being probed for another request, or its packets not sent) and no server
        /// answers: rather than forward to a server known to be down, drop; the client
        /// retransmits.
        UnprobedNoServer => "unprobed_no_server", "A request whose answer needs a probe that could not be made (max_pending_probes in flight, the address already being probed, or the probe's packets not sent) while no server answers: dropped rather than forwarded to a server known to be down; the client retransmits.";
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
        /// RFC 4388: an answer to one of cdra's own leasequeries or link INFORMs, absorbed.
        LeasequeryAnswer => "leasequery_answer", "Answers to cdra's own DHCPLEASEQUERYs and link DHCPINFORMs (RFC 4388), absorbed.";
        /// A reply of a kind the request it answers does not call for (Table 1), such as a
        /// BOOTREPLY without a DHCP message type to a DHCP request.
        UnexpectedReply => "unexpected_reply", "Replies of a kind the request they answer does not call for (Table 1).";
        /// Pool mode: server answers to cdra's own pool requests (never passed to a client).
        PoolUpkeepAnswer => "pool_upkeep_answer", "Pool mode: server answers to cdra's own requests for pool leases (never passed to a client).";
        /// A retransmitted request while the probe for its answer is in flight.
        RetransmissionDuringProbe => "retransmission_during_probe", "Retransmitted requests while the probe for their answer runs.";
    }
}
