//! Pool mode: `[pool] size` free addresses are leased per downstream interface, from that
//! interface's subnet (the server allocates from the subnet of the relay address, giaddr).
//! A pool larger than the subnet can never fill, and would take every address the server has
//! there: `cdra check` rejects it, and so does `cdra run`, in one line naming `pool.size`.
//!
//! [`check`] is the decision, a pure function of the subnets; [`check_host`] finds each
//! downstream interface's subnet as `cdra run` would (the configured `address`, else the
//! interface's first IPv4 address). An interface that does not exist yet is not an error
//! here (`cdra run` says so when it starts).
//!
//! The same subnets tell `cdra check` which `[leasequery] subnets` no downstream subnet
//! holds (noted: such a subnet is not swept).

use cdra_core::Ipv4Net;

use crate::config::{ConfigError, Settings};

/// Addresses of `net` a client could hold: all but the network and broadcast addresses
/// (none of a /31 or /32 is excluded that way, RFC 3021) and the relay's own.
pub fn client_addresses(net: Ipv4Net) -> u64 {
    let all = 1u64 << (32 - u32::from(net.prefix_len.min(32)));
    let usable = if net.prefix_len >= 31 { all } else { all - 2 };
    usable.saturating_sub(1)
}

/// The first downstream interface (configuration order) whose subnet cannot hold `size`
/// pool addresses; `links[i]` is `downstream[i]`'s name and subnet, when known.
pub fn check(size: usize, links: &[(String, Option<Ipv4Net>)]) -> Result<(), ConfigError> {
    for (i, (name, net)) in links.iter().enumerate() {
        let Some(net) = net else { continue };
        let room = client_addresses(*net);
        if size as u64 > room {
            let o = net.addr.octets();
            let base = u32::from_be_bytes(o) & (u32::MAX.checked_shl(32 - u32::from(net.prefix_len)).unwrap_or(0));
            return Err(ConfigError {
                key: "pool.size".into(),
                problem: format!(
                    "{size} is more than downstream[{i}] ({name}, {}/{}) has room for: {room} client addresses",
                    std::net::Ipv4Addr::from(base),
                    net.prefix_len
                ),
            });
        }
    }
    Ok(())
}

/// `leasequery.subnets` that no downstream subnet holds (as `links` has them now): those
/// are not swept, so `cdra check` notes them (a link may get its address later).
pub fn leasequery_subnet_notes(subnets: &[Ipv4Net], links: &[(String, Option<Ipv4Net>)]) -> Vec<String> {
    subnets
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            !links.iter().any(|(_, net)| net.is_some_and(|n| s.prefix_len >= n.prefix_len && n.contains(s.addr)))
        })
        .map(|(i, s)| {
            format!("leasequery.subnets: [{i}] {}/{} is in no downstream subnet: not swept", s.addr, s.prefix_len)
        })
        .collect()
}

/// Each downstream interface's subnet on this host (`None`: not there, or no address).
pub fn host_links(settings: &Settings) -> Vec<(String, Option<Ipv4Net>)> {
    settings
        .downstream
        .iter()
        .map(|d| {
            let net = cdra_sys::iface::interface_by_name(&d.interface).ok().and_then(|i| {
                let chosen = match d.address {
                    Some(a) => i.ipv4.iter().find(|n| n.addr == a),
                    None => i.ipv4.first(),
                }?;
                Some(Ipv4Net { addr: chosen.addr, prefix_len: chosen.prefix_len })
            });
            (d.interface.clone(), net)
        })
        .collect()
}

/// [`check`] against this host's interfaces.
pub fn check_host(settings: &Settings) -> Result<(), ConfigError> {
    check(settings.pool.size, &host_links(settings))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn net(a: [u8; 4], prefix_len: u8) -> Option<Ipv4Net> {
        Some(Ipv4Net { addr: Ipv4Addr::from(a), prefix_len })
    }

    #[test]
    fn room_is_the_subnet_less_network_broadcast_and_the_relay() {
        assert_eq!(client_addresses(net([10, 0, 0, 1], 24).expect("net")), 253);
        assert_eq!(client_addresses(net([10, 0, 0, 1], 29).expect("net")), 5);
        assert_eq!(client_addresses(net([10, 0, 0, 1], 30).expect("net")), 1);
        assert_eq!(client_addresses(net([10, 0, 0, 1], 31).expect("net")), 1);
        assert_eq!(client_addresses(net([10, 0, 0, 1], 32).expect("net")), 0);
    }

    #[test]
    fn a_pool_larger_than_a_subnet_is_refused_naming_the_key_and_the_interface() {
        let links = vec![("lan0".to_string(), net([10, 0, 0, 1], 24)), ("lan1".to_string(), net([10, 0, 1, 1], 29))];
        assert!(check(5, &links).is_ok());
        let e = check(6, &links).expect_err("too big for the /29");
        assert_eq!(e.key, "pool.size");
        assert_eq!(e.problem, "6 is more than downstream[1] (lan1, 10.0.1.0/29) has room for: 5 client addresses");
        // An interface not there yet is not judged.
        assert!(check(1000, &[("gone".to_string(), None)]).is_ok());
    }

    #[test]
    fn a_leasequery_subnet_outside_every_downstream_subnet_is_noted() {
        let net = |a: [u8; 4], p: u8| Ipv4Net { addr: a.into(), prefix_len: p };
        let links = vec![("rd0".to_string(), Some(net([10, 0, 0, 1], 24))), ("rd1".to_string(), None)];
        let subnets = [net([10, 0, 0, 0], 25), net([10, 0, 1, 0], 24), net([10, 0, 0, 0], 16)];
        let notes = leasequery_subnet_notes(&subnets, &links);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].starts_with("leasequery.subnets: [1] 10.0.1.0/24"), "{notes:?}");
        assert!(notes[1].starts_with("leasequery.subnets: [2] 10.0.0.0/16"), "{notes:?}");
    }
}
