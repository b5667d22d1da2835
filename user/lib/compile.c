// SPDX-License-Identifier: MIT
/* Configuration model -> policy map contents. See compile.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include "compile.h"

/* EC2's default quotas, checked and reported, never enforced. */
#define EPG_QUOTA_RULES_PER_GROUP 60   /* per direction and address family */
#define EPG_QUOTA_GROUPS_PER_ENI  5    /* 16 at most */
#define EPG_QUOTA_RULES_X_GROUPS  1000 /* rules per group x groups per interface */
#define EPG_QUOTA_ACL_ENTRIES     20   /* per direction and family, '*' aside; 40 at most */

#define set_err epg_set_err

static void bm_set(struct epg_bitmap *bm, uint32_t bit)
{
	bm->w[bit / 64] |= 1ULL << (bit % 64);
}

static void bm_or(struct epg_bitmap *dst, const struct epg_bitmap *src)
{
	for (int i = 0; i < EPG_RULE_WORDS; i++)
		dst->w[i] |= src->w[i];
}

/* The next bit of a direction: its rule and, for ACL entries, its action. */
static int dir_add_bit(struct epg_dir_plan *d, uint32_t rule, bool deny)
{
	if (d->n_bits == d->bits_cap) {
		uint32_t cap = d->bits_cap ? d->bits_cap * 2 : 16;
		uint32_t *r = realloc(d->bit_rule, cap * sizeof(*r));
		uint8_t *x;

		if (!r)
			return -ENOMEM;
		d->bit_rule = r;
		x = realloc(d->bit_deny, cap);
		if (!x)
			return -ENOMEM;
		d->bit_deny = x;
		d->bits_cap = cap;
	}
	d->bit_rule[d->n_bits] = rule;
	d->bit_deny[d->n_bits++] = deny;
	return 0;
}

/* An entry's bit: set in its service prefixes here, in its peers' by the
 * caller. */
static int dir_add_entry(struct epg_dir_plan *d, uint32_t rule, bool deny,
			 const struct epg_perm *perm, struct epg_bitmap *bm)
{
	int rc;

	bm_set(bm, d->n_bits);
	rc = dir_add_bit(d, rule, deny);
	return rc ? rc : epg_perm_service_prefixes(perm, &d->svc, bm);
}

static void lpm_finish(struct epg_lpm_set *s);

/* Every prefix of a direction: duplicates merged, covering bits ORed in. */
static void dir_finish(struct epg_dir_plan *d)
{
	lpm_finish(&d->svc);
	lpm_finish(&d->peer4);
	lpm_finish(&d->peer6);
}

static void dir_free(struct epg_dir_plan *d)
{
	free(d->svc.v);
	free(d->peer4.v);
	free(d->peer6.v);
	free(d->bit_rule);
	free(d->bit_deny);
}

static int lpm_add(struct epg_lpm_set *s, uint32_t plen, const uint8_t *data,
		   size_t len, const struct epg_bitmap *bm)
{
	struct epg_lpm_entry *e;

	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		void *v = realloc(s->v, cap * sizeof(*s->v));

		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	e = &s->v[s->n++];
	memset(e, 0, sizeof(*e));
	e->plen = plen;
	memcpy(e->data, data, len);
	e->bm = *bm;
	return 0;
}

static int lpm_cmp(const void *a, const void *b)
{
	const struct epg_lpm_entry *x = a, *y = b;
	int c = memcmp(x->data, y->data, sizeof(x->data));

	if (c)
		return c;
	return (x->plen > y->plen) - (x->plen < y->plen);
}

static int prefix_covers(const struct epg_lpm_entry *q, const struct epg_lpm_entry *p)
{
	uint32_t full = q->plen / 8, rest = q->plen % 8;

	if (q->plen > p->plen)
		return 0;
	if (memcmp(q->data, p->data, full))
		return 0;
	if (rest) {
		uint8_t mask = (uint8_t)(0xff << (8 - rest));

		return (q->data[full] & mask) == (p->data[full] & mask);
	}
	return 1;
}

/*
 * Merge duplicate prefixes and give every prefix the OR of every prefix that
 * covers it. Sorted by (data, plen), prefixes come in preorder of the prefix
 * tree, so a stack of the enclosing prefixes is enough: O(n log n).
 */
static void lpm_finish(struct epg_lpm_set *s)
{
	size_t stack[130], depth = 0, out = 0;

	if (!s->n)
		return;
	qsort(s->v, s->n, sizeof(*s->v), lpm_cmp);
	for (size_t i = 0; i < s->n; i++) {
		if (out && s->v[out - 1].plen == s->v[i].plen &&
		    !memcmp(s->v[out - 1].data, s->v[i].data, sizeof(s->v[i].data))) {
			bm_or(&s->v[out - 1].bm, &s->v[i].bm);
			continue;
		}
		s->v[out++] = s->v[i];
	}
	s->n = out;
	for (size_t i = 0; i < s->n; i++) {
		while (depth && !prefix_covers(&s->v[stack[depth - 1]], &s->v[i]))
			depth--;
		if (depth)
			bm_or(&s->v[i].bm, &s->v[stack[depth - 1]].bm);
		stack[depth++] = i;
	}
}

/* Split [lo, hi] of a 16-bit space into aligned prefixes. */
static int add_port_range(struct epg_lpm_set *out, uint8_t proto, uint32_t lo,
			  uint32_t hi, const struct epg_bitmap *bm)
{
	while (lo <= hi) {
		uint32_t size = 1, bits = 0;
		uint8_t data[3];
		int rc;

		while (bits < 16 && (lo & ((size << 1) - 1)) == 0 &&
		       lo + (size << 1) - 1 <= hi) {
			size <<= 1;
			bits++;
		}
		data[0] = proto;
		data[1] = (uint8_t)(lo >> 8);
		data[2] = (uint8_t)lo;
		rc = lpm_add(out, 8 + 16 - bits, data, sizeof(data), bm);
		if (rc)
			return rc;
		lo += size;
	}
	return 0;
}

int epg_perm_service_prefixes(const struct epg_perm *perm, struct epg_lpm_set *out,
			      const struct epg_bitmap *bm)
{
	uint8_t data[3] = { 0 };

	if (perm->proto == EPG_PROTO_ALL)
		return lpm_add(out, 0, data, sizeof(data), bm);
	data[0] = (uint8_t)perm->proto;
	switch (perm->proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
		if (perm->from_port < 0)
			return lpm_add(out, 8, data, sizeof(data), bm);
		return add_port_range(out, data[0], (uint32_t)perm->from_port,
				      (uint32_t)perm->to_port, bm);
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		if (perm->from_port < 0)
			return lpm_add(out, 8, data, sizeof(data), bm);
		data[1] = (uint8_t)perm->from_port;
		if (perm->to_port < 0)
			return lpm_add(out, 16, data, sizeof(data), bm);
		data[2] = (uint8_t)perm->to_port;
		return lpm_add(out, 24, data, sizeof(data), bm);
	default:
		return lpm_add(out, 8, data, sizeof(data), bm);
	}
}

/* ---- lookups by id --------------------------------------------------------
 * The config keeps document order; the compiler looks groups, interfaces,
 * prefix lists and group members up by id through sorted indexes built once,
 * so compiling stays O(n log n) in the size of the documents. */

struct id_ref {
	const char *id;
	const void *obj;
};

struct lookup {
	const struct epg_config *cfg;
	struct id_ref *groups, *enis, *pls;
	size_t n_groups, n_enis, n_pls;
	struct id_ref *members; /* (group id, interface) for every membership */
	size_t n_members;
};

static int cmp_id_ref(const void *a, const void *b)
{
	const struct id_ref *x = a, *y = b;
	int c = strcmp(x->id, y->id);

	/* members of one group stay in document order */
	return c ? c : (x->obj > y->obj) - (x->obj < y->obj);
}

static struct id_ref *index_ids(const void *base, size_t n, size_t stride, size_t id_off)
{
	struct id_ref *v = calloc(n ? n : 1, sizeof(*v));

	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const char *obj = (const char *)base + i * stride;

		v[i].id = *(char *const *)(obj + id_off);
		v[i].obj = obj;
	}
	qsort(v, n, sizeof(*v), cmp_id_ref);
	return v;
}

static int lookup_build(const struct epg_config *cfg, struct lookup *lk)
{
	size_t n = 0;

	memset(lk, 0, sizeof(*lk));
	lk->cfg = cfg;
	lk->groups = index_ids(cfg->groups, lk->n_groups = cfg->n_groups,
			       sizeof(*cfg->groups), offsetof(struct epg_group, id));
	lk->enis = index_ids(cfg->enis, lk->n_enis = cfg->n_enis,
			     sizeof(*cfg->enis), offsetof(struct epg_eni, id));
	lk->pls = index_ids(cfg->prefix_lists, lk->n_pls = cfg->n_prefix_lists,
			    sizeof(*cfg->prefix_lists), offsetof(struct epg_prefix_list, id));
	for (size_t i = 0; i < cfg->n_enis; i++)
		n += cfg->enis[i].n_groups;
	lk->members = calloc(n ? n : 1, sizeof(*lk->members));
	if (!lk->groups || !lk->enis || !lk->pls || !lk->members)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_enis; i++)
		for (size_t g = 0; g < cfg->enis[i].n_groups; g++)
			lk->members[lk->n_members++] =
				(struct id_ref){ cfg->enis[i].groups[g], &cfg->enis[i] };
	qsort(lk->members, lk->n_members, sizeof(*lk->members), cmp_id_ref);
	return 0;
}

static void lookup_free(struct lookup *lk)
{
	free(lk->groups);
	free(lk->enis);
	free(lk->pls);
	free(lk->members);
}

/* The first entry with this id in a sorted index, or NULL. */
static const struct id_ref *lookup_first(const struct id_ref *v, size_t n, const char *id)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(v[mid].id, id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && !strcmp(v[lo].id, id) ? &v[lo] : NULL;
}

static const void *lookup_obj(const struct id_ref *v, size_t n, const char *id)
{
	const struct id_ref *r = lookup_first(v, n, id);

	return r ? r->obj : NULL;
}

#define find_group(lk, id) ((const struct epg_group *)lookup_obj((lk)->groups, (lk)->n_groups, id))
#define find_eni(lk, id)   ((const struct epg_eni *)lookup_obj((lk)->enis, (lk)->n_enis, id))
#define find_pl(lk, id)    ((const struct epg_prefix_list *)lookup_obj((lk)->pls, (lk)->n_pls, id))

static int add_peer_cidr(struct epg_dir_plan *d, const struct epg_cidr *c,
			 const struct epg_bitmap *bm)
{
	if (c->family == AF_INET)
		return lpm_add(&d->peer4, c->plen, c->addr, 4, bm);
	return lpm_add(&d->peer6, c->plen, c->addr, 16, bm);
}

static int add_peer(const struct lookup *lk, struct epg_dir_plan *d,
		    const struct epg_peer *peer, const struct epg_bitmap *bm)
{
	int rc = 0;

	switch (peer->kind) {
	case EPG_PEER_CIDR:
		return add_peer_cidr(d, &peer->cidr, bm);
	case EPG_PEER_GROUP: {
		/* members: every interface in that group, all its addresses */
		const struct id_ref *m = lookup_first(lk->members, lk->n_members, peer->ref_id);
		const struct id_ref *end = lk->members + lk->n_members;

		for (; m && m < end && !strcmp(m->id, peer->ref_id) && !rc; m++) {
			const struct epg_eni *eni = m->obj;

			if (m > lk->members && m[-1].obj == eni && !strcmp(m[-1].id, m->id))
				continue; /* the group listed twice on one interface */
			for (size_t a = 0; a < eni->n_addrs && !rc; a++)
				rc = add_peer_cidr(d, &eni->addrs[a], bm);
		}
		return rc;
	}
	case EPG_PEER_PREFIX_LIST: {
		const struct epg_prefix_list *pl = find_pl(lk, peer->ref_id);

		for (size_t i = 0; pl && i < pl->n_entries && !rc; i++)
			rc = add_peer_cidr(d, &pl->entries[i], bm);
		return rc;
	}
	}
	return -EINVAL;
}

static const char *proto_name(int proto, char *buf, size_t len)
{
	switch (proto) {
	case EPG_PROTO_ALL: return "all";
	case IPPROTO_TCP: return "tcp";
	case IPPROTO_UDP: return "udp";
	case IPPROTO_ICMP: return "icmp";
	case IPPROTO_ICMPV6: return "icmpv6";
	}
	snprintf(buf, len, "proto %d", proto);
	return buf;
}

static void rule_text(const struct epg_perm *perm, const struct epg_peer *peer,
		      uint32_t dir, char *buf, size_t len)
{
	char pb[16], ports[48] = "", peerbuf[EPG_CIDR_STRLEN];
	const char *peer_s = peer->ref_id;
	int p = perm->proto;

	if ((p == IPPROTO_TCP || p == IPPROTO_UDP) && perm->from_port >= 0) {
		if (perm->from_port == perm->to_port)
			snprintf(ports, sizeof(ports), " %d", perm->from_port);
		else
			snprintf(ports, sizeof(ports), " %d-%d", perm->from_port,
				 perm->to_port);
	} else if ((p == IPPROTO_ICMP || p == IPPROTO_ICMPV6) && perm->from_port >= 0) {
		if (perm->to_port >= 0)
			snprintf(ports, sizeof(ports), " type %d code %d",
				 perm->from_port, perm->to_port);
		else
			snprintf(ports, sizeof(ports), " type %d", perm->from_port);
	}
	if (peer->kind == EPG_PEER_CIDR)
		peer_s = epg_cidr_str(&peer->cidr, peerbuf, sizeof(peerbuf));
	snprintf(buf, len, "%s%s %s %s", proto_name(p, pb, sizeof(pb)), ports,
		 dir == EPG_DIR_INGRESS ? "from" : "to", peer_s);
}

static uint32_t fnv1a(uint32_t h, const char *s)
{
	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 16777619u;
	}
	return h;
}

/* Rules are deduplicated by content through a small chained hash table. */
struct rule_index {
	size_t *head; /* bucket -> rule index + 1 */
	size_t *next;
	size_t n_buckets;
};

static int plan_rule(struct epg_plan *plan, struct rule_index *ix, size_t *cap,
		     const char *owner, uint32_t kind, uint32_t dir, const char *text,
		     uint32_t *out)
{
	char key[256];
	struct epg_rule_plan *r;
	uint32_t h;
	size_t b;

	snprintf(key, sizeof(key), "%s|%u|%s", owner, dir, text);
	h = fnv1a(2166136261u, key);
	b = h % ix->n_buckets;
	for (size_t i = ix->head[b]; i; i = ix->next[i - 1]) {
		r = &plan->rules[i - 1];
		if (r->dir == dir && !strcmp(r->group_id, owner) &&
		    !strncmp(r->desc, text, sizeof(r->desc) - 1)) {
			*out = (uint32_t)(i - 1);
			return 0;
		}
	}
	if (plan->n_rules == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		void *v = realloc(plan->rules, ncap * sizeof(*plan->rules));
		void *nx = realloc(ix->next, ncap * sizeof(*ix->next));

		if (v)
			plan->rules = v;
		if (nx)
			ix->next = nx;
		if (!v || !nx)
			return -ENOMEM;
		*cap = ncap;
	}
	r = &plan->rules[plan->n_rules];
	memset(r, 0, sizeof(*r));
	snprintf(r->rule_id, sizeof(r->rule_id), "r-%08x", h);
	r->group_id = owner;
	r->kind = kind;
	r->dir = dir;
	snprintf(r->desc, sizeof(r->desc), "%s", text);
	ix->next[plan->n_rules] = ix->head[b];
	ix->head[b] = plan->n_rules + 1;
	*out = (uint32_t)plan->n_rules++;
	return 0;
}

static int add_warning(struct epg_plan *plan, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	void *v;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	v = realloc(plan->warnings, (plan->n_warnings + 1) * sizeof(char *));
	if (!v)
		return -ENOMEM;
	plan->warnings = v;
	plan->warnings[plan->n_warnings] = strdup(buf);
	if (!plan->warnings[plan->n_warnings])
		return -ENOMEM;
	plan->n_warnings++;
	return 0;
}

static int compile_dir(const struct lookup *lk, struct epg_plan *plan,
		       struct rule_index *ix, size_t *rule_cap,
		       struct epg_ruleset_plan *rs, uint32_t dir, struct epg_error *err)
{
	struct epg_dir_plan *d = &rs->dir[dir];
	int rc;

	for (size_t gi = 0; gi < rs->n_groups; gi++) {
		const struct epg_group *g = find_group(lk, rs->groups[gi]);
		const struct epg_perm *perms = dir == EPG_DIR_INGRESS ? g->in : g->out;
		size_t n_perms = dir == EPG_DIR_INGRESS ? g->n_in : g->n_out;

		for (size_t pi = 0; pi < n_perms; pi++) {
			const struct epg_perm *perm = &perms[pi];

			for (size_t qi = 0; qi < perm->n_peers; qi++) {
				struct epg_bitmap bm = { 0 };
				uint32_t bit = d->n_bits, rule;

				if (bit >= EPG_RULE_BITS)
					return set_err(err, -E2BIG,
						       "%s: %s: groups %s and the others of this endpoint have more than %d %s rule entries together; EC2 allows about 1000 (rules x groups): split the groups",
						       perm->origin.file, perm->origin.path,
						       g->id, EPG_RULE_BITS,
						       dir == EPG_DIR_INGRESS ? "inbound" : "outbound");
				char text[EPG_RULE_DESC_LEN];

				rule_text(perm, &perm->peers[qi], dir, text, sizeof(text));
				rc = plan_rule(plan, ix, rule_cap, g->id, EPG_RULE_SG, dir, text,
					       &rule);
				if (rc)
					return rc;
				rc = dir_add_entry(d, rule, false, perm, &bm);
				if (!rc)
					rc = add_peer(lk, d, &perm->peers[qi], &bm);
				if (rc)
					return rc;
			}
		}
	}
	dir_finish(d);
	return 0;
}

/* ---- network ACLs -------------------------------------------------------- */

/* The ACL of an interface: its subnet's, else its VPC's default. */
static const struct epg_acl *acl_of(const struct epg_config *cfg, const struct epg_eni *eni)
{
	for (size_t i = 0; eni->subnet_id && i < cfg->n_acls; i++)
		for (size_t s = 0; s < cfg->acls[i].n_subnets; s++)
			if (!strcmp(cfg->acls[i].subnets[s], eni->subnet_id))
				return &cfg->acls[i];
	for (size_t i = 0; i < cfg->n_acls; i++) {
		const struct epg_acl *a = &cfg->acls[i];

		if (a->is_default && (!a->vpc_id || (eni->vpc_id && !strcmp(a->vpc_id, eni->vpc_id))))
			return a;
	}
	return NULL;
}

static int acl_index(struct epg_plan *plan, const struct epg_acl *acl, uint32_t *out)
{
	void *v;

	for (size_t i = 0; i < plan->n_acls; i++)
		if (plan->acls[i].acl == acl) {
			*out = (uint32_t)i + 1;
			return 0;
		}
	v = realloc(plan->acls, (plan->n_acls + 1) * sizeof(*plan->acls));
	if (!v)
		return -ENOMEM;
	plan->acls = v;
	memset(&plan->acls[plan->n_acls], 0, sizeof(plan->acls[0]));
	plan->acls[plan->n_acls].acl = acl;
	*out = (uint32_t)++plan->n_acls;
	return 0;
}

static const struct epg_acl_entry **sorted_entries(const struct epg_acl *acl, bool egress,
						   size_t *n)
{
	const struct epg_acl_entry **v = calloc(acl->n_entries + 1, sizeof(*v));

	*n = 0;
	if (!v)
		return NULL;
	for (size_t i = 0; i < acl->n_entries; i++)
		if (acl->entries[i].egress == egress)
			v[(*n)++] = &acl->entries[i];
	/* insertion sort: a few dozen entries at most */
	for (size_t i = 1; i < *n; i++)
		for (size_t j = i; j > 0 && v[j - 1]->rule_number > v[j]->rule_number; j--) {
			const struct epg_acl_entry *t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return v;
}

static int compile_acl_dir(struct epg_plan *plan, struct rule_index *ix, size_t *rule_cap,
			   struct epg_acl_plan *ap, uint32_t dir, struct epg_error *err)
{
	struct epg_dir_plan *d = &ap->dir[dir];
	const struct epg_acl_entry **v;
	size_t n;
	int rc = 0;

	v = sorted_entries(ap->acl, dir == EPG_DIR_EGRESS, &n);
	if (!v)
		return -ENOMEM;
	if (n > EPG_RULE_BITS) {
		free(v);
		return set_err(err, -E2BIG, "%s: %s: more than %d entries in one direction",
			       ap->acl->origin.file, ap->acl->origin.path, EPG_RULE_BITS);
	}
	for (size_t i = 0; i < n && !rc; i++) {
		const struct epg_acl_entry *e = v[i];
		bool icmp = e->proto == IPPROTO_ICMP || e->proto == IPPROTO_ICMPV6;
		struct epg_perm perm = {
			.proto = e->proto,
			.from_port = icmp ? e->icmp_type : e->port_from,
			.to_port = icmp ? e->icmp_code : e->port_to,
		};
		struct epg_peer peer = { .kind = EPG_PEER_CIDR, .cidr = e->cidr };
		char text[EPG_RULE_DESC_LEN + 32], what[EPG_RULE_DESC_LEN];
		struct epg_bitmap bm = { 0 };
		uint32_t rule;

		rule_text(&perm, &peer, dir, what, sizeof(what));
		if (e->rule_number >= 32767)
			snprintf(text, sizeof(text), "#* %s %s", e->allow ? "allow" : "deny", what);
		else
			snprintf(text, sizeof(text), "#%u %s %s", e->rule_number,
				 e->allow ? "allow" : "deny", what);
		rc = plan_rule(plan, ix, rule_cap, ap->acl->id, EPG_RULE_ACL, dir, text, &rule);
		if (rc)
			break;
		rc = dir_add_entry(d, rule, !e->allow, &perm, &bm);
		if (!rc)
			rc = add_peer_cidr(d, &e->cidr, &bm);
	}
	free(v);
	if (rc)
		return rc;
	dir_finish(d);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The endpoint's group ids, sorted and unique (pointers into cfg). */
static int endpoint_groups(const struct lookup *lk, const struct epg_endpoint *ep,
			   char ***out, size_t *n_out)
{
	size_t n = 0, cap = 0;
	char **v = NULL;

	if (ep->groups_present) {
		cap = ep->n_groups;
	} else {
		for (size_t i = 0; i < ep->n_enis; i++) {
			const struct epg_eni *eni = find_eni(lk, ep->enis[i]);

			cap += eni ? eni->n_groups : 0;
		}
	}
	v = calloc(cap ? cap : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (ep->groups_present) {
		for (size_t i = 0; i < ep->n_groups; i++)
			v[n++] = ep->groups[i];
	} else {
		for (size_t i = 0; i < ep->n_enis; i++) {
			const struct epg_eni *eni = find_eni(lk, ep->enis[i]);

			for (size_t g = 0; eni && g < eni->n_groups; g++)
				v[n++] = eni->groups[g];
		}
	}
	qsort(v, n, sizeof(*v), cmp_str);
	size_t u = 0;

	for (size_t i = 0; i < n; i++)
		if (!u || strcmp(v[u - 1], v[i]))
			v[u++] = v[i];
	*out = v;
	*n_out = u;
	return 0;
}

/* Rulesets by their sorted group ids: a chained hash over plan->rulesets. */
struct ruleset_index {
	uint32_t *head; /* bucket -> ruleset index + 1 */
	uint32_t *next;
	size_t n_buckets;
};

static uint32_t groups_hash(char *const *groups, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t g = 0; g < n; g++)
		h = fnv1a(h ^ 0x7c, groups[g]);
	return h;
}

static int find_or_add_ruleset(struct epg_plan *plan, struct ruleset_index *ix,
			       char **groups, size_t n, uint32_t *out)
{
	size_t b = groups_hash(groups, n) % ix->n_buckets;
	struct epg_ruleset_plan *rs;
	void *v;

	for (uint32_t i = ix->head[b]; i; i = ix->next[i - 1]) {
		size_t g = 0;

		rs = &plan->rulesets[i - 1];
		if (rs->n_groups != n)
			continue;
		while (g < n && !strcmp(rs->groups[g], groups[g]))
			g++;
		if (g == n) {
			free(groups);
			*out = i - 1;
			return 0;
		}
	}
	v = realloc(plan->rulesets, (plan->n_rulesets + 1) * sizeof(*plan->rulesets));
	if (!v) {
		free(groups);
		return -ENOMEM;
	}
	plan->rulesets = v;
	rs = &plan->rulesets[plan->n_rulesets];
	memset(rs, 0, sizeof(*rs));
	rs->groups = groups;
	rs->n_groups = n;
	ix->next[plan->n_rulesets] = ix->head[b];
	ix->head[b] = (uint32_t)plan->n_rulesets + 1;
	*out = (uint32_t)plan->n_rulesets++;
	return 0;
}

/* The timeout set of an interface, added to the plan's list if new. */
static int ct_profile(struct epg_plan *plan, const struct epg_eni *eni, uint32_t *out)
{
	struct epg_ct_timeouts t = plan->ct_profiles[0];
	void *v;

	if (eni->ct.tcp_established)
		t.tcp_established = eni->ct.tcp_established;
	if (eni->ct.udp_stream)
		t.udp_stream = eni->ct.udp_stream;
	if (eni->ct.udp)
		t.udp = eni->ct.udp;
	for (size_t i = 0; i < plan->n_ct_profiles; i++)
		if (!memcmp(&plan->ct_profiles[i], &t, sizeof(t))) {
			*out = (uint32_t)i;
			return 0;
		}
	if (plan->n_ct_profiles == EPG_CT_PROFILES)
		return -E2BIG;
	v = realloc(plan->ct_profiles, (plan->n_ct_profiles + 1) * sizeof(t));
	if (!v)
		return -ENOMEM;
	plan->ct_profiles = v;
	plan->ct_profiles[plan->n_ct_profiles] = t;
	*out = (uint32_t)plan->n_ct_profiles++;
	return 0;
}

static int endpoint_addrs(const struct lookup *lk, struct epg_plan *plan,
			  const struct epg_endpoint *ep, struct epg_ep_plan *out,
			  struct epg_error *err)
{
	size_t cap = 0;
	int rc = 0;

	for (size_t i = 0; i < ep->n_enis; i++) {
		const struct epg_eni *eni = find_eni(lk, ep->enis[i]);

		cap += eni ? eni->n_addrs : 0;
	}
	out->addrs = calloc(cap ? cap : 1, sizeof(*out->addrs));
	out->addr_profile = calloc(cap ? cap : 1, sizeof(*out->addr_profile));
	out->addr_acl = calloc(cap ? cap : 1, sizeof(*out->addr_acl));
	if (!out->addrs || !out->addr_profile || !out->addr_acl)
		return -ENOMEM;
	for (size_t i = 0; i < ep->n_enis && !rc; i++) {
		const struct epg_eni *eni = find_eni(lk, ep->enis[i]);
		const struct epg_acl *acl;
		uint32_t prof = 0, acl_ix = 0;

		if (!eni)
			continue;
		acl = acl_of(lk->cfg, eni);
		if (acl && acl_index(plan, acl, &acl_ix))
			return -ENOMEM;
		rc = ct_profile(plan, eni, &prof);
		if (rc == -E2BIG)
			return set_err(err, rc, "%s: %s: more than %d distinct ConnectionTrackingConfiguration settings",
				       eni->origin.file, eni->origin.path, EPG_CT_PROFILES);
		for (size_t a = 0; a < eni->n_addrs; a++) {
			out->addr_profile[out->n_addrs] = prof;
			out->addr_acl[out->n_addrs] = acl_ix;
			out->addrs[out->n_addrs++] = eni->addrs[a];
		}
	}
	return rc;
}

/* Profile 0: EC2's defaults, and ours where EC2 documents none, as the
 * config document may change them. */
static int ct_defaults(const struct epg_config *cfg, struct epg_plan *plan)
{
	struct epg_ct_timeouts t = {
		.tcp_syn = EPG_CT_DEFAULT_TCP_SYN,
		.tcp_established = EPG_CT_DEFAULT_TCP_ESTABLISHED,
		.tcp_closing = EPG_CT_DEFAULT_TCP_CLOSING,
		.tcp_closed = EPG_CT_DEFAULT_TCP_CLOSED,
		.udp = EPG_CT_DEFAULT_UDP,
		.udp_stream = EPG_CT_DEFAULT_UDP_STREAM,
		.icmp = EPG_CT_DEFAULT_ICMP,
		.other = EPG_CT_DEFAULT_OTHER,
	};

	if (cfg->ct_defaults.tcp_syn)
		t.tcp_syn = cfg->ct_defaults.tcp_syn;
	if (cfg->ct_defaults.tcp_closing)
		t.tcp_closing = cfg->ct_defaults.tcp_closing;
	if (cfg->ct_defaults.tcp_closed)
		t.tcp_closed = cfg->ct_defaults.tcp_closed;
	if (cfg->ct_defaults.icmp)
		t.icmp = cfg->ct_defaults.icmp;
	if (cfg->ct_defaults.other)
		t.other = cfg->ct_defaults.other;
	plan->ct_profiles = calloc(EPG_CT_PROFILES, sizeof(t));
	if (!plan->ct_profiles)
		return -ENOMEM;
	plan->ct_profiles[0] = t;
	plan->n_ct_profiles = 1;
	return 0;
}

static const char *const dir_word[EPG_DIR_MAX] = { "inbound", "outbound" };
static const char *const fam_word[2] = { "IPv4", "IPv6" };

/* A group's rules in one direction as EC2 counts them against its quota,
 * per family ([0] IPv4, [1] IPv6): one per CIDR, one in each family per
 * referenced group, and a prefix list's entries. */
static void count_rules(const struct lookup *lk, const struct epg_perm *perms, size_t n,
			size_t out[2])
{
	out[0] = out[1] = 0;
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < perms[i].n_peers; k++) {
			const struct epg_peer *p = &perms[i].peers[k];
			const struct epg_prefix_list *pl;

			switch (p->kind) {
			case EPG_PEER_CIDR:
				out[p->cidr.family == AF_INET6]++;
				break;
			case EPG_PEER_GROUP:
				out[0]++;
				out[1]++;
				break;
			case EPG_PEER_PREFIX_LIST:
				pl = find_pl(lk, p->ref_id);
				for (size_t e = 0; pl && e < pl->n_entries; e++)
					out[pl->entries[e].family == AF_INET6]++;
				break;
			}
		}
	}
}

/* An interface with more groups than EC2's default quota (reported once,
 * as the interface's). */
static bool eni_over_group_quota(const struct epg_eni *eni)
{
	return eni->n_groups > EPG_QUOTA_GROUPS_PER_ENI;
}

/* rules[g][dir][family] of every group, for the per-interface checks. */
typedef size_t group_rules[EPG_DIR_MAX][2];

static int check_group_quotas(const struct lookup *lk, struct epg_plan *plan,
			      group_rules *rules)
{
	const struct epg_config *cfg = lk->cfg;
	int rc = 0;

	for (size_t i = 0; i < cfg->n_groups && !rc; i++) {
		const struct epg_group *g = &cfg->groups[i];

		count_rules(lk, g->in, g->n_in, rules[i][EPG_DIR_INGRESS]);
		count_rules(lk, g->out, g->n_out, rules[i][EPG_DIR_EGRESS]);
		for (int d = 0; d < EPG_DIR_MAX && !rc; d++)
			for (int f = 0; f < 2 && !rc; f++)
				if (rules[i][d][f] > EPG_QUOTA_RULES_PER_GROUP)
					rc = add_warning(plan, "%s: %s: group %s has %zu %s %s rules (CIDRs, referenced groups in each family, prefix list entries); the EC2 default quota is %d per family",
							 g->origin.file, g->origin.path, g->id, rules[i][d][f],
							 dir_word[d], fam_word[f], EPG_QUOTA_RULES_PER_GROUP);
	}
	for (size_t i = 0; i < cfg->n_enis && !rc; i++)
		if (eni_over_group_quota(&cfg->enis[i]))
			rc = add_warning(plan, "%s: %s: %s has %zu security groups; the EC2 default quota is %d (16 at most)",
					 cfg->enis[i].origin.file, cfg->enis[i].origin.path,
					 cfg->enis[i].id, cfg->enis[i].n_groups, EPG_QUOTA_GROUPS_PER_ENI);
	return rc;
}

/* What an endpoint enforces (its ruleset's groups): at most 5 groups, and
 * rules per group x groups within 1,000 (the product of the two quotas EC2
 * would need raised to hold it). */
static int check_ruleset_quotas(const struct lookup *lk, struct epg_plan *plan,
				const group_rules *rules)
{
	const struct epg_config *cfg = lk->cfg;
	uint8_t *seen = calloc(plan->n_rulesets ? plan->n_rulesets : 1, 1);
	int rc = 0;

	if (!seen)
		return -ENOMEM;
	for (size_t e = 0; e < plan->n_eps && !rc; e++) {
		const struct epg_ep_plan *ep = &plan->eps[e];
		const struct epg_ruleset_plan *rs = &plan->rulesets[ep->ruleset];
		size_t most[EPG_DIR_MAX][2] = { { 0 } };

		bool eni_told = false;

		if (seen[ep->ruleset]) /* once per ruleset, named by its first endpoint */
			continue;
		seen[ep->ruleset] = 1;
		for (size_t k = 0; k < ep->ep->n_enis; k++) {
			const struct epg_eni *eni = find_eni(lk, ep->ep->enis[k]);

			eni_told |= eni && eni_over_group_quota(eni);
		}
		/* the endpoint's own Groups, when no interface of it was
		 * reported already (the union of its interfaces' groups is no
		 * one interface's) */
		if (ep->ep->groups_present && !eni_told && rs->n_groups > EPG_QUOTA_GROUPS_PER_ENI)
			rc = add_warning(plan, "%s: %s: endpoint %s enforces %zu security groups; the EC2 default quota is %d per interface (16 at most)",
					 ep->ep->origin.file, ep->ep->origin.path, ep->ep->id,
					 rs->n_groups, EPG_QUOTA_GROUPS_PER_ENI);
		for (size_t g = 0; g < rs->n_groups; g++) {
			const struct epg_group *grp = find_group(lk, rs->groups[g]);

			for (int d = 0; grp && d < EPG_DIR_MAX; d++)
				for (int f = 0; f < 2; f++)
					if (rules[grp - cfg->groups][d][f] > most[d][f])
						most[d][f] = rules[grp - cfg->groups][d][f];
		}
		for (int d = 0; d < EPG_DIR_MAX && !rc; d++)
			for (int f = 0; f < 2 && !rc; f++)
				if (most[d][f] * rs->n_groups > EPG_QUOTA_RULES_X_GROUPS)
					rc = add_warning(plan, "%s: %s: endpoint %s: %zu groups, the largest with %zu %s %s rules: %zu x %zu is over EC2's limit of %d for rules per group x groups per interface",
							 ep->ep->origin.file, ep->ep->origin.path, ep->ep->id,
							 rs->n_groups, most[d][f], dir_word[d], fam_word[f],
							 most[d][f], rs->n_groups, EPG_QUOTA_RULES_X_GROUPS);
	}
	free(seen);
	return rc;
}

/* Entries of a network ACL per direction and family, the '*' entries aside. */
static int check_acl_quotas(const struct epg_config *cfg, struct epg_plan *plan)
{
	int rc = 0;

	for (size_t i = 0; i < cfg->n_acls && !rc; i++) {
		const struct epg_acl *acl = &cfg->acls[i];
		size_t n[EPG_DIR_MAX][2] = { { 0 } };

		for (size_t k = 0; k < acl->n_entries; k++) {
			const struct epg_acl_entry *en = &acl->entries[k];

			if (en->rule_number < 32767)
				n[en->egress][en->cidr.family == AF_INET6]++;
		}
		for (int d = 0; d < EPG_DIR_MAX && !rc; d++)
			for (int f = 0; f < 2 && !rc; f++)
				if (n[d][f] > EPG_QUOTA_ACL_ENTRIES)
					rc = add_warning(plan, "%s: %s: network ACL %s has %zu %s %s entries; the EC2 default quota is %d per direction and family (40 at most)",
							 acl->origin.file, acl->origin.path, acl->id, n[d][f],
							 dir_word[d], fam_word[f], EPG_QUOTA_ACL_ENTRIES);
	}
	return rc;
}

/* SEMANTICS.md: quotas to check and report, not to enforce. */
static int check_quotas(const struct lookup *lk, struct epg_plan *plan)
{
	const struct epg_config *cfg = lk->cfg;
	group_rules *rules = calloc(cfg->n_groups ? cfg->n_groups : 1, sizeof(*rules));
	int rc;

	if (!rules)
		return -ENOMEM;
	rc = check_group_quotas(lk, plan, rules);
	if (!rc)
		rc = check_ruleset_quotas(lk, plan, rules);
	if (!rc)
		rc = check_acl_quotas(cfg, plan);
	free(rules);
	return rc;
}

struct addr_owner {
	struct epg_cidr addr;
	size_t ep;
};

static int cmp_owner(const void *a, const void *b)
{
	const struct addr_owner *x = a, *y = b;
	int c = memcmp(&x->addr, &y->addr, sizeof(x->addr));

	return c ? c : (x->ep > y->ep) - (x->ep < y->ep);
}

/* An address belongs to one endpoint: sort all of them, compare neighbours. */
static int check_unique_addrs(const struct epg_plan *plan, struct epg_error *err)
{
	char buf[EPG_CIDR_STRLEN];
	struct addr_owner *v;
	size_t n = 0, cap = 0;
	int rc = 0;

	for (size_t i = 0; i < plan->n_eps; i++)
		cap += plan->eps[i].n_addrs;
	/* epg_addr holds both generations: the one in force while the next is
	 * written, each in full */
	if (cap > EPG_MAX_ADDRS / EPG_GENERATIONS)
		return set_err(err, -E2BIG,
			       "%zu endpoint addresses: this build holds at most %d (epg_addr keeps the policy in force and the next one, %d addresses each, to switch atomically); split the policy over hosts or raise EPG_MAX_ADDRS and rebuild",
			       cap, EPG_MAX_ADDRS / EPG_GENERATIONS, EPG_MAX_ADDRS / EPG_GENERATIONS);
	v = calloc(cap ? cap : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < plan->n_eps; i++)
		for (size_t a = 0; a < plan->eps[i].n_addrs; a++)
			v[n++] = (struct addr_owner){ plan->eps[i].addrs[a], i };
	qsort(v, n, sizeof(*v), cmp_owner);
	for (size_t i = 1; i < n && !rc; i++) {
		const struct epg_endpoint *a = plan->eps[v[i - 1].ep].ep, *b = plan->eps[v[i].ep].ep;

		if (memcmp(&v[i - 1].addr, &v[i].addr, sizeof(v[i].addr)))
			continue;
		if (a == b)
			rc = set_err(err, -EINVAL,
				     "%s: %s: address %s is listed twice (two of its network interfaces share it)",
				     b->origin.file, b->origin.path,
				     epg_cidr_str(&v[i].addr, buf, sizeof(buf)));
		else
			rc = set_err(err, -EINVAL,
				     "%s: %s: address %s belongs to both %s and %s: an address can belong to one endpoint only",
				     b->origin.file, b->origin.path,
				     epg_cidr_str(&v[i].addr, buf, sizeof(buf)), a->id, b->id);
	}
	free(v);
	return rc;
}

/* Buckets for about n entries: a power of two, at least 1024. */
static size_t n_buckets_for(size_t n)
{
	size_t b = 1024;

	while (b < n && b < ((size_t)1 << 26))
		b <<= 1;
	return b;
}

int epg_compile(const struct epg_config *cfg, struct epg_plan *plan,
		struct epg_error *err)
{
	struct rule_index ix = { 0 };
	struct ruleset_index rix = { 0 };
	struct lookup lk;
	size_t rule_cap = 0, n_entries = 0;
	int rc = 0;

	memset(plan, 0, sizeof(*plan));
	plan->exempt = cfg->exempt;
	plan->n_exempt = cfg->n_exempt;
	for (size_t i = 0; i < cfg->n_groups; i++) {
		for (size_t p = 0; p < cfg->groups[i].n_in; p++)
			n_entries += cfg->groups[i].in[p].n_peers;
		for (size_t p = 0; p < cfg->groups[i].n_out; p++)
			n_entries += cfg->groups[i].out[p].n_peers;
	}
	for (size_t i = 0; i < cfg->n_acls; i++)
		n_entries += cfg->acls[i].n_entries;
	plan->eps = calloc(cfg->n_endpoints ? cfg->n_endpoints : 1, sizeof(*plan->eps));
	ix.n_buckets = n_buckets_for(n_entries);
	ix.head = calloc(ix.n_buckets, sizeof(*ix.head));
	rix.n_buckets = n_buckets_for(cfg->n_endpoints);
	rix.head = calloc(rix.n_buckets, sizeof(*rix.head));
	rix.next = calloc(cfg->n_endpoints ? cfg->n_endpoints : 1, sizeof(*rix.next));
	rc = lookup_build(cfg, &lk);
	if (!plan->eps || !ix.head || !rix.head || !rix.next || rc) {
		rc = -ENOMEM;
		goto out;
	}
	rc = ct_defaults(cfg, plan);
	if (rc)
		goto out;
	for (size_t i = 0; i < cfg->n_endpoints; i++) {
		const struct epg_endpoint *ep = &cfg->endpoints[i];
		struct epg_ep_plan *e;
		char **groups;
		size_t n_groups;

		if (strcmp(ep->type, "Interface"))
			continue; /* Gateway endpoints have no interfaces to guard */
		if (plan->n_eps >= EPG_MAX_ENDPOINTS) {
			rc = set_err(err, -E2BIG, "%s: %s: more than %d interface endpoints",
				     ep->origin.file, ep->origin.path, EPG_MAX_ENDPOINTS);
			goto out;
		}
		e = &plan->eps[plan->n_eps++];
		e->ep = ep;
		rc = endpoint_addrs(&lk, plan, ep, e, err);
		if (!rc)
			rc = endpoint_groups(&lk, ep, &groups, &n_groups);
		if (!rc)
			rc = find_or_add_ruleset(plan, &rix, groups, n_groups, &e->ruleset);
		if (rc)
			goto out;
	}
	rc = check_unique_addrs(plan, err);
	for (size_t r = 0; r < plan->n_rulesets && !rc; r++)
		for (uint32_t dir = 0; dir < EPG_DIR_MAX && !rc; dir++)
			rc = compile_dir(&lk, plan, &ix, &rule_cap, &plan->rulesets[r], dir, err);
	for (size_t a = 0; a < plan->n_acls && !rc; a++)
		for (uint32_t dir = 0; dir < EPG_DIR_MAX && !rc; dir++)
			rc = compile_acl_dir(plan, &ix, &rule_cap, &plan->acls[a], dir, err);
	if (!rc)
		rc = check_quotas(&lk, plan);
out:
	free(ix.head);
	free(ix.next);
	free(rix.head);
	free(rix.next);
	lookup_free(&lk);
	if (rc == -ENOMEM)
		set_err(err, rc, "out of memory while compiling the policy");
	if (rc)
		epg_plan_free(plan);
	return rc;
}

void epg_plan_free(struct epg_plan *plan)
{
	for (size_t i = 0; i < plan->n_eps; i++) {
		free(plan->eps[i].addrs);
		free(plan->eps[i].addr_profile);
		free(plan->eps[i].addr_acl);
	}
	for (size_t a = 0; a < plan->n_acls; a++)
		for (int d = 0; d < EPG_DIR_MAX; d++)
			dir_free(&plan->acls[a].dir[d]);
	free(plan->acls);
	free(plan->eps);
	free(plan->ct_profiles);
	for (size_t r = 0; r < plan->n_rulesets; r++) {
		free(plan->rulesets[r].groups);
		for (int d = 0; d < EPG_DIR_MAX; d++)
			dir_free(&plan->rulesets[r].dir[d]);
	}
	free(plan->rulesets);
	free(plan->rules);
	for (size_t i = 0; i < plan->n_warnings; i++)
		free(plan->warnings[i]);
	free(plan->warnings);
	memset(plan, 0, sizeof(*plan));
}
