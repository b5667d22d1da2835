// SPDX-License-Identifier: MIT
/*
 * The kernel primitives the datapath is built from, each alone in an XDP
 * program, for bench_micro's "what the targets leave room for" table: the
 * floor a scenario cannot go below whatever epgate does around them. The
 * maps have the shapes of the datapath's own (abi.h); bench_micro fills
 * them. Every program returns XDP_PASS when its primitive found or did what
 * it should, XDP_DROP otherwise, so a result is checked, not assumed.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "epgate/abi.h"

/* The flow table's shape: epg_ct's key, value, size and preallocation. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EPG_CT_MAX);
	__type(key, struct epg_ct_key);
	__type(value, struct epg_ct_val);
} prim_flows SEC(".maps");

/* The same table with a 16-byte key, what IPv4 flows alone would need
 * (two addresses, two ports, protocol): how much of a lookup is the key. */
struct prim_key16 {
	__u8 b[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EPG_CT_MAX);
	__type(key, struct prim_key16);
	__type(value, struct epg_ct_val);
} prim_flows16 SEC(".maps");

/* A peer-dimension trie like epg_peer4: (selector, IPv4 prefix). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, EPG_MAX_PEER_PFX);
	__type(key, struct epg_peer4_key);
	__type(value, struct epg_bitmap);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} prim_peer4 SEC(".maps");

/* The selector the trie program looks up: bench_micro sets it before load. */
const volatile __u32 prim_sel = 0;

#define PRIM_L3 14 /* an untagged IPv4 frame: the key is read from its headers */

/* The flow key: the 40 bytes after the Ethernet header, as they are (an
 * IPv4 and a TCP header), so each lookup copies a key out of the packet as
 * the datapath does. */
static __always_inline int prim_flow_key(struct xdp_md *ctx, struct epg_ct_key *k)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;

	if (data + PRIM_L3 + sizeof(*k) > end)
		return -1;
	__builtin_memcpy(k, data + PRIM_L3, sizeof(*k));
	return 0;
}

SEC("xdp")
int prim_flow_lookup(struct xdp_md *ctx)
{
	struct epg_ct_key k;

	if (prim_flow_key(ctx, &k))
		return XDP_ABORTED;
	return bpf_map_lookup_elem(&prim_flows, &k) ? XDP_PASS : XDP_DROP;
}

/* The 16-byte key: the frame's first 16 bytes after the Ethernet header. */
SEC("xdp")
int prim_flow16_lookup(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct prim_key16 k;

	if (data + PRIM_L3 + sizeof(k) > end)
		return XDP_ABORTED;
	__builtin_memcpy(&k, data + PRIM_L3, sizeof(k));
	return bpf_map_lookup_elem(&prim_flows16, &k) ? XDP_PASS : XDP_DROP;
}

/* The same for a packet of no flow (a denied packet's first question). */
SEC("xdp")
int prim_flow_miss(struct xdp_md *ctx)
{
	struct epg_ct_key k;

	if (prim_flow_key(ctx, &k))
		return XDP_ABORTED;
	k.pad = 2; /* a key no flow has */
	return bpf_map_lookup_elem(&prim_flows, &k) ? XDP_DROP : XDP_PASS;
}

/* A new flow's table work: insert, then delete (so the next run inserts again). */
SEC("xdp")
int prim_flow_insert(struct xdp_md *ctx)
{
	struct epg_ct_val v = { 0 };
	struct epg_ct_key k;

	if (prim_flow_key(ctx, &k))
		return XDP_ABORTED;
	k.pad = 1; /* not the key prim_flow_lookup finds */
	if (bpf_map_update_elem(&prim_flows, &k, &v, BPF_NOEXIST))
		return XDP_DROP;
	return bpf_map_delete_elem(&prim_flows, &k) ? XDP_DROP : XDP_PASS;
}

/* One peer lookup: selector prim_sel, the packet's IPv4 source. */
SEC("xdp")
int prim_peer_lookup(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct epg_peer4_key k = { .prefixlen = 32 + 32, .sel = prim_sel };

	if (data + PRIM_L3 + 20 > end)
		return XDP_ABORTED;
	__builtin_memcpy(k.addr, data + PRIM_L3 + 12, 4);
	return bpf_map_lookup_elem(&prim_peer4, &k) ? XDP_PASS : XDP_DROP;
}

char _license[] SEC("license") = "Dual MIT/GPL";
