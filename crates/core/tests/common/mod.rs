//! Shared test support: a one-link engine, message builders and a harness.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4};

use std::time::Duration;

use cdra_core::config::{Downstream, EngineConfig, Ipv4Net, Mode};
use cdra_core::table::ClientKey;
use cdra_core::{Destination, Engine, Ingress, Outbox, ProbeAnswer, ProbeRequest, Timestamp, Verdict};
use cdra_wire::{MessageBuilder, MessageType, Op};

pub const DS_IF: u32 = 2;
pub const US_IF: u32 = 3;
pub const DS_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 1);
pub const US_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
pub const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const SERVER2: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 9);
pub const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x42];

pub fn config() -> EngineConfig {
    let ds = Downstream::up("rd0", DS_IF, Ipv4Net { addr: DS_ADDR, prefix_len: 24 }, Some([0x02, 0, 0, 0, 0, 1]));
    let mut c = EngineConfig::relay(vec![SERVER], vec![ds], vec![US_IF]);
    c.upstream_addresses = vec![US_ADDR];
    c
}

pub struct Msg {
    pub xid: u32,
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
            xid: 0x1234_5678,
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
        b.xid(self.xid)
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
    /// Every probe the engine asked for, in order (a probe's second transmission, the same
    /// target and echo identifier, is the same probe and is not listed again).
    pub probes: Vec<ProbeRequest>,
}

/// The Ethernet source a client's frame carries: its chaddr (when that is an Ethernet
/// address), as the I/O layer reads it from the frame.
pub fn link_source_of(m: &Msg) -> Option<[u8; 6]> {
    if m.htype == 1 {
        m.chaddr.as_slice().try_into().ok()
    } else {
        None
    }
}

impl Harness {
    pub fn new(config: EngineConfig) -> Self {
        Harness {
            engine: Engine::new(config),
            outbox: Outbox::new(16),
            now: Timestamp::from_secs(1_000_000),
            probes: Vec::new(),
        }
    }
    pub fn client_sends(&mut self, m: &Msg) -> Verdict {
        self.outbox.clear();
        let bytes = m.bytes();
        let ingress = Ingress {
            ifindex: DS_IF,
            link_source: link_source_of(m),
            src: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
            dst: Ipv4Addr::BROADCAST,
            data: &bytes,
        };
        let v = self.engine.handle_datagram(self.now, ingress, &mut self.outbox);
        self.note_probes();
        v
    }
    /// A client datagram whose frame came from `source` (another host using the client's
    /// identity, or a MAC-rewriting bridge).
    pub fn client_sends_from(&mut self, source: [u8; 6], m: &Msg) -> Verdict {
        self.outbox.clear();
        let bytes = m.bytes();
        let src = if m.ciaddr.is_unspecified() { Ipv4Addr::UNSPECIFIED } else { m.ciaddr };
        let dst = if m.ciaddr.is_unspecified() { Ipv4Addr::BROADCAST } else { DS_ADDR };
        let ingress =
            Ingress { ifindex: DS_IF, link_source: Some(source), src: SocketAddrV4::new(src, 68), dst, data: &bytes };
        let v = self.engine.handle_datagram(self.now, ingress, &mut self.outbox);
        self.note_probes();
        v
    }
    /// Notes new probes; true if there were any.
    fn note_probes(&mut self) -> bool {
        let mut new = false;
        for p in self.outbox.probes() {
            if !self.probes.iter().any(|q| q.target == p.target && q.echo == p.echo) {
                self.probes.push(*p);
                new = true;
            }
        }
        new
    }
    pub fn server_sends(&mut self, server: Ipv4Addr, m: &Msg) -> Verdict {
        self.outbox.clear();
        let bytes = m.bytes();
        let ingress = Ingress {
            ifindex: US_IF,
            link_source: None,
            src: SocketAddrV4::new(server, 67),
            dst: m.giaddr,
            data: &bytes,
        };
        let v = self.engine.handle_datagram(self.now, ingress, &mut self.outbox);
        self.note_probes();
        v
    }
    /// The client whose request `reply` answers sends that request (a DISCOVER for an
    /// OFFER, a REQUEST for an ACK or NAK, a BOOTREQUEST for a BOOTREPLY), then `server`
    /// sends `reply`: what a server reply is believed only after.
    pub fn request_then_reply(&mut self, server: Ipv4Addr, reply: &Msg) -> Verdict {
        let kind = match reply.kind {
            Some(MessageType::Offer) => Some(MessageType::Discover),
            Some(_) => Some(MessageType::Request),
            None => None,
        };
        let request =
            Msg { kind, htype: reply.htype, chaddr: reply.chaddr.clone(), ..Msg::request(MessageType::Discover) };
        self.client_sends(&request);
        self.server_sends(server, reply)
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
        let ingress = Ingress {
            ifindex: DS_IF,
            link_source: link_source_of(m),
            src: SocketAddrV4::new(src, 68),
            dst,
            data: &bytes,
        };
        let v = self.engine.handle_datagram(self.now, ingress, &mut self.outbox);
        self.note_probes();
        v
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
            // A probe's second transmission (half its timeout) is not a stop.
            if self.note_probes() || !self.outbox.is_empty() {
                break;
            }
        }
    }
    /// A host answered a probe: an ARP answer from `mac`, or (`None`) an ICMP echo reply
    /// carrying the identifier of the latest probe of `address`.
    pub fn probe_answer(&mut self, address: Ipv4Addr, mac: Option<[u8; 6]>) {
        let answer = match mac {
            Some(mac) => ProbeAnswer::Arp { ifindex: DS_IF, address, mac },
            None => {
                let echo =
                    self.probes.iter().rev().find(|p| p.target == address).expect("a probe of that address").echo;
                ProbeAnswer::Echo { address, echo }
            }
        };
        self.probe_answer_raw(answer);
    }
    /// Hand the engine any probe answer, forged or not.
    pub fn probe_answer_raw(&mut self, answer: ProbeAnswer) {
        self.outbox.clear();
        self.engine.handle_probe_answer(self.now, answer, &mut self.outbox);
        self.note_probes();
    }
}

pub fn proxy_config() -> EngineConfig {
    let mut c = config();
    c.mode = Mode::Proxy;
    c.proxy.renew_reply_delay = Duration::ZERO;
    c
}

/// A client of the test link: option 61, MAC and the address its server gives it.
#[derive(Clone)]
pub struct Client {
    pub cid: Vec<u8>,
    pub mac: [u8; 6],
    pub addr: Ipv4Addr,
}

impl Client {
    pub fn new(i: u16) -> Self {
        let [a, b] = i.to_be_bytes();
        Client {
            cid: vec![1, 0x02, 0, 0, 9, a, b],
            mac: [0x02, 0, 0, 9, a, b],
            addr: Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 77, 1, 10)) + u32::from(i)),
        }
    }
    pub fn key(&self) -> ClientKey {
        ClientKey::client_id(&self.cid)
    }
    pub fn msg(&self, kind: MessageType) -> Msg {
        let mut m = Msg::request(kind);
        m.chaddr = self.mac.to_vec();
        m.options.push((61, self.cid.clone()));
        m
    }
    pub fn selecting(&self, server_id: Ipv4Addr) -> Msg {
        let mut m = self.msg(MessageType::Request);
        m.options.push((54, server_id.octets().to_vec()));
        m.options.push((50, self.addr.octets().to_vec()));
        m
    }
    pub fn init_reboot(&self) -> Msg {
        let mut m = self.msg(MessageType::Request);
        m.options.push((50, self.addr.octets().to_vec()));
        m
    }
    pub fn renew(&self) -> Msg {
        let mut m = self.msg(MessageType::Request);
        m.ciaddr = self.addr;
        m
    }
    /// The server's reply to this client; `echo_cid` false for a server that does not
    /// return option 61.
    pub fn reply(&self, kind: MessageType, echo_cid: bool) -> Msg {
        let mut m = Msg::reply(kind);
        m.chaddr = self.mac.to_vec();
        m.yiaddr = self.addr;
        m.options = vec![
            (54, SERVER.octets().to_vec()),
            (51, 3600u32.to_be_bytes().to_vec()),
            (1, vec![255, 255, 255, 0]),
            (3, DS_ADDR.octets().to_vec()),
        ];
        if echo_cid {
            m.options.push((61, self.cid.clone()));
        }
        m
    }
    /// DORA through the proxy.
    pub fn bind(&self, h: &mut Harness) {
        assert!(matches!(h.client_sends(&self.msg(MessageType::Discover)), Verdict::RelayedToServers { .. }));
        assert_eq!(h.server_sends(SERVER, &self.reply(MessageType::Offer, true)), Verdict::DeliveredToClient);
        assert!(matches!(h.client_sends(&self.selecting(DS_ADDR)), Verdict::RelayedToServers { .. }));
        assert_eq!(h.server_sends(SERVER, &self.reply(MessageType::Ack, true)), Verdict::DeliveredToClient);
        assert_eq!(record(h, self).map(|r| r.address), Some(self.addr));
    }
}

pub fn record(h: &Harness, c: &Client) -> Option<cdra_core::table::ClientRecord> {
    let t = h.engine.table();
    t.find(&c.key()).and_then(|s| t.get(s)).cloned()
}

/// The engine's table as the store would hold it and read it back: its records decoded with
/// the shared reply templates they name (record format 3, paper 5.7).
pub fn stored_records(engine: &cdra_core::Engine) -> Vec<(cdra_core::table::ClientRecord, String)> {
    use cdra_core::persist::{decode_record_with, template_key, Templates};
    let mut templates = Templates::new();
    engine.dump_templates(|id, bytes| templates.add(&template_key(id), bytes).expect("a template"));
    let mut scratch = Vec::new();
    let mut stored = Vec::new();
    engine.dump(&mut scratch, |_, b| stored.push(b.to_vec()));
    stored
        .iter()
        .map(|b| decode_record_with(b, &templates).map(|(r, i)| (r, i.to_string())).expect("a record"))
        .collect()
}
