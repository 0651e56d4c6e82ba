//! Rate limits: token buckets that keep one client, or a flood of new ones, from taking
//! the relay, the table or the servers for itself.
//!
//! | budget | spent by | knob | counted as |
//! |---|---|---|---|
//! | per client ([`crate::table::ClientTable::take_budget`]: kept by the table only while not full, so a client that has not asked for a few seconds takes no room) | every request of a client cdra has a record for | `[limits] client_rate`, `client_burst` | drop `client_rate_limited` |
//! | per downstream interface | every request of a client without a server-answered record (a new client, or one still waiting: what a starvation flood of random MACs is), and in relay mode every request | `[limits] interface_rate`, `interface_burst` | drop `interface_rate_limited` |
//!
//! A client whose record holds a server reply spends only its own budget, so a flood of
//! new clients on its link cannot keep it from being answered; a record still waiting for
//! the server spends both (many addresses cycling would otherwise multiply the per-client
//! budget). What a flood can still grow is bounded elsewhere: pending records
//! (`pending_clients`, [`crate::table`]), outstanding requests (`transactions`,
//! [`crate::transactions`]).
//!
//! A rate of 0 turns a budget off.

use crate::time::Timestamp;

/// A sustained rate and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Tokens added per second (0: unlimited).
    pub per_second: u32,
    /// Most tokens saved up.
    pub burst: u32,
}

impl Rate {
    /// No limit.
    pub const UNLIMITED: Rate = Rate { per_second: 0, burst: 0 };

    /// The same rate with another burst.
    pub const fn with_burst(self, burst: u32) -> Rate {
        Rate { per_second: self.per_second, burst }
    }

    /// Is this rate a limit at all?
    pub const fn is_limited(self) -> bool {
        self.per_second != 0
    }
}

/// A token bucket: full at first, refilled at the rate's pace up to its burst; one token
/// per request. 16 bytes, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    /// Thousandths of a token (64 bits: a burst of millions, `interface_burst` allows ten,
    /// is billions of them; the bucket is 16 bytes either way).
    millitokens: u64,
    /// When it was last refilled.
    at: Timestamp,
}

impl TokenBucket {
    /// A full bucket (whatever the burst turns out to be).
    pub const fn full() -> Self {
        TokenBucket { millitokens: u64::MAX, at: Timestamp::from_millis(0) }
    }

    /// Take one token at `now`, refilling first; false (nothing taken) when there is none.
    /// A clock that went back refills nothing.
    pub fn take(&mut self, now: Timestamp, rate: Rate) -> bool {
        if !rate.is_limited() {
            return true;
        }
        let level = self.level_at(now, rate);
        if now > self.at {
            self.at = now;
        }
        if level >= 1000 {
            self.millitokens = level - 1000;
            true
        } else {
            self.millitokens = level;
            false
        }
    }

    /// Is the bucket full at `now` (as [`TokenBucket::full`] is: the next take finds the
    /// whole burst)? Always for an unlimited rate.
    pub fn is_full_at(&self, now: Timestamp, rate: Rate) -> bool {
        !rate.is_limited() || self.level_at(now, rate) >= Self::cap(rate)
    }

    /// Thousandths of a token the bucket holds at `now`, refilled (a clock that went back
    /// refills nothing).
    fn level_at(&self, now: Timestamp, rate: Rate) -> u64 {
        // per_second tokens a second is per_second thousandths of a token a millisecond.
        let refill = now.since(self.at).as_millis().min(u128::from(u32::MAX)) as u64 * u64::from(rate.per_second);
        self.millitokens.saturating_add(refill).min(Self::cap(rate))
    }

    /// The most thousandths of a token it holds.
    fn cap(rate: Rate) -> u64 {
        u64::from(rate.burst.max(1)) * 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn burst_then_the_sustained_rate() {
        let rate = Rate { per_second: 10, burst: 5 };
        let mut b = TokenBucket::full();
        let taken = (0..100).filter(|_| b.take(t(1000), rate)).count();
        assert_eq!(taken, 5, "the burst");
        // One second later: 10 more tokens, capped at the burst of 5.
        assert_eq!((0..100).filter(|_| b.take(t(2000), rate)).count(), 5);
        // 100 ms: one token.
        assert!(b.take(t(2100), rate));
        assert!(!b.take(t(2100), rate));
        // Over 10 s at 1000 requests a second, about 10 a second get through.
        let mut got = 0;
        for ms in (3000..13_000).step_by(1) {
            if b.take(t(ms), rate) {
                got += 1;
            }
        }
        assert!((99..=106).contains(&got), "{got}");
    }

    #[test]
    fn a_clock_that_goes_back_refills_nothing_and_zero_means_unlimited() {
        let rate = Rate { per_second: 1, burst: 1 };
        let mut b = TokenBucket::full();
        assert!(b.take(t(10_000), rate));
        assert!(!b.take(t(5_000), rate));
        assert!(!b.take(t(10_500), rate));
        assert!(b.take(t(11_000), rate));
        let mut u = TokenBucket::full();
        assert!((0..1000).all(|_| u.take(t(0), Rate::UNLIMITED)));
    }

    /// A burst above 4,294,967 tokens (u32 thousandths) was cut to what was left over
    /// 2^32 once the bucket refilled: here 5,000,000 became about 705,000.
    #[test]
    fn a_burst_of_millions_is_kept_whole() {
        let rate = Rate { per_second: 1_000_000, burst: 5_000_000 };
        let mut b = TokenBucket::full();
        assert!(b.take(t(1000), rate));
        // Ten seconds later, refilled to the whole burst.
        let taken = (0..6_000_000).take_while(|_| b.take(t(11_000), rate)).count();
        assert_eq!(taken, 5_000_000);
        assert_eq!(core::mem::size_of::<TokenBucket>(), 16);
    }
}
