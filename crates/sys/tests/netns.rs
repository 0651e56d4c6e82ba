//! Privileged tests across a veth pair between two network namespaces created here.
//!
//! Each test creates its own pair of namespaces (`sysT<pid>x<tag>a` / `...b`) joined by a
//! veth pair (`va` in a with 10.99.N.1/24, `vb` in b with 10.99.N.2/24). Traffic never
//! leaves those namespaces. A Drop guard deletes both namespaces, also when a test fails.
//! Without root (or without the `ip` tool, or if namespaces cannot be created) every test
//! prints a note and passes.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, RawFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cdra_sys::icmp::{Echo, EchoReply, IcmpSocket};
use cdra_sys::iface::{self, Interface, Ipv4Net};
use cdra_sys::netns;
use cdra_sys::packet::{ArpProbe, ArpSeen, ArpSocket, PacketSender, BROADCAST_MAC};
use cdra_sys::poll::wait_readable;
use cdra_sys::privileges;
use cdra_sys::udp::{Received, RecvBatch, UdpSocket};

/// Runs `ip ARGS`; Err(stderr) on failure.
fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output().map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Two namespaces joined by a veth pair; deleted on drop.
struct Pair {
    a: String,
    b: String,
    net: u8,
    created: Vec<String>,
}

impl Pair {
    /// Creates the pair for subnet 10.99.`net`.0/24, or returns None (after printing why)
    /// when the environment cannot run these tests.
    fn new(tag: &str, net: u8) -> Option<Pair> {
        if !privileges::is_root() || !privileges::has_capability(privileges::CAP_SYS_ADMIN) {
            eprintln!("note: skipping netns test {tag}: needs root");
            return None;
        }
        if ip(&["-V"]).is_err() {
            eprintln!("note: skipping netns test {tag}: the `ip` tool is missing");
            return None;
        }
        remove_stale_namespaces();
        let pid = std::process::id();
        let mut pair =
            Pair { a: format!("sysT{pid}x{tag}a"), b: format!("sysT{pid}x{tag}b"), net, created: Vec::new() };
        for ns in [pair.a.clone(), pair.b.clone()] {
            if let Err(e) = ip(&["netns", "add", &ns]) {
                eprintln!("note: skipping netns test {tag}: {e}");
                return None; // `pair` drops here and deletes what was created.
            }
            pair.created.push(ns);
        }
        let (a, b) = (pair.a.clone(), pair.b.clone());
        let addr_a = format!("10.99.{net}.1/24");
        let addr_b = format!("10.99.{net}.2/24");
        let steps: [&[&str]; 7] = [
            &["-n", &a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", &b],
            &["-n", &a, "addr", "add", &addr_a, "dev", "va"],
            &["-n", &b, "addr", "add", &addr_b, "dev", "vb"],
            &["-n", &a, "link", "set", "lo", "up"],
            &["-n", &b, "link", "set", "lo", "up"],
            &["-n", &a, "link", "set", "va", "up"],
            &["-n", &b, "link", "set", "vb", "up"],
        ];
        for step in steps {
            ip(step).expect("setting up the veth pair");
        }
        // Wait for the carrier so that the first packets are not dropped.
        let deadline = Instant::now() + Duration::from_secs(2);
        for (ns, dev) in [(&a, "va"), (&b, "vb")] {
            while !ip(&["-n", ns, "-o", "link", "show", dev]).map(|s| s.contains("LOWER_UP")).unwrap_or(false) {
                assert!(Instant::now() < deadline, "veth {dev} did not come up");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Some(pair)
    }

    fn ip_a(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 99, self.net, 1)
    }

    fn ip_b(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 99, self.net, 2)
    }

    /// Runs `f` in namespace a.
    fn in_a<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        netns::run_in(&self.a, f).expect("entering namespace a")
    }

    /// Runs `f` in namespace b.
    fn in_b<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        netns::run_in(&self.b, f).expect("entering namespace b")
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in &self.created {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("warning: could not delete namespace {ns}: {e}");
            }
        }
    }
}

/// Deletes `sysT<pid>x...` namespaces left behind by earlier test runs whose process is gone
/// (e.g. killed before its Drop guards ran).
fn remove_stale_namespaces() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("sysT") else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('x') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// Polls `fd` for up to `total`, calling `check` whenever it is readable and `retry` every
/// 250 ms, until `check` returns Some.
fn wait_for<T>(fd: RawFd, total: Duration, mut check: impl FnMut() -> Option<T>, mut retry: impl FnMut()) -> Option<T> {
    let deadline = Instant::now() + total;
    let mut next_retry = Instant::now() + Duration::from_millis(250);
    let mut ready = [false];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        if now >= next_retry {
            retry();
            next_retry = now + Duration::from_millis(250);
        }
        let slice = (deadline - now).min(next_retry.saturating_duration_since(now));
        wait_readable(&[fd], Some(slice), &mut ready).expect("poll");
        if ready[0] {
            if let Some(v) = check() {
                return Some(v);
            }
        }
    }
}

fn owned(r: &Received<'_>) -> (Vec<u8>, SocketAddrV4, Ipv4Addr, Ipv4Addr, u32, bool) {
    (r.data.to_vec(), r.src, r.dst, r.local, r.ifindex, r.truncated)
}

/// Receives the first datagram whose payload is `want` (within 2 s), resending with `retry`.
fn recv_payload(
    sock: &UdpSocket,
    batch: &mut RecvBatch,
    want: &[u8],
    retry: impl FnMut(),
) -> Option<(Vec<u8>, SocketAddrV4, Ipv4Addr, Ipv4Addr, u32, bool)> {
    wait_for(
        sock.as_raw_fd(),
        Duration::from_secs(2),
        || {
            sock.recv_batch(batch).expect("recv_batch");
            batch.iter().find(|r| r.data == want).map(|r| owned(&r))
        },
        retry,
    )
}

/// A minimal IPv4 + UDP datagram (UDP checksum 0 = none, valid for IPv4).
fn ipv4_udp(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64; // TTL
    p[9] = 17; // UDP
    p[12..16].copy_from_slice(&src.ip().octets());
    p[16..20].copy_from_slice(&dst.ip().octets());
    let mut sum: u32 = 0;
    for c in p[..20].chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p[20..22].copy_from_slice(&src.port().to_be_bytes());
    p[22..24].copy_from_slice(&dst.port().to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    p
}

fn lookup(name: &str) -> Interface {
    iface::interface_by_name(name).expect("interface lookup")
}

#[test]
fn packet_sender_delivers_datagrams_without_neighbour_entries() {
    let Some(p) = Pair::new("pk", 1) else { return };
    let (rx, vb) = p.in_b(|| (UdpSocket::bind_any(68, None).expect("bind :68"), lookup("vb")));
    let (tx, va) = p.in_a(|| (PacketSender::new().expect("PacketSender"), lookup("va")));
    let vb_mac = vb.mac.expect("vb has a MAC");
    let from = SocketAddrV4::new(p.ip_a(), 67);
    let mut batch = RecvBatch::new(8, 2048);

    // Unicast to the peer's address and MAC.
    let unicast = ipv4_udp(from, SocketAddrV4::new(p.ip_b(), 68), b"unicast");
    let send_unicast = || {
        let n = tx.send(va.index, vb_mac, &unicast).expect("send unicast");
        assert_eq!(n, unicast.len());
    };
    send_unicast();
    let got = recv_payload(&rx, &mut batch, b"unicast", send_unicast).expect("unicast arrives");
    assert_eq!(got, (b"unicast".to_vec(), from, p.ip_b(), p.ip_b(), vb.index, false));

    // Broadcast to ff:ff:ff:ff:ff:ff / 255.255.255.255.
    let bcast = ipv4_udp(from, SocketAddrV4::new(Ipv4Addr::BROADCAST, 68), b"broadcast");
    let send_bcast = || {
        tx.send(va.index, BROADCAST_MAC, &bcast).expect("send broadcast");
    };
    send_bcast();
    let got = recv_payload(&rx, &mut batch, b"broadcast", send_bcast).expect("broadcast arrives");
    assert_eq!(got, (b"broadcast".to_vec(), from, Ipv4Addr::BROADCAST, p.ip_b(), vb.index, false));

    // The sender never resolved the peer through the neighbour table.
    let neigh = ip(&["-4", "-n", &p.a, "neigh", "show", "dev", "va"]).expect("ip neigh");
    assert!(neigh.trim().is_empty(), "unexpected neighbour entries: {neigh}");

    // Errors are reported, not panicked on: an unknown interface index.
    assert!(tx.send(999_999, vb_mac, &unicast).is_err());
}

#[test]
fn packet_sender_sends_batches_and_reports_each_refused_frame() {
    let Some(p) = Pair::new("pm", 8) else { return };
    let (rx, vb) = p.in_b(|| (UdpSocket::bind_any(68, None).expect("bind :68"), lookup("vb")));
    let (tx, va) = p.in_a(|| (PacketSender::new().expect("PacketSender"), lookup("va")));
    let vb_mac = vb.mac.expect("vb has a MAC");
    let from = SocketAddrV4::new(p.ip_a(), 67);
    let to = SocketAddrV4::new(p.ip_b(), 68);
    let frames: Vec<Vec<u8>> = (0..3u8).map(|i| ipv4_udp(from, to, &[b'm', i])).collect();
    // The middle one goes to an interface that does not exist: refused, the others sent.
    let ifindex = [va.index, 999_999, va.index];
    let mut failed = Vec::new();
    let sent = tx.send_many(frames.iter().zip(ifindex).map(|(f, i)| (i, vb_mac, f.as_slice())), &mut |i, e| {
        failed.push((i, e.raw_os_error()))
    });
    assert_eq!(sent, 2);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, 1);
    let mut batch = RecvBatch::new(8, 2048);
    let mut got = Vec::new();
    wait_for(
        rx.as_raw_fd(),
        Duration::from_secs(2),
        || {
            rx.recv_batch(&mut batch).expect("recv_batch");
            got.extend(batch.iter().map(|r| r.data.to_vec()));
            (got.len() >= 2).then_some(())
        },
        || {},
    )
    .expect("the two frames arrive");
    assert_eq!(got, vec![b"m\x00".to_vec(), b"m\x02".to_vec()]);
}

#[test]
fn udp_send_to_broadcast_out_of_chosen_interface() {
    let Some(p) = Pair::new("ud", 2) else { return };
    // The client side listens on :68 bound to its device (SO_BINDTODEVICE).
    let (client, vb) = p.in_b(|| (UdpSocket::bind_any(68, Some("vb")).expect("bind :68 vb"), lookup("vb")));
    // The relay side listens on :67 (the production port).
    let (relay, va) = p.in_a(|| (UdpSocket::bind_any(67, None).expect("bind :67"), lookup("va")));
    let mut batch = RecvBatch::new(4, 1500);

    let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, 68);
    let send = || {
        relay.send_to(b"offer", to, Some(p.ip_a()), Some(va.index)).expect("send broadcast");
    };
    send();
    let got = recv_payload(&client, &mut batch, b"offer", send).expect("broadcast arrives");
    assert_eq!(
        got,
        (b"offer".to_vec(), SocketAddrV4::new(p.ip_a(), 67), Ipv4Addr::BROADCAST, p.ip_b(), vb.index, false)
    );

    // And back: unicast to the relay's address, seen with its header destination.
    let to_relay = SocketAddrV4::new(p.ip_a(), 67);
    let send_back = || {
        client.send_to(b"request", to_relay, None, None).expect("send unicast");
    };
    send_back();
    let got = recv_payload(&relay, &mut batch, b"request", send_back).expect("unicast arrives");
    assert_eq!(got, (b"request".to_vec(), SocketAddrV4::new(p.ip_b(), 68), p.ip_a(), p.ip_a(), va.index, false));
}

#[test]
fn arp_probe_is_answered_by_the_address_owner() {
    let Some(p) = Pair::new("ap", 3) else { return };
    let vb = p.in_b(|| lookup("vb"));
    let (arp, va) = p.in_a(|| (ArpSocket::new().expect("ArpSocket"), lookup("va")));
    let our_mac = va.mac.expect("va has a MAC");
    let mut buf = [0u8; 256];

    let target = p.ip_b();
    let probe = || arp.send_probe(va.index, our_mac, target).expect("send probe");
    probe();
    let seen = wait_for(
        arp.as_raw_fd(),
        Duration::from_secs(2),
        || loop {
            match arp.recv(&mut buf).expect("arp recv") {
                Some(s) if s.sender_ip == target => return Some(s),
                Some(_) => continue,
                None => return None,
            }
        },
        probe,
    )
    .expect("the owner of the address answers the probe");
    assert_eq!(
        seen,
        ArpSeen {
            ifindex: va.index,
            sender_ip: target,
            sender_mac: vb.mac.expect("vb mac"),
            target_ip: Ipv4Addr::UNSPECIFIED,
            is_reply: true,
        }
    );

    // Nobody has this address: no answer.
    let unused = Ipv4Addr::new(10, 99, p.net, 77);
    arp.send_probe(va.index, our_mac, unused).expect("send probe");
    let answer = wait_for(
        arp.as_raw_fd(),
        Duration::from_millis(150),
        || loop {
            match arp.recv(&mut buf).expect("arp recv") {
                Some(s) if s.sender_ip == unused => return Some(s),
                Some(_) => continue,
                None => return None,
            }
        },
        || {},
    );
    assert_eq!(answer, None);

    // A buffer too small for an ARP packet is an error, not a panic.
    assert!(arp.recv(&mut [0u8; 10]).is_err());
}

#[test]
fn arp_socket_reports_wire_traffic_but_not_our_own() {
    let Some(p) = Pair::new("aw", 4) else { return };
    let (arp_b, vb) = p.in_b(|| (ArpSocket::new().expect("ArpSocket b"), lookup("vb")));
    let (arp_a, icmp_a, va) =
        p.in_a(|| (ArpSocket::new().expect("ArpSocket a"), IcmpSocket::new().expect("IcmpSocket a"), lookup("va")));
    // Pinging an unused address makes a's kernel send ARP requests from 10.99.4.1.
    let unused = Ipv4Addr::new(10, 99, p.net, 50);
    let ping = || icmp_a.send_echo(unused, 1, 1).expect("send echo");
    ping();
    let mut buf = [0u8; 256];
    let seen = wait_for(
        arp_b.as_raw_fd(),
        Duration::from_secs(3),
        || loop {
            match arp_b.recv(&mut buf).expect("arp recv") {
                Some(s) if s.sender_ip == p.ip_a() => return Some(s),
                Some(_) => continue,
                None => return None,
            }
        },
        ping,
    )
    .expect("b sees a's ARP request");
    assert_eq!(
        seen,
        ArpSeen {
            ifindex: vb.index,
            sender_ip: p.ip_a(),
            sender_mac: va.mac.expect("va mac"),
            target_ip: unused,
            is_reply: false,
        }
    );
    // a's own outgoing requests are not reported on a.
    while let Some(s) = arp_a.recv(&mut buf).expect("arp recv") {
        assert_ne!(s.sender_ip, p.ip_a(), "own outgoing ARP reported: {s:?}");
    }
}

#[test]
fn probes_go_out_in_batches_and_each_refusal_is_reported() {
    let Some(p) = Pair::new("ab", 9) else { return };
    // b holds 100 more addresses, 10.99.9.10 ..= .109; the last probes go nowhere.
    let targets: Vec<Ipv4Addr> = (10..140).map(|i| Ipv4Addr::new(10, 99, p.net, i)).collect();
    for t in &targets[..100] {
        ip(&["-n", &p.b, "addr", "add", &format!("{t}/32"), "dev", "vb"]).expect("address on vb");
    }
    let (arp, icmp, va) =
        p.in_a(|| (ArpSocket::new().expect("ArpSocket"), IcmpSocket::new().expect("IcmpSocket"), lookup("va")));
    assert_eq!(arp.receive_drops().expect("SO_MEMINFO"), 0);
    assert_eq!(icmp.receive_drops().expect("SO_MEMINFO"), 0);
    let our_mac = va.mac.expect("va has a MAC");
    let mut probes: Vec<ArpProbe> =
        targets.iter().map(|&target| ArpProbe { ifindex: va.index, our_mac, target }).collect();
    // One probe out of an interface that does not exist: refused, reported, the rest sent.
    probes[70].ifindex = 999_999;
    let mut refused = Vec::new();
    let sent = arp.send_probes(&probes, &mut |i, e| refused.push((i, e.raw_os_error())));
    assert_eq!(sent, probes.len() - 1);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, 70);
    let mut answered = std::collections::HashSet::new();
    let mut buf = [0u8; 256];
    let _ = wait_for(
        arp.as_raw_fd(),
        Duration::from_secs(3),
        || {
            while let Some(s) = arp.recv(&mut buf).expect("arp recv") {
                answered.insert(s.sender_ip);
            }
            (answered.len() >= 99).then_some(())
        },
        || {},
    );
    let want: std::collections::HashSet<Ipv4Addr> =
        targets[..100].iter().copied().filter(|t| *t != probes[70].target).collect();
    assert!(want.is_subset(&answered), "every owned address answered: missing {:?}", want.difference(&answered));
    assert!(!targets[100..].iter().any(|t| answered.contains(t)), "nobody answers for the others");

    // Echoes the same way.
    let echoes: Vec<Echo> =
        targets[..80].iter().enumerate().map(|(i, &dst)| Echo { dst, ident: 0x5151, seq: i as u16 }).collect();
    let mut refused = 0;
    assert_eq!(icmp.send_echoes(&echoes, &mut |_, _| refused += 1), 80);
    assert_eq!(refused, 0);
    let mut replies = std::collections::HashSet::new();
    let _ = wait_for(
        icmp.as_raw_fd(),
        Duration::from_secs(3),
        || {
            while let Some(r) = icmp.recv_reply(&mut buf).expect("recv reply") {
                if r.ident == 0x5151 {
                    replies.insert((r.src, r.seq));
                }
            }
            (replies.len() >= 80).then_some(())
        },
        || {},
    );
    assert_eq!(replies.len(), 80, "every echo answered");
}

#[test]
fn icmp_echo_round_trip() {
    let Some(p) = Pair::new("ic", 5) else { return };
    let icmp = p.in_a(|| IcmpSocket::new().expect("IcmpSocket"));
    let target = p.ip_b();
    let send = || icmp.send_echo(target, 0x4242, 7).expect("send echo");
    send();
    let mut buf = [0u8; 256];
    let reply = wait_for(
        icmp.as_raw_fd(),
        Duration::from_secs(2),
        || loop {
            match icmp.recv_reply(&mut buf).expect("recv reply") {
                Some(r) if r.ident == 0x4242 => return Some(r),
                Some(_) => continue,
                None => return None,
            }
        },
        send,
    )
    .expect("echo reply");
    assert_eq!(reply, EchoReply { src: target, ident: 0x4242, seq: 7 });
    // Nothing else is pending: would-block is None.
    while icmp.recv_reply(&mut buf).expect("recv").is_some() {}
    assert_eq!(icmp.recv_reply(&mut buf).expect("recv"), None);
}

#[test]
fn interface_facts_inside_a_namespace() {
    let Some(p) = Pair::new("if", 6) else { return };
    ip(&["-n", &p.a, "link", "set", "va", "mtu", "1400"]).expect("set mtu");
    ip(&["-n", &p.a, "addr", "add", "10.99.6.9/32", "dev", "va", "label", "va:1"]).expect("alias");
    ip(&["-n", &p.b, "link", "set", "vb", "down"]).expect("vb down");

    let (va, all, by_index, missing) = p.in_a(|| {
        let va = lookup("va");
        (
            va.clone(),
            iface::all_interfaces().expect("all"),
            iface::interface_by_index(va.index).expect("by index"),
            iface::interface_by_name("vb").err().map(|e| e.to_string()),
        )
    });
    assert_eq!(va.name, "va");
    assert!(va.index > 1);
    assert_eq!(va.mtu, 1400);
    assert!(va.up);
    let mac = va.mac.expect("va has a MAC");
    assert_ne!(mac, [0; 6]);
    assert_eq!(va.ipv4, vec![Ipv4Net::new(p.ip_a(), 24), Ipv4Net::new(Ipv4Addr::new(10, 99, 6, 9), 32)]);
    assert_eq!(va.ipv4[0].broadcast(), Ipv4Addr::new(10, 99, 6, 255));
    assert_eq!(by_index, va);
    let names: Vec<&str> = all.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["lo", "va"]);
    assert_eq!(all[1], va);
    assert_eq!(missing.as_deref(), Some("interface vb does not exist"));

    let vb = p.in_b(|| lookup("vb"));
    assert!(!vb.up);
    assert_eq!(vb.mtu, 1500);
    assert!(vb.mac.is_some());
}

#[test]
fn a_tap_reads_requests_with_their_source_mac_and_the_udp_socket_is_spared_them() {
    use cdra_sys::tap::{LinkDelivery, TapBatch, UdpTap};
    let Some(p) = Pair::new("tp", 7) else { return };
    let va = p.in_a(|| lookup("va"));
    let (tap, relay) = p.in_a(|| {
        let tap = UdpTap::open(va.index, 67, Some(1)).expect("tap");
        let relay = UdpSocket::bind_any(67, None).expect("bind :67");
        relay.ignore_from(&[va.index], 1).expect("filter");
        (tap, relay)
    });
    let (tx, vb) = p.in_b(|| (PacketSender::new().expect("PacketSender"), lookup("vb")));
    let vb_mac = vb.mac.expect("vb has a MAC");
    let from = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68);
    let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
    let request = ipv4_udp(from, to, b"\x01request");
    let reply = ipv4_udp(SocketAddrV4::new(p.ip_b(), 67), SocketAddrV4::new(p.ip_a(), 67), b"\x02reply");
    let other_port = ipv4_udp(from, SocketAddrV4::new(Ipv4Addr::BROADCAST, 68), b"\x01other port");
    let mut fragment = ipv4_udp(from, to, b"\x01fragment");
    fragment[6] = 0x20; // more fragments (the checksum no longer matters: dropped before)
    let send_all = || {
        for frame in [&other_port, &fragment, &reply, &request] {
            let dst = if frame == &reply { va.mac.expect("va has a MAC") } else { BROADCAST_MAC };
            tx.send(vb.index, dst, frame).expect("send");
        }
    };
    send_all();
    let mut batch = TapBatch::new(8, 2048);
    let got = wait_for(
        tap.as_raw_fd(),
        Duration::from_secs(2),
        || {
            tap.recv_batch(&mut batch).expect("recv");
            (0..batch.len())
                .filter_map(|i| batch.try_get(i))
                .map(|t| {
                    assert!(t.packet.ends_with(b"\x01request"), "only the request passes the filter: {:?}", t.packet);
                    (t.source_mac, t.delivery, t.ifindex)
                })
                .next()
        },
        send_all,
    )
    .expect("the request is tapped");
    assert_eq!(got, (Some(vb_mac), LinkDelivery::Broadcast, va.index));
    // The UDP socket gets the reply from that link, and never the request.
    let mut udp_batch = RecvBatch::new(8, 2048);
    let reply_seen = wait_for(
        relay.as_raw_fd(),
        Duration::from_secs(2),
        || {
            relay.recv_batch(&mut udp_batch).expect("recv");
            let mut seen = None;
            for r in udp_batch.iter() {
                assert_ne!(r.data, b"\x01request", "the UDP socket must not queue tapped requests");
                if r.data == b"\x02reply" {
                    seen = Some(());
                }
            }
            seen
        },
        send_all,
    );
    assert!(reply_seen.is_some(), "the reply reaches the UDP socket");

    // A unicast the peer's kernel sends over the veth (a client's renewal from a UDP
    // socket) may carry only a partial checksum (checksum offload): the tap says so, so
    // that the caller does not reject it.
    let sender = p.in_b(|| UdpSocket::bind(SocketAddrV4::new(p.ip_b(), 68), None).expect("bind client :68"));
    let send_unicast = || {
        sender.send_to(b"\x01unicast", SocketAddrV4::new(p.ip_a(), 67), None, None).expect("send");
    };
    send_unicast();
    let status = wait_for(
        tap.as_raw_fd(),
        Duration::from_secs(2),
        || {
            tap.recv_batch(&mut batch).expect("recv");
            (0..batch.len())
                .filter_map(|i| batch.try_get(i))
                .find(|t| t.packet.ends_with(b"\x01unicast"))
                .map(|t| t.checksum)
        },
        send_unicast,
    )
    .expect("the unicast is tapped");
    eprintln!("checksum status of a kernel-sent unicast over veth: {status:?}");
    assert_ne!(status, cdra_sys::tap::TransportChecksum::Unverified, "veth offloads UDP checksums");
}
