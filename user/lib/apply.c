// SPDX-License-Identifier: MIT
/*
 * Installing a compiled policy, atomically and incrementally.
 *
 * An apply
 *  1. reads what is stored: the policy sets (epg_sets), the endpoint
 *     addresses of both generations (epg_addr), the names of the counters;
 *  2. gives every endpoint and rule of the plan a counter slot: the one it
 *     had, so its counters continue; new slots start at zero;
 *  3. digests each ruleset and network ACL of the plan (its compiled entries
 *     and their counter slots) and reuses the stored set with that digest, or
 *     writes a new set under a free id: an unchanged ruleset costs nothing;
 *  4. writes the next generation's endpoint addresses (pointing at set ids)
 *     and timeout sets, and the address filter over both generations;
 *  5. flips epg_meta.active_gen: every endpoint switches at once;
 *  6. after packets in flight have finished, deletes the old generation's
 *     addresses; sets that no generation uses become garbage, deleted when
 *     garbage has grown large (one scan of the rule maps), reused if their
 *     content comes back.
 * A failure before 5 leaves the active policy as it was: sets written for
 * nothing are garbage like any other.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "epgate.h"
#include "mapio.h"

#define EPG_GRACE_US 20000 /* the fallback when no grace period can be waited for */
/* Garbage is collected when its prefixes exceed this many, or a quarter of
 * the live ones, or when a new set does not fit. */
#define EPG_GC_MIN_PREFIXES 65536

#define set_err epg_set_err

/* ---- counter slots: stable across applies -------------------------------- */

/* Stored names are C strings cut to their field: compare plan names cut
 * the same way. */
static void copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

static uint64_t str_hash(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	return (h ^ 0xff) * 0x100000001b3ull;
}

/* Slots by the names they had: open addressing, slot + 1 per bucket. */
struct slot_table {
	uint32_t *v;
	size_t mask;
};

static int table_init(struct slot_table *t, size_t n)
{
	size_t size = 1024;

	while (size < 2 * n)
		size <<= 1;
	t->mask = size - 1;
	t->v = calloc(size, sizeof(*t->v));
	return t->v ? 0 : -ENOMEM;
}

static void table_add(struct slot_table *t, uint64_t h, uint32_t slot)
{
	size_t b = h & t->mask;

	while (t->v[b])
		b = (b + 1) & t->mask;
	t->v[b] = slot + 1;
}

struct slots {
	uint32_t *ep_slot;   /* plan endpoint -> slot */
	uint32_t *rule_slot; /* plan rule -> slot */
	uint8_t *ep_keep;    /* slot -> used by the new plan */
	uint8_t *rule_keep;
	struct epg_ep_info *ep_old;     /* slot -> stored name */
	uint64_t *rule_key_old;         /* slot -> stored rule identity, 0 free */
	uint64_t *rule_key;             /* plan rule -> its identity */
	uint32_t *new_ep_slots;         /* slots to zero */
	size_t n_new_ep_slots;
	uint32_t *new_rule_slots;
	size_t n_new_rule_slots;
};

static void slots_free(struct slots *s)
{
	free(s->ep_slot);
	free(s->rule_slot);
	free(s->ep_keep);
	free(s->rule_keep);
	free(s->ep_old);
	free(s->rule_key_old);
	free(s->rule_key);
	free(s->new_ep_slots);
	free(s->new_rule_slots);
}

static bool ep_slot_used(const struct slots *s, uint32_t i)
{
	return s->ep_old[i].in_use;
}

static bool rule_slot_used(const struct slots *s, uint32_t i)
{
	return s->rule_key_old[i] != 0;
}

/* The lowest slot from *next on that was free before this apply and is not
 * taken by it (keep), or max. */
static uint32_t free_slot(const struct slots *s, uint32_t *next, uint32_t max,
			  const uint8_t *keep, bool (*used)(const struct slots *, uint32_t))
{
	while (*next < max && (used(s, *next) || keep[*next]))
		(*next)++;
	return *next;
}

/* Claim *slot for the new plan: the one found by name, or (*slot == max)
 * the lowest free one, recorded in fresh[] to be zeroed. -E2BIG: none free. */
static int claim_slot(const struct slots *s, uint32_t *slot, uint32_t *next_free, uint32_t max,
		      uint8_t *keep, bool (*used)(const struct slots *, uint32_t),
		      uint32_t *fresh, size_t *n_fresh)
{
	if (*slot == max) {
		*slot = free_slot(s, next_free, max, keep, used);
		if (*slot == max)
			return -E2BIG;
		fresh[(*n_fresh)++] = *slot;
	}
	keep[*slot] = 1;
	return 0;
}

static int assign_ep_slots(struct epg_maps *m, const struct epg_plan *plan,
			   struct slots *s)
{
	struct slot_table t = { 0 };
	uint32_t next_free = 0;
	int rc;

	rc = epg_read_array(m->ep_info, m->max_eps, sizeof(*s->ep_old), s->ep_old);
	if (!rc)
		rc = table_init(&t, m->max_eps);
	if (rc)
		return rc;
	for (uint32_t i = 0; i < m->max_eps; i++)
		if (s->ep_old[i].in_use)
			table_add(&t, str_hash(0, s->ep_old[i].endpoint_id), i);
	for (size_t e = 0; e < plan->n_eps; e++) {
		char id[EPG_ID_LEN];
		uint32_t slot = m->max_eps;

		copy_str(id, sizeof(id), plan->eps[e].ep->id);
		for (size_t b = str_hash(0, id) & t.mask; t.v[b]; b = (b + 1) & t.mask)
			if (!strcmp(s->ep_old[t.v[b] - 1].endpoint_id, id) && !s->ep_keep[t.v[b] - 1]) {
				slot = t.v[b] - 1;
				break;
			}
		rc = claim_slot(s, &slot, &next_free, m->max_eps, s->ep_keep, ep_slot_used,
				s->new_ep_slots, &s->n_new_ep_slots);
		if (rc)
			break;
		s->ep_slot[e] = slot;
	}
	free(t.v);
	return rc;
}

/* What epg_rule_info holds for a rule of the plan. */
static void rule_info_of(const struct epg_rule_plan *rp, struct epg_rule_info *info)
{
	memset(info, 0, sizeof(*info));
	info->dir = rp->dir;
	info->kind = rp->kind;
	copy_str(info->group_id, sizeof(info->group_id), rp->group_id);
	copy_str(info->rule_id, sizeof(info->rule_id), rp->rule_id);
	copy_str(info->desc, sizeof(info->desc), rp->desc);
}

static uint64_t rule_identity(const struct epg_rule_info *info);

/* A rule keeps the slot of the same identity, so its counters continue; a
 * new one takes a free slot. */
static int assign_rule_slots(struct epg_maps *m, const struct epg_plan *plan,
			     struct slots *s)
{
	struct slot_table t = { 0 };
	uint32_t next_free = 0, stored = 0;
	int rc;

	rc = epg_read_array(m->rule_keys, m->max_rule_slots, sizeof(uint64_t), s->rule_key_old);
	if (rc)
		return rc;
	/* the table holds the stored rules, which may be many more than the
	 * plan's (a policy that shrinks): sized for the plan alone, it filled
	 * up and the probe below never ended */
	for (uint32_t i = 0; i < m->max_rule_slots; i++)
		stored += s->rule_key_old[i] != 0;
	s->new_rule_slots = calloc(plan->n_rules ? plan->n_rules : 1, sizeof(uint32_t));
	s->rule_key = calloc(plan->n_rules ? plan->n_rules : 1, sizeof(uint64_t));
	if (!s->new_rule_slots || !s->rule_key || table_init(&t, stored)) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < m->max_rule_slots; i++)
		if (s->rule_key_old[i])
			table_add(&t, s->rule_key_old[i], i);
	for (size_t r = 0; r < plan->n_rules; r++) {
		struct epg_rule_info info;
		uint32_t slot = m->max_rule_slots;
		uint64_t key;

		rule_info_of(&plan->rules[r], &info);
		key = s->rule_key[r] = rule_identity(&info);
		for (size_t b = key & t.mask; t.v[b]; b = (b + 1) & t.mask) {
			uint32_t cand = t.v[b] - 1;

			if (s->rule_key_old[cand] == key && !s->rule_keep[cand]) {
				slot = cand;
				break;
			}
		}
		rc = claim_slot(s, &slot, &next_free, m->max_rule_slots, s->rule_keep,
				rule_slot_used, s->new_rule_slots, &s->n_new_rule_slots);
		if (rc)
			break;
		s->rule_slot[r] = slot;
	}
out:
	free(t.v);
	return rc;
}

/* New slots start from zero, on every CPU: a batch per few hundred slots. */
static int zero_slots(int fd, const uint32_t *slots, size_t n, size_t value_size)
{
	int ncpu = libbpf_num_possible_cpus();
	size_t per = ((value_size + 7) & ~(size_t)7) * (size_t)(ncpu > 0 ? ncpu : 1);
	size_t chunk = 256;
	void *zeros = calloc(chunk, per);
	int rc = 0;

	if (!zeros)
		return -ENOMEM;
	for (size_t i = 0; i < n && !rc; i += chunk)
		rc = epg_map_put_many(fd, &slots[i], zeros, n - i < chunk ? n - i : chunk,
				      sizeof(uint32_t), per);
	free(zeros);
	return rc;
}

/* ---- writing ------------------------------------------------------------- */

static int put(const struct epg_maps *m, int fd, const void *k, const void *v, const char *what,
	       struct epg_error *err)
{
	if (bpf_map_update_elem(fd, k, v, BPF_ANY))
		return set_err(err, -errno, "cannot write %s/%s: %s", m->pin_dir, what, strerror(errno));
	return 0;
}

static bool map_full(int rc)
{
	return rc == -E2BIG || rc == -ENOMEM || rc == -ENOSPC;
}

/* A full trie says -ENOSPC where a full hash says -E2BIG: either way the
 * policy is too large (exit status 2). */
static int full_err(struct epg_error *err, const struct epg_maps *m, int rc, const char *what)
{
	return set_err(err, rc == -ENOSPC ? -E2BIG : rc, "cannot write %s/%s: %s%s", m->pin_dir, what,
		       strerror(-rc),
		       map_full(rc) ? " (the map is full: the policy is larger than this build's limits in include/epgate/abi.h; split it, or raise them and rebuild)" : "");
}

/* Names of endpoints and rules: only those that changed are written. */
static int write_names(struct epg_maps *m, const struct epg_plan *plan,
		       const struct slots *s, struct epg_error *err)
{
	int rc = 0;

	for (size_t e = 0; e < plan->n_eps && !rc; e++) {
		const struct epg_ep_plan *ep = &plan->eps[e];
		const struct epg_ruleset_plan *rs = &plan->rulesets[ep->ruleset];
		struct epg_ep_info info;

		memset(&info, 0, sizeof(info));
		info.in_use = 1;
		info.n_addrs = (uint32_t)ep->n_addrs;
		copy_str(info.endpoint_id, sizeof(info.endpoint_id), ep->ep->id);
		copy_str(info.service_name, sizeof(info.service_name),
			 ep->ep->service ? ep->ep->service : "");
		for (int d = 0; d < EPG_DIR_MAX; d++)
			info.n_rules[d] = rs->dir[d].n_bits;
		for (size_t a = 0; a < ep->n_addrs; a++) {
			size_t b = 0;

			if (!ep->addr_acl[a])
				continue;
			if (!info.n_acl_addrs++)
				copy_str(info.acl_id, sizeof(info.acl_id),
					 plan->acls[ep->addr_acl[a] - 1].acl->id);
			while (b < a && ep->addr_acl[b] != ep->addr_acl[a])
				b++;
			info.n_acls += b == a; /* first address under this ACL */
		}
		if (!memcmp(&info, &s->ep_old[s->ep_slot[e]], sizeof(info)))
			continue;
		rc = put(m, m->ep_info, &s->ep_slot[e], &info, "epg_ep_info", err);
	}
	/* rules: only those that take a new slot (a kept slot's name is its
	 * identity's); the name before the identity, which marks it in use */
	if (!rc && s->n_new_rule_slots) {
		size_t n = s->n_new_rule_slots;
		struct epg_rule_info *infos = calloc(n, sizeof(*infos));
		uint64_t *keys = calloc(n, sizeof(*keys));
		uint32_t *slots = calloc(n, sizeof(*slots));
		size_t k = 0;

		if (!infos || !keys || !slots)
			rc = set_err(err, -ENOMEM, "out of memory");
		for (size_t r = 0; !rc && r < plan->n_rules; r++) {
			uint32_t slot = s->rule_slot[r];

			if (s->rule_key_old[slot] == s->rule_key[r])
				continue;
			rule_info_of(&plan->rules[r], &infos[k]);
			keys[k] = s->rule_key[r];
			slots[k++] = slot;
		}
		if (!rc && (rc = epg_map_put_many(m->rule_info, slots, infos, k, sizeof(*slots),
						  sizeof(*infos))))
			rc = full_err(err, m, rc, "epg_rule_info");
		if (!rc && (rc = epg_map_put_many(m->rule_keys, slots, keys, k, sizeof(*slots),
						  sizeof(*keys))))
			rc = full_err(err, m, rc, "epg_rule_keys");
		free(infos);
		free(keys);
		free(slots);
	}
	return rc;
}

/* Rule slots made free: the identity goes first (the slot is free from
 * then on), then the name. */
static void free_rule_slots(struct epg_maps *m, const uint32_t *slots, size_t n)
{
	uint64_t *zeros = calloc(n ? n : 1, sizeof(*zeros));

	if (zeros && !epg_map_put_many(m->rule_keys, slots, zeros, n, sizeof(*slots),
				       sizeof(*zeros)))
		epg_map_del_many(m->rule_info, slots, n, sizeof(*slots));
	free(zeros);
}

/* A failed apply takes back the names it wrote: status and the metrics go on
 * describing the policy in force, and the rule slots it claimed (all free
 * before it: claim_slot takes no other) are free again. */
static void unwrite_names(struct epg_maps *m, const struct epg_plan *plan,
			  const struct slots *s)
{
	for (size_t e = 0; e < plan->n_eps; e++)
		bpf_map_update_elem(m->ep_info, &s->ep_slot[e], &s->ep_old[s->ep_slot[e]], BPF_ANY);
	free_rule_slots(m, s->new_rule_slots, s->n_new_rule_slots);
}

/* Names of endpoints and rules that the new generation no longer has. */
static void release_names(struct epg_maps *m, const struct slots *s)
{
	struct epg_ep_info none = { 0 };
	uint32_t *gone = calloc(m->max_rule_slots, sizeof(*gone));
	size_t n = 0;

	for (uint32_t i = 0; i < m->max_eps; i++)
		if (!s->ep_keep[i] && s->ep_old[i].in_use)
			bpf_map_update_elem(m->ep_info, &i, &none, BPF_ANY);
	for (uint32_t i = 0; gone && i < m->max_rule_slots; i++)
		if (s->rule_key_old[i] && !s->rule_keep[i])
			gone[n++] = i;
	if (gone)
		free_rule_slots(m, gone, n);
	free(gone);
}

/* ---- policy sets ---------------------------------------------------------- */

/* A 128-bit digest, eight bytes at a time (not cryptographic: the input is
 * the administrator's; kind, bit and prefix counts are compared too). */
struct digest {
	uint64_t a, b;
};

static uint64_t rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static void dg_word(struct digest *d, uint64_t w)
{
	d->a = rotl64(d->a ^ (w * 0x9e3779b97f4a7c15ull), 31) * 0xbf58476d1ce4e5b9ull;
	d->b = (rotl64(d->b + (w ^ 0x94d049bb133111ebull), 27) * 0x87c37b91114253d5ull) ^ d->a;
}

static void dg_bytes(struct digest *d, const void *p, size_t n)
{
	const uint8_t *c = p;
	uint64_t w;

	for (; n >= 8; c += 8, n -= 8) {
		memcpy(&w, c, 8);
		dg_word(d, w);
	}
	if (n) {
		w = 0;
		memcpy(&w, c, n);
		dg_word(d, w ^ ((uint64_t)n << 56));
	}
}

/* Mix the two lanes into each other: the digest's final 128 bits. */
static void dg_final(struct digest *d)
{
	d->a ^= rotl64(d->b, 29) * 0xff51afd7ed558ccdull;
	d->b ^= rotl64(d->a, 33) * 0xc4ceb9fe1a85ec53ull;
}

static uint64_t rule_identity(const struct epg_rule_info *info)
{
	struct digest d = { 0x243f6a8885a308d3ull, 0x13198a2e03707344ull };

	dg_bytes(&d, info, sizeof(*info));
	dg_final(&d);
	return d.a ? d.a : 1; /* 0 marks a free slot */
}

static void dg_lpm(struct digest *d, const struct epg_lpm_set *set)
{
	dg_word(d, set->n);
	for (size_t i = 0; i < set->n; i++) {
		dg_word(d, set->v[i].plen);
		dg_bytes(d, set->v[i].data, sizeof(set->v[i].data));
		for (uint64_t w = 0; w < EPG_RULE_WORDS; w++) /* mostly zero words */
			if (set->v[i].bm.w[w])
				dg_word(d, set->v[i].bm.w[w] ^ rotl64(w + 1, 57));
		dg_word(d, 0x5bd1e995ull);
	}
}

static size_t dir_prefixes(const struct epg_dir_plan *dp)
{
	return dp->svc.n + dp->peer4.n + dp->peer6.n;
}

/* What a plan's set would be stored as (complete aside). */
static void set_describe(const struct epg_dir_plan dir[EPG_DIR_MAX], uint32_t kind,
			 const struct slots *s, struct epg_set_info *info)
{
	struct digest d = { 0x6a09e667f3bcc908ull, 0xbb67ae8584caa73bull };

	memset(info, 0, sizeof(*info));
	info->kind = kind;
	dg_word(&d, kind);
	for (int k = 0; k < EPG_DIR_MAX; k++) {
		const struct epg_dir_plan *dp = &dir[k];

		info->n_bits[k] = dp->n_bits;
		info->n_prefixes += (uint32_t)dir_prefixes(dp);
		dg_word(&d, dp->n_bits);
		for (uint32_t b = 0; b < dp->n_bits; b++)
			dg_word(&d, ((uint64_t)s->rule_slot[dp->bit_rule[b]] << 1) | dp->bit_deny[b]);
		dg_lpm(&d, &dp->svc);
		dg_lpm(&d, &dp->peer4);
		dg_lpm(&d, &dp->peer6);
	}
	dg_final(&d);
	info->digest[0] = d.a;
	info->digest[1] = d.b;
}

static bool same_content(const struct epg_set_info *x, const struct epg_set_info *y)
{
	return x->digest[0] == y->digest[0] && x->digest[1] == y->digest[1] &&
	       x->kind == y->kind && x->n_bits[0] == y->n_bits[0] &&
	       x->n_bits[1] == y->n_bits[1] && x->n_prefixes == y->n_prefixes;
}

/* The stored sets, as read at the start and kept up to date. */
struct registry {
	struct epg_set_info *info; /* by id; info[id].kind == UINT32_MAX: absent */
	uint8_t *present;          /* by id */
	uint8_t *used;             /* by id: bit g = addresses of generation g point at it */
	uint32_t *by_digest;       /* open addressing: id, 0 = empty */
	size_t n_buckets;
	uint32_t next_free;
	bool collected;            /* garbage collected during this apply */
};

static void registry_free(struct registry *r)
{
	free(r->info);
	free(r->present);
	free(r->used);
	free(r->by_digest);
}

static void registry_index(struct registry *r, uint32_t id)
{
	size_t b = r->info[id].digest[0] & (r->n_buckets - 1);

	while (r->by_digest[b])
		b = (b + 1) & (r->n_buckets - 1);
	r->by_digest[b] = id;
}

static void registry_reindex(struct registry *r)
{
	memset(r->by_digest, 0, r->n_buckets * sizeof(*r->by_digest));
	for (uint32_t id = 1; id < EPG_MAX_SETS; id++)
		if (r->present[id] && r->info[id].complete)
			registry_index(r, id);
}

static int registry_read(struct epg_maps *m, struct registry *r)
{
	struct epg_set_info *vals = NULL;
	uint32_t *keys = NULL;
	size_t n = 0;
	int rc;

	memset(r, 0, sizeof(*r));
	r->info = calloc(EPG_MAX_SETS, sizeof(*r->info));
	r->present = calloc(EPG_MAX_SETS, 1);
	r->used = calloc(EPG_MAX_SETS, 1);
	r->n_buckets = 2 * EPG_MAX_SETS;
	r->by_digest = calloc(r->n_buckets, sizeof(*r->by_digest));
	if (!r->info || !r->present || !r->used || !r->by_digest)
		return -ENOMEM;
	rc = epg_map_read_all(m->sets, sizeof(*keys), sizeof(*vals), (void **)&keys,
			      (void **)&vals, &n);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if (!keys[i] || keys[i] >= EPG_MAX_SETS)
			continue;
		r->info[keys[i]] = vals[i];
		r->present[keys[i]] = 1;
	}
	free(keys);
	free(vals);
	registry_reindex(r);
	r->next_free = 1;
	return 0;
}

static void mark_used(struct registry *r, const struct epg_addr_val *v, uint32_t gen)
{
	if (v->ruleset < EPG_MAX_SETS)
		r->used[v->ruleset] |= (uint8_t)(1u << gen);
	if (v->acl < EPG_MAX_SETS)
		r->used[v->acl] |= (uint8_t)(1u << gen);
}

static uint32_t registry_find(const struct registry *r, const struct epg_set_info *want)
{
	size_t b = want->digest[0] & (r->n_buckets - 1);

	for (; r->by_digest[b]; b = (b + 1) & (r->n_buckets - 1)) {
		uint32_t id = r->by_digest[b];

		if (r->present[id] && r->info[id].complete && same_content(&r->info[id], want))
			return id;
	}
	return 0;
}

typedef bool (*key_in_sets_fn)(const void *key, const uint8_t *dead);

static bool lpm_key_dead(const void *key, const uint8_t *dead)
{
	uint32_t sel;

	memcpy(&sel, (const char *)key + 4, sizeof(sel)); /* after prefixlen */
	return (sel >> 1) < EPG_MAX_SETS && dead[sel >> 1];
}

/* Delete every key of a rule map that belongs to a dead set: one scan. */
static int purge_map(int fd, size_t key_size, const uint8_t *dead)
{
	size_t n = 0, cap = 1024;
	char *keys = malloc(cap * key_size), key[64], next[64];
	void *prev = NULL;
	int rc;

	if (!keys)
		return -ENOMEM;
	while (!bpf_map_get_next_key(fd, prev, next)) {
		if (lpm_key_dead(next, dead)) {
			if (n == cap) {
				char *v = realloc(keys, cap * 2 * key_size);

				if (!v) {
					free(keys);
					return -ENOMEM;
				}
				keys = v;
				cap *= 2;
			}
			memcpy(keys + n++ * key_size, next, key_size);
		}
		memcpy(key, next, key_size);
		prev = key;
	}
	rc = epg_map_del_many(fd, keys, n, key_size);
	free(keys);
	return rc;
}

/*
 * Delete the sets that no generation uses. Each is first marked incomplete
 * (never reused, even if this dies half-way), then its entries go: rule bits
 * by their known keys, prefixes by one scan of each LPM map, then the set.
 */
static int collect_garbage(struct epg_maps *m, struct registry *r)
{
	uint8_t *dead = calloc(EPG_MAX_SETS, 1);
	uint32_t *ids = calloc(EPG_MAX_SETS, sizeof(*ids));
	struct epg_rule_bit_key *bits = NULL;
	size_t n = 0, n_bits = 0;
	int rc = 0;

	r->collected = true;
	if (!dead || !ids) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t id = 1; id < EPG_MAX_SETS; id++) {
		if (!r->present[id] || r->used[id])
			continue;
		dead[id] = 1;
		ids[n++] = id;
		n_bits += r->info[id].n_bits[0] + r->info[id].n_bits[1];
		if (r->info[id].complete) {
			struct epg_set_info v = r->info[id];

			v.complete = 0;
			if (bpf_map_update_elem(m->sets, &id, &v, BPF_ANY)) {
				rc = -errno;
				goto out;
			}
			r->info[id].complete = 0;
		}
	}
	if (!n)
		goto out;
	bits = calloc(n_bits ? n_bits : 1, sizeof(*bits));
	if (!bits) {
		rc = -ENOMEM;
		goto out;
	}
	n_bits = 0;
	for (size_t i = 0; i < n; i++)
		for (uint32_t d = 0; d < EPG_DIR_MAX; d++)
			for (uint32_t b = 0; b < r->info[ids[i]].n_bits[d]; b++)
				bits[n_bits++] = (struct epg_rule_bit_key){ epg_sel(ids[i], d), b };
	rc = epg_map_del_many(m->rule_bits, bits, n_bits, sizeof(*bits));
	rc = rc ? rc : purge_map(m->peer4, sizeof(struct epg_peer4_key), dead);
	rc = rc ? rc : purge_map(m->peer6, sizeof(struct epg_peer6_key), dead);
	rc = rc ? rc : purge_map(m->svc, sizeof(struct epg_svc_key), dead);
	rc = rc ? rc : epg_map_del_many(m->sets, ids, n, sizeof(*ids));
	for (size_t i = 0; !rc && i < n; i++) {
		r->present[ids[i]] = 0;
		memset(&r->info[ids[i]], 0, sizeof(r->info[ids[i]]));
	}
	if (!rc) {
		registry_reindex(r);
		r->next_free = 1;
	}
out:
	free(dead);
	free(ids);
	free(bits);
	return rc;
}

/* Collect when garbage has grown: amortised, a scan per many small applies. */
static int maybe_collect(struct epg_maps *m, struct registry *r)
{
	uint64_t live = 0, garbage = 0, n_garbage = 0;

	for (uint32_t id = 1; id < EPG_MAX_SETS; id++) {
		if (!r->present[id])
			continue;
		if (r->used[id]) {
			live += r->info[id].n_prefixes;
		} else {
			garbage += r->info[id].n_prefixes;
			n_garbage++;
		}
	}
	if (garbage > EPG_GC_MIN_PREFIXES || garbage * 4 > live ||
	    n_garbage > EPG_MAX_SETS / 4)
		return n_garbage ? collect_garbage(m, r) : 0;
	return 0;
}

static int write_dir(struct epg_maps *m, const struct epg_dir_plan *dp, uint32_t sel,
		     const struct slots *s, const char **what)
{
	uint8_t key[4 + 4 + 16 + 4];
	const struct epg_lpm_set *sets[3] = { &dp->svc, &dp->peer4, &dp->peer6 };
	const int fds[3] = { m->svc, m->peer4, m->peer6 };
	static const char *const names[3] = { "epg_svc", "epg_peer4", "epg_peer6" };
	static const size_t lens[3] = { 3, 4, 16 };
	struct epg_rule_bit_key bk[64];
	struct epg_rule_ref refs[64];
	int rc = 0;

	for (int t = 0; t < 3 && !rc; t++) {
		for (size_t i = 0; i < sets[t]->n && !rc; i++) {
			uint32_t plen = 32 + sets[t]->v[i].plen;

			memset(key, 0, sizeof(key));
			memcpy(key, &plen, 4);
			memcpy(key + 4, &sel, 4);
			memcpy(key + 8, sets[t]->v[i].data, lens[t]);
			if (bpf_map_update_elem(fds[t], key, &sets[t]->v[i].bm, BPF_ANY))
				rc = -errno;
		}
		*what = names[t];
	}
	for (uint32_t b = 0; b < dp->n_bits && !rc; b += 64) {
		uint32_t n = dp->n_bits - b < 64 ? dp->n_bits - b : 64;

		for (uint32_t i = 0; i < n; i++) {
			bk[i] = (struct epg_rule_bit_key){ .sel = sel, .bit = b + i };
			refs[i] = (struct epg_rule_ref){ .slot = s->rule_slot[dp->bit_rule[b + i]],
							 .deny = dp->bit_deny[b + i] };
		}
		*what = "epg_rule_bits";
		rc = epg_map_put_many(m->rule_bits, bk, refs, n, sizeof(*bk), sizeof(*refs));
	}
	return rc;
}

/* Store a set under a free id: registered (incomplete) first, so that a
 * crash half-way leaves garbage that a later apply collects. */
static int write_set(struct epg_maps *m, struct registry *r,
		     const struct epg_dir_plan dir[EPG_DIR_MAX], const struct epg_set_info *want,
		     const struct slots *s, uint32_t *out, struct epg_error *err)
{
	struct epg_set_info v = *want;
	const char *what = "epg_sets";
	uint32_t id;
	int rc = 0;

	while (r->next_free < EPG_MAX_SETS && r->present[r->next_free])
		r->next_free++;
	if (r->next_free == EPG_MAX_SETS)
		return set_err(err, -E2BIG, "more than %d rulesets and network ACLs stored under %s (this build's limit)",
			       EPG_MAX_SETS - 1, m->pin_dir);
	id = r->next_free;
	v.complete = 0;
	if (bpf_map_update_elem(m->sets, &id, &v, BPF_ANY))
		return full_err(err, m, -errno, "epg_sets");
	r->present[id] = 1;
	r->info[id] = v;
	r->used[id] = 0;
	for (uint32_t d = 0; d < EPG_DIR_MAX && !rc; d++)
		rc = write_dir(m, &dir[d], epg_sel(id, d), s, &what);
	if (!rc) {
		v.complete = 1;
		if (bpf_map_update_elem(m->sets, &id, &v, BPF_ANY))
			rc = -errno;
		what = "epg_sets";
	}
	if (rc)
		return full_err(err, m, rc, what);
	r->info[id] = v;
	registry_index(r, id);
	*out = id;
	return 0;
}

/* The set for one ruleset or ACL of the plan: a stored one with the same
 * content, or a new one; used by generation gen from now on. */
static int place_set(struct epg_maps *m, struct registry *r,
		     const struct epg_dir_plan dir[EPG_DIR_MAX], uint32_t kind,
		     const struct slots *s, uint32_t gen, uint32_t *out, struct epg_error *err)
{
	struct epg_set_info want;
	int rc;

	set_describe(dir, kind, s, &want);
	*out = registry_find(r, &want);
	if (!*out) {
		rc = write_set(m, r, dir, &want, s, out, err);
		if (rc && (map_full(rc) || rc == -E2BIG) && !r->collected) {
			/* room may be taken by garbage: collect it, try once more */
			if (collect_garbage(m, r) == 0)
				rc = write_set(m, r, dir, &want, s, out, err);
		}
		if (rc)
			return rc;
	}
	r->used[*out] |= 1u << gen;
	return 0;
}

/* ---- endpoint addresses and timeout sets --------------------------------
 * Both generations are kept equal between applies: an apply brings the
 * inactive one to the new policy, flips, then brings the other one (now
 * inactive) to it as well. Each step writes only the entries that differ,
 * so an unchanged endpoint is never rewritten. */

struct addr_ent {
	struct epg_addr_key k;
	struct epg_addr_val v;
};

/* By (family, address): the generation aside. */
static int cmp_addr_ent(const void *a, const void *b)
{
	const struct epg_addr_key *x = &((const struct addr_ent *)a)->k;
	const struct epg_addr_key *y = &((const struct addr_ent *)b)->k;

	if (x->family != y->family)
		return x->family < y->family ? -1 : 1;
	return memcmp(x->addr, y->addr, sizeof(x->addr));
}

struct addrs {
	struct addr_ent *gen[EPG_GENERATIONS]; /* as stored, sorted */
	size_t n[EPG_GENERATIONS];
	struct addr_ent *want;                 /* the new policy's, sorted */
	size_t n_want;
};

static void addrs_free(struct addrs *a)
{
	for (int g = 0; g < EPG_GENERATIONS; g++)
		free(a->gen[g]);
	free(a->want);
}

static int addrs_read(struct epg_maps *m, struct addrs *a)
{
	struct epg_addr_key *keys = NULL;
	struct epg_addr_val *vals = NULL;
	size_t n = 0;
	int rc = epg_map_read_all(m->addr, sizeof(*keys), sizeof(*vals), (void **)&keys,
				  (void **)&vals, &n);

	for (int g = 0; !rc && g < EPG_GENERATIONS; g++) {
		a->gen[g] = calloc(n ? n : 1, sizeof(*a->gen[g]));
		if (!a->gen[g])
			rc = -ENOMEM;
	}
	for (size_t i = 0; !rc && i < n; i++) {
		uint32_t g = keys[i].gen & 1;

		a->gen[g][a->n[g]++] = (struct addr_ent){ keys[i], vals[i] };
	}
	for (int g = 0; !rc && g < EPG_GENERATIONS; g++)
		qsort(a->gen[g], a->n[g], sizeof(*a->gen[g]), cmp_addr_ent);
	free(keys);
	free(vals);
	return rc;
}

static int plan_addrs(const struct epg_plan *plan, const struct slots *s,
		      const uint32_t *ruleset_set, const uint32_t *acl_set, struct addrs *a)
{
	size_t n = 0;

	for (size_t e = 0; e < plan->n_eps; e++)
		n += plan->eps[e].n_addrs;
	a->want = calloc(n ? n : 1, sizeof(*a->want));
	if (!a->want)
		return -ENOMEM;
	for (size_t e = 0; e < plan->n_eps; e++) {
		const struct epg_ep_plan *ep = &plan->eps[e];

		for (size_t i = 0; i < ep->n_addrs; i++) {
			struct addr_ent *x = &a->want[a->n_want++];

			x->k.family = ep->addrs[i].family;
			memcpy(x->k.addr, ep->addrs[i].addr, x->k.family == AF_INET ? 4 : 16);
			x->v.ep_slot = s->ep_slot[e];
			x->v.ruleset = ruleset_set[ep->ruleset];
			x->v.ct_profile = ep->addr_profile[i];
			x->v.acl = ep->addr_acl[i] ? acl_set[ep->addr_acl[i] - 1] : EPG_SET_NONE;
		}
	}
	qsort(a->want, a->n_want, sizeof(*a->want), cmp_addr_ent);
	return 0;
}

/* Make generation gen hold exactly a->want: delete what the new policy does
 * not have, then write what differs. */
static int sync_gen(struct epg_maps *m, const struct addrs *a, uint32_t gen)
{
	const struct addr_ent *have = a->gen[gen];
	size_t i = 0, j = 0, n_put = 0, n_del = 0;
	struct epg_addr_key *pk = calloc(a->n_want + 1, sizeof(*pk));
	struct epg_addr_val *pv = calloc(a->n_want + 1, sizeof(*pv));
	struct epg_addr_key *dk = calloc(a->n[gen] + 1, sizeof(*dk));
	int rc = 0;

	if (!pk || !pv || !dk) {
		rc = -ENOMEM;
		goto out;
	}
	while (i < a->n[gen] || j < a->n_want) {
		int c = i == a->n[gen] ? 1 : j == a->n_want ? -1 :
			cmp_addr_ent(&have[i], &a->want[j]);

		if (c < 0) {
			dk[n_del++] = have[i++].k;
			continue;
		}
		if (c > 0 || memcmp(&have[i].v, &a->want[j].v, sizeof(have[i].v))) {
			pk[n_put] = a->want[j].k;
			pk[n_put].gen = gen;
			pv[n_put++] = a->want[j].v;
		}
		i += c == 0;
		j++;
	}
	/* what goes first: no packet reads generation gen now (it is the
	 * next one, or the old one after the grace period), and the map holds
	 * both generations, so writing first needed room for both old ones
	 * and the new one at once */
	rc = epg_map_del_many(m->addr, dk, n_del, sizeof(*dk));
	if (!rc)
		rc = epg_map_put_many(m->addr, pk, pv, n_put, sizeof(*pk), sizeof(*pv));
out:
	free(pk);
	free(pv);
	free(dk);
	return rc;
}

static void filter_add(struct epg_filter *f, const struct epg_addr_key *k)
{
	uint64_t h = epg_filter_hash(k->family, k->addr);
	uint32_t b1 = EPG_FILTER_BIT1(h), b2 = EPG_FILTER_BIT2(h);

	f->w[b1 / 64] |= 1ULL << (b1 % 64);
	f->w[b2 / 64] |= 1ULL << (b2 % 64);
}

/* The endpoint filter: a superset of the addresses the datapath may look up
 * (with_gen >= 0: also that stored generation's). */
static int write_filter(struct epg_maps *m, const struct addrs *a, int with_gen)
{
	struct epg_filter *f = calloc(1, sizeof(*f));
	uint32_t zero = 0;
	int rc = 0;

	if (!f)
		return -ENOMEM;
	for (size_t i = 0; i < a->n_want; i++)
		filter_add(f, &a->want[i].k);
	for (size_t i = 0; with_gen >= 0 && i < a->n[with_gen]; i++)
		filter_add(f, &a->gen[with_gen][i].k);
	if (bpf_map_update_elem(m->filter, &zero, f, BPF_ANY))
		rc = -errno;
	free(f);
	return rc;
}

/* The timeout sets of generation gen: those that differ from the plan's. */
static int sync_profiles(struct epg_maps *m, const struct epg_plan *plan, uint32_t gen)
{
	struct epg_ct_timeouts stored[EPG_GENERATIONS * EPG_CT_PROFILES];
	int rc = epg_read_array(m->ct_prof, EPG_GENERATIONS * EPG_CT_PROFILES,
				sizeof(stored[0]), stored);

	for (uint32_t i = 0; i < EPG_CT_PROFILES && !rc; i++) {
		struct epg_ct_timeouts t = { 0 };
		uint32_t idx = gen * EPG_CT_PROFILES + i;

		if (i < plan->n_ct_profiles)
			t = plan->ct_profiles[i];
		if (memcmp(&t, &stored[idx], sizeof(t)) &&
		    bpf_map_update_elem(m->ct_prof, &idx, &t, BPF_ANY))
			rc = -errno;
	}
	return rc;
}

/* ---- exempt peers ----------------------------------------------------------- */

/* Make generation gen's exempt peers the plan's: its old entries out, the
 * plan's in. Read by no packet until the flip. */
static int write_exempt(struct epg_maps *m, const struct epg_plan *plan, uint32_t gen)
{
	struct epg_exempt_key *keys = NULL, *add;
	uint32_t *vals = NULL;
	size_t n = 0, n_old = 0;
	int rc;

	if (m->exempt < 0)
		return plan->n_exempt ? -ENOENT : 0;
	rc = epg_map_read_all(m->exempt, sizeof(*keys), sizeof(*vals), (void **)&keys,
			      (void **)&vals, &n);
	for (size_t i = 0; !rc && i < n; i++)
		if (keys[i].space / 2 == gen)
			keys[n_old++] = keys[i];
	if (!rc)
		rc = epg_map_del_many(m->exempt, keys, n_old, sizeof(*keys));
	free(keys);
	free(vals);
	add = calloc(plan->n_exempt + 1, sizeof(*add));
	vals = calloc(plan->n_exempt + 1, sizeof(*vals));
	if (!rc && (!add || !vals))
		rc = -ENOMEM;
	for (size_t i = 0; !rc && i < plan->n_exempt; i++) {
		const struct epg_cidr *c = &plan->exempt[i];

		add[i].space = EPG_EXEMPT_SPACE(gen, c->family);
		add[i].prefixlen = 32 + c->plen;
		memcpy(add[i].addr, c->addr, c->family == AF_INET ? 4 : 16);
		vals[i] = 1;
	}
	if (!rc)
		rc = epg_map_put_many(m->exempt, add, vals, plan->n_exempt, sizeof(*add),
				      sizeof(*vals));
	free(add);
	free(vals);
	return rc;
}

/*
 * Returns once every BPF program that was running has finished, so none
 * still reads the generation just switched off: an RCU grace period (XDP
 * and tc programs run inside RCU read-side sections). The kernel waits for
 * one when userspace puts a map into a map-in-map (maybe_wait_bpf_programs),
 * so a throwaway one is made for that. A timed sleep would not do on a VM,
 * where the hypervisor can stop a vCPU mid-program for longer. When the
 * maps cannot be made, the sleep is what is left.
 */
static void wait_for_programs(void)
{
	int inner = bpf_map_create(BPF_MAP_TYPE_ARRAY, "epg_rcu_inner", 4, 4, 1, NULL);
	LIBBPF_OPTS(bpf_map_create_opts, opts, .inner_map_fd = inner);
	int outer = inner < 0 ? -1 :
		    bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "epg_rcu", 4, 4, 1, &opts);
	uint32_t zero = 0;

	if (outer < 0 || bpf_map_update_elem(outer, &zero, &inner, BPF_ANY))
		usleep(EPG_GRACE_US);
	if (outer >= 0)
		close(outer);
	if (inner >= 0)
		close(inner);
}

/* ---- the apply ------------------------------------------------------------ */

static int alloc_slots(const struct epg_maps *m, struct slots *s, const struct epg_plan *plan)
{
	s->ep_slot = calloc(plan->n_eps + 1, sizeof(*s->ep_slot));
	s->rule_slot = calloc(plan->n_rules + 1, sizeof(*s->rule_slot));
	s->ep_keep = calloc(m->max_eps, 1);
	s->rule_keep = calloc(m->max_rule_slots, 1);
	s->ep_old = calloc(m->max_eps, sizeof(*s->ep_old));
	s->new_ep_slots = calloc(plan->n_eps + 1, sizeof(*s->new_ep_slots));
	s->rule_key_old = calloc(m->max_rule_slots, sizeof(*s->rule_key_old));
	return s->ep_slot && s->rule_slot && s->ep_keep && s->rule_keep && s->ep_old &&
	       s->new_ep_slots && s->rule_key_old ? 0 : -ENOMEM;
}

int epg_policy_apply(struct epg_maps *m, const struct epg_plan *plan,
		     struct epg_error *err)
{
	uint32_t zero = 0, next, *ruleset_set = NULL, *acl_set = NULL;
	struct registry reg = { 0 };
	struct addrs a = { 0 };
	struct slots s = { 0 };
	struct epg_meta meta;
	struct timespec now;
	int rc, named = 0;

	if (bpf_map_lookup_elem(m->meta, &zero, &meta))
		return set_err(err, -errno, "%s/epg_meta: %s", m->pin_dir, strerror(errno));
	next = (meta.active_gen & 1) ^ 1;
	ruleset_set = calloc(plan->n_rulesets + 1, sizeof(*ruleset_set));
	acl_set = calloc(plan->n_acls + 1, sizeof(*acl_set));
	if (!ruleset_set || !acl_set || alloc_slots(m, &s, plan)) {
		rc = set_err(err, -ENOMEM, "out of memory");
		goto out;
	}

	/* 1. What is stored. The inactive generation is read by no packet (the
	 * last apply's grace period is over): it is brought to the new policy,
	 * whatever an apply that died half-way left there. */
	rc = registry_read(m, &reg);
	if (!rc)
		rc = addrs_read(m, &a);
	for (size_t i = 0; !rc && i < a.n[next ^ 1]; i++) /* what the active generation uses */
		mark_used(&reg, &a.gen[next ^ 1][i].v, next ^ 1);
	if (!rc)
		maybe_collect(m, &reg); /* optional: a set that does not fit collects again */
	if (rc) {
		set_err(err, rc, "cannot read the stored policy under %s: %s", m->pin_dir,
			strerror(-rc));
		goto out;
	}

	/* 2. Counter slots. */
	rc = assign_ep_slots(m, plan, &s);
	if (!rc)
		rc = assign_rule_slots(m, plan, &s);
	if (!rc)
		rc = zero_slots(m->ep_stats, s.new_ep_slots, s.n_new_ep_slots,
				sizeof(struct epg_ep_counters));
	if (!rc)
		rc = zero_slots(m->rule_stats, s.new_rule_slots, s.n_new_rule_slots,
				sizeof(struct epg_counter));
	if (rc) {
		if (rc == -E2BIG)
			set_err(err, rc, "cannot assign counter slots: %zu endpoints and %zu rules do not fit the %u endpoint and %u rule counter slots of %s (an apply needs slots for everything stored now plus what it adds; removed endpoints and rules free theirs after it): create the pins anew with larger --max-endpoints or --max-rules (see epgate --help)",
				plan->n_eps, plan->n_rules, m->max_eps, m->max_rule_slots, m->pin_dir);
		else
			set_err(err, rc, "cannot assign or zero counter slots (%s/epg_ep_stats, epg_rule_stats): %s",
				m->pin_dir, strerror(-rc));
		goto out;
	}
	rc = write_names(m, plan, &s, err);
	named = 1; /* from here on a failure takes them back (unwrite_names) */
	if (rc)
		goto out;

	/* 3. Sets: reused when unchanged, written when new. */
	for (size_t i = 0; i < plan->n_rulesets && !rc; i++)
		rc = place_set(m, &reg, plan->rulesets[i].dir, EPG_RULE_SG, &s, next,
			       &ruleset_set[i], err);
	for (size_t i = 0; i < plan->n_acls && !rc; i++)
		rc = place_set(m, &reg, plan->acls[i].dir, EPG_RULE_ACL, &s, next,
			       &acl_set[i], err);

	/* 4. The next generation's addresses and timeout sets: what differs. */
	if (!rc && (rc = sync_profiles(m, plan, next)))
		set_err(err, rc, "%s/epg_ct_prof: cannot write: %s", m->pin_dir, strerror(-rc));
	if (!rc && (rc = write_exempt(m, plan, next)))
		set_err(err, rc, "%s/epg_exempt: cannot write the exempt peers: %s", m->pin_dir,
			strerror(-rc));
	if (!rc && (rc = plan_addrs(plan, &s, ruleset_set, acl_set, &a)))
		set_err(err, rc, "out of memory");
	if (!rc && (rc = write_filter(m, &a, (int)(next ^ 1))))
		set_err(err, rc, "%s/epg_filter: cannot write: %s", m->pin_dir, strerror(-rc));
	if (!rc && (rc = sync_gen(m, &a, next)))
		rc = full_err(err, m, rc, "epg_addr");
	if (rc)
		goto out; /* nothing active changed; what was written is inactive or garbage */

	/* The next generation's exempt flag, before the flip and on its own:
	 * no packet reads it until then, and a packet that meets the flip's
	 * write sees it whichever half it reads. */
	if ((meta.flags & (EPG_META_EXEMPT << next)) != (plan->n_exempt ? EPG_META_EXEMPT << next : 0)) {
		meta.flags ^= EPG_META_EXEMPT << next;
		if (bpf_map_update_elem(m->meta, &zero, &meta, BPF_ANY)) {
			rc = set_err(err, -errno, "%s/epg_meta: cannot write: %s", m->pin_dir,
				     strerror(errno));
			goto out;
		}
	}

	/* 5. The flip: one map update switches every lookup to the new policy. */
	clock_gettime(CLOCK_REALTIME, &now);
	meta.abi_version = EPG_ABI_VERSION;
	meta.active_gen = next;
	meta.generation++;
	meta.apply_time_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	if (bpf_map_update_elem(m->meta, &zero, &meta, BPF_ANY)) {
		rc = set_err(err, -errno, "%s/epg_meta: cannot switch generation: %s",
			     m->pin_dir, strerror(errno));
		goto out;
	}

	/* 6. The old generation follows, and what only it used is reclaimed.
	 * Failures from here on leave garbage or a stale inactive generation,
	 * never a wrong verdict: the next apply mends both. */
	wait_for_programs();
	if (!sync_gen(m, &a, next ^ 1))
		sync_profiles(m, plan, next ^ 1);
	write_filter(m, &a, -1);
	for (uint32_t id = 1; id < EPG_MAX_SETS; id++)
		reg.used[id] &= (uint8_t)(1u << next);
	if (!reg.collected)
		maybe_collect(m, &reg);
	release_names(m, &s);
out:
	if (rc && named) /* failed before the flip (after it, rc stays 0) */
		unwrite_names(m, plan, &s);
	registry_free(&reg);
	addrs_free(&a);
	slots_free(&s);
	free(ruleset_set);
	free(acl_set);
	return rc;
}
