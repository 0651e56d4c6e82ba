//! Raw ICMP echo (ping) requests and replies.
//!
//! Guarantees:
//! * [`IcmpSocket::send_echo`] sends one echo request with the given identifier and sequence
//!   number, a correct checksum and a 16-byte payload; [`IcmpSocket::send_echoes`] many of
//!   them with one `sendmmsg` per 64, reporting each one the kernel refused (an echo to an
//!   address on a link is refused while the kernel cannot add a neighbour entry to resolve
//!   it: its neighbour table, shared by every network namespace, is full);
//!   [`IcmpSocket::receive_drops`] counts replies dropped before they could be read.
//! * [`IcmpSocket::recv_reply`] reports only well-formed echo replies with a valid ICMP
//!   checksum; everything else is skipped. Replies to other programs' pings are reported too
//!   (a raw socket sees all of them): match `ident` and `seq`.
//! * The socket needs CAP_NET_RAW (unprivileged SOCK_DGRAM ICMP is not used); without it,
//!   `new()` fails with a [`SysError::PermissionDenied`] that says so.
//! * Nothing on the send/receive paths allocates.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::sock::{self, Zeroable};
use crate::SysError;

/// `ICMP_FILTER` socket option of SOL_RAW (linux/icmp.h), not exported by libc.
const ICMP_FILTER: libc::c_int = 1;
const ICMP_ECHOREPLY: u8 = 0;
const ICMP_ECHO: u8 = 8;

/// Payload carried by our echo requests.
const PAYLOAD: &[u8; 16] = b"cdra-probe\0\0\0\0\0\0";

/// Packets skipped per `recv_reply` call before returning `None`.
const MAX_SKIPPED: usize = 64;

/// An echo reply that arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EchoReply {
    /// Who answered.
    pub src: Ipv4Addr,
    /// Identifier echoed back.
    pub ident: u16,
    /// Sequence number echoed back.
    pub seq: u16,
}

/// One echo request to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Echo {
    /// Where to.
    pub dst: Ipv4Addr,
    /// Identifier.
    pub ident: u16,
    /// Sequence number.
    pub seq: u16,
}

/// A raw ICMP socket (SOCK_RAW, IPPROTO_ICMP), non-blocking.
#[derive(Debug)]
pub struct IcmpSocket {
    fd: OwnedFd,
}

impl IcmpSocket {
    /// Opens the raw socket. Needs CAP_NET_RAW. Installs a kernel filter that passes only
    /// echo replies (best effort; replies are checked again on receive).
    pub fn new() -> Result<Self, SysError> {
        let fd = sock::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP)
            .map_err(|e| SysError::from_io("opening a raw ICMP socket", "CAP_NET_RAW", e))?;
        // struct icmp_filter { __u32 data; }: a set bit drops that ICMP type.
        let filter: u32 = !(1u32 << ICMP_ECHOREPLY);
        let _ = sock::setsockopt(&fd, libc::SOL_RAW, ICMP_FILTER, &filter);
        sock::set_large_buffers(&fd, crate::packet::PROBE_SOCKET_BUFFER);
        Ok(IcmpSocket { fd })
    }

    /// Sends each of `echoes` (as [`IcmpSocket::send_echo`] does), up to 64 with one
    /// `sendmmsg`. Returns how many the kernel took; each one it refused is reported to
    /// `failed(index into echoes, error)`. Allocates nothing.
    pub fn send_echoes(&self, echoes: &[Echo], failed: &mut dyn FnMut(usize, io::Error)) -> usize {
        let mut sent = 0;
        for (c, chunk) in echoes.chunks(sock::SEND_BATCH).enumerate() {
            let mut pkts = [[0u8; 8 + PAYLOAD.len()]; sock::SEND_BATCH];
            let mut addrs = [libc::sockaddr_in::zeroed(); sock::SEND_BATCH];
            for ((e, pkt), sa) in chunk.iter().zip(pkts.iter_mut()).zip(addrs.iter_mut()) {
                *pkt = build_echo(ICMP_ECHO, e.ident, e.seq);
                *sa = sock::sockaddr_in(SocketAddrV4::new(e.dst, 0));
            }
            let n = chunk.len();
            let base = c * sock::SEND_BATCH;
            sent += sock::send_many(&self.fd, &pkts[..n], &addrs[..n], &mut |i, e| failed(base + i, e));
        }
        sent
    }

    /// Replies the kernel dropped before they could be read (a full receive queue) since
    /// the socket was opened; wraps at 2^32.
    pub fn receive_drops(&self) -> io::Result<u32> {
        sock::receive_drops(&self.fd)
    }

    /// Sends an echo request to `dst`.
    pub fn send_echo(&self, dst: Ipv4Addr, ident: u16, seq: u16) -> io::Result<()> {
        let pkt = build_echo(ICMP_ECHO, ident, seq);
        let sa = sock::sockaddr_in(SocketAddrV4::new(dst, 0));
        sock::sendto(&self.fd, &pkt, &sa).map(|_| ())
    }

    /// Non-blocking: the next echo reply, or `None` when nothing (more) is waiting (also after
    /// skipping 64 packets that were not echo replies; call again while readable). `buf`
    /// should hold at least 128 bytes; packets longer than `buf` are skipped.
    pub fn recv_reply(&self, buf: &mut [u8]) -> io::Result<Option<EchoReply>> {
        for _ in 0..MAX_SKIPPED {
            let mut sa = libc::sockaddr_in::zeroed();
            let n = match sock::recvfrom_trunc(&self.fd, buf, &mut sa) {
                Ok(n) => n,
                Err(e) if sock::is_would_block(&e) => return Ok(None),
                Err(e) => return Err(e),
            };
            if n > buf.len() {
                continue;
            }
            if let Some(r) = parse_echo_reply(&buf[..n]) {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }
}

impl AsRawFd for IcmpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for IcmpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn build_echo(ty: u8, ident: u16, seq: u16) -> [u8; 8 + PAYLOAD.len()] {
    let mut p = [0u8; 8 + PAYLOAD.len()];
    p[0] = ty;
    p[1] = 0;
    p[4..6].copy_from_slice(&ident.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..].copy_from_slice(PAYLOAD);
    let c = sock::inet_checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// Parses an IPv4 packet (as a raw socket delivers it: IP header first) carrying an ICMP
/// echo reply with a valid checksum.
fn parse_echo_reply(p: &[u8]) -> Option<EchoReply> {
    let first = *p.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < 20 || p.len() < ihl + 8 || p[9] != libc::IPPROTO_ICMP as u8 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    let end = if total >= ihl + 8 && total <= p.len() { total } else { p.len() };
    let icmp = &p[ihl..end];
    if icmp[0] != ICMP_ECHOREPLY || icmp[1] != 0 || sock::inet_checksum(icmp) != 0 {
        return None;
    }
    Some(EchoReply {
        src: Ipv4Addr::new(p[12], p[13], p[14], p[15]),
        ident: u16::from_be_bytes([icmp[4], icmp[5]]),
        seq: u16::from_be_bytes([icmp[6], icmp[7]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip_wrap(icmp: &[u8], src: [u8; 4]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&[10, 0, 0, 1]);
        let total = (20 + icmp.len()) as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend_from_slice(icmp);
        p
    }

    #[test]
    fn echo_request_checksum_is_valid() {
        let p = build_echo(ICMP_ECHO, 0x1234, 7);
        assert_eq!(p[0], 8);
        assert_eq!(sock::inet_checksum(&p), 0);
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 7]);
    }

    #[test]
    fn parses_reply_and_skips_others() {
        let reply = build_echo(ICMP_ECHOREPLY, 0xbeef, 42);
        let pkt = ip_wrap(&reply, [10, 0, 0, 2]);
        assert_eq!(parse_echo_reply(&pkt), Some(EchoReply { src: Ipv4Addr::new(10, 0, 0, 2), ident: 0xbeef, seq: 42 }));
        // An echo request is not a reply.
        let req = build_echo(ICMP_ECHO, 0xbeef, 42);
        assert_eq!(parse_echo_reply(&ip_wrap(&req, [10, 0, 0, 2])), None);
        // A corrupted checksum is rejected.
        let mut bad = pkt.clone();
        bad[30] ^= 0xff;
        assert_eq!(parse_echo_reply(&bad), None);
        // Too short / not IPv4.
        assert_eq!(parse_echo_reply(&pkt[..25]), None);
        assert_eq!(parse_echo_reply(&[]), None);
        let mut v6 = pkt;
        v6[0] = 0x65;
        assert_eq!(parse_echo_reply(&v6), None);
    }
}
