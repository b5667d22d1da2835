/* SPDX-License-Identifier: MIT */
/*
 * Prometheus metrics: a pure function from a counter snapshot to the text
 * exposition format 0.0.4. No I/O, no BPF calls, so it is unit-tested
 * without root; `epgate serve` reads the snapshot and writes the text.
 *
 * The metric names and labels are a contract (dashboards depend on them):
 *
 *   epgate_endpoint_packets_total  {endpoint_id, service_name, direction, action, reason}
 *   epgate_endpoint_bytes_total    {endpoint_id, service_name, direction, action, reason}
 *   epgate_rule_hits_total         {group_id | network_acl_id, direction, rule}
 *   epgate_conntrack_entries                      gauge
 *   epgate_conntrack_allowance_available          gauge
 *   epgate_conntrack_allowance_exceeded_total     counter
 *   epgate_passthrough_packets_total              counter
 *   epgate_policy_generation                      gauge
 *   epgate_policy_apply_timestamp_seconds         gauge
 *   epgate_policy_apply_errors_total              counter
 *   epgate_attached                {interface, mode, hook}    gauge, 1
 *   epgate_build_info              {version}                  gauge, 1
 *   epgate_flowlog_records_skipped_total          counter
 *
 * Families come in this order, each with # HELP and # TYPE (also when it has
 * no samples). Endpoint series are emitted for every direction and reason,
 * zeros included, so rate() works from the first scrape. Endpoints sort by
 * endpoint_id, rules by their
 * label set, interfaces by name; slots that would give the same series are
 * summed into one.
 */
#ifndef EPGATE_METRICS_H
#define EPGATE_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include "epgate.h"

struct epg_metrics_input {
	const struct epg_snapshot *snap;
	uint64_t ct_entries;      /* flows in the table now */
	uint64_t ct_max;          /* EPG_CT_MAX */
	uint64_t apply_errors;    /* failed applies since the daemon started */
	uint64_t flowlog_skipped; /* flow records lost (SKIPDATA) */
	uint64_t flowlog_write_errors; /* flow-log intervals whose records could not be written */
	const char *version;      /* EPG_VERSION */
};

/* Renders the Prometheus text exposition format 0.0.4 into a malloc'd,
 * NUL-terminated buffer (*out, *len). Returns 0 or -ENOMEM. */
int epg_metrics_render(const struct epg_metrics_input *in, char **out, size_t *len);

#endif
