/* SPDX-License-Identifier: MIT */
/* Every map of the datapath, BTF-defined, pinned by name under the pin
 * directory. Endpoint addresses and timeout sets carry the generation (see
 * abi.h); rule sets, counters and names do not. */
#ifndef EPGATE_BPF_MAPS_H
#define EPGATE_BPF_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "epgate/abi.h"

/* The datapath's clock: CLOCK_MONOTONIC at tick resolution. The precise
 * clock reads the TSC, which on a virtual machine costs about as much as the
 * rest of a tracked packet's work; timeouts are whole seconds and flow-log
 * stamps need no better than a tick. */
static __always_inline __u64 epg_now(void)
{
	return bpf_ktime_get_coarse_ns();
}

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct epg_meta);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} epg_meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EPG_MAX_ADDRS);
	__type(key, struct epg_addr_key);
	__type(value, struct epg_addr_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} epg_addr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct epg_filter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} epg_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, EPG_MAX_PEER_PFX);
	__type(key, struct epg_peer4_key);
	__type(value, struct epg_bitmap);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} epg_peer4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, EPG_MAX_PEER_PFX);
	__type(key, struct epg_peer6_key);
	__type(value, struct epg_bitmap);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} epg_peer6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, EPG_MAX_SVC_PFX);
	__type(key, struct epg_svc_key);
	__type(value, struct epg_bitmap);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} epg_svc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EPG_MAX_RULE_BITS);
	__type(key, struct epg_rule_bit_key);
	__type(value, struct epg_rule_ref);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} epg_rule_bits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EPG_MAX_ENDPOINTS);
	__type(key, __u32);
	__type(value, struct epg_ep_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} epg_ep_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EPG_MAX_RULE_SLOTS);
	__type(key, __u32);
	__type(value, struct epg_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} epg_rule_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EPG_G_MAX);
	__type(key, __u32);
	__type(value, struct epg_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} epg_global SEC(".maps");

/* Tracked flows. A plain hash, not LRU: when full, new flows are refused
 * (conntrack_allowance_exceeded) and established ones are never evicted.
 * Preallocated (about 45 MiB) so a new flow costs no allocation. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EPG_CT_MAX);
	__type(key, struct epg_ct_key);
	__type(value, struct epg_ct_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} epg_ct SEC(".maps");

/* Fragmented datagrams: a plain hash, like the flow table; idle entries are
 * removed when met and by the sweeper. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EPG_FRAG_MAX);
	__type(key, struct epg_frag_key);
	__type(value, struct epg_frag_val);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} epg_frag SEC(".maps");

/* Rejected flows for flow logs, drained by userspace. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EPG_REJ_MAX);
	__type(key, struct epg_rej_key);
	__type(value, struct epg_rej_val);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} epg_rej SEC(".maps");

/* Flows the datapath removed, as they last stood (struct epg_flow), while
 * flow logs are on: drained by the flow-log writer every interval. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, EPG_ENDED_RING);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} epg_ct_ended SEC(".maps");

/* Scratch space for building a new flow's value: the 512-byte BPF stack is
 * shared by the entry point and its global functions. Not pinned. */
struct epg_scratch {
	__u32 deny_misses; /* deny cache lookups in a row that found nothing */
	__u32 pad;
	struct epg_ct_val ct;
	struct epg_flow ended;
	struct epg_rej_key rej_key;
	struct epg_rej_val rej_val;
	struct epg_frag_key frag_key;
	struct epg_frag_val frag_val;
	struct bpf_fib_lookup fib; /* epg_source_ok's route lookup */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct epg_scratch);
} epg_scratch SEC(".maps");

static __always_inline struct epg_scratch *epg_scratch_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&epg_scratch, &zero);
}

/* Recently denied packets' verdicts (see abi.h and deny.h): per CPU, so a
 * flood of one denied flow writes nothing shared. Not pinned. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EPG_DENY_SLOTS);
	__type(key, __u32);
	__type(value, struct epg_deny_entry);
} epg_deny_cache SEC(".maps");

/* Timeout sets, [gen * EPG_CT_PROFILES + profile]. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EPG_GENERATIONS * EPG_CT_PROFILES);
	__type(key, __u32);
	__type(value, struct epg_ct_timeouts);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} epg_ct_prof SEC(".maps");

/* Exempt peers, per generation (see abi.h). Read only on the way to a
 * drop, and only when the generation has any. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, EPG_GENERATIONS * EPG_MAX_EXEMPT);
	__type(key, struct epg_exempt_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} epg_exempt SEC(".maps");

/* Rule slot -> identity of its rule (see abi.h): userspace bookkeeping. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EPG_MAX_RULE_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} epg_rule_keys SEC(".maps");

/* What each stored policy set is: userspace bookkeeping, never read per
 * packet (see struct epg_set_info). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EPG_MAX_SETS);
	__type(key, __u32);
	__type(value, struct epg_set_info);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} epg_sets SEC(".maps");

/* Names for the counters: written by userspace, never read per packet. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EPG_MAX_ENDPOINTS);
	__type(key, __u32);
	__type(value, struct epg_ep_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} epg_ep_info SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EPG_MAX_RULE_SLOTS);
	__type(key, __u32);
	__type(value, struct epg_rule_info);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} epg_rule_info SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EPG_MAX_IFACES);
	__type(key, __u32);
	__type(value, struct epg_iface_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} epg_ifaces SEC(".maps");

/* Packets dropped because their source, an endpoint address, cannot be
 * where they came from (epg_source_ok): not the endpoint's traffic, so
 * counted here rather than under it. A map of its own: epg_global's size is
 * fixed in pins made before it. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct epg_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} epg_spoofed SEC(".maps");

#endif
