/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The accept side, packet hooks' part (docs/socket-hooks.md, "The accept side"). A new
 * ingress connection to a local socket is seen by xdp before any socket; the accept hook
 * (accept_hooks.h, cgroup_skb ingress) sees the same first packet next, with the socket that
 * receives it and so its owner. Xdp therefore leaves the entry it creates to the accept hook
 * (MOAT_CT_AWAIT): the hook adds the owner and sends the opening event; and when the packet
 * hooks' verdict could change with the owner (a process rule, MOAT_CT_PENDING), xdp passes
 * the syn undecided and the hook judges it. When no accept hook sees the connection (no
 * socket, or one outside attach.cgroup), the first packet either way that xdp or tc sees
 * settles it with the packet hooks' verdict. */
#ifndef MOAT_ACCEPT_H
#define MOAT_ACCEPT_H

#include "maps.h"
#include "counters.h"
#include "packet.h"
#include "events.h"
#include "classify.h"

static __always_inline int is_syn(const struct pkt *p)
{
	return p->t.proto == IPPROTO_TCP &&
	       (p->tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST)) == TCP_SYN;
}

/* whether a process rule may decide a new ingress connection that came in by `ifindex` and
 * that the packet hooks' tables give to `rule`: the socket hooks' tables find an earlier rule
 * when every process rule of that interface matches (the interface class's any-process class,
 * MOAT_ANY_PROCESS less the class). They match a superset of what the packet hooks' do (process
 * rules; rules naming client ports, which they do not have), so an earlier rule is one that may
 * match; the same rule means no process rule can */
static __always_inline int accept_may_decide(__u32 slot, const struct moat_meta *m, struct facts *f,
					     __u32 rule, __u32 ifindex)
{
	if (!m->socket_image || rule < m->first_ingress_process_rule)
		return 0;
	__u32 ci = m->proc_ni > 1 ? key_class(&tbl_proc_iface, slot, &ifindex) : 0;
	__u16 port = f->client_port;
	f->client_port = MOAT_ANY_PROCESS - ci;
	__u32 any = classify(slot, 1, m, f);
	f->client_port = port;
	return any < rule;
}

/* the flags of a new entry that the accept hook completes: an ingress udp flow or tcp syn
 * that passes (a blocked one reaches no socket), and for a tcp syn that a process rule may
 * decide, the verdict too */
static __always_inline __u32 accept_await(__u32 slot, const struct moat_meta *m,
					  const struct pkt *p, struct facts *f, __u32 rule,
					  __u8 verdict, __u32 ifindex)
{
	if (f->dir != MOAT_DIR_INGRESS || !m->accept)
		return 0;
	if (is_syn(p) && accept_may_decide(slot, m, f, rule, ifindex))
		return MOAT_CT_AWAIT | MOAT_CT_PENDING;
	if (verdict == MOAT_EV_BLOCKED)
		return 0;
	if (p->t.proto == IPPROTO_UDP || is_syn(p))
		return MOAT_CT_AWAIT;
	return 0;
}

/* a syn retransmitted while its connection waits for the accept hook's verdict: passed
 * undecided again (the hook did not run for the first one) */
static __always_inline int accept_waits(const struct moat_ct *ct, const struct pkt *p, __u8 from)
{
	return (ct->flags & MOAT_CT_PENDING) && !from && is_syn(p);
}

/* an entry no accept hook completed: the packet hooks' verdict stands, without a process,
 * and its opening is reported now (once, by whoever clears MOAT_CT_AWAIT) */
static __always_inline void accept_settle(__u32 slot, const struct moat_meta *m,
					  const struct moat_ct_key *k, struct moat_ct *ct,
					  const struct ev_from *from)
{
	__u32 old = __sync_fetch_and_and(&ct->flags, ~(MOAT_CT_AWAIT | MOAT_CT_PENDING));

	if (!(old & MOAT_CT_AWAIT))
		return;
	if ((old & MOAT_CT_PENDING) && ct->generation == m->generation)
		count_rule(slot, m, ct->rule, 0, 1);
	if (old & MOAT_CT_REPORTED)
		emit(k, ct, ct->verdict, MOAT_REASON_NEW, from);
}

#endif /* MOAT_ACCEPT_H */
