/* SPDX-License-Identifier: MIT */
/*
 * The epgate library: pinned maps, policy install, attach, counters.
 * Functions return 0 or -errno and fill struct epg_error with a message
 * that says what is wrong, where, and what to do; they never print or exit.
 */
#ifndef EPGATE_LIB_H
#define EPGATE_LIB_H

#include <stdbool.h>
#include <stdint.h>
#include "epgate/abi.h"
#include "compile.h"
#include "model.h"

#define EPG_DEFAULT_PIN_DIR "/sys/fs/bpf/epgate"

/* File descriptors of the pinned maps. */
struct epg_maps {
	int meta, addr, peer4, peer6, svc, rule_bits;
	int ep_stats, rule_stats, global, ep_info, rule_info, ifaces;
	int ct, ct_prof, rej, frag, filter, sets, rule_keys;
	int ct_ended; /* -1 in pins made before it existed, until a command that creates pins */
	int exempt;   /* likewise */
	int spoofed;  /* likewise */
	uint32_t max_eps;        /* endpoint counter slots the pins hold */
	uint32_t max_rule_slots; /* rule counter slots the pins hold */
	int lock_fd; /* the pin directory, flock()ed while held */
	char pin_dir[256];
};

enum epg_open_flags {
	EPG_OPEN_CREATE = 1, /* create and pin the maps when absent */
	EPG_OPEN_LOCK   = 2, /* hold an exclusive lock on the pin directory */
};

/* Pin directory: the argument, else $EPGATE_PIN_DIR, else the default. */
const char *epg_pin_dir(const char *arg);

/* The per-CPU counters' sizes, fixed when the pins are created: endpoint
 * counter slots (512 bytes per CPU each) and rule counter slots (16 bytes
 * per CPU each). By default the largest power of two, up to this build's
 * limits (EPG_MAX_ENDPOINTS, EPG_MAX_RULE_SLOTS), that keeps each within
 * EPG_COUNTER_BUDGET bytes over every possible CPU. */
#define EPG_COUNTER_BUDGET (64u << 20)
#define EPG_MIN_ENDPOINT_SLOTS 256u
#define EPG_MIN_RULE_SLOTS 4096u
struct epg_sizes {
	uint32_t eps, rule_slots;
	bool eps_given, rule_slots_given; /* asked for: existing pins must match */
};
void epg_default_sizes(struct epg_sizes *sz, int ncpu);
/* The sizes epg_maps_open(EPG_OPEN_CREATE) creates pins with (and checks
 * existing pins against, where given): the process's setting. */
void epg_set_sizes(const struct epg_sizes *sz);

/* Size an object's counter maps before it is loaded against pins of these
 * sizes (libbpf reuses a pinned map only when its definition matches). */
struct bpf_object;
int epg_object_size_counters(struct bpf_object *obj, uint32_t eps, uint32_t rule_slots);

/* Opens (or creates) the pinned maps. -ENOENT when absent and not creating;
 * -EPROTO when the pins are of another ABI version. */
int epg_maps_open(struct epg_maps *m, const char *pin_dir, int flags,
		  struct epg_error *err);
void epg_maps_close(struct epg_maps *m);

/* The maps of an object this process loaded itself (tests, benchmarks): the
 * fds stay the object's, do not epg_maps_close() them. */
struct bpf_object;
int epg_maps_from_object(struct epg_maps *m, struct bpf_object *obj);

/* Sum a per-CPU map's value (u64 fields) over every possible CPU. */
int epg_percpu_sum(int fd, uint32_t key, void *out, size_t value_size);

/* Installs plan as the next generation and makes it active atomically. */
int epg_policy_apply(struct epg_maps *m, const struct epg_plan *plan,
		     struct epg_error *err);

/* Attach / detach the XDP program. */
/* The index of interface ifname, or 0 with err set (-ENODEV) when this
 * network namespace has none of that name. */
unsigned int epg_iface_index(const char *ifname, struct epg_error *err);
/* An epg_ifaces record still in force: the XDP and tc egress programs
 * recorded are attached to the interface of that index (whatever it is
 * called now). A record outlives an interface deleted (or made again)
 * meanwhile, or a program removed behind epgate's back. */
bool epg_iface_live(uint32_t ifindex, const struct epg_iface_info *info);
/* epgate's XDP program is attached to the interface of that name now. */
bool epg_iface_enforcing(struct epg_maps *m, const char *ifname);
int epg_attach(struct epg_maps *m, const char *ifname, enum epg_attach_mode mode,
	       struct epg_error *err);
int epg_detach(struct epg_maps *m, const char *ifname, struct epg_error *err);
/* Detach from every interface recorded, by index (a renamed interface
 * included), forgetting deleted ones; each (may be NULL) is told every
 * interface's name and result. Returns 0 or the first error (err set): the
 * others are still tried. */
int epg_detach_all(struct epg_maps *m,
		   void (*each)(const char *ifname, int rc, const struct epg_error *err, void *ctx),
		   void *ctx, struct epg_error *err);
/* Replace the programs attached on ifname by this build's, atomically (the
 * interface is never without one), keeping every pinned map: policy,
 * counters and the flow table. Unless same_too, returns 1 (nothing done)
 * when the running XDP program is already this build's. */
int epg_replace(struct epg_maps *m, const char *ifname, bool same_too, struct epg_error *err);
/* Attached programs (XDP or tc, recorded in epg_ifaces) that do not use
 * epg_exempt: built before exempt peers, they ignore them. Returns how many;
 * names gets "IFACE (XDP program ID), ..." (truncated to size). */
int epg_exempt_unsupported(struct epg_maps *m, char *names, size_t size);
/* The same as a warning to show (msg), with what to do, when the active
 * policy has exempt peers; returns how many (0: nothing to say). */
int epg_exempt_warning(struct epg_maps *m, char *msg, size_t size);

/* Counter snapshots, summed over CPUs. */
struct epg_ep_snapshot {
	uint32_t slot;
	struct epg_ep_info info;
	struct epg_counter c[EPG_DIR_MAX][EPG_REASON_SLOTS];
	char **addrs; /* text */
	size_t n_addrs;
};

struct epg_rule_snapshot {
	uint32_t slot;
	struct epg_rule_info info;
	struct epg_counter c;
};

struct epg_iface_snapshot {
	uint32_t ifindex;
	struct epg_iface_info info;
};

struct epg_snapshot {
	struct epg_meta meta;
	struct epg_counter global[EPG_G_MAX];
	struct epg_counter spoofed; /* epg_spoofed: from an endpoint address, where it cannot come from */
	struct epg_ep_snapshot *eps;
	size_t n_eps;
	struct epg_rule_snapshot *rules;
	size_t n_rules;
	struct epg_iface_snapshot *ifaces;
	size_t n_ifaces;
	size_t n_sets;      /* rule sets stored (epg_sets) */
	size_t n_sets_used; /* of those, the ones the active generation points at */
	size_t n_exempt;    /* exempt peers of the active generation */
};

int epg_snapshot_read(struct epg_maps *m, struct epg_snapshot *s, struct epg_error *err);
void epg_snapshot_free(struct epg_snapshot *s);

/* Tracked flows. */
/* Calls fn for every flow (stops when fn returns non-zero). */
int epg_ct_foreach(struct epg_maps *m, int (*fn)(const struct epg_flow *f, void *ctx),
		   void *ctx);
/* A growing array of flows. */
struct epg_flow_vec {
	struct epg_flow *v;
	size_t n, cap;
};
int epg_flow_vec_push(struct epg_flow_vec *fv, const struct epg_flow *f);
/* Removes flows idle longer than their timeout (now: CLOCK_MONOTONIC ns),
 * or all of them with all = true. Returns how many were removed, or -errno.
 * ended (may be NULL) receives each removed flow as it last stood; without
 * it, while serve writes flow logs, the removed flows are counted as lost
 * to them (EPG_G_ENDED_LOST: SKIPDATA). */
int epg_ct_expire(struct epg_maps *m, uint64_t now_ns, bool all, struct epg_flow_vec *ended);
/* Appends to ended the flows the datapath removed since the last call (the
 * epg_ct_ended ring, written while flow logs are on). Returns how many, or
 * -errno. */
int epg_ct_drain_ended(struct epg_maps *m, struct epg_flow_vec *ended);
int epg_ct_count(struct epg_maps *m);
/* The same for the fragment table (entries older than EPG_FRAG_TIMEOUT_S). */
int epg_frag_expire(struct epg_maps *m, uint64_t now_ns, bool all);
const char *epg_ct_state_name(uint8_t state);

/* Reason labels and verdicts, from reasons.def. */
const char *epg_reason_label(uint32_t reason);
bool epg_reason_is_drop(uint32_t reason);

#endif
