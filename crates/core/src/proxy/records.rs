//! The life of a client record: created when a client is first heard, removed for one of
//! the [`Removal`] causes (each counted), swept when stale (paper 5.6), flushed by an
//! operator, restored from the store (paper 3.4), and kept honest when the clock is behind
//! the times it holds.

use core::time::Duration;

use crate::counters::ProxyEvent;
use crate::engine::Engine;
use crate::persist::RestoreReport;
use crate::table::{ClientKey, ClientKind, ClientRecord, Removal, Slot};
use crate::time::Timestamp;
use crate::timers::Timer;

/// How often a slice of the table is swept for records past `max_age` or their lease.
pub(crate) const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Slots examined per sweep (so a sweep of a large table never stalls the loop).
const SWEEP_SLOTS_PER_TICK: usize = 4096;
/// A record that never got a server reply is forgotten after this long without contact.
const UNANSWERED_RECORD_TTL: Duration = Duration::from_secs(300);

impl Engine {
    /// The record for `key`, created (state INIT) when absent.
    pub(crate) fn record_for(&mut self, key: ClientKey, kind: ClientKind, ds: usize, now: Timestamp) -> Slot {
        if let Some(slot) = self.table.find(&key) {
            return slot;
        }
        let (slot, evicted) = self.table.insert(ClientRecord::new(key, kind, ds as u16, now));
        if let Some(gone) = evicted {
            self.forgotten(&gone, gone.eviction());
        }
        slot
    }

    /// Remove the record in `slot`, for `why`.
    pub(crate) fn drop_record(&mut self, slot: Slot, why: Removal) {
        if let Some(removed) = self.table.remove(slot) {
            self.forgotten(&removed, why);
        }
    }

    /// A record has left the table: count it, tell the store, stop what ran for it.
    pub(crate) fn forgotten(&mut self, removed: &ClientRecord, why: Removal) {
        self.counters.proxy.removed.add(why);
        if self.logging_events() {
            let kind = crate::events::EventKind::Removed(why);
            self.push_event(crate::events::LeaseEvent::of_record(self.event_time, kind, removed, None));
        }
        if removed.reply.is_some() {
            self.note_change(&removed.key);
        }
        self.proxy.probes.forget(&removed.key);
        self.proxy.offers.close_for(&removed.key);
        if let crate::table::Origin::Pool { n } = removed.origin() {
            self.pool_client_record_gone(removed, n, why);
        }
    }

    /// A clock behind the store (a router without a battery-backed clock, restored before
    /// NTP), or a clock stepped back: a record whose times lie after `now` has them moved
    /// back to `now`, so no lease is believed longer than granted, `max_age` still applies,
    /// and a short client lease ends at most one `client_lease` from now (the longest we
    /// give: a pool client's, or one moved onto a lease of its own, may hold `[pool]
    /// client_lease`, longer than the proxy's). Counted.
    pub(crate) fn clamp_future_dated(&mut self, now: Timestamp, slot: Slot) {
        let short = self.longest_client_lease();
        let Some(r) = self.table.get_mut(slot) else { return };
        let mut moved = r.clamp_to(now);
        if let Some(short) = short {
            moved |= r.limit_client_lease_end(now.saturating_add(short));
        }
        if moved {
            self.counters.proxy.add(ProxyEvent::FutureDatedClamped);
            let key = r.key.clone();
            self.note_change(&key);
            self.arm_lapse(slot);
        }
    }

    /// A sweep timer fired: the next slice of the table, then again in `SWEEP_INTERVAL`.
    pub(crate) fn sweep_due(&mut self, now: Timestamp) {
        self.sweep(now);
        self.timers.arm(now.saturating_add(SWEEP_INTERVAL), Timer::Sweep);
    }

    /// Remove records past `max_age` (paper 5.6: "After expiration of the data, the client
    /// record is deleted") or never answered, and clamp records dated in the future; a slice
    /// of the table at a time.
    fn sweep(&mut self, now: Timestamp) {
        let max_age = self.config.proxy.max_age;
        // What the table keeps for a few seconds only (`crate::table`): full budgets, and
        // renewals old enough to be sent again.
        self.table.settle_budgets(now, self.config.limits.client_rate);
        self.table.forget_renewals_sent(now, super::renewals::UPSTREAM_RENEWAL_RETRY);
        let n = self.table.slot_count();
        if n > 0 {
            let start = self.proxy.sweep_cursor.min(n);
            let end = (start + SWEEP_SLOTS_PER_TICK).min(n);
            for slot in start..end {
                let slot = slot as Slot;
                self.clamp_future_dated(now, slot);
                let Some(r) = self.table.get(slot) else { continue };
                // A record whose server lease has run out stays until max_age (paper 5.7: its
                // client will most likely be given the same configuration again).
                let expired = match &r.reply {
                    Some(_) => now.since(r.last_update()) > max_age,
                    None => now.since(r.last_contact()) > UNANSWERED_RECORD_TTL,
                };
                if expired {
                    self.drop_record(slot, Removal::Expired);
                }
            }
            self.proxy.sweep_cursor = if end >= n { 0 } else { end };
        }
        self.transactions.expire(now);
    }

    /// Remove the records in `slots`, as flushed by an operator; how many there were.
    pub(crate) fn flush(&mut self, slots: impl IntoIterator<Item = Slot>) -> usize {
        self.remove_all_of(slots, Removal::Flushed)
    }

    /// Remove the records in `slots` for `why`; how many there were.
    pub(crate) fn remove_all_of(&mut self, slots: impl IntoIterator<Item = Slot>, why: Removal) -> usize {
        let mut n = 0;
        for s in slots {
            if self.table.get(s).is_some() {
                self.drop_record(s, why);
                n += 1;
            }
        }
        n
    }

    /// Put back a pool entry the store kept (pool mode; in another mode it is dropped: the
    /// lease runs out at the server). Suspect until probed (paper 3.4).
    fn restore_pool_entry(
        &mut self,
        now: Timestamp,
        ds: usize,
        n: u16,
        rec: &ClientRecord,
        report: &mut RestoreReport,
    ) {
        let pool = self.config.mode.address_source() == crate::mode::AddressSource::ServersAndPool;
        if !pool || rec.lease_end().is_some_and(|e| e <= now) {
            report.expired += 1;
            return;
        }
        let mut entry = crate::pool::PoolEntry::from_record(n, rec);
        // A store dated ahead of this clock (a clock behind the store): the lease is taken
        // to start now, as a client record's is (`clamp_future_dated`), never later.
        if entry.lease_start > now {
            entry.lease_start = now;
            entry.assigned_at = entry.assigned_at.min(now);
            entry.sent_at = entry.sent_at.min(now);
            report.future_dated += 1;
        }
        // Paper 3.4: suspect after a restart. Held back until a probe finds nobody on the
        // address (a host found there before the restart may still be), so it is neither
        // given out nor released as surplus unprobed. An entry given to a client before the
        // restart is the client's again (see `pool_reconcile`). One held back when stored
        // stays so until then (its client, whose record went, may hold the address till
        // then; with `safe_network` no probe would find it), never longer than a hold lasts.
        let longest = self.config.pool.client_lease.max(crate::pool::assign::IN_USE_HOLD);
        let hold = entry.held_back_until.map_or(now, |until| until.max(now).min(now.saturating_add(longest)));
        entry.held_back_until = Some(hold);
        let t1 = entry.lease_start.saturating_add(Duration::from_secs(u64::from(rec.t1_secs)));
        if let Some(r) = self.pool.restore(ds, entry) {
            self.arm_pool_entry(r, t1.max(now));
            self.arm_pool_entry(r, now);
            report.pool_entries += 1;
        }
    }

    /// Restore one record from the store (paper 3.4: "information in the client database
    /// is suspect"; the precautions apply to it as to any record).
    pub(crate) fn restore_record(
        &mut self,
        now: Timestamp,
        mut rec: ClientRecord,
        iface: &str,
        report: &mut RestoreReport,
    ) {
        let Some(ds) = self.config.downstream.iter().position(|d| d.name == iface) else {
            report.unknown_interface += 1;
            return;
        };
        if let crate::table::Origin::PoolLease { n } = rec.origin() {
            self.restore_pool_entry(now, ds, n, &rec, report);
            return;
        }
        // Past max_age: gone (paper 5.6). Past its server lease only: kept (paper 5.7).
        if now.since(rec.last_update()) > self.config.proxy.max_age {
            report.expired += 1;
            return;
        }
        rec.downstream = ds as u16;
        rec.set_lapse_filed(false);
        if let Some(server) = rec.server() {
            self.learn_server_id(server.id);
        }
        // A record may conflict with one record by its key and with another by its address
        // (a store written by an older table, or damaged): the newest wins both, so no two
        // records ever hold one address. Newest by its last update (kept to the second),
        // then by its lease start (exact to the millisecond).
        let by_key = self.table.find(&rec.key);
        let by_address = self.table.find_address(rec.address).filter(|s| Some(*s) != by_key);
        let conflicts = [by_key, by_address];
        let age = |r: &ClientRecord| (r.last_update(), r.lease_start());
        let kept = conflicts.iter().flatten().any(|s| self.table.get(*s).is_some_and(|o| age(o) >= age(&rec)));
        if kept {
            report.superseded += 1;
            return;
        }
        for other in conflicts.into_iter().flatten() {
            report.superseded += 1;
            self.table.remove(other);
        }
        let (slot, evicted) = self.table.insert(rec);
        if let Some(gone) = evicted {
            self.counters.proxy.removed.add(gone.eviction());
        }
        let before = self.counters.proxy[ProxyEvent::FutureDatedClamped];
        self.clamp_future_dated(now, slot);
        if self.counters.proxy[ProxyEvent::FutureDatedClamped] != before {
            report.future_dated += 1;
        }
        self.arm_lapse(slot);
        report.loaded = self.table.len();
    }
}
