//! Least privilege in the process itself.
//!
//! Once start-up has opened everything that needs privileges (UDP :67, the AF_PACKET,
//! ARP and ICMP sockets, the metrics and control listeners), and before any other thread
//! exists (the store writer and the management thread start afterwards, so they inherit
//! the result), [`drop_privileges`]:
//!
//! 1. removes every capability the mode does not need from the bounding set (when the
//!    process may: CAP_SETPCAP), so nothing it could execute gets them back, even as uid 0;
//! 2. with `user = "NAME"`, becomes that user (real, effective and saved uid and gid, no
//!    supplementary groups), keeping the needed capabilities across the change
//!    (`PR_SET_KEEPCAPS`);
//! 3. keeps exactly [`needed`] in the permitted and effective sets and clears the
//!    inheritable and ambient sets;
//! 4. logs one line saying what it kept.
//!
//! Whatever started cdra (a shell as root, a dhcrelay-style unit, or systemd with only the
//! needed capabilities and a dynamic user) ends in the same state. A process that already
//! runs as `user` is not switched; one that lacks a capability it would keep simply does
//! not have it (opening its sockets would have failed first). All system calls are in
//! `cdra_sys::privileges`.

use anyhow::{anyhow, Result};
use cdra_core::Mode;
use cdra_sys::privileges as sys;

/// A capability cdra may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Create AF_PACKET and raw sockets.
    NetRaw,
    /// Change the packet filter (spoofing mode's interception table).
    NetAdmin,
}

impl Capability {
    /// The kernel's number for it.
    pub const fn number(self) -> u32 {
        match self {
            Capability::NetRaw => sys::CAP_NET_RAW,
            Capability::NetAdmin => sys::CAP_NET_ADMIN,
        }
    }

    /// Its name, as in capabilities(7).
    pub const fn name(self) -> &'static str {
        match self {
            Capability::NetRaw => "CAP_NET_RAW",
            Capability::NetAdmin => "CAP_NET_ADMIN",
        }
    }
}

/// What a mode keeps after start-up, and why (the README and `contrib/cdra.service` say
/// the same).
///
/// - CAP_NET_RAW, both modes: AF_PACKET sockets (replies to clients without an address,
///   ARP probes) and the raw ICMP socket need it when they are created. Those open today
///   are created before the drop; it is kept so a packet socket can be opened again
///   (an interface that is deleted and re-created has a new index and needs a new
///   socket), which is the one thing cdra may still have to do with privileges.
/// - CAP_NET_BIND_SERVICE is dropped: UDP :67 is bound once at start-up and never again.
///   (systemd grants it for that bind only.)
/// - CAP_NET_ADMIN is never kept in relay or proxy mode. Spoofing mode (paper 4.2) keeps
///   it: the interception table it owns (`cdra_sys::intercept`) grows a server identifier
///   at run time, and the kernel checks the capability on every nftables message.
pub fn needed(mode: Mode) -> &'static [Capability] {
    match mode {
        Mode::Relay | Mode::Proxy | Mode::Pool => &[Capability::NetRaw],
        Mode::Spoof => &[Capability::NetRaw, Capability::NetAdmin],
    }
}

/// What [`drop_privileges`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The capabilities left (effective and permitted).
    pub kept: Vec<&'static str>,
    /// The user and group ids now.
    pub ids: sys::UserIds,
    /// The bounding set was reduced too (false when the process could not: no CAP_SETPCAP).
    pub bounding_set_reduced: bool,
}

fn names(mask: u64) -> Vec<&'static str> {
    [Capability::NetRaw, Capability::NetAdmin]
        .into_iter()
        .filter(|c| mask & (1u64 << c.number()) != 0)
        .map(Capability::name)
        .collect()
}

/// Give up every privilege `mode` does not need, and become `user` if given. Call once,
/// after every privileged socket is open and before any thread is started.
pub fn drop_privileges(mode: Mode, user: Option<&str>) -> Result<Dropped> {
    let keep: Vec<u32> = needed(mode).iter().map(|c| c.number()).collect();
    let target = match user {
        Some(name) => Some(
            sys::lookup_user(name)
                .map_err(|e| anyhow!("user: cannot look up {name:?}: {e}"))?
                .ok_or_else(|| anyhow!("user: no such user {name:?}"))?,
        ),
        None => None,
    };
    let bounding_set_reduced =
        sys::restrict_bounding_set(&keep).map_err(|e| anyhow!("cannot reduce the capability bounding set: {e}"))?;
    if let Some(ids) = target.filter(|ids| *ids != sys::current_ids()) {
        sys::switch_user(ids).map_err(|e| {
            anyhow!(
                "user: cannot become {:?} (uid {}, gid {}): {e} (needs CAP_SETUID and CAP_SETGID, or start cdra as that user)",
                user.unwrap_or(""),
                ids.uid,
                ids.gid
            )
        })?;
    }
    let sets = sys::keep_only_capabilities(&keep).map_err(|e| anyhow!("cannot drop capabilities: {e}"))?;
    let dropped = Dropped { kept: names(sets.effective), ids: sys::current_ids(), bounding_set_reduced };
    let kept = if dropped.kept.is_empty() { "none".to_string() } else { dropped.kept.join(",") };
    tracing::info!(
        kept = %kept,
        uid = dropped.ids.uid,
        gid = dropped.ids.gid,
        user = user.unwrap_or("(unchanged)"),
        bounding_set = if bounding_set_reduced { "reduced" } else { "unchanged" },
        "privileges dropped: only the capabilities listed are kept"
    );
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_and_proxy_keep_only_net_raw_spoof_also_net_admin() {
        for mode in [Mode::Relay, Mode::Proxy, Mode::Pool] {
            let caps: Vec<&str> = needed(mode).iter().map(|c| c.name()).collect();
            assert_eq!(caps, ["CAP_NET_RAW"], "{mode:?}");
        }
        let caps: Vec<&str> = needed(Mode::Spoof).iter().map(|c| c.name()).collect();
        assert_eq!(caps, ["CAP_NET_RAW", "CAP_NET_ADMIN"]);
        assert_eq!(names(1 << sys::CAP_NET_RAW | 1 << sys::CAP_NET_BIND_SERVICE), ["CAP_NET_RAW"]);
    }
}
