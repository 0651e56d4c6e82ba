//! The invariant checker itself can fail: a forced duplicate and a client outliving its
//! server lease are both reported, with a trace.

mod common;

use cdra_core::Mode;
use cdra_sim::{secs, Holder, IdStyle, Sim, SimConfig, ViolationKind};
use common::addr;

fn recording(mode: Mode) -> Sim {
    let mut c = SimConfig::small(3, mode);
    c.panic_on_violation = false;
    Sim::new(c)
}

#[test]
fn duplicate_address_is_reported() {
    let mut sim = recording(Mode::Relay);
    let a = sim.add_dhcp_client(0, IdStyle::Hardware);
    sim.power_on(a);
    sim.run_for(secs(5));
    assert_eq!(sim.held(a), Some(addr(0, 100)));
    assert!(sim.violations().is_empty());
    let sq = sim.add_squatter(0, addr(0, 100));
    let v = sim.violations().first().expect("the squatter on a leased address is reported");
    match &v.kind {
        ViolationKind::DuplicateAddress { addr: x, holders } => {
            assert_eq!(*x, addr(0, 100));
            assert!(holders.contains(&Holder::Client(a)) && holders.contains(&Holder::Squatter(sq)));
        }
        other => panic!("expected a duplicate, got {other:?}"),
    }
    let text = v.to_string();
    assert!(text.contains("INVARIANT (a)") && text.contains("client#0 configures 10.77.1.100"), "{text}");
}

#[test]
fn lease_beyond_server_is_reported() {
    let mut sim = recording(Mode::Relay);
    let a = sim.add_dhcp_client(0, IdStyle::MacId);
    sim.power_on(a);
    sim.run_for(secs(5));
    assert_eq!(sim.held(a), Some(addr(0, 100)));
    // The server loses the lease: the client now holds an address no server lease covers.
    sim.server_mut(0).drop_lease(addr(0, 100));
    sim.run_for(1);
    let v = sim.violations().first().expect("reported");
    assert!(matches!(v.kind, ViolationKind::LeaseBeyondServer { client: 0, server: None, .. }), "{v}");
    assert!(v.involves(a) && !v.is_duplicate());
}

#[test]
fn released_address_given_to_another_is_not_a_violation() {
    // Lowest-free allocation hands a released address out again at once; the first holder
    // has stopped using it, so nothing is reported.
    let mut sim = Sim::new(SimConfig::small(4, Mode::Relay));
    let a = sim.add_dhcp_client(0, IdStyle::MacId);
    let b = sim.add_dhcp_client(0, IdStyle::Hardware);
    sim.power_on(a);
    sim.run_for(secs(5));
    sim.power_off(a, true);
    sim.run_for(secs(1));
    sim.power_on(b);
    sim.run_for(secs(5));
    assert_eq!(sim.held(b), Some(addr(0, 100)));
    sim.assert_ok();
}
