//! The client table in Redis: commit latency of group commits, the cost of a full dump, and
//! the time to load N records the way a relay taking over does (connect, `HGETALL`, decode
//! every value), with realistic records (the real `cdra_core` encoding of a bound client
//! with a 300-byte DHCPACK).
//!
//! ```text
//! redis-server --port 6390 --bind 127.0.0.1 --save '' --appendonly no &
//! cargo run --release -p cdra-store --example redis_bench -- --url redis://127.0.0.1:6390/0 [--records N]
//! ```
//!
//! Uses (and deletes at the end) the keys `cdra:bench:records` and `cdra:bench:meta`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use cdra_core::persist::decode_record_borrowed;
use cdra_store::{connect_redis, RedisConfig};

fn wait_committed(w: &cdra_store::Writer, ops: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while w.stats().ops_committed < ops {
        assert!(Instant::now() < deadline, "the writer did not commit: {:?}", w.stats());
        std::thread::sleep(Duration::from_micros(100));
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let mut records = 100_000u64;
    let mut url = "redis://127.0.0.1:6379/0".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--records" => records = args.next().and_then(|v| v.parse().ok()).expect("--records N"),
            "--url" => url = args.next().expect("--url URL"),
            other => {
                eprintln!("usage: redis_bench [--url URL] [--records N] (unknown {other})");
                std::process::exit(2);
            }
        }
    }
    let mut cfg = RedisConfig::new(url);
    cfg.key_prefix = "cdra:bench".into();
    cfg.timeout = Duration::from_secs(30);

    // A full dump of N records: one MULTI/EXEC (DEL, then HSET in chunks of 1,000).
    let all: Vec<(Vec<u8>, Vec<u8>)> = (0..records).map(|i| common::pair(i, 1_000_000 + i)).collect();
    let bytes: usize = all.iter().map(|(k, v)| k.len() + v.len()).sum();
    let w = connect_redis(&cfg).expect("connect").start_writer();
    let t = Instant::now();
    assert!(w.replace_all(all));
    wait_committed(&w, 1);
    println!(
        "full dump of {records} records ({:.0} MB): {:.3} s (one MULTI/EXEC)",
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    // Group commits: K changed clients per commit window, 200 windows each; the latency is
    // from the first upsert of a window to its commit being acknowledged by Redis.
    for k in [1u64, 10, 100, 1000] {
        let mut lat: Vec<f64> = Vec::new();
        let mut commit: Vec<f64> = Vec::new();
        for round in 0..200u64 {
            let before = w.stats().ops_committed;
            let t = Instant::now();
            for j in 0..k {
                let i = (round * 7919 + j * 104_729) % records;
                let (key, value) = common::pair(i, 2_000_000 + round * k + j);
                assert!(w.upsert(&key, &value));
            }
            wait_committed(&w, before + k);
            lat.push(t.elapsed().as_secs_f64() * 1e3);
            commit.push(w.stats().last_commit_duration.as_secs_f64() * 1e3);
            // Past the commit interval: the next window's first change is committed at once.
            std::thread::sleep(Duration::from_millis(101));
        }
        lat.sort_by(f64::total_cmp);
        commit.sort_by(f64::total_cmp);
        println!(
            "group commit of {k:>4} changes: submit->committed p50 {:.2} ms p99 {:.2} ms; MULTI/EXEC p50 {:.2} ms p99 {:.2} ms",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            percentile(&commit, 0.5),
            percentile(&commit, 0.99)
        );
    }
    let stats = w.shutdown().expect("shutdown");
    assert_eq!(stats.errors, 0, "{stats:?}");

    // A takeover: connect, HGETALL, decode every record.
    let t = Instant::now();
    let mut store = connect_redis(&cfg).expect("connect");
    let connected = t.elapsed();
    let pairs = store.load_all().expect("HGETALL");
    let fetched = t.elapsed();
    let mut decoded = 0usize;
    for (_, v) in &pairs {
        if decode_record_borrowed(v).is_ok() {
            decoded += 1;
        }
    }
    let total = t.elapsed();
    assert_eq!(decoded as u64, records);
    println!(
        "load {records} records: connect {:.1} ms, HGETALL {:.3} s, decode {:.3} s, total {:.3} s ({:.0} records/s)",
        connected.as_secs_f64() * 1e3,
        (fetched - connected).as_secs_f64(),
        (total - fetched).as_secs_f64(),
        total.as_secs_f64(),
        records as f64 / total.as_secs_f64()
    );
    let _: () = redis::cmd("DEL")
        .arg(cfg.records_key())
        .arg(cfg.meta_key())
        .query(&mut redis::Client::open(cfg.url.as_str()).expect("url").get_connection().expect("connect"))
        .expect("DEL");
}
