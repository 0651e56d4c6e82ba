//! Spoofing mode's interception (`cdra_sys::intercept`) on a real router, in namespaces
//! created here.
//!
//! Each test builds three namespaces (`sysT<pid>x<tag>c|r|s`): a client (`vc`
//! 10.97.N.2/24, default route via the router), a router (`rc` 10.97.N.1/24 towards the
//! client, `rs` 10.96.N.1/24 towards the server, ip_forward = 1) and a server (`vs`
//! 10.96.N.2/24 and 10.96.N.3/24, route to the client net via the router). The
//! Interception is installed inside the router namespace; `nft` runs there only (`ip
//! netns exec`). A Drop guard deletes the namespaces, also when a test fails; a helper
//! process started by a test is killed by its PID. Without root, `ip` or `nft` every test
//! prints a note and passes.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cdra_sys::icmp::IcmpSocket;
use cdra_sys::iface;
use cdra_sys::intercept::{Added, Interception};
use cdra_sys::netns;
use cdra_sys::poll::wait_readable;
use cdra_sys::privileges;
use cdra_sys::route::{self, RouteKind};
use cdra_sys::tap::{TapBatch, UdpTap};

/// Set in the environment of the helper process (the test binary itself) that holds an
/// Interception until it is killed: the router namespace's name.
const HELPER_ENV: &str = "CDRA_SYS_INTERCEPT_HELPER_NS";

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out =
        Command::new(cmd).args(args).stdin(Stdio::null()).output().map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn ip(args: &[&str]) -> Result<String, String> {
    run("ip", args)
}

/// Client, router and server namespaces; deleted on drop.
struct Lab {
    c: String,
    r: String,
    s: String,
    net: u8,
    created: Vec<String>,
}

impl Lab {
    fn new(tag: &str, net: u8) -> Option<Lab> {
        if !privileges::is_root() || !privileges::has_capability(privileges::CAP_SYS_ADMIN) {
            eprintln!("note: skipping interception test {tag}: needs root");
            return None;
        }
        for (tool, arg) in [("ip", "-V"), ("nft", "--version")] {
            if run(tool, &[arg]).is_err() {
                eprintln!("note: skipping interception test {tag}: `{tool}` is missing (scripts/e2e-deps)");
                return None;
            }
        }
        remove_stale_namespaces();
        let pid = std::process::id();
        let name = |r: &str| format!("sysT{pid}x{tag}{r}");
        let mut lab = Lab { c: name("c"), r: name("r"), s: name("s"), net, created: Vec::new() };
        for ns in [lab.c.clone(), lab.r.clone(), lab.s.clone()] {
            if let Err(e) = ip(&["netns", "add", &ns]) {
                eprintln!("note: skipping interception test {tag}: {e}");
                return None;
            }
            lab.created.push(ns);
        }
        let (c, r, s) = (lab.c.clone(), lab.r.clone(), lab.s.clone());
        let client_net = format!("10.97.{net}.0/24");
        let steps: Vec<Vec<String>> = [
            vec!["-n", &r, "link", "add", "rc", "type", "veth", "peer", "name", "vc", "netns", &c],
            vec!["-n", &r, "link", "add", "rs", "type", "veth", "peer", "name", "vs", "netns", &s],
            vec!["-n", &c, "addr", "add", &format!("10.97.{net}.2/24"), "dev", "vc"],
            vec!["-n", &r, "addr", "add", &format!("10.97.{net}.1/24"), "dev", "rc"],
            vec!["-n", &r, "addr", "add", &format!("10.96.{net}.1/24"), "dev", "rs"],
            vec!["-n", &s, "addr", "add", &format!("10.96.{net}.2/24"), "dev", "vs"],
            vec!["-n", &s, "addr", "add", &format!("10.96.{net}.3/24"), "dev", "vs"],
            vec!["-n", &c, "link", "set", "vc", "up"],
            vec!["-n", &r, "link", "set", "rc", "up"],
            vec!["-n", &r, "link", "set", "rs", "up"],
            vec!["-n", &s, "link", "set", "vs", "up"],
            vec!["-n", &c, "link", "set", "lo", "up"],
            vec!["-n", &r, "link", "set", "lo", "up"],
            vec!["-n", &s, "link", "set", "lo", "up"],
            vec!["-n", &c, "route", "add", "default", "via", &format!("10.97.{net}.1")],
            vec!["-n", &s, "route", "add", &client_net, "via", &format!("10.96.{net}.1")],
        ]
        .iter()
        .map(|v| v.iter().map(|s| s.to_string()).collect())
        .collect();
        for step in steps {
            let args: Vec<&str> = step.iter().map(String::as_str).collect();
            ip(&args).expect("setting up the namespaces");
        }
        run("ip", &["netns", "exec", &r, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]).expect("ip_forward");
        let deadline = Instant::now() + Duration::from_secs(3);
        for (ns, dev) in [(&c, "vc"), (&r, "rc"), (&r, "rs"), (&s, "vs")] {
            while !ip(&["-n", ns, "-o", "link", "show", dev]).map(|o| o.contains("LOWER_UP")).unwrap_or(false) {
                assert!(Instant::now() < deadline, "{dev} did not come up");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Some(lab)
    }

    fn client(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 97, self.net, 2)
    }

    fn server(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 96, self.net, 2)
    }

    /// The server's second address (not intercepted unless added).
    fn server2(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 96, self.net, 3)
    }

    fn in_ns<T: Send>(&self, ns: &str, f: impl FnOnce() -> T + Send) -> T {
        netns::run_in(ns, f).expect("entering a namespace")
    }

    /// `nft list ruleset` in the router namespace.
    fn ruleset(&self) -> String {
        run("ip", &["netns", "exec", &self.r, "nft", "list", "ruleset"]).expect("nft list ruleset")
    }

    /// Waits up to 2 s for the router's ruleset to be empty; returns what it last was.
    fn wait_ruleset_empty(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let rs = self.ruleset();
            if rs.trim().is_empty() || Instant::now() >= deadline {
                return rs;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in &self.created {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("warning: could not delete namespace {ns}: {e}");
            }
        }
    }
}

/// Deletes `sysT<pid>x...` namespaces of earlier runs whose process is gone.
fn remove_stale_namespaces() {
    let Ok(list) = ip(&["netns", "list"]) else { return };
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some((pid, _)) = name.strip_prefix("sysT").and_then(|r| r.split_once('x')) else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// The client's UDP sockets and the server's listeners.
struct Flows {
    client: UdpSocket,
    /// Server sockets on ports 67, 68 and 53 (any address of the server).
    server: Vec<(u16, UdpSocket)>,
}

impl Flows {
    fn new(lab: &Lab) -> Flows {
        let client = lab.in_ns(&lab.c, || UdpSocket::bind((lab.client(), 0)).expect("client socket"));
        client.set_nonblocking(true).expect("nonblocking");
        let server = lab.in_ns(&lab.s, || {
            [67u16, 68, 53]
                .iter()
                .map(|p| {
                    let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, *p)).expect("server socket");
                    s.set_nonblocking(true).expect("nonblocking");
                    (*p, s)
                })
                .collect()
        });
        Flows { client, server }
    }

    /// Sends `payload` from the client to `dst:port` every 100 ms for up to `total`;
    /// true as soon as the server's socket on `port` receives it.
    fn arrives(&self, dst: Ipv4Addr, port: u16, payload: &[u8], total: Duration) -> bool {
        let rx = &self.server.iter().find(|(p, _)| *p == port).expect("a listener on that port").1;
        let deadline = Instant::now() + total;
        let mut buf = [0u8; 2048];
        let mut ready = [false];
        loop {
            let _ = self.client.send_to(payload, SocketAddrV4::new(dst, port));
            let slice = Instant::now() + Duration::from_millis(100);
            while Instant::now() < slice {
                wait_readable(&[rx.as_raw_fd()], Some(Duration::from_millis(20)), &mut ready).expect("poll");
                while let Ok((n, _)) = rx.recv_from(&mut buf) {
                    if buf.get(..n) == Some(payload) {
                        return true;
                    }
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }

    /// A DHCP-like request (first byte 1 = BOOTREQUEST) to port 67 of `dst`.
    fn request_arrives(&self, dst: Ipv4Addr, tag: &str, total: Duration) -> bool {
        self.arrives(dst, 67, format!("\u{1}request {tag}").as_bytes(), total)
    }
}

/// True when an ICMP echo from the client to `dst` is answered within 2 s.
fn ping(lab: &Lab, dst: Ipv4Addr) -> bool {
    let icmp = lab.in_ns(&lab.c, || IcmpSocket::new().expect("icmp socket"));
    let mut buf = [0u8; 512];
    let mut ready = [false];
    let deadline = Instant::now() + Duration::from_secs(2);
    for seq in 1u16.. {
        icmp.send_echo(dst, 0x5150, seq).expect("send echo");
        let slice = Instant::now() + Duration::from_millis(200);
        while Instant::now() < slice {
            wait_readable(&[icmp.as_raw_fd()], Some(Duration::from_millis(20)), &mut ready).expect("poll");
            while let Ok(Some(r)) = icmp.recv_reply(&mut buf) {
                if r.src == dst && r.ident == 0x5150 {
                    return true;
                }
            }
        }
        if Instant::now() >= deadline {
            return false;
        }
    }
    false
}

/// Nothing to port 67 of an intercepted address gets through, within this long.
const BLOCKED_FOR: Duration = Duration::from_millis(700);
/// An allowed flow gets through within this long (ARP resolution included).
const ALLOWED_WITHIN: Duration = Duration::from_secs(3);

#[test]
fn an_interception_stops_only_udp_67_to_the_servers_and_goes_with_its_owner() {
    let Some(lab) = Lab::new("ic", 1) else { return };
    let flows = Flows::new(&lab);
    // Before: everything is forwarded (the router routes, nothing stops it).
    assert!(flows.request_arrives(lab.server(), "before", ALLOWED_WITHIN), "UDP/67 is forwarded before");
    assert_eq!(lab.ruleset().trim(), "");

    let (interception, tap, rc) = lab.in_ns(&lab.r, || {
        let rc = iface::interface_by_name("rc").expect("rc");
        let tap = UdpTap::open(rc.index, 67, Some(1)).expect("tap");
        let i = Interception::install(&["rc"], &[lab.server()], 4).expect("install the interception");
        (i, tap, rc)
    });
    let mut interception = interception;
    let rules = lab.ruleset();
    eprintln!("{rules}");
    let table = format!("table ip cdra_spoof_{} {{", std::process::id());
    let server = lab.server().to_string();
    for want in [
        table.as_str(),
        "flags owner",
        "type ipv4_addr",
        server.as_str(),
        "hook forward priority filter; policy accept;",
        "iifname \"rc\"",
        "udp dport 67",
        "ip daddr @servers",
        "drop",
    ] {
        assert!(rules.contains(want), "`{want}` not in the ruleset:\n{rules}");
    }
    for absent in ["nat", "ct ", "input", "output", "prerouting", "postrouting"] {
        assert!(!rules.contains(absent), "`{absent}` in the ruleset:\n{rules}");
    }

    // UDP/67 to the server is not forwarded...
    assert!(!flows.request_arrives(lab.server(), "during", BLOCKED_FOR), "UDP/67 to the server was forwarded");
    // ... while the tap on the router still reads it.
    let mut batch = TapBatch::new(16, 2048);
    let mut ready = [false];
    let mut tapped = false;
    let deadline = Instant::now() + Duration::from_secs(2);
    while !tapped && Instant::now() < deadline {
        let _ = flows.client.send_to(b"\x01request tapped", SocketAddrV4::new(lab.server(), 67));
        wait_readable(&[tap.as_raw_fd()], Some(Duration::from_millis(100)), &mut ready).expect("poll");
        let n = tap.recv_batch(&mut batch).expect("tap recv");
        tapped = (0..n).filter_map(|i| batch.try_get(i)).any(|t| {
            t.ifindex == rc.index
                && t.packet.ends_with(b"\x01request tapped")
                && t.packet.get(16..20) == Some(&lab.server().octets()[..])
        });
    }
    assert!(tapped, "the AF_PACKET tap on the router did not see the intercepted datagram");
    // Every other flow to the server is untouched: UDP/68, UDP/53, ICMP, and UDP/67 to an
    // address that is not intercepted.
    assert!(flows.arrives(lab.server(), 68, b"to 68", ALLOWED_WITHIN), "UDP/68 stopped");
    assert!(flows.arrives(lab.server(), 53, b"dns", ALLOWED_WITHIN), "UDP/53 stopped");
    assert!(ping(&lab, lab.server()), "ICMP to the server stopped");
    assert!(
        flows.request_arrives(lab.server2(), "other", ALLOWED_WITHIN),
        "UDP/67 to a non-intercepted address stopped"
    );

    // An address added at run time is intercepted from then on; adding it twice, or past
    // the capacity, sends nothing.
    assert_eq!(interception.add_address(lab.server2()).expect("add"), Added::Added);
    assert_eq!(interception.add_address(lab.server2()).expect("add again"), Added::AlreadyThere);
    assert!(!flows.request_arrives(lab.server2(), "added", BLOCKED_FOR), "an added address is not intercepted");
    for last in 4..=5u8 {
        assert_eq!(interception.add_address(Ipv4Addr::new(192, 0, 2, last)).expect("add"), Added::Added);
    }
    assert_eq!(interception.add_address(Ipv4Addr::new(192, 0, 2, 9)).expect("add"), Added::Full);
    assert_eq!(interception.addresses().len(), 4);
    assert!(lab.ruleset().contains(&lab.server2().to_string()));

    // Dropped: the kernel deletes the table with the socket; forwarding is as before.
    drop(interception);
    let rs = lab.wait_ruleset_empty();
    assert_eq!(rs.trim(), "", "the table outlived its owner");
    assert!(flows.request_arrives(lab.server(), "after", ALLOWED_WITHIN), "UDP/67 not forwarded after the drop");
    assert!(flows.request_arrives(lab.server2(), "after2", ALLOWED_WITHIN));
}

/// Not a test of its own: the helper process of the SIGKILL test. Without `HELPER_ENV` it
/// does nothing; with it, it installs an interception in that namespace, prints
/// `HELPER-READY <table>` and waits (at most a minute) to be killed.
#[test]
fn helper_holding_an_interception() {
    let Ok(ns) = std::env::var(HELPER_ENV) else { return };
    let server: Ipv4Addr = std::env::var("CDRA_SYS_INTERCEPT_HELPER_SERVER")
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("server address for the helper");
    netns::enter_named(&ns).expect("enter the router namespace");
    let i = Interception::install(&["rc"], &[server], 4).expect("install");
    println!("HELPER-READY {}", i.table_name());
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(i);
}

/// Kills the helper (by its PID) when dropped, should an assertion fail first.
struct Helper(Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_sigkilled_owner_leaves_nothing_behind() {
    let Some(lab) = Lab::new("kl", 2) else { return };
    let flows = Flows::new(&lab);
    let exe = std::env::current_exe().expect("test binary");
    let mut helper = Helper(
        Command::new(exe)
            .args(["--exact", "helper_holding_an_interception", "--nocapture", "--test-threads=1"])
            .env(HELPER_ENV, &lab.r)
            .env("CDRA_SYS_INTERCEPT_HELPER_SERVER", lab.server().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the helper"),
    );
    let stdout = helper.0.stdout.take().expect("helper stdout");
    let mut lines = BufReader::new(stdout).lines();
    let table = loop {
        match lines.next() {
            // libtest writes "test NAME ... " on the same line first.
            Some(Ok(line)) if line.contains("HELPER-READY ") => {
                break line.rsplit("HELPER-READY ").next().unwrap_or("").trim().to_string()
            }
            Some(Ok(_)) => continue,
            other => panic!("the helper did not get ready: {other:?}"),
        }
    };
    let rules = lab.ruleset();
    assert!(rules.contains(&format!("table ip {table}")), "{rules}");
    assert!(!flows.request_arrives(lab.server(), "held", BLOCKED_FOR), "UDP/67 forwarded while the helper lives");

    // SIGKILL: no destructor runs; the kernel closes the socket and deletes the table.
    helper.0.kill().expect("SIGKILL the helper");
    let status = helper.0.wait().expect("wait for the helper");
    assert!(!status.success());
    let rs = lab.wait_ruleset_empty();
    assert_eq!(rs.trim(), "", "a SIGKILLed owner left its table behind");
    let rules_ip = ip(&["-n", &lab.r, "rule", "show"]).expect("ip rule");
    assert_eq!(rules_ip.lines().count(), 3, "only the default policy rules: {rules_ip}");
    assert!(flows.request_arrives(lab.server(), "after kill", ALLOWED_WITHIN), "UDP/67 not forwarded after SIGKILL");
}

#[test]
fn routes_are_looked_up_like_ip_route_get() {
    let Some(lab) = Lab::new("rt", 3) else { return };
    let (to_server, to_client, local, nowhere, rs, rc, lo) = lab.in_ns(&lab.r, || {
        (
            route::route_to(lab.server()).expect("route to the server"),
            route::route_to(lab.client()).expect("route to the client"),
            route::route_to(Ipv4Addr::new(10, 97, lab.net, 1)).expect("route to ourselves"),
            route::route_to(Ipv4Addr::new(203, 0, 113, 9)).expect("no route is an answer"),
            iface::name_to_index("rs").expect("rs"),
            iface::name_to_index("rc").expect("rc"),
            iface::name_to_index("lo").expect("lo"),
        )
    });
    assert_eq!((to_server.kind, to_server.oif, to_server.gateway), (RouteKind::Unicast, Some(rs), None));
    assert_eq!((to_client.kind, to_client.oif), (RouteKind::Unicast, Some(rc)));
    assert_eq!((local.kind, local.oif), (RouteKind::Local, Some(lo)));
    assert_eq!(nowhere.kind, RouteKind::Unreachable);
    // Through a gateway: the client routes everything via the router.
    let via = lab.in_ns(&lab.c, || route::route_to(lab.server()).expect("client route"));
    assert_eq!((via.kind, via.gateway), (RouteKind::Unicast, Some(Ipv4Addr::new(10, 97, lab.net, 1))));
}
