//! The delta channel's records: what the control process tells the engine to program.
//!
//! A record is eight little-endian 64-bit words (64 bytes, one cache line), the same for every
//! kind, so the ring is an array of fixed slots and a record is copied with eight atomic word
//! stores. Word layout:
//!
//! ```text
//! word 0   sequence number (1 for the first record ever written to this channel file)
//! word 1   bits 0-7 kind | 8-15 a | 16-23 b | 24-31 c | 32-63 id
//! word 2-3 address, high 64 bits then low 64 bits (an IPv4 address is the low 32 bits)
//! word 4-7 payload
//! ```
//!
//! | kind | id | a | b | c | address | payload |
//! |---|---|---|---|---|---|---|
//! | 1 route set | group | family | prefix length | 0 | prefix | - |
//! | 2 route delete | 0 | family | prefix length | 0 | prefix | - |
//! | 3 group members | group | chunk index | members in chunk | members in group | - | 4 x (adjacency << 32, weight) |
//! | 4 group delete | group | - | - | - | - | - |
//! | 5 adjacency set | adjacency | next-hop family (0 none) | action | 0 | next hop | w4: port, mtu << 16; w5: source MAC |
//! | 6 adjacency delete | adjacency | - | - | - | - | - |
//! | 7 port set | port | up (0/1) | - | - | - | w4: ifindex, mtu << 32; w5: MAC; w6-7: name, NUL padded |
//! | 8 port delete | port | - | - | - | - | - |
//! | 9 resync begin | 0 | - | - | - | - | w4: tag |
//! | 10 resync end | 0 | - | - | - | - | w4: tag |
//! | 11 commit | 0 | - | - | - | - | - |
//!
//! A commit asks the engine to publish what it has applied at once instead of when the burst of
//! records ends (a pause of tens of milliseconds): the control process sends one after a
//! protocol has delivered a complete set, such as a BGP peer's End-of-RIB after its table.
//!
//! A group with more than four members is sent as consecutive "group members" chunks; the
//! engine applies the group when the last chunk (`index * 4 + count == total`) arrives.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Words in one record.
pub const RECORD_WORDS: usize = 8;
/// Bytes in one record.
pub const RECORD_BYTES: usize = RECORD_WORDS * 8;
/// Members carried by one "group members" record.
pub const MEMBERS_PER_CHUNK: usize = 4;
/// Most members in one next-hop group (the engine's bucket limit).
pub const MAX_GROUP_MEMBERS: usize = 64;
/// Adjacency ids the control process may use: `0..MAX_ADJACENCIES`. The engine sizes its
/// table at twice this, so that during a full replay the old and the new sets fit side by side.
pub const MAX_ADJACENCIES: u32 = 4096;
/// Group ids the control process may use: `1..=MAX_GROUPS` (the engine has room for twice as many).
pub const MAX_GROUPS: u32 = 32_767;
/// Longest port (interface) name, as in Linux's IFNAMSIZ without the NUL.
pub const PORT_NAME_BYTES: usize = 16;

/// A record as it lies in the ring.
pub type RawRecord = [u64; RECORD_WORDS];

/// What the data plane does with a packet whose route uses an adjacency. Numbering is part of
/// the layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum AdjacencyAction {
    /// Rewrite MACs and send on the port.
    Forward = 0,
    /// Discard silently.
    Blackhole = 1,
    /// Discard and answer ICMP destination unreachable.
    Unreachable = 2,
    /// Hand to the kernel: the router's own addresses.
    Local = 3,
}

impl AdjacencyAction {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Forward,
            1 => Self::Blackhole,
            2 => Self::Unreachable,
            3 => Self::Local,
            _ => return None,
        })
    }
}

/// An adjacency: where and how to send. The neighbour's MAC is the engine's business (ARP/ND).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AdjacencySpec {
    pub action: AdjacencyAction,
    pub port: u16,
    pub mtu: u16,
    /// The neighbour to resolve; `None` on a connected route (the destination is the neighbour).
    pub next_hop: Option<IpAddr>,
    pub src_mac: [u8; 6],
}

/// A group member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Member {
    pub adjacency: u32,
    /// Relative share of flows, at least 1.
    pub weight: u32,
}

/// A port (an interface the router forwards on), so that both processes agree on port numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortSpec {
    pub ifindex: u32,
    pub mtu: u32,
    pub mac: [u8; 6],
    pub up: bool,
    /// Interface name, NUL padded.
    pub name: [u8; PORT_NAME_BYTES],
}

impl PortSpec {
    /// The name as text (lossy on invalid UTF-8).
    pub fn name_str(&self) -> String {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(PORT_NAME_BYTES);
        String::from_utf8_lossy(self.name.get(..end).unwrap_or_default()).into_owned()
    }

    /// Encodes a name; `None` if it is longer than [`PORT_NAME_BYTES`] or contains NUL.
    pub fn encode_name(name: &str) -> Option<[u8; PORT_NAME_BYTES]> {
        if name.len() > PORT_NAME_BYTES || name.as_bytes().contains(&0) {
            return None;
        }
        let mut out = [0u8; PORT_NAME_BYTES];
        out.iter_mut().zip(name.bytes()).for_each(|(o, b)| *o = b);
        Some(out)
    }
}

/// One decoded record (the sequence number travels beside it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delta {
    RouteSet {
        prefix: IpNet,
        group: u32,
    },
    RouteDelete {
        prefix: IpNet,
    },
    /// One chunk of a group's member list; see the module docs.
    GroupMembers {
        group: u32,
        chunk: u8,
        total: u8,
        members: [Member; MEMBERS_PER_CHUNK],
        count: u8,
    },
    GroupDelete {
        group: u32,
    },
    AdjacencySet {
        id: u32,
        adjacency: AdjacencySpec,
    },
    AdjacencyDelete {
        id: u32,
    },
    PortSet {
        port: u32,
        spec: PortSpec,
    },
    PortDelete {
        port: u32,
    },
    ResyncBegin {
        tag: u64,
    },
    ResyncEnd {
        tag: u64,
    },
    /// Publish now: the records before this one complete a set.
    Commit,
}

/// Why a record could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown record kind {0}")]
    Kind(u8),
    #[error("bad address family {0}")]
    Family(u8),
    #[error("prefix length {len} is too long for IPv{family}")]
    PrefixLength { family: u8, len: u8 },
    #[error("prefix has host bits set")]
    HostBits,
    #[error("bad adjacency action {0}")]
    Action(u8),
    #[error("bad group chunk (index {chunk}, {count} members, {total} in all)")]
    Chunk { chunk: u8, count: u8, total: u8 },
    #[error("bad flag value {0}")]
    Flag(u8),
}

const ROUTE_SET: u8 = 1;
const ROUTE_DELETE: u8 = 2;
const GROUP_MEMBERS: u8 = 3;
const GROUP_DELETE: u8 = 4;
const ADJACENCY_SET: u8 = 5;
const ADJACENCY_DELETE: u8 = 6;
const PORT_SET: u8 = 7;
const PORT_DELETE: u8 = 8;
const RESYNC_BEGIN: u8 = 9;
const RESYNC_END: u8 = 10;
const COMMIT: u8 = 11;

fn head(kind: u8, a: u8, b: u8, c: u8, id: u32) -> u64 {
    u64::from(kind) | u64::from(a) << 8 | u64::from(b) << 16 | u64::from(c) << 24 | u64::from(id) << 32
}

fn addr_words(addr: IpAddr) -> (u8, u64, u64) {
    let (family, v) = match addr {
        IpAddr::V4(a) => (4, u128::from(u32::from(a))),
        IpAddr::V6(a) => (6, u128::from(a)),
    };
    (family, (v >> 64) as u64, v as u64)
}

fn mac_word(mac: [u8; 6]) -> u64 {
    mac.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b))
}

fn word_mac(w: u64) -> [u8; 6] {
    let b = w.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

/// A route set or delete read in place: the fields [`Delta::decode`] would give, checked the
/// same way, without building an `IpNet`. The engine reads a full table's million route
/// records through this; as `Delta`s, moving the byte-packed prefixes about cost it more than
/// the rest of reading them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteRecord {
    pub v6: bool,
    pub len: u8,
    /// The network bits; an IPv4 prefix's in the low 32.
    pub bits: u128,
    /// The group of a route set, `None` for a delete.
    pub group: Option<u32>,
}

impl RouteRecord {
    /// `None` if the record is not a route set or delete; otherwise the route, or why
    /// [`Delta::decode`] would refuse it. Never panics, whatever the words hold.
    pub fn decode(w: &RawRecord) -> Option<Result<Self, DecodeError>> {
        let [_, h, hi, lo, ..] = *w;
        let group = match h as u8 {
            ROUTE_SET => Some((h >> 32) as u32),
            ROUTE_DELETE => None,
            _ => return None,
        };
        let (family, len) = ((h >> 8) as u8, (h >> 16) as u8);
        let bits = u128::from(hi) << 64 | u128::from(lo);
        let (v6, width) = match family {
            4 if bits >> 32 == 0 => (false, 32),
            6 => (true, 128),
            f => return Some(Err(DecodeError::Family(f))),
        };
        if u32::from(len) > width {
            return Some(Err(DecodeError::PrefixLength { family, len }));
        }
        // The host bits: the low `width - len` bits of the address.
        let host = u128::MAX.checked_shr(128 - (width - u32::from(len))).unwrap_or(0);
        if bits & host != 0 {
            return Some(Err(DecodeError::HostBits));
        }
        Some(Ok(Self { v6, len, bits, group }))
    }
}

impl Delta {
    /// The record for this delta with sequence number `seq`.
    pub fn encode(&self, seq: u64) -> RawRecord {
        let mut w = [0u64; RECORD_WORDS];
        w[0] = seq;
        match *self {
            Self::RouteSet { prefix, group } => {
                let (f, hi, lo) = addr_words(prefix.addr());
                w[1] = head(ROUTE_SET, f, prefix.prefix_len(), 0, group);
                w[2] = hi;
                w[3] = lo;
            }
            Self::RouteDelete { prefix } => {
                let (f, hi, lo) = addr_words(prefix.addr());
                w[1] = head(ROUTE_DELETE, f, prefix.prefix_len(), 0, 0);
                w[2] = hi;
                w[3] = lo;
            }
            Self::GroupMembers {
                group,
                chunk,
                total,
                members,
                count,
            } => {
                w[1] = head(GROUP_MEMBERS, chunk, count, total, group);
                for (slot, m) in w[4..].iter_mut().zip(members.iter().take(usize::from(count))) {
                    *slot = u64::from(m.adjacency) << 32 | u64::from(m.weight);
                }
            }
            Self::GroupDelete { group } => w[1] = head(GROUP_DELETE, 0, 0, 0, group),
            Self::AdjacencySet { id, adjacency } => {
                let (f, hi, lo) = adjacency.next_hop.map_or((0, 0, 0), addr_words);
                w[1] = head(ADJACENCY_SET, f, adjacency.action as u8, 0, id);
                w[2] = hi;
                w[3] = lo;
                w[4] = u64::from(adjacency.port) | u64::from(adjacency.mtu) << 16;
                w[5] = mac_word(adjacency.src_mac);
            }
            Self::AdjacencyDelete { id } => w[1] = head(ADJACENCY_DELETE, 0, 0, 0, id),
            Self::PortSet { port, spec } => {
                w[1] = head(PORT_SET, u8::from(spec.up), 0, 0, port);
                w[4] = u64::from(spec.ifindex) | u64::from(spec.mtu) << 32;
                w[5] = mac_word(spec.mac);
                let (a, b) = spec.name.split_at(8);
                w[6] = u64::from_le_bytes(a.try_into().unwrap_or_default());
                w[7] = u64::from_le_bytes(b.try_into().unwrap_or_default());
            }
            Self::PortDelete { port } => w[1] = head(PORT_DELETE, 0, 0, 0, port),
            Self::ResyncBegin { tag } => {
                w[1] = head(RESYNC_BEGIN, 0, 0, 0, 0);
                w[4] = tag;
            }
            Self::ResyncEnd { tag } => {
                w[1] = head(RESYNC_END, 0, 0, 0, 0);
                w[4] = tag;
            }
            Self::Commit => w[1] = head(COMMIT, 0, 0, 0, 0),
        }
        w
    }

    /// Decodes a record; never panics, whatever the words hold.
    pub fn decode(w: &RawRecord) -> Result<(u64, Self), DecodeError> {
        let [seq, h, hi, lo, p0, p1, p2, p3] = *w;
        let kind = h as u8;
        let a = (h >> 8) as u8;
        let b = (h >> 16) as u8;
        let c = (h >> 24) as u8;
        let id = (h >> 32) as u32;
        let addr = |family: u8| -> Result<IpAddr, DecodeError> {
            let v = u128::from(hi) << 64 | u128::from(lo);
            match family {
                4 if hi == 0 && lo >> 32 == 0 => Ok(IpAddr::V4(Ipv4Addr::from(lo as u32))),
                6 => Ok(IpAddr::V6(Ipv6Addr::from(v))),
                f => Err(DecodeError::Family(f)),
            }
        };
        let prefix = || -> Result<IpNet, DecodeError> {
            let net = match addr(a)? {
                IpAddr::V4(x) => Ipv4Net::new(x, b).map(IpNet::V4),
                IpAddr::V6(x) => Ipv6Net::new(x, b).map(IpNet::V6),
            }
            .map_err(|_| DecodeError::PrefixLength { family: a, len: b })?;
            if net.trunc() != net {
                return Err(DecodeError::HostBits);
            }
            Ok(net)
        };
        let delta = match kind {
            ROUTE_SET => Self::RouteSet {
                prefix: prefix()?,
                group: id,
            },
            ROUTE_DELETE => Self::RouteDelete { prefix: prefix()? },
            GROUP_MEMBERS => {
                let (chunk, count, total) = (a, b, c);
                let start = usize::from(chunk) * MEMBERS_PER_CHUNK;
                if count == 0
                    || usize::from(count) > MEMBERS_PER_CHUNK
                    || usize::from(total) > MAX_GROUP_MEMBERS
                    || start + usize::from(count) > usize::from(total)
                {
                    return Err(DecodeError::Chunk { chunk, count, total });
                }
                let mut members = [Member {
                    adjacency: 0,
                    weight: 0,
                }; MEMBERS_PER_CHUNK];
                for (m, word) in members.iter_mut().zip([p0, p1, p2, p3]).take(usize::from(count)) {
                    *m = Member {
                        adjacency: (word >> 32) as u32,
                        weight: word as u32,
                    };
                }
                Self::GroupMembers {
                    group: id,
                    chunk,
                    total,
                    members,
                    count,
                }
            }
            GROUP_DELETE => Self::GroupDelete { group: id },
            ADJACENCY_SET => Self::AdjacencySet {
                id,
                adjacency: AdjacencySpec {
                    action: AdjacencyAction::from_u8(b).ok_or(DecodeError::Action(b))?,
                    port: p0 as u16,
                    mtu: (p0 >> 16) as u16,
                    next_hop: if a == 0 { None } else { Some(addr(a)?) },
                    src_mac: word_mac(p1),
                },
            },
            ADJACENCY_DELETE => Self::AdjacencyDelete { id },
            PORT_SET => {
                if a > 1 {
                    return Err(DecodeError::Flag(a));
                }
                let mut name = [0u8; PORT_NAME_BYTES];
                let (x, y) = name.split_at_mut(8);
                x.copy_from_slice(&p2.to_le_bytes());
                y.copy_from_slice(&p3.to_le_bytes());
                Self::PortSet {
                    port: id,
                    spec: PortSpec {
                        ifindex: p0 as u32,
                        mtu: (p0 >> 32) as u32,
                        mac: word_mac(p1),
                        up: a == 1,
                        name,
                    },
                }
            }
            PORT_DELETE => Self::PortDelete { port: id },
            RESYNC_BEGIN => Self::ResyncBegin { tag: p0 },
            RESYNC_END => Self::ResyncEnd { tag: p0 },
            COMMIT => Self::Commit,
            k => return Err(DecodeError::Kind(k)),
        };
        Ok((seq, delta))
    }

    /// The "group members" records for a whole group, in order.
    pub fn group_chunks(group: u32, members: &[Member]) -> impl Iterator<Item = Delta> + '_ {
        let total = members.len().min(MAX_GROUP_MEMBERS) as u8;
        members
            .chunks(MEMBERS_PER_CHUNK)
            .take(MAX_GROUP_MEMBERS / MEMBERS_PER_CHUNK)
            .enumerate()
            .map(move |(i, chunk)| {
                let mut m = [Member {
                    adjacency: 0,
                    weight: 0,
                }; MEMBERS_PER_CHUNK];
                m.iter_mut().zip(chunk).for_each(|(d, s)| *d = *s);
                Delta::GroupMembers {
                    group,
                    chunk: i as u8,
                    total,
                    members: m,
                    count: chunk.len() as u8,
                }
            })
    }
}

/// Reassembles groups from their chunks, on the consumer side.
#[derive(Debug, Default)]
pub struct GroupAssembler {
    group: u32,
    members: Vec<Member>,
}

impl GroupAssembler {
    /// Feeds one chunk; returns the whole member list when the chunk was the last. A chunk that
    /// does not continue the group being assembled restarts assembly (chunk 0) or is refused.
    pub fn push(
        &mut self,
        group: u32,
        chunk: u8,
        total: u8,
        members: &[Member],
    ) -> Result<Option<&[Member]>, DecodeError> {
        if chunk == 0 {
            self.group = group;
            self.members.clear();
        } else if group != self.group || self.members.len() != usize::from(chunk) * MEMBERS_PER_CHUNK {
            self.members.clear();
            return Err(DecodeError::Chunk {
                chunk,
                count: members.len() as u8,
                total,
            });
        }
        self.members.extend_from_slice(members);
        if self.members.len() == usize::from(total) {
            Ok(Some(&self.members))
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(d: Delta) {
        let raw = d.encode(42);
        assert_eq!(Delta::decode(&raw), Ok((42, d)));
    }

    #[test]
    fn every_kind_round_trips() {
        roundtrip(Delta::RouteSet {
            prefix: "198.51.100.0/24".parse().unwrap(),
            group: 7,
        });
        roundtrip(Delta::RouteSet {
            prefix: "0.0.0.0/0".parse().unwrap(),
            group: 65535,
        });
        roundtrip(Delta::RouteDelete {
            prefix: "2001:db8::/32".parse().unwrap(),
        });
        roundtrip(Delta::RouteDelete {
            prefix: "2001:db8::1/128".parse().unwrap(),
        });
        for d in Delta::group_chunks(
            9,
            &(0..6)
                .map(|i| Member {
                    adjacency: i,
                    weight: i + 1,
                })
                .collect::<Vec<_>>(),
        ) {
            roundtrip(d);
        }
        roundtrip(Delta::GroupDelete { group: 9 });
        roundtrip(Delta::AdjacencySet {
            id: 3,
            adjacency: AdjacencySpec {
                action: AdjacencyAction::Forward,
                port: 2,
                mtu: 1500,
                next_hop: Some("192.0.2.1".parse().unwrap()),
                src_mac: [0x02, 0, 0, 0, 0, 0xfe],
            },
        });
        roundtrip(Delta::AdjacencySet {
            id: 4,
            adjacency: AdjacencySpec {
                action: AdjacencyAction::Local,
                port: 0,
                mtu: 0,
                next_hop: None,
                src_mac: [0; 6],
            },
        });
        roundtrip(Delta::AdjacencyDelete { id: 3 });
        roundtrip(Delta::PortSet {
            port: 1,
            spec: PortSpec {
                ifindex: 12,
                mtu: 9000,
                mac: [2, 1, 2, 3, 4, 5],
                up: true,
                name: PortSpec::encode_name("veth-router-a1").unwrap(),
            },
        });
        roundtrip(Delta::PortDelete { port: 1 });
        roundtrip(Delta::ResyncBegin { tag: u64::MAX });
        roundtrip(Delta::ResyncEnd { tag: 1 });
        roundtrip(Delta::Commit);
    }

    #[test]
    fn fixture_bytes_are_stable() {
        // The layout is shared by two binaries that may be built apart: pin it.
        let raw = Delta::RouteSet {
            prefix: "192.0.2.0/24".parse().unwrap(),
            group: 5,
        }
        .encode(1);
        assert_eq!(raw, [1, 0x0000_0005_0018_0401, 0, 0xc000_0200, 0, 0, 0, 0]);
    }

    #[test]
    fn bad_records_are_errors() {
        let mut raw = Delta::RouteSet {
            prefix: "192.0.2.0/24".parse().unwrap(),
            group: 5,
        }
        .encode(1);
        raw[3] |= 1;
        assert_eq!(Delta::decode(&raw), Err(DecodeError::HostBits));
        raw[1] = head(ROUTE_SET, 4, 33, 0, 5);
        assert!(matches!(
            Delta::decode(&raw),
            Err(DecodeError::PrefixLength { .. })
        ));
        raw[1] = head(ROUTE_SET, 5, 24, 0, 5);
        assert_eq!(Delta::decode(&raw), Err(DecodeError::Family(5)));
        raw[1] = head(200, 4, 24, 0, 5);
        assert_eq!(Delta::decode(&raw), Err(DecodeError::Kind(200)));
        raw[1] = head(GROUP_MEMBERS, 0, 5, 5, 1);
        assert!(matches!(Delta::decode(&raw), Err(DecodeError::Chunk { .. })));
        raw[1] = head(ADJACENCY_SET, 0, 9, 0, 1);
        assert_eq!(Delta::decode(&raw), Err(DecodeError::Action(9)));
    }

    #[test]
    fn assembler_rebuilds_groups_and_refuses_gaps() {
        let members: Vec<Member> = (0..9)
            .map(|i| Member {
                adjacency: i,
                weight: 1,
            })
            .collect();
        let mut asm = GroupAssembler::default();
        let mut done = None;
        for d in Delta::group_chunks(3, &members) {
            let Delta::GroupMembers {
                group,
                chunk,
                total,
                members: m,
                count,
            } = d
            else {
                panic!("not a chunk")
            };
            if let Some(all) = asm.push(group, chunk, total, &m[..usize::from(count)]).unwrap() {
                done = Some(all.to_vec());
            }
        }
        assert_eq!(done.as_deref(), Some(&members[..]));
        assert!(
            asm.push(3, 1, 9, &members[..4]).is_err(),
            "chunk 1 without chunk 0"
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics(words in proptest::array::uniform8(any::<u64>())) {
            let _ = Delta::decode(&words);
        }

        #[test]
        fn routes_round_trip(v4 in any::<u32>(), len in 0u8..=32, v6 in any::<u128>(), len6 in 0u8..=128, g in any::<u32>()) {
            let p4 = IpNet::V4(Ipv4Net::new(Ipv4Addr::from(v4), len).unwrap().trunc());
            let p6 = IpNet::V6(Ipv6Net::new(Ipv6Addr::from(v6), len6).unwrap().trunc());
            for prefix in [p4, p6] {
                let d = Delta::RouteSet { prefix, group: g };
                prop_assert_eq!(Delta::decode(&d.encode(9)), Ok((9, d)));
            }
        }

        /// The in-place reading of route records accepts and refuses exactly what the full
        /// decoder does, with the same fields and errors. Valid prefixes come from truncating
        /// the address; the raw address is kept as often, and the highest host bit alone is set in
        /// some, to reach the host-bits refusal and its edge.
        #[test]
        fn route_records_read_in_place_as_decoded(
            kind in 0u8..=4, family in prop_oneof![Just(4u8), Just(6u8), any::<u8>()], len in any::<u8>(),
            hi in prop_oneof![Just(0u64), any::<u64>()], lo in any::<u64>(), truncate in any::<bool>(),
            top_host_bit in any::<bool>(), id in any::<u32>(),
        ) {
            let mut lo = lo;
            if family == 4 && truncate {
                lo &= 0xFFFF_FFFF;
            }
            let (mut hi, mut lo) = (hi, lo);
            if truncate && len <= 128 {
                let width: u32 = if family == 4 { 32 } else { 128 };
                let host = u128::MAX.checked_shr(128 - width.saturating_sub(u32::from(len))).unwrap_or(0);
                let mut v = (u128::from(hi) << 64 | u128::from(lo)) & !host;
                // Only the highest host bit set: the edge of the mask.
                if top_host_bit && host != 0 {
                    v |= (host >> 1) + 1;
                }
                (hi, lo) = ((v >> 64) as u64, v as u64);
            }
            let w = [5, head(kind, family, len, 0, id), hi, lo, 0, 0, 0, 0];
            let fast = RouteRecord::decode(&w);
            match Delta::decode(&w) {
                Ok((_, Delta::RouteSet { prefix, .. } | Delta::RouteDelete { prefix })) => {
                    let (v6, bits) = match prefix.addr() {
                        IpAddr::V4(a) => (false, u128::from(u32::from(a))),
                        IpAddr::V6(a) => (true, u128::from(a)),
                    };
                    let group = (kind == ROUTE_SET).then_some(id);
                    prop_assert_eq!(fast, Some(Ok(RouteRecord { v6, len: prefix.prefix_len(), bits, group })));
                }
                Err(e) if kind == ROUTE_SET || kind == ROUTE_DELETE => prop_assert_eq!(fast, Some(Err(e))),
                _ => prop_assert_eq!(fast, None),
            }
        }
    }
}
