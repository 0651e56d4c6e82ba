//! The configuration file: TOML read by serde straight into typed sections (enums,
//! `Ipv4Addr`, `Duration`, bounded counts) with `deny_unknown_fields`, then assembled into
//! a [`Settings`] model that no longer holds text to interpret.
//!
//! - **Each value is checked where it is read**: the field helpers in [`de`] parse it and
//!   check its range, and `serde_path_to_error` names the key, so every error is one line
//!   with the key, the problem and the line.
//! - **[`validate`] keeps only the rules that involve more than one value** (at least one
//!   server, nothing listed twice, the store switched on by the mode).
//! - **Every default is written once**: in the sections' `Default` impls, which take the
//!   engine's defaults from `cdra_core` (`EngineConfig::relay`, `ProxyConfig::default`)
//!   and the store's from `cdra_store`. A key left out of the file takes its default from
//!   there, and the dhcrelay command line ([`crate::dhcrelay_cli`]) fills in the same
//!   sections and runs the same [`validate`].
//!
//! Interface names are resolved later, at start-up ([`crate::daemon`]), so `cdra check`
//! works on any host.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cdra_core::config::HARD_MAX_HOPS;
use cdra_core::servers::MAX_SERVERS;
use cdra_core::{
    EngineConfig, Ipv4Net, LeasequeryConfig, Limits, Mode, OfferChoice, Option82Config, Option82Policy, PoolAssign,
    PoolConfig, ProxyConfig, Rate, ServerSelection,
};
use serde::Deserialize;

use crate::agent_id::AgentIdFormat;

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

/// Default place of the client table store (systemd's `StateDirectory=cdra`).
pub const DEFAULT_STORE_PATH: &str = "/var/lib/cdra/clients.redb";
/// `recvmmsg` batches read from UDP :67 per wake-up before everything else gets its turn
/// (`relay.receive_batches`).
pub const DEFAULT_RECEIVE_BATCHES: usize = 4;
/// First retry after the store failed to open (`store.retry_interval`).
pub const DEFAULT_STORE_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait between two attempts to open the store (`store.retry_max_interval`).
pub const DEFAULT_STORE_RETRY_MAX_INTERVAL: Duration = Duration::from_secs(300);
/// Connections open at once to the metrics endpoint and to the control socket, each
/// (`metrics.max_connections`, `control.max_connections`).
pub const DEFAULT_MANAGEMENT_CONNECTIONS: usize = 8;
/// Longest wait for a management request, and for progress while answering it
/// (`metrics.timeout`, `control.timeout`).
pub const DEFAULT_MANAGEMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Table slots the loop walks per `cdra cache list` query (`control.list_chunk`).
pub const DEFAULT_LIST_CHUNK: usize = 1024;

/// A user name (`user`): what `getpwnam` accepts, checked only for shape here.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct UserName(pub String);

impl TryFrom<String> for UserName {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        let ok = !name.is_empty()
            && name.len() <= 32
            && !name.starts_with('-')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$'));
        if !ok {
            return Err(format!("{name:?} is not a user name"));
        }
        Ok(UserName(name))
    }
}

/// Smallest `relay.max_packet_size` (RFC 2131 2: a client must accept 576-byte messages).
pub const MIN_PACKET_SIZE: usize = 576;
/// Largest `relay.max_packet_size`.
pub const MAX_PACKET_SIZE: usize = 4096;

// What a configuration may ask the process to hold, knob by knob (issue 10: a configuration
// asking for a million held replies preallocated 4 GiB). Each cap is far above what a
// branch router needs and keeps the worst case of its structure under about 1 GiB.

/// Most `proxy.max_clients` (~0.5 KiB each, grown as clients come).
pub const MAX_CLIENTS: usize = 2_000_000;
/// Most `proxy.max_pending_probes`.
pub const MAX_PENDING_PROBES: usize = 65_536;
/// Most `proxy.max_held_replies` (4 KiB each, allocated at start-up: 64 MiB).
pub const MAX_HELD_REPLIES: usize = 16_384;
/// Most `proxy.max_offer_windows`.
pub const MAX_OFFER_WINDOWS: usize = 65_536;
/// Most `limits.reply_templates`.
pub const MAX_REPLY_TEMPLATES: usize = 1_000_000;
/// Most `limits.pending_clients`.
pub const MAX_PENDING_CLIENTS: usize = 1_000_000;
/// Most `limits.transactions` (and `proxy.max_tracked_requests`).
pub const MAX_TRANSACTIONS: usize = 1_048_576;

// ---------------------------------------------------------------- the spellings of the enums

/// `mode`: `"relay"`, `"proxy"`, `"spoof"` or `"pool"`.
#[derive(Deserialize)]
#[serde(remote = "Mode", rename_all = "snake_case")]
enum ModeName {
    Relay,
    Proxy,
    Spoof,
    Pool,
}

/// `pool.assign`: `"outage"` or `"always"`.
#[derive(Deserialize)]
#[serde(remote = "PoolAssign", rename_all = "snake_case")]
enum PoolAssignName {
    Outage,
    Always,
}

/// `relay.server_selection`: `"all"` or `"failover"`.
#[derive(Deserialize)]
#[serde(remote = "ServerSelection", rename_all = "snake_case")]
enum ServerSelectionName {
    All,
    Failover,
}

/// `relay.option82.policy`: `"forward"`, `"replace"` or `"drop"`.
#[derive(Deserialize)]
#[serde(remote = "Option82Policy", rename_all = "snake_case")]
enum Option82PolicyName {
    Forward,
    Replace,
    Drop,
}

/// `proxy.offer_choice`: `"first"`, `"longest_lease"` or `"spread"`.
#[derive(Deserialize)]
#[serde(remote = "OfferChoice", rename_all = "snake_case")]
enum OfferChoiceName {
    First,
    LongestLease,
    Spread,
}

/// `proxy.icmp_probe`: `"auto"` or `"always"`.
#[derive(Deserialize)]
#[serde(remote = "cdra_core::IcmpProbe", rename_all = "snake_case")]
enum IcmpProbeName {
    Auto,
    Always,
}

/// `store.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StoreMode {
    /// `"group_commit"`: a writer thread commits changes every `commit_interval`.
    #[default]
    GroupCommit,
    /// `"dump"`: the paper's whole-table dump every `dump_interval`.
    Dump,
}

/// `store.backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StoreBackendName {
    /// `"redb"`: the embedded file at `store.path`.
    #[default]
    Redb,
    /// `"redis"`: a hash in the Redis (or Valkey) at `store.url`, shareable by a pair.
    Redis,
}

// ---------------------------------------------------------------- values checked on their own

/// A DHCP server address: an IPv4 unicast address that is not loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct ServerAddr(pub Ipv4Addr);

impl TryFrom<String> for ServerAddr {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let addr = de::ipv4(&text)?;
        if addr.is_unspecified() || addr.is_broadcast() || addr.is_multicast() || addr.is_loopback() {
            return Err(format!("{addr} cannot be a DHCP server address"));
        }
        Ok(ServerAddr(addr))
    }
}

/// A network interface name (1 to 15 bytes, the kernel's IFNAMSIZ less the NUL).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct InterfaceName(pub String);

impl TryFrom<String> for InterfaceName {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        if name.is_empty() || name.len() > 15 {
            return Err(format!("{name:?} is not an interface name"));
        }
        Ok(InterfaceName(name))
    }
}

/// Field helpers for `#[serde(deserialize_with = ..)]`: each reads one value, checks it
/// and says in one line what is wrong (the caller's `serde_path_to_error` adds the key).
/// Ranges are given as const parameters, durations in milliseconds.
pub(crate) mod de {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::path::PathBuf;
    use std::time::Duration;

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer};

    /// One second, in the milliseconds duration ranges are given in.
    pub const SEC: u64 = 1000;
    /// One minute.
    pub const MIN: u64 = 60 * SEC;
    /// One hour.
    pub const HOUR: u64 = 60 * MIN;
    /// One day.
    pub const DAY: u64 = 24 * HOUR;

    /// "10.0.0.1" as an address.
    pub fn ipv4(text: &str) -> Result<Ipv4Addr, String> {
        text.trim().parse().map_err(|_| format!("{text:?} is not an IPv4 address"))
    }

    /// A duration in humantime's syntax: "500ms", "30s", "10m", "1h", "9d".
    pub fn parse_duration(text: &str) -> Result<Duration, String> {
        humantime::parse_duration(text.trim())
            .map_err(|e| format!("{text:?} is not a duration like \"30s\", \"10m\" or \"9d\" ({e})"))
    }

    /// `ms` in the largest unit that divides it ("10ms", "10s", "1h", "365d").
    fn show_ms(ms: u64) -> String {
        for (unit, name) in [(DAY, "d"), (HOUR, "h"), (MIN, "m"), (SEC, "s")] {
            if ms >= unit && ms.is_multiple_of(unit) {
                return format!("{}{name}", ms / unit);
            }
        }
        format!("{ms}ms")
    }

    fn duration_within(text: &str, min_ms: u64, max_ms: u64) -> Result<Duration, String> {
        let d = parse_duration(text)?;
        if d < Duration::from_millis(min_ms) || d > Duration::from_millis(max_ms) {
            return Err(format!("{text:?} is out of range {}..={}", show_ms(min_ms), show_ms(max_ms)));
        }
        Ok(d)
    }

    /// A duration in `MIN_MS..=MAX_MS` milliseconds.
    pub fn duration<'de, D: Deserializer<'de>, const MIN_MS: u64, const MAX_MS: u64>(
        d: D,
    ) -> Result<Duration, D::Error> {
        duration_within(&String::deserialize(d)?, MIN_MS, MAX_MS).map_err(D::Error::custom)
    }

    /// An optional duration (given: in `MIN_MS..=MAX_MS` milliseconds).
    pub fn some_duration<'de, D: Deserializer<'de>, const MIN_MS: u64, const MAX_MS: u64>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        duration::<D, MIN_MS, MAX_MS>(d).map(Some)
    }

    /// Zero ("0s": off), or a duration in `MIN_MS..=MAX_MS` milliseconds.
    pub fn zero_or_duration<'de, D: Deserializer<'de>, const MIN_MS: u64, const MAX_MS: u64>(
        d: D,
    ) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        match parse_duration(&text).map_err(D::Error::custom)? {
            zero if zero.is_zero() => Ok(zero),
            _ => duration_within(&text, MIN_MS, MAX_MS).map_err(D::Error::custom),
        }
    }

    /// An optional integer in `MIN..=MAX`.
    pub fn some_int_in<'de, D: Deserializer<'de>, const MIN: usize, const MAX: usize>(
        d: D,
    ) -> Result<Option<usize>, D::Error> {
        int_in::<D, MIN, MAX>(d).map(Some)
    }

    /// An integer in `MIN..=MAX`.
    pub fn int_in<'de, D: Deserializer<'de>, const MIN: usize, const MAX: usize>(d: D) -> Result<usize, D::Error> {
        let n = i64::deserialize(d)?;
        match usize::try_from(n) {
            Ok(v) if (MIN..=MAX).contains(&v) => Ok(v),
            _ => Err(D::Error::custom(format!("{n} is out of range {MIN}..={MAX}"))),
        }
    }

    /// `relay.max_hops`: 1..=16.
    pub fn hops<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
        let max = super::HARD_MAX_HOPS;
        let n = i64::deserialize(d)?;
        match u8::try_from(n) {
            Ok(h) if (1..=max).contains(&h) => Ok(h),
            _ => Err(D::Error::custom(format!("{n} is out of range 1..={max} (RFC 1542 4.1.1 caps hops at 16)"))),
        }
    }

    /// `leasequery.subnets`: "10.0.0.0/24" each, a prefix of 16 to 32 bits (a sweep asks
    /// about every address: a /16 is 65,534 queries).
    pub fn subnets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<cdra_core::Ipv4Net>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        let mut out = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            let parsed = text.trim().split_once('/').and_then(|(a, p)| Some((ipv4(a).ok()?, p.parse::<u8>().ok()?)));
            match parsed {
                Some((addr, prefix_len)) if (16..=32).contains(&prefix_len) => {
                    out.push(cdra_core::Ipv4Net { addr, prefix_len })
                }
                _ => {
                    return Err(D::Error::custom(format!(
                        "[{i}] {text:?} is not a subnet like \"10.0.0.0/24\" with a prefix of 16 to 32 bits"
                    )))
                }
            }
        }
        Ok(out)
    }

    /// An optional IPv4 address.
    pub fn opt_ipv4<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Ipv4Addr>, D::Error> {
        ipv4(&String::deserialize(d)?).map(Some).map_err(D::Error::custom)
    }

    /// A circuit-id or remote-id in the format language ([`crate::agent_id`]).
    pub fn opt_agent_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<crate::agent_id::AgentIdFormat>, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Err(D::Error::custom("must be 1 to 255 bytes long, not 0"));
        }
        crate::agent_id::AgentIdFormat::parse(&text).map(Some).map_err(D::Error::custom)
    }

    /// `relay.source_port`: a UDP port other than the DHCP ports 67 and 68.
    pub fn some_source_port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
        let n = i64::deserialize(d)?;
        match u16::try_from(n) {
            Ok(67) => Err(D::Error::custom("67 is the port cdra sends from anyway: leave source_port out")),
            Ok(68) => Err(D::Error::custom("68 is the DHCP client port")),
            Ok(p) if p > 0 => Ok(Some(p)),
            _ => Err(D::Error::custom(format!("{n} is out of range 1..=65535"))),
        }
    }

    /// An absolute path; `""` means none.
    pub fn opt_absolute_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        match String::deserialize(d)? {
            p if p.is_empty() => Ok(None),
            p if p.starts_with('/') => Ok(Some(PathBuf::from(p))),
            p => Err(D::Error::custom(format!("{p:?} must be an absolute path"))),
        }
    }

    /// `ADDR:PORT`; `""` means none.
    pub fn opt_socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        match String::deserialize(d)? {
            a if a.is_empty() => Ok(None),
            a => a
                .parse()
                .map(Some)
                .map_err(|_| D::Error::custom(format!("{a:?} is not an address:port like \"127.0.0.1:9167\""))),
        }
    }
}

use de::{DAY, HOUR, SEC};

// ---------------------------------------------------------------- the sections of the file

/// The whole file. A missing key takes its section's default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileConfig {
    #[serde(with = "ModeName")]
    pub mode: Mode,
    /// Run as this user once the sockets are open.
    pub user: Option<UserName>,
    pub servers: Vec<ServerAddr>,
    pub downstream: Vec<FileDownstream>,
    pub upstream: Vec<FileUpstream>,
    pub relay: FileRelay,
    pub proxy: FileProxy,
    pub limits: FileLimits,
    pub pool: FilePool,
    pub leasequery: FileLeasequery,
    pub control: FileControl,
    pub metrics: FileMetrics,
    pub store: FileStore,
    pub log: FileLog,
    pub ha: FileHa,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            mode: Mode::Relay,
            user: None,
            servers: Vec::new(),
            downstream: Vec::new(),
            upstream: Vec::new(),
            relay: FileRelay::default(),
            proxy: FileProxy::default(),
            limits: FileLimits::default(),
            pool: FilePool::default(),
            leasequery: FileLeasequery::default(),
            control: FileControl::default(),
            metrics: FileMetrics::default(),
            store: FileStore::default(),
            log: FileLog::default(),
            ha: FileHa::default(),
        }
    }
}

/// `[[downstream]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileDownstream {
    pub interface: InterfaceName,
    /// Default: the interface's first address.
    #[serde(default, deserialize_with = "de::opt_ipv4")]
    pub address: Option<Ipv4Addr>,
    /// Default: the interface name. The format language of [`crate::agent_id`].
    #[serde(default, deserialize_with = "de::opt_agent_id")]
    pub circuit_id: Option<AgentIdFormat>,
    /// Default: `relay.option82.remote_id`.
    #[serde(default, deserialize_with = "de::opt_agent_id")]
    pub remote_id: Option<AgentIdFormat>,
    /// giaddr from this interface's address, the link selection sub-option naming ours.
    #[serde(default)]
    pub source_interface: Option<InterfaceName>,
    #[serde(default)]
    pub trusted: bool,
}

impl FileDownstream {
    /// An interface with every other key at its default.
    pub fn named(interface: InterfaceName) -> Self {
        FileDownstream {
            interface,
            address: None,
            circuit_id: None,
            remote_id: None,
            source_interface: None,
            trusted: false,
        }
    }
}

/// `[[upstream]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileUpstream {
    pub interface: InterfaceName,
    /// The VRF device the servers are reached through.
    #[serde(default)]
    pub vrf: Option<InterfaceName>,
}

/// `[relay]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileRelay {
    #[serde(deserialize_with = "de::hops")]
    pub max_hops: u8,
    #[serde(with = "ServerSelectionName")]
    pub server_selection: ServerSelection,
    #[serde(deserialize_with = "de::int_in::<_, MIN_PACKET_SIZE, MAX_PACKET_SIZE>")]
    pub max_packet_size: usize,
    #[serde(deserialize_with = "de::duration::<_, SEC, HOUR>")]
    pub server_timeout: Duration,
    #[serde(deserialize_with = "de::int_in::<_, 1, 1024>")]
    pub receive_batches: usize,
    /// RFC 8357: first-hop requests leave from this port.
    #[serde(deserialize_with = "de::some_source_port")]
    pub source_port: Option<u16>,
    pub option82: FileOption82,
}

impl Default for FileRelay {
    fn default() -> Self {
        let engine = EngineConfig::relay(Vec::new(), Vec::new(), Vec::new());
        FileRelay {
            max_hops: engine.max_hops,
            server_selection: engine.server_selection,
            max_packet_size: engine.max_packet_size,
            server_timeout: engine.server_timeout,
            receive_batches: DEFAULT_RECEIVE_BATCHES,
            source_port: None,
            option82: FileOption82::default(),
        }
    }
}

/// `[relay.option82]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileOption82 {
    pub insert: bool,
    /// The format language of [`crate::agent_id`], expanded per downstream interface.
    #[serde(deserialize_with = "de::opt_agent_id")]
    pub remote_id: Option<AgentIdFormat>,
    #[serde(with = "Option82PolicyName")]
    pub policy: Option82Policy,
    pub link_selection: bool,
    pub server_id_override: bool,
    pub vss: bool,
    pub flags: bool,
}

impl Default for FileOption82 {
    fn default() -> Self {
        let Option82Config { insert, remote_id: _, policy, link_selection, server_id_override, vss, flags } =
            Option82Config::default();
        FileOption82 { insert, remote_id: None, policy, link_selection, server_id_override, vss, flags }
    }
}

impl FileOption82 {
    /// The engine's settings; the remote-id is expanded per interface instead
    /// ([`cdra_core::Downstream::remote_id`]), so the engine's global one stays empty.
    fn engine(&self) -> Option82Config {
        let FileOption82 { insert, remote_id: _, policy, link_selection, server_id_override, vss, flags } = *self;
        Option82Config { insert, remote_id: None, policy, link_selection, server_id_override, vss, flags }
    }
}

/// `[proxy]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileProxy {
    pub safe_network: bool,
    #[serde(deserialize_with = "de::duration::<_, { 60 * SEC }, { 365 * DAY }>")]
    pub max_age: Duration,
    #[serde(with = "OfferChoiceName")]
    pub offer_choice: OfferChoice,
    #[serde(deserialize_with = "de::duration::<_, 10, { 10 * SEC }>")]
    pub offer_window: Duration,
    #[serde(deserialize_with = "de::duration::<_, 10, { 10 * SEC }>")]
    pub probe_timeout: Duration,
    #[serde(with = "IcmpProbeName")]
    pub icmp_probe: cdra_core::IcmpProbe,
    /// Each bound record takes ~0.5 KiB, grown as clients come.
    #[serde(deserialize_with = "de::int_in::<_, 1, MAX_CLIENTS>")]
    pub max_clients: usize,
    /// Each probe in flight keeps the request it answers (about 640 bytes in all with a
    /// 300-byte request, crates/core/examples/probe_memory.rs; up to 4.6 KiB).
    #[serde(deserialize_with = "de::int_in::<_, 1, MAX_PENDING_PROBES>")]
    pub max_pending_probes: usize,
    /// The earlier name of `[limits] transactions`, kept with its meaning.
    #[serde(deserialize_with = "de::some_int_in::<_, 1, MAX_TRANSACTIONS>")]
    pub max_tracked_requests: Option<usize>,
    /// Each held reply has a 4 KiB buffer, allocated at start-up.
    #[serde(deserialize_with = "de::int_in::<_, 1, MAX_HELD_REPLIES>")]
    pub max_held_replies: usize,
    /// Each offer window keeps the best OFFER so far (up to 4 KiB).
    #[serde(deserialize_with = "de::int_in::<_, 1, MAX_OFFER_WINDOWS>")]
    pub max_offer_windows: usize,
    #[serde(deserialize_with = "de::some_duration::<_, { 10 * SEC }, { 365 * DAY }>")]
    pub client_lease: Option<Duration>,
    #[serde(deserialize_with = "de::zero_or_duration::<_, 1, 500>")]
    pub renew_reply_delay: Duration,
}

impl Default for FileProxy {
    fn default() -> Self {
        let d = ProxyConfig::default();
        FileProxy {
            safe_network: d.safe_network,
            max_age: d.max_age,
            offer_choice: d.offer_choice,
            offer_window: d.offer_window,
            probe_timeout: d.probe_timeout,
            icmp_probe: d.icmp_probe,
            max_clients: d.max_clients,
            max_pending_probes: d.max_pending_probes,
            max_tracked_requests: None,
            max_held_replies: d.max_held_replies,
            max_offer_windows: d.max_offer_windows,
            client_lease: d.client_lease,
            renew_reply_delay: d.renew_reply_delay,
        }
    }
}

impl From<FileProxy> for ProxyConfig {
    fn from(p: FileProxy) -> Self {
        ProxyConfig {
            safe_network: p.safe_network,
            max_age: p.max_age,
            offer_choice: p.offer_choice,
            offer_window: p.offer_window,
            probe_timeout: p.probe_timeout,
            icmp_probe: p.icmp_probe,
            max_clients: p.max_clients,
            max_pending_probes: p.max_pending_probes,
            max_held_replies: p.max_held_replies,
            max_offer_windows: p.max_offer_windows,
            client_lease: p.client_lease,
            renew_reply_delay: p.renew_reply_delay,
            // Not settable from the file.
            ..ProxyConfig::default()
        }
    }
}

/// `[limits]`: rate limits and the bounds that apply in every mode (`cdra_core::limits`,
/// `cdra_core::transactions`). A rate of 0 turns that limit off.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileLimits {
    #[serde(deserialize_with = "de::int_in::<_, 0, 1_000_000>")]
    pub client_rate: usize,
    /// Default: `CLIENT_BURST_SECONDS` of `client_rate`.
    #[serde(deserialize_with = "de::some_int_in::<_, 1, 1_000_000>")]
    pub client_burst: Option<usize>,
    #[serde(deserialize_with = "de::int_in::<_, 0, 10_000_000>")]
    pub interface_rate: usize,
    /// Default: `INTERFACE_BURST_SECONDS` of `interface_rate`.
    #[serde(deserialize_with = "de::some_int_in::<_, 1, 10_000_000>")]
    pub interface_burst: Option<usize>,
    /// Each pending record takes ~0.2 KiB.
    #[serde(deserialize_with = "de::int_in::<_, 1, MAX_PENDING_CLIENTS>")]
    pub pending_clients: usize,
    /// Each outstanding request takes ~0.1-0.2 KiB (its filing, 112 bytes, and the one a
    /// retransmission leaves behind until compacted).
    #[serde(deserialize_with = "de::some_int_in::<_, 1, MAX_TRANSACTIONS>")]
    pub transactions: Option<usize>,
    #[serde(deserialize_with = "de::duration::<_, SEC, { 10 * 60 * SEC }>")]
    pub reply_timeout: Duration,
    /// Each shared reply template takes ~0.3 KiB (paper 5.7, `cdra_core::templates`).
    #[serde(deserialize_with = "de::int_in::<_, 1, MAX_REPLY_TEMPLATES>")]
    pub reply_templates: usize,
}

impl Default for FileLimits {
    fn default() -> Self {
        let d = Limits::default();
        FileLimits {
            client_rate: d.client_rate.per_second as usize,
            client_burst: None,
            interface_rate: d.interface_rate.per_second as usize,
            interface_burst: None,
            pending_clients: d.pending_clients,
            transactions: None,
            reply_timeout: d.reply_timeout,
            reply_templates: d.reply_templates,
        }
    }
}

/// `[pool]` (pool mode, paper 4.3).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FilePool {
    /// Free addresses kept leased per downstream interface.
    #[serde(deserialize_with = "de::int_in::<_, 0, 1024>")]
    pub size: usize,
    #[serde(with = "PoolAssignName")]
    pub assign: PoolAssign,
    #[serde(deserialize_with = "de::duration::<_, 100, { 60 * SEC }>")]
    pub fallback_after: Duration,
    #[serde(deserialize_with = "de::duration::<_, { 10 * SEC }, DAY>")]
    pub client_lease: Duration,
}

impl Default for FilePool {
    fn default() -> Self {
        let PoolConfig { size, assign, fallback_after, client_lease } = PoolConfig::default();
        FilePool { size, assign, fallback_after, client_lease }
    }
}

impl From<FilePool> for PoolConfig {
    fn from(p: FilePool) -> Self {
        let FilePool { size, assign, fallback_after, client_lease } = p;
        PoolConfig { size, assign, fallback_after, client_lease }
    }
}

/// `[leasequery]` (RFC 4388; caching modes).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileLeasequery {
    pub enabled: bool,
    /// Queries per second.
    #[serde(deserialize_with = "de::int_in::<_, 1, 10_000>")]
    pub rate: usize,
    /// CIDR subnets; empty: every downstream interface's own.
    #[serde(deserialize_with = "de::subnets")]
    pub subnets: Vec<Ipv4Net>,
    #[serde(deserialize_with = "de::int_in::<_, 1, 65_536>")]
    pub max_outstanding: usize,
    #[serde(deserialize_with = "de::duration::<_, 100, { 60 * SEC }>")]
    pub query_timeout: Duration,
    #[serde(deserialize_with = "de::int_in::<_, 1, 1000>")]
    pub unanswered_limit: usize,
}

impl Default for FileLeasequery {
    fn default() -> Self {
        let LeasequeryConfig { enabled, rate, subnets, max_outstanding, query_timeout, unanswered_limit } =
            LeasequeryConfig::default();
        FileLeasequery {
            enabled,
            rate: rate as usize,
            subnets,
            max_outstanding,
            query_timeout,
            unanswered_limit: unanswered_limit as usize,
        }
    }
}

impl From<FileLeasequery> for LeasequeryConfig {
    fn from(l: FileLeasequery) -> Self {
        let FileLeasequery { enabled, rate, subnets, max_outstanding, query_timeout, unanswered_limit } = l;
        LeasequeryConfig {
            enabled,
            rate: rate as u32,
            subnets,
            max_outstanding,
            query_timeout,
            unanswered_limit: unanswered_limit as u32,
        }
    }
}

/// `limits.client_burst` when not given: this many seconds of `client_rate`.
pub const CLIENT_BURST_SECONDS: usize = 3;
/// `limits.interface_burst` when not given: this many seconds of `interface_rate`.
pub const INTERFACE_BURST_SECONDS: usize = 5;

/// `[limits]` with `[proxy] max_tracked_requests`, the earlier name of `transactions`.
fn limits(l: FileLimits, max_tracked_requests: Option<usize>) -> Result<Limits, ConfigError> {
    let transactions = match (l.transactions, max_tracked_requests) {
        (Some(a), Some(b)) if a != b => {
            return Err(err(
                "proxy.max_tracked_requests",
                format!("{b} contradicts limits.transactions = {a} (the same setting; keep one)"),
            ))
        }
        (Some(n), _) | (None, Some(n)) => n,
        (None, None) => Limits::default().transactions,
    };
    // A burst not given is a few seconds of the rate, so that setting a rate alone scales
    // both (the defaults: 10/s with 30, 1000/s with 5000).
    let rate = |per_second: usize, burst: Option<usize>, seconds: usize| Rate {
        per_second: per_second as u32,
        burst: burst.unwrap_or((per_second * seconds).max(1)).min(u32::MAX as usize) as u32,
    };
    Ok(Limits {
        client_rate: rate(l.client_rate, l.client_burst, CLIENT_BURST_SECONDS),
        interface_rate: rate(l.interface_rate, l.interface_burst, INTERFACE_BURST_SECONDS),
        pending_clients: l.pending_clients,
        transactions,
        reply_timeout: l.reply_timeout,
        reply_templates: l.reply_templates,
    })
}

/// `[control]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileControl {
    #[serde(deserialize_with = "de::opt_absolute_path")]
    pub socket: Option<PathBuf>,
    #[serde(deserialize_with = "de::int_in::<_, 1, 1024>")]
    pub max_connections: usize,
    #[serde(deserialize_with = "de::duration::<_, 100, HOUR>")]
    pub timeout: Duration,
    #[serde(deserialize_with = "de::int_in::<_, 1, 1_000_000>")]
    pub list_chunk: usize,
}

impl Default for FileControl {
    fn default() -> Self {
        FileControl {
            socket: None,
            max_connections: DEFAULT_MANAGEMENT_CONNECTIONS,
            timeout: DEFAULT_MANAGEMENT_TIMEOUT,
            list_chunk: DEFAULT_LIST_CHUNK,
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileMetrics {
    #[serde(deserialize_with = "de::opt_socket_addr")]
    pub listen: Option<SocketAddr>,
    #[serde(deserialize_with = "de::int_in::<_, 1, 1024>")]
    pub max_connections: usize,
    #[serde(deserialize_with = "de::duration::<_, 100, HOUR>")]
    pub timeout: Duration,
}

impl Default for FileMetrics {
    fn default() -> Self {
        FileMetrics {
            listen: None,
            max_connections: DEFAULT_MANAGEMENT_CONNECTIONS,
            timeout: DEFAULT_MANAGEMENT_TIMEOUT,
        }
    }
}

/// `[log] events`: the per-client event log's format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventFormat {
    /// `"off"` (the default): no event log.
    #[default]
    Off,
    /// `"json"`: one JSON object a line (JSON lines).
    Json,
    /// `"text"`: one `key=value` line each.
    Text,
}

/// Default `[log] events_queue`: events kept between two turns of the loop.
pub const DEFAULT_EVENTS_QUEUE: usize = 4096;

/// `[log]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileLog {
    pub events: EventFormat,
    #[serde(deserialize_with = "de::int_in::<_, 16, 1_000_000>")]
    pub events_queue: usize,
}

impl Default for FileLog {
    fn default() -> Self {
        FileLog { events: EventFormat::Off, events_queue: DEFAULT_EVENTS_QUEUE }
    }
}

/// The per-client event log (`[log]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLogSettings {
    /// Its format, or off.
    pub format: EventFormat,
    /// Events queued in the engine between two turns of the loop (more are dropped and
    /// counted).
    pub queue: usize,
}

/// `[store]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileStore {
    /// Default: on in proxy mode, off in relay mode.
    pub enabled: Option<bool>,
    /// `""` turns the store off.
    #[serde(deserialize_with = "de::opt_absolute_path")]
    pub path: Option<PathBuf>,
    pub mode: StoreMode,
    #[serde(deserialize_with = "de::duration::<_, 10, { 60 * SEC }>")]
    pub commit_interval: Duration,
    #[serde(deserialize_with = "de::duration::<_, SEC, DAY>")]
    pub dump_interval: Duration,
    #[serde(deserialize_with = "de::duration::<_, 100, HOUR>")]
    pub retry_interval: Duration,
    #[serde(deserialize_with = "de::duration::<_, SEC, DAY>")]
    pub retry_max_interval: Duration,
    pub backend: StoreBackendName,
    /// The Redis URL (`backend = "redis"`).
    pub url: Option<String>,
    pub key_prefix: String,
    #[serde(deserialize_with = "de::duration::<_, 10, { 60 * SEC }>")]
    pub timeout: Duration,
}

/// `[ha]`: one of a pair of relays sharing the table in Redis.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileHa {
    /// Active while this address is on one of this host's interfaces.
    #[serde(deserialize_with = "de::opt_ipv4")]
    pub virtual_address: Option<Ipv4Addr>,
    /// Without a virtual address: how long the lease in Redis lasts without renewal.
    #[serde(deserialize_with = "de::some_duration::<_, { SEC }, { 60 * SEC }>")]
    pub lease: Option<Duration>,
}

impl Default for FileStore {
    fn default() -> Self {
        FileStore {
            enabled: None,
            path: Some(PathBuf::from(DEFAULT_STORE_PATH)),
            mode: StoreMode::default(),
            commit_interval: cdra_store::StoreConfig::DEFAULT_COMMIT_INTERVAL,
            dump_interval: cdra_store::WriteMode::DEFAULT_DUMP_INTERVAL,
            retry_interval: DEFAULT_STORE_RETRY_INTERVAL,
            retry_max_interval: DEFAULT_STORE_RETRY_MAX_INTERVAL,
            backend: StoreBackendName::default(),
            url: None,
            key_prefix: cdra_store::RedisConfig::DEFAULT_KEY_PREFIX.to_string(),
            timeout: cdra_store::RedisConfig::DEFAULT_TIMEOUT,
        }
    }
}

// ---------------------------------------------------------------- the model the daemon runs

/// A downstream interface as configured (not yet resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownstreamSettings {
    /// Interface name.
    pub interface: String,
    /// Address to use as giaddr (must be on the interface); default its first address.
    pub address: Option<Ipv4Addr>,
    /// Circuit-id; default the interface name.
    pub circuit_id: Option<AgentIdFormat>,
    /// Remote-id; default `relay.option82.remote_id`.
    pub remote_id: Option<AgentIdFormat>,
    /// The interface whose address goes into giaddr (its link named by link selection).
    pub source_interface: Option<String>,
    /// RFC 3046 2.1 trusted circuit.
    pub trusted: bool,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Relay, proxy or spoof.
    pub mode: Mode,
    /// Servers in order of preference.
    pub servers: Vec<Ipv4Addr>,
    /// Client-facing interfaces.
    pub downstream: Vec<DownstreamSettings>,
    /// Server-facing interfaces.
    pub upstream: Vec<String>,
    /// The VRF device the servers are reached through (`[[upstream]] vrf`), if any.
    pub server_vrf: Option<String>,
    /// RFC 8357 relay source port (`relay.source_port`), if any.
    pub source_port: Option<u16>,
    /// The remote-id for interfaces without their own (`relay.option82.remote_id`).
    pub remote_id: Option<AgentIdFormat>,
    /// Hop limit.
    pub max_hops: u8,
    /// Server selection.
    pub server_selection: ServerSelection,
    /// Largest payload sent to a server once option 82 is added.
    pub max_packet_size: usize,
    /// A server not answering for this long is down.
    pub server_timeout: Duration,
    /// `recvmmsg` batches read per wake-up before timers, probe answers, the control and
    /// metrics sockets, the store and signals are served.
    pub receive_batches: usize,
    /// Option 82.
    pub option82: Option82Config,
    /// Proxy mode.
    pub proxy: ProxyConfig,
    /// Rate limits and bounds (every mode).
    pub limits: Limits,
    /// The address pool (pool mode).
    pub pool: PoolConfig,
    /// RFC 4388 leasequery (caching modes).
    pub leasequery: LeasequeryConfig,
    /// Control socket path (`cdra cache ...`), if any.
    pub control_socket: Option<PathBuf>,
    /// Prometheus endpoint, if any.
    pub metrics_listen: Option<SocketAddr>,
    /// Bounds of the metrics endpoint and the control socket.
    pub management: crate::management::Limits,
    /// Run as this user once the sockets are open.
    pub user: Option<String>,
    /// Persistent client table (proxy mode), if enabled.
    pub store: Option<StoreSettings>,
    /// One of a pair of relays sharing the table (`[ha]`), if configured.
    pub ha: Option<HaSettings>,
    /// The per-client event log.
    pub events: EventLogSettings,
}

/// The persistent client table.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreSettings {
    /// The store itself.
    pub config: cdra_store::StoreConfig,
    /// When the store cannot be opened, cdra runs without it and tries again after this
    /// long, then after twice as long each time...
    pub retry_interval: Duration,
    /// ... up to this long.
    pub retry_max_interval: Duration,
    /// Where the table lives: the redb file of `config.path`, or Redis.
    pub backend: StoreBackend,
}

/// Where the client table lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// The embedded redb file (`StoreSettings::config`).
    Redb,
    /// A hash in Redis (its commit interval, mode and queue those of `StoreSettings::config`).
    Redis(cdra_store::RedisConfig),
}

/// `[ha]`: this relay is one of a pair sharing its table in Redis; how it tells whether it
/// is the active one (crate::ha).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaSettings {
    /// The VRRP address: this relay is the active one (answers clients, writes the table)
    /// while the address is on one of its interfaces, the standby otherwise.
    VirtualAddress {
        /// The address.
        address: Ipv4Addr,
        /// Where it came from.
        source: HaSource,
    },
    /// No address known (Redis, no `[ha] virtual_address`, no `[[downstream]] address`):
    /// the holder of the lease `<key_prefix>:active` in Redis is the active one.
    Lease {
        /// How long the lease lasts without renewal (`[ha] lease`).
        ttl: Duration,
    },
}

/// Default `[ha] lease`.
pub const DEFAULT_HA_LEASE: Duration = Duration::from_secs(3);

impl HaSettings {
    /// The pair's virtual address, if that is what decides.
    pub fn virtual_address(&self) -> Option<Ipv4Addr> {
        match self {
            HaSettings::VirtualAddress { address, .. } => Some(*address),
            HaSettings::Lease { .. } => None,
        }
    }
}

/// Where a pair's virtual address was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaSource {
    /// `[ha] virtual_address`.
    Configured,
    /// No `[ha]`, the table in Redis: the first `[[downstream]] address` (a relay answering
    /// as an address that is elsewhere must not write the shared table).
    DownstreamAddress,
}

impl HaSource {
    /// As the log says it.
    pub fn label(self) -> &'static str {
        match self {
            HaSource::Configured => "ha.virtual_address",
            HaSource::DownstreamAddress => "the first downstream address (store.backend = \"redis\", no [ha])",
        }
    }
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

/// `key(i)` of the first item that repeats an earlier one.
fn no_repeats<T: PartialEq + std::fmt::Display>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(usize) -> String,
) -> Result<Vec<T>, ConfigError> {
    let mut seen: Vec<T> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        if seen.contains(&item) {
            return Err(err(key(i), format!("{item} is listed twice")));
        }
        seen.push(item);
    }
    Ok(seen)
}

/// The rules that involve more than one value; every single value was checked as it was
/// read.
pub(crate) fn validate(file: FileConfig) -> Result<Settings, ConfigError> {
    let FileConfig {
        mode,
        user,
        servers,
        downstream,
        upstream,
        relay,
        proxy,
        limits: file_limits,
        pool,
        leasequery,
        control,
        metrics,
        store,
        log,
        ha,
    } = file;
    if leasequery.enabled && !mode.caches() {
        return Err(err("leasequery.enabled", "refills the client table: needs a caching mode (proxy, spoof or pool)"));
    }
    let limits = limits(file_limits, proxy.max_tracked_requests)?;
    if servers.is_empty() {
        return Err(err("servers", "at least one server address is required"));
    }
    if servers.len() > MAX_SERVERS {
        return Err(err("servers", format!("at most {MAX_SERVERS} servers are supported, not {}", servers.len())));
    }
    let servers = no_repeats(servers.into_iter().map(|s| s.0), |i| format!("servers[{i}]"))?;
    if downstream.is_empty() {
        return Err(err("downstream", "at least one [[downstream]] interface is required"));
    }
    no_repeats(downstream.iter().map(|d| d.interface.0.as_str()), |i| format!("downstream[{i}].interface"))?;
    // The servers are one list, reached through one VRF: every upstream naming a VRF names
    // the same one.
    let mut server_vrf: Option<(usize, String)> = None;
    for (i, u) in upstream.iter().enumerate() {
        let Some(v) = &u.vrf else { continue };
        match &server_vrf {
            Some((first, name)) if *name != v.0 => {
                return Err(err(
                    format!("upstream[{i}].vrf"),
                    format!(
                        "{} differs from upstream[{first}].vrf = {name}: the servers are reached through one VRF",
                        v.0
                    ),
                ))
            }
            Some(_) => {}
            None => server_vrf = Some((i, v.0.clone())),
        }
    }
    let upstream = no_repeats(upstream.into_iter().map(|u| u.interface.0), |i| format!("upstream[{i}].interface"))?;
    // The link selection sub-option carries the client's link when giaddr names another
    // (RFC 3527), and the relay source port sub-option asks for the answer (RFC 8357): both
    // live in option 82.
    for (i, d) in downstream.iter().enumerate() {
        if let Some(si) = &d.source_interface {
            if !relay.option82.insert {
                return Err(err(
                    format!("downstream[{i}].source_interface"),
                    "needs relay.option82.insert = true (the link selection sub-option names the client's link)",
                ));
            }
            if si.0 == d.interface.0 {
                return Err(err(
                    format!("downstream[{i}].source_interface"),
                    format!("{} is the interface itself: leave source_interface out", si.0),
                ));
            }
        }
    }
    if relay.source_port.is_some() && !relay.option82.insert {
        return Err(err(
            "relay.source_port",
            "needs relay.option82.insert = true (the relay source port sub-option of RFC 8357 asks the server to answer there)",
        ));
    }
    let store = store_settings(store, mode)?;
    let ha = ha_settings(ha, mode, store.as_ref(), &downstream)?;
    let downstream = downstream
        .into_iter()
        .map(|d| DownstreamSettings {
            interface: d.interface.0,
            address: d.address,
            circuit_id: d.circuit_id,
            remote_id: d.remote_id,
            source_interface: d.source_interface.map(|s| s.0),
            trusted: d.trusted,
        })
        .collect();
    Ok(Settings {
        mode,
        servers,
        downstream,
        upstream,
        server_vrf: server_vrf.map(|(_, v)| v),
        source_port: relay.source_port,
        remote_id: relay.option82.remote_id.clone(),
        max_hops: relay.max_hops,
        server_selection: relay.server_selection,
        max_packet_size: relay.max_packet_size,
        server_timeout: relay.server_timeout,
        receive_batches: relay.receive_batches,
        option82: relay.option82.engine(),
        proxy: proxy.into(),
        limits,
        pool: pool.into(),
        leasequery: leasequery.into(),
        control_socket: control.socket,
        metrics_listen: metrics.listen,
        management: crate::management::Limits {
            metrics: crate::management::ChannelLimits {
                max_connections: metrics.max_connections,
                timeout: metrics.timeout,
            },
            control: crate::management::ChannelLimits {
                max_connections: control.max_connections,
                timeout: control.timeout,
            },
            list_chunk: control.list_chunk,
        },
        user: user.map(|u| u.0),
        store,
        ha,
        events: EventLogSettings { format: log.events, queue: log.events_queue },
    })
}

/// `[store]`: on by default in proxy mode; `enabled = false` or `path = ""` turns it off.
fn store_settings(f: FileStore, mode: Mode) -> Result<Option<StoreSettings>, ConfigError> {
    if f.retry_interval > f.retry_max_interval {
        return Err(err(
            "store.retry_interval",
            format!(
                "{} is longer than store.retry_max_interval ({})",
                humantime::format_duration(f.retry_interval),
                humantime::format_duration(f.retry_max_interval)
            ),
        ));
    }
    if f.backend == StoreBackendName::Redb && f.url.is_some() {
        return Err(err("store.url", "is only read with backend = \"redis\" (the redb file is store.path)"));
    }
    if f.key_prefix.is_empty() {
        return Err(err("store.key_prefix", "must not be empty"));
    }
    let path = match (f.backend, f.path) {
        (StoreBackendName::Redb, None) => return Ok(None),
        (StoreBackendName::Redb, Some(path)) => path,
        // The redb path is not used with Redis; `path = ""` does not turn Redis off.
        (StoreBackendName::Redis, path) => path.unwrap_or_else(|| PathBuf::from(DEFAULT_STORE_PATH)),
    };
    if !f.enabled.unwrap_or(mode.caches()) {
        return Ok(None);
    }
    let mut config = cdra_store::StoreConfig::new(path);
    config.commit_interval = f.commit_interval;
    config.mode = match f.mode {
        StoreMode::GroupCommit => cdra_store::WriteMode::GroupCommit,
        StoreMode::Dump => cdra_store::WriteMode::PeriodicDump { interval: f.dump_interval },
    };
    let backend = match f.backend {
        StoreBackendName::Redb => StoreBackend::Redb,
        StoreBackendName::Redis => {
            let Some(url) = f.url else {
                return Err(err(
                    "store.url",
                    "backend = \"redis\" needs the Redis URL, like \"redis://10.0.0.5:6379/0\"",
                ));
            };
            let redis = cdra_store::RedisConfig {
                url,
                key_prefix: f.key_prefix,
                timeout: f.timeout,
                commit_interval: config.commit_interval,
                mode: config.mode,
                queue_capacity: config.queue_capacity,
            };
            redis.check_url().map_err(|e| err("store.url", e))?;
            StoreBackend::Redis(redis)
        }
    };
    Ok(Some(StoreSettings {
        config,
        retry_interval: f.retry_interval,
        retry_max_interval: f.retry_max_interval,
        backend,
    }))
}

/// `[ha]`: a pair shares its table in Redis, and its clients must see the address that
/// moves; or, without an address, the lease in Redis decides.
fn ha_settings(
    f: FileHa,
    mode: Mode,
    store: Option<&StoreSettings>,
    downstream: &[FileDownstream],
) -> Result<Option<HaSettings>, ConfigError> {
    let shared = matches!(store.map(|s| &s.backend), Some(StoreBackend::Redis(_)));
    let caches = matches!(mode, Mode::Proxy | Mode::Spoof);
    if shared && mode == Mode::Pool {
        // A table in Redis is one a pair may share, and only proxy and spoof follow a role
        // (active, standby): two relays in pool mode would both answer and both write.
        return Err(err(
            "store.backend",
            "\"redis\" (a table a pair may share) needs mode = \"proxy\" or \"spoof\": pool mode keeps its table in the redb file",
        ));
    }
    let Some(address) = f.virtual_address else {
        // A relay writing a shared table as the address it answers for must not write it
        // while that address is elsewhere (another relay answers for it then): with Redis,
        // the first `[[downstream]] address` is the pair's address unless `[ha]` says.
        // Without any address, the lease in Redis says which relay is active (a relay
        // alone simply holds it).
        let implied = downstream.iter().find_map(|d| d.address);
        return match (shared && caches, implied, f.lease) {
            (true, Some(address), None) => {
                Ok(Some(HaSettings::VirtualAddress { address, source: HaSource::DownstreamAddress }))
            }
            (true, Some(address), Some(_)) => Err(err(
                "ha.lease",
                format!("the pair's address is {address} (the first [[downstream]] address): the lease is only read without one"),
            )),
            (true, None, lease) => Ok(Some(HaSettings::Lease { ttl: lease.unwrap_or(DEFAULT_HA_LEASE) })),
            (false, _, Some(_)) => Err(err("ha.lease", "a pair shares its table in Redis: set store.backend = \"redis\" and store.url (mode proxy or spoof)")),
            (false, _, None) => Ok(None),
        };
    };
    let key = "ha.virtual_address";
    if !caches {
        return Err(err(key, "a pair sharing its table needs mode = \"proxy\" or \"spoof\""));
    }
    if !shared {
        return Err(err(key, "a pair shares its table in Redis: set store.backend = \"redis\" and store.url"));
    }
    if f.lease.is_some() {
        return Err(err(
            "ha.lease",
            "is only read without ha.virtual_address (the address decides which relay is active)",
        ));
    }
    if !downstream.iter().any(|d| d.address == Some(address)) {
        return Err(err(
            key,
            format!(
                "{address} must be the address of a [[downstream]] (address = \"{address}\"): \
                 clients must see the address that moves"
            ),
        ));
    }
    Ok(Some(HaSettings::VirtualAddress { address, source: HaSource::Configured }))
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
        assert_eq!(s.limits, Limits::default());
    }

    #[test]
    fn a_pair_shares_its_table_in_redis() {
        let proxy = "mode = \"proxy\"\nservers = [\"10.0.0.1\"]\n[[downstream]]\ninterface = \"eth1\"\naddress = \"10.1.1.1\"\n";
        let redis = "[store]\nbackend = \"redis\"\nurl = \"redis://10.0.0.9:6379/0\"\n";
        let s = parse(&format!(
            "{proxy}{redis}key_prefix = \"cdra:site1\"\ntimeout = \"500ms\"\n[ha]\nvirtual_address = \"10.1.1.1\"\n"
        ))
        .expect("valid");
        let store = s.store.expect("a store");
        let StoreBackend::Redis(r) = &store.backend else { panic!("redis: {:?}", store.backend) };
        assert_eq!(
            (r.url.as_str(), r.key_prefix.as_str(), r.timeout),
            ("redis://10.0.0.9:6379/0", "cdra:site1", Duration::from_millis(500))
        );
        assert_eq!(r.commit_interval, store.config.commit_interval);
        assert_eq!(
            s.ha,
            Some(HaSettings::VirtualAddress { address: Ipv4Addr::new(10, 1, 1, 1), source: HaSource::Configured })
        );
        // The default stays the embedded file, and no pair.
        let s = parse(proxy).expect("valid");
        assert_eq!(s.store.expect("a store").backend, StoreBackend::Redb);
        assert_eq!(s.ha, None);
        // Redis without [ha]: the downstream address is the pair's; without one, no pair.
        let s = parse(&format!("{proxy}{redis}")).expect("valid");
        assert_eq!(
            s.ha,
            Some(HaSettings::VirtualAddress {
                address: Ipv4Addr::new(10, 1, 1, 1),
                source: HaSource::DownstreamAddress
            })
        );
        // Redis and no address at all: the lease in Redis decides (issue 15 item 3).
        let no_address = proxy.replace("address = \"10.1.1.1\"\n", "");
        let s = parse(&format!("{no_address}{redis}")).expect("valid");
        assert_eq!(s.ha, Some(HaSettings::Lease { ttl: DEFAULT_HA_LEASE }));
        let s = parse(&format!("{no_address}{redis}[ha]\nlease = \"1500ms\"\n")).expect("valid");
        assert_eq!(s.ha, Some(HaSettings::Lease { ttl: Duration::from_millis(1500) }));
        // Relay mode keeps no table: no pair.
        assert_eq!(parse(&format!("{}{redis}", no_address.replace("proxy", "relay"))).expect("valid").ha, None);
        for (text, want) in [
            (format!("{proxy}[store]\nbackend = \"redis\"\n"), "store.url: backend = \"redis\" needs the Redis URL"),
            (format!("{proxy}[store]\nurl = \"redis://x\"\n"), "store.url: is only read with backend = \"redis\""),
            (
                format!("{proxy}[store]\nbackend = \"redis\"\nurl = \"http://x\"\n"),
                "store.url: \"http://x\" is not a Redis URL",
            ),
            (format!("{proxy}[store]\nbackend = \"etcd\"\n"), "store.backend: unknown variant `etcd`"),
            (
                format!("{proxy}[store]\nbackend = \"redis\"\nurl = \"rediss://10.0.0.9/0\"\n"),
                "store.url: \"rediss://10.0.0.9/0\" is not a Redis URL: can't connect with TLS",
            ),
            (
                format!("{proxy}[ha]\nvirtual_address = \"10.1.1.1\"\n"),
                "ha.virtual_address: a pair shares its table in Redis",
            ),
            (
                format!("{proxy}{redis}[ha]\nvirtual_address = \"10.1.1.9\"\n"),
                "ha.virtual_address: 10.1.1.9 must be the address of a [[downstream]]",
            ),
            (
                format!("{}{redis}[ha]\nvirtual_address = \"10.1.1.1\"\n", proxy.replace("proxy", "relay")),
                "ha.virtual_address: a pair sharing its table needs mode",
            ),
            (
                format!("{proxy}{redis}[ha]\nvirtual_address = \"10.1.1.1\"\nlease = \"3s\"\n"),
                "ha.lease: is only read without ha.virtual_address",
            ),
            (format!("{proxy}{redis}[ha]\nlease = \"3s\"\n"), "ha.lease: the pair's address is 10.1.1.1"),
            (format!("{proxy}[ha]\nlease = \"3s\"\n"), "ha.lease: a pair shares its table in Redis"),
            (
                format!("{}{redis}[ha]\nlease = \"200ms\"\n", proxy.replace("address = \"10.1.1.1\"\n", "")),
                "ha.lease: ",
            ),
            (
                format!("{}{redis}", proxy.replace("mode = \"proxy\"", "mode = \"pool\"")),
                "store.backend: \"redis\" (a table a pair may share) needs mode",
            ),
            (format!("{}{redis}[ha]\nlease = \"61s\"\n", proxy.replace("address = \"10.1.1.1\"\n", "")), "ha.lease: "),
        ] {
            let e = parse(&text).expect_err("must be rejected").to_string();
            assert!(e.starts_with(want), "{e}\nwanted: {want}");
        }
    }

    #[test]
    fn the_event_log_is_off_by_default_and_named_by_its_format() {
        let s = parse(MINIMAL).expect("valid");
        assert_eq!(s.events, EventLogSettings { format: EventFormat::Off, queue: DEFAULT_EVENTS_QUEUE });
        let s = parse(&format!("{MINIMAL}[log]\nevents = \"json\"\nevents_queue = 100\n")).expect("valid");
        assert_eq!(s.events, EventLogSettings { format: EventFormat::Json, queue: 100 });
        let s = parse(&format!("{MINIMAL}[log]\nevents = \"text\"\n")).expect("valid");
        assert_eq!(s.events.format, EventFormat::Text);
        let e = parse(&format!("{MINIMAL}[log]\nevents = \"yaml\"\n")).expect_err("invalid");
        assert_eq!(e.key, "log.events", "{e}");
        let e = parse(&format!("{MINIMAL}[log]\nevents_queue = 1\n")).expect_err("invalid");
        assert_eq!(e.key, "log.events_queue", "{e}");
    }

    #[test]
    fn limits_are_read_and_the_old_name_of_transactions_still_works() {
        let text = format!(
            "{MINIMAL}[limits]\nclient_rate = 0\ninterface_rate = 50\ninterface_burst = 100\npending_clients = 512\nreply_timeout = \"10s\"\nreply_templates = 100\n"
        );
        let s = parse(&text).expect("valid");
        assert_eq!(s.limits.client_rate, Rate::UNLIMITED.with_burst(1));
        assert_eq!(s.limits.interface_rate, Rate { per_second: 50, burst: 100 });
        assert_eq!(s.limits.pending_clients, 512);
        assert_eq!(s.limits.reply_templates, 100);
        assert_eq!(s.limits.reply_timeout, Duration::from_secs(10));
        // A rate alone brings its burst along; the defaults are consistent with that.
        let scaled = parse(&format!("{MINIMAL}[limits]\ninterface_rate = 20\nclient_rate = 4\n")).expect("valid");
        assert_eq!(scaled.limits.interface_rate, Rate { per_second: 20, burst: 100 });
        assert_eq!(scaled.limits.client_rate, Rate { per_second: 4, burst: 12 });
        let d = Limits::default();
        assert_eq!(d.interface_rate.burst as usize, d.interface_rate.per_second as usize * INTERFACE_BURST_SECONDS);
        assert_eq!(d.client_rate.burst as usize, d.client_rate.per_second as usize * CLIENT_BURST_SECONDS);
        let old = parse(&format!("{MINIMAL}[proxy]\nmax_tracked_requests = 1000\n")).expect("valid");
        assert_eq!(old.limits.transactions, 1000);
        let both = parse(&format!("{MINIMAL}[proxy]\nmax_tracked_requests = 1000\n[limits]\ntransactions = 1000\n"));
        assert_eq!(both.expect("the same value twice is fine").limits.transactions, 1000);
    }

    #[test]
    fn user_and_management_bounds() {
        let s = parse(MINIMAL).expect("valid");
        assert_eq!(s.user, None);
        let ch = crate::management::ChannelLimits {
            max_connections: DEFAULT_MANAGEMENT_CONNECTIONS,
            timeout: DEFAULT_MANAGEMENT_TIMEOUT,
        };
        assert_eq!(
            s.management,
            crate::management::Limits { metrics: ch, control: ch, list_chunk: DEFAULT_LIST_CHUNK }
        );
        let text = format!("user = \"cdra\"\n{MINIMAL}[control]\nmax_connections = 2\ntimeout = \"1s\"\nlist_chunk = 100\n[metrics]\nmax_connections = 3\ntimeout = \"2s\"\n");
        let s = parse(&text).expect("valid");
        assert_eq!(s.user.as_deref(), Some("cdra"));
        assert_eq!(s.management.control.max_connections, 2);
        assert_eq!(s.management.control.timeout, Duration::from_secs(1));
        assert_eq!(s.management.list_chunk, 100);
        assert_eq!(s.management.metrics.max_connections, 3);
        assert_eq!(s.management.metrics.timeout, Duration::from_secs(2));
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
        let store = defaults.store.expect("store on by default in proxy mode").config;
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
            dump.store.expect("on").config.mode,
            cdra_store::WriteMode::PeriodicDump { interval: Duration::from_secs(70) }
        );
        assert_eq!(defaults.proxy.max_age, Duration::from_secs(9 * 86_400));
    }

    #[test]
    fn shipped_example_configs_are_valid() {
        for text in [
            include_str!("../../../contrib/relay.toml"),
            include_str!("../../../contrib/proxy.toml"),
            include_str!("../../../contrib/spoof.toml"),
            include_str!("../../../contrib/pool.toml"),
            include_str!("../../../contrib/pair.toml"),
        ] {
            parse(text).expect("example configuration must stay valid");
        }
        let spoof = parse(include_str!("../../../contrib/spoof.toml")).expect("spoof.toml");
        assert_eq!(spoof.mode, Mode::Spoof);
        assert!(spoof.store.is_some(), "spoofing mode keeps its table on disk");
        let pool = parse(include_str!("../../../contrib/pool.toml")).expect("pool.toml");
        assert_eq!(pool.mode, Mode::Pool);
        assert!(pool.store.is_some(), "the pool is kept on disk with the client table");
        assert_eq!(pool.pool, PoolConfig::default(), "the example shows the defaults");
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
        assert_eq!(s.downstream[0].circuit_id, Some(AgentIdFormat::parse("port-7").expect("literal")));
        assert_eq!(s.upstream, vec!["ru0".to_string()]);
        assert_eq!(s.max_hops, 8);
        assert_eq!(s.server_selection, ServerSelection::Failover);
        assert_eq!(s.server_timeout, Duration::from_secs(5));
        assert!(s.option82.insert && s.option82.link_selection && s.option82.server_id_override);
        assert_eq!(s.option82.policy, Option82Policy::Replace);
    }

    #[test]
    fn option82_and_vrf_keys() {
        let text = r#"
servers = ["10.77.0.1"]
[[downstream]]
interface = "rd0"
circuit_id = "{hostname}:{ifname}:{vlan}"
remote_id = "hex:0a0b"
source_interface = "lo0"
[[downstream]]
interface = "rd1"
[[upstream]]
interface = "ru0"
vrf = "vrf-srv"
[[upstream]]
interface = "ru1"
[relay]
source_port = 1067
[relay.option82]
insert = true
remote_id = "{ifmac}"
vss = true
flags = true
"#;
        let s = parse(text).expect("valid");
        let d = &s.downstream[0];
        assert_eq!(d.circuit_id, Some(AgentIdFormat::parse("{hostname}:{ifname}:{vlan}").expect("ok")));
        assert_eq!(d.remote_id, Some(AgentIdFormat::parse("hex:0a0b").expect("ok")));
        assert_eq!(d.source_interface.as_deref(), Some("lo0"));
        assert_eq!(s.downstream[1].source_interface, None);
        assert_eq!(s.server_vrf.as_deref(), Some("vrf-srv"));
        assert_eq!(s.source_port, Some(1067));
        assert_eq!(s.remote_id, Some(AgentIdFormat::parse("{ifmac}").expect("ok")));
        assert!(s.option82.vss && s.option82.flags && s.option82.insert);
        // The remote-id is expanded per interface; the engine's global one stays empty.
        assert_eq!(s.option82.remote_id, None);
        let plain = parse(MINIMAL).expect("valid");
        assert_eq!((plain.server_vrf, plain.source_port, plain.remote_id), (None, None, None));
        assert!(!plain.option82.vss && !plain.option82.flags);
    }

    fn error_of(text: &str) -> String {
        parse(text).expect_err("must be rejected").to_string()
    }

    #[test]
    fn typed_values_name_their_key() {
        let proxy = MINIMAL.replace("\"relay\"", "\"proxy\"");
        let cases = [
            (
                "servers = [\"10.0.0.1\"]\n[[downstream]]\ninterface = \"eth1\"\naddress = \"10.1.1\"\n".into(),
                "downstream[0].address: \"10.1.1\" is not an IPv4 address (line 4)",
            ),
            (
                "servers = [\"10.0.0.1\"]\n[[downstream]]\ninterface = \"a-very-long-name0\"\n".into(),
                "downstream[0].interface: \"a-very-long-name0\" is not an interface name",
            ),
            (
                "servers = [\"10.0.0.1\", \"0.0.0.0\"]\n[[downstream]]\ninterface = \"eth1\"\n".into(),
                "servers[1]: 0.0.0.0 cannot be a DHCP server address",
            ),
            (
                "servers = [\"10.0.0.1\", \"10.0.0.1\"]\n[[downstream]]\ninterface = \"eth1\"\n".into(),
                "servers[1]: 10.0.0.1 is listed twice",
            ),
            ("servers = [10]\n[[downstream]]\ninterface = \"eth1\"\n".into(), "servers[0]: invalid type: integer"),
            (
                format!("{MINIMAL}[[upstream]]\ninterface = \"eth0\"\n[[upstream]]\ninterface = \"eth0\"\n"),
                "upstream[1].interface: eth0 is listed twice",
            ),
            (format!("{MINIMAL}[relay]\nmax_hops = \"4\"\n"), "relay.max_hops: invalid type: string \"4\""),
            (
                format!("{MINIMAL}[relay]\nmax_packet_size = 575\n"),
                "relay.max_packet_size: 575 is out of range 576..=4096",
            ),
            (
                format!("{MINIMAL}[relay]\nserver_timeout = \"2h\"\n"),
                "relay.server_timeout: \"2h\" is out of range 1s..=1h",
            ),
            (format!("{MINIMAL}[relay]\nreceive_batches = 0\n"), "relay.receive_batches: 0 is out of range 1..=1024"),
            (format!("{MINIMAL}[relay.option82]\ninsert = \"yes\"\n"), "relay.option82.insert: invalid type: string"),
            (
                format!("{MINIMAL}[relay.option82]\nremote_id = \"\"\n"),
                "relay.option82.remote_id: must be 1 to 255 bytes",
            ),
            (
                format!("{MINIMAL}[relay.option82]\nremote_id = \"{{mac}}\"\n"),
                "relay.option82.remote_id: unknown placeholder {mac}",
            ),
            (
                "servers = [\"10.0.0.1\"]\n[[downstream]]\ninterface = \"eth1\"\ncircuit_id = \"{ifname\"\n".into(),
                "downstream[0].circuit_id: the '{' at byte 0 is not closed (line 4)",
            ),
            (
                "servers = [\"10.0.0.1\"]\n[[downstream]]\ninterface = \"eth1\"\nremote_id = \"hex:0g\"\n".into(),
                "downstream[0].remote_id: \"0g\" is not hex bytes",
            ),
            (
                format!("servers = [\"10.0.0.1\"]\n[[downstream]]\ninterface = \"eth1\"\ncircuit_id = \"{}\"\n", "x".repeat(256)),
                "downstream[0].circuit_id: is 256 bytes long",
            ),
            (
                "servers = [\"10.0.0.1\"]\n[[downstream]]\ninterface = \"eth1\"\nsource_interface = \"lo0\"\n".into(),
                "downstream[0].source_interface: needs relay.option82.insert = true",
            ),
            (
                "servers = [\"10.0.0.1\"]\n[[downstream]]\ninterface = \"eth1\"\nsource_interface = \"eth1\"\n[relay.option82]\ninsert = true\n".into(),
                "downstream[0].source_interface: eth1 is the interface itself",
            ),
            (
                "servers = [\"10.0.0.1\"]\n[[downstream]]\ninterface = \"eth1\"\nsource_interface = \"a-very-long-name0\"\n".into(),
                "downstream[0].source_interface: \"a-very-long-name0\" is not an interface name",
            ),
            (format!("{MINIMAL}[relay]\nsource_port = 1067\n"), "relay.source_port: needs relay.option82.insert = true"),
            (format!("{MINIMAL}[relay]\nsource_port = 67\n"), "relay.source_port: 67 is the port cdra sends from"),
            (format!("{MINIMAL}[relay]\nsource_port = 68\n"), "relay.source_port: 68 is the DHCP client port"),
            (format!("{MINIMAL}[relay]\nsource_port = 70000\n"), "relay.source_port: 70000 is out of range 1..=65535"),
            (format!("{MINIMAL}[relay]\nsource_port = 0\n"), "relay.source_port: 0 is out of range"),
            (format!("{MINIMAL}[relay.option82]\nvss = \"on\"\n"), "relay.option82.vss: invalid type: string"),
            (format!("{MINIMAL}[relay.option82]\nflags = 1\n"), "relay.option82.flags: invalid type: integer"),
            (
                format!("{MINIMAL}[[upstream]]\ninterface = \"eth0\"\nvrf = \"vrf-a\"\n[[upstream]]\ninterface = \"eth2\"\nvrf = \"vrf-b\"\n"),
                "upstream[1].vrf: vrf-b differs from upstream[0].vrf = vrf-a: the servers are reached through one VRF",
            ),
            (
                format!("{MINIMAL}[[upstream]]\ninterface = \"eth0\"\nvrf = \"\"\n"),
                "upstream[0].vrf: \"\" is not an interface name",
            ),
            (
                format!("{proxy}[proxy]\nclient_lease = \"5s\"\n"),
                "proxy.client_lease: \"5s\" is out of range 10s..=365d",
            ),
            (
                format!("{proxy}[proxy]\nrenew_reply_delay = \"1s\"\n"),
                "proxy.renew_reply_delay: \"1s\" is out of range 1ms..=500ms",
            ),
            (format!("{proxy}[proxy]\nmax_clients = -1\n"), "proxy.max_clients: -1 is out of range 1..=2000000"),
            // Issue 10: a configuration cannot make the process preallocate gigabytes.
            (
                format!("{proxy}[proxy]\nmax_held_replies = 1000000\n"),
                "proxy.max_held_replies: 1000000 is out of range 1..=16384",
            ),
            (
                format!("{MINIMAL}[limits]\ntransactions = 100000000\n"),
                "limits.transactions: 100000000 is out of range",
            ),
            (format!("{MINIMAL}[limits]\nclient_rate = -5\n"), "limits.client_rate: -5 is out of range 0..="),
            (
                format!("{MINIMAL}[limits]\nreply_timeout = \"1h\"\n"),
                "limits.reply_timeout: \"1h\" is out of range 1s..=10m",
            ),
            (
                format!("{proxy}[proxy]\nmax_tracked_requests = 10\n[limits]\ntransactions = 20\n"),
                "proxy.max_tracked_requests: 10 contradicts limits.transactions = 20",
            ),
            (format!("{proxy}[proxy]\nmax_age = \"30s\"\n"), "proxy.max_age: \"30s\" is out of range 1m..=365d"),
            (
                format!("{proxy}[store]\ndump_interval = \"2d\"\n"),
                "store.dump_interval: \"2d\" is out of range 1s..=1d",
            ),
            (format!("{proxy}[store]\nenabled = 1\n"), "store.enabled: invalid type: integer"),
            (
                format!("{proxy}[store]\nretry_interval = \"10ms\"\n"),
                "store.retry_interval: \"10ms\" is out of range 100ms..=1h",
            ),
            (
                format!("{proxy}[store]\nretry_interval = \"10m\"\nretry_max_interval = \"1m\"\n"),
                "store.retry_interval: 10m is longer than store.retry_max_interval (1m)",
            ),
        ];
        for (text, expected) in cases {
            let e = error_of(&text);
            assert!(e.contains(expected), "{e:?} should contain {expected:?}");
            assert!(!e.contains('\n'), "{e:?} must be one line");
        }
    }

    #[test]
    fn every_documented_spelling_is_accepted() {
        let proxy = MINIMAL.replace("\"relay\"", "\"proxy\"");
        for (name, want) in [("all", ServerSelection::All), ("failover", ServerSelection::Failover)] {
            let s = parse(&format!("{MINIMAL}[relay]\nserver_selection = \"{name}\"\n")).expect(name);
            assert_eq!(s.server_selection, want);
        }
        for (name, want) in
            [("forward", Option82Policy::Forward), ("replace", Option82Policy::Replace), ("drop", Option82Policy::Drop)]
        {
            let s = parse(&format!("{MINIMAL}[relay.option82]\npolicy = \"{name}\"\n")).expect(name);
            assert_eq!(s.option82.policy, want);
        }
        for (name, want) in [
            ("first", OfferChoice::First),
            ("longest_lease", OfferChoice::LongestLease),
            ("spread", OfferChoice::Spread),
        ] {
            let s = parse(&format!("{proxy}[proxy]\noffer_choice = \"{name}\"\n")).expect(name);
            assert_eq!(s.proxy.offer_choice, want);
        }
        for (name, want) in [("auto", cdra_core::IcmpProbe::Auto), ("always", cdra_core::IcmpProbe::Always)] {
            let s = parse(&format!("{proxy}[proxy]\nicmp_probe = \"{name}\"\n")).expect(name);
            assert_eq!(s.proxy.icmp_probe, want);
        }
        assert_eq!(parse(&proxy).expect("defaults").proxy.icmp_probe, cdra_core::IcmpProbe::Auto);
        for (name, periodic) in [("group_commit", false), ("dump", true)] {
            let s = parse(&format!("{proxy}[store]\nmode = \"{name}\"\n")).expect(name);
            let mode = s.store.expect("on in proxy mode").config.mode;
            assert_eq!(matches!(mode, cdra_store::WriteMode::PeriodicDump { .. }), periodic, "{name}");
        }
        let s = parse(&format!("{proxy}[proxy]\nrenew_reply_delay = \"0s\"\nclient_lease = \"10s\"\n")).expect("valid");
        assert_eq!(s.proxy.renew_reply_delay, Duration::ZERO);
        assert_eq!(s.proxy.client_lease, Some(Duration::from_secs(10)));
        let s = parse(&format!("{proxy}[store]\npath = \"\"\n[control]\nsocket = \"\"\n[metrics]\nlisten = \"\"\n"))
            .expect("\"\" turns them off");
        assert!(s.store.is_none() && s.control_socket.is_none() && s.metrics_listen.is_none());
    }

    #[test]
    fn leasequery_section_is_read_and_checked_by_key() {
        let proxy = MINIMAL.replace("\"relay\"", "\"proxy\"");
        assert_eq!(parse(&proxy).expect("defaults").leasequery, LeasequeryConfig::default());
        let s = parse(&format!(
            "{proxy}[leasequery]\nenabled = true\nrate = 100\nsubnets = [\"10.0.0.0/25\", \"10.0.1.0/24\"]\n\
             max_outstanding = 8\nquery_timeout = \"1s\"\nunanswered_limit = 5\n"
        ))
        .expect("valid");
        let l = s.leasequery;
        assert!(l.enabled);
        assert_eq!(
            (l.rate, l.max_outstanding, l.query_timeout, l.unanswered_limit),
            (100, 8, Duration::from_secs(1), 5)
        );
        assert_eq!(
            l.subnets,
            vec![
                Ipv4Net { addr: Ipv4Addr::new(10, 0, 0, 0), prefix_len: 25 },
                Ipv4Net { addr: Ipv4Addr::new(10, 0, 1, 0), prefix_len: 24 }
            ]
        );
        for (text, expected) in [
            (format!("{MINIMAL}[leasequery]\nenabled = true\n"), "leasequery.enabled: refills the client table"),
            (format!("{proxy}[leasequery]\nrate = 0\n"), "leasequery.rate: 0 is out of range 1..=10000"),
            (format!("{proxy}[leasequery]\nsubnets = [\"10.0.0.0/8\"]\n"), "leasequery.subnets: [0] \"10.0.0.0/8\""),
            (format!("{proxy}[leasequery]\nsubnets = [\"10.0.0.0\"]\n"), "leasequery.subnets: [0]"),
            (format!("{proxy}[leasequery]\nquery_timeout = \"1ms\"\n"), "leasequery.query_timeout"),
            (format!("{proxy}[leasequery]\nbogus = 1\n"), "leasequery"),
        ] {
            let e = error_of(&text);
            assert!(e.contains(expected), "{e:?} should contain {expected:?}");
        }
    }

    #[test]
    fn defaults_are_the_engines() {
        let s = parse(&MINIMAL.replace("\"relay\"", "\"proxy\"")).expect("valid");
        let engine = EngineConfig::relay(Vec::new(), Vec::new(), Vec::new());
        assert_eq!(s.proxy, ProxyConfig::default());
        assert_eq!(s.option82, Option82Config::default());
        assert_eq!(
            (s.max_hops, s.server_selection, s.max_packet_size, s.server_timeout),
            (engine.max_hops, engine.server_selection, engine.max_packet_size, engine.server_timeout)
        );
        let store = s.store.expect("on in proxy mode");
        assert_eq!(store.config, cdra_store::StoreConfig::new(DEFAULT_STORE_PATH));
        assert_eq!(
            (store.retry_interval, store.retry_max_interval),
            (Duration::from_secs(1), Duration::from_secs(5 * 60))
        );
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
                "mode: unknown variant `cache`, expected one of `relay`, `proxy`, `spoof`",
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
            (format!("{MINIMAL}[proxy]\nicmp_probe = \"never\"\n"), "proxy.icmp_probe"),
            (format!("{MINIMAL}[proxy]\nprobe_timeout = \"1h\"\n"), "proxy.probe_timeout: \"1h\" is out of range"),
            (format!("{MINIMAL}[proxy]\nsafe = true\n"), "proxy.safe: unknown field"),
            (format!("{MINIMAL}[control]\nsocket = \"relative.sock\"\n"), "control.socket"),
            (format!("{MINIMAL}[metrics]\nlisten = \"localhost\"\n"), "metrics.listen"),
            (format!("{MINIMAL}[store]\npath = \"clients.redb\"\n"), "store.path"),
            (format!("{MINIMAL}[store]\nmode = \"often\"\n"), "store.mode"),
            (format!("{MINIMAL}[store]\ncommit_interval = \"1ms\"\n"), "store.commit_interval"),
            (format!("user = \"-rf\"\n{MINIMAL}"), "user: \"-rf\" is not a user name"),
            (format!("user = \"\"\n{MINIMAL}"), "user"),
            (format!("{MINIMAL}[control]\nmax_connections = 0\n"), "control.max_connections"),
            (format!("{MINIMAL}[control]\nlist_chunk = 0\n"), "control.list_chunk"),
            (format!("{MINIMAL}[metrics]\ntimeout = \"1ms\"\n"), "metrics.timeout"),
        ];
        for (text, expected) in cases {
            let e = error_of(&text);
            assert!(e.contains(expected), "{e:?} should contain {expected:?}");
            assert!(!e.contains('\n'), "{e:?} must be one line");
        }
    }
}
