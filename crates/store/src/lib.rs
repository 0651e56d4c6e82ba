//! # cdra-store: crash-safe persistence of the client table
//!
//! Paper 3.4: "On startup, the CDRA can load the database containing DHCP client information
//! and continue to provide service to those clients without having to interact with the DHCP
//! server." Paper 5.4: "the entire client DB is dumped to disk" every 70 s, or "after every
//! packet". This crate does both, off the packet path.
//!
//! What it guarantees:
//!
//! - **The in-memory table is the truth.** The data plane hands opaque `(key, value)` bytes
//!   (`ClientKey::as_bytes`, `cdra_core::persist::encode_record`) to a [`Writer`]; every
//!   [`Writer`] method is a non-blocking `try_send` into a bounded queue and returns in
//!   microseconds. A full queue loses the change, says so (`false`) and makes
//!   [`Writer::dump_due`] true so the caller writes the whole table instead.
//! - **Group commit.** A writer thread coalesces changes per key (last write wins) and
//!   commits at most once per [`StoreConfig::commit_interval`], only when something changed,
//!   each commit an fsync'd redb transaction ([`redb::Durability::Immediate`]).
//! - **What a crash loses:** at most the changes of one commit window (the interval plus the
//!   commit in flight). A commit is atomic: after a crash the file holds exactly the last
//!   completed commit. [`WriterStats::ops_committed`] tells which prefix of the accepted
//!   operations is durable.
//! - **A damaged file never stops cdra.** [`open`] checks every page checksum of the file
//!   (redb's integrity check), and a file that fails it, is truncated, empty, not a redb file
//!   or not a cdra store is renamed to `<path>.corrupt-<unix time>` and replaced by an empty
//!   store, with one warning in [`OpenReport::warning`]. A store whose schema (or record
//!   format) is newer than this build is refused and left in place; an older one is migrated
//!   in one transaction.
//! - **One process at a time.** redb locks the file (open file description lock): a second
//!   [`open`] of the same path, from this or another process, fails with
//!   [`StoreError::Locked`] and touches nothing.
//!
//! The table can also live in Redis ([`connect_redis`], [`RedisStore`]), shared by a pair of
//! relays: the same writer thread and group commit, one `MULTI`/`EXEC` per commit (see the
//! `redis_store` module).
//!
//! Schema (version [`SCHEMA_VERSION`]): table `cdra_meta` (`&str` -> bytes) holds
//! `schema_version` (u32 LE), `record_format` (u32 LE: the newest record format written
//! into the store) and `created_by` (text); table `cdra_records` maps key bytes to value
//! bytes.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod open;
mod redis_lease;
mod redis_store;
mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use redb::ReadableDatabase;

pub use error::StoreError;
pub use open::open;
pub use redis_lease::{lease_key, Arbiter, Attempt, Lease, LeaseChange, LeaseClient, LeaseConfig, LeaseRole};
pub use redis_store::{connect as connect_redis, RedisConfig, RedisStore};
pub use writer::{StatsHandle, Writer, WriterStats};

/// A stored record: `(key, value)`, the key `ClientKey::as_bytes()`, the value
/// `cdra_core::persist::encode_record(..)`.
pub type Pair = (Vec<u8>, Vec<u8>);

/// The schema this build writes. History: 0 = a bare `clients` table, no metadata (the
/// prototype); 1 = `cdra_meta` + `cdra_records`.
pub const SCHEMA_VERSION: u32 = 1;

/// Where the shared reply templates' keys start (`cdra_core::persist::TEMPLATE_KEY_PREFIX`).
pub(crate) const TEMPLATE_KEYS: &[u8] = &[cdra_core::persist::TEMPLATE_KEY_PREFIX];

/// The record format this build writes (`cdra_core::persist::RECORD_FORMAT`).
pub const RECORD_FORMAT: u32 = cdra_core::persist::RECORD_FORMAT as u32;

/// How the writer thread writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Changes (upserts, deletes) are coalesced and committed every `commit_interval`; the
    /// first change after a quiet period is committed at once.
    GroupCommit,
    /// Paper 5.4: the whole table every `interval` (70 s by default). The data plane calls
    /// [`Writer::replace_all`] when [`Writer::dump_due`] says so; the writer commits at most
    /// once per `interval`, and any upserts or deletes sent meanwhile go with that commit.
    PeriodicDump {
        /// Time between two dumps.
        interval: Duration,
    },
}

impl WriteMode {
    /// The paper's default dump interval (5.4: "by default every 70 seconds").
    pub const DEFAULT_DUMP_INTERVAL: Duration = Duration::from_secs(70);

    /// [`WriteMode::PeriodicDump`] every 70 s.
    pub fn periodic_dump() -> Self {
        WriteMode::PeriodicDump { interval: Self::DEFAULT_DUMP_INTERVAL }
    }
}

/// Where and how to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The redb file. Its directory must exist; the file is created if missing.
    pub path: PathBuf,
    /// Shortest time between two commits in [`WriteMode::GroupCommit`] (default 100 ms).
    pub commit_interval: Duration,
    /// Group commit (default) or the paper's periodic dump.
    pub mode: WriteMode,
    /// Operations the queue to the writer thread holds (default 65536); beyond it a change
    /// is dropped and counted.
    pub queue_capacity: usize,
}

impl StoreConfig {
    /// Default commit interval.
    pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_millis(100);
    /// Default queue capacity.
    pub const DEFAULT_QUEUE_CAPACITY: usize = 65536;

    /// Defaults: group commit every 100 ms, a queue of 65536.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StoreConfig {
            path: path.into(),
            commit_interval: Self::DEFAULT_COMMIT_INTERVAL,
            mode: WriteMode::GroupCommit,
            queue_capacity: Self::DEFAULT_QUEUE_CAPACITY,
        }
    }

    /// Time between two commits in the configured mode.
    pub(crate) fn effective_interval(&self) -> Duration {
        match self.mode {
            WriteMode::GroupCommit => self.commit_interval,
            WriteMode::PeriodicDump { interval } => interval,
        }
    }
}

/// What [`open`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Records in the store.
    pub records: usize,
    /// The damaged file was renamed to this path (the store is then empty).
    pub moved_aside: Option<PathBuf>,
    /// The store was migrated from this schema version.
    pub migrated_from: Option<u32>,
    /// One line for the operator's log (a file moved aside), if anything needs saying.
    pub warning: Option<String>,
}

/// An open store, before its writer thread starts.
pub struct Store {
    db: redb::Database,
    config: StoreConfig,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Store {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.config.path
    }

    /// Every `(key, value)` pair, in key order, for start-up.
    pub fn load_all(&self) -> Result<Vec<Pair>, StoreError> {
        let mut out = Vec::new();
        self.visit(|k, v| out.push((k.to_vec(), v.to_vec())))?;
        Ok(out)
    }

    /// Call `f` with every record's `(key, value)` pair, in key order, without copying them:
    /// the cheaper way to load when the caller decodes each value at once. The shared reply
    /// templates ([`Store::visit_templates`]) are not records.
    pub fn visit(&self, f: impl FnMut(&[u8], &[u8])) -> Result<usize, StoreError> {
        self.visit_range(..TEMPLATE_KEYS, f)
    }

    /// Call `f` with every shared reply template's `(key, value)` (record format 3: keys
    /// `cdra_core::persist::template_key`, after every record's key), to be read before the
    /// records that name them.
    pub fn visit_templates(&self, f: impl FnMut(&[u8], &[u8])) -> Result<usize, StoreError> {
        self.visit_range(TEMPLATE_KEYS.., f)
    }

    fn visit_range<'a>(
        &self,
        range: impl std::ops::RangeBounds<&'a [u8]>,
        mut f: impl FnMut(&[u8], &[u8]),
    ) -> Result<usize, StoreError> {
        let err = |e: redb::Error| StoreError::db(&self.config.path, "cannot read the records", e);
        let txn = self.db.begin_read().map_err(|e| err(e.into()))?;
        let table = txn.open_table(open::RECORDS).map_err(|e| err(e.into()))?;
        let mut n = 0;
        for row in table.range::<&[u8]>(range).map_err(|e| err(e.into()))? {
            let (k, v) = row.map_err(|e| err(e.into()))?;
            f(k.value(), v.value());
            n += 1;
        }
        Ok(n)
    }

    /// Records in the store.
    pub fn len(&self) -> Result<usize, StoreError> {
        open::count(&self.db).map_err(|e| StoreError::db(&self.config.path, "cannot count the records", e))
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        self.len().map(|n| n == 0)
    }

    /// Start the writer thread (named `cdra-store`); the store moves into it.
    pub fn start_writer(self) -> Writer {
        let pacing = writer::Pacing {
            mode: self.config.mode,
            interval: self.config.effective_interval(),
            queue_capacity: self.config.queue_capacity,
        };
        let path = self.config.path.clone();
        writer::start(writer::RedbSink { db: Some(self.db), path: path.clone() }, path, pacing)
    }
}
