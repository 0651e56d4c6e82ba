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
}
