//! Where the paper's caching relays differ, and nowhere else.
//!
//! Paper 4: "The types are distinguished by how they interact with the DHCP clients and
//! servers." The client table, Table 1, the precautions (paper 3.2, 3.3), lease arithmetic
//! and persistence are one machinery (`proxy/`); a mode only answers the questions below.
//! Relay mode caches nothing and answers none of them.
//!
//! | question | proxying (4.1, built) | spoofing (4.2) | address pooling (4.3) |
//! |---|---|---|---|
//! | which server identity does the client see? | ours ([`ServerIdentity::Ours`]) | the server's own | ours |
//! | how many OFFERs reach the client per DISCOVER? | one (paper 5.2, [`OffersPerDiscover::One`]) | every one | one |
//! | how do client unicasts reach us? | addressed to us (we are its server) | intercepted on the router | addressed to us |
//! | where do addresses come from? | the server's ACKs | the server's ACKs | ACKs, and a pool leased ahead |
//!
//! A new mode adds its variant to [`crate::Mode`] and its answers to the `match`es here.

use crate::config::Mode;

/// The server identity a client sees in every message from us (option 54, siaddr when
/// the server had put itself there, and the IPv4 source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerIdentity {
    /// As the server sent it (a plain relay).
    AsSent,
    /// Paper 4.1: "The proxying CDRA identifies itself to the client as a DHCP server": our
    /// downstream address, so the client's unicasts come to us.
    Ours,
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

impl Mode {
    /// Does this mode keep a client table and answer from it?
    pub const fn caches(self) -> bool {
        match self {
            Mode::Relay => false,
            Mode::Proxy => true,
        }
    }

    /// The identity clients see.
    pub const fn server_identity(self) -> ServerIdentity {
        match self {
            Mode::Relay => ServerIdentity::AsSent,
            Mode::Proxy => ServerIdentity::Ours,
        }
    }

    /// OFFERs per DISCOVER.
    pub const fn offers_per_discover(self) -> OffersPerDiscover {
        match self {
            Mode::Relay => OffersPerDiscover::All,
            Mode::Proxy => OffersPerDiscover::One,
        }
    }

    /// Stable label (metrics, logs).
    pub const fn label(self) -> &'static str {
        match self {
            Mode::Relay => "relay",
            Mode::Proxy => "proxy",
        }
    }
}
