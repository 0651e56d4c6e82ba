//! Relay-mode behaviour of the engine, rule by rule (RFC 1542 4.1, RFC 2131 4.1, RFC 3046).

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use cdra_core::config::{Option82Policy, ServerSelection};
use cdra_core::outbox::BROADCAST_MAC;
use cdra_core::{Destination, DropReason, Engine, Ingress, Outbox, Timestamp, Verdict};
use cdra_wire::relay_agent::RelayAgentInfo;
use cdra_wire::{Message, MessageType};

use common::*;

fn option82_of(bytes: &[u8]) -> Option<Vec<(u8, Vec<u8>)>> {
    let m = Message::new_checked(bytes).expect("valid output");
    let data = m.relay_agent_info()?;
    let info = RelayAgentInfo::new_checked(data).expect("valid option 82");
    Some(info.sub_options().map(|s| (s.code, s.data.to_vec())).collect())
}

#[test]
fn first_hop_request_gets_giaddr_and_hops_and_goes_to_the_server() {
    let mut h = Harness::new(config());
    let m = Msg::request(MessageType::Discover);
    assert_eq!(h.client_sends(&m), Verdict::RelayedToServers { copies: 1 });
    let (dest, bytes) = h.only_sent();
    assert_eq!(dest, Destination::Server { addr: SERVER, relay_port: false });
    let out = Message::new_checked(&bytes[..]).expect("valid");
    assert_eq!(out.giaddr(), DS_ADDR);
    assert_eq!(out.hops(), 1);
    assert_eq!(out.message_type(), Some(MessageType::Discover));
    assert_eq!(out.chaddr(), &MAC);
    // Everything but giaddr and hops is byte-for-byte the client's message.
    let original = m.bytes();
    assert_eq!(bytes.len(), original.len());
    let differing: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] != original[i]).collect();
    assert!(differing.iter().all(|&i| i == 3 || (24..28).contains(&i)), "changed bytes {differing:?}");
}

#[test]
fn giaddr_set_by_another_relay_is_not_modified() {
    let mut h = Harness::new(config());
    let mut m = Msg::request(MessageType::Request);
    m.giaddr = Ipv4Addr::new(10, 99, 0, 1);
    m.hops = 1;
    h.client_sends(&m);
    let (_, bytes) = h.only_sent();
    let out = Message::new_checked(&bytes[..]).expect("valid");
    assert_eq!(out.giaddr(), Ipv4Addr::new(10, 99, 0, 1));
    assert_eq!(out.hops(), 2);
}

#[test]
fn hop_limit_applies_to_the_incremented_value() {
    let mut h = Harness::new(config());
    let mut m = Msg::request(MessageType::Discover);
    m.hops = 3;
    assert_eq!(h.client_sends(&m), Verdict::RelayedToServers { copies: 1 });
    assert_eq!(Message::new_checked(&h.only_sent().1[..]).expect("valid").hops(), 4);
    m.hops = 4;
    assert_eq!(h.client_sends(&m), Verdict::Dropped(DropReason::HopLimit));
    assert!(h.sent().is_empty());
    let mut c = config();
    c.max_hops = 16;
    let mut h = Harness::new(c);
    m.hops = 15;
    assert_eq!(h.client_sends(&m), Verdict::RelayedToServers { copies: 1 });
    m.hops = 16;
    assert_eq!(h.client_sends(&m), Verdict::Dropped(DropReason::HopLimit));
    m.hops = 255;
    assert_eq!(h.client_sends(&m), Verdict::Dropped(DropReason::HopLimit));
    assert_eq!(h.engine.counters().total_dropped(DropReason::HopLimit), 2);
}

#[test]
fn giaddr_that_is_our_own_address_is_a_loop() {
    for ours in [DS_ADDR, US_ADDR] {
        let mut h = Harness::new(config());
        let mut m = Msg::request(MessageType::Discover);
        m.giaddr = ours;
        assert_eq!(h.client_sends(&m), Verdict::Dropped(DropReason::GiaddrIsOurs));
    }
}

#[test]
fn option82_is_inserted_last_with_the_configured_sub_options() {
    let mut c = config();
    c.option82.insert = true;
    c.option82.remote_id = Some(b"cdra-lab".to_vec());
    c.option82.link_selection = true;
    c.option82.server_id_override = true;
    let mut h = Harness::new(c);
    let m = Msg::request(MessageType::Discover);
    h.client_sends(&m);
    let (_, bytes) = h.only_sent();
    let subs = option82_of(&bytes).expect("option 82 inserted");
    assert_eq!(
        subs,
        vec![(1, b"rd0".to_vec()), (2, b"cdra-lab".to_vec()), (5, vec![10, 77, 1, 1]), (11, DS_ADDR.octets().to_vec()),]
    );
    // RFC 3046 2.1: option 82 is the last option before END.
    let out = Message::new_checked(&bytes[..]).expect("valid");
    assert_eq!(out.options().last().map(|o| o.code), Some(82));
    // The client's own options are still there, in order.
    let codes: Vec<u8> = out.options().map(|o| o.code).collect();
    assert_eq!(codes, vec![53, 55, 82]);
}

#[test]
fn option82_from_an_untrusted_first_hop_client_is_dropped() {
    let mut h = Harness::new(config());
    let mut m = Msg::request(MessageType::Discover);
    m.options.push((82, vec![1, 3, b'e', b'v', b'l']));
    assert_eq!(h.client_sends(&m), Verdict::Dropped(DropReason::UntrustedOption82));
}

#[test]
fn option82_policies_on_trusted_circuits_and_from_other_relays() {
    let evil = vec![1, 3, b'e', b'v', b'l'];
    for (policy, giaddr, expect) in [
        (Option82Policy::Forward, Ipv4Addr::UNSPECIFIED, Some(vec![(1, b"evl".to_vec())])),
        (Option82Policy::Replace, Ipv4Addr::UNSPECIFIED, Some(vec![(1, b"rd0".to_vec())])),
        (Option82Policy::Drop, Ipv4Addr::UNSPECIFIED, None),
        // From another relay we are not the first hop: never insert ours, keep theirs.
        (Option82Policy::Replace, Ipv4Addr::new(10, 99, 0, 1), Some(vec![(1, b"evl".to_vec())])),
        (Option82Policy::Drop, Ipv4Addr::new(10, 99, 0, 1), None),
    ] {
        let mut c = config();
        c.downstream[0].trusted = true;
        c.option82.insert = true;
        c.option82.policy = policy;
        let mut h = Harness::new(c);
        let mut m = Msg::request(MessageType::Discover);
        m.giaddr = giaddr;
        m.options.push((82, evil.clone()));
        let verdict = h.client_sends(&m);
        match expect {
            None => assert_eq!(verdict, Verdict::Dropped(DropReason::Option82Policy), "{policy:?}"),
            Some(subs) => {
                let (_, bytes) = h.only_sent();
                assert_eq!(option82_of(&bytes), Some(subs), "{policy:?} giaddr {giaddr}");
                let out = Message::new_checked(&bytes[..]).expect("valid");
                assert_eq!(out.options().filter(|o| o.code == 82).count(), 1);
            }
        }
    }
}

#[test]
fn option82_is_not_added_when_the_message_would_be_too_large() {
    let mut c = config();
    c.option82.insert = true;
    c.max_packet_size = 600;
    let mut h = Harness::new(c);
    let mut m = Msg::request(MessageType::Discover);
    m.options.push((60, vec![b'x'; 250]));
    m.options.push((77, vec![b'y'; 95]));
    assert!(m.bytes().len() <= 600);
    assert_eq!(h.client_sends(&m), Verdict::RelayedToServers { copies: 1 });
    let (_, bytes) = h.only_sent();
    assert_eq!(option82_of(&bytes), None);
    assert_eq!(h.engine.counters().option82_not_added_too_large, 1);
    assert_eq!(Message::new_checked(&bytes[..]).expect("valid").giaddr(), DS_ADDR);
}

#[test]
fn all_servers_get_a_copy_by_default() {
    let mut c = config();
    c.servers = vec![SERVER, SERVER2];
    let mut h = Harness::new(c);
    assert_eq!(h.client_sends(&Msg::request(MessageType::Discover)), Verdict::RelayedToServers { copies: 2 });
    let dests: Vec<Destination> = h.sent().into_iter().map(|(d, _)| d).collect();
    assert_eq!(
        dests,
        vec![
            Destination::Server { addr: SERVER, relay_port: false },
            Destination::Server { addr: SERVER2, relay_port: false }
        ]
    );
    let sent = h.sent();
    assert_eq!(sent[0].1, sent[1].1);
}

#[test]
fn failover_moves_on_when_a_server_stops_answering_and_back_when_it_returns() {
    let mut c = config();
    c.servers = vec![SERVER, SERVER2];
    c.server_selection = ServerSelection::Failover;
    c.server_timeout = Duration::from_secs(10);
    c.server_unanswered_limit = 3;
    c.server_retry_interval = Duration::from_secs(30);
    let mut h = Harness::new(c);
    let dest = |h: &Harness| h.sent().into_iter().map(|(d, _)| d).collect::<Vec<_>>();
    let discover = Msg::request(MessageType::Discover);
    // Three unanswered DISCOVERs of three clients over 12 s: the first server is down.
    // (A client's retransmission of one nobody answered goes to the next server as well:
    // tests/ha.rs.)
    for i in 0..3 {
        h.client_sends(&Msg { xid: 0x77 + i, ..Msg::request(MessageType::Discover) });
        assert_eq!(dest(&h), vec![Destination::Server { addr: SERVER, relay_port: false }]);
        h.now = h.now.saturating_add(Duration::from_secs(6));
    }
    assert!(!h.engine.servers().is_up(0, h.now));
    h.client_sends(&discover);
    assert_eq!(dest(&h), vec![Destination::Server { addr: SERVER2, relay_port: false }]);
    h.server_sends(SERVER2, &Msg::reply(MessageType::Offer));
    // After the retry interval the preferred server is tried again alongside.
    h.now = h.now.saturating_add(Duration::from_secs(31));
    h.client_sends(&discover);
    assert_eq!(
        dest(&h),
        vec![
            Destination::Server { addr: SERVER, relay_port: false },
            Destination::Server { addr: SERVER2, relay_port: false }
        ]
    );
    // It answers: traffic moves back to it.
    h.server_sends(SERVER, &Msg::reply(MessageType::Offer));
    h.client_sends(&discover);
    assert_eq!(dest(&h), vec![Destination::Server { addr: SERVER, relay_port: false }]);
}

#[test]
fn release_and_decline_do_not_count_against_liveness() {
    let mut c = config();
    c.server_timeout = Duration::from_secs(1);
    let mut h = Harness::new(c);
    for _ in 0..10 {
        h.client_sends(&Msg::request(MessageType::Release));
        h.client_sends(&Msg::request(MessageType::Decline));
        h.now = h.now.saturating_add(Duration::from_secs(5));
    }
    assert!(h.engine.servers().is_up(0, h.now));
}

#[test]
fn requests_on_upstream_or_unknown_interfaces_are_dropped() {
    let mut h = Harness::new(config());
    let bytes = Msg::request(MessageType::Discover).bytes();
    for (ifindex, reason) in [(US_IF, DropReason::RequestOnUpstream), (99, DropReason::UnknownInterface)] {
        let ingress = Ingress {
            link_source: None,
            ifindex,
            src: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
            dst: Ipv4Addr::BROADCAST,
            data: &bytes,
        };
        assert_eq!(h.engine.handle_datagram(h.now, ingress, &mut h.outbox), Verdict::Dropped(reason));
    }
}

#[test]
fn a_client_unicast_to_another_host_is_not_relayed_again() {
    // A packet socket on the client link also sees a client's renewal unicast to its
    // server, routed through this host; relaying it too would give the server two copies
    // (ISC dhcrelay does).
    let mut h = Harness::new(config());
    let mut renew = Msg::request(MessageType::Request);
    renew.ciaddr = Ipv4Addr::new(10, 77, 1, 100);
    assert_eq!(h.client_sends_to(SERVER, &renew), Verdict::Dropped(DropReason::NotAddressedToUs));
    assert!(h.sent().is_empty());
    // To us, to the limited broadcast and to the link's directed broadcast: ours.
    for dst in [DS_ADDR, Ipv4Addr::BROADCAST, Ipv4Addr::new(10, 77, 1, 255)] {
        assert!(matches!(h.client_sends_to(dst, &renew), Verdict::RelayedToServers { .. }), "{dst}");
    }
}

#[test]
fn replies_are_accepted_only_from_servers_and_only_for_our_giaddr() {
    let mut h = Harness::new(config());
    h.client_sends(&Msg::request(MessageType::Discover));
    let m = Msg::reply(MessageType::Offer);
    assert_eq!(h.server_sends(Ipv4Addr::new(10, 77, 0, 66), &m), Verdict::Dropped(DropReason::ReplyFromUnknownServer));
    let mut other = Msg::reply(MessageType::Offer);
    other.giaddr = Ipv4Addr::new(10, 99, 0, 1);
    assert_eq!(h.server_sends(SERVER, &other), Verdict::Dropped(DropReason::ReplyNotForUs));
    assert_eq!(h.server_sends(SERVER, &m), Verdict::DeliveredToClient);
}

#[test]
fn a_relayed_reply_must_answer_a_request_we_sent_that_server_in_time() {
    // Issue 10, item 1: a relay passes on only what answers a request it forwarded.
    let mut c = config();
    c.servers.push(SERVER2);
    c.server_selection = cdra_core::ServerSelection::Failover;
    let mut h = Harness::new(c);
    let offer = Msg::reply(MessageType::Offer);
    assert_eq!(h.server_sends(SERVER, &offer), Verdict::Dropped(DropReason::ReplyUnmatched), "nobody asked");
    assert_eq!(h.client_sends(&Msg::request(MessageType::Discover)), Verdict::RelayedToServers { copies: 1 });
    assert_eq!(h.only_sent().0, Destination::Server { addr: SERVER, relay_port: false });
    let mut forged = Msg::reply(MessageType::Offer);
    forged.chaddr = vec![2, 0, 0, 0, 0, 0x66];
    assert_eq!(h.server_sends(SERVER, &forged), Verdict::Dropped(DropReason::ReplyUnmatched), "another chaddr");
    assert_eq!(h.server_sends(SERVER2, &offer), Verdict::Dropped(DropReason::ReplyFromWrongServer));
    // On the client side, whatever its source address says, a reply is never a server's.
    let bytes = offer.bytes();
    let on_downstream =
        Ingress { link_source: None, ifindex: DS_IF, src: SocketAddrV4::new(SERVER, 67), dst: DS_ADDR, data: &bytes };
    assert_eq!(
        h.engine.handle_datagram(h.now, on_downstream, &mut h.outbox),
        Verdict::Dropped(DropReason::ReplyOnDownstream)
    );
    assert_eq!(h.server_sends(SERVER, &offer), Verdict::DeliveredToClient);
    // A second OFFER for the same DISCOVER (a relay passes each on) is fine...
    assert_eq!(h.server_sends(SERVER, &offer), Verdict::DeliveredToClient);
    // ...but not once the request is older than reply_timeout.
    h.now = h.now.saturating_add(Duration::from_secs(31));
    assert_eq!(h.server_sends(SERVER, &offer), Verdict::Dropped(DropReason::ReplyUnmatched));
    assert_eq!(h.engine.counters().total_dropped(DropReason::ReplyUnmatched), 3);
    assert_eq!(h.engine.counters().servers[0].replies_received, 2, "forged replies are no sign of life");
}

#[test]
fn a_one_armed_relay_accepts_replies_on_its_one_interface_by_matching_alone() {
    let mut c = config();
    c.upstream = vec![DS_IF];
    let mut h = Harness::new(c);
    h.client_sends(&Msg::request(MessageType::Discover));
    let bytes = Msg::reply(MessageType::Offer).bytes();
    let ingress =
        Ingress { link_source: None, ifindex: DS_IF, src: SocketAddrV4::new(SERVER, 67), dst: DS_ADDR, data: &bytes };
    assert_eq!(h.engine.handle_datagram(h.now, ingress, &mut h.outbox), Verdict::DeliveredToClient);
    let mut forged = Msg::reply(MessageType::Offer);
    forged.chaddr = vec![2, 0, 0, 0, 0, 0x66];
    let bytes = forged.bytes();
    let ingress =
        Ingress { link_source: None, ifindex: DS_IF, src: SocketAddrV4::new(SERVER, 67), dst: DS_ADDR, data: &bytes };
    assert_eq!(h.engine.handle_datagram(h.now, ingress, &mut h.outbox), Verdict::Dropped(DropReason::ReplyUnmatched));
}

#[test]
fn reply_delivery_follows_rfc2131_section_4_1() {
    let yiaddr = Ipv4Addr::new(10, 77, 1, 100);
    let bcast = Destination::ClientLink { ifindex: DS_IF, mac: BROADCAST_MAC, src: DS_ADDR, dst: Ipv4Addr::BROADCAST };
    let mut cases = Vec::new();
    // Plain OFFER: unicast to chaddr/yiaddr at the link layer.
    cases.push((
        Msg::reply(MessageType::Offer),
        Destination::ClientLink { ifindex: DS_IF, mac: MAC, src: DS_ADDR, dst: yiaddr },
    ));
    // Broadcast bit set: broadcast.
    let mut m = Msg::reply(MessageType::Ack);
    m.flags = 0x8000;
    cases.push((m, bcast));
    // ciaddr set (a REBINDING client's ACK): unicast to ciaddr.
    let mut m = Msg::reply(MessageType::Ack);
    m.ciaddr = yiaddr;
    cases.push((m, Destination::ClientLink { ifindex: DS_IF, mac: MAC, src: DS_ADDR, dst: yiaddr }));
    // ...through the kernel's routing (and its neighbour table) only when chaddr is not an
    // Ethernet address.
    let mut m = Msg::reply(MessageType::Ack);
    m.ciaddr = yiaddr;
    m.htype = 6;
    m.chaddr = vec![1, 2, 3, 4, 5, 6, 7, 8];
    cases.push((m, Destination::ClientUnicast { ifindex: DS_IF, src: DS_ADDR, dst: yiaddr }));
    // NAK, broadcast flag clear (Kea): broadcast anyway.
    let mut m = Msg::reply(MessageType::Nak);
    m.yiaddr = Ipv4Addr::UNSPECIFIED;
    cases.push((m, bcast));
    let mut m = Msg::reply(MessageType::Nak);
    m.ciaddr = yiaddr;
    cases.push((m, bcast));
    // A non-Ethernet chaddr cannot be unicast at the link layer.
    let mut m = Msg::reply(MessageType::Offer);
    m.htype = 6;
    m.chaddr = vec![1, 2, 3, 4, 5, 6, 7, 8];
    cases.push((m, bcast));
    // BOOTP reply (no option 53), like an OFFER.
    let mut m = Msg::reply(MessageType::Offer);
    m.kind = None;
    cases.push((m, Destination::ClientLink { ifindex: DS_IF, mac: MAC, src: DS_ADDR, dst: yiaddr }));
    for (m, want) in cases {
        let mut h = Harness::new(config());
        assert_eq!(h.request_then_reply(SERVER, &m), Verdict::DeliveredToClient);
        assert_eq!(h.only_sent().0, want, "kind {:?} flags {:#x} ciaddr {}", m.kind, m.flags, m.ciaddr);
    }
}

#[test]
fn option82_is_stripped_from_replies_and_nothing_else_changes() {
    let mut h = Harness::new(config());
    let mut m = Msg::reply(MessageType::Ack);
    m.options.push((82, vec![1, 3, b'r', b'd', b'0']));
    h.request_then_reply(SERVER, &m);
    let (_, bytes) = h.only_sent();
    let out = Message::new_checked(&bytes[..]).expect("valid");
    assert!(out.relay_agent_info().is_none());
    let codes: Vec<u8> = out.options().map(|o| o.code).collect();
    assert_eq!(codes, vec![53, 54, 51]);
    assert_eq!(out.yiaddr(), Ipv4Addr::new(10, 77, 1, 100));
    // Without option 82 the reply is forwarded byte for byte.
    let m = Msg::reply(MessageType::Ack);
    h.request_then_reply(SERVER, &m);
    assert_eq!(h.only_sent().1, m.bytes());
}

#[test]
fn malformed_datagrams_are_dropped_with_the_wire_reason() {
    let mut h = Harness::new(config());
    let mut bytes = Msg::request(MessageType::Discover).bytes();
    bytes[2] = 255; // hlen
    let ingress = Ingress {
        link_source: None,
        ifindex: DS_IF,
        src: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
        dst: Ipv4Addr::BROADCAST,
        data: &bytes,
    };
    assert_eq!(h.engine.handle_datagram(h.now, ingress, &mut h.outbox), Verdict::Dropped(DropReason::Malformed));
    assert_eq!(h.engine.counters().total_dropped(DropReason::Malformed), 1);
    assert_eq!(h.engine.counters().malformed[cdra_wire::WireError::BadHardwareLength as usize], 1);
}

#[test]
fn counters_follow_interface_and_message_type() {
    let mut h = Harness::new(config());
    h.client_sends(&Msg::request(MessageType::Discover));
    h.client_sends(&Msg::request(MessageType::Request));
    h.server_sends(SERVER, &Msg::reply(MessageType::Offer));
    let c = h.engine.counters();
    assert_eq!(c.interfaces[0].received[0], 1, "discover received on rd0");
    assert_eq!(c.interfaces[0].received[2], 1, "request received on rd0");
    assert_eq!(c.interfaces[1].sent[0], 1, "discover sent upstream");
    assert_eq!(c.interfaces[1].received[1], 1, "offer received upstream");
    assert_eq!(c.interfaces[0].sent[1], 1, "offer sent on rd0");
    assert_eq!(c.servers[0].requests_sent, 2);
    assert_eq!(c.servers[0].replies_received, 1);
}

#[test]
fn a_full_outbox_drops_with_a_reason_instead_of_growing() {
    let mut e = Engine::new(config());
    let mut outbox = Outbox::new(2);
    let bytes = Msg::request(MessageType::Discover).bytes();
    let ingress = Ingress {
        link_source: None,
        ifindex: DS_IF,
        src: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
        dst: Ipv4Addr::BROADCAST,
        data: &bytes,
    };
    let now = Timestamp::from_secs(1);
    assert!(matches!(e.handle_datagram(now, ingress, &mut outbox), Verdict::RelayedToServers { .. }));
    assert!(matches!(e.handle_datagram(now, ingress, &mut outbox), Verdict::RelayedToServers { .. }));
    assert_eq!(e.handle_datagram(now, ingress, &mut outbox), Verdict::Dropped(DropReason::OutboxFull));
    assert_eq!(outbox.len(), 2);
}

/// A classic RFC 951 BOOTP message: no magic cookie, the 64-byte vend field all zero
/// (300 bytes, RFC 1542 2.1).
fn plain_bootp(op: u8, giaddr: Ipv4Addr, yiaddr: Ipv4Addr) -> Vec<u8> {
    let mut b = vec![0u8; 300];
    b[..4].copy_from_slice(&[op, 1, 6, 0]);
    b[4..8].copy_from_slice(&0x0b00_7001u32.to_be_bytes());
    b[16..20].copy_from_slice(&yiaddr.octets());
    b[24..28].copy_from_slice(&giaddr.octets());
    b[28..34].copy_from_slice(&MAC);
    b[108..124].copy_from_slice(b"/tftpboot/vmunix");
    b
}

fn send_raw(h: &mut Harness, ifindex: u32, src: SocketAddrV4, dst: Ipv4Addr, data: &[u8]) -> Verdict {
    h.outbox.clear();
    let ingress = Ingress { link_source: None, ifindex, src, dst, data };
    h.engine.handle_datagram(h.now, ingress, &mut h.outbox)
}

#[test]
fn bootrequest_without_the_magic_cookie_is_relayed_and_its_bootreply_delivered() {
    // Defect 10: RFC 1542 relays forward any BOOTREQUEST; a plain BOOTP message has no
    // options field, so it goes out without option 82 (RFC 3046 adds it to the DHCP
    // options field), whatever option82.insert says.
    for insert in [false, true] {
        let mut c = config();
        c.option82.insert = insert;
        let mut h = Harness::new(c);
        let req = plain_bootp(1, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED);
        assert!(!Message::new_checked(&req[..]).expect("accepted by the wire layer").has_magic_cookie());
        let client = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68);
        assert_eq!(send_raw(&mut h, DS_IF, client, Ipv4Addr::BROADCAST, &req), Verdict::RelayedToServers { copies: 1 });
        let (dest, bytes) = h.only_sent();
        assert_eq!(dest, Destination::Server { addr: SERVER, relay_port: false });
        let out = Message::new_checked(&bytes[..]).expect("valid");
        assert_eq!((out.giaddr(), out.hops()), (DS_ADDR, 1), "insert {insert}");
        assert!(!out.has_magic_cookie());
        // Only giaddr and hops changed: same length, vend field untouched.
        assert_eq!(bytes.len(), req.len());
        let differing: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] != req[i]).collect();
        assert!(differing.iter().all(|&i| i == 3 || (24..28).contains(&i)), "changed bytes {differing:?}");

        // The server's BOOTREPLY (no cookie either) to our giaddr reaches the client.
        let yiaddr = Ipv4Addr::new(10, 77, 1, 150);
        let reply = plain_bootp(2, DS_ADDR, yiaddr);
        let server = SocketAddrV4::new(SERVER, 67);
        assert_eq!(send_raw(&mut h, US_IF, server, DS_ADDR, &reply), Verdict::DeliveredToClient);
        let (dest, bytes) = h.only_sent();
        assert_eq!(dest, Destination::ClientLink { ifindex: DS_IF, mac: MAC, src: DS_ADDR, dst: yiaddr });
        assert_eq!(bytes, reply, "delivered byte for byte");
    }
}

#[test]
fn bootrequest_without_the_magic_cookie_is_not_counted_as_too_large_for_option82() {
    let mut c = config();
    c.option82.insert = true;
    let mut h = Harness::new(c);
    let req = plain_bootp(1, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED);
    let client = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68);
    assert_eq!(send_raw(&mut h, DS_IF, client, Ipv4Addr::BROADCAST, &req), Verdict::RelayedToServers { copies: 1 });
    assert_eq!(h.engine.counters().option82_not_added_too_large, 0);
    assert_eq!(h.engine.counters().option82_not_added_no_options, 1);
}
