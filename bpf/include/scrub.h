/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Scrubbing (docs/policy.md, "Scrubbing"): tcp packets whose flags no tcp stack sends together
 * (SYN+FIN, SYN+RST, no flag at all, FIN+PSH+URG without ACK "xmas") are scans or evasion
 * attempts. They are dropped where the policy prevents, counted, and reported at most once a
 * second per cpu. Of the packets that pass, the mss option of a SYN or SYN-ACK is lowered to the
 * policy's scrub.mss, and the ip header normalised as scrub asks: ttl / hop limit raised to
 * min_ttl, ipv4's DF cleared, the id of ipv4 packets leaving replaced by a random one. */
#ifndef MOAT_SCRUB_H
#define MOAT_SCRUB_H

#include "maps.h"
#include "counters.h"
#include "packet.h"
#include "conntrack.h"
#include "ratelimit.h"

#define TCP_PSH 0x08
#define TCP_URG 0x20

static __always_inline int tcp_flags_invalid(__u8 f)
{
	if ((f & (TCP_SYN | TCP_FIN)) == (TCP_SYN | TCP_FIN))
		return 1;
	if ((f & (TCP_SYN | TCP_RST)) == (TCP_SYN | TCP_RST))
		return 1;
	if (!(f & 0x3f))
		return 1;
	/* with ACK it is a real stack's: Linux puts a FIN sent right after urgent data on the last
	 * urgent segment */
	return (f & (TCP_FIN | TCP_PSH | TCP_URG | TCP_ACK)) == (TCP_FIN | TCP_PSH | TCP_URG);
}

/* A random ipv4 id: the top 16 bits of the next value of this cpu's splitmix64 generator (a
 * counter stepped by the golden ratio, each step mixed by two multiplies), seeded from the
 * kernel's random helper at its first use on the cpu: no helper call a packet. Like the helper
 * (the kernel's per-cpu prandom state) it is not a cryptographic generator. */
static __always_inline __u16 scrub_ip_id(void)
{
	__u32 zero = 0;
	struct ip_id_state *s = bpf_map_lookup_elem(&ip_id_rng, &zero);

	if (!s)
		return bpf_get_prandom_u32();
	if (!s->next)
		s->next = (__u64)bpf_get_prandom_u32() << 32 | bpf_get_prandom_u32() | 1;
	__u64 z = s->next += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return (__u16)((z ^ (z >> 31)) >> 48);
}

/* the packet's invalid flags, reported: one event a second per cpu, with the packets since the
 * previous one. A global function: verified once */
__noinline int scrub_report(const struct pkt *p, const struct ev_from *from, __u8 prevent,
			    __u64 now)
{
	__u32 zero = 0;

	if (!p || !from)
		return 0;
	struct scrub_tally *t = bpf_map_lookup_elem(&scrub_reports, &zero);
	if (!t)
		return 0;
	now = limit_now(now);
	t->packets += 1;
	if (t->reported_ns && now - t->reported_ns < NSEC)
		return 0;
	__u64 n = t->packets;
	t->packets = 0;
	t->reported_ns = now;
	limit_report(p, NULL, n, prevent ? MOAT_EV_BLOCKED : MOAT_EV_DETECTED,
		     MOAT_REASON_TCP_FLAGS, from);
	return 1;
}

/* the live policy's scrubbing settings (NULL before the first policy) */
static __always_inline const struct moat_scrub *scrub_settings(void)
{
	__u32 zero = 0;

	struct moat_state *st = bpf_map_lookup_elem(&state, &zero);
	if (!st)
		return NULL;
	__u32 slot = *(volatile __u32 *)&st->active & 1;
	if (!st->meta[slot].generation)
		return NULL;
	return bpf_map_lookup_elem(&scrub_config, &slot);
}

/* the mss clamp of `c` for a tcp syn or syn-ack of p's family (0: none) */
static __always_inline __u16 mss_clamp_of(const struct pkt *p, const struct moat_scrub *c)
{
	if (p->t.proto != IPPROTO_TCP || !(p->tcp_flags & TCP_SYN) || (p->tcp_flags & TCP_RST))
		return 0;
	return p->t.family == 4 ? c->mss4 : c->mss6;
}

#define IP_DF 0x4000
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

/* a 16-bit word of a header changed from `from` to `to` (host order), added to a checksum
 * update in progress (RFC 1624: ~C' = ~C + ~m + m') */
static __always_inline __u32 csum_step(__u32 sum, __u16 from, __u16 to)
{
	return sum + (__u16)~from + to;
}

/* The ip header of a packet that passes, normalised in place as `c` asks (the ipv4 header
 * checksum updated; ttl, id and flags are not in the tcp/udp pseudo-header, so theirs stays).
 * `leaving`: the host sends it (tc egress), the only place the id is replaced. Counts each
 * change. */
static __always_inline int ip_scrub(void *data, void *end, const struct pkt *p,
				    const struct moat_scrub *c, __u32 leaving)
{
	if (p->l3_off > 64)
		return 0;
	if (p->t.family == 6) {
		struct ipv6hdr *ip6 = data + p->l3_off;
		if ((void *)(ip6 + 1) > end || ip6->hop_limit >= c->min_ttl)
			return 0;
		ip6->hop_limit = c->min_ttl;
		count(MOAT_CNT_TTL_RAISED, 0);
		return 1;
	}
	struct iphdr *ip = data + p->l3_off;
	if ((void *)(ip + 1) > end)
		return 0;
	/* this cpu's counters, looked up once for the changes below */
	struct moat_counters *cnt = counters_get();
	__u32 sum = (__u16)~bpf_ntohs(ip->check);
	int changed = 0;
	if (ip->ttl < c->min_ttl) {
		/* ttl shares its word with the protocol */
		__u16 from = (__u16)ip->ttl << 8 | ip->protocol;
		ip->ttl = c->min_ttl;
		sum = csum_step(sum, from, (__u16)ip->ttl << 8 | ip->protocol);
		count_in(cnt, MOAT_CNT_TTL_RAISED, 0);
		changed = 1;
	}
	__u16 frag = bpf_ntohs(ip->frag_off);
	if ((c->flags & MOAT_SCRUB_CLEAR_DF) && (frag & IP_DF)) {
		ip->frag_off = bpf_htons(frag & ~IP_DF);
		sum = csum_step(sum, frag, frag & ~IP_DF);
		count_in(cnt, MOAT_CNT_DF_CLEARED, 0);
		changed = 1;
	}
	/* not a fragment: a fragment's id is what reassembly joins it by */
	if (leaving && (c->flags & MOAT_SCRUB_RANDOM_IP_ID) && !(frag & (IP_MF | IP_OFFSET))) {
		__u16 from = bpf_ntohs(ip->id);
		__u16 to = scrub_ip_id();
		ip->id = bpf_htons(to);
		sum = csum_step(sum, from, to);
		count_in(cnt, MOAT_CNT_IP_ID_RANDOMISED, 0);
		changed = 1;
	}
	if (!changed)
		return 0;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	ip->check = bpf_htons((__u16)~sum);
	return 1;
}

/* does `c` ask anything of the ip header? (ip_scrub is not called for nothing) */
static __always_inline int ip_scrub_wanted(const struct moat_scrub *c)
{
	return c->min_ttl || c->flags;
}

/* ip_scrub of an arriving frame at xdp. A global function: verified once */
__noinline int ip_scrub_xdp(struct xdp_md *ctx, const struct pkt *p, const struct moat_scrub *c)
{
	if (!p || !c)
		return 0;
	return ip_scrub((void *)(long)ctx->data, (void *)(long)ctx->data_end, p, c, 0);
}

/* ip_scrub at tc, of a packet leaving or arriving. A global function: verified once */
__noinline int ip_scrub_skb(struct __sk_buff *skb, const struct pkt *p, const struct moat_scrub *c,
			    __u32 leaving)
{
	if (!p || !c)
		return 0;
	return ip_scrub((void *)(long)skb->data, (void *)(long)skb->data_end, p, c, leaving);
}

/* mss_find's walk through a tcp header's option bytes, one option a step (bpf_loop) */
struct mss_walk {
	__u8 b[40]; /* the option bytes, copied out of the packet */
	__u32 n;    /* how many there are */
	__u32 j;    /* the next option's first byte */
	__u32 at;   /* the mss value's offset from the tcp header start (0: none) */
};

/* one option: 0 to go on to the next, 1 once the mss option is found or the list ends. The
 * verifier walks this once for every step bpf_loop takes, instead of once per option list the
 * twenty iterations of a plain loop could read */
static long mss_opt_step(__u64 k, void *ctx)
{
	struct mss_walk *w = ctx;
	__u32 j = w->j;

	if (j >= w->n || j > 36)
		return 1;
	__u8 kind = w->b[j];
	if (kind == 0)
		return 1;
	if (kind == 1) {
		w->j = j + 1;
		return 0;
	}
	if (j + 1 >= w->n)
		return 1;
	__u8 len = w->b[j + 1];
	if (kind == 2 && len == 4) {
		w->at = 20 + j + 2;
		return 1;
	}
	if (len < 2)
		return 1;
	w->j = j + len;
	return 0;
}

/* the offset of the mss option's value from the tcp header start (0: none), from the option
 * bytes a load (its result in `err`) copied into w->b */
static __always_inline __u32 mss_find(struct mss_walk *w, long err)
{
	if (err)
		return 0;
	bpf_loop(20, mss_opt_step, w, 0);
	return w->at;
}

/* the mss value's offset when mss is the first option (22), as every common stack sends a syn,
 * read in place; 0 otherwise, for the walk to find */
static __always_inline __u32 mss_first(void *data, void *end, const struct pkt *p, __u32 n)
{
	if (n < 4 || p->l4_off > MOAT_L4_MAX)
		return 0;
	__u8 *o = data + p->l4_off + 20;
	if ((void *)(o + 4) > end)
		return 0;
	return o[0] == 2 && o[1] == 4 ? 22 : 0;
}

/* how many option bytes a tcp header `hlen` bytes long has (0 to 40) */
static __always_inline __u32 tcp_opt_len(__u32 hlen)
{
	__u32 n = hlen > 20 ? hlen - 20 : 0;
	return n > 40 ? 40 : n;
}

/* the mss value at `v` (offset `off` in the tcp header) lowered to `mss`; returns the old and
 * new 16-bit words as the checksum sees them (a value at an odd offset straddles two words:
 * it counts byte-swapped), or 0 when it was not above `mss` */
static __always_inline int mss_lower(__u8 *v, __u32 off, __u16 mss, __u16 *from, __u16 *to)
{
	__u16 old = (__u16)v[0] << 8 | v[1];

	if (old <= mss)
		return 0;
	v[0] = mss >> 8;
	v[1] = mss & 0xff;
	*from = off & 1 ? __builtin_bswap16(old) : old;
	*to = off & 1 ? __builtin_bswap16(mss) : mss;
	return 1;
}

/* The tcp header whose mss option (its value `off` bytes into the header) was lowered in place
 * to `mss` (the old and new 16-bit words for the checksum in from/to), or NULL: no option,
 * already low enough, or out of bounds */
static __always_inline struct tcphdr *mss_rewrite(void *data, void *end, const struct pkt *p,
						  __u32 off, __u16 mss, __u16 *from, __u16 *to)
{
	if (p->l4_off > MOAT_L4_MAX)
		return NULL;
	struct tcphdr *tcp = data + p->l4_off;
	if ((void *)(tcp + 1) > end)
		return NULL;
	if (!off || off > 58)
		return NULL;
	__u8 *v = (void *)tcp + off;
	if ((void *)(v + 2) > end || !mss_lower(v, off, mss, from, to))
		return NULL;
	return tcp;
}

/* xdp: the syn's mss option lowered in place, its checksum updated (RFC 1624). A global
 * function: verified once */
__noinline int mss_clamp_xdp(struct xdp_md *ctx, const struct pkt *p, __u16 mss)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u16 from, to;

	if (!p)
		return 0;
	__u32 n = tcp_opt_len(p->l4_len);
	barrier_var(n); /* the verifier learns n > 0 from n itself, not from l4_len */
	if (!n || p->l4_off > MOAT_L4_MAX)
		return 0;
	__u32 off = mss_first(data, end, p, n);
	if (!off) {
		struct mss_walk w = {.n = n};
		off = mss_find(&w, bpf_xdp_load_bytes(ctx, p->l4_off + 20, w.b, n));
	}
	struct tcphdr *tcp = mss_rewrite(data, end, p, off, mss, &from, &to);
	if (!tcp)
		return 0;
	__u32 sum = (__u16)~bpf_ntohs(tcp->check) + (__u16)~from + to;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	tcp->check = bpf_htons((__u16)~sum);
	return 1;
}

/* tc: the same on an skb; the kernel's helper updates the checksum (or leaves it to the device
 * when it computes it). A global function */
__noinline int mss_clamp_skb(struct __sk_buff *skb, const struct pkt *p, __u16 mss)
{
	__u16 from, to;

	if (!p)
		return 0;
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u32 n = tcp_opt_len(p->l4_len);
	barrier_var(n); /* the verifier learns n > 0 from n itself, not from l4_len */
	if (!n || p->l4_off > MOAT_L4_MAX)
		return 0;
	__u32 off = mss_first(data, end, p, n);
	if (!off) {
		struct mss_walk w = {.n = n};
		off = mss_find(&w, bpf_skb_load_bytes(skb, p->l4_off + 20, w.b, n));
	}
	if (!mss_rewrite(data, end, p, off, mss, &from, &to))
		return 0;
	bpf_l4_csum_replace(skb, p->l4_off + 16, bpf_htons(from), bpf_htons(to), 2);
	return 1;
}

#endif /* MOAT_SCRUB_H */
