//! CPU time of a process from /proc/PID/stat (utime + stime, all threads, clock ticks), and
//! the UDP counters of the network namespace it runs in (/proc/PID/net/snmp), which tell
//! whether datagrams were lost to full socket buffers there.

use std::collections::BTreeMap;
use std::time::Duration;

/// utime + stime of process `pid` (`None`: no such process or unreadable). For "self",
/// pass `std::process::id()`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu(&text, rustix::param::clock_ticks_per_second())
}

/// Parses utime + stime out of a /proc/PID/stat line. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from the last ')'.
pub fn parse_stat_cpu(text: &str, ticks_per_s: u64) -> Option<Duration> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3 of the line, so utime (14) and stime (15) are at 11, 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = utime + stime;
    let tps = ticks_per_s.max(1);
    Some(Duration::from_secs(ticks / tps) + Duration::from_nanos((ticks % tps) * 1_000_000_000 / tps))
}

/// The `Udp:` counters of the network namespace of process `pid` (InDatagrams, NoPorts,
/// InErrors, OutDatagrams, RcvbufErrors, SndbufErrors, ...), by name.
pub fn udp_counters(pid: u32) -> Option<BTreeMap<String, i64>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/snmp")).ok()?;
    parse_snmp_udp(&text)
}

/// Parses the `Udp:` header and value lines of /proc/net/snmp.
pub fn parse_snmp_udp(text: &str) -> Option<BTreeMap<String, i64>> {
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let names = lines.next()?.split_whitespace().skip(1);
    let values = lines.next()?.split_whitespace().skip(1);
    Some(names.zip(values).filter_map(|(n, v)| Some((n.to_string(), v.parse().ok()?))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_line() {
        let line = "1234 (kea (dhcp4) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 0 0";
        assert_eq!(parse_stat_cpu(line, 100), Some(Duration::from_secs(3)));
        assert_eq!(parse_stat_cpu("garbage", 100), None);
        assert!(cpu_time(std::process::id()).is_some());
    }

    #[test]
    fn parses_snmp() {
        let text = "Ip: Forwarding DefaultTTL\nIp: 1 64\nUdp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors\nUdp: 10 2 3 9 3\nUdpLite: InDatagrams\nUdpLite: 0\n";
        let c = parse_snmp_udp(text).expect("udp");
        assert_eq!(c.get("InDatagrams"), Some(&10));
        assert_eq!(c.get("RcvbufErrors"), Some(&3));
        assert_eq!(parse_snmp_udp("Ip: a\nIp: 1\n"), None);
        assert!(udp_counters(std::process::id()).is_some());
    }
}
