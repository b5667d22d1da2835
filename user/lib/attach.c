// SPDX-License-Identifier: MIT
/*
 * Attaching the programs. XDP: through libxdp, so other XDP programs can
 * share the interface where libxdp's dispatcher works. Where it does not (a
 * kernel that refuses freplace programs, or no bpffs for libxdp's state),
 * libxdp would attach our program as the interface's only one by netlink;
 * epgate attaches it instead through a bpf_link pinned under the pin
 * directory (links/xdp-<ifindex>), which a newer build replaces atomically
 * (link update) and which nobody but its owner can detach by accident. tc
 * egress: a tcx bpf_link pinned the same way (links/tc-<ifindex>, kernel >=
 * 6.6), else a clsact filter. epg_ifaces records which way each went and
 * `epgate status` shows it.
 */
#include <errno.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>
#include "epgate.h"
#include "mapio.h"
#include "epgate.skel.h"

#define set_err epg_set_err

static bool is_bpffs(const char *dir)
{
	struct statfs st;

	return !statfs(dir, &st) && st.f_type == BPF_FS_MAGIC;
}

/* libxdp keeps its dispatcher state on a bpffs ($LIBXDP_BPFFS, default
 * /sys/fs/bpf). Under `ip netns exec` /sys is private and has none: then use
 * our pin directory, which is on a bpffs, rather than lose the dispatcher. */
static void libxdp_bpffs(const char *pin_dir)
{
	if (!getenv("LIBXDP_BPFFS") && !is_bpffs("/sys/fs/bpf"))
		setenv("LIBXDP_BPFFS", pin_dir, 0);
}

/* The program epgate attached on ifindex, according to libxdp, or 0. */
static uint32_t attached_prog_id(uint32_t ifindex, const struct epg_iface_info *info)
{
	struct xdp_multiprog *mp = xdp_multiprog__get_from_ifindex((int)ifindex);
	struct xdp_program *p;
	uint32_t id = 0;

	if (libxdp_get_error(mp))
		return 0;
	if (xdp_multiprog__is_legacy(mp)) {
		p = xdp_multiprog__main_prog(mp);
		if (p && xdp_program__id(p) == info->prog_id)
			id = info->prog_id;
	} else {
		for (p = xdp_multiprog__next_prog(NULL, mp); p;
		     p = xdp_multiprog__next_prog(p, mp))
			if (xdp_program__id(p) == info->prog_id)
				id = info->prog_id;
	}
	xdp_multiprog__close(mp);
	return id;
}


/* tc egress: a clsact filter at our own handle and priority, so that it
 * neither replaces nor is replaced by anyone else's. */
#define EPG_TC_HANDLE 0xe9a7
#define EPG_TC_PRIO   0xe9a7

static uint32_t prog_id_of_fd(int fd)
{
	struct bpf_prog_info info = { 0 };
	__u32 len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.id;
}

/* ---- pinned links: <pin dir>/links/{xdp,tc}-<ifindex> ------------------- */

#ifndef BPF_TCX_EGRESS
#define BPF_TCX_EGRESS 47 /* uapi of kernel 6.6; older headers lack it */
#endif

static void link_path(const struct epg_maps *m, const char *kind, uint32_t ifindex,
		      char *buf, size_t len)
{
	snprintf(buf, len, "%s/links/%s-%u", m->pin_dir, kind, ifindex);
}

/* Pin a new link, replacing a stale pin of a gone interface's link. */
static int link_pin(const struct epg_maps *m, int link_fd, const char *kind, uint32_t ifindex)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/links", m->pin_dir);
	if (mkdir(path, 0700) && errno != EEXIST)
		return -errno;
	link_path(m, kind, ifindex, path, sizeof(path));
	unlink(path);
	return bpf_obj_pin(link_fd, path) ? -errno : 0;
}

/* The pinned link, or -errno. */
static int link_open(const struct epg_maps *m, const char *kind, uint32_t ifindex)
{
	char path[512];
	int fd;

	link_path(m, kind, ifindex, path, sizeof(path));
	fd = bpf_obj_get(path);
	return fd < 0 ? -errno : fd;
}

/* Detach a pinned link and remove its pin; absent is fine. */
static int link_drop(const struct epg_maps *m, const char *kind, uint32_t ifindex)
{
	char path[512];
	int fd = link_open(m, kind, ifindex), rc = 0;

	if (fd >= 0) {
		if (bpf_link_detach(fd) && errno != ENOLINK && errno != EINVAL)
			rc = -errno;
		close(fd);
	}
	link_path(m, kind, ifindex, path, sizeof(path));
	if (!rc && unlink(path) && errno != ENOENT)
		rc = -errno;
	return rc;
}

/* Replace a pinned link's program atomically, if old_fd is still its program. */
static int link_replace(const struct epg_maps *m, const char *kind, uint32_t ifindex,
			int new_fd, int old_fd)
{
	LIBBPF_OPTS(bpf_link_update_opts, uo, .flags = old_fd >= 0 ? BPF_F_REPLACE : 0,
		    .old_prog_fd = old_fd >= 0 ? (__u32)old_fd : 0);
	int fd = link_open(m, kind, ifindex), rc;

	if (fd < 0)
		return fd;
	rc = bpf_link_update(fd, new_fd, &uo) ? -errno : 0;
	close(fd);
	return rc;
}

static int xdp_link_attach(const struct epg_maps *m, uint32_t ifindex, int prog_fd,
			   enum epg_attach_mode mode)
{
	LIBBPF_OPTS(bpf_link_create_opts, lo,
		    .flags = mode == EPG_MODE_SKB ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE);
	int fd = bpf_link_create(prog_fd, (int)ifindex, BPF_XDP, &lo), rc;

	if (fd < 0)
		return -errno;
	rc = link_pin(m, fd, "xdp", ifindex);
	if (rc)
		bpf_link_detach(fd);
	close(fd);
	return rc;
}

/* ---- tc egress -------------------------------------------------------------- */

static int tc_attach(uint32_t ifindex, int prog_fd)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)ifindex, .attach_point = BPF_TC_EGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .handle = EPG_TC_HANDLE,
		    .priority = EPG_TC_PRIO);
	int rc = bpf_tc_hook_create(&hook);

	if (rc && rc != -EEXIST)
		return rc;
	rc = bpf_tc_attach(&hook, &opts);
	if (rc == -EEXIST) {
		/* ours, left by an epgate that died: replace it */
		LIBBPF_OPTS(bpf_tc_opts, q, .handle = EPG_TC_HANDLE, .priority = EPG_TC_PRIO);
		struct bpf_prog_info info = { 0 };
		__u32 len = sizeof(info);
		int fd;

		if (bpf_tc_query(&hook, &q))
			return -EEXIST;
		fd = bpf_prog_get_fd_by_id(q.prog_id);
		if (fd < 0)
			return -EEXIST;
		rc = bpf_obj_get_info_by_fd(fd, &info, &len);
		close(fd);
		if (rc || strcmp(info.name, "epg_tc_egress"))
			return -EEXIST;
		opts.flags = BPF_TC_F_REPLACE;
		rc = bpf_tc_attach(&hook, &opts);
	}
	return rc;
}

static int tc_detach(uint32_t ifindex)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)ifindex, .attach_point = BPF_TC_EGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = EPG_TC_HANDLE, .priority = EPG_TC_PRIO);
	int rc = bpf_tc_detach(&hook, &opts);

	return rc == -ENOENT || rc == -EINVAL ? 0 : rc;
}

/* tcx where the kernel has it, else clsact. *method: which one. */
static int tc_attach_any(const struct epg_maps *m, uint32_t ifindex, int prog_fd,
			 uint32_t *method)
{
	int fd = bpf_link_create(prog_fd, (int)ifindex, BPF_TCX_EGRESS, NULL), rc;

	if (fd >= 0) {
		rc = link_pin(m, fd, "tc", ifindex);
		if (rc) {
			bpf_link_detach(fd);
			close(fd);
			return rc;
		}
		close(fd);
		tc_detach(ifindex); /* a clsact filter of an older epgate would run twice */
		*method = EPG_TC_TCX;
		return 0;
	}
	*method = EPG_TC_CLSACT;
	return tc_attach(ifindex, prog_fd);
}

static int tc_detach_any(const struct epg_maps *m, uint32_t ifindex, uint32_t method)
{
	int rc = link_drop(m, "tc", ifindex);

	if (method == EPG_TC_CLSACT || rc) {
		int r = tc_detach(ifindex);

		rc = r ? r : rc;
	}
	return rc;
}

/* Does the tc egress program recorded run on ifindex? */
static bool tc_live(uint32_t ifindex, const struct epg_iface_info *info)
{
	if (!info->tc_prog_id)
		return true; /* none recorded */
	if (info->tc_method == EPG_TC_TCX) {
		__u32 ids[64], n = sizeof(ids) / sizeof(ids[0]);

		if (bpf_prog_query((int)ifindex, BPF_TCX_EGRESS, 0, NULL, ids, &n))
			return false;
		for (__u32 i = 0; i < n; i++)
			if (ids[i] == info->tc_prog_id)
				return true;
		return false;
	} else {
		LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)ifindex, .attach_point = BPF_TC_EGRESS);
		LIBBPF_OPTS(bpf_tc_opts, q, .handle = EPG_TC_HANDLE, .priority = EPG_TC_PRIO);

		return !bpf_tc_query(&hook, &q) && q.prog_id == info->tc_prog_id;
	}
}

bool epg_iface_live(uint32_t ifindex, const struct epg_iface_info *info)
{
	/* by index and programs: a renamed interface still enforces; a deleted
	 * one's index is gone (and indexes are not handed out again soon); the
	 * XDP program judges what arrives, the tc one what the host sends */
	return attached_prog_id(ifindex, info) != 0 && tc_live(ifindex, info);
}

bool epg_iface_enforcing(struct epg_maps *m, const char *ifname)
{
	uint32_t ifindex = if_nametoindex(ifname);
	struct epg_iface_info info;

	return ifindex && !bpf_map_lookup_elem(m->ifaces, &ifindex, &info) &&
	       epg_iface_live(ifindex, &info);
}


static int record(struct epg_maps *m, uint32_t ifindex, const char *ifname,
		  enum epg_attach_mode mode, uint32_t xdp_method, uint32_t prog_id,
		  uint32_t tc_method, uint32_t tc_prog_id)
{
	struct epg_iface_info info = { .mode = mode, .xdp_method = xdp_method, .prog_id = prog_id,
				       .tc_method = tc_method, .tc_prog_id = tc_prog_id };
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	info.attach_time_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	snprintf(info.name, sizeof(info.name), "%s", ifname);
	return bpf_map_update_elem(m->ifaces, &ifindex, &info, BPF_ANY) ? -errno : 0;
}

/* Every attachment recorded in epg_ifaces: keys[i] is the ifindex of info[i]. */
struct ifaces {
	uint32_t *keys;
	struct epg_iface_info *info;
	size_t n;
};

static int ifaces_read(struct epg_maps *m, struct ifaces *f)
{
	return epg_map_read_all(m->ifaces, sizeof(*f->keys), sizeof(*f->info),
				(void **)&f->keys, (void **)&f->info, &f->n);
}

static void ifaces_free(struct ifaces *f)
{
	free(f->keys);
	free(f->info);
}

/* Does program prog_id use the map map_id? -1 when it cannot be read. */
static int prog_uses_map(uint32_t prog_id, uint32_t map_id)
{
	struct bpf_prog_info info;
	uint32_t len, *ids = NULL, n = 0;
	int fd = bpf_prog_get_fd_by_id(prog_id), rc = -1;

	if (fd < 0)
		return -1;
	/* once to learn how many maps it uses, once to read their ids */
	for (int pass = 0; pass < 2; pass++) {
		memset(&info, 0, sizeof(info));
		len = sizeof(info);
		info.nr_map_ids = n;
		info.map_ids = (uint64_t)(uintptr_t)ids;
		if (bpf_obj_get_info_by_fd(fd, &info, &len))
			break;
		if (pass == 0) {
			n = info.nr_map_ids;
			ids = calloc(n ? n : 1, sizeof(*ids));
			if (!ids)
				break;
			continue;
		}
		rc = 0;
		for (uint32_t i = 0; i < info.nr_map_ids && i < n; i++)
			rc |= ids[i] == map_id;
	}
	free(ids);
	close(fd);
	return rc;
}

int epg_exempt_unsupported(struct epg_maps *m, char *names, size_t size)
{
	struct bpf_map_info mi;
	uint32_t len = sizeof(mi);
	struct ifaces f;
	size_t used = 0;
	int n = 0;

	if (size)
		names[0] = '\0';
	memset(&mi, 0, sizeof(mi));
	if (m->exempt < 0 || bpf_obj_get_info_by_fd(m->exempt, &mi, &len) || ifaces_read(m, &f))
		return 0;
	for (size_t i = 0; i < f.n; i++) {
		const struct epg_iface_info *info = &f.info[i];
		uint32_t ids[2] = { info->prog_id, info->tc_prog_id };
		char name[IF_NAMESIZE + 1];

		for (int j = 0; j < 2; j++) {
			if (!ids[j] || prog_uses_map(ids[j], mi.id) != 0)
				continue;
			snprintf(name, sizeof(name), "%.*s", (int)sizeof(info->name), info->name);
			if (used < size)
				used += (size_t)snprintf(names + used, size - used, "%s%s (%s program %u)",
							 n ? ", " : "", name, j ? "tc" : "XDP", ids[j]);
			n++;
			if (used >= size && size > 4) /* cut: say so */
				memcpy(names + size - 4, "...", 4);
		}
	}
	ifaces_free(&f);
	return n;
}

int epg_exempt_warning(struct epg_maps *m, char *msg, size_t size)
{
	struct epg_meta meta;
	uint32_t zero = 0;
	char names[400];
	int n;

	if (bpf_map_lookup_elem(m->meta, &zero, &meta) ||
	    !(meta.flags & (EPG_META_EXEMPT << (meta.active_gen & 1))))
		return 0;
	n = epg_exempt_unsupported(m, names, sizeof(names));
	if (n > 0)
		snprintf(msg, size, "EpgateSettings.ExemptPeers: %d attached program%s predate%s exempt "
			 "peers and ignore them: %s; run `epgate attach IFACE --replace` on each",
			 n, n == 1 ? "" : "s", n == 1 ? "s" : "", names);
	return n;
}

/* Forget the interfaces of ours that no longer exist (deleted, perhaps
 * recreated under the same name with another ifindex): unpin their defunct
 * links and drop their entries. name: only those of that name; NULL: all.
 * Returns how many. */
static int forget_gone(struct epg_maps *m, const char *name)
{
	struct ifaces f;
	int gone = 0;

	if (ifaces_read(m, &f))
		return 0;
	for (size_t i = 0; i < f.n; i++) {
		char cur[IF_NAMESIZE];

		if ((name && strncmp(f.info[i].name, name, sizeof(f.info[i].name))) ||
		    if_indextoname(f.keys[i], cur))
			continue;
		link_drop(m, "xdp", f.keys[i]);
		link_drop(m, "tc", f.keys[i]);
		bpf_map_delete_elem(m->ifaces, &f.keys[i]);
		gone++;
	}
	ifaces_free(&f);
	return gone;
}

/* libxdp's dispatcher is known to be unavailable: an interface of ours runs
 * through a link, which only happens after libxdp fell back. */
static bool dispatcher_unavailable(struct epg_maps *m)
{
	struct ifaces f;
	bool yes = false;

	if (ifaces_read(m, &f))
		return false;
	for (size_t i = 0; i < f.n && !yes; i++)
		yes = f.info[i].xdp_method == EPG_XDP_LINK;
	ifaces_free(&f);
	return yes;
}

/* Any XDP program on the interface, in any mode. */
static bool has_xdp_program(uint32_t ifindex)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);

	return !bpf_xdp_query((int)ifindex, 0, &q) &&
	       (q.prog_id || q.drv_prog_id || q.skb_prog_id || q.hw_prog_id);
}

/* An epgate program already attached elsewhere: attach that same program
 * (load once), and take its tc program too. NULL when there is none usable. */
static struct xdp_program *loaded_program(struct epg_maps *m, int *tc_fd)
{
	struct xdp_program *found = NULL;
	struct ifaces f;

	if (ifaces_read(m, &f))
		return NULL;
	for (size_t i = 0; i < f.n && !found; i++) {
		const struct epg_iface_info *info = &f.info[i];
		struct xdp_program *p;

		if (info->xdp_method == EPG_XDP_DISPATCHER || !attached_prog_id(f.keys[i], info))
			continue;
		p = xdp_program__from_id(info->prog_id);
		if (libxdp_get_error(p))
			continue;
		*tc_fd = info->tc_prog_id ? bpf_prog_get_fd_by_id(info->tc_prog_id) : -1;
		if (*tc_fd >= 0)
			found = p;
		else
			xdp_program__close(p);
	}
	ifaces_free(&f);
	return found;
}

/* libxdp runs a dispatcher on the interface. */
static bool is_dispatched(uint32_t ifindex)
{
	struct xdp_multiprog *mp = xdp_multiprog__get_from_ifindex((int)ifindex);
	bool yes = false;

	if (!libxdp_get_error(mp)) {
		yes = !xdp_multiprog__is_legacy(mp);
		xdp_multiprog__close(mp);
	}
	return yes;
}

static int xdp_detach_any(const struct epg_maps *m, struct xdp_program *prog, uint32_t ifindex,
			  enum xdp_attach_mode xmode, uint32_t method)
{
	if (method == EPG_XDP_LINK)
		return link_drop(m, "xdp", ifindex);
	return xdp_program__detach(prog, (int)ifindex, xmode, 0);
}

unsigned int epg_iface_index(const char *ifname, struct epg_error *err)
{
	unsigned int ifindex = if_nametoindex(ifname);

	if (!ifindex)
		set_err(err, -ENODEV, "interface %s does not exist in this network namespace (see ip link)",
			ifname);
	return ifindex;
}

int epg_attach(struct epg_maps *m, const char *ifname, enum epg_attach_mode mode,
	       struct epg_error *err)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = m->pin_dir);
	enum xdp_attach_mode xmode = mode == EPG_MODE_SKB ? XDP_MODE_SKB : XDP_MODE_NATIVE;
	uint32_t ifindex = epg_iface_index(ifname, err);
	struct epgate_bpf *skel = NULL;
	uint32_t xdp_method = EPG_XDP_NETLINK, tc_method = EPG_TC_CLSACT;
	struct xdp_program *prog;
	struct epg_iface_info info;
	int rc = 0, tc_fd = -1, xdp_fd = -1;
	bool busy;

	if (!ifindex)
		return -ENODEV;
	forget_gone(m, NULL);
	if (!bpf_map_lookup_elem(m->ifaces, &ifindex, &info) && attached_prog_id(ifindex, &info))
		return set_err(err, -EEXIST, "%s: epgate is already attached (program %u, %s mode); detach it first to change the mode",
			       ifname, info.prog_id, info.mode == EPG_MODE_SKB ? "skb" : "native");
	libxdp_bpffs(m->pin_dir);

	prog = loaded_program(m, &tc_fd);
	if (!prog) {
		skel = epgate_bpf__open_opts(&opts);
		if (!skel)
			return set_err(err, -errno, "cannot open the embedded BPF object: %s",
				       strerror(errno));
		rc = epg_object_size_counters(skel->obj, m->max_eps, m->max_rule_slots);
		DECLARE_LIBXDP_OPTS(xdp_program_opts, xo, .obj = skel->obj,
				    .prog_name = "epg_xdp");
		prog = rc ? NULL : xdp_program__create(&xo);
		if (!rc)
			rc = (int)libxdp_get_error(prog);
		if (rc) {
			epgate_bpf__destroy(skel);
			return set_err(err, rc, "cannot prepare the XDP program: %s", strerror(-rc));
		}
	}
	/*
	 * libxdp first, for its dispatcher, unless it is known to be missing
	 * here; where libxdp falls back to the single-program netlink attach on
	 * a free interface, a pinned link takes its place (a moment without a
	 * program, before any enforcement started on this interface).
	 */
	busy = has_xdp_program(ifindex);
	if (!busy && dispatcher_unavailable(m)) {
		if (skel) {
			rc = epgate_bpf__load(skel);
			if (rc) {
				set_err(err, rc, "%s: cannot load the datapath: %s (run with -v to see the verifier's messages)",
					ifname, strerror(-rc));
				goto out;
			}
		}
		xdp_fd = skel ? bpf_program__fd(skel->progs.epg_xdp) : xdp_program__fd(prog);
		rc = xdp_link_attach(m, ifindex, xdp_fd, mode);
		if (rc) {
			set_err(err, rc, "%s: cannot attach the XDP program through a bpf_link in %s mode: %s%s",
				ifname, mode == EPG_MODE_SKB ? "skb" : "native", strerror(-rc),
				mode == EPG_MODE_SKB ? "" : " (if the driver lacks native XDP, try --mode skb)");
			goto out;
		}
		xdp_method = EPG_XDP_LINK;
	}
	if (xdp_method != EPG_XDP_LINK) {
		rc = xdp_program__attach(prog, (int)ifindex, xmode, 0);
		if (rc) {
			set_err(err, rc, "%s: cannot load or attach the XDP program in %s mode: %s%s", ifname,
				mode == EPG_MODE_SKB ? "skb" : "native", strerror(-rc),
				rc == -EBUSY || rc == -EEXIST ?
				" (another XDP program holds the interface without libxdp's dispatcher; remove it or attach it through libxdp)" :
				" (run with -v to see the verifier's and libxdp's messages; if the driver lacks native XDP, try --mode skb)");
			goto out;
		}
		xdp_fd = xdp_program__fd(prog);
		xdp_method = is_dispatched(ifindex) ? EPG_XDP_DISPATCHER : EPG_XDP_NETLINK;
		if (xdp_method == EPG_XDP_NETLINK && !busy &&
		    !xdp_program__detach(prog, (int)ifindex, xmode, 0)) {
			rc = xdp_link_attach(m, ifindex, xdp_fd, mode);
			if (!rc)
				xdp_method = EPG_XDP_LINK;
			else if ((rc = xdp_program__attach(prog, (int)ifindex, xmode, 0))) {
				set_err(err, rc, "%s: cannot attach the XDP program again after a failed link attach: %s",
					ifname, strerror(-rc));
				goto out;
			}
		}
	}
	if (skel)
		tc_fd = dup(bpf_program__fd(skel->progs.epg_tc_egress));
	rc = tc_fd < 0 ? -EBADF : tc_attach_any(m, ifindex, tc_fd, &tc_method);
	if (rc) {
		xdp_detach_any(m, prog, ifindex, xmode, xdp_method);
		set_err(err, rc, "%s: cannot attach the tc egress program: %s%s", ifname,
			strerror(-rc), rc == -EEXIST ?
			" (another tc filter holds epgate's handle and priority on egress)" : "");
		goto out;
	}
	rc = record(m, ifindex, ifname, mode, xdp_method, prog_id_of_fd(xdp_fd), tc_method,
		    prog_id_of_fd(tc_fd));
	if (rc) {
		xdp_detach_any(m, prog, ifindex, xmode, xdp_method);
		tc_detach_any(m, ifindex, tc_method);
		set_err(err, rc, "%s: cannot record the attachment in %s/epg_ifaces: %s",
			ifname, m->pin_dir, strerror(-rc));
	}
out:
	if (tc_fd >= 0)
		close(tc_fd);
	xdp_program__close(prog);
	if (skel)
		epgate_bpf__destroy(skel);
	return rc;
}

/* Detach what epg_ifaces records on ifindex (an interface that exists);
 * ifname names it in messages. -ENOENT without a record. */
static int detach_ifindex(struct epg_maps *m, uint32_t ifindex, const char *ifname,
			  struct epg_error *err)
{
	struct epg_iface_info info;
	struct xdp_program *prog;
	int rc = 0;

	if (bpf_map_lookup_elem(m->ifaces, &ifindex, &info))
		return set_err(err, -ENOENT, "%s: epgate is not attached here (epgate status lists where it is)",
			       ifname);
	libxdp_bpffs(m->pin_dir);
	if (info.xdp_method == EPG_XDP_LINK) {
		rc = link_drop(m, "xdp", ifindex);
	} else if (attached_prog_id(ifindex, &info)) {
		prog = xdp_program__from_id(info.prog_id);
		rc = (int)libxdp_get_error(prog);
		if (!rc) {
			rc = xdp_program__detach(prog, (int)ifindex,
						 info.mode == EPG_MODE_SKB ? XDP_MODE_SKB :
						 XDP_MODE_NATIVE, 0);
			xdp_program__close(prog);
		}
	}
	if (rc)
		return set_err(err, rc, "%s: cannot detach program %u: %s", ifname,
			       info.prog_id, strerror(-rc));
	rc = tc_detach_any(m, ifindex, info.tc_method);
	if (rc)
		return set_err(err, rc, "%s: cannot remove the tc egress program: %s", ifname,
			       strerror(-rc));
	/* not attached any more (someone else removed it): forget it all the same */
	bpf_map_delete_elem(m->ifaces, &ifindex);
	return 0;
}

int epg_detach(struct epg_maps *m, const char *ifname, struct epg_error *err)
{
	uint32_t ifindex = if_nametoindex(ifname);
	int rc, forgot;

	/* an interface of that name deleted (perhaps made again): the kernel
	 * detached with it; its links stay pinned, defunct, until removed */
	forgot = forget_gone(m, ifname);
	if (!ifindex) {
		if (forgot)
			return 0;
		return set_err(err, -ENODEV, "interface %s does not exist in this network namespace",
			       ifname);
	}
	rc = detach_ifindex(m, ifindex, ifname, err);
	return rc == -ENOENT && forgot ? 0 : rc;
}

int epg_detach_all(struct epg_maps *m,
		   void (*each)(const char *ifname, int rc, const struct epg_error *err, void *ctx),
		   void *ctx, struct epg_error *err)
{
	struct epg_error one;
	struct ifaces f;
	int rc, first = 0;

	forget_gone(m, NULL); /* deleted interfaces: the kernel detached them */
	if (ifaces_read(m, &f))
		return set_err(err, -EIO, "%s/epg_ifaces: cannot read the attachments", m->pin_dir);
	/* by index, not by the recorded name: an interface renamed since it
	 * was attached is still detached */
	for (size_t i = 0; i < f.n; i++) {
		char cur[IF_NAMESIZE], label[IF_NAMESIZE + 32];

		if (!if_indextoname(f.keys[i], cur))
			continue;
		if (strncmp(cur, f.info[i].name, sizeof(f.info[i].name)))
			snprintf(label, sizeof(label), "%s (attached as %.*s)", cur,
				 (int)sizeof(f.info[i].name), f.info[i].name);
		else
			snprintf(label, sizeof(label), "%s", cur);
		one.msg[0] = '\0';
		rc = detach_ifindex(m, f.keys[i], label, &one);
		if (rc && !first) {
			first = rc;
			*err = one;
		}
		if (each)
			each(label, rc, &one, ctx);
	}
	ifaces_free(&f);
	return first;
}

int epg_replace(struct epg_maps *m, const char *ifname, bool same_too, struct epg_error *err)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = m->pin_dir);
	uint32_t ifindex = if_nametoindex(ifname);
	struct epg_iface_info info;
	struct epgate_bpf *skel;
	int rc, old_fd, xdp_fd, tc_fd;
	__u32 flags;

	if (!ifindex)
		return set_err(err, -ENODEV, "interface %s does not exist in this network namespace",
			       ifname);
	if (bpf_map_lookup_elem(m->ifaces, &ifindex, &info) || !attached_prog_id(ifindex, &info))
		return set_err(err, -ENOENT, "%s: epgate is not attached here; attach it instead",
			       ifname);
	if (info.xdp_method == EPG_XDP_DISPATCHER)
		return set_err(err, -EOPNOTSUPP, "%s: attached through libxdp's dispatcher; detach and attach again to upgrade",
			       ifname);
	skel = epgate_bpf__open_opts(&opts); /* maps: the pinned ones, reused */
	if (!skel)
		return set_err(err, -errno, "cannot open the embedded BPF object: %s", strerror(errno));
	rc = epg_object_size_counters(skel->obj, m->max_eps, m->max_rule_slots);
	if (!rc)
		rc = epgate_bpf__load(skel);
	if (rc) {
		epgate_bpf__destroy(skel);
		return set_err(err, rc, "cannot load this build's programs against %s: %s (run with -v)",
			       m->pin_dir, strerror(-rc));
	}
	xdp_fd = bpf_program__fd(skel->progs.epg_xdp);
	tc_fd = bpf_program__fd(skel->progs.epg_tc_egress);
	old_fd = bpf_prog_get_fd_by_id(info.prog_id);
	if (old_fd < 0) {
		rc = set_err(err, -errno, "%s: program %u: %s", ifname, info.prog_id, strerror(errno));
		goto out;
	}
	/* the same program (same tag) already runs: nothing to replace */
	if (!same_too) {
		struct bpf_prog_info oi = { 0 }, ni = { 0 };
		__u32 ol = sizeof(oi), nl = sizeof(ni);

		if (!bpf_obj_get_info_by_fd(old_fd, &oi, &ol) &&
		    !bpf_obj_get_info_by_fd(xdp_fd, &ni, &nl) &&
		    !memcmp(oi.tag, ni.tag, sizeof(oi.tag))) {
			close(old_fd);
			rc = 1;
			goto out;
		}
	}
	if (info.xdp_method == EPG_XDP_LINK) {
		/* the link's atomic update: fails unless ours is still its program */
		rc = link_replace(m, "xdp", ifindex, xdp_fd, old_fd);
	} else {
		/* netlink's atomic replace: fails if someone else's program is there now */
		LIBBPF_OPTS(bpf_xdp_attach_opts, xo, .old_prog_fd = old_fd);
		flags = XDP_FLAGS_REPLACE |
			(info.mode == EPG_MODE_SKB ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE);
		rc = bpf_xdp_attach((int)ifindex, xdp_fd, flags, &xo);
	}
	close(old_fd);
	if (rc) {
		set_err(err, rc, "%s: cannot replace the XDP program atomically: %s", ifname,
			strerror(-rc));
		goto out;
	}
	/* replaces ours in place: the tcx link's program, or the clsact filter */
	rc = info.tc_method == EPG_TC_TCX ? link_replace(m, "tc", ifindex, tc_fd, -1) :
		tc_attach(ifindex, tc_fd);
	if (rc) {
		/* the new XDP program is the one attached now: recorded as such
		 * (with the old tc program), so that status, detach and another
		 * replace find it */
		int r = record(m, ifindex, ifname, info.mode, info.xdp_method,
			       prog_id_of_fd(xdp_fd), info.tc_method, info.tc_prog_id);

		set_err(err, rc, "%s: the XDP program was replaced, the tc egress program was not: %s%s",
			ifname, strerror(-rc), r ? " (and epg_ifaces could not record the new XDP program)" : "");
		goto out;
	}
	rc = record(m, ifindex, ifname, info.mode, info.xdp_method, prog_id_of_fd(xdp_fd),
		    info.tc_method, prog_id_of_fd(tc_fd));
	if (rc)
		set_err(err, rc, "%s: replaced, but cannot record it in epg_ifaces: %s", ifname,
			strerror(-rc));
out:
	epgate_bpf__destroy(skel); /* the attachments hold the programs */
	return rc;
}
