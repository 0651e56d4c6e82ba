//! Micro-benchmark: one core decision on a cache hit (a RENEW answered from the table:
//! parse, look up, patch the cached ACK into the outbox). Target: under 1 us.
//! `cargo bench -p cdra-core --bench cache_hit`.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};

use cdra_core::config::{Downstream, EngineConfig, Ipv4Net, Mode};
use cdra_core::{Engine, Ingress, Outbox, Timestamp, Verdict};
use cdra_wire::{MessageBuilder, MessageType, Op};
use criterion::{criterion_group, criterion_main, Criterion};

const DS_IF: u32 = 2;
const DS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
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

fn bench(c: &mut Criterion) {
    let ds = Downstream::up("eth1", DS_IF, Ipv4Net { addr: DS, prefix_len: 16 }, Some([2, 0, 0, 0, 0, 1]));
    let mut config = EngineConfig::relay(vec![SERVER], vec![ds], vec![3]);
    config.mode = Mode::Proxy;
    config.proxy.safe_network = true;
    // 10,000 new clients at one instant would exceed the interface's rate limit for clients
    // without a server-answered record ([limits] interface_rate, burst 5000: only 2,500 of
    // them would get a lease); the cache hits measured are not subject to it.
    config.limits.interface_rate = cdra_core::limits::Rate::UNLIMITED;
    let mut engine = Engine::new(config);
    let mut outbox = Outbox::new(64);
    let now = Timestamp::from_secs(1_000_000);
    let client_src = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68);
    let server_src = SocketAddrV4::new(SERVER, 67);
    // 10,000 clients with a lease each, relayed through the engine like real ones.
    let n = 10_000u32;
    let mut renewals = Vec::new();
    for i in 0..n {
        let mac = [2, 1, 0, 0, (i >> 8) as u8, i as u8];
        let addr = Ipv4Addr::from(u32::from(DS) + 10 + i);
        fn ingress(data: &[u8], src: SocketAddrV4, dst: Ipv4Addr) -> Ingress<'_> {
            let ifindex = if src.ip().is_unspecified() { DS_IF } else { 3 };
            Ingress { link_source: None, ifindex, src, dst, data }
        }
        let discover = msg(Op::BootRequest, MessageType::Discover, mac, |_| {});
        engine.handle_datagram(now, ingress(&discover, client_src, Ipv4Addr::BROADCAST), &mut outbox);
        let offer = msg(Op::BootReply, MessageType::Offer, mac, |b| {
            b.yiaddr(addr).giaddr(DS);
            b.option(54, &SERVER.octets()).and_then(|b| b.option(51, &86400u32.to_be_bytes())).expect("opt");
        });
        engine.handle_datagram(now, ingress(&offer, server_src, DS), &mut outbox);
        let request = msg(Op::BootRequest, MessageType::Request, mac, |b| {
            b.option(54, &DS.octets()).and_then(|b| b.option(50, &addr.octets())).expect("opt");
        });
        engine.handle_datagram(now, ingress(&request, client_src, Ipv4Addr::BROADCAST), &mut outbox);
        let ack = msg(Op::BootReply, MessageType::Ack, mac, |b| {
            b.yiaddr(addr).giaddr(DS);
            b.option(54, &SERVER.octets())
                .and_then(|b| b.option(51, &86400u32.to_be_bytes()))
                .and_then(|b| b.option(1, &[255, 255, 0, 0]))
                .and_then(|b| b.option(3, &DS.octets()))
                .and_then(|b| b.option(6, &[192, 0, 2, 53]))
                .expect("opt");
        });
        engine.handle_datagram(now, ingress(&ack, server_src, DS), &mut outbox);
        outbox.clear();
        renewals.push(msg(Op::BootRequest, MessageType::Request, mac, |b| {
            b.ciaddr(addr);
        }));
    }
    assert_eq!(engine.table().len(), n as usize);
    // The request is taken from a receive buffer the kernel has just written (hot in
    // cache, as in the daemon); the record and its cached ACK are wherever the table put
    // them among 10,000 clients.
    let mut i = 0usize;
    // The clock moves 1 ms a request, so each client (asked every 10,000 requests) stays
    // within its rate limit ([limits] client_rate) and every request takes the hit path.
    let mut now = now;
    c.bench_function("cache-hit RENEW decision (10k clients)", |b| {
        b.iter_batched_ref(
            || {
                i = (i + 7919) % renewals.len();
                renewals[i].clone()
            },
            |rx| {
                outbox.clear();
                now = now.saturating_add(std::time::Duration::from_millis(1));
                let ingress = Ingress { link_source: None, ifindex: DS_IF, src: client_src, dst: DS, data: &rx[..] };
                let v = engine.handle_datagram(now, black_box(ingress), &mut outbox);
                debug_assert_eq!(v, Verdict::AnsweredLocally);
                black_box(v)
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
