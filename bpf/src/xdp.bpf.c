// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// xroute's XDP program: transit IPv4/IPv6 goes to the AF_XDP socket of the receiving queue;
// everything the engine does not own goes to the kernel (XDP_PASS): ARP and other EtherTypes,
// traffic for the router's own addresses (so BGP, OSPF, RIP, ping and SSH use the kernel's
// sockets), multicast, broadcast, IPv6 link-local, and anything this parser does not fully
// understand. One bounds-checked cursor reads every header; nothing is handled half-way.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_QUEUES 64
#define MAX_LOCAL 1024

// Counter indices (one per-CPU array slot each); xroute_bpf::Counter has the same numbering.
enum xr_counter {
	XR_RX = 0,         // every frame the program saw
	XR_TO_KERNEL = 1,  // passed to the kernel on purpose
	XR_TO_XSK = 2,     // redirected to the queue's AF_XDP socket
	XR_NO_SOCKET = 3,  // transit, but no socket bound on this queue: passed to the kernel
	XR_NOT_IP = 4,     // ARP and other EtherTypes (also counted in XR_TO_KERNEL)
	XR_COUNTERS = 5,
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xr_xsks SEC(".maps");

// The router's own addresses, in network byte order; the value is unused.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_LOCAL);
	__type(key, __u32);
	__type(value, __u8);
} xr_local_v4 SEC(".maps");

struct xr_in6 {
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_LOCAL);
	__type(key, struct xr_in6);
	__type(value, __u8);
} xr_local_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XR_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} xr_counters SEC(".maps");

static __always_inline void xr_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&xr_counters, &idx);
	if (v)
		*v += 1;
}

// The one cursor: `*pos` is where the next header starts. Points `*out` at the `len` bytes there
// and moves `*pos` past them; returns 0 (and leaves both alone) when the frame is too short.
// Written for the verifier's unprivileged rules, so that the program loads with CAP_BPF and
// CAP_NET_ADMIN alone (deploy/systemd/xroute-engine@.service grants no more): without
// CAP_PERFMON it refuses to compare a packet pointer with NULL (hence a flag, not a pointer or
// NULL) and to add a register to one (hence a moving pointer advanced by constants, not a
// variable offset from `data`).
static __always_inline int xr_pull(void **pos, void *data_end, __u32 len, void **out)
{
	void *p = *pos;
	if (p + len > data_end)
		return 0;
	*pos = p + len;
	*out = p;
	return 1;
}

static __always_inline int xr_pass(void)
{
	xr_count(XR_TO_KERNEL);
	return XDP_PASS;
}

static __always_inline int xr_transit(struct xdp_md *ctx)
{
	__u32 q = ctx->rx_queue_index;
	if (!bpf_map_lookup_elem(&xr_xsks, &q)) {
		xr_count(XR_NO_SOCKET);
		return XDP_PASS;
	}
	xr_count(XR_TO_XSK);
	return bpf_redirect_map(&xr_xsks, q, XDP_PASS);
}

SEC("xdp")
int xroute_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	void *pos = data;

	xr_count(XR_RX);
	struct ethhdr *eth;
	if (!xr_pull(&pos, data_end, sizeof(*eth), (void **)&eth))
		return xr_pass();
	__u16 proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q)) {
		__be16 *vlan;
		if (!xr_pull(&pos, data_end, 4, (void **)&vlan))
			return xr_pass();
		proto = vlan[1];
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		__u8 *ip;
		// Too short for a header, or not version 4: the engine counts it as a drop (the
		// kernel would only drop it too, less visibly).
		if (!xr_pull(&pos, data_end, 20, (void **)&ip) || (ip[0] >> 4) != 4)
			return xr_transit(ctx);
		__u32 dst;
		__builtin_memcpy(&dst, ip + 16, 4);
		__u32 host = bpf_ntohl(dst);
		if ((host >> 28) == 0xe || host == 0xffffffff)
			return xr_pass(); // multicast, limited broadcast
		if (bpf_map_lookup_elem(&xr_local_v4, &dst))
			return xr_pass();
		return xr_transit(ctx);
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		__u8 *ip6;
		if (!xr_pull(&pos, data_end, 40, (void **)&ip6) || (ip6[0] >> 4) != 6)
			return xr_transit(ctx);
		struct xr_in6 dst;
		__builtin_memcpy(dst.addr, ip6 + 24, 16);
		if (dst.addr[0] == 0xff || (dst.addr[0] == 0xfe && (dst.addr[1] & 0xc0) == 0x80))
			return xr_pass(); // multicast (ND, MLD, OSPFv3), link-local
		if (bpf_map_lookup_elem(&xr_local_v6, &dst))
			return xr_pass();
		return xr_transit(ctx);
	}
	xr_count(XR_NOT_IP);
	return xr_pass();
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
