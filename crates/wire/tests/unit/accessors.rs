//! Accessors on realistic client and server messages.

use core::net::Ipv4Addr;

use cdra_wire::message::{BROADCAST_FLAG, HEADER_LEN, MAGIC_COOKIE};
use cdra_wire::{Message, MessageType, Op, OptionCode};

use crate::common::corpus::*;
use crate::common::*;

fn codes<T: AsRef<[u8]>>(m: &Message<T>) -> Vec<u8> {
    m.options().map(|o| o.code).collect()
}

fn ip(a: [u8; 4]) -> Ipv4Addr {
    Ipv4Addr::from(a)
}

#[test]
fn constants() {
    assert_eq!(MAGIC_COOKIE, COOKIE);
    assert_eq!(HEADER_LEN, 240);
    assert_eq!(BROADCAST_FLAG, 0x8000);
}

#[test]
fn dhclient_discover_without_client_id() {
    let m = Message::new_checked(dhclient_discover()).unwrap();
    assert_eq!(m.op(), Op::BootRequest);
    assert_eq!((m.htype(), m.hlen(), m.hops()), (1, 6, 0));
    assert_eq!(m.xid(), 0x3903_f326);
    assert_eq!((m.secs(), m.flags(), m.broadcast()), (0, 0, false));
    assert_eq!(m.chaddr(), &DHCLIENT_MAC);
    assert_eq!(m.ethernet_chaddr(), Some(DHCLIENT_MAC));
    for a in [m.ciaddr(), m.yiaddr(), m.siaddr(), m.giaddr()] {
        assert_eq!(a, Ipv4Addr::UNSPECIFIED);
    }
    assert_eq!(m.message_type(), Some(MessageType::Discover));
    assert_eq!(m.client_identifier(), None);
    assert_eq!(m.requested_ip(), Some(ip(OFFERED)));
    assert_eq!(m.server_identifier(), None);
    assert_eq!(m.parameter_request_list(), Some(&DHCLIENT_PRL[..]));
    assert_eq!(m.option_data(OptionCode::HOSTNAME), Some(&b"debian"[..]));
    assert_eq!(m.relay_agent_info(), None);
    assert_eq!(codes(&m), vec![53, 50, 12, 55]);
    assert_eq!(m.overload(), 0);
    assert_eq!(m.sname(), &[0u8; 64][..]);
    assert_eq!(m.file(), &[0u8; 128][..]);
    assert!(!m.is_split(55));
    assert_eq!(m.lease_time(), None);
}

#[test]
fn dhclient_request_selecting() {
    let m = Message::new_checked(dhclient_request()).unwrap();
    assert_eq!(m.message_type(), Some(MessageType::Request));
    assert_eq!(m.server_identifier(), Some(ip(SERVER)));
    assert_eq!(m.requested_ip(), Some(ip(OFFERED)));
    assert_eq!(m.secs(), 2);
    assert_eq!(m.ciaddr(), Ipv4Addr::UNSPECIFIED);
}

#[test]
fn udhcpc_discover_and_request_with_client_id_01_mac() {
    let m = Message::new_checked(udhcpc_discover()).unwrap();
    assert_eq!(m.message_type(), Some(MessageType::Discover));
    let id = m.client_identifier().unwrap();
    assert_eq!(id[0], 1);
    assert_eq!(&id[1..], &UDHCPC_MAC);
    assert_eq!(m.ethernet_chaddr(), Some(UDHCPC_MAC));
    assert_eq!(m.option_data(OptionCode::MAX_MESSAGE_SIZE), Some(&576u16.to_be_bytes()[..]));
    assert_eq!(m.option_data(OptionCode::VENDOR_CLASS), Some(&b"udhcp 1.36.1"[..]));
    assert_eq!(m.parameter_request_list(), Some(&UDHCPC_PRL[..]));
    assert_eq!(m.as_bytes().len(), 548);

    let m = Message::new_checked(udhcpc_request()).unwrap();
    assert_eq!(m.message_type(), Some(MessageType::Request));
    assert_eq!(m.client_identifier(), Some(&udhcpc_client_id()[..]));
    assert_eq!((m.requested_ip(), m.server_identifier()), (Some(ip(OFFERED)), Some(ip(SERVER))));
    assert_eq!(codes(&m), vec![53, 61, 50, 54, 57, 55, 60, 12]);
}

#[test]
fn dhcpcd_discover_with_rfc4361_client_id_and_rapid_commit() {
    let m = Message::new_checked(dhcpcd_discover()).unwrap();
    let id = m.client_identifier().unwrap();
    assert_eq!(id.len(), 19);
    assert_eq!(id[0], 0xff, "RFC 4361 type");
    assert_eq!(&id[1..5], &[0x32, 0x01, 0x02, 0x03], "IAID");
    assert_eq!(&id[5..9], &[0, 1, 0, 1], "DUID-LLT, Ethernet");
    assert_eq!(&id[13..], &DHCPCD_MAC);
    assert_eq!(m.option(OptionCode::RAPID_COMMIT).map(|o| o.data), Some(&[][..]));
    assert_eq!(m.option_data(145), Some(&[1u8][..]));
    assert_eq!(m.option_data(OptionCode::VENDOR_CLASS), Some(DHCPCD_VENDOR));
    assert_eq!(codes(&m), vec![53, 61, 57, 80, 60, 12, 145, 55]);

    let m = Message::new_checked(dhcpcd_renew()).unwrap();
    assert_eq!(m.message_type(), Some(MessageType::Request));
    assert_eq!(m.ciaddr(), ip(OFFERED));
    assert_eq!((m.requested_ip(), m.server_identifier()), (None, None));
}

#[test]
fn kea_offer_and_ack() {
    for (mt, want) in [(2, MessageType::Offer), (5, MessageType::Ack)] {
        let m = Message::new_checked(kea_reply(mt)).unwrap();
        assert_eq!(m.op(), Op::BootReply);
        assert_eq!(m.message_type(), Some(want));
        assert_eq!(m.yiaddr(), ip(OFFERED));
        assert_eq!(m.server_identifier(), Some(ip(SERVER)));
        assert_eq!((m.lease_time(), m.renewal_time(), m.rebinding_time()), (Some(3600), Some(1800), Some(3150)));
        assert_eq!(m.subnet_mask(), Some(Ipv4Addr::new(255, 255, 255, 0)));
        assert_eq!(m.option_data(OptionCode::ROUTER), Some(&SERVER[..]));
        assert_eq!(m.option_data(OptionCode::DNS), Some(&[8, 8, 8, 8, 1, 1, 1, 1][..]));
        assert_eq!(m.client_identifier(), Some(&udhcpc_client_id()[..]));
        assert_eq!(m.options().next().unwrap().code, 53);
    }
}

#[test]
fn isc_dhcpd_ack_and_nak() {
    let m = Message::new_checked(iscdhcpd_ack()).unwrap();
    assert_eq!(m.message_type(), Some(MessageType::Ack));
    assert_eq!(m.siaddr(), ip(SERVER));
    assert_eq!(m.lease_time(), Some(86400));
    assert_eq!((m.renewal_time(), m.rebinding_time()), (None, None));
    assert_eq!(m.option_data(28), Some(&[192, 168, 1, 255][..]));

    let m = Message::new_checked(iscdhcpd_nak()).unwrap();
    assert_eq!(m.message_type(), Some(MessageType::Nak));
    assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(m.option_data(OptionCode::MESSAGE), Some(&b"requested address not available"[..]));
}

#[test]
fn dnsmasq_unpadded_replies() {
    let m = Message::new_checked(dnsmasq_reply(5)).unwrap();
    assert_eq!(m.options_end(), Some(m.as_bytes().len() - 1), "ends at END, no padding");
    assert_eq!((m.lease_time(), m.renewal_time(), m.rebinding_time()), (Some(43200), Some(21600), Some(37800)));
    assert_eq!(codes(&m), vec![53, 54, 51, 58, 59, 1, 28, 3, 6, 15, 12]);
    let m = Message::new_checked(dnsmasq_nak()).unwrap();
    assert_eq!(m.message_type(), Some(MessageType::Nak));
    assert!(m.as_bytes().len() < 300, "shorter than RFC 1542's minimum, still accepted");
    assert!(m.broadcast());
    assert_eq!(m.client_identifier(), Some(&dhcpcd_client_id()[..]));
}

#[test]
fn other_client_messages() {
    let m = Message::new_checked(decline()).unwrap();
    assert_eq!(m.message_type(), Some(MessageType::Decline));
    let m = Message::new_checked(release()).unwrap();
    assert_eq!((m.message_type(), m.ciaddr()), (Some(MessageType::Release), ip(OFFERED)));
    let m = Message::new_checked(inform()).unwrap();
    assert_eq!(m.message_type(), Some(MessageType::Inform));
    let m = Message::new_checked(leasequery()).unwrap();
    assert_eq!(m.message_type(), Some(MessageType::Other(10)));
    assert_eq!((m.htype(), m.hlen(), m.chaddr()), (0, 0, &[][..]));
    assert_eq!(m.ethernet_chaddr(), None);
    let m = Message::new_checked(bootp_request()).unwrap();
    assert_eq!(m.message_type(), None);
    assert_eq!(m.options().count(), 0);
    assert_eq!(m.options_end(), Some(240));
}

#[test]
fn relayed_messages() {
    let m = Message::new_checked(relayed_discover()).unwrap();
    assert_eq!((m.giaddr(), m.hops()), (ip(RELAY), 1));
    assert_eq!(m.relay_agent_info(), Some(&agent_info()[..]));
    assert_eq!(*codes(&m).last().unwrap(), OptionCode::RELAY_AGENT_INFO);
    let m = Message::new_checked(relay_82_twice()).unwrap();
    assert_eq!(m.relay_agent_info(), Some(&agent_info()[..]), "first instance");
    assert!(m.is_split(82));
}

#[test]
fn chaddr_shapes() {
    let m = Message::new_checked(ipoib_discover()).unwrap();
    assert_eq!((m.htype(), m.hlen(), m.chaddr(), m.ethernet_chaddr()), (32, 0, &[][..], None));
    assert!(m.broadcast());
    let m = Message::new_checked(hlen16_discover()).unwrap();
    assert_eq!(m.chaddr(), &[0xab; 16][..]);
    assert_eq!(m.ethernet_chaddr(), None);
    // htype 1 but hlen 8: not an Ethernet address.
    let mut h = Hdr::request(DHCLIENT_MAC, 1);
    h.hlen = 8;
    let m = Message::new_checked(h.padded(&[END], 300)).unwrap();
    assert_eq!(m.chaddr().len(), 8);
    assert_eq!(m.ethernet_chaddr(), None);
}

#[test]
fn malformed_fixed_length_options_read_as_absent() {
    // 53 with length 0 and 2 before a good one: the first instance decides.
    let m = Message::new_checked(odd_message_types()).unwrap();
    assert_eq!(m.message_type(), None);
    assert!(m.is_split(53));
    // Addresses and times of the wrong length.
    let o = cat(&[&opt(54, &[1, 2, 3]), &opt(50, &[1, 2, 3, 4, 5]), &opt(51, &[0, 0, 1]), &opt(1, &[]), &[END]]);
    let m = Message::new_checked(Hdr::default().padded(&o, 300)).unwrap();
    assert_eq!((m.server_identifier(), m.requested_ip(), m.lease_time(), m.subnet_mask()), (None, None, None, None));
}

#[test]
fn message_type_codes_and_labels() {
    let named = [
        (1, MessageType::Discover, "discover"),
        (2, MessageType::Offer, "offer"),
        (3, MessageType::Request, "request"),
        (4, MessageType::Decline, "decline"),
        (5, MessageType::Ack, "ack"),
        (6, MessageType::Nak, "nak"),
        (7, MessageType::Release, "release"),
        (8, MessageType::Inform, "inform"),
    ];
    for (v, t, label) in named {
        assert_eq!(MessageType::from_u8(v), t);
        assert_eq!(t.to_u8(), v);
        assert_eq!(t.label(), label);
    }
    for v in 0..=255u8 {
        assert_eq!(MessageType::from_u8(v).to_u8(), v);
        if v == 0 || v > 8 {
            assert_eq!(MessageType::from_u8(v), MessageType::Other(v));
            assert_eq!(MessageType::from_u8(v).label(), "other");
        }
    }
}
