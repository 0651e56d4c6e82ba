//! Drawing one fuzz event from a step's generator and what the network holds now.
//!
//! Two rules keep the simulation's own invariants about the model clients meaningful:
//! datagrams from the fuzzer's strangers never carry a model client's identity (a forged
//! RELEASE reaches the server through any relay, and the server would then be right to
//! take the client's lease away), and a reply the oracle cannot tell from a genuine one (a
//! corrupted or replayed copy on the server path) is never aimed at a model client. Forged
//! replies aimed at model clients are the point, and are drawn.

use core::fmt;
use core::net::{Ipv4Addr, SocketAddrV4};

use cdra_core::EchoId;
use cdra_sim::msg::build;
use cdra_sim::{Action, Millis, ProbeReply, SimRng};
use cdra_wire::options::OptionCode;
use cdra_wire::{Message, MessageType, Op};

use crate::adapter;
use crate::corpus::CORPUS;
use crate::mutate::{mutate_message, option_tlvs};
use crate::oracle::Judgement;
use crate::run::Fuzzer;

/// A client identity the fuzzer plays (never a model client's).
#[derive(Debug, Clone)]
pub(crate) struct FuzzId {
    pub(crate) mac: [u8; 6],
    pub(crate) client_id: Option<Vec<u8>>,
    pub(crate) xid: u32,
    pub(crate) link: usize,
    /// What a server or the engine last offered it / gave it (learnt from the engine's output).
    pub(crate) offered: Option<Ipv4Addr>,
    pub(crate) acked: Option<Ipv4Addr>,
}

/// A client datagram of a flood: (ifindex, Ethernet source, destination, bytes).
pub(crate) type Frame = (u32, Option<[u8; 6]>, Ipv4Addr, Vec<u8>);

/// One fuzz event.
#[derive(Debug, Clone)]
pub(crate) enum FuzzEvent {
    /// A model client or server does something.
    Model(Action),
    /// A datagram reaches the engine, in a frame from Ethernet address `link_source` (`None`:
    /// the I/O layer did not read the frame, as on the upstream socket).
    Inject {
        ifindex: u32,
        link_source: Option<[u8; 6]>,
        src: SocketAddrV4,
        dst: Ipv4Addr,
        data: Vec<u8>,
        server_side: bool,
        what: String,
    },
    /// Many datagrams at once from random MACs (a starvation tool): DISCOVERs, and REQUESTs
    /// for what was offered to the last flood.
    Flood { datagrams: Vec<Frame>, what: String },
    /// A probe answer reaches the engine: an ARP packet claiming `target` on `ifindex`, or
    /// an ICMP echo reply from `target` with some identifier.
    Probe { ifindex: u32, target: Ipv4Addr, reply: ProbeReply, what: String },
    /// The engine's clock steps by this many ms.
    ClockStep(i64),
    /// A long wait.
    Wait(Millis),
    /// The engine restarts from its mutated dump (its clock stepped first, when given).
    Restart { clock: Option<i64> },
    /// Drawn but not applicable (see the module docs).
    Skipped(String),
}

impl fmt::Display for FuzzEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FuzzEvent::Model(a) => write!(f, "model {a:?}"),
            FuzzEvent::Inject { ifindex, link_source, src, dst, data, what, .. } => {
                let s = cdra_sim::Summary::parse(data).map(|s| s.to_string()).unwrap_or_else(|| "unparseable".into());
                let frame = link_source.map(|m| format!(" from {}", cdra_sim::msg::mac_str(m))).unwrap_or_default();
                write!(f, "{what} on if{ifindex}{frame} {src}->{dst} ({} bytes: {s})", data.len())
            }
            FuzzEvent::Flood { datagrams, what } => write!(f, "flood: {} datagrams ({what})", datagrams.len()),
            FuzzEvent::Probe { ifindex, target, reply, what } => match reply {
                ProbeReply::Arp(m) => {
                    write!(f, "ARP answer for {target} on if{ifindex} from {} ({what})", cdra_sim::msg::mac_str(*m))
                }
                ProbeReply::Echo(e) => {
                    write!(f, "ICMP echo reply from {target} id={:04x} seq={:04x} ({what})", e.ident, e.seq)
                }
            },
            FuzzEvent::ClockStep(ms) => write!(f, "engine clock steps {ms:+} ms"),
            FuzzEvent::Wait(ms) => write!(f, "wait {}", cdra_sim::trace::fmt_time(*ms)),
            FuzzEvent::Restart { clock: None } => write!(f, "restart from the mutated dump"),
            FuzzEvent::Restart { clock: Some(ms) } => {
                write!(f, "restart from the mutated dump, the engine's clock stepped {ms:+} ms")
            }
            FuzzEvent::Skipped(why) => write!(f, "skipped: {why}"),
        }
    }
}

/// A uniformly chosen element.
pub(crate) fn pick<T: Clone>(r: &mut SimRng, xs: &[T]) -> T {
    xs[r.below(xs.len() as u64) as usize].clone()
}

/// Who a forged reply is aimed at.
struct Target {
    mac: [u8; 6],
    client_id: Option<Vec<u8>>,
    xid: u32,
    link: usize,
    address: Option<Ipv4Addr>,
    label: String,
}

const ATTACKER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 66);
/// The forger's MAC on a client link.
const ATTACKER_MAC: [u8; 6] = [0x02, 0xbb, 0, 0, 0x66, 0x66];

impl Fuzzer {
    /// Draw the event of a step.
    pub(crate) fn generate(&mut self, r: &mut SimRng) -> FuzzEvent {
        match r.below(100) {
            0..=15 => self.model_action(r),
            16..=46 => self.client_datagram(r),
            47..=70 => self.server_datagram(r),
            71..=82 => self.probe_answer(r),
            83..=84 if self.params.clock_steps => FuzzEvent::ClockStep(clock_step(r)),
            83..=84 => self.client_datagram(r),
            85..=86 => self.flood(r),
            87..=96 => FuzzEvent::Wait(long_wait(r)),
            _ => FuzzEvent::Restart { clock: (self.params.clock_steps && r.chance(0.3)).then(|| clock_step(r)) },
        }
    }

    fn link_ifindex(&self, link: usize) -> u32 {
        self.sim.config().links[link % 2].ifindex
    }

    fn link_addr(&self, link: usize) -> Ipv4Addr {
        self.sim.link_addr(link % 2)
    }

    fn server_addr(&self, r: &mut SimRng) -> Ipv4Addr {
        let s = self.sim.servers();
        s[r.below(s.len() as u64) as usize].addr()
    }

    fn model_action(&mut self, r: &mut SimRng) -> FuzzEvent {
        let n = self.sim.clients().len();
        let c = r.below(n as u64) as usize;
        let on = self.sim.client(c).is_on();
        let a = match r.below(20) {
            0..=5 if on => Action::RenewNow(c),
            0..=5 => Action::PowerOn(c),
            6..=8 => Action::PowerOff { client: c, release: r.chance(0.5) },
            9..=10 => Action::Move { client: c, link: r.below(2) as usize },
            11 => Action::Decline(c),
            12 => Action::Inform(c),
            13 if !on => Action::ForgetLease(c),
            14..=16 => {
                let s = r.below(self.sim.servers().len() as u64) as usize;
                if self.sim.server(s).is_up() {
                    Action::StopServer(s)
                } else {
                    Action::StartServer(s)
                }
            }
            _ if on => Action::RenewNow(c),
            _ => Action::PowerOn(c),
        };
        FuzzEvent::Model(a)
    }

    /// An address worth naming: one somebody holds or was offered, or any other.
    fn some_address(&self, r: &mut SimRng, known: &[Ipv4Addr]) -> Ipv4Addr {
        if !known.is_empty() && r.chance(0.6) {
            return pick(r, known);
        }
        match r.below(6) {
            0 => self.link_addr(r.below(2) as usize),
            1 => Ipv4Addr::new(192, 0, 2, 7),
            2 => Ipv4Addr::UNSPECIFIED,
            _ => Ipv4Addr::new(10, 77, 1 + r.below(2) as u8, r.range(100, 199) as u8),
        }
    }

    /// Does `m` name a model client, or one of cdra's pool identities (whose leases the
    /// model clients given them live on)?
    pub(crate) fn names_model(&self, m: &Message<&[u8]>) -> bool {
        let key = adapter::key_of(m);
        self.model_keys.contains(&key)
            || self.model_keys.contains(&adapter::hardware_key(m.htype(), m.chaddr()))
            || adapter::is_pool_key(&key)
    }

    /// Make sure a datagram from a stranger carries no model client's identity (nor a pool
    /// identity's): its chaddr becomes a fuzz MAC and its option 61 is blanked. False when
    /// that is not enough.
    fn as_stranger(&self, r: &mut SimRng, data: &mut [u8]) -> bool {
        let is_model = |d: &[u8]| Message::new_checked(d).is_ok_and(|m| self.names_model(&m));
        if !is_model(data) {
            return true;
        }
        let mac = self.fuzz[r.below(self.fuzz.len() as u64) as usize].mac;
        if let Some(ch) = data.get_mut(28..34) {
            ch.copy_from_slice(&mac);
        }
        if let Ok(mut m) = Message::new_checked(&mut *data) {
            m.blank_option(OptionCode::CLIENT_ID);
        }
        !is_model(data)
    }

    fn donors(&self) -> Vec<Vec<u8>> {
        self.captures.iter().rev().take(8).flat_map(|c| option_tlvs(&c.data)).collect()
    }

    fn client_datagram(&mut self, r: &mut SimRng) -> FuzzEvent {
        let known = self.known_addresses();
        let mut link = r.below(2) as usize;
        let mut unicast = r.chance(0.3);
        let (mut data, mut what) = match r.below(20) {
            0..=10 => {
                let (d, l, u, w) = self.fresh_request(r, &known);
                link = l;
                unicast = u;
                (d, w)
            }
            11..=16 if !self.captures.is_empty() => {
                let mut d = pick(r, &self.captures.iter().map(|c| c.data.clone()).collect::<Vec<_>>());
                let how = mutate_message(r, &mut d, &self.donors());
                (d, format!("client: mutated capture [{how}]"))
            }
            _ => {
                let (name, bytes) = pick(r, CORPUS);
                let mut d = bytes.to_vec();
                let mut what = format!("client: corpus {name}");
                if r.chance(0.5) {
                    what.push_str(&format!(" [{}]", mutate_message(r, &mut d, &self.donors())));
                }
                (d, what)
            }
        };
        if !self.as_stranger(r, &mut data) {
            return FuzzEvent::Skipped(format!("{what}: carries a model client's identity"));
        }
        let ifindex = match r.below(20) {
            0 => self.sim.config().upstream_ifindex,
            1 => 7,
            _ => self.link_ifindex(link),
        };
        if ifindex != self.link_ifindex(link) {
            what.push_str(" (off its link)");
        }
        let ciaddr = Message::new_checked(&data[..]).map(|m| m.ciaddr()).unwrap_or(Ipv4Addr::UNSPECIFIED);
        let src = SocketAddrV4::new(ciaddr, 68);
        let mut dst = if unicast { self.link_addr(link) } else { Ipv4Addr::BROADCAST };
        let link_source = self.link_source(r, &data, &mut what);
        if unicast && r.chance(0.3) {
            // A unicast to a server (a renewal that goes straight to it: routed past a relay,
            // intercepted by a spoofing one, paper 4.2), or to some other host.
            let intercepted = self.sim.engine().intercepted_addresses().addresses().to_vec();
            dst = match r.below(4) {
                0 if !intercepted.is_empty() => pick(r, &intercepted),
                0 | 1 => self.server_addr(r),
                2 => Ipv4Addr::new(10, 77, 9, 9),
                _ => self.some_address(r, &[]),
            };
            what.push_str(&format!(" (unicast to {dst})"));
        }
        FuzzEvent::Inject { ifindex, link_source, src, dst, data, server_side: false, what }
    }

    /// The Ethernet source of a stranger's frame: mostly its chaddr (the sender is the
    /// client it names), sometimes another host's MAC (the engine must then not act for the
    /// client it names: issue 10 item 2), now and then none (a frame the I/O layer did not
    /// read).
    fn link_source(&self, r: &mut SimRng, data: &[u8], what: &mut String) -> Option<[u8; 6]> {
        let chaddr = Message::new_checked(data).ok().and_then(|m| m.ethernet_chaddr());
        let (mac, label) = match r.below(20) {
            0..=14 => match chaddr {
                Some(c) => return Some(c),
                None => (Some(self.fuzz[r.below(self.fuzz.len() as u64) as usize].mac), "a stranger's MAC"),
            },
            15 | 16 => (Some(self.fuzz[r.below(self.fuzz.len() as u64) as usize].mac), "a stranger's MAC"),
            17 => (Some([0x02, 0xbb, 0, 0, r.below(4) as u8, r.below(256) as u8]), "a random MAC"),
            18 if !self.model_macs.is_empty() => (Some(pick(r, &self.model_macs)), "a model client's MAC"),
            _ => (None, "no frame"),
        };
        if mac.is_some() && mac == chaddr {
            return mac;
        }
        what.push_str(&format!(" (Ethernet source: {label})"));
        mac
    }

    /// A well-formed request from a stranger: (bytes, link, unicast, what).
    fn fresh_request(&mut self, r: &mut SimRng, known: &[Ipv4Addr]) -> (Vec<u8>, usize, bool, String) {
        let i = r.below(self.fuzz.len() as u64) as usize;
        if r.chance(0.4) {
            self.fuzz[i].xid = r.next_u32();
        }
        let f = self.fuzz[i].clone();
        let link = if r.chance(0.8) { f.link } else { 1 - f.link };
        let ours = self.link_addr(link);
        let n = self.sim.clients().len();
        // Now and then a model client's xid (clients pick xids at random: they collide).
        let xid = if n > 0 && r.chance(0.08) { self.sim.client(r.below(n as u64) as usize).xid() } else { f.xid };
        let addr = self.some_address(r, known);
        let offered = f.offered.filter(|_| r.chance(0.7)).unwrap_or(addr);
        let acked = f.acked.filter(|_| r.chance(0.7)).unwrap_or(addr);
        let sid = match r.below(5) {
            0 => self.server_addr(r),
            1 => Ipv4Addr::new(10, 77, 9, 9),
            _ => ours,
        };
        let params: Vec<u8> = if r.chance(0.8) { vec![1, 3, 6, 15, 51, 54, 58, 59] } else { vec![1, 3, 42, 121] };
        let relayed = r.chance(0.05);
        let broadcast = r.chance(0.3);
        let no_cookie = r.chance(0.3);
        let (mt, ciaddr, requested, server_id, unicast, label) = match r.below(20) {
            0..=4 => (Some(MessageType::Discover), None, Some(addr).filter(|_| r.chance(0.3)), None, false, "DISCOVER"),
            5..=8 => (Some(MessageType::Request), None, Some(offered), Some(sid), false, "REQUEST selecting"),
            9..=10 => (Some(MessageType::Request), None, Some(acked), None, false, "REQUEST init-reboot"),
            11..=12 => (Some(MessageType::Request), Some(acked), None, None, true, "REQUEST renewing"),
            13 => (Some(MessageType::Request), Some(acked), None, None, false, "REQUEST rebinding"),
            14 => (Some(MessageType::Release), Some(acked), None, Some(ours), true, "RELEASE"),
            15 => (Some(MessageType::Decline), None, Some(acked), Some(ours), false, "DECLINE"),
            16 => (Some(MessageType::Inform), Some(acked), None, None, true, "INFORM"),
            _ => (None, None, None, None, false, "BOOTREQUEST"),
        };
        let mut data = build(Op::BootRequest, mt, |b| {
            b.xid(xid).chaddr(1, &f.mac).flags(if broadcast { 0x8000 } else { 0 });
            if relayed {
                b.giaddr(Ipv4Addr::new(10, 77, 9, 1)).hops(1);
            }
            if let Some(c) = ciaddr {
                b.ciaddr(c);
            }
            if let Some(a) = requested {
                b.options().option_addr(OptionCode::REQUESTED_IP, a)?;
            }
            if let Some(s) = server_id {
                b.options().option_addr(OptionCode::SERVER_ID, s)?;
            }
            if let Some(id) = &f.client_id {
                b.options().option(OptionCode::CLIENT_ID, id)?;
            }
            if mt.is_some() {
                b.options().option(OptionCode::PARAMETER_REQUEST_LIST, &params)?;
            }
            Ok(())
        });
        let mut what = format!("client: {label} from stranger#{i}");
        if mt.is_none() && no_cookie {
            // A plain RFC 951 BOOTP request: no magic cookie, no options.
            if let Some(c) = data.get_mut(236..240) {
                c.fill(0);
            }
            what.push_str(" (no cookie)");
        }
        (data, link, unicast, what)
    }

    /// A burst from random MACs: DISCOVERs, then REQUESTs for what the servers offered.
    fn flood(&mut self, r: &mut SimRng) -> FuzzEvent {
        let n = r.range(10, 80) as usize;
        let one_source = r.chance(0.3).then(|| [0x02, 0xbb, 0, 0, 0xf1, r.below(4) as u8]);
        let mut datagrams = Vec::with_capacity(n);
        let (mut discovers, mut requests) = (0, 0);
        for _ in 0..n {
            let offer = if r.chance(0.6) { self.flood_offers.pop_front() } else { None };
            let (link, data) = match offer {
                Some(o) => {
                    requests += 1;
                    // The identifier the OFFER carried (ours), or the server's own.
                    let ours = if r.chance(0.5) { self.link_addr(o.link) } else { self.server_addr(r) };
                    let d = build(Op::BootRequest, Some(MessageType::Request), |b| {
                        b.xid(o.xid).chaddr(1, &o.chaddr);
                        b.options().option_addr(OptionCode::REQUESTED_IP, o.address)?;
                        b.options().option_addr(OptionCode::SERVER_ID, ours)
                    });
                    (o.link, d)
                }
                None => {
                    discovers += 1;
                    let mut mac = [0u8; 6];
                    mac[..2].copy_from_slice(&crate::run::FLOOD_MAC);
                    for b in &mut mac[2..] {
                        *b = r.below(256) as u8;
                    }
                    let xid = r.next_u32();
                    let d = build(Op::BootRequest, Some(MessageType::Discover), |b| {
                        b.xid(xid).chaddr(1, &mac);
                        Ok(())
                    });
                    (r.below(2) as usize, d)
                }
            };
            // A starvation tool sends from each made-up chaddr, or from its own MAC.
            let source = match one_source {
                Some(m) => Some(m),
                None => Message::new_checked(&data[..]).ok().and_then(|m| m.ethernet_chaddr()),
            };
            datagrams.push((self.link_ifindex(link), source, Ipv4Addr::BROADCAST, data));
        }
        let from = if one_source.is_some() { "one MAC" } else { "their chaddrs" };
        FuzzEvent::Flood { datagrams, what: format!("{discovers} DISCOVERs, {requests} REQUESTs from {from}") }
    }

    /// A model client (mostly) or a stranger, as a forged reply's target.
    fn target(&self, r: &mut SimRng) -> Target {
        let n = self.sim.clients().len();
        if n > 0 && r.chance(0.6) {
            let c = r.below(n as u64) as usize;
            let cl = self.sim.client(c);
            Target {
                mac: cl.mac(),
                client_id: cl.client_id(),
                xid: cl.xid(),
                link: cl.link(),
                address: cl.lease().map(|l| l.address),
                label: format!("client#{c}"),
            }
        } else {
            let i = r.below(self.fuzz.len() as u64) as usize;
            let f = &self.fuzz[i];
            Target {
                mac: f.mac,
                client_id: f.client_id.clone(),
                xid: f.xid,
                link: f.link,
                address: f.acked,
                label: format!("stranger#{i}"),
            }
        }
    }

    /// A reply an attacker makes up for `t`.
    fn made_up_reply(&self, r: &mut SimRng, t: &Target, giaddr: Ipv4Addr, known: &[Ipv4Addr]) -> (Vec<u8>, String) {
        let mt = match r.below(20) {
            0..=8 => Some(MessageType::Ack),
            9..=12 => Some(MessageType::Offer),
            13..=16 => Some(MessageType::Nak),
            17 => None,
            _ => Some(MessageType::Other(r.range(9, 18) as u8)),
        };
        let yiaddr = match (mt, t.address) {
            (Some(MessageType::Nak), _) => Ipv4Addr::UNSPECIFIED,
            (_, Some(a)) if r.chance(0.4) => a,
            _ => self.some_address(r, known),
        };
        let lease: u32 = pick(r, &[60, 3600, 86_400, u32::MAX, 0, 5]);
        let sid = if r.chance(0.8) { self.server_addr(r) } else { ATTACKER };
        let echo = t.client_id.clone().filter(|_| r.chance(0.5));
        let broadcast = r.chance(0.3);
        let data = build(Op::BootReply, mt, |b| {
            b.xid(t.xid).chaddr(1, &t.mac).giaddr(giaddr).yiaddr(yiaddr).flags(if broadcast { 0x8000 } else { 0 });
            b.options().option_addr(OptionCode::SERVER_ID, sid)?;
            if mt != Some(MessageType::Nak) {
                b.options().option_u32(OptionCode::LEASE_TIME, lease)?;
                b.options().option_addr(OptionCode::SUBNET_MASK, Ipv4Addr::new(255, 255, 255, 0))?;
                b.options().option_addr(OptionCode::ROUTER, ATTACKER)?;
            }
            if let Some(id) = &echo {
                b.options().option(OptionCode::CLIENT_ID, id)?;
            }
            Ok(())
        });
        let label = match mt {
            Some(t) => t.label().to_string(),
            None => "BOOTREPLY".into(),
        };
        (data, format!("{label} for {} yiaddr={yiaddr} lease={lease}", t.label))
    }

    fn server_datagram(&mut self, r: &mut SimRng) -> FuzzEvent {
        let known = self.known_addresses();
        let upstream = self.sim.config().upstream_ifindex;
        let full = self.case.profile.forges_replies();
        let how = if full { r.below(100) } else { 100 };
        let (ifindex, src, data, what) = match how {
            0..=24 => {
                // From the client segment, spoofing a server (issue 10 item 1).
                let t = self.target(r);
                let link = if r.chance(0.8) { t.link } else { 1 - t.link };
                let giaddr = match r.below(7) {
                    0 => Ipv4Addr::UNSPECIFIED,
                    1 => self.link_addr(1 - link),
                    _ => self.link_addr(link),
                };
                let (d, w) = self.made_up_reply(r, &t, giaddr, &known);
                let src = if r.chance(0.8) { self.server_addr(r) } else { ATTACKER };
                (self.link_ifindex(link), src, d, format!("spoofed on a downstream link: {w}"))
            }
            25..=36 => {
                let t = self.target(r);
                let giaddr = self.link_addr(t.link);
                let (d, w) = self.made_up_reply(r, &t, giaddr, &known);
                (upstream, ATTACKER, d, format!("from an unconfigured address: {w}"))
            }
            37..=56 => {
                match self.oracle.recent_requests().take(8).map(|(n, s, _)| (n.clone(), s)).collect::<Vec<_>>() {
                    reqs if !reqs.is_empty() => {
                        // Everything of a forwarded request but one field.
                        let (name, server) = pick(r, &reqs);
                        let t = Target {
                            mac: [0; 6],
                            client_id: None,
                            xid: name.xid,
                            link: 0,
                            address: None,
                            label: adapter::key_text(&adapter::hardware_key(name.htype, &name.chaddr)),
                        };
                        let (mut d, w) = self.made_up_reply(r, &t, name.giaddr, &known);
                        if let Ok(mut m) = Message::new_checked(&mut d[..]) {
                            m.set_hardware(name.htype, &name.chaddr);
                        }
                        let mut src = server;
                        let forged = match r.below(5) {
                            0 => {
                                d[4] ^= 1 << r.below(8);
                                "xid"
                            }
                            1 => {
                                d[28 + r.below(6) as usize] ^= 1;
                                "chaddr"
                            }
                            2 => {
                                let other = if name.giaddr == self.link_addr(0) { 1 } else { 0 };
                                d[24..28].copy_from_slice(&self.link_addr(other).octets());
                                "giaddr"
                            }
                            3 => {
                                d[1] = 6;
                                "htype"
                            }
                            _ => {
                                let others: Vec<Ipv4Addr> =
                                    self.sim.servers().iter().map(|s| s.addr()).filter(|a| *a != server).collect();
                                src = others.first().copied().unwrap_or(ATTACKER);
                                "server"
                            }
                        };
                        (upstream, src, d, format!("forged {forged}: {w}"))
                    }
                    _ => return FuzzEvent::Skipped("no forwarded request to forge a reply to".into()),
                }
            }
            57..=66 => {
                // A NAK for a client that asked nothing.
                let now = self.sim.engine_now();
                let t = self.target(r);
                let t = Target { xid: r.next_u32(), ..t };
                let asked = self.oracle.asked(now, &t.mac);
                let d = build(Op::BootReply, Some(MessageType::Nak), |b| {
                    b.xid(t.xid).chaddr(1, &t.mac).giaddr(self.link_addr(t.link)).flags(0x8000);
                    b.options().option_addr(OptionCode::SERVER_ID, self.sim.servers()[0].addr())?;
                    if let Some(id) = &t.client_id {
                        b.options().option(OptionCode::CLIENT_ID, id)?;
                    }
                    Ok(())
                });
                let src = self.sim.servers()[0].addr();
                (upstream, src, d, format!("NAK for {} (asked something: {asked})", t.label))
            }
            67..=82 => {
                let replies: Vec<_> = self.captures.iter().filter(|c| c.from_server.is_some()).cloned().collect();
                if replies.is_empty() {
                    return FuzzEvent::Skipped("no captured reply to mutate".into());
                }
                let c = pick(r, &replies);
                let mut d = c.data.clone();
                let how = mutate_message(r, &mut d, &self.donors());
                let server = c.from_server.unwrap_or(ATTACKER);
                let (ifindex, src, path) = match r.below(5) {
                    0 => (self.link_ifindex(r.below(2) as usize), server, "downstream"),
                    1 => (upstream, ATTACKER, "unconfigured source"),
                    _ => (upstream, server, "server path"),
                };
                (ifindex, src, d, format!("mutated captured reply [{how}] via {path}"))
            }
            83..=89 => {
                let replies: Vec<(&str, &[u8])> = CORPUS
                    .iter()
                    .copied()
                    .filter(|(n, _)| {
                        n.starts_with("server-") || n.starts_with("relay-ack") || n.starts_with("overload")
                    })
                    .collect();
                let (name, bytes) = pick(r, &replies);
                let mut d = bytes.to_vec();
                if d.len() >= 240 {
                    if r.chance(0.7) {
                        let gi = self.link_addr(r.below(2) as usize);
                        d[24..28].copy_from_slice(&gi.octets());
                    }
                    let reqs: Vec<_> = self.oracle.recent_requests().take(4).map(|(n, _, _)| n.clone()).collect();
                    if !reqs.is_empty() && r.chance(0.5) {
                        let n = pick(r, &reqs);
                        d[4..8].copy_from_slice(&n.xid.to_be_bytes());
                        if let Ok(mut m) = Message::new_checked(&mut d[..]) {
                            m.set_hardware(n.htype, &n.chaddr);
                            m.set_giaddr(n.giaddr);
                        }
                    }
                }
                let path = r.chance(0.7);
                let ifindex = if path { upstream } else { self.link_ifindex(r.below(2) as usize) };
                (
                    ifindex,
                    self.server_addr(r),
                    d,
                    format!("corpus {name} via {}", if path { "server path" } else { "downstream" }),
                )
            }
            _ => {
                // A copy of a genuine reply on the server path: a duplicate, a replay, or
                // corrupted in transit.
                let now = self.sim.engine_now();
                let genuine: Vec<_> = self
                    .captures
                    .iter()
                    .filter(|c| {
                        c.from_server.is_some_and(|s| {
                            Message::new_checked(&c.data[..])
                                .is_ok_and(|m| matches!(self.oracle.judge(now, upstream, s, &m), Judgement::Genuine(_)))
                        })
                    })
                    .cloned()
                    .collect();
                if genuine.is_empty() {
                    return FuzzEvent::Skipped("no genuine reply to copy".into());
                }
                let c = pick(r, &genuine);
                let mut d = c.data.clone();
                let what = if r.chance(0.5) {
                    format!("copy of a genuine reply [{}]", mutate_message(r, &mut d, &[]))
                } else {
                    "duplicate of a genuine reply".to_string()
                };
                (upstream, c.from_server.unwrap_or(ATTACKER), d, what)
            }
        };
        let verdict = Message::new_checked(&data[..]).ok().map(|m| {
            let judged = self.oracle.judge(self.sim.engine_now(), ifindex, src, &m);
            let model = self.names_model(&m)
                || matches!(&judged, Judgement::Genuine(keys) if keys.iter().any(|k| adapter::is_pool_key(k)));
            (matches!(judged, Judgement::Genuine(_)), model)
        });
        match verdict {
            Some((true, true)) => {
                return FuzzEvent::Skipped(format!(
                    "{what}: indistinguishable from a genuine reply to a model client or a pool identity"
                ))
            }
            Some((false, _)) | None if !full => {
                return FuzzEvent::Skipped(format!("{what}: forged (profile {})", self.case.profile.label()))
            }
            _ => {}
        }
        let dst = Message::new_checked(&data[..]).map(|m| m.giaddr()).unwrap_or(Ipv4Addr::BROADCAST);
        // The upstream socket does not read frames; on a client link the forger's own MAC.
        let link_source = (ifindex != upstream).then_some(ATTACKER_MAC);
        FuzzEvent::Inject { ifindex, link_source, src: SocketAddrV4::new(src, 67), dst, data, server_side: true, what }
    }

    fn probe_answer(&mut self, r: &mut SimRng) -> FuzzEvent {
        let known = self.known_addresses();
        let probed = !self.probe_targets.is_empty() && r.chance(0.6);
        let (mut ifindex, target, mut echo) = if probed {
            pick(r, &self.probe_targets.iter().copied().collect::<Vec<_>>())
        } else {
            let echo = EchoId { ident: r.below(0x1_0000) as u16, seq: r.below(0x1_0000) as u16 };
            (self.link_ifindex(r.below(2) as usize), self.some_address(r, &known), echo)
        };
        if r.chance(0.1) {
            ifindex = pick(r, &[self.link_ifindex(0), self.link_ifindex(1), self.sim.config().upstream_ifindex]);
        }
        // The MAC of whoever the table or the network says holds the address.
        let holder = adapter::records(self.sim.engine())
            .into_iter()
            .find(|v| v.address == target)
            .and_then(|v| v.reply.and_then(|b| Message::new_checked(&b[..]).ok().and_then(|m| m.ethernet_chaddr())))
            .or_else(|| {
                (0..self.sim.clients().len())
                    .map(|c| self.sim.client(c))
                    .find(|c| c.lease().is_some_and(|l| l.address == target))
                    .map(|c| c.mac())
            });
        let (reply, what) = match r.below(10) {
            0..=2 => (ProbeReply::Arp([0x02, 0xaa, 0, 0, r.below(4) as u8, r.below(256) as u8]), "a random MAC"),
            3 | 4 if !self.model_macs.is_empty() => {
                (ProbeReply::Arp(pick(r, &self.model_macs)), "a model client's MAC")
            }
            5 if holder.is_some() => (ProbeReply::Arp(holder.unwrap_or_default()), "the holder's MAC"),
            6 => (ProbeReply::Arp(self.fuzz[r.below(self.fuzz.len() as u64) as usize].mac), "a stranger's MAC"),
            7 => (ProbeReply::Arp(self.sim.config().links[0].mac), "the engine's own MAC"),
            _ => {
                // An echo reply carries the probe's identifier back; a host that did not
                // see the echo guesses (or replays another probe's).
                let what = match r.below(4) {
                    _ if !probed => "ICMP, made-up identifier",
                    0 => {
                        echo.seq ^= 1 << r.below(16);
                        "ICMP, wrong sequence number"
                    }
                    1 => {
                        echo = pick(r, &self.probe_targets.iter().map(|p| p.2).collect::<Vec<_>>());
                        "ICMP, some probe's identifier"
                    }
                    _ => "ICMP, the probe's identifier",
                };
                (ProbeReply::Echo(echo), what)
            }
        };
        FuzzEvent::Probe { ifindex, target, reply, what: what.into() }
    }
}

/// A step of the engine's clock: seconds to days, forward or back.
fn clock_step(r: &mut SimRng) -> i64 {
    let scale: u64 = pick(r, &[5_000, 300_000, 3_600_000, 43_200_000, 172_800_000]);
    let ms = r.range(scale / 2, scale * 3 / 2) as i64;
    if r.chance(0.5) {
        -ms
    } else {
        ms
    }
}

/// A long wait: leases run out, lapses fall due, records age. (Longer spans of the engine's
/// own time come from clock steps, which cost no simulated events.)
fn long_wait(r: &mut SimRng) -> Millis {
    let scale: u64 = pick(r, &[60_000, 300_000, 1_200_000, 2_400_000]);
    r.range(scale / 2, scale * 3 / 2)
}
