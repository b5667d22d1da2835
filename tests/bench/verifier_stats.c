// SPDX-License-Identifier: MIT
/* make verifier-stats: load every program of the datapath (all features,
 * largest bounds, private maps) and print what the verifier spent on each,
 * so the budget can be watched as features grow. Root. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <bpf/libbpf.h>
#include "epgate.skel.h"

static char logs[2][1 << 16];

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level != LIBBPF_WARN || strstr(fmt, "skipping unrecognized"))
		return 0;
	return vfprintf(stderr, fmt, ap);
}

int main(void)
{
	struct epgate_bpf *skel;
	struct bpf_program *progs[2];
	struct bpf_map *map;
	int rc;

	libbpf_set_print(quiet);
	skel = epgate_bpf__open();
	if (!skel) {
		fprintf(stderr, "verifier-stats: cannot open the BPF object: %s\n", strerror(errno));
		return 1;
	}
	bpf_object__for_each_map(map, skel->obj)
		bpf_map__set_pin_path(map, NULL);
	progs[0] = skel->progs.epg_xdp;
	progs[1] = skel->progs.epg_tc_egress;
	for (int i = 0; i < 2; i++) {
		bpf_program__set_log_level(progs[i], 4); /* statistics only */
		bpf_program__set_log_buf(progs[i], logs[i], sizeof(logs[i]));
	}
	rc = epgate_bpf__load(skel);
	for (int i = 0; i < 2; i++) {
		const char *line = strstr(logs[i], "processed ");
		const char *end = line ? strchr(line, '\n') : NULL;

		printf("%-16s %.*s\n", bpf_program__name(progs[i]),
		       line ? (int)(end ? end - line : (long)strlen(line)) : 9, line ? line : "(no log)");
	}
	epgate_bpf__destroy(skel);
	if (rc)
		fprintf(stderr, "verifier-stats: load failed: %s\n", strerror(-rc));
	return rc ? 1 : 0;
}
