//! What one session is configured with, and the checks that keep the state machine away from
//! values the RFCs forbid (hold time 1 or 2, AS 0) or that would make it spin (zero delays).

use crate::bgp::types::{Asn, Family, AS_TRANS};
use std::net::Ipv4Addr;
use std::time::Duration;

/// The hold time we offer by default, in seconds (RFC 4271 10 suggests 90).
pub const DEFAULT_HOLD_TIME: u16 = 90;

/// The ConnectRetry time by default (RFC 4271 10 suggests 120 s).
pub const DEFAULT_CONNECT_RETRY: Duration = Duration::from_secs(120);

/// The hold time while waiting for the peer's OPEN: "a large value", 4 minutes suggested
/// (RFC 4271 8.2.2, Connect state, event 17).
pub const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);

/// The wait before the session restarts on its own after an error (the IdleHoldTimer of
/// RFC 4271 8.1.1 with DampPeerOscillations, the "startup delay" of BIRD).
///
/// The first error waits `initial`; each further error without a stable session in between
/// doubles the wait, up to `max`. A session that stayed Established for `stable_after` or more
/// before it went down starts again from `initial`. So a peer that answers every OPEN with
/// garbage is retried after 5, 10, 20, 40, 80, 120, 120... seconds, not in a tight loop,
/// while a session that flaps once after a day comes back after 5 s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub stable_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(120),
            stable_after: Duration::from_secs(120),
        }
    }
}

/// One BGP session's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    pub local_as: Asn,
    pub peer_as: Asn,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// The hold time we offer, in seconds: 0 (no keepalives, no hold timer) or at least 3.
    pub hold_time: u16,
    /// The keepalive interval in seconds; by default a third of the negotiated hold time,
    /// and never more than that.
    pub keepalive: Option<u16>,
    /// The ConnectRetry time: how long an outbound connection attempt may take, and the wait
    /// between attempts.
    pub connect_retry: Duration,
    /// Never connect, only accept.
    pub passive: bool,
    /// The families we offer (Multiprotocol capabilities, RFC 4760 8), sorted, no duplicates.
    pub families: Vec<Family>,
    /// Offer the Route Refresh capability (RFC 2918).
    pub route_refresh: bool,
    /// Offer the 4-octet AS capability (RFC 6793).
    pub four_octet_as: bool,
    /// Refuse a peer that shares no family with us, with OPEN Message Error / Unsupported
    /// Capability (2/7) listing our families, as FRR does; otherwise establish a session that
    /// carries nothing (`Negotiated::families` empty), as BIRD does. On by default: the
    /// operator on both sides then sees why nothing is exchanged.
    pub require_common_family: bool,
    pub backoff: Backoff,
}

impl SessionConfig {
    /// The defaults: hold 90 s, connect retry 120 s, active, IPv4 and IPv6 unicast, route
    /// refresh and 4-octet AS offered, the default backoff.
    pub fn new(local_as: Asn, peer_as: Asn, router_id: Ipv4Addr) -> Self {
        Self {
            local_as,
            peer_as,
            router_id,
            hold_time: DEFAULT_HOLD_TIME,
            keepalive: None,
            connect_retry: DEFAULT_CONNECT_RETRY,
            passive: false,
            families: Family::ALL.to_vec(),
            route_refresh: true,
            four_octet_as: true,
            require_common_family: true,
            backoff: Backoff::default(),
        }
    }

    /// Checks the values the state machine relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (what, asn) in [("local", self.local_as), ("peer", self.peer_as)] {
            if asn == 0 || asn == AS_TRANS {
                return Err(ConfigError::ReservedAs(what, asn));
            }
        }
        if !self.four_octet_as && self.local_as > u32::from(u16::MAX) {
            return Err(ConfigError::LocalAsNeedsFourOctet(self.local_as));
        }
        if self.router_id.is_unspecified() {
            return Err(ConfigError::RouterIdZero);
        }
        if matches!(self.hold_time, 1 | 2) {
            return Err(ConfigError::HoldTime(self.hold_time));
        }
        if self.keepalive == Some(0) && self.hold_time != 0 {
            return Err(ConfigError::KeepaliveZero);
        }
        if self.families.is_empty() {
            return Err(ConfigError::NoFamilies);
        }
        if self.families.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ConfigError::FamiliesNotSorted);
        }
        // Deadlines are `Instant`s: bounded delays cannot overflow them, and non-zero delays
        // cannot make the timers fire in a loop.
        let day = Duration::from_secs(86_400);
        for (what, d) in [
            ("connect-retry", self.connect_retry),
            ("backoff initial", self.backoff.initial),
            ("backoff max", self.backoff.max),
            ("backoff stable-after", self.backoff.stable_after),
        ] {
            if d.is_zero() || d > day {
                return Err(ConfigError::Delay(what, d));
            }
        }
        if self.backoff.max < self.backoff.initial {
            return Err(ConfigError::BackoffMaxBelowInitial);
        }
        Ok(())
    }
}

/// A session configuration the state machine refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} AS {1} is reserved (0 and AS_TRANS 23456 cannot name a speaker)")]
    ReservedAs(&'static str, Asn),
    #[error("local AS {0} needs the 4-octet AS capability")]
    LocalAsNeedsFourOctet(Asn),
    #[error("router ID 0.0.0.0 is not a valid BGP identifier")]
    RouterIdZero,
    #[error("hold time {0} s: must be 0 or at least 3 (RFC 4271 4.2)")]
    HoldTime(u16),
    #[error("keepalive 0 with a non-zero hold time would let the peer's hold timer expire")]
    KeepaliveZero,
    #[error("no address family to offer")]
    NoFamilies,
    #[error("families must be sorted and without duplicates")]
    FamiliesNotSorted,
    #[error("{0} delay {1:?}: must be more than 0 and at most a day")]
    Delay(&'static str, Duration),
    #[error("backoff max is below backoff initial")]
    BackoffMaxBelowInitial,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> SessionConfig {
        SessionConfig::new(64500, 64501, Ipv4Addr::new(192, 0, 2, 1))
    }

    #[test]
    fn defaults_are_valid_and_as_documented() {
        let c = base();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.hold_time, 90);
        assert_eq!(c.connect_retry, Duration::from_secs(120));
        assert_eq!(c.families, vec![Family::Ipv4Unicast, Family::Ipv6Unicast]);
        assert!(c.route_refresh && c.four_octet_as && !c.passive);
        assert_eq!(c.backoff.initial, Duration::from_secs(5));
        assert_eq!(c.backoff.max, Duration::from_secs(120));
    }

    #[test]
    fn forbidden_values_are_refused() {
        type Change = fn(&mut SessionConfig);
        let cases: Vec<(Change, ConfigError)> = vec![
            (|c| c.peer_as = 0, ConfigError::ReservedAs("peer", 0)),
            (
                |c| c.local_as = AS_TRANS,
                ConfigError::ReservedAs("local", AS_TRANS),
            ),
            (
                |c| {
                    c.four_octet_as = false;
                    c.local_as = 4_200_000_000;
                },
                ConfigError::LocalAsNeedsFourOctet(4_200_000_000),
            ),
            (|c| c.router_id = Ipv4Addr::UNSPECIFIED, ConfigError::RouterIdZero),
            (|c| c.hold_time = 2, ConfigError::HoldTime(2)),
            (|c| c.keepalive = Some(0), ConfigError::KeepaliveZero),
            (|c| c.families.clear(), ConfigError::NoFamilies),
            (
                |c| c.families = vec![Family::Ipv6Unicast, Family::Ipv4Unicast],
                ConfigError::FamiliesNotSorted,
            ),
            (
                |c| c.connect_retry = Duration::ZERO,
                ConfigError::Delay("connect-retry", Duration::ZERO),
            ),
            (
                |c| c.backoff.max = Duration::from_secs(1),
                ConfigError::BackoffMaxBelowInitial,
            ),
        ];
        for (change, want) in cases {
            let mut c = base();
            change(&mut c);
            assert_eq!(c.validate(), Err(want));
        }
        let mut c = base();
        c.hold_time = 0;
        c.keepalive = Some(0);
        assert_eq!(c.validate(), Ok(()), "hold 0 sends no keepalives anyway");
    }
}
