//! Ethernet framing for emulated clients: DHCP messages wrapped in Ethernet + IPv4 + UDP
//! with a per-client source MAC, parsing of received frames, and ARP replies on behalf of
//! clients that hold an address.
//!
//! Guarantees: nothing here panics on any input (received frames are bounds-checked before
//! every read), and nothing allocates.

use std::net::Ipv4Addr;

use cdra_wire::ipv4::{write_ipv4_udp, Ipv4UdpHeader, IPV4_UDP_HEADER_LEN};
use cdra_wire::WireError;

/// Ethernet header length (no VLAN tag).
pub const ETH_HLEN: usize = 14;
/// EtherType IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// Where the DHCP message starts in a frame built here.
pub const DHCP_OFFSET: usize = ETH_HLEN + IPV4_UDP_HEADER_LEN;
/// Capacity of one outgoing frame buffer (our messages are 300-400 bytes of DHCP).
pub const FRAME_CAP: usize = 640;
/// Ethernet broadcast.
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];
/// Length of an Ethernet frame carrying an ARP packet (without padding).
pub const ARP_FRAME_LEN: usize = ETH_HLEN + 28;

/// DHCP client port.
pub const CLIENT_PORT: u16 = 68;
/// DHCP server port.
pub const SERVER_PORT: u16 = 67;

/// Addresses of one outgoing UDP frame.
#[derive(Debug, Clone, Copy)]
pub struct UdpFrameSpec {
    /// Ethernet destination.
    pub dst_mac: [u8; 6],
    /// Ethernet source (the emulated client's MAC).
    pub src_mac: [u8; 6],
    /// IPv4 source.
    pub src_ip: Ipv4Addr,
    /// IPv4 destination.
    pub dst_ip: Ipv4Addr,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
}

/// Completes a frame whose DHCP payload of `payload_len` bytes is already in
/// `buf[DHCP_OFFSET..]`: writes the Ethernet, IPv4 and UDP headers (with checksums).
/// Returns the frame length.
pub fn finish_udp_frame(buf: &mut [u8], spec: &UdpFrameSpec, payload_len: usize) -> Result<usize, WireError> {
    let eth = buf.get_mut(..ETH_HLEN).ok_or(WireError::NoSpace)?;
    eth[0..6].copy_from_slice(&spec.dst_mac);
    eth[6..12].copy_from_slice(&spec.src_mac);
    eth[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let ip = buf.get_mut(ETH_HLEN..).ok_or(WireError::NoSpace)?;
    let h =
        Ipv4UdpHeader { src: spec.src_ip, dst: spec.dst_ip, src_port: spec.src_port, dst_port: spec.dst_port, ttl: 64 };
    let n = write_ipv4_udp(ip, h, payload_len)?;
    Ok(ETH_HLEN + n)
}

/// A UDP datagram received in an Ethernet frame.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(test), allow(dead_code))]
pub struct UdpFrame<'a> {
    /// Ethernet source.
    pub src_mac: [u8; 6],
    /// Ethernet destination.
    pub dst_mac: [u8; 6],
    /// IPv4 source.
    pub src_ip: Ipv4Addr,
    /// IPv4 destination.
    pub dst_ip: Ipv4Addr,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// UDP payload (bounded by the UDP length field).
    pub payload: &'a [u8],
}

fn mac_at(b: &[u8], at: usize) -> Option<[u8; 6]> {
    let s = b.get(at..at + 6)?;
    let mut m = [0u8; 6];
    m.copy_from_slice(s);
    Some(m)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn ip_at(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    let s = b.get(at..at + 4)?;
    Some(Ipv4Addr::new(s[0], s[1], s[2], s[3]))
}

/// Parses an Ethernet frame carrying an unfragmented IPv4/UDP datagram. `None` for
/// anything else (other EtherTypes, fragments, bad lengths).
pub fn parse_udp(frame: &[u8]) -> Option<UdpFrame<'_>> {
    if u16_at(frame, 12)? != ETHERTYPE_IPV4 {
        return None;
    }
    let ip = frame.get(ETH_HLEN..)?;
    let vihl = *ip.first()?;
    if vihl >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(vihl & 0x0f) * 4;
    if ihl < 20 || *ip.get(9)? != 17 {
        return None;
    }
    // More-fragments flag or a fragment offset: not a whole datagram.
    if u16_at(ip, 6)? & 0x3fff != 0 {
        return None;
    }
    let total = usize::from(u16_at(ip, 2)?);
    let ip = ip.get(..total.min(ip.len()))?;
    let udp = ip.get(ihl..)?;
    let udp_len = usize::from(u16_at(udp, 4)?);
    if udp_len < 8 {
        return None;
    }
    let payload = udp.get(8..udp_len.min(udp.len()))?;
    Some(UdpFrame {
        dst_mac: mac_at(frame, 0)?,
        src_mac: mac_at(frame, 6)?,
        src_ip: ip_at(ip, 12)?,
        dst_ip: ip_at(ip, 16)?,
        src_port: u16_at(udp, 0)?,
        dst_port: u16_at(udp, 2)?,
        payload,
    })
}

/// An ARP request seen on the wire (Ethernet/IPv4 ARP, op 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRequest {
    /// Who asks (sender hardware address).
    pub sender_mac: [u8; 6],
    /// Sender protocol address (0.0.0.0 for an RFC 5227 probe).
    pub sender_ip: Ipv4Addr,
    /// The address asked for.
    pub target_ip: Ipv4Addr,
}

/// Parses an ARP request frame.
pub fn parse_arp_request(frame: &[u8]) -> Option<ArpRequest> {
    if u16_at(frame, 12)? != ETHERTYPE_ARP {
        return None;
    }
    let a = frame.get(ETH_HLEN..ETH_HLEN + 28)?;
    // htype Ethernet, ptype IPv4, hlen 6, plen 4, op request.
    if u16_at(a, 0)? != 1 || u16_at(a, 2)? != ETHERTYPE_IPV4 || a[4] != 6 || a[5] != 4 || u16_at(a, 6)? != 1 {
        return None;
    }
    Some(ArpRequest { sender_mac: mac_at(a, 8)?, sender_ip: ip_at(a, 14)?, target_ip: ip_at(a, 24)? })
}

/// Writes an ARP reply "`our_ip` is at `our_mac`" to `req`'s sender into `buf`; returns the
/// frame length (0 if `buf` is too short). An RFC 5227 probe (sender IP 0.0.0.0) is answered
/// by broadcast, as RFC 5227 2.1.1 expects of a host that uses the address.
pub fn write_arp_reply(buf: &mut [u8], our_mac: [u8; 6], our_ip: Ipv4Addr, req: &ArpRequest) -> usize {
    let Some(f) = buf.get_mut(..ARP_FRAME_LEN) else {
        return 0;
    };
    let dst = if req.sender_ip.is_unspecified() { BROADCAST_MAC } else { req.sender_mac };
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&our_mac);
    f[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    let a = &mut f[ETH_HLEN..];
    a[0..2].copy_from_slice(&1u16.to_be_bytes());
    a[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    a[4] = 6;
    a[5] = 4;
    a[6..8].copy_from_slice(&2u16.to_be_bytes());
    a[8..14].copy_from_slice(&our_mac);
    a[14..18].copy_from_slice(&our_ip.octets());
    a[18..24].copy_from_slice(&req.sender_mac);
    a[24..28].copy_from_slice(&req.sender_ip.octets());
    ARP_FRAME_LEN
}

/// Parses aa:bb:cc:dd:ee:ff.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in m.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_frame_round_trip() {
        let mut buf = [0u8; FRAME_CAP];
        buf[DHCP_OFFSET..DHCP_OFFSET + 5].copy_from_slice(b"hello");
        let spec = UdpFrameSpec {
            dst_mac: BROADCAST_MAC,
            src_mac: [2, 0, 0, 0, 0, 9],
            src_ip: Ipv4Addr::UNSPECIFIED,
            dst_ip: Ipv4Addr::BROADCAST,
            src_port: 68,
            dst_port: 67,
        };
        let n = finish_udp_frame(&mut buf, &spec, 5).expect("fits");
        assert_eq!(n, DHCP_OFFSET + 5);
        let f = parse_udp(&buf[..n]).expect("parses");
        assert_eq!(f.src_mac, [2, 0, 0, 0, 0, 9]);
        assert_eq!(f.dst_mac, BROADCAST_MAC);
        assert_eq!(f.dst_ip, Ipv4Addr::BROADCAST);
        assert_eq!((f.src_port, f.dst_port), (68, 67));
        assert_eq!(f.payload, b"hello");
        // Ethernet padding after the IP datagram is not part of the payload.
        let mut padded = buf;
        padded[n..n + 10].fill(0xee);
        assert_eq!(parse_udp(&padded[..n + 10]).expect("parses").payload, b"hello");
        // Truncations never panic.
        for cut in 0..n {
            let _ = parse_udp(&buf[..cut]);
        }
        // A fragment is refused.
        let mut frag = buf;
        frag[ETH_HLEN + 6] = 0x20;
        assert!(parse_udp(&frag[..n]).is_none());
    }

    #[test]
    fn arp_request_and_reply() {
        let req = ArpRequest {
            sender_mac: [2, 0, 0, 0, 0, 1],
            sender_ip: Ipv4Addr::new(10, 0, 0, 1),
            target_ip: Ipv4Addr::new(10, 0, 0, 7),
        };
        let mut buf = [0u8; 64];
        let n = write_arp_reply(&mut buf, [2, 0, 0, 0, 0, 7], Ipv4Addr::new(10, 0, 0, 7), &req);
        assert_eq!(n, ARP_FRAME_LEN);
        assert_eq!(&buf[0..6], &req.sender_mac);
        assert_eq!(&buf[ETH_HLEN + 6..ETH_HLEN + 8], &[0, 2]);
        // Turn it into a request and parse it back.
        let mut q = buf;
        q[ETH_HLEN + 7] = 1;
        let parsed = parse_arp_request(&q[..n]).expect("request");
        assert_eq!(parsed.sender_ip, Ipv4Addr::new(10, 0, 0, 7));
        assert_eq!(parsed.target_ip, Ipv4Addr::new(10, 0, 0, 1));
        for cut in 0..n {
            let _ = parse_arp_request(&q[..cut]);
        }
        // A probe is answered by broadcast.
        let probe = ArpRequest { sender_ip: Ipv4Addr::UNSPECIFIED, ..req };
        write_arp_reply(&mut buf, [2, 0, 0, 0, 0, 7], Ipv4Addr::new(10, 0, 0, 7), &probe);
        assert_eq!(&buf[0..6], &BROADCAST_MAC);
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:cd:00:00:01:ff"), Some([2, 0xcd, 0, 0, 1, 0xff]));
        assert_eq!(parse_mac("02:cd:00:00:01"), None);
        assert_eq!(parse_mac("02:cd:00:00:01:ff:00"), None);
    }
}
