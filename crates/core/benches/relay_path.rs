//! Micro-benchmark: the core's work for one relayed DORA in relay mode (issue 14, part 2):
//! DISCOVER forwarded, OFFER delivered, REQUEST forwarded, ACK delivered, the timers fired as
//! the daemon fires them, no I/O. It is the part of cdra's CPU that the null relay
//! (`cdra-loadgen null-relay`) does not have, measured without the kernel's noise.
//!
//! Steady state as in `bench/floor` at 4,000 DORA/s: the virtual clock moves 250 us a DORA,
//! each DORA is a client not seen for the last 240,000 (fresh MACs and xids), so the
//! outstanding-request table stays at its bound (`[limits] transactions`, 65,536) and every
//! request filed pushes out the oldest. Messages are shaped like the load generator's and
//! Kea's (option 55, 57, 61 from the client; 1, 3, 6, 51, 54, 58, 59 from the server).
//! `cargo bench -p cdra-core --bench relay_path`.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use cdra_core::config::{Downstream, EngineConfig, Ipv4Net};
use cdra_core::{Engine, Ingress, Outbox, Timestamp, Verdict};
use cdra_wire::{MessageBuilder, MessageType, Op};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const DS_IF: u32 = 2;
const US_IF: u32 = 3;
const DS: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const CLIENTS: u32 = 240_000;

fn build(op: Op, kind: MessageType, f: impl FnOnce(&mut MessageBuilder<'_>)) -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let mut b = MessageBuilder::new(&mut buf, op, Some(kind)).expect("builder");
    b.xid(1).chaddr(1, &[2, 0, 0, 0, 0, 0]);
    f(&mut b);
    let len = b.finish().expect("finish");
    buf.truncate(len);
    buf
}

/// The four messages of one DORA, rewritten in place for each client (xid, chaddr, the
/// client id and the address): a few stores, next to the engine's work.
struct Dora {
    discover: Vec<u8>,
    offer: Vec<u8>,
    request: Vec<u8>,
    ack: Vec<u8>,
    /// Where option 61's MAC is in the DISCOVER and the REQUEST, and option 50's address.
    client_id_at: [usize; 2],
    requested_at: usize,
}

const XID: usize = 4;
const YIADDR: usize = 16;
const CHADDR: usize = 28;

fn find(msg: &[u8], needle: &[u8]) -> usize {
    msg.windows(needle.len()).position(|w| w == needle).expect("marker")
}

impl Dora {
    fn new() -> Self {
        let params = [1u8, 3, 6, 15, 28, 51, 54, 58, 59];
        let client_id = [1u8, 2, 0, 0, 0, 0, 0];
        let discover = build(Op::BootRequest, MessageType::Discover, |b| {
            b.option(55, &params)
                .and_then(|b| b.option(57, &1500u16.to_be_bytes()))
                .and_then(|b| b.option(61, &client_id))
                .expect("opt");
        });
        let offer = build(Op::BootReply, MessageType::Offer, |b| {
            b.yiaddr(Ipv4Addr::new(10, 64, 1, 1)).giaddr(DS);
            b.option(1, &[255, 252, 0, 0])
                .and_then(|b| b.option(3, &DS.octets()))
                .and_then(|b| b.option(6, &[10, 200, 0, 53]))
                .and_then(|b| b.option(51, &3600u32.to_be_bytes()))
                .and_then(|b| b.option(54, &SERVER.octets()))
                .and_then(|b| b.option(58, &1800u32.to_be_bytes()))
                .and_then(|b| b.option(59, &3150u32.to_be_bytes()))
                .expect("opt");
        });
        let request = build(Op::BootRequest, MessageType::Request, |b| {
            b.option(55, &params)
                .and_then(|b| b.option(57, &1500u16.to_be_bytes()))
                .and_then(|b| b.option(61, &client_id))
                .and_then(|b| b.option(50, &[10, 64, 1, 1]))
                .and_then(|b| b.option(54, &SERVER.octets()))
                .expect("opt");
        });
        let mut ack = offer.clone();
        let at = find(&ack, &[53, 1, 2]);
        ack[at + 2] = 5;
        let client_id_at = [find(&discover, &[61, 7, 1]) + 3, find(&request, &[61, 7, 1]) + 3];
        let requested_at = find(&request, &[50, 4]) + 2;
        Dora { discover, offer, request, ack, client_id_at, requested_at }
    }

    /// Client `i`: its MAC, xid and address in every message.
    fn set_client(&mut self, i: u32) {
        let mac = [2, 1, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        let xid = i.wrapping_mul(2_654_435_761).to_be_bytes();
        let addr = (u32::from(Ipv4Addr::new(10, 64, 1, 0)) + i).to_be_bytes();
        for msg in [&mut self.discover, &mut self.offer, &mut self.request, &mut self.ack] {
            msg[XID..XID + 4].copy_from_slice(&xid);
            msg[CHADDR..CHADDR + 6].copy_from_slice(&mac);
        }
        for (msg, at) in [&mut self.discover, &mut self.request].into_iter().zip(self.client_id_at) {
            msg[at..at + 6].copy_from_slice(&mac);
        }
        for msg in [&mut self.offer, &mut self.ack] {
            msg[YIADDR..YIADDR + 4].copy_from_slice(&addr);
        }
        let at = self.requested_at;
        self.request[at..at + 4].copy_from_slice(&addr);
    }
}

fn engine() -> Engine {
    let ds = Downstream::up("rd0", DS_IF, Ipv4Net { addr: DS, prefix_len: 14 }, Some([2, 0, 0, 0, 0, 1]));
    let mut config = EngineConfig::relay(vec![SERVER], vec![ds], vec![US_IF]);
    // As bench/floor's cdra: the rate limits off (dhcrelay has none).
    config.limits.interface_rate = cdra_core::limits::Rate::UNLIMITED;
    config.limits.client_rate = cdra_core::limits::Rate::UNLIMITED;
    Engine::new(config)
}

fn bench(c: &mut Criterion) {
    let mut engine = engine();
    let mut outbox = Outbox::new(64);
    let mut dora = Dora::new();
    let client = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68);
    let server = SocketAddrV4::new(SERVER, 67);
    let mut now = Timestamp::from_secs(1_000_000);
    let mut next = 0u32;
    let mut one = |engine: &mut Engine, outbox: &mut Outbox, now: &mut Timestamp| -> [Verdict; 4] {
        dora.set_client(next);
        next = (next + 1) % CLIENTS;
        *now = now.saturating_add(Duration::from_micros(250));
        if engine.poll_timeout().is_some_and(|t| t <= *now) {
            engine.handle_timeout(*now, outbox);
        }
        let steps: [(&[u8], SocketAddrV4, Ipv4Addr, u32); 4] = [
            (&dora.discover, client, Ipv4Addr::BROADCAST, DS_IF),
            (&dora.offer, server, DS, US_IF),
            (&dora.request, client, Ipv4Addr::BROADCAST, DS_IF),
            (&dora.ack, server, DS, US_IF),
        ];
        steps.map(|(data, src, dst, ifindex)| {
            outbox.clear();
            engine.handle_datagram(*now, black_box(Ingress { link_source: None, ifindex, src, dst, data }), outbox)
        })
    };
    // Fill the outstanding-request table to its bound first: the steady state.
    let relayed = [
        Verdict::RelayedToServers { copies: 1 },
        Verdict::DeliveredToClient,
        Verdict::RelayedToServers { copies: 1 },
        Verdict::DeliveredToClient,
    ];
    for _ in 0..CLIENTS {
        assert_eq!(one(&mut engine, &mut outbox, &mut now), relayed);
    }
    assert_eq!(engine.outstanding_requests().len(), 65_536);
    let mut group = c.benchmark_group("relay path");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one DORA relayed (table at its bound)", |b| {
        b.iter(|| black_box(one(&mut engine, &mut outbox, &mut now)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
