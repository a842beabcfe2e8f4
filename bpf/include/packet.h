/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The facts of one frame: addresses, protocol, ports, tcp flags, icmp type and code,
 * fragment position, and for icmp errors the embedded packet's tuple. */
#ifndef MOAT_PACKET_H
#define MOAT_PACKET_H

#include "parse.h"

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

enum pkt_kind {
	PKT_IP = 0,
	PKT_NON_IP = 1,
	PKT_MALFORMED = 2,
};

enum pkt_frag {
	FRAG_NONE = 0,
	FRAG_FIRST = 1, /* offset 0, more fragments follow: judged normally */
	FRAG_LATER = 2, /* no l4 header */
};

/* addresses 16 bytes (ipv4 mapped), ports host order */
struct tuple {
	__u8 src[16];
	__u8 dst[16];
	__u16 sport; /* tcp/udp; icmp: the flow id (a query's id, or type << 8 | code) */
	__u16 dport;
	__u8 family;
	__u8 proto;
	/* icmp: which end opened the flow, 1 + (0: the source, 1: the destination); 0 for other
	 * protocols. A response's asker is its destination: only the response matches the query's
	 * entry, never a query sent back the other way */
	__u8 icmp_asker;
	__u8 icmp_query; /* icmp: the query's type for a query or its response, else 0 */
} __attribute__((aligned(8)));

struct pkt {
	struct tuple t;
	struct tuple rel; /* icmp errors: the embedded packet (valid if has_rel) */
	__u32 frag_id;
	__u32 seq; /* tcp, host order */
	__u32 ack;
	__u16 l3_off; /* from the start of the frame */
	__u16 l4_off;
	__u16 l4_len; /* tcp: header length */
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 frag; /* enum pkt_frag */
	__u8 has_rel;
	__u8 ext;	/* ipv4 options or ipv6 extension headers present */
	__u8 hop_limit; /* ipv6 hop limit, ipv4 ttl */
	/* ids (ids.h): 1 + the direction whose copy state moat_ids_take moved on for this packet
	 * (0: none), copied or not */
	__u8 ids_noted;
	__u8 frag_proto; /* a fragment's protocol as its fragment header (v6) or ip header says */
	__u8 pad;
	__u32 l3_end; /* where the ip datagram ends in the frame (0: unknown, big tcp) */
	/* ids (ids.h): what of the packet the program copies, as the judge's moat_ids_take set it
	 * (ids_len 0: nothing) */
	__u32 ids_off;
	__u32 ids_len;
	__u8 eth_dst[6]; /* the frame's MAC addresses (a stacked macvlan's, judge.h) */
	__u8 eth_src[6];
};

static __always_inline void addr_v4(__u8 *dst, const void *src)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, src, 4);
}

/* query/response pairs: v4 echo 8/0, timestamp 13/14, information 15/16, address mask 17/18
 * (identifier at bytes 4-5); v6 echo 128/129, node information 139/140 (qtype at bytes 4-5, the
 * same in the query and its response). Returns the query's type and sets *response, or 0 */
static __always_inline __u8 icmp_query_of(__u8 proto, __u8 type, int *response)
{
	*response = 0;
	if (proto == IPPROTO_ICMP) {
		if (type == 8 || type == 0) {
			*response = type == 0;
			return 8;
		}
		if (type >= 13 && type <= 18) {
			*response = !(type & 1);
			return type - *response;
		}
		return 0;
	}
	if (type == 128 || type == 129) {
		*response = type == 129;
		return 128;
	}
	if (type == 139 || type == 140) {
		*response = type == 140;
		return 139;
	}
	return 0;
}

/* the icmp flow of a message: a query and its response share the query's id and type, asked by
 * the query's sender; any other message is a flow of its type and code, opened by its sender */
static __always_inline void icmp_flow(struct tuple *t, const struct icmp_moat *icmp)
{
	int response;
	__u8 query = icmp_query_of(t->proto, icmp->type, &response);

	t->icmp_query = query;
	t->icmp_asker = 1 + (query && response);
	t->sport = query ? bpf_ntohs(icmp->id) : (__u16)icmp->type << 8 | icmp->code;
	t->dport = t->sport;
}

static __always_inline int icmp_is_response(__u8 proto, __u8 type)
{
	int response;
	return icmp_query_of(proto, type, &response) && response;
}

/* v4: destination unreachable, time exceeded, parameter problem; v6: the same and
 * packet too big */
#define ICMP4_ERRORS ((1u << 3) | (1u << 11) | (1u << 12))

static __always_inline int icmp_is_error(__u8 proto, __u8 type)
{
	if (proto == IPPROTO_ICMP)
		return type < 32 && ((ICMP4_ERRORS >> type) & 1);
	return (__u8)(type - 1) < 4;
}

/* the packet inside an icmp error (its ip header and first 8 bytes); 0 or -1 */
static __always_inline int parse_embedded(struct cursor *c, struct tuple *rel, __u8 family)
{
	int proto;

	if (family == 4) {
		struct iphdr *ip;
		proto = parse_ipv4(c, &ip);
		if (proto < 0)
			return -1;
		addr_v4(rel->src, &ip->saddr);
		addr_v4(rel->dst, &ip->daddr);
	} else {
		struct ipv6hdr *ip6;
		proto = parse_ipv6(c, &ip6);
		if (proto < 0 || ipv6_is_ext(proto))
			return -1;
		__builtin_memcpy(rel->src, &ip6->saddr, 16);
		__builtin_memcpy(rel->dst, &ip6->daddr, 16);
	}
	rel->family = family;
	rel->proto = proto;
	struct icmp_moat *l4 = c->pos;
	if ((void *)(l4 + 1) > c->end)
		return -1;
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		/* the first 4 bytes of tcp and udp are the ports */
		__be16 *ports = (__be16 *)l4;
		rel->sport = bpf_ntohs(ports[0]);
		rel->dport = bpf_ntohs(ports[1]);
		return 0;
	}
	if ((proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6_)) {
		int response;
		if (!icmp_query_of(proto, l4->type, &response))
			return -1;
		icmp_flow(rel, l4);
		return 0;
	}
	return -1;
}

/* the l4 header of a first fragment or an unfragmented packet; 0 or -1 */
static __always_inline int parse_l4(struct cursor *c, struct pkt *p)
{
	struct tuple *t = &p->t;

	if (t->proto == IPPROTO_TCP) {
		struct tcphdr *tcp;
		if (parse_tcp(c, &tcp) < 0)
			return -1;
		t->sport = bpf_ntohs(tcp->source);
		t->dport = bpf_ntohs(tcp->dest);
		p->tcp_flags = ((__u8 *)tcp)[13];
		p->seq = bpf_ntohl(tcp->seq);
		p->ack = bpf_ntohl(tcp->ack_seq);
		p->l4_len = tcp->doff * 4;
		return 0;
	}
	if (t->proto == IPPROTO_UDP) {
		struct udphdr *udp;
		if (parse_udp(c, &udp) < 0)
			return -1;
		t->sport = bpf_ntohs(udp->source);
		t->dport = bpf_ntohs(udp->dest);
		return 0;
	}
	if (t->proto == IPPROTO_ICMP || t->proto == IPPROTO_ICMPV6_) {
		struct icmp_moat *icmp;
		if (parse_icmp(c, &icmp) < 0)
			return -1;
		__u8 type = icmp->type;
		p->icmp_type = type;
		p->icmp_code = icmp->code;
		icmp_flow(t, icmp);
		if (icmp_is_error(t->proto, type))
			p->has_rel = parse_embedded(c, &p->rel, t->family) == 0;
		return 0;
	}
	/* other protocols: no ports */
	return 0;
}

enum {
	PKT_L4 = 3, /* parse_l3: the l4 header follows at p->l4_off */
};

/* l4 headers start at most this far into the frame */
#define MOAT_L4_MAX 16384
/* extension header steps: every header is at least 8 bytes, so the walk ends past MOAT_L4_MAX
 * (malformed) before it runs out of steps. The kernel takes chains of any length: a chain moat
 * gave up on would pass where it does not drop what it cannot read */
#define MOAT_EXT_STEPS (MOAT_L4_MAX / 8 + 1)

/* the ipv6 extension header walk's context (bpf_loop); where the next header starts and which
 * it is are kept in p->l4_off and p->t.proto */
struct ext_walk {
	struct pkt *p;
	void *start; /* the frame */
	void *end;
	int ret; /* EXT_WALKING until a step ends the walk */
};

#define EXT_WALKING -3

/* One extension header: 0 to go on to the next, 1 when the walk ends (w->ret: the l4 protocol
 * or PARSE_MALFORMED). A non-first fragment ends it: what follows its fragment header is not a
 * header. The offset and the protocol are read back from the packet's record, numbers the
 * verifier does not follow from one step to the next: it checks this step once, not once per
 * chain of header kinds */
static long ipv6_ext_step(__u64 k, void *ctx)
{
	struct ext_walk *w = ctx;
	struct pkt *p = w->p;
	int nexthdr = p->t.proto;
	__u32 off = p->l4_off;

	w->ret = nexthdr;
	if (!ipv6_is_ext(nexthdr))
		return 1;
	w->ret = PARSE_MALFORMED;
	if (off > MOAT_L4_MAX)
		return 1;
	/* every extension header is at least 8 bytes */
	struct ipv6_frag_moat *eh = w->start + off;
	if ((void *)(eh + 1) > w->end)
		return 1;
	__u32 len;
	__u16 frag_off = 0;
	if (nexthdr == IPPROTO_FRAGMENT_) {
		frag_off = bpf_ntohs(eh->frag_off);
		p->frag_id = bpf_ntohl(eh->id);
		p->frag = frag_off >> 3 ? FRAG_LATER : frag_off & 1 ? FRAG_FIRST : FRAG_NONE;
		p->frag_proto = eh->nexthdr;
		len = 8;
	} else if (nexthdr == IPPROTO_AH_) {
		/* ah counts 4-byte units minus 2, the others 8-byte units minus 1 */
		len = (eh->reserved + 2) * 4;
	} else {
		len = (eh->reserved + 1) * 8;
	}
	if ((void *)eh + len > w->end)
		return 1;
	p->t.proto = eh->nexthdr;
	p->l4_off = off + len;
	w->ret = eh->nexthdr;
	if (frag_off >> 3)
		return 1;
	w->ret = EXT_WALKING;
	return 0;
}

/* ethernet, vlan, ip (v6: extension headers); fills p up to l4_off */
static __always_inline int parse_l3(struct cursor *c, struct pkt *p)
{
	void *start = c->pos;
	int eth_proto = parse_eth(c);

	__builtin_memset(p, 0, sizeof(*p));
	if (eth_proto < 0)
		return PKT_MALFORMED;
	struct ethhdr *eth = start;
	if ((void *)(eth + 1) <= c->end) {
		__builtin_memcpy(p->eth_dst, eth->h_dest, 6);
		__builtin_memcpy(p->eth_src, eth->h_source, 6);
	}
	if (eth_proto != ETH_P_IP && eth_proto != ETH_P_IPV6)
		return PKT_NON_IP;
	p->l3_off = c->pos - start;

	if (eth_proto == ETH_P_IP) {
		struct iphdr *ip;
		int proto = parse_ipv4(c, &ip);
		if (proto < 0)
			return PKT_MALFORMED;
		p->t.family = 4;
		p->t.proto = proto;
		p->ext = ip->ihl != 5;
		p->hop_limit = ip->ttl;
		/* tot_len 0: big tcp, the length unknown (as payload_len 0 in ipv6) */
		if (ip->tot_len)
			p->l3_end = p->l3_off + bpf_ntohs(ip->tot_len);
		addr_v4(p->t.src, &ip->saddr);
		addr_v4(p->t.dst, &ip->daddr);
		__u16 frag = bpf_ntohs(ip->frag_off);
		if (frag & 0x1fff)
			p->frag = FRAG_LATER;
		else if (frag & 0x2000)
			p->frag = FRAG_FIRST;
		p->frag_id = bpf_ntohs(ip->id);
		p->frag_proto = proto;
		if (p->frag == FRAG_LATER)
			return PKT_IP;
		p->l4_off = c->pos - start;
		return PKT_L4;
	}
	struct ipv6hdr *ip6;
	int nexthdr = parse_ipv6(c, &ip6);
	if (nexthdr < 0)
		return PKT_MALFORMED;
	__builtin_memcpy(p->t.src, &ip6->saddr, 16);
	__builtin_memcpy(p->t.dst, &ip6->daddr, 16);
	p->t.family = 6;
	p->hop_limit = ip6->hop_limit;
	if (ip6->payload_len)
		p->l3_end = p->l3_off + sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	p->ext = ipv6_is_ext(nexthdr);
	/* the extension headers, p->l4_off and p->t.proto moving past each */
	p->t.proto = nexthdr;
	p->l4_off = c->pos - start;
	struct ext_walk w = {.p = p, .start = start, .end = c->end, .ret = EXT_WALKING};
	bpf_loop(MOAT_EXT_STEPS, ipv6_ext_step, &w, 0);
	if (w.ret == PARSE_MALFORMED || w.ret == EXT_WALKING)
		return PKT_MALFORMED;
	if (p->frag == FRAG_LATER) {
		p->l4_off = 0;
		return PKT_IP;
	}
	return PKT_L4;
}

/* global functions: each is verified once per program, not once per path that leads
 * to it; l3 and l4 are apart so the paths through one do not multiply the other's */
__noinline int moat_l4_xdp(struct xdp_md *ctx, struct pkt *p)
{
	void *data = (void *)(long)ctx->data;
	struct cursor c = {.end = (void *)(long)ctx->data_end};

	if (!p || p->l4_off > MOAT_L4_MAX)
		return PKT_MALFORMED;
	c.pos = data + p->l4_off;
	if (parse_l4(&c, p) < 0)
		return PKT_MALFORMED;
	/* headers past the datagram's end were read from the frame's padding */
	return p->l3_end && c.pos - data > p->l3_end ? PKT_MALFORMED : PKT_IP;
}

__noinline int moat_parse_xdp(struct xdp_md *ctx, struct pkt *p)
{
	struct cursor c = {.pos = (void *)(long)ctx->data, .end = (void *)(long)ctx->data_end};

	if (!p)
		return PKT_MALFORMED;
	int kind = parse_l3(&c, p);
	return kind == PKT_L4 ? moat_l4_xdp(ctx, p) : kind;
}

__noinline int moat_l4_skb(struct __sk_buff *skb, struct pkt *p)
{
	void *data = (void *)(long)skb->data;
	struct cursor c = {.end = (void *)(long)skb->data_end};

	if (!p || p->l4_off > MOAT_L4_MAX)
		return PKT_MALFORMED;
	c.pos = data + p->l4_off;
	if (parse_l4(&c, p) < 0)
		return PKT_MALFORMED;
	/* headers past the datagram's end were read from the frame's padding */
	return p->l3_end && c.pos - data > p->l3_end ? PKT_MALFORMED : PKT_IP;
}

__noinline int moat_parse_skb(struct __sk_buff *skb, struct pkt *p)
{
	struct cursor c = {.pos = (void *)(long)skb->data, .end = (void *)(long)skb->data_end};

	if (!p)
		return PKT_MALFORMED;
	int kind = parse_l3(&c, p);
	return kind == PKT_L4 ? moat_l4_skb(skb, p) : kind;
}

#endif /* MOAT_PACKET_H */
