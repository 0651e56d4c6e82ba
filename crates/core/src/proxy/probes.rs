//! The precautions (paper 3.2, 3.3): before we ACK a SELECTING or INIT-REBOOT request from
//! the table, and before we release a lapsed short lease at the server, we find out whether
//! some host uses the address. The I/O layer sends an ARP probe (RFC 5227) and an ICMP echo
//! ([`crate::ProbeRequest`]) and reports answers to [`crate::Engine::handle_probe_answer`];
//! waiting is a [`Timer::Probe`].
//!
//! Who answered decides:
//!
//! | answer | local ACK (3.2) | lapsed lease (2.3, 3.3) |
//! |---|---|---|
//! | ARP from another MAC | NAK, record removed | A.2: record removed, nothing released |
//! | ARP from the client's own MAC | the client itself: ACK at the timeout | the client is still there: record kept, nothing released |
//! | ICMP only (no MAC) | in use, unless the client's MAC answered ARP | the same |
//! | nothing by the timeout | ACK | RELEASE sent, record removed |
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
use crate::outbox::{Outbox, ProbeRequest};
use crate::proxy::requests::Awaiting;
use crate::relay::{Admitted, Targets, Upstream};
use crate::table::{ClientKey, ClientKind, ClientState, Removal, Slot};
use crate::time::Timestamp;
use crate::timers::Timer;
use crate::verdict::{DiscardReason, DropReason, Verdict};

/// Why an address is being probed.
#[derive(Debug, Clone)]
pub(crate) enum ProbePurpose {
    /// A local ACK waits for it (paper 3.2): the client's REQUEST, answered when it ends.
    LocalAck { request: Vec<u8>, admitted: Admitted },
    /// A client's short lease lapsed; a DHCPRELEASE to the server waits for it (paper 3.3).
    Lapse,
}

/// What the answers so far say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heard {
    /// Nothing yet.
    Nothing,
    /// Only an ICMP echo reply (no MAC): someone, maybe the client.
    IcmpOnly,
    /// The client's own MAC answered ARP (an ICMP reply may have come too).
    Client,
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
    key: ClientKey,
    /// The client's MAC (from its request, or from the cached reply for a lapse).
    client_mac: Option<[u8; 6]>,
    heard: Heard,
}

/// The probes in flight, by id, at most `max_pending_probes`.
#[derive(Debug, Default)]
pub(crate) struct Probes {
    pending: HashMap<u64, PendingProbe>,
    by_key: HashMap<ClientKey, u64>,
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

    fn start(&mut self, probe: PendingProbe) -> u64 {
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        self.by_key.insert(probe.key.clone(), id);
        self.pending.insert(id, probe);
        id
    }

    fn take(&mut self, id: u64) -> Option<PendingProbe> {
        let p = self.pending.remove(&id)?;
        if self.by_key.get(&p.key) == Some(&id) {
            self.by_key.remove(&p.key);
        }
        Some(p)
    }

    /// Forget the probe of `key` (its record is gone); its timer finds nothing.
    pub(crate) fn forget(&mut self, key: &ClientKey) {
        if let Some(id) = self.by_key.remove(key) {
            self.pending.remove(&id);
        }
    }

    /// Note an answer from `address` on `ifindex` (`mac`: an ARP answer's sender). Returns
    /// the ids of the probes this answer decided (to fire now).
    fn answered(&mut self, ifindex: u32, address: Ipv4Addr, mac: Option<[u8; 6]>, decided: &mut Vec<u64>) {
        for (id, p) in self.pending.iter_mut().filter(|(_, p)| p.ifindex == ifindex && p.target == address) {
            let before = p.heard;
            p.heard = match (p.heard, mac) {
                (Heard::OtherHost, _) => Heard::OtherHost,
                (_, Some(m)) if Some(m) == p.client_mac => Heard::Client,
                (_, Some(_)) => Heard::OtherHost,
                (Heard::Nothing, None) => Heard::IcmpOnly,
                (h, None) => h,
            };
            // Decided at once: another host (either purpose), or the client itself for a
            // lapse (nothing is to be sent to the client, and a REQUEST may follow).
            let now_decided =
                matches!((&p.purpose, p.heard), (_, Heard::OtherHost) | (ProbePurpose::Lapse, Heard::Client));
            if now_decided && before != p.heard {
                decided.push(*id);
            }
        }
    }
}

impl Engine {
    /// Paper 3.2: "If the CDRA's response would be an ACK, the CDRA should first issue an
    /// ICMP echo request ... on the requested IP address. If a host replies, the CDRA should
    /// respond with a NAK and remove the address from its database." We also send an ARP
    /// probe (RFC 5227), more reliable on the client's own link. The ACK waits; others are
    /// served meanwhile.
    pub(crate) fn start_ack_probe<T: AsRef<[u8]>>(
        &mut self,
        req: &ClientRequest<'_, T>,
        slot: Slot,
        outbox: &mut Outbox,
    ) -> Verdict {
        let (now, ds, msg) = (req.now, req.ds, req.msg);
        let Some(r) = self.table.get(slot) else {
            return self.drop(ds, DropReason::NoServer);
        };
        let (key, target, server) = (r.key.clone(), r.address, r.server);
        if self.proxy.probes.is_probing(&key) {
            // A retransmission while the probe runs: the answer is on its way.
            self.counters.proxy.discarded.add(DiscardReason::RetransmissionDuringProbe);
            return Verdict::Discarded(DiscardReason::RetransmissionDuringProbe);
        }
        let Some(iface) = self.config.downstream.get(ds) else {
            return self.drop(ds, DropReason::UnknownInterface);
        };
        if self.proxy.probes.len() >= self.config.proxy.max_pending_probes {
            // Bounded: rather than ACK unprobed, let the server answer.
            self.counters.proxy.add(ProxyEvent::ProbeRefusedFull);
            let state =
                if msg.server_identifier().is_some() { ClientState::Requesting } else { ClientState::Rebooting };
            let to = match (msg.server_identifier(), self.server_of(server)) {
                // A SELECTING request for our own offer: its server gets its identifier back.
                (Some(_), Some((i, b))) => Upstream { targets: Targets::One(i), server_id: Some(b.id) },
                _ => Upstream::CHOSEN,
            };
            return self.forward_for(req, Awaiting::Reply(slot, state), to, outbox);
        }
        let probe =
            ProbeRequest { ifindex: iface.ifindex, sender_mac: iface.mac, sender_ip: iface.address.addr, target };
        if !outbox.push_probe(probe) {
            return self.drop(ds, DropReason::OutboxFull);
        }
        let ifindex = iface.ifindex;
        let purpose = ProbePurpose::LocalAck { request: msg.as_bytes().to_vec(), admitted: req.admitted };
        let pending = PendingProbe {
            purpose,
            ds,
            ifindex,
            target,
            key,
            client_mac: msg.ethernet_chaddr(),
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
        if self.proxy.probes.len() >= self.config.proxy.max_pending_probes {
            return false;
        }
        // The client's MAC is the one its server answered (the cached reply's chaddr).
        let client_mac = r.reply.as_ref().and_then(|c| <[u8; 6]>::try_from(c.chaddr()).ok());
        let (key, target) = (r.key.clone(), r.address);
        let probe =
            ProbeRequest { ifindex: iface.ifindex, sender_mac: iface.mac, sender_ip: iface.address.addr, target };
        if !outbox.push_probe(probe) {
            return false;
        }
        let ifindex = iface.ifindex;
        let pending =
            PendingProbe { purpose: ProbePurpose::Lapse, ds, ifindex, target, key, client_mac, heard: Heard::Nothing };
        self.arm_probe(now, pending);
        true
    }

    fn arm_probe(&mut self, now: Timestamp, pending: PendingProbe) {
        self.counters.proxy.add(ProxyEvent::ProbeStarted);
        let id = self.proxy.probes.start(pending);
        self.timers.arm(now.saturating_add(self.config.proxy.probe_timeout), Timer::Probe(id));
    }

    /// Some host answered a probe (see [`crate::Engine::handle_probe_answer`]): mark the
    /// probes it decides and fire their timers now.
    pub(crate) fn probe_answered(&mut self, now: Timestamp, ifindex: u32, address: Ipv4Addr, mac: Option<[u8; 6]>) {
        let mut decided = Vec::new();
        self.proxy.probes.answered(ifindex, address, mac, &mut decided);
        for id in decided {
            self.timers.arm(now, Timer::Probe(id));
        }
    }

    /// A probe's timer fired: it was decided by an answer, or it timed out.
    pub(crate) fn probe_due(&mut self, now: Timestamp, id: u64, outbox: &mut Outbox) {
        let Some(p) = self.proxy.probes.take(id) else { return }; // decided and done already
        let slot = self.table.find(&p.key);
        match (p.heard, &p.purpose) {
            (Heard::OtherHost | Heard::IcmpOnly, _) => self.probe_found_in_use(p, slot, outbox),
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
            (Heard::Client, ProbePurpose::LocalAck { .. }) | (Heard::Nothing, _) => {
                if p.heard == Heard::Client {
                    self.counters.proxy.add(ProxyEvent::ProbeClientAnswered);
                }
                self.counters.proxy.add(ProxyEvent::ProbeTimedOut);
                let Some(s) = slot else { return };
                match p.purpose {
                    ProbePurpose::Lapse => self.send_release(s, outbox),
                    ProbePurpose::LocalAck { request, admitted } => {
                        self.ack_probed(now, p.ds, s, &request, admitted, outbox);
                    }
                }
            }
        }
    }

    /// The probe found nobody else: ACK if the record still allows it.
    fn ack_probed(
        &mut self,
        now: Timestamp,
        ds: usize,
        slot: Slot,
        request: &[u8],
        admitted: Admitted,
        outbox: &mut Outbox,
    ) {
        let msg = Message::new_unchecked(request);
        let Some(key) = self.table.get(slot).map(|r| r.key.clone()) else { return };
        let req = ClientRequest { now, ds, dst: Ipv4Addr::UNSPECIFIED, msg: &msg, admitted, key, slot: Some(slot) };
        if self.cache_hit(&req, slot, ClientKind::Dhcp, msg.requested_ip()) {
            self.answer_from_cache(&req, slot, LocalAnswer::Ack { hold: false }, outbox);
        }
    }

    /// The probed address is in use by someone else.
    fn probe_found_in_use(&mut self, p: PendingProbe, slot: Option<Slot>, outbox: &mut Outbox) {
        self.counters.proxy.add(ProxyEvent::ProbeFoundInUse);
        if let Some(s) = slot {
            self.drop_record(s, Removal::AddressInUse);
        }
        match p.purpose {
            // Appendix A.2: the address is in use; release nothing.
            ProbePurpose::Lapse => self.counters.proxy.add(ProxyEvent::LapsedStillInUse),
            // Paper 3.2: "If a host replies, the CDRA should respond with a NAK and remove
            // the address from its database."
            ProbePurpose::LocalAck { request, .. } => {
                self.send_nak(p.ds, &Message::new_unchecked(&request[..]), outbox);
            }
        }
    }
}
