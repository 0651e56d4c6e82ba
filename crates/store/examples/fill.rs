//! Write a client table store of N synthetic records dated now, for benchmarks that start
//! cdra with a large table (`bench/mgmt`: `cdra cache list` over 1,000,000 records).
//!
//! `cargo run --release -p cdra-store --example fill -- --records N --path FILE [--iface NAME]`
//!
//! Each record is a bound client (the store tests' realistic 300-byte DHCPACK, a one-day
//! server lease that started now, no short-lease timer) on downstream interface `NAME`
//! (default `rd0`), with addresses from 10.0.0.1 up: outside the 10.64.0.0/14 subnet the
//! benchmark's clients get leases from, so they never collide with them.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use cdra_core::persist::encode_record;
use cdra_store::open;

#[path = "../tests/common/mod.rs"]
mod common;

fn main() {
    let mut records = 1_000_000u64;
    let mut path: Option<PathBuf> = None;
    let mut iface = common::IFACE.to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--records" => records = args.next().and_then(|v| v.parse().ok()).expect("--records N"),
            "--path" => path = Some(PathBuf::from(args.next().expect("--path FILE"))),
            "--iface" => iface = args.next().expect("--iface NAME"),
            other => panic!("usage: fill --records N --path FILE [--iface NAME] (unknown {other})"),
        }
    }
    let path = path.expect("--path FILE");
    // `common::record` takes its times in seconds (a record keeps them to the second).
    let now_secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let all: Vec<(Vec<u8>, Vec<u8>)> = (0..records)
        .map(|i| {
            let mut r = common::record(i, now_secs);
            r.set_client_lease_end(None);
            let mut v = Vec::new();
            encode_record(&r, &iface, &mut v);
            (common::key(i), v)
        })
        .collect();
    let cfg = common::config(&path, 100);
    let (store, _) = open(&cfg).expect("open");
    let w = store.start_writer();
    assert!(w.replace_all(all), "writer refused the table");
    w.shutdown().expect("shutdown");
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!("{records} records on {iface} written to {} ({:.0} MB)", path.display(), size as f64 / 1e6);
}
