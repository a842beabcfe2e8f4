/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* One packet's verdict, shared by the XDP and TC programs: the first packet of a
 * connection is judged by the policy tables, later ones by its conntrack entry. */
#ifndef MOAT_JUDGE_H
#define MOAT_JUDGE_H

#include "maps.h"
#include "counters.h"
#include "packet.h"
#include "classify.h"
#include "conntrack.h"
#include "events.h"
#include "accept.h"
#include "local_sock.h"
#include "heartbeat.h"
#include "basics.h"
#include "ratelimit.h"
#include "scrub.h"
#include "ids.h"

enum judge_out {
	OUT_PASS = 0,
	OUT_DROP = 1,
	OUT_CUT = 2, /* past max_duration: drop, and reset where the hook can */
};

/* where the packet was seen */
struct hook {
	struct ev_from from;
	__u32 len;  /* bytes */
	__u8 dir;   /* enum moat_direction of a connection this packet would open */
	__u8 local; /* tc egress: made on this host, not forwarded (skb->ingress_ifindex 0) */
};

/* what every step of one packet's judging needs */
struct judge_ctx {
	void *ctx; /* the program's context (xdp_md or __sk_buff): socket lookups */
	const struct hook *h;
	const struct moat_sock *s; /* tc: the local socket's record, if the socket hooks made one */
	const struct moat_meta *m; /* the live slot's meta */
	struct moat_counters *cnt; /* this cpu's counters */
	__u64 now;  /* the clock; a quiet packet's: the last tick's time (quiet_packet, tick_ns) */
	__u32 slot; /* the live slot, read once */
	__u32 len;
};

static __always_inline void tally(const struct judge_ctx *j, __u32 which)
{
	count_in(j->cnt, which, j->len);
}

/* the facts of a connection this packet opens */
static __always_inline void facts_of_packet(const struct pkt *p, __u8 dir, struct facts *f)
{
	if (dir == MOAT_DIR_INGRESS) {
		__builtin_memcpy(f->remote, p->t.src, 16);
		__builtin_memcpy(f->local, p->t.dst, 16);
	} else {
		__builtin_memcpy(f->remote, p->t.dst, 16);
		__builtin_memcpy(f->local, p->t.src, 16);
	}
	f->client_port = p->t.sport;
	f->server_port = p->t.dport;
	f->dir = dir;
	f->family = p->t.family;
	f->proto = p->t.proto;
	f->icmp_type = p->icmp_type;
	f->icmp_code = p->icmp_code;
}

/* the facts of a tracked connection: its first packet's, from the key and initiator */
static __always_inline void facts_of_ct(const struct moat_ct_key *k, const struct moat_ct *ct,
					struct facts *f)
{
	const __u8 *init = k->addr0, *resp = k->addr1;
	__u16 iport = k->port0, rport = k->port1;

	if (ct->initiator) {
		init = k->addr1;
		resp = k->addr0;
		iport = k->port1;
		rport = k->port0;
	}
	f->dir = ct->direction & 1;
	if (f->dir == MOAT_DIR_INGRESS) {
		__builtin_memcpy(f->remote, init, 16);
		__builtin_memcpy(f->local, resp, 16);
	} else {
		__builtin_memcpy(f->remote, resp, 16);
		__builtin_memcpy(f->local, init, 16);
	}
	f->client_port = iport;
	f->server_port = rport;
	f->family = k->family;
	f->proto = k->protocol;
	f->icmp_type = ct->icmp_type;
	f->icmp_code = ct->icmp_code;
}

static __always_inline void set_judgement(struct moat_ct *ct, __u32 rule, const struct moat_rule *r,
					  __u8 proto, __u32 generation)
{
	ct->rule = rule;
	ct->verdict = verdict_of(r);
	ct->mode = r->mode;
	ct->generation = generation;
	/* past it, prevent cuts the connection and detect reports it (established): once, so a
	 * connection detect reported already gets no deadline again. A connection cut already
	 * keeps the deadline it was cut by: it stays cut, and is never reported past it again */
	if (!(ct->flags & MOAT_CT_CUT)) {
		ct->deadline_ns = 0;
		if (r->action == MOAT_ACTION_ALLOW && r->max_duration_s && proto == IPPROTO_TCP &&
		    !(r->mode == MOAT_MODE_DETECT && (ct->flags & MOAT_CT_OVERDUE)))
			ct->deadline_ns = ct->created_ns + (__u64)r->max_duration_s * NSEC;
	}
	/* the rule's rate limit applies to the connection's packets (ratelimit.h); credit a lease
	 * handed over belongs to the limit that judged before */
	ct->limit_credit = 0;
	__u32 limited = r->flags & MOAT_RULE_LIMITED ? MOAT_CT_LIMITED : 0;
	if ((ct->flags & MOAT_CT_LIMITED) != limited)
		__sync_fetch_and_xor(&ct->flags, MOAT_CT_LIMITED);
	/* let through (a re-judging): its packets pass, and a later block holds both ways */
	if (ct->verdict != MOAT_EV_BLOCKED && (ct->flags & MOAT_CT_BLOCKED_FIRST))
		__sync_fetch_and_and(&ct->flags, ~MOAT_CT_BLOCKED_FIRST);
}

/* a packet from the remote of an allowed connection whose rule has a rate limit: over it, it is
 * dropped (prevent) or passed and reported (detect). `tick`: j->now is the last tick's time
 * (quiet_packet), up to CT_TICK_SLACK_NS behind the clock; the limit reads the clock whenever
 * that could change its answer, so its answers are the clock's */
static __always_inline int over_limit(const struct judge_ctx *j, const struct pkt *p,
				      struct moat_ct *ct, int tick)
{
	if (!(ct->flags & MOAT_CT_LIMITED) || ct->verdict != MOAT_EV_ALLOWED ||
	    j->h->dir != MOAT_DIR_INGRESS)
		return 0;
	__u64 now = j->now;
	/* credit its source's lease handed to the connection: the entry is read already. Read
	 * once: another cpu may zero it meanwhile (a re-judging), and a second read could find 0
	 * and store 255 */
	if (ct->limit_credit) {
		__u8 credit = *(volatile __u8 *)&ct->limit_credit;
		__u64 until = ct->limit_until;
		/* a credit ending further off than the tick's lag is live by the clock too */
		if (tick && !limit_test_clock && credit && now + CT_TICK_SLACK_NS < until) {
			ct->limit_credit = credit - 1;
			return 0;
		}
		if (tick) {
			now = bpf_ktime_get_ns();
			tick = 0;
		}
		if (credit && limit_now(now) < until) {
			ct->limit_credit = credit - 1;
			return 0;
		}
	}
	if (tick)
		now = bpf_ktime_get_ns();
	if (!limit_over(j->slot, p, ct, &j->h->from, now))
		return 0;
	if (ct->mode == MOAT_MODE_PREVENT) {
		tally(j, MOAT_CNT_LIMIT_DROPPED);
		return 1;
	}
	tally(j, MOAT_CNT_LIMIT_DETECTED);
	return 0;
}

static __always_inline int out_of(const struct judge_ctx *j, __u8 verdict)
{
	if (verdict == MOAT_EV_BLOCKED) {
		tally(j, MOAT_CNT_BLOCKED);
		return OUT_DROP;
	}
	tally(j, verdict == MOAT_EV_DETECTED ? MOAT_CNT_DETECTED : MOAT_CNT_ALLOWED);
	return OUT_PASS;
}

/* unique per entry: this cpu's creation count and the cpu */
static __always_inline __u64 next_conn_id(const struct judge_ctx *j)
{
	struct moat_counters *c = j->cnt;

	if (!c)
		return 0;
	__u64 n = ++c->c[MOAT_CNT_CT_CREATED].packets;
	return n << 12 | (bpf_get_smp_processor_id() & 0xfff);
}

/* whether a connection was judged under an older policy generation (one moat's relay judges is
 * not judged here) */
static __always_inline int stale(const struct judge_ctx *j, const struct moat_ct *ct)
{
	return ct->generation != j->m->generation && !(ct->flags & MOAT_CT_RELAYED);
}

/* a new policy generation: judge the connection again from its first packet's facts */
static __always_inline void rejudge(const struct judge_ctx *j, const struct moat_ct_key *k,
				    struct moat_ct *ct)
{
	struct facts f;
	struct moat_rule r;

	facts_of_ct(k, ct, &f);
	__u32 rule = ct->flags & MOAT_CT_LOCAL_UNSEEN
			 ? classify(j->slot, 0, j->m, &f)
			 : classify_tracked(j->slot, j->m, &f, ct->owner.pid ? &ct->owner : NULL,
					    ct->ifindex, ct->flags & MOAT_CT_POST_ROUTE);
	rule_get(j->slot, rule, &r);
	__u8 before = ct->verdict;
	set_judgement(ct, rule, &r, k->protocol, j->m->generation);
	/* an ids cut stands: the policy never judged the bytes that made it */
	if (ct->flags & MOAT_CT_IDS_CUT) {
		ct->verdict = MOAT_EV_BLOCKED;
		ct->mode = MOAT_MODE_PREVENT;
	}
	count_in(j->cnt, MOAT_CNT_REJUDGED, 0);
	count_rule(j->slot, j->m, rule, 0, 1);
	if (ct->verdict == before)
		return;
	if (ct->verdict != MOAT_EV_ALLOWED || r.log) {
		__sync_fetch_and_or(&ct->flags, MOAT_CT_REPORTED);
		emit(k, ct, ct->verdict, MOAT_REASON_REJUDGED, &j->h->from);
	}
}

/* Whether a packet that goes out with a tcp or udp socket is not that socket's own: a kernel
 * tunnel's carrier (vxlan, geneve, gre, ipip) keeps the socket of the packet it wraps, and is no
 * connection of the socket's owner. The socket's own packets go over its protocol from its port;
 * a raw socket's are its own whatever they carry */
static __always_inline int carries_other(const struct bpf_sock *sk, const struct pkt *p)
{
	if (sk->type == SOCK_RAW || (sk->protocol != IPPROTO_TCP && sk->protocol != IPPROTO_UDP))
		return 0;
	return sk->protocol != p->t.proto || sk->src_port != p->t.sport;
}

/* whether the socket hooks' record is about this packet's destination: the one the caller
 * named, or the target it was redirected to */
static __always_inline int sock_is_for(const struct moat_sock *s, const struct pkt *p)
{
	if (s->protocol != p->t.proto)
		return 0;
	if (s->port == p->t.dport && !__builtin_memcmp(s->addr, p->t.dst, 16))
		return 1;
	return s->redirect && s->target_port == p->t.dport &&
	       !__builtin_memcmp(s->target, p->t.dst, 16);
}

/* the rule deciding a packet no socket record owns: made on this host (a socket the socket hooks
 * did not see, outside attach.cgroup; a kernel tunnel's carrier), by the packet hooks' tables, as
 * before any interface rule; forwarded or arriving, with no process and by the interface it
 * leaves or came in by */
static __always_inline __u32 classify_unrecorded(const struct judge_ctx *j, struct facts *f)
{
	if (j->h->local)
		return classify(j->slot, 0, j->m, f);
	return classify_unowned_at(j->slot, j->m, f, j->h->from.ifindex);
}

/* the rule deciding a new connection: the socket hooks' decision for it when they made one
 * under this policy, else the tables (with the owner's process class if a hook saw the
 * socket, classify_unrecorded if none did) */
static __always_inline __u32 decide_new(const struct judge_ctx *j, struct facts *f,
					const struct moat_sock *s, const struct pkt *p)
{
	if (!s)
		return classify_unrecorded(j, f);
	if (s->rule != MOAT_RULE_NONE && s->generation == j->m->generation && sock_is_for(s, p))
		return s->rule;
	return classify_owned(j->slot, j->m, f, &s->owner);
}

/* Whether a packet with no entry belongs to a flow its receiver opened, as a local socket tells:
 * a peer's mid-stream tcp segment to a socket this host connect()ed, this host's mid-stream tcp
 * segment from a socket a local listener accepted, a peer's datagram to a udp socket this host
 * connected to it. This host's datagram never: neither a connected socket (this host's client)
 * nor a bound one (a server's socket that may sendto() anyone) shows that the peer spoke first. */
static __always_inline int opened_by_receiver(void *ctx, const struct pkt *p, __u8 dir)
{
	if (p->t.proto == IPPROTO_TCP) {
		if (tcp_first_state(p->tcp_flags) != MOAT_TCP_ESTABLISHED)
			return 0;
		enum local_tcp_origin origin = local_tcp_origin(ctx, p, dir);
		return dir == MOAT_DIR_INGRESS ? origin == LOCAL_TCP_CONNECTED
					       : origin == LOCAL_TCP_ACCEPTED;
	}
	if (p->t.proto == IPPROTO_UDP && dir == MOAT_DIR_INGRESS)
		return local_udp_connected(ctx, p, dir);
	return 0;
}

/* A packet with no entry that the policy would block as a new connection: if the packet's
 * receiver opened the flow (opened_by_receiver), the table lost its entry (a restart that could
 * not adopt it, an lru eviction), and the flow was opened the other way. Judged the other way
 * too: the flow's own rule if that one lets it through. A peer's packet is never made this
 * host's for a connection a local socket accepted, nor for one no local socket has: that flow
 * was the peer's, or may have been, and judging it as this host's would undo the verdict its
 * peer's packets get (a ban) for anyone who can evict its entry. Nor for a peer's packet to a
 * port a local socket serves (a listener, a udp socket connected to no one). This host's packet
 * is made the peer's only for a connection a local listener accepted: the peer opened it, and
 * the ingress rules judge it, as they did its syn. */
static __always_inline __u32 judge_local_midstream(const struct judge_ctx *j, const struct pkt *p,
						   struct facts *f, const struct moat_sock *s,
						   __u32 rule, struct moat_rule *r,
						   struct moat_ct *ct, int src_side)
{
	struct facts other = *f;
	struct moat_rule r2;

	if (!opened_by_receiver(j->ctx, p, j->h->dir))
		return rule;
	if (j->h->dir == MOAT_DIR_INGRESS && local_serves(j->ctx, p, j->h->dir))
		return rule;
	/* the packet travels from responder to initiator: the other side opened it */
	other.dir = f->dir ^ 1;
	other.client_port = f->server_port;
	other.server_port = f->client_port;
	/* a local socket has the flow: without its record, judged as one the hooks did not see */
	__u32 rule2 = s ? classify_owned(j->slot, j->m, &other, &s->owner)
			: classify(j->slot, 0, j->m, &other);
	rule_get(j->slot, rule2, &r2);
	if (verdict_of(&r2) == MOAT_EV_BLOCKED)
		return rule;
	*f = other;
	*r = r2;
	ct->initiator = !src_side;
	ct->direction = other.dir;
	if (!s)
		ct->flags |= MOAT_CT_LOCAL_UNSEEN;
	return rule2;
}

/* a new connection's frame that passed a lower interface with a macvlan's MAC address (its
 * destination arriving, its source leaving) is the macvlan's, as the host's IP layer sees it:
 * judged, remembered and reported by the macvlan's interface. A subprogram: its key stays off
 * the program's stack */
static __noinline void judged_by_stacked(struct hook *h, const struct pkt *p, __u32 slot)
{
	struct moat_stacked_key key = {};

	if (!h || !p)
		return;
	key.ifindex = h->from.ifindex;
	__builtin_memcpy(key.mac, h->dir == MOAT_DIR_INGRESS ? p->eth_dst : p->eth_src, 6);
	void *inner = bpf_map_lookup_elem(&tbl_proc_stacked, &slot);
	__u32 *upper = inner ? bpf_map_lookup_elem(inner, &key) : NULL;
	if (upper)
		h->from.ifindex = *upper;
}

/* The first packet of a connection: judge, remember, report. `replaces`: the tuple's live entry
 * is the other side's, which opens_anew let this packet open anew */
static __always_inline int judge_new(struct judge_ctx *j, const struct pkt *p,
				     const struct moat_ct_key *k, int src_side, int replaces)
{
	struct facts f;
	struct moat_rule r;
	/* the new entry is built in per-cpu scratch */
	struct moat_ct *ct = ct_scratch_zeroed(j->h->from.hook);
	__u8 reason = MOAT_REASON_NEW;

	if (!ct)
		return OUT_PASS;

	if (j->m->stacked)
		judged_by_stacked((struct hook *)j->h, p, j->slot);
	facts_of_packet(p, j->h->dir, &f);
	const struct moat_sock *s = j->s;
	__u32 rule = decide_new(j, &f, s, p);
	rule_get(j->slot, rule, &r);
	ct->initiator = src_side;
	ct->direction = j->h->dir;
	if (verdict_of(&r) == MOAT_EV_BLOCKED)
		rule = judge_local_midstream(j, p, &f, s, rule, &r, ct, src_side);

	/* the clock, read once the rule is known */
	j->now = bpf_ktime_get_ns();
	ct->created_ns = j->now;
	ct->last_ns = j->now;
	ct->packets[0] = 1;
	ct->bytes[0] = j->len;
	ct->ifindex = j->h->from.ifindex;
	ct->icmp_type = p->icmp_type;
	ct->icmp_code = p->icmp_code;
	if (p->t.proto == IPPROTO_TCP) {
		ct->tcp_state = tcp_first_state(p->tcp_flags);
		if (ct->tcp_state != MOAT_TCP_SYN_SENT)
			ct->flags |= MOAT_CT_MIDSTREAM;
		ct->seq_end[(src_side != ct->initiator) & 1] = tcp_segment_end(p, j->len);
	}
	set_judgement(ct, rule, &r, p->t.proto, j->m->generation);
	/* a udp flow blocked from its start, by the rules of its first sender's side: the other
	 * side's datagram is judged by its own (not once both sides' rules blocked it) */
	if (p->t.proto == IPPROTO_UDP && ct->verdict == MOAT_EV_BLOCKED && !replaces)
		ct->flags |= MOAT_CT_BLOCKED_FIRST;
	if (!s && j->h->local)
		ct->flags |= MOAT_CT_LOCAL_UNSEEN;
	if (s) {
		ct->owner = s->owner;
		/* the relay's own connection, by its rule: the relay's decision for its life */
		if ((s->post_route & MOAT_POST_RELAYED) && rule == s->rule &&
		    s->generation == j->m->generation)
			ct->flags |= MOAT_CT_RELAYED;
		/* the post-route check's decision, by the interface it leaves by: so are its
		 * re-judgings (rejudge) */
		if ((s->post_route & MOAT_POST_JUDGED) && rule == s->rule &&
		    s->generation == j->m->generation)
			ct->flags |= MOAT_CT_POST_ROUTE;
	}
	int report = ct->verdict != MOAT_EV_ALLOWED || r.log;
	if (report)
		ct->flags |= MOAT_CT_REPORTED;
	/* an ingress connection to a local socket: the accept hook completes it (accept.h) */
	ct->flags |= accept_await(j->slot, j->m, p, &f, rule, ct->verdict, ct->ifindex);
	tally(j, MOAT_CNT_NEW);
	if (!(ct->flags & MOAT_CT_PENDING))
		count_rule(j->slot, j->m, rule, j->len, 1);

	/* an icmp response (echo reply, ...) opens nothing: judged, not remembered */
	if (!((p->t.proto == IPPROTO_ICMP || p->t.proto == IPPROTO_ICMPV6_) &&
	      icmp_is_response(p->t.proto, p->icmp_type))) {
		ct->id = next_conn_id(j);
		/* the flow's first bytes for the ids signatures (ids.h), noted in the entry before
		 * it goes in: copied if the packet passes */
		if (j->m->ids && ct->verdict != MOAT_EV_BLOCKED)
			ids_take_first((struct pkt *)p, ct, &j->h->from, j->len, j->slot,
				       src_side != ct->initiator);
		if (bpf_map_update_elem(&conntrack, k, ct, BPF_ANY)) {
			tally(j, MOAT_CNT_CT_FULL);
			ct->id = 0;
			((struct pkt *)p)->ids_len = 0;
			((struct pkt *)p)->ids_noted = 0;
			reason = MOAT_REASON_UNTRACKED;
			/* no entry for the accept hook to complete: decided here */
			if (ct->flags & MOAT_CT_PENDING)
				count_rule(j->slot, j->m, rule, j->len, 1);
			ct->flags &= ~(MOAT_CT_AWAIT | MOAT_CT_PENDING);
		}
	}
	/* the post-route check reported it already, on the same interface; the accept hook
	 * reports what it awaits, with the owner */
	if (report && !(ct->flags & MOAT_CT_AWAIT) && !(s && (s->post_route & MOAT_POST_REPORTED)))
		emit(k, ct, ct->verdict, reason, &j->h->from);
	if (ct->flags & MOAT_CT_PENDING) {
		tally(j, MOAT_CNT_DEFERRED);
		return OUT_PASS;
	}
	/* (a new connection has sent too few packets to be handed credit: ratelimit.h) */
	if (over_limit(j, p, ct, 0))
		return OUT_DROP;
	return out_of(j, ct->verdict);
}

/* prevent: a connection past its rule's max_duration: closed, its packets cut */
static __always_inline int cut(const struct judge_ctx *j, const struct moat_ct_key *k,
			       struct moat_ct *ct)
{
	ct->tcp_state = MOAT_TCP_CLOSED;
	if (!(ct->flags & MOAT_CT_CUT))
		__sync_fetch_and_or(&ct->flags, MOAT_CT_CUT);
	emit_closed(k, ct, MOAT_REASON_MAX_DURATION, &j->h->from);
	tally(j, MOAT_CNT_CUT);
	return OUT_CUT;
}

/* detect: a connection past its rule's max_duration goes on untouched; what prevent would cut
 * is reported once, as detected (its close is reported too), and its deadline is gone. One cut
 * already (before a reload to detect, or by an earlier build) was reported closed: nothing more.
 * A subprogram: the tc egress program's stack has no room for more */
static __noinline void report_overdue(const struct moat_ct_key *k, struct moat_ct *ct,
				      const struct ev_from *from)
{
	if (ct->flags & MOAT_CT_CUT)
		return;
	ct->deadline_ns = 0;
	__u32 old = __sync_fetch_and_or(&ct->flags, MOAT_CT_OVERDUE | MOAT_CT_REPORTED);
	if (!(old & MOAT_CT_OVERDUE))
		emit(k, ct, MOAT_EV_DETECTED, MOAT_REASON_MAX_DURATION, from);
}

/* a tracked connection's packet that passes: its flow's first bytes for the ids signatures
 * (ids.h), one flag test once past them */
static __always_inline int passed(const struct judge_ctx *j, const struct pkt *p,
				  struct moat_ct *ct, __u8 from_responder)
{
	if (j->m->ids && !(ct->flags & MOAT_CT_IDS_DONE))
		ids_take((struct pkt *)p, ct, &j->h->from, j->len, j->slot, from_responder);
	return OUT_PASS;
}

/* the tests of quiet_packet whose answer can only turn from "no" to "yes" while a packet is
 * judged (the packet's own fields, an accept settled, ids done; not a deadline or the
 * generation, which a re-judging on another cpu may change): a packet they pass late in its
 * judging passed them at first too */
static __always_inline int quiet_lasting(const struct judge_ctx *j, const struct pkt *p,
					 const struct moat_ct *ct)
{
	if ((ct->flags & MOAT_CT_AWAIT) || p->frag != FRAG_NONE)
		return 0;
	if (p->t.proto == IPPROTO_TCP && (p->tcp_flags & (TCP_FIN | TCP_RST)))
		return 0;
	return !j->m->ids || (ct->flags & MOAT_CT_IDS_DONE);
}

/* A tracked connection's packet that only counts and passes or drops: no re-judging, no state
 * change that reports a close (fin, rst), no max_duration deadline, no accept hook awaited, no
 * ids copy, no fragment to remember. It needs no time but its entry's last-seen time for the
 * idle timeouts (seconds), and takes the last tick's, which costs a fraction of a clock read (a
 * VM's clock especially). A rate limit reads the clock when the tick's time could not answer
 * (over_limit) */
static __always_inline int quiet_packet(const struct judge_ctx *j, const struct pkt *p,
					const struct moat_ct *ct)
{
	return quiet_lasting(j, p, ct) && !ct->deadline_ns && !stale(j, ct);
}

/* Whether a packet's sender is the side whose packets leave: this host's (the initiator of an
 * egress connection, the responder of an ingress one). A packet seen arriving with that side's
 * addresses was made elsewhere (the host drops one with its own source address): it passes or not
 * with the connection, but changes no tcp state, whatever sequence numbers its maker knows. */
static __always_inline int sent_by_leaving_side(const struct moat_ct *ct, __u8 from)
{
	return from == (ct->direction == MOAT_DIR_INGRESS);
}

/* a later packet of a tracked connection: one lookup decided it */
static __always_inline int established(struct judge_ctx *j, const struct pkt *p,
				       const struct moat_ct_key *k, struct moat_ct *ct,
				       int src_side)
{
	__u8 from = src_side != ct->initiator;

	/* first: the events below take their time from it (ev_from.at_last). A quiet packet's
	 * tick time may be behind the entry's (a clock read): it never moves it back, and it is
	 * written once a tick, not once a packet */
	if (!quiet_packet(j, p, ct)) {
		j->now = bpf_ktime_get_ns();
		ct->last_ns = j->now;
	} else if (j->now > ct->last_ns) {
		ct->last_ns = j->now;
	}
	/* (an entry of an older policy was judged again before: judge_ip) */
	/* plain adds: each side's counters are written by one direction, whose packets a
	 * flow hash keeps on one cpu (a rare concurrent update loses a count, nothing else) */
	if (from) {
		ct->packets[1] += 1;
		ct->bytes[1] += j->len;
		if (!(ct->flags & MOAT_CT_REPLIED))
			__sync_fetch_and_or(&ct->flags, MOAT_CT_REPLIED);
	} else {
		ct->packets[0] += 1;
		ct->bytes[0] += j->len;
	}
	tally(j, MOAT_CNT_ESTABLISHED);
	count_rule(j->slot, j->m, ct->rule, j->len, 0);

	if (p->t.proto == IPPROTO_TCP) {
		/* resets of a cut connection pass: ours, or the peers' own */
		if (ct->verdict == MOAT_EV_ALLOWED && ct->deadline_ns &&
		    j->now >= ct->deadline_ns && !(p->tcp_flags & TCP_RST)) {
			if (ct->mode != MOAT_MODE_DETECT)
				return cut(j, k, ct);
			report_overdue(k, ct, &j->h->from);
		}
		/* an ids cut's resets and fins are dropped: they close nothing (syn_opens_anew) */
		int leaving = j->h->dir == MOAT_DIR_EGRESS;
		if (leaving == sent_by_leaving_side(ct, from) && !(ct->flags & MOAT_CT_IDS_CUT)) {
			__u8 reason = tcp_track(ct, p, from, j->len, leaving);
			if (reason)
				emit_closed(k, ct, reason, &j->h->from);
		}
	}
	if (ct->flags & MOAT_CT_AWAIT) {
		if (accept_waits(ct, p, from)) {
			tally(j, MOAT_CNT_DEFERRED);
			return passed(j, p, ct, from);
		}
		accept_settle(j->slot, j->m, k, ct, &j->h->from);
	}
	/* j->now may be the tick's unless quiet_lasting fails now (then it failed at first, and
	 * j->now is the clock's). Tested again, not kept: a value kept this long costs the
	 * verifier a sixteenth more states */
	if (over_limit(j, p, ct, quiet_lasting(j, p, ct)))
		return OUT_DROP;
	int out = out_of(j, ct->verdict);
	return out == OUT_PASS ? passed(j, p, ct, from) : out;
}

/* Whether this host sends from the end whose packet opened the connection by arriving: that
 * packet carried this host's own address and port (a forger's; the host's stack drops it as a
 * martian). Whatever the ingress rules made of it, the host's own packet is judged anew, by the
 * egress rules: a forged packet neither holds the tuple against the host's flow nor lets it out */
static __always_inline int own_end_arrived(const struct judge_ctx *j, const struct moat_ct *ct,
					   int src_side)
{
	return j->h->local && ct->direction == MOAT_DIR_INGRESS && src_side == ct->initiator;
}

/* Whether a bare syn on the tuple of a tracked connection opens a new one, judged anew: on a
 * closed connection's tuple (its reset or fin in sequence: conntrack.h) or one picked up
 * mid-stream, from either end (the peer of a closed outbound connection may connect back on the
 * same ports, to a listener there: the ingress rules judge that), once no local socket has the old
 * connection open; and from the end that did not send it, on the tuple of a connection whose syn
 * was blocked (that syn reached no one, and a peer's blocked syn, or a forger's, must not stop
 * this host's own connection on the same ports). Any other syn is the connection's: a blocked
 * syn's retransmission, one while the connection lives (a stray or a spoof: the host answers it
 * with an ack), one while the host's socket is still open after a reset or fin the host did not
 * take. */
static __always_inline int syn_opens_anew(const struct judge_ctx *j, const struct pkt *p,
					  const struct moat_ct *ct, int src_side)
{
	if (p->t.proto != IPPROTO_TCP || (p->tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST)) != TCP_SYN)
		return 0;
	/* an ids cut holds its tuple until its entry expires: its rules never saw what cut it */
	if (ct->flags & MOAT_CT_IDS_CUT)
		return 0;
	if (ct->tcp_state == MOAT_TCP_SYN_SENT && ct->verdict == MOAT_EV_BLOCKED)
		return src_side != ct->initiator;
	int midstream = ct->flags & MOAT_CT_MIDSTREAM;
	if (ct->tcp_state < MOAT_TCP_TIME_WAIT && !midstream)
		return 0;
	return !local_tcp_flows(j->ctx, p, j->h->dir);
}

/* Whether a packet that arrives from the responder side of an entry whose first packet arrived
 * too, before that side sent anything, is for a port a local socket serves. Then the entry's first
 * packet carried this host's own address and port (a forger's: the host's stack drops it), and
 * this packet is a peer's connection to the local socket: judged anew, by its own rules, not let in
 * as the forger's entry's answer. A forwarded flow's answer arrives too, but for no local socket.
 * Asked once an entry (MOAT_CT_REPLIED is set by the responder's first packet); a subprogram: the
 * lookup's tuple stays off the program's stack */
static __noinline int arrives_for_local_socket(void *ctx, const struct pkt *p, __u8 dir)
{
	if (!p || (p->t.proto != IPPROTO_TCP && p->t.proto != IPPROTO_UDP))
		return 0;
	return local_serves(ctx, p, dir);
}

/* Whether a packet on the tuple of a tracked connection opens a new one, judged anew: a bare syn
 * (syn_opens_anew), or a datagram from the side that did not send the first one of a udp flow
 * blocked from its start, nothing of which passed. As for a blocked syn, that datagram reached no
 * one: a udp server whose entry was lost and that sent first, blocked, is not cut from the peer
 * the ingress rules let in, and a peer's blocked datagram (or a forger's) does not stop this
 * host's own flow on the same ports. A flow blocked after it was let through (an ids cut, a
 * re-judging, a ban) stays blocked both ways. */
static __always_inline int opens_anew(const struct judge_ctx *j, const struct pkt *p,
				      const struct moat_ct *ct, int src_side)
{
	if (own_end_arrived(j, ct, src_side))
		return 1;
	if (j->h->dir == MOAT_DIR_INGRESS && ct->direction == MOAT_DIR_INGRESS &&
	    src_side != ct->initiator && !(ct->flags & MOAT_CT_REPLIED) &&
	    arrives_for_local_socket(j->ctx, p, j->h->dir))
		return 1;
	if (ct->flags & MOAT_CT_BLOCKED_FIRST)
		return src_side != ct->initiator && ct->verdict == MOAT_EV_BLOCKED;
	return syn_opens_anew(j, p, ct, src_side);
}

/* an icmp error about a connection that is not blocked passes with it */
static __always_inline int related_pass(struct judge_ctx *j, const struct pkt *p)
{
	struct moat_ct_key rk __attribute__((aligned(8)));

	/* an error is about a packet its recipient sent: one quoting anything else (the tuple of
	 * a tracked flow reversed) is no error about that flow */
	if (__builtin_memcmp(p->rel.src, p->t.dst, 16))
		return 0;
	ct_key(&p->rel, &rk);
	struct moat_ct *ct = bpf_map_lookup_elem(&conntrack, &rk);
	if (!ct)
		return 0;
	/* the stack's answer to a connection no accept hook completed (port unreachable): its
	 * opening is reported at the time of its last packet (ev_from.at_last) */
	if (ct->flags & MOAT_CT_AWAIT)
		accept_settle(j->slot, j->m, &rk, ct, &j->h->from);
	if (ct->verdict == MOAT_EV_BLOCKED)
		return 0;
	j->now = bpf_ktime_get_coarse_ns();
	return !ct_expired(ct, rk.protocol, &j->now);
}

static __always_inline void frag_key(const struct pkt *p, struct moat_frag_key *fk)
{
	__builtin_memcpy(fk->src, p->t.src, 16);
	__builtin_memcpy(fk->dst, p->t.dst, 16);
	fk->id = p->frag_id;
	fk->family = p->t.family;
	fk->protocol = p->frag_proto;
	fk->pad[0] = 0;
	fk->pad[1] = 0;
}

/* how long a later fragment passes with its datagram's first fragment: the longest the kernel
 * waits to reassemble a datagram (IPv6's 60 s; IPv4's is 30 s) */
#define FRAG_FOLLOW_NS (60 * NSEC)

/* whether the datagram's first fragment passed under the live policy, recently enough */
static __always_inline int frag_passed(const struct judge_ctx *j, const struct moat_frag_key *fk)
{
	struct moat_frag *first = bpf_map_lookup_elem(&frags, fk);

	if (!first || first->generation != j->m->generation)
		return 0;
	return bpf_ktime_get_coarse_ns() < first->ts_ns + FRAG_FOLLOW_NS;
}

/* a later fragment has no ports: it passes with its datagram's first fragment; without one
 * that passed (dropped, out of order, evicted, older, under another policy) it is judged by the
 * policy with ports 0 */
static __always_inline int judge_fragment(const struct judge_ctx *j, const struct pkt *p)
{
	struct moat_frag_key fk __attribute__((aligned(8)));
	struct facts f;
	struct moat_rule r;

	frag_key(p, &fk);
	if (frag_passed(j, &fk)) {
		tally(j, MOAT_CNT_FRAGMENT);
		return OUT_PASS;
	}
	tally(j, MOAT_CNT_FRAGMENT_ORPHAN);
	facts_of_packet(p, j->h->dir, &f);
	__u32 rule = j->s ? classify(j->slot, 0, j->m, &f) : classify_unrecorded(j, &f);
	rule_get(j->slot, rule, &r);
	count_rule(j->slot, j->m, rule, j->len, 0);
	return out_of(j, verdict_of(&r));
}

/* a first fragment that passed, for its later fragments; one dropped leaves nothing: its
 * datagram cannot be reassembled without it, and a flood of them evicts no record */
static __always_inline void frag_record(const struct judge_ctx *j, const struct pkt *p, int out)
{
	struct moat_frag_key fk __attribute__((aligned(8)));

	if (out != OUT_PASS)
		return;
	struct moat_frag v = {.ts_ns = bpf_ktime_get_coarse_ns(), .generation = j->m->generation};
	frag_key(p, &fk);
	bpf_map_update_elem(&frags, &fk, &v, BPF_ANY);
}

/* a parsed ip packet under a live policy */
static __always_inline int judge_ip(struct judge_ctx *j, const struct pkt *p)
{
	if (p->frag == FRAG_LATER)
		return judge_fragment(j, p);
	if (basics_packet(j->m, p, j->h->dir)) {
		tally(j, MOAT_CNT_BASICS);
		/* its later fragments pass with it, as with any first fragment that passes */
		if (p->frag == FRAG_FIRST)
			frag_record(j, p, OUT_PASS);
		return OUT_PASS;
	}
	/* invalid tcp flags from a remote (scrub.h): dropped where the policy prevents */
	if (p->t.proto == IPPROTO_TCP && j->h->dir == MOAT_DIR_INGRESS &&
	    tcp_flags_invalid(p->tcp_flags)) {
		__u8 prevent = j->m->default_prevent;
		tally(j, prevent ? MOAT_CNT_TCP_FLAGS_DROPPED : MOAT_CNT_TCP_FLAGS_DETECTED);
		scrub_report(p, &j->h->from, prevent, bpf_ktime_get_ns());
		if (prevent)
			return OUT_DROP;
	}
	if (p->has_rel && related_pass(j, p)) {
		tally(j, MOAT_CNT_RELATED);
		return OUT_PASS;
	}

	struct moat_ct_key k __attribute__((aligned(8)));
	int side = ct_key(&p->t, &k);
	struct moat_ct *ct = bpf_map_lookup_elem(&conntrack, &k);
	int out;
	/* the last tick's time decides the idle timeout (ct_expired) and a quiet packet's
	 * last-seen time; anything else reads the clock */
	if (ct)
		j->now = tick_ns();
	int live = ct && ct_usable(ct, p, &j->now);
	/* an entry of an older policy is judged again before anything reads its verdict: whether
	 * this packet opens the flow anew depends on it */
	if (live && stale(j, ct)) {
		j->now = bpf_ktime_get_ns();
		ct->last_ns = j->now;
		rejudge(j, &k, ct);
	}
	if (live && !opens_anew(j, p, ct, side)) {
		out = established(j, p, &k, ct, side);
	} else {
		out = judge_new(j, p, &k, side, live);
	}
	/* a new connection's first packet noted for the ids copy, then dropped over its rate
	 * limit (asked after the entry is made, as the limit reads it) */
	if (out != OUT_PASS)
		ids_unnote(&k, (struct pkt *)p);
	if (p->frag == FRAG_FIRST)
		frag_record(j, p, out);
	return out;
}

/* the verdict of a parsed frame (enum pkt_kind) */
static __always_inline int judge_frame(struct judge_ctx *j, const struct pkt *p, int kind)
{
	__u32 zero = 0;

	if (kind == PKT_NON_IP) {
		tally(j, MOAT_CNT_NON_IP);
		return OUT_PASS;
	}
	/* the live slot, read once: every lookup below uses the same generation */
	struct moat_state *st = bpf_map_lookup_elem(&state, &zero);
	if (!st)
		return OUT_PASS;
	j->slot = *(volatile __u32 *)&st->active & 1;
	/* a flip rewrites the live slot's meta with the same bytes: safe to read in place */
	j->m = &st->meta[j->slot];

	if (kind == PKT_MALFORMED) {
		tally(j, MOAT_CNT_MALFORMED);
		__u8 drop = j->h->dir ? j->m->drop_malformed[1] : j->m->drop_malformed[0];
		int out = j->m->generation && drop ? OUT_DROP : OUT_PASS;
		/* a first fragment whose l4 header moat cannot read: passed, its later fragments
		 * (which carry none) pass with it instead of being judged with ports 0 */
		if (p->frag == FRAG_FIRST && p->t.family)
			frag_record(j, p, out);
		return out;
	}
	/* no policy yet: pass (the daemon applies one before attaching) */
	if (!j->m->generation) {
		tally(j, MOAT_CNT_NO_POLICY);
		return OUT_PASS;
	}
	if (daemon_gone(j->m)) {
		tally(j, MOAT_CNT_DAEMON_GONE);
		return OUT_PASS;
	}
	return judge_ip(j, p);
}

/* a global function's argument that is the program's context (the kernel reads the tag) */
#ifndef __arg_ctx
#define __arg_ctx __attribute__((btf_decl_tag("arg:ctx")))
#endif

/* A global function: verified once, on its own, whatever the paths through the parser
 * that lead to it. Counts the packet as passed or dropped. */
__noinline int moat_judge(void *ctx __arg_ctx, const struct pkt *p, int kind, const struct hook *h,
			  const struct moat_sock *s)
{
	if (!p || !h)
		return OUT_PASS;
	struct judge_ctx j = {.ctx = ctx, .h = h, .s = s, .cnt = counters_get(), .len = h->len};

	int out = judge_frame(&j, p, kind);
	tally(&j, out == OUT_PASS ? MOAT_CNT_PASS : MOAT_CNT_DROP);
	return out;
}

#endif /* MOAT_JUDGE_H */
