//! The pair's lease (`<prefix>:active`) against a real `redis-server` on loopback (as
//! redis_backend.rs starts one): who gets it, how fast the other takes it when the holder
//! stops renewing, and what each does when Redis is gone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdra_store::{Attempt, Lease, LeaseChange, LeaseClient, LeaseConfig, RedisConfig};

#[path = "support/redis_server.rs"]
mod redis_server;
use redis_server::RedisServer as Server;

const TTL: Duration = Duration::from_millis(1200);

fn lease(port: u16, node: &str) -> LeaseConfig {
    let mut redis = RedisConfig::new(format!("redis://127.0.0.1:{port}/0"));
    redis.key_prefix = "cdra:lease-test".into();
    LeaseConfig { redis, ttl: TTL, node_id: node.into() }
}

/// A lease thread whose changes are collected, and how many times it woke the loop.
fn started(config: LeaseConfig) -> (Lease, Arc<AtomicUsize>) {
    let wakes = Arc::new(AtomicUsize::new(0));
    let w = Arc::clone(&wakes);
    let lease = Lease::start(config, move || {
        w.fetch_add(1, Ordering::Relaxed);
    })
    .expect("thread");
    (lease, wakes)
}

fn next_change(lease: &Lease, within: Duration) -> Option<(LeaseChange, Duration)> {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if let Some(c) = lease.try_recv() {
            return Some((c, t0.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

#[test]
fn one_of_two_gets_the_lease_and_the_other_takes_it_within_ttl_when_the_holder_stops() {
    let server = Server::start();
    let mut a = LeaseClient::new(lease(server.port(), "relay-a"));
    let mut b = LeaseClient::new(lease(server.port(), "relay-b"));
    assert_eq!(a.attempt(false, None), Attempt::Held);
    assert_eq!(server.cli(&["GET", "cdra:lease-test:active"]), "relay-a");
    match b.attempt(false, None) {
        Attempt::HeldByOther { holder, remaining } => {
            assert_eq!(holder.as_deref(), Some("relay-a"));
            assert!(remaining > Duration::ZERO && remaining <= TTL, "{remaining:?}");
        }
        other => panic!("b must find a holding it: {other:?}"),
    }
    assert_eq!(a.attempt(true, None), Attempt::Held, "renewed");
    assert!(matches!(b.attempt(true, None), Attempt::HeldByOther { .. }), "b cannot renew what it does not hold");
    assert_eq!(server.cli(&["GET", "cdra:lease-test:active"]), "relay-a", "b's renewal changed nothing");

    // The holder dies (stops renewing): b's thread takes the lease within ttl.
    let (b, woken) = started(lease(server.port(), "relay-b"));
    let (change, took) = next_change(&b, TTL + TTL / 2).expect("b takes over");
    assert_eq!(change, LeaseChange::Acquired);
    assert!(took <= TTL + Duration::from_millis(100), "took {took:?} for a lease of {TTL:?}");
    assert_eq!(woken.load(Ordering::Relaxed), 1, "the loop was woken");
    assert_eq!(server.cli(&["GET", "cdra:lease-test:active"]), "relay-b");
    // Renewed, not lost, over several ttls.
    assert_eq!(next_change(&b, TTL * 3), None);
    assert!(matches!(a.attempt(true, None), Attempt::HeldByOther { .. }), "a finds it lost");
    // A clean stop hands the key back at once.
    assert!(b.stop(), "released");
    assert_eq!(server.cli(&["EXISTS", "cdra:lease-test:active"]), "0");
    assert_eq!(a.attempt(false, None), Attempt::Held);
}

#[test]
fn redis_down_the_holder_goes_standby_within_ttl_then_both_alone_after_two_ttls() {
    let server = Server::start();
    let (a, _) = started(lease(server.port(), "relay-a"));
    assert_eq!(next_change(&a, TTL).map(|c| c.0), Some(LeaseChange::Acquired));
    let (b, _) = started(lease(server.port(), "relay-b"));
    assert_eq!(next_change(&b, TTL * 2), None, "b stays standby while a renews");
    drop(server);
    let gone = Instant::now();
    // a: silent before its key could have expired in Redis (ttl after its last renewal).
    assert_eq!(next_change(&a, TTL * 2).map(|c| c.0), Some(LeaseChange::Expired));
    assert!(gone.elapsed() < TTL, "a gave the role up {:?} after Redis went, lease {TTL:?}", gone.elapsed());
    // Both alone after 2 x ttl without Redis (each counted from its last reply).
    assert_eq!(next_change(&a, TTL * 3).map(|c| c.0), Some(LeaseChange::Alone));
    assert_eq!(next_change(&b, TTL * 3).map(|c| c.0), Some(LeaseChange::Alone));
    assert!(gone.elapsed() >= TTL * 2 - TTL / 3, "not alone before 2 x ttl: {:?}", gone.elapsed());
    a.stop();
    b.stop();
}

#[test]
fn a_single_relay_holds_the_lease_as_soon_as_it_starts() {
    let server = Server::start();
    let (a, _) = started(lease(server.port(), "alone"));
    let (change, took) = next_change(&a, TTL).expect("acquired");
    assert_eq!(change, LeaseChange::Acquired);
    assert!(took < Duration::from_millis(300), "{took:?}");
    assert_eq!(next_change(&a, TTL * 3), None, "kept");
    a.stop();
}

#[test]
fn a_fenced_writer_commits_only_while_the_lease_names_it() {
    let server = Server::start();
    let config = lease(server.port(), "a").redis;
    let mut a = LeaseClient::new(lease(server.port(), "a"));
    assert_eq!(a.attempt(false, None), Attempt::Held);
    let records = format!("{}:records", config.key_prefix);
    let writer = cdra_store::connect_redis(&config).expect("connect").fenced("a".into()).start_writer();
    writer.upsert(b"k1", b"v1");
    let deadline = Instant::now() + Duration::from_secs(5);
    while writer.stats().commits == 0 {
        assert!(Instant::now() < deadline, "the holder's commit");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(server.cli(&["HGET", &records, "k1"]), "v1");
    // The lease moves to b (a's expired, say); a's late commits, a full dump above all,
    // must not land.
    server.cli(&["SET", "cdra:lease-test:active", "b"]);
    server.cli(&["HSET", &records, "k2", "b's"]);
    writer.replace_all(vec![(b"k1".to_vec(), b"old".to_vec())]);
    writer.upsert(b"k3", b"v3");
    let deadline = Instant::now() + Duration::from_secs(5);
    while writer.stats().errors == 0 {
        assert!(Instant::now() < deadline, "the refused commit");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(writer.stats().last_error.unwrap_or_default().contains("does not hold the pair's lease"));
    assert_eq!(server.cli(&["HGET", &records, "k1"]), "v1", "not overwritten");
    assert_eq!(server.cli(&["HGET", &records, "k2"]), "b's", "not deleted by a's dump");
    assert_eq!(server.cli(&["HEXISTS", &records, "k3"]), "0");
    // Back to a (it takes the lease again): what it kept is committed on the retry.
    server.cli(&["SET", "cdra:lease-test:active", "a"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.cli(&["HGET", &records, "k3"]) != "v3" {
        assert!(Instant::now() < deadline, "the retry once a holds the lease again");
        std::thread::sleep(Duration::from_millis(20));
    }
    writer.shutdown().expect("closed");
}
