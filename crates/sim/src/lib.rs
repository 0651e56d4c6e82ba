//! # cdra-sim: a deterministic in-process network around the cdra engine
//!
//! Model DHCP clients (RFC 2131 figure 5, with timers), model DHCP servers (RFC 2131
//! 4.3), plain "bypass" relays, static hosts, and the real [`cdra_core::Engine`] between
//! them, driven by a virtual clock: a simulated week runs in seconds, and the same seed
//! gives the same run. After every event an invariant checker verifies that (a) no two
//! hosts hold the same address and (b) no client holds an address beyond the server's lease
//! for it; a violation is reported with a readable trace of the events before it.
//!
//! - [`sched`]: the virtual clock and event queue.
//! - [`server`]: the model server. [`client`]: the model client.
//! - [`net`]: the network ([`Sim`]), delivery rules, invariants, counters.
//! - [`workload`]: random days and weeks of reboots, releases, moves and outages.
//! - [`engine_api`]: the only place that calls the engine beyond `handle_datagram` (probe
//!   answers, timers, the client table, persistence dump/restore).
//! - [`msg`], [`trace`], [`rng`]: message summaries, the event trace, the seeded PRNG.
//!
//! Typical use:
//!
//! ```
//! use cdra_core::Mode;
//! use cdra_sim::{secs, IdStyle, Sim, SimConfig};
//!
//! let mut sim = Sim::new(SimConfig::small(1, Mode::Proxy));
//! let a = sim.add_dhcp_client(0, IdStyle::MacId);
//! sim.power_on(a);
//! sim.run_for(secs(5));
//! assert_eq!(sim.held(a), Some("10.77.1.100".parse().unwrap()));
//! sim.assert_ok(); // invariants held after every event
//! ```
//!
//! A driver that judges the engine from outside (the engine fuzzer, `crates/fuzz`) runs the
//! network one event at a time ([`Sim::step`]), hands the engine whatever bytes it likes
//! ([`Sim::inject_to_engine`], [`Sim::inject_probe_answer`]), steps the engine's clock alone
//! ([`Sim::step_engine_clock`]) and reads what crossed the engine's edge ([`WireEvent`]).
//!
//! Nothing here reads files or the wall clock; the same seed gives the same run.

pub mod client;
pub mod engine_api;
pub mod msg;
pub mod net;
pub mod rng;
pub mod sched;
pub mod server;
pub mod trace;
pub mod workload;

pub use client::{ClientConfig, ClientState, IdStyle, Lease, ModelClient, TxClass};
pub use msg::{Kind, KindCounts, Summary};
pub use net::{
    days, hours, mins, secs, Action, Holder, LinkConfig, ProbeReply, Sim, SimConfig, Violation, ViolationKind,
    WireEvent, SERVER1, SERVER2,
};
pub use rng::SimRng;
pub use sched::{Millis, Scheduler};
pub use server::{ModelServer, Pool, RequestClass, ServerConfig};
pub use workload::Workload;
