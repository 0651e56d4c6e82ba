//! One netlink conversation at a time over a [`netlink_sys::Socket`] (private helper of
//! [`crate::intercept`] and [`crate::route`]).
//!
//! Guarantees: the socket is bound (the kernel assigns the port id, so the kernel knows
//! its owner), close-on-exec and non-blocking; a read never waits longer than the timeout
//! given; an answer that cannot be parsed is an error, never a panic; messages that belong
//! to another conversation (another sequence number) are skipped.

use std::io;
use std::ops::ControlFlow;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use netlink_packet_core::{NetlinkBuffer, NetlinkDeserializable, NetlinkMessage, NetlinkSerializable};
use netlink_sys::Socket;

use crate::SysError;

/// Largest answer datagram read (the kernel's netlink messages here are a few hundred bytes).
const RECV_BUFFER: usize = 64 * 1024;

/// A bound netlink socket and its receive buffer.
pub(crate) struct NlSocket {
    socket: Socket,
    buf: Vec<u8>,
    next_seq: u32,
}

impl NlSocket {
    /// Opens and binds a socket of netlink `protocol`; `what` names its use in errors.
    pub(crate) fn open(protocol: isize, what: &str, needs: &'static str) -> Result<NlSocket, SysError> {
        let mut socket = Socket::new(protocol)
            .map_err(|e| SysError::from_io(format!("opening a netlink socket for {what}"), needs, e))?;
        socket
            .bind_auto()
            .map_err(|e| SysError::from_io(format!("binding the netlink socket for {what}"), needs, e))?;
        socket.set_non_blocking(true).map_err(|e| SysError::from_io(format!("netlink socket for {what}"), needs, e))?;
        Ok(NlSocket { socket, buf: Vec::with_capacity(RECV_BUFFER), next_seq: 1 })
    }

    /// A fresh sequence number (never 0).
    pub(crate) fn next_seq(&mut self) -> u32 {
        let s = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1).max(1);
        s
    }

    /// Serializes `messages` back to back into one datagram and sends it (netlink
    /// messages are padded to 4 bytes; the ones built here already are).
    pub(crate) fn send<I: NetlinkSerializable>(&self, messages: &mut [NetlinkMessage<I>]) -> io::Result<()> {
        let mut total = 0;
        for m in messages.iter_mut() {
            m.finalize();
            total += align4(m.buffer_len());
        }
        let mut out = vec![0u8; total];
        let mut at = 0;
        for m in messages.iter() {
            let len = m.buffer_len();
            let Some(slot) = out.get_mut(at..at + len) else {
                return Err(io::Error::other("netlink message larger than computed"));
            };
            m.serialize(slot);
            at += align4(len);
        }
        let sent = self.socket.send(&out, 0)?;
        if sent != out.len() {
            return Err(io::Error::other(format!("netlink: sent {sent} of {} bytes", out.len())));
        }
        Ok(())
    }

    /// Reads answers for up to `timeout`, handing each message whose sequence number is in
    /// `seqs` to `each`, until `each` says [`ControlFlow::Break`]. `Ok(false)`: the time ran
    /// out first.
    pub(crate) fn read<I: NetlinkDeserializable>(
        &mut self,
        seqs: std::ops::RangeInclusive<u32>,
        timeout: Duration,
        mut each: impl FnMut(NetlinkMessage<I>) -> ControlFlow<()>,
    ) -> io::Result<bool> {
        let deadline = Instant::now() + timeout;
        let mut ready = [false];
        loop {
            self.buf.clear();
            match self.socket.recv(&mut self.buf, 0) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(false);
                    }
                    crate::poll::wait_readable(&[self.socket.as_raw_fd()], Some(deadline - now), &mut ready)?;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let mut at = 0;
            while let Some(rest) = self.buf.get(at..).filter(|r| !r.is_empty()) {
                let len = NetlinkBuffer::new_checked(rest)
                    .map(|b| b.length() as usize)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("netlink answer: {e}")))?;
                let one = rest.get(..len).unwrap_or(rest);
                let msg = NetlinkMessage::<I>::deserialize(one)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("netlink answer: {e}")))?;
                at += align4(len.max(16));
                if !seqs.contains(&msg.header.sequence_number) {
                    continue;
                }
                if each(msg).is_break() {
                    return Ok(true);
                }
            }
        }
    }
}

impl AsRawFd for NlSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }
}

/// `NLMSG_ALIGN`.
pub(crate) const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::align4;

    #[test]
    fn alignment() {
        assert_eq!([align4(0), align4(1), align4(4), align4(17)], [0, 4, 4, 20]);
    }
}
