//! `xroutectl`: the operator's command line for an xroute router. It talks to `xroute-control`
//! over its Unix socket; every read command takes `--json` for scripts.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::io::{BufRead, IsTerminal, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use xroute_control::api::{
    ChangeResult, CountersReport, FibLookupEntry, FibStats, InterfaceEntry, NeighborEntry, ReloadResult,
    Request, RouteEntry, RoutePage,
};
use xroute_control::bgp::service::{NeighborDetail, PathEntry, Summary};
use xroute_control::client::Client;
use xroute_control::routefile;

#[derive(Parser, Debug)]
#[command(
    name = "xroutectl",
    version,
    about = "Control an xroute router: routes, the FIB, interfaces, neighbours, counters, BGP",
    long_about = "Control an xroute router.\n\n\
        xroutectl talks to the xroute-control daemon over its Unix socket, by default\n\
        /run/xroute/<instance>/control.sock. Read commands print text for people; with --json\n\
        every command prints one JSON document that scripts can parse (a command that changes\n\
        something prints what it changed). Nothing here talks to the engine directly: the\n\
        control process asks it, so xroutectl works the same whichever process restarted.",
    after_long_help = "EXAMPLES:\n\
        \x20   xroutectl route add 198.51.100.0/24 via 192.0.2.2     a static route\n\
        \x20   xroutectl route show --protocol ebgp --json | jq length\n\
        \x20   xroutectl fib lookup 1.1.1.1 2001:db8::1               what the engine does with them\n\
        \x20   xroutectl bgp summary                                 sessions and prefix counts\n\
        \x20   xroutectl bgp routes 1.1.1.0/24                       every path, and why the best won\n\
        \x20   xroutectl counters                                    packets and drops by reason\n\
        \x20   xroutectl --instance edge2 interfaces                 a second router on the box\n\n\
        ENVIRONMENT:\n\
        \x20   XROUTE_SOCKET   the control socket, as --socket\n\n\
        EXIT STATUS:\n\
        \x20   0 on success; 1 when the daemon cannot be reached or refuses the request (the\n\
        \x20   reason is one line on stderr, or {\"error\": ...} on stdout with --json);\n\
        \x20   2 for a command line that does not parse.\n\n\
        SEE ALSO:\n\
        \x20   xroute-control --help, xroute-engine run --help, README.md (configuration reference)"
)]
struct Cli {
    #[command(flatten)]
    target: Target,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug)]
struct Target {
    /// The daemon's socket (overrides --instance and --run-dir; also $XROUTE_SOCKET).
    #[arg(long, global = true, env = "XROUTE_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Router instance.
    #[arg(long, global = true, default_value = "default")]
    instance: String,
    /// Runtime directory of the daemons.
    #[arg(long, global = true, default_value = "/run/xroute", value_name = "DIR")]
    run_dir: PathBuf,
}

impl Target {
    fn socket(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| self.run_dir.join(&self.instance).join("control.sock"))
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Static routes and the routing table (RIB).
    #[command(subcommand)]
    Route(RouteCmd),
    /// The engine's forwarding table.
    #[command(subcommand)]
    Fib(FibCmd),
    /// Interfaces (ports): kernel state, MTU, MAC, addresses.
    Interfaces,
    /// Next hops the engine forwards to, with their MAC once resolved.
    #[command(alias = "neighbours")]
    Neighbors,
    /// Packet counters per port and per drop reason, and delta-channel counters.
    Counters {
        /// Also show drop reasons whose count is zero.
        #[arg(long)]
        all: bool,
    },
    /// The daemon's configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// BGP: sessions, paths and the decision between them, resets.
    #[command(subcommand)]
    Bgp(BgpCmd),
}

#[derive(Subcommand, Debug)]
enum BgpCmd {
    /// One line per neighbour: AS, session state and how long it has been in it, prefixes
    /// received, accepted by the import policy and advertised, messages in and out.
    Summary,
    /// One neighbour in detail: negotiated hold time, families and capabilities, policies,
    /// message and error counters, RFC 7606 repairs, the last error.
    Neighbor {
        /// The neighbour's address, as configured in [[bgp.neighbor]].
        address: IpAddr,
    },
    /// Every path of PREFIX (or of every prefix, up to --limit), best first: next hop, AS path,
    /// origin, LOCAL_PREF, MED, communities, and which step of the decision process made the
    /// best path win or the others lose.
    Routes {
        /// A prefix (exact match), e.g. 1.1.1.0/24 or 2001:db8::/32; none: every prefix.
        prefix: Option<String>,
        /// At most this many prefixes when PREFIX is not given.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Close the session with ADDRESS (NOTIFICATION Cease, administrative reset) and start it
    /// again; also restarts a session closed for too many prefixes. Other sessions and the
    /// routes learnt from them are not touched.
    Reset {
        /// The neighbour's address, as configured in [[bgp.neighbor]].
        address: IpAddr,
    },
}

#[derive(Subcommand, Debug)]
enum RouteCmd {
    /// Add or replace a static route (kept until deleted or the daemon restarts).
    ///
    /// Syntax as in `ip route`: PREFIX [via ADDR] [dev IF] [weight N] | PREFIX nexthop via ADDR
    /// [dev IF] [weight N] nexthop ... | blackhole PREFIX | unreachable PREFIX, then optionally
    /// distance N (1-255, default 1) and metric N.
    ///
    /// Examples: `xroutectl route add 198.51.100.0/24 via 192.0.2.2`;
    /// `xroutectl route add 203.0.113.0/24 nexthop via 192.0.2.2 nexthop via 192.0.2.3 weight 2`.
    Add {
        /// The route, as words (quoting is not needed).
        #[arg(required = true, num_args = 1.., value_name = "ROUTE")]
        route: Vec<String>,
    },
    /// Delete the static route(s) added with `route add` or `route import` for PREFIX.
    /// Routes from the configuration file stay: edit the file and `config reload`.
    Del {
        /// The route's prefix, e.g. 198.51.100.0/24.
        prefix: String,
        /// Only the route with this distance.
        #[arg(long)]
        distance: Option<u8>,
    },
    /// Show routes in `ip route` style: selected routes, or every candidate with --all.
    Show {
        /// Only this prefix (an address shows the route that covers it... use `fib lookup`).
        prefix: Option<String>,
        /// With PREFIX: also every more specific route inside it.
        #[arg(long)]
        longer: bool,
        /// Only routes of this protocol: connected, local, static, rip, ospf, ebgp, ibgp.
        #[arg(long)]
        protocol: Option<String>,
        /// Also candidates that lost selection or whose next hop does not resolve.
        #[arg(long)]
        all: bool,
    },
    /// Add many static routes from a file (one route per line, `route add` syntax; `-` for
    /// standard input; `.gz` is decompressed). A line that is only a prefix goes to the --via
    /// gateway of its family. Every line is checked before any is sent.
    Import {
        /// The route file; `-` reads standard input.
        file: PathBuf,
        /// Default gateway for bare-prefix lines (once per address family).
        #[arg(long, value_name = "ADDR")]
        via: Vec<IpAddr>,
        /// Routes per request.
        #[arg(long, default_value_t = 50_000)]
        chunk: usize,
        /// Wait until the engine has applied every route.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
}

#[derive(Subcommand, Debug)]
enum FibCmd {
    /// What the engine's FIB does with each address: matching prefix, next hops, port, MAC.
    /// Addresses come as arguments, or one per line on standard input.
    Lookup {
        /// IPv4 or IPv6 addresses.
        addrs: Vec<IpAddr>,
    },
    /// FIB size, memory, and how far the engine has applied the control process's deltas.
    Stats,
    /// Wait until the engine has applied every delta produced so far (exit status 1 if it
    /// has not within --timeout): a script's way to know a route change is in the data plane.
    Wait {
        /// Seconds to wait at most.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCmd {
    /// Re-read the configuration file. A bad file is reported and the running
    /// configuration stays in force.
    Reload,
}

fn main() {
    let cli = Cli::parse();
    let json = cli.json;
    if let Err(e) = run(cli) {
        if json {
            println!("{}", serde_json::json!({ "error": format!("{e:#}") }));
        } else {
            eprintln!("error: {e:#}");
        }
        std::process::exit(1);
    }
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    let mut c = Client::connect(&cli.target.socket())?;
    let json = cli.json;
    match cli.command {
        Command::Route(RouteCmd::Add { route }) => {
            let r: ChangeResult = c.get(&Request::RouteAdd {
                route: route.join(" "),
            })?;
            if json {
                print_json(&r)?;
            }
        }
        Command::Route(RouteCmd::Del { prefix, distance }) => {
            let r: ChangeResult = c.get(&Request::RouteDel { prefix, distance })?;
            if json {
                print_json(&r)?;
            }
        }
        Command::Route(RouteCmd::Show {
            prefix,
            longer,
            protocol,
            all,
        }) => {
            // Page through the table, printing as pages arrive: a full table never sits in
            // memory here or in the daemon.
            let mut after = None;
            let mut first = true;
            if json {
                println!("[");
            }
            loop {
                let page: RoutePage = c.get(&Request::RouteShow {
                    prefix: prefix.clone(),
                    longer,
                    protocol: protocol.clone(),
                    all,
                    after: after.take(),
                    limit: None,
                })?;
                let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                for r in &page.routes {
                    if json {
                        let sep = if first { "" } else { ",\n" };
                        write!(out, "{sep}{}", serde_json::to_string(r)?)?;
                    } else {
                        writeln!(out, "{}", format_route(r))?;
                    }
                    first = false;
                }
                out.flush()?;
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            if json {
                println!("\n]");
            }
        }
        Command::Route(RouteCmd::Import {
            file,
            via,
            chunk,
            wait,
            timeout,
        }) => import(&mut c, &file, &via, chunk.max(1), wait.then_some(timeout), json)?,
        Command::Fib(FibCmd::Lookup { addrs }) => {
            let addrs = if addrs.is_empty() {
                read_addresses()?
            } else {
                addrs
            };
            let mut out: Vec<FibLookupEntry> = Vec::with_capacity(addrs.len());
            for part in addrs.chunks(10_000) {
                let mut v: Vec<FibLookupEntry> = c.get(&Request::FibLookup { addrs: part.to_vec() })?;
                out.append(&mut v);
            }
            if json {
                print_json(&out)?;
            } else {
                for e in &out {
                    print_lookup(e);
                }
            }
        }
        Command::Fib(FibCmd::Stats) => {
            let s: FibStats = c.get(&Request::FibStats)?;
            if json {
                print_json(&s)?;
            } else {
                print_stats(&s);
            }
        }
        Command::Fib(FibCmd::Wait { timeout }) => {
            let t0 = Instant::now();
            let s = wait_applied(&mut c, Duration::from_secs(timeout))?;
            if json {
                print_json(&s)?;
            } else {
                println!(
                    "engine applied up to delta {} ({:.3} s)",
                    s.applied_seq,
                    t0.elapsed().as_secs_f64()
                );
            }
        }
        Command::Bgp(cmd) => bgp(&mut c, cmd, json)?,
        Command::Interfaces => {
            let v: Vec<InterfaceEntry> = c.get(&Request::Interfaces)?;
            if json {
                print_json(&v)?;
            } else {
                for i in &v {
                    println!(
                        "{:>2}: {:<15} {:<6} ifindex {:<4} mtu {:<5} mac {}  {}",
                        i.port,
                        i.name,
                        i.state,
                        i.ifindex,
                        i.mtu,
                        i.mac,
                        i.addresses.join(" ")
                    );
                }
            }
        }
        Command::Neighbors => {
            let v: Vec<NeighborEntry> = c.get(&Request::Neighbors)?;
            if json {
                print_json(&v)?;
            } else {
                for n in &v {
                    let addr = n.address;
                    let dev = n.dev.clone().unwrap_or_else(|| format!("port{}", n.port));
                    match &n.mac {
                        Some(m) => println!("{addr} dev {dev} lladdr {m} REACHABLE"),
                        None => println!("{addr} dev {dev} INCOMPLETE"),
                    }
                }
            }
        }
        Command::Counters { all } => {
            let r: CountersReport = c.get(&Request::Counters)?;
            if json {
                print_json(&r)?;
            } else {
                for p in &r.ports {
                    println!(
                        "port {} {}: rx {} pkts {} bytes, tx {} pkts {} bytes, to kernel {}",
                        p.port, p.name, p.rx_packets, p.rx_bytes, p.tx_packets, p.tx_bytes, p.to_kernel
                    );
                    let drops: Vec<String> = p
                        .drops
                        .iter()
                        .filter(|(_, n)| all || *n > 0)
                        .map(|(name, n)| format!("{name} {n}"))
                        .collect();
                    if drops.is_empty() {
                        println!("  drops: none");
                    } else {
                        println!("  drops: {}", drops.join(", "));
                    }
                }
                println!(
                    "deltas: produced {}, applied {}, rejected {}",
                    r.deltas_produced, r.deltas_applied, r.deltas_rejected
                );
            }
        }
        Command::Config(ConfigCmd::Reload) => {
            let r: ReloadResult = c.get(&Request::ConfigReload)?;
            if json {
                print_json(&r)?;
            } else {
                println!(
                    "reloaded {}: {} interfaces, {} static routes ({} new, {} removed)",
                    r.file, r.interfaces, r.static_routes, r.routes_added, r.routes_removed
                );
            }
        }
    }
    Ok(())
}

/// One route in `ip route` form.
fn format_route(r: &RouteEntry) -> String {
    let mut s = String::new();
    if r.kind != "unicast" {
        s.push_str(&r.kind);
        s.push(' ');
    }
    s.push_str(&r.prefix);
    if let [h] = r.nexthops.as_slice() {
        if let Some(v) = h.via {
            s.push_str(&format!(" via {v}"));
        }
        if let Some(d) = &h.dev {
            s.push_str(&format!(" dev {d}"));
        }
    }
    s.push_str(&format!(" proto {}", r.protocol));
    if r.protocol == "connected" {
        s.push_str(" scope link");
    }
    s.push_str(&format!(" distance {} metric {}", r.distance, r.metric));
    if r.fib != "inactive" || r.selected {
        s.push(' ');
        s.push_str(&r.fib);
    } else {
        s.push_str(" inactive");
    }
    if r.kind == "unicast" && r.nexthops.is_empty() {
        s.push_str(" unresolved");
    }
    if r.nexthops.len() > 1 {
        for h in &r.nexthops {
            s.push_str("\n\tnexthop");
            if let Some(v) = h.via {
                s.push_str(&format!(" via {v}"));
            }
            if let Some(d) = &h.dev {
                s.push_str(&format!(" dev {d}"));
            }
            s.push_str(&format!(" weight {}", h.weight));
        }
    }
    s
}

fn print_lookup(e: &FibLookupEntry) {
    let r = &e.engine;
    let Some(prefix) = &r.prefix else {
        println!("{}: no route", r.addr);
        return;
    };
    let mut line = format!("{} -> {prefix}", r.addr);
    for m in &r.members {
        match m.action.as_str() {
            "forward" => {
                let via = m
                    .next_hop
                    .map_or_else(|| "directly".to_string(), |v| format!("via {v}"));
                let dev = m.port_name.clone().unwrap_or_else(|| format!("port{}", m.port));
                // A connected route's hosts are resolved one by one (see `neighbors`).
                let mac = match (&m.mac, m.next_hop) {
                    (Some(mac), _) => format!(" mac {mac}"),
                    (None, Some(_)) => " mac unresolved".into(),
                    (None, None) => String::new(),
                };
                line.push_str(&format!(
                    "\n\t{via} dev {dev} port {}{mac} mtu {} weight {}",
                    m.port, m.mtu, m.weight
                ));
            }
            other => line.push_str(&format!("\n\t{other}")),
        }
    }
    if !e.agrees {
        line.push_str(&format!(
            "\n\twarning: the RIB selects {}",
            e.rib_prefix.as_deref().unwrap_or("no route")
        ));
    }
    println!("{line}");
}

fn print_stats(s: &FibStats) {
    println!(
        "engine:        {}{}",
        s.engine_state,
        if s.engine_attached {
            format!(" (pid {})", s.engine_pid)
        } else {
            String::new()
        }
    );
    println!("fib routes:    {} IPv4, {} IPv6", s.routes_v4, s.routes_v6);
    println!(
        "rib routes:    {} IPv4, {} IPv6 selected; {} candidates, {} unresolved",
        s.rib_routes_v4, s.rib_routes_v6, s.rib_candidates, s.rib_unresolved
    );
    println!(
        "fib memory:    {:.1} MiB",
        s.memory_bytes as f64 / (1 << 20) as f64
    );
    println!("groups:        {}  adjacencies: {}", s.groups, s.adjacencies);
    println!(
        "deltas:        produced {}, applied {}, queued {}, rejected {}",
        s.produced_seq, s.applied_seq, s.queued, s.rejected
    );
    println!(
        "resyncs:       {} sent, {} done (last swept {} stale routes)",
        s.resyncs_sent, s.resyncs_done, s.last_resync_swept
    );
    println!("channel:       {} ({} slots)", s.channel, s.ring_capacity);
}

fn read_addresses() -> Result<Vec<IpAddr>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        bail!("give addresses as arguments or one per line on standard input");
    }
    let mut out = Vec::new();
    for (i, line) in stdin.lock().lines().enumerate() {
        let line = line?;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        out.push(
            t.parse()
                .with_context(|| format!("stdin line {}: {t:?} is not an address", i + 1))?,
        );
    }
    Ok(out)
}

fn wait_applied(c: &mut Client, timeout: Duration) -> Result<FibStats> {
    let deadline = Instant::now() + timeout;
    loop {
        let s: FibStats = c.get(&Request::FibStats)?;
        if !s.engine_attached {
            bail!("xroute-engine is not running");
        }
        if s.queued == 0 && s.applied_seq >= s.produced_seq && s.engine_state == "in-sync" {
            return Ok(s);
        }
        if Instant::now() > deadline {
            bail!(
                "the engine has applied {} of {} deltas ({} queued) after {} s",
                s.applied_seq,
                s.produced_seq,
                s.queued,
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn import(
    c: &mut Client,
    file: &Path,
    via: &[IpAddr],
    chunk: usize,
    wait: Option<u64>,
    json: bool,
) -> Result<()> {
    let t0 = Instant::now();
    let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        routefile::open_text(file)?
    };
    let mut lines = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("{}: read error", file.display()))?;
        let text = line.split('#').next().unwrap_or("").trim();
        if text.is_empty() {
            continue;
        }
        let route = routefile::with_default_gateway(text, via)
            .map_err(|m| anyhow::anyhow!("{}:{}: {m}", file.display(), i + 1))?;
        // Bare prefixes become explicit so that the daemon needs no defaults.
        if text.split_whitespace().nth(1).is_none() {
            lines.push(match &route.kind {
                xroute_control::routetext::RouteKind::NextHops(h) => {
                    format!(
                        "{} via {}",
                        route.prefix,
                        h.first()
                            .and_then(|h| h.via)
                            .map_or_else(String::new, |v| v.to_string())
                    )
                }
                _ => text.to_string(),
            });
        } else {
            lines.push(text.to_string());
        }
    }
    let parsed = t0.elapsed();
    let mut total = ChangeResult::default();
    for part in lines.chunks(chunk) {
        let r: ChangeResult = c.get(&Request::RouteImport { lines: part.to_vec() })?;
        total.added += r.added;
    }
    let sent = t0.elapsed();
    let applied = match wait {
        Some(t) => Some(wait_applied(c, Duration::from_secs(t))?),
        None => None,
    };
    let done = t0.elapsed();
    if json {
        print_json(&serde_json::json!({
            "routes": total.added,
            "read_seconds": parsed.as_secs_f64(),
            "sent_seconds": sent.as_secs_f64(),
            "applied_seconds": applied.as_ref().map(|_| done.as_secs_f64()),
            "applied_seq": applied.as_ref().map(|s| s.applied_seq),
        }))?;
    } else {
        println!(
            "imported {} routes from {} in {:.2} s (read {:.2} s)",
            total.added,
            file.display(),
            sent.as_secs_f64(),
            parsed.as_secs_f64()
        );
        if let Some(s) = applied {
            println!(
                "engine applied them: {:.2} s after the start, {} IPv4 + {} IPv6 routes in the FIB",
                done.as_secs_f64(),
                s.routes_v4,
                s.routes_v6
            );
        }
    }
    Ok(())
}

fn bgp(c: &mut Client, cmd: BgpCmd, json: bool) -> Result<()> {
    match cmd {
        BgpCmd::Summary => {
            let s: Summary = c.get(&Request::BgpSummary)?;
            if json {
                return print_json(&s);
            }
            println!(
                "BGP AS{}, router ID {}, {} prefixes",
                s.local_as, s.router_id, s.prefixes
            );
            println!(
                "{:<26} {:>10} {:<20} {:>10} {:>9} {:>9} {:>10} {:>9} {:>9}",
                "Neighbor", "AS", "State", "For", "Received", "Accepted", "Advertised", "MsgIn", "MsgOut"
            );
            for n in &s.neighbors {
                println!(
                    "{:<26} {:>10} {:<20} {:>10} {:>9} {:>9} {:>10} {:>9} {:>9}",
                    n.address.to_string(),
                    n.remote_as,
                    n.state,
                    n.state_seconds.map_or_else(|| "-".to_owned(), duration),
                    n.received,
                    n.accepted,
                    n.advertised,
                    n.messages_in,
                    n.messages_out
                );
                if n.state != "Established" {
                    if let Some(e) = &n.last_error {
                        println!("{:<26} last error: {e}", "");
                    }
                }
            }
        }
        BgpCmd::Neighbor { address } => {
            let d: NeighborDetail = c.get(&Request::BgpNeighbor { address })?;
            if json {
                return print_json(&d);
            }
            let s = &d.summary;
            let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
            println!(
                "neighbor {} AS{} ({}){}",
                s.address,
                s.remote_as,
                d.kind,
                s.description
                    .as_ref()
                    .map_or(String::new(), |x| format!(" \"{x}\""))
            );
            println!("  state {} for {}", s.state, opt(s.state_seconds.map(duration)));
            println!(
                "  local address {}, peer router ID {}",
                opt(d.local_address.map(|a| a.to_string())),
                opt(d.peer_router_id.map(|a| a.to_string()))
            );
            println!(
                "  hold time {} s, keepalive {} s, 4-octet AS {}, route refresh {}, families {}",
                opt(d.hold_time.map(|x| x.to_string())),
                opt(d.keepalive.map(|x| x.to_string())),
                opt(d.four_octet_as.map(|x| x.to_string())),
                opt(d.route_refresh.map(|x| x.to_string())),
                if d.families.is_empty() {
                    "-".to_owned()
                } else {
                    d.families.join(" ")
                }
            );
            println!(
                "  import {}, export {}, max prefixes {}{}{}",
                d.import,
                d.export,
                opt(d.max_prefixes.map(|x| x.to_string())),
                if d.passive { ", passive" } else { "" },
                if d.shutdown { ", shut down" } else { "" }
            );
            println!(
                "  prefixes received {}, accepted {}, advertised {}",
                s.received, s.accepted, s.advertised
            );
            println!(
                "  messages in {} out {}; updates in {} out {}; notifications in {} out {}",
                s.messages_in,
                s.messages_out,
                d.updates_in,
                d.updates_out,
                d.notifications_in,
                d.notifications_out
            );
            println!(
                "  established {} time(s), {} connection attempt(s)",
                d.established_transitions, d.connect_attempts
            );
            if d.repaired_updates > 0 {
                println!(
                    "  {} malformed UPDATE(s) repaired (RFC 7606), last: {}",
                    d.repaired_updates,
                    opt(d.last_repair.clone())
                );
            }
            if let Some(e) = &s.last_error {
                println!("  last error: {e}");
            }
            for conn in &d.connections {
                println!("  connection {conn}");
            }
        }
        BgpCmd::Routes { prefix, limit } => {
            let v: Vec<PathEntry> = c.get(&Request::BgpRoutes {
                prefix,
                limit: Some(limit),
            })?;
            if json {
                return print_json(&v);
            }
            let mut last = None;
            for p in &v {
                if last != Some(p.prefix) {
                    println!("{}", p.prefix);
                    last = Some(p.prefix);
                }
                let mark = if p.best {
                    "*"
                } else if p.multipath {
                    "="
                } else {
                    " "
                };
                // Our own networks: no peer, and the next hop is ours (given per session).
                let (via, from) = match p.peer {
                    Some(a) => (p.next_hop.to_string(), a.to_string()),
                    None => ("self".to_owned(), "local".to_owned()),
                };
                let mut line = format!(
                    "  {mark} via {via} from {from}  path [{}] {}",
                    p.as_path, p.origin
                );
                if let Some(lp) = p.local_pref {
                    line.push_str(&format!("  local-pref {lp}"));
                }
                if let Some(med) = p.med {
                    line.push_str(&format!("  med {med}"));
                }
                match p.igp_cost {
                    Some(c) => line.push_str(&format!("  igp-cost {c}")),
                    None => line.push_str("  next hop unreachable"),
                }
                if !p.communities.is_empty() {
                    line.push_str(&format!("  communities {}", p.communities.join(" ")));
                }
                if let Some(a) = &p.aggregator {
                    line.push_str(&format!("  aggregator {a}"));
                }
                if p.atomic_aggregate {
                    line.push_str("  atomic-aggregate");
                }
                match (&p.reason, p.best) {
                    (Some(r), true) => line.push_str(&format!("  (best: {r})")),
                    (Some(r), false) => line.push_str(&format!("  (lost: {r})")),
                    (None, _) => {}
                }
                println!("{line}");
            }
        }
        BgpCmd::Reset { address } => {
            let r: ChangeResult = c.get(&Request::BgpReset { address })?;
            if json {
                return print_json(&r);
            }
            println!("reset the session with {address}");
        }
    }
    Ok(())
}

/// Seconds as `1d02:03:04` / `02:03:04`.
fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_and_argument_is_documented() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                if a.get_help().is_none() && !matches!(a.get_id().as_str(), "help" | "version") {
                    missing.push(format!("{path} {}", a.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {}", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "xroutectl", &mut missing);
        assert!(missing.is_empty(), "undocumented: {missing:?}");
    }

    #[test]
    fn bad_arguments_are_refused_by_the_parser() {
        for args in [
            &["xroutectl", "bgp", "reset", "1.2.3"][..],
            &["xroutectl", "fib", "lookup", "not-an-address"],
            &["xroutectl", "fib", "wait", "--timeout", "-1"],
            &["xroutectl", "route"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?} parsed");
        }
        let ok = Cli::try_parse_from(["xroutectl", "--json", "bgp", "routes", "1.1.1.0/24"]).unwrap();
        assert!(ok.json);
    }
}
