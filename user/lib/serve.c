// SPDX-License-Identifier: MIT
/* `epgate serve`: see serve.h. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <microhttpd.h>
#include "flowlog.h"
#include "mapio.h"
#include "metrics.h"
#include "serve.h"
#include "version.h"

struct serve {
	const struct epg_serve_opts *o;
	struct epg_maps maps;
	struct epg_config cfg;       /* the applied config, for flow-log interfaces */
	struct epg_fl_eni *enis;
	size_t n_enis;
	atomic_ulong apply_errors;
	atomic_ulong flowlog_skipped;
	atomic_ulong flowlog_write_errors;
	struct MHD_Daemon *http;
	const char *listen;           /* --listen, or the default */
	struct sockaddr_storage listen_addr; /* it, parsed at the start */
	int listen_fd;                /* bound and listening from the start; MHD's once it runs */
	FILE *flow_out;
	bool flow_failed;             /* the last interval could not be written */
	struct epg_fl_format fmt;
	struct epg_fl_state *fl;
	uint64_t rej_lost_seen;       /* EPG_G_REJ_LOST + EPG_G_ENDED_LOST packets, as last reported */
	struct epg_flow_vec ended;    /* flows removed since the last interval, as they last stood */
	uint64_t interval_start;
	int lock_fd;
	char lock_path[128];
};

#define set_err epg_set_err

/* Messages of the running daemon: to stderr, one line each, for journald. */
static void logmsg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "epgate serve: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

int epg_parse_listen(const char *s, struct sockaddr_storage *ss, unsigned *len)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon;
	char *end;
	long port;

	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':' || (size_t)(rb - s - 1) >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, (size_t)(rb - s - 1));
		host[rb - s - 1] = '\0';
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || (size_t)(colon - s) >= sizeof(host))
			return -EINVAL;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port < 1 || port > 65535)
		return -EINVAL;
	if (s[0] == '[') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			return -EINVAL;
		*len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return -EINVAL;
		*len = sizeof(*a);
	}
	return 0;
}

/* Is fd the file that path names now? */
static bool same_file(int fd, const char *path)
{
	struct stat a, b;

	return !fstat(fd, &a) && !stat(path, &b) && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* One serve per pin directory: a lock file named after it in /run/lock,
 * released by the kernel whenever the process ends, SIGKILL included. The
 * directory's real path names it, so that /sys/fs/bpf/epgate/ or a symlink
 * to it is the same one (a directory not made yet: without trailing '/'). */
static int take_serve_lock(struct serve *sv, struct epg_error *err)
{
	char *path = sv->lock_path, pid[32], *real = realpath(sv->o->pin_dir, NULL);
	const char *name = real ? real : sv->o->pin_dir;
	size_t len = strlen(name);
	uint32_t h = 2166136261u;
	ssize_t n;

	while (len > 1 && name[len - 1] == '/')
		len--;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)name[i]) * 16777619u;
	free(real);
	mkdir("/run/lock", 0755);
	snprintf(path, sizeof(sv->lock_path), "/run/lock/epgate-serve-%08x.lock", h);
again:
	sv->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (sv->lock_fd < 0)
		return set_err(err, -errno, "cannot create %s: %s", path, strerror(errno));
	if (flock(sv->lock_fd, LOCK_EX | LOCK_NB)) {
		int rc = -errno;

		n = pread(sv->lock_fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		close(sv->lock_fd);
		sv->lock_fd = -1;
		if (rc == -EWOULDBLOCK)
			return set_err(err, -EBUSY, "another epgate serve (pid %s) already runs on %s; stop it first",
				       pid[0] ? pid : "?", sv->o->pin_dir);
		return set_err(err, rc, "cannot lock %s: %s", path, strerror(-rc));
	}
	if (!same_file(sv->lock_fd, path)) {
		/* a serve that stopped meanwhile removed the file we locked (a
		 * clean stop does): a lock on it excludes nobody, take the one
		 * the path names now */
		close(sv->lock_fd);
		goto again;
	}
	n = snprintf(pid, sizeof(pid), "%d\n", getpid());
	if (ftruncate(sv->lock_fd, 0) || pwrite(sv->lock_fd, pid, (size_t)n, 0) != n)
		logmsg("warning: cannot write the pid into %s", path);
	return 0;
}

/* ---- policy ------------------------------------------------------------- */

/* The flow logs' interface of each enforced address of cfg (pointing into
 * cfg's strings) into *out, *n_out. */
static int build_enis(const struct epg_config *cfg, struct epg_fl_eni **out, size_t *n_out)
{
	struct epg_fl_eni *enis;
	size_t n = 0, k_out = 0;

	for (size_t i = 0; i < cfg->n_enis; i++)
		n += cfg->enis[i].n_addrs;
	enis = calloc(n ? n : 1, sizeof(*enis));
	if (!enis)
		return -ENOMEM;
	/* only interfaces of enforced endpoints get records */
	for (size_t e = 0; e < cfg->n_endpoints; e++) {
		const struct epg_endpoint *ep = &cfg->endpoints[e];

		if (!epg_endpoint_is_interface(ep))
			continue;
		for (size_t k = 0; k < ep->n_enis; k++) {
			const struct epg_eni *eni = epg_config_eni(cfg, ep->enis[k]);

			for (size_t a = 0; eni && a < eni->n_addrs; a++) {
				struct epg_fl_eni *f = &enis[k_out++];

				f->family = eni->addrs[a].family;
				memcpy(f->addr, eni->addrs[a].addr, 16);
				f->interface_id = eni->id;
				f->account_id = eni->owner_id;
				f->vpc_id = eni->vpc_id;
				f->subnet_id = eni->subnet_id;
				f->az_id = NULL; /* the documents give the zone's name, not its id */
			}
		}
	}
	*out = enis;
	*n_out = k_out;
	return 0;
}

/* Load, compile, install. On any error the running policy stays. */
static int apply_config(struct serve *sv, struct epg_error *err)
{
	struct epg_config cfg = { 0 };
	struct epg_plan plan;
	struct epg_maps locked;
	struct epg_fl_eni *enis = NULL;
	size_t n_enis = 0;
	int rc;

	rc = epg_config_load_files(&cfg, sv->o->config, sv->o->n_config, err);
	if (rc)
		return rc;
	rc = epg_compile(&cfg, &plan, err);
	if (rc) {
		epg_config_free(&cfg);
		return rc;
	}
	for (size_t i = 0; i < plan.n_warnings; i++)
		logmsg("warning: %s", plan.warnings[i]);
	/* before the apply: once that is done, the reload has succeeded */
	if (build_enis(&cfg, &enis, &n_enis))
		rc = set_err(err, -ENOMEM, "out of memory");
	if (!rc)
		rc = epg_maps_open(&locked, sv->o->pin_dir, EPG_OPEN_CREATE | EPG_OPEN_LOCK, err);
	if (!rc) {
		rc = epg_policy_apply(&locked, &plan, err);
		epg_maps_close(&locked);
	}
	epg_plan_free(&plan);
	if (rc) {
		free(enis);
		epg_config_free(&cfg);
		return rc;
	}
	epg_config_free(&sv->cfg);
	sv->cfg = cfg;
	free(sv->enis);
	sv->enis = enis;
	sv->n_enis = n_enis;
	return 0;
}

/* The active policy has exempt peers, and attached programs predate them
 * (they ignore them): logged, with what to do. After the start's attaches
 * (which replace other builds' programs) and after each reload. */
static void warn_exempt_unsupported(struct serve *sv)
{
	char msg[640];

	if (epg_exempt_warning(&sv->maps, msg, sizeof(msg)) > 0)
		logmsg("warning: %s", msg);
}

/* ---- HTTP ---------------------------------------------------------------- */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
			     char *body, size_t len, bool owned)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, "Allow", "GET, HEAD");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **con_cls)
{
	static char not_found[] = "not found: try /metrics or /healthz\n";
	static char not_allowed[] = "read-only: GET or HEAD\n";
	static char ok[] = "ok\n";
	static char failing[] = "cannot read the pinned maps\n";
	static char detached[] = "an interface given with --interface is not attached any more\n";
	struct serve *sv = cls;
	struct epg_metrics_input in = { 0 };
	struct epg_error err = { "" };
	struct epg_snapshot s;
	char *body;
	size_t len;

	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", not_allowed,
			     sizeof(not_allowed) - 1, false);
	if (!strcmp(url, "/healthz")) {
		struct epg_meta meta;
		uint32_t zero = 0;

		if (bpf_map_lookup_elem(sv->maps.meta, &zero, &meta))
			return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", failing,
				     sizeof(failing) - 1, false);
		/* the interfaces serve was asked to enforce on must still be
		 * attached: the interface of that name now, its programs ours */
		for (size_t i = 0; i < sv->o->n_ifaces; i++)
			if (!epg_iface_enforcing(&sv->maps, sv->o->ifaces[i]))
				return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", detached,
					     sizeof(detached) - 1, false);
		return reply(c, MHD_HTTP_OK, "text/plain", ok, sizeof(ok) - 1, false);
	}
	if (strcmp(url, "/metrics"))
		return reply(c, MHD_HTTP_NOT_FOUND, "text/plain", not_found,
			     sizeof(not_found) - 1, false);
	if (epg_snapshot_read(&sv->maps, &s, &err)) {
		logmsg("/metrics: %s", err.msg);
		return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", failing,
			     sizeof(failing) - 1, false);
	}
	/* epgate_attached: what is attached now, not records that outlived
	 * their interface */
	size_t live = 0;

	for (size_t i = 0; i < s.n_ifaces; i++)
		if (epg_iface_live(s.ifaces[i].ifindex, &s.ifaces[i].info))
			s.ifaces[live++] = s.ifaces[i];
	s.n_ifaces = live;
	in.snap = &s;
	in.ct_entries = (uint64_t)epg_ct_count(&sv->maps);
	in.ct_max = EPG_CT_MAX;
	in.apply_errors = atomic_load(&sv->apply_errors);
	in.flowlog_skipped = atomic_load(&sv->flowlog_skipped);
	in.flowlog_write_errors = atomic_load(&sv->flowlog_write_errors);
	in.version = EPG_VERSION;
	if (epg_metrics_render(&in, &body, &len)) {
		epg_snapshot_free(&s);
		return MHD_NO;
	}
	epg_snapshot_free(&s);
	return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len, true);
}

/* --listen (or the default): parsed, bound and listening in sv->listen_fd,
 * or -EINVAL (not an address) / -EADDRINUSE (cannot listen there) with err
 * set. At the start, before anything changes: a port another process holds,
 * an address not this host's or a port that needs a capability is found
 * before the policy or an interface is touched. */
static int check_listen(struct serve *sv, struct epg_error *err)
{
	int one = 1, fd, e;
	unsigned len;

	sv->listen = sv->o->listen ? sv->o->listen : EPG_DEFAULT_LISTEN;
	if (epg_parse_listen(sv->listen, &sv->listen_addr, &len))
		return set_err(err, -EINVAL, "--listen %s: expected ADDR:PORT or [IPV6]:PORT",
			       sv->listen);
	fd = socket(sv->listen_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && sv->listen_addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&sv->listen_addr, len) || listen(fd, 64)) {
		e = errno;
		if (fd >= 0)
			close(fd);
		return set_err(err, -EADDRINUSE, "--listen %s: cannot listen there: %s%s", sv->listen,
			       strerror(e),
			       e == EADDRINUSE ? " (another process has the port: choose another with --listen)" :
			       e == EADDRNOTAVAIL ? " (not an address of this host)" :
			       e == EACCES ? " (a port below 1024 needs CAP_NET_BIND_SERVICE)" : "");
	}
	sv->listen_fd = fd;
	return 0;
}

/* Serve HTTP on the socket check_listen made (MHD's from now on: it closes
 * it when it stops). */
static int start_http(struct serve *sv, struct epg_error *err)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;

	if (sv->listen_addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	sv->http = MHD_start_daemon(flags, 0, NULL, NULL, handle, sv,
				    MHD_OPTION_LISTEN_SOCKET, sv->listen_fd,
				    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
				    MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
				    MHD_OPTION_END);
	sv->listen_fd = -1; /* MHD's now, even when it failed (some of its paths close it) */
	if (!sv->http)
		return set_err(err, -EADDRINUSE, "cannot serve HTTP on %s", sv->listen);
	return 0;
}

/* ---- flow logs ----------------------------------------------------------- */

static int collect_flow(const struct epg_flow *f, void *ctx)
{
	return epg_flow_vec_push(ctx, f);
}

/* Take every rejected entry out of the table, each one atomically. */
static int drain_rejected(struct serve *sv, struct epg_fl_rejected **out, size_t *n)
{
	struct epg_rej_key *keys = NULL;
	struct epg_rej_val *vals = NULL;
	size_t nk = 0;
	int rc;

	*out = NULL;
	*n = 0;
	/* the keys; each entry's value is then taken out with it, atomically */
	rc = epg_map_read_all(sv->maps.rej, sizeof(*keys), sizeof(*vals), (void **)&keys,
			      (void **)&vals, &nk);
	free(vals);
	if (rc)
		return rc;
	*out = calloc(nk ? nk : 1, sizeof(**out));
	if (!*out) {
		free(keys);
		return -ENOMEM;
	}
	for (size_t i = 0; i < nk; i++) {
		struct epg_fl_rejected *r = &(*out)[*n];

		if (bpf_map_lookup_and_delete_elem(sv->maps.rej, &keys[i], &r->val))
			continue;
		r->key = keys[i];
		(*n)++;
	}
	free(keys);
	return 0;
}

static void write_record(const struct epg_fl_record *r, void *ctx)
{
	struct serve *sv = ctx;
	char line[1024];

	if (epg_fl_format_record(&sv->fmt, r, line, sizeof(line)) >= 0)
		fprintf(sv->flow_out, "%s\n", line); /* an error sticks: flow_log_written() */
}

/* Did this interval's records reach the flow log? A failed write (a full
 * disk, a closed pipe) is logged when it starts and when it ends, and
 * counted; the next interval tries again. */
static void flow_log_written(struct serve *sv)
{
	bool failed = fflush(sv->flow_out) != 0 || ferror(sv->flow_out);
	int e = errno;

	if (failed) {
		atomic_fetch_add(&sv->flowlog_write_errors, 1);
		if (!sv->flow_failed)
			logmsg("flow logs: cannot write to %s: %s; this interval's records are lost, counted in epgate_flowlog_write_errors_total",
			       sv->o->flow_log, strerror(e));
		clearerr(sv->flow_out);
	} else if (sv->flow_failed) {
		logmsg("flow logs: writing to %s again", sv->o->flow_log);
	}
	sv->flow_failed = failed;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Packets whose flow-log records were lost (tables or ring full), so far;
 * -errno when a counter cannot be read. */
static int flowlog_lost(struct serve *sv, uint64_t *n)
{
	static const uint32_t idx[] = { EPG_G_REJ_LOST, EPG_G_ENDED_LOST };

	*n = 0;
	for (size_t i = 0; i < sizeof(idx) / sizeof(idx[0]); i++) {
		struct epg_counter c;
		int rc = epg_percpu_sum(sv->maps.global, idx[i], &c, sizeof(c));

		if (rc)
			return rc;
		*n += c.packets;
	}
	return 0;
}

static void flow_log_interval(struct serve *sv)
{
	struct epg_flow_vec *fv = &sv->ended;
	struct epg_fl_rejected *rej = NULL;
	struct epg_fl_interval iv = { 0 };
	uint64_t lost = 0;
	bool lost_read = !flowlog_lost(sv, &lost) && lost >= sv->rej_lost_seen;
	size_t n_rej = 0, n_ended;
	int rc;

	/* the removed flows first, then the table: a flow removed meanwhile
	 * is in the ring of the next interval, never in both. A ring that
	 * cannot be read now keeps its records for the next interval. */
	rc = epg_ct_drain_ended(&sv->maps, fv);
	if (rc < 0)
		logmsg("flow logs: cannot read the removed flows (epg_ct_ended): %s; they come with a later interval",
		       strerror(-rc));
	n_ended = fv->n;
	rc = epg_ct_foreach(&sv->maps, collect_flow, fv);
	if (!rc)
		rc = drain_rejected(sv, &rej, &n_rej);
	iv.end = clock_ns(CLOCK_REALTIME) / 1000000000ull;
	iv.start = sv->interval_start ? sv->interval_start : iv.end;
	iv.mono_to_unix_ns = (int64_t)(clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC));
	iv.flows = fv->v;
	iv.n_flows = fv->n;
	iv.rejected = rej;
	iv.n_rejected = n_rej;
	iv.lost = lost_read ? lost - sv->rej_lost_seen : 0;
	iv.enis = sv->enis;
	iv.n_enis = sv->n_enis;
	if (!rc && epg_fl_collect(sv->fl, &iv, write_record, sv) < 0)
		rc = -ENOMEM;
	if (rc) {
		/* the removed flows stay for the next interval; the table is read again */
		fv->n = n_ended;
		logmsg("flow logs: cannot collect this interval: %s", strerror(-rc));
	} else {
		if (iv.lost)
			atomic_fetch_add(&sv->flowlog_skipped, iv.lost);
		if (lost_read)
			sv->rej_lost_seen = lost;
		fv->n = 0;
	}
	flow_log_written(sv);
	sv->interval_start = iv.end;
	free(rej);
}

static int open_flow_log(struct serve *sv, struct epg_error *err)
{
	FILE *f;

	if (!sv->o->flow_log)
		return 0;
	if (!strcmp(sv->o->flow_log, "-")) {
		sv->flow_out = stdout;
		return 0;
	}
	f = fopen(sv->o->flow_log, "ae");
	if (!f)
		return set_err(err, -errno, "--flow-log %s: %s", sv->o->flow_log, strerror(errno));
	if (sv->flow_out && sv->flow_out != stdout)
		fclose(sv->flow_out);
	sv->flow_out = f;
	return 0;
}

static void discard_record(const struct epg_fl_record *r, void *ctx)
{
}

/* Tell the datapath whether to record rejected flows (only while a flow log
 * is written: a drop then costs a hash update). */
static void set_flowlog_flag(struct serve *sv, bool on)
{
	struct epg_error err = { "" };
	struct epg_maps locked;
	struct epg_meta meta;
	uint32_t zero = 0;

	/* under the pin directory's lock: an apply rewrites epg_meta whole */
	if (epg_maps_open(&locked, sv->o->pin_dir, EPG_OPEN_LOCK, &err)) {
		logmsg("flow logs: cannot turn the datapath's recording %s: %s", on ? "on" : "off",
		       err.msg);
		return;
	}
	if (!bpf_map_lookup_elem(locked.meta, &zero, &meta)) {
		meta.flags = on ? (meta.flags | EPG_META_FLOWLOG) : (meta.flags & ~EPG_META_FLOWLOG);
		if (bpf_map_update_elem(locked.meta, &zero, &meta, BPF_ANY))
			logmsg("flow logs: cannot write epg_meta: %s", strerror(errno));
	}
	epg_maps_close(&locked);
}

/* The flows' counters as they stand when serve starts are the baseline: a
 * previous serve reported them (up to its last interval), so a restart must
 * not log a flow's whole history again. */
static void flow_log_baseline(struct serve *sv)
{
	struct epg_fl_interval iv = { 0 };

	/* what a previous serve left in the ring was its to report */
	if (epg_ct_drain_ended(&sv->maps, &sv->ended) >= 0 &&
	    epg_ct_foreach(&sv->maps, collect_flow, &sv->ended) == 0) {
		iv.flows = sv->ended.v;
		iv.n_flows = sv->ended.n;
		epg_fl_collect(sv->fl, &iv, discard_record, NULL);
	}
	sv->ended.n = 0;
	if (flowlog_lost(sv, &sv->rej_lost_seen))
		sv->rej_lost_seen = 0;
}

/* ---- the loop ------------------------------------------------------------ */

int epg_serve(const struct epg_serve_opts *o, struct epg_error *err)
{
	struct serve sv = { .o = o, .lock_fd = -1, .listen_fd = -1 };
	struct timespec tick = { .tv_sec = 1 };
	uint64_t now, next_sweep, next_log;
	sigset_t set;
	int rc, sig;

	/* a reload or a reopen asked for while serve starts waits for the loop
	 * below (sigtimedwait) instead of killing it half-way; a stop (SIGTERM,
	 * SIGINT) still ends it there, as it may wait long for the pin
	 * directory's lock. All four are blocked before the HTTP threads start,
	 * which inherit the mask: no thread is ever killed by one. A closed
	 * pipe is a write error to report, not a death. */
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	signal(SIGPIPE, SIG_IGN);
	atomic_init(&sv.apply_errors, 0);
	atomic_init(&sv.flowlog_skipped, 0);
	atomic_init(&sv.flowlog_write_errors, 0);
	rc = epg_fl_format_parse(o->flow_log_format, &sv.fmt, err);
	if (rc)
		return rc;
	rc = take_serve_lock(&sv, err);
	if (rc)
		return rc;
	/* what the options name is checked before the policy or any
	 * interface is touched: a mistyped option changes nothing */
	sv.fl = epg_fl_state_new();
	if (!sv.fl) {
		rc = set_err(err, -ENOMEM, "out of memory");
		goto out_lock;
	}
	rc = open_flow_log(&sv, err);
	if (rc) {
		rc = -EINVAL; /* the path given cannot be written: exit 2, whatever the errno */
		goto out_fl;
	}
	rc = check_listen(&sv, err);
	for (size_t i = 0; i < o->n_ifaces && !rc; i++)
		if (!epg_iface_index(o->ifaces[i], err))
			rc = -ENODEV;
	if (rc)
		goto out_log;
	rc = epg_maps_open(&sv.maps, o->pin_dir, EPG_OPEN_CREATE, err);
	if (rc)
		goto out_log;
	rc = apply_config(&sv, err);
	if (rc)
		goto out_maps;
	for (size_t i = 0; i < o->n_ifaces; i++) {
		struct epg_maps locked;

		rc = epg_maps_open(&locked, o->pin_dir, EPG_OPEN_LOCK, err);
		if (rc)
			goto out_cfg;
		rc = epg_attach(&locked, o->ifaces[i], o->modes[i], err);
		if (rc == -EEXIST) {
			/* adopt it, upgrading the programs if they are another build's */
			struct epg_error rerr = { "" };
			uint32_t ifindex = if_nametoindex(o->ifaces[i]);
			struct epg_iface_info info;
			int r = epg_replace(&locked, o->ifaces[i], false, &rerr);

			logmsg("%s: already attached, adopted%s", o->ifaces[i],
			       r == 1 ? "" : r == 0 ? "; its programs replaced by this build's" :
			       "; could not replace its programs, the running ones stay");
			if (r < 0)
				logmsg("%s", rerr.msg);
			/* adoption keeps the mode it was attached in */
			if (o->mode_given[i] && ifindex &&
			    !bpf_map_lookup_elem(locked.ifaces, &ifindex, &info) &&
			    info.mode != o->modes[i])
				logmsg("warning: %s runs in %s mode, not the %s mode --interface asks for: to change it, stop serve, epgate detach %s, and start serve again",
				       o->ifaces[i], info.mode == EPG_MODE_SKB ? "skb" : "native",
				       o->modes[i] == EPG_MODE_SKB ? "skb" : "native", o->ifaces[i]);
			rc = 0;
		}
		epg_maps_close(&locked);
		if (rc)
			goto out_cfg;
	}
	warn_exempt_unsupported(&sv);
	if (sv.flow_out) {
		flow_log_baseline(&sv);
		set_flowlog_flag(&sv, true);
	}
	sigprocmask(SIG_BLOCK, &set, NULL);
	rc = start_http(&sv, err);
	if (rc) {
		if (sv.flow_out) /* nobody drains the rejected flows now */
			set_flowlog_flag(&sv, false);
		goto out_cfg;
	}
	logmsg("running: pin directory %s, metrics on http://%s/metrics%s%s", o->pin_dir,
	       sv.listen, o->flow_log ? ", flow logs to " : "",
	       o->flow_log ? o->flow_log : "");

	now = clock_ns(CLOCK_MONOTONIC);
	next_sweep = now + (uint64_t)o->sweep_interval * 1000000000ull;
	next_log = now + (uint64_t)o->flow_log_interval * 1000000000ull;
	sv.interval_start = clock_ns(CLOCK_REALTIME) / 1000000000ull;
	for (;;) {
		sig = sigtimedwait(&set, NULL, &tick);
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (sig == SIGHUP) {
			struct epg_error aerr = { "" };

			if (apply_config(&sv, &aerr)) {
				atomic_fetch_add(&sv.apply_errors, 1);
				logmsg("reload failed, the running policy stays: %s", aerr.msg);
			} else {
				logmsg("reloaded %zu document(s)", o->n_config);
				warn_exempt_unsupported(&sv);
			}
		}
		if (sig == SIGUSR1 && sv.flow_out && sv.flow_out != stdout) {
			struct epg_error ferr = { "" };

			if (open_flow_log(&sv, &ferr))
				logmsg("cannot reopen the flow log: %s", ferr.msg);
		}
		now = clock_ns(CLOCK_MONOTONIC);
		if (sv.flow_out && now >= next_log) {
			flow_log_interval(&sv);
			next_log = now + (uint64_t)o->flow_log_interval * 1000000000ull;
		}
		if (now >= next_sweep) {
			int n = epg_ct_expire(&sv.maps, now, false, sv.flow_out ? &sv.ended : NULL);

			epg_frag_expire(&sv.maps, now, false);
			if (n > 0 && o->verbose)
				logmsg("swept %d idle flows", n);
			next_sweep = now + (uint64_t)o->sweep_interval * 1000000000ull;
		}
	}
	logmsg("stopping; the datapath stays attached and enforcing");
	if (sv.flow_out) {
		set_flowlog_flag(&sv, false);
		flow_log_interval(&sv);
	}
	MHD_stop_daemon(sv.http);
	rc = 0;
out_cfg:
	free(sv.enis);
	epg_config_free(&sv.cfg);
out_maps:
	epg_maps_close(&sv.maps);
out_log:
	if (sv.listen_fd >= 0)
		close(sv.listen_fd);
	if (sv.flow_out && sv.flow_out != stdout)
		fclose(sv.flow_out);
out_fl:
	epg_fl_state_free(sv.fl);
	free(sv.ended.v);
out_lock:
	if (sv.lock_fd >= 0) {
		if (!rc)
			unlink(sv.lock_path); /* a clean stop leaves nothing in /run/lock */
		close(sv.lock_fd);
	}
	return rc;
}
