//! Kea's packet statistics over its control socket (`statistic-get-all`), so a phase can
//! report how many messages the server received and sent while it ran.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Current values of the `pkt4-*` and `v4-*` statistics (all integer-valued statistics whose
/// name starts with one of those prefixes).
pub fn packet_stats(socket: &Path) -> anyhow::Result<BTreeMap<String, i64>> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(br#"{ "command": "statistic-get-all", "arguments": { } }"#)?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    parse_stats(&text)
}

/// Extracts the statistics from a `statistic-get-all` answer (an object, or a one-element
/// list of answers).
pub fn parse_stats(text: &str) -> anyhow::Result<BTreeMap<String, i64>> {
    let v: serde_json::Value = serde_json::from_str(text)?;
    let answer = match &v {
        serde_json::Value::Array(a) => a.first().cloned().unwrap_or_default(),
        other => other.clone(),
    };
    if answer.get("result").and_then(|r| r.as_i64()) != Some(0) {
        anyhow::bail!("statistic-get-all failed: {}", answer.get("text").and_then(|t| t.as_str()).unwrap_or("?"));
    }
    let mut out = BTreeMap::new();
    if let Some(args) = answer.get("arguments").and_then(|a| a.as_object()) {
        for (name, samples) in args {
            if !(name.starts_with("pkt4-") || name.starts_with("v4-")) {
                continue;
            }
            // Samples are [[value, "timestamp"], ...], newest first.
            if let Some(value) = samples.get(0).and_then(|s| s.get(0)).and_then(|x| x.as_i64()) {
                out.insert(name.clone(), value);
            }
        }
    }
    Ok(out)
}

/// `after - before` for every statistic present in `after`.
pub fn delta(before: &BTreeMap<String, i64>, after: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    after.iter().map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_answer() {
        let text = r#"{ "arguments": { "pkt4-received": [ [ 42, "2024-01-01 00:00:00.000" ], [ 41, "x" ] ],
            "pkt4-ack-sent": [ [ 7, "t" ] ], "subnet[1].total-addresses": [ [ 100, "t" ] ] }, "result": 0 }"#;
        let s = parse_stats(text).expect("parses");
        assert_eq!(s.get("pkt4-received"), Some(&42));
        assert_eq!(s.get("pkt4-ack-sent"), Some(&7));
        assert!(!s.contains_key("subnet[1].total-addresses"));
        let before = BTreeMap::from([("pkt4-received".to_string(), 40)]);
        assert_eq!(delta(&before, &s).get("pkt4-received"), Some(&2));
        assert!(parse_stats(r#"{ "result": 1, "text": "no" }"#).is_err());
    }
}
