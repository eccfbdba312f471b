//! Routes as operators type them, in the style of `ip route`:
//!
//! ```text
//! 198.51.100.0/24 via 192.0.2.2 [dev eth1] [weight 1] [distance 1] [metric 0]
//! 203.0.113.0/24 nexthop via 192.0.2.2 nexthop via 192.0.2.3 weight 2
//! 192.0.2.128/25 dev eth1                      (interface route)
//! blackhole 192.0.2.0/24        or   192.0.2.0/24 blackhole        (also unreachable)
//! ```
//!
//! Used by `xroutectl route add|del`, `route import` files and route files named in the
//! configuration. Parsing is strict: an unknown word is an error naming it.

use ipnet::IpNet;
use std::net::IpAddr;

/// One next hop as written.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HopText {
    pub via: Option<IpAddr>,
    pub dev: Option<String>,
    pub weight: u32,
}

/// What a route does, as written.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RouteKind {
    NextHops(Vec<HopText>),
    Blackhole,
    Unreachable,
}

/// A parsed route line.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RouteText {
    pub prefix: IpNet,
    pub kind: RouteKind,
    pub distance: Option<u8>,
    pub metric: Option<u32>,
}

/// Most next hops in one route (the engine's group limit).
pub const MAX_HOPS: usize = 64;

/// Parses a prefix; a bare address is a host route. Host bits are an error that names the
/// prefix the user probably meant.
pub fn parse_prefix(s: &str) -> Result<IpNet, String> {
    let net: IpNet = match s.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => match s.parse::<IpAddr>() {
            Ok(a) => IpNet::from(a),
            Err(_) => return Err(format!("{s:?} is not a prefix")),
        },
    };
    if net.trunc() != net {
        return Err(format!("{s} has host bits set (did you mean {}?)", net.trunc()));
    }
    Ok(net)
}

fn number<T: std::str::FromStr>(word: &str, value: Option<&str>, range: &str) -> Result<T, String> {
    let v = value.ok_or_else(|| format!("{word} needs a value"))?;
    v.parse::<T>()
        .map_err(|_| format!("{word} {v:?}: expected a number in {range}"))
}

/// Parses one route line (the prefix may come after `blackhole`/`unreachable`).
pub fn parse_route(line: &str) -> Result<RouteText, String> {
    let mut words = line.split_whitespace().peekable();
    let mut special: Option<RouteKind> = None;
    if let Some(&w) = words.peek() {
        if w == "blackhole" || w == "unreachable" {
            special = Some(if w == "blackhole" {
                RouteKind::Blackhole
            } else {
                RouteKind::Unreachable
            });
            words.next();
        }
    }
    let prefix = parse_prefix(words.next().ok_or("missing prefix")?)?;
    let mut top = HopText {
        via: None,
        dev: None,
        weight: 1,
    };
    let mut top_used = false;
    let mut hops: Vec<HopText> = Vec::new();
    let mut in_nexthop = false;
    let mut distance = None;
    let mut metric = None;
    while let Some(word) = words.next() {
        let hop = if in_nexthop { hops.last_mut() } else { None };
        match word {
            "via" => {
                let v = words.next().ok_or("via needs an address")?;
                let addr = crate::config::parse_gateway(v).map_err(|m| format!("via: {m}"))?;
                if addr.is_ipv4() != prefix.addr().is_ipv4() {
                    return Err(format!("gateway {addr} is not of the same family as {prefix}"));
                }
                let h = match hop {
                    Some(h) => h,
                    None => {
                        top_used = true;
                        &mut top
                    }
                };
                if h.via.replace(addr).is_some() {
                    return Err("two gateways for one next hop (use nexthop for ECMP)".into());
                }
            }
            "dev" => {
                let v = words.next().ok_or("dev needs an interface name")?;
                let h = match hop {
                    Some(h) => h,
                    None => {
                        top_used = true;
                        &mut top
                    }
                };
                if h.dev.replace(v.to_string()).is_some() {
                    return Err("two interfaces for one next hop".into());
                }
            }
            "weight" => {
                let w: u32 = number(word, words.next(), "1..=255")?;
                if !(1..=255).contains(&w) {
                    return Err(format!("weight {w}: expected 1..=255"));
                }
                match hop {
                    Some(h) => h.weight = w,
                    None => {
                        top_used = true;
                        top.weight = w;
                    }
                }
            }
            "nexthop" => {
                if top_used {
                    return Err("use either via/dev or nexthop, not both".into());
                }
                in_nexthop = true;
                hops.push(HopText {
                    via: None,
                    dev: None,
                    weight: 1,
                });
            }
            "distance" => {
                let d: u8 = number(word, words.next(), "1..=255")?;
                if d == 0 {
                    return Err("distance 0 is reserved for connected routes".into());
                }
                distance = Some(d);
                in_nexthop = false;
            }
            "metric" => {
                metric = Some(number(word, words.next(), "0..=4294967295")?);
                in_nexthop = false;
            }
            "blackhole" | "unreachable" if special.is_none() => {
                special = Some(if word == "blackhole" {
                    RouteKind::Blackhole
                } else {
                    RouteKind::Unreachable
                });
            }
            other => return Err(format!("unexpected {other:?}")),
        }
    }
    if top_used {
        hops.push(top);
    }
    let kind = match special {
        Some(k) => {
            if !hops.is_empty() {
                return Err(format!("a {} route has no next hops", kind_name(&k)));
            }
            k
        }
        None => {
            if hops.is_empty() {
                return Err("no next hop: give via, dev, nexthop, blackhole or unreachable".into());
            }
            if let Some(h) = hops.iter().find(|h| h.via.is_none() && h.dev.is_none()) {
                let _ = h;
                return Err("an empty nexthop: give via and/or dev".into());
            }
            if hops.len() > MAX_HOPS {
                return Err(format!("{} next hops, at most {MAX_HOPS}", hops.len()));
            }
            RouteKind::NextHops(hops)
        }
    };
    Ok(RouteText {
        prefix,
        kind,
        distance,
        metric,
    })
}

fn kind_name(k: &RouteKind) -> &'static str {
    match k {
        RouteKind::Blackhole => "blackhole",
        RouteKind::Unreachable => "unreachable",
        RouteKind::NextHops(_) => "unicast",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(via: Option<&str>, dev: Option<&str>, weight: u32) -> HopText {
        HopText {
            via: via.map(|v| v.parse().unwrap()),
            dev: dev.map(str::to_string),
            weight,
        }
    }

    #[test]
    fn the_usual_forms_parse() {
        let r = parse_route("198.51.100.0/24 via 192.0.2.2 dev eth1 distance 5 metric 10").unwrap();
        assert_eq!(r.prefix.to_string(), "198.51.100.0/24");
        assert_eq!(
            r.kind,
            RouteKind::NextHops(vec![hop(Some("192.0.2.2"), Some("eth1"), 1)])
        );
        assert_eq!((r.distance, r.metric), (Some(5), Some(10)));
        let r = parse_route("203.0.113.0/24 nexthop via 192.0.2.2 nexthop via 192.0.2.3 weight 2 dev e2")
            .unwrap();
        assert_eq!(
            r.kind,
            RouteKind::NextHops(vec![
                hop(Some("192.0.2.2"), None, 1),
                hop(Some("192.0.2.3"), Some("e2"), 2)
            ])
        );
        assert_eq!(
            parse_route("blackhole 192.0.2.0/24").unwrap().kind,
            RouteKind::Blackhole
        );
        assert_eq!(
            parse_route("2001:db8::/32 unreachable").unwrap().kind,
            RouteKind::Unreachable
        );
        assert_eq!(
            parse_route("192.0.2.7 dev eth1").unwrap().prefix.to_string(),
            "192.0.2.7/32",
            "a bare address is a host route"
        );
        assert_eq!(
            parse_route("2001:db8:5::/48 via 2001:db8::1").unwrap().kind,
            RouteKind::NextHops(vec![hop(Some("2001:db8::1"), None, 1)])
        );
    }

    #[test]
    fn mistakes_get_a_message_that_says_what() {
        let err = |s: &str| parse_route(s).unwrap_err();
        assert!(err("192.0.2.1/24 via 198.51.100.1").contains("did you mean 192.0.2.0/24"));
        assert!(err("192.0.2.0/24").contains("no next hop"));
        assert!(err("192.0.2.0/24 via 2001:db8::1").contains("same family"));
        assert!(err("192.0.2.0/24 via 192.0.2.300").contains("not an IP address"));
        assert!(err("192.0.2.0/24 via 224.0.0.5").contains("not a unicast address"));
        assert!(err("192.0.2.0/24 via 0.0.0.0").contains("not a unicast address"));
        assert!(err("192.0.2.0/24 via 198.51.100.1 nexthop via 198.51.100.2").contains("not both"));
        assert!(err("192.0.2.0/24 via 198.51.100.1 frobnicate").contains("frobnicate"));
        assert!(err("blackhole 192.0.2.0/24 via 198.51.100.1").contains("no next hops"));
        assert!(err("192.0.2.0/24 via 198.51.100.1 distance 0").contains("reserved"));
        assert!(err("192.0.2.0/24 via 198.51.100.1 distance 300").contains("1..=255"));
        assert!(err("192.0.2.0/24 via 198.51.100.1 weight 0").contains("1..=255"));
        assert!(err("").contains("missing prefix"));
        assert!(err("192.0.2.0/24 nexthop").contains("empty nexthop"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,80}") {
            let _ = parse_route(&s);
        }
    }
}
