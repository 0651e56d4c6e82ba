//! RFC 4388 leasequery (issue 15 item 2), against the model server: an engine restarted
//! with an empty table (no store) refills it from a server that answers DHCPLEASEQUERY,
//! and keeps the clients it never saw going through a server outage, each local ACK after
//! a probe (paper 3.2, 3.4), never beyond the server's lease (checked after every event);
//! a server that ignores leasequery gets `unanswered_limit` queries and is left alone.

mod common;

use cdra_core::counters::ProxyEvent;
use cdra_core::leasequery::Willingness;
use cdra_core::Mode;
use cdra_sim::{hours, mins, secs, IdStyle, Sim, SimConfig};
use common::{boot, fail};

fn sim_with(seed: u64, mode: Mode, server_answers: bool) -> Sim {
    let mut c = SimConfig::small(seed, mode);
    c.servers[0].lease_secs = 86_400;
    c.servers[0].answer_leasequery = server_answers;
    c.leasequery.enabled = true;
    c.leasequery.rate = 500;
    Sim::new(c)
}

/// Twelve clients on the two links (some keyed by option 61, some by MAC), bound through
/// the engine; their addresses.
fn bound_clients(sim: &mut Sim) -> Vec<(usize, std::net::Ipv4Addr)> {
    let clients: Vec<usize> = (0..12)
        .map(|i| sim.add_dhcp_client(i % 2, if i % 3 == 0 { IdStyle::Hardware } else { IdStyle::MacId }))
        .collect();
    for &c in &clients {
        sim.power_on(c);
    }
    sim.run_for(secs(30));
    clients.iter().map(|&c| (c, sim.held(c).unwrap_or_else(|| fail(sim, &format!("client#{c} unbound"))))).collect()
}

#[test]
fn an_empty_engine_refills_its_table_and_keeps_unseen_clients_going_through_an_outage() {
    for mode in [Mode::Proxy, Mode::Spoof] {
        let mut sim = sim_with(401, mode, true);
        let clients = bound_clients(&mut sim);
        sim.restart_engine(None); // no store: the table is empty
        sim.run_for(secs(10));
        let made = sim.engine().counters().proxy[ProxyEvent::LeasequeryRecordMade];
        assert_eq!(made, clients.len() as u64, "{mode:?}: one record per active lease\n{}", sim.report());
        assert_eq!(sim.engine().table().len(), clients.len());
        assert_eq!(sim.engine().leasequery().servers()[0].willingness, Willingness::Answers);

        sim.stop_server(0);
        sim.run_for(mins(1));
        for &(c, a) in &clients {
            sim.power_off(c, false);
            let probes = sim.probes_for(a);
            if boot(&mut sim, c) != Some(a) {
                fail(&sim, &format!("{mode:?}: client#{c} lost {a} on its reboot during the outage"));
            }
            assert!(sim.probes_for(a) > probes, "{mode:?}: a probe before the local ACK (paper 3.2)");
        }
        sim.run_for(hours(2));
        for &(c, a) in &clients {
            if sim.held(c) != Some(a) {
                fail(&sim, &format!("{mode:?}: client#{c} lost {a} during the outage"));
            }
        }
        sim.assert_ok();
    }
}

#[test]
fn a_server_that_ignores_leasequery_gets_a_few_queries_and_is_left_alone() {
    let mut sim = sim_with(402, Mode::Proxy, false);
    bound_clients(&mut sim);
    let silent = sim.server(0).stats.silent;
    sim.restart_engine(None);
    sim.run_for(mins(2));
    let lq = sim.engine().leasequery();
    assert_eq!(lq.servers()[0].willingness, Willingness::NotAnswering);
    assert_eq!(lq.sweeps_left(), 0);
    assert_eq!(sim.engine().table().len(), 0, "nothing made without answers");
    let ignored = sim.server(0).stats.silent - silent;
    let limit = u64::from(sim.engine().config().leasequery.unanswered_limit);
    assert_eq!(ignored, limit, "the server saw unanswered_limit queries, then none");
    sim.assert_ok();
}
