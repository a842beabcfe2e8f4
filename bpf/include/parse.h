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

struct cursor {
	void *pos;
	void *end;
};

struct vlan_hdr_moat {
	__be16 tci;
	__be16 proto;
};

/* ethernet header plus up to two VLAN tags; returns the L3 ethertype (host order) or -1 */
static __always_inline int parse_eth(struct cursor *c)
{
	struct ethhdr *eth = c->pos;
	if ((void *)(eth + 1) > c->end)
		return -1;
	c->pos = eth + 1;
	__u16 proto = bpf_ntohs(eth->h_proto);

#pragma unroll
	for (int i = 0; i < MOAT_MAX_VLAN; i++) {
		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		struct vlan_hdr_moat *vh = c->pos;
		if ((void *)(vh + 1) > c->end)
			return -1;
		c->pos = vh + 1;
		proto = bpf_ntohs(vh->proto);
	}
	return proto;
}

/* IPv4 header with options; returns the L4 protocol or -1 (truncated, bad IHL) */
static __always_inline int parse_ipv4(struct cursor *c, struct iphdr **out)
{
	struct iphdr *ip = c->pos;
	if ((void *)(ip + 1) > c->end)
		return -1;
	if (ip->version != 4 || ip->ihl < 5)
		return -1;
	void *next = (void *)ip + ip->ihl * 4;
	if (next > c->end)
		return -1;
	c->pos = next;
	*out = ip;
	return ip->protocol;
}

/* fixed IPv6 header; returns the next header or -1 */
static __always_inline int parse_ipv6(struct cursor *c, struct ipv6hdr **out)
{
	struct ipv6hdr *ip6 = c->pos;
	if ((void *)(ip6 + 1) > c->end)
		return -1;
	if (ip6->version != 6)
		return -1;
	c->pos = ip6 + 1;
	*out = ip6;
	return ip6->nexthdr;
}

#endif /* MOAT_PARSE_H */
