//! The semantic checks, from the raw file to a [`Config`]. Each check points at the value that
//! breaks it; when two values conflict (a duplicate name, a second target), the later one in the
//! file is the error, so the message can name the earlier one.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::PathBuf;

use ipnet::IpNet;
use toml::Spanned;

use super::raw::{
    RawConfig, RawInterface, RawMetrics, RawNextHop, RawProtocol, RawRoute, RawRouteFile, RawRouter,
};
use super::{
    error_at, Config, ConfigError, InterfaceConfig, MetricsConfig, ProtocolSection, RouteFile, Router,
    StaticNextHop, StaticRoute, StaticTarget, DEFAULT_INSTANCE, DEFAULT_METRICS_PORT, DEFAULT_RUN_DIR,
    DEFAULT_SHM_DIR, DEFAULT_STATIC_DISTANCE, MAX_INSTANCE_LEN, MAX_INTERFACE_NAME_LEN, MAX_MTU,
    MAX_NEXT_HOPS, MIN_IPV6_MTU, MIN_MTU,
};

type Result<T> = std::result::Result<T, ConfigError>;

pub(super) fn validate(raw: RawConfig, text: &str, origin: &str) -> Result<Config> {
    let cx = Checker { text, origin };
    let router = cx.router(&raw.router)?;
    let interfaces = cx.interfaces(&raw.interface)?;
    let routes = cx.routes(&raw.route, &interfaces)?;
    let route_files = cx.route_files(&raw.route_file, &interfaces)?;
    let bgp = super::bgp::validate(
        &raw.bgp,
        &super::bgp::Context {
            text,
            origin,
            addresses: interfaces
                .iter()
                .flat_map(|i| i.addresses.iter().map(IpNet::addr))
                .collect(),
        },
    )?;
    Ok(Config {
        router,
        interfaces,
        routes,
        route_files,
        rip: cx.protocol("rip", &raw.rip)?,
        ospf: cx.protocol("ospf", &raw.ospf)?,
        bgp,
        metrics: cx.metrics(&raw.metrics)?,
    })
}

struct Checker<'a> {
    text: &'a str,
    origin: &'a str,
}

/// The pieces of one next hop, whether it came from a route's own `via`/`interface` or from an
/// entry of its `next-hop` array.
struct HopFields<'r> {
    /// The field path of the next hop (`route[1]` or `route[1].next-hop[0]`).
    path: String,
    span: Range<usize>,
    via: Option<&'r Spanned<String>>,
    interface: Option<&'r Spanned<String>>,
    weight: Option<&'r Spanned<i64>>,
}

impl Checker<'_> {
    fn error(&self, span: &Range<usize>, field: &str, message: String) -> ConfigError {
        error_at(self.origin, self.text, span.start, field, message)
    }

    /// An integer in `lo..=hi` (both within `T`).
    fn int<T: TryFrom<i64>>(&self, value: &Spanned<i64>, field: &str, lo: i64, hi: i64) -> Result<T> {
        int_in(self.origin, self.text, value, field, lo, hi)
    }

    fn router(&self, raw: &RawRouter) -> Result<Router> {
        let instance = match &raw.instance {
            None => DEFAULT_INSTANCE.to_owned(),
            Some(name) => {
                let s = name.get_ref();
                let valid = (1..=MAX_INSTANCE_LEN).contains(&s.len())
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !valid {
                    return Err(self.error(
                        &name.span(),
                        "router.instance",
                        format!(
                            "{s:?} is not a valid instance name: 1 to {MAX_INSTANCE_LEN} letters, digits, '_' or '-'"
                        ),
                    ));
                }
                s.clone()
            }
        };
        Ok(Router {
            instance,
            run_dir: self.absolute_path(raw.run_dir.as_ref(), "router.run-dir", DEFAULT_RUN_DIR)?,
            shm_dir: self.absolute_path(raw.shm_dir.as_ref(), "router.shm-dir", DEFAULT_SHM_DIR)?,
        })
    }

    fn absolute_path(&self, value: Option<&Spanned<String>>, field: &str, default: &str) -> Result<PathBuf> {
        let Some(value) = value else {
            return Ok(PathBuf::from(default));
        };
        let path = PathBuf::from(value.get_ref());
        if !path.is_absolute() {
            return Err(self.error(
                &value.span(),
                field,
                format!("{:?} is not an absolute path", value.get_ref()),
            ));
        }
        Ok(path)
    }

    fn interfaces(&self, raw: &[Spanned<RawInterface>]) -> Result<Vec<InterfaceConfig>> {
        let mut out: Vec<InterfaceConfig> = Vec::with_capacity(raw.len());
        // Address -> (interface index, address index), to find an address given twice.
        let mut owners: HashMap<IpAddr, (usize, usize)> = HashMap::new();
        for (i, iface) in raw.iter().enumerate() {
            let iface = iface.get_ref();
            let name = iface.name.get_ref();
            let name_field = format!("interface[{i}].name");
            if let Some(reason) = interface_name_problem(name) {
                return Err(self.error(
                    &iface.name.span(),
                    &name_field,
                    format!("{name:?} is not a valid interface name: {reason}"),
                ));
            }
            if let Some(first) = out.iter().position(|other| other.name == *name) {
                return Err(self.error(
                    &iface.name.span(),
                    &name_field,
                    format!("interface {name:?} is already defined by interface[{first}]"),
                ));
            }

            let mut addresses = Vec::with_capacity(iface.address.len());
            for (j, text) in iface.address.iter().enumerate() {
                let field = format!("interface[{i}].address[{j}]");
                let net = parse_host_address(text.get_ref())
                    .map_err(|message| self.error(&text.span(), &field, message))?;
                if let Some(&(other, k)) = owners.get(&net.addr()) {
                    let message = if other == i {
                        format!("{} is already address[{k}] of this interface", net.addr())
                    } else {
                        let owner = out.get(other).map_or("", |o| o.name.as_str());
                        format!(
                            "{} is already assigned to interface[{other}] ({owner:?})",
                            net.addr()
                        )
                    };
                    return Err(self.error(&text.span(), &field, message));
                }
                owners.insert(net.addr(), (i, j));
                addresses.push(net);
            }

            let mtu = match &iface.mtu {
                None => None,
                Some(value) => {
                    let field = format!("interface[{i}].mtu");
                    let mtu: u32 = self.int(value, &field, MIN_MTU.into(), MAX_MTU.into())?;
                    if let Some(k) = addresses.iter().position(|a| matches!(a, IpNet::V6(_))) {
                        if mtu < MIN_IPV6_MTU {
                            return Err(self.error(
                                &value.span(),
                                &field,
                                format!(
                                    "must be at least {MIN_IPV6_MTU} on an interface with an IPv6 address \
                                     (address[{k}]), not {mtu}"
                                ),
                            ));
                        }
                    }
                    Some(mtu)
                }
            };
            out.push(InterfaceConfig {
                name: name.clone(),
                addresses,
                mtu,
            });
        }
        Ok(out)
    }

    fn routes(&self, raw: &[Spanned<RawRoute>], interfaces: &[InterfaceConfig]) -> Result<Vec<StaticRoute>> {
        let mut out = Vec::with_capacity(raw.len());
        // (prefix, distance) -> route index, to find a route given twice.
        let mut seen: HashMap<(IpNet, u8), usize> = HashMap::new();
        for (i, spanned) in raw.iter().enumerate() {
            let route = spanned.get_ref();
            let path = format!("route[{i}]");
            let prefix_field = format!("{path}.prefix");
            let prefix = parse_prefix(route.prefix.get_ref())
                .map_err(|message| self.error(&route.prefix.span(), &prefix_field, message))?;
            let distance = match &route.distance {
                None => DEFAULT_STATIC_DISTANCE,
                Some(value) => self.int(value, &format!("{path}.distance"), 1, u8::MAX.into())?,
            };
            let metric = match &route.metric {
                None => 0,
                Some(value) => self.int(value, &format!("{path}.metric"), 0, u32::MAX.into())?,
            };
            let target = self.target(route, &spanned.span(), &path, prefix, interfaces)?;
            if let Some(first) = seen.insert((prefix, distance), i) {
                return Err(self.error(
                    &route.prefix.span(),
                    &prefix_field,
                    format!(
                        "route[{first}] already has prefix {prefix} with distance {distance}: merge their next \
                         hops into one route, or give one of them another distance"
                    ),
                ));
            }
            out.push(StaticRoute {
                prefix,
                target,
                distance,
                metric,
            });
        }
        Ok(out)
    }

    /// Exactly one of: `via`/`interface`, `next-hop`, `blackhole = true`, `unreachable = true`.
    fn target(
        &self,
        route: &RawRoute,
        route_span: &Range<usize>,
        path: &str,
        prefix: IpNet,
        interfaces: &[InterfaceConfig],
    ) -> Result<StaticTarget> {
        // The forms present, each with the key that introduces it and where.
        let mut forms: Vec<(&str, Range<usize>)> = Vec::new();
        match (&route.via, &route.interface) {
            (Some(via), Some(interface)) if interface.span().start < via.span().start => {
                forms.push(("interface", interface.span()));
            }
            (Some(via), _) => forms.push(("via", via.span())),
            (None, Some(interface)) => forms.push(("interface", interface.span())),
            (None, None) => {}
        }
        if let Some(hops) = &route.next_hop {
            forms.push(("next-hop", hops.span()));
        }
        for (key, flag) in [
            ("blackhole", &route.blackhole),
            ("unreachable", &route.unreachable),
        ] {
            if let Some(flag) = flag {
                if *flag.get_ref() {
                    forms.push((key, flag.span()));
                }
            }
        }
        forms.sort_by_key(|(_, span)| span.start);
        let (first, second) = match forms.as_slice() {
            [] => {
                return Err(self.error(
                    route_span,
                    path,
                    "the route has no target: set via and/or interface, next-hop, blackhole = true or \
                     unreachable = true"
                        .to_owned(),
                ))
            }
            [(first, _)] => (*first, None),
            [(first, _), second, ..] => (*first, Some(second)),
        };
        if let Some((key, span)) = second {
            return Err(self.error(
                span,
                &format!("{path}.{key}"),
                format!(
                    "cannot be combined with {first}: a route has exactly one of via/interface, next-hop, \
                     blackhole or unreachable"
                ),
            ));
        }

        match first {
            "blackhole" => return Ok(StaticTarget::Blackhole),
            "unreachable" => return Ok(StaticTarget::Unreachable),
            _ => {}
        }
        let Some(hops) = &route.next_hop else {
            let hop = HopFields {
                path: path.to_owned(),
                span: route_span.clone(),
                via: route.via.as_ref(),
                interface: route.interface.as_ref(),
                weight: None,
            };
            return Ok(StaticTarget::NextHops(vec![
                self.next_hop(&hop, prefix, interfaces)?
            ]));
        };

        let hops_field = format!("{path}.next-hop");
        if hops.get_ref().is_empty() {
            return Err(self.error(
                &hops.span(),
                &hops_field,
                "is empty: give at least one next hop".to_owned(),
            ));
        }
        let mut out: Vec<StaticNextHop> = Vec::with_capacity(hops.get_ref().len());
        for (j, spanned) in hops.get_ref().iter().enumerate() {
            let RawNextHop {
                via,
                interface,
                weight,
            } = spanned.get_ref();
            let hop = HopFields {
                path: format!("{hops_field}[{j}]"),
                span: spanned.span(),
                via: via.as_ref(),
                interface: interface.as_ref(),
                weight: weight.as_ref(),
            };
            if j == MAX_NEXT_HOPS {
                return Err(self.error(
                    &hop.span,
                    &hop.path,
                    format!("a route has at most {MAX_NEXT_HOPS} next hops"),
                ));
            }
            let next_hop = self.next_hop(&hop, prefix, interfaces)?;
            if let Some(k) = out
                .iter()
                .position(|o| o.via == next_hop.via && o.interface == next_hop.interface)
            {
                return Err(self.error(
                    &hop.span,
                    &hop.path,
                    format!("duplicate next hop: the same via and interface as next-hop[{k}]"),
                ));
            }
            out.push(next_hop);
        }
        Ok(StaticTarget::NextHops(out))
    }

    fn next_hop(
        &self,
        hop: &HopFields<'_>,
        prefix: IpNet,
        interfaces: &[InterfaceConfig],
    ) -> Result<StaticNextHop> {
        if hop.via.is_none() && hop.interface.is_none() {
            return Err(self.error(
                &hop.span,
                &hop.path,
                "a next hop needs via, interface or both".to_owned(),
            ));
        }
        let interface = match hop.interface {
            None => None,
            Some(name) => {
                if !interfaces.iter().any(|i| i.name == *name.get_ref()) {
                    return Err(self.error(
                        &name.span(),
                        &format!("{}.interface", hop.path),
                        format!("interface {:?} is not defined in [[interface]]", name.get_ref()),
                    ));
                }
                Some(name.get_ref().clone())
            }
        };
        let via = match hop.via {
            None => None,
            Some(text) => {
                let field = format!("{}.via", hop.path);
                let error = |message: String| self.error(&text.span(), &field, message);
                let via = parse_gateway(text.get_ref()).map_err(error)?;
                if via.is_ipv4() != prefix.addr().is_ipv4() {
                    return Err(error(format!(
                        "{via} is an {} address but the prefix {prefix} is {}",
                        family(via),
                        family(prefix.addr())
                    )));
                }
                if let IpAddr::V6(v6) = via {
                    if v6.segments()[0] & 0xffc0 == 0xfe80 && interface.is_none() {
                        return Err(error(format!(
                            "{via} is an IPv6 link-local address: it needs interface = \"...\" to say on which \
                             link"
                        )));
                    }
                }
                if let Some((i, owner)) = interfaces
                    .iter()
                    .enumerate()
                    .find(|(_, i)| i.addresses.iter().any(|a| a.addr() == via))
                {
                    return Err(error(format!(
                        "{via} is this router's own address (interface[{i}], {:?}), not a gateway",
                        owner.name
                    )));
                }
                Some(via)
            }
        };
        let weight = match hop.weight {
            None => 1,
            Some(value) => self.int(value, &format!("{}.weight", hop.path), 1, u8::MAX.into())?,
        };
        Ok(StaticNextHop {
            via,
            interface,
            weight,
        })
    }

    fn route_files(
        &self,
        raw: &[Spanned<RawRouteFile>],
        interfaces: &[InterfaceConfig],
    ) -> Result<Vec<RouteFile>> {
        let own: Vec<IpAddr> = interfaces
            .iter()
            .flat_map(|i| i.addresses.iter().map(IpNet::addr))
            .collect();
        let mut out = Vec::with_capacity(raw.len());
        for (i, f) in raw.iter().enumerate() {
            let f = f.get_ref();
            let path = f.path.get_ref();
            if path.trim().is_empty() {
                return Err(self.error(
                    &f.path.span(),
                    &format!("route-file[{i}].path"),
                    "is empty".into(),
                ));
            }
            let mut via: Vec<IpAddr> = Vec::new();
            for (j, v) in f.via.iter().enumerate() {
                let field = format!("route-file[{i}].via[{j}]");
                let addr = parse_gateway(v.get_ref()).map_err(|m| self.error(&v.span(), &field, m))?;
                if let Some(prev) = via.iter().find(|a| a.is_ipv4() == addr.is_ipv4()) {
                    return Err(self.error(
                        &v.span(),
                        &field,
                        format!(
                            "a second {} default gateway ({prev} is already given)",
                            family(addr)
                        ),
                    ));
                }
                if own.contains(&addr) {
                    return Err(self.error(
                        &v.span(),
                        &field,
                        format!("{addr} is one of the router's own addresses"),
                    ));
                }
                via.push(addr);
            }
            let distance = match &f.distance {
                Some(d) => self.int(d, &format!("route-file[{i}].distance"), 1, 255)?,
                None => DEFAULT_STATIC_DISTANCE,
            };
            out.push(RouteFile {
                path: PathBuf::from(path),
                via,
                distance,
            });
        }
        Ok(out)
    }

    fn protocol(&self, name: &str, raw: &RawProtocol) -> Result<ProtocolSection> {
        match &raw.enabled {
            Some(enabled) if *enabled.get_ref() => Err(self.error(
                &enabled.span(),
                &format!("{name}.enabled"),
                format!("{name} is not implemented yet"),
            )),
            _ => Ok(ProtocolSection { enabled: false }),
        }
    }
}

impl Checker<'_> {
    fn metrics(&self, raw: &RawMetrics) -> Result<MetricsConfig> {
        let default = MetricsConfig::default();
        let listen = match &raw.listen {
            None => default.listen,
            Some(text) => parse_listen(text.get_ref())
                .map_err(|message| self.error(&text.span(), "metrics.listen", message))?,
        };
        Ok(MetricsConfig {
            enabled: raw.enabled.as_ref().map_or(default.enabled, |e| *e.get_ref()),
            listen,
        })
    }
}

/// A listening address: an IP address and a fixed port, no host name (nothing is resolved).
fn parse_listen(text: &str) -> std::result::Result<SocketAddr, String> {
    let example = format!("e.g. 127.0.0.1:{DEFAULT_METRICS_PORT} or [::1]:{DEFAULT_METRICS_PORT}");
    let addr: SocketAddr = text.parse().map_err(|_| match text.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => format!("{text:?} has no port ({example})"),
        Ok(IpAddr::V6(v6)) => format!(
            "{text:?} has no port (an IPv6 address with a port is written in brackets: \
             [{v6}]:{DEFAULT_METRICS_PORT})"
        ),
        Err(_) => {
            format!("{text:?} is not an IP address and port ({example}; host names are not resolved)")
        }
    })?;
    if addr.port() == 0 {
        return Err(format!(
            "{text:?}: port 0 would be a different port at every start; give a fixed port"
        ));
    }
    if addr.ip().is_multicast() || matches!(addr.ip(), IpAddr::V4(v4) if v4.is_broadcast()) {
        return Err(format!("{text:?}: {} is not an address to listen on", addr.ip()));
    }
    Ok(addr)
}

/// An integer in `lo..=hi` (both within `T`), or an error pointing at it.
pub(super) fn int_in<T: TryFrom<i64>>(
    origin: &str,
    text: &str,
    value: &Spanned<i64>,
    field: &str,
    lo: i64,
    hi: i64,
) -> Result<T> {
    let v = *value.get_ref();
    let out_of_range = || {
        error_at(
            origin,
            text,
            value.span().start,
            field,
            format!("must be between {lo} and {hi}, not {v}"),
        )
    };
    if v < lo || v > hi {
        return Err(out_of_range());
    }
    T::try_from(v).map_err(|_| out_of_range())
}

fn family(addr: IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(_) => "IPv4",
        IpAddr::V6(_) => "IPv6",
    }
}

/// What Linux's `dev_valid_name()` rejects, or `None` for a valid name.
fn interface_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("it is empty".to_owned())
    } else if name.len() > MAX_INTERFACE_NAME_LEN {
        Some(format!(
            "it is longer than {MAX_INTERFACE_NAME_LEN} bytes (Linux IFNAMSIZ)"
        ))
    } else if name == "." || name == ".." {
        Some("Linux reserves it".to_owned())
    } else {
        let bad = name.chars().find(|c| *c == '/' || *c == ':' || c.is_whitespace());
        bad.map(|c| format!("it contains {c:?}"))
    }
}

/// An interface address: a unicast host address with its prefix length.
fn parse_host_address(text: &str) -> std::result::Result<IpNet, String> {
    let net: IpNet = text.parse().map_err(|_| match text.parse::<IpAddr>() {
        Ok(IpAddr::V4(addr)) => format!("{text:?} has no prefix length (write e.g. {addr}/24)"),
        Ok(IpAddr::V6(addr)) => format!("{text:?} has no prefix length (write e.g. {addr}/64)"),
        Err(_) => format!("{text:?} is not an address with a prefix length, e.g. 192.0.2.1/24"),
    })?;
    let addr = net.addr();
    if addr.is_unspecified() || addr.is_multicast() {
        return Err(format!("{net}: {addr} is not a unicast address"));
    }
    if let IpNet::V4(v4) = net {
        if v4.prefix_len() < 31 && v4.addr() == v4.network() {
            return Err(format!(
                "{net} is a network address (the host part is zero); an interface address needs a host, \
                 e.g. {}/{}",
                std::net::Ipv4Addr::from(u32::from(v4.network()).wrapping_add(1)),
                v4.prefix_len()
            ));
        }
    }
    Ok(net)
}

/// A route prefix: no host bits.
pub(super) fn parse_prefix(text: &str) -> std::result::Result<IpNet, String> {
    let net: IpNet = text.parse().map_err(|_| match text.parse::<IpAddr>() {
        Ok(addr) => {
            format!(
                "{text:?} has no prefix length (write {addr}/{} for a host route)",
                default_len(addr)
            )
        }
        Err(_) => format!("{text:?} is not a prefix, e.g. 198.51.100.0/24 or 2001:db8::/32"),
    })?;
    if net.trunc() != net {
        return Err(format!("{net} has host bits set; did you mean {}?", net.trunc()));
    }
    Ok(net)
}

/// A gateway address: a unicast IP address without a prefix length.
/// A gateway address: unicast, no prefix length. Shared with route lines (`routetext`), so the
/// configuration and the CLI accept the same gateways.
pub(crate) fn parse_gateway(text: &str) -> std::result::Result<IpAddr, String> {
    let addr: IpAddr = text.parse().map_err(|_| {
        if text.parse::<IpNet>().is_ok() {
            format!("{text:?} is not an IP address (a gateway has no prefix length)")
        } else {
            format!("{text:?} is not an IP address")
        }
    })?;
    let broadcast = matches!(addr, IpAddr::V4(v4) if v4.is_broadcast());
    if addr.is_unspecified() || addr.is_multicast() || broadcast {
        return Err(format!("{addr} is not a unicast address, it cannot be a gateway"));
    }
    Ok(addr)
}

/// The host route's prefix length in the address's family, for hints.
fn default_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}
