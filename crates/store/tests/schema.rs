//! Schema versions: newer is refused and left in place, older is migrated.
//!
//! These tests write the tables with redb directly, by their documented names
//! (docs/persistence.md): `cdra_meta` (`&str` -> bytes) and `cdra_records`; schema 0 is a
//! bare `clients` table.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use cdra_store::{open, StoreError, RECORD_FORMAT, SCHEMA_VERSION};
use common::*;
use redb::{ReadableDatabase, TableDefinition, TableHandle};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("cdra_meta");
const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("cdra_records");
const V0: TableDefinition<&[u8], &[u8]> = TableDefinition::new("clients");

fn set_meta(path: &Path, key: &str, value: u32) {
    let db = redb::Database::open(path).expect("open");
    let txn = db.begin_write().expect("txn");
    txn.open_table(META).expect("meta").insert(key, value.to_le_bytes().as_slice()).expect("insert");
    txn.commit().expect("commit");
}

fn get_meta(path: &Path, key: &str) -> Option<u32> {
    let db = redb::Database::open(path).expect("open");
    let txn = db.begin_read().expect("txn");
    let t = txn.open_table(META).expect("meta");
    let v = t.get(key).expect("get")?;
    Some(u32::from_le_bytes(v.value().try_into().expect("4 bytes")))
}

fn populated_store(path: &Path, n: u64) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let (store, _) = open(&config(path, 10)).expect("open");
    let w = store.start_writer();
    let all: Vec<_> = (0..n).map(|i| pair(i, i)).collect();
    assert!(w.replace_all(all.clone()));
    w.shutdown().expect("shutdown");
    all.into_iter().collect()
}

fn only_file_in(dir: &Path) -> bool {
    std::fs::read_dir(dir).expect("ls").count() == 1
}

#[test]
fn a_new_store_has_this_builds_metadata() {
    let (_dir, path) = temp_store();
    drop(open(&config(&path, 10)).expect("open"));
    assert_eq!(get_meta(&path, "schema_version"), Some(SCHEMA_VERSION));
    assert_eq!(get_meta(&path, "record_format"), Some(RECORD_FORMAT));
    assert_eq!(RECORD_FORMAT, u32::from(cdra_core::persist::RECORD_FORMAT));
}

#[test]
fn a_newer_schema_is_refused_and_left_in_place() {
    let (dir, path) = temp_store();
    let records = populated_store(&path, 10);
    set_meta(&path, "schema_version", SCHEMA_VERSION + 1);
    for _ in 0..2 {
        let err = open(&config(&path, 10)).expect_err("must refuse");
        assert!(
            matches!(err, StoreError::NewerSchema { found, supported, .. } if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
            "{err:?}"
        );
        let text = err.to_string();
        eprintln!("{text}");
        assert!(text.contains(&*path.to_string_lossy()), "{text}");
        assert!(
            text.contains(&format!("schema version {}", SCHEMA_VERSION + 1)) && text.contains("downgraded"),
            "{text}"
        );
        assert!(!text.contains('\n'));
        assert!(only_file_in(dir.path()), "nothing moved aside");
    }
    // Refusing did not change its data (redb's integrity check may rewrite its header).
    set_meta(&path, "schema_version", SCHEMA_VERSION);
    let (store, report) = open(&config(&path, 10)).expect("open after the 'upgrade'");
    assert_eq!(report.moved_aside, None);
    assert_eq!(store.load_all().expect("load").into_iter().collect::<BTreeMap<_, _>>(), records);
}

#[test]
fn a_newer_record_format_is_refused_and_left_in_place() {
    let (dir, path) = temp_store();
    populated_store(&path, 3);
    set_meta(&path, "record_format", RECORD_FORMAT + 1);
    let err = open(&config(&path, 10)).expect_err("must refuse");
    assert!(matches!(err, StoreError::NewerRecordFormat { .. }), "{err:?}");
    eprintln!("{err}");
    assert!(err.to_string().contains("record format"));
    assert!(only_file_in(dir.path()));
}

#[test]
fn a_newer_redb_file_format_is_refused_and_left_in_place() {
    let (dir, path) = temp_store();
    populated_store(&path, 3);
    let mut bytes = std::fs::read(&path).expect("read");
    // Both commit slots' format version byte (redb header.rs: slots at 64 and 192).
    assert_eq!((bytes[64], bytes[192]), (3, 3), "redb 4 writes file format 3");
    bytes[64] = 4;
    bytes[192] = 4;
    std::fs::write(&path, &bytes).expect("write");
    let err = open(&config(&path, 10)).expect_err("must refuse");
    assert!(matches!(err, StoreError::NewerFileFormat { found: 4, supported: 3, .. }), "{err:?}");
    eprintln!("{err}");
    assert!(only_file_in(dir.path()));
    assert!(std::fs::read(&path).expect("read") == bytes, "untouched");
}

#[test]
fn a_version_0_store_is_migrated_in_one_step() {
    let (dir, path) = temp_store();
    // Schema 0: records in `clients`, no metadata table.
    let expected: BTreeMap<Vec<u8>, Vec<u8>> = (0..300).map(|i| pair(i, 500 + i)).collect();
    {
        let db = redb::Database::create(&path).expect("create");
        let txn = db.begin_write().expect("txn");
        {
            let mut t = txn.open_table(V0).expect("table");
            for (k, v) in &expected {
                t.insert(k.as_slice(), v.as_slice()).expect("insert");
            }
        }
        txn.commit().expect("commit");
    }
    let (store, report) = open(&config(&path, 10)).expect("open");
    assert_eq!(report.migrated_from, Some(0));
    assert_eq!((report.records, report.moved_aside.clone()), (300, None));
    assert_eq!(store.load_all().expect("load").into_iter().collect::<BTreeMap<_, _>>(), expected);
    for (k, v) in &expected {
        check_pair(k, v).expect("decodes");
    }
    // It is now a current store, and the writer works on it.
    let w = store.start_writer();
    assert!(w.delete(&key(0)));
    w.shutdown().expect("shutdown");
    let (store, report) = open(&config(&path, 10)).expect("reopen");
    assert_eq!((report.migrated_from, report.records), (None, 299));
    drop(store);
    assert_eq!(get_meta(&path, "schema_version"), Some(SCHEMA_VERSION));
    let db = redb::Database::open(&path).expect("open");
    let txn = db.begin_read().expect("txn");
    let names: Vec<String> = txn.list_tables().expect("list").map(|t| t.name().to_string()).collect();
    assert_eq!(names, vec!["cdra_meta".to_string(), "cdra_records".to_string()]);
    assert!(only_file_in(dir.path()));
}

#[test]
fn an_empty_version_0_store_and_a_bare_redb_file_open_as_empty_stores() {
    let (_dir, path) = temp_store();
    {
        let db = redb::Database::create(&path).expect("create");
        let txn = db.begin_write().expect("txn");
        txn.open_table(V0).expect("table");
        txn.commit().expect("commit");
    }
    let (_, report) = open(&config(&path, 10)).expect("open");
    assert_eq!((report.records, report.migrated_from, report.moved_aside), (0, Some(0), None));

    let (_dir, path) = temp_store();
    drop(redb::Database::create(&path).expect("create"));
    let (_, report) = open(&config(&path, 10)).expect("open");
    assert_eq!((report.records, report.migrated_from, report.moved_aside), (0, None, None));
    assert_eq!(get_meta(&path, "schema_version"), Some(SCHEMA_VERSION));
}

#[test]
fn a_current_store_missing_its_records_table_is_damaged() {
    let (_dir, path) = temp_store();
    populated_store(&path, 3);
    {
        let db = redb::Database::open(&path).expect("open");
        let txn = db.begin_write().expect("txn");
        txn.delete_table(RECORDS).expect("delete");
        txn.commit().expect("commit");
    }
    let (_, report) = open(&config(&path, 10)).expect("open");
    assert!(report.moved_aside.is_some());
    let warning = report.warning.expect("warning");
    eprintln!("{warning}");
    assert!(warning.contains("records table is missing"), "{warning}");
}

#[test]
fn a_clients_table_of_other_types_is_not_a_version_0_store() {
    let (_dir, path) = temp_store();
    {
        let db = redb::Database::create(&path).expect("create");
        let txn = db.begin_write().expect("txn");
        txn.open_table(TableDefinition::<u64, u64>::new("clients")).expect("table").insert(1, 2).expect("insert");
        txn.commit().expect("commit");
    }
    let (store, report) = open(&config(&path, 10)).expect("never fatal");
    let warning = report.warning.expect("warning");
    eprintln!("{warning}");
    assert!(report.moved_aside.is_some() && warning.contains("cannot migrate"), "{warning}");
    assert_eq!(store.len().expect("len"), 0);
}
