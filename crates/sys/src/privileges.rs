//! What the process may do with the network, and giving privileges up.
//!
//! Guarantees:
//! * The checks read the calling thread's effective capability set with `capget(2)`; if that
//!   fails they fall back to "effective uid is 0". They are a best-effort forecast: the
//!   operations themselves still report [`crate::SysError::PermissionDenied`].
//! * [`drop_capabilities_except`] and [`keep_only_capabilities`] change only the calling
//!   thread (and threads it creates afterwards): call them before any other thread is
//!   started. Dropped capabilities cannot be regained.
//! * [`switch_user`] changes the user and group ids of every thread (glibc applies
//!   `setresuid`/`setresgid`/`setgroups` process-wide) and keeps the permitted capability
//!   set across the change (`PR_SET_KEEPCAPS`), so [`keep_only_capabilities`] can then
//!   raise the ones kept into the effective set.
//! * [`restrict_bounding_set`] removes capabilities from the bounding set, so no program
//!   the process could execute (even as uid 0) gets them back.

use std::io;

/// CAP_NET_BIND_SERVICE: bind ports below 1024 (UDP 67).
pub const CAP_NET_BIND_SERVICE: u32 = 10;
/// CAP_NET_ADMIN: interface configuration, SO_RCVBUFFORCE.
pub const CAP_NET_ADMIN: u32 = 12;
/// CAP_NET_RAW: AF_PACKET and raw sockets.
pub const CAP_NET_RAW: u32 = 13;
/// CAP_SYS_ADMIN: among others, entering network namespaces.
pub const CAP_SYS_ADMIN: u32 = 21;
/// CAP_SETGID: change group ids.
pub const CAP_SETGID: u32 = 6;
/// CAP_SETUID: change user ids.
pub const CAP_SETUID: u32 = 7;
/// CAP_SETPCAP: remove capabilities from the bounding set.
pub const CAP_SETPCAP: u32 = 8;

/// The highest capability number if `/proc/sys/kernel/cap_last_cap` cannot be read
/// (CAP_CHECKPOINT_RESTORE, Linux 5.9).
const FALLBACK_LAST_CAP: u32 = 40;

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

/// The calling thread's capability sets, as bit masks (bit N = capability N).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapabilitySets {
    /// What the thread may use now.
    pub effective: u64,
    /// What it may raise into the effective set.
    pub permitted: u64,
    /// What survives an `execve`.
    pub inheritable: u64,
}

/// The calling thread's capability sets.
pub fn capability_sets() -> io::Result<CapabilitySets> {
    let d = capget()?;
    let join = |f: fn(&CapData) -> u32| u64::from(f(&d[0])) | (u64::from(f(&d[1])) << 32);
    Ok(CapabilitySets {
        effective: join(|c| c.effective),
        permitted: join(|c| c.permitted),
        inheritable: join(|c| c.inheritable),
    })
}

fn mask_of(caps: &[u32]) -> u64 {
    caps.iter().filter(|&&c| c < 64).fold(0u64, |m, &c| m | (1u64 << c))
}

fn capset(effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
    let half = |m: u64, hi: bool| if hi { (m >> 32) as u32 } else { m as u32 };
    let data = [
        CapData {
            effective: half(effective, false),
            permitted: half(permitted, false),
            inheritable: half(inheritable, false),
        },
        CapData {
            effective: half(effective, true),
            permitted: half(permitted, true),
            inheritable: half(inheritable, true),
        },
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

/// Reduce the calling thread's permitted set to `keep` (those of them it has) and make
/// exactly those effective; clear the inheritable and ambient sets. Unlike
/// [`drop_capabilities_except`], a capability that is permitted but not effective (as after
/// [`switch_user`]) is raised. Returns the sets afterwards.
pub fn keep_only_capabilities(keep: &[u32]) -> io::Result<CapabilitySets> {
    let cur = capability_sets()?;
    let kept = cur.permitted & mask_of(keep);
    capset(kept, kept, 0)?;
    // SAFETY: prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) takes no pointers.
    // It fails (EINVAL) only on kernels older than 4.3, which have no ambient set to clear.
    let _ = unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) };
    capability_sets()
}

/// The highest capability number the kernel knows.
pub fn last_capability() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(FALLBACK_LAST_CAP)
}

/// True if capability `cap` is in the calling thread's bounding set.
pub fn in_bounding_set(cap: u32) -> bool {
    // SAFETY: prctl(PR_CAPBSET_READ, cap, 0, 0, 0) takes no pointers; it returns 1, 0 or -1.
    let rc = unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0, 0, 0) };
    rc == 1
}

/// Remove every capability but `keep` from the bounding set. Needs CAP_SETPCAP in the
/// effective set; returns `Ok(false)` without changing anything when it is missing (a
/// process started by systemd with `CapabilityBoundingSet=` already has a small one).
pub fn restrict_bounding_set(keep: &[u32]) -> io::Result<bool> {
    if !has_capability(CAP_SETPCAP) {
        return Ok(false);
    }
    let keep = mask_of(keep);
    for cap in 0..=last_capability().min(63) {
        if keep & (1u64 << cap) != 0 || !in_bounding_set(cap) {
            continue;
        }
        // SAFETY: prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) takes no pointers.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(true)
}

/// A user's numeric ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserIds {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// Look a user up by name (through NSS, so systemd's dynamic users are found too).
/// `Ok(None)`: no such user.
pub fn lookup_user(name: &str) -> io::Result<Option<UserIds>> {
    let Ok(cname) = std::ffi::CString::new(name) else {
        return Ok(None);
    };
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: passwd is a plain C struct; all-zero is a valid (empty) value that
        // getpwnam_r overwrites.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `cname` is NUL-terminated; `pwd`, `buf` (of `buf.len()` bytes) and
        // `result` are valid for writes for the duration of the call; the strings it
        // stores point into `buf`, which we do not read.
        let rc = unsafe { libc::getpwnam_r(cname.as_ptr(), &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut result) };
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Ok(None);
        }
        return Ok(Some(UserIds { uid: pwd.pw_uid, gid: pwd.pw_gid }));
    }
}

/// The effective user and group ids of the process.
pub fn current_ids() -> UserIds {
    // SAFETY: geteuid(2) and getegid(2) have no preconditions and cannot fail.
    unsafe { UserIds { uid: libc::geteuid(), gid: libc::getegid() } }
}

/// Become `ids` (real, effective and saved user and group ids; no supplementary groups),
/// keeping the permitted capability set: `PR_SET_KEEPCAPS` is set for the change and
/// cleared again. The effective set is empty afterwards (the kernel clears it on a change
/// from uid 0): raise what is kept with [`keep_only_capabilities`]. Needs CAP_SETUID and
/// CAP_SETGID.
pub fn switch_user(ids: UserIds) -> io::Result<()> {
    // SAFETY: prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) takes no pointers.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1 as libc::c_ulong, 0, 0, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let result = set_ids(ids);
    // SAFETY: as above.
    let _ = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0 as libc::c_ulong, 0, 0, 0) };
    result
}

fn set_ids(ids: UserIds) -> io::Result<()> {
    // SAFETY: setgroups(0, NULL) reads no memory: it empties the supplementary group list.
    if unsafe { libc::setgroups(0, std::ptr::null()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: setresgid(2) takes plain integers.
    if unsafe { libc::setresgid(ids.gid, ids.gid, ids.gid) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: setresuid(2) takes plain integers.
    if unsafe { libc::setresuid(ids.uid, ids.uid, ids.uid) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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
    fn root_and_nobody_are_found_and_strangers_are_not() {
        assert_eq!(lookup_user("root").expect("lookup"), Some(UserIds { uid: 0, gid: 0 }));
        assert_eq!(lookup_user("no-such-user-cdra-test").expect("lookup"), None);
        assert_eq!(lookup_user("bad\0name").expect("lookup"), None);
    }

    #[test]
    fn keeping_only_some_capabilities_in_a_thread() {
        if !has_capability(CAP_NET_RAW) || !has_capability(CAP_NET_BIND_SERVICE) {
            eprintln!("note: not privileged; skipping capability test");
            return;
        }
        let child = std::thread::spawn(|| keep_only_capabilities(&[CAP_NET_RAW, 200])).join().expect("thread");
        let sets = child.expect("capset");
        assert_eq!(sets.effective, 1 << CAP_NET_RAW);
        assert_eq!(sets.permitted, 1 << CAP_NET_RAW);
        assert_eq!(sets.inheritable, 0);
        assert!(has_capability(CAP_NET_BIND_SERVICE), "the test thread keeps its capabilities");
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
