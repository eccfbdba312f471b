//! The BGP decision process (RFC 4271 9.1): among the paths to one prefix, which one is best,
//! why, and which others may share the traffic (multipath).
//!
//! # The procedure
//!
//! RFC 4271 9.1.2.2 is an *elimination* procedure, not a comparison: each step removes from the
//! whole candidate set every path that is worse than the best remaining one on that step, and
//! the next step looks only at what is left. This matters because MED is compared only between
//! paths from the same neighbouring AS, which makes any pairwise "is A better than B" relation
//! intransitive (A beats B on router ID, B beats C on router ID, C beats A on MED), so sorting
//! or folding with such a comparator gives an answer that depends on the order the paths
//! arrived in. Elimination gives one answer for any order. The steps, in order:
//!
//! 0. ineligible: the next hop does not resolve through the RIB (9.1.2, 9.1.2.1); the caller
//!    passes that as `igp_cost: None`. (A path whose AS_PATH holds our own AS is dropped on
//!    import by the caller and never reaches here.)
//! 1. highest LOCAL_PREF (9.1.1; absent: [`DecisionConfig::default_local_pref`]);
//! 2. shortest AS_PATH ([`AsPath::length`]: a set counts one, confederation segments nothing);
//! 3. lowest ORIGIN (IGP < EGP < INCOMPLETE);
//! 4. lowest MULTI_EXIT_DISC, within each group of paths from the same neighbouring AS (absent
//!    MED is 0); with [`DecisionConfig::always_compare_med`], across all paths;
//! 5. eBGP over iBGP. A path xroute originates itself ([`PathKind::Local`]) ranks before both,
//!    as BIRD and FRR prefer local routes; it normally wins far earlier anyway (empty AS path);
//! 6. lowest IGP cost to the next hop;
//! 7. lowest BGP identifier of the peer (ORIGINATOR_ID is not considered: xroute does no route
//!    reflection);
//! 8. lowest peer address.
//!
//! Two paths still equal after step 8 can only come from the same peer (which the caller must
//! not produce) or be two local originations: the lower index wins, and the other is reported
//! as lost at "peer address".
//!
//! # The neighbouring AS of a path (step 4, and multipath for eBGP)
//!
//! The first AS of the AS_PATH after any confederation segments (as BIRD does). A path with no
//! such AS (empty, or only confederation segments) comes from inside our AS: all of those form
//! one group. A path whose first non-confederation segment is an AS_SET has no neighbouring AS
//! to compare with, so its MED is compared with no other path's.
//!
//! # Cost
//!
//! [`select`] runs for every prefix of a full table when a session comes up, usually with one to
//! three candidates. The per-candidate state (the step at which each path lost, the working
//! lists for the MED groups and for multipath) lives in a [`Scratch`] the caller keeps and
//! passes in: after the first call it never allocates, whatever the number of candidates (a
//! route server can see hundreds), and the result borrows from it instead of carrying vectors
//! of its own. One candidate is decided without running the steps at all.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use super::types::{AsSegment, Asn, PathAttributes};

#[cfg(doc)]
use super::types::AsPath;

/// LOCAL_PREF for a path that carries none (RFC 4271 5.1.5 leaves it to configuration; 100 is
/// what BIRD, FRR and every other implementation use).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// Where a path came from, for step 5.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathKind {
    /// A network xroute originates itself.
    Local,
    Ebgp,
    Ibgp,
}

impl PathKind {
    /// Step 5's order, lower is better.
    fn rank(self) -> u8 {
        match self {
            Self::Local => 0,
            Self::Ebgp => 1,
            Self::Ibgp => 2,
        }
    }
}

/// The session a path was learned over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PathSource {
    pub kind: PathKind,
    /// The peer's address (step 8); unspecified for a local path.
    pub peer_addr: IpAddr,
    /// The peer's BGP identifier (step 7); our own router ID for a local path.
    pub peer_id: Ipv4Addr,
    pub peer_as: Asn,
}

impl PathSource {
    /// The source of a network xroute originates.
    pub fn local(router_id: Ipv4Addr, local_as: Asn) -> Self {
        Self {
            kind: PathKind::Local,
            peer_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            peer_id: router_id,
            peer_as: local_as,
        }
    }
}

/// One path to the prefix being decided.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    pub attrs: &'a PathAttributes,
    pub source: PathSource,
    /// The IGP cost to `attrs.next_hop` as resolved through the RIB; `None` when it does not
    /// resolve, which makes the path ineligible. A local path has `Some(0)`.
    pub igp_cost: Option<u32>,
}

/// Settings of the decision process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecisionConfig {
    /// Install several equal paths (see [`select`] for what "equal" means).
    pub multipath: bool,
    /// With `multipath`, the most paths installed (the best included); 0 counts as 1.
    pub max_paths: usize,
    /// Compare MED between paths from different neighbouring ASes too.
    pub always_compare_med: bool,
    /// LOCAL_PREF of a path without one.
    pub default_local_pref: u32,
}

impl Default for DecisionConfig {
    fn default() -> Self {
        Self {
            multipath: false,
            max_paths: 8,
            always_compare_med: false,
            default_local_pref: DEFAULT_LOCAL_PREF,
        }
    }
}

/// A step of the decision process, named as `bgp routes` shows it: the step a path lost at,
/// or the one that made the best path win. Ordered as the procedure runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    NextHopUnreachable,
    LocalPref,
    AsPathLength,
    Origin,
    Med,
    EbgpOverIbgp,
    IgpCost,
    RouterId,
    PeerAddress,
    /// The best path had no eligible competitor.
    OnlyPath,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NextHopUnreachable => "next hop unreachable",
            Self::LocalPref => "local preference",
            Self::AsPathLength => "AS path length",
            Self::Origin => "origin",
            Self::Med => "MED",
            Self::EbgpOverIbgp => "eBGP over iBGP",
            Self::IgpCost => "IGP cost",
            Self::RouterId => "router ID",
            Self::PeerAddress => "peer address",
            Self::OnlyPath => "only path",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Working memory for [`select`], kept by the caller across calls so that deciding a prefix
/// does not allocate.
#[derive(Debug, Default)]
pub struct Scratch {
    lost_at: Vec<Option<Step>>,
    /// Candidate indices: a MED group sort, then the multipath contenders.
    order: Vec<usize>,
    multipath: Vec<usize>,
}

/// The outcome of [`select`], borrowing its lists from the [`Scratch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selection<'s> {
    /// Index of the best path in the candidates.
    pub best: usize,
    /// The step that eliminated the last competitor of `best` ([`Step::OnlyPath`] when it had
    /// no eligible competitor).
    pub decided_by: Step,
    /// The paths to install, best first: `[best]`, or with multipath on, up to `max_paths`
    /// equal paths with distinct next hops, the others in tie-break order (router ID, then
    /// peer address).
    pub multipath: &'s [usize],
    /// Per candidate, the step at which it lost: `None` for `best`, `NextHopUnreachable` for an
    /// ineligible path. Multipath members other than `best` still show the tie-break step they
    /// lost at.
    pub lost_at: &'s [Option<Step>],
}

/// Runs the decision process over `candidates`; `None` when no candidate is eligible.
///
/// With [`DecisionConfig::multipath`], the paths installed beside the best are those that
/// survived steps 1 to 6 with it (same local preference, AS path length, origin and kind, same
/// IGP cost, not eliminated on MED) and carry the same MED as the best; for eBGP they must also
/// come from the same neighbouring AS; and each must have a next hop no earlier member has.
pub fn select<'s>(
    candidates: &[Candidate<'_>],
    cfg: &DecisionConfig,
    scratch: &'s mut Scratch,
) -> Option<Selection<'s>> {
    let Scratch {
        lost_at,
        order,
        multipath,
    } = scratch;
    lost_at.clear();
    multipath.clear();

    // The common case: one path, nothing to compare.
    if let [only] = candidates {
        if only.igp_cost.is_none() {
            lost_at.push(Some(Step::NextHopUnreachable));
            return None;
        }
        lost_at.push(None);
        multipath.push(0);
        return Some(Selection {
            best: 0,
            decided_by: Step::OnlyPath,
            multipath,
            lost_at,
        });
    }

    lost_at.extend(
        candidates
            .iter()
            .map(|c| c.igp_cost.is_none().then_some(Step::NextHopUnreachable)),
    );
    let mut alive = count_alive(lost_at);
    if alive == 0 {
        return None;
    }
    let mut decided_by = Step::OnlyPath;
    // Steps run only while competitors remain, so the step that leaves one path decided.
    let note = |alive: usize, step: Step, decided_by: &mut Step| {
        if alive == 1 {
            *decided_by = step;
        }
    };

    let default_lp = cfg.default_local_pref;
    if alive > 1 {
        // Highest local preference: the smallest complement.
        alive = keep_lowest(candidates, lost_at, Step::LocalPref, |c| {
            u32::MAX - c.attrs.local_pref.unwrap_or(default_lp)
        });
        note(alive, Step::LocalPref, &mut decided_by);
    }
    if alive > 1 {
        alive = keep_lowest(candidates, lost_at, Step::AsPathLength, |c| {
            c.attrs.as_path.length()
        });
        note(alive, Step::AsPathLength, &mut decided_by);
    }
    if alive > 1 {
        alive = keep_lowest(candidates, lost_at, Step::Origin, |c| c.attrs.origin);
        note(alive, Step::Origin, &mut decided_by);
    }
    if alive > 1 {
        alive = if cfg.always_compare_med {
            keep_lowest(candidates, lost_at, Step::Med, med)
        } else {
            keep_lowest_med_per_group(candidates, lost_at, order)
        };
        note(alive, Step::Med, &mut decided_by);
    }
    if alive > 1 {
        alive = keep_lowest(candidates, lost_at, Step::EbgpOverIbgp, |c| c.source.kind.rank());
        note(alive, Step::EbgpOverIbgp, &mut decided_by);
    }
    if alive > 1 {
        alive = keep_lowest(candidates, lost_at, Step::IgpCost, |c| c.igp_cost);
        note(alive, Step::IgpCost, &mut decided_by);
    }

    // What survived step 6 is what multipath may install beside the best.
    let want_multipath = cfg.multipath && cfg.max_paths > 1 && alive > 1;
    if want_multipath {
        order.clear();
        order.extend(alive_indices(lost_at));
    }

    if alive > 1 {
        alive = keep_lowest(candidates, lost_at, Step::RouterId, |c| c.source.peer_id);
        note(alive, Step::RouterId, &mut decided_by);
    }
    if alive > 1 {
        alive = keep_lowest(candidates, lost_at, Step::PeerAddress, |c| c.source.peer_addr);
        note(alive, Step::PeerAddress, &mut decided_by);
    }
    let mut best = None;
    for (i, lost) in lost_at.iter_mut().enumerate() {
        if lost.is_none() {
            if best.is_none() {
                best = Some(i);
            } else {
                // An exact tie (see the module doc): the lower index wins.
                *lost = Some(Step::PeerAddress);
                decided_by = Step::PeerAddress;
            }
        }
    }
    let best = best?;

    multipath.push(best);
    if want_multipath {
        fill_multipath(candidates, cfg, best, order, multipath);
    }
    Some(Selection {
        best,
        decided_by,
        multipath,
        lost_at,
    })
}

fn med(c: &Candidate<'_>) -> u32 {
    c.attrs.med.unwrap_or(0)
}

/// Whose MEDs a path's MED is compared with (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum MedGroup {
    /// No AS outside our own (confederation) on the path.
    Internal,
    Neighbor(Asn),
    /// Starts with an AS_SET: comparable with nobody; the index keeps it apart.
    Alone(usize),
}

fn med_group(index: usize, c: &Candidate<'_>) -> MedGroup {
    let regular = c.attrs.as_path.segments.iter().find(|s| {
        !matches!(s, AsSegment::ConfedSequence(_) | AsSegment::ConfedSet(_)) && !s.asns().is_empty()
    });
    match regular {
        None => MedGroup::Internal,
        Some(AsSegment::Sequence(v)) => v.first().map_or(MedGroup::Internal, |&a| MedGroup::Neighbor(a)),
        Some(_) => MedGroup::Alone(index),
    }
}

fn count_alive(lost_at: &[Option<Step>]) -> usize {
    lost_at.iter().filter(|l| l.is_none()).count()
}

fn alive_indices(lost_at: &[Option<Step>]) -> impl Iterator<Item = usize> + '_ {
    lost_at
        .iter()
        .enumerate()
        .filter(|(_, l)| l.is_none())
        .map(|(i, _)| i)
}

/// One step over the whole remaining set: every path whose key is above the lowest key among
/// the remaining paths loses at `step`. Returns how many remain.
fn keep_lowest<K: Ord>(
    candidates: &[Candidate<'_>],
    lost_at: &mut [Option<Step>],
    step: Step,
    key: impl Fn(&Candidate<'_>) -> K,
) -> usize {
    let lowest = candidates
        .iter()
        .zip(lost_at.iter())
        .filter(|(_, l)| l.is_none())
        .map(|(c, _)| key(c))
        .min();
    let Some(lowest) = lowest else { return 0 };
    let mut alive = 0;
    for (c, lost) in candidates.iter().zip(lost_at.iter_mut()) {
        if lost.is_none() {
            if key(c) > lowest {
                *lost = Some(step);
            } else {
                alive += 1;
            }
        }
    }
    alive
}

/// Step 4 as RFC 4271 9.1.2.2 c words it: a path loses when a remaining path from the same
/// neighbouring AS has a lower MED. Sorting the remaining paths by (group, MED) puts each
/// group's lowest MED first, so one pass decides them all without comparing every pair.
fn keep_lowest_med_per_group(
    candidates: &[Candidate<'_>],
    lost_at: &mut [Option<Step>],
    order: &mut Vec<usize>,
) -> usize {
    let key = |i: usize| {
        candidates
            .get(i)
            .map(|c| (med_group(i, c), med(c)))
            .unwrap_or((MedGroup::Alone(i), 0))
    };
    order.clear();
    order.extend(alive_indices(lost_at));
    order.sort_unstable_by_key(|&i| key(i));
    let mut alive = 0;
    let mut group_lowest: Option<(MedGroup, u32)> = None;
    for &i in order.iter() {
        let (group, m) = key(i);
        match group_lowest {
            Some((g, lowest)) if g == group && m > lowest => {
                if let Some(lost) = lost_at.get_mut(i) {
                    *lost = Some(Step::Med);
                }
            }
            Some((g, _)) if g == group => alive += 1,
            _ => {
                group_lowest = Some((group, m));
                alive += 1;
            }
        }
    }
    alive
}

/// Adds to `multipath` (which holds `best`) the contenders in `order` (the survivors of step
/// 6) that qualify, in tie-break order, up to `max_paths`.
fn fill_multipath(
    candidates: &[Candidate<'_>],
    cfg: &DecisionConfig,
    best: usize,
    order: &mut Vec<usize>,
    multipath: &mut Vec<usize>,
) {
    let Some(b) = candidates.get(best) else { return };
    let best_group = med_group(best, b);
    order.retain(|&i| {
        candidates.get(i).is_some_and(|c| {
            i != best
                && med(c) == med(b)
                && (b.source.kind != PathKind::Ebgp || med_group(i, c) == best_group)
        })
    });
    order.sort_unstable_by_key(|&i| {
        candidates
            .get(i)
            .map(|c| (c.source.peer_id, c.source.peer_addr, i))
    });
    for &i in order.iter() {
        if multipath.len() >= cfg.max_paths {
            break;
        }
        let Some(c) = candidates.get(i) else { continue };
        let next_hop_taken = multipath.iter().any(|&j| {
            candidates
                .get(j)
                .is_some_and(|m| m.attrs.next_hop == c.attrs.next_hop)
        });
        if !next_hop_taken {
            multipath.push(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::types::{AsPath, NextHop, Origin};
    use proptest::prelude::*;

    /// An owned candidate, so tests can build sets and borrow them as [`Candidate`]s.
    #[derive(Clone, Debug)]
    struct Path {
        attrs: PathAttributes,
        source: PathSource,
        igp_cost: Option<u32>,
    }

    impl Path {
        /// An eBGP path from peer `n` (address 192.0.2.n, router ID 10.0.0.n, next hop
        /// 198.51.100.n) with AS path `asns`.
        fn ebgp(n: u8, asns: &[Asn]) -> Self {
            let mut attrs = PathAttributes::local(NextHop::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, n))));
            attrs.as_path = AsPath::sequence(asns.iter().copied());
            Self {
                attrs,
                source: PathSource {
                    kind: PathKind::Ebgp,
                    peer_addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, n)),
                    peer_id: Ipv4Addr::new(10, 0, 0, n),
                    peer_as: asns.first().copied().unwrap_or(64500),
                },
                igp_cost: Some(0),
            }
        }

        fn ibgp(n: u8, asns: &[Asn]) -> Self {
            let mut p = Self::ebgp(n, asns);
            p.source.kind = PathKind::Ibgp;
            p.source.peer_as = 64500;
            p.igp_cost = Some(10);
            p
        }

        fn with(mut self, f: impl FnOnce(&mut Self)) -> Self {
            f(&mut self);
            self
        }

        fn candidate(&self) -> Candidate<'_> {
            Candidate {
                attrs: &self.attrs,
                source: self.source,
                igp_cost: self.igp_cost,
            }
        }
    }

    /// The decision over `paths` as owned values: (best, decided_by, multipath, lost_at).
    type Outcome = (usize, Step, Vec<usize>, Vec<Option<Step>>);

    fn run(paths: &[Path], cfg: &DecisionConfig) -> Option<Outcome> {
        let candidates: Vec<Candidate<'_>> = paths.iter().map(Path::candidate).collect();
        let mut scratch = Scratch::default();
        select(&candidates, cfg, &mut scratch)
            .map(|s| (s.best, s.decided_by, s.multipath.to_vec(), s.lost_at.to_vec()))
    }

    fn best_and_step(paths: &[Path]) -> (usize, Step) {
        let (best, step, _, _) = run(paths, &DecisionConfig::default()).unwrap();
        (best, step)
    }

    #[test]
    fn one_path_is_the_best_and_an_unreachable_one_is_nothing() {
        let p = Path::ebgp(1, &[64501]);
        let (best, step, multipath, lost_at) =
            run(std::slice::from_ref(&p), &DecisionConfig::default()).unwrap();
        assert_eq!(
            (best, step, multipath, lost_at),
            (0, Step::OnlyPath, vec![0], vec![None])
        );
        let unreachable = p.with(|p| p.igp_cost = None);
        assert_eq!(
            run(std::slice::from_ref(&unreachable), &DecisionConfig::default()),
            None
        );
        assert_eq!(run(&[], &DecisionConfig::default()), None);
        assert_eq!(
            run(&[unreachable.clone(), unreachable], &DecisionConfig::default()),
            None
        );
    }

    #[test]
    fn an_unreachable_next_hop_loses_whatever_else_it_has() {
        let good = Path::ebgp(1, &[64501, 64502, 64503]);
        let better_but_unreachable = Path::ebgp(2, &[64502]).with(|p| {
            p.attrs.local_pref = Some(1000);
            p.igp_cost = None;
        });
        let (best, step, _, lost_at) =
            run(&[better_but_unreachable, good], &DecisionConfig::default()).unwrap();
        assert_eq!((best, step), (1, Step::OnlyPath));
        assert_eq!(lost_at, vec![Some(Step::NextHopUnreachable), None]);
    }

    #[test]
    fn each_step_decides_when_everything_before_it_is_equal() {
        let base = Path::ebgp(1, &[64501, 64510]);
        let other = Path::ebgp(2, &[64501, 64510]);
        // (the second path, improved or worsened on one step; whether it wins; the step)
        let cases: Vec<(Path, bool, Step)> = vec![
            (
                other.clone().with(|p| p.attrs.local_pref = Some(200)),
                true,
                Step::LocalPref,
            ),
            // Absent LOCAL_PREF is the default (100), which beats 99.
            (
                other.clone().with(|p| p.attrs.local_pref = Some(99)),
                false,
                Step::LocalPref,
            ),
            (
                other
                    .clone()
                    .with(|p| p.attrs.as_path = AsPath::sequence([64501])),
                true,
                Step::AsPathLength,
            ),
            (
                other.clone().with(|p| p.attrs.as_path.prepend(64501, 1)),
                false,
                Step::AsPathLength,
            ),
            (
                other.clone().with(|p| p.attrs.origin = Origin::Incomplete),
                false,
                Step::Origin,
            ),
            (other.clone().with(|p| p.attrs.med = Some(5)), false, Step::Med),
            (
                other.clone().with(|p| p.source.kind = PathKind::Ibgp),
                false,
                Step::EbgpOverIbgp,
            ),
            (
                other.clone().with(|p| p.source.kind = PathKind::Local),
                true,
                Step::EbgpOverIbgp,
            ),
            (other.clone().with(|p| p.igp_cost = Some(1)), false, Step::IgpCost),
            (
                other
                    .clone()
                    .with(|p| p.source.peer_id = Ipv4Addr::new(10, 0, 0, 0)),
                true,
                Step::RouterId,
            ),
            (
                other.clone().with(|p| p.source.peer_id = base.source.peer_id),
                false,
                Step::PeerAddress,
            ),
        ];
        for (second, wins, step) in cases {
            let got = best_and_step(&[base.clone(), second.clone()]);
            assert_eq!(got, (usize::from(wins), step), "{second:?}");
            // Either order gives the same path and the same reason.
            let got = best_and_step(&[second.clone(), base.clone()]);
            assert_eq!(got, (usize::from(!wins), step), "{second:?} first");
        }
    }

    #[test]
    fn default_local_pref_is_configurable() {
        let absent = Path::ebgp(1, &[64501]);
        let set = Path::ebgp(2, &[64501]).with(|p| p.attrs.local_pref = Some(150));
        let paths = [absent, set];
        assert_eq!(best_and_step(&paths), (1, Step::LocalPref));
        let cfg = DecisionConfig {
            default_local_pref: 200,
            ..DecisionConfig::default()
        };
        let (best, step, _, _) = run(&paths, &cfg).unwrap();
        assert_eq!((best, step), (0, Step::LocalPref));
    }

    #[test]
    fn a_set_counts_one_and_confederation_segments_nothing_in_the_path_length() {
        let seq3 = Path::ebgp(1, &[64501, 64502, 64503]);
        let with_set = Path::ebgp(2, &[]).with(|p| {
            p.attrs.as_path = AsPath {
                segments: vec![
                    AsSegment::ConfedSequence(vec![65001, 65002, 65003]),
                    AsSegment::Sequence(vec![64501]),
                    AsSegment::Set(vec![64502, 64503, 64504]),
                ],
            };
        });
        assert_eq!(best_and_step(&[seq3, with_set]), (1, Step::AsPathLength));
    }

    #[test]
    fn med_is_compared_only_within_a_neighbouring_as_unless_configured() {
        let from_a = Path::ebgp(1, &[64501, 64510]).with(|p| p.attrs.med = Some(100));
        let from_b = Path::ebgp(2, &[64502, 64510]).with(|p| p.attrs.med = Some(0));
        let paths = [from_a, from_b];
        // Different neighbours: MED is skipped and the router ID decides.
        assert_eq!(best_and_step(&paths), (0, Step::RouterId));
        let cfg = DecisionConfig {
            always_compare_med: true,
            ..DecisionConfig::default()
        };
        let (best, step, _, lost_at) = run(&paths, &cfg).unwrap();
        assert_eq!((best, step), (1, Step::Med));
        assert_eq!(lost_at, vec![Some(Step::Med), None]);
    }

    #[test]
    fn an_absent_med_is_zero() {
        let absent = Path::ebgp(2, &[64501]);
        let one = Path::ebgp(1, &[64501]).with(|p| p.attrs.med = Some(1));
        assert_eq!(best_and_step(&[one.clone(), absent.clone()]), (1, Step::Med));
        let zero = one.with(|p| p.attrs.med = Some(0));
        // Equal MEDs: on to the router ID, where peer 1 wins.
        assert_eq!(best_and_step(&[zero, absent]), (0, Step::RouterId));
    }

    #[test]
    fn internal_paths_compare_med_among_themselves_and_set_led_paths_with_nobody() {
        let internal_high = Path::ibgp(1, &[]).with(|p| p.attrs.med = Some(50));
        let internal_low = Path::ibgp(2, &[]).with(|p| p.attrs.med = Some(10));
        assert_eq!(best_and_step(&[internal_high, internal_low]), (1, Step::Med));

        let set = |n: u8, m: u32| {
            Path::ebgp(n, &[]).with(|p| {
                p.attrs.as_path = AsPath {
                    segments: vec![AsSegment::Set(vec![64501, 64502])],
                };
                p.attrs.med = Some(m);
            })
        };
        // Same set, but no neighbouring AS: the MEDs are not compared.
        assert_eq!(best_and_step(&[set(1, 50), set(2, 10)]), (0, Step::RouterId));
        // Confederation segments are skipped to find the neighbour.
        let confed = |n: u8, m: u32| {
            Path::ibgp(n, &[]).with(|p| {
                p.attrs.as_path = AsPath {
                    segments: vec![
                        AsSegment::ConfedSequence(vec![65000 + u32::from(n)]),
                        AsSegment::Sequence(vec![64501]),
                    ],
                };
                p.attrs.med = Some(m);
            })
        };
        assert_eq!(best_and_step(&[confed(1, 50), confed(2, 10)]), (1, Step::Med));
    }

    /// What an implementation that folds a pairwise comparator over the paths (instead of
    /// eliminating) picks: the winner so far meets each next path in turn.
    fn pairwise_fold(paths: &[Path]) -> usize {
        let better = |a: &Path, b: &Path| -> bool {
            let key = |p: &Path| {
                (
                    std::cmp::Reverse(p.attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)),
                    p.attrs.as_path.length(),
                    p.attrs.origin,
                )
            };
            if key(a) != key(b) {
                return key(a) < key(b);
            }
            if a.attrs.as_path.neighbor_as() == b.attrs.as_path.neighbor_as()
                && a.attrs.med.unwrap_or(0) != b.attrs.med.unwrap_or(0)
            {
                return a.attrs.med.unwrap_or(0) < b.attrs.med.unwrap_or(0);
            }
            (
                a.source.kind.rank(),
                a.igp_cost,
                a.source.peer_id,
                a.source.peer_addr,
            ) < (
                b.source.kind.rank(),
                b.igp_cost,
                b.source.peer_id,
                b.source.peer_addr,
            )
        };
        let mut winner = 0;
        for i in 1..paths.len() {
            if better(&paths[i], &paths[winner]) {
                winner = i;
            }
        }
        winner
    }

    #[test]
    fn med_elimination_gives_one_answer_where_pairwise_comparison_depends_on_order() {
        // a beats b on router ID, b beats c on router ID, c beats a on MED (same neighbour).
        let a = Path::ebgp(1, &[64501, 64510]).with(|p| p.attrs.med = Some(100));
        let b = Path::ebgp(2, &[64502, 64510]).with(|p| p.attrs.med = Some(50));
        let c = Path::ebgp(3, &[64501, 64510]).with(|p| p.attrs.med = Some(10));
        let orders: [[&Path; 3]; 6] = [
            [&a, &b, &c],
            [&a, &c, &b],
            [&b, &a, &c],
            [&b, &c, &a],
            [&c, &a, &b],
            [&c, &b, &a],
        ];
        let mut pairwise_winners = std::collections::BTreeSet::new();
        for order in orders {
            let paths: Vec<Path> = order.iter().map(|p| (*p).clone()).collect();
            pairwise_winners.insert(paths[pairwise_fold(&paths)].source.peer_id);
            // Elimination: a goes at MED (c is lower in AS 64501), then b beats c on router ID.
            let (best, step, _, lost_at) = run(&paths, &DecisionConfig::default()).unwrap();
            assert_eq!(paths[best].source.peer_id, b.source.peer_id, "{order:?}");
            assert_eq!(step, Step::RouterId);
            for (p, lost) in paths.iter().zip(&lost_at) {
                let expected = if p.source == a.source {
                    Some(Step::Med)
                } else if p.source == c.source {
                    Some(Step::RouterId)
                } else {
                    None
                };
                assert_eq!(*lost, expected);
            }
        }
        assert!(
            pairwise_winners.len() > 1,
            "the pairwise fold should depend on the order"
        );
    }

    #[test]
    fn an_exact_tie_goes_to_the_lower_index() {
        let local = |nh: u8| {
            let mut p = Path::ebgp(nh, &[]);
            p.source = PathSource::local(Ipv4Addr::new(10, 0, 0, 9), 64500);
            p
        };
        let (best, step, _, lost_at) = run(&[local(1), local(2)], &DecisionConfig::default()).unwrap();
        assert_eq!((best, step), (0, Step::PeerAddress));
        assert_eq!(lost_at, vec![None, Some(Step::PeerAddress)]);
    }

    fn multipath_cfg(max_paths: usize) -> DecisionConfig {
        DecisionConfig {
            multipath: true,
            max_paths,
            ..DecisionConfig::default()
        }
    }

    #[test]
    fn multipath_takes_equal_ebgp_paths_from_the_same_neighbour_in_tie_break_order() {
        let paths = [
            Path::ebgp(3, &[64501, 64510]),
            Path::ebgp(1, &[64501, 64511]),
            Path::ebgp(4, &[64502, 64510]), // other neighbour AS
            Path::ebgp(2, &[64501, 64510]).with(|p| p.igp_cost = Some(5)), // costlier
            Path::ebgp(5, &[64501, 64510]),
        ];
        let (best, step, multipath, _) = run(&paths, &multipath_cfg(8)).unwrap();
        assert_eq!((best, step), (1, Step::RouterId));
        assert_eq!(multipath, vec![1, 0, 4]);
        // Capped, best first.
        assert_eq!(run(&paths, &multipath_cfg(2)).unwrap().2, vec![1, 0]);
        // Off, or one path at most: just the best.
        assert_eq!(run(&paths, &DecisionConfig::default()).unwrap().2, vec![1]);
        assert_eq!(run(&paths, &multipath_cfg(1)).unwrap().2, vec![1]);
        assert_eq!(run(&paths, &multipath_cfg(0)).unwrap().2, vec![1]);
    }

    #[test]
    fn multipath_skips_a_next_hop_already_taken_and_needs_the_same_med() {
        let paths = [
            Path::ibgp(1, &[64501]),
            Path::ibgp(2, &[64501])
                .with(|p| p.attrs.next_hop = NextHop::new("198.51.100.1".parse().unwrap())),
            // iBGP: another neighbour AS is fine, with the same MED.
            Path::ibgp(3, &[64502]),
            // Survives MED (alone in its AS) but its MED differs from the best's.
            Path::ibgp(4, &[64503]).with(|p| p.attrs.med = Some(7)),
        ];
        let (best, _, multipath, lost_at) = run(&paths, &multipath_cfg(8)).unwrap();
        assert_eq!(best, 0);
        assert_eq!(multipath, vec![0, 2]);
        assert_eq!(lost_at[1], Some(Step::RouterId));
        // Different kinds never share: a local path wins alone at step 5.
        let mixed = [Path::ebgp(1, &[]), Path::ibgp(2, &[])];
        assert_eq!(run(&mixed, &multipath_cfg(8)).unwrap().2, vec![0]);
    }

    #[test]
    fn scratch_is_reused_across_calls_of_different_sizes() {
        let mut scratch = Scratch::default();
        let three = [
            Path::ebgp(1, &[64501]),
            Path::ebgp(2, &[64501]),
            Path::ebgp(3, &[64501]),
        ];
        let cands: Vec<Candidate<'_>> = three.iter().map(Path::candidate).collect();
        let s = select(&cands, &multipath_cfg(8), &mut scratch).unwrap();
        assert_eq!(s.multipath, &[0, 1, 2]);
        let one = [cands[2]];
        let s = select(&one, &multipath_cfg(8), &mut scratch).unwrap();
        assert_eq!((s.best, s.multipath, s.lost_at), (0, &[0][..], &[None][..]));
    }

    #[test]
    fn steps_print_as_the_cli_shows_them() {
        assert_eq!(Step::LocalPref.to_string(), "local preference");
        assert_eq!(Step::EbgpOverIbgp.to_string(), "eBGP over iBGP");
        assert_eq!(Step::NextHopUnreachable.to_string(), "next hop unreachable");
    }

    /// RFC 4271 9.1.2.2 transcribed as literally as possible, as a reference: each step filters
    /// the list of survivors; MED uses the RFC's pseudo-code (remove m if some n from the same
    /// neighbour AS has a lower MED).
    fn reference(paths: &[Path], cfg: &DecisionConfig) -> Option<(usize, Vec<Option<Step>>)> {
        let key = |step: Step, p: &Path| -> u64 {
            match step {
                Step::LocalPref => u64::from(u32::MAX - p.attrs.local_pref.unwrap_or(cfg.default_local_pref)),
                Step::AsPathLength => p.attrs.as_path.length() as u64,
                Step::Origin => p.attrs.origin as u64,
                Step::EbgpOverIbgp => u64::from(p.source.kind.rank()),
                Step::IgpCost => u64::from(p.igp_cost.unwrap()),
                Step::RouterId => u64::from(u32::from(p.source.peer_id)),
                Step::PeerAddress => match p.source.peer_addr {
                    IpAddr::V4(a) => u64::from(u32::from(a)),
                    IpAddr::V6(_) => unreachable!("the tests use IPv4 peers"),
                },
                _ => unreachable!(),
            }
        };
        let med = |i: usize| paths[i].attrs.med.unwrap_or(0);
        let neighbor = |i: usize| paths[i].attrs.as_path.neighbor_as();
        let mut lost: Vec<Option<Step>> = paths
            .iter()
            .map(|p| p.igp_cost.is_none().then_some(Step::NextHopUnreachable))
            .collect();
        let mut left: Vec<usize> = (0..paths.len()).filter(|&i| lost[i].is_none()).collect();
        for step in [
            Step::LocalPref,
            Step::AsPathLength,
            Step::Origin,
            Step::Med,
            Step::EbgpOverIbgp,
            Step::IgpCost,
            Step::RouterId,
            Step::PeerAddress,
        ] {
            let removed: Vec<usize> = if step == Step::Med {
                left.iter()
                    .copied()
                    .filter(|&m| {
                        left.iter().any(|&n| {
                            (cfg.always_compare_med || neighbor(m) == neighbor(n)) && med(n) < med(m)
                        })
                    })
                    .collect()
            } else {
                let min = left.iter().map(|&i| key(step, &paths[i])).min();
                left.iter()
                    .copied()
                    .filter(|&i| Some(key(step, &paths[i])) > min)
                    .collect()
            };
            for &i in &removed {
                lost[i] = Some(step);
            }
            left.retain(|i| !removed.contains(i));
        }
        left.first().map(|&b| (b, lost))
    }

    prop_compose! {
        /// A path from peer `n` (distinct per path, so there are no exact ties) with
        /// attributes drawn from small ranges, so that many steps are reached.
        fn arb_path(n: u8)(
            lp in proptest::option::weighted(0.2, 99u32..=101),
            asns in proptest::collection::vec(64501u32..=64503, 0..=2),
            origin in prop_oneof![4 => Just(0u8), 1 => 1u8..=2],
            med in proptest::option::of(0u32..=2),
            kind in 0u8..=2,
            igp in proptest::option::weighted(0.9, 0u32..=2),
            id in 1u8..=3,
            nh in 1u8..=3,
        ) -> Path {
            Path::ebgp(n, &asns).with(|p| {
                p.attrs.local_pref = lp;
                p.attrs.origin = Origin::from_code(origin).unwrap();
                p.attrs.med = med;
                p.source.kind = [PathKind::Local, PathKind::Ebgp, PathKind::Ibgp][usize::from(kind)];
                p.igp_cost = igp;
                p.source.peer_id = Ipv4Addr::new(10, 0, 0, id);
                p.attrs.next_hop = NextHop::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, nh)));
            })
        }
    }

    fn arb_paths() -> impl Strategy<Value = Vec<Path>> {
        (1usize..=6).prop_flat_map(|n| (0..n).map(|i| arb_path(i as u8 + 1)).collect::<Vec<_>>())
    }

    proptest! {
        #[test]
        fn select_agrees_with_the_literal_rfc_procedure(
            paths in arb_paths(),
            always_compare_med in any::<bool>(),
        ) {
            let cfg = DecisionConfig { always_compare_med, ..DecisionConfig::default() };
            let got = run(&paths, &cfg).map(|(best, _, _, lost_at)| (best, lost_at));
            prop_assert_eq!(got, reference(&paths, &cfg));
        }

        #[test]
        fn the_outcome_does_not_depend_on_the_order_of_the_candidates(
            (paths, shuffled) in arb_paths().prop_flat_map(|p| (Just(p.clone()), Just(p).prop_shuffle())),
            always_compare_med in any::<bool>(),
        ) {
            let cfg = DecisionConfig { multipath: true, max_paths: 3, always_compare_med, ..DecisionConfig::default() };
            // Identify paths by peer address, which is distinct per path.
            let named = |paths: &[Path]| run(paths, &cfg).map(|(best, step, multipath, lost_at)| {
                let name = |i: usize| paths[i].source.peer_addr;
                let mut lost: Vec<_> = lost_at.iter().enumerate().map(|(i, l)| (name(i), *l)).collect();
                lost.sort();
                (name(best), step, multipath.into_iter().map(name).collect::<Vec<_>>(), lost)
            });
            prop_assert_eq!(named(&paths), named(&shuffled));
        }

        #[test]
        fn the_outcome_is_consistent(paths in arb_paths(), multipath in any::<bool>()) {
            let cfg = DecisionConfig { multipath, max_paths: 2, ..DecisionConfig::default() };
            match run(&paths, &cfg) {
                None => prop_assert!(paths.iter().all(|p| p.igp_cost.is_none())),
                Some((best, step, mp, lost_at)) => {
                    prop_assert!(paths[best].igp_cost.is_some());
                    prop_assert_eq!(lost_at[best], None);
                    prop_assert_eq!(lost_at.iter().filter(|l| l.is_none()).count(), 1);
                    prop_assert_eq!(mp[0], best);
                    let most = if multipath { 2 } else { 1 };
                    prop_assert!(mp.len() <= most);
                    let eligible = paths.iter().filter(|p| p.igp_cost.is_some()).count();
                    prop_assert_eq!(step == Step::OnlyPath, eligible == 1);
                    if step != Step::OnlyPath {
                        // Some competitor lost at exactly the deciding step.
                        prop_assert!(lost_at.contains(&Some(step)));
                    }
                    for &i in &mp[1..] {
                        prop_assert_ne!(paths[i].attrs.next_hop, paths[best].attrs.next_hop);
                        prop_assert!(matches!(lost_at[i], Some(Step::RouterId | Step::PeerAddress)));
                    }
                }
            }
        }
    }
}
