//! Interfaces that come and go, and reloads (issue 13 items 1, 2): nothing is lost that
//! should stay, and nothing stays that should go.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use cdra_core::config::{Downstream, Ipv4Net, LinkState, Mode};
use cdra_core::reconfigure::{LinkUpdate, ReconfigureError};
use cdra_core::table::Removal;
use cdra_core::Verdict;
use cdra_wire::MessageType;

use common::*;

fn up(address: Ipv4Addr, prefix_len: u8) -> LinkUpdate {
    LinkUpdate::Up {
        ifindex: DS_IF,
        address: Ipv4Net { addr: address, prefix_len },
        all_addresses: vec![address],
        mac: Some([0x02, 0, 0, 0, 0, 1]),
    }
}

fn second_link() -> Downstream {
    Downstream::up("rd1", 7, Ipv4Net { addr: Ipv4Addr::new(10, 77, 2, 1), prefix_len: 24 }, None)
}

#[test]
fn a_link_that_goes_away_keeps_its_records_and_serves_them_again_when_back() {
    let mut h = Harness::new(proxy_config());
    let a = Client::new(1);
    a.bind(&mut h);
    assert!(h.engine.set_link(h.now, "rd0", LinkUpdate::Waiting));
    // Nothing is taken from a link that is not up (its index may be reused by the kernel).
    assert_eq!(h.client_sends(&a.init_reboot()), Verdict::Dropped(cdra_core::DropReason::UnknownInterface));
    assert!(record(&h, &a).is_some(), "kept across the flap");
    assert_eq!(h.engine.counters().links_waiting, 1);
    // Back, same address: answered from the table as before.
    assert!(h.engine.set_link(h.now, "rd0", up(DS_ADDR, 24)));
    assert_eq!(h.client_sends(&a.init_reboot()), Verdict::AwaitingProbe);
    assert!(!h.engine.set_link(h.now, "nope", LinkUpdate::Waiting), "not a configured interface");
}

#[test]
fn no_short_lease_lapses_while_its_link_is_down() {
    let mut c = proxy_config();
    c.proxy.client_lease = Some(Duration::from_secs(60));
    let mut h = Harness::new(c);
    let a = Client::new(1);
    a.bind(&mut h);
    h.engine.set_link(h.now, "rd0", LinkUpdate::Waiting);
    // Long past the client's short lease: no lapse probe, no RELEASE, record kept.
    for _ in 0..20 {
        h.advance(30);
        h.run_timers(0);
        assert!(h.sent().iter().all(|(_, b)| cdra_wire::Message::new_checked(&b[..])
            .map(|m| m.message_type() != Some(MessageType::Release))
            .unwrap_or(true)));
    }
    assert!(h.probes.iter().all(|p| p.target != a.addr), "no lapse probe on a link that is down");
    assert!(record(&h, &a).is_some());
    // Once up again, the lapse runs its course (probe first).
    h.engine.set_link(h.now, "rd0", up(DS_ADDR, 24));
    h.advance(120);
    h.run_timers(0);
    assert!(h.probes.iter().any(|p| p.target == a.addr), "lapse probe once the link is up");
}

#[test]
fn a_link_back_on_another_subnet_no_longer_offers_the_old_addresses() {
    let mut h = Harness::new(proxy_config());
    let a = Client::new(1);
    a.bind(&mut h);
    h.engine.set_link(h.now, "rd0", LinkUpdate::Waiting);
    h.engine.set_link(h.now, "rd0", up(Ipv4Addr::new(10, 99, 0, 1), 24));
    // Paper App. B: never offer an address off the link's subnet.
    let v = h.client_sends(&a.init_reboot());
    assert!(matches!(v, Verdict::RelayedToServers { .. }), "{v:?}");
    assert!(record(&h, &a).is_none_or(|r| r.reply.is_none()));
    assert!(h.engine.counters().proxy.removed[Removal::WrongSubnet] >= 1);
}

#[test]
fn a_reload_keeps_records_adds_and_removes_links_and_carries_server_state() {
    let mut h = Harness::new(proxy_config());
    let a = Client::new(1);
    a.bind(&mut h);
    let before_rx = h.engine.counters().interfaces[0].received.iter().sum::<u64>();
    // Reload: a second link, a second server.
    let mut c = proxy_config();
    c.downstream.push(second_link());
    c.servers.push(SERVER2);
    let r = h.engine.reconfigure(h.now, c, &mut h.outbox).expect("applied");
    assert_eq!(r.added, vec!["rd1".to_string()]);
    assert_eq!(r.servers_added, vec![SERVER2]);
    assert!(r.removed.is_empty() && r.servers_removed.is_empty());
    assert_eq!(h.engine.config().downstream.len(), 2);
    assert_eq!(h.engine.counters().interfaces.len(), 3, "two links and upstream");
    assert_eq!(h.engine.counters().interfaces[0].received.iter().sum::<u64>(), before_rx, "counts kept");
    // The record is still answered from the table.
    assert_eq!(h.client_sends(&a.init_reboot()), Verdict::AwaitingProbe);

    // Reload without rd0: its records go, counted; rd1 keeps its index.
    let mut c = proxy_config();
    c.downstream = vec![second_link()];
    c.servers = vec![SERVER2];
    let r = h.engine.reconfigure(h.now, c, &mut h.outbox).expect("applied");
    assert_eq!(r.removed, vec!["rd0".to_string()]);
    assert_eq!(r.records_dropped, 1);
    assert_eq!(r.servers_removed, vec![SERVER]);
    assert!(record(&h, &a).is_none());
    assert_eq!(h.engine.counters().proxy.removed[Removal::InterfaceRemoved], 1);
    let ds = &h.engine.config().downstream;
    assert_eq!((ds[0].name.as_str(), ds[0].state), ("rd0", LinkState::Removed));
    assert_eq!((ds[1].name.as_str(), ds[1].state), ("rd1", LinkState::Up));
    // Nothing arrives on a removed link.
    assert_eq!(
        h.client_sends(&a.msg(MessageType::Discover)),
        Verdict::Dropped(cdra_core::DropReason::UnknownInterface)
    );

    // Configured again: the same slot.
    let mut c = proxy_config();
    c.downstream.push(second_link());
    let r = h.engine.reconfigure(h.now, c, &mut h.outbox).expect("applied");
    assert_eq!(r.added, vec!["rd0".to_string()]);
    assert_eq!(h.engine.config().downstream.len(), 2);
    assert_eq!(h.engine.config().downstream[0].state, LinkState::Up);
}

#[test]
fn a_reload_that_changes_the_mode_is_refused_and_changes_nothing() {
    let mut h = Harness::new(proxy_config());
    let a = Client::new(1);
    a.bind(&mut h);
    let mut c = config();
    c.mode = Mode::Relay;
    c.servers = vec![SERVER2];
    let e = h.engine.reconfigure(h.now, c, &mut h.outbox).expect_err("refused");
    assert_eq!(e, ReconfigureError::ModeChange { running: Mode::Proxy, wanted: Mode::Relay });
    assert_eq!(h.engine.config().servers, vec![SERVER]);
    assert!(record(&h, &a).is_some());
}

#[test]
fn a_reply_to_a_request_sent_before_a_reload_still_matches_its_server() {
    let mut h = Harness::new(proxy_config());
    let a = Client::new(1);
    assert!(matches!(h.client_sends(&a.msg(MessageType::Discover)), Verdict::RelayedToServers { .. }));
    // The server list is reordered: the request went to SERVER, now index 1.
    let mut c = proxy_config();
    c.servers = vec![SERVER2, SERVER];
    h.engine.reconfigure(h.now, c, &mut h.outbox).expect("applied");
    assert_eq!(h.server_sends(SERVER, &a.reply(MessageType::Offer, true)), Verdict::DeliveredToClient);
}

/// Short leases that lapse while their link is down are not watched again every second
/// (work growing with their number for as long as the link stays down): they wait for the
/// link, and when it comes back every one of them lapses, probe first.
#[test]
fn lapses_on_a_link_that_is_down_wait_for_it_without_refiling() {
    let mut c = proxy_config();
    c.proxy.client_lease = Some(Duration::from_secs(60));
    let mut h = Harness::new(c);
    let clients: Vec<Client> = (1..=50).map(Client::new).collect();
    for a in &clients {
        a.bind(&mut h);
    }
    h.engine.set_link(h.now, "rd0", LinkUpdate::Waiting);
    for _ in 0..10 {
        h.advance(30);
        h.run_timers(0);
    }
    assert_eq!(h.engine.lapse_timers_filed(), 0, "nothing filed while the link is down");
    assert!(clients.iter().all(|a| record(&h, a).is_some()));
    h.engine.set_link(h.now, "rd0", up(DS_ADDR, 24));
    for _ in 0..5 {
        h.advance(1);
        h.run_timers(0);
    }
    for a in &clients {
        assert!(h.probes.iter().any(|p| p.target == a.addr), "lapse probe for {} once the link is up", a.addr);
    }
}
