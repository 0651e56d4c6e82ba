//! The timer heap stays within a bound set by configuration, however many records, probes
//! and offer windows come and go (found by the engine fuzzer: `crates/fuzz/regressions.txt`,
//! `bound_exceeded`). Timers are never cancelled when what they refer to goes away, so
//! without compaction the heap grows with the churn: one stale lapse timer per evicted
//! record here.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use cdra_core::config::Mode;
use cdra_core::{EngineConfig, Verdict};
use cdra_wire::MessageType;

use common::*;

fn small_proxy() -> EngineConfig {
    let mut c = config();
    c.mode = Mode::Proxy;
    c.proxy.renew_reply_delay = Duration::ZERO;
    c.proxy.client_lease = Some(Duration::from_secs(60));
    c.proxy.max_clients = 2;
    c.proxy.max_pending_probes = 1;
    c.proxy.max_offer_windows = 1;
    c.limits.pending_clients = 2;
    c
}

/// What can be live at once: two per probe (deadline, outcome), one per offer window, one
/// lapse per record (bound or pending), the held-reply timer, the sweep, the leasequery timer.
fn live_bound(c: &EngineConfig) -> usize {
    2 * c.proxy.max_pending_probes + c.proxy.max_offer_windows + c.proxy.max_clients + c.limits.pending_clients + 3
}

#[test]
fn records_evicted_one_after_another_leave_no_pile_of_lapse_timers() {
    let config = small_proxy();
    let bound = 2 * live_bound(&config);
    let mut h = Harness::new(config);
    let mut most = 0;
    for i in 0..200u16 {
        let [a, b] = i.to_be_bytes();
        let mac = [0x02, 0, 0, 7, a, b];
        let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 77, 1, 10)) + u32::from(i));
        // INIT-REBOOT, forwarded (no record), answered by the server: a record with a short
        // lease and its lapse timer; the third such record evicts the first.
        let mut req = Msg::request(MessageType::Request);
        req.chaddr = mac.to_vec();
        req.options.push((50, addr.octets().to_vec()));
        assert!(matches!(h.client_sends(&req), Verdict::RelayedToServers { .. }));
        let mut ack = Msg::reply(MessageType::Ack);
        ack.chaddr = mac.to_vec();
        ack.yiaddr = addr;
        assert_eq!(h.server_sends(SERVER, &ack), Verdict::DeliveredToClient);
        h.advance(1);
        most = most.max(h.engine.timers_filed());
    }
    assert!(h.engine.table().bound_len() <= 2);
    assert!(most <= bound, "{most} timers filed at once, bound {bound}");
}
