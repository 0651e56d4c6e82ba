//! A cheap reflector: answers client DHCP broadcasts and renewals straight from the wire,
//! with no lease state (the address is derived from the MAC, or is the one requested), so
//! the generator's own ceiling can be measured against something much cheaper than a real
//! relay and server.
//!
//! DISCOVER -> OFFER, REQUEST -> ACK, anything else -> nothing. Replies go to chaddr (or
//! Ethernet broadcast when the client set the BROADCAST flag), from `server_ip`:67.

use std::net::Ipv4Addr;

use cdra_wire::options::OptionCode;
use cdra_wire::{Message, MessageBuilder, MessageType, Op};

use crate::frame::{finish_udp_frame, parse_udp, UdpFrameSpec, BROADCAST_MAC, CLIENT_PORT, DHCP_OFFSET, SERVER_PORT};

/// Reflector settings.
#[derive(Debug, Clone, Copy)]
pub struct ReflectConfig {
    /// Our address (server identifier, IP source).
    pub server_ip: Ipv4Addr,
    /// Our MAC (Ethernet source).
    pub server_mac: [u8; 6],
    /// Lease time handed out, seconds.
    pub lease_time: u32,
}

/// The address for a client that asked for none: 10.128.0.0/9 + low bits of the MAC.
pub fn derived_address(mac: [u8; 6]) -> Ipv4Addr {
    let low = u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]) & 0x007f_ffff;
    Ipv4Addr::from(0x0a80_0000 | low.max(1))
}

/// Answers one received frame into `slot`; returns the reply frame's length, or `None` when
/// the frame needs no answer.
pub fn answer(frame: &[u8], cfg: &ReflectConfig, slot: &mut [u8]) -> Option<usize> {
    let f = parse_udp(frame)?;
    if f.dst_port != SERVER_PORT {
        return None;
    }
    let m = Message::new_checked(f.payload).ok()?;
    if m.op() != Op::BootRequest || !m.giaddr().is_unspecified() {
        return None;
    }
    let mac = m.ethernet_chaddr()?;
    let ciaddr = m.ciaddr();
    let (mt, yiaddr) = match m.message_type()? {
        MessageType::Discover => (MessageType::Offer, m.requested_ip().unwrap_or_else(|| derived_address(mac))),
        MessageType::Request => {
            let a =
                if ciaddr.is_unspecified() { m.requested_ip().unwrap_or_else(|| derived_address(mac)) } else { ciaddr };
            (MessageType::Ack, a)
        }
        _ => return None,
    };
    let dhcp = slot.get_mut(DHCP_OFFSET..)?;
    let mut b = MessageBuilder::new(dhcp, Op::BootReply, Some(mt)).ok()?;
    b.xid(m.xid()).flags(m.flags()).ciaddr(ciaddr).yiaddr(yiaddr).chaddr(1, &mac);
    b.options().option_addr(OptionCode::SERVER_ID, cfg.server_ip).ok()?;
    b.options().option_u32(OptionCode::LEASE_TIME, cfg.lease_time).ok()?;
    b.options().option_addr(OptionCode::SUBNET_MASK, Ipv4Addr::new(255, 0, 0, 0)).ok()?;
    b.options().option_addr(OptionCode::ROUTER, cfg.server_ip).ok()?;
    let n = b.finish().ok()?;
    // RFC 2131 4.1: to ciaddr if set; else broadcast if asked; else unicast to chaddr/yiaddr.
    let (dst_mac, dst_ip) = if !ciaddr.is_unspecified() {
        (f.src_mac, ciaddr)
    } else if m.broadcast() {
        (BROADCAST_MAC, Ipv4Addr::BROADCAST)
    } else {
        (mac, yiaddr)
    };
    let spec = UdpFrameSpec {
        dst_mac,
        src_mac: cfg.server_mac,
        src_ip: cfg.server_ip,
        dst_ip,
        src_port: SERVER_PORT,
        dst_port: CLIENT_PORT,
    };
    finish_udp_frame(slot, &spec, n).ok()
}
