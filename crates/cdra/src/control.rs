//! The control socket: operators inspect and flush the client table at run time.
//!
//! A Unix stream socket (`[control] socket = PATH`, mode 0600). One command per
//! connection, one line: `list`, `show CLIENT|ADDRESS`, `flush CLIENT|ADDRESS|all`,
//! `counters`. CLIENT is a MAC address (`aa:bb:cc:dd:ee:ff`), `id:HEX` (a client
//! identifier) or `hw:HTYPE:HEX`. The answer is text, ending when the server closes the
//! connection; a first line starting with `error:` means the command failed.
//!
//! `list`, `show` and `counters` followed by the word `json` (`list json`, `show CLIENT
//! json`, `counters json`; `cdra cache ... --json`) answer in JSON instead: `list`, one
//! object a line (JSON lines: each client, then in pool mode each pool entry, told apart by
//! `"type"`); `show` and `counters`, one object. Errors stay `error: ...` lines.
//!
//! Who does what: the management thread (`management.rs`) accepts, reads the command with
//! a deadline, parses it ([`parse`]), formats and writes the answer. The data-plane loop
//! only runs the [`Query`]s the thread sends it, each bounded: a lookup by key or address,
//! one flush, or at most `control.list_chunk` table slots ([`rows`], [`flush_chunk`],
//! [`scan_chaddr`]). `list`, `flush all` and finding a client by the chaddr of its cached
//! reply walk the table that way, one chunk per query, from a cursor the thread keeps.
//! Records do not move between slots, so a listing shows every record that stays in the
//! table while it runs exactly once; one added or removed meanwhile may or may not appear.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use cdra_core::table::{ClientKey, ClientRecord, Origin, Slot};
use cdra_core::{Engine, Timestamp};
use serde_json::{json, Map, Value};

use crate::management::ManagementCounters;
use crate::metrics::Snapshot;

/// The listening socket; the file is removed when it is dropped.
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlServer {
    /// Listen on `path` (a stale socket file is replaced).
    pub fn bind(path: &Path) -> Result<Self> {
        if path.exists() {
            std::fs::remove_file(path).with_context(|| format!("control.socket: removing stale {}", path.display()))?;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("control.socket: creating {}", dir.display()))?;
        }
        let listener =
            UnixListener::bind(path).with_context(|| format!("control.socket: binding {}", path.display()))?;
        listener.set_nonblocking(true).context("control.socket")?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).context("control.socket: chmod")?;
        Ok(ControlServer { listener, path: path.to_path_buf() })
    }

    /// The listener (non-blocking).
    pub fn listener(&self) -> &UnixListener {
        &self.listener
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The answer to a line that is not a command.
pub const USAGE: &str =
    "error: commands are: list [json] | show CLIENT|ADDRESS [json] | flush CLIENT|ADDRESS|all | counters [json] | reload | config\n";

/// How a command names a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// By its leased address.
    Address(Ipv4Addr),
    /// By its key; `mac` when the text was a bare MAC address, which also finds a client
    /// keyed by a client identifier (udhcpc's 01+MAC, dhcpcd's DUID) by the chaddr of its
    /// cached reply.
    Key {
        /// The key as written.
        key: ClientKey,
        /// The MAC address, for the chaddr search.
        mac: Option<[u8; 6]>,
    },
    /// Text that names no client (the answer is `error: no client TEXT`).
    Nothing,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Every record, one line each (`json`: one JSON object each).
    List {
        /// Answer in JSON lines.
        json: bool,
    },
    /// One record in detail (`what` is the text as written, for messages).
    Show {
        /// The client.
        target: Target,
        /// As written.
        what: String,
        /// Answer with one JSON object.
        json: bool,
    },
    /// Remove one record.
    Flush {
        /// The client.
        target: Target,
        /// As written.
        what: String,
    },
    /// Remove every record.
    FlushAll,
    /// The proxy counters.
    Counters {
        /// Answer with one JSON object.
        json: bool,
    },
    /// Re-read the configuration file and apply it (as SIGHUP does).
    Reload,
    /// The running configuration file's text (for `cdra check --running`).
    RunningConfig,
    /// Not a command: answered with [`USAGE`].
    Invalid,
}

/// Parse one command line (no engine needed).
pub fn parse(line: &str) -> Command {
    let mut words: Vec<&str> = line.split_whitespace().collect();
    // A last word `json` asks for the JSON answer (not for `flush`, `reload`, `config`).
    let json = words.len() > 1 && words.last() == Some(&"json");
    if json {
        words.pop();
    }
    match (words.first().copied().unwrap_or(""), words.get(1).copied(), words.len()) {
        ("list", None, _) => Command::List { json },
        ("counters", None, _) => Command::Counters { json },
        ("reload", None, _) if !json => Command::Reload,
        ("config", None, _) if !json => Command::RunningConfig,
        ("flush", Some("all"), 2) if !json => Command::FlushAll,
        ("show", Some(what), 2) => Command::Show { target: target(what), what: what.to_string(), json },
        ("flush", Some(what), 2) if !json => Command::Flush { target: target(what), what: what.to_string() },
        _ => Command::Invalid,
    }
}

fn target(what: &str) -> Target {
    if let Ok(ip) = what.parse::<Ipv4Addr>() {
        return Target::Address(ip);
    }
    let Some(key) = ClientKey::parse(what) else { return Target::Nothing };
    let bytes: Vec<u8> = what.split([':', '-']).filter_map(|p| u8::from_str_radix(p, 16).ok()).collect();
    let mac = match <[u8; 6]>::try_from(bytes.as_slice()) {
        Ok(mac) if !what.contains("id:") && !what.contains("hw:") => Some(mac),
        _ => None,
    };
    Target::Key { key, mac }
}

/// How the loop looks a record up: by index, O(1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// By leased address.
    Address(Ipv4Addr),
    /// By key.
    Key(ClientKey),
}

fn slot_of(engine: &Engine, lookup: &Lookup) -> Option<Slot> {
    match lookup {
        Lookup::Address(ip) => engine.table().find_address(*ip),
        Lookup::Key(key) => engine.table().find(key),
    }
}

/// Loop side of `show`: a copy of one record's row and details, or `None` (formatted on
/// the management thread: [`describe`], [`shown_json`]).
pub fn show(engine: &Engine, now: Timestamp, lookup: &Lookup) -> Option<Box<Shown>> {
    let r = engine.table().get(slot_of(engine, lookup)?)?;
    Some(Box::new(Shown { row: Row::of(r, now), detail: Detail::of(r) }))
}

/// What `show` shows of a record.
#[derive(Debug, Clone)]
pub struct Shown {
    /// As in `list`.
    pub row: Row,
    /// The rest.
    pub detail: Detail,
}

/// The second line of `show`.
#[derive(Debug, Clone)]
pub struct Detail {
    kind: String,
    lease_secs: u32,
    t1_secs: u32,
    t2_secs: u32,
    cached_reply_bytes: usize,
    params: Vec<u8>,
}

impl Detail {
    fn of(r: &ClientRecord) -> Self {
        Detail {
            kind: format!("{:?}", r.kind()),
            lease_secs: r.lease_secs,
            t1_secs: r.t1_secs,
            t2_secs: r.t2_secs,
            cached_reply_bytes: r.reply.as_ref().map(|b| b.stored_len()).unwrap_or(0),
            params: r.param_list().codes().collect(),
        }
    }
}

/// Loop side of `flush`: remove one record; its key, or `None` if there was none.
pub fn flush(engine: &mut Engine, lookup: &Lookup) -> Option<ClientKey> {
    let key = engine.table().get(slot_of(engine, lookup)?)?.key.clone();
    engine.flush_client(&key).then_some(key)
}

/// The slots `[cursor, cursor + chunk)` and where the next chunk starts (`None`: done).
fn chunk_range(engine: &Engine, cursor: Slot, chunk: usize) -> (std::ops::Range<Slot>, Option<Slot>) {
    let total = engine.table().slot_count().min(Slot::MAX as usize) as Slot;
    let start = cursor.min(total);
    let end = start.saturating_add(chunk.max(1).min(Slot::MAX as usize) as Slot).min(total);
    (start..end, (end < total).then_some(end))
}

/// Loop side of `list`: compact copies of the records in at most `chunk` slots from
/// `cursor`, and the next cursor (`None`: the table is done).
pub fn rows(engine: &Engine, now: Timestamp, cursor: Slot, chunk: usize) -> (Vec<Row>, Option<Slot>) {
    let (range, next) = chunk_range(engine, cursor, chunk);
    let rows = range.filter_map(|s| engine.table().get(s)).map(|r| Row::of(r, now)).collect();
    (rows, next)
}

/// Loop side of `flush all`: remove the records in at most `chunk` slots from `cursor`;
/// how many, and the next cursor.
pub fn flush_chunk(engine: &mut Engine, cursor: Slot, chunk: usize) -> (usize, Option<Slot>) {
    let (range, next) = chunk_range(engine, cursor, chunk);
    let mut flushed = 0;
    for s in range {
        let Some(key) = engine.table().get(s).map(|r| r.key.clone()) else { continue };
        flushed += usize::from(engine.flush_client(&key));
    }
    (flushed, next)
}

/// Loop side of the chaddr search: the first record in at most `chunk` slots from
/// `cursor` whose cached reply is for `mac`, and the next cursor.
pub fn scan_chaddr(engine: &Engine, mac: [u8; 6], cursor: Slot, chunk: usize) -> (Option<ClientKey>, Option<Slot>) {
    let (range, next) = chunk_range(engine, cursor, chunk);
    let found = range
        .filter_map(|s| engine.table().get(s))
        .find(|r| r.reply.is_some() && r.reply_chaddr() == &mac[..])
        .map(|r| r.key.clone());
    match found {
        Some(key) => (Some(key), None),
        None => (None, next),
    }
}

/// What a `list` line shows of a record, copied by the loop (ages computed there).
#[derive(Debug, Clone)]
pub struct Row {
    key: ClientKey,
    /// Pool mode: the number of the pool entry it was given (its address is the pool's).
    pool_entry: Option<u16>,
    downstream: u16,
    address: Ipv4Addr,
    state: &'static str,
    left: LeaseLeft,
    server: Option<Ipv4Addr>,
    last_contact_secs: u64,
    last_update_secs: u64,
}

#[derive(Debug, Clone, Copy)]
enum LeaseLeft {
    /// No server answer cached.
    Unknown,
    Infinite,
    Secs(u32),
}

impl Row {
    fn of(r: &ClientRecord, now: Timestamp) -> Self {
        Row {
            key: r.key.clone(),
            pool_entry: match r.origin() {
                Origin::Pool { n } => Some(n),
                Origin::Server | Origin::PoolLease { .. } => None,
            },
            downstream: r.downstream,
            address: r.address,
            state: r.state.label(),
            left: match r.reply {
                None => LeaseLeft::Unknown,
                Some(_) if r.lease_secs == u32::MAX => LeaseLeft::Infinite,
                Some(_) => LeaseLeft::Secs(r.lease_left_secs(now)),
            },
            server: r.server().map(|s| s.id),
            last_contact_secs: now.since(r.last_contact()).as_secs(),
            last_update_secs: now.since(r.last_update()).as_secs(),
        }
    }
}

/// The answer to `show`: the `list` line, then the details.
pub fn describe<S: AsRef<str>>(names: &[S], shown: &Shown) -> String {
    let mut s = String::with_capacity(192);
    write_row(&mut s, names, &shown.row);
    let d = &shown.detail;
    let _ = write!(
        s,
        "\n  kind={} lease={}s t1={}s t2={}s cached_reply_bytes={} params={:?}",
        d.kind, d.lease_secs, d.t1_secs, d.t2_secs, d.cached_reply_bytes, d.params
    );
    s.push('\n');
    s
}

/// `lease_left_secs` and `lease_infinite` of a JSON answer.
fn left_json(left: LeaseLeft) -> (Value, bool) {
    match left {
        LeaseLeft::Unknown => (Value::Null, false),
        LeaseLeft::Infinite => (Value::Null, true),
        LeaseLeft::Secs(n) => (n.into(), false),
    }
}

fn opt_json<T: ToString>(v: Option<T>) -> Value {
    v.map_or(Value::Null, |v| Value::String(v.to_string()))
}

/// One client of `list json`: what its `list` line says, as a JSON object.
pub fn row_json<S: AsRef<str>>(names: &[S], row: &Row) -> Value {
    let iface = names.get(usize::from(row.downstream)).map(AsRef::as_ref).unwrap_or("?");
    let (left, infinite) = left_json(row.left);
    let mut o = json!({
        "type": "client",
        "client": row.key.to_string(),
        "interface": iface,
        "address": row.address.to_string(),
        "state": row.state,
        "lease_left_secs": left,
        "lease_infinite": infinite,
        "server": opt_json(row.server),
        "last_contact_secs": row.last_contact_secs,
        "last_update_secs": row.last_update_secs,
    });
    if let (Some(n), Some(map)) = (row.pool_entry, o.as_object_mut()) {
        map.insert("pool_entry".into(), format!("{iface}/{n}").into());
    }
    o
}

/// The answer to `show CLIENT json`: [`row_json`] with the details.
pub fn shown_json<S: AsRef<str>>(names: &[S], shown: &Shown) -> Value {
    let mut o = row_json(names, &shown.row);
    let d = &shown.detail;
    if let Some(map) = o.as_object_mut() {
        map.insert("kind".into(), d.kind.clone().into());
        map.insert("lease_secs".into(), d.lease_secs.into());
        map.insert("t1_secs".into(), d.t1_secs.into());
        map.insert("t2_secs".into(), d.t2_secs.into());
        map.insert("cached_reply_bytes".into(), d.cached_reply_bytes.into());
        map.insert("params".into(), d.params.clone().into());
    }
    o
}

/// One pool entry of `list json` (pool mode).
pub fn pool_row_json<S: AsRef<str>>(names: &[S], row: &PoolRow) -> Value {
    let iface = names.get(usize::from(row.link)).map(AsRef::as_ref).unwrap_or("?");
    let (left, infinite) = left_json(row.left);
    json!({
        "type": "pool_entry",
        "entry": format!("{iface}/{}", row.n),
        "interface": iface,
        "address": row.address.to_string(),
        "state": row.state,
        "lease_left_secs": left,
        "lease_infinite": infinite,
        "server": opt_json(row.server),
        "client": opt_json(row.client.as_ref()),
        "held_back": row.held_back,
    })
}

/// The `lease_left` value and ` server=...` of a `list` line (records and pool entries).
fn write_lease_and_server(out: &mut String, left: LeaseLeft, server: Option<Ipv4Addr>) {
    let _ = match left {
        LeaseLeft::Unknown => write!(out, "-"),
        LeaseLeft::Infinite => write!(out, "infinite"),
        LeaseLeft::Secs(n) => write!(out, "{n}s"),
    };
    let _ = match server {
        Some(id) => write!(out, " server={id}"),
        None => write!(out, " server=-"),
    };
}

/// Append one `list` line (without the line feed); `names` are the downstream interfaces.
pub fn write_row<S: AsRef<str>>(out: &mut String, names: &[S], row: &Row) {
    let iface = names.get(usize::from(row.downstream)).map(AsRef::as_ref).unwrap_or("?");
    let _ = write!(out, "{} {iface} {} {} lease_left=", row.key, row.address, row.state);
    write_lease_and_server(out, row.left, row.server);
    let _ = write!(out, " last_contact={}s last_update={}s", row.last_contact_secs, row.last_update_secs);
    if let Some(n) = row.pool_entry {
        let _ = write!(out, " pool_entry={iface}/{n}");
    }
}

/// What a `list` line shows of a pool entry (pool mode), copied by the loop.
#[derive(Debug, Clone)]
pub struct PoolRow {
    link: u16,
    n: u16,
    state: &'static str,
    address: Ipv4Addr,
    client: Option<ClientKey>,
    left: LeaseLeft,
    server: Option<Ipv4Addr>,
    held_back: bool,
}

/// Loop side of `list` in pool mode: every pool entry, by interface and number (at most
/// `[pool] size` free ones a link plus those given to clients, bounded by
/// `cdra_core::pool::MAX_ENTRIES_PER_LINK`).
pub fn pool_rows(engine: &Engine, now: Timestamp) -> Vec<PoolRow> {
    let pool = engine.pool();
    let mut rows: Vec<PoolRow> = (0..pool.links())
        .flat_map(|link| {
            pool.entries(link).map(move |e| PoolRow {
                link: link as u16,
                n: e.n,
                state: e.state.label(),
                address: e.address,
                client: e.state.client().cloned(),
                left: match e.lease_end() {
                    _ if e.reply.is_none() => LeaseLeft::Unknown,
                    None => LeaseLeft::Infinite,
                    Some(end) => LeaseLeft::Secs(end.since(now).as_secs().min(u64::from(u32::MAX)) as u32),
                },
                server: e.server.map(|s| s.id),
                held_back: e.is_held_back(),
            })
        })
        .collect();
    rows.sort_by_key(|r| (r.link, r.n));
    rows
}

/// Append one pool `list` line (without the line feed): `pool:IFACE/N IFACE ADDRESS STATE
/// lease_left=... server=... [client=KEY] [held_back]`.
pub fn write_pool_row<S: AsRef<str>>(out: &mut String, names: &[S], row: &PoolRow) {
    let iface = names.get(usize::from(row.link)).map(AsRef::as_ref).unwrap_or("?");
    let _ = write!(out, "pool:{iface}/{} {iface} {} {} lease_left=", row.n, row.address, row.state);
    write_lease_and_server(out, row.left, row.server);
    if let Some(k) = &row.client {
        let _ = write!(out, " client={k}");
    }
    if row.held_back {
        let _ = write!(out, " held_back");
    }
}

/// The answer to `counters`, from a snapshot (formatted on the management thread).
pub fn counters_text(snap: &Snapshot, mgmt: &ManagementCounters) -> String {
    let mut out = format!(
        "clients={}\npending_clients={}\npending_probes={}\ntransactions={}\ntransactions_evicted={}\n",
        snap.clients, snap.pending_clients, snap.pending_probes, snap.transactions, snap.counters.transactions_evicted
    );
    for (group, label, v) in snap.counters.proxy.iter() {
        let _ = writeln!(out, "{group}.{label}={v}");
    }
    // Every drop reason (the limits among them), summed over the interfaces.
    for reason in cdra_core::DropReason::ALL {
        let _ = writeln!(out, "dropped.{}={}", reason.label(), snap.counters.total_dropped(*reason));
    }
    for (e, v) in cdra_wire::ipv4::FrameError::ALL.iter().zip(&snap.io.bad_frames) {
        let _ = writeln!(out, "bad_frames.{}={v}", e.label());
    }
    let io = &snap.io;
    let _ = write!(
        out,
        "send_errors={} oversized_datagrams={} receive_yields={}",
        io.send_errors, io.oversized, io.receive_yields
    );
    if let Some(p) = io.persistence {
        let _ = write!(out, " persistence_up={} persistence_open_failures={}", u8::from(p.up), p.open_failures);
    }
    for ch in crate::management::Channel::ALL {
        let _ = write!(
            out,
            " management_refused_{0}={1} management_timeouts_{0}={2}",
            ch.label(),
            mgmt.refused[ch.index()],
            mgmt.timed_out[ch.index()]
        );
    }
    out.push('\n');
    out
}

/// The answer to `counters json`: the same values as [`counters_text`], grouped, with
/// each server's requests, replies, liveness and round trips.
pub fn counters_json(st: &crate::metrics::Static, snap: &Snapshot, mgmt: &ManagementCounters) -> Value {
    let c = &snap.counters;
    let group = |name: &str| -> Map<String, Value> {
        c.proxy.iter().filter(|(g, _, _)| *g == name).map(|(_, label, v)| (label.to_string(), v.into())).collect()
    };
    let dropped: Map<String, Value> =
        cdra_core::DropReason::ALL.iter().map(|r| (r.label().to_string(), c.total_dropped(*r).into())).collect();
    let bad_frames: Map<String, Value> = cdra_wire::ipv4::FrameError::ALL
        .iter()
        .zip(&snap.io.bad_frames)
        .map(|(e, v)| (e.label().to_string(), (*v).into()))
        .collect();
    let per_channel = |values: &[u64; crate::management::Channel::COUNT]| -> Map<String, Value> {
        crate::management::Channel::ALL.iter().map(|ch| (ch.label().to_string(), values[ch.index()].into())).collect()
    };
    let servers: Vec<Value> = st
        .servers
        .iter()
        .zip(&c.servers)
        .zip(&snap.server_up)
        .map(|((addr, sc), up)| {
            json!({
                "server": addr.to_string(),
                "up": up,
                "requests": sc.requests_sent,
                "replies": sc.replies_received,
                "round_trips": sc.round_trip.count(),
                "round_trip_seconds_sum": sc.round_trip.sum_ms as f64 / 1000.0,
            })
        })
        .collect();
    let io = &snap.io;
    let mut o = json!({
        "clients": snap.clients,
        "pending_clients": snap.pending_clients,
        "pending_probes": snap.pending_probes,
        "transactions": snap.transactions,
        "transactions_evicted": c.transactions_evicted,
        "event": group("event"),
        "removed": group("removed"),
        "discarded": group("discarded"),
        "dropped": dropped,
        "bad_frames": bad_frames,
        "servers": servers,
        "send_errors": io.send_errors,
        "oversized_datagrams": io.oversized,
        "receive_yields": io.receive_yields,
        "events_dropped": c.events_dropped,
        "event_write_errors": io.event_write_errors,
        "management_refused": per_channel(&mgmt.refused),
        "management_timeouts": per_channel(&mgmt.timed_out),
    });
    if let (Some(p), Some(map)) = (io.persistence, o.as_object_mut()) {
        map.insert("persistence_up".into(), p.up.into());
        map.insert("persistence_open_failures".into(), p.open_failures.into());
    }
    o
}

/// Client side (`cdra cache ...`): send one command and print the answer. Exit code 1 when
/// the answer is an error, 2 when the socket cannot be reached.
pub fn request(socket: &Path, command: &str) -> Result<(bool, String)> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot connect to the control socket {} (is cdra running with [control] socket set?)",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(format!("{command}\n").as_bytes())?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok((!answer.starts_with("error:"), answer))
}

#[cfg(test)]
mod tests {
    use cdra_core::config::Mode;
    use cdra_core::{Engine, Outbox, Timestamp};
    use cdra_sim::SimConfig;

    use super::*;

    #[test]
    fn pool_mode_lists_every_pool_entry_by_interface_and_number() {
        let mut engine = Engine::new(SimConfig::small(1, Mode::Pool).engine_config());
        let mut outbox = Outbox::new(64);
        engine.handle_timeout(Timestamp::from_millis(1), &mut outbox);
        let rows = pool_rows(&engine, Timestamp::from_millis(1));
        assert_eq!(rows.len(), 16, "8 entries on each of the two links");
        let names = ["ds0", "ds1"];
        let mut text = String::new();
        write_pool_row(&mut text, &names, &rows[0]);
        assert_eq!(text, "pool:ds0/0 ds0 0.0.0.0 acquiring lease_left=- server=-");
        let mut last = String::new();
        write_pool_row(&mut last, &names, &rows[15]);
        assert!(last.starts_with("pool:ds1/7 ds1 "), "{last}");
    }

    #[test]
    fn pool_entries_in_json_name_their_entry_and_client() {
        let mut engine = Engine::new(SimConfig::small(1, Mode::Pool).engine_config());
        let mut outbox = Outbox::new(64);
        engine.handle_timeout(Timestamp::from_millis(1), &mut outbox);
        let rows = pool_rows(&engine, Timestamp::from_millis(1));
        let v = pool_row_json(&["ds0", "ds1"], &rows[9]);
        assert_eq!(v["type"], "pool_entry");
        assert_eq!(v["entry"], "ds1/1");
        assert_eq!(v["interface"], "ds1");
        assert_eq!(v["state"], "acquiring");
        assert_eq!(v["client"], serde_json::Value::Null);
        assert_eq!(v["held_back"], false);
    }

    #[test]
    fn the_word_json_asks_for_json() {
        assert_eq!(parse("list"), Command::List { json: false });
        assert_eq!(parse("list json"), Command::List { json: true });
        assert_eq!(parse("counters json"), Command::Counters { json: true });
        assert!(matches!(parse("show 10.0.0.1 json"), Command::Show { json: true, .. }));
        assert!(matches!(parse("show 10.0.0.1"), Command::Show { json: false, .. }));
        for invalid in ["json", "show json", "flush all json", "flush 10.0.0.1 json", "list json json"] {
            assert_eq!(parse(invalid), Command::Invalid, "{invalid}");
        }
    }
}
