//! Start-up cost of a big store: write N realistic records (real `cdra_core` encoding of a
//! bound client with a 300-byte DHCPACK), then time `open` (with its integrity check) +
//! `load_all` + `decode_record` of every value, the way cdra starts.
//!
//! ```text
//! cargo run --release -p cdra-store --example load_bench -- [--records N] [--dir DIR] [--keep]
//! ```
//!
//! Prints records/s and seconds for each step, and the file size. The page cache is warm
//! (the file was just written); a cold start reads the file from disk first.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use cdra_core::persist::decode_record;
use cdra_store::open;
use redb::{ReadableDatabase, ReadableTable};

fn rate(n: usize, d: Duration) -> String {
    format!("{:>9.0} records/s  {:>7.3} s", n as f64 / d.as_secs_f64(), d.as_secs_f64())
}

fn main() {
    let mut records = 1_000_000usize;
    let mut dir = std::env::temp_dir();
    let mut keep = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--records" => records = args.next().and_then(|v| v.parse().ok()).expect("--records N"),
            "--dir" => dir = args.next().expect("--dir DIR").into(),
            "--keep" => keep = true,
            other => {
                eprintln!("usage: load_bench [--records N] [--dir DIR] [--keep] (unknown {other})");
                std::process::exit(2);
            }
        }
    }
    let path = dir.join(format!("cdra-load-bench-{}.redb", std::process::id()));
    let cfg = common::config(&path, 100);

    let t = Instant::now();
    let all: Vec<(Vec<u8>, Vec<u8>)> = (0..records as u64).map(|i| common::pair(i, 1_000_000 + i)).collect();
    let bytes: usize = all.iter().map(|(k, v)| k.len() + v.len()).sum();
    println!(
        "generated {records} records in {:.2} s: key {} bytes, value {} bytes (record format {}), {:.0} MB in all",
        t.elapsed().as_secs_f64(),
        all[0].0.len(),
        all[0].1.len(),
        all[0].1[0],
        bytes as f64 / 1e6
    );

    // Write: one full dump through the Writer (one transaction, one commit).
    let t = Instant::now();
    let (store, _) = open(&cfg).expect("open");
    let w = store.start_writer();
    assert!(w.replace_all(all.clone()));
    let stats = w.shutdown().expect("shutdown");
    let write = t.elapsed();
    let size = std::fs::metadata(&path).expect("stat").len();
    println!(
        "write (full dump, 1 commit):        {}  file {:.0} MB ({:.0} bytes/record)",
        rate(records, write),
        size as f64 / 1e6,
        size as f64 / records as f64
    );
    assert_eq!(stats.records_written as usize, records);

    // The paper's periodic dump of a table where 1% changed: merged with what is stored.
    let mut all = all;
    for (n, i) in (0..records).step_by(100).enumerate() {
        all[i] = common::pair(i as u64, 3_000_000 + n as u64);
    }
    let t = Instant::now();
    let (store, _) = open(&cfg).expect("open");
    let opened = t.elapsed();
    let w = store.start_writer();
    let t = Instant::now();
    assert!(w.replace_all(all));
    let stats = w.shutdown().expect("shutdown");
    println!(
        "dump again, 1% changed:              {}  ({} rows written; open {:.2} s not counted)",
        rate(records, t.elapsed()),
        stats.records_written,
        opened.as_secs_f64()
    );

    // Group commits on the big store: windows of 1,000 and 10,000 changed clients.
    for changed in [1_000u64, 10_000] {
        let (store, _) = open(&cfg).expect("open");
        let w = store.start_writer();
        let step = records as u64 / changed;
        for j in 0..changed {
            let (k, v) = common::pair(j * step, 2_000_000 + j);
            assert!(w.upsert(&k, &v));
        }
        let stats = w.shutdown().expect("shutdown");
        println!(
            "group commit of {changed:>5} changes on the {records}-record store: {} commits, longest {:.1} ms",
            stats.commits,
            stats.max_commit_duration.as_secs_f64() * 1e3
        );
    }

    // The data plane's side: Writer::upsert latency, 20,000 upserts over ~1 s in batches of
    // 10 (a receive batch), on the big store, while the writer commits every 100 ms.
    {
        let (store, _) = open(&cfg).expect("open");
        let w = store.start_writer();
        let pairs: Vec<_> = (0..20_000u64).map(|j| common::pair(j * 37 % records as u64, 4_000_000 + j)).collect();
        let mut ns: Vec<u64> = Vec::with_capacity(pairs.len());
        let t0 = Instant::now();
        for (n, (k, v)) in pairs.iter().enumerate() {
            let t = Instant::now();
            assert!(w.upsert(k, v));
            ns.push(t.elapsed().as_nanos() as u64);
            if n % 10 == 9 {
                let due = t0 + Duration::from_micros((n as u64 + 1) * 50);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        }
        let stats = w.shutdown().expect("shutdown");
        ns.sort_unstable();
        let p = |q: f64| ns[((ns.len() - 1) as f64 * q) as usize];
        println!(
            "Writer::upsert call (20,000 over {:.1} s, {} commits): p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns",
            t0.elapsed().as_secs_f64(),
            stats.commits,
            p(0.5),
            p(0.99),
            p(0.999),
            p(1.0)
        );
    }

    // Start-up, as cdra does it: open (integrity check) + load_all + decode every value.
    let t0 = Instant::now();
    let (store, report) = open(&cfg).expect("open");
    let opened = t0.elapsed();
    let t = Instant::now();
    let loaded = store.load_all().expect("load_all");
    let load = t.elapsed();
    let t = Instant::now();
    let mut ok = 0usize;
    for (_, v) in &loaded {
        if decode_record(v).is_ok() {
            ok += 1;
        }
    }
    let decode = t.elapsed();
    let total = t0.elapsed();
    assert_eq!((report.records, loaded.len(), ok), (records, records, records));
    drop(loaded);
    println!("open (redb integrity check):         {}", rate(records, opened));
    println!("load_all (copy every pair):          {}", rate(records, load));
    println!("decode_record (every value):         {}", rate(records, decode));
    println!("START-UP open + load_all + decode:   {}", rate(records, total));

    // The same with visit (no copies), decoding in the callback.
    let t = Instant::now();
    let mut ok = 0usize;
    store
        .visit(|_, v| {
            if decode_record(v).is_ok() {
                ok += 1;
            }
        })
        .expect("visit");
    let visit = t.elapsed();
    assert_eq!(ok, records);
    println!("visit + decode (store already open): {}", rate(records, visit));
    drop(store);

    // For comparison: a plain redb open, without the integrity check, and a raw scan.
    let t = Instant::now();
    let db = redb::Database::builder().set_cache_size(64 << 20).open(&path).expect("open");
    let plain_open = t.elapsed();
    let t = Instant::now();
    let txn = db.begin_read().expect("read");
    let table = txn.open_table(redb::TableDefinition::<&[u8], &[u8]>::new("cdra_records")).expect("table");
    let mut n = 0usize;
    for row in table.iter().expect("iter") {
        let (_k, v) = row.expect("row");
        n += v.value().len().min(1);
    }
    let scan = t.elapsed();
    assert_eq!(n, records);
    println!(
        "(redb open without integrity check:  {:.3} s; raw scan {})",
        plain_open.as_secs_f64(),
        rate(records, scan)
    );
    drop(table);
    drop(txn);
    drop(db);

    // What one commit costs: single-record transactions, fsync'd, one- and two-phase.
    let small = dir.join(format!("cdra-commit-bench-{}.redb", std::process::id()));
    for two_phase in [false, true] {
        let _ = std::fs::remove_file(&small);
        let db = redb::Database::create(&small).expect("create");
        let def = redb::TableDefinition::<&[u8], &[u8]>::new("t");
        let (k, v) = common::pair(1, 1);
        let n = 300;
        let t = Instant::now();
        for _ in 0..n {
            let mut txn = db.begin_write().expect("txn");
            txn.set_two_phase_commit(two_phase);
            txn.open_table(def).expect("table").insert(k.as_slice(), v.as_slice()).expect("insert");
            txn.commit().expect("commit");
        }
        let d = t.elapsed();
        println!(
            "fsync'd commits, {}-phase:            {:>9.0} commits/s  {:>7.3} ms each",
            if two_phase { "two" } else { "one" },
            n as f64 / d.as_secs_f64(),
            d.as_secs_f64() * 1e3 / n as f64
        );
    }
    let _ = std::fs::remove_file(&small);

    if keep {
        println!("kept {}", path.display());
    } else {
        let _ = std::fs::remove_file(&path);
    }
}
