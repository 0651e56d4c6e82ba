//! `cdra`: a caching DHCPv4 relay agent.
//!
//! - `cdra run --config FILE`: run in the foreground, log to stderr (the per-client event
//!   log, `[log] events`, to stdout), exit 0 on SIGTERM/SIGINT.
//! - `cdra check --config FILE`: validate; on error print one line naming the key, exit 2.
//!   In spoofing mode it also checks that each server is routed through an upstream
//!   interface of this host ([`placement`]).
//! - `cdra relay [dhcrelay options] SERVER...`: ISC dhcrelay's command line.
//!
//! This file only dispatches; [`config`] reads the file, [`daemon`] runs the data plane.

mod agent_id;
mod config;
mod control;
mod daemon;
mod dhcrelay_cli;
mod event_log;
mod ha;
mod interception;
mod links;
mod management;
mod manpages;
mod metrics;
mod persistence;
mod placement;
mod pool_fit;
mod privileges;
mod reload;
mod report;
mod service;
mod shared_store;
mod table_store;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for configuration errors (`cdra check` and `cdra run`).
const EXIT_CONFIG: u8 = 2;
/// Exit code for start-up failures (interfaces, privileges, sockets).
const EXIT_STARTUP: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "cdra",
    version,
    about = "cdra: a caching DHCPv4 relay agent",
    long_about = "cdra relays DHCPv4 between client segments and central DHCP servers (relay mode, a \
                  drop-in for ISC dhcrelay) and, in proxy, spoofing and pool mode, caches each client's \
                  lease and answers known clients itself, also while the servers are unreachable.",
    after_long_help = "Files: /etc/cdra/cdra.toml (configuration, every key in \
                       /usr/share/doc/cdra/configuration.md), /var/lib/cdra/clients.redb (the client \
                       table), /run/cdra/control.sock (cdra cache). Signals: SIGTERM and SIGINT stop \
                       cdra cleanly, SIGUSR1 logs every counter. Under systemd (cdra.service) it \
                       notifies READY=1 and WATCHDOG=1. Metrics: /usr/share/doc/cdra/metrics.md.",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run in the foreground (logs to stderr, [log] events to stdout; SIGTERM/SIGINT stop it, SIGUSR1 logs counters).
    Run {
        /// Configuration file (TOML).
        #[arg(long, short = 'c')]
        config: PathBuf,
        /// Log level: error, warn, info, debug, trace (overrides RUST_LOG).
        #[arg(long)]
        log_level: Option<String>,
    },
    /// Validate a configuration file; print one line naming the key on error and exit 2.
    /// An interface that does not exist yet is not an error (a note says so: cdra waits for
    /// it).
    Check {
        /// Configuration file (TOML).
        #[arg(long, short = 'c')]
        config: PathBuf,
        /// Also say what would change if the running cdra (reached over the control socket:
        /// --socket, else `[control] socket` of --config) reloaded this file.
        #[arg(long)]
        running: bool,
        /// Control socket of the running cdra (with --running).
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Make the running cdra re-read its configuration file and apply it, as SIGHUP does
    /// (the answer says what changed, or why the file was refused: the old one stays).
    Reload {
        /// Control socket path (default: `[control] socket` of --config).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Configuration file to read the control socket path from.
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
    },
    /// Inspect or flush the client table of a running cdra (proxy mode) over its control socket.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
        /// Control socket path (default: `[control] socket` of --config).
        #[arg(long, global = true)]
        socket: Option<PathBuf>,
        /// Configuration file to read the control socket path from.
        #[arg(long, short = 'c', global = true)]
        config: Option<PathBuf>,
        /// Answer in JSON (list: one object a line; show, counters: one object).
        #[arg(long, global = true)]
        json: bool,
    },
    /// Run as a relay with ISC dhcrelay's command line (-id IF, -iu IF, -a, -c, -m, SERVER...).
    #[command(disable_help_flag = true)]
    Relay {
        /// dhcrelay options and servers.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
    /// Write the manual pages (cdra.8 and one per subcommand) into DIR (packaging).
    #[command(hide = true)]
    Manpages {
        /// Directory to write them to (created if missing).
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum CacheAction {
    /// One line per client: key, interface, address, state, lease left, server, ages.
    List,
    /// One client in detail (MAC, id:HEX, hw:HTYPE:HEX or its IPv4 address).
    Show { client: String },
    /// Remove one client (or `all`): its next request goes to the server.
    Flush { client: String },
    /// Proxy counters.
    Counters,
}

/// The control socket: `socket`, else `[control] socket` of the file `config`; on error
/// the message is printed (prefixed `who`) and the exit code returned.
fn control_socket_of(
    who: &str,
    socket: Option<PathBuf>,
    config: Option<&std::path::Path>,
) -> Result<PathBuf, ExitCode> {
    match (socket, config) {
        (Some(s), _) => Ok(s),
        (None, Some(c)) => match config::load(c) {
            Ok(settings) => settings.control_socket.ok_or_else(|| {
                eprintln!("{who}: {}: control.socket is not set", c.display());
                ExitCode::from(EXIT_CONFIG)
            }),
            Err(e) => {
                eprintln!("{who}: {}: {e}", c.display());
                Err(ExitCode::from(EXIT_CONFIG))
            }
        },
        (None, None) => {
            eprintln!("{who}: give --socket PATH or --config FILE");
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

fn cache_command(action: CacheAction, socket: Option<PathBuf>, config: Option<PathBuf>, json: bool) -> ExitCode {
    let socket = match control_socket_of("cdra cache", socket, config.as_deref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let command = match action {
        CacheAction::List => "list".to_string(),
        CacheAction::Show { client } => format!("show {client}"),
        CacheAction::Flush { client } => format!("flush {client}"),
        CacheAction::Counters => "counters".to_string(),
    };
    // The control protocol's JSON variant: the word `json` after the command (control.rs).
    let command = match (json, command.starts_with("flush")) {
        (true, true) => {
            eprintln!("cdra cache: --json applies to list, show and counters");
            return ExitCode::from(EXIT_CONFIG);
        }
        (true, false) => format!("{command} json"),
        (false, _) => command,
    };
    match control::request(&socket, &command) {
        Ok((ok, answer)) => {
            print!("{answer}");
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_STARTUP)
            }
        }
        Err(e) => {
            eprintln!("cdra cache: {e:#}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// `cdra reload`: ask the running cdra to reload; its answer says what changed.
fn reload_command(socket: Option<PathBuf>, config: Option<PathBuf>) -> ExitCode {
    let socket = match control_socket_of("cdra reload", socket, config.as_deref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match control::request(&socket, "reload") {
        Ok((ok, answer)) if ok && answer.starts_with("ok") => {
            print!("{answer}");
            ExitCode::SUCCESS
        }
        Ok((_, answer)) => {
            eprint!("cdra reload: {answer}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("cdra reload: {e:#}");
            ExitCode::from(EXIT_STARTUP)
        }
    }
}

/// `cdra check --running`: what reloading `config` would change in the running cdra.
fn running_diff(config: &std::path::Path, socket: Option<PathBuf>) -> ExitCode {
    let socket = match control_socket_of("cdra check", socket, Some(config)) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let running = match control::request(&socket, "config") {
        Ok((true, text)) if !text.starts_with("error") => text,
        Ok((_, text)) => {
            eprint!("cdra check: running cdra: {text}");
            return ExitCode::from(EXIT_STARTUP);
        }
        Err(e) => {
            eprintln!("cdra check: {e:#}");
            return ExitCode::from(EXIT_STARTUP);
        }
    };
    let new = match std::fs::read_to_string(config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cdra check: {}: {e}", config.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match reload::diff(&running, &new) {
        Ok(lines) if lines.is_empty() => println!("no change from the running configuration"),
        Ok(lines) => {
            println!("changes from the running configuration:");
            for l in lines {
                println!("  {l}");
            }
        }
        Err(e) => {
            eprintln!("cdra check: {e}");
            return ExitCode::from(EXIT_STARTUP);
        }
    }
    ExitCode::SUCCESS
}

fn init_logging(level: Option<&str>, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::new(l),
        None if quiet => EnvFilter::new("warn"),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

/// `cdra check`: how a pair decides which relay is active (crate::ha).
fn ha_note(settings: &config::Settings) -> Option<String> {
    let redis = match settings.store.as_ref().map(|s| &s.backend) {
        Some(config::StoreBackend::Redis(r)) => r,
        _ => return None,
    };
    Some(match settings.ha? {
        config::HaSettings::VirtualAddress { address, source } => {
            format!("pair: active while {address} ({}) is on this host", source.label())
        }
        config::HaSettings::Lease { ttl } => format!(
            "pair: no virtual address; active while holding the lease {:?} in Redis ({}, renewed every {})",
            cdra_store::lease_key(redis),
            humantime::format_duration(ttl),
            humantime::format_duration(ttl / 3)
        ),
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Reload { socket, config } => reload_command(socket, config),
        Command::Check { config, running, socket } => match config::load(&config).and_then(|s| {
            for note in links::absent_interface_notes(&s) {
                println!("{}: note: {note}", config.display());
            }
            if s.leasequery.enabled {
                let here = pool_fit::host_links(&s);
                for note in pool_fit::leasequery_subnet_notes(&s.leasequery.subnets, &here) {
                    println!("{}: note: {note}", config.display());
                }
            }
            // Spoofing mode must run on the router between the clients and the servers: the
            // one check that looks at this host (its routing table).
            if s.mode == cdra_core::Mode::Spoof {
                placement::check_host(&s)?;
            }
            // Pool mode: the pool must fit in each downstream subnet.
            if s.mode == cdra_core::Mode::Pool {
                pool_fit::check_host(&s)?;
            }
            Ok(s)
        }) {
            Ok(settings) => {
                println!(
                    "{}: ok ({} mode, {} server(s), {} downstream interface(s))",
                    config.display(),
                    settings.mode.label(),
                    settings.servers.len(),
                    settings.downstream.len()
                );
                if let Some(text) = ha_note(&settings) {
                    println!("{}: {text}", config.display());
                }
                if running {
                    return running_diff(&config, socket);
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cdra: {}: {e}", config.display());
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Run { config, log_level } => {
            let settings = match config::load(&config) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("cdra: {}: {e}", config.display());
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            init_logging(log_level.as_deref(), false);
            run(settings, None, Some(config))
        }
        Command::Cache { action, socket, config, json } => cache_command(action, socket, config, json),
        Command::Manpages { dir } => match manpages::write_all(<Cli as clap::CommandFactory>::command(), &dir) {
            Ok(files) => {
                for f in files {
                    println!("{}", f.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cdra manpages: {}: {e}", dir.display());
                ExitCode::from(EXIT_STARTUP)
            }
        },
        Command::Relay { args } => {
            if args.iter().any(|a| a == "-h" || a == "--help") {
                println!("usage: cdra relay [-4] [-d] [-q] [-a] [-D] [-c COUNT] [-A LENGTH] [-m append|replace|forward|discard] [-pf FILE] [--no-pid] [-i IF]... [-id IF]... [-iu IF]... SERVER...");
                return ExitCode::SUCCESS;
            }
            let cmd = match dhcrelay_cli::parse(&args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("cdra relay: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            init_logging(None, cmd.quiet);
            for note in &cmd.notes {
                tracing::warn!("{note}");
            }
            run(cmd.settings, cmd.pid_file, None)
        }
    }
}

fn run(settings: config::Settings, pid_file: Option<String>, config_path: Option<PathBuf>) -> ExitCode {
    if let Some(path) = &pid_file {
        if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
            eprintln!("cdra: cannot write pid file {path}: {e}");
            return ExitCode::from(EXIT_STARTUP);
        }
    }
    let result = daemon::run(settings, config_path);
    if let Some(path) = &pid_file {
        let _ = std::fs::remove_file(path);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line naming the cause; never a backtrace.
            eprintln!("cdra: {e:#}");
            ExitCode::from(EXIT_STARTUP)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ha_note;

    #[test]
    fn cdra_check_says_what_decides_which_relay_is_active() {
        let proxy = "mode = \"proxy\"\nservers = [\"10.0.0.1\"]\n[[downstream]]\ninterface = \"eth1\"\n";
        let redis = "[store]\nbackend = \"redis\"\nurl = \"redis://10.0.0.9/0\"\nkey_prefix = \"cdra:site1\"\n";
        let lease = crate::config::parse(&format!("{proxy}{redis}")).expect("valid");
        assert_eq!(
            ha_note(&lease).as_deref(),
            Some("pair: no virtual address; active while holding the lease \"cdra:site1:active\" in Redis (3s, renewed every 1s)")
        );
        let address = crate::config::parse(&format!("{}address = \"10.1.1.1\"\n{redis}", proxy)).expect("valid");
        assert!(ha_note(&address).is_some_and(|t| t.starts_with("pair: active while 10.1.1.1 (the first downstream")));
        assert_eq!(ha_note(&crate::config::parse(proxy).expect("valid")), None, "the embedded file: no pair");
    }
}
