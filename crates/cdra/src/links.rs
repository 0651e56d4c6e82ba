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

use crate::agent_id::{AgentIdFormat, LinkFacts};
use crate::config::{DownstreamSettings, Settings};

/// `cdra check`'s notes: configured interfaces that do not exist on this host now (not an
/// error: `cdra run` waits for them).
pub fn absent_interface_notes(settings: &Settings) -> Vec<String> {
    let down =
        settings.downstream.iter().enumerate().map(|(i, d)| (format!("downstream[{i}].interface"), &d.interface));
    let up = settings.upstream.iter().enumerate().map(|(i, n)| (format!("upstream[{i}].interface"), n));
    let sources = settings
        .downstream
        .iter()
        .enumerate()
        .filter_map(|(i, d)| d.source_interface.as_ref().map(|n| (format!("downstream[{i}].source_interface"), n)));
    let vrf = settings.server_vrf.iter().map(|n| ("upstream.vrf".to_string(), n));
    down.chain(up)
        .chain(sources)
        .chain(vrf)
        .filter(|(_, name)| interface_by_name(name).is_err())
        .map(|(key, name)| format!("{key}: {name} does not exist (yet); cdra will wait for it"))
        .collect()
}

/// What a downstream interface's option 82 values and giaddr are made of, besides the
/// interface itself: the host's name, the remote-id of interfaces without their own.
#[derive(Debug, Clone, Default)]
pub struct AgentContext<'a> {
    /// This host's name (`{hostname}`).
    pub hostname: &'a str,
    /// `relay.option82.remote_id`.
    pub remote_id: Option<&'a AgentIdFormat>,
}

/// One configured downstream interface as found now, and why it is waiting if it is.
pub fn resolve_downstream(d: &DownstreamSettings, ctx: &AgentContext<'_>) -> (Downstream, Option<String>) {
    let mut link = Downstream {
        name: d.interface.clone(),
        ifindex: 0,
        address: Ipv4Net { addr: d.address.unwrap_or(Ipv4Addr::UNSPECIFIED), prefix_len: 32 },
        all_addresses: Vec::new(),
        mac: None,
        circuit_id: d.interface.as_bytes().to_vec(),
        remote_id: None,
        source_address: None,
        vrf: None,
        trusted: d.trusted,
        state: LinkState::Waiting,
    };
    let found = interface_by_name(&d.interface);
    // The option 82 values, from what is known now (a waiting link keeps the values of
    // its last known state until it is up again).
    let details = found.as_ref().ok().and_then(|i| cdra_sys::link::link_details(i.index).ok());
    let vrf = found.as_ref().ok().and_then(|i| cdra_sys::link::vrf_of(i.index).ok().flatten());
    link.vrf = vrf.map(|v| v.name);
    let waiting = (|| {
        let i = match &found {
            Ok(i) => i,
            Err(_) => return Some("does not exist".to_string()),
        };
        link.ifindex = i.index;
        link.mac = i.mac;
        link.all_addresses = i.ipv4.iter().map(|n| n.addr).collect();
        let chosen = match d.address {
            Some(a) => i.ipv4.iter().find(|n| n.addr == a),
            None => i.ipv4.first(),
        };
        let Some(net) = chosen else {
            return Some(match d.address {
                Some(a) => format!("does not have its configured address {a}"),
                None => "has no IPv4 address".into(),
            });
        };
        link.address = Ipv4Net { addr: net.addr, prefix_len: net.prefix_len };
        if let Some(src) = &d.source_interface {
            // The source interface's first address: it must be there too, or the servers'
            // replies would have nowhere to go.
            match interface_by_name(src).ok().and_then(|s| s.ipv4.first().map(|n| n.addr)) {
                Some(a) => link.source_address = Some(a),
                None => return Some(format!("its source interface {src} does not exist or has no IPv4 address")),
            }
        }
        if !i.up {
            return Some("is down".into());
        }
        None
    })();
    let facts = LinkFacts {
        ifname: &d.interface,
        vlan: details.as_ref().and_then(|x| x.vlan_id),
        hostname: ctx.hostname,
        mac: link.mac,
        address: link.address.addr,
    };
    if let Some(f) = &d.circuit_id {
        link.circuit_id = f.expand(&facts);
    }
    link.remote_id = d.remote_id.as_ref().or(ctx.remote_id).map(|f| f.expand(&facts));
    if waiting.is_none() {
        link.state = LinkState::Up;
    }
    (link, waiting)
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
