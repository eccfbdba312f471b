//! xroute's control plane: the configuration, the RIB (every candidate route, best path per
//! prefix, recursive resolution, ECMP groups, coalesced FIB deltas), the producer side of the
//! delta channel, the management socket, the Prometheus endpoint and the `xroutectl` client.

pub mod api;
pub mod bgp;
pub mod client;
pub mod config;
pub mod daemon;
pub mod metrics;
pub mod protocol;
pub mod rib;
pub mod routefile;
pub mod routetext;
pub mod statics;
