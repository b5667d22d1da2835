// SPDX-License-Identifier: MIT
/*
 * Unit tests for user/lib/config.c: the example documents in
 * ../shared/examples (or $EPG_EXAMPLES) load into the model we expect;
 * a table of inline documents is rejected, each with its own message naming
 * the file and JSON path, and the config is left empty.
 *
 * Inline documents are written with ' for " (converted before parsing) so
 * the JSON stays readable.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "check.h"
#include "compile.h"
#include "model.h"

#define SG_S3 "sg-0e1d2c3b4a5968778"
#define SG_APP "sg-0b0b0b0b0b0b0b0b0"
#define ENI_A "eni-0123456789abcdef0"
#define ENI_B "eni-0fedcba9876543210"
#define ENI_APP "eni-0a0a0a0a0a0a0a0a0"
#define PL "pl-0123456789abcdef0"

/* Up to four CIDR strings alive at once (one CHECK line). */
static const char *cs(const struct epg_cidr *c)
{
	static char bufs[4][EPG_CIDR_STRLEN];
	static unsigned n;

	return epg_cidr_str(c, bufs[n++ % 4], EPG_CIDR_STRLEN);
}

static bool cfg_empty(const struct epg_config *c)
{
	return !c->endpoints && !c->n_endpoints && !c->enis && !c->n_enis &&
	       !c->groups && !c->n_groups && !c->prefix_lists &&
	       !c->n_prefix_lists && !c->acls && !c->n_acls && !c->exempt && !c->n_exempt;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && !strcmp(s + a - b, suffix);
}

/* ' -> " ; the caller frees. */
static char *dq(const char *s)
{
	char *d = strdup(s), *p;

	for (p = d; p && *p; p++)
		if (*p == '\'')
			*p = '"';
	return d;
}

/* Load n inline documents named a.json, b.json (t.json when alone). */
static int load_docs(struct epg_config *cfg, const char *const *docs, size_t n,
		     struct epg_error *err)
{
	static const char *const one[] = { "t.json" }, *const two[] = { "a.json", "b.json" };
	char *bufs[2] = { NULL, NULL };
	size_t lens[2] = { 0, 0 }, i;
	int ret;

	for (i = 0; i < n; i++) {
		bufs[i] = dq(docs[i]);
		lens[i] = strlen(bufs[i]);
	}
	ret = epg_config_load_buffers(cfg, n == 1 ? one : two,
				      (const char *const *)bufs, lens, n, err);
	for (i = 0; i < n; i++)
		free(bufs[i]);
	return ret;
}

static int load1(struct epg_config *cfg, const char *doc, struct epg_error *err)
{
	return load_docs(cfg, &doc, 1, err);
}

/* ------------------------------------------------------------------------ */

static const struct epg_endpoint *endpoint(const struct epg_config *cfg, const char *id)
{
	size_t i;

	for (i = 0; i < cfg->n_endpoints; i++)
		if (!strcmp(cfg->endpoints[i].id, id))
			return &cfg->endpoints[i];
	return NULL;
}

static const struct epg_acl *acl_by_id(const struct epg_config *cfg, const char *id)
{
	size_t i;

	for (i = 0; i < cfg->n_acls; i++)
		if (!strcmp(cfg->acls[i].id, id))
			return &cfg->acls[i];
	return NULL;
}

static const struct epg_acl_entry *acl_entry(const struct epg_acl *acl, bool egress,
					     int family, uint32_t rule)
{
	size_t i;

	for (i = 0; i < acl->n_entries; i++) {
		const struct epg_acl_entry *e = &acl->entries[i];

		if (e->egress == egress && e->cidr.family == family && e->rule_number == rule)
			return e;
	}
	return NULL;
}

static bool has_addr(const struct epg_eni *eni, const char *want)
{
	size_t i;

	for (i = 0; i < eni->n_addrs; i++)
		if (!strcmp(cs(&eni->addrs[i]), want))
			return true;
	return false;
}

static const char *const example_names[5] = {
	"vpc-endpoints.json", "network-interfaces.json", "security-groups.json",
	"network-acls.json", "prefix-lists.json",
};

static void example_paths(char paths[5][512], const char *files[5])
{
	const char *dir = getenv("EPG_EXAMPLES") ? getenv("EPG_EXAMPLES") : "examples";
	size_t i;

	for (i = 0; i < 5; i++) {
		snprintf(paths[i], 512, "%s/%s", dir, example_names[i]);
		files[i] = paths[i];
	}
}

static void test_examples(void)
{
	char paths[5][512];
	const char *files[5];
	const struct epg_endpoint *ep, *gw;
	const struct epg_eni *a, *b, *app;
	const struct epg_group *g, *gapp;
	const struct epg_prefix_list *pl;
	const struct epg_acl *acl, *def;
	const struct epg_acl_entry *e;
	struct epg_config cfg;
	struct epg_error err;
	size_t i, n_addrs = 0;
	int ret;

	example_paths(paths, files);
	ret = epg_config_load_files(&cfg, files, 5, &err);
	CHECK_EQ(ret, 0, "examples: %s (run from the repository root, or set EPG_EXAMPLES)", err.msg);
	if (ret)
		return;

	/* endpoints */
	CHECK_EQ(cfg.n_endpoints, 2, "two endpoints");
	ep = endpoint(&cfg, "vpce-0c1d2e3f4a5b6c7d8");
	gw = endpoint(&cfg, "vpce-0aa00bb11cc22dd33");
	CHECK(ep && gw, "both endpoints found");
	if (!ep || !gw)
		goto out;
	CHECK(!strcmp(ep->type, "Interface") && epg_endpoint_is_interface(ep), "type %s", ep->type);
	CHECK(!strcmp(ep->service, "com.amazonaws.eu-west-1.s3"), "service %s", ep->service);
	CHECK(ep->vpc_id && !strcmp(ep->vpc_id, "vpc-0a1b2c3d4e5f60718"), "vpc");
	CHECK(ep->owner_id && !strcmp(ep->owner_id, "111122223333"), "owner");
	CHECK(ep->policy_document && strstr(ep->policy_document, "s3:GetObject"), "policy kept");
	CHECK_EQ(ep->n_enis, 2, "interface endpoint ENIs");
	CHECK(ep->n_enis == 2 && !strcmp(ep->enis[0], ENI_A) && !strcmp(ep->enis[1], ENI_B), "ENI ids");
	CHECK(ep->groups_present, "Groups given");
	CHECK(ep->n_groups == 1 && !strcmp(ep->groups[0], SG_S3), "endpoint group");
	CHECK(!strcmp(gw->type, "Gateway"), "gateway type");
	CHECK(!gw->groups_present && gw->n_groups == 0 && gw->n_enis == 0, "gateway: no groups, no ENIs");
	CHECK(!gw->policy_document, "gateway: no policy");
	CHECK(ends_with(ep->origin.file, "vpc-endpoints.json") &&
	      !strcmp(ep->origin.path, "VpcEndpoints[0]"), "origin %s: %s",
	      ep->origin.file, ep->origin.path);

	/* interfaces: the endpoint's 4 addresses, 2 IPv4 and 2 IPv6 */
	CHECK_EQ(cfg.n_enis, 3, "three ENIs");
	a = epg_config_eni(&cfg, ENI_A);
	b = epg_config_eni(&cfg, ENI_B);
	app = epg_config_eni(&cfg, ENI_APP);
	CHECK(a && b && app, "ENI lookups");
	CHECK(!epg_config_eni(&cfg, "eni-nope"), "unknown ENI lookup");
	if (!a || !b || !app)
		goto out;
	for (i = 0; i < ep->n_enis; i++) {
		const struct epg_eni *eni = epg_config_eni(&cfg, ep->enis[i]);

		n_addrs += eni ? eni->n_addrs : 0;
	}
	CHECK_EQ(n_addrs, 4, "interface endpoint addresses");
	CHECK_EQ(a->n_addrs, 2, "PrivateIpAddress and PrivateIpAddresses[0] deduplicated");
	CHECK(has_addr(a, "10.20.1.37/32") && has_addr(a, "2001:db8:20:1::37/128"), "ENI A addresses");
	CHECK(has_addr(b, "10.20.2.41/32") && has_addr(b, "2001:db8:20:2::41/128"), "ENI B addresses");
	CHECK(a->addrs[0].family == AF_INET && a->addrs[0].plen == 32, "host /32");
	CHECK(a->addrs[1].family == AF_INET6 && a->addrs[1].plen == 128, "host /128");
	CHECK_EQ(app->n_addrs, 2, "app ENI addresses");
	CHECK(has_addr(app, "10.20.1.100/32") && has_addr(app, "10.20.1.101/32"), "app addrs");
	CHECK(a->subnet_id && !strcmp(a->subnet_id, "subnet-0aa11bb22cc33dd44"), "subnet");
	CHECK(a->az && !strcmp(a->az, "eu-west-1a"), "az");
	CHECK(a->n_groups == 1 && !strcmp(a->groups[0], SG_S3), "ENI group");
	CHECK(app->n_groups == 1 && !strcmp(app->groups[0], SG_APP), "app ENI group");
	CHECK(a->ct.tcp_established == 0 && a->ct.udp_stream == 0 && a->ct.udp == 0, "ct defaults");
	CHECK_EQ(b->ct.tcp_established, 3600, "TcpEstablishedTimeout");
	CHECK_EQ(b->ct.udp_stream, 120, "UdpStreamTimeout");
	CHECK_EQ(b->ct.udp, 30, "UdpTimeout");

	/* security groups */
	CHECK_EQ(cfg.n_groups, 2, "two groups");
	g = epg_config_group(&cfg, SG_S3);
	gapp = epg_config_group(&cfg, SG_APP);
	CHECK(g && gapp, "group lookups");
	CHECK(!epg_config_group(&cfg, "sg-nope"), "unknown group lookup");
	if (!g || !gapp)
		goto out;
	CHECK(g->name && !strcmp(g->name, "s3-endpoint"), "group name");
	CHECK_EQ(g->n_in, 4, "inbound permissions");
	CHECK_EQ(g->n_out, 1, "outbound permissions");
	if (g->n_in == 4) {
		const struct epg_perm *p = g->in;

		CHECK(p[0].proto == 6 && p[0].from_port == 443 && p[0].to_port == 443, "tcp 443");
		CHECK_EQ(p[0].n_peers, 3, "tcp 443 peers");
		if (p[0].n_peers == 3) {
			CHECK(p[0].peers[0].kind == EPG_PEER_CIDR &&
			      !strcmp(cs(&p[0].peers[0].cidr), "10.20.0.0/16"), "IpRanges");
			CHECK(p[0].peers[1].kind == EPG_PEER_CIDR &&
			      !strcmp(cs(&p[0].peers[1].cidr), "2001:db8:20::/56"), "Ipv6Ranges");
			CHECK(p[0].peers[2].kind == EPG_PEER_GROUP &&
			      !strcmp(p[0].peers[2].ref_id, SG_APP), "UserIdGroupPairs");
			CHECK(!strcmp(p[0].peers[0].origin.path,
				      "SecurityGroups[0].IpPermissions[0].IpRanges[0].CidrIp"),
			      "peer origin %s", p[0].peers[0].origin.path);
			CHECK(!strcmp(p[0].peers[2].origin.path,
				      "SecurityGroups[0].IpPermissions[0].UserIdGroupPairs[0].GroupId"),
			      "peer origin %s", p[0].peers[2].origin.path);
			CHECK(ends_with(p[0].peers[0].origin.file, "security-groups.json"), "peer file");
		}
		CHECK(!strcmp(p[1].origin.path, "SecurityGroups[0].IpPermissions[1]"),
		      "perm origin %s", p[1].origin.path);
		CHECK(p[1].n_peers == 1 && p[1].peers[0].kind == EPG_PEER_PREFIX_LIST &&
		      !strcmp(p[1].peers[0].ref_id, PL), "prefix list peer");
		CHECK(p[2].proto == 1 && p[2].from_port == 3 && p[2].to_port == 4,
		      "icmp 3/4: %d %d %d", p[2].proto, p[2].from_port, p[2].to_port);
		CHECK(p[2].n_peers == 1 && !strcmp(cs(&p[2].peers[0].cidr), "0.0.0.0/0"), "icmp peer");
		CHECK(p[3].proto == 58 && p[3].from_port == -1 && p[3].to_port == -1,
		      "icmpv6 -1: %d %d %d", p[3].proto, p[3].from_port, p[3].to_port);
		CHECK(p[3].n_peers == 1 && !strcmp(cs(&p[3].peers[0].cidr), "::/0"), "icmpv6 peer");
	}
	if (g->n_out == 1)
		CHECK(g->out[0].proto == EPG_PROTO_ALL && g->out[0].from_port == -1 &&
		      g->out[0].to_port == -1 && g->out[0].n_peers == 2, "egress all");
	CHECK(gapp->n_in == 0 && gapp->in == NULL && gapp->n_out == 1, "app group");

	/* prefix list */
	CHECK_EQ(cfg.n_prefix_lists, 1, "one prefix list");
	pl = epg_config_prefix_list(&cfg, PL);
	CHECK(pl != NULL, "prefix list lookup");
	CHECK(!epg_config_prefix_list(&cfg, "pl-nope"), "unknown prefix list lookup");
	if (pl) {
		CHECK(pl->name && !strcmp(pl->name, "office-ranges"), "prefix list name");
		CHECK_EQ(pl->n_entries, 2, "prefix list entries");
		if (pl->n_entries == 2)
			CHECK(!strcmp(cs(&pl->entries[0]), "192.0.2.0/24") &&
			      !strcmp(cs(&pl->entries[1]), "198.51.100.64/26"), "entries %s %s",
			      cs(&pl->entries[0]), cs(&pl->entries[1]));
	}

	/* network ACLs: every '*' was given, so none is added */
	CHECK_EQ(cfg.n_acls, 2, "two ACLs");
	acl = acl_by_id(&cfg, "acl-0123abcd4567ef890");
	def = acl_by_id(&cfg, "acl-0fffeeeedddd00001");
	CHECK(acl && def, "ACLs found");
	if (!acl || !def)
		goto out;
	CHECK(!acl->is_default && def->is_default, "IsDefault");
	CHECK(acl->vpc_id && !strcmp(acl->vpc_id, "vpc-0a1b2c3d4e5f60718"), "ACL vpc");
	CHECK(acl->n_subnets == 1 && !strcmp(acl->subnets[0], "subnet-0aa11bb22cc33dd44"), "association");
	CHECK(def->n_subnets == 0, "default ACL has no associations");
	CHECK_EQ(acl->n_entries, 10, "ACL entries as given");
	CHECK_EQ(def->n_entries, 8, "default ACL entries as given");
	e = acl_entry(acl, false, AF_INET, 90);
	CHECK(e && !e->allow && e->proto == EPG_PROTO_ALL && e->port_from == -1 &&
	      !strcmp(cs(&e->cidr), "10.20.99.0/24"), "rule 90 deny");
	e = acl_entry(acl, false, AF_INET, 100);
	CHECK(e && e->allow && e->proto == 6 && e->port_from == 443 && e->port_to == 443 &&
	      e->icmp_type == -1, "rule 100 tcp 443");
	e = acl_entry(acl, false, AF_INET, 110);
	CHECK(e && e->allow && e->proto == 1 && e->icmp_type == 3 && e->icmp_code == 4 &&
	      e->port_from == -1, "rule 110 icmp 3/4");
	e = acl_entry(acl, false, AF_INET6, 120);
	CHECK(e && !strcmp(cs(&e->cidr), "2001:db8:20::/56"), "rule 120 IPv6");
	e = acl_entry(acl, true, AF_INET, 100);
	CHECK(e && e->egress && e->port_from == 1024 && e->port_to == 65535, "egress 100");
	e = acl_entry(acl, true, AF_INET6, 32768);
	CHECK(e && !e->allow && e->proto == EPG_PROTO_ALL && !strcmp(cs(&e->cidr), "::/0"),
	      "egress IPv6 '*'");
	CHECK(e && !strcmp(e->origin.path, "NetworkAcls[0].Entries[9]"), "entry origin");
out:
	epg_config_free(&cfg);
	CHECK(cfg_empty(&cfg), "free empties");
}

/* ------------------------------------------------------------------------ */

static void test_valid_buffers(void)
{
	struct epg_config cfg;
	struct epg_error err;
	const struct epg_group *g;
	const struct epg_acl *acl;
	const struct epg_acl_entry *e;
	int ret;

	/* exempt peers, as EC2 exempts them: Amazon DNS, metadata, time sync */
	ret = load1(&cfg,
		"{'EpgateSettings': {'ExemptPeers': [{'Cidr': '10.20.0.2/32', 'Description': 'Amazon DNS'},"
		" {'Cidr': '169.254.169.254/32'}, {'Cidr': 'fd00:ec2::254/128'}]}}", &err);
	CHECK_EQ(ret, 0, "exempt peers: %s", err.msg);
	CHECK(!ret && cfg.n_exempt == 3 && cfg.exempt[0].family == AF_INET && cfg.exempt[0].plen == 32 &&
	      cfg.exempt[0].addr[3] == 2 && cfg.exempt[2].family == AF_INET6 && cfg.exempt[2].plen == 128,
	      "exempt peers: three, with their families and lengths");
	epg_config_free(&cfg);

	/* CIDR canonical form; protocol spellings and their port rules */
	ret = load1(&cfg,
		"{'SecurityGroups': [{'GroupId': 'sg-1', 'GroupName': null, 'Unknown': {'x': [1]},"
		" 'IpPermissions': ["
		"  {'IpProtocol': 'tcp', 'FromPort': 22, 'ToPort': 22, 'IpRanges': ["
		"    {'CidrIp': '10.0.0.18/8'}, {'CidrIp': '10.255.255.255/9'},"
		"    {'CidrIp': '192.0.2.7/32'}, {'CidrIp': '203.0.113.9/0'}],"
		"   'Ipv6Ranges': [{'CidrIpv6': '2001:db8:ffff::1/33'}, {'CidrIpv6': '2001:DB8::1/128'}]},"
		"  {'IpProtocol': 'TCP', 'FromPort': -1, 'ToPort': -1},"
		"  {'IpProtocol': '17', 'FromPort': 53, 'ToPort': 53},"
		"  {'IpProtocol': '-1', 'FromPort': 5, 'ToPort': 10},"
		"  {'IpProtocol': '47', 'FromPort': 70000},"
		"  {'IpProtocol': 'icmpv6'},"
		"  {'IpProtocol': '58', 'FromPort': 128, 'ToPort': -1},"
		"  {'IpProtocol': 'ICMP', 'FromPort': -1, 'ToPort': -1},"
		"  {'IpProtocol': '1', 'FromPort': 8, 'ToPort': 0},"
		"  {'IpProtocol': '0', 'FromPort': 1, 'ToPort': 2}"
		" ]}]}", &err);
	CHECK_EQ(ret, 0, "%s", err.msg);
	g = ret ? NULL : epg_config_group(&cfg, "sg-1");
	CHECK(g && g->n_in == 10 && g->n_out == 0 && !g->name, "group parsed");
	if (g && g->n_in == 10) {
		const struct epg_perm *p = g->in;

		CHECK(p[0].n_peers == 6, "peers");
		if (p[0].n_peers == 6) {
			CHECK(!strcmp(cs(&p[0].peers[0].cidr), "10.0.0.0/8"), "%s", cs(&p[0].peers[0].cidr));
			CHECK(!strcmp(cs(&p[0].peers[1].cidr), "10.128.0.0/9"), "%s", cs(&p[0].peers[1].cidr));
			CHECK(!strcmp(cs(&p[0].peers[2].cidr), "192.0.2.7/32"), "%s", cs(&p[0].peers[2].cidr));
			CHECK(!strcmp(cs(&p[0].peers[3].cidr), "0.0.0.0/0"), "%s", cs(&p[0].peers[3].cidr));
			CHECK(!strcmp(cs(&p[0].peers[4].cidr), "2001:db8:8000::/33"), "%s", cs(&p[0].peers[4].cidr));
			CHECK(!strcmp(cs(&p[0].peers[5].cidr), "2001:db8::1/128"), "%s", cs(&p[0].peers[5].cidr));
			CHECK(p[0].peers[0].cidr.addr[1] == 0 && p[0].peers[0].cidr.addr[3] == 0,
			      "host bits cleared in the bytes too");
		}
		CHECK(p[1].proto == 6 && p[1].from_port == 0 && p[1].to_port == 65535, "tcp -1/-1 = all ports");
		CHECK(p[2].proto == 17 && p[2].from_port == 53 && p[2].to_port == 53, "\"17\" = udp");
		CHECK(p[3].proto == EPG_PROTO_ALL && p[3].from_port == -1 && p[3].to_port == -1, "-1 ignores ports");
		CHECK(p[4].proto == 47 && p[4].from_port == -1 && p[4].to_port == -1, "47 ignores ports");
		CHECK(p[5].proto == 58 && p[5].from_port == -1 && p[5].to_port == -1, "icmpv6 without range");
		CHECK(p[6].proto == 58 && p[6].from_port == 128 && p[6].to_port == -1, "icmpv6 128, all codes");
		CHECK(p[7].proto == 1 && p[7].from_port == -1 && p[7].to_port == -1, "ICMP all");
		CHECK(p[8].proto == 1 && p[8].from_port == 8 && p[8].to_port == 0, "icmp 8/0");
		CHECK(p[9].proto == 0 && p[9].from_port == -1, "protocol 0 (HOPOPT) ignores ports");
	}
	epg_config_free(&cfg);

	/* ACL without '*' entries: four are added; tcp without PortRange = all
	 * ports, icmp without IcmpTypeCode = all; protocol names accepted. */
	ret = load1(&cfg,
		"{'NetworkAcls': [{'NetworkAclId': 'acl-1', 'Entries': ["
		" {'RuleNumber': 10, 'Egress': false, 'RuleAction': 'ALLOW', 'Protocol': 'tcp', 'CidrBlock': '10.1.2.3/16'},"
		" {'RuleNumber': 20, 'Egress': false, 'RuleAction': 'deny', 'Protocol': '58', 'Ipv6CidrBlock': '::/0'},"
		" {'RuleNumber': 20, 'Egress': false, 'RuleAction': 'allow', 'Protocol': '1', 'CidrBlock': '0.0.0.0/0',"
		"  'IcmpTypeCode': {'Type': 0}},"
		" {'RuleNumber': 32767, 'Egress': true, 'RuleAction': 'deny', 'Protocol': '-1', 'CidrBlock': '0.0.0.0/0'}"
		"]}]}", &err);
	CHECK_EQ(ret, 0, "%s", err.msg);
	acl = ret ? NULL : acl_by_id(&cfg, "acl-1");
	CHECK(acl && acl->n_entries == 7, "4 given + 3 added: %zu", acl ? acl->n_entries : 0);
	if (acl) {
		CHECK(!acl->is_default && !acl->vpc_id && acl->n_subnets == 0, "defaults");
		e = acl_entry(acl, false, AF_INET, 10);
		CHECK(e && e->allow && e->proto == 6 && e->port_from == 0 && e->port_to == 65535 &&
		      !strcmp(cs(&e->cidr), "10.1.0.0/16"), "tcp without PortRange");
		e = acl_entry(acl, false, AF_INET6, 20);
		CHECK(e && !e->allow && e->proto == 58 && e->icmp_type == -1 && e->icmp_code == -1,
		      "icmpv6 without IcmpTypeCode");
		e = acl_entry(acl, false, AF_INET, 20);
		CHECK(e && e->icmp_type == 0 && e->icmp_code == -1, "icmp type 0, all codes");
		e = acl_entry(acl, false, AF_INET, 32767);
		CHECK(e && !e->allow && e->proto == EPG_PROTO_ALL && !strcmp(cs(&e->cidr), "0.0.0.0/0") &&
		      strstr(e->origin.path, "NetworkAcls[0].Entries") && strstr(e->origin.path, "32767"),
		      "added inbound IPv4 '*': %s", e ? e->origin.path : "");
		e = acl_entry(acl, false, AF_INET6, 32768);
		CHECK(e && !e->allow && !strcmp(cs(&e->cidr), "::/0"), "added inbound IPv6 '*'");
		e = acl_entry(acl, true, AF_INET6, 32768);
		CHECK(e && e->egress && !e->allow, "added outbound IPv6 '*'");
		e = acl_entry(acl, true, AF_INET, 32767);
		CHECK(e && !strcmp(e->origin.path, "NetworkAcls[0].Entries[3]"), "given outbound IPv4 '*' kept");
	}
	epg_config_free(&cfg);

	/* Merging: several keys in one document, arrays spread over buffers;
	 * a Gateway endpoint's references are not checked; Groups [] = use the
	 * interfaces' groups; an ENI's addresses are deduplicated. */
	{
		const char *docs[2] = {
			"{'SecurityGroups': [{'GroupId': 'sg-1'}],"
			" 'VpcEndpoints': [{'VpcEndpointId': 'vpce-1', 'ServiceName': 's', 'VpcEndpointType': 'Interface',"
			"   'NetworkInterfaceIds': ['eni-1'], 'Groups': []},"
			"  {'VpcEndpointId': 'vpce-2', 'ServiceName': 's', 'VpcEndpointType': 'gateway',"
			"   'NetworkInterfaceIds': ['eni-elsewhere'], 'Groups': [{'GroupId': 'sg-elsewhere'}]}]}",
			"{'NetworkInterfaces': [{'NetworkInterfaceId': 'eni-1', 'Groups': [{'GroupId': 'sg-1'}],"
			"   'PrivateIpAddress': '10.0.0.5', 'PrivateIpAddresses': [{'PrivateIpAddress': '10.0.0.5'},"
			"   {'PrivateIpAddress': '10.0.0.6'}], 'Ipv6Addresses': [{'Ipv6Address': '2001:db8::5'},"
			"   {'Ipv6Address': '2001:DB8:0::5'}], 'ConnectionTrackingConfiguration': {'UdpTimeout': 60}}],"
			" 'SecurityGroups': [{'GroupId': 'sg-2', 'IpPermissions': [{'IpProtocol': '-1',"
			"   'UserIdGroupPairs': [{'GroupId': 'sg-1'}, {'GroupId': 'sg-2'}]}]}]}",
		};
		const struct epg_eni *eni;

		ret = load_docs(&cfg, docs, 2, &err);
		CHECK_EQ(ret, 0, "%s", err.msg);
		CHECK(cfg.n_groups == 2 && cfg.n_endpoints == 2 && cfg.n_enis == 1, "merged");
		CHECK(cfg.n_endpoints == 2 && !cfg.endpoints[0].groups_present &&
		      cfg.endpoints[1].groups_present, "groups_present");
		CHECK(cfg.n_endpoints == 2 && epg_endpoint_is_interface(&cfg.endpoints[0]) &&
		      !epg_endpoint_is_interface(&cfg.endpoints[1]) &&
		      !strcmp(cfg.endpoints[1].type, "Gateway"), "type canonical: %s",
		      cfg.n_endpoints == 2 ? cfg.endpoints[1].type : "");
		eni = epg_config_eni(&cfg, "eni-1");
		CHECK(eni && eni->n_addrs == 3 && eni->ct.udp == 60 && eni->ct.udp_stream == 0,
		      "dedup + ct");
		g = epg_config_group(&cfg, "sg-2");
		CHECK(g && !strcmp(g->origin.file, "b.json") && !strcmp(g->origin.path, "SecurityGroups[0]"),
		      "origin of a merged group");
		epg_config_free(&cfg);
	}

	/* describe-prefix-lists' shape (Cidrs), and endpoints of the types
	 * that name no service (ServiceNetwork, Resource): accepted, the
	 * Cidrs are the list's entries */
	{
		const char *doc =
			"{'PrefixLists': [{'PrefixListId': 'pl-6ea54007', 'PrefixListName': 'com.amazonaws.us-east-1.s3',"
			"   'Cidrs': ['54.231.0.0/17', '2600:1f18::/33']}],"
			" 'VpcEndpoints': [{'VpcEndpointId': 'vpce-n', 'VpcEndpointType': 'ServiceNetwork',"
			"   'ServiceNetworkArn': 'arn:aws:vpc-lattice:us-east-1:111122223333:servicenetwork/sn-1'},"
			"  {'VpcEndpointId': 'vpce-r', 'VpcEndpointType': 'Resource',"
			"   'ResourceConfigurationArn': 'arn:aws:vpc-lattice:us-east-1:111122223333:resourceconfiguration/rcfg-1'}]}";
		const struct epg_prefix_list *pl;

		ret = load1(&cfg, doc, &err);
		CHECK_EQ(ret, 0, "Cidrs and service-less endpoints: %s", err.msg);
		pl = ret ? NULL : &cfg.prefix_lists[0];
		CHECK(pl && cfg.n_prefix_lists == 1 && pl->n_entries == 2 &&
		      pl->entries[0].family == AF_INET && pl->entries[0].plen == 17 &&
		      pl->entries[1].family == AF_INET6 && pl->entries[1].plen == 33,
		      "describe-prefix-lists' Cidrs are the list's entries");
		CHECK(!ret && cfg.n_endpoints == 2 && !cfg.endpoints[0].service &&
		      !epg_endpoint_is_interface(&cfg.endpoints[0]) &&
		      !strcmp(cfg.endpoints[1].type, "Resource"),
		      "ServiceNetwork and Resource endpoints load without a ServiceName");
		epg_config_free(&cfg);
		/* describe-managed-prefix-lists alone: every AWS-managed list,
		 * without entries; fine while no rule names one */
		ret = load1(&cfg, "{'PrefixLists': [{'PrefixListId': 'pl-63a5400a', 'PrefixListName': 'com.amazonaws.us-east-1.s3'},"
				  " {'PrefixListId': 'pl-1', 'Entries': [{'Cidr': '10.0.0.0/8'}]}],"
				  " 'SecurityGroups': [{'GroupId': 'sg-1', 'IpPermissions': [{'IpProtocol': '-1',"
				  " 'PrefixListIds': [{'PrefixListId': 'pl-1'}]}]}]}", &err);
		CHECK_EQ(ret, 0, "a list without entries that no rule names loads: %s", err.msg);
		epg_config_free(&cfg);
	}

	/* No documents: an empty configuration. */
	memset(&cfg, 0xa5, sizeof(cfg));
	ret = epg_config_load_buffers(&cfg, NULL, NULL, NULL, 0, &err);
	CHECK(ret == 0 && cfg_empty(&cfg), "no documents");
	epg_config_free(&cfg);
	epg_config_free(NULL);
}

/* ------------------------------------------------------------------------ */

struct bad_case {
	const char *name;
	const char *docs[2]; /* second NULL: one document, named t.json */
	const char *want;    /* substring of the message */
};

/* A valid security group for documents that need one. */
#define SG_OK "{'GroupId': 'sg-ok'}"
#define ACL_ENTRY(rest) \
	"{'NetworkAcls': [{'NetworkAclId': 'acl-1', 'Entries': [" rest "]}]}"
#define SG_PERM(perm) "{'SecurityGroups': [{'GroupId': 'sg-1', 'IpPermissions': [" perm "]}]}"
#define ENI(rest) "{'NetworkInterfaces': [{'NetworkInterfaceId': 'eni-1'" rest "}]}"

static const struct bad_case bad_cases[] = {
	/* documents */
	{ "syntax error", { "{\n  'SecurityGroups': [\n    {'GroupId': 'sg-1',}\n  ]\n}" },
	  "t.json:3:24: invalid JSON: " },
	{ "syntax error in the second buffer",
	  { "{'SecurityGroups': []}", "{'SecurityGroups': [\n\n  {'GroupId' 'sg-1'}]}" },
	  "b.json:3:19: invalid JSON: ':' expected near '\"sg-1\"'" },
	{ "empty input", { "" }, "t.json:1:0: invalid JSON: " },
	{ "trailing garbage", { "{'SecurityGroups': []} x" }, "t.json:1:24: invalid JSON: end of file expected" },
	{ "duplicate JSON key", { "{'SecurityGroups': [], 'SecurityGroups': []}" }, "duplicate object key" },
	{ "top level is an array", { "[{'SecurityGroups': []}]" },
	  "t.json: top level is an array (expected an object with VpcEndpoints" },
	{ "top level is a string", { "'SecurityGroups'" }, "t.json: top level is a string" },
	{ "no known key", { "{'Reservations': []}" }, "t.json: no known top-level key (expected VpcEndpoints" },
	{ "section not an array", { "{'SecurityGroups': {'GroupId': 'sg-1'}}" },
	  "t.json: SecurityGroups: expected an array, got an object" },
	{ "element not an object", { "{'SecurityGroups': [" SG_OK ", 'sg-2']}" },
	  "t.json: SecurityGroups[1]: expected an object, got a string" },

	/* security groups */
	{ "missing GroupId", { "{'SecurityGroups': [{'GroupName': 'x'}]}" },
	  "t.json: SecurityGroups[0].GroupId: required key is missing (expected a string)" },
	{ "GroupId wrong type", { "{'SecurityGroups': [{'GroupId': 5}]}" },
	  "t.json: SecurityGroups[0].GroupId: expected a string, got an integer" },
	{ "GroupId empty", { "{'SecurityGroups': [{'GroupId': ''}]}" },
	  "SecurityGroups[0].GroupId: empty string (expected a non-empty value)" },
	{ "IpPermissions not an array", { "{'SecurityGroups': [{'GroupId': 'sg-1', 'IpPermissions': {}}]}" },
	  "SecurityGroups[0].IpPermissions: expected an array, got an object" },
	{ "permission not an object", { "{'SecurityGroups': [{'GroupId': 'sg-1', 'IpPermissionsEgress': [true]}]}" },
	  "SecurityGroups[0].IpPermissionsEgress[0]: expected an object, got a boolean" },
	{ "missing IpProtocol", { SG_PERM("{'FromPort': 1, 'ToPort': 2}") },
	  "IpPermissions[0].IpProtocol: required key is missing" },
	{ "ToPort 70000",
	  { "{'SecurityGroups': [" SG_OK ", {'GroupId': 'sg-1', 'IpPermissions': ["
	    "{'IpProtocol': 'tcp', 'FromPort': 1, 'ToPort': 70000}]}]}" },
	  "t.json: SecurityGroups[1].IpPermissions[0].ToPort: 70000 is not a port (expected -1..65535)" },
	{ "FromPort -2", { SG_PERM("{'IpProtocol': 'udp', 'FromPort': -2, 'ToPort': 5}") },
	  "IpPermissions[0].FromPort: -2 is not a port (expected -1..65535)" },
	{ "FromPort > ToPort", { SG_PERM("{'IpProtocol': 'tcp', 'FromPort': 443, 'ToPort': 80}") },
	  "IpPermissions[0].FromPort: 443 is greater than ToPort 80 (expected FromPort <= ToPort)" },
	{ "port as a string", { SG_PERM("{'IpProtocol': 'tcp', 'FromPort': '80', 'ToPort': 80}") },
	  "IpPermissions[0].FromPort: expected an integer, got a string" },
	{ "port as a real", { SG_PERM("{'IpProtocol': 'tcp', 'FromPort': 80, 'ToPort': 80.5}") },
	  "IpPermissions[0].ToPort: expected an integer, got a real number" },
	{ "tcp without ports", { SG_PERM("{'IpProtocol': 'tcp'}") },
	  "IpPermissions[0]: IpProtocol tcp has no FromPort/ToPort (expected a port range 0..65535" },
	{ "udp with FromPort only", { SG_PERM("{'IpProtocol': 'udp', 'FromPort': 53}") },
	  "IpPermissions[0].ToPort: required key is missing (FromPort and ToPort come together)" },
	{ "tcp -1 with a port", { SG_PERM("{'IpProtocol': 'tcp', 'FromPort': -1, 'ToPort': 80}") },
	  "IpPermissions[0].FromPort: -1 (all ports) with ToPort 80 (expected both -1" },
	{ "unknown protocol name", { SG_PERM("{'IpProtocol': 'foo', 'FromPort': 1, 'ToPort': 2}") },
	  "IpPermissions[0].IpProtocol: \"foo\" is not a protocol (expected tcp, udp, icmp, icmpv6, -1 or a number 0..255)" },
	{ "protocol 256", { SG_PERM("{'IpProtocol': '256'}") },
	  "IpPermissions[0].IpProtocol: \"256\" is not a protocol" },
	{ "protocol -2", { SG_PERM("{'IpProtocol': '-2'}") }, "IpProtocol: \"-2\" is not a protocol" },
	{ "protocol as a number", { SG_PERM("{'IpProtocol': 6}") },
	  "IpPermissions[0].IpProtocol: expected a string, got an integer" },
	{ "icmp type -1 with code 3", { SG_PERM("{'IpProtocol': 'icmp', 'FromPort': -1, 'ToPort': 3}") },
	  "IpPermissions[0].ToPort: ICMP code 3 with FromPort -1 (expected -1: all types means all codes)" },
	{ "icmp type 300", { SG_PERM("{'IpProtocol': 'icmp', 'FromPort': 300, 'ToPort': -1}") },
	  "IpPermissions[0].FromPort: 300 is not an ICMP type (expected -1 for all types, or 0..255)" },
	{ "icmpv6 code 256", { SG_PERM("{'IpProtocol': 'icmpv6', 'FromPort': 1, 'ToPort': 256}") },
	  "IpPermissions[0].ToPort: 256 is not an ICMP code" },
	{ "icmp without a range", { SG_PERM("{'IpProtocol': 'icmp'}") },
	  "IpPermissions[0]: IpProtocol icmp has no FromPort/ToPort (expected ICMP type and code" },
	{ "icmpv6 with the type only", { SG_PERM("{'IpProtocol': '58', 'FromPort': 128}") },
	  "IpPermissions[0].ToPort: required key is missing (FromPort is the ICMP type" },
	{ "bad CIDR", { SG_PERM("{'IpProtocol': '-1', 'IpRanges': [{'CidrIp': '10.0.0.300/8'}]}") },
	  "IpPermissions[0].IpRanges[0].CidrIp: \"10.0.0.300/8\" is not an IPv4 CIDR (expected a.b.c.d/len)" },
	{ "CidrIp is IPv6", { SG_PERM("{'IpProtocol': '-1', 'IpRanges': [{'CidrIp': '2001:db8::/32'}]}") },
	  "IpRanges[0].CidrIp: \"2001:db8::/32\" is an IPv6 CIDR, not an IPv4 CIDR (expected a.b.c.d/len)" },
	{ "CidrIpv6 is IPv4",
	  { SG_PERM("{'IpProtocol': '-1', 'Ipv6Ranges': [{'CidrIpv6': '::/0'}, {'CidrIpv6': '10.0.0.0/8'}]}") },
	  "Ipv6Ranges[1].CidrIpv6: \"10.0.0.0/8\" is an IPv4 CIDR, not an IPv6 CIDR (expected x:x::x/len)" },
	{ "bare address", { SG_PERM("{'IpProtocol': '-1', 'IpRanges': [{'CidrIp': '10.0.0.1'}]}") },
	  "IpRanges[0].CidrIp: \"10.0.0.1\" has no prefix length (expected a.b.c.d/len)" },
	{ "prefix length 33", { SG_PERM("{'IpProtocol': '-1', 'IpRanges': [{'CidrIp': '10.0.0.0/33'}]}") },
	  "IpRanges[0].CidrIp: \"10.0.0.0/33\" has a bad prefix length (expected a.b.c.d/len, len 0..32)" },
	{ "prefix length not a number", { SG_PERM("{'IpProtocol': '-1', 'IpRanges': [{'CidrIp': '10.0.0.0/+8'}]}") },
	  "\"10.0.0.0/+8\" has a bad prefix length" },
	{ "IPv6 prefix length 129", { SG_PERM("{'IpProtocol': '-1', 'Ipv6Ranges': [{'CidrIpv6': '::/129'}]}") },
	  "Ipv6Ranges[0].CidrIpv6: \"::/129\" has a bad prefix length (expected x:x::x/len, len 0..128)" },
	{ "CIDR with a space", { SG_PERM("{'IpProtocol': '-1', 'IpRanges': [{'CidrIp': ' 10.0.0.0/8'}]}") },
	  "\" 10.0.0.0/8\" is not an IPv4 CIDR" },
	{ "IpRanges element without CidrIp", { SG_PERM("{'IpProtocol': '-1', 'IpRanges': [{'Description': 'x'}]}") },
	  "IpPermissions[0].IpRanges[0].CidrIp: required key is missing" },
	{ "UserIdGroupPairs without GroupId", { SG_PERM("{'IpProtocol': '-1', 'UserIdGroupPairs': [{'UserId': '1'}]}") },
	  "UserIdGroupPairs[0].GroupId: required key is missing" },
	{ "control characters are not echoed", { SG_PERM("{'IpProtocol': 'tc\\u001bp'}") },
	  "\"tc?p\" is not a protocol" },

	/* references and duplicates */
	{ "unknown group in UserIdGroupPairs",
	  { SG_PERM("{'IpProtocol': '-1', 'UserIdGroupPairs': [{'GroupId': 'sg-1'}, {'GroupId': 'sg-nope'}]}") },
	  "t.json: SecurityGroups[0].IpPermissions[0].UserIdGroupPairs[1].GroupId: security group sg-nope is not in the documents (expected a SecurityGroups entry with that GroupId)" },
	{ "unknown prefix list",
	  { SG_PERM("{'IpProtocol': '-1', 'PrefixListIds': [{'PrefixListId': 'pl-nope'}]}") },
	  "SecurityGroups[0].IpPermissions[0].PrefixListIds[0].PrefixListId: prefix list pl-nope is not in the documents (expected a PrefixLists entry" },
	{ "unknown ENI in an Interface endpoint",
	  { "{'VpcEndpoints': [{'VpcEndpointId': 'vpce-1', 'ServiceName': 's', 'VpcEndpointType': 'Interface',"
	    " 'NetworkInterfaceIds': ['eni-nope']}]}" },
	  "t.json: VpcEndpoints[0].NetworkInterfaceIds[0]: network interface eni-nope is not in the documents (expected a NetworkInterfaces entry" },
	{ "unknown group in an interface endpoint (any case)",
	  { "{'VpcEndpoints': [{'VpcEndpointId': 'vpce-1', 'ServiceName': 's', 'VpcEndpointType': 'INTERFACE',"
	    " 'Groups': [{'GroupId': 'sg-nope'}]}]}" },
	  "t.json: VpcEndpoints[0].Groups[0].GroupId: security group sg-nope is not in the documents" },
	{ "unknown group of an ENI", { ENI(", 'Groups': [{'GroupName': 'x', 'GroupId': 'sg-gone'}]") },
	  "t.json: NetworkInterfaces[0].Groups[0].GroupId: security group sg-gone is not in the documents" },
	{ "duplicate GroupId across buffers",
	  { "{'SecurityGroups': [" SG_OK ", {'GroupId': 'sg-x'}]}", "{'SecurityGroups': [{'GroupId': 'sg-x'}]}" },
	  "b.json: SecurityGroups[0].GroupId: duplicate GroupId sg-x (also at a.json: SecurityGroups[1].GroupId)" },
	{ "duplicate NetworkInterfaceId", { "{'NetworkInterfaces': [{'NetworkInterfaceId': 'eni-1'}, {'NetworkInterfaceId': 'eni-1'}]}" },
	  "t.json: NetworkInterfaces[1].NetworkInterfaceId: duplicate NetworkInterfaceId eni-1 (also at t.json: NetworkInterfaces[0].NetworkInterfaceId)" },
	{ "duplicate PrefixListId",
	  { "{'PrefixLists': [{'PrefixListId': 'pl-1', 'Entries': []}]}",
	    "{'PrefixLists': [{'PrefixListId': 'pl-1', 'Entries': []}]}" },
	  "b.json: PrefixLists[0].PrefixListId: duplicate PrefixListId pl-1 (also at a.json" },
	{ "a rule naming a prefix list without its addresses",
	  { "{'PrefixLists': [{'PrefixListId': 'pl-1', 'PrefixListName': 'x'}],"
	    " 'SecurityGroups': [{'GroupId': 'sg-1', 'IpPermissions': [{'IpProtocol': '-1',"
	    " 'PrefixListIds': [{'PrefixListId': 'pl-1'}]}]}]}" },
	  "t.json: SecurityGroups[0].IpPermissions[0].PrefixListIds[0].PrefixListId: prefix list pl-1 (t.json: PrefixLists[0]) has neither Entries nor Cidrs: this rule would match nothing" },
	{ "prefix list Cidrs entry not a CIDR", { "{'PrefixLists': [{'PrefixListId': 'pl-1', 'Cidrs': ['54.231.0.0/17', 'x']}]}" },
	  "t.json: PrefixLists[0].Cidrs[1]: \"x\" is not a CIDR" },
	{ "one page of a paginated answer", { "{'SecurityGroups': [{'GroupId': 'sg-1'}], 'NextToken': 'eyJ2IjoiMiJ9'}" },
	  "t.json: NextToken: this is one page of a longer answer" },
	{ "Interface endpoint without ServiceName", { "{'VpcEndpoints': [{'VpcEndpointId': 'vpce-1', 'VpcEndpointType': 'Interface'}]}" },
	  "t.json: VpcEndpoints[0].ServiceName: required key is missing" },
	{ "duplicate VpcEndpointId",
	  { "{'VpcEndpoints': [{'VpcEndpointId': 'vpce-1', 'ServiceName': 's', 'VpcEndpointType': 'Gateway'},"
	    " {'VpcEndpointId': 'vpce-1', 'ServiceName': 's', 'VpcEndpointType': 'Gateway'}]}" },
	  "VpcEndpoints[1].VpcEndpointId: duplicate VpcEndpointId vpce-1" },
	{ "duplicate NetworkAclId", { "{'NetworkAcls': [{'NetworkAclId': 'acl-1'}, {'NetworkAclId': 'acl-1'}]}" },
	  "NetworkAcls[1].NetworkAclId: duplicate NetworkAclId acl-1" },
	{ "ENI named by two Interface endpoints",
	  { "{'NetworkInterfaces': [{'NetworkInterfaceId': 'eni-1'}], 'VpcEndpoints': ["
	    "{'VpcEndpointId': 'vpce-1', 'ServiceName': 's', 'VpcEndpointType': 'Interface', 'NetworkInterfaceIds': ['eni-1']},"
	    "{'VpcEndpointId': 'vpce-2', 'ServiceName': 's', 'VpcEndpointType': 'Interface', 'NetworkInterfaceIds': ['eni-1']}]}" },
	  "t.json: VpcEndpoints[1].NetworkInterfaceIds[0]: network interface eni-1 is also named by endpoint vpce-1 at t.json: VpcEndpoints[0].NetworkInterfaceIds[0]" },
	{ "a long id is cut in the message",
	  { SG_PERM("{'IpProtocol': '-1', 'UserIdGroupPairs': [{'GroupId': 'sg-"
		    "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789'}]}") },
	  "security group sg-0123456789012345678901234567890123456789012345678901234567890123456789012... is not in the documents" },

	/* endpoints */
	{ "endpoint without type", { "{'VpcEndpoints': [{'VpcEndpointId': 'vpce-1', 'ServiceName': 's'}]}" },
	  "VpcEndpoints[0].VpcEndpointType: required key is missing" },
	{ "NetworkInterfaceIds element not a string",
	  { "{'VpcEndpoints': [{'VpcEndpointId': 'vpce-1', 'ServiceName': 's', 'VpcEndpointType': 'Interface',"
	    " 'NetworkInterfaceIds': [{'NetworkInterfaceId': 'eni-1'}]}]}" },
	  "VpcEndpoints[0].NetworkInterfaceIds[0]: expected a string, got an object" },
	{ "PolicyDocument not a string",
	  { "{'VpcEndpoints': [{'VpcEndpointId': 'vpce-1', 'ServiceName': 's', 'VpcEndpointType': 'Gateway',"
	    " 'PolicyDocument': {'Version': '2012-10-17'}}]}" },
	  "VpcEndpoints[0].PolicyDocument: expected a string, got an object" },

	/* network interfaces */
	{ "ENI without id", { "{'NetworkInterfaces': [{'PrivateIpAddress': '10.0.0.1'}]}" },
	  "NetworkInterfaces[0].NetworkInterfaceId: required key is missing" },
	{ "PrivateIpAddress is IPv6", { ENI(", 'PrivateIpAddress': '2001:db8::1'") },
	  "NetworkInterfaces[0].PrivateIpAddress: \"2001:db8::1\" is an IPv6 address, not an IPv4 address (expected a.b.c.d)" },
	{ "PrivateIpAddress with a length", { ENI(", 'PrivateIpAddresses': [{'PrivateIpAddress': '10.0.0.1/32'}]") },
	  "NetworkInterfaces[0].PrivateIpAddresses[0].PrivateIpAddress: \"10.0.0.1/32\" has a prefix length (expected a bare address a.b.c.d)" },
	{ "Ipv6Address is IPv4", { ENI(", 'Ipv6Addresses': [{'Ipv6Address': '10.0.0.1'}]") },
	  "NetworkInterfaces[0].Ipv6Addresses[0].Ipv6Address: \"10.0.0.1\" is an IPv4 address, not an IPv6 address (expected x:x::x)" },
	{ "TcpEstablishedTimeout too small", { ENI(", 'ConnectionTrackingConfiguration': {'TcpEstablishedTimeout': 30}") },
	  "NetworkInterfaces[0].ConnectionTrackingConfiguration.TcpEstablishedTimeout: 30 is not a valid timeout (expected 60..432000 seconds)" },
	{ "UdpStreamTimeout too large", { ENI(", 'ConnectionTrackingConfiguration': {'UdpStreamTimeout': 181}") },
	  "ConnectionTrackingConfiguration.UdpStreamTimeout: 181 is not a valid timeout (expected 60..180 seconds)" },
	{ "UdpTimeout too large", { ENI(", 'ConnectionTrackingConfiguration': {'UdpTimeout': 61}") },
	  "ConnectionTrackingConfiguration.UdpTimeout: 61 is not a valid timeout (expected 30..60 seconds)" },
	{ "ConnectionTrackingConfiguration not an object", { ENI(", 'ConnectionTrackingConfiguration': [60]") },
	  "NetworkInterfaces[0].ConnectionTrackingConfiguration: expected an object, got an array" },

	/* prefix lists */
	{ "prefix list entry not a CIDR", { "{'PrefixLists': [{'PrefixListId': 'pl-1', 'Entries': [{'Cidr': 'office'}]}]}" },
	  "PrefixLists[0].Entries[0].Cidr: \"office\" is not a CIDR (expected a.b.c.d/len or x:x::x/len)" },
	{ "prefix list entry without a length", { "{'PrefixLists': [{'PrefixListId': 'pl-1', 'Entries': [{'Cidr': '2001:db8::'}]}]}" },
	  "PrefixLists[0].Entries[0].Cidr: \"2001:db8::\" has no prefix length" },

	/* network ACLs */
	{ "ACL rule number 0", { ACL_ENTRY("{'RuleNumber': 0, 'Egress': false, 'RuleAction': 'allow', 'Protocol': '-1', 'CidrBlock': '0.0.0.0/0'}") },
	  "t.json: NetworkAcls[0].Entries[0].RuleNumber: 0 is not a rule number (expected 1..32766, or 32767/32768 for the '*' entries)" },
	{ "ACL rule number 32769", { ACL_ENTRY("{'RuleNumber': 32769, 'Egress': true, 'RuleAction': 'allow', 'Protocol': '-1', 'CidrBlock': '0.0.0.0/0'}") },
	  "NetworkAcls[0].Entries[0].RuleNumber: 32769 is not a rule number" },
	{ "duplicate ACL rule number",
	  { ACL_ENTRY("{'RuleNumber': 100, 'Egress': true, 'RuleAction': 'allow', 'Protocol': '-1', 'CidrBlock': '10.0.0.0/8'},"
		      "{'RuleNumber': 100, 'Egress': false, 'RuleAction': 'allow', 'Protocol': '-1', 'CidrBlock': '10.0.0.0/8'},"
		      "{'RuleNumber': 100, 'Egress': false, 'RuleAction': 'allow', 'Protocol': '-1', 'Ipv6CidrBlock': '::/0'},"
		      "{'RuleNumber': 100, 'Egress': false, 'RuleAction': 'deny', 'Protocol': '6', 'CidrBlock': '0.0.0.0/0'}") },
	  "t.json: NetworkAcls[0].Entries[3].RuleNumber: duplicate rule number 100 for inbound IPv4 entries (also at NetworkAcls[0].Entries[1].RuleNumber)" },
	{ "ACL '*' 32767 that allows",
	  { ACL_ENTRY("{'RuleNumber': 32767, 'Egress': false, 'RuleAction': 'allow', 'Protocol': '-1', 'CidrBlock': '0.0.0.0/0'}") },
	  "NetworkAcls[0].Entries[0].RuleNumber: 32767 is the IPv4 '*' entry (expected deny, Protocol -1, CidrBlock 0.0.0.0/0)" },
	{ "ACL '*' 32768 on IPv4",
	  { ACL_ENTRY("{'RuleNumber': 32768, 'Egress': false, 'RuleAction': 'deny', 'Protocol': '-1', 'CidrBlock': '0.0.0.0/0'}") },
	  "NetworkAcls[0].Entries[0].RuleNumber: 32768 is the IPv6 '*' entry" },
	{ "ACL entry with both CIDRs",
	  { ACL_ENTRY("{'RuleNumber': 1, 'Egress': false, 'RuleAction': 'deny', 'Protocol': '-1', 'CidrBlock': '0.0.0.0/0', 'Ipv6CidrBlock': '::/0'}") },
	  "NetworkAcls[0].Entries[0]: has both CidrBlock and Ipv6CidrBlock (expected exactly one)" },
	{ "ACL entry without a CIDR", { ACL_ENTRY("{'RuleNumber': 1, 'Egress': false, 'RuleAction': 'deny', 'Protocol': '-1'}") },
	  "NetworkAcls[0].Entries[0]: has neither CidrBlock nor Ipv6CidrBlock (expected exactly one)" },
	{ "ACL Ipv6CidrBlock is IPv4",
	  { ACL_ENTRY("{'RuleNumber': 1, 'Egress': false, 'RuleAction': 'deny', 'Protocol': '-1', 'Ipv6CidrBlock': '10.0.0.0/8'}") },
	  "NetworkAcls[0].Entries[0].Ipv6CidrBlock: \"10.0.0.0/8\" is an IPv4 CIDR, not an IPv6 CIDR" },
	{ "ACL RuleAction permit", { ACL_ENTRY("{'RuleNumber': 1, 'Egress': false, 'RuleAction': 'permit', 'Protocol': '-1', 'CidrBlock': '0.0.0.0/0'}") },
	  "NetworkAcls[0].Entries[0].RuleAction: \"permit\" is not a rule action (expected allow or deny)" },
	{ "ACL Protocol abc", { ACL_ENTRY("{'RuleNumber': 1, 'Egress': false, 'RuleAction': 'deny', 'Protocol': 'abc', 'CidrBlock': '0.0.0.0/0'}") },
	  "NetworkAcls[0].Entries[0].Protocol: \"abc\" is not a protocol (expected -1, a number 0..255, or tcp, udp, icmp, icmpv6)" },
	{ "ACL Egress missing", { ACL_ENTRY("{'RuleNumber': 1, 'RuleAction': 'deny', 'Protocol': '-1', 'CidrBlock': '0.0.0.0/0'}") },
	  "NetworkAcls[0].Entries[0].Egress: required key is missing (expected true or false)" },
	{ "ACL Egress a string", { ACL_ENTRY("{'RuleNumber': 1, 'Egress': 'false', 'RuleAction': 'deny', 'Protocol': '-1', 'CidrBlock': '0.0.0.0/0'}") },
	  "NetworkAcls[0].Entries[0].Egress: expected true or false, got a string" },
	{ "ACL RuleNumber missing", { ACL_ENTRY("{'Egress': false, 'RuleAction': 'deny', 'Protocol': '-1', 'CidrBlock': '0.0.0.0/0'}") },
	  "NetworkAcls[0].Entries[0].RuleNumber: required key is missing (expected an integer)" },
	{ "ACL PortRange From > To",
	  { ACL_ENTRY("{'RuleNumber': 1, 'Egress': false, 'RuleAction': 'allow', 'Protocol': '6', 'CidrBlock': '0.0.0.0/0', 'PortRange': {'From': 90, 'To': 80}}") },
	  "NetworkAcls[0].Entries[0].PortRange.From: 90 is greater than To 80 (expected From <= To)" },
	{ "ACL PortRange To 70000",
	  { ACL_ENTRY("{'RuleNumber': 1, 'Egress': false, 'RuleAction': 'allow', 'Protocol': '17', 'CidrBlock': '0.0.0.0/0', 'PortRange': {'From': 1, 'To': 70000}}") },
	  "NetworkAcls[0].Entries[0].PortRange.To: 70000 is not a port (expected 0..65535)" },
	{ "ACL PortRange without To",
	  { ACL_ENTRY("{'RuleNumber': 1, 'Egress': false, 'RuleAction': 'allow', 'Protocol': '6', 'CidrBlock': '0.0.0.0/0', 'PortRange': {'From': 1}}") },
	  "NetworkAcls[0].Entries[0].PortRange.To: required key is missing" },
	{ "ACL icmp type -1 with code 3",
	  { ACL_ENTRY("{'RuleNumber': 1, 'Egress': false, 'RuleAction': 'allow', 'Protocol': '1', 'CidrBlock': '0.0.0.0/0', 'IcmpTypeCode': {'Type': -1, 'Code': 3}}") },
	  "NetworkAcls[0].Entries[0].IcmpTypeCode.Code: ICMP code 3 with Type -1" },
	{ "ACL entries not an array", { "{'NetworkAcls': [{'NetworkAclId': 'acl-1', 'Entries': 'none'}]}" },
	  "NetworkAcls[0].Entries: expected an array, got a string" },
	{ "ACL IsDefault not a boolean", { "{'NetworkAcls': [{'NetworkAclId': 'acl-1', 'IsDefault': 1}]}" },
	  "NetworkAcls[0].IsDefault: expected true or false, got an integer" },
	{ "association without SubnetId", { "{'NetworkAcls': [{'NetworkAclId': 'acl-1', 'Associations': [{'NetworkAclId': 'acl-1'}]}]}" },
	  "NetworkAcls[0].Associations[0].SubnetId: required key is missing" },
	{ "two default ACLs in one VPC",
	  { "{'NetworkAcls': [{'NetworkAclId': 'acl-1', 'VpcId': 'vpc-1', 'IsDefault': true},"
	    " {'NetworkAclId': 'acl-2', 'VpcId': 'vpc-2', 'IsDefault': true}]}",
	    "{'NetworkAcls': [{'NetworkAclId': 'acl-3', 'VpcId': 'vpc-1', 'IsDefault': true}]}" },
	  "b.json: NetworkAcls[0].IsDefault: a second default network ACL for VPC vpc-1 (the other is acl-1 at a.json: NetworkAcls[0]; expected one per VPC)" },
	{ "subnet associated with two ACLs",
	  { "{'NetworkAcls': [{'NetworkAclId': 'acl-1', 'Associations': [{'SubnetId': 'subnet-1'}, {'SubnetId': 'subnet-2'}]},"
	    " {'NetworkAclId': 'acl-2', 'Associations': [{'SubnetId': 'subnet-2'}]}]}" },
	  "t.json: NetworkAcls[1].Associations[0].SubnetId: subnet subnet-2 is also associated with network ACL acl-1 at t.json: NetworkAcls[0].Associations[1].SubnetId (expected one ACL per subnet)" },
	/* EpgateSettings.ExemptPeers */
	{ "exempt peers not a list", { "{'EpgateSettings': {'ExemptPeers': {'Cidr': '10.0.0.2/32'}}}" },
	  "t.json: EpgateSettings.ExemptPeers: expected an array, got an object" },
	{ "exempt peer without prefix length", { "{'EpgateSettings': {'ExemptPeers': [{'Cidr': '10.0.0.2/32'}, {'Cidr': '10.0.0.2'}]}}" },
	  "t.json: EpgateSettings.ExemptPeers[1].Cidr: \"10.0.0.2\" has no prefix length" },
	{ "exempt peer description not a string", { "{'EpgateSettings': {'ExemptPeers': [{'Cidr': 'fd00:ec2::254/128', 'Description': 5}]}}" },
	  "t.json: EpgateSettings.ExemptPeers[0].Description: expected a string" },
};

static void test_invalid(void)
{
	static char msgs[sizeof(bad_cases) / sizeof(bad_cases[0])][sizeof(((struct epg_error *)0)->msg)];
	size_t n = sizeof(bad_cases) / sizeof(bad_cases[0]), i, j, shared = 0;

	for (i = 0; i < n; i++) {
		const struct bad_case *t = &bad_cases[i];
		struct epg_config cfg;
		struct epg_error err;
		int ret;

		memset(&cfg, 0x5a, sizeof(cfg)); /* an output: never read */
		memset(&err, 0, sizeof(err));
		ret = load_docs(&cfg, t->docs, t->docs[1] ? 2 : 1, &err);
		CHECK_EQ(ret, -EINVAL, "%s: %s", t->name, err.msg);
		CHECK(strstr(err.msg, t->want) != NULL, "%s:\n  got  %s\n  want %s",
		      t->name, err.msg, t->want);
		CHECK(cfg_empty(&cfg), "%s: cfg left empty", t->name);
		snprintf(msgs[i], sizeof(msgs[i]), "%s", err.msg);
		if (getenv("EPG_TEST_VERBOSE"))
			fprintf(stderr, "  %-40s %s\n", t->name, err.msg);
	}
	/* every invalid case has its own message */
	for (i = 0; i < n; i++) {
		for (j = i + 1; j < n; j++) {
			if (strcmp(msgs[i], msgs[j]))
				continue;
			shared++;
			fprintf(stderr, "cases \"%s\" and \"%s\" share a message: %s\n",
				bad_cases[i].name, bad_cases[j].name, msgs[i]);
		}
	}
	CHECK_EQ(shared, 0, "distinct messages");
}

/* ------------------------------------------------------------------------ */

/*
 * Every value of every example document, replaced by each of a set of wrong
 * values or deleted: the load either succeeds (the key was optional, or the
 * value happens to be valid) or fails with -EINVAL, a message that starts
 * with a file name, and an empty cfg. Under ASan this walks the error and
 * free paths from every point of a partly built config.
 */
#define MUT_DELETE ((json_t *)1)

/* Apply the target-th mutation point under v; *k counts points. */
static bool mutate(json_t *v, size_t target, size_t *k, json_t *with)
{
	const char *key;
	json_t *child;
	size_t i;

	if (json_is_object(v)) {
		json_object_foreach(v, key, child) {
			if ((*k)++ == target) {
				if (with == MUT_DELETE)
					json_object_del(v, key);
				else
					json_object_set(v, key, with);
				return true;
			}
			if (mutate(child, target, k, with))
				return true;
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, child) {
			if ((*k)++ == target) {
				if (with == MUT_DELETE)
					json_array_remove(v, i);
				else
					json_array_set(v, i, with);
				return true;
			}
			if (mutate(child, target, k, with))
				return true;
		}
	}
	return false;
}

static void test_mutations(void)
{
	char paths[5][512];
	const char *files[5];
	json_t *docs[5], *with[11];
	size_t d, w, nw = 0, loads = 0, ok = 0, bad = 0;
	json_error_t jerr;

	example_paths(paths, files);
	for (d = 0; d < 5; d++) {
		docs[d] = json_load_file(files[d], 0, &jerr);
		CHECK(docs[d] != NULL, "%s: %s", files[d], jerr.text);
		if (!docs[d])
			return;
	}
	with[nw++] = MUT_DELETE;
	with[nw++] = json_null();
	with[nw++] = json_integer(0);
	with[nw++] = json_integer(-1);
	with[nw++] = json_integer(70000);
	with[nw++] = json_string("x");
	with[nw++] = json_string("10.0.0.0/8");
	with[nw++] = json_array();
	with[nw++] = json_object();
	with[nw++] = json_true();
	with[nw++] = json_pack("[{}]");

	for (d = 0; d < 5; d++) {
		size_t target;

		for (target = 0;; target++) {
			bool more = false;

			for (w = 0; w < nw; w++) {
				char *bufs[5];
				size_t lens[5], i, k = 0;
				json_t *copy = json_deep_copy(docs[d]);
				struct epg_config cfg;
				struct epg_error err;
				int ret;

				if (!mutate(copy, target, &k, with[w])) {
					json_decref(copy);
					break;
				}
				more = true;
				for (i = 0; i < 5; i++) {
					bufs[i] = json_dumps(i == d ? copy : docs[i], 0);
					lens[i] = bufs[i] ? strlen(bufs[i]) : 0;
				}
				json_decref(copy);
				memset(&err, 0, sizeof(err));
				ret = epg_config_load_buffers(&cfg, example_names,
							      (const char *const *)bufs, lens, 5, &err);
				loads++;
				if (ret == 0) {
					ok++;
					epg_config_free(&cfg);
				} else if (ret == -EINVAL && cfg_empty(&cfg) && err.msg[0]) {
					bool named = false;

					for (i = 0; i < 5; i++)
						named |= !strncmp(err.msg, example_names[i],
								  strlen(example_names[i]));
					if (named)
						bad++;
					else
						fprintf(stderr, "mutation %zu/%zu/%zu: unnamed: %s\n",
							d, target, w, err.msg);
				} else {
					fprintf(stderr, "mutation %zu/%zu/%zu: ret %d, empty %d: %s\n",
						d, target, w, ret, cfg_empty(&cfg), err.msg);
				}
				for (i = 0; i < 5; i++)
					free(bufs[i]);
			}
			if (!more)
				break;
		}
	}
	CHECK_EQ(ok + bad, loads, "every mutation loads or fails cleanly");
	CHECK(loads > 1000 && ok > 0 && bad > 0, "mutations: %zu loads, %zu ok, %zu rejected",
	      loads, ok, bad);
	if (getenv("EPG_TEST_VERBOSE"))
		fprintf(stderr, "mutations: %zu loads, %zu ok, %zu rejected\n", loads, ok, bad);
	for (w = 1; w < nw; w++)
		json_decref(with[w]);
	for (d = 0; d < 5; d++)
		json_decref(docs[d]);
}

/* ------------------------------------------------------------------------ */

static void test_files(void)
{
	char big[] = "/tmp/epg_test_config_XXXXXX";
	const char *files[2];
	struct epg_config cfg;
	struct epg_error err;
	int ret, fd;

	files[0] = "/nonexistent/epg/sg.json";
	ret = epg_config_load_files(&cfg, files, 1, &err);
	CHECK_EQ(ret, -ENOENT, "%s", err.msg);
	CHECK(strstr(err.msg, "/nonexistent/epg/sg.json: cannot open: ") != NULL, "%s", err.msg);
	CHECK(cfg_empty(&cfg), "empty after ENOENT");

	files[0] = "/";
	ret = epg_config_load_files(&cfg, files, 1, &err);
	CHECK_EQ(ret, -EISDIR, "%s", err.msg);
	CHECK(strstr(err.msg, "/: cannot read: ") != NULL, "%s", err.msg);

	/* A sparse file just over the limit: refused without reading it. */
	fd = mkstemp(big);
	CHECK(fd >= 0, "mkstemp");
	if (fd < 0)
		return;
	ret = ftruncate(fd, EPG_CONFIG_MAX_FILE + 1);
	CHECK_EQ(ret, 0, "ftruncate");
	files[0] = big;
	ret = epg_config_load_files(&cfg, files, 1, &err);
	CHECK_EQ(ret, -EINVAL, "%s", err.msg);
	CHECK(strstr(err.msg, ": larger than 64 MiB") && strstr(err.msg, big), "%s", err.msg);
	CHECK(cfg_empty(&cfg), "empty after a too large file");

	/* A valid file, then a broken one: nothing is applied. */
	{
		static const char doc[] = "{\"SecurityGroups\": [{\"GroupId\": \"sg-1\"}]}\n";

		ret = ftruncate(fd, 0);
		CHECK_EQ(ret, 0, "ftruncate");
		CHECK_EQ(pwrite(fd, doc, sizeof(doc) - 1, 0), (long long)sizeof(doc) - 1, "write");
		ret = epg_config_load_files(&cfg, files, 1, &err);
		CHECK_EQ(ret, 0, "%s", err.msg);
		CHECK(cfg.n_groups == 1 && !strcmp(cfg.groups[0].origin.file, big), "loaded from file");
		epg_config_free(&cfg);

		files[1] = "/nonexistent/epg/acl.json";
		ret = epg_config_load_files(&cfg, files, 2, &err);
		CHECK_EQ(ret, -ENOENT, "%s", err.msg);
		CHECK(cfg_empty(&cfg), "empty when the second file fails");
	}
	close(fd);
	unlink(big);
}

static void test_cidr_str(void)
{
	struct epg_cidr c = { .family = AF_INET, .plen = 8, .addr = { 10 } };
	char buf[EPG_CIDR_STRLEN], small[6];

	CHECK(!strcmp(epg_cidr_str(&c, buf, sizeof(buf)), "10.0.0.0/8"), "%s", buf);
	CHECK(epg_cidr_str(&c, small, sizeof(small)) == small && strlen(small) == 5, "truncated");
	c.family = AF_INET6;
	c.plen = 128;
	memset(c.addr, 0xff, sizeof(c.addr));
	CHECK(!strcmp(epg_cidr_str(&c, buf, sizeof(buf)),
		      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"), "%s", buf);
	c.family = 0;
	CHECK(!strcmp(epg_cidr_str(&c, buf, sizeof(buf)), "(invalid)"), "%s", buf);
}

/* ---- quotas: checked and reported (warnings), never enforced ------------- */

/* n host CIDRs, "10.F.x.y/32" (or fd00:F::x/128), comma-separated, quoted */
static void hosts(char *out, size_t cap, int n, bool v6, int f)
{
	size_t len = 0;

	out[0] = '\0';
	for (int i = 0; i < n && len < cap; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s{'%s': '%s%d%s%d%s'}", i ? ", " : "",
					v6 ? "CidrIpv6" : "CidrIp", v6 ? "fd00:" : "10.", f,
					v6 ? "::" : ".0.", i + 1, v6 ? "/128" : "/32");
}

/* Compile doc; its warnings, joined by newlines, into out. */
static size_t warnings_of(const char *doc, char *out, size_t cap)
{
	struct epg_config cfg;
	struct epg_plan plan;
	struct epg_error err = { "" };
	size_t n = 0, len = 0;
	int ret = load1(&cfg, doc, &err);

	out[0] = '\0';
	CHECK_EQ(ret, 0, "quota document loads: %s", err.msg);
	if (ret)
		return 0;
	ret = epg_compile(&cfg, &plan, &err);
	CHECK_EQ(ret, 0, "quota document compiles: %s", err.msg);
	if (!ret) {
		n = plan.n_warnings;
		for (size_t i = 0; i < n && len < cap; i++)
			len += (size_t)snprintf(out + len, cap - len, "%s\n", plan.warnings[i]);
		epg_plan_free(&plan);
	}
	epg_config_free(&cfg);
	return n;
}

#define QUOTA_EP(groups) \
	"'VpcEndpoints': [{'VpcEndpointId': 'vpce-q', 'VpcEndpointType': 'Interface', 'ServiceName': 'com.q'," \
	" 'NetworkInterfaceIds': ['eni-q'], 'Groups': [" groups "]}]," \
	" 'NetworkInterfaces': [{'NetworkInterfaceId': 'eni-q', 'PrivateIpAddress': '10.9.0.5'," \
	" 'SubnetId': 'subnet-q', 'VpcId': 'vpc-q', 'Groups': [{'GroupId': 'sg-q'}]}]"

static void test_quotas(void)
{
	static char doc[131072], h4[16384], h6[16384], w[4096];
	size_t n;

	/* rules count per CIDR, a referenced group in each family, a prefix
	 * list by its entries: 59 IPv4 CIDRs + the group = 60 (the quota),
	 * 60 IPv6 CIDRs + the group = 61 (one over); IPv4 outbound: 2 */
	hosts(h4, sizeof(h4), 59, false, 1);
	hosts(h6, sizeof(h6), 60, true, 1);
	snprintf(doc, sizeof(doc), "{" QUOTA_EP("{'GroupId': 'sg-q'}") ","
		 " 'PrefixLists': [{'PrefixListId': 'pl-q', 'Entries': [{'Cidr': '10.7.0.0/16'}, {'Cidr': '10.8.0.0/16'}]}],"
		 " 'SecurityGroups': [{'GroupId': 'sg-q', 'IpPermissions': ["
		 "  {'IpProtocol': 'tcp', 'FromPort': 443, 'ToPort': 443, 'IpRanges': [%s], 'Ipv6Ranges': [%s]},"
		 "  {'IpProtocol': 'tcp', 'FromPort': 80, 'ToPort': 80, 'UserIdGroupPairs': [{'GroupId': 'sg-q'}]}],"
		 " 'IpPermissionsEgress': [{'IpProtocol': '-1', 'PrefixListIds': [{'PrefixListId': 'pl-q'}]}]}]}",
		 h4, h6);
	n = warnings_of(doc, w, sizeof(w));
	CHECK(n == 1 && strstr(w, "t.json: SecurityGroups[0]: group sg-q has 61 inbound IPv6 rules"),
	      "rules counted as EC2 counts them: one warning, IPv6 inbound 61 (%zu: %s)", n, w);

	/* six groups on the endpoint (its interface has one): over the 5
	 * groups quota; 170 rules x 6 groups over 1,000 */
	hosts(h4, sizeof(h4), 170, false, 2);
	snprintf(doc, sizeof(doc), "{" QUOTA_EP("{'GroupId': 'sg-q'}, {'GroupId': 'sg-2'}, {'GroupId': 'sg-3'},"
					       " {'GroupId': 'sg-4'}, {'GroupId': 'sg-5'}, {'GroupId': 'sg-6'}") ","
		 " 'SecurityGroups': [{'GroupId': 'sg-q', 'IpPermissions': ["
		 "  {'IpProtocol': 'udp', 'FromPort': 53, 'ToPort': 53, 'IpRanges': [%s]}]},"
		 " {'GroupId': 'sg-2'}, {'GroupId': 'sg-3'}, {'GroupId': 'sg-4'}, {'GroupId': 'sg-5'}, {'GroupId': 'sg-6'}]}",
		 h4);
	n = warnings_of(doc, w, sizeof(w));
	CHECK(n == 3 && strstr(w, "group sg-q has 170 inbound IPv4 rules") &&
	      strstr(w, "t.json: VpcEndpoints[0]: endpoint vpce-q enforces 6 security groups") &&
	      strstr(w, "170 x 6 is over EC2's limit of 1000"),
	      "groups per interface and rules x groups (%zu: %s)", n, w);

	/* 300 endpoints with the same six groups: reported once (a ruleset is
	 * reported by its first endpoint; the 257th once wrapped a byte) */
	{
		size_t len = (size_t)snprintf(doc, sizeof(doc), "{'VpcEndpoints': [");

		for (int i = 0; i < 300; i++)
			len += (size_t)snprintf(doc + len, sizeof(doc) - len,
						"%s{'VpcEndpointId': 'vpce-%d', 'VpcEndpointType': 'Interface', 'ServiceName': 'com.q',"
						" 'NetworkInterfaceIds': ['eni-%d'], 'Groups': [{'GroupId': 'sg-1'}, {'GroupId': 'sg-2'},"
						" {'GroupId': 'sg-3'}, {'GroupId': 'sg-4'}, {'GroupId': 'sg-5'}, {'GroupId': 'sg-6'}]}",
						i ? ", " : "", i, i);
		len += (size_t)snprintf(doc + len, sizeof(doc) - len, "], 'NetworkInterfaces': [");
		for (int i = 0; i < 300; i++)
			len += (size_t)snprintf(doc + len, sizeof(doc) - len,
						"%s{'NetworkInterfaceId': 'eni-%d', 'PrivateIpAddress': '10.9.%d.%d'}",
						i ? ", " : "", i, i / 200, i % 200 + 1);
		snprintf(doc + len, sizeof(doc) - len,
			 "], 'SecurityGroups': [{'GroupId': 'sg-1'}, {'GroupId': 'sg-2'}, {'GroupId': 'sg-3'},"
			 " {'GroupId': 'sg-4'}, {'GroupId': 'sg-5'}, {'GroupId': 'sg-6'}]}");
	}
	n = warnings_of(doc, w, sizeof(w));
	CHECK(n == 1 && strstr(w, "endpoint vpce-0 enforces 6 security groups"),
	      "300 endpoints of one ruleset: one warning (%zu: %.200s)", n, w);

	/* a network ACL: 21 inbound IPv4 entries (the '*' aside) is one over;
	 * 20 outbound is the quota */
	{
		size_t len = (size_t)snprintf(doc, sizeof(doc), "{" QUOTA_EP("{'GroupId': 'sg-q'}") ","
					      " 'SecurityGroups': [{'GroupId': 'sg-q'}],"
					      " 'NetworkAcls': [{'NetworkAclId': 'acl-q', 'VpcId': 'vpc-q',"
					      " 'Associations': [{'SubnetId': 'subnet-q'}], 'Entries': [");

		for (int i = 1; i <= 41; i++)
			len += (size_t)snprintf(doc + len, sizeof(doc) - len,
						"{'RuleNumber': %d, 'Egress': %s, 'Protocol': '-1', 'RuleAction': 'allow',"
						" 'CidrBlock': '10.%d.0.0/16'}, ",
						i, i > 21 ? "true" : "false", i);
		snprintf(doc + len, sizeof(doc) - len,
			 "{'RuleNumber': 32767, 'Egress': false, 'Protocol': '-1', 'RuleAction': 'deny', 'CidrBlock': '0.0.0.0/0'}]}]}");
	}
	n = warnings_of(doc, w, sizeof(w));
	CHECK(n == 1 && strstr(w, "t.json: NetworkAcls[0]: network ACL acl-q has 21 inbound IPv4 entries"),
	      "network ACL entries per direction and family (%zu: %s)", n, w);
}

/* More endpoint addresses than epg_addr holds for two generations: refused
 * at compile (E2BIG, exit 2), not accepted and then failing after the flip
 * or at every later apply. One interface with n addresses. */
static int compile_addrs(size_t n, struct epg_error *err)
{
	size_t cap = 256 + n * 48, len;
	char *doc = malloc(cap);
	struct epg_config cfg;
	struct epg_plan plan;
	int ret;

	if (!doc)
		return -ENOMEM;
	len = (size_t)snprintf(doc, cap, "{'VpcEndpoints': [{'VpcEndpointId': 'vpce-a', 'VpcEndpointType': 'Interface',"
				" 'ServiceName': 's', 'NetworkInterfaceIds': ['eni-a'], 'Groups': [{'GroupId': 'sg-a'}]}],"
				" 'SecurityGroups': [{'GroupId': 'sg-a'}],"
				" 'NetworkInterfaces': [{'NetworkInterfaceId': 'eni-a', 'PrivateIpAddresses': [");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(doc + len, cap - len, "%s{'PrivateIpAddress': '10.%zu.%zu.%zu'}",
					i ? ", " : "", i >> 16, (i >> 8) & 255, i & 255);
	snprintf(doc + len, cap - len, "]}]}");
	ret = load1(&cfg, doc, err);
	free(doc);
	if (ret)
		return ret;
	ret = epg_compile(&cfg, &plan, err);
	if (!ret)
		epg_plan_free(&plan);
	epg_config_free(&cfg);
	return ret;
}

static void test_address_limit(void)
{
	struct epg_error err = { "" };
	int ret = compile_addrs(EPG_MAX_ADDRS / EPG_GENERATIONS, &err);

	CHECK_EQ(ret, 0, "%d addresses (every one epg_addr holds per generation): %s",
		 EPG_MAX_ADDRS / EPG_GENERATIONS, err.msg);
	char want[96];

	snprintf(want, sizeof(want), "%d endpoint addresses: this build holds at most %d",
		 EPG_MAX_ADDRS / EPG_GENERATIONS + 1, EPG_MAX_ADDRS / EPG_GENERATIONS);
	ret = compile_addrs(EPG_MAX_ADDRS / EPG_GENERATIONS + 1, &err);
	CHECK(ret == -E2BIG && strstr(err.msg, want),
	      "one address more: refused at compile (%d: %s)", ret, err.msg);
}

int main(void)
{
	test_examples();
	test_valid_buffers();
	test_invalid();
	test_mutations();
	test_files();
	test_cidr_str();
	test_quotas();
	test_address_limit();
	return check_summary();
}
