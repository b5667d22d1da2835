/* SPDX-License-Identifier: MIT */
/*
 * The compiler: configuration model -> the contents of the policy maps,
 * independent of generation and of any kernel state.
 *
 * Endpoints with the same set of security groups share one ruleset. Each
 * (ruleset, direction) has up to EPG_RULE_BITS entries: one per
 * (group, permission, peer source), a peer source being one CIDR, one
 * referenced group (all its members' addresses) or one prefix list (all its
 * entries). Each entry's bit is set in the service prefixes of its
 * permission and in the peer prefixes of its peer source; every stored
 * prefix's bitmap is the OR over all stored prefixes that cover it, so the
 * longest-prefix match returns the union (see bpf/policy.h).
 */
#ifndef EPGATE_COMPILE_H
#define EPGATE_COMPILE_H

#include <stddef.h>
#include <stdint.h>
#include "epgate/abi.h"
#include "model.h"

/* A prefix of one LPM dimension, without the 32-bit selector:
 * plen counts bits of data[] (address, or proto + port). */
struct epg_lpm_entry {
	uint32_t plen;
	uint8_t data[16];
	struct epg_bitmap bm;
};

struct epg_lpm_set {
	struct epg_lpm_entry *v;
	size_t n, cap;
};

struct epg_dir_plan {
	uint32_t n_bits, bits_cap; /* n_bits <= EPG_RULE_BITS */
	uint32_t *bit_rule; /* bit -> index into plan->rules */
	uint8_t *bit_deny;  /* ACL entries: RuleAction deny */
	struct epg_lpm_set svc;   /* data: proto, port[2] */
	struct epg_lpm_set peer4; /* data: IPv4 address */
	struct epg_lpm_set peer6; /* data: IPv6 address */
};

struct epg_ruleset_plan {
	char **groups; /* sorted group ids: the ruleset's identity */
	size_t n_groups;
	struct epg_dir_plan dir[EPG_DIR_MAX];
};

/* A network ACL that applies to some endpoint address: its entries of each
 * direction, bit i = the i-th entry in rule-number order. */
struct epg_acl_plan {
	const struct epg_acl *acl; /* in the config */
	struct epg_dir_plan dir[EPG_DIR_MAX];
};

struct epg_ep_plan {
	const struct epg_endpoint *ep; /* in the config */
	struct epg_cidr *addrs;
	uint32_t *addr_profile; /* per address: its interface's timeout set */
	uint32_t *addr_acl;     /* per address: 0 none, else index into acls + 1 */
	size_t n_addrs;
	uint32_t ruleset;
};

struct epg_rule_plan {
	char rule_id[16];    /* "r-" + 8 hex digits of a content hash */
	const char *group_id; /* the group, or the network ACL */
	uint32_t kind;        /* enum epg_rule_kind */
	uint32_t dir;
	char desc[EPG_RULE_DESC_LEN];
};

struct epg_plan {
	struct epg_ep_plan *eps;
	size_t n_eps;
	struct epg_ruleset_plan *rulesets;
	size_t n_rulesets;
	struct epg_rule_plan *rules;
	size_t n_rules;
	struct epg_acl_plan *acls;
	size_t n_acls;
	struct epg_ct_timeouts *ct_profiles; /* [0]: the defaults */
	size_t n_ct_profiles;
	size_t n_warnings;
	char **warnings; /* quota notes: reported, not enforced */
	const struct epg_cidr *exempt; /* the config's ExemptPeers */
	size_t n_exempt;
};

/* Compile cfg (which must outlive the plan). Returns 0, -E2BIG when a
 * ruleset needs more than EPG_RULE_BITS entries or an address belongs to two
 * endpoints (err says which), -ENOMEM. */
int epg_compile(const struct epg_config *cfg, struct epg_plan *plan,
		struct epg_error *err);
void epg_plan_free(struct epg_plan *plan);

/* Service prefixes of one permission (exposed for tests): appends to out,
 * data = proto, port[2]; plen 0 = every protocol. */
int epg_perm_service_prefixes(const struct epg_perm *perm, struct epg_lpm_set *out,
			      const struct epg_bitmap *bm);

#endif
