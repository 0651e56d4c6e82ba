//! The error type of the set-up paths (opening sockets, looking up interfaces).
//!
//! Guarantees: every variant displays as one line that names the cause, e.g.
//! `interface rd9 does not exist` or
//! `binding UDP port 67 needs root or CAP_NET_BIND_SERVICE (permission denied)`.

use std::fmt;
use std::io;

/// A failure while setting up I/O, with a one-line description of its cause.
#[derive(Debug)]
#[non_exhaustive]
pub enum SysError {
    /// The named interface does not exist.
    NoSuchInterface {
        /// The interface name as given.
        name: String,
    },
    /// The interface exists but carries no IPv4 address.
    NoIpv4Address {
        /// The interface name.
        name: String,
    },
    /// A name that no interface can have (empty, longer than 15 bytes, or containing NUL or '/').
    InvalidInterfaceName {
        /// The name as given.
        name: String,
    },
    /// The operation needs a privilege the process does not have (EPERM or EACCES).
    PermissionDenied {
        /// What was attempted, e.g. "binding UDP port 67".
        action: String,
        /// What it needs, e.g. "root or CAP_NET_BIND_SERVICE".
        needs: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The address (or port) is already taken by another socket (EADDRINUSE).
    AddressInUse {
        /// What was attempted, e.g. "binding UDP 0.0.0.0:67".
        action: String,
        /// The OS error.
        source: io::Error,
    },
    /// Any other OS error.
    Io {
        /// What was attempted.
        action: String,
        /// The OS error.
        source: io::Error,
    },
}

impl SysError {
    /// Maps an OS error from `action` to a [`SysError`]: EPERM/EACCES become
    /// [`SysError::PermissionDenied`] (naming `needs`), EADDRINUSE becomes
    /// [`SysError::AddressInUse`], anything else [`SysError::Io`].
    ///
    /// `action` is a short gerund phrase: "opening an AF_PACKET socket".
    pub fn from_io(action: impl Into<String>, needs: &'static str, source: io::Error) -> Self {
        let action = action.into();
        match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => SysError::PermissionDenied { action, needs, source },
            Some(libc::EADDRINUSE) => SysError::AddressInUse { action, source },
            _ => SysError::Io { action, source },
        }
    }

    /// Like [`SysError::from_io`], but ENODEV / ENXIO (no such device) become
    /// [`SysError::NoSuchInterface`] for `device`.
    pub fn from_io_on_device(device: &str, action: impl Into<String>, needs: &'static str, source: io::Error) -> Self {
        match source.raw_os_error() {
            Some(libc::ENODEV) | Some(libc::ENXIO) => SysError::NoSuchInterface { name: device.to_string() },
            _ => Self::from_io(action, needs, source),
        }
    }

    /// The underlying OS error number, if there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            SysError::PermissionDenied { source, .. }
            | SysError::AddressInUse { source, .. }
            | SysError::Io { source, .. } => source.raw_os_error(),
            SysError::NoSuchInterface { .. } => Some(libc::ENODEV),
            SysError::NoIpv4Address { .. } => Some(libc::EADDRNOTAVAIL),
            SysError::InvalidInterfaceName { .. } => Some(libc::EINVAL),
        }
    }

    /// True for [`SysError::PermissionDenied`].
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, SysError::PermissionDenied { .. })
    }

    fn io_kind(&self) -> io::ErrorKind {
        match self {
            SysError::NoSuchInterface { .. } => io::ErrorKind::NotFound,
            SysError::NoIpv4Address { .. } => io::ErrorKind::AddrNotAvailable,
            SysError::InvalidInterfaceName { .. } => io::ErrorKind::InvalidInput,
            SysError::PermissionDenied { .. } => io::ErrorKind::PermissionDenied,
            SysError::AddressInUse { .. } => io::ErrorKind::AddrInUse,
            SysError::Io { source, .. } => source.kind(),
        }
    }
}

/// A short lower-case text for an OS error, without the "(os error N)" suffix.
fn reason(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(libc::EPERM) => "operation not permitted".to_string(),
        Some(libc::EACCES) => "permission denied".to_string(),
        Some(libc::EADDRINUSE) => "address already in use".to_string(),
        Some(libc::EADDRNOTAVAIL) => "address not available on this host".to_string(),
        Some(libc::ENODEV) => "no such device".to_string(),
        _ => err.to_string(),
    }
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SysError::NoSuchInterface { name } => write!(f, "interface {name} does not exist"),
            SysError::NoIpv4Address { name } => write!(f, "interface {name} has no IPv4 address"),
            SysError::InvalidInterfaceName { name } => {
                write!(f, "invalid interface name {name:?} (1 to 15 bytes, no NUL or '/')")
            }
            SysError::PermissionDenied { action, needs, source } => {
                write!(f, "{action} needs {needs} ({})", reason(source))
            }
            SysError::AddressInUse { action, .. } => {
                write!(f, "{action}: address already in use by another socket")
            }
            SysError::Io { action, source } => write!(f, "{action}: {}", reason(source)),
        }
    }
}

impl std::error::Error for SysError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SysError::PermissionDenied { source, .. }
            | SysError::AddressInUse { source, .. }
            | SysError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<SysError> for io::Error {
    fn from(e: SysError) -> io::Error {
        let kind = e.io_kind();
        io::Error::new(kind, e.to_string())
    }
}

/// Checks that `name` can be an interface name: 1..=15 bytes, no NUL, no '/'.
pub(crate) fn check_ifname(name: &str) -> Result<(), SysError> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.bytes().any(|b| b == 0 || b == b'/') {
        return Err(SysError::InvalidInterfaceName { name: name.to_string() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_clear_line() {
        let e = SysError::from_io(
            "binding UDP port 67",
            "root or CAP_NET_BIND_SERVICE",
            io::Error::from_raw_os_error(libc::EACCES),
        );
        assert_eq!(e.to_string(), "binding UDP port 67 needs root or CAP_NET_BIND_SERVICE (permission denied)");
        assert!(e.is_permission_denied());

        let e =
            SysError::from_io("opening an AF_PACKET socket", "CAP_NET_RAW", io::Error::from_raw_os_error(libc::EPERM));
        assert_eq!(e.to_string(), "opening an AF_PACKET socket needs CAP_NET_RAW (operation not permitted)");

        let e = SysError::from_io("binding UDP 0.0.0.0:67", "", io::Error::from_raw_os_error(libc::EADDRINUSE));
        assert_eq!(e.to_string(), "binding UDP 0.0.0.0:67: address already in use by another socket");
        assert_eq!(e.raw_os_error(), Some(libc::EADDRINUSE));

        let e = SysError::from_io_on_device("rd9", "binding to rd9", "", io::Error::from_raw_os_error(libc::ENODEV));
        assert_eq!(e.to_string(), "interface rd9 does not exist");

        let e = SysError::NoIpv4Address { name: "rd0".into() };
        assert_eq!(e.to_string(), "interface rd0 has no IPv4 address");
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::AddrNotAvailable);

        let e = SysError::from_io("x", "", io::Error::from_raw_os_error(libc::EMFILE));
        assert!(matches!(e, SysError::Io { .. }));
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn interface_names_are_checked() {
        assert!(check_ifname("eth0").is_ok());
        assert!(check_ifname("fifteen_chars_x").is_ok());
        assert!(check_ifname("sixteen_chars_xx").is_err());
        assert!(check_ifname("").is_err());
        assert!(check_ifname("a\0b").is_err());
        assert!(check_ifname("a/b").is_err());
    }
}
