//! Random workloads: every client's life (power on, up for a while, power off with or
//! without RELEASE, maybe moved to the other link or with its lease file wiped, off for a
//! while, and again), forced early renewals, and server outages.
//!
//! The whole schedule is drawn up front from its own seed, independently of what happens
//! in the run, so a relay run and a proxy run of the same seed see exactly the same
//! workload and their server counts can be compared.

use crate::net::{Action, Sim};
use crate::rng::SimRng;
use crate::sched::Millis;

/// A workload description (times in milliseconds).
#[derive(Debug, Clone)]
pub struct Workload {
    /// Seed of the schedule.
    pub seed: u64,
    /// How long the workload lasts.
    pub duration: Millis,
    /// Clients first power on uniformly within this window.
    pub boot_window: Millis,
    /// Mean time a client stays on.
    pub mean_up: Millis,
    /// Mean time a client stays off (at least `min_off`).
    pub mean_off: Millis,
    /// Shortest off time.
    pub min_off: Millis,
    /// Probability a power-off sends a RELEASE.
    pub p_release: f64,
    /// Probability the lease file is wiped while off (next boot DISCOVERs).
    pub p_forget: f64,
    /// Probability the client comes back on the other link.
    pub p_move: f64,
    /// Mean time between forced early renewals of a client (`None`: none).
    pub mean_forced_renew: Option<Millis>,
    /// Server outages: (server, start offset, duration).
    pub outages: Vec<(usize, Millis, Millis)>,
}

impl Workload {
    /// Schedule the workload on `sim`, starting now, for clients `0..sim.clients().len()`.
    /// Returns how many actions were scheduled.
    pub fn schedule(&self, sim: &mut Sim) -> usize {
        let t0 = sim.now();
        let end = t0 + self.duration;
        let links = sim.config().links.len();
        let mut n = 0;
        let mut rng = SimRng::new(self.seed);
        for c in 0..sim.clients().len() {
            let mut r = rng.fork(c as u64);
            let mut link = sim.client(c).link();
            let mut t = t0 + r.below(self.boot_window.max(1));
            loop {
                if t >= end {
                    break;
                }
                sim.schedule(t, Action::PowerOn(c));
                n += 1;
                let up = r.exp(self.mean_up as f64) as Millis;
                let off_at = t + up.max(1000);
                // Forced renewals while up.
                if let Some(mean) = self.mean_forced_renew {
                    let mut tr = t + r.exp(mean as f64) as Millis;
                    while tr < off_at.min(end) {
                        sim.schedule(tr, Action::RenewNow(c));
                        n += 1;
                        tr += (r.exp(mean as f64) as Millis).max(1000);
                    }
                }
                if off_at >= end {
                    break;
                }
                let release = r.chance(self.p_release);
                sim.schedule(off_at, Action::PowerOff { client: c, release });
                n += 1;
                if r.chance(self.p_forget) {
                    sim.schedule(off_at, Action::ForgetLease(c));
                    n += 1;
                }
                if links > 1 && r.chance(self.p_move) {
                    link = (link + 1 + r.below(links as u64 - 1) as usize) % links;
                    sim.schedule(off_at, Action::Move { client: c, link });
                    n += 1;
                }
                let off = (r.exp(self.mean_off as f64) as Millis).max(self.min_off);
                t = off_at + off;
            }
        }
        for &(s, start, dur) in &self.outages {
            sim.schedule(t0 + start, Action::StopServer(s));
            sim.schedule(t0 + start + dur, Action::StartServer(s));
            n += 2;
        }
        n
    }
}
