/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The accept side's logic (docs/socket-hooks.md, "The accept side"); its programs, in
 * progs/accept.bpf.c, attach to attach.cgroup with the socket hooks:
 * - post_bind4/6 run in the binding process: its owner (pid, uid, cgroup, comm, executable)
 *   is stored on the socket (bpf_sk_storage), and a process binding a redirect target is
 *   noted as a proxy (redirect.h);
 * - cgroup_skb ingress sees each packet a socket of the cgroup receives, with that socket: for
 *   the first packet of an ingress connection (a syn reaches the listener; a udp datagram its
 *   socket) it completes the conntrack entry xdp left to it (accept.h): the owner, the verdict
 *   when a process rule may decide it, and the opening event. A blocked syn is dropped here. */
#ifndef MOAT_ACCEPT_HOOKS_H
#define MOAT_ACCEPT_HOOKS_H

#include "accept.h"
#include "judge.h"
#include "sock_hooks.h"

#define SKB_PASS 1
#define SKB_DROP 0

static __always_inline int record_owner(struct bpf_sock *sk)
{
	if (sk->protocol != IPPROTO_TCP && sk->protocol != IPPROTO_UDP)
		return SOCK_ALLOW;
	struct moat_owner *o = bpf_sk_storage_get(&owners, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (o)
		owner_now(o, 1);
	return SOCK_ALLOW;
}

/* the packet's tuple and tcp flags; the skb starts at its ip header. IPv6 extension headers
 * are not walked: such a packet is left to the packet hooks (accept.h) */
static __always_inline int accept_tuple(struct __sk_buff *skb, struct tuple *t, __u8 *flags)
{
	__u8 l4[14];
	__u32 off;

	__builtin_memset(t, 0, sizeof(*t));
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return -1;
		if (ip.frag_off & bpf_htons(0x1fff))
			return -1;
		t->family = 4;
		t->proto = ip.protocol;
		addr_v4(t->src, &ip.saddr);
		addr_v4(t->dst, &ip.daddr);
		off = ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return -1;
		t->family = 6;
		t->proto = ip6.nexthdr;
		__builtin_memcpy(t->src, &ip6.saddr, 16);
		__builtin_memcpy(t->dst, &ip6.daddr, 16);
		off = sizeof(ip6);
	} else {
		return -1;
	}
	if (t->proto == IPPROTO_TCP) {
		if (bpf_skb_load_bytes(skb, off, l4, 14))
			return -1;
		*flags = l4[13];
	} else if (t->proto == IPPROTO_UDP) {
		if (bpf_skb_load_bytes(skb, off, l4, 4))
			return -1;
	} else {
		return -1;
	}
	t->sport = (__u16)l4[0] << 8 | l4[1];
	t->dport = (__u16)l4[2] << 8 | l4[3];
	return 0;
}

/* who bound the receiving socket: recorded at bind, or by user space for sockets bound before
 * moat attached (by cookie) */
static __always_inline struct moat_owner *sock_owner(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;

	if (!sk)
		return NULL;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return NULL;
	struct moat_owner *o = bpf_sk_storage_get(&owners, sk, 0, 0);
	if (o)
		return o;
	__u64 cookie = bpf_get_socket_cookie(skb);
	return bpf_map_lookup_elem(&owner_cookies, &cookie);
}

/* the verdict of a pending entry, by the owner's process class (classify_owned). A global
 * function: its facts stay off the hook's stack */
__noinline int accept_judge(struct moat_ct_key *k, struct moat_ct *ct, __u32 len)
{
	struct facts f;
	struct moat_rule r;
	__u32 zero = 0;

	if (!k || !ct)
		return 0;
	struct moat_state *st = bpf_map_lookup_elem(&state, &zero);
	if (!st)
		return 0;
	__u32 slot = *(volatile __u32 *)&st->active & 1;
	const struct moat_meta *m = &st->meta[slot];
	if (!m->generation)
		return 0;
	facts_of_ct(k, ct, &f);
	/* no owner known: process rules match nothing, as for the packet hooks */
	__u32 rule =
	    classify_tracked(slot, m, &f, ct->owner.pid ? &ct->owner : NULL, ct->ifindex, 0);
	rule_get(slot, rule, &r);
	set_judgement(ct, rule, &r, k->protocol, m->generation);
	count_rule(slot, m, rule, len, 1);
	if (ct->verdict != MOAT_EV_ALLOWED || r.log)
		__sync_fetch_and_or(&ct->flags, MOAT_CT_REPORTED);
	else
		__sync_fetch_and_and(&ct->flags, ~MOAT_CT_REPORTED);
	return 0;
}

/* completes the entry xdp left to this hook: owner, verdict if pending, the opening event. A
 * static subprogram: verified with its caller, so the hook's return value stays 0 or 1 */
static __noinline int accept_complete(struct __sk_buff *skb, struct moat_ct_key *k,
				      struct moat_ct *ct)
{
	struct ev_from from = {.hook = MOAT_HOOK_ACCEPT};

	if (!skb || !k || !ct)
		return SKB_PASS;
	if (!ct->owner.pid) {
		struct moat_owner *o = sock_owner(skb);
		if (o)
			ct->owner = *o;
	}
	__u32 old = __sync_fetch_and_and(&ct->flags, ~MOAT_CT_AWAIT);
	if (!(old & MOAT_CT_AWAIT))
		return ct->verdict == MOAT_EV_BLOCKED ? SKB_DROP : SKB_PASS;
	if (!ct->owner.pid)
		count(MOAT_CNT_UNOWNED, 0);
	if (old & MOAT_CT_PENDING) {
		accept_judge(k, ct, skb->len);
		__sync_fetch_and_and(&ct->flags, ~MOAT_CT_PENDING);
	}
	from.ifindex = ct->ifindex;
	if (ct->flags & MOAT_CT_REPORTED)
		emit(k, ct, ct->verdict, MOAT_REASON_NEW, &from);
	if (ct->verdict != MOAT_EV_BLOCKED)
		return SKB_PASS;
	count(MOAT_CNT_BLOCKED, skb->len);
	return SKB_DROP;
}

#endif /* MOAT_ACCEPT_HOOKS_H */
