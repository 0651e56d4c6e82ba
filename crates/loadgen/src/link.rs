//! A raw AF_PACKET socket on one interface: whole Ethernet frames out (so every emulated
//! client can have its own source MAC) and whole frames of one EtherType in, filtered in
//! the kernel by a classic BPF program.
//!
//! This crate has no `unsafe`: the socket is created, tuned (buffers, BPF filter) and used
//! for I/O through `rustix` and `socket2`; binding it to the interface and EtherType and
//! the PACKET_MR_PROMISC membership, which need a `sockaddr_ll` / `packet_mreq`, are done
//! by `cdra-sys` (the project's only crate with `unsafe`).
//!
//! Bound to a specific EtherType (not ETH_P_ALL), the socket never sees our own outgoing
//! frames. Binding to ETH_P_IP and ETH_P_ARP needs two sockets.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use anyhow::{anyhow, Context};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendAncillaryBuffer, SendFlags, SocketType};
use socket2::{SockFilter, SockRef};

/// Most frames handed to one `sendmmsg` call.
pub const SEND_BATCH: usize = 64;

/// Classic BPF: accept unfragmented IPv4/UDP datagrams to `port` (the socket is bound to
/// ETH_P_IP, so the frame is IPv4), drop everything else.
pub fn filter_udp_dst_port(port: u16) -> Vec<SockFilter> {
    vec![
        SockFilter::new(0x30, 0, 0, 23),              // 0: ldb [23]           IP protocol
        SockFilter::new(0x15, 0, 6, 17),              // 1: jeq #17 ? 2 : drop
        SockFilter::new(0x28, 0, 0, 20),              // 2: ldh [20]           flags+fragment offset
        SockFilter::new(0x45, 4, 0, 0x1fff),          // 3: jset #0x1fff ? drop : 4
        SockFilter::new(0xb1, 0, 0, 14),              // 4: ldxb 4*([14]&0xf)  IP header length
        SockFilter::new(0x48, 0, 0, 16),              // 5: ldh [x+16]         UDP destination port
        SockFilter::new(0x15, 0, 1, u32::from(port)), // 6: jeq #port ? accept : drop
        SockFilter::new(0x06, 0, 0, 0xffff),          // 7: ret accept
        SockFilter::new(0x06, 0, 0, 0),               // 8: ret drop
    ]
}

/// Classic BPF: accept ARP requests only.
pub fn filter_arp_request() -> Vec<SockFilter> {
    vec![
        SockFilter::new(0x28, 0, 0, 20),     // ldh [20]  ARP op
        SockFilter::new(0x15, 0, 1, 1),      // jeq #1 ? accept : drop
        SockFilter::new(0x06, 0, 0, 0xffff), // ret accept
        SockFilter::new(0x06, 0, 0, 0),      // ret drop
    ]
}

/// A packet socket bound to one interface and one EtherType.
#[derive(Debug)]
pub struct LinkSocket {
    fd: OwnedFd,
}

impl LinkSocket {
    /// Opens a SOCK_RAW packet socket for `ethertype` on interface `ifname`, with `filter`
    /// attached before any frame is queued to it and `buf_bytes` of receive and send buffer
    /// (SO_*BUFFORCE when permitted). `promisc` adds a PACKET_MR_PROMISC membership (undone
    /// by the kernel when the socket closes). Needs CAP_NET_RAW (CAP_NET_ADMIN for the
    /// forced buffer sizes).
    pub fn open(
        ifname: &str,
        ethertype: u16,
        filter: &[SockFilter],
        promisc: bool,
        buf_bytes: usize,
    ) -> anyhow::Result<Self> {
        let ifindex =
            cdra_sys::iface::name_to_index(ifname).map_err(|e| anyhow!("{e}")).context("looking up the interface")?;
        // Protocol 0: nothing is queued to the socket until it is bound (below), so the
        // filter is in place before the first frame arrives.
        let fd = rustix::net::socket(AddressFamily::PACKET, SocketType::RAW, None)
            .map_err(io::Error::from)
            .context("opening an AF_PACKET socket (needs CAP_NET_RAW)")?;
        let sock = SockRef::from(&fd);
        sock.attach_filter(filter).context("attaching the BPF filter")?;
        if rustix::net::sockopt::set_socket_recv_buffer_size_force(&fd, buf_bytes).is_err() {
            let _ = sock.set_recv_buffer_size(buf_bytes);
        }
        if rustix::net::sockopt::set_socket_send_buffer_size_force(&fd, buf_bytes).is_err() {
            let _ = sock.set_send_buffer_size(buf_bytes);
        }
        cdra_sys::packet::bind_packet_socket(&fd, ifindex, ethertype)
            .with_context(|| format!("binding the packet socket to {ifname}"))?;
        if promisc {
            cdra_sys::packet::add_promiscuous_membership(&fd, ifindex)
                .with_context(|| format!("promiscuous mode on {ifname}"))?;
        }
        let s = LinkSocket { fd };
        s.drain();
        Ok(s)
    }

    /// Discards whatever is queued.
    pub fn drain(&self) {
        let mut b = [0u8; 64];
        while self.recv(&mut b).ok().flatten().is_some() {}
    }

    /// Non-blocking receive of one frame into `buf`; `Ok(None)` when nothing is waiting.
    /// A frame longer than `buf` is truncated.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match rustix::net::recv(&self.fd, &mut *buf, RecvFlags::DONTWAIT) {
            Ok((n, _)) => Ok(Some(n)),
            Err(Errno::AGAIN) | Err(Errno::INTR) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Sends complete frames (Ethernet header included), batching with `sendmmsg`.
    /// Returns how many were sent; a frame the kernel refuses (full buffer, ...) is counted
    /// in `errors` and skipped after a few retries.
    pub fn send_all(&self, frames: &[&[u8]], errors: &mut u64) -> usize {
        let mut sent = 0;
        let mut retries = 0;
        while sent < frames.len() {
            let chunk = &frames[sent..frames.len().min(sent + SEND_BATCH)];
            let iovs: Vec<[io::IoSlice<'_>; 1]> = chunk.iter().map(|f| [io::IoSlice::new(f)]).collect();
            let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> =
                (0..chunk.len()).map(|_| SendAncillaryBuffer::default()).collect();
            let mut msgs: Vec<rustix::net::MMsgHdr<'_>> =
                iovs.iter().zip(controls.iter_mut()).map(|(iov, c)| rustix::net::MMsgHdr::new(&iov[..], c)).collect();
            match rustix::net::sendmmsg(&self.fd, &mut msgs, SendFlags::DONTWAIT) {
                Ok(n) if n > 0 => {
                    sent += n;
                    retries = 0;
                }
                Ok(_) | Err(Errno::AGAIN) | Err(Errno::NOBUFS) | Err(Errno::INTR) => {
                    retries += 1;
                    if retries > 50 {
                        *errors += 1;
                        sent += 1;
                        retries = 0;
                    } else {
                        let _ = self.wait_writable(Duration::from_micros(200));
                    }
                }
                Err(_) => {
                    *errors += 1;
                    sent += 1;
                }
            }
        }
        sent
    }

    fn wait_writable(&self, timeout: Duration) -> io::Result<()> {
        let mut fds = [PollFd::new(&self.fd, PollFlags::OUT)];
        let ts = timespec(timeout);
        poll(&mut fds, Some(&ts)).map(|_| ()).map_err(io::Error::from)
    }
}

impl AsFd for LinkSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A poll timeout.
pub fn timespec(d: Duration) -> Timespec {
    Timespec { tv_sec: d.as_secs().min(i64::MAX as u64) as i64, tv_nsec: i64::from(d.subsec_nanos()) }
}

/// Waits until one of the sockets is readable or `timeout` passes. Returns which are.
pub fn wait_readable<const N: usize>(socks: [&LinkSocket; N], timeout: Duration) -> io::Result<[bool; N]> {
    let mut fds: [PollFd<'_>; N] = socks.map(|s| PollFd::new(&s.fd, PollFlags::IN));
    let ts = timespec(timeout);
    match poll(&mut fds, Some(&ts)) {
        Ok(_) | Err(Errno::INTR) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(fds.map(|f| !f.revents().is_empty()))
}
