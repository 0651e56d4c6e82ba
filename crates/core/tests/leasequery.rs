//! RFC 4388 leasequery (issue 15 item 2): an empty table refilled from a server that
//! answers DHCPLEASEQUERY, within its rate; answers believed only as a server ACK is; a
//! server that does not answer left alone; records made suspect (a probe before the first
//! local ACK); a doubted record settled by a query instead of dropped.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use cdra_core::config::{EngineConfig, Ipv4Net};
use cdra_core::counters::ProxyEvent;
use cdra_core::leasequery::{Willingness, DHCPLEASEACTIVE, DHCPLEASEQUERY, DHCPLEASEUNASSIGNED};
use cdra_core::{Destination, Ingress, Timestamp, Verdict};
use cdra_wire::{Message, MessageType};
use common::*;

/// The address of the second link of `an_interface_added_by_a_reload_is_swept`.
const LINK2: Ipv4Addr = Ipv4Addr::new(10, 77, 2, 1);

/// Leasequery on, sweeping 10.77.1.0/28 (14 addresses, ours among them).
fn lq_config() -> EngineConfig {
    let mut c = proxy_config();
    c.leasequery.enabled = true;
    c.leasequery.rate = 1000;
    c.leasequery.subnets = vec![Ipv4Net { addr: Ipv4Addr::new(10, 77, 1, 0), prefix_len: 28 }];
    c
}

/// One query the engine sent: to whom, its xid, what it asked (`None`: the link INFORM).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sent {
    server: Ipv4Addr,
    xid: u32,
    address: Option<Ipv4Addr>,
    /// Where the answer goes: the link's address.
    giaddr: Ipv4Addr,
}

/// Fire the engine's timers for `ms` milliseconds of clock, collecting the queries sent;
/// nobody answers them.
fn run(h: &mut Harness, ms: u64) -> Vec<Sent> {
    run_with(h, ms, |_| None)
}

/// Fire the engine's timers for `ms` milliseconds of clock, collecting the queries sent and
/// answering each at once with what `respond` says (`None`: not at all).
fn run_with(h: &mut Harness, ms: u64, mut respond: impl FnMut(&Sent) -> Option<Msg>) -> Vec<Sent> {
    let limit = Timestamp::from_millis(h.now.as_millis() + ms);
    let mut out = Vec::new();
    while let Some(t) = h.engine.poll_timeout().filter(|t| *t <= limit) {
        h.now = h.now.max(t);
        h.outbox.clear();
        h.engine.handle_timeout(h.now, &mut h.outbox);
        let first = out.len();
        for (d, bytes) in h.sent() {
            let Destination::Server { addr, .. } = d else { continue };
            let m = Message::new_checked(&bytes[..]).expect("a valid message");
            match m.message_type() {
                Some(MessageType::Other(DHCPLEASEQUERY)) => {
                    assert!(m.giaddr() == DS_ADDR || m.giaddr() == LINK2, "the answer comes to the link's address");
                    assert_eq!(m.chaddr().len(), 0, "a query by address names no client");
                    out.push(Sent { server: addr, xid: m.xid(), address: Some(m.ciaddr()), giaddr: m.giaddr() });
                }
                Some(MessageType::Inform) => {
                    out.push(Sent { server: addr, xid: m.xid(), address: None, giaddr: m.giaddr() })
                }
                _ => {}
            }
        }
        for q in out[first..].iter().copied() {
            if let Some(reply) = respond(&q) {
                h.server_sends(q.server, &reply);
            }
        }
    }
    h.now = h.now.max(limit);
    out
}

/// The server's answer to `q`: `kind` (an option 53 value), about `q.address`.
fn answer(q: &Sent, kind: u8, client: Option<&Client>) -> Msg {
    let mut m = Msg::reply(MessageType::Other(kind));
    m.xid = q.xid;
    m.giaddr = q.giaddr;
    m.yiaddr = Ipv4Addr::UNSPECIFIED;
    m.ciaddr = q.address.unwrap_or(Ipv4Addr::UNSPECIFIED);
    m.chaddr = client.map_or(vec![], |c| c.mac.to_vec());
    m.options = vec![(54, SERVER.octets().to_vec())];
    if let Some(c) = client {
        m.options.push((51, 1800u32.to_be_bytes().to_vec()));
        m.options.push((58, 600u32.to_be_bytes().to_vec()));
        m.options.push((59, 1400u32.to_be_bytes().to_vec()));
        m.options.push((61, c.cid.clone()));
    }
    m
}

/// The ACK to a link INFORM: the subnet's configuration.
fn link_configuration(q: &Sent) -> Msg {
    let mut m = Msg::reply(MessageType::Ack);
    m.xid = q.xid;
    m.giaddr = q.giaddr;
    m.yiaddr = Ipv4Addr::UNSPECIFIED;
    m.chaddr = vec![];
    m.options = vec![
        (54, SERVER.octets().to_vec()),
        (1, vec![255, 255, 255, 0]),
        (3, DS_ADDR.octets().to_vec()),
        (6, vec![10, 77, 0, 53]),
    ];
    m
}

/// What a server with leasequery answers: the link's configuration, `active` leased, the
/// rest free.
fn server_answer(q: &Sent, active: &[Client]) -> Msg {
    match q.address {
        None => link_configuration(q),
        Some(a) => match active.iter().find(|c| c.addr == a) {
            Some(c) => answer(q, DHCPLEASEACTIVE, Some(c)),
            None => answer(q, DHCPLEASEUNASSIGNED, None),
        },
    }
}

/// The queries sent for `ms` of clock, a server with leasequery answering each at once.
fn sweep_served(h: &mut Harness, ms: u64, active: &[Client]) -> Vec<Sent> {
    run_with(h, ms, |q| Some(server_answer(q, active)))
}

/// Answer `queries` as a server with leasequery does.
fn serve(h: &mut Harness, queries: &[Sent], active: &[Client]) {
    for q in queries {
        let verdict = h.server_sends(q.server, &server_answer(q, active));
        assert_eq!(verdict, Verdict::Discarded(cdra_core::DiscardReason::LeasequeryAnswer));
    }
}

fn event(h: &Harness, e: ProxyEvent) -> u64 {
    h.engine.counters().proxy[e]
}

#[test]
fn an_empty_table_is_refilled_and_a_client_cdra_never_saw_is_answered_through_an_outage() {
    let mut h = Harness::new(lq_config());
    let c = Client::new(1); // 10.77.1.11
    let queries = sweep_served(&mut h, 1000, std::slice::from_ref(&c));
    let asked: Vec<_> = queries.iter().filter_map(|q| q.address).collect();
    let expected: Vec<_> = (2..=14).map(|i| Ipv4Addr::new(10, 77, 1, i)).collect();
    assert_eq!(asked, expected, "every address of the subnet but ours, the network's and the broadcast");
    assert_eq!(queries.iter().filter(|q| q.address.is_none()).count(), 1, "one INFORM for the link, per server");
    let r = record(&h, &c).expect("a record made from the DHCPLEASEACTIVE");
    assert_eq!(r.address, c.addr);
    assert!(!r.confirmed(), "suspect like a restored record (paper 3.4)");
    assert!(r.lease_secs <= 1800, "the lease left, counted from the query");
    assert_eq!(h.engine.table().len(), 1);
    assert_eq!(event(&h, ProxyEvent::LeasequeryRecordMade), 1);
    assert_eq!(h.engine.leasequery().servers()[0].willingness, Willingness::Answers);

    // The server is gone; the client reboots: a probe first (paper 3.2), then our ACK.
    h.advance(60);
    assert_eq!(h.client_sends(&c.init_reboot()), Verdict::AwaitingProbe);
    assert_eq!(h.probes.last().map(|p| p.target), Some(c.addr));
    h.run_timers(2);
    let (dest, bytes) = h.only_sent();
    assert!(matches!(dest, Destination::ClientLink { .. }), "{dest:?}");
    let ack = Message::new_checked(&bytes[..]).unwrap();
    assert_eq!(ack.message_type(), Some(MessageType::Ack));
    assert_eq!(ack.yiaddr(), c.addr);
    assert_eq!(ack.server_identifier(), Some(DS_ADDR), "proxy mode: we are the server");
    assert_eq!(ack.subnet_mask(), Some(Ipv4Addr::new(255, 255, 255, 0)), "the link's configuration");
    assert_eq!(ack.option_data(3), Some(&DS_ADDR.octets()[..]));
    assert_eq!(ack.option_data(6), Some(&[10, 77, 0, 53][..]));
    assert!(ack.lease_time().is_some_and(|l| l <= 1800 - 60));
}

#[test]
fn the_sweep_keeps_to_its_rate_and_its_outstanding_bound() {
    let mut c = lq_config();
    c.leasequery.rate = 20;
    c.leasequery.subnets = vec![Ipv4Net { addr: Ipv4Addr::new(10, 77, 1, 0), prefix_len: 24 }];
    let mut h = Harness::new(c);
    let first = sweep_served(&mut h, 1000, &[]);
    // A tenth of a second's burst, then 20 a second.
    assert!((19..=23).contains(&first.len()), "{} queries in the first second", first.len());
    let second = sweep_served(&mut h, 1000, &[]);
    assert!((19..=21).contains(&second.len()), "{} queries in the next second", second.len());

    let mut c = lq_config();
    c.leasequery.max_outstanding = 4;
    c.leasequery.unanswered_limit = 10;
    let mut h = Harness::new(c);
    let unanswered = run(&mut h, 500);
    assert_eq!(unanswered.len(), 4, "no more than max_outstanding wait for an answer");
    assert_eq!(h.engine.leasequery().outstanding(), 4);

    // A server that has not answered yet gets unanswered_limit queries at a time.
    let mut h = Harness::new(lq_config());
    let probing = run(&mut h, 500);
    assert_eq!(probing.iter().filter(|q| q.address.is_some()).count(), 3, "{probing:?}");
}

#[test]
fn forged_or_stray_answers_make_no_record() {
    let mut config = lq_config();
    config.servers.push(SERVER2);
    let mut h = Harness::new(config);
    let c = Client::new(1);
    // The server answers everything but the query about the client's address.
    let queries = run_with(&mut h, 1000, |q| (q.address != Some(c.addr)).then(|| server_answer(q, &[])));
    let q = *queries.iter().find(|q| q.address == Some(c.addr)).expect("asked");
    assert_eq!(q.server, SERVER, "the first server");
    let good = answer(&q, DHCPLEASEACTIVE, Some(&c));

    // From another configured server than the one asked.
    assert_eq!(h.server_sends(SERVER2, &good), Verdict::Dropped(cdra_core::DropReason::ReplyUnmatched));
    // Another xid.
    let mut m = answer(&q, DHCPLEASEACTIVE, Some(&c));
    m.xid ^= 1;
    assert!(matches!(h.server_sends(SERVER, &m), Verdict::Dropped(_)));
    // About another address than the one asked.
    let mut m = answer(&q, DHCPLEASEACTIVE, Some(&c));
    m.ciaddr = Ipv4Addr::new(10, 77, 1, 12);
    assert!(matches!(h.server_sends(SERVER, &m), Verdict::Dropped(_)));
    // To another giaddr than the link asked for.
    let mut m = answer(&q, DHCPLEASEACTIVE, Some(&c));
    m.giaddr = Ipv4Addr::new(10, 77, 9, 1);
    assert!(matches!(h.server_sends(SERVER, &m), Verdict::Dropped(_)));
    // From the client segment, whatever its source says.
    let bytes = good.bytes();
    let ingress =
        Ingress { ifindex: DS_IF, link_source: None, src: SocketAddrV4::new(SERVER, 67), dst: DS_ADDR, data: &bytes };
    h.outbox.clear();
    assert!(matches!(h.engine.handle_datagram(h.now, ingress, &mut h.outbox), Verdict::Dropped(_)));
    assert!(record(&h, &c).is_none());
    assert!(event(&h, ProxyEvent::LeasequeryReplyRejected) >= 3);

    // Too late: after query_timeout the query is forgotten.
    h.advance(3);
    run(&mut h, 100);
    assert_eq!(h.server_sends(SERVER, &good), Verdict::Dropped(cdra_core::DropReason::ReplyUnmatched));
    assert!(record(&h, &c).is_none(), "a late answer is not believed");
}

#[test]
fn a_server_that_does_not_answer_is_detected_left_alone_and_counted() {
    let mut h = Harness::new(lq_config());
    let mut sent = run(&mut h, 1000);
    assert!(!sent.is_empty());
    // Nobody answers (dnsmasq 2.90, Kea without its hook).
    for _ in 0..10 {
        sent.extend(run(&mut h, 1000));
    }
    let lq = h.engine.leasequery();
    assert_eq!(lq.servers()[0].willingness, Willingness::NotAnswering);
    assert_eq!(lq.sweeps_left(), 0, "the sweep is given up");
    assert_eq!(event(&h, ProxyEvent::LeasequeryServerNotAnswering), 1);
    assert_eq!(event(&h, ProxyEvent::LeasequerySweepAbandoned), 1);
    let before = sent.len();
    assert!(run(&mut h, 30_000).is_empty(), "left alone: no more queries");
    assert!(before <= 14 + 1, "no query was repeated to the same server: {before}");
    assert_eq!(h.engine.poll_timeout().map(|t| t > h.now), Some(true));
}

#[test]
fn the_next_server_is_asked_what_the_first_left_unanswered() {
    let mut config = lq_config();
    config.servers.push(SERVER2);
    config.leasequery.max_outstanding = 3;
    let mut h = Harness::new(config);
    let c = Client::new(1);
    let mut all = Vec::new();
    for _ in 0..20 {
        let sent = run(&mut h, 500);
        let to_second: Vec<_> = sent.iter().filter(|q| q.server == SERVER2).copied().collect();
        serve(&mut h, &to_second, std::slice::from_ref(&c));
        all.extend(sent);
    }
    assert_eq!(h.engine.leasequery().servers()[0].willingness, Willingness::NotAnswering);
    assert_eq!(h.engine.leasequery().servers()[1].willingness, Willingness::Answers);
    assert_eq!(record(&h, &c).map(|r| r.address), Some(c.addr));
    for a in (2..=14).map(|i| Ipv4Addr::new(10, 77, 1, i)) {
        assert!(all.iter().any(|q| q.server == SERVER2 && q.address == Some(a)), "{a} asked of the second server");
    }
}

#[test]
fn a_lease_active_never_overwrites_what_a_server_ack_made() {
    let mut h = Harness::new(lq_config());
    let c = Client::new(1);
    // The sweep runs; the query about the client's address is not answered yet.
    let queries = run_with(&mut h, 1000, |q| (q.address != Some(c.addr)).then(|| server_answer(q, &[])));
    let held = *queries.iter().find(|q| q.address == Some(c.addr)).expect("asked");
    // Meanwhile the client gets its lease through cdra: a real ACK (3600 s, confirmed).
    c.bind(&mut h);
    h.server_sends(SERVER, &answer(&held, DHCPLEASEACTIVE, Some(&c)));
    let r = record(&h, &c).unwrap();
    assert_eq!(r.lease_secs, 3600, "the ACK's lease, not the query's");
    assert!(r.confirmed());
    assert_eq!(event(&h, ProxyEvent::LeasequeryRecordKnown), 1);
    assert_eq!(event(&h, ProxyEvent::LeasequeryRecordMade), 0);
}

#[test]
fn a_table_with_records_is_not_swept_at_start_up() {
    let mut h = Harness::new(lq_config());
    Client::new(1).bind(&mut h);
    assert!(sweep_served(&mut h, 5000, &[]).is_empty());
    assert_eq!(event(&h, ProxyEvent::LeasequerySweepStarted), 0);
}

#[test]
fn leasequery_turned_off_by_a_reload_stops_the_sweep() {
    let config = lq_config();
    let mut h = Harness::new(config.clone());
    assert!(!run(&mut h, 100).is_empty());
    let mut off = config;
    off.leasequery.enabled = false;
    h.outbox.clear();
    h.engine.reconfigure(h.now, off, &mut h.outbox).expect("reload");
    assert!(run(&mut h, 10_000).is_empty());
    assert_eq!(h.engine.leasequery().outstanding(), 0);
    assert_eq!(h.engine.leasequery().sweeps_left(), 0);
}

#[test]
fn a_lease_active_that_comes_before_the_link_configuration_waits_for_it() {
    let mut h = Harness::new(lq_config());
    let c = Client::new(1);
    // Everything answered (UNASSIGNED without the subnet's options) but the INFORM.
    let queries = run_with(&mut h, 1000, |q| q.address.map(|_| server_answer(q, std::slice::from_ref(&c))));
    assert!(queries.iter().any(|q| q.address == Some(c.addr)));
    assert!(record(&h, &c).is_none(), "no configuration to answer the client with yet");
    let inform = *queries.iter().find(|q| q.address.is_none()).unwrap();
    h.server_sends(SERVER, &link_configuration(&inform));
    let again = sweep_served(&mut h, 500, std::slice::from_ref(&c));
    assert_eq!(again.iter().filter(|a| a.address == Some(c.addr)).count(), 1, "asked again");
    assert_eq!(record(&h, &c).map(|r| r.address), Some(c.addr));
}

#[test]
fn an_interface_added_by_a_reload_is_swept() {
    let mut config = lq_config();
    config.leasequery.subnets.clear();
    let ds0 = config.downstream[0].clone();
    let mut second = ds0.clone();
    second.name = "rd1".into();
    second.ifindex = 7;
    second.address = Ipv4Net { addr: Ipv4Addr::new(10, 77, 2, 1), prefix_len: 29 };
    second.all_addresses = vec![Ipv4Addr::new(10, 77, 2, 1)];
    let mut h = Harness::new(config.clone());
    let c = Client::new(1);
    c.bind(&mut h);
    assert!(run(&mut h, 1000).is_empty(), "a table with records: no sweep at start-up");
    config.downstream.push(second);
    h.outbox.clear();
    h.engine.reconfigure(h.now, config, &mut h.outbox).expect("reload");
    let queries = sweep_served(&mut h, 1000, &[]);
    let asked: Vec<_> = queries.iter().filter_map(|q| q.address).collect();
    assert_eq!(asked, (2..=6).map(|i| Ipv4Addr::new(10, 77, 2, i)).collect::<Vec<_>>());
}

/// A bound client with short leases, its lapse probe answered by an ICMP echo only.
fn lapse_answered_by_echo_only(leasequery: bool) -> (Harness, Client) {
    let mut config = lq_config();
    config.leasequery.enabled = leasequery;
    config.proxy.client_lease = Some(Duration::from_secs(60));
    let mut h = Harness::new(config);
    let c = Client::new(1);
    c.bind(&mut h);
    run(&mut h, 1000); // the start-up check (the table is not empty: no sweep)
    h.advance(61);
    h.run_timers(1);
    let probe = *h.probes.last().expect("the lapse probe");
    assert_eq!(probe.target, c.addr);
    h.probe_answer(c.addr, None); // only an echo reply: someone, maybe the client
    (h, c)
}

#[test]
fn a_doubted_record_is_kept_when_the_server_says_the_lease_is_still_the_clients() {
    let (mut h, c) = lapse_answered_by_echo_only(true);
    let queries = run(&mut h, 2000);
    let q = *queries.iter().find(|q| q.address == Some(c.addr)).expect("the server is asked");
    assert!(record(&h, &c).is_some(), "kept while the server is asked");
    h.server_sends(SERVER, &answer(&q, DHCPLEASEACTIVE, Some(&c)));
    assert!(record(&h, &c).is_some(), "the same client: kept");
    assert_eq!(event(&h, ProxyEvent::LeasequerySettleKept), 1);
    assert_eq!(h.engine.counters().proxy.removed[cdra_core::table::Removal::AddressInUse], 0);
}

#[test]
fn a_doubted_record_goes_when_the_server_says_unassigned_or_does_not_answer() {
    let (mut h, c) = lapse_answered_by_echo_only(true);
    let q = *run(&mut h, 2000).iter().find(|q| q.address == Some(c.addr)).unwrap();
    h.server_sends(SERVER, &answer(&q, DHCPLEASEUNASSIGNED, None));
    assert!(record(&h, &c).is_none());
    assert_eq!(event(&h, ProxyEvent::LeasequerySettleDropped), 1);

    let (mut h, c) = lapse_answered_by_echo_only(true);
    run(&mut h, 5000); // no answer
    assert!(record(&h, &c).is_none(), "the old behaviour");
    // Without leasequery: dropped at once (Appendix A.2), as before.
    let (mut h, c) = lapse_answered_by_echo_only(false);
    run(&mut h, 2000);
    assert!(record(&h, &c).is_none());
    assert_eq!(event(&h, ProxyEvent::LeasequerySettleSent), 0);
}

#[test]
fn leasequery_off_sends_nothing() {
    let mut config = lq_config();
    config.leasequery.enabled = false;
    let mut h = Harness::new(config);
    assert!(run(&mut h, 5000).is_empty());
}

#[test]
fn pool_mode_makes_no_record_of_its_own_pool_leases() {
    let mut config = lq_config();
    config.mode = cdra_core::Mode::Pool;
    config.pool.size = 0;
    let mut h = Harness::new(config);
    let pool_lease = Client {
        cid: cdra_core::pool::PoolIdentity::new(DS_ADDR, 3).client_id,
        mac: cdra_core::pool::PoolIdentity::new(DS_ADDR, 3).mac,
        addr: Ipv4Addr::new(10, 77, 1, 12),
    };
    let c = Client::new(1);
    sweep_served(&mut h, 2000, &[c.clone(), pool_lease.clone()]);
    assert_eq!(record(&h, &c).map(|r| r.address), Some(c.addr));
    assert!(record(&h, &pool_lease).is_none(), "a pool lease is an entry, not a client");
    assert_eq!(event(&h, ProxyEvent::LeasequeryRecordKnown), 1);
}

#[test]
fn a_configuration_without_a_mask_gets_the_links_own_and_an_inform_answer_wins() {
    let mut h = Harness::new(lq_config());
    let c = Client::new(1);
    // No INFORM answer (a non-authoritative ISC subnet); UNASSIGNED answers carry the
    // subnet's router but no mask (a subnet without `option subnet-mask`).
    let queries = run_with(&mut h, 1000, |q| {
        q.address.map(|_| {
            let mut m = server_answer(q, std::slice::from_ref(&c));
            if m.kind == Some(MessageType::Other(DHCPLEASEUNASSIGNED)) {
                m.options.push((3, DS_ADDR.octets().to_vec()));
            }
            m
        })
    });
    let r = record(&h, &c).expect("made with the link's own mask");
    let ack = Message::new_checked(r.reply_message().unwrap()).unwrap();
    assert_eq!(ack.subnet_mask(), Some(Ipv4Addr::new(255, 255, 255, 0)), "the link's /24");
    assert_eq!(ack.option_data(3), Some(&DS_ADDR.octets()[..]));
    assert_eq!(ack.option_data(6), None);
    // The INFORM's answer, late, replaces it for the records made after.
    let inform = *queries.iter().find(|q| q.address.is_none()).unwrap();
    h.server_sends(SERVER, &link_configuration(&inform));
    assert_eq!(event(&h, ProxyEvent::LeasequeryLinkConfigured), 2);
}

/// Review finding 1: a daemon whose table loads from Redis on a thread, or that is its
/// pair's standby, throws away what the engine sends. Leasequery asks nothing meanwhile
/// (no server is found not to answer by queries that never left), and sweeps the table
/// once the relay serves with it empty.
#[test]
fn nothing_is_asked_while_not_serving_and_an_empty_table_is_swept_once_serving() {
    let mut h = Harness::new(lq_config());
    h.engine.set_serving(h.now, false);
    assert!(run(&mut h, 30_000).is_empty(), "nothing asked while the queries would be thrown away");
    assert_eq!(h.engine.leasequery().servers()[0].willingness, Willingness::Unknown);
    assert_eq!(event(&h, ProxyEvent::LeasequeryServerNotAnswering), 0);
    assert_eq!(event(&h, ProxyEvent::LeasequerySweepStarted), 0);
    // The load failed (Redis down) or brought nothing: the relay serves, its table empty.
    h.engine.set_serving(h.now, true);
    let c = Client::new(1);
    let queries = sweep_served(&mut h, 1000, std::slice::from_ref(&c));
    assert!(queries.iter().any(|q| q.address == Some(c.addr)));
    assert_eq!(record(&h, &c).map(|r| r.address), Some(c.addr), "refilled");
    assert_eq!(event(&h, ProxyEvent::LeasequerySweepStarted), 1);
}

/// Review finding 1: a takeover that loads an empty shared table sweeps it; a relay handed
/// over keeps nothing of what leasequery learned (a server marked as not answering while
/// it was active is asked again).
#[test]
fn a_takeover_that_loads_an_empty_table_sweeps_it_and_hand_over_forgets_leasequery() {
    let mut h = Harness::new(lq_config());
    // Active, its table empty: the sweep goes unanswered; the server is marked.
    for _ in 0..11 {
        run(&mut h, 1000);
    }
    assert_eq!(h.engine.leasequery().servers()[0].willingness, Willingness::NotAnswering);
    let old = Client::new(2);
    old.bind(&mut h);
    // Standby: the table goes, and what leasequery knew with it.
    assert_eq!(h.engine.hand_over(), 1);
    h.engine.set_serving(h.now, false);
    let lq = h.engine.leasequery();
    assert_eq!(lq.servers()[0].willingness, Willingness::Unknown, "forgotten");
    assert_eq!((lq.outstanding(), lq.sweeps_left()), (0, 0));
    assert!(run(&mut h, 30_000).is_empty(), "a standby asks nothing");
    // Active again; the shared table it loaded was empty.
    h.engine.set_serving(h.now, true);
    let c = Client::new(1);
    sweep_served(&mut h, 1000, std::slice::from_ref(&c));
    assert_eq!(record(&h, &c).map(|r| r.address), Some(c.addr), "refilled after the takeover");
    assert_eq!(h.engine.leasequery().servers()[0].willingness, Willingness::Answers);
}

/// A takeover that loads a table with records sweeps nothing.
#[test]
fn a_takeover_that_loads_records_does_not_sweep() {
    let mut h = Harness::new(lq_config());
    h.engine.set_serving(h.now, false);
    run(&mut h, 1000);
    Client::new(1).bind(&mut h); // stands for the loaded table
    let swept = event(&h, ProxyEvent::LeasequerySweepStarted);
    h.engine.set_serving(h.now, true);
    assert!(sweep_served(&mut h, 5000, &[]).is_empty());
    assert_eq!(event(&h, ProxyEvent::LeasequerySweepStarted), swept);
}

/// Review finding 6: the link's configuration keeps configuration only: not a subnet
/// selection echoed (118, RFC 3011), nor RFC 6926's bulk leasequery options (151-157), nor
/// a client's port set (159, RFC 7618); a PCP server (158) and a site option are kept.
#[test]
fn the_link_configuration_keeps_no_option_that_describes_a_query_or_a_client() {
    let mut h = Harness::new(lq_config());
    let c = Client::new(1);
    let denied: [u8; 9] = [118, 151, 152, 153, 154, 155, 156, 157, 159];
    let kept: [u8; 2] = [158, 224];
    sweep_served_with(&mut h, &c, |m| {
        for code in denied.iter().chain(&kept) {
            m.options.push((*code, vec![1, 2, 3, 4]));
        }
    });
    let r = record(&h, &c).expect("made");
    let ack = Message::new_checked(r.reply_message().unwrap()).unwrap();
    for code in denied {
        assert_eq!(ack.option_data(code), None, "option {code} is not configuration");
    }
    for code in kept {
        assert_eq!(ack.option_data(code), Some(&[1, 2, 3, 4][..]), "option {code} is");
    }
    assert_eq!(ack.subnet_mask(), Some(Ipv4Addr::new(255, 255, 255, 0)));
}

/// A sweep answered by a server with leasequery whose INFORM answer `extra` changes.
fn sweep_served_with(h: &mut Harness, c: &Client, extra: impl Fn(&mut Msg)) {
    run_with(h, 1000, |q| {
        let mut m = server_answer(q, std::slice::from_ref(c));
        if q.address.is_none() {
            extra(&mut m);
        }
        Some(m)
    });
}
