//! Waiting until one of several descriptors is readable (or, with [`wait_ready`], writable).
//!
//! Guarantees: [`wait_readable`], [`wait_ready`] and [`ReadyWaiter::wait`] never block
//! longer than the timeout (rounded up to whole milliseconds), return early with nothing
//! ready when a signal interrupts them (so the caller can check flags set by signal
//! handlers), and allocate nothing for up to [`STACK_FDS`] descriptors (the waiter: nothing
//! once its descriptors are registered).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Descriptor count handled without allocating.
pub const STACK_FDS: usize = 64;

/// Waits until at least one of `fds` is readable (or has an error/hang-up pending, which a
/// read will report), or until `timeout` passes (`None`: no limit).
///
/// On return `ready[i]` tells whether `fds[i]` is readable; the result is how many are.
/// `Ok(0)` means the timeout passed or a signal interrupted the wait. `ready` must be at
/// least as long as `fds` (else `InvalidInput`). A descriptor that is not open yields an
/// `EBADF` error.
pub fn wait_readable(fds: &[RawFd], timeout: Option<Duration>, ready: &mut [bool]) -> io::Result<usize> {
    if ready.len() < fds.len() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "wait_readable: `ready` is shorter than `fds`"));
    }
    poll_events(fds.iter().map(|&fd| (fd, libc::POLLIN)), fds.len(), timeout, ready)
}

/// What [`wait_ready`] waits for on one descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Data to read (or a connection to accept).
    Read,
    /// Room to write.
    Write,
}

/// Like [`wait_readable`], with an [`Interest`] per descriptor: `ready[i]` tells whether
/// `fds[i]` can be read or written as asked (or has an error or hang-up pending, which the
/// next read or write reports).
pub fn wait_ready(fds: &[(RawFd, Interest)], timeout: Option<Duration>, ready: &mut [bool]) -> io::Result<usize> {
    if ready.len() < fds.len() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "wait_ready: `ready` is shorter than `fds`"));
    }
    let events = fds.iter().map(|&(fd, interest)| {
        (
            fd,
            match interest {
                Interest::Read => libc::POLLIN,
                Interest::Write => libc::POLLOUT,
            },
        )
    });
    poll_events(events, fds.len(), timeout, ready)
}

fn poll_events(
    fds: impl Iterator<Item = (RawFd, libc::c_short)>,
    count: usize,
    timeout: Option<Duration>,
    ready: &mut [bool],
) -> io::Result<usize> {
    for r in ready.iter_mut() {
        *r = false;
    }
    let timeout_ms = timeout_to_ms(timeout);
    let empty = libc::pollfd { fd: -1, events: 0, revents: 0 };
    if count <= STACK_FDS {
        let mut pfds = [empty; STACK_FDS];
        poll_into(fds, &mut pfds[..count], timeout_ms, ready)
    } else {
        let mut pfds = vec![empty; count];
        poll_into(fds, &mut pfds, timeout_ms, ready)
    }
}

fn timeout_to_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(d) => {
            // Round up so that a sub-millisecond timeout does not turn into a busy loop
            // (u64 arithmetic: `as_nanos` is a u128, and its division is a libcall on every
            // wait of the data-plane loop).
            let ms = d.as_secs().saturating_mul(1000).saturating_add(u64::from(d.subsec_nanos().div_ceil(1_000_000)));
            ms.min(libc::c_int::MAX as u64) as libc::c_int
        }
    }
}

/// What a wait's return code `rc` says: it ended with descriptors to look at (true), or a
/// signal interrupted it (false: nothing ready, so that the caller can check its flags).
fn waited(rc: libc::c_int) -> io::Result<bool> {
    if rc >= 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EINTR) {
        Ok(false)
    } else {
        Err(err)
    }
}

fn poll_into(
    fds: impl Iterator<Item = (RawFd, libc::c_short)>,
    pfds: &mut [libc::pollfd],
    timeout_ms: libc::c_int,
    ready: &mut [bool],
) -> io::Result<usize> {
    for (p, (fd, events)) in pfds.iter_mut().zip(fds) {
        p.fd = fd;
        p.events = events;
        p.revents = 0;
    }
    // SAFETY: `pfds` is a valid, writable array of exactly `pfds.len()` pollfd structs.
    let rc = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
    if !waited(rc)? {
        return Ok(0);
    }
    let mut count = 0;
    for (p, r) in pfds.iter().zip(ready.iter_mut()) {
        if p.revents & libc::POLLNVAL != 0 {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        if p.revents & (p.events | libc::POLLERR | libc::POLLHUP) != 0 {
            *r = true;
            count += 1;
        }
    }
    Ok(count)
}

/// A number that tells a descriptor this process opened apart from every other one it
/// opened, before or after (a socket closed and another opened may get the same number;
/// they get different identities). For [`Watched::identity`].
pub fn new_identity() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A descriptor a [`ReadyWaiter`] waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watched {
    /// The descriptor.
    pub fd: RawFd,
    /// What tells it apart from a later descriptor with the same number: the identity its
    /// socket was given when opened ([`new_identity`]; `UdpSocket::identity`,
    /// `UdpTap::identity`), or any constant for one open for as long as the waiter is used.
    pub identity: u64,
}

/// Waits until one of several descriptors is readable, as [`wait_readable`] does, with an
/// epoll instance that keeps them registered from one wait to the next.
///
/// `poll` hooks itself into every descriptor's wait queue and unhooks again on every call;
/// a relay waits once a datagram or so, and with five descriptors that was about a tenth of
/// its CPU (sock_poll, the wait-queue hooks, fdget: `perf record` of the null relay at
/// 4,000 DORA/s). With epoll one `epoll_wait` a wake-up looks only at what became ready.
///
/// The descriptors are registered again, in a new epoll instance, whenever the list given
/// differs from the last one, by number or by identity: the kernel forgets a registration
/// when its socket is closed, and a socket opened in its place, with the same number, must
/// be registered anew.
/// Level-triggered, as `poll`: a descriptor left readable is reported again.
#[derive(Debug)]
pub struct ReadyWaiter {
    epoll: OwnedFd,
    registered: Vec<Watched>,
    events: Vec<libc::epoll_event>,
}

impl ReadyWaiter {
    /// A waiter with nothing registered.
    pub fn new() -> io::Result<Self> {
        Ok(ReadyWaiter { epoll: new_epoll()?, registered: Vec::new(), events: Vec::new() })
    }

    /// Waits until at least one of `fds` is readable (or has an error or hang-up pending,
    /// which a read will report), or until `timeout` passes (`None`: no limit); `ready[i]`
    /// tells whether `fds[i]` is. As [`wait_readable`]: `Ok(0)` when the timeout passed or a
    /// signal interrupted the wait, `InvalidInput` when `ready` is shorter than `fds`, the
    /// error (`EBADF`) when a descriptor is not open as the list is registered (when it
    /// differs from the last one). Unlike `poll`, a descriptor closed while registered is
    /// not an error: the kernel forgets it and it is never reported again, so the list must
    /// name open descriptors (cdra's loop builds it from its sockets every turn). The
    /// descriptors must be distinct.
    pub fn wait(&mut self, fds: &[Watched], timeout: Option<Duration>, ready: &mut [bool]) -> io::Result<usize> {
        if ready.len() < fds.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "ReadyWaiter: `ready` is shorter than `fds`"));
        }
        if self.registered != fds {
            self.register(fds)?;
        }
        for r in ready.iter_mut() {
            *r = false;
        }
        let empty = libc::epoll_event { events: 0, u64: 0 };
        self.events.resize(fds.len().max(1), empty);
        let max = self.events.len().min(libc::c_int::MAX as usize) as libc::c_int;
        // SAFETY: `events` is a valid, writable array of at least `max` epoll_event structs,
        // and `epoll` an epoll descriptor this waiter owns.
        let rc =
            unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), self.events.as_mut_ptr(), max, timeout_to_ms(timeout)) };
        if !waited(rc)? {
            return Ok(0);
        }
        let mut count = 0;
        for event in self.events.iter().take(rc as usize) {
            let (index, flags) = (event.u64, event.events);
            let wanted = (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32;
            let index = usize::try_from(index).ok().filter(|i| *i < fds.len());
            if let Some(r) = index.and_then(|i| ready.get_mut(i)) {
                if flags & wanted != 0 && !*r {
                    *r = true;
                    count += 1;
                }
            }
        }
        Ok(count)
    }

    /// Register `fds` (each with its index) in place of what was registered, in a new epoll
    /// instance: the kernel keeps a registration for as long as its socket lives, which
    /// closing the descriptor does not end when the socket was duplicated (`dup`, a child's
    /// copy), and removing it by number would reach whatever socket has that number now;
    /// left behind, it would go on reporting its old index. One more system call, only
    /// when the list changes.
    fn register(&mut self, fds: &[Watched]) -> io::Result<()> {
        self.registered.clear();
        self.epoll = new_epoll()?;
        for (i, w) in fds.iter().enumerate() {
            // On an error nothing counts as registered: the next call starts over.
            epoll_ctl(&self.epoll, libc::EPOLL_CTL_ADD, w.fd, i as u64)?;
        }
        self.registered.extend_from_slice(fds);
        Ok(())
    }
}

fn new_epoll() -> io::Result<OwnedFd> {
    // SAFETY: epoll_create1 takes no pointers; its result is checked before use.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor this function owns and nothing else refers to.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn epoll_ctl(epoll: &OwnedFd, op: libc::c_int, fd: RawFd, index: u64) -> io::Result<()> {
    let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: index };
    // SAFETY: `event` is a valid epoll_event for the duration of the call (ignored by DEL).
    let rc = unsafe { libc::epoll_ctl(epoll.as_raw_fd(), op, fd, &mut event) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_rounding() {
        assert_eq!(timeout_to_ms(None), -1);
        assert_eq!(timeout_to_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_to_ms(Some(Duration::from_micros(1))), 1);
        assert_eq!(timeout_to_ms(Some(Duration::from_millis(1500))), 1500);
        assert_eq!(timeout_to_ms(Some(Duration::new(1, 1))), 1001);
        assert_eq!(timeout_to_ms(Some(Duration::new(2, 999_999_999))), 3000);
        assert_eq!(timeout_to_ms(Some(Duration::from_secs(u64::MAX))), libc::c_int::MAX);
    }

    #[test]
    fn write_interest_reports_room_to_write() {
        let (a, b) = std::os::unix::net::UnixStream::pair().expect("pair");
        use std::os::fd::AsRawFd;
        let fds = [(a.as_raw_fd(), Interest::Read), (b.as_raw_fd(), Interest::Write)];
        let mut ready = [false; 2];
        let n = wait_ready(&fds, Some(Duration::from_millis(100)), &mut ready).expect("poll");
        assert_eq!((n, ready), (1, [false, true]), "nothing to read on a, room to write on b");
        std::io::Write::write_all(&mut &b, b"x").expect("write");
        let n = wait_ready(&fds, Some(Duration::from_millis(100)), &mut ready).expect("poll");
        assert_eq!((n, ready), (2, [true, true]));
    }

    #[test]
    fn ready_too_short_is_an_error() {
        let mut ready = [false; 1];
        let e = wait_readable(&[0, 1], Some(Duration::ZERO), &mut ready).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    fn watched(s: &std::os::unix::net::UnixStream, identity: u64) -> Watched {
        Watched { fd: s.as_raw_fd(), identity }
    }

    #[test]
    fn the_waiter_reports_what_poll_reports() {
        let (a, b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let (c, d) = std::os::unix::net::UnixStream::pair().expect("pair");
        let fds = [watched(&a, 1), watched(&c, 2)];
        let mut w = ReadyWaiter::new().expect("epoll");
        let mut ready = [true; 2];
        assert_eq!(w.wait(&fds, Some(Duration::from_millis(20)), &mut ready).expect("wait"), 0);
        assert_eq!(ready, [false, false]);
        std::io::Write::write_all(&mut &d, b"x").expect("write");
        assert_eq!(w.wait(&fds, Some(Duration::from_millis(100)), &mut ready).expect("wait"), 1);
        assert_eq!(ready, [false, true]);
        // Level-triggered: not read, so still ready.
        assert_eq!(w.wait(&fds, Some(Duration::ZERO), &mut ready).expect("wait"), 1);
        std::io::Write::write_all(&mut &b, b"y").expect("write");
        assert_eq!(w.wait(&fds, Some(Duration::ZERO), &mut ready).expect("wait"), 2);
        assert_eq!(ready, [true, true]);
        // A hang-up is reported (the read that follows says so).
        drop(b);
        let mut buf = [0u8; 4];
        std::io::Read::read(&mut &a, &mut buf).expect("read");
        assert_eq!(w.wait(&fds, Some(Duration::ZERO), &mut ready).expect("wait"), 2, "a: hang-up, c: data");
        // Another order: the indexes follow the list.
        let swapped = [fds[1], fds[0]];
        assert_eq!(w.wait(&swapped, Some(Duration::ZERO), &mut ready).expect("wait"), 2);
        let short = &mut [false; 1];
        assert_eq!(w.wait(&fds, Some(Duration::ZERO), short).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }

    /// A socket closed and another opened with its number: registered anew because its
    /// identity differs, and not heard at all if the identity stayed the same (what the
    /// identity is for).
    #[test]
    fn a_descriptor_replaced_under_the_same_number_is_registered_again() {
        let mut w = ReadyWaiter::new().expect("epoll");
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let mut ready = [false; 1];
        let old = watched(&a, new_identity());
        assert_eq!(w.wait(&[old], Some(Duration::ZERO), &mut ready).expect("wait"), 0);
        // Another socket under a's number, in one step (a's own socket is closed by it, and
        // no other thread's descriptor is touched).
        let (c, d) = std::os::unix::net::UnixStream::pair().expect("pair");
        // SAFETY: both descriptors are open and owned by this test; `a` owns the number
        // after the call and closes it when dropped.
        assert_eq!(unsafe { libc::dup2(c.as_raw_fd(), a.as_raw_fd()) }, a.as_raw_fd());
        std::io::Write::write_all(&mut &d, b"x").expect("write");
        let same_identity = Watched { fd: a.as_raw_fd(), identity: old.identity };
        let n = w.wait(&[same_identity], Some(Duration::from_millis(20)), &mut ready).expect("wait");
        assert_eq!(n, 0, "the old registration went with the old socket");
        let new = Watched { fd: a.as_raw_fd(), identity: new_identity() };
        assert_eq!(w.wait(&[new], Some(Duration::from_millis(100)), &mut ready).expect("wait"), 1);
        assert_eq!(ready, [true]);
    }

    #[test]
    fn a_closed_descriptor_is_an_error_and_the_next_wait_registers_again() {
        let mut w = ReadyWaiter::new().expect("epoll");
        let (a, b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let bad = Watched { fd: 1_000_000, identity: 7 };
        let mut ready = [false; 2];
        let e = w.wait(&[watched(&a, 1), bad], Some(Duration::ZERO), &mut ready).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
        std::io::Write::write_all(&mut &b, b"x").expect("write");
        assert_eq!(w.wait(&[watched(&a, 1)], Some(Duration::ZERO), &mut ready).expect("wait"), 1);
    }

    /// A registration outlives its descriptor number when the socket is still open elsewhere
    /// (a dup, a child that inherited it): closing the number does not take it out of the
    /// epoll set, and removing it by number would reach the new socket under that number.
    /// Registering the new list in a new epoll instance leaves nothing behind: the old
    /// socket, readable, is not reported in the new socket's place (it was, as index 0).
    #[test]
    fn a_registration_outliving_its_number_reports_nothing() {
        let mut w = ReadyWaiter::new().expect("epoll");
        let (a, b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let mut ready = [false; 2];
        assert_eq!(w.wait(&[watched(&a, new_identity())], Some(Duration::ZERO), &mut ready).expect("wait"), 0);
        let held = a.try_clone().expect("dup"); // the open file stays alive
        drop(a);
        let (c, _d) = std::os::unix::net::UnixStream::pair().expect("pair");
        std::io::Write::write_all(&mut &b, b"x").expect("write"); // `held` readable, c not
        let n = w.wait(&[watched(&c, new_identity())], Some(Duration::from_millis(50)), &mut ready).expect("wait");
        assert_eq!((n, ready), (0, [false, false]), "c has nothing to read");
        drop(held);
    }

    /// As documented: a descriptor closed while registered is not an error (as it is for
    /// `poll`); it is simply no longer reported, and the others still are.
    #[test]
    fn a_descriptor_closed_while_registered_is_no_longer_reported() {
        let mut w = ReadyWaiter::new().expect("epoll");
        let (a, b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let (c, d) = std::os::unix::net::UnixStream::pair().expect("pair");
        let list = [watched(&a, 1), watched(&c, 2)];
        let mut ready = [false; 2];
        assert_eq!(w.wait(&list, Some(Duration::ZERO), &mut ready).expect("wait"), 0);
        std::io::Write::write_all(&mut &b, b"x").expect("write");
        drop(a);
        assert_eq!(w.wait(&list, Some(Duration::ZERO), &mut ready).expect("wait"), 0);
        std::io::Write::write_all(&mut &d, b"y").expect("write");
        assert_eq!(w.wait(&list, Some(Duration::ZERO), &mut ready).expect("wait"), 1);
        assert_eq!(ready, [false, true]);
    }
}
