//! The fuzzer's whole coupling to `cdra_core`: what it reads of the engine to judge it, and
//! the few facts about the engine's output it relies on. The simulation makes the engine
//! calls themselves (`cdra_sim::engine_api`); when the engine's API changes, this file and
//! that one are the two to edit.
//!
//! What is relied on, and why it holds:
//! - a local answer (built from the table, or our own NAK) has giaddr 0, a relayed server
//!   reply keeps the giaddr it arrived with (one of ours: RFC 1542 4.1.2), so
//!   [`is_local_answer`] tells them apart;
//! - client keys and the model server's keys share one encoding (kind byte, then option 61,
//!   or htype + chaddr), so an engine record and a server binding can be compared.

use core::net::Ipv4Addr;

use cdra_core::engine::MAX_INTERCEPTED;
use cdra_core::persist::{decode_record_with, Templates};
use cdra_core::pool::{PoolIdentity, MAX_ENTRIES_PER_LINK};
use cdra_core::table::{ClientKey, ClientRecord, Origin};
use cdra_core::{Engine, Mode, Timestamp};
pub use cdra_sim::engine_api::PoolEntryView;
use cdra_sim::Millis;
use cdra_wire::Message;

/// A client record as the checks see it (a copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView {
    /// Slot in the table.
    pub slot: u32,
    /// Key bytes (the store's key; same encoding as the model server's).
    pub key: Vec<u8>,
    /// The key as the engine prints it.
    pub key_text: String,
    /// State label.
    pub state: &'static str,
    /// The leased address (0.0.0.0: none).
    pub address: Ipv4Addr,
    /// The cached server reply, expanded (xid, secs, flags and ciaddr normalised to zero:
    /// `cdra_core::templates`).
    pub reply: Option<Vec<u8>>,
    /// The server the lease is with.
    pub server: Option<Ipv4Addr>,
    /// Its identifier (option 54 of its reply; spoofing mode intercepts it).
    pub server_id: Option<Ipv4Addr>,
    /// Server lease in seconds, and when it started (engine clock).
    pub lease: (u32, Millis),
    /// Where its address comes from: `server`, or `pool:<n>` (pool entry `n` of its link).
    pub origin: String,
    /// Its downstream link (position in the configuration).
    pub downstream: u16,
    /// Pool mode: its client is to start over at its next request (NAK), never answered
    /// from the record again (its pool entry is gone, or is not the one it names).
    pub must_restart: bool,
}

impl RecordView {
    /// Was its address given from the pool (pool mode)?
    pub fn is_pool_client(&self) -> bool {
        self.origin.starts_with("pool:")
    }

    /// The pool entry it was given, as (link, number).
    pub fn pool_entry(&self) -> Option<(usize, u16)> {
        let n = self.origin.strip_prefix("pool:")?.parse().ok()?;
        Some((usize::from(self.downstream), n))
    }
}

fn view(slot: u32, r: &ClientRecord) -> RecordView {
    RecordView {
        slot,
        key: r.key.as_bytes().to_vec(),
        key_text: r.key.to_string(),
        state: r.state.label(),
        address: r.address,
        reply: r.reply_message(),
        server: r.server().map(|s| s.addr),
        server_id: r.server().map(|s| s.id),
        lease: (r.lease_secs, r.lease_start().as_millis()),
        origin: match r.origin() {
            Origin::Server => "server".into(),
            Origin::Pool { n } => format!("pool:{n}"),
            Origin::PoolLease { n } => format!("pool-lease:{n}"),
        },
        must_restart: r.must_restart(),
        downstream: r.downstream,
    }
}

/// Every record of the table.
pub fn records(engine: &Engine) -> Vec<RecordView> {
    engine.table().iter().map(|(s, r)| view(s, r)).collect()
}

/// The slot the table's key index gives for `key`.
pub fn slot_of_key(engine: &Engine, key: &[u8]) -> Option<u32> {
    ClientKey::from_bytes(key).and_then(|k| engine.table().find(&k))
}

/// The slot the table's address index gives for `address`.
pub fn slot_of_address(engine: &Engine, address: Ipv4Addr) -> Option<u32> {
    engine.table().find_address(address)
}

/// Seconds of server lease the record of `key` has left at `now` (engine clock), as the
/// engine computes it (`u32::MAX`: infinite).
pub fn lease_left_secs(engine: &Engine, key: &[u8], now: Millis) -> Option<u32> {
    let slot = slot_of_key(engine, key)?;
    engine.table().get(slot).map(|r| r.lease_left_secs(Timestamp::from_millis(now)))
}

/// A bounded structure of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Client records holding a server reply (`max_clients`).
    Records,
    /// Client records still waiting for a server answer (`[limits] pending_clients`).
    PendingRecords,
    /// Forwarded requests remembered for matching replies (`[limits] transactions`).
    Transactions,
    /// Their filing-order queue, stale entries included (compacted beyond twice the bound
    /// and 16: `transactions.rs`).
    TransactionOrder,
    /// Probes in flight (`max_pending_probes`).
    Probes,
    /// Offer windows open (`max_offer_windows`).
    OfferWindows,
    /// Local answers held back (`max_held_replies`).
    HeldReplies,
    /// RFC 4388 queries waiting for an answer (`[leasequery] max_outstanding`).
    LeasequeryOutstanding,
    /// Pool entries, free and given out (at most `MAX_ENTRIES_PER_LINK` a link).
    PoolEntries,
    /// Spoofing mode: server addresses whose client unicasts are taken (`MAX_INTERCEPTED`).
    Intercepted,
    /// DISCOVERs waiting for the pool's fallback (`[limits] pending_clients`).
    PoolFallbacks,
    /// Timers filed, live or stale: twice what `timers.rs` says can be live (two per
    /// probe: its deadline and, once an answer decides it, its outcome; one per offer
    /// window; one lapse per record, bound or pending; one held-reply timer; one sweep; in
    /// pool mode one per pool entry, the refill, one per DISCOVER waiting for its
    /// fallback), as the engine drops stale ones beyond that.
    Timers,
}

impl Bound {
    /// Every bound, in the order of [`usage`].
    pub const ALL: [Bound; 12] = [
        Bound::Records,
        Bound::PendingRecords,
        Bound::Transactions,
        Bound::TransactionOrder,
        Bound::Probes,
        Bound::OfferWindows,
        Bound::HeldReplies,
        Bound::PoolEntries,
        Bound::Intercepted,
        Bound::PoolFallbacks,
        Bound::LeasequeryOutstanding,
        Bound::Timers,
    ];

    /// The configuration key it is bounded by.
    pub fn label(self) -> &'static str {
        match self {
            Bound::Records => "max_clients",
            Bound::PendingRecords => "pending_clients",
            Bound::Transactions => "transactions",
            Bound::TransactionOrder => "transaction order (2 x transactions + 16)",
            Bound::Probes => "max_pending_probes",
            Bound::OfferWindows => "max_offer_windows",
            Bound::HeldReplies => "max_held_replies",
            Bound::PoolEntries => "pool entries (MAX_ENTRIES_PER_LINK a link)",
            Bound::Intercepted => "intercepted addresses (MAX_INTERCEPTED)",
            Bound::PoolFallbacks => "pool fallbacks (pending_clients)",
            Bound::LeasequeryOutstanding => "leasequery.max_outstanding",
            Bound::Timers => "timers (2 x the live bound of timers.rs)",
        }
    }

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Bound::Records => "records",
            Bound::PendingRecords => "pending records",
            Bound::Transactions => "transactions",
            Bound::TransactionOrder => "transaction order",
            Bound::Probes => "probes",
            Bound::OfferWindows => "offer windows",
            Bound::HeldReplies => "held replies",
            Bound::PoolEntries => "pool entries",
            Bound::Intercepted => "intercepted addresses",
            Bound::PoolFallbacks => "pool fallbacks",
            Bound::LeasequeryOutstanding => "leasequeries outstanding",
            Bound::Timers => "timers",
        }
    }
}

/// How full each bounded structure is: (what, used, limit), in the order of [`Bound::ALL`].
/// The timer bound counts the pool entries there are (themselves bounded: [`Bound::PoolEntries`]).
pub fn usage(engine: &Engine) -> [(Bound, usize, usize); 12] {
    let c = engine.config();
    let (p, l) = (&c.proxy, &c.limits);
    let pool = engine.pool();
    let entries: usize = (0..pool.links()).map(|link| pool.entries(link).count()).sum();
    // The held-reply timer, the sweep and the leasequery timer.
    let mut live = 2 * p.max_pending_probes + p.max_offer_windows + p.max_clients.max(1) + l.pending_clients.max(1) + 3;
    if pool.links() > 0 {
        live += entries + 1 + l.pending_clients;
    }
    let tx = engine.outstanding_requests();
    [
        (Bound::Records, engine.table().bound_len(), p.max_clients.max(1)),
        (Bound::PendingRecords, engine.table().pending_len(), l.pending_clients.max(1)),
        (Bound::Transactions, tx.len(), l.transactions.max(1)),
        (Bound::TransactionOrder, tx.order_len(), 2 * l.transactions.max(1) + 16),
        (Bound::Probes, engine.pending_probes(), p.max_pending_probes),
        (Bound::OfferWindows, engine.offer_windows(), p.max_offer_windows),
        (Bound::HeldReplies, engine.held_replies(), p.max_held_replies),
        (Bound::PoolEntries, entries, pool.links() * MAX_ENTRIES_PER_LINK),
        (Bound::Intercepted, engine.intercepted_addresses().addresses().len(), MAX_INTERCEPTED),
        (Bound::PoolFallbacks, engine.pool_fallbacks_waiting(), l.pending_clients),
        (Bound::LeasequeryOutstanding, engine.leasequery().outstanding(), c.leasequery.max_outstanding),
        (Bound::Timers, engine.timers_filed(), 2 * live),
    ]
}

/// Does the engine cache (proxy mode)?
pub fn caches(engine: &Engine) -> bool {
    engine.config().mode != Mode::Relay
}

/// Is this datagram to a client one the engine made itself (a local answer or our NAK)
/// rather than a server reply it relayed? See the module docs.
pub fn is_local_answer<T: AsRef<[u8]>>(msg: &Message<T>) -> bool {
    msg.giaddr().is_unspecified()
}

/// The key the engine files the client that sent (or is named by) `msg` under.
pub fn key_of<T: AsRef<[u8]>>(msg: &Message<T>) -> Vec<u8> {
    ClientKey::of(msg).as_bytes().to_vec()
}

/// The key of a client known by its hardware address.
pub fn hardware_key(htype: u8, chaddr: &[u8]) -> Vec<u8> {
    ClientKey::hardware(htype, chaddr).as_bytes().to_vec()
}

/// The key of a persisted record, if the bytes decode.
pub fn persisted_key(bytes: &[u8], templates: &Templates) -> Option<Vec<u8>> {
    decode_record_with(bytes, templates).ok().map(|(r, _)| r.key.as_bytes().to_vec())
}

/// Is `key` one of cdra's own pool identities (pool mode: the identity it leases pool
/// addresses under)?
pub fn is_pool_key(key: &[u8]) -> bool {
    cdra_sim::engine_api::is_pool_identity(key)
}

/// The key of pool entry `n` of downstream link `link`.
pub fn pool_entry_key(engine: &Engine, link: usize, n: u16) -> Option<Vec<u8>> {
    let giaddr = engine.config().downstream.get(link)?.address.addr;
    Some(PoolIdentity::new(giaddr, n).key().as_bytes().to_vec())
}

/// Every pool entry (pool mode), as the simulation sees them.
pub fn pool_entries(engine: &Engine) -> Vec<PoolEntryView> {
    cdra_sim::engine_api::pool_entries(engine)
}

/// The server ACK each pool entry is answered from (its lease), whole.
pub fn pool_entry_replies(engine: &Engine) -> Vec<Vec<u8>> {
    let pool = engine.pool();
    (0..pool.links()).flat_map(|l| pool.entries(l).filter_map(|e| e.reply_message())).collect()
}

/// Is a persisted record a pool entry's own lease (whatever its key says: the entry it
/// restores is the one its origin names)?
pub fn persisted_is_pool_lease(bytes: &[u8], templates: &Templates) -> bool {
    decode_record_with(bytes, templates).is_ok_and(|(r, _)| matches!(r.origin(), Origin::PoolLease { .. }))
}

/// The address a persisted record holds, if the bytes decode.
pub fn persisted_address(bytes: &[u8], templates: &Templates) -> Option<Ipv4Addr> {
    decode_record_with(bytes, templates).ok().map(|(r, _)| r.address)
}

/// The server identifier a persisted record names, if the bytes decode and it has one.
pub fn persisted_server_id(bytes: &[u8], templates: &Templates) -> Option<Ipv4Addr> {
    decode_record_with(bytes, templates).ok().and_then(|(r, _)| r.server().map(|s| s.id))
}

/// Spoofing mode: the server addresses whose client unicasts the engine takes.
pub fn intercepted(engine: &Engine) -> Vec<Ipv4Addr> {
    engine.intercepted_addresses().addresses().to_vec()
}

/// Printable form of key bytes.
pub fn key_text(key: &[u8]) -> String {
    ClientKey::from_bytes(key).map(|k| k.to_string()).unwrap_or_else(|| format!("{key:02x?}"))
}
