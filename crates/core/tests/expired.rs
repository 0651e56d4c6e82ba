//! Paper 5.7, "Possible Extensions", the first one, in every caching mode: a client whose
//! record has expired gets an OFFER of its old address (after a probe), and its REQUEST goes
//! to the server as an INIT-REBOOT, saving the server the DISCOVER. Serving the expired
//! address without the server stays off.

mod common;

use cdra_core::config::Mode;
use cdra_core::counters::ProxyEvent;
use cdra_core::table::Removal;
use cdra_core::{Destination, EngineConfig, Verdict};
use cdra_wire::{Message, MessageType};

use common::*;

fn config(mode: Mode) -> EngineConfig {
    let mut c = proxy_config();
    c.mode = mode;
    c
}

fn kind(bytes: &[u8]) -> Option<MessageType> {
    Message::new_checked(bytes).ok().and_then(|m| m.message_type())
}

/// Bind `a`, then let its server lease (3600 s) run out.
fn expired(mode: Mode) -> (Harness, Client) {
    let mut h = Harness::new(config(mode));
    let a = Client::new(1);
    a.bind(&mut h);
    h.advance(3601);
    (h, a)
}

#[test]
fn an_expired_clients_discover_gets_its_old_address_offered_after_a_probe() {
    for mode in [Mode::Proxy, Mode::Spoof] {
        let (mut h, a) = expired(mode);
        assert_eq!(h.client_sends(&a.msg(MessageType::Discover)), Verdict::AwaitingProbe, "{mode:?}");
        assert_eq!(h.probes.last().map(|p| p.target), Some(a.addr));
        h.run_timers(1);
        let (_, offer) = h.only_sent();
        let m = Message::new_checked(&offer[..]).expect("offer");
        assert_eq!((m.message_type(), m.yiaddr()), (Some(MessageType::Offer), a.addr));
        assert!(m.lease_time().is_some_and(|l| l > 0), "an OFFER with a lease");
        // The REQUEST for it goes to the server as an INIT-REBOOT: no server identifier,
        // ciaddr 0, the address requested.
        let sid = if mode == Mode::Spoof { SERVER } else { DS_ADDR };
        assert!(matches!(h.client_sends(&a.selecting(sid)), Verdict::RelayedToServers { .. }), "{mode:?}");
        let (dest, fwd) = h.only_sent();
        assert_eq!(dest, Destination::Server { addr: SERVER, relay_port: false });
        let m = Message::new_checked(&fwd[..]).expect("request");
        assert_eq!(
            (m.server_identifier(), m.ciaddr(), m.requested_ip()),
            (None, std::net::Ipv4Addr::UNSPECIFIED, Some(a.addr))
        );
        assert_eq!(h.engine.counters().proxy[ProxyEvent::ExpiredRequestForwarded], 1);
        // The server's ACK reaches the client and renews the record.
        assert_eq!(h.server_sends(SERVER, &a.reply(MessageType::Ack, true)), Verdict::DeliveredToClient);
        assert_eq!(kind(&h.only_sent().1), Some(MessageType::Ack));
        assert_eq!(
            h.client_sends_to(if mode == Mode::Spoof { SERVER } else { DS_ADDR }, &a.renew()),
            Verdict::AnsweredLocally
        );
    }
}

#[test]
fn an_expired_address_is_never_granted_without_the_server() {
    let (mut h, a) = expired(Mode::Proxy);
    h.client_sends(&a.msg(MessageType::Discover));
    h.run_timers(1);
    h.client_sends(&a.selecting(DS_ADDR));
    // The server does not answer: nothing reaches the client; its INIT-REBOOT likewise.
    assert!(h.sent().iter().all(|(d, _)| matches!(d, Destination::Server { .. })));
    assert!(matches!(h.client_sends(&a.init_reboot()), Verdict::RelayedToServers { .. }));
    assert!(h.sent().iter().all(|(d, _)| matches!(d, Destination::Server { .. })));
    assert_eq!(h.engine.counters().proxy[ProxyEvent::LocalAck], 0, "no local ACK for an expired address");
}

#[test]
fn an_expired_address_another_host_uses_is_not_offered() {
    let (mut h, a) = expired(Mode::Proxy);
    assert_eq!(h.client_sends(&a.msg(MessageType::Discover)), Verdict::AwaitingProbe);
    h.probe_answer(a.addr, Some([0x02, 0xee, 0, 0, 0, 1]));
    // The DISCOVER goes to the server instead, and the record is gone.
    let (dest, fwd) = h.only_sent();
    assert_eq!(
        (dest, kind(&fwd)),
        (Destination::Server { addr: SERVER, relay_port: false }, Some(MessageType::Discover))
    );
    assert_eq!(h.engine.counters().proxy.removed[Removal::AddressInUse], 1);
}

#[test]
fn in_a_safe_network_the_offer_is_not_probed_and_max_age_still_ends_it() {
    let mut c = config(Mode::Proxy);
    c.proxy.safe_network = true;
    let mut h = Harness::new(c);
    let a = Client::new(1);
    a.bind(&mut h);
    h.advance(3601);
    assert_eq!(h.client_sends(&a.msg(MessageType::Discover)), Verdict::AnsweredLocally);
    assert_eq!(kind(&h.only_sent().1), Some(MessageType::Offer));
    // Paper 5.6 still applies: past max_age the record is gone and the DISCOVER forwarded.
    h.advance(9 * 86_400);
    assert!(matches!(h.client_sends(&a.msg(MessageType::Discover)), Verdict::RelayedToServers { .. }));
    assert_eq!(h.engine.counters().proxy.removed[Removal::Expired], 1);
}
