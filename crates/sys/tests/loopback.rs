//! Tests on the loopback interface of the current network namespace. They send traffic only
//! to 127.0.0.0/8 and mostly need no privileges.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use cdra_sys::icmp::IcmpSocket;
use cdra_sys::iface::{self, Ipv4Net};
use cdra_sys::packet::{ArpSocket, PacketSender};
use cdra_sys::poll::wait_readable;
use cdra_sys::privileges;
use cdra_sys::udp::{RecvBatch, UdpSocket};
use cdra_sys::SysError;

const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn lo_socket() -> UdpSocket {
    UdpSocket::bind(SocketAddrV4::new(LO, 0), None).expect("bind 127.0.0.1:0")
}

/// Waits until `sock` is readable (at most 2 s).
fn wait(sock: &UdpSocket) {
    let mut ready = [false];
    let n = wait_readable(&[sock.as_raw_fd()], Some(Duration::from_secs(2)), &mut ready).expect("poll");
    assert_eq!(n, 1, "socket did not become readable");
    assert!(ready[0]);
}

#[test]
fn batch_receive_reports_source_destination_and_interface() {
    let rx = lo_socket();
    let tx = lo_socket();
    let to = rx.local_addr();
    assert_ne!(to.port(), 0);
    for i in 0..5u8 {
        let n = tx.send_to(&[i; 10], to, None, None).expect("send");
        assert_eq!(n, 10);
    }
    wait(&rx);
    let mut batch = RecvBatch::new(4, 1500);
    assert_eq!(batch.capacity(), 4);
    assert_eq!(batch.buf_size(), 1500);
    let n = rx.recv_batch(&mut batch).expect("recv");
    assert_eq!(n, 4);
    assert_eq!(batch.len(), 4);
    let lo_index = iface::interface_by_name("lo").expect("lo").index;
    assert_eq!(lo_index, 1);
    for i in 0..4 {
        let r = batch.get(i);
        assert_eq!(r.data, &[i as u8; 10][..]);
        assert_eq!(r.src, tx.local_addr());
        assert_eq!(r.dst, LO);
        assert_eq!(r.local, LO);
        assert_eq!(r.ifindex, lo_index);
        assert!(!r.truncated);
    }
    assert_eq!(batch.iter().count(), 4);
    // Out-of-range access does not panic.
    assert!(batch.try_get(4).is_none());
    assert!(batch.get(99).data.is_empty());

    let n = rx.recv_batch(&mut batch).expect("recv");
    assert_eq!(n, 1);
    assert_eq!(batch.get(0).data, &[4u8; 10][..]);

    // Nothing left: would-block is Ok(0), not an error.
    assert_eq!(rx.recv_batch(&mut batch).expect("recv"), 0);
    assert!(batch.is_empty());
}

#[test]
fn truncated_datagrams_are_flagged() {
    let rx = lo_socket();
    let tx = lo_socket();
    tx.send_to(&[7u8; 100], rx.local_addr(), None, None).expect("send");
    tx.send_to(&[8u8; 8], rx.local_addr(), None, None).expect("send");
    wait(&rx);
    let mut batch = RecvBatch::new(2, 8);
    assert_eq!(rx.recv_batch(&mut batch).expect("recv"), 2);
    let a = batch.get(0);
    assert_eq!(a.data, &[7u8; 8][..]);
    assert!(a.truncated);
    let b = batch.get(1);
    assert_eq!(b.data, &[8u8; 8][..]);
    assert!(!b.truncated);
}

#[test]
fn send_to_chooses_source_address_and_interface() {
    // Bound to 0.0.0.0 so that any 127.x destination is accepted.
    let rx = UdpSocket::bind_any(0, None).expect("bind_any");
    let tx = UdpSocket::bind_any(0, None).expect("bind_any");
    let port = rx.local_addr().port();
    let dst = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 3), port);
    tx.send_to(b"pktinfo", dst, Some(Ipv4Addr::new(127, 0, 0, 2)), Some(1)).expect("send with pktinfo");
    tx.send_to(b"ifonly", dst, None, Some(1)).expect("send with ifindex");
    wait(&rx);
    let mut batch = RecvBatch::new(8, 64);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while got.len() < 2 && Instant::now() < deadline {
        let n = rx.recv_batch(&mut batch).expect("recv");
        got.extend(batch.iter().map(|r| (r.data.to_vec(), r.src, r.dst, r.local, r.ifindex)));
        if n == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    assert_eq!(got.len(), 2);
    let (data, src, d, local, ifindex) = &got[0];
    assert_eq!(data, b"pktinfo");
    assert_eq!(*src, SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), tx.local_addr().port()));
    assert_eq!(*d, Ipv4Addr::new(127, 0, 0, 3));
    assert_eq!(*local, Ipv4Addr::new(127, 0, 0, 3));
    assert_eq!(*ifindex, 1);
    assert_eq!(got[1].0, b"ifonly");

    // A source address that is not ours is refused by the kernel (nothing is sent).
    let err = tx.send_to(b"x", dst, Some(Ipv4Addr::new(192, 0, 2, 1)), None).expect_err("foreign source address");
    assert!(err.raw_os_error().is_some());
}

#[test]
fn send_many_to_sends_every_datagram_in_order_and_reports_the_refused_one() {
    let rx = lo_socket();
    let tx = lo_socket();
    let dst = rx.local_addr();
    // 70 datagrams (two sendmmsg batches: 64 + 6); number 5 is larger than UDP allows
    // (EMSGSIZE): the kernel takes 0..5 with the first call, refuses 5, and the rest go on.
    let too_big = vec![0u8; 70_000];
    let payloads: Vec<Vec<u8>> =
        (0..70u32).map(|i| if i == 5 { too_big.clone() } else { i.to_be_bytes().to_vec() }).collect();
    let mut failed = Vec::new();
    let sent = tx.send_many_to(payloads.iter().map(|p| (p.as_slice(), dst)), &mut |i, e| failed.push((i, e)));
    assert_eq!(sent, 69);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, 5);
    assert_eq!(failed[0].1.raw_os_error(), Some(libc::EMSGSIZE));
    let mut batch = RecvBatch::new(32, 64);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while got.len() < 69 && Instant::now() < deadline {
        let n = rx.recv_batch(&mut batch).expect("recv");
        got.extend(batch.iter().map(|r| (r.data.to_vec(), r.src)));
        if n == 0 {
            wait(&rx);
        }
    }
    let want: Vec<Vec<u8>> = (0..70u32).filter(|&i| i != 5).map(|i| i.to_be_bytes().to_vec()).collect();
    assert_eq!(got.iter().map(|g| g.0.clone()).collect::<Vec<_>>(), want);
    assert!(got.iter().all(|g| g.1 == tx.local_addr()));
    // Nothing to send: no call, nothing reported.
    assert_eq!(tx.send_many_to(std::iter::empty(), &mut |_, _| panic!("nothing was sent")), 0);
}

#[test]
fn bind_errors_are_clear() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("std bind");
    let addr = match taken.local_addr().expect("addr") {
        std::net::SocketAddr::V4(a) => a,
        other => panic!("unexpected {other}"),
    };
    let err = UdpSocket::bind(addr, None).expect_err("port is taken");
    assert!(matches!(err, SysError::AddressInUse { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("binding UDP {addr}: address already in use by another socket"));

    let err = UdpSocket::bind(SocketAddrV4::new(LO, 0), Some("rd9nosuch")).expect_err("no device");
    assert_eq!(err.to_string(), "interface rd9nosuch does not exist");

    let err = UdpSocket::bind(SocketAddrV4::new(LO, 0), Some("much_too_long_name")).expect_err("bad name");
    assert!(matches!(err, SysError::InvalidInterfaceName { .. }));

    // SO_BINDTODEVICE to lo works (unprivileged on kernels >= 5.7, and as root).
    match UdpSocket::bind(SocketAddrV4::new(LO, 0), Some("lo")) {
        Ok(s) => assert_ne!(s.local_addr().port(), 0),
        Err(e) => assert!(e.is_permission_denied(), "{e}"),
    }
}

#[test]
fn loopback_interface_facts() {
    let lo = iface::interface_by_name("lo").expect("lo");
    assert_eq!(lo.name, "lo");
    assert_eq!(lo.index, 1);
    assert_eq!(lo.mac, None);
    assert!(lo.up);
    assert!(lo.mtu >= 1280, "mtu {}", lo.mtu);
    assert!(lo.ipv4.contains(&Ipv4Net::new(LO, 8)), "{:?}", lo.ipv4);
    assert!(lo.has_address(LO));
    assert_eq!(lo.subnet_containing(Ipv4Addr::new(127, 1, 2, 3)), Some(Ipv4Net::new(LO, 8)));
    assert_eq!(lo.require_ipv4().expect("lo has 127.0.0.1"), Ipv4Net::new(LO, 8));

    let by_index = iface::interface_by_index(1).expect("index 1");
    assert_eq!(by_index, lo);

    let all = iface::all_interfaces().expect("all");
    assert!(all.iter().any(|i| i == &lo));
    assert!(all.windows(2).all(|w| w[0].index < w[1].index), "sorted by index");

    let err = iface::interface_by_name("rd9").expect_err("no rd9");
    assert_eq!(err.to_string(), "interface rd9 does not exist");
    let err = iface::interface_by_name("").expect_err("empty");
    assert!(matches!(err, SysError::InvalidInterfaceName { .. }));
    assert!(iface::interface_by_index(999_999).is_err());
}

#[test]
fn poll_times_out_and_reports_readiness() {
    let rx = lo_socket();
    let other = lo_socket();
    let fds = [other.as_raw_fd(), rx.as_raw_fd()];
    let mut ready = [true; 2];
    let t = Instant::now();
    let n = wait_readable(&fds, Some(Duration::from_millis(30)), &mut ready).expect("poll");
    assert_eq!(n, 0);
    assert_eq!(ready, [false, false]);
    assert!(t.elapsed() >= Duration::from_millis(25));

    other.send_to(b"x", rx.local_addr(), None, None).expect("send");
    let n = wait_readable(&fds, Some(Duration::from_secs(2)), &mut ready).expect("poll");
    assert_eq!(n, 1);
    assert_eq!(ready, [false, true]);

    // Zero timeout does not block.
    let n = wait_readable(&fds[..1], Some(Duration::ZERO), &mut ready).expect("poll");
    assert_eq!(n, 0);

    // A descriptor that is not open is an error, not a busy loop.
    let err = wait_readable(&[1_000_000], Some(Duration::ZERO), &mut ready).expect_err("bad fd");
    assert_eq!(err.raw_os_error(), Some(libc::EBADF));
}

/// Without CAP_NET_RAW / CAP_NET_BIND_SERVICE, opening fails with one clear line. When the
/// test runs privileged, it drops the capabilities in a separate thread first (capabilities
/// are per thread), so both cases are covered.
#[test]
fn missing_privileges_are_reported_clearly() {
    let results = std::thread::spawn(|| {
        if privileges::effective_capabilities().unwrap_or(0) != 0 {
            privileges::drop_capabilities_except(&[]).expect("drop capabilities");
        }
        assert!(!privileges::is_root_or_has_net_caps());
        assert_eq!(privileges::missing_net_caps(), vec!["CAP_NET_BIND_SERVICE", "CAP_NET_RAW"]);
        (
            PacketSender::new().err().map(|e| e.to_string()),
            ArpSocket::new().err().map(|e| e.to_string()),
            IcmpSocket::new().err().map(|e| e.to_string()),
            UdpSocket::bind(SocketAddrV4::new(LO, 67), None).err().map(|e| e.to_string()),
        )
    })
    .join()
    .expect("thread");
    assert_eq!(results.0.as_deref(), Some("opening an AF_PACKET socket needs CAP_NET_RAW (operation not permitted)"));
    assert_eq!(results.1.as_deref(), Some("opening an AF_PACKET socket needs CAP_NET_RAW (operation not permitted)"));
    assert_eq!(results.2.as_deref(), Some("opening a raw ICMP socket needs CAP_NET_RAW (operation not permitted)"));
    let unprivileged_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(1024);
    if unprivileged_start > 67 {
        assert_eq!(
            results.3.as_deref(),
            Some("binding UDP port 67 needs root or CAP_NET_BIND_SERVICE (permission denied)")
        );
    }
}
