//! `MessageBuilder` and `OptionsWriter`.

use core::net::Ipv4Addr;

use cdra_wire::builder::{OptionsWriter, MIN_BOOTP_LEN};
use cdra_wire::{Message, MessageBuilder, MessageType, Op, OptionCode, WireError};

use crate::common::*;

#[test]
fn builds_byte_identical_kea_ack() {
    // The builder's output equals the hand-assembled reply of tests/common.
    let mut buf = [0u8; 576];
    let mut b = MessageBuilder::new(&mut buf, Op::BootReply, Some(MessageType::Ack)).unwrap();
    b.xid(0x5ee1_7a01).yiaddr(Ipv4Addr::from(OFFERED)).chaddr(1, &UDHCPC_MAC);
    b.option(54, &SERVER).unwrap();
    b.options().option_u32(51, 3600).unwrap();
    b.options().option_u32(58, 1800).unwrap();
    b.options().option_u32(59, 3150).unwrap();
    b.options().option_addr(1, Ipv4Addr::new(255, 255, 255, 0)).unwrap();
    b.option(3, &SERVER).unwrap().option(6, &[8, 8, 8, 8, 1, 1, 1, 1]).unwrap();
    b.option(15, b"example.org").unwrap();
    b.option(61, &udhcpc_client_id()).unwrap();
    let len = b.finish().unwrap();
    assert_eq!(&buf[..len], &kea_reply(5)[..]);
}

#[test]
fn message_type_first_and_padded_to_300() {
    for t in [MessageType::Offer, MessageType::Ack, MessageType::Nak, MessageType::Other(13)] {
        let mut buf = [0xffu8; 400];
        let mut b = MessageBuilder::new(&mut buf, Op::BootReply, Some(t)).unwrap();
        b.option(OptionCode::SERVER_ID, &SERVER).unwrap();
        let len = b.finish().unwrap();
        assert_eq!(len, MIN_BOOTP_LEN);
        assert_eq!(&buf[240..243], &[53, 1, t.to_u8()]);
        assert_eq!(&buf[243..250], &[54, 4, 192, 168, 1, 1, END]);
        assert!(buf[250..300].iter().all(|&b| b == 0));
        assert!(buf[300..].iter().all(|&b| b == 0xff));
        let m = Message::new_checked(&buf[..len]).unwrap();
        assert_eq!(m.message_type(), Some(t));
        assert_eq!(m.options().next().map(|o| o.code), Some(53));
        assert_eq!(m.options_end(), Some(249));
    }
    // No message type: a BOOTP message.
    let mut buf = [0u8; 300];
    let b = MessageBuilder::new(&mut buf, Op::BootRequest, None).unwrap();
    assert_eq!(b.finish(), Ok(300));
    let m = Message::new_checked(&buf[..]).unwrap();
    assert_eq!((m.op(), m.message_type(), m.options_end()), (Op::BootRequest, None, Some(240)));
}

#[test]
fn header_fields() {
    let mut buf = [0xeeu8; 300];
    let mut b = MessageBuilder::new(&mut buf, Op::BootRequest, Some(MessageType::Discover)).unwrap();
    b.xid(0xdead_beef)
        .secs(7)
        .flags(0x8000)
        .ciaddr(Ipv4Addr::new(1, 2, 3, 4))
        .yiaddr(Ipv4Addr::new(5, 6, 7, 8))
        .siaddr(Ipv4Addr::new(9, 10, 11, 12))
        .giaddr(Ipv4Addr::new(13, 14, 15, 16))
        .hops(3)
        .chaddr(1, &DHCPCD_MAC);
    b.finish().unwrap();
    let m = Message::new_checked(&buf[..]).unwrap();
    assert_eq!((m.op(), m.htype(), m.hlen(), m.hops()), (Op::BootRequest, 1, 6, 3));
    assert_eq!((m.xid(), m.secs(), m.flags(), m.broadcast()), (0xdead_beef, 7, 0x8000, true));
    assert_eq!(m.ciaddr(), Ipv4Addr::new(1, 2, 3, 4));
    assert_eq!(m.yiaddr(), Ipv4Addr::new(5, 6, 7, 8));
    assert_eq!(m.siaddr(), Ipv4Addr::new(9, 10, 11, 12));
    assert_eq!(m.giaddr(), Ipv4Addr::new(13, 14, 15, 16));
    assert_eq!(m.ethernet_chaddr(), Some(DHCPCD_MAC));
    // The header was zeroed: sname, file and the rest of chaddr.
    assert!(buf[34..236].iter().all(|&b| b == 0));
}

#[test]
fn chaddr_is_truncated_to_16_and_rest_zeroed() {
    let mut buf = [0u8; 300];
    let mut b = MessageBuilder::new(&mut buf, Op::BootRequest, None).unwrap();
    b.chaddr(6, &[0x11; 20]);
    b.chaddr(1, &DHCLIENT_MAC);
    b.finish().unwrap();
    let m = Message::new_checked(&buf[..]).unwrap();
    assert_eq!((m.htype(), m.hlen()), (1, 6));
    assert_eq!(&buf[28..44], &cat(&[&DHCLIENT_MAC, &[0; 10]])[..], "no stale bytes from the first chaddr");
    let mut buf = [0u8; 300];
    let mut b = MessageBuilder::new(&mut buf, Op::BootRequest, None).unwrap();
    b.chaddr(32, &[0x22; 20]);
    b.finish().unwrap();
    let m = Message::new_checked(&buf[..]).unwrap();
    assert_eq!((m.htype(), m.hlen(), m.chaddr()), (32, 16, &[0x22; 16][..]));
}

#[test]
fn long_options_are_split_per_rfc3396() {
    let data: Vec<u8> = (0..700u32).map(|i| (i * 7) as u8).collect();
    for len in [0usize, 1, 254, 255, 256, 510, 511, 700] {
        let mut buf = [0u8; 1200];
        let mut b = MessageBuilder::new(&mut buf, Op::BootReply, Some(MessageType::Ack)).unwrap();
        b.option(121, &data[..len]).unwrap();
        b.option(1, &[255, 255, 255, 0]).unwrap();
        let n = b.finish().unwrap();
        let m = Message::new_checked(&buf[..n]).unwrap();
        let sizes: Vec<usize> = m.options().filter(|o| o.code == 121).map(|o| o.data.len()).collect();
        let want: Vec<usize> =
            if len == 0 { vec![0] } else { (0..len.div_ceil(255)).map(|i| (len - i * 255).min(255)).collect() };
        assert_eq!(sizes, want, "len {len}");
        let mut out = [0u8; 700];
        assert_eq!(m.long_option(121, &mut out).unwrap(), Some(&data[..len]));
        assert_eq!(m.options().map(|o| o.code).last(), Some(1));
        assert_eq!(n, (240 + 3 + len + 2 * want.len() + 6 + 1).max(300));
    }
}

#[test]
fn no_space() {
    let mut small = [0u8; 239];
    assert_eq!(MessageBuilder::new(&mut small, Op::BootRequest, None).map(|_| ()), Err(WireError::NoSpace));
    let mut hdr = [0u8; 240];
    assert_eq!(
        MessageBuilder::new(&mut hdr, Op::BootRequest, Some(MessageType::Discover)).map(|_| ()),
        Err(WireError::NoSpace)
    );
    let mut buf = [0u8; 299];
    let b = MessageBuilder::new(&mut buf, Op::BootRequest, Some(MessageType::Discover)).unwrap();
    assert_eq!(b.finish(), Err(WireError::NoSpace), "cannot pad to 300");
    let mut buf = [0u8; 300];
    let mut b = MessageBuilder::new(&mut buf, Op::BootRequest, Some(MessageType::Discover)).unwrap();
    assert_eq!(b.option(43, &[0; 60]).map(|_| ()), Err(WireError::NoSpace));
    let mut buf = [0u8; 300];
    let mut b = MessageBuilder::new(&mut buf, Op::BootRequest, Some(MessageType::Discover)).unwrap();
    b.option(43, &[0; 54]).unwrap();
    assert_eq!(b.finish(), Ok(300), "243 + 56 + END = 300 exactly");
}

#[test]
fn options_writer() {
    let mut buf = [0u8; 32];
    let mut w = OptionsWriter::new(&mut buf, 4);
    assert_eq!(w.position(), 4);
    w.raw(&[0, 0]).unwrap();
    w.option_addr(54, Ipv4Addr::new(1, 2, 3, 4)).unwrap();
    w.option_u32(51, 0x0102_0304).unwrap();
    w.option(80, &[]).unwrap();
    assert_eq!(w.position(), 4 + 2 + 6 + 6 + 2);
    assert_eq!(w.raw(&[0; 20]), Err(WireError::NoSpace));
    assert_eq!(w.finish(24), Ok(24));
    assert_eq!(&buf[4..24], &[0, 0, 54, 4, 1, 2, 3, 4, 51, 4, 1, 2, 3, 4, 80, 0, END, 0, 0, 0]);
    let mut buf = [0u8; 8];
    let w = OptionsWriter::new(&mut buf, 8);
    assert_eq!(w.finish(0), Err(WireError::NoSpace));
    // A start position past the buffer, even absurd, is NoSpace rather than an overflow.
    for pos in [9, usize::MAX - 1, usize::MAX] {
        let mut w = OptionsWriter::new(&mut buf, pos);
        assert_eq!(w.raw(&[1, 2]), Err(WireError::NoSpace));
        assert_eq!(w.option(3, &[1, 2, 3, 4]), Err(WireError::NoSpace));
        assert_eq!(w.finish(300), Err(WireError::NoSpace));
    }
}
