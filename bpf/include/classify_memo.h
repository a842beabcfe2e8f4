/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The socket hooks' memo of the table walk: a connect()/sendmsg() with the facts of an earlier one
 * under the same policy generation gets the rule the walk gave then, read from one per-cpu entry
 * instead of a dozen lookups through the slot's inner maps. Sound because a generation's tables
 * never change once live (user space builds the idle slot's, and a reload is a new generation).
 * Direct-mapped by a hash of the facts; a walk that found a table missing is not kept, so every
 * such call is counted as before. */
#ifndef MOAT_CLASSIFY_MEMO_H
#define MOAT_CLASSIFY_MEMO_H

#include "classify.h"

#define MOAT_MEMO_ENTRIES 256

struct moat_classify_memo {
	/* odd while being written: a program that preempted the writer on this cpu reads no torn
	 * entry, and a second writer leaves it alone */
	__u32 seq;
	__u32 generation; /* 0: empty (no live generation is 0) */
	__u32 image;
	__u32 rule;
	struct facts f;
};

/* per cpu (the socket hooks run with migration disabled); written by the socket hooks */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MOAT_MEMO_ENTRIES);
	__type(key, __u32);
	__type(value, struct moat_classify_memo);
} classify_memo SEC(".maps");

/* whether two facts are the same to a walk: a word at a time up to icmp_code, then it (not the
 * padding after it) */
static __always_inline int memo_same(const struct facts *a, const struct facts *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;
	__u32 d = 0;

	_Static_assert(__builtin_offsetof(struct facts, icmp_code) == 40, "facts");
#pragma unroll
	for (int i = 0; i < 10; i++)
		d |= x[i] ^ y[i];
	return !d && a->icmp_code == b->icmp_code;
}

static __always_inline __u32 memo_index(__u32 image, const struct facts *f)
{
	const __u32 *r = (const __u32 *)f->remote, *l = (const __u32 *)f->local;
	__u32 h = (r[0] ^ r[1] ^ r[2] ^ r[3]) * 0x9e3779b1u;

	h = (h ^ l[0] ^ l[1] ^ l[2] ^ l[3]) * 0x85ebca6bu;
	h = (h ^ ((__u32)f->server_port << 16 | f->client_port) ^ (__u32)f->proto << 8 ^ image) *
	    0x9e3779b1u;
	return h >> 24;
}

/* classify(slot, image, m, f), from the memo when it holds these facts for m's generation */
static __always_inline __u32 classify_memo_get(__u32 slot, __u32 image, const struct moat_meta *m,
					       const struct facts *f)
{
	__u32 i = memo_index(image, f);
	struct moat_classify_memo *e = bpf_map_lookup_elem(&classify_memo, &i);

	if (!e)
		return classify(slot, image, m, f);
	__u32 seq = *(volatile __u32 *)&e->seq;
	barrier();
	if (!(seq & 1) && e->generation == m->generation && e->image == image &&
	    memo_same(&e->f, f)) {
		__u32 rule = e->rule;
		barrier();
		if (*(volatile __u32 *)&e->seq == seq)
			return rule;
	}
	__u64 walked = classify_walk(slot, image, m, f);
	if (walked & MOAT_WALK_MISSED)
		return (__u32)walked;
	/* the entry is this writer's only if none holds it (seq even, and unchanged since read) */
	if (!(seq & 1) && __sync_val_compare_and_swap(&e->seq, seq, seq + 1) == seq) {
		barrier();
		e->generation = m->generation;
		e->image = image;
		e->rule = (__u32)walked;
		__builtin_memcpy(&e->f, f, sizeof(e->f));
		barrier();
		e->seq = seq + 2;
	}
	return (__u32)walked;
}

/* The same for image 1 (process rules): an entry keyed by the facts and the owner's identity as
 * the process class reads it (cgroup, executable, uid, name; not the pid) keeps what the owner's
 * class and the walk gave: the route mirror's interface, the class P and the rule. All three are
 * the generation's tables' answers: the route mirror, the process key maps and the combination
 * tables are built with the generation, as the walk's tables are. So a process's repeated
 * connect() skips the process class's lookups as well as the walk */
struct moat_owner_memo {
	__u32 seq; /* as moat_classify_memo's */
	__u32 generation;
	__u32 rule;
	__u32 process; /* the owner's class P */
	__u32 ifindex; /* the interface the route mirror predicts */
	__u32 pad;
	struct facts f;		 /* client_port 0: P takes its place */
	struct moat_owner owner; /* pid 0 */
};

/* per cpu, written by the socket hooks under rules that name processes or interfaces */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MOAT_MEMO_ENTRIES);
	__type(key, __u32);
	__type(value, struct moat_owner_memo);
} owner_memo SEC(".maps");

/* whether two owners are the same to the process class: every word but the pid's */
static __always_inline int memo_same_owner(const struct moat_owner *a, const struct moat_owner *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;
	__u32 d = 0;

	_Static_assert(__builtin_offsetof(struct moat_owner, pid) == 20, "moat_owner");
#pragma unroll
	for (int i = 0; i < 12; i++)
		if (i != 5)
			d |= x[i] ^ y[i];
	return !d;
}

static __always_inline __u32 memo_owner_index(const struct facts *f, const struct moat_owner *o)
{
	const __u32 *r = (const __u32 *)f->remote, *c = (const __u32 *)o->comm;
	__u32 h = (r[0] ^ r[1] ^ r[2] ^ r[3] ^ (__u32)o->cgroup_id) * 0x9e3779b1u;

	h = (h ^ c[0] ^ c[1] ^ c[2] ^ c[3] ^ o->uid ^ (__u32)o->exe_ino) * 0x85ebca6bu;
	h = (h ^ (__u32)f->server_port << 16 ^ (__u32)f->proto << 8 ^ f->family) * 0x9e3779b1u;
	return h >> 24;
}

/* image 1's rule for a connect()/sendmsg() by s's owner, with s->ifindex set to the route
 * mirror's interface and f->client_port to the owner's class P (the names' walk reads it): from
 * the memo when it holds these facts and this identity for m's generation. A walk or a class
 * that found a table missing is not kept */
static __always_inline __u32 classify_owner_memo_get(__u32 slot, const struct moat_meta *m,
						     struct moat_sock *s, struct facts *f)
{
	f->client_port = 0;
	__u32 i = memo_owner_index(f, &s->owner);
	struct moat_owner_memo *e = bpf_map_lookup_elem(&owner_memo, &i);
	__u32 seq = 1;

	if (e) {
		seq = *(volatile __u32 *)&e->seq;
		barrier();
		if (!(seq & 1) && e->generation == m->generation && memo_same(&e->f, f) &&
		    memo_same_owner(&e->owner, &s->owner)) {
			__u32 rule = e->rule, p = e->process, ifindex = e->ifindex;
			barrier();
			if (*(volatile __u32 *)&e->seq == seq) {
				s->ifindex = ifindex;
				f->client_port = p;
				return rule;
			}
		}
	}
	s->ifindex = mirror_ifindex(slot, m, f);
	__u64 p = process_class_walk(slot, m, &s->owner, s->ifindex);
	f->client_port = (__u32)p;
	__u64 walked = classify_walk(slot, 1, m, f);
	if (!e || ((p | walked) & MOAT_WALK_MISSED))
		return (__u32)walked;
	if (!(seq & 1) && __sync_val_compare_and_swap(&e->seq, seq, seq + 1) == seq) {
		barrier();
		e->generation = m->generation;
		e->rule = (__u32)walked;
		e->process = (__u32)p;
		e->ifindex = s->ifindex;
		__builtin_memcpy(&e->f, f, sizeof(e->f));
		e->f.client_port = 0;
		__builtin_memcpy(&e->owner, &s->owner, sizeof(e->owner));
		e->owner.pid = 0;
		barrier();
		e->seq = seq + 2;
	}
	return (__u32)walked;
}

#endif /* MOAT_CLASSIFY_MEMO_H */
