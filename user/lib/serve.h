/* SPDX-License-Identifier: MIT */
/* `epgate serve`: the long-running daemon. Applies the config (again on
 * SIGHUP), serves /metrics and /healthz, sweeps idle flows, writes flow logs
 * (reopened on SIGUSR1). Enforcement does not depend on it: the datapath and
 * its policy stay pinned when it stops or dies. */
#ifndef EPGATE_SERVE_H
#define EPGATE_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "epgate.h"

#define EPG_DEFAULT_LISTEN "127.0.0.1:9745"
#define EPG_MAX_SERVE_IFACES 64

struct epg_serve_opts {
	const char *pin_dir;
	const char *const *config; /* files */
	size_t n_config;
	const char *listen;        /* "ADDR:PORT" or "[V6]:PORT"; NULL = default */
	const char *ifaces[EPG_MAX_SERVE_IFACES];
	enum epg_attach_mode modes[EPG_MAX_SERVE_IFACES];
	bool mode_given[EPG_MAX_SERVE_IFACES]; /* ":skb" or ":native" written out */
	size_t n_ifaces;
	const char *flow_log;      /* file, "-" for stdout, NULL for none */
	const char *flow_log_format;
	unsigned flow_log_interval; /* seconds */
	unsigned sweep_interval;    /* seconds */
	bool verbose;
};

/* Runs until SIGTERM or SIGINT. Returns 0, or -errno with err set when it
 * cannot start (bad config, port taken, another serve on the pin directory). */
int epg_serve(const struct epg_serve_opts *o, struct epg_error *err);

/* "127.0.0.1:9745", "[::1]:9745" -> sockaddr. Returns 0 or -EINVAL. */
struct sockaddr_storage;
int epg_parse_listen(const char *s, struct sockaddr_storage *ss, unsigned *len);

#endif
