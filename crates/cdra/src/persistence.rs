//! The persistent client table in the daemon (proxy mode): restore at start-up, then hand
//! the engine's changes to the store's writer thread after every batch. The data plane
//! never waits on the disk: the writer group-commits (default every 100 ms), so a crash
//! loses at most one commit window of changes. See docs/persistence.md.
//!
//! A store that cannot be opened (read-only or full disk, a file cdra may not write, a
//! directory in the way, a store from a newer cdra) never stops DHCP service: cdra runs
//! without it, says so in one warning line and in `cdra_persistence_up 0`, and tries again
//! after `store.retry_interval`, then twice as long each time up to
//! `store.retry_max_interval`. Failed retries log at debug level only. When an attempt
//! succeeds, what the store holds is loaded as at start-up (live records win over stored
//! ones), the whole table is written, and changes flow as usual. An attempt runs on the
//! data plane, like the start-up open: a failure costs a system call or two, a success
//! what the start-up open costs (the integrity check, then the restore).

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use cdra_core::persist::{decode_record_with, template_key, Change, RestoreReport, Templates, RECORD_FORMAT};
use cdra_core::{Engine, Timestamp};
use cdra_store::{StoreConfig, Writer};

use crate::config::StoreSettings;

/// Waits between attempts: `first`, then doubling, never more than `max`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Backoff {
    next: Duration,
    first: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(first: Duration, max: Duration) -> Self {
        Backoff { next: first.min(max), first, max }
    }

    /// The wait before the next attempt (each call doubles the following one).
    pub(crate) fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        wait
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.first.min(self.max);
    }
}

enum State {
    /// The store is open: changes go to its writer.
    Up(Writer),
    /// Running without persistence; the next attempt to open is due at `retry_at`.
    Down { retry_at: Timestamp },
}

/// What the metrics and the control socket show.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PersistenceStatus {
    /// The store is open.
    pub up: bool,
    /// Failed attempts to open it since start-up.
    pub open_failures: u64,
    /// Failed commits (each retried) since start-up.
    pub commit_failures: u64,
}

/// The store, or the plan to open it.
pub struct Persistence {
    config: StoreConfig,
    state: State,
    backoff: Backoff,
    open_failures: u64,
    scratch: Vec<u8>,
}

impl Persistence {
    /// Open the store (a damaged file is moved aside with one warning), load it into
    /// `engine` and start the writer thread; if it cannot be opened, run without it and
    /// retry later (never an error).
    pub fn start(settings: &StoreSettings, engine: &mut Engine, now: Timestamp) -> Self {
        let mut p = Persistence {
            config: settings.config.clone(),
            state: State::Down { retry_at: now },
            backoff: Backoff::new(settings.retry_interval, settings.retry_max_interval),
            open_failures: 0,
            scratch: Vec::with_capacity(1024),
        };
        p.attempt(engine, now);
        p
    }

    /// Whether the store is open, and how often opening it failed.
    pub fn status(&self) -> PersistenceStatus {
        PersistenceStatus {
            up: matches!(self.state, State::Up(_)),
            open_failures: self.open_failures,
            commit_failures: match &self.state {
                State::Up(w) => w.stats().errors,
                State::Down { .. } => 0,
            },
        }
    }

    fn attempt(&mut self, engine: &mut Engine, now: Timestamp) {
        match open_and_restore(&self.config, engine, now) {
            Ok((writer, dropped)) => {
                let late = self.open_failures > 0;
                self.state = State::Up(writer);
                self.backoff.reset();
                if late {
                    tracing::info!(
                        path = %self.config.path.display(),
                        failed_attempts = self.open_failures,
                        records = engine.table().len(),
                        "client table store opened: persistence is back (cdra_persistence_up 1); writing the whole table"
                    );
                }
                // Late: everything that changed while the store was away. Dropped: rewrite
                // the store without what was not loaded back.
                if late || dropped {
                    self.dump(engine);
                }
            }
            Err(e) => {
                self.open_failures += 1;
                let wait = self.backoff.next_wait();
                let first = self.open_failures == 1;
                self.state = State::Down { retry_at: now.saturating_add(wait) };
                if first {
                    tracing::warn!(
                        path = %self.config.path.display(),
                        error = %format!("{e:#}"),
                        retry_in = %humantime::format_duration(wait),
                        "client table store cannot be opened: serving DHCP without persistence (cdra_persistence_up 0), retrying with backoff"
                    );
                } else {
                    tracing::debug!(path = %self.config.path.display(), error = %format!("{e:#}"), retry_in = %humantime::format_duration(wait), "client table store still cannot be opened");
                }
            }
        }
    }

    fn dump(&mut self, engine: &Engine) {
        if let State::Up(writer) = &self.state {
            dump_table(writer, engine, &mut self.scratch);
        }
    }

    /// Hand the engine's changes since the last call to the writer (non-blocking). Without
    /// a store, drop them (the whole table is written once it opens) and try to open it
    /// when the next attempt is due.
    pub fn flush_changes(&mut self, engine: &mut Engine, now: Timestamp) {
        match self.state {
            State::Up(_) => self.write_changes(engine),
            State::Down { retry_at } => {
                engine.drain_changes(&mut self.scratch, |_| {});
                if now >= retry_at {
                    self.attempt(engine, now);
                }
            }
        }
    }

    fn write_changes(&mut self, engine: &mut Engine) {
        if let State::Up(writer) = &self.state {
            write_changes(writer, engine, &mut self.scratch);
        }
    }

    /// Write what is left and stop the writer (clean shutdown).
    pub fn shutdown(mut self, engine: &mut Engine) {
        self.write_changes(engine);
        match self.state {
            State::Up(writer) => match writer.shutdown() {
                Ok(stats) => tracing::info!(?stats, "client table store closed"),
                Err(e) => tracing::error!(error = %e, "client table store: last commit failed"),
            },
            State::Down { .. } => tracing::info!(
                path = %self.config.path.display(),
                failed_attempts = self.open_failures,
                "client table store never opened: nothing written"
            ),
        }
    }
}

/// Queue the whole table (the shared reply templates, then the records) as one full dump
/// (paper 5.4); whatever the backend.
pub(crate) fn dump_table(writer: &Writer, engine: &Engine, scratch: &mut Vec<u8>) {
    let mut all = Vec::with_capacity(engine.table().len());
    engine.dump_templates(|id, bytes| all.push((template_key(id).to_vec(), bytes.to_vec())));
    engine.dump(scratch, |key, value| all.push((key.as_bytes().to_vec(), value.to_vec())));
    if !writer.replace_all(all) {
        tracing::warn!("client table store: the writer's queue is full; the dump is retried");
    }
}

/// Hand the engine's changes to `writer` (non-blocking); a full dump instead if a change
/// was lost or one is due ([`Writer::dump_due`]). Whatever the backend.
pub(crate) fn write_changes(writer: &Writer, engine: &mut Engine, scratch: &mut Vec<u8>) {
    let complete = engine.drain_changes(scratch, |change| {
        match change {
            Change::Upsert { key, bytes } => writer.upsert(key.as_bytes(), bytes),
            Change::Delete(key) => writer.delete(key.as_bytes()),
            Change::Template { id, bytes } => writer.upsert(&template_key(id), bytes),
            Change::DeleteTemplate(id) => writer.delete(&template_key(id)),
        };
    });
    if !complete || writer.dump_due() {
        dump_table(writer, engine, scratch);
    }
}

/// A restore in progress, whatever the backend: the shared reply templates first (paper
/// 5.7, stored once each), then the records that name them; what does not decode counted.
pub(crate) struct Restoring {
    templates: Templates,
    pub(crate) report: RestoreReport,
    /// Templates and records that did not decode (skipped).
    pub(crate) undecodable: usize,
    /// Some records were of an older format than cdra writes: the store is to be
    /// rewritten (a full dump) in the current one.
    pub(crate) older_format: bool,
}

impl Restoring {
    pub(crate) fn new() -> Self {
        Restoring { templates: Templates::new(), report: RestoreReport::default(), undecodable: 0, older_format: false }
    }

    /// A stored template (read before any record).
    pub(crate) fn template(&mut self, key: &[u8], value: &[u8]) {
        if self.templates.add(key, value).is_err() {
            self.undecodable += 1;
        }
    }

    /// A stored record: restored into `engine` (records already there and newer win).
    pub(crate) fn record(&mut self, engine: &mut Engine, now: Timestamp, value: &[u8]) {
        self.older_format |= value.first().is_some_and(|v| *v < RECORD_FORMAT);
        match decode_record_with(value, &self.templates) {
            Ok((record, iface)) => engine.restore_one(now, record, iface, &mut self.report),
            Err(_) => self.undecodable += 1,
        }
    }

    /// Done: the report, what did not decode, and the templates no record took (their
    /// records expired, or were dropped), to delete from the store.
    pub(crate) fn finish(self) -> (RestoreReport, usize, Vec<u64>) {
        let unused = self.templates.unused().collect();
        (self.report, self.undecodable, unused)
    }
}

/// Open the store, load it into `engine` (records already there and newer win) and start
/// the writer. True: some stored records were not loaded, or were of an older format (the
/// store should be rewritten).
fn open_and_restore(config: &StoreConfig, engine: &mut Engine, now: Timestamp) -> Result<(Writer, bool)> {
    if let Some(dir) = config.path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let started = Instant::now();
    let (store, report) = cdra_store::open(config).map_err(|e| anyhow!("{e}"))?;
    if let Some(warning) = &report.warning {
        tracing::warn!("{warning}");
    }
    if let Some(from) = report.migrated_from {
        tracing::info!(from_schema = from, to_schema = cdra_store::SCHEMA_VERSION, "client table store migrated");
    }
    engine.reserve(report.records);
    let mut restoring = Restoring::new();
    store.visit_templates(|key, value| restoring.template(key, value)).map_err(|e| anyhow!("{e}"))?;
    let stored = store.visit(|_, value| restoring.record(engine, now, value)).map_err(|e| anyhow!("{e}"))?;
    // Templates no record took (their records expired, or were dropped): out of the store.
    let older_format = restoring.older_format;
    let (restored, undecodable, unused) = restoring.finish();
    let RestoreReport { loaded, expired, unknown_interface, superseded, future_dated, pool_entries } = restored;
    tracing::info!(
        path = %config.path.display(),
        stored,
        loaded,
        expired,
        unknown_interface,
        superseded,
        future_dated,
        pool_entries,
        undecodable,
        millis = started.elapsed().as_millis() as u64,
        "client table restored (every record is suspect: probes and REBIND precautions apply, paper 3.4)"
    );
    let writer = store.start_writer();
    for id in unused {
        writer.delete(&template_key(id));
    }
    // Records of an older format: the store is rewritten in the current one.
    Ok((writer, loaded + pool_entries != stored || older_format))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    use cdra_core::Mode;
    use cdra_sim::{secs, IdStyle, Sim, SimConfig};

    use super::*;

    fn settings(path: &Path) -> StoreSettings {
        StoreSettings {
            config: StoreConfig::new(path),
            retry_interval: Duration::from_secs(1),
            retry_max_interval: Duration::from_secs(4),
            backend: crate::config::StoreBackend::Redb,
        }
    }

    /// An engine holding one client's record (from a simulated DORA), and the time.
    fn engine_with_a_client() -> (Engine, Timestamp) {
        let config = SimConfig::small(7, Mode::Proxy);
        let mut sim = Sim::new(config.clone());
        let c = sim.add_dhcp_client(0, IdStyle::Hardware);
        sim.power_on(c);
        sim.run_for(secs(10));
        let snapshot = sim.engine_snapshot();
        assert_eq!(snapshot.records.len(), 1, "the client got a lease");
        let mut engine = Engine::new(config.engine_config());
        assert_eq!(cdra_sim::engine_api::import_records(&mut engine, sim.now(), &snapshot), 1);
        (engine, Timestamp::from_millis(sim.now()))
    }

    fn stored_records(path: &Path) -> usize {
        let (store, _) = cdra_store::open(&StoreConfig::new(path)).expect("the store opens");
        store.len().expect("readable")
    }

    /// The log lines written while `f` runs (no colours, no timestamps).
    fn logged(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("not poisoned").extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .without_time()
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buffer.0.lock().expect("not poisoned").clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn backoff_doubles_up_to_its_bound() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        let waits: Vec<u64> = (0..12).map(|_| b.next_wait().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        b.reset();
        assert_eq!(b.next_wait(), Duration::from_secs(1));
        // A first wait above the bound is the bound.
        assert_eq!(Backoff::new(Duration::from_secs(9), Duration::from_secs(5)).next_wait(), Duration::from_secs(5));
    }

    #[test]
    fn an_unopenable_store_is_retried_with_backoff_then_gets_the_whole_table() {
        let dir = tempfile::tempdir().expect("temp dir");
        // A regular file where the store's directory should be: the open fails for root
        // too (a read-only directory or a 0444 file would not stop root).
        let blocker = dir.path().join("state");
        std::fs::write(&blocker, b"not a directory").expect("write");
        let path = blocker.join("clients.redb");
        let (mut engine, t0) = engine_with_a_client();
        let at = |ms: u64| t0.saturating_add(Duration::from_millis(ms));
        let failures = |p: &Persistence| (p.status().up, p.status().open_failures);
        let mut p = None;
        let log = logged(|| {
            let p = p.insert(Persistence::start(&settings(&path), &mut engine, t0));
            assert_eq!(failures(p), (false, 1), "down after the first attempt");
            // Attempts at +1 s, then 2 s and 4 s later, then every 4 s (the bound).
            for (ms, want) in [(999, 1), (1_000, 2), (2_999, 2), (3_000, 3), (6_999, 3), (7_000, 4), (10_999, 4)] {
                p.flush_changes(&mut engine, at(ms));
                assert_eq!(failures(p), (false, want), "at +{ms} ms");
            }
            // The obstacle goes away: the next attempt opens the store.
            std::fs::remove_file(&blocker).expect("rm");
            std::fs::create_dir(&blocker).expect("mkdir");
            p.flush_changes(&mut engine, at(11_000));
            assert_eq!(failures(p), (true, 4), "up again");
        });
        let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
        assert_eq!(warnings.len(), 1, "one warning for four failed attempts:\n{log}");
        assert!(warnings[0].contains(&path.display().to_string()), "the warning names the path: {}", warnings[0]);
        assert!(
            warnings[0].contains("Not a directory") || warnings[0].contains("File exists"),
            "and the error: {}",
            warnings[0]
        );
        assert_eq!(log.lines().filter(|l| l.contains("persistence is back")).count(), 1, "{log}");
        // The whole table was written when the store opened.
        p.expect("started").shutdown(&mut engine);
        assert_eq!(stored_records(&path), 1);
    }

    #[test]
    fn a_directory_in_place_of_the_store_file_is_not_fatal() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("clients.redb");
        std::fs::create_dir(&path).expect("mkdir");
        let (mut engine, t0) = engine_with_a_client();
        let mut p = Persistence::start(&settings(&path), &mut engine, t0);
        assert_eq!(p.status(), PersistenceStatus { up: false, open_failures: 1, commit_failures: 0 });
        // Changes made meanwhile are dropped, not piled up: the dump covers them.
        std::fs::remove_dir(&path).expect("rmdir");
        p.flush_changes(&mut engine, t0.saturating_add(Duration::from_secs(1)));
        assert_eq!(p.status(), PersistenceStatus { up: true, open_failures: 1, commit_failures: 0 });
        p.shutdown(&mut engine);
        assert_eq!(stored_records(&path), 1);
    }

    #[test]
    fn a_store_that_opens_is_used_at_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sub").join("clients.redb");
        let (mut engine, t0) = engine_with_a_client();
        let mut p = Persistence::start(&settings(&path), &mut engine, t0);
        assert_eq!(p.status(), PersistenceStatus { up: true, open_failures: 0, commit_failures: 0 });
        p.dump(&engine);
        p.shutdown(&mut engine);
        assert_eq!(stored_records(&path), 1);
        // A restart loads it back.
        let mut fresh = Engine::new(SimConfig::small(7, Mode::Proxy).engine_config());
        let p = Persistence::start(&settings(&path), &mut fresh, t0);
        assert_eq!(p.status(), PersistenceStatus { up: true, open_failures: 0, commit_failures: 0 });
        assert_eq!(fresh.table().len(), 1);
        p.shutdown(&mut fresh);
    }
}
