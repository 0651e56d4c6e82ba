//! Proxy mode, paper Table 1, one test per row: what the proxy does with each message.
//! Each test runs the real engine between model clients and a model server and checks
//! both sides (what the server saw, what the client got) plus the invariants.

mod common;

use cdra_core::Mode;
use cdra_sim::msg::build;
use cdra_sim::server::{LeaseState, RequestClass};
use cdra_sim::{secs, Action, ClientConfig, ClientState, IdStyle, Kind, Sim, SimConfig, SERVER1, SERVER2};
use cdra_wire::options::OptionCode;
use cdra_wire::{MessageType, Op};
use common::{addr, boot, client, proxy_sim};

fn discovers(sim: &Sim) -> u64 {
    sim.server_received().get(Kind::Discover)
}

/// DHCPDISCOVER: "Proxy if able, otherwise forward to server".
#[test]
fn discover_is_proxied_if_able_else_forwarded() {
    let mut sim = proxy_sim(101, false);
    let a = client(&mut sim, 0);
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    assert_eq!(discovers(&sim), 1, "first DISCOVER: no record, forwarded");
    // Paper 4.1: the client sees the proxy as its server.
    assert_eq!(sim.client(a).lease().map(|l| l.server_id), Some(sim.link_addr(0)));

    // The client comes back without its lease file: DISCOVER, answered from the table.
    sim.power_off(a, false);
    sim.forget_lease(a);
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    assert_eq!(discovers(&sim), 1, "known client's DISCOVER must not reach the server");
    assert_eq!(sim.server(0).stats.requests_of(RequestClass::Selecting), 1, "nor its REQUEST");
    assert_eq!(sim.stats().local_answers.get(Kind::Offer), 1);
    assert_eq!(sim.stats().local_answers.get(Kind::Ack), 1);
    assert_eq!(sim.client(a).stats.received.get(Kind::Offer), 2);

    // An unknown client: forwarded.
    let b = client(&mut sim, 0);
    assert_eq!(boot(&mut sim, b), Some(addr(0, 101)));
    assert_eq!(discovers(&sim), 2);
    sim.assert_ok();
}

/// DHCPREQUEST: "Proxy if able, otherwise forward to server" — SELECTING (with the real
/// server id put back, paper 5.1), INIT-REBOOT and RENEW answered locally, and forwarded
/// when the proxy has no record.
#[test]
fn request_is_proxied_if_able_else_forwarded() {
    let mut sim = proxy_sim(102, false);
    let a = client(&mut sim, 0);
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    let srv = &sim.server(0).stats;
    assert_eq!(srv.requests_of(RequestClass::Selecting), 1);
    assert_eq!(srv.other_server_id, 0, "the forwarded SELECTING REQUEST names the server, not the proxy");
    let sel = sim.server(0).log.iter().rev().find(|(_, s)| s.kind == Kind::Request).map(|(_, s)| *s).expect("logged");
    assert_eq!(sel.server_id, Some(SERVER1));

    // INIT-REBOOT: answered locally, after a probe (paper 3.2).
    sim.power_off(a, false);
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    assert_eq!(sim.server(0).stats.requests_of(RequestClass::InitReboot), 0, "reboot must not reach the server");
    assert_eq!(sim.probes_for(addr(0, 100)), 1, "a local ACK to INIT-REBOOT is preceded by a probe");
    // The local lease is what is left of the server's (paper 5.1).
    let server_end = sim.server(0).lease(addr(0, 100)).expect("lease").end;
    let client_end = sim.client(a).lease().expect("lease").end();
    assert!(client_end <= server_end, "client lease {client_end} beyond server lease {server_end}");

    // RENEW before the server lease's T1: answered locally, no precaution (paper 3.2).
    let acks = sim.client(a).stats.acks;
    sim.act(Action::RenewNow(a));
    sim.run_for(secs(5));
    assert_eq!(sim.client(a).stats.acks, acks + 1);
    assert_eq!(
        sim.server(0).stats.requests_of(RequestClass::CiaddrRelayed),
        0,
        "early renewal must not reach the server"
    );
    assert_eq!(sim.probes_for(addr(0, 100)), 1, "no probe for a RENEW");

    // Not able: the proxy restarted without its table: the INIT-REBOOT goes to the server.
    sim.restart_engine(None);
    sim.power_off(a, false);
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    assert_eq!(sim.server(0).stats.requests_of(RequestClass::InitReboot), 1);
    assert_eq!(sim.client(a).lease().map(|l| l.server_id), Some(sim.link_addr(0)), "forwarded ACK names the proxy");
    sim.assert_ok();
}

/// DHCPINFORM: "Forward to Server".
#[test]
fn inform_is_forwarded() {
    let mut sim = proxy_sim(103, false);
    let a = client(&mut sim, 1);
    assert_eq!(boot(&mut sim, a), Some(addr(1, 100)));
    sim.act(Action::Inform(a));
    sim.run_for(secs(5));
    assert_eq!(sim.server_received().get(Kind::Inform), 1);
    assert_eq!(sim.client(a).stats.inform_acks, 1, "the server's ACK reaches the client");
    assert_eq!(sim.stats().local_answers.total(), 0);
    sim.assert_ok();
}

/// DHCPDECLINE: "Forward to Server, Remove client from DB" (option 54 back to the server's).
#[test]
fn decline_is_forwarded_and_the_record_removed() {
    let mut sim = proxy_sim(104, false);
    let a = client(&mut sim, 0);
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    assert!(sim.engine_record(a).is_some());
    sim.act(Action::Decline(a));
    sim.run_for(secs(1));
    let srv = &sim.server(0).stats;
    assert_eq!(srv.received.get(Kind::Decline), 1);
    assert_eq!(
        srv.declines_applied, 1,
        "the server ignores a DECLINE that names another server (option 54 not rewritten?)"
    );
    assert_eq!(srv.other_server_id, 0);
    assert!(sim.engine_record(a).is_none(), "record removed");
    // RFC 2131 3.1: the client starts over after 10 s: forwarded, and gets another address.
    sim.run_for(secs(15));
    assert_eq!(discovers(&sim), 2);
    assert_eq!(sim.held(a), Some(addr(0, 101)));
    sim.assert_ok();
}

/// DHCPRELEASE: "Forward to server, Remove client from DB" (option 54 back to the server's).
#[test]
fn release_is_forwarded_and_the_record_removed() {
    let mut sim = proxy_sim(105, false);
    let a = client(&mut sim, 0);
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    sim.power_off(a, true);
    sim.run_for(secs(1));
    let srv = &sim.server(0).stats;
    assert_eq!(srv.received.get(Kind::Release), 1);
    assert_eq!(
        srv.releases_applied, 1,
        "the server ignores a RELEASE that names another server (option 54 not rewritten?)"
    );
    assert_eq!(sim.server(0).lease(addr(0, 100)).map(|l| l.state), Some(LeaseState::Released));
    assert!(sim.engine_record(a).is_none(), "record removed");
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    assert_eq!(discovers(&sim), 2, "no record: the next DISCOVER is forwarded");
    sim.assert_ok();
}

/// DHCPOFFER: "Forward to client if client is in INIT state, otherwise silent discard":
/// with two servers the client sees exactly one OFFER per DISCOVER (paper 5.2), and the
/// SELECTING REQUEST goes to the offering server only, naming it.
#[test]
fn offer_is_forwarded_only_in_init() {
    let mut cfg = SimConfig::small(106, Mode::Proxy).with_second_server();
    for s in &mut cfg.servers {
        s.lease_secs = 86_400;
    }
    let mut sim = Sim::new(cfg);
    let clients: Vec<usize> = (0..5).map(|i| client(&mut sim, i % 2)).collect();
    for &c in &clients {
        sim.power_on(c);
    }
    sim.run_for(secs(10));
    let offers_sent: u64 = sim.servers().iter().map(|s| s.stats.sent.get(Kind::Offer)).sum();
    assert_eq!(offers_sent, 10, "both servers offered to each of 5 clients");
    assert_eq!((sim.server(1).addr(), sim.server(1).stats.received.get(Kind::Discover)), (SERVER2, 5));
    for &c in &clients {
        let st = &sim.client(c).stats;
        assert!(sim.held(c).is_some());
        assert_eq!(st.received.get(Kind::Offer), 1, "client#{c} must see exactly one OFFER");
        assert_eq!(st.extra_offers, 0);
    }
    assert_eq!(sim.engine().counters().proxy.discarded[cdra_core::DiscardReason::OfferNotInInit], 5);
    let selecting: u64 = sim.servers().iter().map(|s| s.stats.requests_of(RequestClass::Selecting)).sum();
    assert_eq!(selecting, 5, "each SELECTING REQUEST goes to one server");
    assert!(sim.servers().iter().all(|s| s.stats.other_server_id == 0), "and names that server");
    // Server 0 answers first here: every lease is its.
    assert_eq!(sim.server(1).stats.requests_of(RequestClass::Selecting), 0);

    // A late OFFER (replayed) once the client is bound: discarded.
    let mac = sim.client(clients[0]).mac();
    let offer = sim.last_reply_from(1, mac).expect("server 2 offered").to_vec();
    sim.inject_from_server(1, sim.link_addr(0), offer);
    sim.run_for(secs(1));
    assert_eq!(sim.client(clients[0]).stats.received.get(Kind::Offer), 1);
    assert_eq!(sim.engine().counters().proxy.discarded[cdra_core::DiscardReason::OfferNotInInit], 6);
    sim.assert_ok();
}

/// DHCPACK / DHCPNAK: "Forward to client if client is in REQUESTING, REBOOTING, RENEWING
/// or REBINDING state, otherwise silent discard".
#[test]
fn ack_and_nak_are_forwarded_only_when_awaited() {
    let mut sim = proxy_sim(107, false);
    let a = client(&mut sim, 0);
    let mac = sim.client(a).mac();
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    assert_eq!(sim.engine_record(a).map(|r| r.state), Some("bound"));

    // Not awaited: a replayed ACK and a NAK for a bound client are discarded.
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
    assert_eq!(sim.engine().counters().proxy.discarded[cdra_core::DiscardReason::AckNotAwaited], 1);
    assert_eq!(sim.engine().counters().proxy.discarded[cdra_core::DiscardReason::NakNotAwaited], 1);
    assert_eq!(sim.held(a), Some(addr(0, 100)));

    // Awaited in RENEWING: the proxy lost its table; the renewal is forwarded, the ACK
    // passed on.
    sim.restart_engine(None);
    let acks = sim.client(a).stats.acks;
    sim.act(Action::RenewNow(a));
    sim.run_for(secs(5));
    assert_eq!(sim.server(0).stats.requests_of(RequestClass::CiaddrRelayed), 1);
    assert_eq!(sim.client(a).stats.acks, acks + 1);

    // Awaited in REBOOTING: NAK passed on (the client moved; no record; the server NAKs
    // the address on the wrong subnet), then the client is served on its new subnet.
    sim.restart_engine(None);
    sim.power_off(a, false);
    sim.move_client(a, 1);
    assert_eq!(boot(&mut sim, a), Some(addr(1, 100)));
    assert_eq!(sim.client(a).stats.naks, 1);
    assert_eq!(sim.stats().forwarded_replies.get(Kind::Nak), 1);
    sim.assert_ok();
}

/// BOOTREQUEST: "Spoof if able, otherwise forward to server"; BOOTREPLY: "Forward to client".
#[test]
fn bootrequest_is_spoofed_if_able_and_bootreply_forwarded() {
    let mut sim = proxy_sim(108, false);
    let mut cfg = ClientConfig::numbered(900, 1, IdStyle::Hardware);
    cfg.bootp = true;
    let b = sim.add_client(cfg);
    assert_eq!(boot(&mut sim, b), Some(addr(1, 100)));
    assert_eq!(sim.client(b).state(), ClientState::BootpBound);
    assert_eq!(sim.server_received().get(Kind::BootRequest), 1);
    assert_eq!(sim.stats().forwarded_replies.get(Kind::BootReply), 1);

    sim.power_off(b, false);
    assert_eq!(boot(&mut sim, b), Some(addr(1, 100)));
    assert_eq!(sim.server_received().get(Kind::BootRequest), 1, "second BOOTREQUEST spoofed from the cached BOOTREPLY");
    assert_eq!(sim.client(b).stats.bootreplies, 2);
    assert_eq!(sim.stats().local_answers.get(Kind::BootReply), 1);
    assert_eq!(sim.engine().counters().proxy[cdra_core::counters::ProxyEvent::BootpSpoofed], 1);
    sim.assert_ok();
}
