// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * epgate datapath: the entry points only.
 *   parse -> classify (endpoint address?) -> tracked flow? -> security group
 *   -> count -> act
 * XDP judges everything that arrives on an attached interface; tc egress
 * judges what the host itself sends (forwarded packets were judged where
 * they arrived).
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <xdp/xdp_helpers.h>
#include "maps.h"
#include "parse.h"
#include "stats.h"
#include "policy.h"
#include "ct.h"
#include "frag.h"
#include "deny.h"

static __always_inline const struct epg_addr_val *
epg_classify(__u32 gen, __u32 family, const __u8 *addr)
{
	struct epg_addr_key k = { .gen = gen, .family = family };

	if (family == AF_INET)
		__builtin_memcpy(k.addr, epg_a4(addr), 4);
	else
		__builtin_memcpy(k.addr, epg_a4(addr), 16);
	return bpf_map_lookup_elem(&epg_addr, &k);
}

/* Every drop of endpoint traffic ends here: counted, and remembered for the
 * flow logs. */
static __always_inline int epg_reject(const struct epg_pkt *p, int flowlog, __u32 ep_slot,
				      __u32 dir, __u32 reason, __u32 rule, const struct epg_counter *n)
{
	struct epg_scratch *scr = flowlog ? epg_scratch_get() : NULL;

	if (scr) {
		struct epg_rej_key *k = &scr->rej_key;

		__builtin_memset(k, 0, sizeof(*k));
		k->proto = p->proto;
		k->family = (__u8)p->family;
		k->dir = (__u8)dir;
		__builtin_memcpy(k->src, epg_a4(p->saddr), 16);
		__builtin_memcpy(k->dst, epg_a4(p->daddr), 16);
		if (p->has_ports) {
			if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP)
				__builtin_memcpy(&k->sport, p->sport, 2);
			__builtin_memcpy(&k->dport, p->port, 2);
		}
		epg_rej_record(k, ep_slot, reason, p->tcp_flags, n);
	}
	return epg_finish(ep_slot, dir, reason, rule, n);
}

/* The one exit for endpoint traffic: a first fragment's verdict is
 * remembered for its later fragments, then the verdict is counted (and a drop
 * recorded for the flow logs). */
static __always_inline int epg_verdict(const struct epg_pkt *p, int flowlog, __u32 ep_slot,
				       __u32 dir, __u32 reason, __u32 rule, const struct epg_counter *n)
{
	if (p->frag == EPG_FRAG_FIRST)
		epg_frag_settle(p, reason);
	if (epg_reason_verdict(reason) == EPG_DROP)
		return epg_reject(p, flowlog, ep_slot, dir, reason, rule, n);
	return epg_finish(ep_slot, dir, reason, rule, n);
}

/* The network ACL denies the packet: dropped (and remembered in the deny
 * cache when its lookup missed), unless its peer is exempt (then passed as
 * not_enforced, no ACL entry counted). */
static __always_inline int epg_acl_drop(const struct epg_pkt *p, int flowlog, __u32 ep_slot,
					__u32 dir, __u32 acl_slot, const struct epg_counter *n,
					int exempt, __u32 stamp)
{
	if (exempt)
		return epg_verdict(p, flowlog, ep_slot, dir, EPG_R_NOT_ENFORCED, EPG_NO_RULE_SLOT, n);
	if (epg_deny_pending(p))
		epg_deny_remember(p, stamp, ep_slot, EPG_R_ACL | dir << 8, acl_slot);
	return epg_verdict(p, flowlog, ep_slot, dir, EPG_R_ACL, acl_slot, n);
}

/* A packet the deny cache remembers (deny.h): its verdict replayed and
 * counted as judging it counted; -1 when not remembered under this stamp
 * (then its deny is to be). A global function, so its locals stay off
 * decide's stack. */
__noinline int epg_deny_replay(struct epg_pkt *p, __u32 stamp, int flowlog,
			       const struct epg_counter *n)
{
	const struct epg_deny_entry *e;

	if (!p || !n)
		return -1;
	e = epg_deny_find(p, stamp);
	if (!e)
		return -1;
	return epg_verdict(p, flowlog, e->ep_slot, e->dir, e->reason, e->slot, n);
}

/* Neither address can be an endpoint's, or not IP at all: counted, passed.
 * Checked by the entry points themselves, before the call into decide. */
static __always_inline int epg_passes_untouched(int rc, const struct epg_counter *n)
{
	if (rc != EPG_PARSE_NOT_IP && rc != EPG_PARSE_OTHER)
		return 0;
	epg_count_global(EPG_G_PASSTHROUGH, n);
	if (rc == EPG_PARSE_NOT_IP)
		epg_count_global(EPG_G_NOT_IP, n);
	return 1;
}

/* What a packet counts: its segments (a GSO packet the host sends leaves as
 * several), and their bytes on the wire, each with its own headers: the
 * kernel's own count where it has one (tunnels' inner headers included). */
static __always_inline struct epg_counter epg_amount(const struct epg_pkt *p, __u64 len)
{
	struct epg_counter n = { .packets = 1, .bytes = len };

	if (p->segs > 1) {
		n.packets = p->segs;
		n.bytes = len + (__u64)(p->segs - 1) * p->hdr_len;
	}
	if (p->wire_len > len)
		n.bytes = p->wire_len;
	return n;
}

/* A packet the host sends, as tc sees it: its GSO segments (counted from
 * the segment size when the sender left the count out) and wire length. */
static __always_inline void epg_skb_segments(struct __sk_buff *skb, struct epg_pkt *p)
{
	__u32 segs = skb->gso_segs, size = skb->gso_size;

	if (!segs && size && skb->len > p->hdr_len)
		segs = (skb->len - p->hdr_len + size - 1) / size;
	p->segs = (__u16)(segs > 0xffff ? 0xffff : segs);
	p->wire_len = skb->wire_len;
}

#define EPG_LOOPBACK_IFINDEX 1 /* the kernel's LOOPBACK_IFINDEX, in every namespace */

/*
 * Can a packet from an endpoint address that arrived at XDP have come from
 * the endpoint? Without this, anyone on another attached interface could
 * send a packet with the endpoint's address as its source, have it judged
 * as the endpoint's outbound traffic, open a flow with it, and then come in
 * through that flow past the endpoint's inbound rules. The kernel's route
 * back to the source decides (strict reverse-path check):
 *  - through the interface it arrived on: it can be the endpoint's;
 *  - through another interface epgate is attached to, while it arrived on
 *    one epgate is attached to: spoofed (the endpoint's own packets arrive
 *    there). Where either is not an attached interface (a VLAN, bond or
 *    bridge above the one attached), the route cannot tell: it passes;
 *  - the source is this host's own address (or broadcast, multicast), or
 *    no route leads back to it: spoofed;
 *  - the interface does not forward (the kernel then answers nothing: a
 *    host that bridges, a client of the endpoint), or the packet goes to
 *    an IPv6 link-local or multicast address (which the kernel's lookup
 *    refuses, whatever the source): the route cannot tell, it passes.
 * Asked only before a packet is judged by the rules (never for a tracked
 * flow's packets, nor an ICMP error quoting one). BPF_PROG_TEST_RUN runs
 * XDP on the loopback (explain, the unit tests): no wire to spoof from.
 * Returns 1 when the packet may be the endpoint's. A global function; the
 * lookup's 64 bytes are in the per-CPU scratch (decide's stack is full).
 */
__noinline int epg_source_ok(struct xdp_md *ctx, const struct epg_pkt *p)
{
	struct epg_scratch *scr = epg_scratch_get();
	struct bpf_fib_lookup *f;
	__u32 in = ctx->ingress_ifindex, out;
	long r;

	if (!p || !scr || in == EPG_LOOPBACK_IFINDEX)
		return 1;
	f = &scr->fib;
	__builtin_memset(f, 0, sizeof(*f));
	f->ifindex = in;
	f->l4_protocol = p->proto;
	if (p->has_ports && (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP)) {
		__builtin_memcpy(&f->sport, p->port, 2); /* back toward the source */
		__builtin_memcpy(&f->dport, p->sport, 2);
	}
	if (p->family == AF_INET) {
		f->family = AF_INET;
		__builtin_memcpy(&f->ipv4_src, epg_a4(p->daddr), 4);
		__builtin_memcpy(&f->ipv4_dst, epg_a4(p->saddr), 4);
	} else {
		f->family = AF_INET6;
		__builtin_memcpy(f->ipv6_src, epg_a4(p->daddr), 16);
		__builtin_memcpy(f->ipv6_dst, epg_a4(p->saddr), 16);
	}
	r = bpf_fib_lookup(ctx, f, sizeof(*f), 0);
	switch (r) {
	case BPF_FIB_LKUP_RET_SUCCESS:
	case BPF_FIB_LKUP_RET_NO_NEIGH: /* the route is known: f->ifindex is its interface */
		out = f->ifindex;
		if (out == in)
			return 1;
		return !bpf_map_lookup_elem(&epg_ifaces, &in) ||
		       !bpf_map_lookup_elem(&epg_ifaces, &out);
	case BPF_FIB_LKUP_RET_NOT_FWDED:
		/* IPv6 link-local (fe80::/10) and multicast (ff00::/8) are never
		 * forwarded: with one as the lookup's source it says nothing */
		if (p->family == AF_INET6 &&
		    (p->daddr[0] == 0xff || (p->daddr[0] == 0xfe && (p->daddr[1] & 0xc0) == 0x80)))
			return 1;
		return 0;
	case BPF_FIB_LKUP_RET_BLACKHOLE:
	case BPF_FIB_LKUP_RET_UNREACHABLE:
	case BPF_FIB_LKUP_RET_PROHIBIT:
		return 0;
	default: /* the lookup itself failed: it cannot tell */
		return 1;
	}
}

/* A packet epg_source_ok refused, or a later fragment of one: dropped,
 * counted in epg_spoofed only. A global function: off decide's stack. */
__noinline int epg_spoofed_drop(const struct epg_pkt *p, const struct epg_counter *n)
{
	__u32 zero = 0;
	struct epg_counter *c = bpf_map_lookup_elem(&epg_spoofed, &zero);

	if (!p || !n)
		return EPG_DROP;
	if (c) {
		c->packets += n->packets;
		c->bytes += n->bytes;
	}
	if (p->frag == EPG_FRAG_FIRST) /* its later fragments follow it, as spoofed */
		epg_frag_set(p, EPG_DROP, EPG_FRAG_SPOOFED);
	return EPG_DROP;
}

/*
 * Decide on a parsed packet; returns EPG_ACCEPT or EPG_DROP. The caller has
 * passed (and counted) what is not endpoint traffic (epg_passes_untouched).
 * The same for both hooks but for the source check, which only XDP's
 * packets need (xdp: a constant, so each hook's copy has only its own code).
 * Called through a global function per hook: the verifier checks it once,
 * with the packet's fields unknown, instead of once per path through the
 * parser (which, inlined, exceeds the 1M-instruction budget).
 */
static __always_inline int epg_decide(void *ctx, int xdp, struct epg_pkt *pkt, int rc,
				      __u64 len, __u32 ifindex)
{
	const struct epg_ct_timeouts *tmo;
	const struct epg_addr_val *ep = NULL;
	struct epg_addr_val epv;
	const struct epg_meta *meta;
	struct epg_ct_key ck = {};
	struct epg_ct_val *flow = NULL, *closed = NULL;
	__u32 zero = 0, gen = 0, dir = 0, sel, rule, acl, acl_gen, acl_slot, cls_gen = 1, tag = 0;
	int bit, tracked = 0, reason, acl_cached, cacheable, ori = 0, src_lo = 0;
	int flowlog = 0, looked = 0, classified = 0, exempt = 0;
	const struct epg_pkt *p = pkt;
	struct epg_counter amt;
	const struct epg_counter *n = &amt;
	__u64 now;

	if (!p)
		return EPG_ACCEPT;
	amt = epg_amount(p, len);

	/* One generation for every lookup of this packet, and whether drops are
	 * recorded for flow logs (serve --flow-log), read once. */
	meta = bpf_map_lookup_elem(&epg_meta, &zero);
	if (meta) {
		/* one load: the active generation and the cache stamp agree
		 * even when this packet meets an apply's flip (active_gen is
		 * always generation & 1) */
		__u64 g = meta->generation;

		gen = g & 1;
		exempt = (meta->flags & (EPG_META_EXEMPT << gen)) != 0;
		/* the stamp: its low 32 bits, plus one, never 0 (= none) */
		cls_gen = (__u32)g + 1;
		cls_gen += !cls_gen;
		flowlog = (meta->flags & EPG_META_FLOWLOG) != 0;
		/* denies are remembered, and replayed (deny.h): a flag in the
		 * packet, as decide's stack is full */
		pkt->remember = (meta->flags & EPG_META_NO_DENY_CACHE) ? 0 : EPG_DENY_ON;
	}

	/* A tracked packet under the policy its flow last saw: the flow knows
	 * how this orientation's packets are classified, no address lookup. */
	now = epg_now();
	if (rc == EPG_PARSE_OK && p->frag == EPG_FRAG_NONE) {
		tracked = epg_ct_key_of(&ck, p, &src_lo);
		looked = 1;
		if (tracked)
			flow = epg_ct_lookup(&ck, now, flowlog, &tag);
		if (flow) {
			ori = src_lo != flow->init_lo;
			if (flow->cls_gen[ori & 1] == cls_gen) {
				epv = flow->cls[ori & 1];
				dir = flow->cls_dir[ori & 1] & 1;
				ep = &epv;
			}
		} else if (tracked && (p->remember & EPG_DENY_ON)) {
			/* no flow: a deny remembered under this policy stands
			 * (judged with a flow, a deny is never remembered). The
			 * packet is unfragmented here, and tracked, so no ICMP
			 * error (which a flow could make related): cacheable. */
			struct epg_scratch *scr = epg_scratch_get();

			if (scr) {
				__u32 misses = scr->deny_misses;
				int v = epg_deny_worth_it(misses) ?
					epg_deny_replay(pkt, cls_gen, flowlog, n) : -1;

				if (v >= 0) {
					scr->deny_misses = 0;
					return v;
				}
				scr->deny_misses = misses + 1;
			}
		}
	}
	if (!ep) {
		ep = epg_classify(gen, p->family, p->daddr);
		if (ep) {
			dir = EPG_DIR_INGRESS;
		} else {
			ep = epg_classify(gen, p->family, p->saddr);
			if (!ep) {
				epg_count_global(EPG_G_PASSTHROUGH, n);
				return EPG_ACCEPT;
			}
			dir = EPG_DIR_EGRESS;
		}
		epv = *ep; /* a copy: the flow, and the map entry, may go */
		ep = &epv;
		classified = 1;
	}
	/* A first fragment takes its place in the fragment table before it is
	 * judged: when the table is full it is dropped unjudged (no flow made). */
	if (p->frag == EPG_FRAG_FIRST && epg_frag_remember(p, ep->ep_slot, dir, EPG_R_FRAG_FULL))
		return epg_reject(p, flowlog, ep->ep_slot, dir, EPG_R_FRAG_FULL, EPG_NO_RULE_SLOT, n);
	if (rc != EPG_PARSE_OK)
		return epg_verdict(p, flowlog, ep->ep_slot, dir, rc, EPG_NO_RULE_SLOT, n);
	if (epg_is_link_control(p)) {
		/* neighbour discovery and MLD are link plumbing, never judged by
		 * groups or ACLs (as ARP for IPv4) */
		epg_count_global(EPG_G_PASSTHROUGH, n);
		return EPG_ACCEPT;
	}

	/* Later fragments follow their first fragment's verdict, whatever it was. */
	if (p->frag == EPG_FRAG_LATER) {
		rc = (int)epg_frag_follow(p); /* rc: no new slot on decide's full stack */
		if (rc == EPG_FRAG_SPOOFED)
			return epg_spoofed_drop(p, n);
		return epg_verdict(p, flowlog, ep->ep_slot, dir, (__u32)rc, EPG_NO_RULE_SLOT, n);
	}

	/* A packet of a tracked flow passes whatever the rules say now. */
	if (!looked) {
		tracked = epg_ct_key_of(&ck, p, &src_lo);
		if (tracked)
			flow = epg_ct_lookup(&ck, now, flowlog, &tag);
	}
	if (flow && p->proto == IPPROTO_TCP && flow->state >= EPG_CT_TCP_CLOSING &&
	    (p->tcp_flags & (EPG_TCP_SYN | EPG_TCP_ACK)) == EPG_TCP_SYN) {
		/* a new connection reusing a closed one's ports: judged
		 * anew, the old flow removed once the ACL lets it in */
		closed = flow;
		flow = NULL;
	}

	/* Inbound: the network ACL first, on every packet, tracked or not. Its
	 * verdict depends on the addresses, ports and protocol, so for a TCP,
	 * UDP or other non-ICMP flow it is fixed per orientation (from the
	 * initiator, or the responder) and generation: cached in the flow. */
	acl = ep->acl;
	acl_gen = cls_gen;
	acl_slot = EPG_NO_RULE_SLOT;
	ori = flow && src_lo != flow->init_lo;
	cacheable = p->proto != IPPROTO_ICMP && p->proto != IPPROTO_ICMPV6;
	acl_cached = acl != EPG_SET_NONE && cacheable && flow && flow->acl_gen[ori] == acl_gen;
	if (acl_cached)
		epg_count_rule(flow->acl_slot[ori], n);
	if (acl != EPG_SET_NONE && !acl_cached && dir == EPG_DIR_INGRESS &&
	    epg_acl_denies(epg_sel(acl, dir), p, 1, n, &acl_slot))
		return epg_acl_drop(p, flowlog, ep->ep_slot, dir, acl_slot, n,
				    epg_exempt_peer(exempt, gen, p, dir), cls_gen);

	rule = EPG_NO_RULE_SLOT;
	if (flow) {
		reason = EPG_R_TRACKED;
	} else if (epg_ct_related(p, now, flowlog)) {
		reason = EPG_R_RELATED;
	} else {
		/* judged by the rules (and maybe a flow made): from where it
		 * could have come from, if it claims the endpoint's address */
		if (xdp && dir == EPG_DIR_EGRESS && !epg_source_ok((struct xdp_md *)ctx, p))
			return epg_spoofed_drop(p, n);
		sel = epg_sel(ep->ruleset, dir);
		bit = epg_match(sel, p, dir == EPG_DIR_INGRESS);
		if (bit < 0) {
			if (epg_exempt_peer(exempt, gen, p, dir))
				rc = EPG_R_NOT_ENFORCED;
			else if (p->proto == IPPROTO_TCP && !(p->tcp_flags & EPG_TCP_SYN))
				rc = EPG_R_TCP_NO_FLOW;
			else
				rc = EPG_R_NO_RULE;
			/* an inbound packet the ACL let in: that entry was counted */
			if (rc != EPG_R_NOT_ENFORCED && epg_deny_pending(p))
				epg_deny_remember(p, cls_gen, ep->ep_slot, rc | dir << 8, acl_slot);
			return epg_verdict(p, flowlog, ep->ep_slot, dir, rc, EPG_NO_RULE_SLOT, n);
		}
		reason = EPG_R_RULE;
		rule = epg_rule_slot(sel, bit);
	}

	/* Outbound: the network ACL after the security group. */
	if (acl != EPG_SET_NONE && !acl_cached && dir == EPG_DIR_EGRESS &&
	    epg_acl_denies(epg_sel(acl, dir), p, 0, n, &acl_slot))
		return epg_acl_drop(p, flowlog, ep->ep_slot, dir, acl_slot, n,
				    epg_exempt_peer(exempt, gen, p, dir), cls_gen);
	if (acl == EPG_SET_NONE || !cacheable)
		acl_gen = 0;

	if (flow) {
		epg_ct_update(flow, p, dir, src_lo == flow->init_lo, n, now, gen, ep->ct_profile);
		if (flow->key_tag == tag) { /* still this flow's element */
			if (acl_gen && !acl_cached) {
				flow->acl_gen[ori] = 0;
				epg_store_barrier();
				flow->acl_slot[ori] = acl_slot;
				epg_store_barrier();
				flow->acl_gen[ori] = acl_gen;
			}
			if (classified) {
				flow->cls_gen[ori & 1] = 0;
				epg_store_barrier();
				flow->cls[ori & 1] = epv;
				flow->cls_dir[ori & 1] = (__u8)dir;
				epg_store_barrier();
				flow->cls_gen[ori & 1] = cls_gen;
			}
		}
	} else if (reason == EPG_R_RULE && tracked) {
		/* allowed: the closed connection whose ports it reuses ends */
		if (closed)
			epg_ct_remove(&ck, closed, flowlog);
		tmo = epg_ct_timeouts_of(gen, ep->ct_profile);
		/* the table full: dropped, unless the peer is exempt (then as if
		 * no rule had allowed it) */
		if (epg_ct_create(&ck, src_lo, p, dir, ep, cls_gen, rule, ifindex, n, now, tmo,
				  acl_gen, acl_slot))
			return epg_verdict(p, flowlog, ep->ep_slot, dir,
					   epg_exempt_peer(exempt, gen, p, dir) ?
					   EPG_R_NOT_ENFORCED : EPG_R_CT_FULL, EPG_NO_RULE_SLOT, n);
	}
	return epg_verdict(p, flowlog, ep->ep_slot, dir, reason, rule, n);
}

__noinline int epg_decide_xdp(struct xdp_md *ctx, struct epg_pkt *pkt, int rc, __u64 len)
{
	return epg_decide(ctx, 1, pkt, rc, len, ctx->ingress_ifindex);
}

__noinline int epg_decide_tc(struct __sk_buff *skb, struct epg_pkt *pkt, int rc, __u64 len)
{
	return epg_decide(skb, 0, pkt, rc, len, skb->ifindex);
}

/* libxdp: run early, and let the next program run after our XDP_PASS. */
struct {
	__uint(priority, 10);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(epg_xdp);

/* Parsing the rest, also a global function of its own for the same reason
 * (l2, proto: what epg_locate found). */
__noinline int epg_parse_xdp(struct xdp_md *ctx, struct epg_pkt *p, __u64 len, __u32 l2,
			     __u32 proto)
{
	if (!p)
		return EPG_PARSE_NOT_IP;
	return epg_parse(p, (void *)(long)ctx->data, (void *)(long)ctx->data_end, len, l2,
			 (__be16)proto);
}

__noinline int epg_parse_skb(struct __sk_buff *skb, struct epg_pkt *p, __u32 l2, __u32 proto)
{
	if (!p)
		return EPG_PARSE_NOT_IP;
	return epg_parse(p, (void *)(long)skb->data, (void *)(long)skb->data_end, skb->len, l2,
			 (__be16)proto);
}

/* xdp.frags: multi-buffer frames (jumbo MTU) are accepted; the headers the
 * parser reads are in the first buffer, the byte count is the whole frame.
 * What passes untouched (most packets) is found before struct epg_pkt is
 * even zeroed. */
SEC("xdp.frags")
int epg_xdp(struct xdp_md *ctx)
{
	__u64 len = bpf_xdp_get_buff_len(ctx);
	struct epg_counter n = { .packets = 1, .bytes = len };
	__u32 l2 = 0;
	__be16 proto = 0;
	int rc = epg_locate((void *)(long)ctx->data, (void *)(long)ctx->data_end, &l2, &proto);

	if (epg_passes_untouched(rc, &n))
		return XDP_PASS;
	{
		struct epg_pkt p = {};

		rc = epg_parse_xdp(ctx, &p, len, l2, proto);
		return epg_decide_xdp(ctx, &p, rc, len) == EPG_DROP ? XDP_DROP : XDP_PASS;
	}
}

/* Headers the parser may read: Ethernet, 2 VLAN tags, IPv6 with extension
 * headers, L4 and an ICMP error's quote. Pulled into the linear area. */
#define EPG_TC_PULL 256

SEC("tc")
int epg_tc_egress(struct __sk_buff *skb)
{
	struct epg_pkt p; /* zeroed only for what may be endpoint traffic, as in XDP */
	struct epg_counter n;
	__u32 l2 = 0;
	__be16 proto = 0;
	int rc;

	p.hdr_len = 0; /* what is counted unparsed: no headers measured */
	if (skb->ingress_ifindex) {
		/* forwarded: judged by XDP where it arrived */
		epg_skb_segments(skb, &p);
		n = epg_amount(&p, skb->len);
		epg_count_global(EPG_G_FORWARDED, &n);
		return TC_ACT_OK;
	}
	bpf_skb_pull_data(skb, skb->len < EPG_TC_PULL ? skb->len : EPG_TC_PULL);
	rc = epg_locate((void *)(long)skb->data, (void *)(long)skb->data_end, &l2, &proto);
	if (rc == EPG_PARSE_OK) {
		p = (struct epg_pkt){};
		rc = epg_parse_skb(skb, &p, l2, proto);
	}
	/* after the parse, which measured the headers each segment repeats */
	epg_skb_segments(skb, &p);
	n = epg_amount(&p, skb->len);
	if (epg_passes_untouched(rc, &n))
		return TC_ACT_OK;
	return epg_decide_tc(skb, &p, rc, skb->len) == EPG_DROP ? TC_ACT_SHOT : TC_ACT_OK;
}

char _license[] SEC("license") = "Dual MIT/GPL";
