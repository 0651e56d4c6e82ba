//! Being told when interfaces come and go: a netlink socket subscribed to the kernel's link
//! and IPv4 address notifications (rtnetlink groups `RTMGRP_LINK` and
//! `RTMGRP_IPV4_IFADDR`: an interface created, deleted, set up or down, renamed; an address
//! added or removed).
//!
//! The notifications are not parsed: any of them means "look again", and the caller reads
//! the interfaces it cares about afresh ([`crate::iface::interface_by_name`]). That is
//! simpler than following every message and cannot drift from the kernel's state, even when
//! notifications are lost (a full socket buffer, `ENOBUFS`, also means "look again").

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::SysError;

/// rtnetlink multicast group of link changes (`RTMGRP_LINK`, linux/rtnetlink.h).
const RTMGRP_LINK: u32 = 0x1;
/// rtnetlink multicast group of IPv4 address changes (`RTMGRP_IPV4_IFADDR`).
const RTMGRP_IPV4_IFADDR: u32 = 0x10;

/// A subscription to link and IPv4 address changes of the current network namespace.
pub struct LinkWatch {
    socket: Socket,
    buf: Vec<u8>,
}

impl LinkWatch {
    /// Subscribe (needs no privilege).
    pub fn open() -> Result<LinkWatch, SysError> {
        let needs = "nothing (a netlink route socket)";
        let mut socket = Socket::new(NETLINK_ROUTE)
            .map_err(|e| SysError::from_io("opening a netlink socket for interface changes", needs, e))?;
        socket
            .bind(&SocketAddr::new(0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR))
            .map_err(|e| SysError::from_io("subscribing to interface changes", needs, e))?;
        socket
            .set_non_blocking(true)
            .map_err(|e| SysError::from_io("netlink socket for interface changes", needs, e))?;
        Ok(LinkWatch { socket, buf: Vec::with_capacity(64 * 1024) })
    }

    /// Read every notification waiting. True if there was any, or if some were lost (the
    /// caller must look again either way); false if nothing happened.
    pub fn drain(&mut self) -> bool {
        let mut changed = false;
        loop {
            self.buf.clear();
            match self.socket.recv(&mut self.buf, 0) {
                Ok(0) => return changed,
                Ok(_) => changed = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return changed,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ENOBUFS: notifications were dropped; anything else: look again too (the
                // caller re-reads the interfaces, which is always right).
                Err(_) => return true,
            }
        }
    }
}

impl AsRawFd for LinkWatch {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_happened_reads_as_nothing() {
        let Ok(mut w) = LinkWatch::open() else { return };
        // No change was made by this test; earlier changes in the namespace may be queued
        // (only from before the subscription: none).
        assert!(!w.drain());
    }
}
