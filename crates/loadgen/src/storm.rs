//! The power-failure storm (paper 3.4; issue 14): clients that hold leases all reboot within
//! a few seconds while the server is down, and retransmit as RFC 2131 clients do until
//! they are answered.
//!
//! Sans-IO like [`crate::gen`]: the caller passes the time, hands in received frames and
//! sends what this puts in an [`Outbox`]. Guarantees:
//! * each client sends an INIT-REBOOT REQUEST (RFC 2131 4.3.2: option 50, ciaddr 0, no
//!   server identifier, broadcast), the first at a time drawn uniformly over the spread,
//!   then the same message (same xid) again after 4, 8, 16, 32 and 64 s, each delay
//!   randomised by up to +-1 s (RFC 2131 4.1), until an ACK or a NAK ends its exchange (a
//!   NAKed client would go on with a DISCOVER; that is not part of the storm);
//! * a client answers ARP for its address only once it is bound (after its ACK), as a
//!   rebooting host does; a squatter (another MAC, planted on a client's address) answers
//!   every ARP request for that address from the start, an RFC 5227 probe or not;
//! * every ARP request for a client's address is counted by kind: a probe (sender IP
//!   0.0.0.0) or a request from a host with an address (the relay's kernel resolving the
//!   address before an ICMP echo). An ACK that no probe on the wire preceded is counted;
//! * an ACK to a client whose address a squatter holds is a duplicate address; a NAK to a
//!   client nobody squats is a false alarm. Both are counted, never hidden in a share.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use cdra_wire::{Message, MessageType, Op};
use serde::Serialize;

use crate::frame::{parse_arp_request, parse_udp, write_arp_reply, CLIENT_PORT};
use crate::gen::{build_frame, client_mac, GenOptions, Msg, Outbox};
use crate::report::{percentiles, Percentiles};

/// RFC 2131 4.1: "the client SHOULD wait 4 seconds before the first retransmission ...
/// doubled on subsequent retransmissions up to a maximum of 64 seconds ... randomized by
/// the value of a uniform random number chosen from the range -1 to +1".
pub const BACKOFF_S: [u64; 5] = [4, 8, 16, 32, 64];
/// The windows the report gives shares for, seconds from a client's first REQUEST.
pub const WINDOWS_S: [u64; 5] = [1, 4, 12, 30, 60];

/// A lease a client holds when the power comes back: its MAC and address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldLease {
    /// The client's MAC (chaddr and Ethernet source).
    pub mac: [u8; 6],
    /// Its address (option 50 of its INIT-REBOOT).
    pub addr: Ipv4Addr,
}

/// Reads what `cdra-loadgen run --save-leases` wrote: one `MAC ADDRESS SERVER-ID` per line.
pub fn parse_leases(text: &str) -> Result<Vec<HeldLease>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut f = line.split_whitespace();
        let mac = f.next().and_then(crate::frame::parse_mac).ok_or_else(|| format!("line {}: bad MAC", n + 1))?;
        let addr =
            f.next().and_then(|a| a.parse::<Ipv4Addr>().ok()).ok_or_else(|| format!("line {}: bad address", n + 1))?;
        out.push(HeldLease { mac, addr });
    }
    Ok(out)
}

/// Storm settings.
#[derive(Debug, Clone)]
pub struct StormOptions {
    /// First REQUESTs are spread uniformly over this.
    pub spread: Duration,
    /// Squatters to plant: that many clients (chosen at random) find another MAC answering
    /// ARP for their address.
    pub squatters: usize,
    /// Second byte of the squatters' MACs (02:PP:...).
    pub squatter_prefix: u8,
    /// Seed of every random choice (first-send times, jitter, who is squatted).
    pub seed: u64,
    /// Send option 61 = 01 + MAC.
    pub client_id: bool,
    /// Set the BROADCAST flag.
    pub broadcast_flag: bool,
    /// The run ends this long after it began, whoever is still waiting.
    pub max_run: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Waiting,
    Acked(Duration),
    Naked(Duration),
}

#[derive(Debug, Clone)]
struct Client {
    lease: HeldLease,
    squatter: Option<[u8; 6]>,
    first_sent: Option<Instant>,
    transmissions: u8,
    /// Token of the pending retransmission timer.
    timer: u64,
    outcome: Outcome,
    probes_seen: u32,
    kernel_requests_seen: u32,
}

/// Counters of the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StormCounters {
    /// REQUESTs sent (first ones and retransmissions).
    pub requests_sent: u64,
    /// Of those, retransmissions.
    pub retransmissions: u64,
    /// ACKs and NAKs after a client's exchange had ended (answers to retransmissions).
    pub extra_replies: u64,
    /// Replies that matched no client.
    pub stray_replies: u64,
    /// ARP probes (sender IP 0.0.0.0) seen for a client's address.
    pub arp_probes_seen: u64,
    /// ARP requests from a host with an address (the relay's kernel) for a client's address.
    pub arp_kernel_requests_seen: u64,
    /// ARP requests for addresses that are no client's.
    pub arp_other_requests_seen: u64,
    /// ARP replies sent by squatters.
    pub squatter_arp_replies: u64,
    /// ARP replies sent by bound clients.
    pub client_arp_replies: u64,
    /// Frames the kernel refused.
    pub send_errors: u64,
}

/// The storm's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct StormReport {
    /// Clients that rebooted.
    pub clients: usize,
    /// Of those, clients whose address a squatter answers for.
    pub squatted: usize,
    /// First REQUESTs spread over this many seconds.
    pub spread_s: f64,
    /// How long the run took.
    pub run_s: f64,
    /// How far behind its schedule the generator sent a first REQUEST, at worst (ms).
    pub first_send_late_max_ms: f64,
    /// Share of all clients answered (ACK or NAK) within so many seconds of their first
    /// REQUEST.
    pub answered_within_s: BTreeMap<u64, f64>,
    /// Share of the clients nobody squats that were bound (ACK) within so many seconds.
    pub bound_within_s: BTreeMap<u64, f64>,
    /// Share of the squatted clients NAKed within so many seconds.
    pub squatted_naked_within_s: BTreeMap<u64, f64>,
    /// Clients ACKed.
    pub acks: u64,
    /// Clients NAKed.
    pub naks: u64,
    /// ACKs to squatted clients: duplicate addresses.
    pub duplicates: u64,
    /// NAKs to clients nobody squats.
    pub false_naks: u64,
    /// Clients with no answer when the run ended.
    pub unanswered: u64,
    /// ACKs given to a client with no ARP probe for its address seen on the wire before.
    pub acks_without_probe: u64,
    /// Clients whose address was probed (ARP, sender 0.0.0.0) at least once.
    pub probed_clients: u64,
    /// Clients whose address the relay's kernel asked for (ordinary ARP request).
    pub kernel_resolved_clients: u64,
    /// First REQUEST to ACK, clients nobody squats.
    pub time_to_lease: Option<Percentiles>,
    /// First REQUEST to NAK, squatted clients.
    pub time_to_nak: Option<Percentiles>,
    /// How many clients were answered after their 1st, 2nd, ... transmission.
    pub answered_on_transmission: Vec<u64>,
    /// Packet counters.
    pub counters: StormCounters,
}

/// The rebooting clients.
#[derive(Debug)]
pub struct Storm {
    opts: StormOptions,
    gen_opts: GenOptions,
    clients: Vec<Client>,
    by_addr: HashMap<Ipv4Addr, u32>,
    /// (when, client, token): first sends and retransmissions.
    timers: BinaryHeap<Reverse<(Instant, u32, u64)>>,
    next_token: u64,
    rng: u64,
    start: Instant,
    waiting: usize,
    first_send_late_max: Duration,
    counters: StormCounters,
}

/// xid of client `i`: its index in the top 24 bits.
fn xid_of(i: usize) -> u32 {
    ((i as u32) << 8) | 0x5a
}

impl Storm {
    /// The clients of `leases`, all powered off; the storm begins at `start`.
    pub fn new(leases: &[HeldLease], opts: StormOptions, start: Instant) -> Self {
        let gen_opts =
            GenOptions { client_id: opts.client_id, broadcast_flag: opts.broadcast_flag, ..GenOptions::default() };
        let mut s = Storm {
            gen_opts,
            clients: Vec::with_capacity(leases.len()),
            by_addr: HashMap::with_capacity(leases.len()),
            timers: BinaryHeap::with_capacity(leases.len()),
            next_token: 0,
            rng: opts.seed.max(1),
            start,
            waiting: leases.len(),
            first_send_late_max: Duration::ZERO,
            counters: StormCounters::default(),
            opts,
        };
        for (i, l) in leases.iter().take(crate::gen::MAX_CLIENTS as usize - 1).enumerate() {
            let planned = s.opts.spread.mul_f64(s.unit());
            s.by_addr.insert(l.addr, i as u32);
            s.clients.push(Client {
                lease: *l,
                squatter: None,
                first_sent: None,
                transmissions: 0,
                timer: 0,
                outcome: Outcome::Waiting,
                probes_seen: 0,
                kernel_requests_seen: 0,
            });
            let token = s.token();
            s.clients[i].timer = token;
            s.timers.push(Reverse((start + planned, i as u32, token)));
        }
        s.waiting = s.clients.len();
        // Squatters: a partial Fisher-Yates over the client indexes.
        let n = s.clients.len();
        let mut idx: Vec<u32> = (0..n as u32).collect();
        for k in 0..s.opts.squatters.min(n) {
            let j = k + (s.next_rand() % (n - k) as u64) as usize;
            idx.swap(k, j);
            let mac = client_mac(s.opts.squatter_prefix, k as u32);
            s.clients[idx[k] as usize].squatter = Some(mac);
        }
        s
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_rand() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The run is over: every client answered, or `max_run` passed.
    pub fn done(&self, now: Instant) -> bool {
        self.waiting == 0 || now.saturating_duration_since(self.start) >= self.opts.max_run
    }

    /// How long the caller may wait before calling [`Storm::due`] again.
    pub fn next_wakeup(&self, now: Instant) -> Duration {
        let end = (self.start + self.opts.max_run).saturating_duration_since(now);
        let next = self.timers.peek().map_or(end, |Reverse((t, _, _))| t.saturating_duration_since(now));
        next.min(end).min(Duration::from_millis(10))
    }

    /// Sends every REQUEST due at `now` (first ones and retransmissions), at most `max`.
    /// Returns how many were queued.
    pub fn due(&mut self, now: Instant, out: &mut Outbox, max: usize) -> usize {
        let mut sent = 0;
        while sent < max {
            let Some(&Reverse((at, i, token))) = self.timers.peek() else { break };
            if at > now {
                break;
            }
            self.timers.pop();
            let i = i as usize;
            let Some(c) = self.clients.get(i) else { continue };
            if c.timer != token || c.outcome != Outcome::Waiting {
                continue;
            }
            let (mac, addr, tries) = (c.lease.mac, c.lease.addr, c.transmissions);
            let slot = out.ip.slot();
            let len = build_frame(slot, &self.gen_opts, mac, xid_of(i), Msg::InitReboot { addr }).unwrap_or(0);
            out.ip.commit(len);
            if len == 0 {
                self.counters.send_errors += 1;
            }
            self.counters.requests_sent += 1;
            sent += 1;
            if tries == 0 {
                let late = now.saturating_duration_since(at);
                self.first_send_late_max = self.first_send_late_max.max(late);
            } else {
                self.counters.retransmissions += 1;
            }
            let backoff = BACKOFF_S.get(usize::from(tries)).copied();
            let jitter = self.unit() * 2.0 - 1.0;
            let token = self.token();
            let c = &mut self.clients[i];
            if tries == 0 {
                c.first_sent = Some(now);
            }
            c.transmissions = tries.saturating_add(1);
            c.timer = token;
            if let Some(b) = backoff {
                let delay = Duration::from_secs_f64((b as f64 + jitter).max(0.0));
                self.timers.push(Reverse((now + delay, i as u32, token)));
            }
        }
        sent
    }

    /// One received DHCP frame (UDP to port 68).
    pub fn on_frame(&mut self, now: Instant, frame: &[u8]) {
        let Some(f) = parse_udp(frame).filter(|f| f.dst_port == CLIENT_PORT) else { return };
        let Ok(m) = Message::new_checked(f.payload) else { return };
        if m.op() != Op::BootReply {
            return;
        }
        let xid = m.xid();
        let i = (xid >> 8) as usize;
        let stray = xid & 0xff != 0x5a;
        let Some(c) = self.clients.get_mut(i).filter(|c| !stray && m.chaddr().get(..6) == Some(&c.lease.mac[..]))
        else {
            self.counters.stray_replies += 1;
            return;
        };
        let Some(first) = c.first_sent else {
            self.counters.stray_replies += 1;
            return;
        };
        let took = now.saturating_duration_since(first);
        let outcome = match m.message_type() {
            Some(MessageType::Ack) => Outcome::Acked(took),
            Some(MessageType::Nak) => Outcome::Naked(took),
            _ => {
                self.counters.stray_replies += 1;
                return;
            }
        };
        if c.outcome != Outcome::Waiting {
            self.counters.extra_replies += 1;
            return;
        }
        c.outcome = outcome;
        self.waiting -= 1;
    }

    /// One received ARP frame: counted, and answered by a squatter or a bound client.
    pub fn on_arp(&mut self, frame: &[u8], out: &mut Outbox) {
        let Some(req) = parse_arp_request(frame) else { return };
        let Some(c) = self.by_addr.get(&req.target_ip).and_then(|&i| self.clients.get_mut(i as usize)) else {
            self.counters.arp_other_requests_seen += 1;
            return;
        };
        if req.sender_ip.is_unspecified() {
            c.probes_seen = c.probes_seen.saturating_add(1);
            self.counters.arp_probes_seen += 1;
        } else {
            c.kernel_requests_seen = c.kernel_requests_seen.saturating_add(1);
            self.counters.arp_kernel_requests_seen += 1;
        }
        // A squatter answers first; a bound client answers too (both, for a duplicate).
        if let Some(mac) = c.squatter {
            let n = write_arp_reply(out.arp.slot(), mac, req.target_ip, &req);
            out.arp.commit(n);
            self.counters.squatter_arp_replies += 1;
        }
        if matches!(c.outcome, Outcome::Acked(_)) {
            let n = write_arp_reply(out.arp.slot(), c.lease.mac, req.target_ip, &req);
            out.arp.commit(n);
            self.counters.client_arp_replies += 1;
        }
    }

    /// ACKs seen before any probe: a client is bound at its ACK, so a probe seen for its
    /// address afterwards cannot have preceded it. Noted at the ACK.
    fn acked_without_probe(&self) -> u64 {
        // `probes_seen` counts probes over the whole run; an ACK with none at all had none
        // before it either. (A probe after the ACK would be the relay probing a bound
        // client, which it does not do in a storm.)
        self.clients.iter().filter(|c| matches!(c.outcome, Outcome::Acked(_)) && c.probes_seen == 0).count() as u64
    }

    /// Frames the kernel refused, counted by the caller.
    pub fn add_send_errors(&mut self, n: u64) {
        self.counters.send_errors += n;
    }

    /// The report, at the end of the run.
    pub fn report(&self, now: Instant) -> StormReport {
        let n = self.clients.len();
        let squatted = self.clients.iter().filter(|c| c.squatter.is_some()).count();
        let clean = n - squatted;
        let share = |count: usize, of: usize| if of == 0 { 0.0 } else { count as f64 / of as f64 };
        let mut answered_within = BTreeMap::new();
        let mut bound_within = BTreeMap::new();
        let mut squatted_naked_within = BTreeMap::new();
        for w in WINDOWS_S {
            let limit = Duration::from_secs(w);
            let within = |o: &Outcome| match o {
                Outcome::Acked(t) | Outcome::Naked(t) => *t <= limit,
                Outcome::Waiting => false,
            };
            let answered = self.clients.iter().filter(|c| within(&c.outcome)).count();
            let bound = self
                .clients
                .iter()
                .filter(|c| c.squatter.is_none() && matches!(c.outcome, Outcome::Acked(t) if t <= limit))
                .count();
            let naked = self
                .clients
                .iter()
                .filter(|c| c.squatter.is_some() && matches!(c.outcome, Outcome::Naked(t) if t <= limit))
                .count();
            answered_within.insert(w, share(answered, n));
            bound_within.insert(w, share(bound, clean));
            squatted_naked_within.insert(w, share(naked, squatted));
        }
        let micros = |d: Duration| d.as_micros().min(u128::from(u32::MAX)) as u32;
        let mut lease_us: Vec<u32> = self
            .clients
            .iter()
            .filter(|c| c.squatter.is_none())
            .filter_map(|c| match c.outcome {
                Outcome::Acked(t) => Some(micros(t)),
                _ => None,
            })
            .collect();
        let mut nak_us: Vec<u32> = self
            .clients
            .iter()
            .filter(|c| c.squatter.is_some())
            .filter_map(|c| match c.outcome {
                Outcome::Naked(t) => Some(micros(t)),
                _ => None,
            })
            .collect();
        let mut on_transmission = vec![0u64; BACKOFF_S.len() + 1];
        for c in &self.clients {
            if c.outcome != Outcome::Waiting {
                // Answered after its latest transmission (an answer to an earlier one that
                // arrived late is counted at the latest: the client cannot tell them apart).
                let t = usize::from(c.transmissions.max(1)) - 1;
                if let Some(slot) = on_transmission.get_mut(t) {
                    *slot += 1;
                }
            }
        }
        let acks = self.clients.iter().filter(|c| matches!(c.outcome, Outcome::Acked(_))).count() as u64;
        let naks = self.clients.iter().filter(|c| matches!(c.outcome, Outcome::Naked(_))).count() as u64;
        StormReport {
            clients: n,
            squatted,
            spread_s: self.opts.spread.as_secs_f64(),
            run_s: now.saturating_duration_since(self.start).as_secs_f64(),
            first_send_late_max_ms: self.first_send_late_max.as_secs_f64() * 1e3,
            answered_within_s: answered_within,
            bound_within_s: bound_within,
            squatted_naked_within_s: squatted_naked_within,
            acks,
            naks,
            duplicates: self
                .clients
                .iter()
                .filter(|c| c.squatter.is_some() && matches!(c.outcome, Outcome::Acked(_)))
                .count() as u64,
            false_naks: self
                .clients
                .iter()
                .filter(|c| c.squatter.is_none() && matches!(c.outcome, Outcome::Naked(_)))
                .count() as u64,
            unanswered: self.waiting as u64,
            acks_without_probe: self.acked_without_probe(),
            probed_clients: self.clients.iter().filter(|c| c.probes_seen > 0).count() as u64,
            kernel_resolved_clients: self.clients.iter().filter(|c| c.kernel_requests_seen > 0).count() as u64,
            time_to_lease: percentiles(&mut lease_us),
            time_to_nak: percentiles(&mut nak_us),
            answered_on_transmission: on_transmission,
            counters: self.counters.clone(),
        }
    }
}

impl StormReport {
    /// Human-readable summary.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let pct = |m: &BTreeMap<u64, f64>| {
            m.iter().map(|(k, v)| format!("{k} s {:.1} %", v * 100.0)).collect::<Vec<_>>().join(", ")
        };
        let _ = writeln!(
            s,
            "storm: {} clients ({} squatted), first REQUESTs over {:.1} s, run {:.1} s",
            self.clients, self.squatted, self.spread_s, self.run_s
        );
        let _ = writeln!(s, "  answered within: {}", pct(&self.answered_within_s));
        let _ = writeln!(s, "  bound within:    {}", pct(&self.bound_within_s));
        let _ = writeln!(s, "  squatted NAKed:  {}", pct(&self.squatted_naked_within_s));
        let _ = writeln!(
            s,
            "  acks {} naks {} duplicates {} false-naks {} unanswered {} acks-without-probe {}",
            self.acks, self.naks, self.duplicates, self.false_naks, self.unanswered, self.acks_without_probe
        );
        if let Some(p) = &self.time_to_lease {
            let _ =
                writeln!(s, "  time to lease: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms", p.p50_ms, p.p99_ms, p.max_ms);
        }
        let _ = writeln!(s, "  answered on transmission 1..: {:?}", self.answered_on_transmission);
        let c = &self.counters;
        let _ = writeln!(
            s,
            "  sent {} (retransmissions {}), arp probes seen {} ({} clients), kernel arp requests {} ({} clients), squatter replies {}, send errors {}, first send late by {:.1} ms at most",
            c.requests_sent,
            c.retransmissions,
            c.arp_probes_seen,
            self.probed_clients,
            c.arp_kernel_requests_seen,
            self.kernel_resolved_clients,
            c.squatter_arp_replies,
            c.send_errors,
            self.first_send_late_max_ms
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{
        finish_udp_frame, UdpFrameSpec, ARP_FRAME_LEN, BROADCAST_MAC, DHCP_OFFSET, ETH_HLEN, FRAME_CAP,
    };
    use cdra_wire::options::OptionCode;
    use cdra_wire::MessageBuilder;

    const RELAY: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 1);
    const RELAY_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    fn leases(n: u32) -> Vec<HeldLease> {
        (0..n)
            .map(|i| HeldLease {
                mac: client_mac(0xcd, i),
                addr: Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 64, 1, 0)) + i),
            })
            .collect()
    }

    fn opts(squatters: usize) -> StormOptions {
        StormOptions {
            spread: Duration::from_secs(5),
            squatters,
            squatter_prefix: 0x5a,
            seed: 7,
            client_id: false,
            broadcast_flag: false,
            max_run: Duration::from_secs(70),
        }
    }

    /// The relay's answer to a REQUEST frame: ACK or NAK.
    fn reply(request: &[u8], ack: bool) -> Vec<u8> {
        let f = parse_udp(request).expect("udp");
        let m = Message::new_checked(f.payload).expect("dhcp");
        let mut buf = [0u8; FRAME_CAP];
        let mt = if ack { MessageType::Ack } else { MessageType::Nak };
        let mut b = MessageBuilder::new(&mut buf[DHCP_OFFSET..], Op::BootReply, Some(mt)).expect("builder");
        b.xid(m.xid()).chaddr(1, &f.src_mac);
        if ack {
            b.yiaddr(m.requested_ip().expect("option 50"));
        }
        b.options().option_addr(OptionCode::SERVER_ID, RELAY).expect("fits");
        let n = b.finish().expect("fits");
        let spec = UdpFrameSpec {
            dst_mac: BROADCAST_MAC,
            src_mac: RELAY_MAC,
            src_ip: RELAY,
            dst_ip: Ipv4Addr::BROADCAST,
            src_port: 67,
            dst_port: 68,
        };
        let len = finish_udp_frame(&mut buf, &spec, n).expect("frame");
        buf[..len].to_vec()
    }

    fn arp_probe(target: Ipv4Addr) -> Vec<u8> {
        let mut f = vec![0u8; ARP_FRAME_LEN];
        f[0..6].copy_from_slice(&BROADCAST_MAC);
        f[6..12].copy_from_slice(&RELAY_MAC);
        f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        let a = &mut f[ETH_HLEN..];
        a[0..8].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        a[8..14].copy_from_slice(&RELAY_MAC);
        a[24..28].copy_from_slice(&target.octets());
        f
    }

    /// A relay that answers a REQUEST after probing (ACK, or NAK when a squatter answered
    /// its probe) when `answer(xid, transmission)` says so; the others it loses.
    fn run(storm: &mut Storm, t0: Instant, answer: &dyn Fn(u32, u32) -> bool) -> Instant {
        let mut out = Outbox::default();
        let mut now = t0;
        let mut seen: HashMap<u32, u32> = HashMap::new();
        while !storm.done(now) {
            storm.due(now, &mut out, usize::MAX);
            let requests: Vec<Vec<u8>> = out.ip.frames().iter().map(|f| f.to_vec()).collect();
            out.ip.clear();
            for r in requests {
                let m = Message::new_checked(parse_udp(&r).expect("udp").payload).expect("dhcp");
                let n = seen.entry(m.xid()).or_default();
                *n += 1;
                if !answer(m.xid(), *n) {
                    continue;
                }
                let target = m.requested_ip().expect("option 50");
                storm.on_arp(&arp_probe(target), &mut out);
                let in_use = !out.arp.is_empty();
                out.arp.clear();
                storm.on_frame(now + Duration::from_millis(500), &reply(&r, !in_use));
            }
            now += Duration::from_millis(10);
        }
        now
    }

    #[test]
    fn every_client_reboots_within_the_spread_and_squatters_get_naks() {
        let t0 = Instant::now();
        let mut storm = Storm::new(&leases(1000), opts(30), t0);
        let end = run(&mut storm, t0, &|_, _| true);
        let r = storm.report(end);
        assert_eq!((r.clients, r.squatted, r.acks, r.naks, r.unanswered), (1000, 30, 970, 30, 0));
        assert_eq!((r.duplicates, r.false_naks, r.acks_without_probe), (0, 0, 0));
        assert_eq!(r.bound_within_s[&1], 1.0);
        assert_eq!(r.squatted_naked_within_s[&1], 1.0);
        assert_eq!(r.answered_on_transmission[0], 1000);
        assert_eq!(r.counters.squatter_arp_replies, 30);
        assert!(r.run_s <= 5.6, "{}", r.run_s);
    }

    #[test]
    fn lost_requests_are_retransmitted_after_4_8_16_s_with_jitter() {
        let t0 = Instant::now();
        let mut storm = Storm::new(&leases(300), opts(0), t0);
        // Client i is answered on its (i % 4 + 1)-th transmission.
        let end = run(&mut storm, t0, &|xid, n| (xid >> 8) % 4 + 1 == n);
        let r = storm.report(end);
        assert_eq!(r.unanswered, 0);
        assert!(r.counters.retransmissions > 0);
        assert_eq!(r.answered_on_transmission, vec![75, 75, 75, 75, 0, 0]);
        // The 2nd transmission goes 3-5 s after the first, the 3rd 7-9 s after that, the
        // 4th 15-17 s later still (each answered 0.5 s later here).
        assert_eq!(r.bound_within_s[&1], 0.25);
        let w = |k: u64| r.bound_within_s[&k];
        assert!((0.25..=0.5).contains(&w(4)), "{:?}", r.bound_within_s);
        assert!((0.5..=0.75).contains(&w(12)), "{:?}", r.bound_within_s);
        assert!((0.75..=1.0).contains(&w(30)) && w(60) == 1.0, "{:?}", r.bound_within_s);
        let p = r.time_to_lease.expect("some");
        assert!(p.max_ms > 25_000.0 && p.max_ms < 32_000.0, "{p:?}");
    }

    #[test]
    fn a_client_answers_arp_only_once_bound() {
        let t0 = Instant::now();
        let l = leases(1);
        let mut storm = Storm::new(&l, opts(0), t0);
        let mut out = Outbox::default();
        storm.on_arp(&arp_probe(l[0].addr), &mut out);
        assert!(out.arp.is_empty(), "a rebooting client does not answer");
        storm.due(t0 + Duration::from_secs(6), &mut out, usize::MAX);
        let req = out.ip.frames()[0].to_vec();
        storm.on_frame(t0 + Duration::from_secs(6), &reply(&req, true));
        storm.on_arp(&arp_probe(l[0].addr), &mut out);
        assert_eq!(out.arp.len(), 1);
        assert_eq!(storm.report(t0).acks_without_probe, 0, "one probe was seen before the ACK");
    }

    #[test]
    fn leases_file_round_trip() {
        let text =
            "# mac address server-id\n02:cd:00:00:00:01 10.64.1.1 10.64.0.1\n\n02:cd:00:00:00:02 10.64.1.2 10.64.0.1\n";
        let l = parse_leases(text).expect("parses");
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].addr, Ipv4Addr::new(10, 64, 1, 2));
        assert!(parse_leases("zz 10.0.0.1").is_err());
    }
}
