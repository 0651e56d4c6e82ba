//! Counters as log lines (at exit and on SIGUSR1): one line per interface with traffic,
//! one per server, only non-zero values.

use cdra_core::counters::MessageKind;
use cdra_core::{DropReason, Engine};

fn nonzero(labels: &[&str], values: &[u64]) -> String {
    labels.iter().zip(values).filter(|(_, v)| **v > 0).map(|(l, v)| format!("{l}={v}")).collect::<Vec<_>>().join(" ")
}

/// Log every non-zero counter.
pub fn log_counters(engine: &Engine, send_errors: u64, truncated: u64) {
    let counters = engine.counters();
    let drop_labels: Vec<&str> = DropReason::ALL.iter().map(|r| r.label()).collect();
    for (name, c) in engine.interface_slot_names().zip(&counters.interfaces) {
        let rx = nonzero(&MessageKind::LABELS, &c.received);
        let tx = nonzero(&MessageKind::LABELS, &c.sent);
        let dropped = nonzero(&drop_labels, &c.dropped);
        if rx.is_empty() && tx.is_empty() && dropped.is_empty() {
            continue;
        }
        tracing::info!(interface = name, received = %rx, sent = %tx, dropped = %dropped, "counters");
    }
    for (s, c) in engine.servers().servers().iter().zip(&counters.servers) {
        tracing::info!(server = %s.addr, requests_sent = c.requests_sent, replies_received = c.replies_received, unanswered = s.unanswered, "server counters");
    }
    if engine.config().mode.caches() {
        let p: Vec<String> =
            counters.proxy.iter().filter(|(_, _, v)| *v > 0).map(|(g, l, v)| format!("{g}.{l}={v}")).collect();
        tracing::info!(clients = engine.table().len(), counters = %p.join(" "), "cache counters");
    }
    let malformed_labels: Vec<&str> = cdra_wire::WireError::ALL.iter().map(|e| e.label()).collect();
    let malformed = nonzero(&malformed_labels, &counters.malformed);
    if !malformed.is_empty() || send_errors > 0 || truncated > 0 || counters.option82_not_added_too_large > 0 {
        tracing::info!(malformed = %malformed, send_errors, oversized_datagrams = truncated, option82_not_added_too_large = counters.option82_not_added_too_large, "error counters");
    }
}
