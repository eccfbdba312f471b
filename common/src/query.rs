//! The engine's query socket: one JSON object per line each way, on a Unix socket beside the
//! control socket (`<run-dir>/<instance>/engine.sock`, owner only). The control process uses
//! it to show the engine's actual answers (`xroutectl fib lookup`, `neighbors`); nothing on
//! the forwarding path depends on it.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// A request to the engine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum EngineRequest {
    /// What the FIB answers for each address.
    Lookup { addrs: Vec<IpAddr> },
    /// Every adjacency with its resolution state.
    Adjacencies,
    /// The ports the control process announced.
    Ports,
    /// The neighbours the data plane has resolved (through the kernel's ARP / ND).
    Neighbors,
}

/// One member of the group a lookup found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupMember {
    pub adjacency: u32,
    pub weight: u32,
    /// forward, blackhole, unreachable or local.
    pub action: String,
    pub port: u16,
    pub port_name: Option<String>,
    pub next_hop: Option<IpAddr>,
    /// The neighbour's MAC once resolved (`aa:bb:cc:dd:ee:ff`).
    pub mac: Option<String>,
    pub mtu: u16,
}

/// The FIB's answer for one address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupResult {
    pub addr: IpAddr,
    /// The matching route, `None` when nothing matches.
    pub prefix: Option<String>,
    pub group: Option<u32>,
    pub members: Vec<LookupMember>,
}

/// A reply from the engine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub enum EngineReply {
    Lookup { results: Vec<LookupResult> },
    Adjacencies { adjacencies: Vec<LookupMember> },
    Ports { ports: Vec<PortInfo> },
    Neighbors { neighbors: Vec<NeighborInfo> },
    Error { message: String },
}

/// A resolved neighbour: the control process's port number, its address and MAC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighborInfo {
    pub port: u16,
    pub address: IpAddr,
    pub mac: String,
}

/// A port as the engine knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortInfo {
    pub port: u32,
    pub name: String,
    pub ifindex: u32,
    pub mtu: u32,
    pub mac: String,
    pub up: bool,
}

/// Formats a MAC address the usual way.
pub fn format_mac(mac: [u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_a_stable_wire_form() {
        let r = EngineRequest::Lookup {
            addrs: vec!["192.0.2.1".parse().unwrap()],
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(text, r#"{"op":"lookup","addrs":["192.0.2.1"]}"#);
        assert_eq!(serde_json::from_str::<EngineRequest>(&text).unwrap(), r);
        assert!(serde_json::from_str::<EngineRequest>(r#"{"op":"reboot"}"#).is_err());
        assert_eq!(format_mac([2, 0xab, 0, 0, 0, 1]), "02:ab:00:00:00:01");
    }
}
