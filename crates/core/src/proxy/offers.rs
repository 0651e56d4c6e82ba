//! Appendix B, "Choosing the optimal OFFER": with several servers, one OFFER per DISCOVER
//! reaches the client (paper 5.2), chosen by `offer_choice`:
//!
//! - `first`: the first to arrive is passed on.
//! - `longest-lease`: OFFERs are collected for `offer_window` ([`Timer::OfferWindow`]) and
//!   the one with the longest lease is passed on when it closes.
//! - `spread`: each client has a preferred server, a fixed hash of its identity
//!   ([`spread_hash`]); its OFFER is passed on at once, another one when the window closes
//!   without it.
//!
//! At most `max_offer_windows` are open; beyond, the first OFFER is passed on (counted).

use hashbrown::HashMap;

use cdra_wire::Message;

use super::replies::ServerReply;
use crate::config::OfferChoice;
use crate::counters::ProxyEvent;
use crate::engine::Engine;
use crate::outbox::Outbox;
use crate::table::{ClientKey, ServerBinding};
use crate::time::Timestamp;
use crate::timers::Timer;
use crate::transactions::RequestId;
use crate::verdict::{DiscardReason, Verdict};

/// The best OFFER so far.
#[derive(Debug, Clone)]
struct BestOffer {
    bytes: Vec<u8>,
    server: ServerBinding,
    lease: u32,
}

/// OFFERs collected for one DISCOVER.
#[derive(Debug, Clone)]
struct OfferWindow {
    key: ClientKey,
    /// The DISCOVER, as its OFFERs name it.
    id: RequestId,
    ds: usize,
    preferred_server: Option<usize>,
    best: Option<BestOffer>,
}

/// The open offer windows, by id.
#[derive(Debug, Default)]
pub(crate) struct OfferWindows {
    open: HashMap<u64, OfferWindow>,
    next_id: u64,
}

impl OfferWindows {
    /// Windows open.
    pub(crate) fn len(&self) -> usize {
        self.open.len()
    }

    /// Is the window `id` still open?
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.open.contains_key(&id)
    }

    fn find(&self, id: &RequestId) -> Option<u64> {
        self.open.iter().find(|(_, w)| w.id == *id).map(|(n, _)| *n)
    }

    fn open(&mut self, window: OfferWindow) -> u64 {
        self.next_id = self.next_id.wrapping_add(1);
        self.open.insert(self.next_id, window);
        self.next_id
    }

    /// Close every window (a reload changed the servers, which windows name by index).
    pub(crate) fn clear(&mut self) {
        self.open.clear();
    }

    /// Close, without passing anything on, the windows of `key` (a new DISCOVER, or the
    /// record is gone).
    pub(crate) fn close_for(&mut self, key: &ClientKey) {
        self.open.retain(|_, w| w.key != *key);
    }
}

/// FNV-1a, 64 bits (offset basis 0xcbf29ce484222325, prime 0x100000001b3), over the
/// client key's bytes ([`ClientKey::as_bytes`]): a fixed definition, so a client keeps its
/// preferred server across restarts, upgrades and toolchains (Rust's `DefaultHasher` may
/// change between releases).
pub fn spread_hash(key: &ClientKey) -> u64 {
    fnv1a_64(key.as_bytes())
}

/// FNV-1a, 64 bits (<http://www.isthe.com/chongo/tech/comp/fnv/>).
pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

impl Engine {
    /// An OFFER for a client in INIT: pass it on, or collect it.
    pub(crate) fn choose_offer<T: AsRef<[u8]>>(&mut self, reply: &ServerReply<'_, T>, outbox: &mut Outbox) -> Verdict {
        let (now, ds, msg) = (reply.now, reply.ds, reply.msg);
        let choice = self.config.proxy.offer_choice;
        let n_servers = self.servers.servers().len();
        let key = match reply.slot.and_then(|s| self.table.get(s)) {
            Some(r) if choice != OfferChoice::First && n_servers >= 2 => r.key.clone(),
            _ => return self.pass_offer(ds, &reply.id, reply.slot, msg, reply.server, outbox),
        };
        let window = match self.proxy.offers.find(&reply.id) {
            Some(w) => w,
            None => {
                if self.proxy.offers.len() >= self.config.proxy.max_offer_windows {
                    self.counters.proxy.add(ProxyEvent::OfferWindowFull);
                    return self.pass_offer(ds, &reply.id, reply.slot, msg, reply.server, outbox);
                }
                let preferred_server =
                    (choice == OfferChoice::Spread).then(|| (spread_hash(&key) % n_servers as u64) as usize);
                let w = self.proxy.offers.open(OfferWindow { key, id: reply.id, ds, preferred_server, best: None });
                self.timers.arm(now.saturating_add(self.config.proxy.offer_window), Timer::OfferWindow(w));
                w
            }
        };
        let Some(w) = self.proxy.offers.open.get_mut(&window) else {
            return self.pass_offer(ds, &reply.id, reply.slot, msg, reply.server, outbox);
        };
        if w.preferred_server == Some(reply.server_index) {
            self.proxy.offers.open.remove(&window);
            return self.pass_offer(ds, &reply.id, reply.slot, msg, reply.server, outbox);
        }
        let lease = msg.lease_time().unwrap_or(0);
        let better = match (&w.best, choice) {
            (None, _) => true,
            (Some(best), OfferChoice::LongestLease) => lease > best.lease,
            _ => false,
        };
        if better {
            w.best = Some(BestOffer { bytes: msg.as_bytes().to_vec(), server: reply.server, lease });
        }
        self.discard(DiscardReason::OfferHeldForChoice)
    }

    /// An offer window closed: pass on the best OFFER it holds (to a client whose record is
    /// still there, for a DISCOVER still outstanding).
    pub(crate) fn offer_window_due(&mut self, now: Timestamp, window: u64, outbox: &mut Outbox) {
        let Some(w) = self.proxy.offers.open.remove(&window) else { return }; // passed on already
        let outstanding = self.transactions.get(&w.id, now).is_some_and(|tx| !tx.offer_passed);
        if let (Some(best), Some(slot), true) = (w.best, self.table.find(&w.key), outstanding) {
            let msg = Message::new_unchecked(&best.bytes[..]);
            self.pass_offer(w.ds, &w.id, Some(slot), &msg, best.server, outbox);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_64_matches_the_published_test_vectors() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn spread_hash_is_over_the_stored_key_bytes() {
        let key = ClientKey::hardware(1, &[0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
        assert_eq!(spread_hash(&key), fnv1a_64(&[0, 1, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]));
    }
}
