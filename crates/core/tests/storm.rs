//! The storm after a power failure (paper 3.4; issue 14): every cached client sends an
//! INIT-REBOOT at once while the server is down, with the precautions of paper 3.2 on
//! (`safe_network = false`). Each local ACK waits for a probe; none is given unprobed;
//! nothing goes to a server known to be down; a squatter still gets its client a NAK.
//! (How fast a real storm is served is measured by `bench/storm`, not here.)

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use cdra_core::config::{Downstream, EngineConfig, IcmpProbe, Ipv4Net, Mode};
use cdra_core::counters::ProxyEvent;
use cdra_core::{Destination, DropReason, Engine, Ingress, Outbox, ProbeAnswer, ProbeRequest, Timestamp, Verdict};
use cdra_wire::{Message, MessageBuilder, MessageType, Op};

const DS_IF: u32 = 2;
const US_IF: u32 = 3;
const DS: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const DS_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const SQUATTER: [u8; 6] = [2, 0x5a, 0, 0, 0, 1];

fn config(mac: Option<[u8; 6]>) -> EngineConfig {
    let ds = Downstream::up("rd0", DS_IF, Ipv4Net { addr: DS, prefix_len: 14 }, mac);
    let mut c = EngineConfig::relay(vec![SERVER], vec![ds], vec![US_IF]);
    c.upstream_addresses = vec![Ipv4Addr::new(10, 200, 0, 2)];
    c.mode = Mode::Proxy;
    c.server_timeout = Duration::from_secs(10);
    c
}

fn mac_of(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [2, 0xcd, b[0], b[1], b[2], b[3]]
}

fn addr_of(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 64, 1, 0)) + i)
}

fn msg(op: Op, kind: MessageType, mac: [u8; 6], f: impl FnOnce(&mut MessageBuilder<'_>)) -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let mut b = MessageBuilder::new(&mut buf, op, Some(kind)).expect("builder");
    b.xid(u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]])).chaddr(1, &mac);
    f(&mut b);
    let len = b.finish().expect("finish");
    buf.truncate(len);
    buf
}

fn init_reboot(i: u32) -> Vec<u8> {
    msg(Op::BootRequest, MessageType::Request, mac_of(i), |b| {
        b.option(50, &addr_of(i).octets()).and_then(|b| b.option(55, &[1, 3, 6])).expect("opt");
    })
}

/// An engine in front of a server, `n` clients with a lease through it, and what it sent.
struct Storm {
    engine: Engine,
    outbox: Outbox,
    now: Timestamp,
    probes: Vec<ProbeRequest>,
    sent: Vec<(Destination, Vec<u8>)>,
}

impl Storm {
    fn new(config: EngineConfig, n: u32) -> Self {
        let mut s = Storm {
            engine: Engine::new(config),
            outbox: Outbox::new(64),
            now: Timestamp::from_secs(1_000_000),
            probes: Vec::new(),
            sent: Vec::new(),
        };
        for i in 0..n {
            let (mac, addr) = (mac_of(i), addr_of(i));
            s.client(
                mac,
                &msg(Op::BootRequest, MessageType::Discover, mac, |b| {
                    b.option(55, &[1, 3, 6]).expect("opt");
                }),
            );
            s.server(&msg(Op::BootReply, MessageType::Offer, mac, |b| {
                b.yiaddr(addr).giaddr(DS);
                b.option(54, &SERVER.octets()).and_then(|b| b.option(51, &86400u32.to_be_bytes())).expect("opt");
            }));
            s.client(
                mac,
                &msg(Op::BootRequest, MessageType::Request, mac, |b| {
                    b.option(54, &DS.octets())
                        .and_then(|b| b.option(50, &addr.octets()))
                        .and_then(|b| b.option(55, &[1, 3, 6]))
                        .expect("opt");
                }),
            );
            s.server(&msg(Op::BootReply, MessageType::Ack, mac, |b| {
                b.yiaddr(addr).giaddr(DS);
                b.option(54, &SERVER.octets())
                    .and_then(|b| b.option(51, &86400u32.to_be_bytes()))
                    .and_then(|b| b.option(1, &[255, 252, 0, 0]))
                    .and_then(|b| b.option(3, &DS.octets()))
                    .expect("opt");
            }));
            // New clients are within [limits] interface_rate (1,000 requests/s).
            s.now = s.now.saturating_add(Duration::from_millis(3));
        }
        assert_eq!(s.engine.table().len(), n as usize);
        s.sent.clear();
        s.probes.clear();
        s
    }

    fn collect(&mut self) {
        self.probes.extend_from_slice(self.outbox.probes());
        self.sent.extend(self.outbox.iter().map(|o| (o.destination, o.payload().to_vec())));
        self.outbox.clear();
    }

    fn client(&mut self, mac: [u8; 6], data: &[u8]) -> Verdict {
        let src = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68);
        let ingress = Ingress { ifindex: DS_IF, link_source: Some(mac), src, dst: Ipv4Addr::BROADCAST, data };
        let v = self.engine.handle_datagram(self.now, ingress, &mut self.outbox);
        self.collect();
        v
    }

    fn server(&mut self, data: &[u8]) -> Verdict {
        let src = SocketAddrV4::new(SERVER, 67);
        let ingress = Ingress { ifindex: US_IF, link_source: None, src, dst: DS, data };
        let v = self.engine.handle_datagram(self.now, ingress, &mut self.outbox);
        self.collect();
        v
    }

    /// The server stops answering: three requests go unanswered for longer than
    /// `server_timeout` (servers.rs), after which it is known to be down.
    fn server_dies(&mut self) {
        for i in 0..3 {
            let mac = [2, 0xee, 0, 0, 0, i];
            self.client(mac, &msg(Op::BootRequest, MessageType::Discover, mac, |_| {}));
        }
        self.advance(Duration::from_secs(11));
        assert!(!self.engine.servers().any_up(self.now), "the server is known to be down");
        self.sent.clear();
    }

    fn advance(&mut self, d: Duration) {
        self.now = self.now.saturating_add(d);
    }

    /// Let `d` pass, firing timers as they fall due (every 10 ms, as the daemon's loop does
    /// at least).
    fn pass(&mut self, d: Duration) {
        let end = self.now.saturating_add(d);
        while self.now < end {
            self.now = self.now.saturating_add(Duration::from_millis(10)).min(end);
            self.run_timers();
        }
    }

    /// Fire everything due by now.
    fn run_timers(&mut self) {
        while self.engine.poll_timeout().is_some_and(|t| t <= self.now) {
            self.engine.handle_timeout(self.now, &mut self.outbox);
            self.collect();
        }
    }

    fn answer(&mut self, answer: ProbeAnswer) {
        self.engine.handle_probe_answer(self.now, answer, &mut self.outbox);
        self.collect();
    }

    fn to_server(&self) -> usize {
        self.sent.iter().filter(|(d, _)| matches!(d, Destination::Server { .. })).count()
    }

    fn count(&self, kind: MessageType) -> usize {
        self.sent
            .iter()
            .filter(|(_, b)| Message::new_checked(&b[..]).ok().and_then(|m| m.message_type()) == Some(kind))
            .count()
    }

    fn event(&self, e: ProxyEvent) -> u64 {
        self.engine.counters().proxy[e]
    }

    fn dropped(&self, reason: DropReason) -> u64 {
        self.engine.counters().interfaces[0].dropped[reason.index()]
    }
}

#[test]
fn twenty_thousand_init_reboots_at_once_with_the_server_down_are_all_acked_once_their_probes_time_out() {
    let n = 20_000;
    let mut s = Storm::new(config(Some(DS_MAC)), n);
    s.server_dies();
    for i in 0..n {
        assert_eq!(s.client(mac_of(i), &init_reboot(i)), Verdict::AwaitingProbe, "client {i}");
    }
    assert_eq!(s.engine.pending_probes(), n as usize);
    assert_eq!(s.engine.pending_probes_peak(), n as usize);
    assert!(s.sent.is_empty(), "nothing is answered unprobed");
    assert_eq!(s.probes.len(), n as usize);
    assert!(s.probes.iter().all(|p| p.arp() && !p.icmp), "ARP on an Ethernet link, no ICMP echo");
    s.pass(Duration::from_millis(499));
    assert!(s.sent.is_empty(), "no ACK before the probe timeout");
    assert_eq!(s.probes.len(), 2 * n as usize, "each probe's second transmission at half its timeout");
    assert!(s.probes[..n as usize].iter().zip(&s.probes[n as usize..]).all(|(a, b)| a == b), "the same probe again");
    s.pass(Duration::from_millis(1));
    assert_eq!(s.count(MessageType::Ack), n as usize);
    assert_eq!(s.to_server(), 0, "nothing went to the dead server");
    assert_eq!(s.engine.pending_probes(), 0);
    assert_eq!(s.event(ProxyEvent::ProbeTimedOut), u64::from(n));
    assert_eq!(s.event(ProxyEvent::ProbeRefusedFull), 0);
}

#[test]
fn with_no_probe_slot_free_a_request_is_dropped_while_the_server_is_down_and_forwarded_while_it_answers() {
    let mut c = config(Some(DS_MAC));
    c.proxy.max_pending_probes = 100;
    let mut s = Storm::new(c, 300);
    s.server_dies();
    for i in 0..150 {
        let want = if i < 100 { Verdict::AwaitingProbe } else { Verdict::Dropped(DropReason::UnprobedNoServer) };
        assert_eq!(s.client(mac_of(i), &init_reboot(i)), want, "client {i}");
    }
    assert_eq!(s.to_server(), 0, "never forwarded to a server known to be down");
    assert_eq!((s.event(ProxyEvent::ProbeRefusedFull), s.dropped(DropReason::UnprobedNoServer)), (50, 50));
    // Their retransmissions, after the first probes ended, are probed and answered.
    s.pass(Duration::from_millis(500));
    assert_eq!(s.count(MessageType::Ack), 100);
    for i in 100..150 {
        assert_eq!(s.client(mac_of(i), &init_reboot(i)), Verdict::AwaitingProbe, "client {i} again");
    }
    s.pass(Duration::from_millis(500));
    assert_eq!(s.count(MessageType::Ack), 150);
    // While a server answers (any reply makes it up again), no slot means the server answers.
    let ack = msg(Op::BootReply, MessageType::Ack, mac_of(299), |b| {
        b.yiaddr(addr_of(299)).giaddr(DS);
        b.option(54, &SERVER.octets()).and_then(|b| b.option(51, &86400u32.to_be_bytes())).expect("opt");
    });
    s.client(mac_of(299), &msg(Op::BootRequest, MessageType::Discover, mac_of(299), |_| {}));
    s.server(&ack);
    assert!(s.engine.servers().any_up(s.now));
    s.sent.clear();
    for i in 150..250 {
        assert_eq!(s.client(mac_of(i), &init_reboot(i)), Verdict::AwaitingProbe);
    }
    assert_eq!(s.client(mac_of(250), &init_reboot(250)), Verdict::RelayedToServers { copies: 1 });
    assert_eq!(s.to_server(), 1);
}

#[test]
fn in_a_storm_a_squatter_answering_arp_still_gets_its_client_a_nak() {
    let n = 2_000;
    let mut s = Storm::new(config(Some(DS_MAC)), n);
    s.server_dies();
    for i in 0..n {
        s.client(mac_of(i), &init_reboot(i));
    }
    // Every 10th address has a squatter; some clients answer for themselves (the client's
    // own MAC is not a conflict).
    for i in (0..n).step_by(10) {
        s.answer(ProbeAnswer::Arp { ifindex: DS_IF, address: addr_of(i), mac: SQUATTER });
        s.answer(ProbeAnswer::Arp { ifindex: DS_IF, address: addr_of(i + 1), mac: mac_of(i + 1) });
    }
    assert_eq!(s.count(MessageType::Nak), (n / 10) as usize, "decided at once");
    s.pass(Duration::from_millis(500));
    assert_eq!(s.count(MessageType::Ack), (n - n / 10) as usize);
    for i in (0..n).step_by(10) {
        let acked_squatted = s.sent.iter().any(|(d, b)| {
            matches!(d, Destination::ClientLink { dst, .. } if *dst == addr_of(i))
                && Message::new_checked(&b[..]).ok().and_then(|m| m.message_type()) == Some(MessageType::Ack)
        });
        assert!(!acked_squatted, "no ACK for squatted {}", addr_of(i));
    }
    let cached = s.engine.table().len() - s.engine.table().pending_len();
    assert_eq!(cached, (n - n / 10) as usize, "paper 3.2: the squatted records are removed");
}

#[test]
fn icmp_goes_only_where_arp_is_impossible_unless_asked_for() {
    for (mac, icmp_probe, want_arp, want_icmp) in [
        (Some(DS_MAC), IcmpProbe::Auto, true, false),
        (Some(DS_MAC), IcmpProbe::Always, true, true),
        (None, IcmpProbe::Auto, false, true),
        (None, IcmpProbe::Always, false, true),
    ] {
        let mut c = config(mac);
        c.proxy.icmp_probe = icmp_probe;
        let mut s = Storm::new(c, 1);
        assert_eq!(s.client(mac_of(0), &init_reboot(0)), Verdict::AwaitingProbe);
        let p = s.probes[0];
        assert_eq!((p.arp(), p.icmp), (want_arp, want_icmp), "{mac:?} {icmp_probe:?}");
        assert_eq!((p.target, p.sender_ip, p.ifindex), (addr_of(0), DS, DS_IF));
    }
}

#[test]
fn a_probe_whose_packets_were_not_sent_never_leads_to_an_ack() {
    let mut s = Storm::new(config(Some(DS_MAC)), 3);
    // The server answers: the request goes to it instead.
    assert_eq!(s.client(mac_of(0), &init_reboot(0)), Verdict::AwaitingProbe);
    let probe = s.probes[0];
    s.engine.handle_probe_unsent(s.now, &probe);
    s.run_timers();
    assert_eq!(s.count(MessageType::Ack), 0);
    assert_eq!(s.to_server(), 1, "forwarded, as with no probe slot free");
    assert_eq!(s.event(ProxyEvent::ProbeUnsent), 1);
    // A report about an earlier probe of the same address (another echo) changes nothing.
    s.sent.clear();
    assert_eq!(s.client(mac_of(1), &init_reboot(1)), Verdict::AwaitingProbe);
    let stale = ProbeRequest { echo: cdra_core::EchoId { ident: 1, seq: 2 }, ..s.probes[1] };
    s.engine.handle_probe_unsent(s.now, &stale);
    // Nor does a refusal of its second transmission (the first went out).
    s.pass(Duration::from_millis(260));
    assert_eq!(s.probes.len(), 3, "the second transmission");
    let second = s.probes[2];
    s.engine.handle_probe_unsent(s.now, &second);
    s.pass(Duration::from_millis(240));
    assert_eq!(s.count(MessageType::Ack), 1, "its own probe ran and timed out");
    // The server is down: nothing is sent at all; the client asks again.
    s.server_dies();
    assert_eq!(s.client(mac_of(2), &init_reboot(2)), Verdict::AwaitingProbe);
    let probe = *s.probes.last().expect("probe");
    s.engine.handle_probe_unsent(s.now, &probe);
    s.run_timers();
    assert!(s.sent.is_empty());
    assert_eq!(s.dropped(DropReason::UnprobedNoServer), 1);
    assert_eq!(s.client(mac_of(2), &init_reboot(2)), Verdict::AwaitingProbe, "its retransmission is probed");
}

#[test]
fn answers_that_may_have_been_lost_make_probes_go_again_before_any_ack() {
    let mut s = Storm::new(config(Some(DS_MAC)), 2);
    s.server_dies();
    s.client(mac_of(0), &init_reboot(0));
    s.client(mac_of(1), &init_reboot(1));
    let first: Vec<ProbeRequest> = s.probes.drain(..).collect();
    // The probe sockets' queues overflowed while they ran.
    s.engine.handle_probe_answers_lost(s.now);
    s.pass(Duration::from_millis(500));
    assert_eq!(s.count(MessageType::Ack), 0, "no ACK on what may not have been heard");
    let again: Vec<ProbeRequest> =
        s.probes.iter().filter(|p| !first.iter().any(|f| f.echo == p.echo)).copied().collect();
    assert_eq!(again.len(), 2, "both probed again, as new probes: {:?}", s.probes);
    assert!(again.iter().zip(&first).all(|(a, b)| a.target == b.target));
    assert_eq!(s.event(ProxyEvent::ProbeRepeated), 2);
    // This time a squatter is heard for one of them; the other finds nobody.
    s.answer(ProbeAnswer::Arp { ifindex: DS_IF, address: addr_of(0), mac: SQUATTER });
    s.pass(Duration::from_millis(500));
    assert_eq!((s.count(MessageType::Nak), s.count(MessageType::Ack)), (1, 1));
    // Lost again and again: after MAX_REPEATS it counts as not made (no ACK; the client
    // retransmits).
    s.sent.clear();
    s.advance(Duration::from_secs(4));
    s.client(mac_of(1), &init_reboot(1));
    for _ in 0..=cdra_core::proxy::probes::MAX_REPEATS {
        s.engine.handle_probe_answers_lost(s.now);
        s.pass(Duration::from_millis(500));
    }
    assert_eq!(s.count(MessageType::Ack), 0);
    assert_eq!(s.dropped(DropReason::UnprobedNoServer), 1);
    assert_eq!(
        s.client(mac_of(1), &init_reboot(1)),
        Verdict::AwaitingProbe,
        "nothing pending: a retransmission starts a new probe"
    );
}
