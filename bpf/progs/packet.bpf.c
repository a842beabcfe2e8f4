// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* moat's packet programs: XDP on ingress (or TC ingress where the policy asks for it), TC (tcx)
 * on egress. Each parses the frame, then judges it with the same tables and the same conntrack
 * (include/judge.h); a connection past its max_duration is reset (include/reset.h). Part of
 * moat.bpf.o: built by bpf/moat.bpf.c, which includes it. */
#include "judge.h"
#include "scrub.h"
#include "reset.h"
#include "bench.h"
#include "syncookie.h"
#include "amplification.h"

#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
/* headers beyond the linear part of an skb are pulled in: this many bytes first (most
 * headers), then as far as the l4 header can start (MOAT_L4_MAX) and a tcp header with options */
#define MOAT_PULL_MAX 512
#define MOAT_PULL_ALL (MOAT_L4_MAX + 60)

/* icmp or icmpv6: the only packets icmp_oversized looks at, asked before its call */
static __always_inline int is_icmp(const struct pkt *p)
{
	return p->t.proto == IPPROTO_ICMP || p->t.proto == IPPROTO_ICMPV6_;
}

/* a frame that does not parse, with bytes past the skb's linear part: pulled in (as little as
 * will do) and parsed again */
static __always_inline int parse_pulled(struct __sk_buff *skb, struct pkt *p, int kind)
{
	if (kind != PKT_MALFORMED || skb->len <= skb->data_end - skb->data)
		return kind;
	bpf_skb_pull_data(skb, skb->len < MOAT_PULL_MAX ? skb->len : MOAT_PULL_MAX);
	kind = moat_parse_skb(skb, p);
	if (kind != PKT_MALFORMED || skb->len <= skb->data_end - skb->data)
		return kind;
	bpf_skb_pull_data(skb, skb->len < MOAT_PULL_ALL ? skb->len : MOAT_PULL_ALL);
	return moat_parse_skb(skb, p);
}

/* tc: a passing packet scrubbed as the policy asks (scrub.h) */
static __always_inline void scrub_skb(struct __sk_buff *skb, const struct pkt *p, int kind,
				      __u32 leaving)
{
	const struct moat_scrub *c = kind == PKT_IP ? scrub_settings() : NULL;
	if (!c)
		return;
	__u16 mss = mss_clamp_of(p, c);
	if (mss && mss_clamp_skb(skb, p, mss))
		count(MOAT_CNT_MSS_CLAMPED, 0);
	if (ip_scrub_wanted(c))
		ip_scrub_skb(skb, p, c, leaving);
}

SEC("xdp")
int moat_xdp_ingress(struct xdp_md *ctx)
{
	struct hook h = {
	    .from = {.hook = MOAT_HOOK_XDP_INGRESS, .at_last = 1, .ifindex = ctx->ingress_ifindex},
	    .len = ctx->data_end - ctx->data,
	    .dir = MOAT_DIR_INGRESS,
	};
	__u32 key = 0;
	struct pkt *p = bpf_map_lookup_elem(&scratch, &key);
	if (!p)
		return XDP_PASS;

	int kind = moat_parse_xdp(ctx, p);
	bench_rotate(p, kind, MOAT_DIR_INGRESS);
	/* a SYN to a port under a SYN flood, answered with a cookie (syncookie.h) */
	if (kind == PKT_IP && p->t.proto == IPPROTO_TCP && (p->tcp_flags & TCP_SYN) &&
	    cookie_syn_xdp(ctx, p) == XDP_TX)
		return XDP_TX;
	/* udp from an amplification port over its per-source limit (amplification.h) */
	if (kind == PKT_IP && p->t.proto == IPPROTO_UDP && amp_over(p, &h.from))
		return XDP_DROP;
	/* icmp over flood.icmp.max_size */
	if (kind == PKT_IP && is_icmp(p) && icmp_oversized(p, &h.from, h.len - p->l3_off))
		return XDP_DROP;
	int out = moat_judge(ctx, p, kind, &h, NULL);
	if (out == OUT_PASS) {
		/* the flow's first bytes for the ids signatures (ids.h) */
		if (p->ids_len)
			moat_ids_xdp(ctx, p);
		const struct moat_scrub *c = kind == PKT_IP ? scrub_settings() : NULL;
		if (c) {
			__u16 mss = mss_clamp_of(p, c);
			if (mss && mss_clamp_xdp(ctx, p, mss))
				count(MOAT_CNT_MSS_CLAMPED, 0);
			if (ip_scrub_wanted(c))
				ip_scrub_xdp(ctx, p, c);
		}
		return XDP_PASS;
	}
	/* past max_duration: the packet becomes a probe that makes both ends reset */
	if (out == OUT_CUT && moat_probe_xdp(ctx, p) == 0) {
		count(MOAT_CNT_RESET, 0);
		return XDP_PASS;
	}
	return XDP_DROP;
}

/* the socket hooks' record of the local socket sending the packet, if any (its owner and
 * decision), when the packet is that socket's own: a tunnel's carrier keeps the socket of the
 * packet it wraps. A subprogram: its locals stay off the program's stack */
static __noinline const struct moat_sock *sending_record(struct __sk_buff *skb, const struct pkt *p,
							 int kind)
{
	struct bpf_sock *sk = skb->sk;

	if (sk)
		sk = bpf_sk_fullsock(sk);
	if (!sk || (kind == PKT_IP && carries_other(sk, p)))
		return NULL;
	return bpf_sk_storage_get(&socks, sk, 0, 0);
}

SEC("tc")
int moat_tc_egress(struct __sk_buff *skb)
{
	struct hook h = {
	    .from = {.hook = MOAT_HOOK_TC_EGRESS, .at_last = 1, .ifindex = skb->ifindex},
	    .len = skb->len,
	    .dir = MOAT_DIR_EGRESS,
	};
	__u32 key = 1;
	struct pkt *p = bpf_map_lookup_elem(&scratch, &key);
	if (!p)
		return TC_ACT_OK;

	int kind = parse_pulled(skb, p, moat_parse_skb(skb, p));
	bench_rotate(p, kind, MOAT_DIR_EGRESS);
	h.local = skb->ingress_ifindex == 0;
	const struct moat_sock *s = sending_record(skb, p, kind);
	/* a SYN-ACK with a cookie the tc ingress program sent back out is no connection of this
	 * host's: it passes unjudged (syncookie.h) */
	int out =
	    kind == PKT_IP && cookie_synack_ours(p) ? OUT_PASS : moat_judge(skb, p, kind, &h, s);
	if (out == OUT_PASS) {
		if (p->ids_len)
			moat_ids_skb(skb, p, 1);
		scrub_skb(skb, p, kind, 1);
		return TC_ACT_OK;
	}
	/* past max_duration: reset both ends (the packet becomes a reset to the peer) */
	if (out == OUT_CUT && moat_reset_skb(skb, p) == 0) {
		count(MOAT_CNT_RESET, 0);
		return TC_ACT_OK;
	}
	return TC_ACT_SHOT;
}

/* ingress at tc instead of xdp, for interfaces where native xdp costs more than it saves
 * (container veths): the same judging, on the skb the stack already built, and the same SYN
 * flood defence (the cookie's SYN-ACK redirected back out, its ACK checked before judging) */
SEC("tc")
int moat_tc_ingress(struct __sk_buff *skb)
{
	struct hook h = {
	    .from = {.hook = MOAT_HOOK_TC_INGRESS, .at_last = 1, .ifindex = skb->ifindex},
	    .len = skb->len,
	    .dir = MOAT_DIR_INGRESS,
	};
	__u32 key = 2;
	struct pkt *p = bpf_map_lookup_elem(&scratch, &key);
	if (!p)
		return TC_ACT_OK;

	int kind = parse_pulled(skb, p, moat_parse_skb(skb, p));
	/* a SYN to a port under a SYN flood, answered with a cookie out of the interface it came in
	 * by (syncookie.h) */
	if (kind == PKT_IP) {
		int r = cookie_syn_skb(skb, p);
		if (r >= 0)
			return r;
		/* the client's ACK to a cookie: a request socket of the listener, made here and
		 * kept if the ACK passes the judging below (syncookie.h) */
		cookie_ack_skb(skb, p);
	}
	if (kind == PKT_IP && p->t.proto == IPPROTO_UDP && amp_over(p, &h.from))
		return TC_ACT_SHOT;
	if (kind == PKT_IP && is_icmp(p) && icmp_oversized(p, &h.from, h.len - p->l3_off))
		return TC_ACT_SHOT;
	int out = moat_judge(skb, p, kind, &h, NULL);
	if (out == OUT_PASS) {
		if (p->ids_len)
			moat_ids_skb(skb, p, 2);
		scrub_skb(skb, p, kind, 0);
		return TC_ACT_OK;
	}
	/* past max_duration: as at xdp, the packet becomes a probe that makes both ends reset */
	if (out == OUT_CUT && moat_probe_skb(skb, p) == 0) {
		count(MOAT_CNT_RESET, 0);
		return TC_ACT_OK;
	}
	return TC_ACT_SHOT;
}

/* beside XDP on an interface whose policy defends against SYN floods: the client's ACK to a
 * cookie XDP sent becomes a connection of the listening socket (syncookie.h); every other packet
 * goes on untouched */
SEC("tc")
int moat_tc_cookie(struct __sk_buff *skb)
{
	__u32 key = 3;
	struct pkt *p = bpf_map_lookup_elem(&scratch, &key);
	if (!p)
		return TC_ACT_OK;
	if (moat_parse_skb(skb, p) != PKT_IP || p->t.proto != IPPROTO_TCP)
		return TC_ACT_OK;
	cookie_ack_skb(skb, p);
	return TC_ACT_OK;
}
