//! The address-pooling caching relay (paper 4.3), with an unmodified server.
//!
//! Paper 4.3: "On startup, a pool of IP addresses are requested from the real DHCP server.
//! Once the addresses have been acquired, the Address Pooling CDRA is a DHCP server ...
//! Obtaining a pool of IP addresses from a DHCP server is not part of the standard.
//! Therefore, a communication protocol for requesting and maintaining a pool of IP
//! addresses must be developed." We need none: cdra leases each pool address from the
//! servers as an ordinary DHCP client would, under an identity of its own, through its own
//! relay path (giaddr = the link's address, so the server allocates from the client
//! subnet), keeps the leases renewed, and gives them to clients the servers cannot serve.
//! `mode = "pool"` is proxy mode plus this: known clients are proxied as before.
//!
//! | part | what | where |
//! |---|---|---|
//! | identities | a client identifier and a locally administered hardware address per entry, stable across restarts, recognisable as no client's | [`PoolIdentity`] |
//! | upkeep | DISCOVER/REQUEST, RENEW at T1, REBIND at T2, NAK and expiry, refilling to `[pool] size` free entries per link | [`upkeep`] |
//! | assignment | a free entry to a new client: when no server OFFER came within `fallback_after` or every server is down (`assign = "outage"`), or at once (`"always"`); after a probe | [`assign`] |
//! | back to the server | a pool client moves onto a lease of its own at its next request once the servers answer | [`assign`] (migration) |
//! | persistence | entries are stored with the client table, suspect after a restart (probed before use) | [`crate::persist`] |
//!
//! Entries live here, not in the client table: a free entry's address belongs to no
//! client; an assigned one's is held in the table by its client's record (origin
//! [`crate::table::Origin::Pool`]), so the table's rule "one record per address" holds for
//! pool addresses too. Bounded: at most [`MAX_ENTRIES_PER_LINK`] entries a link; refilling
//! stops at `size` free ones.

use core::net::Ipv4Addr;

use hashbrown::HashMap;

use crate::lease::ServerLeaseTimes;
use crate::table::{CachedReply, ClientKey, ClientKind, ClientRecord, Origin, ServerBinding};
use crate::templates::ReplyContext;
use crate::time::Timestamp;

pub mod assign;
pub mod upkeep;

/// Most entries one link may have (free and assigned), whatever `size` and the number of
/// pool clients: identities are numbered below it.
pub const MAX_ENTRIES_PER_LINK: usize = 4096;

/// What a pool identity's client identifier starts with (type 0, RFC 2132 9.14: "a
/// type field whose value is normally 0 ... if it is not a hardware address").
pub const POOL_ID_PREFIX: &[u8] = b"\0cdra-pool/";

/// The identity cdra uses at the servers for pool entry `n` on the link whose address is
/// `giaddr`: derived from those two only, so it is the same after a restart, and
/// recognisable at the server as no real client's (its client identifier names cdra; its
/// hardware address is locally administered, 0e:cd:...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolIdentity {
    /// Option 61 payload: `\0cdra-pool/<giaddr>/<n>`.
    pub client_id: Vec<u8>,
    /// The chaddr: 0e:cd and four bytes of a hash of the client identifier.
    pub mac: [u8; 6],
}

impl PoolIdentity {
    /// Entry `n` on the link of `giaddr`.
    pub fn new(giaddr: Ipv4Addr, n: u16) -> Self {
        let mut client_id = POOL_ID_PREFIX.to_vec();
        client_id.extend_from_slice(format!("{giaddr}/{n}").as_bytes());
        let h = crate::proxy::offers::fnv1a_64(&client_id).to_be_bytes();
        // 0x0e: unicast (bit 0 clear), locally administered (bit 1 set), IEEE 802 "AAI"
        // quadrant: never a vendor's address.
        let mac = [0x0e, 0xcd, h[0], h[1], h[2], h[3]];
        PoolIdentity { client_id, mac }
    }

    /// The store and table key of this identity.
    pub fn key(&self) -> ClientKey {
        ClientKey::client_id(&self.client_id)
    }

    /// The link address and number a pool key names, if it is one.
    pub fn parse_key(key: &ClientKey) -> Option<(Ipv4Addr, u16)> {
        let id = key.client_id_bytes()?.strip_prefix(POOL_ID_PREFIX)?;
        let text = core::str::from_utf8(id).ok()?;
        let (addr, n) = text.split_once('/')?;
        Some((addr.parse().ok()?, n.parse().ok()?))
    }
}

/// Names one pool entry; stays valid only as long as that entry lives (a generation
/// changes when an entry is dropped and its number reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryRef {
    /// Downstream link index.
    pub link: u16,
    /// Entry number on the link.
    pub n: u16,
    generation: u32,
}

/// Where an entry is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryState {
    /// No lease yet: a DISCOVER is (to be) sent.
    Acquiring,
    /// An OFFER came; our REQUEST for it is out.
    Requesting,
    /// Leased and free for a client.
    Free,
    /// Leased and given to this client (its record holds the address).
    Assigned(ClientKey),
    /// Its lease is being handed to this client's own identity (the pool lease released,
    /// the client's REQUEST for the address out).
    Migrating(ClientKey),
    /// The hand-over failed: the address is being requested back under the pool identity
    /// for this client, until it starts over.
    Reacquiring(ClientKey),
}

impl EntryState {
    /// Its name in listings and logs.
    pub fn label(&self) -> &'static str {
        match self {
            EntryState::Acquiring => "acquiring",
            EntryState::Requesting => "requesting",
            EntryState::Free => "free",
            EntryState::Assigned(_) => "assigned",
            EntryState::Migrating(_) => "migrating",
            EntryState::Reacquiring(_) => "reacquiring",
        }
    }

    /// The client it is given to, if any.
    pub fn client(&self) -> Option<&ClientKey> {
        match self {
            EntryState::Assigned(k) | EntryState::Migrating(k) | EntryState::Reacquiring(k) => Some(k),
            EntryState::Acquiring | EntryState::Requesting | EntryState::Free => None,
        }
    }
}

/// One pool address.
#[derive(Debug, Clone)]
pub struct PoolEntry {
    /// Its number on its link (its identity is `PoolIdentity::new(giaddr, n)`).
    pub n: u16,
    generation: u32,
    /// Where it is in its life.
    pub state: EntryState,
    /// The leased address (unspecified until leased).
    pub address: Ipv4Addr,
    /// The server holding the lease.
    pub server: Option<ServerBinding>,
    /// The lease the server granted, from `lease_start`.
    pub times: ServerLeaseTimes,
    /// When the request the lease answers was sent.
    pub lease_start: Timestamp,
    /// The server's ACK for the lease (option 82 removed): what pool clients are answered
    /// from (subnet mask, routers, DNS ...).
    pub reply: Option<CachedReply>,
    /// A probe found nobody on the address since this engine started (paper 3.4: a
    /// restored entry is suspect).
    pub confirmed: bool,
    /// When it was last given to a client: a server that answers after that answers
    /// "again" (the client may move onto a lease of its own).
    pub assigned_at: Timestamp,
    /// A free entry held back: a probe found another host on its address, or the client
    /// it was given to may still hold it (its record went while its lease from us ran). At
    /// this time its address is probed again (unless `safe_network`); it is given out only
    /// once a probe finds nobody. Its pool lease is kept renewed meanwhile, so that the
    /// server gives the address to nobody else, and it is never released as surplus.
    pub held_back_until: Option<Timestamp>,
    /// Its renewal out was sent because its client asked (`assign = "outage"`): the
    /// server's ACK moves the client onto a lease of its own.
    pub(crate) migrate_on_ack: bool,
    /// The xid of the request out for it, and when it was sent.
    pub(crate) xid: u32,
    pub(crate) sent_at: Timestamp,
    /// Requests sent for the current step without an answer (backoff).
    pub(crate) attempts: u32,
    /// The deadline of its one armed timer (like a record's lapse timer).
    pub(crate) timer: Option<Timestamp>,
}

impl PoolEntry {
    fn new(n: u16, generation: u32, now: Timestamp) -> Self {
        PoolEntry {
            n,
            generation,
            state: EntryState::Acquiring,
            address: Ipv4Addr::UNSPECIFIED,
            server: None,
            times: ServerLeaseTimes { lease: 0, t1: 0, t2: 0 },
            lease_start: now,
            reply: None,
            confirmed: false,
            assigned_at: now,
            held_back_until: None,
            migrate_on_ack: false,
            xid: 0,
            sent_at: now,
            attempts: 0,
            timer: None,
        }
    }

    /// An entry as the store kept it (a record of origin `PoolLease`): free, and suspect
    /// (paper 3.4) until a probe finds nobody on its address.
    pub(crate) fn from_record(n: u16, rec: &ClientRecord) -> Self {
        let mut e = PoolEntry::new(n, 0, rec.lease_start());
        e.state = EntryState::Free;
        e.address = rec.address;
        e.server = rec.server();
        e.times = ServerLeaseTimes { lease: rec.lease_secs, t1: rec.t1_secs, t2: rec.t2_secs };
        e.reply = rec.reply.clone();
        e.held_back_until = rec.client_lease_end();
        e
    }

    /// The entry as the store keeps it: a record of origin `PoolLease` under the pool
    /// identity's key.
    pub(crate) fn as_record(&self, key: ClientKey, link: u16) -> ClientRecord {
        let mut rec = ClientRecord::new(key, ClientKind::Dhcp, link, self.lease_start);
        rec.state = crate::table::ClientState::Bound;
        rec.address = self.address;
        rec.set_server(self.server);
        rec.lease_secs = self.times.lease;
        rec.t1_secs = self.times.t1;
        rec.t2_secs = self.times.t2;
        rec.reply = self.reply.clone();
        rec.set_origin(Origin::PoolLease { n: self.n });
        // A pool lease record holds no client's short lease: the field keeps when the entry
        // is held back until (the client it was given to may hold the address till then).
        rec.set_client_lease_end(self.held_back_until);
        rec
    }

    /// What the entry holds of its reply (its address and lease times; the pool's lease
    /// names no client): see [`crate::templates::ReplyContext`].
    pub fn reply_context(&self) -> ReplyContext<'static> {
        Self::lease_context(self.address, self.times)
    }

    /// The context of a pool lease on `address` for `times`.
    pub(crate) fn lease_context(address: Ipv4Addr, times: ServerLeaseTimes) -> ReplyContext<'static> {
        ReplyContext { key: None, address, lease_secs: times.lease, t1_secs: times.t1, t2_secs: times.t2 }
    }

    /// Its cached ACK, whole ([`crate::table::CachedReply::to_vec`]).
    pub fn reply_message(&self) -> Option<Vec<u8>> {
        self.reply.as_ref().map(|c| c.to_vec(&self.reply_context()))
    }

    /// When its lease ends (`None`: not leased, or infinite).
    pub fn lease_end(&self) -> Option<Timestamp> {
        (self.reply.is_some() && self.times.lease != crate::lease::INFINITE)
            .then(|| self.lease_start.saturating_add(core::time::Duration::from_secs(u64::from(self.times.lease))))
    }

    fn at(&self, secs: u32) -> Timestamp {
        self.lease_start.saturating_add(core::time::Duration::from_secs(u64::from(secs)))
    }

    /// Is it free and not held back?
    pub fn is_available(&self) -> bool {
        self.state == EntryState::Free && self.held_back_until.is_none()
    }

    /// Is it free but held back (until a probe finds nobody on its address)?
    pub fn is_held_back(&self) -> bool {
        self.state == EntryState::Free && self.held_back_until.is_some()
    }

    /// Is it leased (free, assigned or being migrated)?
    pub fn is_leased(&self) -> bool {
        matches!(self.state, EntryState::Free | EntryState::Assigned(_) | EntryState::Migrating(_))
    }
}

/// How many entries are in which state (over every link).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolTotals {
    /// Every entry.
    pub entries: usize,
    /// Leased and free to give out.
    pub free: usize,
    /// Leased, free, held back for a while (see [`PoolEntry::held_back_until`]).
    pub held_back: usize,
    /// Not leased yet.
    pub acquiring: usize,
    /// Given to a client (or being handed over to it).
    pub assigned: usize,
}

/// Every link's pool (see the module docs).
#[derive(Debug, Default)]
pub struct PoolState {
    links: Vec<HashMap<u16, PoolEntry>>,
    next_generation: u32,
    /// A refill is due (start-up, after an entry left).
    pub(crate) refill_armed: bool,
    /// Entries restored from the store have been matched with their clients.
    pub(crate) reconciled: bool,
}

impl PoolState {
    /// Pools for `links` downstream links.
    pub(crate) fn new(links: usize) -> Self {
        PoolState {
            links: (0..links).map(|_| HashMap::new()).collect(),
            next_generation: 1,
            refill_armed: false,
            reconciled: false,
        }
    }

    /// A link was added (a reload).
    pub(crate) fn add_link(&mut self) {
        self.links.push(HashMap::new());
    }

    /// The entry `r` names, if it still lives.
    pub fn get(&self, r: EntryRef) -> Option<&PoolEntry> {
        self.links.get(usize::from(r.link))?.get(&r.n).filter(|e| e.generation == r.generation)
    }

    pub(crate) fn get_mut(&mut self, r: EntryRef) -> Option<&mut PoolEntry> {
        self.links.get_mut(usize::from(r.link))?.get_mut(&r.n).filter(|e| e.generation == r.generation)
    }

    /// The entry number `n` of `link`.
    pub fn by_number(&self, link: usize, n: u16) -> Option<&PoolEntry> {
        self.links.get(link)?.get(&n)
    }

    /// A reference to entry `n` of `link`.
    pub fn reference(&self, link: usize, n: u16) -> Option<EntryRef> {
        let e = self.links.get(link)?.get(&n)?;
        Some(EntryRef { link: link as u16, n, generation: e.generation })
    }

    /// Every entry of `link`, in no particular order.
    pub fn entries(&self, link: usize) -> impl Iterator<Item = &PoolEntry> {
        self.links.get(link).into_iter().flat_map(|m| m.values())
    }

    /// Links.
    pub fn links(&self) -> usize {
        self.links.len()
    }

    /// Have the entries restored from the store met their clients again (the first timer
    /// after start-up: until then an entry given out before the restart is free, held back,
    /// and its client's record does not point to it yet)?
    pub fn is_reconciled(&self) -> bool {
        self.reconciled
    }

    /// Entries over every link (at most [`MAX_ENTRIES_PER_LINK`] a link).
    pub fn len(&self) -> usize {
        self.links.iter().map(HashMap::len).sum()
    }

    /// True when no link has an entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries of `link` that are free (and not held back), or on their way to be
    /// (acquiring, requesting).
    pub fn free_or_coming(&self, link: usize) -> usize {
        self.entries(link)
            .filter(|e| e.is_available() || matches!(e.state, EntryState::Acquiring | EntryState::Requesting))
            .count()
    }

    /// Entries of `link` held back.
    pub fn held_back(&self, link: usize) -> usize {
        self.entries(link).filter(|e| e.is_held_back()).count()
    }

    /// The entry of `link` holding `address`, if any.
    pub fn holding(&self, link: usize, address: Ipv4Addr) -> Option<EntryRef> {
        let e = self.entries(link).find(|e| e.is_leased() && e.address == address)?;
        self.reference(link, e.n)
    }

    /// An entry (other than `except`), on any link, that believes it holds a lease of
    /// `address`.
    pub(crate) fn holding_other_than(&self, except: Option<EntryRef>, address: Ipv4Addr) -> Option<EntryRef> {
        (0..self.links()).find_map(|link| {
            let e = self.entries(link).find(|e| {
                e.is_leased()
                    && e.address == address
                    && except.is_none_or(|r| (link, e.n) != (usize::from(r.link), r.n))
            })?;
            self.reference(link, e.n)
        })
    }

    /// A new entry on `link` with the lowest unused number, to be acquired; `None` at
    /// [`MAX_ENTRIES_PER_LINK`].
    pub(crate) fn create(&mut self, link: usize, now: Timestamp) -> Option<EntryRef> {
        let generation = self.next_generation;
        let map = self.links.get_mut(link)?;
        if map.len() >= MAX_ENTRIES_PER_LINK {
            return None;
        }
        let n = (0..MAX_ENTRIES_PER_LINK as u16).find(|n| !map.contains_key(n))?;
        self.next_generation = generation.wrapping_add(1);
        map.insert(n, PoolEntry::new(n, generation, now));
        Some(EntryRef { link: link as u16, n, generation })
    }

    /// Put back an entry read from the store (replacing any of the same number).
    pub(crate) fn restore(&mut self, link: usize, mut entry: PoolEntry) -> Option<EntryRef> {
        let generation = self.next_generation;
        self.next_generation = generation.wrapping_add(1);
        entry.generation = generation;
        let n = entry.n;
        self.links.get_mut(link)?.insert(n, entry);
        Some(EntryRef { link: link as u16, n, generation })
    }

    /// Remove an entry.
    pub(crate) fn remove(&mut self, r: EntryRef) -> Option<PoolEntry> {
        let map = self.links.get_mut(usize::from(r.link))?;
        if map.get(&r.n).is_some_and(|e| e.generation == r.generation) {
            map.remove(&r.n)
        } else {
            None
        }
    }

    /// Counts over every link.
    pub fn totals(&self) -> PoolTotals {
        Self::count(self.links.iter().flat_map(|m| m.values()))
    }

    /// Counts of one link.
    pub fn totals_of(&self, link: usize) -> PoolTotals {
        Self::count(self.entries(link))
    }

    fn count<'a>(entries: impl Iterator<Item = &'a PoolEntry>) -> PoolTotals {
        let mut t = PoolTotals::default();
        for e in entries {
            t.entries += 1;
            match e.state {
                EntryState::Free if e.is_held_back() => t.held_back += 1,
                EntryState::Free => t.free += 1,
                EntryState::Acquiring | EntryState::Requesting => t.acquiring += 1,
                EntryState::Assigned(_) | EntryState::Migrating(_) | EntryState::Reacquiring(_) => t.assigned += 1,
            }
        }
        t
    }

    /// A free entry of `link` to give out, confirmed ones first, then the longest lease.
    pub(crate) fn pick_free(&self, link: usize) -> Option<EntryRef> {
        let e = self
            .entries(link)
            .filter(|e| e.is_available())
            .max_by_key(|e| (e.confirmed, e.lease_end(), core::cmp::Reverse(e.n)))?;
        self.reference(link, e.n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_stable_distinct_and_recognisable() {
        let g = Ipv4Addr::new(10, 77, 1, 1);
        let a = PoolIdentity::new(g, 3);
        assert_eq!(a, PoolIdentity::new(g, 3), "the same after a restart");
        assert_ne!(a.mac, PoolIdentity::new(g, 4).mac);
        assert_ne!(a.mac, PoolIdentity::new(Ipv4Addr::new(10, 77, 2, 1), 3).mac);
        assert_eq!(a.mac[0] & 0b11, 0b10, "unicast, locally administered");
        assert_eq!(a.client_id, b"\0cdra-pool/10.77.1.1/3");
        assert_eq!(PoolIdentity::parse_key(&a.key()), Some((g, 3)));
        assert_eq!(PoolIdentity::parse_key(&ClientKey::client_id(b"\x01\x02\x00\x00\x00\x00\x01")), None);
    }

    #[test]
    fn numbers_are_reused_and_references_die_with_their_entry() {
        let mut p = PoolState::new(1);
        let t = Timestamp::from_millis(0);
        let a = p.create(0, t).expect("room");
        let b = p.create(0, t).expect("room");
        assert_eq!((a.n, b.n), (0, 1));
        p.remove(a);
        assert!(p.get(a).is_none());
        let c = p.create(0, t).expect("room");
        assert_eq!(c.n, 0, "the lowest free number");
        assert!(p.get(a).is_none(), "the old reference does not reach the new entry");
        assert!(p.get(c).is_some());
    }
}
