use std::collections::{BTreeMap, HashSet};

use super::*;

/// One parsed sample: its labels and value.
type Sample = (BTreeMap<String, String>, f64);

/// A family as the parser found it.
#[derive(Debug, Default)]
struct Parsed {
    kind: String,
    help: String,
    samples: Vec<Sample>,
}

fn valid_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

/// Reads `{a="x",b="y"}` (after the metric name) and returns the labels and the rest.
fn parse_labels(s: &str, line: &str) -> (BTreeMap<String, String>, String) {
    let mut labels = BTreeMap::new();
    let Some(mut rest) = s.strip_prefix('{') else {
        return (labels, s.to_string());
    };
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return (labels, r.to_string());
        }
        let (name, r) = rest.split_once("=\"").unwrap_or_else(|| panic!("label: {line}"));
        assert!(valid_label_name(name), "label name {name:?}: {line}");
        let mut value = String::new();
        let mut chars = r.char_indices();
        let end = loop {
            let (i, c) = chars
                .next()
                .unwrap_or_else(|| panic!("unterminated label value: {line}"));
            match c {
                '"' => break i,
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('n') => value.push('\n'),
                    other => panic!("bad escape {other:?}: {line}"),
                },
                '\n' => panic!("raw newline in a label value: {line}"),
                c => value.push(c),
            }
        };
        assert!(
            labels.insert(name.to_string(), value).is_none(),
            "label twice: {line}"
        );
        rest = &r[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// A strict reader of the text format (0.0.4) for what `render` writes: every line valid,
/// `# HELP` then `# TYPE` once per family before its samples, the samples of a family together,
/// no series twice, counters named `_total`.
fn parse(text: &str) -> BTreeMap<String, Parsed> {
    assert!(text.ends_with('\n'), "the text ends with a line feed");
    let mut families: BTreeMap<String, Parsed> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut pending_help: Option<(String, String)> = None;
    let mut series = HashSet::new();
    for line in text.lines() {
        assert!(!line.is_empty(), "no empty lines");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(valid_metric_name(name), "{line}");
            assert!(!families.contains_key(name), "HELP twice for {name}");
            assert!(pending_help.is_none(), "HELP without TYPE before {line}");
            pending_help = Some((name.to_string(), help.to_string()));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            let (help_name, help) = pending_help
                .take()
                .unwrap_or_else(|| panic!("TYPE without HELP: {line}"));
            assert_eq!(help_name, name, "HELP and TYPE for the same family");
            assert!(kind == "counter" || kind == "gauge", "{line}");
            assert!(!families.contains_key(name), "TYPE twice for {name}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter {name} ends in _total");
            } else {
                assert!(!name.ends_with("_total"), "gauge {name} does not end in _total");
            }
            families.insert(
                name.to_string(),
                Parsed {
                    kind: kind.to_string(),
                    help,
                    samples: Vec::new(),
                },
            );
            current = Some(name.to_string());
        } else {
            assert!(!line.starts_with('#'), "unexpected comment: {line}");
            let name_end = line.find(['{', ' ']).unwrap_or_else(|| panic!("{line}"));
            let name = &line[..name_end];
            assert_eq!(
                Some(name),
                current.as_deref(),
                "sample outside its family: {line}"
            );
            let (labels, rest) = parse_labels(&line[name_end..], line);
            let value = rest
                .strip_prefix(' ')
                .unwrap_or_else(|| panic!("no value: {line}"));
            assert!(!value.contains(' '), "no timestamps here: {line}");
            let v: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("value {v:?}: {line}")),
            };
            assert!(
                series.insert((name.to_string(), labels.clone())),
                "series twice: {line}"
            );
            families.get_mut(name).unwrap().samples.push((labels, v));
        }
    }
    assert!(pending_help.is_none(), "HELP at the end without TYPE");
    families
}

fn get(f: &BTreeMap<String, Parsed>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    f.get(name)
        .unwrap_or_else(|| panic!("no family {name}"))
        .samples
        .iter()
        .find(|(l, _)| *l == want)
        .unwrap_or_else(|| panic!("no {name}{want:?}"))
        .1
}

fn counters(seed: u64) -> PortCounters {
    let mut c = PortCounters {
        rx_packets: seed,
        rx_bytes: seed * 100,
        tx_packets: seed + 1,
        tx_bytes: u64::MAX - seed,
        to_kernel: 0,
        ..PortCounters::default()
    };
    c.drops[DropReason::TtlExceeded as usize] = seed + 2;
    c
}

fn neighbor(address: &str, state: &'static str) -> NeighborSample {
    NeighborSample {
        address: address.parse().unwrap(),
        remote_as: 64501,
        state,
        admin_shutdown: false,
        state_seconds: Some(12),
        received: 10,
        accepted: 8,
        advertised: 3,
        messages_in: 40,
        messages_out: 41,
        updates_in: 5,
        updates_out: 6,
        notifications_in: 0,
        notifications_out: 1,
        established_transitions: 2,
        connect_attempts: 7,
    }
}

/// Two ports (the second with a name that needs escaping), workers 0 and 3, an engine in
/// sync, BGP with two neighbours.
fn sample() -> Snapshot {
    Snapshot {
        ports: vec![
            PortSample {
                name: "xd0".into(),
                up: true,
                to_kernel: 9,
            },
            PortSample {
                name: "odd\"na\\me\nx".into(),
                up: false,
                to_kernel: 0,
            },
        ],
        slots: vec![
            SlotSample {
                worker: "0".into(),
                ports: vec![counters(10), counters(20)],
            },
            SlotSample {
                worker: "3".into(),
                ports: vec![counters(30), counters(40)],
            },
        ],
        engine: EngineSample {
            attached: true,
            up: true,
            state: EngineState::InSync,
            heartbeat_age_seconds: Some(0.125),
            fib_routes_v4: 950_000,
            fib_routes_v6: 200_000,
            fib_memory_bytes: 123_456_789,
            fib_groups: 4,
            fib_adjacencies: 5,
            resyncs_done: 1,
        },
        deltas: DeltaSample {
            produced_seq: 1000,
            applied_seq: 990,
            queued: 7,
            rejected: 0,
            resyncs_sent: 1,
            ring_capacity: 65_536,
        },
        rib: RibSample {
            selected_v4: 3,
            selected_v6: 2,
            candidates: vec![("connected", 2), ("static", 3)],
            unresolved: 1,
        },
        bgp: Some(BgpSample {
            local_as: 64500,
            prefixes: 11,
            neighbors: vec![
                neighbor("192.0.2.2", "established"),
                neighbor("2001:db8::2", "active"),
            ],
        }),
    }
}

#[test]
fn every_line_is_valid_and_each_family_is_announced_once() {
    let text = render(&sample());
    let f = parse(&text);
    // The families the documentation lists, each with HELP text.
    for name in [
        "xroute_build_info",
        "xroute_port_up",
        "xroute_port_rx_packets_total",
        "xroute_port_rx_bytes_total",
        "xroute_port_tx_packets_total",
        "xroute_port_tx_bytes_total",
        "xroute_port_to_kernel_packets_total",
        "xroute_port_drops_total",
        "xroute_engine_up",
        "xroute_engine_attached",
        "xroute_engine_state",
        "xroute_engine_heartbeat_age_seconds",
        "xroute_engine_resyncs_total",
        "xroute_fib_routes",
        "xroute_fib_memory_bytes",
        "xroute_fib_nexthop_groups",
        "xroute_fib_adjacencies",
        "xroute_deltas_produced_total",
        "xroute_deltas_applied_total",
        "xroute_deltas_rejected_total",
        "xroute_deltas_queued",
        "xroute_delta_resyncs_sent_total",
        "xroute_delta_ring_capacity",
        "xroute_rib_routes",
        "xroute_rib_candidates",
        "xroute_rib_unresolved_prefixes",
        "xroute_bgp_enabled",
        "xroute_bgp_loc_rib_prefixes",
        "xroute_bgp_session_state",
        "xroute_bgp_session_state_seconds",
        "xroute_bgp_session_up",
        "xroute_bgp_prefixes_received",
        "xroute_bgp_prefixes_accepted",
        "xroute_bgp_prefixes_advertised",
        "xroute_bgp_established_transitions_total",
    ] {
        let family = f.get(name).unwrap_or_else(|| panic!("{name} missing"));
        assert!(!family.help.is_empty(), "{name} has help");
        assert!(!family.samples.is_empty(), "{name} has samples");
    }
    assert_eq!(f["xroute_port_drops_total"].kind, "counter");
    assert_eq!(f["xroute_fib_routes"].kind, "gauge");
}

#[test]
fn values_land_on_the_right_series() {
    let f = parse(&render(&sample()));
    let odd = "odd\"na\\me\nx";
    assert_eq!(
        get(
            &f,
            "xroute_port_rx_packets_total",
            &[("port", "xd0"), ("worker", "0")]
        ),
        10.0
    );
    assert_eq!(
        get(
            &f,
            "xroute_port_rx_packets_total",
            &[("port", odd), ("worker", "3")]
        ),
        40.0
    );
    assert_eq!(
        get(
            &f,
            "xroute_port_rx_bytes_total",
            &[("port", "xd0"), ("worker", "3")]
        ),
        3000.0
    );
    assert_eq!(
        get(&f, "xroute_port_to_kernel_packets_total", &[("port", "xd0")]),
        9.0
    );
    assert_eq!(
        get(&f, "xroute_port_to_kernel_packets_total", &[("port", odd)]),
        0.0
    );
    assert_eq!(
        get(
            &f,
            "xroute_port_drops_total",
            &[("port", "xd0"), ("worker", "3"), ("reason", "ttl_exceeded")]
        ),
        32.0
    );
    assert_eq!(
        get(
            &f,
            "xroute_port_drops_total",
            &[("port", odd), ("worker", "0"), ("reason", "no_route")]
        ),
        0.0
    );
    // Every reason of every (port, worker), zero or not: rate() sees a series before it moves.
    assert_eq!(
        f["xroute_port_drops_total"].samples.len(),
        2 * 2 * DropReason::ALL.len()
    );
    assert_eq!(get(&f, "xroute_port_up", &[("port", "xd0")]), 1.0);
    assert_eq!(get(&f, "xroute_port_up", &[("port", odd)]), 0.0);
    assert_eq!(get(&f, "xroute_fib_routes", &[("family", "ipv4")]), 950_000.0);
    assert_eq!(get(&f, "xroute_fib_memory_bytes", &[]), 123_456_789.0);
    assert_eq!(get(&f, "xroute_engine_heartbeat_age_seconds", &[]), 0.125);
    assert_eq!(get(&f, "xroute_deltas_applied_total", &[]), 990.0);
    assert_eq!(get(&f, "xroute_deltas_queued", &[]), 7.0);
    assert_eq!(get(&f, "xroute_rib_candidates", &[("protocol", "static")]), 3.0);
    // One engine state is 1, the others 0.
    let states = &f["xroute_engine_state"].samples;
    assert_eq!(states.len(), 4);
    assert_eq!(states.iter().map(|(_, v)| v).sum::<f64>(), 1.0);
    assert_eq!(get(&f, "xroute_engine_state", &[("state", "in-sync")]), 1.0);
    // BGP: every state listed per neighbour, the current one 1.
    let n1 = [("neighbor", "192.0.2.2"), ("remote_as", "64501")];
    let n2 = [("neighbor", "2001:db8::2"), ("remote_as", "64501")];
    let with = |n: &[(&'static str, &'static str); 2], st: &'static str| {
        let mut l = n.to_vec();
        l.push(("state", st));
        l
    };
    assert_eq!(
        get(&f, "xroute_bgp_session_state", &with(&n1, "established")),
        1.0
    );
    assert_eq!(get(&f, "xroute_bgp_session_state", &with(&n1, "idle")), 0.0);
    assert_eq!(get(&f, "xroute_bgp_session_state", &with(&n2, "active")), 1.0);
    assert_eq!(f["xroute_bgp_session_state"].samples.len(), 2 * BGP_STATES.len());
    assert_eq!(get(&f, "xroute_bgp_session_up", &n1), 1.0);
    assert_eq!(get(&f, "xroute_bgp_session_up", &n2), 0.0);
    assert_eq!(get(&f, "xroute_bgp_prefixes_accepted", &n1), 8.0);
    assert_eq!(get(&f, "xroute_bgp_established_transitions_total", &n2), 2.0);
    assert_eq!(get(&f, "xroute_bgp_connect_attempts_total", &n2), 7.0);
}

#[test]
fn integers_are_exact_and_labels_escaped() {
    let text = render(&sample());
    // u64::MAX - 10 does not survive a trip through f64: it must be written as an integer.
    assert!(
        text.contains("xroute_port_tx_bytes_total{port=\"xd0\",worker=\"0\"} 18446744073709551605\n"),
        "{text}"
    );
    // Backslash, double quote and line feed escaped in label values; nothing else.
    assert!(
        text.contains("xroute_port_up{port=\"odd\\\"na\\\\me\\nx\"} 0\n"),
        "{text}"
    );
    assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    assert_eq!(escape_label("plain é"), "plain é");
    assert_eq!(escape_help("x\\y\nz \"q\""), "x\\\\y\\nz \"q\"");
}

#[test]
fn without_bgp_or_engine_the_scrape_still_works() {
    let s = Snapshot {
        bgp: None,
        engine: EngineSample::default(),
        ..sample()
    };
    let f = parse(&render(&s));
    assert_eq!(get(&f, "xroute_bgp_enabled", &[]), 0.0);
    assert!(
        !f.keys()
            .any(|k| k.starts_with("xroute_bgp_") && k != "xroute_bgp_enabled"),
        "no BGP families without BGP"
    );
    assert_eq!(get(&f, "xroute_engine_up", &[]), 0.0);
    assert_eq!(get(&f, "xroute_engine_state", &[("state", "none")]), 1.0);
    assert!(!f.contains_key("xroute_engine_heartbeat_age_seconds"));
    // An empty snapshot (no ports, no slots) is valid text too.
    let f = parse(&render(&Snapshot::default()));
    assert!(f["xroute_port_drops_total"].samples.is_empty());
}

#[test]
fn the_parser_rejects_what_prometheus_would() {
    // The checks above are only worth something if the parser fails on bad text.
    for bad in [
        "# HELP a_total x\n# TYPE a_total counter\n# HELP a_total x\n# TYPE a_total counter\n",
        "# HELP a x\n# TYPE a counter\na 1\n",
        "# HELP a x\n# TYPE a gauge\nb 1\n",
        "# HELP a x\n# TYPE a gauge\na{l=\"x} 1\n",
        "# HELP a x\n# TYPE a gauge\na{l=\"x\"} 1\na{l=\"x\"} 2\n",
        "# HELP a x\n# TYPE a gauge\na one\n",
        "# HELP a x\n# TYPE a gauge\na{1l=\"x\"} 1\n",
        "# TYPE a gauge\na 1\n",
    ] {
        let r = std::panic::catch_unwind(|| parse(bad));
        assert!(r.is_err(), "accepted: {bad:?}");
    }
}
