// SPDX-License-Identifier: MIT
/*
 * livegen: epgate's own line-rate traffic generator for the live benchmark
 * (tests/bench/live.sh). It crafts one Ethernet/IPv4/UDP-or-TCP frame and has
 * the kernel send it, COUNT times, out of a veth, by BPF_PROG_TEST_RUN with
 * BPF_F_TEST_XDP_LIVE_FRAMES (Linux >= 5.18): a trivial XDP program, loaded
 * from instructions below, runs on every copy of the frame and returns
 * XDP_REDIRECT to the interface (bpf_redirect) or XDP_TX, so the frames leave
 * through the driver's ndo_xdp_xmit, without sockets, skbs or qdiscs.
 *
 * "A flood of new flows" (--flows N): the program keeps a counter in a
 * one-entry array map and writes source port SPORT + (counter % N) into each
 * frame (with --vary-dport, destination port DPORT + (counter % N)). To keep the L4 checksum right without recomputing it, it writes
 * COMP - (counter % N) into a second 16-bit word the checksum covers (UDP:
 * the first payload word; TCP: the low half of the sequence number): the two
 * words' sum, and with it the checksum, does not change.
 *
 * Runs where the interface is: `ip netns exec NS livegen -i IFACE ...`.
 * Bounded: at most COUNT frames (-n) and at most SECONDS (-t); the frames are
 * handed to the kernel CHUNK at a time and the clock is read between chunks.
 * Chunks are large (2^20 by default) because every BPF_PROG_TEST_RUN call of
 * an XDP program puts the program into the kernel's XDP dispatcher before the
 * run and takes it out after (bpf_prog_test_run_xdp -> bpf_prog_change_xdp ->
 * bpf_dispatcher_change_prog), and each change waits for an RCU grace period
 * (synchronize_rcu; seen in /proc/PID/stack): 15 to 25 ms of sleep per call
 * on this machine, which with 65536-frame calls was 90 % of the wall-clock
 * time (cpu_ns below is not affected).
 * Prints one line on stdout:
 *   sent=N elapsed_ns=T cpu_ns=C pps=P mode=live flows=F
 * where sent counts the frames the program redirected (what the receiving
 * side did with them is for the caller to read from its counters), T is the
 * wall-clock time of the sending loop and C the CPU time this process used
 * in it (CLOCK_PROCESS_CPUTIME_ID). A veth takes XDP-redirected frames into
 * its NAPI queue and polls it in softirq on the sending CPU, in this
 * process's context: C then covers the receiver's work too, without the time
 * other tasks or the hypervisor took from the CPU.
 *
 * Build (links libbpf only; needs the kernel UAPI headers):
 *   cc -O2 -g -Wall -Wextra -o build/bench/livegen tests/bench/livegen.c -lbpf
 *
 * --mode packet is the fallback where live frames are refused: the same
 * frames sent from an AF_PACKET socket with PACKET_QDISC_BYPASS, by sendmmsg
 * in batches, ports rewritten in userspace. Much slower per packet than the
 * kernel's own loop; live.sh only uses it when told to.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <net/if.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#define FRAME_MIN 60   /* Ethernet minimum without FCS */
#define FRAME_MAX 1514
#define COMP_BASE 0xffff /* the compensating word of --flows; flows <= COMP_BASE */

struct opts {
	const char *ifname;
	unsigned char smac[6], dmac[6];
	int have_smac, have_dmac;
	struct in_addr src, dst;
	int proto;             /* IPPROTO_UDP or IPPROTO_TCP */
	unsigned tcp_flags;    /* TCP flag byte */
	unsigned sport, dport;
	unsigned flows;        /* 1: one flow; N: source ports sport..sport+N-1 */
	int vary_dport;        /* --flows varies the destination port instead */
	unsigned size;         /* frame bytes without FCS */
	unsigned long long count;
	double seconds;
	unsigned batch;        /* frames per XDP batch in the kernel */
	unsigned chunk;        /* frames per BPF_PROG_TEST_RUN call */
	int action;            /* XDP_REDIRECT (bpf_redirect(ifindex)), XDP_TX, or XDP_DROP */
	int packet_mode;       /* AF_PACKET fallback */
	int quiet;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: livegen -i IFACE --dst-mac MAC --src A.B.C.D --dst A.B.C.D [options]\n"
		"  -i, --iface IFACE      interface to send from (run inside its namespace)\n"
		"      --src-mac MAC      default: IFACE's address\n"
		"      --dst-mac MAC      the receiver's address (required)\n"
		"      --src, --dst ADDR  IPv4 source and destination\n"
		"  -p, --proto udp|tcp    default udp\n"
		"      --tcp-flags F      letters of FSRPAU (e.g. S, A, PA) or a number; default A\n"
		"      --sport N --dport N   default 40000, 5201\n"
		"      --flows N          vary the source port over N values: a flood of new flows\n"
		"      --vary-dport       --flows varies the destination port instead\n"
		"      --size N           frame bytes without FCS, %d..%d (default %d)\n"
		"  -n, --count N          frames to send (default 2000000, at most 1e9)\n"
		"  -t, --seconds S        time bound (default 10, at most 120)\n"
		"      --batch N          XDP batch size in the kernel (default 64, at most 256)\n"
		"      --chunk N          frames per BPF_PROG_TEST_RUN call (default 1048576)\n"
		"      --action redirect|tx|drop   how the program sends (default redirect);\n"
		"                         drop sends nothing: the generator's own cost\n"
		"      --mode live|packet live frames (default) or the AF_PACKET fallback\n"
		"  -q, --quiet            no diagnostics on stderr\n",
		FRAME_MIN, FRAME_MAX, FRAME_MIN);
}

static int parse_mac(const char *s, unsigned char *mac)
{
	unsigned v[6];
	char end;
	int i;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &end) != 6)
		return -1;
	for (i = 0; i < 6; i++) {
		if (v[i] > 255)
			return -1;
		mac[i] = (unsigned char)v[i];
	}
	return 0;
}

static int parse_ull(const char *s, unsigned long long lo, unsigned long long hi,
		     unsigned long long *out)
{
	char *end;
	double d;

	errno = 0;
	/* accept 2000000, 2e6, 2,000,000 */
	char buf[64];
	size_t j = 0;
	for (const char *c = s; *c && j < sizeof(buf) - 1; c++)
		if (*c != ',' && *c != '_')
			buf[j++] = *c;
	buf[j] = 0;
	d = strtod(buf, &end);
	if (errno || end == buf || *end || d < (double)lo || d > (double)hi || d != (unsigned long long)d)
		return -1;
	*out = (unsigned long long)d;
	return 0;
}

static int parse_tcp_flags(const char *s, unsigned *out)
{
	unsigned long long n;
	unsigned f = 0;

	if (!parse_ull(s, 0, 255, &n)) {
		*out = (unsigned)n;
		return 0;
	}
	for (; *s; s++) {
		switch (*s) {
		case 'F': case 'f': f |= 0x01; break;
		case 'S': case 's': f |= 0x02; break;
		case 'R': case 'r': f |= 0x04; break;
		case 'P': case 'p': f |= 0x08; break;
		case 'A': case 'a': f |= 0x10; break;
		case 'U': case 'u': f |= 0x20; break;
		default: return -1;
		}
	}
	*out = f;
	return 0;
}

/* One's complement sum of 16-bit big-endian words. */
static uint32_t csum_add(uint32_t sum, const void *data, size_t len)
{
	const unsigned char *p = data;

	while (len > 1) {
		sum += (uint32_t)(p[0] << 8 | p[1]);
		p += 2;
		len -= 2;
	}
	if (len)
		sum += (uint32_t)(p[0] << 8);
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Build the frame; returns its length. *sport_off and *comp_off: where the
 * source port and the compensating word are. */
static size_t build_frame(const struct opts *o, unsigned char *f, unsigned *sport_off,
			  unsigned *comp_off)
{
	struct ethhdr *eth = (struct ethhdr *)f;
	struct iphdr *ip = (struct iphdr *)(f + sizeof(*eth));
	unsigned char *l4 = (unsigned char *)(ip + 1);
	size_t len = o->size, l4len = len - sizeof(*eth) - sizeof(*ip);
	uint32_t sum;

	memset(f, 0, len);
	memcpy(eth->h_dest, o->dmac, 6);
	memcpy(eth->h_source, o->smac, 6);
	eth->h_proto = htons(ETH_P_IP);

	ip->version = 4;
	ip->ihl = 5;
	ip->tot_len = htons((uint16_t)(len - sizeof(*eth)));
	ip->id = htons(0x4c47);
	ip->frag_off = htons(0x4000); /* DF */
	ip->ttl = 64;
	ip->protocol = (uint8_t)o->proto;
	ip->saddr = o->src.s_addr;
	ip->daddr = o->dst.s_addr;
	ip->check = htons(csum_fold(csum_add(0, ip, sizeof(*ip))));

	/* pseudo-header */
	sum = csum_add(0, &ip->saddr, 8);
	sum += (uint32_t)o->proto + (uint32_t)l4len;

	if (o->proto == IPPROTO_UDP) {
		struct udphdr *uh = (struct udphdr *)l4;
		unsigned char *pl = l4 + sizeof(*uh);

		uh->source = htons((uint16_t)o->sport);
		uh->dest = htons((uint16_t)o->dport);
		uh->len = htons((uint16_t)l4len);
		pl[0] = COMP_BASE >> 8;
		pl[1] = COMP_BASE & 0xff;
		for (size_t i = 2; i < l4len - sizeof(*uh); i++)
			pl[i] = (unsigned char)('a' + i % 26);
		sum = csum_add(sum, l4, l4len);
		uh->check = htons(csum_fold(sum));
		if (!uh->check)
			uh->check = 0xffff;
		*comp_off = (unsigned)(pl - f);
	} else {
		struct tcphdr *th = (struct tcphdr *)l4;

		th->source = htons((uint16_t)o->sport);
		th->dest = htons((uint16_t)o->dport);
		th->seq = htonl(0x4c470000u | COMP_BASE);
		th->ack_seq = (o->tcp_flags & 0x10) ? htonl(0x1000) : 0;
		th->doff = 5;
		((unsigned char *)th)[13] = (unsigned char)o->tcp_flags;
		th->window = htons(65535);
		sum = csum_add(sum, l4, l4len);
		th->check = htons(csum_fold(sum));
		*comp_off = (unsigned)((unsigned char *)&th->seq + 2 - f);
	}
	*sport_off = (unsigned)(l4 - f);
	return len;
}

/* ---- the XDP program, as instructions ------------------------------------ */

#define INSN(c, d, s, o, i) ((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })
#define MOV64_REG(d, s)      INSN(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
#define MOV64_IMM(d, i)      INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, i)
#define ALU64_IMM(op, d, i)  INSN(BPF_ALU64 | (op) | BPF_K, d, 0, 0, i)
#define ALU64_REG(op, d, s)  INSN(BPF_ALU64 | (op) | BPF_X, d, s, 0, 0)
#define TO_BE16(d)           INSN(BPF_ALU | BPF_END | BPF_TO_BE, d, 0, 0, 16)
#define LDX(sz, d, s, o)     INSN(BPF_LDX | (sz) | BPF_MEM, d, s, o, 0)
#define STX(sz, d, s, o)     INSN(BPF_STX | (sz) | BPF_MEM, d, s, o, 0)
#define ST_IMM(sz, d, o, i)  INSN(BPF_ST | (sz) | BPF_MEM, d, 0, o, i)
#define JMP_IMM(op, d, i, o) INSN(BPF_JMP | (op) | BPF_K, d, 0, o, i)
#define JMP_REG(op, d, s, o) INSN(BPF_JMP | (op) | BPF_X, d, s, o, 0)
#define CALL(f)              INSN(BPF_JMP | BPF_CALL, 0, 0, 0, f)
#define EXIT()               INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
/* two instructions: the map fd in the first, zero in the second */
#define LD_MAP_FD_LO(d, fd)  INSN(BPF_LD | BPF_DW | BPF_IMM, d, BPF_PSEUDO_MAP_FD, 0, fd)
#define LD_MAP_FD_HI()       INSN(0, 0, 0, 0, 0)

static int load_prog(const struct opts *o, int ifindex, int map_fd, unsigned sport_off,
		     unsigned comp_off)
{
	struct bpf_insn prog[64];
	int n = 0, fix, fd;
	static char log[65536];

	if (o->flows > 1) {
		prog[n++] = MOV64_REG(BPF_REG_6, BPF_REG_1);                 /* r6 = ctx */
		prog[n++] = ST_IMM(BPF_W, BPF_REG_10, -4, 0);                /* key = 0 */
		prog[n++] = MOV64_REG(BPF_REG_2, BPF_REG_10);
		prog[n++] = ALU64_IMM(BPF_ADD, BPF_REG_2, -4);
		prog[n++] = LD_MAP_FD_LO(BPF_REG_1, map_fd);
		prog[n++] = LD_MAP_FD_HI();
		prog[n++] = CALL(BPF_FUNC_map_lookup_elem);
		fix = n;
		prog[n++] = JMP_IMM(BPF_JEQ, BPF_REG_0, 0, 0);               /* -> send */
		prog[n++] = LDX(BPF_DW, BPF_REG_7, BPF_REG_0, 0);            /* r7 = counter */
		prog[n++] = MOV64_REG(BPF_REG_1, BPF_REG_7);
		prog[n++] = ALU64_IMM(BPF_ADD, BPF_REG_1, 1);
		prog[n++] = STX(BPF_DW, BPF_REG_0, BPF_REG_1, 0);            /* counter++ */
		prog[n++] = ALU64_IMM(BPF_MOD, BPF_REG_7, (int)o->flows);    /* k = counter % flows */
		prog[n++] = LDX(BPF_W, BPF_REG_2, BPF_REG_6, offsetof(struct xdp_md, data));
		prog[n++] = LDX(BPF_W, BPF_REG_3, BPF_REG_6, offsetof(struct xdp_md, data_end));
		prog[n++] = MOV64_REG(BPF_REG_4, BPF_REG_2);
		prog[n++] = ALU64_IMM(BPF_ADD, BPF_REG_4, (int)(comp_off > sport_off ? comp_off : sport_off) + 2);
		prog[n++] = JMP_REG(BPF_JGT, BPF_REG_4, BPF_REG_3, 0);       /* -> send */
		int fix2 = n - 1;
		prog[n++] = MOV64_REG(BPF_REG_5, BPF_REG_7);
		prog[n++] = ALU64_IMM(BPF_ADD, BPF_REG_5, (int)o->sport);
		prog[n++] = TO_BE16(BPF_REG_5);
		prog[n++] = STX(BPF_H, BPF_REG_2, BPF_REG_5, (short)sport_off); /* sport = SPORT + k */
		prog[n++] = MOV64_IMM(BPF_REG_5, COMP_BASE);
		prog[n++] = ALU64_REG(BPF_SUB, BPF_REG_5, BPF_REG_7);
		prog[n++] = TO_BE16(BPF_REG_5);
		prog[n++] = STX(BPF_H, BPF_REG_2, BPF_REG_5, (short)comp_off);  /* comp = COMP - k */
		prog[fix].off = (short)(n - fix - 1);
		prog[fix2].off = (short)(n - fix2 - 1);
	}
	/* send: */
	if (o->action == XDP_REDIRECT) {
		prog[n++] = MOV64_IMM(BPF_REG_1, ifindex);
		prog[n++] = MOV64_IMM(BPF_REG_2, 0);
		prog[n++] = CALL(BPF_FUNC_redirect);
	} else {
		prog[n++] = MOV64_IMM(BPF_REG_0, o->action);
	}
	prog[n++] = EXIT();

	LIBBPF_OPTS(bpf_prog_load_opts, lo, .log_buf = log, .log_size = sizeof(log), .log_level = 0);
	fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "livegen", "GPL", prog, (size_t)n, &lo);
	if (fd < 0) {
		int err = errno;

		/* again with the verifier's log, to say why */
		lo.log_level = 1;
		log[0] = 0;
		if (bpf_prog_load(BPF_PROG_TYPE_XDP, "livegen", "GPL", prog, (size_t)n, &lo) < 0)
			fprintf(stderr, "livegen: verifier log:\n%s\n", log);
		errno = err;
	}
	return fd;
}

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
static double now_s(void) { return clock_s(CLOCK_MONOTONIC); }
/* CPU time of this process: what it ran, softirq work done in its context
 * included (the receive path of a veth runs there), time other tasks or the
 * hypervisor took excluded */
static double cpu_s(void) { return clock_s(CLOCK_PROCESS_CPUTIME_ID); }

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static int run_live(const struct opts *o, int ifindex, const unsigned char *frame, size_t len,
		    unsigned sport_off, unsigned comp_off, unsigned long long *sent, double *elapsed,
		    double *cpu)
{
	int map_fd = -1, prog_fd;
	double t0, c0, deadline;

	if (o->flows > 1) {
		map_fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "livegen_ctr", 4, 8, 1, NULL);
		if (map_fd < 0) {
			fprintf(stderr, "livegen: bpf_map_create: %s\n", strerror(errno));
			return -1;
		}
	}
	prog_fd = load_prog(o, ifindex, map_fd, sport_off, comp_off);
	if (prog_fd < 0) {
		fprintf(stderr, "livegen: loading the XDP program: %s\n", strerror(errno));
		return -1;
	}

	/* data and data_end are offsets into data_in here; the kernel wants
	 * data_end == the frame's length (EINVAL otherwise) */
	struct xdp_md ctx = { .data = 0, .data_end = (__u32)len,
			      .ingress_ifindex = (__u32)ifindex, .rx_queue_index = 0 };
	*sent = 0;
	c0 = cpu_s();
	t0 = now_s();
	deadline = t0 + o->seconds;
	while (*sent < o->count && !stop) {
		unsigned long long left = o->count - *sent;
		LIBBPF_OPTS(bpf_test_run_opts, ro,
			.data_in = frame, .data_size_in = (__u32)len,
			.ctx_in = &ctx, .ctx_size_in = sizeof(ctx),
			.repeat = (__u32)(left < o->chunk ? left : o->chunk),
			.flags = BPF_F_TEST_XDP_LIVE_FRAMES,
			.batch_size = o->batch);

		if (bpf_prog_test_run_opts(prog_fd, &ro) < 0) {
			if (errno == EINTR)
				break;
			fprintf(stderr, "livegen: BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES: %s%s\n",
				strerror(errno),
				errno == EINVAL ? " (kernel older than 5.18, or a bad frame/context)" : "");
			close(prog_fd);
			if (map_fd >= 0)
				close(map_fd);
			return -1;
		}
		*sent += ro.repeat;
		if (now_s() >= deadline)
			break;
	}
	*elapsed = now_s() - t0;
	*cpu = cpu_s() - c0;
	close(prog_fd);
	if (map_fd >= 0)
		close(map_fd);
	return 0;
}

/* The fallback: AF_PACKET, qdisc bypassed, sendmmsg of PKT_BATCH frames. */
#define PKT_BATCH 256
static int run_packet(const struct opts *o, int ifindex, const unsigned char *frame, size_t len,
		      unsigned sport_off, unsigned comp_off, unsigned long long *sent, double *elapsed,
		      double *cpu)
{
	static unsigned char bufs[PKT_BATCH][FRAME_MAX];
	struct mmsghdr msgs[PKT_BATCH];
	struct iovec iov[PKT_BATCH];
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP),
				   .sll_ifindex = ifindex, .sll_halen = 6 };
	int fd, one = 1, i;
	unsigned long long k = 0;
	double t0, c0, deadline;

	fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0) {
		fprintf(stderr, "livegen: AF_PACKET socket: %s\n", strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) < 0)
		fprintf(stderr, "livegen: PACKET_QDISC_BYPASS: %s (going on through the qdisc)\n",
			strerror(errno));
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		fprintf(stderr, "livegen: bind to ifindex %d: %s\n", ifindex, strerror(errno));
		close(fd);
		return -1;
	}
	memcpy(sll.sll_addr, o->dmac, 6);
	for (i = 0; i < PKT_BATCH; i++) {
		memcpy(bufs[i], frame, len);
		iov[i] = (struct iovec){ .iov_base = bufs[i], .iov_len = len };
		msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	*sent = 0;
	c0 = cpu_s();
	t0 = now_s();
	deadline = t0 + o->seconds;
	while (*sent < o->count && !stop) {
		unsigned long long left = o->count - *sent;
		unsigned n = left < PKT_BATCH ? (unsigned)left : PKT_BATCH;
		int r;

		if (o->flows > 1) {
			for (i = 0; i < (int)n; i++, k++) {
				unsigned d = (unsigned)(k % o->flows), sp = o->sport + d, c = COMP_BASE - d;

				bufs[i][sport_off] = (unsigned char)(sp >> 8);
				bufs[i][sport_off + 1] = (unsigned char)sp;
				bufs[i][comp_off] = (unsigned char)(c >> 8);
				bufs[i][comp_off + 1] = (unsigned char)c;
			}
		}
		r = sendmmsg(fd, msgs, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				break;
			if (errno == ENOBUFS || errno == EAGAIN)
				continue;
			fprintf(stderr, "livegen: sendmmsg: %s\n", strerror(errno));
			close(fd);
			return -1;
		}
		*sent += (unsigned)r;
		if ((*sent & 0xffff) < PKT_BATCH && now_s() >= deadline)
			break;
	}
	*elapsed = now_s() - t0;
	*cpu = cpu_s() - c0;
	close(fd);
	return 0;
}

static int iface_mac(const char *ifname, unsigned char *mac)
{
	struct ifreq ifr = {};
	int fd = socket(AF_INET, SOCK_DGRAM, 0), rc;

	if (fd < 0)
		return -1;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	rc = ioctl(fd, SIOCGIFHWADDR, &ifr);
	close(fd);
	if (rc < 0)
		return -1;
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	return 0;
}

int main(int argc, char **argv)
{
	enum { O_SMAC = 256, O_DMAC, O_SRC, O_DST, O_FLAGS, O_SPORT, O_DPORT, O_FLOWS, O_VARY_DPORT,
	       O_SIZE, O_BATCH, O_CHUNK, O_ACTION, O_MODE };
	static const struct option lopts[] = {
		{ "iface", required_argument, 0, 'i' }, { "src-mac", required_argument, 0, O_SMAC },
		{ "dst-mac", required_argument, 0, O_DMAC }, { "src", required_argument, 0, O_SRC },
		{ "dst", required_argument, 0, O_DST }, { "proto", required_argument, 0, 'p' },
		{ "tcp-flags", required_argument, 0, O_FLAGS }, { "sport", required_argument, 0, O_SPORT },
		{ "dport", required_argument, 0, O_DPORT }, { "flows", required_argument, 0, O_FLOWS },
		{ "vary-dport", no_argument, 0, O_VARY_DPORT },
		{ "size", required_argument, 0, O_SIZE }, { "count", required_argument, 0, 'n' },
		{ "seconds", required_argument, 0, 't' }, { "batch", required_argument, 0, O_BATCH },
		{ "chunk", required_argument, 0, O_CHUNK }, { "action", required_argument, 0, O_ACTION },
		{ "mode", required_argument, 0, O_MODE }, { "quiet", no_argument, 0, 'q' },
		{ "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
	};
	struct opts o = { .proto = IPPROTO_UDP, .tcp_flags = 0x10, .sport = 40000, .dport = 5201,
			  .flows = 1, .size = FRAME_MIN, .count = 2000000, .seconds = 10,
			  .batch = 64, .chunk = 1u << 20, .action = XDP_REDIRECT };
	unsigned char frame[FRAME_MAX];
	unsigned long long v, sent = 0;
	unsigned sport_off, comp_off;
	int c, ifindex, have_src = 0, have_dst = 0, rc;
	double elapsed = 0, cpu = 0;
	size_t len;

	while ((c = getopt_long(argc, argv, "i:p:n:t:qh", lopts, NULL)) != -1) {
		switch (c) {
		case 'i': o.ifname = optarg; break;
		case O_SMAC:
			if (parse_mac(optarg, o.smac)) goto bad;
			o.have_smac = 1;
			break;
		case O_DMAC:
			if (parse_mac(optarg, o.dmac)) goto bad;
			o.have_dmac = 1;
			break;
		case O_SRC:
			if (inet_pton(AF_INET, optarg, &o.src) != 1) goto bad;
			have_src = 1;
			break;
		case O_DST:
			if (inet_pton(AF_INET, optarg, &o.dst) != 1) goto bad;
			have_dst = 1;
			break;
		case 'p':
			if (!strcmp(optarg, "udp")) o.proto = IPPROTO_UDP;
			else if (!strcmp(optarg, "tcp")) o.proto = IPPROTO_TCP;
			else goto bad;
			break;
		case O_FLAGS: if (parse_tcp_flags(optarg, &o.tcp_flags)) goto bad; break;
		case O_SPORT: if (parse_ull(optarg, 1, 65535, &v)) goto bad; o.sport = (unsigned)v; break;
		case O_DPORT: if (parse_ull(optarg, 0, 65535, &v)) goto bad; o.dport = (unsigned)v; break;
		case O_FLOWS: if (parse_ull(optarg, 1, COMP_BASE, &v)) goto bad; o.flows = (unsigned)v; break;
		case O_VARY_DPORT: o.vary_dport = 1; break;
		case O_SIZE: if (parse_ull(optarg, FRAME_MIN, FRAME_MAX, &v)) goto bad; o.size = (unsigned)v; break;
		case 'n': if (parse_ull(optarg, 1, 1000000000ULL, &o.count)) goto bad; break;
		case 't':
			o.seconds = strtod(optarg, NULL);
			if (!(o.seconds > 0 && o.seconds <= 120)) goto bad;
			break;
		case O_BATCH: if (parse_ull(optarg, 1, 256, &v)) goto bad; o.batch = (unsigned)v; break;
		case O_CHUNK: if (parse_ull(optarg, 1, 1u << 24, &v)) goto bad; o.chunk = (unsigned)v; break;
		case O_ACTION:
			if (!strcmp(optarg, "redirect")) o.action = XDP_REDIRECT;
			else if (!strcmp(optarg, "tx")) o.action = XDP_TX;
			else if (!strcmp(optarg, "drop")) o.action = XDP_DROP;
			else goto bad;
			break;
		case O_MODE:
			if (!strcmp(optarg, "live")) o.packet_mode = 0;
			else if (!strcmp(optarg, "packet")) o.packet_mode = 1;
			else goto bad;
			break;
		case 'q': o.quiet = 1; break;
		case 'h': usage(stdout); return 0;
		default: goto usage_err;
		}
	}
	if (optind != argc || !o.ifname || !o.have_dmac || !have_src || !have_dst)
		goto usage_err;
	if ((o.vary_dport ? o.dport : o.sport) + o.flows - 1 > 65535) {
		fprintf(stderr, "livegen: --%s %u + --flows %u goes past port 65535\n",
			o.vary_dport ? "dport" : "sport", o.vary_dport ? o.dport : o.sport, o.flows);
		return 2;
	}
	ifindex = (int)if_nametoindex(o.ifname);
	if (!ifindex) {
		fprintf(stderr, "livegen: no interface %s here (run it in the interface's namespace)\n",
			o.ifname);
		return 2;
	}
	if (!o.have_smac && iface_mac(o.ifname, o.smac)) {
		fprintf(stderr, "livegen: the address of %s: %s\n", o.ifname, strerror(errno));
		return 1;
	}
	len = build_frame(&o, frame, &sport_off, &comp_off);
	if (o.vary_dport) { /* the varied word is the next one, from the destination port */
		sport_off += 2;
		o.sport = o.dport;
	}

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
	if (o.packet_mode)
		rc = run_packet(&o, ifindex, frame, len, sport_off, comp_off, &sent, &elapsed, &cpu);
	else
		rc = run_live(&o, ifindex, frame, len, sport_off, comp_off, &sent, &elapsed, &cpu);
	if (rc)
		return 1;
	printf("sent=%llu elapsed_ns=%.0f cpu_ns=%.0f pps=%.0f mode=%s flows=%u\n", sent, elapsed * 1e9,
	       cpu * 1e9, elapsed > 0 ? (double)sent / elapsed : 0.0, o.packet_mode ? "packet" : "live",
	       o.flows);
	if (!o.quiet)
		fprintf(stderr, "livegen: %llu frames of %zu bytes from %s in %.3f s (%.2f Mpps)\n",
			sent, len, o.ifname, elapsed, elapsed > 0 ? (double)sent / elapsed / 1e6 : 0.0);
	return 0;

bad:
	fprintf(stderr, "livegen: bad value for option: %s\n", optarg ? optarg : "?");
usage_err:
	usage(stderr);
	return 2;
}
