/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The table walk of docs/classifier.md: the facts of a new connection -> the first
 * matching rule, with a fixed number of lookups whatever the number of rules. */
#ifndef MOAT_CLASSIFY_H
#define MOAT_CLASSIFY_H

#include "maps.h"
#include "counters.h"
#include "parse.h"
#include "exe_file.h"

/* what a rule can constrain, as the initiator's first packet shows it */
struct facts {
	__u8 remote[16]; /* ipv4 mapped */
	__u8 local[16];
	__u16 client_port;
	__u16 server_port;
	__u8 dir; /* enum moat_direction */
	__u8 family;
	__u8 proto;
	__u8 icmp_type;
	__u8 icmp_code;
} __attribute__((aligned(4)));

/* ::ffff:a.b.c.d, compared a word at a time: every address this is asked about is 4-byte
 * aligned (struct facts, struct tuple, the records' addresses) */
static __always_inline int addr_is_v4mapped(const __u8 *a)
{
	const __u32 *w = (const __u32 *)a;

	return !w[0] && !w[1] && w[2] == bpf_htonl(0xffff);
}

/* one entry of a directory; -1 when outside it (an inconsistent image) */
static __always_inline int dir4_entry(void *dir, __u32 i, __u64 *out)
{
	__u64 *e = bpf_map_lookup_elem(dir, &i);
	if (!e)
		return -1;
	*out = *e;
	return 0;
}

/* the bits set in x (bpf has no popcount instruction) */
static __always_inline __u64 dir4_popcount(__u64 x)
{
	x = x - ((x >> 1) & 0x5555555555555555ULL);
	x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
	return (x * 0x0101010101010101ULL) >> 56;
}

/* the index of the entry that describes `a`'s /24 in the /16 block at `block`, or -1 with
 * *cls set when the /24 has the block's common class */
static __always_inline __s64 dir4_block(void *dir, __u32 block, __u32 a, __u32 *cls)
{
	__u32 b = (a >> 8) & 255, j = b >> 6;
	__u64 bits, meta, specials;

	*cls = 0;
	if (dir4_entry(dir, block + j, &bits) || dir4_entry(dir, block + 4, &meta))
		return -1;
	if (!((bits >> (b & 63)) & 1)) {
		*cls = (__u32)meta;
		return -1;
	}
	if (dir4_entry(dir, block + 5, &specials))
		return -1;
	__u64 rank = ((meta >> 32) >> (8 * j)) & 255;
	rank += dir4_popcount(bits & ((1ULL << (b & 63)) - 1));
	return (__u32)specials + rank;
}

/* the class of ipv4 address `a` (host order) in one generation's directory: the /16's entry
 * (a wide directory has none), then a uniform /16's class, a binary search of a /16's segment,
 * or its /24 block's line, and for a special /24 its entry and maybe its segment
 * (docs/classifier.md) */
static __noinline __u32 dir4_class(__u32 idx, __u32 a)
{
	void *dir = bpf_map_lookup_elem(&tbl_dir4, &idx);
	if (!dir)
		return 0;
	__u64 e;
	if (dir4_entry(dir, 0, &e))
		return 0;
	__u32 block = 8 * (1 + (a >> 16));
	int in_block = (__u32)(e >> 32) == MOAT_DIR4_WIDE;
	if (!in_block) {
		if (dir4_entry(dir, a >> 16, &e))
			return 0;
		in_block = (__u32)(e >> 32) == MOAT_DIR4_BITMAP;
		block = (__u32)e;
	}
	if (in_block) {
		__u32 cls;
		__s64 at = dir4_block(dir, block, a, &cls);
		if (at < 0)
			return cls;
		if (dir4_entry(dir, (__u32)at, &e))
			return 0;
	}
	__u32 high = e >> 32, first = (__u32)e;
	if (high == MOAT_DIR4_UNIFORM)
		return first;

	__u32 low = a & 0xffff, lo = 0, hi = high;
	for (int i = 0; i < MOAT_DIR4_STEPS; i++) {
		if (hi - lo <= 1)
			break;
		__u32 mid = (lo + hi) / 2;
		if (dir4_entry(dir, first + mid, &e))
			return 0;
		if ((__u32)(e >> 32) <= low)
			lo = mid;
		else
			hi = mid;
	}
	return dir4_entry(dir, first + lo, &e) ? 0 : (__u32)e;
}

/* the class of ipv6 address `addr` in one generation's trie; a miss is class 0 */
static __noinline __u32 lpm6_class(__u32 idx, const __u8 *addr)
{
	void *trie = bpf_map_lookup_elem(&tbl_lpm6, &idx);
	if (!trie || !addr)
		return 0;
	struct moat_lpm6_key k = {.prefixlen = 128};
	__builtin_memcpy(k.addr, addr, 16);
	__u32 *cls = bpf_map_lookup_elem(trie, &k);
	return cls ? *cls : 0;
}

/* the address's class in one generation's v4 directory or v6 trie. An ipv6 packet's
 * ipv4-mapped address is judged as ipv4, as the reference evaluator does. Both lookups are
 * subprograms of their own: their keys stay off classify()'s stack (512 bytes for the chain) */
static __always_inline __u32 lpm_class(__u32 table, __u32 slot, __u32 image, const __u8 *addr,
				       __u8 family)
{
	__u32 idx = outer_index(image, 2, table, slot);

	if (family == 4 || addr_is_v4mapped(addr)) {
		__be32 a;
		__builtin_memcpy(&a, addr + 12, 4);
		return dir4_class(idx, bpf_ntohl(a));
	}
	return lpm6_class(idx, addr);
}

/* one u32 of one generation's array table; -1 when missing (an inconsistent image) */
static __always_inline int table_u32(__u32 table_id, __u32 slot, __u32 image, __u32 idx, __u32 *out)
{
	__u32 outer_idx = outer_index(image, T_U32_TABLES, table_id, slot);
	void *table = bpf_map_lookup_elem(&tbl_u32, &outer_idx);
	if (!table)
		return -1;
	__u32 *v = bpf_map_lookup_elem(table, &idx);
	if (!v)
		return -1;
	*out = *v;
	return 0;
}

static __always_inline int proto_ported(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP;
}

/* (direction, protocol slot, port value): tcp/udp server port, icmp type << 8 | code,
 * other protocols their number */
static __always_inline __u32 port_index(const struct facts *f)
{
	__u32 pslot, value;

	if (f->proto == IPPROTO_TCP) {
		pslot = 0;
		value = f->server_port;
	} else if (f->proto == IPPROTO_UDP) {
		pslot = 1;
		value = f->server_port;
	} else if (f->proto == IPPROTO_ICMP) {
		pslot = 2;
		value = (__u32)f->icmp_type << 8 | f->icmp_code;
	} else if (f->proto == IPPROTO_ICMPV6_) {
		pslot = 3;
		value = (__u32)f->icmp_type << 8 | f->icmp_code;
	} else {
		pslot = 4;
		value = f->proto;
	}
	return ((f->dir * MOAT_PROTO_SLOTS + pslot) << 16) | value;
}

/* classify_walk()'s result when a table was missing (an inconsistent image, counted): above
 * any rule index */
#define MOAT_WALK_MISSED (1ULL << 32)

/* the deciding rule's index in generation `slot`, by table image `image` (0: packet hooks,
 * 1: socket hooks with process rules, 2: redirects), a default rule when none matches; with
 * MOAT_WALK_MISSED when a table was missing. A global function: verified once, whatever the
 * state of its callers */
__noinline __u64 classify_walk(__u32 slot, __u32 image, const struct moat_meta *m,
			       const struct facts *f)
{
	if (!m || !f)
		return MOAT_RULE_NONE;

	/* the policy's defaults; none for the redirects (their image's own default indexes
	 * could be taken for a redirect's), nor for the names image (image 1 has them) */
	__u32 dflt = image >= 2 ? MOAT_RULE_NONE : f->dir ? m->default_rule[1] : m->default_rule[0];
	const struct moat_image_meta *im = &m->image[image < MOAT_IMAGES ? image : 0];
	__u32 ns = im->ns;
	__u32 nx = im->nx;
	__u32 rclass = lpm_class(T_REMOTE, slot, image, f->remote, f->family);
	__u32 lclass = lpm_class(T_LOCAL, slot, image, f->local, f->family);
	__u32 pclass, sclass, x, y, r;
	__u32 rule = MOAT_RULE_NONE;

	/* per-dimension classes, then their combinations */
	if (table_u32(T_PORT_CLASS, slot, image, port_index(f), &pclass))
		goto miss;
	__u32 sidx = proto_ported(f->proto) ? 1 + (__u32)f->client_port : 0;
	if (table_u32(T_SPORT_CLASS, slot, image, sidx, &sclass))
		goto miss;
	if (table_u32(T_LX, slot, image, lclass * ns + sclass, &x))
		goto miss;
	if (table_u32(T_PX, slot, image, pclass * nx + x, &y))
		goto miss;

	/* first rule naming remotes, first without remote constraint, first remote-only */
	__u32 ry_idx = outer_index(image, 1, 0, slot);
	void *ry = bpf_map_lookup_elem(&tbl_remote_y, &ry_idx);
	if (!ry)
		goto miss;
	struct moat_ry_key k = {.r = rclass, .y = y};
	__u32 *hit = bpf_map_lookup_elem(ry, &k);
	if (hit)
		rule = *hit;
	if (table_u32(T_ANY_REMOTE, slot, image, y, &r))
		goto miss;
	if (r < rule)
		rule = r;
	if (table_u32(T_REMOTE_ONLY, slot, image, rclass * 2 + (f->dir & 1), &r))
		goto miss;
	if (r < rule)
		rule = r;
	return rule == MOAT_RULE_NONE ? dflt : rule;
miss:
	count(MOAT_CNT_TABLE_MISS, 0);
	return MOAT_WALK_MISSED | dflt;
}

/* the deciding rule's index (classify_walk()) */
static __always_inline __u32 classify(__u32 slot, __u32 image, const struct moat_meta *m,
				      const struct facts *f)
{
	return (__u32)classify_walk(slot, image, m, f);
}

/* a u32 -> u32 class in one of a slot's process key maps; a miss is class 0 */
static __always_inline __u32 key_class(void *outer, __u32 slot, const void *key)
{
	void *inner = bpf_map_lookup_elem(outer, &slot);
	__u32 *v = inner ? bpf_map_lookup_elem(inner, key) : NULL;
	return v ? *v : 0;
}

/* the interface the route mirror says f's remote address leaves by (0: no route, or a reject
 * route) in generation `slot`; not asked (0) when nothing reads it: no rule names an interface
 * (one interface class, no post-route check) */
static __always_inline __u32 mirror_ifindex(__u32 slot, const struct moat_meta *m,
					    const struct facts *f)
{
	struct moat_lpm6_key key = {.prefixlen = 128};

	if (m->proc_ni <= 1 && !m->post_route)
		return 0;
	__builtin_memcpy(key.addr, f->remote, 16);
	return key_class(&tbl_proc_route, slot, &key);
}

/* the executable's path class in generation `slot`, by (inode, device, generation): user space
 * writes each file's key, and a copy with MOAT_GEN_NONE (exe_file.h) for the keys recorded before
 * moat recorded generations (0 here), which are taken as an inode without one. On a miss, once
 * more with generation 0: the files whose generation user space could not learn
 * (src/attribution/file-identity.ts), never one it could, so a file given a freed inode's number
 * is not taken for the freed file. A miss costs that second lookup */
static __always_inline __u32 exe_class(__u32 slot, struct moat_exe_key *exe)
{
	if (!exe->gen)
		exe->gen = MOAT_GEN_NONE;
	__u32 c = key_class(&tbl_proc_exe, slot, exe);

	if (c)
		return c;
	exe->gen = 0;
	return key_class(&tbl_proc_exe, slot, exe);
}

/* the class of a connection's owner leaving by interface `ifindex` in generation `slot`
 * (docs/socket-hooks.md): up to five key lookups, one to four combination lookups (the steps
 * moat_meta.proc_folds does not fold). The socket hooks give the interface the route mirror
 * predicts, the post-route check the real one. No owner (`o` NULL: a forwarded or arriving
 * packet) is class 0 of every process field, which holds the rules that do not constrain it: so
 * no process rule's, and the interface rules' of `ifindex`. With MOAT_WALK_MISSED when a
 * combination table was missing (class 0, counted). A global function, like classify_walk() */
__noinline __u64 process_class_walk(__u32 slot, const struct moat_meta *m,
				    const struct moat_owner *o, __u32 ifindex)
{
	if (!m)
		return 0;
	__u32 cp = 0, cn = 0, cu = 0, cc = 0, p;

	if (o) {
		struct moat_exe_key exe = {.ino = o->exe_ino, .dev = o->exe_dev, .gen = o->exe_gen};
		struct moat_lpm6_key key = {.prefixlen = 128};
		__u32 uid = o->uid;
		__u64 cgroup = o->cgroup_id;

		/* a field of one class (no rule names it), or no executable to find: class 0,
		 * unasked */
		__builtin_memcpy(key.addr, o->comm, 16);
		cp = m->lean & MOAT_LEAN_NO_EXE ? 0 : exe_class(slot, &exe);
		cn = m->proc_nn > 1 ? key_class(&tbl_proc_comm, slot, &key) : 0;
		cu = m->proc_nu > 1 ? key_class(&tbl_proc_uid, slot, &uid) : 0;
		cc = m->proc_nc > 1 ? key_class(&tbl_proc_cgroup, slot, &cgroup) : 0;
	}
	__u32 ci = m->proc_ni > 1 ? key_class(&tbl_proc_iface, slot, &ifindex) : 0;
	/* a step folded into the next passes its index on: the next table is indexed by both */
	__u32 folds = m->proc_folds, idx = cp * m->proc_nn + cn;
	if (!(folds & 1) && table_u32(T_PROC_A, slot, 1, idx, &idx))
		goto miss;
	idx = idx * m->proc_nu + cu;
	if (!(folds & 2) && table_u32(T_PROC_B, slot, 1, idx, &idx))
		goto miss;
	idx = idx * m->proc_nc + cc;
	if (!(folds & 4) && table_u32(T_PROC_P, slot, 1, idx, &idx))
		goto miss;
	if (table_u32(T_PROC_D, slot, 1, idx * m->proc_ni + ci, &p))
		goto miss;
	return p;
miss:
	count(MOAT_CNT_TABLE_MISS, 0);
	return MOAT_WALK_MISSED;
}

/* the owner's class (process_class_walk()) */
static __always_inline __u32 process_class_at(__u32 slot, const struct moat_meta *m,
					      const struct moat_owner *o, __u32 ifindex)
{
	return (__u32)process_class_walk(slot, m, o, ifindex);
}

/* the name class bound to the owner's identity and f's remote address in generation `slot`
 * (docs/classifier.md, "Names"), else to everyone (the hosts file); 0: none live */
static __noinline __u32 name_class(__u32 slot, const struct moat_owner *o, const struct facts *f)
{
	struct moat_name_key k = {};

	if (!o || !f)
		return 0;
	void *names = bpf_map_lookup_elem(&tbl_names, &slot);
	if (!names)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	__builtin_memcpy(k.addr, f->remote, 16);
	k.cgroup_id = o->cgroup_id;
	k.exe_ino = o->exe_ino;
	k.exe_dev = o->exe_dev;
	k.uid = o->uid;
	struct moat_name_binding *b = bpf_map_lookup_elem(names, &k);
	if (b && b->expires_ns > now)
		return b->nclass;
	k.cgroup_id = 0;
	k.exe_ino = 0;
	k.exe_dev = 0;
	k.uid = 0;
	b = bpf_map_lookup_elem(names, &k);
	return b && b->expires_ns > now ? b->nclass : 0;
}

/* the first rule naming hosts that the connection matches (MOAT_RULE_NONE if none): table image 3
 * with the remote address's name class as the address 0.0.0.N and process class `p`. In place in
 * `f` (restored after): a copy would not fit the stack the callers share */
static __always_inline __u32 classify_names(__u32 slot, const struct moat_meta *m, struct facts *f,
					    const struct moat_owner *o, __u32 p)
{
	/* hostname entries are for egress rules only */
	if (!m->names || f->dir != MOAT_DIR_EGRESS)
		return MOAT_RULE_NONE;
	__u32 n = name_class(slot, o, f);
	if (!n)
		return MOAT_RULE_NONE;
	__u64 remote[2];
	__u16 port = f->client_port;
	__u8 family = f->family;
	__builtin_memcpy(remote, f->remote, 16);
	__builtin_memset(f->remote, 0, 10);
	f->remote[10] = 0xff;
	f->remote[11] = 0xff;
	f->remote[12] = n >> 24;
	f->remote[13] = n >> 16;
	f->remote[14] = n >> 8;
	f->remote[15] = n;
	f->family = 4;
	f->client_port = p;
	__u32 rule = classify(slot, 3, m, f);
	__builtin_memcpy(f->remote, remote, 16);
	f->family = family;
	f->client_port = port;
	return rule;
}

/* the rule's flags (enum moat_rule_flag); 0 when it has no entry */
static __always_inline __u8 rule_flags(__u32 slot, __u32 rule)
{
	void *rules = bpf_map_lookup_elem(&tbl_rules, &slot);
	struct moat_rule *r = rules ? bpf_map_lookup_elem(rules, &rule) : NULL;

	return r ? r->flags : 0;
}

/* the rule deciding a connection whose owner is known and which leaves by `ifindex`: by the
 * socket hooks' tables and the owner's process class (and its name bindings), unless that
 * decision needs the local address or client port (egress) or the client port (ingress), or is
 * the DNS proxy's (no proxy sees it here), then by the packet hooks' tables (which have both in
 * `f`) */
static __always_inline __u32 classify_owned_at(__u32 slot, const struct moat_meta *m,
					       struct facts *f, const struct moat_owner *o,
					       __u32 ifindex)
{
	if (!m->socket_image)
		return classify(slot, 0, m, f);
	__u16 port = f->client_port;
	__u32 p = process_class_at(slot, m, o, ifindex);
	f->client_port = p;
	__u32 rule = classify(slot, 1, m, f);
	f->client_port = port;
	__u32 named = classify_names(slot, m, f, o, p);
	if (named < rule)
		rule = named;
	__u32 first =
	    f->dir == MOAT_DIR_INGRESS ? m->first_ingress_sport_rule : m->first_local_rule;
	if (rule < first && !(m->layer7 && (rule_flags(slot, rule) & MOAT_RULE_LAYER7)))
		return rule;
	return classify(slot, 0, m, f);
}

/* the same, leaving by the interface the route mirror predicts */
static __always_inline __u32 classify_owned(__u32 slot, const struct moat_meta *m, struct facts *f,
					    const struct moat_owner *o)
{
	if (!m->socket_image)
		return classify(slot, 0, m, f);
	return classify_owned_at(slot, m, f, o, mirror_ifindex(slot, m, f));
}

/* the rule deciding a tcp or udp packet no process owns that leaves or came in by `ifindex` (one
 * the host forwards; any arriving packet before the accept hook knows its listener): interface
 * rules judge it by that interface, and no process rule matches it. Any other: the packet hooks'
 * tables */
static __always_inline __u32 classify_unowned_at(__u32 slot, const struct moat_meta *m,
						 struct facts *f, __u32 ifindex)
{
	if (!m->socket_image || m->proc_ni <= 1 || !proto_ported(f->proto))
		return classify(slot, 0, m, f);
	return classify_owned_at(slot, m, f, NULL, ifindex);
}

/* the rule deciding a tracked connection again (a reload, the accept hook): by its owner when a
 * hook saw one (`o`, else null), and the interface: an incoming connection's is the one its
 * first packet came in by, an outgoing one's with an owner the route mirror's unless the
 * post-route check judged it (`left_by`: ifindex, the one its first packet left by), without an
 * owner the one its first packet left by */
static __always_inline __u32 classify_tracked(__u32 slot, const struct moat_meta *m,
					      struct facts *f, const struct moat_owner *o,
					      __u32 ifindex, int left_by)
{
	if (!o)
		return classify_unowned_at(slot, m, f, ifindex);
	if (f->dir != MOAT_DIR_INGRESS && !left_by && m->socket_image)
		ifindex = mirror_ifindex(slot, m, f);
	return classify_owned_at(slot, m, f, o, ifindex);
}

/* the rule's entry; a missing one (inconsistent image) reads as allow, counted */
static __always_inline void rule_get(__u32 slot, __u32 rule, struct moat_rule *out)
{
	void *rules = bpf_map_lookup_elem(&tbl_rules, &slot);
	struct moat_rule *r = rules ? bpf_map_lookup_elem(rules, &rule) : NULL;

	if (r) {
		*out = *r;
		return;
	}
	count(MOAT_CNT_TABLE_MISS, 0);
	out->action = MOAT_ACTION_ALLOW;
	out->mode = MOAT_MODE_DETECT;
	out->log = 0;
	out->flags = 0;
	out->max_duration_s = 0;
}

/* allow -> allowed; block + prevent -> blocked; block + detect -> detected */
static __always_inline __u8 verdict_of(const struct moat_rule *r)
{
	if (r->action == MOAT_ACTION_ALLOW)
		return MOAT_EV_ALLOWED;
	return r->mode == MOAT_MODE_PREVENT ? MOAT_EV_BLOCKED : MOAT_EV_DETECTED;
}

#endif /* MOAT_CLASSIFY_H */
