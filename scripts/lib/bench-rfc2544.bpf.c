// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Helpers of scripts/bench-rfc2544.sh (not part of the router), beside bench-forward.bpf.c's
// wire and sink, which that script uses too.
//
// bench_pacer (XDP, on the generator's wire gw0, in place of bench_wire): passes frames on to
//   the router's port at PACER_RATE frames per second at most and drops the rest, so that the
//   router is offered a steady rate whatever the generator sends. Neither generator can do
//   that on veth: trafgen's --rate sends its whole second's worth of frames at full speed and
//   then sleeps for the rest of the second (a 1-second on/off burst, not a rate), and
//   dpdk-testpmd has no rate limit on net_af_xdp. The generator runs flat out and this program
//   shapes: a GCRA (the virtual-scheduling form of a token bucket) with an emission interval of
//   1e9 / PACER_RATE ns and a tolerance of PACER_TOLERANCE_NS. The tolerance is a time, not a
//   number of frames, because the wire does not run at regular intervals: its NAPI thread polls
//   every WIRE_COALESCE_US at best, and on a kernel without full preemption it waits for the
//   generator's sendto() of a whole TX ring (hundreds of microseconds with trafgen). With a
//   tolerance of a few frames, every such gap loses its share of the rate for good and the
//   pacer passes well below PACER_RATE; with a tolerance longer than the gaps it passes the rate
//   on average, in bursts no larger than the ones the plain wire passes at full rate. The script
//   measures what it really passed in each trial. The state is one variable: the wire's NAPI
//   runs on one CPU.
//
// bench_xdp_fwd (XDP, on the router's port rtr0): the XDP baseline, the ceiling of what XDP on
//   veth does per frame. IPv4 without options and with a TTL above 1: decrement the TTL (with
//   the checksum update of RFC 1624), set the sink's MAC as destination and rtr1's as source,
//   and redirect out of rtr1 (FWD_IFINDEX). No route lookup, no neighbour table: every frame
//   goes to the sink. Anything else goes to the kernel (XDP_PASS: ARP, IPv6, the router's own).
//
// The script compiles it with -DWIRE_IFINDEX (gw1), -DPACER_RATE, -DPACER_TOLERANCE_NS, -DFWD_IFINDEX
// (rtr1), -DSINK_MAC0=0x.. to -DSINK_MAC5 and -DRTR1_MAC0 to -DRTR1_MAC5 (byte by byte).

#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))

static long (*bpf_redirect)(__u32 ifindex, __u64 flags) = (void *)BPF_FUNC_redirect;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)BPF_FUNC_ktime_get_ns;

#define PACER_INTERVAL_NS (1000000000ULL / (PACER_RATE))

// Theoretical arrival time of the next conforming frame (ns, CLOCK_MONOTONIC).
static __u64 pacer_tat;

SEC("xdp")
int bench_pacer(struct xdp_md *ctx)
{
	(void)ctx;
	__u64 now = bpf_ktime_get_ns();
	__u64 tat = pacer_tat;

	if (tat < now)
		tat = now;
	// Conforming while no more than PACER_TOLERANCE_NS ahead of the schedule.
	if (tat - now > PACER_TOLERANCE_NS)
		return XDP_DROP;
	pacer_tat = tat + PACER_INTERVAL_NS;
	return (int)bpf_redirect(WIRE_IFINDEX, 0);
}

SEC("xdp")
int bench_xdp_fwd(struct xdp_md *ctx)
{
	__u8 *p = (__u8 *)(long)ctx->data;
	const __u8 *end = (const __u8 *)(long)ctx->data_end;
	__u32 check;

	// Ethernet (14) + IPv4 without options (20).
	if (p + 34 > end)
		return XDP_PASS;
	if (p[12] != 0x08 || p[13] != 0x00 || p[14] != 0x45 || p[22] <= 1)
		return XDP_PASS;
	// TTL is the high byte of the 16-bit word at offset 22: one less there is 0x0100 more in
	// the one's complement checksum (RFC 1624), with the end-around carry.
	p[22]--;
	check = ((__u32)p[24] << 8 | p[25]) + 0x0100;
	check = (check & 0xffff) + (check >> 16);
	p[24] = (__u8)(check >> 8);
	p[25] = (__u8)check;
	p[0] = SINK_MAC0, p[1] = SINK_MAC1, p[2] = SINK_MAC2;
	p[3] = SINK_MAC3, p[4] = SINK_MAC4, p[5] = SINK_MAC5;
	p[6] = RTR1_MAC0, p[7] = RTR1_MAC1, p[8] = RTR1_MAC2;
	p[9] = RTR1_MAC3, p[10] = RTR1_MAC4, p[11] = RTR1_MAC5;
	return (int)bpf_redirect(FWD_IFINDEX, 0);
}

char _license[] SEC("license") = "Dual BSD/GPL";
