//! Issue 10 in the simulation: forged server replies from the client segment and from off
//! the path, and a stranger's RELEASE, against model clients and servers, with the
//! invariant checker on. Each of these failed on the engine before issue 10.

mod common;

use core::net::{Ipv4Addr, SocketAddrV4};

use cdra_sim::msg::build;
use cdra_sim::{mins, secs, Sim};
use cdra_wire::{MessageType, Op};
use common::{addr, boot, client, proxy_sim};

/// The attacker's address on link 0, offered as the client's and as its router.
const ATTACKER: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 240);
const ATTACKER_MAC: [u8; 6] = [0x02, 0xba, 0xd0, 0, 0, 1];

/// A server reply forged for `mac`/`xid`: `yiaddr` ATTACKER, an infinite lease, the
/// attacker as router, and the real server's identifier.
fn forged(sim: &Sim, kind: MessageType, mac: [u8; 6], xid: u32) -> Vec<u8> {
    let server = sim.server(0).addr();
    let giaddr = sim.link_addr(0);
    build(Op::BootReply, Some(kind), |b| {
        b.xid(xid).yiaddr(ATTACKER).giaddr(giaddr).chaddr(1, &mac);
        b.option(54, &server.octets())?;
        b.option(51, &u32::MAX.to_be_bytes())?;
        b.option(1, &[255, 255, 255, 0])?;
        b.option(3, &ATTACKER.octets())?;
        Ok(())
    })
}

/// The attacker on the client segment answers `c`'s current transaction with an OFFER and
/// an ACK, its IPv4 source spoofed as the server's, sent to the engine's address.
fn forge_answers(sim: &mut Sim, c: usize) {
    let (mac, xid) = (sim.client(c).mac(), sim.client(c).xid());
    let server = SocketAddrV4::new(sim.server(0).addr(), 67);
    let giaddr = sim.link_addr(0);
    for kind in [MessageType::Offer, MessageType::Ack] {
        let bytes = forged(sim, kind, mac, xid);
        sim.inject_on_link(0, ATTACKER_MAC, server, giaddr, bytes);
    }
}

fn cached_address(sim: &Sim, c: usize) -> Option<Ipv4Addr> {
    sim.engine_record(c).filter(|r| r.has_reply).map(|r| r.address)
}

#[test]
fn replies_forged_on_the_client_segment_bind_nobody_with_the_server_down() {
    let mut sim = proxy_sim(1001, false);
    let n = client(&mut sim, 0);
    sim.stop_server(0);
    sim.power_on(n);
    // Answer every transaction of the new client for a minute, just after it starts.
    for _ in 0..60 {
        sim.run_for(secs(1));
        forge_answers(&mut sim, n);
    }
    assert_eq!(sim.held(n), None, "the client bound the attacker's address");
    assert_eq!(cached_address(&sim, n), None, "the forged ACK entered the table");
    assert!(sim.engine_records().iter().all(|r| r.address != ATTACKER));
    sim.assert_ok();
}

#[test]
fn with_the_server_up_the_client_gets_the_servers_lease_not_the_forgers() {
    let mut sim = proxy_sim(1002, false);
    let n = client(&mut sim, 0);
    sim.power_on(n);
    // The forged answers reach the engine before the server's (link 1 ms, server 2 ms).
    sim.run_for(1);
    forge_answers(&mut sim, n);
    sim.run_for(secs(10));
    assert_eq!(sim.held(n), Some(addr(0, 100)));
    assert_eq!(cached_address(&sim, n), Some(addr(0, 100)));
    sim.assert_ok();
}

#[test]
fn an_off_path_reply_that_answers_no_request_is_not_believed() {
    let mut sim = proxy_sim(1003, false);
    let a = client(&mut sim, 0);
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    // From the server's address on the upstream side, but for no request of ours: a new
    // client out of nothing, and a new address for a known one.
    let giaddr = sim.link_addr(0);
    let stranger = forged(&sim, MessageType::Ack, [0x02, 0x55, 0, 0, 0, 7], 0x5eed);
    sim.inject_from_server(0, giaddr, stranger);
    let replaced = forged(&sim, MessageType::Ack, sim.client(a).mac(), 0x1234);
    sim.inject_from_server(0, giaddr, replaced);
    sim.run_for(secs(5));
    assert_eq!(sim.engine_records().len(), 1, "a reply created a record");
    assert_eq!(cached_address(&sim, a), Some(addr(0, 100)));
    sim.assert_ok();
}

#[test]
fn a_strangers_release_costs_the_client_nothing_through_an_outage() {
    let mut sim = proxy_sim(1004, false);
    let a = client(&mut sim, 0);
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    // Another host sends a RELEASE in the client's name: its chaddr, its option 61, its
    // address in ciaddr, our address as server identifier; only the frame's source is its own.
    let (mac, cid) = (sim.client(a).mac(), sim.client(a).client_id().expect("option 61"));
    let us = sim.link_addr(0);
    let release = build(Op::BootRequest, Some(MessageType::Release), |b| {
        b.xid(0x4242).ciaddr(addr(0, 100)).chaddr(1, &mac);
        b.option(54, &us.octets())?;
        b.option(61, &cid)?;
        Ok(())
    });
    let from = SocketAddrV4::new(addr(0, 100), 68);
    sim.inject_on_link(0, ATTACKER_MAC, from, us, release);
    sim.run_for(secs(1));
    assert_eq!(cached_address(&sim, a), Some(addr(0, 100)), "the stranger's RELEASE removed the record");
    assert_eq!(sim.server(0).stats.received.get(cdra_sim::Kind::Release), 0, "and reached the server");
    // The server goes down; the client reboots and is still answered from the table.
    sim.stop_server(0);
    sim.run_for(mins(1));
    sim.power_off(a, false);
    assert_eq!(boot(&mut sim, a), Some(addr(0, 100)));
    sim.assert_ok();
}
