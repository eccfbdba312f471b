//! Real messages: the BGP exchanges between two BIRD 2.0.12 routers captured in
//! `shared/data/pcap` (beside the repository), every message decoded, checked against what the
//! capture shows, and encoded back to the same bytes.
//!
//! A small classic-pcap reader: Ethernet, IPv4 or IPv6, TCP port 179, each direction's payload
//! reassembled by sequence number and cut into messages with `frame_len`.

use super::super::types::{AsPath, Family, NextHop, Origin};
use super::*;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

fn pcap_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/pcap"))
}

/// One direction of a TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Flow {
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
}

#[derive(Default)]
struct Stream {
    /// The sequence number of the first payload byte, once known from a SYN.
    isn: Option<u32>,
    segments: Vec<(u32, Vec<u8>)>,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The TCP port-179 payloads of a classic pcap file, per direction, in file order.
fn read_pcap(file: &[u8]) -> BTreeMap<Flow, Stream> {
    let magic = u32::from_le_bytes(file[..4].try_into().unwrap());
    let little = match magic {
        0xA1B2_C3D4 | 0xA1B2_3C4D => true,
        0xD4C3_B2A1 | 0x4D3C_B2A1 => false,
        m => panic!("not a classic pcap file (magic {m:#x})"),
    };
    let u32_at = |b: &[u8]| {
        let a = b[..4].try_into().unwrap();
        if little {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    assert_eq!(u32_at(&file[20..]), 1, "link type must be Ethernet");
    let mut flows: BTreeMap<Flow, Stream> = BTreeMap::new();
    let mut pos = 24;
    while pos + 16 <= file.len() {
        let incl = u32_at(&file[pos + 8..]) as usize;
        let frame = &file[pos + 16..pos + 16 + incl];
        pos += 16 + incl;

        let mut ethertype = be16(&frame[12..]);
        let mut l3 = &frame[14..];
        if ethertype == 0x8100 {
            ethertype = be16(&l3[2..]);
            l3 = &l3[4..];
        }
        let (src, dst, l4) = match ethertype {
            0x0800 if l3[9] == 6 => {
                let ihl = usize::from(l3[0] & 0x0F) * 4;
                let total = usize::from(be16(&l3[2..]));
                let src = IpAddr::V4(Ipv4Addr::from(be32(&l3[12..])));
                let dst = IpAddr::V4(Ipv4Addr::from(be32(&l3[16..])));
                (src, dst, &l3[ihl..total])
            }
            0x86DD if l3[6] == 6 => {
                let len = usize::from(be16(&l3[4..]));
                let addr = |b: &[u8]| IpAddr::from(<[u8; 16]>::try_from(b).unwrap());
                (addr(&l3[8..24]), addr(&l3[24..40]), &l3[40..40 + len])
            }
            _ => continue,
        };
        let (sport, dport) = (be16(l4), be16(&l4[2..]));
        if sport != 179 && dport != 179 {
            continue;
        }
        let seq = be32(&l4[4..]);
        let data_offset = usize::from(l4[12] >> 4) * 4;
        let syn = l4[13] & 0x02 != 0;
        let stream = flows
            .entry(Flow {
                src,
                sport,
                dst,
                dport,
            })
            .or_default();
        if syn {
            stream.isn = Some(seq.wrapping_add(1));
        }
        let payload = &l4[data_offset..];
        if !payload.is_empty() {
            stream.segments.push((seq, payload.to_vec()));
        }
    }
    flows
}

/// The byte stream of one direction: segments placed by sequence number relative to the first
/// byte (from the SYN, or the earliest segment of a capture that started mid-connection),
/// retransmissions and overlaps dropped, gaps refused.
fn reassemble(stream: &Stream) -> Vec<u8> {
    let Some(&(first_seq, _)) = stream.segments.first() else {
        return Vec::new();
    };
    let base = stream.isn.unwrap_or_else(|| {
        stream
            .segments
            .iter()
            .map(|(s, _)| s.wrapping_sub(first_seq) as i32)
            .min()
            .map(|d| first_seq.wrapping_add(d as u32))
            .unwrap()
    });
    let mut segs: Vec<(u32, &[u8])> = stream
        .segments
        .iter()
        .map(|(s, p)| (s.wrapping_sub(base), p.as_slice()))
        .collect();
    segs.sort_by_key(|(off, _)| *off);
    let mut out = Vec::new();
    for (off, payload) in segs {
        let off = off as usize;
        assert!(off <= out.len(), "gap in the capture at offset {off}");
        if off + payload.len() > out.len() {
            out.extend_from_slice(&payload[out.len() - off..]);
        }
    }
    out
}

/// Cuts a direction's bytes into messages.
fn split_messages(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let len = frame_len(rest).expect("a valid header").expect("a whole header");
        assert!(len <= rest.len(), "the capture ends inside a message");
        out.push(&rest[..len]);
        rest = &rest[len..];
    }
    out
}

/// Every message of every BGP direction in `file`, decoded with the session's context (from
/// the OPENs when the capture has them, else what BIRD negotiates by default: 4-octet AS,
/// eBGP, IPv4 unicast), re-encoded to the same bytes and decoded again to the same message.
/// `None` with a printed reason when the capture is not there.
fn decode_capture(name: &str) -> Option<BTreeMap<Flow, Vec<Message>>> {
    let path = pcap_dir().join(name);
    let Ok(file) = std::fs::read(&path) else {
        eprintln!("skipped: {} is not there", path.display());
        return None;
    };
    let flows = read_pcap(&file);
    let raw: BTreeMap<Flow, Vec<u8>> = flows.iter().map(|(f, s)| (*f, reassemble(s))).collect();
    let boot = DecodeContext::new(true, true, [Family::Ipv4Unicast].into_iter().collect());
    let opens: Vec<Open> = raw
        .values()
        .filter_map(|bytes| {
            let first = split_messages(bytes).into_iter().next()?;
            match decode(first, &boot) {
                Ok(Message::Open(o)) => Some(o),
                _ => None,
            }
        })
        .collect();
    let ctx = match opens.as_slice() {
        [a, b] => DecodeContext::negotiated(a, b),
        _ => boot,
    };
    let enc = EncodeContext {
        four_octet_as: ctx.four_octet_as,
    };
    let mut out = BTreeMap::new();
    for (flow, bytes) in raw {
        let mut msgs = Vec::new();
        for m in split_messages(&bytes) {
            let msg = decode(m, &ctx).unwrap_or_else(|n| panic!("{flow:?}: {n}"));
            let again = msg.to_bytes(&enc).unwrap();
            assert_eq!(again, m, "{flow:?}: {msg:?} re-encoded differently");
            assert_eq!(decode(&again, &ctx).unwrap(), msg);
            msgs.push(msg);
        }
        out.insert(flow, msgs);
    }
    Some(out)
}

fn bird_open(asn: u16, id: [u8; 4]) -> Open {
    Open {
        version: 4,
        my_as: asn,
        hold_time: 9,
        bgp_id: Ipv4Addr::from(id),
        capabilities: vec![
            Capability::Multiprotocol(Family::Ipv4Unicast),
            Capability::RouteRefresh,
            // Graceful restart: no flags, restart time 120 s.
            Capability::Unknown {
                code: 64,
                value: vec![0x00, 0x78],
            },
            Capability::FourOctetAs(u32::from(asn)),
            // Enhanced route refresh, long-lived graceful restart.
            Capability::Unknown {
                code: 70,
                value: vec![],
            },
            Capability::Unknown {
                code: 71,
                value: vec![],
            },
        ],
    }
}

fn bird_route(asn: u32, next_hop: [u8; 4], prefix: &str) -> Update {
    let attrs = PathAttributes {
        origin: Origin::Igp,
        as_path: AsPath::sequence([asn]),
        ..PathAttributes::local(NextHop::new(IpAddr::V4(Ipv4Addr::from(next_hop))))
    };
    Update {
        announced: vec![Announcement {
            family: Family::Ipv4Unicast,
            attrs,
            prefixes: vec![prefix.parse::<IpNet>().unwrap()],
        }],
        ..Update::default()
    }
}

use super::super::types::PathAttributes;

#[test]
fn bird_session_start_decodes_to_what_the_capture_shows() {
    let Some(flows) = decode_capture("bird-bgp-restart.pcap") else {
        return;
    };
    assert_eq!(flows.len(), 2);
    for (flow, msgs) in &flows {
        let (asn, id, prefix) = match flow.src {
            IpAddr::V4(a) if a == Ipv4Addr::new(192, 0, 2, 1) => (65001u16, [192, 0, 2, 1], "198.18.1.0/24"),
            IpAddr::V4(a) if a == Ipv4Addr::new(192, 0, 2, 2) => (65002, [192, 0, 2, 2], "198.18.2.0/24"),
            other => panic!("unexpected speaker {other}"),
        };
        let open = bird_open(asn, id);
        assert_eq!(open.asn(), u32::from(asn));
        assert_eq!(open.families(), vec![Family::Ipv4Unicast]);
        assert!(open.supports_route_refresh());
        assert_eq!(
            msgs,
            &vec![
                Message::Open(open),
                Message::Keepalive,
                Message::Update(bird_route(u32::from(asn), id, prefix)),
                Message::Update(Update::end_of_rib_marker(Family::Ipv4Unicast)),
                Message::Keepalive,
            ],
            "{flow:?}"
        );
    }
}

#[test]
fn bird_keepalives_mid_session_decode() {
    let Some(flows) = decode_capture("bird-ospf-rip-bgp.pcap") else {
        return;
    };
    assert_eq!(flows.len(), 2);
    for msgs in flows.values() {
        assert_eq!(msgs, &vec![Message::Keepalive; 4]);
    }
}
