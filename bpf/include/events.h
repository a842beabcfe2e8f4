/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Events: one ring-buffer record per reported verdict or close, oriented by the
 * connection (local = this host), and one per other close for the flow records (a ring of
 * their own). A full ring is counted, never waited for. */
#ifndef MOAT_EVENTS_H
#define MOAT_EVENTS_H

#include "maps.h"
#include "counters.h"
#include "classify.h"
#include "ring_wake.h"

struct ev_from {
	__u8 hook; /* enum moat_hook */
	/* 1: ct->last_ns is the time of the packet being judged (the packet hooks set it before
	 * they report), and the event's time: a clock read costs tens of ns in a vm */
	__u8 at_last;
	__u32 ifindex;
	__u32 redirect; /* a redirect's index + 1; 0: none */
};

/* reports connection (k, ct): type is the verdict or MOAT_EV_CLOSED. A global function:
 * verified once */
__noinline int emit(const struct moat_ct_key *k, const struct moat_ct *ct, __u8 type, __u8 reason,
		    const struct ev_from *from)
{
	if (!k || !ct || !from)
		return -1;
	__u64 now = from->at_last ? ct->last_ns : bpf_ktime_get_ns();
	struct moat_event *ev;
	/* flow-only records go to their own ring; one it has no room for is not an event lost:
	 * the daemon tells it from MOAT_CNT_CLOSED */
	if (type == MOAT_EV_FLOW)
		ev = bpf_ringbuf_reserve(&flow_records, sizeof(*ev), 0);
	else
		ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		if (type != MOAT_EV_FLOW)
			count(MOAT_CNT_EVENT_LOST, 0);
		return -1;
	}
	/* the remote is the initiator of an ingress connection, the responder otherwise */
	int remote_side = ct->direction == MOAT_DIR_INGRESS ? ct->initiator : !ct->initiator;
	int ported = proto_ported(k->protocol);

	if (remote_side) {
		__builtin_memcpy(ev->remote, k->addr1, 16);
		__builtin_memcpy(ev->local, k->addr0, 16);
		ev->remote_port = ported ? k->port1 : 0;
		ev->local_port = ported ? k->port0 : 0;
	} else {
		__builtin_memcpy(ev->remote, k->addr0, 16);
		__builtin_memcpy(ev->local, k->addr1, 16);
		ev->remote_port = ported ? k->port0 : 0;
		ev->local_port = ported ? k->port1 : 0;
	}
	ev->ts_ns = now;
	ev->conn_id = ct->id;
	ev->packets = ct->packets[0] + ct->packets[1];
	ev->bytes = ct->bytes[0] + ct->bytes[1];
	ev->duration_ns = type >= MOAT_EV_CLOSED ? ct->last_ns - ct->created_ns : 0;
	ev->ifindex = from->ifindex;
	ev->rule = ct->rule;
	ev->generation = ct->generation;
	ev->type = type;
	ev->hook = from->hook;
	ev->family = k->family;
	ev->protocol = k->protocol;
	ev->direction = ct->direction;
	ev->mode = ct->mode;
	ev->verdict = ct->verdict;
	ev->reason = reason;
	ev->icmp_type = ct->icmp_type;
	ev->icmp_code = ct->icmp_code;
	ev->tcp_state = ct->tcp_state;
	ev->pad = 0;
	ev->redirect = from->redirect;
	ev->owner = ct->owner;
	/* a record of the last packet's time is sent now */
	if (from->at_last)
		now = bpf_ktime_get_ns();
	bpf_ringbuf_submit(
	    ev, ring_wake(type == MOAT_EV_FLOW ? &flows_woken_ns : &events_woken_ns, now));
	return 0;
}

/* counts the close once (whoever sets MOAT_CT_CLOSE_SENT first) and reports it when the
 * opening was reported, or when moat itself cut the connection; any other close still sends
 * its summary (packets, bytes, duration) for the flow records */
static __always_inline void emit_closed(const struct moat_ct_key *k, struct moat_ct *ct,
					__u8 reason, const struct ev_from *from)
{
	__u32 old = __sync_fetch_and_or(&ct->flags, MOAT_CT_CLOSE_SENT);

	if (old & MOAT_CT_CLOSE_SENT)
		return;
	count(MOAT_CNT_CLOSED, 0);
	if ((old & MOAT_CT_REPORTED) || reason == MOAT_REASON_MAX_DURATION)
		emit(k, ct, MOAT_EV_CLOSED, reason, from);
	else
		emit(k, ct, MOAT_EV_FLOW, reason, from);
}

#endif /* MOAT_EVENTS_H */
