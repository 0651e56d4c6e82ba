//! Shared test support: a one-link engine, message builders and a harness.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4};

use cdra_core::config::{Downstream, EngineConfig, Ipv4Net};
use cdra_core::{Destination, Engine, Ingress, Outbox, Timestamp, Verdict};
use cdra_wire::{MessageBuilder, MessageType, Op};

pub const DS_IF: u32 = 2;
pub const US_IF: u32 = 3;
pub const DS_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 1);
pub const US_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
pub const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const SERVER2: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 9);
pub const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x42];

pub fn config() -> EngineConfig {
    let ds = Downstream {
        name: "rd0".into(),
        ifindex: DS_IF,
        address: Ipv4Net { addr: DS_ADDR, prefix_len: 24 },
        all_addresses: vec![DS_ADDR],
        mac: Some([0x02, 0, 0, 0, 0, 1]),
        circuit_id: b"rd0".to_vec(),
        trusted: false,
    };
    let mut c = EngineConfig::relay(vec![SERVER], vec![ds], vec![US_IF]);
    c.upstream_addresses = vec![US_ADDR];
    c
}

pub struct Msg {
    pub op: Op,
    pub kind: Option<MessageType>,
    pub hops: u8,
    pub giaddr: Ipv4Addr,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub flags: u16,
    pub htype: u8,
    pub chaddr: Vec<u8>,
    pub options: Vec<(u8, Vec<u8>)>,
}

impl Msg {
    pub fn request(kind: MessageType) -> Self {
        Msg {
            op: Op::BootRequest,
            kind: Some(kind),
            hops: 0,
            giaddr: Ipv4Addr::UNSPECIFIED,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            flags: 0,
            htype: 1,
            chaddr: MAC.to_vec(),
            options: vec![(55, vec![1, 3, 6])],
        }
    }
    pub fn reply(kind: MessageType) -> Self {
        Msg {
            op: Op::BootReply,
            giaddr: DS_ADDR,
            yiaddr: Ipv4Addr::new(10, 77, 1, 100),
            options: vec![(54, SERVER.octets().to_vec()), (51, 3600u32.to_be_bytes().to_vec())],
            ..Msg::request(kind)
        }
    }
    pub fn bytes(&self) -> Vec<u8> {
        let mut buf = vec![0u8; 1500];
        let mut b = MessageBuilder::new(&mut buf, self.op, self.kind).expect("builder");
        b.xid(0x1234_5678)
            .flags(self.flags)
            .giaddr(self.giaddr)
            .ciaddr(self.ciaddr)
            .yiaddr(self.yiaddr)
            .hops(self.hops)
            .chaddr(self.htype, &self.chaddr);
        for (code, data) in &self.options {
            b.option(*code, data).expect("option");
        }
        let len = b.finish().expect("finish");
        buf.truncate(len);
        buf
    }
}

pub struct Harness {
    pub engine: Engine,
    pub outbox: Outbox,
    pub now: Timestamp,
}

impl Harness {
    pub fn new(config: EngineConfig) -> Self {
        Harness { engine: Engine::new(config), outbox: Outbox::new(16), now: Timestamp::from_secs(1_000_000) }
    }
    pub fn client_sends(&mut self, m: &Msg) -> Verdict {
        self.outbox.clear();
        let bytes = m.bytes();
        let ingress = Ingress {
            ifindex: DS_IF,
            src: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
            dst: Ipv4Addr::BROADCAST,
            data: &bytes,
        };
        self.engine.handle_datagram(self.now, ingress, &mut self.outbox)
    }
    pub fn server_sends(&mut self, server: Ipv4Addr, m: &Msg) -> Verdict {
        self.outbox.clear();
        let bytes = m.bytes();
        let ingress = Ingress { ifindex: US_IF, src: SocketAddrV4::new(server, 67), dst: m.giaddr, data: &bytes };
        self.engine.handle_datagram(self.now, ingress, &mut self.outbox)
    }
    pub fn sent(&self) -> Vec<(Destination, Vec<u8>)> {
        self.outbox.iter().map(|o| (o.destination, o.payload().to_vec())).collect()
    }
    pub fn only_sent(&self) -> (Destination, Vec<u8>) {
        let sent = self.sent();
        assert_eq!(sent.len(), 1, "expected exactly one datagram, got {sent:?}");
        sent.into_iter().next().expect("one")
    }
}

impl Harness {
    /// A client datagram to a given destination address (a unicast RENEW goes to us).
    pub fn client_sends_to(&mut self, dst: Ipv4Addr, m: &Msg) -> Verdict {
        self.outbox.clear();
        let bytes = m.bytes();
        let src = if m.ciaddr.is_unspecified() { Ipv4Addr::UNSPECIFIED } else { m.ciaddr };
        let ingress = Ingress { ifindex: DS_IF, src: SocketAddrV4::new(src, 68), dst, data: &bytes };
        self.engine.handle_datagram(self.now, ingress, &mut self.outbox)
    }
    /// Move the clock.
    pub fn advance(&mut self, secs: u64) {
        self.now = Timestamp::from_millis(self.now.as_millis() + secs * 1000);
    }
    /// Move the clock to the engine's next deadline (if within `max_secs`) and handle it.
    pub fn run_timers(&mut self, max_secs: u64) {
        self.outbox.clear();
        let limit = Timestamp::from_millis(self.now.as_millis() + max_secs * 1000);
        while let Some(t) = self.engine.poll_timeout() {
            if t > limit {
                break;
            }
            self.now = self.now.max(t);
            self.engine.handle_timeout(self.now, &mut self.outbox);
            if !self.outbox.is_empty() || !self.outbox.probes().is_empty() {
                break;
            }
        }
    }
    /// A host answered a probe.
    pub fn probe_answer(&mut self, address: Ipv4Addr, mac: Option<[u8; 6]>) {
        self.outbox.clear();
        self.engine.handle_probe_answer(self.now, DS_IF, address, mac, &mut self.outbox);
    }
}
