//! `[bgp]`: the speaker, its neighbours and the networks it originates, from the raw file to
//! [`BgpConfig`] and back to TOML.
//!
//! ```toml
//! [bgp]
//! enabled = true
//! local-as = 64500
//! router-id = "192.0.2.1"          # default: the highest IPv4 interface address
//! hold-time = 90                   # seconds, 0 or 3-65535; keepalive = hold / 3 unless set
//! connect-retry = 30               # seconds between outbound connection attempts
//! multipath = false                # ECMP over equally good paths (max-paths, default 8)
//! network = ["203.0.113.0/24"]     # originated with ORIGIN IGP
//!
//! [[bgp.neighbor]]
//! address = "192.0.2.2"
//! remote-as = 64501                # equal to local-as: iBGP
//! import = "all"                   # "all", "none" or a policy name
//! export = "all"
//! max-prefixes = 1500000           # more: Cease "maximum number of prefixes reached"
//! ```
//!
//! Import and export default to `"all"` for iBGP and to `"none"` for eBGP (RFC 8212: an eBGP
//! session exchanges nothing until a policy says what), so forgetting a filter never leaks a
//! table to a neighbouring AS.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use super::render::string;
use super::{error_at, ConfigError};
use crate::bgp::policy::{self, AsPathListDef, CommunityListDef, PolicyConfig, PolicyDef, PrefixListDef};
use crate::bgp::types::{Asn, Family};

type Result<T> = std::result::Result<T, ConfigError>;

/// Hold time when `hold-time` is not set (RFC 4271 suggests 90 s).
pub const DEFAULT_HOLD_TIME: u16 = 90;
/// Seconds between outbound connection attempts when `connect-retry` is not set. RFC 4271
/// suggests 120 s; 30 s brings a session back sooner after a neighbour restarts, at a cost of
/// one SYN per 30 s toward a neighbour that is down.
pub const DEFAULT_CONNECT_RETRY: u16 = 30;
/// LOCAL_PREF given to paths that arrive without one (from eBGP neighbours).
pub const DEFAULT_LOCAL_PREF: u32 = 100;
/// Most paths in one ECMP group when `multipath` is on and `max-paths` is not set.
pub const DEFAULT_MAX_PATHS: u8 = 8;
/// Administrative distances of BGP routes in the RIB (as Cisco and FRR).
pub const DEFAULT_EBGP_DISTANCE: u8 = 20;
pub const DEFAULT_IBGP_DISTANCE: u8 = 200;

/// `[bgp]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpConfig {
    /// `enabled` (default false): whether the speaker runs at all.
    pub enabled: bool,
    /// `local-as`: 1 to 4294967295; required when enabled.
    pub local_as: Asn,
    /// `router-id`: the BGP identifier, a non-zero IPv4 address. `None`: the highest IPv4
    /// address of the `[[interface]]`s (the configuration is rejected if there is none).
    pub router_id: Option<Ipv4Addr>,
    /// `listen` (default true): accept connections on TCP port `port`.
    pub listen: bool,
    /// `port` (default 179).
    pub port: u16,
    /// `hold-time`, seconds: 0 (no keepalives) or 3 to 65535.
    pub hold_time: u16,
    /// `keepalive`, seconds, at most a third of the hold time; `None`: hold time / 3.
    pub keepalive: Option<u16>,
    /// `connect-retry`, seconds, 1 to 65535.
    pub connect_retry: u16,
    /// `default-local-pref`.
    pub default_local_pref: u32,
    /// `multipath`: install equally good paths as one ECMP route.
    pub multipath: bool,
    /// `max-paths`: 1 to 64.
    pub max_paths: u8,
    /// `always-compare-med`: compare MED between paths from different neighbouring ASes.
    pub always_compare_med: bool,
    /// `ebgp-distance`, `ibgp-distance`: administrative distances in the RIB, 1 to 255.
    pub ebgp_distance: u8,
    pub ibgp_distance: u8,
    /// `network`: prefixes originated (ORIGIN IGP, next hop self), without host bits.
    pub networks: Vec<IpNet>,
    /// `[[bgp.neighbor]]`, in file order; no address twice.
    pub neighbors: Vec<NeighborConfig>,
    /// `[[bgp.prefix-list]]`, `[[bgp.as-path-list]]`, `[[bgp.community-list]]`,
    /// `[[bgp.policy]]` (see `bgp::policy`); every policy a neighbour names exists and compiles.
    pub policy: PolicyConfig,
}

impl Default for BgpConfig {
    fn default() -> Self {
        BgpConfig {
            enabled: false,
            local_as: 0,
            router_id: None,
            listen: true,
            port: 179,
            hold_time: DEFAULT_HOLD_TIME,
            keepalive: None,
            connect_retry: DEFAULT_CONNECT_RETRY,
            default_local_pref: DEFAULT_LOCAL_PREF,
            multipath: false,
            max_paths: DEFAULT_MAX_PATHS,
            always_compare_med: false,
            ebgp_distance: DEFAULT_EBGP_DISTANCE,
            ibgp_distance: DEFAULT_IBGP_DISTANCE,
            networks: Vec::new(),
            neighbors: Vec::new(),
            policy: PolicyConfig::default(),
        }
    }
}

impl BgpConfig {
    pub fn neighbor(&self, address: IpAddr) -> Option<&NeighborConfig> {
        self.neighbors.iter().find(|n| n.address == address)
    }
}

/// What a neighbour's `import` or `export` lets through.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PolicyRef {
    /// `"all"`: everything, unchanged.
    All,
    /// `"none"`: nothing.
    None,
    /// A `[[bgp.policy]]` by name.
    Named(String),
}

impl PolicyRef {
    fn parse(s: &str) -> Self {
        match s {
            "all" => Self::All,
            "none" => Self::None,
            name => Self::Named(name.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::All => "all",
            Self::None => "none",
            Self::Named(n) => n,
        }
    }
}

/// `[[bgp.neighbor]]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighborConfig {
    /// `address`: the neighbour's address; not one of ours.
    pub address: IpAddr,
    /// `remote-as`: equal to `local-as` for iBGP.
    pub remote_as: Asn,
    /// `description`, for `xroutectl bgp` output.
    pub description: Option<String>,
    /// `passive` (default false): never connect, only accept.
    pub passive: bool,
    /// `shutdown` (default false): configured but administratively down.
    pub shutdown: bool,
    /// `local-address`: one of the router's addresses, of the neighbour's family: the source of
    /// outbound connections and our next hop toward this neighbour. `None`: what the kernel
    /// picks (outbound) or the address the connection arrived on.
    pub local_address: Option<IpAddr>,
    /// `hold-time`, `keepalive`, `connect-retry`: override `[bgp]`'s.
    pub hold_time: Option<u16>,
    pub keepalive: Option<u16>,
    pub connect_retry: Option<u16>,
    /// `next-hop-self` (default false): iBGP only; toward eBGP neighbours the next hop is
    /// always ours.
    pub next_hop_self: bool,
    /// `import`, `export`: see [`PolicyRef`].
    pub import: PolicyRef,
    pub export: PolicyRef,
    /// `max-prefixes`: the most prefixes accepted (after import policy) before the session is
    /// closed with Cease 1 (RFC 4486).
    pub max_prefixes: Option<u32>,
    /// `max-prefixes-restart`, seconds: restart a session closed for too many prefixes after
    /// this long; `None`: it stays down until `xroutectl bgp reset`.
    pub max_prefixes_restart: Option<u32>,
    /// `families` (default: the neighbour address's family): the address families offered.
    pub families: Vec<Family>,
}

impl NeighborConfig {
    pub fn is_ibgp(&self, local_as: Asn) -> bool {
        self.remote_as == local_as
    }
}

// ---- the file's shape ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawBgp {
    pub enabled: Option<Spanned<bool>>,
    pub local_as: Option<Spanned<i64>>,
    pub router_id: Option<Spanned<String>>,
    pub listen: Option<bool>,
    pub port: Option<Spanned<i64>>,
    pub hold_time: Option<Spanned<i64>>,
    pub keepalive: Option<Spanned<i64>>,
    pub connect_retry: Option<Spanned<i64>>,
    pub default_local_pref: Option<Spanned<i64>>,
    pub multipath: Option<bool>,
    pub max_paths: Option<Spanned<i64>>,
    pub always_compare_med: Option<bool>,
    pub ebgp_distance: Option<Spanned<i64>>,
    pub ibgp_distance: Option<Spanned<i64>>,
    #[serde(default)]
    pub network: Vec<Spanned<String>>,
    #[serde(default)]
    pub neighbor: Vec<Spanned<RawNeighbor>>,
    #[serde(default)]
    pub prefix_list: Vec<PrefixListDef>,
    #[serde(default)]
    pub as_path_list: Vec<AsPathListDef>,
    #[serde(default)]
    pub community_list: Vec<CommunityListDef>,
    #[serde(default)]
    pub policy: Vec<PolicyDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawNeighbor {
    pub address: Spanned<String>,
    pub remote_as: Spanned<i64>,
    pub description: Option<String>,
    pub passive: Option<bool>,
    pub shutdown: Option<bool>,
    pub local_address: Option<Spanned<String>>,
    pub hold_time: Option<Spanned<i64>>,
    pub keepalive: Option<Spanned<i64>>,
    pub connect_retry: Option<Spanned<i64>>,
    pub next_hop_self: Option<Spanned<bool>>,
    pub import: Option<Spanned<String>>,
    pub export: Option<Spanned<String>>,
    pub max_prefixes: Option<Spanned<i64>>,
    pub max_prefixes_restart: Option<Spanned<i64>>,
    pub families: Option<Spanned<Vec<Spanned<String>>>>,
}

// ---- validation ----

/// What the BGP checks need from the rest of the file.
pub(super) struct Context<'a> {
    pub text: &'a str,
    pub origin: &'a str,
    /// Every interface address, to derive the router ID and to check `local-address`.
    pub addresses: Vec<IpAddr>,
}

impl Context<'_> {
    fn error(&self, span: &Range<usize>, field: &str, message: String) -> ConfigError {
        error_at(self.origin, self.text, span.start, field, message)
    }

    fn int<T: TryFrom<i64>>(&self, value: &Spanned<i64>, field: &str, lo: i64, hi: i64) -> Result<T> {
        super::validate::int_in(self.origin, self.text, value, field, lo, hi)
    }

    fn opt_int<T: TryFrom<i64>>(
        &self,
        value: &Option<Spanned<i64>>,
        field: &str,
        lo: i64,
        hi: i64,
    ) -> Result<Option<T>> {
        value.as_ref().map(|v| self.int(v, field, lo, hi)).transpose()
    }

    fn hold_time(&self, value: &Option<Spanned<i64>>, field: &str) -> Result<Option<u16>> {
        let Some(v) = value else { return Ok(None) };
        if matches!(*v.get_ref(), 1 | 2) {
            return Err(self.error(
                &v.span(),
                field,
                "must be 0 (no keepalives) or 3 to 65535 seconds (RFC 4271)".to_owned(),
            ));
        }
        self.int(v, field, 0, 65535).map(Some)
    }

    fn keepalive(&self, value: &Option<Spanned<i64>>, hold: u16, field: &str) -> Result<Option<u16>> {
        let Some(v) = value else { return Ok(None) };
        let k: u16 = self.int(v, field, 0, 65535)?;
        if hold != 0 && u32::from(k) * 3 > u32::from(hold) {
            return Err(self.error(
                &v.span(),
                field,
                format!("{k} s is more than a third of the hold time ({hold} s)"),
            ));
        }
        Ok(Some(k))
    }
}

pub(super) fn validate(raw: &RawBgp, cx: &Context<'_>) -> Result<BgpConfig> {
    let defaults = BgpConfig::default();
    let enabled = raw.enabled.as_ref().is_some_and(|e| *e.get_ref());
    let local_as: Asn = match &raw.local_as {
        Some(v) => cx.int(v, "bgp.local-as", 1, i64::from(u32::MAX))?,
        None if enabled => {
            let span = raw.enabled.as_ref().map(|e| e.span()).unwrap_or(0..0);
            return Err(cx.error(
                &span,
                "bgp.local-as",
                "is required when BGP is enabled".to_owned(),
            ));
        }
        None => 0,
    };
    let router_id = match &raw.router_id {
        Some(v) => match v.get_ref().parse::<Ipv4Addr>() {
            Ok(id) if !id.is_unspecified() => Some(id),
            _ => {
                return Err(cx.error(
                    &v.span(),
                    "bgp.router-id",
                    format!("{:?} is not a non-zero IPv4 address", v.get_ref()),
                ))
            }
        },
        None => None,
    };
    if enabled && router_id.is_none() && !cx.addresses.iter().any(IpAddr::is_ipv4) {
        let span = raw.enabled.as_ref().map(|e| e.span()).unwrap_or(0..0);
        return Err(cx.error(
            &span,
            "bgp.router-id",
            "is required: no interface has an IPv4 address to take it from".to_owned(),
        ));
    }
    let hold_time = cx
        .hold_time(&raw.hold_time, "bgp.hold-time")?
        .unwrap_or(defaults.hold_time);
    let keepalive = cx.keepalive(&raw.keepalive, hold_time, "bgp.keepalive")?;
    let connect_retry = cx
        .opt_int(&raw.connect_retry, "bgp.connect-retry", 1, 65535)?
        .unwrap_or(defaults.connect_retry);
    let mut networks: Vec<IpNet> = Vec::with_capacity(raw.network.len());
    for (i, n) in raw.network.iter().enumerate() {
        let field = format!("bgp.network[{i}]");
        let prefix =
            super::validate::parse_prefix(n.get_ref()).map_err(|m| cx.error(&n.span(), &field, m))?;
        if networks.contains(&prefix) {
            return Err(cx.error(&n.span(), &field, format!("{prefix} is listed twice")));
        }
        networks.push(prefix);
    }
    let policy = PolicyConfig {
        prefix_list: raw.prefix_list.clone(),
        as_path_list: raw.as_path_list.clone(),
        community_list: raw.community_list.clone(),
        policy: raw.policy.clone(),
    };
    let compiled = policy::compile(&policy).map_err(|e| ConfigError {
        origin: cx.origin.to_owned(),
        line: None,
        column: None,
        field: "bgp".to_owned(),
        message: e.to_string(),
    })?;
    let mut neighbors: Vec<NeighborConfig> = Vec::with_capacity(raw.neighbor.len());
    for (i, n) in raw.neighbor.iter().enumerate() {
        let nb = neighbor(cx, n.get_ref(), i, local_as, hold_time)?;
        for (key, p, raw_p) in [
            ("import", &nb.import, &n.get_ref().import),
            ("export", &nb.export, &n.get_ref().export),
        ] {
            if let (PolicyRef::Named(name), Some(span)) = (p, raw_p) {
                if compiled.get(name).is_none() {
                    return Err(cx.error(
                        &span.span(),
                        &format!("bgp.neighbor[{i}].{key}"),
                        format!("no [[bgp.policy]] named {name:?} (or \"all\", \"none\")"),
                    ));
                }
            }
        }
        if let Some(first) = neighbors.iter().position(|o| o.address == nb.address) {
            let raw_n = n.get_ref();
            return Err(cx.error(
                &raw_n.address.span(),
                &format!("bgp.neighbor[{i}].address"),
                format!(
                    "neighbor {} is already defined by bgp.neighbor[{first}]",
                    nb.address
                ),
            ));
        }
        neighbors.push(nb);
    }
    Ok(BgpConfig {
        enabled,
        local_as,
        router_id,
        listen: raw.listen.unwrap_or(defaults.listen),
        port: cx
            .opt_int(&raw.port, "bgp.port", 1, 65535)?
            .unwrap_or(defaults.port),
        hold_time,
        keepalive,
        connect_retry,
        default_local_pref: cx
            .opt_int(
                &raw.default_local_pref,
                "bgp.default-local-pref",
                0,
                i64::from(u32::MAX),
            )?
            .unwrap_or(defaults.default_local_pref),
        multipath: raw.multipath.unwrap_or(false),
        max_paths: cx
            .opt_int(&raw.max_paths, "bgp.max-paths", 1, 64)?
            .unwrap_or(defaults.max_paths),
        always_compare_med: raw.always_compare_med.unwrap_or(false),
        ebgp_distance: cx
            .opt_int(&raw.ebgp_distance, "bgp.ebgp-distance", 1, 255)?
            .unwrap_or(defaults.ebgp_distance),
        ibgp_distance: cx
            .opt_int(&raw.ibgp_distance, "bgp.ibgp-distance", 1, 255)?
            .unwrap_or(defaults.ibgp_distance),
        networks,
        neighbors,
        policy,
    })
}

fn neighbor(
    cx: &Context<'_>,
    raw: &RawNeighbor,
    i: usize,
    local_as: Asn,
    hold: u16,
) -> Result<NeighborConfig> {
    let f = |key: &str| format!("bgp.neighbor[{i}].{key}");
    let address: IpAddr = raw.address.get_ref().parse().map_err(|_| {
        cx.error(
            &raw.address.span(),
            &f("address"),
            format!("{:?} is not an IP address", raw.address.get_ref()),
        )
    })?;
    if address.is_unspecified() || address.is_multicast() || address.is_loopback() {
        return Err(cx.error(
            &raw.address.span(),
            &f("address"),
            format!("{address} cannot be a BGP neighbor"),
        ));
    }
    if cx.addresses.contains(&address) {
        return Err(cx.error(
            &raw.address.span(),
            &f("address"),
            format!("{address} is one of the router's own addresses"),
        ));
    }
    let remote_as: Asn = cx.int(&raw.remote_as, &f("remote-as"), 1, i64::from(u32::MAX))?;
    let local_address = match &raw.local_address {
        None => None,
        Some(v) => {
            let a: IpAddr = v.get_ref().parse().map_err(|_| {
                cx.error(
                    &v.span(),
                    &f("local-address"),
                    format!("{:?} is not an IP address", v.get_ref()),
                )
            })?;
            if a.is_ipv4() != address.is_ipv4() {
                return Err(cx.error(
                    &v.span(),
                    &f("local-address"),
                    format!("{a} is not of the neighbor's address family"),
                ));
            }
            if !cx.addresses.contains(&a) {
                return Err(cx.error(
                    &v.span(),
                    &f("local-address"),
                    format!("{a} is not an address of any [[interface]]"),
                ));
            }
            Some(a)
        }
    };
    let hold_time = cx.hold_time(&raw.hold_time, &f("hold-time"))?;
    let keepalive = cx.keepalive(&raw.keepalive, hold_time.unwrap_or(hold), &f("keepalive"))?;
    let ibgp = remote_as == local_as;
    if let Some(v) = &raw.next_hop_self {
        if *v.get_ref() && !ibgp {
            return Err(cx.error(
                &v.span(),
                &f("next-hop-self"),
                "applies to iBGP neighbors only (toward eBGP the next hop is always ours)".to_owned(),
            ));
        }
    }
    let default_policy = if ibgp { PolicyRef::All } else { PolicyRef::None };
    let policy = |v: &Option<Spanned<String>>, key: &str| -> Result<PolicyRef> {
        match v {
            None => Ok(default_policy.clone()),
            Some(s) if s.get_ref().is_empty() => Err(cx.error(
                &s.span(),
                &f(key),
                "is empty: \"all\", \"none\" or a policy name".to_owned(),
            )),
            Some(s) => Ok(PolicyRef::parse(s.get_ref())),
        }
    };
    let families = match &raw.families {
        None => vec![Family::of(&IpNet::from(address))],
        Some(list) => {
            let mut out = Vec::new();
            for (j, s) in list.get_ref().iter().enumerate() {
                let fam = Family::ALL
                    .into_iter()
                    .find(|fam| fam.as_str() == s.get_ref())
                    .ok_or_else(|| {
                        cx.error(
                            &s.span(),
                            &format!("bgp.neighbor[{i}].families[{j}]"),
                            format!(
                                "{:?} is not a family: \"ipv4-unicast\" or \"ipv6-unicast\"",
                                s.get_ref()
                            ),
                        )
                    })?;
                if out.contains(&fam) {
                    return Err(cx.error(
                        &s.span(),
                        &format!("bgp.neighbor[{i}].families[{j}]"),
                        format!("{fam} is listed twice"),
                    ));
                }
                out.push(fam);
            }
            if out.is_empty() {
                return Err(cx.error(
                    &list.span(),
                    &f("families"),
                    "must name at least one family".to_owned(),
                ));
            }
            out
        }
    };
    Ok(NeighborConfig {
        address,
        remote_as,
        description: raw.description.clone(),
        passive: raw.passive.unwrap_or(false),
        shutdown: raw.shutdown.unwrap_or(false),
        local_address,
        hold_time,
        keepalive,
        connect_retry: cx.opt_int(&raw.connect_retry, &f("connect-retry"), 1, 65535)?,
        next_hop_self: raw.next_hop_self.as_ref().is_some_and(|v| *v.get_ref()),
        import: policy(&raw.import, "import")?,
        export: policy(&raw.export, "export")?,
        max_prefixes: cx.opt_int(&raw.max_prefixes, &f("max-prefixes"), 1, i64::from(u32::MAX))?,
        max_prefixes_restart: cx.opt_int(&raw.max_prefixes_restart, &f("max-prefixes-restart"), 1, 86400)?,
        families,
    })
}

// ---- rendering ----

/// `[bgp]` as TOML that validates back to an equal [`BgpConfig`] (given the same interfaces).
pub(super) fn render(out: &mut String, bgp: &BgpConfig) {
    let line = |out: &mut String, key: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(out, "{key} = {value}");
    };
    out.push_str("\n[bgp]\n");
    line(out, "enabled", &bgp.enabled);
    if bgp.local_as != 0 {
        line(out, "local-as", &bgp.local_as);
    }
    if let Some(id) = bgp.router_id {
        line(out, "router-id", &string(&id.to_string()));
    }
    line(out, "listen", &bgp.listen);
    line(out, "port", &bgp.port);
    line(out, "hold-time", &bgp.hold_time);
    if let Some(k) = bgp.keepalive {
        line(out, "keepalive", &k);
    }
    line(out, "connect-retry", &bgp.connect_retry);
    line(out, "default-local-pref", &bgp.default_local_pref);
    line(out, "multipath", &bgp.multipath);
    line(out, "max-paths", &bgp.max_paths);
    line(out, "always-compare-med", &bgp.always_compare_med);
    line(out, "ebgp-distance", &bgp.ebgp_distance);
    line(out, "ibgp-distance", &bgp.ibgp_distance);
    line(
        out,
        "network",
        &list(bgp.networks.iter().map(|n| string(&n.to_string()))),
    );
    for n in &bgp.neighbors {
        out.push_str("\n[[bgp.neighbor]]\n");
        line(out, "address", &string(&n.address.to_string()));
        line(out, "remote-as", &n.remote_as);
        if let Some(d) = &n.description {
            line(out, "description", &string(d));
        }
        line(out, "passive", &n.passive);
        line(out, "shutdown", &n.shutdown);
        if let Some(a) = n.local_address {
            line(out, "local-address", &string(&a.to_string()));
        }
        for (key, v) in [
            ("hold-time", n.hold_time),
            ("keepalive", n.keepalive),
            ("connect-retry", n.connect_retry),
        ] {
            if let Some(v) = v {
                line(out, key, &v);
            }
        }
        if n.next_hop_self {
            line(out, "next-hop-self", &true);
        }
        line(out, "import", &string(n.import.as_str()));
        line(out, "export", &string(n.export.as_str()));
        if let Some(m) = n.max_prefixes {
            line(out, "max-prefixes", &m);
        }
        if let Some(r) = n.max_prefixes_restart {
            line(out, "max-prefixes-restart", &r);
        }
        line(
            out,
            "families",
            &list(n.families.iter().map(|f| string(f.as_str()))),
        );
    }
    if bgp.policy != PolicyConfig::default() {
        #[derive(serde::Serialize)]
        struct Wrapper<'a> {
            bgp: &'a PolicyConfig,
        }
        match toml::to_string(&Wrapper { bgp: &bgp.policy }) {
            Ok(text) => {
                out.push('\n');
                out.push_str(&text);
            }
            Err(e) => {
                let _ = writeln!(out, "# the policies could not be rendered: {e}");
            }
        }
    }
}

fn list(items: impl Iterator<Item = String>) -> String {
    format!("[{}]", items.collect::<Vec<_>>().join(", "))
}
