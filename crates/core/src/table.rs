//! The client table (paper section 5): one record per client, keyed by the client
//! identifier (option 61) when the client sends one, else by (htype, chaddr) — RFC 2131
//! 4.2: "the combination of 'client identifier' or 'chaddr' and assigned network address
//! constitute a unique identifier for the client's lease"; RFC 4361 for the identifier
//! clients like dhcpcd build from a DUID. The paper's relay keyed by hardware address only
//! (Appendix B, "Client-identifier option"); that is the bug fixed here.
//!
//! Storage is a slab (records in a `Vec`, reused through a free list) with three indexes:
//! key -> slot, address -> slot (the server is the truth about who holds an address: a new
//! server ACK for an address removes any other record that held it), and xid -> slot for
//! requests in flight (matching a server reply to its client even when the server does
//! not echo option 61). Bounded: at `max_clients` the least recently seen of a random
//! sample is evicted, and counted.

use core::fmt;
use core::net::Ipv4Addr;
use hashbrown::HashMap;

use cdra_wire::Message;

use crate::time::Timestamp;

/// Longest key stored inline (kind byte + data); longer client identifiers go on the heap.
const INLINE_KEY: usize = 31;

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
            ClientState::Requesting => "requesting",
            ClientState::Rebooting => "rebooting",
            ClientState::Renewing => "renewing",
            ClientState::Rebinding => "rebinding",
            ClientState::Bound => "bound",
        }
    }
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

    /// True if every code of `asked` is in this list.
    pub fn covers(&self, asked: &[u8]) -> bool {
        asked.iter().all(|c| self.contains(*c))
    }
}

/// A server's reply as the table keeps it: the BOOTP header without the 192-byte
/// `sname` and `file` fields when they are all zeros (as they are in most replies), then
/// the magic cookie and the options up to END. [`CachedReply::expand_into`] gives back the
/// message byte for byte. A million clients' replies then take ~110 MB rather than ~300.
#[derive(Clone, PartialEq, Eq)]
pub struct CachedReply(Box<[u8]>);

/// Layout of [`CachedReply`]: a flags byte, then header bytes 0..44, then sname (64) if
/// flag 1, file (128) if flag 2, then bytes 236.. of the message.
const HAS_SNAME: u8 = 1;
const HAS_FILE: u8 = 2;
const SNAME_AT: usize = 44;
const FILE_AT: usize = 108;
const COOKIE_AT: usize = 236;

impl CachedReply {
    /// Keep `message` (a whole DHCP/BOOTP message, at least 240 bytes).
    pub fn new(message: &[u8]) -> Option<Self> {
        let head = message.get(..SNAME_AT)?;
        let sname = message.get(SNAME_AT..FILE_AT)?;
        let file = message.get(FILE_AT..COOKIE_AT)?;
        let rest = message.get(COOKIE_AT..)?;
        let keep_sname = sname.iter().any(|b| *b != 0);
        let keep_file = file.iter().any(|b| *b != 0);
        let mut v = Vec::with_capacity(1 + message.len());
        v.push((u8::from(keep_sname) * HAS_SNAME) | (u8::from(keep_file) * HAS_FILE));
        v.extend_from_slice(head);
        if keep_sname {
            v.extend_from_slice(sname);
        }
        if keep_file {
            v.extend_from_slice(file);
        }
        v.extend_from_slice(rest);
        Some(CachedReply(v.into_boxed_slice()))
    }

    /// Write the whole message into `out`; returns its length, or `None` if `out` is too
    /// small.
    pub fn expand_into(&self, out: &mut [u8]) -> Option<usize> {
        let (&flags, mut rest) = self.0.split_first()?;
        let mut take = |n: usize| -> Option<&[u8]> {
            let (a, b) = (rest.get(..n)?, rest.get(n..)?);
            rest = b;
            Some(a)
        };
        out.get_mut(..SNAME_AT)?.copy_from_slice(take(SNAME_AT)?);
        let sname = out.get_mut(SNAME_AT..FILE_AT)?;
        match flags & HAS_SNAME {
            0 => sname.fill(0),
            _ => sname.copy_from_slice(take(FILE_AT - SNAME_AT)?),
        }
        let file = out.get_mut(FILE_AT..COOKIE_AT)?;
        match flags & HAS_FILE {
            0 => file.fill(0),
            _ => file.copy_from_slice(take(COOKIE_AT - FILE_AT)?),
        }
        let tail = rest;
        out.get_mut(COOKIE_AT..COOKIE_AT + tail.len())?.copy_from_slice(tail);
        Some(COOKIE_AT + tail.len())
    }

    /// The whole message.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; 1 + self.0.len() + (FILE_AT - SNAME_AT) + (COOKIE_AT - FILE_AT)];
        let n = self.expand_into(&mut v).unwrap_or(0);
        v.truncate(n);
        v
    }

    /// The client hardware address the reply was for (`chaddr`, `hlen` bytes).
    pub fn chaddr(&self) -> &[u8] {
        // Header bytes 0..44 are stored verbatim after the flags byte.
        let hlen = usize::from(self.0.get(1 + 2).copied().unwrap_or(0)).min(16);
        self.0.get(1 + 28..1 + 28 + hlen).unwrap_or(&[])
    }

    /// Bytes kept in memory.
    pub fn stored_len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for CachedReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CachedReply({} bytes)", self.0.len())
    }
}

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
    /// The server whose OFFER was passed on (for the SELECTING REQUEST's option 54).
    pub offered_by: Option<ServerBinding>,
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
    /// END. `None` until the server has answered.
    pub reply: Option<CachedReply>,
    /// Option 55 of the request the cached reply answers.
    pub param_list: ParamList,
    /// The request last forwarded for this client, as its reply will name it.
    pub pending: Option<RequestId>,
    /// When `pending` was forwarded.
    pub pending_since: Timestamp,
    /// The deadline of this record's one armed lapse timer (see `timers.rs`): a lapse
    /// timer that fires at another moment is stale and ignored.
    pub lapse_armed: Option<Timestamp>,
    /// Automated lease renewals (paper 2.3, 5.3): when the short lease we gave the client
    /// ends. `None` when clients get the server's lease.
    pub client_lease_end: Option<Timestamp>,
    /// `pending` is a renewal we sent upstream on the client's behalf: its ACK updates
    /// the record and is not forwarded (paper 5.3).
    pub upstream_renewal: bool,
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
            offered_by: None,
            address: Ipv4Addr::UNSPECIFIED,
            lease_secs: 0,
            t1_secs: 0,
            t2_secs: 0,
            lease_start: now,
            last_contact: now,
            last_update: now,
            reply: None,
            param_list: ParamList::EMPTY,
            pending: None,
            pending_since: now,
            lapse_armed: None,
            client_lease_end: None,
            upstream_renewal: false,
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
        /// The table was full.
        Evicted => "evicted", "The table was full (max_clients).";
        /// Older than `max_age` (paper 5.6) or the server's lease ran out.
        Expired => "expired", "Older than max_age (paper 5.6), or the server lease ran out.";
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
    }
}

/// A forwarded request as the server's reply names it: RFC 2131 4.1, the server copies
/// `xid`, `htype`, `hlen` and `chaddr` from the request, and `giaddr` (which names the
/// downstream link). Clients choose xids at random, so two clients may share one; these
/// together tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// What is remembered of a tracked request.
#[derive(Debug, Clone, Copy)]
struct PendingRequest {
    slot: Slot,
    since: Timestamp,
    /// Its option 55, which becomes the record's `param_list` when the server answers.
    params: ParamList,
}

/// Slot index in the slab.
pub type Slot = u32;

/// The table.
#[derive(Debug)]
pub struct ClientTable {
    slots: Vec<Option<ClientRecord>>,
    free: Vec<Slot>,
    by_key: HashMap<ClientKey, Slot>,
    by_address: HashMap<Ipv4Addr, Slot>,
    /// Requests in flight, by what their replies will carry (see [`RequestId`]).
    by_request: HashMap<RequestId, PendingRequest>,
    max_clients: usize,
    max_pending: usize,
    rng: u64,
}

impl ClientTable {
    /// An empty table for at most `max_clients` records.
    pub fn new(max_clients: usize, max_tracked_requests: usize, seed: u64) -> Self {
        ClientTable {
            slots: Vec::new(),
            free: Vec::new(),
            by_key: HashMap::new(),
            by_address: HashMap::new(),
            by_request: HashMap::new(),
            max_clients: max_clients.max(1),
            max_pending: max_tracked_requests.max(1),
            rng: seed | 1,
        }
    }

    /// Make room for `additional` more records (restoring a large table at start-up
    /// without rehashing as it grows).
    pub fn reserve(&mut self, additional: usize) {
        let additional = additional.min(self.max_clients.saturating_sub(self.by_key.len()));
        self.slots.reserve(additional);
        self.by_key.reserve(additional);
        self.by_address.reserve(additional);
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The slot of `key`.
    pub fn find(&self, key: &ClientKey) -> Option<Slot> {
        self.by_key.get(key).copied()
    }

    /// The slot holding `address`.
    pub fn find_address(&self, address: Ipv4Addr) -> Option<Slot> {
        self.by_address.get(&address).copied()
    }

    /// The record in `slot`.
    pub fn get(&self, slot: Slot) -> Option<&ClientRecord> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// The record in `slot`, mutable. Do not change `key` or `address` through it: use
    /// [`ClientTable::set_address`].
    pub fn get_mut(&mut self, slot: Slot) -> Option<&mut ClientRecord> {
        self.slots.get_mut(slot as usize).and_then(Option::as_mut)
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

    /// The least recently seen of a few randomly sampled records.
    fn eviction_victim(&mut self) -> Option<Slot> {
        let n = self.slots.len();
        if n == 0 {
            return None;
        }
        // Records still waiting for a server (no cached reply) go first, so a flood of new
        // DISCOVERs cannot push out the clients the cache is there to serve.
        let rank = |r: &ClientRecord| (r.reply.is_some(), r.last_contact);
        let mut best: Option<(Slot, (bool, Timestamp))> = None;
        for _ in 0..16 {
            let i = (self.next_random() % n as u64) as usize;
            if let Some(Some(r)) = self.slots.get(i) {
                if best.is_none_or(|(_, b)| rank(r) < b) {
                    best = Some((i as Slot, rank(r)));
                }
            }
        }
        best.map(|(s, _)| s).or_else(|| self.iter().min_by_key(|(_, r)| rank(r)).map(|(s, _)| s))
    }

    /// Insert a new record (its key must not be present). When the table is full the least
    /// recently seen of a sample is evicted first and returned.
    pub fn insert(&mut self, record: ClientRecord) -> (Slot, Option<ClientRecord>) {
        let mut evicted = None;
        if self.by_key.len() >= self.max_clients {
            if let Some(victim) = self.eviction_victim() {
                evicted = self.remove(victim);
            }
        }
        if let Some(old) = self.by_key.get(&record.key).copied() {
            // Defensive: replace an existing record of the same key.
            let _ = self.remove(old);
        }
        let address = record.address;
        let key = record.key.clone();
        let slot = match self.free.pop() {
            Some(s) => {
                if let Some(cell) = self.slots.get_mut(s as usize) {
                    *cell = Some(record);
                }
                s
            }
            None => {
                self.slots.push(Some(record));
                (self.slots.len() - 1) as Slot
            }
        };
        self.by_key.insert(key, slot);
        if !address.is_unspecified() {
            self.by_address.insert(address, slot);
        }
        (slot, evicted)
    }

    /// Remove the record in `slot`.
    pub fn remove(&mut self, slot: Slot) -> Option<ClientRecord> {
        let record = self.slots.get_mut(slot as usize)?.take()?;
        self.by_key.remove(&record.key);
        if self.by_address.get(&record.address) == Some(&slot) {
            self.by_address.remove(&record.address);
        }
        if let Some(id) = record.pending {
            if self.by_request.get(&id).is_some_and(|p| p.slot == slot) {
                self.by_request.remove(&id);
            }
        }
        self.free.push(slot);
        Some(record)
    }

    /// Give the record in `slot` a new address; returns the slot of another record that held
    /// it (the caller removes it: the server has given the address to this client).
    pub fn set_address(&mut self, slot: Slot, address: Ipv4Addr) -> Option<Slot> {
        let old = self.get(slot)?.address;
        if old == address {
            return None;
        }
        if self.by_address.get(&old) == Some(&slot) {
            self.by_address.remove(&old);
        }
        if let Some(r) = self.get_mut(slot) {
            r.address = address;
        }
        if address.is_unspecified() {
            return None;
        }
        match self.by_address.insert(address, slot) {
            Some(other) if other != slot => Some(other),
            _ => None,
        }
    }

    /// Remember that the request `id` (asking for `params`) was forwarded for the client in
    /// `slot`. False when `max_tracked_requests` are tracked already (the request is not
    /// tracked, and its reply will be matched by the client's identity instead).
    pub fn track_request(&mut self, slot: Slot, id: RequestId, now: Timestamp, params: ParamList) -> bool {
        let previous = match self.get_mut(slot) {
            Some(r) => {
                r.pending_since = now;
                r.pending.replace(id)
            }
            None => return false,
        };
        if let Some(old) = previous.filter(|old| *old != id) {
            if self.by_request.get(&old).is_some_and(|p| p.slot == slot) {
                self.by_request.remove(&old);
            }
        }
        if self.by_request.len() >= self.max_pending && !self.by_request.contains_key(&id) {
            return false;
        }
        if let Some(other) = self.by_request.insert(id, PendingRequest { slot, since: now, params }) {
            if other.slot != slot {
                // Two clients cannot send the same (xid, htype, chaddr) on one link; a
                // client that moved its identity (new option 61, same MAC) is the newer one.
                if let Some(r) = self.get_mut(other.slot) {
                    r.pending = None;
                }
            }
        }
        true
    }

    /// The slot of the client the reply naming `id` is for, if we forwarded that request.
    /// RFC 2131 4.1 and table 3: a server copies xid, htype, hlen, chaddr and giaddr from the
    /// request into its reply, so all of them (and the link giaddr names) must match: a
    /// reply is never matched on xid alone.
    pub fn find_request(&self, id: &RequestId) -> Option<Slot> {
        let p = self.by_request.get(id)?;
        let r = self.get(p.slot)?;
        (r.pending == Some(*id)).then_some(p.slot)
    }

    /// Forget tracked requests older than `older_than`.
    pub fn expire_requests(&mut self, older_than: Timestamp) {
        self.by_request.retain(|_, p| p.since >= older_than);
    }

    /// Requests tracked.
    pub fn tracked_requests(&self) -> usize {
        self.by_request.len()
    }

    /// Option 55 of the tracked request `id` of the client in `slot`.
    pub fn params_for(&self, id: &RequestId, slot: Slot) -> Option<ParamList> {
        self.by_request.get(id).filter(|p| p.slot == slot).map(|p| p.params)
    }
}
