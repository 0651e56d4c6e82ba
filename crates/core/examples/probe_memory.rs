//! What a pending probe costs (issue 14: size the probe bound for a storm): fills an engine
//! with N cached clients (DORA through it, as the relay sees them), then every client sends
//! an INIT-REBOOT at once (`safe_network = false`, `max_pending_probes = N`), and prints the
//! resident memory and the CPU time the N probes in flight took.
//!
//! `cargo run --release -p cdra-core --example probe_memory -- [N]` (default 100,000).
//! Resident memory is read from /proc/self/status (VmRSS), so the figure includes the
//! allocator's own overhead, as in the daemon.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use cdra_core::config::{Downstream, EngineConfig, Ipv4Net, Mode};
use cdra_core::{Engine, Ingress, Outbox, Timestamp, Verdict};
use cdra_wire::{MessageBuilder, MessageType, Op};

const DS_IF: u32 = 2;
const DS: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

fn msg(op: Op, kind: MessageType, mac: [u8; 6], f: impl FnOnce(&mut MessageBuilder<'_>)) -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let mut b = MessageBuilder::new(&mut buf, op, Some(kind)).expect("builder");
    b.xid(u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]])).chaddr(1, &mac);
    f(&mut b);
    let len = b.finish().expect("finish");
    buf.truncate(len);
    buf
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let n: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let ds = Downstream::up("eth1", DS_IF, Ipv4Net { addr: DS, prefix_len: 14 }, Some([2, 0, 0, 0, 0, 1]));
    let mut config = EngineConfig::relay(vec![SERVER], vec![ds], vec![3]);
    config.mode = Mode::Proxy;
    config.proxy.max_pending_probes = n as usize;
    config.limits.interface_rate = cdra_core::limits::Rate { per_second: 0, burst: 0 };
    config.limits.client_rate = cdra_core::limits::Rate { per_second: 0, burst: 0 };
    config.limits.pending_clients = n as usize + 1;
    let mut engine = Engine::new(config);
    let mut outbox = Outbox::new(64);
    let now = Timestamp::from_secs(1_000_000);
    let client_src = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68);
    let server_src = SocketAddrV4::new(SERVER, 67);
    let mut reboots = Vec::with_capacity(n as usize);
    for i in 0..n {
        let mac = [2, 1, (i >> 24) as u8, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        let addr = Ipv4Addr::from(u32::from(DS) + 256 + i);
        let feed = |engine: &mut Engine, outbox: &mut Outbox, data: &[u8], server: bool| {
            let (ifindex, src, dst) =
                if server { (3, server_src, DS) } else { (DS_IF, client_src, Ipv4Addr::BROADCAST) };
            let link_source = (!server).then_some(mac);
            engine.handle_datagram(now, Ingress { link_source, ifindex, src, dst, data }, outbox);
            outbox.clear();
        };
        let prl = [1u8, 3, 6, 15, 51, 54, 58, 59];
        feed(
            &mut engine,
            &mut outbox,
            &msg(Op::BootRequest, MessageType::Discover, mac, |b| {
                b.option(55, &prl).expect("opt");
            }),
            false,
        );
        feed(
            &mut engine,
            &mut outbox,
            &msg(Op::BootReply, MessageType::Offer, mac, |b| {
                b.yiaddr(addr).giaddr(DS);
                b.option(54, &SERVER.octets()).and_then(|b| b.option(51, &86400u32.to_be_bytes())).expect("opt");
            }),
            true,
        );
        feed(
            &mut engine,
            &mut outbox,
            &msg(Op::BootRequest, MessageType::Request, mac, |b| {
                b.option(54, &DS.octets()).and_then(|b| b.option(50, &addr.octets())).expect("opt");
                b.option(55, &prl).expect("opt");
            }),
            false,
        );
        feed(
            &mut engine,
            &mut outbox,
            &msg(Op::BootReply, MessageType::Ack, mac, |b| {
                b.yiaddr(addr).giaddr(DS);
                b.option(54, &SERVER.octets())
                    .and_then(|b| b.option(51, &86400u32.to_be_bytes()))
                    .and_then(|b| b.option(1, &[255, 252, 0, 0]))
                    .and_then(|b| b.option(3, &DS.octets()))
                    .and_then(|b| b.option(6, &[192, 0, 2, 53]))
                    .expect("opt");
            }),
            true,
        );
        // What dhclient sends when it reboots: option 50, a parameter request list, padded
        // to the BOOTP minimum of 300 bytes.
        let mut r = msg(Op::BootRequest, MessageType::Request, mac, |b| {
            b.option(50, &addr.octets()).and_then(|b| b.option(55, &prl)).expect("opt");
        });
        if r.len() < 300 {
            r.resize(300, 0);
        }
        reboots.push((mac, r));
    }
    assert_eq!(engine.table().len(), n as usize, "every client holds a record");
    let later = now.saturating_add(Duration::from_secs(60));
    let before = rss_kib();
    let t = Instant::now();
    let mut awaiting = 0usize;
    for (mac, r) in &reboots {
        let ingress =
            Ingress { link_source: Some(*mac), ifindex: DS_IF, src: client_src, dst: Ipv4Addr::BROADCAST, data: r };
        if engine.handle_datagram(later, ingress, &mut outbox) == Verdict::AwaitingProbe {
            awaiting += 1;
        }
        if outbox.probes_remaining() < 2 || outbox.remaining() < 2 {
            outbox.clear();
        }
    }
    let took = t.elapsed();
    let after = rss_kib();
    assert_eq!(engine.pending_probes(), awaiting);
    let per = (after.saturating_sub(before) as f64 * 1024.0) / awaiting.max(1) as f64;
    println!(
        "{awaiting} probes in flight: resident memory {before} KiB -> {after} KiB, {per:.0} bytes per pending probe; \
         {:.2} us of CPU per INIT-REBOOT that starts one",
        took.as_secs_f64() * 1e6 / awaiting.max(1) as f64
    );
    // Let them end (nobody answers): every one is ACKed.
    let end = later.saturating_add(Duration::from_secs(5));
    let mut acked = 0usize;
    while engine.poll_timeout().is_some_and(|t| t <= end) {
        engine.handle_timeout(end, &mut outbox);
        acked += outbox.iter().count();
        outbox.clear();
    }
    println!("{acked} local ACKs once the probes timed out; {} probes left", engine.pending_probes());
}
