//! The client table in Redis (or Valkey): one table shared by a pair of relays (issue 15
//! item 3), in a store the operator already makes highly available (Sentinel, a managed
//! service). The embedded redb file stays the default.
//!
//! Layout, under a configurable prefix (`[store] key_prefix`, default `cdra`), so that one
//! Redis can hold several pairs' tables:
//!
//! - `<prefix>:records`, a hash: field = key bytes (`ClientKey::as_bytes`), value = record
//!   bytes (`encode_record`), exactly what redb's `cdra_records` holds;
//! - `<prefix>:meta`, a hash: `schema_version`, `record_format` (decimal text) and
//!   `created_by`, written with every commit.
//!
//! The writer is the same thread as for redb ([`crate::Writer`]): changes coalesced per key,
//! at most one commit per `commit_interval`, each commit one `MULTI`/`EXEC` (HSET/HDEL on
//! the records, HSET on the metadata), so a reader sees either all of a commit or none of
//! it. A full dump is `DEL` then `HSET` of every record in the same transaction. A failed
//! commit keeps its changes; the connection is dropped and made again on the next attempt
//! (every `max(commit_interval, 1 s)`), each attempt bounded by `timeout`.
//!
//! A Redis that comes back empty after a reconnect (restarted without persistence) is
//! noticed: the metadata is written with every commit, so its absence after a reconnect
//! means what was committed is gone; [`crate::Writer::dump_due`] then asks the data plane
//! for the whole table ([`crate::WriterStats::store_lost`] counts these). Only after a
//! reconnect: a Redis flushed under a connection that stays up (`FLUSHALL`) is not
//! noticed, and fills again only with the records that change.
//!
//! Loading ([`RedisStore::load_all`]) is one `HGETALL`: an atomic snapshot of the table.
//!
//! Fenced by the pair's lease ([`RedisStore::fenced`], `[ha]` without an address): each
//! commit first `WATCH`es `<prefix>:active` and reads it; a commit runs only if the lease
//! still names this relay, and `EXEC` is refused by Redis if the key changed in between.
//! A relay that lost the lease (or never held it: `alone`) writes nothing, however late
//! its commit comes; the commit fails (counted, retried) until it holds the lease again.

use std::path::PathBuf;
use std::time::Duration;

use redis::{Connection, Value};

use crate::writer::{Done, Pacing, Pending, Sink};
use crate::{Pair, StoreError, WriteMode, Writer, RECORD_FORMAT, SCHEMA_VERSION};

const FIELD_SCHEMA: &str = "schema_version";
const FIELD_RECORD_FORMAT: &str = "record_format";
const FIELD_CREATED_BY: &str = "created_by";
/// Fields per HSET in a dump (one command per chunk keeps each reply and request moderate).
const DUMP_CHUNK: usize = 1000;

/// Where and how to keep the table in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port/db` (or `valkey://`, `unix://`, as the `redis`
    /// crate reads them; TLS, `rediss://`, is not built in and refused by
    /// [`RedisConfig::check_url`]).
    pub url: String,
    /// Names the two keys: `<prefix>:records` and `<prefix>:meta`.
    pub key_prefix: String,
    /// Longest wait to connect, and for any one reply (default 2 s).
    pub timeout: Duration,
    /// Shortest time between two commits in [`WriteMode::GroupCommit`].
    pub commit_interval: Duration,
    /// Group commit or the paper's periodic dump.
    pub mode: WriteMode,
    /// Operations the queue to the writer thread holds.
    pub queue_capacity: usize,
}

impl RedisConfig {
    /// Default key prefix.
    pub const DEFAULT_KEY_PREFIX: &'static str = "cdra";
    /// Default connect and reply timeout.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// Defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            key_prefix: Self::DEFAULT_KEY_PREFIX.into(),
            timeout: Self::DEFAULT_TIMEOUT,
            commit_interval: crate::StoreConfig::DEFAULT_COMMIT_INTERVAL,
            mode: WriteMode::GroupCommit,
            queue_capacity: crate::StoreConfig::DEFAULT_QUEUE_CAPACITY,
        }
    }

    /// Whether the URL can be used (it is not connected to).
    pub fn check_url(&self) -> Result<(), String> {
        redis::Client::open(self.url.as_str())
            .map(drop)
            .map_err(|e| format!("{:?} is not a Redis URL: {e}", self.display_url()))
    }

    /// The hash of records.
    pub fn records_key(&self) -> String {
        format!("{}:records", self.key_prefix)
    }

    /// The hash of metadata.
    pub fn meta_key(&self) -> String {
        format!("{}:meta", self.key_prefix)
    }

    /// The URL without a password, for logs and errors.
    pub fn display_url(&self) -> String {
        match (self.url.split_once("://"), self.url.rfind('@')) {
            (Some((scheme, _)), Some(at)) => format!("{scheme}://***@{}", &self.url[at + 1..]),
            _ => self.url.clone(),
        }
    }

    fn error(&self, doing: &'static str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Db { path: PathBuf::from(self.display_url()), doing, cause: e.to_string() }
    }

    fn effective_interval(&self) -> Duration {
        match self.mode {
            WriteMode::GroupCommit => self.commit_interval,
            WriteMode::PeriodicDump { interval } => interval,
        }
    }
}

/// A connection to the Redis holding the table, its schema checked.
pub struct RedisStore {
    config: RedisConfig,
    conn: Connection,
    /// The metadata was there: something was committed before.
    existing: bool,
    /// Commit only while the lease names this node id.
    fence: Option<String>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("url", &self.config.display_url()).finish_non_exhaustive()
    }
}

fn connect_raw(config: &RedisConfig) -> Result<Connection, StoreError> {
    let client = redis::Client::open(config.url.as_str()).map_err(|e| config.error("bad URL", e))?;
    let conn = client.get_connection_with_timeout(config.timeout).map_err(|e| config.error("cannot connect", e))?;
    conn.set_read_timeout(Some(config.timeout)).map_err(|e| config.error("cannot set the reply timeout", e))?;
    conn.set_write_timeout(Some(config.timeout)).map_err(|e| config.error("cannot set the send timeout", e))?;
    Ok(conn)
}

/// The metadata hash: `None` when it does not exist.
fn read_meta(config: &RedisConfig, conn: &mut Connection) -> Result<Option<(u32, u32)>, StoreError> {
    let fields: Vec<Option<String>> = redis::cmd("HMGET")
        .arg(config.meta_key())
        .arg(FIELD_SCHEMA)
        .arg(FIELD_RECORD_FORMAT)
        .query(conn)
        .map_err(|e| config.error("cannot read the metadata", e))?;
    let number = |i: usize| -> Result<Option<u32>, StoreError> {
        match fields.get(i).cloned().flatten() {
            None => Ok(None),
            Some(t) => t.parse().map(Some).map_err(|_| config.error("bad metadata", format!("{t:?} is not a number"))),
        }
    };
    match (number(0)?, number(1)?) {
        (None, None) => Ok(None),
        (schema, format) => Ok(Some((schema.unwrap_or(0), format.unwrap_or(0)))),
    }
}

/// Connect and check the schema: a table written by a newer cdra is refused (and left
/// alone); a missing one is an empty table.
pub fn connect(config: &RedisConfig) -> Result<RedisStore, StoreError> {
    let mut conn = connect_raw(config)?;
    let path = PathBuf::from(config.display_url());
    let meta = read_meta(config, &mut conn)?;
    if let Some((schema, format)) = meta {
        if schema > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema { path, found: schema, supported: SCHEMA_VERSION });
        }
        if format > RECORD_FORMAT {
            return Err(StoreError::NewerRecordFormat { path, found: format, supported: RECORD_FORMAT });
        }
    }
    Ok(RedisStore { config: config.clone(), conn, existing: meta.is_some(), fence: None })
}

/// A reply's bytes (a bulk string, or a simple string).
fn bytes_of(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

impl RedisStore {
    /// Every `(key, value)` pair (one `HGETALL`: an atomic snapshot), in no order.
    pub fn load_all(&mut self) -> Result<Vec<Pair>, StoreError> {
        let reply: Value = redis::cmd("HGETALL")
            .arg(self.config.records_key())
            .query(&mut self.conn)
            .map_err(|e| self.config.error("cannot read the records", e))?;
        let mut out = Vec::new();
        match reply {
            Value::Array(items) => {
                out.reserve(items.len() / 2);
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    if let (Some(k), Some(v)) = (bytes_of(k), bytes_of(v)) {
                        out.push((k, v));
                    }
                }
            }
            Value::Map(pairs) => {
                out.reserve(pairs.len());
                out.extend(pairs.into_iter().filter_map(|(k, v)| Some((bytes_of(k)?, bytes_of(v)?))));
            }
            Value::Nil => {}
            other => return Err(self.config.error("cannot read the records", format!("unexpected reply {other:?}"))),
        }
        Ok(out)
    }

    /// Records in the table (`HLEN`).
    pub fn len(&mut self) -> Result<usize, StoreError> {
        redis::cmd("HLEN")
            .arg(self.config.records_key())
            .query(&mut self.conn)
            .map_err(|e| self.config.error("cannot count the records", e))
    }

    /// Whether the table holds no record.
    pub fn is_empty(&mut self) -> Result<bool, StoreError> {
        self.len().map(|n| n == 0)
    }

    /// Commit only while the pair's lease (`<prefix>:active`, [`crate::Lease`]) names
    /// `node_id`: checked in each commit's transaction (`WATCH`, see the module).
    pub fn fenced(mut self, node_id: String) -> Self {
        self.fence = Some(node_id);
        self
    }

    /// Start the writer thread (named `cdra-store`); the connection moves into it.
    pub fn start_writer(self) -> Writer {
        let pacing = Pacing {
            mode: self.config.mode,
            interval: self.config.effective_interval(),
            queue_capacity: self.config.queue_capacity,
        };
        let path = PathBuf::from(self.config.display_url());
        let fence = self.fence.map(|id| (crate::redis_lease::lease_key(&self.config), id));
        let sink = RedisSink {
            committed_before: self.existing,
            conn: Some(self.conn),
            config: self.config,
            lost: false,
            fence,
        };
        crate::writer::start(sink, path, pacing)
    }
}

/// The writer thread's end of Redis.
struct RedisSink {
    config: RedisConfig,
    /// `None` after a failure: the next commit connects again.
    conn: Option<Connection>,
    /// Something was committed to this table (by us, or found there when we connected).
    committed_before: bool,
    /// Found the table gone after a reconnect.
    lost: bool,
    /// `(lease key, node id)`: commit only while the lease names this node.
    fence: Option<(String, String)>,
}

impl RedisSink {
    fn reconnect(&mut self) -> Result<(), StoreError> {
        let mut conn = connect_raw(&self.config)?;
        let meta = read_meta(&self.config, &mut conn)?;
        if meta.is_none() && self.committed_before {
            self.lost = true;
        }
        self.conn = Some(conn);
        Ok(())
    }

    /// One `MULTI`/`EXEC`: the dump (if any), the changes, the metadata. Returns the number
    /// of fields the HDELs removed.
    fn transaction(&mut self, p: &Pending) -> Result<u64, redis::RedisError> {
        let records = self.config.records_key();
        let mut pipe = redis::pipe();
        pipe.atomic();
        if let Some(all) = &p.replace {
            pipe.del(&records).ignore();
            for chunk in all.chunks(DUMP_CHUNK) {
                let fields: Vec<(&[u8], &[u8])> = chunk.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
                pipe.hset_multiple(&records, &fields).ignore();
            }
        }
        let mut deletes = 0usize;
        for (k, slot) in &p.changes {
            match slot {
                Some((buf, key_len)) => {
                    pipe.hset(&records, k.as_slice(), buf.get(*key_len..).unwrap_or(&[])).ignore();
                }
                None => {
                    pipe.hdel(&records, k.as_slice());
                    deletes += 1;
                }
            }
        }
        let created_by = concat!("cdra-store ", env!("CARGO_PKG_VERSION"));
        pipe.hset_multiple(
            self.config.meta_key(),
            &[
                (FIELD_SCHEMA, SCHEMA_VERSION.to_string()),
                (FIELD_RECORD_FORMAT, RECORD_FORMAT.to_string()),
                (FIELD_CREATED_BY, created_by.to_string()),
            ],
        )
        .ignore();
        let Some(conn) = self.conn.as_mut() else {
            return Err(redis::RedisError::from((redis::ErrorKind::IoError, "not connected")));
        };
        if let Some((key, id)) = &self.fence {
            // The transaction below is refused (EXEC answers nil) if the key changes after
            // this WATCH.
            redis::cmd("WATCH").arg(key).exec(conn)?;
            let holder: Option<String> = redis::cmd("GET").arg(key).query(conn)?;
            if holder.as_deref() != Some(id.as_str()) {
                redis::cmd("UNWATCH").exec(conn)?;
                return Err(not_the_holder(holder));
            }
        }
        let Some(removed): Option<Vec<u64>> = pipe.query(conn)? else {
            return Err(not_the_holder(None));
        };
        debug_assert_eq!(removed.len(), deletes);
        Ok(removed.iter().sum())
    }
}

fn not_the_holder(holder: Option<String>) -> redis::RedisError {
    let holder = holder.unwrap_or_else(|| "nobody".into());
    redis::RedisError::from((
        redis::ErrorKind::ExecAbortError,
        "not written: this relay does not hold the pair's lease",
        format!("held by {holder}"),
    ))
}

impl Sink for RedisSink {
    fn commit(&mut self, pending: &mut Pending) -> Result<Done, StoreError> {
        if self.conn.is_none() {
            self.reconnect()?;
        }
        match self.transaction(pending) {
            Ok(deleted) => {
                self.committed_before = true;
                let dumped = pending.replace.as_ref().map_or(0, |all| all.len() as u64);
                let upserts = pending.changes.values().filter(|s| s.is_some()).count() as u64;
                Ok(Done { written: dumped + upserts, deleted, dump: pending.replace.is_some() })
            }
            Err(e) => {
                self.conn = None;
                Err(self.config.error("commit failed", e))
            }
        }
    }

    fn lost_earlier_commits(&mut self) -> bool {
        std::mem::take(&mut self.lost)
    }
}
