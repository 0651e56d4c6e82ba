//! # cdra-core: the relay/proxy engine, sans-IO
//!
//! The engine is fed `(now, event)` and answers with actions; it never touches a socket,
//! a file or the clock (quinn-proto's shape: `handle(now, input)` in, transmissions out).
//! Given the same configuration and the same sequence of events it makes the same
//! decisions, which is what lets the simulation crate run a week of leases in
//! milliseconds.
//!
//! Where things are (the module docs say more):
//!
//! - [`engine`]: [`Engine`], the whole surface: [`Engine::handle_datagram`] takes one
//!   received UDP payload and pushes what must be sent into an [`Outbox`], returning a
//!   [`Verdict`] (what was done, or why it was dropped: [`DropReason`], [`DiscardReason`]);
//!   [`Engine::handle_probe_answer`], [`Engine::poll_timeout`], [`Engine::handle_timeout`].
//! - [`relay`]: RFC 1542 / RFC 2131 4.1 / RFC 3046 relay-agent behaviour.
//! - [`proxy`]: the caching relay, Table 1 row by row, precautions, automated leases.
//! - [`mode`]: where the paper's three caching relays differ; where a new mode plugs in.
//! - [`pool`]: the address-pooling relay's pool (paper 4.3): leases taken ahead under our
//!   own identities, given to clients the servers cannot serve, handed back to them.
//! - [`transactions`]: the requests we forwarded, which a server reply must match to be
//!   believed (the security boundary of a caching relay).
//! - [`limits`]: rate limits (token buckets) per client and per interface.
//! - [`lease`]: lease arithmetic (T1/T2, RFC 2131 4.4.5). [`timers`]: every timer.
//! - [`leasequery`]: RFC 4388 leasequery, refilling an empty table from the servers.
//! - [`table`]: the client table. [`persist`]: its encoding and restore.
//! - [`servers`]: which servers to send to and whether each one is answering.
//! - [`counters`]: per interface, message type, reason, event, each label next to its variant.
//! - [`events`]: the per-client event log as data (off unless asked for), drained by the I/O layer.
//!
//! Everything an outsider can grow is bounded; errors are small `Copy` enums; nothing
//! panics on input.

#![forbid(unsafe_code)]

pub mod config;
pub mod counters;
pub mod engine;
pub mod events;
pub mod lease;
pub mod leasequery;
pub mod limits;
pub mod mode;
pub mod outbox;
pub mod persist;
pub mod pool;
pub mod proxy;
pub mod reconfigure;
pub mod relay;
pub mod servers;
pub mod table;
pub mod templates;
pub mod time;
pub mod timers;
pub mod transactions;
pub mod verdict;

pub use config::{
    Downstream, EngineConfig, IcmpProbe, Ipv4Net, LeasequeryConfig, Limits, LinkState, Mode, OfferChoice,
    Option82Config, Option82Policy, PoolAssign, PoolConfig, ProxyConfig, ServerSelection,
};
pub use counters::Counters;
pub use engine::{Engine, Ingress};
pub use events::{EventKind, LeaseEvent};
pub use limits::Rate;
pub use outbox::{Destination, EchoId, Outbox, Outgoing, ProbeAnswer, ProbeRequest, CLIENT_PORT, SERVER_PORT};
pub use time::Timestamp;
pub use verdict::{DiscardReason, DropReason, Verdict};
