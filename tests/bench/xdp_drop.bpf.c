// SPDX-License-Identifier: MIT
/* The floor of tests/bench/live.sh: what an XDP program costs that does
 * nothing but drop. The veth's own counters (ethtool -S: xdp_drops) show it ran. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char _license[] SEC("license") = "Dual MIT/GPL";
