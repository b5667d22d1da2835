// SPDX-License-Identifier: MIT
/*
 * make bench, part 1: the datapath's per-packet cost through
 * BPF_PROG_TEST_RUN, each scenario measured in the same run as a trivial
 * XDP_PASS program (the floor) and reported as a ratio to it, at several
 * policy sizes; and the control plane: time and peak memory of `epgate
 * apply`, of a one-rule change, of a metrics scrape, map memory.
 *
 * Then the kernel primitives the datapath is made of, each alone
 * (prims.bpf.o, next to this binary), against the same floor: what the
 * per-packet targets leave room for.
 *
 * Usage: bench_micro OUTDIR EPGATE_BINARY   (root; BENCH_QUICK=1 for short)
 * Writes OUTDIR/micro.md, OUTDIR/micro.tsv, OUTDIR/prims.md, OUTDIR/control.md.
 */
#include <libgen.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include "epgate.h"
#include "metrics.h"
#include "epgate.skel.h"
#include "../unit/pkt.h"

static int quick;
static int failures;
static char cleanup_dir[64]; /* the control-plane bench's temp dir, bpffs on /bpf */

/* On every exit path, die() included: unmount and remove what we made. */
static void cleanup(void)
{
	char path[128];

	if (!cleanup_dir[0])
		return;
	if (getenv("BENCH_KEEP")) { /* the pin dir and the documents, to profile by hand */
		fprintf(stderr, "bench: kept %s (bpffs on %s/bpf)\n", cleanup_dir, cleanup_dir);
		return;
	}
	snprintf(path, sizeof(path), "%s/bpf", cleanup_dir);
	umount(path);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/full.json", cleanup_dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/one-more.json", cleanup_dir);
	unlink(path);
	rmdir(cleanup_dir);
	cleanup_dir[0] = '\0';
}

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "bench: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* A sanity check that fails the run. */
static void sane(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "bench: SANITY CHECK FAILED: %s\n", what);
		failures++;
	}
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- policies of a given size ---------------------------------------------- */

struct buf {
	char *p;
	size_t n, cap;
};

static void bput(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < b->cap - b->n) {
			b->n += (size_t)n;
			return;
		}
		b->cap = b->cap ? b->cap * 2 : 1 << 20;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			die("out of memory");
	}
}

static unsigned rnd_state = 12345;
static unsigned rnd(void)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return rnd_state >> 8;
}

/*
 * n_rules rules over n_eps endpoints: endpoint i has address 198.18.x.y (and
 * fd00:e::i) and its own group of n_rules / n_eps rules (CIDRs of every
 * length, port ranges, and one rule naming a referenced group); rule 0 of
 * every group allows tcp 443 from 198.18.0.0/15, the benchmark's traffic.
 * Every endpoint subnet has a network ACL denying tcp 25 from everywhere.
 */
static char *policy(unsigned n_rules, unsigned n_eps, int extra_rule)
{
	struct buf b = { 0 };
	unsigned per = n_rules / n_eps ? n_rules / n_eps : 1;

	bput(&b, "{\"VpcEndpoints\": [");
	for (unsigned i = 0; i < n_eps; i++)
		bput(&b, "%s{\"VpcEndpointId\": \"vpce-%08x\", \"VpcEndpointType\": \"Interface\","
		     "\"ServiceName\": \"com.amazonaws.bench.s%u\", \"NetworkInterfaceIds\": [\"eni-%08x\"]}",
		     i ? "," : "", i, i, i);
	bput(&b, "], \"NetworkInterfaces\": [");
	for (unsigned i = 0; i < n_eps; i++)
		bput(&b, "%s{\"NetworkInterfaceId\": \"eni-%08x\", \"SubnetId\": \"subnet-1\", \"VpcId\": \"vpc-1\","
		     "\"PrivateIpAddress\": \"198.18.%u.%u\", \"Ipv6Addresses\": [{\"Ipv6Address\": \"fd00:e::%x\"}],"
		     "\"Groups\": [{\"GroupId\": \"sg-%08x\"}]}",
		     i ? "," : "", i, 100 + i / 250, 1 + i % 250, i + 1, i);
	bput(&b, ",{\"NetworkInterfaceId\": \"eni-member\", \"PrivateIpAddress\": \"198.19.200.1\","
	     "\"Groups\": [{\"GroupId\": \"sg-member\"}]}");
	bput(&b, "], \"SecurityGroups\": [{\"GroupId\": \"sg-member\", \"IpPermissions\": []}");
	for (unsigned i = 0; i < n_eps; i++) {
		bput(&b, ",{\"GroupId\": \"sg-%08x\", \"IpPermissions\": [", i);
		bput(&b, "{\"IpProtocol\": \"tcp\", \"FromPort\": 443, \"ToPort\": 443,"
		     "\"IpRanges\": [{\"CidrIp\": \"198.18.0.0/15\"}], \"Ipv6Ranges\": [{\"CidrIpv6\": \"fd00::/8\"}]}");
		if (extra_rule && i == 0) /* fixed: the random stream stays the same for the rest */
			bput(&b, ",{\"IpProtocol\": \"tcp\", \"FromPort\": 8443, \"ToPort\": 8443,"
			     "\"IpRanges\": [{\"CidrIp\": \"10.99.0.0/16\"}]}");
		for (unsigned r = 1; r < per; r++) {
			/* mostly single ports, one rule in ten a range of up to 100 */
			unsigned plen = 8 + rnd() % 25, lo = 1024 + rnd() % 60000;
			unsigned len = r % 10 == 3 ? rnd() % 100 : 0;

			if (r % 50 == 1)
				bput(&b, ",{\"IpProtocol\": \"udp\", \"FromPort\": %u, \"ToPort\": %u,"
				     "\"UserIdGroupPairs\": [{\"GroupId\": \"sg-member\"}]}", lo, lo);
			else
				bput(&b, ",{\"IpProtocol\": \"%s\", \"FromPort\": %u, \"ToPort\": %u,"
				     "\"IpRanges\": [{\"CidrIp\": \"10.%u.%u.%u/%u\"}]}",
				     r % 3 ? "tcp" : "udp", lo, lo + len,
				     rnd() % 256, rnd() % 256, rnd() % 256, plen);
		}
		bput(&b, "], \"IpPermissionsEgress\": [{\"IpProtocol\": \"-1\", \"IpRanges\": [{\"CidrIp\": \"0.0.0.0/0\"}],"
		     "\"Ipv6Ranges\": [{\"CidrIpv6\": \"::/0\"}]}]}");
	}
	bput(&b, "], \"NetworkAcls\": [{\"NetworkAclId\": \"acl-1\", \"VpcId\": \"vpc-1\", \"IsDefault\": true,"
	     "\"Associations\": [{\"SubnetId\": \"subnet-1\"}], \"Entries\": ["
	     "{\"RuleNumber\": 10, \"Protocol\": \"6\", \"RuleAction\": \"deny\", \"Egress\": false, \"CidrBlock\": \"0.0.0.0/0\", \"PortRange\": {\"From\": 25, \"To\": 25}},"
	     "{\"RuleNumber\": 11, \"Protocol\": \"6\", \"RuleAction\": \"deny\", \"Egress\": false, \"Ipv6CidrBlock\": \"::/0\", \"PortRange\": {\"From\": 25, \"To\": 25}},"
	     "{\"RuleNumber\": 100, \"Protocol\": \"-1\", \"RuleAction\": \"allow\", \"Egress\": false, \"CidrBlock\": \"0.0.0.0/0\"},"
	     "{\"RuleNumber\": 101, \"Protocol\": \"-1\", \"RuleAction\": \"allow\", \"Egress\": false, \"Ipv6CidrBlock\": \"::/0\"},"
	     "{\"RuleNumber\": 100, \"Protocol\": \"-1\", \"RuleAction\": \"allow\", \"Egress\": true, \"CidrBlock\": \"0.0.0.0/0\"},"
	     "{\"RuleNumber\": 101, \"Protocol\": \"-1\", \"RuleAction\": \"allow\", \"Egress\": true, \"Ipv6CidrBlock\": \"::/0\"}"
	     "]}]}");
	return b.p;
}

/* ---- the datapath --------------------------------------------------------- */

static struct epgate_bpf *skel;
static struct epg_maps maps;
static int floor_fd;

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return 0;
}

static void load(void)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_PASS },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	struct bpf_map *map;

	libbpf_set_print(quiet);
	skel = epgate_bpf__open();
	if (!skel)
		die("open the BPF object: %s", strerror(errno));
	bpf_object__for_each_map(map, skel->obj)
		bpf_map__set_pin_path(map, NULL);
	if (epgate_bpf__load(skel))
		die("load the BPF object (run as root)");
	if (epg_maps_from_object(&maps, skel->obj))
		die("the BPF object lacks a map epgate needs");
	floor_fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "bench_floor", "GPL", insns, 2, NULL);
	if (floor_fd < 0)
		die("load the floor program: %s", strerror(errno));
}

/* Load, compile and install a document; *install: the install part alone. */
static double apply_to(struct epg_maps *m, const char *json, double *install)
{
	const char *names[] = { "bench.json" };
	const char *bufs[] = { json };
	size_t lens[] = { strlen(json) };
	struct epg_config cfg = { 0 };
	struct epg_error err = { "" };
	struct epg_plan plan;
	double t0 = now_s(), t1;

	if (epg_config_load_buffers(&cfg, names, bufs, lens, 1, &err))
		die("config: %s", err.msg);
	if (epg_compile(&cfg, &plan, &err))
		die("compile: %s", err.msg);
	t1 = now_s();
	if (epg_policy_apply(m, &plan, &err))
		die("apply: %s", err.msg);
	*install = now_s() - t1;
	epg_plan_free(&plan);
	epg_config_free(&cfg);
	return now_s() - t0;
}

/* ns per run of prog on frame, median of batches of `repeat` runs */
static double cost(int fd, const void *frame, size_t len, uint32_t *retval)
{
	int batches = quick ? 5 : 11, repeat = quick ? 20000 : 100000;
	double v[16];

	for (int b = 0; b < batches; b++) {
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .data_size_in = (uint32_t)len,
			    .repeat = repeat);
		if (bpf_prog_test_run_opts(fd, &o))
			die("BPF_PROG_TEST_RUN: %s", strerror(errno));
		v[b] = o.duration;
		*retval = o.retval;
	}
	for (int i = 1; i < batches; i++) /* insertion sort, then the median */
		for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
			double t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return v[batches / 2];
}

static uint64_t global_packets(uint32_t idx)
{
	int ncpu = libbpf_num_possible_cpus();
	struct epg_counter c[512];
	uint64_t n = 0;

	if (ncpu > 512 || bpf_map_lookup_elem(maps.global, &idx, c))
		return 0;
	for (int i = 0; i < ncpu; i++)
		n += c[i].packets;
	return n;
}

/* Make every SYN flow expire at once, so each run of a SYN is a new flow
 * (found idle, removed, judged, created): the new-flow path, plus a delete. */
static void syn_timeout_zero(int on)
{
	for (uint32_t i = 0; i < EPG_GENERATIONS * EPG_CT_PROFILES; i++) {
		struct epg_ct_timeouts t;

		if (bpf_map_lookup_elem(maps.ct_prof, &i, &t) || !t.tcp_established)
			continue;
		t.tcp_syn = on ? 0 : EPG_CT_DEFAULT_TCP_SYN;
		bpf_map_update_elem(maps.ct_prof, &i, &t, BPF_ANY);
	}
}

struct scenario {
	const char *name;
	double floor_ratio_target; /* 0: none */
	struct pkt_spec spec;
	int expect;                /* XDP_PASS / XDP_DROP */
	int new_flows;             /* SYN flows expire at once */
	int established;           /* send a SYN first, then measure ACKs */
	int judge_in_full;         /* deny cache off: every packet judged as a first one */
};

/* The deny cache on or off (EPG_META_NO_DENY_CACHE). */
static void deny_cache(int on)
{
	struct epg_meta meta;
	uint32_t zero = 0;

	if (bpf_map_lookup_elem(maps.meta, &zero, &meta))
		die("read epg_meta: %s", strerror(errno));
	meta.flags = on ? meta.flags & ~EPG_META_NO_DENY_CACHE : meta.flags | EPG_META_NO_DENY_CACHE;
	if (bpf_map_update_elem(maps.meta, &zero, &meta, BPF_ANY))
		die("write epg_meta: %s", strerror(errno));
}

static FILE *tsv, *md;

static double run_scenario(const char *size, const struct scenario *sc, double floor_ns,
			   int vlan, int v6)
{
	struct pkt_spec s = sc->spec;
	struct pkt k;
	uint32_t rv;
	double ns;
	char label[160];

	s.vlans = vlan;
	if (v6 && s.family == AF_INET) {
		s.family = AF_INET6;
		s.src = !strcmp(s.src, "198.19.1.1") ? "fd00:1::1" : !strncmp(s.src, "198.18.1", 8) ? "fd00:e::1" : "fd00:7::7";
		s.dst = !strcmp(s.dst, "198.18.100.1") ? "fd00:e::1" : !strcmp(s.dst, "198.19.9.9") ? "fd00:9::9" : "fd00:1::1";
		if (!strcmp(sc->spec.src, "198.18.100.1"))
			s.src = "fd00:e::1";
	}
	epg_ct_expire(&maps, 0, true, NULL);
	syn_timeout_zero(sc->new_flows);
	deny_cache(!sc->judge_in_full);
	if (sc->established) {
		struct pkt_spec syn = s;

		syn.tcp_flags = 0x02;
		pkt_build(&k, &syn);
		cost(bpf_program__fd(skel->progs.epg_xdp), k.buf, k.len, &rv);
		sane(epg_ct_count(&maps) == 1, "the established scenario's flow exists");
	}
	pkt_build(&k, &s);
	ns = cost(bpf_program__fd(skel->progs.epg_xdp), k.buf, k.len, &rv);
	snprintf(label, sizeof(label), "%s: %s returned %u, expected %d", size, sc->name, rv, sc->expect);
	sane((int)rv == sc->expect, label);
	fprintf(tsv, "%s\t%s\t%s\t%s\t%.2f\t%.2f\t%.2f\n", size, sc->name, v6 ? "IPv6" : "IPv4",
		vlan ? "vlan" : "-", ns, floor_ns, ns / floor_ns);
	fprintf(md, "| %s | %s | %s%s | %.1f | %.2f |", size, sc->name, v6 ? "IPv6" : "IPv4",
		vlan ? " + VLAN" : "", ns, ns / floor_ns);
	if (sc->floor_ratio_target > 0)
		fprintf(md, " <= %.1f %s |\n", sc->floor_ratio_target,
			ns / floor_ns <= sc->floor_ratio_target ? "met" : "**not met**");
	else
		fprintf(md, " |\n");
	syn_timeout_zero(0);
	deny_cache(1);
	return ns;
}

static const struct scenario scenarios[] = {
	{ "passthrough", 2.0, { .family = AF_INET, .src = "198.19.1.1", .dst = "198.19.9.9",
	  .proto = IPPROTO_TCP, .sport = 40000, .dport = 443 }, XDP_PASS, 0, 0, 0 },
	{ "tracked flow", 4.0, { .family = AF_INET, .src = "198.18.1.1", .dst = "198.18.100.1",
	  .proto = IPPROTO_TCP, .sport = 40000, .dport = 443, .tcp_flags = 0x10 }, XDP_PASS, 0, 1, 0 },
	{ "new flow allowed", 6.0, { .family = AF_INET, .src = "198.18.1.1", .dst = "198.18.100.1",
	  .proto = IPPROTO_TCP, .sport = 40000, .dport = 443 }, XDP_PASS, 1, 0, 0 },
	/* the same denied packet again and again: a flood of one flow, its
	 * verdict replayed from the deny cache */
	{ "new flow denied", 5.0, { .family = AF_INET, .src = "198.18.1.1", .dst = "198.18.100.1",
	  .proto = IPPROTO_TCP, .sport = 40000, .dport = 444 }, XDP_DROP, 0, 0, 0 },
	{ "ACL denied", 5.0, { .family = AF_INET, .src = "198.18.1.1", .dst = "198.18.100.1",
	  .proto = IPPROTO_TCP, .sport = 40000, .dport = 25 }, XDP_DROP, 0, 0, 0 },
	/* a denied flow's first packet, judged in full (with the cache on, a
	 * first packet also pays its lookup and write; the live benchmark's
	 * "denied flood, new flows" changes only the source port, which the
	 * cache ignores: replayed after its first packet) */
	{ "new flow denied, judged in full (cache off)", 5.0, { .family = AF_INET, .src = "198.18.1.1",
	  .dst = "198.18.100.1", .proto = IPPROTO_TCP, .sport = 40000, .dport = 444 }, XDP_DROP, 0, 0, 1 },
	{ "ACL denied, judged in full (cache off)", 5.0, { .family = AF_INET, .src = "198.18.1.1",
	  .dst = "198.18.100.1", .proto = IPPROTO_TCP, .sport = 40000, .dport = 25 }, XDP_DROP, 0, 0, 1 },
};
#define N_SCEN (sizeof(scenarios) / sizeof(scenarios[0]))

/* ---- the kernel primitives -------------------------------------------------- */

static int prim_fd(struct bpf_object *obj, const char *name)
{
	struct bpf_program *p = bpf_object__find_program_by_name(obj, name);

	if (!p)
		die("prims.bpf.o has no program %s", name);
	return bpf_program__fd(p);
}

/* Sets first .. first + n - 1 but `skip`, of 30 IPv4 prefixes each
 * (lengths 8..32), every one also holding 198.18.0.0/15 (the benchmark's
 * rule 0). */
static void prim_fill_sets(int fd, uint32_t first, uint32_t n, uint32_t skip)
{
	struct epg_bitmap bm = { { 1 } };

	for (uint32_t id = first; id < first + n; id++) {
		if (id == skip)
			continue;
		for (int i = 0; i < 30; i++) {
			struct epg_peer4_key k = { .prefixlen = 32 + 8 + rnd() % 25,
						   .sel = epg_sel(id, EPG_DIR_INGRESS) };
			uint32_t a = htonl(rnd());

			if (i == 0) {
				k.prefixlen = 32 + 15;
				inet_pton(AF_INET, "198.18.0.0", &a);
			}
			memcpy(k.addr, &a, 4);
			if (bpf_map_update_elem(fd, &k, &bm, BPF_ANY))
				die("fill prim_peer4: %s", strerror(errno));
		}
	}
}

/* One row: a primitive's cost on frame k, checked to have done its work. */
static void prim_row(FILE *f, const char *what, int fd, const struct pkt *k, double floor_ns)
{
	uint32_t rv;
	double ns = cost(fd, k->buf, k->len, &rv);
	char label[160];

	snprintf(label, sizeof(label), "primitive \"%s\" returned %u, not XDP_PASS", what, rv);
	sane(rv == XDP_PASS, label);
	fprintf(f, "| %s | %.1f | %.2f |\n", what, ns, ns / floor_ns);
}

static void primitives(const char *out, const char *obj_path)
{
	struct pkt_spec s = { .family = AF_INET, .src = "198.18.1.1", .dst = "198.18.100.1",
			      .proto = IPPROTO_TCP, .sport = 40000, .dport = 443, .tcp_flags = 0x10 };
	const uint32_t set = 5000, sel = epg_sel(set, EPG_DIR_INGRESS), n_flows = 10000;
	struct epg_ct_val val = { 0 };
	struct epg_ct_key key;
	struct bpf_object *obj;
	struct bpf_map *rodata;
	double floor_ns;
	char path[512];
	struct pkt k;
	uint32_t rv;
	FILE *f;

	obj = bpf_object__open_file(obj_path, NULL);
	if (!obj)
		die("open %s: %s (make bench builds it)", obj_path, strerror(errno));
	rodata = bpf_object__find_map_by_name(obj, ".rodata");
	if (!rodata || bpf_map__set_initial_value(rodata, &sel, sizeof(sel)))
		die("%s: cannot set the selector its trie program looks up", obj_path);
	if (bpf_object__load(obj))
		die("load %s: %s", obj_path, strerror(errno));
	int flows = bpf_object__find_map_fd_by_name(obj, "prim_flows");
	int flows16 = bpf_object__find_map_fd_by_name(obj, "prim_flows16");
	int peer4 = bpf_object__find_map_fd_by_name(obj, "prim_peer4");

	pkt_build(&k, &s);
	memcpy(&key, k.buf + k.l3_off, sizeof(key)); /* what prim_flow_key reads */
	if (bpf_map_update_elem(flows, &key, &val, BPF_ANY))
		die("fill prim_flows: %s", strerror(errno));
	for (uint32_t i = 0; i < n_flows; i++) { /* the frame's 16-byte key first */
		struct epg_ct_key other = key;

		other.lo_port = (uint16_t)rnd();
		other.hi_port = (uint16_t)i;
		if (i)
			bpf_map_update_elem(flows, &other, &val, BPF_ANY);
		memcpy(&other, i ? (void *)&other.lo_port : (void *)&key, 16);
		bpf_map_update_elem(flows16, &other, &val, BPF_ANY);
	}
	rnd_state = 99;
	prim_fill_sets(peer4, set, 1, 0);

	snprintf(path, sizeof(path), "%s/prims.md", out);
	f = fopen(path, "w");
	if (!f)
		die("cannot write %s", path);
	floor_ns = cost(floor_fd, k.buf, k.len, &rv);
	sane(rv == XDP_PASS, "the floor program ran");
	fprintf(f, "| primitive, alone in an XDP program (IPv4 TCP frame) | ns/packet | x floor |\n"
		   "|---|---|---|\n"
		   "| trivial XDP_PASS (the floor) | %.1f | 1.00 |\n", floor_ns);
	prim_row(f, "flow-table lookup: copy a 40-byte key from the packet, find it (epg_ct's shape, 10,000 flows)",
		 prim_fd(obj, "prim_flow_lookup"), &k, floor_ns);
	prim_row(f, "the same lookup with a 16-byte key (what IPv4 flows alone would need)",
		 prim_fd(obj, "prim_flow16_lookup"), &k, floor_ns);
	prim_row(f, "flow-table lookup of a packet no flow has (40-byte key)",
		 prim_fd(obj, "prim_flow_miss"), &k, floor_ns);
	prim_row(f, "flow-table insert and delete (a new flow's table work, nothing else)",
		 prim_fd(obj, "prim_flow_insert"), &k, floor_ns);
	prim_row(f, "peer trie lookup, 1 set of 30 prefixes", prim_fd(obj, "prim_peer_lookup"), &k,
		 floor_ns);
	prim_fill_sets(peer4, 1, quick ? 1000 : 10000, set);
	prim_row(f, quick ? "peer trie lookup, 1,000 sets of 30 prefixes in one trie" :
			    "peer trie lookup, 10,000 sets of 30 prefixes in one trie",
		 prim_fd(obj, "prim_peer_lookup"), &k, floor_ns);
	fprintf(f, "\nEach row is the primitive alone, with nothing around it. A tracked packet "
		   "needs its headers parsed and a flow-table lookup (target: 4 x the floor); a "
		   "denied packet the same lookup, finding nothing, before any cached verdict "
		   "(target: 5 x); a new flow that lookup, an insert and four trie lookups "
		   "(network ACL and security group, peer and service each; target: 6 x). "
		   "The trie rows are one trie holding every set, as epg_peer4 does.\n");
	fclose(f);
	bpf_object__close(obj);
}

/* ---- the control plane ----------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f || fputs(text, f) < 0 || fclose(f))
		die("write %s: %s", path, strerror(errno));
}

/* Run epgate; wall time and peak memory of the child. */
static int run_epgate(const char *epgate, char *const argv[], double *secs, long *maxrss_kb)
{
	struct rusage ru;
	double t0 = now_s();
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		execv(epgate, argv);
		_exit(127);
	}
	if (pid < 0 || wait4(pid, &status, 0, &ru) < 0)
		die("run %s: %s", epgate, strerror(errno));
	*secs = now_s() - t0;
	*maxrss_kb = ru.ru_maxrss;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void control_plane(const char *out, const char *epgate)
{
	char dir[] = "/tmp/epg-bench.XXXXXX", pin[256], f1[300], f2[300], path[400];
	unsigned n_eps = quick ? 1000 : 10000, n_rules = quick ? 10000 : 100000;
	double t_full, t_one, t_again, t_scrape, t_inproc, t_install;
	long rss_full, rss_one, rss_again;
	struct epg_snapshot snap;
	struct epg_error err = { "" };
	struct epg_maps pm;
	char *doc, *body;
	size_t len;
	FILE *f;

	if (!mkdtemp(dir))
		die("mkdtemp: %s", strerror(errno));
	snprintf(cleanup_dir, sizeof(cleanup_dir), "%s", dir);
	atexit(cleanup);
	snprintf(pin, sizeof(pin), "%s/bpf", dir);
	mkdir(pin, 0700);
	if (mount("bpf", pin, "bpf", 0, NULL))
		die("mount bpffs on %s: %s", pin, strerror(errno));
	snprintf(pin, sizeof(pin), "%s/bpf/epgate", dir);
	snprintf(f1, sizeof(f1), "%s/full.json", dir);
	snprintf(f2, sizeof(f2), "%s/one-more.json", dir);
	rnd_state = 777;
	doc = policy(n_rules, n_eps, 0);
	write_file(f1, doc);
	free(doc);
	rnd_state = 777;
	char *doc2 = policy(n_rules, n_eps, 1); /* the same, one rule more */
	write_file(f2, doc2);

	char *a1[] = { (char *)epgate, "--pin-dir", pin, "apply", f1, NULL };
	char *a2[] = { (char *)epgate, "--pin-dir", pin, "apply", f2, NULL };
	sane(run_epgate(epgate, a1, &t_full, &rss_full) == 0, "epgate apply (full) succeeded");
	sane(run_epgate(epgate, a2, &t_one, &rss_one) == 0, "epgate apply (one rule more) succeeded");
	sane(run_epgate(epgate, a1, &t_again, &rss_again) == 0, "epgate apply (same again) succeeded");

	/* the one-rule change again, in this process: parsing and compiling
	 * apart from installing */
	if (epg_maps_open(&pm, pin, EPG_OPEN_LOCK, &err))
		die("%s", err.msg);
	t_inproc = apply_to(&pm, doc2, &t_install);
	free(doc2);

	/* a scrape: what GET /metrics does */
	double t0 = now_s();
	struct epg_metrics_input in = { .ct_max = EPG_CT_MAX, .version = "bench" };
	if (epg_snapshot_read(&pm, &snap, &err))
		die("%s", err.msg);
	in.snap = &snap;
	in.ct_entries = (uint64_t)epg_ct_count(&pm);
	if (epg_metrics_render(&in, &body, &len))
		die("render");
	t_scrape = now_s() - t0;
	sane(snap.n_eps == n_eps, "the scrape saw every endpoint");
	sane(snap.n_rules >= n_rules, "the scrape saw every rule");
	epg_snapshot_free(&snap);
	free(body);
	epg_maps_close(&pm);

	snprintf(path, sizeof(path), "%s/control.md", out);
	f = fopen(path, "w");
	if (!f)
		die("%s: %s", path, strerror(errno));
	fprintf(f, "| control plane (%u endpoints, %u rules) | time | peak memory | target |\n"
		   "|---|---|---|---|\n", n_eps, n_rules);
	fprintf(f, "| epgate apply, from empty | %.0f ms | %ld MiB | < 2 s: %s |\n", t_full * 1e3,
		rss_full / 1024, t_full < 2 ? "met" : "**not met**");
	fprintf(f, "| epgate apply, one rule more | %.0f ms | %ld MiB | < 100 ms: %s |\n", t_one * 1e3,
		rss_one / 1024, t_one < 0.1 ? "met" : "**not met**");
	fprintf(f, "| epgate apply, unchanged | %.0f ms | %ld MiB | |\n", t_again * 1e3, rss_again / 1024);
	fprintf(f, "| one rule more: read, parse and compile the documents | %.0f ms | | |\n",
		(t_inproc - t_install) * 1e3);
	fprintf(f, "| one rule more: install (counter slots, changed sets, addresses, flip) | %.0f ms | | < 100 ms: %s |\n",
		t_install * 1e3, t_install < 0.1 ? "met" : "**not met**");
	fprintf(f, "| /metrics scrape (read + render, %zu bytes) | %.0f ms | | < 250 ms: %s |\n", len,
		t_scrape * 1e3, t_scrape < 0.25 ? "met" : "**not met**");
	fprintf(f, "\nMap memory (value + key, before kernel overhead): per endpoint address %zu B "
		   "per generation; per endpoint counters %zu B per CPU; per rule %zu B of counters per CPU "
		   "plus its prefixes (%zu B each); per tracked flow %zu B; per fragmented datagram %zu B.\n",
		sizeof(struct epg_addr_key) + sizeof(struct epg_addr_val),
		sizeof(struct epg_ep_counters), sizeof(struct epg_counter),
		sizeof(struct epg_peer6_key) + sizeof(struct epg_bitmap),
		sizeof(struct epg_ct_key) + sizeof(struct epg_ct_val),
		sizeof(struct epg_frag_key) + sizeof(struct epg_frag_val));
	fclose(f);
	cleanup();
}

int main(int argc, char **argv)
{
	static const struct { unsigned rules, eps; const char *label; } sizes[] = {
		{ 1, 1, "1 rule, 1 endpoint" },
		{ 1000, 1, "1,000 rules, 1 endpoint" },
		{ 100000, 100, "100,000 rules, 100 endpoints" },
		{ 100000, 10000, "100,000 rules, 10,000 endpoints" },
	};
	double base[N_SCEN][4] = { { 0 } };
	char path[512], self[400], prims[512];

	if (argc != 3)
		die("usage: bench_micro OUTDIR EPGATE_BINARY");
	quick = getenv("BENCH_QUICK") && atoi(getenv("BENCH_QUICK"));
	snprintf(self, sizeof(self), "%s", argv[0]);
	if (getenv("BENCH_ONLY") && !strcmp(getenv("BENCH_ONLY"), "control")) {
		control_plane(argv[1], argv[2]);
		return failures ? 1 : 0;
	}
	load();
	snprintf(prims, sizeof(prims), "%s/prims.bpf.o", dirname(self));
	if (getenv("BENCH_ONLY") && !strcmp(getenv("BENCH_ONLY"), "prims")) {
		primitives(argv[1], prims);
		return failures ? 1 : 0;
	}
	snprintf(path, sizeof(path), "%s/micro.tsv", argv[1]);
	tsv = fopen(path, "w");
	snprintf(path, sizeof(path), "%s/micro.md", argv[1]);
	md = fopen(path, "w");
	if (!tsv || !md)
		die("cannot write into %s", argv[1]);
	/* warm up (about a second) before the first row is measured: the
	 * first measurements of a run came out up to half again slower than
	 * the same scenario measured later, or alone */
	{
		struct pkt_spec ws = scenarios[0].spec;
		struct pkt wk;
		uint32_t rv;
		double t0 = now_s();

		pkt_build(&wk, &ws);
		while (now_s() - t0 < 1) {
			cost(floor_fd, wk.buf, wk.len, &rv);
			cost(bpf_program__fd(skel->progs.epg_xdp), wk.buf, wk.len, &rv);
		}
	}
	fprintf(tsv, "size\tscenario\tfamily\tvlan\tns\tfloor_ns\tratio\n");
	fprintf(md, "| policy | scenario | packet | ns/packet | x floor | target |\n|---|---|---|---|---|---|\n");

	for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
		char *doc;
		double t_apply, t_install;

		if (quick && z == 3)
			break;
		rnd_state = 4242;
		doc = policy(sizes[z].rules, sizes[z].eps, 0);
		t_apply = apply_to(&maps, doc, &t_install);
		free(doc);
		fprintf(stderr, "bench: %s applied in %.0f ms\n", sizes[z].label, t_apply * 1e3);
		if (getenv("BENCH_PROFILE") && /* one scenario, IPv4, about 5 s: run perf meanwhile */
		    (int)z == (getenv("BENCH_PROFILE_SIZE") ? atoi(getenv("BENCH_PROFILE_SIZE")) : 0)) {
			size_t i = (size_t)atoi(getenv("BENCH_PROFILE")) % N_SCEN;
			double t0 = now_s(), ns = 0;

			while (now_s() - t0 < 5)
				ns = run_scenario(sizes[z].label, &scenarios[i], 1, 0, 0);
			fprintf(stderr, "bench: %s: %.1f ns\n", scenarios[i].name, ns);
			return 0;
		}
		for (size_t i = 0; i < N_SCEN; i++) {
			for (int v = 0; v < 4; v++) {
				struct pkt k;
				struct pkt_spec fs = scenarios[i].spec;
				uint32_t rv;
				double floor_ns, ns;

				fs.vlans = v & 1;
				pkt_build(&k, &fs);
				floor_ns = cost(floor_fd, k.buf, k.len, &rv); /* same run, same frame size */
				sane(rv == XDP_PASS, "the floor program ran");
				ns = run_scenario(sizes[z].label, &scenarios[i], floor_ns, v & 1, v >> 1);
				if (z == 0)
					base[i][v] = ns;
				if (z == 2 || z == 3)
					fprintf(md, "| | %s vs 1 rule | | | %.2f | <= 1.5 %s |\n", scenarios[i].name,
						ns / base[i][v], ns / base[i][v] <= 1.5 ? "met" : "**not met**");
				if (z == 1)
					fprintf(md, "| | %s vs 1 rule | | | %.2f | <= 1.2 %s |\n", scenarios[i].name,
						ns / base[i][v], ns / base[i][v] <= 1.2 ? "met" : "**not met**");
			}
		}
	}
	sane(global_packets(EPG_G_PASSTHROUGH) > 0, "passthrough packets were counted");
	fclose(tsv);
	fclose(md);
	primitives(argv[1], prims);
	control_plane(argv[1], argv[2]);
	epgate_bpf__destroy(skel);
	if (failures)
		fprintf(stderr, "bench: %d sanity check(s) failed\n", failures);
	return failures ? 1 : 0;
}
