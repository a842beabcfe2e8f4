/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Scrubbing (docs/policy.md, "Scrubbing"): tcp packets whose flags no tcp stack sends together
 * (SYN+FIN, SYN+RST, no flag at all, FIN+PSH+URG "xmas") are scans or evasion attempts. They are
 * dropped where the policy prevents, counted, and reported at most once a second per cpu. */
#ifndef MOAT_SCRUB_H
#define MOAT_SCRUB_H

#include "maps.h"
#include "counters.h"
#include "packet.h"
#include "conntrack.h"
#include "ratelimit.h"

#define TCP_PSH 0x08
#define TCP_URG 0x20

static __always_inline int tcp_flags_invalid(__u8 f)
{
	if ((f & (TCP_SYN | TCP_FIN)) == (TCP_SYN | TCP_FIN))
		return 1;
	if ((f & (TCP_SYN | TCP_RST)) == (TCP_SYN | TCP_RST))
		return 1;
	if (!(f & 0x3f))
		return 1;
	return (f & (TCP_FIN | TCP_PSH | TCP_URG)) == (TCP_FIN | TCP_PSH | TCP_URG);
}

/* the packet's invalid flags, reported: one event a second per cpu, with the packets since the
 * previous one. A global function: verified once */
__noinline int scrub_report(const struct pkt *p, const struct ev_from *from, __u8 prevent,
			    __u64 now)
{
	__u32 zero = 0;

	if (!p || !from)
		return 0;
	struct scrub_tally *t = bpf_map_lookup_elem(&scrub_reports, &zero);
	if (!t)
		return 0;
	now = limit_now(now);
	t->packets += 1;
	if (t->reported_ns && now - t->reported_ns < NSEC)
		return 0;
	__u64 n = t->packets;
	t->packets = 0;
	t->reported_ns = now;
	limit_report(p, NULL, n, prevent ? MOAT_EV_BLOCKED : MOAT_EV_DETECTED,
		     MOAT_REASON_TCP_FLAGS, from);
	return 1;
}

#endif /* MOAT_SCRUB_H */
