//! Proxy mode in the core: the first lease relayed and cached, then answered locally, with
//! the paper's precautions (3.2), Appendix B fixes and automated short leases (2.3, 5.3).

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use cdra_core::config::Mode;
use cdra_core::outbox::BROADCAST_MAC;
use cdra_core::table::{ClientKey, ClientState};
use cdra_core::{Destination, EngineConfig, Verdict};
use cdra_wire::{Message, MessageType};

use common::*;

const ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 100);
const CID: [u8; 7] = [1, 0x02, 0, 0, 0, 0, 0x42];

fn proxy_config() -> EngineConfig {
    let mut c = config();
    c.mode = Mode::Proxy;
    // Answers to unicast renewals are sent at once here; holding them is tested on its own.
    c.proxy.renew_reply_delay = Duration::ZERO;
    c
}

fn client_msg(kind: MessageType) -> Msg {
    let mut m = Msg::request(kind);
    m.options.push((61, CID.to_vec()));
    m
}

fn server_reply(kind: MessageType) -> Msg {
    let mut m = Msg::reply(kind);
    m.yiaddr = ADDR;
    m.options = vec![
        (54, SERVER.octets().to_vec()),
        (51, 3600u32.to_be_bytes().to_vec()),
        (58, 1800u32.to_be_bytes().to_vec()),
        (59, 3150u32.to_be_bytes().to_vec()),
        (1, vec![255, 255, 255, 0]),
        (3, DS_ADDR.octets().to_vec()),
        (61, CID.to_vec()),
    ];
    m
}

fn parse(bytes: &[u8]) -> Message<&[u8]> {
    Message::new_checked(bytes).expect("valid message")
}

fn u32_option(m: &Message<&[u8]>, code: u8) -> Option<u32> {
    m.option_data(code).and_then(|d| d.try_into().ok()).map(u32::from_be_bytes)
}

/// DORA through the proxy: everything relayed, the ACK cached.
fn bound_client(h: &mut Harness) {
    assert_eq!(h.client_sends(&client_msg(MessageType::Discover)), Verdict::RelayedToServers { copies: 1 });
    let mut offer = server_reply(MessageType::Offer);
    offer.options.push((0, vec![])); // never mind: builder writes PAD-less; keep options
    offer.options.pop();
    assert_eq!(h.server_sends(SERVER, &offer), Verdict::DeliveredToClient);
    let (_, bytes) = h.only_sent();
    assert_eq!(parse(&bytes).server_identifier(), Some(DS_ADDR), "to the client the proxy is the server (paper 4.1)");
    let mut request = client_msg(MessageType::Request);
    request.options.push((54, DS_ADDR.octets().to_vec()));
    request.options.push((50, ADDR.octets().to_vec()));
    assert_eq!(h.client_sends(&request), Verdict::RelayedToServers { copies: 1 });
    let (dest, bytes) = h.only_sent();
    assert_eq!(dest, Destination::Server { addr: SERVER, relay_port: false });
    assert_eq!(parse(&bytes).server_identifier(), Some(SERVER), "paper 5.1: the real server id goes back in");
    assert_eq!(h.server_sends(SERVER, &server_reply(MessageType::Ack)), Verdict::DeliveredToClient);
    let (_, bytes) = h.only_sent();
    assert_eq!(parse(&bytes).server_identifier(), Some(DS_ADDR));
    let slot = h.engine.table().find(&ClientKey::client_id(&CID)).expect("record keyed by option 61");
    let r = h.engine.table().get(slot).expect("record");
    assert_eq!((r.state, r.address), (ClientState::Bound, ADDR));
}

fn renew() -> Msg {
    let mut m = client_msg(MessageType::Request);
    m.ciaddr = ADDR;
    m
}

fn init_reboot() -> Msg {
    let mut m = client_msg(MessageType::Request);
    m.options.push((50, ADDR.octets().to_vec()));
    m
}

#[test]
fn renewal_is_answered_locally_with_what_is_left_of_the_server_lease() {
    let mut h = Harness::new(proxy_config());
    bound_client(&mut h);
    h.advance(600);
    assert_eq!(h.client_sends_to(DS_ADDR, &renew()), Verdict::AnsweredLocally);
    let (dest, bytes) = h.only_sent();
    assert_eq!(dest, Destination::ClientLink { ifindex: DS_IF, mac: MAC, src: DS_ADDR, dst: ADDR });
    let ack = parse(&bytes);
    assert_eq!(ack.message_type(), Some(MessageType::Ack));
    assert_eq!(ack.xid(), 0x1234_5678);
    assert_eq!((ack.ciaddr(), ack.yiaddr()), (ADDR, ADDR));
    assert_eq!(ack.server_identifier(), Some(DS_ADDR));
    assert_eq!(ack.client_identifier(), Some(&CID[..]), "RFC 6842 echo");
    assert_eq!(u32_option(&ack, 51), Some(3000));
    assert_eq!(u32_option(&ack, 58), Some(1500));
    assert_eq!(u32_option(&ack, 59), Some(2625));
    assert!(ack.relay_agent_info().is_none());
    assert_eq!(h.engine.counters().servers[0].requests_sent, 2, "the server saw DISCOVER and REQUEST only");
}

#[test]
fn init_reboot_is_acked_only_after_the_probe_times_out() {
    let mut h = Harness::new(proxy_config());
    bound_client(&mut h);
    h.advance(60);
    assert_eq!(h.client_sends(&init_reboot()), Verdict::AwaitingProbe);
    assert!(h.sent().is_empty());
    let probe = h.outbox.probes()[0];
    assert_eq!((probe.ifindex, probe.target, probe.sender_ip), (DS_IF, ADDR, DS_ADDR));
    // A retransmission while the probe runs starts nothing new.
    assert_eq!(h.client_sends(&init_reboot()), Verdict::Discarded(cdra_core::DiscardReason::RetransmissionDuringProbe));
    assert!(h.outbox.probes().is_empty());
    // The client's own MAC answering ARP is not a conflict.
    h.probe_answer(ADDR, Some(MAC));
    assert!(h.sent().is_empty());
    h.run_timers(2);
    let (dest, bytes) = h.only_sent();
    assert_eq!(parse(&bytes).message_type(), Some(MessageType::Ack));
    assert_eq!(dest, Destination::ClientLink { ifindex: DS_IF, mac: MAC, src: DS_ADDR, dst: ADDR });
}

#[test]
fn a_squatter_answering_the_probe_gets_the_client_a_nak_and_the_record_removed() {
    let mut h = Harness::new(proxy_config());
    bound_client(&mut h);
    assert_eq!(h.client_sends(&init_reboot()), Verdict::AwaitingProbe);
    h.probe_answer(ADDR, Some([0x02, 0, 0, 0, 0, 0x99]));
    let (dest, bytes) = h.only_sent();
    assert_eq!(parse(&bytes).message_type(), Some(MessageType::Nak));
    assert_eq!(
        dest,
        Destination::ClientLink { ifindex: DS_IF, mac: BROADCAST_MAC, src: DS_ADDR, dst: Ipv4Addr::BROADCAST }
    );
    assert!(h.engine.table().find(&ClientKey::client_id(&CID)).is_none());
    assert_eq!(h.engine.counters().proxy[cdra_core::counters::ProxyEvent::ProbeFoundInUse], 1);
}

#[test]
fn safe_network_acks_without_probing() {
    let mut c = proxy_config();
    c.proxy.safe_network = true;
    let mut h = Harness::new(c);
    bound_client(&mut h);
    assert_eq!(h.client_sends(&init_reboot()), Verdict::AnsweredLocally);
    assert!(h.outbox.probes().is_empty());
}

#[test]
fn a_broadcast_rebind_is_renewed_with_the_server_first() {
    let mut h = Harness::new(proxy_config());
    bound_client(&mut h);
    assert_eq!(h.client_sends_to(Ipv4Addr::BROADCAST, &renew()), Verdict::RelayedToServers { copies: 1 });
    // Only the server's answer reaches the client.
    let mut ack = server_reply(MessageType::Ack);
    ack.ciaddr = ADDR;
    assert_eq!(h.server_sends(SERVER, &ack), Verdict::DeliveredToClient);
    assert_eq!(h.only_sent().0, Destination::ClientLink { ifindex: DS_IF, mac: MAC, src: DS_ADDR, dst: ADDR });
}

#[test]
fn discover_from_a_known_client_gets_a_local_offer_and_its_request_a_probed_ack() {
    let mut h = Harness::new(proxy_config());
    bound_client(&mut h);
    h.advance(100);
    assert_eq!(h.client_sends(&client_msg(MessageType::Discover)), Verdict::AnsweredLocally);
    let (_, bytes) = h.only_sent();
    let offer = parse(&bytes);
    assert_eq!(offer.message_type(), Some(MessageType::Offer));
    assert_eq!((offer.yiaddr(), offer.ciaddr()), (ADDR, Ipv4Addr::UNSPECIFIED));
    assert_eq!(u32_option(&offer, 51), Some(3500));
    let mut request = client_msg(MessageType::Request);
    request.options.push((54, DS_ADDR.octets().to_vec()));
    request.options.push((50, ADDR.octets().to_vec()));
    assert_eq!(h.client_sends(&request), Verdict::AwaitingProbe);
    h.run_timers(2);
    assert_eq!(parse(&h.only_sent().1).message_type(), Some(MessageType::Ack));
    assert_eq!(h.engine.counters().servers[0].requests_sent, 2);
}

#[test]
fn a_request_for_another_address_goes_to_the_server() {
    let mut h = Harness::new(proxy_config());
    bound_client(&mut h);
    let mut m = client_msg(MessageType::Request);
    m.options.push((50, Ipv4Addr::new(10, 77, 1, 150).octets().to_vec()));
    assert_eq!(h.client_sends(&m), Verdict::RelayedToServers { copies: 1 });
    assert_eq!(h.engine.counters().proxy[cdra_core::counters::ProxyEvent::ChangedRequest], 1);
}

#[test]
fn asking_for_new_parameters_goes_to_the_server() {
    let mut h = Harness::new(proxy_config());
    bound_client(&mut h);
    let mut m = init_reboot();
    m.options[0] = (55, vec![1, 3, 6, 42]);
    assert_eq!(h.client_sends(&m), Verdict::RelayedToServers { copies: 1 });
}

/// A PAD (0) in option 55 asks for no parameter (RFC 2132 3.1: PAD is no option): the
/// cached reply answered [1, 3, 6], and a renewal asking [0, 1, 3, 6] asks nothing new
/// (the template keeps option 55's codes without PAD, so every such renewal was taken for a
/// changed request and went to the server).
#[test]
fn a_pad_in_option_55_asks_for_nothing_new() {
    let mut h = Harness::new(proxy_config());
    bound_client(&mut h);
    h.advance(600);
    let mut m = renew();
    m.options[0] = (55, vec![0, 1, 3, 6]);
    assert_eq!(h.client_sends_to(DS_ADDR, &m), Verdict::AnsweredLocally);
    assert_eq!(h.engine.counters().proxy[cdra_core::counters::ProxyEvent::ChangedRequest], 0);
}

#[test]
fn an_address_off_the_clients_subnet_is_never_offered() {
    let mut c = proxy_config();
    c.downstream[0].address.prefix_len = 30; // 10.77.1.0/30: .100 is not on it
    let mut h = Harness::new(c);
    bound_client(&mut h);
    assert_eq!(h.client_sends(&client_msg(MessageType::Discover)), Verdict::RelayedToServers { copies: 1 });
    assert_eq!(h.engine.counters().proxy.removed[cdra_core::table::Removal::WrongSubnet], 1);
}

#[test]
fn records_older_than_max_age_are_deleted() {
    let mut c = proxy_config();
    c.proxy.max_age = Duration::from_secs(600);
    let mut h = Harness::new(c);
    bound_client(&mut h);
    h.advance(601);
    assert_eq!(h.client_sends_to(DS_ADDR, &renew()), Verdict::RelayedToServers { copies: 1 });
    assert_eq!(h.engine.counters().proxy.removed[cdra_core::table::Removal::Expired], 1);
}

#[test]
fn table1_offer_only_in_init_ack_only_when_awaited() {
    let mut c = proxy_config();
    c.servers.push(SERVER2);
    let mut h = Harness::new(c);
    assert_eq!(h.client_sends(&client_msg(MessageType::Discover)), Verdict::RelayedToServers { copies: 2 });
    assert_eq!(h.server_sends(SERVER, &server_reply(MessageType::Offer)), Verdict::DeliveredToClient);
    let mut second = server_reply(MessageType::Offer);
    second.options[0] = (54, SERVER2.octets().to_vec());
    assert_eq!(
        h.server_sends(SERVER2, &second),
        Verdict::Discarded(cdra_core::DiscardReason::OfferNotInInit),
        "one OFFER per DISCOVER"
    );
    let mut request = client_msg(MessageType::Request);
    request.options.push((54, DS_ADDR.octets().to_vec()));
    request.options.push((50, ADDR.octets().to_vec()));
    assert_eq!(h.client_sends(&request), Verdict::RelayedToServers { copies: 1 }, "only to the server that offered");
    assert_eq!(h.only_sent().0, Destination::Server { addr: SERVER, relay_port: false });
    assert_eq!(h.server_sends(SERVER, &server_reply(MessageType::Ack)), Verdict::DeliveredToClient);
    assert_eq!(
        h.server_sends(SERVER, &server_reply(MessageType::Ack)),
        Verdict::Discarded(cdra_core::DiscardReason::AckNotAwaited),
        "client is BOUND"
    );
    assert_eq!(
        h.server_sends(SERVER, &server_reply(MessageType::Nak)),
        Verdict::Discarded(cdra_core::DiscardReason::NakNotAwaited)
    );
}

#[test]
fn release_goes_to_the_clients_server_with_its_identifier_and_removes_the_record() {
    let mut h = Harness::new(proxy_config());
    bound_client(&mut h);
    let mut m = client_msg(MessageType::Release);
    m.ciaddr = ADDR;
    m.options.push((54, DS_ADDR.octets().to_vec()));
    assert_eq!(h.client_sends_to(DS_ADDR, &m), Verdict::RelayedToServers { copies: 1 });
    let (dest, bytes) = h.only_sent();
    assert_eq!(dest, Destination::Server { addr: SERVER, relay_port: false });
    assert_eq!(parse(&bytes).server_identifier(), Some(SERVER));
    assert!(h.engine.table().is_empty());
}

#[test]
fn siaddr_is_ours_only_where_the_server_had_put_itself() {
    let mut h = Harness::new(proxy_config());
    bound_client(&mut h);
    h.client_sends(&client_msg(MessageType::Discover));
    let (_, bytes) = h.only_sent();
    assert_eq!(parse(&bytes).siaddr(), Ipv4Addr::UNSPECIFIED, "no siaddr: left alone");
}

#[test]
fn short_client_leases_are_renewed_locally_and_upstream_past_t1() {
    let mut c = proxy_config();
    c.proxy.client_lease = Some(Duration::from_secs(60));
    let mut h = Harness::new(c);
    bound_client(&mut h);
    let (_, bytes) = h.only_sent();
    assert_eq!(u32_option(&parse(&bytes), 51), Some(60), "the server's ACK reaches the client shortened");
    for _ in 0..20 {
        h.advance(30);
        assert_eq!(h.client_sends_to(DS_ADDR, &renew()), Verdict::AnsweredLocally);
    }
    // 600 s in: before T1 (1800 s) nothing went upstream.
    assert_eq!(h.engine.counters().servers[0].requests_sent, 2);
    h.advance(1300);
    assert_eq!(h.client_sends_to(DS_ADDR, &renew()), Verdict::AnsweredLocally);
    let sent = h.sent();
    assert_eq!(sent.len(), 2, "local ACK plus the upstream renewal");
    assert_eq!(sent[1].0, Destination::Server { addr: SERVER, relay_port: false });
    // The server's ACK refreshes the record and is not forwarded (paper 5.3).
    let mut ack = server_reply(MessageType::Ack);
    ack.ciaddr = ADDR;
    assert_eq!(h.server_sends(SERVER, &ack), Verdict::Discarded(cdra_core::DiscardReason::UpstreamRenewalAnswer));
    let r = h.engine.table().get(h.engine.table().find(&ClientKey::client_id(&CID)).unwrap()).unwrap().clone();
    assert_eq!(r.lease_left_secs(h.now), 3600);
    assert_eq!(h.engine.counters().proxy[cdra_core::counters::ProxyEvent::UpstreamRenewalAcked], 1);
}

#[test]
fn a_lapsed_short_lease_is_probed_then_released_at_the_server() {
    let mut c = proxy_config();
    c.proxy.client_lease = Some(Duration::from_secs(60));
    let mut h = Harness::new(c);
    bound_client(&mut h);
    h.run_timers(120);
    assert_eq!(h.outbox.probes().len(), 1, "lapse probe");
    assert_eq!(h.outbox.probes()[0].target, ADDR);
    h.run_timers(5);
    let (dest, bytes) = h.only_sent();
    assert_eq!(dest, Destination::Server { addr: SERVER, relay_port: false });
    let release = parse(&bytes);
    assert_eq!(release.message_type(), Some(MessageType::Release));
    assert_eq!(release.ciaddr(), ADDR);
    assert_eq!(release.server_identifier(), Some(SERVER));
    assert_eq!(release.client_identifier(), Some(&CID[..]));
    assert_eq!(release.chaddr(), &MAC);
    assert!(h.engine.table().is_empty());
}

/// A client keyed by option 61 is released under the hardware address it was answered at,
/// also after a restart: its chaddr is its reply's own (its key names none), kept through
/// the store (record format 4).
#[test]
fn a_client_keyed_by_option_61_is_released_under_its_chaddr_after_a_restore() {
    use cdra_core::persist::{decode_record_with, template_key, Templates};
    let mut c = proxy_config();
    c.proxy.client_lease = Some(Duration::from_secs(60));
    let mut h = Harness::new(c.clone());
    bound_client(&mut h);
    let mut templates = Templates::new();
    h.engine.dump_templates(|id, bytes| templates.add(&template_key(id), bytes).expect("a template"));
    let mut records = Vec::new();
    h.engine.dump(&mut Vec::new(), |_, b| records.push(b.to_vec()));
    let decoded: Vec<_> = records
        .iter()
        .map(|b| decode_record_with(b, &templates).map(|(r, i)| (r, i.to_string())).expect("decodes"))
        .collect();
    let mut h = Harness::new(c);
    h.advance(1);
    assert_eq!(h.engine.restore(h.now, decoded).loaded, 1);
    let slot = h.engine.table().find(&ClientKey::client_id(&CID)).expect("restored");
    assert_eq!(h.engine.table().get(slot).map(|r| r.reply_chaddr().to_vec()), Some(MAC.to_vec()));
    h.run_timers(120);
    assert_eq!(h.outbox.probes().len(), 1, "lapse probe");
    h.run_timers(5);
    let (_, bytes) = h.only_sent();
    let release = parse(&bytes);
    assert_eq!(release.message_type(), Some(MessageType::Release));
    assert_eq!((release.htype(), release.chaddr()), (1, &MAC[..]));
    assert_eq!(release.client_identifier(), Some(&CID[..]));
}

#[test]
fn a_lapsed_address_that_still_answers_is_not_released() {
    let mut c = proxy_config();
    c.proxy.client_lease = Some(Duration::from_secs(60));
    let mut h = Harness::new(c);
    bound_client(&mut h);
    h.run_timers(120);
    assert_eq!(h.outbox.probes().len(), 1);
    // Another host answers (the client's own MAC answering is defects.rs, defect 1).
    h.probe_answer(ADDR, Some([0x02, 0xee, 0, 0, 0, 1]));
    h.run_timers(5);
    assert!(h.sent().is_empty(), "nothing released (Appendix A.2)");
    assert_eq!(h.engine.counters().proxy[cdra_core::counters::ProxyEvent::LapsedStillInUse], 1);
}

#[test]
fn the_table_is_bounded_and_evictions_are_counted() {
    let mut c = proxy_config();
    c.limits.pending_clients = 10;
    let mut h = Harness::new(c);
    for i in 0..25u8 {
        let mut m = Msg::request(MessageType::Discover);
        m.chaddr = vec![2, 0, 0, 0, 1, i];
        h.client_sends(&m);
    }
    assert_eq!(h.engine.table().len(), 10);
    assert_eq!(h.engine.counters().proxy.removed[cdra_core::table::Removal::EvictedPending], 15);
}

#[test]
fn a_client_that_stops_renewing_its_local_lease_lapses_too() {
    let mut c = proxy_config();
    c.proxy.client_lease = Some(Duration::from_secs(60));
    let mut h = Harness::new(c);
    bound_client(&mut h);
    for _ in 0..3 {
        h.advance(30);
        assert_eq!(h.client_sends_to(DS_ADDR, &renew()), Verdict::AnsweredLocally);
        let (_, bytes) = h.only_sent();
        assert_eq!(u32_option(&parse(&bytes), 51), Some(60));
    }
    // No lapse while renewals keep coming; then silence: probe at 60 s + grace after the last.
    let last_renewal = h.now;
    h.run_timers(120);
    assert_eq!(h.outbox.probes().len(), 1);
    assert!(h.now.since(last_renewal) >= Duration::from_secs(60));
}

/// The lapse queue (`timers.rs`): a short lease extended by each renewal files no timer
/// (the one filed fires early, finds the lease extended and files one for the new end), so
/// a record holds one lapse timer however often it renews; a record gone leaves a stale
/// timer that fires and does nothing.
#[test]
fn a_renewing_client_holds_one_lapse_timer_and_a_gone_one_leaves_a_harmless_stale_one() {
    let mut c = proxy_config();
    c.proxy.client_lease = Some(Duration::from_secs(60));
    let mut h = Harness::new(c);
    bound_client(&mut h);
    assert_eq!(h.engine.lapse_timers_filed(), 1);
    for _ in 0..10 {
        h.advance(20);
        assert_eq!(h.client_sends_to(DS_ADDR, &renew()), Verdict::AnsweredLocally);
        // Early: the first timer fell due at 62 s and filed one for the new end.
        h.engine.handle_timeout(h.now, &mut h.outbox);
        assert_eq!(h.engine.lapse_timers_filed(), 1, "one lapse timer, at {:?}", h.now);
        assert!(h.outbox.probes().is_empty(), "no lapse while the client renews");
    }
    assert!(h.engine.flush_client(&ClientKey::client_id(&CID)));
    h.run_timers(120);
    assert!(h.outbox.probes().is_empty() && h.sent().is_empty(), "the stale timer did nothing");
    assert_eq!(h.engine.lapse_timers_filed(), 0);
}

#[test]
fn records_survive_an_encode_decode_restore_round_trip_and_changes_are_reported() {
    use cdra_core::persist::{decode_record, decode_record_with, template_key, Change, DecodeError, Templates};
    let mut h = Harness::new(proxy_config());
    bound_client(&mut h);
    let mut scratch = Vec::new();
    let mut upserts = Vec::new();
    let mut templates = Templates::new();
    assert!(h.engine.drain_changes(&mut scratch, |c| match c {
        Change::Upsert { bytes, .. } => upserts.push(bytes.to_vec()),
        // Paper 5.7: the shared part of the reply, stored once, before the record.
        Change::Template { id, bytes } => {
            assert!(upserts.is_empty(), "the template goes first");
            templates.add(&template_key(id), bytes).expect("a template");
        }
        Change::Delete(k) => panic!("unexpected delete {k}"),
        Change::DeleteTemplate(id) => panic!("unexpected template delete {id:x}"),
    }));
    assert_eq!((upserts.len(), templates.len()), (1, 1));
    assert_eq!(decode_record(&upserts[0]).err(), Some(DecodeError::UnknownTemplate));
    let (rec, iface) = decode_record_with(&upserts[0], &templates).map(|(r, i)| (r, i.to_string())).expect("decodes");
    assert_eq!((rec.address, iface.as_str()), (ADDR, "rd0"));
    // A fresh engine restores it and answers a RENEW from it.
    let mut h2 = Harness::new(proxy_config());
    h2.now = h.now;
    h2.advance(10);
    let report = h2.engine.restore(h2.now, vec![(rec.clone(), iface.clone())]);
    assert_eq!(report.loaded, 1);
    assert_eq!(h2.client_sends_to(DS_ADDR, &renew()), Verdict::AnsweredLocally);
    // ...and probes before an INIT-REBOOT ACK, as for any record (paper 3.4).
    assert_eq!(h2.client_sends(&init_reboot()), Verdict::AwaitingProbe);
    // Records past max_age and foreign-interface records are not restored; one past its
    // server lease only is (paper 5.7).
    let mut h3 = Harness::new(proxy_config());
    h3.now = h.now;
    h3.advance(4000);
    let report = h3.engine.restore(h3.now, vec![(rec.clone(), iface.clone()), (rec.clone(), "eth9".into())]);
    assert_eq!((report.loaded, report.expired, report.unknown_interface), (1, 0, 1));
    let mut h4 = Harness::new(proxy_config());
    h4.now = h.now;
    h4.advance(10 * 86_400);
    let report = h4.engine.restore(h4.now, vec![(rec, iface)]);
    assert_eq!((report.loaded, report.expired), (0, 1));
    // A release is a delete.
    let mut m = client_msg(MessageType::Release);
    m.ciaddr = ADDR;
    h.client_sends_to(DS_ADDR, &m);
    let mut deletes = 0;
    h.engine.drain_changes(&mut scratch, |c| {
        if let Change::Delete(_) = c {
            deletes += 1
        }
    });
    assert_eq!(deletes, 1);
}

#[test]
fn decoding_never_panics_and_rejects_other_versions() {
    use cdra_core::persist::{decode_record, DecodeError};
    assert_eq!(decode_record(&[]).unwrap_err(), DecodeError::Truncated);
    assert_eq!(decode_record(&[9, 0, 0]).unwrap_err(), DecodeError::UnknownVersion(9));
    for len in 0..64 {
        let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 1) as u8).collect();
        let _ = decode_record(&junk);
    }
}

#[test]
fn an_echo_reply_is_a_conflict_unless_the_clients_own_mac_answered_arp() {
    // Someone answers ICMP, nobody answers ARP with the client's MAC: NAK at the deadline.
    let mut h = Harness::new(proxy_config());
    bound_client(&mut h);
    assert_eq!(h.client_sends(&init_reboot()), Verdict::AwaitingProbe);
    h.probe_answer(ADDR, None);
    assert!(h.sent().is_empty(), "decided when the probe ends");
    h.run_timers(2);
    assert_eq!(parse(&h.only_sent().1).message_type(), Some(MessageType::Nak));
    // The client kept its address configured: ARP from its MAC and ICMP both answer: ACK.
    let mut h = Harness::new(proxy_config());
    bound_client(&mut h);
    assert_eq!(h.client_sends(&init_reboot()), Verdict::AwaitingProbe);
    h.probe_answer(ADDR, None);
    h.probe_answer(ADDR, Some(MAC));
    h.run_timers(2);
    assert_eq!(parse(&h.only_sent().1).message_type(), Some(MessageType::Ack));
}

#[test]
fn cached_replies_are_compact_and_expand_byte_for_byte() {
    use cdra_core::table::{CachedReply, ClientKey, ParamList};
    use cdra_core::templates::ReplyContext;
    for (sname, file) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut m = server_reply(MessageType::Ack).bytes();
        if sname {
            m[44..50].copy_from_slice(b"server");
        }
        if file {
            m[108..120].copy_from_slice(b"pxelinux.0\0\0");
        }
        let msg = Message::new_checked(&m[..]).expect("a reply");
        let key = ClientKey::hardware(1, msg.chaddr());
        let ctx = ReplyContext {
            key: Some(&key),
            address: msg.yiaddr(),
            lease_secs: msg.lease_time().unwrap_or(0),
            t1_secs: msg.renewal_time().unwrap_or(0),
            t2_secs: msg.rebinding_time().unwrap_or(0),
        };
        let c = CachedReply::new(&m, &ctx, &ParamList::EMPTY).expect("whole message");
        let mut normalised = m.clone();
        normalised[4..16].fill(0);
        assert_eq!(c.to_vec(&ctx), normalised);
        // Empty sname and file are not kept; the client's own bytes are kept apart from
        // what it may share (paper 5.7, cdra_core::templates).
        let kept = c.template().as_bytes().len() + c.own_bytes().len();
        // (The template repeats the 44-byte header with the client's fields zeroed: at most
        // 22 bytes of it, 3 bytes a splice and 4 of magic and option 55, are kept twice.)
        assert!(kept <= m.len() + 44 - if sname { 0 } else { 64 } - if file { 0 } else { 128 }, "{kept}");
        // Alone, its template is its own; its own bytes are the client's alone.
        assert_eq!(c.stored_len(), c.own_bytes().len() + c.template().stored_len());
    }
    let key = ClientKey::hardware(1, &[2, 0, 0, 0, 0, 1]);
    let ctx = ReplyContext { key: Some(&key), address: ADDR, lease_secs: 0, t1_secs: 0, t2_secs: 0 };
    assert!(CachedReply::new(&[0u8; 100], &ctx, &ParamList::EMPTY).is_none());
}

#[test]
fn a_cached_reply_with_boot_file_and_server_name_is_served_intact() {
    let mut h = Harness::new(proxy_config());
    h.client_sends(&client_msg(MessageType::Discover));
    h.server_sends(SERVER, &server_reply(MessageType::Offer));
    let mut request = client_msg(MessageType::Request);
    request.options.push((54, DS_ADDR.octets().to_vec()));
    request.options.push((50, ADDR.octets().to_vec()));
    h.client_sends(&request);
    let mut ack = server_reply(MessageType::Ack).bytes();
    ack[108..118].copy_from_slice(b"pxelinux.0");
    h.outbox.clear();
    let ingress = cdra_core::Ingress {
        link_source: None,
        ifindex: US_IF,
        src: std::net::SocketAddrV4::new(SERVER, 67),
        dst: DS_ADDR,
        data: &ack,
    };
    h.engine.handle_datagram(h.now, ingress, &mut h.outbox);
    assert_eq!(h.client_sends_to(DS_ADDR, &renew()), Verdict::AnsweredLocally);
    let (_, bytes) = h.only_sent();
    assert_eq!(&bytes[108..118], b"pxelinux.0");
    assert!(bytes[44..108].iter().all(|b| *b == 0));
}

#[test]
fn answers_to_unicast_renewals_are_held_briefly_for_clients_that_close_their_socket() {
    let mut c = proxy_config();
    c.proxy.renew_reply_delay = Duration::from_millis(2);
    let mut h = Harness::new(c);
    bound_client(&mut h);
    assert_eq!(h.client_sends_to(DS_ADDR, &renew()), Verdict::AnsweredLocally);
    assert!(h.sent().is_empty(), "held, not sent with the request's batch");
    let asked = h.now;
    h.run_timers(1);
    assert_eq!(h.now.as_millis(), asked.as_millis() + 2);
    let (dest, bytes) = h.only_sent();
    assert_eq!(parse(&bytes).message_type(), Some(MessageType::Ack));
    assert_eq!(dest, Destination::ClientLink { ifindex: DS_IF, mac: MAC, src: DS_ADDR, dst: ADDR });
    // INIT-REBOOT and DISCOVER answers are not held (the client listens on its one socket).
    assert_eq!(h.client_sends(&client_msg(MessageType::Discover)), Verdict::AnsweredLocally);
    assert_eq!(h.sent().len(), 1);
    assert_eq!(h.engine.counters().proxy[cdra_core::counters::ProxyEvent::RenewalAnswerHeld], 1);
}

#[test]
fn an_ack_shorter_than_the_bootp_minimum_with_option82_is_still_cached() {
    // Found end to end: Kea's ACK to dhclient is 285 bytes; with option 82 removed it was
    // re-padded to 300 and did not fit the buffer it was copied into.
    let mut c = proxy_config();
    c.option82.insert = true;
    let mut h = Harness::new(c);
    h.client_sends(&client_msg(MessageType::Discover));
    let mut offer = server_reply(MessageType::Offer);
    offer.options.push((82, vec![1, 3, b'r', b'd', b'0']));
    h.server_sends(SERVER, &offer);
    let mut request = client_msg(MessageType::Request);
    request.options.push((54, DS_ADDR.octets().to_vec()));
    request.options.push((50, ADDR.octets().to_vec()));
    h.client_sends(&request);
    let mut ack = server_reply(MessageType::Ack);
    ack.options.retain(|(code, _)| matches!(code, 54 | 51 | 61));
    ack.options.push((82, vec![1, 3, b'r', b'd', b'0']));
    let mut bytes = ack.bytes();
    let end = bytes.iter().rposition(|b| *b == 255).expect("END");
    bytes.truncate(end + 1);
    assert!(bytes.len() < 292, "{} bytes", bytes.len());
    h.outbox.clear();
    let ingress = cdra_core::Ingress {
        link_source: None,
        ifindex: US_IF,
        src: std::net::SocketAddrV4::new(SERVER, 67),
        dst: DS_ADDR,
        data: &bytes,
    };
    assert_eq!(h.engine.handle_datagram(h.now, ingress, &mut h.outbox), Verdict::DeliveredToClient);
    assert_eq!(h.client_sends_to(DS_ADDR, &renew()), Verdict::AnsweredLocally);
}

#[test]
fn the_event_log_tells_a_dora_and_a_local_answer_per_client_and_is_bounded() {
    use cdra_core::counters::ProxyEvent;
    use cdra_core::events::EventKind;
    let mut h = Harness::new(proxy_config());
    assert_eq!(h.engine.drain_events().count(), 0, "off by default");
    h.engine.set_event_log(64);
    bound_client(&mut h);
    h.advance(600);
    assert_eq!(h.client_sends_to(DS_ADDR, &renew()), Verdict::AnsweredLocally);
    let events: Vec<_> = h.engine.drain_events().collect();
    let seen: Vec<(&str, Option<&str>)> =
        events.iter().map(|e| (e.kind.label(), e.message.map(|m| m.label()))).collect();
    assert_eq!(
        seen,
        [
            ("forwarded", Some("discover")),
            ("server_reply", Some("offer")),
            ("forwarded", Some("request")),
            ("server_reply", Some("ack")),
            ("local_ack", Some("ack")),
        ]
    );
    let key = ClientKey::client_id(&CID);
    assert!(events.iter().all(|e| e.client == key && e.interface == Some(0)), "{events:?}");
    assert_eq!(events[1].address, Some(ADDR), "the offered address");
    assert_eq!(events[1].server, Some(SERVER));
    assert_eq!(events[2].server, Some(SERVER), "forwarded to");
    assert_eq!((events[4].address, events[4].server), (Some(ADDR), Some(SERVER)));
    assert_eq!(events[4].kind, EventKind::Proxy(ProxyEvent::LocalAck));
    assert_eq!(h.engine.drain_events().count(), 0, "drained");
    // Round trips: both replies came back in the same millisecond as their requests.
    let rtt = &h.engine.counters().servers[0].round_trip;
    assert_eq!((rtt.count(), rtt.sum_ms), (2, 0));
    // Bounded: two slots, the rest counted.
    h.engine.set_event_log(2);
    assert!(h.engine.flush_client(&key));
    for _ in 0..3 {
        h.client_sends(&client_msg(MessageType::Discover));
    }
    let kept: Vec<_> = h.engine.drain_events().map(|e| (e.kind.label(), e.kind.cause())).collect();
    assert_eq!(kept, [("removed", Some("flushed")), ("forwarded", None)]);
    assert_eq!(h.engine.counters().events_dropped, 2);
}
