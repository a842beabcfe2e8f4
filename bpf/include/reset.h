/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Resets for tcp connections cut by their rule's max_duration.
 *  - tc (a packet from this host): a copy, turned into a reset from the peer, goes to the
 *    local stack (clone redirect to ingress); the packet itself leaves as a reset to the
 *    peer. Checksums are updated incrementally, so offloaded (partial) ones stay right.
 *  - xdp (a packet from the peer): the frame becomes a bare ack just left of the local
 *    socket's window (payload cut, seq - 1). A live socket answers it with an immediate
 *    ack, which the tc program turns into the two resets above; a socket already gone
 *    makes the stack answer the peer with a reset. Nothing of the payload is delivered,
 *    and no XDP_TX is needed (veth without a peer program cannot transmit it).
 *  - tc ingress (a packet from the peer, on an interface judged at tc): the same probe,
 *    but the payload stays (a GRO packet is not trimmed) and the segment moves left by it:
 *    all of it is old data, which the socket discards and answers with an immediate ack.
 * Only plain headers are rewritten (ipv4 without options, ipv6 without extension
 * headers); other packets of a cut connection are just dropped. */
#ifndef MOAT_RESET_H
#define MOAT_RESET_H

#include "packet.h"

#define BPF_F_INGRESS_ 1

static __always_inline __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum & 0xffff;
}

struct pseudo6 {
	__u8 src[16];
	__u8 dst[16];
	__be32 len;
	__u8 zero[3];
	__u8 nexthdr;
};

struct pseudo4 {
	__u8 src[4];
	__u8 dst[4];
	__u8 zero;
	__u8 proto;
	__be16 len;
};

/* xdp: turn a packet from the peer into a payload-less ack with seq - 1, for the local
 * stack (XDP_PASS); 0 or -1 */
__noinline int moat_probe_xdp(struct xdp_md *ctx, const struct pkt *p)
{
	if (!p || p->t.proto != IPPROTO_TCP || p->ext || (p->tcp_flags & TCP_RST) ||
	    !(p->tcp_flags & TCP_ACK))
		return -1;
	__u32 l3 = p->l3_off, l4 = p->l4_off;
	if (l3 > 22 || l4 > 62)
		return -1;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 len = end - data;
	if (len < l4 + p->l4_len || len > 0xffff)
		return -1;

	/* just the headers: ethernet, vlan, ip, a 20-byte tcp header */
	if (bpf_xdp_adjust_tail(ctx, (int)(l4 + 20) - (int)len))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	struct tcphdr *tcp = data + l4;
	if ((void *)(tcp + 1) > end)
		return -1;

	__u64 sum;
	if (p->t.family == 4) {
		struct iphdr *ip = data + l3;
		if ((void *)(ip + 1) > end)
			return -1;
		ip->tot_len = bpf_htons(40);
		ip->check = 0;
		ip->check = csum_fold(bpf_csum_diff(NULL, 0, (void *)ip, 20, 0));
		struct pseudo4 ph = {.proto = IPPROTO_TCP, .len = bpf_htons(20)};
		__builtin_memcpy(ph.src, &ip->saddr, 4);
		__builtin_memcpy(ph.dst, &ip->daddr, 4);
		sum = bpf_csum_diff(NULL, 0, (void *)&ph, sizeof(ph), 0);
	} else {
		struct ipv6hdr *ip6 = data + l3;
		if ((void *)(ip6 + 1) > end)
			return -1;
		ip6->payload_len = bpf_htons(20);
		struct pseudo6 ph = {.len = bpf_htonl(20), .nexthdr = IPPROTO_TCP};
		__builtin_memcpy(ph.src, &ip6->saddr, 16);
		__builtin_memcpy(ph.dst, &ip6->daddr, 16);
		sum = bpf_csum_diff(NULL, 0, (void *)&ph, sizeof(ph), 0);
	}
	tcp->seq = bpf_htonl(p->seq - 1);
	/* data offset 5, then the flags: ack only */
	((__u8 *)tcp)[12] = 5 << 4;
	((__u8 *)tcp)[13] = TCP_ACK;
	tcp->check = 0;
	tcp->urg_ptr = 0;
	sum = bpf_csum_diff(NULL, 0, (void *)tcp, 20, sum);
	tcp->check = csum_fold(sum);
	return 0;
}

/* tc: swap the two ends of the frame (macs, addresses, ports): no checksum changes */
static __always_inline int skb_swap_ends(struct __sk_buff *skb, const struct pkt *p)
{
	__u8 b[32];
	__u32 l3 = p->l3_off, l4 = p->l4_off;
	__u32 at = p->t.family == 4 ? l3 + 12 : l3 + 8;

	if (bpf_skb_load_bytes(skb, 0, b, 12))
		return -1;
	bpf_skb_store_bytes(skb, 0, b + 6, 6, 0);
	bpf_skb_store_bytes(skb, 6, b, 6, 0);
	if (p->t.family == 4) {
		if (bpf_skb_load_bytes(skb, at, b, 8))
			return -1;
		bpf_skb_store_bytes(skb, at, b + 4, 4, 0);
		bpf_skb_store_bytes(skb, at + 4, b, 4, 0);
	} else {
		if (bpf_skb_load_bytes(skb, at, b, 32))
			return -1;
		bpf_skb_store_bytes(skb, at, b + 16, 16, 0);
		bpf_skb_store_bytes(skb, at + 16, b, 16, 0);
	}
	if (bpf_skb_load_bytes(skb, l4, b, 4))
		return -1;
	bpf_skb_store_bytes(skb, l4, b + 2, 2, 0);
	bpf_skb_store_bytes(skb, l4 + 2, b, 2, 0);
	return 0;
}

/* tc: seq, ack and flags of the tcp header, checksum updated incrementally */
static __always_inline void skb_set_tcp(struct __sk_buff *skb, __u32 l4, __be32 *cur_seq,
					__be32 *cur_ack, __be16 *cur_flags, __u32 seq, __u32 ack,
					__u8 flags)
{
	__be32 nseq = bpf_htonl(seq), nack = bpf_htonl(ack);
	__be16 nflags = bpf_htons((5 << 12) | flags);
	__u32 csum = l4 + 16;

	/* the data offset stays: options and data, if any, ride along and are ignored */
	nflags = (*cur_flags & bpf_htons(0xf000)) | (nflags & bpf_htons(0x0fff));
	bpf_l4_csum_replace(skb, csum, *cur_seq, nseq, 4);
	bpf_skb_store_bytes(skb, l4 + 4, &nseq, 4, 0);
	bpf_l4_csum_replace(skb, csum, *cur_ack, nack, 4);
	bpf_skb_store_bytes(skb, l4 + 8, &nack, 4, 0);
	bpf_l4_csum_replace(skb, csum, *cur_flags, nflags, 2);
	bpf_skb_store_bytes(skb, l4 + 12, &nflags, 2, 0);
	*cur_seq = nseq;
	*cur_ack = nack;
	*cur_flags = nflags;
}

/* tc: reset the local socket (a clone) and the peer (this packet); 0 or -1 */
__noinline int moat_reset_skb(struct __sk_buff *skb, const struct pkt *p)
{
	if (!p || p->t.proto != IPPROTO_TCP || p->ext || (p->tcp_flags & TCP_RST))
		return -1;
	__u32 l4 = p->l4_off;
	if (p->l3_off > 22 || l4 > 62)
		return -1;
	__be32 seq, ack;
	__be16 fl;
	if (bpf_skb_load_bytes(skb, l4 + 4, &seq, 4) || bpf_skb_load_bytes(skb, l4 + 8, &ack, 4) ||
	    bpf_skb_load_bytes(skb, l4 + 12, &fl, 2))
		return -1;

	/* a reset from the peer to the local socket: seq = what the socket expects next */
	if (skb_swap_ends(skb, p))
		return -1;
	skb_set_tcp(skb, l4, &seq, &ack, &fl, p->ack, p->seq, TCP_RST | TCP_ACK);
	bpf_clone_redirect(skb, skb->ifindex, BPF_F_INGRESS_);

	/* back to this packet's direction: a reset to the peer, in its window */
	if (skb_swap_ends(skb, p))
		return -1;
	skb_set_tcp(skb, l4, &seq, &ack, &fl, p->seq, p->ack, TCP_RST | TCP_ACK);
	return 0;
}

/* tc ingress: a packet from the peer becomes a probe for the local socket (as moat_probe_xdp),
 * ack only and ending at seq - 1, its payload kept as old data; 0 or -1 */
__noinline int moat_probe_skb(struct __sk_buff *skb, const struct pkt *p)
{
	if (!p || p->t.proto != IPPROTO_TCP || p->ext || (p->tcp_flags & TCP_RST) ||
	    !(p->tcp_flags & TCP_ACK))
		return -1;
	__u32 l4 = p->l4_off;
	if (p->l3_off > 22 || l4 > 62)
		return -1;
	/* the datagram's end, not the frame's (a short frame carries ethernet padding); the
	 * frame's for big tcp (a length of 0) */
	__u32 end = p->l3_end > l4 ? p->l3_end : skb->len;
	if (end < l4 + p->l4_len)
		return -1;
	__u32 payload = end - l4 - p->l4_len;
	__be32 seq, ack;
	__be16 fl;
	if (bpf_skb_load_bytes(skb, l4 + 4, &seq, 4) || bpf_skb_load_bytes(skb, l4 + 8, &ack, 4) ||
	    bpf_skb_load_bytes(skb, l4 + 12, &fl, 2))
		return -1;
	skb_set_tcp(skb, l4, &seq, &ack, &fl, p->seq - payload - 1, p->ack, TCP_ACK);
	return 0;
}

#endif /* MOAT_RESET_H */
