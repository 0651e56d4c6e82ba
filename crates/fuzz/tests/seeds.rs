//! A fixed set of seeds on every `cargo test`, in every mode (a few seconds each in debug;
//! deterministic, no wall clock). `engine-fuzz` runs the same cases for as long as it is
//! given; `scripts/test` also runs it on the seeds after these (release).

use cdra_core::Mode;
use cdra_fuzz::{run, Case, Profile};

/// Steps per seed in CI.
const STEPS: usize = 250;

fn seeds(seeds: impl Iterator<Item = u64>, profile: Profile, mode: Mode) {
    let mut failures = Vec::new();
    for seed in seeds {
        if let Err(f) = run(&Case::new(seed, STEPS, profile).in_mode(mode)) {
            failures.push(f.to_string());
        }
    }
    assert!(failures.is_empty(), "{} seeds failed; the first:\n{}", failures.len(), failures[0]);
}

// Every event, forged server replies included, every invariant (`full`); and the same
// without forged replies (`genuine`: the events of `no-reply-acceptance`, every invariant,
// so it covers that profile too). Proxy mode: seeds 0..20, each split in two so both cores
// work; spoofing and pool modes (slower: more happens per step) seeds 0..8; relay mode
// (fast: no table) seeds 0..20.

#[test]
fn fixed_seeds_full_even() {
    seeds((0..20).step_by(2), Profile::Full, Mode::Proxy);
}

#[test]
fn fixed_seeds_full_odd() {
    seeds((1..20).step_by(2), Profile::Full, Mode::Proxy);
}

#[test]
fn fixed_seeds_genuine_even() {
    seeds((0..20).step_by(2), Profile::Genuine, Mode::Proxy);
}

#[test]
fn fixed_seeds_genuine_odd() {
    seeds((1..20).step_by(2), Profile::Genuine, Mode::Proxy);
}

#[test]
fn fixed_seeds_spoof_full() {
    seeds(0..8, Profile::Full, Mode::Spoof);
}

#[test]
fn fixed_seeds_spoof_genuine() {
    seeds(0..8, Profile::Genuine, Mode::Spoof);
}

#[test]
fn fixed_seeds_pool_full() {
    seeds(0..8, Profile::Full, Mode::Pool);
}

#[test]
fn fixed_seeds_pool_genuine() {
    seeds(0..8, Profile::Genuine, Mode::Pool);
}

#[test]
fn fixed_seeds_relay() {
    seeds(0..20, Profile::Full, Mode::Relay);
    seeds(0..20, Profile::Genuine, Mode::Relay);
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
    // Whatever the engine does about it (this seed failed before issue 10 item 1), a failure
    // report must replay to the same result.
    let case = Case::new(3, 40, Profile::Full);
    if let Err(f) = run(&case) {
        let again = run(&f.shortest_prefix()).expect_err("the prefix fails too");
        assert_eq!((again.step, again.invariant), (f.step, f.invariant));
        let line: Case = f.shortest_prefix().to_string().parse().expect("the replay line parses");
        assert_eq!(line, f.shortest_prefix());
    }
}
