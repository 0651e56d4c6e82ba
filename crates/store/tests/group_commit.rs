//! Group commit: many changes, few fsyncs, and a data plane that never waits.
//! Timing of the data plane's calls is reported, not asserted.

mod common;

use std::time::{Duration, Instant};

use cdra_store::open;
use common::*;

#[test]
fn ten_thousand_upserts_in_a_second_take_few_commits_and_microseconds_each() {
    let (_dir, path) = temp_store();
    let interval = Duration::from_millis(50);
    let (store, _) = open(&config(&path, interval.as_millis() as u64)).expect("open");
    let w = store.start_writer();
    // 2,000 clients, each changed five times in a row (a DISCOVER..ACK exchange touches a
    // record several times): 10,000 upserts over about a second, in batches of 10 per
    // millisecond as a data plane would after each receive batch.
    let pairs: Vec<_> = (0..10_000u64).map(|n| pair(n / 5, n)).collect();
    let mut call_ns: Vec<u64> = Vec::with_capacity(pairs.len());
    let start = Instant::now();
    for (n, (k, v)) in pairs.iter().enumerate() {
        let t = Instant::now();
        let accepted = w.upsert(k, v);
        call_ns.push(t.elapsed().as_nanos() as u64);
        assert!(accepted, "the queue never fills here");
        if n % 10 == 9 {
            // Pace to ~1 s in total whatever the per-call cost.
            let due = start + Duration::from_micros((n as u64 + 1) * 100);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
    let elapsed = start.elapsed();
    let mid = w.stats();
    let stats = w.shutdown().expect("shutdown");

    call_ns.sort_unstable();
    let pct = |p: f64| call_ns[((call_ns.len() as f64 - 1.0) * p) as usize];
    eprintln!(
        "group commit: 10000 upserts over {:.0} ms -> {} commits ({} before shutdown), {} records written; \
         last commit {:?}, longest {:?}; upsert call: p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns",
        elapsed.as_secs_f64() * 1e3,
        stats.commits,
        mid.commits,
        stats.records_written,
        stats.last_commit_duration,
        stats.max_commit_duration,
        pct(0.5),
        pct(0.99),
        pct(0.999),
        pct(1.0),
    );
    assert!(stats.commits < 100, "{} commits for 10,000 upserts", stats.commits);
    // At most one commit per interval (plus the first, at once, and the one at shutdown).
    let windows = (elapsed.as_millis() / interval.as_millis()) as u64;
    assert!(mid.commits <= windows + 2, "{} commits in {windows} windows", mid.commits);
    // And it did commit while the changes flowed, not only at the end.
    assert!(mid.commits >= 3, "{} commits in {windows} windows", mid.commits);
    // Coalescing: a client changed twice within a window is written once.
    assert!(stats.records_written < 10_000, "{}", stats.records_written);
    assert_eq!(stats.ops_submitted, 10_000);
    assert_eq!(stats.ops_committed, 10_000);
    assert_eq!((stats.queue_drops, stats.errors), (0, 0));

    // The last value of each client is what is stored.
    let (store, report) = open(&config(&path, 50)).expect("reopen");
    assert_eq!(report.records, 2_000);
    for (k, v) in store.load_all().expect("load") {
        let seq = check_pair(&k, &v).expect("decodes");
        assert_eq!(seq % 5, 4, "the newest write of each client wins");
        assert_eq!(k, key(seq / 5));
    }
}

#[test]
fn nothing_changed_means_no_commit() {
    let (_dir, path) = temp_store();
    let (store, _) = open(&config(&path, 10)).expect("open");
    let w = store.start_writer();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(w.stats().commits, 0);
    let (k, v) = pair(1, 1);
    assert!(w.upsert(&k, &v));
    let deadline = Instant::now() + Duration::from_secs(5);
    while w.stats().ops_committed < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    let after_one = w.stats().commits;
    assert_eq!(after_one, 1, "the first change after a quiet period is committed at once");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(w.stats().commits, 1, "and then nothing more");
    let stats = w.shutdown().expect("shutdown");
    assert_eq!(stats.commits, 1, "nothing left to commit at shutdown");
}
