//! A simulated week of 1,000 clients on two subnets: random reboots, early renewals,
//! releases, wiped lease files, moves between the subnets, and two server outages of
//! several hours. Run through the proxy and, with the same seed and the same workload,
//! through a plain relay. Invariants are checked after every event in both runs.
//!
//! Proxy expectations (paper sections 2 and 5), checked transaction by transaction: a
//! reboot, a DISCOVER or an early renewal from a client the proxy knows (record bound, for
//! the address asked, on that address's subnet, two minutes of server lease left) is
//! answered by the proxy alone — no server sees it — and the client gets its ACK, whether
//! the servers are up or down.

use std::time::Instant;

use cdra_core::Mode;
use cdra_sim::net::Expectations;
use cdra_sim::trace::fmt_time;
use cdra_sim::{days, hours, mins, secs, ClientConfig, IdStyle, Kind, Sim, SimConfig, TxClass, Workload};

const CLIENTS: usize = 1000;
const SEED: u64 = 0x5eed_0007;

fn workload() -> Workload {
    Workload {
        seed: SEED ^ 0xf00d,
        duration: days(7),
        boot_window: hours(1),
        mean_up: hours(10),
        mean_off: hours(2),
        min_off: secs(30),
        p_release: 0.15,
        p_forget: 0.1,
        p_move: 0.05,
        mean_forced_renew: Some(hours(12)),
        // Day 2 03:00-07:00 and day 4 13:00-19:00.
        outages: vec![(0, days(1) + hours(3), hours(4)), (0, days(3) + hours(13), hours(6))],
    }
}

fn run(mode: Mode) -> Sim {
    let t = Instant::now();
    let mut cfg = SimConfig::large(SEED, mode);
    cfg.servers[0].lease_secs = 86_400;
    cfg.track_expectations = mode == Mode::Proxy;
    cfg.engine_timer_coarsening = Some(60_000);
    cfg.full_check_every = 20_000;
    let mut sim = Sim::new(cfg);
    for i in 0..CLIENTS {
        let style = match i % 3 {
            0 => IdStyle::Hardware,
            1 => IdStyle::MacId,
            _ => IdStyle::Duid { iaid: i as u32 },
        };
        let mut c = ClientConfig::numbered(i as u32, i % 2, style);
        c.broadcast_flag = i % 4 == 0;
        sim.add_client(c);
    }
    workload().schedule(&mut sim);
    sim.run_for(days(7) + mins(5));
    eprintln!("{:?} run: {:.1?} wall\n{}", mode, t.elapsed(), sim.report());
    sim
}

fn print_expectations(e: &Expectations) {
    for class in [TxClass::InitReboot, TxClass::Discover, TxClass::Renew] {
        for outage in [false, true] {
            let (n, seen, served, abandoned) = e.tally(class, outage);
            eprintln!(
                "  {:<11} {}: eligible={n} seen-by-server={seen} served={served} abandoned={abandoned}",
                class.label(),
                if outage { "during outages" } else { "overall       " }
            );
        }
    }
}

#[test]
fn a_week_of_1000_clients_proxy_vs_relay() {
    // The two runs are independent: one per core.
    let (proxy, relay) = std::thread::scope(|s| {
        let p = s.spawn(|| run(Mode::Proxy));
        let r = run(Mode::Relay);
        (p.join().expect("proxy run"), r)
    });
    proxy.assert_ok();
    relay.assert_ok();

    // Everybody was served in both runs.
    for sim in [&proxy, &relay] {
        for (i, c) in sim.clients().iter().enumerate() {
            assert!(c.stats.acks > 0, "{:?}: client#{i} never got an ACK", sim.config().mode);
            assert_eq!(c.stats.extra_offers, 0);
        }
    }

    // The proxy answered known clients alone, with the servers up or down.
    let e = proxy.expectations();
    eprintln!("proxy expectations:");
    print_expectations(e);
    let failures = e.failures();
    if !failures.is_empty() {
        let list: Vec<String> = failures
            .iter()
            .take(10)
            .map(|(x, f)| {
                format!(
                    "xid {x:08x} client#{} {} at {} seen={} served={}",
                    f.client,
                    f.class.label(),
                    fmt_time(f.at - proxy.config().start),
                    f.seen_by_server,
                    f.served
                )
            })
            .collect();
        panic!("{} eligible transactions not handled by the proxy alone:\n{}", failures.len(), list.join("\n"));
    }
    let (reboots, ..) = e.tally(TxClass::InitReboot, false);
    let (outage_reboots, _, outage_served, _) = e.tally(TxClass::InitReboot, true);
    let (discovers, ..) = e.tally(TxClass::Discover, false);
    let (renews, ..) = e.tally(TxClass::Renew, false);
    assert!(reboots > 3000, "reboots answered locally: {reboots}");
    assert!(outage_reboots > 100 && outage_served > 100, "reboots during outages: {outage_reboots}");
    assert!(discovers > 200, "DISCOVERs answered locally: {discovers}");
    assert!(renews > 1000, "early renewals answered locally: {renews}");

    // What the servers saw: the proxy saves the reboots and the known clients' DISCOVERs.
    let (p, r) = (proxy.server_received(), relay.server_received());
    eprintln!("server received  proxy: {p} (total {})\n                 relay: {r} (total {})", p.total(), r.total());
    let ps = &proxy.server(0).stats;
    let rs = &relay.server(0).stats;
    use cdra_sim::server::RequestClass::*;
    eprintln!(
        "server requests  proxy: selecting={} init-reboot={} renew/rebind={}\n                 relay: selecting={} init-reboot={} renew/rebind={}",
        ps.requests_of(Selecting),
        ps.requests_of(InitReboot),
        ps.requests_of(CiaddrDirect) + ps.requests_of(CiaddrRelayed),
        rs.requests_of(Selecting),
        rs.requests_of(InitReboot),
        rs.requests_of(CiaddrDirect) + rs.requests_of(CiaddrRelayed),
    );
    assert!(p.total() < r.total(), "the proxy must spare the server work");
    assert!(p.get(Kind::Discover) < r.get(Kind::Discover));
    // Reboots are answered by the proxy; past the server lease's T1 the reboot request also
    // renews the lease upstream (paper 5.3), at most once per T1 period per client.
    assert!(ps.requests_of(InitReboot) * 3 < rs.requests_of(InitReboot), "reboots mostly answered by the proxy");
    for sim in [&proxy, &relay] {
        for &r in cdra_core::DropReason::ALL {
            let n = sim.engine().counters().total_dropped(r);
            assert_eq!(n, 0, "{:?}: engine dropped {n} datagrams: {}", sim.config().mode, r.label());
        }
    }
    let exp = |s: &Sim| s.clients().iter().map(|c| c.stats.expirations).sum::<u64>();
    // Server leases are renewed upstream once past their T1, so they stay fresh through the
    // local answers. They are still older on average than through a plain relay, where every
    // reboot gets the server's full lease: a client whose lease is past the middle when an
    // outage starts may lose its address earlier than through the relay. Before the upstream
    // renewal of reboots this was 28 clients in this run; bound it at 1 % of the clients.
    eprintln!("lease expirations: proxy {} relay {}", exp(&proxy), exp(&relay));
    assert!(exp(&proxy) <= exp(&relay) + 10, "the proxy lets too many leases run out during outages");
}
