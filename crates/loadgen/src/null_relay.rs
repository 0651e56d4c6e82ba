//! The null relay: the floor under cdra's relay mode. It opens the sockets cdra's relay mode
//! opens, waits and reads the way cdra's loop does, and makes the same system calls per
//! message, but does no DHCP work beyond what the server and the client need to get an
//! answer: no engine, no transaction table, no option 82, no counters, no logging. What it
//! costs per exchange is what any relay built on cdra's I/O pays the kernel; the difference
//! between it and cdra (bench/run, setups `null-relay` and `cdra-relay`) is cdra's own work.
//!
//! Sockets (as `crates/cdra/src/daemon.rs` opens them for `mode = "relay"` with one
//! downstream and one upstream interface and no VRF, relay port, metrics or control socket):
//! - a tap ([`cdra_sys::tap::UdpTap`]: AF_PACKET, SOCK_DGRAM, ETH_P_IP, bound to the
//!   downstream interface, classic BPF filter "UDP to port 67, first payload byte 1",
//!   PACKET_AUXDATA) for client requests;
//! - the UDP socket 0.0.0.0:67 ([`cdra_sys::udp::UdpSocket`], IP_PKTINFO, with the BPF filter
//!   of [`UdpSocket::ignore_from`] that leaves the tapped link's requests to the tap) for
//!   server replies, and to send requests to the server;
//! - an AF_PACKET send-only socket ([`cdra_sys::packet::PacketSender`]) for replies to
//!   clients, sent as complete IPv4 datagrams to the client's MAC;
//! - waited on as in cdra: one end of a socket pair (cdra's signal pipe, quiet) and a netlink
//!   route socket ([`cdra_sys::linkwatch::LinkWatch`], drained when readable, as cdra does).
//!
//! System calls per wake-up, in cdra's order (cdra's `run` loop):
//! 1. `epoll_wait` on [UDP :67, signal pipe, netlink, tap] (timeout at most 1 s; registered
//!    once, [`cdra_sys::poll::ReadyWaiter`]);
//! 2. if the tap is readable: `recvmmsg` on the tap (batch of 32), then one `sendmmsg` on
//!    the UDP socket with the batch's requests to server:67; another `recvmmsg` only when
//!    the batch came back full (at most 4 batches, cdra's `relay.receive_batches` default);
//! 3. if the UDP socket is readable: `recvmmsg` on it (batch of 32), then one `sendmmsg`
//!    on the AF_PACKET socket with the batch's replies; again only while batches come back
//!    full, at most 4.
//!
//! So a DORA relayed costs, as in cdra: per wake-up one `epoll_wait`, one `recvmmsg` per
//! readable socket, and one `sendmmsg` per batch that produced something (at low rates a
//! batch is one datagram: 2 `sendmmsg` to the server and 2 to the clients per DORA; under
//! load, fewer). Time stamps are `clock_gettime` through the vDSO in both (no system call).
//!
//! Per request: only one broadcast or sent to giaddr (a renewal unicast to the server is
//! routed by the kernel; the tap sees it pass and leaves it, as cdra's engine does); IPv4/UDP
//! header checked for its length only (cdra also verifies the UDP
//! checksum when the kernel has not), the DHCP payload copied once into a slot of a batch buffer
//! (cdra copies it into its outbox), `hops` incremented and `giaddr` set there, sent.
//! Per reply: accepted only if it is a BOOTREPLY to our giaddr; the client's MAC (chaddr),
//! the broadcast flag, ciaddr and yiaddr decide the destination as RFC 2131 4.1 says (the
//! NAK rule, which needs the options, is left out: the benchmark's clients get none); the
//! payload copied once behind a 28-byte IPv4+UDP header written by
//! [`cdra_wire::ipv4::write_ipv4_udp`] (both checksums, as cdra) and sent from giaddr:67 to
//! port 68.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{anyhow, Context};
use cdra_sys::linkwatch::LinkWatch;
use cdra_sys::packet::{PacketSender, BROADCAST_MAC};
use cdra_sys::poll::{ReadyWaiter, Watched};
use cdra_sys::tap::{TapBatch, UdpTap};
use cdra_sys::udp::{RecvBatch, UdpSocket};
use cdra_wire::ipv4::{write_ipv4_udp, Ipv4Udp, Ipv4UdpHeader, UdpChecksum, IPV4_UDP_HEADER_LEN};

/// cdra's `RECV_BATCH`: datagrams per `recvmmsg`.
const RECV_BATCH: usize = 32;
/// cdra's `RECV_BUFFER`.
const RECV_BUFFER: usize = 4096;
/// cdra's default `relay.receive_batches`: batches per socket per wake-up.
const RECEIVE_BATCHES: usize = 4;
/// BOOTP ports.
const SERVER_PORT: u16 = 67;
const CLIENT_PORT: u16 = 68;
/// Fixed BOOTP header length (up to and including `file`), before the magic cookie.
const BOOTP_FIXED: usize = 236;

/// What the null relay needs to know.
#[derive(Debug, Clone, Copy)]
pub struct NullRelayConfig {
    /// Index of the downstream (client) interface.
    pub ifindex: u32,
    /// Our address on it: giaddr, and the source of replies to clients.
    pub giaddr: Ipv4Addr,
    /// The DHCP server requests go to.
    pub server: Ipv4Addr,
}

/// What it did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NullRelayStats {
    /// Requests sent to the server.
    pub forwarded: u64,
    /// Replies sent to clients.
    pub delivered: u64,
    /// Datagrams ignored (not a request or reply it handles).
    pub ignored: u64,
    /// Failed sends.
    pub send_errors: u64,
    /// Wake-ups (`epoll_wait` returns).
    pub wakeups: u64,
}

/// Turns a client request read by the tap (an IPv4 packet) into the payload to send to the
/// server, in `out`: hops + 1 and giaddr set (unless a relay before us set it). Returns its
/// length, or `None` for something that is not a BOOTREQUEST broadcast or sent to `giaddr`
/// (or has 16 hops already).
pub fn request_to_server(packet: &[u8], giaddr: Ipv4Addr, out: &mut [u8]) -> Option<usize> {
    let d = Ipv4Udp::new_checked_with(packet, UdpChecksum::Skip).ok()?;
    // A unicast to another address (a renewal to the server) is routed by the kernel; the
    // tap sees it pass, as cdra's does, and leaves it alone, as cdra does.
    if d.dst != Ipv4Addr::BROADCAST && d.dst != giaddr {
        return None;
    }
    let p = d.payload;
    if p.len() < BOOTP_FIXED || p.first() != Some(&1) {
        return None;
    }
    let body = out.get_mut(..p.len())?;
    body.copy_from_slice(p);
    let hops = body.get_mut(3)?;
    if *hops >= 16 {
        return None;
    }
    *hops += 1;
    let g = body.get_mut(24..28)?;
    if g == [0; 4] {
        g.copy_from_slice(&giaddr.octets());
    }
    Some(p.len())
}

/// Where a server reply goes on the client's link: (MAC, IPv4 destination), per RFC 2131
/// 4.1 without the NAK rule. `None` when it is not a BOOTREPLY to `giaddr`.
pub fn reply_destination(payload: &[u8], giaddr: Ipv4Addr) -> Option<([u8; 6], Ipv4Addr)> {
    if payload.len() < BOOTP_FIXED || payload.first() != Some(&2) {
        return None;
    }
    let addr = |at: usize| -> Option<Ipv4Addr> {
        let b: [u8; 4] = payload.get(at..at + 4)?.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    };
    if addr(24)? != giaddr {
        return None;
    }
    let mac: [u8; 6] = payload.get(28..34)?.try_into().ok()?;
    let broadcast_flag = payload.get(10).is_some_and(|b| b & 0x80 != 0);
    let (ciaddr, yiaddr) = (addr(12)?, addr(16)?);
    // htype 1, hlen 6: an Ethernet chaddr can be reached by a link-layer unicast.
    let ethernet = payload.get(1..3) == Some(&[1, 6]);
    Some(if !ciaddr.is_unspecified() && ethernet {
        (mac, ciaddr)
    } else if broadcast_flag || yiaddr.is_unspecified() || !ethernet {
        (BROADCAST_MAC, Ipv4Addr::BROADCAST)
    } else {
        (mac, yiaddr)
    })
}

/// Writes the IPv4 + UDP headers for a reply whose payload is already at
/// `frame[28..28 + len]`; returns the datagram length.
pub fn reply_frame(frame: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> Option<usize> {
    let header = Ipv4UdpHeader { src, dst, src_port: SERVER_PORT, dst_port: CLIENT_PORT, ttl: 64 };
    write_ipv4_udp(frame, header, len).ok()
}

/// Buffers reused for every batch: the requests and replies of one `recvmmsg`, each in its
/// own slot, ready for one `sendmmsg`.
struct Slots {
    /// [`RECV_BATCH`] request payloads of up to [`RECV_BUFFER`] bytes.
    requests: Vec<u8>,
    /// [`RECV_BATCH`] reply datagrams (IPv4 + UDP header and payload).
    frames: Vec<u8>,
    /// Length of each filled request slot.
    request_lens: Vec<usize>,
    /// Per filled frame slot: where it goes and its length.
    sends: Vec<([u8; 6], usize)>,
}

const FRAME_LEN: usize = IPV4_UDP_HEADER_LEN + RECV_BUFFER;

impl Slots {
    fn new() -> Self {
        Slots {
            requests: vec![0u8; RECV_BATCH * RECV_BUFFER],
            frames: vec![0u8; RECV_BATCH * FRAME_LEN],
            request_lens: Vec::with_capacity(RECV_BATCH),
            sends: Vec::with_capacity(RECV_BATCH),
        }
    }
}

/// The requests of one tap batch to the server, with one `sendmmsg` (as cdra sends a
/// batch's output).
fn forward_requests(
    batch: &TapBatch,
    n: usize,
    cfg: &NullRelayConfig,
    udp: &UdpSocket,
    slots: &mut Slots,
    st: &mut NullRelayStats,
) {
    slots.request_lens.clear();
    for i in 0..n {
        let Some(t) = batch.try_get(i).filter(|t| !t.truncated) else { continue };
        let at = slots.request_lens.len() * RECV_BUFFER;
        let out = slots.requests.get_mut(at..at + RECV_BUFFER);
        match out.and_then(|out| request_to_server(t.packet, cfg.giaddr, out)) {
            Some(len) => slots.request_lens.push(len),
            None => st.ignored += 1,
        }
    }
    let server = SocketAddrV4::new(cfg.server, SERVER_PORT);
    let requests = &slots.requests;
    let datagrams = slots.request_lens.iter().enumerate().map(|(k, &len)| {
        let at = k * RECV_BUFFER;
        (requests.get(at..at + len).unwrap_or(&[]), server)
    });
    let mut refused = 0;
    let sent = udp.send_many_to(datagrams, &mut |_, _| refused += 1);
    st.forwarded += sent as u64;
    st.send_errors += refused;
}

/// The replies of one UDP batch to the clients' MACs, framed, with one `sendmmsg` on the
/// AF_PACKET socket (as cdra sends a batch's output).
fn deliver_replies(
    batch: &RecvBatch,
    cfg: &NullRelayConfig,
    packet: &PacketSender,
    slots: &mut Slots,
    st: &mut NullRelayStats,
) {
    slots.sends.clear();
    for rx in batch.iter().filter(|rx| !rx.truncated) {
        let Some((mac, dst)) = reply_destination(rx.data, cfg.giaddr) else {
            st.ignored += 1;
            continue;
        };
        let at = slots.sends.len() * FRAME_LEN;
        let len = rx.data.len();
        let Some(frame) = slots.frames.get_mut(at..at + FRAME_LEN) else {
            st.ignored += 1;
            continue;
        };
        let Some(body) = frame.get_mut(IPV4_UDP_HEADER_LEN..IPV4_UDP_HEADER_LEN + len) else {
            st.ignored += 1;
            continue;
        };
        body.copy_from_slice(rx.data);
        match reply_frame(frame, cfg.giaddr, dst, len) {
            Some(total) => slots.sends.push((mac, total)),
            None => st.ignored += 1,
        }
    }
    let frames = &slots.frames;
    let sends = slots.sends.iter().enumerate().map(|(k, &(mac, len))| {
        let at = k * FRAME_LEN;
        (cfg.ifindex, mac, frames.get(at..at + len).unwrap_or(&[]))
    });
    let mut refused = 0;
    let sent = packet.send_many(sends, &mut |_, _| refused += 1);
    st.delivered += sent as u64;
    st.send_errors += refused;
}

/// Relays until `stop` is set.
pub fn run(cfg: NullRelayConfig, stop: &AtomicBool) -> anyhow::Result<NullRelayStats> {
    let tap = UdpTap::open(cfg.ifindex, SERVER_PORT, Some(1)).map_err(|e| anyhow!("{e}"))?;
    let udp = UdpSocket::bind_any(SERVER_PORT, None).map_err(|e| anyhow!("{e}"))?;
    udp.ignore_from(&[cfg.ifindex], 1).context("filtering tapped requests out of the UDP socket")?;
    let packet = PacketSender::new().map_err(|e| anyhow!("{e}"))?;
    // Polled like cdra's signal pipe and interface watch; nothing arrives on them.
    let (quiet, _quiet_peer) = std::os::unix::net::UnixStream::pair().context("socket pair")?;
    let mut watch = LinkWatch::open().map_err(|e| anyhow!("{e}"))?;
    let fds =
        [udp.as_raw_fd(), quiet.as_raw_fd(), watch.as_raw_fd(), tap.as_raw_fd()].map(|fd| Watched { fd, identity: 0 });
    let mut waiter = ReadyWaiter::new().context("epoll")?;
    let mut ready = [false; 4];
    let mut tap_batch = TapBatch::new(RECV_BATCH, RECV_BUFFER);
    let mut batch = RecvBatch::new(RECV_BATCH, RECV_BUFFER);
    let mut slots = Slots::new();
    let mut st = NullRelayStats::default();
    while !stop.load(Ordering::Relaxed) {
        waiter.wait(&fds, Some(Duration::from_secs(1)), &mut ready).context("epoll_wait")?;
        st.wakeups += 1;
        if ready[2] {
            // cdra reads interface changes (and then re-reads the interfaces; none change
            // during a benchmark). Unread, they would keep the socket readable.
            watch.drain();
        }
        if ready[3] {
            for _ in 0..RECEIVE_BATCHES {
                let n = tap.recv_batch(&mut tap_batch).context("reading the tap")?;
                forward_requests(&tap_batch, n, &cfg, &udp, &mut slots, &mut st);
                if n < tap_batch.capacity() {
                    break;
                }
            }
        }
        if ready[0] {
            for _ in 0..RECEIVE_BATCHES {
                let n = udp.recv_batch(&mut batch).context("reading UDP :67")?;
                deliver_replies(&batch, &cfg, &packet, &mut slots, &mut st);
                if n < batch.capacity() {
                    break;
                }
            }
        }
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GI: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 1);

    fn bootp(op: u8) -> Vec<u8> {
        let mut p = vec![0u8; 300];
        p[0] = op;
        p[1] = 1;
        p[2] = 6;
        p[28..34].copy_from_slice(&[2, 0xcd, 0, 0, 0, 7]);
        p[236..240].copy_from_slice(&[99, 130, 83, 99]);
        p
    }

    #[test]
    fn request_gets_giaddr_and_a_hop() {
        let payload = bootp(1);
        let mut pkt = vec![0u8; IPV4_UDP_HEADER_LEN + payload.len()];
        pkt[IPV4_UDP_HEADER_LEN..].copy_from_slice(&payload);
        let h = Ipv4UdpHeader {
            src: Ipv4Addr::UNSPECIFIED,
            dst: Ipv4Addr::BROADCAST,
            src_port: CLIENT_PORT,
            dst_port: SERVER_PORT,
            ttl: 64,
        };
        let total = write_ipv4_udp(&mut pkt, h, payload.len()).expect("header");
        let mut out = vec![0u8; 1500];
        let n = request_to_server(&pkt[..total], GI, &mut out).expect("forwarded");
        assert_eq!(n, payload.len());
        assert_eq!(out[3], 1);
        assert_eq!(&out[24..28], &GI.octets());
        assert_eq!(&out[28..34], &payload[28..34]);
        // A reply, or a request with 16 hops, is not forwarded.
        let mut bad = pkt.clone();
        bad[IPV4_UDP_HEADER_LEN] = 2;
        assert_eq!(request_to_server(&bad[..total], GI, &mut out), None);
        let mut far = pkt.clone();
        far[IPV4_UDP_HEADER_LEN + 3] = 16;
        assert_eq!(request_to_server(&far[..total], GI, &mut out), None);
        // A renewal unicast to the server passes by: the kernel routes it.
        let renewal = Ipv4UdpHeader { src: Ipv4Addr::new(10, 64, 1, 9), dst: Ipv4Addr::new(10, 200, 0, 1), ..h };
        let mut routed = pkt.clone();
        let total = write_ipv4_udp(&mut routed, renewal, payload.len()).expect("header");
        assert_eq!(request_to_server(&routed[..total], GI, &mut out), None);
        // One sent to our address is relayed.
        let mut to_us = pkt;
        let total = write_ipv4_udp(&mut to_us, Ipv4UdpHeader { dst: GI, ..renewal }, payload.len()).expect("header");
        assert!(request_to_server(&to_us[..total], GI, &mut out).is_some());
    }

    #[test]
    fn replies_go_where_rfc_2131_says() {
        let mac = [2, 0xcd, 0, 0, 0, 7];
        let mut r = bootp(2);
        r[24..28].copy_from_slice(&GI.octets());
        r[16..20].copy_from_slice(&[10, 64, 1, 9]);
        assert_eq!(reply_destination(&r, GI), Some((mac, Ipv4Addr::new(10, 64, 1, 9))));
        let mut b = r.clone();
        b[10] = 0x80;
        assert_eq!(reply_destination(&b, GI), Some((BROADCAST_MAC, Ipv4Addr::BROADCAST)));
        let mut c = r.clone();
        c[12..16].copy_from_slice(&[10, 64, 1, 10]);
        assert_eq!(reply_destination(&c, GI), Some((mac, Ipv4Addr::new(10, 64, 1, 10))));
        // Not to our giaddr, or not a reply: not ours to deliver.
        assert_eq!(reply_destination(&r, Ipv4Addr::new(10, 64, 0, 2)), None);
        assert_eq!(reply_destination(&bootp(1), GI), None);
        let mut frame = vec![0u8; IPV4_UDP_HEADER_LEN + r.len()];
        frame[IPV4_UDP_HEADER_LEN..].copy_from_slice(&r);
        let total = reply_frame(&mut frame, GI, Ipv4Addr::new(10, 64, 1, 9), r.len()).expect("frame");
        let d = Ipv4Udp::new_checked(&frame[..total]).expect("valid IPv4/UDP with checksums");
        assert_eq!((d.src, d.dst, d.src_port, d.dst_port), (GI, Ipv4Addr::new(10, 64, 1, 9), 67, 68));
        assert_eq!(d.payload, &r[..]);
    }
}
