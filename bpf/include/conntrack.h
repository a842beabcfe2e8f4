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
 * stack (176 bytes the hooks' stacks cannot spare); NULL if missing */
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

/* how far the last tick's time (tick_ns) may be behind the clock: two ticks are 20 ms at most
 * (CONFIG_HZ 100), with room for a late one */
#define CT_TICK_SLACK_NS 100000000ull

/* The last tick's time, as bpf_ktime_get_coarse_ns gives it, read once a jiffy on each cpu: a
 * packet in the same jiffy takes the time this cpu read before, without a helper call (the
 * jiffies are one load). The time read is the one of the jiffy's tick, or of the tick before
 * when it is read between the jiffy's start and the time's update: within two ticks of the
 * clock, well within CT_TICK_SLACK_NS */
static __always_inline __u64 tick_ns(void)
{
	__u32 zero = 0;
	struct tick_time *t = bpf_map_lookup_elem(&tick_cache, &zero);
	__u64 jiffy = bpf_jiffies64();

	if (!t)
		return bpf_ktime_get_coarse_ns();
	if (t->jiffy != jiffy) {
		t->ns = bpf_ktime_get_coarse_ns();
		t->jiffy = jiffy;
	}
	return t->ns;
}

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

/* whether the entry is still the connection's: not timed out (a syn on the tuple of a closed
 * connection is for the judge: judge.h, syn_opens_anew) */
static __always_inline int ct_usable(const struct moat_ct *ct, const struct pkt *p, __u64 *now)
{
	if (ct_expired(ct, p->t.proto, now)) {
		count(MOAT_CNT_CT_EXPIRED, 0);
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

/* How far below a side's sequence end a reset or fin may start, and how far past it a segment may
 * start and still move it on: 64 KiB. A blind guess lands in it once in 65,536 tries. A real
 * reset starts at its sender's end, or, answering a segment, at the ack that segment carried,
 * which trails the end by what was still in flight; a retransmitted fin starts below the end by
 * its own bytes. The receiver's own check (RFC 5961: a reset at exactly the next byte it expects)
 * is stricter, but moat also sees segments the receiver drops; a reset moat does not take passes
 * all the same, for the receiver to decide. */
#define CT_SEQ_WINDOW 65536u

/* sequence space arithmetic (RFC 1982): a after b */
static __always_inline int seq_after(__u32 a, __u32 b)
{
	return (__s32)(a - b) > 0;
}

/* a segment's start at the end, or at most the window below it */
static __always_inline int seq_in_order(__u32 seq, __u32 end)
{
	return end - seq <= CT_SEQ_WINDOW;
}

/* the sequence number after a tcp segment: its start, its bytes, one for a syn, one for a fin */
static __always_inline __u32 tcp_segment_end(const struct pkt *p, __u32 frame_len)
{
	__u32 start = p->l4_off + p->l4_len;
	/* the ip datagram's end; the frame's where that is unknown (big tcp) or past it */
	__u32 end = p->l3_end > p->l3_off ? p->l3_end : frame_len;

	if (end > frame_len)
		end = frame_len;
	__u32 len = end > start ? end - start : 0;
	return p->seq + len + !!(p->tcp_flags & TCP_SYN) + !!(p->tcp_flags & TCP_FIN);
}

/* A side's sequence end moves on to a segment's end past it, for a segment that starts no
 * further than the window past it (one starting further on would be a guess, or follow a gap
 * the receiver's acks close: tcp_acked). 0 is no end yet (a side that has sent nothing, or an
 * entry from before sequence ends were kept): the segment's end is taken. One store at most. */
static __always_inline void tcp_sent(struct moat_ct *ct, __u8 from, __u32 seq, __u32 seg_end)
{
	__u32 end = ct->seq_end[from & 1];

	if (!end || (seq_after(seg_end, end) && (__s32)(seq - end) <= (__s32)CT_SEQ_WINDOW))
		ct->seq_end[from & 1] = seg_end;
}

/* A segment this host sends acks the other side's bytes up to `ack`: they were sent, whether or
 * not moat saw them (lost before they reached it, then sent again while moat missed the
 * retransmission's start): the other side's end moves on to it. */
static __always_inline void tcp_acked(struct moat_ct *ct, __u8 from, __u32 ack)
{
	__u32 other = ct->seq_end[(from ^ 1) & 1];

	if (other && seq_after(ack, other))
		ct->seq_end[(from ^ 1) & 1] = ack;
}

/* whether a reset may be the connection's: at or a little below its sender's end; from a side
 * that has sent nothing, only the answer to the other's syn (acking its end exactly). With
 * neither end known (an entry from before they were kept), any reset. */
static __always_inline int tcp_reset_fits(const struct moat_ct *ct, const struct pkt *p, __u8 from)
{
	__u32 end = ct->seq_end[from & 1];
	__u32 other = ct->seq_end[(from ^ 1) & 1];

	if (end)
		return seq_in_order(p->seq, end);
	if (!other)
		return 1;
	return (p->tcp_flags & TCP_ACK) && p->ack == other;
}

/* a syn, fin or reset (tcp_track) */
static __always_inline __u8 tcp_track_control(struct moat_ct *ct, const struct pkt *p, __u8 from,
					      __u32 seg_end)
{
	__u8 flags = p->tcp_flags;
	__u8 st = ct->tcp_state;

	if (flags & TCP_RST) {
		if (st == MOAT_TCP_CLOSED || !tcp_reset_fits(ct, p, from))
			return 0;
		ct->tcp_state = MOAT_TCP_CLOSED;
		return MOAT_REASON_RST;
	}
	/* a fin out of order (a gap before it, or a guess): the receiver does not take it yet */
	__u32 end = ct->seq_end[from & 1];
	if ((flags & TCP_FIN) && end && !seq_in_order(p->seq, end))
		return 0;
	tcp_sent(ct, from, p->seq, seg_end);
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

/* Advances the tcp state for a packet from the initiator (from 0) or the responder (from 1),
 * `frame_len` bytes, seen leaving (`leaving`: this host's side, tc egress) or arriving; returns
 * MOAT_REASON_FIN / MOAT_REASON_RST when the connection closes. A reset or fin counts only in
 * order (tcp_reset_fits, seq_in_order); others pass for the receiver to answer, and change
 * nothing. A plain segment moves its side's end on (one store) and, leaving, the other side's to
 * what it acks. */
static __always_inline __u8 tcp_track(struct moat_ct *ct, const struct pkt *p, __u8 from,
				      __u32 frame_len, int leaving)
{
	__u8 flags = p->tcp_flags;
	__u32 seg_end = tcp_segment_end(p, frame_len);

	if (leaving && (flags & TCP_ACK))
		tcp_acked(ct, from, p->ack);
	if (flags & (TCP_SYN | TCP_FIN | TCP_RST))
		return tcp_track_control(ct, p, from, seg_end);
	tcp_sent(ct, from, p->seq, seg_end);
	if (ct->tcp_state == MOAT_TCP_SYN_RECV && !from && (flags & TCP_ACK))
		ct->tcp_state = MOAT_TCP_ESTABLISHED;
	return 0;
}

#endif /* MOAT_CONNTRACK_H */
