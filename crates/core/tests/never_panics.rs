//! The engine never panics on any datagram, on any interface, from any source.

use std::net::{Ipv4Addr, SocketAddrV4};

use cdra_core::config::{Downstream, EngineConfig, Ipv4Net};
use cdra_core::{Engine, Ingress, Outbox, Timestamp};
use proptest::prelude::*;

fn engine() -> Engine {
    let ds = Downstream {
        trusted: true,
        ..Downstream::up("rd0", 2, Ipv4Net { addr: Ipv4Addr::new(10, 77, 1, 1), prefix_len: 24 }, None)
    };
    let mut c = EngineConfig::relay(vec![Ipv4Addr::new(10, 77, 0, 1)], vec![ds], vec![3]);
    c.option82.insert = true;
    c.option82.policy = cdra_core::Option82Policy::Replace;
    Engine::new(c)
}

/// A valid-looking header followed by arbitrary option bytes, so option parsing is reached.
fn dhcpish() -> impl Strategy<Value = Vec<u8>> {
    (any::<u8>(), 0u8..=20, any::<u8>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..400)).prop_map(
        |(op, hlen, hops, our_giaddr, tail)| {
            let mut b = vec![0u8; 240];
            b[0] = 1 + op % 2;
            b[1] = 1;
            b[2] = hlen;
            b[3] = hops;
            if our_giaddr {
                b[24..28].copy_from_slice(&[10, 77, 1, 1]);
            }
            b[236..240].copy_from_slice(&[99, 130, 83, 99]);
            b.extend(tail);
            b
        },
    )
}

proptest! {
    #[test]
    fn any_bytes_any_interface(data in prop_oneof![proptest::collection::vec(any::<u8>(), 0..700), dhcpish()], ifindex in 1u32..5, from_server in any::<bool>()) {
        let mut e = engine();
        let mut outbox = Outbox::new(8);
        let src = if from_server { Ipv4Addr::new(10, 77, 0, 1) } else { Ipv4Addr::UNSPECIFIED };
        let ingress = Ingress { link_source: None, ifindex, src: SocketAddrV4::new(src, 67), dst: Ipv4Addr::new(10, 77, 1, 1), data: &data };
        let _ = e.handle_datagram(Timestamp::from_secs(5), ingress, &mut outbox);
        for o in outbox.iter() {
            // Whatever was produced is itself a valid message.
            prop_assert!(cdra_wire::Message::new_checked(o.payload()).is_ok());
        }
    }
}
