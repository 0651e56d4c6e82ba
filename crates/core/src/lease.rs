//! Lease arithmetic, written once: the server's lease as a record holds it, what is left
//! of it, T1/T2, and the lease a client gets from us.
//!
//! RFC 2131 4.4.5: "T1 defaults to (0.5 * duration_of_lease). T2 defaults to (0.875 *
//! duration_of_lease)." Those defaults apply to a server ACK that carries no option 58/59
//! and to every lease we give a client ourselves (paper 5.1: "the configuration
//! information relative to the leases (ie. IP Address Lease Time, Renewal (T1) Time Value,
//! and Rebinding (T2) Time Value) must also be modified before forwarding to the client").
//!
//! A lease of `u32::MAX` seconds is infinite (RFC 2132 9.2) and stays infinite.

use core::time::Duration;

use cdra_wire::Message;

use crate::table::ClientRecord;
use crate::time::Timestamp;

/// RFC 2132 9.2: 0xffffffff is an infinite lease.
pub const INFINITE: u32 = u32::MAX;

/// RFC 2131 4.4.5: T1 defaults to half the lease.
pub const fn default_t1(lease: u32) -> u32 {
    if lease == INFINITE {
        INFINITE
    } else {
        lease / 2
    }
}

/// RFC 2131 4.4.5: T2 defaults to 0.875 of the lease.
pub const fn default_t2(lease: u32) -> u32 {
    if lease == INFINITE {
        INFINITE
    } else {
        ((lease as u64) * 7 / 8) as u32
    }
}

/// A duration as whole seconds of a finite lease (never `INFINITE`).
pub fn finite_secs(d: Duration) -> u32 {
    d.as_secs().min(u64::from(INFINITE - 1)) as u32
}

/// The lease times a server's ACK grants: lease, T1 and T2 in seconds (T1/T2 from options
/// 58/59 when present, else the RFC 2131 4.4.5 defaults; never beyond the lease).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLeaseTimes {
    /// Option 51.
    pub lease: u32,
    /// Option 58, or the default.
    pub t1: u32,
    /// Option 59, or the default.
    pub t2: u32,
}

impl ServerLeaseTimes {
    /// From a server's ACK; `None` without a lease time (an ACK to an INFORM).
    pub fn of<T: AsRef<[u8]>>(ack: &Message<T>) -> Option<Self> {
        let lease = ack.lease_time()?;
        Some(Self::with_lease(lease, ack.renewal_time(), ack.rebinding_time()))
    }

    /// A lease with optional explicit T1/T2.
    pub fn with_lease(lease: u32, t1: Option<u32>, t2: Option<u32>) -> Self {
        ServerLeaseTimes {
            lease,
            t1: t1.unwrap_or(default_t1(lease)).min(lease),
            t2: t2.unwrap_or(default_t2(lease)).min(lease),
        }
    }

    /// A BOOTP client's address never expires (RFC 1542 has no lease).
    pub const BOOTP: ServerLeaseTimes = ServerLeaseTimes { lease: INFINITE, t1: INFINITE, t2: INFINITE };
}

/// What a client gets from us at `now`: what is left of the server's lease, and no more
/// than `client_lease` when automated short leases are on (paper 2.3, 5.3). Never more than
/// the server granted, whatever the clock says (a record dated in the future counts as
/// just granted).
pub fn local_lease_secs(r: &ClientRecord, now: Timestamp, client_lease: Option<Duration>) -> u32 {
    let left = r.lease_left_secs(now);
    match client_lease {
        Some(c) => left.min(finite_secs(c)),
        None => left,
    }
}

impl ClientRecord {
    fn at_offset(&self, secs: u32) -> Timestamp {
        Timestamp::from_millis(self.lease_start().as_millis().saturating_add(u64::from(secs) * 1000))
    }

    /// When the server's lease ends (`None`: infinite).
    pub fn lease_end(&self) -> Option<Timestamp> {
        (self.lease_secs != INFINITE).then(|| self.at_offset(self.lease_secs))
    }

    /// Seconds of the server's lease left at `now` (`INFINITE`: infinite). At most the lease
    /// the server granted, even when `lease_start` lies after `now`.
    pub fn lease_left_secs(&self, now: Timestamp) -> u32 {
        if self.lease_secs == INFINITE {
            return INFINITE;
        }
        let elapsed = now.since(self.lease_start()).as_secs();
        (u64::from(self.lease_secs).saturating_sub(elapsed)).min(u64::from(INFINITE - 1)) as u32
    }

    /// Is `now` past the server lease's T1?
    pub fn past_t1(&self, now: Timestamp) -> bool {
        self.lease_secs != INFINITE && now >= self.at_offset(self.t1_secs)
    }

    /// Is `now` past the server lease's T2?
    pub fn past_t2(&self, now: Timestamp) -> bool {
        self.lease_secs != INFINITE && now >= self.at_offset(self.t2_secs)
    }

    /// Paper 3.4 and a clock behind the store: a record whose times lie after `now` (written
    /// by a clock that was ahead, or restored before NTP set this one) gets them moved back
    /// to `now`, so no lease is believed longer than granted and `max_age` still applies.
    /// True if anything was moved.
    pub fn clamp_to(&mut self, now: Timestamp) -> bool {
        let mut moved = false;
        if self.lease_start() > now {
            self.set_lease_start(now);
            moved = true;
        }
        if self.last_contact() > now {
            self.set_last_contact(now);
            moved = true;
        }
        if self.last_update() > now {
            self.set_last_update(now);
            moved = true;
        }
        if let (Some(end), Some(lease_end)) = (self.client_lease_end(), self.lease_end()) {
            // A short lease cannot end later than one client_lease from now; the caller
            // re-bounds it with the configured length.
            if end > now {
                moved |= self.limit_client_lease_end(lease_end);
            }
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2131_defaults() {
        assert_eq!(default_t1(3600), 1800);
        assert_eq!(default_t2(3600), 3150);
        assert_eq!(default_t1(INFINITE), INFINITE);
        assert_eq!(
            ServerLeaseTimes::with_lease(100, Some(500), None),
            ServerLeaseTimes { lease: 100, t1: 100, t2: 87 }
        );
    }
}
