// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Helpers of scripts/bench-forward.sh and scripts/bench-rfc2544.sh (not part of the router).
//
// bench_wire (XDP), the generator's "wire": attached to the generator's side of a veth pair, it
//   redirects every frame out of another veth whose peer is the router's port. The router then
//   receives XDP frames that no socket owns, as it would from a NIC. Why the extra hop:
//   trafgen's skbs keep its packet socket's send buffer charged until the router's IP layer
//   takes them. When the router's receive NAPI runs on a core of its own and falls behind, a
//   few hundred skbs waiting in the veth ring exhaust the buffer, trafgen's sendto() fails with
//   EAGAIN and trafgen aborts; net.core.wmem_default is read-only inside a network namespace.
//
// bench_sink (tc ingress), the sink: drops the frames the router should have sent (to the
//   sink's MAC, IPv4 without options, TTL 63, UDP, to 198.18.0.0/15) before the IP layer, and
//   passes everything else on, where the sink's kernel counts it (and answers ARP). Dropped in
//   the IP layer instead, each frame would cost the sink a route lookup and a dst allocated and
//   freed through RCU (no cached route for an unreachable destination), several times what the
//   generator spends to send it.
//
// scripts/lib/bench-topology.sh compiles it with -DWIRE_IFINDEX=<ifindex of the output veth>
// and -DSINK_MAC0=0x.. to -DSINK_MAC5=0x.. (the sink's MAC, byte by byte).

#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#define SEC(name) __attribute__((section(name), used))

static long (*bpf_redirect)(__u32 ifindex, __u64 flags) = (void *)BPF_FUNC_redirect;

SEC("xdp")
int bench_wire(struct xdp_md *ctx)
{
	(void)ctx;
	return (int)bpf_redirect(WIRE_IFINDEX, 0);
}

SEC("tc")
int bench_sink(struct __sk_buff *skb)
{
	const __u8 *p = (const __u8 *)(long)skb->data;
	const __u8 *end = (const __u8 *)(long)skb->data_end;

	// Ethernet (14) + IPv4 without options (20) + UDP (8).
	if (p + 42 > end)
		return TC_ACT_OK;
	if (p[0] != SINK_MAC0 || p[1] != SINK_MAC1 || p[2] != SINK_MAC2 || p[3] != SINK_MAC3 ||
	    p[4] != SINK_MAC4 || p[5] != SINK_MAC5)
		return TC_ACT_OK;
	if (p[12] != 0x08 || p[13] != 0x00)  // EtherType IPv4
		return TC_ACT_OK;
	if (p[14] != 0x45 || p[22] != 63 || p[23] != 17)  // version and IHL, TTL, protocol UDP
		return TC_ACT_OK;
	if (p[30] != 198 || (p[31] & 0xfe) != 18)  // destination in 198.18.0.0/15
		return TC_ACT_OK;
	return TC_ACT_SHOT;
}

char _license[] SEC("license") = "Dual BSD/GPL";
