//! Time as the core sees it: a [`Timestamp`] in milliseconds, handed in by the caller.
//!
//! The binary anchors it to the wall clock at start-up and advances it with a monotonic
//! clock (so persisted records carry meaningful times and a clock step does not jump
//! leases); tests and the simulation use a virtual clock.

use core::time::Duration;

/// Milliseconds on the caller's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// From milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Timestamp(ms)
    }
    /// From seconds.
    pub const fn from_secs(s: u64) -> Self {
        Timestamp(s.saturating_mul(1000))
    }
    /// Milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0
    }
    /// `self + d`, saturating.
    pub fn saturating_add(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(d.as_millis().min(u128::from(u64::MAX)) as u64))
    }
    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}
