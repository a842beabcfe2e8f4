/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Rate limits (docs/policy.md, "rate_limit"): the packets a remote sends on the connections a
 * limited rule allowed, counted per source by one of four algorithms. One array lookup finds the
 * rule's limit, one array lookup this cpu's lease of the source (in one of the four slots of its
 * set, by a hash of the source, in this cpu's part of limit_lease_cache; a source whose four
 * slots other leases hold has its lease in the per-cpu hash limit_leases), and when that cannot
 * answer, one hash lookup the source's shared state, changed under its spin lock: no loop over
 * rules or sources. The shared state is the global account; a lease lets a cpu admit up to
 * `lease` packets on its own, and an over-limit answer is cached per cpu until time alone could
 * change it, so a flood over the limit does not contend for the lock. */
#ifndef MOAT_RATELIMIT_H
#define MOAT_RATELIMIT_H

#include "maps.h"
#include "counters.h"
#include "packet.h"
#include "events.h"

#define MOAT_EEXIST 17

/* 1: the limits read the time from limit_clock (the bpf tests' windows); load-time knob */
const volatile __u32 limit_test_clock = 0;

/* limit_clock's key, in read-only data: the lookup takes no stack from the judge, which reads
 * the clock too (a connection's credit, over_limit) and whose callers' stack is near the limit */
static const __u32 limit_clock_key = 0;

static __always_inline __u64 limit_now(__u64 now)
{
	if (!limit_test_clock)
		return now;
	__u64 *t = bpf_map_lookup_elem(&limit_clock, &limit_clock_key);
	return t ? *t : now;
}

/* the source of a packet from the remote: its address masked to the limit's prefix (a word at a
 * time), and the server port when the limit is per port */
static __always_inline void limit_key_of(const struct moat_limit *l, const struct pkt *p,
					 __u16 server_port, struct moat_limit_key *k)
{
	__u32 bits = p->t.family == 4 ? 96 + l->prefix4 : l->prefix6;
	__u32 w[4];

	k->id = l->id;
	k->port = l->per_port ? server_port : 0;
	k->flags = 0;
	k->pad = 0;
	__builtin_memcpy(w, p->t.src, 16);
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u32 lo = i * 32;
		if (bits <= lo)
			w[i] = 0;
		else if (bits < lo + 32)
			w[i] &= bpf_htonl(~0u << (32 - (bits - lo)));
	}
	__builtin_memcpy(k->addr, w, 16);
}

/* the algorithms, on a state the caller holds the lock of: up to `want` packets within the
 * limit at `now`; 0 when over it, with *retry the earliest time one could be within (only time
 * refills the state, other cpus only take from it). Buckets count in ns * count units (a packet
 * is period_ns) */
static __always_inline __u64 limit_grant(const struct moat_limit *l, struct moat_limit_state *s,
					 __u64 now, __u64 want, __u64 *retry)
{
	__u64 period = l->period_ns, count = l->count;
	__u64 full = (__u64)l->burst * period;
	__u64 elapsed = now > s->t ? now - s->t : 0;
	__u64 n = 0, win, off, room, x;

	switch (l->algorithm) {
	case MOAT_LIMIT_TOKEN_BUCKET:
		/* credit grows by count per period up to burst packets; a packet spends one */
		if (now > s->t)
			s->t = now;
		if (elapsed >= l->fill_ns || s->a + elapsed * count > full)
			s->a = full;
		else
			s->a += elapsed * count;
		n = s->a / period;
		if (n > want)
			n = want;
		if (!n) {
			*retry = now + (period - s->a + count - 1) / count;
			return 0;
		}
		s->a -= n * period;
		return n;
	case MOAT_LIMIT_LEAKY_BUCKET:
		/* the level drains by count per period; a packet that would overflow burst is over
		 */
		if (now > s->t)
			s->t = now;
		if (elapsed >= l->fill_ns || s->a < elapsed * count)
			s->a = 0;
		else
			s->a -= elapsed * count;
		n = s->a < full ? (full - s->a) / period : 0;
		if (n > want)
			n = want;
		if (!n) {
			*retry = now + (s->a + period - full + count - 1) / count;
			return 0;
		}
		s->a += n * period;
		return n;
	case MOAT_LIMIT_FIXED_WINDOW:
		win = now / period;
		if (win != s->t) {
			s->t = win;
			s->a = 0;
		}
		n = count > s->a ? count - s->a : 0;
		if (n > want)
			n = want;
		if (!n) {
			*retry = (win + 1) * period;
			return 0;
		}
		s->a += n;
		return n;
	case MOAT_LIMIT_SLIDING_WINDOW:
		/* the previous window's count weighted by how much of it the sliding period still
		 * covers, plus the current window's, stays <= count */
		win = now / period;
		off = now - win * period;
		if (win != s->t) {
			s->b = win == s->t + 1 ? s->a : 0;
			s->a = 0;
			s->t = win;
		}
		x = s->b * (period - off);
		room = count * period > x ? (count * period - x) / period : 0;
		n = room > s->a ? room - s->a : 0;
		if (n > want)
			n = want;
		if (!n) {
			/* the previous window's weight falls by b per ns; a new window at the
			 * latest */
			x = x + (s->a + 1) * period - count * period;
			*retry = (win + 1) * period;
			if (s->b && (x + s->b - 1) / s->b < period - off)
				*retry = now + (x + s->b - 1) / s->b;
			return 0;
		}
		s->a += n;
		return n;
	}
	return want;
}

/* one report for `over` packets of a source (ratelimit) or of this cpu (scrub.h): the packet
 * came from the remote, so its source is the remote */
static __always_inline void limit_report(const struct pkt *p, const struct moat_ct *ct, __u64 over,
					 __u8 type, __u8 reason, const struct ev_from *from)
{
	struct moat_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);

	if (!ev) {
		count(MOAT_CNT_EVENT_LOST, 0);
		return;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	int ported = proto_ported(p->t.proto);
	ev->ts_ns = bpf_ktime_get_ns();
	ev->packets = over;
	__builtin_memcpy(ev->remote, p->t.src, 16);
	__builtin_memcpy(ev->local, p->t.dst, 16);
	ev->remote_port = ported ? p->t.sport : 0;
	ev->local_port = ported ? p->t.dport : 0;
	ev->ifindex = from->ifindex;
	ev->rule = MOAT_RULE_NONE;
	ev->type = type;
	ev->hook = from->hook;
	ev->family = p->t.family;
	ev->protocol = p->t.proto;
	ev->direction = MOAT_DIR_INGRESS;
	ev->mode = type == MOAT_EV_BLOCKED ? MOAT_MODE_PREVENT : MOAT_MODE_DETECT;
	ev->verdict = type;
	ev->reason = reason;
	ev->icmp_type = p->icmp_type;
	ev->icmp_code = p->icmp_code;
	if (ct) {
		ev->conn_id = ct->id;
		ev->rule = ct->rule;
		ev->generation = ct->generation;
		ev->direction = ct->direction;
		ev->tcp_state = ct->tcp_state;
		ev->owner = ct->owner;
	}
	bpf_ringbuf_submit(ev, ring_wake(&events_woken_ns, ev->ts_ns));
}

/* the state of the packet's source under limit l: found, made, or (the table is full) the
 * limit's overflow bucket; NULL when not even that is there (counted) */
static __always_inline struct moat_limit_state *limit_state_of(const struct moat_limit *l,
							       struct moat_limit_key *k, __u64 now)
{
	struct moat_limit_state *s = bpf_map_lookup_elem(&limit_state, k);
	__u32 zero = 0;

	if (s)
		return s;
	struct moat_limit_state *init = bpf_map_lookup_elem(&limit_scratch, &zero);
	if (!init)
		return NULL;
	__builtin_memset(init, 0, sizeof(*init));
	/* a new source starts with a full bucket */
	if (l->algorithm == MOAT_LIMIT_TOKEN_BUCKET) {
		init->a = (__u64)l->burst * l->period_ns;
		init->t = now;
	}
	long err = bpf_map_update_elem(&limit_state, k, init, BPF_NOEXIST);
	if (err && err != -MOAT_EEXIST) {
		count(MOAT_CNT_LIMIT_FULL, 0);
		k->flags = MOAT_LIMIT_OVERFLOW;
		k->port = 0;
		__builtin_memset(k->addr, 0, 16);
	}
	return bpf_map_lookup_elem(&limit_state, k);
}

/* a source's set in limit_lease_cache: the top bits of a multiplicative hash of its key's three
 * words. A set of four slots, a source's lease in any of them: with 4,096 sources and a slot
 * each (8,192), one source in five found its slot busy and paid a hash lookup (limit_leases) a
 * packet; one in thirty finds its four busy */
static __always_inline __u32 limit_cache_set(const struct moat_limit_key *k)
{
	__u64 w[3];

	__builtin_memcpy(w, k, sizeof(w));
	__u64 h = (w[0] ^ (w[1] * 0x9e3779b97f4a7c15ULL)) * 0xc2b2ae3d27d4eb4fULL;
	h = (h ^ w[2]) * 0x9e3779b97f4a7c15ULL;
	return (__u32)(h >> (64 - MOAT_LIMIT_CACHE_SET_BITS));
}

/* set `set` of cpu's part of limit_lease_cache; NULL for a cpu the array has no part for (the
 * loader gives it one for every possible cpu) */
static __always_inline struct limit_cache_set *limit_cache_at(__u32 cpu, __u32 set)
{
	__u32 i = cpu * MOAT_LIMIT_CACHE_SETS + set;

	return bpf_map_lookup_elem(&limit_lease_cache, &i);
}

static __always_inline int limit_key_eq(const struct moat_limit_key *a,
					const struct moat_limit_key *b)
{
	__u64 x[3], y[3];

	__builtin_memcpy(x, a, sizeof(x));
	__builtin_memcpy(y, b, sizeof(y));
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2];
}

/* whether cache slot c may take another source's lease: its own admits nothing more (no credit,
 * or past its end), so taking it over loses nothing a lease's end would not. The packets it
 * counted over the limit go to its source's shared count first */
static __always_inline int limit_cache_take(struct limit_cached *c, __u64 now)
{
	if (c->lease.credit && now < c->lease.until)
		return 0;
	__u64 over = __sync_lock_test_and_set(&c->lease.over, 0);
	if (over) {
		struct moat_limit_state *s = bpf_map_lookup_elem(&limit_state, &c->key);

		if (s) {
			bpf_spin_lock(&s->lock);
			s->over += over;
			bpf_spin_unlock(&s->lock);
		}
	}
	return 1;
}

/* The slot of cache set cs that holds source k's lease, or MOAT_LIMIT_CACHE_WAYS. Global
 * functions (this and limit_cache_free_way): the verifier follows one slot pointer of an unknown
 * way after them, not one path a way through the rest of limit_over */
__noinline int limit_cache_way(const struct limit_cache_set *cs, const struct moat_limit_key *k)
{
	if (!cs || !k)
		return MOAT_LIMIT_CACHE_WAYS;
#pragma unroll
	for (__u32 way = 0; way < MOAT_LIMIT_CACHE_WAYS; way++)
		if (limit_key_eq(&cs->way[way].key, k))
			return way;
	return MOAT_LIMIT_CACHE_WAYS;
}

/* the slot of cache set cs that may take a new source's lease (limit_cache_take), or
 * MOAT_LIMIT_CACHE_WAYS */
__noinline int limit_cache_free_way(struct limit_cache_set *cs, __u64 now)
{
	if (!cs)
		return MOAT_LIMIT_CACHE_WAYS;
#pragma unroll
	for (__u32 way = 0; way < MOAT_LIMIT_CACHE_WAYS; way++)
		if (limit_cache_take(&cs->way[way], now))
			return way;
	return MOAT_LIMIT_CACHE_WAYS;
}

/* this cpu's lease of source k in its cache set cs, or NULL */
static __always_inline struct moat_limit_lease *limit_cache_find(struct limit_cache_set *cs,
								 const struct moat_limit_key *k)
{
	__u32 way = limit_cache_way(cs, k);

	/* (the mask: bounds the verifier keeps) */
	return way < MOAT_LIMIT_CACHE_WAYS ? &cs->way[way & (MOAT_LIMIT_CACHE_WAYS - 1)].lease
					   : NULL;
}

/* a slot of cache set cs that may take a new source's lease (limit_cache_take), or NULL */
static __always_inline struct limit_cached *limit_cache_free(struct limit_cache_set *cs, __u64 now)
{
	__u32 way = limit_cache_free_way(cs, now);

	return way < MOAT_LIMIT_CACHE_WAYS ? &cs->way[way & (MOAT_LIMIT_CACHE_WAYS - 1)] : NULL;
}

/* cpus whose over-limit counts a report collects (a cpu past it hands its count over at its
 * own next visit of the source) */
#define MOAT_LIMIT_MAX_CPUS 256
/* this machine's possible cpus, set by the loader: read-only data the verifier knows, so it
 * walks the collecting loop once a cpu there is, not 256 times (a second of every load) */
const volatile __u32 limit_cpus = MOAT_LIMIT_MAX_CPUS;

/* the packets over the limit that cpus counted for source k in their over-limit caches and have
 * not handed to the shared count yet, taken from them: a report has every packet over the limit
 * up to it, whichever cpu dropped it. Counts are taken and added with atomics: a cpu may count
 * while another takes */
static __always_inline __u64 limit_collect(const struct moat_limit_key *k, __u32 set)
{
	__u64 sum = 0;

	for (__u32 cpu = 0; cpu < MOAT_LIMIT_MAX_CPUS && cpu < limit_cpus; cpu++) {
		struct limit_cache_set *cs = limit_cache_at(cpu, set);

		if (cs) {
#pragma unroll
			for (__u32 way = 0; way < MOAT_LIMIT_CACHE_WAYS; way++)
				if (limit_key_eq(&cs->way[way].key, k))
					sum +=
					    __sync_lock_test_and_set(&cs->way[way].lease.over, 0);
		}
		struct moat_limit_lease *ls = bpf_map_lookup_percpu_elem(&limit_leases, k, cpu);
		if (ls)
			sum += __sync_lock_test_and_set(&ls->over, 0);
	}
	return sum;
}

/* this cpu's lease of a limit's source, as the shared state left it */
static __always_inline void lease_set(struct moat_limit_lease *ls, const struct moat_limit *l,
				      __u64 now, __u64 granted, __u64 retry, __u64 report_after)
{
	ls->credit = granted ? granted - 1 : 0;
	if (l->algorithm == MOAT_LIMIT_FIXED_WINDOW || l->algorithm == MOAT_LIMIT_SLIDING_WINDOW)
		ls->until = (now / l->period_ns + 1) * l->period_ns;
	else
		ls->until = now + l->lease_ns;
	ls->denied_until = granted ? 0 : retry;
	ls->report_after = report_after;
	ls->over = 0;
}

/* Some of the credit left in a lease goes to the connection whose packet it admitted, for the
 * lease's time: its next packets pass on it without reaching the source's state (the judge's
 * over_limit). Only to a connection that has sent a chunk (MOAT_LIMIT_CT_CHUNK packets) already,
 * and a chunk at a time: credit
 * a connection holds when it ends is lost, and short flows must not spend their CPU's lease that
 * way. Credit the shared state granted changes hands, none is made: docs/policy.md has the bound */
static __always_inline void lease_hand_over(struct moat_limit_lease *ls, struct moat_ct *ct,
					    __u64 now)
{
	__u64 sent = ct->packets[ct->direction == MOAT_DIR_INGRESS ? 0 : 1];

	if (sent < MOAT_LIMIT_CT_CHUNK || !ls->credit || ls->until <= now)
		return;
	__u32 n = ls->credit < MOAT_LIMIT_CT_CHUNK ? ls->credit : MOAT_LIMIT_CT_CHUNK;
	ct->limit_credit = n;
	ct->limit_until = ls->until;
	ls->credit -= n;
}

/* whether a packet from the remote of connection ct is over its rule's limit (in generation
 * `slot`). This cpu's lease answers when it can (credit left, or a denial that only time ends);
 * else the source's shared state, under its lock, which also reports the source at most once per
 * report_ns, with the packets over since. A packet within the limit may hand some of the lease's
 * credit to its connection. A global function: verified once */
__noinline int limit_over(__u32 slot, const struct pkt *p, struct moat_ct *ct,
			  const struct ev_from *from, __u64 now)
{
	struct moat_limit_key k __attribute__((aligned(8)));

	if (!p || !ct || !from)
		return 0;
	void *limits = bpf_map_lookup_elem(&tbl_limits, &slot);
	__u32 rule = ct->rule;
	struct moat_limit *l = limits ? bpf_map_lookup_elem(limits, &rule) : NULL;
	if (!l || !l->id || !l->period_ns || !l->count)
		return 0;
	now = limit_now(now);
	__u16 server_port = ct->direction == MOAT_DIR_INGRESS ? p->t.dport : p->t.sport;
	limit_key_of(l, p, proto_ported(p->t.proto) ? server_port : 0, &k);

	/* this cpu's lease: in a slot of the source's cache set, else (all four were busy) in
	 * limit_leases */
	struct limit_cache_set *cs =
	    limit_cache_at(bpf_get_smp_processor_id(), limit_cache_set(&k));
	struct moat_limit_lease *ls = cs ? limit_cache_find(cs, &k) : NULL;
	if (!ls)
		ls = bpf_map_lookup_elem(&limit_leases, &k);
	if (ls) {
		if (ls->credit && now < ls->until) {
			ls->credit -= 1;
			lease_hand_over(ls, ct, now);
			return 0;
		}
		if (now < ls->denied_until && now < ls->report_after) {
			__sync_fetch_and_add(&ls->over, 1);
			return 1;
		}
	}
	struct moat_limit_state *s = limit_state_of(l, &k, now);
	if (!s)
		return 0;

	__u64 over = 0, retry = 0, local = ls ? __sync_lock_test_and_set(&ls->over, 0) : 0;
	bpf_spin_lock(&s->lock);
	__u64 granted = limit_grant(l, s, now, l->lease > 1 ? l->lease : 1, &retry);
	s->last_ns = now;
	s->over += local;
	if (!granted) {
		s->over += 1;
		if (!s->reported_ns || now - s->reported_ns >= l->report_ns) {
			over = s->over;
			s->over = 0;
			s->reported_ns = now;
		}
	}
	__u64 report_after = s->reported_ns ? s->reported_ns + l->report_ns : 0;
	bpf_spin_unlock(&s->lock);

	/* the set is looked up again, not kept across the lock: the judging chain's stack (512
	 * bytes) has no room for it */
	__u32 zero = 0;
	struct limit_cached *c;
	if (ls) {
		lease_set(ls, l, now, granted, retry, report_after);
	} else if (!k.flags &&
		   (cs = limit_cache_at(bpf_get_smp_processor_id(), limit_cache_set(&k))) &&
		   (c = limit_cache_free(cs, now))) {
		/* (not a source judged by the overflow bucket: k is that bucket's key now) */
		c->key = k;
		ls = &c->lease;
		lease_set(ls, l, now, granted, retry, report_after);
	} else if ((ls = bpf_map_lookup_elem(&limit_scratch, &zero))) {
		lease_set(ls, l, now, granted, retry, report_after);
		lease_hand_over(ls, ct, now);
		bpf_map_update_elem(&limit_leases, &k, ls, BPF_NOEXIST);
		ls = NULL;
	}
	if (ls)
		lease_hand_over(ls, ct, now);
	/* what other cpus counted since the previous report is in this one (this cpu's is in
	 * s->over already) */
	if (over)
		over += limit_collect(&k, limit_cache_set(&k));
	if (over)
		limit_report(p, ct, over,
			     ct->mode == MOAT_MODE_PREVENT ? MOAT_EV_BLOCKED : MOAT_EV_DETECTED,
			     MOAT_REASON_RATE_LIMIT, from);
	return !granted;
}

#endif /* MOAT_RATELIMIT_H */
