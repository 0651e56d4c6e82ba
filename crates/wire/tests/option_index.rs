//! The option index kept by `Message` (first instance of frequently read options) must give
//! exactly what a walk gives, on every message and after every in-place edit.

use cdra_wire::Message;
use proptest::prelude::*;

fn assert_index_matches_walk(m: &Message<Vec<u8>>) -> Result<(), TestCaseError> {
    for code in 1u8..=254 {
        let walked = m.options().find(|o| o.code == code);
        prop_assert_eq!(m.option(code), walked, "option {}", code);
    }
    Ok(())
}

fn check(bytes: Vec<u8>) -> Result<(), TestCaseError> {
    let Ok(mut m) = Message::new_checked(bytes) else { return Ok(()) };
    assert_index_matches_walk(&m)?;
    for code in [53u8, 54, 50, 61, 55, 82, 51, 1, 52] {
        m.patch_option(code, &[1, 2, 3, 4]);
        assert_index_matches_walk(&m)?;
        m.blank_option(code);
        assert_index_matches_walk(&m)?;
    }
    Ok(())
}

#[test]
fn corpus_messages() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/message");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("corpus") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        check(bytes).expect("index matches walk");
        n += 1;
    }
    assert!(n > 10);
}

/// Header plus random TLVs drawn mostly from the indexed codes, with overload sometimes.
fn message() -> impl Strategy<Value = Vec<u8>> {
    let code = prop_oneof![
        Just(53u8),
        Just(54),
        Just(50),
        Just(61),
        Just(55),
        Just(82),
        Just(51),
        Just(1),
        Just(52),
        Just(0),
        1u8..255
    ];
    let tlv = (code, proptest::collection::vec(any::<u8>(), 0..6));
    (proptest::collection::vec(tlv.clone(), 0..12), proptest::collection::vec(tlv, 0..6), 0u8..4).prop_map(
        |(main, file, overload)| {
            let mut b = vec![0u8; 240];
            b[0] = 2;
            b[1] = 1;
            b[2] = 6;
            b[236..240].copy_from_slice(&[99, 130, 83, 99]);
            let mut f = Vec::new();
            for (c, d) in file {
                if c == 0 {
                    f.push(0);
                } else {
                    f.push(c);
                    f.push(d.len() as u8);
                    f.extend(d);
                }
            }
            f.push(255);
            if f.len() <= 128 && overload > 0 {
                b[108..108 + f.len()].copy_from_slice(&f);
                b.extend([52, 1, overload]);
            }
            for (c, d) in main {
                if c == 0 {
                    b.push(0);
                } else {
                    b.push(c);
                    b.push(d.len() as u8);
                    b.extend(d);
                }
            }
            b.push(255);
            b
        },
    )
}

proptest! {
    #[test]
    fn index_matches_walk(bytes in message()) {
        check(bytes)?;
    }
}
