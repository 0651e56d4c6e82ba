//! What a run reports: per phase, the offered and achieved rates, completed and dropped
//! exchanges, latency percentiles per exchange type, packet counters, and the CPU time of
//! the generator and of any watched process. Printed as text, or as JSON with `--json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

/// Counters of one exchange type during one phase.
#[derive(Debug, Default, Clone)]
pub struct KindStats {
    /// Exchanges begun.
    pub started: u64,
    /// Exchanges that ended with the expected reply (ACK; for a release: sent).
    pub completed: u64,
    /// Exchanges that got no (final) reply in time: lost.
    pub dropped: u64,
    /// Exchanges answered with a NAK.
    pub naks: u64,
    /// Retransmissions (only with `--retries`).
    pub retransmits: u64,
    /// Latency of each completed exchange, first send to final reply, in microseconds.
    pub latency_us: Vec<u32>,
}

/// Latency percentiles in milliseconds (nearest rank).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Percentiles {
    /// Samples.
    pub count: usize,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// Percentiles of `samples` (microseconds), which this sorts. `None` when empty.
pub fn percentiles(samples: &mut [u32]) -> Option<Percentiles> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let n = samples.len();
    let at = |q: f64| -> f64 {
        // Nearest rank: the smallest sample with at least q of all samples at or below it.
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        f64::from(samples[rank - 1]) / 1000.0
    };
    let sum: u64 = samples.iter().map(|&s| u64::from(s)).sum();
    Some(Percentiles {
        count: n,
        mean_ms: sum as f64 / n as f64 / 1000.0,
        p50_ms: at(0.50),
        p90_ms: at(0.90),
        p99_ms: at(0.99),
        p999_ms: at(0.999),
        max_ms: f64::from(samples[n - 1]) / 1000.0,
    })
}

/// One exchange type in a phase report.
#[derive(Debug, Clone, Serialize)]
pub struct KindReport {
    /// Exchanges begun.
    pub started: u64,
    /// Completed (ACK received; for release: sent).
    pub completed: u64,
    /// Lost: no final reply within the timeout (after retries).
    pub dropped: u64,
    /// Answered with a NAK.
    pub naks: u64,
    /// Retransmissions.
    pub retransmits: u64,
    /// Latency from the first send to the final reply.
    pub latency: Option<Percentiles>,
}

/// Packet-level counters of a phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PacketCounters {
    /// DHCP frames sent.
    pub sent: u64,
    /// DHCP replies received (any, to port 68).
    pub received: u64,
    /// Replies for an exchange that had already completed (e.g. a relay that forwards a
    /// unicast renewal twice).
    pub duplicates: u64,
    /// Replies for an exchange that had already been counted as dropped, or from a phase
    /// before.
    pub late: u64,
    /// Replies that match no emulated client (unknown xid or chaddr), or malformed.
    pub stray: u64,
    /// ARP replies sent on behalf of clients.
    pub arp_replies: u64,
    /// Frames the kernel refused to send.
    pub send_errors: u64,
}

/// CPU time of one watched process during a phase.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessCpu {
    /// Label given on the command line.
    pub label: String,
    /// Process id.
    pub pid: u32,
    /// utime + stime used during the phase, seconds.
    pub cpu_s: f64,
    /// CPU milliseconds per 1,000 completed exchanges.
    pub cpu_ms_per_1000: Option<f64>,
    /// Average share of one core during the phase.
    pub cores: f64,
    /// Change of the UDP counters (/proc/PID/net/snmp) of the process's network namespace
    /// during the phase: InDatagrams, InErrors, RcvbufErrors, NoPorts, ...
    pub netns_udp: Option<BTreeMap<String, i64>>,
}

/// The report of one phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    /// Position in the run, from 0.
    pub phase: usize,
    /// Optional label (`--label`, or `SCENARIO@RATE`).
    pub label: String,
    /// Scenario.
    pub scenario: String,
    /// Configured offered rate in exchanges/s (0: unlimited, closed loop).
    pub rate: f64,
    /// Sending window, seconds.
    pub duration_s: f64,
    /// Sending window plus the wait for the last replies, seconds.
    pub elapsed_s: f64,
    /// Exchanges begun.
    pub started: u64,
    /// Offered rate actually generated: started / duration.
    pub offered_rate: f64,
    /// Exchanges completed.
    pub completed: u64,
    /// Completed / duration.
    pub achieved_rate: f64,
    /// Exchanges lost.
    pub dropped: u64,
    /// Dropped / started, percent.
    pub drop_pct: f64,
    /// Exchanges answered with a NAK.
    pub naks: u64,
    /// Exchanges the generator wanted to begin but found no idle client for.
    pub no_idle_client: u64,
    /// Per exchange type.
    pub exchanges: BTreeMap<String, KindReport>,
    /// DORA only: DISCOVER to OFFER.
    pub offer_latency: Option<Percentiles>,
    /// Packet counters.
    pub packets: PacketCounters,
    /// CPU time of the generator itself, seconds.
    pub generator_cpu_s: f64,
    /// Watched processes (`--cpu LABEL=PID`).
    pub processes: Vec<ProcessCpu>,
    /// Deltas of the Kea `pkt4-*` statistics (`--kea-socket`).
    pub kea: Option<BTreeMap<String, i64>>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Interface used.
    pub interface: String,
    /// Emulated clients (table size).
    pub clients: u32,
    /// Index of the first client (MACs and xids derive from it).
    pub first_client: u32,
    /// Option 61 sent.
    pub client_id: bool,
    /// Exchange timeout, seconds.
    pub timeout_s: f64,
    /// Retransmissions per message.
    pub retries: u8,
    /// Phases in order.
    pub phases: Vec<PhaseReport>,
}

fn fmt_pct(p: &Option<Percentiles>) -> String {
    match p {
        Some(p) => format!("p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms", p.p50_ms, p.p99_ms, p.max_ms),
        None => "-".into(),
    }
}

impl PhaseReport {
    /// Human-readable summary.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let rate = if self.rate > 0.0 { format!("{:.0}/s", self.rate) } else { "unlimited".into() };
        let _ = writeln!(
            s,
            "phase {} [{}]: {} at {} for {:.1} s",
            self.phase, self.label, self.scenario, rate, self.duration_s
        );
        let _ = writeln!(
            s,
            "  offered {:.0}/s, achieved {:.0}/s; started {}, completed {}, dropped {} ({:.2} %), nak {}{}",
            self.offered_rate,
            self.achieved_rate,
            self.started,
            self.completed,
            self.dropped,
            self.drop_pct,
            self.naks,
            if self.no_idle_client > 0 { format!(", no idle client {}", self.no_idle_client) } else { String::new() }
        );
        for (k, r) in &self.exchanges {
            let _ = writeln!(
                s,
                "  {:<12} started {:>8} completed {:>8} dropped {:>6} nak {:>5}  {}",
                k,
                r.started,
                r.completed,
                r.dropped,
                r.naks,
                fmt_pct(&r.latency)
            );
        }
        if self.offer_latency.is_some() {
            let _ = writeln!(s, "  {:<12} {}", "(offer)", fmt_pct(&self.offer_latency));
        }
        let p = &self.packets;
        let _ = writeln!(
            s,
            "  packets: sent {} received {} duplicate {} late {} stray {} arp-replies {} send-errors {}",
            p.sent, p.received, p.duplicates, p.late, p.stray, p.arp_replies, p.send_errors
        );
        let per1000 = if self.completed > 0 { self.generator_cpu_s * 1e6 / self.completed as f64 } else { 0.0 };
        let _ = writeln!(s, "  cpu: generator {:.2} s ({:.1} ms/1000)", self.generator_cpu_s, per1000);
        for pc in &self.processes {
            let udp = pc
                .netns_udp
                .as_ref()
                .map(|u| {
                    let g = |k: &str| u.get(k).copied().unwrap_or(0);
                    format!(
                        "; its netns UDP: in {} rcvbuf-errors {} in-errors {}",
                        g("InDatagrams"),
                        g("RcvbufErrors"),
                        g("InErrors")
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "  cpu: {} (pid {}) {:.2} s = {:.2} cores{}{}",
                pc.label,
                pc.pid,
                pc.cpu_s,
                pc.cores,
                pc.cpu_ms_per_1000.map(|v| format!(", {v:.1} ms/1000 exchanges")).unwrap_or_default(),
                udp
            );
        }
        if let Some(k) = &self.kea {
            let keys = [
                "pkt4-received",
                "pkt4-discover-received",
                "pkt4-request-received",
                "pkt4-ack-sent",
                "pkt4-nak-sent",
                "pkt4-receive-drop",
            ];
            let parts: Vec<String> = keys
                .iter()
                .filter_map(|key| k.get(*key).map(|v| format!("{} {}", key.trim_start_matches("pkt4-"), v)))
                .collect();
            let _ = writeln!(s, "  kea: {}", parts.join(", "));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        let p = percentiles(&mut v).expect("some");
        assert_eq!(p.count, 100);
        assert_eq!(p.p50_ms, 50.0);
        assert_eq!(p.p99_ms, 99.0);
        assert_eq!(p.max_ms, 100.0);
        assert!((p.mean_ms - 50.5).abs() < 1e-9);
        let mut one = vec![1500];
        let p = percentiles(&mut one).expect("some");
        assert_eq!((p.p50_ms, p.p99_ms, p.max_ms), (1.5, 1.5, 1.5));
        assert!(percentiles(&mut []).is_none());
    }
}
