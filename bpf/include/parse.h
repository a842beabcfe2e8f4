/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Packet parsing helpers: a cursor, a bounds check per header, the next
 * protocol or -1. Used by the XDP and TC programs alike. */
#ifndef MOAT_PARSE_H
#define MOAT_PARSE_H

#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define MOAT_MAX_VLAN 2

#define IPPROTO_HOPOPTS_ 0
#define IPPROTO_ROUTING_ 43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_AH_ 51
#define IPPROTO_DSTOPTS_ 60
#define IPPROTO_ICMPV6_ 58

#define PARSE_MALFORMED -1
#define PARSE_TOO_DEEP -2

struct cursor {
	void *pos;
	void *end;
};

struct vlan_hdr_moat {
	__be16 tci;
	__be16 proto;
};

struct ipv6_frag_moat {
	__u8 nexthdr;
	__u8 reserved;	 /* the length of the other extension headers */
	__be16 frag_off; /* offset << 3 | M */
	__be32 id;
};

/* the first 8 bytes of every icmp / icmpv6 message */
struct icmp_moat {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be16 id; /* echo */
	__be16 seq;
};

/* ethernet header plus up to two VLAN tags; returns the L3 ethertype (host order),
 * PARSE_MALFORMED (truncated) or PARSE_TOO_DEEP (a third tag) */
static __always_inline int parse_eth(struct cursor *c)
{
	struct ethhdr *eth = c->pos;
	if ((void *)(eth + 1) > c->end)
		return PARSE_MALFORMED;
	c->pos = eth + 1;
	__u16 proto = bpf_ntohs(eth->h_proto);

#pragma unroll
	for (int i = 0; i < MOAT_MAX_VLAN; i++) {
		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			return proto;
		struct vlan_hdr_moat *vh = c->pos;
		if ((void *)(vh + 1) > c->end)
			return PARSE_MALFORMED;
		c->pos = vh + 1;
		proto = bpf_ntohs(vh->proto);
	}
	if (proto == ETH_P_8021Q || proto == ETH_P_8021AD)
		return PARSE_TOO_DEEP;
	return proto;
}

/* IPv4 header with options; returns the L4 protocol or -1 (truncated, bad version or IHL,
 * total length shorter than the header) */
static __always_inline int parse_ipv4(struct cursor *c, struct iphdr **out)
{
	struct iphdr *ip = c->pos;
	if ((void *)(ip + 1) > c->end)
		return PARSE_MALFORMED;
	if (ip->version != 4 || ip->ihl < 5)
		return PARSE_MALFORMED;
	__u32 hlen = ip->ihl * 4;
	__u16 tot = bpf_ntohs(ip->tot_len);
	/* tot_len 0 is big tcp (gso packets over 64k) */
	if (tot && tot < hlen)
		return PARSE_MALFORMED;
	void *next = (void *)ip + hlen;
	if (next > c->end)
		return PARSE_MALFORMED;
	c->pos = next;
	*out = ip;
	return ip->protocol;
}

/* fixed IPv6 header; returns the next header or -1 */
static __always_inline int parse_ipv6(struct cursor *c, struct ipv6hdr **out)
{
	struct ipv6hdr *ip6 = c->pos;
	if ((void *)(ip6 + 1) > c->end)
		return PARSE_MALFORMED;
	if (ip6->version != 6)
		return PARSE_MALFORMED;
	c->pos = ip6 + 1;
	*out = ip6;
	return ip6->nexthdr;
}

#define IPV6_EXT_MASK                                                                              \
	((1ull << IPPROTO_HOPOPTS_) | (1ull << IPPROTO_ROUTING_) | (1ull << IPPROTO_FRAGMENT_) |   \
	 (1ull << IPPROTO_AH_) | (1ull << IPPROTO_DSTOPTS_))

/* hop-by-hop, routing, fragment, authentication or destination options */
static __always_inline int ipv6_is_ext(int nexthdr)
{
	return nexthdr < 64 && ((IPV6_EXT_MASK >> nexthdr) & 1);
}

/* TCP header (options included); 0 or -1 (truncated, data offset < 5) */
static __always_inline int parse_tcp(struct cursor *c, struct tcphdr **out)
{
	struct tcphdr *tcp = c->pos;
	if ((void *)(tcp + 1) > c->end)
		return PARSE_MALFORMED;
	if (tcp->doff < 5)
		return PARSE_MALFORMED;
	void *next = (void *)tcp + tcp->doff * 4;
	if (next > c->end)
		return PARSE_MALFORMED;
	c->pos = next;
	*out = tcp;
	return 0;
}

static __always_inline int parse_udp(struct cursor *c, struct udphdr **out)
{
	struct udphdr *udp = c->pos;
	if ((void *)(udp + 1) > c->end)
		return PARSE_MALFORMED;
	c->pos = udp + 1;
	*out = udp;
	return 0;
}

/* icmp and icmpv6: every message has at least 8 bytes of header */
static __always_inline int parse_icmp(struct cursor *c, struct icmp_moat **out)
{
	struct icmp_moat *icmp = c->pos;
	if ((void *)(icmp + 1) > c->end)
		return PARSE_MALFORMED;
	c->pos = icmp + 1;
	*out = icmp;
	return 0;
}

#endif /* MOAT_PARSE_H */
