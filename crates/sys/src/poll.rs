//! Waiting until one of several descriptors is readable.
//!
//! Guarantees: [`wait_readable`] never blocks longer than the timeout (rounded up to whole
//! milliseconds), returns early with nothing ready when a signal interrupts it (so the
//! caller can check flags set by signal handlers), and allocates nothing for up to
//! [`STACK_FDS`] descriptors.

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
    for r in ready.iter_mut() {
        *r = false;
    }
    let timeout_ms = timeout_to_ms(timeout);
    let empty = libc::pollfd { fd: -1, events: 0, revents: 0 };
    if fds.len() <= STACK_FDS {
        let mut pfds = [empty; STACK_FDS];
        poll_into(fds, &mut pfds[..fds.len()], timeout_ms, ready)
    } else {
        let mut pfds = vec![empty; fds.len()];
        poll_into(fds, &mut pfds, timeout_ms, ready)
    }
}

fn timeout_to_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(d) => {
            // Round up so that a sub-millisecond timeout does not turn into a busy loop.
            let ms = d.as_nanos().div_ceil(1_000_000);
            ms.min(libc::c_int::MAX as u128) as libc::c_int
        }
    }
}

fn poll_into(
    fds: &[RawFd],
    pfds: &mut [libc::pollfd],
    timeout_ms: libc::c_int,
    ready: &mut [bool],
) -> io::Result<usize> {
    for (p, &fd) in pfds.iter_mut().zip(fds) {
        p.fd = fd;
        p.events = libc::POLLIN;
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
        if p.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0 {
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
        assert_eq!(timeout_to_ms(Some(Duration::from_secs(u64::MAX))), libc::c_int::MAX);
    }

    #[test]
    fn ready_too_short_is_an_error() {
        let mut ready = [false; 1];
        let e = wait_readable(&[0, 1], Some(Duration::ZERO), &mut ready).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
