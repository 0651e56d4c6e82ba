//! Round trips through the Writer, dumps, locking and the errors that must stop cdra.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cdra_store::{open, StoreConfig, StoreError, WriteMode};
use common::*;

fn load_map(path: &std::path::Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let (store, report) = open(&config(path, 50)).expect("reopen");
    assert_eq!(report.moved_aside, None);
    let all = store.load_all().expect("load_all");
    assert_eq!(report.records, all.len());
    all.into_iter().collect()
}

#[test]
fn upserts_and_deletes_survive_shutdown_and_reopen() {
    let (_dir, path) = temp_store();
    let (store, report) = open(&config(&path, 50)).expect("open");
    assert_eq!(
        (report.records, report.moved_aside.clone(), report.migrated_from, report.warning.clone()),
        (0, None, None, None)
    );
    let w = store.start_writer();
    let mut expected = BTreeMap::new();
    for i in 0..500 {
        let (k, v) = pair(i, 1_000);
        assert!(w.upsert(&k, &v));
        expected.insert(k, v);
    }
    for i in 0..100 {
        let (k, v) = pair(i, 2_000);
        assert!(w.upsert(&k, &v));
        expected.insert(k, v);
    }
    for i in 400..500 {
        assert!(w.delete(&key(i)));
        expected.remove(&key(i));
    }
    assert!(w.delete(&key(9_999)), "deleting a key never stored is fine");
    // Delete then upsert again: last write wins.
    assert!(w.delete(&key(7)));
    let (k, v) = pair(7, 3_000);
    assert!(w.upsert(&k, &v));
    expected.insert(k, v);
    let stats = w.shutdown().expect("shutdown");
    assert_eq!(stats.ops_committed, stats.ops_submitted);
    assert_eq!(stats.queue_drops, 0);
    assert_eq!(stats.errors, 0);
    assert!(stats.commits >= 1);

    let got = load_map(&path);
    assert_eq!(got.len(), 400);
    assert_eq!(got, expected);
    for (k, v) in &got {
        let seq = check_pair(k, v).expect("decodes");
        assert!(seq == 1_000 || seq == 2_000 || seq == 3_000);
    }
    // visit sees the same, in key order.
    let (store, _) = open(&config(&path, 50)).expect("reopen");
    let mut visited = Vec::new();
    let n = store.visit(|k, v| visited.push((k.to_vec(), v.to_vec()))).expect("visit");
    assert_eq!(n, 400);
    assert_eq!(visited, expected.into_iter().collect::<Vec<_>>());
    assert_eq!(store.len().expect("len"), 400);
}

#[test]
fn replace_all_supersedes_what_came_before_and_not_after() {
    let (_dir, path) = temp_store();
    let (store, _) = open(&config(&path, 20)).expect("open");
    let w = store.start_writer();
    for i in 0..10 {
        let (k, v) = pair(i, 1);
        assert!(w.upsert(&k, &v));
    }
    // Let some of them be committed, so the dump has to delete committed rows too.
    std::thread::sleep(Duration::from_millis(60));
    let mut dump: Vec<_> = (100..110).map(|i| pair(i, 2)).collect();
    dump.push(pair(103, 5)); // a key twice: the later pair wins
    assert!(w.replace_all(dump));
    let (k, v) = pair(105, 9);
    assert!(w.upsert(&k, &v));
    assert!(w.delete(&key(101)));
    let stats = w.shutdown().expect("shutdown");
    assert!(stats.dumps >= 1);

    let got = load_map(&path);
    let seqs: BTreeMap<Vec<u8>, u64> =
        got.iter().map(|(k, v)| (k.clone(), check_pair(k, v).expect("decodes"))).collect();
    let mut expected = BTreeMap::new();
    for i in (100..110).filter(|i| *i != 101) {
        expected.insert(key(i), 2);
    }
    expected.insert(key(103), 5);
    expected.insert(key(105), 9);
    assert_eq!(seqs, expected);
}

#[test]
fn a_second_open_of_the_same_file_is_refused_and_touches_nothing() {
    let (dir, path) = temp_store();
    let (store, _) = open(&config(&path, 50)).expect("open");
    let w = store.start_writer();
    let (k, v) = pair(1, 1);
    assert!(w.upsert(&k, &v));
    let err = open(&config(&path, 50)).expect_err("second open must fail");
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&*path.to_string_lossy()) && text.contains("another"), "{text}");
    let names: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("clients.redb")], "nothing moved aside");
    w.shutdown().expect("shutdown");
    assert_eq!(load_map(&path).len(), 1);
}

#[test]
fn a_directory_where_the_file_should_be_is_an_error() {
    let (_dir, path) = temp_store();
    std::fs::create_dir(&path).expect("mkdir");
    let err = open(&config(&path, 50)).expect_err("must fail");
    assert!(matches!(err, StoreError::NotAFile { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&*path.to_string_lossy()) && text.contains("directory"), "{text}");
    assert!(path.is_dir(), "left alone");
    assert!(!text.contains('\n'));
}

#[test]
fn a_missing_directory_is_an_error() {
    let (_dir, path) = temp_store();
    let path = path.parent().expect("parent").join("no-such-dir").join("clients.redb");
    let err = open(&config(&path, 50)).expect_err("must fail");
    let text = err.to_string();
    assert!(text.contains(&*path.to_string_lossy()) && text.contains("No such file"), "{text}");
}

#[test]
fn a_full_queue_drops_changes_counts_them_and_asks_for_a_dump() {
    let (_dir, path) = temp_store();
    let mut cfg = config(&path, 1);
    cfg.queue_capacity = 1;
    let (store, _) = open(&cfg).expect("open");
    let w = store.start_writer();
    assert!(!w.dump_due());
    let (k, v) = pair(1, 1);
    let mut refused = 0u64;
    for _ in 0..200_000 {
        if !w.upsert(&k, &v) {
            refused += 1;
        }
    }
    assert!(refused > 0, "a queue of 1 behind an fsync'ing writer must overflow");
    assert_eq!(w.stats().queue_drops, refused);
    assert!(w.dump_due());
    let mut accepted = false;
    for _ in 0..10_000 {
        if w.replace_all(vec![pair(2, 2)]) {
            accepted = true;
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    assert!(accepted);
    assert!(!w.dump_due(), "the dump answers the drops");
    let stats = w.shutdown().expect("shutdown");
    assert_eq!(stats.ops_committed, stats.ops_submitted);
    let got = load_map(&path);
    assert_eq!(got.keys().cloned().collect::<Vec<_>>(), vec![key(2)]);
}

#[test]
fn periodic_dump_mode_asks_for_a_dump_every_interval_and_commits_at_that_pace() {
    let (_dir, path) = temp_store();
    let cfg =
        StoreConfig { mode: WriteMode::PeriodicDump { interval: Duration::from_millis(300) }, ..config(&path, 1) };
    let (store, _) = open(&cfg).expect("open");
    let w = store.start_writer();
    assert!(!w.dump_due(), "nothing due at start: the store holds what was loaded");
    let start = Instant::now();
    let mut dumps = 0;
    let mut i = 0;
    while start.elapsed() < Duration::from_millis(1_000) {
        i += 1;
        let (k, v) = pair(i % 50, i);
        assert!(w.upsert(&k, &v));
        if w.dump_due() {
            assert!(w.replace_all((0..50).map(|j| pair(j, i)).collect()));
            assert!(!w.dump_due());
            dumps += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let before_shutdown = w.stats();
    let stats = w.shutdown().expect("shutdown");
    eprintln!(
        "periodic dump: {dumps} dumps, {} commits before shutdown, {} after",
        before_shutdown.commits, stats.commits
    );
    assert!((2..=4).contains(&dumps), "{dumps} dumps in 1 s at 300 ms");
    // ~170 upserts and 3 dumps: the first one at once, then one commit per 300 ms.
    assert!(before_shutdown.commits <= 5, "{} commits", before_shutdown.commits);
    assert_eq!(load_map(&path).len(), 50);
}

#[test]
fn a_dump_writes_only_what_differs_from_the_store() {
    let (_dir, path) = temp_store();
    let (store, _) = open(&config(&path, 1)).expect("open");
    let w = store.start_writer();
    let base: Vec<_> = (0..1_000).map(|i| pair(i, 1)).collect();
    assert!(w.replace_all(base.clone()));
    let stats = w.shutdown().expect("shutdown");
    assert_eq!((stats.records_written, stats.records_deleted, stats.dumps), (1_000, 0, 1));

    // The same table again: nothing to write.
    let (store, _) = open(&config(&path, 1)).expect("open");
    let w = store.start_writer();
    assert!(w.replace_all(base.clone()));
    let stats = w.shutdown().expect("shutdown");
    assert_eq!((stats.records_written, stats.records_deleted, stats.dumps), (0, 0, 1));

    // One changed, one gone, one new (and the table handed over unsorted).
    let mut next = base.clone();
    next[10] = pair(10, 2);
    next.remove(20);
    next.push(pair(5_000, 3));
    next.reverse();
    let (store, _) = open(&config(&path, 1)).expect("open");
    let w = store.start_writer();
    assert!(w.replace_all(next.clone()));
    let stats = w.shutdown().expect("shutdown");
    assert_eq!((stats.records_written, stats.records_deleted), (2, 1));
    assert_eq!(load_map(&path), next.into_iter().collect());
}

/// Record format 3 (paper 5.7): the shared reply templates are rows of their own key range,
/// read before the records (`visit_templates`) and neither visited nor counted as records;
/// a record decodes with its template, and a template deleted is gone.
#[test]
fn shared_reply_templates_are_kept_apart_from_the_records() {
    use cdra_core::persist::{decode_record_with, encode_record, template_key, Templates};
    use cdra_core::templates::TemplateSet;
    let (_dir, path) = temp_store();
    let (store, _) = open(&config(&path, 50)).expect("open");
    let w = store.start_writer();
    let mut set = TemplateSet::new(16);
    let mut records = Vec::new();
    for i in 0..50 {
        let mut r = record(i, 1_000);
        set.intern(r.reply.as_mut().expect("a reply"));
        let mut v = Vec::new();
        encode_record(&r, IFACE, &mut v);
        assert!(w.upsert(&key(i), &v));
        records.push(r);
    }
    let t = set.iter().next().expect("one template");
    assert_eq!(set.len(), 1, "fifty clients of one server and subnet share one template");
    assert!(w.upsert(&template_key(t.id()), t.as_bytes()));
    w.shutdown().expect("shutdown");
    let (store, report) = open(&config(&path, 50)).expect("reopen");
    assert_eq!((report.records, store.len().expect("len")), (50, 50));
    let mut templates = Templates::new();
    assert_eq!(store.visit_templates(|k, v| templates.add(k, v).expect("a template")).expect("visit"), 1);
    let mut decoded = 0;
    store
        .visit(|k, v| {
            let (r, iface) = decode_record_with(v, &templates).expect("a record with its template");
            assert_eq!((k, iface), (r.key.as_bytes(), IFACE));
            let i = records.iter().position(|x| x.key == r.key).expect("one of ours");
            assert_eq!(r.reply_message(), records[i].reply_message());
            decoded += 1;
        })
        .expect("visit");
    assert_eq!(decoded, 50);
    let w = store.start_writer();
    assert!(w.delete(&template_key(t.id())));
    w.shutdown().expect("shutdown");
    let (store, _) = open(&config(&path, 50)).expect("reopen");
    assert_eq!(store.visit_templates(|_, _| {}).expect("visit"), 0);
}
