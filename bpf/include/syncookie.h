/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* SYN flood defence (docs/policy.md, "flood"). Every SYN to a defended port feeds the port's
 * token bucket; a SYN the bucket has no token for starts (or prolongs) an attack on the port,
 * which ends `hold` after the last such SYN (the hysteresis: a rate hovering at the threshold
 * does not start and stop attacks). Under attack, in prevent mode, XDP answers an allowed SYN
 * itself with a SYN-ACK whose sequence number is a cookie (SipHash of the connection's addresses,
 * ports, the client's sequence number and a 69 s time slot, with the MSS, window scale and SACK
 * the client offered in its low bits), and keeps nothing. The client's ACK is checked at TC
 * ingress; a valid cookie for a port under attack (or whose attack ended less than a cookie's life
 * ago) is handed to the listening socket as a request socket with bpf_sk_assign_tcp_reqsk(), and
 * the kernel makes the connection from it. Neither the kernel's SYN queue nor its own syncookies
 * see the flood. In detect mode the SYNs go to the kernel as usual and are counted as what prevent
 * would have answered. */
#ifndef MOAT_SYNCOOKIE_H
#define MOAT_SYNCOOKIE_H

#include "maps.h"
#include "packet.h"
#include "classify.h"
#include "reset.h"

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

/* the MSS values a cookie can carry: the largest not above what the client offered */
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
 * client), the client's initial sequence number, the time slot and the cookie's data (so that
 * its bits cannot be changed either). 0 without a key */
__noinline __u32 cookie_hash(const struct tuple *t, __u32 seq, __u64 slot, __u32 data)
{
	__u32 zero = 0;
	__u64 m[6];

	if (!t)
		return 0;
	const struct moat_flood_secret *sec = bpf_map_lookup_elem(&flood_secret, &zero);
	if (!sec || !(sec->k[0] | sec->k[1]))
		return 0;
	__builtin_memcpy(&m[0], t->src, 16);
	__builtin_memcpy(&m[2], t->dst, 16);
	m[4] = (__u64)((__u32)t->sport << 16 | t->dport) << 32 | seq;
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

#ifndef __arg_ctx
#define __arg_ctx __attribute__((btf_decl_tag("arg:ctx")))
#endif

/* the options of the SYN whose tcp header starts at l4 (34 or 54). A global function: verified
 * once, whatever the caller's paths */
__noinline int syn_opts_xdp(struct xdp_md *ctx __arg_ctx, __u32 l4, __u32 hlen, struct syn_opts *o)
{
	__u32 i = 20;

	if (!o)
		return 0;
	o->mss = 536;
	o->wscale = COOKIE_NO_WSCALE;
	o->sack = 0;
	if (l4 != 34 && l4 != 54)
		return 0;
	void *tcp = (void *)(long)ctx->data + l4, *end = (void *)(long)ctx->data_end;
	for (int n = 0; n < 20; n++) {
		if (i >= hlen || i > 56)
			return 0;
		__u8 *c = tcp + i;
		if ((void *)(c + 1) > end || c[0] == 0)
			return 0;
		if (c[0] == 1) {
			i += 1;
			continue;
		}
		if ((void *)(c + 2) > end || c[1] < 2)
			return 0;
		if (c[0] == 2 && c[1] == 4 && (void *)(c + 4) <= end)
			o->mss = (__u16)c[2] << 8 | c[3];
		else if (c[0] == 3 && c[1] == 3 && (void *)(c + 3) <= end)
			o->wscale = c[2] > 14 ? 14 : c[2];
		else if (c[0] == 4 && c[1] == 2)
			o->sack = 1;
		i += c[1];
	}
	return 0;
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

/* the cookie for the SYN in `p` with the options it offered */
static __always_inline __u32 cookie_for(const struct pkt *p, const struct syn_opts *so, __u64 now)
{
	__u64 slot = now >> COOKIE_SLOT_SHIFT;
	__u32 data = cookie_data(mss_index(so->mss), so->sack, so->wscale);
	__u32 h = cookie_hash(&p->t, p->seq, slot, data);
	return cookie_make(h, slot, data);
}

/* The frame holding the SYN in `p` rewritten whole as its SYN-ACK with a cookie: made `want`
 * bytes long first (cut at the tail, or grown at the head, where XDP always has room), then
 * every header written from the SYN's facts. Only SYNs without ip options or extension headers
 * and without a vlan tag; 0 when done, -1 when the frame is not one moat answers. A global
 * function: verified once */
__noinline int cookie_synack_xdp(struct xdp_md *ctx, const struct pkt *p, __u64 now)
{
	struct syn_opts so;
	__u8 mac[12];

	if (!ctx || !p || p->ext || p->l3_off != 14)
		return -1;
	if ((p->t.family == 4 && p->l4_off != 34) || (p->t.family == 6 && p->l4_off != 54))
		return -1;
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	/* a constant offset: the verifier bounds the option reads by it */
	__u32 l4 = p->t.family == 4 ? 34 : 54;
	if (data + l4 + 20 > end)
		return -1;
	syn_opts_xdp(ctx, l4, p->l4_len, &so);
	__builtin_memcpy(mac, data, 12);
	__u32 cookie = cookie_for(p, &so, now);
	if (!cookie)
		return -1;
	int want = p->t.family == 4 ? SA4_LEN : SA6_LEN;
	int len = end - data;
	if (len > want && bpf_xdp_adjust_tail(ctx, want - len))
		return -1;
	if (len < want && bpf_xdp_adjust_head(ctx, len - want))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	__u64 sum;

	if (data + SA6_LEN > end && data + SA4_LEN > end)
		return -1;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return -1;
	__builtin_memcpy(eth->h_dest, mac + 6, 6);
	__builtin_memcpy(eth->h_source, mac, 6);
	if (p->t.family == 4) {
		if (data + SA4_LEN > end)
			return -1;
		struct iphdr *ip = data + 14;
		struct tcphdr *th = data + 34;
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
		cookie_options((__u8 *)(th + 1), cookie_mss[3], &so);
		__builtin_memcpy(ph.src, p->t.dst + 12, 4);
		__builtin_memcpy(ph.dst, p->t.src + 12, 4);
		ph.proto = IPPROTO_TCP;
		ph.len = bpf_htons(20 + TCP_OPT_BYTES);
		sum = bpf_csum_diff(NULL, 0, (void *)&ph, sizeof(ph), 0);
		th->check = csum_fold(bpf_csum_diff(NULL, 0, (void *)th, 20 + TCP_OPT_BYTES, sum));
		return 0;
	}
	if (data + SA6_LEN > end)
		return -1;
	struct ipv6hdr *ip6 = data + 14;
	struct tcphdr *th = data + 54;
	struct pseudo6 ph = {};
	eth->h_proto = bpf_htons(ETH_P_IPV6);
	*(__u32 *)ip6 = bpf_htonl(0x60000000);
	ip6->payload_len = bpf_htons(20 + TCP_OPT_BYTES);
	ip6->nexthdr = IPPROTO_TCP;
	ip6->hop_limit = 64;
	__builtin_memcpy(&ip6->saddr, p->t.dst, 16);
	__builtin_memcpy(&ip6->daddr, p->t.src, 16);
	cookie_tcp(th, p, cookie);
	cookie_options((__u8 *)(th + 1), cookie_mss[2], &so);
	__builtin_memcpy(ph.src, p->t.dst, 16);
	__builtin_memcpy(ph.dst, p->t.src, 16);
	ph.len = bpf_htonl(20 + TCP_OPT_BYTES);
	ph.nexthdr = IPPROTO_TCP;
	sum = bpf_csum_diff(NULL, 0, (void *)&ph, sizeof(ph), 0);
	th->check = csum_fold(bpf_csum_diff(NULL, 0, (void *)th, 20 + TCP_OPT_BYTES, sum));
	return 0;
}

/* whether an allowed SYN in XDP is answered with a cookie: a bare SYN from a remote to a port
 * under attack whose defence prevents (detect: counted, the kernel answers) */
static __always_inline int cookie_wanted(const struct pkt *p, __u64 now)
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
	if (!flood_syn(f, key, now))
		return 0;
	if (f->mode != MOAT_MODE_PREVENT) {
		flood_count(MOAT_FLOOD_COOKIE_DETECTED);
		return 0;
	}
	return 1;
}

/* the verdict the policy gives a new ingress connection opened by the packet (no owner known) */
static __always_inline int policy_allows_syn(const struct pkt *p)
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
	__u32 rule = classify(slot, 0, m, &f);
	rule_get(slot, rule, &r);
	return verdict_of(&r) == MOAT_EV_ALLOWED;
}

/* XDP: the SYN answered with a cookie (XDP_TX), or -1 to judge it as usual. A global
 * function: verified once */
__noinline int cookie_syn_xdp(struct xdp_md *ctx, const struct pkt *p)
{
	if (!ctx || !p)
		return -1;
	__u64 now = bpf_ktime_get_ns();
	if (!cookie_wanted(p, now) || !policy_allows_syn(p))
		return -1;
	if (cookie_synack_xdp(ctx, p, now)) {
		flood_count(MOAT_FLOOD_COOKIE_UNSENT);
		return -1;
	}
	flood_count(MOAT_FLOOD_COOKIE_SENT);
	return XDP_TX;
}

/* the request a valid cookie in the ACK stands for (mss, window scale, sack), or 0 */
static __always_inline int cookie_check(const struct pkt *p, __u64 now,
					struct bpf_tcp_req_attrs *attrs)
{
	__u32 cookie = p->ack - 1, seq = p->seq - 1;
	__u64 slot = now >> COOKIE_SLOT_SHIFT;

	if ((slot & 1) != (cookie >> 7 & 1))
		slot -= 1;
	__u32 data = cookie & 0x7f;
	__u32 h = cookie_hash(&p->t, seq, slot, data);
	if (!h || ((h ^ cookie) & 0xffffff00))
		return 0;
	__u32 ws = data & 0xf;
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

/* TC ingress: the client's ACK to a cookie, checked and handed to the listener as a request
 * socket. Only for a port under attack, or whose attack ended less than a cookie's life ago: a
 * valid cookie alone opens nothing on a port moat does not defend right now. A global
 * function */
__noinline int cookie_ack_skb(struct __sk_buff *skb, const struct pkt *p)
{
	struct bpf_tcp_req_attrs attrs;
	struct bpf_sock_tuple tuple = {};
	__u32 key, tlen;

	if (!skb || !p || p->t.proto != IPPROTO_TCP ||
	    (p->tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST)) != TCP_ACK)
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
