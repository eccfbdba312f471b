//! `xroute-control`: the control-plane daemon. Reads the configuration, keeps the RIB, programs
//! the engine's FIB through the shared-memory delta channel and serves `xroutectl`.

use clap::Parser;
use std::path::PathBuf;
use xroute_control::daemon::{self, Options};

/// Where the daemon looks for its configuration when --config is not given.
const DEFAULT_CONFIG_PATH: &str = "/etc/xroute/xroute.toml";

#[derive(Parser, Debug)]
#[command(
    name = "xroute-control",
    version,
    about = "xroute control plane: configuration, RIB, FIB programming, management socket",
    long_about = "xroute control plane.\n\n\
        Reads the configuration (--config, else /etc/xroute/xroute.toml if it exists, else the\n\
        embedded default), keeps the RIB, and programs the engine's FIB through the\n\
        shared-memory channel <shm-dir>/xroute-<instance>. xroutectl talks to it on\n\
        <run-dir>/<instance>/control.sock. SIGHUP reloads the configuration; SIGTERM or SIGINT\n\
        stop it (the engine keeps forwarding with the FIB it has)."
)]
struct Cli {
    /// Configuration file (TOML; see xroute.toml.example).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check the configuration, print it as understood, and exit.
    #[arg(long)]
    check: bool,
    /// Ring slots (64-byte records) if this process creates the channel file.
    #[arg(long, default_value_t = xroute_common::shm::DEFAULT_CAPACITY)]
    ring_capacity: usize,
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("XROUTE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config_path = cli.config.or_else(|| {
        let p = PathBuf::from(DEFAULT_CONFIG_PATH);
        p.exists().then_some(p)
    });
    if cli.check {
        match daemon::initial_config(config_path.as_deref()) {
            Ok(cfg) => {
                print!("{}", cfg.to_toml());
                return;
            }
            Err(e) => {
                eprintln!("error: {}", xroute_common::report::error_line(e.as_ref()));
                std::process::exit(1);
            }
        }
    }
    if let Err(e) = daemon::run(Options {
        config_path,
        ring_capacity: cli.ring_capacity,
    }) {
        eprintln!("error: {}", xroute_common::report::error_line(e.as_ref()));
        std::process::exit(1);
    }
}
