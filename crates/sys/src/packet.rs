//! AF_PACKET sockets: sending complete IPv4 datagrams to a chosen link-layer address, and
//! ARP probes with observation of ARP traffic.
//!
//! Guarantees:
//! * [`PacketSender`] sends exactly the bytes given as the payload of one Ethernet frame of
//!   type IPv4 (the kernel adds the Ethernet header from the given MAC and the interface's
//!   own MAC), one frame per `sendto` or up to 64 per `sendmmsg`
//!   ([`PacketSender::send_many`]). It never consults or changes the neighbour (ARP) table, and it receives
//!   nothing (its socket is opened with protocol 0, so no incoming frame is queued to it).
//! * [`ArpSocket::send_probe`] sends an RFC 5227 ARP probe, [`ArpSocket::send_probes`] many
//!   of them with one `sendmmsg` per 64, reporting each one the kernel refused;
//!   [`ArpSocket::recv`] reports only ARP packets received from the wire (never the host's
//!   own outgoing ARP) whose sender IP is not 0.0.0.0; [`ArpSocket::receive_drops`] counts
//!   those the kernel dropped before we could read them (a full receive queue).
//! * Both sockets need CAP_NET_RAW; without it, `new()` fails with a
//!   [`SysError::PermissionDenied`] that says so.
//! * Nothing on the send/receive paths allocates.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::sock::{self, Zeroable};
use crate::SysError;

/// The Ethernet broadcast address.
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];

/// Length of an Ethernet/IPv4 ARP packet.
pub const ARP_LEN: usize = 28;

/// Frames skipped per `recv` call before returning `None` (so a flood cannot pin the caller).
const MAX_SKIPPED: usize = 64;

fn sockaddr_ll(ifindex: u32, protocol: u16, mac: [u8; 6]) -> libc::sockaddr_ll {
    let mut sa = libc::sockaddr_ll::zeroed();
    sa.sll_family = libc::AF_PACKET as libc::c_ushort;
    sa.sll_protocol = protocol.to_be();
    sa.sll_ifindex = ifindex as libc::c_int;
    sa.sll_halen = 6;
    sa.sll_addr[..6].copy_from_slice(&mac);
    sa
}

fn open_packet_socket(protocol: u16) -> Result<OwnedFd, SysError> {
    sock::socket(libc::AF_PACKET, libc::SOCK_DGRAM, libc::c_int::from(protocol.to_be()))
        .map_err(|e| SysError::from_io("opening an AF_PACKET socket", "CAP_NET_RAW", e))
}

/// Sends complete IPv4 datagrams (IP header included, built by the caller) as Ethernet frames
/// to a given MAC address on a given interface. One sender serves all interfaces.
#[derive(Debug)]
pub struct PacketSender {
    fd: OwnedFd,
}

impl PacketSender {
    /// Opens the AF_PACKET socket. Needs CAP_NET_RAW.
    pub fn new() -> Result<Self, SysError> {
        // Protocol 0: a send-only socket; the protocol is given per packet in sockaddr_ll.
        let fd = open_packet_socket(0)?;
        Ok(PacketSender { fd })
    }

    /// Sends `datagram` (a complete IPv4 packet) in a frame to `dst_mac` out of interface
    /// `ifindex`. Returns the number of bytes sent (the datagram length). A datagram larger
    /// than the interface MTU fails with EMSGSIZE; a full queue with `WouldBlock`.
    pub fn send(&self, ifindex: u32, dst_mac: [u8; 6], datagram: &[u8]) -> io::Result<usize> {
        let sa = sockaddr_ll(ifindex, libc::ETH_P_IP as u16, dst_mac);
        sock::sendto(&self.fd, datagram, &sa)
    }
}

impl PacketSender {
    /// Sends each `(ifindex, dst_mac, datagram)` of `frames` as [`PacketSender::send`]
    /// does, up to 64 with one `sendmmsg`. Returns how many the kernel took; each one it
    /// refused is reported to `failed(index in frames, error)` and skipped, and the ones
    /// after it are still sent. Never blocks, allocates nothing.
    pub fn send_many<'a>(
        &self,
        frames: impl Iterator<Item = (u32, [u8; 6], &'a [u8])>,
        failed: &mut dyn FnMut(usize, io::Error),
    ) -> usize {
        let frames =
            frames.map(|(ifindex, mac, datagram)| (datagram, sockaddr_ll(ifindex, libc::ETH_P_IP as u16, mac)));
        sock::send_each(&self.fd, frames, failed)
    }
}

impl AsRawFd for PacketSender {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for PacketSender {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// An ARP packet seen on the wire whose sender IP is set: some host uses `sender_ip`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ArpSeen {
    /// Interface the packet arrived on.
    pub ifindex: u32,
    /// Sender protocol address (never 0.0.0.0).
    pub sender_ip: Ipv4Addr,
    /// Sender hardware address.
    pub sender_mac: [u8; 6],
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
    /// True for an ARP reply, false for a request (including announcements).
    pub is_reply: bool,
}

/// One ARP probe to send: for `target`, out of `ifindex`, from `our_mac`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpProbe {
    /// Interface to send it out of.
    pub ifindex: u32,
    /// Our MAC on that interface (sender hardware address).
    pub our_mac: [u8; 6],
    /// The address asked for.
    pub target: Ipv4Addr,
}

/// Receive (and send) buffer asked for the probe sockets: answers to a storm's worth of
/// probes wait here between two turns of the caller's loop (SO_RCVBUFFORCE when permitted,
/// else SO_RCVBUF up to net.core.rmem_max).
pub const PROBE_SOCKET_BUFFER: i32 = 4 << 20;

/// An AF_PACKET socket for ARP on all interfaces: sends probes, observes ARP traffic.
#[derive(Debug)]
pub struct ArpSocket {
    fd: OwnedFd,
}

impl ArpSocket {
    /// Opens the socket (ARP frames of every interface are queued to it), with a receive
    /// buffer of [`PROBE_SOCKET_BUFFER`] where permitted. Needs CAP_NET_RAW.
    pub fn new() -> Result<Self, SysError> {
        let fd = open_packet_socket(libc::ETH_P_ARP as u16)?;
        sock::set_large_buffers(&fd, PROBE_SOCKET_BUFFER);
        Ok(ArpSocket { fd })
    }

    /// Sends an ARP probe for each of `probes` (as [`ArpSocket::send_probe`] does), up to 64
    /// with one `sendmmsg`. Returns how many the kernel took; each one it refused is
    /// reported to `failed(index into probes, error)`. Allocates nothing.
    pub fn send_probes(&self, probes: &[ArpProbe], failed: &mut dyn FnMut(usize, io::Error)) -> usize {
        let mut sent = 0;
        for (c, chunk) in probes.chunks(sock::SEND_BATCH).enumerate() {
            let mut pkts = [[0u8; ARP_LEN]; sock::SEND_BATCH];
            let mut addrs = [libc::sockaddr_ll::zeroed(); sock::SEND_BATCH];
            for ((p, pkt), sa) in chunk.iter().zip(pkts.iter_mut()).zip(addrs.iter_mut()) {
                *pkt = build_arp(1, p.our_mac, Ipv4Addr::UNSPECIFIED, [0; 6], p.target);
                *sa = sockaddr_ll(p.ifindex, libc::ETH_P_ARP as u16, BROADCAST_MAC);
            }
            let n = chunk.len();
            let base = c * sock::SEND_BATCH;
            sent += sock::send_many(&self.fd, &pkts[..n], &addrs[..n], &mut |i, e| failed(base + i, e));
        }
        sent
    }

    /// Frames the kernel dropped before they could be read (a full receive queue) since the
    /// socket was opened; wraps at 2^32. An answer to a probe may have been among them.
    pub fn receive_drops(&self) -> io::Result<u32> {
        sock::receive_drops(&self.fd)
    }

    /// Sends an ARP probe for `target` out of `ifindex`, broadcast: ARP request with sender
    /// MAC `our_mac`, sender IP 0.0.0.0, target MAC 00:00:00:00:00:00 (RFC 5227 2.1.1).
    pub fn send_probe(&self, ifindex: u32, our_mac: [u8; 6], target: Ipv4Addr) -> io::Result<()> {
        let pkt = build_arp(1, our_mac, Ipv4Addr::UNSPECIFIED, [0; 6], target);
        let sa = sockaddr_ll(ifindex, libc::ETH_P_ARP as u16, BROADCAST_MAC);
        sock::sendto(&self.fd, &pkt, &sa).map(|_| ())
    }

    /// Non-blocking: the next ARP request or reply received from the wire whose sender IP is
    /// not 0.0.0.0. `None` when nothing (more) is waiting; also after skipping 64 frames that
    /// were not of interest, so call again when the socket stays readable. `buf` must hold at
    /// least [`ARP_LEN`] (28) bytes.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<ArpSeen>> {
        if buf.len() < ARP_LEN {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "ARP receive buffer shorter than 28 bytes"));
        }
        for _ in 0..MAX_SKIPPED {
            let mut sa = libc::sockaddr_ll::zeroed();
            let n = match sock::recvfrom_trunc(&self.fd, buf, &mut sa) {
                Ok(n) => n,
                Err(e) if sock::is_would_block(&e) => return Ok(None),
                Err(e) => return Err(e),
            };
            if sa.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            let n = n.min(buf.len());
            if let Some(seen) = parse_arp(&buf[..n], sa.sll_ifindex.max(0) as u32) {
                return Ok(Some(seen));
            }
        }
        Ok(None)
    }
}

impl AsRawFd for ArpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for ArpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// An Ethernet/IPv4 ARP packet (`op` 1 = request, 2 = reply).
fn build_arp(op: u16, sha: [u8; 6], spa: Ipv4Addr, tha: [u8; 6], tpa: Ipv4Addr) -> [u8; ARP_LEN] {
    let mut p = [0u8; ARP_LEN];
    p[0..2].copy_from_slice(&1u16.to_be_bytes()); // htype: Ethernet
    p[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // ptype: IPv4
    p[4] = 6; // hlen
    p[5] = 4; // plen
    p[6..8].copy_from_slice(&op.to_be_bytes());
    p[8..14].copy_from_slice(&sha);
    p[14..18].copy_from_slice(&spa.octets());
    p[18..24].copy_from_slice(&tha);
    p[24..28].copy_from_slice(&tpa.octets());
    p
}

/// Parses an ARP packet; `Some` for an Ethernet/IPv4 request or reply with a sender IP set.
fn parse_arp(p: &[u8], ifindex: u32) -> Option<ArpSeen> {
    if p.len() < ARP_LEN {
        return None;
    }
    let u16_at = |i: usize| u16::from_be_bytes([p[i], p[i + 1]]);
    if u16_at(0) != 1 || u16_at(2) != 0x0800 || p[4] != 6 || p[5] != 4 {
        return None;
    }
    let is_reply = match u16_at(6) {
        1 => false,
        2 => true,
        _ => return None,
    };
    let ip_at = |i: usize| Ipv4Addr::new(p[i], p[i + 1], p[i + 2], p[i + 3]);
    let sender_ip = ip_at(14);
    if sender_ip.is_unspecified() {
        return None;
    }
    let mut sender_mac = [0u8; 6];
    sender_mac.copy_from_slice(&p[8..14]);
    Some(ArpSeen { ifindex, sender_ip, sender_mac, target_ip: ip_at(24), is_reply })
}

/// Bind an AF_PACKET socket the caller created (typically SOCK_RAW, with a BPF filter
/// attached before binding so no unfiltered frame is queued) to one interface and
/// EtherType: from then on it receives that traffic on that interface only. Used by the
/// load generator, which emulates many clients with their own MAC addresses.
pub fn bind_packet_socket(fd: &OwnedFd, ifindex: u32, ethertype: u16) -> io::Result<()> {
    let sa = sockaddr_ll(ifindex, ethertype, [0; 6]);
    // SAFETY: `sa` is a valid, initialised sockaddr_ll and the length passed is its exact
    // size; the kernel only reads it.
    let rc = unsafe {
        libc::bind(fd.as_raw_fd(), (&sa as *const libc::sockaddr_ll).cast(), sock::socklen_of::<libc::sockaddr_ll>())
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Put interface `ifindex` in promiscuous mode for as long as the AF_PACKET socket `fd` is
/// open (PACKET_ADD_MEMBERSHIP with PACKET_MR_PROMISC; the kernel drops the membership
/// when the socket closes), so frames to any unicast MAC are received.
pub fn add_promiscuous_membership(fd: &OwnedFd, ifindex: u32) -> io::Result<()> {
    let mreq = libc::packet_mreq {
        mr_ifindex: ifindex as libc::c_int,
        mr_type: libc::PACKET_MR_PROMISC as libc::c_ushort,
        mr_alen: 0,
        mr_address: [0; 8],
    };
    sock::setsockopt(fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    #[test]
    fn probe_layout() {
        let p = build_arp(1, MAC, Ipv4Addr::UNSPECIFIED, [0; 6], Ipv4Addr::new(10, 0, 0, 7));
        assert_eq!(&p[0..8], &[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(&p[8..14], &MAC);
        assert_eq!(&p[14..18], &[0, 0, 0, 0]);
        assert_eq!(&p[18..24], &[0; 6]);
        assert_eq!(&p[24..28], &[10, 0, 0, 7]);
        // A probe (sender IP 0) is not reported.
        assert_eq!(parse_arp(&p, 3), None);
    }

    #[test]
    fn parse_reply_and_request() {
        let r = build_arp(2, MAC, Ipv4Addr::new(10, 0, 0, 7), [0; 6], Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            parse_arp(&r, 3),
            Some(ArpSeen {
                ifindex: 3,
                sender_ip: Ipv4Addr::new(10, 0, 0, 7),
                sender_mac: MAC,
                target_ip: Ipv4Addr::UNSPECIFIED,
                is_reply: true,
            })
        );
        let q = build_arp(1, MAC, Ipv4Addr::new(10, 0, 0, 8), [0; 6], Ipv4Addr::new(10, 0, 0, 9));
        let seen = parse_arp(&q, 4).expect("request with sender ip");
        assert!(!seen.is_reply);
        assert_eq!(seen.target_ip, Ipv4Addr::new(10, 0, 0, 9));
        // Wrong op, wrong hardware type, too short.
        let mut bad = q;
        bad[7] = 3;
        assert_eq!(parse_arp(&bad, 4), None);
        let mut bad = q;
        bad[1] = 6;
        assert_eq!(parse_arp(&bad, 4), None);
        assert_eq!(parse_arp(&q[..27], 4), None);
    }
}
