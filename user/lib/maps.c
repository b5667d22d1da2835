// SPDX-License-Identifier: MIT
/* Pinned maps: open or create them, read and write them in bulk, read the
 * counters. Installing a policy is apply.c's. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "epgate.h"
#include "mapio.h"
#include "epgate.skel.h"

#define set_err epg_set_err

const char *epg_pin_dir(const char *arg)
{
	const char *env = getenv("EPGATE_PIN_DIR");

	if (arg && *arg)
		return arg;
	if (env && *env)
		return env;
	return EPG_DEFAULT_PIN_DIR;
}

const char *epg_reason_label(uint32_t reason)
{
	static const char *const labels[] = {
#define EPG_REASON(name, label, verdict) label,
#include "epgate/reasons.def"
#undef EPG_REASON
	};

	return reason < EPG_R_COUNT ? labels[reason] : "unknown";
}

bool epg_reason_is_drop(uint32_t reason)
{
	static const bool drop[] = {
#define EPG_REASON(name, label, verdict) EPG_##verdict == EPG_DROP,
#include "epgate/reasons.def"
#undef EPG_REASON
	};

	return reason < EPG_R_COUNT ? drop[reason] : true;
}

static const struct {
	const char *name;
	size_t off;
	bool optional; /* newer than ABI 2's first release: absent from older pins
			* until a command that creates pins adds it */
} map_names[] = {
	{ "epg_meta", offsetof(struct epg_maps, meta), false },
	{ "epg_addr", offsetof(struct epg_maps, addr), false },
	{ "epg_peer4", offsetof(struct epg_maps, peer4), false },
	{ "epg_peer6", offsetof(struct epg_maps, peer6), false },
	{ "epg_svc", offsetof(struct epg_maps, svc), false },
	{ "epg_rule_bits", offsetof(struct epg_maps, rule_bits), false },
	{ "epg_ep_stats", offsetof(struct epg_maps, ep_stats), false },
	{ "epg_rule_stats", offsetof(struct epg_maps, rule_stats), false },
	{ "epg_global", offsetof(struct epg_maps, global), false },
	{ "epg_ep_info", offsetof(struct epg_maps, ep_info), false },
	{ "epg_rule_info", offsetof(struct epg_maps, rule_info), false },
	{ "epg_ifaces", offsetof(struct epg_maps, ifaces), false },
	{ "epg_ct", offsetof(struct epg_maps, ct), false },
	{ "epg_ct_prof", offsetof(struct epg_maps, ct_prof), false },
	{ "epg_rej", offsetof(struct epg_maps, rej), false },
	{ "epg_frag", offsetof(struct epg_maps, frag), false },
	{ "epg_filter", offsetof(struct epg_maps, filter), false },
	{ "epg_sets", offsetof(struct epg_maps, sets), false },
	{ "epg_rule_keys", offsetof(struct epg_maps, rule_keys), false },
	{ "epg_ct_ended", offsetof(struct epg_maps, ct_ended), true },
	{ "epg_exempt", offsetof(struct epg_maps, exempt), true },
	{ "epg_spoofed", offsetof(struct epg_maps, spoofed), true },
};
#define N_MAPS (sizeof(map_names) / sizeof(map_names[0]))

static int *map_fd(struct epg_maps *m, size_t i)
{
	return (int *)((char *)m + map_names[i].off);
}

static int mkdir_p(const char *dir)
{
	char buf[256];

	snprintf(buf, sizeof(buf), "%s", dir);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

/* ---- sizes of the per-CPU counters ---------------------------------------- */

static uint32_t fit_slots(uint64_t per_slot, int ncpu, uint32_t lo, uint32_t hi)
{
	uint64_t n = EPG_COUNTER_BUDGET / (per_slot * (uint64_t)(ncpu > 0 ? ncpu : 1));
	uint32_t p = lo;

	while (p < hi && (uint64_t)p * 2 <= n)
		p *= 2;
	return p;
}

void epg_default_sizes(struct epg_sizes *sz, int ncpu)
{
	memset(sz, 0, sizeof(*sz));
	sz->eps = fit_slots(sizeof(struct epg_ep_counters), ncpu, EPG_MIN_ENDPOINT_SLOTS,
			    EPG_MAX_ENDPOINTS);
	sz->rule_slots = fit_slots(sizeof(struct epg_counter), ncpu, EPG_MIN_RULE_SLOTS,
				   EPG_MAX_RULE_SLOTS);
}

static struct epg_sizes sizes; /* eps == 0: the defaults */

void epg_set_sizes(const struct epg_sizes *sz)
{
	sizes = *sz;
}

static struct epg_sizes sizes_wanted(void)
{
	struct epg_sizes sz;

	epg_default_sizes(&sz, libbpf_num_possible_cpus());
	if (sizes.eps_given)
		sz.eps = sizes.eps, sz.eps_given = true;
	if (sizes.rule_slots_given)
		sz.rule_slots = sizes.rule_slots, sz.rule_slots_given = true;
	return sz;
}

static uint32_t max_entries_of(int fd)
{
	struct bpf_map_info info = { 0 };
	uint32_t len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.max_entries;
}

/* The pins' sizes; for a command that creates pins, a size asked for must
 * be theirs (other commands only read them). */
static int read_sizes(struct epg_maps *m, bool creating, struct epg_error *err)
{
	struct epg_sizes want = sizes_wanted();

	m->max_eps = max_entries_of(m->ep_stats);
	m->max_rule_slots = max_entries_of(m->rule_stats);
	if (!m->max_eps || !m->max_rule_slots)
		return set_err(err, -errno ? -errno : -EIO, "%s/epg_ep_stats, epg_rule_stats: cannot read their sizes: %s",
			       m->pin_dir, strerror(errno ? errno : EIO));
	if (m->max_eps > EPG_MAX_ENDPOINTS || m->max_rule_slots > EPG_MAX_RULE_SLOTS)
		return set_err(err, -EPROTO, "%s: the counter maps have sizes this build cannot use (%u endpoint slots, %u rule slots): detach --all, remove %s, then attach and apply again",
			       m->pin_dir, m->max_eps, m->max_rule_slots, m->pin_dir);
	if (creating && ((want.eps_given && want.eps != m->max_eps) ||
			 (want.rule_slots_given && want.rule_slots != m->max_rule_slots)))
		return set_err(err, -EEXIST, "%s was created with %u endpoint and %u rule counter slots, not the %u and %u asked for: sizes are fixed when the pins are created (detach --all and remove %s to create them anew), or leave out --max-endpoints and --max-rules (EPGATE_MAX_ENDPOINTS, EPGATE_MAX_RULES)",
			       m->pin_dir, m->max_eps, m->max_rule_slots,
			       want.eps_given ? want.eps : m->max_eps,
			       want.rule_slots_given ? want.rule_slots : m->max_rule_slots, m->pin_dir);
	return 0;
}

static const char *const ep_maps[] = { "epg_ep_stats", "epg_ep_info" };
static const char *const rule_maps[] = { "epg_rule_stats", "epg_rule_keys", "epg_rule_info" };

/* The size of a pinned map, or 0 when it is not pinned (or unreadable). */
static uint32_t pinned_max_entries(const char *pin_dir, const char *name)
{
	char path[512];
	uint32_t n;
	int fd;

	if (!pin_dir)
		return 0;
	snprintf(path, sizeof(path), "%s/%s", pin_dir, name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 0;
	n = max_entries_of(fd);
	close(fd);
	return n;
}

/* Each counter map: the size of its pin where there is one (libbpf reuses
 * a pin only when the definitions match), else eps or rule_slots. */
static int size_counters(struct bpf_object *obj, const char *pin_dir, uint32_t eps,
			 uint32_t rule_slots)
{
	int rc = 0;

	for (size_t i = 0; !rc && i < sizeof(ep_maps) / sizeof(ep_maps[0]); i++) {
		uint32_t n = pinned_max_entries(pin_dir, ep_maps[i]);

		rc = bpf_map__set_max_entries(bpf_object__find_map_by_name(obj, ep_maps[i]),
					      n ? n : eps);
	}
	for (size_t i = 0; !rc && i < sizeof(rule_maps) / sizeof(rule_maps[0]); i++) {
		uint32_t n = pinned_max_entries(pin_dir, rule_maps[i]);

		rc = bpf_map__set_max_entries(bpf_object__find_map_by_name(obj, rule_maps[i]),
					      n ? n : rule_slots);
	}
	return rc;
}

int epg_object_size_counters(struct bpf_object *obj, uint32_t eps, uint32_t rule_slots)
{
	return size_counters(obj, NULL, eps, rule_slots);
}

/* Create the maps by loading the object with no program, pinned by name:
 * the missing ones (the first time, or after an upgrade that added a map). */
static int create_pins(const char *pin_dir, struct epg_error *err)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_dir);
	struct epg_sizes sz = sizes_wanted();
	struct epgate_bpf *skel;
	struct bpf_program *prog;
	int rc;

	skel = epgate_bpf__open_opts(&opts);
	if (!skel)
		return set_err(err, -errno, "cannot open the embedded BPF object: %s",
			       strerror(errno));
	bpf_object__for_each_program(prog, skel->obj)
		bpf_program__set_autoload(prog, false);
	/* pins that exist keep their sizes: read_sizes() compares them with
	 * the sizes asked for */
	rc = size_counters(skel->obj, pin_dir, sz.eps, sz.rule_slots);
	if (!rc)
		rc = epgate_bpf__load(skel);
	epgate_bpf__destroy(skel);
	if (rc)
		return set_err(err, rc, "cannot create the maps under %s: %s (run with -v for libbpf's details)",
			       pin_dir, strerror(-rc));
	return 0;
}

static int check_abi(int meta_fd, const char *pin_dir, struct epg_error *err)
{
	struct epg_meta meta = { 0 };
	__u32 zero = 0;

	if (bpf_map_lookup_elem(meta_fd, &zero, &meta))
		return set_err(err, -errno, "%s/epg_meta: cannot read: %s", pin_dir,
			       strerror(errno));
	if (meta.abi_version == 0) {
		meta.abi_version = EPG_ABI_VERSION;
		if (bpf_map_update_elem(meta_fd, &zero, &meta, BPF_ANY))
			return set_err(err, -errno, "%s/epg_meta: cannot write: %s",
				       pin_dir, strerror(errno));
		return 0;
	}
	if (meta.abi_version != EPG_ABI_VERSION)
		return set_err(err, -EPROTO,
			       "%s holds maps of epgate ABI version %u, this epgate speaks version %u: detach with the epgate that attached them (epgate detach --all), remove %s, then attach and apply again",
			       pin_dir, meta.abi_version, EPG_ABI_VERSION, pin_dir);
	return 0;
}

int epg_maps_from_object(struct epg_maps *m, struct bpf_object *obj)
{
	memset(m, 0, sizeof(*m));
	m->lock_fd = -1;
	snprintf(m->pin_dir, sizeof(m->pin_dir), "(private)");
	for (size_t i = 0; i < N_MAPS; i++) {
		*map_fd(m, i) = bpf_object__find_map_fd_by_name(obj, map_names[i].name);
		if (*map_fd(m, i) < 0)
			return -ENOENT;
	}
	m->max_eps = max_entries_of(m->ep_stats);
	m->max_rule_slots = max_entries_of(m->rule_stats);
	return 0;
}

int epg_maps_open(struct epg_maps *m, const char *pin_dir, int flags,
		  struct epg_error *err)
{
	char path[512];
	struct statfs st;
	int rc;

	memset(m, 0, sizeof(*m));
	m->lock_fd = -1;
	for (size_t i = 0; i < N_MAPS; i++)
		*map_fd(m, i) = -1;
	if (strlen(pin_dir) >= sizeof(m->pin_dir) - 20)
		return set_err(err, -ENAMETOOLONG, "pin directory %s: path too long", pin_dir);
	snprintf(m->pin_dir, sizeof(m->pin_dir), "%s", pin_dir);

	if (flags & EPG_OPEN_CREATE) {
		rc = mkdir_p(pin_dir);
		if (rc)
			return set_err(err, rc, "cannot create pin directory %s: %s",
				       pin_dir, strerror(-rc));
	}
	if (statfs(pin_dir, &st)) {
		rc = -errno;
		if (rc == -ENOENT)
			return set_err(err, rc, "pin directory %s does not exist: nothing is attached or applied there (use --pin-dir or EPGATE_PIN_DIR if it is elsewhere)",
				       pin_dir);
		return set_err(err, rc, "pin directory %s: %s", pin_dir, strerror(-rc));
	}
	if (st.f_type != BPF_FS_MAGIC)
		return set_err(err, -EINVAL, "pin directory %s is not on a bpffs: mount one (mount -t bpf bpf /sys/fs/bpf) or choose another --pin-dir",
			       pin_dir);
	if (flags & EPG_OPEN_LOCK) {
		m->lock_fd = open(pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (m->lock_fd < 0 || flock(m->lock_fd, LOCK_EX)) {
			rc = -errno;
			epg_maps_close(m);
			return set_err(err, rc, "cannot lock pin directory %s: %s", pin_dir,
				       strerror(-rc));
		}
	}

	snprintf(path, sizeof(path), "%s/epg_meta", pin_dir);
	if (access(path, F_OK)) {
		if (!(flags & EPG_OPEN_CREATE)) {
			epg_maps_close(m);
			return set_err(err, -ENOENT, "no epgate maps under %s: run 'epgate attach IFACE' or 'epgate apply FILE...' first (or give the right --pin-dir)",
				       pin_dir);
		}
	} else {
		/* Check the ABI before libbpf tries to reuse the pins. */
		int fd = bpf_obj_get(path);

		if (fd < 0) {
			rc = -errno;
			epg_maps_close(m);
			return set_err(err, rc, "%s: %s", path, strerror(-rc));
		}
		rc = check_abi(fd, pin_dir, err);
		close(fd);
		if (rc) {
			epg_maps_close(m);
			return rc;
		}
	}
	/* Load the object (maps only) when a pin is missing: the first time,
	 * or after an upgrade that added a map of the same ABI. */
	for (size_t i = 0; (flags & EPG_OPEN_CREATE) && i < N_MAPS; i++) {
		snprintf(path, sizeof(path), "%s/%s", pin_dir, map_names[i].name);
		if (access(path, F_OK)) {
			rc = create_pins(pin_dir, err);
			if (rc) {
				epg_maps_close(m);
				return rc;
			}
			break;
		}
	}
	for (size_t i = 0; i < N_MAPS; i++) {
		snprintf(path, sizeof(path), "%s/%s", pin_dir, map_names[i].name);
		*map_fd(m, i) = bpf_obj_get(path);
		if (*map_fd(m, i) < 0 && errno == ENOENT && map_names[i].optional)
			continue;
		if (*map_fd(m, i) < 0) {
			rc = -errno;
			epg_maps_close(m);
			return set_err(err, rc, "%s: %s: the pin directory is incomplete; detach --all, remove it and attach again",
				       path, strerror(-rc));
		}
	}
	rc = check_abi(m->meta, pin_dir, err);
	if (!rc)
		rc = read_sizes(m, flags & EPG_OPEN_CREATE, err);
	if (rc)
		epg_maps_close(m);
	return rc;
}

void epg_maps_close(struct epg_maps *m)
{
	for (size_t i = 0; i < N_MAPS; i++) {
		if (*map_fd(m, i) >= 0)
			close(*map_fd(m, i));
		*map_fd(m, i) = -1;
	}
	if (m->lock_fd >= 0)
		close(m->lock_fd); /* releases the flock */
	m->lock_fd = -1;
}

/* ---- reading and writing maps in bulk ---------------------------------- */

/* Every value of an array map, in one batch syscall where the kernel has it. */
int epg_read_array(int fd, uint32_t n, size_t value_size, void *out)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	uint32_t *keys = calloc(n, sizeof(*keys)), count = n, batch = 0;
	int rc;

	if (!keys)
		return -ENOMEM;
	rc = bpf_map_lookup_batch(fd, NULL, &batch, keys, out, &count, &opts);
	free(keys);
	if (!rc || (rc == -ENOENT && count == n))
		return 0;
	for (uint32_t i = 0; i < n; i++) /* no batch support: one by one */
		if (bpf_map_lookup_elem(fd, &i, (char *)out + (size_t)i * value_size))
			return -errno;
	return 0;
}

#define EPG_BATCH 4096 /* elements per batch syscall */
#define EPG_EACH_BATCH 1024 /* elements per batch of epg_map_each (its memory) */

static bool no_batch(int e)
{
	return e == EINVAL || e == ENOTSUP || e == EOPNOTSUPP || e == 524 /* ENOTSUPP */;
}

/* Double two parallel arrays; on failure both stay valid for free(). */
static int grow_pairs(char **k, char **v, size_t *cap, size_t key_size, size_t value_size)
{
	char *nk = realloc(*k, *cap * 2 * key_size), *nv;

	if (!nk)
		return -ENOMEM;
	*k = nk;
	nv = realloc(*v, *cap * 2 * value_size);
	if (!nv)
		return -ENOMEM;
	*v = nv;
	*cap *= 2;
	return 0;
}

/* epg_map_read_all's arrays, grown as epg_map_each hands over entries. */
struct read_all {
	char *k, *v;
	size_t n, cap, key_size, value_size;
};

static int read_one(const void *key, const void *value, void *ctx)
{
	struct read_all *a = ctx;

	if (a->n == a->cap && grow_pairs(&a->k, &a->v, &a->cap, a->key_size, a->value_size))
		return -ENOMEM;
	memcpy(a->k + a->n * a->key_size, key, a->key_size);
	memcpy(a->v + a->n * a->value_size, value, a->value_size);
	a->n++;
	return 0;
}

int epg_map_read_all(int fd, size_t key_size, size_t value_size, void **keys,
		     void **values, size_t *n)
{
	struct read_all a = { .cap = EPG_BATCH, .key_size = key_size, .value_size = value_size };
	int rc;

	*keys = *values = NULL;
	*n = 0;
	a.k = malloc(a.cap * key_size);
	a.v = malloc(a.cap * value_size);
	rc = a.k && a.v ? epg_map_each(fd, key_size, value_size, read_one, &a) : -ENOMEM;
	if (rc) {
		free(a.k);
		free(a.v);
		return rc;
	}
	*keys = a.k;
	*values = a.v;
	*n = a.n;
	return 0;
}

int epg_map_each(int fd, size_t key_size, size_t value_size,
		 int (*fn)(const void *key, const void *value, void *ctx), void *ctx)
{
	uint64_t in[4], out[4]; /* batch cursor */
	size_t cap = EPG_EACH_BATCH;
	char *k = malloc(cap * key_size), *v = malloc(cap * value_size);
	void *cursor = NULL;
	int rc = 0;

	while (!rc) {
		__u32 count = (__u32)cap;
		int r, e;

		if (!k || !v) {
			rc = -ENOMEM;
			break;
		}
		r = bpf_map_lookup_batch(fd, cursor, out, k, v, &count, NULL);
		e = r ? errno : 0;
		if (r && e == ENOSPC && !count) { /* one bucket holds more: room for it */
			if (grow_pairs(&k, &v, &cap, key_size, value_size))
				rc = -ENOMEM;
			continue;
		}
		if (r && e != ENOENT && !cursor && no_batch(e))
			goto one_by_one;
		if (r && e != ENOENT) { /* count is not the kernel's then */
			rc = -e;
			break;
		}
		for (__u32 i = 0; i < count && !rc; i++)
			rc = fn(k + i * key_size, v + i * value_size, ctx);
		if (rc || r)
			break;
		memcpy(in, out, sizeof(in));
		cursor = in;
	}
	free(k);
	free(v);
	return rc;

one_by_one: {
		char key[64], next[64];
		void *prev = NULL;

		while (!rc && !bpf_map_get_next_key(fd, prev, next)) {
			memcpy(key, next, key_size);
			prev = key;
			if (!bpf_map_lookup_elem(fd, key, v)) /* else deleted meanwhile */
				rc = fn(key, v, ctx);
		}
		free(k);
		free(v);
		return rc;
	}
}

int epg_map_put_many(int fd, const void *keys, const void *values, size_t n,
		     size_t key_size, size_t value_size)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
	const char *k = keys, *v = values;
	bool batch = true;

	for (size_t i = 0; i < n;) {
		__u32 count = (__u32)(n - i < EPG_BATCH ? n - i : EPG_BATCH);

		if (batch) {
			if (!bpf_map_update_batch(fd, k + i * key_size, v + i * value_size,
						  &count, &opts)) {
				i += count;
				continue;
			}
			if (!no_batch(errno))
				return -errno;
			batch = false; /* no batch for this map type: one by one */
		}
		if (bpf_map_update_elem(fd, k + i * key_size, v + i * value_size, BPF_ANY))
			return -errno;
		i++;
	}
	return 0;
}

int epg_map_del_many(int fd, const void *keys, size_t n, size_t key_size)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	const char *k = keys;
	bool batch = true;

	for (size_t i = 0; i < n;) {
		__u32 count = (__u32)(n - i < EPG_BATCH ? n - i : EPG_BATCH);

		if (batch) {
			int r = bpf_map_delete_batch(fd, k + i * key_size, &count, &opts);

			if (r && errno != ENOENT) {
				/* count is not reliable here (the kernel leaves it
				 * untouched without batch support): redo the chunk
				 * one by one, where absent keys are no error */
				if (!no_batch(errno))
					return -errno;
				batch = false;
				continue;
			}
			i += count; /* deleted before any failure */
			if (r)
				i++; /* ENOENT: absent already, skip it */
			continue;
		}
		if (bpf_map_delete_elem(fd, k + i * key_size) && errno != ENOENT)
			return -errno;
		i++;
	}
	return 0;
}

/* A whole per-CPU array map, in one batch: n values of ncpu x stride bytes. */
static void *read_percpu_array(int fd, uint32_t n, size_t value_size, size_t *stride, int *ncpu)
{
	void *buf;

	*ncpu = libbpf_num_possible_cpus();
	if (*ncpu < 1)
		*ncpu = 1;
	*stride = (value_size + 7) & ~(size_t)7;
	buf = malloc((size_t)n * (size_t)*ncpu * *stride);
	if (buf && epg_read_array(fd, n, (size_t)*ncpu * *stride, buf)) {
		free(buf);
		buf = NULL;
	}
	return buf;
}

/* Value idx of such a buffer, summed over CPUs (u64 fields). */
static void sum_cpus(const void *buf, uint32_t idx, int ncpu, size_t stride, void *out,
		     size_t value_size)
{
	const char *v = (const char *)buf + (size_t)idx * (size_t)ncpu * stride;
	uint64_t *acc = out;

	memset(out, 0, value_size);
	for (int c = 0; c < ncpu; c++)
		for (size_t w = 0; w < value_size / 8; w++)
			acc[w] += ((const uint64_t *)(v + (size_t)c * stride))[w];
}

/* ---- counters ---------------------------------------------------------- */

int epg_percpu_sum(int fd, uint32_t key, void *out, size_t value_size)
{
	int ncpu = libbpf_num_possible_cpus();
	size_t stride = (value_size + 7) & ~(size_t)7;
	uint64_t *acc = out;
	char *buf;

	if (ncpu < 1)
		ncpu = 1;
	buf = calloc((size_t)ncpu, stride);
	if (!buf)
		return -ENOMEM;
	if (bpf_map_lookup_elem(fd, &key, buf)) {
		free(buf);
		return -errno;
	}
	memset(out, 0, value_size);
	for (int c = 0; c < ncpu; c++) {
		const uint64_t *v = (const uint64_t *)(buf + (size_t)c * stride);

		for (size_t w = 0; w < value_size / 8; w++)
			acc[w] += v[w];
	}
	free(buf);
	return 0;
}

static int add_addr_text(struct epg_ep_snapshot *e, const struct epg_addr_key *k)
{
	char buf[INET6_ADDRSTRLEN];
	void *v = realloc(e->addrs, (e->n_addrs + 1) * sizeof(char *));

	if (!v)
		return -ENOMEM;
	e->addrs = v;
	inet_ntop((int)k->family, k->addr, buf, sizeof(buf));
	e->addrs[e->n_addrs] = strdup(buf);
	if (!e->addrs[e->n_addrs])
		return -ENOMEM;
	e->n_addrs++;
	return 0;
}

int epg_snapshot_read(struct epg_maps *m, struct epg_snapshot *s, struct epg_error *err)
{
	uint32_t zero = 0, key, next, *prev;
	int rc = 0;

	memset(s, 0, sizeof(*s));
	if (bpf_map_lookup_elem(m->meta, &zero, &s->meta))
		return set_err(err, -errno, "%s/epg_meta: %s", m->pin_dir, strerror(errno));
	for (uint32_t g = 0; g < EPG_G_MAX && !rc; g++)
		rc = epg_percpu_sum(m->global, g, &s->global[g], sizeof(struct epg_counter));
	if (!rc && m->spoofed >= 0)
		rc = epg_percpu_sum(m->spoofed, 0, &s->spoofed, sizeof(s->spoofed));
	if (!rc && m->exempt >= 0 && (s->meta.flags & (EPG_META_EXEMPT << (s->meta.active_gen & 1)))) {
		struct epg_exempt_key *ek = NULL;
		uint32_t *ev = NULL;
		size_t n = 0;

		rc = epg_map_read_all(m->exempt, sizeof(*ek), sizeof(*ev), (void **)&ek,
				      (void **)&ev, &n);
		for (size_t i = 0; !rc && i < n; i++)
			s->n_exempt += ek[i].space / 2 == (s->meta.active_gen & 1);
		free(ek);
		free(ev);
	}

	s->eps = calloc(m->max_eps, sizeof(*s->eps));
	s->rules = calloc(m->max_rule_slots, sizeof(*s->rules));
	s->ifaces = calloc(EPG_MAX_IFACES, sizeof(*s->ifaces));
	if (!s->eps || !s->rules || !s->ifaces)
		rc = -ENOMEM;
	struct epg_ep_info *all = rc ? NULL : calloc(m->max_eps, sizeof(*all));

	if (!rc && !all)
		rc = -ENOMEM;
	if (!rc)
		rc = epg_read_array(m->ep_info, m->max_eps, sizeof(*all), all);
	/* per-CPU counters in batches: one syscall per map, not one per slot */
	size_t stride;
	int ncpu;
	void *epc = rc ? NULL : read_percpu_array(m->ep_stats, m->max_eps,
						  sizeof(struct epg_ep_counters), &stride, &ncpu);

	if (!rc && !epc)
		rc = -EIO;
	for (uint32_t i = 0; i < m->max_eps && !rc; i++) {
		struct epg_ep_snapshot *e = &s->eps[s->n_eps];

		if (!all[i].in_use)
			continue;
		e->info = all[i];
		e->slot = i;
		sum_cpus(epc, i, ncpu, stride, e->c, sizeof(e->c));
		s->n_eps++;
	}
	free(epc);
	free(all);
	/* slot -> index into eps, so each address is placed in O(1) */
	uint32_t *by_slot = rc ? NULL : calloc(m->max_eps, sizeof(*by_slot));

	if (!rc && !by_slot)
		rc = -ENOMEM;
	for (size_t i = 0; !rc && i < s->n_eps; i++)
		by_slot[s->eps[i].slot] = (uint32_t)i + 1;
	struct epg_addr_key *akeys = NULL;
	struct epg_addr_val *avals = NULL;
	size_t n_addr = 0;

	if (!rc)
		rc = epg_map_read_all(m->addr, sizeof(*akeys), sizeof(*avals), (void **)&akeys,
				      (void **)&avals, &n_addr);
	uint8_t *used = rc ? NULL : calloc(EPG_MAX_SETS, 1);

	if (!rc && !used)
		rc = -ENOMEM;
	for (size_t i = 0; !rc && i < n_addr; i++) {
		const struct epg_addr_val *v = &avals[i];

		if (akeys[i].gen != (s->meta.active_gen & 1))
			continue;
		if (v->ep_slot < m->max_eps && by_slot[v->ep_slot])
			rc = add_addr_text(&s->eps[by_slot[v->ep_slot] - 1], &akeys[i]);
		if (v->ruleset < EPG_MAX_SETS)
			used[v->ruleset] = 1;
		if (v->acl < EPG_MAX_SETS)
			used[v->acl] = 1;
	}
	free(akeys);
	free(avals);
	/* how many rule sets are stored, and how many are in use */
	uint32_t *skeys = NULL;
	struct epg_set_info *svals = NULL;

	if (!rc)
		rc = epg_map_read_all(m->sets, sizeof(*skeys), sizeof(*svals), (void **)&skeys,
				      (void **)&svals, &s->n_sets);
	for (size_t i = 0; !rc && i < s->n_sets; i++)
		s->n_sets_used += skeys[i] < EPG_MAX_SETS && skeys[i] && used[skeys[i]];
	free(skeys);
	free(svals);
	free(used);
	free(by_slot);
	void *rc_buf = rc ? NULL : read_percpu_array(m->rule_stats, m->max_rule_slots,
						     sizeof(struct epg_counter), &stride, &ncpu);

	if (!rc && !rc_buf)
		rc = -EIO;
	uint32_t *rkeys = NULL;
	struct epg_rule_info *rvals = NULL;
	size_t n_rules = 0;

	if (!rc)
		rc = epg_map_read_all(m->rule_info, sizeof(*rkeys), sizeof(*rvals), (void **)&rkeys,
				      (void **)&rvals, &n_rules);
	for (size_t i = 0; !rc && i < n_rules; i++) {
		struct epg_rule_snapshot *r = &s->rules[s->n_rules];

		if (rkeys[i] >= m->max_rule_slots)
			continue;
		r->info = rvals[i];
		r->slot = rkeys[i];
		sum_cpus(rc_buf, rkeys[i], ncpu, stride, &r->c, sizeof(r->c));
		s->n_rules++;
	}
	free(rkeys);
	free(rvals);
	free(rc_buf);
	prev = NULL;
	while (!rc && s->n_ifaces < EPG_MAX_IFACES &&
	       !bpf_map_get_next_key(m->ifaces, prev, &next)) {
		struct epg_iface_snapshot *f = &s->ifaces[s->n_ifaces];

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(m->ifaces, &key, &f->info))
			continue;
		f->ifindex = key;
		s->n_ifaces++;
	}
	if (rc) {
		epg_snapshot_free(s);
		return set_err(err, rc, "cannot read counters under %s: %s", m->pin_dir,
			       strerror(-rc));
	}
	return 0;
}

void epg_snapshot_free(struct epg_snapshot *s)
{
	for (size_t i = 0; s->eps && i < s->n_eps; i++) {
		for (size_t a = 0; a < s->eps[i].n_addrs; a++)
			free(s->eps[i].addrs[a]);
		free(s->eps[i].addrs);
	}
	free(s->eps);
	free(s->rules);
	free(s->ifaces);
	memset(s, 0, sizeof(*s));
}
