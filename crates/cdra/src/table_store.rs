//! Where the daemon keeps its client table: the embedded redb file
//! ([`crate::persistence::Persistence`]) or Redis ([`crate::shared_store::SharedStore`],
//! possibly shared by a pair of relays, crate::ha). The loop sees one interface.

use cdra_core::{Engine, Timestamp};

use crate::config::{StoreBackend, StoreSettings};
use crate::ha::Role;
use crate::persistence::{Persistence, PersistenceStatus};
use crate::shared_store::SharedStore;

/// The client table's store.
pub enum TableStore {
    /// The redb file, opened (and retried) on the data plane.
    File(Persistence),
    /// Redis, loaded on a thread.
    Shared(SharedStore),
}

impl TableStore {
    /// Open the store as configured (never an error: a store that cannot be used is
    /// retried). `role`: whether this relay is the active one of a pair (always active
    /// without `[ha]`).
    pub fn start(settings: &StoreSettings, engine: &mut Engine, now: Timestamp, role: Role) -> Self {
        match &settings.backend {
            StoreBackend::Redb => TableStore::File(Persistence::start(settings, engine, now)),
            StoreBackend::Redis(config) => TableStore::Shared(SharedStore::start(settings, config.clone(), role)),
        }
    }

    /// `[ha]` by the lease: commit only while the lease names `node_id` (Redis only).
    pub fn fence(&mut self, node_id: &str) {
        if let TableStore::Shared(s) = self {
            s.fence(node_id);
        }
    }

    /// For the metrics.
    pub fn status(&self) -> PersistenceStatus {
        match self {
            TableStore::File(p) => p.status(),
            TableStore::Shared(s) => s.status(),
        }
    }

    /// Whether clients are answered now (a relay taking over is silent until its table is
    /// loaded).
    pub fn serving(&self) -> bool {
        match self {
            TableStore::File(_) => true,
            TableStore::Shared(s) => s.serving(),
        }
    }

    /// Whether the table is being loaded on a thread (the loop should look for its end
    /// soon).
    pub fn loading(&self) -> bool {
        match self {
            TableStore::File(_) => false,
            TableStore::Shared(s) => s.loading(),
        }
    }

    /// Hand the engine's changes to the writer (after every turn of the loop).
    pub fn flush_changes(&mut self, engine: &mut Engine, now: Timestamp) {
        match self {
            TableStore::File(p) => p.flush_changes(engine, now),
            TableStore::Shared(s) => s.flush_changes(engine, now),
        }
    }

    /// The pair's role changed (only with `[ha]`, which needs Redis).
    pub fn role_changed(&mut self, engine: &mut Engine, role: Role) {
        if let TableStore::Shared(s) = self {
            match role {
                Role::Active => s.become_active(),
                Role::Standby => s.become_standby(engine),
            }
        }
    }

    /// Write what is left and stop (clean shutdown).
    pub fn shutdown(self, engine: &mut Engine) {
        match self {
            TableStore::File(p) => p.shutdown(engine),
            TableStore::Shared(s) => s.shutdown(engine),
        }
    }
}
