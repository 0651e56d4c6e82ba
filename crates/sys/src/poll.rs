//! Waiting until one of several descriptors is readable (or, with [`wait_ready`], writable).
//!
//! Guarantees: [`wait_readable`] and [`wait_ready`] never block longer than the timeout
//! (rounded up to whole milliseconds), return early with nothing ready when a signal
//! interrupts them (so the caller can check flags set by signal handlers), and allocate
//! nothing for up to [`STACK_FDS`] descriptors.

use std::io;
use std::os::fd::RawFd;
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
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EINTR) {
            return Ok(0);
        }
        return Err(err);
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
}
