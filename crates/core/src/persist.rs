//! What persistence needs from the core: a versioned binary encoding of a client record,
//! the list of records changed since last asked, and restoring a table at start-up.
//!
//! The core stays free of I/O: the binary drains [`Change`]s after each batch and hands
//! the encoded bytes to the store's writer thread; at start-up it feeds what the store
//! loaded to [`Engine::restore`]. Paper 3.4: "information in the client database is
//! suspect" after a restart; the precautions of 3.2 (probe before the first local ACK to a
//! SELECTING or INIT-REBOOT request, renew before ACKing a REBIND) apply to every restored
//! record as to any other, unless `safe_network`.

use core::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cdra_wire::Message;
use hashbrown::HashMap;

use crate::engine::Engine;
use crate::table::{CachedReply, ClientKey, ClientKind, ClientRecord, ClientState, Origin, ParamList, ServerBinding};
use crate::templates::{legacy, ReplyContext, Template};
use crate::time::Timestamp;

/// Version of the record encoding. A store holding a newer version is refused. Version 2
/// adds where the address comes from ([`Origin`]); version 1 records are read as from a
/// server. Version 3 keeps the reply split as in memory (paper 5.7, [`crate::templates`]):
/// a record names its shared template by id and holds only the client's own bytes; each
/// template is stored once, under [`template_key`]. Versions 1 and 2 (the whole reply in the
/// record) are read as ever. Version 4 keeps only what is the client's own (issue 14 part 3,
/// [`crate::templates`]): the option 55 codes move into the template (templates of format 4
/// start with their own magic, [`Template::is_current_layout`]), the own bytes leave to
/// the record what it holds (address, hardware key, lease times, client identifier), and a
/// reply alone keeps its template and own bytes in the record. A format 3 record is read by
/// expanding its reply the format 3 way (`templates/legacy.rs`) and splitting it
/// again; its template stays in the store while a record names it.
pub const RECORD_FORMAT: u8 = 4;

/// The first byte of a template's store key (client keys start with 0 or 1, so templates
/// have a key range of their own, after every record).
pub const TEMPLATE_KEY_PREFIX: u8 = 0xFF;

/// The store key of template `id`: [`TEMPLATE_KEY_PREFIX`] then the id (big-endian).
pub fn template_key(id: u64) -> [u8; 9] {
    let mut k = [TEMPLATE_KEY_PREFIX; 9];
    if let Some(rest) = k.get_mut(1..) {
        rest.copy_from_slice(&id.to_be_bytes());
    }
    k
}

/// The template id a store key names, if it is a template's key.
pub fn template_id_of_key(key: &[u8]) -> Option<u64> {
    match key.split_first() {
        Some((&TEMPLATE_KEY_PREFIX, id)) => Some(u64::from_be_bytes(id.try_into().ok()?)),
        _ => None,
    }
}

/// How a record holds its reply: whole (formats 1 and 2; tag 0 of format 3), by template
/// id (tag 1 of formats 3 and 4), its template in the record (tag 2 of format 4; tag 0 of
/// format 4 is no reply, never decoded).
const REPLY_WHOLE: u8 = 0;
const REPLY_BY_TEMPLATE: u8 = 1;
const REPLY_TEMPLATE_ALONE: u8 = 2;

/// A template as read back from the store.
#[derive(Debug)]
enum StoredTemplate {
    Current(Arc<Template>),
    /// Format 3's: its records' replies are expanded with it and split again; it stays in
    /// the store (not [`Templates::unused`]) while a record names it.
    Format3 {
        template: legacy::LegacyTemplate,
        used: AtomicBool,
    },
}

/// The templates read back from a store, by id, for decoding its records
/// ([`decode_record_with`]). Held only while the table is restored: the table interns each
/// template a restored record names, and the ones no record names are freed with this.
#[derive(Debug, Default)]
pub struct Templates(HashMap<u64, StoredTemplate>);

/// A template of format 4 read from the store, checked once as a whole reply is: whether a
/// message is well formed depends on the template alone (header, cookie, the shared
/// options' structure, overload), not on the client's own bytes, which only lengthen
/// well-formed options or fill header fields (`CachedReply::from_parts` checks that they
/// fit, and that what they leave to the record is a whole option: a lease time, a client
/// identifier of at most 255 bytes).
fn checked_template(bytes: &[u8]) -> Result<Arc<Template>, DecodeError> {
    let t = Template::from_bytes(bytes).ok_or(DecodeError::Invalid)?;
    let none = ReplyContext { key: None, address: Ipv4Addr::UNSPECIFIED, lease_secs: 0, t1_secs: 0, t2_secs: 0 };
    let shortest = CachedReply::from_parts(Arc::clone(&t), &t.minimal_own(), &none).ok_or(DecodeError::Invalid)?;
    Message::new_checked(shortest.to_vec(&none)).map_err(|_| DecodeError::Invalid)?;
    Ok(t)
}

impl Templates {
    /// No template (records of format 1 or 2, or whose reply is kept alone, decode without any).
    pub fn new() -> Self {
        Templates::default()
    }

    /// Add the template stored under `key`; an error if its bytes are malformed or not
    /// what the key names.
    pub fn add(&mut self, key: &[u8], value: &[u8]) -> Result<(), DecodeError> {
        let id = template_id_of_key(key).ok_or(DecodeError::Invalid)?;
        let stored = if Template::is_current_layout(value) {
            let t = checked_template(value)?;
            // It is in the store already.
            t.mark_persisted();
            StoredTemplate::Current(t)
        } else {
            // Format 3's, checked as format 3 did.
            let t = legacy::LegacyTemplate::from_bytes(value).ok_or(DecodeError::Invalid)?;
            let shortest = t.expand(&t.minimal_own()).ok_or(DecodeError::Invalid)?;
            Message::new_checked(shortest).map_err(|_| DecodeError::Invalid)?;
            StoredTemplate::Format3 { template: t, used: AtomicBool::new(false) }
        };
        if crate::templates::template_id(value) != id {
            return Err(DecodeError::Invalid);
        }
        self.0.insert(id, stored);
        Ok(())
    }

    /// The ids of the templates no restored record took (only this holds them): the store
    /// can delete them.
    pub fn unused(&self) -> impl Iterator<Item = u64> + '_ {
        self.0
            .iter()
            .filter(|(_, t)| match t {
                StoredTemplate::Current(t) => Arc::strong_count(t) == 1,
                StoredTemplate::Format3 { used, .. } => !used.load(Ordering::Relaxed),
            })
            .map(|(id, _)| *id)
    }

    /// Templates held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Most changes remembered between two drains; beyond it a full dump is asked for.
const MAX_PENDING_CHANGES: usize = 1 << 20;

/// Why a stored record could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than its fields say.
    Truncated,
    /// Written by a newer (or unknown) format version.
    UnknownVersion(u8),
    /// A field holds an impossible value.
    Invalid,
    /// The record names a reply template the store does not hold.
    UnknownTemplate,
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("record truncated"),
            DecodeError::UnknownVersion(v) => {
                write!(f, "record format {v} is newer than this cdra understands ({RECORD_FORMAT})")
            }
            DecodeError::Invalid => f.write_str("record holds an invalid value"),
            DecodeError::UnknownTemplate => f.write_str("record names a reply template the store does not hold"),
        }
    }
}

/// A change to persist.
#[derive(Debug)]
pub enum Change<'a> {
    /// Store (or overwrite) this record.
    Upsert {
        /// Its key ([`ClientKey::as_bytes`] is the store key).
        key: &'a ClientKey,
        /// The record, encoded with [`encode_record`].
        bytes: &'a [u8],
    },
    /// Delete the record of this key.
    Delete(&'a ClientKey),
    /// Store a reply template ([`crate::templates`]) under [`template_key`]`(id)`: written
    /// before the first record that names it.
    Template {
        /// Its id.
        id: u64,
        /// Its bytes ([`Template::as_bytes`]).
        bytes: &'a [u8],
    },
    /// Delete the template of this id (no record holds it any more).
    DeleteTemplate(u64),
}

/// Pending persistence work inside the engine.
#[derive(Debug, Default)]
pub(crate) struct ChangeLog {
    changed: Vec<ClientKey>,
    full_dump_needed: bool,
}

impl ChangeLog {
    pub(crate) fn note(&mut self, key: &ClientKey) {
        if self.changed.len() >= MAX_PENDING_CHANGES {
            self.full_dump_needed = true;
            self.changed.clear();
        }
        if !self.full_dump_needed {
            self.changed.push(key.clone());
        }
    }
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_bytes16(out: &mut Vec<u8>, b: &[u8]) {
    put_u16(out, b.len().min(usize::from(u16::MAX)) as u16);
    out.extend_from_slice(b.get(..b.len().min(usize::from(u16::MAX))).unwrap_or(&[]));
}

/// Encode `r` (last seen on interface `interface`) into `out` (cleared first).
pub fn encode_record(r: &ClientRecord, interface: &str, out: &mut Vec<u8>) {
    out.clear();
    out.push(RECORD_FORMAT);
    out.push(match r.kind() {
        ClientKind::Dhcp => 0,
        ClientKind::Bootp => 1,
    });
    put_bytes16(out, r.key.as_bytes());
    put_bytes16(out, interface.as_bytes());
    out.extend_from_slice(&r.address.octets());
    let (server_addr, server_id) =
        r.server().map(|s| (s.addr, s.id)).unwrap_or((Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED));
    out.extend_from_slice(&server_addr.octets());
    out.extend_from_slice(&server_id.octets());
    put_u32(out, r.lease_secs);
    put_u32(out, r.t1_secs);
    put_u32(out, r.t2_secs);
    put_u64(out, r.lease_start().as_millis());
    put_u64(out, r.last_contact().as_millis());
    put_u64(out, r.last_update().as_millis());
    put_u64(out, r.client_lease_end().map(|t| t.as_millis()).unwrap_or(0));
    // Option 55's codes are the template's; the own bytes leave to the record what it holds
    // (`ClientRecord::reply_context`, the fields above).
    match r.reply.as_ref() {
        // A shared template is stored once, apart (paper 5.7); the record keeps its own bytes.
        Some(reply) if reply.template().is_shared() => {
            out.push(REPLY_BY_TEMPLATE);
            put_u64(out, reply.template().id());
            put_bytes16(out, reply.own_bytes());
        }
        // A reply alone (the template bound was reached, or a pool entry's own lease): its
        // template in the record.
        Some(reply) => {
            out.push(REPLY_TEMPLATE_ALONE);
            put_bytes16(out, reply.template().as_bytes());
            put_bytes16(out, reply.own_bytes());
        }
        None => out.push(REPLY_WHOLE),
    }
    let (tag, n) = match r.origin() {
        Origin::Server => (0u8, 0u16),
        Origin::Pool { n } => (1, n),
        Origin::PoolLease { n } => (2, n),
    };
    out.push(tag);
    put_u16(out, n);
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let (head, tail) =
            (self.b.get(..n).ok_or(DecodeError::Truncated)?, self.b.get(n..).ok_or(DecodeError::Truncated)?);
        self.b = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(*self.take(1)?.first().ok_or(DecodeError::Truncated)?)
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes(b.try_into().map_err(|_| DecodeError::Truncated)?))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes(b.try_into().map_err(|_| DecodeError::Truncated)?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| DecodeError::Truncated)?))
    }
    fn addr(&mut self) -> Result<Ipv4Addr, DecodeError> {
        let b = self.take(4)?;
        let a: [u8; 4] = b.try_into().map_err(|_| DecodeError::Truncated)?;
        Ok(Ipv4Addr::from(a))
    }
    fn bytes16(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

/// Decode a record written by [`encode_record`] whose reply names no template (formats 1
/// and 2, a whole reply of format 3, a reply kept alone); returns it with its interface name.
pub fn decode_record(bytes: &[u8]) -> Result<(ClientRecord, String), DecodeError> {
    decode_record_with(bytes, &Templates::new()).map(|(r, iface)| (r, iface.to_string()))
}

/// [`decode_record_with`] without templates.
pub fn decode_record_borrowed(bytes: &[u8]) -> Result<(ClientRecord, &str), DecodeError> {
    decode_record_with(bytes, &Templates::new())
}

/// A record's reply field as stored, before the record it belongs to is whole.
enum StoredReply<'a> {
    /// The server's message (formats 1 and 2; format 3 tag 0).
    Whole(&'a [u8]),
    /// A template named by id, and the client's own bytes.
    ByTemplate { id: u64, own: &'a [u8] },
    /// A template in the record (format 4), and the client's own bytes.
    TemplateAlone { template: &'a [u8], own: &'a [u8] },
}

fn read_reply<'a>(r: &mut Reader<'a>, version: u8) -> Result<StoredReply<'a>, DecodeError> {
    match (version, if version >= 3 { r.u8()? } else { REPLY_WHOLE }) {
        (1..=3, REPLY_WHOLE) => Ok(StoredReply::Whole(r.bytes16()?)),
        (3.., REPLY_BY_TEMPLATE) => Ok(StoredReply::ByTemplate { id: r.u64()?, own: r.bytes16()? }),
        (4.., REPLY_TEMPLATE_ALONE) => Ok(StoredReply::TemplateAlone { template: r.bytes16()?, own: r.bytes16()? }),
        _ => Err(DecodeError::Invalid),
    }
}

/// The reply of the record `ctx` (formats 1 to 3: with option 55 `params`).
fn make_reply(
    stored: StoredReply<'_>,
    version: u8,
    templates: &Templates,
    params: &[u8],
    ctx: &ReplyContext<'_>,
) -> Result<CachedReply, DecodeError> {
    let whole = |message: &[u8]| {
        if message.is_empty() || Message::new_checked(message).is_err() {
            return Err(DecodeError::Invalid);
        }
        CachedReply::new(message, ctx, &ParamList::new(params)).ok_or(DecodeError::Invalid)
    };
    match stored {
        StoredReply::Whole(message) => whole(message),
        StoredReply::ByTemplate { id, own } => match (templates.0.get(&id), version) {
            // The template was checked when read (`Templates::add`); the client's bytes must
            // fit it.
            (Some(StoredTemplate::Current(t)), 4..) => {
                CachedReply::from_parts(Arc::clone(t), own, ctx).ok_or(DecodeError::Invalid)
            }
            (Some(StoredTemplate::Format3 { template, used }), 3) => {
                used.store(true, Ordering::Relaxed);
                whole(&template.expand(own).ok_or(DecodeError::Invalid)?)
            }
            (Some(_), _) => Err(DecodeError::Invalid),
            (None, _) => Err(DecodeError::UnknownTemplate),
        },
        StoredReply::TemplateAlone { template, own } => {
            CachedReply::from_parts(checked_template(template)?, own, ctx).ok_or(DecodeError::Invalid)
        }
    }
}

/// Decode a record written by [`encode_record`], its reply's template (formats 3 and 4)
/// from `templates`; returns it with its interface name, not copied (start-up decodes a
/// million).
pub fn decode_record_with<'a>(bytes: &'a [u8], templates: &Templates) -> Result<(ClientRecord, &'a str), DecodeError> {
    let mut r = Reader { b: bytes };
    let version = r.u8()?;
    if version == 0 || version > RECORD_FORMAT {
        return Err(DecodeError::UnknownVersion(version));
    }
    let kind = match r.u8()? {
        0 => ClientKind::Dhcp,
        1 => ClientKind::Bootp,
        _ => return Err(DecodeError::Invalid),
    };
    let key = ClientKey::from_bytes(r.bytes16()?).ok_or(DecodeError::Invalid)?;
    let interface = core::str::from_utf8(r.bytes16()?).map_err(|_| DecodeError::Invalid)?;
    let address = r.addr()?;
    let server_addr = r.addr()?;
    let server_id = r.addr()?;
    let lease_secs = r.u32()?;
    let t1_secs = r.u32()?;
    let t2_secs = r.u32()?;
    let lease_start = Timestamp::from_millis(r.u64()?);
    let last_contact = Timestamp::from_millis(r.u64()?);
    let last_update = Timestamp::from_millis(r.u64()?);
    let client_lease_end = match r.u64()? {
        0 => None,
        t => Some(Timestamp::from_millis(t)),
    };
    let params = if version <= 3 { r.bytes16()? } else { &[] };
    let stored = read_reply(&mut r, version)?;
    let origin = match version {
        1 => Origin::Server,
        _ => match (r.u8()?, r.u16()?) {
            (0, _) => Origin::Server,
            (1, n) => Origin::Pool { n },
            (2, n) => Origin::PoolLease { n },
            _ => return Err(DecodeError::Invalid),
        },
    };
    if !r.b.is_empty() || address.is_unspecified() {
        return Err(DecodeError::Invalid);
    }
    let mut rec = ClientRecord::new(key, kind, 0, last_contact);
    rec.state = ClientState::Bound;
    rec.address = address;
    rec.set_server((!server_addr.is_unspecified()).then_some(ServerBinding { addr: server_addr, id: server_id }));
    rec.lease_secs = lease_secs;
    rec.t1_secs = t1_secs;
    rec.t2_secs = t2_secs;
    rec.set_lease_start(lease_start);
    rec.set_last_update(last_update);
    rec.set_client_lease_end(client_lease_end);
    rec.set_origin(origin);
    let reply = make_reply(stored, version, templates, params, &rec.reply_context())?;
    rec.reply = Some(reply);
    Ok((rec, interface))
}

impl Engine {
    /// The store's form of the pool entry `key` names, with its link's name, if it is a
    /// leased pool entry.
    fn pool_entry_record(&self, key: &ClientKey) -> Option<(ClientRecord, &str)> {
        let (giaddr, n) = crate::pool::PoolIdentity::parse_key(key)?;
        let link = self.config.downstream.iter().position(|d| d.address.addr == giaddr)?;
        let e = self.pool.by_number(link, n).filter(|e| e.is_leased())?;
        let iface = self.config.downstream.get(link).map(|d| d.name.as_str())?;
        Some((e.as_record(key.clone(), link as u16), iface))
    }
}

/// Paper 5.7: the shared part of `r`'s reply is stored once, before the first record that
/// names it.
fn template_first(r: &ClientRecord, f: &mut impl FnMut(Change<'_>)) {
    if let Some(t) = r.reply.as_ref().map(|c| c.template()).filter(|t| t.is_shared()) {
        if !t.mark_persisted() {
            f(Change::Template { id: t.id(), bytes: t.as_bytes() });
        }
    }
}

/// What [`Engine::restore`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Records now in the table.
    pub loaded: usize,
    /// Dropped: older than `max_age` or past their server lease.
    pub expired: usize,
    /// Dropped: their interface is no longer a downstream interface.
    pub unknown_interface: usize,
    /// Dropped: another record held the same key or address and was newer.
    pub superseded: usize,
    /// Kept, with times in the future (the clock is behind the store's) clamped to now.
    pub future_dated: usize,
    /// Pool mode: pool entries (our own leases) put back in the pool.
    pub pool_entries: usize,
}

impl Engine {
    /// Note that the record of `key` must be written (or deleted) by the store.
    pub(crate) fn note_change(&mut self, key: &ClientKey) {
        if self.config.mode.caches() {
            self.changes.note(key);
        }
    }

    /// See [`Engine::drain_changes`].
    pub(crate) fn persist_changes(&mut self, scratch: &mut Vec<u8>, mut f: impl FnMut(Change<'_>)) -> bool {
        // Templates no record holds any more leave the store first (a template that came
        // back since is written again, after this, by the first record naming it).
        let table = &mut self.table;
        let mut gone = Vec::new();
        let complete = table.templates_mut().take_gone(|id| gone.push(id));
        for id in gone {
            if !table.templates().get(id).is_some_and(|t| t.is_persisted()) {
                f(Change::DeleteTemplate(id));
            }
        }
        if self.changes.full_dump_needed || !complete {
            self.changes.full_dump_needed = false;
            self.changes.changed.clear();
            return false;
        }
        let keys = core::mem::take(&mut self.changes.changed);
        for key in &keys {
            if let Some((record, iface)) = self.pool_entry_record(key) {
                // Pool mode: one of our own leases (kept with the client table).
                template_first(&record, &mut f);
                encode_record(&record, iface, scratch);
                f(Change::Upsert { key, bytes: scratch });
                continue;
            }
            match self.table.find(key).and_then(|s| self.table.get(s)) {
                Some(r) if r.reply.is_some() => {
                    let iface =
                        self.config.downstream.get(usize::from(r.downstream)).map(|d| d.name.as_str()).unwrap_or("");
                    template_first(r, &mut f);
                    encode_record(r, iface, scratch);
                    f(Change::Upsert { key, bytes: scratch });
                }
                _ => f(Change::Delete(key)),
            }
        }
        let mut keys = keys;
        keys.clear();
        self.changes.changed = keys;
        true
    }

    /// See [`Engine::dump_templates`]: every shared template, each marked as written.
    pub(crate) fn persist_dump_templates(&self, mut f: impl FnMut(u64, &[u8])) {
        for t in self.table.templates().iter() {
            t.mark_persisted();
            f(t.id(), t.as_bytes());
        }
    }

    /// See [`Engine::dump`].
    pub(crate) fn persist_dump(&self, scratch: &mut Vec<u8>, mut f: impl FnMut(&ClientKey, &[u8])) {
        for (link, d) in self.config.downstream.iter().enumerate() {
            // In number order, so that a restore gives the same engine whatever the map's order.
            let mut entries: Vec<_> = self.pool.entries(link).filter(|e| e.is_leased()).collect();
            entries.sort_by_key(|e| e.n);
            for e in entries {
                let key = crate::pool::PoolIdentity::new(d.address.addr, e.n).key();
                encode_record(&e.as_record(key.clone(), link as u16), &d.name, scratch);
                f(&key, scratch);
            }
        }
        for (_, r) in self.table.iter() {
            if r.reply.is_none() {
                continue;
            }
            let iface = self.config.downstream.get(usize::from(r.downstream)).map(|d| d.name.as_str()).unwrap_or("");
            encode_record(r, iface, scratch);
            f(&r.key, scratch);
        }
    }
}
