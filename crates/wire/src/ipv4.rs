//! IPv4 and UDP headers at the link layer (AF_PACKET), where the kernel does not handle
//! them for us: written for replies to clients that have no address yet (RFC 2131 4.1),
//! and checked for client requests read from a downstream link with their frame's source
//! address ([`Ipv4Udp::new_checked`]).

use core::net::Ipv4Addr;

use crate::error::WireError;

/// IPv4 header (no options) plus UDP header.
pub const IPV4_UDP_HEADER_LEN: usize = 28;

/// One's-complement sum of 16-bit words (RFC 1071).
fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        if let &[a, b] = c {
            acc += u32::from(u16::from_be_bytes([a, b]));
        }
    }
    if let &[last] = chunks.remainder() {
        acc += u32::from(last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Parameters of the headers to write.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4UdpHeader {
    /// IPv4 source.
    pub src: Ipv4Addr,
    /// IPv4 destination.
    pub dst: Ipv4Addr,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// Time to live.
    pub ttl: u8,
}

/// Write IPv4 + UDP headers into `buf[..28]` for a payload already in
/// `buf[28..28 + payload_len]`, with both checksums. Returns the datagram length.
pub fn write_ipv4_udp(buf: &mut [u8], h: Ipv4UdpHeader, payload_len: usize) -> Result<usize, WireError> {
    // checked: a payload_len near usize::MAX must not overflow (no panic on any input).
    let total = match payload_len.checked_add(IPV4_UDP_HEADER_LEN) {
        Some(t) if t <= usize::from(u16::MAX) && t <= buf.len() => t,
        _ => return Err(WireError::NoSpace),
    };
    let udp_len = (8 + payload_len) as u16;
    let total16 = total as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total16.to_be_bytes());
    ip[8] = h.ttl;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&h.src.octets());
    ip[16..20].copy_from_slice(&h.dst.octets());
    let ip_sum = fold(sum16(&ip, 0));
    ip[10..12].copy_from_slice(&ip_sum.to_be_bytes());

    let mut udp = [0u8; 8];
    udp[0..2].copy_from_slice(&h.src_port.to_be_bytes());
    udp[2..4].copy_from_slice(&h.dst_port.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    // Pseudo-header (RFC 768): src, dst, zero, protocol, UDP length.
    let mut acc = sum16(&h.src.octets(), 0);
    acc = sum16(&h.dst.octets(), acc);
    acc += 17 + u32::from(udp_len);
    acc = sum16(&udp, acc);
    acc = sum16(buf.get(IPV4_UDP_HEADER_LEN..total).ok_or(WireError::NoSpace)?, acc);
    let mut udp_sum = fold(acc);
    if udp_sum == 0 {
        udp_sum = 0xffff; // RFC 768: a computed zero is sent as all ones.
    }
    udp[6..8].copy_from_slice(&udp_sum.to_be_bytes());

    buf.get_mut(..20).ok_or(WireError::NoSpace)?.copy_from_slice(&ip);
    buf.get_mut(20..28).ok_or(WireError::NoSpace)?.copy_from_slice(&udp);
    Ok(total)
}

/// Why a received IPv4 packet is not a UDP datagram we read (counted by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameError {
    /// Shorter than its headers, or not IPv4.
    NotIpv4,
    /// The IPv4 header length or total length does not fit the packet.
    BadLength,
    /// The IPv4 header checksum is wrong (RFC 791).
    BadIpChecksum,
    /// A fragment (DHCP messages are never fragmented in practice; reassembly is not ours).
    Fragment,
    /// Not UDP.
    NotUdp,
    /// The UDP checksum is present and wrong (RFC 768).
    BadUdpChecksum,
}

impl FrameError {
    /// Every error, in declaration order (`e as usize` is its index here).
    pub const ALL: [FrameError; 6] = [
        FrameError::NotIpv4,
        FrameError::BadLength,
        FrameError::BadIpChecksum,
        FrameError::Fragment,
        FrameError::NotUdp,
        FrameError::BadUdpChecksum,
    ];

    /// A stable, lowercase label (metrics, logs).
    pub const fn label(self) -> &'static str {
        match self {
            FrameError::NotIpv4 => "not_ipv4",
            FrameError::BadLength => "bad_length",
            FrameError::BadIpChecksum => "bad_ip_checksum",
            FrameError::Fragment => "fragment",
            FrameError::NotUdp => "not_udp",
            FrameError::BadUdpChecksum => "bad_udp_checksum",
        }
    }
}

/// Whether [`Ipv4Udp::new_checked_with`] verifies the UDP checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpChecksum {
    /// Verify it (when present).
    Verify,
    /// Take it as it is.
    Skip,
}

/// A checked view of an IPv4 packet carrying a UDP datagram, as a packet socket delivers it
/// (the IP header first). After [`Ipv4Udp::new_checked`] every accessor is infallible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Udp<'a> {
    /// IPv4 source.
    pub src: Ipv4Addr,
    /// IPv4 destination.
    pub dst: Ipv4Addr,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// The UDP payload.
    pub payload: &'a [u8],
}

impl<'a> Ipv4Udp<'a> {
    /// Check `packet` as the kernel's IP and UDP layers would before handing a datagram to a
    /// UDP socket: version 4, header and total lengths within the packet (bytes after the
    /// total length, such as Ethernet padding, are ignored), header checksum (RFC 791), not
    /// a fragment, protocol UDP, UDP length within the packet, UDP checksum when present
    /// (RFC 768: zero means none was computed).
    pub fn new_checked(packet: &'a [u8]) -> Result<Self, FrameError> {
        Self::new_checked_with(packet, UdpChecksum::Verify)
    }

    /// [`Ipv4Udp::new_checked`], with the UDP checksum verified or not: a packet read off a
    /// link the kernel says it has verified already, or whose checksum is not filled in yet
    /// (sent with checksum offload over a virtual link), is taken as it is.
    pub fn new_checked_with(packet: &'a [u8], udp_checksum: UdpChecksum) -> Result<Self, FrameError> {
        let first = *packet.first().ok_or(FrameError::NotIpv4)?;
        if first >> 4 != 4 {
            return Err(FrameError::NotIpv4);
        }
        let ihl = usize::from(first & 0x0f) * 4;
        let header = packet.get(..ihl).filter(|_| ihl >= 20).ok_or(FrameError::BadLength)?;
        let be16 = |b: &[u8], i: usize| -> u16 {
            u16::from_be_bytes([b.get(i).copied().unwrap_or(0), b.get(i + 1).copied().unwrap_or(0)])
        };
        let total = usize::from(be16(header, 2));
        let packet = packet.get(..total).filter(|_| total >= ihl + 8).ok_or(FrameError::BadLength)?;
        if fold(sum16(header, 0)) != 0 {
            return Err(FrameError::BadIpChecksum);
        }
        // Flags and fragment offset: MF set or an offset means a fragment.
        if be16(header, 6) & 0x3fff != 0 {
            return Err(FrameError::Fragment);
        }
        if header.get(9) != Some(&17) {
            return Err(FrameError::NotUdp);
        }
        let addr = |i: usize| -> Ipv4Addr {
            let b: [u8; 4] = header.get(i..i + 4).and_then(|b| b.try_into().ok()).unwrap_or([0; 4]);
            Ipv4Addr::from(b)
        };
        let (src, dst) = (addr(12), addr(16));
        let udp = packet.get(ihl..).ok_or(FrameError::BadLength)?;
        let udp_len = usize::from(be16(udp, 4));
        let udp = udp.get(..udp_len).filter(|_| udp_len >= 8).ok_or(FrameError::BadLength)?;
        if udp_checksum == UdpChecksum::Verify && be16(udp, 6) != 0 {
            let mut acc = sum16(&src.octets(), 0);
            acc = sum16(&dst.octets(), acc);
            acc += 17 + udp_len as u32;
            if fold(sum16(udp, acc)) != 0 {
                return Err(FrameError::BadUdpChecksum);
            }
        }
        Ok(Ipv4Udp { src, dst, src_port: be16(udp, 0), dst_port: be16(udp, 2), payload: udp.get(8..).unwrap_or(&[]) })
    }
}
