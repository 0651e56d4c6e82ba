//! What the process may do with the network, and giving privileges up.
//!
//! Guarantees:
//! * The checks read the calling thread's effective capability set with `capget(2)`; if that
//!   fails they fall back to "effective uid is 0". They are a best-effort forecast: the
//!   operations themselves still report [`crate::SysError::PermissionDenied`].
//! * [`drop_capabilities_except`] changes only the calling thread (and threads it creates
//!   afterwards); dropped capabilities cannot be regained.

use std::io;

/// CAP_NET_BIND_SERVICE: bind ports below 1024 (UDP 67).
pub const CAP_NET_BIND_SERVICE: u32 = 10;
/// CAP_NET_ADMIN: interface configuration, SO_RCVBUFFORCE.
pub const CAP_NET_ADMIN: u32 = 12;
/// CAP_NET_RAW: AF_PACKET and raw sockets.
pub const CAP_NET_RAW: u32 = 13;
/// CAP_SYS_ADMIN: among others, entering network namespaces.
pub const CAP_SYS_ADMIN: u32 = 21;

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn capget() -> io::Result<[CapData; 2]> {
    let mut hdr = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget(2) with a version-3 header reads `hdr` and writes two CapData structs
    // (the layout of struct __user_cap_data_struct) into `data`, which has room for them.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut hdr as *mut CapHeader, data.as_mut_ptr()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(data)
}

/// The calling thread's effective capability set as a bit mask (bit N = capability N), or
/// `None` if it cannot be read.
pub fn effective_capabilities() -> Option<u64> {
    let d = capget().ok()?;
    Some(u64::from(d[0].effective) | (u64::from(d[1].effective) << 32))
}

/// True if the effective user id is 0.
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// True if the calling thread has capability `cap` (one of the `CAP_*` constants) in its
/// effective set; if the set cannot be read, true when running as root.
pub fn has_capability(cap: u32) -> bool {
    match effective_capabilities() {
        Some(caps) => cap < 64 && caps & (1u64 << cap) != 0,
        None => is_root(),
    }
}

/// True if the process can bind UDP port 67 and open AF_PACKET / raw ICMP sockets, i.e. has
/// CAP_NET_BIND_SERVICE and CAP_NET_RAW (as root normally does). Best effort.
pub fn is_root_or_has_net_caps() -> bool {
    missing_net_caps().is_empty()
}

/// The names of the capabilities among CAP_NET_BIND_SERVICE and CAP_NET_RAW that the
/// calling thread lacks (empty when it has both), for messages such as
/// "missing CAP_NET_RAW".
pub fn missing_net_caps() -> Vec<&'static str> {
    let mut v = Vec::new();
    if !has_capability(CAP_NET_BIND_SERVICE) {
        v.push("CAP_NET_BIND_SERVICE");
    }
    if !has_capability(CAP_NET_RAW) {
        v.push("CAP_NET_RAW");
    }
    v
}

/// Reduces the calling thread's effective and permitted capability sets to those in `keep`
/// (and clears the inheritable set). Capabilities the thread does not have are ignored.
/// Use after opening privileged sockets; affects only this thread and threads it creates
/// later.
pub fn drop_capabilities_except(keep: &[u32]) -> io::Result<()> {
    let cur = capget()?;
    let mut mask = 0u64;
    for &c in keep {
        if c < 64 {
            mask |= 1u64 << c;
        }
    }
    let lo = mask as u32;
    let hi = (mask >> 32) as u32;
    let data = [
        CapData { effective: cur[0].effective & lo, permitted: cur[0].permitted & lo, inheritable: 0 },
        CapData { effective: cur[1].effective & hi, permitted: cur[1].permitted & hi, inheritable: 0 },
    ];
    let mut hdr = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    // SAFETY: capset(2) with a version-3 header reads `hdr` and two CapData structs from
    // `data`; both live for the duration of the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_queries_are_consistent() {
        let caps = effective_capabilities();
        if let Some(c) = caps {
            assert_eq!(has_capability(CAP_NET_RAW), c & (1 << CAP_NET_RAW) != 0);
        }
        assert_eq!(is_root_or_has_net_caps(), missing_net_caps().is_empty());
        assert!(!has_capability(200));
    }

    #[test]
    fn dropping_in_a_thread_does_not_affect_others() {
        if !has_capability(CAP_NET_RAW) {
            eprintln!("note: not privileged; skipping capability drop test");
            return;
        }
        let child = std::thread::spawn(|| drop_capabilities_except(&[]).map(|_| effective_capabilities()))
            .join()
            .expect("thread");
        assert_eq!(child.expect("capset"), Some(0));
        assert!(has_capability(CAP_NET_RAW), "main thread keeps its capabilities");
    }
}
