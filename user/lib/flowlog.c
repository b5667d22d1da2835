// SPDX-License-Identifier: MIT
/*
 * VPC Flow Logs records (see flowlog.h): the format parser, the one-line
 * renderer, and the per-interval aggregation of the flow table.
 *
 * Aggregation state: an open-addressing hash table (linear probing,
 * backward-shift deletion) keyed by (ct key, created_ns) that holds each
 * flow's cumulative counters as last reported. created_ns is part of the key
 * so that a new flow reusing a 5-tuple starts from zero. One collect runs in
 * three passes, so that every allocation happens before the first record is
 * emitted (an -ENOMEM never leaves half an interval reported):
 *   1. mark:   stamp the entry of every current flow with this epoch;
 *   2. sweep:  remove the entries stamped neither now nor one interval
 *              before (flows gone, keys reused), size the table for the
 *              current flows, index the interfaces;
 *   3. report: per flow, in the caller's order, delta = now - last reported.
 * Every pass is linear in the number of flows (plus a sort of the interfaces).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "flowlog.h"

/* ---- tcp-flags -------------------------------------------------------- */

/* The flags VPC Flow Logs report, from the flags a direction's packets
 * carried (the datapath ORs every flag in): FIN 1, SYN 2, RST 4, and SYN-ACK
 * 18 for a SYN that answered one (the responder's). Other flags (ACK alone,
 * PSH, URG) are not reported. */
static uint8_t aws_tcp_flags(uint8_t seen, bool syn_ack)
{
	uint8_t f = seen & (EPG_TCP_FIN | EPG_TCP_SYN | EPG_TCP_RST);

	if ((seen & EPG_TCP_SYN) && syn_ack)
		f |= EPG_TCP_ACK;
	return f;
}

/* ---- formats ---------------------------------------------------------- */

static const struct {
	const char *name;
	int version; /* the flow-log version that introduced it */
} fl_fields[EPG_FL_FIELD_COUNT] = {
	[EPG_FL_VERSION]        = { "version", 2 },
	[EPG_FL_ACCOUNT_ID]     = { "account-id", 2 },
	[EPG_FL_INTERFACE_ID]   = { "interface-id", 2 },
	[EPG_FL_SRCADDR]        = { "srcaddr", 2 },
	[EPG_FL_DSTADDR]        = { "dstaddr", 2 },
	[EPG_FL_SRCPORT]        = { "srcport", 2 },
	[EPG_FL_DSTPORT]        = { "dstport", 2 },
	[EPG_FL_PROTOCOL]       = { "protocol", 2 },
	[EPG_FL_PACKETS]        = { "packets", 2 },
	[EPG_FL_BYTES]          = { "bytes", 2 },
	[EPG_FL_START]          = { "start", 2 },
	[EPG_FL_END]            = { "end", 2 },
	[EPG_FL_ACTION]         = { "action", 2 },
	[EPG_FL_LOG_STATUS]     = { "log-status", 2 },
	[EPG_FL_VPC_ID]         = { "vpc-id", 3 },
	[EPG_FL_SUBNET_ID]      = { "subnet-id", 3 },
	[EPG_FL_TCP_FLAGS]      = { "tcp-flags", 3 },
	[EPG_FL_TYPE]           = { "type", 3 },
	[EPG_FL_PKT_SRCADDR]    = { "pkt-srcaddr", 3 },
	[EPG_FL_PKT_DSTADDR]    = { "pkt-dstaddr", 3 },
	[EPG_FL_AZ_ID]          = { "az-id", 4 },
	[EPG_FL_FLOW_DIRECTION] = { "flow-direction", 5 },
};

#define EPG_FL_DEFAULT_FIELDS 14 /* version .. log-status, in enum order */

static int format_err(struct epg_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int format_err(struct epg_error *err, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static void known_fields(char *buf, size_t len)
{
	size_t pos = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; i < EPG_FL_FIELD_COUNT && pos < len; i++)
		pos += snprintf(buf + pos, len - pos, "%s%s", i ? " " : "", fl_fields[i].name);
}

int epg_fl_format_parse(const char *s, struct epg_fl_format *out, struct epg_error *err)
{
	struct epg_fl_format f = { .n = 0, .version = 2 };
	const char *p = s;
	char known[512];

	if (!s || !*s) {
		for (f.n = 0; f.n < EPG_FL_DEFAULT_FIELDS; f.n++)
			f.f[f.n] = (enum epg_fl_field)f.n;
		*out = f;
		return 0;
	}
	for (;;) {
		size_t col = (size_t)(p - s) + 1, len;
		const char *name, *end;
		int id;

		if (strncmp(p, "${", 2))
			return format_err(err, "flow-log format \"%s\": expected \"${field}\" at column %zu, found \"%.24s\"",
					  s, col, p);
		name = p + 2;
		end = strchr(name, '}');
		if (!end)
			return format_err(err, "flow-log format \"%s\": \"${\" at column %zu is not closed by \"}\"",
					  s, col);
		len = (size_t)(end - name);
		for (id = 0; id < EPG_FL_FIELD_COUNT; id++)
			if (strlen(fl_fields[id].name) == len && !memcmp(fl_fields[id].name, name, len))
				break;
		if (id == EPG_FL_FIELD_COUNT) {
			known_fields(known, sizeof(known));
			return format_err(err, "flow-log format: unknown field \"${%.*s}\" at column %zu; the fields known are: %s",
					  (int)(len > 64 ? 64 : len), name, col, known);
		}
		if (f.n == EPG_FL_MAX_FIELDS)
			return format_err(err, "flow-log format: more than %d fields", EPG_FL_MAX_FIELDS);
		f.f[f.n++] = (enum epg_fl_field)id;
		if (fl_fields[id].version > f.version)
			f.version = fl_fields[id].version;
		p = end + 1;
		if (!*p)
			break;
		if (*p != ' ' || p[1] == ' ' || !p[1])
			return format_err(err, "flow-log format \"%s\": expected one space and the next \"${field}\" at column %zu",
					  s, (size_t)(p - s) + 1);
		p++;
	}
	*out = f;
	return 0;
}

/* ---- records ---------------------------------------------------------- */

/* A bounded writer: counts what does not fit, so the caller learns -ENOSPC. */
struct line {
	char *buf;
	size_t len, pos;
};

static void put(struct line *l, const char *s)
{
	size_t n = strlen(s);

	if (l->pos + n < l->len)
		memcpy(l->buf + l->pos, s, n);
	l->pos += n;
}

/* NULL and "" both print "-": an empty field would shift every later one. */
static void put_str(struct line *l, const char *s)
{
	put(l, s && *s ? s : "-");
}

static void put_u64(struct line *l, uint64_t v)
{
	char tmp[24];

	snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
	put(l, tmp);
}

static void put_addr(struct line *l, int family, const uint8_t *addr)
{
	char tmp[INET6_ADDRSTRLEN];

	if ((family != AF_INET && family != AF_INET6) ||
	    !inet_ntop(family, addr, tmp, sizeof(tmp)))
		put(l, "-");
	else
		put(l, tmp);
}

static void put_field(struct line *l, const struct epg_fl_format *f,
		      const struct epg_fl_record *r, enum epg_fl_field field)
{
	const struct epg_fl_eni *e = r->eni;
	bool traffic = r->status == EPG_FL_OK; /* NODATA, SKIPDATA: no traffic fields */

	switch (field) {
	case EPG_FL_VERSION:
		put_u64(l, (uint64_t)f->version);
		return;
	case EPG_FL_ACCOUNT_ID:
		put_str(l, e ? e->account_id : NULL);
		return;
	case EPG_FL_INTERFACE_ID:
		put_str(l, e ? e->interface_id : NULL);
		return;
	case EPG_FL_VPC_ID:
		put_str(l, e ? e->vpc_id : NULL);
		return;
	case EPG_FL_SUBNET_ID:
		put_str(l, e ? e->subnet_id : NULL);
		return;
	case EPG_FL_AZ_ID:
		put_str(l, e ? e->az_id : NULL);
		return;
	case EPG_FL_START:
		put_u64(l, r->start);
		return;
	case EPG_FL_END:
		put_u64(l, r->end);
		return;
	case EPG_FL_LOG_STATUS:
		put(l, r->status == EPG_FL_OK ? "OK" : r->status == EPG_FL_NODATA ? "NODATA" :
		       r->status == EPG_FL_SKIPDATA ? "SKIPDATA" : "-");
		return;
	default:
		break;
	}
	if (!traffic) {
		put(l, "-");
		return;
	}
	switch (field) {
	case EPG_FL_SRCADDR:
	case EPG_FL_PKT_SRCADDR:
		put_addr(l, r->family, r->src);
		break;
	case EPG_FL_DSTADDR:
	case EPG_FL_PKT_DSTADDR:
		put_addr(l, r->family, r->dst);
		break;
	case EPG_FL_SRCPORT:
		if (r->has_ports)
			put_u64(l, r->sport);
		else
			put(l, "-");
		break;
	case EPG_FL_DSTPORT:
		if (r->has_ports)
			put_u64(l, r->dport);
		else
			put(l, "-");
		break;
	case EPG_FL_PROTOCOL:
		if (r->proto >= 0)
			put_u64(l, (uint64_t)r->proto);
		else
			put(l, "-");
		break;
	case EPG_FL_PACKETS:
		put_u64(l, r->packets);
		break;
	case EPG_FL_BYTES:
		put_u64(l, r->bytes);
		break;
	case EPG_FL_ACTION:
		put(l, r->action == EPG_FL_ACCEPT ? "ACCEPT" :
		       r->action == EPG_FL_REJECT ? "REJECT" : "-");
		break;
	case EPG_FL_TCP_FLAGS:
		put_u64(l, r->tcp_flags);
		break;
	case EPG_FL_TYPE:
		put(l, r->family == AF_INET ? "IPv4" : r->family == AF_INET6 ? "IPv6" : "-");
		break;
	case EPG_FL_FLOW_DIRECTION:
		put(l, r->direction == EPG_DIR_INGRESS ? "ingress" :
		       r->direction == EPG_DIR_EGRESS ? "egress" : "-");
		break;
	default:
		put(l, "-");
		break;
	}
}

int epg_fl_format_record(const struct epg_fl_format *f, const struct epg_fl_record *r,
			 char *buf, size_t len)
{
	struct line l = { .buf = buf, .len = len, .pos = 0 };
	size_t i;

	for (i = 0; i < f->n; i++) {
		if (i)
			put(&l, " ");
		put_field(&l, f, r, f->f[i]);
	}
	if (l.pos >= len || l.pos > (size_t)INT32_MAX)
		return -ENOSPC;
	buf[l.pos] = '\0';
	return (int)l.pos;
}

/* ---- aggregation state ------------------------------------------------ */

#define EPG_FL_MIN_CAP 1024

struct fl_entry {
	struct epg_ct_key key;
	uint64_t created_ns;
	uint64_t packets[EPG_DIR_MAX]; /* as last reported */
	uint64_t bytes[EPG_DIR_MAX];
	uint8_t flags[EPG_DIR_MAX];    /* tcp-flags reported so far */
	uint32_t hash;
	uint32_t epoch; /* the last collect that saw the flow; 0 = empty slot */
};

struct epg_fl_state {
	struct fl_entry *t;
	size_t cap; /* a power of two, or 0 */
	size_t count;
	uint32_t epoch;
};

struct epg_fl_state *epg_fl_state_new(void)
{
	return calloc(1, sizeof(struct epg_fl_state));
}

void epg_fl_state_free(struct epg_fl_state *st)
{
	if (!st)
		return;
	free(st->t);
	free(st);
}

static uint64_t mix64(uint64_t h)
{
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	h ^= h >> 31;
	return h;
}

static uint32_t flow_hash(const struct epg_ct_key *k, uint64_t created_ns)
{
	uint64_t w[sizeof(*k) / 8], h = mix64(created_ns);
	size_t i;

	memcpy(w, k, sizeof(w));
	for (i = 0; i < sizeof(w) / sizeof(w[0]); i++)
		h = mix64(h ^ w[i]);
	return (uint32_t)(h ^ (h >> 32));
}

static bool entry_is(const struct fl_entry *e, uint32_t hash, const struct epg_ct_key *k,
		     uint64_t created_ns)
{
	return e->hash == hash && e->created_ns == created_ns && !memcmp(&e->key, k, sizeof(*k));
}

/* The slot holding the flow, or the empty slot where it belongs. The table
 * is never full (load <= 1/2). */
static size_t slot_of(const struct epg_fl_state *st, uint32_t hash, const struct epg_ct_key *k,
		      uint64_t created_ns)
{
	size_t mask = st->cap - 1, i = hash & mask;

	while (st->t[i].epoch && !entry_is(&st->t[i], hash, k, created_ns))
		i = (i + 1) & mask;
	return i;
}

/* Backward-shift deletion: later entries of the cluster that may live in
 * the hole move into it, so lookups never need tombstones. Entries only ever
 * move into the hole at i or past it, which lets the sweep re-examine i. */
static void remove_at(struct epg_fl_state *st, size_t i)
{
	size_t mask = st->cap - 1, j = i, h;

	for (;;) {
		j = (j + 1) & mask;
		if (!st->t[j].epoch)
			break;
		h = st->t[j].hash & mask;
		/* j may fill the hole unless its home lies cyclically in (i, j] */
		if (i < j ? (h <= i || h > j) : (h <= i && h > j)) {
			st->t[i] = st->t[j];
			i = j;
		}
	}
	st->t[i].epoch = 0;
	st->count--;
}

static int resize(struct epg_fl_state *st, size_t cap)
{
	struct fl_entry *t = calloc(cap, sizeof(*t));
	size_t i, j, mask = cap - 1;

	if (!t)
		return -ENOMEM;
	for (i = 0; i < st->cap; i++) {
		if (!st->t[i].epoch)
			continue;
		for (j = st->t[i].hash & mask; t[j].epoch; j = (j + 1) & mask)
			;
		t[j] = st->t[i];
	}
	free(st->t);
	st->t = t;
	st->cap = cap;
	return 0;
}

/* ---- interfaces ------------------------------------------------------ */

/*
 * iv->enis has one entry per endpoint address, so an interface with several
 * addresses (IPv4 and IPv6, secondary addresses) is listed several times
 * under one interface_id. Records are found by address (sorted, binary
 * search); NODATA and SKIPDATA are per interface: its first entry stands for
 * it, and a record on any of its addresses counts for all of them.
 */
struct eni_ref {
	uint8_t family;
	uint8_t addr[16]; /* IPv4 in [0..3], the rest zero */
	size_t idx;       /* into iv->enis */
};

struct id_ref {
	const char *id;
	size_t idx;
};

struct eni_index {
	struct eni_ref *by_addr; /* sorted by (family, address, idx) */
	size_t *iface;           /* entry -> the first entry of its interface */
	bool *had;               /* by first entry: the interface has a record */
	size_t n;
};

static void norm_addr(uint8_t dst[16], int family, const uint8_t *src)
{
	memset(dst, 0, 16);
	memcpy(dst, src, family == AF_INET ? 4 : 16);
}

static int eni_ref_cmp(const void *a, const void *b)
{
	const struct eni_ref *x = a, *y = b;
	int c;

	if (x->family != y->family)
		return x->family < y->family ? -1 : 1;
	c = memcmp(x->addr, y->addr, 16);
	if (c)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx; /* the first listed wins */
}

static int id_ref_cmp(const void *a, const void *b)
{
	const struct id_ref *x = a, *y = b;
	int c = strcmp(x->id, y->id);

	if (c)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void eni_index_free(struct eni_index *ix)
{
	free(ix->by_addr);
	free(ix->iface);
	free(ix->had);
}

static int eni_index_build(struct eni_index *ix, const struct epg_fl_eni *enis, size_t n)
{
	struct id_ref *ids;
	size_t i, k, n_ids = 0;

	memset(ix, 0, sizeof(*ix));
	if (!n)
		return 0;
	ix->n = n;
	ix->by_addr = calloc(n, sizeof(*ix->by_addr));
	ix->iface = calloc(n, sizeof(*ix->iface));
	ix->had = calloc(n, sizeof(*ix->had));
	ids = calloc(n, sizeof(*ids));
	if (!ix->by_addr || !ix->iface || !ix->had || !ids) {
		free(ids);
		eni_index_free(ix);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		ix->by_addr[i].family = (uint8_t)enis[i].family;
		ix->by_addr[i].idx = i;
		norm_addr(ix->by_addr[i].addr, enis[i].family, enis[i].addr);
		ix->iface[i] = i; /* an entry without an id is an interface of its own */
		if (enis[i].interface_id && *enis[i].interface_id)
			ids[n_ids++] = (struct id_ref){ enis[i].interface_id, i };
	}
	qsort(ix->by_addr, n, sizeof(*ix->by_addr), eni_ref_cmp);
	qsort(ids, n_ids, sizeof(*ids), id_ref_cmp);
	for (i = 0; i < n_ids; i = k)
		for (k = i; k < n_ids && !strcmp(ids[k].id, ids[i].id); k++)
			ix->iface[ids[k].idx] = ids[i].idx;
	free(ids);
	return 0;
}

/* The first entry listed with this address, or -1. */
static long eni_find(const struct eni_index *ix, int family, const uint8_t *addr)
{
	struct eni_ref key = { .family = (uint8_t)family, .idx = 0 };
	size_t lo = 0, hi = ix->n;

	if (family != AF_INET && family != AF_INET6)
		return -1;
	norm_addr(key.addr, family, addr);
	while (lo < hi) { /* lower bound */
		size_t mid = lo + (hi - lo) / 2;

		if (eni_ref_cmp(&ix->by_addr[mid], &key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < ix->n && ix->by_addr[lo].family == key.family &&
	    !memcmp(ix->by_addr[lo].addr, key.addr, 16))
		return (long)ix->by_addr[lo].idx;
	return -1;
}

/* ---- collection ------------------------------------------------------- */

static uint64_t to_unix_s(uint64_t mono_ns, int64_t mono_to_unix_ns)
{
	int64_t ns = (int64_t)mono_ns + mono_to_unix_ns;

	return ns < 0 ? 0 : (uint64_t)ns / 1000000000ull;
}

/* [first, last] clamped to the interval, never ending before it starts. */
static void set_times(struct epg_fl_record *r, const struct epg_fl_interval *iv,
		      uint64_t first_ns, uint64_t last_ns)
{
	uint64_t s = to_unix_s(first_ns, iv->mono_to_unix_ns);
	uint64_t e = to_unix_s(last_ns, iv->mono_to_unix_ns);

	r->start = s > iv->start ? s : iv->start;
	r->end = e < iv->end ? e : iv->end;
	if (r->end < r->start)
		r->end = r->start;
}

static bool proto_has_ports(int proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP;
}

static size_t table_size_for(size_t n_flows)
{
	size_t cap = EPG_FL_MIN_CAP;

	while (cap / 2 < n_flows)
		cap *= 2;
	return cap;
}

int epg_fl_collect(struct epg_fl_state *st, const struct epg_fl_interval *iv,
		   void (*emit)(const struct epg_fl_record *r, void *ctx), void *ctx)
{
	struct eni_index ix;
	size_t i, want;
	uint32_t prev;
	int n = 0, rc;

	if (iv->n_flows > SIZE_MAX / 8 / sizeof(struct fl_entry))
		return -ENOMEM;

	/* 1. mark */
	st->epoch = st->epoch + 1 ? st->epoch + 1 : 1;
	for (i = 0; st->cap && i < iv->n_flows; i++) {
		const struct epg_flow *fl = &iv->flows[i];
		uint32_t h = flow_hash(&fl->key, fl->val.created_ns);
		size_t s = slot_of(st, h, &fl->key, fl->val.created_ns);

		if (st->t[s].epoch)
			st->t[s].epoch = st->epoch;
	}

	/* 2. sweep, size, index. A flow missing from this interval is kept
	 * one interval more: the datapath may have removed it after its last
	 * counts were drained and before the table was read, and then its last
	 * counts come with the next interval. */
	prev = st->epoch - 1 ? st->epoch - 1 : UINT32_MAX;
	for (i = 0; i < st->cap;) {
		if (st->t[i].epoch && st->t[i].epoch != st->epoch && st->t[i].epoch != prev)
			remove_at(st, i); /* i now holds a later entry, or nothing */
		else
			i++;
	}
	want = table_size_for(st->count + iv->n_flows);
	if (st->cap < want) {
		rc = resize(st, want);
		if (rc)
			return rc;
	} else if (st->cap > 4 * want) {
		resize(st, want); /* give memory back; keeping the big table is fine too */
	}
	rc = eni_index_build(&ix, iv->enis, iv->n_enis);
	if (rc)
		return rc;

	/* 3. report: ACCEPT per flow and direction that grew */
	for (i = 0; i < iv->n_flows; i++) {
		const struct epg_flow *fl = &iv->flows[i];
		const struct epg_ct_key *k = &fl->key;
		uint32_t h = flow_hash(k, fl->val.created_ns);
		size_t s = slot_of(st, h, k, fl->val.created_ns);
		struct fl_entry *e = &st->t[s];
		/* the initiator is the endpoint for an egress-initiated flow */
		bool ep_lo = (fl->val.init_dir == EPG_DIR_EGRESS) == !!fl->val.init_lo;
		const uint8_t *ep_addr = ep_lo ? k->lo_addr : k->hi_addr;
		const uint8_t *peer_addr = ep_lo ? k->hi_addr : k->lo_addr;
		uint16_t ep_port = ntohs(ep_lo ? k->lo_port : k->hi_port);
		uint16_t peer_port = ntohs(ep_lo ? k->hi_port : k->lo_port);
		long eni;
		int d;

		if (!e->epoch) {
			memset(e, 0, sizeof(*e));
			e->key = *k;
			e->created_ns = fl->val.created_ns;
			e->hash = h;
			st->count++;
		}
		e->epoch = st->epoch;
		eni = eni_find(&ix, k->family, ep_addr);
		for (d = 0; d < EPG_DIR_MAX; d++) {
			uint64_t p = fl->val.packets[d], b = fl->val.bytes[d];
			uint64_t dp = p - e->packets[d], db = b - e->bytes[d];
			struct epg_fl_record r;

			/* Counts of one flow (key and creation time) never go back:
			 * lower ones are a stale copy (a removed flow's last counts
			 * can arrive after the table was read). Nothing new. */
			if (p < e->packets[d] || b < e->bytes[d]) {
				dp = 0;
				db = 0;
			} else {
				e->packets[d] = p;
				e->bytes[d] = b;
			}
			if (!dp || eni < 0)
				continue;
			memset(&r, 0, sizeof(r));
			r.eni = &iv->enis[eni];
			r.family = k->family;
			memcpy(r.src, d == EPG_DIR_INGRESS ? peer_addr : ep_addr, 16);
			memcpy(r.dst, d == EPG_DIR_INGRESS ? ep_addr : peer_addr, 16);
			r.has_ports = proto_has_ports(k->proto);
			if (r.has_ports) {
				r.sport = d == EPG_DIR_INGRESS ? peer_port : ep_port;
				r.dport = d == EPG_DIR_INGRESS ? ep_port : peer_port;
			}
			r.proto = k->proto;
			r.packets = dp;
			r.bytes = db;
			set_times(&r, iv, fl->val.created_ns, fl->val.last_seen_ns);
			r.action = EPG_FL_ACCEPT;
			r.status = EPG_FL_OK;
			/* what the interval added: a long connection's SYN is in
			 * its first record only, as VPC Flow Logs OR flags over
			 * the interval; the flow keeps them since it began */
			if (k->proto == IPPROTO_TCP) {
				uint8_t f = aws_tcp_flags(fl->val.tcp_flags[d], d != (int)fl->val.init_dir);

				r.tcp_flags = f & (uint8_t)~e->flags[d];
				e->flags[d] |= f;
			}
			r.direction = (uint32_t)d;
			emit(&r, ctx);
			ix.had[ix.iface[eni]] = true;
			n++;
		}
	}

	/* REJECT per rejected entry, on the endpoint's side of it */
	for (i = 0; i < iv->n_rejected; i++) {
		const struct epg_rej_key *k = &iv->rejected[i].key;
		const struct epg_rej_val *v = &iv->rejected[i].val;
		bool egress = k->dir == EPG_DIR_EGRESS;
		struct epg_fl_record r;
		long eni = eni_find(&ix, k->family, egress ? k->src : k->dst);

		if (eni < 0)
			continue;
		memset(&r, 0, sizeof(r));
		r.eni = &iv->enis[eni];
		r.family = k->family;
		memcpy(r.src, k->src, 16);
		memcpy(r.dst, k->dst, 16);
		r.has_ports = proto_has_ports(k->proto);
		if (r.has_ports) {
			r.sport = ntohs(k->sport);
			r.dport = ntohs(k->dport);
		}
		r.proto = k->proto;
		r.packets = v->packets;
		r.bytes = v->bytes;
		set_times(&r, iv, v->first_ns, v->last_ns);
		r.action = EPG_FL_REJECT;
		r.status = EPG_FL_OK;
		/* rejected entries are this interval's alone */
		if (k->proto == IPPROTO_TCP)
			r.tcp_flags = aws_tcp_flags(v->tcp_flags, (v->tcp_flags & EPG_TCP_ACK) != 0);
		r.direction = k->dir;
		emit(&r, ctx);
		ix.had[ix.iface[eni]] = true;
		n++;
	}

	/* SKIPDATA for every interface when rejected packets went unrecorded
	 * (we cannot tell whose they were); then NODATA for every interface
	 * with no record at all (so not after a SKIPDATA) */
	for (i = 0; iv->lost && i < iv->n_enis; i++) {
		struct epg_fl_record r = {
			.eni = &iv->enis[i], .start = iv->start, .end = iv->end,
			.action = EPG_FL_NO_ACTION, .status = EPG_FL_SKIPDATA,
		};

		if (ix.iface[i] != i)
			continue;
		emit(&r, ctx);
		ix.had[i] = true;
		n++;
	}
	for (i = 0; i < iv->n_enis; i++) {
		struct epg_fl_record r = {
			.eni = &iv->enis[i], .start = iv->start, .end = iv->end,
			.action = EPG_FL_NO_ACTION, .status = EPG_FL_NODATA,
		};

		if (ix.iface[i] != i || ix.had[i])
			continue;
		emit(&r, ctx);
		n++;
	}
	eni_index_free(&ix);
	return n;
}
