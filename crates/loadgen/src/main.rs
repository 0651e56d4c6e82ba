//! cdra-loadgen: emulates many DHCPv4 clients on one interface, the way real clients look
//! to a relay (client broadcasts with giaddr 0 from 0.0.0.0:68, one MAC per client as
//! chaddr and as Ethernet source, unicast renewals to the server-id), and reports rates,
//! drops, latency percentiles and the CPU time of watched processes, per phase.
//!
//! `cdra-loadgen run` drives the clients; `cdra-loadgen storm` reboots clients that got
//! leases in an earlier `run --save-leases` all at once, as after a power failure (paper
//! 3.4; bench/storm); `cdra-loadgen reflect` is a cheap stateless responder used to measure
//! the generator's own ceiling; `cdra-loadgen null-relay` relays with cdra's sockets and
//! system calls and no DHCP logic, the floor under cdra's relay mode (see [`null_relay`]).
//! All need CAP_NET_RAW and are meant to run inside network namespaces made for the purpose
//! (see bench/run, bench/storm).

#![forbid(unsafe_code)]

mod frame;
mod gen;
mod kea;
mod link;
mod null_relay;
mod procfs;
mod reflect;
mod report;
mod storm;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::frame::{ETHERTYPE_ARP, ETHERTYPE_IPV4, FRAME_CAP, SERVER_PORT};
use crate::gen::{GenOptions, Generator, MixWeights, Outbox, PhaseSpec, Scenario, KINDS, MAX_CLIENTS};
use crate::link::LinkSocket;
use crate::report::{percentiles, KindReport, PhaseReport, ProcessCpu, RunReport};

#[derive(Debug, Parser)]
#[command(name = "cdra-loadgen", version, about = "DHCPv4 client emulator and load generator for relay benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Emulate clients on an interface and report per phase.
    Run(RunArgs),
    /// Answer client DISCOVER/REQUEST frames statelessly (to measure the generator's ceiling).
    Reflect(ReflectArgs),
    /// Reboot clients that hold leases (from `run --save-leases`) all at once, as after a
    /// power failure: INIT-REBOOT spread over a few seconds, RFC 2131 retransmissions until
    /// answered, planted squatters answering ARP for some of their addresses.
    Storm(StormArgs),
    /// Relay with cdra's sockets and system calls and no DHCP logic (the floor under cdra's
    /// relay mode; see the module docs of null_relay.rs).
    NullRelay(NullRelayArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Interface the clients sit on (inside the client network namespace).
    #[arg(short, long)]
    interface: String,
    /// A phase, SCENARIO:RATE:DURATION[:CLIENTS], repeatable, run in order. SCENARIO is
    /// dora, init-reboot, renew, release or mix; RATE exchanges/s (0 = as fast as the
    /// window allows); CLIENTS limits init-reboot/renew/release to the first N clients that
    /// got a lease. Overrides --scenario/--rate/--duration.
    #[arg(long = "phase")]
    phases: Vec<PhaseSpec>,
    /// Scenario of a single-phase run (init-reboot, renew, release and mix get a DORA
    /// warm-up phase for all clients first).
    #[arg(long, default_value = "dora")]
    scenario: Scenario,
    /// Offered exchanges per second (single-phase run; 0 = unlimited).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Duration of a single-phase run.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Rate of the automatic DORA warm-up.
    #[arg(long, default_value_t = 2000.0)]
    warmup_rate: f64,
    /// Number of emulated clients (size of the client table).
    #[arg(long, default_value_t = 10_000)]
    clients: u32,
    /// Index of the first client; MACs are 02:PP:(index as 4 bytes). Use distinct ranges
    /// for runs that must not share clients.
    #[arg(long, default_value_t = 0)]
    first_client: u32,
    /// Second byte PP of every client MAC, in hex.
    #[arg(long, default_value = "cd", value_parser = parse_hex_byte)]
    mac_prefix: u8,
    /// Send option 61 (01 + MAC) as udhcpc does.
    #[arg(long)]
    client_id: bool,
    /// Set the BROADCAST flag in DISCOVER/REQUEST.
    #[arg(long)]
    broadcast_flag: bool,
    /// Wait this long for each reply before the exchange counts as dropped.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Retransmissions per message (0: a lost message is a dropped exchange).
    #[arg(long, default_value_t = 0)]
    retries: u8,
    /// Outstanding exchanges when the rate is 0 (closed loop).
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Ethernet destination of unicast renewals and releases (default: the source MAC of
    /// the ACK that gave the lease).
    #[arg(long, value_parser = parse_mac_arg)]
    router_mac: Option<[u8; 6]>,
    /// Weights of the mix scenario.
    #[arg(long, default_value = "dora=15,init-reboot=20,renew=60,release=5")]
    mix: MixWeights,
    /// Seed of the mix scenario's choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Watch a process's CPU time per phase: LABEL=PID (repeatable).
    #[arg(long = "cpu", value_parser = parse_watch)]
    watch: Vec<(String, u32)>,
    /// Kea control socket: report the server's pkt4-* statistics per phase.
    #[arg(long)]
    kea_socket: Option<PathBuf>,
    /// Pause between phases.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    gap: Duration,
    /// Write the JSON report here ("-": standard output, and the text goes to stderr).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Do not put the interface in promiscuous mode (unicast replies to client MACs may
    /// then be filtered by a real NIC; veth delivers them anyway).
    #[arg(long)]
    no_promisc: bool,
    /// Socket buffer size in bytes (receive and send).
    #[arg(long, default_value_t = 8 << 20)]
    socket_buffer: usize,
    /// After the run, write every client holding a lease here (`MAC ADDRESS SERVER-ID` per
    /// line), for `cdra-loadgen storm --leases`.
    #[arg(long)]
    save_leases: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct StormArgs {
    /// Interface the clients sit on (inside the client network namespace).
    #[arg(short, long)]
    interface: String,
    /// The leases the clients hold (written by `run --save-leases`).
    #[arg(long)]
    leases: PathBuf,
    /// Reboot only the first N of them.
    #[arg(long)]
    clients: Option<usize>,
    /// First INIT-REBOOT REQUESTs are spread uniformly over this.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    spread: Duration,
    /// Squatters: this many clients (chosen at random) find another MAC answering ARP for
    /// their address; they must get NAKs.
    #[arg(long, default_value_t = 300)]
    squatters: usize,
    /// Second byte of the squatters' MACs (02:PP:...), in hex.
    #[arg(long, default_value = "5a", value_parser = parse_hex_byte)]
    squatter_prefix: u8,
    /// Seed of the random choices (send times, jitter, who is squatted).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Send option 61 (01 + MAC) as udhcpc does.
    #[arg(long)]
    client_id: bool,
    /// Set the BROADCAST flag.
    #[arg(long)]
    broadcast_flag: bool,
    /// The run ends after this long, whoever is still unanswered (the RFC 2131 schedule
    /// retransmits at about 4, 12, 28 and 60 s after the first REQUEST).
    #[arg(long, default_value = "70s", value_parser = humantime::parse_duration)]
    max_run: Duration,
    /// Watch a process's CPU time during the storm: LABEL=PID (repeatable).
    #[arg(long = "cpu", value_parser = parse_watch)]
    watch: Vec<(String, u32)>,
    /// Write the JSON report here ("-": standard output, and the text goes to stderr).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Do not put the interface in promiscuous mode.
    #[arg(long)]
    no_promisc: bool,
    /// Socket buffer size in bytes (receive and send).
    #[arg(long, default_value_t = 8 << 20)]
    socket_buffer: usize,
}

#[derive(Debug, Args)]
struct ReflectArgs {
    /// Interface to answer on.
    #[arg(short, long)]
    interface: String,
    /// Address to answer from (server identifier).
    #[arg(long)]
    server_ip: Ipv4Addr,
    /// Lease time handed out, seconds.
    #[arg(long, default_value_t = 3600)]
    lease_time: u32,
    /// Stop after this long (default: until SIGINT/SIGTERM).
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Socket buffer size in bytes.
    #[arg(long, default_value_t = 8 << 20)]
    socket_buffer: usize,
}

#[derive(Debug, Args)]
struct NullRelayArgs {
    /// Downstream (client) interface.
    #[arg(short, long)]
    interface: String,
    /// giaddr (default: the interface's primary IPv4 address).
    #[arg(long)]
    giaddr: Option<Ipv4Addr>,
    /// The DHCP server.
    #[arg(long)]
    server: Ipv4Addr,
}

fn parse_hex_byte(s: &str) -> Result<u8, String> {
    u8::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|_| format!("{s:?} is not a hex byte"))
}

fn parse_mac_arg(s: &str) -> Result<[u8; 6], String> {
    frame::parse_mac(s).ok_or_else(|| format!("{s:?} is not a MAC address"))
}

fn parse_watch(s: &str) -> Result<(String, u32), String> {
    let (label, pid) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected LABEL=PID"))?;
    let pid: u32 = pid.parse().map_err(|_| format!("{s:?}: {pid:?} is not a pid"))?;
    Ok((label.to_string(), pid))
}

fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing a signal handler")?;
    }
    Ok(stop)
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Reflect(args) => reflect(args),
        Command::Storm(args) => storm(args),
        Command::NullRelay(args) => null_relay_main(args),
    };
    match result {
        Ok(true) => {}
        // Stopped by SIGINT/SIGTERM: the report was written, but the run is incomplete, so
        // a calling script must not mistake it for a finished one.
        Ok(false) => std::process::exit(130),
        Err(e) => {
            eprintln!("cdra-loadgen: {e:#}");
            std::process::exit(1);
        }
    }
}

fn flush(out: &mut Outbox, ip: &LinkSocket, arp: Option<&LinkSocket>, errors: &mut u64) {
    if !out.ip.is_empty() {
        ip.send_all(&out.ip.frames(), errors);
        out.ip.clear();
    }
    if !out.arp.is_empty() {
        match arp {
            Some(a) => a.send_all(&out.arp.frames(), errors),
            None => ip.send_all(&out.arp.frames(), errors),
        };
        out.arp.clear();
    }
}

/// Runs the phases; `Ok(false)` when a signal cut the run short.
fn run(args: RunArgs) -> anyhow::Result<bool> {
    if args.clients == 0 || args.clients >= MAX_CLIENTS {
        bail!("--clients must be between 1 and {}", MAX_CLIENTS - 1);
    }
    let mut phases = args.phases.clone();
    if phases.is_empty() {
        if args.scenario != Scenario::Dora && args.warmup_rate > 0.0 {
            let secs = (f64::from(args.clients) / args.warmup_rate).ceil().max(1.0);
            phases.push(PhaseSpec {
                scenario: Scenario::Dora,
                rate: args.warmup_rate,
                duration: Duration::from_secs_f64(secs),
                clients: None,
            });
        }
        phases.push(PhaseSpec { scenario: args.scenario, rate: args.rate, duration: args.duration, clients: None });
    }
    let text_to_stderr = args.json.as_deref() == Some(std::path::Path::new("-"));
    let say = |s: &str| {
        if text_to_stderr {
            eprint!("{s}");
        } else {
            print!("{s}");
            let _ = std::io::stdout().flush();
        }
    };

    let ip = LinkSocket::open(
        &args.interface,
        ETHERTYPE_IPV4,
        &link::filter_udp_dst_port(frame::CLIENT_PORT),
        !args.no_promisc,
        args.socket_buffer,
    )?;
    let arp = LinkSocket::open(&args.interface, ETHERTYPE_ARP, &link::filter_arp_request(), false, 1 << 20)?;
    let stop = stop_flag()?;

    let opts = GenOptions {
        clients: args.clients,
        first_client: args.first_client,
        mac_prefix: args.mac_prefix,
        client_id: args.client_id,
        broadcast_flag: args.broadcast_flag,
        timeout: args.timeout,
        retries: args.retries,
        window: args.window.max(1),
        router_mac: args.router_mac,
        mix: args.mix,
        seed: args.seed,
    };
    let mut g = Generator::new(opts, Instant::now());
    let mut out = Outbox::default();
    let mut buf = vec![0u8; 2048];
    let me = std::process::id();
    let mut reports = Vec::new();

    for (n, spec) in phases.iter().enumerate() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if n > 0 && !args.gap.is_zero() {
            std::thread::sleep(args.gap);
        }
        if spec.scenario != Scenario::Dora && spec.scenario != Scenario::Mix && g.leased() == 0 {
            eprintln!(
                "cdra-loadgen: warning: phase {n} ({}) needs clients with a lease: run a dora phase first",
                spec.scenario.label()
            );
        }
        let kea_before = args.kea_socket.as_deref().map(kea::packet_stats).transpose().unwrap_or_else(|e| {
            eprintln!("cdra-loadgen: warning: Kea statistics: {e:#}");
            None
        });
        let cpu_before: Vec<Option<Duration>> = args.watch.iter().map(|(_, pid)| procfs::cpu_time(*pid)).collect();
        let udp_before: Vec<_> = args.watch.iter().map(|(_, pid)| procfs::udp_counters(*pid)).collect();
        let self_before = procfs::cpu_time(me);

        let mut send_errors = 0u64;
        let start = Instant::now();
        g.begin_phase(spec.clone(), start);
        loop {
            let now = Instant::now();
            if stop.load(Ordering::Relaxed) {
                g.stop_sending(now);
            }
            g.expire(now, &mut out);
            g.start_due(now, &mut out);
            flush(&mut out, &ip, Some(&arp), &mut send_errors);
            if g.phase_done(now) {
                break;
            }
            let wait = g.next_wakeup(now);
            let ready = link::wait_readable([&ip, &arp], wait)?;
            if ready[0] {
                for _ in 0..512 {
                    match ip.recv(&mut buf)? {
                        Some(len) => g.on_frame(Instant::now(), &buf[..len.min(buf.len())], &mut out),
                        None => break,
                    }
                    if out.ip.len() >= link::SEND_BATCH {
                        flush(&mut out, &ip, Some(&arp), &mut send_errors);
                    }
                }
            }
            if ready[1] {
                for _ in 0..512 {
                    match arp.recv(&mut buf)? {
                        Some(len) => g.on_arp(&buf[..len.min(buf.len())], &mut out),
                        None => break,
                    }
                }
            }
            flush(&mut out, &ip, Some(&arp), &mut send_errors);
        }
        let end = Instant::now();
        let mut st = g.finish_phase(end);
        st.packets.send_errors += send_errors;

        let self_cpu = match (self_before, procfs::cpu_time(me)) {
            (Some(a), Some(b)) => b.saturating_sub(a).as_secs_f64(),
            _ => 0.0,
        };
        let elapsed = st.elapsed.as_secs_f64().max(1e-9);
        let window = st.send_window.as_secs_f64().max(1e-9);
        let completed: u64 = st.kinds.iter().map(|k| k.completed).sum();
        let started: u64 = st.kinds.iter().map(|k| k.started).sum();
        let dropped: u64 = st.kinds.iter().map(|k| k.dropped).sum();
        let naks: u64 = st.kinds.iter().map(|k| k.naks).sum();
        let processes = args
            .watch
            .iter()
            .zip(cpu_before)
            .zip(udp_before)
            .filter_map(|(((label, pid), before), udp_before)| {
                let after = procfs::cpu_time(*pid)?;
                let cpu_s = after.saturating_sub(before?).as_secs_f64();
                let netns_udp = match (udp_before, procfs::udp_counters(*pid)) {
                    (Some(b), Some(a)) => Some(kea::delta(&b, &a)),
                    _ => None,
                };
                Some(ProcessCpu {
                    label: label.clone(),
                    pid: *pid,
                    cpu_s,
                    cpu_ms_per_1000: (completed > 0).then(|| cpu_s * 1e6 / completed as f64),
                    cores: cpu_s / elapsed,
                    netns_udp,
                })
            })
            .collect();
        let kea = match (&kea_before, args.kea_socket.as_deref().map(kea::packet_stats)) {
            (Some(b), Some(Ok(a))) => Some(kea::delta(b, &a)),
            (_, Some(Err(e))) => {
                eprintln!("cdra-loadgen: warning: Kea statistics: {e:#}");
                None
            }
            _ => None,
        };
        let mut exchanges = BTreeMap::new();
        for (k, ks) in KINDS.iter().zip(st.kinds.iter_mut()) {
            if ks.started == 0 && ks.completed == 0 && ks.dropped == 0 {
                continue;
            }
            exchanges.insert(
                k.label().to_string(),
                KindReport {
                    started: ks.started,
                    completed: ks.completed,
                    dropped: ks.dropped,
                    naks: ks.naks,
                    retransmits: ks.retransmits,
                    latency: percentiles(&mut ks.latency_us),
                },
            );
        }
        let rate_label = if spec.rate > 0.0 { format!("{}", spec.rate) } else { "max".into() };
        let report = PhaseReport {
            phase: n,
            label: format!("{}@{}", spec.scenario.label(), rate_label),
            scenario: spec.scenario.label().to_string(),
            rate: spec.rate,
            duration_s: window,
            elapsed_s: elapsed,
            started,
            offered_rate: started as f64 / window,
            completed,
            achieved_rate: completed as f64 / window,
            dropped,
            drop_pct: if started > 0 { dropped as f64 * 100.0 / started as f64 } else { 0.0 },
            naks,
            no_idle_client: st.no_idle_client,
            exchanges,
            offer_latency: percentiles(&mut st.offer_latency_us),
            packets: st.packets,
            generator_cpu_s: self_cpu,
            processes,
            kea,
        };
        say(&report.to_text());
        reports.push(report);
    }

    if let Some(path) = &args.save_leases {
        let mut text = String::from("# MAC ADDRESS SERVER-ID, written by cdra-loadgen run --save-leases\n");
        for (mac, addr, server_id) in g.leases() {
            let m = mac.map(|b| format!("{b:02x}")).join(":");
            text.push_str(&format!("{m} {addr} {server_id}\n"));
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let run = RunReport {
        interface: args.interface.clone(),
        clients: args.clients,
        first_client: args.first_client,
        client_id: args.client_id,
        timeout_s: args.timeout.as_secs_f64(),
        retries: args.retries,
        phases: reports,
    };
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&run)?;
        if path.as_os_str() == "-" {
            println!("{text}");
        } else {
            std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(!stop.load(Ordering::Relaxed))
}

/// The storm; `Ok(false)` when a signal cut it short.
fn storm(args: StormArgs) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(&args.leases).with_context(|| format!("reading {}", args.leases.display()))?;
    let mut leases = storm::parse_leases(&text).map_err(|e| anyhow!("{}: {e}", args.leases.display()))?;
    if let Some(n) = args.clients {
        if n > leases.len() {
            bail!("--clients {n}: {} holds only {} leases", args.leases.display(), leases.len());
        }
        leases.truncate(n);
    }
    if leases.is_empty() {
        bail!("{} holds no lease", args.leases.display());
    }
    let text_to_stderr = args.json.as_deref() == Some(std::path::Path::new("-"));
    let ip = LinkSocket::open(
        &args.interface,
        ETHERTYPE_IPV4,
        &link::filter_udp_dst_port(frame::CLIENT_PORT),
        !args.no_promisc,
        args.socket_buffer,
    )?;
    let arp = LinkSocket::open(&args.interface, ETHERTYPE_ARP, &link::filter_arp_request(), false, args.socket_buffer)?;
    let stop = stop_flag()?;
    let opts = storm::StormOptions {
        spread: args.spread,
        squatters: args.squatters,
        squatter_prefix: args.squatter_prefix,
        seed: args.seed,
        client_id: args.client_id,
        broadcast_flag: args.broadcast_flag,
        max_run: args.max_run,
    };
    let cpu_before: Vec<Option<Duration>> = args.watch.iter().map(|(_, pid)| procfs::cpu_time(*pid)).collect();
    let me = std::process::id();
    let self_before = procfs::cpu_time(me);
    let start = Instant::now();
    let mut s = storm::Storm::new(&leases, opts, start);
    let mut out = Outbox::default();
    let mut buf = vec![0u8; 2048];
    let mut send_errors = 0u64;
    loop {
        let now = Instant::now();
        if stop.load(Ordering::Relaxed) || s.done(now) {
            break;
        }
        // ARP first: a squatter's answer must not wait behind a batch of REQUESTs.
        for _ in 0..512 {
            match arp.recv(&mut buf)? {
                Some(len) => s.on_arp(&buf[..len.min(buf.len())], &mut out),
                None => break,
            }
        }
        flush(&mut out, &ip, Some(&arp), &mut send_errors);
        s.due(now, &mut out, link::SEND_BATCH * 4);
        flush(&mut out, &ip, Some(&arp), &mut send_errors);
        let ready = link::wait_readable([&ip, &arp], s.next_wakeup(Instant::now()))?;
        if ready[0] {
            for _ in 0..512 {
                match ip.recv(&mut buf)? {
                    Some(len) => s.on_frame(Instant::now(), &buf[..len.min(buf.len())]),
                    None => break,
                }
            }
        }
    }
    s.add_send_errors(send_errors);
    let end = Instant::now();
    let report = s.report(end);
    let elapsed = end.saturating_duration_since(start).as_secs_f64().max(1e-9);
    let mut cpu = BTreeMap::new();
    for ((label, pid), before) in args.watch.iter().zip(cpu_before) {
        if let (Some(b), Some(a)) = (before, procfs::cpu_time(*pid)) {
            let s = a.saturating_sub(b).as_secs_f64();
            cpu.insert(label.clone(), serde_json::json!({ "pid": pid, "cpu_s": s, "cores": s / elapsed }));
        }
    }
    if let (Some(b), Some(a)) = (self_before, procfs::cpu_time(me)) {
        let s = a.saturating_sub(b).as_secs_f64();
        cpu.insert("generator".into(), serde_json::json!({ "pid": me, "cpu_s": s, "cores": s / elapsed }));
    }
    let summary = report.to_text();
    if text_to_stderr {
        eprint!("{summary}");
    } else {
        print!("{summary}");
    }
    if let Some(path) = &args.json {
        let mut value = serde_json::to_value(&report)?;
        if let Some(o) = value.as_object_mut() {
            o.insert("interface".into(), serde_json::json!(args.interface));
            o.insert("seed".into(), serde_json::json!(args.seed));
            o.insert("cpu".into(), serde_json::json!(cpu));
        }
        let text = serde_json::to_string_pretty(&value)?;
        if path.as_os_str() == "-" {
            println!("{text}");
        } else {
            std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(!stop.load(Ordering::Relaxed))
}

/// Answers until stopped; a signal is the normal way to stop it.
fn reflect(args: ReflectArgs) -> anyhow::Result<bool> {
    let iface = cdra_sys::iface::interface_by_name(&args.interface).map_err(|e| anyhow!("{e}"))?;
    let server_mac = iface.mac.ok_or_else(|| anyhow!("{} has no MAC address", args.interface))?;
    let cfg = reflect::ReflectConfig { server_ip: args.server_ip, server_mac, lease_time: args.lease_time };
    let sock = LinkSocket::open(
        &args.interface,
        ETHERTYPE_IPV4,
        &link::filter_udp_dst_port(SERVER_PORT),
        false,
        args.socket_buffer,
    )?;
    let stop = stop_flag()?;
    let until = args.duration.map(|d| Instant::now() + d);
    let mut buf = vec![0u8; 2048];
    let mut out = Outbox::default();
    let mut errors = 0u64;
    let (mut received, mut answered) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) && until.is_none_or(|u| Instant::now() < u) {
        let ready = link::wait_readable([&sock], Duration::from_millis(100))?;
        if !ready[0] {
            continue;
        }
        for _ in 0..512 {
            let Some(len) = sock.recv(&mut buf)? else { break };
            received += 1;
            let slot_len = {
                let q = &mut out.ip;
                reflect_into(q, &buf[..len.min(buf.len())], &cfg)
            };
            answered += u64::from(slot_len);
            if out.ip.len() >= link::SEND_BATCH {
                sock.send_all(&out.ip.frames(), &mut errors);
                out.ip.clear();
            }
        }
        if !out.ip.is_empty() {
            sock.send_all(&out.ip.frames(), &mut errors);
            out.ip.clear();
        }
    }
    eprintln!("cdra-loadgen reflect: received {received}, answered {answered}, send errors {errors}");
    Ok(true)
}

/// Relays until stopped (SIGINT/SIGTERM), then says what it did.
fn null_relay_main(args: NullRelayArgs) -> anyhow::Result<bool> {
    let iface = cdra_sys::iface::interface_by_name(&args.interface).map_err(|e| anyhow!("{e}"))?;
    let giaddr = match args.giaddr {
        Some(a) => a,
        None => iface.require_ipv4().map_err(|e| anyhow!("{e}"))?.addr,
    };
    let cfg = null_relay::NullRelayConfig { ifindex: iface.index, giaddr, server: args.server };
    let stop = stop_flag()?;
    let st = null_relay::run(cfg, &stop)?;
    eprintln!(
        "cdra-loadgen null-relay: forwarded {}, delivered {}, ignored {}, send errors {}, wake-ups {}",
        st.forwarded, st.delivered, st.ignored, st.send_errors, st.wakeups
    );
    Ok(true)
}

/// Answers `frame` into the next slot of `q`; true when a reply was queued.
fn reflect_into(q: &mut gen::FrameQueue, frame: &[u8], cfg: &reflect::ReflectConfig) -> bool {
    let mut tmp = [0u8; FRAME_CAP];
    match reflect::answer(frame, cfg, &mut tmp) {
        Some(n) => {
            q.push(&tmp[..n]);
            true
        }
        None => false,
    }
}
