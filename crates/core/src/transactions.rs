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
//! every mode), entries are forgotten `reply_timeout` after they were filed, and the filings
//! of requests filed again since are compacted away when they pile up.

use core::hash::BuildHasher;
use core::time::Duration;
use std::collections::VecDeque;

use hashbrown::HashTable;

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
        let hlen = msg.chaddr().len() as u8;
        RequestId { xid: msg.xid(), htype: msg.htype(), hlen, chaddr: msg.chaddr_padded(), downstream: ds as u16 }
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

/// One filing: the request, or `None` once it was filed again (moved to the back) or
/// forgotten.
#[derive(Debug)]
struct Filing {
    id: RequestId,
    tx: Option<Transaction>,
}

/// The outstanding requests (see the module docs).
///
/// Kept in filing order, which is also the order in which they expire and are evicted:
/// `filings` is a queue, a new request goes to the back and the oldest leaves from the
/// front, so filing and forgetting touch memory in order rather than at a random place in
/// a large table. Found by id through `index`, a hash table of bare filing numbers (4 bytes
/// an entry; the id is the filing's own): at the default bound (65,536) it is half a
/// megabyte, and filing a request cdra has not seen reads only its control bytes, where a
/// hash table of whole entries (18 MB) took a cache miss for each. The queue holds at most
/// twice the bound of 112-byte filings (14.7 MB at the default), touched in order. At
/// 4,000 DORA/s the table is at its bound, and every request filed pushes out the oldest
/// (`cargo bench -p cdra-core --bench relay_path`: 1.05 us a relayed DORA before, 0.70 after).
#[derive(Debug)]
pub struct Transactions {
    /// Every filing since the oldest one still outstanding, in order; at most twice what may
    /// be outstanding (see `make_room`).
    filings: VecDeque<Filing>,
    /// The filing number of `filings[0]` (wrapping: only differences are used).
    first: u32,
    /// The filing number of each outstanding request, by its id's hash.
    index: HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
    max: usize,
    ttl: Duration,
}

/// The most outstanding requests a table holds, whatever `[limits] transactions` says: its
/// filings are numbered in 32 bits.
const MAX_BOUND: usize = 1 << 28;

impl Transactions {
    /// At most `max` outstanding requests, each remembered for `ttl`.
    pub fn new(max: usize, ttl: Duration) -> Self {
        Transactions {
            filings: VecDeque::new(),
            first: 0,
            index: HashTable::new(),
            hasher: hashbrown::DefaultHashBuilder::default(),
            max: max.clamp(1, MAX_BOUND),
            ttl,
        }
    }

    /// Outstanding requests.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// New bounds (a reload); a smaller `max` takes effect as requests are filed.
    pub fn set_bounds(&mut self, max: usize, ttl: Duration) {
        self.max = max.clamp(1, MAX_BOUND);
        self.ttl = ttl;
    }

    /// The server list changed (a reload): `map[old index]` is the server's new index,
    /// `None` if it is no longer configured (its late answers will match nothing).
    pub fn remap_servers(&mut self, map: &[Option<usize>]) {
        for tx in self.filings.iter_mut().filter_map(|f| f.tx.as_mut()) {
            tx.servers = tx.servers.remapped(map);
        }
    }

    /// True when none is outstanding.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The most that can be outstanding.
    pub fn capacity(&self) -> usize {
        self.max
    }

    /// Where filing number `n` is in `filings`.
    fn position(&self, n: u32) -> usize {
        n.wrapping_sub(self.first) as usize
    }

    /// The filing number of the outstanding request `id`.
    fn find(&self, id: &RequestId) -> Option<u32> {
        let (filings, first) = (&self.filings, self.first);
        self.index
            .find(self.hasher.hash_one(id), |n| {
                filings.get(n.wrapping_sub(first) as usize).is_some_and(|f| f.id == *id)
            })
            .copied()
    }

    fn find_tx(&self, id: &RequestId) -> Option<&Transaction> {
        let n = self.find(id)?;
        self.filings.get(self.position(n))?.tx.as_ref()
    }

    fn find_tx_mut(&mut self, id: &RequestId) -> Option<&mut Transaction> {
        let n = self.find(id)?;
        let at = self.position(n);
        self.filings.get_mut(at)?.tx.as_mut()
    }

    /// File `tx` under `id` at `now`. The same request again (a client retransmits, or
    /// cdra sends it to another server) keeps what was learned for it (an OFFER passed on)
    /// when it is the same kind of request. Either way the servers the earlier one went to
    /// stay in the set: their late answers (a second server's OFFER arriving after the
    /// client's REQUEST, which carries the DISCOVER's xid) are genuine, and Table 1
    /// discards them.
    pub fn file(&mut self, now: Timestamp, id: RequestId, mut tx: Transaction) -> Filed {
        tx.sent_at = now;
        let hash = self.hasher.hash_one(id);
        let filed = match self.find(&id) {
            Some(n) => {
                // Filed again: it moves to the back (it expires from now).
                let at = self.position(n);
                if let Some(old) = self.filings.get_mut(at).and_then(|f| f.tx.take()) {
                    merge_retransmission(&mut tx, &old);
                }
                if let Ok(entry) = self.index.find_entry(hash, |m| *m == n) {
                    entry.remove();
                }
                Filed::Refreshed
            }
            None if self.index.len() >= self.max => {
                self.evict_oldest();
                Filed::EvictedOldest
            }
            None => Filed::New,
        };
        self.make_room();
        let n = self.first.wrapping_add(self.filings.len() as u32);
        self.filings.push_back(Filing { id, tx: Some(tx) });
        let (filings, first, hasher) = (&self.filings, self.first, &self.hasher);
        self.index.insert_unique(hash, n, |m| {
            filings.get(m.wrapping_sub(first) as usize).map_or(0, |f| hasher.hash_one(f.id))
        });
        filed
    }

    /// Room in the queue for one more filing. At twice what may be outstanding once it is
    /// filed (the bound, or more while a reload's smaller bound is being reached) the
    /// filings of requests filed again since are compacted away: rarely, so each filing's
    /// share of it is O(1). And the queue grows to at most that, never doubling past it (at
    /// the default bound: 131,072 filings of 112 bytes, 14.7 MB, where a doubling would
    /// have taken 29 MB and kept it).
    fn make_room(&mut self) {
        let limit = 2 * self.max.max(self.index.len() + 1);
        if self.filings.len() >= limit {
            self.compact();
        }
        let len = self.filings.len();
        if len == self.filings.capacity() {
            let grown = (2 * len).max(8).min(limit).max(len + 1);
            self.filings.reserve_exact(grown - len);
        }
    }

    /// The outstanding request a reply from server `server` naming `id` answers, if it is
    /// one (see the module docs).
    pub fn matching(&self, id: &RequestId, server: usize, now: Timestamp) -> Result<&Transaction, Mismatch> {
        let tx = self.get(id, now).ok_or(Mismatch::Unknown)?;
        if tx.servers.contains(server) {
            Ok(tx)
        } else {
            Err(Mismatch::WrongServer)
        }
    }

    /// [`Transactions::matching`], for noting what was done with the reply (one lookup
    /// for both).
    pub fn matching_mut(
        &mut self,
        id: &RequestId,
        server: usize,
        now: Timestamp,
    ) -> Result<&mut Transaction, Mismatch> {
        let ttl = self.ttl;
        let tx = self.find_tx_mut(id).filter(|tx| now.since(tx.sent_at) < ttl).ok_or(Mismatch::Unknown)?;
        if tx.servers.contains(server) {
            Ok(tx)
        } else {
            Err(Mismatch::WrongServer)
        }
    }

    /// The outstanding request `id`, whoever it went to (`None` when there is none or it
    /// is older than `reply_timeout`).
    pub fn get(&self, id: &RequestId, now: Timestamp) -> Option<&Transaction> {
        self.find_tx(id).filter(|tx| now.since(tx.sent_at) < self.ttl)
    }

    /// The outstanding request `id`, to note what was done with its replies.
    pub fn get_mut(&mut self, id: &RequestId) -> Option<&mut Transaction> {
        self.find_tx_mut(id)
    }

    /// Forget what was filed `reply_timeout` or more before `now`.
    pub fn expire(&mut self, now: Timestamp) {
        while let Some(front) = self.filings.front() {
            match &front.tx {
                Some(tx) if now.since(tx.sent_at) < self.ttl => break,
                Some(_) => self.forget_first(),
                None => self.pop_first(),
            }
        }
    }

    /// Drop the first filing, no longer outstanding.
    fn pop_first(&mut self) {
        self.filings.pop_front();
        self.first = self.first.wrapping_add(1);
    }

    /// Forget the first filing, outstanding.
    fn forget_first(&mut self) {
        if let Some(front) = self.filings.front() {
            let (n, hash) = (self.first, self.hasher.hash_one(front.id));
            if let Ok(entry) = self.index.find_entry(hash, |m| *m == n) {
                entry.remove();
            }
        }
        self.pop_first();
    }

    fn evict_oldest(&mut self) {
        while let Some(front) = self.filings.front() {
            if front.tx.is_some() {
                self.forget_first();
                return;
            }
            self.pop_first();
        }
    }

    /// Drop the filings of requests filed again since (retransmissions file the same
    /// request again), numbering the rest from the start.
    fn compact(&mut self) {
        self.filings.retain(|f| f.tx.is_some());
        self.first = 0;
        self.index.clear();
        let (filings, hasher) = (&self.filings, &self.hasher);
        for (n, f) in filings.iter().enumerate() {
            self.index.insert_unique(hasher.hash_one(f.id), n as u32, |m| {
                filings.get(*m as usize).map_or(0, |f| hasher.hash_one(f.id))
            });
        }
    }

    /// The filings held, outstanding or not (tests and bounds checks).
    pub fn order_len(&self) -> usize {
        self.filings.len()
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

    /// What the table must do, kept the plainest way: a list in filing order.
    struct Model {
        list: Vec<(RequestId, Transaction)>,
        max: usize,
        ttl: Duration,
    }

    impl Model {
        fn file(&mut self, now: Timestamp, id: RequestId, mut tx: Transaction) -> Filed {
            tx.sent_at = now;
            let filed = if let Some(at) = self.list.iter().position(|(i, _)| *i == id) {
                let (_, old) = self.list.remove(at);
                merge_retransmission(&mut tx, &old);
                Filed::Refreshed
            } else if self.list.len() >= self.max {
                self.list.remove(0);
                Filed::EvictedOldest
            } else {
                Filed::New
            };
            self.list.push((id, tx));
            filed
        }

        fn get(&self, id: &RequestId, now: Timestamp) -> Option<&Transaction> {
            self.list.iter().find(|(i, _)| i == id).map(|(_, tx)| tx).filter(|tx| now.since(tx.sent_at) < self.ttl)
        }

        fn expire(&mut self, now: Timestamp) {
            let ttl = self.ttl;
            self.list.retain(|(_, tx)| now.since(tx.sent_at) < ttl);
        }
    }

    /// `RequestId::of` (through `Message::chaddr_padded`) keeps exactly
    /// the first `hlen` bytes of chaddr and zeroes the rest, for every hlen a checked message
    /// may have, and gives the whole field (hlen 16) for a larger one viewed unchecked.
    #[test]
    fn request_ids_keep_exactly_hlen_bytes_of_chaddr() {
        for hlen in 0u8..=255 {
            let mut buf = vec![0u8; 300];
            buf[0] = 1;
            buf[2] = hlen;
            for (k, b) in buf[28..44].iter_mut().enumerate() {
                *b = 0xA0 | k as u8;
            }
            buf[236..240].copy_from_slice(&cdra_wire::message::MAGIC_COOKIE);
            buf[240] = 255;
            let take = usize::from(hlen.min(16));
            let mut want = [0u8; 16];
            want[..take].copy_from_slice(&buf[28..28 + take]);
            let checked = Message::new_checked(&buf[..]);
            assert_eq!(checked.is_ok(), hlen <= 16, "hlen {hlen}");
            let msg = checked.unwrap_or_else(|_| Message::new_unchecked(&buf[..]));
            let rid = RequestId::of(&msg, 0);
            assert_eq!((rid.hlen, rid.chaddr), (take as u8, want), "hlen {hlen}");
        }
    }

    /// Every index entry names a live filing of its own id, and every live filing is in the
    /// index exactly once.
    fn check_index(txs: &Transactions) -> Result<(), String> {
        let live = txs.filings.iter().filter(|f| f.tx.is_some()).count();
        if live != txs.index.len() {
            return Err(format!("{live} live filings, {} index entries", txs.index.len()));
        }
        for (k, f) in txs.filings.iter().enumerate() {
            if f.tx.is_some() {
                let n = txs.first.wrapping_add(k as u32);
                let hits = txs.index.iter().filter(|m| **m == n).count();
                if hits != 1 || txs.find(&f.id) != Some(n) {
                    return Err(format!(
                        "filing {n} ({:?}) indexed {hits} times, found as {:?}",
                        f.id,
                        txs.find(&f.id)
                    ));
                }
            }
        }
        Ok(())
    }

    /// The table against the model, from filing number `first` (compaction numbers from 0
    /// again; starting just below `u32::MAX` makes the numbers wrap): filing, refiling,
    /// bursts of retransmissions, eviction, expiry, compaction, `get_mut`, and a reload that
    /// changes the bound and the timeout, in any order; the index checked after each step,
    /// and the queue held to twice what may be outstanding.
    fn against_model(
        ops: &[(u8, u32, u64, usize)],
        max: usize,
        first: u32,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        let mut ttl = Duration::from_millis(1500);
        let mut txs = Transactions::new(max, ttl);
        txs.first = first;
        let mut model = Model { list: Vec::new(), max, ttl };
        let mut now = 1u64;
        for &(op, key, dt, server) in ops {
            now += dt;
            let rid = id(key, (key % 3) as u8, (key % 2) as u16);
            match op {
                0..=3 => {
                    let expect = if op == 3 { Expect::Ack(ClientState::Requesting) } else { Expect::Offer };
                    let tx = Transaction::new(t(now), one(server), expect, Party::Nobody);
                    proptest::prop_assert_eq!(txs.file(t(now), rid, tx), model.file(t(now), rid, tx));
                }
                4 => {
                    txs.expire(t(now));
                    model.expire(t(now));
                }
                5 => {
                    let a = txs.get_mut(&rid).map(|a| {
                        a.offer_passed = true;
                        *a
                    });
                    let b = model.list.iter_mut().find(|(i, _)| *i == rid).map(|b| {
                        b.1.offer_passed = true;
                        b.1
                    });
                    proptest::prop_assert_eq!(a, b);
                }
                7 => {
                    for _ in 0..30 {
                        let tx = Transaction::new(t(now), one(server), Expect::Offer, Party::Nobody);
                        proptest::prop_assert_eq!(txs.file(t(now), rid, tx), model.file(t(now), rid, tx));
                    }
                }
                6 => {
                    let max = 1 + (key as usize % 14);
                    ttl = Duration::from_millis(500 + 100 * (dt % 20));
                    txs.set_bounds(max, ttl);
                    model.max = max;
                    model.ttl = ttl;
                }
                _ => unreachable!(),
            }
            proptest::prop_assert_eq!(txs.len(), model.list.len());
            if matches!(op, 0..=3 | 7) {
                // Held after every filing (a reload's smaller bound takes effect at the next).
                proptest::prop_assert!(txs.order_len() <= 2 * txs.capacity().max(txs.len()));
            }
            if let Err(e) = check_index(&txs) {
                return Err(proptest::test_runner::TestCaseError::fail(e));
            }
            for key in 0..24u32 {
                let rid = id(key, (key % 3) as u8, (key % 2) as u16);
                proptest::prop_assert_eq!(txs.get(&rid, t(now)), model.get(&rid, t(now)));
            }
        }
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn the_table_holds_what_the_model_holds_across_the_wrap(
            ops in proptest::collection::vec((0u8..8, 0u32..24, 0u64..400, 0usize..3), 1..400),
            max in 1usize..12,
            back in 0u32..64,
        ) {
            against_model(&ops, max, u32::MAX - back)?;
        }

        #[test]
        fn the_table_holds_what_a_plain_list_in_filing_order_holds(
            ops in proptest::collection::vec((0u8..8, 0u32..24, 0u64..400, 0usize..3), 1..400),
            max in 1usize..12,
        ) {
            against_model(&ops, max, 0)?;
        }
    }

    /// At the default bound, in the relay bench's steady state (DORA after DORA: a DISCOVER
    /// filed, then its REQUEST, same xid, filed again, leaving the DISCOVER's filing behind),
    /// then a client retransmitting: the queue stays within twice the bound and never
    /// doubles past it (it did: 262,144 slots of 112 bytes, 29 MB, kept for ever).
    #[test]
    fn the_queue_never_grows_past_twice_the_bound() {
        const MAX: usize = 65_536;
        let mut txs = Transactions::new(MAX, Duration::from_secs(3600));
        let rid_of = |c: u32| {
            let mut chaddr = [0u8; 16];
            chaddr[..4].copy_from_slice(&c.to_le_bytes());
            RequestId { xid: c.wrapping_mul(2_654_435_761), htype: 1, hlen: 6, chaddr, downstream: 0 }
        };
        let mut peak = 0;
        for c in 0..3 * MAX as u32 {
            let now = t(1 + u64::from(c) / 4);
            for expect in [Expect::Offer, Expect::Ack(ClientState::Requesting)] {
                txs.expire(now);
                txs.file(now, rid_of(c), Transaction::new(now, one(0), expect, Party::Nobody));
                peak = peak.max(txs.order_len());
            }
        }
        for k in 0..100 {
            let now = t(1 + 3 * MAX as u64 / 4 + k);
            let tx = Transaction::new(now, one(0), Expect::Ack(ClientState::Requesting), Party::Nobody);
            txs.file(now, rid_of(3 * MAX as u32 - 1), tx);
            peak = peak.max(txs.order_len());
        }
        assert_eq!(txs.len(), MAX);
        assert!(peak <= 2 * MAX, "{peak} filings");
        assert!(txs.filings.capacity() <= 2 * MAX, "capacity {}", txs.filings.capacity());
    }
}
