//! engine-fuzz: run the engine fuzzer for long (see `cdra_fuzz`).
//!
//! ```text
//! engine-fuzz [--seconds N | --seeds A..B] [--steps N]
//!             [--profile full|genuine|no-reply-acceptance|all] [--mode proxy|spoof|pool|relay|all]
//!             [--no-minimize] [--quiet]
//! engine-fuzz --replay 'seed=0x2a steps=57 profile=full mode=pool keep=3,17-20' [--shrink | --events]
//! ```
//!
//! Seeds run in order from A (default 0). With several modes or profiles (`all`: every mode;
//! the profiles `full` and `genuine`, which between them check everything
//! `no-reply-acceptance` does), seed A + i runs combination i modulo their number (mode
//! first, then profile), so a time-bounded run spreads evenly over them. Each failing seed is
//! printed as one replayable line, the first failure of each invariant in full (minimized
//! unless `--no-minimize`). `--replay` runs one case and prints its failure in full
//! (`--shrink`: minimized first; `--events`: every event it applied, failing or not, and
//! the pool's entries and the records after each simulation event that changed them).
//! Exit status: 0 when nothing failed, 1 when something did, 2 on a usage error.
//!
//! The release profile aborts on panic: a panic hook prints the case being run first, so
//! the line to replay is never lost.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cdra_core::Mode;
use cdra_fuzz::adapter::Bound;
use cdra_fuzz::{applied_events, minimize, parse_mode, run, Case, Failure, Invariant, Profile, Stats, MODES};

static CURRENT: Mutex<String> = Mutex::new(String::new());

struct Args {
    seconds: Option<u64>,
    seeds: (u64, u64),
    steps: usize,
    profiles: Vec<Profile>,
    modes: Vec<Mode>,
    minimize: bool,
    quiet: bool,
    replay: Option<Case>,
    shrink: bool,
    events: bool,
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("engine-fuzz: {msg}");
    eprintln!(
        "usage: engine-fuzz [--seconds N | --seeds A..B] [--steps N] \
         [--profile full|genuine|no-reply-acceptance|all] [--mode proxy|spoof|pool|relay|all] \
         [--no-minimize] [--quiet]\n       engine-fuzz --replay '<case>' [--shrink | --events]"
    );
    ExitCode::from(2)
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        seconds: None,
        seeds: (0, u64::MAX),
        steps: 400,
        profiles: vec![Profile::Full],
        modes: vec![Mode::Proxy],
        minimize: true,
        quiet: false,
        replay: None,
        shrink: false,
        events: false,
    };
    let mut it = std::env::args().skip(1);
    let mut seeds_given = false;
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => a.seconds = Some(value()?.parse().map_err(|e| format!("--seconds: {e}"))?),
            "--seeds" => {
                let v = value()?;
                let (x, y) = v.split_once("..").ok_or("--seeds takes A..B")?;
                a.seeds =
                    (x.parse().map_err(|e| format!("--seeds: {e}"))?, y.parse().map_err(|e| format!("--seeds: {e}"))?);
                seeds_given = true;
            }
            "--steps" => a.steps = value()?.parse().map_err(|e| format!("--steps: {e}"))?,
            "--profile" => {
                a.profiles = match value()?.as_str() {
                    "all" => vec![Profile::Full, Profile::Genuine],
                    p => vec![p.parse()?],
                }
            }
            "--mode" => {
                a.modes = match value()?.as_str() {
                    "all" => MODES.to_vec(),
                    m => vec![parse_mode(m)?],
                }
            }
            "--replay" => a.replay = Some(value()?.parse()?),
            "--no-minimize" => a.minimize = false,
            "--quiet" => a.quiet = true,
            "--shrink" => a.shrink = true,
            "--events" => a.events = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.seconds.is_none() && !seeds_given && a.replay.is_none() {
        return Err("give --seconds, --seeds or --replay".into());
    }
    Ok(a)
}

fn replay(case: &Case, shrink: bool, events: bool) -> ExitCode {
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = case.to_string();
    let outcome = if events {
        let (outcome, events) = applied_events(case);
        for e in events {
            println!("{e}");
        }
        outcome
    } else {
        run(case)
    };
    match outcome {
        Ok(s) => {
            println!("ok: {case} ({} events, {} steps applied)", s.events, s.applied);
            ExitCode::SUCCESS
        }
        Err(f) => {
            let f = if shrink { minimize(&f, 1000) } else { *f };
            println!("{f}");
            ExitCode::from(1)
        }
    }
}

/// What one mode x profile combination did.
#[derive(Default)]
struct Tally {
    seeds: u64,
    failed: u64,
    stats: Stats,
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => return usage(&e),
    };
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let case = CURRENT.lock().map(|c| c.clone()).unwrap_or_default();
        eprintln!("engine-fuzz: panic while running: {case}\n  replay: engine-fuzz --replay '{case}'");
        default_hook(info);
    }));
    if let Some(case) = &args.replay {
        return replay(case, args.shrink, args.events);
    }
    let combos: Vec<(Mode, Profile)> =
        args.modes.iter().flat_map(|m| args.profiles.iter().map(move |p| (*m, *p))).collect();
    let started = Instant::now();
    let deadline = args.seconds.map(|s| started + Duration::from_secs(s));
    let mut total = Stats::default();
    let mut tallies: Vec<Tally> = combos.iter().map(|_| Tally::default()).collect();
    let mut seeds = 0u64;
    let mut failing: BTreeMap<&'static str, Vec<Failure>> = BTreeMap::new();
    let mut seed = args.seeds.0;
    while seed < args.seeds.1 && deadline.is_none_or(|d| Instant::now() < d) {
        let i = (seed.wrapping_sub(args.seeds.0) % combos.len() as u64) as usize;
        let (mode, profile) = combos[i];
        let case = Case::new(seed, args.steps, profile).in_mode(mode);
        *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = case.to_string();
        seeds += 1;
        tallies[i].seeds += 1;
        match run(&case) {
            Ok(s) => {
                total.add(&s);
                tallies[i].stats.add(&s);
            }
            Err(f) => {
                tallies[i].failed += 1;
                println!("FAIL {}  invariant={}", f.shortest_prefix(), f.invariant);
                let list = failing.entry(f.invariant.label()).or_default();
                if list.is_empty() && !args.quiet {
                    let shown = if args.minimize { minimize(&f, 300) } else { (*f).clone() };
                    println!("{shown}");
                }
                list.push(*f);
            }
        }
        seed += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    let failed: usize = failing.values().map(Vec::len).sum();
    let label = |v: &[&str]| v.join(",");
    println!(
        "engine-fuzz: {seeds} seeds x {} steps ({}), modes {}, profiles {}, in {secs:.1} s: {} passed, {failed} failed",
        args.steps,
        match args.seconds {
            Some(s) => format!("--seconds {s}"),
            None => format!("--seeds {}..{}", args.seeds.0, args.seeds.1),
        },
        label(&args.modes.iter().map(|m| m.label()).collect::<Vec<_>>()),
        label(&args.profiles.iter().map(|p| p.label()).collect::<Vec<_>>()),
        seeds - failed as u64,
    );
    if combos.len() > 1 {
        for ((mode, profile), t) in combos.iter().zip(&tallies) {
            println!(
                "  {:5} {:19} {} seeds, {} failed, {} events (passing seeds)",
                mode.label(),
                profile.label(),
                t.seeds,
                t.failed,
                t.stats.events
            );
        }
    }
    println!(
        "  passing seeds: {} simulation events ({:.0}/s), {} steps applied, {} client and {} server datagrams \
         injected ({} requests from another host's frame; {} genuine and {} forged replies reached the engine), \
         {} probe answers, {} clock steps, {} restarts ({} records mutated), {} local ACKs checked, {} draws \
         skipped, at most {} records",
        total.events,
        total.events as f64 / secs.max(1e-9),
        total.applied,
        total.client_datagrams,
        total.server_datagrams,
        total.unverified,
        total.genuine_replies,
        total.forged_replies,
        total.probe_answers,
        total.clock_steps,
        total.restarts,
        total.records_mutated,
        total.local_acks,
        total.skipped,
        total.max_records
    );
    let fullest: Vec<String> =
        Bound::ALL.iter().zip(total.fullest).map(|(b, f)| format!("{} {}.{}%", b.name(), f / 10, f % 10)).collect();
    println!("  fullest each bound got: {}", fullest.join(", "));
    for inv in Invariant::ALL {
        if let Some(v) = failing.get(inv.label()) {
            let seeds: Vec<String> = v.iter().take(12).map(|f| format!("{:#x}", f.case.seed)).collect();
            println!("  {}: {} seeds ({}{})", inv, v.len(), seeds.join(" "), if v.len() > 12 { " ..." } else { "" });
        }
    }
    if failing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
