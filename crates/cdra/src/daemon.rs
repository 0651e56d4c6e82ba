//! The data plane: one loop, one thread, owning the engine and every DHCP socket.
//!
//! Start-up resolves interface names to indexes and addresses (one clear error line per
//! problem) and opens:
//!
//! - per downstream interface, a tap ([`cdra_sys::tap::UdpTap`]) that reads client
//!   requests (BOOTREQUESTs to port 67) off the link with the frame's Ethernet source, which
//!   the engine checks against chaddr (issue 10: a message that does not come from the
//!   client it names must not act for it); the IPv4 and UDP headers are checked here
//!   ([`cdra_wire::ipv4::Ipv4Udp`]) as the kernel would for a UDP socket;
//! - the UDP :67 socket (IP_PKTINFO tells each datagram's ingress interface and
//!   destination) for everything else: server replies, and relayed requests on upstream
//!   links. A BPF filter keeps the requests the taps read out of it;
//! - an AF_PACKET socket for replies to clients without an address;
//! - in spoofing mode, the interception ([`crate::interception`]): an nftables table owned
//!   by this process that keeps the router from forwarding client unicasts to the servers
//!   (the taps read them, and the engine answers them).
//!
//! Then, on every wake-up (one clock read stamps the whole turn): signals, due timers,
//! probe answers, the metrics and control sockets, at most `relay.receive_batches` batches
//! from each tap and UDP socket the wait reported readable (`recvmmsg`, each datagram fed
//! to the engine, and what a batch produced sent with one `sendmmsg` per socket: see
//! [`Io::send_all`]), then the server
//! identifiers the engine learned go to the interception (spoofing mode), then the store.
//! Every source gets a bounded turn per wake-up ([`after_batch`] decides when reading
//! stops; probe sockets are read at most 256 answers each), so sustained load cannot keep
//! timers, probe answers, the store or SIGTERM waiting: the next wait returns at once
//! while datagrams are pending, and they are read on the next turn.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use cdra_core::leasequery::Willingness;
use cdra_core::ProbeRequest;
use cdra_core::{
    Destination, Downstream, EchoId, Engine, EngineConfig, Ingress, LinkState, Outbox, Outgoing, ProbeAnswer,
    Timestamp, Verdict, CLIENT_PORT, SERVER_PORT,
};
use cdra_sys::icmp::{Echo, IcmpSocket};
use cdra_sys::linkwatch::LinkWatch;
use cdra_sys::packet::{ArpProbe, ArpSocket, PacketSender};
use cdra_sys::poll::Watched;
use cdra_sys::tap::{LinkDelivery, TapBatch, TransportChecksum, UdpTap};
use cdra_sys::udp::{RecvBatch, UdpSocket};
use cdra_wire::ipv4::{write_ipv4_udp, FrameError, Ipv4Udp, Ipv4UdpHeader, UdpChecksum, IPV4_UDP_HEADER_LEN};

use crate::config::{HaSettings, Settings, StoreBackend};
use crate::ha::{HaStatus, Role};
use crate::interception::Intercepts;
use crate::links::{self, LinkLog};
use crate::management;
use crate::metrics::IoCounters;
use crate::report;
use crate::table_store::TableStore;
use cdra_store::LeaseChange;

/// Datagrams received per `recvmmsg`.
const RECV_BATCH: usize = 32;
/// The first byte of a BOOTREQUEST (RFC 951 `op`): what the taps read, and what the UDP
/// socket is spared on the links they read.
const BOOTREQUEST: u8 = 1;
/// Largest datagram accepted (bigger ones are truncated and dropped).
const RECV_BUFFER: usize = 4096;
/// Outbox slots: a full batch can produce one datagram per server per request.
const OUTBOX_SLOTS: usize = RECV_BATCH * 4;
/// How often the loop looks for the end of a table load from Redis (a takeover), instead
/// of sleeping up to a second: the relay is silent until it is loaded.
const LOAD_POLL: Duration = Duration::from_millis(5);

/// What the loop does after one `recvmmsg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterBatch {
    /// The batch was full and the budget allows another: read again.
    ReadMore,
    /// A short batch: the socket is empty for now.
    Drained,
    /// The budget is spent and the last batch was full (more may be waiting): serve
    /// everything else first (counted, `cdra_receive_yields_total`).
    Yield,
}

/// Issue 9, defect 9: reading on while every batch comes back full starves timers, probe
/// answers, the store and signals. After the `batches_read`-th batch of this wake-up
/// (`received` datagrams of `capacity`), read again only within `budget` batches.
fn after_batch(batches_read: usize, received: usize, capacity: usize, budget: usize) -> AfterBatch {
    if received < capacity {
        AfterBatch::Drained
    } else if batches_read >= budget {
        AfterBatch::Yield
    } else {
        AfterBatch::ReadMore
    }
}

/// Milliseconds on a clock anchored to the wall clock at start and advanced monotonically.
struct Clock {
    wall_at_start_ms: u64,
    start: Instant,
}

impl Clock {
    fn new() -> Self {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        Clock { wall_at_start_ms: wall, start: Instant::now() }
    }
    /// The time now (one `clock_gettime`, through the vDSO).
    fn now(&self) -> Timestamp {
        self.at(Instant::now())
    }
    /// The time at `instant`, in whole milliseconds (u64 arithmetic: no u128 as
    /// `Duration::as_millis` has).
    fn at(&self, instant: Instant) -> Timestamp {
        let since = instant.saturating_duration_since(self.start);
        let ms = since.as_secs().saturating_mul(1000).saturating_add(u64::from(since.subsec_millis()));
        Timestamp::from_millis(self.wall_at_start_ms.saturating_add(ms))
    }
}

/// The engine's configuration from `settings` and the interfaces as they are now (see
/// [`crate::links`]: a missing one is waiting, not an error). Each interface's state is
/// logged when it differs from what `log` last said.
fn engine_config(settings: &Settings, log: &mut LinkLog) -> Result<EngineConfig> {
    let mut downstream = Vec::new();
    let hostname = crate::agent_id::hostname();
    let ctx = links::AgentContext { hostname: &hostname, remote_id: settings.remote_id.as_ref() };
    for d in &settings.downstream {
        let (link, waiting) = links::resolve_downstream(d, &ctx);
        let up_as = format!("{}/{}", link.address.addr, link.address.prefix_len);
        log.note("downstream", &link.name, waiting.as_deref(), &up_as);
        downstream.push(link);
    }
    let mut upstream = Vec::new();
    let mut upstream_addresses = Vec::new();
    for name in &settings.upstream {
        let (index, addresses, waiting) = links::resolve_upstream(name);
        log.note("upstream", name, waiting.as_deref(), &format!("index {index}"));
        // A waiting upstream keeps its place (index 0 matches nothing): replies are taken
        // only from the configured upstream interfaces, never from any interface instead.
        upstream.push(index);
        upstream_addresses.extend(addresses);
    }
    // Replies arrive in the servers' VRF: should the kernel name the VRF device as their
    // interface (IP_PKTINFO names the enslaved one as far as we know), it is upstream too.
    if let Some(vrf) = &settings.server_vrf {
        if let Ok(index) = cdra_sys::iface::name_to_index(vrf) {
            if !upstream.contains(&index) {
                upstream.push(index);
            }
        }
    }
    if settings.mode == cdra_core::Mode::Pool {
        let links: Vec<_> = downstream
            .iter()
            .map(|d: &Downstream| (d.name.clone(), (d.state == LinkState::Up).then_some(d.address)))
            .collect();
        crate::pool_fit::check(settings.pool.size, &links).map_err(|e| anyhow!("{e}"))?;
    }
    let mut config = EngineConfig::relay(settings.servers.clone(), downstream, upstream);
    config.mode = settings.mode;
    config.upstream_addresses = upstream_addresses;
    config.max_hops = settings.max_hops;
    config.server_selection = settings.server_selection;
    config.option82 = settings.option82.clone();
    config.max_packet_size = settings.max_packet_size;
    config.server_timeout = settings.server_timeout;
    config.proxy = settings.proxy.clone();
    config.limits = settings.limits.clone();
    config.pool = settings.pool.clone();
    config.leasequery = settings.leasequery.clone();
    config.source_port = settings.source_port;
    // The engine's choices an outsider must not predict (probe identifiers, the xids of its
    // own messages, eviction samples) start from the operating system's randomness.
    config.proxy.seed = getrandom::u64().map_err(|e| anyhow!("drawing a random seed: {e}"))?;
    if config.mode.caches() {
        for d in config.downstream.iter().filter(|d| d.state == LinkState::Up) {
            if d.mac.is_none() {
                tracing::warn!(interface = %d.name, "downstream interface has no MAC address: ARP probes are not possible on it, ICMP only");
            }
        }
    }
    Ok(config)
}

/// Where a UDP socket is bound now ([`UdpSocket::set_device`]).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Device {
    /// No device: the default VRF.
    Any,
    /// A VRF (or any) device, by name.
    Named(String),
    /// Parked on the loopback device while its VRF does not exist: it receives nothing of
    /// the links and cannot reach the servers, and waits to be moved into the VRF.
    Parked,
}

impl Device {
    fn name(&self) -> &str {
        match self {
            Device::Any => "",
            Device::Named(n) => n,
            Device::Parked => "lo",
        }
    }
}

/// A socket that follows a VRF device: opened at start-up (the port needs the privilege
/// to bind it), moved with SO_BINDTODEVICE (CAP_NET_RAW) as the device comes and goes.
struct Following {
    socket: UdpSocket,
    device: Device,
}

/// The UDP sockets, one per place DHCP traffic is routed (docs/design.md, "VRFs"):
///
/// - `main`: 0.0.0.0:67 in the default VRF, what cdra had before VRFs;
/// - `server`: 0.0.0.0:67 bound to the servers' VRF (`[[upstream]] vrf`): requests to the
///   servers leave through it, so the VRF's routing table routes them, and the servers'
///   replies, which arrive on the VRF's interfaces, are received by it (a socket in the
///   default VRF does not see them unless `udp_l3mdev_accept` is set);
/// - `relay_port`: 0.0.0.0:`[relay] source_port` (RFC 8357), in the servers' VRF if any:
///   first-hop requests leave from it and the servers answer to it;
/// - `vrfs`: 0.0.0.0:67 bound to each other VRF a downstream interface is enslaved to
///   (requests relayed to us by relays behind it, unicasts to our address there).
///
/// Client requests on downstream links are read by the taps whatever the VRF (AF_PACKET
/// sees the frames), and answers to clients without an address go out at the link layer.
struct UdpSockets {
    main: UdpSocket,
    server: Option<Following>,
    relay_port: Option<Following>,
    vrfs: Vec<(String, UdpSocket)>,
    /// VRFs for which no socket could be opened after start-up (logged once each).
    missing_vrfs: Vec<String>,
}

impl UdpSockets {
    /// Every socket, for polling and reading.
    fn all(&self) -> impl Iterator<Item = &UdpSocket> {
        std::iter::once(&self.main)
            .chain(self.server.iter().map(|f| &f.socket))
            .chain(self.relay_port.iter().map(|f| &f.socket))
            .chain(self.vrfs.iter().map(|(_, s)| s))
    }

    /// The socket for a datagram to a server.
    fn to_server(&self, relay_port: bool) -> &UdpSocket {
        let via = if relay_port { self.relay_port.as_ref().or(self.server.as_ref()) } else { self.server.as_ref() };
        via.map_or(&self.main, |f| &f.socket)
    }

    /// The socket for a routed unicast to a client on a link of `vrf`.
    fn in_vrf(&self, vrf: Option<&str>) -> &UdpSocket {
        let Some(v) = vrf else { return &self.main };
        if let Some(f) = self.server.as_ref().filter(|f| f.device.name() == v) {
            return &f.socket;
        }
        self.vrfs.iter().find(|(n, _)| n == v).map_or(&self.main, |(_, s)| s)
    }
}

/// Sockets of the data plane.
struct Io {
    /// False while this relay is the standby of a pair (or taking over, before its table
    /// is loaded): what is read is dropped ([`Io::standby_drops`]) and nothing is sent.
    serving: bool,
    /// Datagrams and tapped frames read while not serving.
    standby_drops: u64,
    udp: UdpSockets,
    /// The VRF of each downstream interface in one (its ifindex, the VRF's name).
    link_vrfs: Vec<(u32, String)>,
    /// Per downstream slot, while its link is up: client requests with their Ethernet
    /// source.
    taps: Vec<Option<UdpTap>>,
    /// The interfaces the taps read (the UDP socket leaves their requests to them).
    tapped: Vec<u32>,
    /// Taps that could not be opened.
    tap_errors: u64,
    packet: PacketSender,
    /// ARP and ICMP sockets for probes (proxy mode only).
    probes: Option<(ArpSocket, IcmpSocket)>,
    /// The probes of one outbox, as the sockets take them, and which request each is.
    probe_batch: ProbeBatch,
    /// Probes none of whose packets the kernel took, for the engine
    /// ([`Engine::handle_probe_unsent`]).
    unsent: Vec<ProbeRequest>,
    /// Probe packets the kernel refused, ARP and ICMP.
    probe_send_failures: [u64; 2],
    /// Probe answers the kernel dropped before we read them (the sockets' `sk_drops`), ARP
    /// and ICMP, and what those counters said last.
    probe_answers_lost: [u64; 2],
    probe_drops_seen: [u32; 2],
    last_probe_error_log: Option<Instant>,
    /// Frame slots for the replies sent at the link layer ([`LINK_BATCH`] of
    /// [`LINK_FRAME_LEN`] bytes), and what is in them.
    link_frames: Vec<u8>,
    link_sends: Vec<LinkFrame>,
    send_errors: u64,
    last_send_error_log: Option<Instant>,
    /// Tapped packets that were not a UDP datagram we read, by what was wrong.
    bad_frames: [u64; FrameError::ALL.len()],
    /// Tapped frames addressed to another host's MAC (seen only in promiscuous mode).
    other_host_frames: u64,
}

/// Reused buffers for sending one outbox's probes in batches (no allocation once warm).
#[derive(Default)]
struct ProbeBatch {
    arp: Vec<ArpProbe>,
    arp_of: Vec<usize>,
    echo: Vec<Echo>,
    echo_of: Vec<usize>,
    /// Per probe of the outbox: bit 0 its ARP probe was refused, bit 1 its echo.
    refused: Vec<u8>,
}

impl Io {
    /// Start the probes the engine asked for (paper 3.2): ARP probes on the clients' links,
    /// ICMP echoes where asked for, each kind with one `sendmmsg` per 64. Every packet the
    /// kernel refuses is counted (`cdra_probe_send_failures_total`); a probe none of whose
    /// packets went out is noted for the engine, which then does not take its silence for
    /// "nobody uses the address".
    fn start_probes(&mut self, outbox: &Outbox) {
        let Io { probes, probe_batch: b, unsent, probe_send_failures: failures, .. } = self;
        let Some((arp, icmp)) = probes else { return };
        let requests = outbox.probes();
        if requests.is_empty() {
            return;
        }
        b.arp.clear();
        b.arp_of.clear();
        b.echo.clear();
        b.echo_of.clear();
        b.refused.clear();
        b.refused.resize(requests.len(), 0);
        for (i, p) in requests.iter().enumerate() {
            if let Some(our_mac) = p.sender_mac {
                b.arp.push(ArpProbe { ifindex: p.ifindex, our_mac, target: p.target });
                b.arp_of.push(i);
            }
            if p.icmp {
                b.echo.push(Echo { dst: p.target, ident: p.echo.ident, seq: p.echo.seq });
                b.echo_of.push(i);
            }
        }
        let mut last_error: Option<(&str, std::io::Error)> = None;
        let refused = &mut b.refused;
        let arp_of = &b.arp_of;
        arp.send_probes(&b.arp, &mut |k, e| {
            failures[0] += 1;
            if let Some(r) = arp_of.get(k).and_then(|&i| refused.get_mut(i)) {
                *r |= 1;
            }
            last_error = Some(("ARP", e));
        });
        let echo_of = &b.echo_of;
        icmp.send_echoes(&b.echo, &mut |k, e| {
            failures[1] += 1;
            if let Some(r) = echo_of.get(k).and_then(|&i| refused.get_mut(i)) {
                *r |= 2;
            }
            last_error = Some(("ICMP", e));
        });
        for (p, r) in requests.iter().zip(b.refused.iter()) {
            let wanted = u8::from(p.arp()) | (u8::from(p.icmp) << 1);
            if *r != 0 && *r == wanted {
                unsent.push(*p);
            }
        }
        if let Some((kind, e)) = last_error {
            let now = Instant::now();
            if self.last_probe_error_log.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10)) {
                self.last_probe_error_log = Some(now);
                tracing::warn!(
                    error = %e,
                    arp_refused = self.probe_send_failures[0],
                    icmp_refused = self.probe_send_failures[1],
                    "the kernel refused {kind} probe packets (counted in cdra_probe_send_failures_total; a probe none of whose packets went out does not lead to a local answer)"
                );
            }
        }
    }

    /// Did the kernel drop probe answers since we last looked (the sockets' receive queues
    /// overflowed)? Counts them; true if any.
    fn probe_answers_were_lost(&mut self) -> bool {
        let Some((arp, icmp)) = &self.probes else { return false };
        let mut lost = false;
        for (k, drops) in [arp.receive_drops(), icmp.receive_drops()].into_iter().enumerate() {
            let Ok(drops) = drops else { continue };
            let (Some(seen), Some(total)) = (self.probe_drops_seen.get_mut(k), self.probe_answers_lost.get_mut(k))
            else {
                continue;
            };
            let new = drops.wrapping_sub(*seen);
            if new > 0 {
                *seen = drops;
                *total += u64::from(new);
                lost = true;
            }
        }
        lost
    }

    /// Send what the engine produced: the probes, then the requests to the servers (one
    /// `sendmmsg` per socket), the replies sent at the link layer (one `sendmmsg` on the
    /// AF_PACKET socket), and the routed unicasts to clients (one `sendmsg` each: each
    /// carries its own source address and interface). The order within each kind is the
    /// outbox's.
    fn send_all(&mut self, outbox: &Outbox) {
        if !self.serving {
            return;
        }
        self.start_probes(outbox);
        for relay_port in [false, true] {
            self.send_to_servers(outbox, relay_port);
        }
        self.send_to_links(outbox);
        for out in outbox.iter() {
            let Destination::ClientUnicast { ifindex, src, dst } = out.destination else { continue };
            let vrf = self.link_vrfs.iter().find(|(i, _)| *i == ifindex).map(|(_, v)| v.as_str());
            let sent = self.udp.in_vrf(vrf).send_to(
                out.payload(),
                SocketAddrV4::new(dst, CLIENT_PORT),
                Some(src),
                Some(ifindex),
            );
            if let Err(e) = sent {
                self.note_send_errors(1, Some(out.destination), e);
            }
        }
    }

    /// The outbox's datagrams to the servers that leave from the relay source port
    /// (`relay_port`) or from port 67, with one `sendmmsg`.
    fn send_to_servers(&mut self, outbox: &Outbox, relay_port: bool) {
        let mut datagrams = outbox.iter().filter_map(|out| to_server(out, relay_port)).peekable();
        if datagrams.peek().is_none() {
            return;
        }
        let (mut refused, mut last) = (0, None);
        self.udp.to_server(relay_port).send_many_to(datagrams, &mut |i, e| {
            refused += 1;
            last = Some((i, e));
        });
        if let Some((i, e)) = last {
            let destination =
                outbox.iter().filter(|o| to_server(o, relay_port).is_some()).nth(i).map(|o| o.destination);
            self.note_send_errors(refused, destination, e);
        }
    }

    /// The outbox's replies to clients at the link layer: each framed (IPv4 + UDP header
    /// in front of the payload) in its own slot of `link_frames`, then up to
    /// [`LINK_BATCH`] with one `sendmmsg` on the AF_PACKET socket.
    fn send_to_links(&mut self, outbox: &Outbox) {
        let mut replies = outbox
            .iter()
            .filter_map(|out| match out.destination {
                Destination::ClientLink { ifindex, mac, src, dst } => {
                    Some((LinkFrame { ifindex, mac, src, dst, len: 0 }, out.payload()))
                }
                _ => None,
            })
            .peekable();
        while replies.peek().is_some() {
            self.link_sends.clear();
            for (mut frame, payload) in replies.by_ref().take(LINK_BATCH) {
                let at = self.link_sends.len() * LINK_FRAME_LEN;
                match build_link_frame(self.link_frames.get_mut(at..at + LINK_FRAME_LEN), &frame, payload) {
                    Ok(len) => {
                        frame.len = len;
                        self.link_sends.push(frame);
                    }
                    Err(e) => self.note_send_errors(1, Some(frame.destination()), e),
                }
            }
            let (mut refused, mut last) = (0, None);
            let frames = &self.link_frames;
            let sends = self.link_sends.iter().enumerate().map(|(k, f)| {
                let at = k * LINK_FRAME_LEN;
                (f.ifindex, f.mac, frames.get(at..at + f.len).unwrap_or(&[]))
            });
            self.packet.send_many(sends, &mut |i, e| {
                refused += 1;
                last = Some((i, e));
            });
            if let Some((i, e)) = last {
                let destination = self.link_sends.get(i).map(LinkFrame::destination);
                self.note_send_errors(refused, destination, e);
            }
        }
    }

    /// Count `refused` datagrams the kernel did not take, and log the last error (at most
    /// every 10 s).
    fn note_send_errors(&mut self, refused: u64, destination: Option<Destination>, e: std::io::Error) {
        self.send_errors += refused;
        let now = Instant::now();
        if self.last_send_error_log.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10)) {
            self.last_send_error_log = Some(now);
            tracing::warn!(destination = ?destination, error = %e, total_send_errors = self.send_errors, "send failed");
        }
    }
}

/// A datagram of the outbox to the servers that leaves from the relay source port
/// (`relay_port`) or from port 67: its payload and destination.
fn to_server(out: &Outgoing, relay_port: bool) -> Option<(&[u8], SocketAddrV4)> {
    match out.destination {
        Destination::Server { addr, relay_port: r } if r == relay_port => {
            Some((out.payload(), SocketAddrV4::new(addr, SERVER_PORT)))
        }
        _ => None,
    }
}

/// Replies sent at the link layer with one `sendmmsg` (at most).
const LINK_BATCH: usize = 64;
/// One frame slot: the IPv4 and UDP headers and the largest payload the outbox holds.
const LINK_FRAME_LEN: usize = IPV4_UDP_HEADER_LEN + cdra_core::outbox::OUT_BUFFER_SIZE;

/// A reply to send at the link layer, framed in a slot of [`Io::link_frames`].
#[derive(Debug, Clone, Copy)]
struct LinkFrame {
    ifindex: u32,
    mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    /// The framed datagram's length.
    len: usize,
}

impl LinkFrame {
    fn destination(&self) -> Destination {
        Destination::ClientLink { ifindex: self.ifindex, mac: self.mac, src: self.src, dst: self.dst }
    }
}

/// Write `payload` behind an IPv4 + UDP header (`frame.src`:67 -> `frame.dst`:68, both
/// checksums) into `slot`; returns the datagram's length.
fn build_link_frame(slot: Option<&mut [u8]>, frame: &LinkFrame, payload: &[u8]) -> std::io::Result<usize> {
    let too_large = || std::io::Error::other("reply larger than the frame buffer");
    let slot = slot.ok_or_else(too_large)?;
    let body = slot.get_mut(IPV4_UDP_HEADER_LEN..IPV4_UDP_HEADER_LEN + payload.len()).ok_or_else(too_large)?;
    body.copy_from_slice(payload);
    let header =
        Ipv4UdpHeader { src: frame.src, dst: frame.dst, src_port: SERVER_PORT, dst_port: CLIENT_PORT, ttl: 64 };
    write_ipv4_udp(slot, header, payload.len()).map_err(|e| std::io::Error::other(e.label()))
}

/// Hand every ARP and ICMP answer seen to the engine (it decides which ones matter).
fn read_probe_answers(io: &mut Io, engine: &mut Engine, now: Timestamp, outbox: &mut Outbox, buf: &mut [u8]) {
    let Some((arp, icmp)) = &io.probes else { return };
    for _ in 0..256 {
        match arp.recv(buf) {
            Ok(Some(seen)) if !seen.sender_ip.is_unspecified() => {
                let answer = ProbeAnswer::Arp { ifindex: seen.ifindex, address: seen.sender_ip, mac: seen.sender_mac };
                engine.handle_probe_answer(now, answer, outbox);
            }
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    for _ in 0..256 {
        match icmp.recv_reply(buf) {
            Ok(Some(reply)) => {
                // The engine matches the identifier and sequence number it drew for the probe.
                let echo = EchoId { ident: reply.ident, seq: reply.seq };
                engine.handle_probe_answer(now, ProbeAnswer::Echo { address: reply.src, echo }, outbox);
            }
            _ => break,
        }
    }
    if io.probe_answers_were_lost() {
        tracing::warn!(
            arp = io.probe_answers_lost[0],
            icmp = io.probe_answers_lost[1],
            "probe answers were dropped by the kernel before cdra read them: the probes in flight are sent again before any concludes that nobody uses its address"
        );
        engine.handle_probe_answers_lost(now);
    }
}

/// What the loop does with one tapped packet: the client request in it, as the engine takes
/// it, or nothing (counted).
fn tapped_ingress<'a>(
    t: &cdra_sys::tap::Tapped<'a>,
    bad_frames: &mut [u64; FrameError::ALL.len()],
    other_host_frames: &mut u64,
) -> Option<Ingress<'a>> {
    if t.delivery == LinkDelivery::OtherHost {
        *other_host_frames += 1;
        return None;
    }
    let udp_checksum = match t.checksum {
        TransportChecksum::Unverified => UdpChecksum::Verify,
        TransportChecksum::Valid | TransportChecksum::NotReady => UdpChecksum::Skip,
    };
    match Ipv4Udp::new_checked_with(t.packet, udp_checksum) {
        Ok(d) => Some(Ingress {
            ifindex: t.ifindex,
            link_source: t.source_mac,
            src: SocketAddrV4::new(d.src, d.src_port),
            dst: d.dst,
            data: d.payload,
        }),
        Err(e) => {
            if let Some(c) = bad_frames.get_mut(e as usize) {
                *c += 1;
            }
            None
        }
    }
}

/// Read each tap for at most `budget` batches, feeding the engine; true if some tap yielded
/// with its last batch full.
fn read_taps(
    io: &mut Io,
    engine: &mut Engine,
    now: Timestamp,
    outbox: &mut Outbox,
    batch: &mut TapBatch,
    budget: usize,
) -> bool {
    let mut yielded = false;
    for t in 0..io.taps.len() {
        if io.taps.get(t).is_none_or(Option::is_none) {
            continue;
        }
        for batches_read in 1.. {
            let n = match io.taps.get(t).and_then(Option::as_ref).map(|tap| tap.recv_batch(batch)) {
                Some(Ok(n)) => n,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "reading client requests failed");
                    0
                }
                None => 0,
            };
            for i in 0..n {
                let Some(tapped) = batch.try_get(i).filter(|p| !p.truncated) else { continue };
                let Some(ingress) = tapped_ingress(&tapped, &mut io.bad_frames, &mut io.other_host_frames) else {
                    continue;
                };
                if !io.serving {
                    io.standby_drops += 1;
                    continue;
                }
                let verdict = engine.handle_datagram(now, ingress, outbox);
                if let Verdict::Dropped(reason) = verdict {
                    tracing::debug!(ifindex = ingress.ifindex, src = %ingress.src, reason = reason.label(), "dropped");
                }
                if outbox.remaining() < 8 {
                    io.send_all(outbox);
                    outbox.clear();
                }
            }
            io.send_all(outbox);
            outbox.clear();
            match after_batch(batches_read, n, batch.capacity(), budget) {
                AfterBatch::ReadMore => {}
                AfterBatch::Drained => break,
                AfterBatch::Yield => {
                    yielded = true;
                    break;
                }
            }
        }
    }
    yielded
}

/// Where the `k`-th of [`UdpSockets::all`] is in the loop's wait set: the main socket
/// first, then the signal pipe and the interface watch, then the other UDP sockets.
fn udp_poll_index(k: usize) -> usize {
    if k == 0 {
        0
    } else {
        k + 2
    }
}

/// Open (or close) the tap of each downstream slot as its link is (or is no longer) up, and
/// keep the UDP socket's filter in step (it leaves the tapped links' requests to the taps).
fn sync_taps(io: &mut Io, engine: &Engine) {
    let links = &engine.config().downstream;
    io.taps.resize_with(links.len(), || None);
    for (slot, d) in io.taps.iter_mut().zip(links) {
        let wanted = (d.state == LinkState::Up).then_some(d.ifindex);
        if slot.as_ref().map(UdpTap::ifindex) == wanted {
            continue;
        }
        *slot = None;
        if let Some(ifindex) = wanted {
            match UdpTap::open(ifindex, SERVER_PORT, Some(BOOTREQUEST)) {
                Ok(tap) => *slot = Some(tap),
                Err(e) => {
                    io.tap_errors += 1;
                    tracing::warn!(interface = %d.name, error = %e, "cannot read client requests on this interface; will try again at its next change");
                }
            }
        }
    }
    let tapped: Vec<u32> = io.taps.iter().flatten().map(UdpTap::ifindex).collect();
    for udp in io.udp.all() {
        if let Err(e) = udp.ignore_from(&tapped, BOOTREQUEST) {
            // Without the filter those requests are queued twice; the loop skips the UDP copy.
            tracing::warn!(error = %e, "cannot filter client requests out of the UDP socket");
        }
    }
    io.tapped = tapped;
}

/// Where a socket following the servers' VRF belongs now: in the VRF when its device
/// exists, parked while it does not, nowhere in particular (`None`: the default VRF) when
/// no VRF is configured.
fn server_device(settings: &Settings) -> Device {
    match &settings.server_vrf {
        None => Device::Any,
        Some(v) if cdra_sys::iface::name_to_index(v).is_ok() => Device::Named(v.clone()),
        Some(_) => Device::Parked,
    }
}

/// Open a UDP socket on `port` bound to `device`.
fn open_udp(port: u16, device: &Device) -> Result<UdpSocket> {
    let dev = match device {
        Device::Any => None,
        d => Some(d.name()),
    };
    UdpSocket::bind_any(port, dev).map_err(|e| anyhow!("{e}"))
}

/// The UDP sockets at start-up, while cdra may still bind ports below 1024: the default
/// VRF's :67, the servers' VRF's (parked if the VRF does not exist yet) and the relay
/// source port's.
fn open_sockets(settings: &Settings) -> Result<UdpSockets> {
    let main = UdpSocket::bind_any(SERVER_PORT, None).map_err(|e| anyhow!("{e}"))?;
    let device = server_device(settings);
    let server = match settings.server_vrf {
        Some(_) => Some(Following { socket: open_udp(SERVER_PORT, &device)?, device: device.clone() }),
        None => None,
    };
    let relay_port = match settings.source_port {
        Some(port) => Some(Following {
            socket: open_udp(port, &device).context(format!("relay.source_port {port}"))?,
            device: device.clone(),
        }),
        None => None,
    };
    if device == Device::Parked {
        tracing::warn!(vrf = %settings.server_vrf.as_deref().unwrap_or(""), "the servers' VRF device does not exist (yet): requests to the servers wait for it");
    }
    Ok(UdpSockets { main, server, relay_port, vrfs: Vec::new(), missing_vrfs: Vec::new() })
}

/// Keep the sockets in step with the VRFs (docs/design.md, "VRFs"): the sockets that
/// follow the servers' VRF move into it when its device appears (or a reload names
/// another), and each VRF a downstream interface is enslaved to gets a :67 socket, which
/// can be opened only while cdra may bind port 67 (at start-up): a VRF that appears later
/// is logged (restart cdra to give it one; its clients are served all the same).
fn sync_sockets(io: &mut Io, settings: &Settings, engine: &Engine) {
    let device = server_device(settings);
    for f in [io.udp.server.as_mut(), io.udp.relay_port.as_mut()].into_iter().flatten() {
        if f.device == device {
            continue;
        }
        let name = if device == Device::Any { Device::Parked.name() } else { device.name() };
        match f.socket.set_device(name) {
            Ok(()) => {
                tracing::info!(device = %name, "server-facing socket moved");
                f.device = device.clone();
            }
            Err(e) => tracing::warn!(device = %name, error = %e, "cannot move the server-facing socket"),
        }
    }
    let links = &engine.config().downstream;
    io.link_vrfs = links
        .iter()
        .filter(|d| d.state == LinkState::Up)
        .filter_map(|d| d.vrf.clone().map(|v| (d.ifindex, v)))
        .collect();
    let server_vrf = io.udp.server.as_ref().map(|f| f.device.name().to_string());
    let wanted: Vec<String> = io.link_vrfs.iter().map(|(_, v)| v.clone()).collect();
    for v in wanted {
        if server_vrf.as_deref() == Some(v.as_str()) || io.udp.vrfs.iter().any(|(n, _)| *n == v) {
            continue;
        }
        match open_udp(SERVER_PORT, &Device::Named(v.clone())) {
            Ok(sock) => {
                tracing::info!(vrf = %v, "UDP port 67 opened in the VRF of a downstream interface");
                io.udp.vrfs.push((v, sock));
            }
            Err(e) if !io.udp.missing_vrfs.contains(&v) => {
                tracing::warn!(vrf = %v, error = %e, "no UDP port 67 in this VRF (a downstream interface is in it); restart cdra to open one: its clients are served, requests relayed to cdra by relays in it are not");
                io.udp.missing_vrfs.push(v);
            }
            Err(_) => {}
        }
    }
}

/// What the loop needs to reload: the file, and what it said last time.
struct Source {
    path: Option<std::path::PathBuf>,
    text: Option<String>,
}

/// Apply `settings` (a reload, or the interfaces as they are now): the engine's new
/// configuration, the taps, the interception. Returns what the engine changed.
#[allow(clippy::too_many_arguments)] // the loop's state a reconfiguration touches
fn reconfigure(
    settings: &Settings,
    engine: &mut Engine,
    io: &mut Io,
    intercepts: &mut Option<Intercepts>,
    log: &mut LinkLog,
    now: Timestamp,
    outbox: &mut Outbox,
) -> Result<cdra_core::reconfigure::Reconfigured> {
    let config = engine_config(settings, log)?;
    let names_before: Vec<String> = live_names(engine);
    let servers_before = engine.config().servers.clone();
    let report = engine.reconfigure(now, config, outbox).map_err(|e| anyhow!("{e}"))?;
    io.send_all(outbox);
    outbox.clear();
    sync_sockets(io, settings, engine);
    sync_taps(io, engine);
    if intercepts.is_some() && (live_names(engine) != names_before || engine.config().servers != servers_before) {
        // Spoofing mode: the rules name the downstream interfaces and the servers.
        *intercepts = None;
        *intercepts = Intercepts::install(engine.config())?;
        if let Some(i) = intercepts.as_mut() {
            i.announce(engine, Instant::now());
        }
    }
    Ok(report)
}

/// Names of the downstream interfaces configured now (not removed).
fn live_names(engine: &Engine) -> Vec<String> {
    engine.config().downstream.iter().filter(|d| d.state != LinkState::Removed).map(|d| d.name.clone()).collect()
}

/// Run until SIGTERM or SIGINT.
pub fn run(settings: Settings, config_path: Option<std::path::PathBuf>) -> Result<()> {
    let mut settings = settings;
    let mut source =
        Source { text: config_path.as_ref().and_then(|p| std::fs::read_to_string(p).ok()), path: config_path };
    let mut link_log = LinkLog::default();
    let config = engine_config(&settings, &mut link_log)?;
    let udp = open_sockets(&settings)?;
    let packet = PacketSender::new().map_err(|e| anyhow!("{e}"))?;
    let probes = if config.mode.caches() && !config.proxy.safe_network {
        let arp = ArpSocket::new().map_err(|e| anyhow!("{e}"))?;
        let icmp = IcmpSocket::new().map_err(|e| anyhow!("{e}"))?;
        Some((arp, icmp))
    } else {
        None
    };
    let mut watch = LinkWatch::open().map_err(|e| anyhow!("{e}"))?;
    let listeners = management::Listeners::bind(settings.metrics_listen, settings.control_socket.as_deref())?;
    // Spoofing mode: needs CAP_NET_ADMIN now and (to add server identifiers) later.
    let mut intercepts = Intercepts::install(&config)?;
    if intercepts.is_some() {
        if let Err(e) = crate::placement::check_host(&settings) {
            // Not fatal: routes may come up later (a PPP or DHCP uplink).
            tracing::warn!("{e}; client unicasts to that server do not pass through this host");
        }
    }
    let mut io = Io {
        serving: true,
        standby_drops: 0,
        udp,
        link_vrfs: Vec::new(),
        taps: Vec::new(),
        tapped: Vec::new(),
        tap_errors: 0,
        packet,
        probes,
        probe_batch: ProbeBatch::default(),
        unsent: Vec::new(),
        probe_send_failures: [0; 2],
        probe_answers_lost: [0; 2],
        probe_drops_seen: [0; 2],
        last_probe_error_log: None,
        link_frames: vec![0u8; LINK_BATCH * LINK_FRAME_LEN],
        link_sends: Vec::with_capacity(LINK_BATCH),
        send_errors: 0,
        last_send_error_log: None,
        bad_frames: [0; FrameError::ALL.len()],
        other_host_frames: 0,
    };

    let terminate = Arc::new(AtomicBool::new(false));
    let dump = Arc::new(AtomicBool::new(false));
    let hangup = Arc::new(AtomicBool::new(false));
    let (signal_read, signal_write) = std::os::unix::net::UnixStream::pair().context("creating the signal pipe")?;
    signal_read.set_nonblocking(true).context("signal pipe")?;
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&terminate)).context("installing signal handlers")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&dump))
        .context("installing signal handlers")?;
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hangup))
        .context("installing signal handlers")?;
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGUSR1,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::low_level::pipe::register(sig, signal_write.try_clone().context("signal pipe")?)
            .context("installing signal handlers")?;
    }

    // Every privileged socket is open and no other thread runs yet (the store writer and
    // the management thread inherit what is kept). CAP_NET_RAW stays: a tap is opened
    // whenever a downstream interface comes up.
    let engine = Engine::new(config);
    // The VRFs of the downstream interfaces found now get their sockets while port 67 may
    // still be bound.
    sync_sockets(&mut io, &settings, &engine);
    crate::privileges::drop_privileges(engine.config().mode, settings.user.as_deref())?;

    let mut engine = engine;
    sync_taps(&mut io, &engine);
    let mut outbox = Outbox::new(OUTBOX_SLOTS);
    let mut batch = RecvBatch::new(RECV_BATCH, RECV_BUFFER);
    let clock = Clock::new();
    // `[ha]`: active while the virtual address is here, or while holding the lease in Redis
    // (crate::ha); without `[ha]`, always.
    let virtual_address = settings.ha.and_then(|h| h.virtual_address());
    let mut role = match settings.ha {
        Some(HaSettings::Lease { .. }) => Role::Standby,
        _ => crate::ha::current_role(virtual_address),
    };
    let mut ha = settings.ha.map(|h| {
        match h {
            HaSettings::VirtualAddress { address, source } => tracing::info!(virtual_address = %address, from = source.label(), role = role.label(), "one of a pair of relays sharing the client table: active while the virtual address is on this host"),
            HaSettings::Lease { ttl } => tracing::info!(lease = %humantime::format_duration(ttl), "one of a pair of relays sharing the client table, no address to follow: active while holding the lease in Redis (standby until it is taken)"),
        }
        let lease_changes = matches!(h, HaSettings::Lease { .. }).then_some([0; LeaseChange::COUNT]);
        HaStatus { active: role == Role::Active, takeovers: u64::from(role == Role::Active), standby_drops: 0, lease_changes }
    });
    let mut persistence = match (&settings.store, engine.config().mode) {
        (Some(store), mode) if mode.caches() => Some(TableStore::start(store, &mut engine, clock.now(), role)),
        _ => None,
    };
    let lease = match (settings.ha, settings.store.as_ref().map(|s| &s.backend), persistence.as_mut()) {
        (Some(HaSettings::Lease { ttl }), Some(StoreBackend::Redis(redis)), Some(store)) => {
            // Every commit checks that the lease still names this relay (a standby's late
            // commit writes nothing).
            let node_id = crate::ha::node_id();
            store.fence(&node_id);
            Some(start_lease(redis, ttl, node_id, &signal_write)?)
        }
        _ => None,
    };
    // The per-client event log (`[log] events`), after the restore: restored records are
    // not events.
    let mut events = crate::event_log::EventLog::start(settings.events, &mut engine);
    let mut leasequery_seen: Vec<Willingness> = Vec::new();
    let mut truncated = 0u64;
    let mut receive_yields = 0u64;
    {
        let c = engine.config();
        let ds: Vec<String> = c
            .downstream
            .iter()
            .map(|d| format!("{}={}/{} ({})", d.name, d.address.addr, d.address.prefix_len, d.state.label()))
            .collect();
        let servers: Vec<String> = c.servers.iter().map(|s| s.to_string()).collect();
        tracing::info!(mode = ?c.mode, downstream = %ds.join(","), upstream = %settings.upstream.join(","), servers = %servers.join(","), "cdra started");
    }
    if let Some(i) = intercepts.as_mut() {
        // What the engine knows already: the servers, and identifiers in restored records.
        i.announce(&mut engine, Instant::now());
    }
    let mut mgmt = listeners.map(|l| management::start(l, &engine, settings.management)).transpose()?;
    // systemd Type=notify: ready once every socket is open, then WATCHDOG=1 from this
    // loop (crate::service; no-ops outside systemd).
    let mut watchdog = crate::service::Watchdog::from_env(Instant::now());
    crate::service::ready(&watchdog);

    // Descriptors waited on, rebuilt each turn (taps come and go): UDP, signals, interface
    // changes, the other UDP sockets (see `udp_poll_index`), the taps, then the optional
    // ARP, ICMP and management sockets. The waiter keeps them registered (epoll) while the
    // list stays the same; sockets that can be replaced (UDP, taps) name themselves by
    // their identity, the others are open for the whole run (identity 0).
    let mut waiter = cdra_sys::poll::ReadyWaiter::new().context("creating the epoll instance")?;
    let fixed = |fd: std::os::fd::RawFd| Watched { fd, identity: 0 };
    let udp = |u: &UdpSocket| Watched { fd: u.as_raw_fd(), identity: u.identity() };
    let mut fds: Vec<Watched> = Vec::new();
    let mut ready: Vec<bool> = Vec::new();
    let mut tap_batch = TapBatch::new(RECV_BATCH, RECV_BUFFER);
    let mut drain = [0u8; 64];
    let mut probe_buf = [0u8; 1500];
    while !terminate.load(Ordering::Relaxed) {
        fds.clear();
        fds.extend([udp(&io.udp.main), fixed(signal_read.as_raw_fd()), fixed(watch.as_raw_fd())]);
        // The other UDP sockets (VRFs, the relay source port): read every turn, as the
        // main one is; waited on so that they wake the loop.
        fds.extend(io.udp.all().skip(1).map(udp));
        let taps_at = fds.len();
        fds.extend(io.taps.iter().flatten().map(|t| Watched { fd: t.as_raw_fd(), identity: t.identity() }));
        let taps_end = fds.len();
        let arp_at = io.probes.as_ref().map(|(arp, icmp)| {
            fds.push(fixed(arp.as_raw_fd()));
            fds.push(fixed(icmp.as_raw_fd()));
            fds.len() - 2
        });
        let mgmt_at = mgmt.as_ref().map(|m| {
            fds.push(fixed(m.fd()));
            fds.len() - 1
        });
        ready.resize(fds.len(), false);
        // The clock is read here only when a timer is due to end the wait.
        let wait = match engine.poll_timeout() {
            Some(t) => {
                Duration::from_millis(t.as_millis().saturating_sub(clock.now().as_millis())).min(Duration::from_secs(1))
            }
            None => Duration::from_secs(1),
        };
        let wait = if mgmt.as_ref().is_some_and(|m| m.wants_turn()) { Duration::ZERO } else { wait };
        // A table loading on its thread is picked up within LOAD_POLL of its end.
        let wait = if persistence.as_ref().is_some_and(TableStore::loading) { wait.min(LOAD_POLL) } else { wait };
        waiter.wait(&fds, Some(wait), &mut ready).context("waiting for packets")?;
        if ready.get(1) == Some(&true) {
            while matches!(std::io::Read::read(&mut &signal_read, &mut drain), Ok(n) if n > 0) {}
        }
        // The lease thread wakes the loop through the signal pipe after each change.
        if let (Some(lease), Some(status)) = (lease.as_ref(), ha.as_mut()) {
            while let Some(change) = lease.try_recv() {
                follow_lease(change, &mut role, status, persistence.as_mut(), &mut engine);
            }
        }
        if dump.swap(false, Ordering::Relaxed) {
            report::log_counters(&engine, io.send_errors, truncated);
        }
        if terminate.load(Ordering::Relaxed) {
            break;
        }
        // The turn's time: one clock read after the wait, for everything this turn does
        // (timers, every datagram of every batch, the watchdog).
        let turn_started = Instant::now();
        let now = clock.at(turn_started);
        // Interfaces that came, went or changed address: read the configured ones again.
        if ready.get(2) == Some(&true) && watch.drain() {
            match reconfigure(&settings, &mut engine, &mut io, &mut intercepts, &mut link_log, now, &mut outbox) {
                Ok(_) => {
                    if let Some(m) = mgmt.as_ref() {
                        m.update_statics(&engine);
                    }
                }
                Err(e) => tracing::warn!("following interface changes: {e:#}"),
            }
            if let (Some(address), Some(status)) = (virtual_address, ha.as_mut()) {
                follow_virtual_address(address, &mut role, status, persistence.as_mut(), &mut engine);
            }
        }
        io.serving = role == Role::Active && persistence.as_ref().is_none_or(TableStore::serving);
        // Leasequery asks nothing while what it sends would be thrown away (the table
        // loading from Redis, standby), and checks for an empty table once it serves.
        engine.set_serving(now, io.serving);
        if hangup.swap(false, Ordering::Relaxed) {
            let text = reload(
                &mut settings,
                &mut source,
                &mut engine,
                &mut io,
                &mut intercepts,
                &mut link_log,
                now,
                &mut outbox,
            );
            if let Some(m) = mgmt.as_ref() {
                m.update_statics(&engine);
            }
            drop(text); // logged by `reload`
        }
        // Probe answers first: one that came before its probe's deadline must be heard
        // before that deadline is acted on.
        if let Some(i) = arp_at {
            if ready.get(i) == Some(&true) || ready.get(i + 1) == Some(&true) {
                read_probe_answers(&mut io, &mut engine, now, &mut outbox, &mut probe_buf);
                io.send_all(&outbox);
                outbox.clear();
            }
        }
        if engine.poll_timeout().is_some_and(|t| t <= now) {
            engine.handle_timeout(now, &mut outbox);
            io.send_all(&outbox);
            outbox.clear();
        }
        // Management queries (metrics, control): a bounded share per turn, see management.rs.
        if let (Some(i), Some(m)) = (mgmt_at, mgmt.as_mut()) {
            if ready.get(i) == Some(&true) || m.wants_turn() {
                let persistence = persistence.as_ref().map(TableStore::status);
                let ha = ha.map(|h| HaStatus { standby_drops: io.standby_drops, ..h });
                let counters = IoCounters {
                    send_errors: io.send_errors,
                    oversized: truncated,
                    receive_yields,
                    bad_frames: io.bad_frames,
                    other_host_frames: io.other_host_frames,
                    probe_send_failures: io.probe_send_failures,
                    probe_answers_lost: io.probe_answers_lost,
                    persistence,
                    intercept: intercepts.as_ref().map(|i| i.status()),
                    event_write_errors: events.as_ref().map_or(0, |l| l.write_errors),
                    ha,
                };
                m.serve(&mut engine, now, counters);
                // `cdra reload` and `config` over the control socket: done here, where the
                // loop's state is.
                for (conn, request) in m.take_loop_requests() {
                    let text = match request {
                        management::LoopRequest::Reload => {
                            let text = reload(
                                &mut settings,
                                &mut source,
                                &mut engine,
                                &mut io,
                                &mut intercepts,
                                &mut link_log,
                                now,
                                &mut outbox,
                            );
                            m.update_statics(&engine);
                            text
                        }
                        management::LoopRequest::RunningConfig => match &source.text {
                            Some(t) => t.clone(),
                            None => "error: cdra was not started from a configuration file".to_string(),
                        },
                    };
                    m.answer_request(conn, text);
                }
            }
        }
        if ready.get(taps_at..taps_end).is_some_and(|r| r.iter().any(|x| *x))
            && read_taps(&mut io, &mut engine, now, &mut outbox, &mut tap_batch, settings.receive_batches)
        {
            receive_yields += 1;
        }
        // A UDP socket is read when the wait said it is readable (no `recvmmsg` that can
        // only say EAGAIN after a wake-up for a client request); one left with datagrams
        // after its budget stays readable and is read on the next turn.
        let sockets = io.udp.all().count();
        for k in 0..sockets {
            if ready.get(udp_poll_index(k)) != Some(&true) {
                continue;
            }
            for batches_read in 1.. {
                let n = match io.udp.all().nth(k).map(|u| u.recv_batch(&mut batch)) {
                    Some(Ok(n)) => n,
                    Some(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => 0,
                    Some(Err(e)) if k == 0 => return Err(anyhow!("receiving on UDP port 67: {e}")),
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "receiving on a UDP socket of a VRF");
                        0
                    }
                    None => 0,
                };
                for i in 0..n {
                    let Some(rx) = batch.try_get(i) else { continue };
                    if rx.truncated {
                        truncated += 1;
                        continue;
                    }
                    if !io.serving {
                        io.standby_drops += 1;
                        continue;
                    }
                    // A tapped link's requests are the tap's (should the filter have let one in).
                    if rx.data.first() == Some(&BOOTREQUEST) && io.tapped.contains(&rx.ifindex) {
                        continue;
                    }
                    let ingress =
                        Ingress { link_source: None, ifindex: rx.ifindex, src: rx.src, dst: rx.dst, data: rx.data };
                    let verdict = engine.handle_datagram(now, ingress, &mut outbox);
                    if let Verdict::Dropped(reason) = verdict {
                        tracing::debug!(ifindex = rx.ifindex, src = %rx.src, reason = reason.label(), "dropped");
                    }
                    if outbox.remaining() < 8 {
                        io.send_all(&outbox);
                        outbox.clear();
                    }
                }
                io.send_all(&outbox);
                outbox.clear();
                match after_batch(batches_read, n, batch.capacity(), settings.receive_batches) {
                    AfterBatch::ReadMore => {}
                    AfterBatch::Drained => break,
                    AfterBatch::Yield => {
                        receive_yields += 1;
                        break;
                    }
                }
            }
        }
        if let Some(i) = intercepts.as_mut() {
            i.announce(&mut engine, turn_started);
        }
        // Probes the kernel took none of the packets of: decided on the next turn (their
        // timers are filed for now).
        if !io.unsent.is_empty() {
            for p in io.unsent.drain(..) {
                engine.handle_probe_unsent(now, &p);
            }
        }
        if let Some(p) = persistence.as_mut() {
            p.flush_changes(&mut engine, clock.now());
        }
        // The event log follows a reload's `[log]`, then writes this turn's events.
        crate::event_log::turn(&mut events, settings.events, &mut engine);
        log_leasequery_servers(&engine, &mut leasequery_seen);
        watchdog.tick(turn_started);
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("cdra stopping");
    if let Some(m) = mgmt.take() {
        m.shutdown();
    }
    if let Some(p) = persistence.take() {
        p.shutdown(&mut engine);
    }
    // After the last commit: the relay taking the lease loads everything written.
    if let Some(l) = lease {
        if l.stop() {
            tracing::info!("pair's lease released: the other relay may take it at once");
        }
    }
    if let Some(log) = events.as_mut() {
        log.write_pending(&mut engine);
    }
    report::log_counters(&engine, io.send_errors, truncated);
    Ok(())
}

/// An address changed on this host: if the pair's virtual address came or went, this relay
/// takes over or hands over (crate::ha).
fn follow_virtual_address(
    address: std::net::Ipv4Addr,
    role: &mut Role,
    status: &mut HaStatus,
    store: Option<&mut TableStore>,
    engine: &mut Engine,
) {
    let now = crate::ha::current_role(Some(address));
    if now == *role {
        return;
    }
    tracing::info!(virtual_address = %address, from = role.label(), to = now.label(), "the virtual address moved: this relay is now the {}", now.label());
    change_role(now, role, status, store, engine);
}

/// The lease thread saw a change (crate::ha): counted, logged, and followed like a move of
/// the address (a relay alone that takes the lease stays active).
fn follow_lease(
    change: LeaseChange,
    role: &mut Role,
    status: &mut HaStatus,
    store: Option<&mut TableStore>,
    engine: &mut Engine,
) {
    if let Some(counts) = status.lease_changes.as_mut() {
        counts[change.index()] += 1;
    }
    let now = crate::ha::lease_role(change);
    let text = crate::ha::lease_change_text(change);
    match change {
        LeaseChange::Acquired | LeaseChange::Lost => {
            tracing::info!(change = change.label(), from = role.label(), to = now.label(), "{text}")
        }
        LeaseChange::Expired | LeaseChange::Alone => {
            tracing::warn!(change = change.label(), from = role.label(), to = now.label(), "{text}")
        }
    }
    if now != *role {
        change_role(now, role, status, store, engine);
    }
}

/// Take over or hand over (crate::ha).
fn change_role(now: Role, role: &mut Role, status: &mut HaStatus, store: Option<&mut TableStore>, engine: &mut Engine) {
    *role = now;
    status.active = now == Role::Active;
    status.takeovers += u64::from(now == Role::Active);
    if let Some(store) = store {
        store.role_changed(engine, now);
    }
}

/// Start the `cdra-lease` thread (crate::ha); it wakes the loop by writing to the signal
/// pipe.
fn start_lease(
    redis: &cdra_store::RedisConfig,
    ttl: Duration,
    node_id: String,
    signal_write: &std::os::unix::net::UnixStream,
) -> anyhow::Result<cdra_store::Lease> {
    let config = cdra_store::LeaseConfig { redis: redis.clone(), ttl, node_id };
    tracing::info!(node_id = %config.node_id, key = %config.key(), url = %redis.display_url(), "taking part in the pair's lease");
    let wake = signal_write.try_clone().context("signal pipe")?;
    // A full pipe already wakes the loop: never block the lease thread on it.
    wake.set_nonblocking(true).context("signal pipe")?;
    cdra_store::Lease::start(config, move || {
        let _ = std::io::Write::write(&mut &wake, &[0]);
    })
    .context("starting the lease thread")
}

/// A reload (SIGHUP or `cdra reload`): the file read and checked as `cdra check` does, then
/// applied; or refused, with the running configuration kept. Returns the answer for `cdra
/// reload` (first word `ok` or `error`), also logged.
#[allow(clippy::too_many_arguments)] // the loop's state a reload touches
fn reload(
    settings: &mut Settings,
    source: &mut Source,
    engine: &mut Engine,
    io: &mut Io,
    intercepts: &mut Option<Intercepts>,
    log: &mut LinkLog,
    now: Timestamp,
    outbox: &mut Outbox,
) -> String {
    let Some(path) = source.path.clone() else {
        let text = "error: no configuration file to reload (cdra was started with the dhcrelay command line)";
        tracing::warn!("{text}");
        return text.to_string();
    };
    let (new, text) = match crate::reload::read(&path) {
        Ok(x) => x,
        Err(e) => {
            tracing::error!("reload refused, the running configuration stays: {e}");
            return format!("error: {e}");
        }
    };
    let restart = crate::reload::restart_only(settings, &new);
    match reconfigure(&new, engine, io, intercepts, log, now, outbox) {
        Ok(report) => {
            let said = crate::reload::describe(&report, &restart);
            tracing::info!(config = %path.display(), "{said}");
            *settings = new;
            source.text = Some(text);
            format!("ok: {said}")
        }
        Err(e) => {
            tracing::error!(config = %path.display(), "reload refused, the running configuration stays: {e:#}");
            format!("error: {}: {e:#}", path.display())
        }
    }
}

/// Log, once each time it changes, whether a server answers RFC 4388 leasequery (a server
/// found not answering is left alone until the next sweep: `cdra_leasequery_server`).
fn log_leasequery_servers(engine: &Engine, seen: &mut Vec<Willingness>) {
    let servers = engine.leasequery().servers();
    if seen.len() != servers.len() {
        seen.resize(servers.len(), Willingness::Unknown);
    }
    for ((i, s), was) in servers.iter().enumerate().zip(seen.iter_mut()) {
        if s.willingness == *was {
            continue;
        }
        *was = s.willingness;
        let server = engine.config().servers.get(i).copied();
        match s.willingness {
            Willingness::NotAnswering => tracing::warn!(
                server = ?server,
                "server does not answer leasequery (RFC 4388): left alone until the next sweep"
            ),
            Willingness::Answers => tracing::info!(server = ?server, "server answers leasequery (RFC 4388)"),
            Willingness::Unknown => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_stops_when_the_socket_is_empty_or_the_budget_is_spent() {
        use AfterBatch::*;
        for (batches_read, received, want) in [
            (1, 0, Drained),
            (1, 31, Drained),
            (1, 32, ReadMore),
            (3, 32, ReadMore),
            (4, 32, Yield),
            (4, 5, Drained),
            (9, 32, Yield),
        ] {
            assert_eq!(after_batch(batches_read, received, 32, 4), want, "batch {batches_read}, {received} datagrams");
        }
        // Budget 1: one batch per wake-up.
        assert_eq!(after_batch(1, 32, 32, 1), Yield);
    }

    #[test]
    fn sustained_load_still_leaves_turns_for_the_rest_of_the_loop() {
        // Every batch full, for ever: each wake-up reads exactly the budget, then yields.
        for budget in [1, 4, 16] {
            let mut read = 0;
            for batches_read in 1.. {
                read += 1;
                if after_batch(batches_read, 32, 32, budget) != AfterBatch::ReadMore {
                    break;
                }
            }
            assert_eq!(read, budget);
        }
    }
}
