//! Automated lease renewals (paper 2.3, 3.3, 5.3; Appendix A.2): the server grants a long
//! lease, the caching relay gives clients a short one and renews it locally; past the
//! server lease's T1 it renews upstream; when a short lease lapses it probes, then
//! releases the server lease — unless the address still answers. The first tests run in
//! both proxying (4.1) and spoofing (4.2) mode.

mod common;

use core::time::Duration;

use cdra_core::Mode;
use cdra_sim::server::{LeaseState, RequestClass};
use cdra_sim::{hours, mins, Sim, SimConfig, TxClass, ViolationKind, SERVER1};
use common::{addr, boot, client, fail};

/// Caching modes that give automated short leases.
const MODES: [Mode; 2] = [Mode::Proxy, Mode::Spoof];

fn short_leases_in(seed: u64, mode: Mode, safe: bool) -> Sim {
    let mut c = SimConfig::small(seed, mode);
    c.proxy.safe_network = safe;
    c.proxy.client_lease = Some(Duration::from_secs(3600));
    c.servers[0].lease_secs = 86_400;
    c.panic_on_violation = false;
    Sim::new(c)
}

#[test]
fn short_leases_renewed_locally_server_sees_one_renewal_per_t1() {
    for mode in MODES {
        let mut sim = short_leases_in(401, mode, false);
        let a = client(&mut sim, 0);
        assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
        assert_eq!(
            sim.client(a).lease().map(|l| l.lease_secs),
            Some(3600),
            "paper 5.1: the forwarded ACK carries the short lease"
        );
        sim.run_for(hours(48));
        if let Some(v) = sim.violations().first() {
            fail(&sim, &v.to_string());
        }
        assert_eq!(sim.held(a), Some(addr(0, 100)));
        let renewals = sim.client(a).stats.sent_of(TxClass::Renew);
        let upstream = sim.server(0).stats.requests_of(RequestClass::CiaddrRelayed);
        eprintln!("client renewals {renewals}, server saw {upstream}");
        assert!(renewals >= 90, "a 1-hour lease renews every 30 min: {renewals}");
        // The server lease (1 day, T1 12 h) needs renewing about 4 times in 48 h.
        assert!((3..=6).contains(&upstream), "server saw {upstream} renewals");
    }
}

#[test]
fn lapsed_short_lease_is_released_after_a_probe() {
    for mode in MODES {
        let mut sim = short_leases_in(402, mode, false);
        let a = client(&mut sim, 0);
        assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
        sim.power_off(a, false);
        sim.run_for(hours(1) + mins(1));
        // Paper 2.3: "When a short term lease expires, the CDRA sends a RELEASE message to the
        // server"; 3.3: after an ICMP echo request finds nobody.
        assert!(sim.probes_for(addr(0, 100)) >= 1);
        assert_eq!(sim.server(0).stats.releases_applied, 1);
        assert_eq!(sim.server(0).lease(addr(0, 100)).map(|l| l.state), Some(LeaseState::Released));
        assert!(sim.engine_record(a).is_none());
        assert!(sim.violations().is_empty());
    }
}

/// Appendix A.2: the client loses the CDRA, rebinds with the server (case i: same
/// address), the CDRA comes back; when its short lease lapses it must probe before
/// releasing, or the client is left holding an address the server believes free.
fn a2(mode: Mode, safe: bool) -> (Sim, usize) {
    let mut sim = short_leases_in(403, mode, safe);
    let a = client(&mut sim, 0);
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    // CDRA Down (from the client's point of view); another relay reaches the server.
    sim.set_engine_reachable(false);
    sim.set_bypass(0, true);
    // *: the client's RENEW fails, its REBIND reaches the server: new lease, same address.
    sim.run_for(mins(54));
    assert_eq!(sim.client(a).lease().map(|l| l.server_id), Some(SERVER1));
    // CDRA Up.
    sim.set_bypass(0, false);
    sim.set_engine_reachable(true);
    // XXX: the short lease the CDRA gave ends (1 h after the first ACK).
    sim.run_for(mins(10));
    (sim, a)
}

#[test]
fn a2_lapse_with_precautions_keeps_the_server_lease() {
    for mode in MODES {
        let (sim, a) = a2(mode, false);
        if let Some(v) = sim.violations().first() {
            fail(&sim, &v.to_string());
        }
        assert!(sim.probes_for(addr(0, 100)) >= 1, "probe before releasing");
        assert_eq!(sim.server(0).stats.releases_applied, 0, "the address answered: nothing released");
        // The host answering is the client itself (its own MAC): it is still there, so its
        // record is kept as well (issue 9, defect 1); another host would drop the record.
        let proxy = &sim.engine().counters().proxy;
        assert_eq!(proxy[cdra_core::counters::ProxyEvent::LapsedClientStillThere], 1);
        assert_eq!(proxy[cdra_core::counters::ProxyEvent::LapsedStillInUse], 0);
        assert_eq!(sim.held(a), Some(addr(0, 100)));
    }
}

#[test]
fn a2_lapse_in_safe_network_mode_releases_a_lease_in_use() {
    for mode in MODES {
        let (sim, a) = a2(mode, true);
        assert_eq!(sim.server(0).stats.releases_applied, 1);
        let v = sim.violations().first().expect("the checker reports the client holding a released address");
        assert!(matches!(v.kind, ViolationKind::LeaseBeyondServer { client, .. } if client == a), "{v}");
    }
}

#[test]
fn server_lease_caching_through_the_proxy() {
    // The server answers early renewals with the same lease end (cache-threshold 0.6, so
    // the proxy's upstream renewals at T1 get a cached answer): the proxy must take the
    // shorter lease into account. A day of 100 clients; invariant (b) is checked after
    // every event.
    let mut c = SimConfig::small(404, Mode::Proxy);
    c.servers[0].lease_secs = 3600;
    c.servers[0].cache_threshold = Some(0.6);
    c.full_check_every = 100;
    let mut sim = Sim::new(c);
    for i in 0..100 {
        client(&mut sim, i % 2);
    }
    cdra_sim::Workload {
        seed: 404,
        duration: hours(24),
        boot_window: mins(10),
        mean_up: hours(3),
        mean_off: mins(30),
        min_off: cdra_sim::secs(30),
        p_release: 0.1,
        p_forget: 0.1,
        p_move: 0.0,
        mean_forced_renew: Some(mins(40)),
        outages: vec![],
    }
    .schedule(&mut sim);
    sim.run_for(hours(24) + mins(5));
    sim.assert_ok();
    assert!(sim.server(0).stats.cached_renewals > 100, "{}", sim.report());
    for (i, cl) in sim.clients().iter().enumerate() {
        if cl.is_on() && !cl.state().uses_address() {
            fail(&sim, &format!("client#{i} on but in {:?}", cl.state()));
        }
    }
}

/// Issue 9, defect 1: with `client_lease = "10s"`, busybox udhcpc raises the lease to 30 s
/// and renews at 15 s, after the short lease lapsed (10 s + grace). The lapse probe is
/// answered by the client's own MAC: the record stays and every renewal is answered from
/// the table; the server sees none of them (its 1-day lease is far from T1). (With
/// `safe_network` there is no probe, and a lapse releases: a2_lapse_in_safe_network_mode.)
#[test]
fn a_client_that_renews_after_its_short_lease_lapsed_is_still_answered_locally() {
    let mut c = SimConfig::small(404, Mode::Proxy);
    c.proxy.client_lease = Some(Duration::from_secs(10));
    c.servers[0].lease_secs = 86_400;
    c.panic_on_violation = false;
    let mut sim = Sim::new(c);
    let mut cfg = cdra_sim::client::ClientConfig::numbered(0, 0, cdra_sim::IdStyle::MacId);
    cfg.min_lease_secs = 30;
    let a = sim.add_client(cfg);
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    let server_requests = |sim: &Sim| -> u64 {
        [RequestClass::Selecting, RequestClass::InitReboot, RequestClass::CiaddrDirect, RequestClass::CiaddrRelayed]
            .into_iter()
            .map(|k| sim.server(0).stats.requests_of(k))
            .sum()
    };
    let before = server_requests(&sim);
    sim.run_for(mins(10));
    if let Some(v) = sim.violations().first() {
        fail(&sim, &v.to_string());
    }
    let renewals = sim.client(a).stats.sent_of(TxClass::Renew);
    assert!(renewals >= 30, "udhcpc renews every 15 s: {renewals}");
    assert_eq!(server_requests(&sim), before, "no renewal reaches the server");
    assert_eq!(sim.held(a), Some(addr(0, 100)));
    assert!(sim.engine_record(a).is_some(), "the record is kept");
    let proxy = &sim.engine().counters().proxy;
    assert_eq!(proxy[cdra_core::counters::ProxyEvent::ProbeFoundInUse], 0);
    assert_eq!(sim.server(0).stats.releases_applied, 0);
}
