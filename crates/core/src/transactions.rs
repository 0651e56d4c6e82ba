//! Outstanding forwarded requests: what a server reply must match to be believed.
//!
//! Reply acceptance is the security boundary of a caching relay: whatever enters the table
//! is served to the client for days, through outages, and survives restarts. So every
//! request cdra forwards (relay or caching mode, a client's or one of its own: an upstream
//! renewal) is filed here under its [`RequestId`] — what the server's reply will copy from
//! it (RFC 2131 4.1 and table 3: `xid`, `htype`, `hlen`, `chaddr`, and `giaddr`, which names
//! our downstream link) — with the servers it was sent to and when. A server reply is
//! believed only when ([`Transactions::matching`]):
//!
//! - it arrived on an upstream interface (checked by the engine before this: a reply that
//!   arrives on a downstream interface is never a server reply, unless that interface is
//!   also configured upstream, as in a one-armed relay, where this match is all there is);
//! - its source is a configured server (checked by the engine: `accept_reply`) and its
//!   giaddr one of our downstream addresses;
//! - a request with its `RequestId` is outstanding here, was sent to *that* server, and was
//!   sent less than `reply_timeout` ago.
//!
//! Everything else is dropped and counted by reason ([`Mismatch`]). A reply never creates a
//! client record: the record, if any, is the one the request was filed for.
//!
//! Bounded: at most `max_transactions` entries (`[limits] transactions`); filing one more
//! drops the oldest (counted: [`crate::counters::ProxyEvent`]`::TransactionEvicted`, in
//! every mode), entries are forgotten `reply_timeout` after they were filed, and the filing
//! order queue is compacted when stale entries pile up.

use core::time::Duration;
use std::collections::VecDeque;

use hashbrown::hash_map::Entry;
use hashbrown::HashMap;

use cdra_wire::Message;

use crate::servers::ServerSet;
use crate::table::{ClientState, ParamList, RecordRef, ServerBinding};
use crate::time::Timestamp;

/// A forwarded request as the server's reply names it: RFC 2131 4.1, the server copies
/// `xid`, `htype`, `hlen` and `chaddr` from the request, and `giaddr` (which names the
/// downstream link). Clients choose xids at random, so two clients may share one; these
/// together tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestId {
    /// Transaction id.
    pub xid: u32,
    /// Hardware type.
    pub htype: u8,
    /// Hardware address length (0..=16).
    pub hlen: u8,
    /// Hardware address, zero-padded.
    pub chaddr: [u8; 16],
    /// Downstream interface the request came in on (giaddr of the reply names it).
    pub downstream: u16,
}

/// Hashed as three words (every field, as `Eq` compares them) rather than field by field:
/// the table hashes one for every request forwarded and every reply matched.
impl core::hash::Hash for RequestId {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        let [a, b] =
            [&self.chaddr[..8], &self.chaddr[8..]].map(|half| u64::from_le_bytes(half.try_into().unwrap_or([0; 8])));
        let head = u64::from(self.xid) | u64::from(self.htype) << 32 | u64::from(self.hlen) << 40;
        state.write_u64(head | u64::from(self.downstream) << 48);
        state.write_u64(a);
        state.write_u64(b);
    }
}

impl RequestId {
    /// The id of `msg` (a request we forward, or a reply to one) on downstream link `ds`.
    pub fn of<T: AsRef<[u8]>>(msg: &Message<T>, ds: usize) -> Self {
        let mut chaddr = [0u8; 16];
        let hw = msg.chaddr();
        if let Some(d) = chaddr.get_mut(..hw.len()) {
            d.copy_from_slice(hw);
        }
        RequestId { xid: msg.xid(), htype: msg.htype(), hlen: hw.len() as u8, chaddr, downstream: ds as u16 }
    }
}

/// What a forwarded request was, hence which replies Table 1 lets through to the client
/// (paper 5.2: the client's state "based on the last message to/from the client", kept
/// per request so that a message sent in a client's name by someone else cannot change
/// what the client's own outstanding request accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A DISCOVER: the client is in INIT; OFFERs (one reaches it in the proxy), or an ACK
    /// with rapid commit (RFC 4039).
    Offer,
    /// A REQUEST: ACK or NAK, the client being in this state (REQUESTING, REBOOTING,
    /// RENEWING or REBINDING).
    Ack(ClientState),
    /// An INFORM: an ACK without a lease, passed on, never cached.
    Inform,
    /// A plain BOOTP BOOTREQUEST: a BOOTREPLY.
    BootReply,
    /// A renewal cdra sent on a client's behalf (paper 5.3): its ACK or NAK updates the
    /// record and is not passed on.
    UpstreamRenewal,
    /// Pool mode: the REQUEST that moves a pool client onto a lease of its own
    /// ([`crate::pool::assign`]): its ACK becomes the record, and is not passed on.
    Migration,
}

/// Whom a forwarded request was sent for: whose state its reply may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// Nobody we keep: the reply is passed on and forgotten.
    Nobody,
    /// A client's record.
    Client(RecordRef),
    /// One of our own pool leases (pool mode, [`crate::pool`]).
    Pool(crate::pool::EntryRef),
}

impl Party {
    /// The client record, if it is one.
    pub fn client(self) -> Option<RecordRef> {
        match self {
            Party::Client(r) => Some(r),
            Party::Nobody | Party::Pool(_) => None,
        }
    }
}

/// One outstanding request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transaction {
    /// The servers it was sent to (a reply from another one does not match).
    pub servers: ServerSet,
    /// When it was (last) sent: the lease a reply grants runs from here (RFC 2131 4.4.1).
    pub sent_at: Timestamp,
    /// What it was.
    pub expect: Expect,
    /// Whom it was sent for: a client record (caching modes), a pool entry (pool mode),
    /// or nobody we keep (relayed only).
    pub party: Party,
    /// Its option 55 (what the client asked the server for), which becomes the record's
    /// parameter list when the server answers.
    pub params: ParamList,
    /// An OFFER for it has been passed to the client (paper 5.2: "Once the relay has sent
    /// an OFFER to a client, ... Any more OFFERS received will be silently discarded").
    pub offer_passed: bool,
    /// The server whose OFFER was passed on: the client's REQUEST for it (which carries the
    /// same xid, RFC 2131 4.4.1) goes there with its identifier put back (paper 5.1).
    pub offered_by: Option<ServerBinding>,
    /// Its final answer (ACK or NAK) has been handled: the client is BOUND, or starting
    /// over, and Table 1 discards any later ACK or NAK for it.
    pub answered: bool,
    /// The servers that answered it (liveness: the others declined it,
    /// [`crate::servers::ServerPool::on_declined`]).
    pub replied: ServerSet,
    /// How many times it was sent (the client's retransmissions of it included).
    pub sends: u32,
    /// When it was first sent.
    pub first_sent_at: Timestamp,
}

impl Transaction {
    /// A request just sent to `servers`.
    pub fn new(now: Timestamp, servers: ServerSet, expect: Expect, party: Party) -> Self {
        Transaction {
            servers,
            sent_at: now,
            expect,
            party,
            params: ParamList::EMPTY,
            offer_passed: false,
            offered_by: None,
            answered: false,
            replied: ServerSet(0),
            sends: 1,
            first_sent_at: now,
        }
    }
}

/// Why a server reply matched no outstanding request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// No request of ours carries its xid, htype/chaddr and giaddr (or it was forgotten:
    /// older than `reply_timeout`, or pushed out by newer ones).
    Unknown,
    /// The request went to other servers than the one that answered.
    WrongServer,
}

/// What filing a request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filed {
    /// A new entry.
    New,
    /// The same request again (a retransmission): its entry was refreshed.
    Refreshed,
    /// A new entry, and the oldest one was dropped to make room.
    EvictedOldest,
}

/// `tx`, the same request filed again, keeps what was learned for `old` (see
/// [`Transactions::file`]).
fn merge_retransmission(tx: &mut Transaction, old: &Transaction) {
    tx.servers = ServerSet(tx.servers.0 | old.servers.0);
    if old.expect == tx.expect {
        tx.replied = ServerSet(tx.replied.0 | old.replied.0);
        tx.sends = old.sends.saturating_add(tx.sends);
        tx.first_sent_at = old.first_sent_at;
        tx.offer_passed |= old.offer_passed;
        tx.offered_by = tx.offered_by.or(old.offered_by);
    } else if matches!((old.expect, tx.expect), (Expect::Offer, Expect::Ack(_))) {
        // RFC 2131 4.4.1: the REQUEST that answers an OFFER carries the DISCOVER's
        // xid; it goes to the server whose OFFER was passed on.
        tx.offered_by = tx.offered_by.or(old.offered_by);
    }
}

/// The outstanding requests (see the module docs).
#[derive(Debug)]
pub struct Transactions {
    open: HashMap<RequestId, Transaction>,
    /// Filing order: (when, id). An entry whose time is not its transaction's `sent_at`
    /// any more is stale (refreshed since, or gone) and skipped.
    order: VecDeque<(Timestamp, RequestId)>,
    max: usize,
    ttl: Duration,
}

impl Transactions {
    /// At most `max` outstanding requests, each remembered for `ttl`.
    pub fn new(max: usize, ttl: Duration) -> Self {
        Transactions { open: HashMap::new(), order: VecDeque::new(), max: max.max(1), ttl }
    }

    /// Outstanding requests.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// New bounds (a reload); a smaller `max` takes effect as requests are filed.
    pub fn set_bounds(&mut self, max: usize, ttl: Duration) {
        self.max = max.max(1);
        self.ttl = ttl;
    }

    /// The server list changed (a reload): `map[old index]` is the server's new index,
    /// `None` if it is no longer configured (its late answers will match nothing).
    pub fn remap_servers(&mut self, map: &[Option<usize>]) {
        for tx in self.open.values_mut() {
            tx.servers = tx.servers.remapped(map);
        }
    }

    /// True when none is outstanding.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// The most that can be outstanding.
    pub fn capacity(&self) -> usize {
        self.max
    }

    /// File `tx` under `id` at `now`. The same request again (a client retransmits, or
    /// cdra sends it to another server) keeps what was learned for it (an OFFER passed on)
    /// when it is the same kind of request. Either way the servers the earlier one went to
    /// stay in the set: their late answers (a second server's OFFER arriving after the
    /// client's REQUEST, which carries the DISCOVER's xid) are genuine, and Table 1
    /// discards them.
    pub fn file(&mut self, now: Timestamp, id: RequestId, mut tx: Transaction) -> Filed {
        tx.sent_at = now;
        // Room first (a table probe only when it is full), then one probe to file it.
        let mut filed = Filed::New;
        if self.open.len() >= self.max && !self.open.contains_key(&id) {
            self.evict_oldest();
            filed = Filed::EvictedOldest;
        }
        match self.open.entry(id) {
            Entry::Occupied(mut slot) => {
                merge_retransmission(&mut tx, slot.get());
                slot.insert(tx);
                filed = Filed::Refreshed;
            }
            Entry::Vacant(slot) => {
                slot.insert(tx);
            }
        }
        self.order.push_back((now, id));
        if self.order.len() > 2 * self.max + 16 {
            self.compact();
        }
        filed
    }

    /// The outstanding request a reply from server `server` naming `id` answers, if it is
    /// one (see the module docs).
    pub fn matching(&self, id: &RequestId, server: usize, now: Timestamp) -> Result<&Transaction, Mismatch> {
        let tx = self.open.get(id).filter(|tx| now.since(tx.sent_at) < self.ttl).ok_or(Mismatch::Unknown)?;
        if tx.servers.contains(server) {
            Ok(tx)
        } else {
            Err(Mismatch::WrongServer)
        }
    }

    /// [`Transactions::matching`], for noting what was done with the reply (one probe of
    /// the table for both).
    pub fn matching_mut(
        &mut self,
        id: &RequestId,
        server: usize,
        now: Timestamp,
    ) -> Result<&mut Transaction, Mismatch> {
        let ttl = self.ttl;
        let tx = self.open.get_mut(id).filter(|tx| now.since(tx.sent_at) < ttl).ok_or(Mismatch::Unknown)?;
        if tx.servers.contains(server) {
            Ok(tx)
        } else {
            Err(Mismatch::WrongServer)
        }
    }

    /// The outstanding request `id`, whoever it went to (`None` when there is none or it
    /// is older than `reply_timeout`).
    pub fn get(&self, id: &RequestId, now: Timestamp) -> Option<&Transaction> {
        self.open.get(id).filter(|tx| now.since(tx.sent_at) < self.ttl)
    }

    /// The outstanding request `id`, to note what was done with its replies.
    pub fn get_mut(&mut self, id: &RequestId) -> Option<&mut Transaction> {
        self.open.get_mut(id)
    }

    /// Forget what was filed `reply_timeout` or more before `now`.
    pub fn expire(&mut self, now: Timestamp) {
        while let Some(&(at, id)) = self.order.front() {
            if now.since(at) < self.ttl {
                break;
            }
            self.order.pop_front();
            self.remove_if_filed_at(id, at);
        }
    }

    /// Forget `id` if its entry is the one filed at `at` (not refreshed since); true if it
    /// was.
    fn remove_if_filed_at(&mut self, id: RequestId, at: Timestamp) -> bool {
        match self.open.entry(id) {
            Entry::Occupied(slot) if slot.get().sent_at == at => {
                slot.remove();
                true
            }
            _ => false,
        }
    }

    fn evict_oldest(&mut self) {
        while let Some((at, id)) = self.order.pop_front() {
            if self.remove_if_filed_at(id, at) {
                return;
            }
        }
    }

    /// Drop the stale entries of the filing order (it holds one per filing, and
    /// retransmissions file the same request again).
    fn compact(&mut self) {
        let open = &self.open;
        self.order.retain(|(at, id)| open.get(id).is_some_and(|tx| tx.sent_at == *at));
    }

    /// The stale-entry queue's length (tests and bounds checks).
    pub fn order_len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(xid: u32, mac: u8, ds: u16) -> RequestId {
        let mut chaddr = [0u8; 16];
        chaddr[5] = mac;
        RequestId { xid, htype: 1, hlen: 6, chaddr, downstream: ds }
    }

    fn one(i: usize) -> ServerSet {
        let mut s = ServerSet::default();
        s.insert(i);
        s
    }

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn a_reply_matches_only_its_request_sent_to_its_server_in_time() {
        let mut txs = Transactions::new(8, Duration::from_secs(30));
        txs.file(t(0), id(7, 1, 0), Transaction::new(t(0), one(0), Expect::Offer, Party::Nobody));
        assert!(txs.matching(&id(7, 1, 0), 0, t(1000)).is_ok());
        assert_eq!(txs.matching(&id(7, 1, 0), 1, t(1000)).unwrap_err(), Mismatch::WrongServer);
        assert_eq!(txs.matching(&id(8, 1, 0), 0, t(1000)).unwrap_err(), Mismatch::Unknown, "xid");
        assert_eq!(txs.matching(&id(7, 2, 0), 0, t(1000)).unwrap_err(), Mismatch::Unknown, "chaddr");
        assert_eq!(txs.matching(&id(7, 1, 1), 0, t(1000)).unwrap_err(), Mismatch::Unknown, "link");
        assert_eq!(txs.matching(&id(7, 1, 0), 0, t(30_000)).unwrap_err(), Mismatch::Unknown, "too late");
        txs.expire(t(30_000));
        assert!(txs.is_empty());
        assert_eq!(txs.order_len(), 0);
    }

    #[test]
    fn bounded_the_oldest_goes_first_and_the_order_queue_stays_small() {
        let mut txs = Transactions::new(4, Duration::from_secs(30));
        for x in 0..4 {
            assert_eq!(
                txs.file(t(x), id(x as u32, 1, 0), Transaction::new(t(0), one(0), Expect::Offer, Party::Nobody)),
                Filed::New
            );
        }
        assert_eq!(
            txs.file(t(10), id(99, 1, 0), Transaction::new(t(0), one(0), Expect::Offer, Party::Nobody)),
            Filed::EvictedOldest
        );
        assert_eq!(txs.len(), 4);
        assert!(txs.get(&id(0, 1, 0), t(10)).is_none());
        assert!(txs.get(&id(1, 1, 0), t(10)).is_some());
        // A client retransmitting for ever does not grow anything.
        for n in 0..10_000u64 {
            txs.file(t(20 + n), id(1, 1, 0), Transaction::new(t(0), one(0), Expect::Offer, Party::Nobody));
        }
        assert_eq!(txs.len(), 4);
        assert!(txs.order_len() <= 2 * 4 + 16 + 1);
    }

    #[test]
    fn a_retransmission_keeps_what_was_learned_and_adds_servers() {
        let mut txs = Transactions::new(4, Duration::from_secs(30));
        let a = id(5, 1, 0);
        txs.file(t(0), a, Transaction::new(t(0), one(0), Expect::Offer, Party::Nobody));
        txs.get_mut(&a).unwrap().offer_passed = true;
        assert_eq!(
            txs.file(t(4000), a, Transaction::new(t(0), one(1), Expect::Offer, Party::Nobody)),
            Filed::Refreshed
        );
        let tx = txs.get(&a, t(4000)).unwrap();
        assert!(tx.offer_passed);
        assert!(tx.servers.contains(0) && tx.servers.contains(1));
        assert_eq!(tx.sent_at, t(4000));
    }

    #[test]
    fn matching_mut_finds_what_matching_does_and_notes_replies() {
        let mut txs = Transactions::new(8, Duration::from_secs(30));
        txs.file(t(0), id(7, 1, 0), Transaction::new(t(0), one(0), Expect::Offer, Party::Nobody));
        assert_eq!(txs.matching_mut(&id(7, 1, 0), 1, t(10)).unwrap_err(), Mismatch::WrongServer);
        assert_eq!(txs.matching_mut(&id(8, 1, 0), 0, t(10)).unwrap_err(), Mismatch::Unknown);
        assert_eq!(txs.matching_mut(&id(7, 1, 0), 0, t(30_000)).unwrap_err(), Mismatch::Unknown, "too late");
        txs.matching_mut(&id(7, 1, 0), 0, t(10)).unwrap().replied.insert(0);
        assert!(txs.matching(&id(7, 1, 0), 0, t(10)).unwrap().replied.contains(0));
    }

    #[test]
    fn ids_differing_in_any_field_are_different_entries() {
        let base = id(7, 1, 0);
        let mut variants = vec![base];
        variants.push(RequestId { xid: 8, ..base });
        variants.push(RequestId { htype: 6, ..base });
        variants.push(RequestId { hlen: 16, ..base });
        variants.push(RequestId { downstream: 1, ..base });
        let mut high = base;
        high.chaddr[15] = 1;
        variants.push(high);
        let mut txs = Transactions::new(64, Duration::from_secs(30));
        for (k, v) in variants.iter().enumerate() {
            assert_eq!(txs.file(t(0), *v, Transaction::new(t(0), one(k), Expect::Offer, Party::Nobody)), Filed::New);
        }
        for (k, v) in variants.iter().enumerate() {
            assert!(txs.matching(v, k, t(1)).is_ok(), "{v:?}");
        }
    }
}
