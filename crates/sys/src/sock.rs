//! Small private helpers around socket system calls.
//!
//! Guarantees: descriptors are returned as [`OwnedFd`] (closed on drop, never double-closed);
//! option values and addresses are passed with their exact sizes.

use std::ffi::c_void;
use std::io;
use std::mem;
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
pub(crate) fn send_many<P: AsRef<[u8]>, A: Copy>(
    fd: &OwnedFd,
    payloads: &[P],
    addrs: &[A],
    failed: &mut dyn FnMut(usize, io::Error),
) -> usize {
    let n = payloads.len().min(addrs.len());
    let mut at = 0;
    let mut sent = 0;
    while at < n {
        let count = (n - at).min(SEND_BATCH);
        let mut iov = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; SEND_BATCH];
        let mut hdrs = [libc::mmsghdr::zeroed(); SEND_BATCH];
        for i in 0..count {
            let (Some(payload), Some(addr), Some(v)) = (payloads.get(at + i), addrs.get(at + i), iov.get_mut(i)) else {
                break;
            };
            let payload = payload.as_ref();
            *v = libc::iovec { iov_base: payload.as_ptr() as *mut c_void, iov_len: payload.len() };
            if let Some(h) = hdrs.get_mut(i) {
                h.msg_hdr.msg_name = (addr as *const A) as *mut c_void;
                h.msg_hdr.msg_namelen = socklen_of::<A>();
                h.msg_hdr.msg_iovlen = 1;
            }
        }
        // The iovec pointers are taken once the array no longer moves.
        for (h, v) in hdrs.iter_mut().zip(iov.iter_mut()).take(count) {
            h.msg_hdr.msg_iov = v;
        }
        // SAFETY: `hdrs[..count]` are initialised mmsghdr whose msg_name points to a live
        // `A` of exactly msg_namelen bytes (borrowed from `addrs`) and whose msg_iov points
        // to one iovec in `iov` (alive for this call) describing a live payload slice. The
        // kernel reads those and writes only each header's msg_len.
        let rc = unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                hdrs.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if rc > 0 {
            let done = (rc as usize).min(count);
            at += done;
            sent += done;
            continue;
        }
        let err = if rc == 0 { io::Error::from(io::ErrorKind::WouldBlock) } else { io::Error::last_os_error() };
        if err.raw_os_error() == Some(libc::EINTR) {
            continue;
        }
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
}
