// SPDX-License-Identifier: MIT
/* The flow table from userspace: listing, expiring idle flows (the sweeper),
 * flushing. The datapath also removes an idle flow when it finds one. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include "epgate.h"

#define EPG_CT_BATCH 256

const char *epg_ct_state_name(uint8_t state)
{
	switch (state) {
	case EPG_CT_TCP_SYN_SENT: return "syn_sent";
	case EPG_CT_TCP_SYN_RECV: return "syn_recv";
	case EPG_CT_TCP_ESTABLISHED: return "established";
	case EPG_CT_TCP_CLOSING: return "closing";
	case EPG_CT_TCP_CLOSED: return "closed";
	case EPG_CT_UDP: return "udp";
	case EPG_CT_UDP_STREAM: return "udp_stream";
	case EPG_CT_ICMP: return "icmp";
	case EPG_CT_OTHER: return "other";
	}
	return "unknown";
}

int epg_ct_foreach(struct epg_maps *m, int (*fn)(const struct epg_flow *f, void *ctx),
		   void *ctx)
{
	struct epg_ct_key key, next, *prev = NULL;
	struct epg_flow f;
	int rc;

	while (!bpf_map_get_next_key(m->ct, prev, &next)) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(m->ct, &key, &f.val))
			continue; /* removed meanwhile */
		f.key = key;
		rc = fn(&f, ctx);
		if (rc)
			return rc;
	}
	return 0;
}

static int count_one(const struct epg_flow *f, void *ctx)
{
	(*(int *)ctx)++;
	return 0;
}

int epg_ct_count(struct epg_maps *m)
{
	int n = 0;

	epg_ct_foreach(m, count_one, &n);
	return n;
}

struct expire_ctx {
	uint64_t now;
	bool all;
	struct epg_ct_key *keys;
	size_t n, cap;
};

static int collect_expired(const struct epg_flow *f, void *ctx)
{
	struct expire_ctx *x = ctx;

	if (!x->all && x->now - f->val.last_seen_ns <= (uint64_t)f->val.timeout_s * 1000000000ull)
		return 0;
	if (x->now < f->val.last_seen_ns && !x->all)
		return 0;
	if (x->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : EPG_CT_BATCH;
		void *v = realloc(x->keys, cap * sizeof(*x->keys));

		if (!v)
			return -ENOMEM;
		x->keys = v;
		x->cap = cap;
	}
	x->keys[x->n++] = f->key;
	return 0;
}

int epg_ct_expire(struct epg_maps *m, uint64_t now_ns, bool all)
{
	struct expire_ctx x = { .now = now_ns, .all = all };
	int rc, removed = 0;

	rc = epg_ct_foreach(m, collect_expired, &x);
	for (size_t i = 0; !rc && i < x.n; i++) {
		struct epg_ct_val v;

		/* look again: a packet may have revived it since */
		if (!all && (bpf_map_lookup_elem(m->ct, &x.keys[i], &v) ||
			      now_ns - v.last_seen_ns <= (uint64_t)v.timeout_s * 1000000000ull))
			continue;
		if (!bpf_map_delete_elem(m->ct, &x.keys[i]))
			removed++;
	}
	free(x.keys);
	return rc ? rc : removed;
}

int epg_frag_expire(struct epg_maps *m, uint64_t now_ns, bool all)
{
	struct epg_frag_key key, next, *prev = NULL, *keys = NULL;
	size_t n = 0, cap = 0;
	int removed = 0;

	while (!bpf_map_get_next_key(m->frag, prev, &next)) {
		struct epg_frag_val v;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(m->frag, &key, &v))
			continue;
		if (!all && now_ns - v.created_ns <= (uint64_t)EPG_FRAG_TIMEOUT_S * 1000000000ull)
			continue;
		if (n == cap) {
			void *p = realloc(keys, (cap = cap ? cap * 2 : 256) * sizeof(*keys));

			if (!p) {
				free(keys);
				return -ENOMEM;
			}
			keys = p;
		}
		keys[n++] = key;
	}
	for (size_t i = 0; i < n; i++)
		if (!bpf_map_delete_elem(m->frag, &keys[i]))
			removed++;
	free(keys);
	return removed;
}
