//! The control socket: operators inspect and flush the client table at run time.
//!
//! A Unix stream socket (`[control] socket = PATH`, mode 0600). One command per
//! connection, one line: `list`, `show CLIENT|ADDRESS`, `flush CLIENT|ADDRESS|all`,
//! `counters`. CLIENT is a MAC address (`aa:bb:cc:dd:ee:ff`), `id:HEX` (a client
//! identifier) or `hw:HTYPE:HEX`. The answer is text, ending when the server closes the
//! connection; a first line starting with `error:` means the command failed.
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
use cdra_core::table::{ClientKey, ClientRecord, Slot};
use cdra_core::{Engine, Timestamp};

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
pub const USAGE: &str = "error: commands are: list | show CLIENT|ADDRESS | flush CLIENT|ADDRESS|all | counters\n";

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
    /// Every record, one line each.
    List,
    /// One record in detail (`what` is the text as written, for messages).
    Show {
        /// The client.
        target: Target,
        /// As written.
        what: String,
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
    Counters,
    /// Not a command: answered with [`USAGE`].
    Invalid,
}

/// Parse one command line (no engine needed).
pub fn parse(line: &str) -> Command {
    let mut words = line.split_whitespace();
    let verb = words.next().unwrap_or("");
    let arg = words.next();
    match (verb, arg) {
        ("list", None) => Command::List,
        ("counters", None) => Command::Counters,
        ("flush", Some("all")) => Command::FlushAll,
        ("show", Some(what)) => Command::Show { target: target(what), what: what.to_string() },
        ("flush", Some(what)) => Command::Flush { target: target(what), what: what.to_string() },
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

/// Loop side of `show`: one record described in detail, or `None`.
pub fn show(engine: &Engine, now: Timestamp, lookup: &Lookup) -> Option<String> {
    let r = engine.table().get(slot_of(engine, lookup)?)?;
    let names: Vec<&str> = engine.config().downstream.iter().map(|d| d.name.as_str()).collect();
    Some(describe(&names, &Row::of(r, now), Some(r)))
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
        .find(|r| r.reply.as_ref().is_some_and(|c| c.chaddr() == &mac[..]))
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
            downstream: r.downstream,
            address: r.address,
            state: r.state.label(),
            left: match r.reply {
                None => LeaseLeft::Unknown,
                Some(_) if r.lease_secs == u32::MAX => LeaseLeft::Infinite,
                Some(_) => LeaseLeft::Secs(r.lease_left_secs(now)),
            },
            server: r.server.map(|s| s.id),
            last_contact_secs: now.since(r.last_contact).as_secs(),
            last_update_secs: now.since(r.last_update).as_secs(),
        }
    }
}

/// One `list` line (or the first line of `show`), then with `detail` the second line of
/// `show`.
fn describe<S: AsRef<str>>(names: &[S], row: &Row, detail: Option<&ClientRecord>) -> String {
    let mut s = String::with_capacity(128);
    write_row(&mut s, names, row);
    if let Some(r) = detail {
        let _ = write!(
            s,
            "\n  kind={:?} lease={}s t1={}s t2={}s cached_reply_bytes={} params={:?}",
            r.kind,
            r.lease_secs,
            r.t1_secs,
            r.t2_secs,
            r.reply.as_ref().map(|b| b.stored_len()).unwrap_or(0),
            r.param_list.codes().collect::<Vec<u8>>()
        );
    }
    s.push('\n');
    s
}

/// Append one `list` line (without the line feed); `names` are the downstream interfaces.
pub fn write_row<S: AsRef<str>>(out: &mut String, names: &[S], row: &Row) {
    let iface = names.get(usize::from(row.downstream)).map(AsRef::as_ref).unwrap_or("?");
    let _ = write!(out, "{} {iface} {} {} lease_left=", row.key, row.address, row.state);
    let _ = match row.left {
        LeaseLeft::Unknown => write!(out, "-"),
        LeaseLeft::Infinite => write!(out, "infinite"),
        LeaseLeft::Secs(n) => write!(out, "{n}s"),
    };
    let _ = match row.server {
        Some(id) => write!(out, " server={id}"),
        None => write!(out, " server=-"),
    };
    let _ = write!(out, " last_contact={}s last_update={}s", row.last_contact_secs, row.last_update_secs);
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
