//! A fixed set of seeds on every `cargo test` (a few seconds each in debug; deterministic,
//! no wall clock). `engine-fuzz` runs the same cases for as long as it is given.

use cdra_fuzz::{run, Case, Profile};

/// Steps per seed in CI.
const STEPS: usize = 250;

fn seeds(seeds: impl Iterator<Item = u64>, profile: Profile) {
    let mut failures = Vec::new();
    for seed in seeds {
        if let Err(f) = run(&Case::new(seed, STEPS, profile)) {
            failures.push(f.to_string());
        }
    }
    assert!(failures.is_empty(), "{} seeds failed; the first:\n{}", failures.len(), failures[0]);
}

// What the engine on main keeps: every event but forged server replies, every invariant
// but the reply-acceptance ones (issue 10 item 1). Seeds 0..20, split in two so both cores
// work.

#[test]
fn fixed_seeds_without_reply_acceptance_even() {
    seeds((0..20).step_by(2), Profile::NoReplyAcceptance);
}

#[test]
fn fixed_seeds_without_reply_acceptance_odd() {
    seeds((1..20).step_by(2), Profile::NoReplyAcceptance);
}

#[test]
#[ignore = "issue 10 item 1: forged server replies are cached, relayed and create or change records (every seed fails on main)"]
fn fixed_seeds_full() {
    seeds(0..20, Profile::Full);
}

#[test]
#[ignore = "issue 10 item 1: a genuine reply to an untracked request creates a record or is matched by chaddr alone"]
fn fixed_seeds_genuine() {
    seeds(0..20, Profile::Genuine);
}

#[test]
fn the_same_case_runs_the_same_way() {
    let case = Case::new(7, 60, Profile::Full);
    let a = run(&case);
    let b = run(&case);
    match (a, b) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!((a.step, a.invariant, &a.detail), (b.step, b.invariant, &b.detail)),
        (a, b) => panic!("two runs of {case} differ: {:?} vs {:?}", a.is_ok(), b.is_ok()),
    }
}

#[test]
fn a_failure_replays_from_its_line_and_its_prefix() {
    // Found on main (issue 10 item 1): whatever the engine does about it, the failure
    // report must replay to the same result.
    let case = Case::new(3, 40, Profile::Full);
    if let Err(f) = run(&case) {
        let again = run(&f.shortest_prefix()).expect_err("the prefix fails too");
        assert_eq!((again.step, again.invariant), (f.step, f.invariant));
        let line: Case = f.shortest_prefix().to_string().parse().expect("the replay line parses");
        assert_eq!(line, f.shortest_prefix());
    }
}
