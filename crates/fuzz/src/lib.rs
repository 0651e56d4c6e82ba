//! # cdra-fuzz: an engine fuzzer on stable Rust
//!
//! Drives [`cdra_core::Engine`] through the simulation (`cdra_sim`: model clients and
//! servers, a virtual clock) with seeded random events, and checks after every event of the
//! simulation that the engine keeps its invariants ([`check`]): nothing panics; no two
//! records hold one address, and the table's indexes agree; no local ACK for an address
//! another record holds; no local lease beyond what the record, and the server's binding,
//! have left; every bounded structure within its configured bound; no forged reply cached,
//! relayed, or allowed to create or change a record ([`oracle`]); no request in a frame from
//! another host than the client it names acting for that client; and the simulation's own
//! host invariants.
//!
//! What it guarantees:
//! - [`run()`] is deterministic: the same [`Case`] gives the same events, the same checks and
//!   the same result (no wall clock, no I/O, no thread);
//! - a failure is reported with a line that replays it ([`Failure`]: `--replay '<case>'`)
//!   and [`minimize`] shrinks it to the steps it needs;
//! - events a model client's lease cannot survive by any relay's fault (a stranger speaking
//!   with its identity, an on-path copy of its server's reply) are never drawn ([`gen`]),
//!   so every failure is the engine's or the checker's.
//!
//! The coupling to the engine's API is [`adapter`] (and `cdra_sim::engine_api`). Events:
//! [`gen`]; byte mutations: [`mutate`]; cases and reports: [`case`]; the driver: [`run()`].
//! `tests/seeds.rs` runs a fixed set of seeds on every `cargo test`; `tests/regressions.rs`
//! replays every case that ever failed (`regressions.txt`); `engine-fuzz` runs for long.

pub mod adapter;
pub mod case;
pub mod check;
pub(crate) mod corpus {
    include!(concat!(env!("OUT_DIR"), "/corpus.rs"));
}
pub mod gen;
pub mod mutate;
pub mod oracle;
pub mod run;

pub use case::{parse_mode, Case, Failure, Params, Profile, MODES};
pub use check::Invariant;
pub use run::{applied_events, minimize, run, Stats};
