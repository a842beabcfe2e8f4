/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Basic networking (docs/datapath.md): what a host needs to stay on its network passes every
 * hook unjudged, in both directions, like ARP: neighbour and router discovery (only with hop
 * limit 255, which no router forwards), MLD, IGMP and the DHCPv4 / DHCPv6 client's traffic. A
 * class that a rule names explicitly (the compiler sets its bit in meta.basics_judged) is
 * judged like any other traffic. src/policy/network-basics.ts is the same in TypeScript. */
#ifndef MOAT_BASICS_H
#define MOAT_BASICS_H

#include "moat_abi.h"
#include "parse.h"

#define IPPROTO_IGMP_ 2

/* the class (enum moat_basics) of traffic with these facts, or -1 */
static __always_inline int basics_class(__u8 family, __u8 proto, __u8 icmp_type, __u8 hop_limit,
					__u16 local_port, __u16 remote_port)
{
	if (family == 6 && proto == IPPROTO_ICMPV6_) {
		/* neighbour and router discovery from beyond the link is forged */
		if (icmp_type >= 133 && icmp_type <= 137)
			return hop_limit == 255 ? icmp_type - 130 : -1;
		if (icmp_type >= 130 && icmp_type <= 132)
			return icmp_type - 130;
		return icmp_type == 143 ? MOAT_BASICS_MLD2_REPORT : -1;
	}
	if (proto == IPPROTO_UDP) {
		if (family == 4 && local_port == 68 && remote_port == 67)
			return MOAT_BASICS_DHCP4;
		if (family == 6 && local_port == 546 && remote_port == 547)
			return MOAT_BASICS_DHCP6;
		return -1;
	}
	return family == 4 && proto == IPPROTO_IGMP_ ? MOAT_BASICS_IGMP : -1;
}

/* whether traffic of class `cls` passes unjudged under the policy of `m` */
static __always_inline int basics_pass(const struct moat_meta *m, int cls)
{
	return cls >= 0 && !((m->basics_judged >> cls) & 1);
}

/* a packet of direction `dir` (enum moat_direction) at a packet hook */
static __always_inline int basics_packet(const struct moat_meta *m, const struct pkt *p, __u8 dir)
{
	__u16 local = dir == MOAT_DIR_INGRESS ? p->t.dport : p->t.sport;
	__u16 remote = dir == MOAT_DIR_INGRESS ? p->t.sport : p->t.dport;

	return basics_pass(
	    m, basics_class(p->t.family, p->t.proto, p->icmp_type, p->hop_limit, local, remote));
}

#endif /* MOAT_BASICS_H */
