//! Regenerates the fuzz seed corpus (crates/wire/fuzz/corpus/message/) deterministically:
//!
//! ```text
//! cargo test -p cdra-wire --test corpus_gen -- --ignored
//! ```
//!
//! Only the generated seeds are written; other files in the directory (inputs a fuzzer
//! added) are left alone.

mod common;

use cdra_wire::Message;
use common::corpus::{corpus_dir, seeds, Expect};

#[test]
#[ignore = "writes files; run on purpose to regenerate the corpus"]
fn regenerate_fuzz_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, expect, bytes) in seeds() {
        assert_eq!(Message::new_checked(&bytes[..]).is_ok(), expect == Expect::Valid, "{name}");
        std::fs::write(dir.join(name), &bytes).unwrap();
    }
}
