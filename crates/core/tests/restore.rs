//! Restoring a table never leaves two records holding one address, whatever the store
//! holds (found by the engine fuzzer: `crates/fuzz/regressions.txt`, `duplicate_address`).
//! A record read back may conflict with one record by its key and with another by its
//! address; both conflicts are resolved.

mod common;

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use cdra_core::config::Mode;
use cdra_core::table::{ClientKey, ClientKind, ClientRecord, ClientState};
use cdra_core::Timestamp;

use common::*;

fn record(last: u8, address: Ipv4Addr, updated: Timestamp) -> (ClientRecord, String) {
    let key = ClientKey::hardware(1, &[0x02, 0, 0, 0, 0, last]);
    let mut r = ClientRecord::new(key, ClientKind::Dhcp, 0, updated);
    r.state = ClientState::Bound;
    r.address = address;
    r.lease_secs = 3600;
    r.t1_secs = 1800;
    r.t2_secs = 3150;
    r.set_lease_start(updated);
    r.set_last_update(updated);
    (r, "rd0".to_string())
}

fn addresses_are_unique(h: &Harness) {
    let t = h.engine.table();
    let mut seen = HashSet::new();
    for (slot, r) in t.iter() {
        assert!(seen.insert(r.address), "{} held twice", r.address);
        assert_eq!(t.find_address(r.address), Some(slot), "address index of {}", r.key);
        assert_eq!(t.find(&r.key), Some(slot), "key index of {}", r.key);
    }
}

fn proxy() -> Harness {
    let mut c = config();
    c.mode = Mode::Proxy;
    Harness::new(c)
}

#[test]
fn a_record_conflicting_by_key_with_one_and_by_address_with_another_replaces_both_when_newer() {
    let mut h = proxy();
    let (x, y) = (Ipv4Addr::new(10, 77, 1, 105), Ipv4Addr::new(10, 77, 1, 103));
    let older = h.now;
    let newer = h.now.saturating_add(Duration::from_secs(1));
    h.advance(10);
    // A holds X; B holds Y; then B again, newer, holding X.
    let report = h.engine.restore(h.now, vec![record(0xa, x, older), record(0xb, y, older), record(0xb, x, newer)]);
    addresses_are_unique(&h);
    assert_eq!(h.engine.table().len(), 1);
    assert_eq!(report.superseded, 2);
    let b = ClientKey::hardware(1, &[0x02, 0, 0, 0, 0, 0xb]);
    assert_eq!(h.engine.table().find_address(x), h.engine.table().find(&b));
}

#[test]
fn a_record_older_than_either_conflict_is_dropped() {
    let mut h = proxy();
    let (x, y) = (Ipv4Addr::new(10, 77, 1, 105), Ipv4Addr::new(10, 77, 1, 103));
    let older = h.now;
    let newer = h.now.saturating_add(Duration::from_secs(1));
    h.advance(10);
    // A (newer) holds X; B holds Y; then B again, older than A, holding X.
    let report = h.engine.restore(h.now, vec![record(0xa, x, newer), record(0xb, y, older), record(0xb, x, older)]);
    addresses_are_unique(&h);
    assert_eq!((h.engine.table().len(), report.superseded), (2, 1));
}

/// Two records for one address updated in the same second (a record's times are kept to the
/// second): the one whose lease started later wins, in whichever order they are read; its
/// lease start is still exact to the millisecond.
#[test]
fn a_tie_to_the_second_goes_to_the_later_lease_start() {
    let x = Ipv4Addr::new(10, 77, 1, 105);
    let b = ClientKey::hardware(1, &[0x02, 0, 0, 0, 0, 0xb]);
    for b_first in [false, true] {
        let mut h = proxy();
        let second = h.now;
        h.advance(10);
        let a = record(0xa, x, second);
        let mut later = record(0xb, x, second);
        later.0.set_lease_start(second.saturating_add(Duration::from_millis(400)));
        let stored = if b_first { vec![later, a] } else { vec![a, later] };
        let report = h.engine.restore(h.now, stored);
        addresses_are_unique(&h);
        assert_eq!((h.engine.table().len(), report.superseded), (1, 1));
        assert_eq!(h.engine.table().find_address(x), h.engine.table().find(&b), "b read first: {b_first}");
    }
}
