//! The Redis backend against a real `redis-server` (Debian's, installed by scripts/e2e-deps)
//! on loopback, one private server per test, without persistence.

use std::time::{Duration, Instant};

use cdra_store::{connect_redis, RedisConfig, StoreError};

#[path = "support/redis_server.rs"]
mod redis_server;
use redis_server::{free_port, RedisServer as Server};

fn config(url: String) -> RedisConfig {
    let mut c = RedisConfig::new(url);
    c.key_prefix = "cdra:test".into();
    c.timeout = Duration::from_millis(500);
    c
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn changes_are_committed_as_one_hash_and_read_back() {
    let server = Server::start();
    let cfg = config(server.url());
    let mut store = connect_redis(&cfg).expect("connects");
    assert!(store.is_empty().expect("HLEN"));
    let writer = store.start_writer();
    assert!(writer.upsert(b"a", b"1"));
    assert!(writer.upsert(b"b", b"2"));
    assert!(writer.upsert(b"c", b"3"));
    assert!(writer.delete(b"b"));
    assert!(writer.upsert(b"a", b"1bis"));
    let stats = writer.shutdown().expect("clean shutdown");
    assert_eq!(stats.ops_committed, 5);
    assert_eq!(stats.errors, 0);
    let mut all = connect_redis(&cfg).expect("connects").load_all().expect("HGETALL");
    all.sort();
    assert_eq!(all, vec![(b"a".to_vec(), b"1bis".to_vec()), (b"c".to_vec(), b"3".to_vec())]);
    assert_eq!(server.cli(&["HGET", "cdra:test:meta", "schema_version"]), cdra_store::SCHEMA_VERSION.to_string());
    assert_eq!(server.cli(&["HGET", "cdra:test:meta", "record_format"]), cdra_store::RECORD_FORMAT.to_string());
}

#[test]
fn a_dump_replaces_the_table_atomically() {
    let server = Server::start();
    let cfg = config(server.url());
    let writer = connect_redis(&cfg).expect("connects").start_writer();
    writer.upsert(b"old", b"x");
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..2500u32).map(|i| (i.to_be_bytes().to_vec(), vec![7u8; 100])).collect();
    assert!(writer.replace_all(pairs));
    writer.upsert(b"after", b"y");
    let stats = writer.shutdown().expect("clean shutdown");
    assert_eq!(stats.dumps, 1);
    let all = connect_redis(&cfg).expect("connects").load_all().expect("HGETALL");
    assert_eq!(all.len(), 2501, "the dump's 2500 and the change after it; `old` gone");
    assert!(!all.iter().any(|(k, _)| k == b"old"));
}

#[test]
fn an_unreachable_redis_is_an_error_within_the_timeout() {
    let cfg = config(format!("redis://127.0.0.1:{}/0", free_port()));
    let t = Instant::now();
    let err = connect_redis(&cfg).expect_err("nobody listens");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(err.to_string().contains("cannot connect"), "{err}");
}

#[test]
fn a_table_from_a_newer_cdra_is_refused_and_left_alone() {
    let server = Server::start();
    server.cli(&["HSET", "cdra:test:meta", "schema_version", "99", "record_format", "1"]);
    server.cli(&["HSET", "cdra:test:records", "k", "v"]);
    let err = connect_redis(&config(server.url())).expect_err("newer schema");
    assert!(matches!(err, StoreError::NewerSchema { found: 99, .. }), "{err}");
    assert_eq!(server.cli(&["HLEN", "cdra:test:records"]), "1");
}

#[test]
fn a_password_is_not_shown() {
    let cfg = RedisConfig::new("redis://:secret@10.0.0.1:6379/2");
    assert_eq!(cfg.display_url(), "redis://***@10.0.0.1:6379/2");
}

#[test]
fn a_redis_that_goes_away_is_retried_and_one_that_comes_back_empty_asks_for_a_dump() {
    let server = Server::start();
    let port = server.port();
    let cfg = config(server.url());
    let writer = connect_redis(&cfg).expect("connects").start_writer();
    writer.upsert(b"a", b"1");
    wait_for("the first commit", || writer.stats().commits == 1);
    assert!(!writer.dump_due());
    drop(server); // killed: its data is gone (no persistence)
    writer.upsert(b"b", b"2");
    wait_for("a failed commit", || writer.stats().errors >= 1);
    assert_eq!(writer.stats().ops_committed, 1, "the change waits");
    let server = Server::start_on(port);
    wait_for("the retried commit", || writer.stats().ops_committed == 2);
    assert_eq!(writer.stats().store_lost, 1);
    assert!(writer.dump_due(), "the table must be written whole again");
    assert!(writer.replace_all(vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"2".to_vec())]));
    assert!(!writer.dump_due());
    writer.shutdown().expect("clean shutdown");
    assert_eq!(server.cli(&["HLEN", "cdra:test:records"]), "2");
}
