//! # cdra-core: the relay/proxy engine, sans-IO
//!
//! The engine is fed `(now, event)` and answers with actions; it never touches a socket,
//! a file or the clock (quinn-proto's shape: `handle(now, input)` in, transmissions out).
//! Given the same configuration and the same sequence of events it makes the same
//! decisions, which is what lets the simulation crate run a week of leases in
//! milliseconds.
//!
//! - [`Engine`]: the entry point. [`Engine::handle_datagram`] takes one received UDP
//!   payload and pushes what must be sent into an [`Outbox`]; it returns a [`Verdict`]
//!   saying what was done or why the datagram was dropped ([`DropReason`]).
//! - [`relay`]: RFC 1542 / RFC 2131 4.1 / RFC 3046 relay-agent behaviour.
//! - [`servers`]: which servers to send to and whether each one is answering.
//! - [`counters`]: per interface, message type and drop reason.
//!
//! Everything an outsider can grow is bounded; errors are small `Copy` enums; nothing
//! panics on input.

#![forbid(unsafe_code)]

pub mod config;
pub mod counters;
pub mod engine;
pub mod lease;
pub mod mode;
pub mod outbox;
pub mod persist;
pub mod proxy;
pub mod relay;
pub mod servers;
pub mod table;
pub mod time;
pub mod timers;
pub mod verdict;

pub use config::{
    Downstream, EngineConfig, Ipv4Net, Mode, OfferChoice, Option82Config, Option82Policy, ProxyConfig, ServerSelection,
};
pub use counters::Counters;
pub use engine::{Engine, Ingress};
pub use outbox::{Destination, Outbox, Outgoing, ProbeRequest, CLIENT_PORT, SERVER_PORT};
pub use time::Timestamp;
pub use verdict::{DiscardReason, DropReason, Verdict};
