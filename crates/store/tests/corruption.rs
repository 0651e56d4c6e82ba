//! Damaged files: open() never panics, never fails, and never loads silently wrong data.
//! A damaged file is moved aside (byte for byte what was there) and an empty store
//! takes its place.
//!
//! `open` runs redb under `catch_unwind` and turns a panic into "damaged"; the release
//! profile aborts on panic instead, so these tests also assert that no warning says
//! "panicked" (a panic inside redb would be a crash loop in production).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cdra_store::{open, OpenReport};
use common::*;

const RECORDS: u64 = 2_000;

/// A store holding `RECORDS` records, written in one commit (a deterministic file layout).
fn fixture(dir: &Path) -> (PathBuf, Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>) {
    let path = dir.join("fixture.redb");
    let (store, _) = open(&config(&path, 10)).expect("open");
    let w = store.start_writer();
    let all: Vec<_> = (0..RECORDS).map(|i| pair(i, 1_000 + i)).collect();
    assert!(w.replace_all(all.clone()));
    w.shutdown().expect("shutdown");
    let bytes = std::fs::read(&path).expect("read");
    (path, bytes, all.into_iter().collect())
}

enum Outcome {
    MovedAside,
    Intact,
}

/// Write `bytes` as a store, open it, and check the contract; returns what happened.
/// `exact`: the moved-aside file must be byte for byte `bytes` (redb refused it before
/// writing anything); a file redb could open was touched by its integrity check.
fn open_damaged(dir: &Path, name: &str, bytes: &[u8], original: &BTreeMap<Vec<u8>, Vec<u8>>, exact: bool) -> Outcome {
    let path = dir.join(format!("{name}.redb"));
    std::fs::write(&path, bytes).expect("write");
    let (store, report) = match open(&config(&path, 10)) {
        Ok(ok) => ok,
        Err(e) => panic!("{name}: open failed: {e}"),
    };
    let OpenReport { records, moved_aside, migrated_from, warning } = report;
    assert_eq!(migrated_from, None, "{name}");
    match moved_aside {
        Some(aside) => {
            let warning = warning.unwrap_or_else(|| panic!("{name}: moved aside without a warning"));
            assert!(!warning.contains("panicked"), "{name}: redb panicked: {warning}");
            assert!(warning.contains(&*aside.to_string_lossy()), "{name}: {warning}");
            assert!(!warning.contains('\n'), "{name}: one line");
            let name_ok = aside.file_name().map(|f| f.to_string_lossy().starts_with(&format!("{name}.redb.corrupt-")));
            assert_eq!(name_ok, Some(true), "{name}: {}", aside.display());
            if exact {
                assert!(std::fs::read(&aside).expect("aside") == bytes, "{name}: the bad file is kept as it was");
            }
            assert_eq!(records, 0, "{name}");
            assert!(store.load_all().expect("load").is_empty(), "{name}: empty store");
            // The new store works.
            let w = store.start_writer();
            let (k, v) = pair(1, 1);
            assert!(w.upsert(&k, &v));
            w.shutdown().expect("shutdown");
            let (store, report) = open(&config(&path, 10)).expect("reopen");
            assert_eq!((report.records, report.moved_aside), (1, None), "{name}");
            drop(store);
            Outcome::MovedAside
        }
        None => {
            assert_eq!(warning, None, "{name}");
            let got: BTreeMap<_, _> = store.load_all().expect("load").into_iter().collect();
            let _ = exact;
            assert_eq!(records, got.len(), "{name}");
            assert!(got == *original, "{name}: opened but the records differ ({} of {})", got.len(), original.len());
            Outcome::Intact
        }
    }
}

fn must_move_aside(dir: &Path, name: &str, bytes: &[u8], original: &BTreeMap<Vec<u8>, Vec<u8>>) {
    let outcome = open_damaged(dir, name, bytes, original, true);
    assert!(matches!(outcome, Outcome::MovedAside), "{name}: damage not detected");
}

#[test]
fn truncated_files_are_moved_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, orig, original) = fixture(dir.path());
    let n = orig.len();
    eprintln!("fixture: {RECORDS} records, {n} bytes");
    for len in [0, 1, 9, 100, 511, 4096, n / 4, n / 2, n * 3 / 4, n - 4096, n - 1] {
        must_move_aside(dir.path(), &format!("trunc-{len}"), &orig[..len], &original);
    }
}

#[test]
fn garbled_headers_and_middles_are_moved_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, orig, original) = fixture(dir.path());
    let mut rng = Rng(seed("garbled"));
    let n = orig.len();
    // The magic number and file-wide fields; both commit slots; a page's worth of the
    // middle (B-tree pages: their checksums are in their parents); a single byte.
    for (at, len) in [(0, 64), (0, 4096), (64, 256), (n / 2, 4096), (n / 3, 1)] {
        let mut b = orig.clone();
        rng.fill(&mut b[at..at + len]);
        if b == orig {
            continue;
        }
        must_move_aside(dir.path(), &format!("garble-{at}+{len}"), &b, &original);
    }
}

#[test]
fn files_that_are_not_cdra_stores_are_moved_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let none = BTreeMap::new();
    let mut rng = Rng(seed("not-a-store"));
    let mut random = vec![0u8; 65536];
    rng.fill(&mut random);
    must_move_aside(dir.path(), "random", &random, &none);
    must_move_aside(dir.path(), "text", "[cdra]\nmode = \"proxy\"\n".repeat(500).as_bytes(), &none);
    let mut sqlite = b"SQLite format 3\0".to_vec();
    sqlite.resize(8192, 0);
    must_move_aside(dir.path(), "sqlite", &sqlite, &none);

    // Another program's redb database.
    let foreign = dir.path().join("foreign-src.redb");
    {
        let db = redb::Database::create(&foreign).expect("create");
        let txn = db.begin_write().expect("txn");
        {
            let mut t = txn.open_table(redb::TableDefinition::<u64, u64>::new("inventory")).expect("table");
            t.insert(1, 2).expect("insert");
        }
        txn.commit().expect("commit");
    }
    let bytes = std::fs::read(&foreign).expect("read");
    let outcome = open_damaged(dir.path(), "foreign", &bytes, &none, false);
    assert!(matches!(outcome, Outcome::MovedAside), "another program's database is not ours");
    // Its data is still there, under the new name.
    let aside = std::fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .find(|p| p.to_string_lossy().contains("foreign.redb.corrupt-"))
        .expect("moved aside");
    let db = redb::Database::open(&aside).expect("still a redb file");
    let txn = redb::ReadableDatabase::begin_read(&db).expect("read");
    let t = txn.open_table(redb::TableDefinition::<u64, u64>::new("inventory")).expect("table");
    assert_eq!(t.get(1).expect("get").map(|v| v.value()), Some(2));
}

/// Random damage anywhere: truncations, garbled runs, single bit flips. Whatever happens,
/// open() returns a usable store, and either it moved the file aside or every record it
/// loads is exactly what was written (damage to free space or to the inactive commit slot
/// is harmless).
#[test]
fn random_damage_never_panics_and_never_loads_wrong_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, orig, original) = fixture(dir.path());
    let mut rng = Rng(seed("random-damage"));
    let (mut aside, mut intact) = (0, 0);
    for round in 0..120 {
        let mut b = orig.clone();
        let what = match rng.below(3) {
            0 => {
                let len = rng.below(b.len() as u64) as usize;
                b.truncate(len);
                format!("truncate to {len}")
            }
            1 => {
                let len = 1 + rng.below(8192) as usize;
                let at = rng.below((b.len() - len) as u64) as usize;
                rng.fill(&mut b[at..at + len]);
                format!("garble {at}+{len}")
            }
            _ => {
                let at = rng.below(b.len() as u64) as usize;
                b[at] ^= 1 << rng.below(8);
                format!("flip a bit at {at}")
            }
        };
        eprintln!("round {round}: {what}");
        match open_damaged(dir.path(), &format!("r{round}"), &b, &original, true) {
            Outcome::MovedAside => aside += 1,
            Outcome::Intact => intact += 1,
        }
    }
    eprintln!("random damage: {aside} moved aside, {intact} harmless (data intact)");
    assert!(aside > 0);
}
