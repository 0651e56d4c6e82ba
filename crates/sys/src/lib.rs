//! Linux I/O for cdra.
//!
//! This is the only crate of the project that contains `unsafe` code. It knows nothing of
//! DHCP: it moves bytes between caller-provided buffers and sockets, and reports facts about
//! network interfaces.
//!
//! * [`iface`]: interface names, indexes, MAC and IPv4 addresses, MTU, up/down.
//! * [`udp`]: the UDP socket (IP_PKTINFO, batched receive with `recvmmsg`, source/interface
//!   selection on send).
//! * [`packet`]: AF_PACKET sockets: sending complete IPv4 datagrams to a link-layer address,
//!   and ARP probes / ARP observation.
//! * [`tap`]: reading UDP datagrams off one link with the frame's source hardware address
//!   (client requests), and classic BPF filters.
//! * [`icmp`]: raw ICMP echo requests and replies.
//! * [`intercept`]: spoofing mode's interception (an nftables table owned by the process:
//!   the router stops forwarding client unicasts to the servers).
//! * [`route`]: where the kernel routes an address (`ip route get`).
//! * [`linkwatch`]: being told when interfaces come and go or change addresses (rtnetlink).
//! * [`poll`]: waiting for readability on several descriptors.
//! * [`privileges`]: what the process may do (effective capabilities), and dropping them.
//! * [`netns`]: moving a thread into a named network namespace (used by tests and simulators).
//!
//! Guarantees common to all modules:
//! * No function panics on bad input or OS errors; failures are returned as
//!   [`SysError`] (set-up paths) or [`std::io::Error`] (per-packet paths).
//! * The per-packet paths (`recv_batch`, `send_to`, `send`, `send_probe`, `recv`,
//!   `send_echo`, `recv_reply`, `wait_readable` with at most 64 descriptors) do not allocate.
//! * Every socket is created non-blocking and close-on-exec and is closed on drop.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod error;
mod nl;
mod sock;

pub mod icmp;
pub mod iface;
pub mod intercept;
pub mod link;
pub mod linkwatch;
pub mod netns;
pub mod packet;
pub mod poll;
pub mod privileges;
pub mod route;
pub mod tap;
pub mod udp;

pub use error::SysError;
