// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// The "wire" of scripts/bench-forward.sh (not part of the router): attached to the generator's
// side of a veth pair, it redirects every frame out of another veth whose peer is the router's
// port. The router then receives XDP frames that no socket owns, as it would from a NIC.
//
// Why the extra hop: trafgen's skbs keep its packet socket's send buffer charged until the
// router's IP layer takes them. When the router's receive NAPI runs on a core of its own and
// falls behind, a few hundred skbs waiting in the veth ring exhaust the buffer, trafgen's
// sendto() fails with EAGAIN and trafgen aborts; net.core.wmem_default is read-only inside a
// network namespace, so the buffer cannot be raised without touching the host.
//
// The script compiles it with -DWIRE_IFINDEX=<ifindex of the output veth>.

#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))

static long (*bpf_redirect)(__u32 ifindex, __u64 flags) = (void *)BPF_FUNC_redirect;

SEC("xdp")
int bench_wire(struct xdp_md *ctx)
{
	(void)ctx;
	return (int)bpf_redirect(WIRE_IFINDEX, 0);
}

char _license[] SEC("license") = "Dual BSD/GPL";
