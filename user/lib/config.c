// SPDX-License-Identifier: MIT
/*
 * config.c: the EC2 API's JSON documents -> struct epg_config.
 *
 * Contract (see model.h and ../shared/SEMANTICS.md "Input"):
 *  - Every function returns 0 or -errno; nothing prints, nothing exits.
 *  - Errors are written once, into struct epg_error, as
 *    "FILE: JSON.path: what is wrong (what is expected)", or for JSON syntax
 *    "FILE:LINE:COLUMN: invalid JSON: <jansson's text>".
 *  - -EINVAL when the input is at fault, -errno from the failing call for
 *    I/O, -ENOMEM when memory runs out.
 *  - Documents are parsed one by one straight into a private epg_config;
 *    only when every document parsed and every cross-reference resolved is
 *    it handed to the caller. On error the caller's cfg is left empty.
 *
 * Choices where SEMANTICS.md is silent:
 *  - A JSON null is taken as an absent key (jq and hand-written documents
 *    use it that way); a required key that is null is "missing".
 *  - Required strings (ids, ServiceName, ...) must be non-empty.
 *  - Objects with duplicate keys are rejected (JSON_REJECT_DUPLICATES): the
 *    two values would otherwise be an ambiguity we resolve silently.
 *  - Endpoint Groups: present and non-empty -> those groups
 *    (groups_present = true); absent or [] -> groups_present = false and the
 *    consumer takes the union of the endpoint's interfaces' groups.
 *  - Only "Interface" endpoints have their NetworkInterfaceIds and Groups
 *    checked (they are the ones enforced); an interface may be named by only
 *    one Interface endpoint, since an address must map to one endpoint.
 *  - Network ACL '*' entries (32767/32768) must deny all protocols for
 *    0.0.0.0/0 resp. ::/0; missing ones are appended, per direction and
 *    family. Rule numbers must be unique per (ACL, direction, family).
 *  - Two default ACLs whose VpcId are both absent count as the same VPC.
 *  - Arrays in the model keep document order (files in the order given);
 *    lookups by id are linear.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "epgate/abi.h"
#include "model.h"

#define PATH_LEN 512 /* keys are ours and depth is fixed: ~130 chars max */
#define SHOW_LEN 80  /* an input string quoted in a message */

/* ------------------------------------------------------------------------ */
/* Errors and JSON paths                                                     */

struct ctx {
	const char *file;
	struct epg_error *err;
	size_t plen;
	char path[PATH_LEN];
};

__attribute__((format(printf, 2, 3)))
static void err_set(struct epg_error *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

/* An input string made safe to show: control bytes become '?', long ones are
 * cut (never inside a UTF-8 sequence) and end in "...". */
static const char *show(const char *s, char out[SHOW_LEN])
{
	size_t i = 0, o = 0;

	for (; s[i] && o < SHOW_LEN - 4; i++) {
		unsigned char ch = (unsigned char)s[i];

		out[o++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	if (s[i]) {
		while (o && ((unsigned char)out[o - 1] & 0xc0) == 0x80)
			o--;
		if (o && ((unsigned char)out[o - 1] & 0xc0) == 0xc0)
			o--;
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

/* Append to the JSON path, cut at its buffer: called for every element of
 * the documents, so by hand rather than through snprintf. */
static void path_append(struct ctx *c, const char *s, size_t n)
{
	size_t room = sizeof(c->path) - 1 - c->plen;

	if (n > room)
		n = room;
	memcpy(c->path + c->plen, s, n);
	c->plen += n;
	c->path[c->plen] = '\0';
}

static size_t push_key(struct ctx *c, const char *key)
{
	size_t old = c->plen;

	if (old)
		path_append(c, ".", 1);
	path_append(c, key, strlen(key));
	return old;
}

static size_t push_idx(struct ctx *c, size_t i)
{
	char buf[24], *p = buf + sizeof(buf);
	size_t old = c->plen;

	*--p = ']';
	do {
		*--p = (char)('0' + i % 10);
		i /= 10;
	} while (i);
	*--p = '[';
	path_append(c, p, (size_t)(buf + sizeof(buf) - p));
	return old;
}

static void pop(struct ctx *c, size_t old)
{
	c->plen = old;
	c->path[old] = '\0';
}

static int vfail(struct ctx *c, const char *fmt, va_list ap)
{
	char what[sizeof(c->err->msg)];

	vsnprintf(what, sizeof(what), fmt, ap);
	if (c->plen)
		err_set(c->err, "%s: %s: %s", c->file, c->path, what);
	else
		err_set(c->err, "%s: %s", c->file, what);
	return -EINVAL;
}

/* The input is wrong at the current path. */
__attribute__((format(printf, 2, 3)))
static int fail(struct ctx *c, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = vfail(c, fmt, ap);
	va_end(ap);
	return ret;
}

/* The input is wrong at path.key. */
__attribute__((format(printf, 3, 4)))
static int fail_key(struct ctx *c, const char *key, const char *fmt, ...)
{
	size_t old = push_key(c, key);
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = vfail(c, fmt, ap);
	va_end(ap);
	pop(c, old);
	return ret;
}

/* Return the error of a call that fails; every caller's cleanup is the
 * caller's caller's (the whole private config is freed on error). */
#define TRY(expr)                                                              \
	do {                                                                   \
		int try_ret_ = (expr);                                         \
		if (try_ret_)                                                  \
			return try_ret_;                                       \
	} while (0)

static int nomem(struct ctx *c)
{
	err_set(c->err, "%s: out of memory while loading", c->file);
	return -ENOMEM;
}

static int set_origin(struct ctx *c, struct epg_origin *o)
{
	o->file = strdup(c->file);
	o->path = strdup(c->path);
	return o->file && o->path ? 0 : nomem(c);
}

static int dup_str(struct ctx *c, char **dst, const char *s)
{
	if (!s)
		return 0;
	*dst = strdup(s);
	return *dst ? 0 : nomem(c);
}

/* Grow an array by add zeroed elements; NULL when out of memory. */
static void *grow(void *arr, size_t have, size_t add, size_t size)
{
	char *p = reallocarray(arr, have + add, size);

	if (p)
		memset(p + have * size, 0, add * size);
	return p;
}

/* ------------------------------------------------------------------------ */
/* Typed access to JSON members                                              */

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a real number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "an unknown JSON type";
}

/* null counts as absent. */
static json_t *member(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_null(v) ? NULL : v;
}

/* *out is NULL when the key is absent (and not required). */
static int get_str(struct ctx *c, const json_t *obj, const char *key,
		   bool required, const char **out)
{
	json_t *v = member(obj, key);

	*out = NULL;
	if (!v)
		return required ? fail_key(c, key, "required key is missing (expected a string)") : 0;
	if (!json_is_string(v))
		return fail_key(c, key, "expected a string, got %s", type_name(v));
	if (required && json_string_length(v) == 0)
		return fail_key(c, key, "empty string (expected a non-empty value)");
	*out = json_string_value(v);
	return 0;
}

static int get_dup_str(struct ctx *c, const json_t *obj, const char *key,
		       bool required, char **dst)
{
	const char *s;
	int ret = get_str(c, obj, key, required, &s);

	return ret ? ret : dup_str(c, dst, s);
}

/* An integer in lo..hi. expect (or "lo..hi") completes "(expected ...)". */
static int get_int(struct ctx *c, const json_t *obj, const char *key,
		   bool required, long long lo, long long hi, const char *what,
		   const char *expect, int *out, bool *present)
{
	json_t *v = member(obj, key);
	long long x;

	*present = false;
	if (!v)
		return required ? fail_key(c, key, "required key is missing (expected an integer)") : 0;
	if (!json_is_integer(v))
		return fail_key(c, key, "expected an integer, got %s", type_name(v));
	x = json_integer_value(v);
	if (x < lo || x > hi) {
		if (expect)
			return fail_key(c, key, "%lld is not %s (expected %s)", x, what, expect);
		return fail_key(c, key, "%lld is not %s (expected %lld..%lld)", x, what, lo, hi);
	}
	*out = (int)x;
	*present = true;
	return 0;
}

static int get_bool(struct ctx *c, const json_t *obj, const char *key,
		    bool required, bool *out)
{
	json_t *v = member(obj, key);

	if (!v)
		return required ? fail_key(c, key, "required key is missing (expected true or false)") : 0;
	if (!json_is_boolean(v))
		return fail_key(c, key, "expected true or false, got %s", type_name(v));
	*out = json_is_true(v);
	return 0;
}

/* *out is NULL when absent: an absent array is an empty one. */
static int get_array(struct ctx *c, const json_t *obj, const char *key,
		     const json_t **out)
{
	json_t *v = member(obj, key);

	*out = v;
	if (v && !json_is_array(v))
		return fail_key(c, key, "expected an array, got %s", type_name(v));
	return 0;
}

static int get_object(struct ctx *c, const json_t *obj, const char *key,
		      const json_t **out)
{
	json_t *v = member(obj, key);

	*out = v;
	if (v && !json_is_object(v))
		return fail_key(c, key, "expected an object, got %s", type_name(v));
	return 0;
}

/* The element at the current path must be an object. */
static int want_object(struct ctx *c, const json_t *v)
{
	return json_is_object(v) ? 0 : fail(c, "expected an object, got %s", type_name(v));
}

/*
 * An array of objects, each holding one required string under key
 * (Groups[].GroupId, Associations[].SubnetId), or an array of strings when
 * key is NULL (NetworkInterfaceIds). Sets *v and *n (kept in index order, so
 * element i's path is arr[i].key).
 */
static int get_id_list(struct ctx *c, const json_t *obj, const char *arr_key,
		       const char *key, char ***v, size_t *n)
{
	const json_t *arr, *e;
	size_t i, old;
	int ret;

	ret = get_array(c, obj, arr_key, &arr);
	if (ret || !arr || !json_array_size(arr))
		return ret;
	*v = calloc(json_array_size(arr), sizeof(**v));
	if (!*v)
		return nomem(c);
	*n = json_array_size(arr);

	old = push_key(c, arr_key);
	json_array_foreach(arr, i, e) {
		size_t at = push_idx(c, i);

		if (key) {
			TRY(want_object(c, e));
			TRY(get_dup_str(c, e, key, true, &(*v)[i]));
		} else if (!json_is_string(e)) {
			return fail(c, "expected a string, got %s", type_name(e));
		} else if (!json_string_length(e)) {
			return fail(c, "empty string (expected an id)");
		} else {
			TRY(dup_str(c, &(*v)[i], json_string_value(e)));
		}
		pop(c, at);
	}
	pop(c, old);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* CIDRs, addresses, protocols                                               */

enum cidr_err { CIDR_OK, CIDR_BAD, CIDR_FAMILY, CIDR_NO_LEN, CIDR_HAS_LEN, CIDR_LEN };

/* "a.b.c.d/len" or "x:x::x/len" (want_len) or a bare address (!want_len);
 * family AF_INET, AF_INET6 or AF_UNSPEC (either). Host bits are cleared. */
static enum cidr_err parse_cidr(const char *s, int family, bool want_len,
				struct epg_cidr *out)
{
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	char abuf[INET6_ADDRSTRLEN];
	uint8_t v4[4], v6[16];
	unsigned plen, max, i;
	int fam;

	memset(out, 0, sizeof(*out));
	if (alen >= sizeof(abuf))
		return CIDR_BAD;
	memcpy(abuf, s, alen);
	abuf[alen] = '\0';
	if (inet_pton(AF_INET, abuf, v4) == 1) {
		fam = AF_INET;
		memcpy(out->addr, v4, sizeof(v4)); /* the rest stays zero */
	} else if (inet_pton(AF_INET6, abuf, v6) == 1) {
		fam = AF_INET6;
		memcpy(out->addr, v6, sizeof(v6));
	} else {
		return CIDR_BAD;
	}
	out->family = (uint8_t)fam;
	if (family != AF_UNSPEC && fam != family)
		return CIDR_FAMILY;
	max = fam == AF_INET ? 32 : 128;

	if (!want_len) {
		if (slash)
			return CIDR_HAS_LEN;
		plen = max;
	} else {
		const char *p = slash ? slash + 1 : NULL;

		if (!p)
			return CIDR_NO_LEN;
		if (!*p || strlen(p) > 3 || strspn(p, "0123456789") != strlen(p))
			return CIDR_LEN;
		plen = (unsigned)atoi(p);
		if (plen > max)
			return CIDR_LEN;
	}

	out->plen = (uint8_t)plen;
	for (i = 0; i < 16; i++) {
		unsigned bit = i * 8;

		if (bit >= plen)
			out->addr[i] = 0;
		else if (bit + 8 > plen)
			out->addr[i] &= (uint8_t)(0xff << (8 - (plen - bit)));
	}
	return CIDR_OK;
}

/* Parse the string at path.key as a CIDR/address; the message says what was
 * expected. */
static int key_cidr(struct ctx *c, const json_t *obj, const char *key,
		    int family, bool want_len, struct epg_cidr *out)
{
	const char *s, *fam, *form, *noun = want_len ? "CIDR" : "address";
	char sh[SHOW_LEN];
	int ret = get_str(c, obj, key, true, &s);

	if (ret)
		return ret;
	switch (family) {
	case AF_INET:
		fam = "an IPv4 ";
		form = want_len ? "a.b.c.d/len" : "a.b.c.d";
		break;
	case AF_INET6:
		fam = "an IPv6 ";
		form = want_len ? "x:x::x/len" : "x:x::x";
		break;
	default:
		fam = "a ";
		form = "a.b.c.d/len or x:x::x/len";
		break;
	}

	switch (parse_cidr(s, family, want_len, out)) {
	case CIDR_OK:
		return 0;
	case CIDR_BAD:
		return fail_key(c, key, "\"%s\" is not %s%s (expected %s)",
				show(s, sh), fam, noun, form);
	case CIDR_FAMILY:
		return fail_key(c, key, "\"%s\" is an %s %s, not %s%s (expected %s)",
				show(s, sh), family == AF_INET ? "IPv6" : "IPv4",
				noun, fam, noun, form);
	case CIDR_NO_LEN:
		return fail_key(c, key, "\"%s\" has no prefix length (expected %s)",
				show(s, sh), form);
	case CIDR_HAS_LEN:
		return fail_key(c, key, "\"%s\" has a prefix length (expected a bare address %s)",
				show(s, sh), form);
	case CIDR_LEN:
		break;
	}
	/* CIDR_LEN: out->family is the address's family */
	return fail_key(c, key, "\"%s\" has a bad prefix length (expected %s, len 0..%d)",
			show(s, sh), form, out->family == AF_INET6 ? 128 : 32);
}

/* "tcp" "udp" "icmp" "icmpv6" (any case), "-1", or "0".."255". */
static int parse_proto(const char *s, int *out)
{
	static const struct { const char *name; int num; } names[] = {
		{ "tcp", 6 }, { "udp", 17 }, { "icmp", 1 }, { "icmpv6", 58 },
	};
	size_t i, n = strlen(s);

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcasecmp(s, names[i].name)) {
			*out = names[i].num;
			return 0;
		}
	}
	if (!strcmp(s, "-1")) {
		*out = EPG_PROTO_ALL;
		return 0;
	}
	if (n < 1 || n > 3 || strspn(s, "0123456789") != n || atoi(s) > 255)
		return -EINVAL;
	*out = atoi(s);
	return 0;
}

static bool proto_has_ports(int proto)
{
	return proto == 6 || proto == 17;
}

static bool proto_is_icmp(int proto)
{
	return proto == 1 || proto == 58;
}

/* ------------------------------------------------------------------------ */
/* SecurityGroups                                                            */

static int parse_peers(struct ctx *c, const json_t *perm, struct epg_perm *p)
{
	static const struct {
		const char *arr, *key;
		enum epg_peer_kind kind;
		int family;
	} kinds[] = {
		{ "IpRanges", "CidrIp", EPG_PEER_CIDR, AF_INET },
		{ "Ipv6Ranges", "CidrIpv6", EPG_PEER_CIDR, AF_INET6 },
		{ "PrefixListIds", "PrefixListId", EPG_PEER_PREFIX_LIST, 0 },
		{ "UserIdGroupPairs", "GroupId", EPG_PEER_GROUP, 0 },
	};
	const json_t *arrs[4];
	size_t k, total = 0;
	int ret;

	for (k = 0; k < 4; k++) {
		ret = get_array(c, perm, kinds[k].arr, &arrs[k]);
		if (ret)
			return ret;
		total += json_array_size(arrs[k]); /* 0 for NULL */
	}
	if (!total)
		return 0;
	p->peers = calloc(total, sizeof(*p->peers));
	if (!p->peers)
		return nomem(c);
	p->n_peers = total;

	total = 0;
	for (k = 0; k < 4; k++) {
		size_t old = push_key(c, kinds[k].arr), i;
		const json_t *e;

		json_array_foreach(arrs[k], i, e) {
			struct epg_peer *peer = &p->peers[total++];
			size_t at = push_idx(c, i), leaf;

			peer->kind = kinds[k].kind;
			ret = want_object(c, e);
			if (!ret && kinds[k].kind == EPG_PEER_CIDR)
				ret = key_cidr(c, e, kinds[k].key, kinds[k].family,
					       true, &peer->cidr);
			else if (!ret)
				ret = get_dup_str(c, e, kinds[k].key, true, &peer->ref_id);
			if (!ret) {
				leaf = push_key(c, kinds[k].key);
				ret = set_origin(c, &peer->origin);
				pop(c, leaf);
			}
			pop(c, at);
			if (ret)
				return ret;
		}
		pop(c, old);
	}
	return 0;
}

static int parse_perm(struct ctx *c, const json_t *o, struct epg_perm *p)
{
	bool has_from, has_to;
	const char *proto;
	char sh[SHOW_LEN];

	TRY(set_origin(c, &p->origin));
	TRY(get_str(c, o, "IpProtocol", true, &proto));
	if (parse_proto(proto, &p->proto))
		return fail_key(c, "IpProtocol",
				"\"%s\" is not a protocol (expected tcp, udp, icmp, icmpv6, -1 or a number 0..255)",
				show(proto, sh));
	p->from_port = p->to_port = -1;

	if (proto_has_ports(p->proto)) {
		TRY(get_int(c, o, "FromPort", false, -1, 65535, "a port", NULL,
			    &p->from_port, &has_from));
		TRY(get_int(c, o, "ToPort", false, -1, 65535, "a port", NULL,
			    &p->to_port, &has_to));
		if (!has_from && !has_to)
			return fail(c, "IpProtocol %s has no FromPort/ToPort (expected a port range 0..65535, or -1/-1 for all)",
				    show(proto, sh));
		if (!has_from || !has_to)
			return fail_key(c, has_from ? "ToPort" : "FromPort",
					"required key is missing (FromPort and ToPort come together)");
		if ((p->from_port == -1) != (p->to_port == -1))
			return fail_key(c, p->from_port == -1 ? "FromPort" : "ToPort",
					"-1 (all ports) with %s %d (expected both -1, or a range 0..65535)",
					p->from_port == -1 ? "ToPort" : "FromPort",
					p->from_port == -1 ? p->to_port : p->from_port);
		if (p->from_port == -1) {
			p->from_port = 0;
			p->to_port = 65535;
		}
		if (p->from_port > p->to_port)
			return fail_key(c, "FromPort", "%d is greater than ToPort %d (expected FromPort <= ToPort)",
					p->from_port, p->to_port);
	} else if (proto_is_icmp(p->proto)) {
		TRY(get_int(c, o, "FromPort", false, -1, 255, "an ICMP type",
			    "-1 for all types, or 0..255", &p->from_port, &has_from));
		TRY(get_int(c, o, "ToPort", false, -1, 255, "an ICMP code",
			    "-1 for all codes, or 0..255", &p->to_port, &has_to));
		if (!has_from && !has_to && p->proto == 1)
			return fail(c, "IpProtocol %s has no FromPort/ToPort (expected ICMP type and code, -1 for all)",
				    show(proto, sh));
		if (has_from != has_to)
			return fail_key(c, has_from ? "ToPort" : "FromPort",
					"required key is missing (FromPort is the ICMP type, ToPort the code; they come together)");
		/* icmpv6 without a range: all types and codes (-1/-1 set above). */
		if (p->from_port == -1 && p->to_port != -1)
			return fail_key(c, "ToPort", "ICMP code %d with FromPort -1 (expected -1: all types means all codes)",
					p->to_port);
	}
	/* "-1" and other protocols: every port, whatever the range says. */

	return parse_peers(c, o, p);
}

static int parse_perms(struct ctx *c, const json_t *grp, const char *key,
		       struct epg_perm **v, size_t *n)
{
	const json_t *arr, *e;
	size_t i, old;
	int ret;

	ret = get_array(c, grp, key, &arr);
	if (ret || !arr || !json_array_size(arr))
		return ret;
	*v = calloc(json_array_size(arr), sizeof(**v));
	if (!*v)
		return nomem(c);
	*n = json_array_size(arr);

	old = push_key(c, key);
	json_array_foreach(arr, i, e) {
		size_t at = push_idx(c, i);

		TRY(want_object(c, e));
		TRY(parse_perm(c, e, &(*v)[i]));
		pop(c, at);
	}
	pop(c, old);
	return 0;
}

static int parse_group(struct ctx *c, const json_t *o, struct epg_group *g)
{
	TRY(set_origin(c, &g->origin));
	TRY(get_dup_str(c, o, "GroupId", true, &g->id));
	TRY(get_dup_str(c, o, "GroupName", false, &g->name));
	TRY(get_dup_str(c, o, "VpcId", false, &g->vpc_id));
	TRY(parse_perms(c, o, "IpPermissions", &g->in, &g->n_in));
	return parse_perms(c, o, "IpPermissionsEgress", &g->out, &g->n_out);
}

/* ------------------------------------------------------------------------ */
/* VpcEndpoints                                                              */

/* Known VpcEndpointType values, stored in this spelling whatever the case
 * of the input: a hand-written "interface" must not silently go unenforced. */
static const char *const endpoint_types[] = {
	"Interface", "Gateway", "GatewayLoadBalancer", "Resource", "ServiceNetwork",
};

static int parse_endpoint(struct ctx *c, const json_t *o, struct epg_endpoint *ep)
{
	size_t i;

	TRY(set_origin(c, &ep->origin));
	TRY(get_dup_str(c, o, "VpcEndpointId", true, &ep->id));
	TRY(get_dup_str(c, o, "VpcEndpointType", true, &ep->type));
	for (i = 0; i < sizeof(endpoint_types) / sizeof(endpoint_types[0]); i++)
		if (!strcasecmp(ep->type, endpoint_types[i]))
			memcpy(ep->type, endpoint_types[i], strlen(ep->type));
	/* Resource and ServiceNetwork endpoints name no service (they carry
	 * ResourceConfigurationArn, ServiceNetworkArn); only the enforced
	 * Interface ones must */
	TRY(get_dup_str(c, o, "ServiceName", !strcmp(ep->type, "Interface"), &ep->service));
	TRY(get_dup_str(c, o, "VpcId", false, &ep->vpc_id));
	TRY(get_dup_str(c, o, "OwnerId", false, &ep->owner_id));
	TRY(get_dup_str(c, o, "PolicyDocument", false, &ep->policy_document));
	TRY(get_id_list(c, o, "NetworkInterfaceIds", NULL, &ep->enis, &ep->n_enis));
	TRY(get_id_list(c, o, "Groups", "GroupId", &ep->groups, &ep->n_groups));
	/* Groups absent or []: the union of the interfaces' groups applies. */
	ep->groups_present = ep->n_groups > 0;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* NetworkInterfaces                                                         */

static int add_addr(struct epg_eni *eni, const struct epg_cidr *a)
{
	size_t i;

	for (i = 0; i < eni->n_addrs; i++)
		if (!memcmp(&eni->addrs[i], a, sizeof(*a)))
			return 0;
	eni->addrs[eni->n_addrs++] = *a;
	return 0;
}

static int parse_eni_addrs(struct ctx *c, const json_t *o, struct epg_eni *eni)
{
	const json_t *v4, *v6, *e;
	struct epg_cidr a;
	size_t max, i, old;

	TRY(get_array(c, o, "PrivateIpAddresses", &v4));
	TRY(get_array(c, o, "Ipv6Addresses", &v6));
	max = 1 + json_array_size(v4) + json_array_size(v6);
	eni->addrs = calloc(max, sizeof(*eni->addrs));
	if (!eni->addrs)
		return nomem(c);

	if (member(o, "PrivateIpAddress")) {
		TRY(key_cidr(c, o, "PrivateIpAddress", AF_INET, false, &a));
		add_addr(eni, &a);
	}
	old = push_key(c, "PrivateIpAddresses");
	json_array_foreach(v4, i, e) {
		size_t at = push_idx(c, i);

		TRY(want_object(c, e));
		TRY(key_cidr(c, e, "PrivateIpAddress", AF_INET, false, &a));
		add_addr(eni, &a);
		pop(c, at);
	}
	pop(c, old);
	old = push_key(c, "Ipv6Addresses");
	json_array_foreach(v6, i, e) {
		size_t at = push_idx(c, i);

		TRY(want_object(c, e));
		TRY(key_cidr(c, e, "Ipv6Address", AF_INET6, false, &a));
		add_addr(eni, &a);
		pop(c, at);
	}
	pop(c, old);
	return 0;
}

static int parse_ct(struct ctx *c, const json_t *o, struct epg_ct_config *ct)
{
	static const struct {
		const char *key;
		int lo, hi;
		size_t off;
	} t[] = {
		{ "TcpEstablishedTimeout", 60, 432000, offsetof(struct epg_ct_config, tcp_established) },
		{ "UdpStreamTimeout", 60, 180, offsetof(struct epg_ct_config, udp_stream) },
		{ "UdpTimeout", 30, 60, offsetof(struct epg_ct_config, udp) },
	};
	const json_t *cfg;
	size_t i, old;
	int ret = get_object(c, o, "ConnectionTrackingConfiguration", &cfg);

	if (ret || !cfg)
		return ret;
	old = push_key(c, "ConnectionTrackingConfiguration");
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char expect[48];
		bool present;
		int x;

		snprintf(expect, sizeof(expect), "%d..%d seconds", t[i].lo, t[i].hi);
		ret = get_int(c, cfg, t[i].key, false, t[i].lo, t[i].hi,
			      "a valid timeout", expect, &x, &present);
		if (ret)
			return ret;
		if (present)
			*(uint32_t *)((char *)ct + t[i].off) = (uint32_t)x;
	}
	pop(c, old);
	return 0;
}

static int parse_eni(struct ctx *c, const json_t *o, struct epg_eni *eni)
{
	TRY(set_origin(c, &eni->origin));
	TRY(get_dup_str(c, o, "NetworkInterfaceId", true, &eni->id));
	TRY(get_dup_str(c, o, "SubnetId", false, &eni->subnet_id));
	TRY(get_dup_str(c, o, "VpcId", false, &eni->vpc_id));
	TRY(get_dup_str(c, o, "OwnerId", false, &eni->owner_id));
	TRY(get_dup_str(c, o, "AvailabilityZone", false, &eni->az));
	TRY(parse_eni_addrs(c, o, eni));
	TRY(get_id_list(c, o, "Groups", "GroupId", &eni->groups, &eni->n_groups));
	return parse_ct(c, o, &eni->ct);
}

/* ------------------------------------------------------------------------ */
/* PrefixLists                                                               */

/* One address of a prefix list: {"Cidr": ...} of Entries, or a string of
 * describe-prefix-lists' "Cidrs". */
static int prefix_list_entry(struct ctx *c, const json_t *e, bool plain, struct epg_cidr *out)
{
	char sh[SHOW_LEN];
	const char *s = json_string_value(e);

	if (!plain) {
		TRY(want_object(c, e));
		return key_cidr(c, e, "Cidr", AF_UNSPEC, true, out);
	}
	if (!s)
		return fail(c, "expected a string, got %s", type_name(e));
	if (parse_cidr(s, AF_UNSPEC, true, out) != CIDR_OK)
		return fail(c, "\"%s\" is not a CIDR (expected a.b.c.d/len or x:x::x/len)", show(s, sh));
	return 0;
}

static int parse_prefix_list(struct ctx *c, const json_t *o, struct epg_prefix_list *pl)
{
	const char *key = "Entries";
	const json_t *arr, *e;
	size_t i, old;

	TRY(set_origin(c, &pl->origin));
	TRY(get_dup_str(c, o, "PrefixListId", true, &pl->id));
	TRY(get_dup_str(c, o, "PrefixListName", false, &pl->name));
	TRY(get_array(c, o, key, &arr));
	if (!arr) {
		key = "Cidrs"; /* describe-prefix-lists */
		TRY(get_array(c, o, key, &arr));
	}
	/* neither: a list no rule needs is fine (describe-managed-prefix-lists
	 * prints every AWS-managed one); a rule naming it is refused */
	pl->given = arr != NULL;
	if (!json_array_size(arr))
		return 0;
	pl->entries = calloc(json_array_size(arr), sizeof(*pl->entries));
	if (!pl->entries)
		return nomem(c);
	pl->n_entries = json_array_size(arr);

	old = push_key(c, key);
	json_array_foreach(arr, i, e) {
		size_t at = push_idx(c, i);

		TRY(prefix_list_entry(c, e, key[0] == 'C', &pl->entries[i]));
		pop(c, at);
	}
	pop(c, old);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* NetworkAcls                                                               */

#define ACL_STAR_V4 32767u
#define ACL_STAR_V6 32768u

static int parse_acl_ports(struct ctx *c, const json_t *o, struct epg_acl_entry *e)
{
	const json_t *sub;
	bool has_a, has_b;
	size_t old;
	int ret;

	e->port_from = e->port_to = -1;
	e->icmp_type = e->icmp_code = -1;

	if (proto_has_ports(e->proto)) {
		ret = get_object(c, o, "PortRange", &sub);
		if (ret)
			return ret;
		if (!sub) { /* absent: every port */
			e->port_from = 0;
			e->port_to = 65535;
			return 0;
		}
		old = push_key(c, "PortRange");
		TRY(get_int(c, sub, "From", true, 0, 65535, "a port", NULL,
			    &e->port_from, &has_a));
		TRY(get_int(c, sub, "To", true, 0, 65535, "a port", NULL,
			    &e->port_to, &has_b));
		if (e->port_from > e->port_to)
			return fail_key(c, "From", "%d is greater than To %d (expected From <= To)",
					e->port_from, e->port_to);
		pop(c, old);
	} else if (proto_is_icmp(e->proto)) {
		ret = get_object(c, o, "IcmpTypeCode", &sub);
		if (ret || !sub) /* absent: every type and code */
			return ret;
		old = push_key(c, "IcmpTypeCode");
		TRY(get_int(c, sub, "Type", false, -1, 255, "an ICMP type",
			    "-1 for all types, or 0..255", &e->icmp_type, &has_a));
		TRY(get_int(c, sub, "Code", false, -1, 255, "an ICMP code",
			    "-1 for all codes, or 0..255", &e->icmp_code, &has_b));
		if (e->icmp_type == -1 && e->icmp_code != -1)
			return fail_key(c, "Code", "ICMP code %d with Type -1 (expected -1: all types means all codes)",
					e->icmp_code);
		pop(c, old);
	}
	return 0;
}

static int parse_acl_entry(struct ctx *c, const json_t *o, struct epg_acl_entry *e)
{
	const char *action, *proto, *v4, *v6;
	char sh[SHOW_LEN];
	bool present;
	int rule;

	TRY(set_origin(c, &e->origin));
	TRY(get_int(c, o, "RuleNumber", true, 1, ACL_STAR_V6, "a rule number",
		    "1..32766, or 32767/32768 for the '*' entries", &rule, &present));
	TRY(get_bool(c, o, "Egress", true, &e->egress));
	TRY(get_str(c, o, "RuleAction", true, &action));
	TRY(get_str(c, o, "Protocol", true, &proto));
	TRY(get_str(c, o, "CidrBlock", false, &v4));
	TRY(get_str(c, o, "Ipv6CidrBlock", false, &v6));
	e->rule_number = (uint32_t)rule;

	if (!strcasecmp(action, "allow"))
		e->allow = true;
	else if (strcasecmp(action, "deny"))
		return fail_key(c, "RuleAction", "\"%s\" is not a rule action (expected allow or deny)",
				show(action, sh));
	if (parse_proto(proto, &e->proto))
		return fail_key(c, "Protocol",
				"\"%s\" is not a protocol (expected -1, a number 0..255, or tcp, udp, icmp, icmpv6)",
				show(proto, sh));
	if (v4 && v6)
		return fail(c, "has both CidrBlock and Ipv6CidrBlock (expected exactly one)");
	if (!v4 && !v6)
		return fail(c, "has neither CidrBlock nor Ipv6CidrBlock (expected exactly one)");
	TRY(v4 ? key_cidr(c, o, "CidrBlock", AF_INET, true, &e->cidr) :
		 key_cidr(c, o, "Ipv6CidrBlock", AF_INET6, true, &e->cidr));

	if (e->rule_number == ACL_STAR_V4 &&
	    (!v4 || e->allow || e->proto != EPG_PROTO_ALL || e->cidr.plen))
		return fail_key(c, "RuleNumber", "32767 is the IPv4 '*' entry (expected deny, Protocol -1, CidrBlock 0.0.0.0/0)");
	if (e->rule_number == ACL_STAR_V6 &&
	    (!v6 || e->allow || e->proto != EPG_PROTO_ALL || e->cidr.plen))
		return fail_key(c, "RuleNumber", "32768 is the IPv6 '*' entry (expected deny, Protocol -1, Ipv6CidrBlock ::/0)");

	return parse_acl_ports(c, o, e);
}

struct ref {
	const char *id;
	size_t a, b;
};

static int ref_cmp(const void *pa, const void *pb)
{
	const struct ref *x = pa, *y = pb;
	int r = strcmp(x->id, y->id);

	if (r)
		return r;
	if (x->a != y->a)
		return x->a < y->a ? -1 : 1;
	return x->b < y->b ? -1 : x->b > y->b;
}

/* Rule numbers unique per (direction, family); add the missing '*'s. */
static int acl_finish(struct ctx *c, struct epg_acl *acl)
{
	struct ref *v;
	size_t i, n = acl->n_entries;
	int dir;

	if (n) {
		v = calloc(n, sizeof(*v));
		if (!v)
			return nomem(c);
		for (i = 0; i < n; i++) {
			/* id is only compared for equality: the key packs dir and family */
			v[i].id = acl->entries[i].egress ?
				  (acl->entries[i].cidr.family == AF_INET ? "e4" : "e6") :
				  (acl->entries[i].cidr.family == AF_INET ? "i4" : "i6");
			v[i].a = acl->entries[i].rule_number;
			v[i].b = i;
		}
		qsort(v, n, sizeof(*v), ref_cmp);
		for (i = 1; i < n; i++) {
			const struct epg_acl_entry *e = &acl->entries[v[i].b];

			if (strcmp(v[i].id, v[i - 1].id) || v[i].a != v[i - 1].a)
				continue;
			err_set(c->err, "%s: %s.RuleNumber: duplicate rule number %u for %s %s entries (also at %s.RuleNumber)",
				c->file, e->origin.path, e->rule_number,
				e->egress ? "outbound" : "inbound",
				e->cidr.family == AF_INET ? "IPv4" : "IPv6",
				acl->entries[v[i - 1].b].origin.path);
			free(v);
			return -EINVAL;
		}
		free(v);
	}

	for (dir = 0; dir < 2; dir++) {
		bool have4 = false, have6 = false;
		int fam;

		for (i = 0; i < acl->n_entries; i++) {
			if (acl->entries[i].egress != dir)
				continue;
			have4 |= acl->entries[i].rule_number == ACL_STAR_V4;
			have6 |= acl->entries[i].rule_number == ACL_STAR_V6;
		}
		for (fam = 0; fam < 2; fam++) {
			struct epg_acl_entry *e;
			char path[PATH_LEN + 64];

			if (fam ? have6 : have4)
				continue;
			/* room was reserved for the four '*' entries */
			e = &acl->entries[acl->n_entries++];
			e->rule_number = fam ? ACL_STAR_V6 : ACL_STAR_V4;
			e->egress = dir;
			e->allow = false;
			e->proto = EPG_PROTO_ALL;
			e->port_from = e->port_to = -1;
			e->icmp_type = e->icmp_code = -1;
			e->cidr.family = fam ? AF_INET6 : AF_INET;
			snprintf(path, sizeof(path), "%s.Entries(implied %s '*' %u)",
				 c->path, dir ? "outbound" : "inbound", e->rule_number);
			e->origin.file = strdup(c->file);
			e->origin.path = strdup(path);
			if (!e->origin.file || !e->origin.path)
				return nomem(c);
		}
	}
	return 0;
}

static int parse_acl(struct ctx *c, const json_t *o, struct epg_acl *acl)
{
	const json_t *arr, *e;
	size_t i, old, n;

	TRY(set_origin(c, &acl->origin));
	TRY(get_dup_str(c, o, "NetworkAclId", true, &acl->id));
	TRY(get_dup_str(c, o, "VpcId", false, &acl->vpc_id));
	TRY(get_bool(c, o, "IsDefault", false, &acl->is_default));
	TRY(get_id_list(c, o, "Associations", "SubnetId", &acl->subnets, &acl->n_subnets));
	TRY(get_array(c, o, "Entries", &arr));

	n = json_array_size(arr);
	acl->entries = calloc(n + 4, sizeof(*acl->entries)); /* + the '*'s */
	if (!acl->entries)
		return nomem(c);
	old = push_key(c, "Entries");
	json_array_foreach(arr, i, e) {
		size_t at = push_idx(c, i);

		acl->n_entries++;
		TRY(want_object(c, e));
		TRY(parse_acl_entry(c, e, &acl->entries[i]));
		pop(c, at);
	}
	pop(c, old);
	return acl_finish(c, acl);
}

/* ------------------------------------------------------------------------ */
/* Documents                                                                 */

#define SECTION(name, arr, count, type, fn)                                 \
	static int name(struct ctx *c, const json_t *a, struct epg_config *cfg)  \
	{                                                                        \
		size_t i, n = json_array_size(a);                                \
		const json_t *e;                                                 \
		type *p;                                                         \
									 \
		if (!n)                                                          \
			return 0;                                                \
		p = grow(cfg->arr, cfg->count, n, sizeof(*p));                   \
		if (!p)                                                          \
			return nomem(c);                                         \
		cfg->arr = p;                                                    \
		json_array_foreach(a, i, e) {                                    \
			size_t at = push_idx(c, i);                              \
									 \
			p = &cfg->arr[cfg->count++];                             \
			TRY(want_object(c, e));                                  \
			TRY(fn(c, e, p));                                        \
			pop(c, at);                                              \
		}                                                                \
		return 0;                                                        \
	}

SECTION(sec_endpoints, endpoints, n_endpoints, struct epg_endpoint, parse_endpoint)
SECTION(sec_enis, enis, n_enis, struct epg_eni, parse_eni)
SECTION(sec_groups, groups, n_groups, struct epg_group, parse_group)
SECTION(sec_prefix_lists, prefix_lists, n_prefix_lists, struct epg_prefix_list, parse_prefix_list)
SECTION(sec_acls, acls, n_acls, struct epg_acl, parse_acl)

static const struct {
	const char *key;
	int (*parse)(struct ctx *c, const json_t *a, struct epg_config *cfg);
} sections[] = {
	{ "VpcEndpoints", sec_endpoints },
	{ "NetworkInterfaces", sec_enis },
	{ "SecurityGroups", sec_groups },
	{ "PrefixLists", sec_prefix_lists },
	{ "NetworkAcls", sec_acls },
};

#define KNOWN_KEYS "VpcEndpoints, NetworkInterfaces, SecurityGroups, PrefixLists, NetworkAcls or EpgateSettings"

/* EpgateSettings.ExemptPeers: [{"Cidr": ..., "Description": ...}], the
 * addresses EC2 never filters for an interface (Amazon DNS, instance
 * metadata, time sync), made explicit. */
static int parse_exempt(struct ctx *c, const json_t *set, struct epg_config *cfg)
{
	const json_t *arr, *e;
	size_t i, old;

	TRY(get_array(c, set, "ExemptPeers", &arr));
	if (!arr || !json_array_size(arr))
		return 0;
	if (json_array_size(arr) > EPG_MAX_EXEMPT)
		return fail_key(c, "ExemptPeers", "%zu entries, at most %d", json_array_size(arr),
				EPG_MAX_EXEMPT);
	cfg->exempt = calloc(json_array_size(arr), sizeof(*cfg->exempt));
	if (!cfg->exempt)
		return nomem(c);
	old = push_key(c, "ExemptPeers");
	json_array_foreach(arr, i, e) {
		size_t at = push_idx(c, i);
		const char *desc;

		TRY(want_object(c, e));
		TRY(key_cidr(c, e, "Cidr", AF_UNSPEC, true, &cfg->exempt[i]));
		TRY(get_str(c, e, "Description", false, &desc));
		cfg->n_exempt++;
		pop(c, at);
	}
	pop(c, old);
	return 0;
}

/* EpgateSettings.ConnectionTracking: the timeouts EC2 does not document. */
static int parse_settings(struct ctx *c, const json_t *doc, struct epg_config *cfg)
{
	static const struct {
		const char *key;
		size_t off;
	} t[] = {
		{ "TcpSynTimeout", offsetof(struct epg_ct_defaults, tcp_syn) },
		{ "TcpClosingTimeout", offsetof(struct epg_ct_defaults, tcp_closing) },
		{ "TcpClosedTimeout", offsetof(struct epg_ct_defaults, tcp_closed) },
		{ "IcmpTimeout", offsetof(struct epg_ct_defaults, icmp) },
		{ "OtherTimeout", offsetof(struct epg_ct_defaults, other) },
	};
	const json_t *set, *ct;
	size_t i, old, old2;
	int ret = get_object(c, doc, "EpgateSettings", &set);

	if (ret || !set)
		return ret;
	old = push_key(c, "EpgateSettings");
	if (cfg->settings_seen)
		return fail(c, "given in more than one document (expected once)");
	cfg->settings_seen = true;
	ret = get_object(c, set, "ConnectionTracking", &ct);
	if (ret)
		return ret;
	if (ct) {
		old2 = push_key(c, "ConnectionTracking");
		for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
			bool present;
			int x;

			ret = get_int(c, ct, t[i].key, false, 1, 432000, "a valid timeout",
				      "1..432000 seconds", &x, &present);
			if (ret)
				return ret;
			if (present)
				*(uint32_t *)((char *)&cfg->ct_defaults + t[i].off) = (uint32_t)x;
		}
		pop(c, old2);
	}
	ret = parse_exempt(c, set, cfg);
	if (ret)
		return ret;
	pop(c, old);
	return 0;
}

/*
 * A document's parse tree lives in an arena: millions of small objects that
 * are allocated once, read once and dropped together. Through malloc their
 * frees cost more than the parse (glibc consolidating its fast bins); here
 * they cost nothing. jansson's allocator is process-wide: it is switched to
 * the arena only while load_doc runs, and no other thread uses jansson.
 */
#define ARENA_CHUNK (64u << 10) /* below glibc's mmap threshold: freed pages stay for reuse */

struct arena_chunk {
	struct arena_chunk *next;
	size_t used, size;
	max_align_t data[];
};

static struct arena_chunk *arena;

static void *arena_alloc(size_t n)
{
	struct arena_chunk *c = arena;

	n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	if (!c || c->size - c->used < n) {
		size_t size = n > ARENA_CHUNK / 4 ? n : ARENA_CHUNK;

		c = malloc(sizeof(*c) + size);
		if (!c)
			return NULL;
		c->size = size;
		c->used = 0;
		if (size == n && arena) { /* a big one: keep filling the current chunk */
			c->next = arena->next;
			arena->next = c;
		} else {
			c->next = arena;
			arena = c;
		}
	}
	c->used += n;
	return (char *)c->data + c->used - n;
}

static void arena_free(void *p)
{
	(void)p; /* all at once, in arena_release */
}

static void arena_release(void)
{
	while (arena) {
		struct arena_chunk *next = arena->next;

		free(arena);
		arena = next;
	}
}

static int load_doc_tree(struct epg_config *cfg, const char *name, const char *buf,
			 size_t len, struct epg_error *err);

static int load_doc(struct epg_config *cfg, const char *name, const char *buf,
		    size_t len, struct epg_error *err)
{
	json_malloc_t old_malloc;
	json_free_t old_free;
	int ret;

	json_get_alloc_funcs(&old_malloc, &old_free);
	json_set_alloc_funcs(arena_alloc, arena_free);
	ret = load_doc_tree(cfg, name, buf, len, err);
	json_set_alloc_funcs(old_malloc, old_free);
	arena_release();
	return ret;
}

static int load_doc_tree(struct epg_config *cfg, const char *name, const char *buf,
			 size_t len, struct epg_error *err)
{
	struct ctx c = { .file = name, .err = err };
	json_error_t jerr;
	json_t *doc;
	size_t i, found = 0;
	int ret = 0;

	/* DECODE_ANY: a scalar top level gets our message, not jansson's */
	doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!doc) {
		if (json_error_code(&jerr) == json_error_out_of_memory)
			return nomem(&c);
		err_set(err, "%s:%d:%d: invalid JSON: %s", name, jerr.line,
			jerr.column, jerr.text);
		return -EINVAL;
	}
	if (!json_is_object(doc)) {
		ret = fail(&c, "top level is %s (expected an object with %s)",
			   type_name(doc), KNOWN_KEYS);
		goto out_doc;
	}
	if (json_object_get(doc, "NextToken")) {
		/* what a missing page holds would go unenforced, or fall back to
		 * another network ACL, without a word */
		ret = fail_key(&c, "NextToken", "this is one page of a longer answer (the AWS CLI printed a NextToken because of --max-items or --no-paginate): fetch every page (leave those options out) and give all of them");
		goto out_doc;
	}
	for (i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		const json_t *a;
		size_t old;

		ret = get_array(&c, doc, sections[i].key, &a);
		if (ret)
			goto out_doc;
		if (!a)
			continue;
		found++;
		old = push_key(&c, sections[i].key);
		ret = sections[i].parse(&c, a, cfg);
		if (ret)
			goto out_doc;
		pop(&c, old);
	}
	if (json_object_get(doc, "EpgateSettings")) {
		found++;
		ret = parse_settings(&c, doc, cfg);
		if (ret)
			goto out_doc;
	}
	if (!found)
		ret = fail(&c, "no known top-level key (expected %s, as aws ec2 describe-* prints)",
			   KNOWN_KEYS);
out_doc:
	json_decref(doc);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Cross-references                                                          */

/* Sorted (id, document order) index of one kind of object. */
struct kind {
	const char *key; /* "GroupId" */
	const void *base;
	size_t n, stride, id_off, origin_off;
	struct ref *idx;
};

#define KIND(k, arr, count, type)                                               \
	{ .key = k, .base = cfg->arr, .n = cfg->count, .stride = sizeof(type),  \
	  .id_off = offsetof(type, id), .origin_off = offsetof(type, origin) }

static const struct epg_origin *kind_origin(const struct kind *k, size_t i)
{
	return (const void *)((const char *)k->base + i * k->stride + k->origin_off);
}

static int kind_index(struct kind *k, struct epg_error *err)
{
	size_t i;

	k->idx = calloc(k->n ? k->n : 1, sizeof(*k->idx));
	if (!k->idx) {
		err_set(err, "out of memory while checking references");
		return -ENOMEM;
	}
	for (i = 0; i < k->n; i++) {
		k->idx[i].id = *(char *const *)((const char *)k->base + i * k->stride + k->id_off);
		k->idx[i].a = i;
	}
	qsort(k->idx, k->n, sizeof(*k->idx), ref_cmp);
	for (i = 1; i < k->n; i++) {
		const struct epg_origin *o, *prev;
		char sh[SHOW_LEN];

		if (strcmp(k->idx[i].id, k->idx[i - 1].id))
			continue;
		o = kind_origin(k, k->idx[i].a);
		prev = kind_origin(k, k->idx[i - 1].a);
		err_set(err, "%s: %s.%s: duplicate %s %s (also at %s: %s.%s)",
			o->file, o->path, k->key, k->key, show(k->idx[i].id, sh),
			prev->file, prev->path, k->key);
		return -EINVAL;
	}
	return 0;
}

static int id_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct ref *)elem)->id);
}

static const struct ref *kind_find(const struct kind *k, const char *id)
{
	return bsearch(id, k->idx, k->n, sizeof(*k->idx), id_cmp);
}

static bool kind_has(const struct kind *k, const char *id)
{
	return kind_find(k, id) != NULL;
}

/* sfx: the path below the object's origin, "" when the origin is the key. */
static int missing_ref(struct epg_error *err, const struct epg_origin *o,
		       const char *sfx, const char *what, const char *id,
		       const char *section, const char *key)
{
	char sh[SHOW_LEN];

	err_set(err, "%s: %s%s: %s %s is not in the documents (expected a %s entry with that %s)",
		o->file, o->path, sfx, what, show(id, sh), section, key);
	return -EINVAL;
}

enum { K_ENDPOINT, K_ENI, K_GROUP, K_PREFIX_LIST, K_ACL, K_MAX };

/* Groups[i].GroupId of an endpoint or an interface. */
static int check_group_refs(const struct kind *k, char *const *ids, size_t n,
			    const struct epg_origin *o, struct epg_error *err)
{
	char sfx[64];
	size_t i;

	for (i = 0; i < n; i++) {
		if (kind_has(&k[K_GROUP], ids[i]))
			continue;
		snprintf(sfx, sizeof(sfx), ".Groups[%zu].GroupId", i);
		return missing_ref(err, o, sfx, "security group", ids[i],
				   "SecurityGroups", "GroupId");
	}
	return 0;
}

static int check_perm_refs(const struct kind *k, const struct epg_perm *p, size_t n,
			   struct epg_error *err)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		for (j = 0; j < p[i].n_peers; j++) {
			const struct epg_peer *peer = &p[i].peers[j];

			if (peer->kind == EPG_PEER_GROUP && !kind_has(&k[K_GROUP], peer->ref_id))
				return missing_ref(err, &peer->origin, "", "security group",
						   peer->ref_id, "SecurityGroups", "GroupId");
			if (peer->kind == EPG_PEER_PREFIX_LIST) {
				const struct ref *r = kind_find(&k[K_PREFIX_LIST], peer->ref_id);
				const struct epg_prefix_list *pl;
				char sh[SHOW_LEN];

				if (!r)
					return missing_ref(err, &peer->origin, "", "prefix list",
							   peer->ref_id, "PrefixLists", "PrefixListId");
				pl = (const struct epg_prefix_list *)k[K_PREFIX_LIST].base + r->a;
				if (!pl->given) {
					err_set(err, "%s: %s: prefix list %s (%s: %s) has neither Entries nor Cidrs: this rule would match nothing (add its entries: aws ec2 get-managed-prefix-list-entries --prefix-list-id %s, as \"Entries\" in that object; describe-prefix-lists prints \"Cidrs\")",
						peer->origin.file, peer->origin.path, show(peer->ref_id, sh),
						pl->origin.file, pl->origin.path, pl->id);
					return -EINVAL;
				}
			}
		}
	}
	return 0;
}

/* An interface belongs to one Interface endpoint: an address must name one. */
static int check_eni_owners(const struct epg_config *cfg, struct epg_error *err)
{
	struct ref *v;
	size_t i, j, n = 0;
	int ret = 0;

	for (i = 0; i < cfg->n_endpoints; i++)
		if (epg_endpoint_is_interface(&cfg->endpoints[i]))
			n += cfg->endpoints[i].n_enis;
	if (n < 2)
		return 0;
	v = calloc(n, sizeof(*v));
	if (!v) {
		err_set(err, "out of memory while checking references");
		return -ENOMEM;
	}
	n = 0;
	for (i = 0; i < cfg->n_endpoints; i++) {
		if (!epg_endpoint_is_interface(&cfg->endpoints[i]))
			continue;
		for (j = 0; j < cfg->endpoints[i].n_enis; j++)
			v[n++] = (struct ref){ cfg->endpoints[i].enis[j], i, j };
	}
	qsort(v, n, sizeof(*v), ref_cmp);
	for (i = 1; i < n; i++) {
		const struct epg_endpoint *ep = &cfg->endpoints[v[i].a];
		const struct epg_endpoint *prev = &cfg->endpoints[v[i - 1].a];
		char sh[SHOW_LEN], sh2[SHOW_LEN];

		if (strcmp(v[i].id, v[i - 1].id))
			continue;
		err_set(err, "%s: %s.NetworkInterfaceIds[%zu]: network interface %s is also named by endpoint %s at %s: %s.NetworkInterfaceIds[%zu] (expected an interface to belong to one endpoint)",
			ep->origin.file, ep->origin.path, v[i].b, show(v[i].id, sh),
			show(prev->id, sh2), prev->origin.file, prev->origin.path, v[i - 1].b);
		ret = -EINVAL;
		break;
	}
	free(v);
	return ret;
}

/* One default ACL per VPC; a subnet is associated with one ACL. */
static int check_acl_refs(const struct epg_config *cfg, struct epg_error *err)
{
	struct ref *v;
	size_t i, j, n = cfg->n_acls;
	int ret = 0;

	for (i = 0; i < cfg->n_acls; i++)
		n += cfg->acls[i].n_subnets;
	if (n < 2)
		return 0;
	v = calloc(n, sizeof(*v));
	if (!v) {
		err_set(err, "out of memory while checking references");
		return -ENOMEM;
	}

	n = 0;
	for (i = 0; i < cfg->n_acls; i++)
		if (cfg->acls[i].is_default)
			v[n++] = (struct ref){ cfg->acls[i].vpc_id ? cfg->acls[i].vpc_id : "", i, 0 };
	qsort(v, n, sizeof(*v), ref_cmp);
	for (i = 1; i < n; i++) {
		const struct epg_acl *acl = &cfg->acls[v[i].a], *prev = &cfg->acls[v[i - 1].a];
		char sh[SHOW_LEN], sh2[SHOW_LEN];

		if (strcmp(v[i].id, v[i - 1].id))
			continue;
		err_set(err, "%s: %s.IsDefault: a second default network ACL for VPC %s (the other is %s at %s: %s; expected one per VPC)",
			acl->origin.file, acl->origin.path,
			*v[i].id ? show(v[i].id, sh) : "(no VpcId)",
			show(prev->id, sh2), prev->origin.file, prev->origin.path);
		ret = -EINVAL;
		goto out_free;
	}

	n = 0;
	for (i = 0; i < cfg->n_acls; i++)
		for (j = 0; j < cfg->acls[i].n_subnets; j++)
			v[n++] = (struct ref){ cfg->acls[i].subnets[j], i, j };
	qsort(v, n, sizeof(*v), ref_cmp);
	for (i = 1; i < n; i++) {
		const struct epg_acl *acl = &cfg->acls[v[i].a], *prev = &cfg->acls[v[i - 1].a];
		char sh[SHOW_LEN], sh2[SHOW_LEN];

		if (strcmp(v[i].id, v[i - 1].id))
			continue;
		err_set(err, "%s: %s.Associations[%zu].SubnetId: subnet %s is also associated with network ACL %s at %s: %s.Associations[%zu].SubnetId (expected one ACL per subnet)",
			acl->origin.file, acl->origin.path, v[i].b, show(v[i].id, sh),
			show(prev->id, sh2), prev->origin.file, prev->origin.path, v[i - 1].b);
		ret = -EINVAL;
		goto out_free;
	}
out_free:
	free(v);
	return ret;
}

static int check_refs(const struct epg_config *cfg, struct epg_error *err)
{
	struct kind k[K_MAX] = {
		[K_ENDPOINT] = KIND("VpcEndpointId", endpoints, n_endpoints, struct epg_endpoint),
		[K_ENI] = KIND("NetworkInterfaceId", enis, n_enis, struct epg_eni),
		[K_GROUP] = KIND("GroupId", groups, n_groups, struct epg_group),
		[K_PREFIX_LIST] = KIND("PrefixListId", prefix_lists, n_prefix_lists, struct epg_prefix_list),
		[K_ACL] = KIND("NetworkAclId", acls, n_acls, struct epg_acl),
	};
	size_t i, j;
	int ret = 0;

	for (i = 0; i < K_MAX && !ret; i++)
		ret = kind_index(&k[i], err);
	if (ret)
		goto out_free;

	for (i = 0; i < cfg->n_endpoints && !ret; i++) {
		const struct epg_endpoint *ep = &cfg->endpoints[i];

		if (!epg_endpoint_is_interface(ep))
			continue; /* not enforced: references not needed */
		for (j = 0; j < ep->n_enis && !ret; j++) {
			char sfx[64];

			if (kind_has(&k[K_ENI], ep->enis[j]))
				continue;
			snprintf(sfx, sizeof(sfx), ".NetworkInterfaceIds[%zu]", j);
			ret = missing_ref(err, &ep->origin, sfx, "network interface",
					  ep->enis[j], "NetworkInterfaces",
					  "NetworkInterfaceId");
		}
		if (!ret)
			ret = check_group_refs(k, ep->groups, ep->n_groups,
					       &ep->origin, err);
	}
	for (i = 0; i < cfg->n_enis && !ret; i++)
		ret = check_group_refs(k, cfg->enis[i].groups, cfg->enis[i].n_groups,
				       &cfg->enis[i].origin, err);
	for (i = 0; i < cfg->n_groups && !ret; i++)
		if (!(ret = check_perm_refs(k, cfg->groups[i].in, cfg->groups[i].n_in, err)))
			ret = check_perm_refs(k, cfg->groups[i].out, cfg->groups[i].n_out, err);
	if (!ret)
		ret = check_eni_owners(cfg, err);
	if (!ret)
		ret = check_acl_refs(cfg, err);
out_free:
	for (i = 0; i < K_MAX; i++)
		free(k[i].idx);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                                */

int epg_config_load_buffers(struct epg_config *cfg, const char *const *names,
			    const char *const *bufs, const size_t *lens,
			    size_t n, struct epg_error *err)
{
	struct epg_config tmp = { 0 };
	struct epg_error dummy;
	size_t i;
	int ret = 0;

	if (!err)
		err = &dummy;
	err->msg[0] = '\0';
	memset(cfg, 0, sizeof(*cfg));

	for (i = 0; i < n && !ret; i++)
		ret = load_doc(&tmp, names[i], bufs[i], lens[i], err);
	if (!ret)
		ret = check_refs(&tmp, err);
	if (ret) {
		epg_config_free(&tmp);
		return ret;
	}
	*cfg = tmp;
	return 0;
}

/* Read a whole file, at most EPG_CONFIG_MAX_FILE bytes. */
static int read_file(const char *name, char **out, size_t *out_len,
		     struct epg_error *err)
{
	size_t cap = 64 << 10, len = 0;
	struct stat st;
	char *buf = NULL;
	int fd, ret;

	fd = open(name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		err_set(err, "%s: cannot open: %s", name, strerror(-ret));
		return ret;
	}
	if (fstat(fd, &st)) {
		ret = -errno;
		err_set(err, "%s: cannot stat: %s", name, strerror(-ret));
		goto out_close;
	}
	if (S_ISREG(st.st_mode)) {
		if (st.st_size > EPG_CONFIG_MAX_FILE)
			goto too_big;
		if ((size_t)st.st_size + 1 > cap) /* +1: see EOF without a realloc */
			cap = (size_t)st.st_size + 1;
	}
	for (;;) {
		ssize_t r;

		if (len == cap || !buf) {
			char *nb;

			if (buf)
				cap = cap * 2 > EPG_CONFIG_MAX_FILE + 1 ?
				      EPG_CONFIG_MAX_FILE + 1 : cap * 2;
			nb = realloc(buf, cap);
			if (!nb) {
				err_set(err, "%s: out of memory reading %zu bytes", name, cap);
				ret = -ENOMEM;
				goto out_free;
			}
			buf = nb;
		}
		r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = -errno;
			err_set(err, "%s: cannot read: %s", name, strerror(-ret));
			goto out_free;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > EPG_CONFIG_MAX_FILE)
			goto too_big;
	}
	close(fd);
	*out = buf;
	*out_len = len;
	return 0;

too_big:
	err_set(err, "%s: larger than %d MiB (expected describe-* output, which is far smaller)",
		name, EPG_CONFIG_MAX_FILE >> 20);
	ret = -EINVAL;
out_free:
	free(buf);
out_close:
	close(fd);
	return ret;
}

int epg_config_load_files(struct epg_config *cfg, const char *const *files,
			  size_t n_files, struct epg_error *err)
{
	struct epg_error dummy;
	char **bufs;
	size_t *lens, i;
	int ret = 0;

	if (!err)
		err = &dummy;
	memset(cfg, 0, sizeof(*cfg));
	bufs = calloc(n_files ? n_files : 1, sizeof(*bufs));
	lens = calloc(n_files ? n_files : 1, sizeof(*lens));
	if (!bufs || !lens) {
		err_set(err, "out of memory");
		ret = -ENOMEM;
		goto out_free;
	}
	for (i = 0; i < n_files && !ret; i++)
		ret = read_file(files[i], &bufs[i], &lens[i], err);
	if (!ret)
		ret = epg_config_load_buffers(cfg, files, (const char *const *)bufs,
					      lens, n_files, err);
out_free:
	for (i = 0; bufs && i < n_files; i++)
		free(bufs[i]);
	free(bufs);
	free(lens);
	return ret;
}

static void origin_free(struct epg_origin *o)
{
	free(o->file);
	free(o->path);
}

static void strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void perms_free(struct epg_perm *p, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		for (j = 0; j < p[i].n_peers; j++) {
			free(p[i].peers[j].ref_id);
			origin_free(&p[i].peers[j].origin);
		}
		free(p[i].peers);
		origin_free(&p[i].origin);
	}
	free(p);
}

void epg_config_free(struct epg_config *cfg)
{
	size_t i, j;

	if (!cfg)
		return;
	free(cfg->exempt);
	for (i = 0; i < cfg->n_endpoints; i++) {
		struct epg_endpoint *ep = &cfg->endpoints[i];

		free(ep->id);
		free(ep->service);
		free(ep->type);
		free(ep->vpc_id);
		free(ep->owner_id);
		free(ep->policy_document);
		strv_free(ep->enis, ep->n_enis);
		strv_free(ep->groups, ep->n_groups);
		origin_free(&ep->origin);
	}
	free(cfg->endpoints);
	for (i = 0; i < cfg->n_enis; i++) {
		struct epg_eni *eni = &cfg->enis[i];

		free(eni->id);
		free(eni->subnet_id);
		free(eni->vpc_id);
		free(eni->owner_id);
		free(eni->az);
		free(eni->addrs);
		strv_free(eni->groups, eni->n_groups);
		origin_free(&eni->origin);
	}
	free(cfg->enis);
	for (i = 0; i < cfg->n_groups; i++) {
		struct epg_group *g = &cfg->groups[i];

		free(g->id);
		free(g->name);
		free(g->vpc_id);
		perms_free(g->in, g->n_in);
		perms_free(g->out, g->n_out);
		origin_free(&g->origin);
	}
	free(cfg->groups);
	for (i = 0; i < cfg->n_prefix_lists; i++) {
		struct epg_prefix_list *pl = &cfg->prefix_lists[i];

		free(pl->id);
		free(pl->name);
		free(pl->entries);
		origin_free(&pl->origin);
	}
	free(cfg->prefix_lists);
	for (i = 0; i < cfg->n_acls; i++) {
		struct epg_acl *acl = &cfg->acls[i];

		for (j = 0; j < acl->n_entries; j++)
			origin_free(&acl->entries[j].origin);
		free(acl->entries);
		strv_free(acl->subnets, acl->n_subnets);
		free(acl->id);
		free(acl->vpc_id);
		origin_free(&acl->origin);
	}
	free(cfg->acls);
	memset(cfg, 0, sizeof(*cfg));
}

bool epg_endpoint_is_interface(const struct epg_endpoint *ep)
{
	return ep->type && !strcmp(ep->type, "Interface");
}

const struct epg_group *epg_config_group(const struct epg_config *cfg, const char *id)
{
	size_t i;

	for (i = 0; i < cfg->n_groups; i++)
		if (!strcmp(cfg->groups[i].id, id))
			return &cfg->groups[i];
	return NULL;
}

const struct epg_eni *epg_config_eni(const struct epg_config *cfg, const char *id)
{
	size_t i;

	for (i = 0; i < cfg->n_enis; i++)
		if (!strcmp(cfg->enis[i].id, id))
			return &cfg->enis[i];
	return NULL;
}

const struct epg_prefix_list *epg_config_prefix_list(const struct epg_config *cfg,
						     const char *id)
{
	size_t i;

	for (i = 0; i < cfg->n_prefix_lists; i++)
		if (!strcmp(cfg->prefix_lists[i].id, id))
			return &cfg->prefix_lists[i];
	return NULL;
}

const char *epg_cidr_str(const struct epg_cidr *c, char *buf, size_t len)
{
	char addr[INET6_ADDRSTRLEN];

	if ((c->family != AF_INET && c->family != AF_INET6) ||
	    !inet_ntop(c->family, c->addr, addr, sizeof(addr)))
		snprintf(buf, len, "(invalid)");
	else
		snprintf(buf, len, "%s/%u", addr, c->plen);
	return buf;
}
