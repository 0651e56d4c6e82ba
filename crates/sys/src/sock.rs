//! Small private helpers around socket system calls.
//!
//! Guarantees: descriptors are returned as [`OwnedFd`] (closed on drop, never double-closed);
//! option values and addresses are passed with their exact sizes.

use std::ffi::c_void;
use std::io;
use std::mem::{self, MaybeUninit};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// C structs for which the all-zero bit pattern is a valid value.
///
/// # Safety
/// Only implement for `repr(C)` plain-old-data types (integers, arrays of integers, raw
/// pointers, and structs/unions of those).
pub(crate) unsafe trait Zeroable: Sized {
    /// An all-zero value.
    fn zeroed() -> Self {
        // SAFETY: the trait's contract says all-zero bytes are a valid `Self`.
        unsafe { mem::zeroed() }
    }
}

// SAFETY: all of these are libc plain-old-data C structs (integers, arrays, raw pointers).
unsafe impl Zeroable for libc::sockaddr_in {}
// SAFETY: as above.
unsafe impl Zeroable for libc::sockaddr_ll {}
// SAFETY: as above.
unsafe impl Zeroable for libc::msghdr {}
// SAFETY: as above.
unsafe impl Zeroable for libc::mmsghdr {}
// SAFETY: as above.
unsafe impl Zeroable for libc::ifreq {}

/// `socket(2)` with SOCK_NONBLOCK | SOCK_CLOEXEC added to `ty`.
pub(crate) fn socket(domain: libc::c_int, ty: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes plain integers and has no memory-safety preconditions.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2); nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(2)` with a value of type `T` passed by pointer with its exact size.
pub(crate) fn setsockopt<T: Copy>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    setsockopt_bytes(fd, level, name, (value as *const T).cast(), mem::size_of::<T>())
}

/// `setsockopt(2)` with a raw byte slice (e.g. an interface name for SO_BINDTODEVICE).
pub(crate) fn setsockopt_slice(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &[u8]) -> io::Result<()> {
    setsockopt_bytes(fd, level, name, value.as_ptr().cast(), value.len())
}

fn setsockopt_bytes(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    ptr: *const c_void,
    len: usize,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `ptr` points to `len` readable bytes (a live reference or slice of the caller);
    // the kernel only reads them.
    let rc = unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, ptr, len) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets an integer socket option.
pub(crate) fn set_int(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    setsockopt(fd, level, name, &value)
}

/// Builds a `sockaddr_in`.
pub(crate) fn sockaddr_in(addr: SocketAddrV4) -> libc::sockaddr_in {
    let mut sa = libc::sockaddr_in::zeroed();
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = addr.port().to_be();
    sa.sin_addr = in_addr(*addr.ip());
    sa
}

/// Reads a `sockaddr_in`.
pub(crate) fn from_sockaddr_in(sa: &libc::sockaddr_in) -> SocketAddrV4 {
    SocketAddrV4::new(from_in_addr(sa.sin_addr), u16::from_be(sa.sin_port))
}

pub(crate) fn in_addr(ip: Ipv4Addr) -> libc::in_addr {
    libc::in_addr { s_addr: u32::from_ne_bytes(ip.octets()) }
}

pub(crate) fn from_in_addr(a: libc::in_addr) -> Ipv4Addr {
    Ipv4Addr::from(a.s_addr.to_ne_bytes())
}

/// Size of `T` as a `socklen_t` (only used for small address structs).
pub(crate) fn socklen_of<T>() -> libc::socklen_t {
    mem::size_of::<T>() as libc::socklen_t
}

/// True for the errors that mean "nothing to do right now".
pub(crate) fn is_would_block(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EAGAIN)) || err.kind() == io::ErrorKind::WouldBlock
}

/// `bind(2)` for an IPv4 address.
pub(crate) fn bind_in(fd: &OwnedFd, addr: SocketAddrV4) -> io::Result<()> {
    let sa = sockaddr_in(addr);
    // SAFETY: `sa` is a valid sockaddr_in and the length passed is its exact size.
    let rc = unsafe {
        libc::bind(fd.as_raw_fd(), (&sa as *const libc::sockaddr_in).cast(), socklen_of::<libc::sockaddr_in>())
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `getsockname(2)` for an IPv4 socket.
pub(crate) fn local_addr_in(fd: &OwnedFd) -> io::Result<SocketAddrV4> {
    let mut sa = libc::sockaddr_in::zeroed();
    let mut len = socklen_of::<libc::sockaddr_in>();
    // SAFETY: `sa` is writable for `len` bytes and `len` is a valid in/out length.
    let rc = unsafe { libc::getsockname(fd.as_raw_fd(), (&mut sa as *mut libc::sockaddr_in).cast(), &mut len) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(from_sockaddr_in(&sa))
}

/// `sendto(2)` of `buf` to the address `addr` (of type `A`, e.g. sockaddr_in / sockaddr_ll),
/// non-blocking, retrying on EINTR.
pub(crate) fn sendto<A: Copy>(fd: &OwnedFd, buf: &[u8], addr: &A) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is readable for its length; `addr` is a valid socket address struct of
        // exactly size_of::<A>() bytes. The kernel only reads both.
        let rc = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                (addr as *const A).cast(),
                socklen_of::<A>(),
            )
        };
        if rc >= 0 {
            return Ok(rc as usize);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// `recvfrom(2)` into `buf`, non-blocking, with MSG_TRUNC so the returned length is the real
/// length of the datagram (may exceed `buf.len()`). Fills `addr` (of type `A`). Retries EINTR.
pub(crate) fn recvfrom_trunc<A: Copy>(fd: &OwnedFd, buf: &mut [u8], addr: &mut A) -> io::Result<usize> {
    loop {
        let mut len = socklen_of::<A>();
        // SAFETY: `buf` is writable for its length; `addr` is writable for size_of::<A>() bytes
        // and `len` says so. The kernel writes at most those lengths.
        let rc = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                (addr as *mut A).cast(),
                &mut len,
            )
        };
        if rc >= 0 {
            return Ok(rc as usize);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// Most datagrams handed to one `sendmmsg(2)` call by [`send_many`].
pub(crate) const SEND_BATCH: usize = 64;

/// `sendmmsg(2)`: `payloads[i]` as one datagram to `addrs[i]` (a socket address struct of
/// type `A`), up to [`SEND_BATCH`] per system call, non-blocking, retrying on EINTR. Returns
/// how many were sent; each one the kernel refuses is reported to `failed(index, error)`
/// and skipped (sendmmsg stops at the first failure; the rest go in the next call). Extra
/// elements of the longer slice are ignored. Allocates nothing.
pub(crate) fn send_many<P: AsRef<[u8]>, A: Copy + Zeroable>(
    fd: &OwnedFd,
    payloads: &[P],
    addrs: &[A],
    failed: &mut dyn FnMut(usize, io::Error),
) -> usize {
    send_each(fd, payloads.iter().map(AsRef::as_ref).zip(addrs.iter().copied()), failed)
}

/// [`send_many`] for datagrams given one by one: `(payload, address)` pairs, taken
/// [`SEND_BATCH`] at a time into arrays on the stack, one `sendmmsg(2)` per batch (more
/// only when the kernel takes part of one). Indexes given to `failed` count from the first
/// item. Allocates nothing.
pub(crate) fn send_each<'a, A: Copy + Zeroable>(
    fd: &OwnedFd,
    mut items: impl Iterator<Item = (&'a [u8], A)>,
    failed: &mut dyn FnMut(usize, io::Error),
) -> usize {
    // Left uninitialised: only the first `count` entries of each array are written and
    // handed to the kernel. Zeroing all SEND_BATCH of them (6 KiB) on every call cost more
    // than filling them when a wake-up has one datagram, as most have.
    let mut addrs = [const { MaybeUninit::<A>::uninit() }; SEND_BATCH];
    let mut iov = [const { MaybeUninit::<libc::iovec>::uninit() }; SEND_BATCH];
    let mut hdrs = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; SEND_BATCH];
    let mut first = 0;
    let mut sent = 0;
    loop {
        let mut count = 0;
        for ((addr, v), (payload, to)) in addrs.iter_mut().zip(iov.iter_mut()).zip(items.by_ref()) {
            addr.write(to);
            v.write(libc::iovec { iov_base: payload.as_ptr() as *mut c_void, iov_len: payload.len() });
            count += 1;
            if count == SEND_BATCH {
                break;
            }
        }
        if count == 0 {
            return sent;
        }
        // The pointers are taken once the arrays no longer move (they stay where they are
        // for the rest of this call).
        for ((h, v), addr) in hdrs.iter_mut().zip(iov.iter_mut()).zip(addrs.iter()).take(count) {
            let mut hdr = libc::mmsghdr::zeroed();
            hdr.msg_hdr.msg_name = addr.as_ptr() as *mut c_void;
            hdr.msg_hdr.msg_namelen = socklen_of::<A>();
            hdr.msg_hdr.msg_iov = v.as_mut_ptr();
            hdr.msg_hdr.msg_iovlen = 1;
            h.write(hdr);
        }
        // SAFETY: the first `count` (<= SEND_BATCH) headers were written just above, and
        // `MaybeUninit<T>` has the layout of `T`; the slice borrows `hdrs` mutably.
        let batch: &mut [libc::mmsghdr] =
            unsafe { std::slice::from_raw_parts_mut(hdrs.as_mut_ptr().cast::<libc::mmsghdr>(), count) };
        sent += send_batch(
            batch.len(),
            &mut |at, n| {
                let Some(rest) = batch.get_mut(at..at + n) else { return Ok(0) };
                // SAFETY: `rest` are initialised mmsghdr whose msg_name points to a live `A`
                // of exactly msg_namelen bytes (in `addrs`), with no control data, and whose
                // msg_iov points to one iovec in `iov` describing a payload slice borrowed
                // for 'a; all outlive this call. The kernel reads those and writes only each
                // header's msg_len.
                let rc = unsafe {
                    libc::sendmmsg(
                        fd.as_raw_fd(),
                        rest.as_mut_ptr(),
                        rest.len() as libc::c_uint,
                        libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                    )
                };
                if rc < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(rc as usize)
                }
            },
            &mut |i, e| failed(first + i, e),
        );
        first += count;
    }
}

/// How one batch of `count` datagrams goes out with a `sendmmsg`-like `send(at, n)` that
/// sends datagrams `at..at + n` and returns how many the kernel took (it stops at the
/// first it refuses): what it took is skipped, a refused datagram is reported to
/// `failed(index, error)` and skipped, EINTR is retried, and a call that takes nothing
/// without an error counts as a full buffer (WouldBlock) for the datagram it stopped at.
/// Returns how many were sent.
fn send_batch(
    count: usize,
    send: &mut dyn FnMut(usize, usize) -> io::Result<usize>,
    failed: &mut dyn FnMut(usize, io::Error),
) -> usize {
    let mut at = 0;
    let mut sent = 0;
    while at < count {
        let err = match send(at, count - at) {
            Ok(0) => io::Error::from(io::ErrorKind::WouldBlock),
            Ok(n) => {
                let n = n.min(count - at);
                at += n;
                sent += n;
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => e,
        };
        failed(at, err);
        at += 1;
    }
    sent
}

/// `SO_MEMINFO` (asm-generic/socket.h; x86 and ARM, the architectures cdra is built for)
/// and the index of the drop counter in what it returns (linux/sock_diag.h).
const SO_MEMINFO: libc::c_int = 55;
const SK_MEMINFO_DROPS: usize = 8;
const SK_MEMINFO_VARS: usize = 9;

/// Packets the kernel dropped on their way into this socket since it was opened (its
/// receive queue was full, or a filter said so: `sk_drops`, read with SO_MEMINFO). Wraps at
/// 2^32.
pub(crate) fn receive_drops(fd: &OwnedFd) -> io::Result<u32> {
    let mut mem = [0u32; SK_MEMINFO_VARS];
    let mut len = libc::socklen_t::try_from(mem::size_of_val(&mem)).unwrap_or(0);
    // SAFETY: `mem` is writable for `len` bytes and `len` says so; the kernel writes at most
    // that many and updates `len`.
    let rc =
        unsafe { libc::getsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, SO_MEMINFO, mem.as_mut_ptr().cast(), &mut len) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(mem.get(SK_MEMINFO_DROPS).copied().unwrap_or(0))
}

/// Tries to set a large send and receive buffer; failures are ignored (the kernel caps the
/// size silently for SO_RCVBUF; SO_RCVBUFFORCE needs CAP_NET_ADMIN).
pub(crate) fn set_large_buffers(fd: &OwnedFd, bytes: libc::c_int) {
    if set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, bytes).is_err() {
        let _ = set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, bytes);
    }
    if set_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, bytes).is_err() {
        let _ = set_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, bytes);
    }
}

/// Internet checksum (RFC 1071) of `data`, as the value to store big-endian in a header.
pub(crate) fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_rfc1071_example() {
        // Example from RFC 1071 section 3: 0001 f203 f4f5 f6f7 -> sum ddf2, checksum 220d.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(inet_checksum(&data), 0x220d);
        // A buffer that includes its own correct checksum sums to zero.
        let mut with = data.to_vec();
        with.extend_from_slice(&0x220du16.to_be_bytes());
        assert_eq!(inet_checksum(&with), 0);
        // Odd length pads with a zero byte.
        assert_eq!(inet_checksum(&[0xff]), !0xff00);
    }

    #[test]
    fn sockaddr_round_trip() {
        let a = SocketAddrV4::new(Ipv4Addr::new(10, 1, 2, 3), 67);
        let sa = sockaddr_in(a);
        assert_eq!(sa.sin_family, libc::AF_INET as libc::sa_family_t);
        assert_eq!(from_sockaddr_in(&sa), a);
    }

    /// What [`send_batch`] did: the calls (first index, count), the datagrams reported
    /// refused (index, error), and how many it says were sent.
    type Trace = (Vec<(usize, usize)>, Vec<(usize, io::ErrorKind)>, usize);

    /// A scripted kernel for [`send_batch`]: each call takes the next answer.
    fn scripted(answers: Vec<io::Result<usize>>) -> Trace {
        let mut answers = answers.into_iter();
        let mut calls = Vec::new();
        let mut failures = Vec::new();
        let sent = send_batch(
            5,
            &mut |at, n| {
                calls.push((at, n));
                answers.next().unwrap_or(Ok(n))
            },
            &mut |i, e| failures.push((i, e.kind())),
        );
        (calls, failures, sent)
    }

    #[test]
    fn a_partial_send_goes_on_with_the_rest() {
        // The kernel takes 2 of 5, then the other 3.
        let (calls, failures, sent) = scripted(vec![Ok(2), Ok(3)]);
        assert_eq!(calls, vec![(0, 5), (2, 3)]);
        assert!(failures.is_empty());
        assert_eq!(sent, 5);
    }

    #[test]
    fn a_refused_datagram_is_reported_and_skipped() {
        // 1 taken, then the second refused (EAGAIN: a full buffer), then the rest taken.
        let eagain = io::Error::from_raw_os_error(libc::EAGAIN);
        let (calls, failures, sent) = scripted(vec![Ok(1), Err(eagain), Ok(3)]);
        assert_eq!(calls, vec![(0, 5), (1, 4), (2, 3)]);
        assert_eq!(failures, vec![(1, io::ErrorKind::WouldBlock)]);
        assert_eq!(sent, 4);
        // Nothing taken and no error: that datagram counts as refused for a full buffer.
        let (_, failures, sent) = scripted(vec![Ok(0), Ok(4)]);
        assert_eq!(failures, vec![(0, io::ErrorKind::WouldBlock)]);
        assert_eq!(sent, 4);
        // Every one refused: each reported once, and the loop ends.
        let all = (0..5).map(|_| Err(io::Error::from_raw_os_error(libc::EAGAIN))).collect();
        let (calls, failures, sent) = scripted(all);
        assert_eq!(calls.len(), 5);
        assert_eq!(failures.iter().map(|f| f.0).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        assert_eq!(sent, 0);
    }

    #[test]
    fn an_interrupted_send_is_retried() {
        let eintr = io::Error::from_raw_os_error(libc::EINTR);
        let (calls, failures, sent) = scripted(vec![Err(eintr), Ok(5)]);
        assert_eq!(calls, vec![(0, 5), (0, 5)]);
        assert!(failures.is_empty());
        assert_eq!(sent, 5);
    }
}
