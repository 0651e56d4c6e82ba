//! Errors of the wire layer: small, `Copy`, each usable as a drop reason and metric label.

use core::fmt;

/// Why a buffer is not a DHCPv4/BOOTP message we accept, or why an edit did not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireError {
    /// Shorter than the 236-byte BOOTP header plus the 4-byte magic cookie.
    Truncated,
    /// The four bytes after the header are not 99.130.83.99 (RFC 2131 section 3) and the
    /// message is shorter than the 300 bytes of a plain RFC 951 BOOTP message (RFC 1542
    /// section 2.1), so it is neither. Also [`crate::rewrite::rewrite`]'s answer for a
    /// BOOTP message without the cookie: it has no options field to edit.
    BadMagicCookie,
    /// `hlen` is larger than the 16-byte `chaddr` field.
    BadHardwareLength,
    /// An option's length runs past the end of its area.
    OptionOverrun,
    /// Option 52 (overload) has a length other than 1 or a value other than 1, 2 or 3.
    BadOverload,
    /// `op` is neither BOOTREQUEST (1) nor BOOTREPLY (2).
    BadOp,
    /// Option 82 sub-options do not fit the option.
    BadRelayAgentInfo,
    /// The output buffer is too small for what was to be written.
    NoSpace,
}

impl WireError {
    /// Every error, in declaration order (`e as usize` is its index here).
    pub const ALL: [WireError; 8] = [
        WireError::Truncated,
        WireError::BadMagicCookie,
        WireError::BadHardwareLength,
        WireError::OptionOverrun,
        WireError::BadOverload,
        WireError::BadOp,
        WireError::BadRelayAgentInfo,
        WireError::NoSpace,
    ];

    /// A stable, lowercase label (used for metrics and logs).
    pub const fn label(self) -> &'static str {
        match self {
            WireError::Truncated => "truncated",
            WireError::BadMagicCookie => "bad_magic_cookie",
            WireError::BadHardwareLength => "bad_hlen",
            WireError::OptionOverrun => "option_overrun",
            WireError::BadOverload => "bad_overload",
            WireError::BadOp => "bad_op",
            WireError::BadRelayAgentInfo => "bad_relay_agent_info",
            WireError::NoSpace => "no_space",
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl std::error::Error for WireError {}
