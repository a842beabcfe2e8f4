// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The accept side's programs (docs/socket-hooks.md, "The accept side"): post_bind4/6 record a
 * binding process as the socket's owner, cgroup_skb ingress completes the connection xdp left
 * to it (the logic: include/accept_hooks.h and include/accept.h). Part of moat.bpf.o: built by
 * bpf/moat.bpf.c, which includes it. */
#include "accept_hooks.h"

SEC("cgroup/post_bind4")
int moat_post_bind4(struct bpf_sock *sk)
{
	note_proxy(sk, 0);
	return record_owner(sk);
}

SEC("cgroup/post_bind6")
int moat_post_bind6(struct bpf_sock *sk)
{
	note_proxy(sk, 1);
	return record_owner(sk);
}

SEC("cgroup_skb/ingress")
int moat_accept(struct __sk_buff *skb)
{
	struct moat_ct_key k __attribute__((aligned(8)));
	struct tuple t;
	__u8 flags = 0;

	if (accept_tuple(skb, &t, &flags))
		return SKB_PASS;
	/* tcp: only a connection's syn (the listener's); udp: every datagram (its flow's first) */
	if (t.proto == IPPROTO_TCP && (flags & (TCP_SYN | TCP_ACK | TCP_RST)) != TCP_SYN)
		return SKB_PASS;
	int side = ct_key(&t, &k);
	struct moat_ct *ct = bpf_map_lookup_elem(&conntrack, &k);
	/* only what xdp tracked as an ingress connection, seen from its initiator */
	if (!ct || ct->direction != MOAT_DIR_INGRESS || side != ct->initiator)
		return SKB_PASS;
	if (!(ct->flags & MOAT_CT_AWAIT) && ct->owner.pid)
		return SKB_PASS;
	return accept_complete(skb, &k, ct);
}
