// SPDX-License-Identifier: MIT
/* Prometheus text exposition (format 0.0.4) of a counter snapshot; the
 * contract is in metrics.h. One pass over sorted index arrays into one
 * growing buffer: the cost is O(n log n) in endpoints and rules, and the
 * labels of an endpoint are escaped once, not once per series. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "metrics.h"

/* The output buffer. Once an allocation fails, every write is a no-op and
 * the render ends with -ENOMEM. */
struct out {
	char *p;
	size_t len, cap;
	bool oom;
};

/* Room for n more bytes and the terminating NUL. */
static bool out_room(struct out *o, size_t n)
{
	size_t cap;
	char *p;

	if (o->oom)
		return false;
	if (n < o->cap - o->len)
		return true;
	cap = o->cap ? o->cap : 4096;
	while (cap - o->len <= n) {
		if (cap > SIZE_MAX / 2) {
			o->oom = true;
			return false;
		}
		cap *= 2;
	}
	p = realloc(o->p, cap);
	if (!p) {
		o->oom = true;
		return false;
	}
	o->p = p;
	o->cap = cap;
	return true;
}

static void out_mem(struct out *o, const void *s, size_t n)
{
	if (!out_room(o, n))
		return;
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void out_str(struct out *o, const char *s)
{
	out_mem(o, s, strlen(s));
}

static void out_u64(struct out *o, uint64_t v)
{
	char d[20];
	size_t i = sizeof(d);

	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	out_mem(o, d + i, sizeof(d) - i);
}

/* Nanoseconds as seconds with their fraction, trailing zeros dropped:
 * 1700000000500000000 -> "1700000000.5". */
static void out_seconds(struct out *o, uint64_t ns)
{
	uint32_t frac = (uint32_t)(ns % 1000000000u);
	char d[10];
	size_t n = 10;

	out_u64(o, ns / 1000000000u);
	if (!frac)
		return;
	d[0] = '.';
	for (size_t i = 9; i >= 1; i--) {
		d[i] = (char)('0' + frac % 10);
		frac /= 10;
	}
	while (d[n - 1] == '0')
		n--;
	out_mem(o, d, n);
}

/* Length of the well-formed UTF-8 sequence at s (n bytes left), 0 if there
 * is none (RFC 3629: no overlong forms, surrogates or code points above
 * U+10FFFF, as Go's utf8.ValidString, which Prometheus applies). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		if (s[0] == 0xe0)
			lo = 0xa0;
		else if (s[0] == 0xed)
			hi = 0x9f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		if (s[0] == 0xf0)
			lo = 0x90;
		else if (s[0] == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/* A label value from a fixed-size field (not necessarily NUL-terminated):
 * backslash, double quote and newline escaped as the format requires; a byte
 * that is not UTF-8 (a name cut short inside a character) becomes U+FFFD,
 * since Prometheus rejects the whole scrape on an invalid label value. */
static void out_label_value(struct out *o, const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strnlen(s, max), i = 0, run = 0;

	while (i < n) {
		const char *esc = NULL;
		size_t len = 1;

		if (p[i] == '\\')
			esc = "\\\\";
		else if (p[i] == '"')
			esc = "\\\"";
		else if (p[i] == '\n')
			esc = "\\n";
		else if (p[i] >= 0x80 && !(len = utf8_len(p + i, n - i)))
			esc = "\xef\xbf\xbd";
		if (!esc) {
			i += len;
			continue;
		}
		out_mem(o, s + run, i - run);
		out_str(o, esc);
		run = ++i;
	}
	out_mem(o, s + run, n - run);
}

/* # HELP and # TYPE of a family; help is plain text without \ or newline. */
static void out_family(struct out *o, const char *name, const char *type, const char *help)
{
	out_str(o, "# HELP ");
	out_str(o, name);
	out_mem(o, " ", 1);
	out_str(o, help);
	out_str(o, "\n# TYPE ");
	out_str(o, name);
	out_mem(o, " ", 1);
	out_str(o, type);
	out_mem(o, "\n", 1);
}

/* A family of one unlabelled sample. */
static void out_scalar(struct out *o, const char *name, const char *type, const char *help,
		       uint64_t v)
{
	out_family(o, name, type, help);
	out_str(o, name);
	out_mem(o, " ", 1);
	out_u64(o, v);
	out_mem(o, "\n", 1);
}

static const char *dir_label(uint32_t dir)
{
	return dir == EPG_DIR_INGRESS ? "ingress" : dir == EPG_DIR_EGRESS ? "egress" : "unknown";
}

static const char *mode_label(uint32_t mode)
{
	return mode == EPG_MODE_NATIVE ? "native" : mode == EPG_MODE_SKB ? "skb" : "unknown";
}

/* Endpoints ------------------------------------------------------------- */

static int cmp_ep(const void *a, const void *b)
{
	const struct epg_ep_info *x = &(*(const struct epg_ep_snapshot *const *)a)->info;
	const struct epg_ep_info *y = &(*(const struct epg_ep_snapshot *const *)b)->info;
	int c = strncmp(x->endpoint_id, y->endpoint_id, sizeof(x->endpoint_id));

	return c ? c : strncmp(x->service_name, y->service_name, sizeof(x->service_name));
}

/* The tail of an endpoint series after its direction label, per direction
 * and reason: `ingress",action="accept",reason="rule"} `. */
struct ep_tails {
	char s[EPG_DIR_MAX][EPG_R_COUNT][96];
	size_t len[EPG_DIR_MAX][EPG_R_COUNT];
};

static void ep_tails_init(struct ep_tails *t)
{
	for (uint32_t d = 0; d < EPG_DIR_MAX; d++)
		for (uint32_t r = 0; r < EPG_R_COUNT; r++) {
			int n = snprintf(t->s[d][r], sizeof(t->s[d][r]),
					 "%s\",action=\"%s\",reason=\"%s\"} ", dir_label(d),
					 epg_reason_is_drop(r) ? "reject" : "accept",
					 epg_reason_label(r));

			t->len[d][r] = n < 0 ? 0 : (size_t)n < sizeof(t->s[d][r]) ?
				       (size_t)n : sizeof(t->s[d][r]) - 1;
		}
}

/* Endpoints [i, end) of the sorted array that give the same series; their
 * counters summed into sum (or the one endpoint's counters). */
static size_t ep_group(const struct epg_ep_snapshot *const *eps, size_t n, size_t i,
		       struct epg_counter (*sum)[EPG_REASON_SLOTS],
		       const struct epg_counter (**c)[EPG_REASON_SLOTS])
{
	size_t end = i + 1;

	*c = eps[i]->c;
	if (end == n || cmp_ep(&eps[i], &eps[end]))
		return end;
	memcpy(sum, eps[i]->c, sizeof(eps[i]->c));
	for (; end < n && !cmp_ep(&eps[i], &eps[end]); end++)
		for (uint32_t d = 0; d < EPG_DIR_MAX; d++)
			for (uint32_t r = 0; r < EPG_REASON_SLOTS; r++) {
				sum[d][r].packets += eps[end]->c[d][r].packets;
				sum[d][r].bytes += eps[end]->c[d][r].bytes;
			}
	*c = (const struct epg_counter (*)[EPG_REASON_SLOTS])sum;
	return end;
}

static void out_endpoints(struct out *o, const char *name, bool bytes,
			  const struct epg_ep_snapshot *const *eps, size_t n,
			  const struct ep_tails *t, struct out *head)
{
	struct epg_counter sum[EPG_DIR_MAX][EPG_REASON_SLOTS];
	const struct epg_counter (*c)[EPG_REASON_SLOTS];
	size_t name_len = strlen(name);

	for (size_t i = 0, next; i < n; i = next) {
		next = ep_group(eps, n, i, sum, &c);
		/* name{endpoint_id="...",service_name="...",direction=" */
		head->len = 0;
		out_mem(head, name, name_len);
		out_str(head, "{endpoint_id=\"");
		out_label_value(head, eps[i]->info.endpoint_id, sizeof(eps[i]->info.endpoint_id));
		out_str(head, "\",service_name=\"");
		out_label_value(head, eps[i]->info.service_name,
				sizeof(eps[i]->info.service_name));
		out_str(head, "\",direction=\"");
		if (head->oom) {
			o->oom = true;
			return;
		}
		for (uint32_t d = 0; d < EPG_DIR_MAX; d++)
			for (uint32_t r = 0; r < EPG_R_COUNT; r++) {
				out_mem(o, head->p, head->len);
				out_mem(o, t->s[d][r], t->len[d][r]);
				out_u64(o, bytes ? c[d][r].bytes : c[d][r].packets);
				out_mem(o, "\n", 1);
			}
	}
}

/* Rules ----------------------------------------------------------------- */

/* By label set: security-group rules (group_id) before network ACL entries
 * (network_acl_id), then group, direction, rule id. */
static int cmp_rule(const void *a, const void *b)
{
	const struct epg_rule_info *x = &(*(const struct epg_rule_snapshot *const *)a)->info;
	const struct epg_rule_info *y = &(*(const struct epg_rule_snapshot *const *)b)->info;
	bool xacl = x->kind == EPG_RULE_ACL, yacl = y->kind == EPG_RULE_ACL;
	int c;

	if (xacl != yacl)
		return xacl ? 1 : -1;
	c = strncmp(x->group_id, y->group_id, sizeof(x->group_id));
	if (c)
		return c;
	c = strcmp(dir_label(x->dir), dir_label(y->dir));
	if (c)
		return -c; /* ingress before egress */
	return strncmp(x->rule_id, y->rule_id, sizeof(x->rule_id));
}

static void out_rules(struct out *o, const struct epg_rule_snapshot *const *rules, size_t n)
{
	for (size_t i = 0, next; i < n; i = next) {
		const struct epg_rule_info *r = &rules[i]->info;
		uint64_t packets = rules[i]->c.packets;

		for (next = i + 1; next < n && !cmp_rule(&rules[i], &rules[next]); next++)
			packets += rules[next]->c.packets;
		out_str(o, r->kind == EPG_RULE_ACL ? "epgate_rule_hits_total{network_acl_id=\""
						   : "epgate_rule_hits_total{group_id=\"");
		out_label_value(o, r->group_id, sizeof(r->group_id));
		out_str(o, "\",direction=\"");
		out_str(o, dir_label(r->dir));
		out_str(o, "\",rule=\"");
		out_label_value(o, r->rule_id, sizeof(r->rule_id));
		out_str(o, "\"} ");
		out_u64(o, packets);
		out_mem(o, "\n", 1);
	}
}

/* Interfaces ------------------------------------------------------------ */

static int cmp_iface(const void *a, const void *b)
{
	const struct epg_iface_info *x = &(*(const struct epg_iface_snapshot *const *)a)->info;
	const struct epg_iface_info *y = &(*(const struct epg_iface_snapshot *const *)b)->info;
	int c = strncmp(x->name, y->name, sizeof(x->name));

	return c ? c : strcmp(mode_label(x->mode), mode_label(y->mode));
}

static void out_attached_one(struct out *o, const struct epg_iface_info *f, const char *hook)
{
	out_str(o, "epgate_attached{interface=\"");
	out_label_value(o, f->name, sizeof(f->name));
	out_str(o, "\",mode=\"");
	out_str(o, mode_label(f->mode));
	out_str(o, "\",hook=\"");
	out_str(o, hook);
	out_str(o, "\"} 1\n");
}

static void out_ifaces(struct out *o, const struct epg_iface_snapshot *const *ifs, size_t n)
{
	for (size_t i = 0, next; i < n; i = next) {
		bool tc = ifs[i]->info.tc_prog_id != 0;

		for (next = i + 1; next < n && !cmp_iface(&ifs[i], &ifs[next]); next++)
			tc |= ifs[next]->info.tc_prog_id != 0;
		out_attached_one(o, &ifs[i]->info, "xdp");
		if (tc)
			out_attached_one(o, &ifs[i]->info, "tc");
	}
}

/* The render ------------------------------------------------------------ */

/* An array of pointers to n elements of size sz, sorted by cmp. */
static const void **sorted_index(const void *base, size_t n, size_t sz,
				 int (*cmp)(const void *, const void *))
{
	const void **idx = malloc((n ? n : 1) * sizeof(*idx));

	if (!idx)
		return NULL;
	for (size_t i = 0; i < n; i++)
		idx[i] = (const char *)base + i * sz;
	qsort(idx, n, sizeof(*idx), cmp);
	return idx;
}

int epg_metrics_render(const struct epg_metrics_input *in, char **out, size_t *len)
{
	const struct epg_snapshot *s = in->snap;
	const struct epg_ep_snapshot **eps;
	const struct epg_rule_snapshot **rules;
	const struct epg_iface_snapshot **ifs;
	struct out o = { 0 }, head = { 0 };
	struct ep_tails *tails;
	uint64_t avail = in->ct_max > in->ct_entries ? in->ct_max - in->ct_entries : 0;

	eps = (const struct epg_ep_snapshot **)sorted_index(s->eps, s->n_eps, sizeof(*s->eps),
							     cmp_ep);
	rules = (const struct epg_rule_snapshot **)sorted_index(s->rules, s->n_rules,
								 sizeof(*s->rules), cmp_rule);
	ifs = (const struct epg_iface_snapshot **)sorted_index(s->ifaces, s->n_ifaces,
								sizeof(*s->ifaces), cmp_iface);
	tails = malloc(sizeof(*tails));
	/* A first guess at the size; the buffer doubles when it is short. */
	if (!eps || !rules || !ifs || !tails ||
	    !out_room(&o, 16384 + s->n_eps * 2 * EPG_DIR_MAX * EPG_R_COUNT * 160 +
				  s->n_rules * 96 + s->n_ifaces * 160))
		goto out_oom;
	ep_tails_init(tails);

	out_family(&o, "epgate_endpoint_packets_total", "counter",
		   "Packets to (ingress) or from (egress) a VPC endpoint address, by verdict and reason.");
	out_endpoints(&o, "epgate_endpoint_packets_total", false, eps, s->n_eps, tails, &head);
	out_family(&o, "epgate_endpoint_bytes_total", "counter",
		   "Bytes to (ingress) or from (egress) a VPC endpoint address, by verdict and reason.");
	out_endpoints(&o, "epgate_endpoint_bytes_total", true, eps, s->n_eps, tails, &head);
	out_family(&o, "epgate_rule_hits_total", "counter",
		   "Packets that a security-group rule (group_id) or network ACL entry "
		   "(network_acl_id) decided; rule is the id that epgate stats --rules prints.");
	out_rules(&o, rules, s->n_rules);
	out_scalar(&o, "epgate_conntrack_entries", "gauge",
		   "Flows in the connection-tracking table.", in->ct_entries);
	out_scalar(&o, "epgate_conntrack_allowance_available", "gauge",
		   "New flows the connection-tracking table can still take.", avail);
	out_scalar(&o, "epgate_conntrack_allowance_exceeded_total", "counter",
		   "Packets of new flows dropped because the connection-tracking table was full.",
		   s->global[EPG_G_CT_EXCEEDED].packets);
	out_scalar(&o, "epgate_spoofed_packets_total", "counter",
		   "Packets dropped because their source, an endpoint address, cannot be where they arrived (the route back to it leaves through another attached interface, or it is this host's own address): not counted under the endpoint.",
		   s->spoofed.packets);
	out_scalar(&o, "epgate_passthrough_packets_total", "counter",
		   "Packets neither to nor from an endpoint address, passed untouched.",
		   s->global[EPG_G_PASSTHROUGH].packets);
	out_scalar(&o, "epgate_policy_generation", "gauge",
		   "Generation of the active policy: the number of applies so far.",
		   s->meta.generation);
	out_family(&o, "epgate_policy_apply_timestamp_seconds", "gauge",
		   "Time of the last policy apply, in seconds since the Unix epoch.");
	out_str(&o, "epgate_policy_apply_timestamp_seconds ");
	out_seconds(&o, s->meta.apply_time_ns);
	out_mem(&o, "\n", 1);
	out_scalar(&o, "epgate_policy_apply_errors_total", "counter",
		   "Policy applies that failed since the daemon started.", in->apply_errors);
	out_family(&o, "epgate_attached", "gauge",
		   "1 for every interface and hook (xdp, tc egress) the datapath is attached to.");
	out_ifaces(&o, ifs, s->n_ifaces);
	out_family(&o, "epgate_build_info", "gauge", "The version of epgate; the value is 1.");
	out_str(&o, "epgate_build_info{version=\"");
	out_label_value(&o, in->version ? in->version : "unknown", 256);
	out_str(&o, "\"} 1\n");
	out_scalar(&o, "epgate_flowlog_records_skipped_total", "counter",
		   "What flow logs could not record since the daemon started (reported as SKIPDATA): rejected packets (epg_rej full) and removed flows (epg_ct_ended full).",
		   in->flowlog_skipped);
	out_scalar(&o, "epgate_flowlog_write_errors_total", "counter",
		   "Flow-log intervals whose records could not be written (a full disk, a closed pipe) since the daemon started: those records are lost.",
		   in->flowlog_write_errors);
	if (o.oom || !out_room(&o, 0))
		goto out_oom;

	o.p[o.len] = '\0';
	*out = o.p;
	*len = o.len;
	free(head.p);
	free(tails);
	free(ifs);
	free(rules);
	free(eps);
	return 0;

out_oom:
	free(o.p);
	free(head.p);
	free(tails);
	free(ifs);
	free(rules);
	free(eps);
	return -ENOMEM;
}
