//! The configuration file: TOML read into serde structs (`deny_unknown_fields`), then
//! validated into a [`Settings`] model that no longer holds text to interpret. Interface
//! names are resolved later, at start-up ([`crate::daemon`]), so `cdra check` works on any
//! host. Every error is one line that names the key and the problem.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use cdra_core::config::{DEFAULT_MAX_HOPS, DEFAULT_MAX_PACKET_SIZE, HARD_MAX_HOPS};
use cdra_core::servers::MAX_SERVERS;
use cdra_core::{Mode, Option82Policy, ServerSelection};
use serde::Deserialize;

/// A configuration error: the key it concerns and what is wrong, printed as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the key ("relay.max_hops", "downstream[0].interface"), or empty.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.problem)
        } else {
            write!(f, "{}: {}", self.key, self.problem)
        }
    }
}

impl std::error::Error for ConfigError {}

fn err(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError { key: key.into(), problem: problem.into() }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default = "default_mode")]
    mode: String,
    #[serde(default)]
    servers: Vec<String>,
    #[serde(default)]
    downstream: Vec<FileDownstream>,
    #[serde(default)]
    upstream: Vec<FileUpstream>,
    #[serde(default)]
    relay: FileRelay,
    #[serde(default)]
    proxy: Option<FileProxy>,
    #[serde(default)]
    control: FileControl,
    #[serde(default)]
    metrics: FileMetrics,
    #[serde(default)]
    store: FileStore,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStore {
    enabled: Option<bool>,
    path: Option<String>,
    commit_interval: Option<String>,
    mode: Option<String>,
    dump_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMetrics {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileProxy {
    safe_network: Option<bool>,
    max_age: Option<String>,
    offer_choice: Option<String>,
    offer_window: Option<String>,
    probe_timeout: Option<String>,
    max_clients: Option<i64>,
    max_pending_probes: Option<i64>,
    max_tracked_requests: Option<i64>,
    max_held_replies: Option<i64>,
    max_offer_windows: Option<i64>,
    client_lease: Option<String>,
    renew_reply_delay: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileControl {
    socket: Option<String>,
}

fn default_mode() -> String {
    "relay".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDownstream {
    interface: String,
    address: Option<String>,
    circuit_id: Option<String>,
    #[serde(default)]
    trusted: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUpstream {
    interface: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRelay {
    max_hops: Option<i64>,
    server_selection: Option<String>,
    max_packet_size: Option<i64>,
    server_timeout: Option<String>,
    #[serde(default)]
    option82: FileOption82,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOption82 {
    #[serde(default)]
    insert: bool,
    remote_id: Option<String>,
    policy: Option<String>,
    #[serde(default)]
    link_selection: bool,
    #[serde(default)]
    server_id_override: bool,
}

/// A downstream interface as configured (not yet resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownstreamSettings {
    /// Interface name.
    pub interface: String,
    /// Address to use as giaddr (must be on the interface); default its first address.
    pub address: Option<Ipv4Addr>,
    /// Circuit-id; default the interface name.
    pub circuit_id: Option<Vec<u8>>,
    /// RFC 3046 2.1 trusted circuit.
    pub trusted: bool,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Relay or proxy.
    pub mode: Mode,
    /// Servers in order of preference.
    pub servers: Vec<Ipv4Addr>,
    /// Client-facing interfaces.
    pub downstream: Vec<DownstreamSettings>,
    /// Server-facing interfaces.
    pub upstream: Vec<String>,
    /// Hop limit.
    pub max_hops: u8,
    /// Server selection.
    pub server_selection: ServerSelection,
    /// Largest payload sent to a server once option 82 is added.
    pub max_packet_size: usize,
    /// A server not answering for this long is down.
    pub server_timeout: Duration,
    /// Option 82.
    pub option82: cdra_core::Option82Config,
    /// Proxy mode.
    pub proxy: cdra_core::ProxyConfig,
    /// Control socket path (`cdra cache ...`), if any.
    pub control_socket: Option<std::path::PathBuf>,
    /// Prometheus endpoint, if any.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Persistent client table (proxy mode), if enabled.
    pub store: Option<cdra_store::StoreConfig>,
}

/// Default place of the client table store (systemd's `StateDirectory=cdra`).
pub const DEFAULT_STORE_PATH: &str = "/var/lib/cdra/clients.redb";

/// Parse a duration such as "30s", "10m", "9d" (humantime syntax).
pub fn parse_duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(text.trim())
        .map_err(|e| err(key, format!("{text:?} is not a duration like \"30s\", \"10m\" or \"9d\" ({e})")))
}

fn parse_ipv4(key: &str, text: &str) -> Result<Ipv4Addr, ConfigError> {
    text.trim().parse::<Ipv4Addr>().map_err(|_| err(key, format!("{text:?} is not an IPv4 address")))
}

fn check_len(key: &str, value: &[u8]) -> Result<(), ConfigError> {
    if value.is_empty() || value.len() > 255 {
        return Err(err(key, format!("must be 1 to 255 bytes long, not {}", value.len())));
    }
    Ok(())
}

/// Read and validate a configuration file.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| err("", format!("cannot read {}: {e}", path.display())))?;
    parse(&text)
}

/// Parse and validate configuration text.
pub fn parse(text: &str) -> Result<Settings, ConfigError> {
    let de = toml::Deserializer::new(text);
    let file: FileConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." { String::new() } else { key };
        // toml's messages can span lines (with a source excerpt): keep the first line.
        let inner = e.into_inner();
        let problem = inner.message().lines().next().unwrap_or("invalid TOML").to_string();
        let problem = match inner.span() {
            Some(span) => {
                let line = text.get(..span.start).map(|t| t.matches('\n').count() + 1).unwrap_or(1);
                format!("{problem} (line {line})")
            }
            None => problem,
        };
        err(key, problem)
    })?;
    validate(file)
}

fn validate(file: FileConfig) -> Result<Settings, ConfigError> {
    let mode = match file.mode.as_str() {
        "relay" => Mode::Relay,
        "proxy" => Mode::Proxy,
        other => return Err(err("mode", format!("{other:?} is not one of \"relay\", \"proxy\""))),
    };
    if file.servers.is_empty() {
        return Err(err("servers", "at least one server address is required"));
    }
    if file.servers.len() > MAX_SERVERS {
        return Err(err("servers", format!("at most {MAX_SERVERS} servers are supported, not {}", file.servers.len())));
    }
    let mut servers = Vec::new();
    for (i, s) in file.servers.iter().enumerate() {
        let key = format!("servers[{i}]");
        let addr = parse_ipv4(&key, s)?;
        if addr.is_unspecified() || addr.is_broadcast() || addr.is_multicast() || addr.is_loopback() {
            return Err(err(key, format!("{addr} cannot be a DHCP server address")));
        }
        if servers.contains(&addr) {
            return Err(err(key, format!("{addr} is listed twice")));
        }
        servers.push(addr);
    }
    if file.downstream.is_empty() {
        return Err(err("downstream", "at least one [[downstream]] interface is required"));
    }
    let mut downstream: Vec<DownstreamSettings> = Vec::new();
    for (i, d) in file.downstream.iter().enumerate() {
        let key = format!("downstream[{i}]");
        if d.interface.is_empty() || d.interface.len() > 15 {
            return Err(err(format!("{key}.interface"), format!("{:?} is not an interface name", d.interface)));
        }
        if downstream.iter().any(|o| o.interface == d.interface) {
            return Err(err(format!("{key}.interface"), format!("{} is listed twice", d.interface)));
        }
        let address = d.address.as_deref().map(|a| parse_ipv4(&format!("{key}.address"), a)).transpose()?;
        let circuit_id = match &d.circuit_id {
            Some(c) => {
                check_len(&format!("{key}.circuit_id"), c.as_bytes())?;
                Some(c.as_bytes().to_vec())
            }
            None => None,
        };
        downstream.push(DownstreamSettings { interface: d.interface.clone(), address, circuit_id, trusted: d.trusted });
    }
    let mut upstream: Vec<String> = Vec::new();
    for (i, u) in file.upstream.iter().enumerate() {
        let key = format!("upstream[{i}].interface");
        if u.interface.is_empty() || u.interface.len() > 15 {
            return Err(err(key, format!("{:?} is not an interface name", u.interface)));
        }
        if upstream.contains(&u.interface) {
            return Err(err(key, format!("{} is listed twice", u.interface)));
        }
        upstream.push(u.interface.clone());
    }
    let r = &file.relay;
    let max_hops = match r.max_hops {
        None => DEFAULT_MAX_HOPS,
        Some(h) if (1..=i64::from(HARD_MAX_HOPS)).contains(&h) => h as u8,
        Some(h) => {
            return Err(err(
                "relay.max_hops",
                format!("{h} is out of range 1..={HARD_MAX_HOPS} (RFC 1542 4.1.1 caps hops at 16)"),
            ))
        }
    };
    let server_selection = match r.server_selection.as_deref() {
        None | Some("all") => ServerSelection::All,
        Some("failover") => ServerSelection::Failover,
        Some(other) => {
            return Err(err("relay.server_selection", format!("{other:?} is not one of \"all\", \"failover\"")))
        }
    };
    let max_packet_size = match r.max_packet_size {
        None => DEFAULT_MAX_PACKET_SIZE,
        Some(n) if (576..=4096).contains(&n) => n as usize,
        Some(n) => return Err(err("relay.max_packet_size", format!("{n} is out of range 576..=4096"))),
    };
    let server_timeout = match &r.server_timeout {
        None => Duration::from_secs(10),
        Some(t) => {
            let d = parse_duration("relay.server_timeout", t)?;
            if d < Duration::from_secs(1) || d > Duration::from_secs(3600) {
                return Err(err("relay.server_timeout", format!("{t:?} is out of range 1s..=1h")));
            }
            d
        }
    };
    let o = &r.option82;
    let remote_id = match &o.remote_id {
        Some(s) => {
            check_len("relay.option82.remote_id", s.as_bytes())?;
            Some(s.as_bytes().to_vec())
        }
        None => None,
    };
    let policy = match o.policy.as_deref() {
        None | Some("forward") => Option82Policy::Forward,
        Some("replace") => Option82Policy::Replace,
        Some("drop") => Option82Policy::Drop,
        Some(other) => {
            return Err(err(
                "relay.option82.policy",
                format!("{other:?} is not one of \"forward\", \"replace\", \"drop\""),
            ))
        }
    };
    let option82 = cdra_core::Option82Config {
        insert: o.insert,
        remote_id,
        policy,
        link_selection: o.link_selection,
        server_id_override: o.server_id_override,
    };
    let proxy = validate_proxy(file.proxy.unwrap_or_default())?;
    let control_socket = match file.control.socket.as_deref() {
        None | Some("") => None,
        Some(p) if p.starts_with('/') => Some(std::path::PathBuf::from(p)),
        Some(p) => return Err(err("control.socket", format!("{p:?} must be an absolute path"))),
    };
    let metrics_listen = match file.metrics.listen.as_deref() {
        None | Some("") => None,
        Some(a) => Some(
            a.parse::<std::net::SocketAddr>()
                .map_err(|_| err("metrics.listen", format!("{a:?} is not an address:port like \"127.0.0.1:9167\"")))?,
        ),
    };
    let store = validate_store(&file.store, mode)?;
    Ok(Settings {
        mode,
        servers,
        downstream,
        upstream,
        max_hops,
        server_selection,
        max_packet_size,
        server_timeout,
        option82,
        proxy,
        control_socket,
        metrics_listen,
        store,
    })
}

/// `[store]`: on by default in proxy mode; `enabled = false` or `path = ""` turns it off.
fn validate_store(f: &FileStore, mode: Mode) -> Result<Option<cdra_store::StoreConfig>, ConfigError> {
    let path = match f.path.as_deref() {
        Some("") => return Ok(None),
        Some(p) if p.starts_with('/') => p.to_string(),
        Some(p) => return Err(err("store.path", format!("{p:?} must be an absolute path"))),
        None => DEFAULT_STORE_PATH.to_string(),
    };
    let commit_interval = duration_in(
        "store.commit_interval",
        &f.commit_interval,
        cdra_store::StoreConfig::DEFAULT_COMMIT_INTERVAL,
        Duration::from_millis(10),
        Duration::from_secs(60),
    )?;
    let dump_interval = duration_in(
        "store.dump_interval",
        &f.dump_interval,
        cdra_store::WriteMode::DEFAULT_DUMP_INTERVAL,
        Duration::from_secs(1),
        Duration::from_secs(86_400),
    )?;
    let write_mode = match f.mode.as_deref() {
        None | Some("group_commit") => cdra_store::WriteMode::GroupCommit,
        Some("dump") => cdra_store::WriteMode::PeriodicDump { interval: dump_interval },
        Some(other) => return Err(err("store.mode", format!("{other:?} is not one of \"group_commit\", \"dump\""))),
    };
    if !f.enabled.unwrap_or(mode == Mode::Proxy) {
        return Ok(None);
    }
    let mut config = cdra_store::StoreConfig::new(path);
    config.commit_interval = commit_interval;
    config.mode = write_mode;
    Ok(Some(config))
}

fn duration_in(
    key: &str,
    text: &Option<String>,
    default: Duration,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let Some(t) = text else { return Ok(default) };
    let d = parse_duration(key, t)?;
    if d < min || d > max {
        return Err(err(
            key,
            format!("{t:?} is out of range {}..={}", humantime::format_duration(min), humantime::format_duration(max)),
        ));
    }
    Ok(d)
}

fn validate_proxy(p: FileProxy) -> Result<cdra_core::ProxyConfig, ConfigError> {
    let d = cdra_core::ProxyConfig::default();
    let day = Duration::from_secs(86_400);
    let offer_choice = match p.offer_choice.as_deref() {
        None | Some("first") => cdra_core::OfferChoice::First,
        Some("longest_lease") => cdra_core::OfferChoice::LongestLease,
        Some("spread") => cdra_core::OfferChoice::Spread,
        Some(other) => {
            return Err(err(
                "proxy.offer_choice",
                format!("{other:?} is not one of \"first\", \"longest_lease\", \"spread\""),
            ))
        }
    };
    let count = |key: &str, v: Option<i64>, default: usize, max: i64| -> Result<usize, ConfigError> {
        match v {
            None => Ok(default),
            Some(n) if (1..=max).contains(&n) => Ok(n as usize),
            Some(n) => Err(err(key, format!("{n} is out of range 1..={max}"))),
        }
    };
    let client_lease = match &p.client_lease {
        None => None,
        Some(_) => Some(duration_in("proxy.client_lease", &p.client_lease, day, Duration::from_secs(10), 365 * day)?),
    };
    Ok(cdra_core::ProxyConfig {
        safe_network: p.safe_network.unwrap_or(d.safe_network),
        max_age: duration_in("proxy.max_age", &p.max_age, d.max_age, Duration::from_secs(60), 365 * day)?,
        offer_choice,
        offer_window: duration_in(
            "proxy.offer_window",
            &p.offer_window,
            d.offer_window,
            Duration::from_millis(10),
            Duration::from_secs(10),
        )?,
        probe_timeout: duration_in(
            "proxy.probe_timeout",
            &p.probe_timeout,
            d.probe_timeout,
            Duration::from_millis(10),
            Duration::from_secs(10),
        )?,
        max_clients: count("proxy.max_clients", p.max_clients, d.max_clients, 100_000_000)?,
        max_pending_probes: count("proxy.max_pending_probes", p.max_pending_probes, d.max_pending_probes, 1_000_000)?,
        max_tracked_requests: count(
            "proxy.max_tracked_requests",
            p.max_tracked_requests,
            d.max_tracked_requests,
            10_000_000,
        )?,
        max_held_replies: count("proxy.max_held_replies", p.max_held_replies, d.max_held_replies, 1_000_000)?,
        max_offer_windows: count("proxy.max_offer_windows", p.max_offer_windows, d.max_offer_windows, 1_000_000)?,
        min_lease_left: d.min_lease_left,
        client_lease,
        renew_reply_delay: match &p.renew_reply_delay {
            Some(t) if parse_duration("proxy.renew_reply_delay", t)?.is_zero() => Duration::ZERO,
            _ => duration_in(
                "proxy.renew_reply_delay",
                &p.renew_reply_delay,
                d.renew_reply_delay,
                Duration::from_millis(1),
                Duration::from_millis(500),
            )?,
        },
        seed: d.seed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "mode = \"relay\"\nservers = [\"10.0.0.1\"]\n[[downstream]]\ninterface = \"eth1\"\n";

    #[test]
    fn minimal_config_gets_defaults() {
        let s = parse(MINIMAL).expect("valid");
        assert_eq!(s.mode, Mode::Relay);
        assert_eq!(s.max_hops, 4);
        assert_eq!(s.server_selection, ServerSelection::All);
        assert!(!s.option82.insert);
        assert_eq!(s.option82.policy, Option82Policy::Forward);
    }

    #[test]
    fn proxy_config() {
        let text = format!("{}\n[proxy]\nsafe_network = true\nmax_age = \"2d\"\noffer_choice = \"spread\"\nprobe_timeout = \"300ms\"\n[control]\nsocket = \"/run/cdra.sock\"\n", MINIMAL.replace("\"relay\"", "\"proxy\""));
        let s = parse(&text).expect("valid");
        assert_eq!(s.mode, Mode::Proxy);
        assert!(s.proxy.safe_network);
        assert_eq!(s.proxy.max_age, Duration::from_secs(2 * 86_400));
        assert_eq!(s.proxy.offer_choice, cdra_core::OfferChoice::Spread);
        assert_eq!(s.proxy.probe_timeout, Duration::from_millis(300));
        assert_eq!(s.control_socket.as_deref(), Some(Path::new("/run/cdra.sock")));
        let defaults = parse(&MINIMAL.replace("\"relay\"", "\"proxy\"")).expect("valid");
        assert!(!defaults.proxy.safe_network);
        // Persistence is on by default in proxy mode, off in relay mode.
        let store = defaults.store.expect("store on by default in proxy mode");
        assert_eq!(store.path, Path::new(DEFAULT_STORE_PATH));
        assert_eq!(store.mode, cdra_store::WriteMode::GroupCommit);
        assert!(parse(MINIMAL).expect("valid").store.is_none());
        let off =
            parse(&format!("{}[store]\nenabled = false\n", MINIMAL.replace("\"relay\"", "\"proxy\""))).expect("valid");
        assert!(off.store.is_none());
        let dump = parse(&format!(
            "{}[store]\nmode = \"dump\"\npath = \"/tmp/x.redb\"\n",
            MINIMAL.replace("\"relay\"", "\"proxy\"")
        ))
        .expect("valid");
        assert_eq!(
            dump.store.expect("on").mode,
            cdra_store::WriteMode::PeriodicDump { interval: Duration::from_secs(70) }
        );
        assert_eq!(defaults.proxy.max_age, Duration::from_secs(9 * 86_400));
    }

    #[test]
    fn shipped_example_configs_are_valid() {
        for text in [include_str!("../../../contrib/relay.toml"), include_str!("../../../contrib/proxy.toml")] {
            parse(text).expect("example configuration must stay valid");
        }
    }

    #[test]
    fn full_config() {
        let text = r#"
mode = "relay"
servers = ["10.77.0.1", "10.77.0.9"]
[[downstream]]
interface = "rd0"
address = "10.77.1.1"
circuit_id = "port-7"
[[upstream]]
interface = "ru0"
[relay]
max_hops = 8
server_selection = "failover"
server_timeout = "5s"
[relay.option82]
insert = true
remote_id = "cdra-1"
policy = "replace"
link_selection = true
server_id_override = true
"#;
        let s = parse(text).expect("valid");
        assert_eq!(s.servers.len(), 2);
        assert_eq!(s.downstream[0].address, Some(Ipv4Addr::new(10, 77, 1, 1)));
        assert_eq!(s.downstream[0].circuit_id.as_deref(), Some(&b"port-7"[..]));
        assert_eq!(s.upstream, vec!["ru0".to_string()]);
        assert_eq!(s.max_hops, 8);
        assert_eq!(s.server_selection, ServerSelection::Failover);
        assert_eq!(s.server_timeout, Duration::from_secs(5));
        assert!(s.option82.insert && s.option82.link_selection && s.option82.server_id_override);
        assert_eq!(s.option82.policy, Option82Policy::Replace);
    }

    fn error_of(text: &str) -> String {
        parse(text).expect_err("must be rejected").to_string()
    }

    #[test]
    fn errors_name_the_key_in_one_line() {
        let cases = [
            (format!("{MINIMAL}bogus = 1\n"), "unknown field `bogus`"),
            (format!("{MINIMAL}[relay]\nmax_hops = 17\n"), "relay.max_hops: 17 is out of range"),
            (format!("{MINIMAL}[relay]\nmax_hops = 0\n"), "relay.max_hops: 0 is out of range"),
            (format!("{MINIMAL}[relay]\nserver_selection = \"random\"\n"), "relay.server_selection"),
            (format!("{MINIMAL}[relay.option82]\npolicy = \"keep\"\n"), "relay.option82.policy"),
            (format!("{MINIMAL}[relay.option82]\ncolour = \"red\"\n"), "relay.option82.colour: unknown field `colour`"),
            (format!("{MINIMAL}[relay]\nserver_timeout = \"soon\"\n"), "relay.server_timeout"),
            (
                "servers = [\"10.0.0.300\"]\n[[downstream]]\ninterface = \"eth1\"\n".into(),
                "servers[0]: \"10.0.0.300\" is not an IPv4 address",
            ),
            ("servers = []\n[[downstream]]\ninterface = \"eth1\"\n".into(), "servers: at least one"),
            ("servers = [\"10.0.0.1\"]\n".into(), "downstream: at least one"),
            (
                "mode = \"cache\"\nservers = [\"10.0.0.1\"]\n[[downstream]]\ninterface = \"eth1\"\n".into(),
                "mode: \"cache\"",
            ),
            (
                format!("{MINIMAL}[[downstream]]\ninterface = \"eth1\"\n"),
                "downstream[1].interface: eth1 is listed twice",
            ),
            (
                "servers = [\"10.0.0.1\"]\n[[downstream]]\ninterface = \"eth1\"\naddress = \"x\"\n".into(),
                "downstream[0].address",
            ),
            ("servers = [\"10.0.0.1\"\n".into(), ""),
            (format!("{MINIMAL}[proxy]\nmax_age = \"9 parsecs\"\n"), "proxy.max_age"),
            (format!("{MINIMAL}[proxy]\noffer_choice = \"best\"\n"), "proxy.offer_choice"),
            (format!("{MINIMAL}[proxy]\nprobe_timeout = \"1h\"\n"), "proxy.probe_timeout: \"1h\" is out of range"),
            (format!("{MINIMAL}[proxy]\nsafe = true\n"), "proxy.safe: unknown field"),
            (format!("{MINIMAL}[control]\nsocket = \"relative.sock\"\n"), "control.socket"),
            (format!("{MINIMAL}[metrics]\nlisten = \"localhost\"\n"), "metrics.listen"),
            (format!("{MINIMAL}[store]\npath = \"clients.redb\"\n"), "store.path"),
            (format!("{MINIMAL}[store]\nmode = \"often\"\n"), "store.mode"),
            (format!("{MINIMAL}[store]\ncommit_interval = \"1ms\"\n"), "store.commit_interval"),
        ];
        for (text, expected) in cases {
            let e = error_of(&text);
            assert!(e.contains(expected), "{e:?} should contain {expected:?}");
            assert!(!e.contains('\n'), "{e:?} must be one line");
        }
    }
}
