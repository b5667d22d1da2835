/* SPDX-License-Identifier: MIT */
/*
 * VPC Flow Logs records from the flow table: pure functions (no I/O, no BPF)
 * so they are unit-tested without root. The daemon reads epg_ct and drains
 * epg_rej every interval and hands both here.
 *
 * Default format (version 2, space-separated, this order):
 *   version account-id interface-id srcaddr dstaddr srcport dstport protocol
 *   packets bytes start end action log-status
 * A field that does not apply is "-". One record per flow and direction per
 * interval (the two directions of a connection are two records).
 */
#ifndef EPGATE_FLOWLOG_H
#define EPGATE_FLOWLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "epgate.h"

enum epg_fl_field {
	EPG_FL_VERSION,        /* v2 */
	EPG_FL_ACCOUNT_ID,
	EPG_FL_INTERFACE_ID,
	EPG_FL_SRCADDR,
	EPG_FL_DSTADDR,
	EPG_FL_SRCPORT,
	EPG_FL_DSTPORT,
	EPG_FL_PROTOCOL,
	EPG_FL_PACKETS,
	EPG_FL_BYTES,
	EPG_FL_START,
	EPG_FL_END,
	EPG_FL_ACTION,
	EPG_FL_LOG_STATUS,
	EPG_FL_VPC_ID,         /* v3 */
	EPG_FL_SUBNET_ID,      /* v3 */
	EPG_FL_TCP_FLAGS,      /* v3 */
	EPG_FL_TYPE,           /* v3: IPv4 | IPv6 */
	EPG_FL_PKT_SRCADDR,    /* v3 */
	EPG_FL_PKT_DSTADDR,    /* v3 */
	EPG_FL_AZ_ID,          /* v4 */
	EPG_FL_FLOW_DIRECTION, /* v5: ingress | egress */
	EPG_FL_FIELD_COUNT
};

#define EPG_FL_MAX_FIELDS 64

struct epg_fl_format {
	enum epg_fl_field f[EPG_FL_MAX_FIELDS];
	size_t n;
	int version; /* the highest version among its fields, 2 at least */
};

/* "${version} ${srcaddr} ..." (NULL or "" = the default format). Returns 0
 * or -EINVAL with err naming the unknown field or the bad syntax. */
int epg_fl_format_parse(const char *s, struct epg_fl_format *out, struct epg_error *err);

/* The interface an endpoint address belongs to (from the applied config).
 * One entry per address: entries with the same interface_id are one
 * interface (one NODATA or SKIPDATA record for all its addresses). */
struct epg_fl_eni {
	int family;
	uint8_t addr[16];
	const char *interface_id;
	const char *account_id; /* OwnerId; NULL = "-" */
	const char *vpc_id;
	const char *subnet_id;
	const char *az_id;
};

enum epg_fl_action { EPG_FL_NO_ACTION = 0, EPG_FL_ACCEPT, EPG_FL_REJECT };
enum epg_fl_status { EPG_FL_OK = 0, EPG_FL_NODATA, EPG_FL_SKIPDATA };

struct epg_fl_record {
	const struct epg_fl_eni *eni;
	int family;                /* 0 for NODATA / SKIPDATA */
	uint8_t src[16], dst[16];
	bool has_ports;
	uint16_t sport, dport;     /* host order */
	int proto;
	uint64_t packets, bytes;
	uint64_t start, end;       /* Unix seconds */
	enum epg_fl_action action;
	enum epg_fl_status status;
	uint8_t tcp_flags;
	uint32_t direction;        /* enum epg_dir */
};

/* One line, without the newline. Returns its length, or -ENOSPC. */
int epg_fl_format_record(const struct epg_fl_format *f, const struct epg_fl_record *r,
			 char *buf, size_t len);

/* Aggregation state across intervals: the counters of every flow as last
 * reported, so each interval reports only what happened in it. */
struct epg_fl_state;
struct epg_fl_state *epg_fl_state_new(void);
void epg_fl_state_free(struct epg_fl_state *st);

struct epg_fl_rejected {
	struct epg_rej_key key;
	struct epg_rej_val val;
};

struct epg_fl_interval {
	uint64_t start, end;        /* Unix seconds of the interval */
	int64_t mono_to_unix_ns;    /* add to CLOCK_MONOTONIC ns to get Unix ns */
	const struct epg_flow *flows;   /* the flow table now, and the flows removed
	                                 * since the last interval as they last stood */
	size_t n_flows;
	const struct epg_fl_rejected *rejected; /* drained this interval */
	size_t n_rejected;
	uint64_t lost;              /* rejected packets not recorded (table full) */
	const struct epg_fl_eni *enis;  /* every endpoint interface */
	size_t n_enis;
};

/*
 * Emit the records of one interval: ACCEPT per tracked flow and direction
 * whose counters grew since the last call (a flow is remembered one interval
 * after it was last seen, so its final counts may come one interval late); REJECT per rejected entry;
 * SKIPDATA for each interface when lost > 0; NODATA for each interface that
 * had no record. Flows that no longer exist are forgotten. Returns the
 * number of records emitted, or -ENOMEM.
 */
int epg_fl_collect(struct epg_fl_state *st, const struct epg_fl_interval *iv,
		   void (*emit)(const struct epg_fl_record *r, void *ctx), void *ctx);

#endif
