/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* QUIC (docs/l7-quic.md): the cgroup egress program copies the first MOAT_QUIC_DATAGRAMS
 * datagrams a socket sends to udp port 443 (armed at connect()/sendmsg() in the socket's
 * record) to the quic_initials ring buffer, where the daemon decrypts their Initial packets
 * (keys public by design) and reads the ClientHello's server name. Only the copy is made here:
 * the datagram passes unchanged. A full ring loses the copy, never the datagram. */
#ifndef MOAT_QUIC_H
#define MOAT_QUIC_H

#include "maps.h"
#include "ring_wake.h"

/* the udp payload's offset, with the addresses and ports into q; 0 when the packet is not
 * a whole udp datagram to port 443 (a fragment, ipv6 extension headers) */
static __always_inline __u32 quic_payload(struct __sk_buff *skb, struct moat_quic_initial *q)
{
	__u32 l4;
	struct udphdr uh;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return 0;
		if (ip.protocol != IPPROTO_UDP || (ip.frag_off & bpf_htons(0x3fff)))
			return 0;
		addr_v4(q->local, &ip.saddr);
		addr_v4(q->remote, &ip.daddr);
		q->family = 4;
		l4 = (__u32)ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return 0;
		if (ip6.nexthdr != IPPROTO_UDP)
			return 0;
		__builtin_memcpy(q->local, &ip6.saddr, 16);
		__builtin_memcpy(q->remote, &ip6.daddr, 16);
		q->family = 6;
		l4 = sizeof(ip6);
	} else {
		return 0;
	}
	if (bpf_skb_load_bytes(skb, l4, &uh, sizeof(uh)) || uh.dest != bpf_htons(MOAT_QUIC_PORT))
		return 0;
	q->local_port = bpf_ntohs(uh.source);
	q->remote_port = MOAT_QUIC_PORT;
	return l4 + sizeof(uh);
}

/* copies this datagram if its socket still has datagrams to copy (s->quic) */
static __always_inline void quic_copy(struct __sk_buff *skb, struct moat_sock *s)
{
	struct moat_quic_initial *q = bpf_ringbuf_reserve(&quic_initials, sizeof(*q), 0);

	if (!q)
		return;
	__u32 off = quic_payload(skb, q);
	__u32 len = skb->len;
	if (!off || len <= off) {
		bpf_ringbuf_discard(q, 0);
		return;
	}
	/* the verifier needs the length's bounds in the register: 1 + [0, max - 1] */
	__u32 last = len - off - 1;
	if (last > MOAT_QUIC_MAX - 1)
		last = MOAT_QUIC_MAX - 1;
	len = last + 1;
	/* not atomic: two cpus sending at once may copy one datagram more */
	s->quic--;
	if (bpf_skb_load_bytes(skb, off, q->data, len)) {
		bpf_ringbuf_discard(q, 0);
		return;
	}
	q->ts_ns = bpf_ktime_get_ns();
	q->cookie = bpf_get_socket_cookie(skb);
	q->rule = s->rule;
	q->generation = s->generation;
	q->verdict = s->verdict;
	q->len = (__u16)len;
	q->owner = s->owner;
	bpf_ringbuf_submit(q, ring_wake(&quic_woken_ns, q->ts_ns));
}

#endif /* MOAT_QUIC_H */
