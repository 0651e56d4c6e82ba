//! Fuzz `Message::new_checked` and, on success, every accessor, the option iterator, long
//! options, option 82, every setter, `patch_option`, `blank_option`, `rewrite`, the builder
//! and the IPv4/UDP header writer. The body is shared with the stable replay test
//! (crates/wire/tests/fuzz_corpus_replay.rs).
//!
//! cargo +nightly fuzz run message fuzz/corpus/message   (from crates/wire)
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cdra_wire::fuzzing::exercise(data);
});
