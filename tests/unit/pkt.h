/* SPDX-License-Identifier: MIT */
/* Building test frames: Ethernet, up to N VLAN tags, IPv4 (with options) or
 * IPv6 (with extension headers), then TCP, UDP, ICMP/ICMPv6 or raw bytes. */
#ifndef EPGATE_TEST_PKT_H
#define EPGATE_TEST_PKT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

struct pkt_spec {
	int family;            /* AF_INET, AF_INET6, or 0 for an ARP frame */
	const char *src, *dst;
	uint8_t proto;         /* IPPROTO_* */
	uint16_t sport, dport; /* TCP/UDP */
	uint8_t icmp_type, icmp_code;
	int vlans;             /* number of VLAN tags (outer ones 802.1ad) */
	int ip_opt_words;      /* IPv4: extra 4-byte option words */
	int ihl_override;      /* IPv4: write this ihl instead (0 = correct) */
	int tcp_doff;          /* TCP: data offset to write (0 = 5) */
	uint16_t frag;         /* IPv4 frag_off field / IPv6 fragment header offset|M, host order */
	int v6_frag_hdr;       /* IPv6: add a fragment header */
	int v6_ext;            /* IPv6: number of hop-by-hop/dest-opts headers before L4 */
	int payload;           /* bytes of payload after L4 */
	int hop_limit;         /* IPv6: 0 = as a valid packet of its kind (255 for neighbour
				* discovery, 1 for MLD, else 64) */
	uint8_t tcp_flags;     /* TCP: flags to send (0 = SYN) */
	const struct pkt_spec *quote; /* ICMP error: the packet it quotes */
};

struct pkt {
	uint8_t buf[1600];
	size_t len;
	size_t l3_off, l4_off; /* where the IP and L4 headers start */
};

static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

struct pkt;
static inline void pkt_build(struct pkt *k, const struct pkt_spec *s);

static inline size_t l4_write(const struct pkt_spec *s, uint8_t *p)
{
	switch (s->proto) {
	case IPPROTO_TCP:
		put16(p, s->sport);
		put16(p + 2, s->dport);
		p[12] = (uint8_t)((s->tcp_doff ? s->tcp_doff : 5) << 4);
		p[13] = s->tcp_flags ? s->tcp_flags : 0x02; /* SYN */
		return 20;
	case IPPROTO_UDP:
		put16(p, s->sport);
		put16(p + 2, s->dport);
		return 8;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		p[0] = s->icmp_type;
		p[1] = s->icmp_code;
		put16(p + 4, 0x1234); /* echo id */
		if (s->quote) {
			/* the quoted packet's IP header and first 8 bytes of L4 */
			struct pkt q;
			size_t n;

			pkt_build(&q, s->quote);
			n = q.l4_off + 8 - q.l3_off;
			memcpy(p + 8, q.buf + q.l3_off, n);
			return 8 + n;
		}
		return 8;
	default:
		return 4;
	}
}

static inline void pkt_build(struct pkt *k, const struct pkt_spec *s)
{
	uint8_t *p = k->buf;
	uint16_t ethertype;
	size_t off = 12;

	memset(k, 0, sizeof(*k));
	memcpy(p, "\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02", 12);
	ethertype = s->family == AF_INET ? 0x0800 : s->family == AF_INET6 ? 0x86dd : 0x0806;
	for (int v = 0; v < s->vlans; v++) {
		put16(p + off, v + 1 < s->vlans ? 0x88a8 : 0x8100);
		put16(p + off + 2, (uint16_t)(100 + v));
		off += 4;
	}
	put16(p + off, ethertype);
	off += 2;
	k->l3_off = off;

	if (s->family == AF_INET) {
		size_t hl = 20 + 4 * (size_t)s->ip_opt_words, l4len;
		int ihl = s->ihl_override ? s->ihl_override : (int)(hl / 4);

		p[off] = (uint8_t)(0x40 | (ihl & 0xf));
		put16(p + off + 6, s->frag);
		p[off + 8] = 64;
		p[off + 9] = s->proto;
		inet_pton(AF_INET, s->src, p + off + 12);
		inet_pton(AF_INET, s->dst, p + off + 16);
		k->l4_off = off + hl;
		l4len = (s->frag & 0x1fff) ? 8 : l4_write(s, p + k->l4_off);
		put16(p + off + 2, (uint16_t)(hl + l4len + (size_t)s->payload));
		k->len = k->l4_off + l4len + (size_t)s->payload;
	} else if (s->family == AF_INET6) {
		size_t cur = off + 40, l4len;
		uint8_t *next = p + off + 6;

		p[off] = 0x60;
		p[off + 7] = (uint8_t)(s->hop_limit ? s->hop_limit :
				       s->proto != 58 ? 64 :
				       s->icmp_type >= 133 && s->icmp_type <= 137 ? 255 :
				       (s->icmp_type >= 130 && s->icmp_type <= 132) || s->icmp_type == 143 ? 1 : 64);
		inet_pton(AF_INET6, s->src, p + off + 8);
		inet_pton(AF_INET6, s->dst, p + off + 24);
		for (int e = 0; e < s->v6_ext; e++) {
			*next = e == 0 ? 0 : 60; /* hop-by-hop first, then destination options */
			next = p + cur;
			p[cur + 1] = 0; /* 8 bytes */
			p[cur + 2] = 1; /* PadN */
			p[cur + 3] = 4;
			cur += 8;
		}
		if (s->v6_frag_hdr) {
			*next = 44;
			next = p + cur;
			put16(p + cur + 2, s->frag);
			cur += 8;
		}
		*next = s->proto;
		k->l4_off = cur;
		l4len = (s->v6_frag_hdr && (s->frag & 0xfff8)) ? 8 : l4_write(s, p + cur);
		put16(p + off + 4, (uint16_t)(cur - off - 40 + l4len + (size_t)s->payload));
		k->len = cur + l4len + (size_t)s->payload;
	} else {
		memset(p + off, 0xaa, 28); /* an ARP body */
		k->l4_off = off;
		k->len = off + 28;
	}
}

#endif
