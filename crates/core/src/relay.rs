//! Relay-agent behaviour: RFC 1542 section 4, RFC 2131 section 4.1, RFC 3046.
//!
//! Requests from a downstream link go to the servers with giaddr, hops and option 82 set
//! as the RFCs say; replies addressed to one of our giaddrs go back to the client with
//! option 82 removed, delivered as RFC 2131 4.1 prescribes.

use core::net::Ipv4Addr;

use cdra_wire::options::OptionCode;
use cdra_wire::relay_agent::{write_relay_agent_info, SubOption, SubOptionCode, VssType, FLAG_UNICAST};
use cdra_wire::rewrite::rewrite;
use cdra_wire::{Message, MessageType};

use crate::config::{Downstream, Option82Config, Option82Policy};
use crate::counters::MessageKind;
use crate::engine::Engine;
use crate::mode::ServerIdentity;
use crate::outbox::{Destination, Emitted, Outbox, BROADCAST_MAC};
use crate::servers::ServerSet;
use crate::table::{ClientState, ParamList};
use crate::time::Timestamp;
use crate::transactions::{Expect, Filed, Mismatch, Party, RequestId, Transaction};
use crate::verdict::{DropReason, Verdict};

/// Does this request normally get an answer from the server at `server`, whose identifier
/// option 54 will read as `sid` by the time the request reaches it (a proxy puts the real
/// identifier back)? Used for liveness: RELEASE and DECLINE get none, and a REQUEST naming
/// another server (option 54) is ignored by the others (RFC 2131 4.3.2).
fn expects_reply<T: AsRef<[u8]>>(msg: &Message<T>, sid: Ipv4Addr, server: Ipv4Addr) -> bool {
    match msg.message_type() {
        None => true, // BOOTREQUEST
        Some(MessageType::Discover) | Some(MessageType::Inform) => true,
        Some(MessageType::Request) => msg.server_identifier().is_none_or(|id| id == server || id == sid),
        Some(_) => false,
    }
}

/// RFC 2131 section 4.1 (server side, which a relay applies when it delivers the reply on
/// the client's link) and RFC 1542 section 5.4:
/// - "In all cases, when 'giaddr' is zero, the server broadcasts any DHCPNAK messages to
///   0xffffffff" — and RFC 2131 4.3.2 asks servers to set the broadcast bit in NAKs sent
///   through a relay "because the client may not have a correct network address or subnet
///   mask"; we broadcast every NAK, whatever its flag (Kea's NAKs have it clear).
/// - "If the 'giaddr' field is zero and the 'ciaddr' field is nonzero, then the server
///   unicasts DHCPOFFER and DHCPACK messages to the address in 'ciaddr'."
/// - "If 'giaddr' is zero and 'ciaddr' is zero, and the broadcast bit is set, then the
///   server broadcasts DHCPOFFER and DHCPACK messages to 0xffffffff. If the broadcast bit
///   is not set and 'giaddr' is zero and 'ciaddr' is zero, then the server unicasts
///   DHCPOFFER and DHCPACK messages to the client's hardware address and 'yiaddr'
///   address."
///
/// A client whose chaddr is not an Ethernet address cannot be reached by a link-layer
/// unicast, so it gets a broadcast; so does one with ciaddr set when the source `src` is
/// not ours (a spoofing relay answers as the server: the kernel would refuse to route a
/// datagram from a foreign source, so every answer goes out at the link layer).
pub fn reply_destination<T: AsRef<[u8]>>(msg: &Message<T>, ds: &Downstream, src: Ipv4Addr) -> Destination {
    let broadcast = Destination::ClientLink { ifindex: ds.ifindex, mac: BROADCAST_MAC, src, dst: Ipv4Addr::BROADCAST };
    if msg.message_type() == Some(MessageType::Nak) {
        return broadcast;
    }
    if !msg.ciaddr().is_unspecified() {
        // The client is on this link (we deliver on the interface owning giaddr, or answer
        // it directly): its chaddr is the MAC that owns ciaddr, so the unicast goes out at
        // the link layer, with no neighbour lookup (the kernel's neighbour table is shared
        // and bounded; a relay serving thousands of renewing clients must not depend on it).
        let src_is_ours = ds.all_addresses.contains(&src);
        return match msg.ethernet_chaddr() {
            Some(mac) => Destination::ClientLink { ifindex: ds.ifindex, mac, src, dst: msg.ciaddr() },
            None if src_is_ours => Destination::ClientUnicast { ifindex: ds.ifindex, src, dst: msg.ciaddr() },
            None => broadcast,
        };
    }
    if msg.broadcast() || msg.yiaddr().is_unspecified() {
        return broadcast;
    }
    match msg.ethernet_chaddr() {
        Some(mac) => Destination::ClientLink { ifindex: ds.ifindex, mac, src, dst: msg.yiaddr() },
        None => broadcast,
    }
}

/// Which servers a forwarded request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Targets {
    /// As the selection policy says ([`crate::servers::ServerPool::choose`]).
    Chosen,
    /// One server, by index (the client's own server).
    One(usize),
}

/// Where a forwarded request goes, and the server identifier it gets back (paper 5.1).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Upstream {
    pub(crate) targets: Targets,
    pub(crate) server_id: Option<Ipv4Addr>,
}

impl Upstream {
    /// As the selection policy says, unchanged.
    pub(crate) const CHOSEN: Upstream = Upstream { targets: Targets::Chosen, server_id: None };
}

/// Whether a forwarded request is filed to match its reply ([`crate::transactions`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Track {
    /// No reply will come to us: a DECLINE or RELEASE (RFC 2131 4.3.3, 4.3.4: the server
    /// sends none), or a request another relay sent us (its reply goes to that relay's
    /// giaddr, RFC 1542 4.1.1).
    Nothing,
    /// File it: its reply is believed only if it matches.
    Reply {
        /// What kind of reply it calls for.
        expect: Expect,
        /// Whom it is for.
        party: Party,
        /// Its option 55.
        params: ParamList,
    },
}

impl Track {
    /// How a plain relay files `msg` (no record; a reply of any kind is passed on).
    pub(crate) fn relayed<T: AsRef<[u8]>>(msg: &Message<T>, admitted: Admitted) -> Track {
        let expect = match msg.message_type() {
            _ if !admitted.first_hop => return Track::Nothing,
            None => Expect::BootReply,
            Some(MessageType::Discover) => Expect::Offer,
            Some(MessageType::Inform) => Expect::Inform,
            Some(MessageType::Decline) | Some(MessageType::Release) => return Track::Nothing,
            Some(_) => Expect::Ack(ClientState::Requesting),
        };
        Track::Reply { expect, party: Party::Nobody, params: ParamList::EMPTY }
    }
}

/// A server reply that passed every check: who sent it, for which link, and the request
/// it answers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AcceptedReply {
    /// Index of the server in the pool.
    pub(crate) server: usize,
    /// The downstream link its giaddr names.
    pub(crate) ds: usize,
    /// The request it answers, as it names it.
    pub(crate) id: RequestId,
    /// That request.
    pub(crate) tx: Transaction,
}

/// A request written for the servers ([`Engine::write_forwarded`]).
struct Forwarded {
    /// Its length.
    len: usize,
    /// It carries the relay source port sub-option: it leaves from that port.
    relay_port: bool,
}

/// What the admission checks found out about a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admitted {
    /// giaddr was 0: we are the first-hop relay.
    pub first_hop: bool,
    /// The request already carries option 82.
    pub has_option82: bool,
    /// It reached us as a unicast (not a broadcast on its link): RFC 5010's "U" flag.
    pub unicast: bool,
}

impl Admitted {
    /// A request of our own (pool upkeep, a proxy's migration): we are its first hop.
    pub(crate) const OURS: Admitted = Admitted { first_hop: true, has_option82: false, unicast: false };
}

/// What our option 82 says of one request: built by [`agent_info`], written by
/// [`with_option82`].
struct AgentInfo<'a> {
    subs: [SubOption<'a>; 8],
    n: usize,
}

impl<'a> AgentInfo<'a> {
    fn add(&mut self, code: u8, data: &'a [u8]) {
        if let Some(slot) = self.subs.get_mut(self.n) {
            *slot = SubOption { code, data };
            self.n += 1;
        }
    }
    fn sub_options(&self) -> &[SubOption<'a>] {
        self.subs.get(..self.n).unwrap_or(&[])
    }
    fn has(&self, code: u8) -> bool {
        self.sub_options().iter().any(|s| s.code == code)
    }
}

/// The bytes our sub-options point at (the addresses, the flags, the VSS identifier).
struct AgentBytes {
    link: [u8; 4],
    sid: [u8; 4],
    flags: [u8; 1],
    vss: [u8; 1 + 255],
    vss_len: usize,
}

impl AgentBytes {
    fn of(o82: &Option82Config, iface: &Downstream, admitted: Admitted) -> Self {
        let mut vss = [0u8; 256];
        // RFC 6607 3.1: type 0 "NVT ASCII VPN identifier" (the VRF's name), or type 255
        // "Global, default VPN" with no identifier.
        let vss_len = match iface.vrf.as_deref().map(str::as_bytes) {
            Some(name) if o82.vss && !name.is_empty() && name.len() < vss.len() => {
                vss[0] = VssType::NVT_ASCII;
                if let Some(d) = vss.get_mut(1..1 + name.len()) {
                    d.copy_from_slice(name);
                }
                1 + name.len()
            }
            _ => {
                vss[0] = VssType::GLOBAL;
                1
            }
        };
        AgentBytes {
            link: iface.address.addr.octets(),
            sid: iface.address.addr.octets(),
            flags: [if admitted.unicast { FLAG_UNICAST } else { 0 }],
            vss,
            vss_len,
        }
    }
}

/// Our option 82 for a request from `iface`, sub-options in the order of their codes:
/// - 1 Agent Circuit ID, always (RFC 3046 2.0: "the relay agent ... MUST include" one of 1
///   or 2 when it adds the option);
/// - 2 Agent Remote ID, the link's or `option82.remote_id`;
/// - 5 Link Selection (RFC 3527 3: "the IP address ... of the subnet on which the client
///   is attached"; we send the interface's own address, as ISC dhcrelay and SONiC do: any
///   address of the subnet selects it), with `link_selection` and always with a source
///   address (giaddr then names another network);
/// - 10 Relay Agent Flags (RFC 5010 2.1), with `flags`;
/// - 11 Server Identifier Override (RFC 5107), with `server_id_override`;
/// - 19 Relay Source Port (RFC 8357 5.1, "Len: 0" from the first relay), with a source
///   port;
/// - 151 VSS and 152 VSS Control (RFC 6607 3.1, 3.2: a relay that adds VSS "MUST also
///   include" the control sub-option, which a server that used the VSS removes), with
///   `vss`.
fn agent_info<'a>(
    o82: &'a Option82Config,
    iface: &'a Downstream,
    relay_port: bool,
    b: &'a AgentBytes,
) -> AgentInfo<'a> {
    let mut info = AgentInfo { subs: [SubOption { code: 0, data: &[] }; 8], n: 0 };
    info.add(SubOptionCode::CIRCUIT_ID, &iface.circuit_id[..]);
    if let Some(rid) = iface.remote_id.as_deref().or(o82.remote_id.as_deref()) {
        info.add(SubOptionCode::REMOTE_ID, rid);
    }
    if o82.link_selection || iface.source_address.is_some() {
        info.add(SubOptionCode::LINK_SELECTION, &b.link[..]);
    }
    if o82.flags {
        info.add(SubOptionCode::FLAGS, &b.flags[..]);
    }
    if o82.server_id_override {
        info.add(SubOptionCode::SERVER_ID_OVERRIDE, &b.sid[..]);
    }
    if relay_port {
        info.add(SubOptionCode::RELAY_PORT, &[]);
    }
    if o82.vss {
        info.add(SubOptionCode::VSS, b.vss.get(..b.vss_len).unwrap_or(&[]));
        info.add(SubOptionCode::VSS_CONTROL, &[]);
    }
    info
}

/// Write `msg` into `buf` with our option 82 (RFC 3046 2.1, last in the options field),
/// replacing the client's when it had one; the length, or `None` when it does not fit.
fn with_option82<T: AsRef<[u8]>>(
    info: &AgentInfo<'_>,
    msg: &Message<T>,
    has_option82: bool,
    buf: &mut [u8],
) -> Option<usize> {
    let remove: &[u8] = if has_option82 { &[OptionCode::RELAY_AGENT_INFO] } else { &[] };
    rewrite(msg, buf, remove, |w| write_relay_agent_info(w, info.sub_options())).ok()
}

impl Engine {
    /// A BOOTREQUEST from downstream interface `ds`: check it, set giaddr/hops/option 82,
    /// and send it to the servers.
    pub(crate) fn relay_request<T: AsRef<[u8]>>(
        &mut self,
        now: Timestamp,
        ds: usize,
        dst: Ipv4Addr,
        msg: &Message<T>,
        outbox: &mut Outbox,
    ) -> Verdict {
        let admitted = match self.admit_request(ds, dst, msg) {
            Ok(a) => a,
            Err(reason) => return self.drop(ds, reason),
        };
        // A plain relay knows no clients: every request spends the interface's budget.
        if !self.spend_interface_budget(now, ds) {
            return self.drop(ds, DropReason::InterfaceRateLimited);
        }
        let track = Track::relayed(msg, admitted);
        self.forward_request(now, ds, msg, admitted, Upstream::CHOSEN, track, outbox)
    }

    /// Take one request from downstream interface `ds`'s budget for new clients
    /// ([`crate::limits`]); false when it is spent.
    pub(crate) fn spend_interface_budget(&mut self, now: Timestamp, ds: usize) -> bool {
        let rate = self.config.limits.interface_rate;
        self.interface_budgets.get_mut(ds).is_none_or(|b| b.take(now, rate))
    }

    /// The checks every request from downstream passes before anything else is done with
    /// it (relay or proxy): hop limit, loops, option 82 trust and policy. `dst` is where
    /// it was sent (a broadcast, or one of our addresses).
    pub(crate) fn admit_request<T: AsRef<[u8]>>(
        &self,
        ds: usize,
        dst: Ipv4Addr,
        msg: &Message<T>,
    ) -> Result<Admitted, DropReason> {
        let Some(iface) = self.config.downstream.get(ds) else {
            return Err(DropReason::UnknownInterface);
        };
        // RFC 1542 4.1.1: the relay "MUST silently discard BOOTREQUEST messages whose
        // 'hops' field exceeds the value 16"; the configured limit (<= 16) applies to the
        // value after our increment.
        if u16::from(msg.hops()) + 1 > u16::from(self.config.max_hops) {
            return Err(DropReason::HopLimit);
        }
        let giaddr = msg.giaddr();
        // A request carrying one of our own addresses as giaddr has come back to us.
        if !giaddr.is_unspecified() && self.is_our_address(giaddr) {
            return Err(DropReason::GiaddrIsOurs);
        }
        let first_hop = giaddr.is_unspecified();
        let has_option82 = msg.relay_agent_info().is_some();
        if has_option82 {
            // RFC 3046 2.1: "Relay agents receiving a DHCP packet from an untrusted circuit
            // with giaddr set to zero (indicating that they are the first-hop router) but
            // with a Relay Agent Information option already present in the packet SHALL
            // discard the packet and increment an error count."
            if first_hop && !iface.trusted {
                return Err(DropReason::UntrustedOption82);
            }
            if self.config.option82.policy == Option82Policy::Drop {
                return Err(DropReason::Option82Policy);
            }
        }
        let unicast = !crate::proxy::requests::is_broadcast(dst, &iface.address);
        Ok(Admitted { first_hop, has_option82, unicast })
    }

    /// Send an admitted request to `to`'s servers, written as [`Engine::write_forwarded`]
    /// says, and file it to match its reply (`track`).
    #[allow(clippy::too_many_arguments)] // the request, its context, and where it goes
    pub(crate) fn forward_request<T: AsRef<[u8]>>(
        &mut self,
        now: Timestamp,
        ds: usize,
        msg: &Message<T>,
        admitted: Admitted,
        to: Upstream,
        track: Track,
        outbox: &mut Outbox,
    ) -> Verdict {
        let id = RequestId::of(msg, ds);
        let chosen = match to.targets {
            Targets::Chosen => self.chosen_servers(now, msg, &id, &track, to.server_id),
            Targets::One(i) => {
                let mut set = ServerSet::default();
                set.insert(i);
                set
            }
        };
        let address_of = |pool: &crate::servers::ServerPool, i: usize| pool.servers().get(i).map(|s| s.addr);
        let Some((first, first_addr)) = chosen.iter().find_map(|i| Some((i, address_of(&self.servers, i)?))) else {
            return self.drop(ds, DropReason::NoServer);
        };
        if outbox.remaining() < chosen.len() {
            return self.drop(ds, DropReason::OutboxFull);
        }
        let Some((_, out)) = outbox.emit() else {
            return self.drop(ds, DropReason::OutboxFull);
        };
        let relay_port = match self.write_forwarded(ds, msg, admitted, to.server_id, out.buffer_mut()) {
            Ok(f) => {
                out.set_len(f.len);
                f.relay_port
            }
            Err(reason) => {
                outbox.unwind();
                return self.drop(ds, reason);
            }
        };
        out.destination = Destination::Server { addr: first_addr, relay_port };
        let mut sent_to = ServerSet::default();
        sent_to.insert(first);
        for i in chosen.iter().filter(|i| *i != first) {
            let Some(addr) = address_of(&self.servers, i) else { continue };
            if outbox.duplicate_last(Destination::Server { addr, relay_port }) {
                sent_to.insert(i);
            }
        }
        let kind = MessageKind::of(msg);
        let upstream_slot = self.config.downstream.len();
        for i in sent_to.iter() {
            let Some(addr) = self.servers.servers().get(i).map(|s| s.addr) else { continue };
            let sid = to.server_id.unwrap_or(addr);
            self.servers.on_sent(i, now, expects_reply(msg, sid, addr));
            if let Some(c) = self.counters.servers.get_mut(i) {
                c.requests_sent += 1;
            }
            self.counters.sent(upstream_slot, kind);
        }
        if !matches!(track, Track::Reply { party: Party::Pool(_), .. }) {
            // A client's request (not one of the pool's own): the client's event log.
            let forwarded = crate::events::EventKind::Proxy(crate::counters::ProxyEvent::Forwarded);
            self.message_event(forwarded, ds, msg, Some(first_addr));
        }
        if let Track::Reply { expect, party, params } = track {
            let mut tx = Transaction::new(now, sent_to, expect, party);
            tx.params = params;
            self.transactions.expire(now);
            if self.transactions.file(now, id, tx) == Filed::EvictedOldest {
                self.counters.transactions_evicted += 1;
            }
        }
        Verdict::RelayedToServers { copies: sent_to.len() as u8 }
    }

    /// The servers a request goes to as the selection policy says
    /// ([`crate::servers::ServerPool::choose`]), and in `failover` selection two more
    /// rules, so that a server that declines a client (the other half of a load-balancing
    /// pair) neither leaves it unserved nor is declared down for it:
    /// - the client's retransmission of a request that no server answered yet (the same
    ///   [`RequestId`] and kind) goes to the next server as well
    ///   ([`crate::servers::ServerPool::choose_again`]);
    /// - a REQUEST naming one of the servers (option 54, RFC 2131 4.3.2: the client chose
    ///   its OFFER) goes to that server too: the others ignore it.
    fn chosen_servers<T: AsRef<[u8]>>(
        &self,
        now: Timestamp,
        msg: &Message<T>,
        id: &RequestId,
        track: &Track,
        server_id: Option<Ipv4Addr>,
    ) -> ServerSet {
        if self.servers.selection() != crate::config::ServerSelection::Failover {
            return self.servers.choose(now);
        }
        let again = match (track, self.transactions.get(id, now)) {
            (Track::Reply { expect, .. }, Some(prior)) if prior.expect == *expect && prior.replied.is_empty() => {
                Some(prior.servers)
            }
            _ => None,
        };
        let mut set = match again {
            Some(asked) => self.servers.choose_again(now, asked),
            None => self.servers.choose(now),
        };
        if server_id.is_none() && msg.message_type() == Some(MessageType::Request) {
            if let Some(named) = msg.server_identifier().and_then(|sid| self.servers.index_of(sid)) {
                set.insert(named);
            }
        }
        set
    }

    /// Write the request `msg` from downstream link `ds` into `buf` as it goes to a
    /// server: giaddr and hops set, option 82 added when ours to add, option 54 replaced by
    /// `server_id` when given (a proxy puts the real server's identifier back: paper 5.1,
    /// "it must first change the contents of that option to hold the address of the server
    /// which made the offer"). Returns its length.
    fn write_forwarded<T: AsRef<[u8]>>(
        &mut self,
        ds: usize,
        msg: &Message<T>,
        admitted: Admitted,
        server_id: Option<Ipv4Addr>,
        buf: &mut [u8],
    ) -> Result<Forwarded, DropReason> {
        let iface = self.config.downstream.get(ds).ok_or(DropReason::UnknownInterface)?;
        let Admitted { first_hop, has_option82, .. } = admitted;
        let o82 = &self.config.option82;
        let wants82 = o82.insert && first_hop && (!has_option82 || o82.policy == Option82Policy::Replace);
        // RFC 3046 2.0: option 82 is a DHCP option; a plain RFC 951 BOOTP request (no magic
        // cookie) has no options field to hold it, and is relayed without it (counted).
        if wants82 && !msg.has_magic_cookie() {
            self.counters.option82_not_added_no_options += 1;
        }
        let relay_port = self.config.source_port.is_some();
        let bytes = AgentBytes::of(o82, iface, admitted);
        let info = agent_info(o82, iface, relay_port, &bytes);
        let with82 = match wants82 && msg.has_magic_cookie() {
            // RFC 3046 2.1: if adding the option would make the message too large, "the
            // relay agent MUST forward the packet without adding the option" (counted).
            true => match with_option82(&info, msg, has_option82, buf) {
                Some(l) if l <= self.config.max_packet_size => Some(l),
                _ => {
                    self.counters.option82_not_added_too_large += 1;
                    None
                }
            },
            false => None,
        };
        // RFC 1542 4.1.1: "If this field is zero, the relay agent MUST fill this field with
        // the IP address of the interface on which the request was received ... If the
        // 'giaddr' field contains some non-zero value, the 'giaddr' field MUST NOT be
        // modified." Option 82 is ours to add only as the first hop. With a source address
        // (RFC 3527 1: giaddr "used for communications with the relay agent", the link
        // selection sub-option for the client's subnet) giaddr is that address, but only
        // when the sub-option went in: without it the server would take giaddr's subnet.
        let new_giaddr = match (first_hop, with82) {
            (false, _) => msg.giaddr(),
            (true, Some(_)) => iface.giaddr(),
            (true, None) => iface.address.addr,
        };
        let len = match with82 {
            Some(l) => l,
            None => {
                let bytes = msg.as_bytes();
                buf.get_mut(..bytes.len()).ok_or(DropReason::ReplyTooLarge)?.copy_from_slice(bytes);
                bytes.len()
            }
        };
        let out = buf.get_mut(..len).ok_or(DropReason::ReplyTooLarge)?;
        cdra_wire::message::set_giaddr_and_hops(out, new_giaddr, msg.hops().saturating_add(1));
        if let Some(id) = server_id {
            // Our own output (a checked request copied or rewritten): not checked again.
            Message::new_unchecked(out).patch_option_addr(OptionCode::SERVER_ID, id);
        }
        // RFC 8357 5.1: the sub-option asks for the answer at the port it came from; a
        // request without it (not ours to mark, or option 82 did not fit) leaves from 67.
        Ok(Forwarded { len, relay_port: with82.is_some() && info.has(SubOptionCode::RELAY_PORT) })
    }

    /// A BOOTREPLY: accept it only as the answer to a request we forwarded
    /// ([`Engine::accept_reply`]), remove option 82 and deliver it on the link that owns
    /// giaddr.
    pub(crate) fn relay_reply<T: AsRef<[u8]>>(
        &mut self,
        now: Timestamp,
        slot: usize,
        src: Ipv4Addr,
        msg: &Message<T>,
        outbox: &mut Outbox,
    ) -> Verdict {
        match self.accept_reply(now, src, msg) {
            Ok(AcceptedReply { ds, .. }) => {
                let server = crate::table::ServerBinding { addr: src, id: msg.server_identifier().unwrap_or(src) };
                let result = self.deliver_to_client(ds, msg, server, outbox);
                self.delivered(ds, result)
            }
            Err(reason) => self.drop(slot, reason),
        }
    }

    /// The checks on a BOOTREPLY that arrived from upstream (the engine has checked the
    /// interface): it comes from a configured server, is addressed to one of our giaddrs,
    /// and answers a request we sent that server less than `reply_timeout` ago
    /// ([`crate::transactions`]). Only then does it count as a sign of the server's life.
    pub(crate) fn accept_reply<T: AsRef<[u8]>>(
        &mut self,
        now: Timestamp,
        src: Ipv4Addr,
        msg: &Message<T>,
    ) -> Result<AcceptedReply, DropReason> {
        let Some(server) = self.servers.index_of(src) else {
            return Err(DropReason::ReplyFromUnknownServer);
        };
        let giaddr = msg.giaddr();
        // The links whose replies come to giaddr: the one owning it, or (a source address,
        // shared by several links) each of those; the request it answers says which
        // (`RequestId` names the link), so a server need not echo option 82.
        let mut candidates = self
            .config
            .downstream
            .iter()
            .enumerate()
            .filter(|(_, d)| d.state != crate::config::LinkState::Removed && d.owns_giaddr(giaddr))
            .map(|(i, _)| i)
            .peekable();
        if candidates.peek().is_none() {
            return Err(DropReason::ReplyNotForUs);
        }
        let mut found = Err(DropReason::ReplyUnmatched);
        for ds in candidates {
            let id = RequestId::of(msg, ds);
            match self.transactions.matching_mut(&id, server, now) {
                Ok(open) => {
                    let tx = *open;
                    if open.replied.is_empty() {
                        // The first answer to it: the other servers it went to declined it, and
                        // that is no sign of their death ([`crate::servers::ServerPool::on_declined`]).
                        for other in tx.servers.iter().filter(|i| *i != server) {
                            self.servers.on_declined(other, tx.first_sent_at, tx.sends);
                        }
                    }
                    open.replied.insert(server);
                    found = Ok((ds, id, tx));
                    break;
                }
                Err(Mismatch::WrongServer) => found = Err(DropReason::ReplyFromWrongServer),
                Err(Mismatch::Unknown) => {}
            }
        }
        let (ds, id, tx) = found?;
        if self.config.option82.vss
            && msg
                .relay_agent_info()
                .and_then(|d| cdra_wire::relay_agent::RelayAgentInfo::new_checked(d).ok())
                .is_some_and(|o| o.get(SubOptionCode::VSS_CONTROL).is_some())
        {
            self.counters.vss_not_understood += 1;
        }
        self.servers.on_reply(server, now);
        if let Some(c) = self.counters.servers.get_mut(server) {
            c.replies_received += 1;
            c.round_trip.observe(now.since(tx.sent_at));
        }
        Ok(AcceptedReply { server, ds, id, tx })
    }

    /// Copy a reply into the outbox without option 82 (RFC 3046 2.2: "the relay agent
    /// strips the option before forwarding the reply to the client") and address it per
    /// RFC 2131 4.1. `server` is the server that sent it; the mode decides which identity the
    /// client sees ([`crate::mode::ServerIdentity`]): with `Ours` (paper 4.1, 5.1) option 54
    /// becomes our downstream address, and so does siaddr when the server had put itself
    /// there (a different siaddr is a boot server for PXE clients and is left alone); with
    /// `Server` (paper 4.2) nothing is changed and the datagram comes from the server's
    /// identifier.
    /// Returns the datagram written, so the caller can patch it further.
    pub(crate) fn deliver_to_client<T: AsRef<[u8]>>(
        &mut self,
        ds: usize,
        msg: &Message<T>,
        server: crate::table::ServerBinding,
        outbox: &mut Outbox,
    ) -> Result<Emitted, DropReason> {
        let Some(iface) = self.config.downstream.get(ds) else {
            return Err(DropReason::UnknownInterface);
        };
        let identity = self.config.mode.server_identity();
        let src = match identity {
            // Paper 4.2: the spoofing relay's messages come from the server.
            ServerIdentity::Server => server.id,
            ServerIdentity::AsSent | ServerIdentity::Ours if iface.all_addresses.contains(&msg.giaddr()) => {
                msg.giaddr()
            }
            ServerIdentity::AsSent | ServerIdentity::Ours => iface.address.addr,
        };
        let destination = reply_destination(msg, iface, src);
        let Some((emitted, out)) = outbox.emit() else {
            return Err(DropReason::OutboxFull);
        };
        out.destination = destination;
        let written = if msg.option(OptionCode::RELAY_AGENT_INFO).is_some() {
            rewrite(msg, out.buffer_mut(), &[OptionCode::RELAY_AGENT_INFO], |_| Ok(()))
        } else {
            let bytes = msg.as_bytes();
            match out.buffer_mut().get_mut(..bytes.len()) {
                Some(dst) => {
                    dst.copy_from_slice(bytes);
                    Ok(bytes.len())
                }
                None => Err(cdra_wire::WireError::NoSpace),
            }
        };
        match written {
            Ok(len) => out.set_len(len),
            Err(_) => {
                outbox.unwind();
                return Err(DropReason::ReplyTooLarge);
            }
        }
        if identity == ServerIdentity::Ours {
            let ours = iface.address.addr;
            // Our own output: not checked again.
            let mut m = Message::new_unchecked(out.payload_mut());
            m.patch_option_addr(OptionCode::SERVER_ID, ours);
            if m.siaddr() == server.id || m.siaddr() == server.addr {
                m.set_siaddr(ours);
            }
        }
        self.counters.sent(ds, MessageKind::of(msg));
        self.message_event(crate::events::EventKind::ServerReply, ds, msg, Some(server.id));
        Ok(emitted)
    }

    /// The verdict of a delivery (counted as a drop when it failed).
    pub(crate) fn delivered(&mut self, ds: usize, result: Result<Emitted, DropReason>) -> Verdict {
        match result {
            Ok(_) => Verdict::DeliveredToClient,
            Err(reason) => self.drop(ds, reason),
        }
    }
}
