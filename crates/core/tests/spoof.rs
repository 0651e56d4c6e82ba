//! Spoofing mode (paper 4.2) in the core: the identity clients see, and the client
//! unicasts to a server that the engine takes.

mod common;

use std::net::Ipv4Addr;

use cdra_core::config::Mode;
use cdra_core::counters::ProxyEvent;
use cdra_core::{Destination, DropReason, EngineConfig, Verdict};
use cdra_wire::{Message, MessageType};

use common::*;

fn spoof_config() -> EngineConfig {
    let mut c = proxy_config();
    c.mode = Mode::Spoof;
    c
}

/// Option 54 and the IPv4 source of what the engine sent.
fn identity(sent: &(Destination, Vec<u8>)) -> (Option<Ipv4Addr>, Ipv4Addr) {
    let sid = Message::new_checked(&sent.1[..]).ok().and_then(|m| m.server_identifier());
    let src = match sent.0 {
        Destination::ClientLink { src, .. } | Destination::ClientUnicast { src, .. } => src,
        Destination::Server { .. } => Ipv4Addr::UNSPECIFIED,
    };
    (sid, src)
}

#[test]
fn relayed_and_local_answers_speak_as_the_server() {
    let mut h = Harness::new(spoof_config());
    let a = Client::new(1);
    // The server's OFFER and ACK reach the client as the server sent them, from its address.
    h.client_sends(&a.msg(MessageType::Discover));
    assert_eq!(h.server_sends(SERVER, &a.reply(MessageType::Offer, true)), Verdict::DeliveredToClient);
    assert_eq!(identity(&h.only_sent()), (Some(SERVER), SERVER));
    h.client_sends(&a.selecting(SERVER));
    assert_eq!(
        h.only_sent().0,
        Destination::Server { addr: SERVER, relay_port: false },
        "the REQUEST goes to the server it names"
    );
    assert_eq!(h.server_sends(SERVER, &a.reply(MessageType::Ack, true)), Verdict::DeliveredToClient);
    assert_eq!(identity(&h.only_sent()), (Some(SERVER), SERVER));
    // The client renews by unicast to the server: taken on the way, answered from the
    // table, as the server, at the link layer (the kernel would not route our datagram
    // from the server's address).
    assert_eq!(h.client_sends_to(SERVER, &a.renew()), Verdict::AnsweredLocally);
    let answer = &h.only_sent();
    assert_eq!(identity(answer), (Some(SERVER), SERVER));
    assert!(matches!(answer.0, Destination::ClientLink { dst, .. } if dst == a.addr));
    assert_eq!(h.engine.counters().proxy[ProxyEvent::Intercepted], 1);
    // A DISCOVER answered from the table: an OFFER from the server too.
    assert_eq!(h.client_sends(&a.msg(MessageType::Discover)), Verdict::AnsweredLocally);
    assert_eq!(identity(&h.only_sent()), (Some(SERVER), SERVER));
}

#[test]
fn only_unicasts_to_the_servers_are_taken() {
    let mut h = Harness::new(spoof_config());
    let a = Client::new(1);
    a.bind(&mut h);
    let elsewhere = Ipv4Addr::new(10, 77, 0, 77);
    assert_eq!(h.client_sends_to(elsewhere, &a.renew()), Verdict::Dropped(DropReason::NotAddressedToUs));
    assert_eq!(h.engine.intercepted_addresses().addresses(), &[SERVER]);
    // Proxy mode takes none: a renewal to the server goes past it.
    let mut p = Harness::new(proxy_config());
    a.bind(&mut p);
    assert_eq!(p.client_sends_to(SERVER, &a.renew()), Verdict::Dropped(DropReason::NotAddressedToUs));
    assert!(p.engine.intercepted_addresses().addresses().is_empty());
}

#[test]
fn a_server_identifier_first_seen_in_an_ack_is_intercepted_from_then_on() {
    let mut h = Harness::new(spoof_config());
    let mut announced = Vec::new();
    h.engine.drain_new_intercepts(|a| announced.push(a));
    assert_eq!(announced, [SERVER], "the configured servers, from the start");
    // A server that names itself by another address (a multi-homed server).
    let other_id = Ipv4Addr::new(10, 77, 0, 100);
    let a = Client::new(1);
    let mut offer = a.reply(MessageType::Offer, true);
    offer.options[0] = (54, other_id.octets().to_vec());
    let mut ack = a.reply(MessageType::Ack, true);
    ack.options[0] = (54, other_id.octets().to_vec());
    h.client_sends(&a.msg(MessageType::Discover));
    h.server_sends(SERVER, &offer);
    h.client_sends(&a.selecting(other_id));
    assert_eq!(h.server_sends(SERVER, &ack), Verdict::DeliveredToClient);
    announced.clear();
    h.engine.drain_new_intercepts(|a| announced.push(a));
    assert_eq!(announced, [other_id]);
    assert_eq!(h.client_sends_to(other_id, &a.renew()), Verdict::AnsweredLocally);
    // A NAK of ours speaks as that server too.
    let mut c = spoof_config();
    c.proxy.safe_network = false;
    let mut h = Harness::new(c);
    a.bind(&mut h);
    assert_eq!(h.client_sends(&a.init_reboot()), Verdict::AwaitingProbe);
    h.probe_answer(a.addr, Some([0x02, 0xee, 0, 0, 0, 1]));
    let nak = h.only_sent();
    assert_eq!(Message::new_checked(&nak.1[..]).ok().and_then(|m| m.message_type()), Some(MessageType::Nak));
    assert_eq!(identity(&nak), (Some(SERVER), SERVER));
}
