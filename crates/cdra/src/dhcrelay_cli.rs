//! ISC dhcrelay's command line, so cdra can replace it in an existing unit file:
//! `cdra relay [-4] [-d] [-q] [-a] [-D] [-c COUNT] [-A LENGTH] [-m append|replace|forward|discard]
//! [-U IF] [-rp PORT] [-pf FILE] [--no-pid] [-i IF]... [-id IF]... [-iu IF]... SERVER...`
//!
//! The words fill in the same sections the TOML file is read into, starting from the same
//! defaults, and go through the same validation, so both produce the same [`Settings`].
//! `-i IF` (an interface that is both) becomes a downstream and an upstream interface, as
//! in dhcrelay.

use cdra_core::Option82Policy;

use crate::config::{self, ConfigError, FileConfig, FileDownstream, FileUpstream, InterfaceName, ServerAddr, Settings};

/// What the command line asked for, beyond the settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DhcrelayCommand {
    /// The relay settings.
    pub settings: Settings,
    /// `-q`: quiet.
    pub quiet: bool,
    /// `-pf FILE`: write our PID there.
    pub pid_file: Option<String>,
    /// Notes for the log (options accepted but mapped to something else).
    pub notes: Vec<String>,
}

fn err(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError { key: key.to_string(), problem: problem.into() }
}

/// Remove every repeat, keeping the first of each in its place.
fn dedup_keep_first<T: Clone + Eq + std::hash::Hash>(items: &mut Vec<T>) {
    let mut seen = std::collections::HashSet::new();
    items.retain(|n| seen.insert(n.clone()));
}

/// An interface name given after `flag`.
fn interface(flag: &str, name: String) -> Result<InterfaceName, ConfigError> {
    InterfaceName::try_from(name).map_err(|problem| err(flag, problem))
}

/// Parse dhcrelay-style words (without the program name and `relay`). Everything the
/// words do not set keeps the configuration file's default ([`FileConfig::default`]), and
/// the result goes through the same [`config::validate`].
pub fn parse(args: &[String]) -> Result<DhcrelayCommand, ConfigError> {
    let mut file = FileConfig::default();
    let mut downstream: Vec<InterfaceName> = Vec::new();
    let mut upstream: Vec<InterfaceName> = Vec::new();
    let mut servers: Vec<ServerAddr> = Vec::new();
    let mut uplink: Option<InterfaceName> = None;
    let mut quiet = false;
    let mut pid_file = None;
    let mut notes = Vec::new();
    let mut words = args.iter();
    let value = |flag: &str, words: &mut std::slice::Iter<'_, String>| -> Result<String, ConfigError> {
        words.next().cloned().ok_or_else(|| err(flag, "needs a value"))
    };
    while let Some(w) = words.next() {
        match w.as_str() {
            "-4" | "-d" => {}
            "-6" => return Err(err("-6", "DHCPv6 relaying is not supported by cdra")),
            "-q" => quiet = true,
            "-a" => file.relay.option82.insert = true,
            "-D" => {
                notes.push("-D: accepted; cdra delivers replies by giaddr and strips option 82 from every reply".into())
            }
            "--no-pid" => pid_file = None,
            "-pf" => pid_file = Some(value("-pf", &mut words)?),
            "-c" => {
                let v = value("-c", &mut words)?;
                file.relay.max_hops = match v.parse::<u8>() {
                    Ok(h) if (1..=cdra_core::config::HARD_MAX_HOPS).contains(&h) => h,
                    _ => return Err(err("-c", format!("{v:?} is not a hop count in 1..=16"))),
                };
            }
            "-A" => {
                let v = value("-A", &mut words)?;
                file.relay.max_packet_size = match v.parse::<usize>() {
                    Ok(n) if (config::MIN_PACKET_SIZE..=config::MAX_PACKET_SIZE).contains(&n) => n,
                    _ => {
                        return Err(err(
                            "-A",
                            format!(
                                "{v:?} is not a length in {}..={}",
                                config::MIN_PACKET_SIZE,
                                config::MAX_PACKET_SIZE
                            ),
                        ))
                    }
                };
            }
            "-m" => {
                let v = value("-m", &mut words)?;
                file.relay.option82.policy = match v.as_str() {
                    "forward" => Option82Policy::Forward,
                    "replace" => Option82Policy::Replace,
                    "discard" => Option82Policy::Drop,
                    "append" => {
                        notes.push(
                            "-m append: RFC 3046 allows one option 82 per message; forwarding existing ones unchanged"
                                .into(),
                        );
                        Option82Policy::Forward
                    }
                    other => {
                        return Err(err("-m", format!("{other:?} is not one of append, replace, forward, discard")))
                    }
                };
            }
            "-i" => {
                let v = interface("-i", value("-i", &mut words)?)?;
                downstream.push(v.clone());
                upstream.push(v);
            }
            "-id" => downstream.push(interface("-id", value("-id", &mut words)?)?),
            "-iu" => upstream.push(interface("-iu", value("-iu", &mut words)?)?),
            "-U" => {
                // dhcrelay 4.4: "-U interface ... the giaddr is set to the address of the
                // interface given, and the link selection sub-option (RFC 3527) carries the
                // address of the interface the request arrived on"; it turns on -a.
                if uplink.is_some() {
                    return Err(err("-U", "more than one -U"));
                }
                uplink = Some(interface("-U", value("-U", &mut words)?)?);
                file.relay.option82.insert = true;
            }
            "-rp" => {
                let v = value("-rp", &mut words)?;
                file.relay.source_port = match v.parse::<u16>() {
                    Ok(p) if p != 0 && p != 67 && p != 68 => Some(p),
                    _ => return Err(err("-rp", format!("{v:?} is not a port other than 0, 67 and 68"))),
                };
                // The relay source port sub-option lives in option 82.
                if !file.relay.option82.insert {
                    notes.push(
                        "-rp: option 82 is inserted (as -a), since the relay source port sub-option is part of it"
                            .into(),
                    );
                }
                file.relay.option82.insert = true;
            }
            "-p" | "-l" | "-u" | "-s" | "-I" | "-g" => {
                return Err(err(w, "is not supported by cdra; use a configuration file (cdra run --config FILE)"));
            }
            other if other.starts_with('-') => return Err(err(other, "unknown option")),
            server => servers.push(ServerAddr::try_from(server.to_string()).map_err(|problem| err("SERVER", problem))?),
        }
    }
    if servers.is_empty() {
        return Err(err("SERVER", "at least one server address is required"));
    }
    if downstream.is_empty() {
        return Err(err("-id", "at least one downstream interface (-id IF or -i IF) is required"));
    }
    // A server or interface named twice (say `-i rd0` and `-id rd0`, anywhere on the line)
    // is one server or interface.
    dedup_keep_first(&mut servers);
    dedup_keep_first(&mut downstream);
    dedup_keep_first(&mut upstream);
    file.servers = servers;
    file.downstream = downstream
        .into_iter()
        .map(|name| FileDownstream { source_interface: uplink.clone(), ..FileDownstream::named(name) })
        .collect();
    file.upstream = upstream.into_iter().map(|interface| FileUpstream { interface, vrf: None }).collect();
    let settings = config::validate(file).map_err(|e| {
        // Name the words of this command line, not the keys of the file.
        let key = ["servers", "relay.source_port", "downstream", "upstream"]
            .iter()
            .zip(["SERVER", "-rp", "-id", "-iu"])
            .find(|(file_key, _)| e.key.starts_with(*file_key))
            .map_or(e.key.as_str(), |(_, word)| word);
        err(key, e.problem)
    })?;
    Ok(DhcrelayCommand { settings, quiet, pid_file, notes })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn typical_dhcrelay_line() {
        let c = parse(&words("-4 -d -a -c 6 -m replace -id rd0 -iu ru0 10.77.0.1 10.77.0.9")).expect("valid");
        let s = c.settings;
        assert_eq!(s.servers, vec![Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 9)]);
        assert_eq!(s.downstream[0].interface, "rd0");
        assert_eq!(s.upstream, vec!["ru0".to_string()]);
        assert!(s.option82.insert);
        assert_eq!(s.option82.policy, Option82Policy::Replace);
        assert_eq!(s.max_hops, 6);
    }

    #[test]
    fn uplink_and_relay_port() {
        // ISC dhcrelay -U: giaddr from that interface on every downstream, -a implied.
        let s = parse(&words("-id rd0 -id rd1 -iu ru0 -U lo0 10.0.0.1")).expect("valid").settings;
        assert!(s.option82.insert);
        assert!(s.downstream.iter().all(|d| d.source_interface.as_deref() == Some("lo0")));
        assert_eq!(s.source_port, None);
        // -rp: RFC 8357 relay source port (in option 82, so -a too, with a note).
        let c = parse(&words("-id rd0 -rp 1067 10.0.0.1")).expect("valid");
        assert_eq!(c.settings.source_port, Some(1067));
        assert!(c.settings.option82.insert);
        assert!(c.notes.iter().any(|n| n.starts_with("-rp")));
        for (line, want) in [
            ("-id rd0 -U lo0 -U lo1 10.0.0.1", "-U: more than one -U"),
            ("-id rd0 -U", "-U: needs a value"),
            ("-id rd0 -rp 67 10.0.0.1", "-rp: \"67\" is not a port"),
            ("-id rd0 -rp x 10.0.0.1", "-rp"),
            ("-id rd0 -U rd0 10.0.0.1", "rd0 is the interface itself"),
        ] {
            let e = parse(&words(line)).expect_err(line).to_string();
            assert!(e.contains(want), "{line}: {e:?} should contain {want:?}");
        }
    }

    #[test]
    fn repeated_interfaces_are_taken_once_in_first_seen_order() {
        // Not adjacent: `-i` makes rd0 both, and rd1 comes back after rd0.
        let c = parse(&words("-id rd1 -i rd0 -id rd1 -iu ru0 -id rd0 -iu ru0 -iu rd0 10.0.0.1")).expect("valid");
        let names: Vec<&str> = c.settings.downstream.iter().map(|d| d.interface.as_str()).collect();
        assert_eq!(names, ["rd1", "rd0"]);
        assert_eq!(c.settings.upstream, ["rd0", "ru0"]);
    }

    #[test]
    fn defaults_are_the_files() {
        let line = parse(&words("-id rd0 -iu ru0 10.0.0.1")).expect("valid").settings;
        let file = config::parse(
            "servers = [\"10.0.0.1\"]\n[[downstream]]\ninterface = \"rd0\"\n[[upstream]]\ninterface = \"ru0\"\n",
        )
        .expect("valid");
        assert_eq!(line, file);
    }

    #[test]
    fn bad_lines_are_one_line_errors() {
        for (line, want) in [
            ("-id rd0", "SERVER"),
            ("10.0.0.1", "-id"),
            ("-id rd0 -c 99 10.0.0.1", "-c"),
            ("-id rd0 -m keep 10.0.0.1", "-m"),
            ("-id rd0 -x 10.0.0.1", "-x: unknown option"),
            ("-id rd0 10.0.0.300", "SERVER"),
            ("-id", "-id: needs a value"),
            ("-id rd0 0.0.0.0", "SERVER: 0.0.0.0 cannot be a DHCP server address"),
            ("-id a-very-long-name0 10.0.0.1", "-id: \"a-very-long-name0\" is not an interface name"),
            ("-id rd0 -A 100 10.0.0.1", "-A: \"100\" is not a length in 576..=4096"),
        ] {
            let e = parse(&words(line)).expect_err(line).to_string();
            assert!(e.contains(want), "{line}: {e}");
        }
    }
}
