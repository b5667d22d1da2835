/* SPDX-License-Identifier: MIT */
/* `epgate explain`: the verdict the installed datapath gives a packet, and
 * why. See explain.c for how it is computed without touching live state. */
#ifndef EPGATE_EXPLAIN_H
#define EPGATE_EXPLAIN_H

#include <stdbool.h>
#include <stdint.h>
#include "epgate.h"

struct epg_explain_query {
	int family;              /* AF_INET or AF_INET6 */
	uint8_t src[16], dst[16];
	int proto;               /* IPPROTO_* */
	uint16_t sport, dport;   /* TCP/UDP; sport = echo identifier for ICMP */
	int icmp_type, icmp_code;
	uint8_t tcp_flags;       /* default SYN: a new connection */
};

struct epg_explain_result {
	bool endpoint_traffic;   /* false: passes untouched */
	int verdict;             /* EPG_ACCEPT / EPG_DROP */
	uint32_t reason;         /* enum epg_reason */
	uint32_t dir;            /* enum epg_dir */
	uint32_t ep_slot;
	struct epg_ep_info ep;
	uint64_t generation;
	bool have_acl_entry;     /* the network ACL entry that decided */
	struct epg_rule_info acl_entry;
	bool have_rule;          /* the security-group rule that allowed it */
	struct epg_rule_info rule;
	bool tracked;            /* a tracked flow exists for it */
	struct epg_ct_val flow;
	bool plumbing;           /* endpoint traffic passed untouched: ICMPv6
				  * neighbour discovery or MLD (no counter moved) */
};

int epg_explain(struct epg_maps *m, const struct epg_explain_query *q,
		struct epg_explain_result *r, struct epg_error *err);

#endif
