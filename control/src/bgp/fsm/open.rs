//! The OPEN exchange: what we offer ([`LocalOpen`]), what the peer offered ([`PeerOpen`], as
//! the codec decoded it), the checks of RFC 4271 6.2 and RFC 6793, and what the two agree on
//! ([`Negotiated`]).

use super::config::SessionConfig;
use super::notification::{code, open_subcode, Notification};
use crate::bgp::types::{Asn, Family, AS_TRANS};
use std::net::Ipv4Addr;

/// The BGP version we speak (RFC 4271 4.2).
pub const BGP_VERSION: u8 = 4;

/// Capability code of Multiprotocol Extensions (RFC 4760 8), for the data of an Unsupported
/// Capability error.
const CAPABILITY_MULTIPROTOCOL: u8 = 1;

/// What to put in our OPEN (the codec encodes it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalOpen {
    /// Our AS, 4-octet; see [`LocalOpen::my_as_field`] for the 2-octet field.
    pub asn: Asn,
    pub hold_time: u16,
    pub router_id: Ipv4Addr,
    /// One Multiprotocol capability each.
    pub families: Vec<Family>,
    pub route_refresh: bool,
    /// Send the 4-octet AS capability, carrying `asn`.
    pub four_octet_as: bool,
}

impl LocalOpen {
    pub fn from_config(config: &SessionConfig) -> Self {
        Self {
            asn: config.local_as,
            hold_time: config.hold_time,
            router_id: config.router_id,
            families: config.families.clone(),
            route_refresh: config.route_refresh,
            four_octet_as: config.four_octet_as,
        }
    }

    /// The 2-octet My Autonomous System field: our AS, or AS_TRANS when it does not fit
    /// (RFC 6793 4.1).
    pub fn my_as_field(&self) -> u16 {
        u16::try_from(self.asn).unwrap_or(AS_TRANS as u16)
    }
}

/// The peer's OPEN as the codec decoded it. The codec checks only the syntax (lengths,
/// parameter and capability layout); the meaning is checked here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerOpen {
    pub version: u8,
    /// The 2-octet My Autonomous System field.
    pub my_as: u16,
    /// The 4-octet AS capability's value, if the peer sent one (RFC 6793).
    pub as4: Option<Asn>,
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    /// The families of the peer's Multiprotocol capabilities that xroute knows; `None` when
    /// the OPEN carried no Multiprotocol capability at all (the peer then speaks IPv4 unicast
    /// only, RFC 4760 8), `Some(empty)` when it carried only families xroute does not speak.
    pub families: Option<Vec<Family>>,
    /// The peer sent the Route Refresh capability (RFC 2918, code 2).
    pub route_refresh: bool,
}

impl PeerOpen {
    /// The peer's AS: the 4-octet capability's value, else the My AS field.
    pub fn asn(&self) -> Asn {
        self.as4.unwrap_or(Asn::from(self.my_as))
    }

    /// The families the peer speaks: its Multiprotocol capabilities, IPv4 unicast without.
    pub fn offered_families(&self) -> Vec<Family> {
        match &self.families {
            Some(f) => f.clone(),
            None => vec![Family::Ipv4Unicast],
        }
    }
}

/// What both sides agreed on, valid for the life of one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// Seconds; the smaller of the two offers; 0 means neither hold timer nor keepalives.
    pub hold_time: u16,
    /// Seconds between our KEEPALIVEs (0 when the hold time is 0).
    pub keepalive: u16,
    /// Both sent the 4-octet AS capability: AS numbers are 4 octets on the wire.
    pub four_octet_as: bool,
    /// The families both offered (sorted); empty only when the configuration allows it.
    pub families: Vec<Family>,
    /// Both sent Route Refresh: we may send ROUTE-REFRESH, and the peer handles it.
    pub route_refresh: bool,
    pub peer_router_id: Ipv4Addr,
    pub peer_as: Asn,
}

fn open_error(subcode: u8, data: Vec<u8>) -> Notification {
    Notification::new(code::OPEN, subcode, data)
}

/// Checks the peer's OPEN against our configuration (RFC 4271 6.2, RFC 6793 4.1, RFC 6286,
/// RFC 5492) and works out what the session runs with; `Err` is the NOTIFICATION to send.
pub fn check_open(config: &SessionConfig, open: &PeerOpen) -> Result<Negotiated, Notification> {
    if open.version != BGP_VERSION {
        // The largest version we support below the bid, else our smallest: 4 either way.
        return Err(open_error(
            open_subcode::UNSUPPORTED_VERSION,
            u16::from(BGP_VERSION).to_be_bytes().to_vec(),
        ));
    }
    if let Some(as4) = open.as4 {
        // RFC 6793 4.1: My AS is the AS itself when it fits in 2 octets, else AS_TRANS; the
        // capability never carries AS_TRANS or 0 (RFC 7607). FRR checks the same.
        let consistent = open.my_as == AS_TRANS as u16 || Asn::from(open.my_as) == as4;
        if !consistent || as4 == 0 || as4 == AS_TRANS {
            return Err(open_error(open_subcode::BAD_PEER_AS, as4.to_be_bytes().to_vec()));
        }
    }
    if open.asn() != config.peer_as {
        let data = match open.as4 {
            Some(as4) => as4.to_be_bytes().to_vec(),
            None => open.my_as.to_be_bytes().to_vec(),
        };
        return Err(open_error(open_subcode::BAD_PEER_AS, data));
    }
    // RFC 6286 2.1: any non-zero value, but never ours (FRR refuses ours for iBGP and eBGP
    // alike: two speakers with one identifier break collision resolution).
    if open.bgp_id.is_unspecified() || open.bgp_id == config.router_id {
        return Err(open_error(open_subcode::BAD_BGP_IDENTIFIER, Vec::new()));
    }
    if matches!(open.hold_time, 1 | 2) {
        return Err(open_error(open_subcode::UNACCEPTABLE_HOLD_TIME, Vec::new()));
    }
    let peer_families = open.offered_families();
    let families: Vec<Family> = config
        .families
        .iter()
        .copied()
        .filter(|f| peer_families.contains(f))
        .collect();
    if families.is_empty() && config.require_common_family {
        // RFC 5492 5: the data lists the capabilities we miss, encoded as in an OPEN.
        let mut data = Vec::with_capacity(6 * config.families.len());
        for f in &config.families {
            data.push(CAPABILITY_MULTIPROTOCOL);
            data.push(4);
            data.extend_from_slice(&f.afi().to_be_bytes());
            data.push(0);
            data.push(f.safi());
        }
        return Err(open_error(open_subcode::UNSUPPORTED_CAPABILITY, data));
    }
    let hold_time = config.hold_time.min(open.hold_time);
    let keepalive = match hold_time {
        0 => 0,
        h => config.keepalive.unwrap_or(h / 3).min(h / 3).max(1),
    };
    Ok(Negotiated {
        hold_time,
        keepalive,
        four_octet_as: config.four_octet_as && open.as4.is_some(),
        families,
        route_refresh: config.route_refresh && open.route_refresh,
        peer_router_id: open.bgp_id,
        peer_as: open.asn(),
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub fn config() -> SessionConfig {
        SessionConfig::new(64500, 64501, Ipv4Addr::new(10, 0, 0, 1))
    }

    /// A valid OPEN from AS 64501, router ID 10.0.0.2, hold 90, both families.
    pub fn peer_open() -> PeerOpen {
        PeerOpen {
            version: 4,
            my_as: 64501,
            as4: Some(64501),
            hold_time: 90,
            bgp_id: Ipv4Addr::new(10, 0, 0, 2),
            families: Some(Family::ALL.to_vec()),
            route_refresh: true,
        }
    }

    fn error_of(config: &SessionConfig, open: &PeerOpen) -> (u8, u8, Vec<u8>) {
        let n = check_open(config, open).expect_err("the OPEN should be refused");
        (n.code, n.subcode, n.data)
    }

    #[test]
    fn a_good_open_negotiates_the_minimum_hold_and_a_third_of_it() {
        let mut o = peer_open();
        o.hold_time = 30;
        let n = check_open(&config(), &o).unwrap();
        assert_eq!(
            n,
            Negotiated {
                hold_time: 30,
                keepalive: 10,
                four_octet_as: true,
                families: Family::ALL.to_vec(),
                route_refresh: true,
                peer_router_id: Ipv4Addr::new(10, 0, 0, 2),
                peer_as: 64501,
            }
        );
        // Our hold is smaller; a configured keepalive is kept below a third of the hold.
        let mut c = config();
        c.hold_time = 9;
        c.keepalive = Some(60);
        let n = check_open(&c, &peer_open()).unwrap();
        assert_eq!((n.hold_time, n.keepalive), (9, 3));
        c.keepalive = Some(2);
        assert_eq!(check_open(&c, &peer_open()).unwrap().keepalive, 2);
    }

    #[test]
    fn hold_zero_on_either_side_means_no_keepalives() {
        let mut o = peer_open();
        o.hold_time = 0;
        let n = check_open(&config(), &o).unwrap();
        assert_eq!((n.hold_time, n.keepalive), (0, 0));
        let mut c = config();
        c.hold_time = 0;
        let n = check_open(&c, &peer_open()).unwrap();
        assert_eq!((n.hold_time, n.keepalive), (0, 0));
        // The smallest non-zero hold: keepalive every second.
        let mut o = peer_open();
        o.hold_time = 3;
        assert_eq!(check_open(&config(), &o).unwrap().keepalive, 1);
    }

    #[test]
    fn capabilities_are_intersected() {
        // No Multiprotocol capability: IPv4 unicast only; no 4-octet AS; no route refresh.
        let mut o = peer_open();
        o.families = None;
        o.as4 = None;
        o.route_refresh = false;
        let n = check_open(&config(), &o).unwrap();
        assert_eq!(n.families, vec![Family::Ipv4Unicast]);
        assert!(!n.four_octet_as && !n.route_refresh);
        assert_eq!(n.peer_as, 64501);
        // We do not offer what the peer does.
        let mut c = config();
        c.families = vec![Family::Ipv6Unicast];
        c.route_refresh = false;
        c.four_octet_as = false;
        let n = check_open(&c, &peer_open()).unwrap();
        assert_eq!(n.families, vec![Family::Ipv6Unicast]);
        assert!(!n.four_octet_as && !n.route_refresh);
    }

    #[test]
    fn a_four_octet_peer_as_comes_from_the_capability() {
        let mut c = config();
        c.peer_as = 4_200_000_001;
        let mut o = peer_open();
        o.my_as = AS_TRANS as u16;
        o.as4 = Some(4_200_000_001);
        assert_eq!(check_open(&c, &o).unwrap().peer_as, 4_200_000_001);
        // A 2-octet AS announced as AS_TRANS plus the capability is accepted too.
        let mut o = peer_open();
        o.my_as = AS_TRANS as u16;
        assert_eq!(check_open(&config(), &o).unwrap().peer_as, 64501);
    }

    #[test]
    fn each_open_error_has_its_code_subcode_and_data() {
        let c = config();
        let mut o = peer_open();
        o.version = 3;
        assert_eq!(error_of(&c, &o), (2, 1, vec![0, 4]));
        o.version = 5;
        assert_eq!(error_of(&c, &o), (2, 1, vec![0, 4]));

        // AS mismatch, without and with the 4-octet capability.
        let mut o = peer_open();
        o.as4 = None;
        o.my_as = 64999;
        assert_eq!(error_of(&c, &o), (2, 2, 64999u16.to_be_bytes().to_vec()));
        let mut o = peer_open();
        o.my_as = AS_TRANS as u16;
        o.as4 = Some(4_200_000_000);
        assert_eq!(error_of(&c, &o), (2, 2, 4_200_000_000u32.to_be_bytes().to_vec()));
        // The capability disagrees with My AS (neither the AS nor AS_TRANS).
        let mut o = peer_open();
        o.my_as = 64999;
        assert_eq!(error_of(&c, &o), (2, 2, 64501u32.to_be_bytes().to_vec()));
        // AS_TRANS or 0 inside the capability.
        for bad in [AS_TRANS, 0] {
            let mut o = peer_open();
            o.my_as = AS_TRANS as u16;
            o.as4 = Some(bad);
            assert_eq!(error_of(&c, &o), (2, 2, bad.to_be_bytes().to_vec()));
        }

        for id in [Ipv4Addr::UNSPECIFIED, c.router_id] {
            let mut o = peer_open();
            o.bgp_id = id;
            assert_eq!(error_of(&c, &o), (2, 3, vec![]));
        }
        for hold in [1, 2] {
            let mut o = peer_open();
            o.hold_time = hold;
            assert_eq!(error_of(&c, &o), (2, 6, vec![]));
        }
    }

    #[test]
    fn no_common_family_is_refused_by_default_and_allowed_on_request() {
        let mut o = peer_open();
        o.families = Some(vec![]);
        let (code, subcode, data) = error_of(&config(), &o);
        assert_eq!((code, subcode), (2, 7));
        // Our two Multiprotocol capabilities, as in our OPEN.
        assert_eq!(data, vec![1, 4, 0, 1, 0, 1, 1, 4, 0, 2, 0, 1]);
        // Without MP capabilities the peer speaks IPv4 unicast, which we may not.
        let mut c = config();
        c.families = vec![Family::Ipv6Unicast];
        let mut o = peer_open();
        o.families = None;
        assert_eq!(error_of(&c, &o), (2, 7, vec![1, 4, 0, 2, 0, 1]));
        c.require_common_family = false;
        assert_eq!(check_open(&c, &o).unwrap().families, vec![]);
    }

    #[test]
    fn local_open_uses_as_trans_for_a_four_octet_as() {
        let mut c = config();
        assert_eq!(LocalOpen::from_config(&c).my_as_field(), 64500);
        c.local_as = 4_200_000_000;
        let lo = LocalOpen::from_config(&c);
        assert_eq!(lo.my_as_field(), AS_TRANS as u16);
        assert_eq!(lo.asn, 4_200_000_000);
    }
}
