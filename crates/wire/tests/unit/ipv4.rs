//! `ipv4::write_ipv4_udp`, checked against an independent checksum.

use core::net::Ipv4Addr;

use cdra_wire::ipv4::{write_ipv4_udp, Ipv4UdpHeader, IPV4_UDP_HEADER_LEN};
use cdra_wire::WireError;

use crate::common::*;

/// RFC 1071 by the book: sum 16-bit big-endian words in u64, pad an odd byte with zero,
/// fold, complement.
fn rfc1071(data: &[u8]) -> u16 {
    let mut padded = data.to_vec();
    if padded.len() % 2 == 1 {
        padded.push(0);
    }
    let mut sum: u64 = padded.chunks(2).map(|w| u64::from(w[0]) * 256 + u64::from(w[1])).sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn pseudo_and_udp(pkt: &[u8]) -> Vec<u8> {
    let udp = &pkt[20..];
    let mut v = Vec::new();
    v.extend_from_slice(&pkt[12..20]);
    v.extend_from_slice(&[0, 17]);
    v.extend_from_slice(&(udp.len() as u16).to_be_bytes());
    v.extend_from_slice(udp);
    v
}

fn header() -> Ipv4UdpHeader {
    Ipv4UdpHeader { src: Ipv4Addr::from(SERVER), dst: Ipv4Addr::BROADCAST, src_port: 67, dst_port: 68, ttl: 64 }
}

fn send(payload: &[u8], h: Ipv4UdpHeader) -> Vec<u8> {
    let mut buf = vec![0xccu8; IPV4_UDP_HEADER_LEN + payload.len()];
    buf[IPV4_UDP_HEADER_LEN..].copy_from_slice(payload);
    let n = write_ipv4_udp(&mut buf, h, payload.len()).unwrap();
    assert_eq!(n, buf.len());
    buf
}

#[test]
fn headers_and_checksums_of_a_dhcp_reply() {
    let payload = kea_reply(5);
    let pkt = send(&payload, header());
    // IPv4: version 4, IHL 5, total length, TTL, UDP, addresses.
    assert_eq!(pkt[0], 0x45);
    assert_eq!(u16::from_be_bytes([pkt[2], pkt[3]]) as usize, 28 + payload.len());
    assert_eq!((pkt[8], pkt[9]), (64, 17));
    assert_eq!(&pkt[12..16], &SERVER);
    assert_eq!(&pkt[16..20], &[255, 255, 255, 255]);
    // The header checksum verifies to 0 and equals the one computed over a zeroed field.
    assert_eq!(rfc1071(&pkt[..20]), 0);
    let mut zeroed = pkt[..20].to_vec();
    zeroed[10..12].fill(0);
    assert_eq!(rfc1071(&zeroed).to_be_bytes(), [pkt[10], pkt[11]]);
    // UDP: ports, length, checksum over the pseudo-header.
    assert_eq!(u16::from_be_bytes([pkt[20], pkt[21]]), 67);
    assert_eq!(u16::from_be_bytes([pkt[22], pkt[23]]), 68);
    assert_eq!(u16::from_be_bytes([pkt[24], pkt[25]]) as usize, 8 + payload.len());
    assert_eq!(rfc1071(&pseudo_and_udp(&pkt)), 0);
    let mut z = pkt.clone();
    z[26..28].fill(0);
    assert_eq!(rfc1071(&pseudo_and_udp(&z)).to_be_bytes(), [pkt[26], pkt[27]]);
    assert_eq!(&pkt[28..], &payload[..]);
}

#[test]
fn known_answer_header_checksum() {
    // 45 00 0030 0000 0000 40 11 ---- c0a80101 ffffffff, summed by hand:
    // 4500+0030+0000+0000+4011+c0a8+0101+ffff+ffff = 0x346e8 -> 0x46e8+3 = 0x46eb -> !0x46eb = 0xb914
    let pkt = send(&[0u8; 20], header());
    assert_eq!(&pkt[..12], &[0x45, 0, 0x00, 0x30, 0, 0, 0, 0, 64, 17, 0xb9, 0x14]);
}

#[test]
fn odd_lengths_and_many_addresses() {
    for len in [0usize, 1, 3, 241, 301, 577, 1473] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
        for (src, dst, ttl) in [
            (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, 1),
            (Ipv4Addr::new(10, 1, 2, 1), Ipv4Addr::new(192, 168, 1, 100), 255),
            (Ipv4Addr::new(255, 255, 255, 255), Ipv4Addr::new(255, 255, 255, 255), 0),
        ] {
            let h = Ipv4UdpHeader { src, dst, src_port: 67, dst_port: 67, ttl };
            let pkt = send(&payload, h);
            assert_eq!(rfc1071(&pkt[..20]), 0, "len {len}");
            assert_eq!(rfc1071(&pseudo_and_udp(&pkt)), 0, "len {len}");
        }
    }
}

#[test]
fn computed_zero_udp_checksum_is_sent_as_ffff() {
    // Find a 2-byte payload whose UDP checksum computes to 0 (one exists: the sum can take
    // any value), then check it goes out as 0xffff, which also verifies.
    let h = header();
    let mut found = false;
    for v in 0..=u16::MAX {
        let mut pkt = vec![0u8; 30];
        pkt[28..30].copy_from_slice(&v.to_be_bytes());
        write_ipv4_udp(&mut pkt, h, 2).unwrap();
        let mut z = pkt.clone();
        z[26..28].fill(0);
        if rfc1071(&pseudo_and_udp(&z)) == 0 {
            assert_eq!([pkt[26], pkt[27]], [0xff, 0xff]);
            assert_eq!(rfc1071(&pseudo_and_udp(&pkt)), 0);
            found = true;
            break;
        }
    }
    assert!(found);
}

#[test]
fn no_space() {
    let mut buf = [0u8; 27];
    assert_eq!(write_ipv4_udp(&mut buf, header(), 0), Err(WireError::NoSpace));
    let mut buf = [0u8; 300];
    assert_eq!(write_ipv4_udp(&mut buf, header(), 273), Err(WireError::NoSpace));
    assert_eq!(write_ipv4_udp(&mut buf, header(), 272), Ok(300));
    // Absurd lengths are an error, not an overflow panic.
    for n in [usize::MAX, usize::MAX - 27, usize::MAX - 28, usize::MAX / 2] {
        assert_eq!(write_ipv4_udp(&mut buf, header(), n), Err(WireError::NoSpace));
    }
    // Larger than an IPv4 datagram can be.
    let mut big = vec![0u8; 70_000];
    assert_eq!(write_ipv4_udp(&mut big, header(), 65_535 - 28 + 1), Err(WireError::NoSpace));
    assert_eq!(write_ipv4_udp(&mut big, header(), 65_535 - 28), Ok(65_535));
    assert_eq!(rfc1071(&big[..20]), 0);
    assert_eq!(rfc1071(&pseudo_and_udp(&big[..65_535])), 0);
}

// ------------------------------------------------------------------ reading (Ipv4Udp)

mod reading {
    use cdra_wire::ipv4::{write_ipv4_udp, FrameError, Ipv4Udp, Ipv4UdpHeader, IPV4_UDP_HEADER_LEN};
    use std::net::Ipv4Addr;

    fn datagram(payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; IPV4_UDP_HEADER_LEN + payload.len()];
        buf[IPV4_UDP_HEADER_LEN..].copy_from_slice(payload);
        let h = Ipv4UdpHeader {
            src: Ipv4Addr::new(10, 0, 0, 2),
            dst: Ipv4Addr::BROADCAST,
            src_port: 68,
            dst_port: 67,
            ttl: 64,
        };
        let n = write_ipv4_udp(&mut buf, h, payload.len()).expect("fits");
        buf.truncate(n);
        buf
    }

    /// Recompute the IPv4 header checksum after an edit.
    fn fix_ip_checksum(d: &mut [u8]) {
        d[10] = 0;
        d[11] = 0;
        let mut sum: u32 = d[..20].chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        d[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    }

    #[test]
    fn what_we_write_reads_back_padding_ignored() {
        let mut d = datagram(b"hello dhcp");
        d.extend_from_slice(&[0; 12]); // Ethernet padding after the total length
        let v = Ipv4Udp::new_checked(&d).expect("valid");
        assert_eq!((v.src, v.dst, v.src_port, v.dst_port), (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::BROADCAST, 68, 67));
        assert_eq!(v.payload, b"hello dhcp");
    }

    #[test]
    fn every_rejection_rule() {
        type Edit = fn(&mut Vec<u8>);
        let cases: [(Edit, FrameError); 8] = [
            (|d| d[0] = 0x65, FrameError::NotIpv4),
            (|d| d.truncate(10), FrameError::BadLength),
            (|d| d[0] = 0x44, FrameError::BadLength),
            (|d| d[8] ^= 1, FrameError::BadIpChecksum),
            (|d| d.truncate(30), FrameError::BadLength),
            (|d| d[30] ^= 1, FrameError::BadUdpChecksum),
            (
                |d| {
                    d[6] = 0x20; // more fragments
                    fix_ip_checksum(d);
                },
                FrameError::Fragment,
            ),
            (
                |d| {
                    d[9] = 6; // TCP
                    fix_ip_checksum(d);
                },
                FrameError::NotUdp,
            ),
        ];
        let good = datagram(b"0123456789");
        for (edit, want) in cases {
            let mut d = good.clone();
            edit(&mut d);
            assert_eq!(Ipv4Udp::new_checked(&d), Err(want));
        }
        // No UDP checksum (zero) is accepted as it is.
        let mut d = good.clone();
        d[26] = 0;
        d[27] = 0;
        d[30] ^= 1;
        assert!(Ipv4Udp::new_checked(&d).is_ok());
        // Never panics on any prefix.
        for n in 0..good.len() {
            let _ = Ipv4Udp::new_checked(&good[..n]);
        }
    }
}
