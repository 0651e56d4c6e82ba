//! A simulated week of 1,000 clients in address-pooling mode (issue 12): the proxy week's
//! workload (reboots, renewals, releases, wiped lease files, moves, two server outages of
//! four and six hours) plus 100 brand-new clients that arrive during the outages, which a
//! proxy can do nothing for. The pool serves them (and the clients that released their
//! address before powering off); once the server is back they move onto leases of their
//! own. The same workload runs through the proxy for comparison. Measured at 1 minute before
//! each outage ends (seed 0x5eed0012): clients powered on without an address, proxy 104 and
//! 133, pool 10 and 17 (all of them clients that moved to the other link during the outage). Invariants are checked after every event: no address is ever held
//! by two hosts, and every address a client holds is leased at the server to it or to the
//! pool identity that gave it.

use std::time::Instant;

use cdra_core::counters::ProxyEvent;
use cdra_core::Mode;
use cdra_sim::{days, hours, mins, Action, ClientConfig, IdStyle, Millis, Sim, SimConfig, SimRng, Workload};

const CLIENTS: usize = 1000;
const LATE: usize = 100;
const SEED: u64 = 0x5eed_0012;

/// (start offset, duration) of the two outages.
const OUTAGES: [(Millis, Millis); 2] = [(days(1) + hours(3), hours(4)), (days(3) + hours(13), hours(6))];

/// What one run saw at the end of each outage.
struct Run {
    sim: Sim,
    /// Newcomers holding an address a minute before each outage ends.
    newcomers_served: [usize; 2],
    /// Clients powered on without an address a minute before each outage ends.
    on_without_address: [usize; 2],
    /// Pool addresses given during each outage.
    pool_assigned: [u64; 2],
    /// Newcomers' addresses leased in their own name an hour after each outage.
    newcomers_own_lease: [usize; 2],
}

fn run(mode: Mode) -> Run {
    let wall = Instant::now();
    let mut cfg = SimConfig::large(SEED, mode);
    cfg.servers[0].lease_secs = 86_400;
    // Sized for an outage: besides the newcomers, clients that released their address before
    // powering off (15 %) come back as new clients, about 25 a link in four hours.
    cfg.pool.size = 128;
    cfg.engine_timer_coarsening = Some(10_000);
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
    let t0 = sim.now();
    Workload {
        seed: SEED ^ 0xf00d,
        duration: days(7),
        boot_window: hours(1),
        mean_up: hours(10),
        mean_off: hours(2),
        min_off: mins(1),
        p_release: 0.15,
        p_forget: 0.1,
        p_move: 0.05,
        mean_forced_renew: Some(hours(12)),
        outages: OUTAGES.iter().map(|&(start, len)| (0, start, len)).collect(),
    }
    .schedule(&mut sim);
    // The newcomers: half in each outage, spread over its first three hours, on both links;
    // they stay on.
    let mut rng = SimRng::new(SEED);
    let mut late: Vec<(usize, usize)> = Vec::new(); // (client, outage)
    for j in 0..LATE {
        let c = sim.add_client(ClientConfig::numbered((CLIENTS + j) as u32, j % 2, IdStyle::MacId));
        let outage = j % 2;
        let (start, _) = OUTAGES[outage];
        sim.schedule(t0 + start + mins(1) + rng.below(hours(3)), Action::PowerOn(c));
        late.push((c, outage));
    }
    let mut r = Run {
        sim,
        newcomers_served: [0; 2],
        on_without_address: [0; 2],
        pool_assigned: [0; 2],
        newcomers_own_lease: [0; 2],
    };
    for (outage, &(start, len)) in OUTAGES.iter().enumerate() {
        let sim = &mut r.sim;
        sim.run_until(t0 + start);
        let assigned_before = sim.engine().counters().proxy[ProxyEvent::PoolAssigned];
        sim.run_until(t0 + start + len - mins(1));
        let arrived: Vec<usize> = late.iter().filter(|(_, o)| *o == outage).map(|(c, _)| *c).collect();
        r.newcomers_served[outage] = arrived.iter().filter(|&&c| sim.held(c).is_some()).count();
        r.on_without_address[outage] =
            (0..sim.clients().len()).filter(|&c| sim.client(c).is_on() && sim.held(c).is_none()).count();
        r.pool_assigned[outage] = sim.engine().counters().proxy[ProxyEvent::PoolAssigned] - assigned_before;
        // An hour after the server is back.
        sim.run_until(t0 + start + len + hours(1));
        r.newcomers_own_lease[outage] = arrived
            .iter()
            .filter(|&&c| {
                sim.held(c).and_then(|a| sim.server(0).lease(a)).is_some_and(|l| l.key == sim.client(c).key())
            })
            .count();
    }
    r.sim.run_until(t0 + days(7) + mins(5));
    let p = &r.sim.engine().counters().proxy;
    eprintln!(
        "{mode:?} week: {:.1?} wall; during the two outages: newcomers served {:?} of {}, clients on without an \
         address at the outage's end {:?}, pool addresses given {:?}; an hour later newcomers on their own lease \
         {:?}; pool migrated {} held back {} lease lost {} expired {}\n{}",
        wall.elapsed(),
        r.newcomers_served,
        LATE / 2,
        r.on_without_address,
        r.pool_assigned,
        r.newcomers_own_lease,
        p[ProxyEvent::PoolMigrated],
        p[ProxyEvent::PoolHeldBack],
        p[ProxyEvent::PoolLeaseLost],
        p[ProxyEvent::PoolLeaseExpired],
        r.sim.report()
    );
    r
}

#[test]
fn a_week_of_1000_clients_with_outages_and_new_clients_during_them() {
    // The same workload through the proxy (no pool) and the pool, one run per core.
    let (pool, proxy) = std::thread::scope(|s| {
        let p = s.spawn(|| run(Mode::Pool));
        let x = run(Mode::Proxy);
        (p.join().expect("pool run"), x)
    });
    pool.sim.assert_ok();
    proxy.sim.assert_ok();
    // The proxy can do nothing for a client it has never seen; the pool serves them all.
    assert_eq!(proxy.newcomers_served, [0, 0]);
    assert_eq!(pool.newcomers_served, [LATE / 2, LATE / 2], "every newcomer served from the pool during its outage");
    // Nor can it serve a client that released its address before powering off, or whose
    // record ran out: the pool serves those too. Left without an address are clients that
    // moved to the other link during the outage (their record is on the link they left;
    // a request in their name elsewhere does not move it).
    for o in 0..2 {
        assert!(
            pool.on_without_address[o] * 5 < proxy.on_without_address[o],
            "outage {o}: fewer clients without an address with the pool ({} vs {})",
            pool.on_without_address[o],
            proxy.on_without_address[o]
        );
    }
    // Back to the server: within the hour after each outage every newcomer holds its address
    // in its own name.
    assert_eq!(pool.newcomers_own_lease, [LATE / 2, LATE / 2]);
    for (i, c) in pool.sim.clients().iter().enumerate() {
        assert!(c.stats.acks > 0, "client#{i} never got an ACK");
        assert_eq!(c.stats.extra_offers, 0);
    }
}
