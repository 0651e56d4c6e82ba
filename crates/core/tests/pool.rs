//! Pool mode (paper 4.3) in the core: the pool is leased from an unmodified server under
//! cdra's own identities, kept, given to new clients the server cannot serve, taken back,
//! and its clients moved onto leases of their own when the server answers again.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use cdra_core::config::{Mode, PoolAssign};
use cdra_core::counters::ProxyEvent;
use cdra_core::pool::{EntryState, PoolIdentity};
use cdra_core::table::Origin;
use cdra_core::{Destination, DiscardReason, EngineConfig, Verdict};
use cdra_wire::{Message, MessageType};

use common::*;

fn pool_config(assign: PoolAssign) -> EngineConfig {
    let mut c = proxy_config();
    c.mode = Mode::Pool;
    c.pool.size = 2;
    c.pool.assign = assign;
    c.proxy.safe_network = false;
    c
}

/// What the engine sent to the server, parsed: (type, xid, chaddr, option 61, option 50,
/// option 54, ciaddr).
#[derive(Debug, Clone)]
struct ToServer {
    kind: Option<MessageType>,
    xid: u32,
    chaddr: Vec<u8>,
    client_id: Option<Vec<u8>>,
    requested: Option<Ipv4Addr>,
    server_id: Option<Ipv4Addr>,
    ciaddr: Ipv4Addr,
}

fn to_server(h: &Harness) -> Vec<ToServer> {
    servers_got(&h.sent())
}

/// What of `sent` went to a server, parsed.
fn servers_got(sent: &[(Destination, Vec<u8>)]) -> Vec<ToServer> {
    sent.iter()
        .filter(|(d, _)| matches!(d, Destination::Server { .. }))
        .filter_map(|(_, b)| {
            let m = Message::new_checked(&b[..]).ok()?;
            Some(ToServer {
                kind: m.message_type(),
                xid: m.xid(),
                chaddr: m.chaddr().to_vec(),
                client_id: m.client_identifier().map(<[u8]>::to_vec),
                requested: m.requested_ip(),
                server_id: m.server_identifier(),
                ciaddr: m.ciaddr(),
            })
        })
        .collect()
}

/// The server's answer `kind` to `req`, giving `addr`.
fn answer(req: &ToServer, kind: MessageType, addr: Ipv4Addr) -> Msg {
    let mut m = Msg::reply(kind);
    m.xid = req.xid;
    m.chaddr = req.chaddr.clone();
    m.yiaddr = addr;
    m.options = vec![
        (54, SERVER.octets().to_vec()),
        (51, 3600u32.to_be_bytes().to_vec()),
        (1, vec![255, 255, 255, 0]),
        (3, DS_ADDR.octets().to_vec()),
        (6, vec![10, 77, 0, 53]),
    ];
    m
}

fn pool_addr(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 1, 200 + i)
}

/// A pool-mode harness whose pool is filled by a model of the server: the engine's
/// DISCOVERs get OFFERs of .200, .201 ..., its REQUESTs ACKs.
fn filled(assign: PoolAssign) -> Harness {
    filled_with(pool_config(assign))
}

/// [`filled`] with a configuration of the test's own.
fn filled_with(config: EngineConfig) -> Harness {
    let mut h = Harness::new(config);
    h.run_timers(0);
    let discovers = to_server(&h);
    assert_eq!(discovers.len(), 2, "one DISCOVER per entry: {discovers:?}");
    for (i, d) in discovers.iter().enumerate() {
        assert_eq!(d.kind, Some(MessageType::Discover));
        let id = PoolIdentity::new(DS_ADDR, i as u16);
        assert_eq!((d.chaddr.as_slice(), d.client_id.as_deref()), (&id.mac[..], Some(&id.client_id[..])));
        assert_eq!(d.chaddr[0], 0x0e, "a locally administered hardware address");
        h.server_sends(SERVER, &answer(d, MessageType::Offer, pool_addr(i as u8)));
        let req = to_server(&h);
        assert_eq!(req.len(), 1);
        assert_eq!(
            (req[0].kind, req[0].xid, req[0].requested, req[0].server_id),
            (Some(MessageType::Request), d.xid, Some(pool_addr(i as u8)), Some(SERVER)),
            "SELECTING, same xid (RFC 2131 4.4.1)"
        );
        h.server_sends(SERVER, &answer(&req[0], MessageType::Ack, pool_addr(i as u8)));
        assert!(h.sent().is_empty(), "the pool's ACK reaches no client");
    }
    let t = h.engine.pool().totals();
    assert_eq!((t.entries, t.free, t.assigned), (2, 2, 0));
    h
}

/// Run every timer due within `secs` from now, collecting all that was sent.
fn run_all(h: &mut Harness, secs: u64) -> Vec<(Destination, Vec<u8>)> {
    let limit = cdra_core::Timestamp::from_millis(h.now.as_millis() + secs * 1000);
    let mut all = Vec::new();
    while let Some(t) = h.engine.poll_timeout() {
        if t > limit {
            break;
        }
        h.now = h.now.max(t);
        h.outbox.clear();
        h.engine.handle_timeout(h.now, &mut h.outbox);
        h.probes.extend_from_slice(h.outbox.probes());
        all.extend(h.sent());
    }
    h.now = h.now.max(limit);
    all
}

fn kind(b: &[u8]) -> Option<MessageType> {
    Message::new_checked(b).ok().and_then(|m| m.message_type())
}

/// Client `a` DISCOVERs, the probe of the entry offered finds nobody, and its SELECTING
/// REQUEST for that address is answered by cdra: the entry's address, now given to it.
fn given_an_entry(h: &mut Harness, a: &Client) -> std::net::Ipv4Addr {
    assert_eq!(h.client_sends(&a.msg(MessageType::Discover)), Verdict::AwaitingProbe);
    let offered = h.probes.last().expect("a probe").target;
    run_all(h, 1);
    let mut sel = a.selecting(DS_ADDR);
    sel.options.retain(|(c, _)| *c != 50);
    sel.options.push((50, offered.octets().to_vec()));
    assert_eq!(h.client_sends(&sel), Verdict::AnsweredLocally);
    offered
}

#[test]
fn the_pool_is_leased_under_cdras_own_identities_and_kept_renewed() {
    let mut h = filled(PoolAssign::Outage);
    // At T1 (1800 s) each entry renews with its server, as a client would.
    h.advance(1801);
    h.run_timers(0);
    let renewals = to_server(&h);
    assert!(!renewals.is_empty());
    for r in &renewals {
        assert_eq!((r.kind, r.server_id), (Some(MessageType::Request), None), "RENEWING: no server id");
        assert!(r.ciaddr == pool_addr(0) || r.ciaddr == pool_addr(1));
        h.server_sends(SERVER, &answer(r, MessageType::Ack, r.ciaddr));
    }
    assert!(h.engine.counters().proxy[ProxyEvent::PoolRenewed] >= 1);
    // A NAK loses an entry; the pool refills to its size.
    h.advance(1801);
    h.run_timers(0);
    let renewals = to_server(&h);
    let first = renewals.first().expect("a renewal").clone();
    h.server_sends(SERVER, &answer(&first, MessageType::Nak, first.ciaddr));
    assert_eq!(h.engine.counters().proxy[ProxyEvent::PoolLeaseLost], 1);
    h.run_timers(0);
    assert!(to_server(&h).iter().any(|d| d.kind == Some(MessageType::Discover)), "refilling");
}

#[test]
fn with_assign_always_a_new_client_is_served_from_the_pool_and_the_server_sees_nothing_of_it() {
    let mut h = filled(PoolAssign::Always);
    let a = Client::new(1);
    assert_eq!(h.client_sends(&a.msg(MessageType::Discover)), Verdict::AwaitingProbe, "probe before the OFFER");
    assert!(to_server(&h).is_empty());
    let probed = h.probes.last().expect("a probe").target;
    let offers: Vec<_> = run_all(&mut h, 1).into_iter().filter(|(_, b)| kind(b) == Some(MessageType::Offer)).collect();
    assert_eq!(offers.len(), 1);
    let m = Message::new_checked(&offers[0].1[..]).expect("offer");
    assert_eq!((m.yiaddr(), m.server_identifier()), (probed, Some(DS_ADDR)), "proxy identity");
    assert_eq!(m.chaddr(), &a.mac[..], "the client's own hardware address");
    assert_eq!(m.lease_time(), Some(600), "[pool] client_lease");
    assert_eq!(m.option(6).map(|o| o.data.to_vec()), Some(vec![10, 77, 0, 53]), "the pool lease options");
    // Its REQUEST: ACKed without a second probe; nothing to the server.
    let mut sel = a.selecting(DS_ADDR);
    sel.options.retain(|(c, _)| *c != 50);
    sel.options.push((50, probed.octets().to_vec()));
    assert_eq!(h.client_sends(&sel), Verdict::AnsweredLocally);
    assert!(to_server(&h).is_empty());
    let r = record(&h, &a).expect("record");
    assert_eq!((r.address, r.origin()), (probed, Origin::Pool { n: r.origin_n() }));
    assert_eq!(h.engine.pool().totals().assigned, 1, "one entry assigned");
    // The pool refills (one more entry), and the client's renewals are answered locally.
    assert_eq!(h.client_sends_to(DS_ADDR, &Msg { ciaddr: probed, ..a.renew() }), Verdict::AnsweredLocally);
}

/// `origin` of a pool client, for the assertion above.
trait OriginN {
    fn origin_n(&self) -> u16;
}
impl OriginN for cdra_core::table::ClientRecord {
    fn origin_n(&self) -> u16 {
        match self.origin() {
            Origin::Pool { n } => n,
            _ => u16::MAX,
        }
    }
}

/// The server answers again (after a client was given a pool address): it answers the
/// pool's pending refill DISCOVER.
fn server_answers_again(h: &mut Harness) {
    h.advance(1);
    let sent = run_all(h, 70);
    let discover =
        servers_got(&sent).into_iter().rev().find(|s| s.kind == Some(MessageType::Discover)).expect("the pool refills");
    h.server_sends(SERVER, &answer(&discover, MessageType::Offer, pool_addr(9)));
}

/// A client served from the pool after `fallback_after` without a server OFFER.
fn pool_client_by_fallback() -> (Harness, Client, Ipv4Addr) {
    pool_client_by_fallback_in(filled(PoolAssign::Outage))
}

/// [`pool_client_by_fallback`] in `h` (filled, `assign = "outage"`).
fn pool_client_by_fallback_in(mut h: Harness) -> (Harness, Client, Ipv4Addr) {
    let a = Client::new(1);
    assert!(matches!(h.client_sends(&a.msg(MessageType::Discover)), Verdict::RelayedToServers { .. }));
    // The server does not answer; 2 s later the pool does.
    run_all(&mut h, 2);
    assert_eq!(h.engine.counters().proxy[ProxyEvent::PoolFallback], 1);
    let probed = h.probes.last().expect("probe before the OFFER").target;
    assert!(run_all(&mut h, 1).iter().any(|(_, b)| kind(b) == Some(MessageType::Offer)));
    let mut sel = a.selecting(DS_ADDR);
    sel.options.retain(|(c, _)| *c != 50);
    sel.options.push((50, probed.octets().to_vec()));
    assert_eq!(h.client_sends(&sel), Verdict::AnsweredLocally);
    (h, a, probed)
}

/// Run `secs` of timers: no RELEASE of `addr` goes to a server (its client holds it).
fn assert_not_released(h: &mut Harness, addr: Ipv4Addr, secs: u64) {
    let releases: Vec<_> = run_all(h, secs)
        .iter()
        .filter(|(d, b)| matches!(d, Destination::Server { .. }) && kind(b) == Some(MessageType::Release))
        .filter_map(|(_, b)| Message::new_checked(&b[..]).ok().map(|m| m.ciaddr()))
        .collect();
    assert!(!releases.contains(&addr), "released {addr}, which its client holds");
}

#[test]
fn with_assign_outage_the_pool_answers_when_no_server_offer_comes_in_time() {
    let (h, a, addr) = pool_client_by_fallback();
    assert_eq!(record(&h, &a).map(|r| r.address), Some(addr));
    // A server's OFFER arriving now is too late: one OFFER per DISCOVER (paper 5.2).
    let mut late = a.reply(MessageType::Offer, true);
    late.yiaddr = Ipv4Addr::new(10, 77, 1, 150);
    let mut h = h;
    assert!(matches!(h.server_sends(SERVER, &late), Verdict::Discarded(_)));
}

/// The pool client `a` on `addr` renews once the server answers again: it is answered,
/// its entry's lease is renewed with the server, and the server's ACK to that starts the
/// move. Returns what went to the server after that ACK.
fn move_started(h: &mut Harness, a: &Client, addr: Ipv4Addr) -> Vec<ToServer> {
    assert_eq!(h.client_sends_to(DS_ADDR, &Msg { ciaddr: addr, ..a.renew() }), Verdict::AnsweredLocally);
    let renew = to_server(h);
    assert_eq!(renew.len(), 1, "{renew:?}");
    assert_eq!((renew[0].kind, renew[0].ciaddr), (Some(MessageType::Request), addr));
    assert!(renew[0].client_id.as_deref().is_some_and(|id| id.starts_with(b"\0cdra-pool/")));
    h.server_sends(SERVER, &answer(&renew[0], MessageType::Ack, addr));
    to_server(h)
}

#[test]
fn a_pool_client_moves_onto_a_lease_of_its_own_when_the_server_answers() {
    let (mut h, a, addr) = pool_client_by_fallback();
    // With the ACK that gave the client its address, the entry's lease was renewed with the
    // server, to hear from it (lost: the server is down). A renewal within a minute is
    // answered, and sends nothing more.
    assert_eq!(h.engine.counters().proxy[ProxyEvent::PoolRenewalSent], 1);
    assert_eq!(h.client_sends_to(DS_ADDR, &Msg { ciaddr: addr, ..a.renew() }), Verdict::AnsweredLocally);
    assert!(to_server(&h).is_empty());
    assert_eq!(h.engine.counters().proxy[ProxyEvent::PoolMigrationStarted], 0);
    server_answers_again(&mut h);
    // The server is back: at the client's next renewal the entry's RENEW is ACKed, and at
    // once the pool lease is released and the address requested under the client's own
    // identity.
    let sent = move_started(&mut h, &a, addr);
    let release = sent.iter().find(|s| s.kind == Some(MessageType::Release)).expect("the pool lease released");
    assert_eq!(release.ciaddr, addr);
    assert!(release.client_id.as_deref().is_some_and(|id| id.starts_with(b"\0cdra-pool/")));
    let take = sent.iter().find(|s| s.kind == Some(MessageType::Request)).expect("asked as the client");
    assert_eq!(
        (take.chaddr.as_slice(), take.client_id.as_deref(), take.requested, take.server_id),
        (&a.mac[..], Some(&a.cid[..]), Some(addr), Some(SERVER))
    );
    let pos = |k| sent.iter().position(|s| s.kind == Some(k));
    assert!(pos(MessageType::Release) < pos(MessageType::Request), "released first");
    // The server grants it: the record is the client's own lease now; nothing reaches the
    // client (it holds a lease from us already).
    let mut ack = answer(take, MessageType::Ack, addr);
    ack.options.push((61, a.cid.clone()));
    assert!(matches!(h.server_sends(SERVER, &ack), Verdict::Discarded(_)));
    assert!(h.sent().is_empty());
    let r = record(&h, &a).expect("record");
    assert_eq!((r.origin(), r.address), (Origin::Server, addr));
    assert_eq!(h.engine.counters().proxy[ProxyEvent::PoolMigrated], 1);
    assert!(h.engine.pool().entries(0).all(|e| e.address != addr), "the entry left the pool");
}

/// Seen in the demo (scripts/demo, step 6) with `client_lease = "20s"`: a pool client bound
/// during the outage renewed every 10 s after the server came back, and for a minute each
/// renewal was answered without asking the server (the entry's RENEW was sent at most once
/// a minute), so the move came only at its fourth or fifth renewal. The issue asks for it
/// within two. Each renewal asks the server once, whatever the pool client's lease.
#[test]
fn with_short_pool_leases_the_first_renewal_after_the_servers_return_starts_the_move() {
    let mut c = pool_config(PoolAssign::Outage);
    c.pool.client_lease = Duration::from_secs(20);
    let (mut h, a, probed) = pool_client_by_fallback_in(filled_with(c));
    // Its RENEW (with the ACK) was lost. The server answers again 10 s later, at the
    // client's first renewal: that renewal asks the server, whose ACK starts the move.
    h.advance(10);
    let sent = move_started(&mut h, &a, probed);
    assert!(sent.iter().any(|s| s.kind == Some(MessageType::Release)), "{sent:?}");
    assert_eq!(h.engine.counters().proxy[ProxyEvent::PoolMigrationStarted], 1);
    // A retransmission of a renewal a second later asks nothing more.
    h.advance(1);
    let _ = h.client_sends_to(DS_ADDR, &Msg { ciaddr: probed, ..a.renew() });
    assert!(to_server(&h).iter().all(|s| s.client_id.as_deref().is_none_or(|id| !id.starts_with(b"\0cdra-pool/"))));
}

#[test]
fn a_refused_move_takes_the_address_back_and_the_client_starts_over() {
    let (mut h, a, addr) = pool_client_by_fallback();
    server_answers_again(&mut h);
    let take = move_started(&mut h, &a, addr)
        .into_iter()
        .find(|s| s.kind == Some(MessageType::Request))
        .expect("asked as the client");
    h.server_sends(SERVER, &answer(&take, MessageType::Nak, addr));
    // The address is asked back under the pool identity at once...
    let back = to_server(&h);
    assert_eq!(back.len(), 1);
    assert!(back[0].client_id.as_deref().is_some_and(|id| id.starts_with(b"\0cdra-pool/")));
    assert_eq!(back[0].requested, Some(addr));
    h.server_sends(SERVER, &answer(&back[0], MessageType::Ack, addr));
    assert!(h.engine.pool().entries(0).any(|e| e.address == addr && matches!(e.state, EntryState::Assigned(_))));
    // ...and the client's next request gets a NAK: it starts over with the server.
    h.client_sends_to(DS_ADDR, &Msg { ciaddr: addr, ..a.renew() });
    assert_eq!(kind(&h.only_sent().1), Some(MessageType::Nak));
    assert!(record(&h, &a).is_none());
    assert!(h.engine.pool().entries(0).any(|e| e.address == addr && e.state == EntryState::Free));
}

#[test]
fn a_pool_clients_release_frees_its_address_and_tells_the_server_nothing() {
    let (mut h, a, addr) = pool_client_by_fallback();
    let mut release = a.msg(MessageType::Release);
    release.ciaddr = addr;
    release.options.push((54, DS_ADDR.octets().to_vec()));
    assert_eq!(h.client_sends_to(DS_ADDR, &release), Verdict::AnsweredLocally);
    assert!(to_server(&h).is_empty());
    assert!(record(&h, &a).is_none());
    assert!(h.engine.pool().entries(0).any(|e| e.address == addr && e.state == EntryState::Free));
}

#[test]
fn a_pool_address_another_host_uses_is_held_back_and_another_offered() {
    let mut h = filled(PoolAssign::Always);
    let a = Client::new(1);
    assert_eq!(h.client_sends(&a.msg(MessageType::Discover)), Verdict::AwaitingProbe);
    let first = h.probes.last().expect("probe").target;
    h.probe_answer(first, Some([0x02, 0xee, 0, 0, 0, 1]));
    // Not declined: a DECLINE would free the address at the server after its probation
    // period, for the next client to collide with. The pool keeps the lease instead.
    let sent = to_server(&h);
    assert!(!sent.iter().any(|s| s.kind == Some(MessageType::Decline)), "{sent:?}");
    let held = h.engine.pool().entries(0).find(|e| e.address == first).expect("kept");
    assert!(held.is_held_back() && !held.confirmed);
    assert_eq!(h.engine.counters().proxy[ProxyEvent::PoolHeldBack], 1);
    let second = h.probes.last().expect("another probe").target;
    assert_ne!(second, first);
    let offer = run_all(&mut h, 1).into_iter().find(|(_, b)| kind(b) == Some(MessageType::Offer)).expect("an OFFER");
    assert_eq!(Message::new_checked(&offer.1[..]).map(|m| m.yiaddr()).ok(), Some(second));
    // Held back, it is still renewed at its T1 (the server gives it to nobody else), and
    // not offered to the next client.
    let b = Client::new(2);
    h.client_sends(&b.msg(MessageType::Discover));
    assert_ne!(h.probes.last().map(|p| p.target), Some(first));
}

#[test]
fn at_most_size_entries_are_held_back_a_host_answering_everything_cannot_grow_the_pool() {
    let mut h = filled(PoolAssign::Always);
    let squatter = Some([0x02, 0xee, 0, 0, 0, 1]);
    let a = Client::new(1);
    h.client_sends(&a.msg(MessageType::Discover));
    // Every probe is answered: the two entries are held back, then (the refill's entries
    // leased) further ones are dropped rather than held.
    for round in 0..6 {
        let Some(p) = h.probes.last().copied() else { break };
        h.probe_answer(p.target, squatter);
        // Lease whatever the refill asked for, so there is something to offer.
        for req in to_server(&h).into_iter().filter(|s| s.kind == Some(MessageType::Discover)) {
            let addr = pool_addr(10 + round * 2 + (req.xid % 2) as u8);
            h.server_sends(SERVER, &answer(&req, MessageType::Offer, addr));
            let ask = to_server(&h).into_iter().find(|s| s.kind == Some(MessageType::Request)).expect("REQUEST");
            h.server_sends(SERVER, &answer(&ask, MessageType::Ack, addr));
        }
        h.client_sends(&a.msg(MessageType::Discover));
    }
    assert_eq!(h.engine.pool().held_back(0), 2, "[pool] size entries held back at most");
    assert!(h.engine.counters().proxy[ProxyEvent::PoolInUseDropped] >= 1);
    assert!(h.engine.pool().entries(0).count() <= 2 + 2 + 1);
}

#[test]
fn pool_entries_and_pool_clients_survive_a_restart_suspect() {
    let (h, a, addr) = pool_client_by_fallback();
    let decoded = stored_records(&h.engine);
    assert_eq!(decoded.len(), 3, "two entries and the pool client");
    let mut h2 = Harness::new(pool_config(PoolAssign::Outage));
    h2.now = h.now;
    let report = h2.engine.restore(h2.now, decoded);
    assert_eq!((report.loaded, report.pool_entries), (1, 2));
    run_all(&mut h2, 0);
    let e = h2.engine.pool().entries(0).find(|e| e.address == addr).expect("entry back");
    assert!(matches!(&e.state, EntryState::Assigned(k) if *k == a.key()), "{:?}", e.state);
    assert!(!e.confirmed, "suspect after a restart (paper 3.4)");
    // Two entries back: the assigned one, and a free one held back until a probe finds
    // nobody on its address; two more being acquired to have two free.
    let t = h2.engine.pool().totals();
    assert_eq!((t.entries, t.held_back, t.acquiring, t.assigned), (4, 1, 2, 1));
    let other = h2.engine.pool().entries(0).find(|e| e.is_held_back()).map(|e| e.address).expect("held back");
    assert!(h2.probes.iter().any(|p| p.target == other), "the suspect entry is probed");
    run_all(&mut h2, 2);
    let e = h2.engine.pool().entries(0).find(|e| e.address == other).expect("still there");
    assert!(e.is_available() && e.confirmed, "nobody answered: free again");
}

#[test]
fn the_pool_clients_lapse_returns_its_address() {
    let (mut h, a, addr) = pool_client_by_fallback();
    // No renewal: its 600 s lease lapses; the probe finds nobody; the address is free again.
    run_all(&mut h, 610);
    assert_eq!(h.probes.last().map(|p| p.target), Some(addr));
    assert!(record(&h, &a).is_none());
    assert!(h.engine.pool().entries(0).any(|e| e.address == addr && e.state == EntryState::Free));
    assert_eq!(h.engine.counters().proxy[ProxyEvent::ReleaseSent], 0, "nothing released at the server");
    let _ = Duration::ZERO;
}

/// Found by the engine fuzzer (`crates/fuzz/regressions.txt`, `pool_inconsistent`): a pool
/// client whose record has run out (its DISCOVER came before the timer that ends its
/// entry's lease, or after a clock step) is given another entry; the one it had was left
/// given to it, for ever (never renewed for a record, never returned to the pool).
#[test]
fn a_pool_client_given_another_entry_leaves_the_one_it_had() {
    let mut h = filled(PoolAssign::Always);
    let a = Client::new(1);
    given_an_entry(&mut h, &a);
    let n = record(&h, &a).expect("record").origin_n();
    // The entry's lease (an hour) runs out before its timer has run.
    h.advance(3601);
    assert_eq!(h.client_sends(&a.msg(MessageType::Discover)), Verdict::AwaitingProbe);
    let r = record(&h, &a).expect("record");
    assert_ne!(r.origin_n(), n, "another entry");
    let old = h.engine.pool().by_number(0, n).expect("the first entry");
    assert!(
        !matches!(&old.state, EntryState::Assigned(k) if *k == a.key()),
        "the first entry is no longer given to the client: {:?}",
        old.state
    );
}

/// Found by the engine fuzzer (`crates/fuzz/regressions.txt`, `host`, mode=pool): with
/// `[proxy] client_lease` shorter than `[pool] client_lease`, the sweep cut a pool client's
/// lease end down to the proxy's length: the client "lapsed" while it still held the pool's
/// longer lease, its address went back to the pool and was given to the next client.
#[test]
fn a_pool_clients_lease_end_is_bounded_by_the_pools_client_lease_not_the_proxys() {
    let h = filled(PoolAssign::Always);
    let mut c = h.engine.config().clone();
    c.proxy.safe_network = true;
    c.proxy.client_lease = Some(Duration::from_secs(55));
    c.pool.client_lease = Duration::from_secs(600);
    // The same pool, under the new settings.
    let stored = stored_records(&h.engine);
    let mut h = Harness { engine: cdra_core::Engine::new(c), ..h };
    h.engine.restore(h.now, stored);
    run_all(&mut h, 1);
    let a = Client::new(1);
    h.client_sends(&a.msg(MessageType::Discover));
    let offer = h.sent().into_iter().find(|(_, b)| kind(b) == Some(MessageType::Offer)).expect("an OFFER");
    let addr = Message::new_checked(&offer.1[..]).map(|m| m.yiaddr()).expect("offer");
    let mut sel = a.selecting(DS_ADDR);
    sel.options.retain(|(c, _)| *c != 50);
    sel.options.push((50, addr.octets().to_vec()));
    assert_eq!(h.client_sends(&sel), Verdict::AnsweredLocally);
    let ack = h.sent().into_iter().find(|(_, b)| kind(b) == Some(MessageType::Ack)).expect("an ACK");
    assert_eq!(Message::new_checked(&ack.1[..]).ok().and_then(|m| m.lease_time()), Some(600));
    // A few minutes of sweeps and timers, the client quiet (its lease runs ten).
    run_all(&mut h, 300);
    let r = record(&h, &a).expect("the pool client keeps its record");
    assert_eq!(r.address, addr);
    assert!(h.engine.pool().entries(0).any(|e| e.address == addr && e.state == EntryState::Assigned(a.key())));
}

/// Found by the engine fuzzer (`crates/fuzz/regressions.txt`, `host`, mode=pool): a pool
/// client moved onto a lease of its own kept the end of the pool's short lease it had had;
/// the server's ACK to its next renewal, passed on whole (no `[proxy] client_lease`), gave it
/// the server's lease, yet at the old end the record "lapsed" and a RELEASE freed at the
/// server the address the client still held.
#[test]
fn a_moved_pool_client_renewed_by_the_server_does_not_lapse_at_its_old_pool_lease_end() {
    let (mut h, a, addr) = pool_client_by_fallback();
    server_answers_again(&mut h);
    let sent = move_started(&mut h, &a, addr);
    let take = sent.iter().find(|s| s.kind == Some(MessageType::Request)).expect("asked as the client");
    let mut ack = answer(take, MessageType::Ack, addr);
    ack.options.push((61, a.cid.clone()));
    h.server_sends(SERVER, &ack);
    assert_eq!(record(&h, &a).map(|r| r.origin()), Some(Origin::Server));
    // The client rebinds; the server's ACK (an hour) reaches it whole.
    h.advance(60);
    assert!(matches!(h.client_sends(&Msg { ciaddr: addr, ..a.renew() }), Verdict::RelayedToServers { .. }));
    let mut renewed = a.reply(MessageType::Ack, true);
    renewed.yiaddr = addr;
    assert_eq!(h.server_sends(SERVER, &renewed), Verdict::DeliveredToClient);
    let got = h.sent().into_iter().find(|(_, b)| kind(b) == Some(MessageType::Ack)).expect("the ACK");
    assert_eq!(Message::new_checked(&got.1[..]).ok().and_then(|m| m.lease_time()), Some(3600));
    // Past the end of the pool's client lease (600 s): nothing is released.
    assert_not_released(&mut h, addr, 900);
    assert!(record(&h, &a).is_some());
}

/// Found by the engine fuzzer (`crates/fuzz/regressions.txt`, `host`, mode=pool): a pool
/// client moved onto a lease of its own still holds the pool's client lease from us, longer
/// than `[proxy] client_lease`; the sweep cut its end down to the proxy's length (it is no
/// pool client any more) and a RELEASE freed the address at the server while it held it.
#[test]
fn a_moved_pool_client_keeps_the_pool_lease_it_holds_when_the_proxys_is_shorter() {
    let mut c = pool_config(PoolAssign::Outage);
    c.proxy.client_lease = Some(Duration::from_secs(28));
    c.pool.client_lease = Duration::from_secs(228);
    let (mut h, a, addr) = pool_client_by_fallback_in(filled_with(c));
    let ack = h.sent().into_iter().find(|(_, b)| kind(b) == Some(MessageType::Ack)).expect("the ACK");
    assert_eq!(Message::new_checked(&ack.1[..]).ok().and_then(|m| m.lease_time()), Some(228));
    server_answers_again(&mut h);
    let sent = move_started(&mut h, &a, addr);
    let take = sent.iter().find(|s| s.kind == Some(MessageType::Request)).expect("asked as the client");
    let mut granted = answer(take, MessageType::Ack, addr);
    granted.options.push((61, a.cid.clone()));
    h.server_sends(SERVER, &granted);
    assert_eq!(record(&h, &a).map(|r| r.origin()), Some(Origin::Server));
    // The client holds 228 s from us; within them nothing is released.
    let later = run_all(&mut h, 150);
    let released = later.iter().any(|(d, b)| {
        matches!(d, Destination::Server { .. })
            && kind(b) == Some(MessageType::Release)
            && Message::new_checked(&b[..]).is_ok_and(|m| m.ciaddr() == addr)
    });
    assert!(!released, "released {addr} within the lease the client holds");
}

/// Found by the engine fuzzer (`crates/fuzz/regressions.txt`, `lease_beyond_record`,
/// mode=pool): a machine that sent a BOOTREQUEST (its record waiting as a BOOTP client's)
/// then DISCOVERs is given a pool address, a DHCP lease; its record stayed a BOOTP one, so
/// its next BOOTREQUEST was answered with the pool's ACK as it was cached (the pool lease's
/// whole length, type ACK) — more lease than was left, to a client that keeps a BOOTP
/// address for ever.
#[test]
fn a_pool_address_is_a_dhcp_lease_even_for_a_record_that_began_as_bootp() {
    let mut h = filled(PoolAssign::Always);
    // A client known by its hardware address (no option 61), as BOOTP clients are.
    let a = Client::new(1);
    let mut discover = a.msg(MessageType::Discover);
    discover.options.retain(|(code, _)| *code != 61);
    let mut boot = a.msg(MessageType::Discover);
    boot.kind = None;
    boot.options.clear();
    let key = cdra_core::table::ClientKey::hardware(1, &a.mac);
    let rec = |h: &Harness| h.engine.table().find(&key).and_then(|s| h.engine.table().get(s)).cloned();
    assert!(matches!(h.client_sends(&boot), Verdict::RelayedToServers { .. }));
    assert_eq!(h.client_sends(&discover), Verdict::AwaitingProbe);
    let addr = h.probes.last().expect("a probe").target;
    run_all(&mut h, 1);
    let r = rec(&h).expect("record");
    assert_eq!((r.address, r.kind()), (addr, cdra_core::table::ClientKind::Dhcp));
    h.advance(60);
    assert!(matches!(h.client_sends(&boot), Verdict::RelayedToServers { .. }), "not answered from the pool lease");
}

/// Found by the engine fuzzer (`crates/fuzz/regressions.txt`, `lease_beyond_server`,
/// mode=pool): a pool entry restored from a store dated ahead of the clock (a clock behind
/// the store, as after a restart before NTP) kept its lease start in the future, as no
/// client record would (they are clamped to now): it was not renewed at its real T1, its
/// lease ran out at the server, and it was given to a client as if leased for longer.
#[test]
fn a_pool_entry_restored_from_a_store_dated_ahead_is_clamped_to_now() {
    let h = filled(PoolAssign::Always);
    let mut stored = stored_records(&h.engine);
    // The store was written an hour ahead of the clock that reads it back.
    for (r, _) in &mut stored {
        r.set_lease_start(r.lease_start().saturating_add(Duration::from_secs(3600)));
        r.set_last_update(r.lease_start());
    }
    let mut b = Harness::new(h.engine.config().clone());
    b.now = h.now;
    let report = b.engine.restore(b.now, stored);
    assert_eq!(report.pool_entries, 2);
    let latest = b.now.saturating_add(Duration::from_secs(3600));
    for e in b.engine.pool().entries(0) {
        assert!(e.lease_end().is_some_and(|end| end <= latest), "lease believed until {:?}", e.lease_end());
    }
    assert_eq!(report.future_dated, 2);
}

/// Found reviewing the engine fuzzer's pool-mode exceptions (a clock step let an entry
/// believe in a lease the server had ended): when the server leases an address to one of
/// the pool's identities, any other entry that believed it held that address has lost it.
/// Before, both entries stayed leased on one address, and each could be given to a client:
/// two hosts on one address.
#[test]
fn an_address_the_server_leases_to_one_entry_is_lost_by_any_other_entry_that_held_it() {
    let mut h = filled(PoolAssign::Always);
    let a = Client::new(1);
    let first = given_an_entry(&mut h, &a);
    let n = record(&h, &a).expect("record").origin_n();
    // The pool refills; the server (whose lease of `first` ran out, by its clock) gives
    // `first` to the new entry.
    let sent = run_all(&mut h, 10);
    let discover =
        servers_got(&sent).into_iter().find(|s| s.kind == Some(MessageType::Discover)).expect("the pool refills");
    h.server_sends(SERVER, &answer(&discover, MessageType::Offer, first));
    let req = to_server(&h);
    assert_eq!(req.len(), 1);
    h.server_sends(SERVER, &answer(&req[0], MessageType::Ack, first));
    let leased: Vec<u16> =
        h.engine.pool().entries(0).filter(|e| e.is_leased() && e.address == first).map(|e| e.n).collect();
    assert_eq!(leased.len(), 1, "one entry on {first}: {leased:?}");
    assert_ne!(leased[0], n, "the entry the server leased it to");
    assert!(h.engine.counters().proxy[ProxyEvent::PoolLeaseLost] >= 1);
    // The client that had it from the old entry is not answered with it again.
    assert!(record(&h, &a).is_none_or(|r| r.address != first || r.must_restart()));
}

/// Seen with dhclient against the real binary (tests/e2e/test_pool.py, squatter): the
/// client's DISCOVER retransmission arrived while the probe before its fallback pool OFFER
/// ran, and was answered at once from its record (which already held the entry's address)
/// with an OFFER of the unprobed address, that a squatter used. A retransmission during
/// that probe waits for it, as any other does.
#[test]
fn a_discover_retransmitted_while_the_pool_offer_is_probed_gets_no_unprobed_offer() {
    let mut h = filled(PoolAssign::Outage);
    let a = Client::new(1);
    let discover = a.msg(MessageType::Discover);
    assert!(matches!(h.client_sends(&discover), Verdict::RelayedToServers { .. }));
    run_all(&mut h, 2);
    assert_eq!(h.engine.counters().proxy[ProxyEvent::PoolFallback], 1);
    let probed = h.probes.last().expect("probe before the OFFER").target;
    // The client's retransmission, during the probe: nothing offered yet.
    assert_eq!(h.client_sends(&discover), Verdict::Discarded(DiscardReason::RetransmissionDuringProbe));
    assert!(!h.sent().iter().any(|(_, b)| kind(b) == Some(MessageType::Offer)), "an unprobed OFFER");
    // Another host answers for the address: the client is offered another one, only.
    h.probe_answer(probed, Some([0x02, 0xee, 0, 0, 0, 1]));
    let second = h.probes.last().expect("another probe").target;
    assert_ne!(second, probed);
    let offered: Vec<Ipv4Addr> = run_all(&mut h, 1)
        .iter()
        .filter(|(_, b)| kind(b) == Some(MessageType::Offer))
        .filter_map(|(_, b)| Message::new_checked(&b[..]).ok().map(|m| m.yiaddr()))
        .collect();
    assert_eq!(offered, vec![second]);
}

/// Seen with real servers told to ignore a client (Kea's DROP class, dhcpd's `deny
/// booting`, dnsmasq's `ignore`; tests/e2e/test_pool.py): the pool lease is released, the
/// client's own REQUEST gets no answer, and for the whole wait for it the address is free at
/// the server while the client uses it (10 s: REQUEST_TIMEOUT), each time the client asks
/// again. The server answered the entry's RENEW an instant before: its answer to the
/// client's REQUEST comes as fast, and the address is asked back within MIGRATION_TIMEOUT.
#[test]
fn an_unanswered_move_asks_the_address_back_within_migration_timeout() {
    let (mut h, a, addr) = pool_client_by_fallback();
    server_answers_again(&mut h);
    let sent = move_started(&mut h, &a, addr);
    assert!(sent.iter().any(|s| s.kind == Some(MessageType::Release)), "{sent:?}");
    // No answer to the client's REQUEST: within 2 s the address is asked back.
    let back: Vec<(Option<Vec<u8>>, Option<Ipv4Addr>)> = run_all(&mut h, 2)
        .iter()
        .filter(|(d, _)| matches!(d, Destination::Server { .. }))
        .filter_map(|(_, b)| Message::new_checked(&b[..]).ok())
        .filter(|m| m.message_type() == Some(MessageType::Request))
        .map(|m| (m.client_identifier().map(<[u8]>::to_vec), m.requested_ip()))
        .collect();
    assert_eq!(back.len(), 1, "{back:?}");
    assert!(back[0].0.as_deref().is_some_and(|id| id.starts_with(b"\0cdra-pool/")), "{back:?}");
    assert_eq!(back[0].1, Some(addr));
    assert_eq!(h.engine.counters().proxy[ProxyEvent::PoolMigrationFailed], 1);
}

#[test]
fn a_returning_pool_clients_request_is_probed_again() {
    let (mut h, a, addr) = pool_client_by_fallback();
    // Bound from the pool. It comes back with a DISCOVER (its lease file lost): OFFERed
    // from its record; the REQUEST for that OFFER is not covered by the first probe.
    h.advance(30);
    let offer = h.client_sends(&a.msg(MessageType::Discover));
    assert_eq!(offer, Verdict::AnsweredLocally);
    let probes = h.probes.len();
    let mut sel = a.selecting(DS_ADDR);
    sel.options.retain(|(c, _)| *c != 50);
    sel.options.push((50, addr.octets().to_vec()));
    assert_eq!(h.client_sends(&sel), Verdict::AwaitingProbe, "probed before the ACK");
    assert_eq!(h.probes.len(), probes + 1);
}

#[test]
fn a_pool_client_moves_asking_the_server_for_its_own_parameters() {
    let (mut h, a, addr) = pool_client_by_fallback();
    // The client's DISCOVER asked for 1, 3, 6 (common::Msg::request): so will the move's
    // REQUEST, and the record answers the client's renewals with the server's lease for it
    // (no "changed request" forwarded after the move).
    let r = record(&h, &a).expect("record");
    assert_eq!(r.param_list().codes().collect::<Vec<u8>>(), vec![1, 3, 6]);
    server_answers_again(&mut h);
    assert!(move_started(&mut h, &a, addr).iter().any(|s| s.kind == Some(MessageType::Request)));
}

#[test]
fn the_event_log_tells_a_pool_clients_life_and_nothing_of_the_pools_own_upkeep() {
    let mut h = filled(PoolAssign::Always);
    h.engine.set_event_log(64);
    let a = Client::new(1);
    let probed = given_an_entry(&mut h, &a);
    let mut release = a.msg(MessageType::Release);
    release.ciaddr = probed;
    release.options.push((54, DS_ADDR.octets().to_vec()));
    assert_eq!(h.client_sends_to(DS_ADDR, &release), Verdict::AnsweredLocally);
    let events: Vec<_> = h.engine.drain_events().collect();
    let seen: Vec<(&str, Option<&str>)> = events.iter().map(|e| (e.kind.label(), e.kind.cause())).collect();
    assert_eq!(
        seen,
        [
            ("pool_assigned", None),
            ("probe_started", None),
            ("probe_timed_out", None),
            ("local_offer", None),
            ("local_ack", None),
            ("pool_returned", None),
            ("removed", Some("returned_to_pool")),
        ],
        "{events:?}"
    );
    let key = events[0].client.clone();
    assert!(events.iter().all(|e| e.client == key && e.address == Some(probed)), "{events:?}");
    assert_eq!(h.engine.counters().events_dropped, 0);
}

/// Found by the engine fuzzer (`crates/fuzz/regressions.txt`, `pool_inconsistent`,
/// mode=pool): after the clock was stepped back, a free entry believed in a lease of .200
/// the server had ended, and the server gave .200 to a client; the entry stayed free on
/// .200, to be given to the next pool client. The server's ACK to a client loses any entry
/// that held its address, as its ACK to another pool identity does.
#[test]
fn an_address_the_server_gives_a_client_is_lost_by_a_pool_entry_that_held_it() {
    let mut h = filled(PoolAssign::Outage);
    let mut a = Client::new(1);
    a.addr = pool_addr(0);
    a.bind(&mut h);
    assert!(
        !h.engine.pool().entries(0).any(|e| e.is_leased() && e.address == pool_addr(0)),
        "no entry left on {}",
        pool_addr(0)
    );
    assert_eq!(h.engine.counters().proxy[ProxyEvent::PoolLeaseLost], 1);
    assert_eq!(record(&h, &a).map(|r| (r.address, r.must_restart())), Some((pool_addr(0), false)));
}

/// Found by the engine fuzzer (`crates/fuzz/regressions.txt`, `host`, mode=pool): as above,
/// but the moved client's renewal is answered locally, from the server's lease (no `[proxy]
/// client_lease`): that answer gave it no short lease, yet the end of the pool's short lease
/// it had held stayed watched, and at that end a RELEASE freed at the server the address the
/// client held.
#[test]
fn a_moved_pool_client_answered_locally_does_not_lapse_at_its_old_pool_lease_end() {
    let (mut h, a, addr) = pool_client_by_fallback();
    assert_eq!(h.engine.config().proxy.client_lease, None);
    server_answers_again(&mut h);
    let sent = move_started(&mut h, &a, addr);
    let take = sent.iter().find(|s| s.kind == Some(MessageType::Request)).expect("asked as the client");
    let mut ack = answer(take, MessageType::Ack, addr);
    ack.options.push((61, a.cid.clone()));
    h.server_sends(SERVER, &ack);
    assert_eq!(record(&h, &a).map(|r| r.origin()), Some(Origin::Server));
    h.advance(60);
    assert_eq!(h.client_sends_to(DS_ADDR, &Msg { ciaddr: addr, ..a.renew() }), Verdict::AnsweredLocally);
    let got = h.sent().into_iter().find(|(_, b)| kind(b) == Some(MessageType::Ack)).expect("the ACK");
    let lease = Message::new_checked(&got.1[..]).ok().and_then(|m| m.lease_time()).expect("a lease");
    assert!(lease > 600, "the server's lease, not the pool's: {lease}s");
    // Past the end of the pool's client lease (600 s): nothing is released.
    assert_not_released(&mut h, addr, 900);
    assert!(record(&h, &a).is_some());
}

/// Found by the engine fuzzer (`crates/fuzz/regressions.txt`, `host`, mode=pool): with
/// `safe_network`, a pool client's record evicted (the table full) left its entry held back
/// until the client's lease from us ended; a restart forgot the hold (the store kept no
/// such thing, and with `safe_network` the post-restart probe is no probe), and the address
/// went to the next pool client while the first still held it.
#[test]
fn an_entry_held_back_for_a_gone_client_stays_held_back_across_a_restart() {
    let mut c = pool_config(PoolAssign::Always);
    c.proxy.safe_network = true;
    c.proxy.max_clients = 1;
    let mut h = filled_with(c);
    let give = |h: &mut Harness, who: &Client| -> Ipv4Addr {
        assert_eq!(h.client_sends(&who.msg(MessageType::Discover)), Verdict::AnsweredLocally);
        let offer = h.sent().into_iter().find(|(_, b)| kind(b) == Some(MessageType::Offer)).expect("an OFFER");
        Message::new_checked(&offer.1[..]).expect("offer").yiaddr()
    };
    let a = Client::new(1);
    let first = give(&mut h, &a);
    let mut sel = a.selecting(DS_ADDR);
    sel.options.retain(|(c, _)| *c != 50);
    sel.options.push((50, first.octets().to_vec()));
    assert_eq!(h.client_sends(&sel), Verdict::AnsweredLocally);
    // Another client takes the table's one place: a's record goes, a keeps its address for
    // the 600 s of its lease from us, and its entry is held back till then.
    let b = Client::new(2);
    let second = give(&mut h, &b);
    assert_ne!(second, first);
    assert!(record(&h, &a).is_none());
    assert!(h.engine.pool().entries(0).any(|e| e.address == first && e.is_held_back()));
    // A restart.
    let stored = stored_records(&h.engine);
    let mut r = Harness::new(h.engine.config().clone());
    r.now = h.now.saturating_add(Duration::from_secs(1));
    r.engine.restore(r.now, stored);
    run_all(&mut r, 1);
    assert!(
        r.engine.pool().entries(0).any(|e| e.address == first && e.is_held_back()),
        "{first} is still held back after the restart"
    );
    // A new client is not given a's address (whether or not the pool has another).
    let c = Client::new(3);
    r.client_sends(&c.msg(MessageType::Discover));
    let mut sent = r.sent();
    sent.extend(run_all(&mut r, 5));
    let offered: Vec<Ipv4Addr> = sent
        .iter()
        .filter(|(_, b)| kind(b) == Some(MessageType::Offer))
        .filter_map(|(_, b)| Message::new_checked(&b[..]).ok().map(|m| m.yiaddr()))
        .collect();
    assert!(!offered.contains(&first), "offered {first}, which a still holds: {offered:?}");
}

/// The client keeps renewing (answered locally) until its entry renews at its T1 (1800 s);
/// the server's ACK to that renewal, granting 7200 s where it gave 3600, is handed to
/// `deliver` (which sends it). True when the entry renewed.
fn until_the_entry_renews(
    h: &mut Harness,
    a: &Client,
    probed: Ipv4Addr,
    mut deliver: impl FnMut(&mut Harness, &Msg),
) -> bool {
    for _ in 0..8 {
        let mut renewed = false;
        for r in servers_got(&run_all(h, 250)) {
            if r.kind == Some(MessageType::Request) && r.ciaddr == probed {
                let mut ack = answer(&r, MessageType::Ack, probed);
                ack.options.retain(|(c, _)| *c != 51);
                ack.options.push((51, 7200u32.to_be_bytes().to_vec()));
                deliver(h, &ack);
                renewed = true;
            }
        }
        if renewed {
            return true;
        }
        assert_eq!(h.client_sends_to(DS_ADDR, &Msg { ciaddr: probed, ..a.renew() }), Verdict::AnsweredLocally);
    }
    false
}

/// A pool client's cached reply is the pool's ACK as it was given to the client
/// (`pool_give`); the entry's renewal with another lease time moves the client record's
/// lease times along, and its reply must stay byte for byte what it was (the reply's own
/// bytes leave the lease times to the record: they were re-derived from the new ones).
#[test]
fn a_pool_entrys_renewal_with_another_lease_leaves_its_clients_cached_reply_as_it_was() {
    let mut h = filled(PoolAssign::Always);
    let a = Client::new(1);
    let probed = given_an_entry(&mut h, &a);
    let given = record(&h, &a).and_then(|r| r.reply_message()).expect("a cached reply");
    let lease_of = |b: &[u8]| Message::new_checked(b).ok().and_then(|m| m.lease_time());
    assert_eq!(lease_of(&given), Some(3600));
    assert!(
        until_the_entry_renews(&mut h, &a, probed, |h, ack| {
            h.server_sends(SERVER, ack);
        }),
        "the entry was renewed"
    );
    assert_eq!(h.client_sends_to(DS_ADDR, &Msg { ciaddr: probed, ..a.renew() }), Verdict::AnsweredLocally);
    let r = record(&h, &a).expect("the pool client's record");
    assert_eq!(r.lease_secs, 7200, "the record follows its entry's lease");
    assert_eq!(r.reply_message(), Some(given), "its cached reply is unchanged");
}

/// The entry's renewal moves its client's record along (lease start, lease times, the
/// cached reply split again), so the store must write the record too: a restart would
/// otherwise restore the record as it was at the entry's first lease, days old.
#[test]
fn a_pool_entrys_renewal_writes_its_clients_record_to_the_store() {
    let mut h = filled(PoolAssign::Always);
    let a = Client::new(1);
    let probed = given_an_entry(&mut h, &a);
    let mut scratch = Vec::new();
    let mut written = false;
    let renewed = until_the_entry_renews(&mut h, &a, probed, |h, ack| {
        // What the store was told so far, then what the renewal alone changed.
        h.engine.drain_changes(&mut scratch, |_| {});
        h.server_sends(SERVER, ack);
        h.engine.drain_changes(&mut scratch, |change| {
            if let cdra_core::persist::Change::Upsert { key, .. } = change {
                written |= *key == a.key();
            }
        });
    });
    assert!(renewed && written, "the entry was renewed ({renewed}), and its client's record written ({written})");
    assert_eq!(record(&h, &a).map(|r| r.lease_secs), Some(7200));
}
