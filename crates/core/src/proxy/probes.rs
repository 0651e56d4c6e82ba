//! The precautions (paper 3.2, 3.3): before we ACK a SELECTING or INIT-REBOOT request from
//! the table, and before we release a lapsed short lease at the server, we find out whether
//! some host uses the address. The I/O layer sends an ARP probe (RFC 5227) on the client's
//! link, and an ICMP echo where ARP is impossible (a link without a MAC address) or
//! `[proxy] icmp_probe = "always"` asks for one ([`crate::ProbeRequest`],
//! [`crate::config::IcmpProbe`] says why ARP is the probe); it reports answers to
//! [`crate::Engine::handle_probe_answer`]; waiting is a [`Timer::Probe`].
//!
//! A probe concludes "nobody" only if it was made and every answer could be heard:
//!
//! - When none can be made (`max_pending_probes` in flight, the address already being
//!   probed for another request) or none of its packets could be sent
//!   ([`crate::Engine::handle_probe_unsent`]), nothing is answered unprobed: the request goes
//!   to the servers, or, when none answers ([`crate::servers`]: known down), is dropped,
//!   counted `unprobed_no_server` (the client retransmits, RFC 2131 4.1, and its next
//!   REQUEST is probed); a lapse or a held-back pool address is probed again later.
//! - When answers may have been lost ([`crate::Engine::handle_probe_answers_lost`]: a probe
//!   socket's receive queue overflowed), every probe in flight is sent again before it may
//!   conclude "nobody", at most [`MAX_REPEATS`] times, then counts as not made.
//!
//! Who answered decides. "The client" is the hardware address that sent the request we
//! are to answer; "the record's client" is the one the server answered (the cached reply's
//! chaddr), which differs when someone else uses the client's identifier (option 61):
//!
//! | answer | local ACK (3.2) | OFFER of an expired record's address (5.7) | lapsed lease (2.3, 3.3) |
//! |---|---|---|---|
//! | ARP from the requesting client's MAC | the client itself: ACK at the timeout | OFFER at the timeout | the client is still there: record kept, nothing released |
//! | ARP from the record's client, not the requester | the address is the record's client's: NAK the requester, record kept | no OFFER, DISCOVER forwarded, record kept | — |
//! | ARP from any other MAC | NAK, record removed (A.1) | record removed, DISCOVER forwarded | A.2: record removed, nothing released |
//! | ICMP echo reply carrying the probe's identifier and sequence | in use, unless the client's MAC answered ARP | the same | the same |
//! | nothing by the timeout | ACK | OFFER | RELEASE sent, record removed |
//!
//! An ICMP echo reply counts only if it comes from the probed address and carries back the
//! identifier and sequence number drawn at random for that probe, so a host that did not
//! see the echo cannot forge one. One probe per address at a time (indexed by address).
//!
//! An answer only marks the probe and files its timer at `now`; the outcome is sent when the
//! timer fires, so a burst of answers can never produce more than one batch holds
//! (`handle_timeout` stops while the outbox is full and goes on at the next call).

use core::net::Ipv4Addr;

use hashbrown::HashMap;

use cdra_wire::Message;

use super::{ClientRequest, LocalAnswer};
use crate::config::IcmpProbe;
use crate::counters::ProxyEvent;
use crate::engine::Engine;
use crate::outbox::{EchoId, Outbox, ProbeAnswer, ProbeRequest};
use crate::pool::{EntryRef, PoolIdentity};
use crate::proxy::requests::{Answerable, Awaiting};
use crate::relay::{Admitted, Targets, Upstream};
use crate::table::{ClientKey, ClientKind, ClientState, Removal, Slot};
use crate::time::Timestamp;
use crate::timers::Timer;
use crate::transactions::Expect;
use crate::verdict::{DiscardReason, DropReason, Verdict};

/// How often a probe whose answers may have been lost is sent again before it counts as not
/// made.
pub const MAX_REPEATS: u8 = 2;

/// Each probe's packets go out twice: at its start and, if nothing has decided it yet, at
/// half its timeout. One broadcast can be lost (a busy or wireless link: 802.11 does not
/// acknowledge broadcast frames), and one answer with it; RFC 5227 sends three probes 1-2 s
/// apart for that reason. (Before issue 14 the ICMP echo's own ARP resolution was, where the
/// kernel had room for it, a second ARP request.) The second carries the same echo
/// identifier: it is the same probe.
pub const SECOND_TRANSMISSION: bool = true;

/// What a local answer that waits for a probe will be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProbeFor {
    /// An ACK to a SELECTING or INIT-REBOOT REQUEST (paper 3.2).
    Ack,
    /// An OFFER of an expired record's address (paper 5.7).
    OfferOfExpired,
    /// An OFFER of a pool address to a new client (paper 4.3).
    PoolOffer,
}

/// Why an address is being probed.
#[derive(Debug, Clone)]
pub(crate) enum ProbePurpose {
    /// A local answer waits for it: the client's request, answered when it ends.
    LocalAnswer { answer: ProbeFor, request: Vec<u8>, admitted: Admitted },
    /// A client's short lease lapsed; a DHCPRELEASE to the server waits for it (paper 3.3).
    Lapse,
    /// Pool mode: a held-back pool entry, given out again only if nobody answers.
    PoolEntry(EntryRef),
}

/// What the answers so far say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heard {
    /// Nothing yet.
    Nothing,
    /// Only an ICMP echo reply (no MAC): someone, maybe the client.
    IcmpOnly,
    /// The requesting client's own MAC answered ARP (an ICMP reply may have come too).
    Client,
    /// The record's client, not the requester, answered ARP (decided).
    RecordClient,
    /// Another MAC answered ARP: the address is in use (decided).
    OtherHost,
    /// None of its packets could be sent: it proves nothing (decided: not made).
    Unsent,
}

/// A probe in flight.
#[derive(Debug, Clone)]
pub(crate) struct PendingProbe {
    purpose: ProbePurpose,
    ds: usize,
    ifindex: u32,
    target: Ipv4Addr,
    echo: EchoId,
    key: ClientKey,
    /// The MAC of the client the answer is for (from its request, or from the cached reply
    /// for a lapse).
    client_mac: Option<[u8; 6]>,
    /// The MAC the server answered for this record (the cached reply's chaddr).
    record_mac: Option<[u8; 6]>,
    heard: Heard,
    /// Answers may have been lost since it was sent: it is sent again before concluding
    /// "nobody".
    doubt: bool,
    /// Times it was sent again.
    repeats: u8,
    /// Sent a second time (at half its timeout) already; until then, when it times out.
    second: Second,
}

/// A probe's second transmission (see [`SECOND_TRANSMISSION`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Second {
    /// Due when the armed timer fires; the probe times out at this deadline.
    Due(Timestamp),
    /// Sent: the armed timer is the probe's timeout.
    Sent,
}

impl PendingProbe {
    /// Has what it heard decided it (so it ends at once)? Another host or the record's
    /// client, for any purpose; the client itself, for a lapse (nothing is to be sent to the
    /// client, and a REQUEST may follow); nothing sent at all.
    fn decided(&self) -> bool {
        matches!(
            (&self.purpose, self.heard),
            (_, Heard::OtherHost | Heard::RecordClient | Heard::Unsent) | (ProbePurpose::Lapse, Heard::Client)
        )
    }

    /// Would it conclude, as things stand, that nobody else uses the address?
    fn finds_nobody(&self) -> bool {
        matches!(
            (self.heard, &self.purpose),
            (Heard::Nothing, _) | (Heard::Client, ProbePurpose::LocalAnswer { .. } | ProbePurpose::PoolEntry(_))
        )
    }
}

/// The probes in flight, by id, at most `max_pending_probes`, one per address.
#[derive(Debug, Default)]
pub(crate) struct Probes {
    pending: HashMap<u64, PendingProbe>,
    by_key: HashMap<ClientKey, u64>,
    by_target: HashMap<Ipv4Addr, u64>,
    next_id: u64,
    /// The most in flight at once since start.
    peak: usize,
}

impl Probes {
    /// Probes in flight.
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    /// The most probes in flight at once since start.
    pub(crate) fn peak(&self) -> usize {
        self.peak
    }

    /// Is the probe `id` still in flight?
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.pending.contains_key(&id)
    }

    /// Is the client `key`'s address being probed?
    pub(crate) fn is_probing(&self, key: &ClientKey) -> bool {
        self.by_key.contains_key(key)
    }

    /// Is `address` being probed?
    fn is_probing_address(&self, address: Ipv4Addr) -> bool {
        self.by_target.contains_key(&address)
    }

    fn start(&mut self, probe: PendingProbe) -> u64 {
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        self.by_key.insert(probe.key.clone(), id);
        self.by_target.insert(probe.target, id);
        self.pending.insert(id, probe);
        self.peak = self.peak.max(self.pending.len());
        id
    }

    /// None of the packets of the probe of `target` that carried `echo` went out. Returns
    /// its id (to fire now) unless it is another probe, or decided already.
    fn unsent(&mut self, target: Ipv4Addr, echo: EchoId) -> Option<u64> {
        let id = *self.by_target.get(&target)?;
        let p = self.pending.get_mut(&id)?;
        // After its second transmission, a refusal concerns that one: the first went out
        // (a refusal of it would have been reported at once).
        if p.echo != echo
            || p.second == Second::Sent
            || matches!(p.heard, Heard::OtherHost | Heard::RecordClient | Heard::Unsent)
        {
            return None;
        }
        p.heard = Heard::Unsent;
        Some(id)
    }

    /// Answers may have been lost: no probe in flight concludes "nobody" before it has been
    /// sent again.
    fn doubt_all(&mut self) {
        for p in self.pending.values_mut() {
            p.doubt = true;
        }
    }

    fn take(&mut self, id: u64) -> Option<PendingProbe> {
        let p = self.pending.remove(&id)?;
        if self.by_key.get(&p.key) == Some(&id) {
            self.by_key.remove(&p.key);
        }
        if self.by_target.get(&p.target) == Some(&id) {
            self.by_target.remove(&p.target);
        }
        Some(p)
    }

    /// Forget the probe of `key` (its record is gone); its timer finds nothing.
    pub(crate) fn forget(&mut self, key: &ClientKey) {
        if let Some(id) = self.by_key.get(key).copied() {
            self.take(id);
        }
    }

    /// Note `answer`. Returns the id of the probe this answer decided (to fire now).
    fn answered(&mut self, answer: ProbeAnswer) -> Option<u64> {
        let address = match answer {
            ProbeAnswer::Arp { address, .. } | ProbeAnswer::Echo { address, .. } => address,
        };
        let id = *self.by_target.get(&address)?;
        let p = self.pending.get_mut(&id)?;
        let before = p.heard;
        p.heard = match answer {
            ProbeAnswer::Arp { ifindex, .. } if ifindex != p.ifindex => return None,
            ProbeAnswer::Echo { echo, .. } if echo != p.echo => return None,
            _ if matches!(p.heard, Heard::OtherHost | Heard::RecordClient | Heard::Unsent) => p.heard,
            ProbeAnswer::Arp { mac, .. } if Some(mac) == p.client_mac => Heard::Client,
            ProbeAnswer::Arp { mac, .. } if Some(mac) == p.record_mac => Heard::RecordClient,
            ProbeAnswer::Arp { .. } => Heard::OtherHost,
            ProbeAnswer::Echo { .. } if p.heard == Heard::Nothing => Heard::IcmpOnly,
            ProbeAnswer::Echo { .. } => p.heard,
        };
        (p.decided() && before != p.heard).then_some(id)
    }
}

impl Engine {
    /// Paper 3.2: "If the CDRA's response would be an ACK, the CDRA should first issue an
    /// ICMP echo request ... on the requested IP address. If a host replies, the CDRA should
    /// respond with a NAK and remove the address from its database." On the client's own
    /// link the probe is ARP (RFC 5227), which finds every host the echo could and more
    /// ([`IcmpProbe`]); the echo goes where ARP is impossible, or where the operator asks
    /// for it. The answer (`answer`: that ACK, or paper 5.7's OFFER of an expired address)
    /// waits; others are served meanwhile.
    pub(crate) fn start_probe<T: AsRef<[u8]>>(
        &mut self,
        req: &ClientRequest<'_, T>,
        slot: Slot,
        answer: ProbeFor,
        outbox: &mut Outbox,
    ) -> Verdict {
        let (now, ds, msg) = (req.now, req.ds, req.msg);
        let Some(r) = self.table.get(slot) else {
            return self.drop(ds, DropReason::NoServer);
        };
        let (key, target) = (r.key.clone(), r.address);
        let record_mac = <[u8; 6]>::try_from(r.reply_chaddr()).ok();
        if self.proxy.probes.is_probing(&key) {
            // A retransmission while the probe runs: the answer is on its way.
            self.counters.proxy.discarded.add(DiscardReason::RetransmissionDuringProbe);
            return Verdict::Discarded(DiscardReason::RetransmissionDuringProbe);
        }
        if self.config.downstream.get(ds).is_none() {
            return self.drop(ds, DropReason::UnknownInterface);
        }
        let busy = self.proxy.probes.is_probing_address(target);
        if busy || self.proxy.probes.len() >= self.config.proxy.max_pending_probes {
            // Bounded (and one probe per address): never answer unprobed.
            self.counters.proxy.add(if busy { ProxyEvent::ProbeRefusedBusy } else { ProxyEvent::ProbeRefusedFull });
            return self.answer_unprobed(req, slot, answer, outbox);
        }
        let Some(probe) = self.probe_request(ds, target) else {
            return self.drop(ds, DropReason::UnknownInterface);
        };
        if !outbox.push_probe(probe) {
            return self.drop(ds, DropReason::OutboxFull);
        }
        let purpose = ProbePurpose::LocalAnswer { answer, request: msg.as_bytes().to_vec(), admitted: req.admitted };
        let pending = PendingProbe {
            purpose,
            ds,
            ifindex: probe.ifindex,
            target,
            echo: probe.echo,
            key,
            client_mac: msg.ethernet_chaddr(),
            record_mac,
            heard: Heard::Nothing,
            doubt: false,
            repeats: 0,
            second: Second::Sent,
        };
        self.arm_probe(now, pending);
        Verdict::AwaitingProbe
    }

    /// The probe a request's answer needs cannot be made (no slot free, its address being
    /// probed for another request, or its packets not sent). Paper 3.2 asks for the probe,
    /// so the answer is not given unprobed: the servers answer instead, as a plain relay's
    /// would. When no server answers (known down, [`crate::servers`]), forwarding would
    /// only file a transaction nobody completes: the request is dropped and counted, and
    /// the client's own retransmission (RFC 2131 4.1: 4 s, then 8 s, ...) comes back when
    /// the storm has moved on.
    pub(crate) fn answer_unprobed<T: AsRef<[u8]>>(
        &mut self,
        req: &ClientRequest<'_, T>,
        slot: Slot,
        answer: ProbeFor,
        outbox: &mut Outbox,
    ) -> Verdict {
        if answer == ProbeFor::PoolOffer {
            // Never give a pool address unprobed: the client asks again.
            self.pool_client_gone(slot, Removal::ReturnedToPool);
            return self.drop(req.ds, DropReason::NoServer);
        }
        if !self.servers.any_up(req.now) {
            return self.drop(req.ds, DropReason::UnprobedNoServer);
        }
        if answer == ProbeFor::OfferOfExpired {
            return self.forward_for(req, Awaiting::Reply(Some(slot), Expect::Offer), Upstream::CHOSEN, outbox);
        }
        let msg = req.msg;
        let server = self.table.get(slot).and_then(|r| r.server());
        let state = if msg.server_identifier().is_some() { ClientState::Requesting } else { ClientState::Rebooting };
        let to = match (msg.server_identifier(), self.server_of(server)) {
            // A SELECTING request for our own offer: its server gets its identifier back.
            (Some(_), Some((i, b))) => Upstream { targets: Targets::One(i), server_id: Some(b.id) },
            _ => Upstream::CHOSEN,
        };
        self.forward_for(req, Awaiting::Reply(Some(slot), Expect::Ack(state)), to, outbox)
    }

    /// The probe to send for `target` on downstream link `ds` (`None`: no such link): ARP
    /// where the link has a MAC address, an ICMP echo where it has none or `[proxy]
    /// icmp_probe = "always"` (why: [`IcmpProbe`]).
    fn probe_request(&mut self, ds: usize, target: Ipv4Addr) -> Option<ProbeRequest> {
        let echo = self.random_echo_id();
        let always = self.config.proxy.icmp_probe == IcmpProbe::Always;
        let iface = self.config.downstream.get(ds)?;
        Some(ProbeRequest {
            ifindex: iface.ifindex,
            sender_mac: iface.mac,
            sender_ip: iface.address.addr,
            target,
            icmp: always || iface.mac.is_none(),
            echo,
        })
    }

    /// Paper 3.3: before a lapsed lease is released, probe its address. Returns false when
    /// no probe could be started now (`max_pending_probes` in flight).
    pub(crate) fn start_lapse_probe(&mut self, now: Timestamp, slot: Slot, outbox: &mut Outbox) -> bool {
        let Some(r) = self.table.get(slot) else { return true };
        let ds = usize::from(r.downstream);
        if self.config.downstream.get(ds).is_none() {
            return true;
        }
        if self.proxy.probes.len() >= self.config.proxy.max_pending_probes
            || self.proxy.probes.is_probing_address(r.address)
        {
            return false;
        }
        // The client's MAC is the one its server answered (the cached reply's chaddr).
        let client_mac = <[u8; 6]>::try_from(r.reply_chaddr()).ok();
        let (key, target) = (r.key.clone(), r.address);
        let Some(probe) = self.probe_request(ds, target) else { return true };
        if !outbox.push_probe(probe) {
            return false;
        }
        let pending = PendingProbe {
            purpose: ProbePurpose::Lapse,
            ds,
            ifindex: probe.ifindex,
            target,
            echo: probe.echo,
            key,
            client_mac,
            record_mac: client_mac,
            heard: Heard::Nothing,
            doubt: false,
            repeats: 0,
            second: Second::Sent,
        };
        self.arm_probe(now, pending);
        true
    }

    /// Pool mode: probe the address of held-back entry `r`. Returns false when no probe
    /// could be started now (`max_pending_probes` in flight, the address being probed, or
    /// no room in the outbox).
    pub(crate) fn start_pool_entry_probe(&mut self, now: Timestamp, r: EntryRef, outbox: &mut Outbox) -> bool {
        let ds = usize::from(r.link);
        let (Some(iface), Some(e)) = (self.config.downstream.get(ds), self.pool.get(r)) else { return false };
        let target = e.address;
        if self.proxy.probes.len() >= self.config.proxy.max_pending_probes
            || self.proxy.probes.is_probing_address(target)
        {
            return false;
        }
        let key = PoolIdentity::new(iface.address.addr, r.n).key();
        let Some(probe) = self.probe_request(ds, target) else { return false };
        if !outbox.push_probe(probe) {
            return false;
        }
        // No client of ours is meant to be there: any answer means in use.
        let pending = PendingProbe {
            purpose: ProbePurpose::PoolEntry(r),
            ds,
            ifindex: probe.ifindex,
            target,
            echo: probe.echo,
            key,
            client_mac: None,
            record_mac: None,
            heard: Heard::Nothing,
            doubt: false,
            repeats: 0,
            second: Second::Sent,
        };
        self.arm_probe(now, pending);
        true
    }

    /// A fresh, unpredictable ICMP echo identifier and sequence number.
    fn random_echo_id(&mut self) -> EchoId {
        let r = self.table.next_random();
        EchoId { ident: (r >> 16) as u16, seq: (r >> 48) as u16 }
    }

    fn arm_probe(&mut self, now: Timestamp, pending: PendingProbe) {
        self.counters.proxy.add(ProxyEvent::ProbeStarted);
        self.probe_event(ProxyEvent::ProbeStarted, &pending);
        self.arm_probe_timer(now, pending);
    }

    /// File a probe that has just been sent (or sent again): its timer fires at half the
    /// timeout for the second transmission ([`SECOND_TRANSMISSION`]), then at the timeout.
    fn arm_probe_timer(&mut self, now: Timestamp, mut pending: PendingProbe) {
        let timeout = self.config.proxy.probe_timeout;
        let deadline = now.saturating_add(timeout);
        let at = if SECOND_TRANSMISSION {
            pending.second = Second::Due(deadline);
            now.saturating_add(timeout / 2)
        } else {
            pending.second = Second::Sent;
            deadline
        };
        let id = self.proxy.probes.start(pending);
        self.timers.arm(at, Timer::Probe(id));
    }

    /// The probe of `target` on link `ds` as sent before: the same echo identifier.
    fn probe_request_again(&mut self, ds: usize, target: Ipv4Addr, echo: EchoId) -> Option<ProbeRequest> {
        self.probe_request(ds, target).map(|p| ProbeRequest { echo, ..p })
    }

    /// Some host answered a probe (see [`crate::Engine::handle_probe_answer`]): mark the
    /// probe it concerns, and fire its timer now if the answer decides it.
    pub(crate) fn probe_answered(&mut self, now: Timestamp, answer: ProbeAnswer) {
        if let Some(id) = self.proxy.probes.answered(answer) {
            self.timers.arm(now, Timer::Probe(id));
        }
    }

    /// None of `probe`'s packets went out (see [`crate::Engine::handle_probe_unsent`]).
    pub(crate) fn probe_unsent(&mut self, now: Timestamp, probe: &ProbeRequest) {
        if let Some(id) = self.proxy.probes.unsent(probe.target, probe.echo) {
            self.timers.arm(now, Timer::Probe(id));
        }
    }

    /// Answers may have been lost (see [`crate::Engine::handle_probe_answers_lost`]).
    pub(crate) fn probe_answers_lost(&mut self) {
        self.proxy.probes.doubt_all();
    }

    /// A probe's timer fired: it was decided by an answer, or it timed out.
    pub(crate) fn probe_due(&mut self, now: Timestamp, id: u64, outbox: &mut Outbox) {
        let Some(p) = self.proxy.probes.take(id) else { return }; // decided and done already
        let Some(p) = self.probe_goes_on(now, p, outbox) else { return };
        let slot = self.table.find(&p.key);
        self.probe_event(probe_outcome(p.heard, &p.purpose), &p);
        match (p.heard, &p.purpose) {
            (Heard::Unsent, _) => self.probe_not_made(now, p, slot, outbox),
            (heard, ProbePurpose::PoolEntry(r)) => {
                let in_use = heard != Heard::Nothing;
                self.counters.proxy.add(if in_use { ProxyEvent::ProbeFoundInUse } else { ProxyEvent::ProbeTimedOut });
                self.pool_held_back_probed(now, *r, in_use);
            }
            (Heard::RecordClient, ProbePurpose::LocalAnswer { answer, request, admitted }) => {
                // The address is the record's client's, alive, and the requester is someone
                // else using its identifier: the requester gets a NAK (or, for a DISCOVER,
                // no OFFER: its DISCOVER goes to the server), the client keeps its record.
                self.counters.proxy.add(ProxyEvent::ProbeOwnerAnswered);
                let request = Message::new_unchecked(&request[..]);
                match answer {
                    ProbeFor::Ack => {
                        self.send_nak(p.ds, &request, outbox);
                    }
                    ProbeFor::OfferOfExpired => self.forward_probed_discover(now, p.ds, &request, *admitted, outbox),
                    // A pool address another host answers for: not to be given out.
                    ProbeFor::PoolOffer => {
                        let request = request.as_bytes().to_vec();
                        self.pool_offer_refused(now, slot, &request, *admitted, p.ds, outbox);
                    }
                }
            }
            // Only an echo answered a lapse probe: someone, maybe the client (a link without
            // ARP). RFC 4388: the server is asked before the record is dropped
            // (`crate::leasequery`); nothing is released either way.
            (Heard::IcmpOnly, ProbePurpose::Lapse)
                if slot.is_some_and(|s| self.settle_by_leasequery(now, s, outbox)) => {}
            (Heard::OtherHost | Heard::IcmpOnly | Heard::RecordClient, _) => {
                self.probe_found_in_use(now, p, slot, outbox)
            }
            (Heard::Client, ProbePurpose::Lapse) => {
                // The client's own MAC answers: it still has the address configured (it will
                // renew late, or it slept). Keep its record and the server lease; release
                // nothing; its next REQUEST is answered from the table as before.
                self.counters.proxy.add(ProxyEvent::ProbeClientAnswered);
                self.counters.proxy.add(ProxyEvent::LapsedClientStillThere);
                if let Some(s) = slot {
                    self.client_still_there(now, s);
                }
            }
            (Heard::Client, ProbePurpose::LocalAnswer { .. }) | (Heard::Nothing, _) => {
                if p.heard == Heard::Client {
                    self.counters.proxy.add(ProxyEvent::ProbeClientAnswered);
                }
                self.counters.proxy.add(ProxyEvent::ProbeTimedOut);
                let Some(s) = slot else { return };
                match p.purpose {
                    ProbePurpose::Lapse => self.send_release(s, outbox),
                    ProbePurpose::PoolEntry(_) => {} // decided above
                    ProbePurpose::LocalAnswer { answer, request, admitted } => {
                        self.answer_probed(now, p.ds, s, answer, &request, admitted, outbox);
                    }
                }
            }
        }
    }

    /// Before a probe is decided: at half its time its packets go out once more, and a probe
    /// that may have missed answers goes again. `None` when it is in flight again; else the
    /// probe to decide now.
    fn probe_goes_on(&mut self, now: Timestamp, mut p: PendingProbe, outbox: &mut Outbox) -> Option<PendingProbe> {
        if let Second::Due(deadline) = p.second {
            if !p.decided() && now < deadline {
                // Half its time: the same probe once more; answers to either count. (A loss
                // of answers noted meanwhile still calls for a whole new probe: `doubt`.)
                if let Some(probe) = self.probe_request_again(p.ds, p.target, p.echo) {
                    let _sent = outbox.push_probe(probe);
                }
                p.second = Second::Sent;
                let id = self.proxy.probes.start(p);
                self.timers.arm(deadline, Timer::Probe(id));
                return None;
            }
        }
        if p.doubt && p.finds_nobody() {
            // It cannot conclude "nobody" from what it may not have heard: again, with a
            // new echo identifier, or, after MAX_REPEATS, as a probe not made.
            match self.probe_request(p.ds, p.target).filter(|_| p.repeats < MAX_REPEATS) {
                Some(probe) if outbox.push_probe(probe) => {
                    self.counters.proxy.add(ProxyEvent::ProbeRepeated);
                    (p.ifindex, p.echo, p.doubt, p.repeats) = (probe.ifindex, probe.echo, false, p.repeats + 1);
                    self.arm_probe_timer(now, p);
                    return None;
                }
                _ => p.heard = Heard::Unsent,
            }
        }
        Some(p)
    }

    /// A probe that could not be made (its packets were not sent, or its answers may have
    /// been lost again and again): what waited for it is done as if no probe could start.
    fn probe_not_made(&mut self, now: Timestamp, p: PendingProbe, slot: Option<Slot>, outbox: &mut Outbox) {
        self.counters.proxy.add(ProxyEvent::ProbeUnsent);
        match p.purpose {
            ProbePurpose::Lapse => {
                if let Some(s) = slot {
                    self.rearm_lapse(now, s);
                }
            }
            ProbePurpose::PoolEntry(r) => self.pool_held_back_unprobed(now, r),
            ProbePurpose::LocalAnswer { answer, request, admitted } => {
                let Some(s) = slot else { return };
                let msg = Message::new_unchecked(&request[..]);
                let req = ClientRequest {
                    now,
                    ds: p.ds,
                    dst: Ipv4Addr::BROADCAST,
                    msg: &msg,
                    admitted,
                    key: p.key,
                    slot: Some(s),
                };
                self.answer_unprobed(&req, s, answer, outbox);
            }
        }
    }

    /// The event log's line for a probe of a client's address (a pool entry's own probes
    /// are not a client's).
    fn probe_event(&mut self, what: ProxyEvent, p: &PendingProbe) {
        if !self.logging_events() || matches!(p.purpose, ProbePurpose::PoolEntry(_)) {
            return;
        }
        let server = self.table.find(&p.key).and_then(|s| self.table.get(s)).and_then(|r| r.server()).map(|s| s.id);
        self.push_event(crate::events::LeaseEvent {
            at: self.event_time,
            kind: crate::events::EventKind::Proxy(what),
            client: p.key.clone(),
            interface: u16::try_from(p.ds).ok(),
            address: Some(p.target),
            server,
            message: None,
        });
    }

    /// The DISCOVER whose expired address could not be offered goes to the server (as it
    /// would have without paper 5.7).
    fn forward_probed_discover(
        &mut self,
        now: Timestamp,
        ds: usize,
        discover: &Message<&[u8]>,
        admitted: Admitted,
        outbox: &mut Outbox,
    ) {
        let key = ClientKey::of(discover);
        let slot = self.table.find(&key);
        let req = ClientRequest { now, ds, dst: Ipv4Addr::BROADCAST, msg: discover, admitted, key, slot };
        let slot = slot.unwrap_or_else(|| self.record_for(req.key.clone(), ClientKind::Dhcp, ds, now));
        self.forward_for(&req, Awaiting::Reply(Some(slot), Expect::Offer), Upstream::CHOSEN, outbox);
    }

    /// The probe found nobody else: answer if the record still allows it.
    #[allow(clippy::too_many_arguments)] // the probe's outcome and the request it answers
    fn answer_probed(
        &mut self,
        now: Timestamp,
        ds: usize,
        slot: Slot,
        answer: ProbeFor,
        request: &[u8],
        admitted: Admitted,
        outbox: &mut Outbox,
    ) {
        let msg = Message::new_unchecked(request);
        let Some(key) = self.table.get(slot).map(|r| r.key.clone()) else { return };
        let req = ClientRequest { now, ds, dst: Ipv4Addr::UNSPECIFIED, msg: &msg, admitted, key, slot: Some(slot) };
        // A pool OFFER is of the address the pool has, whatever the DISCOVER asked for (a
        // server offers another address when the requested one is not available).
        let wanted = if answer == ProbeFor::PoolOffer { None } else { msg.requested_ip() };
        match (answer, self.answerable(&req, slot, ClientKind::Dhcp, wanted)) {
            (ProbeFor::Ack, Answerable::Yes) => {
                if let Some(r) = self.table.get_mut(slot) {
                    // Nobody else answered for the address: the record is the client's again.
                    r.set_confirmed(true);
                }
                self.answer_from_cache(&req, slot, LocalAnswer::Ack { hold: false }, outbox);
            }
            (ProbeFor::OfferOfExpired, Answerable::Expired) => {
                self.answer_from_cache(&req, slot, LocalAnswer::OfferOfExpired, outbox);
            }
            (ProbeFor::PoolOffer, Answerable::Yes) => {
                // Nobody on the pool address: the client's, confirmed for its REQUEST.
                if let Some(r) = self.table.get_mut(slot) {
                    r.set_confirmed(true);
                }
                if let Some(e) = self.pool_entry_of(slot).and_then(|e| self.pool.get_mut(e)) {
                    e.confirmed = true;
                }
                if self.answer_from_cache(&req, slot, LocalAnswer::Offer, outbox) == Verdict::AnsweredLocally {
                    if let Some(r) = self.table.get_mut(slot) {
                        r.set_offer_probed(true);
                    }
                }
            }
            _ => {}
        }
    }

    /// The probed address is in use by someone else.
    fn probe_found_in_use(&mut self, now: Timestamp, p: PendingProbe, slot: Option<Slot>, outbox: &mut Outbox) {
        self.counters.proxy.add(ProxyEvent::ProbeFoundInUse);
        let pool_offer = matches!(p.purpose, ProbePurpose::LocalAnswer { answer: ProbeFor::PoolOffer, .. });
        if let (Some(s), false) = (slot, pool_offer) {
            self.drop_record(s, Removal::AddressInUse);
        }
        match p.purpose {
            // Appendix A.2: the address is in use; release nothing.
            ProbePurpose::Lapse => self.counters.proxy.add(ProxyEvent::LapsedStillInUse),
            ProbePurpose::PoolEntry(_) => {} // decided in probe_due
            // Paper 3.2: "If a host replies, the CDRA should respond with a NAK and remove
            // the address from its database."
            ProbePurpose::LocalAnswer { answer: ProbeFor::Ack, request, .. } => {
                self.send_nak(p.ds, &Message::new_unchecked(&request[..]), outbox);
            }
            // Paper 5.7: the old address is taken; the client's DISCOVER goes to the server.
            ProbePurpose::LocalAnswer { answer: ProbeFor::OfferOfExpired, request, admitted } => {
                self.forward_probed_discover(now, p.ds, &Message::new_unchecked(&request[..]), admitted, outbox);
            }
            // Paper 3.2 applied to a pool address: another host has it. The entry is
            // declined at the server, and the client offered another one.
            ProbePurpose::LocalAnswer { answer: ProbeFor::PoolOffer, request, admitted } => {
                self.pool_offer_refused(now, slot, &request, admitted, p.ds, outbox);
            }
        }
    }
}

/// How a decided probe is counted, as [`Engine::probe_due`] counts it (the event log's
/// `probe_*` line).
fn probe_outcome(heard: Heard, purpose: &ProbePurpose) -> ProxyEvent {
    match (heard, purpose) {
        (Heard::Unsent, _) => ProxyEvent::ProbeUnsent,
        (Heard::Nothing, _) => ProxyEvent::ProbeTimedOut,
        (_, ProbePurpose::PoolEntry(_)) => ProxyEvent::ProbeFoundInUse,
        (Heard::RecordClient, ProbePurpose::LocalAnswer { .. }) => ProxyEvent::ProbeOwnerAnswered,
        (Heard::OtherHost | Heard::IcmpOnly | Heard::RecordClient, _) => ProxyEvent::ProbeFoundInUse,
        (Heard::Client, _) => ProxyEvent::ProbeClientAnswered,
    }
}
