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
