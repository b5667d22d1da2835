// SPDX-License-Identifier: MIT
/* Pinned maps: open or create them, install a policy generation, read the
 * counters. */
#include <errno.h>
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
#include "epgate.skel.h"

#define EPG_GRACE_US 20000 /* in-flight packets finish well within this */

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
} map_names[] = {
	{ "epg_meta", offsetof(struct epg_maps, meta) },
	{ "epg_addr", offsetof(struct epg_maps, addr) },
	{ "epg_peer4", offsetof(struct epg_maps, peer4) },
	{ "epg_peer6", offsetof(struct epg_maps, peer6) },
	{ "epg_svc", offsetof(struct epg_maps, svc) },
	{ "epg_rule_bits", offsetof(struct epg_maps, rule_bits) },
	{ "epg_ep_stats", offsetof(struct epg_maps, ep_stats) },
	{ "epg_rule_stats", offsetof(struct epg_maps, rule_stats) },
	{ "epg_global", offsetof(struct epg_maps, global) },
	{ "epg_ep_info", offsetof(struct epg_maps, ep_info) },
	{ "epg_rule_info", offsetof(struct epg_maps, rule_info) },
	{ "epg_ifaces", offsetof(struct epg_maps, ifaces) },
	{ "epg_ct", offsetof(struct epg_maps, ct) },
	{ "epg_ct_prof", offsetof(struct epg_maps, ct_prof) },
	{ "epg_rej", offsetof(struct epg_maps, rej) },
	{ "epg_frag", offsetof(struct epg_maps, frag) },
	{ "epg_filter", offsetof(struct epg_maps, filter) },
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

/* Create the maps by loading the object with no program, pinned by name. */
static int create_pins(const char *pin_dir, struct epg_error *err)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_dir);
	struct epgate_bpf *skel;
	struct bpf_program *prog;
	int rc;

	skel = epgate_bpf__open_opts(&opts);
	if (!skel)
		return set_err(err, -errno, "cannot open the embedded BPF object: %s",
			       strerror(errno));
	bpf_object__for_each_program(prog, skel->obj)
		bpf_program__set_autoload(prog, false);
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
		if (*map_fd(m, i) < 0) {
			rc = -errno;
			epg_maps_close(m);
			return set_err(err, rc, "%s: %s: the pin directory is incomplete; detach --all, remove it and attach again",
				       path, strerror(-rc));
		}
	}
	return check_abi(m->meta, pin_dir, err);
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

/* ---- generations ------------------------------------------------------ */

typedef bool (*key_in_gen_fn)(const void *key, uint32_t gen);

static bool addr_in_gen(const void *key, uint32_t gen)
{
	return ((const struct epg_addr_key *)key)->gen == gen;
}

/* peer4, peer6, svc and rule_bits keys: the selector is at offset 4 (LPM) or
 * 0 (rule_bits); its bit 1 is the generation. */
static bool lpm_in_gen(const void *key, uint32_t gen)
{
	uint32_t sel;

	memcpy(&sel, (const char *)key + 4, sizeof(sel));
	return ((sel >> 1) & 1) == gen;
}

static bool rule_bit_in_gen(const void *key, uint32_t gen)
{
	return ((((const struct epg_rule_bit_key *)key)->sel >> 1) & 1) == gen;
}

/* Delete every key of one generation from a map. */
static int purge_gen(int fd, size_t key_size, key_in_gen_fn in_gen, uint32_t gen)
{
	size_t n = 0, cap = 256;
	char *keys = malloc(cap * key_size), key[64], next[64];
	void *prev = NULL;
	int rc = 0;

	if (!keys)
		return -ENOMEM;
	while (!bpf_map_get_next_key(fd, prev, next)) {
		if (in_gen(next, gen)) {
			if (n == cap) {
				char *v = realloc(keys, cap * 2 * key_size);

				if (!v) {
					free(keys);
					return -ENOMEM;
				}
				keys = v;
				cap *= 2;
			}
			memcpy(keys + n++ * key_size, next, key_size);
		}
		memcpy(key, next, key_size);
		prev = key;
	}
	for (size_t i = 0; i < n; i++)
		if (bpf_map_delete_elem(fd, keys + i * key_size) && errno != ENOENT && !rc)
			rc = -errno;
	free(keys);
	return rc;
}

static int purge_generation(struct epg_maps *m, uint32_t gen)
{
	int rc = 0;

	rc = rc ? rc : purge_gen(m->addr, sizeof(struct epg_addr_key), addr_in_gen, gen);
	rc = rc ? rc : purge_gen(m->peer4, sizeof(struct epg_peer4_key), lpm_in_gen, gen);
	rc = rc ? rc : purge_gen(m->peer6, sizeof(struct epg_peer6_key), lpm_in_gen, gen);
	rc = rc ? rc : purge_gen(m->svc, sizeof(struct epg_svc_key), lpm_in_gen, gen);
	rc = rc ? rc : purge_gen(m->rule_bits, sizeof(struct epg_rule_bit_key),
				 rule_bit_in_gen, gen);
	return rc;
}

/* ---- slots: stable counter indexes across applies --------------------- */

static int zero_percpu(int fd, uint32_t key, size_t value_size)
{
	int ncpu = libbpf_num_possible_cpus();
	size_t sz = ((value_size + 7) & ~(size_t)7) * (size_t)(ncpu > 0 ? ncpu : 1);
	void *zero = calloc(1, sz);
	int rc = 0;

	if (!zero)
		return -ENOMEM;
	if (bpf_map_update_elem(fd, &key, zero, BPF_ANY))
		rc = -errno;
	free(zero);
	return rc;
}

/* Every value of an array map, in one batch syscall where the kernel has it. */
static int read_array(int fd, uint32_t n, size_t value_size, void *out)
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

/* A whole per-CPU array map, in one batch: n values of ncpu x stride bytes. */
static void *read_percpu_array(int fd, uint32_t n, size_t value_size, size_t *stride, int *ncpu)
{
	void *buf;

	*ncpu = libbpf_num_possible_cpus();
	if (*ncpu < 1)
		*ncpu = 1;
	*stride = (value_size + 7) & ~(size_t)7;
	buf = malloc((size_t)n * (size_t)*ncpu * *stride);
	if (buf && read_array(fd, n, (size_t)*ncpu * *stride, buf)) {
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

struct id_slot {
	char id[EPG_ID_LEN + 16 + 8]; /* endpoint id, or "rule_id|group|dir" */
	uint32_t slot;
};

static int cmp_id_slot(const void *a, const void *b)
{
	return strcmp(((const struct id_slot *)a)->id, ((const struct id_slot *)b)->id);
}

static uint32_t find_slot(const struct id_slot *v, size_t n, const char *id, uint32_t none)
{
	struct id_slot k;
	const struct id_slot *hit;

	if (!n)
		return none;
	snprintf(k.id, sizeof(k.id), "%s", id);
	hit = bsearch(&k, v, n, sizeof(*v), cmp_id_slot);
	return hit ? hit->slot : none;
}

static void rule_key(char *buf, size_t len, const char *rule_id, const char *group, uint32_t dir)
{
	snprintf(buf, len, "%s|%.*s|%u", rule_id, EPG_ID_LEN, group, dir);
}

struct slots {
	uint32_t *ep_slot;   /* plan endpoint -> slot */
	uint32_t *rule_slot; /* plan rule -> slot */
	uint8_t *ep_keep;    /* slot -> used by the new plan */
	uint8_t *rule_keep;
	uint8_t *rule_used;  /* slot -> present in epg_rule_info */
	uint8_t *ep_was_used; /* slot -> in use before this apply */
};

static void slots_free(struct slots *s)
{
	free(s->ep_slot);
	free(s->rule_slot);
	free(s->ep_keep);
	free(s->rule_keep);
	free(s->rule_used);
	free(s->ep_was_used);
}

static int assign_ep_slots(struct epg_maps *m, const struct epg_plan *plan,
			   struct slots *s)
{
	struct epg_ep_info *info = calloc(EPG_MAX_ENDPOINTS, sizeof(*info));
	struct id_slot *ix = calloc(EPG_MAX_ENDPOINTS, sizeof(*ix));
	uint32_t next_free = 0;
	size_t n_ix = 0;
	int rc;

	if (!info || !ix) {
		rc = -ENOMEM;
		goto out;
	}
	rc = read_array(m->ep_info, EPG_MAX_ENDPOINTS, sizeof(*info), info);
	if (rc)
		goto out;
	for (uint32_t i = 0; i < EPG_MAX_ENDPOINTS; i++)
		if (info[i].in_use) {
			snprintf(ix[n_ix].id, sizeof(ix[n_ix].id), "%.*s", EPG_ID_LEN,
				 info[i].endpoint_id);
			ix[n_ix++].slot = i;
		}
	qsort(ix, n_ix, sizeof(*ix), cmp_id_slot);
	for (size_t e = 0; e < plan->n_eps; e++) {
		uint32_t slot = find_slot(ix, n_ix, plan->eps[e].ep->id, EPG_MAX_ENDPOINTS);

		if (slot == EPG_MAX_ENDPOINTS) {
			while (next_free < EPG_MAX_ENDPOINTS &&
			       (info[next_free].in_use || s->ep_keep[next_free]))
				next_free++;
			if (next_free == EPG_MAX_ENDPOINTS) {
				rc = -E2BIG;
				goto out;
			}
			slot = next_free;
			rc = zero_percpu(m->ep_stats, slot, sizeof(struct epg_ep_counters));
			if (rc)
				goto out;
		}
		s->ep_slot[e] = slot;
		s->ep_keep[slot] = 1;
	}
	for (uint32_t i = 0; i < EPG_MAX_ENDPOINTS; i++)
		s->ep_was_used[i] = info[i].in_use;
out:
	free(info);
	free(ix);
	return rc;
}

static int assign_rule_slots(struct epg_maps *m, const struct epg_plan *plan,
			     struct slots *s)
{
	uint32_t key, next, *prev = NULL, next_free = 0;
	struct id_slot *ix = NULL;
	size_t n_ix = 0, cap = 0;
	int rc = 0;

	while (!bpf_map_get_next_key(m->rule_info, prev, &next)) {
		struct epg_rule_info info;

		key = next;
		prev = &key;
		if (next >= EPG_MAX_RULE_SLOTS || bpf_map_lookup_elem(m->rule_info, &next, &info))
			continue;
		s->rule_used[next] = 1;
		if (n_ix == cap) {
			void *v = realloc(ix, (cap = cap ? cap * 2 : 1024) * sizeof(*ix));

			if (!v) {
				free(ix);
				return -ENOMEM;
			}
			ix = v;
		}
		rule_key(ix[n_ix].id, sizeof(ix[n_ix].id), info.rule_id, info.group_id, info.dir);
		ix[n_ix++].slot = next;
	}
	if (n_ix)
		qsort(ix, n_ix, sizeof(*ix), cmp_id_slot);
	for (size_t r = 0; r < plan->n_rules; r++) {
		const struct epg_rule_plan *rp = &plan->rules[r];
		char k[sizeof(ix->id)];
		uint32_t slot;

		rule_key(k, sizeof(k), rp->rule_id, rp->group_id, rp->dir);
		slot = find_slot(ix, n_ix, k, EPG_MAX_RULE_SLOTS);
		if (slot != EPG_MAX_RULE_SLOTS && s->rule_keep[slot])
			slot = EPG_MAX_RULE_SLOTS; /* taken this apply: a duplicate */
		if (slot == EPG_MAX_RULE_SLOTS) {
			while (next_free < EPG_MAX_RULE_SLOTS &&
			       (s->rule_used[next_free] || s->rule_keep[next_free]))
				next_free++;
			if (next_free == EPG_MAX_RULE_SLOTS) {
				rc = -E2BIG;
				break;
			}
			slot = next_free;
			rc = zero_percpu(m->rule_stats, slot, sizeof(struct epg_counter));
			if (rc)
				break;
		}
		s->rule_slot[r] = slot;
		s->rule_keep[slot] = 1;
	}
	free(ix);
	return rc;
}

/* ---- writing a generation --------------------------------------------- */

static int put(int fd, const void *k, const void *v, const char *what,
	       struct epg_error *err)
{
	if (bpf_map_update_elem(fd, k, v, BPF_ANY))
		return set_err(err, -errno, "cannot write %s: %s%s", what, strerror(errno),
			       errno == E2BIG || errno == ENOMEM ?
			       " (the map is full: the policy is larger than this build's limits in include/epgate/abi.h)" : "");
	return 0;
}

static int write_lpm(int fd, const struct epg_lpm_set *set, uint32_t sel, size_t data_len,
		     const char *what, struct epg_error *err)
{
	uint8_t key[4 + 4 + 16 + 4];

	for (size_t i = 0; i < set->n; i++) {
		uint32_t plen = 32 + set->v[i].plen;
		int rc;

		memset(key, 0, sizeof(key));
		memcpy(key, &plen, 4);
		memcpy(key + 4, &sel, 4);
		memcpy(key + 8, set->v[i].data, data_len);
		rc = put(fd, key, &set->v[i].bm, what, err);
		if (rc)
			return rc;
	}
	return 0;
}

/* One (ruleset or ACL, direction): its prefixes and its bits' rules. */
static int write_dir(struct epg_maps *m, const struct epg_dir_plan *dp, uint32_t sel,
		     const struct slots *s, struct epg_error *err)
{
	int rc = write_lpm(m->svc, &dp->svc, sel, 3, "epg_svc", err);

	rc = rc ? rc : write_lpm(m->peer4, &dp->peer4, sel, 4, "epg_peer4", err);
	rc = rc ? rc : write_lpm(m->peer6, &dp->peer6, sel, 16, "epg_peer6", err);
	for (uint32_t b = 0; b < dp->n_bits && !rc; b++) {
		struct epg_rule_bit_key k = { .sel = sel, .bit = b };
		struct epg_rule_ref ref = { .slot = s->rule_slot[dp->bit_rule[b]],
					    .deny = dp->bit_deny[b] };

		rc = put(m->rule_bits, &k, &ref, "epg_rule_bits", err);
	}
	return rc;
}

static int write_generation(struct epg_maps *m, const struct epg_plan *plan,
			    const struct slots *s, uint32_t gen, struct epg_error *err)
{
	int rc = 0;

	/* Timeout sets are indexed by generation: rewrite this one's wholly. */
	for (uint32_t i = 0; i < EPG_CT_PROFILES && !rc; i++) {
		struct epg_ct_timeouts t = { 0 };
		uint32_t idx = gen * EPG_CT_PROFILES + i;

		if (i < plan->n_ct_profiles)
			t = plan->ct_profiles[i];
		rc = put(m->ct_prof, &idx, &t, "epg_ct_prof", err);
	}

	for (size_t e = 0; e < plan->n_eps && !rc; e++) {
		const struct epg_ep_plan *ep = &plan->eps[e];
		struct epg_addr_val v = { .ep_slot = s->ep_slot[e], .ruleset = ep->ruleset };

		for (size_t a = 0; a < ep->n_addrs && !rc; a++) {
			struct epg_addr_key k = { .gen = gen, .family = ep->addrs[a].family };

			v.ct_profile = ep->addr_profile[a];
			v.acl = ep->addr_acl[a] ? EPG_ACL_SEL_BASE + ep->addr_acl[a] - 1 : EPG_ACL_NONE;
			memcpy(k.addr, ep->addrs[a].addr,
			       k.family == AF_INET ? 4 : 16);
			rc = put(m->addr, &k, &v, "epg_addr", err);
		}
	}
	for (size_t r = 0; r < plan->n_rulesets && !rc; r++)
		for (uint32_t d = 0; d < EPG_DIR_MAX && !rc; d++)
			rc = write_dir(m, &plan->rulesets[r].dir[d], epg_sel((uint32_t)r, gen, d),
				       s, err);
	for (size_t a = 0; a < plan->n_acls && !rc; a++)
		for (uint32_t d = 0; d < EPG_DIR_MAX && !rc; d++)
			rc = write_dir(m, &plan->acls[a].dir[d],
				       epg_sel(EPG_ACL_SEL_BASE + (uint32_t)a, gen, d), s, err);
	return rc;
}

static int write_names(struct epg_maps *m, const struct epg_plan *plan,
		       const struct slots *s, struct epg_error *err)
{
	int rc = 0;

	for (size_t e = 0; e < plan->n_eps && !rc; e++) {
		const struct epg_ep_plan *ep = &plan->eps[e];
		const struct epg_ruleset_plan *rs = &plan->rulesets[ep->ruleset];
		struct epg_ep_info info = { .in_use = 1, .n_addrs = (uint32_t)ep->n_addrs };

		snprintf(info.endpoint_id, sizeof(info.endpoint_id), "%s", ep->ep->id);
		snprintf(info.service_name, sizeof(info.service_name), "%s",
			 ep->ep->service ? ep->ep->service : "");
		for (int d = 0; d < EPG_DIR_MAX; d++)
			info.n_rules[d] = rs->dir[d].n_bits;
		for (size_t a = 0; a < ep->n_addrs; a++) {
			size_t b = 0;

			if (!ep->addr_acl[a])
				continue;
			if (!info.n_acl_addrs++)
				snprintf(info.acl_id, sizeof(info.acl_id), "%s",
					 plan->acls[ep->addr_acl[a] - 1].acl->id);
			while (b < a && ep->addr_acl[b] != ep->addr_acl[a])
				b++;
			info.n_acls += b == a; /* first address under this ACL */
		}
		rc = put(m->ep_info, &s->ep_slot[e], &info, "epg_ep_info", err);
	}
	for (size_t r = 0; r < plan->n_rules && !rc; r++) {
		const struct epg_rule_plan *rp = &plan->rules[r];
		struct epg_rule_info info = { .dir = rp->dir, .kind = rp->kind };

		snprintf(info.group_id, sizeof(info.group_id), "%s", rp->group_id);
		snprintf(info.rule_id, sizeof(info.rule_id), "%s", rp->rule_id);
		snprintf(info.desc, sizeof(info.desc), "%s", rp->desc);
		rc = put(m->rule_info, &s->rule_slot[r], &info, "epg_rule_info", err);
	}
	return rc;
}

/* Names of endpoints and rules that the new generation no longer has. */
static void release_names(struct epg_maps *m, const struct slots *s)
{
	struct epg_ep_info none = { 0 };

	for (uint32_t i = 0; i < EPG_MAX_ENDPOINTS; i++)
		if (!s->ep_keep[i] && s->ep_was_used[i])
			bpf_map_update_elem(m->ep_info, &i, &none, BPF_ANY);
	for (uint32_t i = 0; i < EPG_MAX_RULE_SLOTS; i++)
		if (s->rule_used[i] && !s->rule_keep[i])
			bpf_map_delete_elem(m->rule_info, &i);
}

/* The endpoint filter from every address in epg_addr (whichever generation):
 * written as a superset of what the datapath may look up at every moment. */
static int rebuild_filter(struct epg_maps *m)
{
	struct epg_filter *f = calloc(1, sizeof(*f));
	struct epg_addr_key key, next, *prev = NULL;
	uint32_t zero = 0;
	int rc = 0;

	if (!f)
		return -ENOMEM;
	while (!bpf_map_get_next_key(m->addr, prev, &next)) {
		uint32_t h = epg_filter_hash(next.family, next.addr);

		f->w[h / 64] |= 1ULL << (h % 64);
		key = next;
		prev = &key;
	}
	if (bpf_map_update_elem(m->filter, &zero, f, BPF_ANY))
		rc = -errno;
	free(f);
	return rc;
}

int epg_policy_apply(struct epg_maps *m, const struct epg_plan *plan,
		     struct epg_error *err)
{
	struct slots s = { 0 };
	struct epg_meta meta;
	struct timespec now;
	uint32_t zero = 0, next;
	int rc;

	if (bpf_map_lookup_elem(m->meta, &zero, &meta))
		return set_err(err, -errno, "%s/epg_meta: %s", m->pin_dir, strerror(errno));
	next = (meta.active_gen & 1) ^ 1;

	s.ep_slot = calloc(plan->n_eps + 1, sizeof(*s.ep_slot));
	s.rule_slot = calloc(plan->n_rules + 1, sizeof(*s.rule_slot));
	s.ep_keep = calloc(EPG_MAX_ENDPOINTS, 1);
	s.rule_keep = calloc(EPG_MAX_RULE_SLOTS, 1);
	s.rule_used = calloc(EPG_MAX_RULE_SLOTS, 1);
	s.ep_was_used = calloc(EPG_MAX_ENDPOINTS, 1);
	if (!s.ep_slot || !s.rule_slot || !s.ep_keep || !s.rule_keep || !s.rule_used ||
	    !s.ep_was_used) {
		rc = set_err(err, -ENOMEM, "out of memory");
		goto out;
	}

	/* Leftovers of an apply that died half-way are never active: clear them. */
	rc = purge_generation(m, next);
	if (rc) {
		set_err(err, rc, "cannot clear the inactive generation under %s: %s",
			m->pin_dir, strerror(-rc));
		goto out;
	}
	rc = assign_ep_slots(m, plan, &s);
	if (!rc)
		rc = assign_rule_slots(m, plan, &s);
	if (rc) {
		set_err(err, rc, "cannot assign counter slots: %s", rc == -E2BIG ?
			"no free slot (endpoints or rules beyond this build's limits)" :
			strerror(-rc));
		goto out;
	}
	rc = write_names(m, plan, &s, err);
	if (!rc)
		rc = write_generation(m, plan, &s, next, err);
	if (!rc && rebuild_filter(m)) /* old and new addresses */
		rc = set_err(err, -EIO, "%s/epg_filter: cannot write", m->pin_dir);
	if (rc) {
		purge_generation(m, next);
		rebuild_filter(m);
		goto out;
	}

	/* The flip: one map update switches every lookup to the new policy. */
	clock_gettime(CLOCK_REALTIME, &now);
	meta.abi_version = EPG_ABI_VERSION;
	meta.active_gen = next;
	meta.generation++;
	meta.apply_time_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	if (bpf_map_update_elem(m->meta, &zero, &meta, BPF_ANY)) {
		rc = set_err(err, -errno, "%s/epg_meta: cannot switch generation: %s",
			     m->pin_dir, strerror(errno));
		purge_generation(m, next);
		goto out;
	}
	usleep(EPG_GRACE_US);
	purge_generation(m, next ^ 1);
	rebuild_filter(m); /* the new addresses only */
	release_names(m, &s);
out:
	slots_free(&s);
	return rc;
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
	struct epg_addr_key ak, anext, *aprev = NULL;
	int rc = 0;

	memset(s, 0, sizeof(*s));
	if (bpf_map_lookup_elem(m->meta, &zero, &s->meta))
		return set_err(err, -errno, "%s/epg_meta: %s", m->pin_dir, strerror(errno));
	for (uint32_t g = 0; g < EPG_G_MAX && !rc; g++)
		rc = epg_percpu_sum(m->global, g, &s->global[g], sizeof(struct epg_counter));

	s->eps = calloc(EPG_MAX_ENDPOINTS, sizeof(*s->eps));
	s->rules = calloc(EPG_MAX_RULE_SLOTS, sizeof(*s->rules));
	s->ifaces = calloc(EPG_MAX_IFACES, sizeof(*s->ifaces));
	if (!s->eps || !s->rules || !s->ifaces)
		rc = -ENOMEM;
	struct epg_ep_info *all = rc ? NULL : calloc(EPG_MAX_ENDPOINTS, sizeof(*all));

	if (!rc && !all)
		rc = -ENOMEM;
	if (!rc)
		rc = read_array(m->ep_info, EPG_MAX_ENDPOINTS, sizeof(*all), all);
	/* per-CPU counters in batches: one syscall per map, not one per slot */
	size_t stride;
	int ncpu;
	void *epc = rc ? NULL : read_percpu_array(m->ep_stats, EPG_MAX_ENDPOINTS,
						  sizeof(struct epg_ep_counters), &stride, &ncpu);

	if (!rc && !epc)
		rc = -EIO;
	for (uint32_t i = 0; i < EPG_MAX_ENDPOINTS && !rc; i++) {
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
	uint32_t *by_slot = rc ? NULL : calloc(EPG_MAX_ENDPOINTS, sizeof(*by_slot));

	if (!rc && !by_slot)
		rc = -ENOMEM;
	for (size_t i = 0; !rc && i < s->n_eps; i++)
		by_slot[s->eps[i].slot] = (uint32_t)i + 1;
	while (!rc && !bpf_map_get_next_key(m->addr, aprev, &anext)) {
		struct epg_addr_val v;

		ak = anext;
		aprev = &ak;
		if (ak.gen != (s->meta.active_gen & 1) || bpf_map_lookup_elem(m->addr, &ak, &v))
			continue;
		if (v.ep_slot < EPG_MAX_ENDPOINTS && by_slot[v.ep_slot])
			rc = add_addr_text(&s->eps[by_slot[v.ep_slot] - 1], &ak);
	}
	free(by_slot);
	void *rc_buf = rc ? NULL : read_percpu_array(m->rule_stats, EPG_MAX_RULE_SLOTS,
						     sizeof(struct epg_counter), &stride, &ncpu);

	if (!rc && !rc_buf)
		rc = -EIO;
	prev = NULL;
	while (!rc && !bpf_map_get_next_key(m->rule_info, prev, &next)) {
		struct epg_rule_snapshot *r = &s->rules[s->n_rules];

		key = next;
		prev = &key;
		if (next >= EPG_MAX_RULE_SLOTS || bpf_map_lookup_elem(m->rule_info, &key, &r->info))
			continue;
		r->slot = key;
		sum_cpus(rc_buf, key, ncpu, stride, &r->c, sizeof(r->c));
		s->n_rules++;
	}
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
