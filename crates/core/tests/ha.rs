//! A DHCP server pair (Kea HA) behind the relay: a server that declines a client on purpose
//! (a load-balancing partner answers only its half of the clients, a hot standby nobody)
//! is not a dead one, and the clients it declines are still served (issue 15 item 1).

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use cdra_core::config::ServerSelection;
use cdra_core::{Destination, Verdict};
use cdra_wire::MessageType;

use common::*;

fn pair(selection: ServerSelection) -> Harness {
    let mut c = config();
    c.servers = vec![SERVER, SERVER2];
    c.server_selection = selection;
    c.server_timeout = Duration::from_secs(10);
    c.server_unanswered_limit = 3;
    c.server_retry_interval = Duration::from_secs(30);
    Harness::new(c)
}

fn client(i: u8) -> (u32, Vec<u8>) {
    (0x1000_0000 + u32::from(i), vec![0x02, 0, 0, 0, 0x10, i])
}

fn request(kind: MessageType, (xid, mac): &(u32, Vec<u8>)) -> Msg {
    Msg { xid: *xid, chaddr: mac.clone(), ..Msg::request(kind) }
}

fn reply(kind: MessageType, (xid, mac): &(u32, Vec<u8>), server: Ipv4Addr) -> Msg {
    let mut m = Msg { xid: *xid, chaddr: mac.clone(), ..Msg::reply(kind) };
    m.options = vec![(54, server.octets().to_vec()), (51, 3600u32.to_be_bytes().to_vec())];
    m
}

fn selecting(c: &(u32, Vec<u8>), server: Ipv4Addr) -> Msg {
    let mut m = request(MessageType::Request, c);
    m.options.push((54, server.octets().to_vec()));
    m.options.push((50, vec![10, 77, 1, 150]));
    m
}

fn to(h: &Harness) -> Vec<Ipv4Addr> {
    h.sent()
        .into_iter()
        .filter_map(|(d, _)| match d {
            Destination::Server { addr, .. } => Some(addr),
            _ => None,
        })
        .collect()
}

/// The regression of issue 15 item 1: in `failover` selection in front of a
/// load-balancing pair, the first server ignores the clients of its partner's half. Those
/// unanswered requests made it "down" (three of them, the oldest older than
/// `server_timeout`), though it kept answering its own half, and the partner's clients
/// were served only once it was. Now a retransmission nobody answered also goes to the
/// partner, and a request the partner answered does not count against a server that
/// answers others.
#[test]
fn a_load_balancing_partner_that_declines_half_the_clients_is_not_down() {
    let mut h = pair(ServerSelection::Failover);
    let (a, b, c) = (client(1), client(2), client(3));
    // A is the first server's: answered.
    h.client_sends(&request(MessageType::Discover, &a));
    assert_eq!(to(&h), vec![SERVER]);
    assert_eq!(h.server_sends(SERVER, &reply(MessageType::Offer, &a, SERVER)), Verdict::DeliveredToClient);
    // B is the partner's: the first server stays silent; B's retransmission reaches the
    // partner as well, which answers it.
    h.client_sends(&request(MessageType::Discover, &b));
    assert_eq!(to(&h), vec![SERVER]);
    h.advance(4);
    h.client_sends(&request(MessageType::Discover, &b));
    assert_eq!(to(&h), vec![SERVER, SERVER2], "B's retransmission goes to the partner too");
    assert_eq!(h.server_sends(SERVER2, &reply(MessageType::Offer, &b, SERVER2)), Verdict::DeliveredToClient);
    // B's REQUEST for the partner's OFFER goes to the partner.
    h.client_sends(&selecting(&b, SERVER2));
    assert!(to(&h).contains(&SERVER2), "the REQUEST naming the partner goes there: {:?}", to(&h));
    assert_eq!(h.server_sends(SERVER2, &reply(MessageType::Ack, &b, SERVER2)), Verdict::DeliveredToClient);
    // A renews through the relay (its server answers), C is the partner's too.
    h.advance(2);
    let a2 = (a.0 + 1, a.1.clone());
    h.client_sends(&request(MessageType::Discover, &a2));
    assert_eq!(to(&h), vec![SERVER]);
    h.server_sends(SERVER, &reply(MessageType::Offer, &a2, SERVER));
    h.advance(2);
    h.client_sends(&request(MessageType::Discover, &c));
    assert_eq!(to(&h), vec![SERVER]);
    h.advance(4);
    h.client_sends(&request(MessageType::Discover, &c));
    assert_eq!(to(&h), vec![SERVER, SERVER2]);
    assert_eq!(h.server_sends(SERVER2, &reply(MessageType::Offer, &c, SERVER2)), Verdict::DeliveredToClient);
    // 12 s after the first request it ignored, with five requests ignored: the first
    // server is up, and a new client still goes to it alone.
    h.advance(4);
    assert!(h.engine.servers().is_up(0, h.now), "{:?}", h.engine.servers().servers()[0]);
    assert!(h.engine.servers().is_up(1, h.now));
    let d = client(4);
    h.client_sends(&request(MessageType::Discover, &d));
    assert_eq!(to(&h), vec![SERVER]);
}

/// The other side of the rule: a server that answers nothing gets no credit for the
/// requests its partner answers in its place (a dead hot-standby primary): it is found
/// down, and new clients go straight to the partner.
#[test]
fn a_dead_primary_is_found_down_though_its_partner_answers_for_it() {
    let mut h = pair(ServerSelection::Failover);
    for i in 1..=3u8 {
        let c = client(i);
        h.client_sends(&request(MessageType::Discover, &c));
        assert_eq!(to(&h), vec![SERVER]);
        h.advance(4);
        h.client_sends(&request(MessageType::Discover, &c));
        if h.engine.servers().is_up(0, h.now) {
            assert_eq!(to(&h), vec![SERVER, SERVER2]);
        }
        h.server_sends(SERVER2, &reply(MessageType::Offer, &c, SERVER2));
    }
    assert!(!h.engine.servers().is_up(0, h.now), "{:?}", h.engine.servers().servers()[0]);
    let c = client(9);
    h.client_sends(&request(MessageType::Discover, &c));
    assert_eq!(to(&h), vec![SERVER2]);
}

/// `all` selection in front of a load-balancing pair: every request reaches both servers,
/// each answers its half; neither is ever down, however the clients interleave.
#[test]
fn with_all_selection_neither_half_of_a_load_balancing_pair_is_down() {
    let mut h = pair(ServerSelection::All);
    // One client of the first server's half, then a long run of the partner's.
    let a = client(1);
    h.client_sends(&request(MessageType::Discover, &a));
    h.server_sends(SERVER, &reply(MessageType::Offer, &a, SERVER));
    for i in 2..=6u8 {
        h.advance(2);
        let c = client(i);
        h.client_sends(&request(MessageType::Discover, &c));
        assert_eq!(to(&h), vec![SERVER, SERVER2]);
        h.server_sends(SERVER2, &reply(MessageType::Offer, &c, SERVER2));
    }
    h.advance(2);
    assert!(h.engine.servers().is_up(0, h.now), "{:?}", h.engine.servers().servers()[0]);
    assert!(h.engine.servers().is_up(1, h.now));
}
