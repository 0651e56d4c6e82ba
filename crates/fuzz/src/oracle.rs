//! Which server replies are genuine, judged from outside the engine by watching its edge.
//!
//! The rule (issue 10 item 1) is what any relay can observe: a reply is genuine when it
//! arrives on an upstream interface (with none configured: on an interface that is not
//! downstream), from the configured server a request was forwarded to, and names that
//! request as a server copies it (xid, htype, hlen, chaddr, giaddr: RFC 2131 4.1), within
//! [`WINDOW`] on the engine's own clock. Everything else is forged: a reply on a downstream
//! interface, from another address, naming nothing we forwarded, or too late.
//!
//! A corrupted or replayed copy of a genuine reply that still names the request cannot be
//! told apart on the wire; it counts as genuine (the fuzzer never aims such copies at the
//! model clients, whose leases the simulation's own invariants watch). Which replies a model
//! server really sent is kept apart ([`Oracle::really_sent`]): only those may be compared
//! with the servers' bindings.
//!
//! What it remembers: forwarded requests within the window (at most [`MAX_FORWARDED`]), and
//! every genuine reply in the form a cache keeps it ([`canonical`]) with the keys of the
//! clients whose requests it answered, so a cached reply can be checked at any later time;
//! records restored from the store are genuine by definition ([`Oracle::trust_stored`]).
//!
//! RFC 4388: a DHCPLEASEACTIVE, UNASSIGNED or UNKNOWN names the client the server leased
//! the address to, not the query; it is genuine when it answers a DHCPLEASEQUERY the engine
//! sent to that server (same xid, giaddr and address, within the window). A genuine
//! DHCPLEASEACTIVE may make a record (the engine's ACK built from it), which is trusted as
//! a stored one is.

use core::net::Ipv4Addr;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use cdra_core::leasequery::{DHCPLEASEACTIVE, DHCPLEASEQUERY, DHCPLEASEUNASSIGNED, DHCPLEASEUNKNOWN};
use cdra_sim::Millis;
use cdra_wire::options::OptionCode;
use cdra_wire::{Message, Op};

use crate::adapter;

/// How long after it was forwarded a request may be answered (engine clock). The engine
/// forgets tracked requests after 60 s; this is more lenient, never stricter.
pub const WINDOW: Millis = 120_000;
/// Most forwarded requests remembered (oldest forgotten first).
pub const MAX_FORWARDED: usize = 8192;

/// A reply in the form a cache keeps it: header fields up to chaddr, xid, secs, flags and
/// ciaddr zero (a cached reply does not keep them: every use of it sets them itself,
/// `cdra_core::templates`), then every option in order but PAD, END and option 82 (the relay
/// strips 82; padding is not kept).
pub fn canonical<T: AsRef<[u8]>>(m: &Message<T>) -> Vec<u8> {
    let mut v = m.as_bytes().get(..44).unwrap_or(&[]).to_vec();
    if let Some(normalised) = v.get_mut(4..16) {
        normalised.fill(0);
    }
    for o in m.options() {
        if matches!(o.code, OptionCode::PAD | OptionCode::END | OptionCode::RELAY_AGENT_INFO) {
            continue;
        }
        v.push(o.code);
        v.push(o.data.len() as u8);
        v.extend_from_slice(o.data);
    }
    v
}

/// A reply as a pool client's record keeps it: the pool entry's ACK given to a client with
/// the client's own hardware address (`pool/assign.rs` `pool_give`), so its canonical form
/// with htype, hlen and chaddr blanked.
pub fn pool_form<T: AsRef<[u8]>>(m: &Message<T>) -> Vec<u8> {
    let mut v = canonical(m);
    for i in [1, 2].into_iter().chain(28..44) {
        if let Some(b) = v.get_mut(i) {
            *b = 0;
        }
    }
    v
}

/// What a reply and its request have in common (RFC 2131 4.1: the server copies them).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestName {
    /// Transaction id.
    pub xid: u32,
    /// Hardware type.
    pub htype: u8,
    /// chaddr, `hlen` bytes.
    pub chaddr: Vec<u8>,
    /// giaddr.
    pub giaddr: Ipv4Addr,
}

impl RequestName {
    /// The name `m` carries.
    pub fn of<T: AsRef<[u8]>>(m: &Message<T>) -> Self {
        RequestName { xid: m.xid(), htype: m.htype(), chaddr: m.chaddr().to_vec(), giaddr: m.giaddr() }
    }
}

/// A DHCPLEASEQUERY the engine sent (RFC 4388): what its answer names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Leasequery {
    at: Millis,
    server: Ipv4Addr,
    xid: u32,
    giaddr: Ipv4Addr,
    ciaddr: Ipv4Addr,
}

#[derive(Debug, Clone)]
struct Forwarded {
    at: Millis,
    server: Ipv4Addr,
    name: RequestName,
    key: Vec<u8>,
    /// Forwarded for the client it names: not a request from another host's frame (whose
    /// reply must not reach the named client's record: issue 10 item 2).
    verified: bool,
}

/// How a reply arriving at the engine is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Genuine: it answers requests of these clients (keys). Empty: it answers only
    /// requests that came in frames from another host than the client they name (relayed
    /// as a plain relay would: the reply may reach that client, never its record).
    Genuine(BTreeSet<Vec<u8>>),
    /// Forged, and why.
    Forged(&'static str),
}

/// A relayed reply as the client receives it: what the relay does not change.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RelayedName {
    xid: u32,
    htype: u8,
    chaddr: Vec<u8>,
    message_type: Option<u8>,
    yiaddr: Ipv4Addr,
}

impl RelayedName {
    fn of<T: AsRef<[u8]>>(m: &Message<T>) -> Self {
        RelayedName {
            xid: m.xid(),
            htype: m.htype(),
            chaddr: m.chaddr().to_vec(),
            message_type: m.message_type().map(|t| t.to_u8()),
            yiaddr: m.yiaddr(),
        }
    }
}

/// RFC 4388: a DHCPLEASEACTIVE, UNASSIGNED or UNKNOWN.
pub fn is_leasequery_answer<T: AsRef<[u8]>>(m: &Message<T>) -> bool {
    matches!(
        m.message_type(),
        Some(cdra_wire::MessageType::Other(DHCPLEASEACTIVE | DHCPLEASEUNASSIGNED | DHCPLEASEUNKNOWN))
    )
}

/// The oracle (see the module docs).
#[derive(Debug)]
pub struct Oracle {
    servers: Vec<Ipv4Addr>,
    downstream: Vec<u32>,
    upstream: Vec<u32>,
    forwarded: VecDeque<Forwarded>,
    /// DHCPLEASEQUERYs sent, at most `MAX_FORWARDED`.
    leasequeries: VecDeque<Leasequery>,
    genuine: HashMap<Vec<u8>, BTreeSet<Vec<u8>>>,
    /// Canonical forms of the genuine replies a model server really sent.
    sent: HashSet<Vec<u8>>,
    relayed: HashSet<RelayedName>,
    /// Pool forms ([`pool_form`]) of the genuine replies to a pool identity's requests, and
    /// of those a model server really sent.
    pool_genuine: HashSet<Vec<u8>>,
    pool_sent: HashSet<Vec<u8>>,
}

impl Oracle {
    /// An oracle for an engine with these servers and interfaces.
    pub fn new(servers: Vec<Ipv4Addr>, downstream: Vec<u32>, upstream: Vec<u32>) -> Self {
        Oracle {
            servers,
            downstream,
            upstream,
            forwarded: VecDeque::new(),
            leasequeries: VecDeque::new(),
            genuine: HashMap::new(),
            sent: HashSet::new(),
            relayed: HashSet::new(),
            pool_genuine: HashSet::new(),
            pool_sent: HashSet::new(),
        }
    }

    /// The engine sent `data` to server `server` at `now` (engine clock); `verified`: for
    /// the client it names (not a request from another host's frame).
    pub fn forwarded(&mut self, now: Millis, server: Ipv4Addr, data: &[u8], verified: bool) {
        let Ok(m) = Message::new_checked(data) else { return };
        if m.op() != Op::BootRequest {
            return;
        }
        while self.forwarded.len() >= MAX_FORWARDED {
            self.forwarded.pop_front();
        }
        if m.message_type() == Some(cdra_wire::MessageType::Other(DHCPLEASEQUERY)) {
            while self.leasequeries.len() >= MAX_FORWARDED {
                self.leasequeries.pop_front();
            }
            let (xid, giaddr, ciaddr) = (m.xid(), m.giaddr(), m.ciaddr());
            self.leasequeries.push_back(Leasequery { at: now, server, xid, giaddr, ciaddr });
            return;
        }
        let (name, key) = (RequestName::of(&m), adapter::key_of(&m));
        self.forwarded.push_back(Forwarded { at: now, server, name, key, verified });
    }

    fn on_server_path(&self, ifindex: u32) -> bool {
        if self.upstream.is_empty() {
            !self.downstream.contains(&ifindex)
        } else {
            self.upstream.contains(&ifindex)
        }
    }

    /// Judge a reply `m` arriving at `now` (engine clock) on `ifindex` from `src`.
    pub fn judge<T: AsRef<[u8]>>(&self, now: Millis, ifindex: u32, src: Ipv4Addr, m: &Message<T>) -> Judgement {
        if !self.on_server_path(ifindex) {
            return Judgement::Forged("arrived on a downstream interface");
        }
        if !self.servers.contains(&src) {
            return Judgement::Forged("not from a configured server");
        }
        if is_leasequery_answer(m) {
            // RFC 4388: the answer names the client the server leased the address to, not
            // the query; it answers the query with its xid, giaddr and address.
            let asked = self.leasequeries.iter().any(|q| {
                q.server == src
                    && q.xid == m.xid()
                    && q.giaddr == m.giaddr()
                    && q.ciaddr == m.ciaddr()
                    && now.saturating_sub(q.at) <= WINDOW
            });
            if !asked {
                return Judgement::Forged("answers no leasequery sent to that server (xid, giaddr, ciaddr)");
            }
            return Judgement::Genuine(BTreeSet::from([adapter::key_of(m)]));
        }
        let name = RequestName::of(m);
        let answered: Vec<&Forwarded> = self
            .forwarded
            .iter()
            .filter(|f| f.server == src && f.name == name && now.saturating_sub(f.at) <= WINDOW)
            .collect();
        if answered.is_empty() {
            return Judgement::Forged("answers no request forwarded to that server (xid, htype, chaddr, giaddr)");
        }
        Judgement::Genuine(answered.iter().filter(|f| f.verified).map(|f| f.key.clone()).collect())
    }

    /// Remember a genuine reply (after [`Oracle::judge`] said so); `by_server`: a model
    /// server sent it (not a copy the fuzzer made).
    pub fn accept<T: AsRef<[u8]>>(&mut self, m: &Message<T>, keys: BTreeSet<Vec<u8>>, by_server: bool) {
        let c = canonical(m);
        if by_server {
            self.sent.insert(c.clone());
        }
        if keys.iter().any(|k| adapter::is_pool_key(k)) {
            let p = pool_form(m);
            if by_server {
                self.pool_sent.insert(p.clone());
            }
            self.pool_genuine.insert(p);
        }
        self.genuine.entry(c).or_default().extend(keys);
        self.relayed.insert(RelayedName::of(m));
    }

    /// Is `reply` one a model server really sent, in answer to the client `key` and to no
    /// other? (Two clients' requests with one xid, htype, chaddr and giaddr, told apart by
    /// option 61 alone, get replies that name either: who the server answered is known to
    /// the server only.)
    pub fn really_sent(&self, key: &[u8], reply: &[u8]) -> bool {
        let Ok(m) = Message::new_checked(reply) else { return false };
        let c = canonical(&m);
        self.sent.contains(&c) && self.genuine.get(&c).is_some_and(|keys| keys.len() == 1 && keys.contains(key))
    }

    /// Is `reply`, held by a pool client's record, one a model server really sent to a pool
    /// identity (given to the client with its own hardware address)?
    pub fn really_sent_to_pool(&self, reply: &[u8]) -> bool {
        Message::new_checked(reply).is_ok_and(|m| self.pool_sent.contains(&pool_form(&m)))
    }

    /// A record restored from the store holds this reply: what the store kept is trusted.
    pub fn trust_stored(&mut self, key: &[u8], reply: &[u8], pool: bool) {
        if let Ok(m) = Message::new_checked(reply) {
            self.genuine.entry(canonical(&m)).or_default().insert(key.to_vec());
            if pool {
                self.pool_genuine.insert(pool_form(&m));
            }
        }
    }

    /// A pool entry restored from the store holds this ACK: trusted as a server's, for the
    /// pool clients it will be given to (the fuzzer never damages a pool entry's record).
    pub fn trust_stored_pool_entry(&mut self, reply: &[u8]) {
        if let Ok(m) = Message::new_checked(reply) {
            self.pool_genuine.insert(pool_form(&m));
            self.pool_sent.insert(pool_form(&m));
        }
    }

    /// May the record of `key` hold `reply`? `pool`: the record is a pool client's (its
    /// reply is then a pool identity's, given to it: [`pool_form`]). `Err` says why not.
    pub fn check_cached(&self, key: &[u8], reply: &[u8], pool: bool) -> Result<(), &'static str> {
        let Ok(m) = Message::new_checked(reply) else { return Err("the cached reply does not parse") };
        if pool && self.pool_genuine.contains(&pool_form(&m)) {
            return Ok(());
        }
        match self.genuine.get(&canonical(&m)) {
            None => Err("no server sent this reply in answer to a request the engine forwarded"),
            Some(keys) if !keys.contains(key) => Err("a genuine reply, but to another client's request"),
            Some(_) => Ok(()),
        }
    }

    /// May the engine relay `m` to a client (is it a genuine reply it received)?
    pub fn check_relayed<T: AsRef<[u8]>>(&self, m: &Message<T>) -> bool {
        self.relayed.contains(&RelayedName::of(m))
    }

    /// Forwarded requests to `server` naming `chaddr`, newest first (for forging replies).
    pub fn recent_requests(&self) -> impl Iterator<Item = (&RequestName, Ipv4Addr, Millis)> + '_ {
        self.forwarded.iter().rev().map(|f| (&f.name, f.server, f.at))
    }

    /// Is any request from `chaddr` outstanding at `now` (engine clock)?
    pub fn asked(&self, now: Millis, chaddr: &[u8]) -> bool {
        self.forwarded.iter().any(|f| f.name.chaddr == chaddr && now.saturating_sub(f.at) <= WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdra_sim::msg::build;
    use cdra_wire::MessageType;

    fn request(xid: u32, mac: [u8; 6], giaddr: Ipv4Addr) -> Vec<u8> {
        build(Op::BootRequest, Some(MessageType::Request), |b| {
            b.xid(xid).giaddr(giaddr).chaddr(1, &mac);
            Ok(())
        })
    }

    fn reply(xid: u32, mac: [u8; 6], giaddr: Ipv4Addr) -> Vec<u8> {
        build(Op::BootReply, Some(MessageType::Ack), |b| {
            b.xid(xid).giaddr(giaddr).chaddr(1, &mac).yiaddr(Ipv4Addr::new(10, 0, 0, 5));
            b.options().option_u32(OptionCode::LEASE_TIME, 60)
        })
    }

    #[test]
    fn genuine_only_on_the_server_path_from_the_server_asked_naming_the_request() {
        let (s1, s2) = (Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 9));
        let gi = Ipv4Addr::new(10, 77, 1, 1);
        let mut o = Oracle::new(vec![s1, s2], vec![2, 3], vec![10]);
        let mac = [2, 0, 0, 0, 0, 1];
        o.forwarded(1000, s1, &request(7, mac, gi), true);
        let r = reply(7, mac, gi);
        let m = Message::new_checked(&r[..]).unwrap();
        assert!(matches!(o.judge(1500, 10, s1, &m), Judgement::Genuine(_)));
        assert!(matches!(o.judge(1500, 2, s1, &m), Judgement::Forged(_)), "downstream");
        assert!(matches!(o.judge(1500, 10, s2, &m), Judgement::Forged(_)), "not the server asked");
        assert!(matches!(o.judge(1000 + WINDOW + 1, 10, s1, &m), Judgement::Forged(_)), "too late");
        let other = reply(8, mac, gi);
        let m8 = Message::new_checked(&other[..]).unwrap();
        assert!(matches!(o.judge(1500, 10, s1, &m8), Judgement::Forged(_)), "another xid");
        let Judgement::Genuine(keys) = o.judge(1500, 10, s1, &m) else { unreachable!() };
        let key = keys.iter().next().unwrap().clone();
        assert!(o.check_cached(&key, &r, false).is_err(), "not accepted yet");
        o.accept(&m, keys, false);
        assert!(o.check_cached(&key, &r, false).is_ok());
        assert!(!o.really_sent(&key, &r), "a copy the fuzzer made");
        let Judgement::Genuine(keys) = o.judge(1500, 10, s1, &m) else { unreachable!() };
        o.accept(&m, keys, true);
        assert!(o.really_sent(&key, &r));
        assert!(o.check_cached(&adapter::hardware_key(1, &[2, 0, 0, 0, 0, 2]), &r, false).is_err(), "another client");
        // A cache keeps no xid: the reply to another xid is, as cached, the reply accepted.
        assert!(o.check_cached(&key, &other, false).is_ok());
        let unsent = build(Op::BootReply, Some(MessageType::Ack), |b| {
            b.xid(7).giaddr(gi).chaddr(1, &mac).yiaddr(Ipv4Addr::new(10, 0, 0, 5));
            b.options().option_u32(OptionCode::LEASE_TIME, 61)
        });
        assert!(o.check_cached(&key, &unsent, false).is_err(), "a lease no server gave");
        assert!(o.check_cached(&key, &unsent, true).is_err(), "not a pool identity's reply");
        assert!(o.check_relayed(&m) && !o.check_relayed(&m8));
        // A request from another host's frame: its reply is genuine, for nobody's record.
        let mac9 = [2, 0, 0, 0, 0, 9];
        o.forwarded(1000, s1, &request(9, mac9, gi), false);
        let r9 = reply(9, mac9, gi);
        let m9 = Message::new_checked(&r9[..]).unwrap();
        assert_eq!(o.judge(1500, 10, s1, &m9), Judgement::Genuine(BTreeSet::new()));
    }

    #[test]
    fn a_pool_client_may_hold_its_pool_identitys_reply_with_its_own_hardware_address() {
        let s1 = Ipv4Addr::new(10, 77, 0, 1);
        let gi = Ipv4Addr::new(10, 77, 1, 1);
        let mut o = Oracle::new(vec![s1], vec![2, 3], vec![10]);
        let id = cdra_core::pool::PoolIdentity::new(gi, 0);
        let req = build(Op::BootRequest, Some(MessageType::Request), |b| {
            b.xid(5).giaddr(gi).chaddr(1, &id.mac);
            b.options().option(OptionCode::CLIENT_ID, &id.client_id)
        });
        o.forwarded(1000, s1, &req, true);
        let ack = reply(5, id.mac, gi);
        let m = Message::new_checked(&ack[..]).unwrap();
        let Judgement::Genuine(keys) = o.judge(1500, 10, s1, &m) else { panic!("genuine") };
        assert!(keys.iter().all(|k| adapter::is_pool_key(k)));
        o.accept(&m, keys, true);
        let mut given = ack.clone();
        Message::new_checked(&mut given[..]).unwrap().set_hardware(1, &[2, 0, 0, 0, 0, 7]);
        let client = adapter::hardware_key(1, &[2, 0, 0, 0, 0, 7]);
        assert!(o.check_cached(&client, &given, true).is_ok());
        assert!(o.really_sent_to_pool(&given));
        assert!(o.check_cached(&client, &given, false).is_err(), "not a pool client's record");
    }
}
