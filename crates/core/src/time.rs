//! Time as the core sees it: a [`Timestamp`] in milliseconds, handed in by the caller.
//!
//! The binary anchors it to the wall clock at start-up and advances it with a monotonic
//! clock (so persisted records carry meaningful times and a clock step does not jump
//! leases); tests and the simulation use a virtual clock.

use core::num::NonZeroU64;
use core::time::Duration;

/// Milliseconds on the caller's clock. Kept as milliseconds + 1 in a `NonZeroU64`, so that
/// an `Option<Timestamp>` takes 8 bytes, not 16 (a client record holds several; paper 5.7,
/// issue 14 part 3). The last representable instant is `u64::MAX - 1` ms (some 584 million
/// years); later ones saturate to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(NonZeroU64);

impl Default for Timestamp {
    fn default() -> Self {
        Timestamp::from_millis(0)
    }
}

impl Timestamp {
    /// From milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        match NonZeroU64::new(ms.saturating_add(1)) {
            Some(v) => Timestamp(v),
            None => Timestamp(NonZeroU64::MAX),
        }
    }
    /// From seconds.
    pub const fn from_secs(s: u64) -> Self {
        Timestamp::from_millis(s.saturating_mul(1000))
    }
    /// Milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0.get() - 1
    }
    /// `self + d`, saturating.
    pub fn saturating_add(self, d: Duration) -> Self {
        Timestamp::from_millis(self.as_millis().saturating_add(d.as_millis().min(u128::from(u64::MAX)) as u64))
    }
    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.as_millis().saturating_sub(earlier.as_millis()))
    }

    /// Whole seconds, rounded down: the time is believed earlier than it is (an instant
    /// after `u32::MAX` seconds, the year 2106 on the daemon's wall clock, saturates to it).
    /// For the compact times of a client record ([`crate::table::ClientRecord`]).
    pub const fn secs_floor(self) -> u32 {
        let s = self.as_millis() / 1000;
        if s > u32::MAX as u64 {
            u32::MAX
        } else {
            s as u32
        }
    }

    /// Whole seconds, rounded up: the time is believed later than it is (saturating as
    /// [`Timestamp::secs_floor`]).
    pub const fn secs_ceil(self) -> u32 {
        let s = self.as_millis().div_ceil(1000);
        if s > u32::MAX as u64 {
            u32::MAX
        } else {
            s as u32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_down_or_up_and_saturate() {
        let t = Timestamp::from_millis(12_345);
        assert_eq!((t.secs_floor(), t.secs_ceil()), (12, 13));
        let whole = Timestamp::from_secs(7);
        assert_eq!((whole.secs_floor(), whole.secs_ceil()), (7, 7));
        let far = Timestamp::from_millis(u64::MAX);
        assert_eq!((far.secs_floor(), far.secs_ceil()), (u32::MAX, u32::MAX));
        assert!(Timestamp::from_secs(u64::from(t.secs_floor())) <= t);
        assert!(Timestamp::from_secs(u64::from(t.secs_ceil())) >= t);
    }
}
