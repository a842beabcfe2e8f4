/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Oversized ICMP (docs/policy.md, "flood"): ICMP and ICMPv6 packets longer than flood.icmp.max_size
 * are dropped (prevent) or reported (detect), before any rule.
 * UDP amplification (docs/policy.md, "flood"): datagrams from the ports of services that answer a
 * small request with a big reply (DNS 53, NTP 123, SSDP 1900, memcached 11211, ...) are limited per
 * source address and source port, before any rule: a reflector sending a victim the replies to
 * spoofed requests is cut to the limit (prevent) or reported (detect). The limit is a rate
 * limit's (ratelimit.h: the same algorithms, the same aggregated reports, one per source per
 * report_every), with its own table, so the rules' limits keep theirs. */
#ifndef MOAT_AMPLIFICATION_H
#define MOAT_AMPLIFICATION_H

#include "ratelimit.h"
#include "syncookie.h"

/* whether a datagram from a remote is over the amplification limit (dropped in prevent). A
 * global function: verified once */
__noinline int amp_over(const struct pkt *p, const struct ev_from *from)
{
	struct moat_limit_key k __attribute__((aligned(8)));
	__u32 zero = 0, port;

	if (!p || !from || p->t.proto != IPPROTO_UDP || p->frag == FRAG_LATER)
		return 0;
	/* no amplification limit in the policy: one array read per udp packet, not a hash lookup */
	__u32 *on = bpf_map_lookup_elem(&flood_on, &zero);
	if (!on || !(*on & MOAT_FLOOD_ON_UDP))
		return 0;
	port = p->t.sport;
	if (!bpf_map_lookup_elem(&flood_udp_ports, &port))
		return 0;
	const struct moat_flood_udp *c = bpf_map_lookup_elem(&flood_udp, &zero);
	if (!c || !c->limit.id || !c->limit.period_ns || !c->limit.count)
		return 0;
	const struct moat_limit *l = &c->limit;
	/* the clock is read past the checks: a packet they let go pays nothing for it */
	__u64 now = limit_now(bpf_ktime_get_ns());
	limit_key_of(l, p, p->t.sport, &k);
	struct moat_limit_state *s = bpf_map_lookup_elem(&flood_udp_state, &k);
	if (!s) {
		struct moat_limit_state *init = bpf_map_lookup_elem(&limit_scratch, &zero);
		if (!init)
			return 0;
		__builtin_memset(init, 0, sizeof(*init));
		init->a = (__u64)l->burst * l->period_ns;
		init->t = now;
		long err = bpf_map_update_elem(&flood_udp_state, &k, init, BPF_NOEXIST);
		if (err && err != -MOAT_EEXIST) {
			flood_count(MOAT_FLOOD_UDP_FULL);
			k.flags = MOAT_LIMIT_OVERFLOW;
			k.port = 0;
			__builtin_memset(k.addr, 0, 16);
		}
		s = bpf_map_lookup_elem(&flood_udp_state, &k);
		if (!s)
			return 0;
	}
	__u64 retry = 0, over = 0;
	bpf_spin_lock(&s->lock);
	__u64 granted = limit_grant(l, s, now, 1, &retry);
	s->last_ns = now;
	if (!granted) {
		s->over += 1;
		if (!s->reported_ns || now - s->reported_ns >= l->report_ns) {
			over = s->over;
			s->over = 0;
			s->reported_ns = now;
		}
	}
	bpf_spin_unlock(&s->lock);
	if (granted)
		return 0;
	int prevent = c->mode == MOAT_MODE_PREVENT;
	flood_count(prevent ? MOAT_FLOOD_UDP_DROPPED : MOAT_FLOOD_UDP_DETECTED);
	if (over)
		limit_report(p, NULL, over, prevent ? MOAT_EV_BLOCKED : MOAT_EV_DETECTED,
			     MOAT_REASON_UDP_AMPLIFICATION, from);
	return prevent;
}

/* whether an ICMP packet from a remote is over flood.icmp.max_size (dropped in prevent); reported
 * at most once a second per cpu, with the packets since. `ip_len`: the IP packet's bytes. A
 * global function: verified once */
__noinline int icmp_oversized(const struct pkt *p, const struct ev_from *from, __u32 ip_len)
{
	__u32 zero = 0;

	if (!p || !from || (p->t.proto != IPPROTO_ICMP && p->t.proto != IPPROTO_ICMPV6_))
		return 0;
	const struct moat_flood_icmp *c = bpf_map_lookup_elem(&flood_icmp, &zero);
	if (!c || !c->max_size || ip_len <= c->max_size)
		return 0;
	int prevent = c->mode == MOAT_MODE_PREVENT;
	flood_count(prevent ? MOAT_FLOOD_ICMP_DROPPED : MOAT_FLOOD_ICMP_DETECTED);
	struct scrub_tally *t = bpf_map_lookup_elem(&flood_icmp_reports, &zero);
	if (!t)
		return prevent;
	__u64 now = limit_now(bpf_ktime_get_ns());
	t->packets += 1;
	if (!t->reported_ns || now - t->reported_ns >= NSEC) {
		__u64 n = t->packets;
		t->packets = 0;
		t->reported_ns = now;
		limit_report(p, NULL, n, prevent ? MOAT_EV_BLOCKED : MOAT_EV_DETECTED,
			     MOAT_REASON_ICMP_SIZE, from);
	}
	return prevent;
}

#endif /* MOAT_AMPLIFICATION_H */
