//! Where the kernel routes an IPv4 address: `ip route get ADDR`, over rtnetlink.
//!
//! Used by `cdra check` in spoofing mode, which must run on the router between the clients
//! and the servers: each server must be routed through an upstream interface of this host.
//!
//! Guarantees: one RTM_GETROUTE request per call, answered within a second or an error;
//! "no route" (ENETUNREACH, EHOSTUNREACH, an unreachable/prohibit/blackhole route) is an
//! answer ([`RouteKind::Unreachable`]), not an error; nothing is changed in the routing
//! table, and no privilege is needed.
//!
//! Built on `netlink-packet-route` (the rust-netlink family's rtnetlink types) and
//! `netlink-sys`'s socket, as [`crate::intercept`] is.

use std::io;
use std::net::Ipv4Addr;
use std::ops::ControlFlow;
use std::time::Duration;

use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::protocols::NETLINK_ROUTE;

use crate::nl::NlSocket;
use crate::SysError;

/// What kind of route the kernel chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// Sent out of an interface (directly or through a gateway).
    Unicast,
    /// An address of this host: delivered locally, never forwarded.
    Local,
    /// A broadcast address of this host's links.
    Broadcast,
    /// No route, or a route that refuses (unreachable, prohibit, blackhole).
    Unreachable,
    /// Any other kind (multicast, anycast, NAT, ...).
    Other,
}

/// The kernel's answer for one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// What kind of route.
    pub kind: RouteKind,
    /// The interface it leaves through (for a local address: the loopback interface).
    pub oif: Option<u32>,
    /// The next hop, when it is not the destination itself.
    pub gateway: Option<Ipv4Addr>,
}

/// Asks the kernel how it routes `dst` from this host (the calling thread's network
/// namespace), like `ip route get DST`.
pub fn route_to(dst: Ipv4Addr) -> Result<Route, SysError> {
    let action = format!("looking up the route to {dst}");
    let mut socket = NlSocket::open(NETLINK_ROUTE, "routes", "")?;
    let mut request = RouteMessage::default();
    request.header.address_family = AddressFamily::Inet;
    request.header.destination_prefix_length = 32;
    request.attributes.push(RouteAttribute::Destination(RouteAddress::Inet(dst)));
    let seq = socket.next_seq();
    let mut msg = NetlinkMessage::from(RouteNetlinkMessage::GetRoute(request));
    msg.header.flags = NLM_F_REQUEST;
    msg.header.sequence_number = seq;
    socket.send(&mut [msg]).map_err(|e| SysError::from_io(action.as_str(), "", e))?;
    let mut answer: Option<io::Result<Route>> = None;
    socket
        .read::<RouteNetlinkMessage>(seq..=seq, Duration::from_secs(1), |m| {
            answer = match m.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(r)) => Some(Ok(describe(&r))),
                NetlinkPayload::Error(e) => match e.code.map(|c| c.get().saturating_abs()) {
                    Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH) => {
                        Some(Ok(Route { kind: RouteKind::Unreachable, oif: None, gateway: None }))
                    }
                    Some(code) => Some(Err(io::Error::from_raw_os_error(code))),
                    None => None,
                },
                _ => None,
            };
            if answer.is_some() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .map_err(|e| SysError::from_io(action.as_str(), "", e))?;
    match answer {
        Some(Ok(r)) => Ok(r),
        Some(Err(e)) => Err(SysError::from_io(action, "", e)),
        None => Err(SysError::from_io(action, "", io::Error::from(io::ErrorKind::TimedOut))),
    }
}

fn describe(r: &RouteMessage) -> Route {
    let kind = match r.header.kind {
        RouteType::Unicast => RouteKind::Unicast,
        RouteType::Local => RouteKind::Local,
        RouteType::Broadcast => RouteKind::Broadcast,
        RouteType::Unreachable | RouteType::Prohibit | RouteType::BlackHole => RouteKind::Unreachable,
        _ => RouteKind::Other,
    };
    let mut route = Route { kind, oif: None, gateway: None };
    for a in &r.attributes {
        match a {
            RouteAttribute::Oif(i) => route.oif = Some(*i),
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => route.gateway = Some(*g),
            _ => {}
        }
    }
    route
}
