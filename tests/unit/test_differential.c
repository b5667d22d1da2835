// SPDX-License-Identifier: MIT
/*
 * Differential test: the datapath against the reference model
 * (tests/model/refmodel.c) on random policies and random packet sequences.
 *
 * Each round generates a policy (groups with random rules, network ACLs with
 * overlapping entries, prefix lists, 1..4 endpoints with 1..3 addresses,
 * timeouts), renders it as EC2 JSON and loads it with the project's loader:
 * both sides judge by the same struct epg_config. The datapath gets it
 * compiled and applied to a private, unpinned instance of the BPF program;
 * the model reads the config itself. Then packets (new flows, replies, TCP
 * handshakes and closes, ICMP echo and errors quoting earlier flows,
 * fragments in and out of order, malformed frames, link plumbing, other
 * hosts' traffic, clock jumps, policy changes under live flows) go through
 * both: BPF_PROG_TEST_RUN on a crafted frame (the XDP return is the verdict,
 * the one counter that moved is the reason), refmodel_packet() on its
 * description. Any difference is a failure, printed as a reproducer shrunk
 * to the packets and rules it needs.
 *
 * Time: the model's clock is a number. The datapath's is bpf_ktime_get_ns;
 * advancing it by D means moving every stamp in epg_ct and epg_frag D into
 * the past (and taking out the real time that passed meanwhile, so a flow's
 * idle time is the same on both sides). Instants at which some entry
 * expires are kept away from by a guard band. A stamp cannot go below
 * zero (the datapath takes a stamp later than now for a flow another CPU
 * just saw), so one policy's run spans at most the machine's uptime on the
 * model's clock: on a machine up for less than 5 days the default
 * TcpEstablishedTimeout (432000 s) never runs out in this test.
 *
 * The datapath runs in three private instances: tables as roomy as a
 * policy's run needs, and two with a tiny flow or fragment table, so that
 * conntrack_allowance_exceeded and fragment_table_full happen too.
 *
 * Environment:
 *   EPG_DIFF_PACKETS     packets in all (default 120000; 30000 under ASan)
 *   EPG_DIFF_SEED        the run's seed (default: from the clock; printed)
 *   EPG_DIFF_PER_POLICY  packets per policy (default 2000)
 *   EPG_DIFF_POLICY      run only that policy of the seed (as reproducers say)
 *   EPG_DIFF_REPORTS     reproducers printed in full (default 5)
 *   EPG_DIFF_NO_SHRINK   1: print reproducers as they happened
 *   EPG_DIFF_TRACE       1: every packet and both answers; 2: and table sizes
 *   EPG_DIFF_AVOID       do not generate some packets, to look past a known
 *                        disagreement: ep2ep, echo-flip, frag-full, odd-quote
 * Needs root. A disagreement ends its policy's run (the two sides' states
 * differ from there on); the next policy starts clean.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "check.h"
#include "epgate.h"
#include "epgate.skel.h"
#include "../model/refmodel.h"
/* The Makefile builds each test from one source file: the model comes in
 * here. */
#include "../model/refmodel.c"

/* ---- random numbers (splitmix64: a seed names a whole run) ------------------ */

static uint64_t rng;

static uint64_t rnd64(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint32_t rnd(uint32_t n)
{
	return n ? (uint32_t)(rnd64() % n) : 0;
}

static bool pct(uint32_t p)
{
	return rnd(100) < p;
}

/* ---- a growing string --------------------------------------------------------- */

struct sb {
	char *s;
	size_t n, cap;
};

__attribute__((format(printf, 2, 3)))
static void sb_printf(struct sb *b, const char *fmt, ...)
{
	va_list ap;
	int k;

	for (;;) {
		size_t room = b->cap - b->n;

		va_start(ap, fmt);
		k = vsnprintf(b->s ? b->s + b->n : NULL, room, fmt, ap);
		va_end(ap);
		if (k < 0)
			abort();
		if ((size_t)k < room) {
			b->n += (size_t)k;
			return;
		}
		b->cap = (b->cap + (size_t)k + 1) * 2;
		b->s = realloc(b->s, b->cap);
		if (!b->s)
			abort();
	}
}

/* ---- random policies ------------------------------------------------------------ */

#define G_GROUPS   5
#define G_PERMS    6
#define G_ENIS     12
#define G_EPS      4
#define G_ACLS     2
#define G_ENTRIES  24
#define G_PLS      2
#define G_POOL     24
#define G_VERSIONS 3

struct g_addr {
	int family;
	uint8_t a[16];
};

struct g_cidr {
	struct g_addr ad;
	int plen;
};

struct g_perm {
	char proto[8];
	bool has_range;
	int from, to;
	struct g_cidr cidrs[3];
	int n_cidrs;
	int groups[2];
	int n_groups;
	int pls[2];
	int n_pls;
	bool dead; /* removed by the shrinker */
};

struct g_group {
	struct g_perm perm[2][G_PERMS]; /* [0] inbound, [1] outbound */
	int n[2];
};

struct g_eni {
	int subnet; /* -1: none */
	struct g_addr addrs[3];
	int n_addrs;
	int groups[3];
	int n_groups;
	bool has_ct;
	int ct[3]; /* TcpEstablishedTimeout, UdpStreamTimeout, UdpTimeout; 0 absent */
};

struct g_ep {
	int enis[2];
	int n_enis;
	bool gateway;        /* VpcEndpointType Gateway: not enforced */
	bool groups_present;
	bool empty_groups;   /* "Groups": [] (the loader takes it as absent) */
	int groups[3];
	int n_groups;
};

struct g_entry {
	int num;
	bool egress, allow;
	char proto[8];
	bool has_ports, has_icmp;
	int pfrom, pto, itype, icode;
	struct g_cidr cidr;
	bool dead;
};

struct g_acl {
	bool is_default;
	int subnets[2];
	int n_subnets;
	struct g_entry e[G_ENTRIES];
	int n;
};

struct g_pl {
	struct g_cidr e[4];
	int n;
};

struct g_policy {
	struct g_group groups[G_GROUPS];
	int n_groups;
	struct g_eni enis[G_ENIS];
	int n_enis;
	struct g_ep eps[G_EPS];
	int n_eps;
	struct g_acl acls[G_ACLS];
	int n_acls;
	struct g_pl pls[G_PLS];
	int n_pls;
	bool has_settings;
	unsigned st[5]; /* TcpSynTimeout, TcpClosingTimeout, TcpClosedTimeout, IcmpTimeout, OtherTimeout */
	struct g_addr pool[2][G_POOL]; /* [0] IPv4, [1] IPv6: addresses close to each other */
	int n_pool[2];
};

static const uint16_t some_ports[] = { 0, 1, 22, 53, 80, 443, 1023, 1024, 3306, 8080, 32768, 65535 };
static const char *const st_names[5] = { "TcpSynTimeout", "TcpClosingTimeout", "TcpClosedTimeout",
					 "IcmpTimeout", "OtherTimeout" };

static size_t fam_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

static int fam_idx(int family)
{
	return family == AF_INET ? 0 : 1;
}

static void random_addr(struct g_addr *ad, int family)
{
	ad->family = family;
	memset(ad->a, 0, 16);
	for (size_t i = 0; i < fam_len(family); i++)
		ad->a[i] = (uint8_t)rnd(256);
}

/* Addresses that share prefixes of every length: each new one is an older
 * one with bit k flipped and the bits after k random. */
static void gen_pool(struct g_policy *P, int family)
{
	int fi = fam_idx(family), bits = (int)fam_len(family) * 8;
	struct g_addr *pool = P->pool[fi];

	random_addr(&pool[0], family);
	if (family == AF_INET && pct(60)) {
		pool[0].a[0] = pct(60) ? 10 : 198;
		if (pool[0].a[0] == 198)
			pool[0].a[1] = 18;
	} else if (family == AF_INET6 && pct(60)) {
		pool[0].a[0] = 0xfd;
		pool[0].a[1] = 0;
	}
	P->n_pool[fi] = 1;
	while (P->n_pool[fi] < G_POOL) {
		struct g_addr n = pool[rnd((uint32_t)P->n_pool[fi])];
		int k = (int)rnd((uint32_t)bits), dup = 0;

		n.a[k / 8] ^= (uint8_t)(0x80 >> (k % 8));
		for (int j = k + 1; j < bits; j++)
			if (pct(50))
				n.a[j / 8] ^= (uint8_t)(0x80 >> (j % 8));
		for (int i = 0; i < P->n_pool[fi]; i++)
			dup |= !memcmp(pool[i].a, n.a, 16);
		if (!dup)
			pool[P->n_pool[fi]++] = n;
	}
}

static struct g_addr pool_pick(const struct g_policy *P, int family)
{
	int fi = fam_idx(family);

	return P->pool[fi][rnd((uint32_t)P->n_pool[fi])];
}

static struct g_cidr gen_cidr(const struct g_policy *P, int family)
{
	struct g_cidr c;
	int bits = (int)fam_len(family) * 8;

	c.ad = pool_pick(P, family);
	if (pct(8))
		random_addr(&c.ad, family);
	switch (rnd(10)) {
	case 0:
		c.plen = 0;
		break;
	case 1:
	case 2:
		c.plen = bits;
		break;
	default:
		c.plen = (int)rnd((uint32_t)bits + 1);
	}
	return c;
}

static void gen_range(int *from, int *to)
{
	int p = some_ports[rnd(sizeof(some_ports) / sizeof(some_ports[0]))], w;

	switch (rnd(10)) {
	case 0:
	case 1:
	case 2:
	case 3:
		*from = *to = p;
		break;
	case 4:
	case 5:
		w = (int)rnd(200);
		*from = p - w < 0 ? 0 : p - w;
		*to = p + w > 65535 ? 65535 : p + w;
		break;
	case 6:
		*from = 1024;
		*to = 65535;
		break;
	case 7:
		*from = 0;
		*to = 65535;
		break;
	default:
		*from = (int)rnd(65536);
		*to = *from + (int)rnd((uint32_t)(65536 - *from));
	}
}

static const int other_protos[] = { 47, 132, 99, 103, 115 };
#define N_OTHER (sizeof(other_protos) / sizeof(other_protos[0]))

static void gen_icmp_type_code(bool v6, int *type, int *code)
{
	static const int t4[] = { -1, 0, 3, 5, 8, 11, 12, 13 };
	static const int t6[] = { -1, 1, 2, 3, 4, 128, 129, 135, 138, 139 };

	*type = v6 ? t6[rnd(sizeof(t6) / sizeof(t6[0]))] : t4[rnd(sizeof(t4) / sizeof(t4[0]))];
	if (pct(5))
		*type = (int)rnd(256);
	*code = *type == -1 || pct(60) ? -1 : (int)rnd(5);
}

static void gen_perm(const struct g_policy *P, struct g_perm *pm)
{
	static const char *const protos[] = { "tcp", "tcp", "tcp", "udp", "udp", "icmp", "icmpv6",
					      "-1", "6", "17", "1", "58", "other" };
	const char *pr = protos[rnd(sizeof(protos) / sizeof(protos[0]))];

	memset(pm, 0, sizeof(*pm));
	if (!strcmp(pr, "other")) {
		int n = (int)rnd(256);

		if (pct(80) || n == 1 || n == 6 || n == 17 || n == 58)
			n = other_protos[rnd(N_OTHER)];
		snprintf(pm->proto, sizeof(pm->proto), "%d", n);
	}
	else
		snprintf(pm->proto, sizeof(pm->proto), "%s", pr);
	if (!strcmp(pr, "tcp") || !strcmp(pr, "udp") || !strcmp(pr, "6") || !strcmp(pr, "17")) {
		pm->has_range = true;
		if (pct(10))
			pm->from = pm->to = -1;
		else
			gen_range(&pm->from, &pm->to);
	} else if (!strcmp(pr, "icmp") || !strcmp(pr, "icmpv6") || !strcmp(pr, "1") || !strcmp(pr, "58")) {
		bool v6 = !strcmp(pr, "icmpv6") || !strcmp(pr, "58");

		pm->has_range = !(v6 && pct(20)) && !(!strcmp(pr, "58") && pct(50));
		gen_icmp_type_code(v6, &pm->from, &pm->to);
	} else if (pct(30)) {
		/* "-1" and other protocols: every port, whatever the range says */
		pm->has_range = true;
		gen_range(&pm->from, &pm->to);
	}
	do {
		switch (rnd(10)) {
		case 0: case 1: case 2: case 3:
			if (pm->n_cidrs < 3)
				pm->cidrs[pm->n_cidrs++] = gen_cidr(P, AF_INET);
			break;
		case 4: case 5: case 6:
			if (pm->n_cidrs < 3)
				pm->cidrs[pm->n_cidrs++] = gen_cidr(P, AF_INET6);
			break;
		case 7: case 8:
			if (pm->n_groups < 2)
				pm->groups[pm->n_groups++] = (int)rnd((uint32_t)P->n_groups);
			break;
		default:
			if (P->n_pls && pm->n_pls < 2)
				pm->pls[pm->n_pls++] = (int)rnd((uint32_t)P->n_pls);
		}
	} while (pct(35) || pm->n_cidrs + pm->n_groups + pm->n_pls == 0);
}

static void gen_entry(const struct g_policy *P, struct g_entry *e, bool egress, int num)
{
	static const char *const protos[] = { "-1", "-1", "6", "6", "6", "17", "17", "1", "58", "other" };
	const char *pr = protos[rnd(sizeof(protos) / sizeof(protos[0]))];
	int family = pct(55) ? AF_INET : AF_INET6;

	memset(e, 0, sizeof(*e));
	e->num = num;
	e->egress = egress;
	e->allow = pct(60);
	if (!strcmp(pr, "other"))
		snprintf(e->proto, sizeof(e->proto), "%d", other_protos[rnd(N_OTHER)]);
	else
		snprintf(e->proto, sizeof(e->proto), "%s", pr);
	if (!strcmp(pr, "6") || !strcmp(pr, "17")) {
		e->has_ports = pct(90);
		gen_range(&e->pfrom, &e->pto);
	} else if (!strcmp(pr, "1") || !strcmp(pr, "58")) {
		e->has_icmp = pct(85);
		gen_icmp_type_code(pr[0] == '5', &e->itype, &e->icode);
	}
	e->cidr = gen_cidr(P, family);
}

static void gen_acl_entries(const struct g_policy *P, struct g_acl *acl)
{
	acl->n = 0;
	for (int egress = 0; egress < 2; egress++) {
		int n = (int)rnd(10), num = 0;

		for (int i = 0; i < n && acl->n < G_ENTRIES - 4; i++) {
			num += 1 + (int)rnd(30);
			gen_entry(P, &acl->e[acl->n++], egress, num);
		}
		/* often a broad allow at the end, so that packets get past */
		if (pct(80)) {
			struct g_entry *e = &acl->e[acl->n++];

			memset(e, 0, sizeof(*e));
			e->num = num + 1 + (int)rnd(100);
			e->egress = egress;
			e->allow = true;
			snprintf(e->proto, sizeof(e->proto), "-1");
			e->cidr.ad.family = AF_INET;
			if (pct(60)) {
				e = &acl->e[acl->n++];
				*e = acl->e[acl->n - 2];
				e->cidr.ad.family = AF_INET6;
			}
		}
		/* describe-network-acls prints the '*' entries: sometimes they are there */
		if (pct(30)) {
			for (int f = 0; f < 2; f++) {
				struct g_entry *e = &acl->e[acl->n++];

				memset(e, 0, sizeof(*e));
				e->num = f ? 32768 : 32767;
				e->egress = egress;
				snprintf(e->proto, sizeof(e->proto), "-1");
				e->cidr.ad.family = f ? AF_INET6 : AF_INET;
			}
		}
	}
}

static void gen_rules(struct g_policy *P);

static void gen_ct(struct g_eni *eni)
{
	eni->has_ct = pct(40);
	if (!eni->has_ct)
		return;
	eni->ct[0] = pct(70) ? 60 + (int)rnd(600) : pct(50) ? 432000 : 0;
	eni->ct[1] = pct(70) ? 60 + (int)rnd(121) : 0;
	eni->ct[2] = pct(70) ? 30 + (int)rnd(31) : 0;
}

static void gen_settings(struct g_policy *P)
{
	static const unsigned hi[5] = { 90, 150, 20, 40, 150 };

	P->has_settings = pct(60);
	for (int i = 0; i < 5; i++)
		P->st[i] = P->has_settings && pct(70) ? 1 + rnd(hi[i]) : 0;
}

/* A policy change: new rules and ACL entries; sometimes new timeouts, or an
 * endpoint that stops or starts being enforced. */
static void gen_change(struct g_policy *P)
{
	gen_rules(P);
	if (pct(30)) {
		gen_settings(P);
		for (int i = 0; i < P->n_enis; i++)
			gen_ct(&P->enis[i]);
	}
	if (pct(10)) {
		struct g_ep *ep = &P->eps[rnd((uint32_t)P->n_eps)];

		ep->gateway = !ep->gateway;
	}
}

static void gen_rules(struct g_policy *P)
{
	for (int g = 0; g < P->n_groups; g++)
		for (int d = 0; d < 2; d++) {
			P->groups[g].n[d] = (int)rnd(d ? 4 : G_PERMS + 1);
			for (int i = 0; i < P->groups[g].n[d]; i++)
				gen_perm(P, &P->groups[g].perm[d][i]);
		}
	for (int a = 0; a < P->n_acls; a++)
		gen_acl_entries(P, &P->acls[a]);
}

static bool addr_used(const struct g_policy *P, const struct g_addr *ad)
{
	for (int i = 0; i < P->n_enis; i++)
		for (int k = 0; k < P->enis[i].n_addrs; k++)
			if (P->enis[i].addrs[k].family == ad->family &&
			    !memcmp(P->enis[i].addrs[k].a, ad->a, 16))
				return true;
	return false;
}

static void gen_eni_addrs(struct g_policy *P, struct g_eni *eni, int n)
{
	for (int tries = 0; eni->n_addrs < n && tries < 50; tries++) {
		struct g_addr ad = pool_pick(P, pct(60) ? AF_INET : AF_INET6);
		bool dup = addr_used(P, &ad);

		for (int k = 0; k < eni->n_addrs; k++)
			dup |= eni->addrs[k].family == ad.family && !memcmp(eni->addrs[k].a, ad.a, 16);
		if (!dup)
			eni->addrs[eni->n_addrs++] = ad;
	}
}

static void gen_groups_of(const struct g_policy *P, int *v, int *n, int max)
{
	*n = 1 + (int)rnd((uint32_t)max);
	if (*n > P->n_groups)
		*n = P->n_groups;
	for (int i = 0; i < *n; i++) {
		int g;
		bool dup;

		do {
			g = (int)rnd((uint32_t)P->n_groups);
			dup = false;
			for (int j = 0; j < i; j++)
				dup |= v[j] == g;
		} while (dup);
		v[i] = g;
	}
}

static void gen_policy(struct g_policy *P)
{
	memset(P, 0, sizeof(*P));
	gen_pool(P, AF_INET);
	gen_pool(P, AF_INET6);
	P->n_groups = 1 + (int)rnd(G_GROUPS);
	P->n_pls = (int)rnd(G_PLS + 1);
	for (int i = 0; i < P->n_pls; i++) {
		P->pls[i].n = 1 + (int)rnd(4);
		for (int k = 0; k < P->pls[i].n; k++)
			P->pls[i].e[k] = gen_cidr(P, pct(60) ? AF_INET : AF_INET6);
	}
	P->n_eps = 1 + (int)rnd(G_EPS);
	for (int e = 0; e < P->n_eps; e++) {
		struct g_ep *ep = &P->eps[e];
		int total = 1 + (int)rnd(3);

		ep->n_enis = total > 1 && pct(40) ? 2 : 1;
		ep->gateway = pct(7);
		ep->groups_present = pct(75);
		ep->empty_groups = !ep->groups_present && pct(40);
		gen_groups_of(P, ep->groups, &ep->n_groups, 3);
		for (int k = 0; k < ep->n_enis; k++) {
			struct g_eni *eni = &P->enis[P->n_enis];

			memset(eni, 0, sizeof(*eni));
			eni->subnet = (int)rnd(4) - 1;
			gen_eni_addrs(P, eni, k == 0 ? total - (ep->n_enis - 1) : 1);
			if (ep->groups_present && pct(85)) {
				memcpy(eni->groups, ep->groups, sizeof(eni->groups));
				eni->n_groups = ep->n_groups;
			} else {
				gen_groups_of(P, eni->groups, &eni->n_groups, 3);
			}
			gen_ct(eni);
			ep->enis[k] = P->n_enis++;
		}
	}
	P->eps[0].gateway = false; /* at least one enforced endpoint */
	/* interfaces no endpoint names: members of the groups rules reference */
	for (int n = (int)rnd(4); n > 0; n--) {
		struct g_eni *eni = &P->enis[P->n_enis++];

		memset(eni, 0, sizeof(*eni));
		eni->subnet = (int)rnd(4) - 1;
		gen_eni_addrs(P, eni, 1 + (int)rnd(2));
		gen_groups_of(P, eni->groups, &eni->n_groups, 2);
	}
	if (pct(65)) {
		P->n_acls = 1 + (int)rnd(G_ACLS);
		P->acls[0].is_default = false;
		P->acls[0].subnets[P->acls[0].n_subnets++] = 0;
		if (pct(50))
			P->acls[0].subnets[P->acls[0].n_subnets++] = 1;
		if (P->n_acls > 1) {
			P->acls[1].is_default = true;
			if (pct(50) && P->acls[0].n_subnets == 1)
				P->acls[1].subnets[P->acls[1].n_subnets++] = 2;
		}
	}
	gen_settings(P);
	gen_rules(P);
}

static void put_addr(struct sb *b, const struct g_addr *ad)
{
	char s[INET6_ADDRSTRLEN];

	inet_ntop(ad->family, ad->a, s, sizeof(s));
	sb_printf(b, "%s", s);
}

static void put_cidr(struct sb *b, const struct g_cidr *c)
{
	put_addr(b, &c->ad);
	sb_printf(b, "/%d", c->plen);
}

static void put_group_list(struct sb *b, const char *key, const int *v, int n)
{
	sb_printf(b, ", \"%s\": [", key);
	for (int i = 0; i < n; i++)
		sb_printf(b, "%s{\"GroupId\": \"sg-%d\"}", i ? ", " : "", v[i]);
	sb_printf(b, "]");
}

static void put_perm(struct sb *b, const struct g_perm *pm, bool *first)
{
	int n4 = 0, n6 = 0;

	if (pm->dead)
		return;
	sb_printf(b, "%s\n      {\"IpProtocol\": \"%s\"", *first ? "" : ",", pm->proto);
	*first = false;
	if (pm->has_range)
		sb_printf(b, ", \"FromPort\": %d, \"ToPort\": %d", pm->from, pm->to);
	for (int f = 0; f < 2; f++) {
		int *cnt = f ? &n6 : &n4;

		for (int i = 0; i < pm->n_cidrs; i++) {
			if (pm->cidrs[i].ad.family != (f ? AF_INET6 : AF_INET))
				continue;
			sb_printf(b, "%s", *cnt ? ", " : f ? ", \"Ipv6Ranges\": [" : ", \"IpRanges\": [");
			sb_printf(b, f ? "{\"CidrIpv6\": \"" : "{\"CidrIp\": \"");
			put_cidr(b, &pm->cidrs[i]);
			sb_printf(b, "\"}");
			(*cnt)++;
		}
		if (*cnt)
			sb_printf(b, "]");
	}
	if (pm->n_groups)
		put_group_list(b, "UserIdGroupPairs", pm->groups, pm->n_groups);
	if (pm->n_pls) {
		sb_printf(b, ", \"PrefixListIds\": [");
		for (int i = 0; i < pm->n_pls; i++)
			sb_printf(b, "%s{\"PrefixListId\": \"pl-%d\"}", i ? ", " : "", pm->pls[i]);
		sb_printf(b, "]");
	}
	sb_printf(b, "}");
}

static char *render(const struct g_policy *P)
{
	struct sb b = { 0 };

	sb_printf(&b, "{\"VpcEndpoints\": [");
	for (int e = 0; e < P->n_eps; e++) {
		const struct g_ep *ep = &P->eps[e];

		sb_printf(&b, "%s\n  {\"VpcEndpointId\": \"vpce-%d\", \"VpcEndpointType\": \"%s\", "
			  "\"ServiceName\": \"com.amazonaws.test.s%d\", \"NetworkInterfaceIds\": [",
			  e ? "," : "", e, ep->gateway ? "Gateway" : "Interface", e);
		for (int k = 0; k < ep->n_enis; k++)
			sb_printf(&b, "%s\"eni-%d\"", k ? ", " : "", ep->enis[k]);
		sb_printf(&b, "]");
		if (ep->groups_present)
			put_group_list(&b, "Groups", ep->groups, ep->n_groups);
		else if (ep->empty_groups)
			sb_printf(&b, ", \"Groups\": []");
		sb_printf(&b, "}");
	}
	sb_printf(&b, "],\n\"NetworkInterfaces\": [");
	for (int i = 0; i < P->n_enis; i++) {
		const struct g_eni *eni = &P->enis[i];
		int n4 = 0, n6 = 0;

		sb_printf(&b, "%s\n  {\"NetworkInterfaceId\": \"eni-%d\", \"VpcId\": \"vpc-1\"", i ? "," : "", i);
		if (eni->subnet >= 0)
			sb_printf(&b, ", \"SubnetId\": \"subnet-%d\"", eni->subnet);
		for (int k = 0; k < eni->n_addrs; k++) {
			if (eni->addrs[k].family != AF_INET)
				continue;
			if (!n4) {
				sb_printf(&b, ", \"PrivateIpAddress\": \"");
				put_addr(&b, &eni->addrs[k]);
				sb_printf(&b, "\", \"PrivateIpAddresses\": [");
			}
			sb_printf(&b, "%s{\"PrivateIpAddress\": \"", n4++ ? ", " : "");
			put_addr(&b, &eni->addrs[k]);
			sb_printf(&b, "\"}");
		}
		if (n4)
			sb_printf(&b, "]");
		for (int k = 0; k < eni->n_addrs; k++) {
			if (eni->addrs[k].family != AF_INET6)
				continue;
			sb_printf(&b, "%s{\"Ipv6Address\": \"", n6++ ? ", " : ", \"Ipv6Addresses\": [");
			put_addr(&b, &eni->addrs[k]);
			sb_printf(&b, "\"}");
		}
		if (n6)
			sb_printf(&b, "]");
		put_group_list(&b, "Groups", eni->groups, eni->n_groups);
		if (eni->has_ct) {
			static const char *const k3[3] = { "TcpEstablishedTimeout", "UdpStreamTimeout", "UdpTimeout" };
			bool first = true;

			sb_printf(&b, ", \"ConnectionTrackingConfiguration\": {");
			for (int k = 0; k < 3; k++)
				if (eni->ct[k]) {
					sb_printf(&b, "%s\"%s\": %d", first ? "" : ", ", k3[k], eni->ct[k]);
					first = false;
				}
			sb_printf(&b, "}");
		}
		sb_printf(&b, "}");
	}
	sb_printf(&b, "],\n\"SecurityGroups\": [");
	for (int g = 0; g < P->n_groups; g++) {
		sb_printf(&b, "%s\n  {\"GroupId\": \"sg-%d\"", g ? "," : "", g);
		for (int d = 0; d < 2; d++) {
			bool first = true;

			sb_printf(&b, ", \"%s\": [", d ? "IpPermissionsEgress" : "IpPermissions");
			for (int i = 0; i < P->groups[g].n[d]; i++)
				put_perm(&b, &P->groups[g].perm[d][i], &first);
			sb_printf(&b, "]");
		}
		sb_printf(&b, "}");
	}
	sb_printf(&b, "]");
	if (P->n_pls) {
		sb_printf(&b, ",\n\"PrefixLists\": [");
		for (int i = 0; i < P->n_pls; i++) {
			sb_printf(&b, "%s\n  {\"PrefixListId\": \"pl-%d\", \"Entries\": [", i ? "," : "", i);
			for (int k = 0; k < P->pls[i].n; k++) {
				sb_printf(&b, "%s{\"Cidr\": \"", k ? ", " : "");
				put_cidr(&b, &P->pls[i].e[k]);
				sb_printf(&b, "\"}");
			}
			sb_printf(&b, "]}");
		}
		sb_printf(&b, "]");
	}
	if (P->n_acls) {
		sb_printf(&b, ",\n\"NetworkAcls\": [");
		for (int a = 0; a < P->n_acls; a++) {
			const struct g_acl *acl = &P->acls[a];
			bool first = true;

			sb_printf(&b, "%s\n  {\"NetworkAclId\": \"acl-%d\", \"VpcId\": \"vpc-1\", \"IsDefault\": %s, "
				  "\"Associations\": [", a ? "," : "", a, acl->is_default ? "true" : "false");
			for (int k = 0; k < acl->n_subnets; k++)
				sb_printf(&b, "%s{\"SubnetId\": \"subnet-%d\"}", k ? ", " : "", acl->subnets[k]);
			sb_printf(&b, "], \"Entries\": [");
			for (int k = 0; k < acl->n; k++) {
				const struct g_entry *e = &acl->e[k];

				if (e->dead)
					continue;
				sb_printf(&b, "%s\n    {\"RuleNumber\": %d, \"Protocol\": \"%s\", \"RuleAction\": \"%s\", "
					  "\"Egress\": %s, \"%s\": \"", first ? "" : ",", e->num, e->proto,
					  e->allow ? "allow" : "deny", e->egress ? "true" : "false",
					  e->cidr.ad.family == AF_INET ? "CidrBlock" : "Ipv6CidrBlock");
				first = false;
				put_cidr(&b, &e->cidr);
				sb_printf(&b, "\"");
				if (e->has_ports)
					sb_printf(&b, ", \"PortRange\": {\"From\": %d, \"To\": %d}", e->pfrom, e->pto);
				if (e->has_icmp)
					sb_printf(&b, ", \"IcmpTypeCode\": {\"Type\": %d, \"Code\": %d}", e->itype, e->icode);
				sb_printf(&b, "}");
			}
			sb_printf(&b, "]}");
		}
		sb_printf(&b, "]");
	}
	if (P->has_settings) {
		bool first = true;

		sb_printf(&b, ",\n\"EpgateSettings\": {\"ConnectionTracking\": {");
		for (int i = 0; i < 5; i++)
			if (P->st[i]) {
				sb_printf(&b, "%s\"%s\": %u", first ? "" : ", ", st_names[i], P->st[i]);
				first = false;
			}
		sb_printf(&b, "}}");
	}
	sb_printf(&b, "}\n");
	return b.s;
}

/* EPG_DIFF_AVOID: packets not to generate, to look past a known
 * disagreement (a comma-separated list of these names). */
enum {
	AVOID_EP2EP = 1,      /* "ep2ep": traffic between two endpoint addresses */
	AVOID_ECHO_FLIP = 2,  /* "echo-flip": an echo request from the side that got one */
	AVOID_FRAG_FULL = 4,  /* "frag-full": the instance with a tiny fragment table */
	AVOID_ODD_QUOTE = 8,  /* "odd-quote": ICMP errors quoting too little, or a non-echo ICMP */
};
static unsigned avoid;

/* ---- packets on the wire ------------------------------------------------------------ */

/* A packet: what the model is told, and how the frame is laid out. */
struct wire {
	struct rm_packet p;
	uint8_t vlans;
	uint8_t ip_opts;   /* IPv4 option words */
	uint8_t v6_ext;    /* IPv6 hop-by-hop / destination options headers */
	uint8_t tcp_opts;  /* TCP option words */
	uint16_t payload;  /* bytes after the L4 header */
	uint16_t pad;      /* bytes after the IP packet (Ethernet padding) */
	uint16_t l4_keep;  /* *_SHORT: bytes of L4 in the IP payload */
	uint16_t bad;      /* the broken value: ihl, doff, frame length, ... */
	uint16_t ip_id;
	uint8_t ext_kind[16]; /* IPv6 extension headers before the Fragment header: 0, 60, 43, 51 */
	uint8_t ext_after;    /* destination options headers after the Fragment header */
	uint8_t quote_opts;   /* ICMP error: IPv4 option words in the quoted header */
};

#define FRAME_MAX 2048

struct frame {
	uint8_t b[FRAME_MAX];
	size_t len;
};

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static uint8_t icmp_proto(int family)
{
	return family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6;
}

/* The quoted packet of an ICMP error: IP header and the first 8 bytes of L4
 * (w->p.quote.l4_len of them). */
static void write_quote(const struct wire *w, uint8_t *o)
{
	const struct rm_packet *p = &w->p;
	const struct rm_quote *q = &p->quote;
	size_t hl;
	uint8_t *l;

	if (p->family == AF_INET) {
		hl = 20 + 4u * w->quote_opts;
		o[0] = (uint8_t)(0x40 | (hl / 4));
		memset(o + 20, 1, 4u * w->quote_opts);
		put16(o + 2, 20 + 8 + 100); /* as sent: longer than what is quoted */
		put16(o + 4, 0x4242);
		o[8] = 64;
		o[9] = q->proto;
		memcpy(o + 12, q->src, 4);
		memcpy(o + 16, q->dst, 4);
	} else {
		hl = 40;
		o[0] = 0x60;
		put16(o + 4, 8 + 100);
		o[6] = q->proto;
		o[7] = 64;
		memcpy(o + 8, q->src, 16);
		memcpy(o + 24, q->dst, 16);
	}
	l = o + hl;
	if (q->proto == IPPROTO_TCP || q->proto == IPPROTO_UDP) {
		put16(l, q->sport);
		put16(l + 2, q->dport);
		put32(l + 4, q->proto == IPPROTO_UDP ? (108u << 16) : 0x11223344);
	} else if (q->proto == icmp_proto(p->family)) {
		l[0] = q->icmp_type;
		put16(l + 4, q->echo_id);
		put16(l + 6, 7);
	} else {
		memset(l, 0x5a, 8);
	}
	memset(l + w->p.quote.l4_len, 0, 8 - w->p.quote.l4_len); /* not quoted: not in the frame */
}

static size_t l4_hdr_len(const struct wire *w)
{
	const struct rm_packet *p = &w->p;

	if (p->proto == IPPROTO_TCP)
		return 20 + 4u * w->tcp_opts;
	if (p->proto == IPPROTO_UDP)
		return 8;
	if (p->proto == icmp_proto(p->family) && p->has_quote)
		return 8 + (p->family == AF_INET ? 20 + 4u * w->quote_opts : 40) + w->p.quote.l4_len;
	if (p->proto == icmp_proto(p->family))
		return 8;
	return 0;
}

static size_t write_l4(const struct wire *w, uint8_t *o)
{
	const struct rm_packet *p = &w->p;
	int doff = 5 + w->tcp_opts;

	if (p->proto == IPPROTO_TCP) {
		if (p->defect == RM_TCP_DOFF_SMALL || p->defect == RM_TCP_DOFF_BEYOND)
			doff = w->bad;
		put16(o, p->sport);
		put16(o + 2, p->dport);
		put32(o + 4, 0x01020304);
		put32(o + 8, 0x05060708);
		o[12] = (uint8_t)(doff << 4);
		o[13] = p->tcp_flags;
		put16(o + 14, 65535);
		memset(o + 20, 1, 4u * w->tcp_opts); /* NOPs */
	} else if (p->proto == IPPROTO_UDP) {
		put16(o, p->sport);
		put16(o + 2, p->dport);
		put16(o + 4, (uint16_t)(8 + w->payload));
	} else if (p->proto == icmp_proto(p->family)) {
		o[0] = p->icmp_type;
		o[1] = p->icmp_code;
		put16(o + 4, p->echo_id);
		put16(o + 6, 1);
		if (p->has_quote)
			write_quote(w, o + 8);
	}
	return l4_hdr_len(w);
}

static void build_frame(const struct wire *w, struct frame *f)
{
	const struct rm_packet *p = &w->p;
	bool later = p->is_frag && p->frag_off > 0;
	bool l4_short = p->defect == RM_TCP_SHORT || p->defect == RM_UDP_SHORT ||
			p->defect == RM_ICMP_SHORT;
	uint8_t *b = f->b;
	size_t off = 12, l3, data, l4off;

	memset(b, 0, sizeof(f->b));
	memcpy(b, "\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02", 12);
	if (p->defect == RM_NOT_IP) {
		put16(b + 12, 0x0806);
		memset(b + 14, 0xaa, 28);
		f->len = 42;
		return;
	}
	for (int v = 0; v < w->vlans; v++) {
		put16(b + off, v + 1 < w->vlans ? 0x88a8 : 0x8100);
		put16(b + off + 2, (uint16_t)(100 + v));
		off += 4;
	}
	put16(b + off, p->family == AF_INET ? 0x0800 : 0x86dd);
	l3 = off + 2;

	if (p->family == AF_INET) {
		size_t hl = 20 + 4u * w->ip_opts, tot;
		uint16_t fo = 0;

		l4off = l3 + hl;
		if (later) {
			data = p->frag_len;
			memset(b + l4off, 0x33, data);
		} else {
			data = write_l4(w, b + l4off);
			memset(b + l4off + data, 0x44, w->payload);
			data += w->payload;
		}
		if (l4_short)
			data = w->l4_keep;
		tot = hl + data;
		b[l3] = (uint8_t)(0x40 | (hl / 4));
		put16(b + l3 + 2, (uint16_t)tot);
		put16(b + l3 + 4, p->is_frag ? (uint16_t)p->frag_id : w->ip_id);
		if (p->is_frag)
			fo = (uint16_t)((p->frag_mf ? 0x2000 : 0) | (p->frag_off & 0x1fff));
		else if (w->ip_id & 1)
			fo = 0x4000; /* DF */
		put16(b + l3 + 6, fo);
		b[l3 + 8] = 64;
		b[l3 + 9] = p->proto;
		memcpy(b + l3 + 12, p->src, 4);
		memcpy(b + l3 + 16, p->dst, 4);
		memset(b + l3 + 20, 1, 4u * w->ip_opts); /* NOP options */
		f->len = l3 + tot + w->pad;
		switch (p->defect) {
		case RM_IHL_SMALL:
			b[l3] = (uint8_t)(0x40 | w->bad);
			break;
		case RM_IHL_BEYOND: /* the frame holds w->bad bytes of IP, the header is longer */
			f->len = l3 + w->bad;
			put16(b + l3 + 2, w->bad);
			b[l3] = (uint8_t)(0x40 | (w->bad / 4 + 1));
			break;
		case RM_TOTLEN_SHORT:
			put16(b + l3 + 2, w->bad);
			break;
		case RM_TOTLEN_LONG:
			put16(b + l3 + 2, (uint16_t)(f->len - l3 + w->bad));
			break;
		default:
			break;
		}
	} else {
		size_t cur = l3 + 40, last_ext = 0;
		uint8_t *next = b + l3 + 6;

		b[l3] = 0x60;
		b[l3 + 7] = p->hop_limit;
		memcpy(b + l3 + 8, p->src, 16);
		memcpy(b + l3 + 24, p->dst, 16);
		for (int e = 0; e < w->v6_ext + (later ? 0 : w->ext_after); e++) {
			uint8_t kind = e >= w->v6_ext ? 60 : e == 0 && !w->ext_kind[0] ? 0 :
				       w->ext_kind[e] ? w->ext_kind[e] : 60;

			if (e == w->v6_ext && p->is_frag) { /* the Fragment header, then the rest */
				*next = 44;
				next = b + cur;
				put16(b + cur + 2, (uint16_t)((p->frag_off << 3) | (p->frag_mf ? 1 : 0)));
				put32(b + cur + 4, p->frag_id);
				cur += 8;
			}
			*next = kind;
			next = b + cur;
			last_ext = cur;
			if (kind == 51) { /* AH: length in 4-byte units, minus 2 */
				b[cur + 1] = 4;
				memset(b + cur + 4, 0xa5, 20);
				cur += 24;
			} else if (kind == 43) { /* routing header, no segments left */
				b[cur + 1] = 0;
				b[cur + 2] = 0;
				b[cur + 3] = 0;
				cur += 8;
			} else { /* hop-by-hop / destination options: PadN */
				b[cur + 1] = 0;
				b[cur + 2] = 1;
				b[cur + 3] = 4;
				cur += 8;
			}
		}
		if (p->is_frag && (w->v6_ext + (later ? 0 : w->ext_after) == w->v6_ext)) {
			*next = 44;
			next = b + cur;
			put16(b + cur + 2, (uint16_t)((p->frag_off << 3) | (p->frag_mf ? 1 : 0)));
			put32(b + cur + 4, p->frag_id);
			cur += 8;
		}
		*next = p->proto;
		if (p->defect == RM_V6_EXT_PAST && last_ext)
			b[last_ext + 1] = 255; /* past the packet, in either unit */
		l4off = cur;
		if (later) {
			data = p->frag_len;
			memset(b + l4off, 0x33, data);
		} else {
			data = write_l4(w, b + l4off);
			memset(b + l4off + data, 0x44, w->payload);
			data += w->payload;
		}
		if (l4_short)
			data = w->l4_keep;
		put16(b + l3 + 4, (uint16_t)(cur - l3 - 40 + data));
		f->len = cur + data + w->pad;
		if (p->defect == RM_V6_PLEN_ZERO)
			put16(b + l3 + 4, 0);
		else if (p->defect == RM_V6_PLEN_LONG)
			put16(b + l3 + 4, (uint16_t)(f->len - l3 - 40 + w->bad));
	}
	if (p->defect == RM_SHORT_ADDRS)
		f->len = w->bad;
	if (f->len > FRAME_MAX)
		abort();
}

static const char *defect_name(enum rm_defect d)
{
	static const char *const n[RM_DEFECT_MAX] = {
		[RM_OK] = "", [RM_NOT_IP] = "not-ip", [RM_SHORT_ADDRS] = "short-before-addresses",
		[RM_VLAN_DEEP] = "vlan-deep", [RM_IHL_SMALL] = "ihl-small", [RM_IHL_BEYOND] = "ihl-beyond-frame",
		[RM_TOTLEN_SHORT] = "totlen-short", [RM_TOTLEN_LONG] = "totlen-long",
		[RM_V6_PLEN_ZERO] = "v6-plen-zero", [RM_V6_PLEN_LONG] = "v6-plen-long",
		[RM_V6_EXT_PAST] = "v6-ext-past-end", [RM_TCP_SHORT] = "tcp-short",
		[RM_TCP_DOFF_SMALL] = "tcp-doff-small", [RM_TCP_DOFF_BEYOND] = "tcp-doff-beyond",
		[RM_UDP_SHORT] = "udp-short", [RM_ICMP_SHORT] = "icmp-short",
	};
	return d < RM_DEFECT_MAX ? n[d] : "?";
}

static void flags_str(uint8_t f, char *s)
{
	static const char l[] = "FSRPAUEC";
	int n = 0;

	for (int i = 0; i < 8; i++)
		if (f & (1 << i))
			s[n++] = l[i];
	if (!n)
		s[n++] = '-';
	s[n] = 0;
}

static void describe(const struct wire *w, char *buf, size_t len)
{
	const struct rm_packet *p = &w->p;
	char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN], fl[10];
	struct sb b = { 0 };
	bool later = p->is_frag && p->frag_off > 0;

	if (p->defect == RM_NOT_IP) {
		snprintf(buf, len, "ARP frame");
		return;
	}
	inet_ntop(p->family, p->src, s, sizeof(s));
	inet_ntop(p->family, p->dst, d, sizeof(d));
	if (later)
		sb_printf(&b, "%s proto %u %s > %s", p->family == AF_INET ? "ipv4" : "ipv6", p->proto, s, d);
	else if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) {
		sb_printf(&b, "%s %s %s.%u > %s.%u", p->family == AF_INET ? "ipv4" : "ipv6",
			  p->proto == IPPROTO_TCP ? "tcp" : "udp", s, p->sport, d, p->dport);
		if (p->proto == IPPROTO_TCP) {
			flags_str(p->tcp_flags, fl);
			sb_printf(&b, " [%s]", fl);
		}
	} else if (p->proto == icmp_proto(p->family)) {
		sb_printf(&b, "%s %s > %s type %u code %u id %u", p->family == AF_INET ? "icmp" : "icmpv6",
			  s, d, p->icmp_type, p->icmp_code, p->echo_id);
		if (p->has_quote) {
			const struct rm_quote *q = &p->quote;

			inet_ntop(p->family, q->src, s, sizeof(s));
			inet_ntop(p->family, q->dst, d, sizeof(d));
			sb_printf(&b, " quoting proto %u %s.%u > %s.%u (icmp type %u id %u; %u bytes of L4)", q->proto,
				  s, q->sport, d, q->dport, q->icmp_type, q->echo_id, q->l4_len);
		}
	} else {
		sb_printf(&b, "%s proto %u %s > %s", p->family == AF_INET ? "ipv4" : "ipv6", p->proto, s, d);
	}
	if (p->is_frag)
		sb_printf(&b, " frag(id %u, offset %u, %s, %u bytes)", p->frag_id, p->frag_off,
			  p->frag_mf ? "MF" : "last", p->frag_len);
	if (p->defect)
		sb_printf(&b, " DEFECT %s (value %u, l4 bytes %u)", defect_name(p->defect), w->bad, w->l4_keep);
	if (w->vlans || w->ip_opts || w->v6_ext || w->tcp_opts || w->payload || w->pad)
		sb_printf(&b, " {vlans %u, ip opts %u, v6 ext %u, tcp opts %u, payload %u, pad %u}", w->vlans,
			  w->ip_opts, w->v6_ext, w->tcp_opts, w->payload, w->pad);
	snprintf(buf, len, "%s", b.s);
	free(b.s);
}

/* ---- packet sequences ------------------------------------------------------------------- */

/* A conversation the generator started: a is the initiator. */
struct conv {
	int family;
	uint8_t a[16], b[16];
	uint8_t proto;
	uint16_t pa, pb; /* ports; ICMP echo: the identifier */
	int step;        /* TCP: 0 SYN, 1 SYN-ACK, 2 open, 3 closing, 5 reset */
};

enum ev_kind { EV_PKT, EV_SWAP };

struct event {
	uint8_t kind;
	uint8_t version; /* EV_SWAP: the policy version to apply */
	uint32_t advance_ms; /* the clock moves before the event */
	struct wire w;
};

#define N_CONV 48
#define N_PEND 32

struct gen {
	const struct g_policy *P;
	struct g_addr eps[16]; /* endpoint addresses */
	int n_eps;
	struct conv conv[N_CONV];
	int n_conv;
	struct wire pend[N_PEND]; /* fragments still to send */
	int n_pend;
	uint32_t frag_id;
	uint32_t tmo[16]; /* timeouts worth jumping to, seconds */
	int n_tmo;
};

#define SYN 0x02
#define ACK 0x10
#define FIN 0x01
#define RST 0x04
#define PSH 0x08

static bool is_ep_addr(const struct gen *g, int family, const uint8_t *a)
{
	for (int i = 0; i < g->n_eps; i++)
		if (g->eps[i].family == family && !memcmp(g->eps[i].a, a, 16))
			return true;
	return false;
}

static void gen_init(struct gen *g, const struct g_policy *P)
{
	static const uint32_t fixed[] = { 10, 30, 60, 120, 180, RM_FRAG_TIMEOUT_S };

	memset(g, 0, sizeof(*g));
	g->P = P;
	for (int e = 0; e < P->n_eps; e++)
		for (int k = 0; k < P->eps[e].n_enis; k++) {
			const struct g_eni *eni = &P->enis[P->eps[e].enis[k]];

			for (int i = 0; i < eni->n_addrs && g->n_eps < 16 && !P->eps[e].gateway; i++)
				g->eps[g->n_eps++] = eni->addrs[i];
			for (int i = 0; i < 3 && eni->has_ct; i++)
				if (eni->ct[i] && eni->ct[i] < 100000 && g->n_tmo < 16)
					g->tmo[g->n_tmo++] = (uint32_t)eni->ct[i];
		}
	for (int i = 0; i < 5; i++)
		if (P->st[i] && g->n_tmo < 16)
			g->tmo[g->n_tmo++] = P->st[i];
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]) && g->n_tmo < 16; i++)
		g->tmo[g->n_tmo++] = fixed[i];
	g->frag_id = (uint32_t)rnd64();
}

static void wire_base(struct wire *w, int family, const uint8_t *src, const uint8_t *dst, uint8_t proto)
{
	memset(w, 0, sizeof(*w));
	w->p.family = family;
	w->p.hop_limit = 64;
	memcpy(w->p.src, src, fam_len(family));
	memcpy(w->p.dst, dst, fam_len(family));
	w->p.proto = proto;
	w->vlans = pct(10) ? (uint8_t)(1 + rnd(2)) : 0;
	if (family == AF_INET)
		w->ip_opts = pct(10) ? (uint8_t)(1 + rnd(10)) : 0;
	else
		w->v6_ext = pct(10) ? (uint8_t)(1 + rnd(7)) : 0;
	for (int e = 0; e < 16; e++) {
		static const uint8_t kinds[] = { 60, 60, 43, 51 };

		w->ext_kind[e] = e == 0 && pct(50) ? 0 : kinds[rnd(4)];
	}
	w->tcp_opts = pct(10) ? (uint8_t)(1 + rnd(3)) : 0;
	w->payload = pct(60) ? (uint16_t)rnd(64) : 0;
	w->pad = pct(15) ? (uint16_t)(1 + rnd(20)) : 0;
	w->ip_id = (uint16_t)rnd(65536);
}

static bool is_echo_type(int family, uint8_t t)
{
	return family == AF_INET ? (t == 8 || t == 0) : (t == 128 || t == 129);
}

static uint8_t echo_type(int family, bool request)
{
	if (family == AF_INET)
		return request ? 8 : 0;
	return request ? 128 : 129;
}

static void conv_wire(const struct conv *c, bool from_a, struct wire *w)
{
	wire_base(w, c->family, from_a ? c->a : c->b, from_a ? c->b : c->a, c->proto);
	if (c->proto == IPPROTO_TCP || c->proto == IPPROTO_UDP) {
		w->p.sport = from_a ? c->pa : c->pb;
		w->p.dport = from_a ? c->pb : c->pa;
	} else if (c->proto == icmp_proto(c->family)) {
		w->p.icmp_type = echo_type(c->family, pct(90) || (avoid & AVOID_ECHO_FLIP) ? from_a : !from_a);
		w->p.echo_id = c->pa;
	}
}

static uint16_t client_port(void)
{
	switch (rnd(3)) {
	case 0:
		return (uint16_t)(1024 + rnd(64512));
	case 1:
		return some_ports[rnd(sizeof(some_ports) / sizeof(some_ports[0]))];
	default:
		return (uint16_t)rnd(65536);
	}
}

static void pick_peer(const struct gen *g, int family, uint8_t *out)
{
	struct g_addr ad;

	for (int tries = 0; tries < 20; tries++) {
		if (pct(85))
			ad = pool_pick(g->P, family);
		else
			random_addr(&ad, family);
		if (!(avoid & AVOID_EP2EP) || !is_ep_addr(g, family, ad.a))
			break;
	}
	memcpy(out, ad.a, 16);
}

/* Addresses for a new packet: a to b, with at least one endpoint address
 * unless it is other hosts' traffic. */
static void pick_pair(const struct gen *g, int *family, uint8_t *a, uint8_t *b)
{
	uint32_t r = rnd(100);
	const struct g_addr *e = &g->eps[rnd((uint32_t)g->n_eps)];

	memset(a, 0, 16);
	memset(b, 0, 16);
	*family = e->family;
	if (r < 96) {
		uint8_t peer[16];

		if (r < 6 && !(avoid & AVOID_EP2EP)) { /* endpoint to endpoint, when there is another of the family */
			const struct g_addr *o = &g->eps[rnd((uint32_t)g->n_eps)];

			if (o->family == e->family)
				memcpy(peer, o->a, 16);
			else
				pick_peer(g, *family, peer);
		} else {
			pick_peer(g, *family, peer);
		}
		if (r < 50) {
			memcpy(a, peer, 16);
			memcpy(b, e->a, 16);
		} else {
			memcpy(a, e->a, 16);
			memcpy(b, peer, 16);
		}
	} else {
		*family = pct(50) ? AF_INET : AF_INET6;
		for (int tries = 0; tries < 20; tries++) {
			pick_peer(g, *family, a);
			pick_peer(g, *family, b);
			if (!is_ep_addr(g, *family, a) && !is_ep_addr(g, *family, b))
				break;
		}
	}
}

static int perm_proto(const char *s)
{
	if (!strcmp(s, "tcp"))
		return IPPROTO_TCP;
	if (!strcmp(s, "udp"))
		return IPPROTO_UDP;
	if (!strcmp(s, "icmp"))
		return IPPROTO_ICMP;
	if (!strcmp(s, "icmpv6"))
		return IPPROTO_ICMPV6;
	return atoi(s); /* "-1" and numbers */
}

/* An address inside a prefix. */
static void addr_in(const struct g_cidr *c, uint8_t *out)
{
	int bits = (int)fam_len(c->ad.family) * 8;

	memcpy(out, c->ad.a, 16);
	for (int j = c->plen; j < bits; j++)
		if (pct(50))
			out[j / 8] ^= (uint8_t)(0x80 >> (j % 8));
}

/* A conversation that some rule of an endpoint allows (most random ones
 * meet no rule): a permission of one of its groups, a peer inside one of
 * its sources, a port inside its range. False when the pick fits nothing. */
static bool directed_conv(const struct gen *g, struct conv *c)
{
	const struct g_policy *P = g->P;
	const struct g_ep *ep = &P->eps[rnd((uint32_t)P->n_eps)];
	int groups[8], ng = 0, d = pct(60) ? 0 : 1, k, proto, family;
	const struct g_group *gr;
	const struct g_perm *pm;
	uint8_t peer[16] = { 0 };
	const uint8_t *mine[6];
	int n_mine = 0;

	if (ep->gateway)
		return false;
	if (ep->groups_present) {
		for (int i = 0; i < ep->n_groups; i++)
			groups[ng++] = ep->groups[i];
	} else {
		for (int i = 0; i < ep->n_enis; i++)
			for (int j = 0; j < P->enis[ep->enis[i]].n_groups && ng < 8; j++)
				groups[ng++] = P->enis[ep->enis[i]].groups[j];
	}
	if (!ng)
		return false;
	gr = &P->groups[groups[rnd((uint32_t)ng)]];
	if (!gr->n[d])
		return false;
	pm = &gr->perm[d][rnd((uint32_t)gr->n[d])];
	if (pm->dead)
		return false;
	k = (int)rnd((uint32_t)(pm->n_cidrs + pm->n_groups + pm->n_pls));
	if (k < pm->n_cidrs) {
		family = pm->cidrs[k].ad.family;
		addr_in(&pm->cidrs[k], peer);
	} else if (k < pm->n_cidrs + pm->n_groups) {
		int grp = pm->groups[k - pm->n_cidrs], n = 0;
		const struct g_addr *cand[32];

		for (int i = 0; i < P->n_enis; i++)
			for (int j = 0; j < P->enis[i].n_groups; j++)
				if (P->enis[i].groups[j] == grp)
					for (int a = 0; a < P->enis[i].n_addrs && n < 32; a++)
						cand[n++] = &P->enis[i].addrs[a];
		if (!n)
			return false;
		k = (int)rnd((uint32_t)n);
		family = cand[k]->family;
		memcpy(peer, cand[k]->a, 16);
	} else {
		const struct g_pl *pl = &P->pls[pm->pls[k - pm->n_cidrs - pm->n_groups]];
		const struct g_cidr *e = &pl->e[rnd((uint32_t)pl->n)];

		family = e->ad.family;
		addr_in(e, peer);
	}
	if ((avoid & AVOID_EP2EP) && is_ep_addr(g, family, peer))
		return false;
	for (int i = 0; i < ep->n_enis; i++)
		for (int a = 0; a < P->enis[ep->enis[i]].n_addrs; a++)
			if (P->enis[ep->enis[i]].addrs[a].family == family && n_mine < 6)
				mine[n_mine++] = P->enis[ep->enis[i]].addrs[a].a;
	if (!n_mine)
		return false;
	proto = perm_proto(pm->proto);
	if (proto < 0) {
		static const int any[] = { IPPROTO_TCP, IPPROTO_UDP, -1, 47 };

		proto = any[rnd(4)];
		if (proto < 0)
			proto = icmp_proto(family);
	}
	if ((proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) && proto != icmp_proto(family))
		return false;
	if (proto == 0 || proto == 43 || proto == 44 || proto == 50 || proto == 51 || proto == 60 ||
	    proto == 135 || proto == 139 || proto == 140 || proto == 253 || proto == 254 || proto == 59)
		return false; /* IPv6 extension header numbers: not an upper layer */
	memset(c, 0, sizeof(*c));
	c->family = family;
	c->proto = (uint8_t)proto;
	memcpy(d ? c->b : c->a, peer, 16);
	memcpy(d ? c->a : c->b, mine[rnd((uint32_t)n_mine)], 16);
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		c->pa = client_port();
		c->pb = pm->has_range && pm->from >= 0 && perm_proto(pm->proto) == proto ?
			(uint16_t)(pm->from + (int)rnd((uint32_t)(pm->to - pm->from + 1))) : client_port();
	} else if (proto == icmp_proto(family)) {
		c->pa = c->pb = (uint16_t)rnd(65536);
	}
	return true;
}

static void fill_conv(const struct gen *g, struct conv *c)
{
	uint32_t r = rnd(100);

	if (pct(75) && directed_conv(g, c))
		return;
	memset(c, 0, sizeof(*c));
	pick_pair(g, &c->family, c->a, c->b);
	if (r < 42)
		c->proto = IPPROTO_TCP;
	else if (r < 67)
		c->proto = IPPROTO_UDP;
	else if (r < 85)
		c->proto = icmp_proto(c->family);
	else
		c->proto = (uint8_t)other_protos[rnd(N_OTHER)];
	if (c->proto == IPPROTO_TCP || c->proto == IPPROTO_UDP) {
		c->pa = client_port();
		c->pb = pct(75) ? some_ports[rnd(sizeof(some_ports) / sizeof(some_ports[0]))] : client_port();
	} else if (c->proto == icmp_proto(c->family)) {
		c->pa = c->pb = pct(5) ? 0 : (uint16_t)rnd(65536);
	}
}

static struct conv *new_conv(struct gen *g)
{
	struct conv *c = g->n_conv < N_CONV ? &g->conv[g->n_conv++] : &g->conv[rnd(N_CONV)];

	fill_conv(g, c);
	return c;
}

static uint8_t tcp_first_flags(struct conv *c)
{
	uint32_t r = rnd(100);

	c->step = 2;
	if (r < 78) {
		c->step = 0;
		return SYN;
	}
	if (r < 86)
		return ACK;
	if (r < 90)
		return ACK | PSH;
	if (r < 93)
		return FIN | ACK;
	if (r < 95)
		return RST;
	if (r < 97) {
		c->step = 0;
		return SYN | ACK;
	}
	return (uint8_t)rnd(256);
}

/* The next packet of a TCP conversation. */
static void tcp_next(struct conv *c, struct wire *w)
{
	uint32_t r = rnd(100);
	bool from_a = true;
	uint8_t fl = ACK;

	switch (c->step) {
	case 0:
		if (r < 60) {
			from_a = false, fl = SYN | ACK, c->step = 1;
		} else if (r < 70) {
			fl = SYN;
		} else if (r < 80) {
			from_a = false, fl = RST | ACK, c->step = 5;
		} else if (r < 90) {
			fl = ACK;
		} else {
			from_a = false, fl = ACK;
		}
		break;
	case 1:
		if (r < 60) {
			fl = ACK, c->step = 2;
		} else if (r < 75) {
			from_a = false, fl = SYN | ACK;
		} else if (r < 85) {
			fl = FIN | ACK, c->step = 3;
		} else {
			from_a = pct(50), fl = ACK | PSH;
		}
		break;
	case 2:
		from_a = pct(50);
		if (r < 70) {
			fl = ACK | PSH;
		} else if (r < 80) {
			fl = FIN | ACK, c->step = 3;
		} else if (r < 85) {
			fl = RST, c->step = 5;
		} else {
			fl = ACK;
		}
		break;
	case 3:
		if (r < 40) {
			from_a = pct(50), fl = ACK;
		} else if (r < 70) {
			from_a = pct(50), fl = FIN | ACK;
		} else if (r < 90) {
			fl = SYN, c->step = 0; /* the same ports again */
		} else {
			from_a = pct(50), fl = RST, c->step = 5;
		}
		break;
	default:
		if (r < 50) {
			from_a = pct(85), fl = SYN, c->step = 0;
			if (!from_a) { /* the other side opens: it is the initiator now */
				struct conv t = *c;

				memcpy(c->a, t.b, 16);
				memcpy(c->b, t.a, 16);
				c->pa = t.pb;
				c->pb = t.pa;
				from_a = true;
			}
		} else {
			from_a = pct(50), fl = ACK;
		}
	}
	conv_wire(c, from_a, w);
	w->p.tcp_flags = fl;
}

static void conv_next(struct conv *c, struct wire *w)
{
	if (c->proto == IPPROTO_TCP)
		tcp_next(c, w);
	else
		conv_wire(c, pct(50), w);
}

/* An ICMP error about a packet of c, sent back to the packet's sender. */
static void gen_icmp_error(struct gen *g, struct wire *w)
{
	static const uint8_t t4[] = { 3, 3, 3, 11, 12 }, t6[] = { 1, 1, 2, 3, 4 };
	const struct conv *c = &g->conv[rnd((uint32_t)g->n_conv)];
	bool from_a = pct(50);
	struct wire q;
	uint8_t router[16];

	conv_wire(c, from_a, &q);
	pick_peer(g, c->family, router);
	/* from the other side, or from a router on the way to an endpoint */
	wire_base(w, c->family, pct(60) || !is_ep_addr(g, c->family, q.p.src) ? q.p.dst : router, q.p.src,
		  icmp_proto(c->family));
	w->p.icmp_type = c->family == AF_INET ? t4[rnd(5)] : t6[rnd(5)];
	w->p.icmp_code = (uint8_t)rnd(5);
	w->p.echo_id = pct(50) ? 0 : (uint16_t)rnd(65536); /* unused, or the MTU */
	if (pct(5))
		w->p.icmp_type = c->family == AF_INET ? 5 : 139; /* quotes, but is no error */
	w->p.has_quote = pct(95);
	w->p.quote.l4_len = pct(95) || (avoid & AVOID_ODD_QUOTE) ? 8 : (uint8_t)(4 * rnd(2)); /* or cut short */
	if (c->family == AF_INET && pct(10))
		w->quote_opts = (uint8_t)(1 + rnd(3));
	memcpy(w->p.quote.src, q.p.src, 16);
	memcpy(w->p.quote.dst, q.p.dst, 16);
	w->p.quote.proto = q.p.proto;
	w->p.quote.sport = q.p.sport;
	w->p.quote.dport = q.p.dport;
	w->p.quote.icmp_type = q.p.icmp_type;
	w->p.quote.echo_id = q.p.echo_id;
	if (pct(8))
		w->p.quote.sport ^= (uint16_t)(1 + rnd(65535)); /* a flow nobody saw */
	if (q.p.proto == icmp_proto(c->family) && pct(10) && !(avoid & AVOID_ODD_QUOTE))
		w->p.quote.icmp_type = c->family == AF_INET ? 13 : 139; /* not an echo, an echo's id */
	w->payload = 0;
}

static void queue_frag(struct gen *g, const struct wire *w)
{
	if (g->n_pend < N_PEND)
		g->pend[g->n_pend++] = *w;
}

static void pop_frag(struct gen *g, struct wire *w)
{
	int i = pct(70) ? 0 : (int)rnd((uint32_t)g->n_pend);

	*w = g->pend[i];
	memmove(&g->pend[i], &g->pend[i + 1], sizeof(g->pend[0]) * (size_t)(g->n_pend - i - 1));
	g->n_pend--;
}

/* A fragmented datagram of a conversation: emits one fragment now (in *w)
 * and queues the others, in one of several orders. */
static void gen_frags(struct gen *g, struct wire *w)
{
	struct conv *c = g->n_conv && pct(70) ? &g->conv[rnd((uint32_t)g->n_conv)] : new_conv(g);
	struct wire base, first, later[4];
	size_t l4h, total, fdata, done;
	int n_later = 0;
	uint32_t id, r = rnd(100);

	conv_wire(c, pct(70), &base);
	if (c->proto == IPPROTO_TCP)
		base.p.tcp_flags = c->step == 0 ? SYN : ACK | PSH;
	base.p.is_frag = true;
	if (c->family == AF_INET6 && pct(15))
		base.ext_after = (uint8_t)(1 + rnd(2));
	id = pct(5) ? g->frag_id : ++g->frag_id;
	base.p.frag_id = c->family == AF_INET ? (id & 0xffff) : id;
	base.pad = 0;
	l4h = l4_hdr_len(&base);
	total = l4h + 8 * (1 + rnd(24)) + rnd(8);
	fdata = ((l4h + 7) / 8 + rnd(4)) * 8;
	if (fdata >= total)
		total = fdata + 1 + rnd(40);
	first = base;
	first.p.frag_off = 0;
	first.p.frag_mf = true;
	first.payload = (uint16_t)(fdata - l4h);
	first.p.frag_len = (uint32_t)fdata;
	for (done = fdata; done < total && n_later < 4;) {
		size_t chunk = (total - done) > 8 && pct(60) && n_later < 3 ?
			       8 * (1 + rnd((uint32_t)((total - done - 1) / 8))) : total - done;
		struct wire *l = &later[n_later++];

		*l = base;
		l->payload = 0;
		l->p.frag_off = (uint16_t)(done / 8);
		l->p.frag_len = (uint32_t)chunk;
		done += chunk;
		l->p.frag_mf = done < total;
	}
	if (r < 45) { /* in order */
		*w = first;
		for (int i = 0; i < n_later; i++)
			queue_frag(g, &later[i]);
	} else if (r < 58) { /* a later one before the first */
		*w = later[0];
		queue_frag(g, &first);
		for (int i = 1; i < n_later; i++)
			queue_frag(g, &later[i]);
	} else if (r < 66) { /* the first never comes */
		*w = later[0];
		for (int i = 1; i < n_later; i++)
			queue_frag(g, &later[i]);
	} else if (r < 74) { /* the first twice */
		*w = first;
		queue_frag(g, &first);
		for (int i = 0; i < n_later; i++)
			queue_frag(g, &later[i]);
	} else if (r < 86) { /* a bad offset */
		struct wire bad = later[0];

		if (c->proto == IPPROTO_TCP && pct(60)) {
			bad.p.frag_off = 1; /* RFC 1858: rewrites the TCP flags */
			bad.p.frag_len = 8 * (1 + rnd(4));
		} else {
			bad.p.frag_off = (uint16_t)(8190 + rnd(2));
			bad.p.frag_len = 65535 - 8u * bad.p.frag_off + rnd(3); /* 65535: fits */
			if (bad.p.frag_len > 200)
				bad.p.frag_len = 8 + rnd(17);
			bad.p.frag_mf = false;
		}
		*w = first;
		queue_frag(g, &bad);
	} else if (r < 93 && c->family == AF_INET6) { /* an atomic fragment */
		*w = first;
		w->p.frag_mf = false;
		w->payload = (uint16_t)(total - l4h);
		w->p.frag_len = (uint32_t)total;
	} else { /* a later fragment of a datagram nobody saw */
		*w = later[0];
		w->p.frag_id ^= 0x5a5a;
	}
}

/* A malformed frame, mostly of endpoint traffic. */
static void gen_malformed(struct gen *g, struct wire *w)
{
	struct conv tmp, *c = &tmp;
	enum rm_defect list[16];
	int n = 0;
	size_t l3;

	fill_conv(g, c); /* not a conversation: one packet */
	conv_wire(c, true, w);
	if (c->proto == IPPROTO_TCP)
		w->p.tcp_flags = pct(70) ? SYN : ACK;
	list[n++] = RM_SHORT_ADDRS;
	list[n++] = RM_VLAN_DEEP;
	list[n++] = RM_NOT_IP;
	if (c->family == AF_INET) {
		list[n++] = RM_IHL_SMALL;
		list[n++] = RM_IHL_BEYOND;
		list[n++] = RM_TOTLEN_SHORT;
		list[n++] = RM_TOTLEN_LONG;
	} else {
		list[n++] = RM_V6_PLEN_ZERO;
		list[n++] = RM_V6_PLEN_LONG;
		list[n++] = RM_V6_EXT_PAST;
		list[n++] = RM_OK; /* too many extension headers */
	}
	if (c->proto == IPPROTO_TCP) {
		list[n++] = RM_TCP_SHORT;
		list[n++] = RM_TCP_DOFF_SMALL;
		list[n++] = RM_TCP_DOFF_BEYOND;
	} else if (c->proto == IPPROTO_UDP) {
		list[n++] = RM_UDP_SHORT;
		list[n++] = RM_UDP_SHORT;
	} else if (c->proto == icmp_proto(c->family)) {
		list[n++] = RM_ICMP_SHORT;
		list[n++] = RM_ICMP_SHORT;
	}
	w->p.defect = list[rnd((uint32_t)n)];
	l3 = 14 + 4u * w->vlans;
	switch (w->p.defect) {
	case RM_SHORT_ADDRS:
		w->bad = (uint16_t)(14 + rnd((uint32_t)(l3 + (c->family == AF_INET ? 20 : 40) - 14)));
		break;
	case RM_VLAN_DEEP:
		w->vlans = (uint8_t)(3 + rnd(2));
		break;
	case RM_IHL_SMALL:
		w->bad = (uint16_t)rnd(5);
		break;
	case RM_IHL_BEYOND:
		w->bad = (uint16_t)(20 + rnd(40));
		break;
	case RM_TOTLEN_SHORT:
		w->bad = (uint16_t)rnd(20u + 4u * w->ip_opts);
		break;
	case RM_TOTLEN_LONG:
	case RM_V6_PLEN_LONG:
		w->bad = (uint16_t)(1 + rnd(200));
		break;
	case RM_V6_EXT_PAST:
		w->v6_ext = (uint8_t)(1 + rnd(3));
		break;
	case RM_OK: /* more than 8 extension headers; sometimes 8 and a Fragment header */
		if (pct(30)) {
			w->v6_ext = 8;
			w->p.is_frag = true;
			w->p.frag_mf = true;
			w->p.frag_id = ++g->frag_id;
			w->p.frag_len = (uint32_t)(l4_hdr_len(w) + w->payload);
		} else {
			w->v6_ext = (uint8_t)(9 + rnd(4));
		}
		break;
	case RM_TCP_SHORT:
		w->l4_keep = (uint16_t)rnd(20);
		break;
	case RM_TCP_DOFF_SMALL:
		w->bad = (uint16_t)rnd(5);
		break;
	case RM_TCP_DOFF_BEYOND:
		w->tcp_opts = 0;
		w->payload = (uint16_t)rnd(20);
		w->bad = (uint16_t)((20 + w->payload) / 4 + 1 + rnd(3));
		if (w->bad > 15)
			w->bad = 15;
		break;
	case RM_UDP_SHORT:
		w->l4_keep = (uint16_t)rnd(8);
		break;
	case RM_ICMP_SHORT:
		w->l4_keep = (uint16_t)rnd(4);
		break;
	default:
		break;
	}
	if (c->family == AF_INET6 && !w->v6_ext && w->l4_keep == 0 &&
	    (w->p.defect == RM_TCP_SHORT || w->p.defect == RM_UDP_SHORT || w->p.defect == RM_ICMP_SHORT))
		w->l4_keep = 1; /* payload length 0 would be another defect */
	/* a first fragment cut short: what becomes of its later fragments? */
	if ((w->p.defect == RM_TCP_SHORT || w->p.defect == RM_UDP_SHORT || w->p.defect == RM_TCP_DOFF_SMALL ||
	     w->p.defect == RM_ICMP_SHORT) && pct(25)) {
		struct wire l;

		w->p.is_frag = true;
		w->p.frag_mf = true;
		w->p.frag_id = ++g->frag_id & (c->family == AF_INET ? 0xffff : 0xffffffff);
		w->p.frag_len = w->l4_keep;
		l = *w;
		l.p.defect = RM_OK;
		l.p.frag_off = 1 + (uint16_t)rnd(3);
		l.p.frag_mf = false;
		l.p.frag_len = 8 + rnd(40);
		queue_frag(g, &l);
	}
}

/* Neighbour discovery, other ICMP types, other hosts, ARP. */
static void gen_misc(struct gen *g, struct wire *w)
{
	uint32_t r = rnd(100);
	const struct g_addr *e = &g->eps[rnd((uint32_t)g->n_eps)];
	uint8_t peer[16];

	if (r < 20) {
		struct conv tmp;

		fill_conv(g, &tmp);
		conv_wire(&tmp, true, w);
		/* make it other hosts' traffic */
		for (int tries = 0; tries < 20 && (is_ep_addr(g, tmp.family, w->p.src) ||
						  is_ep_addr(g, tmp.family, w->p.dst)); tries++) {
			pick_peer(g, tmp.family, w->p.src);
			pick_peer(g, tmp.family, w->p.dst);
		}
		if (tmp.proto == IPPROTO_TCP)
			w->p.tcp_flags = pct(50) ? SYN : ACK;
		return;
	}
	if (r < 32) {
		memset(w, 0, sizeof(*w));
		w->p.defect = RM_NOT_IP;
		return;
	}
	pick_peer(g, e->family, peer);
	wire_base(w, e->family, pct(50) ? peer : e->a, pct(50) ? e->a : peer, icmp_proto(e->family));
	w->p.icmp_code = (uint8_t)(pct(80) ? 0 : rnd(256));
	if (e->family == AF_INET6 && r < 60) {
		static const uint8_t nd[] = { 130, 131, 132, 133, 134, 135, 136, 137, 143 };

		w->p.icmp_type = nd[rnd(sizeof(nd))];
		/* mostly as valid ones are sent, sometimes as no router forwards them */
		w->p.hop_limit = pct(20) ? (uint8_t)rnd(256) :
				 w->p.icmp_type >= 133 && w->p.icmp_type <= 137 ? 255 : 1;
	} else if (e->family == AF_INET) {
		static const uint8_t t[] = { 4, 5, 9, 10, 13, 14, 15, 16, 17, 18, 30, 42, 43 };

		w->p.icmp_type = pct(80) ? t[rnd(sizeof(t))] : (uint8_t)rnd(256);
	} else {
		static const uint8_t t[] = { 100, 101, 127, 138, 139, 140, 141, 142, 144, 148, 151, 200, 255 };

		w->p.icmp_type = pct(80) ? t[rnd(sizeof(t))] : (uint8_t)rnd(256);
	}
	if (is_echo_type(e->family, w->p.icmp_type))
		w->p.echo_id = (uint16_t)rnd(65536);
}

static uint32_t gen_advance(const struct gen *g)
{
	uint32_t r;

	if (pct(91))
		return 0;
	r = rnd(100);
	if (r < 25)
		return 1 + rnd(3000);
	if (r < 65) {
		uint32_t t = g->tmo[rnd((uint32_t)g->n_tmo)] * 1000;

		return t > 3000 ? t - 3000 + rnd(6000) : 1 + rnd(t + 3000);
	}
	if (r < 92)
		return 5000 + rnd(200000);
	return 432000000u + rnd(10000);
}

/* An IPv6 packet with nothing after its header says payload length 0: that
 * is what the frame is. */
static void normalize(struct wire *w)
{
	struct rm_packet *p = &w->p;
	bool later = p->is_frag && p->frag_off > 0;

	p->n_ext = p->family == AF_INET6 ?
		   (uint8_t)(w->v6_ext + (p->is_frag ? 1 : 0) + (later ? 0 : w->ext_after)) : 0;
	if (p->defect == RM_OK && p->family == AF_INET6 && !p->n_ext &&
	    l4_hdr_len(w) + w->payload == 0)
		p->defect = RM_V6_PLEN_ZERO;
}

/* One event; may_swap: a policy change is allowed. */
static void gen_event(struct gen *g, struct event *ev, bool may_swap)
{
	uint32_t r = rnd(100);
	struct wire *w = &ev->w;

	memset(ev, 0, sizeof(*ev));
	ev->kind = EV_PKT;
	ev->advance_ms = gen_advance(g);
	if (g->n_pend && r < 20) {
		pop_frag(g, w);
	} else if (g->n_conv && r < 48) {
		conv_next(&g->conv[rnd((uint32_t)g->n_conv)], w);
	} else if (r < 66) {
		struct conv *c = new_conv(g);

		conv_wire(c, true, w);
		if (c->proto == IPPROTO_TCP)
			w->p.tcp_flags = tcp_first_flags(c);
	} else if (g->n_conv && r < 73) {
		gen_icmp_error(g, w);
	} else if (r < 80) {
		gen_frags(g, w);
	} else if (r < 86) {
		gen_malformed(g, w);
	} else if (r < 91) {
		gen_misc(g, w);
	} else if (g->n_conv && r < 95) {
		struct conv *c = &g->conv[rnd((uint32_t)g->n_conv)];

		conv_wire(c, pct(50), w);
		if (c->proto == IPPROTO_TCP)
			w->p.tcp_flags = (uint8_t)rnd(256);
	} else if (may_swap && r < 96 && pct(15)) {
		ev->kind = EV_SWAP;
	} else {
		struct conv *c = new_conv(g);

		conv_wire(c, true, w);
		if (c->proto == IPPROTO_TCP)
			w->p.tcp_flags = tcp_first_flags(c);
	}
	if (ev->kind == EV_PKT)
		normalize(w);
}

/* ---- the datapath ------------------------------------------------------------------------- */

static struct epgate_bpf *skel;
static struct epg_maps maps;
static int n_cpus;

/* The instance in use (see load_instance). */
struct instance {
	struct epgate_bpf *skel;
	struct epg_maps maps;
	uint32_t ct_max, frag_max;
};

static struct instance insts[3];
static int cur_inst;

static void use_instance(int i)
{
	cur_inst = i;
	skel = insts[i].skel;
	maps = insts[i].maps;
}

struct slot {
	uint32_t slot;
	char id[EPG_ID_LEN];
	uint64_t last[EPG_DIR_MAX][EPG_REASON_SLOTS];
};

static struct slot slots[EPG_MAX_ENDPOINTS > 64 ? 64 : EPG_MAX_ENDPOINTS];
static int n_slots;
static uint64_t last_pt;

struct answer {
	bool accept;
	int dir; /* -1: pass-through */
	char reason[64];
	char ep[EPG_ID_LEN];
};

static void percpu_sum(int fd, uint32_t key, void *out, size_t size)
{
	static uint8_t *buf;
	static size_t buf_size;
	size_t stride = (size + 7) & ~(size_t)7;
	uint64_t *acc = out;

	if (buf_size < stride * (size_t)n_cpus) {
		free(buf);
		buf_size = stride * (size_t)n_cpus;
		buf = malloc(buf_size);
		if (!buf)
			abort();
	}
	memset(out, 0, size);
	if (bpf_map_lookup_elem(fd, &key, buf))
		return;
	for (int c = 0; c < n_cpus; c++)
		for (size_t i = 0; i < size / 8; i++)
			acc[i] += ((uint64_t *)(buf + (size_t)c * stride))[i];
}

static uint64_t passthrough_count(void)
{
	struct epg_counter c;

	percpu_sum(maps.global, EPG_G_PASSTHROUGH, &c, sizeof(c));
	return c.packets;
}

static void read_slot(struct slot *s, uint64_t out[EPG_DIR_MAX][EPG_REASON_SLOTS])
{
	struct epg_ep_counters c;

	percpu_sum(maps.ep_stats, s->slot, &c, sizeof(c));
	for (int d = 0; d < EPG_DIR_MAX; d++)
		for (int r = 0; r < EPG_REASON_SLOTS; r++)
			out[d][r] = c.c[d][r].packets;
}

/* The endpoints' counter slots after an apply, and where their counters are. */
static int refresh_slots(void)
{
	struct epg_snapshot names = { 0 };
	struct epg_error err = { "" };
	int rc = epg_snapshot_read(&maps, &names, &err);

	if (rc) {
		fprintf(stderr, "snapshot: %s\n", err.msg);
		return rc;
	}
	n_slots = 0;
	for (size_t i = 0; i < names.n_eps && n_slots < (int)(sizeof(slots) / sizeof(slots[0])); i++) {
		struct slot *s = &slots[n_slots++];

		s->slot = names.eps[i].slot;
		snprintf(s->id, sizeof(s->id), "%s", names.eps[i].info.endpoint_id);
		read_slot(s, s->last);
	}
	epg_snapshot_free(&names);
	last_pt = passthrough_count();
	return 0;
}

static int bpf_judge(const struct frame *f, struct answer *a)
{
	LIBBPF_OPTS(bpf_test_run_opts, topts, .data_in = f->b, .data_size_in = (uint32_t)f->len,
		    .repeat = 1);
	uint64_t moved = 0, pt, now[EPG_DIR_MAX][EPG_REASON_SLOTS];
	int rc, mdir = -1, mreason = -1, mslot = -1;

	memset(a, 0, sizeof(*a));
	rc = bpf_prog_test_run_opts(bpf_program__fd(skel->progs.epg_xdp), &topts);
	if (rc)
		return rc;
	for (int i = 0; i < n_slots; i++) {
		read_slot(&slots[i], now);
		for (int d = 0; d < EPG_DIR_MAX; d++)
			for (int r = 0; r < EPG_REASON_SLOTS; r++)
				if (now[d][r] != slots[i].last[d][r]) {
					moved += now[d][r] - slots[i].last[d][r];
					mdir = d, mreason = r, mslot = i;
					slots[i].last[d][r] = now[d][r];
				}
	}
	pt = passthrough_count();
	a->accept = topts.retval == XDP_PASS;
	if (topts.retval != XDP_PASS && topts.retval != XDP_DROP)
		snprintf(a->reason, sizeof(a->reason), "xdp-return-%u", topts.retval);
	else if (moved == 1 && pt == last_pt) {
		a->dir = mdir;
		snprintf(a->reason, sizeof(a->reason), "%s", epg_reason_label((uint32_t)mreason));
		snprintf(a->ep, sizeof(a->ep), "%s", slots[mslot].id);
	} else if (moved == 0 && pt == last_pt + 1) {
		a->dir = -1;
		snprintf(a->reason, sizeof(a->reason), "%s", RM_PASSTHROUGH);
	} else {
		snprintf(a->reason, sizeof(a->reason), "counters: %" PRIu64 " endpoint, %" PRIu64 " pass-through",
			 moved, pt - last_pt);
	}
	last_pt = pt;
	return 0;
}

/* ---- the two clocks ------------------------------------------------------------------------ */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t r_prev; /* the datapath's clock at the last sync */

#define DUMP_MAX 65536
static uint8_t dump_keys[DUMP_MAX * 64], dump_vals[DUMP_MAX * 80];

/* Every stamp: stamps since the last sync count as taken then (the model's
 * clock did not move meanwhile), then all move adv_ns into the past. */
static int shift_map(int fd, size_t ksz, size_t vsz, const size_t *offs, int n_offs, uint64_t r_now,
		     uint64_t adv_ns)
{
	uint32_t count, tok = 0, n = 0;
	void *in = NULL;
	int rc;

	for (;;) {
		count = DUMP_MAX - n;
		rc = bpf_map_lookup_batch(fd, in, &tok, dump_keys + n * ksz, dump_vals + n * vsz, &count, NULL);
		n += count;
		if (rc) {
			if (errno == ENOENT)
				break;
			return -errno;
		}
		in = &tok;
		if (n >= DUMP_MAX)
			return -E2BIG;
	}
	for (uint32_t i = 0; i < n; i++)
		for (int k = 0; k < n_offs; k++) {
			uint64_t ts, *at = (uint64_t *)(dump_vals + i * vsz + offs[k]);

			memcpy(&ts, at, 8);
			if ((int64_t)(ts - r_prev) > 0)
				ts = r_prev;
			if (ts + (r_now - r_prev) < adv_ns)
				return -ERANGE; /* below zero: the run outgrew the uptime */
			ts = ts + (r_now - r_prev) - adv_ns;
			memcpy(at, &ts, 8);
		}
	if (!n)
		return 0;
	count = n;
	rc = bpf_map_update_batch(fd, dump_keys, dump_vals, &count, NULL);
	return rc ? -errno : 0;
}

static int clock_sync(uint64_t adv_ms)
{
	static const size_t ct_offs[] = { offsetof(struct epg_ct_val, created_ns),
					  offsetof(struct epg_ct_val, last_seen_ns) };
	static const size_t frag_offs[] = { offsetof(struct epg_frag_val, created_ns) };
	uint64_t r_now = mono_ns(), adv = adv_ms * 1000000ull;
	int rc;

	rc = shift_map(maps.ct, sizeof(struct epg_ct_key), sizeof(struct epg_ct_val), ct_offs, 2, r_now, adv);
	if (!rc)
		rc = shift_map(maps.frag, sizeof(struct epg_frag_key), sizeof(struct epg_frag_val), frag_offs, 1,
			       r_now, adv);
	r_prev = r_now;
	return rc;
}

/* ---- one policy's run -------------------------------------------------------------------------- */

#define GUARD_MS 250        /* no entry expires this close to a jump's end */
#define RESYNC_NS 40000000u /* real time before the clocks are re-aligned */

struct version {
	struct g_policy P;
	char *json;
	struct epg_config cfg;
	bool loaded;
};

struct run {
	int policy_no;
	struct version ver[G_VERSIONS];
	int n_ver;
	int applied;     /* version in the maps, -1: none or stale */
	struct refmodel *m;
	uint64_t T;      /* the model's clock, ms */
	bool guard_broken;
	struct event *ev;
	size_t n_ev, cap;
};

static int load_version(struct version *v)
{
	const char *nm[] = { "policy.json" };
	const char *bufs[1];
	size_t lens[1];
	struct epg_error err = { "" };
	int rc;

	if (v->loaded) {
		epg_config_free(&v->cfg);
		v->loaded = false;
	}
	free(v->json);
	v->json = render(&v->P);
	bufs[0] = v->json;
	lens[0] = strlen(v->json);
	memset(&v->cfg, 0, sizeof(v->cfg));
	rc = epg_config_load_buffers(&v->cfg, nm, bufs, lens, 1, &err);
	if (rc) {
		fprintf(stderr, "the generated policy does not load: %s\n%s", err.msg, v->json);
		return rc;
	}
	v->loaded = true;
	return 0;
}

static int apply_version(struct run *R, int i)
{
	struct epg_error err = { "" };
	struct epg_plan plan;
	int rc;

	rc = epg_compile(&R->ver[i].cfg, &plan, &err);
	if (!rc) {
		rc = epg_policy_apply(&maps, &plan, &err);
		epg_plan_free(&plan);
	}
	if (rc) {
		fprintf(stderr, "compile/apply: %s\n%s", err.msg, R->ver[i].json);
		return rc;
	}
	R->applied = i;
	return refresh_slots();
}

/* A clean start: empty tables on both sides, version 0, clock at 0. */
static int run_reset(struct run *R)
{
	int rc;

	epg_ct_expire(&maps, 0, true, NULL);
	epg_frag_expire(&maps, 0, true);
	if (R->applied != 0) {
		rc = apply_version(R, 0);
		if (rc)
			return rc;
	}
	refmodel_free(R->m);
	R->m = refmodel_new(&R->ver[0].cfg);
	if (!R->m)
		return -ENOMEM;
	refmodel_set_limits(R->m, insts[cur_inst].ct_max, insts[cur_inst].frag_max);
	R->T = 0;
	R->guard_broken = false;
	r_prev = mono_ns();
	return 0;
}

static void model_answer(const struct rm_verdict *v, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	a->accept = v->accept;
	a->dir = v->dir;
	snprintf(a->reason, sizeof(a->reason), "%s", v->reason);
	if (v->endpoint)
		snprintf(a->ep, sizeof(a->ep), "%s", v->endpoint);
}

static bool same(const struct answer *x, const struct answer *y)
{
	return x->accept == y->accept && x->dir == y->dir && !strcmp(x->reason, y->reason) &&
	       !strcmp(x->ep, y->ep);
}

static void answer_str(const struct answer *a, char *buf, size_t len)
{
	if (a->dir < 0)
		snprintf(buf, len, "%s %s", a->accept ? "accept" : "drop", a->reason);
	else
		snprintf(buf, len, "%s %s, %s, %s", a->accept ? "accept" : "drop", a->reason,
			 a->dir == EPG_DIR_INGRESS ? "ingress" : "egress", a->ep);
}

static int trace;

/* Run one event on both sides. 1: they disagree (answers in ma, ba). */
static int run_event(struct run *R, const struct event *e, struct answer *ma, struct answer *ba)
{
	struct rm_verdict v;
	struct frame f;
	int rc;

	if (e->advance_ms) {
		R->T += e->advance_ms;
		if (refmodel_deadline_within(R->m, R->T - GUARD_MS, R->T + GUARD_MS))
			R->guard_broken = true;
		rc = clock_sync(e->advance_ms);
	} else if (mono_ns() - r_prev > RESYNC_NS) {
		rc = clock_sync(0);
	} else {
		rc = 0;
	}
	if (rc) {
		fprintf(stderr, "clock sync: %s\n", strerror(-rc));
		return -1;
	}
	if (e->kind == EV_SWAP) {
		rc = apply_version(R, e->version);
		if (!rc)
			rc = refmodel_set_config(R->m, &R->ver[e->version].cfg);
		if (!rc)
			rc = clock_sync(0);
		return rc ? -1 : 0;
	}
	build_frame(&e->w, &f);
	if (bpf_judge(&f, ba)) {
		fprintf(stderr, "BPF_PROG_TEST_RUN: %s\n", strerror(errno));
		return -1;
	}
	v = refmodel_packet(R->m, &e->w.p, R->T);
	model_answer(&v, ma);
	if (trace) {
		char d[512], s1[128], s2[128];

		describe(&e->w, d, sizeof(d));
		answer_str(ma, s1, sizeof(s1));
		answer_str(ba, s2, sizeof(s2));
		printf("  t=%" PRIu64 " %s -> model: %s / datapath: %s", R->T, d, s1, s2);
		if (trace > 1) /* table sizes: idle entries not yet met count */
			printf(" [flows %zu/%d, fragments %zu]", refmodel_flow_count(R->m), epg_ct_count(&maps),
			       refmodel_frag_count(R->m));
		printf("\n");
	}
	return same(ma, ba) ? 0 : 1;
}

/* Replays evs[0..n) from a clean start: does the last one, and only it,
 * disagree as sig says? */
static bool still_fails(struct run *R, const struct event *evs, size_t n, const char *sig)
{
	struct answer ma, ba;
	char s1[128], s2[128], now[300];

	if (run_reset(R))
		return false;
	for (size_t i = 0; i < n; i++) {
		int rc = run_event(R, &evs[i], &ma, &ba);

		if (rc < 0 || R->guard_broken)
			return false;
		if (rc == 1) {
			if (i + 1 != n)
				return false;
			answer_str(&ma, s1, sizeof(s1));
			answer_str(&ba, s2, sizeof(s2));
			snprintf(now, sizeof(now), "%s | %s", s1, s2);
			return !strcmp(now, sig);
		}
	}
	return false;
}

/* evs without [from, to): the clock jumps of what is removed go to the next one. */
static size_t cut(const struct event *evs, size_t n, size_t from, size_t to, struct event *out)
{
	size_t k = 0;
	uint32_t carry = 0;

	for (size_t i = 0; i < n; i++) {
		if (i >= from && i < to) {
			carry += evs[i].advance_ms;
			continue;
		}
		out[k] = evs[i];
		out[k].advance_ms += carry;
		carry = 0;
		k++;
	}
	return k;
}

static int shrink_budget;      /* replays left for this reproducer */
static uint64_t shrink_deadline; /* and the time they may take (CLOCK_MONOTONIC ns) */

static bool shrink_left(void)
{
	return shrink_budget > 0 && mono_ns() < shrink_deadline;
}

/* Without policy changes: the run starts with the version in force at its
 * last packet, if that is enough for the disagreement. */
static size_t shrink_swaps(struct run *R, struct event *evs, size_t n, const char *sig,
			   struct event *tmp)
{
	int last = 0;
	size_t k = 0;
	uint32_t carry = 0;
	struct version v;

	for (size_t i = 0; i < n; i++) {
		if (evs[i].kind == EV_SWAP) {
			last = evs[i].version;
			carry += evs[i].advance_ms;
			continue;
		}
		tmp[k] = evs[i];
		tmp[k].advance_ms += carry;
		carry = 0;
		k++;
	}
	if (k == n)
		return n;
	v = R->ver[0], R->ver[0] = R->ver[last], R->ver[last] = v;
	R->applied = -1;
	shrink_budget--;
	if (still_fails(R, tmp, k, sig)) {
		memcpy(evs, tmp, sizeof(*tmp) * k);
		return k;
	}
	v = R->ver[0], R->ver[0] = R->ver[last], R->ver[last] = v;
	R->applied = -1;
	return n;
}

static size_t shrink_events(struct run *R, struct event *evs, size_t n, const char *sig)
{
	struct event *tmp = malloc(sizeof(*tmp) * n);
	size_t chunk;

	if (!tmp)
		return n;
	n = shrink_swaps(R, evs, n, sig, tmp);
	/* first a guess: only what shares the failing packet's addresses */
	{
		const struct rm_packet *last = &evs[n - 1].w.p;
		size_t k = 0;
		uint32_t carry = 0;

		for (size_t i = 0; i < n; i++) {
			const struct rm_packet *p = &evs[i].w.p;
			bool keep = i + 1 == n || evs[i].kind == EV_SWAP ||
				    (p->family == last->family &&
				     ((!memcmp(p->src, last->src, 16) && !memcmp(p->dst, last->dst, 16)) ||
				      (!memcmp(p->src, last->dst, 16) && !memcmp(p->dst, last->src, 16)) ||
				      (last->has_quote && (!memcmp(p->src, last->quote.src, 16) ||
							   !memcmp(p->dst, last->quote.src, 16)))));

			if (!keep) {
				carry += evs[i].advance_ms;
				continue;
			}
			tmp[k] = evs[i];
			tmp[k].advance_ms += carry;
			carry = 0;
			k++;
		}
		shrink_budget--;
		if (k < n && still_fails(R, tmp, k, sig)) {
			memcpy(evs, tmp, sizeof(*tmp) * k);
			n = k;
		}
	}
	for (chunk = (n - 1) / 2; chunk >= 1 && shrink_left(); chunk /= 2) {
		for (size_t from = 0; from + 1 < n && shrink_left();) {
			size_t to = from + chunk < n - 1 ? from + chunk : n - 1, k;

			if (to <= from)
				break;
			k = cut(evs, n, from, to, tmp);
			shrink_budget--;
			if (still_fails(R, tmp, k, sig)) {
				memcpy(evs, tmp, sizeof(*tmp) * k);
				n = k;
			} else {
				from = to;
			}
		}
		if (chunk == 1)
			break;
	}
	/* clock jumps to zero where they do not matter */
	for (size_t i = 0; i < n && shrink_left(); i++) {
		uint32_t adv = evs[i].advance_ms;

		if (!adv)
			continue;
		evs[i].advance_ms = 0;
		shrink_budget--;
		if (!still_fails(R, evs, n, sig))
			evs[i].advance_ms = adv;
	}
	free(tmp);
	return n;
}

/* Removes rules and ACL entries the disagreement does not need. */
static void shrink_rules(struct run *R, const struct event *evs, size_t n, const char *sig)
{
	struct g_policy *P = &R->ver[0].P;

	for (int g = 0; g < P->n_groups; g++)
		for (int d = 0; d < 2; d++)
			for (int i = 0; i < P->groups[g].n[d] && shrink_left(); i++) {
				struct g_perm *pm = &P->groups[g].perm[d][i];

				if (pm->dead)
					continue;
				pm->dead = true;
				shrink_budget--;
				R->applied = -1;
				if (load_version(&R->ver[0]) || !still_fails(R, evs, n, sig))
					pm->dead = false;
			}
	for (int a = 0; a < P->n_acls; a++)
		for (int i = 0; i < P->acls[a].n && shrink_left(); i++) {
			struct g_entry *e = &P->acls[a].e[i];

			if (e->dead)
				continue;
			e->dead = true;
			shrink_budget--;
			R->applied = -1;
			if (load_version(&R->ver[0]) || !still_fails(R, evs, n, sig))
				e->dead = false;
		}
	R->applied = -1;
	load_version(&R->ver[0]);
}

/* ---- reporting ---------------------------------------------------------------------------------- */

struct sig_count {
	char sig[400];
	int n;
	uint64_t seed;
	int policy;
};

static struct sig_count sigs[256];
static int n_sigs;
static int reports_left = 5;
static bool no_shrink;
static uint64_t run_seed;

/* A short name for the disagreement, to count alike ones together. */
static void signature(const struct event *e, const struct answer *ma, const struct answer *ba, char *buf,
		      size_t len)
{
	const struct rm_packet *p = &e->w.p;
	const char *kind = p->defect ? defect_name(p->defect) :
			   p->is_frag ? (p->frag_off ? "later-fragment" : "first-fragment") :
			   p->proto == IPPROTO_TCP ? "tcp" : p->proto == IPPROTO_UDP ? "udp" :
			   p->proto == icmp_proto(p->family) ? "icmp" : "other-proto";

	snprintf(buf, len, "%s: model %s %s%s / datapath %s %s%s", kind, ma->accept ? "accept" : "drop",
		 ma->reason, ma->dir < 0 ? "" : ma->dir ? " egress" : " ingress", ba->accept ? "accept" : "drop",
		 ba->reason, ba->dir < 0 ? "" : ba->dir ? " egress" : " ingress");
}

static bool count_sig(const char *s, int policy)
{
	for (int i = 0; i < n_sigs; i++)
		if (!strcmp(sigs[i].sig, s)) {
			sigs[i].n++;
			return false;
		}
	if (n_sigs < (int)(sizeof(sigs) / sizeof(sigs[0]))) {
		snprintf(sigs[n_sigs].sig, sizeof(sigs[0].sig), "%s", s);
		sigs[n_sigs].n = 1;
		sigs[n_sigs].seed = run_seed;
		sigs[n_sigs].policy = policy;
		n_sigs++;
	}
	return true;
}

static void print_reproducer(struct run *R, struct event *evs, size_t n, size_t orig_n)
{
	struct answer ma, ba;
	char d[600], s1[128], s2[128], fl[200];
	uint64_t t = 0;
	struct frame f;
	bool swapped = false;

	for (size_t i = 0; i < n; i++)
		swapped |= evs[i].kind == EV_SWAP;
	/* replay once more, for the flow the model had before the last packet */
	run_reset(R);
	for (size_t i = 0; i + 1 < n; i++)
		run_event(R, &evs[i], &ma, &ba);
	R->T += evs[n - 1].advance_ms;
	refmodel_describe_flow(R->m, &evs[n - 1].w.p, R->T, fl, sizeof(fl));
	R->T -= evs[n - 1].advance_ms;
	run_event(R, &evs[n - 1], &ma, &ba);

	printf("\n=== DISAGREEMENT (EPG_DIFF_SEED=%" PRIu64 " EPG_DIFF_POLICY=%d): %zu packets%s\n", run_seed,
	       R->policy_no, n, n < orig_n ? " after shrinking" : "");
	for (int v = 0; v < R->n_ver; v++) {
		bool used = v == 0;

		for (size_t i = 0; i < n; i++)
			used |= evs[i].kind == EV_SWAP && evs[i].version == v;
		if (used)
			printf("--- policy%s %d:\n%s", swapped ? " version" : "", v, R->ver[v].json);
	}
	printf("--- packets (t: the model's clock in ms; the datapath's moves with it):\n");
	for (size_t i = 0; i < n; i++) {
		t += evs[i].advance_ms;
		if (evs[i].kind == EV_SWAP) {
			printf("  %3zu t=%-10" PRIu64 " apply policy version %d\n", i + 1, t, evs[i].version);
			continue;
		}
		describe(&evs[i].w, d, sizeof(d));
		printf("  %3zu t=%-10" PRIu64 " %s%s\n", i + 1, t, d, i + 1 == n ? "   <== here" : "");
	}
	answer_str(&ma, s1, sizeof(s1));
	answer_str(&ba, s2, sizeof(s2));
	printf("--- model:    %s (its flow before the packet: %s)\n", s1, fl);
	printf("--- datapath: %s\n", s2);
	build_frame(&evs[n - 1].w, &f);
	printf("--- the last frame (%zu bytes):", f.len);
	for (size_t i = 0; i < f.len; i++)
		printf("%s%02x", i % 32 ? "" : "\n    ", f.b[i]);
	printf("\n===\n");
}

static void disagreement(struct run *R, const struct answer *ma, const struct answer *ba)
{
	char sig[400], s1[128], s2[128], full[300];
	struct event *evs;
	size_t n = R->n_ev, orig = R->n_ev;

	signature(&R->ev[n - 1], ma, ba, sig, sizeof(sig));
	CHECK(false, "model and datapath disagree on packet %zu of policy %d: %s", n, R->policy_no, sig);
	if (!count_sig(sig, R->policy_no) || reports_left <= 0)
		return;
	reports_left--;
	evs = malloc(sizeof(*evs) * n);
	if (!evs)
		return;
	memcpy(evs, R->ev, sizeof(*evs) * n);
	answer_str(ma, s1, sizeof(s1));
	answer_str(ba, s2, sizeof(s2));
	snprintf(full, sizeof(full), "%s | %s", s1, s2);
	if (!no_shrink) {
		bool swapped = false;

		shrink_budget = 600;
		shrink_deadline = mono_ns() + 3000000000ull;
		n = shrink_events(R, evs, n, full);
		for (size_t i = 0; i < n; i++)
			swapped |= evs[i].kind == EV_SWAP;
		if (!swapped)
			shrink_rules(R, evs, n, full);
	}
	print_reproducer(R, evs, n, orig);
	free(evs);
}

static void run_free(struct run *R)
{
	for (int i = 0; i < R->n_ver; i++) {
		if (R->ver[i].loaded)
			epg_config_free(&R->ver[i].cfg);
		free(R->ver[i].json);
	}
	refmodel_free(R->m);
	free(R->ev);
}

static uint64_t packets_done, policies_done, swaps_done;

/* How often each answer came up where both sides agreed: what the run covered. */
struct seen {
	char reason[64];
	uint64_t n;
};
static struct seen seen[32];
static int n_seen;

static void count_seen(const char *reason)
{
	int i;

	for (i = 0; i < n_seen && strcmp(seen[i].reason, reason); i++)
		;
	if (i == n_seen) {
		if (n_seen == (int)(sizeof(seen) / sizeof(seen[0])))
			return;
		snprintf(seen[n_seen++].reason, sizeof(seen[0].reason), "%s", reason);
	}
	seen[i].n++;
}

/* One policy, n events. Returns packets run. */
static void run_policy(uint64_t seed, int policy_no, size_t n)
{
	struct run *R = calloc(1, sizeof(*R));
	struct gen *g = calloc(1, sizeof(*g));
	struct answer ma, ba;
	/* how far the model's clock may run: stamps stay above zero */
	uint64_t up_ms = mono_ns() / 1000000, room_ms = up_ms > 120000 ? up_ms - 60000 : up_ms / 2;

	if (!R || !g)
		abort();
	R->policy_no = policy_no;
	R->applied = -1;
	rng = seed;
	use_instance(pct(76) ? 0 : pct(50) ? 1 : (avoid & AVOID_FRAG_FULL) ? 0 : 2);
	gen_policy(&R->ver[0].P);
	R->n_ver = 1;
	CHECK_EQ(load_version(&R->ver[0]), 0, "policy %d loads", policy_no);
	if (!R->ver[0].loaded || run_reset(R)) {
		CHECK(false, "policy %d applies", policy_no);
		goto out;
	}
	gen_init(g, &R->ver[0].P);
	R->cap = n;
	R->ev = calloc(n, sizeof(*R->ev));
	if (!R->ev)
		abort();
	for (size_t i = 0; i < n; i++) {
		struct event *e = &R->ev[R->n_ev];
		int rc;

		gen_event(g, e, R->n_ver < G_VERSIONS);
		/* within the uptime, and the end of a clock jump away from expiry instants */
		if (R->T + e->advance_ms > room_ms)
			e->advance_ms = (uint32_t)(room_ms - R->T) / 2;
		while (e->advance_ms &&
		       refmodel_deadline_within(R->m, R->T + e->advance_ms - GUARD_MS, R->T + e->advance_ms + GUARD_MS))
			e->advance_ms += 2 * GUARD_MS + 1 + rnd(1000);
		if (R->T + e->advance_ms > room_ms)
			e->advance_ms = 0;
		if (e->kind == EV_SWAP) {
			struct version *v = &R->ver[R->n_ver];

			v->P = R->ver[R->n_ver - 1].P;
			gen_change(&v->P); /* same endpoints and addresses, new rules */
			if (load_version(v)) {
				CHECK(false, "policy %d version %d loads", policy_no, R->n_ver);
				break;
			}
			e->version = (uint8_t)R->n_ver++;
			g->P = &v->P; /* new conversations aim at the new rules */
			swaps_done++;
		}
		R->n_ev++;
		rc = run_event(R, e, &ma, &ba);
		if (rc < 0) {
			CHECK(false, "policy %d: event %zu ran", policy_no, i);
			break;
		}
		if (e->kind == EV_SWAP)
			continue;
		packets_done++;
		if (R->guard_broken) {
			CHECK(false, "policy %d: clock guard broken at event %zu (a test bug)", policy_no, i);
			break;
		}
		if (rc == 1) {
			disagreement(R, &ma, &ba);
			break; /* the two sides' states differ from here on */
		}
		check_passed++;
		count_seen(ma.reason);
	}
out:
	policies_done++;
	run_free(R);
	free(R);
	free(g);
}

/* ---- setup ------------------------------------------------------------------------------------------ */

static int quiet_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG || level == LIBBPF_INFO || strstr(fmt, "skipping unrecognized"))
		return 0;
	return vfprintf(stderr, fmt, ap);
}

/* Three private instances of the datapath: one with roomy tables, two with
 * a tiny flow or fragment table so that full tables
 * (conntrack_allowance_exceeded, fragment_table_full) happen. Smaller tables than the ABI's also keep the
 * clock syncs cheap: a batch lookup walks every bucket. */
static int load_instance(struct instance *in, uint32_t ct_max, uint32_t frag_max)
{
	struct epgate_bpf *s;
	struct epg_maps *m = &in->maps;
	struct bpf_map *map;
	int rc;

	s = epgate_bpf__open();
	if (!s)
		return -errno;
	bpf_object__for_each_map(map, s->obj)
		bpf_map__set_pin_path(map, NULL); /* private maps: never pin from a unit test */
	bpf_map__set_max_entries(s->maps.epg_ct, ct_max);
	bpf_map__set_max_entries(s->maps.epg_frag, frag_max);
	rc = epgate_bpf__load(s);
	if (rc) {
		epgate_bpf__destroy(s);
		return rc;
	}
	rc = epg_maps_from_object(m, s->obj);
	if (rc) {
		epgate_bpf__destroy(s);
		return rc;
	}
	in->skel = s;
	in->ct_max = ct_max;
	in->frag_max = frag_max;
	return 0;
}


static int setup(void)
{
	int rc;

	libbpf_set_print(quiet_libbpf);
	n_cpus = libbpf_num_possible_cpus();
	rc = load_instance(&insts[0], 8192, 2048);
	if (!rc)
		rc = load_instance(&insts[1], 40, 2048);
	if (!rc)
		rc = load_instance(&insts[2], 8192, 12);
	if (!rc)
		use_instance(0);
	return rc;
}

static uint64_t policy_seed(uint64_t i)
{
	return run_seed ^ (0x9e3779b97f4a7c15ull * (i + 1));
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *s = getenv(name);

	return s && *s ? strtoull(s, NULL, 0) : def;
}

int main(void)
{
#if defined(__SANITIZE_ADDRESS__)
	const uint64_t def_packets = 30000; /* the same test, slower under ASan */
#else
	const uint64_t def_packets = 120000;
#endif
	uint64_t total, per_policy, only;
	struct timespec t0, t1;
	double secs;
	int rc;

	if (geteuid() != 0) {
		SKIP("test_differential needs root for BPF_PROG_TEST_RUN");
		check_failed++; /* not a pass: the suite must not look green without running */
		return check_summary();
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	total = env_u64("EPG_DIFF_PACKETS", def_packets);
	per_policy = env_u64("EPG_DIFF_PER_POLICY", 2000);
	run_seed = env_u64("EPG_DIFF_SEED", 0);
	if (!run_seed) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		run_seed = ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
	}
	only = env_u64("EPG_DIFF_POLICY", UINT64_MAX);
	reports_left = (int)env_u64("EPG_DIFF_REPORTS", 5);
	no_shrink = env_u64("EPG_DIFF_NO_SHRINK", 0) != 0;
	trace = (int)env_u64("EPG_DIFF_TRACE", 0);
	if (getenv("EPG_DIFF_AVOID")) {
		const char *a = getenv("EPG_DIFF_AVOID");

		avoid |= strstr(a, "ep2ep") ? AVOID_EP2EP : 0;
		avoid |= strstr(a, "echo-flip") ? AVOID_ECHO_FLIP : 0;
		avoid |= strstr(a, "frag-full") ? AVOID_FRAG_FULL : 0;
		avoid |= strstr(a, "odd-quote") ? AVOID_ODD_QUOTE : 0;
		printf("differential: not generating %s\n", a);
	}
	if (!per_policy)
		per_policy = 1;
	printf("differential: seed %" PRIu64 " (EPG_DIFF_SEED=%" PRIu64 " to run it again), %" PRIu64
	       " packets, %" PRIu64 " per policy\n", run_seed, run_seed, total, per_policy);

	rc = setup();
	CHECK_EQ(rc, 0, "load the datapath");
	if (rc)
		return check_summary();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (only != UINT64_MAX)
		run_policy(policy_seed(only), (int)only, total < per_policy ? total : per_policy);
	for (uint64_t i = 0, idle = 0; only == UINT64_MAX && packets_done < total && idle < 20; i++) {
		uint64_t before = packets_done;

		run_policy(policy_seed(i), (int)i, total - packets_done < per_policy ? total - packets_done : per_policy);
		idle = packets_done == before ? idle + 1 : 0; /* nothing runs: do not loop forever */
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("differential: %" PRIu64 " packets over %" PRIu64 " policies (%" PRIu64
	       " policy changes under live flows) in %.1f s\n", packets_done, policies_done, swaps_done, secs);
	printf("differential: answers both sides gave:");
	for (int i = 0; i < n_seen; i++)
		printf(" %s %" PRIu64 "%s", seen[i].reason, seen[i].n, i + 1 < n_seen ? "," : "\n");
	if (n_sigs) {
		printf("differential: %d kind(s) of disagreement:\n", n_sigs);
		for (int i = 0; i < n_sigs; i++)
			printf("  %5d x %s   (EPG_DIFF_SEED=%" PRIu64 " EPG_DIFF_POLICY=%d)\n", sigs[i].n, sigs[i].sig,
			       sigs[i].seed, sigs[i].policy);
	}
	for (int i = 0; i < 3; i++)
		epgate_bpf__destroy(insts[i].skel);
	return check_summary();
}
