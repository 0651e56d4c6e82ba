//! Replays the fuzz seed corpus through the fuzz target's body on stable Rust, and checks
//! that the committed seeds are the ones the generator (tests/corpus_gen.rs) writes.

mod common;

use cdra_wire::fuzzing::exercise;
use cdra_wire::Message;
use common::corpus::{corpus_dir, seeds, Expect};

#[test]
fn replay_fuzz_corpus() {
    let dir = corpus_dir();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty corpus at {}", dir.display());
    let mut valid = 0;
    for path in &files {
        let data = std::fs::read(path).unwrap();
        if Message::new_checked(&data[..]).is_ok() {
            valid += 1;
        }
        let outcome = std::panic::catch_unwind(|| exercise(&data));
        assert!(outcome.is_ok(), "fuzz body panicked on {}", path.display());
    }
    assert!(valid >= 30, "only {valid} valid seeds in {} files", files.len());
}

#[test]
fn committed_corpus_matches_generator() {
    let dir = corpus_dir();
    for (name, expect, bytes) in seeds() {
        let on_disk = std::fs::read(dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}; run `cargo test -p cdra-wire --test corpus_gen -- --ignored`"));
        assert!(on_disk == bytes, "{name} differs from the generator; regenerate the corpus");
        assert_eq!(Message::new_checked(&bytes[..]).is_ok(), expect == Expect::Valid, "{name}");
    }
}
