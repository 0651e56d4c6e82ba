//! Reading UDP datagrams off one link as the link delivered them.
//!
//! A UDP socket tells the interface a datagram arrived on and its addresses, but not the
//! hardware address that sent the frame. A [`UdpTap`] is an AF_PACKET socket (SOCK_DGRAM,
//! ETH_P_IP) bound to one interface, with a classic BPF program that lets through only
//! unfragmented IPv4 UDP datagrams to one port (optionally only those whose payload starts
//! with a given byte), and reports each with the frame's source hardware address and
//! packet type. The caller checks the IPv4 and UDP headers (`cdra_wire`'s job, not ours).
//!
//! Guarantees:
//! * The filter is attached before the socket is bound, so no unfiltered frame is ever
//!   queued to it; frames this host sends are never reported (a socket bound to ETH_P_IP,
//!   not ETH_P_ALL, does not see outgoing frames).
//! * [`UdpTap::recv_batch`] takes up to a batch of datagrams with one `recvmmsg` and does
//!   not allocate.
//! * [`bpf::attach`] installs any classic BPF program on a socket (used to keep the UDP
//!   socket from queueing what a tap reads: see [`crate::udp::UdpSocket::ignore_from`]).
//! * Needs CAP_NET_RAW; without it, `open()` fails with a [`SysError::PermissionDenied`]
//!   that says so.

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::ptr;

use crate::sock::{self, Zeroable};
use crate::SysError;

/// Classic BPF programs and attaching them.
pub mod bpf {
    use std::io;
    use std::os::fd::OwnedFd;

    use crate::sock;

    /// One classic BPF instruction (`struct sock_filter`).
    pub type Insn = libc::sock_filter;

    /// `BPF_LD | BPF_W | BPF_ABS`.
    pub const LD_W_ABS: u16 = 0x20;
    /// `BPF_LD | BPF_H | BPF_ABS`.
    pub const LD_H_ABS: u16 = 0x28;
    /// `BPF_LD | BPF_B | BPF_ABS`.
    pub const LD_B_ABS: u16 = 0x30;
    /// `BPF_LD | BPF_H | BPF_IND`.
    pub const LD_H_IND: u16 = 0x48;
    /// `BPF_LD | BPF_B | BPF_IND`.
    pub const LD_B_IND: u16 = 0x50;
    /// `BPF_LDX | BPF_B | BPF_MSH`: X = 4 * (P\[k\] & 0xf).
    pub const LDX_MSH: u16 = 0xb1;
    /// `BPF_JMP | BPF_JEQ | BPF_K`.
    pub const JEQ: u16 = 0x15;
    /// `BPF_JMP | BPF_JSET | BPF_K`.
    pub const JSET: u16 = 0x45;
    /// `BPF_RET | BPF_K`.
    pub const RET: u16 = 0x06;
    /// Ancillary load of the arrival interface's index (`SKF_AD_OFF + SKF_AD_IFINDEX`).
    pub const ANCILLARY_IFINDEX: u32 = 0xffff_f000 + 8;
    /// "Keep the whole packet".
    pub const ACCEPT: u32 = 0xffff_ffff;
    /// "Drop the packet".
    pub const DROP: u32 = 0;

    /// An instruction.
    pub const fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn { code, jt, jf, k }
    }

    /// Attach `program` to `fd` (SO_ATTACH_FILTER), replacing any earlier one.
    pub fn attach(fd: &OwnedFd, program: &[Insn]) -> io::Result<()> {
        let len = u16::try_from(program.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // The kernel copies the program during the call; `program` outlives it.
        let prog = libc::sock_fprog { len, filter: program.as_ptr().cast_mut() };
        sock::setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
    }
}

/// Datagrams one [`UdpTap::recv_batch`] can take at most.
pub const MAX_TAP_BATCH: usize = 64;

/// How the frame was addressed at the link layer (`sll_pkttype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkDelivery {
    /// To this host's hardware address.
    Host,
    /// To the broadcast address.
    Broadcast,
    /// To a multicast address.
    Multicast,
    /// To another host (seen only in promiscuous mode).
    OtherHost,
}

/// What the kernel says of the packet's transport checksum (PACKET_AUXDATA `tp_status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportChecksum {
    /// Nothing said: the checksum in the packet is to be verified.
    Unverified,
    /// Already verified (by the device).
    Valid,
    /// Not filled in yet: the packet was sent from this host or a virtual link (veth)
    /// with checksum offload, and the checksum field holds only a partial sum. It must not
    /// be verified (ISC dhcpd learnt this the hard way).
    NotReady,
}

/// One datagram read by a tap: the IPv4 packet and what the link said about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tapped<'a> {
    /// The IPv4 packet, IP header first (at most the batch's buffer size).
    pub packet: &'a [u8],
    /// The frame's source hardware address, when it is a 6-byte (Ethernet) address.
    pub source_mac: Option<[u8; 6]>,
    /// How the frame was addressed.
    pub delivery: LinkDelivery,
    /// The interface it arrived on.
    pub ifindex: u32,
    /// The packet was longer than the buffer and was cut.
    pub truncated: bool,
    /// Whether its UDP checksum can be checked.
    pub checksum: TransportChecksum,
}

#[derive(Clone, Copy)]
struct TapMeta {
    len: usize,
    source_mac: Option<[u8; 6]>,
    delivery: LinkDelivery,
    ifindex: u32,
    truncated: bool,
    checksum: TransportChecksum,
}

/// Room for one PACKET_AUXDATA control message (`struct tpacket_auxdata`, 20 bytes, plus
/// its header), 8-byte aligned.
const AUX_BUF_LEN: usize = 64;

#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct AuxBuf([u8; AUX_BUF_LEN]);

/// `TP_STATUS_CSUMNOTREADY` and `TP_STATUS_CSUM_VALID` (linux/if_packet.h).
const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;
const TP_STATUS_CSUM_VALID: u32 = 1 << 7;

/// The checksum status in a received header's PACKET_AUXDATA control message.
fn checksum_status(hdr: &libc::msghdr) -> TransportChecksum {
    if hdr.msg_control.is_null() {
        return TransportChecksum::Unverified;
    }
    // SAFETY: `hdr` was filled in by recvmmsg: msg_control points to this entry's control
    // buffer and msg_controllen (set by the kernel) is no larger than it; the CMSG_* macros
    // stay within msg_controllen, and the data is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == libc::PACKET_AUXDATA {
                let aux = ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::tpacket_auxdata>());
                return if aux.tp_status & TP_STATUS_CSUMNOTREADY != 0 {
                    TransportChecksum::NotReady
                } else if aux.tp_status & TP_STATUS_CSUM_VALID != 0 {
                    TransportChecksum::Valid
                } else {
                    TransportChecksum::Unverified
                };
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
    TransportChecksum::Unverified
}

/// Buffers for one `recvmmsg` on a tap.
pub struct TapBatch {
    buf_size: usize,
    data: Box<[u8]>,
    addrs: Box<[libc::sockaddr_ll]>,
    aux: Box<[AuxBuf]>,
    iovecs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    meta: Box<[TapMeta]>,
    len: usize,
}

// SAFETY: the raw pointers inside `iovecs` and `hdrs` only ever point into buffers owned by
// the same `TapBatch` (data, addresses, control buffers); they are rewritten at the start of every `recv_batch` (which takes
// `&mut` of it) and are never dereferenced anywhere else.
unsafe impl Send for TapBatch {}

impl std::fmt::Debug for TapBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapBatch").field("capacity", &self.meta.len()).field("len", &self.len).finish()
    }
}

impl TapBatch {
    /// Buffers for `count` packets (1..=[`MAX_TAP_BATCH`]) of up to `buf_size` bytes.
    pub fn new(count: usize, buf_size: usize) -> Self {
        let count = count.clamp(1, MAX_TAP_BATCH);
        let buf_size = buf_size.max(1);
        let empty = TapMeta {
            len: 0,
            source_mac: None,
            delivery: LinkDelivery::Host,
            ifindex: 0,
            truncated: false,
            checksum: TransportChecksum::Unverified,
        };
        TapBatch {
            buf_size,
            data: vec![0u8; count * buf_size].into_boxed_slice(),
            addrs: vec![libc::sockaddr_ll::zeroed(); count].into_boxed_slice(),
            aux: vec![AuxBuf([0; AUX_BUF_LEN]); count].into_boxed_slice(),
            iovecs: vec![libc::iovec { iov_base: ptr::null_mut(), iov_len: 0 }; count].into_boxed_slice(),
            hdrs: (0..count).map(|_| libc::mmsghdr::zeroed()).collect(),
            meta: vec![empty; count].into_boxed_slice(),
            len: 0,
        }
    }

    /// How many packets one `recv_batch` can take.
    pub fn capacity(&self) -> usize {
        self.meta.len()
    }

    /// How many the last `recv_batch` took.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the last `recv_batch` took nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Packet `i` of the last `recv_batch`, or `None` if `i >= len()`.
    pub fn try_get(&self, i: usize) -> Option<Tapped<'_>> {
        if i >= self.len {
            return None;
        }
        let m = self.meta.get(i)?;
        let start = i * self.buf_size;
        let packet = self.data.get(start..start + m.len)?;
        Some(Tapped {
            packet,
            source_mac: m.source_mac,
            delivery: m.delivery,
            ifindex: m.ifindex,
            truncated: m.truncated,
            checksum: m.checksum,
        })
    }
}

/// An AF_PACKET socket reading IPv4 UDP datagrams to one port on one interface.
#[derive(Debug)]
pub struct UdpTap {
    fd: OwnedFd,
    ifindex: u32,
    identity: u64,
}

/// The tap's filter: unfragmented IPv4 UDP to `port`, payload starting with `first` when
/// given. The socket delivers packets from the IP header on (SOCK_DGRAM).
fn tap_program(port: u16, first: Option<u8>) -> Vec<bpf::Insn> {
    use bpf::*;
    let mut p = vec![
        insn(LD_B_ABS, 0, 0, 9),          // protocol
        insn(JEQ, 0, 0, 17),              // UDP? (jf patched to drop)
        insn(LD_H_ABS, 0, 0, 6),          // flags + fragment offset
        insn(JSET, 0, 0, 0x3fff),         // MF or an offset: drop (jt patched)
        insn(LDX_MSH, 0, 0, 0),           // X = IP header length
        insn(LD_H_IND, 0, 0, 2),          // UDP destination port
        insn(JEQ, 0, 0, u32::from(port)), // (jf patched)
    ];
    if let Some(b) = first {
        p.push(insn(LD_B_IND, 0, 0, 8)); // first payload byte
        p.push(insn(JEQ, 0, 0, u32::from(b))); // (jf patched)
    }
    p.push(insn(RET, 0, 0, 0xffff));
    p.push(insn(RET, 0, 0, DROP));
    let drop_at = p.len() - 1;
    for (i, ins) in p.iter_mut().enumerate().take(drop_at) {
        let to_drop = (drop_at - i - 1) as u8;
        match ins.code {
            JEQ => ins.jf = to_drop,
            JSET => ins.jt = to_drop,
            _ => {}
        }
    }
    p
}

impl UdpTap {
    /// Opens the tap on interface `ifindex` for UDP datagrams to `port` (whose payload
    /// starts with `first_payload_byte`, when given). Needs CAP_NET_RAW.
    pub fn open(ifindex: u32, port: u16, first_payload_byte: Option<u8>) -> Result<Self, SysError> {
        // Protocol 0: nothing is queued until the bind below, after the filter is in place.
        let fd = sock::socket(libc::AF_PACKET, libc::SOCK_DGRAM, 0)
            .map_err(|e| SysError::from_io("opening an AF_PACKET socket for client requests", "CAP_NET_RAW", e))?;
        bpf::attach(&fd, &tap_program(port, first_payload_byte))
            .map_err(|e| SysError::from_io("attaching the client-request filter", "CAP_NET_RAW", e))?;
        sock::set_large_buffers(&fd, 4 << 20);
        // Each packet comes with its checksum status (see TransportChecksum).
        sock::set_int(&fd, libc::SOL_PACKET, libc::PACKET_AUXDATA, 1)
            .map_err(|e| SysError::from_io("asking for packet checksum status", "CAP_NET_RAW", e))?;
        crate::packet::bind_packet_socket(&fd, ifindex, libc::ETH_P_IP as u16).map_err(|e| {
            SysError::from_io(format!("binding the client-request socket to interface {ifindex}"), "CAP_NET_RAW", e)
        })?;
        Ok(UdpTap { fd, ifindex, identity: crate::poll::new_identity() })
    }

    /// What tells this tap apart from any other, also one opened later under the same
    /// descriptor number ([`crate::poll::Watched`]).
    pub fn identity(&self) -> u64 {
        self.identity
    }

    /// The interface it reads.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Takes up to `batch.capacity()` packets with one `recvmmsg` (MSG_DONTWAIT); returns
    /// how many (0 when none is waiting, or the call was interrupted).
    pub fn recv_batch(&self, batch: &mut TapBatch) -> io::Result<usize> {
        batch.len = 0;
        let n = batch.meta.len();
        let bs = batch.buf_size;
        // Offsets stay in bounds: i < n, `data` has n * bs bytes, the other arrays n entries.
        let data = batch.data.as_mut_ptr();
        for (i, iov) in batch.iovecs.iter_mut().enumerate() {
            *iov = libc::iovec { iov_base: data.wrapping_add(i * bs).cast(), iov_len: bs };
        }
        let addrs = batch.addrs.as_mut_ptr();
        let aux = batch.aux.as_mut_ptr();
        let iovecs = batch.iovecs.as_mut_ptr();
        for (i, h) in batch.hdrs.iter_mut().enumerate() {
            h.msg_len = 0;
            h.msg_hdr.msg_name = addrs.wrapping_add(i).cast::<c_void>();
            h.msg_hdr.msg_namelen = sock::socklen_of::<libc::sockaddr_ll>();
            h.msg_hdr.msg_iov = iovecs.wrapping_add(i);
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = aux.wrapping_add(i).cast::<c_void>();
            h.msg_hdr.msg_controllen = AUX_BUF_LEN as _;
            h.msg_hdr.msg_flags = 0;
        }
        // SAFETY: `hdrs` holds n initialised headers whose name and iovec pointers point into
        // buffers owned by `batch` with the lengths stated; `batch` is exclusively borrowed for
        // the whole call, so nothing else aliases them.
        let rc = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                batch.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if sock::is_would_block(&err) || err.raw_os_error() == Some(libc::EINTR) {
                return Ok(0);
            }
            return Err(err);
        }
        let got = (rc as usize).min(n);
        for i in 0..got {
            let (Some(h), Some(sa), Some(meta)) = (batch.hdrs.get(i), batch.addrs.get(i), batch.meta.get_mut(i)) else {
                continue;
            };
            let source_mac = (sa.sll_halen == 6).then(|| {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&sa.sll_addr[..6]);
                mac
            });
            let delivery = match sa.sll_pkttype {
                libc::PACKET_BROADCAST => LinkDelivery::Broadcast,
                libc::PACKET_MULTICAST => LinkDelivery::Multicast,
                libc::PACKET_OTHERHOST => LinkDelivery::OtherHost,
                _ => LinkDelivery::Host,
            };
            *meta = TapMeta {
                len: (h.msg_len as usize).min(bs),
                source_mac,
                delivery,
                ifindex: sa.sll_ifindex.max(0) as u32,
                truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                checksum: checksum_status(&h.msg_hdr),
            };
        }
        batch.len = got;
        Ok(got)
    }
}

impl AsRawFd for UdpTap {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for UdpTap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failed_check_jumps_to_the_drop() {
        for first in [None, Some(1)] {
            let p = tap_program(67, first);
            let drop_at = p.len() - 1;
            assert_eq!((p[drop_at].code, p[drop_at].k), (bpf::RET, bpf::DROP));
            for (i, ins) in p.iter().enumerate() {
                match ins.code {
                    bpf::JEQ => {
                        assert_eq!((i + 1 + usize::from(ins.jt), i + 1 + usize::from(ins.jf)), (i + 1, drop_at))
                    }
                    bpf::JSET => {
                        assert_eq!((i + 1 + usize::from(ins.jt), i + 1 + usize::from(ins.jf)), (drop_at, i + 1))
                    }
                    _ => {}
                }
            }
        }
    }
}
