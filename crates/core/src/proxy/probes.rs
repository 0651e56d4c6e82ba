//! The precautions (paper 3.2, 3.3): before we ACK a SELECTING or INIT-REBOOT request from
//! the table, and before we release a lapsed short lease at the server, we find out whether
//! some host uses the address. The I/O layer sends an ARP probe (RFC 5227) and an ICMP echo
//! ([`crate::ProbeRequest`]) and reports answers to [`crate::Engine::handle_probe_answer`];
//! waiting is a [`Timer::Probe`].
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
}

/// The probes in flight, by id, at most `max_pending_probes`, one per address.
#[derive(Debug, Default)]
pub(crate) struct Probes {
    pending: HashMap<u64, PendingProbe>,
    by_key: HashMap<ClientKey, u64>,
    by_target: HashMap<Ipv4Addr, u64>,
    next_id: u64,
}

impl Probes {
    /// Probes in flight.
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
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
        id
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
            _ if matches!(p.heard, Heard::OtherHost | Heard::RecordClient) => p.heard,
            ProbeAnswer::Arp { mac, .. } if Some(mac) == p.client_mac => Heard::Client,
            ProbeAnswer::Arp { mac, .. } if Some(mac) == p.record_mac => Heard::RecordClient,
            ProbeAnswer::Arp { .. } => Heard::OtherHost,
            ProbeAnswer::Echo { .. } if p.heard == Heard::Nothing => Heard::IcmpOnly,
            ProbeAnswer::Echo { .. } => p.heard,
        };
        // Decided at once: another host or the record's client (either purpose), or the
        // client itself for a lapse (nothing is to be sent to the client, and a REQUEST may
        // follow).
        let decided = matches!(
            (&p.purpose, p.heard),
            (_, Heard::OtherHost | Heard::RecordClient) | (ProbePurpose::Lapse, Heard::Client)
        );
        (decided && before != p.heard).then_some(id)
    }
}

impl Engine {
    /// Paper 3.2: "If the CDRA's response would be an ACK, the CDRA should first issue an
    /// ICMP echo request ... on the requested IP address. If a host replies, the CDRA should
    /// respond with a NAK and remove the address from its database." We also send an ARP
    /// probe (RFC 5227), more reliable on the client's own link. The answer (`answer`: that
    /// ACK, or paper 5.7's OFFER of an expired address) waits; others are served meanwhile.
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
        let (key, target, server) = (r.key.clone(), r.address, r.server);
        let record_mac = r.reply.as_ref().and_then(|c| <[u8; 6]>::try_from(c.chaddr()).ok());
        if self.proxy.probes.is_probing(&key) {
            // A retransmission while the probe runs: the answer is on its way.
            self.counters.proxy.discarded.add(DiscardReason::RetransmissionDuringProbe);
            return Verdict::Discarded(DiscardReason::RetransmissionDuringProbe);
        }
        let Some(iface) = self.config.downstream.get(ds) else {
            return self.drop(ds, DropReason::UnknownInterface);
        };
        let busy = self.proxy.probes.is_probing_address(target);
        if busy || self.proxy.probes.len() >= self.config.proxy.max_pending_probes {
            // Bounded (and one probe per address): rather than answer unprobed, let the
            // server answer.
            self.counters.proxy.add(if busy { ProxyEvent::ProbeRefusedBusy } else { ProxyEvent::ProbeRefusedFull });
            match answer {
                ProbeFor::OfferOfExpired => {
                    return self.forward_for(req, Awaiting::Reply(Some(slot), Expect::Offer), Upstream::CHOSEN, outbox)
                }
                // Never give a pool address unprobed: the client asks again.
                ProbeFor::PoolOffer => {
                    self.pool_client_gone(slot, Removal::ReturnedToPool);
                    return self.drop(ds, DropReason::NoServer);
                }
                ProbeFor::Ack => {}
            }
            let state =
                if msg.server_identifier().is_some() { ClientState::Requesting } else { ClientState::Rebooting };
            let to = match (msg.server_identifier(), self.server_of(server)) {
                // A SELECTING request for our own offer: its server gets its identifier back.
                (Some(_), Some((i, b))) => Upstream { targets: Targets::One(i), server_id: Some(b.id) },
                _ => Upstream::CHOSEN,
            };
            return self.forward_for(req, Awaiting::Reply(Some(slot), Expect::Ack(state)), to, outbox);
        }
        let (ifindex, sender_mac, sender_ip) = (iface.ifindex, iface.mac, iface.address.addr);
        let echo = self.random_echo_id();
        let probe = ProbeRequest { ifindex, sender_mac, sender_ip, target, echo };
        if !outbox.push_probe(probe) {
            return self.drop(ds, DropReason::OutboxFull);
        }
        let purpose = ProbePurpose::LocalAnswer { answer, request: msg.as_bytes().to_vec(), admitted: req.admitted };
        let pending = PendingProbe {
            purpose,
            ds,
            ifindex,
            target,
            echo,
            key,
            client_mac: msg.ethernet_chaddr(),
            record_mac,
            heard: Heard::Nothing,
        };
        self.arm_probe(now, pending);
        Verdict::AwaitingProbe
    }

    /// Paper 3.3: before a lapsed lease is released, probe its address. Returns false when
    /// no probe could be started now (`max_pending_probes` in flight).
    pub(crate) fn start_lapse_probe(&mut self, now: Timestamp, slot: Slot, outbox: &mut Outbox) -> bool {
        let Some(r) = self.table.get(slot) else { return true };
        let ds = usize::from(r.downstream);
        let Some(iface) = self.config.downstream.get(ds) else { return true };
        if self.proxy.probes.len() >= self.config.proxy.max_pending_probes
            || self.proxy.probes.is_probing_address(r.address)
        {
            return false;
        }
        // The client's MAC is the one its server answered (the cached reply's chaddr).
        let client_mac = r.reply.as_ref().and_then(|c| <[u8; 6]>::try_from(c.chaddr()).ok());
        let (key, target) = (r.key.clone(), r.address);
        let (ifindex, sender_mac, sender_ip) = (iface.ifindex, iface.mac, iface.address.addr);
        let echo = self.random_echo_id();
        if !outbox.push_probe(ProbeRequest { ifindex, sender_mac, sender_ip, target, echo }) {
            return false;
        }
        let pending = PendingProbe {
            purpose: ProbePurpose::Lapse,
            ds,
            ifindex,
            target,
            echo,
            key,
            client_mac,
            record_mac: client_mac,
            heard: Heard::Nothing,
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
        let (ifindex, sender_mac, sender_ip) = (iface.ifindex, iface.mac, iface.address.addr);
        let echo = self.random_echo_id();
        if !outbox.push_probe(ProbeRequest { ifindex, sender_mac, sender_ip, target, echo }) {
            return false;
        }
        // No client of ours is meant to be there: any answer means in use.
        let pending = PendingProbe {
            purpose: ProbePurpose::PoolEntry(r),
            ds,
            ifindex,
            target,
            echo,
            key,
            client_mac: None,
            record_mac: None,
            heard: Heard::Nothing,
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
        let id = self.proxy.probes.start(pending);
        self.timers.arm(now.saturating_add(self.config.proxy.probe_timeout), Timer::Probe(id));
    }

    /// Some host answered a probe (see [`crate::Engine::handle_probe_answer`]): mark the
    /// probe it concerns, and fire its timer now if the answer decides it.
    pub(crate) fn probe_answered(&mut self, now: Timestamp, answer: ProbeAnswer) {
        if let Some(id) = self.proxy.probes.answered(answer) {
            self.timers.arm(now, Timer::Probe(id));
        }
    }

    /// A probe's timer fired: it was decided by an answer, or it timed out.
    pub(crate) fn probe_due(&mut self, now: Timestamp, id: u64, outbox: &mut Outbox) {
        let Some(p) = self.proxy.probes.take(id) else { return }; // decided and done already
        self.probe_event(probe_outcome(p.heard, &p.purpose), &p);
        let slot = self.table.find(&p.key);
        match (p.heard, &p.purpose) {
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

    /// The event log's line for a probe of a client's address (a pool entry's own probes
    /// are not a client's).
    fn probe_event(&mut self, what: ProxyEvent, p: &PendingProbe) {
        if !self.logging_events() || matches!(p.purpose, ProbePurpose::PoolEntry(_)) {
            return;
        }
        let server = self.table.find(&p.key).and_then(|s| self.table.get(s)).and_then(|r| r.server).map(|s| s.id);
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
                    r.confirmed = true;
                }
                self.answer_from_cache(&req, slot, LocalAnswer::Ack { hold: false }, outbox);
            }
            (ProbeFor::OfferOfExpired, Answerable::Expired) => {
                self.answer_from_cache(&req, slot, LocalAnswer::OfferOfExpired, outbox);
            }
            (ProbeFor::PoolOffer, Answerable::Yes) => {
                // Nobody on the pool address: the client's, confirmed for its REQUEST.
                if let Some(r) = self.table.get_mut(slot) {
                    r.confirmed = true;
                }
                if let Some(e) = self.pool_entry_of(slot).and_then(|e| self.pool.get_mut(e)) {
                    e.confirmed = true;
                }
                if self.answer_from_cache(&req, slot, LocalAnswer::Offer, outbox) == Verdict::AnsweredLocally {
                    if let Some(r) = self.table.get_mut(slot) {
                        r.offer_probed = true;
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
        (Heard::Nothing, _) => ProxyEvent::ProbeTimedOut,
        (_, ProbePurpose::PoolEntry(_)) => ProxyEvent::ProbeFoundInUse,
        (Heard::RecordClient, ProbePurpose::LocalAnswer { .. }) => ProxyEvent::ProbeOwnerAnswered,
        (Heard::OtherHost | Heard::IcmpOnly | Heard::RecordClient, _) => ProxyEvent::ProbeFoundInUse,
        (Heard::Client, _) => ProxyEvent::ProbeClientAnswered,
    }
}
