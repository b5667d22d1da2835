// SPDX-License-Identifier: MIT
/*
 * `epgate explain`: why a packet would be accepted or dropped, computed by
 * the datapath itself. A private copy of the program is loaded against the
 * pinned policy maps (generation, endpoints, rules, ACLs) with private
 * counters, flow table and rejected-flow table; the real tracked flow, if
 * any, is copied in; one crafted frame runs through BPF_PROG_TEST_RUN, and
 * the private counters that moved say which reason, ACL entry and rule
 * decided. Nothing the running datapath uses is changed.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include "explain.h"
#include "epgate.skel.h"

#define set_err epg_set_err

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Ethernet + IPv4/IPv6 + L4, enough for the parser. */
static size_t build_frame(const struct epg_explain_query *q, uint8_t *f)
{
	size_t l3 = 14, l4, l4len;

	memset(f, 0, 128);
	put16(f + 12, q->family == AF_INET ? 0x0800 : 0x86dd);
	if (q->family == AF_INET) {
		f[l3] = 0x45;
		f[l3 + 8] = 64;
		f[l3 + 9] = (uint8_t)q->proto;
		memcpy(f + l3 + 12, q->src, 4);
		memcpy(f + l3 + 16, q->dst, 4);
		l4 = l3 + 20;
	} else {
		f[l3] = 0x60;
		f[l3 + 6] = (uint8_t)q->proto;
		/* neighbour discovery and multicast listener messages as the
		 * link carries them: passed as plumbing */
		f[l3 + 7] = q->proto == IPPROTO_ICMPV6 &&
			    epg_icmp6_link_hop_limit((uint8_t)q->icmp_type) ?
			    epg_icmp6_link_hop_limit((uint8_t)q->icmp_type) : 64;
		memcpy(f + l3 + 8, q->src, 16);
		memcpy(f + l3 + 24, q->dst, 16);
		l4 = l3 + 40;
	}
	switch (q->proto) {
	case IPPROTO_TCP:
		put16(f + l4, q->sport);
		put16(f + l4 + 2, q->dport);
		f[l4 + 12] = 5 << 4;
		f[l4 + 13] = q->tcp_flags;
		l4len = 20;
		break;
	case IPPROTO_UDP:
		put16(f + l4, q->sport);
		put16(f + l4 + 2, q->dport);
		put16(f + l4 + 4, 8);
		l4len = 8;
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		f[l4] = (uint8_t)q->icmp_type;
		f[l4 + 1] = (uint8_t)q->icmp_code;
		put16(f + l4 + 4, q->sport); /* echo identifier */
		l4len = 8;
		break;
	default:
		l4len = 8;
	}
	if (q->family == AF_INET)
		put16(f + l3 + 2, (uint16_t)(20 + l4len));
	else
		put16(f + l3 + 4, (uint16_t)l4len);
	return l4 + l4len;
}

/* The pinned flow of this packet, tried in both key orders. */
static int find_flow(int ct_fd, const struct epg_explain_query *q, struct epg_ct_key *key,
		     struct epg_ct_val *val)
{
	bool icmp = q->proto == IPPROTO_ICMP || q->proto == IPPROTO_ICMPV6;
	bool ports = q->proto == IPPROTO_TCP || q->proto == IPPROTO_UDP;

	for (int lo = 0; lo < 2; lo++) {
		struct epg_ct_key k = { .proto = (uint8_t)q->proto, .family = (uint8_t)q->family };

		memcpy(k.lo_addr, lo ? q->dst : q->src, 16);
		memcpy(k.hi_addr, lo ? q->src : q->dst, 16);
		if (ports) {
			k.lo_port = htons(lo ? q->dport : q->sport);
			k.hi_port = htons(lo ? q->sport : q->dport);
		} else if (icmp) {
			k.lo_port = k.hi_port = htons(q->sport);
		}
		if (!bpf_map_lookup_elem(ct_fd, &k, val)) {
			*key = k;
			return 0;
		}
	}
	return -ENOENT;
}


static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return 0;
}

int epg_explain(struct epg_maps *m, const struct epg_explain_query *q,
		struct epg_explain_result *r, struct epg_error *err)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = m->pin_dir);
	LIBBPF_OPTS(bpf_test_run_opts, topts, .repeat = 1);
	struct bpf_map *private_maps[8];
	libbpf_print_fn_t old_print;
	struct epgate_bpf *skel;
	struct epg_meta meta;
	struct epg_ct_key fk;
	uint8_t frame[128];
	uint32_t zero = 0;
	int rc;

	memset(r, 0, sizeof(*r));
	if (bpf_map_lookup_elem(m->meta, &zero, &meta))
		return set_err(err, -errno, "%s/epg_meta: %s", m->pin_dir, strerror(errno));
	r->generation = meta.generation;

	/* Which endpoint, as the datapath classifies it. */
	for (int side = 0; side < 2 && !r->endpoint_traffic; side++) {
		struct epg_addr_key k = { .gen = meta.active_gen & 1, .family = (uint32_t)q->family };
		struct epg_addr_val v;

		memcpy(k.addr, side ? q->src : q->dst, q->family == AF_INET ? 4 : 16);
		if (bpf_map_lookup_elem(m->addr, &k, &v))
			continue;
		r->endpoint_traffic = true;
		r->dir = side ? EPG_DIR_EGRESS : EPG_DIR_INGRESS;
		r->ep_slot = v.ep_slot;
		bpf_map_lookup_elem(m->ep_info, &v.ep_slot, &r->ep);
	}
	if (!r->endpoint_traffic) {
		r->verdict = EPG_ACCEPT;
		return 0;
	}
	r->tracked = !find_flow(m->ct, q, &fk, &r->flow);

	old_print = libbpf_set_print(quiet);
	skel = epgate_bpf__open_opts(&opts);
	if (!skel) {
		libbpf_set_print(old_print);
		return set_err(err, -errno, "cannot open the embedded BPF object: %s", strerror(errno));
	}
	bpf_program__set_autoload(skel->progs.epg_tc_egress, false);
	/* everything the run writes is private; the policy is the pinned one */
	private_maps[0] = skel->maps.epg_ep_stats;
	private_maps[1] = skel->maps.epg_rule_stats;
	private_maps[2] = skel->maps.epg_global;
	private_maps[3] = skel->maps.epg_ct;
	private_maps[4] = skel->maps.epg_rej;
	private_maps[5] = skel->maps.epg_ifaces;
	private_maps[6] = skel->maps.epg_frag;
	private_maps[7] = skel->maps.epg_ct_ended; /* never serve's flow logs */
	for (size_t i = 0; i < 8; i++)
		bpf_map__set_pin_path(private_maps[i], NULL);
	/* small: one flow at most, one removed flow at most */
	rc = bpf_map__set_max_entries(skel->maps.epg_ct, 16);
	if (!rc)
		rc = bpf_map__set_max_entries(skel->maps.epg_ct_ended,
					      (uint32_t)sysconf(_SC_PAGESIZE));
	if (!rc)
		rc = epg_object_size_counters(skel->obj, m->max_eps, m->max_rule_slots);
	if (!rc)
		rc = epgate_bpf__load(skel);
	libbpf_set_print(old_print);
	if (rc) {
		set_err(err, rc, "cannot load a private copy of the datapath against %s: %s (are the pins of this epgate version?)",
			m->pin_dir, strerror(-rc));
		goto out;
	}
	if (r->tracked)
		bpf_map_update_elem(bpf_map__fd(skel->maps.epg_ct), &fk, &r->flow, BPF_ANY);

	topts.data_in = frame;
	topts.data_size_in = (uint32_t)build_frame(q, frame);
	rc = bpf_prog_test_run_opts(bpf_program__fd(skel->progs.epg_xdp), &topts);
	if (rc) {
		set_err(err, rc, "BPF_PROG_TEST_RUN: %s", strerror(-rc));
		goto out;
	}
	r->verdict = topts.retval == XDP_DROP ? EPG_DROP : EPG_ACCEPT;
	/* a flow the run found idle is gone from its private table: the
	 * packet met none, and the answer says so */
	{
		struct epg_ct_val after;

		if (r->tracked && bpf_map_lookup_elem(bpf_map__fd(skel->maps.epg_ct), &fk, &after))
			r->tracked = false;
	}

	/* What moved: the reason, and the ACL entry and rule hit. */
	{
		struct epg_ep_counters c;

		bool moved = false;

		rc = epg_percpu_sum(bpf_map__fd(skel->maps.epg_ep_stats), r->ep_slot, &c, sizeof(c));
		for (uint32_t rs = 0; !rc && rs < EPG_REASON_SLOTS; rs++)
			if (c.c[r->dir][rs].packets) {
				r->reason = rs;
				moved = true;
			}
		r->plumbing = !rc && !moved && r->verdict == EPG_ACCEPT;
	}
	{
		uint32_t key, next, *prev = NULL;

		while (!rc && !bpf_map_get_next_key(m->rule_info, prev, &next)) {
			struct epg_counter c;
			struct epg_rule_info info;

			key = next;
			prev = &key;
			if (epg_percpu_sum(bpf_map__fd(skel->maps.epg_rule_stats), key, &c, sizeof(c)) ||
			    !c.packets || bpf_map_lookup_elem(m->rule_info, &key, &info))
				continue;
			if (info.kind == EPG_RULE_ACL) {
				r->have_acl_entry = true;
				r->acl_entry = info;
			} else {
				r->have_rule = true;
				r->rule = info;
			}
		}
	}
out:
	epgate_bpf__destroy(skel);
	return rc;
}
