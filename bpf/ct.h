/* SPDX-License-Identifier: MIT */
/*
 * Connection tracking, as EC2 does it for security groups: a flow that a rule
 * allowed is allowed in both directions until it idles out, whatever the
 * rules say later. Keys are direction-normalised (struct epg_ct_key).
 *
 * Races: a flow is normally seen by one CPU at a time (RSS); packet and byte
 * counters use atomic adds, state, flags and last_seen plain stores, so two
 * CPUs racing on one flow may lose a flag bit or a state step, never a
 * counter, and never allow a packet that neither would.
 */
#ifndef EPGATE_BPF_CT_H
#define EPGATE_BPF_CT_H

#include "maps.h"
#include "parse.h"

#define EPG_NSEC 1000000000ULL
#ifndef E2BIG
#define E2BIG 7
#endif
#ifndef ENOMEM
#define ENOMEM 12
#endif
#ifndef EEXIST
#define EEXIST 17
#endif

/* An address as two words: IPv4 in the first 4 bytes, the rest zero. */
static __always_inline void epg_addr_words(__u32 family, const __u8 *a, __u64 w[2])
{
	w[0] = 0;
	w[1] = 0;
	if (family == AF_INET)
		__builtin_memcpy(w, epg_a4(a), 4);
	else
		__builtin_memcpy(w, epg_a4(a), 16);
}

static __always_inline int epg_addr_eq(__u32 family, const __u8 *a, const __u8 *b)
{
	__u64 x[2], y[2];

	epg_addr_words(family, a, x);
	epg_addr_words(family, b, y);
	return x[0] == y[0] && x[1] == y[1];
}

/* Fill key from (src, sport) -> (dst, dport); returns 1 when src is "lo". */
static __always_inline int epg_ct_key_make(struct epg_ct_key *k, __u32 family, __u8 proto,
					   const __u8 *src, const __u8 *dst,
					   const __u8 *sport, const __u8 *dport)
{
	__u64 s[2], d[2];
	__u16 sp, dp;
	int src_lo;

	__builtin_memcpy(&sp, sport, 2);
	__builtin_memcpy(&dp, dport, 2);
	epg_addr_words(family, src, s);
	epg_addr_words(family, dst, d);
	/* any total order will do, as long as both directions agree */
	if (s[0] != d[0])
		src_lo = s[0] < d[0];
	else if (s[1] != d[1])
		src_lo = s[1] < d[1];
	else
		src_lo = sp <= dp;

	k->family = (__u8)family;
	k->proto = proto;
	k->pad = 0;
	if (src_lo) {
		__builtin_memcpy(k->lo_addr, s, 16);
		__builtin_memcpy(k->hi_addr, d, 16);
		k->lo_port = sp;
		k->hi_port = dp;
	} else {
		__builtin_memcpy(k->lo_addr, d, 16);
		__builtin_memcpy(k->hi_addr, s, 16);
		k->lo_port = dp;
		k->hi_port = sp;
	}
	return src_lo;
}

/* Ports that identify a flow of this packet: TCP/UDP ports, the echo id on
 * both sides for ICMP echo, none otherwise. Returns 0 when the packet cannot
 * start or belong to a flow (ICMP other than echo). */
static __always_inline int epg_ct_key_of(struct epg_ct_key *k, const struct epg_pkt *p,
					 int *src_lo)
{
	const __u8 none[2] = { 0, 0 };

	switch (p->proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
		if (!p->has_ports)
			return 0; /* later fragments carry no ports */
		*src_lo = epg_ct_key_make(k, p->family, p->proto, p->saddr, p->daddr,
					  p->sport, p->port);
		return 1;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		if (!epg_is_icmp(p))
			goto other; /* the other family's ICMP: a protocol like any */
		if (!p->has_ports || !epg_icmp_is_echo(p->proto, p->port[0]))
			return 0;
		*src_lo = epg_ct_key_make(k, p->family, p->proto, p->saddr, p->daddr,
					  p->sport, p->sport);
		return 1;
	default:
	other:
		*src_lo = epg_ct_key_make(k, p->family, p->proto, p->saddr, p->daddr,
					  none, none);
		return 1;
	}
}

/* A digest of a flow key, kept in its value (struct epg_ct_val.key_tag). */
static __always_inline __u32 epg_ct_tag(const struct epg_ct_key *k)
{
	const __u32 *w = (const __u32 *)k;
	__u32 h = 0x811c9dc5u;

	for (int i = 0; i < (int)(sizeof(*k) / 4); i++)
		h = (h ^ w[i]) * 0x01000193u;
	return h | 1; /* never 0 */
}

/* Stores ordered for other CPUs: a cache's generation is written after its
 * contents (x86 keeps stores in order; this keeps the compiler from
 * reordering them). */
#define epg_store_barrier() asm volatile("" ::: "memory")

/* The timeout set of an endpoint's interface; NULL means the defaults. */
static __always_inline const struct epg_ct_timeouts *epg_ct_timeouts_of(__u32 gen,
									 __u32 profile)
{
	__u32 idx = (gen & 1) * EPG_CT_PROFILES + (profile % EPG_CT_PROFILES);
	const struct epg_ct_timeouts *t = bpf_map_lookup_elem(&epg_ct_prof, &idx);

	return t && t->tcp_established ? t : NULL;
}

static __always_inline __u32 epg_ct_timeout(const struct epg_ct_timeouts *t, __u8 state)
{
	switch (state) {
	case EPG_CT_TCP_SYN_SENT:
	case EPG_CT_TCP_SYN_RECV:
		return t ? t->tcp_syn : EPG_CT_DEFAULT_TCP_SYN;
	case EPG_CT_TCP_ESTABLISHED:
		return t ? t->tcp_established : EPG_CT_DEFAULT_TCP_ESTABLISHED;
	case EPG_CT_TCP_CLOSING:
		return t ? t->tcp_closing : EPG_CT_DEFAULT_TCP_CLOSING;
	case EPG_CT_TCP_CLOSED:
		return t ? t->tcp_closed : EPG_CT_DEFAULT_TCP_CLOSED;
	case EPG_CT_UDP:
		return t ? t->udp : EPG_CT_DEFAULT_UDP;
	case EPG_CT_UDP_STREAM:
		return t ? t->udp_stream : EPG_CT_DEFAULT_UDP_STREAM;
	case EPG_CT_ICMP:
		return t ? t->icmp : EPG_CT_DEFAULT_ICMP;
	}
	return t ? t->other : EPG_CT_DEFAULT_OTHER;
}

/* Remove flow k (its value v), handing what it last counted to the flow
 * logs when they are on: the copy is taken before the delete, which may
 * recycle the element at once, and handed on only by the CPU whose delete
 * succeeded (the sweeper, or another CPU, may have removed it first). */
static __always_inline int epg_ct_remove(const struct epg_ct_key *k, const struct epg_ct_val *v,
					 int flowlog)
{
	struct epg_scratch *scr = flowlog ? epg_scratch_get() : NULL;

	if (scr) {
		scr->ended.key = *k;
		scr->ended.val = *v;
	}
	if (bpf_map_delete_elem(&epg_ct, k))
		return 0;
	/* a full ring: one flow whose last counts are lost */
	if (scr && bpf_ringbuf_output(&epg_ct_ended, &scr->ended, sizeof(scr->ended), 0))
		epg_count_event(EPG_G_ENDED_LOST);
	return 1;
}

/* A live flow for key, or NULL; an idle one found here is removed. *tag:
 * the key's digest, to see later whether the element still holds it. */
static __always_inline struct epg_ct_val *epg_ct_lookup(const struct epg_ct_key *k, __u64 now,
							 int flowlog, __u32 *tag)
{
	struct epg_ct_val *v = bpf_map_lookup_elem(&epg_ct, k);

	/* The table's elements are preallocated: one deleted on another CPU
	 * (idle, or closed) is reused at once by the next flow created, while
	 * this CPU may hold it. An element whose digest is not this key's
	 * holds another flow now: this packet has none. */
	*tag = epg_ct_tag(k);
	if (v && v->key_tag != *tag)
		return NULL;

	/* now was read before the lookup: another CPU may have seen the flow
	 * since, so last_seen can be later than now (unsigned wrap = "idle").
	 * Idle for the whole timeout: gone (a zero timeout, which the benchmark
	 * uses for new flows, expires within the same tick of the clock). */
	if (v && now >= v->last_seen_ns && now - v->last_seen_ns >= (__u64)v->timeout_s * EPG_NSEC) {
		if (epg_ct_remove(k, v, flowlog))
			epg_count_event(EPG_G_CT_EXPIRED);
		return NULL;
	}
	return v;
}

/* The state a packet moves its flow to. */
static __always_inline __u8 epg_ct_next_state(__u8 state, __u8 flags, int from_init,
					      __u8 replies)
{
	switch (state) {
	case EPG_CT_TCP_SYN_SENT:
		if (flags & EPG_TCP_RST)
			return EPG_CT_TCP_CLOSED;
		if (!from_init && (flags & (EPG_TCP_SYN | EPG_TCP_ACK)) == (EPG_TCP_SYN | EPG_TCP_ACK))
			return EPG_CT_TCP_SYN_RECV;
		return state;
	case EPG_CT_TCP_SYN_RECV:
		if (flags & EPG_TCP_RST)
			return EPG_CT_TCP_CLOSED;
		if (flags & EPG_TCP_FIN)
			return EPG_CT_TCP_CLOSING; /* from either side */
		if (from_init && (flags & EPG_TCP_ACK) && !(flags & EPG_TCP_SYN))
			return EPG_CT_TCP_ESTABLISHED;
		return state;
	case EPG_CT_TCP_ESTABLISHED:
	case EPG_CT_TCP_CLOSING:
		if (flags & EPG_TCP_RST)
			return EPG_CT_TCP_CLOSED;
		if (flags & EPG_TCP_FIN)
			return EPG_CT_TCP_CLOSING;
		return state;
	case EPG_CT_UDP:
		return !from_init && replies >= 1 ? EPG_CT_UDP_STREAM : state;
	}
	return state;
}

/* A packet's counts and TCP flags, added to its flow's direction. */
static __always_inline void epg_ct_count(struct epg_ct_val *v, const struct epg_pkt *p, __u32 dir,
					 const struct epg_counter *n)
{
	if (dir < EPG_DIR_MAX) {
		__sync_fetch_and_add(&v->packets[dir], n->packets);
		__sync_fetch_and_add(&v->bytes[dir], n->bytes);
		v->tcp_flags[dir] |= p->tcp_flags;
	}
}

/* Account a packet to its flow and move the state on. */
static __always_inline void epg_ct_update(struct epg_ct_val *v, const struct epg_pkt *p,
					  __u32 dir, int from_init, const struct epg_counter *n, __u64 now,
					  __u32 gen, __u32 profile)
{
	__u8 state = epg_ct_next_state(v->state, p->tcp_flags, from_init, v->replies);

	epg_ct_count(v, p, dir, n);
	if (!from_init && v->replies < 255)
		v->replies++;
	if (state != v->state) { /* the timeouts are read only then */
		v->state = state;
		v->timeout_s = epg_ct_timeout(epg_ct_timeouts_of(gen, profile), state);
	}
	v->last_seen_ns = now;
}

/* The state a new flow starts in. TCP: a SYN starts a handshake; any other
 * packet that a rule allows is picked up mid-stream as established (EC2
 * judges every packet by the rules, tracking only adds the replies). */
static __always_inline __u8 epg_ct_first_state(const struct epg_pkt *p)
{
	switch (p->proto) {
	case IPPROTO_TCP:
		if (p->tcp_flags & EPG_TCP_RST)
			return EPG_CT_TCP_CLOSED;
		if ((p->tcp_flags & (EPG_TCP_SYN | EPG_TCP_ACK)) == EPG_TCP_SYN)
			return EPG_CT_TCP_SYN_SENT;
		return EPG_CT_TCP_ESTABLISHED;
	case IPPROTO_UDP:
		return EPG_CT_UDP;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		return EPG_CT_ICMP;
	}
	return EPG_CT_OTHER;
}

/* Create the flow of an allowed packet. Returns 0, or -1 when the table is
 * full (the packet must be dropped: conntrack_allowance_exceeded). */
static __always_inline int epg_ct_create(const struct epg_ct_key *k, int src_lo,
					 const struct epg_pkt *p, __u32 dir,
					 const struct epg_addr_val *ep, __u32 cls_gen,
					 __u32 rule_slot, __u32 ifindex, const struct epg_counter *n,
					 __u64 now,
					 const struct epg_ct_timeouts *t, __u32 acl_gen,
					 __u32 acl_slot)
{
	struct epg_scratch *scr = epg_scratch_get();
	struct epg_ct_val *v;
	long rc;

	if (!scr)
		return 0;
	v = &scr->ct;
	__builtin_memset(v, 0, sizeof(*v));
	v->created_ns = now;
	v->last_seen_ns = now;
	v->ep_slot = ep->ep_slot;
	v->rule_slot = rule_slot;
	v->ifindex = ifindex;
	v->init_dir = (__u8)dir;
	v->init_lo = (__u8)src_lo;
	v->state = epg_ct_first_state(p);
	v->timeout_s = epg_ct_timeout(t, v->state);
	v->packets[dir & 1] = n->packets;
	v->bytes[dir & 1] = n->bytes;
	v->tcp_flags[dir & 1] = p->tcp_flags;
	v->acl_gen[0] = acl_gen; /* from the initiator: this packet */
	v->acl_slot[0] = acl_slot;
	v->cls[0] = *ep;
	v->cls_gen[0] = cls_gen;
	v->cls_dir[0] = (__u8)dir;
	v->key_tag = epg_ct_tag(k);
	rc = bpf_map_update_elem(&epg_ct, k, v, BPF_NOEXIST);
	if (rc == -E2BIG || rc == -ENOMEM) {
		epg_count_global(EPG_G_CT_EXCEEDED, n);
		return -1;
	}
	if (!rc) {
		epg_count_event(EPG_G_CT_CREATED);
	} else if (rc == -EEXIST) {
		/* another CPU created it first: this packet counts in that flow
		 * (its state moves with the next packet). Also met when the
		 * flow found idle above could not be removed: the counts then
		 * go to that idle flow, which is removed when next met. */
		struct epg_ct_val *o = bpf_map_lookup_elem(&epg_ct, k);

		if (o)
			epg_ct_count(o, p, dir, n);
	}
	return 0;
}

/* An ICMP error quoting a live flow is part of it. */
static __always_inline int epg_ct_related(const struct epg_pkt *p, __u64 now, int flowlog)
{
	struct epg_ct_key k = {};
	__u32 tag;
	__u32 family = p->family;

	if (!p->icmp_err)
		return 0;
	/* an error goes to the sender of the packet it quotes: a quote from
	 * anyone else is not related, whatever flow it names */
	if (!epg_addr_eq(family, p->inner.saddr, p->daddr))
		return 0;
	epg_ct_key_make(&k, family, p->inner.proto, p->inner.saddr, p->inner.daddr,
			p->inner.sport, p->inner.dport);
	return epg_ct_lookup(&k, now, flowlog, &tag) != NULL;
}

#endif
