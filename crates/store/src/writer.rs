//! The writer thread and its non-blocking front, [`Writer`].
//!
//! The data plane only ever calls `try_send` on a bounded channel (`std::sync::mpsc::
//! sync_channel`): no lock, no I/O, no waiting. The thread folds what it receives into a
//! per-key map (last write wins; a full dump replaces everything before it) and commits the
//! map in one fsync'd redb transaction when the interval since the previous commit has run
//! out. The first change after a quiet period is committed at once, so sparse traffic is
//! written through and a burst is batched. Within a window the thread sleeps (`park`, woken
//! early only by shutdown) instead of waiting on the channel, so a send wakes nobody: only
//! the first change after an idle period costs the data plane a futex wake. A failed commit keeps its changes and is retried
//! (the database reopened first) after `max(interval, 1 s)`.
//!
//! The channel is FIFO, so "the first `ops_committed` accepted operations are durable":
//! [`WriterStats::ops_committed`] is published after each commit returns.
//!
//! Where a commit goes is a [`Sink`]: the redb file ([`RedbSink`]) or a Redis hash
//! (`crate::redis_store`). The thread paces, folds and retries; the sink writes one
//! batch atomically and recovers (reopens, reconnects) after a failure of its own.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, ReadableTable};

use crate::open::RECORDS;
use crate::{StoreError, WriteMode};

/// Shortest wait before retrying a failed commit.
const MIN_RETRY: Duration = Duration::from_secs(1);
/// Longest the queue is left undrained while a window runs (a long dump interval must not
/// let the queue fill up).
const DRAIN_EVERY: Duration = Duration::from_millis(50);

/// What the writer has done. Counters only grow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed (each one fsync'd).
    pub commits: u64,
    /// Records written (upserts after coalescing, plus the records of each dump that were
    /// new or different from what was stored).
    pub records_written: u64,
    /// Records deleted (that existed), including those a dump no longer held.
    pub records_deleted: u64,
    /// Full dumps ([`Writer::replace_all`]) committed.
    pub dumps: u64,
    /// Operations refused because the queue was full (each lost; a dump is then due).
    pub queue_drops: u64,
    /// Operations accepted into the queue.
    pub ops_submitted: u64,
    /// Of the accepted operations, how many (in order) are durable on disk.
    pub ops_committed: u64,
    /// Duration of the last successful commit.
    pub last_commit_duration: Duration,
    /// Longest successful commit.
    pub max_commit_duration: Duration,
    /// Failed commits (and failed reopens after one).
    pub errors: u64,
    /// The last failure, one line.
    pub last_error: Option<String>,
    /// Times the store was found to have lost what had been committed to it (a Redis that
    /// came back empty); each one makes [`Writer::dump_due`] true.
    pub store_lost: u64,
}

#[derive(Default)]
struct Shared {
    commits: AtomicU64,
    records_written: AtomicU64,
    records_deleted: AtomicU64,
    dumps: AtomicU64,
    queue_drops: AtomicU64,
    ops_submitted: AtomicU64,
    ops_committed: AtomicU64,
    last_commit_nanos: AtomicU64,
    max_commit_nanos: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
    store_lost: AtomicU64,
    /// The sink found the store emptied: the data plane should write the whole table.
    dump_wanted: AtomicBool,
    /// [`Writer::abandon`]: commit nothing more.
    abandoned: AtomicBool,
}

impl Shared {
    fn snapshot(&self) -> WriterStats {
        let r = Ordering::Acquire;
        WriterStats {
            commits: self.commits.load(r),
            records_written: self.records_written.load(r),
            records_deleted: self.records_deleted.load(r),
            dumps: self.dumps.load(r),
            queue_drops: self.queue_drops.load(r),
            ops_submitted: self.ops_submitted.load(r),
            ops_committed: self.ops_committed.load(r),
            last_commit_duration: Duration::from_nanos(self.last_commit_nanos.load(r)),
            max_commit_duration: Duration::from_nanos(self.max_commit_nanos.load(r)),
            errors: self.errors.load(r),
            last_error: self.last_error.lock().map(|e| e.clone()).unwrap_or_default(),
            store_lost: self.store_lost.load(r),
        }
    }

    fn fail(&self, what: String) {
        self.errors.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(what);
        }
    }
}

/// A cloneable, thread-safe view of the writer's statistics (for a metrics thread).
#[derive(Clone)]
pub struct StatsHandle(Arc<Shared>);

impl StatsHandle {
    /// The statistics now.
    pub fn get(&self) -> WriterStats {
        self.0.snapshot()
    }
}

impl std::fmt::Debug for StatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

enum Msg {
    /// Key and value in one allocation: `buf[..key_len]` is the key.
    Upsert {
        buf: Box<[u8]>,
        key_len: usize,
    },
    Delete(Box<[u8]>),
    ReplaceAll(Vec<crate::Pair>),
}

/// The data plane's handle on the writer thread. Every method returns at once: none takes
/// a lock held across I/O, none waits for the disk.
pub struct Writer {
    tx: Option<SyncSender<Msg>>,
    thread: Option<JoinHandle<Result<(), StoreError>>>,
    shared: Arc<Shared>,
    path: PathBuf,
    mode: WriteMode,
    epoch: Instant,
    /// When the last dump was accepted, nanoseconds after `epoch`.
    last_dump_nanos: AtomicU64,
    /// A change was dropped since the last accepted dump.
    dropped: AtomicBool,
    spawn_error: Option<String>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("path", &self.path).field("mode", &self.mode).finish_non_exhaustive()
    }
}

/// Where the writer thread commits: one atomic batch per call.
pub(crate) trait Sink: Send + 'static {
    /// Write `pending` in one atomic transaction. On an error the thread keeps `pending`
    /// and calls again after `max(interval, 1 s)`; the sink recovers first (reopens the file,
    /// reconnects) as it needs to.
    fn commit(&mut self, pending: &mut Pending) -> Result<Done, StoreError>;

    /// Whether the store was found to have lost what this sink committed to it earlier (a
    /// Redis restarted without its data): asked after each commit; the whole table is then
    /// written again.
    fn lost_earlier_commits(&mut self) -> bool {
        false
    }
}

/// The redb file as a [`Sink`].
pub(crate) struct RedbSink {
    /// `None` after a failed commit: redb discards its allocator state then, so the next
    /// commit reopens the file first.
    pub(crate) db: Option<Database>,
    pub(crate) path: PathBuf,
}

impl Sink for RedbSink {
    fn commit(&mut self, pending: &mut Pending) -> Result<Done, StoreError> {
        if self.db.is_none() {
            let db = crate::open::reopen(&self.path)
                .map_err(|e| StoreError::db(&self.path, "cannot reopen after a failed commit", e))?;
            self.db = Some(db);
        }
        let Some(db) = self.db.as_ref() else {
            return Err(StoreError::db(&self.path, "commit failed", "not open"));
        };
        write_batch(db, pending).map_err(|e| {
            self.db = None;
            StoreError::db(&self.path, "commit failed", e)
        })
    }
}

/// How the writer thread paces and queues, whatever its sink.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pacing {
    pub(crate) mode: WriteMode,
    pub(crate) interval: Duration,
    pub(crate) queue_capacity: usize,
}

/// Start the writer thread on `sink`; `path` names the store in errors (the file, or the
/// Redis URL without its password).
pub(crate) fn start(sink: impl Sink, path: PathBuf, pacing: Pacing) -> Writer {
    let (tx, rx) = sync_channel(pacing.queue_capacity.max(1));
    let shared = Arc::new(Shared::default());
    let mode = pacing.mode;
    let thread_shared = Arc::clone(&shared);
    let spawned = std::thread::Builder::new()
        .name("cdra-store".into())
        .spawn(move || run(Box::new(sink), pacing.interval, rx, thread_shared));
    let (tx, thread, spawn_error) = match spawned {
        Ok(h) => (Some(tx), Some(h), None),
        Err(e) => {
            let what = format!("cannot start the writer thread: {e}");
            shared.fail(what.clone());
            (None, None, Some(what))
        }
    };
    Writer {
        tx,
        thread,
        shared,
        path,
        mode,
        epoch: Instant::now(),
        last_dump_nanos: AtomicU64::new(0),
        dropped: AtomicBool::new(false),
        spawn_error,
    }
}

impl Writer {
    fn send(&self, msg: Msg) -> bool {
        let sent = match &self.tx {
            Some(tx) => match tx.try_send(msg) {
                Ok(()) => true,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
            },
            None => false,
        };
        if sent {
            self.shared.ops_submitted.fetch_add(1, Ordering::AcqRel);
        } else {
            self.shared.queue_drops.fetch_add(1, Ordering::AcqRel);
            self.dropped.store(true, Ordering::Release);
        }
        sent
    }

    /// Store (or overwrite) `key`. False if the queue is full or the writer is gone: the
    /// change is lost and [`Writer::dump_due`] becomes true.
    pub fn upsert(&self, key: &[u8], value: &[u8]) -> bool {
        let mut buf = Vec::with_capacity(key.len() + value.len());
        buf.extend_from_slice(key);
        buf.extend_from_slice(value);
        self.send(Msg::Upsert { buf: buf.into_boxed_slice(), key_len: key.len() })
    }

    /// Delete `key`. False as for [`Writer::upsert`].
    pub fn delete(&self, key: &[u8]) -> bool {
        self.send(Msg::Delete(key.into()))
    }

    /// Replace the whole store with `records` (a full dump, paper 5.4). It supersedes
    /// every change sent before it; changes sent after it apply on top. If a key appears
    /// twice the later pair wins. False as for [`Writer::upsert`].
    pub fn replace_all(&self, records: Vec<crate::Pair>) -> bool {
        // Taken before the send: a drop racing with this dump leaves `dropped` set.
        self.dropped.store(false, Ordering::Release);
        self.shared.dump_wanted.store(false, Ordering::Release);
        let sent = self.send(Msg::ReplaceAll(records));
        if sent {
            let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.last_dump_nanos.store(now, Ordering::Release);
        }
        sent
    }

    /// Whether the caller should send a full dump ([`Writer::replace_all`]) now: a change
    /// was lost to a full queue since the last dump, or, in [`WriteMode::PeriodicDump`], the
    /// dump interval has passed since the last one (or since the writer started).
    pub fn dump_due(&self) -> bool {
        if self.dropped.load(Ordering::Acquire) || self.shared.dump_wanted.load(Ordering::Acquire) {
            return true;
        }
        match self.mode {
            WriteMode::GroupCommit => false,
            WriteMode::PeriodicDump { interval } => {
                let last = Duration::from_nanos(self.last_dump_nanos.load(Ordering::Acquire));
                self.epoch.elapsed().saturating_sub(last) >= interval
            }
        }
    }

    /// What the writer has done so far.
    pub fn stats(&self) -> WriterStats {
        self.shared.snapshot()
    }

    /// A handle for reading the statistics from another thread.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(Arc::clone(&self.shared))
    }

    /// Commit everything queued, stop and join the thread (clean shutdown). Blocks for the
    /// last commit. Dropping a `Writer` without calling this also makes the thread commit
    /// and exit, but nobody waits for it.
    pub fn shutdown(mut self) -> Result<WriterStats, StoreError> {
        drop(self.tx.take());
        let Some(thread) = self.thread.take() else {
            let cause = self.spawn_error.take().unwrap_or_else(|| "not running".into());
            return Err(StoreError::WriterGone { path: self.path.clone(), cause });
        };
        thread.thread().unpark();
        match thread.join() {
            Ok(Ok(())) => Ok(self.shared.snapshot()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::WriterGone { path: self.path.clone(), cause: "it panicked".into() }),
        }
    }
}

impl Writer {
    /// Stop without committing what is queued (a relay that is no longer the active one of
    /// a pair: another relay writes the shared table now, and a late commit of this one,
    /// a full dump above all, would overwrite it). A commit already running ends (bounded
    /// by the sink's timeout); none starts after this call.
    pub fn abandon(mut self) {
        self.shared.abandoned.store(true, Ordering::Release);
        drop(self.tx.take());
        if let Some(thread) = &self.thread {
            thread.thread().unpark();
        }
    }
}

impl Drop for Writer {
    /// Without [`Writer::shutdown`]: the thread still commits what is queued and exits, but
    /// nobody waits for it.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = &self.thread {
            thread.thread().unpark();
        }
    }
}

/// A value waiting for the next commit: `Some((buf, key_len))` upserts `buf[key_len..]`,
/// `None` deletes.
pub(crate) type Slot = Option<(Box<[u8]>, usize)>;

/// What the next commit writes: a full dump (if one was sent) and, on top of it, the
/// coalesced changes per key.
#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) replace: Option<Vec<crate::Pair>>,
    pub(crate) changes: BTreeMap<Vec<u8>, Slot>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.replace.is_none() && self.changes.is_empty()
    }

    fn fold(&mut self, msg: Msg) {
        match msg {
            Msg::Upsert { buf, key_len } => {
                let key = buf.get(..key_len).unwrap_or(&[]).to_vec();
                self.changes.insert(key, Some((buf, key_len)));
            }
            Msg::Delete(key) => {
                self.changes.insert(key.into_vec(), None);
            }
            Msg::ReplaceAll(all) => {
                self.changes.clear();
                self.replace = Some(all);
            }
        }
    }
}

/// What one commit did.
pub(crate) struct Done {
    pub(crate) written: u64,
    pub(crate) deleted: u64,
    pub(crate) dump: bool,
}

fn write_batch(db: &Database, p: &mut Pending) -> Result<Done, redb::Error> {
    // Durability::Immediate: the commit returns once fsync has. Two-phase commit: two
    // fsyncs (data and commit slot, then the byte that makes the slot primary) instead of
    // one, so the primary slot is always valid and a damaged file is reported as such
    // instead of silently rolled back one commit; one more fsync per window is cheap.
    let txn = crate::open::begin_write(db)?;
    let mut done = Done { written: 0, deleted: 0, dump: false };
    {
        let mut t = txn.open_table(RECORDS)?;
        if let Some(all) = p.replace.as_mut() {
            // A dump is merged with what is stored, so that only what differs is written:
            // a 70 s dump of a mostly unchanged table rewrites a few pages, not the file.
            // Stable sort: of two pairs with one key the later one wins.
            all.sort_by(|a, b| a.0.cmp(&b.0));
            let mut wanted: Vec<&crate::Pair> = Vec::with_capacity(all.len());
            for pair in all.iter() {
                match wanted.last_mut() {
                    Some(last) if last.0 == pair.0 => *last = pair,
                    _ => wanted.push(pair),
                }
            }
            let mut stale: Vec<Vec<u8>> = Vec::new();
            let mut write: Vec<&crate::Pair> = Vec::new();
            {
                let mut want = wanted.iter().peekable();
                for row in t.iter()? {
                    let (k, v) = row?;
                    let k = k.value();
                    while let Some(w) = want.next_if(|w| w.0.as_slice() < k) {
                        write.push(w);
                    }
                    match want.next_if(|w| w.0.as_slice() == k) {
                        Some(w) if w.1.as_slice() == v.value() => {}
                        Some(w) => write.push(w),
                        None => stale.push(k.to_vec()),
                    }
                }
                write.extend(want);
            }
            for k in &stale {
                t.remove(k.as_slice())?;
            }
            for (k, v) in &write {
                t.insert(k.as_slice(), v.as_slice())?;
            }
            done.written += write.len() as u64;
            done.deleted += stale.len() as u64;
            done.dump = true;
        }
        for (k, slot) in &p.changes {
            match slot {
                Some((buf, key_len)) => {
                    t.insert(k.as_slice(), buf.get(*key_len..).unwrap_or(&[]))?;
                    done.written += 1;
                }
                None => {
                    if t.remove(k.as_slice())?.is_some() {
                        done.deleted += 1;
                    }
                }
            }
        }
    }
    txn.commit()?;
    Ok(done)
}

struct State {
    sink: Box<dyn Sink>,
    interval: Duration,
    shared: Arc<Shared>,
    pending: Pending,
    /// Operations folded into `pending` or committed.
    received: u64,
    /// When the next commit may start.
    next_commit: Instant,
}

impl State {
    /// Commit `pending`. On failure keep it and try again later.
    fn commit(&mut self) -> Result<(), StoreError> {
        let interval = self.interval;
        let start = Instant::now();
        let result = self.sink.commit(&mut self.pending);
        if self.sink.lost_earlier_commits() {
            self.shared.store_lost.fetch_add(1, Ordering::AcqRel);
            self.shared.dump_wanted.store(true, Ordering::Release);
        }
        match result {
            Ok(done) => {
                let took = start.elapsed();
                let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
                let s = &self.shared;
                s.records_written.fetch_add(done.written, Ordering::AcqRel);
                s.records_deleted.fetch_add(done.deleted, Ordering::AcqRel);
                s.dumps.fetch_add(u64::from(done.dump), Ordering::AcqRel);
                s.last_commit_nanos.store(nanos, Ordering::Release);
                s.max_commit_nanos.fetch_max(nanos, Ordering::AcqRel);
                s.ops_committed.store(self.received, Ordering::Release);
                s.commits.fetch_add(1, Ordering::AcqRel);
                self.pending = Pending::default();
                self.next_commit = start + interval;
                Ok(())
            }
            Err(err) => {
                self.shared.fail(err.to_string());
                self.next_commit = start + interval.max(MIN_RETRY);
                Err(err)
            }
        }
    }
}

/// Fold what is queued. Returns false once every sender is gone and the queue is empty.
fn drain(rx: &Receiver<Msg>, st: &mut State) -> bool {
    loop {
        match rx.try_recv() {
            Ok(m) => {
                st.pending.fold(m);
                st.received += 1;
            }
            Err(TryRecvError::Empty) => return true,
            Err(TryRecvError::Disconnected) => return false,
        }
    }
}

fn run(sink: Box<dyn Sink>, interval: Duration, rx: Receiver<Msg>, shared: Arc<Shared>) -> Result<(), StoreError> {
    let mut st =
        State { sink, interval, shared, pending: Pending::default(), received: 0, next_commit: Instant::now() };
    loop {
        if st.shared.abandoned.load(Ordering::Acquire) {
            return Ok(());
        }
        if st.pending.is_empty() {
            // Idle: block until the first change (its send wakes this thread).
            match rx.recv() {
                Ok(m) => {
                    st.pending.fold(m);
                    st.received += 1;
                }
                Err(_) => return Ok(()), // every sender gone, nothing pending
            }
        }
        let open = drain(&rx, &mut st);
        if st.shared.abandoned.load(Ordering::Acquire) {
            return Ok(());
        }
        if !open {
            // Shutdown (or the Writer dropped): commit what is left, with one retry on a
            // reopened database.
            if st.pending.is_empty() {
                return Ok(());
            }
            return st.commit().or_else(|_| st.commit());
        }
        let now = Instant::now();
        if now >= st.next_commit {
            let _ = st.commit();
            continue;
        }
        // Within a window: sleep without waiting on the channel, so that the data plane's
        // sends wake nobody (no futex call on the packet path). Woken early only by
        // shutdown; up every DRAIN_EVERY to keep the queue short.
        std::thread::park_timeout((st.next_commit - now).min(DRAIN_EVERY));
    }
}
