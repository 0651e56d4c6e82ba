//! The invariants, as pure functions over what [`crate::adapter`] read from the engine, so
//! that each can be shown to fail on a state that breaks it (the tests below).
//!
//! After every event of the simulation the fuzzer checks:
//!
//! | invariant | what |
//! |---|---|
//! | [`Invariant::Panic`] | nothing panics (engine, simulation, checker) |
//! | [`Invariant::DuplicateAddress`] | no two live records hold one address |
//! | [`Invariant::IndexMismatch`] | the table's key and address indexes point at the records that hold them |
//! | [`Invariant::AckForAddressOfAnother`] | no local ACK for an address another record holds |
//! | [`Invariant::LeaseBeyondRecord`] | no local lease longer than what the record says is left of the server's |
//! | [`Invariant::LeaseBeyondServer`] | no local lease longer than what is left of the model server's binding for that client |
//! | [`Invariant::BoundExceeded`] | the table and every queue within its configured bound ([`crate::adapter::Bound`]) |
//! | [`Invariant::ForgedReplyCached`] | every cached reply is one a server sent in answer to that client's forwarded request ([`crate::oracle`]) |
//! | [`Invariant::ForgedReplyRelayed`] | every server reply relayed to a client is genuine |
//! | [`Invariant::RecordCreatedByReply`] | a server reply never creates a record (but a genuine RFC 4388 DHCPLEASEACTIVE answering the engine's own query: `oracle.rs`) |
//! | [`Invariant::TableChangedByForgedReply`] | a forged reply changes no record (state, address, reply, server) |
//! | [`Invariant::UnverifiedSourceActed`] | a request in a frame from another host than the Ethernet chaddr it names changes no record and gets no local answer; the reply to it reaches no record |
//! | [`Invariant::InterceptUnbelieved`] | spoofing mode: every address whose client unicasts are taken is a configured server, or the identifier of a server in a reply it believed or a record it restored |
//! | [`Invariant::PoolInconsistent`] | pool mode: no two leased pool entries on one address; an entry given to a client is held by that client's record (its address, origin `pool:<n>`); no other record holds a leased entry's address |
//! | [`Invariant::Host`] | the simulation's own: no two hosts on one address, no host beyond its server lease |

use core::fmt;
use core::net::Ipv4Addr;
use std::collections::{BTreeMap, HashMap};

use crate::adapter::{Bound, PoolEntryView, RecordView};

/// What was violated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Invariant {
    /// Something panicked.
    Panic,
    /// Two live records hold one address.
    DuplicateAddress,
    /// The table's indexes disagree with its records.
    IndexMismatch,
    /// A local ACK for an address another record holds.
    AckForAddressOfAnother,
    /// A local lease longer than what the record says is left of the server's.
    LeaseBeyondRecord,
    /// A local lease longer than what is left of the model server's binding.
    LeaseBeyondServer,
    /// A structure beyond its configured bound.
    BoundExceeded,
    /// A cached reply no server sent for that client.
    ForgedReplyCached,
    /// A forged reply relayed to a client.
    ForgedReplyRelayed,
    /// A server reply created a record.
    RecordCreatedByReply,
    /// A forged reply changed, created or removed a record.
    TableChangedByForgedReply,
    /// A request from another host's frame acted for the client it names.
    UnverifiedSourceActed,
    /// The pool's entries and the table disagree.
    PoolInconsistent,
    /// Client unicasts to an address no believed server named are taken.
    InterceptUnbelieved,
    /// The simulation's host invariants (a) or (b).
    Host,
}

impl Invariant {
    /// Every invariant.
    pub const ALL: [Invariant; 15] = [
        Invariant::Panic,
        Invariant::DuplicateAddress,
        Invariant::IndexMismatch,
        Invariant::AckForAddressOfAnother,
        Invariant::LeaseBeyondRecord,
        Invariant::LeaseBeyondServer,
        Invariant::BoundExceeded,
        Invariant::ForgedReplyCached,
        Invariant::ForgedReplyRelayed,
        Invariant::RecordCreatedByReply,
        Invariant::TableChangedByForgedReply,
        Invariant::UnverifiedSourceActed,
        Invariant::PoolInconsistent,
        Invariant::InterceptUnbelieved,
        Invariant::Host,
    ];

    /// Stable label (used in the regression file).
    pub fn label(self) -> &'static str {
        match self {
            Invariant::Panic => "panic",
            Invariant::DuplicateAddress => "duplicate_address",
            Invariant::IndexMismatch => "index_mismatch",
            Invariant::AckForAddressOfAnother => "ack_for_address_of_another",
            Invariant::LeaseBeyondRecord => "lease_beyond_record",
            Invariant::LeaseBeyondServer => "lease_beyond_server",
            Invariant::BoundExceeded => "bound_exceeded",
            Invariant::ForgedReplyCached => "forged_reply_cached",
            Invariant::ForgedReplyRelayed => "forged_reply_relayed",
            Invariant::RecordCreatedByReply => "record_created_by_reply",
            Invariant::TableChangedByForgedReply => "table_changed_by_forged_reply",
            Invariant::UnverifiedSourceActed => "unverified_source_acted",
            Invariant::PoolInconsistent => "pool_inconsistent",
            Invariant::InterceptUnbelieved => "intercept_unbelieved",
            Invariant::Host => "host",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl std::str::FromStr for Invariant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Invariant::ALL.into_iter().find(|i| i.label() == s).ok_or_else(|| format!("no invariant {s:?}"))
    }
}

/// A violation: which invariant, and what exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The invariant.
    pub invariant: Invariant,
    /// What was found.
    pub detail: String,
}

impl Broken {
    pub(crate) fn new(invariant: Invariant, detail: impl Into<String>) -> Self {
        Broken { invariant, detail: detail.into() }
    }
}

/// Duplicate addresses and index agreement. `by_key` and `by_address` are what the
/// table's indexes answer for each record's key and address.
pub fn table_consistent(
    records: &[RecordView],
    by_key: impl Fn(&[u8]) -> Option<u32>,
    by_address: impl Fn(Ipv4Addr) -> Option<u32>,
) -> Result<(), Broken> {
    let mut holders: BTreeMap<Ipv4Addr, Vec<&RecordView>> = BTreeMap::new();
    for r in records.iter().filter(|r| !r.address.is_unspecified()) {
        holders.entry(r.address).or_default().push(r);
    }
    if let Some((a, rs)) = holders.iter().find(|(_, rs)| rs.len() > 1) {
        let who: Vec<&str> = rs.iter().map(|r| r.key_text.as_str()).collect();
        return Err(Broken::new(Invariant::DuplicateAddress, format!("{a} is held by {}", who.join(" and "))));
    }
    for r in records {
        if by_key(&r.key) != Some(r.slot) {
            return Err(Broken::new(
                Invariant::IndexMismatch,
                format!("record {} in slot {} but the key index says {:?}", r.key_text, r.slot, by_key(&r.key)),
            ));
        }
        if !r.address.is_unspecified() && by_address(r.address) != Some(r.slot) {
            return Err(Broken::new(
                Invariant::IndexMismatch,
                format!(
                    "record {} holds {} in slot {} but the address index says {:?}",
                    r.key_text,
                    r.address,
                    r.slot,
                    by_address(r.address)
                ),
            ));
        }
    }
    Ok(())
}

/// Every bounded structure within its bound.
pub fn within_bounds(usage: &[(Bound, usize, usize)]) -> Result<(), Broken> {
    match usage.iter().find(|(_, used, limit)| used > limit) {
        Some((b, used, limit)) => {
            Err(Broken::new(Invariant::BoundExceeded, format!("{used} > {limit} ({})", b.label())))
        }
        None => Ok(()),
    }
}

/// Pool mode: the entries agree with each other and with the table. Leased entries (free,
/// assigned, migrating, or being requested back for their client) hold distinct addresses;
/// an assigned entry's address is held by its client's record, given by that entry (origin
/// `pool:<n>`); no other record holds a leased entry's address (`pool_leased` drops a
/// record that did, the server having given the address to the pool identity), but for one
/// whose client must start over (a record restored from a damaged store that names another
/// entry, or an entry that is gone: `pool_reconcile` marks it, and it is never answered from
/// again; the pool giving the address out removes it).
///
/// `stale(e)`: the entry's lease was learnt before a step of the engine's clock, so the
/// engine may believe in more of it than the server granted (docs/design.md, "Clocks behind
/// the store"): the server may have given its address to another entry or client meanwhile.
/// `doubtful(r)`: the record holds what no server said (restored from mutated bytes, or
/// touched by a copy of a reply the fuzzer made that no relay can tell from the server's,
/// or given a stale entry);
/// a server that gives an address its pool identity holds to a client is not modelled.
pub fn pool_consistent(
    entries: &[PoolEntryView],
    records: &[RecordView],
    stale: impl Fn(&PoolEntryView) -> bool,
    doubtful: impl Fn(&RecordView) -> bool,
) -> Result<(), Broken> {
    let leased = |e: &&PoolEntryView| {
        matches!(e.state, "free" | "assigned" | "migrating" | "reacquiring") && !e.address.is_unspecified()
    };
    let mut seen: BTreeMap<Ipv4Addr, &PoolEntryView> = BTreeMap::new();
    for e in entries.iter().filter(leased) {
        if let Some(other) = seen.insert(e.address, e).filter(|o| !stale(o) && !stale(e)) {
            return Err(Broken::new(
                Invariant::PoolInconsistent,
                format!(
                    "{} is leased by pool entries {}/{} ({}) and {}/{} ({})",
                    e.address, other.link, other.n, other.state, e.link, e.n, e.state
                ),
            ));
        }
    }
    for e in entries.iter().filter(leased).filter(|e| !stale(e)) {
        let holder = records.iter().find(|r| r.address == e.address);
        let entry = format!("pool entry {}/{} ({}, {})", e.link, e.n, e.state, e.address);
        match (e.state, holder, &e.client) {
            ("assigned", Some(r), Some(c)) if r.key_text == *c && r.origin == format!("pool:{}", e.n) => {}
            ("assigned", _, Some(c)) => {
                let has =
                    holder.map(|r| format!("{} ({})", r.key_text, r.origin)).unwrap_or_else(|| "no record".into());
                let own = match records.iter().find(|r| r.key_text == *c) {
                    Some(r) => format!("its record: {} {} ({})", r.state, r.address, r.origin),
                    None => "it has no record".into(),
                };
                return Err(Broken::new(
                    Invariant::PoolInconsistent,
                    format!("{entry} is given to {c}, but its address is held by {has}; {own}"),
                ));
            }
            (_, Some(r), client)
                if client.as_deref() != Some(r.key_text.as_str()) && !r.must_restart && !doubtful(r) =>
            {
                return Err(Broken::new(
                    Invariant::PoolInconsistent,
                    format!("{entry} holds an address the record of {} ({}) holds too", r.key_text, r.origin),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A record as compared before and after a reply: what a forged reply must not change.
pub type Digest = HashMap<Vec<u8>, RecordView>;

/// The digest of a table.
pub fn digest(records: &[RecordView]) -> Digest {
    records.iter().map(|r| (r.key.clone(), r.clone())).collect()
}

/// What a reply did to the table: a record created (by any reply), or anything changed (by
/// a forged one).
pub fn reply_effect(before: &Digest, after: &Digest, forged: Option<&str>) -> Result<(), Broken> {
    if let Some((_, r)) = after.iter().find(|(k, _)| !before.contains_key(*k)) {
        let why = forged.map(|w| format!(" (forged: {w})")).unwrap_or_default();
        let inv = if forged.is_some() { Invariant::TableChangedByForgedReply } else { Invariant::RecordCreatedByReply };
        return Err(Broken::new(inv, format!("a reply created the record of {}{why}", r.key_text)));
    }
    match forged {
        Some(why) => unchanged(before, after, Invariant::TableChangedByForgedReply, &format!("a forged reply ({why})")),
        None => Ok(()),
    }
}

/// Nothing of the table changed (`what` did it, breaking `invariant`): no record created,
/// removed, or changed in state, address, reply, server, lease or origin.
pub fn unchanged(before: &Digest, after: &Digest, invariant: Invariant, what: &str) -> Result<(), Broken> {
    if let Some((_, r)) = after.iter().find(|(k, _)| !before.contains_key(*k)) {
        return Err(Broken::new(invariant, format!("{what} created the record of {}", r.key_text)));
    }
    if let Some((_, r)) = before.iter().find(|(k, _)| !after.contains_key(*k)) {
        return Err(Broken::new(invariant, format!("{what} removed the record of {}", r.key_text)));
    }
    for (k, b) in before {
        let Some(a) = after.get(k) else { continue };
        let changed = a.state != b.state
            || a.address != b.address
            || a.reply != b.reply
            || a.server != b.server
            || a.origin != b.origin
            || a.lease != b.lease;
        if changed {
            return Err(Broken::new(
                invariant,
                format!(
                    "{what} changed the record of {}: state {} -> {}, address {} -> {}, server {:?} -> {:?}",
                    b.key_text, b.state, a.state, b.address, a.address, b.server, a.server
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(slot: u32, key: u8, addr: [u8; 4]) -> RecordView {
        RecordView {
            slot,
            key: vec![0, 1, key],
            key_text: format!("k{key}"),
            state: "bound",
            address: Ipv4Addr::from(addr),
            reply: None,
            server: None,
            server_id: None,
            origin: "server".into(),
            lease: (60, 0),
            must_restart: false,
            downstream: 0,
        }
    }

    #[test]
    fn duplicates_and_index_mismatches_are_found() {
        let a = rec(0, 1, [10, 0, 0, 1]);
        let b = rec(1, 2, [10, 0, 0, 2]);
        let by_key = |k: &[u8]| k.last().map(|x| u32::from(*x) - 1);
        let by_addr = |a: Ipv4Addr| Some(u32::from(a.octets()[3]) - 1);
        assert!(table_consistent(&[a.clone(), b.clone()], by_key, by_addr).is_ok());
        let dup = rec(1, 2, [10, 0, 0, 1]);
        let e = table_consistent(&[a.clone(), dup], by_key, by_addr).unwrap_err();
        assert_eq!(e.invariant, Invariant::DuplicateAddress);
        let e = table_consistent(&[a, b], by_key, |_| Some(0)).unwrap_err();
        assert_eq!(e.invariant, Invariant::IndexMismatch);
    }

    #[test]
    fn bounds_are_checked() {
        assert!(within_bounds(&[(Bound::Probes, 2, 2)]).is_ok());
        assert_eq!(within_bounds(&[(Bound::Probes, 3, 2)]).unwrap_err().invariant, Invariant::BoundExceeded);
    }

    #[test]
    fn what_a_reply_may_do() {
        let a = rec(0, 1, [10, 0, 0, 1]);
        let before = digest(std::slice::from_ref(&a));
        let created = digest(&[a.clone(), rec(1, 2, [10, 0, 0, 2])]);
        assert_eq!(reply_effect(&before, &created, None).unwrap_err().invariant, Invariant::RecordCreatedByReply);
        let mut moved = a.clone();
        moved.address = Ipv4Addr::new(10, 0, 0, 9);
        let moved = digest(&[moved]);
        assert!(reply_effect(&before, &moved, None).is_ok(), "a genuine reply may change a record");
        let e = reply_effect(&before, &moved, Some("test")).unwrap_err();
        assert_eq!(e.invariant, Invariant::TableChangedByForgedReply);
        let e = reply_effect(&before, &digest(&[]), Some("test")).unwrap_err();
        assert_eq!(e.invariant, Invariant::TableChangedByForgedReply);
        assert!(reply_effect(&before, &before, Some("test")).is_ok());
    }

    #[test]
    fn a_request_from_another_hosts_frame_may_change_nothing() {
        let a = rec(0, 1, [10, 0, 0, 1]);
        let before = digest(std::slice::from_ref(&a));
        let inv = Invariant::UnverifiedSourceActed;
        assert!(unchanged(&before, &before, inv, "test").is_ok());
        let created = digest(&[a.clone(), rec(1, 2, [10, 0, 0, 2])]);
        assert_eq!(unchanged(&before, &created, inv, "test").unwrap_err().invariant, inv);
        assert_eq!(unchanged(&before, &digest(&[]), inv, "test").unwrap_err().invariant, inv);
        let mut pooled = a;
        pooled.origin = "pool:3".into();
        assert_eq!(unchanged(&before, &digest(&[pooled]), inv, "test").unwrap_err().invariant, inv);
    }

    fn entry(n: u16, state: &'static str, client: Option<&str>, addr: [u8; 4]) -> PoolEntryView {
        PoolEntryView {
            link: 0,
            n,
            state,
            client: client.map(String::from),
            address: Ipv4Addr::from(addr),
            lease_end: None,
        }
    }

    #[test]
    fn pool_entries_and_records_must_agree() {
        let mut given = rec(0, 1, [10, 0, 0, 1]);
        given.origin = "pool:0".into();
        let records = [given.clone(), rec(1, 2, [10, 0, 0, 2])];
        let ok = [entry(0, "assigned", Some("k1"), [10, 0, 0, 1]), entry(1, "free", None, [10, 0, 0, 3])];
        assert!(pool_consistent(&ok, &records, |_| false, |_| false).is_ok());
        let twice = [entry(0, "assigned", Some("k1"), [10, 0, 0, 1]), entry(1, "free", None, [10, 0, 0, 1])];
        assert!(pool_consistent(&twice, &records, |_| false, |_| false).is_err());
        assert!(
            pool_consistent(&twice, &records, |e| e.n == 1, |_| false).is_ok(),
            "a lease learnt before a clock step"
        );
        let orphan = [entry(0, "assigned", Some("k9"), [10, 0, 0, 1])];
        assert!(pool_consistent(&orphan, &records, |_| false, |_| false).is_err());
        let taken = [entry(1, "free", None, [10, 0, 0, 2])];
        assert!(pool_consistent(&taken, &records, |_| false, |_| false).is_err());
        let acquiring = [entry(1, "acquiring", None, [0, 0, 0, 0]), entry(2, "requesting", None, [10, 0, 0, 2])];
        assert!(pool_consistent(&acquiring, &records, |_| false, |_| false).is_ok());
    }

    #[test]
    fn labels_round_trip() {
        for i in Invariant::ALL {
            assert_eq!(i.label().parse::<Invariant>().unwrap(), i);
        }
    }
}
