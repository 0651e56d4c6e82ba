//! Facts about network interfaces: index, MAC address, IPv4 addresses, MTU, up/down.
//!
//! Guarantees:
//! * Facts are read from the calling thread's network namespace at the moment of the call
//!   (`getifaddrs`, `if_nametoindex`, `SIOCGIFMTU`, `SIOCGIFFLAGS`); nothing is cached.
//! * IPv4 addresses carried under an alias label (`eth0:1`) are reported on the base
//!   interface (`eth0`).
//! * `mac` is `Some` only for interfaces with a 6-byte hardware address that is not a loopback
//!   device (Ethernet, veth, bridges, VLANs, bonds, Wi-Fi); `None` for `lo`, tun, etc.
//! * A missing interface is reported as [`SysError::NoSuchInterface`].

use std::ffi::{CStr, CString};
use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::str::FromStr;

use crate::error::check_ifname;
use crate::sock::{self, Zeroable};
use crate::SysError;

/// An IPv4 address with its prefix length (an interface address such as `10.0.0.1/24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    /// The address.
    pub addr: Ipv4Addr,
    /// The prefix length, 0..=32 (larger values are treated as 32).
    pub prefix_len: u8,
}

impl Ipv4Net {
    /// An address with a prefix length (values above 32 are clamped to 32).
    pub const fn new(addr: Ipv4Addr, prefix_len: u8) -> Self {
        let prefix_len = if prefix_len > 32 { 32 } else { prefix_len };
        Ipv4Net { addr, prefix_len }
    }

    fn mask_u32(&self) -> u32 {
        let p = u32::from(self.prefix_len.min(32));
        if p == 0 {
            0
        } else {
            u32::MAX << (32 - p)
        }
    }

    /// The netmask, e.g. 255.255.255.0 for /24.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_u32())
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask_u32())
    }

    /// The directed broadcast address (host bits set). For /32 this is the address itself.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask_u32())
    }

    /// True if `ip` is in this subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let m = self.mask_u32();
        (u32::from(ip) & m) == (u32::from(self.addr) & m)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// Error of parsing an [`Ipv4Net`] from text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseIpv4NetError(String);

impl fmt::Display for ParseIpv4NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid IPv4 network {:?} (expected a.b.c.d/len with len 0..=32)", self.0)
    }
}

impl std::error::Error for ParseIpv4NetError {}

impl FromStr for Ipv4Net {
    type Err = ParseIpv4NetError;

    /// Parses `a.b.c.d/len`; a bare address means /32.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseIpv4NetError(s.to_string());
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, p.parse::<u8>().map_err(|_| err())?),
            None => (s, 32),
        };
        if p > 32 {
            return Err(err());
        }
        let addr = a.parse::<Ipv4Addr>().map_err(|_| err())?;
        Ok(Ipv4Net::new(addr, p))
    }
}

/// What the system says about one network interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Interface name, e.g. "eth0".
    pub name: String,
    /// Kernel interface index (> 0).
    pub index: u32,
    /// 6-byte hardware address, if the interface has one (see the module docs).
    pub mac: Option<[u8; 6]>,
    /// IPv4 addresses in the order the kernel lists them (primary first).
    pub ipv4: Vec<Ipv4Net>,
    /// MTU in bytes.
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
}

impl Interface {
    /// The first (primary) IPv4 address, if any.
    pub fn primary_ipv4(&self) -> Option<Ipv4Net> {
        self.ipv4.first().copied()
    }

    /// The first IPv4 address, or [`SysError::NoIpv4Address`].
    pub fn require_ipv4(&self) -> Result<Ipv4Net, SysError> {
        self.primary_ipv4().ok_or_else(|| SysError::NoIpv4Address { name: self.name.clone() })
    }

    /// True if `ip` is one of the interface's own addresses.
    pub fn has_address(&self, ip: Ipv4Addr) -> bool {
        self.ipv4.iter().any(|n| n.addr == ip)
    }

    /// The interface address whose subnet contains `ip`, if any.
    pub fn subnet_containing(&self, ip: Ipv4Addr) -> Option<Ipv4Net> {
        self.ipv4.iter().copied().find(|n| n.contains(ip))
    }
}

/// Looks up one interface by name.
pub fn interface_by_name(name: &str) -> Result<Interface, SysError> {
    check_ifname(name)?;
    let index = name_to_index(name)?;
    let entries = read_ifaddrs()?;
    let ctl = control_socket()?;
    build(name, index, &entries, &ctl)
}

/// Looks up an interface name by index.
pub fn interface_by_index(index: u32) -> Result<Interface, SysError> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` is IF_NAMESIZE bytes, as if_indextoname(3) requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return Err(SysError::NoSuchInterface { name: format!("with index {index}") });
    }
    // SAFETY: on success if_indextoname wrote a NUL-terminated name into `buf`.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned();
    interface_by_name(&name)
}

/// All interfaces of the current network namespace, ordered by index.
pub fn all_interfaces() -> Result<Vec<Interface>, SysError> {
    let entries = read_ifaddrs()?;
    let ctl = control_socket()?;
    let mut names: Vec<(&str, Option<u32>)> = Vec::new();
    for e in &entries {
        let (base, idx) = match &e.kind {
            Kind::Link { ifindex, .. } => (e.name.as_str(), Some(*ifindex)),
            _ => (base_name(&e.name), None),
        };
        match names.iter_mut().find(|(n, _)| *n == base) {
            Some(slot) => {
                if slot.1.is_none() {
                    slot.1 = idx;
                }
            }
            None => names.push((base, idx)),
        }
    }
    let mut out = Vec::with_capacity(names.len());
    for (name, idx) in names {
        let index = match idx {
            Some(i) if i > 0 => i,
            _ => match name_to_index(name) {
                Ok(i) => i,
                // Vanished between the two calls: skip it.
                Err(SysError::NoSuchInterface { .. }) => continue,
                Err(e) => return Err(e),
            },
        };
        match build(name, index, &entries, &ctl) {
            Ok(i) => out.push(i),
            Err(SysError::NoSuchInterface { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    out.sort_by_key(|i| i.index);
    Ok(out)
}

/// The interface index of `name` (`if_nametoindex`).
pub fn name_to_index(name: &str) -> Result<u32, SysError> {
    check_ifname(name)?;
    let c = CString::new(name).map_err(|_| SysError::InvalidInterfaceName { name: name.to_string() })?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        let err = io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::ENODEV) | Some(libc::ENXIO) | None | Some(0) => {
                SysError::NoSuchInterface { name: name.to_string() }
            }
            _ => SysError::from_io(format!("looking up interface {name}"), "", err),
        });
    }
    Ok(idx)
}

fn base_name(label: &str) -> &str {
    label.split(':').next().unwrap_or(label)
}

fn build(name: &str, index: u32, entries: &[Entry], ctl: &OwnedFd) -> Result<Interface, SysError> {
    let mut mac = None;
    let mut ipv4 = Vec::new();
    for e in entries {
        match &e.kind {
            Kind::Link { hatype, mac: m, .. } if e.name == name && *hatype != libc::ARPHRD_LOOPBACK => {
                mac = *m;
            }
            Kind::V4 { addr, prefix_len } if base_name(&e.name) == name => {
                ipv4.push(Ipv4Net::new(*addr, *prefix_len));
            }
            _ => {}
        }
    }
    let mtu = ifreq_get(ctl, name, libc::SIOCGIFMTU, |r| {
        // SAFETY: SIOCGIFMTU fills the `ifru_mtu` member of the union.
        let m = unsafe { r.ifr_ifru.ifru_mtu };
        m.max(0) as u32
    })?;
    let up = ifreq_get(ctl, name, libc::SIOCGIFFLAGS, |r| {
        // SAFETY: SIOCGIFFLAGS fills the `ifru_flags` member of the union.
        let f = unsafe { r.ifr_ifru.ifru_flags };
        (f as libc::c_int & libc::IFF_UP) != 0
    })?;
    Ok(Interface { name: name.to_string(), index, mac, ipv4, mtu, up })
}

/// An AF_INET datagram socket used only for interface ioctls (needs no privileges).
fn control_socket() -> Result<OwnedFd, SysError> {
    sock::socket(libc::AF_INET, libc::SOCK_DGRAM, 0)
        .map_err(|e| SysError::from_io("opening a socket for interface queries", "", e))
}

fn ifreq_get<T>(
    ctl: &OwnedFd,
    name: &str,
    request: libc::c_ulong,
    read: impl FnOnce(&libc::ifreq) -> T,
) -> Result<T, SysError> {
    let mut req = libc::ifreq::zeroed();
    // check_ifname guaranteed len < IFNAMSIZ, so the name stays NUL-terminated.
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: `req` is a valid, writable ifreq; the request is a "get" ioctl that writes only
    // into `req`.
    let rc = unsafe { libc::ioctl(ctl.as_raw_fd(), request as _, &mut req as *mut libc::ifreq) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        return Err(SysError::from_io_on_device(name, format!("querying interface {name}"), "", err));
    }
    Ok(read(&req))
}

/// One getifaddrs entry, copied out of the C list.
#[derive(Debug)]
struct Entry {
    name: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    V4 { addr: Ipv4Addr, prefix_len: u8 },
    Link { ifindex: u32, hatype: u16, mac: Option<[u8; 6]> },
    Other,
}

/// Owner of a `getifaddrs` list; frees it on drop.
struct IfAddrs(*mut libc::ifaddrs);

impl Drop for IfAddrs {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from a successful getifaddrs and is freed exactly once.
            unsafe { libc::freeifaddrs(self.0) };
        }
    }
}

fn read_ifaddrs() -> Result<Vec<Entry>, SysError> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `head` is a valid out-pointer.
    if unsafe { libc::getifaddrs(&mut head) } < 0 {
        return Err(SysError::from_io("listing network interfaces (getifaddrs)", "", io::Error::last_os_error()));
    }
    let list = IfAddrs(head);
    let mut out = Vec::new();
    let mut cur = list.0;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list owned by `list`, alive until `list` drops.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }.to_string_lossy().into_owned();
        let kind = if ifa.ifa_addr.is_null() {
            Kind::Other
        } else {
            // SAFETY: ifa_addr is non-null and points to at least a `sockaddr` header.
            let family = unsafe { (*ifa.ifa_addr).sa_family } as libc::c_int;
            match family {
                libc::AF_INET => {
                    // SAFETY: family AF_INET means the address is a sockaddr_in; read it
                    // unaligned to be safe about the C allocation's alignment.
                    let sa = unsafe { std::ptr::read_unaligned(ifa.ifa_addr as *const libc::sockaddr_in) };
                    let prefix_len = if ifa.ifa_netmask.is_null() {
                        32
                    } else {
                        // SAFETY: for an AF_INET entry the netmask, when present, is a sockaddr_in.
                        let m = unsafe { std::ptr::read_unaligned(ifa.ifa_netmask as *const libc::sockaddr_in) };
                        u32::from(sock::from_in_addr(m.sin_addr)).leading_ones() as u8
                    };
                    Kind::V4 { addr: sock::from_in_addr(sa.sin_addr), prefix_len }
                }
                libc::AF_PACKET => {
                    // SAFETY: family AF_PACKET means the address is a sockaddr_ll.
                    let ll = unsafe { std::ptr::read_unaligned(ifa.ifa_addr as *const libc::sockaddr_ll) };
                    let mac = if ll.sll_halen == 6 {
                        let mut m = [0u8; 6];
                        m.copy_from_slice(&ll.sll_addr[..6]);
                        Some(m)
                    } else {
                        None
                    };
                    Kind::Link { ifindex: ll.sll_ifindex.max(0) as u32, hatype: ll.sll_hatype, mac }
                }
                _ => Kind::Other,
            }
        };
        out.push(Entry { name, kind });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4net_math() {
        let n = Ipv4Net::new(Ipv4Addr::new(192, 168, 1, 10), 24);
        assert_eq!(n.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(n.network(), Ipv4Addr::new(192, 168, 1, 0));
        assert_eq!(n.broadcast(), Ipv4Addr::new(192, 168, 1, 255));
        assert!(n.contains(Ipv4Addr::new(192, 168, 1, 200)));
        assert!(!n.contains(Ipv4Addr::new(192, 168, 2, 1)));
        assert_eq!(n.to_string(), "192.168.1.10/24");

        let all = Ipv4Net::new(Ipv4Addr::new(1, 2, 3, 4), 0);
        assert_eq!(all.netmask(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(all.broadcast(), Ipv4Addr::BROADCAST);
        assert!(all.contains(Ipv4Addr::new(9, 9, 9, 9)));

        let host = Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 1), 32);
        assert_eq!(host.netmask(), Ipv4Addr::BROADCAST);
        assert_eq!(host.broadcast(), Ipv4Addr::new(10, 0, 0, 1));
        assert!(host.contains(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(!host.contains(Ipv4Addr::new(10, 0, 0, 2)));

        let odd = Ipv4Net::new(Ipv4Addr::new(10, 20, 30, 40), 20);
        assert_eq!(odd.netmask(), Ipv4Addr::new(255, 255, 240, 0));
        assert_eq!(odd.broadcast(), Ipv4Addr::new(10, 20, 31, 255));

        // Out-of-range prefix in a hand-built value acts as /32.
        let bad = Ipv4Net { addr: Ipv4Addr::new(10, 0, 0, 1), prefix_len: 40 };
        assert_eq!(bad.netmask(), Ipv4Addr::BROADCAST);
        assert_eq!(Ipv4Net::new(Ipv4Addr::LOCALHOST, 99).prefix_len, 32);
    }

    #[test]
    fn ipv4net_parse() {
        assert_eq!("10.0.0.1/8".parse::<Ipv4Net>().ok(), Some(Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 1), 8)));
        assert_eq!("10.0.0.1".parse::<Ipv4Net>().ok(), Some(Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 1), 32)));
        assert!("10.0.0.1/33".parse::<Ipv4Net>().is_err());
        assert!("10.0.0/8".parse::<Ipv4Net>().is_err());
        assert!("x".parse::<Ipv4Net>().is_err());
    }

    #[test]
    fn alias_labels_map_to_base() {
        assert_eq!(base_name("eth0:1"), "eth0");
        assert_eq!(base_name("eth0"), "eth0");
    }
}
