// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * epgate datapath: the entry points only.
 *   parse -> classify (endpoint address?) -> decide (security group) -> count -> act
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <xdp/xdp_helpers.h>
#include "maps.h"
#include "parse.h"
#include "policy.h"
#include "stats.h"

static __always_inline const struct epg_addr_val *
epg_classify(__u32 gen, __u32 family, const __u8 *addr)
{
	struct epg_addr_key k = { .gen = gen, .family = family };

	if (family == AF_INET)
		__builtin_memcpy(k.addr, addr, 4);
	else
		__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(&epg_addr, &k);
}

/* Judge one frame; returns EPG_ACCEPT or EPG_DROP. Hook-independent. */
static __always_inline int epg_judge(void *data, void *data_end)
{
	__u64 bytes = data_end - data;
	const struct epg_addr_val *ep;
	const struct epg_meta *meta;
	struct epg_pkt p = {};
	__u32 zero = 0, gen = 0, dir, sel;
	const __u8 *peer;
	int rc, bit;

	rc = epg_parse(&p, data, data_end);
	if (rc == EPG_PARSE_NOT_IP) {
		epg_count_global(EPG_G_PASSTHROUGH, bytes);
		epg_count_global(EPG_G_NOT_IP, bytes);
		return EPG_ACCEPT;
	}

	/* One generation for every lookup of this packet. */
	meta = bpf_map_lookup_elem(&epg_meta, &zero);
	if (meta)
		gen = meta->active_gen & 1;

	ep = epg_classify(gen, p.family, p.daddr);
	if (ep) {
		dir = EPG_DIR_INGRESS;
		peer = p.saddr;
	} else {
		ep = epg_classify(gen, p.family, p.saddr);
		if (!ep) {
			epg_count_global(EPG_G_PASSTHROUGH, bytes);
			return EPG_ACCEPT;
		}
		dir = EPG_DIR_EGRESS;
		peer = p.daddr;
	}

	if (rc != EPG_PARSE_OK)
		return epg_finish(ep->ep_slot, dir, rc, EPG_NO_RULE_SLOT, bytes);
	if (dir == EPG_DIR_EGRESS)
		return epg_finish(ep->ep_slot, dir, EPG_R_NOT_ENFORCED, EPG_NO_RULE_SLOT, bytes);

	sel = epg_sel(ep->ruleset, gen, dir);
	bit = epg_sg_match(sel, &p, peer);
	if (bit < 0)
		return epg_finish(ep->ep_slot, dir,
				  p.frag == EPG_FRAG_LATER ? EPG_R_FRAGMENT : EPG_R_NO_RULE,
				  EPG_NO_RULE_SLOT, bytes);
	return epg_finish(ep->ep_slot, dir, EPG_R_RULE, epg_rule_slot(sel, bit), bytes);
}

/* libxdp: run early, and let the next program run after our XDP_PASS. */
struct {
	__uint(priority, 10);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(epg_xdp);

SEC("xdp")
int epg_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	return epg_judge(data, data_end) == EPG_DROP ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "Dual MIT/GPL";
