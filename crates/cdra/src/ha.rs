//! One of a pair of relays sharing one client table (issue 15 item 3, `[ha]`).
//!
//! Two routers on one client segment, one VRRP address between them (keepalived), cdra on
//! both, the table in Redis (`[store] backend = "redis"`). The pair's address is `[ha]
//! virtual_address`, or, without `[ha]`, the first `[[downstream]] address` (a relay
//! answering as an address that is elsewhere must not write the shared table; see
//! `config::HaSource`). Which relay is the active one is
//! read off the host, not told: **active while the virtual address is on one of this
//! network namespace's interfaces**, standby otherwise. The loop already follows the
//! kernel's address notifications ([`cdra_sys::linkwatch::LinkWatch`]); on each one the
//! interfaces are read again ([`holds_address`]), so the role follows keepalived (or any
//! other VRRP daemon, or an operator's `ip addr add`) without a hook script that could be
//! missed, fail or run late. See docs/design.md ("A pair of relays").
//!
//! - **Active**: answers clients from the table and writes it to Redis (group commit).
//! - **Standby**: silent. It reads what arrives (the sockets must be drained) but feeds no
//!   datagram to the engine and sends nothing; it writes nothing to the store, and its
//!   table is empty. Two relays forwarding one broadcast is normal for plain relays, but two
//!   caches answering one client is not (two OFFERs, two ACKs naming different servers),
//!   and a standby relaying as a plain relay would hand the client the server's identity,
//!   so that its renewals bypass the pair. The standby's downstream address is the virtual
//!   one too (`cdra check` requires it), so its link is waiting anyway.
//! - **Taking over** (the address arrived): the whole table is loaded from Redis on a
//!   thread (the loop keeps running, silent) and restored as at start-up: every record is
//!   suspect, and paper 3.4's precautions (probes, REBIND) apply. Then it answers and
//!   writes. If Redis cannot be read, it answers with an empty table after the first failed
//!   attempt and keeps trying; a later load is merged (live records win) and the merged
//!   table written back whole: an empty table never overwrites Redis.
//! - **Handing over** (the address left, e.g. the old active came back and VRRP preempted):
//!   what is queued is dropped, not committed (the other relay may be writing the table
//!   already: a late commit, a full dump above all, would overwrite it), the table is
//!   dropped, and the relay goes silent. The relay taking over reads the table after the
//!   address moved, so it misses what the other had not committed then, up to one commit
//!   window (`store.commit_interval`).
//!
//! **Without any address** (Redis, no `[ha] virtual_address`, no `[[downstream]] address`:
//! the relay answers as its interface's own address, and nothing on the host says which of
//! the pair is active), both relays would be active: two answers to each broadcast and two
//! writers of one table. Then the active one is the holder of a lease in Redis
//! (`<key_prefix>:active`, `[ha] lease`, default 3 s), kept by the `cdra-lease` thread
//! ([`cdra_store::Lease`]; its module says why each timing is safe). Its changes take the
//! same paths as the address's (taking over, handing over, above). When Redis cannot be
//! reached:
//! - the holder keeps answering until its lease could have expired (3/4 of it after the
//!   last renewal was sent), then goes standby: Redis may be out of its reach only, and
//!   the other relay may take the lease then;
//! - a relay that has not reached Redis for twice the lease becomes active on its own
//!   (`alone`, logged and counted), with the table it has: a relay is there to answer
//!   while something is down, and with Redis down neither relay can be coordinated. Both
//!   relays answer then (split brain: each client may get two answers, each relay writes
//!   its records once Redis is back, merged with what Redis holds), and a partition that
//!   hides Redis from one relay only makes it answer next to the holder. A pair that runs
//!   keepalived anyway should say `[ha] virtual_address`: VRRP decides on the client
//!   segment itself, so Redis down or out of one relay's reach does not make both answer
//!   (its own failure mode, VRRP split brain, is in docs/design.md "Split brain").
//! - A relay alone that reaches Redis again takes the lease if it is free (and stays
//!   active), or goes standby if the other relay holds it.
//!
//! A single relay with its table in Redis and no pair holds the lease from its first
//! attempt (one round trip after start-up) and keeps it; with Redis down at start-up it
//! answers after twice the lease.

use std::net::Ipv4Addr;

use cdra_store::LeaseChange;

/// Which of the pair this relay is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Answers clients and writes the table.
    Active,
    /// Silent; writes nothing.
    Standby,
}

impl Role {
    /// As the log says it.
    pub fn label(self) -> &'static str {
        match self {
            Role::Active => "active",
            Role::Standby => "standby",
        }
    }
}

/// The pair's state in this relay, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HaStatus {
    /// This relay is the active one (holds the virtual address, or the lease, or is alone).
    pub active: bool,
    /// The lease decides (no virtual address): its changes, by [`LeaseChange::index`].
    pub lease_changes: Option<[u64; LeaseChange::COUNT]>,
    /// Times this relay became the active one (start-up included).
    pub takeovers: u64,
    /// Datagrams read while not serving (standby, or taking over before the table loaded).
    pub standby_drops: u64,
}

/// Whether `address` is on one of this network namespace's interfaces. An interface list
/// that cannot be read counts as not holding it (a relay that cannot tell stays silent).
pub fn holds_address(address: Ipv4Addr) -> bool {
    match cdra_sys::iface::all_interfaces() {
        Ok(all) => all.iter().any(|i| i.has_address(address)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the interfaces to tell whether this relay holds the virtual address");
            false
        }
    }
}

/// The role `virtual_address` gives this relay now; without `[ha]`, always active.
pub fn current_role(virtual_address: Option<Ipv4Addr>) -> Role {
    match virtual_address {
        None => Role::Active,
        Some(a) if holds_address(a) => Role::Active,
        Some(_) => Role::Standby,
    }
}

/// The role a change of the lease gives.
pub fn lease_role(change: LeaseChange) -> Role {
    if change.role().active() {
        Role::Active
    } else {
        Role::Standby
    }
}

/// What the log says of a lease change.
pub fn lease_change_text(change: LeaseChange) -> &'static str {
    match change {
        LeaseChange::Acquired => "took the pair's lease in Redis: this relay is the active one",
        LeaseChange::Lost => "another relay holds the pair's lease in Redis: this relay is the standby",
        LeaseChange::Expired => {
            "cannot renew the pair's lease (Redis out of reach) before it could expire: this relay is the standby"
        }
        LeaseChange::Alone => {
            "Redis out of reach for twice the lease: this relay answers on its own (if the other relay does too, clients get two answers)"
        }
    }
}

/// This relay's id in the lease: host name, process id and 32 random bits (two relays in
/// network namespaces of one host share the name; a restarted relay is a new holder).
pub fn node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    let host = if host.is_empty() { "unknown-host" } else { host };
    let random = getrandom::u32().unwrap_or_default();
    format!("{host}:{}:{random:08x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_held_and_a_documentation_address_is_not() {
        assert_eq!(current_role(None), Role::Active);
        // 127.0.0.1 is on `lo` in every network namespace where the tests run.
        assert_eq!(current_role(Some(Ipv4Addr::LOCALHOST)), Role::Active);
        assert_eq!(current_role(Some(Ipv4Addr::new(192, 0, 2, 77))), Role::Standby);
    }

    #[test]
    fn node_ids_differ_between_processes_and_restarts() {
        let (a, b) = (node_id(), node_id());
        assert_ne!(a, b, "random part");
        assert!(a.contains(&format!(":{}:", std::process::id())), "{a}");
        assert_eq!(lease_role(LeaseChange::Alone), Role::Active);
        assert_eq!(lease_role(LeaseChange::Expired), Role::Standby);
    }
}
