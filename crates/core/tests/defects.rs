//! Regression tests for the defects of issue 9, one test (or a few) per defect, named after
//! it. Every Msg from `common` carries xid 0x12345678, so any two clients here share an xid.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use cdra_core::counters::ProxyEvent;
use cdra_core::table::ClientState;
use cdra_core::{DiscardReason, DropReason, Ingress, Outbox, Timestamp, Verdict};
use cdra_wire::{Message, MessageType};

use common::*;

/// A harness whose clients get `secs`-second leases, and client 1 bound through it.
fn bound_with_client_lease(secs: u64) -> (Harness, Client) {
    let mut c = proxy_config();
    c.proxy.client_lease = Some(Duration::from_secs(secs));
    let mut h = Harness::new(c);
    let a = Client::new(1);
    a.bind(&mut h);
    (h, a)
}

fn lease_of(bytes: &[u8]) -> Option<u32> {
    Message::new_checked(bytes).ok()?.lease_time()
}

fn event(h: &Harness, e: ProxyEvent) -> u64 {
    h.engine.counters().proxy[e]
}

// Defect 1: a lapsed client whose own MAC answers the probe keeps its record.

#[test]
fn defect_1_a_lapsed_client_that_answers_the_probe_itself_keeps_its_record_and_renews_locally() {
    let (mut h, a) = bound_with_client_lease(10);
    // udhcpc raised the 10 s lease to 30 s and renews at 15 s: the short lease lapses first.
    for round in 0..4 {
        h.run_timers(20);
        assert_eq!(h.outbox.probes().len(), 1, "round {round}: the lapse is probed");
        h.probe_answer(a.addr, Some(a.mac));
        assert!(h.sent().is_empty(), "round {round}: nothing released, nothing sent");
        assert!(record(&h, &a).is_some(), "round {round}: record kept");
        h.advance(3);
        assert_eq!(h.client_sends_to(DS_ADDR, &a.renew()), Verdict::AnsweredLocally, "round {round}");
        assert_eq!(h.sent().len(), 1, "round {round}: the local ACK, and no server renewal (lease not past T1)");
    }
    assert_eq!(event(&h, ProxyEvent::LapsedClientStillThere), 4);
    assert_eq!(event(&h, ProxyEvent::ProbeFoundInUse), 0);
    assert_eq!(event(&h, ProxyEvent::ReleaseSent), 0);
}

/// A guard for the fix: another host on the address is still Appendix A.2.
#[test]
fn defect_1_another_mac_on_a_lapsed_address_drops_the_record_and_releases_nothing() {
    let (mut h, a) = bound_with_client_lease(10);
    h.run_timers(20);
    assert_eq!(h.outbox.probes().len(), 1);
    h.probe_answer(a.addr, Some([0x02, 0xee, 0xee, 0xee, 0xee, 0xee]));
    assert!(h.sent().is_empty(), "Appendix A.2: nothing released");
    assert!(record(&h, &a).is_none());
    assert_eq!(event(&h, ProxyEvent::LapsedStillInUse), 1);
    h.run_timers(10);
    assert!(h.sent().is_empty(), "the probe's own timeout sends nothing later");
}

/// A guard for the fix: an answer without a MAC is not taken for the client.
#[test]
fn defect_1_an_icmp_only_answer_to_a_lapse_probe_counts_as_in_use() {
    let (mut h, a) = bound_with_client_lease(10);
    h.run_timers(20);
    h.probe_answer(a.addr, None);
    h.run_timers(5);
    assert!(h.sent().is_empty());
    assert!(record(&h, &a).is_none());
    assert_eq!(event(&h, ProxyEvent::LapsedStillInUse), 1);
}

// Defect 2: a reply is patched through the datagram it was written to, or not at all.

#[test]
fn defect_2_an_ack_that_could_not_be_delivered_records_no_short_lease_and_patches_nothing_else() {
    let mut c = proxy_config();
    c.proxy.client_lease = Some(Duration::from_secs(60));
    let mut h = Harness::new(c);
    h.outbox = Outbox::new(1);
    let (a, b) = (Client::new(1), Client::new(2));
    h.client_sends(&a.msg(MessageType::Discover));
    h.server_sends(SERVER, &a.reply(MessageType::Offer, true));
    h.client_sends(&a.selecting(DS_ADDR));
    // B's DISCOVER (its own xid, and a lease hint a patch could change) is forwarded and
    // fills the one-datagram outbox; A's ACK then arrives.
    let mut discover = b.msg(MessageType::Discover);
    discover.options.push((51, 7200u32.to_be_bytes().to_vec()));
    let mut discover = discover.bytes();
    discover[4..8].copy_from_slice(&0x0bad_cafeu32.to_be_bytes());
    h.outbox.clear();
    let ingress = Ingress {
        link_source: None,
        ifindex: DS_IF,
        src: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
        dst: Ipv4Addr::BROADCAST,
        data: &discover,
    };
    assert!(matches!(h.engine.handle_datagram(h.now, ingress, &mut h.outbox), Verdict::RelayedToServers { .. }));
    let queued = h.sent();
    let ack = a.reply(MessageType::Ack, true).bytes();
    let ingress =
        Ingress { link_source: None, ifindex: US_IF, src: SocketAddrV4::new(SERVER, 67), dst: DS_ADDR, data: &ack };
    let verdict = h.engine.handle_datagram(h.now, ingress, &mut h.outbox);
    assert_eq!(verdict, Verdict::Dropped(DropReason::OutboxFull));
    assert_eq!(h.sent(), queued, "the datagram queued before is untouched");
    assert_eq!(record(&h, &a).and_then(|r| r.client_lease_end()), None, "no short lease was sent");
}

/// A guard for the fix (the delivered ACK is still the one patched).
#[test]
fn defect_2_the_short_lease_goes_into_the_ack_delivered() {
    let (h, a) = bound_with_client_lease(60);
    let (_, bytes) = h.only_sent();
    assert_eq!(lease_of(&bytes), Some(60));
    assert!(record(&h, &a).and_then(|r| r.client_lease_end()).is_some());
}

// Defect 3: every drop and discard has a reason and a counter.

#[test]
fn defect_3_a_retransmission_during_a_probe_is_counted() {
    let mut h = Harness::new(proxy_config());
    let a = Client::new(1);
    a.bind(&mut h);
    h.advance(60);
    assert_eq!(h.client_sends(&a.init_reboot()), Verdict::AwaitingProbe);
    assert_eq!(h.client_sends(&a.init_reboot()), Verdict::Discarded(DiscardReason::RetransmissionDuringProbe));
    assert_eq!(h.engine.counters().proxy.discarded[DiscardReason::RetransmissionDuringProbe], 1);
}

#[test]
fn defect_3_every_discard_reason_and_event_has_a_distinct_label() {
    let mut labels: Vec<&str> = ProxyEvent::ALL.iter().map(|e| e.label()).collect();
    labels.extend(DiscardReason::ALL.iter().map(|d| d.label()));
    labels.extend(DropReason::ALL.iter().map(|d| d.label()));
    assert!(!labels.contains(&"bad_option82"), "a reason nothing produces");
    let n = labels.len();
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), n);
    for (i, e) in ProxyEvent::ALL.iter().enumerate() {
        assert_eq!(e.index(), i);
        assert!(!e.help().is_empty());
    }
}

#[test]
fn defect_3_a_release_that_cannot_be_sent_is_counted() {
    let mut c = proxy_config();
    c.proxy.client_lease = Some(Duration::from_secs(10));
    c.proxy.safe_network = true;
    let mut h = Harness::new(c.clone());
    let a = Client::new(1);
    a.bind(&mut h);
    // A record whose server is unknown (a store written with a server no longer configured).
    let mut rec = record(&h, &a).expect("record");
    rec.set_server(None);
    let mut fresh = Harness::new(c);
    fresh.now = h.now;
    fresh.engine.restore(fresh.now, vec![(rec, "rd0".to_string())]);
    fresh.run_timers(30);
    fresh.run_timers(30);
    assert!(fresh.sent().is_empty());
    assert_eq!(event(&fresh, ProxyEvent::ReleaseNotSent), 1);
    assert!(record(&fresh, &a).is_none(), "the lapsed record goes all the same");
}

// Defect 4: two clients with one xid.

#[test]
fn defect_4_two_clients_sharing_an_xid_each_get_their_own_ack() {
    let mut h = Harness::new(proxy_config());
    let (a, b) = (Client::new(1), Client::new(2));
    h.client_sends(&a.msg(MessageType::Discover));
    h.client_sends(&b.msg(MessageType::Discover));
    // A server that does not echo option 61: only xid and chaddr tell the replies apart.
    assert_eq!(h.server_sends(SERVER, &a.reply(MessageType::Offer, false)), Verdict::DeliveredToClient);
    assert_eq!(h.server_sends(SERVER, &b.reply(MessageType::Offer, false)), Verdict::DeliveredToClient);
    h.client_sends(&a.selecting(DS_ADDR));
    h.client_sends(&b.selecting(DS_ADDR));
    assert_eq!(h.server_sends(SERVER, &a.reply(MessageType::Ack, false)), Verdict::DeliveredToClient);
    let (_, bytes) = h.only_sent();
    assert_eq!(Message::new_checked(&bytes[..]).map(|m| m.chaddr().to_vec()).ok(), Some(a.mac.to_vec()));
    assert_eq!(h.server_sends(SERVER, &b.reply(MessageType::Ack, false)), Verdict::DeliveredToClient);
    let ra = record(&h, &a).expect("A's record");
    let rb = record(&h, &b).expect("B's record");
    assert_eq!((ra.address, ra.state), (a.addr, ClientState::Bound));
    assert_eq!((rb.address, rb.state), (b.addr, ClientState::Bound));
    assert_eq!(h.engine.table().len(), 2);
}

#[test]
fn defect_4_a_reply_naming_another_link_is_not_matched_to_the_request() {
    let mut h = Harness::new(proxy_config());
    let a = Client::new(1);
    h.client_sends(&a.msg(MessageType::Discover));
    let id = cdra_core::transactions::RequestId::of(
        &Message::new_checked(&a.msg(MessageType::Discover).bytes()[..]).unwrap(),
        0,
    );
    let outstanding = h.engine.outstanding_requests();
    assert!(outstanding.get(&id, h.now).is_some());
    let other_link = cdra_core::transactions::RequestId { downstream: 1, ..id };
    assert!(outstanding.get(&other_link, h.now).is_none());
    let other_mac = cdra_core::transactions::RequestId { chaddr: [9; 16], ..id };
    assert!(outstanding.get(&other_mac, h.now).is_none());
}

// Defect 5: probe outcomes that fall due together are never lost to the outbox's size.

#[test]
fn defect_5_three_hundred_probes_ending_in_one_tick_all_get_their_ack() {
    // 300 addresses do not fit a /24: give the test link a /16.
    let mut c = proxy_config();
    c.downstream[0].address.prefix_len = 16;
    let mut h = Harness::new(c);
    let clients: Vec<Client> = (0..300u16)
        .map(|i| Client {
            addr: Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 77, 2, 0)) + u32::from(i)),
            ..Client::new(i)
        })
        .collect();
    for c in &clients {
        c.bind(&mut h);
    }
    h.advance(60);
    for c in &clients {
        assert_eq!(h.client_sends(&c.init_reboot()), Verdict::AwaitingProbe);
    }
    h.advance(1);
    let mut acks = 0;
    let mut out = Outbox::new(128);
    for _ in 0..10 {
        out.clear();
        h.engine.handle_timeout(h.now, &mut out);
        acks += out
            .iter()
            .filter(|o| Message::new_checked(o.payload()).is_ok_and(|m| m.message_type() == Some(MessageType::Ack)))
            .count();
    }
    assert_eq!(acks, 300);
    assert_eq!(h.engine.counters().total_dropped(DropReason::OutboxFull), 0);
    assert!(event(&h, ProxyEvent::TimersDeferred) >= 2, "the work was spread over several batches");
}

// Defect 6: a local answer goes to the hardware address that asked.

#[test]
fn defect_6_a_client_back_with_a_new_mac_gets_its_offer_at_the_new_mac() {
    let mut h = Harness::new(proxy_config());
    let a = Client::new(1);
    a.bind(&mut h);
    let moved = Client { mac: [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee], ..a.clone() };
    assert_eq!(h.client_sends(&moved.msg(MessageType::Discover)), Verdict::AnsweredLocally);
    let (dest, bytes) = h.only_sent();
    let offer = Message::new_checked(&bytes[..]).expect("offer");
    assert_eq!(offer.message_type(), Some(MessageType::Offer));
    assert_eq!((offer.htype(), offer.chaddr()), (1, &moved.mac[..]));
    assert_eq!(dest, cdra_core::Destination::ClientLink { ifindex: DS_IF, mac: moved.mac, src: DS_ADDR, dst: a.addr });
}

// Defect 7: records dated in the future.

#[test]
fn defect_7_a_restored_record_dated_in_the_future_is_clamped_and_never_gives_more_than_the_server_lease() {
    let mut c = proxy_config();
    c.proxy.safe_network = true;
    let mut h = Harness::new(c.clone());
    let a = Client::new(1);
    a.bind(&mut h);
    let mut rec = record(&h, &a).expect("record");
    // Written by a clock five years ahead of the one restoring it.
    let ahead = Duration::from_secs(5 * 365 * 86_400);
    rec.set_lease_start(rec.lease_start().saturating_add(ahead));
    rec.set_last_contact(rec.last_contact().saturating_add(ahead));
    rec.set_last_update(rec.last_update().saturating_add(ahead));
    let mut fresh = Harness::new(c);
    fresh.now = h.now;
    let report = fresh.engine.restore(fresh.now, vec![(rec, "rd0".to_string())]);
    assert_eq!((report.loaded, report.future_dated), (1, 1));
    assert_eq!(fresh.engine.counters().proxy[ProxyEvent::FutureDatedClamped], 1);
    assert_eq!(fresh.client_sends_to(DS_ADDR, &a.renew()), Verdict::AnsweredLocally);
    let (_, bytes) = fresh.only_sent();
    assert!(lease_of(&bytes).is_some_and(|l| l <= 3600), "lease {:?}", lease_of(&bytes));
    let r = record(&fresh, &a).expect("record");
    assert!(r.lease_start() <= fresh.now && r.last_update() <= fresh.now);
}

#[test]
fn defect_7_a_clock_stepped_back_clamps_the_record_it_meets() {
    let (mut h, a) = bound_with_client_lease(60);
    h.now = Timestamp::from_millis(h.now.as_millis() - 86_400_000);
    assert_eq!(h.client_sends_to(DS_ADDR, &a.renew()), Verdict::AnsweredLocally);
    let (_, bytes) = h.only_sent();
    assert_eq!(lease_of(&bytes), Some(60));
    assert_eq!(event(&h, ProxyEvent::FutureDatedClamped), 1);
    let r = record(&h, &a).expect("record");
    assert!(r.lease_start() <= h.now && r.last_update() <= h.now, "record still dated in the future");
    assert!(r.client_lease_end().is_some_and(|e| e <= h.now.saturating_add(Duration::from_secs(60))));
}

#[test]
fn defect_7_after_a_clock_step_back_a_local_lease_is_never_longer_than_the_servers() {
    let mut h = Harness::new(proxy_config());
    let a = Client::new(1);
    a.bind(&mut h);
    h.now = Timestamp::from_millis(h.now.as_millis() - 86_400_000);
    assert_eq!(h.client_sends_to(DS_ADDR, &a.renew()), Verdict::AnsweredLocally);
    let (_, bytes) = h.only_sent();
    assert!(lease_of(&bytes).is_some_and(|l| l <= 3600), "lease {:?}", lease_of(&bytes));
}

// Defect 9: smaller ones.

#[test]
fn defect_9_a_bootreply_without_an_address_is_delivered_but_not_cached() {
    let mut h = Harness::new(proxy_config());
    let mut req = Msg::request(MessageType::Discover);
    req.kind = None;
    req.options.clear();
    assert!(matches!(h.client_sends(&req), Verdict::RelayedToServers { .. }));
    let mut reply = Msg::reply(MessageType::Ack);
    reply.kind = None;
    reply.yiaddr = Ipv4Addr::UNSPECIFIED;
    reply.options.clear();
    assert_eq!(h.server_sends(SERVER, &reply), Verdict::DeliveredToClient);
    assert!(h.engine.table().iter().all(|(_, r)| r.reply.is_none()), "nothing cached");
    let mut dumped = 0;
    h.engine.dump(&mut Vec::new(), |_, _| dumped += 1);
    assert_eq!(dumped, 0);
}

#[test]
fn defect_9_timers_at_the_end_of_the_clock_do_not_loop() {
    let mut c = proxy_config();
    c.proxy.client_lease = Some(Duration::from_secs(10));
    c.proxy.max_pending_probes = 0; // every lapse probe is refused, and re-armed
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut h = Harness::new(c);
        h.now = Timestamp::from_millis(u64::MAX - 20_000);
        Client::new(1).bind(&mut h);
        let end = Timestamp::from_millis(u64::MAX);
        let mut out = Outbox::new(16);
        for _ in 0..5 {
            h.engine.handle_timeout(end, &mut out);
        }
        let _ = tx.send(());
    });
    assert!(rx.recv_timeout(Duration::from_secs(20)).is_ok(), "handle_timeout must return");
}

// Defect 10 is tested in cdra-wire and tests/relay.rs; defect 11 in proxy/offers.rs.
