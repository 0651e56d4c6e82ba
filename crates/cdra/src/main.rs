//! `cdra`: a caching DHCPv4 relay agent.
//!
//! - `cdra run --config FILE`: run in the foreground, log to stderr, exit 0 on SIGTERM/SIGINT.
//! - `cdra check --config FILE`: validate; on error print one line naming the key, exit 2.
//!   In spoofing mode it also checks that each server is routed through an upstream
//!   interface of this host ([`placement`]).
//! - `cdra relay [dhcrelay options] SERVER...`: ISC dhcrelay's command line.
//!
//! This file only dispatches; [`config`] reads the file, [`daemon`] runs the data plane.

mod config;
mod control;
mod daemon;
mod dhcrelay_cli;
mod interception;
mod management;
mod metrics;
mod persistence;
mod placement;
mod privileges;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for configuration errors (`cdra check` and `cdra run`).
const EXIT_CONFIG: u8 = 2;
/// Exit code for start-up failures (interfaces, privileges, sockets).
const EXIT_STARTUP: u8 = 1;

#[derive(Debug, Parser)]
#[command(name = "cdra", version, about = "cdra: a caching DHCPv4 relay agent", propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run in the foreground (logs to stderr; SIGTERM/SIGINT stop it, SIGUSR1 logs counters).
    Run {
        /// Configuration file (TOML).
        #[arg(long, short = 'c')]
        config: PathBuf,
        /// Log level: error, warn, info, debug, trace (overrides RUST_LOG).
        #[arg(long)]
        log_level: Option<String>,
    },
    /// Validate a configuration file; print one line naming the key on error and exit 2.
    Check {
        /// Configuration file (TOML).
        #[arg(long, short = 'c')]
        config: PathBuf,
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
    },
    /// Run as a relay with ISC dhcrelay's command line (-id IF, -iu IF, -a, -c, -m, SERVER...).
    #[command(disable_help_flag = true)]
    Relay {
        /// dhcrelay options and servers.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
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

fn cache_command(action: CacheAction, socket: Option<PathBuf>, config: Option<PathBuf>) -> ExitCode {
    let socket = match (socket, config) {
        (Some(s), _) => s,
        (None, Some(c)) => match config::load(&c) {
            Ok(settings) => match settings.control_socket {
                Some(s) => s,
                None => {
                    eprintln!("cdra cache: {}: control.socket is not set", c.display());
                    return ExitCode::from(EXIT_CONFIG);
                }
            },
            Err(e) => {
                eprintln!("cdra cache: {}: {e}", c.display());
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        (None, None) => {
            eprintln!("cdra cache: give --socket PATH or --config FILE");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let command = match action {
        CacheAction::List => "list".to_string(),
        CacheAction::Show { client } => format!("show {client}"),
        CacheAction::Flush { client } => format!("flush {client}"),
        CacheAction::Counters => "counters".to_string(),
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match config::load(&config).and_then(|s| {
            // Spoofing mode must run on the router between the clients and the servers: the
            // one check that looks at this host (its routing table).
            if s.mode == cdra_core::Mode::Spoof {
                placement::check_host(&s)?;
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
            run(settings, None)
        }
        Command::Cache { action, socket, config } => cache_command(action, socket, config),
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
            run(cmd.settings, cmd.pid_file)
        }
    }
}

fn run(settings: config::Settings, pid_file: Option<String>) -> ExitCode {
    if let Some(path) = &pid_file {
        if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
            eprintln!("cdra: cannot write pid file {path}: {e}");
            return ExitCode::from(EXIT_STARTUP);
        }
    }
    let result = daemon::run(settings);
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
