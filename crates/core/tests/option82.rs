//! Option 82 as cdra builds it, byte for byte against the RFCs: every sub-option (RFC 3046
//! circuit and remote id, RFC 3527 link selection, RFC 5010 flags, RFC 5107 server
//! identifier override, RFC 8357 relay source port, RFC 6607 VSS and VSS control), their
//! order, and the "source interface" (giaddr from another interface, replies to it
//! accepted). Issue 13 items 3 and 4.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};

use cdra_core::config::{Downstream, Ipv4Net};
use cdra_core::{Destination, DropReason, Ingress, Verdict};
use cdra_wire::{Message, MessageType};

use common::*;

/// A DISCOVER that fills a 600-byte `max_packet_size`: no room for option 82.
fn too_big_for_option82(c: &mut cdra_core::EngineConfig) -> Msg {
    c.max_packet_size = 600;
    let mut m = Msg::request(MessageType::Discover);
    m.options.push((60, vec![b'x'; 250]));
    m.options.push((77, vec![b'y'; 95]));
    assert!(m.bytes().len() <= 600);
    m
}

/// The whole option 82 of a datagram we sent: code, length and payload, as on the wire.
fn option82_bytes(bytes: &[u8]) -> Vec<u8> {
    let m = Message::new_checked(bytes).expect("valid output");
    let data = m.relay_agent_info().expect("option 82 inserted");
    let mut out = vec![82, data.len() as u8];
    out.extend_from_slice(data);
    out
}

fn relayed(c: cdra_core::EngineConfig, m: &Msg) -> (Destination, Vec<u8>) {
    let mut h = Harness::new(c);
    assert_eq!(h.client_sends(m), Verdict::RelayedToServers { copies: 1 });
    h.only_sent()
}

fn inserting() -> cdra_core::EngineConfig {
    let mut c = config();
    c.option82.insert = true;
    c
}

#[test]
fn circuit_id_alone_rfc3046() {
    // RFC 3046 2.0: code 82, length, then sub-options `code len data`; sub-option 1 is the
    // Agent Circuit ID.
    let (_, bytes) = relayed(inserting(), &Msg::request(MessageType::Discover));
    assert_eq!(option82_bytes(&bytes), [82, 5, 1, 3, b'r', b'd', b'0']);
}

#[test]
fn remote_id_of_the_link_comes_before_the_global_one() {
    let mut c = inserting();
    c.option82.remote_id = Some(b"global".to_vec());
    let (_, bytes) = relayed(c.clone(), &Msg::request(MessageType::Discover));
    assert_eq!(option82_bytes(&bytes), [&[82, 13, 1, 3][..], b"rd0", &[2, 6], b"global"].concat());
    // The link's own remote-id (its format expanded by the daemon), raw bytes allowed.
    c.downstream[0].remote_id = Some(vec![0x0a, 0x0b, 0x00]);
    c.downstream[0].circuit_id = b"r1:rd0:0".to_vec();
    let (_, bytes) = relayed(c, &Msg::request(MessageType::Discover));
    assert_eq!(option82_bytes(&bytes), [&[82, 15, 1, 8][..], b"r1:rd0:0", &[2, 3, 0x0a, 0x0b, 0x00]].concat());
}

#[test]
fn link_selection_carries_the_interface_address_rfc3527() {
    // RFC 3527 3: sub-option 5, length 4, an IPv4 address on the client's subnet; the
    // interface's own address, as ISC dhcrelay and SONiC send it (0a4d0101, not 0a4d0100).
    let mut c = inserting();
    c.option82.link_selection = true;
    let (_, bytes) = relayed(c, &Msg::request(MessageType::Discover));
    assert_eq!(option82_bytes(&bytes), [82, 11, 1, 3, b'r', b'd', b'0', 5, 4, 0x0a, 0x4d, 0x01, 0x01]);
}

#[test]
fn flags_say_broadcast_or_unicast_rfc5010() {
    // RFC 5010 2.1: sub-option 10, length 1; the high bit "U" set when the relay received
    // the message as a unicast.
    let mut c = inserting();
    c.option82.flags = true;
    let (_, bytes) = relayed(c.clone(), &Msg::request(MessageType::Discover));
    assert_eq!(option82_bytes(&bytes), [82, 8, 1, 3, b'r', b'd', b'0', 10, 1, 0x00]);
    // A renewal unicast to our address (the client's server id is ours: RFC 5107).
    let mut h = Harness::new(c);
    let m = Msg { ciaddr: Ipv4Addr::new(10, 77, 1, 100), ..Msg::request(MessageType::Request) };
    assert_eq!(h.client_sends_to(DS_ADDR, &m), Verdict::RelayedToServers { copies: 1 });
    let (_, bytes) = h.only_sent();
    assert_eq!(option82_bytes(&bytes), [82, 8, 1, 3, b'r', b'd', b'0', 10, 1, 0x80]);
    // A broadcast to the subnet's broadcast address is a broadcast too.
    assert_eq!(h.client_sends_to(Ipv4Addr::new(10, 77, 1, 255), &m), Verdict::RelayedToServers { copies: 1 });
    let (_, bytes) = h.only_sent();
    assert_eq!(option82_bytes(&bytes), [82, 8, 1, 3, b'r', b'd', b'0', 10, 1, 0x00]);
}

#[test]
fn server_identifier_override_rfc5107() {
    // RFC 5107 4: sub-option 11, length 4, the address the server puts in option 54.
    let mut c = inserting();
    c.option82.server_id_override = true;
    let (_, bytes) = relayed(c, &Msg::request(MessageType::Discover));
    assert_eq!(option82_bytes(&bytes), [82, 11, 1, 3, b'r', b'd', b'0', 11, 4, 10, 77, 1, 1]);
}

#[test]
fn relay_source_port_rfc8357() {
    // RFC 8357 5.1: sub-option 19 with length 0 from the first relay; the request leaves
    // from the source port (the daemon's socket), where the server answers.
    let mut c = inserting();
    c.source_port = Some(1067);
    let (dest, bytes) = relayed(c.clone(), &Msg::request(MessageType::Discover));
    assert_eq!(dest, Destination::Server { addr: SERVER, relay_port: true });
    assert_eq!(option82_bytes(&bytes), [82, 7, 1, 3, b'r', b'd', b'0', 19, 0]);
    // A request relayed for another relay (giaddr set) gets no option 82 of ours: it
    // leaves from port 67, and the server answers that relay.
    let mut m = Msg::request(MessageType::Request);
    m.giaddr = Ipv4Addr::new(10, 99, 0, 1);
    m.hops = 1;
    let (dest, bytes) = relayed(c.clone(), &m);
    assert_eq!(dest, Destination::Server { addr: SERVER, relay_port: false });
    assert!(Message::new_checked(&bytes[..]).expect("valid").relay_agent_info().is_none());
    // Option 82 that does not fit (RFC 3046 2.1): no sub-option, so port 67.
    let m = too_big_for_option82(&mut c);
    let (dest, bytes) = relayed(c, &m);
    assert_eq!(dest, Destination::Server { addr: SERVER, relay_port: false });
    assert!(Message::new_checked(&bytes[..]).expect("valid").relay_agent_info().is_none());
}

#[test]
fn vss_names_the_vrf_or_the_global_vpn_rfc6607() {
    // RFC 6607 3.1: sub-option 151, a type byte then the identifier: type 0 "NVT ASCII
    // VPN identifier", type 255 "Global, default VPN" alone; 3.2: sub-option 152, empty,
    // with it.
    let mut c = inserting();
    c.option82.vss = true;
    let (_, bytes) = relayed(c.clone(), &Msg::request(MessageType::Discover));
    assert_eq!(option82_bytes(&bytes), [82, 10, 1, 3, b'r', b'd', b'0', 151, 1, 255, 152, 0]);
    c.downstream[0].vrf = Some("vrf-blue".into());
    let (_, bytes) = relayed(c, &Msg::request(MessageType::Discover));
    assert_eq!(option82_bytes(&bytes), [&[82, 18, 1, 3][..], b"rd0", &[151, 9, 0], b"vrf-blue", &[152, 0]].concat());
}

#[test]
fn every_sub_option_in_the_order_of_its_code() {
    let mut c = inserting();
    c.option82.remote_id = Some(b"r".to_vec());
    c.option82.link_selection = true;
    c.option82.flags = true;
    c.option82.server_id_override = true;
    c.option82.vss = true;
    c.source_port = Some(1067);
    let (dest, bytes) = relayed(c, &Msg::request(MessageType::Discover));
    assert_eq!(dest, Destination::Server { addr: SERVER, relay_port: true });
    let want: Vec<u8> = [
        &[82, 30][..],
        &[1, 3],
        b"rd0",
        &[2, 1, b'r'],
        &[5, 4, 10, 77, 1, 1],
        &[10, 1, 0],
        &[11, 4, 10, 77, 1, 1],
        &[19, 0],
        &[151, 1, 255],
        &[152, 0],
    ]
    .concat();
    assert_eq!(option82_bytes(&bytes), want);
    // RFC 3046 2.1: still the last option.
    let out = Message::new_checked(&bytes[..]).expect("valid");
    assert_eq!(out.options().last().map(|o| o.code), Some(82));
}

#[test]
fn vss_control_echoed_by_the_server_is_counted_and_the_reply_passed_on() {
    let mut c = inserting();
    c.option82.vss = true;
    let mut h = Harness::new(c);
    let mut reply = Msg::reply(MessageType::Offer);
    reply.options.push((82, vec![1, 3, b'r', b'd', b'0', 151, 1, 255, 152, 0]));
    assert_eq!(h.request_then_reply(SERVER, &reply), Verdict::DeliveredToClient);
    assert_eq!(h.engine.counters().vss_not_understood, 1);
    // A server that used the VSS removes 152.
    let mut reply = Msg::reply(MessageType::Offer);
    reply.xid = 7;
    reply.options.push((82, vec![1, 3, b'r', b'd', b'0', 151, 1, 255]));
    let request = Msg { xid: 7, ..Msg::request(MessageType::Discover) };
    h.client_sends(&request);
    assert_eq!(h.server_sends(SERVER, &reply), Verdict::DeliveredToClient);
    assert_eq!(h.engine.counters().vss_not_understood, 1);
}

const SOURCE: Ipv4Addr = US_ADDR;

fn with_source() -> cdra_core::EngineConfig {
    let mut c = inserting();
    c.downstream[0].source_address = Some(SOURCE);
    c
}

#[test]
fn source_interface_sets_giaddr_and_link_selection_names_the_link() {
    // SONiC's source interface, ISC dhcrelay -U: giaddr is the other interface's address,
    // the link selection sub-option carries ours (RFC 3527 1), even without
    // `link_selection`.
    let (_, bytes) = relayed(with_source(), &Msg::request(MessageType::Discover));
    let out = Message::new_checked(&bytes[..]).expect("valid");
    assert_eq!(out.giaddr(), SOURCE);
    assert_eq!(option82_bytes(&bytes), [82, 11, 1, 3, b'r', b'd', b'0', 5, 4, 10, 77, 1, 1]);
    // Without option 82 (it does not fit) the server would take giaddr's subnet: giaddr
    // stays the link's own address.
    let mut c = with_source();
    let m = too_big_for_option82(&mut c);
    let (_, bytes) = relayed(c, &m);
    assert_eq!(Message::new_checked(&bytes[..]).expect("valid").giaddr(), DS_ADDR);
}

#[test]
fn replies_to_the_source_address_are_accepted_and_delivered_on_the_link() {
    let mut h = Harness::new(with_source());
    let reply = Msg { giaddr: SOURCE, ..Msg::reply(MessageType::Offer) };
    assert_eq!(h.request_then_reply(SERVER, &reply), Verdict::DeliveredToClient);
    let (dest, bytes) = h.only_sent();
    // Delivered on rd0, from rd0's address (the client's link), without option 82.
    match dest {
        Destination::ClientLink { ifindex, src, .. } => assert_eq!((ifindex, src), (DS_IF, DS_ADDR)),
        other => panic!("delivered as {other:?}"),
    }
    assert!(Message::new_checked(&bytes[..]).expect("valid").relay_agent_info().is_none());
    // One to the source address that answers nothing we sent is not believed.
    let stray = Msg { xid: 99, giaddr: SOURCE, ..Msg::reply(MessageType::Offer) };
    assert_eq!(h.server_sends(SERVER, &stray), Verdict::Dropped(DropReason::ReplyUnmatched));
    // A request carrying the source address as giaddr has looped back to us.
    let looped = Msg { giaddr: SOURCE, hops: 1, ..Msg::request(MessageType::Discover) };
    assert_eq!(h.client_sends(&looped), Verdict::Dropped(DropReason::GiaddrIsOurs));
}

#[test]
fn links_sharing_a_source_address_get_their_own_replies() {
    const DS2_IF: u32 = 4;
    let ds2_addr = Ipv4Addr::new(10, 77, 2, 1);
    let mut c = with_source();
    let mut second: Downstream = c.downstream[0].clone();
    second.name = "rd1".into();
    second.ifindex = DS2_IF;
    second.address = Ipv4Net { addr: ds2_addr, prefix_len: 24 };
    second.all_addresses = vec![ds2_addr];
    second.circuit_id = b"rd1".to_vec();
    c.downstream.push(second);
    let mut h = Harness::new(c);
    // The same client (xid, chaddr) asks on rd1: its request names rd1's link.
    let m = Msg::request(MessageType::Discover);
    let bytes = m.bytes();
    h.outbox.clear();
    let ingress = Ingress {
        ifindex: DS2_IF,
        link_source: Some(MAC),
        src: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
        dst: Ipv4Addr::BROADCAST,
        data: &bytes,
    };
    assert_eq!(h.engine.handle_datagram(h.now, ingress, &mut h.outbox), Verdict::RelayedToServers { copies: 1 });
    let (_, fwd) = h.only_sent();
    assert_eq!(option82_bytes(&fwd), [82, 11, 1, 3, b'r', b'd', b'1', 5, 4, 10, 77, 2, 1]);
    let reply = Msg { giaddr: SOURCE, yiaddr: Ipv4Addr::new(10, 77, 2, 100), ..Msg::reply(MessageType::Offer) };
    assert_eq!(h.server_sends(SERVER, &reply), Verdict::DeliveredToClient);
    match h.only_sent().0 {
        Destination::ClientLink { ifindex, src, .. } => assert_eq!((ifindex, src), (DS2_IF, ds2_addr)),
        other => panic!("delivered as {other:?}"),
    }
}
