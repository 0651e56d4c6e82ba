//! A fuzz case (what to run) and its parameters (the network it runs in, derived from the
//! seed), and a failure report that replays.

use core::fmt;
use std::collections::BTreeSet;
use std::time::Duration;

use cdra_core::{Mode, OfferChoice, PoolAssign, Rate, ServerSelection};
use cdra_sim::{SimConfig, SimRng};

use crate::check::Invariant;

/// Which events a case may draw, and which invariants it checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Every event, forged server replies included; every invariant.
    Full,
    /// Every event but forged server replies (corrupted or replayed copies of genuine
    /// replies still come, and a mutated client datagram may turn into a reply); every
    /// invariant. Before issue 10 item 1, genuine traffic alone broke the reply-acceptance
    /// invariants: a reply to a request the table no longer tracked created a record, or was
    /// matched to a client by chaddr alone.
    Genuine,
    /// As [`Profile::Genuine`] (the same events), without the reply-acceptance invariants
    /// (issue 10 item 1): what CI ran while the engine on `main` did not keep them. Kept to
    /// replay the regression lines found with it; [`Profile::Genuine`] checks all it does.
    NoReplyAcceptance,
}

impl Profile {
    /// Every profile.
    pub const ALL: [Profile; 3] = [Profile::Full, Profile::Genuine, Profile::NoReplyAcceptance];

    /// Stable label.
    pub fn label(self) -> &'static str {
        match self {
            Profile::Full => "full",
            Profile::Genuine => "genuine",
            Profile::NoReplyAcceptance => "no-reply-acceptance",
        }
    }

    /// Does it draw forged server replies?
    pub fn forges_replies(self) -> bool {
        self == Profile::Full
    }

    /// Does it check the reply-acceptance invariants?
    pub fn checks_reply_acceptance(self) -> bool {
        self != Profile::NoReplyAcceptance
    }
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Profile::ALL
            .into_iter()
            .find(|p| p.label() == s)
            .ok_or_else(|| format!("no profile {s:?} (full, genuine, no-reply-acceptance)"))
    }
}

/// The engine's modes, in the order `--mode all` runs them.
pub const MODES: [Mode; 4] = [Mode::Proxy, Mode::Spoof, Mode::Pool, Mode::Relay];

/// A mode by its label (`relay`, `proxy`, `spoof`, `pool`).
pub fn parse_mode(s: &str) -> Result<Mode, String> {
    MODES.into_iter().find(|m| m.label() == s).ok_or_else(|| format!("no mode {s:?} (proxy, spoof, pool, relay)"))
}

/// One deterministic run: the seed fixes the network ([`Params`]) and every event; `steps`
/// events are drawn; `keep`, when given, lists the only steps whose event is applied (the
/// others still let their time pass), as a minimized failure names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// The seed.
    pub seed: u64,
    /// Events drawn.
    pub steps: usize,
    /// Which events may be drawn.
    pub profile: Profile,
    /// The engine's mode (a line without `mode=` is proxy mode).
    pub mode: Mode,
    /// Steps applied (`None`: all).
    pub keep: Option<BTreeSet<usize>>,
}

impl Case {
    /// All `steps` steps of `seed` under `profile`, in proxy mode.
    pub fn new(seed: u64, steps: usize, profile: Profile) -> Self {
        Case { seed, steps, profile, mode: Mode::Proxy, keep: None }
    }

    /// The same case in `mode`.
    pub fn in_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Is step `k` applied?
    pub fn applies(&self, k: usize) -> bool {
        self.keep.as_ref().is_none_or(|s| s.contains(&k))
    }
}

fn ranges(set: &BTreeSet<usize>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = set.iter().copied().peekable();
    while let Some(a) = it.next() {
        let mut b = a;
        while it.peek() == Some(&(b + 1)) {
            b += 1;
            it.next();
        }
        out.push(if a == b { a.to_string() } else { format!("{a}-{b}") });
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(",")
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seed={:#x} steps={} profile={}", self.seed, self.steps, self.profile.label())?;
        if self.mode != Mode::Proxy {
            write!(f, " mode={}", self.mode.label())?;
        }
        if let Some(k) = &self.keep {
            write!(f, " keep={}", ranges(k))?;
        }
        Ok(())
    }
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s:?}: {e}"))
}

impl std::str::FromStr for Case {
    type Err = String;
    /// `seed=S steps=N [profile=P] [mode=M] [keep=a-b,c]` (what `Display` writes); other `key=value`
    /// words (a regression file's `expect=`) are ignored, and so is everything after `#`.
    fn from_str(line: &str) -> Result<Self, String> {
        let line = line.split('#').next().unwrap_or("");
        let mut case = Case::new(0, 0, Profile::Full);
        let (mut seed, mut steps) = (false, false);
        for word in line.split_whitespace() {
            let (k, v) = word.split_once('=').ok_or_else(|| format!("{word:?} is not key=value"))?;
            match k {
                "seed" => {
                    case.seed = parse_u64(v)?;
                    seed = true;
                }
                "steps" => {
                    case.steps = parse_u64(v)? as usize;
                    steps = true;
                }
                "profile" => case.profile = v.parse()?,
                "mode" => case.mode = parse_mode(v)?,
                "keep" => {
                    let mut set = BTreeSet::new();
                    for part in v.split(',').filter(|p| *p != "none") {
                        match part.split_once('-') {
                            Some((a, b)) => set.extend(parse_u64(a)? as usize..=parse_u64(b)? as usize),
                            None => {
                                set.insert(parse_u64(part)? as usize);
                            }
                        }
                    }
                    case.keep = Some(set);
                }
                _ => {}
            }
        }
        if !(seed && steps) {
            return Err(format!("{line:?}: needs seed= and steps="));
        }
        Ok(case)
    }
}

/// The network a seed runs in. Every bound is small in most cases, so that the engine runs
/// at its limits; each choice is printed with a failure.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Model clients.
    pub clients: usize,
    /// Model servers (1 or 2).
    pub servers: usize,
    /// Server selection.
    pub selection: ServerSelection,
    /// Precautions off.
    pub safe_network: bool,
    /// Automated short leases, seconds.
    pub client_lease: Option<u64>,
    /// Which OFFER passes.
    pub offer_choice: OfferChoice,
    /// Hold of answers to unicast renewals, ms.
    pub renew_reply_delay_ms: u64,
    /// `max_clients`.
    pub max_clients: usize,
    /// `max_pending_probes`.
    pub max_pending_probes: usize,
    /// `[limits] transactions` (forwarded requests remembered for their replies).
    pub transactions: usize,
    /// `max_held_replies`.
    pub max_held_replies: usize,
    /// `max_offer_windows`.
    pub max_offer_windows: usize,
    /// Lease the model servers grant, seconds.
    pub server_lease_secs: u32,
    /// `max_age`, seconds.
    pub max_age_secs: u64,
    /// Does the engine's clock step (forward and back, running and across restarts)?
    pub clock_steps: bool,
    /// The engine's mode.
    pub mode: Mode,
    /// `[limits] pending_clients`.
    pub pending_clients: usize,
    /// `[limits] client_rate` (per second, burst).
    pub client_rate: (u32, u32),
    /// `[limits] interface_rate` (per second, burst).
    pub interface_rate: (u32, u32),
    /// `[limits] reply_timeout`, seconds.
    pub reply_timeout_secs: u64,
    /// Pool mode: `[pool] size`.
    pub pool_size: usize,
    /// Pool mode: `[pool] assign`.
    pub pool_assign: PoolAssign,
    /// Pool mode: `[pool] fallback_after`, ms.
    pub fallback_after_ms: u64,
    /// Pool mode: `[pool] client_lease`, seconds.
    pub pool_client_lease_secs: u64,
    /// RFC 4388 leasequery: on, and whether the model servers answer it.
    pub leasequery: bool,
    /// See `leasequery`.
    pub servers_answer_leasequery: bool,
    /// `[leasequery] rate`, `max_outstanding`, `unanswered_limit`.
    pub leasequery_bounds: (u32, usize, u32),
}

impl Params {
    /// The parameters of `seed` in `mode`. (The limits and the pool's settings come from
    /// generators of their own, so that adding them left what a seed drew before alone.)
    pub fn of(seed: u64, mode: Mode) -> Self {
        let mut l = SimRng::new(seed ^ 0x11a1_75ee_d0c4_3b27);
        let small = l.chance(0.6);
        let pending_clients = if small { l.range(2, 16) as usize } else { 4096 };
        let client_rate = if l.chance(0.3) { (1, 3) } else { (10, 30) };
        let interface_rate = if l.chance(0.2) { (20, 40) } else { (1000, 5000) };
        let reply_timeout_secs = if l.chance(0.3) { 5 } else { 30 };
        let mut q = SimRng::new(seed ^ 0x9001_5eed_ab1e_c0de);
        let pool_size = if q.chance(0.7) { q.range(1, 5) as usize } else { 8 };
        let pool_assign = if q.chance(0.25) { PoolAssign::Always } else { PoolAssign::Outage };
        let fallback_after_ms = q.range(300, 3000);
        let pool_client_lease_secs = q.range(20, 600);
        let mut g = SimRng::new(seed ^ 0x1ea5_e9e7_7a11_5eed);
        let leasequery = g.chance(0.5);
        let servers_answer_leasequery = g.chance(0.7);
        let leasequery_bounds = (g.range(5, 500) as u32, g.range(1, 8) as usize, g.range(1, 4) as u32);
        let mut r = SimRng::new(seed ^ 0x9a4a_a3e7_0c1f_5eed);
        let small = r.chance(0.7);
        let mut bound = |lo: u64, hi: u64, default: usize| if small { r.range(lo, hi) as usize } else { default };
        let max_clients = bound(3, 12, 1_000_000);
        let max_pending_probes = bound(1, 3, 1024);
        let transactions = bound(2, 12, 65_536);
        let max_held_replies = bound(1, 3, 64);
        let max_offer_windows = bound(1, 3, 1024);
        Params {
            clients: r.range(2, 5) as usize,
            servers: 1 + usize::from(r.chance(0.4)),
            selection: if r.chance(0.7) { ServerSelection::All } else { ServerSelection::Failover },
            safe_network: r.chance(0.25),
            client_lease: r.chance(0.45).then(|| r.range(10, 300)),
            offer_choice: match r.below(4) {
                0 => OfferChoice::LongestLease,
                1 => OfferChoice::Spread,
                _ => OfferChoice::First,
            },
            renew_reply_delay_ms: if r.chance(0.5) { 2 } else { 0 },
            max_clients,
            max_pending_probes,
            transactions,
            max_held_replies,
            max_offer_windows,
            server_lease_secs: [60, 300, 3600, 3600, 86_400][r.below(5) as usize],
            max_age_secs: if r.chance(0.2) { 1800 } else { 9 * 86_400 },
            clock_steps: r.chance(0.3),
            mode,
            pending_clients,
            client_rate,
            interface_rate,
            reply_timeout_secs,
            pool_size,
            pool_assign,
            fallback_after_ms,
            pool_client_lease_secs,
            leasequery,
            servers_answer_leasequery,
            leasequery_bounds,
        }
    }

    /// The simulation they describe (violations recorded, not panicked on).
    pub fn sim_config(&self, seed: u64) -> SimConfig {
        let mut c = SimConfig::small(seed, self.mode);
        if self.servers > 1 {
            c = c.with_second_server();
        }
        for s in &mut c.servers {
            s.lease_secs = self.server_lease_secs;
        }
        let p = &mut c.proxy;
        p.safe_network = self.safe_network;
        p.client_lease = self.client_lease.map(Duration::from_secs);
        p.offer_choice = self.offer_choice;
        p.renew_reply_delay = Duration::from_millis(self.renew_reply_delay_ms);
        p.max_clients = self.max_clients;
        p.max_pending_probes = self.max_pending_probes;
        p.max_held_replies = self.max_held_replies;
        p.max_offer_windows = self.max_offer_windows;
        p.max_age = Duration::from_secs(self.max_age_secs);
        c.limits.transactions = self.transactions;
        c.limits.pending_clients = self.pending_clients;
        c.limits.client_rate = Rate { per_second: self.client_rate.0, burst: self.client_rate.1 };
        c.limits.interface_rate = Rate { per_second: self.interface_rate.0, burst: self.interface_rate.1 };
        c.limits.reply_timeout = Duration::from_secs(self.reply_timeout_secs);
        c.pool.size = self.pool_size;
        c.pool.assign = self.pool_assign;
        c.pool.fallback_after = Duration::from_millis(self.fallback_after_ms);
        c.pool.client_lease = Duration::from_secs(self.pool_client_lease_secs);
        c.server_selection = self.selection;
        c.leasequery.enabled = self.leasequery;
        (c.leasequery.rate, c.leasequery.max_outstanding, c.leasequery.unanswered_limit) = self.leasequery_bounds;
        for s in &mut c.servers {
            s.answer_leasequery = self.servers_answer_leasequery;
        }
        c.panic_on_violation = false;
        // The trace printed with a failure (CDRA_FUZZ_TRACE: more of it; it changes nothing
        // else).
        c.trace_len = std::env::var("CDRA_FUZZ_TRACE").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
        c
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mode={} clients={} servers={} selection={:?} safe_network={} client_lease={} offer_choice={:?} \
             renew_reply_delay={}ms server_lease={}s max_age={}s max_clients={} max_pending_probes={} \
             transactions={} max_held_replies={} max_offer_windows={} clock_steps={} pending_clients={} \
             client_rate={}/s burst {} interface_rate={}/s burst {} reply_timeout={}s",
            self.mode.label(),
            self.clients,
            self.servers,
            self.selection,
            self.safe_network,
            self.client_lease.map(|s| format!("{s}s")).unwrap_or_else(|| "off".into()),
            self.offer_choice,
            self.renew_reply_delay_ms,
            self.server_lease_secs,
            self.max_age_secs,
            self.max_clients,
            self.max_pending_probes,
            self.transactions,
            self.max_held_replies,
            self.max_offer_windows,
            self.clock_steps,
            self.pending_clients,
            self.client_rate.0,
            self.client_rate.1,
            self.interface_rate.0,
            self.interface_rate.1,
            self.reply_timeout_secs,
        )?;
        if self.mode == Mode::Pool {
            write!(
                f,
                " pool: size={} assign={:?} fallback_after={}ms client_lease={}s",
                self.pool_size, self.pool_assign, self.fallback_after_ms, self.pool_client_lease_secs
            )?;
        }
        if self.leasequery && self.mode != Mode::Relay {
            let (rate, outstanding, limit) = self.leasequery_bounds;
            write!(
                f,
                " leasequery: rate={rate}/s max_outstanding={outstanding} unanswered_limit={limit} servers_answer={}",
                self.servers_answer_leasequery
            )?;
        }
        Ok(())
    }
}

/// A failed case, with what is needed to replay and read it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The case (replay it with `engine-fuzz --replay '<case>'`).
    pub case: Case,
    /// Its parameters.
    pub params: Params,
    /// The step during which it was found.
    pub step: usize,
    /// Simulated time since the start, ms.
    pub at: u64,
    /// The engine's clock minus the network's, ms.
    pub engine_clock_offset: i64,
    /// What broke.
    pub invariant: Invariant,
    /// How.
    pub detail: String,
    /// The last fuzz events, oldest first.
    pub recent: Vec<String>,
    /// The simulation's trace of the last events.
    pub trace: String,
}

impl Failure {
    /// The case cut at the failing step: the same failure replays with it.
    pub fn shortest_prefix(&self) -> Case {
        let mut c = self.case.clone();
        c.steps = self.step + 1;
        if let Some(k) = &mut c.keep {
            k.retain(|s| *s <= self.step);
        }
        c
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "engine fuzz FAILURE: {}", self.invariant)?;
        writeln!(
            f,
            "  replay: cargo run --release -p cdra-fuzz --bin engine-fuzz -- --replay '{}'",
            self.shortest_prefix()
        )?;
        writeln!(f, "  params: {}", self.params)?;
        writeln!(
            f,
            "  at step {} ({}, engine clock {:+} ms)",
            self.step,
            cdra_sim::trace::fmt_time(self.at),
            self.engine_clock_offset
        )?;
        writeln!(f, "  {}", self.detail)?;
        writeln!(f, "  last fuzz events:")?;
        for e in &self.recent {
            writeln!(f, "    {e}")?;
        }
        writeln!(f, "  simulation trace:")?;
        for l in self.trace.lines() {
            writeln!(f, "    {l}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_print_and_parse() {
        let mut c = Case::new(0x2a, 57, Profile::NoReplyAcceptance);
        assert_eq!(c.to_string().parse::<Case>().unwrap(), c);
        c.keep = Some([1, 2, 3, 7, 9, 10].into_iter().collect());
        assert_eq!(c.to_string(), "seed=0x2a steps=57 profile=no-reply-acceptance keep=1-3,7,9-10");
        assert_eq!(c.to_string().parse::<Case>().unwrap(), c);
        let line = "seed=42 steps=5 expect=pass   # found by ...";
        assert_eq!(line.parse::<Case>().unwrap(), Case::new(42, 5, Profile::Full));
        let pool = Case::new(3, 9, Profile::Genuine).in_mode(Mode::Pool);
        assert_eq!(pool.to_string(), "seed=0x3 steps=9 profile=genuine mode=pool");
        assert_eq!(pool.to_string().parse::<Case>().unwrap(), pool);
        assert!("seed=1 steps=2 mode=bridge".parse::<Case>().is_err());
        assert!("steps=5".parse::<Case>().is_err());
    }
}
