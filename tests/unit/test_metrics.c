// SPDX-License-Identifier: MIT
/*
 * Unit tests for user/lib/metrics.c, the Prometheus renderer (no root):
 * a small crafted snapshot gives exact lines; label values are escaped and
 * made valid UTF-8; every render is checked for structure (families in the
 * contract's order, HELP and TYPE exactly once and before the samples,
 * counters and only counters ending in _total, well-formed labels, no
 * duplicate series) and by `promtool check metrics`, which must be
 * installed (scripts/install-deps.sh does: Debian package prometheus);
 * a snapshot of 10,000 endpoints and 100,000 rules renders, and the time it
 * took is printed.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "metrics.h"

/* The contract: families, in order. */
static const struct {
	const char *name, *type;
} families[] = {
	{ "epgate_endpoint_packets_total", "counter" },
	{ "epgate_endpoint_bytes_total", "counter" },
	{ "epgate_rule_hits_total", "counter" },
	{ "epgate_conntrack_entries", "gauge" },
	{ "epgate_conntrack_allowance_available", "gauge" },
	{ "epgate_conntrack_allowance_exceeded_total", "counter" },
	{ "epgate_spoofed_packets_total", "counter" },
	{ "epgate_passthrough_packets_total", "counter" },
	{ "epgate_policy_generation", "gauge" },
	{ "epgate_policy_apply_timestamp_seconds", "gauge" },
	{ "epgate_policy_apply_errors_total", "counter" },
	{ "epgate_attached", "gauge" },
	{ "epgate_build_info", "gauge" },
	{ "epgate_flowlog_records_skipped_total", "counter" },
	{ "epgate_flowlog_write_errors_total", "counter" },
};
#define N_FAMILIES (sizeof(families) / sizeof(families[0]))

/* Reasons that get series: all but the unused slot. */
#define N_REASONS EPG_R_COUNT

/* Lines every render has besides endpoints, rules and interfaces: HELP and
 * TYPE of each family, and the 11 single-sample families. */
#define FIXED_LINES (2 * N_FAMILIES + 11)

static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)); p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
	return false;
}

/* Offset of the line that starts with prefix, or -1. */
static long line_at(const char *text, const char *prefix)
{
	for (const char *p = text; (p = strstr(p, prefix)); p++)
		if (p == text || p[-1] == '\n')
			return p - text;
	return -1;
}

static void set(char *dst, size_t size, const char *src)
{
	memset(dst, 0, size);
	memcpy(dst, src, strnlen(src, size));
}

/* Structure ------------------------------------------------------------- */

struct span {
	const char *p;
	size_t n;
};

static int cmp_span(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	int c = memcmp(x->p, y->p, x->n < y->n ? x->n : y->n);

	return c ? c : x->n < y->n ? -1 : x->n > y->n;
}

struct problems {
	int n;
	char first[512];
};

static void problem(struct problems *pr, const char *what, const char *line, size_t n)
{
	if (!pr->n++)
		snprintf(pr->first, sizeof(pr->first), "%s: '%.*s'", what,
			 (int)(n > 300 ? 300 : n), line);
}

static bool ends_with(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);

	return n >= k && !memcmp(s + n - k, suffix, k);
}

/* name{label="value",...} value: labels well formed, escapes only \\ \" \n.
 * Returns the length of the series part (before the value), 0 if malformed. */
static size_t parse_sample(const char *l, size_t n, size_t *name_len)
{
	size_t i = 0;
	char *end;

	while (i < n && (isalnum((unsigned char)l[i]) || l[i] == '_' || l[i] == ':'))
		i++;
	*name_len = i;
	if (!i || i == n)
		return 0;
	if (l[i] == '{') {
		i++;
		for (;;) {
			size_t start = i;

			while (i < n && (isalnum((unsigned char)l[i]) || l[i] == '_'))
				i++;
			if (i == start || isdigit((unsigned char)l[start]) ||
			    i + 1 >= n || l[i] != '=' || l[i + 1] != '"')
				return 0;
			for (i += 2; i < n && l[i] != '"'; i++)
				if (l[i] == '\\' && (++i == n || !strchr("\\\"n", l[i])))
					return 0;
			if (i == n)
				return 0;
			i++;
			if (i < n && l[i] == ',') {
				i++;
				continue;
			}
			if (i < n && l[i] == '}') {
				i++;
				break;
			}
			return 0;
		}
	}
	if (i + 1 >= n || l[i] != ' ')
		return 0;
	{
		char num[32];
		size_t k = n - i - 1;

		if (k >= sizeof(num))
			return 0;
		memcpy(num, l + i + 1, k);
		num[k] = '\0';
		errno = 0;
		strtod(num, &end);
		if (errno || *end || end == num)
			return 0;
	}
	return i;
}

/* Checks the structure of a render; returns its number of lines. */
static size_t check_structure(const char *what, const char *text, size_t len)
{
	struct problems pr = { 0 };
	struct span *series = NULL;
	size_t n_lines = 0, n_series = 0, cap = 0, dups = 0;
	long cur = -1;       /* family whose HELP came last */
	bool typed = false;  /* its TYPE came too */
	const char *p = text, *end = text + len;

	CHECK(len > 0 && text[len - 1] == '\n', "%s: does not end with a newline", what);
	CHECK_EQ(strlen(text), len, "%s: length or a NUL inside", what);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p), series_len, name_len;

		n_lines++;
		if (!strncmp(p, "# HELP ", 7)) {
			size_t k = strlen(families[cur + 1 < (long)N_FAMILIES ? cur + 1 : 0].name);

			if (cur + 1 >= (long)N_FAMILIES ||
			    strncmp(p + 7, families[cur + 1].name, k) || n <= 8 + k || p[7 + k] != ' ')
				problem(&pr, "HELP out of order, repeated or empty", p, n);
			else
				cur++;
			typed = false;
		} else if (!strncmp(p, "# TYPE ", 7)) {
			char want[128];

			snprintf(want, sizeof(want), "# TYPE %s %s", cur >= 0 ? families[cur].name : "-",
				 cur >= 0 ? families[cur].type : "-");
			if (cur < 0 || typed || n != strlen(want) || memcmp(p, want, n))
				problem(&pr, "TYPE not right after its HELP, or wrong", p, n);
			typed = true;
		} else if (!(series_len = parse_sample(p, n, &name_len))) {
			problem(&pr, "malformed line", p, n);
		} else {
			if (cur < 0 || !typed || name_len != strlen(families[cur].name) ||
			    memcmp(p, families[cur].name, name_len))
				problem(&pr, "sample outside its family (or before HELP and TYPE)", p, n);
			if (n_series == cap) {
				cap = cap ? 2 * cap : 1024;
				series = realloc(series, cap * sizeof(*series));
				if (!series) {
					CHECK(0, "out of memory");
					return n_lines;
				}
			}
			series[n_series++] = (struct span){ p, series_len };
		}
		p += n + 1;
	}
	CHECK_EQ(pr.n, 0, "%s: %d problems, first: %s", what, pr.n, pr.first);
	CHECK_EQ(cur, (long)N_FAMILIES - 1, "%s: families missing", what);
	for (size_t i = 0; i < N_FAMILIES; i++) {
		bool counter = !strcmp(families[i].type, "counter");
		const char *nm = families[i].name;

		CHECK(counter == ends_with(nm, strlen(nm), "_total"),
		      "%s: %s is a %s", what, nm, families[i].type);
	}
	qsort(series, n_series, sizeof(*series), cmp_span);
	for (size_t i = 1; i < n_series; i++)
		if (!cmp_span(&series[i - 1], &series[i]) && !dups++)
			fprintf(stderr, "%s: duplicate series %.*s\n", what, (int)series[i].n,
				series[i].p);
	CHECK_EQ(dups, 0, "%s: duplicate series", what);
	free(series);
	return n_lines;
}

/* promtool check metrics must say nothing and exit 0. */
static void check_promtool(const char *what, const char *text, size_t len)
{
	char path[] = "/tmp/epgate-test-metrics-XXXXXX", cmd[128], msg[2048];
	size_t got = 0, n;
	FILE *f, *p;
	int fd, status;

	if (system("command -v promtool >/dev/null 2>&1") != 0) {
		CHECK(0, "%s: promtool not found: install the Debian package prometheus "
			 "(scripts/install-deps.sh does)", what);
		return;
	}
	fd = mkstemp(path);
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f || fwrite(text, 1, len, f) != len || fclose(f)) {
		CHECK(0, "%s: cannot write %s: %s", what, path, strerror(errno));
		unlink(path);
		return;
	}
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s 2>&1", path);
	p = popen(cmd, "r");
	if (!p) {
		CHECK(0, "%s: popen: %s", what, strerror(errno));
		unlink(path);
		return;
	}
	while ((n = fread(msg + got, 1, sizeof(msg) - 1 - got, p)) > 0)
		got += n;
	while (fgetc(p) != EOF) /* past what msg holds */
		got++;
	msg[got < sizeof(msg) ? got : sizeof(msg) - 1] = '\0';
	status = pclose(p);
	unlink(path);
	CHECK(status == 0 && got == 0, "%s: promtool check metrics: exit %d: %s", what,
	      WIFEXITED(status) ? WEXITSTATUS(status) : -1, msg);
}

/* The small snapshot ---------------------------------------------------- */

static void test_small(void)
{
	struct epg_ep_snapshot eps[4] = { 0 };
	struct epg_rule_snapshot rules[5] = { 0 };
	struct epg_iface_snapshot ifs[2] = { 0 };
	struct epg_snapshot s = { 0 };
	struct epg_metrics_input in = {
		.snap = &s, .ct_entries = 10, .ct_max = EPG_CT_MAX, .apply_errors = 1,
		.flowlog_skipped = 3, .flowlog_write_errors = 2, .version = "1.2.3",
	};
	char *text = NULL;
	size_t len = 0, lines;
	int rc;

	s.meta.generation = 4;
	s.meta.apply_time_ns = 1700000000500000000ull;
	s.global[EPG_G_PASSTHROUGH].packets = 99;
	s.spoofed.packets = 7;
	s.global[EPG_G_CT_EXCEEDED].packets = 6;

	/* Out of order; vpce-0b twice (two slots, the same series: summed). */
	set(eps[0].info.endpoint_id, EPG_ID_LEN, "vpce-0c");
	set(eps[0].info.service_name, EPG_SERVICE_LEN, "com.amazonaws.eu-west-1.sqs");
	set(eps[1].info.endpoint_id, EPG_ID_LEN, "vpce-0a");
	set(eps[1].info.service_name, EPG_SERVICE_LEN, "com.\"quoted\"\\back\nline");
	eps[1].c[EPG_DIR_INGRESS][EPG_R_RULE] = (struct epg_counter){ 7, 700 };
	eps[1].c[EPG_DIR_INGRESS][EPG_R_NO_RULE] = (struct epg_counter){ 2, 120 };
	eps[1].c[EPG_DIR_EGRESS][EPG_R_TRACKED] = (struct epg_counter){ 3, 300 };
	set(eps[2].info.endpoint_id, EPG_ID_LEN, "vpce-0b");
	set(eps[2].info.service_name, EPG_SERVICE_LEN, "com.amazonaws.eu-west-1.s3");
	eps[2].c[EPG_DIR_INGRESS][EPG_R_RULE] = (struct epg_counter){ 1, 60 };
	eps[3] = eps[2];
	eps[3].slot = 9;
	eps[3].c[EPG_DIR_INGRESS][EPG_R_RULE] = (struct epg_counter){ 2, 100 };
	s.eps = eps;
	s.n_eps = 4;

	set(rules[0].info.group_id, EPG_ID_LEN, "acl-0123");
	set(rules[0].info.rule_id, sizeof(rules[0].info.rule_id), "r-00000001");
	rules[0].info.kind = EPG_RULE_ACL;
	rules[0].info.dir = EPG_DIR_EGRESS;
	rules[0].c = (struct epg_counter){ 2, 200 };
	set(rules[1].info.group_id, EPG_ID_LEN, "sg-1");
	set(rules[1].info.rule_id, sizeof(rules[1].info.rule_id), "r-00000002");
	rules[1].info.dir = EPG_DIR_EGRESS;
	rules[1].c = (struct epg_counter){ 1, 100 };
	set(rules[2].info.group_id, EPG_ID_LEN, "sg-1");
	set(rules[2].info.rule_id, sizeof(rules[2].info.rule_id), "r-37e57e44");
	rules[2].info.dir = EPG_DIR_INGRESS;
	rules[2].c = (struct epg_counter){ 5, 500 };
	/* The same id under the ACL kind: another label, another series. */
	rules[3] = rules[2];
	rules[3].info.kind = EPG_RULE_ACL;
	rules[3].c = (struct epg_counter){ 0, 0 };
	/* r-00000002 in a second slot: the same series, summed. */
	rules[4] = rules[1];
	rules[4].slot = 7;
	rules[4].c = (struct epg_counter){ 3, 300 };
	s.rules = rules;
	s.n_rules = 5;

	set(ifs[0].info.name, sizeof(ifs[0].info.name), "eth1");
	ifs[0].info.mode = EPG_MODE_SKB;
	ifs[0].info.prog_id = 40;
	set(ifs[1].info.name, sizeof(ifs[1].info.name), "eth0");
	ifs[1].info.mode = EPG_MODE_NATIVE;
	ifs[1].info.prog_id = 41;
	ifs[1].info.tc_prog_id = 42;
	s.ifaces = ifs;
	s.n_ifaces = 2;

	rc = epg_metrics_render(&in, &text, &len);
	CHECK_EQ(rc, 0, "render");
	if (rc)
		return;

	static const char *const want[] = {
		"# HELP epgate_endpoint_packets_total Packets to (ingress) or from (egress) a VPC "
		"endpoint address, by verdict and reason.",
		"# TYPE epgate_endpoint_packets_total counter",
		"epgate_endpoint_packets_total{endpoint_id=\"vpce-0a\","
		"service_name=\"com.\\\"quoted\\\"\\\\back\\nline\",direction=\"ingress\","
		"action=\"accept\",reason=\"rule\"} 7",
		"epgate_endpoint_packets_total{endpoint_id=\"vpce-0a\","
		"service_name=\"com.\\\"quoted\\\"\\\\back\\nline\",direction=\"ingress\","
		"action=\"reject\",reason=\"no_rule\"} 2",
		"epgate_endpoint_bytes_total{endpoint_id=\"vpce-0a\","
		"service_name=\"com.\\\"quoted\\\"\\\\back\\nline\",direction=\"egress\","
		"action=\"accept\",reason=\"tracked\"} 300",
		"epgate_endpoint_packets_total{endpoint_id=\"vpce-0b\","
		"service_name=\"com.amazonaws.eu-west-1.s3\",direction=\"ingress\","
		"action=\"accept\",reason=\"rule\"} 3",
		"epgate_endpoint_bytes_total{endpoint_id=\"vpce-0b\","
		"service_name=\"com.amazonaws.eu-west-1.s3\",direction=\"ingress\","
		"action=\"accept\",reason=\"rule\"} 160",
		"epgate_endpoint_packets_total{endpoint_id=\"vpce-0c\","
		"service_name=\"com.amazonaws.eu-west-1.sqs\",direction=\"egress\","
		"action=\"reject\",reason=\"conntrack_allowance_exceeded\"} 0",
		"epgate_endpoint_bytes_total{endpoint_id=\"vpce-0c\","
		"service_name=\"com.amazonaws.eu-west-1.sqs\",direction=\"ingress\","
		"action=\"accept\",reason=\"related\"} 0",
		"# TYPE epgate_rule_hits_total counter",
		"epgate_rule_hits_total{group_id=\"sg-1\",direction=\"ingress\",rule=\"r-37e57e44\"} 5",
		"epgate_rule_hits_total{group_id=\"sg-1\",direction=\"egress\",rule=\"r-00000002\"} 4",
		"epgate_rule_hits_total{network_acl_id=\"acl-0123\",direction=\"egress\","
		"rule=\"r-00000001\"} 2",
		"epgate_rule_hits_total{network_acl_id=\"sg-1\",direction=\"ingress\","
		"rule=\"r-37e57e44\"} 0",
		"# TYPE epgate_conntrack_entries gauge",
		"epgate_conntrack_entries 10",
		"epgate_conntrack_allowance_available 262134",
		"# TYPE epgate_conntrack_allowance_exceeded_total counter",
		"epgate_conntrack_allowance_exceeded_total 6",
		"# TYPE epgate_spoofed_packets_total counter",
		"epgate_spoofed_packets_total 7",
		"epgate_passthrough_packets_total 99",
		"epgate_policy_generation 4",
		"epgate_policy_apply_timestamp_seconds 1700000000.5",
		"epgate_policy_apply_errors_total 1",
		"# TYPE epgate_attached gauge",
		"epgate_attached{interface=\"eth0\",mode=\"native\",hook=\"xdp\"} 1",
		"epgate_attached{interface=\"eth0\",mode=\"native\",hook=\"tc\"} 1",
		"epgate_attached{interface=\"eth1\",mode=\"skb\",hook=\"xdp\"} 1",
		"epgate_build_info{version=\"1.2.3\"} 1",
		"# TYPE epgate_flowlog_records_skipped_total counter",
		"epgate_flowlog_records_skipped_total 3",
		"# TYPE epgate_flowlog_write_errors_total counter",
		"epgate_flowlog_write_errors_total 2",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		CHECK(has_line(text, want[i]), "missing line: %s", want[i]);

	CHECK(strstr(text, "reason=\"not_enforced\"") != NULL,
	      "not_enforced (exempt peers) has series like every reason");
	CHECK(!strstr(text, "interface=\"eth1\",mode=\"skb\",hook=\"tc\""),
	      "tc series without a tc program");
	/* Order: endpoints by id, security groups before ACLs, ingress first. */
	CHECK(line_at(text, "epgate_endpoint_packets_total{endpoint_id=\"vpce-0a\"") <
	      line_at(text, "epgate_endpoint_packets_total{endpoint_id=\"vpce-0b\""), "order");
	CHECK(line_at(text, "epgate_endpoint_packets_total{endpoint_id=\"vpce-0b\"") <
	      line_at(text, "epgate_endpoint_packets_total{endpoint_id=\"vpce-0c\""), "order");
	CHECK(line_at(text, "epgate_rule_hits_total{group_id=\"sg-1\",direction=\"ingress\"") <
	      line_at(text, "epgate_rule_hits_total{group_id=\"sg-1\",direction=\"egress\""),
	      "order");
	CHECK(line_at(text, "epgate_rule_hits_total{group_id=") <
	      line_at(text, "epgate_rule_hits_total{network_acl_id="), "order");
	CHECK(line_at(text, "epgate_attached{interface=\"eth0\"") <
	      line_at(text, "epgate_attached{interface=\"eth1\""), "order");

	lines = check_structure("small", text, len);
	/* 3 endpoints (vpce-0b merged), 4 rules (r-00000002 merged), 3 attach
	 * series. */
	CHECK_EQ(lines, FIXED_LINES + 3 * 2 * EPG_DIR_MAX * N_REASONS + 4 + 3, "small: lines");
	check_promtool("small", text, len);

	/* The same input renders the same text. */
	{
		char *again = NULL;
		size_t len2 = 0;

		CHECK_EQ(epg_metrics_render(&in, &again, &len2), 0, "render again");
		CHECK(again && len2 == len && !memcmp(again, text, len), "not deterministic");
		free(again);
	}
	free(text);
}

/* Label values: fields without a NUL, bytes that are not UTF-8, an empty
 * snapshot's families; ct_entries above ct_max. */
static void test_edges(void)
{
	struct epg_ep_snapshot ep = { 0 };
	struct epg_iface_snapshot ifc = { 0 };
	struct epg_snapshot s = { 0 };
	struct epg_metrics_input in = { .snap = &s, .ct_entries = 5, .ct_max = 4 };
	char *text = NULL, want[512];
	size_t len = 0;

	/* No endpoints, rules or interfaces, no version. */
	CHECK_EQ(epg_metrics_render(&in, &text, &len), 0, "render empty");
	if (text) {
		CHECK_EQ(check_structure("empty", text, len), FIXED_LINES, "empty: lines");
		CHECK(has_line(text, "epgate_conntrack_allowance_available 0"), "clamped at 0");
		CHECK(has_line(text, "epgate_policy_apply_timestamp_seconds 0"), "never applied");
		CHECK(has_line(text, "epgate_build_info{version=\"unknown\"} 1"), "no version");
		check_promtool("empty", text, len);
	}
	free(text);

	memset(ep.info.endpoint_id, 'x', EPG_ID_LEN); /* no NUL */
	/* "é" is kept; each byte of a "€" cut after 2 of its 3 bytes, a lone
	 * continuation byte and 0xff become U+FFFD. */
	set(ep.info.service_name, EPG_SERVICE_LEN, "caf\xc3\xa9 \xe2\x82|\x80|\xff|");
	memset(ifc.info.name, 'i', sizeof(ifc.info.name)); /* no NUL */
	ifc.info.mode = 7;
	s.eps = &ep;
	s.n_eps = 1;
	s.ifaces = &ifc;
	s.n_ifaces = 1;
	s.meta.apply_time_ns = 1000000001ull;
	in.version = "v\"1\\";
	text = NULL;
	CHECK_EQ(epg_metrics_render(&in, &text, &len), 0, "render edges");
	if (!text)
		return;
	snprintf(want, sizeof(want),
		 "epgate_endpoint_packets_total{endpoint_id=\"%.*s\",service_name=\"caf\xc3\xa9 "
		 "\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd|\xef\xbf\xbd|\",direction=\"ingress\",action=\"accept\","
		 "reason=\"rule\"} 0", EPG_ID_LEN, ep.info.endpoint_id);
	CHECK(has_line(text, want), "missing line: %s", want);
	CHECK(has_line(text, "epgate_attached{interface=\"iiiiiiiiiiiiiiii\",mode=\"unknown\","
			     "hook=\"xdp\"} 1"), "interface name of 16 bytes");
	CHECK(has_line(text, "epgate_policy_apply_timestamp_seconds 1.000000001"), "fraction");
	CHECK(has_line(text, "epgate_build_info{version=\"v\\\"1\\\\\"} 1"), "version escaped");
	CHECK_EQ(check_structure("edges", text, len), FIXED_LINES + 2 * EPG_DIR_MAX * N_REASONS + 1,
		 "edges: lines");
	check_promtool("edges", text, len);
	free(text);
}

/* 10,000 endpoints and 100,000 rules -------------------------------------- */

#define BIG_EPS   10000
#define BIG_RULES 100000
#define BIG_IFS   4

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void test_big(void)
{
	struct epg_snapshot s = { 0 };
	struct epg_metrics_input in = {
		.snap = &s, .ct_entries = 123456, .ct_max = EPG_CT_MAX, .version = "big",
	};
	char *text = NULL;
	size_t len = 0, lines;
	double t0, ms;
	int rc;

	s.eps = calloc(BIG_EPS, sizeof(*s.eps));
	s.rules = calloc(BIG_RULES, sizeof(*s.rules));
	s.ifaces = calloc(BIG_IFS, sizeof(*s.ifaces));
	if (!s.eps || !s.rules || !s.ifaces) {
		CHECK(0, "out of memory");
		goto out_free;
	}
	s.n_eps = BIG_EPS;
	s.n_rules = BIG_RULES;
	s.n_ifaces = BIG_IFS;
	/* Ids in random order; mix is a bijection and its top 56 bits of
	 * 10,000 inputs do not collide (the line count below would tell). */
	for (uint32_t i = 0; i < BIG_EPS; i++) {
		struct epg_ep_snapshot *e = &s.eps[i];

		snprintf(e->info.endpoint_id, EPG_ID_LEN, "vpce-%017llx",
			 (unsigned long long)(mix(i) >> 8));
		snprintf(e->info.service_name, EPG_SERVICE_LEN,
			 "com.amazonaws.vpce.eu-west-1.vpce-svc-%017u", i % 997);
		e->slot = i;
		for (uint32_t d = 0; d < EPG_DIR_MAX; d++)
			for (uint32_t r = 0; r < EPG_R_COUNT; r++)
				e->c[d][r] = (struct epg_counter){ mix(i * 64 + d * 16 + r) >> 40,
								   mix(i * 64 + d * 16 + r) >> 24 };
	}
	for (uint32_t i = 0; i < BIG_RULES; i++) {
		struct epg_rule_info *r = &s.rules[i].info;
		uint32_t g = (uint32_t)(mix(i) % (BIG_RULES / 50));

		r->kind = i % 10 ? EPG_RULE_SG : EPG_RULE_ACL;
		snprintf(r->group_id, EPG_ID_LEN, "%s-%017x", i % 10 ? "sg" : "acl", g);
		snprintf(r->rule_id, sizeof(r->rule_id), "r-%08x", i * 2654435761u);
		r->dir = i & 1;
		s.rules[i].slot = i;
		s.rules[i].c = (struct epg_counter){ mix(i) >> 44, mix(i) >> 30 };
	}
	for (uint32_t i = 0; i < BIG_IFS; i++) {
		snprintf(s.ifaces[i].info.name, sizeof(s.ifaces[i].info.name), "veth%u", i);
		s.ifaces[i].info.mode = i % 2 ? EPG_MODE_SKB : EPG_MODE_NATIVE;
		s.ifaces[i].info.tc_prog_id = i % 2 ? 0 : 100 + i;
	}

	t0 = now_ms();
	rc = epg_metrics_render(&in, &text, &len);
	ms = now_ms() - t0;
	CHECK_EQ(rc, 0, "render big");
	if (rc)
		goto out_free;
	printf("render of %d endpoints and %d rules: %.1f ms, %zu bytes\n", BIG_EPS, BIG_RULES,
	       ms, len);
	lines = check_structure("big", text, len);
	/* Every rule id differs (an odd multiplier is a bijection on 32 bits):
	 * no two rules share a series. */
	{
		size_t want = FIXED_LINES + (size_t)BIG_EPS * 2 * EPG_DIR_MAX * N_REASONS +
			      BIG_RULES + BIG_IFS + BIG_IFS / 2;

		CHECK_EQ(lines, want, "big: lines");
	}
	t0 = now_ms();
	check_promtool("big", text, len);
	printf("promtool check metrics of the big render: %.0f ms\n", now_ms() - t0);
out_free:
	free(text);
	free(s.eps);
	free(s.rules);
	free(s.ifaces);
}

int main(void)
{
	test_small();
	test_edges();
	test_big();
	return check_summary();
}
