//! The client table in Redis (`[store] backend = "redis"`), possibly shared by a pair of
//! relays (`[ha]`, crate::ha): loaded on a thread, written by the store's writer thread
//! with group commit, only while this relay is the active one.
//!
//! Nothing here waits on Redis on the data plane: connecting and reading the table run on
//! a loader thread whose result the loop picks up ([`SharedStore::flush_changes`]); commits
//! run on the writer thread ([`cdra_store::Writer`]), which reconnects by itself.
//!
//! What is safe when Redis is away:
//! - At start-up (or at a takeover) Redis cannot be read: the relay answers with the table
//!   it has (empty) after that first failed attempt, says so once, and tries again after
//!   `store.retry_interval`, doubling up to `store.retry_max_interval`. When a load
//!   succeeds, what Redis holds is merged into the live table (live records win), and only
//!   then is the merged table written back whole. Redis is never overwritten with a table
//!   that was not first merged with its own content.
//! - Redis goes away while the store is up: the writer keeps the coalesced changes and
//!   retries; a Redis that comes back empty asks for the whole table (see cdra_store).

use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Instant;

use cdra_core::persist::{template_id_of_key, template_key, RestoreReport};
use cdra_core::{Engine, Timestamp};
use cdra_store::{RedisConfig, Writer};

use crate::config::StoreSettings;
use crate::ha::Role;
use crate::persistence::{dump_table, write_changes, Backoff, PersistenceStatus, Restoring};

/// What the loader thread hands back: the connection (to become the writer's) and every
/// stored pair.
type Loaded = Result<(cdra_store::RedisStore, Vec<cdra_store::Pair>, LoadTimes), String>;

/// When the load started, and how long connecting and reading took on the loader thread.
struct LoadTimes {
    started: Instant,
    read: std::time::Duration,
}

enum State {
    /// Standby: nothing loaded, nothing written.
    Standby,
    /// The loader thread is reading the table. `serving`: clients are answered meanwhile
    /// (a load failed before: the relay serves with what it has).
    Loading { result: Receiver<Loaded>, serving: bool },
    /// Loaded: changes go to the writer.
    Up(Writer),
    /// Serving without the store; the next load is due at `retry_at`.
    Down { retry_at: Timestamp },
}

/// The table in Redis, from this relay's side.
pub struct SharedStore {
    config: RedisConfig,
    state: State,
    backoff: Backoff,
    load_failures: u64,
    /// Commit failures of writers already retired (a writer lives from a load to a
    /// hand-over), so that the counter only grows.
    retired_commit_failures: u64,
    scratch: Vec<u8>,
    /// `[ha]` by the lease: each commit checks that the lease still names this node id.
    fence: Option<String>,
}

impl SharedStore {
    /// Start in `role`: an active relay starts loading the table at once.
    pub fn start(settings: &StoreSettings, config: RedisConfig, role: Role) -> Self {
        let mut s = SharedStore {
            config,
            state: State::Standby,
            backoff: Backoff::new(settings.retry_interval, settings.retry_max_interval),
            load_failures: 0,
            retired_commit_failures: 0,
            scratch: Vec::with_capacity(1024),
            fence: None,
        };
        if role == Role::Active {
            s.state = s.load(false);
        }
        s
    }

    /// Commit only while the pair's lease names `node_id` (from the next load on): a relay
    /// that lost the lease, however late its commit, never overwrites the other's writes.
    pub fn fence(&mut self, node_id: &str) {
        self.fence = Some(node_id.to_string());
    }

    /// Whether clients are answered now: active, and the table loaded (or a load failed).
    pub fn serving(&self) -> bool {
        match self.state {
            State::Standby => false,
            State::Loading { serving, .. } => serving,
            State::Up(_) | State::Down { .. } => true,
        }
    }

    /// Whether a load is running on the loader thread.
    pub fn loading(&self) -> bool {
        matches!(self.state, State::Loading { .. })
    }

    /// For the metrics: `up` while loaded and writing; failed loads; failed commits.
    pub fn status(&self) -> PersistenceStatus {
        let current = match &self.state {
            State::Up(w) => w.stats().errors,
            _ => 0,
        };
        PersistenceStatus {
            up: matches!(self.state, State::Up(_)),
            open_failures: self.load_failures,
            commit_failures: self.retired_commit_failures + current,
        }
    }

    fn load(&self, serving: bool) -> State {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let config = self.config.clone();
        let spawned = std::thread::Builder::new().name("cdra-store-load".into()).spawn(move || {
            let started = Instant::now();
            let loaded = cdra_store::connect_redis(&config)
                .and_then(|mut store| {
                    let pairs = store.load_all()?;
                    Ok((store, pairs, LoadTimes { started, read: started.elapsed() }))
                })
                .map_err(|e| e.to_string());
            let _ = tx.send(loaded);
        });
        match spawned {
            Ok(_) => State::Loading { result: rx, serving },
            Err(e) => {
                tracing::error!(error = %e, "cannot start the thread loading the client table from Redis");
                State::Down { retry_at: Timestamp::default() }
            }
        }
    }

    /// This relay became the active one: load the table (silent until it is loaded, or
    /// until a load failed).
    pub fn become_active(&mut self) {
        if matches!(self.state, State::Standby) {
            self.state = self.load(false);
        }
    }

    /// This relay became the standby: drop the table and write nothing more, not even what
    /// is queued. The other relay may be writing the table already (it took the address or
    /// the lease), and a commit of ours landing after its load, a full dump above all (due
    /// in dump mode, after a full queue, or after Redis lost the table), would delete what
    /// it wrote and bring back what it deleted. What this relay had not committed is lost
    /// to the pair: at most one commit window, which the other relay's load after the move
    /// would have missed anyway.
    pub fn become_standby(&mut self, engine: &mut Engine) {
        if let State::Up(writer) = std::mem::replace(&mut self.state, State::Standby) {
            self.retired_commit_failures += writer.stats().errors;
            // A commit running now ends (bounded by `store.timeout`); none starts after.
            writer.abandon();
        }
        let dropped = engine.hand_over();
        engine.drain_changes(&mut self.scratch, |_| {});
        tracing::info!(records = dropped, "standby: client table dropped, nothing is answered or written");
    }

    /// Hand the engine's changes to the writer (non-blocking); pick up a finished load;
    /// start a due one.
    pub fn flush_changes(&mut self, engine: &mut Engine, now: Timestamp) {
        match &self.state {
            State::Up(_) => self.write_changes(engine),
            State::Standby => {
                engine.drain_changes(&mut self.scratch, |_| {});
            }
            State::Down { retry_at } => {
                engine.drain_changes(&mut self.scratch, |_| {});
                if now >= *retry_at {
                    self.state = self.load(true);
                }
            }
            State::Loading { result, serving } => {
                // Changes while loading are covered by the dump after the load.
                engine.drain_changes(&mut self.scratch, |_| {});
                let serving = *serving;
                match result.try_recv() {
                    Ok(loaded) => self.loaded(engine, now, loaded, serving),
                    Err(TryRecvError::Empty) => {}
                    Err(TryRecvError::Disconnected) => {
                        self.loaded(engine, now, Err("the loader thread died".into()), serving)
                    }
                }
            }
        }
    }

    fn loaded(&mut self, engine: &mut Engine, now: Timestamp, loaded: Loaded, late: bool) {
        match loaded {
            Ok((store, pairs, times)) => {
                // The shared reply templates (record format 3, paper 5.7) are not records.
                let stored = pairs.iter().filter(|(k, _)| template_id_of_key(k).is_none()).count();
                let (report, undecodable, unused, older_format) = restore(engine, now, &pairs);
                let RestoreReport { loaded, expired, unknown_interface, superseded, future_dated, pool_entries } =
                    report;
                tracing::info!(
                    url = %self.config.display_url(),
                    stored,
                    loaded,
                    expired,
                    unknown_interface,
                    superseded,
                    future_dated,
                    pool_entries,
                    undecodable,
                    read_millis = times.read.as_millis() as u64,
                    millis = times.started.elapsed().as_millis() as u64,
                    "client table loaded from Redis (every record is suspect: probes and REBIND precautions apply, paper 3.4)"
                );
                self.backoff.reset();
                let store = match &self.fence {
                    Some(id) => store.fenced(id.clone()),
                    None => store,
                };
                let writer = store.start_writer();
                // Templates no record took (their records expired): out of the store.
                for id in unused {
                    writer.delete(&template_key(id));
                }
                self.state = State::Up(writer);
                // Served while Redis was away: write the merged table whole. Some stored
                // records not loaded back, records of ours besides them, or records of an older
                // format: write the table.
                if late || older_format || engine.table().len() + pool_entries != stored {
                    self.dump(engine);
                }
            }
            Err(e) => {
                self.load_failures += 1;
                let wait = self.backoff.next_wait();
                self.state = State::Down { retry_at: now.saturating_add(wait) };
                if !late {
                    tracing::warn!(
                        url = %self.config.display_url(),
                        error = %e,
                        retry_in = %humantime::format_duration(wait),
                        "client table cannot be loaded from Redis: answering with the table this relay has, retrying with backoff (it is merged and written back once loaded)"
                    );
                } else {
                    tracing::debug!(error = %e, retry_in = %humantime::format_duration(wait), "client table still cannot be loaded from Redis");
                }
            }
        }
    }

    fn dump(&mut self, engine: &Engine) {
        if let State::Up(writer) = &self.state {
            dump_table(writer, engine, &mut self.scratch);
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
        if let State::Up(writer) = self.state {
            match writer.shutdown() {
                Ok(stats) => tracing::info!(?stats, "client table store (Redis) closed"),
                Err(e) => tracing::error!(error = %e, "client table store (Redis): last commit failed"),
            }
        }
    }
}

/// Restore stored pairs into `engine` (records already there and newer win) as the redb
/// path does ([`Restoring`]): the shared reply templates first (paper 5.7, record format
/// 3), then the records that name them. Also returns how many did not decode, the
/// templates no record took, and whether some records were of an older format (the table
/// is then written whole, in the current one).
fn restore(engine: &mut Engine, now: Timestamp, pairs: &[cdra_store::Pair]) -> (RestoreReport, usize, Vec<u64>, bool) {
    let mut restoring = Restoring::new();
    for (key, value) in pairs.iter().filter(|(k, _)| template_id_of_key(k).is_some()) {
        restoring.template(key, value);
    }
    engine.reserve(pairs.len());
    for (_, value) in pairs.iter().filter(|(k, _)| template_id_of_key(k).is_none()) {
        restoring.record(engine, now, value);
    }
    let older_format = restoring.older_format;
    let (report, undecodable, unused) = restoring.finish();
    (report, undecodable, unused, older_format)
}

/// A redis-server of a test's own (shared with crates/store's Redis tests).
#[cfg(test)]
#[path = "../../store/tests/support/redis_server.rs"]
mod redis_server;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use cdra_core::Mode;
    use cdra_sim::{secs, IdStyle, Sim, SimConfig};

    use super::redis_server::{free_port, RedisServer};
    use super::*;
    use crate::config::StoreBackend;
    use cdra_core::table::Removal;

    /// The records in Redis (not the shared reply templates beside them).
    fn records(redis: &RedisServer) -> Vec<cdra_store::Pair> {
        let all = cdra_store::connect_redis(&config(&redis.url())).expect("connect").load_all().expect("HGETALL");
        all.into_iter().filter(|(k, _)| template_id_of_key(k).is_none()).collect()
    }

    /// The shared reply templates in Redis (record format 3, paper 5.7).
    fn templates_in(redis: &RedisServer) -> usize {
        let all = cdra_store::connect_redis(&config(&redis.url())).expect("connect").load_all().expect("HGETALL");
        all.iter().filter(|(k, _)| template_id_of_key(k).is_some()).count()
    }

    fn config(url: &str) -> RedisConfig {
        let mut c = RedisConfig::new(url);
        c.key_prefix = "cdra:unit".into();
        c.timeout = Duration::from_millis(500);
        c
    }

    fn settings(url: &str) -> StoreSettings {
        StoreSettings {
            config: cdra_store::StoreConfig::new("/nonexistent/unused.redb"),
            retry_interval: Duration::from_millis(100),
            retry_max_interval: Duration::from_millis(200),
            backend: StoreBackend::Redis(config(url)),
        }
    }

    /// Two engines each holding the record of one client (simulated DORAs), other clients.
    fn engines_with_a_client_each() -> ((Engine, Engine), Timestamp) {
        let config = SimConfig::small(7, Mode::Proxy);
        let mut sim = Sim::new(config.clone());
        for _ in 0..2 {
            let c = sim.add_dhcp_client(0, IdStyle::Hardware);
            sim.power_on(c);
        }
        sim.run_for(secs(10));
        let snapshot = sim.engine_snapshot();
        assert_eq!(snapshot.records.len(), 2, "both clients got a lease");
        let one = |i: usize| {
            let mut s = snapshot.clone();
            s.records = vec![snapshot.records[i].clone()];
            let mut engine = Engine::new(config.engine_config());
            assert_eq!(cdra_sim::engine_api::import_records(&mut engine, sim.now(), &s), 1);
            engine
        };
        ((one(0), one(1)), Timestamp::from_millis(sim.now()))
    }

    fn encoded(engine: &Engine) -> Vec<cdra_store::Pair> {
        let mut out = Vec::new();
        engine.dump(&mut Vec::new(), |k, v| out.push((k.as_bytes().to_vec(), v.to_vec())));
        out
    }

    /// The shared reply templates its records name (paper 5.7), as the store keeps them.
    fn templates_of(engine: &Engine) -> Vec<cdra_store::Pair> {
        let mut out = Vec::new();
        engine.dump_templates(|id, bytes| out.push((template_key(id).to_vec(), bytes.to_vec())));
        out
    }

    /// Turn the loop until `done` (each turn hands changes over and picks up a load).
    fn turn_until(
        s: &mut SharedStore,
        engine: &mut Engine,
        now: Timestamp,
        what: &str,
        done: impl Fn(&SharedStore) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut t = now;
        while !done(s) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
            t = t.saturating_add(Duration::from_millis(10));
            s.flush_changes(engine, t);
        }
    }

    #[test]
    fn redis_away_at_start_up_is_merged_with_not_overwritten() {
        let port = free_port();
        let url = format!("redis://127.0.0.1:{port}/0");
        let ((mut engine, other), t0) = engines_with_a_client_each();
        let foreign = encoded(&other);
        assert_ne!(foreign[0].0, encoded(&engine)[0].0, "two different clients");
        let mut s = SharedStore::start(&settings(&url), config(&url), Role::Active);
        assert!(!s.serving(), "silent until the first load attempt ends");
        turn_until(&mut s, &mut engine, t0, "the failed load", |s| s.status().open_failures == 1);
        assert!(s.serving(), "serves without Redis after the first failure");
        assert!(!s.status().up);
        // Redis comes back holding another client's record.
        let redis = RedisServer::start_on(port);
        let w = cdra_store::connect_redis(&config(&url)).expect("connect").start_writer();
        w.upsert(&foreign[0].0, &foreign[0].1);
        for (k, v) in templates_of(&other) {
            w.upsert(&k, &v);
        }
        w.shutdown().expect("written");
        turn_until(&mut s, &mut engine, t0, "the load", |s| s.status().up);
        assert_eq!(engine.table().len(), 2, "merged: ours and Redis's");
        turn_until(&mut s, &mut engine, t0, "the merged table in Redis", |_| records(&redis).len() == 2);
        assert!(templates_in(&redis) >= 1, "the replies' shared templates are stored beside the records");
        s.shutdown(&mut engine);
    }

    #[test]
    fn a_relay_going_standby_never_overwrites_the_table_with_its_queue_or_a_dump() {
        let redis = RedisServer::start_on(free_port());
        let ((mut engine, other), t0) = engines_with_a_client_each();
        // Dump mode, a dump due on every turn: the worst case for a late write.
        let mut c = config(&redis.url());
        c.mode = cdra_store::WriteMode::PeriodicDump { interval: Duration::ZERO };
        let mut a = SharedStore::start(&settings(&redis.url()), c, Role::Active);
        turn_until(&mut a, &mut engine, t0, "the load", |s| s.status().up);
        turn_until(&mut a, &mut engine, t0, "the record in Redis", |_| records(&redis).len() == 1);
        // Meanwhile the other relay took over and wrote the table its own way: ours gone,
        // its client there.
        let ours = encoded(&engine)[0].0.clone();
        let foreign = encoded(&other);
        let w = cdra_store::connect_redis(&config(&redis.url())).expect("connect").start_writer();
        w.delete(&ours);
        w.upsert(&foreign[0].0, &foreign[0].1);
        w.shutdown().expect("written");
        // Only now does this relay learn it is the standby.
        a.become_standby(&mut engine);
        std::thread::sleep(Duration::from_millis(500));
        let keys: Vec<_> = records(&redis).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![foreign[0].0.clone()], "the other relay's table stands");
        a.shutdown(&mut engine);
    }

    #[test]
    fn a_load_counts_what_does_not_decode_and_deletes_unused_templates_as_redb_does() {
        let ((_, other), t0) = engines_with_a_client_each();
        let fresh = || Engine::new(SimConfig::small(7, Mode::Proxy).engine_config());
        // In memory: a template, a record naming it, and one of each that does not decode.
        let mut pairs = templates_of(&other);
        let template_count = pairs.len();
        assert!(template_count >= 1);
        pairs.extend(encoded(&other));
        pairs.push((template_key(7).to_vec(), b"not a template".to_vec()));
        pairs.push((b"not a key".to_vec(), b"not a record".to_vec()));
        let mut engine = fresh();
        let (report, undecodable, unused, _) = restore(&mut engine, t0, &pairs);
        assert_eq!((report.loaded, undecodable, unused.len()), (1, 2, 0));
        // Templates alone in Redis (their records expired): the load takes them out.
        let redis = RedisServer::start_on(free_port());
        let w = cdra_store::connect_redis(&config(&redis.url())).expect("connect").start_writer();
        for (k, v) in templates_of(&other) {
            w.upsert(&k, &v);
        }
        w.shutdown().expect("written");
        assert_eq!(templates_in(&redis), template_count);
        let mut engine = fresh();
        let mut s = SharedStore::start(&settings(&redis.url()), config(&redis.url()), Role::Active);
        turn_until(&mut s, &mut engine, t0, "the load", |s| s.status().up);
        turn_until(&mut s, &mut engine, t0, "the unused templates deleted", |_| templates_in(&redis) == 0);
        s.shutdown(&mut engine);
    }

    #[test]
    fn the_standby_writes_nothing_and_a_takeover_loads_the_table() {
        let redis = RedisServer::start_on(free_port());
        let ((mut active_engine, mut standby_engine), t0) = engines_with_a_client_each();
        let mut active = SharedStore::start(&settings(&redis.url()), config(&redis.url()), Role::Active);
        turn_until(&mut active, &mut active_engine, t0, "the load", |s| s.status().up);
        // The active relay's table (loaded empty, then merged with its live record) is written.
        turn_until(&mut active, &mut active_engine, t0, "the record in Redis", |_| records(&redis).len() == 1);

        // The standby holds a record of its own (say, from before it lost the address): it
        // is dropped, never written, and nothing is answered.
        let mut standby = SharedStore::start(&settings(&redis.url()), config(&redis.url()), Role::Standby);
        assert!(!standby.serving());
        standby.become_standby(&mut standby_engine);
        assert_eq!(standby_engine.table().len(), 0);
        let removed = &standby_engine.counters().proxy.removed;
        assert_eq!((removed[Removal::HandedOver], removed[Removal::Flushed]), (1, 0), "counted as handed over");
        for _ in 0..20 {
            standby.flush_changes(&mut standby_engine, t0);
        }
        assert_eq!(records(&redis).len(), 1, "the standby wrote nothing");

        // The active one hands over; the other takes over and loads what it wrote.
        active.become_standby(&mut active_engine);
        assert_eq!(active_engine.table().len(), 0);
        assert!(!active.serving());
        standby.become_active();
        assert!(!standby.serving(), "silent while loading");
        turn_until(&mut standby, &mut standby_engine, t0, "the takeover", |s| s.serving());
        assert!(standby.status().up);
        assert_eq!(standby_engine.table().len(), 1, "the other relay's client");
        assert_eq!(encoded(&standby_engine)[0].0, records(&redis)[0].0);
        standby.shutdown(&mut standby_engine);
        active.shutdown(&mut active_engine);
    }
}
