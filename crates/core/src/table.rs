//! The client table (paper section 5): one record per client, keyed by the client
//! identifier (option 61) when the client sends one, else by (htype, chaddr) — RFC 2131
//! 4.2: "the combination of 'client identifier' or 'chaddr' and assigned network address
//! constitute a unique identifier for the client's lease"; RFC 4361 for the identifier
//! clients like dhcpcd build from a DUID. The paper's relay keyed by hardware address only
//! (Appendix B, "Client-identifier option"); that is the bug fixed here.
//!
//! Storage is a slab (records in a `Vec`, reused through a free list) with two indexes:
//! key -> slot and address -> slot (the server is the truth about who holds an address: a
//! new server ACK for an address removes any other record that held it). A slot is named
//! from outside by a [`RecordRef`] (slot and generation), so a reference kept while a
//! request is out can never reach the record that reuses the slot later.
//!
//! Two pools, each bounded, so that a flood of new clients can never push out the clients
//! the cache is there to serve:
//!
//! - *bound* records hold a server reply: at most `max_clients`; beyond it the least
//!   recently seen of a random sample of bound records is evicted (counted);
//! - *pending* records (a client heard, no server answer yet): at most `pending_clients`
//!   (`[limits]`); beyond it the oldest pending record is evicted (counted apart). A record
//!   moves from pending to bound only through [`ClientTable::store_reply`], that is when a
//!   server reply that matched one of our requests is cached.

use core::fmt;
use core::hash::BuildHasher;
use core::net::Ipv4Addr;
use std::collections::VecDeque;

use hashbrown::HashTable;

use cdra_wire::Message;

use crate::limits::TokenBucket;
use crate::time::Timestamp;

/// Longest key stored inline (kind byte + data); longer client identifiers go on the heap.
const INLINE_KEY: usize = 22;

/// A client's identity.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey(KeyBytes);

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum KeyBytes {
    Inline { len: u8, data: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

const KIND_HARDWARE: u8 = 0;
const KIND_CLIENT_ID: u8 = 1;

impl ClientKey {
    fn from_parts(kind: u8, a: &[u8], b: &[u8]) -> Self {
        let len = 1 + a.len() + b.len();
        if len <= INLINE_KEY {
            let mut data = [0u8; INLINE_KEY];
            data[0] = kind;
            if let Some(d) = data.get_mut(1..1 + a.len()) {
                d.copy_from_slice(a);
            }
            if let Some(d) = data.get_mut(1 + a.len()..len) {
                d.copy_from_slice(b);
            }
            ClientKey(KeyBytes::Inline { len: len as u8, data })
        } else {
            let mut v = Vec::with_capacity(len);
            v.push(kind);
            v.extend_from_slice(a);
            v.extend_from_slice(b);
            ClientKey(KeyBytes::Heap(v.into_boxed_slice()))
        }
    }

    /// Key by hardware address.
    pub fn hardware(htype: u8, chaddr: &[u8]) -> Self {
        Self::from_parts(KIND_HARDWARE, &[htype], chaddr)
    }

    /// Key by client identifier (option 61 payload).
    pub fn client_id(id: &[u8]) -> Self {
        Self::from_parts(KIND_CLIENT_ID, id, &[])
    }

    /// The key of the client that sent (or is addressed by) `msg`: option 61 when present
    /// and non-empty, else (htype, chaddr).
    pub fn of<T: AsRef<[u8]>>(msg: &Message<T>) -> Self {
        match msg.client_identifier() {
            Some(id) if !id.is_empty() => Self::client_id(id),
            _ => Self::hardware(msg.htype(), msg.chaddr()),
        }
    }

    /// The client identifier, when the client is keyed by one.
    pub fn client_id_bytes(&self) -> Option<&[u8]> {
        match self.bytes().split_first() {
            Some((&KIND_CLIENT_ID, id)) => Some(id),
            _ => None,
        }
    }

    /// The key's bytes: a kind byte (0 hardware, 1 client identifier) then the data
    /// (for hardware: htype then chaddr). Stable: used as the persistent store's key.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes()
    }

    /// The inverse of [`ClientKey::as_bytes`].
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        match b.split_first() {
            Some((&KIND_CLIENT_ID, id)) if !id.is_empty() => Some(Self::client_id(id)),
            Some((&KIND_HARDWARE, rest)) => {
                let (htype, addr) = rest.split_first()?;
                (addr.len() <= 16).then(|| Self::hardware(*htype, addr))
            }
            _ => None,
        }
    }

    fn bytes(&self) -> &[u8] {
        match &self.0 {
            KeyBytes::Inline { len, data } => data.get(..usize::from(*len)).unwrap_or(&[]),
            KeyBytes::Heap(b) => b,
        }
    }

    /// Parse the textual form produced by `Display` ("id:01:aa:..", "hw:1:aa:bb:..") or a
    /// bare MAC address ("aa:bb:cc:dd:ee:ff", Ethernet).
    pub fn parse(text: &str) -> Option<Self> {
        fn hex_bytes(s: &str) -> Option<Vec<u8>> {
            let s = s.trim();
            if s.is_empty() {
                return Some(Vec::new());
            }
            s.split([':', '-']).map(|p| u8::from_str_radix(p, 16).ok()).collect()
        }
        if let Some(rest) = text.strip_prefix("id:") {
            let id = hex_bytes(rest)?;
            return (!id.is_empty()).then(|| Self::client_id(&id));
        }
        if let Some(rest) = text.strip_prefix("hw:") {
            let (htype, addr) = rest.split_once(':')?;
            let htype: u8 = htype.parse().ok()?;
            let addr = hex_bytes(addr)?;
            return (addr.len() <= 16).then(|| Self::hardware(htype, &addr));
        }
        let mac = hex_bytes(text)?;
        (mac.len() == 6).then(|| Self::hardware(1, &mac))
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.bytes();
        let hex = |f: &mut fmt::Formatter<'_>, bytes: &[u8]| -> fmt::Result {
            for (i, x) in bytes.iter().enumerate() {
                if i > 0 {
                    f.write_str(":")?;
                }
                write!(f, "{x:02x}")?;
            }
            Ok(())
        };
        match b.split_first() {
            Some((&KIND_CLIENT_ID, id)) => {
                f.write_str("id:")?;
                hex(f, id)
            }
            Some((_, rest)) => {
                let (htype, addr) = rest.split_first().map(|(h, a)| (*h, a)).unwrap_or((0, &[]));
                write!(f, "hw:{htype}:")?;
                hex(f, addr)
            }
            None => f.write_str("?"),
        }
    }
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// DHCP or plain BOOTP (paper 5: `ClientType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// A DHCP client.
    Dhcp,
    /// A BOOTP client (no option 53).
    Bootp,
}

/// The client's state as the proxy believes it (paper 5.2: "roughly synonymous to those
/// shown in Figure 5 of [RFC 2131]", determined by the last message to or from the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// A DISCOVER was forwarded; the first acceptable OFFER goes to the client.
    Init,
    /// We answered a DISCOVER from the cache; the client's REQUEST for it is ours to ACK.
    OfferedLocally,
    /// We offered the address of the client's expired record (paper 5.7); its REQUEST goes
    /// to the server as an INIT-REBOOT.
    OfferedExpired,
    /// An OFFER was passed on, or a SELECTING REQUEST forwarded: further OFFERs are
    /// discarded, the ACK or NAK is awaited.
    Requesting,
    /// An INIT-REBOOT REQUEST was forwarded.
    Rebooting,
    /// A RENEWING REQUEST was forwarded.
    Renewing,
    /// A REBINDING REQUEST was forwarded.
    Rebinding,
    /// The client holds a lease (from the server or from us).
    Bound,
}

impl ClientState {
    /// Table 1: ACK and NAK are forwarded "if client is in REQUESTING, REBOOTING,
    /// RENEWING, or REBINDING state, otherwise, silent discard".
    pub fn awaits_ack(self) -> bool {
        matches!(
            self,
            ClientState::Requesting | ClientState::Rebooting | ClientState::Renewing | ClientState::Rebinding
        )
    }

    /// Stable label.
    pub fn label(self) -> &'static str {
        match self {
            ClientState::Init => "init",
            ClientState::OfferedLocally => "offered_locally",
            ClientState::OfferedExpired => "offered_expired",
            ClientState::Requesting => "requesting",
            ClientState::Rebooting => "rebooting",
            ClientState::Renewing => "renewing",
            ClientState::Rebinding => "rebinding",
            ClientState::Bound => "bound",
        }
    }
}

/// Where a record's address comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A server's ACK (or BOOTREPLY) to the client.
    Server,
    /// Pool entry `n` of the record's link (pool mode, [`crate::pool`]): the address is
    /// leased under cdra's own identity and the client was given it by cdra.
    Pool {
        /// The entry's number on its link.
        n: u16,
    },
    /// Not a client at all: pool entry `n`'s own lease, as the store keeps it (never in
    /// the table).
    PoolLease {
        /// The entry's number on its link.
        n: u16,
    },
}

/// Which server a client's lease is with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerBinding {
    /// Where we send (a configured server address).
    pub addr: Ipv4Addr,
    /// What the server calls itself (its option 54), put back into requests we forward.
    pub id: Ipv4Addr,
}

/// Option 55 as the client sent it in the request the server last answered (Appendix B,
/// "What happens if the client request changes?"), as a set of option codes (32 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamList {
    bits: [u64; 4],
}

impl ParamList {
    /// An empty list.
    pub const EMPTY: ParamList = ParamList { bits: [0; 4] };

    /// From option 55's payload.
    pub fn new(codes: &[u8]) -> Self {
        let mut p = ParamList::EMPTY;
        for &c in codes {
            if let Some(word) = p.bits.get_mut(usize::from(c >> 6)) {
                *word |= 1 << (c & 63);
            }
        }
        p
    }

    fn contains(&self, c: u8) -> bool {
        self.bits.get(usize::from(c >> 6)).is_some_and(|w| w & (1 << (c & 63)) != 0)
    }

    /// The codes, ascending.
    pub fn codes(&self) -> impl Iterator<Item = u8> + '_ {
        (0..=255u8).filter(|c| self.contains(*c))
    }

    /// True if every code of `asked` is in this list (PAD asks for nothing: RFC 2132 3.1,
    /// and a cached reply's template keeps no PAD among its codes).
    pub fn covers(&self, asked: &[u8]) -> bool {
        asked.iter().all(|c| *c == 0 || self.contains(*c))
    }
}

pub use crate::templates::CachedReply;
use crate::templates::{ReplyContext, TemplateSet};

/// One client (paper 5: ClientID, ClientType, State, ServAddr, CliAddr, LeaseTime,
/// LeaseStartTime, LastContact, LastUpdate, Msg; plus what the Appendix B fixes need).
#[derive(Debug, Clone)]
pub struct ClientRecord {
    /// Identity.
    pub key: ClientKey,
    /// DHCP or BOOTP.
    pub kind: ClientKind,
    /// Believed state.
    pub state: ClientState,
    /// Index of the downstream interface the client was last heard on.
    pub downstream: u16,
    /// The server holding the lease (ServAddr).
    pub server: Option<ServerBinding>,
    /// The leased address (CliAddr).
    pub address: Ipv4Addr,
    /// Lease granted by the server, seconds (LeaseTime); `u32::MAX` is infinite.
    pub lease_secs: u32,
    /// Server T1 and T2, seconds from `lease_start`.
    pub t1_secs: u32,
    /// See `t1_secs`.
    pub t2_secs: u32,
    /// When the server's lease started (LeaseStartTime): when the request it answers was
    /// forwarded, so the lease is never believed longer than it is.
    pub lease_start: Timestamp,
    /// Last message from the client (LastContact).
    pub last_contact: Timestamp,
    /// Last time a server refreshed the configuration (LastUpdate).
    pub last_update: Timestamp,
    /// The last DHCPACK / BOOTREPLY from the server (Msg), option 82 removed, trimmed after
    /// END, with option 55 of the request it answers ([`ClientRecord::param_list`]). `None`
    /// until the server has answered.
    pub reply: Option<CachedReply>,
    /// The deadline of this record's one armed lapse timer (see `timers.rs`): a lapse
    /// timer that fires at another moment is stale and ignored.
    pub lapse_armed: Option<Timestamp>,
    /// Automated lease renewals (paper 2.3, 5.3): when the short lease we gave the client
    /// ends. `None` when clients get the server's lease.
    pub client_lease_end: Option<Timestamp>,
    /// When a renewal was last sent upstream on the client's behalf (paper 5.3), while it
    /// is unanswered (at most one per `UPSTREAM_RENEWAL_RETRY`).
    pub upstream_renewal_sent: Option<Timestamp>,
    /// This client's request budget (`[limits] client_rate`, `client_burst`); not persisted.
    pub budget: TokenBucket,
    /// Since this engine started, a server reply for this client was believed, or a probe
    /// found the client itself on its address. A record restored from the store is not
    /// (paper 3.4: "information in the client database is suspect") until then; not
    /// persisted.
    pub confirmed: bool,
    /// Where its address comes from.
    pub origin: Origin,
    /// Pool mode: moving the client onto a lease of its own failed; its next request gets a
    /// NAK, so that it starts over with the server.
    pub must_restart: bool,
    /// Pool mode: the OFFER out to the client was made after a probe of its address found
    /// nobody (its REQUEST for that OFFER needs no second probe). Cleared by any other
    /// answer.
    pub offer_probed: bool,
}

impl ClientRecord {
    /// A record for a client just heard from, holding nothing yet.
    pub fn new(key: ClientKey, kind: ClientKind, downstream: u16, now: Timestamp) -> Self {
        ClientRecord {
            key,
            kind,
            state: ClientState::Init,
            downstream,
            server: None,
            address: Ipv4Addr::UNSPECIFIED,
            lease_secs: 0,
            t1_secs: 0,
            t2_secs: 0,
            lease_start: now,
            last_contact: now,
            last_update: now,
            reply: None,
            lapse_armed: None,
            client_lease_end: None,
            upstream_renewal_sent: None,
            budget: TokenBucket::full(),
            confirmed: false,
            origin: Origin::Server,
            must_restart: false,
            offer_probed: false,
        }
    }
}

crate::counters::labelled_enum! {
    /// Why a record left the table.
    pub enum Removal {
        /// RELEASE or DECLINE from the client (Table 1).
        ClientGaveUp => "client_gave_up", "The client sent DHCPRELEASE or DHCPDECLINE (Table 1).";
        /// NAK from a server.
        ServerNak => "server_nak", "A server NAKed the client.";
        /// The bound pool was full.
        Evicted => "evicted", "Bound records evicted: the table was full (max_clients).";
        /// The pending pool was full.
        EvictedPending => "evicted_pending", "Records still waiting for a server answer, evicted: that pool was full (limits.pending_clients).";
        /// Older than `max_age` (paper 5.6).
        Expired => "expired", "Older than max_age (paper 5.6): no server has refreshed it for that long.";
        /// The address is not on the client's subnet (Appendix B, "Validity of client data").
        WrongSubnet => "wrong_subnet", "The address is not on the subnet the client is on (paper App. B).";
        /// A probe found another host on the address (paper 3.2).
        AddressInUse => "address_in_use", "A probe found another host on the address (paper 3.2).";
        /// A server gave the address to another client.
        AddressReassigned => "reassigned", "A server gave the address to another client.";
        /// A lapsed short lease was released at the server (paper 2.3).
        Released => "released", "The client's short lease lapsed and its lease was released at the server (paper 2.3).";
        /// An operator flushed it.
        Flushed => "flushed", "An operator flushed it.";
        /// This relay became the standby of a pair sharing the table (cdra's `[ha]`).
        HandedOver => "handed_over", "This relay became the standby of a pair sharing the table ([ha]): its table was dropped; the active relay holds it, in the shared store.";
        /// Its downstream interface is no longer configured.
        InterfaceRemoved => "interface_removed", "Its downstream interface was removed from the configuration (a reload).";
        /// A pool client left: its address is free in the pool again.
        ReturnedToPool => "returned_to_pool", "Pool mode: a pool client released its address or left (lapse, nobody on the address): free in the pool again.";
    }
}

/// Slot index in the slab.
pub type Slot = u32;

/// A reference to one record that stays valid only as long as that record lives: a slot
/// and the generation the slot had when the reference was taken (a removed record's slot
/// gets a new generation, so its old references resolve to nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordRef {
    /// The slot.
    pub slot: Slot,
    generation: u32,
}

/// Which pool a record is in (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// It holds a server reply.
    Bound,
    /// No server has answered for it yet.
    Pending,
}

impl ClientRecord {
    /// Option 55 of the request the cached reply answers (kept with the reply's template;
    /// empty without a reply).
    pub fn param_list(&self) -> ParamList {
        self.reply.as_ref().map_or(ParamList::EMPTY, |c| ParamList::new(c.param_codes()))
    }

    /// What this record holds of its cached reply ([`crate::templates`]): its key, address
    /// and lease times, which the reply's own bytes do not repeat. A pool entry's own lease
    /// names no client (its chaddr and option 61 are the reply's own).
    pub fn reply_context(&self) -> ReplyContext<'_> {
        ReplyContext {
            key: match self.origin {
                Origin::PoolLease { .. } => None,
                Origin::Server | Origin::Pool { .. } => Some(&self.key),
            },
            address: self.address,
            lease_secs: self.lease_secs,
            t1_secs: self.t1_secs,
            t2_secs: self.t2_secs,
        }
    }

    /// Write the cached reply into `out` ([`CachedReply::expand_into`]); its length.
    pub fn expand_reply(&self, out: &mut [u8]) -> Option<usize> {
        self.reply.as_ref()?.expand_into(&self.reply_context(), out)
    }

    /// The cached reply, whole ([`CachedReply::to_vec`]).
    pub fn reply_message(&self) -> Option<Vec<u8>> {
        self.reply.as_ref().map(|c| c.to_vec(&self.reply_context()))
    }

    /// The hardware address the cached reply was for (empty without a reply).
    pub fn reply_chaddr(&self) -> &[u8] {
        self.reply.as_ref().map_or(&[], |c| c.chaddr(&self.reply_context()))
    }

    /// Why this record would be evicted: its pool was full.
    pub fn eviction(&self) -> Removal {
        match self.pool() {
            Pool::Bound => Removal::Evicted,
            Pool::Pending => Removal::EvictedPending,
        }
    }

    /// The pool this record belongs to.
    pub fn pool(&self) -> Pool {
        if self.reply.is_some() {
            Pool::Bound
        } else {
            Pool::Pending
        }
    }
}

fn record_in(slots: &[Option<ClientRecord>], slot: Slot) -> Option<&ClientRecord> {
    slots.get(slot as usize).and_then(Option::as_ref)
}

/// Where a table's memory goes, in bytes (BENCHMARKS.md: the 1,000,000-client breakdown).
/// Heap blocks are counted at their size rounded up to glibc malloc's chunk (16-byte steps,
/// 8 bytes of header).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableMemory {
    /// The slab: one `ClientRecord` per slot, and each slot's generation.
    pub records: usize,
    /// Client keys too long to be kept inside the record.
    pub long_keys: usize,
    /// The key -> slot and address -> slot indexes (4 bytes and a control byte a bucket).
    pub indexes: usize,
    /// The clients' own reply bytes too long to be kept inside the record (a long host
    /// name or FQDN; paper 5.7, [`crate::templates`]): one malloc chunk each. Those kept
    /// inline are in `records`.
    pub own_reply_bytes: usize,
    /// The shared templates (and the templates of replies kept alone).
    pub templates: usize,
    /// The order of pending records.
    pub pending_order: usize,
}

impl TableMemory {
    /// The sum.
    pub fn total(&self) -> usize {
        self.records + self.long_keys + self.indexes + self.own_reply_bytes + self.templates + self.pending_order
    }
}

/// What malloc takes for a block of `n` bytes.
fn malloc_chunk(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (n + 8).max(32).div_ceil(16) * 16
    }
}

/// The table.
pub struct ClientTable {
    slots: Vec<Option<ClientRecord>>,
    /// Each slot's generation (see [`RecordRef`]).
    generations: Vec<u32>,
    free: Vec<Slot>,
    /// key -> slot and address -> slot, each a hash table of bare slot numbers (4 bytes an
    /// entry): the key and the address are the record's own, so an entry need not hold a
    /// copy of them.
    by_key: HashTable<Slot>,
    by_address: HashTable<Slot>,
    /// Hashes the keys and addresses of both indexes.
    hasher: hashbrown::DefaultHashBuilder,
    /// The shared parts of the records' replies (paper 5.7, [`crate::templates`]).
    templates: TemplateSet,
    max_clients: usize,
    /// Records in the pending pool, and the most it may hold.
    pending: usize,
    max_pending: usize,
    /// Pending records in the order they were created (eviction of the oldest); entries
    /// whose record has left the pool are stale and skipped.
    pending_order: VecDeque<RecordRef>,
    rng: u64,
}

impl fmt::Debug for ClientTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTable")
            .field("records", &self.by_key.len())
            .field("pending", &self.pending)
            .field("templates", &self.templates)
            .finish_non_exhaustive()
    }
}

impl ClientTable {
    /// An empty table for at most `max_clients` bound and `max_pending` pending records.
    pub fn new(max_clients: usize, max_pending: usize, seed: u64) -> Self {
        ClientTable {
            slots: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            by_key: HashTable::new(),
            by_address: HashTable::new(),
            hasher: hashbrown::DefaultHashBuilder::default(),
            templates: TemplateSet::new(crate::templates::DEFAULT_MAX_TEMPLATES),
            max_clients: max_clients.max(1),
            pending: 0,
            max_pending: max_pending.max(1),
            pending_order: VecDeque::new(),
            rng: seed | 1,
        }
    }

    /// New bounds (a reload). A smaller bound evicts nothing at once: the table shrinks
    /// to it as records are added (each insert beyond it evicts, as always).
    pub fn set_bounds(&mut self, max_clients: usize, max_pending: usize) {
        self.max_clients = max_clients.max(1);
        self.max_pending = max_pending.max(1);
    }

    /// Make room for `additional` more records (restoring a large table at start-up
    /// without rehashing as it grows).
    pub fn reserve(&mut self, additional: usize) {
        let additional = additional.min(self.max_clients.saturating_sub(self.by_key.len()));
        self.slots.reserve(additional);
        self.generations.reserve(additional);
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.by_key.reserve(additional, |s| record_in(slots, *s).map_or(0, |r| hasher.hash_one(&r.key)));
        self.by_address.reserve(additional, |s| record_in(slots, *s).map_or(0, |r| hasher.hash_one(r.address)));
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Records in the pending pool (no server answer yet).
    pub fn pending_len(&self) -> usize {
        self.pending
    }

    /// Records in the bound pool (holding a server reply).
    pub fn bound_len(&self) -> usize {
        self.len() - self.pending
    }

    /// The slot of `key`.
    pub fn find(&self, key: &ClientKey) -> Option<Slot> {
        let slots = &self.slots;
        self.by_key.find(self.hasher.hash_one(key), |s| record_in(slots, *s).is_some_and(|r| r.key == *key)).copied()
    }

    /// The slot holding `address`.
    pub fn find_address(&self, address: Ipv4Addr) -> Option<Slot> {
        let slots = &self.slots;
        self.by_address
            .find(self.hasher.hash_one(address), |s| record_in(slots, *s).is_some_and(|r| r.address == address))
            .copied()
    }

    /// Where its memory goes (walks every record).
    pub fn memory(&self) -> TableMemory {
        let buckets = |capacity: usize| if capacity == 0 { 0 } else { (capacity * 8 / 7).next_power_of_two() };
        let mut m = TableMemory {
            records: self.slots.capacity() * core::mem::size_of::<Option<ClientRecord>>()
                + self.generations.capacity() * 4
                + self.free.capacity() * 4,
            indexes: (buckets(self.by_key.capacity()) + buckets(self.by_address.capacity())) * 5,
            pending_order: self.pending_order.capacity() * core::mem::size_of::<RecordRef>(),
            ..TableMemory::default()
        };
        let mut shared = hashbrown::HashSet::new();
        for (_, r) in self.iter() {
            if let KeyBytes::Heap(b) = &r.key.0 {
                m.long_keys += malloc_chunk(b.len());
            }
            if let Some(reply) = &r.reply {
                // Own bytes inside the record cost nothing more; spilled ones a malloc chunk.
                m.own_reply_bytes += malloc_chunk(reply.own_heap_len());
                let t = reply.template();
                if shared.insert(std::sync::Arc::as_ptr(t) as usize) {
                    m.templates += malloc_chunk(t.as_bytes().len()) + malloc_chunk(core::mem::size_of_val(&**t) + 16);
                }
            }
        }
        m
    }

    /// The shared parts of the replies ([`crate::templates`]).
    pub fn templates(&self) -> &TemplateSet {
        &self.templates
    }

    /// The shared parts of the replies, mutable (persistence sweeps them).
    pub(crate) fn templates_mut(&mut self) -> &mut TemplateSet {
        &mut self.templates
    }

    /// The bound of the shared parts (`[limits] reply_templates`).
    pub fn set_max_templates(&mut self, max: usize) {
        self.templates.set_max(max);
    }

    /// Index `slot` under its record's key.
    fn index_key(&mut self, slot: Slot) {
        let (slots, hasher) = (&self.slots, &self.hasher);
        let Some(r) = record_in(slots, slot) else { return };
        let hash = |s: &Slot| record_in(slots, *s).map_or(0, |r| hasher.hash_one(&r.key));
        self.by_key.insert_unique(hasher.hash_one(&r.key), slot, hash);
    }

    /// Make `slot` the holder of `address` in the index; returns the slot that held it.
    fn index_address(&mut self, address: Ipv4Addr, slot: Slot) -> Option<Slot> {
        let (slots, hasher) = (&self.slots, &self.hasher);
        let h = hasher.hash_one(address);
        let same = |s: &Slot| record_in(slots, *s).is_some_and(|r| r.address == address) || *s == slot;
        match self.by_address.find_mut(h, same) {
            Some(held) => Some(core::mem::replace(held, slot)).filter(|old| *old != slot),
            None => {
                self.by_address
                    .insert_unique(h, slot, |s| record_in(slots, *s).map_or(0, |r| hasher.hash_one(r.address)));
                None
            }
        }
    }

    /// Take `slot` out of the address index if it is there as `address`'s holder.
    fn unindex_address(&mut self, address: Ipv4Addr, slot: Slot) {
        if let Ok(e) = self.by_address.find_entry(self.hasher.hash_one(address), |s| *s == slot) {
            e.remove();
        }
    }

    /// The record in `slot`.
    pub fn get(&self, slot: Slot) -> Option<&ClientRecord> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// The record in `slot`, mutable. Do not change `key`, `address` or `reply` through it:
    /// use [`ClientTable::set_address`] and [`ClientTable::store_reply`].
    pub fn get_mut(&mut self, slot: Slot) -> Option<&mut ClientRecord> {
        self.slots.get_mut(slot as usize).and_then(Option::as_mut)
    }

    /// A reference to the record in `slot` that dies with it.
    pub fn reference(&self, slot: Slot) -> Option<RecordRef> {
        self.get(slot)?;
        let generation = self.generations.get(slot as usize).copied()?;
        Some(RecordRef { slot, generation })
    }

    /// The slot `r` refers to, if that record is still there.
    pub fn resolve(&self, r: RecordRef) -> Option<Slot> {
        let live = self.generations.get(r.slot as usize) == Some(&r.generation) && self.get(r.slot).is_some();
        live.then_some(r.slot)
    }

    /// Every record.
    pub fn iter(&self) -> impl Iterator<Item = (Slot, &ClientRecord)> {
        self.slots.iter().enumerate().filter_map(|(i, r)| r.as_ref().map(|r| (i as Slot, r)))
    }

    /// Number of slots (occupied or not), for incremental sweeps.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn next_random(&mut self) -> u64 {
        // xorshift64*: deterministic for a given seed.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// The least recently seen of a few randomly sampled bound records, other than `keep`.
    fn bound_victim(&mut self, keep: Slot) -> Option<Slot> {
        let n = self.slots.len();
        if n == 0 {
            return None;
        }
        let eligible = |s: Slot, r: &ClientRecord| s != keep && r.pool() == Pool::Bound;
        let mut best: Option<(Slot, Timestamp)> = None;
        for _ in 0..16 {
            let i = (self.next_random() % n as u64) as usize;
            if let Some(Some(r)) = self.slots.get(i) {
                if eligible(i as Slot, r) && best.is_none_or(|(_, b)| r.last_contact < b) {
                    best = Some((i as Slot, r.last_contact));
                }
            }
        }
        best.map(|(s, _)| s).or_else(|| {
            // The sample held no bound record (a table mostly pending): look at all.
            self.iter().filter(|(s, r)| eligible(*s, r)).min_by_key(|(_, r)| r.last_contact).map(|(s, _)| s)
        })
    }

    /// The oldest record of the pending pool.
    fn pending_victim(&mut self) -> Option<Slot> {
        while let Some(r) = self.pending_order.pop_front() {
            if let Some(s) = self.resolve(r).filter(|s| self.get(*s).is_some_and(|r| r.pool() == Pool::Pending)) {
                return Some(s);
            }
        }
        None
    }

    /// Insert a new record (its key must not be present). When its pool is full, a record
    /// of the same pool is evicted first (the oldest pending one, or the least recently
    /// seen of a sample of bound ones) and returned.
    pub fn insert(&mut self, record: ClientRecord) -> (Slot, Option<ClientRecord>) {
        let mut evicted = None;
        let pool = record.pool();
        let victim = match pool {
            Pool::Pending if self.pending >= self.max_pending => self.pending_victim(),
            Pool::Bound if self.bound_len() >= self.max_clients => self.bound_victim(Slot::MAX),
            _ => None,
        };
        if let Some(v) = victim {
            evicted = self.remove(v);
        }
        if let Some(old) = self.find(&record.key) {
            // Defensive: replace an existing record of the same key.
            let _ = self.remove(old);
        }
        let mut record = record;
        if let Some(reply) = record.reply.as_mut() {
            self.templates.intern(reply);
        }
        let address = record.address;
        let slot = match self.free.pop() {
            Some(s) => {
                if let Some(cell) = self.slots.get_mut(s as usize) {
                    *cell = Some(record);
                }
                s
            }
            None => {
                self.slots.push(Some(record));
                self.generations.push(0);
                (self.slots.len() - 1) as Slot
            }
        };
        self.index_key(slot);
        if !address.is_unspecified() {
            self.index_address(address, slot);
        }
        if pool == Pool::Pending {
            self.pending += 1;
            if let Some(r) = self.reference(slot) {
                self.pending_order.push_back(r);
            }
            self.compact_pending_order();
        }
        (slot, evicted)
    }

    /// Keep the pending pool's order queue proportional to the pool (records that became
    /// bound or left leave stale entries behind).
    fn compact_pending_order(&mut self) {
        if self.pending_order.len() > 2 * self.pending + 64 {
            let (slots, generations) = (&self.slots, &self.generations);
            self.pending_order.retain(|r| {
                generations.get(r.slot as usize) == Some(&r.generation)
                    && slots.get(r.slot as usize).and_then(Option::as_ref).is_some_and(|x| x.pool() == Pool::Pending)
            });
        }
    }

    /// Remove the record in `slot`.
    pub fn remove(&mut self, slot: Slot) -> Option<ClientRecord> {
        let record = self.slots.get_mut(slot as usize)?.take()?;
        if let Some(g) = self.generations.get_mut(slot as usize) {
            *g = g.wrapping_add(1);
        }
        if let Ok(e) = self.by_key.find_entry(self.hasher.hash_one(&record.key), |s| *s == slot) {
            e.remove();
        }
        self.unindex_address(record.address, slot);
        if record.pool() == Pool::Pending {
            self.pending = self.pending.saturating_sub(1);
        }
        self.free.push(slot);
        Some(record)
    }

    /// Give the record in `slot` the server reply `reply` (it moves to the bound pool if it
    /// was pending). Returns a bound record evicted to make room (`max_clients`).
    pub fn store_reply(&mut self, slot: Slot, mut reply: CachedReply) -> Option<ClientRecord> {
        self.get(slot)?;
        self.templates.intern(&mut reply);
        let was_pending = {
            let r = self.get_mut(slot)?;
            let was = r.reply.is_none();
            r.reply = Some(reply);
            was
        };
        if !was_pending {
            return None;
        }
        self.pending = self.pending.saturating_sub(1);
        if self.bound_len() > self.max_clients {
            let victim = self.bound_victim(slot)?;
            return self.remove(victim);
        }
        None
    }

    /// Give the record in `slot` a new address; returns the slot of another record that held
    /// it (the caller removes it: the server has given the address to this client).
    pub fn set_address(&mut self, slot: Slot, address: Ipv4Addr) -> Option<Slot> {
        let old = self.get(slot)?.address;
        if old == address {
            return None;
        }
        self.unindex_address(old, slot);
        if let Some(r) = self.get_mut(slot) {
            r.address = address;
        }
        if address.is_unspecified() {
            return None;
        }
        self.index_address(address, slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(mac: u8, now: u64) -> ClientRecord {
        ClientRecord::new(
            ClientKey::hardware(1, &[2, 0, 0, 0, 0, mac]),
            ClientKind::Dhcp,
            0,
            Timestamp::from_millis(now),
        )
    }

    fn reply() -> CachedReply {
        let ctx = ReplyContext { key: None, address: Ipv4Addr::UNSPECIFIED, lease_secs: 0, t1_secs: 0, t2_secs: 0 };
        CachedReply::new(&[0u8; 300], &ctx, &ParamList::EMPTY).unwrap()
    }

    #[test]
    fn a_flood_of_pending_records_never_evicts_a_bound_one() {
        let mut t = ClientTable::new(4, 8, 1);
        for mac in 0..4u8 {
            let (s, _) = t.insert(record(mac, 0));
            assert!(t.store_reply(s, reply()).is_none());
        }
        for mac in 10..200u8 {
            let (_, evicted) = t.insert(record(mac, u64::from(mac)));
            assert!(evicted.is_none_or(|e| e.pool() == Pool::Pending), "a bound record was evicted");
        }
        assert_eq!(t.bound_len(), 4);
        assert_eq!(t.pending_len(), 8);
        // The oldest pending records went first.
        assert!(t.find(&record(191, 0).key).is_none());
        assert!(t.find(&record(199, 0).key).is_some());
        assert!(t.pending_order.len() <= 2 * 8 + 64);
    }

    #[test]
    fn a_reference_dies_with_its_record() {
        let mut t = ClientTable::new(4, 4, 1);
        let (s, _) = t.insert(record(1, 0));
        let r = t.reference(s).unwrap();
        assert_eq!(t.resolve(r), Some(s));
        t.remove(s);
        let (s2, _) = t.insert(record(2, 0));
        assert_eq!(s2, s, "the slot is reused");
        assert_eq!(t.resolve(r), None);
    }

    #[test]
    fn a_full_bound_pool_evicts_a_bound_record_when_a_pending_one_is_answered() {
        let mut t = ClientTable::new(2, 4, 1);
        for mac in 0..2u8 {
            let (s, _) = t.insert(record(mac, u64::from(mac)));
            t.store_reply(s, reply());
        }
        let (s, _) = t.insert(record(9, 100));
        let evicted = t.store_reply(s, reply()).expect("room made");
        assert_eq!(evicted.pool(), Pool::Bound);
        assert_eq!((t.bound_len(), t.pending_len()), (2, 0));
        assert!(t.get(s).is_some());
    }
}
