//! Reloading the configuration in the same process (SIGHUP, `cdra reload`): issue 13 item 1.
//!
//! The file given with `--config` is read and validated exactly as `cdra check` does; an
//! invalid one is refused with the same one-line error (naming the key), logged, and the
//! running configuration stays. A valid one becomes the engine's new configuration
//! ([`cdra_core::Engine::reconfigure`]): the client table, the pool, the requests waiting
//! for answers, the probes in flight, the counters and the store all stay; interfaces are
//! matched by name and servers by address; records on a downstream interface that was
//! removed are dropped (counted `interface_removed`). What a reload cannot change is said
//! in the answer and the log: the mode (refused), and the keys that apply at the next
//! restart only ([`restart_only`]).

use std::path::Path;

use cdra_core::reconfigure::Reconfigured;

use crate::config::{self, Settings};

/// Keys of `new` that differ from `running` and take effect only at the next restart (the
/// sockets and threads they configure are set up once).
pub fn restart_only(running: &Settings, new: &Settings) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if running.control_socket != new.control_socket {
        keys.push("control.socket");
    }
    if running.metrics_listen != new.metrics_listen {
        keys.push("metrics.listen");
    }
    if running.management != new.management {
        keys.push("control/metrics max_connections and timeout");
    }
    if running.store != new.store {
        keys.push("store");
    }
    if running.ha != new.ha {
        keys.push("ha");
    }
    if running.user != new.user {
        keys.push("user");
    }
    // The port is bound at start-up (below 1024 it needs the privilege given up then).
    if running.source_port != new.source_port {
        keys.push("relay.source_port");
    }
    // The servers' VRF socket is opened at start-up; a running one moves to another VRF.
    if running.server_vrf.is_none() && new.server_vrf.is_some() {
        keys.push("upstream.vrf");
    }
    keys
}

/// Read and validate the file at `path` as `cdra check` does.
pub fn read(path: &Path) -> Result<(Settings, String), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read it: {e}", path.display()))?;
    let settings = config::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((settings, text))
}

/// One paragraph saying what a reload did, for the log and for `cdra reload`.
pub fn describe(r: &Reconfigured, restart: &[&'static str]) -> String {
    let mut parts = Vec::new();
    if !r.added.is_empty() {
        parts.push(format!("downstream added: {}", r.added.join(", ")));
    }
    if !r.removed.is_empty() {
        parts.push(format!(
            "downstream removed: {} ({} record(s) dropped, {} pool lease(s) released)",
            r.removed.join(", "),
            r.records_dropped,
            r.pool_entries_released
        ));
    }
    let list = |v: &[std::net::Ipv4Addr]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ");
    if !r.servers_added.is_empty() {
        parts.push(format!("servers added: {}", list(&r.servers_added)));
    }
    if !r.servers_removed.is_empty() {
        parts.push(format!("servers removed: {}", list(&r.servers_removed)));
    }
    let mut later: Vec<&str> = r.needs_restart.clone();
    later.extend(restart);
    if !later.is_empty() {
        parts.push(format!("applied at the next restart only: {}", later.join(", ")));
    }
    if parts.is_empty() {
        "reloaded".to_string()
    } else {
        format!("reloaded; {}", parts.join("; "))
    }
}

/// The differences between two configuration files, key by key (dotted paths, as errors
/// name them), for `cdra check --running`: `+ key = value` (only in `new`), `- key = value`
/// (only in `running`), `~ key: old -> new`. A key left out takes its default, so a key
/// written with its default value in one file and left out of the other shows as added or
/// removed although nothing changes.
pub fn diff(running: &str, new: &str) -> Result<Vec<String>, String> {
    let a: toml::Value = toml::from_str(running).map_err(|e| format!("running configuration: {e}"))?;
    let b: toml::Value = toml::from_str(new).map_err(|e| format!("{e}"))?;
    let (mut fa, mut fb) = (Vec::new(), Vec::new());
    flatten("", &a, &mut fa);
    flatten("", &b, &mut fb);
    let mut out = Vec::new();
    for (k, v) in &fa {
        match fb.iter().find(|(kb, _)| kb == k) {
            None => out.push(format!("- {k} = {v}")),
            Some((_, vb)) if vb != v => out.push(format!("~ {k}: {v} -> {vb}")),
            Some(_) => {}
        }
    }
    for (k, v) in &fb {
        if !fa.iter().any(|(ka, _)| ka == k) {
            out.push(format!("+ {k} = {v}"));
        }
    }
    Ok(out)
}

fn flatten(prefix: &str, v: &toml::Value, out: &mut Vec<(String, String)>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        // An array of tables ([[downstream]]) is compared element by element.
        toml::Value::Array(items) if items.iter().all(|i| i.is_table()) && !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), item, out);
            }
        }
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r#"
mode = "proxy"
servers = ["192.0.2.10"]
[[downstream]]
interface = "eth1"
[proxy]
max_age = "9d"
"#;

    #[test]
    fn the_diff_names_each_changed_key() {
        let b = r#"
mode = "proxy"
servers = ["192.0.2.10", "192.0.2.11"]
[[downstream]]
interface = "eth1"
[[downstream]]
interface = "eth2"
"#;
        let d = diff(A, b).expect("parses");
        assert_eq!(
            d,
            vec![
                "- proxy.max_age = \"9d\"".to_string(),
                "~ servers: [\"192.0.2.10\"] -> [\"192.0.2.10\", \"192.0.2.11\"]".to_string(),
                "+ downstream[1].interface = \"eth2\"".to_string(),
            ]
        );
        assert!(diff(A, A).expect("parses").is_empty());
    }

    #[test]
    fn restart_only_keys_are_named() {
        let a = config::parse(A).expect("valid");
        let mut b = a.clone();
        assert!(restart_only(&a, &b).is_empty());
        b.user = Some("nobody".into());
        b.metrics_listen = Some("127.0.0.1:9167".parse().expect("addr"));
        assert_eq!(restart_only(&a, &b), vec!["metrics.listen", "user"]);
        let mut c = a.clone();
        c.source_port = Some(1067);
        c.server_vrf = Some("vrf-srv".into());
        assert_eq!(restart_only(&a, &c), vec!["relay.source_port", "upstream.vrf"]);
        // A VRF the servers' socket already follows can be changed in place.
        let mut d = c.clone();
        d.server_vrf = Some("vrf-other".into());
        assert!(restart_only(&c, &d).is_empty());
    }
}
