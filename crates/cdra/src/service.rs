//! systemd's service protocol (`Type=notify`, `WatchdogSec=`): a no-op outside systemd.
//!
//! `READY=1` once every socket is open; `WATCHDOG=1` from the packet loop itself, so that
//! systemd restarts a cdra whose loop is stuck (not just one whose process is gone). systemd
//! passes the interval in `WATCHDOG_USEC` (read through the `sd-notify` crate, which also
//! checks `WATCHDOG_PID`); cdra pings once half of it has passed. The loop wakes at least
//! once a second, so with any `WatchdogSec=` of 2 s or more a ping is never late while
//! the loop turns.

use std::time::{Duration, Instant};

/// When to send `WATCHDOG=1`.
#[derive(Debug)]
pub struct Watchdog {
    /// Half of systemd's interval; `None`: no watchdog asked for.
    every: Option<Duration>,
    last: Instant,
}

impl Watchdog {
    /// The watchdog systemd asked for, if any (`WATCHDOG_USEC`, `WATCHDOG_PID`).
    pub fn from_env(now: Instant) -> Self {
        Self::with_interval(sd_notify::watchdog_enabled(), now)
    }

    /// A watchdog of `interval` (`None`: off); the first ping is due half of it after `now`.
    pub fn with_interval(interval: Option<Duration>, now: Instant) -> Self {
        let every = interval.filter(|d| !d.is_zero()).map(|d| d / 2);
        Watchdog { every, last: now }
    }

    /// How often it pings (`None`: never).
    pub fn every(&self) -> Option<Duration> {
        self.every
    }

    /// True (and the ping counted as sent) when a ping is due at `now`.
    pub fn due(&mut self, now: Instant) -> bool {
        match self.every {
            Some(every) if now.saturating_duration_since(self.last) >= every => {
                self.last = now;
                true
            }
            _ => false,
        }
    }

    /// Send `WATCHDOG=1` if it is due (called on every turn of the loop).
    pub fn tick(&mut self, now: Instant) {
        if self.due(now) {
            if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]) {
                tracing::debug!(error = %e, "watchdog notification failed");
            }
        }
    }
}

/// Tell systemd that cdra is ready (and, with a watchdog, that it is alive).
pub fn ready(watchdog: &Watchdog) {
    let mut states = vec![sd_notify::NotifyState::Ready];
    if watchdog.every().is_some() {
        states.push(sd_notify::NotifyState::Watchdog);
    }
    let _ = sd_notify::notify(&states);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_once_half_the_interval_has_passed() {
        let t0 = Instant::now();
        let mut w = Watchdog::with_interval(Some(Duration::from_secs(30)), t0);
        assert_eq!(w.every(), Some(Duration::from_secs(15)));
        assert!(!w.due(t0 + Duration::from_secs(14)));
        assert!(w.due(t0 + Duration::from_secs(15)));
        assert!(!w.due(t0 + Duration::from_secs(16)), "not again until another half interval");
        assert!(w.due(t0 + Duration::from_secs(31)));
    }

    #[test]
    fn no_watchdog_never_pings() {
        let t0 = Instant::now();
        for interval in [None, Some(Duration::ZERO)] {
            let mut w = Watchdog::with_interval(interval, t0);
            assert_eq!(w.every(), None);
            assert!(!w.due(t0 + Duration::from_secs(3600)));
        }
    }
}
