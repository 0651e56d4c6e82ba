//! Address-pooling mode (paper 4.3, issue 12) in the simulation: the pool is leased from an
//! unmodified server under cdra's own identities and kept renewed; new clients get pool
//! addresses when the server cannot serve them (outage, no OFFER in time) or at once
//! (`assign = "always"`); pool clients move onto leases of their own once the server
//! answers again; and through server flaps, engine restarts and squatters nobody ever
//! holds an address another host holds, and every address a client holds is leased at
//! the server to that client or to the pool identity that gave it (the invariant checker,
//! after every event).

mod common;

use core::net::Ipv4Addr;
use std::collections::HashSet;

use cdra_core::config::PoolAssign;
use cdra_core::counters::ProxyEvent;
use cdra_core::Mode;
use cdra_sim::engine_api::is_pool_identity;
use cdra_sim::server::{LeaseState, RequestClass};
use cdra_sim::{hours, mins, secs, Action, IdStyle, Sim, SimConfig};
use common::{addr, boot, client, fail};

/// A pool-mode network (one server, 1-day leases, precautions on) keeping `size` free
/// entries per link.
fn pool_config(seed: u64, size: usize, assign: PoolAssign) -> SimConfig {
    let mut c = SimConfig::small(seed, Mode::Pool);
    c.pool.size = size;
    c.pool.assign = assign;
    c.servers[0].lease_secs = 86_400;
    c
}

fn pool_sim(seed: u64, size: usize, assign: PoolAssign) -> Sim {
    Sim::new(pool_config(seed, size, assign))
}

fn event(sim: &Sim, e: ProxyEvent) -> u64 {
    sim.engine().counters().proxy[e]
}

/// Addresses the server leases (bound, not ended) to pool identities on `link`.
fn pool_leases(sim: &Sim, link: u8) -> Vec<Ipv4Addr> {
    let now = sim.now();
    let net = addr(link, 0);
    sim.server(0)
        .leases()
        .filter(|(a, r)| {
            r.state == LeaseState::Bound
                && r.end > now
                && is_pool_identity(&r.key)
                && a.octets()[..3] == net.octets()[..3]
        })
        .map(|(a, _)| *a)
        .collect()
}

/// The server's binding of `a` is client `c`'s own.
fn leased_to_client(sim: &Sim, a: Ipv4Addr, c: usize) -> bool {
    let now = sim.now();
    sim.server(0).lease(a).is_some_and(|r| r.state == LeaseState::Bound && r.end > now && r.key == sim.client(c).key())
}

/// The server's lease table: one identity per address (its table is keyed by address) and
/// one live lease per identity (no identity, pool or client, holds two addresses).
fn assert_one_identity_per_address(sim: &Sim) {
    let now = sim.now();
    let mut seen = HashSet::new();
    for (a, r) in sim.server(0).leases() {
        if r.state == LeaseState::Bound && r.end > now && !seen.insert(r.key.clone()) {
            fail(sim, &format!("identity {:02x?} holds a second address {a}", r.key));
        }
    }
}

/// Free entries of `link`, by address.
fn free_entries(sim: &Sim, link: usize) -> Vec<Ipv4Addr> {
    let mut free: Vec<Ipv4Addr> =
        sim.pool_entries().iter().filter(|e| e.link == link && e.state == "free").map(|e| e.address).collect();
    free.sort();
    free
}

#[test]
fn the_pool_fills_from_an_unmodified_server_and_stays_leased() {
    let mut c = pool_config(1201, 4, PoolAssign::Outage);
    c.servers[0].lease_secs = 3600; // renewed every 30 minutes
    let mut sim = Sim::new(c);
    sim.run_for(secs(30));
    for link in 0..2u8 {
        let leases = pool_leases(&sim, link);
        assert_eq!(leases.len(), 4, "link {link}: the server leases 4 addresses to pool identities");
        let mut free = free_entries(&sim, usize::from(link));
        free.sort();
        let mut leases = leases;
        leases.sort();
        assert_eq!(free, leases, "link {link}: the pool's free entries are exactly those leases");
    }
    // Each entry is its own identity at the server, with a locally administered chaddr.
    assert!(sim.server(0).log.iter().all(|(_, m)| m.mac[0] == 0x0e && m.mac[1] == 0xcd));
    assert_one_identity_per_address(&sim);
    let before: Vec<Ipv4Addr> = pool_leases(&sim, 0);

    // Five hours: every entry is renewed at its T1 (about ten times), never lost, and the
    // same addresses stay in the pool.
    sim.run_for(hours(5));
    assert!(event(&sim, ProxyEvent::PoolRenewed) >= 8 * 9, "renewed: {}", event(&sim, ProxyEvent::PoolRenewed));
    assert_eq!(event(&sim, ProxyEvent::PoolLeaseExpired) + event(&sim, ProxyEvent::PoolLeaseLost), 0);
    let mut after = pool_leases(&sim, 0);
    after.sort();
    let mut before = before;
    before.sort();
    assert_eq!(before, after, "the pool keeps its addresses");
    assert!(sim.server(0).stats.requests_of(RequestClass::CiaddrRelayed) >= 8 * 9);
    assert_eq!(sim.server(0).stats.received.get(cdra_sim::Kind::Discover), 8, "one DISCOVER per entry, ever");
    sim.assert_ok();
}

#[test]
fn new_clients_get_pool_addresses_during_an_outage_and_move_to_the_server_after_it() {
    let mut sim = pool_sim(1202, 4, PoolAssign::Outage);
    let known = client(&mut sim, 0);
    assert_eq!(boot(&mut sim, known), Some(addr(0, 100)));
    sim.run_for(mins(1));
    let pool0 = free_entries(&sim, 0);
    assert_eq!(pool0.len(), 4);

    sim.stop_server(0);
    sim.run_for(mins(10));
    // Four new clients: each gets a distinct pool address of its link; a fifth gets nothing.
    let new: Vec<usize> = (0..5).map(|_| client(&mut sim, 0)).collect();
    let mut got = HashSet::new();
    for &c in &new[..4] {
        let Some(a) = boot(&mut sim, c) else { fail(&sim, &format!("new client#{c} got nothing from the pool")) };
        assert!(pool0.contains(&a), "client#{c} got {a}, not a pool address");
        assert!(got.insert(a), "two clients got {a}");
    }
    assert_eq!(boot(&mut sim, new[4]), None, "the pool is empty");
    assert!(event(&sim, ProxyEvent::PoolEmpty) >= 1);
    // The known client is proxied as in proxy mode.
    sim.power_off(known, false);
    assert_eq!(boot(&mut sim, known), Some(addr(0, 100)));

    // An hour into the outage, the pool clients have renewed with us (10-minute leases) and
    // keep their addresses.
    sim.run_for(hours(1));
    for &c in &new[..4] {
        if !sim.held(c).is_some_and(|a| got.contains(&a)) {
            fail(&sim, &format!("pool client#{c} lost its address during the outage"));
        }
    }
    let held: Vec<Ipv4Addr> = new[..4].iter().map(|&c| sim.held(c).expect("held")).collect();

    // The server is back: within two of their renewals (5 minutes apart), each pool client
    // holds its address under its own identity at the server, keeps it, and the pool is
    // refilled with other addresses.
    sim.start_server(0);
    sim.run_for(mins(11));
    for (&c, &a) in new[..4].iter().zip(&held) {
        if sim.held(c) != Some(a) {
            fail(&sim, &format!("client#{c} lost {a} when moving to the server"));
        }
        if !leased_to_client(&sim, a, c) {
            fail(&sim, &format!("{a} is not leased to client#{c} itself"));
        }
    }
    assert_eq!(event(&sim, ProxyEvent::PoolMigrated), 4);
    assert_eq!(event(&sim, ProxyEvent::PoolMigrationFailed), 0);
    assert!(sim.held(new[4]).is_some(), "the client the pool could not serve is served by the server");
    let refilled = free_entries(&sim, 0);
    assert_eq!(refilled.len(), 4, "refilled");
    assert!(refilled.iter().all(|a| !held.contains(a)));
    assert_one_identity_per_address(&sim);
    // Hours on: they renew with the server (their records are ordinary proxy records now).
    sim.run_for(hours(3));
    for (&c, &a) in new[..4].iter().zip(&held) {
        assert_eq!(sim.held(c), Some(a));
        assert!(leased_to_client(&sim, a, c));
    }
    sim.assert_ok();
}

#[test]
fn a_discover_no_server_offers_in_time_is_answered_from_the_pool() {
    // The server is up but its range on link 0 is six addresses: two for the pool, four
    // for clients. The fifth client's DISCOVER gets no OFFER (the server has no address):
    // after fallback_after the pool answers. The sixth gets nothing.
    let mut c = pool_config(1203, 2, PoolAssign::Outage);
    c.servers[0].pools[0].last = addr(0, 105);
    let mut sim = Sim::new(c);
    sim.run_for(secs(30));
    let pool = free_entries(&sim, 0);
    assert_eq!(pool.len(), 2);
    let cs: Vec<usize> = (0..6).map(|_| client(&mut sim, 0)).collect();
    for &c in &cs[..4] {
        let a = boot(&mut sim, c).expect("served by the server");
        assert!(!pool.contains(&a));
    }
    assert_eq!(event(&sim, ProxyEvent::PoolFallback), 0, "the server answered in time");
    let a = boot(&mut sim, cs[4]).expect("served from the pool");
    assert!(pool.contains(&a));
    assert_eq!(event(&sim, ProxyEvent::PoolFallback), 1);
    // Its DISCOVER went to the server (which stayed silent) before the pool answered.
    assert!(sim.server(0).stats.no_address >= 1);
    // The server is up: at the client's next renewal the pool lease is renewed early to
    // hear from the server; at the one after, the client moves onto a lease of its own
    // (the pool lease released, the address requested in its name).
    sim.run_for(mins(11));
    if !leased_to_client(&sim, a, cs[4]) {
        fail(&sim, &format!("{a} not moved to the client's own identity"));
    }
    assert_eq!(sim.held(cs[4]), Some(a));
    assert_one_identity_per_address(&sim);
    sim.assert_ok();
}

#[test]
fn assign_always_serves_every_new_client_from_the_pool() {
    let mut sim = pool_sim(1204, 4, PoolAssign::Always);
    sim.run_for(secs(30));
    let cs: Vec<usize> = (0..3).map(|_| client(&mut sim, 1)).collect();
    let mut got = HashSet::new();
    for &c in &cs {
        let a = boot(&mut sim, c).expect("served");
        assert!(pool_leases(&sim, 1).contains(&a), "{a} is leased to a pool identity");
        assert!(got.insert(a), "{a} given twice");
    }
    // The server sees only pool upkeep: every message it ever received came from a pool
    // identity.
    sim.run_for(hours(6));
    assert!(sim.server(0).log.iter().all(|(_, m)| m.mac[0] == 0x0e && m.mac[1] == 0xcd));
    for &c in &cs {
        assert!(sim.held(c).is_some_and(|a| got.contains(&a)), "client#{c} keeps its pool address");
    }
    assert_eq!(event(&sim, ProxyEvent::PoolMigrationStarted), 0, "the pure pooling CDRA never hands over");
    assert_eq!(free_entries(&sim, 1).len(), 4, "refilled to size");
    assert_one_identity_per_address(&sim);
    // A released address goes back to the pool (nothing to the server).
    let released = sim.held(cs[0]).expect("held");
    sim.power_off(cs[0], true);
    sim.run_for(secs(5));
    assert!(free_entries(&sim, 1).contains(&released));
    assert!(sim.server(0).log.iter().all(|(_, m)| m.mac[0] == 0x0e));
    sim.assert_ok();
}

#[test]
fn pool_clients_keep_their_address_through_an_engine_restart() {
    let mut sim = pool_sim(1205, 3, PoolAssign::Outage);
    sim.run_for(secs(30));
    sim.stop_server(0);
    let cs: Vec<usize> = (0..2).map(|_| client(&mut sim, 0)).collect();
    let held: Vec<Ipv4Addr> = cs.iter().map(|&c| boot(&mut sim, c).expect("pool address")).collect();
    let snapshot = sim.engine_snapshot();
    sim.restart_engine(Some(&snapshot));
    // The entries are back (suspect: probed before they are given again); the pool
    // clients' renewals are answered.
    sim.run_for(mins(30));
    for (&c, &a) in cs.iter().zip(&held) {
        if sim.held(c) != Some(a) {
            fail(&sim, &format!("client#{c} lost {a} over the restart"));
        }
    }
    // A new client after the restart gets the remaining free entry, not theirs.
    let n = client(&mut sim, 0);
    let a = boot(&mut sim, n).expect("the third entry");
    assert!(!held.contains(&a));
    assert!(sim.probes_for(a) >= 1, "a restored entry is probed before use");
    sim.start_server(0);
    sim.run_for(mins(12));
    for (&c, &a) in cs.iter().zip(&held).chain([(&n, &a)]) {
        assert_eq!(sim.held(c), Some(a));
        assert!(leased_to_client(&sim, a, c), "client#{c} moved to its own lease after the restart");
    }
    assert_one_identity_per_address(&sim);
    sim.assert_ok();
}

#[test]
fn a_restart_without_the_store_never_gives_a_held_address_twice() {
    // The engine loses its table and pool while pool clients hold addresses. Its pool
    // identities are the same, so the server gives the new engine the very addresses those
    // clients hold: the probe before each pool OFFER finds them, and those entries are
    // declined; the new client gets an address nobody holds.
    let mut sim = pool_sim(1206, 3, PoolAssign::Always);
    sim.run_for(secs(30));
    let cs: Vec<usize> = (0..2).map(|_| client(&mut sim, 0)).collect();
    let held: Vec<Ipv4Addr> = cs.iter().map(|&c| boot(&mut sim, c).expect("pool address")).collect();
    sim.restart_engine(None);
    sim.run_for(secs(30));
    let n = client(&mut sim, 0);
    let a = boot(&mut sim, n).expect("served");
    assert!(!held.contains(&a), "{a} is held by another client");
    // Their renewals reach a relay that has forgotten them and a server that leased the
    // address to the pool identity: they are NAKed and start over. Never two on one address.
    sim.run_for(mins(20));
    let mut all: Vec<Ipv4Addr> = cs.iter().chain([&n]).filter_map(|&c| sim.held(c)).collect();
    let len = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), len, "distinct addresses");
    sim.assert_ok();
}

#[test]
fn a_squatter_on_a_pool_address_is_found_and_the_address_held_back() {
    let mut sim = pool_sim(1207, 3, PoolAssign::Outage);
    sim.run_for(secs(30));
    let pool = free_entries(&sim, 0);
    assert_eq!(pool.len(), 3);
    // Two of the three pool addresses are taken by hosts configured by hand.
    sim.add_squatter(0, pool[0]);
    sim.add_squatter(0, pool[1]);
    sim.stop_server(0);
    let c = client(&mut sim, 0);
    let a = boot(&mut sim, c).expect("the third pool address");
    assert_eq!(a, pool[2], "the squatted addresses are not offered");
    assert!(event(&sim, ProxyEvent::PoolHeldBack) >= 1);
    // Held back, their pool leases are kept: the server gives them to nobody else, and
    // new clients get other addresses, also after the server is back.
    sim.start_server(0);
    let others: Vec<usize> = (0..3).map(|_| client(&mut sim, 0)).collect();
    for &o in &others {
        let got = boot(&mut sim, o).expect("served");
        assert!(got != pool[0] && got != pool[1], "client#{o} got a squatted address");
    }
    sim.run_for(hours(3));
    for &x in &pool[..2] {
        let lease = sim.server(0).lease(x).expect("leased");
        assert!(is_pool_identity(&lease.key) && lease.end > sim.now(), "{x} still leased to the pool");
    }
    sim.assert_ok();
}

#[test]
fn server_flaps_restarts_and_squatters_never_make_a_duplicate() {
    // Sixty clients coming and going for twelve hours; the server stops and starts every
    // 5 to 40 minutes; the engine restarts from its store every two hours; two squatters sit
    // on addresses leased to the pool (hosts configured by hand on an address the server
    // believes leased). The checker runs after every event: no address
    // held twice, none held beyond (or without) a lease at the server to the client or to
    // the pool identity that gave it.
    // SIM_SEED=<n> replays another seed (the schedule and every random choice follow it).
    let seed = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1208);
    let mut c = pool_config(seed, 4, PoolAssign::Outage);
    c.servers[0].lease_secs = 2 * 3600;
    c.panic_on_violation = false;
    c.watch = std::env::var("WATCH").ok().and_then(|w| w.parse().ok());
    let mut sim = Sim::new(c);
    sim.run_for(secs(30));
    for link in 0..2 {
        let free = free_entries(&sim, link);
        sim.add_squatter(link, free[1]);
    }
    let n = 60;
    for i in 0..n {
        let style = if i % 2 == 0 { IdStyle::MacId } else { IdStyle::Hardware };
        sim.add_dhcp_client(i % 2, style);
    }
    let mut rng = cdra_sim::SimRng::new(seed);
    let t0 = sim.now();
    let mut t = t0;
    let mut up = true;
    while t < t0 + hours(12) {
        t += mins(5) + rng.below(mins(35));
        sim.schedule(t, if up { Action::StopServer(0) } else { Action::StartServer(0) });
        up = !up;
    }
    for c in 0..n {
        // Half are there from the start; the others arrive over the twelve hours (about
        // half of them while the server is down).
        let first = if c % 2 == 0 { hours(1) } else { hours(11) };
        let mut t = t0 + rng.below(first);
        while t < t0 + hours(12) {
            sim.schedule(t, Action::PowerOn(c));
            t += mins(10) + rng.below(hours(2));
            sim.schedule(t, Action::PowerOff { client: c, release: rng.chance(0.3) });
            if rng.chance(0.2) {
                sim.schedule(t, Action::ForgetLease(c));
            }
            t += mins(1) + rng.below(mins(40));
        }
    }
    // The engine's counters start again at each restart: summed over the runs.
    let watched = [
        ProxyEvent::PoolAssigned,
        ProxyEvent::PoolFallback,
        ProxyEvent::PoolMigrated,
        ProxyEvent::PoolMigrationFailed,
        ProxyEvent::PoolHeldBack,
        ProxyEvent::PoolLeaseLost,
        ProxyEvent::PoolLeaseExpired,
    ];
    let mut total = [0u64; 7];
    let mut add = |sim: &Sim| {
        for (t, e) in total.iter_mut().zip(watched) {
            *t += event(sim, e);
        }
    };
    let mut restarts = 0;
    while sim.now() < t0 + hours(12) {
        for _ in 0..7200 {
            sim.run_for(secs(1));
            if std::env::var("DBG").is_ok() && event(&sim, ProxyEvent::PoolMigrationFailed) > 0 {
                panic!("{}", sim.trace_dump());
            }
        }
        add(&sim);
        let snapshot = sim.engine_snapshot();
        sim.restart_engine(Some(&snapshot));
        restarts += 1;
    }
    if sim.server(0).is_up() {
        sim.stop_server(0);
    }
    sim.run_for(mins(30));
    sim.start_server(0);
    sim.run_for(mins(30));
    add(&sim);
    let report: Vec<String> = watched.iter().zip(total).map(|(e, n)| format!("{} {n}", e.label())).collect();
    eprintln!("{restarts} restarts; {}", report.join(", "));
    if let Ok(path) = std::env::var("WATCH_OUT") {
        std::fs::write(path, sim.watch_log()).expect("write");
    }
    if let Some(v) = sim.violations().first() {
        panic!("{} violations; first:\n{v}", sim.violations().len());
    }
    assert!(total[0] > 10, "the pool served clients during the outages");
    assert!(total[2] > 5, "pool clients moved to the server");
    assert_one_identity_per_address(&sim);
}
