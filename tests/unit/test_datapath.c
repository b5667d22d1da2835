// SPDX-License-Identifier: MIT
/*
 * Datapath unit tests: canned frames through BPF_PROG_TEST_RUN against a
 * policy compiled from EC2-shaped JSON, asserting the verdict and the counter
 * deltas (per endpoint, direction and reason; per rule; pass-through).
 * Needs root. Maps are not pinned: the test's object is private.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "check.h"
#include "epgate.h"
#include "epgate.skel.h"
#include "pkt.h"

static const char *policy_json =
	"{\"VpcEndpoints\": ["
	"  {\"VpcEndpointId\": \"vpce-aaaa\", \"VpcEndpointType\": \"Interface\","
	"   \"ServiceName\": \"com.amazonaws.test.a\", \"NetworkInterfaceIds\": [\"eni-a\"],"
	"   \"Groups\": [{\"GroupId\": \"sg-a\"}, {\"GroupId\": \"sg-b\"}]},"
	"  {\"VpcEndpointId\": \"vpce-bbbb\", \"VpcEndpointType\": \"Interface\","
	"   \"ServiceName\": \"com.amazonaws.test.b\", \"NetworkInterfaceIds\": [\"eni-b\"]}"
	"],"
	"\"NetworkInterfaces\": ["
	"  {\"NetworkInterfaceId\": \"eni-a\", \"PrivateIpAddress\": \"198.18.10.1\","
	"   \"Ipv6Addresses\": [{\"Ipv6Address\": \"fd00:10::1\"}], \"Groups\": [{\"GroupId\": \"sg-a\"}]},"
	"  {\"NetworkInterfaceId\": \"eni-b\", \"PrivateIpAddress\": \"198.18.20.1\","
	"   \"Groups\": [{\"GroupId\": \"sg-c\"}]},"
	"  {\"NetworkInterfaceId\": \"eni-m\", \"PrivateIpAddress\": \"198.18.30.5\","
	"   \"Ipv6Addresses\": [{\"Ipv6Address\": \"fd00:30::5\"}], \"Groups\": [{\"GroupId\": \"sg-members\"}]}"
	"],"
	"\"SecurityGroups\": ["
	"  {\"GroupId\": \"sg-a\", \"IpPermissions\": ["
	"    {\"IpProtocol\": \"tcp\", \"FromPort\": 443, \"ToPort\": 443, \"IpRanges\": [{\"CidrIp\": \"198.18.0.0/16\"}]},"
	"    {\"IpProtocol\": \"udp\", \"FromPort\": 53, \"ToPort\": 53, \"IpRanges\": [{\"CidrIp\": \"198.18.5.0/24\"}]},"
	"    {\"IpProtocol\": \"icmp\", \"FromPort\": 8, \"ToPort\": -1, \"IpRanges\": [{\"CidrIp\": \"198.18.0.0/15\"}]},"
	"    {\"IpProtocol\": \"icmpv6\", \"FromPort\": 128, \"ToPort\": -1, \"Ipv6Ranges\": [{\"CidrIpv6\": \"fd00::/8\"}]},"
	"    {\"IpProtocol\": \"47\", \"FromPort\": 5, \"ToPort\": 6, \"IpRanges\": [{\"CidrIp\": \"198.18.7.7/32\"}]},"
	"    {\"IpProtocol\": \"6\", \"FromPort\": 1000, \"ToPort\": 2000, \"Ipv6Ranges\": [{\"CidrIpv6\": \"fd00:1::/64\"}]}"
	"  ], \"IpPermissionsEgress\": []},"
	"  {\"GroupId\": \"sg-b\", \"IpPermissions\": ["
	"    {\"IpProtocol\": \"tcp\", \"FromPort\": 22, \"ToPort\": 22, \"IpRanges\": [{\"CidrIp\": \"198.18.5.5/32\"}]},"
	"    {\"IpProtocol\": \"-1\", \"UserIdGroupPairs\": [{\"GroupId\": \"sg-members\"}]},"
	"    {\"IpProtocol\": \"tcp\", \"FromPort\": 8443, \"ToPort\": 8443, \"PrefixListIds\": [{\"PrefixListId\": \"pl-x\"}]}"
	"  ]},"
	"  {\"GroupId\": \"sg-c\", \"IpPermissions\": ["
	"    {\"IpProtocol\": \"tcp\", \"FromPort\": 80, \"ToPort\": 80, \"IpRanges\": [{\"CidrIp\": \"0.0.0.0/0\"}]}"
	"  ]},"
	"  {\"GroupId\": \"sg-members\", \"IpPermissions\": []}"
	"],"
	"\"PrefixLists\": [{\"PrefixListId\": \"pl-x\", \"Entries\": [{\"Cidr\": \"198.19.1.0/24\"}]}]"
	"}";

static struct epgate_bpf *skel;
static struct epg_maps maps;
static struct epg_snapshot names; /* slots of endpoints and rules */

#define A4 "198.18.10.1"
#define A6 "fd00:10::1"
#define B4 "198.18.20.1"

/* Expected outcome: a verdict, and which counter moves by one packet. */
enum expect_kind { EXP_ENDPOINT, EXP_PASSTHROUGH };

struct dp_case {
	const char *name;
	struct pkt_spec spec;
	int xdp;             /* XDP_PASS / XDP_DROP */
	enum expect_kind kind;
	const char *ep;      /* endpoint id whose counter moves */
	int dir;
	int reason;
	const char *rule;    /* "group|description" whose hit counter moves, or NULL */
};

static int ep_slot(const char *id)
{
	for (size_t i = 0; i < names.n_eps; i++)
		if (!strcmp(names.eps[i].info.endpoint_id, id))
			return (int)names.eps[i].slot;
	return -1;
}

static int rule_slot(const char *group_desc)
{
	char buf[256];

	for (size_t i = 0; i < names.n_rules; i++) {
		snprintf(buf, sizeof(buf), "%s|%s", names.rules[i].info.group_id,
			 names.rules[i].info.desc);
		if (!strcmp(buf, group_desc))
			return (int)names.rules[i].slot;
	}
	return -1;
}

static void sum_percpu(int fd, uint32_t key, void *out, size_t size)
{
	int ncpu = libbpf_num_possible_cpus();
	size_t stride = (size + 7) & ~(size_t)7;
	char *buf = calloc((size_t)ncpu, stride);
	uint64_t *acc = out;

	memset(out, 0, size);
	if (!buf || bpf_map_lookup_elem(fd, &key, buf)) {
		free(buf);
		return;
	}
	for (int c = 0; c < ncpu; c++)
		for (size_t w = 0; w < size / 8; w++)
			acc[w] += ((uint64_t *)(buf + (size_t)c * stride))[w];
	free(buf);
}

static uint64_t ep_count(int slot, int dir, int reason)
{
	struct epg_ep_counters c;

	if (slot < 0)
		return 0;
	sum_percpu(maps.ep_stats, (uint32_t)slot, &c, sizeof(c));
	return c.c[dir][reason].packets;
}

static uint64_t ep_total(int slot)
{
	struct epg_ep_counters c;
	uint64_t n = 0;

	if (slot < 0)
		return 0;
	sum_percpu(maps.ep_stats, (uint32_t)slot, &c, sizeof(c));
	for (int d = 0; d < EPG_DIR_MAX; d++)
		for (int r = 0; r < EPG_REASON_SLOTS; r++)
			n += c.c[d][r].packets;
	return n;
}

static uint64_t rule_count(int slot)
{
	struct epg_counter c;

	if (slot < 0)
		return 0;
	sum_percpu(maps.rule_stats, (uint32_t)slot, &c, sizeof(c));
	return c.packets;
}

static uint64_t passthrough(void)
{
	struct epg_counter c;

	sum_percpu(maps.global, EPG_G_PASSTHROUGH, &c, sizeof(c));
	return c.packets;
}

static int run_frame(const void *frame, size_t len, uint32_t *retval)
{
	LIBBPF_OPTS(bpf_test_run_opts, topts, .data_in = frame,
		    .data_size_in = (uint32_t)len, .repeat = 1);
	int rc = bpf_prog_test_run_opts(bpf_program__fd(skel->progs.epg_xdp), &topts);

	*retval = topts.retval;
	return rc;
}

static uint64_t all_ep_total(void)
{
	uint64_t n = 0;

	for (size_t i = 0; i < names.n_eps; i++)
		n += ep_total((int)names.eps[i].slot);
	return n;
}

/* Run one frame; check verdict and that exactly the expected counter moved. */
static void expect_frame(const char *name, const void *frame, size_t len, int xdp,
			 enum expect_kind kind, const char *ep, int dir, int reason,
			 const char *rule)
{
	int slot = ep ? ep_slot(ep) : -1, rslot = rule ? rule_slot(rule) : -1;
	uint64_t before = slot >= 0 ? ep_count(slot, dir, reason) : 0;
	uint64_t tot_before = all_ep_total(), pt_before = passthrough();
	uint64_t r_before = rule_count(rslot);
	uint32_t retval = 0;
	int rc;

	if (ep)
		CHECK(slot >= 0, "%s: endpoint %s has a counter slot", name, ep);
	if (rule)
		CHECK(rslot >= 0, "%s: rule '%s' exists", name, rule);
	rc = run_frame(frame, len, &retval);
	CHECK_EQ(rc, 0, "%s: BPF_PROG_TEST_RUN", name);
	CHECK_EQ(retval, xdp, "%s: verdict (%s expected)", name,
		 xdp == XDP_PASS ? "XDP_PASS" : "XDP_DROP");
	if (kind == EXP_PASSTHROUGH) {
		CHECK_EQ(passthrough() - pt_before, 1, "%s: pass-through counted once", name);
		CHECK_EQ(all_ep_total() - tot_before, 0, "%s: no endpoint counter moved", name);
	} else {
		CHECK_EQ(ep_count(slot, dir, reason) - before, 1,
			 "%s: %s %s/%s counted once", name, ep,
			 dir == EPG_DIR_INGRESS ? "ingress" : "egress", epg_reason_label((uint32_t)reason));
		CHECK_EQ(all_ep_total() - tot_before, 1, "%s: no other endpoint counter moved", name);
		CHECK_EQ(passthrough() - pt_before, 0, "%s: not counted as pass-through", name);
	}
	if (rule)
		CHECK_EQ(rule_count(rslot) - r_before, 1, "%s: rule '%s' hit once", name, rule);
}

static void run_case(const struct dp_case *c)
{
	struct pkt k;

	pkt_build(&k, &c->spec);
	expect_frame(c->name, k.buf, k.len, c->xdp, c->kind, c->ep, c->dir, c->reason, c->rule);
}

#define TCP4(s, d, dp) { .family = AF_INET, .src = s, .dst = d, .proto = IPPROTO_TCP, .sport = 40000, .dport = dp }
#define UDP4(s, d, dp) { .family = AF_INET, .src = s, .dst = d, .proto = IPPROTO_UDP, .sport = 40000, .dport = dp }
#define TCP6(s, d, dp) { .family = AF_INET6, .src = s, .dst = d, .proto = IPPROTO_TCP, .sport = 40000, .dport = dp }
#define ICMP4(s, d, t, c) { .family = AF_INET, .src = s, .dst = d, .proto = IPPROTO_ICMP, .icmp_type = t, .icmp_code = c }
#define ICMP6(s, d, t, c) { .family = AF_INET6, .src = s, .dst = d, .proto = IPPROTO_ICMPV6, .icmp_type = t, .icmp_code = c }

#define ACCEPT(ep, rule) XDP_PASS, EXP_ENDPOINT, ep, EPG_DIR_INGRESS, EPG_R_RULE, rule
#define DENY(ep) XDP_DROP, EXP_ENDPOINT, ep, EPG_DIR_INGRESS, EPG_R_NO_RULE, NULL
#define DROPPED(ep, reason) XDP_DROP, EXP_ENDPOINT, ep, EPG_DIR_INGRESS, reason, NULL
#define PASSTHROUGH XDP_PASS, EXP_PASSTHROUGH, NULL, 0, 0, NULL

static const struct dp_case cases[] = {
	{ "tcp 443 from the /16", TCP4("198.18.1.1", A4, 443), ACCEPT("vpce-aaaa", "sg-a|tcp 443 from 198.18.0.0/16") },
	{ "tcp 444: no rule", TCP4("198.18.1.1", A4, 444), DENY("vpce-aaaa") },
	{ "tcp 443 from outside the /16", TCP4("198.19.9.9", A4, 443), DENY("vpce-aaaa") },
	{ "tcp 22 from the /32 of another group", TCP4("198.18.5.5", A4, 22), ACCEPT("vpce-aaaa", "sg-b|tcp 22 from 198.18.5.5/32") },
	{ "tcp 22 from next to the /32", TCP4("198.18.5.6", A4, 22), DENY("vpce-aaaa") },
	{ "overlap: tcp 443 from the /32 still allowed", TCP4("198.18.5.5", A4, 443), ACCEPT("vpce-aaaa", "sg-a|tcp 443 from 198.18.0.0/16") },
	{ "udp 53 from the /24", UDP4("198.18.5.9", A4, 53), ACCEPT("vpce-aaaa", "sg-a|udp 53 from 198.18.5.0/24") },
	{ "udp 53 from outside the /24", UDP4("198.18.6.1", A4, 53), DENY("vpce-aaaa") },
	{ "tcp 53: udp rule does not apply", TCP4("198.18.5.9", A4, 53), DENY("vpce-aaaa") },
	{ "icmp echo request, any code", ICMP4("198.18.1.1", A4, 8, 0), ACCEPT("vpce-aaaa", "sg-a|icmp type 8 from 198.18.0.0/15") },
	{ "icmp echo request, code 3", ICMP4("198.18.1.1", A4, 8, 3), ACCEPT("vpce-aaaa", "sg-a|icmp type 8 from 198.18.0.0/15") },
	{ "icmp echo reply: other type", ICMP4("198.18.1.1", A4, 0, 0), DENY("vpce-aaaa") },
	{ "protocol 47 from its /32 (ports ignored)", { .family = AF_INET, .src = "198.18.7.7", .dst = A4, .proto = 47 }, ACCEPT("vpce-aaaa", "sg-a|proto 47 from 198.18.7.7/32") },
	{ "protocol 47 from elsewhere", { .family = AF_INET, .src = "198.18.7.8", .dst = A4, .proto = 47 }, DENY("vpce-aaaa") },
	{ "referenced group member, udp any port (-1)", UDP4("198.18.30.5", A4, 9999), ACCEPT("vpce-aaaa", "sg-b|all from sg-members") },
	{ "referenced group member, v6", TCP6("fd00:30::5", A6, 1), ACCEPT("vpce-aaaa", "sg-b|all from sg-members") },
	{ "referenced group member, protocol 99", { .family = AF_INET, .src = "198.18.30.5", .dst = A4, .proto = 99 }, ACCEPT("vpce-aaaa", "sg-b|all from sg-members") },
	{ "prefix list entry", TCP4("198.19.1.20", A4, 8443), ACCEPT("vpce-aaaa", "sg-b|tcp 8443 from pl-x") },
	{ "outside the prefix list", TCP4("198.19.2.1", A4, 8443), DENY("vpce-aaaa") },
	{ "icmpv6 echo request", ICMP6("fd00:99::1", A6, 128, 0), ACCEPT("vpce-aaaa", "sg-a|icmpv6 type 128 from fd00::/8") },
	{ "icmpv6 echo reply", ICMP6("fd00:99::1", A6, 129, 0), DENY("vpce-aaaa") },
	{ "v6 tcp 1500 in range", TCP6("fd00:1::9", A6, 1500), ACCEPT("vpce-aaaa", "sg-a|tcp 1000-2000 from fd00:1::/64") },
	{ "v6 tcp 1000 low edge", TCP6("fd00:1::9", A6, 1000), ACCEPT("vpce-aaaa", "sg-a|tcp 1000-2000 from fd00:1::/64") },
	{ "v6 tcp 2000 high edge", TCP6("fd00:1::9", A6, 2000), ACCEPT("vpce-aaaa", "sg-a|tcp 1000-2000 from fd00:1::/64") },
	{ "v6 tcp 2001 above", TCP6("fd00:1::9", A6, 2001), DENY("vpce-aaaa") },
	{ "v6 tcp 999 below", TCP6("fd00:1::9", A6, 999), DENY("vpce-aaaa") },
	{ "v6 tcp 1500 from outside the /64", TCP6("fd00:2::9", A6, 1500), DENY("vpce-aaaa") },
	{ "v6 tcp 443: the v4 rule does not apply", TCP6("fd00:1::9", A6, 443), DENY("vpce-aaaa") },
	{ "other endpoint, other ruleset: tcp 80", TCP4("198.19.9.9", B4, 80), ACCEPT("vpce-bbbb", "sg-c|tcp 80 from 0.0.0.0/0") },
	{ "other endpoint: tcp 443 not allowed there", TCP4("198.18.1.1", B4, 443), DENY("vpce-bbbb") },
	{ "not an endpoint address", TCP4("198.18.1.1", "198.18.99.99", 443), PASSTHROUGH },
	{ "not an endpoint address, v6", TCP6("fd00:1::1", "fd00:99::99", 443), PASSTHROUGH },
	{ "ARP", { .family = 0 }, PASSTHROUGH },
	{ "from the endpoint: egress not enforced here", TCP4(A4, "198.18.1.1", 40000), XDP_PASS, EXP_ENDPOINT, "vpce-aaaa", EPG_DIR_EGRESS, EPG_R_NOT_ENFORCED, NULL },
	{ "one VLAN tag", { .family = AF_INET, .src = "198.18.1.1", .dst = A4, .proto = IPPROTO_TCP, .dport = 443, .vlans = 1 }, ACCEPT("vpce-aaaa", "sg-a|tcp 443 from 198.18.0.0/16") },
	{ "two VLAN tags (802.1ad)", { .family = AF_INET, .src = "198.18.1.1", .dst = A4, .proto = IPPROTO_TCP, .dport = 444, .vlans = 2 }, DENY("vpce-aaaa") },
	{ "two VLAN tags, v6", { .family = AF_INET6, .src = "fd00:1::9", .dst = A6, .proto = IPPROTO_TCP, .dport = 1500, .vlans = 2 }, ACCEPT("vpce-aaaa", "sg-a|tcp 1000-2000 from fd00:1::/64") },
	{ "three VLAN tags: not parsed, passes", { .family = AF_INET, .src = "198.18.1.1", .dst = A4, .proto = IPPROTO_TCP, .dport = 444, .vlans = 3 }, PASSTHROUGH },
	{ "IPv4 options honoured", { .family = AF_INET, .src = "198.18.1.1", .dst = A4, .proto = IPPROTO_TCP, .dport = 443, .ip_opt_words = 3 }, ACCEPT("vpce-aaaa", "sg-a|tcp 443 from 198.18.0.0/16") },
	{ "IPv4 options, denied port", { .family = AF_INET, .src = "198.18.1.1", .dst = A4, .proto = IPPROTO_TCP, .dport = 444, .ip_opt_words = 1 }, DENY("vpce-aaaa") },
	{ "IPv4 ihl 4", { .family = AF_INET, .src = "198.18.1.1", .dst = A4, .proto = IPPROTO_TCP, .dport = 443, .ihl_override = 4 }, DROPPED("vpce-aaaa", EPG_R_MALFORMED_IP) },
	{ "IPv4 ihl beyond the packet", { .family = AF_INET, .src = "198.18.1.1", .dst = A4, .proto = IPPROTO_TCP, .dport = 443, .ihl_override = 15 }, DROPPED("vpce-aaaa", EPG_R_MALFORMED_IP) },
	{ "TCP data offset 4", { .family = AF_INET, .src = "198.18.1.1", .dst = A4, .proto = IPPROTO_TCP, .dport = 443, .tcp_doff = 4 }, DROPPED("vpce-aaaa", EPG_R_TRUNCATED_L4) },
	{ "TCP data offset past the packet", { .family = AF_INET, .src = "198.18.1.1", .dst = A4, .proto = IPPROTO_TCP, .dport = 443, .tcp_doff = 15 }, DROPPED("vpce-aaaa", EPG_R_TRUNCATED_L4) },
	{ "first fragment judged by its ports", { .family = AF_INET, .src = "198.18.1.1", .dst = A4, .proto = IPPROTO_TCP, .dport = 443, .frag = 0x2000, .payload = 16 }, ACCEPT("vpce-aaaa", "sg-a|tcp 443 from 198.18.0.0/16") },
	{ "later fragment: no ports, port rule cannot allow", { .family = AF_INET, .src = "198.18.1.1", .dst = A4, .proto = IPPROTO_TCP, .frag = 0x0010 }, DROPPED("vpce-aaaa", EPG_R_FRAGMENT) },
	{ "later fragment allowed by an all-ports rule", { .family = AF_INET, .src = "198.18.30.5", .dst = A4, .proto = IPPROTO_UDP, .frag = 0x0010 }, ACCEPT("vpce-aaaa", "sg-b|all from sg-members") },
	{ "v6 hop-by-hop then tcp", { .family = AF_INET6, .src = "fd00:1::9", .dst = A6, .proto = IPPROTO_TCP, .dport = 1500, .v6_ext = 1 }, ACCEPT("vpce-aaaa", "sg-a|tcp 1000-2000 from fd00:1::/64") },
	{ "v6 three extension headers then tcp (denied port)", { .family = AF_INET6, .src = "fd00:1::9", .dst = A6, .proto = IPPROTO_TCP, .dport = 80, .v6_ext = 3 }, DENY("vpce-aaaa") },
	{ "v6 first fragment", { .family = AF_INET6, .src = "fd00:1::9", .dst = A6, .proto = IPPROTO_TCP, .dport = 1500, .v6_frag_hdr = 1, .frag = 1 }, ACCEPT("vpce-aaaa", "sg-a|tcp 1000-2000 from fd00:1::/64") },
	{ "v6 later fragment", { .family = AF_INET6, .src = "fd00:1::9", .dst = A6, .proto = IPPROTO_TCP, .v6_frag_hdr = 1, .frag = 0x0100 }, DROPPED("vpce-aaaa", EPG_R_FRAGMENT) },
	{ "v6 extension chain longer than the bound", { .family = AF_INET6, .src = "fd00:1::9", .dst = A6, .proto = IPPROTO_TCP, .dport = 1500, .v6_ext = EPG_IP6_EXT_MAX + 1 }, DROPPED("vpce-aaaa", EPG_R_IPV6_EXT) },
};

/* Cut a frame at every offset of its headers. Before both addresses are in,
 * it cannot be classified and passes; after, it is endpoint traffic whose IP
 * length no longer fits: malformed. */
static void truncations(const char *name, const struct pkt_spec *spec, size_t addr_end)
{
	struct pkt k;
	char label[128];

	pkt_build(&k, spec);
	for (size_t cut = 14; cut < k.len; cut++) {
		snprintf(label, sizeof(label), "%s cut at %zu", name, cut);
		if (cut < addr_end)
			expect_frame(label, k.buf, cut, XDP_PASS, EXP_PASSTHROUGH, NULL, 0, 0, NULL);
		else
			expect_frame(label, k.buf, cut, XDP_DROP, EXP_ENDPOINT, "vpce-aaaa",
				     EPG_DIR_INGRESS, EPG_R_MALFORMED_IP, NULL);
	}
}

/* The IP length says the L4 header is cut short, consistently with the frame. */
static void short_l4(const char *name, struct pkt_spec spec, size_t need)
{
	struct pkt k;
	char label[128];

	pkt_build(&k, &spec);
	for (size_t keep = 0; keep < need; keep++) {
		size_t len = k.l4_off + keep, iplen = len - k.l3_off;

		if (spec.family == AF_INET)
			put16(k.buf + k.l3_off + 2, (uint16_t)iplen);
		else
			put16(k.buf + k.l3_off + 4, (uint16_t)(iplen - 40));
		if (spec.family == AF_INET6 && iplen == 40)
			continue; /* payload length 0 means a jumbogram: malformed */
		snprintf(label, sizeof(label), "%s with %zu bytes of L4", name, keep);
		expect_frame(label, k.buf, len, XDP_DROP, EXP_ENDPOINT, "vpce-aaaa",
			     EPG_DIR_INGRESS, EPG_R_TRUNCATED_L4, NULL);
	}
}

/* libbpf's notes on sections it does not know (libxdp's .xdp_run_config)
 * are noise here; real warnings still show. */
static int quiet_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG || level == LIBBPF_INFO || strstr(fmt, "skipping unrecognized"))
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static int setup(void)
{
	const char *nm[] = { "policy.json" };
	const char *bufs[] = { policy_json };
	size_t lens[] = { strlen(policy_json) };
	struct epg_config cfg = { 0 };
	struct epg_error err = { "" };
	struct epg_plan plan;
	struct bpf_map *map;
	int rc;

	libbpf_set_print(quiet_libbpf);
	skel = epgate_bpf__open();
	if (!skel)
		return -errno;
	/* private maps: never pin from a unit test */
	bpf_object__for_each_map(map, skel->obj)
		bpf_map__set_pin_path(map, NULL);
	rc = epgate_bpf__load(skel);
	if (rc)
		return rc;
	maps.meta = bpf_map__fd(skel->maps.epg_meta);
	maps.addr = bpf_map__fd(skel->maps.epg_addr);
	maps.peer4 = bpf_map__fd(skel->maps.epg_peer4);
	maps.peer6 = bpf_map__fd(skel->maps.epg_peer6);
	maps.svc = bpf_map__fd(skel->maps.epg_svc);
	maps.rule_bits = bpf_map__fd(skel->maps.epg_rule_bits);
	maps.ep_stats = bpf_map__fd(skel->maps.epg_ep_stats);
	maps.rule_stats = bpf_map__fd(skel->maps.epg_rule_stats);
	maps.global = bpf_map__fd(skel->maps.epg_global);
	maps.ep_info = bpf_map__fd(skel->maps.epg_ep_info);
	maps.rule_info = bpf_map__fd(skel->maps.epg_rule_info);
	maps.ifaces = bpf_map__fd(skel->maps.epg_ifaces);
	maps.lock_fd = -1;
	snprintf(maps.pin_dir, sizeof(maps.pin_dir), "(test)");

	rc = epg_config_load_buffers(&cfg, nm, bufs, lens, 1, &err);
	if (rc) {
		fprintf(stderr, "config: %s\n", err.msg);
		return rc;
	}
	rc = epg_compile(&cfg, &plan, &err);
	if (!rc) {
		rc = epg_policy_apply(&maps, &plan, &err);
		epg_plan_free(&plan);
	}
	epg_config_free(&cfg);
	if (rc) {
		fprintf(stderr, "apply: %s\n", err.msg);
		return rc;
	}
	return epg_snapshot_read(&maps, &names, &err);
}

int main(void)
{
	int rc;

	if (geteuid() != 0) {
		SKIP("test_datapath needs root for BPF_PROG_TEST_RUN");
		check_failed++; /* not a pass: the suite must not look green without running */
		return check_summary();
	}
	rc = setup();
	CHECK_EQ(rc, 0, "load the datapath and apply the test policy");
	if (rc)
		return check_summary();
	CHECK_EQ(names.n_eps, 2, "two interface endpoints installed");

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);

	struct pkt_spec t4 = TCP4("198.18.1.1", A4, 443), t6 = TCP6("fd00:1::9", A6, 1500);
	struct pkt_spec u4 = UDP4("198.18.5.9", A4, 53), i4 = ICMP4("198.18.1.1", A4, 8, 0);
	struct pkt_spec i6 = ICMP6("fd00:99::1", A6, 128, 0);
	struct pkt_spec t4v = t4;

	t4v.vlans = 2;
	truncations("tcp4", &t4, 14 + 20);
	truncations("tcp4 in two VLANs", &t4v, 14 + 8 + 20);
	truncations("tcp6", &t6, 14 + 40);
	short_l4("tcp4", t4, 20);
	short_l4("tcp6", t6, 20);
	short_l4("udp4", u4, 8);
	short_l4("icmp4", i4, 4);
	short_l4("icmpv6", i6, 4);

	epg_snapshot_free(&names);
	epgate_bpf__destroy(skel);
	return check_summary();
}
