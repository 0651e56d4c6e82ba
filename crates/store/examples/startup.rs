//! Start-up with a large client table, the way the daemon does it: open the store, decode
//! every record, restore them into an `Engine` (proxy mode), and the memory that costs.
//!
//! `cargo run --release -p cdra-store --example startup -- [--records N] [--dir DIR]`
//! (default 1,000,000 records in /tmp). Prints the start-up time, the client table's heap
//! per client, and the process's resident memory. `--keep` keeps the store file; `--load
//! FILE` measures start-up from an existing file in a fresh process (so the resident
//! figure holds only what start-up itself used):
//! `startup --keep --dir /tmp && startup --load /tmp/cdra-startup-bench-PID.redb`

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Instant;

use cdra_core::config::{Downstream, EngineConfig, Ipv4Net, Mode};
use cdra_core::persist::{decode_record_with, encode_record, template_key, RestoreReport, Templates};
use cdra_core::templates::TemplateSet;
use cdra_core::{Engine, Timestamp};
use cdra_store::open;

#[path = "../tests/common/mod.rs"]
mod common;

/// Live heap bytes, counted by a wrapper around the system allocator: the table's real
/// size, whatever the allocator keeps cached from generating the test data.
struct Counting;
static LIVE: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is
// added.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as i64, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        LIVE.fetch_sub(l.size() as i64, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { std::alloc::System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as i64 - l.size() as i64, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { std::alloc::System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live_heap() -> i64 {
    LIVE.load(std::sync::atomic::Ordering::Relaxed)
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn main() {
    let mut records = 1_000_000usize;
    let mut dir = std::env::temp_dir();
    let mut load: Option<PathBuf> = None;
    let mut keep = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--records" => records = args.next().and_then(|v| v.parse().ok()).expect("--records N"),
            "--dir" => dir = PathBuf::from(args.next().expect("--dir DIR")),
            "--load" => load = Some(PathBuf::from(args.next().expect("--load FILE"))),
            "--keep" => keep = true,
            other => panic!("usage: startup [--records N] [--dir DIR] (unknown {other})"),
        }
    }
    let path = load.clone().unwrap_or_else(|| dir.join(format!("cdra-startup-bench-{}.redb", std::process::id())));
    let cfg = common::config(&path, 100);
    if load.is_none() {
        // As the daemon writes them (record format 4, paper 5.7): each record names its
        // reply's shared template, stored once, and keeps only its own bytes.
        let mut set = TemplateSet::new(1024);
        // One reply per template keeps it alive (the set holds them weakly).
        let mut holders = std::collections::HashMap::new();
        let mut all: Vec<(Vec<u8>, Vec<u8>)> = (0..records as u64)
            .map(|i| {
                // Times in seconds (`common::record`), a thousand clients a second.
                let mut r = common::record(i, 1_000_000 + i / 1000);
                if let Some(reply) = r.reply.as_mut() {
                    set.intern(reply);
                    holders.entry(reply.template().id()).or_insert_with(|| reply.clone());
                }
                let mut v = Vec::new();
                encode_record(&r, common::IFACE, &mut v);
                (common::key(i), v)
            })
            .collect();
        all.extend(set.iter().map(|t| (template_key(t.id()).to_vec(), t.as_bytes().to_vec())));
        drop(holders);
        let (store, _) = open(&cfg).expect("open");
        let w = store.start_writer();
        assert!(w.replace_all(all));
        w.shutdown().expect("shutdown");
    }
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);

    let ds = Downstream::up(
        common::IFACE,
        2,
        Ipv4Net { addr: Ipv4Addr::new(10, 0, 0, 1), prefix_len: 8 },
        Some([2, 0, 0, 0, 0, 1]),
    );
    let mut config = EngineConfig::relay(vec![common::SERVER], vec![ds], vec![3]);
    config.mode = Mode::Proxy;
    config.proxy.max_clients = records.max(1);
    let mut engine = Engine::new(config);
    // Some 1,000-2,000 s after the records were written: none dated in the future, none
    // older than `max_age`.
    let now = Timestamp::from_secs(1_001_000 + records as u64 / 1000);

    let before = rss_bytes();
    let heap_before = live_heap();
    let t = Instant::now();
    let (store, _) = open(&cfg).expect("open");
    let opened = t.elapsed();
    // As the daemon does (crates/cdra/src/persistence.rs): decode and restore each record
    // straight from the store's iterator.
    let mut report = RestoreReport::default();
    engine.reserve(records);
    let mut templates = Templates::new();
    store.visit_templates(|k, v| templates.add(k, v).expect("a template")).expect("visit");
    store
        .visit(|_, v| {
            if let Ok((record, iface)) = decode_record_with(v, &templates) {
                engine.restore_one(now, record, iface, &mut report);
            }
        })
        .expect("visit");
    drop(templates);
    let total = t.elapsed();
    let after = rss_bytes();
    // The daemon keeps its store open: its cache (bounded, 64 MiB) is in the resident figure.
    let heap = (live_heap() - heap_before).max(0) as f64;
    assert_eq!(report.loaded, records, "{report:?}");
    let shared = engine.table().templates().len();
    let memory = engine.table().memory();
    let timers = engine.timers_memory();
    let per_client = heap / records as f64;
    drop(store);
    println!("records:                 {records} (store file {:.0} MB)", size as f64 / 1e6);
    println!("open (integrity check):  {:.2} s", opened.as_secs_f64());
    println!("read + decode + restore: {:.2} s", (total - opened).as_secs_f64());
    println!("START-UP total:          {:.2} s", total.as_secs_f64());
    println!("client table heap:       {:.0} MiB ({per_client:.0} bytes per client)", heap / 1048576.0);
    println!("shared reply templates:  {shared} (paper 5.7: one per server and subnet here)");
    let share = |what: &str, bytes: usize| {
        println!(
            "  {what:<24} {:>6.1} MiB {:>6.1} bytes per client",
            bytes as f64 / 1048576.0,
            bytes as f64 / records as f64
        )
    };
    share("records (slab)", memory.records);
    share("long keys", memory.long_keys);
    share("key+address indexes", memory.indexes);
    share("own reply bytes", memory.own_reply_bytes);
    share("shared templates", memory.templates);
    share("pending order", memory.pending_order);
    share("timers", timers);
    share("sum", memory.total() + timers);
    println!(
        "  (ClientRecord: {} bytes, of which CachedReply: {} bytes; own reply bytes spilled to the heap: {} clients)",
        std::mem::size_of::<cdra_core::table::ClientRecord>(),
        std::mem::size_of::<cdra_core::table::CachedReply>(),
        engine.table().iter().filter(|(_, r)| r.reply.as_ref().is_some_and(|c| c.own_heap_len() > 0)).count()
    );
    println!(
        "process resident:        {:.0} MiB before start-up, {:.0} MiB after (with --load: the whole daemon-side cost, redb cache included)",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
    if keep || load.is_some() {
        println!("store kept at {} (run again with --load to measure start-up in a fresh process)", path.display());
    } else {
        let _ = std::fs::remove_file(&path);
    }
}
