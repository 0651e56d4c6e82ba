//! A model DHCP server (RFC 2131 section 4.3), small but strict enough to catch a relay or
//! proxy that misbehaves:
//!
//! - one address pool per subnet, the subnet chosen by `giaddr` (or `ciaddr` for a renewal
//!   unicast straight to the server); several servers get disjoint ranges;
//! - a lease database keyed by client identifier (option 61), else `htype`+`chaddr`, one
//!   lease per client per subnet (a new address ends the previous lease, as in Kea);
//! - allocation (RFC 2131 4.3.1): the client's current or previous address, else the
//!   requested one, else the *lowest* free address of the range, so a released or expired
//!   address is handed out again at once (this is what makes the paper's Appendix A
//!   scenarios bite);
//! - authoritative: an INIT-REBOOT or renewal for an address it did not lease to that client
//!   or on the wrong subnet gets a NAK; a SELECTING REQUEST naming another server withdraws
//!   its OFFER; a RELEASE or DECLINE naming another server (option 54) is ignored, as real
//!   servers do, so a proxy that forgets to put the real server id back is caught;
//! - optional lease caching (ISC dhcpd / Kea `cache-threshold`): a renewal early in a lease
//!   is answered with the same lease end and less time left;
//! - BOOTP requests get a static-like binding that never ends; INFORM gets an ACK without
//!   lease options;
//! - replies go to `giaddr`:67 when set, else to `ciaddr`:68.
//!
//! A stopped server receives nothing (the network drops what is sent to it).

use core::net::Ipv4Addr;
use std::collections::{BTreeMap, HashMap, HashSet};

use cdra_core::Ipv4Net;
use cdra_wire::options::OptionCode;
use cdra_wire::{Message, MessageBuilder, MessageType, Op};

use cdra_core::leasequery::{DHCPLEASEACTIVE as LEASEACTIVE, DHCPLEASEQUERY as LEASEQUERY};
use cdra_core::leasequery::{DHCPLEASEUNASSIGNED as LEASEUNASSIGNED, DHCPLEASEUNKNOWN as LEASEUNKNOWN};

use crate::msg::{build, client_key, Kind, KindCounts, Summary};
use crate::sched::Millis;

/// An address range on one subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// The subnet (matched against `giaddr`); its mask goes into option 1.
    pub subnet: Ipv4Net,
    /// Option 3.
    pub router: Ipv4Addr,
    /// First address handed out.
    pub first: Ipv4Addr,
    /// Last address handed out.
    pub last: Ipv4Addr,
}

impl Pool {
    /// Is `a` in the range?
    pub fn in_range(&self, a: Ipv4Addr) -> bool {
        (u32::from(self.first)..=u32::from(self.last)).contains(&u32::from(a))
    }
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Its address (option 54; where it is reached).
    pub addr: Ipv4Addr,
    /// Pools, one per subnet.
    pub pools: Vec<Pool>,
    /// Lease time granted, seconds.
    pub lease_secs: u32,
    /// T1, seconds (default half the lease).
    pub t1_secs: Option<u32>,
    /// T2, seconds (default 7/8 of the lease).
    pub t2_secs: Option<u32>,
    /// How long an OFFER reserves its address, seconds.
    pub offer_hold_secs: u32,
    /// How long a declined address stays out of use, seconds.
    pub decline_hold_secs: u32,
    /// Lease caching: a renewal arriving before this fraction of the lease has passed gets
    /// the same lease end (less time left) instead of a new lease.
    pub cache_threshold: Option<f64>,
    /// Answer BOOTP requests.
    pub answer_bootp: bool,
    /// Answer RFC 4388 DHCPLEASEQUERY by address (as ISC dhcpd with `allow leasequery;`:
    /// a DHCPLEASEACTIVE holds the lease times left, option 61 and the client's chaddr, no
    /// configuration; a DHCPLEASEUNASSIGNED or UNKNOWN holds the relay subnet's mask and
    /// router). Off: ignored, as Kea without its hook and dnsmasq do.
    pub answer_leasequery: bool,
    /// Keep a log of every message received (for step-by-step tests).
    pub keep_log: bool,
}

impl ServerConfig {
    /// A server at `addr` with `pools`, 1-hour leases and defaults for the rest.
    pub fn new(addr: Ipv4Addr, pools: Vec<Pool>) -> Self {
        ServerConfig {
            addr,
            pools,
            lease_secs: 3600,
            t1_secs: None,
            t2_secs: None,
            offer_hold_secs: 30,
            decline_hold_secs: 3600,
            cache_threshold: None,
            answer_bootp: true,
            answer_leasequery: false,
            keep_log: true,
        }
    }
}

/// What an address's lease record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// Leased until `end`.
    Bound,
    /// Released by the client at `end`.
    Released,
    /// Declined; unusable until `end`.
    Declined,
    /// A BOOTP binding (never ends).
    Bootp,
}

/// One address's lease record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// Who it was leased to.
    pub key: Vec<u8>,
    /// Its hardware type and address (what a DHCPLEASEACTIVE names).
    pub hardware: (u8, Vec<u8>),
    /// State.
    pub state: LeaseState,
    /// When the lease started.
    pub start: Millis,
    /// When it ends (`Millis::MAX`: never).
    pub end: Millis,
}

/// How a REQUEST looks to the server (RFC 2131 4.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestClass {
    /// Option 54 present: the answer to an OFFER.
    Selecting,
    /// Option 50, no `ciaddr`, no option 54.
    InitReboot,
    /// `ciaddr` set and no relay (`giaddr` 0): a RENEWING client unicasting to us.
    CiaddrDirect,
    /// `ciaddr` set, through a relay: REBINDING (or a renewal a proxy forwarded).
    CiaddrRelayed,
    /// None of the above.
    Malformed,
}

impl RequestClass {
    /// Number of classes.
    pub const COUNT: usize = 5;

    /// Classify a REQUEST.
    pub fn of<T: AsRef<[u8]>>(m: &Message<T>) -> RequestClass {
        let ci = !m.ciaddr().is_unspecified();
        if m.server_identifier().is_some() && !ci {
            RequestClass::Selecting
        } else if ci {
            if m.giaddr().is_unspecified() {
                RequestClass::CiaddrDirect
            } else {
                RequestClass::CiaddrRelayed
            }
        } else if m.requested_ip().is_some() {
            RequestClass::InitReboot
        } else {
            RequestClass::Malformed
        }
    }
}

/// Counters of one server.
#[derive(Debug, Clone, Default)]
pub struct ServerStats {
    /// Messages received, by kind.
    pub received: KindCounts,
    /// Replies sent, by kind.
    pub sent: KindCounts,
    /// REQUESTs received, by [`RequestClass`] (index = `as usize`).
    pub requests: [u64; RequestClass::COUNT],
    /// REQUEST / RELEASE / DECLINE naming another server in option 54.
    pub other_server_id: u64,
    /// Requests answered with silence for want of a free address.
    pub no_address: u64,
    /// Requests ignored (unknown subnet, not our range, nothing to say).
    pub silent: u64,
    /// Renewals answered from the lease cache (same lease end).
    pub cached_renewals: u64,
    /// RELEASEs that freed a lease.
    pub releases_applied: u64,
    /// DECLINEs that took an address out of use.
    pub declines_applied: u64,
    /// DHCPLEASEQUERYs answered (`answer_leasequery`).
    pub leasequery_answers: u64,
}

impl ServerStats {
    /// REQUESTs of class `c`.
    pub fn requests_of(&self, c: RequestClass) -> u64 {
        self.requests[c as usize]
    }
}

/// A reply and where the server sends it.
#[derive(Debug, Clone)]
pub struct ServerReply {
    /// Destination IP (giaddr or ciaddr).
    pub dst: Ipv4Addr,
    /// Destination port (67 to a relay, 68 to a client).
    pub port: u16,
    /// The DHCP payload.
    pub data: Vec<u8>,
}

/// The model server.
#[derive(Debug)]
pub struct ModelServer {
    cfg: ServerConfig,
    up: bool,
    leases: BTreeMap<Ipv4Addr, LeaseRecord>,
    /// (client key, pool index) -> the address last leased to it there.
    by_key: HashMap<(Vec<u8>, usize), Ipv4Addr>,
    /// Pending OFFERs: address -> (client key, held until).
    offers: HashMap<Ipv4Addr, (Vec<u8>, Millis)>,
    /// Counters.
    pub stats: ServerStats,
    /// (time received, summary) of every message, when `keep_log`.
    pub log: Vec<(Millis, Summary)>,
    xids: HashSet<u32>,
    touched: Vec<Ipv4Addr>,
}

impl ModelServer {
    /// A running server.
    pub fn new(cfg: ServerConfig) -> Self {
        ModelServer {
            cfg,
            up: true,
            leases: BTreeMap::new(),
            by_key: HashMap::new(),
            offers: HashMap::new(),
            stats: ServerStats::default(),
            log: Vec::new(),
            xids: HashSet::new(),
            touched: Vec::new(),
        }
    }

    /// Its address.
    pub fn addr(&self) -> Ipv4Addr {
        self.cfg.addr
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.cfg
    }

    /// Change the lease time granted from now on (the paper's A.1 case 2 needs a server
    /// whose lease length changes).
    pub fn set_lease_secs(&mut self, secs: u32) {
        self.cfg.lease_secs = secs;
        self.cfg.t1_secs = None;
        self.cfg.t2_secs = None;
    }

    /// Is it running?
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Stop or start it (the lease database survives).
    pub fn set_up(&mut self, up: bool) {
        self.up = up;
    }

    /// Did it receive a client message with this xid?
    pub fn saw_xid(&self, xid: u32) -> bool {
        self.xids.contains(&xid)
    }

    /// Does one of its ranges hold `a`?
    pub fn owns(&self, a: Ipv4Addr) -> bool {
        self.cfg.pools.iter().any(|p| p.in_range(a))
    }

    /// The lease record of `a`.
    pub fn lease(&self, a: Ipv4Addr) -> Option<&LeaseRecord> {
        self.leases.get(&a)
    }

    /// Every lease record, by address.
    pub fn leases(&self) -> impl Iterator<Item = (&Ipv4Addr, &LeaseRecord)> {
        self.leases.iter()
    }

    /// The binding the invariant checker compares clients against: who the address was
    /// last leased to and until when (a released lease ends at its release; a declined
    /// address is bound to nobody).
    pub fn binding(&self, a: Ipv4Addr) -> Option<(&[u8], Millis)> {
        let r = self.leases.get(&a)?;
        match r.state {
            LeaseState::Bound | LeaseState::Released | LeaseState::Bootp => Some((&r.key, r.end)),
            LeaseState::Declined => None,
        }
    }

    /// Forget the lease of `a` (a server that lost part of its database; for checking the
    /// checker).
    pub fn drop_lease(&mut self, a: Ipv4Addr) {
        if self.leases.remove(&a).is_some() {
            self.touched.push(a);
        }
    }

    /// Addresses whose binding changed since the last call (for the invariant checker).
    pub fn take_touched(&mut self) -> Vec<Ipv4Addr> {
        std::mem::take(&mut self.touched)
    }

    fn lease_ms(secs: u32) -> Millis {
        u64::from(secs) * 1000
    }

    fn pool_for(&self, a: Ipv4Addr) -> Option<usize> {
        if a.is_unspecified() {
            return None;
        }
        self.cfg.pools.iter().position(|p| p.subnet.contains(a))
    }

    /// May `a` be given to `key` now?
    fn available(&self, a: Ipv4Addr, key: &[u8], now: Millis) -> bool {
        if let Some((k, until)) = self.offers.get(&a) {
            if k.as_slice() != key && *until > now {
                return false;
            }
        }
        match self.leases.get(&a) {
            None => true,
            Some(r) => match r.state {
                LeaseState::Declined => r.end <= now,
                _ if r.key.as_slice() == key => true,
                LeaseState::Bound => r.end <= now,
                LeaseState::Released => true,
                LeaseState::Bootp => false,
            },
        }
    }

    /// RFC 2131 4.3.1 address selection.
    fn choose(&self, pool: usize, key: &[u8], requested: Option<Ipv4Addr>, now: Millis) -> Option<Ipv4Addr> {
        let p = self.cfg.pools.get(pool)?;
        if let Some(&a) = self.by_key.get(&(key.to_vec(), pool)) {
            if p.in_range(a) && self.available(a, key, now) {
                return Some(a);
            }
        }
        if let Some(a) = requested {
            if p.in_range(a) && self.available(a, key, now) {
                return Some(a);
            }
        }
        (u32::from(p.first)..=u32::from(p.last)).map(Ipv4Addr::from).find(|&a| self.available(a, key, now))
    }

    /// Handle one datagram `data` from IP `src` at `now`; returns the reply, if any.
    /// The caller must not deliver anything to a stopped server.
    pub fn handle(&mut self, now: Millis, _src: Ipv4Addr, data: &[u8]) -> Option<ServerReply> {
        let m = Message::new_checked(data).ok()?;
        if m.op() != Op::BootRequest {
            return None;
        }
        let kind = Kind::of(&m);
        self.stats.received.bump(kind);
        self.xids.insert(m.xid());
        if self.cfg.keep_log {
            self.log.push((now, Summary::of(&m)));
        }
        let key = client_key(&m);
        match kind {
            Kind::Discover => self.discover(now, &m, &key),
            Kind::Request => self.request(now, &m, &key),
            Kind::Release => {
                self.release(now, &m, &key);
                None
            }
            Kind::Decline => {
                self.decline(now, &m, &key);
                None
            }
            Kind::Inform => self.inform(&m),
            Kind::BootRequest => self.bootp(now, &m, &key),
            _ if self.cfg.answer_leasequery && m.message_type() == Some(MessageType::Other(LEASEQUERY)) => {
                self.leasequery(now, &m)
            }
            _ => {
                self.stats.silent += 1;
                None
            }
        }
    }

    fn discover(&mut self, now: Millis, m: &Message<&[u8]>, key: &[u8]) -> Option<ServerReply> {
        let Some(pool) = self.pool_for(m.giaddr()) else {
            self.stats.silent += 1;
            return None;
        };
        let Some(a) = self.choose(pool, key, m.requested_ip(), now) else {
            self.stats.no_address += 1;
            return None;
        };
        self.offers.retain(|_, (k, _)| k.as_slice() != key);
        self.offers.insert(a, (key.to_vec(), now + Self::lease_ms(self.cfg.offer_hold_secs)));
        let secs = self.cfg.lease_secs;
        self.reply(m, MessageType::Offer, a, Some(secs), pool)
    }

    fn request(&mut self, now: Millis, m: &Message<&[u8]>, key: &[u8]) -> Option<ServerReply> {
        let class = RequestClass::of(m);
        self.stats.requests[class as usize] += 1;
        match class {
            RequestClass::Selecting => {
                // RFC 2131 4.3.2: a REQUEST naming another server means the client declined
                // our OFFER.
                if m.server_identifier() != Some(self.cfg.addr) {
                    self.stats.other_server_id += 1;
                    self.offers.retain(|_, (k, _)| k.as_slice() != key);
                    return None;
                }
                let a = m.requested_ip().unwrap_or(m.yiaddr());
                let pool = self.pool_for(m.giaddr());
                match pool {
                    Some(p) if self.cfg.pools[p].in_range(a) && self.available(a, key, now) => {
                        self.bind(now, m, key, a, p)
                    }
                    Some(_) => self.nak(m),
                    None => {
                        self.stats.silent += 1;
                        None
                    }
                }
            }
            RequestClass::InitReboot => {
                let a = m.requested_ip().unwrap_or(Ipv4Addr::UNSPECIFIED);
                let Some(p) = self.pool_for(m.giaddr()) else {
                    self.stats.silent += 1;
                    return None;
                };
                // RFC 2131 4.3.2 INIT-REBOOT: "the server SHOULD send a DHCPNAK message to
                // the client if the 'requested IP address' is incorrect, or is on the wrong
                // network".
                if !self.cfg.pools[p].subnet.contains(a) {
                    return self.nak(m);
                }
                if !self.cfg.pools[p].in_range(a) {
                    // Another server's range on this subnet: not ours to judge.
                    self.stats.silent += 1;
                    return None;
                }
                if self.leased_to(a, key, now) {
                    self.bind(now, m, key, a, p)
                } else {
                    self.nak(m)
                }
            }
            RequestClass::CiaddrDirect | RequestClass::CiaddrRelayed => {
                let a = m.ciaddr();
                if class == RequestClass::CiaddrRelayed {
                    let right_net = self.pool_for(m.giaddr()).is_some_and(|p| self.cfg.pools[p].subnet.contains(a));
                    if !right_net {
                        return self.nak(m);
                    }
                }
                let Some(p) = self.pool_for(a) else {
                    self.stats.silent += 1;
                    return None;
                };
                if !self.cfg.pools[p].in_range(a) {
                    self.stats.silent += 1;
                    return None;
                }
                if !self.leased_to(a, key, now) {
                    return self.nak(m);
                }
                // Lease caching: early in the lease, answer with the same end.
                if let (Some(th), Some(r)) = (self.cfg.cache_threshold, self.leases.get(&a)) {
                    let age = now.saturating_sub(r.start);
                    let len = r.end.saturating_sub(r.start);
                    if r.state == LeaseState::Bound && r.end > now && (age as f64) < th * len as f64 {
                        let left = ((r.end - now) / 1000) as u32;
                        self.stats.cached_renewals += 1;
                        return self.reply(m, MessageType::Ack, a, Some(left), p);
                    }
                }
                self.bind(now, m, key, a, p)
            }
            RequestClass::Malformed => {
                self.stats.silent += 1;
                None
            }
        }
    }

    /// Was `a` leased to `key`, and is it still not someone else's?
    fn leased_to(&self, a: Ipv4Addr, key: &[u8], now: Millis) -> bool {
        match self.leases.get(&a) {
            Some(r) if r.key.as_slice() == key => match r.state {
                LeaseState::Bound | LeaseState::Released | LeaseState::Bootp => self.available(a, key, now),
                LeaseState::Declined => false,
            },
            _ => false,
        }
    }

    fn bind(&mut self, now: Millis, m: &Message<&[u8]>, key: &[u8], a: Ipv4Addr, pool: usize) -> Option<ServerReply> {
        let secs = self.cfg.lease_secs;
        // One lease per client per subnet, as Kea keeps it (ALLOC_ENGINE_V4_REQUEST_REMOVE_LEASE):
        // granting another address ends the client's lease on the previous one.
        if let Some(&old) = self.by_key.get(&(key.to_vec(), pool)) {
            if old != a {
                if let Some(r) = self.leases.get_mut(&old) {
                    if r.key.as_slice() == key && r.state == LeaseState::Bound && r.end > now {
                        r.state = LeaseState::Released;
                        r.end = now;
                        self.touched.push(old);
                    }
                }
            }
        }
        self.leases.insert(
            a,
            LeaseRecord {
                key: key.to_vec(),
                hardware: (m.htype(), m.chaddr().to_vec()),
                state: LeaseState::Bound,
                start: now,
                end: now + Self::lease_ms(secs),
            },
        );
        self.by_key.insert((key.to_vec(), pool), a);
        self.offers.retain(|_, (k, _)| k.as_slice() != key);
        self.offers.remove(&a);
        self.touched.push(a);
        self.reply(m, MessageType::Ack, a, Some(secs), pool)
    }

    fn release(&mut self, now: Millis, m: &Message<&[u8]>, key: &[u8]) {
        if m.server_identifier().is_some_and(|s| s != self.cfg.addr) {
            self.stats.other_server_id += 1;
            return;
        }
        let a = m.ciaddr();
        if let Some(r) = self.leases.get_mut(&a) {
            if r.key.as_slice() == key && r.state == LeaseState::Bound {
                r.state = LeaseState::Released;
                r.end = r.end.min(now);
                self.stats.releases_applied += 1;
                self.touched.push(a);
            }
        }
    }

    fn decline(&mut self, now: Millis, m: &Message<&[u8]>, key: &[u8]) {
        if m.server_identifier().is_some_and(|s| s != self.cfg.addr) {
            self.stats.other_server_id += 1;
            return;
        }
        let Some(a) = m.requested_ip() else { return };
        if let Some(r) = self.leases.get_mut(&a) {
            if r.key.as_slice() == key {
                r.state = LeaseState::Declined;
                r.start = now;
                r.end = now + Self::lease_ms(self.cfg.decline_hold_secs);
                self.stats.declines_applied += 1;
                self.touched.push(a);
            }
        }
    }

    fn inform(&mut self, m: &Message<&[u8]>) -> Option<ServerReply> {
        let net = if m.giaddr().is_unspecified() { m.ciaddr() } else { m.giaddr() };
        let pool = self.pool_for(net);
        let Some(p) = pool else {
            self.stats.silent += 1;
            return None;
        };
        // RFC 2131 4.3.5: an ACK without lease time and without yiaddr.
        self.reply(m, MessageType::Ack, Ipv4Addr::UNSPECIFIED, None, p)
    }

    /// RFC 4388, query by address (`ciaddr`), answered to the relay (`giaddr`).
    fn leasequery(&mut self, now: Millis, m: &Message<&[u8]>) -> Option<ServerReply> {
        let a = m.ciaddr();
        let active = self.leases.get(&a).filter(|r| r.state == LeaseState::Bound && r.end > now).cloned();
        let relay_pool = self.pool_for(m.giaddr());
        let owned = self.cfg.pools.iter().any(|p| p.in_range(a));
        let (sid, secs_left) = (self.cfg.addr, |end: Millis| ((end.saturating_sub(now)) / 1000) as u32);
        let data = match active {
            Some(r) => {
                let left = secs_left(r.end);
                let t1_at = r.start + (r.end - r.start) / 2;
                let t2_at = r.start + (r.end - r.start) * 7 / 8;
                let id = r.key.strip_prefix(&[1u8][..]).map(<[u8]>::to_vec);
                build(Op::BootReply, Some(MessageType::Other(LEASEACTIVE)), |b| {
                    copy_header(b, m);
                    b.chaddr(r.hardware.0, &r.hardware.1).ciaddr(a);
                    b.options().option_addr(OptionCode::SERVER_ID, sid)?;
                    b.options().option_u32(OptionCode::LEASE_TIME, left)?;
                    // ISC dhcpd leaves T1/T2 out once they have passed.
                    if t1_at > now {
                        b.options().option_u32(OptionCode::RENEWAL_T1, secs_left(t1_at))?;
                    }
                    if t2_at > now {
                        b.options().option_u32(OptionCode::REBINDING_T2, secs_left(t2_at))?;
                    }
                    if let Some(id) = &id {
                        b.options().option(OptionCode::CLIENT_ID, id)?;
                    }
                    Ok(())
                })
            }
            None => {
                let kind = if owned { LEASEUNASSIGNED } else { LEASEUNKNOWN };
                let config = relay_pool.and_then(|p| self.cfg.pools.get(p)).map(|p| (p.subnet.netmask(), p.router));
                build(Op::BootReply, Some(MessageType::Other(kind)), |b| {
                    copy_header(b, m);
                    b.ciaddr(a);
                    b.options().option_addr(OptionCode::SERVER_ID, sid)?;
                    if let Some((mask, router)) = config {
                        b.options().option_addr(OptionCode::SUBNET_MASK, mask)?;
                        b.options().option_addr(OptionCode::ROUTER, router)?;
                    }
                    Ok(())
                })
            }
        };
        self.stats.leasequery_answers += 1;
        self.route(m, data)
    }

    fn bootp(&mut self, now: Millis, m: &Message<&[u8]>, key: &[u8]) -> Option<ServerReply> {
        if !self.cfg.answer_bootp {
            self.stats.silent += 1;
            return None;
        }
        let Some(pool) = self.pool_for(m.giaddr()) else {
            self.stats.silent += 1;
            return None;
        };
        let Some(a) = self.choose(pool, key, None, now) else {
            self.stats.no_address += 1;
            return None;
        };
        self.leases.insert(
            a,
            LeaseRecord {
                key: key.to_vec(),
                hardware: (m.htype(), m.chaddr().to_vec()),
                state: LeaseState::Bootp,
                start: now,
                end: Millis::MAX,
            },
        );
        self.by_key.insert((key.to_vec(), pool), a);
        self.touched.push(a);
        let p = &self.cfg.pools[pool];
        let (mask, router) = (p.subnet.netmask(), p.router);
        let data = build(Op::BootReply, None, |b| {
            copy_header(b, m);
            b.yiaddr(a).siaddr(self.cfg.addr);
            b.options().option_addr(OptionCode::SUBNET_MASK, mask)?;
            b.options().option_addr(OptionCode::ROUTER, router)?;
            Ok(())
        });
        self.stats.sent.bump(Kind::BootReply);
        self.route(m, data)
    }

    fn nak(&mut self, m: &Message<&[u8]>) -> Option<ServerReply> {
        let relayed = !m.giaddr().is_unspecified();
        let data = build(Op::BootReply, Some(MessageType::Nak), |b| {
            copy_header(b, m);
            // RFC 2131 4.3.2: through a relay, set the broadcast bit in a NAK.
            b.ciaddr(Ipv4Addr::UNSPECIFIED).flags(if relayed { 0x8000 } else { m.flags() });
            b.options().option_addr(OptionCode::SERVER_ID, self.cfg.addr)?;
            b.options().option(OptionCode::MESSAGE, b"address not available")?;
            Ok(())
        });
        self.stats.sent.bump(Kind::Nak);
        self.route(m, data)
    }

    fn reply(
        &mut self,
        m: &Message<&[u8]>,
        t: MessageType,
        yiaddr: Ipv4Addr,
        lease: Option<u32>,
        pool: usize,
    ) -> Option<ServerReply> {
        let p = &self.cfg.pools[pool];
        let (mask, router) = (p.subnet.netmask(), p.router);
        let sid = self.cfg.addr;
        let (t1, t2) = match lease {
            Some(l) if l == self.cfg.lease_secs => {
                (self.cfg.t1_secs.unwrap_or(l / 2), self.cfg.t2_secs.unwrap_or((u64::from(l) * 7 / 8) as u32))
            }
            Some(l) => (l / 2, (u64::from(l) * 7 / 8) as u32),
            None => (0, 0),
        };
        let data = build(Op::BootReply, Some(t), |b| {
            copy_header(b, m);
            b.yiaddr(yiaddr);
            // RFC 2131 table 3: ciaddr is copied only into an ACK to a client that has an
            // address (RENEWING/REBINDING/INFORM).
            if t != MessageType::Ack {
                b.ciaddr(Ipv4Addr::UNSPECIFIED);
            }
            b.options().option_addr(OptionCode::SERVER_ID, sid)?;
            if let Some(l) = lease {
                b.options().option_u32(OptionCode::LEASE_TIME, l)?;
                b.options().option_u32(OptionCode::RENEWAL_T1, t1)?;
                b.options().option_u32(OptionCode::REBINDING_T2, t2)?;
            }
            b.options().option_addr(OptionCode::SUBNET_MASK, mask)?;
            b.options().option_addr(OptionCode::ROUTER, router)?;
            Ok(())
        });
        self.stats.sent.bump(if t == MessageType::Offer { Kind::Offer } else { Kind::Ack });
        self.route(m, data)
    }

    /// RFC 2131 4.1: to the relay at `giaddr`:67, else to `ciaddr`:68.
    fn route(&mut self, m: &Message<&[u8]>, data: Vec<u8>) -> Option<ServerReply> {
        if !m.giaddr().is_unspecified() {
            Some(ServerReply { dst: m.giaddr(), port: 67, data })
        } else if !m.ciaddr().is_unspecified() {
            Some(ServerReply { dst: m.ciaddr(), port: 68, data })
        } else {
            self.stats.silent += 1;
            None
        }
    }
}

/// Copy xid, flags, ciaddr, giaddr, htype/chaddr from the request (RFC 2131 table 3).
fn copy_header(b: &mut MessageBuilder<'_>, m: &Message<&[u8]>) {
    b.xid(m.xid()).flags(m.flags()).ciaddr(m.ciaddr()).giaddr(m.giaddr()).chaddr(m.htype(), m.chaddr());
}
