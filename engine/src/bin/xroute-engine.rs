//! `xroute-engine`: the data-plane process. `run` attaches to the instance's delta channel, keeps
//! the FIB the control process programs, and forwards between the `--port` interfaces with XDP
//! and AF_XDP workers; `load-table` builds a FIB from a prefix list and reports what it did.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;
use xroute_engine::dataplane::{self, Dataplane, DataplaneConfig};
use xroute_engine::fib::{GroupId, Prefix, RouteChange};
use xroute_engine::service::{Service, ServiceOptions};
use xroute_engine::xsk::BindMode;
use xroute_engine::{cpu, table};

#[derive(Parser, Debug)]
#[command(name = "xroute-engine", version, about = "xroute data plane")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the engine: apply the FIB deltas of the instance's control process and forward
    /// between the given ports until SIGTERM or SIGINT. With no ports it runs the FIB writer
    /// only.
    ///
    /// Each port gets the XDP program (the router's own traffic, ARP and ND go to the kernel;
    /// transit IPv4/IPv6 to the AF_XDP socket of the receiving queue) and one socket per queue.
    /// Queue q of every port is served by the worker of the (q mod workers)-th core, so every
    /// worker must have a queue on every port. Stopping detaches XDP and closes the sockets.
    Run {
        /// Router instance: the channel is <shm-dir>/xroute-<instance>.
        #[arg(long, default_value = "default")]
        instance: String,
        /// Directory of the shared-memory channel file.
        #[arg(long, default_value = "/dev/shm")]
        shm_dir: PathBuf,
        /// The engine socket is <run-dir>/<instance>/engine.sock.
        #[arg(long, default_value = "/run/xroute")]
        run_dir: PathBuf,
        /// Interface to forward on (repeat for each port), as named by the control process's
        /// configuration.
        #[arg(long = "port", value_name = "IFNAME")]
        ports: Vec<String>,
        /// Queues to serve per port (default: every receive queue of the interface).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
        queues: Option<u32>,
        /// CPUs for the workers, one worker each: a list like 2,3 or a range like 2-5
        /// (default: the last CPU the process may use).
        #[arg(long, value_parser = parse_cores)]
        cores: Option<CoreList>,
        /// AF_XDP mode: auto tries zero-copy and falls back to copy mode (veth has only copy).
        #[arg(long, value_enum, default_value_t = XdpModeArg::Auto)]
        xdp_mode: XdpModeArg,
        /// UMEM frame size in bytes (2048 or 4096; 4096 for jumbo frames up to ~3.5 KB).
        #[arg(long, default_value_t = 2048)]
        frame_size: u32,
        /// UMEM frames per worker (default: enough to fill every ring of its sockets).
        #[arg(long)]
        frames: Option<u32>,
        /// Entries in each AF_XDP ring (power of two).
        #[arg(long, default_value_t = 2048)]
        ring_size: u32,
        /// ICMP errors per second per worker (0 disables them).
        #[arg(long, default_value_t = 1000)]
        icmp_rate: u32,
        /// Empty polling rounds before a worker sleeps until traffic arrives: 0 sleeps at once
        /// (least CPU, best when the kernel's receive processing shares the worker's core, as
        /// on veth); thousands keep latency lowest on a dedicated, isolated core.
        #[arg(long, default_value_t = dataplane::config::DEFAULT_SPIN_ROUNDS)]
        spin_rounds: u32,
    },
    /// Load a prefix list into the FIB, verify it and report build time, memory and lookup rate.
    ///
    /// Each prefix is given one of --groups synthetic next hops (chosen by hashing the prefix),
    /// since a bare prefix list carries none.
    LoadTable {
        /// Prefix list, one prefix per line, optionally .gz (default: the shared full table).
        #[arg(long)]
        table: Option<PathBuf>,
        /// Number of distinct next-hop groups to spread the prefixes over.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65_535))]
        groups: u32,
        /// Addresses to look up after loading, printed with their answer.
        #[arg(long = "lookup", value_name = "ADDR")]
        lookups: Vec<IpAddr>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {}", xroute_common::report::error_line(e.as_ref()));
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    cpu::check().map_err(anyhow::Error::msg)?;
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            instance,
            shm_dir,
            run_dir,
            ports,
            queues,
            cores,
            xdp_mode,
            frame_size,
            frames,
            ring_size,
            icmp_rate,
            spin_rounds,
        } => {
            let cores = match cores {
                Some(c) => c.0,
                None => dataplane::allowed_cpus().last().copied().into_iter().collect(),
            };
            let dp = DataplaneConfig {
                hash_seed: seed_from(&instance),
                ports,
                queues,
                cores,
                mode: match xdp_mode {
                    XdpModeArg::Auto => BindMode::Auto,
                    XdpModeArg::ZeroCopy => BindMode::ZeroCopyOnly,
                    XdpModeArg::Copy => BindMode::CopyOnly,
                },
                frame_size,
                frames,
                ring_size,
                icmp_rate,
                spin_rounds,
            };
            run_engine(
                ServiceOptions {
                    instance,
                    shm_dir,
                    run_dir,
                },
                dp,
            )
        }
        Command::LoadTable {
            table,
            groups,
            lookups,
            json,
        } => load_table(table, groups, &lookups, json),
    }
}

fn run_engine(opts: ServiceOptions, dp: DataplaneConfig) -> Result<()> {
    if opts.instance.is_empty()
        || opts.instance.len() > 32
        || !opts
            .instance
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        bail!(
            "instance name {:?}: use 1 to 32 letters, digits, '-' or '_'",
            opts.instance
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handlers")?;
    }
    let mut service = Service::start(&opts)?;
    if dp.ports.is_empty() {
        eprintln!(
            "xroute-engine: instance {} attached to {} (no ports: FIB writer only); socket {}",
            opts.instance,
            opts.channel_path().display(),
            opts.socket_path().display()
        );
        service.run(&stop, |_| {});
        eprintln!("xroute-engine: stopped");
        return Ok(());
    }
    let (dataplane, mut slow) = Dataplane::start(&dp, &service.fib_handle(), service.channel())?;
    for s in &dataplane.sockets {
        eprintln!(
            "xroute-engine: {} queue {}: worker {} on CPU {}, AF_XDP {} mode{}",
            s.port,
            s.queue,
            s.worker,
            s.cpu,
            s.mode,
            s.fallback
                .as_deref()
                .map(|f| format!(
                    " (zero-copy refused: {})",
                    f.trim_end_matches("; use copy or auto mode")
                ))
                .unwrap_or_default()
        );
    }
    eprintln!(
        "xroute-engine: instance {} forwarding on {} with {} worker(s); channel {}; socket {}",
        opts.instance,
        dp.ports.join(", "),
        dp.cores.len(),
        opts.channel_path().display(),
        opts.socket_path().display()
    );
    service.run(&stop, |p| slow.tick(p));
    slow.detach();
    dataplane.stop();
    eprintln!("xroute-engine: stopped (XDP detached, sockets closed)");
    Ok(())
}

/// The flow hash seed: the instance name hashed, so routers in series differ when their
/// instances do (and one router hashes the same across restarts).
fn seed_from(instance: &str) -> u64 {
    instance.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum XdpModeArg {
    Auto,
    ZeroCopy,
    Copy,
}

#[derive(Clone, Debug)]
struct CoreList(Vec<usize>);

/// Parses "2", "2,3", "2-5" or a mix ("0,2-3").
fn parse_cores(s: &str) -> Result<CoreList, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let bad = || format!("{part:?} is not a CPU number or range (like 2 or 2-5)");
        match part.split_once('-') {
            Some((a, b)) => {
                let a: usize = a.trim().parse().map_err(|_| bad())?;
                let b: usize = b.trim().parse().map_err(|_| bad())?;
                if a > b || b - a >= 1024 {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(CoreList(out))
}

fn load_table(path: Option<PathBuf>, groups: u32, lookups: &[IpAddr], json: bool) -> Result<()> {
    let path = match path {
        Some(p) => p,
        None => table::shared_path(table::REAL_TABLE)
            .context("no --table given and shared/data/fib/prefixes.txt.gz not found beside the checkout (set XROUTE_SHARED)")?,
    };
    let t0 = Instant::now();
    let prefixes = table::read_prefixes(&path)?;
    let read_s = t0.elapsed().as_secs_f64();

    let mut fib = table::fib_with_synthetic_groups(groups)?;
    let changes: Vec<RouteChange> = prefixes
        .iter()
        .map(|p| RouteChange::Set(*p, table::synthetic_group(p, groups)))
        .collect();
    let t1 = Instant::now();
    fib.apply(changes)?;
    let build_s = t1.elapsed().as_secs_f64();

    // Verify: every prefix's first and last address resolves to a route at least as specific.
    let mut reader = fib.reader()?;
    let mut wrong = 0usize;
    {
        let view = reader.view();
        for p in &prefixes {
            let want = table::synthetic_group(p, groups);
            let (first, last) = match p {
                Prefix::V4(n) => (IpAddr::V4(n.addr()), IpAddr::V4((n.last() as u32).into())),
                Prefix::V6(n) => (IpAddr::V6(n.addr()), IpAddr::V6(n.last().into())),
            };
            for a in [first, last] {
                let got = view.lookup(a);
                // A more specific prefix may cover the edge; it must then exist in the table.
                if got != Some(want) && got.is_none() {
                    wrong += 1;
                }
            }
        }
    }
    if wrong > 0 {
        bail!("{wrong} table addresses found no route after loading");
    }

    // A quick single-thread lookup rate: a million addresses, each inside a table prefix
    // picked at random (xorshift, fixed seed), so the caches see no order to exploit.
    let v4: Vec<(u32, u32)> = prefixes
        .iter()
        .filter_map(|p| match p {
            Prefix::V4(n) => Some((n.first() as u32, (n.last() - n.first()) as u32)),
            Prefix::V6(_) => None,
        })
        .collect();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let probe: Vec<u32> = (0..1 << 20)
        .filter_map(|_| {
            let (first, span) = *v4.get((next() % v4.len().max(1) as u64) as usize)?;
            Some(first | (next() as u32 & span))
        })
        .collect();
    let mut out = vec![None; probe.len()];
    let mut rates = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        reader.view().lookup_v4_batch(&probe, &mut out);
        rates.push(probe.len() as f64 / t.elapsed().as_secs_f64() / 1e6);
    }
    rates.sort_by(f64::total_cmp);
    let mlps = rates.get(rates.len() / 2).copied().unwrap_or(0.0);

    let m = fib.memory();
    let answers: Vec<(IpAddr, Option<GroupId>)> = lookups.iter().map(|a| (*a, fib.lookup(*a))).collect();
    if json {
        let ans: Vec<String> = answers
            .iter()
            .map(|(a, g)| {
                format!(
                    "{{\"addr\":\"{a}\",\"group\":{}}}",
                    g.map_or("null".into(), |g| g.to_string())
                )
            })
            .collect();
        println!(
            "{{\"table\":\"{}\",\"routes_v4\":{},\"routes_v6\":{},\"read_s\":{read_s:.3},\"build_s\":{build_s:.3},\
             \"v4_bytes\":{},\"v6_bytes\":{},\"v4_nodes\":{},\"v4_leaves\":{},\"v6_nodes\":{},\"v6_leaves\":{},\
             \"batched_v4_mlps\":{mlps:.1},\"lookups\":[{}]}}",
            path.display(),
            fib.len_v4(),
            fib.len_v6(),
            m.v4.total_bytes(),
            m.v6.total_bytes(),
            m.v4.nodes,
            m.v4.leaves,
            m.v6.nodes,
            m.v6.leaves,
            ans.join(",")
        );
        return Ok(());
    }
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    println!("table     {}", path.display());
    println!(
        "routes    {} IPv4 + {} IPv6 over {groups} next-hop groups (read in {read_s:.2} s)",
        fib.len_v4(),
        fib.len_v6()
    );
    println!("build     {build_s:.3} s (one batch, every touched subtree built once)");
    println!(
        "memory    IPv4 {:.2} MiB, IPv6 {:.2} MiB (nodes/leaves/compact roots: IPv4 {}/{}/{:.0} KiB, IPv6 {}/{}/{:.0} KiB)",
        mib(m.v4.total_bytes()),
        mib(m.v6.total_bytes()),
        m.v4.nodes,
        m.v4.leaves,
        m.v4.compact_bytes as f64 / 1024.0,
        m.v6.nodes,
        m.v6.leaves,
        m.v6.compact_bytes as f64 / 1024.0
    );
    println!(
        "verified  first and last address of all {} prefixes resolve",
        prefixes.len()
    );
    println!(
        "lookups   {mlps:.0} M/s batched IPv4 on one core, random addresses inside random table prefixes \
         (median of 7 passes; criterion figures: scripts/bench-fib.sh)"
    );
    for (a, g) in answers {
        match g {
            Some(g) => println!("lookup    {a} -> group {g}"),
            None => println!("lookup    {a} -> no route"),
        }
    }
    Ok(())
}
