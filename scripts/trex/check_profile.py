"""Checks scripts/trex/xroute_stl.py with TRex's own client library: the profile loads through
STLProfile.load_py as the TRex console loads it, its streams compile to the JSON the TRex
server receives (packet bytes and field-engine program), and what they would send is what the
tunables ask for. Run by scripts/trex/check-profile.sh, which provides the library.

Without a TRex server nothing is sent; what is checked is everything up to the wire: sizes,
rates, headers, the destination list (every address inside a prefix of the file), the source
range, the checksum instructions, and that bad tunables are refused.
"""

import base64
import gzip
import ipaddress
import os
import sys
import tempfile
import time

try:
    import lbr_trex_client  # noqa: F401  (sets up TRex's module paths when installed from PyPI)
except ImportError:
    pass  # TRex's own client directories on PYTHONPATH work too
from trex.stl.api import STLProfile, TRexError

HERE = os.path.dirname(os.path.abspath(__file__))
PROFILE = os.path.join(HERE, "xroute_stl.py")
ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD


def load(*tunables):
    profile = STLProfile.load_py(PROFILE, direction=0, port_id=0, tunables=list(tunables))
    if profile is None:
        raise AssertionError(f"the profile refused {tunables}")
    return profile.to_json()


def vm_vars(stream):
    return {i["name"]: i for i in stream["vm"]["instructions"] if i["type"] == "flow_var"}


def frame(stream):
    return base64.b64decode(stream["packet"]["binary"])


def check_stream(s, family, size, prefixes=None, flows=None):
    pkt = frame(s)
    assert len(pkt) + 4 == size, f"frame of {len(pkt) + 4} bytes, wanted {size}"
    ethertype = int.from_bytes(pkt[12:14], "big")
    assert ethertype == (ETH_IPV4 if family == 4 else ETH_IPV6), hex(ethertype)
    ip = pkt[14:]
    if family == 4:
        assert ip[0] == 0x45 and ip[8] == 64 and ip[9] == 17, "IPv4, no options, TTL 64, UDP"
        assert int.from_bytes(ip[2:4], "big") == size - 18, "IPv4 total length"
        assert ip[26:28] == b"\x00\x00", "UDP checksum 0 over IPv4"
    else:
        assert ip[0] >> 4 == 6 and ip[6] == 17 and ip[7] == 64, "IPv6, UDP, hop limit 64"
        assert int.from_bytes(ip[4:6], "big") == size - 18 - 40, "IPv6 payload length"
    assert s["mode"]["type"] == "continuous" and s["mode"]["rate"]["type"] == "pps"
    kinds = [i["type"] for i in s["vm"]["instructions"]]
    assert ("fix_checksum_ipv4" if family == 4 else "fix_checksum_hw") in kinds, kinds
    v = vm_vars(s)
    dsts = v["dst"]["value_list"]
    if family == 4:
        addrs = [ipaddress.IPv4Address(x) for x in dsts]
    else:
        addrs = [ipaddress.IPv6Address(x << 64 | 1) for x in dsts]
    if prefixes is not None:
        for a in addrs:
            assert any(a in p for p in prefixes), f"{a} is in none of the table's prefixes"
    if flows is not None:
        assert v["src"]["max_value"] - v["src"]["min_value"] + 1 == flows, v["src"]
    return addrs


def main():
    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="xroute-trex-")
    table = os.path.join(tmp, "prefixes.txt.gz")
    lines = ["1.0.0.0/24", "2.16.0.0/13", "# a comment", "", "0.0.0.0/0", "224.0.0.0/4", "100.64.0.0/10",
             "2001:db8:100::/40", "2a00:1450::/32", "::/0"]
    with gzip.open(table, "wt") as f:
        f.write("\n".join(lines) + "\n")
    v4 = [ipaddress.ip_network(p) for p in ("1.0.0.0/24", "2.16.0.0/13", "100.64.0.0/10")]
    v6 = [ipaddress.ip_network(p) for p in ("2001:db8:100::/40", "2a00:1450::/32")]

    # 64-byte IPv4 from the table: one stream, every destination in one of its unicast prefixes
    # (the default route and multicast left out), 1000 source addresses.
    streams = load("--size", "64", "--prefixes", table, "--sample", "3", "--flows", "1000")
    assert len(streams) == 1, len(streams)
    addrs = check_stream(streams[0], 4, 64, prefixes=v4, flows=1000)
    assert len(set(addrs)) == 3, addrs

    # IMIX, both families: 7:4:1 per family, IPv6 share 0.25, IPv6's smallest frame 78 bytes.
    streams = load("--size", "imix", "--family", "both", "--ipv6-share", "0.25", "--prefixes", table, "--flows", "7")
    assert len(streams) == 6, len(streams)
    for s, (family, size) in zip(streams, [(4, 64), (4, 594), (4, 1518), (6, 78), (6, 594), (6, 1518)]):
        check_stream(s, family, size, prefixes=v4 if family == 4 else v6, flows=7)
    rates = [s["mode"]["rate"]["value"] for s in streams]
    assert abs(rates[0] / rates[2] - 7) < 1e-9 and abs(rates[1] / rates[2] - 4) < 1e-9, rates
    assert abs(sum(rates[3:]) / sum(rates) - 0.25) < 1e-9, rates

    # The same seed draws the same destinations; another seed, others.
    a = vm_vars(load("--prefixes", table, "--sample", "2", "--seed", "5")[0])["dst"]["value_list"]
    b = vm_vars(load("--prefixes", table, "--sample", "2", "--seed", "5")[0])["dst"]["value_list"]
    assert a == b, (a, b)

    # Without a table: the benchmarking ranges.
    addrs = check_stream(load("--family", "6", "--size", "128")[0], 6, 128,
                         prefixes=[ipaddress.ip_network("2001:db8::/32")])
    addrs = check_stream(load("--sample", "100")[0], 4, 64, prefixes=[ipaddress.ip_network("198.18.0.0/15")])
    assert len(set(addrs)) > 50, "random hosts in 198.18.0.0/15"

    # A latency stream: 1% of the packets, fixed (no field engine), TRex's latency statistics.
    streams = load("--prefixes", table, "--latency-share", "0.01")
    assert len(streams) == 2, len(streams)
    check_stream(streams[0], 4, 64, prefixes=v4)
    lat = streams[1]
    assert lat["flow_stats"]["enabled"] and lat["flow_stats"]["rule_type"] == "latency", lat["flow_stats"]
    assert not lat["vm"]["instructions"], lat["vm"]
    assert abs(lat["mode"]["rate"]["value"] / streams[0]["mode"]["rate"]["value"] - 1 / 99) < 1e-9

    # Old-style tunables (keyword arguments, as TRex before 2.87 passes them).
    sys.path.insert(0, HERE)
    import xroute_stl

    old = xroute_stl.register().get_streams(direction=0, port_id=0, size="imix", flows=10)
    assert len(old) == 3, len(old)

    # Bad tunables are refused (the console shows argparse's message, silenced here).
    stderr, sys.stderr = sys.stderr, open(os.devnull, "w")
    try:
        for bad in (["--size", "10"], ["--size", "jumbo"], ["--flows", "0"], ["--sample", "70000"],
                    ["--family", "5"], ["--latency-share", "0.7"], ["--prefixes", os.path.join(tmp, "missing.txt")]):
            try:
                profile = STLProfile.load_py(PROFILE, direction=0, port_id=0, tunables=bad)
            except TRexError:
                continue
            assert profile is None, f"{bad} was accepted"
    finally:
        sys.stderr.close()
        sys.stderr = stderr
    with open(os.path.join(tmp, "bad.txt"), "w") as f:
        f.write("1.0.0.0/24\nnot-a-prefix\n")
    try:
        STLProfile.load_py(PROFILE, direction=0, port_id=0, tunables=["--prefixes", os.path.join(tmp, "bad.txt")])
        raise AssertionError("a table with a bad line was accepted")
    except TRexError as e:
        assert "bad.txt:2" in str(e), str(e)

    # The real table, when it is there (sampling 16384 prefixes per family from 1.06M).
    real = os.environ.get("TABLE") or os.path.join(HERE, "..", "..", "..", "shared", "data", "fib", "prefixes.txt.gz")
    if os.path.isfile(real):
        t = time.monotonic()
        streams = load("--prefixes", real, "--family", "both", "--sample", "16384", "--flows", "65536")
        for s, family in zip(streams, (4, 6)):
            addrs = check_stream(s, family, 64 if family == 4 else 78, flows=65536)
            # Nested prefixes can give the same host now and then.
            assert len(set(addrs)) > 0.99 * 16384, len(set(addrs))
        print(f"real table {os.path.normpath(real)}: 2 x 16384 destinations in {time.monotonic() - t:.1f} s")
    else:
        print(f"real table not found at {os.path.normpath(real)} (set TABLE): that case is not checked")

    print(f"TRex profile check: ok ({time.monotonic() - started:.1f} s)")


if __name__ == "__main__":
    main()
