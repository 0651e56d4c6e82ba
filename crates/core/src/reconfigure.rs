//! Changing the configuration of a running engine, losing nothing: interfaces that come and
//! go ([`Engine::set_link`]) and a reload ([`Engine::reconfigure`]).
//!
//! **Links keep their index.** Every record, pool entry, probe, transaction and counter
//! names its downstream link by index. So a link never moves: a reload matches interfaces
//! by name, a new one takes a new slot at the end, and one no longer configured stays as a
//! [`LinkState::Removed`] slot (its records and pool entries dropped, counted
//! `interface_removed`; configured again later, it gets its slot back). At most
//! [`MAX_DOWNSTREAM_SLOTS`] slots ever.
//!
//! **An interface that is not there** (not created yet, down, no IPv4 address) is
//! [`LinkState::Waiting`]: nothing arrives from it, its records and pool entries stay (a flap
//! loses nothing), short leases do not lapse on it (nobody could have renewed), its pool is
//! not refilled. When it comes back with another subnet, records off the new subnet are
//! dropped when next used (paper App. B, `wrong_subnet`), pool entries off it at once.
//!
//! **Servers** are matched by address: one still configured keeps what was learned of it
//! (liveness, counters, the requests waiting for its answers); one removed is forgotten (its
//! late answers match nothing).
//!
//! What a reload cannot change (the engine refuses, the old configuration stays): the mode.
//! Applied at the next restart only (reported): `max_held_replies` (its buffers are
//! allocated at start-up).

use core::net::Ipv4Addr;

use crate::config::{Downstream, EngineConfig, Ipv4Net, LinkState, Mode};
use crate::counters::ProxyEvent;
use crate::engine::Engine;
use crate::limits::TokenBucket;
use crate::outbox::Outbox;
use crate::pool::upkeep::PoolMessage;
use crate::pool::EntryState;
use crate::servers::ServerPool;
use crate::table::Removal;
use crate::time::Timestamp;

/// Most downstream slots an engine ever has (configured, waiting and removed ones).
pub const MAX_DOWNSTREAM_SLOTS: usize = 1024;

/// What the I/O layer knows of a configured downstream interface now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkUpdate {
    /// It exists, is up, and has this address (the configured one, else its first).
    Up {
        /// Kernel interface index.
        ifindex: u32,
        /// giaddr and the served subnet.
        address: Ipv4Net,
        /// Every IPv4 address it has.
        all_addresses: Vec<Ipv4Addr>,
        /// Its MAC address.
        mac: Option<[u8; 6]>,
    },
    /// It does not exist, is down, or has no (configured) IPv4 address.
    Waiting,
}

/// Why a reload was refused (the running configuration stays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconfigureError {
    /// The mode cannot change at run time.
    ModeChange {
        /// Running.
        running: Mode,
        /// Asked for.
        wanted: Mode,
    },
    /// More downstream slots than [`MAX_DOWNSTREAM_SLOTS`] would be needed.
    TooManyInterfaces,
}

impl core::fmt::Display for ReconfigureError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ReconfigureError::ModeChange { running, wanted } => write!(
                f,
                "mode: cannot change from {} to {} while running (restart cdra)",
                running.label(),
                wanted.label()
            ),
            ReconfigureError::TooManyInterfaces => {
                write!(f, "downstream: more than {MAX_DOWNSTREAM_SLOTS} interfaces configured since start-up")
            }
        }
    }
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconfigured {
    /// Downstream interfaces now configured that were not.
    pub added: Vec<String>,
    /// Downstream interfaces no longer configured.
    pub removed: Vec<String>,
    /// Records dropped with them.
    pub records_dropped: usize,
    /// Pool entries released with them.
    pub pool_entries_released: usize,
    /// Servers now configured that were not, and no longer configured.
    pub servers_added: Vec<Ipv4Addr>,
    /// See `servers_added`.
    pub servers_removed: Vec<Ipv4Addr>,
    /// Keys whose new value applies only from the next restart.
    pub needs_restart: Vec<&'static str>,
}

/// A configured link's state as an update.
fn link_update(d: &Downstream) -> LinkUpdate {
    match d.state {
        LinkState::Up => LinkUpdate::Up {
            ifindex: d.ifindex,
            address: d.address,
            all_addresses: d.all_addresses.clone(),
            mac: d.mac,
        },
        LinkState::Waiting | LinkState::Removed => LinkUpdate::Waiting,
    }
}

impl Engine {
    /// The I/O layer's news about downstream interface `name`. Returns false if no
    /// configured interface has that name.
    pub fn set_link(&mut self, now: Timestamp, name: &str, update: LinkUpdate) -> bool {
        self.event_time = now;
        let Some(ds) = self.config.downstream.iter().position(|d| d.name == name && d.state != LinkState::Removed)
        else {
            return false;
        };
        self.apply_link(now, ds, update);
        true
    }

    /// Link `ds` is now as `update` says.
    fn apply_link(&mut self, now: Timestamp, ds: usize, update: LinkUpdate) {
        let Some(d) = self.config.downstream.get_mut(ds) else { return };
        match update {
            LinkUpdate::Up { ifindex, address, all_addresses, mac } => {
                let was = d.address;
                let moved = was.addr != address.addr || was.prefix_len != address.prefix_len;
                let came_up = d.state != LinkState::Up;
                d.ifindex = ifindex;
                d.address = address;
                d.all_addresses = all_addresses;
                d.mac = mac;
                d.state = LinkState::Up;
                if moved && !was.addr.is_unspecified() {
                    self.link_renumbered(now, ds, was, address);
                }
                if came_up {
                    self.counters.links_up += 1;
                    // Short leases that lapsed while it was down lapse now (paper 2.3).
                    self.arm_link_lapses(ds);
                }
                if came_up && was.addr.is_unspecified() {
                    // Up for the first time (configured before it existed): its clients are
                    // not in the table (RFC 4388 sweep, `crate::leasequery`).
                    self.leasequery_sweep_link(now, ds);
                }
                if self.pool.links() > 0 {
                    self.arm_pool_refill(now);
                }
            }
            LinkUpdate::Waiting => {
                if d.state == LinkState::Up {
                    d.state = LinkState::Waiting;
                    self.counters.links_waiting += 1;
                }
            }
        }
    }

    /// Link `ds` moved from address `was` to `address`: its pool entries off the new
    /// subnet are lost, and all of them if the relay address changed (their identities name
    /// it: renewals under new ones would be refused). Their leases run out at the server;
    /// clients given them start over at their next request.
    fn link_renumbered(&mut self, now: Timestamp, ds: usize, was: Ipv4Net, address: Ipv4Net) {
        let identity_changed = was.addr != address.addr;
        let stale: Vec<u16> = self
            .pool
            .entries(ds)
            .filter(|e| identity_changed || (e.is_leased() && !address.contains(e.address)))
            .map(|e| e.n)
            .collect();
        for n in stale {
            if let Some(r) = self.pool.reference(ds, n) {
                self.pool_entry_lost(now, r, ProxyEvent::PoolLeaseLost);
            }
        }
    }

    /// Apply a new configuration (a reload), keeping the table, the pool, the requests
    /// waiting for answers, the probes in flight and the counters. `new.downstream` lists
    /// the configured interfaces in any order, each in the state the I/O layer found it.
    /// Refused (nothing changed) for a new mode or too many interfaces.
    pub fn reconfigure(
        &mut self,
        now: Timestamp,
        mut new: EngineConfig,
        outbox: &mut Outbox,
    ) -> Result<Reconfigured, ReconfigureError> {
        self.event_time = now;
        if new.mode != self.config.mode {
            return Err(ReconfigureError::ModeChange { running: self.config.mode, wanted: new.mode });
        }
        let fresh = new.downstream.iter().filter(|d| !self.config.downstream.iter().any(|s| s.name == d.name)).count();
        if self.config.downstream.len() + fresh > MAX_DOWNSTREAM_SLOTS {
            return Err(ReconfigureError::TooManyInterfaces);
        }
        let mut report = Reconfigured::default();
        let wanted = core::mem::take(&mut new.downstream);
        let (slots, links) = self.reslot_links(now, wanted, outbox, &mut report);
        new.downstream = slots;
        self.reconfigure_servers(&new, &mut report);
        self.table.set_bounds(new.proxy.max_clients, new.limits.pending_clients);
        self.table.set_max_templates(new.limits.reply_templates);
        self.transactions.set_bounds(new.limits.transactions, new.limits.reply_timeout);
        if new.proxy.max_held_replies != self.config.proxy.max_held_replies {
            report.needs_restart.push("proxy.max_held_replies");
            new.proxy.max_held_replies = self.config.proxy.max_held_replies;
        }
        // The engine's random sequence goes on; the seed only starts it.
        new.proxy.seed = self.config.proxy.seed;
        self.config = new;
        for (i, update) in links {
            self.apply_link(now, i, update);
        }
        // Interfaces added by this reload: their clients are not in the table (RFC 4388
        // sweep, `crate::leasequery`).
        let added: Vec<usize> = (0..self.config.downstream.len())
            .filter(|i| self.config.downstream.get(*i).is_some_and(|d| report.added.contains(&d.name)))
            .collect();
        for ds in added {
            self.leasequery_sweep_link(now, ds);
        }
        if self.pool.links() > 0 {
            self.arm_pool_refill(now);
        }
        Ok(report)
    }

    /// The downstream slots for the interfaces `wanted` (by name: kept slots stay where
    /// they are, new ones are added at the end, the ones not wanted become `Removed` with
    /// their records and pool leases gone), and the link updates to apply once the new
    /// configuration is in place.
    fn reslot_links(
        &mut self,
        now: Timestamp,
        wanted: Vec<Downstream>,
        outbox: &mut Outbox,
        report: &mut Reconfigured,
    ) -> (Vec<Downstream>, Vec<(usize, LinkUpdate)>) {
        let mut slots: Vec<Downstream> = self.config.downstream.clone();
        let mut configured = vec![false; slots.len() + wanted.len()];
        let mut links: Vec<(usize, LinkUpdate)> = Vec::new();
        for d in wanted {
            let i = match slots.iter().position(|s| s.name == d.name) {
                Some(i) => {
                    let Some(s) = slots.get_mut(i) else { continue };
                    if s.state == LinkState::Removed {
                        report.added.push(d.name.clone());
                        // Back from the dead: as new, then brought up below.
                        s.state = LinkState::Waiting;
                    }
                    // What the file says changes now; where the link is (up, its address)
                    // goes through `apply_link`, as an interface event would.
                    s.circuit_id = d.circuit_id.clone();
                    s.remote_id = d.remote_id.clone();
                    s.source_address = d.source_address;
                    s.vrf = d.vrf.clone();
                    s.trusted = d.trusted;
                    links.push((i, link_update(&d)));
                    i
                }
                None => {
                    report.added.push(d.name.clone());
                    slots.push(d);
                    self.counters.add_downstream_slot();
                    self.interface_budgets.push(TokenBucket::full());
                    if self.config.mode.address_source() == crate::mode::AddressSource::ServersAndPool {
                        self.pool.add_link();
                    }
                    slots.len() - 1
                }
            };
            if let Some(c) = configured.get_mut(i) {
                *c = true;
            }
        }
        for (i, s) in slots.iter_mut().enumerate() {
            if configured.get(i) == Some(&true) || s.state == LinkState::Removed {
                continue;
            }
            report.removed.push(s.name.clone());
            // Its pool leases are given back (while the old configuration still names the
            // link's address: the identities derive from it), its records dropped.
            report.pool_entries_released += self.release_link_pool(now, i, outbox);
            let gone: Vec<_> =
                self.table.iter().filter(|(_, r)| usize::from(r.downstream) == i).map(|(slot, _)| slot).collect();
            report.records_dropped += gone.len();
            for slot in gone {
                self.drop_record(slot, Removal::InterfaceRemoved);
            }
            s.state = LinkState::Removed;
            s.ifindex = 0;
            s.all_addresses.clear();
        }
        (slots, links)
    }

    /// The servers of `new`, matched by address with what was learned of each.
    fn reconfigure_servers(&mut self, new: &EngineConfig, report: &mut Reconfigured) {
        let old = &self.config;
        if new.servers == old.servers
            && new.server_selection == old.server_selection
            && new.server_timeout == old.server_timeout
            && new.server_unanswered_limit == old.server_unanswered_limit
            && new.server_retry_interval == old.server_retry_interval
        {
            return;
        }
        let mut servers = ServerPool::new(
            &new.servers,
            new.server_selection,
            new.server_timeout,
            new.server_unanswered_limit,
            new.server_retry_interval,
        );
        let map = servers.carry_over(&self.servers);
        report.servers_added = new.servers.iter().filter(|a| !old.servers.contains(a)).copied().collect();
        report.servers_removed = old.servers.iter().filter(|a| !new.servers.contains(a)).copied().collect();
        self.transactions.remap_servers(&map);
        self.leasequery.remap_servers(&map, new.servers.len());
        self.counters.remap_servers(&map, new.servers.len());
        // Offer windows name servers by index and last a fraction of a second: the OFFERs
        // they wait for are passed first-come.
        self.proxy.offers.clear();
        self.servers = servers;
        if self.config.mode.unicasts() == crate::mode::Unicasts::Intercepted {
            for s in &new.servers {
                self.intercepted.learn(*s);
            }
        }
    }

    /// Release every pool lease of link `ds` at its server and remove the entries; how
    /// many were leased.
    fn release_link_pool(&mut self, now: Timestamp, ds: usize, outbox: &mut Outbox) -> usize {
        let numbers: Vec<u16> = self.pool.entries(ds).map(|e| e.n).collect();
        let mut released = 0;
        for n in numbers {
            let Some(r) = self.pool.reference(ds, n) else { continue };
            let leased =
                self.pool.get(r).is_some_and(|e| e.is_leased() && !matches!(e.state, EntryState::Migrating(_)));
            if leased {
                self.pool_send(now, r, PoolMessage::Release, outbox);
                released += 1;
            }
            self.pool.remove(r);
            self.note_pool_change(r);
        }
        released
    }
}
