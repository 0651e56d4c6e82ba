//! IPv4 and UDP headers for messages sent at the link layer (AF_PACKET), where the kernel
//! adds no IP header: replies to clients that have no address yet (RFC 2131 4.1).

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
