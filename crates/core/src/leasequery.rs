//! RFC 4388 leasequery: refilling the client table from the servers, and settling a record
//! the engine doubts.
//!
//! A caching relay that starts with an empty table (no store, an empty or unreadable one)
//! knows none of the clients its servers have leased addresses to on its links: through a
//! server outage it could answer none of them. RFC 4388 lets a relay agent ask a server
//! what it knows of an address (DHCPLEASEQUERY, written for relays that lost their state);
//! ISC dhcpd answers when configured with `allow leasequery;`. So, when enabled:
//!
//! - **When.** At start-up, if the table is empty once the store has been read and the
//!   relay serves (the first [`crate::timers::Timer::Leasequery`], filed when the engine
//!   is made, fires after a synchronous restore; a daemon that does not serve yet, its
//!   table loading on a thread or its pair's standby, says so with
//!   [`crate::Engine::set_serving`], and the check waits until it serves: a query sent then
//!   would be thrown away, and its server found not to answer); again each time the relay
//!   starts serving after it stopped (a takeover: the table it loads may be empty); and
//!   when a downstream interface is added (a reload, or an interface configured before it
//!   existed coming up with its first address): a *sweep* of each subnet of that link
//!   (`[leasequery] subnets`, default the link's own subnet).
//! - **How fast.** At most `rate` queries a second (a token bucket refilled every
//!   [`TICK`]), at most `max_outstanding` unanswered at once; every address of the subnet
//!   but the network, broadcast and our own, in order, skipping those the table holds.
//!   Leasequery turned off by a reload ends it all.
//! - **What is asked.** Query by IP address (RFC 4388): `ciaddr` the address, `giaddr`
//!   the link's relay address (the answer comes back there, as any relayed reply), `htype`
//!   1 and no hardware address, option 55 naming every option a cache may need
//!   ([`QUERY_PARAMETERS`]). The server is the first configured one not found
//!   unwilling (below).
//! - **What a DHCPLEASEACTIVE becomes.** RFC 4388 has the server return the lease (option
//!   51 holding the time remaining), T1 and T2 relative to the answer, option 61 and chaddr
//!   of the client, and 91/92 when asked — but not the client's
//!   configuration: ISC dhcpd "restart\[s\] the option cache from empty" for it
//!   (dhcpleasequery.c), so the answer holds no subnet mask, router or name server. Those
//!   are the link's: cdra asks for them once per link with a DHCPINFORM (RFC 2131 4.3.5;
//!   ciaddr 0 and giaddr the link's address, which ISC dhcpd answers at giaddr with the
//!   configuration of that subnet, dhcp.c `dhcpinform`), or, until that comes (a non-authoritative ISC subnet
//!   ignores INFORMs), takes them from a DHCPLEASEUNASSIGNED/UNKNOWN for that link that
//!   carries a subnet mask or a router (ISC dhcpd includes the relay's subnet options
//!   there); a configuration without a subnet mask gets the link's own prefix, the subnet
//!   its clients are on. The record's reply is then an ACK made of both: yiaddr the
//!   queried address, htype/chaddr and option 61 from the answer, option 54 the server's, 51/58/59 the
//!   remaining times (a missing 58 or 59 is taken as passed: 0, so the first local answer
//!   also renews upstream, paper 5.3), then the link's options. The lease is counted from
//!   when the query was sent, so it is never believed longer than it is. The record is
//!   stored as a server ACK is (`cache_reply`, `proxy/replies.rs`), with `confirmed = false`: it is
//!   suspect like a restored one (paper 3.4: "information in the client database is
//!   suspect"), so every precaution applies (the probe before a local ACK to SELECTING or
//!   INIT-REBOOT, paper 3.2; the REBIND forwarded first; spoofing mode's suspect RENEW).
//!   Its parameter list is [`QUERY_PARAMETERS`]: the link's configuration was asked with
//!   it, so a client asking for any of those is answered with what the server has.
//! - **Never overwritten.** A DHCPLEASEACTIVE for a client or an address the table already
//!   has (from a real ACK, or a client in the middle of its exchange) is ignored: the
//!   server's own answer to the client is newer than the sweep's.
//! - **Believed like a server ACK** (issue 10's rules, `crate::transactions`): only on an
//!   upstream interface (the engine checks before), from the server the query went to, to
//!   the giaddr of the link it was asked for, with the query's xid (32 random bits), about
//!   the address asked (ciaddr), within `query_timeout`. Anything else is not believed
//!   (`leasequery_reply_rejected`).
//! - **Servers that do not answer** (dnsmasq 2.90, Kea 2.2 without its lease-query hook:
//!   both ignore message type 10, seen in `tests/e2e/test_leasequery.py`): until a
//!   server has answered one, it gets at most `unanswered_limit` queries at a time (so one
//!   that never answers sees only that many); `unanswered_limit` queries in a row
//!   unanswered, or an answer of another kind, mark the
//!   server as not answering leasequery; it gets no more queries until the next sweep
//!   starts, and the addresses it left unanswered are asked of the next server. When no
//!   server is left the sweep is abandoned. Counted; the state of each server is in
//!   [`crate::Engine::leasequery`].
//! - **Settling a doubt.** A lapse probe (paper 3.3) answered by an ICMP echo only (no MAC:
//!   "someone, maybe the client") used to drop the record (Appendix A.2). With leasequery
//!   the server is asked instead: a DHCPLEASEACTIVE naming the same client keeps the record
//!   (the client is still there: nothing released, as when its own MAC answers); one naming
//!   another client, or DHCPLEASEUNASSIGNED/UNKNOWN, drops it; no answer keeps the old
//!   behaviour (dropped). Nothing is released in any case.
//!
//! Bounded: queries outstanding (`max_outstanding`), addresses to ask again (as many), the
//! link configurations (one per downstream slot), one timer.

use core::net::Ipv4Addr;
use core::time::Duration;
use std::collections::VecDeque;

use hashbrown::HashMap;

use cdra_wire::options::OptionCode;
use cdra_wire::{Message, MessageBuilder, MessageType, Op};

use crate::config::Ipv4Net;
use crate::limits::{Rate, TokenBucket};
use crate::table::RecordRef;
use crate::time::Timestamp;

/// RFC 4388 (option 53 values): DHCPLEASEQUERY, the query.
pub const DHCPLEASEQUERY: u8 = 10;
/// DHCPLEASEUNASSIGNED: the server owns the address, and nobody holds it.
pub const DHCPLEASEUNASSIGNED: u8 = 11;
/// DHCPLEASEUNKNOWN: the server knows nothing of the address.
pub const DHCPLEASEUNKNOWN: u8 = 12;
/// DHCPLEASEACTIVE: the address is leased, to the client the answer names.
pub const DHCPLEASEACTIVE: u8 = 13;
/// RFC 4388's client-last-transaction-time option.
pub const CLIENT_LAST_TRANSACTION_TIME: u8 = 91;
/// RFC 4388's associated-ip option.
pub const ASSOCIATED_IP: u8 = 92;

/// How often the sweep's token bucket is looked at.
pub const TICK: Duration = Duration::from_millis(100);

/// Whether option `code` of a server's answer is part of its link's configuration (what
/// every client of the link is given): everything but the options that describe a lease,
/// a client, a message or a query. Denied:
/// - 0 and 255, padding and the end;
/// - 50-61, RFC 2132 section 9's "DHCP Extensions" (requested address, lease time,
///   overload, message type, server identifier, parameter list, message, size, T1, T2,
///   vendor class identifier, client identifier): the lease's or the message's own;
/// - 81, the client's FQDN (RFC 4702); 82, the relay agent information (RFC 3046);
/// - 91 and 92, RFC 4388's client-last-transaction-time and associated-ip: the lease's;
/// - 118, subnet selection: RFC 3011 defines it "for selecting the subnet on which to
///   allocate an address", a question of the requester's that a server echoes, not
///   configuration;
/// - 151-157, RFC 6926's status-code, base-time, start-time-of-state, query-start-time,
///   query-end-time, dhcp-state and data-source, which "allow for bulk transfer of DHCPv4
///   address binding data": they describe an answer or a binding;
/// - 159, the port set (RFC 7618): assigned to one client, as its address is.
///
/// 158 (the PCP server, RFC 7291) is configuration and kept, as is every option not named
/// here (site and vendor options included).
pub fn is_link_option(code: u8) -> bool {
    !matches!(code, 0 | 50..=61 | 81 | 82 | 91 | 92 | 118 | 151..=157 | 159 | 255)
}

/// Option 55 of every query and of the link INFORMs: every option a client could be given
/// (all but the message's own: 50 requested address, 52 overload, 53 type, 55 itself, 56
/// message, 57 size, 82 relay agent information), which includes RFC 4388 6.1's 51, 54,
/// 58, 59, 61, 91 and 92. 247 codes: option 55 holds up to 255.
pub const QUERY_PARAMETERS: [u8; 247] = query_parameters();

const fn query_parameters() -> [u8; 247] {
    let mut out = [0u8; 247];
    let (mut code, mut n) = (1u8, 0usize);
    while code < 255 {
        if !matches!(code, 50 | 52 | 53 | 55 | 56 | 57 | 82) {
            out[n] = code;
            n += 1;
        }
        code += 1;
    }
    out
}

/// Where a link's configuration was learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkConfigSource {
    /// The ACK to the link's DHCPINFORM: what the server gives a client of that subnet.
    Inform,
    /// A DHCPLEASEUNASSIGNED/UNKNOWN for an address of the link carrying the subnet's
    /// options (ISC dhcpd's): used until an INFORM's ACK comes, if one does.
    LeasequeryAnswer,
}

/// What a query asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// A DHCPINFORM for the configuration of the link.
    LinkConfiguration,
    /// A DHCPLEASEQUERY for an address of a sweep.
    Address(Ipv4Addr),
    /// A DHCPLEASEQUERY to settle a doubted record holding this address.
    Settle(Ipv4Addr, RecordRef),
}

/// One query waiting for its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    /// What it asked.
    pub asked: Asked,
    /// The downstream link it was asked for (its giaddr).
    pub link: u16,
    /// The server it went to.
    pub server: usize,
    /// When it was sent.
    pub sent_at: Timestamp,
    /// How many times its address was asked before (of servers that did not answer).
    pub tries: u8,
}

/// The next thing to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    /// The downstream link.
    pub link: u16,
    /// The address to ask about; `None`: the link's configuration.
    pub address: Option<Ipv4Addr>,
    /// How many times it was asked before.
    pub tries: u8,
}

/// Whether a server answers leasequery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Willingness {
    /// Not asked yet (or asked, no verdict yet).
    #[default]
    Unknown,
    /// It has answered a DHCPLEASEQUERY.
    Answers,
    /// It left `unanswered_limit` queries in a row unanswered, or answered with something
    /// else: no queries until the next sweep.
    NotAnswering,
}

impl Willingness {
    /// Its name in metrics and status output.
    pub fn label(self) -> &'static str {
        match self {
            Willingness::Unknown => "unknown",
            Willingness::Answers => "answers",
            Willingness::NotAnswering => "not_answering",
        }
    }
}

/// What is known of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServerLeasequery {
    /// Whether it answers.
    pub willingness: Willingness,
    /// Queries unanswered in a row.
    pub unanswered: u32,
}

/// A subnet being swept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sweep {
    link: u16,
    /// The next address to ask about, and the last.
    next: u32,
    last: u32,
}

/// The leasequery state (see the module docs). Its fields are this module's and
/// `proxy`'s to touch.
#[derive(Debug)]
pub struct LeasequeryState {
    sweeps: VecDeque<Sweep>,
    /// Addresses to ask again (their server turned out not to answer; or active before the
    /// link's configuration was known), at most `max_outstanding`.
    again: VecDeque<Work>,
    /// Links whose configuration is to be asked for.
    inform_due: VecDeque<u16>,
    /// Active addresses whose link's configuration is not known yet, at most
    /// `max_outstanding`: asked again once it is.
    waiting_config: Vec<(u16, Ipv4Addr)>,
    /// Each downstream slot's configuration: the options (TLVs, no END) its server gives,
    /// and where they were learned.
    link_config: Vec<Option<(Box<[u8]>, LinkConfigSource)>>,
    outstanding: HashMap<u32, Query>,
    /// Sending order of the outstanding queries (xid), for their timeouts.
    order: VecDeque<(Timestamp, u32)>,
    budget: TokenBucket,
    servers: Vec<ServerLeasequery>,
    /// The one [`crate::timers::Timer::Leasequery`] is filed.
    pub(crate) timer_filed: bool,
    /// The start-up check (an empty table once the relay serves) was done.
    pub(crate) started: bool,
    /// False while the relay does not serve (its store loading, or standby: what the
    /// engine sends is not sent, [`crate::Engine::set_serving`]): nothing is asked, and
    /// the start-up check waits.
    pub(crate) serving: bool,
}

impl LeasequeryState {
    /// State for `servers` servers.
    pub fn new(servers: usize) -> Self {
        LeasequeryState {
            sweeps: VecDeque::new(),
            again: VecDeque::new(),
            inform_due: VecDeque::new(),
            waiting_config: Vec::new(),
            link_config: Vec::new(),
            outstanding: HashMap::new(),
            order: VecDeque::new(),
            budget: TokenBucket::full(),
            servers: vec![ServerLeasequery::default(); servers],
            timer_filed: false,
            started: false,
            serving: true,
        }
    }

    /// Queries waiting for an answer.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// DHCPLEASEQUERYs waiting for an answer from server `i`.
    pub(crate) fn queries_waiting_on(&self, i: usize) -> usize {
        self.outstanding.values().filter(|q| q.server == i && q.asked != Asked::LinkConfiguration).count()
    }

    /// Subnets still to sweep (the one in progress included).
    pub fn sweeps_left(&self) -> usize {
        self.sweeps.len()
    }

    /// What is known of each configured server, in configuration order.
    pub fn servers(&self) -> &[ServerLeasequery] {
        &self.servers
    }

    /// Is there anything to send?
    pub(crate) fn has_work(&self) -> bool {
        !self.sweeps.is_empty() || !self.again.is_empty() || !self.inform_due.is_empty()
    }

    /// Is there anything to send or wait for?
    pub(crate) fn busy(&self) -> bool {
        self.has_work() || !self.outstanding.is_empty()
    }

    /// `address` of `link` is active but the link's configuration is not known: asked again
    /// once it is. False when that list is full.
    pub(crate) fn wait_for_link_config(&mut self, link: u16, address: Ipv4Addr, bound: usize) -> bool {
        if self.waiting_config.len() >= bound {
            return false;
        }
        self.waiting_config.push((link, address));
        true
    }

    /// Nothing left to send or wait for: the addresses still waiting for their link's
    /// configuration will not get it. Returns how many were given up.
    pub(crate) fn give_up_waiting_if_idle(&mut self) -> usize {
        if self.busy() {
            return 0;
        }
        let n = self.waiting_config.len();
        self.waiting_config.clear();
        n
    }

    /// The outstanding query with this xid.
    pub(crate) fn query(&self, xid: u32) -> Option<Query> {
        self.outstanding.get(&xid).copied()
    }

    /// Forget the query `xid` (answered).
    pub(crate) fn answered(&mut self, xid: u32) {
        self.outstanding.remove(&xid);
    }

    /// A query sent.
    pub(crate) fn sent(&mut self, xid: u32, q: Query) {
        self.outstanding.insert(xid, q);
        self.order.push_back((q.sent_at, xid));
    }

    /// Queries sent `timeout` or more before `now` and still unanswered, removed.
    pub(crate) fn timed_out(&mut self, now: Timestamp, timeout: Duration) -> Vec<Query> {
        let mut out = Vec::new();
        while let Some(&(at, xid)) = self.order.front() {
            if now.since(at) < timeout {
                break;
            }
            self.order.pop_front();
            if let Some(q) = self.outstanding.get(&xid).filter(|q| q.sent_at == at).copied() {
                self.outstanding.remove(&xid);
                out.push(q);
            }
        }
        out
    }

    /// Sweep `subnet` on `link`: every address but the network's, the broadcast and ours
    /// (skipped when sent). A sweep of the same subnet already queued is not repeated.
    pub(crate) fn queue_sweep(&mut self, link: usize, subnet: Ipv4Net) -> bool {
        let mask = u32::from(subnet.netmask());
        let network = u32::from(subnet.addr) & mask;
        let broadcast = network | !mask;
        let (first, last) = if subnet.prefix_len >= 31 { (network, broadcast) } else { (network + 1, broadcast - 1) };
        let sweep = Sweep { link: link as u16, next: first, last };
        if self.sweeps.iter().any(|s| s.link == sweep.link && s.last == last) {
            return false;
        }
        self.sweeps.push_back(sweep);
        if !self.inform_due.contains(&sweep.link) {
            self.inform_due.push_back(sweep.link);
        }
        // A new sweep gives every server another chance (RFC 4388 support may have been
        // turned on since).
        for s in &mut self.servers {
            if s.willingness == Willingness::NotAnswering {
                *s = ServerLeasequery::default();
            }
        }
        true
    }

    /// The next thing to send: a link's INFORM, an address to ask again, or the next
    /// address of the sweep in progress.
    pub(crate) fn next_work(&mut self) -> Option<Work> {
        if let Some(link) = self.inform_due.pop_front() {
            return Some(Work { link, address: None, tries: 0 });
        }
        if let Some(w) = self.again.pop_front() {
            return Some(w);
        }
        while let Some(s) = self.sweeps.front_mut() {
            if s.next > s.last {
                self.sweeps.pop_front();
                continue;
            }
            let a = Ipv4Addr::from(s.next);
            s.next = s.next.saturating_add(1);
            if s.next == 0 {
                // Wrapped past 255.255.255.255: the sweep is over.
                s.next = 1;
                s.last = 0;
            }
            return Some(Work { link: s.link, address: Some(a), tries: 0 });
        }
        None
    }

    /// Ask about `address` of `link` again later (`tries` times asked so far); false when
    /// that list is full.
    pub(crate) fn ask_again(&mut self, link: u16, address: Ipv4Addr, tries: u8, bound: usize) -> bool {
        if self.again.len() >= bound {
            return false;
        }
        self.again.push_back(Work { link, address: Some(address), tries });
        true
    }

    /// Forget everything but the one timer (this relay stopped serving: its table was
    /// handed over, or is to be loaded again): queries, sweeps, what each server did,
    /// the links' configurations. The start-up check is made again once it serves.
    pub(crate) fn reset(&mut self) {
        let (timer_filed, serving) = (self.timer_filed, self.serving);
        *self = LeasequeryState::new(self.servers.len());
        self.timer_filed = timer_filed;
        self.serving = serving;
    }

    /// Forget everything (leasequery turned off by a reload).
    pub(crate) fn clear(&mut self) {
        self.abandon();
        self.outstanding.clear();
        self.order.clear();
    }

    /// Give up every sweep (no server answers); returns how many subnets were left.
    pub(crate) fn abandon(&mut self) -> usize {
        let n = self.sweeps.len();
        self.sweeps.clear();
        self.again.clear();
        self.inform_due.clear();
        self.waiting_config.clear();
        n
    }

    /// Take a token of the sweep budget (`rate` a second, bursts of a tick's worth).
    pub(crate) fn take_token(&mut self, now: Timestamp, rate: u32) -> bool {
        let burst = rate.div_ceil(10).max(1);
        self.budget.take(now, Rate { per_second: rate.max(1), burst })
    }

    /// The first server, in configuration order, not found unwilling.
    pub(crate) fn server_to_ask(&self, configured: usize) -> Option<usize> {
        (0..configured).find(|i| self.servers.get(*i).is_none_or(|s| s.willingness != Willingness::NotAnswering))
    }

    /// Server `i` answered a DHCPLEASEQUERY.
    pub(crate) fn server_answered(&mut self, i: usize) {
        if let Some(s) = self.servers.get_mut(i) {
            s.willingness = Willingness::Answers;
            s.unanswered = 0;
        }
    }

    /// Server `i` left a query unanswered (`limit` in a row: not answering) or answered one
    /// with something else (`at_once`). True when it has just been marked.
    pub(crate) fn server_failed(&mut self, i: usize, limit: u32, at_once: bool) -> bool {
        let Some(s) = self.servers.get_mut(i) else { return false };
        if s.willingness == Willingness::NotAnswering {
            return false;
        }
        s.unanswered = s.unanswered.saturating_add(1);
        if at_once || s.unanswered >= limit.max(1) {
            s.willingness = Willingness::NotAnswering;
            return true;
        }
        false
    }

    /// The configuration of `link`, if known.
    pub(crate) fn link_config(&self, link: usize) -> Option<&[u8]> {
        self.link_config.get(link).and_then(|c| c.as_ref()).map(|(options, _)| &options[..])
    }

    /// Learn the configuration of `link` from a server's answer (`source`): its link
    /// options, when it has a subnet mask or a router. An INFORM's ACK replaces what a
    /// leasequery answer taught; nothing else replaces anything. Without a subnet mask the
    /// link's own (`link_mask`: the prefix of the relay's address on it, the subnet its
    /// clients are on) is added. True when learned.
    pub(crate) fn learn_link_config<T: AsRef<[u8]>>(
        &mut self,
        link: usize,
        msg: &Message<T>,
        source: LinkConfigSource,
        link_mask: Ipv4Addr,
    ) -> bool {
        let has_mask = msg.option(OptionCode::SUBNET_MASK).is_some();
        if !has_mask && msg.option(OptionCode::ROUTER).is_none() {
            return false;
        }
        let known = self.link_config.get(link).and_then(|c| c.as_ref()).map(|(_, s)| *s);
        let replaces = match known {
            None => true,
            Some(LinkConfigSource::LeasequeryAnswer) => source == LinkConfigSource::Inform,
            Some(LinkConfigSource::Inform) => false,
        };
        if !replaces {
            return false;
        }
        let mut kept = Vec::new();
        if !has_mask {
            kept.push(OptionCode::SUBNET_MASK);
            kept.push(4);
            kept.extend_from_slice(&link_mask.octets());
        }
        for o in msg.options().filter(|o| is_link_option(o.code)) {
            kept.push(o.code);
            kept.push(o.data.len() as u8);
            kept.extend_from_slice(o.data);
        }
        if self.link_config.len() <= link {
            self.link_config.resize(link + 1, None);
        }
        let Some(slot) = self.link_config.get_mut(link) else { return false };
        *slot = Some((kept.into_boxed_slice(), source));
        let link = link as u16;
        let (now_known, still): (Vec<_>, Vec<_>) = self.waiting_config.drain(..).partition(|(l, _)| *l == link);
        self.waiting_config = still;
        self.again.extend(now_known.into_iter().map(|(link, a)| Work { link, address: Some(a), tries: 0 }));
        true
    }

    /// The server list changed (a reload): `map[old]` is the new index of each.
    pub(crate) fn remap_servers(&mut self, map: &[Option<usize>], configured: usize) {
        let mut servers = vec![ServerLeasequery::default(); configured];
        for (old, s) in self.servers.iter().enumerate() {
            if let Some(Some(new)) = map.get(old) {
                if let Some(slot) = servers.get_mut(*new) {
                    *slot = *s;
                }
            }
        }
        self.servers = servers;
        self.outstanding.retain(|_, q| map.get(q.server).copied().flatten().is_some());
        for q in self.outstanding.values_mut() {
            if let Some(Some(new)) = map.get(q.server) {
                q.server = *new;
            }
        }
    }
}

/// A DHCPLEASEQUERY by address (RFC 4388), or a DHCPINFORM for a link's configuration
/// (`address` None; RFC 2131 4.3.5), as the relay of `giaddr` sends it, into `buf`.
pub(crate) fn write_query(buf: &mut [u8], xid: u32, giaddr: Ipv4Addr, address: Option<Ipv4Addr>) -> Option<usize> {
    let kind = match address {
        Some(_) => MessageType::Other(DHCPLEASEQUERY),
        None => MessageType::Inform,
    };
    let mut b = MessageBuilder::new(buf, Op::BootRequest, Some(kind)).ok()?;
    // A query by address names no client: no hardware address (hlen 0). giaddr names the
    // link, and is where the answer goes (ISC dhcpd answers nothing without it).
    b.xid(xid).giaddr(giaddr).chaddr(1, &[]);
    if let Some(a) = address {
        b.ciaddr(a);
    }
    b.option(OptionCode::PARAMETER_REQUEST_LIST, &QUERY_PARAMETERS).ok()?;
    b.option(OptionCode::MAX_MESSAGE_SIZE, &1500u16.to_be_bytes()).ok()?;
    b.finish().ok()
}

/// The ACK a DHCPLEASEACTIVE stands for (see the module docs), into `buf`: the lease from
/// the answer, the configuration from `link_options`.
pub(crate) fn write_equivalent_ack<T: AsRef<[u8]>>(
    buf: &mut [u8],
    active: &Message<T>,
    server_id: Ipv4Addr,
    giaddr: Ipv4Addr,
    link_options: &[u8],
) -> Option<usize> {
    let lease = active.lease_time()?;
    let mut b = MessageBuilder::new(buf, Op::BootReply, Some(MessageType::Ack)).ok()?;
    b.xid(active.xid()).yiaddr(active.ciaddr()).giaddr(giaddr).chaddr(active.htype(), active.chaddr());
    b.option(OptionCode::SERVER_ID, &server_id.octets()).ok()?;
    b.option(OptionCode::LEASE_TIME, &lease.to_be_bytes()).ok()?;
    // T1 and T2 count from the answer, as the lease does; ISC dhcpd leaves one out once
    // it has passed: then it has (0).
    let t1 = active.renewal_time().unwrap_or(0);
    let t2 = active.rebinding_time().unwrap_or(0);
    b.option(OptionCode::RENEWAL_T1, &t1.to_be_bytes()).ok()?;
    b.option(OptionCode::REBINDING_T2, &t2.to_be_bytes()).ok()?;
    if let Some(id) = active.client_identifier() {
        b.option(OptionCode::CLIENT_ID, id).ok()?;
    }
    b.options().raw(link_options).ok()?;
    b.finish().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_parameters_name_what_rfc_4388_lists_and_fit_option_55() {
        for code in [1, 3, 6, 15, 28, 51, 54, 58, 59, 61, 91, 92, 119, 121] {
            assert!(QUERY_PARAMETERS.contains(&code), "{code}");
        }
        for code in [0, 50, 52, 53, 55, 56, 57, 82, 255] {
            assert!(!QUERY_PARAMETERS.contains(&code), "{code}");
        }
        assert!(QUERY_PARAMETERS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_sweep_asks_every_host_address_once_then_ends() {
        let mut s = LeasequeryState::new(1);
        let net = Ipv4Net { addr: Ipv4Addr::new(10, 0, 0, 1), prefix_len: 29 };
        assert!(s.queue_sweep(0, net));
        assert!(!s.queue_sweep(0, net), "queued once");
        assert_eq!(s.next_work(), Some(Work { link: 0, address: None, tries: 0 }), "the link's configuration first");
        let asked: Vec<_> = core::iter::from_fn(|| s.next_work()).collect();
        let expected: Vec<_> =
            (1..=6).map(|h| Work { link: 0, address: Some(Ipv4Addr::new(10, 0, 0, h)), tries: 0 }).collect();
        assert_eq!(asked, expected);
        assert!(!s.busy());
    }

    #[test]
    fn a_server_is_marked_after_the_limit_and_forgiven_by_the_next_sweep() {
        let mut s = LeasequeryState::new(2);
        assert!(!s.server_failed(0, 3, false));
        assert!(!s.server_failed(0, 3, false));
        assert!(s.server_failed(0, 3, false));
        assert_eq!(s.server_to_ask(2), Some(1));
        assert!(s.server_failed(1, 3, true), "another kind of answer marks at once");
        assert_eq!(s.server_to_ask(2), None);
        s.queue_sweep(0, Ipv4Net { addr: Ipv4Addr::new(10, 0, 0, 1), prefix_len: 30 });
        assert_eq!(s.server_to_ask(2), Some(0));
    }
}
