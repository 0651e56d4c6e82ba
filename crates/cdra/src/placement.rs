//! Where a spoofing relay may run: on the router between the clients and the servers.
//!
//! Paper 4.2: the spoofing relay "must intercept packets which are addressed to another
//! host", which it can only do where those packets pass. Client unicasts to a server pass
//! through this host only if it routes them there: each configured server must be routed
//! through an upstream interface (with no `[[upstream]]` configured: through an interface
//! that is not downstream). `cdra check` says so in one line naming the key (`servers[i]`)
//! and exits 2; `cdra run` logs the same line as a warning (routes can appear after start,
//! e.g. on a PPP or DHCP uplink).
//!
//! [`check`] is the decision, a pure function of the routes; [`check_host`] asks the kernel
//! (`cdra_sys::route`, RTM_GETROUTE, as `ip route get SERVER`) and names the interfaces.

use std::net::Ipv4Addr;

use crate::config::{ConfigError, Settings};

/// How this host routes one server, as far as the decision needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerRoute {
    /// Out of this interface (directly or through a gateway).
    Through(String),
    /// The server's address is one of this host's.
    Local,
    /// No route, or one that refuses.
    Unreachable,
    /// A broadcast, multicast or other kind of route.
    NotUnicast,
}

const MUST: &str = "a spoofing relay must run on the router between the clients and the servers";

/// The first server (in configuration order) that client unicasts would not reach through
/// this host, as a one-line error naming its key; `routes[i]` is how `servers[i]` is routed.
pub fn check(
    servers: &[Ipv4Addr],
    routes: &[ServerRoute],
    downstream: &[String],
    upstream: &[String],
) -> Result<(), ConfigError> {
    for (i, (server, route)) in servers.iter().zip(routes).enumerate() {
        let key = format!("servers[{i}]");
        let problem = match route {
            ServerRoute::Through(name) if downstream.contains(name) => {
                format!("{server} is routed through {name}, a downstream interface: {MUST}")
            }
            ServerRoute::Through(name) if !upstream.is_empty() && !upstream.contains(name) => {
                format!("{server} is routed through {name}, which is not an [[upstream]] interface: {MUST}")
            }
            ServerRoute::Through(_) => continue,
            ServerRoute::Local => format!("{server} is an address of this host: {MUST}, not on the server"),
            ServerRoute::Unreachable => format!("{server} has no route on this host: {MUST}"),
            ServerRoute::NotUnicast => format!("{server} is not routed to one host (broadcast or multicast): {MUST}"),
        };
        return Err(ConfigError { key, problem });
    }
    Ok(())
}

/// [`check`] against the kernel's routing table (the current network namespace).
pub fn check_host(settings: &Settings) -> Result<(), ConfigError> {
    use cdra_sys::route::{route_to, RouteKind};
    let mut routes = Vec::with_capacity(settings.servers.len());
    for (i, server) in settings.servers.iter().enumerate() {
        let route =
            route_to(*server).map_err(|e| ConfigError { key: format!("servers[{i}]"), problem: e.to_string() })?;
        routes.push(match (route.kind, route.oif) {
            (RouteKind::Unicast, Some(oif)) => match cdra_sys::iface::interface_by_index(oif) {
                Ok(iface) => ServerRoute::Through(iface.name),
                Err(_) => ServerRoute::Through(format!("the interface with index {oif}")),
            },
            (RouteKind::Unicast, None) | (RouteKind::Other, _) | (RouteKind::Broadcast, _) => ServerRoute::NotUnicast,
            (RouteKind::Local, _) => ServerRoute::Local,
            (RouteKind::Unreachable, _) => ServerRoute::Unreachable,
        });
    }
    let downstream: Vec<String> = settings.downstream.iter().map(|d| d.interface.clone()).collect();
    check(&settings.servers, &routes, &downstream, &settings.upstream)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn through(n: &str) -> ServerRoute {
        ServerRoute::Through(n.to_string())
    }

    #[test]
    fn every_server_must_be_routed_through_an_upstream_interface() {
        let s = [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)];
        let down = names(&["rd0", "rd1"]);
        let up = names(&["ru0"]);
        let err = |routes: &[ServerRoute], upstream: &[String]| {
            check(&s, routes, &down, upstream).err().map(|e| e.to_string())
        };
        // On the router: both upstream.
        assert_eq!(err(&[through("ru0"), through("ru0")], &up), None);
        // No [[upstream]]: any interface that is not downstream.
        assert_eq!(err(&[through("eth9"), through("ru0")], &[]), None);
        let cases: [(&[ServerRoute], &[String], &str); 6] = [
            (
                &[through("ru0"), through("rd1")],
                &up,
                "servers[1]: 10.0.0.2 is routed through rd1, a downstream interface: a spoofing relay must run on the router between the clients and the servers",
            ),
            (
                &[through("rd0"), through("ru0")],
                &[],
                "servers[0]: 10.0.0.1 is routed through rd0, a downstream interface: a spoofing relay must run on the router between the clients and the servers",
            ),
            (
                &[through("eth9"), through("ru0")],
                &up,
                "servers[0]: 10.0.0.1 is routed through eth9, which is not an [[upstream]] interface: a spoofing relay must run on the router between the clients and the servers",
            ),
            (
                &[ServerRoute::Local, through("ru0")],
                &up,
                "servers[0]: 10.0.0.1 is an address of this host: a spoofing relay must run on the router between the clients and the servers, not on the server",
            ),
            (
                &[through("ru0"), ServerRoute::Unreachable],
                &up,
                "servers[1]: 10.0.0.2 has no route on this host: a spoofing relay must run on the router between the clients and the servers",
            ),
            (
                &[ServerRoute::NotUnicast, ServerRoute::Unreachable],
                &up,
                "servers[0]: 10.0.0.1 is not routed to one host (broadcast or multicast): a spoofing relay must run on the router between the clients and the servers",
            ),
        ];
        for (routes, upstream, want) in cases {
            let got = err(routes, upstream);
            assert_eq!(got.as_deref(), Some(want));
            assert!(!want.contains('\n'));
        }
    }
}
