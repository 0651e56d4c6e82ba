//! Relay mode: a simulated day of 200 clients through the relay, plus rule checks and
//! determinism. The relay must deliver every message exactly once each way.

mod common;

use cdra_core::Mode;
use cdra_sim::server::RequestClass;
use cdra_sim::{hours, mins, secs, ClientConfig, ClientState, IdStyle, Kind, Sim, SimConfig, TxClass, Workload};
use common::{addr, fail};

fn day_workload(seed: u64) -> Workload {
    Workload {
        seed,
        duration: hours(24),
        boot_window: mins(30),
        mean_up: hours(4),
        mean_off: hours(1),
        min_off: secs(30),
        p_release: 0.3,
        p_forget: 0.1,
        p_move: 0.0,
        mean_forced_renew: Some(hours(3)),
        outages: vec![],
    }
}

fn styles(i: usize) -> IdStyle {
    match i % 3 {
        0 => IdStyle::Hardware,
        1 => IdStyle::MacId,
        _ => IdStyle::Duid { iaid: i as u32 },
    }
}

fn day(seed: u64, clients: usize) -> Sim {
    let mut cfg = SimConfig::large(seed, Mode::Relay);
    cfg.servers[0].lease_secs = 3600;
    cfg.full_check_every = 1000;
    let mut sim = Sim::new(cfg);
    for i in 0..clients {
        let mut cc = ClientConfig::numbered(i as u32, i % 2, styles(i));
        cc.broadcast_flag = i % 5 == 0;
        sim.add_client(cc);
    }
    day_workload(seed ^ 0xda7).schedule(&mut sim);
    // The workload ends after 24 h; give whoever just powered on time to finish.
    sim.run_for(hours(24) + mins(5));
    sim
}

#[test]
fn a_day_of_200_clients_through_the_relay() {
    let sim = day(11, 200);
    sim.assert_ok();
    eprintln!("{}", sim.report());

    // Every client got served, and every client that is on holds an address.
    for (i, c) in sim.clients().iter().enumerate() {
        if c.stats.acks == 0 {
            fail(&sim, &format!("client#{i} never got an ACK"));
        }
        if c.is_on() && !c.state().uses_address() {
            fail(&sim, &format!("client#{i} is on but in {:?}", c.state()));
        }
        assert_eq!(c.stats.extra_offers, 0, "one server, one OFFER per DISCOVER");
    }

    // The server sees every client transmission exactly once: renewals (unicast, straight
    // to the server) and everything relayed.
    let sent = sim.client_sent_classes();
    let srv = &sim.server(0).stats;
    let pairs = [
        (TxClass::Renew, RequestClass::CiaddrDirect),
        (TxClass::Rebind, RequestClass::CiaddrRelayed),
        (TxClass::Selecting, RequestClass::Selecting),
        (TxClass::InitReboot, RequestClass::InitReboot),
    ];
    for (tx, rq) in pairs {
        assert_eq!(sent[tx as usize], srv.requests_of(rq), "{tx:?} sent by clients vs {rq:?} seen by the server");
    }
    assert_eq!(sent[TxClass::Discover as usize], srv.received.get(Kind::Discover));
    assert_eq!(sent[TxClass::Release as usize], srv.received.get(Kind::Release));
    assert!(
        sent[TxClass::Renew as usize] > 3000,
        "a day of 1-hour leases renews a lot: {}",
        sent[TxClass::Renew as usize]
    );
    assert!(srv.releases_applied > 50);
    // ... and every reply reaches its client exactly once.
    let got = sim.client_received();
    for k in [Kind::Offer, Kind::Ack, Kind::Nak] {
        assert_eq!(got.get(k), srv.sent.get(k), "{k:?} sent by the server vs received by clients");
    }
    // The relay relayed exactly the broadcasts (renewals went around it).
    let st = sim.stats();
    assert_eq!(st.engine_from_clients, st.engine_to_servers);
    assert_eq!(st.local_answers.total(), 0);
    assert_eq!(st.lost, 0, "nothing lost in relay mode");
    for &r in cdra_core::DropReason::ALL {
        assert_eq!(sim.engine().counters().total_dropped(r), 0, "engine dropped {}", r.label());
    }
}

#[test]
fn same_seed_same_run_other_seed_other_run() {
    let a = day(5, 30);
    let b = day(5, 30);
    let c = day(6, 30);
    let fp = |s: &Sim| -> String {
        let states: Vec<String> =
            s.clients().iter().map(|c| format!("{:?}{:?}{:?}", c.state(), c.lease(), c.stats.sent_class)).collect();
        format!("{}{}", s.report(), states.join(","))
    };
    assert_eq!(fp(&a), fp(&b));
    assert_ne!(fp(&a), fp(&c));
}

#[test]
fn relay_moved_client_is_naked_then_served_on_its_new_subnet() {
    let mut sim = Sim::new(SimConfig::small(2, Mode::Relay));
    let a = sim.add_dhcp_client(0, IdStyle::MacId);
    sim.power_on(a);
    sim.run_for(secs(5));
    assert_eq!(sim.held(a), Some(addr(0, 100)));
    sim.move_client(a, 1);
    sim.run_for(secs(10));
    assert_eq!(sim.client(a).stats.naks, 1, "INIT-REBOOT on the wrong subnet is NAKed");
    assert_eq!(sim.held(a), Some(addr(1, 100)));
    sim.assert_ok();
}

#[test]
fn relay_inform_and_bootp() {
    let mut sim = Sim::new(SimConfig::small(2, Mode::Relay));
    let a = sim.add_dhcp_client(0, IdStyle::Hardware);
    let mut cfg = cdra_sim::ClientConfig::new([2, 0xb0, 0, 0, 0, 1], 1, IdStyle::Hardware);
    cfg.bootp = true;
    let b = sim.add_client(cfg);
    sim.power_on(a);
    sim.power_on(b);
    sim.run_for(secs(5));
    sim.act(cdra_sim::Action::Inform(a));
    sim.run_for(secs(5));
    assert_eq!(sim.client(a).stats.inform_acks, 1);
    assert_eq!(sim.client(b).state(), ClientState::BootpBound);
    assert_eq!(sim.held(b), Some(addr(1, 100)));
    assert_eq!(sim.server(0).stats.received.get(Kind::BootRequest), 1);
    sim.assert_ok();
}

#[test]
fn relay_server_lease_caching_keeps_the_lease_end() {
    // ISC dhcpd / Kea cache-threshold: an early renewal gets the same lease end.
    let mut cfg = SimConfig::small(7, Mode::Relay);
    cfg.servers[0].cache_threshold = Some(0.25);
    let mut sim = Sim::new(cfg);
    let a = sim.add_dhcp_client(0, IdStyle::MacId);
    sim.power_on(a);
    sim.run_for(secs(5));
    let end = sim.client(a).lease().expect("lease").end();
    sim.act(cdra_sim::Action::RenewNow(a));
    sim.run_for(secs(5));
    let l = *sim.client(a).lease().expect("lease");
    assert_eq!(sim.server(0).stats.cached_renewals, 1);
    assert!(l.lease_secs < 3600 && l.end() <= end && end - l.end() < 2000, "{l:?} vs end {end}");
    sim.assert_ok();
}

#[test]
fn relay_failover_to_the_second_server() {
    let mut cfg = SimConfig::small(8, Mode::Relay).with_second_server();
    cfg.server_selection = cdra_core::config::ServerSelection::Failover;
    let mut sim = Sim::new(cfg);
    let a = sim.add_dhcp_client(0, IdStyle::MacId);
    sim.power_on(a);
    sim.run_for(secs(5));
    assert_eq!(sim.held(a), Some(addr(0, 100)), "the first server serves while it is up");
    assert_eq!(sim.server(1).stats.received.total(), 0, "failover: nothing to the second server");
    sim.stop_server(0);
    let clients: Vec<usize> = (0..4).map(|_| sim.add_dhcp_client(0, IdStyle::Hardware)).collect();
    for &c in &clients {
        sim.power_on(c);
    }
    sim.run_for(mins(2));
    for &c in &clients {
        let held = sim.held(c).unwrap_or_else(|| fail(&sim, &format!("client#{c} not served by the second server")));
        assert!(sim.server(1).owns(held));
    }
    sim.assert_ok();
}
