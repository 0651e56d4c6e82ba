//! Issue 10, items 1 to 4: a hostile network. Forged server replies never enter the table,
//! strangers cannot act for a client, forged probe answers decide nothing, floods are
//! bounded. Each test fails on the engine before issue 10 (the commit before it).

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use cdra_core::config::{Downstream, Ipv4Net};
use cdra_core::counters::ProxyEvent;
use cdra_core::table::{ClientState, Removal};
use cdra_core::{DropReason, EchoId, EngineConfig, Ingress, ProbeAnswer, Rate, Verdict};
use cdra_wire::MessageType;

use common::*;

/// Cached and bound: the client's record holds the server's ACK.
fn cached(h: &Harness, c: &Client) -> bool {
    record(h, c).is_some_and(|r| r.reply.is_some() && r.address == c.addr)
}

/// A datagram that arrives on the downstream link (the client segment) from `src`.
fn on_client_link(h: &mut Harness, src: Ipv4Addr, m: &Msg) -> Verdict {
    h.outbox.clear();
    let bytes = m.bytes();
    let ingress =
        Ingress { ifindex: DS_IF, link_source: None, src: SocketAddrV4::new(src, 67), dst: DS_ADDR, data: &bytes };
    h.engine.handle_datagram(h.now, ingress, &mut h.outbox)
}

// ------------------------------------------------------------------ item 1: forged replies

#[test]
fn a_server_reply_forged_on_the_client_link_is_never_relayed_nor_cached() {
    // The attack seen end to end: the server is down, a host on the client segment answers a
    // new client's DISCOVER and REQUEST with an OFFER and ACK to cdra's downstream address,
    // its IPv4 source spoofed as the server's.
    let mut h = Harness::new(proxy_config());
    let victim = Client::new(1);
    h.client_sends(&victim.msg(MessageType::Discover));
    let mut offer = victim.reply(MessageType::Offer, true);
    offer.options.push((3, vec![10, 77, 1, 66])); // the attacker as router
    assert_eq!(on_client_link(&mut h, SERVER, &offer), Verdict::Dropped(DropReason::ReplyOnDownstream));
    assert!(h.sent().is_empty(), "nothing reaches the client");
    h.client_sends(&victim.selecting(SERVER));
    let mut ack = victim.reply(MessageType::Ack, true);
    ack.options[1] = (51, u32::MAX.to_be_bytes().to_vec()); // an infinite lease
    assert_eq!(on_client_link(&mut h, SERVER, &ack), Verdict::Dropped(DropReason::ReplyOnDownstream));
    assert!(h.sent().is_empty());
    assert!(!cached(&h, &victim));
    assert_eq!(h.engine.counters().total_dropped(DropReason::ReplyOnDownstream), 2);
}

#[test]
fn a_reply_that_answers_no_request_creates_no_record() {
    let mut h = Harness::new(proxy_config());
    let stranger = Client::new(7);
    for kind in [MessageType::Ack, MessageType::Offer] {
        assert_eq!(h.server_sends(SERVER, &stranger.reply(kind, true)), Verdict::Dropped(DropReason::ReplyUnmatched));
    }
    let mut bootreply = stranger.reply(MessageType::Ack, false);
    bootreply.kind = None;
    assert_eq!(h.server_sends(SERVER, &bootreply), Verdict::Dropped(DropReason::ReplyUnmatched));
    assert!(h.engine.table().is_empty(), "a reply never creates a record");
    assert!(h.sent().is_empty());
}

#[test]
fn a_forged_reply_with_another_xid_or_from_another_server_is_not_believed() {
    let mut c = proxy_config();
    c.servers.push(SERVER2);
    let mut h = Harness::new(c);
    let a = Client::new(1);
    a.bind(&mut h);
    // The client renews; we forward it to its own server only (it is not cached for a
    // renewal the table cannot answer: make the record unable to answer).
    h.advance(3600 - 5);
    assert_eq!(h.client_sends_to(DS_ADDR, &a.renew()), Verdict::RelayedToServers { copies: 1 });
    let mut forged = a.reply(MessageType::Ack, true);
    forged.xid = 0xdead_beef;
    forged.yiaddr = Ipv4Addr::new(10, 77, 1, 66);
    assert_eq!(h.server_sends(SERVER, &forged), Verdict::Dropped(DropReason::ReplyUnmatched));
    let mut other_server = a.reply(MessageType::Ack, true);
    other_server.yiaddr = Ipv4Addr::new(10, 77, 1, 66);
    assert_eq!(h.server_sends(SERVER2, &other_server), Verdict::Dropped(DropReason::ReplyFromWrongServer));
    assert_eq!(record(&h, &a).map(|r| r.address), Some(a.addr));
    // The real answer is still believed.
    assert_eq!(h.server_sends(SERVER, &a.reply(MessageType::Ack, true)), Verdict::DeliveredToClient);
}

#[test]
fn a_forged_nak_cannot_remove_a_record_it_does_not_match() {
    let mut h = Harness::new(proxy_config());
    let a = Client::new(1);
    a.bind(&mut h);
    h.advance(3600 - 5);
    assert_eq!(h.client_sends_to(DS_ADDR, &a.renew()), Verdict::RelayedToServers { copies: 1 });
    let mut nak = a.reply(MessageType::Nak, true);
    nak.xid = 0x0bad_cafe;
    assert_eq!(h.server_sends(SERVER, &nak), Verdict::Dropped(DropReason::ReplyUnmatched));
    assert!(cached(&h, &a), "the client keeps its record");
    assert_eq!(h.engine.counters().proxy.removed[Removal::ServerNak], 0);
}

#[test]
fn a_reply_after_reply_timeout_is_not_believed() {
    let mut h = Harness::new(proxy_config());
    let a = Client::new(1);
    h.client_sends(&a.msg(MessageType::Discover));
    h.advance(31);
    assert_eq!(
        h.server_sends(SERVER, &a.reply(MessageType::Offer, true)),
        Verdict::Dropped(DropReason::ReplyUnmatched)
    );
}

#[test]
fn forged_replies_are_no_sign_of_a_servers_life() {
    let mut h = Harness::new(proxy_config());
    let a = Client::new(1);
    for _ in 0..5 {
        h.server_sends(SERVER, &a.reply(MessageType::Ack, true));
    }
    assert_eq!(h.engine.counters().servers[0].replies_received, 0);
    assert!(h.engine.servers().servers()[0].last_reply_at.is_none());
}

// ------------------------------------------------------------------ item 2: strangers

#[test]
fn a_release_with_another_address_does_not_remove_the_record() {
    let mut h = Harness::new(proxy_config());
    let a = Client::new(1);
    a.bind(&mut h);
    let mut release = a.msg(MessageType::Release);
    release.ciaddr = Ipv4Addr::new(10, 77, 1, 222);
    release.options.push((54, DS_ADDR.octets().to_vec()));
    assert_eq!(h.client_sends_to(DS_ADDR, &release), Verdict::Dropped(DropReason::ReleaseMismatch));
    assert!(h.sent().is_empty(), "not forwarded either: the server would release the client's lease");
    assert!(cached(&h, &a));
    // The client's own RELEASE still works (Table 1).
    let mut release = a.msg(MessageType::Release);
    release.ciaddr = a.addr;
    release.options.push((54, DS_ADDR.octets().to_vec()));
    assert_eq!(h.client_sends_to(DS_ADDR, &release), Verdict::RelayedToServers { copies: 1 });
    assert!(record(&h, &a).is_none());
    assert_eq!(h.engine.counters().proxy.removed[Removal::ClientGaveUp], 1);
}

#[test]
fn a_release_or_decline_sent_from_another_machine_does_not_remove_the_record() {
    let mut h = Harness::new(proxy_config());
    let a = Client::new(1);
    a.bind(&mut h);
    let stranger_mac = [0x02, 0xee, 0, 0, 0, 9];
    let mut release = a.msg(MessageType::Release);
    release.ciaddr = a.addr; // everything right but the Ethernet source
    assert_eq!(h.client_sends_from(stranger_mac, &release), Verdict::Dropped(DropReason::ReleaseMismatch));
    let mut decline = a.msg(MessageType::Decline);
    decline.options.push((50, a.addr.octets().to_vec()));
    assert_eq!(h.client_sends_from(stranger_mac, &decline), Verdict::Dropped(DropReason::ReleaseMismatch));
    let mut wrong = a.msg(MessageType::Decline);
    wrong.options.push((50, Ipv4Addr::new(10, 77, 1, 222).octets().to_vec()));
    assert_eq!(h.client_sends(&wrong), Verdict::Dropped(DropReason::ReleaseMismatch));
    assert!(cached(&h, &a));
    assert_eq!(h.engine.counters().proxy[ProxyEvent::UnverifiedSource], 2);
}

#[test]
fn a_request_from_another_machine_is_relayed_without_the_cache() {
    let mut h = Harness::new(proxy_config());
    let a = Client::new(1);
    a.bind(&mut h);
    let stranger_mac = [0x02, 0xee, 0, 0, 0, 9];
    // A DISCOVER naming the client (its chaddr and option 61) from another Ethernet source:
    // not answered from the client's record, and its answer never cached.
    let v = h.client_sends_from(stranger_mac, &a.msg(MessageType::Discover));
    assert_eq!(v, Verdict::RelayedToServers { copies: 1 });
    assert_eq!(h.server_sends(SERVER, &a.reply(MessageType::Offer, true)), Verdict::DeliveredToClient);
    assert_eq!(record(&h, &a).map(|r| r.state), Some(ClientState::Bound), "the record is untouched");
}

fn two_links() -> EngineConfig {
    let mut c = proxy_config();
    c.downstream.push(Downstream::up(
        "rd1",
        9,
        Ipv4Net { addr: Ipv4Addr::new(10, 77, 2, 1), prefix_len: 24 },
        Some([0x02, 0, 0, 0, 0, 2]),
    ));
    c
}

#[test]
fn a_discover_with_the_clients_identity_from_another_link_neither_moves_nor_removes_it() {
    let mut h = Harness::new(two_links());
    let a = Client::new(1);
    a.bind(&mut h);
    let m = a.msg(MessageType::Discover);
    let bytes = m.bytes();
    h.outbox.clear();
    let ingress = Ingress {
        ifindex: 9,
        link_source: Some(a.mac),
        src: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
        dst: Ipv4Addr::BROADCAST,
        data: &bytes,
    };
    assert!(matches!(h.engine.handle_datagram(h.now, ingress, &mut h.outbox), Verdict::RelayedToServers { .. }));
    let r = record(&h, &a).expect("still there");
    assert_eq!((r.downstream, r.address, r.state), (0, a.addr, ClientState::Bound));
    assert_eq!(h.engine.counters().proxy.removed[Removal::WrongSubnet], 0);
    // And the client on its own link is still answered from the table.
    assert_eq!(h.client_sends(&a.msg(MessageType::Discover)), Verdict::AnsweredLocally);
}

#[test]
fn a_client_that_really_moved_is_followed_once_the_server_answers_on_the_new_link() {
    let mut h = Harness::new(two_links());
    let a = Client::new(1);
    a.bind(&mut h);
    let new_addr = Ipv4Addr::new(10, 77, 2, 50);
    let bytes = a.msg(MessageType::Discover).bytes();
    let ingress = Ingress {
        ifindex: 9,
        link_source: Some(a.mac),
        src: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
        dst: Ipv4Addr::BROADCAST,
        data: &bytes,
    };
    h.outbox.clear();
    h.engine.handle_datagram(h.now, ingress, &mut h.outbox);
    let mut offer = a.reply(MessageType::Offer, true);
    offer.giaddr = Ipv4Addr::new(10, 77, 2, 1);
    offer.yiaddr = new_addr;
    assert_eq!(h.server_sends(SERVER, &offer), Verdict::DeliveredToClient);
    let mut request = a.msg(MessageType::Request);
    request.options.push((54, Ipv4Addr::new(10, 77, 2, 1).octets().to_vec()));
    request.options.push((50, new_addr.octets().to_vec()));
    let bytes = request.bytes();
    let ingress = Ingress { data: &bytes, ..ingress };
    h.outbox.clear();
    assert!(matches!(h.engine.handle_datagram(h.now, ingress, &mut h.outbox), Verdict::RelayedToServers { .. }));
    let mut ack = a.reply(MessageType::Ack, true);
    ack.giaddr = Ipv4Addr::new(10, 77, 2, 1);
    ack.yiaddr = new_addr;
    assert_eq!(h.server_sends(SERVER, &ack), Verdict::DeliveredToClient);
    let r = record(&h, &a).expect("record");
    assert_eq!((r.downstream, r.address), (1, new_addr));
}

#[test]
fn an_init_reboot_with_the_clients_identifier_from_another_machine_costs_the_client_nothing() {
    let mut c = proxy_config();
    c.proxy.safe_network = false;
    let mut h = Harness::new(c);
    let a = Client::new(1);
    a.bind(&mut h);
    // A stranger with its own MAC but the client's option 61 asks for the client's address.
    let stranger_mac = [0x02, 0xee, 0, 0, 0, 9];
    let mut m = a.init_reboot();
    m.chaddr = stranger_mac.to_vec();
    assert_eq!(h.client_sends(&m), Verdict::AwaitingProbe);
    // The client itself is up and answers the probe: the stranger is NAKed, the client
    // keeps its record.
    h.probe_answer(a.addr, Some(a.mac));
    let (_, nak) = h.only_sent();
    assert_eq!(cdra_wire::Message::new_checked(&nak[..]).ok().and_then(|m| m.message_type()), Some(MessageType::Nak));
    assert!(cached(&h, &a));
    assert_eq!(h.engine.counters().proxy[ProxyEvent::ProbeOwnerAnswered], 1);
    assert_eq!(h.engine.counters().proxy.removed[Removal::AddressInUse], 0);
}

// ------------------------------------------------------------------ item 3: probe answers

#[test]
fn only_an_echo_reply_carrying_the_probes_identifier_counts() {
    let mut c = proxy_config();
    c.proxy.safe_network = false;
    let mut h = Harness::new(c);
    let a = Client::new(1);
    a.bind(&mut h);
    assert_eq!(h.client_sends(&a.init_reboot()), Verdict::AwaitingProbe);
    let probe = *h.probes.last().expect("a probe");
    // Spoofed echo replies with guessed identifiers (the old fixed one among them) and a
    // right identifier from the wrong address: nothing decided.
    for echo in [EchoId { ident: 0xcd7a, seq: 1 }, EchoId { ident: probe.echo.ident, seq: probe.echo.seq ^ 1 }] {
        h.probe_answer_raw(ProbeAnswer::Echo { address: a.addr, echo });
    }
    h.probe_answer_raw(ProbeAnswer::Echo { address: Ipv4Addr::new(10, 77, 1, 99), echo: probe.echo });
    h.run_timers(1);
    let (_, ack) = h.only_sent();
    assert_eq!(cdra_wire::Message::new_checked(&ack[..]).ok().and_then(|m| m.message_type()), Some(MessageType::Ack));
    assert!(cached(&h, &a));
    // Two probes draw different identifiers.
    h.advance(2);
    assert_eq!(h.client_sends(&a.init_reboot()), Verdict::AwaitingProbe);
    assert_ne!(h.probes.last().map(|p| p.echo), Some(probe.echo));
    // The right identifier from the probed address: in use.
    h.probe_answer(a.addr, None);
    h.run_timers(1);
    let (_, nak) = h.only_sent();
    assert_eq!(cdra_wire::Message::new_checked(&nak[..]).ok().and_then(|m| m.message_type()), Some(MessageType::Nak));
}

// ------------------------------------------------------------------ item 4: floods

#[test]
fn a_flood_of_new_clients_never_evicts_a_bound_one() {
    // 1,000 cached clients fell to 617 after 100k spoofed DISCOVERs.
    let mut c = proxy_config();
    c.proxy.max_clients = 1000;
    c.limits.interface_rate = Rate::UNLIMITED;
    let mut h = Harness::new(c);
    let clients: Vec<Client> = (1..=1000).map(Client::new).collect();
    for a in &clients {
        let mut m = a.msg(MessageType::Discover);
        m.xid = u32::from(a.mac[4]) << 8 | u32::from(a.mac[5]);
        a.bind(&mut h);
    }
    assert_eq!(h.engine.table().bound_len(), 1000);
    for i in 0..100_000u32 {
        let mut m = Msg::request(MessageType::Discover);
        m.chaddr = vec![0x02, 0xff, (i >> 16) as u8, (i >> 8) as u8, i as u8, 1];
        m.xid = i;
        h.client_sends(&m);
    }
    assert_eq!(h.engine.table().bound_len(), 1000, "every bound client is still there");
    assert!(clients.iter().all(|a| cached(&h, a)));
    assert_eq!(h.engine.table().pending_len(), h.engine.config().limits.pending_clients);
    assert_eq!(h.engine.counters().proxy.removed[Removal::Evicted], 0);
    assert!(h.engine.outstanding_requests().len() <= h.engine.config().limits.transactions);
}

#[test]
fn the_interface_budget_stops_a_flood_of_new_clients_but_not_known_ones() {
    let mut c = proxy_config();
    c.limits.interface_rate = Rate { per_second: 100, burst: 200 };
    let mut h = Harness::new(c);
    let a = Client::new(1);
    a.bind(&mut h);
    let mut forwarded = 0;
    for i in 0..5_000u32 {
        let mut m = Msg::request(MessageType::Discover);
        m.chaddr = vec![0x02, 0xff, 0, (i >> 8) as u8, i as u8, 1];
        if matches!(h.client_sends(&m), Verdict::RelayedToServers { .. }) {
            forwarded += 1;
        }
    }
    assert!(forwarded <= 200, "{forwarded} flood requests reached the server");
    assert!(h.engine.counters().total_dropped(DropReason::InterfaceRateLimited) >= 4_800);
    // The known client is answered all the same.
    assert_eq!(h.client_sends(&a.msg(MessageType::Discover)), Verdict::AnsweredLocally);
}

#[test]
fn one_client_cannot_flood_and_its_lapse_timer_stays_one() {
    // 200,000 RENEWs from one client added 200,000 lapse-heap entries.
    let mut c = proxy_config();
    c.proxy.client_lease = Some(Duration::from_secs(60));
    let mut h = Harness::new(c);
    let a = Client::new(1);
    a.bind(&mut h);
    let before = h.engine.timers_filed();
    let mut answered = 0;
    for _ in 0..200_000 {
        if h.client_sends_to(DS_ADDR, &a.renew()) == Verdict::AnsweredLocally {
            answered += 1;
        }
    }
    let limits = &h.engine.config().limits;
    assert!(answered <= limits.client_rate.burst as usize, "{answered} answered in one instant");
    assert!(h.engine.timers_filed() <= before + 1, "{} timers filed", h.engine.timers_filed());
    assert!(h.engine.counters().total_dropped(DropReason::ClientRateLimited) >= 199_000);
    // Allowed as many as its rate later: the client is served again.
    h.advance(1);
    assert_eq!(h.client_sends_to(DS_ADDR, &a.renew()), Verdict::AnsweredLocally);
    // Even with no rate limit, answering 200,000 renewals files at most one lapse timer.
    let mut c = proxy_config();
    c.proxy.client_lease = Some(Duration::from_secs(60));
    c.limits.client_rate = Rate::UNLIMITED;
    let mut h = Harness::new(c);
    a.bind(&mut h);
    let before = h.engine.timers_filed();
    for _ in 0..200_000 {
        h.client_sends_to(DS_ADDR, &a.renew());
    }
    assert!(h.engine.timers_filed() <= before + 1, "{} timers filed", h.engine.timers_filed());
}

#[test]
fn outstanding_requests_are_bounded_and_the_oldest_go_first() {
    let mut c = proxy_config();
    c.limits.transactions = 64;
    c.limits.interface_rate = Rate::UNLIMITED;
    let mut h = Harness::new(c);
    for i in 0..1000u32 {
        let mut m = Msg::request(MessageType::Discover);
        m.chaddr = vec![0x02, 0xff, 0, (i >> 8) as u8, i as u8, 1];
        m.xid = i;
        h.client_sends(&m);
    }
    assert_eq!(h.engine.outstanding_requests().len(), 64);
    assert_eq!(h.engine.counters().transactions_evicted, 1000 - 64);
}
