//! The one place where the simulation calls the engine beyond `handle_datagram`: the
//! proxy-mode API (`handle_probe_answer`, `poll_timeout`, `handle_timeout`, `table`) and
//! the persistence hooks (`dump` / `persist::decode_record` / `restore`). If a signature
//! changes, this file is the only one to edit.

use core::net::Ipv4Addr;

use cdra_core::persist::{decode_record_with, template_key, Templates};
use cdra_core::table::{ClientKey, ClientRecord};
use cdra_core::{Engine, Outbox, ProbeAnswer, Timestamp};

use crate::net::ProbeReply;
use crate::sched::Millis;

/// A client record as the simulation looks at it (a copy, detached from the engine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView {
    /// The key, as the engine prints it.
    pub key: String,
    /// State label (`ClientState::label`: "init", "offered_locally", "requesting",
    /// "rebooting", "renewing", "rebinding", "bound").
    pub state: &'static str,
    /// The leased address (0.0.0.0 when none).
    pub address: Ipv4Addr,
    /// End of the server's lease as the engine believes it (`None`: infinite).
    pub lease_end: Option<Millis>,
    /// The server lease's T1 instant (`None`: infinite lease).
    pub t1_at: Option<Millis>,
    /// The server holding the lease.
    pub server: Option<Ipv4Addr>,
    /// Downstream interface (position in the engine's configuration).
    pub downstream: u16,
    /// Has a server reply been cached?
    pub has_reply: bool,
}

fn view(r: &ClientRecord) -> RecordView {
    let lease_end = r.lease_end().map(|t| t.as_millis());
    let t1_at = lease_end.map(|_| r.lease_start().as_millis().saturating_add(u64::from(r.t1_secs) * 1000));
    RecordView {
        key: r.key.to_string(),
        state: r.state.label(),
        address: r.address,
        lease_end,
        t1_at,
        server: r.server().map(|s| s.addr),
        downstream: r.downstream,
        has_reply: r.reply.is_some(),
    }
}

/// Some host answered a probe: an ARP packet from `mac` claiming `address` on `ifindex`,
/// or an ICMP echo reply from `address` carrying an identifier.
pub fn probe_answer(
    engine: &mut Engine,
    now: Millis,
    ifindex: u32,
    address: Ipv4Addr,
    reply: ProbeReply,
    outbox: &mut Outbox,
) {
    let answer = match reply {
        ProbeReply::Arp(mac) => ProbeAnswer::Arp { ifindex, address, mac },
        ProbeReply::Echo(echo) => ProbeAnswer::Echo { address, echo },
    };
    engine.handle_probe_answer(Timestamp::from_millis(now), answer, outbox);
}

/// When the engine next needs `handle_timeout`.
pub fn poll_timeout(engine: &Engine) -> Option<Millis> {
    engine.poll_timeout().map(|t| t.as_millis())
}

/// Run the engine's timers due at `now`.
pub fn handle_timeout(engine: &mut Engine, now: Millis, outbox: &mut Outbox) {
    engine.handle_timeout(Timestamp::from_millis(now), outbox);
}

/// Every record of the engine's client table.
pub fn records(engine: &Engine) -> Vec<RecordView> {
    engine.table().iter().map(|(_, r)| view(r)).collect()
}

/// The record of the client with option 61 `client_id` (else Ethernet `mac`).
pub fn record_for(engine: &Engine, client_id: Option<&[u8]>, mac: [u8; 6]) -> Option<RecordView> {
    let key = match client_id {
        Some(id) if !id.is_empty() => ClientKey::client_id(id),
        _ => ClientKey::hardware(1, &mac),
    };
    let t = engine.table();
    t.find(&key).and_then(|s| t.get(s)).map(view)
}

/// What survives an engine restart: the persisted client table, as the store would hold
/// it (each record encoded by the engine).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Encoded records.
    pub records: Vec<Vec<u8>>,
    /// The shared reply templates the records name (paper 5.7): `(id, bytes)`.
    pub templates: Vec<(u64, Vec<u8>)>,
}

impl Snapshot {
    /// The templates, as persistence reads them back to decode the records.
    pub fn templates(&self) -> Templates {
        let mut t = Templates::new();
        for (id, bytes) in &self.templates {
            let _ = t.add(&template_key(*id), bytes);
        }
        t
    }
}

/// The engine's records, as persistence would save them.
pub fn export_records(engine: &Engine) -> Snapshot {
    let mut scratch = Vec::new();
    let mut records = Vec::new();
    let mut templates = Vec::new();
    engine.dump_templates(|id, bytes| templates.push((id, bytes.to_vec())));
    engine.dump(&mut scratch, |_, bytes| records.push(bytes.to_vec()));
    Snapshot { records, templates }
}

/// Load saved records into a (fresh) engine; returns how many were loaded.
pub fn import_records(engine: &mut Engine, now: Millis, snapshot: &Snapshot) -> usize {
    let templates = snapshot.templates();
    let decoded =
        snapshot.records.iter().filter_map(|b| decode_record_with(b, &templates).ok().map(|(r, i)| (r, i.to_string())));
    engine.restore(Timestamp::from_millis(now), decoded).loaded
}

/// A pool entry as the simulation looks at it (pool mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolEntryView {
    /// Downstream link index.
    pub link: usize,
    /// Entry number on the link.
    pub n: u16,
    /// `EntryState::label`: "acquiring", "requesting", "free", "assigned", "migrating",
    /// "reacquiring".
    pub state: &'static str,
    /// The key of the client it is given to, as the engine prints keys.
    pub client: Option<String>,
    /// The leased address (0.0.0.0 when none).
    pub address: Ipv4Addr,
    /// End of the pool lease (`None`: not leased or infinite).
    pub lease_end: Option<Millis>,
}

/// Every pool entry of every link.
pub fn pool_entries(engine: &Engine) -> Vec<PoolEntryView> {
    let pool = engine.pool();
    let mut entries = (0..pool.links())
        .flat_map(|link| {
            pool.entries(link).map(move |e| PoolEntryView {
                link,
                n: e.n,
                state: e.state.label(),
                client: e.state.client().map(|k| k.to_string()),
                address: e.address,
                lease_end: e.lease_end().map(|t| t.as_millis()),
            })
        })
        .collect::<Vec<_>>();
    entries.sort_by_key(|e| (e.link, e.n));
    entries
}

/// Is `key` (a server's lease key: 1 + option 61, or 0 + htype + chaddr) one of cdra's
/// pool identities?
pub fn is_pool_identity(key: &[u8]) -> bool {
    key.first() == Some(&1) && key.get(1..).is_some_and(|id| id.starts_with(cdra_core::pool::POOL_ID_PREFIX))
}
