use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use proptest::prelude::*;

use super::*;

const EXAMPLE: &str = include_str!("../../xroute.toml.example");

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn hop(via: Option<&str>, interface: Option<&str>, weight: u32) -> StaticNextHop {
    StaticNextHop {
        via: via.map(ip),
        interface: interface.map(str::to_owned),
        weight,
    }
}

fn route(prefix: &str, target: StaticTarget, distance: u8) -> StaticRoute {
    StaticRoute {
        prefix: net(prefix),
        target,
        distance,
        metric: 0,
    }
}

/// Parses `text` as `t.toml`, expects an error at `line:column` on `field`, whose message
/// contains `message`, and checks the one-line rendering.
#[track_caller]
fn assert_error(text: &str, line: usize, column: usize, field: &str, message: &str) -> ConfigError {
    let e = parse(text, "t.toml").expect_err("the configuration should be rejected");
    assert_eq!(
        (e.line, e.column, e.field.as_str()),
        (Some(line), Some(column), field),
        "{e}"
    );
    assert!(e.message.contains(message), "{e:?} does not contain {message:?}");
    let shown = e.to_string();
    let prefix = if field.is_empty() {
        format!("t.toml:{line}:{column}: ")
    } else {
        format!("t.toml:{line}:{column}: {field}: ")
    };
    assert!(
        shown.starts_with(&prefix),
        "{shown:?} does not start with {prefix:?}"
    );
    assert!(!shown.contains('\n'), "{shown:?} is more than one line");
    e
}

/// Two interfaces to route through: eth1 (192.0.2.1/24, 2001:db8:1::1/64) and eth2.
const IFACES: &str = r#"
[[interface]]
name = "eth1"
address = ["192.0.2.1/24", "2001:db8:1::1/64"]
[[interface]]
name = "eth2"
address = ["198.18.0.1/31"]
"#;

/// `IFACES` followed by `rest`; `IFACES` takes lines 1 to 7.
fn with_ifaces(rest: &str) -> String {
    format!("{IFACES}{rest}")
}

// ---- defaults, the example, round trips ----

#[test]
fn default_config_parses_to_the_defaults() {
    let config = parse(DEFAULT_CONFIG, "<default>").unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(config.router.instance, "default");
    assert_eq!(config.router.run_dir, PathBuf::from("/run/xroute"));
    assert_eq!(config.router.shm_dir, PathBuf::from("/dev/shm"));
    assert!(config.interfaces.is_empty() && config.routes.is_empty());
    assert!(!config.rip.enabled && !config.ospf.enabled && !config.bgp.enabled);
    assert!(config.metrics.enabled);
    assert_eq!(config.metrics.listen, "127.0.0.1:9842".parse().unwrap());
    assert_eq!(
        config.router.control_socket(),
        PathBuf::from("/run/xroute/default/control.sock")
    );
    assert_eq!(config.router.shm_path(), PathBuf::from("/dev/shm/xroute-default"));
}

#[test]
fn empty_text_is_the_default() {
    assert_eq!(parse("", "t.toml").unwrap(), Config::default());
    assert_eq!(parse("# nothing\n\n", "t.toml").unwrap(), Config::default());
}

#[test]
fn omitted_keys_take_their_defaults() {
    let config = parse(
        "[router]\ninstance = \"edge-1\"\n[[interface]]\nname = \"eth0\"\n[[route]]\nprefix = \"10.0.0.0/8\"\ninterface = \"eth0\"\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(config.router.instance, "edge-1");
    assert_eq!(config.router.run_dir, PathBuf::from(DEFAULT_RUN_DIR));
    assert_eq!(
        config.router.control_socket(),
        PathBuf::from("/run/xroute/edge-1/control.sock")
    );
    assert_eq!(
        config.interfaces,
        vec![InterfaceConfig {
            name: "eth0".into(),
            addresses: vec![],
            mtu: None
        }]
    );
    assert_eq!(
        config.routes,
        vec![route(
            "10.0.0.0/8",
            StaticTarget::NextHops(vec![hop(None, Some("eth0"), 1)]),
            1
        )]
    );
}

#[test]
fn example_parses_to_the_expected_structure() {
    let config = parse(EXAMPLE, "xroute.toml.example").unwrap();
    let expected = Config {
        router: Router::default(),
        interfaces: vec![
            InterfaceConfig {
                name: "eth1".into(),
                addresses: vec![net("192.0.2.1/24"), net("2001:db8:1::1/64")],
                mtu: Some(1500),
            },
            InterfaceConfig {
                name: "eth2".into(),
                addresses: vec![net("198.18.0.1/31"), net("2001:db8:2::1/64")],
                mtu: None,
            },
        ],
        routes: vec![
            route(
                "198.51.100.0/24",
                StaticTarget::NextHops(vec![hop(Some("192.0.2.2"), Some("eth1"), 1)]),
                1,
            ),
            route(
                "0.0.0.0/0",
                StaticTarget::NextHops(vec![hop(Some("198.51.100.1"), None, 1)]),
                1,
            ),
            route(
                "0.0.0.0/0",
                StaticTarget::NextHops(vec![hop(Some("198.18.0.0"), Some("eth2"), 1)]),
                200,
            ),
            route(
                "2001:db8:100::/48",
                StaticTarget::NextHops(vec![hop(Some("fe80::1"), Some("eth2"), 1)]),
                1,
            ),
            route(
                "198.18.1.0/24",
                StaticTarget::NextHops(vec![hop(None, Some("eth2"), 1)]),
                1,
            ),
            route(
                "203.0.113.0/24",
                StaticTarget::NextHops(vec![
                    hop(Some("192.0.2.2"), None, 1),
                    hop(Some("192.0.2.3"), None, 2),
                    hop(Some("198.18.0.0"), Some("eth2"), 1),
                ]),
                1,
            ),
            route("192.0.2.128/25", StaticTarget::Blackhole, 1),
            route("2001:db8:dead::/48", StaticTarget::Unreachable, 1),
        ],
        route_files: vec![],
        rip: ProtocolSection { enabled: false },
        ospf: ProtocolSection { enabled: false },
        bgp: BgpConfig::default(),
        metrics: MetricsConfig::default(),
    };
    assert_eq!(config, expected);
    assert_eq!(config.interface("eth2").map(|i| i.addresses.len()), Some(2));
    assert_eq!(config.interface("eth9"), None);
}

#[test]
fn full_config_round_trips() {
    let text = r#"
[router]
instance = "core_2"
run-dir = "/var/run/xr"
shm-dir = "/dev/shm/xr"

[[interface]]
name = "enp3s0f1"
address = ["10.1.0.1/30", "2001:db8:a::1/127", "2001:db8::/64"]
mtu = 9000

[[interface]]
name = "lo.named"
address = ["192.0.2.255/32"]

[[route]]
prefix = "::/0"
next-hop = [{ via = "fe80::2", interface = "enp3s0f1", weight = 255 }, { via = "2001:db8:a::" }]
distance = 20
metric = 4294967295

[[route]]
prefix = "::/0"
unreachable = true
distance = 255

[[route]]
prefix = "10.0.0.0/8"
interface = "lo.named"
via = "10.1.0.2"
"#;
    let config = parse(text, "t.toml").unwrap();
    assert_eq!(config.routes.len(), 3);
    assert_eq!(config.routes[0].metric, u32::MAX);
    let rendered = config.to_toml();
    assert_eq!(parse(&rendered, "rendered").unwrap(), config, "{rendered}");
    // Rendering is stable: the rendered text renders to itself.
    assert_eq!(parse(&rendered, "rendered").unwrap().to_toml(), rendered);
}

#[test]
fn example_and_default_round_trip() {
    for text in [EXAMPLE, DEFAULT_CONFIG] {
        let config = parse(text, "t.toml").unwrap();
        assert_eq!(parse(&config.to_toml(), "rendered").unwrap(), config);
    }
}

#[test]
fn strings_are_escaped_when_rendered() {
    let mut config = Config::default();
    config.router.run_dir = PathBuf::from("/run/\"odd\" dir\\x");
    config.interfaces.push(InterfaceConfig {
        name: "a\"b".into(),
        addresses: vec![],
        mtu: None,
    });
    assert_eq!(parse(&config.to_toml(), "rendered").unwrap(), config);
}

// ---- the error format ----

#[test]
fn error_renders_like_the_documentation() {
    let mut text = String::from("[[route]]\nprefix = \"10.0.0.0/8\"\nblackhole = true\n");
    text.push_str("[[route]]\nprefix = \"10.1.0.0/16\"\nblackhole = true\n");
    text.push_str("\n\n\n\n\n");
    text.push_str("[[route]]\nprefix = \"10.2.0.0/16\"\nvia = \"192.0.2.300\"\n");
    let e = parse(&text, "/etc/xroute/xroute.toml").unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"/etc/xroute/xroute.toml:14:7: route[2].via: "192.0.2.300" is not an IP address"#
    );
    assert_eq!(e.origin, "/etc/xroute/xroute.toml");
}

#[test]
fn error_without_line_or_field() {
    let e = ConfigError {
        origin: "/x.toml".into(),
        line: None,
        column: None,
        field: String::new(),
        message: "gone".into(),
    };
    assert_eq!(e.to_string(), "/x.toml: gone");
    let boxed: Box<dyn std::error::Error> = Box::new(e);
    assert_eq!(boxed.to_string(), "/x.toml: gone");
}

#[test]
fn load_reads_the_file_and_names_it_in_errors() {
    let dir = std::env::temp_dir().join(format!("xroute-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(&good, EXAMPLE).unwrap();
    assert_eq!(load(&good).unwrap(), parse(EXAMPLE, "x").unwrap());

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[router]\ninstance = \"a b\"\n").unwrap();
    let e = load(&bad).unwrap_err();
    assert_eq!(
        (e.line, e.column, e.field.as_str()),
        (Some(2), Some(12), "router.instance")
    );
    assert!(
        e.to_string()
            .starts_with(&format!("{}:2:12: router.instance: ", bad.display())),
        "{e}"
    );

    let missing = dir.join("missing.toml");
    let e = load(&missing).unwrap_err();
    assert_eq!((e.line, e.column, e.field.as_str()), (None, None, ""));
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot read", missing.display())),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn line_and_column_count_characters() {
    assert_eq!(line_column("abc", 0), (1, 1));
    assert_eq!(line_column("a\nbc", 3), (2, 2));
    assert_eq!(line_column("aé b", 4), (1, 4));
    // Inside a character, or past the end: still a position on the last line.
    assert_eq!(line_column("aé", 2), (1, 2));
    assert_eq!(line_column("a\nb", 99), (2, 2));
}

// ---- errors from the TOML and serde layer ----

#[test]
fn syntax_error() {
    assert_error("[router]\ninstance = \"x\"\nrun-dir = /run\n", 3, 11, "", "");
    assert_error("[router\n", 1, 8, "", "");
    let e = assert_error("[router]\n[router]\n", 2, 1, "", "duplicate key");
    assert!(!e.message.contains('\n'));
}

#[test]
fn type_errors() {
    assert_error(
        "[[interface]]\nname = \"eth0\"\nmtu = \"1500\"\n",
        3,
        7,
        "interface[0].mtu",
        "invalid type",
    );
    assert_error(
        "[router]\ninstance = 5\n",
        2,
        12,
        "router.instance",
        "invalid type",
    );
    assert_error("route = 5\n", 1, 9, "route", "invalid type");
    assert_error("[rip]\nenabled = \"yes\"\n", 2, 11, "rip.enabled", "invalid type");
    assert_error(
        "[[interface]]\nname = \"eth0\"\naddress = \"192.0.2.1/24\"\n",
        3,
        11,
        "interface[0].address",
        "invalid type",
    );
}

#[test]
fn unknown_fields() {
    assert_error("[routers]\n", 1, 2, "routers", "unknown field `routers`");
    assert_error(
        "[router]\ninstnace = \"a\"\n",
        2,
        1,
        "router.instnace",
        "unknown field `instnace`",
    );
    assert_error(
        "[[interface]]\nname = \"e\"\naddresses = []\n",
        3,
        1,
        "interface[0].addresses",
        "unknown field",
    );
    assert_error(
        "[[route]]\nprefix = \"10.0.0.0/8\"\nblackhole = true\n[[route]]\nprefix = \"10.0.0.0/8\"\ngateway = \"1.1.1.1\"\n",
        6,
        1,
        "route[1].gateway",
        "unknown field `gateway`",
    );
    assert_error(
        "[[route]]\nprefix = \"10.0.0.0/8\"\nnext-hop = [{ via = \"1.1.1.1\" }, { via = \"1.1.1.2\", wieght = 2 }]\n",
        3,
        53,
        "route[0].next-hop[1].wieght",
        "unknown field `wieght`",
    );
    assert_error(
        "[bgp]\nenabled = false\nasn = 65000\n",
        3,
        1,
        "bgp.asn",
        "unknown field `asn`",
    );
}

#[test]
fn missing_required_fields() {
    assert_error(
        "[[route]]\nvia = \"1.1.1.1\"\n",
        1,
        1,
        "route[0]",
        "missing field `prefix`",
    );
    assert_error(
        "[[interface]]\nmtu = 1500\n",
        1,
        1,
        "interface[0]",
        "missing field `name`",
    );
}

// ---- [router] ----

#[test]
fn bad_instance_names() {
    assert_error(
        "[router]\ninstance = \"\"\n",
        2,
        12,
        "router.instance",
        "not a valid instance name",
    );
    assert_error(
        "[router]\ninstance = \"a/b\"\n",
        2,
        12,
        "router.instance",
        "not a valid instance name",
    );
    let long = "a".repeat(33);
    assert_error(
        &format!("[router]\ninstance = \"{long}\"\n"),
        2,
        12,
        "router.instance",
        "1 to 32",
    );
    let max = "a".repeat(32);
    assert_eq!(
        parse(&format!("[router]\ninstance = \"{max}\"\n"), "t")
            .unwrap()
            .router
            .instance,
        max
    );
}

#[test]
fn directories_must_be_absolute() {
    assert_error(
        "[router]\nrun-dir = \"run\"\n",
        2,
        11,
        "router.run-dir",
        "not an absolute path",
    );
    assert_error(
        "[router]\nshm-dir = \"\"\n",
        2,
        11,
        "router.shm-dir",
        "not an absolute path",
    );
}

// ---- [[interface]] ----

#[test]
fn bad_interface_names() {
    let cases = [
        ("", "empty"),
        ("abcdefghijklmnop", "longer than 15"),
        ("a/b", "'/'"),
        ("a b", "' '"),
        ("..", ""),
    ];
    for (name, why) in cases {
        let text = format!("[[interface]]\nname = \"{name}\"\n");
        let e = assert_error(
            &text,
            2,
            8,
            "interface[0].name",
            &format!("{name:?} is not a valid interface name: "),
        );
        assert!(e.message.contains(why), "{e}");
    }
    // 15 bytes is the limit.
    assert!(parse("[[interface]]\nname = \"abcdefghijklmno\"\n", "t").is_ok());
}

#[test]
fn duplicate_interface_name() {
    let e = assert_error(
        "[[interface]]\nname = \"eth0\"\n[[interface]]\nname = \"eth1\"\n[[interface]]\nname = \"eth0\"\n",
        6,
        8,
        "interface[2].name",
        "already defined",
    );
    assert!(e.message.contains("interface[0]"), "{e}");
}

#[test]
fn bad_interface_addresses() {
    let at = |address: &str, message: &str| {
        assert_error(
            &format!("[[interface]]\nname = \"e\"\naddress = [\"192.0.2.9/24\", \"{address}\"]\n"),
            3,
            28,
            "interface[0].address[1]",
            message,
        );
    };
    at("192.0.2.300/24", "is not an address with a prefix length");
    at("10.0.0.1", "has no prefix length (write e.g. 10.0.0.1/24)");
    at("2001:db8::1", "has no prefix length (write e.g. 2001:db8::1/64)");
    at("10.0.0.1/33", "is not an address with a prefix length");
    at("10.0.0.0/24", "10.0.0.0/24 is a network address");
    at("0.0.0.0/0", "not a unicast address");
    at("224.0.0.5/24", "not a unicast address");
    at("ff02::1/64", "not a unicast address");
    at("::/64", "not a unicast address");
}

#[test]
fn host_part_zero_is_fine_for_31_32_and_ipv6() {
    let config = parse(
        "[[interface]]\nname = \"e\"\naddress = [\"10.0.0.0/31\", \"10.0.1.0/32\", \"2001:db8::/64\"]\n",
        "t",
    )
    .unwrap();
    assert_eq!(config.interfaces[0].addresses.len(), 3);
}

#[test]
fn duplicate_addresses() {
    let e = assert_error(
        "[[interface]]\nname = \"a\"\naddress = [\"10.0.0.1/24\"]\n[[interface]]\nname = \"b\"\naddress = [\"10.0.0.1/16\"]\n",
        6,
        12,
        "interface[1].address[0]",
        "10.0.0.1 is already assigned to interface[0] (\"a\")",
    );
    assert!(e.message.contains("interface[0]"));
    assert_error(
        "[[interface]]\nname = \"a\"\naddress = [\"10.0.0.1/24\", \"10.0.0.1/24\"]\n",
        3,
        27,
        "interface[0].address[1]",
        "already address[0] of this interface",
    );
}

#[test]
fn mtu_range() {
    let mtu = |address: &str, mtu: i64| {
        format!("[[interface]]\nname = \"e\"\naddress = [\"{address}\"]\nmtu = {mtu}\n")
    };
    assert_error(
        &mtu("10.0.0.1/24", 67),
        4,
        7,
        "interface[0].mtu",
        "between 68 and 65535, not 67",
    );
    assert_error(
        &mtu("10.0.0.1/24", 65536),
        4,
        7,
        "interface[0].mtu",
        "between 68 and 65535",
    );
    assert_error(
        &mtu("10.0.0.1/24", -1),
        4,
        7,
        "interface[0].mtu",
        "between 68 and 65535",
    );
    assert_error(
        &mtu("2001:db8::1/64", 1279),
        4,
        7,
        "interface[0].mtu",
        "at least 1280",
    );
    assert_eq!(
        parse(&mtu("2001:db8::1/64", 1280), "t").unwrap().interfaces[0].mtu,
        Some(1280)
    );
    assert_eq!(
        parse(&mtu("10.0.0.1/24", 68), "t").unwrap().interfaces[0].mtu,
        Some(68)
    );
    assert_eq!(
        parse(&mtu("10.0.0.1/24", 65535), "t").unwrap().interfaces[0].mtu,
        Some(65535)
    );
}

// ---- [[route]] ----

#[test]
fn bad_prefixes() {
    let at = |prefix: &str, message: &str| {
        assert_error(
            &format!("[[route]]\nprefix = \"{prefix}\"\nblackhole = true\n"),
            2,
            10,
            "route[0].prefix",
            message,
        )
    };
    at(
        "198.51.100.1/24",
        "198.51.100.1/24 has host bits set; did you mean 198.51.100.0/24?",
    );
    at("2001:db8::1/32", "did you mean 2001:db8::/32?");
    at(
        "10.0.0.0",
        "has no prefix length (write 10.0.0.0/32 for a host route)",
    );
    at("ten", "is not a prefix");
}

#[test]
fn default_routes_are_allowed() {
    let config =
        parse("[[route]]\nprefix = \"0.0.0.0/0\"\nblackhole = true\n[[route]]\nprefix = \"::/0\"\nunreachable = true\n", "t")
            .unwrap();
    assert_eq!(config.routes[0].prefix, net("0.0.0.0/0"));
    assert_eq!(config.routes[1].target, StaticTarget::Unreachable);
}

#[test]
fn route_without_target() {
    let text = with_ifaces("[[route]]\nprefix = \"10.0.0.0/8\"\n");
    assert_error(&text, 8, 1, "route[0]", "no target");
    // `blackhole = false` is not a target.
    let text = with_ifaces("[[route]]\nprefix = \"10.0.0.0/8\"\nblackhole = false\n");
    assert_error(&text, 8, 1, "route[0]", "no target");
}

#[test]
fn route_with_two_targets() {
    let text = with_ifaces(
        "[[route]]\nprefix = \"10.0.0.0/8\"\nvia = \"192.0.2.2\"\nnext-hop = [{ via = \"192.0.2.3\" }]\n",
    );
    assert_error(&text, 11, 12, "route[0].next-hop", "cannot be combined with via");
    let text = with_ifaces("[[route]]\nprefix = \"10.0.0.0/8\"\nblackhole = true\nunreachable = true\n");
    assert_error(
        &text,
        11,
        15,
        "route[0].unreachable",
        "cannot be combined with blackhole",
    );
    let text = with_ifaces("[[route]]\nprefix = \"10.0.0.0/8\"\ninterface = \"eth1\"\nblackhole = true\n");
    assert_error(
        &text,
        11,
        13,
        "route[0].blackhole",
        "cannot be combined with interface",
    );
    let text = with_ifaces(
        "[[route]]\nprefix = \"10.0.0.0/8\"\nnext-hop = [{ via = \"192.0.2.3\" }]\ninterface = \"eth1\"\n",
    );
    assert_error(
        &text,
        11,
        13,
        "route[0].interface",
        "cannot be combined with next-hop",
    );
    // A false flag next to a real target is fine.
    let text = with_ifaces("[[route]]\nprefix = \"10.0.0.0/8\"\nvia = \"192.0.2.2\"\nblackhole = false\n");
    assert!(parse(&text, "t").is_ok());
}

#[test]
fn next_hop_list_errors() {
    let text = with_ifaces("[[route]]\nprefix = \"10.0.0.0/8\"\nnext-hop = []\n");
    assert_error(&text, 10, 12, "route[0].next-hop", "is empty");

    let hops = |n: usize| {
        let list: Vec<String> = (0..n)
            .map(|i| format!("{{ via = \"10.{}.{}.1\" }}", i / 256, i % 256))
            .collect();
        format!(
            "[[route]]\nprefix = \"172.16.0.0/12\"\nnext-hop = [\n{}\n]\n",
            list.join(",\n")
        )
    };
    let text = hops(65);
    assert_error(&text, 68, 1, "route[0].next-hop[64]", "at most 64 next hops");
    let config = parse(&hops(64), "t").unwrap();
    assert!(matches!(&config.routes[0].target, StaticTarget::NextHops(h) if h.len() == 64));

    let text = with_ifaces(
        "[[route]]\nprefix = \"10.0.0.0/8\"\nnext-hop = [\n  { via = \"192.0.2.2\", interface = \"eth1\" },\n  { via = \"192.0.2.3\" },\n  { interface = \"eth1\", via = \"192.0.2.2\", weight = 3 },\n]\n",
    );
    let e = assert_error(&text, 13, 3, "route[0].next-hop[2]", "duplicate next hop");
    assert!(e.message.contains("next-hop[0]"), "{e}");
    // The same gateway through different interfaces is two next hops.
    let text = with_ifaces(
        "[[route]]\nprefix = \"10.0.0.0/8\"\nnext-hop = [{ via = \"192.0.2.2\", interface = \"eth1\" }, { via = \"192.0.2.2\" }]\n",
    );
    assert!(parse(&text, "t").is_ok());

    let text = with_ifaces(
        "[[route]]\nprefix = \"10.0.0.0/8\"\nnext-hop = [{ via = \"192.0.2.2\" }, { weight = 2 }]\n",
    );
    assert_error(
        &text,
        10,
        36,
        "route[0].next-hop[1]",
        "needs via, interface or both",
    );
}

#[test]
fn next_hops_as_an_array_of_tables() {
    let text = with_ifaces(
        "[[route]]\nprefix = \"10.0.0.0/8\"\n[[route.next-hop]]\nvia = \"192.0.2.2\"\n[[route.next-hop]]\ninterface = \"eth2\"\nweight = 3\n",
    );
    let config = parse(&text, "t").unwrap();
    assert_eq!(
        config.routes[0].target,
        StaticTarget::NextHops(vec![hop(Some("192.0.2.2"), None, 1), hop(None, Some("eth2"), 3)])
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for (open, close) in [("[", "]"), ("{ a = ", "}")] {
        let text = format!("x = {}1{}\n", open.repeat(100_000), close.repeat(100_000));
        let e = parse(&text, "t").unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
    }
}

#[test]
fn weights() {
    let text = |w: i64| {
        with_ifaces(&format!(
            "[[route]]\nprefix = \"10.0.0.0/8\"\nnext-hop = [{{ via = \"192.0.2.2\" }}, {{ via = \"192.0.2.3\", weight = {w} }}]\n"
        ))
    };
    assert_error(
        &text(0),
        10,
        66,
        "route[0].next-hop[1].weight",
        "between 1 and 255, not 0",
    );
    assert_error(
        &text(256),
        10,
        66,
        "route[0].next-hop[1].weight",
        "between 1 and 255, not 256",
    );
    let config = parse(&text(255), "t").unwrap();
    assert_eq!(
        config.routes[0].target,
        StaticTarget::NextHops(vec![
            hop(Some("192.0.2.2"), None, 1),
            hop(Some("192.0.2.3"), None, 255)
        ])
    );
}

#[test]
fn bad_gateways() {
    let at = |via: &str, message: &str| {
        let text = format!("{}[[route]]\nprefix = \"10.0.0.0/8\"\nvia = \"{via}\"\n", IFACES);
        assert_error(&text, 10, 7, "route[0].via", message);
    };
    at("192.0.2.300", "\"192.0.2.300\" is not an IP address");
    at("192.0.2.2/24", "a gateway has no prefix length");
    at(
        "2001:db8::1",
        "2001:db8::1 is an IPv6 address but the prefix 10.0.0.0/8 is IPv4",
    );
    at("0.0.0.0", "not a unicast address");
    at("255.255.255.255", "not a unicast address");
    at("224.0.0.9", "not a unicast address");
    at(
        "192.0.2.1",
        "192.0.2.1 is this router's own address (interface[0], \"eth1\")",
    );

    let text = with_ifaces("[[route]]\nprefix = \"2001:db8:ff::/48\"\nnext-hop = [{ via = \"2001:db8:1::2\" }, { via = \"10.0.0.1\" }]\n");
    assert_error(
        &text,
        10,
        48,
        "route[0].next-hop[1].via",
        "10.0.0.1 is an IPv4 address but the prefix 2001:db8:ff::/48 is IPv6",
    );
}

#[test]
fn link_local_gateway_needs_an_interface() {
    let text = with_ifaces("[[route]]\nprefix = \"2001:db8:ff::/48\"\nvia = \"fe80::1\"\n");
    assert_error(&text, 10, 7, "route[0].via", "link-local");
    let text = with_ifaces("[[route]]\nprefix = \"2001:db8:ff::/48\"\nnext-hop = [{ via = \"febf::1\" }]\n");
    assert_error(&text, 10, 21, "route[0].next-hop[0].via", "link-local");
    // fec0:: is outside fe80::/10.
    assert!(parse(
        &with_ifaces("[[route]]\nprefix = \"2001:db8:ff::/48\"\nvia = \"fec0::1\"\n"),
        "t"
    )
    .is_ok());
    let config = parse(
        &with_ifaces("[[route]]\nprefix = \"2001:db8:ff::/48\"\nvia = \"fe80::1\"\ninterface = \"eth1\"\n"),
        "t",
    )
    .unwrap();
    assert_eq!(
        config.routes[0].target,
        StaticTarget::NextHops(vec![hop(Some("fe80::1"), Some("eth1"), 1)])
    );
}

#[test]
fn route_interface_must_exist() {
    let text = with_ifaces("[[route]]\nprefix = \"10.0.0.0/8\"\nvia = \"192.0.2.2\"\ninterface = \"eth3\"\n");
    assert_error(
        &text,
        11,
        13,
        "route[0].interface",
        "interface \"eth3\" is not defined in [[interface]]",
    );
    let text = with_ifaces("[[route]]\nprefix = \"10.0.0.0/8\"\nnext-hop = [{ interface = \"eth1\" }, { interface = \"eth9\" }]\n");
    assert_error(
        &text,
        10,
        51,
        "route[0].next-hop[1].interface",
        "\"eth9\" is not defined",
    );
}

#[test]
fn duplicate_static_route() {
    let text = with_ifaces(
        "[[route]]\nprefix = \"10.0.0.0/8\"\nvia = \"192.0.2.2\"\n[[route]]\nprefix = \"10.0.0.0/8\"\nvia = \"192.0.2.3\"\ndistance = 5\n[[route]]\nprefix = \"10.0.0.0/8\"\nblackhole = true\ndistance = 1\n",
    );
    let e = assert_error(&text, 16, 10, "route[2].prefix", "already has prefix");
    assert!(
        e.message
            .contains("route[0] already has prefix 10.0.0.0/8 with distance 1"),
        "{e}"
    );
}

#[test]
fn distance_and_metric_ranges() {
    let text = |key: &str, value: i64| {
        format!("[[route]]\nprefix = \"10.0.0.0/8\"\nblackhole = true\n{key} = {value}\n")
    };
    assert_error(
        &text("distance", 0),
        4,
        12,
        "route[0].distance",
        "between 1 and 255, not 0",
    );
    assert_error(
        &text("distance", 256),
        4,
        12,
        "route[0].distance",
        "between 1 and 255",
    );
    assert_error(
        &text("metric", -1),
        4,
        10,
        "route[0].metric",
        "between 0 and 4294967295, not -1",
    );
    assert_error(
        &text("metric", 1 << 32),
        4,
        10,
        "route[0].metric",
        "between 0 and 4294967295",
    );
    let config = parse(&text("distance", 255), "t").unwrap();
    assert_eq!((config.routes[0].distance, config.routes[0].metric), (255, 0));
}

// ---- protocol sections ----

#[test]
fn protocols_are_not_implemented_yet() {
    for name in ["rip", "ospf"] {
        let e = assert_error(
            &format!("[{name}]\nenabled = true\n"),
            2,
            11,
            &format!("{name}.enabled"),
            &format!("{name} is not implemented yet"),
        );
        assert_eq!(e.message, format!("{name} is not implemented yet"));
    }
}

// ---- bgp ----

const BGP: &str = r#"
[[interface]]
name = "eth1"
address = ["192.0.2.1/24", "2001:db8:1::1/64"]

[bgp]
enabled = true
local-as = 4200000000
hold-time = 30
connect-retry = 5
multipath = true
network = ["203.0.113.0/24", "2001:db8:f::/48"]

[[bgp.neighbor]]
address = "192.0.2.2"
remote-as = 64501
description = "transit"
import = "all"
max-prefixes = 2000000

[[bgp.neighbor]]
address = "2001:db8:1::3"
remote-as = 4200000000
local-address = "2001:db8:1::1"
next-hop-self = true
families = ["ipv6-unicast", "ipv4-unicast"]
keepalive = 5
"#;

#[test]
fn bgp_parses_with_its_defaults_and_round_trips() {
    let config = parse(BGP, "t").unwrap();
    let bgp = &config.bgp;
    assert!(bgp.enabled);
    assert_eq!(bgp.local_as, 4_200_000_000);
    assert_eq!(bgp.router_id, None);
    assert_eq!((bgp.hold_time, bgp.keepalive, bgp.connect_retry), (30, None, 5));
    assert!(bgp.multipath && bgp.listen && bgp.port == 179);
    assert_eq!(bgp.networks, vec![net("203.0.113.0/24"), net("2001:db8:f::/48")]);
    let ebgp = &bgp.neighbors[0];
    assert_eq!(ebgp.import, PolicyRef::All);
    // RFC 8212: an eBGP neighbour without an export policy gets nothing.
    assert_eq!(ebgp.export, PolicyRef::None);
    assert_eq!(ebgp.families, vec![crate::bgp::types::Family::Ipv4Unicast]);
    assert_eq!(ebgp.max_prefixes, Some(2_000_000));
    let ibgp = &bgp.neighbors[1];
    assert!(ibgp.is_ibgp(bgp.local_as) && ibgp.next_hop_self);
    assert_eq!(
        (ibgp.import.clone(), ibgp.export.clone()),
        (PolicyRef::All, PolicyRef::All)
    );
    assert_eq!(ibgp.keepalive, Some(5));
    assert_eq!(ibgp.local_address, Some(ip("2001:db8:1::1")));
    let again = parse(&config.to_toml(), "rendered").unwrap();
    assert_eq!(again, config);
}

#[test]
fn bgp_errors_point_at_the_value() {
    let with = |extra: &str| {
        format!(
            "[[interface]]\nname = \"eth1\"\naddress = [\"192.0.2.1/24\"]\n\n[bgp]\nenabled = true\n{extra}"
        )
    };
    assert_error(&with(""), 6, 11, "bgp.local-as", "required when BGP is enabled");
    assert_error(
        &with("local-as = 0\n"),
        7,
        12,
        "bgp.local-as",
        "between 1 and 4294967295",
    );
    assert_error(
        &with("local-as = 1\nhold-time = 2\n"),
        8,
        13,
        "bgp.hold-time",
        "0 (no keepalives) or 3",
    );
    assert_error(
        &with("local-as = 1\nhold-time = 9\nkeepalive = 4\n"),
        9,
        13,
        "bgp.keepalive",
        "more than a third",
    );
    assert_error(
        &with("local-as = 1\nrouter-id = \"0.0.0.0\"\n"),
        8,
        13,
        "bgp.router-id",
        "not a non-zero IPv4",
    );
    assert_error(
        &with("local-as = 1\nnetwork = [\"10.0.0.1/8\"]\n"),
        8,
        12,
        "bgp.network[0]",
        "host bits",
    );
    let nb = |body: &str| with(&format!("local-as = 1\n[[bgp.neighbor]]\n{body}"));
    assert_error(
        &nb("address = \"x\"\nremote-as = 2\n"),
        9,
        11,
        "bgp.neighbor[0].address",
        "not an IP address",
    );
    assert_error(
        &nb("address = \"192.0.2.1\"\nremote-as = 2\n"),
        9,
        11,
        "bgp.neighbor[0].address",
        "router's own",
    );
    assert_error(
        &nb("address = \"192.0.2.2\"\nremote-as = 2\nnext-hop-self = true\n"),
        11,
        17,
        "bgp.neighbor[0].next-hop-self",
        "iBGP neighbors only",
    );
    assert_error(
        &nb("address = \"192.0.2.2\"\nremote-as = 2\nlocal-address = \"192.0.2.9\"\n"),
        11,
        17,
        "bgp.neighbor[0].local-address",
        "not an address of any",
    );
    assert_error(
        &nb("address = \"192.0.2.2\"\nremote-as = 2\nfamilies = [\"ipv4\"]\n"),
        11,
        13,
        "bgp.neighbor[0].families[0]",
        "not a family",
    );
    assert_error(
        &nb("address = \"192.0.2.2\"\nremote-as = 2\nimport = \"\"\n"),
        11,
        10,
        "bgp.neighbor[0].import",
        "is empty",
    );
    assert_error(
        &nb("address = \"192.0.2.2\"\nremote-as = 2\n[[bgp.neighbor]]\naddress = \"192.0.2.2\"\nremote-as = 3\n"),
        12,
        11,
        "bgp.neighbor[1].address",
        "already defined by bgp.neighbor[0]",
    );
    // No IPv4 address to take a router ID from.
    assert_error(
        "[bgp]\nenabled = true\nlocal-as = 1\n",
        2,
        11,
        "bgp.router-id",
        "is required",
    );
    // Disabled, the section may be incomplete.
    assert!(!parse("[bgp]\nenabled = false\n", "t").unwrap().bgp.enabled);
}

// ---- properties ----

/// Whatever `parse` says about text, it says it without panicking, and a position it reports is
/// inside the text.
fn check_no_panic(text: &str) {
    match parse(text, "fuzz") {
        Ok(config) => {
            // Whatever parses renders to text that parses to the same thing.
            assert_eq!(parse(&config.to_toml(), "rendered").as_ref(), Ok(&config));
        }
        Err(e) => {
            let lines = text.split('\n').count();
            if let Some(line) = e.line {
                assert!(line >= 1 && line <= lines, "{e} (the text has {lines} lines)");
                assert!(e.column.is_some_and(|c| c >= 1));
            }
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }
}

/// Text shaped like a configuration: tables with their own keys, good and bad values mixed, and
/// now and then a line of junk, so that most cases get past the TOML and serde layer and into
/// the semantic checks.
fn config_soup() -> impl Strategy<Value = String> {
    /// One table: its header, then for each key the values to pick from.
    type Schema = (&'static str, &'static [(&'static str, &'static [&'static str])]);
    const TABLES: &[Schema] = &[
        (
            "[router]",
            &[
                ("instance", &["\"r1\"", "\"r 1\""]),
                ("run-dir", &["\"/run/x\"", "\"x\""]),
            ],
        ),
        (
            "[[interface]]",
            &[
                ("name", &["\"eth1\"", "\"eth2\"", "\"a/b\""]),
                (
                    "address",
                    &[
                        "[\"192.0.2.1/24\", \"2001:db8::1/64\"]",
                        "[\"192.0.2.0/24\"]",
                        "[\"198.18.0.1/31\"]",
                        "[\"192.0.2.1/24\"]",
                    ],
                ),
                ("mtu", &["1500", "1279", "9000"]),
            ],
        ),
        (
            "[[route]]",
            &[
                (
                    "prefix",
                    &[
                        "\"198.51.100.0/24\"",
                        "\"2001:db8:1::/48\"",
                        "\"10.0.0.1/8\"",
                        "\"0.0.0.0/0\"",
                    ],
                ),
                (
                    "via",
                    &[
                        "\"192.0.2.2\"",
                        "\"192.0.2.1\"",
                        "\"fe80::1\"",
                        "\"2001:db8::2\"",
                        "\"192.0.2.300\"",
                    ],
                ),
                ("interface", &["\"eth1\"", "\"eth2\"", "\"eth9\""]),
                (
                    "next-hop",
                    &[
                        "[{ via = \"192.0.2.2\" }, { via = \"192.0.2.3\", weight = 2 }]",
                        "[{ via = \"192.0.2.2\" }, { via = \"192.0.2.2\" }]",
                        "[{ via = \"fe80::2\", interface = \"eth1\" }]",
                        "[{ interface = \"eth1\", weight = 0 }]",
                        "[{}]",
                        "[]",
                    ],
                ),
                ("blackhole", &["true", "false"]),
                ("unreachable", &["true"]),
                ("distance", &["1", "5", "0"]),
                ("metric", &["7"]),
            ],
        ),
        ("[rip]", &[("enabled", &["false", "true"])]),
        (
            "[metrics]",
            &[
                ("enabled", &["false", "true"]),
                (
                    "listen",
                    &[
                        "\"127.0.0.1:9100\"",
                        "\"[::1]:1\"",
                        "\"::1\"",
                        "\"x:1\"",
                        "\"0.0.0.0:0\"",
                    ],
                ),
            ],
        ),
        (
            "[bgp]",
            &[
                ("enabled", &["false", "true"]),
                ("local-as", &["1", "0", "4294967296"]),
                ("hold-time", &["0", "2", "90"]),
                ("keepalive", &["30", "31"]),
                ("router-id", &["\"192.0.2.1\"", "\"x\""]),
                ("network", &["[\"198.51.100.0/24\"]", "[\"198.51.100.1/24\"]"]),
            ],
        ),
        (
            "[[bgp.neighbor]]",
            &[
                ("address", &["\"192.0.2.2\"", "\"2001:db8::2\"", "\"bad\""]),
                ("remote-as", &["1", "2", "0"]),
                ("import", &["\"all\"", "\"none\"", "\"p\""]),
                ("families", &["[\"ipv6-unicast\"]", "[]"]),
                ("next-hop-self", &["true"]),
            ],
        ),
    ];
    let table = (
        0..TABLES.len(),
        proptest::collection::vec(any::<prop::sample::Index>(), 8),
        any::<u8>(),
    );
    proptest::collection::vec(table, 0..8).prop_map(|tables| {
        let mut text = String::new();
        let mut seen = Vec::new();
        for (t, picks, junk) in tables {
            let (header, keys) = TABLES[t];
            // A table like [router] may appear only once: skip the repeats.
            if !header.starts_with("[[") && seen.contains(&t) {
                continue;
            }
            seen.push(t);
            text.push_str(header);
            text.push('\n');
            for (k, ((key, values), pick)) in keys.iter().zip(&picks).enumerate() {
                // The first key of an array table is required (name, prefix); of the others about
                // one in three is left out.
                let choices = if k == 0 && header.starts_with("[[") {
                    values.len()
                } else {
                    values.len() * 3 / 2 + 1
                };
                let i = pick.index(choices);
                if let Some(value) = values.get(i) {
                    text.push_str(&format!("{key} = {value}\n"));
                }
            }
            match junk {
                0 => text.push_str("é = 1\n"),
                1 => text.push_str("= \"\n"),
                2 => text.push_str("[\n"),
                _ => {}
            }
        }
        text
    })
}

/// A valid configuration, built so that no check can fail.
fn valid_config() -> impl Strategy<Value = Config> {
    let interfaces = proptest::collection::vec((0usize..3, proptest::option::of(1280u32..=9216)), 0..4);
    let routes = proptest::collection::vec(
        (
            any::<bool>(),
            0usize..3,
            proptest::collection::vec((1u32..=255, any::<bool>()), 1..4),
            1u8..=255,
            any::<u32>(),
        ),
        0..6,
    );
    ("[a-zA-Z0-9_-]{1,32}", interfaces, routes).prop_map(|(instance, interfaces, routes)| {
        let interfaces: Vec<InterfaceConfig> = interfaces
            .into_iter()
            .enumerate()
            .map(|(i, (n, mtu))| InterfaceConfig {
                name: format!("eth{i}"),
                addresses: (0..n)
                    .flat_map(|j| {
                        [
                            net(&format!("10.{i}.{j}.1/24")),
                            net(&format!("2001:db8:{i}:{j}::1/64")),
                        ]
                    })
                    .collect(),
                mtu,
            })
            .collect();
        let routes = routes
            .into_iter()
            .enumerate()
            .map(|(k, (v6, kind, hops, distance, metric))| {
                let prefix = if v6 {
                    net(&format!("2001:db8:ff{k}::/48"))
                } else {
                    net(&format!("198.51.{k}.0/24"))
                };
                let target = match kind {
                    0 => StaticTarget::Blackhole,
                    1 => StaticTarget::Unreachable,
                    _ => StaticTarget::NextHops(
                        hops.into_iter()
                            .enumerate()
                            .map(|(h, (weight, on_link))| StaticNextHop {
                                via: Some(if v6 {
                                    ip(&format!("2001:db8:ee::{}", h + 1))
                                } else {
                                    ip(&format!("172.16.{k}.{}", h + 1))
                                }),
                                interface: interfaces.first().filter(|_| on_link).map(|i| i.name.clone()),
                                weight,
                            })
                            .collect(),
                    ),
                };
                StaticRoute {
                    prefix,
                    target,
                    distance,
                    metric,
                }
            })
            .collect();
        Config {
            router: Router {
                instance,
                ..Router::default()
            },
            interfaces,
            routes,
            ..Config::default()
        }
    })
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,300}") {
        check_no_panic(&text);
    }

    #[test]
    fn config_like_text_never_panics(text in config_soup()) {
        check_no_panic(&text);
    }

    #[test]
    fn mutated_example_never_panics(at in 0usize..EXAMPLE.len(), cut in 0usize..20, insert in ".{0,12}") {
        let start = (0..=at).rev().find(|&i| EXAMPLE.is_char_boundary(i)).unwrap_or(0);
        let end = (start + cut..=EXAMPLE.len()).find(|&i| EXAMPLE.is_char_boundary(i)).unwrap_or(EXAMPLE.len());
        let text = format!("{}{insert}{}", &EXAMPLE[..start], &EXAMPLE[end..]);
        check_no_panic(&text);
    }

    #[test]
    fn valid_configs_round_trip(config in valid_config()) {
        let text = config.to_toml();
        prop_assert_eq!(parse(&text, "rendered"), Ok(config), "{}", text);
    }
}

#[test]
fn route_files_parse_with_their_defaults_and_errors() {
    let text = "[[route-file]]\npath = \"table.txt.gz\"\nvia = [\"192.0.2.2\", \"2001:db8::2\"]\ndistance = 200\n\n[[route-file]]\npath = \"/x\"\n";
    let c = parse(text, "t.toml").unwrap();
    assert_eq!(c.route_files.len(), 2);
    assert_eq!(c.route_files[0].path, std::path::PathBuf::from("table.txt.gz"));
    assert_eq!(c.route_files[0].via.len(), 2);
    assert_eq!(c.route_files[0].distance, 200);
    assert_eq!(c.route_files[1].distance, 1);
    assert_eq!(parse(&c.to_toml(), "again").unwrap(), c);
    let err = parse(
        "[[route-file]]\npath = \"/x\"\nvia = [\"192.0.2.2\", \"192.0.2.3\"]\n",
        "t.toml",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "t.toml:3:21: route-file[0].via[1]: a second IPv4 default gateway (192.0.2.2 is already given)"
    );
    let err = parse("[[route-file]]\npath = \"/x\"\ndistance = 0\n", "t.toml").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("t.toml:3:12: route-file[0].distance: must be between 1 and 255"),
        "{err}"
    );
    let err = parse("[[route-file]]\nvia = []\n", "t.toml").unwrap_err();
    assert!(err.to_string().contains("path"), "{err}");
}

#[test]
fn metrics_listen_parses_renders_and_points_at_bad_addresses() {
    let c = parse("[metrics]\nlisten = \"[::1]:9100\"\n", "t.toml").unwrap();
    assert!(c.metrics.enabled, "listen alone keeps the default enabled = true");
    assert_eq!(c.metrics.listen, "[::1]:9100".parse().unwrap());
    assert_eq!(parse(&c.to_toml(), "rendered").unwrap(), c);
    let c = parse("[metrics]\nenabled = false\n", "t.toml").unwrap();
    assert_eq!(
        c.metrics,
        MetricsConfig {
            enabled: false,
            ..MetricsConfig::default()
        }
    );
    assert_eq!(parse(&c.to_toml(), "rendered").unwrap(), c);

    assert_error(
        "[metrics]\nlisten = \"localhost:9842\"\n",
        2,
        10,
        "metrics.listen",
        "\"localhost:9842\" is not an IP address and port (e.g. 127.0.0.1:9842 or [::1]:9842; host names",
    );
    assert_error(
        "[metrics]\nlisten = \"127.0.0.1\"\n",
        2,
        10,
        "metrics.listen",
        "has no port",
    );
    // An IPv6 address and port without brackets is an IPv6 address with no port.
    assert_error(
        "[metrics]\nlisten = \"::1:9842\"\n",
        2,
        10,
        "metrics.listen",
        "has no port (an IPv6 address with a port is written in brackets: [::1:9842]:9842)",
    );
    assert_error(
        "[metrics]\nlisten = \"127.0.0.1:0\"\n",
        2,
        10,
        "metrics.listen",
        "port 0",
    );
    assert_error(
        "[metrics]\nlisten = \"224.0.0.1:9842\"\n",
        2,
        10,
        "metrics.listen",
        "not an address to listen on",
    );
    assert_error(
        "[metrics]\nlisten = 9842\n",
        2,
        10,
        "metrics.listen",
        "invalid type",
    );
    assert_error(
        "[metrics]\nport = 1\n",
        2,
        1,
        "metrics.port",
        "unknown field `port`",
    );
}
