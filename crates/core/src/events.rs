//! The per-client event log, as data: what happened to a client's lease, one
//! [`LeaseEvent`] each (forwarded, answered by a server, answered locally, probed, NAKed,
//! lapsed, removed and why, pool address given, returned, migrated).
//!
//! The engine is sans-IO, so it does not log: it queues events, and the I/O layer takes
//! them with [`crate::Engine::drain_events`] after each call and writes them where the
//! operator asked (`[log] events` in the daemon). Off by default: with a capacity of 0
//! (the default) nothing is queued and nothing is allocated. The queue is bounded: when it
//! holds `capacity` events, further ones are not queued but counted
//! ([`crate::Counters::events_dropped`]), so a caller that never drains costs memory only
//! up to the bound.
//!
//! Every event's kind is a label the counters already have ([`ProxyEvent`], [`Removal`]),
//! so each line of the log matches a Prometheus series (`cdra_proxy_events_total{event}`,
//! `cdra_records_removed_total{cause}`); the two that are not caching-mode events
//! (a request forwarded in relay mode, a server reply passed on) match
//! `cdra_server_requests_total` and `cdra_server_replies_total`.

use core::net::Ipv4Addr;
use std::collections::VecDeque;

use crate::counters::{MessageKind, ProxyEvent};
use crate::table::{ClientKey, ClientRecord, Removal};
use crate::time::Timestamp;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A caching-mode event ([`ProxyEvent`]: `forwarded`, `local_offer`, `local_ack`,
    /// `local_nak`, `probe_started`, `lapsed`, `pool_assigned`, ...). `forwarded` is also
    /// used for requests relayed in relay mode.
    Proxy(ProxyEvent),
    /// The client's record was removed, for this cause (`evicted`, `released`,
    /// `server_nak`, `expired`, `flushed`, ...).
    Removed(Removal),
    /// A server's reply was passed on to the client.
    ServerReply,
}

impl EventKind {
    /// The event's name in the log: the [`ProxyEvent`] label, `removed` or `server_reply`.
    pub const fn label(self) -> &'static str {
        match self {
            EventKind::Proxy(e) => e.label(),
            EventKind::Removed(_) => "removed",
            EventKind::ServerReply => "server_reply",
        }
    }

    /// For a removal, its cause (the [`Removal`] label).
    pub const fn cause(self) -> Option<&'static str> {
        match self {
            EventKind::Removed(r) => Some(r.label()),
            EventKind::Proxy(_) | EventKind::ServerReply => None,
        }
    }
}

/// One event of one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseEvent {
    /// When (the `now` of the call that produced it).
    pub at: Timestamp,
    /// What happened.
    pub kind: EventKind,
    /// The client.
    pub client: ClientKey,
    /// Its downstream interface (index into the configuration's `downstream`), when known.
    pub interface: Option<u16>,
    /// The address concerned (leased, offered, probed or requested), when there is one.
    pub address: Option<Ipv4Addr>,
    /// The server concerned (its identifier), when known.
    pub server: Option<Ipv4Addr>,
    /// The DHCP message concerned (request forwarded, reply sent), when there is one.
    pub message: Option<MessageKind>,
}

impl LeaseEvent {
    /// An event about the client of record `r`.
    pub fn of_record(at: Timestamp, kind: EventKind, r: &ClientRecord, message: Option<MessageKind>) -> Self {
        LeaseEvent {
            at,
            kind,
            client: r.key.clone(),
            interface: Some(r.downstream),
            address: (!r.address.is_unspecified()).then_some(r.address),
            server: r.server().map(|s| s.id),
            message,
        }
    }
}

/// The bounded queue (see the module docs).
#[derive(Debug, Default)]
pub struct EventQueue {
    capacity: usize,
    queue: VecDeque<LeaseEvent>,
}

impl EventQueue {
    /// A queue holding at most `capacity` events (0: off).
    pub fn new(capacity: usize) -> Self {
        EventQueue { capacity, queue: VecDeque::new() }
    }

    /// Events are wanted (check before building one).
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The bound.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Events waiting to be drained.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when none is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Queue `e`; false (not queued) when off or full.
    pub fn push(&mut self, e: LeaseEvent) -> bool {
        if self.queue.len() >= self.capacity {
            return false;
        }
        self.queue.push_back(e);
        true
    }

    /// Take every queued event, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = LeaseEvent> + '_ {
        self.queue.drain(..)
    }
}

impl crate::Engine {
    /// Keep a per-client event log of at most `capacity` events between two
    /// [`crate::Engine::drain_events`] (0, the default: no log). Events already queued are
    /// kept up to the new bound.
    pub fn set_event_log(&mut self, capacity: usize) {
        let mut q = EventQueue::new(capacity);
        for e in self.events.drain() {
            if !q.push(e) {
                self.counters.events_dropped += 1;
            }
        }
        self.events = q;
    }

    /// Take the events queued since the last call, oldest first.
    pub fn drain_events(&mut self) -> impl Iterator<Item = LeaseEvent> + '_ {
        self.events.drain()
    }

    /// Events are being logged: worth building one.
    pub(crate) fn logging_events(&self) -> bool {
        self.events.enabled()
    }

    /// Queue `e` (counted when the queue is full).
    pub(crate) fn push_event(&mut self, e: LeaseEvent) {
        if self.events.enabled() && !self.events.push(e) {
            self.counters.events_dropped += 1;
        }
    }

    /// An event about the client whose record is in `slot`.
    pub(crate) fn record_event(&mut self, kind: EventKind, slot: crate::table::Slot, message: Option<MessageKind>) {
        if !self.logging_events() {
            return;
        }
        if let Some(r) = self.table.get(slot) {
            let e = LeaseEvent::of_record(self.event_time, kind, r, message);
            self.push_event(e);
        }
    }

    /// An event about the client of message `msg` on downstream link `ds` (a request we
    /// forward or answer, or a server reply we pass on): its address is `address`, else
    /// the one the message names (yiaddr, requested address, ciaddr).
    pub(crate) fn message_event<T: AsRef<[u8]>>(
        &mut self,
        kind: EventKind,
        ds: usize,
        msg: &cdra_wire::Message<T>,
        server: Option<Ipv4Addr>,
    ) {
        if !self.logging_events() {
            return;
        }
        let named = [msg.yiaddr(), msg.requested_ip().unwrap_or(Ipv4Addr::UNSPECIFIED), msg.ciaddr()];
        let e = LeaseEvent {
            at: self.event_time,
            kind,
            client: ClientKey::of(msg),
            interface: u16::try_from(ds).ok(),
            address: named.into_iter().find(|a| !a.is_unspecified()),
            server,
            message: Some(MessageKind::of(msg)),
        };
        self.push_event(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u8) -> LeaseEvent {
        LeaseEvent {
            at: Timestamp::from_millis(u64::from(n)),
            kind: EventKind::Proxy(ProxyEvent::Forwarded),
            client: ClientKey::hardware(1, &[2, 0, 0, 0, 0, n]),
            interface: Some(0),
            address: None,
            server: None,
            message: None,
        }
    }

    #[test]
    fn off_by_default_and_bounded() {
        let mut q = EventQueue::default();
        assert!(!q.enabled());
        assert!(!q.push(event(1)), "a queue of capacity 0 takes nothing");
        let mut q = EventQueue::new(3);
        assert!(q.enabled());
        let queued: Vec<bool> = (0..5).map(|n| q.push(event(n))).collect();
        assert_eq!(queued, [true, true, true, false, false]);
        let drained: Vec<u64> = q.drain().map(|e| e.at.as_millis()).collect();
        assert_eq!(drained, [0, 1, 2], "oldest first; the newest are the ones refused");
        assert!(q.is_empty());
        assert!(q.push(event(9)), "room again once drained");
    }

    #[test]
    fn labels_are_the_counters_labels() {
        assert_eq!(EventKind::Proxy(ProxyEvent::LocalAck).label(), "local_ack");
        assert_eq!(EventKind::Removed(Removal::Evicted).label(), "removed");
        assert_eq!(EventKind::Removed(Removal::Evicted).cause(), Some("evicted"));
        assert_eq!(EventKind::ServerReply.label(), "server_reply");
        assert_eq!(EventKind::ServerReply.cause(), None);
    }
}
