//! The virtual clock and the event scheduler: a priority queue of `(time, seq, event)`.
//! Events due at the same millisecond run in the order they were scheduled (`seq`), so a
//! run is a pure function of its inputs.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Milliseconds of virtual time.
pub type Millis = u64;

struct Entry<E> {
    at: Millis,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    // BinaryHeap is a max-heap: reverse so the earliest (then lowest seq) pops first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A deterministic discrete-event scheduler with its own clock.
pub struct Scheduler<E> {
    now: Millis,
    seq: u64,
    heap: BinaryHeap<Entry<E>>,
}

impl<E> Scheduler<E> {
    /// A scheduler whose clock starts at `start`.
    pub fn new(start: Millis) -> Self {
        Scheduler { now: start, seq: 0, heap: BinaryHeap::new() }
    }

    /// The current virtual time.
    pub fn now(&self) -> Millis {
        self.now
    }

    /// Schedule `event` at `at` (clamped to now: nothing runs in the past).
    pub fn at(&mut self, at: Millis, event: E) {
        let at = at.max(self.now);
        self.seq += 1;
        self.heap.push(Entry { at, seq: self.seq, event });
    }

    /// Schedule `event` `delay` milliseconds from now.
    pub fn after(&mut self, delay: Millis, event: E) {
        self.at(self.now.saturating_add(delay), event);
    }

    /// When the next event is due.
    pub fn next_time(&self) -> Option<Millis> {
        self.heap.peek().map(|e| e.at)
    }

    /// Take the next event due at or before `limit`, advancing the clock to its time.
    pub fn pop_until(&mut self, limit: Millis) -> Option<E> {
        if self.heap.peek()?.at > limit {
            return None;
        }
        let e = self.heap.pop()?;
        self.now = e.at;
        Some(e.event)
    }

    /// Move the clock forward to `t` (after the events before it ran).
    pub fn advance_to(&mut self, t: Millis) {
        self.now = self.now.max(t);
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_then_fifo_order() {
        let mut s = Scheduler::new(100);
        s.at(150, "c");
        s.at(120, "a");
        s.at(150, "d");
        s.at(120, "b");
        s.at(10, "past"); // clamped to now
        let mut got = vec![];
        while let Some(e) = s.pop_until(u64::MAX) {
            got.push((s.now(), e));
        }
        assert_eq!(got, vec![(100, "past"), (120, "a"), (120, "b"), (150, "c"), (150, "d")]);
    }
}
