//! The storm after a power failure (paper 3.4; issue 14) against model clients, with the
//! invariant checker on: 2,000 clients got their leases through the proxy; the power fails;
//! the proxy comes back from its store, the server does not; every client reboots within
//! 5 s (INIT-REBOOT, RFC 2131 retransmissions), and 40 of their addresses have meanwhile
//! been taken by squatters (hosts with static addresses). No two hosts ever hold one
//! address; the squatted clients are NAKed; the others get their addresses back.
//! (How fast a real storm is served is measured by bench/storm.)

mod common;

use cdra_core::counters::ProxyEvent;
use cdra_core::{DropReason, Mode};
use cdra_sim::{secs, IdStyle, Kind, Sim, SimConfig, SimRng};
use common::fail;

const CLIENTS: usize = 2000;
const SQUATTERS: usize = 40;

/// 2,000 clients bound through the proxy (1,000 on each /20 link), then the power failure:
/// clients off (keeping their leases), the server down, 40 addresses squatted, the proxy
/// restarted from its store. Returns the sim, the clients and the squatted ones.
fn after_the_power_failure(seed: u64, max_pending_probes: usize) -> (Sim, Vec<usize>, Vec<usize>) {
    let mut cfg = SimConfig::large(seed, Mode::Proxy);
    cfg.servers[0].lease_secs = 86_400;
    cfg.proxy.max_pending_probes = max_pending_probes;
    cfg.full_check_every = 0;
    let mut sim = Sim::new(cfg);
    let clients: Vec<usize> = (0..CLIENTS).map(|i| sim.add_dhcp_client(i % 2, IdStyle::MacId)).collect();
    // They join over 20 s (the default [limits] interface budget for new clients).
    let t0 = sim.now();
    for (i, &c) in clients.iter().enumerate() {
        sim.schedule(t0 + (i as u64 * 10), cdra_sim::Action::PowerOn(c));
    }
    sim.run_for(secs(60));
    for &c in &clients {
        if sim.held(c).is_none() {
            fail(&sim, &format!("client#{c} got no lease before the power failure"));
        }
    }
    let snapshot = sim.engine_snapshot();
    for &c in &clients {
        sim.power_off(c, false);
    }
    sim.stop_server(0);
    let mut rng = SimRng::new(seed ^ 0x5707);
    let mut squatted = Vec::new();
    while squatted.len() < SQUATTERS {
        let c = clients[rng.below(CLIENTS as u64) as usize];
        if squatted.contains(&c) {
            continue;
        }
        let addr = sim.client(c).lease().expect("lease kept").address;
        sim.add_squatter(sim.client(c).link(), addr);
        squatted.push(c);
    }
    sim.run_for(secs(30));
    sim.restart_engine(Some(&snapshot));
    (sim, clients, squatted)
}

/// Every client powers on within 5 s of now.
fn storm(sim: &mut Sim, clients: &[usize], seed: u64) {
    let mut rng = SimRng::new(seed ^ 0x57023);
    let t0 = sim.now();
    for &c in clients {
        sim.schedule(t0 + rng.below(5000), cdra_sim::Action::PowerOn(c));
    }
}

#[test]
fn every_client_is_answered_at_once_and_no_squatted_address_is_given_out() {
    for seed in [1401, 1402, 1403] {
        let (mut sim, clients, squatted) = after_the_power_failure(seed, 32_768);
        let requests_before = sim.server_received().get(Kind::Request);
        storm(&mut sim, &clients, seed);
        sim.run_for(secs(6));
        for &c in &clients {
            let want = sim.client(c).lease().map(|l| l.address);
            match (squatted.contains(&c), sim.held(c)) {
                (false, held) if held.is_some() && held == want => {}
                (true, None) => {}
                (sq, held) => fail(&sim, &format!("seed {seed}: client#{c} (squatted: {sq}) holds {held:?}")),
            }
        }
        let p = &sim.engine().counters().proxy;
        assert_eq!(p[ProxyEvent::ProbeStarted], CLIENTS as u64, "seed {seed}: one probe per client");
        assert_eq!(p[ProxyEvent::ProbeFoundInUse], SQUATTERS as u64, "seed {seed}");
        assert_eq!(p[ProxyEvent::ProbeRefusedFull], 0, "seed {seed}");
        assert_eq!(sim.server_received().get(Kind::Request), requests_before, "seed {seed}: no REQUEST went upstream");
        // The squatted clients start over with a DISCOVER nobody answers; the checker
        // keeps watching.
        sim.run_for(secs(120));
        for &c in &squatted {
            assert_eq!(sim.held(c), None, "seed {seed}: squatted client#{c}");
        }
        sim.assert_ok();
    }
}

#[test]
fn with_few_probe_slots_nothing_is_answered_unprobed_and_nothing_goes_to_the_dead_server_once_known_down() {
    let seed = 1410;
    // 40 probes in flight at most, for 400 INIT-REBOOTs a second (200 would be needed): most
    // first transmissions find no slot, and many retransmissions (4 s, then 8 s later)
    // neither, the later ones once the server is known to be down.
    let (mut sim, clients, squatted) = after_the_power_failure(seed, 40);
    storm(&mut sim, &clients, seed);
    // The server is known down 10 s (server_timeout) after its first unanswered request.
    sim.run_for(secs(12));
    let requests_known_down = sim.server_received().get(Kind::Request);
    sim.run_for(secs(60));
    assert_eq!(
        sim.server_received().get(Kind::Request),
        requests_known_down,
        "no REQUEST forwarded once the server is known down"
    );
    let c = sim.engine().counters();
    assert!(c.proxy[ProxyEvent::ProbeRefusedFull] > 0);
    assert!(c.interfaces.iter().map(|i| i.dropped[DropReason::UnprobedNoServer.index()]).sum::<u64>() > 0);
    for &x in &squatted {
        assert_eq!(sim.held(x), None, "squatted client#{x}");
    }
    // Those refused on all three INIT-REBOOT transmissions gave up and sent DISCOVERs
    // nobody answers (the server is down): the model client has no 4th try. Whoever holds
    // an address holds its own (and the checker saw no duplicate on the way).
    let mut bound = 0;
    for &x in clients.iter().filter(|x| !squatted.contains(x)) {
        match sim.held(x) {
            Some(a) if Some(a) == sim.client(x).lease().map(|l| l.address) => bound += 1,
            None => {}
            other => fail(&sim, &format!("client#{x} holds {other:?}")),
        }
    }
    assert!(bound > 0);
    sim.assert_ok();
}
