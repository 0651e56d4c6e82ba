//! The engine's output: datagrams to send, each with where it goes. The outbox is a
//! fixed pool of preallocated buffers, reused batch after batch, so producing a reply
//! allocates nothing; it is bounded (a full outbox drops with a counted reason).

use core::net::Ipv4Addr;

/// DHCP server port (RFC 2131 section 4.1).
pub const SERVER_PORT: u16 = 67;
/// DHCP client port.
pub const CLIENT_PORT: u16 = 68;
/// Size of each outbox buffer: larger than any DHCP message we accept to relay.
pub const OUT_BUFFER_SIZE: usize = 4096;

/// Where a datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// UDP to `addr`:67 (a server), routed by the kernel (in the servers' VRF), from our
    /// port 67, or from `[relay] source_port` when `relay_port` is set.
    Server {
        /// Server address.
        addr: Ipv4Addr,
        /// RFC 8357: the request carries the relay source port sub-option we added, so it
        /// leaves from the configured source port (where the server will answer).
        relay_port: bool,
    },
    /// UDP unicast to a client that has an address: `dst`:68 from `src`:67 out of `ifindex`.
    ClientUnicast {
        /// Egress interface.
        ifindex: u32,
        /// Source address (the downstream address the client knows).
        src: Ipv4Addr,
        /// The client's address (ciaddr).
        dst: Ipv4Addr,
    },
    /// A link-layer send on `ifindex` to `mac` (a client MAC or ff:ff:ff:ff:ff:ff), with an
    /// IPv4/UDP header `src`:67 -> `dst`:68 built by the sender. Needs no neighbour entry.
    ClientLink {
        /// Egress interface.
        ifindex: u32,
        /// Destination MAC.
        mac: [u8; 6],
        /// IPv4 source.
        src: Ipv4Addr,
        /// IPv4 destination (yiaddr, or 255.255.255.255).
        dst: Ipv4Addr,
    },
}

/// The broadcast MAC address.
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];

/// One datagram to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Where it goes.
    pub destination: Destination,
    buf: Box<[u8]>,
    len: usize,
}

impl Outgoing {
    fn new() -> Self {
        Outgoing {
            destination: Destination::Server { addr: Ipv4Addr::UNSPECIFIED, relay_port: false },
            buf: vec![0u8; OUT_BUFFER_SIZE].into_boxed_slice(),
            len: 0,
        }
    }
    /// The DHCP payload.
    pub fn payload(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
    /// The whole buffer, for writing.
    pub(crate) fn buffer_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
    /// Set the payload length.
    pub(crate) fn set_len(&mut self, len: usize) {
        self.len = len.min(self.buf.len());
    }
    /// Payload, mutable.
    pub(crate) fn payload_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        self.buf.get_mut(..len).unwrap_or(&mut [])
    }
}

/// A request to find out whether some host already uses an address (paper 3.2, 3.3):
/// the I/O layer sends an ARP probe (RFC 5227: sender IP 0.0.0.0) on the link when
/// `sender_mac` is known, an ICMP echo carrying `echo` when `icmp` says so, and reports any
/// answer with [`crate::Engine::handle_probe_answer`]; a probe none of whose packets it
/// could send, with [`crate::Engine::handle_probe_unsent`]. Waiting and the timeout are the
/// engine's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeRequest {
    /// The link to probe on.
    pub ifindex: u32,
    /// Our MAC on that link (ARP sender hardware address), when it has one: then an ARP
    /// probe is sent.
    pub sender_mac: Option<[u8; 6]>,
    /// Our address on that link (source of the ICMP echo).
    pub sender_ip: Ipv4Addr,
    /// The address in question.
    pub target: Ipv4Addr,
    /// Send an ICMP echo too (`[proxy] icmp_probe`, or a link without a MAC address).
    pub icmp: bool,
    /// The ICMP echo's identifier and sequence number, drawn at random for this probe: an
    /// echo reply counts only if it carries them back (RFC 792: "the identifier and sequence
    /// number ... are returned in the echo reply"), so a host that did not see the echo
    /// cannot answer it. It also tells this probe from an earlier one of the same address.
    pub echo: EchoId,
}

impl ProbeRequest {
    /// Sends an ARP probe.
    pub fn arp(&self) -> bool {
        self.sender_mac.is_some()
    }
}

/// An ICMP echo's identifier and sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EchoId {
    /// Identifier.
    pub ident: u16,
    /// Sequence number.
    pub seq: u16,
}

/// An answer to a probe, as the I/O layer heard it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeAnswer {
    /// An ARP packet (a reply, or a request or announcement) received on `ifindex` whose
    /// sender claims `address`, from hardware address `mac`.
    Arp {
        /// Interface it arrived on.
        ifindex: u32,
        /// The sender protocol address.
        address: Ipv4Addr,
        /// The sender hardware address.
        mac: [u8; 6],
    },
    /// An ICMP echo reply from `address` carrying `echo`.
    Echo {
        /// Its source address.
        address: Ipv4Addr,
        /// Its identifier and sequence number.
        echo: EchoId,
    },
}

/// A datagram the engine wrote into the outbox (an index valid until [`Outbox::clear`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Emitted(usize);

/// A bounded pool of outgoing datagrams, plus the probes to start.
#[derive(Debug)]
pub struct Outbox {
    slots: Vec<Outgoing>,
    used: usize,
    probes: Vec<ProbeRequest>,
}

impl Outbox {
    /// An outbox holding at most `capacity` datagrams between two [`Outbox::clear`]s.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Outbox {
            slots: (0..capacity).map(|_| Outgoing::new()).collect(),
            used: 0,
            probes: Vec::with_capacity(capacity),
        }
    }
    /// Datagrams waiting.
    pub fn len(&self) -> usize {
        self.used
    }
    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }
    /// Free slots left.
    pub fn remaining(&self) -> usize {
        self.slots.len() - self.used
    }
    /// The waiting datagrams, in the order they were produced.
    pub fn iter(&self) -> impl Iterator<Item = &Outgoing> {
        self.slots.iter().take(self.used)
    }
    /// Forget every waiting datagram and probe (after they were sent).
    pub fn clear(&mut self) {
        self.used = 0;
        self.probes.clear();
    }
    /// Room left for probes.
    pub fn probes_remaining(&self) -> usize {
        self.slots.len().saturating_sub(self.probes.len())
    }
    /// Probes to start.
    pub fn probes(&self) -> &[ProbeRequest] {
        &self.probes
    }
    /// Queue a probe; false when the outbox's probe list is full.
    pub(crate) fn push_probe(&mut self, p: ProbeRequest) -> bool {
        if self.probes.len() >= self.slots.len() {
            return false;
        }
        self.probes.push(p);
        true
    }
    /// Take a free slot, or `None` when the outbox is full. The [`Emitted`] handle names
    /// that datagram until the next [`Outbox::clear`], so whoever wrote it can patch it later.
    pub(crate) fn emit(&mut self) -> Option<(Emitted, &mut Outgoing)> {
        let at = self.used;
        let slot = self.slots.get_mut(at)?;
        self.used += 1;
        slot.len = 0;
        Some((Emitted(at), slot))
    }
    /// The datagram `e`, to patch it.
    pub(crate) fn get_mut(&mut self, e: Emitted) -> Option<&mut Outgoing> {
        self.slots.get_mut(e.0).filter(|_| e.0 < self.used)
    }
    /// Give back the most recently taken slot (when filling it failed).
    pub(crate) fn unwind(&mut self) {
        self.used = self.used.saturating_sub(1);
    }
    /// Append a copy of the most recent datagram with another destination.
    pub(crate) fn duplicate_last(&mut self, destination: Destination) -> bool {
        if self.used == 0 || self.used >= self.slots.len() {
            return false;
        }
        let (done, rest) = self.slots.split_at_mut(self.used);
        let (Some(src), Some(dst)) = (done.last(), rest.first_mut()) else { return false };
        let len = src.len;
        match (dst.buf.get_mut(..len), src.buf.get(..len)) {
            (Some(d), Some(s)) => d.copy_from_slice(s),
            _ => return false,
        }
        dst.len = len;
        dst.destination = destination;
        self.used += 1;
        true
    }
}

/// Replies held back until a moment (see the proxy's `renew_reply_delay`): a fixed pool of
/// buffers, in the order they were held (every hold uses the same delay, so the oldest is
/// always due first). Full: the reply is sent at once instead.
#[derive(Debug)]
pub(crate) struct HeldReplies {
    slots: Vec<Outgoing>,
    due: std::collections::VecDeque<(crate::time::Timestamp, usize)>,
    free: Vec<usize>,
    /// A [`crate::timers::Timer::HeldReply`] is filed (one at a time: every hold uses the
    /// same delay, so the oldest is always due first).
    timer_filed: bool,
}

impl HeldReplies {
    /// A pool of `capacity` buffers (allocated up front).
    pub(crate) fn new(capacity: usize) -> Self {
        HeldReplies {
            slots: (0..capacity).map(|_| Outgoing::new()).collect(),
            due: std::collections::VecDeque::with_capacity(capacity),
            free: (0..capacity).rev().collect(),
            timer_filed: false,
        }
    }

    /// Move the datagram `e` (the outbox's most recent one) here until `due`. False (and
    /// the datagram stays in the outbox, to be sent now) when the pool is full.
    pub(crate) fn hold(&mut self, due: crate::time::Timestamp, outbox: &mut Outbox, e: Emitted) -> bool {
        if e.0 + 1 != outbox.used {
            return false;
        }
        let Some(i) = self.free.pop() else { return false };
        let (Some(src), Some(dst)) = (outbox.get_mut(e), self.slots.get_mut(i)) else {
            self.free.push(i);
            return false;
        };
        let len = src.len;
        match (dst.buf.get_mut(..len), src.buf.get(..len)) {
            (Some(d), Some(s)) => d.copy_from_slice(s),
            _ => {
                self.free.push(i);
                return false;
            }
        }
        dst.len = len;
        dst.destination = src.destination;
        outbox.unwind();
        self.due.push_back((due, i));
        true
    }

    /// Replies held.
    pub(crate) fn len(&self) -> usize {
        self.due.len()
    }

    /// When the oldest held reply is due.
    pub(crate) fn next_due(&self) -> Option<crate::time::Timestamp> {
        self.due.front().map(|(t, _)| *t)
    }

    /// The deadline a timer must be filed for, if none is filed yet (call after `hold`, and
    /// after the timer fired and `release` ran).
    pub(crate) fn timer_to_file(&mut self) -> Option<crate::time::Timestamp> {
        if self.timer_filed {
            return None;
        }
        let due = self.next_due()?;
        self.timer_filed = true;
        Some(due)
    }

    /// The filed timer fired.
    pub(crate) fn timer_fired(&mut self) {
        self.timer_filed = false;
    }

    /// Put every reply due at `now` into the outbox, as many as it has room for; true when
    /// none that is due is left behind.
    pub(crate) fn release(&mut self, now: crate::time::Timestamp, outbox: &mut Outbox) -> bool {
        while let Some(&(t, i)) = self.due.front() {
            if t > now {
                break;
            }
            let Some(src) = self.slots.get(i) else { break };
            let (destination, len) = (src.destination, src.len);
            let Some((_, dst)) = outbox.emit() else { return false };
            if let (Some(d), Some(s)) = (dst.buf.get_mut(..len), src.buf.get(..len)) {
                d.copy_from_slice(s);
                dst.len = len;
                dst.destination = destination;
            } else {
                outbox.unwind(); // cannot happen: both buffers are OUT_BUFFER_SIZE
            }
            self.due.pop_front();
            self.free.push(i);
        }
        true
    }
}
