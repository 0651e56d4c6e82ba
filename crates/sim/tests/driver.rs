//! What a driver that judges the engine from outside relies on: one event at a time, the
//! wire log, injected datagrams, the engine's own clock.

mod common;

use core::net::{Ipv4Addr, SocketAddrV4};

use cdra_core::{Destination, Mode};
use cdra_sim::{secs, IdStyle, Sim, SimConfig, WireEvent};
use common::addr;

#[test]
fn the_wire_log_shows_what_crossed_the_engine() {
    let mut sim = Sim::new(SimConfig::small(5, Mode::Proxy));
    sim.set_wire_log(true);
    let a = sim.add_dhcp_client(0, IdStyle::MacId);
    sim.power_on(a);
    let until = sim.now() + secs(5);
    let mut events = 0;
    while sim.step(until) {
        events += 1;
    }
    sim.advance_to(until);
    assert!(events > 4);
    assert_eq!(sim.held(a), Some(addr(0, 100)));
    let log = sim.take_wire_log();
    let ins = log.iter().filter(|e| matches!(e, WireEvent::EngineIn { .. })).count();
    let to_server =
        log.iter().filter(|e| matches!(e, WireEvent::EngineOut { dest: Destination::Server { .. }, .. })).count();
    assert_eq!((ins, to_server), (4, 2), "DISCOVER, OFFER, REQUEST, ACK in; DISCOVER, REQUEST out");
    assert!(sim.take_wire_log().is_empty(), "drained");
    let calls = sim.engine_calls();
    sim.inject_to_engine(2, None, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68), Ipv4Addr::BROADCAST, vec![1, 2, 3]);
    sim.run_for(1);
    assert!(sim.engine_calls() > calls);
    assert!(matches!(&sim.take_wire_log()[..], [WireEvent::EngineIn { data, .. }] if data == &[1, 2, 3]));
}

#[test]
fn the_engine_clock_steps_alone_and_widens_the_lease_tolerance() {
    let mut sim = Sim::new(SimConfig::small(6, Mode::Proxy));
    let before = sim.config().lease_tolerance_ms;
    let now = sim.now();
    sim.step_engine_clock(-3_600_000);
    assert_eq!(sim.engine_now(), now - 3_600_000);
    assert_eq!(sim.now(), now);
    sim.step_engine_clock(600_000);
    assert_eq!(sim.engine_now(), now - 3_000_000);
    assert_eq!(sim.config().lease_tolerance_ms, before + 4_200_000);
    // The engine still serves: its timers run on its own clock.
    let a = sim.add_dhcp_client(1, IdStyle::Hardware);
    sim.power_on(a);
    sim.run_for(secs(5));
    assert_eq!(sim.held(a), Some(addr(1, 100)));
    sim.assert_ok();
}
