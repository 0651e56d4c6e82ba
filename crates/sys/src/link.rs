//! What kind of link an interface is, as rtnetlink tells it (`ip -d link show`): its kind
//! (`vlan`, `vrf`, `veth`, ...), its 802.1Q id when it is a VLAN, and the device it is
//! enslaved to (its controller: a bridge, a bond, a VRF).
//!
//! Used for the VRFs (issue 13 item 3): a downstream interface enslaved to a VRF device
//! has its traffic routed in that VRF's table, and cdra needs a socket bound to that VRF
//! to see it; and for the option 82 format language's `{vlan}`.
//!
//! Guarantees: one RTM_GETLINK request per interface asked about, answered within a
//! second or an error; nothing is changed, no privilege is needed; an answer that cannot
//! be parsed is an error, never a panic.
//!
//! Built on `netlink-packet-route` and `netlink-sys`, as [`crate::route`] is.

use std::io;
use std::ops::ControlFlow;
use std::time::Duration;

use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
use netlink_packet_route::link::{InfoData, InfoKind, InfoVlan, InfoVrf, LinkAttribute, LinkInfo, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::protocols::NETLINK_ROUTE;

use crate::nl::NlSocket;
use crate::SysError;

/// What rtnetlink says of one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkDetails {
    /// Its index.
    pub index: u32,
    /// Its name.
    pub name: String,
    /// Its kind (`IFLA_INFO_KIND`: "vlan", "vrf", "veth", "bridge", ...), if it has one
    /// (a physical Ethernet device has none).
    pub kind: Option<String>,
    /// The 802.1Q id, for a VLAN device.
    pub vlan_id: Option<u16>,
    /// The routing table, for a VRF device.
    pub vrf_table: Option<u32>,
    /// The index of the device it is enslaved to (`IFLA_MASTER`), if any.
    pub controller: Option<u32>,
}

impl LinkDetails {
    /// Is it a VRF device (an L3 master)?
    pub fn is_vrf(&self) -> bool {
        self.kind.as_deref() == Some("vrf")
    }
}

/// The VRF an interface is enslaved to: the VRF device's index and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vrf {
    /// The VRF device's index.
    pub index: u32,
    /// Its name (what `SO_BINDTODEVICE` takes).
    pub name: String,
}

fn kind_name(k: &InfoKind) -> String {
    match k {
        InfoKind::Vlan => "vlan".into(),
        InfoKind::Vrf => "vrf".into(),
        InfoKind::Veth => "veth".into(),
        InfoKind::Bridge => "bridge".into(),
        InfoKind::Bond => "bond".into(),
        InfoKind::Dummy => "dummy".into(),
        InfoKind::MacVlan => "macvlan".into(),
        InfoKind::IpVlan => "ipvlan".into(),
        InfoKind::Tun => "tun".into(),
        InfoKind::Other(s) => s.clone(),
        other => format!("{other:?}").to_ascii_lowercase(),
    }
}

fn describe(m: &LinkMessage) -> LinkDetails {
    let mut d = LinkDetails {
        index: m.header.index,
        name: String::new(),
        kind: None,
        vlan_id: None,
        vrf_table: None,
        controller: None,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => d.name = n.clone(),
            LinkAttribute::Controller(i) if *i != 0 => d.controller = Some(*i),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(k) => d.kind = Some(kind_name(k)),
                        LinkInfo::Data(InfoData::Vlan(v)) => {
                            d.vlan_id = v.iter().find_map(|x| if let InfoVlan::Id(id) = x { Some(*id) } else { None })
                        }
                        LinkInfo::Data(InfoData::Vrf(v)) => {
                            d.vrf_table =
                                v.iter().find_map(|x| if let InfoVrf::TableId(t) = x { Some(*t) } else { None })
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    d
}

/// Asks the kernel about link `index` (the calling thread's network namespace), like
/// `ip -d link show` does.
pub fn link_details(index: u32) -> Result<LinkDetails, SysError> {
    let action = format!("reading the details of interface {index}");
    let mut socket = NlSocket::open(NETLINK_ROUTE, "links", "")?;
    let mut request = LinkMessage::default();
    request.header.index = index;
    let seq = socket.next_seq();
    let mut msg = NetlinkMessage::from(RouteNetlinkMessage::GetLink(request));
    msg.header.flags = NLM_F_REQUEST;
    msg.header.sequence_number = seq;
    socket.send(&mut [msg]).map_err(|e| SysError::from_io(action.as_str(), "", e))?;
    let mut answer: Option<io::Result<LinkDetails>> = None;
    socket
        .read::<RouteNetlinkMessage>(seq..=seq, Duration::from_secs(1), |m| {
            answer = match m.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => Some(Ok(describe(&l))),
                NetlinkPayload::Error(e) => e.code.map(|c| Err(io::Error::from_raw_os_error(c.get().saturating_abs()))),
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
        Some(Ok(d)) => Ok(d),
        Some(Err(e)) if e.raw_os_error() == Some(libc::ENODEV) => {
            Err(SysError::NoSuchInterface { name: format!("with index {index}") })
        }
        Some(Err(e)) => Err(SysError::from_io(action, "", e)),
        None => Err(SysError::from_io(action, "", io::Error::from(io::ErrorKind::TimedOut))),
    }
}

/// The VRF link `index` is enslaved to, if it is (directly; a VLAN on a bridge in a VRF
/// is in the VRF only if the VLAN device itself is enslaved to it, as the kernel has it).
pub fn vrf_of(index: u32) -> Result<Option<Vrf>, SysError> {
    let d = link_details(index)?;
    let Some(c) = d.controller else { return Ok(None) };
    let master = link_details(c)?;
    Ok(master.is_vrf().then_some(Vrf { index: master.index, name: master.name }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_a_link_without_a_controller() {
        // Index 1 is the loopback device of every network namespace.
        let Ok(d) = link_details(1) else { return };
        assert_eq!(d.index, 1);
        assert_eq!(d.name, "lo");
        assert_eq!(d.controller, None);
        assert!(!d.is_vrf());
        assert_eq!(vrf_of(1).ok(), Some(None));
    }

    #[test]
    fn a_missing_link_is_no_such_interface() {
        match link_details(0x7fff_fff0) {
            Err(SysError::NoSuchInterface { .. }) => {}
            other => panic!("expected NoSuchInterface, got {other:?}"),
        }
    }
}
