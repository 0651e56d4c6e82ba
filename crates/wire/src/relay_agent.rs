//! Relay Agent Information, option 82 (RFC 3046), and its sub-options.
//!
//! RFC 3046 section 2.0: the option's payload is a sequence of sub-options, each
//! `code(1) len(1) data(len)`. Sub-options used here: 1 Agent Circuit ID, 2 Agent Remote ID
//! (RFC 3046), 5 Link Selection (RFC 3527), 10 Relay Agent Flags (RFC 5010), 11 Server
//! Identifier Override (RFC 5107), 19 Relay Source Port (RFC 8357), 151 Virtual Subnet
//! Selection and 152 its Control (RFC 6607).

use core::net::Ipv4Addr;

use crate::builder::OptionsWriter;
use crate::error::WireError;
use crate::options::OptionCode;

/// Sub-option codes.
#[allow(missing_docs)]
pub struct SubOptionCode;

#[allow(missing_docs)]
impl SubOptionCode {
    pub const CIRCUIT_ID: u8 = 1;
    pub const REMOTE_ID: u8 = 2;
    /// RFC 3527.
    pub const LINK_SELECTION: u8 = 5;
    /// RFC 5010: one byte of flags, the high bit (U) set when the relay received the
    /// client's message as a unicast.
    pub const FLAGS: u8 = 10;
    /// RFC 5107.
    pub const SERVER_ID_OVERRIDE: u8 = 11;
    /// RFC 8357 5.1: the relay sends from a port other than 67 and asks for the reply
    /// there (empty when the first relay adds it).
    pub const RELAY_PORT: u8 = 19;
    /// RFC 6607 3.1: Virtual Subnet Selection, a type byte then the VPN identifier.
    pub const VSS: u8 = 151;
    /// RFC 6607 3.2: VSS Control, empty; a server that used the VSS sub-option removes it
    /// from its reply.
    pub const VSS_CONTROL: u8 = 152;
}

/// RFC 5010 2.1: the flags sub-option's "U" bit (the most significant): "the relay agent
/// received the message as a unicast" (clear: as a broadcast).
pub const FLAG_UNICAST: u8 = 0x80;

/// RFC 6607 3.1 VSS types.
#[allow(missing_docs)]
pub struct VssType;

#[allow(missing_docs)]
impl VssType {
    /// "Type 0: NVT ASCII VPN identifier".
    pub const NVT_ASCII: u8 = 0;
    /// "Type 1: RFC 2685 VPN-ID" (7 bytes: OUI and index).
    pub const RFC2685_VPN_ID: u8 = 1;
    /// "Type 255: Global, default VPN" (no identifier follows).
    pub const GLOBAL: u8 = 255;
}

/// One sub-option of option 82.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubOption<'a> {
    /// Sub-option code.
    pub code: u8,
    /// Sub-option payload.
    pub data: &'a [u8],
}

/// A checked view of option 82's payload.
#[derive(Debug, Clone, Copy)]
pub struct RelayAgentInfo<'a> {
    data: &'a [u8],
}

impl<'a> RelayAgentInfo<'a> {
    /// Check that every sub-option lies within `data`.
    pub fn new_checked(data: &'a [u8]) -> Result<Self, WireError> {
        let mut pos = 0usize;
        while pos < data.len() {
            let len = *data.get(pos + 1).ok_or(WireError::BadRelayAgentInfo)? as usize;
            pos += 2 + len;
            if pos > data.len() {
                return Err(WireError::BadRelayAgentInfo);
            }
        }
        Ok(RelayAgentInfo { data })
    }

    /// The sub-options in order.
    pub fn sub_options(&self) -> SubOptionIter<'a> {
        SubOptionIter { data: self.data, pos: 0 }
    }

    /// The first sub-option with `code`.
    pub fn get(&self, code: u8) -> Option<&'a [u8]> {
        self.sub_options().find(|s| s.code == code).map(|s| s.data)
    }

    /// Sub-option 1, Agent Circuit ID.
    pub fn circuit_id(&self) -> Option<&'a [u8]> {
        self.get(SubOptionCode::CIRCUIT_ID)
    }

    /// Sub-option 2, Agent Remote ID.
    pub fn remote_id(&self) -> Option<&'a [u8]> {
        self.get(SubOptionCode::REMOTE_ID)
    }

    /// Sub-option 5, Link Selection (RFC 3527).
    pub fn link_selection(&self) -> Option<Ipv4Addr> {
        match self.get(SubOptionCode::LINK_SELECTION) {
            Some(&[a, b, c, d]) => Some(Ipv4Addr::new(a, b, c, d)),
            _ => None,
        }
    }

    /// Sub-option 11, Server Identifier Override (RFC 5107).
    pub fn server_id_override(&self) -> Option<Ipv4Addr> {
        match self.get(SubOptionCode::SERVER_ID_OVERRIDE) {
            Some(&[a, b, c, d]) => Some(Ipv4Addr::new(a, b, c, d)),
            _ => None,
        }
    }
}

/// Iterator over option 82 sub-options.
#[derive(Debug, Clone)]
pub struct SubOptionIter<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for SubOptionIter<'a> {
    type Item = SubOption<'a>;
    fn next(&mut self) -> Option<Self::Item> {
        let code = *self.data.get(self.pos)?;
        let len = *self.data.get(self.pos + 1)? as usize;
        let data = self.data.get(self.pos + 2..self.pos + 2 + len)?;
        self.pos += 2 + len;
        Some(SubOption { code, data })
    }
}

/// Write option 82 with `sub_options` (in order). Fails with `NoSpace` if the option would
/// exceed 255 bytes of payload or the writer's buffer; RFC 3046 2.0 does not allow option 82
/// to be split.
pub fn write_relay_agent_info(w: &mut OptionsWriter<'_>, sub_options: &[SubOption<'_>]) -> Result<(), WireError> {
    let mut total = 0usize;
    for s in sub_options {
        if s.data.len() > 255 {
            return Err(WireError::NoSpace);
        }
        total += 2 + s.data.len();
    }
    if total > 255 {
        return Err(WireError::NoSpace);
    }
    w.raw(&[OptionCode::RELAY_AGENT_INFO, total as u8])?;
    for s in sub_options {
        w.raw(&[s.code, s.data.len() as u8])?;
        w.raw(s.data)?;
    }
    Ok(())
}
