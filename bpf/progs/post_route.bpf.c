// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The post-route check's program (docs/route-aware.md): cgroup_skb egress sees a connection's
 * packets after routing and judges it again when one leaves by another interface than the
 * route mirror predicted (or than the first packet's) (the check itself: include/post_route.h). It
 * also copies the first datagrams of udp 443 flows for the daemon (QUIC Initials: include/quic.h).
 * Part of moat.bpf.o: built by bpf/moat.bpf.c, which includes it. */
#include "post_route.h"
#include "quic.h"

SEC("cgroup_skb/egress")
int moat_post_route(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct moat_state *st = bpf_map_lookup_elem(&state, &zero);

	if (!st)
		return CG_SKB_PASS;
	__u32 slot = *(volatile __u32 *)&st->active & 1;
	__u32 armed = st->meta[slot].post_route;
	struct bpf_sock *sk = skb->sk;
	if (sk)
		sk = bpf_sk_fullsock(sk);
	/* no rule names an interface: nothing was armed, only udp may have datagrams to copy */
	if (!sk || (!armed && sk->protocol != IPPROTO_UDP))
		return CG_SKB_PASS;
	struct moat_sock *s = bpf_sk_storage_get(&socks, sk, 0, 0);
	if (!s)
		return CG_SKB_PASS;
	if (s->quic)
		quic_copy(skb, s);
	if (!armed)
		return CG_SKB_PASS;
	if (s->post_route & (MOAT_POST_PENDING | MOAT_POST_BLOCKED))
		return post_route_check(skb, s);
	/* checked: judged again only when it leaves by another interface, or when the check judged
	 * it under an older policy */
	if ((s->post_route & MOAT_POST_CHECKED) &&
	    (skb->ifindex != s->ifindex || post_route_stale(s, &st->meta[slot])))
		return post_route_check(skb, s);
	return CG_SKB_PASS;
}
