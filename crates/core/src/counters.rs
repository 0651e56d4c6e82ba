//! Counters: per interface, per message kind, per drop reason, per server. Plain arrays
//! sized at start-up; incrementing one is an index and an add.

use cdra_wire::{Message, MessageType};

use crate::verdict::DropReason;

/// Message kinds counted: the eight DHCP types, any other option 53 value, and plain
/// BOOTP (no option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// A DHCP message of this type.
    Dhcp(MessageType),
    /// A BOOTP message (no option 53).
    Bootp,
}

impl MessageKind {
    /// Number of counter slots.
    pub const COUNT: usize = 10;
    /// Labels, by index.
    pub const LABELS: [&'static str; Self::COUNT] =
        ["discover", "offer", "request", "decline", "ack", "nak", "release", "inform", "other", "bootp"];

    /// The kind of a message.
    pub fn of<T: AsRef<[u8]>>(msg: &Message<T>) -> Self {
        match msg.message_type() {
            Some(t) => MessageKind::Dhcp(t),
            None => MessageKind::Bootp,
        }
    }

    /// Its label (`discover`, ..., `other`, `bootp`).
    pub fn label(self) -> &'static str {
        Self::LABELS.get(self.index()).copied().unwrap_or("other")
    }

    /// Dense index.
    pub fn index(self) -> usize {
        match self {
            MessageKind::Dhcp(MessageType::Other(_)) => 8,
            MessageKind::Dhcp(t) => usize::from(t.to_u8().saturating_sub(1)).min(7),
            MessageKind::Bootp => 9,
        }
    }
}

/// Per-interface counters. Slot `i` is downstream interface `i`; the last slot counts
/// everything that arrived elsewhere (upstream interfaces).
#[derive(Debug, Clone, Default)]
pub struct InterfaceCounters {
    /// Datagrams received, by message kind.
    pub received: [u64; MessageKind::COUNT],
    /// Datagrams sent, by message kind.
    pub sent: [u64; MessageKind::COUNT],
    /// Datagrams dropped, by reason.
    pub dropped: [u64; DropReason::COUNT],
}

/// Per-server counters.
#[derive(Debug, Clone, Default)]
pub struct ServerCounters {
    /// Requests relayed to this server.
    pub requests_sent: u64,
    /// Replies accepted from this server.
    pub replies_received: u64,
    /// Round-trip times of those replies: from forwarding the request they answer (its
    /// last copy, [`crate::transactions::Transaction::sent_at`]) to the reply.
    pub round_trip: RoundTripHistogram,
}

/// A histogram of round-trip times with fixed buckets (Prometheus style: each bucket
/// counts the observations at or below its bound). Times are in the engine's resolution,
/// milliseconds: a reply within the same millisecond counts as 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundTripHistogram {
    /// Observations at or below each bound of [`RoundTripHistogram::BOUNDS_MS`] (not
    /// cumulative: `counts[i]` holds those above bound `i - 1`); the last slot holds those
    /// above every bound.
    pub counts: [u64; RoundTripHistogram::BOUNDS_MS.len() + 1],
    /// Sum of the observations, in milliseconds.
    pub sum_ms: u64,
}

impl RoundTripHistogram {
    /// Upper bounds of the buckets, in milliseconds (`+Inf` follows).
    pub const BOUNDS_MS: [u64; 12] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

    /// Count one round trip.
    pub fn observe(&mut self, rtt: core::time::Duration) {
        let ms = u64::try_from(rtt.as_millis()).unwrap_or(u64::MAX);
        let i = Self::BOUNDS_MS.iter().position(|b| ms <= *b).unwrap_or(Self::BOUNDS_MS.len());
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.sum_ms = self.sum_ms.saturating_add(ms);
    }

    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(bound in ms, cumulative count)` per bucket, then `(None, total)` for `+Inf`.
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<u64>, u64)> + '_ {
        let bounds = Self::BOUNDS_MS.iter().map(|b| Some(*b)).chain(core::iter::once(None));
        bounds.zip(self.counts.iter()).scan(0u64, |acc, (b, c)| {
            *acc += c;
            Some((b, *acc))
        })
    }
}

/// All counters.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Per interface slot (see [`InterfaceCounters`]).
    pub interfaces: Vec<InterfaceCounters>,
    /// Per configured server, in configuration order.
    pub servers: Vec<ServerCounters>,
    /// Malformed datagrams by wire error (`cdra_wire::WireError::ALL` order).
    pub malformed: [u64; cdra_wire::WireError::ALL.len()],
    /// RFC 3046 2.1: option 82 not added because the message would have been too large.
    pub option82_not_added_too_large: u64,
    /// Option 82 not added: a plain BOOTP request without the magic cookie has no options
    /// field (RFC 951, RFC 3046 2.0).
    pub option82_not_added_no_options: u64,
    /// RFC 6607 3.2: replies that still carry the VSS Control sub-option we sent: their
    /// server did not act on the VSS sub-option (passed on all the same, as SONiC does;
    /// such a server allocates from its global address space).
    pub vss_not_understood: u64,
    /// Outstanding forwarded requests forgotten to make room for newer ones
    /// (`[limits] transactions`): a reply to them is no longer believed.
    pub transactions_evicted: u64,
    /// Lease events not queued because the event queue was full ([`crate::events`]).
    pub events_dropped: u64,
    /// Downstream interfaces that came up (or got their address), and that went away
    /// (deleted, down, or without their address): [`crate::Engine::set_link`].
    pub links_up: u64,
    /// See `links_up`.
    pub links_waiting: u64,
    /// Proxy mode.
    pub proxy: ProxyCounters,
}

/// Defines a fieldless enum whose every variant carries its metric label and help text
/// next to it, with `ALL`, `COUNT`, `index()`, `label()` and `help()`: one table per label
/// set, so a label cannot drift from its variant.
macro_rules! labelled_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident => $label:literal, $help:literal;)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name { $($(#[$vmeta])* $variant,)+ }
        impl $name {
            /// Every variant, in index order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];
            /// Number of variants (counter slots).
            pub const COUNT: usize = Self::ALL.len();
            /// Dense index for counter arrays.
            pub const fn index(self) -> usize { self as usize }
            /// Stable metric label.
            pub const fn label(self) -> &'static str { match self { $($name::$variant => $label,)+ } }
            /// One line saying what it counts.
            pub const fn help(self) -> &'static str { match self { $($name::$variant => $help,)+ } }
        }
    };
}
pub(crate) use labelled_enum;

/// Counters indexed by a `labelled_enum!` type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterSet<E, const N: usize> {
    counts: [u64; N],
    _kind: core::marker::PhantomData<E>,
}

impl<E, const N: usize> Default for CounterSet<E, N> {
    fn default() -> Self {
        CounterSet { counts: [0; N], _kind: core::marker::PhantomData }
    }
}

/// What a [`CounterSet`] is indexed by.
pub trait CounterIndex: Copy {
    /// The dense index.
    fn slot(self) -> usize;
}

impl<E: CounterIndex, const N: usize> CounterSet<E, N> {
    /// Count one.
    pub fn add(&mut self, e: E) {
        if let Some(c) = self.counts.get_mut(e.slot()) {
            *c += 1;
        }
    }
    /// Count `n`.
    pub fn add_n(&mut self, e: E, n: u64) {
        if let Some(c) = self.counts.get_mut(e.slot()) {
            *c += n;
        }
    }
    /// The count of `e`.
    pub fn get(&self, e: E) -> u64 {
        self.counts.get(e.slot()).copied().unwrap_or(0)
    }
}

impl<E: CounterIndex, const N: usize> core::ops::Index<E> for CounterSet<E, N> {
    type Output = u64;
    fn index(&self, e: E) -> &u64 {
        self.counts.get(e.slot()).unwrap_or(&0)
    }
}

macro_rules! counter_index {
    ($($t:ty),+) => { $(impl CounterIndex for $t { fn slot(self) -> usize { self.index() } })+ };
}
counter_index!(ProxyEvent, crate::table::Removal, crate::verdict::DiscardReason, DropReason);

labelled_enum! {
    /// Caching-mode events (paper sections 3 and 5), one counter each.
    pub enum ProxyEvent {
        /// OFFERs made from the table.
        LocalOffer => "local_offer", "OFFERs made from the table.";
        /// ACKs made from the table.
        LocalAck => "local_ack", "ACKs made from the table.";
        /// NAKs we sent (a probe found the address in use, or an unknown offer was requested).
        LocalNak => "local_nak", "NAKs sent by cdra (address in use, or an offer it cannot honour).";
        /// BOOTREPLYs spoofed from the table.
        BootpSpoofed => "bootp_spoofed", "BOOTREPLYs answered from the table.";
        /// Client requests forwarded to servers.
        Forwarded => "forwarded", "Client requests forwarded to servers.";
        /// Appendix B: requests asking for another address or new parameters, forwarded.
        ChangedRequest => "changed_request", "Requests for another address or new parameters, forwarded (paper App. B).";
        /// Broadcast REBINDs forwarded so the server renews first (paper 3.2).
        RebindForwarded => "rebind_forwarded", "Broadcast REBINDs of cached clients forwarded so the server renews first (paper 3.2).";
        /// Probes started.
        ProbeStarted => "probe_started", "Address probes started (ARP, and an ICMP echo where icmp_probe asks for one).";
        /// Probes answered by another host: the address is in use.
        ProbeFoundInUse => "probe_found_in_use", "Probes answered by another host: the address is in use.";
        /// Probes answered by the client's own MAC address (the client itself).
        ProbeClientAnswered => "probe_client_answered", "Probes answered by the client's own MAC address (the client is still there).";
        /// Probes that timed out: the address is free.
        ProbeTimedOut => "probe_timed_out", "Probes nobody answered: the address is free.";
        /// Requests that needed a probe while `max_pending_probes` probes were in flight:
        /// forwarded, or dropped when no server answers.
        ProbeRefusedFull => "probe_refused_full", "Requests that needed a probe while max_pending_probes probes were in flight: forwarded to the servers, or dropped (unprobed_no_server) when none answers.";
        /// Automated lease renewals: RENEWs answered locally.
        LocalRenewal => "local_renewal", "Unicast RENEWs answered from the table.";
        /// Renewals sent to a server on a client's behalf (server lease past T1).
        UpstreamRenewal => "upstream_renewal", "Renewals sent to a server on a client's behalf (server lease past T1, paper 5.3).";
        /// Server ACKs to those, absorbed into the table (not forwarded, paper 5.3).
        UpstreamRenewalAcked => "upstream_renewal_acked", "Server ACKs to upstream renewals, absorbed into the table.";
        /// Client short leases that lapsed without renewal.
        Lapsed => "lapsed", "Short client leases that lapsed without renewal.";
        /// Lapsed clients whose own MAC answered the probe: kept, nothing released.
        LapsedClientStillThere => "lapsed_client_still_there", "Lapsed clients whose own MAC answered the probe: record kept, nothing released.";
        /// DHCPRELEASEs sent to a server for lapsed clients (probe found nobody, paper 3.3).
        ReleaseSent => "release_sent", "DHCPRELEASEs sent to a server for lapsed clients (paper 3.3).";
        /// A lapsed client's RELEASE could not be built or sent (record dropped all the same).
        ReleaseNotSent => "release_not_sent", "Lapsed clients whose DHCPRELEASE could not be built (no server or reply known).";
        /// Lapsed clients whose address another host answers: nothing released (Appendix A.2).
        LapsedStillInUse => "lapsed_still_in_use", "Lapsed clients whose address another host answers: nothing released (paper A.2).";
        /// Local ACKs to unicast renewals held back for `renew_reply_delay`.
        RenewalAnswerHeld => "renewal_answer_held", "Local ACKs to unicast renewals held back for renew_reply_delay.";
        /// ...and those sent at once because `max_held_replies` were already held.
        RenewalAnswerNotHeld => "renewal_answer_not_held", "Local ACKs to unicast renewals sent at once because max_held_replies were held.";
        /// Paper 5.7: REQUESTs for the offered address of an expired record, forwarded as
        /// INIT-REBOOT.
        ExpiredRequestForwarded => "expired_request_forwarded", "REQUESTs for the offered address of an expired record, forwarded to the server as INIT-REBOOT (paper 5.7).";
        /// Spoofing mode: intercepted RENEWs of records not confirmed since a restart, sent to
        /// the server first.
        SuspectRenewalForwarded => "suspect_renewal_forwarded", "Spoofing mode: intercepted RENEWs of records restored and not confirmed since, sent to the server first.";
        /// Spoofing mode: client unicasts to a server taken and handled (paper 4.2).
        Intercepted => "intercepted", "Client unicasts to a server taken by the spoofing relay and handled (paper 4.2).";
        /// Requests whose Ethernet source is not their chaddr: relayed as a plain relay would,
        /// without consulting or changing the table.
        UnverifiedSource => "unverified_source", "Requests whose Ethernet source is not their chaddr: relayed without the cache.";
        /// Probes for a requester answered by the MAC of the record's own client: NAK to the
        /// requester, record kept.
        ProbeOwnerAnswered => "probe_owner_answered", "Probes for a requester answered by the record's own client: requester NAKed, record kept.";
        /// Server replies matched to a request whose record has gone meanwhile: passed on,
        /// not cached (a reply never creates a record).
        ReplyForGoneRecord => "reply_for_gone_record", "Server replies whose client record went while the request was out: passed on, not cached.";
        /// Requests whose address was being probed for another request: forwarded, or
        /// dropped when no server answers.
        ProbeRefusedBusy => "probe_refused_busy", "Requests whose address was already being probed for another request: forwarded to the servers, or dropped (unprobed_no_server) when none answers.";
        /// Probes none of whose packets the kernel took: what waited for them is not
        /// answered unprobed.
        ProbeUnsent => "probe_unsent", "Probes none of whose packets could be sent (by method: cdra_probe_send_failures_total): the request waiting for one went to the servers, or was dropped when none answers; a lapse or pool address is probed again later.";
        /// Probes sent again because answers to them may have been lost.
        ProbeRepeated => "probe_repeated", "Probes sent again because answers may have been lost while they ran (a probe socket's receive queue overflowed, cdra_probe_answers_lost_total).";
        /// DISCOVERs whose first OFFER was passed on because `max_offer_windows` were open.
        OfferWindowFull => "offer_window_full", "DISCOVERs whose first OFFER was passed on because max_offer_windows were open.";
        /// Records restored or kept with times in the future (clock behind the store), clamped to now.
        FutureDatedClamped => "future_dated_clamped", "Records dated in the future (clock behind the store) whose times were clamped to now.";
        /// Timers left due because the outbox was full; fired on the next call.
        TimersDeferred => "timers_deferred", "Timer work left for the next call because the output batch was full.";
        /// Pool mode: DISCOVERs and REQUESTs sent to acquire pool leases.
        PoolRequestSent => "pool_request_sent", "Pool mode: DISCOVERs and REQUESTs sent to acquire pool leases (paper 4.3).";
        /// Pool mode: pool leases granted by a server.
        PoolLeased => "pool_leased", "Pool mode: pool leases granted by a server.";
        /// Pool mode: RENEWs and REBINDs sent for pool leases.
        PoolRenewalSent => "pool_renewal_sent", "Pool mode: RENEWs and REBINDs sent for pool leases (at their T1 and T2).";
        /// Pool mode: pool leases renewed.
        PoolRenewed => "pool_renewed", "Pool mode: pool leases renewed by a server.";
        /// Pool mode: NAKs received for pool requests.
        PoolNak => "pool_nak", "Pool mode: NAKs received for pool requests.";
        /// Pool mode: pool leases lost (NAK, or renewed as another address).
        PoolLeaseLost => "pool_lease_lost", "Pool mode: pool leases lost (NAK, or no answer when asked back).";
        /// Pool mode: pool leases that ran out unrenewed.
        PoolLeaseExpired => "pool_lease_expired", "Pool mode: pool leases that ran out unrenewed (servers unreachable).";
        /// Pool mode: a link's pool could take no more entries.
        PoolFull => "pool_full", "Pool mode: a link had as many entries as it may (4096) and could not refill.";
        /// Pool mode: pool addresses given to clients.
        PoolAssigned => "pool_assigned", "Pool mode: pool addresses given to new clients.";
        /// Pool mode: new clients the pool could not serve (no free entry on their link).
        PoolEmpty => "pool_empty", "Pool mode: new clients the pool could not serve: no free entry on their link.";
        /// Pool mode: DISCOVERs answered from the pool because no server OFFER came in time.
        PoolFallback => "pool_fallback", "Pool mode: DISCOVERs answered from the pool because no server OFFER came within fallback_after.";
        /// Pool mode: DISCOVERs not watched for a fallback (limits.pending_clients were).
        PoolFallbackRefused => "pool_fallback_refused", "Pool mode: DISCOVERs not watched for a fallback because limits.pending_clients were.";
        /// Pool mode: pool addresses back in the pool (client gone).
        PoolReturned => "pool_returned", "Pool mode: pool addresses free again (the client released it, or left).";
        /// Pool mode: pool addresses declined at the server (in use by another host).
        PoolDeclined => "pool_declined", "Pool mode: pool addresses declined at the server: another host uses them.";
        /// Pool mode: free entries beyond `size` given back to the server.
        PoolSurplusReleased => "pool_surplus_released", "Pool mode: free pool leases beyond [pool] size released at their T1 instead of renewed.";
        /// Pool mode: entries held back (someone may be on the address).
        PoolHeldBack => "pool_held_back", "Pool mode: pool addresses set aside for a while, their leases kept: a probe found another host on them, or the client they were given to may still hold them.";
        /// Pool mode: held-back entries free again (a probe found nobody).
        PoolHoldLifted => "pool_hold_lifted", "Pool mode: held-back pool addresses free again: a probe found nobody on them.";
        /// Pool mode: entries dropped because too many were held back.
        PoolInUseDropped => "pool_in_use_dropped", "Pool mode: pool addresses found in use and dropped (their lease left to run out) because [pool] size were already held back on the link.";
        /// Pool mode: DHCPRELEASEs and DHCPDECLINEs sent for pool leases.
        PoolReleaseSent => "pool_release_sent", "Pool mode: DHCPRELEASEs sent for pool leases (when a client takes the address over).";
        /// Pool mode: DHCPDECLINEs sent for pool leases.
        PoolDeclineSent => "pool_decline_sent", "Pool mode: DHCPDECLINEs sent for pool leases.";
        /// Pool mode: pool clients being moved onto leases of their own.
        PoolMigrationStarted => "pool_migration_started", "Pool mode: pool clients being moved onto leases of their own once the servers answer.";
        /// Pool mode: pool clients now on leases of their own.
        PoolMigrated => "pool_migrated", "Pool mode: pool clients now holding their address under their own identity at the server.";
        /// Pool mode: moves that failed (the client starts over).
        PoolMigrationFailed => "pool_migration_failed", "Pool mode: moves that got a NAK or no answer: the address is asked back, the client starts over.";
        /// Pool mode: pool clients NAKed so that they start over with the server.
        PoolClientRestarted => "pool_client_restarted", "Pool mode: pool clients sent back to the server (NAK) after a failed move or a lost pool lease.";
        /// RFC 4388: sweeps of a subnet started (the table started empty, or a downstream
        /// interface was added).
        LeasequerySweepStarted => "leasequery_sweep_started", "Leasequery: sweeps of a subnet started (the table started empty, or a downstream interface was added).";
        /// RFC 4388: DHCPLEASEQUERY messages sent (by address).
        LeasequerySent => "leasequery_sent", "Leasequery: DHCPLEASEQUERY messages sent (query by IP address, RFC 4388 6.1).";
        /// DHCPINFORMs sent for a link's configuration.
        LeasequeryLinkInformSent => "leasequery_link_inform_sent", "Leasequery: DHCPINFORMs sent to learn a link's configuration (what a DHCPLEASEACTIVE does not carry).";
        /// A link's configuration learned (an INFORM's ACK, or the options of a
        /// DHCPLEASEUNASSIGNED/UNKNOWN).
        LeasequeryLinkConfigured => "leasequery_link_configured", "Leasequery: a link's configuration learned (options of the INFORM's ACK, or of a DHCPLEASEUNASSIGNED/UNKNOWN for that link).";
        /// DHCPLEASEACTIVE answers.
        LeasequeryActive => "leasequery_active", "Leasequery: DHCPLEASEACTIVE answers (the address is leased).";
        /// DHCPLEASEUNASSIGNED answers.
        LeasequeryUnassigned => "leasequery_unassigned", "Leasequery: DHCPLEASEUNASSIGNED answers (the server owns the address, nobody has it).";
        /// DHCPLEASEUNKNOWN answers.
        LeasequeryUnknown => "leasequery_unknown", "Leasequery: DHCPLEASEUNKNOWN answers (not the server's address).";
        /// Records made from a DHCPLEASEACTIVE (suspect, paper 3.4).
        LeasequeryRecordMade => "leasequery_record_made", "Leasequery: records made from a DHCPLEASEACTIVE (suspect like a restored record: paper 3.4's precautions apply).";
        /// DHCPLEASEACTIVE for a client or address the table already has, or for one of
        /// cdra's own pool leases: ignored.
        LeasequeryRecordKnown => "leasequery_record_known", "Leasequery: DHCPLEASEACTIVE for a client or an address the table already has (never overwritten), or for one of cdra's own pool leases.";
        /// DHCPLEASEACTIVE that could not be made a record.
        LeasequeryActiveUnusable => "leasequery_active_unusable", "Leasequery: DHCPLEASEACTIVE not usable (no lease time left, no client identity, the address off the link's subnet, or no link configuration by the end of the sweep).";
        /// Queries that went unanswered for `query_timeout`.
        LeasequeryTimedOut => "leasequery_timed_out", "Leasequery: queries unanswered within leasequery.query_timeout.";
        /// Servers found not answering leasequery.
        LeasequeryServerNotAnswering => "leasequery_server_not_answering", "Leasequery: servers found not answering leasequery (unanswered_limit queries in a row, or an answer of another kind): left alone until the next sweep.";
        /// Answers that matched a query but came from another server, another link or late.
        LeasequeryReplyRejected => "leasequery_reply_rejected", "Leasequery: answers matching a query's xid but not from the server asked, not for the link asked, or not about the address asked: not believed.";
        /// Unanswered addresses that could not be asked again (that list was full).
        LeasequeryNotAskedAgain => "leasequery_not_asked_again", "Leasequery: addresses left unanswered that could not be asked of the next server (that list, leasequery.max_outstanding long, was full).";
        /// Sweeps given up: no server answers leasequery.
        LeasequerySweepAbandoned => "leasequery_sweep_abandoned", "Leasequery: sweeps given up because no configured server answers leasequery.";
        /// Doubted records settled by a query (sent).
        LeasequerySettleSent => "leasequery_settle_sent", "Leasequery: queries sent to settle a doubted record (a lapse probe answered by an ICMP echo only) instead of dropping it.";
        /// Doubted records kept: the server says the lease is still the client's.
        LeasequerySettleKept => "leasequery_settle_kept", "Leasequery: doubted records kept, the server's DHCPLEASEACTIVE naming the same client.";
        /// Doubted records dropped: the server says the address is someone else's or free.
        LeasequerySettleDropped => "leasequery_settle_dropped", "Leasequery: doubted records dropped, the server naming another client or no lease (or not answering: the old behaviour).";
    }
}

/// Caching-mode counters: events, record removals by cause, silent discards by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyCounters {
    /// Events ([`ProxyEvent`]).
    pub events: CounterSet<ProxyEvent, { ProxyEvent::COUNT }>,
    /// Records removed, by cause ([`crate::table::Removal`]).
    pub removed: CounterSet<crate::table::Removal, { crate::table::Removal::COUNT }>,
    /// Messages discarded as Table 1 says, by reason ([`crate::verdict::DiscardReason`]).
    pub discarded: CounterSet<crate::verdict::DiscardReason, { crate::verdict::DiscardReason::COUNT }>,
}

impl ProxyCounters {
    /// Count one event.
    pub fn add(&mut self, e: ProxyEvent) {
        self.events.add(e);
    }

    /// Every counter as (group, label, value): group `event`, `removed` or `discarded`.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        let events = ProxyEvent::ALL.iter().map(|e| ("event", e.label(), self.events[*e]));
        let removed = crate::table::Removal::ALL.iter().map(|r| ("removed", r.label(), self.removed[*r]));
        let discarded = crate::verdict::DiscardReason::ALL.iter().map(|d| ("discarded", d.label(), self.discarded[*d]));
        events.chain(removed).chain(discarded)
    }
}

impl core::ops::Index<ProxyEvent> for ProxyCounters {
    type Output = u64;
    fn index(&self, e: ProxyEvent) -> &u64 {
        &self.events[e]
    }
}

impl Counters {
    /// Counters for `interfaces` slots and `servers` servers.
    pub fn new(interfaces: usize, servers: usize) -> Self {
        Counters {
            interfaces: vec![InterfaceCounters::default(); interfaces],
            servers: vec![ServerCounters::default(); servers],
            ..Default::default()
        }
    }

    /// A downstream interface was added (a reload): a new slot just before the upstream
    /// one, which keeps its counts.
    pub fn add_downstream_slot(&mut self) {
        let at = self.interfaces.len().saturating_sub(1);
        self.interfaces.insert(at, InterfaceCounters::default());
    }

    /// The server list changed (a reload): `map[old index]` = new index (`None`: gone, its
    /// counts dropped); `servers` servers now.
    pub fn remap_servers(&mut self, map: &[Option<usize>], servers: usize) {
        let mut next = vec![ServerCounters::default(); servers];
        for (old, new) in map.iter().enumerate() {
            if let (Some(new), Some(c)) = (new, self.servers.get(old)) {
                if let Some(slot) = next.get_mut(*new) {
                    *slot = c.clone();
                }
            }
        }
        self.servers = next;
    }

    fn slot(&mut self, i: usize) -> Option<&mut InterfaceCounters> {
        let last = self.interfaces.len().checked_sub(1)?;
        self.interfaces.get_mut(i.min(last))
    }

    /// Count a received message.
    pub fn received(&mut self, slot: usize, kind: MessageKind) {
        if let Some(c) = self.slot(slot).and_then(|s| s.received.get_mut(kind.index())) {
            *c += 1;
        }
    }

    /// Count a sent message.
    pub fn sent(&mut self, slot: usize, kind: MessageKind) {
        if let Some(c) = self.slot(slot).and_then(|s| s.sent.get_mut(kind.index())) {
            *c += 1;
        }
    }

    /// Count a drop.
    pub fn dropped(&mut self, slot: usize, reason: DropReason) {
        if let Some(c) = self.slot(slot).and_then(|s| s.dropped.get_mut(reason.index())) {
            *c += 1;
        }
    }

    /// Count a malformed datagram's wire error (its drop is counted as `malformed`).
    pub fn count_malformed(&mut self, e: cdra_wire::WireError) {
        if let Some(c) = self.malformed.get_mut(e as usize) {
            *c += 1;
        }
    }

    /// Total drops over all interfaces for one reason.
    pub fn total_dropped(&self, reason: DropReason) -> u64 {
        self.interfaces.iter().filter_map(|s| s.dropped.get(reason.index())).sum()
    }
}

#[cfg(test)]
mod tests {
    use core::time::Duration;

    use super::RoundTripHistogram;

    #[test]
    fn round_trips_fall_in_fixed_cumulative_buckets() {
        let mut h = RoundTripHistogram::default();
        for ms in [0, 1, 2, 3, 40, 999, 1000, 7000] {
            h.observe(Duration::from_millis(ms));
        }
        assert_eq!(h.count(), 8);
        assert_eq!(h.sum_ms, 9045);
        let cumulative: Vec<(Option<u64>, u64)> = h.cumulative().collect();
        assert_eq!(cumulative.len(), RoundTripHistogram::BOUNDS_MS.len() + 1);
        assert_eq!(cumulative[0], (Some(1), 2), "0 ms and 1 ms");
        assert_eq!(cumulative[1], (Some(2), 3));
        assert_eq!(cumulative[2], (Some(5), 4));
        assert_eq!(cumulative[5], (Some(50), 5));
        assert_eq!(cumulative[9], (Some(1000), 7), "the bound itself is in its bucket");
        assert_eq!(cumulative[11], (Some(5000), 7));
        assert_eq!(cumulative[12], (None, 8), "+Inf holds every observation");
    }
}
