// SPDX-License-Identifier: MIT
/* The flow table from userspace: listing, expiring idle flows (the sweeper),
 * flushing. The datapath also removes an idle flow when it finds one. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "epgate.h"
#include "mapio.h"

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

struct each_flow {
	int (*fn)(const struct epg_flow *f, void *ctx);
	void *ctx;
};

static int each_flow(const void *key, const void *val, void *ctx)
{
	const struct each_flow *x = ctx;
	struct epg_flow f;

	memcpy(&f.key, key, sizeof(f.key));
	memcpy(&f.val, val, sizeof(f.val));
	return x->fn(&f, x->ctx);
}

int epg_ct_foreach(struct epg_maps *m, int (*fn)(const struct epg_flow *f, void *ctx),
		   void *ctx)
{
	struct each_flow x = { fn, ctx };

	return epg_map_each(m->ct, sizeof(struct epg_ct_key), sizeof(struct epg_ct_val),
			    each_flow, &x);
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

int epg_flow_vec_push(struct epg_flow_vec *fv, const struct epg_flow *f)
{
	if (fv->n == fv->cap) {
		size_t cap = fv->cap ? fv->cap * 2 : EPG_CT_BATCH;
		void *v = realloc(fv->v, cap * sizeof(*fv->v));

		if (!v)
			return -ENOMEM;
		fv->v = v;
		fv->cap = cap;
	}
	fv->v[fv->n++] = *f;
	return 0;
}

struct expire_ctx {
	uint64_t now;
	bool all;
	struct epg_flow_vec idle;
};

static bool is_idle(const struct epg_ct_val *v, uint64_t now)
{
	return now >= v->last_seen_ns &&
	       now - v->last_seen_ns > (uint64_t)v->timeout_s * 1000000000ull;
}

static int collect_expired(const struct epg_flow *f, void *ctx)
{
	struct expire_ctx *x = ctx;

	if (!x->all && !is_idle(&f->val, x->now))
		return 0;
	return epg_flow_vec_push(&x->idle, f);
}

/* Flows removed where no flow log can report them, while serve writes one:
 * counted as lost (EPG_G_ENDED_LOST, reported as SKIPDATA), on the first
 * CPU's slot of the per-CPU counter. */
static void count_unreported(struct epg_maps *m, int n)
{
	int ncpu = libbpf_num_possible_cpus();
	uint32_t zero = 0, key = EPG_G_ENDED_LOST;
	struct epg_counter *v;
	struct epg_meta meta;

	if (n <= 0 || bpf_map_lookup_elem(m->meta, &zero, &meta) || !(meta.flags & EPG_META_FLOWLOG))
		return;
	v = calloc((size_t)(ncpu > 0 ? ncpu : 1), sizeof(*v));
	if (v && !bpf_map_lookup_elem(m->global, &key, v)) {
		v[0].packets += (uint64_t)n;
		bpf_map_update_elem(m->global, &key, v, BPF_ANY);
	}
	free(v);
}

int epg_ct_expire(struct epg_maps *m, uint64_t now_ns, bool all, struct epg_flow_vec *ended)
{
	struct expire_ctx x = { .now = now_ns, .all = all };
	int rc, removed = 0;

	rc = epg_ct_foreach(m, collect_expired, &x);
	for (size_t i = 0; !rc && i < x.idle.n; i++) {
		struct epg_flow *f = &x.idle.v[i];
		struct epg_ct_val cur;

		/* a packet since the table was read: left alone, rather than
		 * taken out and put back (packets meeting no flow meanwhile) */
		if (!all && (bpf_map_lookup_elem(m->ct, &f->key, &cur) || !is_idle(&cur, now_ns)))
			continue;
		/* taken out with its last counts in one step; absent: the
		 * datapath removed it first, and reported it */
		if (bpf_map_lookup_and_delete_elem(m->ct, &f->key, &f->val))
			continue;
		/* a packet revived it (or a new flow took its ports) since it
		 * was read: it goes back, unless a packet meanwhile made a new
		 * flow there, and then this one ended here after all */
		if (!all && !is_idle(&f->val, now_ns) &&
		    !bpf_map_update_elem(m->ct, &f->key, &f->val, BPF_NOEXIST))
			continue;
		removed++;
		if (ended && epg_flow_vec_push(ended, f))
			rc = -ENOMEM;
	}
	free(x.idle.v);
	if (!ended)
		count_unreported(m, removed);
	return rc ? rc : removed;
}

static int ended_one(void *ctx, void *data, size_t size)
{
	struct epg_flow f;

	if (size < sizeof(f))
		return 0; /* not ours: skip it */
	memcpy(&f, data, sizeof(f));
	return epg_flow_vec_push(ctx, &f);
}

int epg_ct_drain_ended(struct epg_maps *m, struct epg_flow_vec *ended)
{
	struct ring_buffer *rb;
	size_t before = ended->n;
	int rc;

	if (m->ct_ended < 0)
		return 0;
	rb = ring_buffer__new(m->ct_ended, ended_one, ended, NULL);
	if (!rb)
		return -errno;
	rc = ring_buffer__consume(rb);
	ring_buffer__free(rb);
	return rc < 0 ? rc : (int)(ended->n - before);
}

int epg_frag_expire(struct epg_maps *m, uint64_t now_ns, bool all)
{
	struct epg_frag_key *keys = NULL;
	struct epg_frag_val *vals = NULL;
	size_t n = 0;
	int removed = 0, rc;

	rc = epg_map_read_all(m->frag, sizeof(*keys), sizeof(*vals), (void **)&keys,
			      (void **)&vals, &n);
	for (size_t i = 0; !rc && i < n; i++) {
		if (!all && now_ns - vals[i].created_ns <= (uint64_t)EPG_FRAG_TIMEOUT_S * 1000000000ull)
			continue;
		if (!bpf_map_delete_elem(m->frag, &keys[i]))
			removed++;
	}
	free(keys);
	free(vals);
	return rc ? rc : removed;
}
