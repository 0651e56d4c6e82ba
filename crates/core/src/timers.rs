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
//! | [`Timer::Sweep`] | start-up, then itself (paper 5.6 `max_age`, tracked requests) | one |
//! | [`Timer::Pool`] | a pool entry's next step (acquire, T1, T2, lease end) | one per entry (`PoolEntry::timer`) |
//! | [`Timer::PoolRefill`] | start-up, an entry given out or lost | one (`PoolState::refill_armed`) |
//! | [`Timer::PoolFallback`] | a new client's DISCOVER forwarded (`assign = "outage"`) | `[limits] pending_clients` |
//! | [`Timer::Leasequery`] | start-up, a sweep queued, a query sent ([`crate::leasequery`]) | one (`LeasequeryState::timer_filed`) |
//!
//! The lapse timers (paper 2.3: a client's short lease may have lapsed), one per record with
//! a short lease, a million at a time, are kept apart in a [`LapseQueue`] of 12-byte entries
//! (deadline in whole seconds, rounded up, and the record), fired in the same deadline order
//! by `handle_timeout` (at a tie, the other timers first). Bounded by the records: a record
//! holds one bit, [`crate::table::ClientRecord::lapse_filed`], set while an entry filed for it
//! falls due no later than its short lease's end plus the grace. An entry checks the record
//! when it fires: one for a record gone, or whose bit is clear, is stale and ignored; one
//! that finds the lease extended files another for the new end (so a lease extended does
//! not file anything at once); an end moved earlier clears the bit, and a new entry is
//! filed (the old one, now redundant, is ignored or re-checks harmlessly when it fires).
//!
//! Stale entries (a record evicted with its lapse timer filed, a probe forgotten before its
//! deadline, a pool entry re-armed earlier or dropped) would pile up with the churn, so once
//! the heap holds twice what can be live (for the lapse queue: twice the records the table
//! may hold, or holds if more, after a reload lowered its bounds) the engine drops them ([`Timers::retain`],
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
    /// A slice of the table is swept.
    Sweep,
    /// Pool mode: an entry's next step is due (acquire, renew, rebind, expire; [`crate::pool::upkeep`]).
    Pool(crate::pool::EntryRef),
    /// Pool mode: the pools are filled up to `[pool] size` free entries.
    PoolRefill,
    /// Pool mode: a forwarded DISCOVER's `fallback_after` is up ([`crate::pool::assign`]).
    /// Boxed: the request id takes 24 bytes, and every timer would take its size.
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

/// The lapse timers (see the module docs): earliest deadline first, a deadline in whole
/// seconds (rounded up: a lapse is never looked at before its time), ties by record.
#[derive(Debug, Default)]
pub struct LapseQueue {
    heap: BinaryHeap<Reverse<(u32, RecordRef)>>,
}

impl LapseQueue {
    /// File a lapse timer for `record`, due at `at` (rounded up to the second).
    pub fn file(&mut self, at: Timestamp, record: RecordRef) {
        self.heap.push(Reverse((at.secs_ceil(), record)));
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.heap.peek().map(|Reverse((secs, _))| Timestamp::from_secs(u64::from(*secs)))
    }

    /// Take the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: Timestamp) -> Option<RecordRef> {
        if self.next_deadline()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse((_, record))| record)
    }

    /// Keep only the entries whose record is `live`, and of those only the earliest one of
    /// each record (the later ones are redundant: the earliest re-checks the record and
    /// files what is still needed).
    pub fn retain_earliest(&mut self, mut live: impl FnMut(RecordRef) -> bool) {
        let mut entries = core::mem::take(&mut self.heap).into_vec();
        entries.retain(|Reverse((_, r))| live(*r));
        entries.sort_unstable_by_key(|Reverse((at, r))| (*r, *at));
        entries.dedup_by_key(|Reverse((_, r))| *r);
        self.heap = BinaryHeap::from(entries);
    }

    /// Bytes its heap takes.
    pub fn memory(&self) -> usize {
        self.heap.capacity() * core::mem::size_of::<Reverse<(u32, RecordRef)>>()
    }

    /// Entries filed (live or stale).
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is filed.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{ClientKey, ClientKind, ClientRecord, ClientTable};

    fn table_of(n: u8) -> (ClientTable, Vec<RecordRef>) {
        let mut t = ClientTable::new(16, 16, 1);
        let refs = (0..n)
            .map(|i| {
                let key = ClientKey::hardware(1, &[2, 0, 0, 0, 0, i]);
                let (s, _) = t.insert(ClientRecord::new(key, ClientKind::Dhcp, 0, Timestamp::default()));
                t.reference(s).unwrap()
            })
            .collect();
        (t, refs)
    }

    #[test]
    fn an_entry_is_twelve_bytes_and_never_falls_due_early() {
        assert_eq!(core::mem::size_of::<Reverse<(u32, RecordRef)>>(), 12);
        let (_, refs) = table_of(1);
        let mut q = LapseQueue::default();
        q.file(Timestamp::from_millis(10_001), refs[0]);
        assert_eq!(q.next_deadline(), Some(Timestamp::from_secs(11)), "rounded up");
        assert_eq!(q.pop_due(Timestamp::from_millis(10_999)), None);
        assert_eq!(q.pop_due(Timestamp::from_secs(11)), Some(refs[0]));
        assert!(q.is_empty());
    }

    #[test]
    fn entries_fall_due_in_deadline_order() {
        let (_, refs) = table_of(3);
        let mut q = LapseQueue::default();
        q.file(Timestamp::from_secs(30), refs[0]);
        q.file(Timestamp::from_secs(10), refs[1]);
        q.file(Timestamp::from_secs(20), refs[2]);
        let now = Timestamp::from_secs(100);
        let order: Vec<_> = core::iter::from_fn(|| q.pop_due(now)).collect();
        assert_eq!(order, vec![refs[1], refs[2], refs[0]]);
    }

    #[test]
    fn compaction_drops_removed_records_and_keeps_the_earliest_of_each() {
        let (mut t, refs) = table_of(3);
        let mut q = LapseQueue::default();
        for (i, r) in refs.iter().enumerate() {
            for k in 0..4u64 {
                q.file(Timestamp::from_secs(100 + 10 * k + i as u64), *r);
            }
        }
        t.remove(refs[1].slot);
        q.retain_earliest(|r| t.resolve(r).is_some());
        assert_eq!(q.len(), 2, "one a live record");
        let now = Timestamp::from_secs(1000);
        assert_eq!(q.next_deadline(), Some(Timestamp::from_secs(100)));
        assert_eq!(q.pop_due(now), Some(refs[0]));
        assert_eq!(q.next_deadline(), Some(Timestamp::from_secs(102)), "the earliest of the third record's");
        assert_eq!(q.pop_due(now), Some(refs[2]));
    }
}
