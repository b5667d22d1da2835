// SPDX-License-Identifier: MIT
/* epgate: the command line. argv -> library call -> print -> exit code.
 * Exit codes: 0 success, 1 failure, 2 usage or invalid input. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <jansson.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>
#include "epgate.h"
#include "explain.h"
#include "serve.h"
#include "version.h"

#define EXIT_USAGE 2

static bool verbose;
static const char *pin_arg;

static int print_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (!verbose)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static int print_libxdp(enum libxdp_print_level level, const char *fmt, va_list ap)
{
	if (!verbose)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

/* Errors that are the input's fault exit 2; the rest 1. */
static int fail(int rc, const struct epg_error *err)
{
	fprintf(stderr, "epgate: %s\n", err->msg);
	switch (rc) {
	case -EINVAL:
	case -ENODEV:
	case -EEXIST:
	case -E2BIG:
	case -EPROTO:
	case -ENOENT:
	case -EISDIR: /* a directory named as a document, as apply reports it */
		return EXIT_USAGE;
	default:
		return EXIT_FAILURE;
	}
}

static int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "epgate%s%s: ", cmd ? " " : "", cmd ? cmd : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'epgate %s%s--help'.\n", cmd ? cmd : "", cmd ? " " : "");
	return EXIT_USAGE;
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s || v < lo || v > hi)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* --max-endpoints and --max-rules (or $EPGATE_MAX_ENDPOINTS, $EPGATE_MAX_RULES):
 * the counter sizes of pins this command creates. */
enum { OPT_MAX_EPS = 1001, OPT_MAX_RULES };
static const char *max_eps_arg, *max_rules_arg;

/* One size: the option, else the environment; *given when either is set.
 * Returns -1, or the usage error's exit code. */
static int size_of(const char *cmd, const char *arg, const char *opt, const char *env,
		   unsigned max, uint32_t *out, bool *given)
{
	const char *s = arg ? arg : getenv(env);
	unsigned v;

	if (!s || !*s)
		return -1;
	if (parse_uint(s, 1, max, &v))
		return usage_error(cmd, "%s (%s) takes 1..%u, not '%s'", opt, env, max, s);
	*out = v;
	*given = true;
	return -1;
}

static int set_sizes(const char *cmd)
{
	struct epg_sizes sz = { 0 };
	int rc = size_of(cmd, max_eps_arg, "--max-endpoints", "EPGATE_MAX_ENDPOINTS",
			 EPG_MAX_ENDPOINTS, &sz.eps, &sz.eps_given);

	if (rc < 0)
		rc = size_of(cmd, max_rules_arg, "--max-rules", "EPGATE_MAX_RULES",
			     EPG_MAX_RULE_SLOTS, &sz.rule_slots, &sz.rule_slots_given);
	if (rc < 0)
		epg_set_sizes(&sz);
	return rc;
}

/* The options every command takes, before or after its name. */
static void global_opt(int opt, const char *arg)
{
	switch (opt) {
	case 'P':
		pin_arg = arg;
		break;
	case OPT_MAX_EPS:
		max_eps_arg = arg;
		break;
	case OPT_MAX_RULES:
		max_rules_arg = arg;
		break;
	case 'v':
		verbose = true;
		break;
	}
}

/* Common option parsing for subcommands: --pin-dir, -v, --help, plus the
 * command's own. Returns -1 to go on, or an exit code. */
struct cmd {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *synopsis;
	const char *help;
};

static const struct cmd *find_cmd(const char *name);

static int print_version(void)
{
	printf("epgate %s (ABI %d)\n", EPG_VERSION, EPG_ABI_VERSION);
	return EXIT_SUCCESS;
}

static int parse_opts(const struct cmd *c, int argc, char **argv, const char *shortopts,
		      const struct option *extra, size_t n_extra,
		      int (*on_opt)(int opt, const char *arg, void *ctx), void *ctx)
{
	struct option opts[24] = {
		{ "pin-dir", required_argument, NULL, 'P' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "max-endpoints", required_argument, NULL, OPT_MAX_EPS },
		{ "max-rules", required_argument, NULL, OPT_MAX_RULES },
		{ "version", no_argument, NULL, 'V' },
	};
	char so[32];
	int opt;

	memcpy(opts + 6, extra, n_extra * sizeof(*extra));
	snprintf(so, sizeof(so), "vh%s", shortopts);
	optind = 0; /* 0: GNU getopt starts over (permuting again) */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, so, opts, NULL)) != -1) {
		switch (opt) {
		case 'P':
		case OPT_MAX_EPS:
		case OPT_MAX_RULES:
		case 'v':
			global_opt(opt, optarg);
			break;
		case 'h':
			printf("Usage: epgate %s %s\n\n%s", c->name, c->synopsis, c->help);
			return EXIT_SUCCESS;
		case 'V':
			return print_version();
		case '?':
			return usage_error(c->name, "unknown option or missing argument: %s",
					   argv[optind - 1]);
		default:
			if (on_opt(opt, optarg, ctx))
				return EXIT_USAGE;
		}
	}
	return set_sizes(c->name);
}

/* ---- attach / detach ----------------------------------------------------- */

struct attach_args {
	enum epg_attach_mode mode;
	bool replace, mode_given;
};

static int attach_opt(int opt, const char *arg, void *ctx)
{
	struct attach_args *a = ctx;
	enum epg_attach_mode *mode = &a->mode;

	if (opt == 'r') {
		a->replace = true;
		return 0;
	}
	a->mode_given = true;
	if (!strcmp(arg, "native"))
		*mode = EPG_MODE_NATIVE;
	else if (!strcmp(arg, "skb"))
		*mode = EPG_MODE_SKB;
	else
		return usage_error("attach", "--mode takes native or skb, not '%s'", arg), 1;
	return 0;
}

static int cmd_attach(int argc, char **argv)
{
	static const struct option extra[] = { { "mode", required_argument, NULL, 'm' },
					       { "replace", no_argument, NULL, 'r' }, { 0 } };
	struct attach_args a = { .mode = EPG_MODE_NATIVE };
	enum epg_attach_mode mode;
	struct epg_error err = { "" };
	struct epg_maps m;
	int rc;

	rc = parse_opts(find_cmd("attach"), argc, argv, "m:", extra, 3, attach_opt, &a);
	mode = a.mode;
	if (rc >= 0)
		return rc;
	if (argc - optind != 1)
		return usage_error("attach", "expected one interface name");
	if (a.replace && a.mode_given)
		return usage_error("attach", "--replace keeps the mode the interface was attached in; to change it, detach and attach again");
	if (!epg_iface_index(argv[optind], &err)) /* before any pin is made */
		return fail(-ENODEV, &err);
	rc = epg_maps_open(&m, epg_pin_dir(pin_arg), EPG_OPEN_CREATE | EPG_OPEN_LOCK, &err);
	if (rc)
		return fail(rc, &err);
	rc = a.replace ? epg_replace(&m, argv[optind], true, &err) :
			 epg_attach(&m, argv[optind], mode, &err);
	if (rc == -EINVAL) /* the kernel refused the load or the attach: not the input */
		rc = -EIO;
	if (rc < 0) {
		epg_maps_close(&m);
		return fail(rc, &err);
	}
	if (a.replace)
		printf("replaced the programs on %s atomically; policy, counters and flows kept\n",
		       argv[optind]);
	else
		printf("attached to %s (%s mode), maps pinned under %s\n", argv[optind],
		       mode == EPG_MODE_SKB ? "skb" : "native", m.pin_dir);
	epg_maps_close(&m);
	return EXIT_SUCCESS;
}

static int detach_opt(int opt, const char *arg, void *ctx)
{
	*(bool *)ctx = true;
	return 0;
}

/* detach --all: each interface's line; the exit status of the first failure. */
static void detached_one(const char *ifname, int rc, const struct epg_error *err, void *ctx)
{
	int *ret = ctx;

	if (!rc) {
		printf("detached from %s\n", ifname);
		return;
	}
	rc = fail(rc, err);
	if (*ret == EXIT_SUCCESS)
		*ret = rc;
}

static int cmd_detach(int argc, char **argv)
{
	static const struct option extra[] = { { "all", no_argument, NULL, 'a' }, { 0 } };
	struct epg_error err = { "" };
	struct epg_maps m;
	bool all = false;
	int rc, ret = EXIT_SUCCESS;

	rc = parse_opts(find_cmd("detach"), argc, argv, "a", extra, 2, detach_opt, &all);
	if (rc >= 0)
		return rc;
	if (all ? argc != optind : argc - optind != 1)
		return usage_error("detach", all ? "--all takes no interface" :
				   "expected one interface name, or --all");
	rc = epg_maps_open(&m, epg_pin_dir(pin_arg), EPG_OPEN_LOCK, &err);
	if (rc)
		return fail(rc, &err);
	if (!all) {
		rc = epg_detach(&m, argv[optind], &err);
		if (rc)
			ret = fail(rc, &err);
		else
			printf("detached from %s\n", argv[optind]);
		epg_maps_close(&m);
		return ret;
	}
	rc = epg_detach_all(&m, detached_one, &ret, &err);
	if (rc && ret == EXIT_SUCCESS) /* failed before any interface */
		ret = fail(rc, &err);
	epg_maps_close(&m);
	return ret;
}

/* ---- apply --------------------------------------------------------------- */

static int apply_opt(int opt, const char *arg, void *ctx)
{
	*(bool *)ctx = true;
	return 0;
}

static size_t plan_bits(const struct epg_plan *plan, int dir)
{
	size_t n = 0;

	for (size_t r = 0; r < plan->n_rulesets; r++)
		n += plan->rulesets[r].dir[dir].n_bits;
	return n;
}

static int cmd_apply(int argc, char **argv)
{
	static const struct option extra[] = { { "check", no_argument, NULL, 'c' }, { 0 } };
	struct epg_config cfg = { 0 };
	struct epg_error err = { "" };
	struct epg_plan plan;
	struct epg_maps m;
	struct epg_meta meta;
	bool check = false;
	int rc;

	rc = parse_opts(find_cmd("apply"), argc, argv, "", extra, 2, apply_opt, &check);
	if (rc >= 0)
		return rc;
	if (argc == optind)
		return usage_error("apply", "expected one or more JSON files");

	rc = epg_config_load_files(&cfg, (const char *const *)argv + optind,
				   (size_t)(argc - optind), &err);
	if (rc) {
		/* the documents' fault, or a file that is not there: usage */
		fprintf(stderr, "epgate: %s\n", err.msg);
		return rc == -EINVAL || rc == -ENOENT || rc == -EISDIR ? EXIT_USAGE : EXIT_FAILURE;
	}
	rc = epg_compile(&cfg, &plan, &err);
	if (rc) {
		epg_config_free(&cfg);
		return fail(rc == -ENOMEM ? rc : -EINVAL, &err);
	}
	for (size_t i = 0; i < plan.n_warnings; i++)
		fprintf(stderr, "epgate: warning: %s\n", plan.warnings[i]);
	if (check) {
		printf("valid: %zu interface endpoints, %zu rulesets, %zu inbound and %zu outbound rule entries\n",
		       plan.n_eps, plan.n_rulesets, plan_bits(&plan, EPG_DIR_INGRESS),
		       plan_bits(&plan, EPG_DIR_EGRESS));
		epg_plan_free(&plan);
		epg_config_free(&cfg);
		return EXIT_SUCCESS;
	}
	rc = epg_maps_open(&m, epg_pin_dir(pin_arg), EPG_OPEN_CREATE | EPG_OPEN_LOCK, &err);
	if (rc) { /* the pin directory's fault (not on bpffs: 2), as for every command */
		epg_plan_free(&plan);
		epg_config_free(&cfg);
		return fail(rc, &err);
	}
	{
		rc = epg_policy_apply(&m, &plan, &err);
		if (!rc) {
			uint32_t zero = 0;

			bpf_map_lookup_elem(m.meta, &zero, &meta);
			printf("applied generation %llu: %zu interface endpoints, %zu inbound and %zu outbound rule entries\n",
			       (unsigned long long)meta.generation, plan.n_eps,
			       plan_bits(&plan, EPG_DIR_INGRESS), plan_bits(&plan, EPG_DIR_EGRESS));
			/* exempt peers on programs that predate them: applied,
			 * but ignored there until the programs are replaced */
			char msg[640];

			if (epg_exempt_warning(&m, msg, sizeof(msg)) > 0)
				fprintf(stderr, "epgate: warning: %s\n", msg);
		}
		epg_maps_close(&m);
	}
	epg_plan_free(&plan);
	epg_config_free(&cfg);
	/* -EINVAL here: a map write the kernel refused, not the input */
	return rc ? fail(rc == -EINVAL ? -EIO : rc, &err) : EXIT_SUCCESS;
}

/* ---- status / stats ------------------------------------------------------ */

static const char *mode_name(uint32_t mode)
{
	return mode == EPG_MODE_SKB ? "skb" : "native";
}

/* status --json "attach": single-program, libxdp-dispatcher or bpf-link */
static const char *xdp_method_name(uint32_t method)
{
	return method == EPG_XDP_DISPATCHER ? "libxdp-dispatcher" :
	       method == EPG_XDP_LINK ? "bpf-link" : "single-program";
}

static const char *xdp_method_text(uint32_t method)
{
	return method == EPG_XDP_DISPATCHER ? "through libxdp's dispatcher" :
	       method == EPG_XDP_LINK ? "pinned bpf_link (libxdp's dispatcher is unavailable here)" :
	       "single program by netlink (libxdp's dispatcher is unavailable here)";
}

static const char *dir_name(uint32_t dir)
{
	return dir == EPG_DIR_INGRESS ? "ingress" : "egress";
}

static void time_str(uint64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000ull);
	struct tm tm;

	if (!ns) {
		snprintf(buf, len, "never");
		return;
	}
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int read_snapshot(struct epg_maps *m, struct epg_snapshot *s)
{
	struct epg_error err = { "" };
	int rc = epg_maps_open(m, epg_pin_dir(pin_arg), 0, &err);

	if (!rc) {
		rc = epg_snapshot_read(m, s, &err);
		epg_maps_close(m);
	}
	return rc ? fail(rc, &err) : 0;
}

static json_t *addrs_json(const struct epg_ep_snapshot *e)
{
	json_t *a = json_array();

	for (size_t i = 0; i < e->n_addrs; i++)
		json_array_append_new(a, json_string(e->addrs[i]));
	return a;
}

static int print_json(json_t *j)
{
	int rc = json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);

	putchar('\n');
	json_decref(j);
	return rc ? EXIT_FAILURE : EXIT_SUCCESS;
}

static int json_opt(int opt, const char *arg, void *ctx)
{
	bool *flags = ctx;

	flags[opt == 'j' ? 0 : 1] = true;
	return 0;
}

/* What the per-CPU counters take on each CPU. */
static uint64_t counter_bytes(const struct epg_maps *m)
{
	return (uint64_t)m->max_eps * sizeof(struct epg_ep_counters) +
	       (uint64_t)m->max_rule_slots * sizeof(struct epg_counter);
}

static int cmd_status(int argc, char **argv)
{
	static const struct option extra[] = { { "json", no_argument, NULL, 'j' }, { 0 } };
	bool flags[2] = { false, false };
	struct epg_snapshot s;
	struct epg_maps m;
	char when[32];
	int rc;

	rc = parse_opts(find_cmd("status"), argc, argv, "", extra, 2, json_opt, flags);
	if (rc >= 0)
		return rc;
	if (argc != optind)
		return usage_error("status", "unexpected argument '%s'", argv[optind]);
	rc = read_snapshot(&m, &s);
	if (rc)
		return rc;
	time_str(s.meta.apply_time_ns, when, sizeof(when));
	if (flags[0]) {
		json_t *j = json_object(), *ifs = json_array(), *eps = json_array();

		json_object_set_new(j, "pin_dir", json_string(epg_pin_dir(pin_arg)));
		json_object_set_new(j, "abi_version", json_integer(s.meta.abi_version));
		json_object_set_new(j, "generation", json_integer((json_int_t)s.meta.generation));
		json_object_set_new(j, "active_slot", json_integer(s.meta.active_gen));
		json_object_set_new(j, "applied_at", json_string(when));
		for (size_t i = 0; i < s.n_ifaces; i++) {
			const struct epg_iface_info *f = &s.ifaces[i].info;

			json_array_append_new(ifs, json_pack("{s:s, s:i, s:b, s:s, s:s, s:s, s:i, s:i, s:s}",
				"interface", f->name, "ifindex", (int)s.ifaces[i].ifindex,
				"attached", epg_iface_live(s.ifaces[i].ifindex, f),
				"mode", mode_name(f->mode), "hook", "xdp",
				"attach", xdp_method_name(f->xdp_method),
				"program_id", (int)f->prog_id,
				"tc_egress_program_id", (int)f->tc_prog_id,
				"tc_egress_attach", f->tc_method == EPG_TC_TCX ? "tcx-link" : "clsact-filter"));
		}
		for (size_t i = 0; i < s.n_eps; i++) {
			const struct epg_ep_snapshot *e = &s.eps[i];

			json_array_append_new(eps, json_pack("{s:s, s:s, s:o, s:i, s:i, s:s?, s:i, s:i}",
				"endpoint_id", e->info.endpoint_id,
				"service_name", e->info.service_name,
				"addresses", addrs_json(e),
				"inbound_rule_entries", (int)e->info.n_rules[EPG_DIR_INGRESS],
				"outbound_rule_entries", (int)e->info.n_rules[EPG_DIR_EGRESS],
				"network_acl_id", e->info.n_acl_addrs ? e->info.acl_id : NULL,
				"network_acl_addresses", (int)e->info.n_acl_addrs,
				"network_acls", (int)e->info.n_acls));
		}
		json_object_set_new(j, "interfaces", ifs);
		json_object_set_new(j, "endpoints", eps);
		json_object_set_new(j, "rules", json_integer((json_int_t)s.n_rules));
		json_object_set_new(j, "rule_sets_stored", json_integer((json_int_t)s.n_sets));
		json_object_set_new(j, "rule_sets_in_use", json_integer((json_int_t)s.n_sets_used));
		json_object_set_new(j, "exempt_peers", json_integer((json_int_t)s.n_exempt));
		json_object_set_new(j, "deny_cache", json_string(s.meta.flags & EPG_META_NO_DENY_CACHE ?
								 "off" : "on"));
		json_object_set_new(j, "counter_slots", json_pack("{s:I, s:I, s:i, s:I}",
			"endpoints", (json_int_t)m.max_eps, "rules", (json_int_t)m.max_rule_slots,
			"cpus", libbpf_num_possible_cpus(), "bytes_per_cpu", (json_int_t)counter_bytes(&m)));
		epg_snapshot_free(&s);
		return print_json(j);
	}
	printf("pin directory: %s (ABI %u)\n", epg_pin_dir(pin_arg), s.meta.abi_version);
	printf("policy: generation %llu, applied %s, %zu rules\n",
	       (unsigned long long)s.meta.generation, when, s.n_rules);
	printf("rule sets: %zu stored, %zu in use (the rest are kept for reuse until collected)\n",
	       s.n_sets, s.n_sets_used);
	if (s.n_exempt)
		printf("exempt peers: %zu (EpgateSettings.ExemptPeers: what groups or ACLs would drop passes, counted as not_enforced)\n",
		       s.n_exempt);
	if (s.meta.flags & EPG_META_NO_DENY_CACHE)
		printf("deny cache: off (flag %u in epg_meta, for diagnostics: every denied packet judged in full)\n",
		       EPG_META_NO_DENY_CACHE);
	printf("counter slots: %u for endpoints, %u for rules (%zu in use); %.1f MiB per CPU, %d CPUs\n",
	       m.max_eps, m.max_rule_slots, s.n_rules, (double)counter_bytes(&m) / (1 << 20),
	       libbpf_num_possible_cpus());
	printf("interfaces:%s\n", s.n_ifaces ? "" : " none (epgate attach IFACE)");
	for (size_t i = 0; i < s.n_ifaces; i++) {
		const struct epg_iface_info *f = &s.ifaces[i].info;

		printf("  %-16s xdp %-6s program %-6u %s; tc egress program %u (%s)\n", f->name,
		       mode_name(f->mode), f->prog_id, xdp_method_text(f->xdp_method),
		       f->tc_prog_id, f->tc_method == EPG_TC_TCX ? "pinned tcx link" : "clsact filter");
		if (!epg_iface_live(s.ifaces[i].ifindex, f))
			printf("    NOT attached now: the interface was deleted (or made again), or its XDP or tc egress program removed; epgate attach %s again (detach it first), or epgate detach %s\n",
			       f->name, f->name);
	}
	printf("endpoints: %zu\n", s.n_eps);
	for (size_t i = 0; i < s.n_eps; i++) {
		const struct epg_ep_snapshot *e = &s.eps[i];

		printf("  %-24s %-40s inbound %u, outbound %u rule entries\n",
		       e->info.endpoint_id, e->info.service_name,
		       e->info.n_rules[EPG_DIR_INGRESS], e->info.n_rules[EPG_DIR_EGRESS]);
		if (e->info.n_acls > 1)
			printf("      network ACLs %s and %u more (%u of %u addresses)\n",
			       e->info.acl_id, e->info.n_acls - 1, e->info.n_acl_addrs,
			       e->info.n_addrs);
		else if (e->info.n_acl_addrs)
			printf("      network ACL %s (%u of %u addresses)\n", e->info.acl_id,
			       e->info.n_acl_addrs, e->info.n_addrs);
		else
			printf("      no network ACL in the documents for its subnets: security groups alone\n");
		for (size_t a = 0; a < e->n_addrs; a++)
			printf("      %s\n", e->addrs[a]);
	}
	epg_snapshot_free(&s);
	return EXIT_SUCCESS;
}

/* ACL entries sort by rule number ('*' last); the rest by their text. */
static long rule_number(const struct epg_rule_info *r)
{
	if (r->kind != EPG_RULE_ACL || r->desc[0] != '#')
		return 0;
	return r->desc[1] == '*' ? 99999 : strtol(r->desc + 1, NULL, 10);
}

static int cmp_rule(const void *a, const void *b)
{
	const struct epg_rule_info *x = &((const struct epg_rule_snapshot *)a)->info;
	const struct epg_rule_info *y = &((const struct epg_rule_snapshot *)b)->info;
	int c;

	if (x->kind != y->kind)
		return (int)x->kind - (int)y->kind;
	c = strcmp(x->group_id, y->group_id);
	if (c)
		return c;
	if (x->dir != y->dir)
		return (int)x->dir - (int)y->dir;
	if (rule_number(x) != rule_number(y))
		return rule_number(x) < rule_number(y) ? -1 : 1;
	return strcmp(x->desc, y->desc);
}

static int cmd_stats(int argc, char **argv)
{
	static const struct option extra[] = {
		{ "json", no_argument, NULL, 'j' }, { "rules", no_argument, NULL, 'r' }, { 0 } };
	bool flags[2] = { false, false };
	struct epg_snapshot s;
	struct epg_maps m;
	int rc;

	rc = parse_opts(find_cmd("stats"), argc, argv, "", extra, 3, json_opt, flags);
	if (rc >= 0)
		return rc;
	if (argc != optind)
		return usage_error("stats", "unexpected argument '%s'", argv[optind]);
	rc = read_snapshot(&m, &s);
	if (rc)
		return rc;
	qsort(s.rules, s.n_rules, sizeof(*s.rules), cmp_rule);
	if (flags[0]) {
		json_t *j = json_object(), *eps = json_array(), *rules = json_array();

		for (size_t i = 0; i < s.n_eps; i++) {
			const struct epg_ep_snapshot *e = &s.eps[i];
			json_t *cs = json_array();

			for (uint32_t d = 0; d < EPG_DIR_MAX; d++)
				for (uint32_t r = 0; r < EPG_R_COUNT; r++)
					if (e->c[d][r].packets)
						json_array_append_new(cs, json_pack("{s:s, s:s, s:s, s:I, s:I}",
							"direction", dir_name(d),
							"action", epg_reason_is_drop(r) ? "reject" : "accept",
							"reason", epg_reason_label(r),
							"packets", (json_int_t)e->c[d][r].packets,
							"bytes", (json_int_t)e->c[d][r].bytes));
			json_array_append_new(eps, json_pack("{s:s, s:s, s:o, s:o}",
				"endpoint_id", e->info.endpoint_id,
				"service_name", e->info.service_name,
				"addresses", addrs_json(e), "counters", cs));
		}
		json_object_set_new(j, "endpoints", eps);
		json_object_set_new(j, "passthrough_packets",
				    json_integer((json_int_t)s.global[EPG_G_PASSTHROUGH].packets));
		json_object_set_new(j, "passthrough_bytes",
				    json_integer((json_int_t)s.global[EPG_G_PASSTHROUGH].bytes));
		json_object_set_new(j, "spoofed_packets", json_integer((json_int_t)s.spoofed.packets));
		json_object_set_new(j, "spoofed_bytes", json_integer((json_int_t)s.spoofed.bytes));
		if (flags[1]) {
			for (size_t i = 0; i < s.n_rules; i++) {
				const struct epg_rule_snapshot *r = &s.rules[i];

				bool acl = r->info.kind == EPG_RULE_ACL;

				json_array_append_new(rules, json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I}",
					"rule", r->info.rule_id,
					"kind", acl ? "network_acl" : "security_group",
					acl ? "network_acl_id" : "group_id", r->info.group_id,
					"direction", dir_name(r->info.dir), "description", r->info.desc,
					"hits", (json_int_t)r->c.packets, "bytes", (json_int_t)r->c.bytes));
			}
			json_object_set_new(j, "rules", rules);
		} else {
			json_decref(rules);
		}
		epg_snapshot_free(&s);
		return print_json(j);
	}
	printf("%-24s %-8s %-7s %-28s %12s %14s\n", "ENDPOINT", "DIR", "ACTION", "REASON",
	       "PACKETS", "BYTES");
	for (size_t i = 0; i < s.n_eps; i++) {
		const struct epg_ep_snapshot *e = &s.eps[i];
		bool any = false;

		printf("%s  %s", e->info.endpoint_id, e->info.service_name);
		for (size_t a = 0; a < e->n_addrs; a++)
			printf("%s%s", a ? ", " : "  [", e->addrs[a]);
		printf("%s\n", e->n_addrs ? "]" : "");
		for (uint32_t d = 0; d < EPG_DIR_MAX; d++)
			for (uint32_t r = 0; r < EPG_R_COUNT; r++) {
				if (!e->c[d][r].packets)
					continue;
				any = true;
				printf("%-24s %-8s %-7s %-28s %12llu %14llu\n", "", dir_name(d),
				       epg_reason_is_drop(r) ? "reject" : "accept",
				       epg_reason_label(r),
				       (unsigned long long)e->c[d][r].packets,
				       (unsigned long long)e->c[d][r].bytes);
			}
		if (!any)
			printf("%-24s (no packets yet)\n", "");
	}
	printf("passthrough (not endpoint traffic): %llu packets, %llu bytes\n",
	       (unsigned long long)s.global[EPG_G_PASSTHROUGH].packets,
	       (unsigned long long)s.global[EPG_G_PASSTHROUGH].bytes);
	printf("spoofed (an endpoint's source address, arrived where it cannot come from): dropped %llu packets, %llu bytes\n",
	       (unsigned long long)s.spoofed.packets, (unsigned long long)s.spoofed.bytes);
	if (flags[1]) {
		printf("\n%-11s %-24s %-8s %12s %14s  %s\n", "RULE", "GROUP / NETWORK ACL", "DIR",
		       "HITS", "BYTES", "DESCRIPTION");
		for (size_t i = 0; i < s.n_rules; i++) {
			const struct epg_rule_snapshot *r = &s.rules[i];

			printf("%-11s %-24s %-8s %12llu %14llu  %s\n", r->info.rule_id,
			       r->info.group_id, dir_name(r->info.dir),
			       (unsigned long long)r->c.packets,
			       (unsigned long long)r->c.bytes, r->info.desc);
		}
	}
	epg_snapshot_free(&s);
	return EXIT_SUCCESS;
}

/* ---- conntrack ------------------------------------------------------------ */

struct ct_print {
	bool json;
	json_t *arr;
	struct epg_snapshot *s;
	uint64_t now;
	size_t n;
};

static const char *proto_label(uint8_t proto, char *buf, size_t len)
{
	switch (proto) {
	case 6: return "tcp";
	case 17: return "udp";
	case 1: return "icmp";
	case 58: return "icmpv6";
	}
	snprintf(buf, len, "%u", proto);
	return buf;
}

static void side_str(const struct epg_ct_key *k, bool lo, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	uint16_t port = ntohs(lo ? k->lo_port : k->hi_port);

	inet_ntop(k->family, lo ? k->lo_addr : k->hi_addr, a, sizeof(a));
	if (k->family == AF_INET6)
		snprintf(buf, len, "[%s]:%u", a, port);
	else
		snprintf(buf, len, "%s:%u", a, port);
}

static int print_flow(const struct epg_flow *f, void *ctx)
{
	struct ct_print *c = ctx;
	const struct epg_ct_val *v = &f->val;
	/* the initiator is the peer for ingress flows, the endpoint for egress */
	bool ep_lo = v->init_dir == EPG_DIR_INGRESS ? !v->init_lo : v->init_lo;
	char ep[64], peer[64], pb[8];
	const char *ep_id = "";
	uint64_t idle = c->now > v->last_seen_ns ? (c->now - v->last_seen_ns) / 1000000000ull : 0;

	side_str(&f->key, ep_lo, ep, sizeof(ep));
	side_str(&f->key, !ep_lo, peer, sizeof(peer));
	for (size_t i = 0; i < c->s->n_eps; i++)
		if (c->s->eps[i].slot == v->ep_slot)
			ep_id = c->s->eps[i].info.endpoint_id;
	c->n++;
	if (c->json) {
		json_array_append_new(c->arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I}",
			"protocol", proto_label(f->key.proto, pb, sizeof(pb)),
			"endpoint_id", ep_id, "endpoint", ep, "peer", peer,
			"initiated", dir_name(v->init_dir), "state", epg_ct_state_name(v->state),
			"idle_seconds", (json_int_t)idle, "timeout_seconds", (json_int_t)v->timeout_s,
			"packets_in", (json_int_t)v->packets[EPG_DIR_INGRESS],
			"packets_out", (json_int_t)v->packets[EPG_DIR_EGRESS],
			"bytes_in", (json_int_t)v->bytes[EPG_DIR_INGRESS],
			"bytes_out", (json_int_t)v->bytes[EPG_DIR_EGRESS]));
		return 0;
	}
	printf("%-6s %-44s %-44s %-7s %-11s %7llu %8u %9llu/%-9llu %s\n",
	       proto_label(f->key.proto, pb, sizeof(pb)), ep, peer,
	       v->init_dir == EPG_DIR_INGRESS ? "in" : "out", epg_ct_state_name(v->state),
	       (unsigned long long)idle, v->timeout_s,
	       (unsigned long long)v->packets[EPG_DIR_INGRESS],
	       (unsigned long long)v->packets[EPG_DIR_EGRESS], ep_id);
	return 0;
}

static int conntrack_opt(int opt, const char *arg, void *ctx)
{
	bool *flags = ctx;

	flags[opt == 'j' ? 0 : opt == 'e' ? 1 : 2] = true;
	return 0;
}

static uint64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmd_conntrack(int argc, char **argv)
{
	static const struct option extra[] = {
		{ "json", no_argument, NULL, 'j' }, { "expire", no_argument, NULL, 'e' },
		{ "flush", no_argument, NULL, 'f' }, { 0 } };
	bool flags[3] = { false, false, false };
	struct epg_error err = { "" };
	struct ct_print c = { 0 };
	struct epg_snapshot s;
	struct epg_maps m;
	int rc;

	rc = parse_opts(find_cmd("conntrack"), argc, argv, "", extra, 4, conntrack_opt, flags);
	if (rc >= 0)
		return rc;
	if (argc != optind)
		return usage_error("conntrack", "unexpected argument '%s'", argv[optind]);
	if (flags[1] && flags[2])
		return usage_error("conntrack", "--expire and --flush exclude each other");
	rc = epg_maps_open(&m, epg_pin_dir(pin_arg), 0, &err);
	if (rc)
		return fail(rc, &err);
	if (flags[1] || flags[2]) {
		rc = epg_ct_expire(&m, monotonic_ns(), flags[2], NULL);
		epg_frag_expire(&m, monotonic_ns(), flags[2]);
		epg_maps_close(&m);
		if (rc < 0) {
			fprintf(stderr, "epgate: cannot remove flows: %s\n", strerror(-rc));
			return EXIT_FAILURE;
		}
		if (flags[0]) {
			json_t *j = json_object();

			json_object_set_new(j, "removed", json_integer(rc));
			json_object_set_new(j, "which", json_string(flags[2] ? "all" : "idle"));
			return print_json(j);
		}
		printf("removed %d %s flows\n", rc, flags[2] ? "tracked" : "idle");
		return EXIT_SUCCESS;
	}
	rc = epg_snapshot_read(&m, &s, &err);
	if (rc) {
		epg_maps_close(&m);
		return fail(rc, &err);
	}
	c.json = flags[0];
	c.s = &s;
	c.now = monotonic_ns();
	if (c.json)
		c.arr = json_array();
	else
		printf("%-6s %-44s %-44s %-7s %-11s %7s %8s %19s %s\n", "PROTO", "ENDPOINT SIDE",
		       "PEER", "INIT", "STATE", "IDLE_S", "TIMEOUT", "PACKETS IN/OUT", "ENDPOINT");
	rc = epg_ct_foreach(&m, print_flow, &c);
	epg_snapshot_free(&s);
	epg_maps_close(&m);
	if (rc) { /* a part of the table is no answer */
		json_decref(c.arr);
		fprintf(stderr, "epgate: cannot read the flow table (epg_ct): %s\n", strerror(-rc));
		return EXIT_FAILURE;
	}
	if (c.json) {
		json_t *j = json_object();

		json_object_set_new(j, "flows", c.arr);
		json_object_set_new(j, "entries", json_integer((json_int_t)c.n));
		json_object_set_new(j, "allowance_available",
				    json_integer((json_int_t)(EPG_CT_MAX - c.n)));
		return print_json(j);
	}
	printf("%zu flows tracked, %zu more allowed (conntrack_allowance_available)\n", c.n,
	       (size_t)EPG_CT_MAX - c.n);
	return EXIT_SUCCESS;
}

/* ---- serve ------------------------------------------------------------------ */


struct serve_args {
	struct epg_serve_opts o;
	const char *config[64];
	size_t n_config;
};


static int serve_opt(int opt, const char *arg, void *ctx)
{
	struct serve_args *a = ctx;
	char *colon;

	switch (opt) {
	case 'c':
		if (a->n_config == sizeof(a->config) / sizeof(a->config[0]))
			return usage_error("serve", "too many --config files"), 1;
		a->config[a->n_config++] = arg;
		return 0;
	case 'l':
		a->o.listen = arg;
		return 0;
	case 'i':
		if (a->o.n_ifaces == EPG_MAX_SERVE_IFACES)
			return usage_error("serve", "too many --interface options"), 1;
		colon = strchr(arg, ':');
		a->o.modes[a->o.n_ifaces] = EPG_MODE_NATIVE;
		if (colon) {
			a->o.mode_given[a->o.n_ifaces] = true;
			if (!strcmp(colon + 1, "skb"))
				a->o.modes[a->o.n_ifaces] = EPG_MODE_SKB;
			else if (strcmp(colon + 1, "native"))
				return usage_error("serve", "--interface %s: the mode after ':' is native or skb", arg), 1;
			*colon = '\0';
		}
		a->o.ifaces[a->o.n_ifaces++] = arg;
		return 0;
	case 'f':
		a->o.flow_log = arg;
		return 0;
	case 'F':
		a->o.flow_log_format = arg;
		return 0;
	case 'n':
		if (parse_uint(arg, 1, 600, &a->o.flow_log_interval))
			return usage_error("serve", "--flow-log-interval takes 60 or 600 seconds (1..600 for tests), not '%s'", arg), 1;
		return 0;
	case 's':
		if (parse_uint(arg, 1, 3600, &a->o.sweep_interval))
			return usage_error("serve", "--sweep-interval takes 1..3600 seconds, not '%s'", arg), 1;
		return 0;
	}
	return 1;
}

static int cmd_serve(int argc, char **argv)
{
	static const struct option extra[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "interface", required_argument, NULL, 'i' },
		{ "flow-log", required_argument, NULL, 'f' },
		{ "flow-log-format", required_argument, NULL, 'F' },
		{ "flow-log-interval", required_argument, NULL, 'n' },
		{ "sweep-interval", required_argument, NULL, 's' },
		{ 0 } };
	struct serve_args a = { .o = { .flow_log_interval = 60, .sweep_interval = 10 } };
	struct epg_error err = { "" };
	int rc;

	rc = parse_opts(find_cmd("serve"), argc, argv, "", extra, 8, serve_opt, &a);
	if (rc >= 0)
		return rc;
	/* files after --config FILE are more config files */
	while (optind < argc && a.n_config < sizeof(a.config) / sizeof(a.config[0]))
		a.config[a.n_config++] = argv[optind++];
	if (!a.n_config)
		return usage_error("serve", "expected --config FILE...");
	if (optind < argc)
		return usage_error("serve", "too many config files");
	a.o.config = a.config;
	a.o.n_config = a.n_config;
	a.o.pin_dir = epg_pin_dir(pin_arg);
	a.o.verbose = verbose;
	rc = epg_serve(&a.o, &err);
	if (rc == -EBUSY || rc == -EADDRINUSE)
		rc = -EEXIST; /* exit 2: the command cannot run as given */
	return rc ? fail(rc, &err) : EXIT_SUCCESS;
}

/* ---- explain ---------------------------------------------------------------- */

struct explain_args {
	struct epg_explain_query q;
	const char *src, *dst, *proto;
	bool json, have_sport, have_dport;
};

static int explain_opt(int opt, const char *arg, void *ctx)
{
	struct explain_args *a = ctx;
	unsigned v;

	switch (opt) {
	case 'S': a->src = arg; return 0;
	case 'D': a->dst = arg; return 0;
	case 'p': a->proto = arg; return 0;
	case 'j': a->json = true; return 0;
	case 's':
	case 'd':
		if (parse_uint(arg, 0, 65535, &v))
			return usage_error("explain", "a port is 0..65535, not '%s'", arg), 1;
		if (opt == 's') {
			a->q.sport = (uint16_t)v;
			a->have_sport = true;
		} else {
			a->q.dport = (uint16_t)v;
			a->have_dport = true;
		}
		return 0;
	case 't':
	case 'C':
		if (parse_uint(arg, 0, 255, &v))
			return usage_error("explain", "an ICMP type or code is 0..255, not '%s'", arg), 1;
		if (opt == 't')
			a->q.icmp_type = (int)v;
		else
			a->q.icmp_code = (int)v;
		return 0;
	case 'f':
		if (parse_uint(arg, 0, 255, &v))
			return usage_error("explain", "--tcp-flags takes a number 0..255 (SYN 2, ACK 16), not '%s'", arg), 1;
		a->q.tcp_flags = (uint8_t)v;
		return 0;
	}
	return 1;
}

static int cmd_explain(int argc, char **argv)
{
	static const struct option extra[] = {
		{ "src", required_argument, NULL, 'S' }, { "dst", required_argument, NULL, 'D' },
		{ "proto", required_argument, NULL, 'p' }, { "sport", required_argument, NULL, 's' },
		{ "dport", required_argument, NULL, 'd' }, { "icmp-type", required_argument, NULL, 't' },
		{ "icmp-code", required_argument, NULL, 'C' }, { "tcp-flags", required_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' }, { 0 } };
	struct explain_args a = { .q = { .tcp_flags = 0x02 } };
	struct epg_explain_result r;
	struct epg_error err = { "" };
	struct epg_maps m;
	char pb[8];
	int rc;

	rc = parse_opts(find_cmd("explain"), argc, argv, "", extra, 10, explain_opt, &a);
	if (rc >= 0)
		return rc;
	if (argc != optind)
		return usage_error("explain", "unexpected argument '%s'", argv[optind]);
	if (!a.src || !a.dst || !a.proto)
		return usage_error("explain", "--src, --dst and --proto are required");
	a.q.family = strchr(a.src, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(a.q.family, a.src, a.q.src) != 1 ||
	    inet_pton(a.q.family, a.dst, a.q.dst) != 1)
		return usage_error("explain", "--src and --dst must be addresses of one family");
	if (!strcmp(a.proto, "tcp"))
		a.q.proto = IPPROTO_TCP;
	else if (!strcmp(a.proto, "udp"))
		a.q.proto = IPPROTO_UDP;
	else if (!strcmp(a.proto, "icmp"))
		a.q.proto = IPPROTO_ICMP;
	else if (!strcmp(a.proto, "icmpv6"))
		a.q.proto = IPPROTO_ICMPV6;
	else if (parse_uint(a.proto, 0, 255, (unsigned *)&a.q.proto))
		return usage_error("explain", "--proto is tcp, udp, icmp, icmpv6 or a number, not '%s'", a.proto);
	if ((a.q.proto == IPPROTO_TCP || a.q.proto == IPPROTO_UDP) && !a.have_dport)
		return usage_error("explain", "--dport is required for tcp and udp");
	if (!a.have_sport && (a.q.proto == IPPROTO_TCP || a.q.proto == IPPROTO_UDP))
		a.q.sport = 49152;
	rc = epg_maps_open(&m, epg_pin_dir(pin_arg), 0, &err);
	if (rc)
		return fail(rc, &err);
	rc = epg_explain(&m, &a.q, &r, &err);
	epg_maps_close(&m);
	if (rc)
		return fail(rc, &err);
	if (a.json) {
		json_t *j = json_pack("{s:s, s:b, s:I}", "verdict",
				      r.verdict == EPG_DROP ? "reject" : "accept",
				      "endpoint_traffic", r.endpoint_traffic,
				      "generation", (json_int_t)r.generation);

		if (r.endpoint_traffic) {
			json_object_set_new(j, "endpoint_id", json_string(r.ep.endpoint_id));
			json_object_set_new(j, "direction", json_string(dir_name(r.dir)));
			json_object_set_new(j, "reason", r.plumbing ? json_null() :
					    json_string(epg_reason_label(r.reason)));
			json_object_set_new(j, "passes_untouched", json_boolean(r.plumbing));
			json_object_set_new(j, "tracked_flow", r.tracked ?
				json_pack("{s:s, s:I}", "state", epg_ct_state_name(r.flow.state),
					  "timeout_seconds", (json_int_t)r.flow.timeout_s) : json_null());
			if (r.have_acl_entry)
				json_object_set_new(j, "network_acl", json_pack("{s:s, s:s, s:s}",
					"network_acl_id", r.acl_entry.group_id, "rule", r.acl_entry.rule_id,
					"entry", r.acl_entry.desc));
			if (r.have_rule)
				json_object_set_new(j, "security_group", json_pack("{s:s, s:s, s:s}",
					"group_id", r.rule.group_id, "rule", r.rule.rule_id,
					"description", r.rule.desc));
		}
		return print_json(j);
	}
	if (!r.endpoint_traffic) {
		printf("accept: neither %s nor %s is an endpoint address; the packet passes untouched\n",
		       a.src, a.dst);
		return EXIT_SUCCESS;
	}
	if (r.plumbing)
		printf("accept: ICMPv6 neighbour discovery or multicast listener message as the link carries it: link plumbing, passes untouched (not counted under the endpoint)\n");
	else
		printf("%s (%s)\n", r.verdict == EPG_DROP ? "reject" : "accept",
		       epg_reason_label(r.reason));
	printf("  endpoint:      %s %s, %s\n", r.ep.endpoint_id, r.ep.service_name, dir_name(r.dir));
	printf("  packet:        %s %s -> %s", proto_label((uint8_t)a.q.proto, pb, sizeof(pb)),
	       a.src, a.dst);
	if (a.q.proto == IPPROTO_TCP || a.q.proto == IPPROTO_UDP)
		printf(" port %u -> %u", a.q.sport, a.q.dport);
	else if (a.q.proto == IPPROTO_ICMP || a.q.proto == IPPROTO_ICMPV6)
		printf(" type %d code %d", a.q.icmp_type, a.q.icmp_code);
	printf("\n  tracked flow:  %s\n", r.tracked ? epg_ct_state_name(r.flow.state) : "none");
	if (r.have_acl_entry)
		printf("  network ACL:   %s %s (%s)\n", r.acl_entry.group_id, r.acl_entry.desc,
		       r.acl_entry.rule_id);
	else if (!r.ep.n_acl_addrs)
		printf("  network ACL:   none for this endpoint\n");
	if (r.have_rule)
		printf("  security group: %s %s (%s)\n", r.rule.group_id, r.rule.desc, r.rule.rule_id);
	else if (r.reason == EPG_R_NO_RULE || r.reason == EPG_R_TCP_NO_FLOW)
		printf("  security group: no %s rule of the endpoint's groups allows it\n",
		       r.dir == EPG_DIR_INGRESS ? "inbound" : "outbound");
	printf("  policy generation %llu (computed by the installed datapath)\n",
	       (unsigned long long)r.generation);
	return EXIT_SUCCESS;
}

/* ---- the table of commands ---------------------------------------------- */

static const struct cmd cmds[] = {
	{ "attach", cmd_attach, "IFACE [--mode native|skb] [--replace]",
	  "Load the datapath (once) and attach its XDP program to IFACE through\n"
	  "libxdp's dispatcher, or where that is unavailable through a bpf_link\n"
	  "pinned at PIN_DIR/links/xdp-IFINDEX; and its tc egress program, for\n"
	  "what the host sends, through a tcx link (PIN_DIR/links/tc-IFINDEX) or\n"
	  "a clsact filter. Every interface shares the same pinned maps and policy.\n"
	  "  --mode native  XDP in the driver (default)\n"
	  "  --mode skb     generic XDP, for drivers without native support\n"
	  "  --replace      upgrade: replace the programs attached on IFACE by this\n"
	  "                 build's atomically (link update, or netlink replace),\n"
	  "                 keeping policy, counters, flows and the mode (not with\n"
	  "                 --mode; not through libxdp's dispatcher: there, detach\n"
	  "                 and attach again)\n" },
	{ "detach", cmd_detach, "IFACE | --all",
	  "Remove epgate's programs from IFACE (and unpin its links), or from\n"
	  "every interface it is attached to. Maps, policy and counters stay pinned.\n" },
	{ "apply", cmd_apply, "[--check] FILE...",
	  "Read the JSON printed by aws ec2 describe-vpc-endpoints,\n"
	  "describe-network-interfaces, describe-security-groups,\n"
	  "describe-network-acls (and describe-managed-prefix-lists with entries),\n"
	  "merge them, compile the policy and switch to it atomically. Invalid input\n"
	  "changes nothing.\n"
	  "  --check  validate and compile only; touch nothing (no root needed). What\n"
	  "           only the pins can tell (their counter slots and map sizes) is\n"
	  "           checked by apply itself, before anything changes.\n" },
	{ "status", cmd_status, "[--json]",
	  "Show the pin directory, policy generation, rule sets (stored, in use),\n"
	  "exempt peers, counter slots (and their per-CPU memory),\n"
	  "interfaces (mode, program, how attached) and endpoints.\n" },
	{ "stats", cmd_stats, "[--json] [--rules]",
	  "Show packets and bytes per endpoint, direction, action and reason,\n"
	  "and with --rules the hits of every security-group rule (counted when a\n"
	  "rule lets a flow in or out; later packets of the flow count as tracked)\n"
	  "and of every network ACL entry, by rule number (every packet it judges).\n" },
	{ "serve", cmd_serve,
	  "--config FILE... [--listen ADDR:PORT] [--interface IFACE[:skb|:native]]... [--flow-log FILE|-]\n"
	  "            [--flow-log-interval 60|600] [--flow-log-format FMT] [--sweep-interval N]",
	  "Run in the foreground (systemd-friendly): apply the config (a bad one:\n"
	  "exit, attaching nothing), then attach to the --interface interfaces not\n"
	  "yet attached and adopt those that are (replacing their programs\n"
	  "atomically when they are another build's, except through libxdp's\n"
	  "dispatcher),\n"
	  "re-apply it on SIGHUP (a bad config keeps the running policy and counts\n"
	  "epgate_policy_apply_errors_total), serve /metrics (Prometheus) and /healthz\n"
	  "over HTTP, remove idle flows, and write VPC Flow Logs records.\n"
	  "  --listen ADDR:PORT       default " EPG_DEFAULT_LISTEN "; [::1]:PORT for IPv6\n"
	  "  --flow-log FILE          append records to FILE (reopened on SIGUSR1), - for stdout\n"
	  "  --flow-log-interval N    aggregation interval: 60 (default) or 600 s; 1..600 accepted\n"
	  "  --flow-log-format FMT    ${field} names, e.g. '${version} ${srcaddr} ${action}';\n"
	  "                           default: the version 2 default format\n"
	  "  --sweep-interval N       seconds between idle-flow sweeps, 1..3600 (default 10)\n"
	  "  --interface IFACE[:MODE] native XDP (the default) or skb (generic XDP)\n"
	  "Up to 64 config files. The options are checked before anything is applied\n"
	  "or attached. Stopping it (SIGTERM) or losing it leaves the datapath\n"
	  "attached and enforcing. One serve per pin directory.\n" },
	{ "explain", cmd_explain,
	  "--src ADDR --dst ADDR --proto P [--sport N] [--dport N] [--icmp-type T --icmp-code C]\n"
	  "            [--tcp-flags N] [--json]",
	  "Say what the installed datapath does with this packet and why: the\n"
	  "verdict and reason, the network ACL entry and security-group rule that\n"
	  "decided, and whether a tracked flow exists. It runs a private copy of the\n"
	  "program on the pinned policy: no counter, flow or policy changes. It\n"
	  "cannot know where a packet would arrive, so the check of a packet\n"
	  "from an endpoint address against the route back to it (spoofing) is\n"
	  "not in its answer; an ICMP error is built without a quoted packet, so\n"
	  "it is never 'related' here.\n"
	  "  --dport N      destination port, required for tcp and udp\n"
	  "  --sport N      source port (default 49152); for icmp echo, its\n"
	  "                 identifier (default 0)\n"
	  "  --icmp-type T, --icmp-code C  for icmp and icmpv6 (default 0 each)\n"
	  "  --tcp-flags N  TCP flags of the packet (default 2, a SYN)\n" },
	{ "conntrack", cmd_conntrack, "[--json] [--expire | --flush]",
	  "List the tracked flows: endpoint side, peer, who initiated, state, idle\n"
	  "time and timeout, packets each way.\n"
	  "  --expire  remove flows idle longer than their timeout now (the sweeper;\n"
	  "            the datapath also removes an idle flow when it meets one)\n"
	  "  --flush   remove every tracked flow: open connections are then judged\n"
	  "            by the rules again, packet by packet; and the fragmented\n"
	  "            datagrams in flight (their later fragments are then dropped\n"
	  "            as 'fragment')\n"
	  "  --json    also with --expire and --flush: {\"removed\": N, \"which\": ...}\n"
	  "While serve writes flow logs, flows removed here are reported as SKIPDATA.\n" },
};

static const struct cmd *find_cmd(const char *name)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(cmds[i].name, name))
			return &cmds[i];
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: epgate [--pin-dir DIR] [--max-endpoints N] [--max-rules N] [-v] COMMAND [ARGS]\n\n"
		   "Enforce VPC endpoint security groups and network ACLs on this host with XDP.\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-9s %s\n", cmds[i].name, cmds[i].synopsis);
	fprintf(f, "\nOptions (before or after COMMAND):\n"
		   "  --pin-dir DIR  bpffs directory of the maps (default $EPGATE_PIN_DIR,\n"
		   "                 else %s)\n"
		   "  --max-endpoints N  endpoint counter slots of pins created now (default\n"
		   "                 $EPGATE_MAX_ENDPOINTS, else the largest power of two, at most\n"
		   "                 %u, within %u MiB of per-CPU counters over the possible CPUs;\n"
		   "                 512 bytes per CPU each)\n"
		   "  --max-rules N  rule counter slots of pins created now (default\n"
		   "                 $EPGATE_MAX_RULES, else the same within %u MiB, at most %u;\n"
		   "                 16 bytes per CPU each). An apply needs slots for all it stores\n"
		   "                 now plus what it adds. Pins keep the sizes they were created\n"
		   "                 with; attach, apply and serve refuse other sizes for them.\n"
		   "  -v, --verbose  show libbpf's and libxdp's messages\n"
		   "  -h, --help     this text; 'epgate COMMAND --help' for a command\n"
		   "  --version      print the version\n\n"
		   "Exit status: 0 success, 1 failure, 2 usage or invalid input.\n",
		EPG_DEFAULT_PIN_DIR, EPG_MAX_ENDPOINTS, EPG_COUNTER_BUDGET >> 20,
		EPG_COUNTER_BUDGET >> 20, EPG_MAX_RULE_SLOTS);
}

/* A command's output that did not reach stdout (a full disk, a closed
 * pipe) is a failure, not a success with part of the answer. */
static int output_written(int rc)
{
	if (fflush(stdout) || ferror(stdout)) {
		fprintf(stderr, "epgate: cannot write the output: %s\n", strerror(errno));
		return rc ? rc : EXIT_FAILURE;
	}
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pin-dir", required_argument, NULL, 'P' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "max-endpoints", required_argument, NULL, OPT_MAX_EPS },
		{ "max-rules", required_argument, NULL, OPT_MAX_RULES },
		{ 0 },
	};
	const struct cmd *c;
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'P':
		case OPT_MAX_EPS:
		case OPT_MAX_RULES:
		case 'v':
			global_opt(opt, optarg);
			break;
		case 'h':
			usage(stdout);
			return output_written(EXIT_SUCCESS);
		case 'V':
			return output_written(print_version());
		default:
			return usage_error(NULL, "unknown option or missing argument: %s",
					   argv[optind - 1]);
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	c = find_cmd(argv[optind]);
	if (!c)
		return usage_error(NULL, "unknown command '%s'", argv[optind]);
	libbpf_set_print(print_libbpf);
	libxdp_set_print(print_libxdp);
	return output_written(c->run(argc - optind, argv + optind));
}
