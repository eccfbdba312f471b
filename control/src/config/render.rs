//! A [`Config`] back to TOML, laid out like the example file: what `show running-config`
//! prints, and what the round-trip tests parse again.

use std::fmt::Write;

use super::{Config, ProtocolSection, StaticNextHop, StaticTarget};

pub(super) fn to_toml(config: &Config) -> String {
    let mut out = String::new();
    let router = &config.router;
    out.push_str("[router]\n");
    line(&mut out, "instance", &string(&router.instance));
    line(&mut out, "run-dir", &string(&router.run_dir.to_string_lossy()));
    line(&mut out, "shm-dir", &string(&router.shm_dir.to_string_lossy()));

    for iface in &config.interfaces {
        out.push_str("\n[[interface]]\n");
        line(&mut out, "name", &string(&iface.name));
        let addresses: Vec<String> = iface.addresses.iter().map(|a| string(&a.to_string())).collect();
        line(&mut out, "address", &format!("[{}]", addresses.join(", ")));
        if let Some(mtu) = iface.mtu {
            line(&mut out, "mtu", &mtu.to_string());
        }
    }

    for route in &config.routes {
        out.push_str("\n[[route]]\n");
        line(&mut out, "prefix", &string(&route.prefix.to_string()));
        match &route.target {
            StaticTarget::Blackhole => line(&mut out, "blackhole", "true"),
            StaticTarget::Unreachable => line(&mut out, "unreachable", "true"),
            StaticTarget::NextHops(hops) => match hops.as_slice() {
                [hop] if hop.weight == 1 => {
                    for (key, value) in hop_fields(hop) {
                        line(&mut out, key, &value);
                    }
                }
                _ => {
                    out.push_str("next-hop = [\n");
                    for hop in hops {
                        let fields: Vec<String> = hop_fields(hop)
                            .into_iter()
                            .map(|(key, value)| format!("{key} = {value}"))
                            .collect();
                        let _ = writeln!(out, "    {{ {} }},", fields.join(", "));
                    }
                    out.push_str("]\n");
                }
            },
        }
        line(&mut out, "distance", &route.distance.to_string());
        line(&mut out, "metric", &route.metric.to_string());
    }

    for file in &config.route_files {
        out.push_str("\n[[route-file]]\n");
        line(&mut out, "path", &string(&file.path.to_string_lossy()));
        let via: Vec<String> = file.via.iter().map(|a| string(&a.to_string())).collect();
        line(&mut out, "via", &format!("[{}]", via.join(", ")));
        line(&mut out, "distance", &file.distance.to_string());
    }

    for (name, section) in [("rip", &config.rip), ("ospf", &config.ospf)] {
        let ProtocolSection { enabled } = section;
        let _ = write!(out, "\n[{name}]\n");
        line(&mut out, "enabled", &enabled.to_string());
    }
    super::bgp::render(&mut out, &config.bgp);
    out.push_str("\n[metrics]\n");
    line(&mut out, "enabled", &config.metrics.enabled.to_string());
    line(&mut out, "listen", &string(&config.metrics.listen.to_string()));
    out
}

/// `via`, `interface` and (unless it is the default) `weight`, as TOML values.
fn hop_fields(hop: &StaticNextHop) -> Vec<(&'static str, String)> {
    let mut fields = Vec::new();
    if let Some(via) = hop.via {
        fields.push(("via", string(&via.to_string())));
    }
    if let Some(interface) = &hop.interface {
        fields.push(("interface", string(interface)));
    }
    if hop.weight != 1 {
        fields.push(("weight", hop.weight.to_string()));
    }
    fields
}

fn line(out: &mut String, key: &str, value: &str) {
    let _ = writeln!(out, "{key} = {value}");
}

/// A TOML string literal, quoted and escaped.
pub(super) fn string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}
