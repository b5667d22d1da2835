/* SPDX-License-Identifier: MIT */
/*
 * The configuration model: what the EC2 API's JSON documents say, parsed,
 * validated and cross-referenced, before anything is compiled into maps.
 * See ../shared/SEMANTICS.md ("Input") for the shapes accepted.
 *
 * Ownership: everything reachable from a struct epg_config is owned by it
 * and freed by epg_config_free().
 */
#ifndef EPGATE_MODEL_H
#define EPGATE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An IPv4 or IPv6 prefix in canonical form (host bits cleared). IPv4 uses
 * addr[0..3] in network byte order; the rest is zero. */
struct epg_cidr {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t plen;   /* 0..32 or 0..128 */
	uint8_t addr[16];
};

/* Where an object came from, for error messages: "file: JSON.path". */
struct epg_origin {
	char *file;
	char *path; /* e.g. SecurityGroups[1].IpPermissions[0] */
};

enum epg_peer_kind {
	EPG_PEER_CIDR,        /* IpRanges[].CidrIp / Ipv6Ranges[].CidrIpv6 */
	EPG_PEER_GROUP,       /* UserIdGroupPairs[].GroupId */
	EPG_PEER_PREFIX_LIST, /* PrefixListIds[].PrefixListId */
};

struct epg_peer {
	enum epg_peer_kind kind;
	struct epg_cidr cidr; /* EPG_PEER_CIDR */
	char *ref_id;         /* EPG_PEER_GROUP / EPG_PEER_PREFIX_LIST */
	struct epg_origin origin;
};

/* Protocol numbers; EPG_PROTO_ALL is IpProtocol "-1". */
#define EPG_PROTO_ALL (-1)

/* One IpPermissions / IpPermissionsEgress element. */
struct epg_perm {
	int proto;     /* EPG_PROTO_ALL or 0..255 ("tcp" -> 6, "icmpv6" -> 58) */
	/* tcp/udp: port range, both in 0..65535, from <= to.
	 * icmp/icmpv6: from = type, to = code, -1 = all.
	 * anything else: ignored (every port), both -1. */
	int from_port;
	int to_port;
	struct epg_peer *peers;
	size_t n_peers;
	struct epg_origin origin;
};

struct epg_group {
	char *id;
	char *name;
	char *vpc_id;
	struct epg_perm *in;  /* IpPermissions */
	size_t n_in;
	struct epg_perm *out; /* IpPermissionsEgress */
	size_t n_out;
	struct epg_origin origin;
};

/* ConnectionTrackingConfiguration, in seconds; 0 = not given (default). */
struct epg_ct_config {
	uint32_t tcp_established;
	uint32_t udp_stream;
	uint32_t udp;
};

struct epg_eni {
	char *id;
	char *subnet_id; /* may be NULL */
	char *vpc_id;    /* may be NULL */
	char *owner_id;  /* may be NULL */
	char *az;        /* may be NULL */
	struct epg_cidr *addrs; /* host prefixes (/32, /128), deduplicated */
	size_t n_addrs;
	char **groups;
	size_t n_groups;
	struct epg_ct_config ct;
	struct epg_origin origin;
};

struct epg_endpoint {
	char *id;
	char *service;
	char *type;            /* "Interface", "Gateway", ... */
	char *vpc_id;          /* may be NULL */
	char *owner_id;        /* may be NULL */
	char *policy_document; /* may be NULL; kept, shown, never enforced */
	char **enis;
	size_t n_enis;
	char **groups;         /* Groups[].GroupId */
	size_t n_groups;
	bool groups_present;   /* false: take the union of the ENIs' groups */
	struct epg_origin origin;
};

struct epg_prefix_list {
	char *id;
	char *name;
	struct epg_cidr *entries;
	size_t n_entries;
	bool given;     /* Entries or Cidrs present (describe-managed-prefix-lists alone has neither) */
	struct epg_origin origin;
};

/* Network ACL entry. Rule number 32767 (IPv4) / 32768 (IPv6) is the '*'. */
struct epg_acl_entry {
	uint32_t rule_number;
	bool egress;
	bool allow;
	int proto;           /* EPG_PROTO_ALL or 0..255 */
	int port_from;       /* tcp/udp; -1 when absent */
	int port_to;
	int icmp_type;       /* -1 = all */
	int icmp_code;       /* -1 = all */
	struct epg_cidr cidr;
	struct epg_origin origin;
};

struct epg_acl {
	char *id;
	char *vpc_id;
	bool is_default;
	struct epg_acl_entry *entries;
	size_t n_entries;
	char **subnets; /* Associations[].SubnetId */
	size_t n_subnets;
	struct epg_origin origin;
};

/* epgate's own settings ("EpgateSettings" top-level object), seconds;
 * 0 = the default. Timeouts EC2 does not document. */
struct epg_ct_defaults {
	uint32_t tcp_syn;     /* ConnectionTracking.TcpSynTimeout */
	uint32_t tcp_closing; /* ConnectionTracking.TcpClosingTimeout */
	uint32_t tcp_closed;  /* ConnectionTracking.TcpClosedTimeout */
	uint32_t icmp;        /* ConnectionTracking.IcmpTimeout */
	uint32_t other;       /* ConnectionTracking.OtherTimeout */
};

struct epg_config {
	struct epg_ct_defaults ct_defaults;
	bool settings_seen; /* an EpgateSettings object was given */
	struct epg_cidr *exempt; /* EpgateSettings.ExemptPeers[].Cidr */
	size_t n_exempt;
	struct epg_endpoint *endpoints;
	size_t n_endpoints;
	struct epg_eni *enis;
	size_t n_enis;
	struct epg_group *groups;
	size_t n_groups;
	struct epg_prefix_list *prefix_lists;
	size_t n_prefix_lists;
	struct epg_acl *acls;
	size_t n_acls;
};

/* Error text for the CLI: "FILE: JSON.path: what is wrong". */
struct epg_error {
	char msg[1024];
};

/*
 * Parse and merge documents (top-level arrays of every file are merged), then
 * check every cross-reference. Returns 0, -EINVAL for invalid input (err set),
 * -errno for I/O (err set), -ENOMEM. On error cfg is left empty.
 *
 * cfg is an output: it is overwritten, not freed (free a loaded one first).
 * Arrays keep document order, files in the order given. Each file is read
 * whole, at most EPG_CONFIG_MAX_FILE bytes (larger: -EINVAL).
 */
#define EPG_CONFIG_MAX_FILE (64 * 1024 * 1024)

int epg_config_load_files(struct epg_config *cfg, const char *const *files,
			  size_t n_files, struct epg_error *err);

/* Parse documents held in memory; names[i] is used in error messages. */
int epg_config_load_buffers(struct epg_config *cfg, const char *const *names,
			    const char *const *bufs, const size_t *lens,
			    size_t n, struct epg_error *err);

void epg_config_free(struct epg_config *cfg);

/* True for the endpoints epgate enforces: VpcEndpointType "Interface". The
 * loader stores the known AWS type names in their canonical spelling
 * ("interface" -> "Interface"), so this is a plain comparison. */
bool epg_endpoint_is_interface(const struct epg_endpoint *ep);

/* Lookups by id; NULL when absent. */
const struct epg_group *epg_config_group(const struct epg_config *cfg, const char *id);
const struct epg_eni *epg_config_eni(const struct epg_config *cfg, const char *id);
const struct epg_prefix_list *epg_config_prefix_list(const struct epg_config *cfg,
						     const char *id);

/* Fill err (if not NULL) with a printf-style message; returns rc. */
int epg_set_err(struct epg_error *err, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* "10.0.0.0/8" or "2001:db8::/32"; buf at least EPG_CIDR_STRLEN. */
#define EPG_CIDR_STRLEN 48
const char *epg_cidr_str(const struct epg_cidr *c, char *buf, size_t len);

#endif
