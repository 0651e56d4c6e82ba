//! Pool mode on two links: a client's record given a pool address moves to the link of the
//! entry it was given, as a server's answer moves it (found by the engine fuzzer:
//! `crates/fuzz/regressions.txt`, `pool_inconsistent`). A client first heard on one link
//! (its record pending there) that then DISCOVERs on the other got the other link's pool
//! address in a record still filed on the first link; the next request from the first link
//! removed the record as being on the wrong subnet, and the entry stayed given to a client
//! that had no record (never returned to the pool).

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};

use cdra_core::config::{Downstream, Ipv4Net, Mode, PoolAssign};
use cdra_core::pool::EntryState;
use cdra_core::table::Origin;
use cdra_core::{Destination, EngineConfig, Ingress, Verdict};
use cdra_wire::{Message, MessageType};

use common::*;

const DS2_IF: u32 = 4;
const DS2_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 2, 1);

/// Pool mode, `assign = "always"`, one free entry a link, no probes.
fn two_links() -> EngineConfig {
    let mut c = proxy_config();
    c.downstream.push(Downstream::up(
        "rd1",
        DS2_IF,
        Ipv4Net { addr: DS2_ADDR, prefix_len: 24 },
        Some([0x02, 0, 0, 0, 0, 2]),
    ));
    c.mode = Mode::Pool;
    c.pool.size = 1;
    c.pool.assign = PoolAssign::Always;
    c.proxy.safe_network = true;
    c
}

/// Answer everything the engine sent the server as a server would: an OFFER of .200 on
/// the link the giaddr names for a DISCOVER, an ACK of the requested address for a REQUEST.
fn serve(h: &mut Harness) {
    let to_server = |h: &Harness| -> Vec<Vec<u8>> {
        h.sent().into_iter().filter(|(d, _)| matches!(d, Destination::Server { .. })).map(|(_, b)| b).collect()
    };
    let mut queue = to_server(h);
    for _ in 0..64 {
        let Some(b) = queue.pop() else {
            h.run_timers(1);
            queue = to_server(h);
            if queue.is_empty() {
                return;
            }
            continue;
        };
        let m = Message::new_checked(&b[..]).expect("a request");
        let (kind, addr) = match m.message_type() {
            Some(MessageType::Discover) => {
                let o = m.giaddr().octets();
                (MessageType::Offer, Ipv4Addr::new(o[0], o[1], o[2], 200))
            }
            Some(MessageType::Request) => (MessageType::Ack, m.requested_ip().unwrap_or(m.ciaddr())),
            _ => continue,
        };
        let mut r = Msg::reply(kind);
        r.xid = m.xid();
        r.chaddr = m.chaddr().to_vec();
        r.giaddr = m.giaddr();
        r.yiaddr = addr;
        r.options = vec![
            (54, SERVER.octets().to_vec()),
            (51, 3600u32.to_be_bytes().to_vec()),
            (1, vec![255, 255, 255, 0]),
            (3, m.giaddr().octets().to_vec()),
        ];
        h.server_sends(SERVER, &r);
        queue.extend(to_server(h));
    }
}

/// A client's datagram on the second link, from its own MAC.
fn on_second_link(h: &mut Harness, m: &Msg) -> Verdict {
    h.outbox.clear();
    let bytes = m.bytes();
    let src = if m.ciaddr.is_unspecified() { Ipv4Addr::UNSPECIFIED } else { m.ciaddr };
    let ingress = Ingress {
        ifindex: DS2_IF,
        link_source: link_source_of(m),
        src: SocketAddrV4::new(src, 68),
        dst: Ipv4Addr::BROADCAST,
        data: &bytes,
    };
    h.engine.handle_datagram(h.now, ingress, &mut h.outbox)
}

#[test]
fn a_record_given_a_pool_address_moves_to_the_entrys_link() {
    let mut h = Harness::new(two_links());
    h.run_timers(0);
    serve(&mut h);
    let t = h.engine.pool().totals();
    assert_eq!((t.entries, t.free), (2, 2), "one free entry on each link");
    let c = Client::new(7);
    // Heard first on the second link: a REQUEST for another server's OFFER, forwarded; its
    // record waits there for the server.
    let mut elsewhere = c.selecting(Ipv4Addr::new(10, 77, 9, 9));
    elsewhere.options.retain(|(code, _)| *code != 50);
    elsewhere.options.push((50, Ipv4Addr::new(10, 77, 2, 150).octets().to_vec()));
    assert!(matches!(on_second_link(&mut h, &elsewhere), Verdict::RelayedToServers { .. }));
    assert_eq!(record(&h, &c).map(|r| r.downstream), Some(1));
    // Then a DISCOVER on the first link: the pool answers it with the first link's entry.
    h.client_sends(&c.msg(MessageType::Discover));
    let given = record(&h, &c).expect("a record");
    assert_eq!(given.origin(), Origin::Pool { n: 0 });
    assert_eq!(given.address, Ipv4Addr::new(10, 77, 1, 200));
    assert_eq!(given.downstream, 0, "the record is on the link of the pool address it holds");
    // A request in its name from the second link leaves the record and the entry alone.
    let mut renew = c.renew();
    renew.ciaddr = Ipv4Addr::new(10, 77, 2, 150);
    on_second_link(&mut h, &renew);
    let kept = record(&h, &c).expect("the record stays");
    assert_eq!((kept.address, kept.origin()), (Ipv4Addr::new(10, 77, 1, 200), Origin::Pool { n: 0 }));
    let entry = h.engine.pool().by_number(0, 0).expect("the entry");
    assert_eq!(entry.state, EntryState::Assigned(c.key()));
}
