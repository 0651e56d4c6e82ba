//! The paper's Appendix A scenarios, replayed step by step as the paper numbers them, in
//! both caching modes that answer from the table: proxying (4.1) and spoofing (4.2). With
//! the precautions of section 3 (safe_network = false) the invariants hold; with
//! safe_network = true the same script produces the duplicate address the appendix warns
//! about, and the checker must report it (so these tests can fail both ways).

mod common;

use cdra_core::counters::ProxyEvent;
use cdra_core::Mode;
use cdra_sim::server::LeaseState;
use cdra_sim::{hours, mins, secs, Sim, TxClass, ViolationKind, SERVER1};
use common::{addr, boot, caching_sim_recording, client, identity_seen};

/// The caching modes the appendix applies to.
const MODES: [Mode; 2] = [Mode::Proxy, Mode::Spoof];

fn no_violations(sim: &Sim) {
    if let Some(v) = sim.violations().first() {
        panic!("precautions on, yet:\n{v}\n{}", sim.report());
    }
}

fn has_duplicate(sim: &Sim, a: usize, b: usize, at: std::net::Ipv4Addr) -> bool {
    sim.violations().iter().any(|v| v.is_duplicate() && v.addr() == at && v.involves(a) && v.involves(b))
}

// ---------------------------------------------------------------- A.1, first case

/// A.1 "DHCPREQUEST used in response to an OFFER or used in INIT-REBOOT".
fn a1_request(mode: Mode, safe: bool) -> (Sim, usize, usize) {
    let mut sim = caching_sim_recording(201, mode, safe);
    let a = client(&mut sim, 0);
    let b = client(&mut sim, 0);
    // 1. Client A obtains a leased IP address from CDRA.
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    assert_eq!(sim.client(a).lease().map(|l| l.server_id), Some(identity_seen(&sim, 0)));
    // 2. Client A shuts down without issuing release.
    sim.power_off(a, false);
    // 3. Client A starts up and obtains a lease on the same IP address through some other
    //    source (the CDRA is out of reach; another relay carries A's INIT-REBOOT).
    sim.set_engine_reachable(false);
    sim.set_bypass(0, true);
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    assert_eq!(sim.client(a).lease().map(|l| l.server_id), Some(SERVER1));
    // 4. Client A gracefully shuts down with a DHCPRELEASE message.
    sim.power_off(a, true);
    sim.run_for(secs(1));
    assert_eq!(sim.server(0).lease(addr(0, 100)).map(|l| l.state), Some(LeaseState::Released));
    // 5. Client B starts up and obtains a lease on A's old IP address unbeknownst to the CDRA.
    assert_eq!(boot(&mut sim, b), Some(addr(0, 100)));
    // 6. Client A starts up and obtains a lease from the CDRA on its old address (the CDRA
    //    should have issued an ICMP echo request first).
    sim.set_bypass(0, false);
    sim.set_engine_reachable(true);
    sim.power_on(a);
    sim.run_for(secs(30));
    (sim, a, b)
}

#[test]
fn a1_request_with_precautions_no_duplicate() {
    for mode in MODES {
        let (sim, a, b) = a1_request(mode, false);
        // 7. does not happen: the probe finds B, A gets a NAK and another address.
        no_violations(&sim);
        assert!(sim.probes_for(addr(0, 100)) >= 1, "the proxy must probe before its ACK");
        assert_eq!(sim.client(a).stats.naks, 1, "probe answered: NAK");
        assert_eq!(sim.held(b), Some(addr(0, 100)));
        assert_eq!(sim.held(a), Some(addr(0, 101)), "A restarts and the server gives it another address");
        assert_eq!(sim.engine_record(a).map(|r| r.address), Some(addr(0, 101)));
    }
}

#[test]
fn a1_request_in_safe_network_mode_duplicates() {
    for mode in MODES {
        let (sim, a, b) = a1_request(mode, true);
        // 7. Client A and B are using the same IP address.
        assert_eq!(sim.held(a), Some(addr(0, 100)));
        assert_eq!(sim.held(b), Some(addr(0, 100)));
        assert_eq!(sim.probes_for(addr(0, 100)), 0);
        assert!(has_duplicate(&sim, a, b, addr(0, 100)), "the checker must report it: {:?}", sim.violations());
    }
}

// ---------------------------------------------------------------- A.1, second case

/// A.1 "DHCPREQUEST used to REBIND a lease (broadcast request)".
fn a1_rebind(mode: Mode, safe: bool) -> (Sim, usize, usize) {
    let mut sim = caching_sim_recording(202, mode, safe);
    sim.server_mut(0).set_lease_secs(7 * 86_400);
    let a = client(&mut sim, 0);
    let b = client(&mut sim, 0);
    // 1. Client A obtains a leased IP address from the CDRA; the CDRA gets a 1 week lease
    //    from the server (here the client gets what is left of it).
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    // 2. Client A shuts down.
    sim.power_off(a, false);
    // 3. Client A starts up and obtains a 1 hour lease directly from the DHCP server. This
    //    replaces the 1 week lease the server previously gave through the CDRA. (A spoofing
    //    CDRA sits on the client's path to the server: for the client to get there without
    //    it, it has failed; it comes back from its store, paper 3.4.)
    let saved = sim.engine_snapshot();
    sim.server_mut(0).set_lease_secs(3600);
    sim.set_engine_reachable(false);
    sim.set_bypass(0, true);
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    let l = *sim.client(a).lease().expect("lease");
    assert_eq!((l.server_id, l.lease_secs), (SERVER1, 3600));
    let server_end = sim.server(0).lease(addr(0, 100)).expect("lease").end;
    // 4. Client A attempts to renew the lease, but the server does not respond (the path
    //    from A to the server is cut; the CDRA is back).
    if mode == Mode::Spoof {
        sim.restart_engine(Some(&saved));
    }
    sim.set_bypass(0, false);
    sim.set_engine_reachable(true);
    sim.set_direct_path(false);
    // 5. Client A broadcasts the REBIND request (at T2, 52.5 min). A spoofing CDRA takes
    //    the RENEW itself, so there the same danger comes at step 4: its answer.
    sim.run_for(mins(55));
    assert!(sim.client(a).stats.sent_of(TxClass::Renew) >= 1);
    if mode == Mode::Proxy {
        assert!(sim.client(a).stats.sent_of(TxClass::Rebind) >= 1);
    }
    // 6. Client A's lease on the server expires (unless it was renewed).
    let t = server_end + mins(1);
    sim.run_until(t);
    // 7. Client B starts up and obtains a lease from the server.
    sim.power_on(b);
    sim.run_for(secs(30));
    (sim, a, b)
}

#[test]
fn a1_rebind_with_precautions_no_duplicate() {
    for mode in MODES {
        let (sim, a, b) = a1_rebind(mode, false);
        // 8. does not happen: the REBIND was forwarded (spoofing: the RENEW of a record the
        //    restart made suspect was), and the server renewed A's lease.
        no_violations(&sim);
        let (event, what) = match mode {
            Mode::Spoof => (ProxyEvent::SuspectRenewalForwarded, "the suspect record's RENEW"),
            _ => (ProxyEvent::RebindForwarded, "REBIND"),
        };
        assert!(sim.engine().counters().proxy[event] >= 1, "{what} must go to the server first");
        assert_eq!(sim.held(a), Some(addr(0, 100)));
        let l = sim.server(0).lease(addr(0, 100)).expect("lease");
        assert_eq!((l.key.clone(), l.state), (sim.client(a).key(), LeaseState::Bound));
        assert!(l.end > sim.now());
        assert_eq!(sim.held(b), Some(addr(0, 101)));
    }
}

#[test]
fn a1_rebind_in_safe_network_mode_duplicates() {
    for mode in MODES {
        let (sim, a, b) = a1_rebind(mode, true);
        // 5. "The CDRA responds with another ... lease": beyond the server's, reported at once.
        let first = sim.violations().first().expect("violations reported");
        assert!(matches!(first.kind, ViolationKind::LeaseBeyondServer { client, .. } if client == a), "{first}");
        // 8. Client A and B are now using the same IP address.
        assert_eq!(sim.held(a), Some(addr(0, 100)));
        assert_eq!(sim.held(b), Some(addr(0, 100)));
        assert!(has_duplicate(&sim, a, b, addr(0, 100)), "{:?}", sim.violations());
    }
}

// ---------------------------------------------------------------- A.3

/// A.3 "Persistent Storage".
fn a3(mode: Mode, safe: bool) -> (Sim, usize, usize) {
    let mut sim = caching_sim_recording(203, mode, safe);
    let a = client(&mut sim, 0);
    let b = client(&mut sim, 0);
    // 1. Client A requests IP address from Proxy CDRA.
    // 2. CDRA grants a short lease to client A.
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    assert_eq!(sim.client(a).lease().map(|l| l.server_id), Some(identity_seen(&sim, 0)));
    // 3. CDRA fails and must be restarted (its table is on disk as of now).
    let saved = sim.engine_snapshot();
    assert_eq!(saved.records.len(), 1);
    sim.set_engine_reachable(false);
    // 4. Client A reboots and issues a DHCPDISCOVER.
    sim.power_off(a, false);
    sim.forget_lease(a);
    sim.set_bypass(0, true);
    // 5. DHCP server receives client A's discover message.
    // 6. Server grants a lease to client A on same IP address as CDRA had given.
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    assert_eq!(sim.client(a).lease().map(|l| l.server_id), Some(SERVER1));
    // 7. Client A gracefully shuts down and issues a DHCPRELEASE to the server.
    sim.power_off(a, true);
    sim.run_for(secs(1));
    // 8. Client B requests an IP address and receives client A's old address from the server.
    assert_eq!(boot(&mut sim, b), Some(addr(0, 100)));
    // 9. CDRA is now available again with configuration from persistent storage.
    sim.run_for(hours(1));
    sim.restart_engine(Some(&saved));
    sim.set_bypass(0, false);
    sim.set_engine_reachable(true);
    assert_eq!(sim.engine_record(a).map(|r| r.address), Some(addr(0, 100)), "record restored");
    // 10. Client A starts up again and requests an IP address.
    sim.power_on(a);
    sim.run_for(secs(30));
    (sim, a, b)
}

#[test]
fn a3_persistent_storage_with_precautions_no_duplicate() {
    for mode in MODES {
        let (sim, a, b) = a3(mode, false);
        // 11. The CDRA probes first, finds B, NAKs; 12. does not happen.
        no_violations(&sim);
        assert!(sim.probes_for(addr(0, 100)) >= 1);
        assert_eq!(sim.client(a).stats.naks, 1);
        assert_eq!(sim.held(b), Some(addr(0, 100)));
        assert_eq!(sim.held(a), Some(addr(0, 101)));
    }
}

#[test]
fn a3_persistent_storage_in_safe_network_mode_duplicates() {
    for mode in MODES {
        let (sim, a, b) = a3(mode, true);
        // 11. CDRA gives client A its old address. 12. Client A and B use the same address.
        assert_eq!(sim.held(a), Some(addr(0, 100)));
        assert_eq!(sim.held(b), Some(addr(0, 100)));
        assert!(has_duplicate(&sim, a, b, addr(0, 100)), "{:?}", sim.violations());
    }
}
