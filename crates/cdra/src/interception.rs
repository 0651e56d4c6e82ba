//! Spoofing mode (paper 4.2) on the router: which client unicasts the kernel stops
//! forwarding, kept in step with the engine.
//!
//! At start-up, before privileges are dropped, [`Intercepts::install`] creates the
//! interception ([`cdra_sys::intercept::Interception`]: an nftables table owned by this
//! process, so nothing of it outlives cdra) for the downstream interfaces and the
//! configured servers, and logs one line saying what is intercepted. After each turn of the
//! loop [`Intercepts::announce`] adds what the engine learned since
//! ([`Engine::drain_new_intercepts`]: server identifiers first seen in believed ACKs or
//! restored records).
//!
//! Guarantees:
//! * relay and proxy mode install nothing ([`Intercepts::install`] returns `None`);
//! * an address the kernel refused is counted (`cdra_intercept_errors_total`), logged once
//!   (the first failure, with the count in later summaries), and tried again at most every
//!   [`RETRY_INTERVAL`]; the addresses waiting for that are bounded by the engine's own
//!   bound ([`cdra_core::engine::MAX_INTERCEPTED`]), as is the set itself;
//! * nothing here runs per packet: an empty drain costs a length check.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use cdra_core::engine::MAX_INTERCEPTED;
use cdra_core::mode::Unicasts;
use cdra_core::{Engine, EngineConfig};
use cdra_sys::intercept::{Added, Interception};

/// How long after a failed attempt an address is tried again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(10);

/// What the interception reports to the metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct InterceptStatus {
    /// Addresses whose client unicasts the router does not forward.
    pub addresses: usize,
    /// Attempts to add an address that the kernel refused.
    pub errors: u64,
}

/// Where intercepted addresses go: the kernel's set, or a stand-in in tests.
pub trait AddressSet {
    /// Adds `addr`; `Err` carries a one-line reason.
    fn add(&mut self, addr: Ipv4Addr) -> std::result::Result<Added, String>;
    /// How many addresses it holds.
    fn len(&self) -> usize;
}

impl AddressSet for Interception {
    fn add(&mut self, addr: Ipv4Addr) -> std::result::Result<Added, String> {
        self.add_address(addr).map_err(|e| e.to_string())
    }
    fn len(&self) -> usize {
        self.addresses().len()
    }
}

/// The interception and the bookkeeping around it.
#[derive(Debug)]
pub struct Intercepts<S: AddressSet = Interception> {
    set: S,
    /// Addresses the kernel refused, to try again.
    retry: Vec<Ipv4Addr>,
    next_retry: Option<Instant>,
    errors: u64,
    error_logged: bool,
}

impl Intercepts<Interception> {
    /// Spoofing mode: intercept client unicasts to the configured servers on every
    /// downstream interface, and log one line saying so. Other modes: `None`.
    pub fn install(config: &EngineConfig) -> Result<Option<Self>> {
        if config.mode.unicasts() != Unicasts::Intercepted {
            return Ok(None);
        }
        let names: Vec<&str> = config.downstream.iter().map(|d| d.name.as_str()).collect();
        let set = Interception::install(&names, &config.servers, MAX_INTERCEPTED)
            .map_err(|e| anyhow!("mode = \"spoof\": {e}"))?;
        let servers: Vec<String> = set.addresses().iter().map(|a| a.to_string()).collect();
        tracing::info!(
            table = set.table_name(),
            interfaces = %names.join(","),
            servers = %servers.join(","),
            "intercepting client unicasts to the servers: UDP port 67 to these addresses arriving on these interfaces is answered by cdra and not forwarded (nftables table ip {}, deleted by the kernel when cdra exits)",
            set.table_name()
        );
        Ok(Some(Intercepts::new(set)))
    }
}

impl<S: AddressSet> Intercepts<S> {
    /// Bookkeeping around `set`.
    pub fn new(set: S) -> Self {
        Intercepts { set, retry: Vec::new(), next_retry: None, errors: 0, error_logged: false }
    }

    /// Intercept what the engine learned since the last call, and try again what the kernel
    /// refused before (once `RETRY_INTERVAL` has passed).
    pub fn announce(&mut self, engine: &mut Engine, now: Instant) {
        let mut new = Vec::new();
        engine.drain_new_intercepts(|a| new.push(a));
        self.add_all(new, now);
    }

    /// `announce` without the engine (what it drained).
    pub fn add_all(&mut self, new: Vec<Ipv4Addr>, now: Instant) {
        for addr in new {
            self.add(addr, now);
        }
        if self.next_retry.is_some_and(|t| now >= t) {
            self.next_retry = None;
            for addr in std::mem::take(&mut self.retry) {
                self.add(addr, now);
            }
        }
    }

    fn add(&mut self, addr: Ipv4Addr, now: Instant) {
        match self.set.add(addr) {
            Ok(Added::Added) => {
                tracing::info!(address = %addr, "intercepting client unicasts to a server identifier seen in an ACK too")
            }
            Ok(Added::AlreadyThere) => {}
            Ok(Added::Full) => {
                // The engine stops at the same bound (and counts what it refuses).
                tracing::debug!(address = %addr, "interception set full");
            }
            Err(e) => {
                self.errors += 1;
                if !self.error_logged {
                    self.error_logged = true;
                    tracing::warn!(address = %addr, error = %e, "cannot intercept client unicasts to this address: the router forwards them to the server as well (counted in cdra_intercept_errors_total; logged once)");
                }
                if !self.retry.contains(&addr) && self.retry.len() < MAX_INTERCEPTED {
                    self.retry.push(addr);
                }
                self.next_retry.get_or_insert(now + RETRY_INTERVAL);
            }
        }
    }

    /// For the metrics.
    pub fn status(&self) -> InterceptStatus {
        InterceptStatus { addresses: self.set.len(), errors: self.errors }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Fake {
        held: Vec<Ipv4Addr>,
        refuse: bool,
        calls: usize,
    }

    impl AddressSet for Fake {
        fn add(&mut self, addr: Ipv4Addr) -> std::result::Result<Added, String> {
            self.calls += 1;
            if self.refuse {
                return Err("operation not permitted".into());
            }
            if self.held.contains(&addr) {
                return Ok(Added::AlreadyThere);
            }
            self.held.push(addr);
            Ok(Added::Added)
        }
        fn len(&self) -> usize {
            self.held.len()
        }
    }

    fn a(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, n)
    }

    #[test]
    fn refused_addresses_are_counted_and_tried_again_later() {
        let t0 = Instant::now();
        let mut i = Intercepts::new(Fake { refuse: true, ..Fake::default() });
        i.add_all(vec![a(1), a(2)], t0);
        assert_eq!(i.status(), InterceptStatus { addresses: 0, errors: 2 });
        // Nothing is retried before the interval.
        i.add_all(Vec::new(), t0 + RETRY_INTERVAL / 2);
        assert_eq!(i.set.calls, 2);
        // Still refused at the interval: counted again, kept for later.
        i.add_all(Vec::new(), t0 + RETRY_INTERVAL);
        assert_eq!((i.set.calls, i.status().errors), (4, 4));
        // The kernel takes them now.
        i.set.refuse = false;
        i.add_all(Vec::new(), t0 + 2 * RETRY_INTERVAL);
        assert_eq!(i.status(), InterceptStatus { addresses: 2, errors: 4 });
        assert!(i.retry.is_empty() && i.next_retry.is_none());
        i.add_all(Vec::new(), t0 + 5 * RETRY_INTERVAL);
        assert_eq!(i.set.calls, 6, "nothing left to retry");
    }

    #[test]
    fn the_engine_hands_out_what_it_learned_once() {
        use cdra_core::Mode;
        let mut config = cdra_sim::SimConfig::small(1, Mode::Spoof).engine_config();
        config.mode = Mode::Spoof;
        let servers = config.servers.clone();
        let mut engine = Engine::new(config);
        let mut i = Intercepts::new(Fake::default());
        let now = Instant::now();
        i.announce(&mut engine, now);
        assert_eq!(i.set.held, servers, "the configured servers, from the engine");
        i.announce(&mut engine, now);
        assert_eq!(i.set.calls, servers.len(), "each address handed out once");
    }
}
