/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The post-route check (docs/route-aware.md): connect() judges interface rules by the route
 * mirror's prediction; the first packet of such a connection, seen by a cgroup_skb egress
 * program after the kernel has routed it, shows the real output device. When that device is
 * not the predicted one (policy routing, SO_BINDTODEVICE, a route newer than the mirror), the
 * connection is judged again with the real interface's class: a block drops the packet (and
 * every later one), is reported, and the daemon destroys the socket so that connect() fails
 * at once. Every later packet is compared with the interface it was judged for, and judged
 * again when it leaves by another (SO_BINDTODEVICE after connect(), IP_PKTINFO) or when the
 * check's verdict is of an older policy generation (a reload). Only sockets
 * armed at connect() under rules that name interfaces do any work; every other packet costs
 * one array lookup (no interface rules) or one socket-storage lookup, an armed socket's packet
 * on its interface one compare more. The
 * program: progs/post_route.bpf.c. */
#ifndef MOAT_POST_ROUTE_H
#define MOAT_POST_ROUTE_H

#include "judge.h"

#define CG_SKB_PASS 1
#define CG_SKB_DROP 0

/* whether the check's own verdict on the socket was made under an older policy */
static __always_inline int post_route_stale(const struct moat_sock *s, const struct moat_meta *m)
{
	return (s->post_route & MOAT_POST_JUDGED) && s->generation != m->generation;
}

/* connect()/sendmsg() let through under rules that name interfaces: arm the check of the
 * connection's packets (in the socket's record): the first in full, every later one by its
 * interface. Only in moat's network namespace: another one's devices are numbered apart from
 * the mirror's (a container's eth0 may have the ifindex of a host interface), and its packets
 * leave the host forwarded, by the host's routes, which connect() judged by */
static __always_inline void post_route_arm(struct bpf_sock_addr *ctx, const struct moat_meta *m,
					   struct moat_sock *s)
{
	if (m->post_route && s->verdict != MOAT_EV_BLOCKED && sock_in_home_netns(ctx))
		s->post_route = MOAT_POST_PENDING;
}

/* the packet's tuple (cgroup_skb data starts at the network header); -1 when it has no ports
 * to find its socket record by (not tcp or udp, a later fragment, ipv6 extension headers
 * other than a fragment header) */
static __always_inline int post_route_tuple(struct __sk_buff *skb, struct tuple *t)
{
	__u32 l4;
	__u16 ports[2];

	__builtin_memset(t, 0, sizeof(*t));
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return -1;
		if (ip.frag_off & bpf_htons(0x1fff))
			return -1;
		addr_v4(t->src, &ip.saddr);
		addr_v4(t->dst, &ip.daddr);
		t->family = 4;
		t->proto = ip.protocol;
		l4 = (__u32)ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return -1;
		__builtin_memcpy(t->src, &ip6.saddr, 16);
		__builtin_memcpy(t->dst, &ip6.daddr, 16);
		t->family = 6;
		t->proto = ip6.nexthdr;
		l4 = sizeof(ip6);
		if (t->proto == IPPROTO_FRAGMENT_) {
			struct ipv6_frag_moat fh;
			if (bpf_skb_load_bytes(skb, l4, &fh, sizeof(fh)))
				return -1;
			if (fh.frag_off & bpf_htons(0xfff8))
				return -1;
			t->proto = fh.nexthdr;
			l4 += sizeof(fh);
		}
	} else {
		return -1;
	}
	if (t->proto != IPPROTO_TCP && t->proto != IPPROTO_UDP)
		return -1;
	if (bpf_skb_load_bytes(skb, l4, ports, sizeof(ports)))
		return -1;
	t->sport = bpf_ntohs(ports[0]);
	t->dport = bpf_ntohs(ports[1]);
	return 0;
}

/* reports a connection the post-route check blocked or detected, on the real interface, as new
 * or as judged again after a reload (`reason`). A subprogram; its connection record is the
 * hook's scratch one */
static __noinline void post_route_report(const struct tuple *t, const struct moat_sock *s,
					 __u8 mode, __u32 ifindex, __u8 reason)
{
	struct moat_ct_key k __attribute__((aligned(8)));
	struct ev_from from = {.hook = MOAT_HOOK_POST_ROUTE, .ifindex = ifindex};

	if (!t || !s)
		return;
	struct moat_ct *ct = ct_scratch_zeroed(MOAT_HOOK_POST_ROUTE);
	if (!ct)
		return;
	ct->initiator = ct_key(t, &k);
	ct->direction = MOAT_DIR_EGRESS;
	ct->rule = s->rule;
	ct->generation = s->generation;
	ct->verdict = s->verdict;
	ct->mode = mode;
	ct->ifindex = ifindex;
	ct->owner = s->owner;
	emit(&k, ct, s->verdict, reason, &from);
}

/* a reload's verdict on a connection the check judged: written to the connection's entry too,
 * which the tc hook would otherwise judge again by the route mirror's interface (a new
 * connection's entry takes the check's verdict from the socket's record: judge.h, decide_new).
 * Its packets both ways, and its close, go by it. An ids cut stands, and moat's relay decides
 * its own connections. A subprogram: the key stays off the check's stack */
static __noinline void post_route_entry(const struct tuple *t, const struct moat_sock *s,
					const struct moat_rule *r, const struct moat_meta *m,
					__u32 slot)
{
	struct moat_ct_key k __attribute__((aligned(8)));

	if (!t || !s || !r || !m)
		return;
	ct_key(t, &k);
	struct moat_ct *ct = bpf_map_lookup_elem(&conntrack, &k);
	if (!ct || (ct->flags & (MOAT_CT_IDS_CUT | MOAT_CT_RELAYED)))
		return;
	set_judgement(ct, s->rule, r, t->proto, s->generation);
	/* a re-judging before the socket's next packet (a peer's, after another reload) goes by the
	 * interface the check judged, as this one did */
	if (!(ct->flags & MOAT_CT_POST_ROUTE))
		__sync_fetch_and_or(&ct->flags, MOAT_CT_POST_ROUTE);
	/* the check reported it (now, or when it judged it before): its close is reported too */
	if (ct->verdict != MOAT_EV_ALLOWED && !(ct->flags & MOAT_CT_REPORTED))
		__sync_fetch_and_or(&ct->flags, MOAT_CT_REPORTED);
	count(MOAT_CNT_REJUDGED, 0);
	count_rule(slot & 1, m, s->rule, 0, 1);
}

/* a packet of an armed socket: the check of its destination's first packet, of a later one that
 * leaves by another interface than it was judged for or that the check judged under an older
 * policy, or the drop of a packet to a destination the check blocked */
static __noinline int post_route_check(struct __sk_buff *skb, struct moat_sock *s)
{
	struct tuple t;
	__u32 zero = 0;

	if (!s || post_route_tuple(skb, &t))
		return CG_SKB_PASS;
	struct moat_state *st = bpf_map_lookup_elem(&state, &zero);
	if (!st)
		return CG_SKB_PASS;
	__u32 slot = *(volatile __u32 *)&st->active & 1;
	const struct moat_meta *m = &st->meta[slot];
	if (daemon_gone(m))
		return CG_SKB_PASS;

	/* the record is about the socket's latest destination; another one is not checked */
	if (s->protocol != t.proto || s->port != t.dport || __builtin_memcmp(s->addr, t.dst, 16))
		return CG_SKB_PASS;
	/* the check's verdict stands until a reload, which judges it again by the same interface */
	int stale = post_route_stale(s, m);
	if ((s->post_route & MOAT_POST_BLOCKED) && !stale) {
		count(MOAT_CNT_BLOCKED, skb->len);
		return CG_SKB_DROP;
	}
	if (!(s->post_route & (MOAT_POST_PENDING | MOAT_POST_CHECKED)))
		return CG_SKB_PASS;
	/* the first packet is checked in full; later ones only by their interface */
	s->post_route =
	    (s->post_route & ~(MOAT_POST_PENDING | MOAT_POST_BLOCKED)) | MOAT_POST_CHECKED;

	__u32 real = skb->ifindex;
	int moved = real != s->ifindex;
	if ((!moved && !stale) || !m->generation || !m->post_route)
		return CG_SKB_PASS;
	if (moved)
		count(MOAT_CNT_POST_ROUTE_MISS, skb->len);

	struct facts f = {.dir = MOAT_DIR_EGRESS, .family = t.family, .proto = t.proto};
	__builtin_memcpy(f.remote, t.dst, 16);
	__builtin_memcpy(f.local, t.src, 16);
	f.server_port = t.dport;
	f.client_port = t.sport;
	__u32 rule = classify_owned_at(slot, m, &f, &s->owner, real);
	struct moat_rule r;
	rule_get(slot, rule, &r);

	/* the real decision: the tc hook adopts it for the connection it tracks */
	__u8 before = s->verdict;
	s->rule = rule;
	s->generation = m->generation;
	s->verdict = verdict_of(&r);
	s->ifindex = real;
	s->post_route |= MOAT_POST_JUDGED;
	if (stale)
		post_route_entry(&t, s, &r, m, slot);
	if (s->verdict == MOAT_EV_ALLOWED)
		return CG_SKB_PASS;
	/* judged again after a reload on the same interface: reported only when it changed, as
	 * the tc hook's connections are */
	if (moved || s->verdict != before) {
		s->post_route |= MOAT_POST_REPORTED;
		post_route_report(&t, s, r.mode, real,
				  moved ? MOAT_REASON_NEW : MOAT_REASON_REJUDGED);
	}
	if (s->verdict != MOAT_EV_BLOCKED)
		return CG_SKB_PASS;
	s->post_route |= MOAT_POST_BLOCKED;
	count(MOAT_CNT_BLOCKED, skb->len);
	return CG_SKB_DROP;
}

#endif /* MOAT_POST_ROUTE_H */
