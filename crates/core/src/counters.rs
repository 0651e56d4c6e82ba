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
}

/// All counters.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Per interface slot (see [`InterfaceCounters`]).
    pub interfaces: Vec<InterfaceCounters>,
    /// Per configured server, in configuration order.
    pub servers: Vec<ServerCounters>,
    /// Malformed datagrams by wire error label.
    pub malformed: [u64; 8],
    /// RFC 3046 2.1: option 82 not added because the message would have been too large.
    pub option82_not_added_too_large: u64,
    /// Proxy mode.
    pub proxy: ProxyCounters,
}

/// Proxy-mode counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyCounters {
    /// OFFERs made from the table.
    pub local_offers: u64,
    /// ACKs made from the table.
    pub local_acks: u64,
    /// NAKs we sent (probe found the address in use, or an unknown offer was requested).
    pub local_naks: u64,
    /// BOOTREPLYs spoofed from the table.
    pub bootp_spoofed: u64,
    /// Client requests forwarded to servers.
    pub forwarded: u64,
    /// Requests the table could not answer because they ask for something else (another
    /// address, parameters not asked before): Appendix B, forwarded.
    pub changed_requests: u64,
    /// Broadcast REBINDs forwarded so the server renews first (paper 3.2).
    pub rebinds_forwarded: u64,
    /// OFFERs discarded (client not in INIT: one OFFER per DISCOVER).
    pub offers_discarded: u64,
    /// ACKs discarded (client not waiting for one).
    pub acks_discarded: u64,
    /// NAKs discarded.
    pub naks_discarded: u64,
    /// Probes started.
    pub probes_started: u64,
    /// Probes answered by another host: the address is in use.
    pub probes_found_in_use: u64,
    /// Probes that timed out: the address is free.
    pub probes_timed_out: u64,
    /// Requests forwarded because too many probes were in flight.
    pub probes_refused_full: u64,
    /// Records removed after RELEASE or DECLINE.
    pub removed_client_gave_up: u64,
    /// Records removed after a server NAK.
    pub removed_server_nak: u64,
    /// Records evicted because the table was full.
    pub evicted: u64,
    /// Records removed: older than max_age or server lease over.
    pub expired: u64,
    /// Records removed: address not on the client's subnet.
    pub wrong_subnet: u64,
    /// Records removed: a probe found the address in use.
    pub removed_in_use: u64,
    /// Records removed: the server gave the address to another client.
    pub reassigned: u64,
    /// Records flushed by an operator.
    pub flushed: u64,
    /// Automated lease renewals: RENEWs answered locally.
    pub local_renewals: u64,
    /// Renewals sent to a server on a client's behalf (server lease past T1).
    pub upstream_renewals: u64,
    /// Server ACKs to those, absorbed into the table (not forwarded, paper 5.3).
    pub upstream_renewals_acked: u64,
    /// Client short leases that lapsed without renewal.
    pub lapsed: u64,
    /// DHCPRELEASEs sent to a server for lapsed clients (probe found nobody, paper 3.3).
    pub releases_sent: u64,
    /// Lapsed clients whose address still answered: nothing released (Appendix A.2).
    pub lapsed_still_in_use: u64,
    /// Local ACKs to unicast renewals held back for `renew_reply_delay`.
    pub renewal_answers_held: u64,
    /// ...and those sent at once because `max_held_replies` were already held.
    pub renewal_answers_not_held: u64,
    /// Forwarded requests not tracked by xid (`max_tracked_requests` reached).
    pub requests_untracked: u64,
    /// DISCOVERs whose first OFFER was passed on because `max_offer_windows` were open.
    pub offer_windows_full: u64,
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
        if let DropReason::Malformed(e) = reason {
            if let Some(c) = self.malformed.get_mut(e as usize) {
                *c += 1;
            }
        }
    }

    /// Total drops over all interfaces for one reason.
    pub fn total_dropped(&self, reason: DropReason) -> u64 {
        self.interfaces.iter().filter_map(|s| s.dropped.get(reason.index())).sum()
    }
}
