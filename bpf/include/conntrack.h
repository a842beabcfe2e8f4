/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connection tracking: the normalized key, timeouts, and the tcp state machine. */
#ifndef MOAT_CONNTRACK_H
#define MOAT_CONNTRACK_H

#include "maps.h"
#include "counters.h"
#include "packet.h"

/* idle timeouts in seconds, by state (load-time knobs) */
const volatile __u32 ct_tcp_syn_s = 120;	    /* syn sent, syn received */
const volatile __u32 ct_tcp_established_s = 432000; /* 5 days, like netfilter */
const volatile __u32 ct_tcp_fin_s = 120;	    /* one side sent fin */
const volatile __u32 ct_tcp_close_s = 10;	    /* both fins, or reset */
const volatile __u32 ct_udp_s = 60;
const volatile __u32 ct_icmp_s = 30;
const volatile __u32 ct_other_s = 600;

#define NSEC 1000000000ull

/* 1 when (src, sport) sorts after (dst, dport): src is then key side 1 */
static __always_inline int tuple_src_side(const struct tuple *t)
{
	const __u64 *a = (const __u64 *)t->src;
	const __u64 *b = (const __u64 *)t->dst;

	if (a[0] != b[0])
		return a[0] > b[0];
	if (a[1] != b[1])
		return a[1] > b[1];
	return t->sport > t->dport;
}

/* the hook's per-cpu scratch entry (ct_scratch), zeroed: a connection record built off the
 * stack (160 bytes the hooks' stacks cannot spare); NULL if missing */
static __always_inline struct moat_ct *ct_scratch_zeroed(__u8 hook)
{
	__u32 idx = hook & 7;
	struct moat_ct *ct = bpf_map_lookup_elem(&ct_scratch, &idx);

	if (ct)
		__builtin_memset(ct, 0, sizeof(*ct));
	return ct;
}

/* the normalized key of a tuple; returns the key side of the tuple's source */
static __always_inline int ct_key(const struct tuple *t, struct moat_ct_key *k)
{
	int side = tuple_src_side(t);

	if (side) {
		__builtin_memcpy(k->addr0, t->dst, 16);
		__builtin_memcpy(k->addr1, t->src, 16);
		k->port0 = t->dport;
		k->port1 = t->sport;
	} else {
		__builtin_memcpy(k->addr0, t->src, 16);
		__builtin_memcpy(k->addr1, t->dst, 16);
		k->port0 = t->sport;
		k->port1 = t->dport;
	}
	k->family = t->family;
	k->protocol = t->proto;
	/* icmp: the key side of the end that opened the flow, and the query's type: a query sent
	 * back by the responder is another flow */
	k->pad[0] = t->icmp_asker ? 1 + (side ^ (t->icmp_asker - 1)) : 0;
	k->pad[1] = t->icmp_query;
	return side;
}

static __always_inline __u64 ct_timeout_ns(const struct moat_ct *ct, __u8 proto)
{
	__u32 s;

	if (proto == IPPROTO_TCP) {
		switch (ct->tcp_state) {
		case MOAT_TCP_SYN_SENT:
		case MOAT_TCP_SYN_RECV:
			s = ct_tcp_syn_s;
			break;
		case MOAT_TCP_FIN_WAIT:
			s = ct_tcp_fin_s;
			break;
		case MOAT_TCP_TIME_WAIT:
		case MOAT_TCP_CLOSED:
			s = ct_tcp_close_s;
			break;
		default:
			s = ct_tcp_established_s;
		}
		/* a cut connection stays cut while its peers keep retrying */
		if (ct->flags & MOAT_CT_CUT)
			s = ct_tcp_fin_s;
	} else if (proto == IPPROTO_UDP) {
		s = ct_udp_s;
	} else if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6_) {
		s = ct_icmp_s;
	} else {
		s = ct_other_s;
	}
	return (__u64)s * NSEC;
}

/* how far the last tick's time (bpf_ktime_get_coarse_ns) may be behind the clock: a tick is 10
 * ms at most (CONFIG_HZ 100), with room for a late one */
#define CT_TICK_SLACK_NS 100000000ull

/* whether the entry is past its idle timeout. `*now` may be the last tick's time: a packet
 * within the slack of its timeout reads the clock (kept in *now), so an entry times out at the
 * same nanosecond as by the clock alone */
static __always_inline int ct_expired(const struct moat_ct *ct, __u8 proto, __u64 *now)
{
	__u64 timeout = ct_timeout_ns(ct, proto), last = ct->last_ns;
	__u64 latest = *now + CT_TICK_SLACK_NS;

	if (latest <= last || latest - last <= timeout)
		return 0;
	*now = bpf_ktime_get_ns();
	return *now > last && *now - last > timeout;
}

/* whether the entry decides this packet: not timed out, and not a syn opening a new
 * connection on the tuple of a closed one (or of one picked up mid-stream) */
static __always_inline int ct_usable(const struct moat_ct *ct, const struct pkt *p, __u64 *now)
{
	if (ct_expired(ct, p->t.proto, now)) {
		count(MOAT_CNT_CT_EXPIRED, 0);
		return 0;
	}
	if (p->t.proto == IPPROTO_TCP &&
	    (p->tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST)) == TCP_SYN) {
		if (ct->tcp_state >= MOAT_TCP_TIME_WAIT)
			return 0;
		if (ct->flags & MOAT_CT_MIDSTREAM)
			return 0;
	}
	return 1;
}

/* the state of a tcp connection first seen with these flags */
static __always_inline __u8 tcp_first_state(__u8 flags)
{
	if (flags & TCP_RST)
		return MOAT_TCP_CLOSED;
	if ((flags & (TCP_SYN | TCP_ACK)) == TCP_SYN)
		return MOAT_TCP_SYN_SENT;
	if (flags & TCP_SYN)
		return MOAT_TCP_SYN_RECV;
	return MOAT_TCP_ESTABLISHED;
}

/* advances the tcp state for a packet from the initiator (from 0) or the responder
 * (from 1); returns MOAT_REASON_FIN / MOAT_REASON_RST when the connection closes */
static __always_inline __u8 tcp_track(struct moat_ct *ct, __u8 from, __u8 flags)
{
	__u8 st = ct->tcp_state;

	if (flags & TCP_RST) {
		if (st == MOAT_TCP_CLOSED)
			return 0;
		ct->tcp_state = MOAT_TCP_CLOSED;
		return MOAT_REASON_RST;
	}
	if (st == MOAT_TCP_SYN_SENT && from && (flags & (TCP_SYN | TCP_ACK)) == (TCP_SYN | TCP_ACK))
		ct->tcp_state = st = MOAT_TCP_SYN_RECV;
	else if (st == MOAT_TCP_SYN_RECV && !from && (flags & (TCP_SYN | TCP_ACK)) == TCP_ACK)
		ct->tcp_state = st = MOAT_TCP_ESTABLISHED;
	if (!(flags & TCP_FIN) || st >= MOAT_TCP_TIME_WAIT)
		return 0;
	__u32 bit = from ? MOAT_CT_FIN_RESP : MOAT_CT_FIN_INIT;
	__u32 fins =
	    (__sync_fetch_and_or(&ct->flags, bit) | bit) & (MOAT_CT_FIN_INIT | MOAT_CT_FIN_RESP);
	if (fins == (MOAT_CT_FIN_INIT | MOAT_CT_FIN_RESP)) {
		ct->tcp_state = MOAT_TCP_TIME_WAIT;
		return MOAT_REASON_FIN;
	}
	ct->tcp_state = MOAT_TCP_FIN_WAIT;
	return 0;
}

#endif /* MOAT_CONNTRACK_H */
