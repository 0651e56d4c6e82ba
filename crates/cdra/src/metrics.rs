//! Prometheus metrics over HTTP (`[metrics] listen = "ADDR:PORT"`, GET /metrics): what a
//! scrape answers, rendered from a [`Snapshot`].
//!
//! The counters live in the engine, which has one owner: the data-plane loop. A scrape
//! costs the loop one [`Snapshot::take`]: a copy of the counter arrays and a few gauges,
//! nothing rendered, nothing written. The management thread (`management.rs`) accepts the
//! connection, reads the request, renders the text exposition format from the snapshot
//! ([`render`]) and writes it; no client of this endpoint can hold the loop.

use cdra_core::leasequery::Willingness;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use anyhow::{Context, Result};
use cdra_core::counters::{Counters, MessageKind, ProxyEvent};
use cdra_core::table::Removal;
use cdra_core::{DiscardReason, DropReason, Engine, Timestamp};

use crate::management::{Channel, ManagementCounters};

/// Counters kept by the I/O layer rather than the engine.
#[derive(Debug, Default, Clone, Copy)]
pub struct IoCounters {
    /// Sends that failed.
    pub send_errors: u64,
    /// Datagrams larger than the receive buffer.
    pub oversized: u64,
    /// Wake-ups that stopped reading UDP :67 with its last batch full, to serve the rest.
    pub receive_yields: u64,
    /// Packets read off a client link that were not a UDP datagram we read, by reason.
    pub bad_frames: [u64; cdra_wire::ipv4::FrameError::ALL.len()],
    /// Frames read off a client link that were addressed to another host's MAC.
    pub other_host_frames: u64,
    /// Probe packets the kernel refused to send, by [`PROBE_METHODS`].
    pub probe_send_failures: [u64; 2],
    /// Probe answers the kernel dropped before cdra read them, by [`PROBE_METHODS`].
    pub probe_answers_lost: [u64; 2],
    /// The client table store, when one is configured.
    pub persistence: Option<crate::persistence::PersistenceStatus>,
    /// Spoofing mode's interception.
    pub intercept: Option<crate::interception::InterceptStatus>,
    /// Event log lines that could not be written (`[log] events`).
    pub event_write_errors: u64,
    /// One of a pair of relays (`[ha]`).
    pub ha: Option<crate::ha::HaStatus>,
}

/// The probe methods, as the `method` label of the probe metrics says them.
pub const PROBE_METHODS: [&str; 2] = ["arp", "icmp"];

/// Listen on `addr` (non-blocking; the management thread accepts).
pub fn bind(addr: SocketAddr) -> Result<TcpListener> {
    let listener = TcpListener::bind(addr).with_context(|| format!("metrics.listen: cannot listen on {addr}"))?;
    listener.set_nonblocking(true).context("metrics.listen")?;
    Ok(listener)
}

/// What does not change while cdra runs: names and addresses from the configuration.
#[derive(Debug, Clone)]
pub struct Static {
    /// Names of the counter interface slots (each downstream interface, then "upstream").
    pub slot_names: Vec<String>,
    /// Downstream interface names, by index (for the client table listing).
    pub downstream_names: Vec<String>,
    /// Configured servers, in configuration order.
    pub servers: Vec<Ipv4Addr>,
    /// The mode keeps a client table.
    pub caches: bool,
    /// Pool mode (the listing shows the pool entries; metrics show the pool).
    pub pool: bool,
    /// `[pool] size`.
    pub pool_size: usize,
}

impl Static {
    /// Read from the engine's configuration once, at start-up.
    pub fn of(engine: &Engine) -> Self {
        Static {
            slot_names: engine.interface_slot_names().map(str::to_string).collect(),
            downstream_names: engine.config().downstream.iter().map(|d| d.name.clone()).collect(),
            servers: engine.servers().servers().iter().map(|s| s.addr).collect(),
            caches: engine.config().mode.caches(),
            pool: engine.config().mode == cdra_core::Mode::Pool,
            pool_size: engine.config().pool.size,
        }
    }
}

/// Every value a scrape or `cdra cache counters` shows that changes, copied out of the
/// engine by the loop in one go (no rendering on the loop).
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The engine's counters.
    pub counters: Counters,
    /// Liveness of each configured server, in configuration order.
    pub server_up: Vec<bool>,
    /// Records in the client table.
    pub clients: usize,
    /// Of those, records still waiting for a server answer.
    pub pending_clients: usize,
    /// Shared reply templates (paper 5.7, `[limits] reply_templates`).
    pub reply_templates: usize,
    /// Replies that kept a template of their own because the bound was reached.
    pub reply_templates_full: u64,
    /// Forwarded requests waiting for their reply.
    pub transactions: usize,
    /// Address probes in flight.
    pub pending_probes: usize,
    /// The most in flight at once since start.
    pub pending_probes_peak: usize,
    /// Counters of the I/O layer.
    pub io: IoCounters,
    /// Spoofing mode: server identifiers the engine did not intercept (its bound).
    pub intercept_refused: u64,
    /// Pool mode: the entries of each downstream interface, by state.
    pub pool: Vec<cdra_core::pool::PoolTotals>,
    /// Each downstream slot's name and state (up, waiting, removed).
    pub links: Vec<(String, cdra_core::LinkState)>,
    /// RFC 4388 leasequery (when enabled): queries outstanding, subnets left to sweep, and
    /// whether each server answers it.
    pub leasequery: Option<(usize, usize, Vec<cdra_core::leasequery::Willingness>)>,
}

impl Snapshot {
    /// Copy what a scrape needs (the loop's whole share of a scrape).
    pub fn take(engine: &Engine, now: Timestamp, io: IoCounters) -> Self {
        let servers = engine.servers();
        Snapshot {
            counters: engine.counters().clone(),
            server_up: (0..servers.servers().len()).map(|i| servers.is_up(i, now)).collect(),
            clients: engine.table().len(),
            pending_clients: engine.table().pending_len(),
            reply_templates: engine.table().templates().len(),
            reply_templates_full: engine.table().templates().kept_alone(),
            transactions: engine.outstanding_requests().len(),
            pending_probes: engine.pending_probes(),
            pending_probes_peak: engine.pending_probes_peak(),
            io,
            intercept_refused: engine.intercepted_addresses().refused(),
            pool: (0..engine.pool().links()).map(|l| engine.pool().totals_of(l)).collect(),
            links: engine.config().downstream.iter().map(|d| (d.name.clone(), d.state)).collect(),
            leasequery: engine.config().leasequery.enabled.then(|| {
                let lq = engine.leasequery();
                (lq.outstanding(), lq.sweeps_left(), lq.servers().iter().map(|s| s.willingness).collect())
            }),
        }
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value in the text exposition format: backslash, double quote and line feed
/// escaped (interface names are chosen by the operator and may hold any of them).
pub fn escape_label(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return std::borrow::Cow::Borrowed(value);
    }
    let mut s = String::with_capacity(value.len() + 4);
    for ch in value.chars() {
        match ch {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    std::borrow::Cow::Owned(s)
}

/// A counter family with one label, its values and their meaning listed in the help text.
fn labelled_family<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: impl Iterator<Item = (&'a str, &'a str, u64)> + Clone,
) {
    let mut text = String::from(help);
    for (value, meaning, _) in values.clone().filter(|(_, meaning, _)| !meaning.is_empty()) {
        let _ = write!(text, " {value}: {meaning}");
    }
    family(out, name, "counter", &text);
    for (value, _, v) in values {
        let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {v}", escape_label(value));
    }
}

/// The exposition text.
pub fn render(st: &Static, snap: &Snapshot, mgmt: &ManagementCounters) -> String {
    let mut out = String::with_capacity(8192);
    let c = &snap.counters;
    let names = &st.slot_names;
    for (metric, help, pick) in [
        ("cdra_received_total", "DHCP messages received, by interface and message type.", 0),
        ("cdra_sent_total", "DHCP messages sent, by interface and message type.", 1),
    ] {
        family(&mut out, metric, "counter", help);
        for (iface, ic) in names.iter().zip(&c.interfaces) {
            let values = if pick == 0 { &ic.received } else { &ic.sent };
            for (label, v) in MessageKind::LABELS.iter().zip(values) {
                if *v > 0 {
                    let _ = writeln!(out, "{metric}{{interface=\"{}\",type=\"{label}\"}} {v}", escape_label(iface));
                }
            }
        }
    }
    family(&mut out, "cdra_dropped_total", "counter", "Datagrams dropped, by interface and reason.");
    for (iface, ic) in names.iter().zip(&c.interfaces) {
        for &reason in DropReason::ALL {
            let v = ic.dropped.get(reason.index()).copied().unwrap_or(0);
            if v > 0 {
                let iface = escape_label(iface);
                let _ = writeln!(out, "cdra_dropped_total{{interface=\"{iface}\",reason=\"{}\"}} {v}", reason.label());
            }
        }
    }
    let malformed = cdra_wire::WireError::ALL.iter().zip(&c.malformed);
    labelled_family(
        &mut out,
        "cdra_malformed_total",
        "Datagrams dropped as malformed, by what the wire check found.",
        "error",
        malformed.map(|(e, v)| (e.label(), "", *v)),
    );
    family(&mut out, "cdra_server_requests_total", "counter", "Requests relayed to each server.");
    for (s, sc) in st.servers.iter().zip(&c.servers) {
        let _ = writeln!(out, "cdra_server_requests_total{{server=\"{s}\"}} {}", sc.requests_sent);
    }
    family(&mut out, "cdra_server_replies_total", "counter", "Replies accepted from each server.");
    for (s, sc) in st.servers.iter().zip(&c.servers) {
        let _ = writeln!(out, "cdra_server_replies_total{{server=\"{s}\"}} {}", sc.replies_received);
    }
    family(&mut out, "cdra_server_up", "gauge", "1 while the server answers requests, 0 when it is considered down.");
    for (s, up) in st.servers.iter().zip(&snap.server_up) {
        let _ = writeln!(out, "cdra_server_up{{server=\"{s}\"}} {}", u8::from(*up));
    }
    if let Some((outstanding, sweeps, willingness)) = &snap.leasequery {
        family(
            &mut out,
            "cdra_leasequery_outstanding",
            "gauge",
            "RFC 4388 queries waiting for their answer (leasequery.max_outstanding is the bound).",
        );
        let _ = writeln!(out, "cdra_leasequery_outstanding {outstanding}");
        family(
            &mut out,
            "cdra_leasequery_sweeps",
            "gauge",
            "RFC 4388 sweeps not finished: subnets (the one in progress included) whose addresses are still to be asked.",
        );
        let _ = writeln!(out, "cdra_leasequery_sweeps {sweeps}");
        family(
            &mut out,
            "cdra_leasequery_server",
            "gauge",
            "1 for the state each server is in for leasequery: unknown, answers, not_answering (left alone until the next sweep).",
        );
        for (s, w) in st.servers.iter().zip(willingness) {
            for state in [Willingness::Unknown, Willingness::Answers, Willingness::NotAnswering] {
                let v = u8::from(*w == state);
                let _ = writeln!(out, "cdra_leasequery_server{{server=\"{s}\",state=\"{}\"}} {v}", state.label());
            }
        }
    }
    family(
        &mut out,
        "cdra_server_round_trip_seconds",
        "histogram",
        "Time from forwarding a request to each server to its matching reply (millisecond resolution).",
    );
    for (s, sc) in st.servers.iter().zip(&c.servers) {
        let h = &sc.round_trip;
        for (bound, n) in h.cumulative() {
            let le = match bound {
                Some(ms) => format!("{}", ms as f64 / 1000.0),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(out, "cdra_server_round_trip_seconds_bucket{{server=\"{s}\",le=\"{le}\"}} {n}");
        }
        let _ = writeln!(out, "cdra_server_round_trip_seconds_sum{{server=\"{s}\"}} {}", h.sum_ms as f64 / 1000.0);
        let _ = writeln!(out, "cdra_server_round_trip_seconds_count{{server=\"{s}\"}} {}", h.count());
    }
    family(
        &mut out,
        "cdra_events_dropped_total",
        "counter",
        "Per-client event log lines lost because more than [log] events_queue events came in one turn.",
    );
    let _ = writeln!(out, "cdra_events_dropped_total {}", c.events_dropped);
    family(&mut out, "cdra_events_write_errors_total", "counter", "Writes of event log lines that failed.");
    let _ = writeln!(out, "cdra_events_write_errors_total {}", snap.io.event_write_errors);
    family(
        &mut out,
        "cdra_option82_not_added_total",
        "counter",
        "Option 82 not added because the message would be too large.",
    );
    let _ = writeln!(out, "cdra_option82_not_added_total {}", c.option82_not_added_too_large);
    family(
        &mut out,
        "cdra_option82_not_added_bootp_total",
        "counter",
        "Option 82 not added: a plain BOOTP request without the magic cookie has no options field.",
    );
    let _ = writeln!(out, "cdra_option82_not_added_bootp_total {}", c.option82_not_added_no_options);
    family(
        &mut out,
        "cdra_vss_not_understood_total",
        "counter",
        "Replies still carrying the VSS Control sub-option cdra sent (RFC 6607): their server did not use the VSS.",
    );
    let _ = writeln!(out, "cdra_vss_not_understood_total {}", c.vss_not_understood);
    family(&mut out, "cdra_send_errors_total", "counter", "Datagrams the kernel refused to send.");
    let io = &snap.io;
    let _ = writeln!(out, "cdra_send_errors_total {}", io.send_errors);
    family(&mut out, "cdra_oversized_datagrams_total", "counter", "Datagrams larger than the receive buffer.");
    let _ = writeln!(out, "cdra_oversized_datagrams_total {}", io.oversized);
    family(
        &mut out,
        "cdra_receive_yields_total",
        "counter",
        "Wake-ups that stopped reading with datagrams possibly pending, to serve timers, probes, control, store and signals.",
    );
    let _ = writeln!(out, "cdra_receive_yields_total {}", io.receive_yields);
    let bad = cdra_wire::ipv4::FrameError::ALL.iter().zip(&io.bad_frames);
    labelled_family(
        &mut out,
        "cdra_bad_frames_total",
        "Packets read off a client link that were not a UDP datagram to read (IPv4/UDP checks, as the kernel makes for a UDP socket).",
        "error",
        bad.map(|(e, v)| (e.label(), "", *v)),
    );
    family(
        &mut out,
        "cdra_other_host_frames_total",
        "counter",
        "Frames read off a client link that were addressed to another host's MAC (promiscuous mode): ignored.",
    );
    let _ = writeln!(out, "cdra_other_host_frames_total {}", io.other_host_frames);
    family(&mut out, "cdra_transactions", "gauge", "Forwarded requests waiting for their reply (limits.transactions).");
    let _ = writeln!(out, "cdra_transactions {}", snap.transactions);
    family(
        &mut out,
        "cdra_transactions_evicted_total",
        "counter",
        "Forwarded requests forgotten to make room (limits.transactions): their replies are not believed.",
    );
    let _ = writeln!(out, "cdra_transactions_evicted_total {}", c.transactions_evicted);
    if let Some(p) = io.persistence {
        family(
            &mut out,
            "cdra_persistence_up",
            "gauge",
            "1 while the client table store is open, 0 while cdra runs without it (and retries opening it).",
        );
        let _ = writeln!(out, "cdra_persistence_up {}", u8::from(p.up));
        family(
            &mut out,
            "cdra_persistence_open_failures_total",
            "counter",
            "Failed attempts to open the client table store.",
        );
        let _ = writeln!(out, "cdra_persistence_open_failures_total {}", p.open_failures);
        family(
            &mut out,
            "cdra_persistence_commit_failures_total",
            "counter",
            "Failed commits to the client table store (each retried; with Redis, after reconnecting).",
        );
        let _ = writeln!(out, "cdra_persistence_commit_failures_total {}", p.commit_failures);
    }
    if let Some(h) = io.ha {
        family(
            &mut out,
            "cdra_ha_active",
            "gauge",
            "1 while this relay is the pair's active one: holds the virtual address ([ha]), or the lease in Redis, or is alone with Redis out of reach.",
        );
        let _ = writeln!(out, "cdra_ha_active {}", u8::from(h.active));
        family(&mut out, "cdra_ha_takeovers_total", "counter", "Times this relay became the active one of the pair.");
        let _ = writeln!(out, "cdra_ha_takeovers_total {}", h.takeovers);
        family(
            &mut out,
            "cdra_ha_standby_drops_total",
            "counter",
            "Datagrams read while not serving (standby, or taking over before the table was loaded): dropped.",
        );
        let _ = writeln!(out, "cdra_ha_standby_drops_total {}", h.standby_drops);
        if let Some(counts) = h.lease_changes {
            labelled_family(
                &mut out,
                "cdra_ha_lease_changes_total",
                "Changes of role the pair's lease in Redis made (no virtual address), by change.",
                "change",
                cdra_store::LeaseChange::ALL.iter().map(|c| (c.label(), "", counts[c.index()])),
            );
        }
    }
    if let Some(i) = io.intercept {
        family(
            &mut out,
            "cdra_intercepted_addresses",
            "gauge",
            "Spoofing mode: server addresses whose client unicasts (UDP port 67, from a downstream interface) the router does not forward.",
        );
        let _ = writeln!(out, "cdra_intercepted_addresses {}", i.addresses);
        family(
            &mut out,
            "cdra_intercept_errors_total",
            "counter",
            "Spoofing mode: attempts to intercept a server identifier that the kernel refused (retried every 10 s).",
        );
        let _ = writeln!(out, "cdra_intercept_errors_total {}", i.errors);
        family(
            &mut out,
            "cdra_intercept_refused_total",
            "counter",
            "Spoofing mode: server identifiers not intercepted because the set was full (two per configured server at most).",
        );
        let _ = writeln!(out, "cdra_intercept_refused_total {}", snap.intercept_refused);
    }
    labelled_family(
        &mut out,
        "cdra_management_refused_total",
        "Connections to the metrics endpoint or the control socket closed at once because max_connections were open.",
        "channel",
        Channel::ALL.iter().map(|ch| (ch.label(), "", mgmt.refused[ch.index()])),
    );
    labelled_family(
        &mut out,
        "cdra_management_timeouts_total",
        "Connections to the metrics endpoint or the control socket closed because they made no progress within their timeout.",
        "channel",
        Channel::ALL.iter().map(|ch| (ch.label(), "", mgmt.timed_out[ch.index()])),
    );
    family(
        &mut out,
        "cdra_interface_up",
        "gauge",
        "Configured downstream interfaces: 1 when up and served, 0 while waiting for it (it does not exist, is down, or lacks its IPv4 address).",
    );
    for (name, state) in snap.links.iter().filter(|(_, s)| *s != cdra_core::LinkState::Removed) {
        let up = u8::from(*state == cdra_core::LinkState::Up);
        let _ = writeln!(out, "cdra_interface_up{{interface=\"{}\"}} {up}", escape_label(name));
    }
    family(
        &mut out,
        "cdra_interface_changes_total",
        "counter",
        "Downstream interfaces that came up (or got their address back), and that went waiting.",
    );
    let _ = writeln!(out, "cdra_interface_changes_total{{change=\"up\"}} {}", c.links_up);
    let _ = writeln!(out, "cdra_interface_changes_total{{change=\"waiting\"}} {}", c.links_waiting);
    if st.caches {
        family(&mut out, "cdra_clients", "gauge", "Records in the client table.");
        let _ = writeln!(out, "cdra_clients {}", snap.clients);
        family(
            &mut out,
            "cdra_pending_clients",
            "gauge",
            "Records still waiting for a server answer (a pool apart, limits.pending_clients).",
        );
        let _ = writeln!(out, "cdra_pending_clients {}", snap.pending_clients);
        family(
            &mut out,
            "cdra_reply_templates",
            "gauge",
            "Shared reply templates: what the replies of clients of one server and subnet share, kept once (paper 5.7, limits.reply_templates).",
        );
        let _ = writeln!(out, "cdra_reply_templates {}", snap.reply_templates);
        family(
            &mut out,
            "cdra_reply_templates_full_total",
            "counter",
            "Server replies kept with a template of their own because limits.reply_templates templates were shared already.",
        );
        let _ = writeln!(out, "cdra_reply_templates_full_total {}", snap.reply_templates_full);
        family(&mut out, "cdra_pending_probes", "gauge", "Address probes in flight.");
        let _ = writeln!(out, "cdra_pending_probes {}", snap.pending_probes);
        family(
            &mut out,
            "cdra_pending_probes_peak",
            "gauge",
            "The most address probes in flight at once since cdra started (proxy.max_pending_probes is the bound).",
        );
        let _ = writeln!(out, "cdra_pending_probes_peak {}", snap.pending_probes_peak);
        labelled_family(
            &mut out,
            "cdra_probe_send_failures_total",
            "Probe packets the kernel refused to send, by method (a probe none of whose packets went out leads to no local answer: cdra_proxy_events_total{event=\"probe_unsent\"}).",
            "method",
            PROBE_METHODS.iter().zip(io.probe_send_failures).map(|(m, v)| (*m, "", v)),
        );
        labelled_family(
            &mut out,
            "cdra_probe_answers_lost_total",
            "Packets on the probe sockets the kernel dropped before cdra read them (a full receive queue), by method: the probes then in flight were sent again.",
            "method",
            PROBE_METHODS.iter().zip(io.probe_answers_lost).map(|(m, v)| (*m, "", v)),
        );
        if st.pool {
            family(
                &mut out,
                "cdra_pool_entries",
                "gauge",
                "Pool mode: addresses cdra leases under its own identities, by downstream interface and state \
                 (free, held_back, acquiring, assigned).",
            );
            for (name, t) in st.downstream_names.iter().zip(&snap.pool) {
                let name = escape_label(name);
                for (state, n) in
                    [("free", t.free), ("held_back", t.held_back), ("acquiring", t.acquiring), ("assigned", t.assigned)]
                {
                    let _ = writeln!(out, "cdra_pool_entries{{interface=\"{name}\",state=\"{state}\"}} {n}");
                }
            }
            family(
                &mut out,
                "cdra_pool_size",
                "gauge",
                "Pool mode: free entries kept per downstream interface ([pool] size).",
            );
            let _ = writeln!(out, "cdra_pool_size {}", st.pool_size);
        }
        let p = &c.proxy;
        // Every label comes from the enum's own table (label and help next to each variant),
        // and every value is written, zeros included, so a series never appears late.
        labelled_family(
            &mut out,
            "cdra_proxy_events_total",
            "Caching-mode events, by kind.",
            "event",
            ProxyEvent::ALL.iter().map(|e| (e.label(), e.help(), p[*e])),
        );
        labelled_family(
            &mut out,
            "cdra_records_removed_total",
            "Client records removed, by cause.",
            "cause",
            Removal::ALL.iter().map(|r| (r.label(), r.help(), p.removed[*r])),
        );
        labelled_family(
            &mut out,
            "cdra_discarded_total",
            "Messages silently discarded as paper Table 1 says, by reason.",
            "reason",
            DiscardReason::ALL.iter().map(|d| (d.label(), d.help(), p.discarded[*d])),
        );
        family(
            &mut out,
            "cdra_answered_without_server_total",
            "counter",
            "Client messages answered from the table, never reaching a server.",
        );
        let local = p[ProxyEvent::LocalOffer] + p[ProxyEvent::LocalAck] + p[ProxyEvent::BootpSpoofed];
        let _ = writeln!(out, "cdra_answered_without_server_total {local}");
    }
    out
}

#[cfg(test)]
mod tests {
    use cdra_core::counters::ProxyEvent;
    use cdra_core::table::Removal;
    use cdra_core::{DiscardReason, DropReason, Engine, Mode, Timestamp};
    use cdra_sim::SimConfig;

    use super::{escape_label, render, IoCounters, Snapshot, Static};
    use crate::management::{Channel, ManagementCounters};

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("eth0"), "eth0");
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("a\nb"), "a\\nb");
    }

    #[test]
    fn every_labelled_counter_is_rendered_and_documented() {
        let engine = Engine::new(SimConfig::small(1, Mode::Proxy).engine_config());
        let ha = crate::ha::HaStatus { lease_changes: Some(Default::default()), ..Default::default() };
        let snap = Snapshot::take(&engine, Timestamp::default(), IoCounters { ha: Some(ha), ..IoCounters::default() });
        let text = render(&Static::of(&engine), &snap, &ManagementCounters::default());
        let docs = include_str!("../../../docs/metrics.md");
        let mut expected: Vec<(&str, &str, &str)> = Vec::new();
        expected.extend(ProxyEvent::ALL.iter().map(|e| ("cdra_proxy_events_total", "event", e.label())));
        expected.extend(Removal::ALL.iter().map(|r| ("cdra_records_removed_total", "cause", r.label())));
        expected.extend(DiscardReason::ALL.iter().map(|d| ("cdra_discarded_total", "reason", d.label())));
        expected.extend(cdra_wire::WireError::ALL.iter().map(|e| ("cdra_malformed_total", "error", e.label())));
        expected.extend(Channel::ALL.iter().map(|c| ("cdra_management_refused_total", "channel", c.label())));
        expected.extend(Channel::ALL.iter().map(|c| ("cdra_management_timeouts_total", "channel", c.label())));
        expected.extend(super::PROBE_METHODS.iter().map(|m| ("cdra_probe_send_failures_total", "method", *m)));
        expected.extend(super::PROBE_METHODS.iter().map(|m| ("cdra_probe_answers_lost_total", "method", *m)));
        expected
            .extend(cdra_store::LeaseChange::ALL.iter().map(|c| ("cdra_ha_lease_changes_total", "change", c.label())));
        for (family, label, value) in expected {
            let series = format!("{family}{{{label}=\"{value}\"}} 0");
            assert!(text.contains(&series), "{series} not rendered");
            assert!(docs.contains(&format!("`{value}`")), "{value} not in docs/metrics.md");
            assert!(docs.contains(family), "{family} not in docs/metrics.md");
        }
        for &reason in DropReason::ALL {
            assert!(docs.contains(&format!("`{}`", reason.label())), "{} not in docs/metrics.md", reason.label());
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or("");
            assert!(docs.contains(&format!("`{name}`")), "{name} not in docs/metrics.md");
        }
    }

    #[test]
    fn round_trips_render_as_a_prometheus_histogram_per_server() {
        let engine = Engine::new(SimConfig::small(1, Mode::Relay).engine_config());
        let mut snap = Snapshot::take(&engine, Timestamp::default(), IoCounters::default());
        let server = Static::of(&engine).servers[0];
        for ms in [0, 3, 40, 7000] {
            snap.counters.servers[0].round_trip.observe(std::time::Duration::from_millis(ms));
        }
        let text = render(&Static::of(&engine), &snap, &ManagementCounters::default());
        let s = format!("server=\"{server}\"");
        for series in [
            "# TYPE cdra_server_round_trip_seconds histogram".to_string(),
            format!("cdra_server_round_trip_seconds_bucket{{{s},le=\"0.001\"}} 1"),
            format!("cdra_server_round_trip_seconds_bucket{{{s},le=\"0.005\"}} 2"),
            format!("cdra_server_round_trip_seconds_bucket{{{s},le=\"0.05\"}} 3"),
            format!("cdra_server_round_trip_seconds_bucket{{{s},le=\"5\"}} 3"),
            format!("cdra_server_round_trip_seconds_bucket{{{s},le=\"+Inf\"}} 4"),
            format!("cdra_server_round_trip_seconds_sum{{{s}}} 7.043"),
            format!("cdra_server_round_trip_seconds_count{{{s}}} 4"),
            "cdra_events_dropped_total 0".to_string(),
        ] {
            assert!(text.lines().any(|l| l == series), "{series} not rendered:\n{text}");
        }
    }

    #[test]
    fn pool_mode_renders_its_pool_per_interface_and_state() {
        let mut engine = Engine::new(SimConfig::small(1, Mode::Pool).engine_config());
        let mut outbox = cdra_core::Outbox::new(64);
        // Start-up: the pool asks for its entries (acquiring until the server answers).
        engine.handle_timeout(Timestamp::from_millis(1), &mut outbox);
        let snap = Snapshot::take(&engine, Timestamp::from_millis(1), IoCounters::default());
        let text = render(&Static::of(&engine), &snap, &ManagementCounters::default());
        assert!(text.contains("cdra_pool_entries{interface=\"ds0\",state=\"acquiring\"} 8"), "{text}");
        assert!(text.contains("cdra_pool_entries{interface=\"ds1\",state=\"free\"} 0"));
        assert!(text.contains("cdra_pool_size 8"));
        let docs = include_str!("../../../docs/metrics.md");
        for name in ["cdra_pool_entries", "cdra_pool_size", "cdra_reply_templates", "cdra_reply_templates_full_total"] {
            assert!(docs.contains(&format!("`{name}`")), "{name} not in docs/metrics.md");
        }
        let proxy = Engine::new(SimConfig::small(1, Mode::Proxy).engine_config());
        let snap = Snapshot::take(&proxy, Timestamp::default(), IoCounters::default());
        let text = render(&Static::of(&proxy), &snap, &ManagementCounters::default());
        assert!(!text.contains("cdra_pool"));
        assert!(text.contains("cdra_reply_templates 0\n") && text.contains("cdra_reply_templates_full_total 0\n"));
    }

    #[test]
    fn leasequery_renders_its_queries_sweeps_and_servers() {
        let mut config = SimConfig::small(1, Mode::Proxy).engine_config();
        let plain = Engine::new(config.clone());
        let snap = Snapshot::take(&plain, Timestamp::default(), IoCounters::default());
        assert!(!render(&Static::of(&plain), &snap, &ManagementCounters::default()).contains("cdra_leasequery"));
        config.leasequery.enabled = true;
        let mut engine = Engine::new(config);
        let mut outbox = cdra_core::Outbox::new(64);
        // Start-up with an empty table: the sweeps begin.
        engine.handle_timeout(Timestamp::from_millis(1), &mut outbox);
        let snap = Snapshot::take(&engine, Timestamp::from_millis(1), IoCounters::default());
        let text = render(&Static::of(&engine), &snap, &ManagementCounters::default());
        let outstanding = engine.leasequery().outstanding();
        assert!(outstanding > 0);
        assert!(text.lines().any(|l| l == format!("cdra_leasequery_outstanding {outstanding}")), "{text}");
        assert!(text.lines().any(|l| l.starts_with("cdra_leasequery_sweeps ") && !l.ends_with(" 0")), "{text}");
        assert!(text.contains("state=\"unknown\"} 1"), "{text}");
        let docs = include_str!("../../../docs/metrics.md");
        for name in ["cdra_leasequery_outstanding", "cdra_leasequery_sweeps", "cdra_leasequery_server"] {
            assert!(docs.contains(&format!("`{name}`")), "{name} not in docs/metrics.md");
        }
    }

    #[test]
    fn spoofing_mode_renders_its_interception() {
        let engine = Engine::new(SimConfig::small(1, Mode::Spoof).engine_config());
        let status = crate::interception::InterceptStatus { addresses: 2, errors: 3 };
        let io = IoCounters { intercept: Some(status), ..IoCounters::default() };
        let text =
            render(&Static::of(&engine), &Snapshot::take(&engine, Timestamp::default(), io), &Default::default());
        for series in
            ["cdra_intercepted_addresses 2", "cdra_intercept_errors_total 3", "cdra_intercept_refused_total 0"]
        {
            assert!(text.lines().any(|l| l == series), "{series} not rendered:\n{text}");
        }
        let docs = include_str!("../../../docs/metrics.md");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or("");
            assert!(docs.contains(&format!("`{name}`")), "{name} not in docs/metrics.md");
        }
        // Other modes have no interception and show none of it.
        let engine = Engine::new(SimConfig::small(1, Mode::Proxy).engine_config());
        let text = render(
            &Static::of(&engine),
            &Snapshot::take(&engine, Timestamp::default(), IoCounters::default()),
            &Default::default(),
        );
        assert!(!text.contains("cdra_intercept"), "{text}");
    }
}
