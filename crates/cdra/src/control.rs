//! The control socket: operators inspect and flush the client table at run time.
//!
//! A Unix stream socket (`[control] socket = PATH`, mode 0600). One command per
//! connection, one line: `list`, `show CLIENT|ADDRESS`, `flush CLIENT|ADDRESS|all`,
//! `counters`. CLIENT is a MAC address (`aa:bb:cc:dd:ee:ff`), `id:HEX` (a client
//! identifier) or `hw:HTYPE:HEX`. The answer is text, ending when the server closes the
//! connection; a first line starting with `error:` means the command failed.
//!
//! The data-plane loop serves the socket itself (no locks; the engine has one owner), so a
//! connection gets a short read deadline and cannot stall it.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use cdra_core::table::{ClientKey, ClientRecord};
use cdra_core::{Engine, Timestamp};

/// The listening side, owned by the data-plane loop.
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

    /// The descriptor to poll.
    pub fn fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.listener)
    }

    /// Serve every pending connection.
    pub fn serve(&self, engine: &mut Engine, now: Timestamp, extra_counters: &str) {
        while let Ok((stream, _)) = self.listener.accept() {
            if let Err(e) = serve_one(stream, engine, now, extra_counters) {
                tracing::debug!(error = %e, "control connection failed");
            }
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve_one(stream: UnixStream, engine: &mut Engine, now: Timestamp, extra_counters: &str) -> Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    stream.set_write_timeout(Some(Duration::from_millis(500)))?;
    let mut line = String::new();
    BufReader::new((&stream).take(512)).read_line(&mut line)?;
    let answer = execute(engine, now, line.trim(), extra_counters);
    (&stream).write_all(answer.as_bytes())?;
    Ok(())
}

fn age(now: Timestamp, then: Timestamp) -> String {
    format!("{}s", now.since(then).as_secs())
}

fn describe(engine: &Engine, now: Timestamp, r: &ClientRecord, detail: bool) -> String {
    let iface = engine.config().downstream.get(usize::from(r.downstream)).map(|d| d.name.as_str()).unwrap_or("?");
    let left = match r.reply {
        None => "-".to_string(),
        Some(_) if r.lease_secs == u32::MAX => "infinite".to_string(),
        Some(_) => format!("{}s", r.lease_left_secs(now)),
    };
    let server = r.server.map(|s| s.id.to_string()).unwrap_or_else(|| "-".into());
    let mut s = format!(
        "{} {} {} {} lease_left={} server={} last_contact={} last_update={}",
        r.key,
        iface,
        r.address,
        r.state.label(),
        left,
        server,
        age(now, r.last_contact),
        age(now, r.last_update)
    );
    if detail {
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
    s
}

/// Run one command against the engine; the text answer.
pub fn execute(engine: &mut Engine, now: Timestamp, command: &str, extra_counters: &str) -> String {
    let mut words = command.split_whitespace();
    let verb = words.next().unwrap_or("");
    let arg = words.next();
    let find = |engine: &Engine, what: &str| -> Option<ClientKey> {
        if let Ok(ip) = what.parse::<Ipv4Addr>() {
            let slot = engine.table().find_address(ip)?;
            return engine.table().get(slot).map(|r| r.key.clone());
        }
        let key = ClientKey::parse(what)?;
        if engine.table().find(&key).is_some() {
            return Some(key);
        }
        // A bare MAC address also finds a client keyed by a client identifier (udhcpc's
        // 01+MAC, dhcpcd's DUID): by the chaddr of its cached reply.
        let mac: Vec<u8> = what.split([':', '-']).filter_map(|p| u8::from_str_radix(p, 16).ok()).collect();
        if mac.len() != 6 || what.contains("id:") || what.contains("hw:") {
            return Some(key);
        }
        engine
            .table()
            .iter()
            .find(|(_, r)| r.reply.as_ref().is_some_and(|c| c.chaddr() == &mac[..]))
            .map(|(_, r)| r.key.clone())
            .or(Some(key))
    };
    match (verb, arg) {
        ("list", None) => {
            let mut out = String::new();
            let mut n = 0;
            for (_, r) in engine.table().iter() {
                n += 1;
                let _ = writeln!(out, "{}", describe(engine, now, r, false));
            }
            let _ = writeln!(out, "# {n} client(s)");
            out
        }
        ("show", Some(what)) => {
            match find(engine, what).and_then(|k| engine.table().find(&k)).and_then(|s| engine.table().get(s)) {
                Some(r) => format!("{}\n", describe(engine, now, r, true)),
                None => format!("error: no client {what}\n"),
            }
        }
        ("flush", Some("all")) => format!("flushed {} client(s)\n", engine.flush_all()),
        ("flush", Some(what)) => match find(engine, what) {
            Some(key) if engine.flush_client(&key) => format!("flushed {key}\n"),
            _ => format!("error: no client {what}\n"),
        },
        ("counters", None) => {
            let mut out = format!("clients={}\npending_probes={}\n", engine.table().len(), engine.pending_probes());
            for (group, label, v) in engine.counters().proxy.iter() {
                out.push_str(&format!("{group}.{label}={v}\n"));
            }
            format!("{out}{extra_counters}\n")
        }
        _ => "error: commands are: list | show CLIENT|ADDRESS | flush CLIENT|ADDRESS|all | counters\n".into(),
    }
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
