//! Spoofing mode (paper 4.2), paper Table 1, one test per row: the same rules as the proxy
//! (`proxy_table1.rs`), with what spoofing changes: clients see the real server as their
//! server, their unicasts to it are intercepted on the router (the engine), and every
//! server's OFFER reaches them. Each test runs the real engine between model clients and
//! model servers and checks both sides plus the invariants.

mod common;

use cdra_core::counters::ProxyEvent;
use cdra_core::Mode;
use cdra_sim::msg::build;
use cdra_sim::server::RequestClass;
use cdra_sim::{secs, Action, ClientConfig, ClientState, IdStyle, Kind, Sim, SimConfig, SERVER1, SERVER2};
use cdra_wire::options::OptionCode;
use cdra_wire::{MessageType, Op};
use common::{addr, boot, caching_sim, client};

fn spoof_sim(seed: u64) -> Sim {
    caching_sim(seed, Mode::Spoof, false)
}

fn discovers(sim: &Sim) -> u64 {
    sim.server_received().get(Kind::Discover)
}

/// DHCPDISCOVER: "Proxy if able, otherwise forward to server" — as the server.
#[test]
fn discover_is_answered_if_able_else_forwarded_as_the_server() {
    let mut sim = spoof_sim(1101);
    let a = client(&mut sim, 0);
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    assert_eq!(discovers(&sim), 1, "first DISCOVER: no record, forwarded");
    // Paper 4.2: the client sees the real server, not the relay.
    assert_eq!(sim.client(a).lease().map(|l| l.server_id), Some(SERVER1));

    sim.power_off(a, false);
    sim.forget_lease(a);
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    assert_eq!(discovers(&sim), 1, "known client's DISCOVER must not reach the server");
    assert_eq!(sim.server(0).stats.requests_of(RequestClass::Selecting), 1, "nor its REQUEST");
    assert_eq!(sim.stats().local_answers.get(Kind::Offer), 1);
    assert_eq!(sim.stats().local_answers.get(Kind::Ack), 1);
    assert_eq!(sim.client(a).lease().map(|l| l.server_id), Some(SERVER1), "local answers speak as the server");
    sim.assert_ok();
}

/// DHCPREQUEST: SELECTING to the server it names, INIT-REBOOT after a probe, and a RENEW
/// unicast to the server intercepted and answered, the server seeing none of it.
#[test]
fn request_is_answered_if_able_and_renewals_to_the_server_are_intercepted() {
    let mut sim = spoof_sim(1102);
    let a = client(&mut sim, 0);
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    let sel = sim.server(0).log.iter().rev().find(|(_, s)| s.kind == Kind::Request).map(|(_, s)| *s).expect("logged");
    assert_eq!(sel.server_id, Some(SERVER1), "the SELECTING REQUEST names the server and goes to it");

    // INIT-REBOOT: answered locally, after a probe (paper 3.2).
    sim.power_off(a, false);
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    assert_eq!(sim.server(0).stats.requests_of(RequestClass::InitReboot), 0);
    assert_eq!(sim.probes_for(addr(0, 100)), 1);

    // RENEW: the client unicasts to the server; the router takes it and answers.
    let acks = sim.client(a).stats.acks;
    sim.act(Action::RenewNow(a));
    sim.run_for(secs(5));
    assert_eq!(sim.client(a).stats.acks, acks + 1);
    assert_eq!(sim.server(0).stats.requests_of(RequestClass::CiaddrRelayed), 0, "the server sees no renewal");
    assert_eq!(sim.server(0).stats.requests_of(RequestClass::CiaddrDirect), 0);
    assert!(sim.engine().counters().proxy[ProxyEvent::Intercepted] >= 1);
    assert_eq!(sim.client(a).lease().map(|l| l.server_id), Some(SERVER1));
    sim.assert_ok();
}

/// Paper 4.2: "if the spoofing CDRA fails and there's an alternative path from a client to
/// the server, the client can still renew its lease": with the engine gone, the client's
/// renewal reaches the server directly and is answered.
#[test]
fn with_the_relay_gone_renewals_reach_the_server_directly() {
    let mut sim = spoof_sim(1103);
    let a = client(&mut sim, 0);
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    sim.set_engine_reachable(false);
    let acks = sim.client(a).stats.acks;
    sim.act(Action::RenewNow(a));
    sim.run_for(secs(5));
    assert_eq!(sim.client(a).stats.acks, acks + 1, "answered by the server itself");
    assert_eq!(sim.server(0).stats.requests_of(RequestClass::CiaddrDirect), 1);
    sim.assert_ok();
}

/// DHCPINFORM: "Forward to Server" — intercepted when unicast to the server.
#[test]
fn inform_is_forwarded() {
    let mut sim = spoof_sim(1104);
    let a = client(&mut sim, 1);
    assert_eq!(boot(&mut sim, a), Some(addr(1, 100)));
    sim.act(Action::Inform(a));
    sim.run_for(secs(5));
    assert_eq!(sim.server_received().get(Kind::Inform), 1);
    assert_eq!(sim.client(a).stats.inform_acks, 1, "the server's ACK reaches the client");
    assert_eq!(sim.stats().local_answers.total(), 0);
    sim.assert_ok();
}

/// DHCPDECLINE: "Forward to Server, Remove client from DB".
#[test]
fn decline_is_forwarded_and_the_record_removed() {
    let mut sim = spoof_sim(1105);
    let a = client(&mut sim, 0);
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    sim.act(Action::Decline(a));
    sim.run_for(secs(1));
    let srv = &sim.server(0).stats;
    assert_eq!((srv.received.get(Kind::Decline), srv.declines_applied), (1, 1));
    assert!(sim.engine_record(a).is_none(), "record removed");
    sim.run_for(secs(15));
    assert_eq!(sim.held(a), Some(addr(0, 101)));
    sim.assert_ok();
}

/// DHCPRELEASE: "Forward to server, Remove client from DB" — unicast to the server,
/// intercepted, passed on.
#[test]
fn release_is_forwarded_and_the_record_removed() {
    let mut sim = spoof_sim(1106);
    let a = client(&mut sim, 0);
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    sim.power_off(a, true);
    sim.run_for(secs(1));
    let srv = &sim.server(0).stats;
    assert_eq!((srv.received.get(Kind::Release), srv.releases_applied), (1, 1));
    assert!(sim.engine_record(a).is_none(), "record removed");
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    assert_eq!(discovers(&sim), 2, "no record: the next DISCOVER is forwarded");
    sim.assert_ok();
}

/// DHCPOFFER: "Forward to client if client is in INIT state": paper 4.2, "A spoofing CDRA
/// can forward all received OFFERs to the client and let the client decide which to
/// accept" — every server's OFFER reaches the client, and its REQUEST goes to the server
/// it chose.
#[test]
fn every_offer_reaches_the_client_and_it_chooses() {
    let mut cfg = SimConfig::small(1107, Mode::Spoof).with_second_server();
    for s in &mut cfg.servers {
        s.lease_secs = 86_400;
    }
    let mut sim = Sim::new(cfg);
    let clients: Vec<usize> = (0..5).map(|i| client(&mut sim, i % 2)).collect();
    for &c in &clients {
        sim.power_on(c);
    }
    sim.run_for(secs(10));
    for &c in &clients {
        assert!(sim.held(c).is_some());
        assert_eq!(sim.client(c).stats.received.get(Kind::Offer), 2, "client#{c} sees both OFFERs");
    }
    assert_eq!(sim.engine().counters().proxy.discarded[cdra_core::DiscardReason::OfferNotInInit], 0);
    let selecting: u64 = sim.servers().iter().map(|s| s.stats.requests_of(RequestClass::Selecting)).sum();
    assert_eq!(selecting, 5, "each SELECTING REQUEST goes to the one server it names");
    assert!(sim.servers().iter().all(|s| s.stats.other_server_id == 0));
    for &c in &clients {
        let id = sim.client(c).lease().map(|l| l.server_id);
        assert!(matches!(id, Some(x) if x == SERVER1 || x == SERVER2), "{id:?}");
    }
    sim.assert_ok();
}

/// DHCPACK / DHCPNAK: "Forward to client if client is in REQUESTING, REBOOTING, RENEWING
/// or REBINDING state, otherwise silent discard".
#[test]
fn ack_and_nak_are_forwarded_only_when_awaited() {
    let mut sim = spoof_sim(1108);
    let a = client(&mut sim, 0);
    let mac = sim.client(a).mac();
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    let ack = sim.last_reply_from(0, mac).expect("acked").to_vec();
    let got = sim.client(a).stats.received;
    sim.inject_from_server(0, sim.link_addr(0), ack);
    let nak = build(Op::BootReply, Some(MessageType::Nak), |b| {
        b.xid(sim.client(a).xid()).flags(0x8000).giaddr(sim.link_addr(0)).chaddr(1, &mac);
        b.options().option_addr(OptionCode::SERVER_ID, SERVER1)?;
        Ok(())
    });
    sim.inject_from_server(0, sim.link_addr(0), nak);
    sim.run_for(secs(1));
    assert_eq!(sim.client(a).stats.received, got, "nothing reaches the client");
    assert_eq!(sim.held(a), Some(addr(0, 100)));

    // Awaited in RENEWING: the relay lost its table; the intercepted renewal is passed on
    // (relayed, so the server's answer comes back through us) and the ACK reaches the
    // client, as the server's.
    sim.restart_engine(None);
    let acks = sim.client(a).stats.acks;
    sim.act(Action::RenewNow(a));
    sim.run_for(secs(5));
    assert_eq!(sim.server(0).stats.requests_of(RequestClass::CiaddrRelayed), 1);
    assert_eq!(sim.client(a).stats.acks, acks + 1);
    assert_eq!(sim.client(a).lease().map(|l| l.server_id), Some(SERVER1));
    assert!(sim.engine_record(a).is_some_and(|r| r.has_reply), "and cached");
    sim.assert_ok();
}

/// BOOTREQUEST: "Spoof if able, otherwise forward to server"; BOOTREPLY: "Forward to client".
#[test]
fn bootrequest_is_spoofed_if_able_and_bootreply_forwarded() {
    let mut sim = spoof_sim(1109);
    let mut cfg = ClientConfig::numbered(900, 1, IdStyle::Hardware);
    cfg.bootp = true;
    let b = sim.add_client(cfg);
    assert_eq!(boot(&mut sim, b), Some(addr(1, 100)));
    assert_eq!(sim.client(b).state(), ClientState::BootpBound);
    sim.power_off(b, false);
    assert_eq!(boot(&mut sim, b), Some(addr(1, 100)));
    assert_eq!(sim.server_received().get(Kind::BootRequest), 1, "second BOOTREQUEST answered from the table");
    assert_eq!(sim.engine().counters().proxy[ProxyEvent::BootpSpoofed], 1);
    sim.assert_ok();
}
