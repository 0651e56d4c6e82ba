//! A ring buffer of the last events, kept cheaply (no formatting until asked) so that an
//! invariant violation can be reported with what led to it.

use core::fmt;
use core::net::Ipv4Addr;
use std::collections::VecDeque;

use cdra_core::{Destination, Verdict};

use crate::client::{AddrChange, ClientState};
use crate::msg::{mac_str, Summary};
use crate::sched::Millis;

/// One traced event.
#[derive(Debug, Clone)]
pub enum TraceEvent {
    /// A client sent something.
    ClientTx { client: usize, s: Summary, to: &'static str },
    /// A reply reached a client.
    ClientRx { client: usize, s: Summary, state_after: ClientState },
    /// A client's interface address changed.
    Addr { client: usize, change: AddrChange, end: Millis },
    /// The engine got a datagram.
    EngineRx { ifindex: u32, s: Summary, verdict: Verdict },
    /// The engine sent a datagram.
    EngineTx { dest: Destination, s: Summary, local: bool },
    /// The engine asked for a probe.
    Probe { ifindex: u32, target: Ipv4Addr, holder: Option<[u8; 6]> },
    /// A probe answer went to the engine.
    /// `mac` is `None` for an ICMP echo reply.
    ProbeAnswer { target: Ipv4Addr, mac: Option<[u8; 6]> },
    /// The engine's timers ran and produced something.
    EngineTimeout,
    /// A server got a message.
    ServerRx { server: usize, s: Summary },
    /// A server replied.
    ServerTx { server: usize, s: Summary },
    /// The bypass relay on a link relayed something.
    Bypass { link: usize, s: Summary, up: bool },
    /// Something was lost (unreachable, server stopped, nobody holds the address...).
    Lost { why: &'static str, s: Option<Summary> },
    /// A scripted or workload action.
    Action(String),
}

/// A traced event with its time.
#[derive(Debug, Clone)]
pub struct TraceEntry {
    /// When.
    pub at: Millis,
    /// What.
    pub event: TraceEvent,
}

/// The ring buffer.
#[derive(Debug)]
pub struct Trace {
    cap: usize,
    start: Millis,
    entries: VecDeque<TraceEntry>,
}

impl Trace {
    /// A trace keeping the last `cap` events; times print relative to `start`.
    pub fn new(cap: usize, start: Millis) -> Self {
        Trace { cap, start, entries: VecDeque::with_capacity(cap.min(4096)) }
    }

    /// Record an event.
    pub fn push(&mut self, at: Millis, event: TraceEvent) {
        if self.cap == 0 {
            return;
        }
        if self.entries.len() >= self.cap {
            self.entries.pop_front();
        }
        self.entries.push_back(TraceEntry { at, event });
    }

    /// Format the kept events, one per line; `name` turns a MAC into a client name.
    pub fn render(&self, name: &dyn Fn([u8; 6]) -> String) -> Vec<String> {
        self.entries
            .iter()
            .map(|e| format!("{} {}", fmt_time(e.at.saturating_sub(self.start)), Render(&e.event, name, self.start)))
            .collect()
    }
}

/// `+DdHH:MM:SS.mmm` relative time.
pub fn fmt_time(ms: Millis) -> String {
    let s = ms / 1000;
    format!("+{}d{:02}:{:02}:{:02}.{:03}", s / 86400, (s / 3600) % 24, (s / 60) % 60, s % 60, ms % 1000)
}

struct Render<'a>(&'a TraceEvent, &'a dyn Fn([u8; 6]) -> String, Millis);

impl fmt::Display for Render<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.1;
        match self.0 {
            TraceEvent::ClientTx { client, s, to } => write!(f, "client#{client} -> {to}: {s}"),
            TraceEvent::ClientRx { client, s, state_after } => {
                write!(f, "client#{client} <- {s} (now {state_after:?})")
            }
            TraceEvent::Addr { client, change, end } => match change {
                AddrChange::Configured(a) => write!(
                    f,
                    "client#{client} configures {a} until {}",
                    if *end == Millis::MAX { "forever".into() } else { fmt_time(end.saturating_sub(self.2)) }
                ),
                AddrChange::Unconfigured(a) => write!(f, "client#{client} removes {a}"),
            },
            TraceEvent::EngineRx { ifindex, s, verdict } => {
                write!(f, "engine <- if{ifindex} [{}]: {s} => {verdict:?}", name(s.mac))
            }
            TraceEvent::EngineTx { dest, s, local } => {
                let d = match dest {
                    Destination::Server { addr, .. } => format!("server {addr}"),
                    Destination::ClientUnicast { ifindex, dst, .. } => format!("if{ifindex} ip {dst}"),
                    Destination::ClientLink { ifindex, mac, dst, .. } => {
                        format!("if{ifindex} mac {} ip {dst}", mac_str(*mac))
                    }
                };
                write!(f, "engine -> {d} [{}]{}: {s}", name(s.mac), if *local { " LOCAL" } else { "" })
            }
            TraceEvent::Probe { ifindex, target, holder } => match holder {
                Some(m) => write!(f, "engine probes {target} on if{ifindex}: held by {}", name(*m)),
                None => write!(f, "engine probes {target} on if{ifindex}: nobody"),
            },
            TraceEvent::ProbeAnswer { target, mac } => match mac {
                Some(m) => write!(f, "probe answer (ARP) for {target} from {}", name(*m)),
                None => write!(f, "probe answer (ICMP) for {target}"),
            },
            TraceEvent::EngineTimeout => write!(f, "engine timers"),
            TraceEvent::ServerRx { server, s } => write!(f, "server#{server} <- [{}] {s}", name(s.mac)),
            TraceEvent::ServerTx { server, s } => write!(f, "server#{server} -> [{}] {s}", name(s.mac)),
            TraceEvent::Bypass { link, s, up } => {
                write!(f, "bypass relay link{link} {} [{}] {s}", if *up { "->server" } else { "->client" }, name(s.mac))
            }
            TraceEvent::Lost { why, s } => match s {
                Some(s) => write!(f, "LOST ({why}) [{}] {s}", name(s.mac)),
                None => write!(f, "LOST ({why})"),
            },
            TraceEvent::Action(a) => write!(f, "== {a}"),
        }
    }
}
