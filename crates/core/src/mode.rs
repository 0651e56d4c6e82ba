//! Where the paper's caching relays differ, and nowhere else.
//!
//! Paper 4: "The types are distinguished by how they interact with the DHCP clients and
//! servers." The client table, Table 1, the precautions (paper 3.2, 3.3), lease arithmetic
//! and persistence are one machinery (`proxy/`); a mode only answers the questions below.
//! Relay mode caches nothing and answers none of them.
//!
//! | question | proxying (4.1) | spoofing (4.2) | address pooling (4.3) |
//! |---|---|---|---|
//! | which server identity does the client see? | ours ([`ServerIdentity::Ours`]) | the server's own ([`ServerIdentity::Server`]) | ours |
//! | how many OFFERs reach the client per DISCOVER? | one (paper 5.2, [`OffersPerDiscover::One`]) | every one ([`OffersPerDiscover::All`]) | one |
//! | how do client unicasts reach us? | addressed to us (we are its server) | intercepted on the router ([`Unicasts::Intercepted`]) | addressed to us |
//! | where do addresses come from? | the server's ACKs | the server's ACKs | ACKs, and a pool leased ahead ([`AddressSource::ServersAndPool`]) |
//!
//! A new mode adds its variant to [`crate::Mode`] and its answers to the `match`es here.

use crate::config::Mode;

/// The server identity a client sees in every message from us (option 54, siaddr when
/// the server had put itself there, and the IPv4 source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerIdentity {
    /// As the server sent it (a plain relay): what it relays carries the server's option 54
    /// and siaddr, from our address on the link.
    AsSent,
    /// Paper 4.1: "The proxying CDRA identifies itself to the client as a DHCP server": our
    /// downstream address, so the client's unicasts come to us.
    Ours,
    /// Paper 4.2: "the spoofing CDRA does not identify itself as the server to clients.
    /// Instead, it spoofs server messages": option 54 and siaddr as the server sent them,
    /// and the datagram's IPv4 source the server's identifier, in what we relay and in what
    /// we answer ourselves alike.
    Server,
}

/// How client unicasts to a server (RENEW, RELEASE, a unicast INFORM) reach us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unicasts {
    /// They do not: they are routed to the server past us, and not ours to handle (relay
    /// mode), or clients send them to us because we are their server (proxy mode).
    NotIntercepted,
    /// Paper 4.2: "It must intercept packets which are addressed to another host ... It
    /// would also be beneficial for the spoofing CDRA to have the ability to prevent the
    /// unicast packet from reaching its destination": the router does not forward them and
    /// we handle them as requests ([`crate::Engine::intercepted_addresses`]).
    Intercepted,
}

/// How many OFFERs for one DISCOVER reach the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffersPerDiscover {
    /// Every server's OFFER (a plain relay).
    All,
    /// Paper 4.2: "With a proxying CDRA, only one OFFER can be forwarded from the relay to
    /// the client. The relay is responsible for determining what the best OFFER is."
    One,
}

/// Where the addresses clients get come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressSource {
    /// The servers' ACKs, relayed or cached.
    Servers,
    /// Paper 4.3: "On startup, a pool of IP addresses are requested from the real DHCP
    /// server. Once the addresses have been acquired, the Address Pooling CDRA is a DHCP
    /// server": the servers' ACKs, and a pool of addresses leased ahead ([`crate::pool`]).
    ServersAndPool,
}

impl Mode {
    /// Does this mode keep a client table and answer from it?
    pub const fn caches(self) -> bool {
        match self {
            Mode::Relay => false,
            Mode::Proxy | Mode::Spoof | Mode::Pool => true,
        }
    }

    /// The identity clients see.
    pub const fn server_identity(self) -> ServerIdentity {
        match self {
            Mode::Relay => ServerIdentity::AsSent,
            Mode::Proxy | Mode::Pool => ServerIdentity::Ours,
            Mode::Spoof => ServerIdentity::Server,
        }
    }

    /// OFFERs per DISCOVER. Paper 4.2: "A spoofing CDRA can forward all received OFFERs to
    /// the client and let the client decide which to accept."
    pub const fn offers_per_discover(self) -> OffersPerDiscover {
        match self {
            Mode::Relay | Mode::Spoof => OffersPerDiscover::All,
            Mode::Proxy | Mode::Pool => OffersPerDiscover::One,
        }
    }

    /// How client unicasts to a server reach us.
    pub const fn unicasts(self) -> Unicasts {
        match self {
            Mode::Relay | Mode::Proxy | Mode::Pool => Unicasts::NotIntercepted,
            Mode::Spoof => Unicasts::Intercepted,
        }
    }

    /// Where addresses come from.
    pub const fn address_source(self) -> AddressSource {
        match self {
            Mode::Relay | Mode::Proxy | Mode::Spoof => AddressSource::Servers,
            Mode::Pool => AddressSource::ServersAndPool,
        }
    }

    /// Stable label (metrics, logs).
    pub const fn label(self) -> &'static str {
        match self {
            Mode::Relay => "relay",
            Mode::Proxy => "proxy",
            Mode::Spoof => "spoof",
            Mode::Pool => "pool",
        }
    }
}
