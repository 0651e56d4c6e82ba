//! The UDP socket: bound to one port, receives in batches with the destination address and
//! arrival interface of every datagram, and sends with a chosen source address / egress
//! interface.
//!
//! Guarantees:
//! * Sockets are non-blocking, close-on-exec, with SO_REUSEADDR, SO_BROADCAST and IP_PKTINFO
//!   on, and (best effort) 4 MiB send and receive buffers.
//! * [`UdpSocket::recv_batch`], [`UdpSocket::send_to`] and [`UdpSocket::send_many_to`]
//!   (one `sendmmsg` per 64 datagrams) never allocate and never block;
//!   "nothing to read" is `Ok(0)`, not an error.
//! * Every [`Received`] reports `truncated` when the datagram was larger than the batch's
//!   buffer size (its `data` then holds only the first `buf_size` bytes).

use std::ffi::c_void;
use std::io;
use std::mem;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::ptr;

use crate::error::check_ifname;
use crate::sock::{self, Zeroable};
use crate::SysError;

/// Size of the per-message control buffer; an IP_PKTINFO message needs 32 bytes on 64-bit.
const CMSG_BUF_LEN: usize = 64;

/// Socket buffer size we ask for.
const BIG_BUFFER: libc::c_int = 4 << 20;

/// Largest batch [`RecvBatch::new`] accepts (the kernel caps `recvmmsg` at 1024 too).
pub const MAX_BATCH: usize = 1024;

/// A control-message buffer aligned for `cmsghdr`.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct CmsgBuf([u8; CMSG_BUF_LEN]);

/// A UDP socket bound to one IPv4 address and port.
#[derive(Debug)]
pub struct UdpSocket {
    fd: OwnedFd,
    local: SocketAddrV4,
    identity: u64,
}

impl UdpSocket {
    /// Binds to `0.0.0.0:port` (0 picks a free port), optionally restricted to `device`
    /// with SO_BINDTODEVICE.
    pub fn bind_any(port: u16, device: Option<&str>) -> Result<Self, SysError> {
        Self::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port), device)
    }

    /// Binds to `addr`, optionally restricted to `device` with SO_BINDTODEVICE.
    pub fn bind(addr: SocketAddrV4, device: Option<&str>) -> Result<Self, SysError> {
        let fd = sock::socket(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_UDP)
            .map_err(|e| SysError::from_io("opening a UDP socket", "root", e))?;
        let opt = |level, name, what: &str| {
            sock::set_int(&fd, level, name, 1)
                .map_err(|e| SysError::from_io(format!("setting {what} on a UDP socket"), "root", e))
        };
        opt(libc::SOL_SOCKET, libc::SO_REUSEADDR, "SO_REUSEADDR")?;
        opt(libc::SOL_SOCKET, libc::SO_BROADCAST, "SO_BROADCAST")?;
        opt(libc::IPPROTO_IP, libc::IP_PKTINFO, "IP_PKTINFO")?;
        sock::set_large_buffers(&fd, BIG_BUFFER);
        if let Some(dev) = device {
            bind_to_device(&fd, dev)?;
        }
        sock::bind_in(&fd, addr).map_err(|e| {
            let privileged = addr.port() != 0 && addr.port() < 1024;
            if privileged && e.raw_os_error() == Some(libc::EACCES) {
                SysError::from_io(format!("binding UDP port {}", addr.port()), "root or CAP_NET_BIND_SERVICE", e)
            } else {
                SysError::from_io(format!("binding UDP {addr}"), "root", e)
            }
        })?;
        let local =
            sock::local_addr_in(&fd).map_err(|e| SysError::from_io("reading the address of a UDP socket", "", e))?;
        Ok(UdpSocket { fd, local, identity: crate::poll::new_identity() })
    }

    /// Keep datagrams that arrived on one of `interfaces` with a payload starting with
    /// `first_payload_byte` out of this socket (a classic BPF filter: the kernel drops them
    /// before they are queued). For links whose requests a [`crate::tap::UdpTap`] reads, so
    /// they are not received twice. An empty list removes nothing and lets everything in.
    pub fn ignore_from(&self, interfaces: &[u32], first_payload_byte: u8) -> io::Result<()> {
        use crate::tap::bpf::*;
        if interfaces.len() > 200 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "too many interfaces for one filter"));
        }
        // A UDP socket's filter sees the datagram from its UDP header on.
        let n = interfaces.len();
        let mut p = vec![insn(LD_W_ABS, 0, 0, ANCILLARY_IFINDEX)];
        for (i, ifindex) in interfaces.iter().enumerate() {
            // Equal: on to the payload check (after the remaining compares and the accept).
            let to_check = (n - i) as u8;
            p.push(insn(JEQ, to_check, 0, *ifindex));
        }
        p.push(insn(RET, 0, 0, ACCEPT));
        p.push(insn(LD_B_ABS, 0, 0, 8));
        p.push(insn(JEQ, 1, 0, u32::from(first_payload_byte)));
        p.push(insn(RET, 0, 0, ACCEPT));
        p.push(insn(RET, 0, 0, DROP));
        attach(&self.fd, &p)
    }

    /// Restrict the socket to `device` (SO_BINDTODEVICE) after it was bound, or to no
    /// device with `""`: a socket opened while privileged (port 67 needs it) follows a
    /// device that appears later, with only CAP_NET_RAW. For a VRF device this moves the
    /// socket into that VRF: it receives what arrives on the VRF's interfaces and its
    /// sends are routed by the VRF's table.
    pub fn set_device(&self, device: &str) -> Result<(), SysError> {
        if device.is_empty() {
            return sock::setsockopt_slice(&self.fd, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, &[])
                .map_err(|e| SysError::from_io("unbinding a socket from its interface", "CAP_NET_RAW", e));
        }
        bind_to_device(&self.fd, device)
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local
    }

    /// Receives up to `batch.capacity()` datagrams with one `recvmmsg` (MSG_DONTWAIT).
    /// Returns how many were received; 0 when none is waiting (or the call was interrupted).
    /// The datagrams are then available through [`RecvBatch::get`] / [`RecvBatch::iter`].
    pub fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        batch.len = 0;
        let n = batch.meta.len();
        let bs = batch.buf_size;
        // Pointer arithmetic uses wrapping_add (safe); every offset is in bounds because
        // i < n and `data` has n * bs bytes while the other arrays have n entries.
        let data = batch.data.as_mut_ptr();
        for (i, iov) in batch.iovecs.iter_mut().enumerate() {
            *iov = libc::iovec { iov_base: data.wrapping_add(i * bs).cast(), iov_len: bs };
        }
        let addrs = batch.addrs.as_mut_ptr();
        let cmsgs = batch.cmsgs.as_mut_ptr();
        let iovecs = batch.iovecs.as_mut_ptr();
        for (i, h) in batch.hdrs.iter_mut().enumerate() {
            let (addr, cmsg, iov) = (addrs.wrapping_add(i), cmsgs.wrapping_add(i), iovecs.wrapping_add(i));
            h.msg_len = 0;
            h.msg_hdr.msg_name = addr.cast::<c_void>();
            h.msg_hdr.msg_namelen = sock::socklen_of::<libc::sockaddr_in>();
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = cmsg.cast::<c_void>();
            h.msg_hdr.msg_controllen = CMSG_BUF_LEN as _;
            h.msg_hdr.msg_flags = 0;
        }
        // SAFETY: `hdrs` holds n initialized headers whose name, iovec and control pointers
        // point into buffers owned by `batch` with the lengths stated; `batch` is exclusively
        // borrowed for the whole call, so nothing else aliases them.
        let rc = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                batch.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if sock::is_would_block(&err) || err.raw_os_error() == Some(libc::EINTR) {
                return Ok(0);
            }
            return Err(err);
        }
        let got = (rc as usize).min(n);
        for i in 0..got {
            let h = &batch.hdrs[i];
            let len = (h.msg_len as usize).min(bs);
            let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            let src = sock::from_sockaddr_in(&batch.addrs[i]);
            let (dst, local, ifindex) = match pktinfo(&h.msg_hdr) {
                Some(pi) => {
                    (sock::from_in_addr(pi.ipi_addr), sock::from_in_addr(pi.ipi_spec_dst), pi.ipi_ifindex.max(0) as u32)
                }
                None => (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, 0),
            };
            batch.meta[i] = Meta { len, src, dst, local, ifindex, truncated };
        }
        batch.len = got;
        Ok(got)
    }

    /// Sends `payload` to `dst` (MSG_DONTWAIT; a full socket buffer is a `WouldBlock` error).
    ///
    /// When `src` or `ifindex` is given, an IP_PKTINFO control message selects the source
    /// address (`ipi_spec_dst`; must be an address of this host) and/or the egress interface
    /// (`ipi_ifindex`; needed e.g. to send to 255.255.255.255 out of a given interface).
    pub fn send_to(
        &self,
        payload: &[u8],
        dst: SocketAddrV4,
        src: Option<Ipv4Addr>,
        ifindex: Option<u32>,
    ) -> io::Result<usize> {
        let addr = sock::sockaddr_in(dst);
        let mut iov = libc::iovec { iov_base: payload.as_ptr() as *mut c_void, iov_len: payload.len() };
        let mut cbuf = CmsgBuf([0; CMSG_BUF_LEN]);
        let mut msg = libc::msghdr::zeroed();
        msg.msg_name = &addr as *const libc::sockaddr_in as *mut c_void;
        msg.msg_namelen = sock::socklen_of::<libc::sockaddr_in>();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if src.is_some() || ifindex.is_some() {
            let info = libc::in_pktinfo {
                ipi_ifindex: ifindex.unwrap_or(0) as libc::c_int,
                ipi_spec_dst: sock::in_addr(src.unwrap_or(Ipv4Addr::UNSPECIFIED)),
                ipi_addr: sock::in_addr(Ipv4Addr::UNSPECIFIED),
            };
            let info_len = mem::size_of::<libc::in_pktinfo>() as libc::c_uint;
            // SAFETY: CMSG_SPACE only computes a size.
            let space = unsafe { libc::CMSG_SPACE(info_len) } as usize;
            msg.msg_control = cbuf.0.as_mut_ptr().cast();
            msg.msg_controllen = space.min(CMSG_BUF_LEN) as _;
            // SAFETY: msg_control points to `cbuf` (aligned, CMSG_BUF_LEN >= space bytes), so
            // CMSG_FIRSTHDR returns a pointer to its start and the header plus data fit.
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&msg);
                if !c.is_null() {
                    (*c).cmsg_level = libc::IPPROTO_IP;
                    (*c).cmsg_type = libc::IP_PKTINFO;
                    (*c).cmsg_len = libc::CMSG_LEN(info_len) as _;
                    ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::in_pktinfo>(), info);
                }
            }
        }
        loop {
            // SAFETY: `msg` points to `addr`, `iov` (which points to `payload`) and `cbuf`, all
            // alive for the call; the kernel only reads them.
            let rc = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
            if rc >= 0 {
                return Ok(rc as usize);
            }
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINTR) {
                return Err(err);
            }
        }
    }
}

impl UdpSocket {
    /// Sends each `(payload, destination)` of `datagrams`, up to 64 with one `sendmmsg`
    /// (MSG_DONTWAIT; the routing table picks source address and interface, as
    /// [`UdpSocket::send_to`] without `src` and `ifindex`). Returns how many the kernel took;
    /// each one it refused (a full socket buffer: `WouldBlock`) is reported to
    /// `failed(index in datagrams, error)` and skipped, and the ones after it are still
    /// sent. Never blocks, allocates nothing.
    pub fn send_many_to<'a>(
        &self,
        datagrams: impl Iterator<Item = (&'a [u8], SocketAddrV4)>,
        failed: &mut dyn FnMut(usize, io::Error),
    ) -> usize {
        sock::send_each(&self.fd, datagrams.map(|(payload, to)| (payload, sock::sockaddr_in(to))), failed)
    }
}

impl UdpSocket {
    /// What tells this socket apart from any other, also one opened later under the same
    /// descriptor number ([`crate::poll::Watched`]).
    pub fn identity(&self) -> u64 {
        self.identity
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// SO_BINDTODEVICE with clear errors.
pub(crate) fn bind_to_device(fd: &OwnedFd, dev: &str) -> Result<(), SysError> {
    check_ifname(dev)?;
    sock::setsockopt_slice(fd, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, dev.as_bytes())
        .map_err(|e| SysError::from_io_on_device(dev, format!("binding a socket to interface {dev}"), "CAP_NET_RAW", e))
}

/// Finds the IP_PKTINFO control message of a received message.
fn pktinfo(hdr: &libc::msghdr) -> Option<libc::in_pktinfo> {
    if hdr.msg_control.is_null() {
        return None;
    }
    // SAFETY: `hdr` is a header filled in by recvmmsg: msg_control points to a control buffer
    // of this batch and msg_controllen (set by the kernel) is no larger than that buffer. The
    // CMSG_* macros stay within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_PKTINFO {
                return Some(ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::in_pktinfo>()));
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
    None
}

#[derive(Clone, Copy, Debug)]
struct Meta {
    len: usize,
    src: SocketAddrV4,
    dst: Ipv4Addr,
    local: Ipv4Addr,
    ifindex: u32,
    truncated: bool,
}

impl Meta {
    const EMPTY: Meta = Meta {
        len: 0,
        src: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
        dst: Ipv4Addr::UNSPECIFIED,
        local: Ipv4Addr::UNSPECIFIED,
        ifindex: 0,
        truncated: false,
    };
}

/// Preallocated buffers for [`UdpSocket::recv_batch`]: `count` datagrams of up to
/// `buf_size` bytes each. Reused for every call; nothing is allocated per datagram.
pub struct RecvBatch {
    buf_size: usize,
    data: Box<[u8]>,
    addrs: Box<[libc::sockaddr_in]>,
    cmsgs: Box<[CmsgBuf]>,
    iovecs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    meta: Box<[Meta]>,
    len: usize,
}

// SAFETY: the raw pointers inside `iovecs` and `hdrs` only ever point into buffers owned by
// the same `RecvBatch`; they are rewritten at the start of every `recv_batch` (which takes
// `&mut self`) and are never dereferenced anywhere else, so moving the batch to another
// thread cannot create aliasing.
unsafe impl Send for RecvBatch {}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("capacity", &self.capacity())
            .field("buf_size", &self.buf_size)
            .field("len", &self.len)
            .finish()
    }
}

impl RecvBatch {
    /// Buffers for `count` datagrams of up to `buf_size` bytes. `count` is clamped to
    /// 1..=[`MAX_BATCH`], `buf_size` to at least 1.
    pub fn new(count: usize, buf_size: usize) -> Self {
        let count = count.clamp(1, MAX_BATCH);
        let buf_size = buf_size.max(1);
        let iov = libc::iovec { iov_base: ptr::null_mut(), iov_len: 0 };
        RecvBatch {
            buf_size,
            data: vec![0u8; count * buf_size].into_boxed_slice(),
            addrs: vec![libc::sockaddr_in::zeroed(); count].into_boxed_slice(),
            cmsgs: vec![CmsgBuf([0; CMSG_BUF_LEN]); count].into_boxed_slice(),
            iovecs: vec![iov; count].into_boxed_slice(),
            hdrs: (0..count).map(|_| libc::mmsghdr::zeroed()).collect(),
            meta: vec![Meta::EMPTY; count].into_boxed_slice(),
            len: 0,
        }
    }

    /// How many datagrams one `recv_batch` can receive.
    pub fn capacity(&self) -> usize {
        self.meta.len()
    }

    /// The size of each datagram buffer.
    pub fn buf_size(&self) -> usize {
        self.buf_size
    }

    /// How many datagrams the last `recv_batch` received.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the last `recv_batch` received nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Datagram `i` of the last `recv_batch` (`i < len()`). An index out of range yields an
    /// empty datagram from 0.0.0.0:0 instead of panicking; prefer [`RecvBatch::iter`].
    pub fn get(&self, i: usize) -> Received<'_> {
        self.try_get(i).unwrap_or(Received {
            data: &[],
            src: Meta::EMPTY.src,
            dst: Meta::EMPTY.dst,
            local: Meta::EMPTY.local,
            ifindex: 0,
            truncated: false,
        })
    }

    /// Datagram `i` of the last `recv_batch`, or `None` if `i >= len()`.
    pub fn try_get(&self, i: usize) -> Option<Received<'_>> {
        if i >= self.len {
            return None;
        }
        let m = self.meta.get(i)?;
        let start = i * self.buf_size;
        let data = self.data.get(start..start + m.len)?;
        Some(Received { data, src: m.src, dst: m.dst, local: m.local, ifindex: m.ifindex, truncated: m.truncated })
    }

    /// The datagrams of the last `recv_batch`, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = Received<'_>> + '_ {
        (0..self.len).filter_map(move |i| self.try_get(i))
    }
}

/// One received datagram, borrowed from a [`RecvBatch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received<'a> {
    /// The payload (at most `buf_size` bytes).
    pub data: &'a [u8],
    /// The sender's address and port.
    pub src: SocketAddrV4,
    /// The destination address in the IP header (`ipi_addr`), e.g. 255.255.255.255.
    pub dst: Ipv4Addr,
    /// The local address the kernel would answer from (`ipi_spec_dst`): for a broadcast, the
    /// address of the arrival interface.
    pub local: Ipv4Addr,
    /// Index of the interface the datagram arrived on.
    pub ifindex: u32,
    /// The datagram was longer than `buf_size` and was cut.
    pub truncated: bool,
}
