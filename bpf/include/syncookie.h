/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* SYN flood defence (docs/policy.md, "flood"). Every SYN to a defended port feeds the port's
 * token bucket; a SYN the bucket has no token for starts (or prolongs) an attack on the port,
 * which ends `hold` after the last such SYN (the hysteresis: a rate hovering at the threshold
 * does not start and stop attacks). Under attack, in prevent mode, the ingress hook (XDP, or TC
 * ingress on an interface that asks for it) answers an allowed SYN itself with a SYN-ACK whose
 * sequence number is a cookie (SipHash of the connection's addresses, ports, the client's
 * sequence number and a 69 s time slot, with the MSS, window scale and SACK the client offered in
 * its low bits), and keeps nothing: XDP with XDP_TX, TC by redirecting the skb back out (moat's
 * TC egress lets that SYN-ACK out unjudged). The client's ACK is checked at TC ingress; a valid
 * cookie for a port under attack (or whose attack ended less than a cookie's life ago) is handed
 * to the listening socket as a request socket with bpf_sk_assign_tcp_reqsk(), and the kernel
 * makes the connection from it. Neither the kernel's SYN queue nor its own syncookies
 * see the flood. In detect mode the SYNs go to the kernel as usual and are counted as what prevent
 * would have answered. */
#ifndef MOAT_SYNCOOKIE_H
#define MOAT_SYNCOOKIE_H

#include "maps.h"
#include "packet.h"
#include "classify.h"
#include "reset.h"
#include "scrub.h"
#include <bpf/bpf_core_read.h>

/* a cookie names its time slot (2^36 ns, about 69 s) by its parity: the current and the
 * previous slot are accepted, so a cookie lives 69 to 137 s */
#define COOKIE_SLOT_SHIFT 36
#define COOKIE_LIFE_NS (2ull << COOKIE_SLOT_SHIFT)
/* our side of the handshake: the window and window scale moat advertises */
#define COOKIE_WINDOW 64240
#define COOKIE_RCV_WSCALE 7
#define COOKIE_NO_WSCALE 0xf
#define TCP_OPT_BYTES 12

extern int bpf_sk_assign_tcp_reqsk(struct __sk_buff *skb, struct sock *sk,
				   struct bpf_tcp_req_attrs *attrs, int attrs__sz) __ksym __weak;

/* the MSS values a cookie can carry: the largest not above what the client offered, lowered to
 * scrub.mss */
static const __u16 cookie_mss[4] = {536, 1220, 1440, 1460};

static __always_inline void flood_count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&flood_counters, &which);

	if (c)
		*c += 1;
}

/* the defence of `port` (its own entry, else the one for every port), or NULL */
static __always_inline const struct moat_flood_port *flood_port_of(__u16 port, __u32 *key)
{
	*key = port;
	const struct moat_flood_port *f = bpf_map_lookup_elem(&flood_ports, key);
	if (f)
		return f;
	*key = 0;
	return bpf_map_lookup_elem(&flood_ports, key);
}

/* One SYN to a defended port: whether the port is under attack after it. A SYN the bucket has
 * no token for (over syn_rate with syn_burst) starts an attack or keeps it going. */
static __always_inline int flood_syn(const struct moat_flood_port *f, __u32 key, __u64 now)
{
	struct moat_flood_state *s = bpf_map_lookup_elem(&flood_state, &key);
	if (!s) {
		struct moat_flood_state init = {};
		init.credit = (__u64)f->syn_burst * f->period_ns;
		init.t = now;
		bpf_map_update_elem(&flood_state, &key, &init, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&flood_state, &key);
		if (!s)
			return 0;
	}
	__u64 full = (__u64)f->syn_burst * f->period_ns;
	int over = 0, attack;
	bpf_spin_lock(&s->lock);
	__u64 elapsed = now > s->t ? now - s->t : 0;
	if (now > s->t)
		s->t = now;
	s->credit = s->credit + elapsed > full || elapsed > full ? full : s->credit + elapsed;
	if (s->credit >= f->period_ns) {
		s->credit -= f->period_ns;
	} else {
		over = 1;
		if (now >= s->until_ns)
			s->since_ns = now;
		s->until_ns = now + f->hold_ns;
		s->over += 1;
	}
	s->syns += 1;
	attack = now < s->until_ns;
	bpf_spin_unlock(&s->lock);
	if (over)
		flood_count(MOAT_FLOOD_SYN_OVER);
	return attack;
}

static __always_inline __u64 rotl64(__u64 x, int b)
{
	return (x << b) | (x >> (64 - b));
}

#define SIPROUND(v0, v1, v2, v3)                                                                   \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = rotl64(v1, 13);                                                               \
		v1 ^= v0;                                                                          \
		v0 = rotl64(v0, 32);                                                               \
		v2 += v3;                                                                          \
		v3 = rotl64(v3, 16);                                                               \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = rotl64(v3, 21);                                                               \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = rotl64(v1, 17);                                                               \
		v1 ^= v2;                                                                          \
		v2 = rotl64(v2, 32);                                                               \
	} while (0)

/* SipHash-2-4 of six words under the daemon's key (flood_secret) */
static __always_inline __u64 siphash6(const __u64 *k, const __u64 *m)
{
	__u64 v0 = k[0] ^ 0x736f6d6570736575ull, v1 = k[1] ^ 0x646f72616e646f6dull;
	__u64 v2 = k[0] ^ 0x6c7967656e657261ull, v3 = k[1] ^ 0x7465646279746573ull;

#pragma unroll
	for (int i = 0; i < 7; i++) {
		__u64 w = i < 6 ? m[i] : 48ull << 56;
		v3 ^= w;
		SIPROUND(v0, v1, v2, v3);
		SIPROUND(v0, v1, v2, v3);
		v0 ^= w;
	}
	v2 ^= 0xff;
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

/* the cookie's hash: the client's address and port, the server's (the tuple of a packet from the
 * client; `rev`: of a packet to it), the client's initial sequence number, the time slot and the
 * cookie's data (so that its bits cannot be changed either). 0 without a key */
__noinline __u32 cookie_hash(const struct tuple *t, __u32 rev, __u32 seq, __u64 slot, __u32 data)
{
	__u32 zero = 0;
	__u64 m[6];

	if (!t)
		return 0;
	const struct moat_flood_secret *sec = bpf_map_lookup_elem(&flood_secret, &zero);
	if (!sec || !(sec->k[0] | sec->k[1]))
		return 0;
	__builtin_memcpy(&m[0], rev ? t->dst : t->src, 16);
	__builtin_memcpy(&m[2], rev ? t->src : t->dst, 16);
	__u32 ports = rev ? (__u32)t->dport << 16 | t->sport : (__u32)t->sport << 16 | t->dport;
	m[4] = (__u64)ports << 32 | seq;
	m[5] = slot << 8 | (data & 0xff);
	__u64 h = siphash6(sec->k, m);
	return (__u32)(h ^ (h >> 32));
}

/* the cookie's 7 bits of data: mss index, sack, window scale (0xf: none) */
static __always_inline __u32 cookie_data(__u32 mss_idx, __u32 sack, __u32 wscale)
{
	return (mss_idx & 3) << 5 | (sack & 1) << 4 | (wscale & 0xf);
}

/* cookie = hash[31:8] | slot parity << 7 | data */
static __always_inline __u32 cookie_make(__u32 h, __u64 slot, __u32 data)
{
	return (h & 0xffffff00) | (__u32)(slot & 1) << 7 | (data & 0x7f);
}

/* what a SYN offered: MSS (536 when absent), window scale (0xf: none), SACK permitted */
struct syn_opts {
	__u16 mss;
	__u8 wscale;
	__u8 sack;
};

/* a SYN's tcp options, copied out of the packet by the hook's wrapper */
struct syn_opt_bytes {
	__u8 b[40];
};

/* syn_opts_parse's walk through the option bytes, one option a step (bpf_loop) */
struct syn_opts_walk {
	const struct syn_opt_bytes *ob;
	struct syn_opts *o;
	__u32 n;
	__u32 i; /* the next option's first byte */
};

/* one option: 0 to go on to the next, 1 at the end of the list or a malformed option. The
 * verifier walks this once for every step bpf_loop takes, instead of once per option list the
 * twenty iterations of a plain loop could read */
static long syn_opt_step(__u64 k, void *ctx)
{
	struct syn_opts_walk *w = ctx;
	const struct syn_opt_bytes *ob = w->ob;
	struct syn_opts *o = w->o;
	__u32 i = w->i, n = w->n;

	if (i >= n || i >= 39)
		return 1;
	__u8 kind = ob->b[i];
	if (kind == 0)
		return 1;
	if (kind == 1) {
		w->i = i + 1;
		return 0;
	}
	__u8 len = ob->b[i + 1];
	if (len < 2 || i + len > n)
		return 1;
	if (kind == 2 && len == 4 && i < 36)
		o->mss = (__u16)ob->b[i + 2] << 8 | ob->b[i + 3];
	else if (kind == 3 && len == 3 && i < 37)
		o->wscale = ob->b[i + 2] > 14 ? 14 : ob->b[i + 2];
	else if (kind == 4 && len == 2)
		o->sack = 1;
	w->i = i + len;
	return 0;
}

/* What the SYN offered, from its first `n` option bytes (twenty options at most). A global
 * function: verified once */
__noinline int syn_opts_parse(const struct syn_opt_bytes *ob, __u32 n, struct syn_opts *o)
{
	if (!o)
		return 0;
	o->mss = 536;
	o->wscale = COOKIE_NO_WSCALE;
	o->sack = 0;
	if (!ob)
		return 0;
	struct syn_opts_walk w = {.ob = ob, .o = o, .n = n};
	bpf_loop(20, syn_opt_step, &w, 0);
	return 0;
}

/* how many option bytes follow the SYN's 20-byte tcp header (0 to 40) */
static __always_inline __u32 syn_opt_len(const struct pkt *p)
{
	__u32 n = p->l4_len > 20 ? p->l4_len - 20 : 0;
	return n > 40 ? 40 : n;
}

static __always_inline __u32 mss_index(__u16 mss)
{
	__u32 idx = 0;

#pragma unroll
	for (int i = 1; i < 4; i++)
		if (mss >= cookie_mss[i])
			idx = i;
	return idx;
}

/* the SYN-ACK's options: MSS, window scale and SACK permitted when the client offered them */
static __always_inline void cookie_options(__u8 *o, __u16 mss, const struct syn_opts *so)
{
	o[0] = 2;
	o[1] = 4;
	o[2] = mss >> 8;
	o[3] = mss & 0xff;
	o[4] = 1;
	o[5] = so->wscale != COOKIE_NO_WSCALE ? 3 : 1;
	o[6] = so->wscale != COOKIE_NO_WSCALE ? 3 : 1;
	o[7] = so->wscale != COOKIE_NO_WSCALE ? COOKIE_RCV_WSCALE : 1;
	o[8] = 1;
	o[9] = 1;
	o[10] = so->sack ? 4 : 1;
	o[11] = so->sack ? 2 : 1;
}

/* the tcp header of the SYN-ACK to the SYN in `p` */
static __always_inline void cookie_tcp(struct tcphdr *th, const struct pkt *p, __u32 cookie)
{
	th->source = bpf_htons(p->t.dport);
	th->dest = bpf_htons(p->t.sport);
	th->seq = bpf_htonl(cookie);
	th->ack_seq = bpf_htonl(p->seq + 1);
	/* doff 8 (32 bytes), flags SYN|ACK */
	*((__u16 *)th + 6) = bpf_htons(8 << 12 | TCP_SYN | TCP_ACK);
	th->window = bpf_htons(COOKIE_WINDOW);
	th->check = 0;
	th->urg_ptr = 0;
}

#define SA4_LEN (14 + 20 + 20 + TCP_OPT_BYTES)
#define SA6_LEN (14 + 40 + 20 + TCP_OPT_BYTES)

/* the client's MSS as the listener would have seen it: lowered to the family's scrub.mss, as
 * the SYN itself would have been on its way in */
static __always_inline __u16 cookie_client_mss(const struct pkt *p, const struct syn_opts *so)
{
	const struct moat_scrub *c = scrub_settings();
	__u16 clamp = c ? mss_clamp_of(p, c) : 0;

	return clamp && clamp < so->mss ? clamp : so->mss;
}

/* the MSS this host offers in its cookie SYN-ACK: `own` (the family's usual), lowered to the
 * family's scrub.mss, as the SYN-ACK would be on its way out */
static __always_inline __u16 cookie_own_mss(const struct pkt *p, __u16 own)
{
	const struct moat_scrub *c = scrub_settings();
	__u16 clamp = c ? mss_clamp_of(p, c) : 0;

	return clamp && clamp < own ? clamp : own;
}

/* the cookie for the SYN in `p` with the options it offered */
static __always_inline __u32 cookie_for(const struct pkt *p, const struct syn_opts *so, __u64 now)
{
	__u64 slot = now >> COOKIE_SLOT_SHIFT;
	__u32 data = cookie_data(mss_index(cookie_client_mss(p, so)), so->sack, so->wscale);
	__u32 h = cookie_hash(&p->t, 0, p->seq, slot, data);
	return cookie_make(h, slot, data);
}

/* A SYN-ACK frame built aside, then written over the SYN by the hook. The two bytes before it
 * put its ip and tcp headers on 4-byte boundaries. */
struct cookie_frame {
	__u8 pad[2];
	__u8 b[SA6_LEN];
} __attribute__((aligned(8)));

/* whether the SYN in `p` is one moat can answer: ethernet, no vlan tag in the frame, no ip
 * options or extension headers */
static __always_inline int cookie_answerable(const struct pkt *p)
{
	if (p->ext || p->l3_off != 14)
		return 0;
	return (p->t.family == 4 && p->l4_off == 34) || (p->t.family == 6 && p->l4_off == 54);
}

/* The SYN-ACK with a cookie to the SYN in `p`, every header of it, in `f` (whose first 12
 * bytes hold the SYN's macs, destination then source): its length, or -1. `partial`: the tcp
 * checksum holds the pseudo header's sum only, for the device to finish (an skb whose checksum
 * is CHECKSUM_PARTIAL). The one place both hooks' SYN-ACKs are made; a global function */
__noinline int cookie_synack_build(struct cookie_frame *f, const struct pkt *p,
				   const struct syn_opts *so, __u32 cookie, __u32 partial)
{
	__u8 mac[6];
	__u64 sum;

	if (!f || !p || !so)
		return -1;
	struct ethhdr *eth = (void *)f->b;
	__builtin_memcpy(mac, eth->h_dest, 6);
	__builtin_memcpy(eth->h_dest, eth->h_source, 6);
	__builtin_memcpy(eth->h_source, mac, 6);
	if (p->t.family == 4) {
		struct iphdr *ip = (void *)(f->b + 14);
		struct tcphdr *th = (void *)(f->b + 34);
		struct pseudo4 ph = {};
		eth->h_proto = bpf_htons(ETH_P_IP);
		*(__u8 *)ip = 0x45;
		ip->tos = 0;
		ip->tot_len = bpf_htons(20 + 20 + TCP_OPT_BYTES);
		ip->id = 0;
		ip->frag_off = bpf_htons(0x4000);
		ip->ttl = 64;
		ip->protocol = IPPROTO_TCP;
		ip->check = 0;
		__builtin_memcpy(&ip->saddr, p->t.dst + 12, 4);
		__builtin_memcpy(&ip->daddr, p->t.src + 12, 4);
		ip->check = csum_fold(bpf_csum_diff(NULL, 0, (void *)ip, 20, 0));
		cookie_tcp(th, p, cookie);
		cookie_options((__u8 *)(th + 1), cookie_own_mss(p, cookie_mss[3]), so);
		__builtin_memcpy(ph.src, p->t.dst + 12, 4);
		__builtin_memcpy(ph.dst, p->t.src + 12, 4);
		ph.proto = IPPROTO_TCP;
		ph.len = bpf_htons(20 + TCP_OPT_BYTES);
		sum = bpf_csum_diff(NULL, 0, (void *)&ph, sizeof(ph), 0);
		th->check =
		    partial
			? (__u16)~csum_fold(sum)
			: csum_fold(bpf_csum_diff(NULL, 0, (void *)th, 20 + TCP_OPT_BYTES, sum));
		return SA4_LEN;
	}
	struct ipv6hdr *ip6 = (void *)(f->b + 14);
	struct tcphdr *th = (void *)(f->b + 54);
	struct pseudo6 ph = {};
	eth->h_proto = bpf_htons(ETH_P_IPV6);
	*(__u32 *)ip6 = bpf_htonl(0x60000000);
	ip6->payload_len = bpf_htons(20 + TCP_OPT_BYTES);
	ip6->nexthdr = IPPROTO_TCP;
	ip6->hop_limit = 64;
	__builtin_memcpy(&ip6->saddr, p->t.dst, 16);
	__builtin_memcpy(&ip6->daddr, p->t.src, 16);
	cookie_tcp(th, p, cookie);
	cookie_options((__u8 *)(th + 1), cookie_own_mss(p, cookie_mss[2]), so);
	__builtin_memcpy(ph.src, p->t.dst, 16);
	__builtin_memcpy(ph.dst, p->t.src, 16);
	ph.len = bpf_htonl(20 + TCP_OPT_BYTES);
	ph.nexthdr = IPPROTO_TCP;
	sum = bpf_csum_diff(NULL, 0, (void *)&ph, sizeof(ph), 0);
	th->check = partial
			? (__u16)~csum_fold(sum)
			: csum_fold(bpf_csum_diff(NULL, 0, (void *)th, 20 + TCP_OPT_BYTES, sum));
	return SA6_LEN;
}

/* XDP: the frame holding the SYN in `p` rewritten whole as its SYN-ACK with a cookie: made the
 * SYN-ACK's length first (cut at the tail, or grown at the head, where XDP always has room).
 * 0 when done, -1 when the frame is not one moat answers. A global function */
__noinline int cookie_synack_xdp(struct xdp_md *ctx, const struct pkt *p, __u64 now)
{
	struct cookie_frame f = {};
	struct syn_opt_bytes ob = {};
	struct syn_opts so;

	if (!ctx || !p || !cookie_answerable(p))
		return -1;
	__u32 n = syn_opt_len(p);
	if (bpf_xdp_load_bytes(ctx, 0, f.b, 12) ||
	    (n && bpf_xdp_load_bytes(ctx, p->l4_off + 20, ob.b, n)))
		return -1;
	syn_opts_parse(&ob, n, &so);
	__u32 cookie = cookie_for(p, &so, now);
	if (!cookie)
		return -1;
	int want = cookie_synack_build(&f, p, &so, cookie, 0);
	if (want != SA4_LEN && want != SA6_LEN)
		return -1;
	int len = ctx->data_end - ctx->data;
	if (len > want && bpf_xdp_adjust_tail(ctx, want - len))
		return -1;
	if (len < want && bpf_xdp_adjust_head(ctx, len - want))
		return -1;
	if (want == SA4_LEN)
		return bpf_xdp_store_bytes(ctx, 0, f.b, SA4_LEN) ? -1 : 0;
	return bpf_xdp_store_bytes(ctx, 0, f.b, SA6_LEN) ? -1 : 0;
}

/* whether an allowed SYN in XDP is answered with a cookie: a bare SYN from a remote to a port
 * under attack whose defence prevents (detect: counted, the kernel answers). Sets `now` when it
 * reads the clock */
static __always_inline int cookie_wanted(const struct pkt *p, __u64 *now)
{
	__u32 key;

	if (p->t.proto != IPPROTO_TCP ||
	    (p->tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) != TCP_SYN ||
	    p->frag != FRAG_NONE)
		return 0;
	/* no flood.syn in the policy: one array read, not two hash lookups, per SYN */
	key = 0;
	__u32 *on = bpf_map_lookup_elem(&flood_on, &key);
	if (!on || !(*on & MOAT_FLOOD_ON_SYN))
		return 0;
	const struct moat_flood_port *f = flood_port_of(p->t.dport, &key);
	if (!f || !f->period_ns)
		return 0;
	flood_count(MOAT_FLOOD_SYN);
	/* the clock is read for a defended port only: other SYNs pay nothing for the defence */
	*now = bpf_ktime_get_ns();
	if (!flood_syn(f, key, *now))
		return 0;
	if (f->mode != MOAT_MODE_PREVENT) {
		flood_count(MOAT_FLOOD_COOKIE_DETECTED);
		return 0;
	}
	return 1;
}

/* the verdict the policy gives a new ingress connection opened by the packet (no owner known) */
static __always_inline int policy_allows_syn(const struct pkt *p, __u32 ifindex)
{
	__u32 zero = 0;
	struct facts f = {};
	struct moat_rule r;

	struct moat_state *st = bpf_map_lookup_elem(&state, &zero);
	if (!st)
		return 0;
	__u32 slot = *(volatile __u32 *)&st->active & 1;
	const struct moat_meta *m = &st->meta[slot];
	if (!m->generation)
		return 0;
	__builtin_memcpy(f.remote, p->t.src, 16);
	__builtin_memcpy(f.local, p->t.dst, 16);
	f.client_port = p->t.sport;
	f.server_port = p->t.dport;
	f.dir = MOAT_DIR_INGRESS;
	f.family = p->t.family;
	f.proto = p->t.proto;
	__u32 rule = classify_unowned_at(slot, m, &f, ifindex);
	rule_get(slot, rule, &r);
	return verdict_of(&r) == MOAT_EV_ALLOWED;
}

/* XDP: the SYN answered with a cookie (XDP_TX), or -1 to judge it as usual. A global
 * function: verified once */
__noinline int cookie_syn_xdp(struct xdp_md *ctx, const struct pkt *p)
{
	if (!ctx || !p)
		return -1;
	__u64 now = 0;
	if (!cookie_wanted(p, &now) || !policy_allows_syn(p, ctx->ingress_ifindex))
		return -1;
	if (cookie_synack_xdp(ctx, p, now)) {
		flood_count(MOAT_FLOOD_COOKIE_UNSENT);
		return -1;
	}
	flood_count(MOAT_FLOOD_COOKIE_SENT);
	return XDP_TX;
}

#define TC_ACT_SHOT_ 2
#define CHECKSUM_PARTIAL_ 3

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym __weak;

/* How the skb's tcp checksum must be written: 0 whole, 1 partial (CHECKSUM_PARTIAL: the device
 * or the stack finishes it from the pseudo header's sum), -1 not at all (a partial checksum
 * that is not the tcp header's, or a kernel that cannot tell) */
static __always_inline int skb_csum_kind(struct __sk_buff *skb, const struct pkt *p)
{
	if (!bpf_cast_to_kern_ctx)
		return -1;
	struct sk_buff *k = bpf_cast_to_kern_ctx(skb);
	if (BPF_CORE_READ_BITFIELD(k, ip_summed) != CHECKSUM_PARTIAL_)
		return 0;
	/* the headers stay where they are: the offsets the checksum is finished at still hold */
	if (k->csum_offset != offsetof(struct tcphdr, check) ||
	    k->csum_start != k->network_header + (p->l4_off - p->l3_off))
		return -1;
	return 1;
}

/* TC: the skb holding the SYN in `p` rewritten whole as its SYN-ACK with a cookie (cut or
 * grown at the tail to its length; the skb's checksum state kept right). 0 when done, -1 when
 * the SYN is not one moat answers (the skb untouched), -2 when the skb could not be rewritten.
 * A global function */
__noinline int cookie_synack_skb(struct __sk_buff *skb, const struct pkt *p, __u64 now)
{
	struct cookie_frame f = {};
	struct syn_opt_bytes ob = {};
	struct syn_opts so;

	/* a tag the device took off (vlan offload) would go back out on the SYN-ACK */
	if (!skb || !p || !cookie_answerable(p) || skb->vlan_present)
		return -1;
	int partial = skb_csum_kind(skb, p);
	if (partial < 0)
		return -1;
	__u32 n = syn_opt_len(p);
	if (bpf_skb_load_bytes(skb, 0, f.b, 12) ||
	    (n && bpf_skb_load_bytes(skb, p->l4_off + 20, ob.b, n)))
		return -1;
	syn_opts_parse(&ob, n, &so);
	__u32 cookie = cookie_for(p, &so, now);
	if (!cookie)
		return -1;
	int want = cookie_synack_build(&f, p, &so, cookie, partial);
	if (want != SA4_LEN && want != SA6_LEN)
		return -1;
	if (skb->len != want && bpf_skb_change_tail(skb, want, 0))
		return -1;
	/* BPF_F_RECOMPUTE_CSUM: a CHECKSUM_COMPLETE skb's sum follows the new bytes */
	if (want == SA4_LEN)
		return bpf_skb_store_bytes(skb, 0, f.b, SA4_LEN, BPF_F_RECOMPUTE_CSUM) ? -2 : 0;
	return bpf_skb_store_bytes(skb, 0, f.b, SA6_LEN, BPF_F_RECOMPUTE_CSUM) ? -2 : 0;
}

/* TC ingress: the SYN answered with a cookie sent back out of the interface it came in by
 * (TC_ACT_REDIRECT), TC_ACT_SHOT for an skb broken on the way, or -1 to judge it as usual. The
 * SYN-ACK passes moat's TC egress program, which lets it out unjudged (cookie_synack_ours).
 * A global function */
__noinline int cookie_syn_skb(struct __sk_buff *skb, const struct pkt *p)
{
	if (!skb || !p || p->t.proto != IPPROTO_TCP || !(p->tcp_flags & TCP_SYN))
		return -1;
	__u64 now = 0;
	if (!cookie_wanted(p, &now) || !policy_allows_syn(p, skb->ifindex))
		return -1;
	int r = cookie_synack_skb(skb, p, now);
	if (r == -2)
		return TC_ACT_SHOT_;
	if (r) {
		flood_count(MOAT_FLOOD_COOKIE_UNSENT);
		return -1;
	}
	flood_count(MOAT_FLOOD_COOKIE_SENT);
	return bpf_redirect(skb->ifindex, 0);
}

/* The cookie's data (mss index, sack, window scale) plus one when it is valid, else 0. `t`: the
 * tuple of a packet from the client (`rev`: to it); `seq`: the client's initial sequence number */
static __always_inline __u32 cookie_valid(const struct tuple *t, __u32 rev, __u32 cookie, __u32 seq,
					  __u64 now)
{
	__u64 slot = now >> COOKIE_SLOT_SHIFT;

	if ((slot & 1) != (cookie >> 7 & 1))
		slot -= 1;
	__u32 data = cookie & 0x7f;
	__u32 h = cookie_hash(t, rev, seq, slot, data);
	if (!h || ((h ^ cookie) & 0xffffff00))
		return 0;
	return data + 1;
}

/* the request the cookie the client's ACK in `p` returns stands for (mss, window scale, sack),
 * or 0 */
static __always_inline int cookie_check(const struct pkt *p, __u64 now,
					struct bpf_tcp_req_attrs *attrs)
{
	__u32 v = cookie_valid(&p->t, 0, p->ack - 1, p->seq - 1, now);
	if (!v)
		return 0;
	__u32 data = v - 1, ws = data & 0xf;
	__builtin_memset(attrs, 0, sizeof(*attrs));
	attrs->mss = cookie_mss[(data >> 5) & 3];
	attrs->sack_ok = (data >> 4) & 1;
	if (ws != COOKIE_NO_WSCALE) {
		attrs->wscale_ok = 1;
		attrs->snd_wscale = ws;
		attrs->rcv_wscale = COOKIE_RCV_WSCALE;
	}
	return 1;
}

/* TC egress: whether the packet in `p` is a SYN-ACK moat's TC ingress answered a SYN with: its
 * cookie checks (under the daemon's key: nothing else can make one). Such a SYN-ACK opens
 * nothing and is not judged (it would open an egress connection per SYN of the flood). A global
 * function */
__noinline int cookie_synack_ours(const struct pkt *p)
{
	__u32 zero = 0;

	if (!p || p->t.proto != IPPROTO_TCP ||
	    (p->tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) != (TCP_SYN | TCP_ACK))
		return 0;
	__u32 *on = bpf_map_lookup_elem(&flood_on, &zero);
	if (!on || !(*on & MOAT_FLOOD_ON_SYN))
		return 0;
	/* the cookie was made from the client's SYN: this packet's tuple, turned round */
	if (!cookie_valid(&p->t, 1, p->seq, p->ack - 1, bpf_ktime_get_ns()))
		return 0;
	flood_count(MOAT_FLOOD_COOKIE_EGRESS);
	return 1;
}

/* TC ingress: the client's ACK to a cookie, checked and handed to the listener as a request
 * socket. Only for a port under attack, or whose attack ended less than a cookie's life ago: a
 * valid cookie alone opens nothing on a port moat does not defend right now. A global
 * function */
__noinline int cookie_ack_skb(struct __sk_buff *skb, const struct pkt *p)
{
	struct bpf_tcp_req_attrs attrs;
	struct bpf_sock_tuple tuple = {};
	__u32 key, tlen;

	/* a kernel without the kfunc (before 6.9): the call is dead code the verifier skips, and
	 * the tc ingress program that shares this function still loads */
	if (!bpf_sk_assign_tcp_reqsk)
		return 0;
	if (!skb || !p || p->t.proto != IPPROTO_TCP ||
	    (p->tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST)) != TCP_ACK)
		return 0;
	/* no flood.syn in the policy: one array read per ACK */
	key = 0;
	__u32 *on = bpf_map_lookup_elem(&flood_on, &key);
	if (!on || !(*on & MOAT_FLOOD_ON_SYN))
		return 0;
	const struct moat_flood_port *f = flood_port_of(p->t.dport, &key);
	if (!f || f->mode != MOAT_MODE_PREVENT)
		return 0;
	struct moat_flood_state *s = bpf_map_lookup_elem(&flood_state, &key);
	__u64 now = bpf_ktime_get_ns();
	if (!s || !s->until_ns || now > s->until_ns + COOKIE_LIFE_NS)
		return 0;
	if (p->t.family == 4) {
		__builtin_memcpy(&tuple.ipv4.saddr, p->t.src + 12, 4);
		__builtin_memcpy(&tuple.ipv4.daddr, p->t.dst + 12, 4);
		tuple.ipv4.sport = bpf_htons(p->t.sport);
		tuple.ipv4.dport = bpf_htons(p->t.dport);
		tlen = sizeof(tuple.ipv4);
	} else {
		__builtin_memcpy(tuple.ipv6.saddr, p->t.src, 16);
		__builtin_memcpy(tuple.ipv6.daddr, p->t.dst, 16);
		tuple.ipv6.sport = bpf_htons(p->t.sport);
		tuple.ipv6.dport = bpf_htons(p->t.dport);
		tlen = sizeof(tuple.ipv6);
	}
	/* the packets of connections the kernel has (established, request and time-wait sockets
	 * are found before the listener) are its own: only an ACK that would reach a listener is
	 * checked */
	struct bpf_sock *skc = bpf_skc_lookup_tcp(skb, &tuple, tlen, BPF_F_CURRENT_NETNS, 0);
	if (!skc)
		return 0;
	struct bpf_sock *sk = skc->state == BPF_TCP_LISTEN ? bpf_sk_fullsock(skc) : NULL;
	if (!sk) {
		bpf_sk_release(skc);
		return 0;
	}
	if (!cookie_check(p, now, &attrs)) {
		bpf_sk_release(skc);
		flood_count(MOAT_FLOOD_COOKIE_INVALID);
		return 0;
	}
	flood_count(MOAT_FLOOD_COOKIE_VALID);
	int err = bpf_sk_assign_tcp_reqsk(skb, (struct sock *)sk, &attrs, sizeof(attrs));
	bpf_sk_release(skc);
	flood_count(err ? MOAT_FLOOD_ASSIGN_FAILED : MOAT_FLOOD_ASSIGNED);
	return !err;
}

#endif /* MOAT_SYNCOOKIE_H */
