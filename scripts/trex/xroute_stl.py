"""TRex stateless profile for benchmarking xroute on real NICs (docs/benchmarking.md).

UDP traffic through the router under test, from many flows to destinations spread over the
routing table it has loaded, so that the forwarding lookups walk the table as a core router's
do instead of hitting one cached route:

- destinations: --sample prefixes drawn (with --seed, so runs are repeatable) from --prefixes,
  a file of one prefix per line, optionally gzip-compressed, such as the real table xroute's
  tests and benchmarks load (../shared/data/fib/prefixes.txt.gz); one host address inside each
  prefix. The field engine steps through that list (a value_list flow variable), so consecutive
  packets go to different prefixes. Without --prefixes: random hosts in 198.18.0.0/15 (IPv4,
  RFC 2544's benchmarking range) and 2001:db8::/32 (IPv6), for a router with only a route there.
- flows: --flows source addresses (198.18.0.0/15 for IPv4, 2001:db8:ffff::/48 for IPv6),
  stepping independently of the destinations: lcm(flows, sample) distinct address pairs, which
  spreads the traffic over the receive queues (RSS) of the router's port.
- sizes: --size 64 (or any frame size) or imix: 64, 594 and 1518-byte frames in the ratio 7:4:1
  (the "simple IMIX"). Sizes are Ethernet frames with the FCS, as RFC 2544 counts them; TRex
  adds the 4-byte FCS. IPv6 frames are at least 78 bytes (RFC 5180's smallest for IPv6 tests:
  an IPv6 UDP packet does not fit in 64), so 64 becomes 78 for IPv6.
- families: --family 4, 6 or both (--ipv6-share of the packets for both, default 0.5).
- latency: --latency-share adds a stream of that share of the packets (e.g. 0.0001) to the first
  destination, with TRex's latency statistics (packet group 7): min/avg/max latency and jitter
  under the load of the others (`stats --fs` in the console). Default: none.

Rates are relative (packets per second in the ratio of the mix): scale them with TRex's
multiplier, e.g. `start -f xroute_stl.py -m 10mpps` or `-m 100%` (line rate). The Ethernet
addresses come from TRex's port configuration (L3 mode resolves the router's MAC by ARP, or set
dest_mac in trex_cfg.yaml), not from this file.

  trex> start -f scripts/trex/xroute_stl.py -p 0 -m 10mpps -t --size 64 --flows 65536 \\
        --prefixes /path/to/prefixes.txt.gz --sample 16384 --family 4

TRex 2.87 and later pass tunables as an argument list (`-t --size imix`), older versions as
`-t size=imix,flows=1000`; get_streams takes both. scripts/trex/check-profile.sh validates this
profile with TRex's client library from PyPI.
"""

import argparse
import gzip
import ipaddress
import random

from trex_stl_lib.api import (
    IP,
    UDP,
    CTRexVmInsFixHwCs,
    Ether,
    IPv6,
    STLFlowLatencyStats,
    STLPktBuilder,
    STLScVmRaw,
    STLStream,
    STLTXCont,
    STLVmFixChecksumHw,
    STLVmFixIpv4,
    STLVmFlowVar,
    STLVmWrFlowVar,
)

# Simple IMIX: frame sizes with the FCS and their share of the packets.
IMIX = ((64, 7), (594, 4), (1518, 1))
IPV6_MIN_FRAME = 78
# Source ranges (benchmarking and documentation ranges, RFC 2544 / RFC 3849).
SRC_V4 = ipaddress.ip_network("198.18.0.0/15")
SRC_V6 = ipaddress.ip_network("2001:db8:ffff::/48")
# Destinations when no table is given.
DEFAULT_DST = {4: ipaddress.ip_network("198.18.0.0/15"), 6: ipaddress.ip_network("2001:db8::/32")}
# A field-engine value list holds at most 65535 entries.
MAX_SAMPLE = 65535
LATENCY_PG_ID = 7
TUNABLES = ("size", "flows", "prefixes", "sample", "seed", "family", "ipv6_share", "udp_dst", "latency_share")


def parse_tunables(argv):
    p = argparse.ArgumentParser(prog="xroute_stl.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--size", default="64", help="frame size in bytes with the FCS (64-9216), or imix")
    p.add_argument("--flows", type=int, default=65536, help="number of source addresses (1-131072)")
    p.add_argument("--prefixes", default="", help="file of destination prefixes, one per line (.gz allowed)")
    p.add_argument("--sample", type=int, default=4096, help=f"prefixes drawn from the file per family (1-{MAX_SAMPLE})")
    p.add_argument("--seed", type=int, default=1, help="seed of the draw (same seed, same destinations)")
    p.add_argument("--family", choices=("4", "6", "both"), default="4", help="IPv4, IPv6 or both")
    p.add_argument("--ipv6-share", type=float, default=0.5, help="share of IPv6 packets with --family both")
    p.add_argument("--udp-dst", type=int, default=9, help="UDP destination port (9: discard)")
    p.add_argument("--latency-share", type=float, default=0.0, help="share of packets in a latency-measured stream")
    args = p.parse_args(argv)
    if args.size != "imix" and not (args.size.isdigit() and 64 <= int(args.size) <= 9216):
        p.error(f"--size must be a frame size from 64 to 9216 or imix, not {args.size!r}")
    if not 1 <= args.flows <= SRC_V4.num_addresses:
        p.error(f"--flows must be within 1-{SRC_V4.num_addresses}")
    if not 1 <= args.sample <= MAX_SAMPLE:
        p.error(f"--sample must be within 1-{MAX_SAMPLE}")
    if not 0.0 < args.ipv6_share < 1.0 and args.family == "both":
        p.error("--ipv6-share must be between 0 and 1 (exclusive) with --family both")
    if not 0 <= args.udp_dst <= 65535:
        p.error("--udp-dst must be a port number")
    if not 0.0 <= args.latency_share < 0.5:
        p.error("--latency-share must be at least 0 and below 0.5")
    return args


def read_prefixes(path):
    """Prefixes of a table file by family; blank lines and # comments skipped, bad lines refused."""
    out = {4: [], 6: []}
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        for n, line in enumerate(f, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                net = ipaddress.ip_network(text.split()[0], strict=False)
            except ValueError as e:
                raise ValueError(f"{path}:{n}: not a prefix: {text!r} ({e})") from None
            # A default route or a non-unicast range says nothing about the table's spread.
            if net.prefixlen == 0 or net.is_multicast or net.is_loopback or net.is_unspecified:
                continue
            out[net.version].append(net)
    return out


def host_in(net, rng):
    """A host address inside net: random, and neither its first nor last address where it can."""
    if net.num_addresses <= 2:
        return net.network_address
    return net.network_address + rng.randrange(1, net.num_addresses - 1)


def destinations(args, family, table, rng):
    """One destination per sampled prefix (IPv4: 32-bit ints; IPv6: the upper 64 bits, as ints),
    the template address for the packet, and the prefixes they came from."""
    if table is None:
        pool = [DEFAULT_DST[family]] * args.sample
    else:
        pool = table[family]
        if not pool:
            raise ValueError(f"{args.prefixes} has no IPv{family} prefix")
        pool = rng.sample(pool, min(args.sample, len(pool)))
    hosts = [host_in(net, rng) for net in pool]
    if family == 4:
        values = [int(h) for h in hosts]
    else:
        # The flow variable writes the upper 64 bits; the template's lower 64 bits stay (::1).
        values = [int(h) >> 64 for h in hosts]
    template = ipaddress.ip_address((values[0] << 64) | 1) if family == 6 else hosts[0]
    return values, template, pool


def frame_sizes(args, family):
    mix = IMIX if args.size == "imix" else ((int(args.size), 1),)
    if family == 6:
        mix = tuple((max(size, IPV6_MIN_FRAME), share) for size, share in mix)
    return mix


def stream(family, size, pps, dst_values, dst_template, flows, udp_dst, latency=False):
    """A continuous UDP stream of size-byte frames (with FCS) with its field-engine program;
    latency: one fixed packet (no field engine) carrying TRex's latency signature instead."""
    if family == 4:
        l3 = IP(src=str(SRC_V4.network_address), dst=str(dst_template), ttl=64)
        # A zero UDP checksum is allowed over IPv4 and stays right when addresses change.
        l4 = UDP(sport=1024, dport=udp_dst, chksum=0)
        vm = [
            STLVmFlowVar(name="dst", size=4, op="inc", value_list=dst_values),
            STLVmWrFlowVar(fv_name="dst", pkt_offset="IP.dst"),
            STLVmFlowVar(name="src", size=4, op="inc", min_value=int(SRC_V4.network_address),
                         max_value=int(SRC_V4.network_address) + flows - 1),
            STLVmWrFlowVar(fv_name="src", pkt_offset="IP.src"),
            STLVmFixIpv4(offset="IP"),
        ]
    else:
        l3 = IPv6(src=str(SRC_V6.network_address), dst=str(dst_template), hlim=64)
        l4 = UDP(sport=1024, dport=udp_dst)
        vm = [
            STLVmFlowVar(name="dst", size=8, op="inc", value_list=dst_values),
            STLVmWrFlowVar(fv_name="dst", pkt_offset="IPv6.dst"),
            STLVmFlowVar(name="src", size=4, op="inc", min_value=0, max_value=flows - 1),
            STLVmWrFlowVar(fv_name="src", pkt_offset="IPv6.src", offset_fixup=12),
            # IPv6 needs a real UDP checksum (RFC 8200 section 8.1): the NIC computes it.
            STLVmFixChecksumHw(l3_offset="IPv6", l4_offset="UDP", l4_type=CTRexVmInsFixHwCs.L4_TYPE_UDP),
        ]
    base = Ether() / l3 / l4
    pad = max(0, size - 4 - len(base))  # TRex adds the FCS
    pkt = base / ("\x00" * pad)
    if latency:
        return STLStream(packet=STLPktBuilder(pkt=pkt), mode=STLTXCont(pps=pps),
                         flow_stats=STLFlowLatencyStats(pg_id=LATENCY_PG_ID))
    return STLStream(packet=STLPktBuilder(pkt=pkt, vm=STLScVmRaw(vm)), mode=STLTXCont(pps=pps))


def build_streams(args):
    rng = random.Random(args.seed)
    table = read_prefixes(args.prefixes) if args.prefixes else None
    families = {"4": ((4, 1.0),), "6": ((6, 1.0),), "both": ((4, 1.0 - args.ipv6_share), (6, args.ipv6_share))}
    streams = []
    load = 1.0 - args.latency_share
    for family, share in families[args.family]:
        values, template, _ = destinations(args, family, table, rng)
        mix = frame_sizes(args, family)
        total = sum(s for _, s in mix)
        for size, part in mix:
            # Relative rates: TRex's multiplier (-m) sets the absolute rate.
            pps = 1000.0 * load * share * part / total
            streams.append(stream(family, size, pps, values, template, args.flows, args.udp_dst))
        if args.latency_share and len(streams) == len(mix):  # once, on the first family
            streams.append(stream(family, mix[0][0], 1000.0 * args.latency_share, values, template,
                                  args.flows, args.udp_dst, latency=True))
    return streams


class XrouteProfile:
    def get_streams(self, tunables=(), direction=0, port_id=0, **kwargs):
        # Older TRex passes tunables as keyword arguments (-t size=imix,flows=1000).
        argv = list(tunables)
        for key in TUNABLES:
            if key in kwargs:
                argv += [f"--{key.replace('_', '-')}", str(kwargs.pop(key))]
        return build_streams(parse_tunables(argv))


def register():
    return XrouteProfile()
