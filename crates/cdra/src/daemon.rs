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
//! Then, on every wake-up: signals, due timers, probe answers, the metrics and control
//! sockets, at most `relay.receive_batches` batches from each tap and from UDP :67
//! (`recvmmsg`, each datagram fed to the engine and what it produced sent), then the server
//! identifiers the engine learned go to the interception (spoofing mode), then the store.
//! Every source gets a bounded turn per wake-up ([`after_batch`] decides when reading
//! stops; probe sockets are read at most 256 answers each), so sustained load cannot keep
//! timers, probe answers, the store or SIGTERM waiting: the next `poll` returns at once
//! while datagrams are pending, and they are read on the next turn.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use cdra_core::{
    Destination, Downstream, EchoId, Engine, EngineConfig, Ingress, Ipv4Net, Outbox, ProbeAnswer, Timestamp, Verdict,
    CLIENT_PORT, SERVER_PORT,
};
use cdra_sys::icmp::IcmpSocket;
use cdra_sys::iface::{interface_by_name, Interface};
use cdra_sys::packet::{ArpSocket, PacketSender};
use cdra_sys::tap::{LinkDelivery, TapBatch, TransportChecksum, UdpTap};
use cdra_sys::udp::{RecvBatch, UdpSocket};
use cdra_wire::ipv4::{write_ipv4_udp, FrameError, Ipv4Udp, Ipv4UdpHeader, UdpChecksum, IPV4_UDP_HEADER_LEN};

use crate::config::Settings;
use crate::interception::Intercepts;
use crate::management;
use crate::metrics::IoCounters;
use crate::persistence::Persistence;
use crate::report;

/// Datagrams received per `recvmmsg`.
const RECV_BATCH: usize = 32;
/// The first byte of a BOOTREQUEST (RFC 951 `op`): what the taps read, and what the UDP
/// socket is spared on the links they read.
const BOOTREQUEST: u8 = 1;
/// Largest datagram accepted (bigger ones are truncated and dropped).
const RECV_BUFFER: usize = 4096;
/// Outbox slots: a full batch can produce one datagram per server per request.
const OUTBOX_SLOTS: usize = RECV_BATCH * 4;

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
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.wall_at_start_ms + self.start.elapsed().as_millis() as u64)
    }
}

fn net_of(i: &Interface, want: Option<Ipv4Addr>) -> Option<Ipv4Net> {
    let nets = i.ipv4.iter();
    let chosen = match want {
        Some(a) => nets.clone().find(|n| n.addr == a),
        None => nets.clone().next(),
    }?;
    Some(Ipv4Net { addr: chosen.addr, prefix_len: chosen.prefix_len })
}

/// Resolve the configured interfaces into the engine's model.
fn engine_config(settings: &Settings) -> Result<EngineConfig> {
    let mut downstream = Vec::new();
    for (n, d) in settings.downstream.iter().enumerate() {
        let i = interface_by_name(&d.interface).map_err(|e| anyhow!("downstream[{n}].interface: {e}"))?;
        let address = match d.address {
            Some(a) => net_of(&i, Some(a))
                .ok_or_else(|| anyhow!("downstream[{n}].address: {a} is not an address of interface {}", i.name))?,
            None => net_of(&i, None)
                .ok_or_else(|| anyhow!("downstream[{n}].interface: interface {} has no IPv4 address", i.name))?,
        };
        if !i.up {
            tracing::warn!(interface = %i.name, "downstream interface is down; clients on it will not be heard until it is up");
        }
        downstream.push(Downstream {
            name: i.name.clone(),
            ifindex: i.index,
            address,
            all_addresses: i.ipv4.iter().map(|n| n.addr).collect(),
            mac: i.mac,
            circuit_id: d.circuit_id.clone().unwrap_or_else(|| i.name.as_bytes().to_vec()),
            trusted: d.trusted,
        });
    }
    let mut upstream = Vec::new();
    let mut upstream_addresses = Vec::new();
    for (n, name) in settings.upstream.iter().enumerate() {
        let i = interface_by_name(name).map_err(|e| anyhow!("upstream[{n}].interface: {e}"))?;
        if i.ipv4.is_empty() {
            bail!("upstream[{n}].interface: interface {} has no IPv4 address", i.name);
        }
        upstream.push(i.index);
        upstream_addresses.extend(i.ipv4.iter().map(|n| n.addr));
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
    // The engine's choices an outsider must not predict (probe identifiers, the xids of its
    // own messages, eviction samples) start from the operating system's randomness.
    config.proxy.seed = getrandom::u64().map_err(|e| anyhow!("drawing a random seed: {e}"))?;
    if config.mode.caches() {
        for d in &config.downstream {
            if d.mac.is_none() {
                tracing::warn!(interface = %d.name, "downstream interface has no MAC address: ARP probes are not possible on it, ICMP only");
            }
        }
    }
    Ok(config)
}

/// Sockets of the data plane.
struct Io {
    udp: UdpSocket,
    /// One per downstream interface: client requests with their Ethernet source.
    taps: Vec<UdpTap>,
    packet: PacketSender,
    /// ARP and ICMP sockets for probes (proxy mode only).
    probes: Option<(ArpSocket, IcmpSocket)>,
    frame: Vec<u8>,
    send_errors: u64,
    last_send_error_log: Option<Instant>,
    /// Tapped packets that were not a UDP datagram we read, by what was wrong.
    bad_frames: [u64; FrameError::ALL.len()],
    /// Tapped frames addressed to another host's MAC (seen only in promiscuous mode).
    other_host_frames: u64,
}

impl Io {
    /// Start the probes the engine asked for: an ARP probe on the client's link and an ICMP
    /// echo (paper 3.2).
    fn start_probes(&mut self, outbox: &Outbox) {
        let Some((arp, icmp)) = &self.probes else { return };
        for p in outbox.probes() {
            if let Some(mac) = p.sender_mac {
                if let Err(e) = arp.send_probe(p.ifindex, mac, p.target) {
                    tracing::debug!(target = %p.target, error = %e, "ARP probe failed");
                }
            }
            if let Err(e) = icmp.send_echo(p.target, p.echo.ident, p.echo.seq) {
                tracing::debug!(target = %p.target, error = %e, "ICMP probe failed");
            }
        }
    }

    fn send_all(&mut self, outbox: &Outbox) {
        self.start_probes(outbox);
        for out in outbox.iter() {
            let payload = out.payload();
            let result = match out.destination {
                Destination::Server { addr } => {
                    self.udp.send_to(payload, SocketAddrV4::new(addr, SERVER_PORT), None, None)
                }
                Destination::ClientUnicast { ifindex, src, dst } => {
                    self.udp.send_to(payload, SocketAddrV4::new(dst, CLIENT_PORT), Some(src), Some(ifindex))
                }
                Destination::ClientLink { ifindex, mac, src, dst } => self.send_link(ifindex, mac, src, dst, payload),
            };
            if let Err(e) = result {
                self.send_errors += 1;
                let now = Instant::now();
                if self.last_send_error_log.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10)) {
                    self.last_send_error_log = Some(now);
                    tracing::warn!(destination = ?out.destination, error = %e, total_send_errors = self.send_errors, "send failed");
                }
            }
        }
    }

    fn send_link(
        &mut self,
        ifindex: u32,
        mac: [u8; 6],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload: &[u8],
    ) -> std::io::Result<usize> {
        let Some(body) = self.frame.get_mut(IPV4_UDP_HEADER_LEN..IPV4_UDP_HEADER_LEN + payload.len()) else {
            return Err(std::io::Error::other("reply larger than the frame buffer"));
        };
        body.copy_from_slice(payload);
        let header = Ipv4UdpHeader { src, dst, src_port: SERVER_PORT, dst_port: CLIENT_PORT, ttl: 64 };
        let total =
            write_ipv4_udp(&mut self.frame, header, payload.len()).map_err(|e| std::io::Error::other(e.label()))?;
        self.packet.send(ifindex, mac, self.frame.get(..total).unwrap_or(&[]))
    }
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
    clock: &Clock,
    outbox: &mut Outbox,
    batch: &mut TapBatch,
    budget: usize,
) -> bool {
    let mut yielded = false;
    for t in 0..io.taps.len() {
        for batches_read in 1.. {
            let n = match io.taps.get(t).map(|tap| tap.recv_batch(batch)) {
                Some(Ok(n)) => n,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "reading client requests failed");
                    0
                }
                None => 0,
            };
            let now = clock.now();
            for i in 0..n {
                let Some(tapped) = batch.try_get(i).filter(|p| !p.truncated) else { continue };
                let Some(ingress) = tapped_ingress(&tapped, &mut io.bad_frames, &mut io.other_host_frames) else {
                    continue;
                };
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

/// Run until SIGTERM or SIGINT.
pub fn run(settings: Settings) -> Result<()> {
    let config = engine_config(&settings)?;
    let udp = UdpSocket::bind_any(SERVER_PORT, None).map_err(|e| anyhow!("{e}"))?;
    let mut taps = Vec::new();
    for d in &config.downstream {
        taps.push(UdpTap::open(d.ifindex, SERVER_PORT, Some(BOOTREQUEST)).map_err(|e| anyhow!("{e}"))?);
    }
    let tapped: Vec<u32> = config.downstream.iter().map(|d| d.ifindex).collect();
    if let Err(e) = udp.ignore_from(&tapped, BOOTREQUEST) {
        // Without the filter those requests are queued twice; the loop skips the UDP copy.
        tracing::warn!(error = %e, "cannot filter client requests out of the UDP socket");
    }
    let packet = PacketSender::new().map_err(|e| anyhow!("{e}"))?;
    let probes = if config.mode.caches() && !config.proxy.safe_network {
        let arp = ArpSocket::new().map_err(|e| anyhow!("{e}"))?;
        let icmp = IcmpSocket::new().map_err(|e| anyhow!("{e}"))?;
        Some((arp, icmp))
    } else {
        None
    };
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
        udp,
        taps,
        packet,
        probes,
        frame: vec![0u8; IPV4_UDP_HEADER_LEN + cdra_core::outbox::OUT_BUFFER_SIZE],
        send_errors: 0,
        last_send_error_log: None,
        bad_frames: [0; FrameError::ALL.len()],
        other_host_frames: 0,
    };

    let terminate = Arc::new(AtomicBool::new(false));
    let dump = Arc::new(AtomicBool::new(false));
    let (signal_read, signal_write) = std::os::unix::net::UnixStream::pair().context("creating the signal pipe")?;
    signal_read.set_nonblocking(true).context("signal pipe")?;
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&terminate)).context("installing signal handlers")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&dump))
        .context("installing signal handlers")?;
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT, signal_hook::consts::SIGUSR1] {
        signal_hook::low_level::pipe::register(sig, signal_write.try_clone().context("signal pipe")?)
            .context("installing signal handlers")?;
    }

    // Every privileged socket is open and no other thread runs yet (the store writer and
    // the management thread inherit what is kept).
    crate::privileges::drop_privileges(config.mode, settings.user.as_deref())?;

    let mut engine = Engine::new(config);
    let mut outbox = Outbox::new(OUTBOX_SLOTS);
    let mut batch = RecvBatch::new(RECV_BATCH, RECV_BUFFER);
    let clock = Clock::new();
    let mut persistence = match (&settings.store, engine.config().mode) {
        (Some(store), mode) if mode.caches() => Some(Persistence::start(store, &mut engine, clock.now())),
        _ => None,
    };
    let mut truncated = 0u64;
    let mut receive_yields = 0u64;
    {
        let c = engine.config();
        let ds: Vec<String> =
            c.downstream.iter().map(|d| format!("{}={}/{}", d.name, d.address.addr, d.address.prefix_len)).collect();
        let servers: Vec<String> = c.servers.iter().map(|s| s.to_string()).collect();
        tracing::info!(mode = ?c.mode, downstream = %ds.join(","), upstream = %settings.upstream.join(","), servers = %servers.join(","), "cdra started");
    }
    if let Some(i) = intercepts.as_mut() {
        // What the engine knows already: the servers, and identifiers in restored records.
        i.announce(&mut engine, Instant::now());
    }
    let mut mgmt = listeners.map(|l| management::start(l, &engine, settings.management)).transpose()?;
    // systemd Type=notify: ready once every socket is open (a no-op outside systemd).
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);

    // Descriptors polled: UDP, signals, the taps, then the optional ARP, ICMP and control
    // sockets.
    let mut fds = vec![io.udp.as_raw_fd(), signal_read.as_raw_fd()];
    let taps_at = fds.len();
    fds.extend(io.taps.iter().map(|t| t.as_raw_fd()));
    let mut tap_batch = TapBatch::new(RECV_BATCH, RECV_BUFFER);
    let arp_at = io.probes.as_ref().map(|(arp, icmp)| {
        fds.push(arp.as_raw_fd());
        fds.push(icmp.as_raw_fd());
        fds.len() - 2
    });
    let mgmt_at = mgmt.as_ref().map(|m| {
        fds.push(m.fd());
        fds.len() - 1
    });
    let mut ready = vec![false; fds.len()];
    let mut drain = [0u8; 64];
    let mut probe_buf = [0u8; 1500];
    while !terminate.load(Ordering::Relaxed) {
        let now = clock.now();
        let wait = match engine.poll_timeout() {
            Some(t) => Duration::from_millis(t.as_millis().saturating_sub(now.as_millis())).min(Duration::from_secs(1)),
            None => Duration::from_secs(1),
        };
        let wait = if mgmt.as_ref().is_some_and(|m| m.wants_turn()) { Duration::ZERO } else { wait };
        cdra_sys::poll::wait_readable(&fds, Some(wait), &mut ready).context("waiting for packets")?;
        if ready.get(1) == Some(&true) {
            while matches!(std::io::Read::read(&mut &signal_read, &mut drain), Ok(n) if n > 0) {}
        }
        if dump.swap(false, Ordering::Relaxed) {
            report::log_counters(&engine, io.send_errors, truncated);
        }
        if terminate.load(Ordering::Relaxed) {
            break;
        }
        let now = clock.now();
        if engine.poll_timeout().is_some_and(|t| t <= now) {
            engine.handle_timeout(now, &mut outbox);
            io.send_all(&outbox);
            outbox.clear();
        }
        if let Some(i) = arp_at {
            if ready.get(i) == Some(&true) || ready.get(i + 1) == Some(&true) {
                read_probe_answers(&mut io, &mut engine, now, &mut outbox, &mut probe_buf);
                io.send_all(&outbox);
                outbox.clear();
            }
        }
        // Management queries (metrics, control): a bounded share per turn, see management.rs.
        if let (Some(i), Some(m)) = (mgmt_at, mgmt.as_mut()) {
            if ready.get(i) == Some(&true) || m.wants_turn() {
                let persistence = persistence.as_ref().map(Persistence::status);
                let io = IoCounters {
                    send_errors: io.send_errors,
                    oversized: truncated,
                    receive_yields,
                    bad_frames: io.bad_frames,
                    other_host_frames: io.other_host_frames,
                    persistence,
                    intercept: intercepts.as_ref().map(|i| i.status()),
                };
                m.serve(&mut engine, now, io);
            }
        }
        if ready.get(taps_at..taps_at + io.taps.len()).is_some_and(|r| r.iter().any(|x| *x))
            && read_taps(&mut io, &mut engine, &clock, &mut outbox, &mut tap_batch, settings.receive_batches)
        {
            receive_yields += 1;
        }
        for batches_read in 1.. {
            let n = match io.udp.recv_batch(&mut batch) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
                Err(e) => return Err(anyhow!("receiving on UDP port 67: {e}")),
            };
            let now = clock.now();
            for i in 0..n {
                let Some(rx) = batch.try_get(i) else { continue };
                if rx.truncated {
                    truncated += 1;
                    continue;
                }
                // A tapped link's requests are the tap's (should the filter have let one in).
                if rx.data.first() == Some(&BOOTREQUEST) && tapped.contains(&rx.ifindex) {
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
        if let Some(i) = intercepts.as_mut() {
            i.announce(&mut engine, Instant::now());
        }
        if let Some(p) = persistence.as_mut() {
            p.flush_changes(&mut engine, clock.now());
        }
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("cdra stopping");
    if let Some(m) = mgmt.take() {
        m.shutdown();
    }
    if let Some(p) = persistence.take() {
        p.shutdown(&mut engine);
    }
    report::log_counters(&engine, io.send_errors, truncated);
    Ok(())
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
