//! The control daemon's configuration: a TOML file, or the embedded default when there is none.
//!
//! Parsing happens in two layers. The serde layer (`raw`) only knows the shape of the file: it
//! keeps every value that needs a check as a [`toml::Spanned`] string or integer, so that the
//! second layer (`validate`) can point at the exact value when a semantic check fails (a
//! gateway of the wrong family, a prefix with host bits, a route to an undefined interface). What
//! the rest of the daemon sees ([`Config`]) is plain validated data, without spans.
//!
//! Every failure, from a TOML syntax error to a duplicate static route, becomes one
//! [`ConfigError`] that names the file, the line and column, and the field, so an operator can
//! fix the file without guessing. [`parse`] has no side effects: on reload the daemon parses the
//! new file and keeps the running configuration if that fails.

mod bgp;
mod raw;
mod render;
mod validate;

pub use bgp::{BgpConfig, NeighborConfig, PolicyRef};

pub(crate) use validate::parse_gateway;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;

/// The configuration the daemon runs with when no file is given. It must parse (tested).
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// The instance name when `[router] instance` is not set.
pub const DEFAULT_INSTANCE: &str = "default";
/// The run directory when `[router] run-dir` is not set.
pub const DEFAULT_RUN_DIR: &str = "/run/xroute";
/// The shared-memory directory when `[router] shm-dir` is not set.
pub const DEFAULT_SHM_DIR: &str = "/dev/shm";
/// The longest instance name: it becomes part of file names (`/dev/shm/xroute-<instance>`).
pub const MAX_INSTANCE_LEN: usize = 32;
/// Linux's `IFNAMSIZ` (16) minus the terminating NUL.
pub const MAX_INTERFACE_NAME_LEN: usize = 15;
/// The most next hops a static route may have (the size of the largest ECMP group we build).
pub const MAX_NEXT_HOPS: usize = 64;
/// The smallest MTU: the IPv4 minimum (RFC 791).
pub const MIN_MTU: u32 = 68;
/// The smallest MTU on an interface with an IPv6 address (RFC 8200, section 5).
pub const MIN_IPV6_MTU: u32 = 1280;
/// The largest MTU.
pub const MAX_MTU: u32 = 65535;
/// The administrative distance of a static route when `distance` is not set.
pub const DEFAULT_STATIC_DISTANCE: u8 = 1;
/// The Prometheus endpoint's port when `[metrics] listen` is not set. Prometheus's list of
/// exporter ports (9100-9999) is fully allocated, so no free number exists there; this one is
/// unlikely to meet another exporter on a router, and `listen` moves it.
pub const DEFAULT_METRICS_PORT: u16 = 9842;

/// Reads and parses a configuration file. I/O errors name the file too.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let origin = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mut config = parse(&text, &origin)?;
            // Route files named relative to the configuration file live beside it.
            let dir = path.parent().unwrap_or(Path::new("."));
            for f in &mut config.route_files {
                if f.path.is_relative() {
                    f.path = dir.join(&f.path);
                }
            }
            Ok(config)
        }
        Err(e) => Err(ConfigError {
            origin,
            line: None,
            column: None,
            field: String::new(),
            message: format!("cannot read the configuration: {e}"),
        }),
    }
}

/// Parses and validates configuration text. `origin` names the text in errors: the file name,
/// or `"<default>"` for [`DEFAULT_CONFIG`]. No side effects; never panics.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let raw = raw::deserialize(text, origin)?;
    validate::validate(raw, text, origin)
}

/// Why a configuration was rejected. Displays as one line:
/// `<origin>:<line>:<column>: <field>: <message>`, leaving out what is unknown (an I/O error
/// has no line; a syntax error has no field).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name, or `"<default>"`.
    pub origin: String,
    /// 1-based line of the offending text.
    pub line: Option<usize>,
    /// 1-based column (in characters) of the offending text.
    pub column: Option<usize>,
    /// The field path as written in the file, indices 0-based in file order, e.g.
    /// `route[3].next-hop[1].via`; empty when the error is not about one field.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `[router]`: who this instance is and where its files live.
    pub router: Router,
    /// `[[interface]]`, in file order.
    pub interfaces: Vec<InterfaceConfig>,
    /// `[[route]]`: static routes, in file order.
    pub routes: Vec<StaticRoute>,
    /// `[[route-file]]`: files of static routes (a full table, say), in file order.
    pub route_files: Vec<RouteFile>,
    /// `[rip]`.
    pub rip: ProtocolSection,
    /// `[ospf]`.
    pub ospf: ProtocolSection,
    /// `[bgp]`.
    pub bgp: BgpConfig,
    /// `[metrics]`: the Prometheus endpoint.
    pub metrics: MetricsConfig,
}

impl Config {
    /// Renders the configuration as TOML that [`parse`] reads back to an equal `Config`, for
    /// every `Config` that `parse` produced (the running configuration, as `show` prints it).
    pub fn to_toml(&self) -> String {
        render::to_toml(self)
    }

    /// The interface with this name.
    pub fn interface(&self, name: &str) -> Option<&InterfaceConfig> {
        self.interfaces.iter().find(|i| i.name == name)
    }
}

impl Default for Config {
    /// The same configuration as [`DEFAULT_CONFIG`].
    fn default() -> Self {
        Config {
            router: Router::default(),
            interfaces: Vec::new(),
            routes: Vec::new(),
            route_files: Vec::new(),
            rip: ProtocolSection::default(),
            ospf: ProtocolSection::default(),
            bgp: BgpConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

/// `[router]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Router {
    /// `instance`: 1 to 32 of `[A-Za-z0-9_-]`. Several routers may run on one host; the name
    /// keeps their files apart.
    pub instance: String,
    /// `run-dir`: an absolute path. The control socket is `<run_dir>/<instance>/control.sock`.
    pub run_dir: PathBuf,
    /// `shm-dir`: an absolute path. The shared-memory file is `<shm_dir>/xroute-<instance>`.
    pub shm_dir: PathBuf,
}

impl Router {
    /// `<run_dir>/<instance>/control.sock`.
    pub fn control_socket(&self) -> PathBuf {
        self.run_dir.join(&self.instance).join("control.sock")
    }

    /// `<shm_dir>/xroute-<instance>`.
    pub fn shm_path(&self) -> PathBuf {
        self.shm_dir.join(format!("xroute-{}", self.instance))
    }
}

impl Default for Router {
    fn default() -> Self {
        Router {
            instance: DEFAULT_INSTANCE.to_owned(),
            run_dir: PathBuf::from(DEFAULT_RUN_DIR),
            shm_dir: PathBuf::from(DEFAULT_SHM_DIR),
        }
    }
}

/// `[[interface]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// `name`: 1 to 15 bytes, none of them `/`, `:` or whitespace, not `.` or `..` (what Linux
    /// accepts as a device name).
    pub name: String,
    /// `address`: host addresses with their prefix length (`192.0.2.1/24`), in file order. No
    /// address appears twice, on this interface or another.
    pub addresses: Vec<IpNet>,
    /// `mtu`: 68 to 65535, at least 1280 if the interface has an IPv6 address. `None`: leave
    /// the interface's MTU as it is.
    pub mtu: Option<u32>,
}

/// `[[route]]`: a static route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticRoute {
    /// `prefix`: no host bits set. `0.0.0.0/0` and `::/0` are default routes.
    pub prefix: IpNet,
    /// Where the traffic goes.
    pub target: StaticTarget,
    /// `distance`: administrative distance, 1 to 255 (default 1). Among routes to the same
    /// prefix from all sources, the lowest distance wins.
    pub distance: u8,
    /// `metric`: preference among static routes with the same prefix and distance (default 0).
    pub metric: u32,
}

/// What a static route does with the traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StaticTarget {
    /// Forward to these next hops: `via`/`interface` (one next hop) or `next-hop` (one to
    /// [`MAX_NEXT_HOPS`], no two the same, weighted ECMP).
    NextHops(Vec<StaticNextHop>),
    /// `blackhole = true`: drop silently.
    Blackhole,
    /// `unreachable = true`: drop and answer with ICMP destination unreachable.
    Unreachable,
}

/// One next hop of a static route. At least one of `via` and `interface` is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticNextHop {
    /// `via`: the gateway, of the prefix's family, not one of the router's own addresses.
    /// Without `interface` it is resolved recursively through the RIB, except that an IPv6
    /// link-local gateway (`fe80::/10`) always needs `interface`.
    pub via: Option<IpAddr>,
    /// `interface`: one of the `[[interface]]` names. With `via`: the gateway is on-link on this
    /// interface. Alone: an interface route (the destination itself is on-link).
    pub interface: Option<String>,
    /// `weight`: share of the traffic relative to the other next hops, 1 to 255 (default 1).
    pub weight: u32,
}

/// `[[route-file]]`: static routes kept in a file of their own, one route per line in
/// `xroutectl route add` syntax (`198.51.100.0/24 via 192.0.2.2`); a line that is only a prefix
/// uses the default gateway of its family from `via`. Optionally gzip-compressed (`.gz`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteFile {
    /// `path`: absolute, or relative to the configuration file's directory.
    pub path: PathBuf,
    /// `via`: default gateways for bare-prefix lines, at most one per address family.
    pub via: Vec<IpAddr>,
    /// `distance`: for lines that give none, 1 to 255 (default 1).
    pub distance: u8,
}

/// `[rip]`, `[ospf]`: placeholders until the protocols land; each will add its keys.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ProtocolSection {
    /// `enabled` (default false). `true` is rejected until the protocol is implemented.
    pub enabled: bool,
}

/// `[metrics]`: the Prometheus endpoint (`GET /metrics`), served by the control process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    /// `enabled` (default true).
    pub enabled: bool,
    /// `listen`: an IP address and a port other than 0, e.g. `127.0.0.1:9842` or `[::1]:9842`
    /// (default `127.0.0.1:9842`, loopback only: the endpoint has no authentication).
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_METRICS_PORT),
        }
    }
}

/// A [`ConfigError`] pointing at byte `offset` of `text`.
fn error_at(origin: &str, text: &str, offset: usize, field: &str, message: String) -> ConfigError {
    let (line, column) = line_column(text, offset);
    ConfigError {
        origin: origin.to_owned(),
        line: Some(line),
        column: Some(column),
        field: field.to_owned(),
        message,
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`. An offset past the end
/// or inside a character counts as the character it falls in.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut line = 1;
    let mut column = 1;
    for (at, c) in text.char_indices() {
        if at + c.len_utf8() > offset {
            break;
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}
