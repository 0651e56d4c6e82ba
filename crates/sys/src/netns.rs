//! Running code inside a named network namespace (as created by `ip netns add NAME`).
//!
//! Guarantees: only the calling thread (or, for [`run_in`], a new scoped thread) changes
//! namespace; the rest of the process stays where it is. Sockets opened inside keep
//! belonging to that namespace when used from other threads. Needs CAP_SYS_ADMIN.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The file `ip netns` uses for the namespace `name`.
pub fn named_path(name: &str) -> PathBuf {
    Path::new("/run/netns").join(name)
}

/// Moves the calling thread into the network namespace referred to by `path`
/// (e.g. `/run/netns/NAME` or `/proc/PID/ns/net`).
pub fn enter(path: &Path) -> io::Result<()> {
    let f = File::open(path)?;
    // SAFETY: setns(2) with a descriptor that stays open for the call; it only changes the
    // calling thread's namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Moves the calling thread into the namespace created by `ip netns add name`.
pub fn enter_named(name: &str) -> io::Result<()> {
    if name.is_empty() || name.contains('/') {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("invalid network namespace name {name:?}")));
    }
    enter(&named_path(name))
}

/// Runs `f` on a new thread that first enters the namespace `name`, and returns its result.
/// A panic in `f` is propagated to the caller.
pub fn run_in<T: Send, F: FnOnce() -> T + Send>(name: &str, f: F) -> io::Result<T> {
    std::thread::scope(|s| {
        let h = s.spawn(|| enter_named(name).map(|()| f()));
        match h.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
