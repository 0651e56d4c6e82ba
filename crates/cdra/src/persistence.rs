//! The persistent client table in the daemon (proxy mode): restore at start-up, then hand
//! the engine's changes to the store's writer thread after every batch. The data plane
//! never waits on the disk: the writer group-commits (default every 100 ms), so a crash
//! loses at most one commit window of changes. See docs/persistence.md.

use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use cdra_core::persist::{decode_record_borrowed, Change, RestoreReport};
use cdra_core::{Engine, Timestamp};
use cdra_store::{StoreConfig, Writer};

/// The writer and its scratch buffer.
pub struct Persistence {
    writer: Writer,
    scratch: Vec<u8>,
}

impl Persistence {
    /// Open the store (a damaged file is moved aside with one warning, never fatal; a store
    /// from a newer cdra is refused), load it into `engine`, and start the writer thread.
    pub fn open_and_restore(config: &StoreConfig, engine: &mut Engine, now: Timestamp) -> Result<Self> {
        if let Some(dir) = config.path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("store.path: cannot create {}", dir.display()))?;
        }
        let started = Instant::now();
        let (store, report) = cdra_store::open(config).map_err(|e| anyhow!("store.path: {e}"))?;
        if let Some(warning) = &report.warning {
            tracing::warn!("{warning}");
        }
        if let Some(from) = report.migrated_from {
            tracing::info!(from_schema = from, to_schema = cdra_store::SCHEMA_VERSION, "client table store migrated");
        }
        let mut undecodable = 0usize;
        let mut restored = RestoreReport::default();
        engine.reserve(report.records);
        let stored = store
            .visit(|_, value| match decode_record_borrowed(value) {
                Ok((record, iface)) => engine.restore_one(now, record, iface, &mut restored),
                Err(_) => undecodable += 1,
            })
            .map_err(|e| anyhow!("store.path: {e}"))?;
        let RestoreReport { loaded, expired, unknown_interface, superseded, future_dated } = restored;
        tracing::info!(
            path = %config.path.display(),
            stored,
            loaded,
            expired,
            unknown_interface,
            superseded,
            future_dated,
            undecodable,
            millis = started.elapsed().as_millis() as u64,
            "client table restored (every record is suspect: probes and REBIND precautions apply, paper 3.4)"
        );
        let mut persistence = Persistence { writer: store.start_writer(), scratch: Vec::with_capacity(1024) };
        if loaded != stored {
            // Rewrite the store without what was dropped.
            persistence.dump(engine);
        }
        Ok(persistence)
    }

    fn dump(&mut self, engine: &Engine) {
        let mut all = Vec::with_capacity(engine.table().len());
        engine.dump(&mut self.scratch, |key, value| all.push((key.as_bytes().to_vec(), value.to_vec())));
        if !self.writer.replace_all(all) {
            tracing::warn!("client table store: the writer's queue is full; the dump is retried");
        }
    }

    /// Hand the engine's changes since the last call to the writer (non-blocking).
    pub fn flush_changes(&mut self, engine: &mut Engine) {
        let writer = &self.writer;
        let complete = engine.drain_changes(&mut self.scratch, |change| {
            match change {
                Change::Upsert { key, bytes } => writer.upsert(key.as_bytes(), bytes),
                Change::Delete(key) => writer.delete(key.as_bytes()),
            };
        });
        if !complete || self.writer.dump_due() {
            self.dump(engine);
        }
    }

    /// Write what is left and stop the writer (clean shutdown).
    pub fn shutdown(mut self, engine: &mut Engine) {
        self.flush_changes(engine);
        match self.writer.shutdown() {
            Ok(stats) => tracing::info!(?stats, "client table store closed"),
            Err(e) => tracing::error!(error = %e, "client table store: last commit failed"),
        }
    }
}
