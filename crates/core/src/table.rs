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
use core::num::NonZeroU32;
use std::collections::VecDeque;

use hashbrown::{HashMap, HashTable};

use cdra_wire::Message;

use crate::limits::{Rate, TokenBucket};
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
///
/// Compact (issue 14 part 3: a million clients in 160 MiB): 104 bytes with the 32-byte
/// `reply`. What the record's fixed fields hold, and how:
///
/// - times in whole seconds (u32, to the year 2106 on the daemon's wall clock), rounded
///   so that nothing becomes less safe: `last_contact` and `last_update` down (a record is
///   believed older than it is: `max_age`, paper 5.6, removes it no later, the LRU sample
///   picks it no later); `client_lease_end` up (a client's short lease is never thought
///   over before it is: its lapse, paper 2.3, comes at most a second later). `lease_start`
///   is exact (seconds and milliseconds): the lease a client gets from the cache is
///   counted from it to the second, and must not change;
/// - the server binding as two addresses, `addr` unspecified when there is none (as the
///   store keeps it: a configured server address is never 0.0.0.0);
/// - the small enums and flags in one byte (`RecordFlags`), the origin's entry number
///   apart;
/// - not here at all: the request budget (`[limits] client_rate`; kept by the table only
///   for clients whose bucket is not full, [`ClientTable::take_budget`]), the time of an
///   upstream renewal in flight (kept by the table while one is,
///   [`ClientTable::upstream_renewal_sent`]) and the lapse timer's deadline (the lapse queue
///   holds it, `timers.rs`; the record keeps one bit: one is filed).
#[derive(Debug, Clone)]
pub struct ClientRecord {
    /// Identity.
    pub key: ClientKey,
    /// The last DHCPACK / BOOTREPLY from the server (Msg), option 82 removed, trimmed after
    /// END, with option 55 of the request it answers ([`ClientRecord::param_list`]). `None`
    /// until the server has answered.
    pub reply: Option<CachedReply>,
    /// The leased address (CliAddr).
    pub address: Ipv4Addr,
    /// Lease granted by the server, seconds (LeaseTime); `u32::MAX` is infinite.
    pub lease_secs: u32,
    /// Server T1 and T2, seconds from `lease_start`.
    pub t1_secs: u32,
    /// See `t1_secs`.
    pub t2_secs: u32,
    /// [`ClientRecord::lease_start`]: whole seconds, and the milliseconds past them.
    lease_start_secs: u32,
    lease_start_millis: u16,
    /// [`ClientRecord::last_contact`], seconds rounded down.
    last_contact_secs: u32,
    /// [`ClientRecord::last_update`], seconds rounded down.
    last_update_secs: u32,
    /// [`ClientRecord::client_lease_end`], seconds rounded up (at least 1).
    client_lease_end_secs: Option<NonZeroU32>,
    /// [`ClientRecord::server`]: `server_addr` unspecified when there is none.
    server_addr: Ipv4Addr,
    server_id: Ipv4Addr,
    /// Index of the downstream interface the client was last heard on.
    pub downstream: u16,
    /// The entry number of a pool origin ([`ClientRecord::origin`]; its kind is in `flags`).
    origin_n: u16,
    /// Believed state.
    pub state: ClientState,
    /// Kind, origin kind and flags.
    flags: RecordFlags,
}

/// A record's small enums and flags in one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct RecordFlags(u8);

impl RecordFlags {
    /// [`ClientKind::Bootp`] (clear: DHCP).
    const BOOTP: u8 = 1;
    /// [`ClientRecord::confirmed`].
    const CONFIRMED: u8 = 1 << 1;
    /// [`ClientRecord::must_restart`].
    const MUST_RESTART: u8 = 1 << 2;
    /// [`ClientRecord::offer_probed`].
    const OFFER_PROBED: u8 = 1 << 3;
    /// [`ClientRecord::lapse_filed`].
    const LAPSE_FILED: u8 = 1 << 4;
    /// Two bits: the origin's kind (0 server, 1 pool, 2 pool lease).
    const ORIGIN_SHIFT: u8 = 5;
    const ORIGIN_MASK: u8 = 0b11 << Self::ORIGIN_SHIFT;

    fn get(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    fn set(&mut self, bit: u8, on: bool) {
        if on {
            self.0 |= bit;
        } else {
            self.0 &= !bit;
        }
    }
}

impl ClientRecord {
    /// A record for a client just heard from, holding nothing yet.
    pub fn new(key: ClientKey, kind: ClientKind, downstream: u16, now: Timestamp) -> Self {
        let mut r = ClientRecord {
            key,
            reply: None,
            address: Ipv4Addr::UNSPECIFIED,
            lease_secs: 0,
            t1_secs: 0,
            t2_secs: 0,
            lease_start_secs: 0,
            lease_start_millis: 0,
            last_contact_secs: 0,
            last_update_secs: 0,
            client_lease_end_secs: None,
            server_addr: Ipv4Addr::UNSPECIFIED,
            server_id: Ipv4Addr::UNSPECIFIED,
            downstream,
            origin_n: 0,
            state: ClientState::Init,
            flags: RecordFlags::default(),
        };
        r.set_kind(kind);
        r.set_lease_start(now);
        r.set_last_contact(now);
        r.set_last_update(now);
        r
    }

    /// DHCP or BOOTP.
    pub fn kind(&self) -> ClientKind {
        if self.flags.get(RecordFlags::BOOTP) {
            ClientKind::Bootp
        } else {
            ClientKind::Dhcp
        }
    }

    /// See [`ClientRecord::kind`].
    pub fn set_kind(&mut self, kind: ClientKind) {
        self.flags.set(RecordFlags::BOOTP, kind == ClientKind::Bootp);
    }

    /// When the server's lease started (LeaseStartTime): when the request it answers was
    /// forwarded, so the lease is never believed longer than it is. Exact to the
    /// millisecond (to `u32::MAX` seconds; a later time is kept as that, which believes
    /// the lease started earlier).
    pub fn lease_start(&self) -> Timestamp {
        Timestamp::from_millis(u64::from(self.lease_start_secs) * 1000 + u64::from(self.lease_start_millis))
    }

    /// See [`ClientRecord::lease_start`].
    pub fn set_lease_start(&mut self, t: Timestamp) {
        self.lease_start_secs = t.secs_floor();
        self.lease_start_millis =
            if u64::from(self.lease_start_secs) < t.as_millis() / 1000 { 999 } else { (t.as_millis() % 1000) as u16 };
    }

    /// Last message from the client (LastContact), to the second, rounded down.
    pub fn last_contact(&self) -> Timestamp {
        Timestamp::from_secs(u64::from(self.last_contact_secs))
    }

    /// See [`ClientRecord::last_contact`].
    pub fn set_last_contact(&mut self, t: Timestamp) {
        self.last_contact_secs = t.secs_floor();
    }

    /// Last time a server refreshed the configuration (LastUpdate), to the second, rounded
    /// down (`max_age` never keeps it longer).
    pub fn last_update(&self) -> Timestamp {
        Timestamp::from_secs(u64::from(self.last_update_secs))
    }

    /// See [`ClientRecord::last_update`].
    pub fn set_last_update(&mut self, t: Timestamp) {
        self.last_update_secs = t.secs_floor();
    }

    /// Automated lease renewals (paper 2.3, 5.3): when the short lease we gave the client
    /// ends, to the second, rounded up (never believed over before it is). `None` when
    /// clients get the server's lease.
    pub fn client_lease_end(&self) -> Option<Timestamp> {
        self.client_lease_end_secs.map(|s| Timestamp::from_secs(u64::from(s.get())))
    }

    /// See [`ClientRecord::client_lease_end`]. An end earlier than the one held clears
    /// [`ClientRecord::lapse_filed`]: the lapse timer filed may come too late for it.
    pub fn set_client_lease_end(&mut self, end: Option<Timestamp>) {
        let new = end.map(|t| NonZeroU32::new(t.secs_ceil()).unwrap_or(NonZeroU32::MIN));
        let earlier = match (self.client_lease_end_secs, new) {
            (Some(old), Some(new)) => new < old,
            (None, Some(_)) => true,
            _ => false,
        };
        if earlier {
            self.set_lapse_filed(false);
        }
        self.client_lease_end_secs = new;
    }

    /// Bring the short lease's end back to `latest` if it is later (as held, to the
    /// second): true if it moved.
    pub fn limit_client_lease_end(&mut self, latest: Timestamp) -> bool {
        // As it would be held (at least 1: `None` is 0).
        let latest_held = latest.secs_ceil().max(1);
        let later = self.client_lease_end_secs.is_some_and(|s| s.get() > latest_held);
        if later {
            self.set_client_lease_end(Some(latest));
        }
        later
    }

    /// The server holding the lease (ServAddr).
    pub fn server(&self) -> Option<ServerBinding> {
        (!self.server_addr.is_unspecified()).then_some(ServerBinding { addr: self.server_addr, id: self.server_id })
    }

    /// See [`ClientRecord::server`]. A binding whose `addr` is unspecified is none (as the
    /// store reads it).
    pub fn set_server(&mut self, server: Option<ServerBinding>) {
        let b = server.unwrap_or(ServerBinding { addr: Ipv4Addr::UNSPECIFIED, id: Ipv4Addr::UNSPECIFIED });
        (self.server_addr, self.server_id) = (b.addr, b.id);
    }

    /// Where its address comes from.
    pub fn origin(&self) -> Origin {
        match (self.flags.0 & RecordFlags::ORIGIN_MASK) >> RecordFlags::ORIGIN_SHIFT {
            1 => Origin::Pool { n: self.origin_n },
            2 => Origin::PoolLease { n: self.origin_n },
            _ => Origin::Server,
        }
    }

    /// See [`ClientRecord::origin`].
    pub fn set_origin(&mut self, origin: Origin) {
        let (tag, n) = match origin {
            Origin::Server => (0u8, 0),
            Origin::Pool { n } => (1, n),
            Origin::PoolLease { n } => (2, n),
        };
        self.flags.0 = (self.flags.0 & !RecordFlags::ORIGIN_MASK) | (tag << RecordFlags::ORIGIN_SHIFT);
        self.origin_n = n;
    }

    /// Since this engine started, a server reply for this client was believed, or a probe
    /// found the client itself on its address. A record restored from the store is not
    /// (paper 3.4: "information in the client database is suspect") until then; not
    /// persisted.
    pub fn confirmed(&self) -> bool {
        self.flags.get(RecordFlags::CONFIRMED)
    }

    /// See [`ClientRecord::confirmed`].
    pub fn set_confirmed(&mut self, on: bool) {
        self.flags.set(RecordFlags::CONFIRMED, on);
    }

    /// Pool mode: moving the client onto a lease of its own failed; its next request gets a
    /// NAK, so that it starts over with the server.
    pub fn must_restart(&self) -> bool {
        self.flags.get(RecordFlags::MUST_RESTART)
    }

    /// See [`ClientRecord::must_restart`].
    pub fn set_must_restart(&mut self, on: bool) {
        self.flags.set(RecordFlags::MUST_RESTART, on);
    }

    /// Pool mode: the OFFER out to the client was made after a probe of its address found
    /// nobody (its REQUEST for that OFFER needs no second probe). Cleared by any other
    /// answer.
    pub fn offer_probed(&self) -> bool {
        self.flags.get(RecordFlags::OFFER_PROBED)
    }

    /// See [`ClientRecord::offer_probed`].
    pub fn set_offer_probed(&mut self, on: bool) {
        self.flags.set(RecordFlags::OFFER_PROBED, on);
    }

    /// A lapse timer filed for this record (`timers.rs`, [`crate::timers::LapseQueue`])
    /// falls due no later than its short lease's end plus the grace, or is a retry: the
    /// record's one live lapse timer. Cleared when one fires, and when the end moves
    /// earlier (one is then filed for the new end).
    pub fn lapse_filed(&self) -> bool {
        self.flags.get(RecordFlags::LAPSE_FILED)
    }

    /// See [`ClientRecord::lapse_filed`].
    pub(crate) fn set_lapse_filed(&mut self, on: bool) {
        self.flags.set(RecordFlags::LAPSE_FILED, on);
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
            key: match self.origin() {
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
    /// The budgets that are not full and the upstream renewals in flight (a few seconds'
    /// worth of clients).
    pub budgets_and_renewals: usize,
}

impl TableMemory {
    /// The sum.
    pub fn total(&self) -> usize {
        self.records
            + self.long_keys
            + self.indexes
            + self.own_reply_bytes
            + self.templates
            + self.pending_order
            + self.budgets_and_renewals
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

/// A side map of the table (budgets, renewals sent) holds the clients of the last few
/// seconds; a burst (every client at once, after an outage) grows it to many, and `retain`
/// keeps the room. Given back once a quarter of it or less is used (a rehash of what is
/// left, each time the map has shrunk fourfold: amortized O(1) an entry), so the room
/// follows the clients of the last seconds, not the largest burst ever.
fn give_back_after_burst<V>(map: &mut HashMap<Slot, V>) {
    /// Below this many entries' room, nothing is given back.
    const KEPT_ROOM: usize = 1024;
    if map.capacity() > KEPT_ROOM && map.len() < map.capacity() / 4 {
        map.shrink_to(2 * map.len());
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
    /// The request budgets ([`crate::limits`], `[limits] client_rate`) of the records whose
    /// bucket is not full, by slot: a record without an entry has a full bucket, so only the
    /// clients that asked within the last few seconds take room (none when the rate is
    /// unlimited). At most one per record: removed with it, and once full again
    /// ([`ClientTable::settle_budgets`], each sweep).
    budgets: HashMap<Slot, TokenBucket>,
    /// When an upstream renewal was last sent for a record (paper 5.3), while one may be
    /// unanswered: at most one per record; removed with it, when answered, and once older
    /// than the retry interval ([`ClientTable::forget_renewals_sent`], each sweep).
    renewals_sent: HashMap<Slot, Timestamp>,
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
            budgets: HashMap::new(),
            renewals_sent: HashMap::new(),
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
            budgets_and_renewals: buckets(self.budgets.capacity()) * (1 + core::mem::size_of::<(Slot, TokenBucket)>())
                + buckets(self.renewals_sent.capacity()) * (1 + core::mem::size_of::<(Slot, Timestamp)>()),
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
                if eligible(i as Slot, r) && best.is_none_or(|(_, b)| r.last_contact() < b) {
                    best = Some((i as Slot, r.last_contact()));
                }
            }
        }
        best.map(|(s, _)| s).or_else(|| {
            // The sample held no bound record (a table mostly pending): look at all.
            self.iter().filter(|(s, r)| eligible(*s, r)).min_by_key(|(_, r)| r.last_contact()).map(|(s, _)| s)
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
        self.budgets.remove(&slot);
        self.renewals_sent.remove(&slot);
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

    /// Spend one token of the budget of the record in `slot` at `now` ([`crate::limits`]):
    /// false (nothing spent) when it has none left. A record without a budget entry has
    /// a full bucket.
    pub fn take_budget(&mut self, slot: Slot, now: Timestamp, rate: Rate) -> bool {
        if !rate.is_limited() {
            return true;
        }
        self.budgets.entry(slot).or_insert_with(TokenBucket::full).take(now, rate)
    }

    /// Forget the budgets that are full again at `now` (a full bucket is what a record
    /// without an entry has), and every one when the rate is unlimited.
    pub fn settle_budgets(&mut self, now: Timestamp, rate: Rate) {
        self.budgets.retain(|_, b| rate.is_limited() && !b.is_full_at(now, rate));
        give_back_after_burst(&mut self.budgets);
    }

    /// Records holding a budget that is not full.
    pub fn budgets_held(&self) -> usize {
        self.budgets.len()
    }

    /// When an upstream renewal was last sent for the record in `slot` (paper 5.3), if one
    /// may still be unanswered ([`ClientTable::forget_renewals_sent`]).
    pub fn upstream_renewal_sent(&self, slot: Slot) -> Option<Timestamp> {
        self.renewals_sent.get(&slot).copied()
    }

    /// See [`ClientTable::upstream_renewal_sent`]; `None` when it was answered. Nothing for
    /// a slot without a record.
    pub fn set_upstream_renewal_sent(&mut self, slot: Slot, sent: Option<Timestamp>) {
        match sent {
            Some(t) if self.get(slot).is_some() => {
                self.renewals_sent.insert(slot, t);
            }
            _ => {
                self.renewals_sent.remove(&slot);
            }
        }
    }

    /// Forget the upstream renewals sent `retry` or longer before `now` (a renewal that old
    /// is sent again whether it was answered or not).
    pub fn forget_renewals_sent(&mut self, now: Timestamp, retry: core::time::Duration) {
        self.renewals_sent.retain(|_, sent| now.since(*sent) < retry);
        give_back_after_burst(&mut self.renewals_sent);
    }

    /// Upstream renewals remembered ([`ClientTable::upstream_renewal_sent`]).
    pub fn renewals_sent_held(&self) -> usize {
        self.renewals_sent.len()
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

    /// The compact times' range, in milliseconds: `u32::MAX` seconds (the year 2106 on the
    /// daemon's wall clock).
    const UNTIL_2106: u64 = u32::MAX as u64 * 1000;

    proptest::proptest! {
        /// The table keeps a client's budget only while it is not full (a missing entry is
        /// a full bucket): its decisions are those of one bucket kept for ever, whatever
        /// the request times, the rate and the burst, with the sweep's settling between.
        #[test]
        fn a_budget_kept_only_while_not_full_decides_as_one_bucket_kept_for_ever(
            per_second in 1u32..2000,
            burst in 1u32..40,
            steps in proptest::collection::vec((0u64..4000, proptest::bool::ANY), 1..200),
        ) {
            let rate = Rate { per_second, burst };
            let mut t = ClientTable::new(4, 4, 1);
            let (slot, _) = t.insert(record(1, 0));
            let mut for_ever = TokenBucket::full();
            let mut now = 1000;
            for (gap, settle) in steps {
                now += gap;
                let at = Timestamp::from_millis(now);
                if settle {
                    t.settle_budgets(at, rate);
                }
                proptest::prop_assert_eq!(t.take_budget(slot, at, rate), for_ever.take(at, rate));
                proptest::prop_assert!(t.budgets_held() <= 1);
            }
            t.settle_budgets(Timestamp::from_millis(now + 1000 * u64::from(burst)), rate);
            proptest::prop_assert_eq!(t.budgets_held(), 0, "full again: forgotten");
        }

        /// The compact times as the store reads them back (as milliseconds, whatever they
        /// were written as): no lease is believed longer than stored, no short lease over
        /// before its end, no record younger than it is (`max_age`).
        #[test]
        fn a_restored_record_never_believes_a_lease_longer_than_stored(
            start in 0u64..UNTIL_2106,
            lease in 1u32..10_000_000,
            contact in 0u64..UNTIL_2106,
            update in 0u64..UNTIL_2106,
            end in 1u64..UNTIL_2106 - 1000,
        ) {
            let mut r = record(1, 0);
            r.address = Ipv4Addr::new(10, 0, 0, 1);
            r.state = ClientState::Bound;
            r.lease_secs = lease;
            let mut buf = [0u8; 576];
            let mut b = cdra_wire::MessageBuilder::new(&mut buf, cdra_wire::Op::BootReply, Some(cdra_wire::MessageType::Ack)).expect("room");
            b.yiaddr(r.address);
            let n = b.finish().expect("room");
            r.reply = CachedReply::new(&buf[..n], &r.reply_context(), &ParamList::EMPTY);
            // Marks, found in the encoding and overwritten with the times under test.
            let marks = [1_111_111_111_000u64, 1_222_222_222_000, 1_333_333_333_000, 1_444_444_444_000];
            r.set_lease_start(Timestamp::from_millis(marks[0]));
            r.set_last_contact(Timestamp::from_millis(marks[1]));
            r.set_last_update(Timestamp::from_millis(marks[2]));
            r.set_client_lease_end(Some(Timestamp::from_millis(marks[3])));
            let mut bytes = Vec::new();
            crate::persist::encode_record(&r, "eth0", &mut bytes);
            for (mark, value) in marks.iter().zip([start, contact, update, end]) {
                let at = bytes.windows(8).position(|w| w == mark.to_le_bytes()).expect("the mark");
                bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
            }
            let (back, _) = crate::persist::decode_record(&bytes).expect("decodes");
            let ms = Timestamp::from_millis;
            proptest::prop_assert_eq!(back.lease_start(), ms(start), "exact");
            proptest::prop_assert!(back.lease_end() <= Some(ms(start + u64::from(lease) * 1000)));
            proptest::prop_assert!(back.last_contact() <= ms(contact) && ms(contact).since(back.last_contact()).as_millis() < 1000);
            proptest::prop_assert!(back.last_update() <= ms(update) && ms(update).since(back.last_update()).as_millis() < 1000);
            let back_end = back.client_lease_end().expect("a short lease");
            proptest::prop_assert!(back_end >= ms(end) && back_end.since(ms(end)).as_millis() < 1000);
            // And written again, read again: the same.
            crate::persist::encode_record(&back, "eth0", &mut bytes);
            let (again, _) = crate::persist::decode_record(&bytes).expect("decodes");
            proptest::prop_assert_eq!(
                (again.lease_start(), again.last_contact(), again.last_update(), again.client_lease_end()),
                (back.lease_start(), back.last_contact(), back.last_update(), back.client_lease_end())
            );
        }
    }

    #[test]
    fn the_budget_and_the_renewal_sent_leave_with_their_record() {
        let rate = Rate { per_second: 1, burst: 1 };
        let mut t = ClientTable::new(4, 4, 1);
        let (s, _) = t.insert(record(1, 0));
        let now = Timestamp::from_secs(10);
        assert!(t.take_budget(s, now, rate));
        assert!(!t.take_budget(s, now, rate));
        t.set_upstream_renewal_sent(s, Some(now));
        assert_eq!((t.budgets_held(), t.renewals_sent_held()), (1, 1));
        t.remove(s);
        assert_eq!((t.budgets_held(), t.renewals_sent_held()), (0, 0));
        let (s2, _) = t.insert(record(2, 0));
        assert_eq!(s2, s);
        assert!(t.take_budget(s2, now, rate), "the slot's next record starts full");
        assert_eq!(t.upstream_renewal_sent(s2), None);
        t.set_upstream_renewal_sent(s2, Some(now));
        t.forget_renewals_sent(
            now.saturating_add(core::time::Duration::from_secs(29)),
            core::time::Duration::from_secs(30),
        );
        assert_eq!(t.upstream_renewal_sent(s2), Some(now));
        t.forget_renewals_sent(
            now.saturating_add(core::time::Duration::from_secs(30)),
            core::time::Duration::from_secs(30),
        );
        assert_eq!(t.upstream_renewal_sent(s2), None);
    }

    /// A burst of clients (every one at once, after an outage) fills the budgets and the
    /// renewals sent; once they are settled, the room they took is given back (the maps'
    /// `retain` kept it: with a million clients, tens of MiB held for good after one burst).
    #[test]
    fn the_room_a_burst_of_budgets_and_renewals_took_is_given_back_once_settled() {
        let rate = Rate { per_second: 1, burst: 1 };
        let mut t = ClientTable::new(20_000, 4, 1);
        let now = Timestamp::from_secs(10);
        for i in 0..20_000u32 {
            let mac = i.to_be_bytes();
            let mut r = ClientRecord::new(
                ClientKey::hardware(1, &[2, 0, mac[0], mac[1], mac[2], mac[3]]),
                ClientKind::Dhcp,
                0,
                now,
            );
            r.reply = Some(reply());
            let (s, _) = t.insert(r);
            assert!(t.take_budget(s, now, rate));
            t.set_upstream_renewal_sent(s, Some(now));
        }
        assert_eq!((t.budgets_held(), t.renewals_sent_held()), (20_000, 20_000));
        let burst = t.memory().budgets_and_renewals;
        let later = now.saturating_add(core::time::Duration::from_secs(60));
        t.settle_budgets(later, rate);
        t.forget_renewals_sent(later, core::time::Duration::from_secs(30));
        assert_eq!((t.budgets_held(), t.renewals_sent_held()), (0, 0));
        let settled = t.memory().budgets_and_renewals;
        assert!(settled * 16 < burst, "{settled} bytes kept of the burst's {burst}");
    }

    #[test]
    fn the_packed_fields_read_back_as_written() {
        let mut r = record(1, 0);
        for origin in [Origin::Server, Origin::Pool { n: 513 }, Origin::PoolLease { n: u16::MAX }] {
            for kind in [ClientKind::Dhcp, ClientKind::Bootp] {
                for bits in 0..16u8 {
                    r.set_origin(origin);
                    r.set_kind(kind);
                    r.set_confirmed(bits & 1 != 0);
                    r.set_must_restart(bits & 2 != 0);
                    r.set_offer_probed(bits & 4 != 0);
                    r.set_lapse_filed(bits & 8 != 0);
                    let read =
                        (r.origin(), r.kind(), r.confirmed(), r.must_restart(), r.offer_probed(), r.lapse_filed());
                    assert_eq!(read, (origin, kind, bits & 1 != 0, bits & 2 != 0, bits & 4 != 0, bits & 8 != 0));
                }
            }
        }
        let b = ServerBinding { addr: Ipv4Addr::new(10, 0, 0, 1), id: Ipv4Addr::new(192, 0, 2, 1) };
        r.set_server(Some(b));
        assert_eq!(r.server(), Some(b));
        r.set_server(None);
        assert_eq!(r.server(), None);
    }

    #[test]
    fn a_short_lease_moved_earlier_asks_for_a_new_lapse_timer_and_one_moved_later_does_not() {
        let mut r = record(1, 0);
        r.set_client_lease_end(Some(Timestamp::from_secs(100)));
        r.set_lapse_filed(true);
        r.set_client_lease_end(Some(Timestamp::from_secs(200)));
        assert!(r.lapse_filed(), "the timer filed fires first and files another");
        r.set_client_lease_end(Some(Timestamp::from_secs(150)));
        assert!(!r.lapse_filed(), "the timer filed may be too late");
        r.set_lapse_filed(true);
        assert!(!r.limit_client_lease_end(Timestamp::from_millis(150_000)));
        assert!(!r.limit_client_lease_end(Timestamp::from_millis(149_001)), "rounded up: the same second");
        assert!(r.lapse_filed());
        assert!(r.limit_client_lease_end(Timestamp::from_millis(148_500)));
        assert_eq!(r.client_lease_end(), Some(Timestamp::from_secs(149)));
        assert!(!r.lapse_filed());
        r.set_lapse_filed(true);
        assert!(r.limit_client_lease_end(Timestamp::from_secs(120)));
        assert!(!r.lapse_filed());
    }

    /// Issue 14 part 3: a million clients in 160 MiB. The fixed fields (everything but the
    /// key and the reply) take 48 bytes: see the struct's docs for how each is held. With
    /// the 24-byte reply this is 96; a reply of 32 bytes (Arc<Template> + 24 inline bytes)
    /// makes it 104.
    #[test]
    fn a_record_takes_at_most_96_bytes() {
        let reply = core::mem::size_of::<Option<CachedReply>>();
        let key = core::mem::size_of::<ClientKey>();
        assert!(core::mem::size_of::<ClientRecord>() <= key + reply + 48, "{}", core::mem::size_of::<ClientRecord>());
        assert!(core::mem::size_of::<ClientRecord>() <= 96 + reply.saturating_sub(24));
        assert_eq!(core::mem::size_of::<Option<ClientRecord>>(), core::mem::size_of::<ClientRecord>());
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
