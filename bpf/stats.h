/* SPDX-License-Identifier: MIT */
/* Counting. Every verdict on endpoint traffic leaves through epg_finish(),
 * the one place that counts it per endpoint, direction and reason (and per
 * rule) and turns the reason into accept or drop. */
#ifndef EPGATE_BPF_STATS_H
#define EPGATE_BPF_STATS_H

#include "maps.h"

static __always_inline int epg_reason_verdict(__u32 reason)
{
	switch (reason) {
#define EPG_REASON(name, label, verdict) case EPG_R_##name: return EPG_##verdict;
#include "epgate/reasons.def"
#undef EPG_REASON
	}
	return EPG_DROP;
}

/* What a verdict counts: the packets (a GSO packet the host sends is as
 * many as it has segments) and their bytes on the wire. */
static __always_inline void epg_count_global(__u32 idx, const struct epg_counter *n)
{
	struct epg_counter *c = bpf_map_lookup_elem(&epg_global, &idx);

	if (c) {
		c->packets += n->packets;
		c->bytes += n->bytes;
	}
}

/* An event (a flow created, expired, refused): one more. */
static __always_inline void epg_count_event(__u32 idx)
{
	struct epg_counter *c = bpf_map_lookup_elem(&epg_global, &idx);

	if (c)
		c->packets++;
}

static __always_inline void epg_count_rule(__u32 rule_slot, const struct epg_counter *n)
{
	struct epg_counter *rc = bpf_map_lookup_elem(&epg_rule_stats, &rule_slot);

	if (rc) {
		rc->packets += n->packets;
		rc->bytes += n->bytes;
	}
}

/* Remember a rejected packet for the flow logs (aggregated, not an event per
 * packet). Counters race benignly between CPUs: flow logs are estimates. */
static __always_inline void epg_rej_record(const struct epg_rej_key *k, __u32 ep_slot,
					   __u32 reason, __u8 tcp_flags, const struct epg_counter *n)
{
	struct epg_rej_val *v = bpf_map_lookup_elem(&epg_rej, k);
	struct epg_scratch *scr;
	__u64 now = epg_now();

	if (v) {
		__sync_fetch_and_add(&v->packets, n->packets);
		__sync_fetch_and_add(&v->bytes, n->bytes);
		v->last_ns = now;
		v->tcp_flags |= tcp_flags;
		return;
	}
	scr = epg_scratch_get();
	if (!scr)
		return;
	__builtin_memset(&scr->rej_val, 0, sizeof(scr->rej_val));
	scr->rej_val.first_ns = now;
	scr->rej_val.last_ns = now;
	scr->rej_val.packets = n->packets;
	scr->rej_val.bytes = n->bytes;
	scr->rej_val.ep_slot = ep_slot;
	scr->rej_val.tcp_flags = tcp_flags;
	scr->rej_val.reason = (__u8)reason;
	if (bpf_map_update_elem(&epg_rej, k, &scr->rej_val, BPF_NOEXIST) == -7 /* E2BIG: full */)
		epg_count_global(EPG_G_REJ_LOST, n);
}

static __always_inline int epg_finish(__u32 ep_slot, __u32 dir, __u32 reason,
				      __u32 rule_slot, const struct epg_counter *n)
{
	struct epg_ep_counters *ec = bpf_map_lookup_elem(&epg_ep_stats, &ep_slot);

	/* Masks, not comparisons: clang may index with an unchecked copy of a
	 * compared register ("R0 unbounded memory access"). Both are in range. */
	if (ec) {
		struct epg_counter *c;

		/* hide what clang knows of their ranges, so the masks stay */
		asm volatile("" : "+r"(reason), "+r"(dir));
		c = &ec->c[dir & 1][reason & (EPG_REASON_SLOTS - 1)];

		c->packets += n->packets;
		c->bytes += n->bytes;
	}
	if (rule_slot != EPG_NO_RULE_SLOT)
		epg_count_rule(rule_slot, n);
	return epg_reason_verdict(reason);
}

#endif
