//! Import and export policy: named filters that accept, reject or rewrite the routes a peer
//! sends us (import) or we send it (export).
//!
//! # Shape
//!
//! Three kinds of named lists say what a route looks like, and policies made of terms say what
//! to do with it. The configuration lives under `[bgp]` ([`PolicyConfig`]):
//!
//! - `[[bgp.prefix-list]]`: entries of `prefix`, optional `ge`/`le` and `action` (`permit`,
//!   the default, or `deny`), IPv4 and IPv6 mixed. As in Cisco IOS and FRR, a route matches an
//!   entry when it lies inside the entry's prefix and its length is in the entry's range: just
//!   the prefix's own length without `ge`/`le`; `ge` to the family's maximum with only `ge`;
//!   the prefix length to `le` with only `le`; `ge` to `le` with both. The first matching entry
//!   decides; no match is a deny.
//! - `[[bgp.as-path-list]]`: entries of matchers on the AS_PATH, all of which must hold for the
//!   entry to match, and an `action`; first match decides, no match is a deny. The matchers:
//!   `regex` over the path written as in `bgp routes` (`64500 64501 {64502 64503}`), where `_`
//!   stands for a boundary (start, end, space, brace or parenthesis) as in Cisco and FRR, so
//!   `_64500_` is "64500 anywhere" and `^64500_` "learned from 64500"; `origin-as` (the last
//!   AS); `neighbor-as` (the first AS); `contains` (anywhere, sets included); `length = { min,
//!   max }` (the length the decision process compares, bounds inclusive, either optional).
//! - `[[bgp.community-list]]`: `member` communities (`ASN:VALUE` or `no-export`,
//!   `no-advertise`, `no-export-subconfed`), and `match = "any"` (the default) or `"all"`.
//! - `[[bgp.policy]]`: a `name`, a `default` (`reject` unless set: RFC 8212 wants an eBGP
//!   session without an explicit policy to exchange nothing) and `[[bgp.policy.term]]`s, each
//!   with a `name`, a `match` table and a `then` table.
//!
//! Keys that hold lists are singular (`entry`, `member`, `term`, `add-community`), as
//! `address` and `next-hop` are elsewhere in the file.
//!
//! A term matches when every condition in its `match` holds (an empty `match` matches every
//! route): `prefix-list`, `as-path-list` and `community-list` name a list that must permit the
//! route; `family` is `ipv4` or `ipv6`; `next-hop` is an address or a prefix containing the next
//! hop; `origin` is `igp`, `egp` or `incomplete`.
//!
//! A matching term applies its `then`: `local-pref`, `med`, `prepend = { times, asn }` (`asn`
//! defaults to our own AS, from [`PolicyContext`]; at most [`MAX_PREPEND`] times),
//! `remove-community` then `add-community`, or `set-community` to replace them all
//! (`set-community = []` removes every community; it cannot be combined with the other two).
//! Then its `action`: `accept` or `reject` ends the evaluation; without one, evaluation goes on
//! with the next term, which sees the route as modified so far. A route that no term accepts or
//! rejects gets the policy's `default`; on reject every modification is dropped.
//!
//! On export to an eBGP peer the speaker prepends our AS itself (RFC 4271 5.1.2) after the
//! policy: a policy `prepend` adds to that.
//!
//! # Example
//!
//! (Tested: this exact text is parsed and compiled by the tests.)
//!
//! ```toml
//! [[bgp.prefix-list]]
//! name = "bogons"
//! entry = [
//!     { prefix = "0.0.0.0/8", le = 32 },
//!     { prefix = "10.0.0.0/8", le = 32 },
//!     { prefix = "192.168.0.0/16", le = 32 },
//!     { prefix = "fc00::/7", le = 128 },
//! ]
//!
//! [[bgp.prefix-list]]
//! name = "too-specific"
//! entry = [{ prefix = "0.0.0.0/0", ge = 25 }, { prefix = "::/0", ge = 49 }]
//!
//! [[bgp.prefix-list]]
//! name = "customer-64501"
//! entry = [
//!     { prefix = "198.51.100.128/25", action = "deny" },   # not theirs to announce
//!     { prefix = "198.51.100.0/24", le = 26 },
//!     { prefix = "2001:db8:1000::/36", ge = 40, le = 48 },
//! ]
//!
//! [[bgp.prefix-list]]
//! name = "customer-64501-hosts"
//! entry = [{ prefix = "198.51.100.0/24", ge = 32 }]
//!
//! [[bgp.as-path-list]]
//! name = "customer-64501"
//! entry = [
//!     { regex = "^64501(_64501)*$" },                     # the customer, prepended or not
//!     { neighbor-as = 64501, origin-as = 64510, length = { max = 3 } },   # and its customer
//! ]
//!
//! [[bgp.as-path-list]]
//! name = "suspicious"
//! entry = [
//!     { contains = 64666 },                               # a known leaker
//!     { length = { min = 40 } },
//! ]
//!
//! [[bgp.community-list]]
//! name = "blackhole"
//! member = ["65535:666"]
//!
//! [[bgp.community-list]]
//! name = "from-customer"
//! member = ["64500:100"]
//!
//! [[bgp.community-list]]
//! name = "keep-local"
//! member = ["no-export", "no-advertise"]
//! match = "any"
//!
//! # Import from customer AS 64501: only its prefixes with its paths, preferred and tagged.
//! [[bgp.policy]]
//! name = "from-customer-64501"
//! default = "reject"
//!
//! [[bgp.policy.term]]
//! name = "clean"
//! # No `match`: every route. Drop what only we may tag with, and go on.
//! then = { remove-community = ["64500:100"] }
//!
//! [[bgp.policy.term]]
//! name = "blackhole"
//! match = { community-list = "blackhole", prefix-list = "customer-64501-hosts" }
//! then = { local-pref = 500, add-community = ["no-export"], action = "accept" }
//!
//! [[bgp.policy.term]]
//! name = "no-bogons"
//! match = { prefix-list = "bogons" }
//! then = { action = "reject" }
//!
//! [[bgp.policy.term]]
//! name = "customer"
//! match = { prefix-list = "customer-64501", as-path-list = "customer-64501" }
//! then = { local-pref = 200, add-community = ["64500:100"], action = "accept" }
//!
//! # Export to a transit provider: our customers' routes, made a little less attractive.
//! [[bgp.policy]]
//! name = "to-transit"
//!
//! [[bgp.policy.term]]
//! name = "not-outside"
//! match = { community-list = "keep-local" }
//! then.action = "reject"
//!
//! [[bgp.policy.term]]
//! name = "customers"
//! match.community-list = "from-customer"
//! then.prepend = { times = 2 }
//! then.set-community = []
//! then.med = 10
//! then.action = "accept"
//!
//! # Import from a transit provider: everything sane, as is.
//! [[bgp.policy]]
//! name = "from-transit"
//! default = "accept"
//!
//! [[bgp.policy.term]]
//! name = "bogons"
//! match.prefix-list = "bogons"
//! then.action = "reject"
//!
//! [[bgp.policy.term]]
//! name = "too-specific"
//! match.prefix-list = "too-specific"
//! then.action = "reject"
//!
//! [[bgp.policy.term]]
//! name = "suspicious"
//! match.as-path-list = "suspicious"
//! then.action = "reject"
//!
//! [[bgp.policy.term]]
//! name = "ipv6-incomplete-is-worse"
//! match = { family = "ipv6", origin = "incomplete" }
//! then.local-pref = 80
//! ```
//!
//! # Cost
//!
//! [`Policy::apply`] runs for every route of a full table when a session comes up. It works on
//! the route's shared attributes in place and copies them only at the first change that really
//! changes something, so a route the policy leaves alone costs no allocation and comes back as
//! the same `Arc`. Prefix lists are indexed by prefix (sorted by length and address, searched
//! once per prefix length the list uses), so a list generated from an IRR with thousands of
//! entries costs a few binary searches, not a scan. An AS-path regex needs the path as text:
//! it is written only when a regex is actually evaluated, once per route.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use super::types::{AsPath, Asn, Community, Family, Origin, ParseCommunityError, PathAttributes};

/// The most times one term may prepend.
pub const MAX_PREPEND: u32 = 32;

/// The most memory one compiled AS-path regex may take: far more than any sane pattern needs,
/// small enough that a pathological one fails at configuration time.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Configuration, as serde reads it from `[bgp]`.
// ---------------------------------------------------------------------------------------------

/// Every list and policy of the `[bgp]` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PolicyConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefix_list: Vec<PrefixListDef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub as_path_list: Vec<AsPathListDef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub community_list: Vec<CommunityListDef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy: Vec<PolicyDef>,
}

/// What a list entry does with a route it matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListAction {
    #[default]
    Permit,
    Deny,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PrefixListDef {
    pub name: String,
    #[serde(default)]
    pub entry: Vec<PrefixEntryDef>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PrefixEntryDef {
    /// Checked by [`compile`], so that a bad one is reported with the list's name.
    pub prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ge: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub le: Option<u32>,
    #[serde(default)]
    pub action: ListAction,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AsPathListDef {
    pub name: String,
    #[serde(default)]
    pub entry: Vec<AsPathEntryDef>,
}

/// One AS-path list entry: it matches when all the matchers it sets match (at least one).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AsPathEntryDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_as: Option<Asn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neighbor_as: Option<Asn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<Asn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<LengthDef>,
    #[serde(default)]
    pub action: ListAction,
}

/// Inclusive bounds on the AS path length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LengthDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

/// Whether a community list needs any or all of its members on the route.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommunityMatch {
    #[default]
    Any,
    All,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CommunityListDef {
    pub name: String,
    pub member: Vec<String>,
    #[serde(rename = "match", default)]
    pub mode: CommunityMatch,
}

/// The outcome of a term's `action` and of a policy's `default`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Accept,
    #[default]
    Reject,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PolicyDef {
    pub name: String,
    #[serde(default)]
    pub default: Verdict,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub term: Vec<TermDef>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TermDef {
    pub name: String,
    #[serde(rename = "match", default)]
    pub conditions: MatchDef,
    #[serde(default)]
    pub then: ThenDef,
}

/// A term's conditions; all that are set must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MatchDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_list: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_path_list: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub community_list: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<FamilyName>,
    /// An address, or a prefix the next hop must be in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<OriginName>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FamilyName {
    Ipv4,
    Ipv6,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OriginName {
    Igp,
    Egp,
    Incomplete,
}

/// A term's modifications and outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ThenDef {
    /// `None`: go on with the next term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Verdict>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub med: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepend: Option<PrependDef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_community: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_community: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_community: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PrependDef {
    pub times: u32,
    /// Default: our own AS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<Asn>,
}

// ---------------------------------------------------------------------------------------------
// Validation.
// ---------------------------------------------------------------------------------------------

/// A configuration [`compile`] refuses, naming the list, policy and term concerned. Entry
/// indices count from 0 in file order, as in the rest of the configuration's errors.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{what} has an empty name")]
    EmptyName { what: String },
    #[error("{kind} {name:?} is defined twice")]
    DuplicateName { kind: &'static str, name: String },
    #[error("prefix-list {list:?} entry[{index}]: {value:?} is not a prefix")]
    BadPrefix {
        list: String,
        index: usize,
        value: String,
    },
    #[error("prefix-list {list:?} entry[{index}]: {value:?} has host bits set (did you mean {network}?)")]
    HostBits {
        list: String,
        index: usize,
        value: String,
        network: IpNet,
    },
    #[error("prefix-list {list:?} entry[{index}] ({prefix}): {problem}")]
    BadLengthRange {
        list: String,
        index: usize,
        prefix: IpNet,
        problem: String,
    },
    #[error("as-path-list {list:?} entry[{index}]: bad regex {regex:?}: {error}")]
    BadRegex {
        list: String,
        index: usize,
        regex: String,
        error: String,
    },
    #[error("as-path-list {list:?} entry[{index}]: {problem}")]
    BadAsPathEntry {
        list: String,
        index: usize,
        problem: &'static str,
    },
    #[error("community-list {list:?}: {error}")]
    BadCommunity {
        list: String,
        error: ParseCommunityError,
    },
    #[error("community-list {list:?} has no members")]
    EmptyCommunityList { list: String },
    #[error("policy {policy:?}: term {term:?} is defined twice")]
    DuplicateTerm { policy: String, term: String },
    #[error("policy {policy:?} term {term:?}: there is no {kind} named {name:?}")]
    UnknownList {
        policy: String,
        term: String,
        kind: &'static str,
        name: String,
    },
    #[error("policy {policy:?} term {term:?}: {problem}")]
    BadTerm {
        policy: String,
        term: String,
        problem: String,
    },
}

/// Checks and compiles every list and policy; the first problem found is the error.
pub fn compile(cfg: &PolicyConfig) -> Result<Policies, PolicyError> {
    let prefix_lists = by_name(&cfg.prefix_list, "prefix-list", |d| &d.name, compile_prefix_list)?;
    let as_path_lists = by_name(
        &cfg.as_path_list,
        "as-path-list",
        |d| &d.name,
        compile_as_path_list,
    )?;
    let community_lists = by_name(
        &cfg.community_list,
        "community-list",
        |d| &d.name,
        compile_community_list,
    )?;
    let lists = Lists {
        prefix: &prefix_lists,
        as_path: &as_path_lists,
        community: &community_lists,
    };
    let policies = by_name(&cfg.policy, "policy", |d| &d.name, |d| compile_policy(d, &lists))?;
    Ok(Policies { policies })
}

/// Compiles each definition, refusing empty and duplicate names.
fn by_name<D, T>(
    defs: &[D],
    kind: &'static str,
    name: impl Fn(&D) -> &String,
    compile_one: impl Fn(&D) -> Result<T, PolicyError>,
) -> Result<BTreeMap<String, Arc<T>>, PolicyError> {
    let mut out = BTreeMap::new();
    for def in defs {
        let name = name(def);
        if name.is_empty() {
            return Err(PolicyError::EmptyName {
                what: format!("a {kind}"),
            });
        }
        if out.contains_key(name) {
            return Err(PolicyError::DuplicateName {
                kind,
                name: name.clone(),
            });
        }
        out.insert(name.clone(), Arc::new(compile_one(def)?));
    }
    Ok(out)
}

/// The compiled lists, for policies to refer to by name.
struct Lists<'a> {
    prefix: &'a BTreeMap<String, Arc<PrefixList>>,
    as_path: &'a BTreeMap<String, Arc<AsPathList>>,
    community: &'a BTreeMap<String, Arc<CommunityList>>,
}

fn compile_prefix_list(def: &PrefixListDef) -> Result<PrefixList, PolicyError> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for (index, entry) in def.entry.iter().enumerate() {
        let prefix: IpNet = entry.prefix.parse().map_err(|_| PolicyError::BadPrefix {
            list: def.name.clone(),
            index,
            value: entry.prefix.clone(),
        })?;
        if prefix.trunc() != prefix {
            return Err(PolicyError::HostBits {
                list: def.name.clone(),
                index,
                value: entry.prefix.clone(),
                network: prefix.trunc(),
            });
        }
        let bad_range = |problem: String| PolicyError::BadLengthRange {
            list: def.name.clone(),
            index,
            prefix,
            problem,
        };
        let len = u32::from(prefix.prefix_len());
        let max = u32::from(prefix.max_prefix_len());
        if let Some(ge) = entry.ge {
            if ge < len {
                return Err(bad_range(format!("ge {ge} is less than the prefix length {len}")));
            }
            if ge > max {
                return Err(bad_range(format!("ge {ge} is more than {max}")));
            }
        }
        if let Some(le) = entry.le {
            if le > max {
                return Err(bad_range(format!("le {le} is more than {max}")));
            }
            if le < len {
                return Err(bad_range(format!("le {le} is less than the prefix length {len}")));
            }
            if let Some(ge) = entry.ge.filter(|&ge| le < ge) {
                return Err(bad_range(format!("le {le} is less than ge {ge}")));
            }
        }
        let (min_len, max_len) = match (entry.ge, entry.le) {
            (None, None) => (len, len),
            (Some(ge), None) => (ge, max),
            (None, Some(le)) => (len, le),
            (Some(ge), Some(le)) => (ge, le),
        };
        let (bits, table) = match prefix {
            IpNet::V4(p) => (u128::from(u32::from(p.network())) << 96, &mut v4),
            IpNet::V6(p) => (u128::from(p.network()), &mut v6),
        };
        // The checks above bound every length by 128.
        let narrow = |l: u32| u8::try_from(l).unwrap_or(u8::MAX);
        table.push(IndexedEntry {
            len: prefix.prefix_len(),
            bits,
            seq: index,
            min_len: narrow(min_len),
            max_len: narrow(max_len),
            permit: entry.action == ListAction::Permit,
        });
    }
    Ok(PrefixList {
        v4: PrefixTable::new(v4),
        v6: PrefixTable::new(v6),
    })
}

fn compile_as_path_list(def: &AsPathListDef) -> Result<AsPathList, PolicyError> {
    let mut entries = Vec::with_capacity(def.entry.len());
    for (index, e) in def.entry.iter().enumerate() {
        let bad = |problem| PolicyError::BadAsPathEntry {
            list: def.name.clone(),
            index,
            problem,
        };
        if e.regex.is_none()
            && e.origin_as.is_none()
            && e.neighbor_as.is_none()
            && e.contains.is_none()
            && e.length.is_none()
        {
            return Err(bad(
                "an entry needs at least one of regex, origin-as, neighbor-as, contains, length",
            ));
        }
        let (min_len, max_len) = match e.length {
            None => (None, None),
            Some(LengthDef { min: None, max: None }) => return Err(bad("length needs min, max or both")),
            Some(LengthDef {
                min: Some(min),
                max: Some(max),
            }) if min > max => return Err(bad("length has min greater than max")),
            Some(LengthDef { min, max }) => (min, max),
        };
        let regex = match &e.regex {
            None => None,
            Some(pattern) => Some(
                RegexBuilder::new(&translate_as_path_regex(pattern))
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|err| PolicyError::BadRegex {
                        list: def.name.clone(),
                        index,
                        regex: pattern.clone(),
                        error: err
                            .to_string()
                            .lines()
                            .last()
                            .unwrap_or_default()
                            .trim()
                            .to_owned(),
                    })?,
            ),
        };
        entries.push(AsPathEntry {
            origin_as: e.origin_as,
            neighbor_as: e.neighbor_as,
            contains: e.contains,
            min_len: min_len.map(widen),
            max_len: max_len.map(widen),
            regex,
            permit: e.action == ListAction::Permit,
        });
    }
    Ok(AsPathList { entries })
}

fn widen(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The regex syntax of Cisco and FRR AS-path lists: `_` (outside a bracketed class, not
/// escaped) is any boundary between ASes, or the start or end of the path.
fn translate_as_path_regex(pattern: &str) -> String {
    const BOUNDARY: &str = r"(?:^|$|[ {}()\[\]])";
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut escaped = false;
    let mut class_depth = 0usize;
    for ch in pattern.chars() {
        if escaped {
            escaped = false;
            out.push(ch);
            continue;
        }
        match ch {
            '\\' => {
                escaped = true;
                out.push(ch);
            }
            '[' => {
                class_depth += 1;
                out.push(ch);
            }
            ']' if class_depth > 0 => {
                class_depth -= 1;
                out.push(ch);
            }
            '_' if class_depth == 0 => out.push_str(BOUNDARY),
            _ => out.push(ch),
        }
    }
    out
}

fn compile_community_list(def: &CommunityListDef) -> Result<CommunityList, PolicyError> {
    if def.member.is_empty() {
        return Err(PolicyError::EmptyCommunityList {
            list: def.name.clone(),
        });
    }
    let members = def
        .member
        .iter()
        .map(|m| m.parse::<Community>())
        .collect::<Result<BTreeSet<_>, _>>()
        .map_err(|error| PolicyError::BadCommunity {
            list: def.name.clone(),
            error,
        })?;
    Ok(CommunityList {
        members: members.into_iter().collect(),
        all: def.mode == CommunityMatch::All,
    })
}

fn compile_policy(def: &PolicyDef, lists: &Lists<'_>) -> Result<Policy, PolicyError> {
    let mut terms = Vec::with_capacity(def.term.len());
    let mut names = BTreeSet::new();
    for t in &def.term {
        if t.name.is_empty() {
            return Err(PolicyError::EmptyName {
                what: format!("a term of policy {:?}", def.name),
            });
        }
        if !names.insert(t.name.as_str()) {
            return Err(PolicyError::DuplicateTerm {
                policy: def.name.clone(),
                term: t.name.clone(),
            });
        }
        terms.push(compile_term(&def.name, t, lists)?);
    }
    Ok(Policy {
        name: def.name.clone(),
        terms,
        default: def.default,
    })
}

fn compile_term(policy: &str, def: &TermDef, lists: &Lists<'_>) -> Result<Term, PolicyError> {
    let bad = |problem: String| PolicyError::BadTerm {
        policy: policy.to_owned(),
        term: def.name.clone(),
        problem,
    };
    fn find<T>(
        map: &BTreeMap<String, Arc<T>>,
        name: Option<&String>,
        kind: &'static str,
        policy: &str,
        term: &str,
    ) -> Result<Option<Arc<T>>, PolicyError> {
        name.map(|n| {
            map.get(n).cloned().ok_or_else(|| PolicyError::UnknownList {
                policy: policy.to_owned(),
                term: term.to_owned(),
                kind,
                name: n.clone(),
            })
        })
        .transpose()
    }
    let m = &def.conditions;
    let next_hop = match &m.next_hop {
        None => None,
        Some(text) => Some(parse_net_or_address(text).map_err(|problem| bad(format!("next-hop {problem}")))?),
    };
    let conditions = Conditions {
        family: m.family.map(|f| match f {
            FamilyName::Ipv4 => Family::Ipv4Unicast,
            FamilyName::Ipv6 => Family::Ipv6Unicast,
        }),
        origin: m.origin.map(|o| match o {
            OriginName::Igp => Origin::Igp,
            OriginName::Egp => Origin::Egp,
            OriginName::Incomplete => Origin::Incomplete,
        }),
        next_hop,
        prefix_list: find(
            lists.prefix,
            m.prefix_list.as_ref(),
            "prefix-list",
            policy,
            &def.name,
        )?,
        community_list: find(
            lists.community,
            m.community_list.as_ref(),
            "community-list",
            policy,
            &def.name,
        )?,
        as_path_list: find(
            lists.as_path,
            m.as_path_list.as_ref(),
            "as-path-list",
            policy,
            &def.name,
        )?,
    };

    let then = &def.then;
    let communities = |key: &str, list: &[String]| -> Result<Vec<Community>, PolicyError> {
        let set = list
            .iter()
            .map(|c| c.parse::<Community>())
            .collect::<Result<BTreeSet<_>, _>>()
            .map_err(|e| bad(format!("{key}: {e}")))?;
        Ok(set.into_iter().collect())
    };
    let add = communities("add-community", &then.add_community)?;
    let remove = communities("remove-community", &then.remove_community)?;
    let set = match &then.set_community {
        None => None,
        Some(list) => Some(communities("set-community", list)?),
    };
    if set.is_some() && !(add.is_empty() && remove.is_empty()) {
        return Err(bad(
            "set-community replaces all communities: it cannot be combined with add-community or remove-community"
                .to_owned(),
        ));
    }
    if let Some(c) = add.iter().find(|c| remove.binary_search(c).is_ok()) {
        return Err(bad(format!("community {c} is both added and removed")));
    }
    let prepend = match then.prepend {
        None => None,
        Some(p) if p.times == 0 || p.times > MAX_PREPEND => {
            return Err(bad(format!(
                "prepend times {} is out of range (1 to {MAX_PREPEND})",
                p.times
            )))
        }
        Some(p) => Some(Prepend {
            asn: p.asn,
            times: widen(p.times),
        }),
    };
    Ok(Term {
        name: def.name.clone(),
        conditions,
        actions: Actions {
            local_pref: then.local_pref,
            med: then.med,
            prepend,
            set_communities: set,
            add_communities: add,
            remove_communities: remove,
            verdict: then.action,
        },
    })
}

/// `192.0.2.1` (a host prefix) or `192.0.2.0/24` (without host bits).
fn parse_net_or_address(text: &str) -> Result<IpNet, String> {
    if text.contains('/') {
        let net: IpNet = text
            .parse()
            .map_err(|_| format!("{text:?} is not an address or prefix"))?;
        if net.trunc() != net {
            return Err(format!(
                "{text:?} has host bits set (did you mean {}?)",
                net.trunc()
            ));
        }
        Ok(net)
    } else {
        text.parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("{text:?} is not an address or prefix"))
    }
}

// ---------------------------------------------------------------------------------------------
// Compiled lists.
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct PrefixList {
    v4: PrefixTable,
    v6: PrefixTable,
}

impl PrefixList {
    /// Whether the first entry matching `prefix` permits it (no match: no).
    fn permits(&self, prefix: &IpNet) -> bool {
        match prefix {
            IpNet::V4(p) => self
                .v4
                .first_match(u128::from(u32::from(p.network())) << 96, p.prefix_len()),
            IpNet::V6(p) => self.v6.first_match(u128::from(p.network()), p.prefix_len()),
        }
        .is_some_and(|e| e.permit)
    }
}

/// One family's entries, sorted by (prefix length, address, position in the list), with the
/// distinct prefix lengths used: the entries that can match a route are those whose prefix is
/// the route truncated to one of those lengths, found by binary search.
#[derive(Debug)]
struct PrefixTable {
    lengths: Vec<u8>,
    entries: Vec<IndexedEntry>,
}

/// A prefix-list entry; addresses are held left-aligned in a `u128` (IPv4 in the top 32 bits).
#[derive(Clone, Copy, Debug)]
struct IndexedEntry {
    len: u8,
    bits: u128,
    /// Position in the list: the lowest matching one wins.
    seq: usize,
    min_len: u8,
    max_len: u8,
    permit: bool,
}

impl PrefixTable {
    fn new(mut entries: Vec<IndexedEntry>) -> Self {
        entries.sort_by_key(|e| (e.len, e.bits, e.seq));
        let mut lengths: Vec<u8> = entries.iter().map(|e| e.len).collect();
        lengths.dedup();
        Self { lengths, entries }
    }

    fn first_match(&self, bits: u128, len: u8) -> Option<&IndexedEntry> {
        let mut first: Option<&IndexedEntry> = None;
        for &l in self.lengths.iter().take_while(|&&l| l <= len) {
            let key = (l, truncate(bits, l));
            let start = self.entries.partition_point(|e| (e.len, e.bits) < key);
            let found = self
                .entries
                .get(start..)
                .unwrap_or_default()
                .iter()
                .take_while(|e| (e.len, e.bits) == key)
                .find(|e| e.min_len <= len && len <= e.max_len);
            if let Some(e) = found {
                if first.is_none_or(|f| e.seq < f.seq) {
                    first = Some(e);
                }
            }
        }
        first
    }
}

/// The first `len` bits of a left-aligned address.
fn truncate(bits: u128, len: u8) -> u128 {
    match u32::from(len) {
        0 => 0,
        l => bits & (u128::MAX << 128u32.saturating_sub(l)),
    }
}

#[derive(Debug)]
struct AsPathList {
    entries: Vec<AsPathEntry>,
}

#[derive(Debug)]
struct AsPathEntry {
    origin_as: Option<Asn>,
    neighbor_as: Option<Asn>,
    contains: Option<Asn>,
    min_len: Option<usize>,
    max_len: Option<usize>,
    regex: Option<Regex>,
    permit: bool,
}

impl AsPathList {
    /// Whether the first matching entry permits `path`. `text` is the path as the regexes see
    /// it, written on first need and kept for the other entries and lists.
    fn permits(&self, path: &AsPath, text: &mut Option<String>) -> bool {
        self.entries
            .iter()
            .find(|e| e.matches(path, text))
            .is_some_and(|e| e.permit)
    }
}

impl AsPathEntry {
    fn matches(&self, path: &AsPath, text: &mut Option<String>) -> bool {
        if self.origin_as.is_some_and(|a| path.origin_as() != Some(a))
            || self.neighbor_as.is_some_and(|a| path.neighbor_as() != Some(a))
            || self.contains.is_some_and(|a| !path.contains(a))
        {
            return false;
        }
        if self.min_len.is_some() || self.max_len.is_some() {
            let len = path.length();
            if self.min_len.is_some_and(|m| len < m) || self.max_len.is_some_and(|m| len > m) {
                return false;
            }
        }
        match &self.regex {
            None => true,
            Some(re) => re.is_match(text.get_or_insert_with(|| {
                let mut s = String::new();
                // Writing to a String cannot fail.
                let _ = write!(s, "{path}");
                s
            })),
        }
    }
}

#[derive(Debug)]
struct CommunityList {
    /// Sorted, no duplicates.
    members: Vec<Community>,
    all: bool,
}

impl CommunityList {
    fn permits(&self, attrs: &PathAttributes) -> bool {
        let mut present = self.members.iter().map(|&c| attrs.has_community(c));
        if self.all {
            present.all(|p| p)
        } else {
            present.any(|p| p)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Compiled policies and their evaluation.
// ---------------------------------------------------------------------------------------------

/// Every compiled policy, by name.
#[derive(Debug, Default)]
pub struct Policies {
    policies: BTreeMap<String, Arc<Policy>>,
}

impl Policies {
    pub fn get(&self, name: &str) -> Option<&Arc<Policy>> {
        self.policies.get(name)
    }

    /// The policy names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.policies.keys().map(String::as_str)
    }
}

/// What a policy needs to know about the speaker applying it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyContext {
    /// Our AS: what `prepend` adds when it names none.
    pub local_as: Asn,
}

/// A compiled policy.
#[derive(Debug)]
pub struct Policy {
    name: String,
    terms: Vec<Term>,
    default: Verdict,
}

#[derive(Debug)]
struct Term {
    name: String,
    conditions: Conditions,
    actions: Actions,
}

#[derive(Debug)]
struct Conditions {
    family: Option<Family>,
    origin: Option<Origin>,
    next_hop: Option<IpNet>,
    prefix_list: Option<Arc<PrefixList>>,
    community_list: Option<Arc<CommunityList>>,
    as_path_list: Option<Arc<AsPathList>>,
}

#[derive(Debug)]
struct Actions {
    local_pref: Option<u32>,
    med: Option<u32>,
    prepend: Option<Prepend>,
    set_communities: Option<Vec<Community>>,
    add_communities: Vec<Community>,
    remove_communities: Vec<Community>,
    verdict: Option<Verdict>,
}

#[derive(Clone, Copy, Debug)]
struct Prepend {
    asn: Option<Asn>,
    times: usize,
}

impl Policy {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the policy over one route: `None` when rejected; otherwise its attributes, the very
    /// same `Arc` when nothing changed, a new one when a term modified them.
    ///
    /// A policy that modifies routes gives each prefix its own new `Arc`, even where many
    /// prefixes shared one set of attributes before: a caller storing a full table should
    /// intern the results (`PathAttributes` is `Hash + Eq`).
    pub fn apply(
        &self,
        prefix: &IpNet,
        attrs: &Arc<PathAttributes>,
        ctx: &PolicyContext,
    ) -> Option<Arc<PathAttributes>> {
        self.explain(prefix, attrs, ctx).0
    }

    /// [`Policy::apply`], plus the name of the term whose action decided (`None`: the policy's
    /// default did), for the CLI to say why a route was accepted or rejected.
    pub fn explain(
        &self,
        prefix: &IpNet,
        attrs: &Arc<PathAttributes>,
        ctx: &PolicyContext,
    ) -> (Option<Arc<PathAttributes>>, Option<&str>) {
        let mut route = Route {
            original: attrs,
            changed: None,
            path_text: None,
        };
        for term in &self.terms {
            if !term.conditions.hold(prefix, &mut route) {
                continue;
            }
            term.actions.apply(&mut route, ctx);
            match term.actions.verdict {
                Some(Verdict::Accept) => return (Some(route.finish()), Some(&term.name)),
                Some(Verdict::Reject) => return (None, Some(&term.name)),
                None => {}
            }
        }
        match self.default {
            Verdict::Accept => (Some(route.finish()), None),
            Verdict::Reject => (None, None),
        }
    }
}

/// A route under evaluation: its original attributes until something changes them, then a
/// private copy.
struct Route<'a> {
    original: &'a Arc<PathAttributes>,
    changed: Option<PathAttributes>,
    /// The AS path as text for regexes, once written; cleared when the path changes.
    path_text: Option<String>,
}

impl Route<'_> {
    fn attrs(&self) -> &PathAttributes {
        self.changed.as_ref().unwrap_or(self.original)
    }

    /// The attributes to modify, copied on first use. Call only for a real change.
    fn edit(&mut self) -> &mut PathAttributes {
        let original = self.original;
        self.changed
            .get_or_insert_with(|| PathAttributes::clone(original))
    }

    fn as_path_permitted_by(&mut self, list: &AsPathList) -> bool {
        let path = match &self.changed {
            Some(a) => &a.as_path,
            None => &self.original.as_path,
        };
        list.permits(path, &mut self.path_text)
    }

    fn finish(self) -> Arc<PathAttributes> {
        match self.changed {
            // Changes that cancelled out (a community removed, then added back) keep sharing.
            Some(a) if a != **self.original => Arc::new(a),
            _ => Arc::clone(self.original),
        }
    }
}

impl Conditions {
    /// Cheapest checks first; the AS-path list (which may need the path as text) last.
    fn hold(&self, prefix: &IpNet, route: &mut Route<'_>) -> bool {
        let attrs = route.attrs();
        if self.family.is_some_and(|f| f != Family::of(prefix))
            || self.origin.is_some_and(|o| o != attrs.origin)
            || self.next_hop.is_some_and(|n| !n.contains(&attrs.next_hop.addr))
            || self.community_list.as_ref().is_some_and(|l| !l.permits(attrs))
            || self.prefix_list.as_ref().is_some_and(|l| !l.permits(prefix))
        {
            return false;
        }
        match &self.as_path_list {
            None => true,
            Some(l) => route.as_path_permitted_by(l),
        }
    }
}

impl Actions {
    /// Applies the modifications, touching the attributes only where a value really changes.
    fn apply(&self, route: &mut Route<'_>, ctx: &PolicyContext) {
        if let Some(lp) = self.local_pref {
            if route.attrs().local_pref != Some(lp) {
                route.edit().local_pref = Some(lp);
            }
        }
        if let Some(med) = self.med {
            if route.attrs().med != Some(med) {
                route.edit().med = Some(med);
            }
        }
        if let Some(set) = &self.set_communities {
            if route.attrs().communities != *set {
                route.edit().communities.clone_from(set);
            }
        }
        for &c in &self.remove_communities {
            if route.attrs().has_community(c) {
                route.edit().communities.retain(|&x| x != c);
            }
        }
        for &c in &self.add_communities {
            if !route.attrs().has_community(c) {
                route.edit().add_community(c);
            }
        }
        if let Some(p) = self.prepend {
            route
                .edit()
                .as_path
                .prepend(p.asn.unwrap_or(ctx.local_as), p.times);
            route.path_text = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::types::{AsSegment, NextHop};
    use proptest::prelude::*;

    const CTX: PolicyContext = PolicyContext { local_as: 64500 };

    /// A configuration file with just the `[bgp]` lists and policies.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        bgp: PolicyConfig,
    }

    fn parse(text: &str) -> PolicyConfig {
        toml::from_str::<File>(text).unwrap().bgp
    }

    fn compile_toml(text: &str) -> Result<Policies, PolicyError> {
        compile(&parse(text))
    }

    /// The ```toml block of the module documentation.
    fn documented_example() -> String {
        let doc: Vec<&str> = include_str!("policy.rs")
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .map(|l| l.trim_start_matches("//!").strip_prefix(' ').unwrap_or(""))
            .collect();
        let start = doc.iter().position(|l| *l == "```toml").unwrap() + 1;
        let len = doc[start..].iter().position(|l| *l == "```").unwrap();
        doc[start..start + len].join("\n")
    }

    fn example() -> Policies {
        compile_toml(&documented_example()).unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn attrs(path: &[Asn]) -> PathAttributes {
        let mut a = PathAttributes::local(NextHop::new("192.0.2.1".parse().unwrap()));
        a.as_path = AsPath::sequence(path.iter().copied());
        a
    }

    fn route(path: &[Asn]) -> Arc<PathAttributes> {
        Arc::new(attrs(path))
    }

    fn with(path: &[Asn], f: impl FnOnce(&mut PathAttributes)) -> Arc<PathAttributes> {
        let mut a = attrs(path);
        f(&mut a);
        Arc::new(a)
    }

    fn community(s: &str) -> Community {
        s.parse().unwrap()
    }

    #[test]
    fn the_documented_example_parses_compiles_and_round_trips() {
        let text = documented_example();
        assert!(text.contains("[[bgp.policy.term]]"), "{text}");
        let cfg = parse(&text);
        assert_eq!(cfg.prefix_list.len(), 4);
        assert_eq!(cfg.policy[1].default, Verdict::Reject, "default is reject");
        let policies = compile(&cfg).unwrap();
        assert_eq!(
            policies.names().collect::<Vec<_>>(),
            ["from-customer-64501", "from-transit", "to-transit"]
        );
        // What serde writes, serde reads back the same.
        let written = toml::to_string(&cfg).unwrap();
        assert_eq!(
            toml::from_str::<PolicyConfig>(&written).unwrap(),
            cfg,
            "{written}"
        );
    }

    #[test]
    fn the_example_customer_import_does_what_its_comments_say() {
        let policies = example();
        let p = policies.get("from-customer-64501").unwrap();
        let customer = route(&[64501, 64501]);
        let (out, term) = p.explain(&net("198.51.100.0/25"), &customer, &CTX);
        let out = out.unwrap();
        assert_eq!(term, Some("customer"));
        assert_eq!(out.local_pref, Some(200));
        assert_eq!(out.communities, vec![community("64500:100")]);
        // Not theirs, a bogon, a path through someone else, too long a prefix.
        assert_eq!(
            p.explain(&net("198.51.100.128/25"), &customer, &CTX),
            (None, None)
        );
        assert_eq!(
            p.explain(&net("10.1.0.0/16"), &customer, &CTX),
            (None, Some("no-bogons"))
        );
        assert_eq!(
            p.apply(&net("198.51.100.0/24"), &route(&[64501, 64999]), &CTX),
            None
        );
        assert_eq!(p.apply(&net("198.51.100.0/27"), &customer, &CTX), None);
        // Its customer, through it.
        assert!(p
            .apply(&net("2001:db8:1000::/44"), &route(&[64501, 64510]), &CTX)
            .is_some());
        assert!(p
            .apply(&net("2001:db8:1000::/44"), &route(&[64501, 64511, 64510]), &CTX)
            .is_some());
        assert_eq!(
            p.apply(
                &net("2001:db8:1000::/44"),
                &route(&[64501, 64511, 64512, 64510]),
                &CTX
            ),
            None
        );
        assert_eq!(
            p.apply(&net("2001:db8:1000::/49"), &route(&[64501, 64510]), &CTX),
            None
        );
        // Blackholing one of its hosts; our tag sent by the customer is dropped first.
        let bh = with(&[64501], |a| {
            a.add_community(community("65535:666"));
            a.add_community(community("64500:100"));
        });
        let (out, term) = p.explain(&net("198.51.100.7/32"), &bh, &CTX);
        let out = out.unwrap();
        assert_eq!(term, Some("blackhole"));
        assert_eq!(out.local_pref, Some(500));
        assert_eq!(
            out.communities,
            vec![community("65535:666"), Community::NO_EXPORT]
        );
    }

    #[test]
    fn the_example_exports_prepend_and_strip_communities() {
        let policies = example();
        let p = policies.get("to-transit").unwrap();
        let tagged = with(&[64501], |a| a.add_community(community("64500:100")));
        let out = p.apply(&net("198.51.100.0/24"), &tagged, &CTX).unwrap();
        assert_eq!(out.as_path, AsPath::sequence([64500, 64500, 64501]));
        assert_eq!(out.communities, vec![]);
        assert_eq!(out.med, Some(10));
        let local = with(&[64501], |a| {
            a.add_community(community("64500:100"));
            a.add_community(Community::NO_EXPORT);
        });
        assert_eq!(
            p.explain(&net("198.51.100.0/24"), &local, &CTX),
            (None, Some("not-outside"))
        );
        assert_eq!(
            p.apply(&net("203.0.113.0/24"), &route(&[64496]), &CTX),
            None,
            "untagged"
        );

        let t = policies.get("from-transit").unwrap();
        let r = route(&[64496, 64497]);
        let out = t.apply(&net("203.0.113.0/24"), &r, &CTX).unwrap();
        assert!(Arc::ptr_eq(&out, &r), "accepted as is: the same Arc");
        assert_eq!(
            t.apply(&net("203.0.113.0/24"), &route(&[64496, 64666, 64497]), &CTX),
            None
        );
        assert_eq!(t.apply(&net("203.0.113.0/24"), &route(&[64496; 40]), &CTX), None);
        assert!(t
            .apply(&net("203.0.113.0/24"), &route(&[64496; 39]), &CTX)
            .is_some());
        let incomplete = with(&[64496], |a| a.origin = Origin::Incomplete);
        assert_eq!(
            t.explain(&net("fd00:1::/32"), &incomplete, &CTX),
            (None, Some("bogons"))
        );
        assert_eq!(
            t.explain(&net("2001:db8::/64"), &incomplete, &CTX),
            (None, Some("too-specific"))
        );
        assert_eq!(
            t.explain(&net("192.0.2.0/25"), &incomplete, &CTX),
            (None, Some("too-specific"))
        );
        let v6 = t.apply(&net("2001:db8::/32"), &incomplete, &CTX).unwrap();
        assert_eq!(v6.local_pref, Some(80));
        let v4 = t.apply(&net("203.0.113.0/24"), &incomplete, &CTX).unwrap();
        assert!(
            Arc::ptr_eq(&v4, &incomplete),
            "the family condition excludes IPv4"
        );
    }

    fn prefix_list(entries: &[(&str, Option<u32>, Option<u32>, ListAction)]) -> PrefixList {
        compile_prefix_list(&PrefixListDef {
            name: "test".into(),
            entry: entries
                .iter()
                .map(|&(prefix, ge, le, action)| PrefixEntryDef {
                    prefix: prefix.into(),
                    ge,
                    le,
                    action,
                })
                .collect(),
        })
        .unwrap()
    }

    use ListAction::{Deny, Permit};

    #[test]
    fn a_prefix_list_entry_without_bounds_matches_only_its_prefix() {
        let l = prefix_list(&[
            ("198.51.100.0/24", None, None, Permit),
            ("2001:db8::/32", None, None, Permit),
        ]);
        assert!(l.permits(&net("198.51.100.0/24")));
        assert!(!l.permits(&net("198.51.100.0/25")));
        assert!(!l.permits(&net("198.51.0.0/16")));
        assert!(!l.permits(&net("198.51.101.0/24")));
        assert!(l.permits(&net("2001:db8::/32")));
        assert!(!l.permits(&net("2001:db8::/48")));
        // IPv4 entries never match IPv6 routes, even with the same bits.
        let l = prefix_list(&[("0.0.0.0/0", None, Some(32), Permit)]);
        assert!(l.permits(&net("192.0.2.0/24")));
        assert!(!l.permits(&net("::/0")));
        assert!(!l.permits(&net("2001:db8::/32")));
    }

    #[test]
    fn ge_and_le_bound_the_route_length_inside_the_prefix() {
        let l = prefix_list(&[("198.51.100.0/22", Some(24), None, Permit)]);
        assert!(!l.permits(&net("198.51.100.0/22")));
        assert!(!l.permits(&net("198.51.100.0/23")));
        assert!(l.permits(&net("198.51.101.0/24")));
        assert!(l.permits(&net("198.51.103.255/32")));
        assert!(!l.permits(&net("198.51.104.0/24")), "outside the prefix");

        let l = prefix_list(&[("198.51.100.0/22", None, Some(23), Permit)]);
        assert!(l.permits(&net("198.51.100.0/22")));
        assert!(l.permits(&net("198.51.102.0/23")));
        assert!(!l.permits(&net("198.51.100.0/24")));

        let l = prefix_list(&[("2001:db8::/32", Some(40), Some(48), Permit)]);
        assert!(!l.permits(&net("2001:db8::/39")));
        assert!(l.permits(&net("2001:db8:ff00::/40")));
        assert!(l.permits(&net("2001:db8:1::/48")));
        assert!(!l.permits(&net("2001:db8:1::/49")));
        assert!(!l.permits(&net("2001:db9::/48")));

        let l = prefix_list(&[
            ("::/0", Some(128), None, Permit),
            ("0.0.0.0/0", None, None, Permit),
        ]);
        assert!(l.permits(&net("2001:db8::1/128")));
        assert!(l.permits(&net("0.0.0.0/0")));
        assert!(!l.permits(&net("0.0.0.0/1")));
    }

    #[test]
    fn the_first_matching_prefix_entry_decides_and_no_match_denies() {
        let l = prefix_list(&[
            ("198.51.100.128/25", None, Some(32), Deny),
            ("198.51.100.0/24", None, Some(32), Permit),
            ("198.51.100.0/26", None, None, Deny), // after a permit that covers it: never used
        ]);
        assert!(l.permits(&net("198.51.100.0/24")));
        assert!(l.permits(&net("198.51.100.0/26")));
        assert!(!l.permits(&net("198.51.100.128/25")));
        assert!(!l.permits(&net("198.51.100.200/32")));
        assert!(!l.permits(&net("203.0.113.0/24")));
        // The order is the list's, not the prefixes' specificity.
        let l = prefix_list(&[
            ("0.0.0.0/0", None, Some(32), Permit),
            ("198.51.100.0/24", None, None, Deny),
        ]);
        assert!(l.permits(&net("198.51.100.0/24")));
        assert!(!prefix_list(&[]).permits(&net("0.0.0.0/0")));
    }

    /// The first entry that matches, by walking the list: what the index must agree with.
    fn linear_permits(entries: &[(IpNet, u8, u8, bool)], route: &IpNet) -> bool {
        entries
            .iter()
            .find(|(p, lo, hi, _)| p.contains(route) && (*lo..=*hi).contains(&route.prefix_len()))
            .is_some_and(|e| e.3)
    }

    fn arb_v4_net() -> impl Strategy<Value = IpNet> {
        // Few distinct bits, so that entries and routes overlap often.
        (0u32..16, 0u8..=32).prop_map(|(a, len)| {
            IpNet::V4(
                ipnet::Ipv4Net::new((a << 28 | a << 4).into(), len)
                    .unwrap()
                    .trunc(),
            )
        })
    }

    fn arb_v6_net() -> impl Strategy<Value = IpNet> {
        (0u128..16, 0u8..=128).prop_map(|(a, len)| {
            IpNet::V6(
                ipnet::Ipv6Net::new((a << 124 | a << 4).into(), len)
                    .unwrap()
                    .trunc(),
            )
        })
    }

    proptest! {
        #[test]
        fn the_prefix_index_agrees_with_walking_the_list(
            raw in proptest::collection::vec(
                (prop_oneof![arb_v4_net(), arb_v6_net()], any::<u8>(), any::<u8>(), any::<bool>(), any::<bool>()),
                0..40,
            ),
            routes in proptest::collection::vec(prop_oneof![arb_v4_net(), arb_v6_net()], 1..40),
        ) {
            // Turn the random bytes into valid ranges: ge in [len, max], le in [ge, max].
            let entries: Vec<(IpNet, u8, u8, bool)> = raw
                .iter()
                .map(|&(p, a, b, bounded, permit)| {
                    let (len, max) = (p.prefix_len(), p.max_prefix_len());
                    if !bounded {
                        return (p, len, len, permit);
                    }
                    let ge = len + a % (max - len + 1);
                    let le = ge + b % (max - ge + 1);
                    (p, ge, le, permit)
                })
                .collect();
            let list = compile_prefix_list(&PrefixListDef {
                name: "random".into(),
                entry: entries
                    .iter()
                    .map(|&(p, ge, le, permit)| PrefixEntryDef {
                        prefix: p.to_string(),
                        ge: Some(ge.into()),
                        le: Some(le.into()),
                        action: if permit { Permit } else { Deny },
                    })
                    .collect(),
            })
            .unwrap();
            for r in &routes {
                prop_assert_eq!(list.permits(r), linear_permits(&entries, r), "{}", r);
            }
        }
    }

    fn as_path_list(entries: Vec<AsPathEntryDef>) -> AsPathList {
        compile_as_path_list(&AsPathListDef {
            name: "test".into(),
            entry: entries,
        })
        .unwrap()
    }

    fn regex_list(pattern: &str) -> AsPathList {
        as_path_list(vec![AsPathEntryDef {
            regex: Some(pattern.into()),
            ..Default::default()
        }])
    }

    fn path_permitted(list: &AsPathList, path: &AsPath) -> bool {
        list.permits(path, &mut None)
    }

    #[test]
    fn underscore_in_an_as_path_regex_is_a_boundary() {
        let seq = |v: &[Asn]| AsPath::sequence(v.iter().copied());
        let anywhere = regex_list("_64500_");
        assert!(path_permitted(&anywhere, &seq(&[64500])));
        assert!(path_permitted(&anywhere, &seq(&[1, 64500, 2])));
        assert!(path_permitted(&anywhere, &seq(&[1, 64500])));
        assert!(!path_permitted(&anywhere, &seq(&[164500])));
        assert!(!path_permitted(&anywhere, &seq(&[645001])));
        let in_set = AsPath {
            segments: vec![AsSegment::Sequence(vec![1]), AsSegment::Set(vec![64500, 3])],
        };
        assert!(path_permitted(&anywhere, &in_set), "{in_set}");
        let in_confed = AsPath {
            segments: vec![
                AsSegment::ConfedSequence(vec![64500]),
                AsSegment::Sequence(vec![1]),
            ],
        };
        assert!(path_permitted(&anywhere, &in_confed), "{in_confed}");

        let from = regex_list("^64500_");
        assert!(path_permitted(&from, &seq(&[64500, 1])));
        assert!(path_permitted(&from, &seq(&[64500])));
        assert!(!path_permitted(&from, &seq(&[1, 64500])));
        assert!(!path_permitted(&from, &seq(&[645001])));
        let origin = regex_list("_64500$");
        assert!(path_permitted(&origin, &seq(&[1, 64500])));
        assert!(!path_permitted(&origin, &seq(&[64500, 1])));
        let empty = regex_list("^$");
        assert!(path_permitted(&empty, &AsPath::default()));
        assert!(!path_permitted(&empty, &seq(&[1])));
        let prepended = regex_list("^64501(_64501)*$");
        assert!(path_permitted(&prepended, &seq(&[64501, 64501, 64501])));
        assert!(!path_permitted(&prepended, &seq(&[64501, 64502])));
        // Escaped, and inside a class, `_` is itself.
        assert_eq!(
            translate_as_path_regex(r"a\_b[_0-9]_"),
            r"a\_b[_0-9](?:^|$|[ {}()\[\]])"
        );
        assert_eq!(
            translate_as_path_regex("[[:digit:]_]_"),
            r"[[:digit:]_](?:^|$|[ {}()\[\]])"
        );
    }

    #[test]
    fn as_path_matchers_and_their_combination() {
        let seq = |v: &[Asn]| AsPath::sequence(v.iter().copied());
        let only = |e: AsPathEntryDef| as_path_list(vec![e]);
        let origin = only(AsPathEntryDef {
            origin_as: Some(64510),
            ..Default::default()
        });
        assert!(path_permitted(&origin, &seq(&[64501, 64510])));
        assert!(!path_permitted(&origin, &seq(&[64510, 64501])));
        assert!(!path_permitted(&origin, &AsPath::default()));
        let neighbor = only(AsPathEntryDef {
            neighbor_as: Some(64501),
            ..Default::default()
        });
        assert!(path_permitted(&neighbor, &seq(&[64501, 64510])));
        assert!(!path_permitted(&neighbor, &seq(&[64510, 64501])));
        let contains = only(AsPathEntryDef {
            contains: Some(64666),
            ..Default::default()
        });
        assert!(path_permitted(&contains, &seq(&[1, 64666, 2])));
        assert!(!path_permitted(&contains, &seq(&[1, 2])));
        let length = only(AsPathEntryDef {
            length: Some(LengthDef {
                min: Some(2),
                max: Some(3),
            }),
            ..Default::default()
        });
        assert!(!path_permitted(&length, &seq(&[1])));
        assert!(path_permitted(&length, &seq(&[1, 2])));
        assert!(path_permitted(&length, &seq(&[1, 2, 3])));
        assert!(!path_permitted(&length, &seq(&[1, 2, 3, 4])));
        let at_most = only(AsPathEntryDef {
            length: Some(LengthDef {
                min: None,
                max: Some(0),
            }),
            ..Default::default()
        });
        assert!(path_permitted(&at_most, &AsPath::default()));
        // Every matcher of an entry must hold.
        let both = only(AsPathEntryDef {
            neighbor_as: Some(64501),
            regex: Some("_64510$".into()),
            ..Default::default()
        });
        assert!(path_permitted(&both, &seq(&[64501, 64510])));
        assert!(!path_permitted(&both, &seq(&[64502, 64510])));
        assert!(!path_permitted(&both, &seq(&[64501, 64511])));
        // First match decides; a deny entry rejects.
        let list = as_path_list(vec![
            AsPathEntryDef {
                contains: Some(64666),
                action: Deny,
                ..Default::default()
            },
            AsPathEntryDef {
                neighbor_as: Some(64501),
                ..Default::default()
            },
        ]);
        assert!(path_permitted(&list, &seq(&[64501, 2])));
        assert!(!path_permitted(&list, &seq(&[64501, 64666])));
        assert!(!path_permitted(&list, &seq(&[64502])));
    }

    #[test]
    fn the_path_text_is_written_only_for_a_regex() {
        let path = AsPath::sequence([64501, 64510]);
        let mut text = None;
        let no_regex = as_path_list(vec![AsPathEntryDef {
            neighbor_as: Some(64501),
            ..Default::default()
        }]);
        assert!(no_regex.permits(&path, &mut text));
        assert_eq!(text, None);
        // A regex behind a failing cheaper matcher is not evaluated either.
        let behind = as_path_list(vec![AsPathEntryDef {
            neighbor_as: Some(1),
            regex: Some("_".into()),
            ..Default::default()
        }]);
        assert!(!behind.permits(&path, &mut text));
        assert_eq!(text, None);
        assert!(regex_list("_64510$").permits(&path, &mut text));
        assert_eq!(text.as_deref(), Some("64501 64510"));
    }

    #[test]
    fn community_lists_match_any_or_all_members() {
        let list = |mode| {
            compile_community_list(&CommunityListDef {
                name: "c".into(),
                member: vec!["64500:1".into(), "no-export".into(), "64500:1".into()],
                mode,
            })
            .unwrap()
        };
        let (any, all) = (list(CommunityMatch::Any), list(CommunityMatch::All));
        let one = with(&[], |a| a.add_community(community("64500:1")));
        let both = with(&[], |a| {
            a.add_community(community("64500:1"));
            a.add_community(Community::NO_EXPORT);
            a.add_community(community("1:1"));
        });
        let other = with(&[], |a| a.add_community(community("64500:2")));
        assert!(any.permits(&one) && any.permits(&both) && !any.permits(&other));
        assert!(!all.permits(&one) && all.permits(&both) && !all.permits(&other));
        assert!(!any.permits(&route(&[])) && !all.permits(&route(&[])));
    }

    /// A policy from TOML terms, with some lists to refer to.
    fn policy(default: &str, terms: &str) -> Arc<Policy> {
        let text = format!(
            r#"
            [[bgp.prefix-list]]
            name = "doc"
            entry = [{{ prefix = "192.0.2.0/24", le = 32 }}, {{ prefix = "2001:db8::/32", le = 64 }}]
            [[bgp.community-list]]
            name = "tagged"
            member = ["64500:7"]
            [[bgp.as-path-list]]
            name = "via-64500"
            entry = [{{ regex = "^64500_" }}]
            [[bgp.policy]]
            name = "p"
            default = "{default}"
            {terms}
            "#
        );
        let policies = compile_toml(&text).unwrap();
        Arc::clone(policies.get("p").unwrap())
    }

    #[test]
    fn the_default_decides_what_no_term_does() {
        let r = route(&[64501]);
        let accept = policy("accept", "");
        assert!(Arc::ptr_eq(
            &accept.apply(&net("203.0.113.0/24"), &r, &CTX).unwrap(),
            &r
        ));
        assert_eq!(policy("reject", "").apply(&net("203.0.113.0/24"), &r, &CTX), None);
        // Omitted: reject (RFC 8212).
        let policies = compile_toml("[[bgp.policy]]\nname = \"p\"").unwrap();
        assert_eq!(
            policies.get("p").unwrap().apply(&net("203.0.113.0/24"), &r, &CTX),
            None
        );
        assert!(policies.get("q").is_none());
    }

    #[test]
    fn each_action_changes_what_it_names() {
        let r = with(&[64501], |a| {
            a.add_community(community("1:1"));
            a.add_community(community("1:2"));
        });
        let run = |then: &str| {
            policy(
                "reject",
                &format!("[[bgp.policy.term]]\nname = \"t\"\nthen = {{ {then}, action = \"accept\" }}"),
            )
            .apply(&net("203.0.113.0/24"), &r, &CTX)
            .unwrap()
        };
        assert_eq!(run("local-pref = 300").local_pref, Some(300));
        assert_eq!(run("med = 7").med, Some(7));
        assert_eq!(
            run("prepend = { times = 2 }").as_path,
            AsPath::sequence([64500, 64500, 64501])
        );
        assert_eq!(
            run("prepend = { times = 1, asn = 64999 }").as_path,
            AsPath::sequence([64999, 64501])
        );
        let comms = |then: &str| {
            run(then)
                .communities
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            comms(r#"add-community = ["1:0", "no-export"]"#),
            ["1:0", "1:1", "1:2", "no-export"]
        );
        assert_eq!(comms(r#"remove-community = ["1:1", "9:9"]"#), ["1:2"]);
        assert_eq!(
            comms(r#"remove-community = ["1:2"], add-community = ["2:2"]"#),
            ["1:1", "2:2"]
        );
        assert_eq!(comms(r#"set-community = ["5:5", "4:4", "5:5"]"#), ["4:4", "5:5"]);
        assert_eq!(comms("set-community = []"), Vec::<String>::new());
        // The rest of the attributes are untouched.
        let out = run("local-pref = 300");
        assert_eq!(
            (&out.as_path, &out.communities, out.med),
            (&r.as_path, &r.communities, r.med)
        );
    }

    #[test]
    fn each_condition_selects_what_it_names() {
        let accept_if = |cond: &str| {
            policy(
                "reject",
                &format!("[[bgp.policy.term]]\nname = \"t\"\nmatch = {{ {cond} }}\nthen.action = \"accept\""),
            )
        };
        let r = with(&[64500, 64501], |a| a.add_community(community("64500:7")));
        let yes = |cond: &str, prefix: &str, r: &Arc<PathAttributes>| {
            accept_if(cond).apply(&net(prefix), r, &CTX).is_some()
        };
        assert!(yes(r#"prefix-list = "doc""#, "192.0.2.128/25", &r));
        assert!(!yes(r#"prefix-list = "doc""#, "198.51.100.0/24", &r));
        assert!(yes(r#"community-list = "tagged""#, "198.51.100.0/24", &r));
        assert!(!yes(
            r#"community-list = "tagged""#,
            "198.51.100.0/24",
            &route(&[64500])
        ));
        assert!(yes(r#"as-path-list = "via-64500""#, "198.51.100.0/24", &r));
        assert!(!yes(
            r#"as-path-list = "via-64500""#,
            "198.51.100.0/24",
            &route(&[64501, 64500])
        ));
        assert!(yes(r#"family = "ipv4""#, "198.51.100.0/24", &r));
        assert!(!yes(r#"family = "ipv6""#, "198.51.100.0/24", &r));
        assert!(yes(r#"family = "ipv6""#, "2001:db8::/48", &r));
        assert!(yes(r#"next-hop = "192.0.2.1""#, "198.51.100.0/24", &r));
        assert!(!yes(r#"next-hop = "192.0.2.2""#, "198.51.100.0/24", &r));
        assert!(yes(r#"next-hop = "192.0.2.0/30""#, "198.51.100.0/24", &r));
        assert!(!yes(r#"next-hop = "2001:db8::/32""#, "198.51.100.0/24", &r));
        assert!(yes(r#"origin = "igp""#, "198.51.100.0/24", &r));
        assert!(!yes(r#"origin = "egp""#, "198.51.100.0/24", &r));
        // All conditions must hold.
        let both = r#"prefix-list = "doc", community-list = "tagged""#;
        assert!(yes(both, "192.0.2.0/24", &r));
        assert!(!yes(both, "192.0.2.0/24", &route(&[64500])));
        assert!(!yes(both, "198.51.100.0/24", &r));
    }

    #[test]
    fn terms_run_in_order_and_later_terms_see_earlier_changes() {
        let p = policy(
            "reject",
            r#"
            [[bgp.policy.term]]
            name = "rejects-paths-from-us-before-the-prepend"
            match.as-path-list = "via-64500"
            then.action = "reject"
            [[bgp.policy.term]]
            name = "tag-doc"
            match.prefix-list = "doc"
            then = { local-pref = 150, add-community = ["64500:7"] }
            [[bgp.policy.term]]
            name = "prepend"
            then.prepend = { times = 1 }
            [[bgp.policy.term]]
            name = "accept-tagged-via-us"
            match = { community-list = "tagged", as-path-list = "via-64500" }
            then.action = "accept"
            [[bgp.policy.term]]
            name = "never-reached-for-tagged"
            then = { local-pref = 1, action = "accept" }
            "#,
        );
        // Not from us at first; tagged, prepended (the regex sees the new path, not the text
        // written for the first term), and accepted with both changes.
        let r = route(&[64501]);
        let (out, term) = p.explain(&net("192.0.2.0/24"), &r, &CTX);
        let out = out.unwrap();
        assert_eq!(term, Some("accept-tagged-via-us"));
        assert_eq!(out.local_pref, Some(150));
        assert_eq!(out.communities, vec![community("64500:7")]);
        assert_eq!(out.as_path, AsPath::sequence([64500, 64501]));
        // Not tagged: falls through to the last term.
        let (out, term) = p.explain(&net("198.51.100.0/24"), &r, &CTX);
        assert_eq!(term, Some("never-reached-for-tagged"));
        assert_eq!(out.unwrap().local_pref, Some(1));
    }

    #[test]
    fn a_reject_drops_earlier_modifications() {
        let p = policy(
            "accept",
            r#"
            [[bgp.policy.term]]
            name = "modify"
            then.local-pref = 10
            [[bgp.policy.term]]
            name = "reject-doc"
            match.prefix-list = "doc"
            then.action = "reject"
            "#,
        );
        let r = route(&[64501]);
        assert_eq!(
            p.explain(&net("192.0.2.0/24"), &r, &CTX),
            (None, Some("reject-doc"))
        );
        let (out, term) = p.explain(&net("198.51.100.0/24"), &r, &CTX);
        assert_eq!((out.unwrap().local_pref, term), (Some(10), None));
    }

    #[test]
    fn attributes_nothing_really_changed_stay_the_same_arc() {
        let p = policy(
            "accept",
            r#"
            [[bgp.policy.term]]
            name = "same-values"
            then = { local-pref = 200, med = 5, add-community = ["64500:7"], remove-community = ["1:1"] }
            [[bgp.policy.term]]
            name = "set-what-is-there"
            then.set-community = ["64500:7"]
            "#,
        );
        let r = with(&[64501], |a| {
            a.local_pref = Some(200);
            a.med = Some(5);
            a.add_community(community("64500:7"));
        });
        let out = p.apply(&net("198.51.100.0/24"), &r, &CTX).unwrap();
        assert!(Arc::ptr_eq(&out, &r));
        // A community removed by one term and added back by the next: equal, so shared.
        let p = policy(
            "accept",
            r#"
            [[bgp.policy.term]]
            name = "remove"
            then.remove-community = ["64500:7"]
            [[bgp.policy.term]]
            name = "add-back"
            then.add-community = ["64500:7"]
            "#,
        );
        assert!(Arc::ptr_eq(
            &p.apply(&net("198.51.100.0/24"), &r, &CTX).unwrap(),
            &r
        ));
        // A real change gives a new Arc and leaves the original alone.
        let p = policy("accept", "[[bgp.policy.term]]\nname = \"t\"\nthen.med = 6");
        let out = p.apply(&net("198.51.100.0/24"), &r, &CTX).unwrap();
        assert!(!Arc::ptr_eq(&out, &r));
        assert_eq!((out.med, r.med), (Some(6), Some(5)));
    }

    #[test]
    fn a_value_already_in_place_is_not_even_copied() {
        let p = policy(
            "accept",
            r#"
            [[bgp.policy.term]]
            name = "same-values"
            then = { local-pref = 200, med = 5, add-community = ["64500:7"], remove-community = ["1:1"] }
            [[bgp.policy.term]]
            name = "same-set"
            then.set-community = ["64500:7"]
            "#,
        );
        let r = with(&[64501], |a| {
            a.local_pref = Some(200);
            a.med = Some(5);
            a.add_community(community("64500:7"));
        });
        let mut route = Route {
            original: &r,
            changed: None,
            path_text: None,
        };
        for term in &p.terms {
            term.actions.apply(&mut route, &CTX);
        }
        assert!(route.changed.is_none());
    }

    /// Compiles `text`, expecting an error whose message contains every one of `needles`.
    #[track_caller]
    fn refused(text: &str, needles: &[&str]) -> PolicyError {
        let err = compile_toml(text).unwrap_err();
        let msg = err.to_string();
        for n in needles {
            assert!(msg.contains(n), "{msg:?} lacks {n:?}");
        }
        err
    }

    fn plist(entry: &str) -> String {
        format!("[[bgp.prefix-list]]\nname = \"pl\"\nentry = [{entry}]")
    }

    #[test]
    fn bad_prefix_lists_are_refused_with_their_name() {
        let e = refused(
            &plist(r#"{ prefix = "10.0.0.0/8" }, { prefix = "10.0.0.300/8" }"#),
            &["\"pl\"", "entry[1]", "10.0.0.300/8"],
        );
        assert!(matches!(e, PolicyError::BadPrefix { index: 1, .. }));
        let e = refused(&plist(r#"{ prefix = "10.0.0.0" }"#), &["not a prefix"]);
        assert!(matches!(e, PolicyError::BadPrefix { .. }));
        let e = refused(
            &plist(r#"{ prefix = "10.1.0.0/8" }"#),
            &["host bits", "10.0.0.0/8"],
        );
        assert!(matches!(e, PolicyError::HostBits { .. }));
        for (entry, problem) in [
            (
                r#"{ prefix = "10.0.0.0/16", ge = 8 }"#,
                "ge 8 is less than the prefix length 16",
            ),
            (r#"{ prefix = "10.0.0.0/16", ge = 33 }"#, "ge 33 is more than 32"),
            (r#"{ prefix = "10.0.0.0/16", le = 33 }"#, "le 33 is more than 32"),
            (
                r#"{ prefix = "2001:db8::/32", le = 129 }"#,
                "le 129 is more than 128",
            ),
            (
                r#"{ prefix = "10.0.0.0/16", le = 8 }"#,
                "le 8 is less than the prefix length 16",
            ),
            (
                r#"{ prefix = "10.0.0.0/16", ge = 24, le = 20 }"#,
                "le 20 is less than ge 24",
            ),
        ] {
            let e = refused(&plist(entry), &["\"pl\"", "entry[0]", problem]);
            assert!(matches!(e, PolicyError::BadLengthRange { .. }), "{e}");
        }
        // The edges are fine.
        compile_toml(&plist(
            r#"{ prefix = "10.0.0.0/16", ge = 16, le = 32 }, { prefix = "::/0", ge = 128 }"#,
        ))
        .unwrap();
    }

    #[test]
    fn bad_as_path_lists_are_refused_with_their_name() {
        let alist = |entry: &str| format!("[[bgp.as-path-list]]\nname = \"al\"\nentry = [{entry}]");
        let e = refused(
            &alist(r#"{ regex = "^(64500" }"#),
            &["\"al\"", "entry[0]", "^(64500", "unclosed group"],
        );
        assert!(matches!(e, PolicyError::BadRegex { .. }));
        let e = refused(&alist(r#"{ regex = "_{1000}{1000}" }"#), &["\"al\"", "bad regex"]);
        assert!(matches!(e, PolicyError::BadRegex { .. }));
        let e = refused(
            &alist(r#"{ contains = 1 }, { action = "deny" }"#),
            &["entry[1]", "at least one"],
        );
        assert!(matches!(e, PolicyError::BadAsPathEntry { index: 1, .. }));
        let e = refused(&alist("{ length = {} }"), &["length needs min, max or both"]);
        assert!(matches!(e, PolicyError::BadAsPathEntry { .. }));
        let e = refused(
            &alist("{ length = { min = 5, max = 4 } }"),
            &["min greater than max"],
        );
        assert!(matches!(e, PolicyError::BadAsPathEntry { .. }));
    }

    #[test]
    fn bad_community_lists_are_refused_with_their_name() {
        let e = refused(
            "[[bgp.community-list]]\nname = \"cl\"\nmember = [\"64500:1\", \"64500:70000\"]",
            &["\"cl\"", "64500:70000"],
        );
        assert!(matches!(e, PolicyError::BadCommunity { .. }));
        let e = refused(
            "[[bgp.community-list]]\nname = \"cl\"\nmember = []",
            &["\"cl\"", "no members"],
        );
        assert!(matches!(e, PolicyError::EmptyCommunityList { .. }));
    }

    #[test]
    fn duplicate_and_empty_names_are_refused() {
        let twice = |kind: &str, body: &str| {
            format!("[[bgp.{kind}]]\nname = \"x\"\n{body}\n[[bgp.{kind}]]\nname = \"x\"\n{body}")
        };
        for (kind, body) in [
            ("prefix-list", ""),
            ("as-path-list", ""),
            ("community-list", "member = [\"1:1\"]"),
            ("policy", ""),
        ] {
            let e = refused(&twice(kind, body), &[kind, "\"x\" is defined twice"]);
            assert!(matches!(e, PolicyError::DuplicateName { .. }));
        }
        // The same name for two kinds of list is fine.
        compile_toml("[[bgp.prefix-list]]\nname = \"x\"\n[[bgp.as-path-list]]\nname = \"x\"").unwrap();
        let e = refused(
            "[[bgp.prefix-list]]\nname = \"\"",
            &["a prefix-list has an empty name"],
        );
        assert!(matches!(e, PolicyError::EmptyName { .. }));
        let term = |name: &str| format!("[[bgp.policy.term]]\nname = \"{name}\"\n");
        let e = refused(
            &format!("[[bgp.policy]]\nname = \"p\"\n{}{}", term("t"), term("t")),
            &["policy \"p\"", "term \"t\" is defined twice"],
        );
        assert!(matches!(e, PolicyError::DuplicateTerm { .. }));
        let e = refused(
            &format!("[[bgp.policy]]\nname = \"p\"\n{}", term("")),
            &["a term of policy \"p\" has an empty name"],
        );
        assert!(matches!(e, PolicyError::EmptyName { .. }));
    }

    #[test]
    fn bad_terms_are_refused_naming_policy_and_term() {
        let with_term = |body: &str| {
            format!("[[bgp.prefix-list]]\nname = \"pl\"\n[[bgp.policy]]\nname = \"p\"\n[[bgp.policy.term]]\nname = \"t\"\n{body}")
        };
        for (body, kind) in [
            (r#"match.prefix-list = "nope""#, "prefix-list"),
            (r#"match.as-path-list = "pl""#, "as-path-list"),
            (r#"match.community-list = "nope""#, "community-list"),
        ] {
            let e = refused(
                &with_term(body),
                &["policy \"p\" term \"t\"", &format!("no {kind} named")],
            );
            assert!(matches!(e, PolicyError::UnknownList { .. }));
        }
        for (body, problem) in [
            (
                r#"match.next-hop = "192.0.2.300""#,
                "next-hop \"192.0.2.300\" is not an address or prefix",
            ),
            (r#"match.next-hop = "192.0.2.1/24""#, "did you mean 192.0.2.0/24"),
            (
                r#"then.add-community = ["x"]"#,
                "add-community: bad community \"x\"",
            ),
            (
                r#"then.remove-community = ["1:1:1"]"#,
                "remove-community: bad community",
            ),
            (r#"then.set-community = ["1"]"#, "set-community: bad community"),
            (
                r#"then = { set-community = [], add-community = ["1:1"] }"#,
                "cannot be combined",
            ),
            (
                r#"then = { set-community = [], remove-community = ["1:1"] }"#,
                "cannot be combined",
            ),
            (
                r#"then = { add-community = ["1:1"], remove-community = ["1:1"] }"#,
                "community 1:1 is both added and removed",
            ),
            (
                "then.prepend = { times = 0 }",
                "prepend times 0 is out of range (1 to 32)",
            ),
            (
                "then.prepend = { times = 33 }",
                "prepend times 33 is out of range",
            ),
        ] {
            let e = refused(&with_term(body), &["policy \"p\" term \"t\"", problem]);
            assert!(matches!(e, PolicyError::BadTerm { .. }));
        }
    }

    #[test]
    fn unknown_keys_and_values_are_refused_by_serde() {
        for text in [
            "[[bgp.prefix-list]]\nname = \"a\"\nentries = []",
            "[[bgp.prefix-list]]\nname = \"a\"\nentry = [{ prefix = \"10.0.0.0/8\", action = \"allow\" }]",
            "[[bgp.community-list]]\nname = \"a\"\nmember = [\"1:1\"]\nmatch = \"some\"",
            "[[bgp.policy]]\nname = \"a\"\ndefault = \"permit\"",
            "[[bgp.policy]]\nname = \"a\"\n[[bgp.policy.term]]\nname = \"t\"\nthen.next-hop = \"self\"",
            "[[bgp.policy]]\nname = \"a\"\n[[bgp.policy.term]]\nname = \"t\"\nmatch.family = \"ipx\"",
            "[[bgp.policy]]\nname = \"a\"\n[[bgp.policy.term]]\nname = \"t\"\nthen.local-pref = -1",
        ] {
            assert!(toml::from_str::<File>(text).is_err(), "{text}");
        }
    }

    fn arb_as_path() -> impl Strategy<Value = AsPath> {
        let asn = prop_oneof![Just(64500u32), Just(64501), any::<u32>()];
        let segment = prop_oneof![
            proptest::collection::vec(asn.clone(), 0..4).prop_map(AsSegment::Sequence),
            proptest::collection::vec(asn.clone(), 0..3).prop_map(AsSegment::Set),
            proptest::collection::vec(asn.clone(), 0..2).prop_map(AsSegment::ConfedSequence),
            proptest::collection::vec(asn, 0..2).prop_map(AsSegment::ConfedSet),
        ];
        proptest::collection::vec(segment, 0..4).prop_map(|segments| AsPath { segments })
    }

    proptest! {
        #[test]
        fn the_example_policies_take_any_route_without_panicking(
            path in arb_as_path(),
            communities in proptest::collection::btree_set(
                prop_oneof![Just(community("64500:100")), Just(community("65535:666")), any::<u32>().prop_map(Community)],
                0..4,
            ),
            origin in 0u8..=2,
            prefix in prop_oneof![arb_v4_net(), arb_v6_net()],
            local_pref in proptest::option::of(any::<u32>()),
        ) {
            let policies = example();
            let r = Arc::new(PathAttributes {
                as_path: path,
                communities: communities.into_iter().collect(),
                origin: Origin::from_code(origin).unwrap(),
                local_pref,
                ..attrs(&[])
            });
            for name in ["from-customer-64501", "to-transit", "from-transit"] {
                if let Some(out) = policies.get(name).unwrap().apply(&prefix, &r, &CTX) {
                    // Whatever comes out keeps communities sorted and unique.
                    prop_assert!(out.communities.windows(2).all(|w| w[0] < w[1]));
                }
            }
        }
    }
}
