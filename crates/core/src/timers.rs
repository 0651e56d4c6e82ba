//! Every timer of the engine in one structure, armed and fired one way.
//!
//! A timer is a deadline and a [`Timer`] saying what falls due. [`Timers::arm`] files it;
//! [`crate::Engine::handle_timeout`] pops what is due, in deadline order, and hands each to
//! its owner (`fire` in `engine.rs`). Entries are never searched for or cancelled: the owner
//! checks, when one fires, whether it still means something (a probe already answered, a
//! lease renewed meanwhile) and ignores it otherwise. The live timers of each kind are
//! bounded by what they refer to:
//!
//! | timer | armed by | bounded by |
//! |---|---|---|
//! | [`Timer::Probe`] | a probe started (paper 3.2, 3.3) | `max_pending_probes` |
//! | [`Timer::OfferWindow`] | the first OFFER of a DISCOVER collected (App. B) | `max_offer_windows` |
//! | [`Timer::HeldReply`] | a local ACK to a unicast RENEW held (`renew_reply_delay`) | `max_held_replies` |
//! | [`Timer::Lapse`] | a short client lease given (paper 2.3) | one per record (`ClientRecord::lapse_armed`) |
//! | [`Timer::Sweep`] | start-up, then itself (paper 5.6 `max_age`, tracked requests) | one |
//! | [`Timer::Pool`] | a pool entry's next step (acquire, T1, T2, lease end) | one per entry (`PoolEntry::timer`) |
//! | [`Timer::PoolRefill`] | start-up, an entry given out or lost | one (`PoolState::refill_armed`) |
//! | [`Timer::PoolFallback`] | a new client's DISCOVER forwarded (`assign = "outage"`) | `[limits] pending_clients` |
//! | [`Timer::Leasequery`] | start-up, a sweep queued, a query sent ([`crate::leasequery`]) | one (`LeasequeryState::timer_filed`) |
//!
//! Stale entries (a record evicted with its lapse timer filed, a probe forgotten before its
//! deadline, a pool entry re-armed earlier or dropped) would pile up with the churn, so once
//! the heap holds twice what can be live the engine drops them ([`Timers::retain`],
//! `Engine::compact_timers`), and keeps one of identical timers (one filed again for a
//! deadline it already had, after an earlier one interrupted it): the heap never holds more
//! than twice the live bound, at an amortized cost of O(log n) per timer.

use core::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::table::RecordRef;
use crate::time::Timestamp;

/// What falls due.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// The probe with this id ends (or has been decided and its outcome is to be sent).
    Probe(u64),
    /// The offer window with this id closes.
    OfferWindow(u64),
    /// The oldest held renewal answer is due.
    HeldReply,
    /// A client's short lease may have lapsed: the record, as long as it lives (8 bytes:
    /// one such timer is filed per record).
    Lapse(RecordRef),
    /// A slice of the table is swept.
    Sweep,
    /// Pool mode: an entry's next step is due (acquire, renew, rebind, expire; [`crate::pool::upkeep`]).
    Pool(crate::pool::EntryRef),
    /// Pool mode: the pools are filled up to `[pool] size` free entries.
    PoolRefill,
    /// Pool mode: a forwarded DISCOVER's `fallback_after` is up ([`crate::pool::assign`]).
    /// Boxed: the request id takes 24 bytes, and every timer (one per client record with a
    /// short lease) would take its size.
    PoolFallback(Box<crate::transactions::RequestId>),
    /// RFC 4388: the sweep's next queries are due, and its timeouts ([`crate::leasequery`]).
    Leasequery,
}

/// The timer heap: earliest deadline first, ties in the order armed.
#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Timestamp, u64, Timer)>>,
    armed: u64,
}

impl Timers {
    /// File `timer` to fall due at `at`.
    pub fn arm(&mut self, at: Timestamp, timer: Timer) {
        self.armed = self.armed.wrapping_add(1);
        self.heap.push(Reverse((at, self.armed, timer)));
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Take the earliest timer if it is due at `now`.
    pub fn pop_due(&mut self, now: Timestamp) -> Option<(Timestamp, Timer)> {
        if self.next_deadline()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse((t, _, timer))| (t, timer))
    }

    /// Keep only the timers for which `live(deadline, timer)` holds.
    pub fn retain(&mut self, mut live: impl FnMut(Timestamp, &Timer) -> bool) {
        self.heap.retain(|Reverse((at, _, timer))| live(*at, timer));
    }

    /// Bytes its heap takes.
    pub fn memory(&self) -> usize {
        self.heap.capacity() * core::mem::size_of::<Reverse<(Timestamp, u64, Timer)>>()
    }

    /// Timers filed (live or stale).
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is filed.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}
