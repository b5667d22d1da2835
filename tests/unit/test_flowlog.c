// SPDX-License-Identifier: MIT
/*
 * Unit tests for user/lib/flowlog.c: format parsing, exact record lines, and
 * the aggregation of the flow table over consecutive intervals (deltas, new
 * and vanished flows, a key reused by a new flow, REJECT, SKIPDATA, NODATA).
 * Flows are built the way the datapath builds them (bpf/ct.h: the key is
 * normalised, init_lo and init_dir say who started it). Ends with a timing
 * case of a full flow table (262,144 flows), printed, not asserted. No root.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "check.h"
#include "flowlog.h"

#define ACCT "123456789010"
#define ENI_A "eni-0aaaaaaaaaaaaaaaa"
#define ENI_B "eni-0bbbbbbbbbbbbbbbb"
#define ENI_C "eni-0cccccccccccccccc"

/* Unix T0 is CLOCK_MONOTONIC 1000 s. */
#define T0 1418530000ull
#define MONO_OFF ((int64_t)(T0 - 1000) * 1000000000ll)
#define AT(unix_s) (((uint64_t)(unix_s) - T0 + 1000) * 1000000000ull)

#define FIN 1
#define SYN 2
#define RST 4
#define PSH 8
#define ACK 16

static void addr_of(const char *s, int *family, uint8_t addr[16])
{
	memset(addr, 0, 16);
	*family = strchr(s, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(*family, s, addr) != 1) {
		fprintf(stderr, "bad address in the test: %s\n", s);
		exit(2);
	}
}

static struct epg_fl_eni mk_eni(const char *addr, const char *id, const char *acct)
{
	struct epg_fl_eni e = {
		.interface_id = id, .account_id = acct, .vpc_id = "vpc-0123456789abcdef0",
		.subnet_id = "subnet-0123456789abcdef0", .az_id = "euw1-az1",
	};

	addr_of(addr, &e.family, e.addr);
	return e;
}

/*
 * A flow as bpf/ct.h records it: init is the side that sent the first packet,
 * dir the endpoint-view direction of that packet. Counters are per endpoint
 * view direction.
 */
struct flow_spec {
	const char *init, *resp;
	uint16_t init_port, resp_port;
	int proto;
	enum epg_dir init_dir;
	uint64_t created, last; /* Unix s */
	uint64_t pk_in, by_in, pk_eg, by_eg;
	uint8_t fl_in, fl_eg;
};

static struct epg_flow mk_flow(const struct flow_spec *s)
{
	struct epg_flow f;
	uint8_t a[16], b[16];
	uint64_t wa[2], wb[2];
	int fa, fb, init_lo;

	memset(&f, 0, sizeof(f));
	addr_of(s->init, &fa, a);
	addr_of(s->resp, &fb, b);
	memcpy(wa, a, 16);
	memcpy(wb, b, 16);
	/* the datapath's order (epg_ct_norm) */
	if (wa[0] != wb[0])
		init_lo = wa[0] < wb[0];
	else if (wa[1] != wb[1])
		init_lo = wa[1] < wb[1];
	else
		init_lo = htons(s->init_port) <= htons(s->resp_port);
	f.key.family = (uint8_t)fa;
	f.key.proto = (uint8_t)s->proto;
	memcpy(init_lo ? f.key.lo_addr : f.key.hi_addr, a, 16);
	memcpy(init_lo ? f.key.hi_addr : f.key.lo_addr, b, 16);
	(init_lo ? &f.key.lo_port : &f.key.hi_port)[0] = htons(s->init_port);
	(init_lo ? &f.key.hi_port : &f.key.lo_port)[0] = htons(s->resp_port);
	f.val.created_ns = AT(s->created);
	f.val.last_seen_ns = AT(s->last);
	f.val.init_dir = (uint8_t)s->init_dir;
	f.val.init_lo = (uint8_t)init_lo;
	f.val.packets[EPG_DIR_INGRESS] = s->pk_in;
	f.val.bytes[EPG_DIR_INGRESS] = s->by_in;
	f.val.packets[EPG_DIR_EGRESS] = s->pk_eg;
	f.val.bytes[EPG_DIR_EGRESS] = s->by_eg;
	f.val.tcp_flags[EPG_DIR_INGRESS] = s->fl_in;
	f.val.tcp_flags[EPG_DIR_EGRESS] = s->fl_eg;
	f.val.state = s->proto == IPPROTO_TCP ? EPG_CT_TCP_ESTABLISHED :
		      s->proto == IPPROTO_UDP ? EPG_CT_UDP : EPG_CT_ICMP;
	return f;
}

static struct epg_fl_rejected mk_rej(const char *src, uint16_t sport, const char *dst,
				     uint16_t dport, int proto, enum epg_dir dir,
				     uint64_t first, uint64_t last, uint64_t pk, uint64_t by,
				     uint8_t flags)
{
	struct epg_fl_rejected r;
	int fam;

	memset(&r, 0, sizeof(r));
	addr_of(src, &fam, r.key.src);
	addr_of(dst, &fam, r.key.dst);
	r.key.family = (uint8_t)fam;
	r.key.proto = (uint8_t)proto;
	r.key.dir = (uint8_t)dir;
	r.key.sport = htons(sport);
	r.key.dport = htons(dport);
	r.val.first_ns = AT(first);
	r.val.last_ns = AT(last);
	r.val.packets = pk;
	r.val.bytes = by;
	r.val.tcp_flags = flags;
	return r;
}

/* Collected lines, formatted as they are emitted. */
struct sink {
	struct epg_fl_format fmt;
	char **lines;
	size_t n, cap;
	bool failed;
};

static void sink_emit(const struct epg_fl_record *r, void *ctx)
{
	struct sink *s = ctx;
	char buf[1024];

	if (epg_fl_format_record(&s->fmt, r, buf, sizeof(buf)) < 0) {
		s->failed = true;
		return;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		char **v = realloc(s->lines, cap * sizeof(*v));

		if (!v) {
			s->failed = true;
			return;
		}
		s->lines = v;
		s->cap = cap;
	}
	s->lines[s->n++] = strdup(buf);
}

static void sink_clear(struct sink *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->lines[i]);
	s->n = 0;
	s->failed = false;
}

static void sink_free(struct sink *s)
{
	sink_clear(s);
	free(s->lines);
	s->lines = NULL;
	s->cap = 0;
}

/* Compares every line; prints both lists when they differ. */
static bool lines_are(const char *name, const struct sink *s, const char *const *want, size_t n)
{
	bool ok = !s->failed && s->n == n;
	size_t i;

	for (i = 0; ok && i < n; i++)
		ok = s->lines[i] && !strcmp(s->lines[i], want[i]);
	if (!ok) {
		fprintf(stderr, "%s: got %zu lines%s:\n", name, s->n, s->failed ? " (emit failed)" : "");
		for (i = 0; i < s->n; i++)
			fprintf(stderr, "  got  %s\n", s->lines[i]);
		for (i = 0; i < n; i++)
			fprintf(stderr, "  want %s\n", want[i]);
	}
	return ok;
}

#define LINES(...) (const char *const[]){ __VA_ARGS__ }, \
	sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(const char *)

static int collect(struct epg_fl_state *st, struct sink *s, uint64_t start, uint64_t end,
		   const struct epg_flow *flows, size_t n_flows,
		   const struct epg_fl_rejected *rej, size_t n_rej, uint64_t lost,
		   const struct epg_fl_eni *enis, size_t n_enis)
{
	struct epg_fl_interval iv = {
		.start = start, .end = end, .mono_to_unix_ns = MONO_OFF,
		.flows = flows, .n_flows = n_flows, .rejected = rej, .n_rejected = n_rej,
		.lost = lost, .enis = enis, .n_enis = n_enis,
	};

	sink_clear(s);
	return epg_fl_collect(st, &iv, sink_emit, s);
}

/* ---- formats ---------------------------------------------------------- */

static void test_format_parse(void)
{
	static const char *all =
		"${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} "
		"${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} "
		"${log-status} ${vpc-id} ${subnet-id} ${tcp-flags} ${type} ${pkt-srcaddr} "
		"${pkt-dstaddr} ${az-id} ${flow-direction}";
	static const struct {
		const char *fmt;
		int version;
		size_t n;
	} versions[] = {
		{ "${srcaddr}", 2, 1 },
		{ "${version} ${vpc-id}", 3, 2 },
		{ "${subnet-id}", 3, 1 },
		{ "${tcp-flags} ${srcaddr}", 3, 2 },
		{ "${type}", 3, 1 },
		{ "${pkt-srcaddr}", 3, 1 },
		{ "${pkt-dstaddr}", 3, 1 },
		{ "${az-id} ${vpc-id}", 4, 2 },
		{ "${flow-direction} ${az-id}", 5, 2 },
		{ "${version} ${version}", 2, 2 },
	};
	static const char *bad[] = {
		"version srcaddr",          /* no ${ } */
		"${version}  ${srcaddr}",   /* two spaces */
		" ${version}",              /* leading space */
		"${version} ",              /* trailing space */
		"${version}${srcaddr}",     /* no space */
		"${version",                /* not closed */
		"${}",                      /* empty name */
		"${version},${srcaddr}",
		"${version}\t${srcaddr}",
		"$version",
	};
	struct epg_fl_format f;
	struct epg_error err;
	char many[64 * 11 + 16] = "";
	size_t i;
	int rc;

	memset(&f, 0xff, sizeof(f));
	CHECK_EQ(epg_fl_format_parse(NULL, &f, NULL), 0, "NULL is the default format");
	CHECK_EQ(f.n, 14, "default fields");
	CHECK_EQ(f.version, 2, "default version");
	for (i = 0; i < 14; i++)
		CHECK_EQ(f.f[i], i, "default field %zu", i);
	memset(&f, 0xff, sizeof(f));
	CHECK_EQ(epg_fl_format_parse("", &f, NULL), 0, "\"\" is the default format");
	CHECK_EQ(f.n, 14, "default fields");
	CHECK_EQ(f.f[EPG_FL_LOG_STATUS], EPG_FL_LOG_STATUS, "default ends with log-status");

	CHECK_EQ(epg_fl_format_parse("${version} ${account-id} ${interface-id} ${srcaddr} "
				     "${dstaddr} ${srcport} ${dstport} ${protocol} ${packets} "
				     "${bytes} ${start} ${end} ${action} ${log-status}", &f, NULL),
		 0, "the default format spelt out");
	CHECK_EQ(f.n, 14, "spelt-out default");
	CHECK_EQ(f.version, 2, "spelt-out default");

	CHECK_EQ(epg_fl_format_parse(all, &f, NULL), 0, "every field");
	CHECK_EQ(f.n, EPG_FL_FIELD_COUNT, "every field");
	CHECK_EQ(f.version, 5, "every field: version 5");
	for (i = 0; i < f.n; i++)
		CHECK_EQ(f.f[i], i, "field %zu in order", i);

	for (i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		CHECK_EQ(epg_fl_format_parse(versions[i].fmt, &f, NULL), 0, "%s", versions[i].fmt);
		CHECK_EQ(f.version, versions[i].version, "%s", versions[i].fmt);
		CHECK_EQ(f.n, versions[i].n, "%s", versions[i].fmt);
	}
	CHECK_EQ(epg_fl_format_parse("${flow-direction} ${srcaddr} ${dstaddr}", &f, NULL), 0, "order kept");
	CHECK(f.f[0] == EPG_FL_FLOW_DIRECTION && f.f[1] == EPG_FL_SRCADDR && f.f[2] == EPG_FL_DSTADDR,
	      "fields in the order given");

	memset(&err, 0, sizeof(err));
	rc = epg_fl_format_parse("${version} ${instance-id} ${srcaddr}", &f, &err);
	CHECK_EQ(rc, -EINVAL, "unknown field");
	CHECK(strstr(err.msg, "instance-id") != NULL, "the message names the field: %s", err.msg);
	CHECK(strstr(err.msg, "flow-direction") != NULL, "and lists the known ones: %s", err.msg);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		rc = epg_fl_format_parse(bad[i], &f, &err);
		CHECK_EQ(rc, -EINVAL, "bad syntax \"%s\"", bad[i]);
		CHECK(err.msg[0] != '\0', "bad syntax \"%s\" has a message", bad[i]);
	}
	memset(&err, 0, sizeof(err));
	epg_fl_format_parse("${version} ${version", &f, &err);
	CHECK(strstr(err.msg, "column 12") != NULL, "the message says where: %s", err.msg);

	for (i = 0; i < 65; i++)
		strcat(many, i ? " ${bytes}" : "${bytes}");
	memset(&err, 0, sizeof(err));
	CHECK_EQ(epg_fl_format_parse(many, &f, &err), -EINVAL, "65 fields");
	CHECK(strstr(err.msg, "64") != NULL, "too many fields: %s", err.msg);
	many[strlen(many) - strlen(" ${bytes}")] = '\0';
	CHECK_EQ(epg_fl_format_parse(many, &f, NULL), 0, "64 fields");
	CHECK_EQ(f.n, 64, "64 fields");
}

static void test_format_record(void)
{
	struct epg_fl_eni eni = mk_eni("172.31.16.21", "eni-1235b8ca123456789", ACCT);
	struct epg_fl_record r = {
		.eni = &eni, .family = AF_INET, .has_ports = true, .sport = 20641, .dport = 22,
		.proto = 6, .packets = 20, .bytes = 4249, .start = 1418530010, .end = 1418530070,
		.action = EPG_FL_ACCEPT, .status = EPG_FL_OK, .tcp_flags = SYN | ACK,
		.direction = EPG_DIR_INGRESS,
	};
	static const char *aws =
		"2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";
	struct epg_fl_format f, all;
	char buf[512];
	int fam;

	addr_of("172.31.16.139", &fam, r.src);
	addr_of("172.31.16.21", &fam, r.dst);
	epg_fl_format_parse(NULL, &f, NULL);
	CHECK_EQ(epg_fl_format_record(&f, &r, buf, sizeof(buf)), strlen(aws), "AWS example");
	CHECK(!strcmp(buf, aws), "AWS example: %s", buf);

	CHECK_EQ(epg_fl_format_record(&f, &r, buf, strlen(aws)), -ENOSPC, "no room for the NUL");
	CHECK_EQ(epg_fl_format_record(&f, &r, buf, strlen(aws) + 1), strlen(aws), "exact fit");
	CHECK(!strcmp(buf, aws), "exact fit: %s", buf);
	CHECK_EQ(epg_fl_format_record(&f, &r, buf, 0), -ENOSPC, "empty buffer");

	r.action = EPG_FL_REJECT;
	r.has_ports = false;
	r.proto = 1;
	epg_fl_format_record(&f, &r, buf, sizeof(buf));
	CHECK(!strcmp(buf, "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 - - 1 20 4249 1418530010 1418530070 REJECT OK"),
	      "no ports: %s", buf);

	eni.account_id = NULL;
	r.status = EPG_FL_NODATA;
	r.action = EPG_FL_NO_ACTION;
	epg_fl_format_record(&f, &r, buf, sizeof(buf));
	CHECK(!strcmp(buf, "2 - eni-1235b8ca123456789 - - - - - - - 1418530010 1418530070 - NODATA"),
	      "NODATA: traffic fields are -, even when set: %s", buf);
	r.status = EPG_FL_SKIPDATA;
	r.eni = NULL;
	epg_fl_format_record(&f, &r, buf, sizeof(buf));
	CHECK(!strcmp(buf, "2 - - - - - - - - - 1418530010 1418530070 - SKIPDATA"),
	      "SKIPDATA without an interface: %s", buf);

	epg_fl_format_parse("${version} ${vpc-id} ${subnet-id} ${az-id} ${type} ${pkt-srcaddr} "
			    "${pkt-dstaddr} ${tcp-flags} ${flow-direction} ${log-status}", &all, NULL);
	r.eni = &eni;
	r.status = EPG_FL_OK;
	r.direction = EPG_DIR_EGRESS;
	eni.az_id = "";
	epg_fl_format_record(&all, &r, buf, sizeof(buf));
	CHECK(!strcmp(buf, "5 vpc-0123456789abcdef0 subnet-0123456789abcdef0 - IPv4 172.31.16.139 172.31.16.21 18 egress OK"),
	      "v5 fields, \"\" printed as -: %s", buf);
	r.status = EPG_FL_NODATA;
	epg_fl_format_record(&all, &r, buf, sizeof(buf));
	CHECK(!strcmp(buf, "5 vpc-0123456789abcdef0 subnet-0123456789abcdef0 - - - - - - NODATA"),
	      "v5 NODATA: %s", buf);
}

/* ---- collection over intervals ---------------------------------------- */

/*
 * Interfaces: A and B IPv4, C IPv6 (no OwnerId).
 * F1: inbound TCP to A. F2: outbound UDP from B. F3: inbound ICMP echo to B.
 * F4: inbound IPv6 TCP to C. FX: to an address that is no interface.
 */
static const struct flow_spec F1_1 = {
	"172.31.16.139", "10.0.1.10", 20641, 443, IPPROTO_TCP, EPG_DIR_INGRESS,
	T0 + 10, T0 + 55, 20, 4249, 18, 9000, SYN | ACK | PSH | FIN, SYN | ACK | PSH,
};
static const struct flow_spec FX_1 = {
	"172.31.16.139", "10.0.3.30", 20642, 443, IPPROTO_TCP, EPG_DIR_INGRESS,
	T0 + 10, T0 + 55, 5, 500, 5, 500, SYN | ACK, SYN | ACK,
};
static const struct flow_spec F1_2 = {
	"172.31.16.139", "10.0.1.10", 20641, 443, IPPROTO_TCP, EPG_DIR_INGRESS,
	T0 + 10, T0 + 100, 25, 5000, 18, 9000, SYN | ACK | PSH | FIN, SYN | ACK | PSH,
};
static const struct flow_spec F2_2 = {
	"10.0.2.20", "10.0.9.9", 53000, 53, IPPROTO_UDP, EPG_DIR_EGRESS,
	T0 + 70, T0 + 71, 1, 120, 1, 60, 0, 0,
};
static const struct flow_spec F3_2 = { /* echo identifier 0x1234 on both sides */
	"192.168.0.5", "10.0.2.20", 0x1234, 0x1234, IPPROTO_ICMP, EPG_DIR_INGRESS,
	T0 + 80, T0 + 83, 4, 336, 4, 336, 0, 0,
};
static const struct flow_spec F4_2 = {
	"2001:db8:1::99", "2001:db8::10", 50000, 443, IPPROTO_TCP, EPG_DIR_INGRESS,
	T0 + 90, T0 + 119, 3, 240, 2, 180, SYN | ACK, SYN | ACK,
};
static const struct flow_spec F4_3 = {
	"2001:db8:1::99", "2001:db8::10", 50000, 443, IPPROTO_TCP, EPG_DIR_INGRESS,
	T0 + 90, T0 + 150, 10, 1000, 2, 180, SYN | ACK | FIN, SYN | ACK,
};
/* a new flow on F2's key: counts start from zero */
static const struct flow_spec F2_4 = {
	"10.0.2.20", "10.0.9.9", 53000, 53, IPPROTO_UDP, EPG_DIR_EGRESS,
	T0 + 185, T0 + 200, 3, 400, 2, 150, 0, 0,
};

static void test_collect(void)
{
	struct epg_fl_eni enis[3];
	struct epg_fl_state *st = epg_fl_state_new();
	struct sink s = { .n = 0 };
	struct epg_flow fl[4];
	struct epg_fl_rejected rej[3];
	int rc;

	enis[0] = mk_eni("10.0.1.10", ENI_A, ACCT);
	enis[1] = mk_eni("10.0.2.20", ENI_B, ACCT);
	enis[2] = mk_eni("2001:db8::10", ENI_C, NULL);
	epg_fl_format_parse(NULL, &s.fmt, NULL);
	CHECK(st != NULL, "state");
	if (!st)
		return;

	/* 1: an inbound TCP flow, both directions; FX has no interface */
	fl[0] = mk_flow(&F1_1);
	fl[1] = mk_flow(&FX_1);
	rc = collect(st, &s, T0, T0 + 60, fl, 2, NULL, 0, 0, enis, 3);
	CHECK_EQ(rc, 4, "interval 1: records");
	CHECK(lines_are("interval 1", &s, LINES(
		"2 123456789010 " ENI_A " 172.31.16.139 10.0.1.10 20641 443 6 20 4249 1418530010 1418530055 ACCEPT OK",
		"2 123456789010 " ENI_A " 10.0.1.10 172.31.16.139 443 20641 6 18 9000 1418530010 1418530055 ACCEPT OK",
		"2 123456789010 " ENI_B " - - - - - - - 1418530000 1418530060 - NODATA",
		"2 - " ENI_C " - - - - - - - 1418530000 1418530060 - NODATA")),
	      "interval 1");

	/* 2: F1 grew inbound only; new UDP (outbound), ICMP and IPv6 flows */
	fl[0] = mk_flow(&F1_2);
	fl[1] = mk_flow(&F2_2);
	fl[2] = mk_flow(&F3_2);
	fl[3] = mk_flow(&F4_2);
	rc = collect(st, &s, T0 + 60, T0 + 120, fl, 4, NULL, 0, 0, enis, 3);
	CHECK_EQ(rc, 7, "interval 2: records");
	CHECK(lines_are("interval 2", &s, LINES(
		"2 123456789010 " ENI_A " 172.31.16.139 10.0.1.10 20641 443 6 5 751 1418530060 1418530100 ACCEPT OK",
		"2 123456789010 " ENI_B " 10.0.9.9 10.0.2.20 53 53000 17 1 120 1418530070 1418530071 ACCEPT OK",
		"2 123456789010 " ENI_B " 10.0.2.20 10.0.9.9 53000 53 17 1 60 1418530070 1418530071 ACCEPT OK",
		"2 123456789010 " ENI_B " 192.168.0.5 10.0.2.20 - - 1 4 336 1418530080 1418530083 ACCEPT OK",
		"2 123456789010 " ENI_B " 10.0.2.20 192.168.0.5 - - 1 4 336 1418530080 1418530083 ACCEPT OK",
		"2 - " ENI_C " 2001:db8:1::99 2001:db8::10 50000 443 6 3 240 1418530090 1418530119 ACCEPT OK",
		"2 - " ENI_C " 2001:db8::10 2001:db8:1::99 443 50000 6 2 180 1418530090 1418530119 ACCEPT OK")),
	      "interval 2");

	/* 3: F1, F2 unchanged (no record: A gets NODATA, B has its REJECTs);
	 * F3 gone; F4 grew inbound. Rejected: inbound SSH (its last packet
	 * after the interval: clamped), outbound from B, inbound ping. */
	fl[0] = mk_flow(&F1_2);
	fl[1] = mk_flow(&F2_2);
	fl[2] = mk_flow(&F4_3);
	rej[0] = mk_rej("203.0.113.7", 51515, "10.0.2.20", 22, IPPROTO_TCP, EPG_DIR_INGRESS,
			T0 + 130, T0 + 190, 3, 180, SYN);
	rej[1] = mk_rej("10.0.2.20", 443, "198.51.100.1", 33000, IPPROTO_TCP, EPG_DIR_EGRESS,
			T0 + 121, T0 + 121, 1, 40, RST | ACK);
	rej[2] = mk_rej("198.51.100.2", 0, "10.0.2.20", 8 << 8, IPPROTO_ICMP, EPG_DIR_INGRESS,
			T0 + 140, T0 + 142, 2, 168, 0);
	rc = collect(st, &s, T0 + 120, T0 + 180, fl, 3, rej, 3, 0, enis, 3);
	CHECK_EQ(rc, 5, "interval 3: records");
	CHECK(lines_are("interval 3", &s, LINES(
		"2 - " ENI_C " 2001:db8:1::99 2001:db8::10 50000 443 6 7 760 1418530120 1418530150 ACCEPT OK",
		"2 123456789010 " ENI_B " 203.0.113.7 10.0.2.20 51515 22 6 3 180 1418530130 1418530180 REJECT OK",
		"2 123456789010 " ENI_B " 10.0.2.20 198.51.100.1 443 33000 6 1 40 1418530121 1418530121 REJECT OK",
		"2 123456789010 " ENI_B " 198.51.100.2 10.0.2.20 - - 1 2 168 1418530140 1418530142 REJECT OK",
		"2 123456789010 " ENI_A " - - - - - - - 1418530120 1418530180 - NODATA")),
	      "interval 3");

	/* 4: F2's key reused by a new flow (from zero, not a delta); F3 back
	 * with the same creation time, as the datapath hands on a flow it
	 * removed after the table was read: still remembered one interval
	 * after it was last seen, so only what it grew counts (nothing);
	 * rejected packets lost: SKIPDATA for every interface, and then no
	 * NODATA (an interface with a record has one) */
	fl[0] = mk_flow(&F2_4);
	fl[1] = mk_flow(&F3_2);
	rc = collect(st, &s, T0 + 180, T0 + 240, fl, 2, NULL, 0, 5, enis, 3);
	CHECK_EQ(rc, 5, "interval 4: records");
	CHECK(lines_are("interval 4", &s, LINES(
		"2 123456789010 " ENI_B " 10.0.9.9 10.0.2.20 53 53000 17 3 400 1418530185 1418530200 ACCEPT OK",
		"2 123456789010 " ENI_B " 10.0.2.20 10.0.9.9 53000 53 17 2 150 1418530185 1418530200 ACCEPT OK",
		"2 123456789010 " ENI_A " - - - - - - - 1418530180 1418530240 - SKIPDATA",
		"2 123456789010 " ENI_B " - - - - - - - 1418530180 1418530240 - SKIPDATA",
		"2 - " ENI_C " - - - - - - - 1418530180 1418530240 - SKIPDATA")),
	      "interval 4");

	/* 5: nothing at all: NODATA everywhere; no interfaces: nothing */
	rc = collect(st, &s, T0 + 240, T0 + 300, NULL, 0, NULL, 0, 0, enis, 3);
	CHECK_EQ(rc, 3, "interval 5: records");
	CHECK(lines_are("interval 5", &s, LINES(
		"2 123456789010 " ENI_A " - - - - - - - 1418530240 1418530300 - NODATA",
		"2 123456789010 " ENI_B " - - - - - - - 1418530240 1418530300 - NODATA",
		"2 - " ENI_C " - - - - - - - 1418530240 1418530300 - NODATA")),
	      "interval 5");
	fl[0] = mk_flow(&F1_1);
	rc = collect(st, &s, T0 + 300, T0 + 360, fl, 1, NULL, 0, 0, NULL, 0);
	CHECK_EQ(rc, 0, "no interfaces, no records");

	/* 7: F3 again, unseen for two intervals: forgotten, reported in full */
	fl[0] = mk_flow(&F3_2);
	rc = collect(st, &s, T0 + 360, T0 + 420, fl, 1, NULL, 0, 0, enis, 3);
	CHECK_EQ(rc, 4, "interval 7: records");
	CHECK(lines_are("interval 7", &s, LINES(
		"2 123456789010 " ENI_B " 192.168.0.5 10.0.2.20 - - 1 4 336 1418530360 1418530360 ACCEPT OK",
		"2 123456789010 " ENI_B " 10.0.2.20 192.168.0.5 - - 1 4 336 1418530360 1418530360 ACCEPT OK",
		"2 123456789010 " ENI_A " - - - - - - - 1418530360 1418530420 - NODATA",
		"2 - " ENI_C " - - - - - - - 1418530360 1418530420 - NODATA")),
	      "interval 7");

	sink_free(&s);
	epg_fl_state_free(st);
	epg_fl_state_free(NULL);
}

/* A stale copy of a flow (lower counts, same key and creation time: a
 * removed flow's last counts read before a later table read) adds nothing,
 * and does not lower what was reported. */
static void test_collect_stale(void)
{
	struct epg_fl_eni eni = mk_eni("10.0.1.10", ENI_A, ACCT);
	struct epg_fl_state *st = epg_fl_state_new();
	struct sink s = { .n = 0 };
	struct epg_flow fl[1];

	epg_fl_format_parse(NULL, &s.fmt, NULL);
	CHECK(st != NULL, "state");
	if (!st)
		return;
	fl[0] = mk_flow(&F1_2);
	CHECK_EQ(collect(st, &s, T0, T0 + 60, fl, 1, NULL, 0, 0, &eni, 1), 2, "stale: first report");
	fl[0] = mk_flow(&F1_1);
	CHECK_EQ(collect(st, &s, T0 + 60, T0 + 120, fl, 1, NULL, 0, 0, &eni, 1), 1,
		 "stale: the older copy adds nothing (NODATA only)");
	CHECK(lines_are("stale", &s, LINES(
		"2 123456789010 " ENI_A " - - - - - - - 1418530060 1418530120 - NODATA")), "stale: NODATA");
	fl[0] = mk_flow(&F1_2);
	CHECK_EQ(collect(st, &s, T0 + 120, T0 + 180, fl, 1, NULL, 0, 0, &eni, 1), 1,
		 "stale: the newer copy again adds nothing either (it was reported)");
	sink_free(&s);
	epg_fl_state_free(st);
}

/* Keys written by hand rather than by mk_flow: the lo side is the client
 * (init_lo = 1) for an inbound flow, and the endpoint for an outbound one. */
static void test_collect_raw_keys(void)
{
	struct epg_fl_eni eni = mk_eni("10.9.0.200", ENI_A, ACCT);
	struct epg_fl_state *st = epg_fl_state_new();
	struct sink s = { .n = 0 };
	struct epg_flow fl[2];
	int fam;

	memset(fl, 0, sizeof(fl));
	addr_of("10.9.0.1", &fam, fl[0].key.lo_addr);   /* client */
	addr_of("10.9.0.200", &fam, fl[0].key.hi_addr); /* endpoint */
	fl[0].key.lo_port = htons(40000);
	fl[0].key.hi_port = htons(443);
	fl[0].key.proto = IPPROTO_TCP;
	fl[0].key.family = AF_INET;
	fl[0].val.init_lo = 1;
	fl[0].val.init_dir = EPG_DIR_INGRESS;
	fl[0].val.created_ns = AT(T0 + 1);
	fl[0].val.last_seen_ns = AT(T0 + 2);
	fl[0].val.packets[EPG_DIR_INGRESS] = 2;
	fl[0].val.bytes[EPG_DIR_INGRESS] = 100;

	addr_of("10.9.0.200", &fam, fl[1].key.lo_addr); /* endpoint */
	addr_of("10.9.0.201", &fam, fl[1].key.hi_addr); /* peer */
	fl[1].key.lo_port = htons(1025);
	fl[1].key.hi_port = htons(8080);
	fl[1].key.proto = IPPROTO_UDP;
	fl[1].key.family = AF_INET;
	fl[1].val.init_lo = 1;
	fl[1].val.init_dir = EPG_DIR_EGRESS;
	fl[1].val.created_ns = AT(T0 + 3);
	fl[1].val.last_seen_ns = AT(T0 + 4);
	fl[1].val.packets[EPG_DIR_EGRESS] = 1;
	fl[1].val.bytes[EPG_DIR_EGRESS] = 50;

	epg_fl_format_parse(NULL, &s.fmt, NULL);
	CHECK_EQ(collect(st, &s, T0, T0 + 60, fl, 2, NULL, 0, 0, &eni, 1), 2, "raw keys");
	CHECK(lines_are("raw keys", &s, LINES(
		"2 123456789010 " ENI_A " 10.9.0.1 10.9.0.200 40000 443 6 2 100 1418530001 1418530002 ACCEPT OK",
		"2 123456789010 " ENI_A " 10.9.0.200 10.9.0.201 1025 8080 17 1 50 1418530003 1418530004 ACCEPT OK")),
	      "raw keys");
	sink_free(&s);
	epg_fl_state_free(st);
}

/* An interface with several addresses is listed once per address: NODATA
 * and SKIPDATA once per interface, and traffic on any of its addresses
 * counts for it. An entry without an interface id stands alone. */
static void test_collect_multi_addr(void)
{
	struct epg_fl_eni enis[5];
	struct epg_fl_state *st = epg_fl_state_new();
	struct sink s = { .n = 0 };
	struct epg_flow fl[1];
	static const struct flow_spec v6 = {
		"2001:db8:1::7", "2001:db8::b", 40000, 443, IPPROTO_TCP, EPG_DIR_INGRESS,
		T0 + 5, T0 + 6, 1, 60, 0, 0, SYN, 0,
	};

	enis[0] = mk_eni("10.0.1.10", ENI_A, ACCT);
	enis[1] = mk_eni("10.0.2.20", ENI_B, ACCT);
	enis[2] = mk_eni("2001:db8::a", ENI_A, ACCT);
	enis[3] = mk_eni("2001:db8::b", ENI_B, ACCT);
	enis[4] = mk_eni("10.0.5.5", NULL, ACCT);
	epg_fl_format_parse(NULL, &s.fmt, NULL);

	fl[0] = mk_flow(&v6);
	CHECK_EQ(collect(st, &s, T0, T0 + 60, fl, 1, NULL, 0, 0, enis, 5), 3, "multi-address");
	CHECK(lines_are("multi-address", &s, LINES(
		"2 123456789010 " ENI_B " 2001:db8:1::7 2001:db8::b 40000 443 6 1 60 1418530005 1418530006 ACCEPT OK",
		"2 123456789010 " ENI_A " - - - - - - - 1418530000 1418530060 - NODATA",
		"2 123456789010 - - - - - - - - 1418530000 1418530060 - NODATA")),
	      "multi-address");
	CHECK_EQ(collect(st, &s, T0 + 60, T0 + 120, fl, 1, NULL, 0, 1, enis, 5), 3, "multi-address, lost");
	CHECK(lines_are("multi-address, lost", &s, LINES(
		"2 123456789010 " ENI_A " - - - - - - - 1418530060 1418530120 - SKIPDATA",
		"2 123456789010 " ENI_B " - - - - - - - 1418530060 1418530120 - SKIPDATA",
		"2 123456789010 - - - - - - - - 1418530060 1418530120 - SKIPDATA")),
	      "multi-address, lost");
	sink_free(&s);
	epg_fl_state_free(st);
}

/* A v5 custom format over the first interval of test_collect. */
static void test_collect_custom(void)
{
	struct epg_fl_eni enis[2];
	struct epg_fl_state *st = epg_fl_state_new();
	struct sink s = { .n = 0 };
	struct epg_flow fl[1];
	struct epg_error err;

	enis[0] = mk_eni("10.0.1.10", ENI_A, ACCT);
	enis[1] = mk_eni("10.0.2.20", ENI_B, ACCT);
	enis[1].az_id = "euw1-az2";
	CHECK_EQ(epg_fl_format_parse("${version} ${interface-id} ${vpc-id} ${subnet-id} ${az-id} "
				     "${type} ${pkt-srcaddr} ${pkt-dstaddr} ${srcport} ${tcp-flags} "
				     "${flow-direction} ${action} ${log-status}", &s.fmt, &err),
		 0, "custom format");
	CHECK_EQ(s.fmt.version, 5, "custom format version");
	fl[0] = mk_flow(&F1_1);
	CHECK_EQ(collect(st, &s, T0, T0 + 60, fl, 1, NULL, 0, 0, enis, 2), 3, "custom");
	CHECK(lines_are("custom", &s, LINES(
		"5 " ENI_A " vpc-0123456789abcdef0 subnet-0123456789abcdef0 euw1-az1 IPv4 172.31.16.139 10.0.1.10 20641 3 ingress ACCEPT OK",
		"5 " ENI_A " vpc-0123456789abcdef0 subnet-0123456789abcdef0 euw1-az1 IPv4 10.0.1.10 172.31.16.139 443 18 egress ACCEPT OK",
		"5 " ENI_B " vpc-0123456789abcdef0 subnet-0123456789abcdef0 euw1-az2 - - - - - - - NODATA")),
	      "custom: tcp-flags as VPC Flow Logs report them (the initiator's SYN and FIN 3, the responder's SYN-ACK 18; ACK and PSH alone not)");
	/* the connection goes on: its flags were reported; the interval's new
	 * packets carry none that VPC Flow Logs report (not SYN again) */
	fl[0] = mk_flow(&F1_2);
	CHECK_EQ(collect(st, &s, T0 + 60, T0 + 120, fl, 1, NULL, 0, 0, enis, 2), 2, "custom, interval 2");
	CHECK(lines_are("custom 2", &s, LINES(
		"5 " ENI_A " vpc-0123456789abcdef0 subnet-0123456789abcdef0 euw1-az1 IPv4 172.31.16.139 10.0.1.10 20641 0 ingress ACCEPT OK",
		"5 " ENI_B " vpc-0123456789abcdef0 subnet-0123456789abcdef0 euw1-az2 - - - - - - - NODATA")),
	      "custom 2: a long connection's later record has no SYN");
	/* a rejected SYN: 2; a rejected SYN-ACK (no flow for it): 18 */
	{
		struct epg_fl_rejected rj[2];

		rj[0] = mk_rej("203.0.113.7", 51515, "10.0.2.20", 22, IPPROTO_TCP, EPG_DIR_INGRESS,
			       T0 + 130, T0 + 131, 2, 120, SYN);
		rj[1] = mk_rej("203.0.113.8", 443, "10.0.2.20", 40000, IPPROTO_TCP, EPG_DIR_INGRESS,
			       T0 + 130, T0 + 131, 1, 60, SYN | ACK | PSH);
		CHECK_EQ(collect(st, &s, T0 + 120, T0 + 180, NULL, 0, rj, 2, 0, enis, 2), 3, "custom, interval 3");
		CHECK(lines_are("custom 3", &s, LINES(
			"5 " ENI_B " vpc-0123456789abcdef0 subnet-0123456789abcdef0 euw1-az2 IPv4 203.0.113.7 10.0.2.20 51515 2 ingress REJECT OK",
			"5 " ENI_B " vpc-0123456789abcdef0 subnet-0123456789abcdef0 euw1-az2 IPv4 203.0.113.8 10.0.2.20 443 18 ingress REJECT OK",
			"5 " ENI_A " vpc-0123456789abcdef0 subnet-0123456789abcdef0 euw1-az1 - - - - - - - NODATA")),
		      "custom 3: rejected SYN 2, rejected SYN-ACK 18");
	}
	sink_free(&s);
	epg_fl_state_free(st);
}

/* ---- random intervals against a model --------------------------------- */

/*
 * Flows come and go at random (the table grows, shrinks and deletes inside
 * clusters), are replaced on their keys, and grow at random; every ACCEPT
 * record must be what a plain model of "last reported, forgotten when
 * absent" predicts, in flow order. Every other round keeps 90-100% of the
 * flows (a full table: long clusters, some wrapping past its end), the
 * others between 1% and 100%.
 */
#define RND_FLOWS 1020 /* all present: just under half of a 2048-slot table */
#define RND_ROUNDS 1000

struct rnd_expect {
	uint32_t id[2 * RND_FLOWS];
	uint64_t pk[2 * RND_FLOWS];
	size_t n, got, bad;
};

static void rnd_emit(const struct epg_fl_record *r, void *ctx)
{
	struct rnd_expect *x = ctx;
	const uint8_t *peer = r->direction == EPG_DIR_INGRESS ? r->src : r->dst;
	uint32_t id = (uint32_t)peer[1] << 16 | (uint32_t)peer[2] << 8 | peer[3];

	if (r->action != EPG_FL_ACCEPT)
		return;
	if (x->got >= x->n || x->id[x->got] != (id << 1 | r->direction) ||
	    x->pk[x->got] != r->packets || r->bytes != 100 * r->packets)
		x->bad++;
	x->got++;
}

static uint64_t rnd_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void test_random(void)
{
	static struct epg_flow cur[RND_FLOWS], fl[RND_FLOWS];
	static uint64_t last[RND_FLOWS][2];
	static bool known[RND_FLOWS];
	static unsigned absent[RND_FLOWS];
	static struct rnd_expect x;
	struct epg_fl_eni eni = mk_eni("10.200.0.1", ENI_A, ACCT);
	struct epg_fl_state *st = epg_fl_state_new();
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	size_t j, n, bad = 0, records = 0;
	int round, d, rc;

	for (j = 0; j < RND_FLOWS; j++) {
		struct epg_flow *f = &cur[j];

		f->key.family = AF_INET;
		f->key.proto = IPPROTO_UDP;
		memcpy(f->key.lo_addr, eni.addr, 4);
		f->key.hi_addr[0] = 11;
		f->key.hi_addr[1] = (uint8_t)(j >> 16);
		f->key.hi_addr[2] = (uint8_t)(j >> 8);
		f->key.hi_addr[3] = (uint8_t)j;
		f->key.lo_port = htons(53);
		f->key.hi_port = htons(5353);
		f->val.init_dir = EPG_DIR_INGRESS;
		f->val.created_ns = AT(T0);
	}
	for (round = 0; round < RND_ROUNDS && st; round++) {
		uint64_t keep = round % 2 ? 1 + rnd_next(&seed) % 100 : 90 + rnd_next(&seed) % 11;

		n = 0;
		x.n = x.got = x.bad = 0;
		for (j = 0; j < RND_FLOWS; j++) {
			struct epg_flow *f = &cur[j];

			if (rnd_next(&seed) % 100 >= keep) {
				/* absent: remembered one interval, then forgotten */
				if (++absent[j] >= 2)
					known[j] = false;
				continue;
			}
			absent[j] = 0;
			if (rnd_next(&seed) % 8 == 0) { /* replaced by a new flow */
				f->val.created_ns += 1000;
				memset(f->val.packets, 0, sizeof(f->val.packets));
				memset(f->val.bytes, 0, sizeof(f->val.bytes));
				known[j] = false;
			}
			for (d = 0; d < 2; d++) {
				uint64_t add = rnd_next(&seed) % 3;

				f->val.packets[d] += add;
				f->val.bytes[d] += 100 * add;
			}
			if (!known[j])
				last[j][0] = last[j][1] = 0;
			for (d = 0; d < 2; d++) {
				if (f->val.packets[d] == last[j][d])
					continue;
				x.id[x.n] = (uint32_t)(j << 1 | (size_t)d);
				x.pk[x.n++] = f->val.packets[d] - last[j][d];
				last[j][d] = f->val.packets[d];
			}
			known[j] = true;
			fl[n++] = *f;
		}
		{
			struct epg_fl_interval iv = {
				.start = T0, .end = T0 + 60, .mono_to_unix_ns = MONO_OFF,
				.flows = fl, .n_flows = n, .enis = &eni, .n_enis = 1,
			};

			rc = epg_fl_collect(st, &iv, rnd_emit, &x);
		}
		if (rc < 0 || x.got != x.n || x.bad) {
			fprintf(stderr, "random round %d: %zu flows, rc %d, %zu/%zu records, %zu wrong\n",
				round, n, rc, x.got, x.n, x.bad);
			bad++;
		}
		records += x.got;
	}
	CHECK(st != NULL, "state");
	CHECK_EQ(bad, 0, "random rounds agree with the model (%zu records)", records);
	epg_fl_state_free(st);
}

/* ---- a full table ----------------------------------------------------- */

#define BIG_FLOWS 262144
#define BIG_ENIS 4096

struct counter {
	struct epg_fl_format fmt;
	size_t n, accept, nodata;
	uint64_t packets;
	size_t chars;
};

static void count_emit(const struct epg_fl_record *r, void *ctx)
{
	struct counter *c = ctx;
	char buf[256];
	int len = epg_fl_format_record(&c->fmt, r, buf, sizeof(buf));

	c->n++;
	c->accept += r->action == EPG_FL_ACCEPT;
	c->nodata += r->status == EPG_FL_NODATA;
	c->packets += r->packets;
	c->chars += len > 0 ? (size_t)len : 0;
}

static double secs_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static int big_collect(struct epg_fl_state *st, struct counter *c, const struct epg_flow *fl,
		       const struct epg_fl_eni *enis, uint64_t start, const char *what)
{
	struct epg_fl_interval iv = {
		.start = start, .end = start + 60, .mono_to_unix_ns = MONO_OFF,
		.flows = fl, .n_flows = BIG_FLOWS, .enis = enis, .n_enis = BIG_ENIS,
	};
	struct timespec t0;
	int rc;

	memset(&c->n, 0, sizeof(*c) - offsetof(struct counter, n));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = epg_fl_collect(st, &iv, count_emit, c);
	printf("flowlog: %d flows, %d interfaces, %s: %d records (%zu bytes of text) in %.3f s\n",
	       BIG_FLOWS, BIG_ENIS, what, rc, c->chars, secs_since(&t0));
	return rc;
}

static void test_big(void)
{
	struct epg_fl_eni *enis = calloc(BIG_ENIS, sizeof(*enis));
	struct epg_flow *fl = calloc(BIG_FLOWS, sizeof(*fl));
	struct epg_fl_state *st = epg_fl_state_new();
	struct counter c;
	char (*ids)[24] = calloc(BIG_ENIS, sizeof(*ids));
	size_t i;
	int rc;

	if (!enis || !fl || !st || !ids) {
		SKIP("out of memory for the big case");
		goto free_all;
	}
	epg_fl_format_parse(NULL, &c.fmt, NULL);
	for (i = 0; i < BIG_ENIS; i++) {
		/* listed in an order unlike their addresses' */
		size_t a = (i * 2654435761u) % BIG_ENIS;

		snprintf(ids[i], sizeof(ids[i]), "eni-%017zx", a);
		enis[i].family = AF_INET;
		enis[i].addr[0] = 10;
		enis[i].addr[1] = 128;
		enis[i].addr[2] = (uint8_t)(a >> 8);
		enis[i].addr[3] = (uint8_t)a;
		enis[i].interface_id = ids[i];
		enis[i].account_id = ACCT;
	}
	for (i = 0; i < BIG_FLOWS; i++) {
		struct epg_flow *f = &fl[i];
		size_t a = i % BIG_ENIS;

		/* client 100.64.x.y:p -> endpoint 10.128.a:443; the endpoint is lo */
		f->key.family = AF_INET;
		f->key.proto = IPPROTO_TCP;
		f->key.lo_addr[0] = 10;
		f->key.lo_addr[1] = 128;
		f->key.lo_addr[2] = (uint8_t)(a >> 8);
		f->key.lo_addr[3] = (uint8_t)a;
		f->key.lo_port = htons(443);
		f->key.hi_addr[0] = 100;
		f->key.hi_addr[1] = 64;
		f->key.hi_addr[2] = (uint8_t)(i >> 16);
		f->key.hi_addr[3] = (uint8_t)(i >> 8);
		f->key.hi_port = htons((uint16_t)(1024 + (i & 0xff)));
		f->val.init_lo = 0;
		f->val.init_dir = EPG_DIR_INGRESS;
		f->val.created_ns = AT(T0 + 1);
		f->val.last_seen_ns = AT(T0 + 50);
		f->val.packets[0] = f->val.packets[1] = 10;
		f->val.bytes[0] = f->val.bytes[1] = 1000;
	}

	rc = big_collect(st, &c, fl, enis, T0, "first interval");
	CHECK_EQ(rc, 2 * BIG_FLOWS, "big: every flow, both directions");
	CHECK_EQ(c.accept, 2 * BIG_FLOWS, "big: ACCEPT records");
	CHECK_EQ(c.packets, 20ull * BIG_FLOWS, "big: packets");

	/* half the flows of every interface grew by one packet inbound */
	for (i = 0; i < BIG_FLOWS; i++) {
		if ((i / BIG_ENIS) % 2)
			continue;
		fl[i].val.packets[0]++;
		fl[i].val.bytes[0] += 100;
	}
	rc = big_collect(st, &c, fl, enis, T0 + 60, "second interval, half grew");
	CHECK_EQ(rc, BIG_FLOWS / 2, "big: only the flows that grew");
	CHECK_EQ(c.packets, BIG_FLOWS / 2, "big: deltas");
	CHECK_EQ(c.nodata, 0, "big: no NODATA (every interface has flows that grew)");

	/* the other half replaced by new flows on their keys */
	for (i = 0; i < BIG_FLOWS; i++)
		if ((i / BIG_ENIS) % 2)
			fl[i].val.created_ns = AT(T0 + 121);
	rc = big_collect(st, &c, fl, enis, T0 + 120, "third interval, half replaced");
	CHECK_EQ(rc, BIG_FLOWS, "big: the new flows, from zero");
	CHECK_EQ(c.packets, 20ull * (BIG_FLOWS / 2), "big: new flows reported in full");

	rc = big_collect(st, &c, fl, enis, T0 + 180, "fourth interval, unchanged");
	CHECK_EQ(rc, BIG_ENIS, "big: NODATA only");
	CHECK_EQ(c.nodata, BIG_ENIS, "big: NODATA per interface");

free_all:
	epg_fl_state_free(st);
	free(ids);
	free(fl);
	free(enis);
}

int main(void)
{
	test_format_parse();
	test_format_record();
	test_collect();
	test_collect_stale();
	test_collect_raw_keys();
	test_collect_multi_addr();
	test_collect_custom();
	test_random();
	test_big();
	return check_summary();
}
