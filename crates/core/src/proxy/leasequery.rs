//! The engine's side of RFC 4388 leasequery ([`crate::leasequery`] says what and why):
//! sweeps started, queries sent within the budget, answers believed or not, records made
//! from DHCPLEASEACTIVE, doubts settled.

use core::net::Ipv4Addr;

use cdra_wire::{Message, MessageType};

use super::replies::ServerReply;
use crate::config::{Ipv4Net, LinkState};
use crate::counters::{MessageKind, ProxyEvent};
use crate::engine::Engine;
use crate::events::EventKind;
use crate::leasequery::{
    write_equivalent_ack, write_query, Asked, LinkConfigSource, Query, Willingness, DHCPLEASEACTIVE,
    DHCPLEASEUNASSIGNED, DHCPLEASEUNKNOWN, QUERY_PARAMETERS, TICK,
};
use crate::outbox::{Destination, Outbox};
use crate::servers::ServerSet;
use crate::table::{
    ClientKey, ClientKind, ClientRecord, ClientState, ParamList, RecordRef, Removal, ServerBinding, Slot,
};
use crate::time::Timestamp;
use crate::timers::Timer;
use crate::transactions::{Expect, Party, RequestId, Transaction};
use crate::verdict::{DiscardReason, DropReason, Verdict};

/// What kind of answer a reply to a query is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Active,
    Unassigned,
    Unknown,
    /// An ACK (the answer to a link's INFORM).
    Ack,
    /// Anything else.
    Other,
}

impl Answer {
    fn of<T: AsRef<[u8]>>(msg: &Message<T>) -> Self {
        match msg.message_type() {
            Some(MessageType::Other(DHCPLEASEACTIVE)) => Answer::Active,
            Some(MessageType::Other(DHCPLEASEUNASSIGNED)) => Answer::Unassigned,
            Some(MessageType::Other(DHCPLEASEUNKNOWN)) => Answer::Unknown,
            Some(MessageType::Ack) => Answer::Ack,
            _ => Answer::Other,
        }
    }

    fn is_leasequery(self) -> bool {
        matches!(self, Answer::Active | Answer::Unassigned | Answer::Unknown)
    }
}

impl Engine {
    /// Leasequery is on (and the mode caches).
    pub(crate) fn leasequery_on(&self) -> bool {
        self.config.leasequery.enabled && self.config.mode.caches()
    }

    /// File the one leasequery timer for `at`, unless it is filed.
    fn arm_leasequery(&mut self, at: Timestamp) {
        if !self.leasequery.timer_filed {
            self.leasequery.timer_filed = true;
            self.timers.arm(at, Timer::Leasequery);
        }
    }

    /// The subnets swept on link `ds`: `[leasequery] subnets` inside the link's own, or the
    /// link's own when none is configured.
    fn leasequery_subnets(&self, ds: usize) -> Vec<Ipv4Net> {
        let Some(d) = self.config.downstream.get(ds).filter(|d| d.state == LinkState::Up) else { return Vec::new() };
        let configured = &self.config.leasequery.subnets;
        if configured.is_empty() {
            return vec![d.address];
        }
        configured
            .iter()
            .filter(|s| s.prefix_len >= d.address.prefix_len && d.address.contains(s.addr))
            .copied()
            .collect()
    }

    /// Whether what the engine sends goes out (see [`crate::leasequery`]): false while the
    /// daemon's store is loading on its thread or the relay is its pair's standby. While
    /// not serving, leasequery asks nothing (an answer could never come: the queries are
    /// thrown away, and each server would be found not to answer). Leaving service forgets
    /// the leasequery state; (re)starting to serve makes the start-up check: a table empty
    /// then is swept. Cheap when nothing changes: the daemon calls it every turn.
    pub fn set_serving(&mut self, now: Timestamp, serving: bool) {
        if serving == self.leasequery.serving {
            return;
        }
        self.leasequery.reset();
        self.leasequery.serving = serving;
        if serving && self.leasequery_on() {
            self.arm_leasequery(now);
        }
    }

    /// Sweep the subnets of link `ds` (the table started empty, or the link was added).
    pub(crate) fn leasequery_sweep_link(&mut self, now: Timestamp, ds: usize) {
        if !self.leasequery_on() || !self.leasequery.serving {
            // Not serving: the check made when it starts sweeps every link of an empty
            // table.
            return;
        }
        for subnet in self.leasequery_subnets(ds) {
            if self.leasequery.queue_sweep(ds, subnet) {
                self.counters.proxy.add(ProxyEvent::LeasequerySweepStarted);
            }
        }
        if self.leasequery.busy() {
            self.arm_leasequery(now);
        }
    }

    /// The leasequery timer fired: the start-up check, then timeouts, then what the budget
    /// allows; filed again while anything is left.
    pub(crate) fn leasequery_due(&mut self, now: Timestamp, outbox: &mut Outbox) {
        self.leasequery.timer_filed = false;
        if !self.leasequery_on() {
            // Turned off by a reload: nothing more is sent, no answer is awaited.
            self.leasequery.clear();
            return;
        }
        if !self.leasequery.serving {
            // Nothing is asked; `set_serving` files the timer again when it serves.
            return;
        }
        if !self.leasequery.started {
            // The store has been read by now (restore comes before the first call, and a
            // daemon loading on a thread is not serving yet): an empty table is one to
            // refill.
            self.leasequery.started = true;
            if self.table.is_empty() {
                for ds in 0..self.config.downstream.len() {
                    self.leasequery_sweep_link(now, ds);
                }
            }
        }
        self.leasequery_timeouts(now);
        self.leasequery_send(now, outbox);
        let unusable = self.leasequery.give_up_waiting_if_idle();
        self.counters.proxy.events.add_n(ProxyEvent::LeasequeryActiveUnusable, unusable as u64);
        if self.leasequery.busy() {
            self.arm_leasequery(now.saturating_add(TICK));
        }
    }

    fn leasequery_timeouts(&mut self, now: Timestamp) {
        let (timeout, limit) = (self.config.leasequery.query_timeout, self.config.leasequery.unanswered_limit);
        let bound = self.config.leasequery.max_outstanding;
        for q in self.leasequery.timed_out(now, timeout) {
            self.counters.proxy.add(ProxyEvent::LeasequeryTimedOut);
            match q.asked {
                // A DHCPLEASEUNASSIGNED/UNKNOWN may still bring the configuration.
                Asked::LinkConfiguration => {}
                Asked::Address(a) => {
                    if self.leasequery.server_failed(q.server, limit, false) {
                        self.counters.proxy.add(ProxyEvent::LeasequeryServerNotAnswering);
                    }
                    // Asked again (of the next server, once this one is found not to
                    // answer), at most once per configured server.
                    let servers = self.config.servers.len();
                    if usize::from(q.tries) < servers
                        && !self.leasequery.ask_again(q.link, a, q.tries.saturating_add(1), bound)
                    {
                        self.counters.proxy.add(ProxyEvent::LeasequeryNotAskedAgain);
                    }
                }
                Asked::Settle(_, record) => {
                    if self.leasequery.server_failed(q.server, limit, false) {
                        self.counters.proxy.add(ProxyEvent::LeasequeryServerNotAnswering);
                    }
                    self.settled_by_old_rule(record);
                }
            }
        }
    }

    fn leasequery_willingness(&self, server: usize) -> Willingness {
        self.leasequery.servers().get(server).map_or(Willingness::Unknown, |s| s.willingness)
    }

    /// Send what the budget, the outstanding bound and the outbox allow.
    fn leasequery_send(&mut self, now: Timestamp, outbox: &mut Outbox) {
        let (rate, bound) = (self.config.leasequery.rate, self.config.leasequery.max_outstanding);
        while self.leasequery.has_work() && self.leasequery.outstanding() < bound && outbox.remaining() > 0 {
            let Some(server) = self.leasequery.server_to_ask(self.config.servers.len()) else {
                // Nobody left to ask.
                let left = self.leasequery.abandon();
                self.counters.proxy.events.add_n(ProxyEvent::LeasequerySweepAbandoned, left.max(1) as u64);
                return;
            };
            // A server not yet known to answer gets no more queries at once than would
            // show it does not: one that never answers sees `unanswered_limit` of them.
            let untried = self.leasequery_willingness(server) == Willingness::Unknown;
            let limit = self.config.leasequery.unanswered_limit.max(1) as usize;
            if untried && self.leasequery.queries_waiting_on(server) >= limit {
                return;
            }
            if !self.leasequery.take_token(now, rate) {
                return;
            }
            let Some(work) = self.leasequery.next_work() else { return };
            let link = usize::from(work.link);
            // Ours, or a client's the table already knows (never overwritten): not asked.
            if work.address.is_some_and(|a| self.is_our_address(a) || self.table.find_address(a).is_some()) {
                continue;
            }
            match work.address {
                Some(a) => {
                    self.send_leasequery(now, link, server, Asked::Address(a), work.tries, outbox);
                }
                // The link's configuration is asked of every server at once (one INFORM each
                // per sweep): the first answer is kept, whichever server answers leasequery.
                None => {
                    for i in 0..self.config.servers.len() {
                        if self.leasequery.outstanding() >= bound || outbox.remaining() == 0 {
                            break;
                        }
                        self.send_leasequery(now, link, i, Asked::LinkConfiguration, 0, outbox);
                    }
                }
            }
        }
    }

    /// Send one query (or a link's INFORM) to `server`. False when it could not be sent.
    fn send_leasequery(
        &mut self,
        now: Timestamp,
        link: usize,
        server: usize,
        asked: Asked,
        tries: u8,
        outbox: &mut Outbox,
    ) -> bool {
        let Some(d) = self.config.downstream.get(link).filter(|d| d.state == LinkState::Up) else { return false };
        let Some(&to) = self.config.servers.get(server) else { return false };
        let giaddr = d.giaddr();
        let mut xid = self.table.next_random() as u32;
        while self.leasequery.query(xid).is_some() {
            xid = self.table.next_random() as u32;
        }
        let address = match asked {
            Asked::LinkConfiguration => None,
            Asked::Address(a) | Asked::Settle(a, _) => Some(a),
        };
        let Some((_, out)) = outbox.emit() else { return false };
        match write_query(out.buffer_mut(), xid, giaddr, address) {
            Some(len) => out.set_len(len),
            None => {
                outbox.unwind();
                return false;
            }
        }
        out.destination = Destination::Server { addr: to, relay_port: false };
        self.leasequery.sent(xid, Query { asked, link: link as u16, server, sent_at: now, tries });
        let (event, kind) = match asked {
            Asked::LinkConfiguration => (ProxyEvent::LeasequeryLinkInformSent, MessageKind::Dhcp(MessageType::Inform)),
            Asked::Address(_) => (ProxyEvent::LeasequerySent, MessageKind::Dhcp(MessageType::Other(10))),
            Asked::Settle(..) => (ProxyEvent::LeasequerySettleSent, MessageKind::Dhcp(MessageType::Other(10))),
        };
        self.counters.proxy.add(event);
        self.counters.sent(self.config.downstream.len(), kind);
        if let Some(c) = self.counters.servers.get_mut(server) {
            c.requests_sent += 1;
        }
        self.arm_leasequery(now.saturating_add(TICK));
        true
    }

    /// A server reply (arrived upstream) that may answer one of our queries: `Some` if it
    /// does (or claims to), `None` to handle it as any other reply. See the module docs of
    /// [`crate::leasequery`] for what is believed.
    pub(crate) fn leasequery_reply<T: AsRef<[u8]>>(
        &mut self,
        now: Timestamp,
        counter_slot: usize,
        src: Ipv4Addr,
        msg: &Message<T>,
    ) -> Option<Verdict> {
        let q = self.leasequery.query(msg.xid())?;
        let answer = Answer::of(msg);
        // Our queries carry no hardware address, and a server copies that; only a
        // DHCPLEASEACTIVE names a client. A reply with a client's chaddr and our xid is a
        // client's (its xid drawn as ours by chance): not ours.
        if !answer.is_leasequery() && msg.chaddr().iter().any(|b| *b != 0) {
            return None;
        }
        let about = match q.asked {
            Asked::LinkConfiguration => true,
            Asked::Address(a) | Asked::Settle(a, _) => !answer.is_leasequery() || msg.ciaddr() == a,
        };
        let believed = self.servers.index_of(src) == Some(q.server)
            && self.config.downstream.get(usize::from(q.link)).is_some_and(|d| d.owns_giaddr(msg.giaddr()))
            && about
            && now.since(q.sent_at) < self.config.leasequery.query_timeout;
        if !believed {
            self.counters.proxy.add(ProxyEvent::LeasequeryReplyRejected);
            return Some(self.drop(counter_slot, DropReason::ReplyUnmatched));
        }
        self.leasequery.answered(msg.xid());
        self.servers.on_reply(q.server, now);
        if let Some(c) = self.counters.servers.get_mut(q.server) {
            c.replies_received += 1;
            c.round_trip.observe(now.since(q.sent_at));
        }
        self.leasequery_answered(now, q, src, answer, msg);
        Some(self.discard(DiscardReason::LeasequeryAnswer))
    }

    fn leasequery_answered<T: AsRef<[u8]>>(
        &mut self,
        now: Timestamp,
        q: Query,
        src: Ipv4Addr,
        answer: Answer,
        msg: &Message<T>,
    ) {
        let link = usize::from(q.link);
        if answer.is_leasequery() {
            self.leasequery.server_answered(q.server);
            self.counters.proxy.add(match answer {
                Answer::Active => ProxyEvent::LeasequeryActive,
                Answer::Unassigned => ProxyEvent::LeasequeryUnassigned,
                _ => ProxyEvent::LeasequeryUnknown,
            });
        }
        match (q.asked, answer) {
            (Asked::LinkConfiguration, Answer::Ack) | (Asked::Address(_), Answer::Unassigned | Answer::Unknown) => {
                let source = match q.asked {
                    Asked::LinkConfiguration => LinkConfigSource::Inform,
                    _ => LinkConfigSource::LeasequeryAnswer,
                };
                let mask = self.config.downstream.get(link).map_or(Ipv4Addr::BROADCAST, |d| d.address.netmask());
                if self.leasequery.learn_link_config(link, msg, source, mask) {
                    self.counters.proxy.add(ProxyEvent::LeasequeryLinkConfigured);
                }
            }
            (Asked::LinkConfiguration, _) => {}
            (Asked::Address(a), Answer::Active) => self.record_from_lease_active(now, q, src, a, msg),
            (Asked::Settle(_, record), Answer::Active | Answer::Unassigned | Answer::Unknown) => {
                self.settle(now, record, answer, msg)
            }
            // Another kind of answer to a DHCPLEASEQUERY: not a server that answers it.
            (Asked::Address(_) | Asked::Settle(..), _) => {
                if self.leasequery.server_failed(q.server, 1, true) {
                    self.counters.proxy.add(ProxyEvent::LeasequeryServerNotAnswering);
                }
                if let Asked::Settle(_, record) = q.asked {
                    self.settled_by_old_rule(record);
                }
            }
        }
    }

    /// A DHCPLEASEACTIVE for `address`: a record, suspect (see the module docs of
    /// [`crate::leasequery`]), unless the table knows the client or the address.
    fn record_from_lease_active<T: AsRef<[u8]>>(
        &mut self,
        now: Timestamp,
        q: Query,
        src: Ipv4Addr,
        address: Ipv4Addr,
        msg: &Message<T>,
    ) {
        let link = usize::from(q.link);
        let Some(link_options) = self.leasequery.link_config(link).map(<[u8]>::to_vec) else {
            let bound = self.config.leasequery.max_outstanding;
            if !self.leasequery.wait_for_link_config(q.link, address, bound) {
                self.counters.proxy.add(ProxyEvent::LeasequeryActiveUnusable);
            }
            return;
        };
        let Some(d) = self.config.downstream.get(link) else { return };
        let giaddr = d.giaddr();
        let identified = msg.client_identifier().is_some() || msg.chaddr().iter().any(|b| *b != 0);
        let usable = d.address.contains(address) && msg.lease_time().is_some_and(|l| l > 0) && identified;
        if !usable {
            self.counters.proxy.add(ProxyEvent::LeasequeryActiveUnusable);
            return;
        }
        let key = ClientKey::of(msg);
        // Pool mode: cdra's own pool leases are entries, not clients.
        let ours = crate::pool::PoolIdentity::parse_key(&key).is_some() || self.pool.holding(link, address).is_some();
        if ours || self.table.find(&key).is_some() || self.table.find_address(address).is_some() {
            self.counters.proxy.add(ProxyEvent::LeasequeryRecordKnown);
            return;
        }
        let server = ServerBinding { addr: src, id: msg.server_identifier().unwrap_or(src) };
        let mut buf = vec![0u8; crate::outbox::OUT_BUFFER_SIZE];
        let built = write_equivalent_ack(&mut buf, msg, server.id, giaddr, &link_options);
        let Some(ack) = built.and_then(|len| buf.get(..len)).and_then(|b| Message::new_checked(b).ok()) else {
            self.counters.proxy.add(ProxyEvent::LeasequeryActiveUnusable);
            return;
        };
        let (slot, evicted) = self.table.insert(ClientRecord::new(key, ClientKind::Dhcp, q.link, now));
        if let Some(gone) = evicted {
            self.forgotten(&gone, gone.eviction());
        }
        self.store_lease_active(now, q, server, &ack, slot);
    }

    /// Store the ACK a DHCPLEASEACTIVE stands for in the new record `slot`, as a server ACK
    /// is stored, and mark it suspect.
    fn store_lease_active(
        &mut self,
        now: Timestamp,
        q: Query,
        server: ServerBinding,
        ack: &Message<&[u8]>,
        slot: Slot,
    ) {
        let link = usize::from(q.link);
        let Some(record) = self.table.reference(slot) else { return };
        let mut servers = ServerSet::default();
        servers.insert(q.server);
        // The lease counts from when the query was sent (`cache_reply` starts it at
        // `tx.sent_at`): never believed longer than it is.
        let mut tx = Transaction::new(q.sent_at, servers, Expect::Ack(ClientState::Rebooting), Party::Client(record));
        tx.params = ParamList::new(&QUERY_PARAMETERS);
        let id = RequestId::of(ack, link);
        let reply = ServerReply { now, ds: link, server_index: q.server, server, msg: ack, id, tx, slot: Some(slot) };
        self.cache_reply(&reply, slot, ClientKind::Dhcp);
        let Some(r) = self.table.get_mut(slot) else { return };
        if r.reply.is_none() {
            // Not storable (cannot happen for a message just built and checked).
            self.drop_record(slot, Removal::Flushed);
            self.counters.proxy.add(ProxyEvent::LeasequeryActiveUnusable);
            return;
        }
        // Paper 3.4: suspect, like a restored record, until a server or a probe confirms it.
        r.set_confirmed(false);
        self.counters.proxy.add(ProxyEvent::LeasequeryRecordMade);
        self.record_event(EventKind::Proxy(ProxyEvent::LeasequeryRecordMade), slot, None);
    }

    /// A lapse probe of the record in `slot` was answered by an ICMP echo only: ask the
    /// server before dropping it. True when a query went out (the record waits for it).
    pub(crate) fn settle_by_leasequery(&mut self, now: Timestamp, slot: Slot, outbox: &mut Outbox) -> bool {
        if !self.leasequery_on()
            || !self.leasequery.serving
            || self.leasequery.outstanding() >= self.config.leasequery.max_outstanding
        {
            return false;
        }
        let Some(r) = self.table.get(slot) else { return false };
        let (link, address) = (usize::from(r.downstream), r.address);
        let own = r.server().and_then(|s| self.servers.index_of(s.addr));
        let Some(record) = self.table.reference(slot) else { return false };
        let willing = |i: usize| self.leasequery_willingness(i) != Willingness::NotAnswering;
        let server = own.filter(|i| willing(*i)).or_else(|| self.leasequery.server_to_ask(self.config.servers.len()));
        let Some(server) = server else { return false };
        self.send_leasequery(now, link, server, Asked::Settle(address, record), 0, outbox)
    }

    /// The server's answer about a doubted record: the same client keeps it.
    fn settle<T: AsRef<[u8]>>(&mut self, now: Timestamp, record: RecordRef, answer: Answer, msg: &Message<T>) {
        let Some(slot) = self.table.resolve(record) else { return };
        let Some(r) = self.table.get(slot) else { return };
        let same_client = answer == Answer::Active
            && (ClientKey::of(msg) == r.key || (!r.reply_chaddr().is_empty() && r.reply_chaddr() == msg.chaddr()));
        if same_client {
            // As when the client's own MAC answers the probe: nothing is released, the record
            // and the server lease stay.
            self.counters.proxy.add(ProxyEvent::LeasequerySettleKept);
            self.counters.proxy.add(ProxyEvent::LapsedClientStillThere);
            self.client_still_there(now, slot);
        } else {
            self.counters.proxy.add(ProxyEvent::LeasequerySettleDropped);
            self.counters.proxy.add(ProxyEvent::LapsedStillInUse);
            self.drop_record(slot, Removal::AddressInUse);
        }
    }

    /// No answer settled the doubt: what the probe alone decides (Appendix A.2: in use,
    /// nothing released, the record goes).
    fn settled_by_old_rule(&mut self, record: RecordRef) {
        let Some(slot) = self.table.resolve(record) else { return };
        self.counters.proxy.add(ProxyEvent::LeasequerySettleDropped);
        self.counters.proxy.add(ProxyEvent::LapsedStillInUse);
        self.drop_record(slot, Removal::AddressInUse);
    }
}
