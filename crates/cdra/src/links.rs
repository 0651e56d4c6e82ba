//! The configured interfaces as they are now, and following them as they come and go
//! (issue 13 item 2).
//!
//! A configured downstream interface that does not exist yet, is down, or lacks its IPv4
//! address is not a start-up failure: it is *waiting* ([`cdra_core::LinkState::Waiting`]),
//! logged once with the reason, counted and shown in the metrics, and served as soon as it
//! is there. The loop subscribes to the kernel's link and address notifications
//! ([`cdra_sys::linkwatch::LinkWatch`]); on any of them it reads the configured interfaces
//! afresh ([`resolve`]) and hands the engine the result as a reconfiguration, which changes
//! only what moved (a link up or waiting, a new address). Records keep their link across
//! a flap. A name that is not a valid interface name is still a configuration error.

use std::net::Ipv4Addr;

use cdra_core::{Downstream, Ipv4Net, LinkState};
use cdra_sys::iface::interface_by_name;

use crate::config::{DownstreamSettings, Settings};

/// `cdra check`'s notes: configured interfaces that do not exist on this host now (not an
/// error: `cdra run` waits for them).
pub fn absent_interface_notes(settings: &Settings) -> Vec<String> {
    let down =
        settings.downstream.iter().enumerate().map(|(i, d)| (format!("downstream[{i}].interface"), &d.interface));
    let up = settings.upstream.iter().enumerate().map(|(i, n)| (format!("upstream[{i}].interface"), n));
    down.chain(up)
        .filter(|(_, name)| interface_by_name(name).is_err())
        .map(|(key, name)| format!("{key}: {name} does not exist (yet); cdra will wait for it"))
        .collect()
}

/// One configured downstream interface as found now, and why it is waiting if it is.
pub fn resolve_downstream(d: &DownstreamSettings) -> (Downstream, Option<String>) {
    let circuit_id = d.circuit_id.clone().unwrap_or_else(|| d.interface.as_bytes().to_vec());
    let mut link = Downstream {
        name: d.interface.clone(),
        ifindex: 0,
        address: Ipv4Net { addr: d.address.unwrap_or(Ipv4Addr::UNSPECIFIED), prefix_len: 32 },
        all_addresses: Vec::new(),
        mac: None,
        circuit_id,
        trusted: d.trusted,
        state: LinkState::Waiting,
    };
    let i = match interface_by_name(&d.interface) {
        Ok(i) => i,
        Err(_) => return (link, Some("does not exist".into())),
    };
    link.ifindex = i.index;
    link.mac = i.mac;
    link.all_addresses = i.ipv4.iter().map(|n| n.addr).collect();
    let chosen = match d.address {
        Some(a) => i.ipv4.iter().find(|n| n.addr == a),
        None => i.ipv4.first(),
    };
    let Some(net) = chosen else {
        let why = match d.address {
            Some(a) => format!("does not have its configured address {a}"),
            None => "has no IPv4 address".into(),
        };
        return (link, Some(why));
    };
    link.address = Ipv4Net { addr: net.addr, prefix_len: net.prefix_len };
    if !i.up {
        return (link, Some("is down".into()));
    }
    link.state = LinkState::Up;
    (link, None)
}

/// One configured upstream interface as found now: its index and addresses (index 0 and
/// none while it does not exist), and why it is waiting if it is.
pub fn resolve_upstream(name: &str) -> (u32, Vec<Ipv4Addr>, Option<String>) {
    match interface_by_name(name) {
        Err(_) => (0, Vec::new(), Some("does not exist".into())),
        Ok(i) if i.ipv4.is_empty() => (i.index, Vec::new(), Some("has no IPv4 address".into())),
        Ok(i) if !i.up => (i.index, i.ipv4.iter().map(|n| n.addr).collect(), Some("is down".into())),
        Ok(i) => (i.index, i.ipv4.iter().map(|n| n.addr).collect(), None),
    }
}

/// What was last logged of each interface, so that each change is logged once.
#[derive(Debug, Default)]
pub struct LinkLog {
    last: Vec<(String, String)>,
}

impl LinkLog {
    /// Log `what` (an interface's state in words) for `role` interface `name` if it is not
    /// what was logged last for it; true if it was logged.
    pub fn note(&mut self, role: &str, name: &str, waiting: Option<&str>, up_as: &str) -> bool {
        let key = format!("{role} {name}");
        let now = match waiting {
            Some(why) => format!("waiting: {why}"),
            None => format!("up: {up_as}"),
        };
        match self.last.iter_mut().find(|(k, _)| *k == key) {
            Some((_, was)) if *was == now => return false,
            Some((_, was)) => *was = now.clone(),
            None => self.last.push((key, now.clone())),
        }
        match waiting {
            Some(why) => {
                tracing::warn!(interface = %name, "{role} interface {name} {why}; waiting for it")
            }
            None => tracing::info!(interface = %name, "{role} interface {name} is up ({up_as})"),
        }
        true
    }
}
