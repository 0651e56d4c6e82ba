//! # cdra-wire: DHCPv4/BOOTP on the wire
//!
//! Checked, zero-copy views over DHCPv4/BOOTP messages (RFC 951, RFC 1542, RFC 2131,
//! RFC 2132), modelled on smoltcp's `wire` contract: [`Message::new_checked`] validates a
//! buffer once (length, magic cookie, `hlen`, every option TLV in bounds in every area the
//! overload option 52 names), after which no accessor or setter can panic. A plain BOOTP
//! message without the magic cookie is accepted too, as a message with no options
//! ([`Message::has_magic_cookie`]): RFC 1542 relay agents forward any BOOTREQUEST.
//!
//! What this crate guarantees:
//! - no `unsafe`, no I/O, no allocation;
//! - no panic on any input (property tests and a fuzz target hold it to that);
//! - what it does not understand is preserved byte for byte: setters patch in place,
//!   [`rewrite`] copies every option it is not told to remove, in its original order.
//!
//! Modules: [`message`] (the view and its setters), [`options`] (option codes, the option
//! iterator, RFC 3396 long options), [`relay_agent`] (option 82 sub-options, RFC 3046),
//! [`builder`] (new messages, option 53 first), [`rewrite`] (length-changing edits into a
//! caller's buffer), [`ipv4`] (IPv4+UDP headers for link-layer sends).

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

pub mod builder;
pub mod error;
#[doc(hidden)]
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod ipv4;
pub mod message;
pub mod options;
pub mod relay_agent;
pub mod rewrite;

pub use builder::MessageBuilder;
pub use error::WireError;
pub use message::{Message, MessageType, Op};
pub use options::{OptionCode, OptionIter, RawOption};
pub use relay_agent::{RelayAgentInfo, SubOption};
