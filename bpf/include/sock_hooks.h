/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The socket hooks (cgroup connect4/6, sendmsg4/6): a local process's connect() or
 * unconnected sendmsg() is judged by the same tables as packets, before anything leaves,
 * so a blocked one fails at once with EPERM. The owner (pid, uid, cgroup, comm) and the
 * decision are recorded in the socket's storage, and the tc program copies the owner into
 * the connection it tracks, so every event of the connection names its process. Their
 * programs: progs/sock.bpf.c. */
#ifndef MOAT_SOCK_HOOKS_H
#define MOAT_SOCK_HOOKS_H

#include <bpf/bpf_core_read.h>
#include "judge.h"
#include "redirect.h"
#include "post_route.h"
#include "exe.h"
#include "classify_memo.h"

#define SOCK_ALLOW 1
#define SOCK_DENY 0

/* the caller's process into o: a global function, verified once a program and not on every path
 * to each of its callers (the verifier's check of a load through the task's BTF type is dear) */
__noinline int owner_now(struct moat_owner *o, int exe)
{
	if (!o)
		return 0;
	/* the task by its BTF type: its fields are plain loads, no probe-read helper calls (a
	 * missing pointer on the way, a kernel thread's mm, reads as 0) */
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 uid_gid = bpf_get_current_uid_gid();

	/* the executable by inode, for process rules' path globs: only when rules name processes */
	if (exe)
		task_exe(task, &o->exe_ino, &o->exe_dev, &o->exe_gen);
	o->pid = bpf_get_current_pid_tgid() >> 32;
	o->uid = (__u32)uid_gid;
	/* the cgroup v2 id by the same loads as bpf_get_current_cgroup_id(), without its call */
	o->cgroup_id = task->cgroups->dfl_cgrp->kn->id;
	/* the process's name, not the calling thread's: threads name themselves (dig's libuv
	 * workers are "isc-net-0000"), rules and events mean the process. The kernel pads comm
	 * with NULs (strscpy_pad): all 16 bytes are the name */
	__builtin_memcpy(o->comm, task->group_leader->comm, sizeof(o->comm));
	return 0;
}

/* the unspecified address: 0.0.0.0, ::ffff:0.0.0.0 or :: */
static __always_inline int addr_is_unspecified(const __u8 *a)
{
	const __u32 *w = (const __u32 *)a;

	return !w[0] && !w[1] && !w[3] && (!w[2] || w[2] == bpf_htonl(0xffff));
}

/* whether the owner recorded is the caller: another process or user (an inherited or passed
 * socket) is judged afresh, as the caller is what process rules and events name */
static __always_inline int owner_is_caller(const struct moat_owner *o)
{
	return o->pid == bpf_get_current_pid_tgid() >> 32 &&
	       o->uid == (__u32)bpf_get_current_uid_gid() &&
	       o->cgroup_id == bpf_get_current_cgroup_id();
}

/* connect()/sendmsg() to the unspecified address: the kernel sends it over loopback, where no
 * hook judges it, so it is judged where it goes. ipv4: the bound address, else 127.0.0.1;
 * `::`: ::1, or 127.0.0.1 on a socket bound to a mapped address */
static __always_inline void sock_unspecified_dst(struct tuple *t)
{
	__u32 *dst = (__u32 *)t->dst, *src = (__u32 *)t->src;
	__u32 lo4 = bpf_htonl(0x7f000001);

	if (!addr_is_unspecified(t->dst))
		return;
	if (addr_is_v4mapped(t->dst)) {
		if (addr_is_v4mapped(t->src) && src[3])
			dst[3] = src[3];
		else
			dst[3] = lo4;
	} else if (addr_is_v4mapped(t->src)) {
		addr_v4(t->dst, &lo4);
		t->family = 4;
	} else {
		dst[3] = bpf_htonl(1);
	}
}

/* the facts connect() knows: the destination, and the source if the socket is bound */
static __always_inline int sock_facts(struct bpf_sock_addr *ctx, int v6, struct tuple *t)
{
	struct bpf_sock *sk = ctx->sk;

	if (!sk)
		return -1;
	__builtin_memset(t, 0, sizeof(*t));
	if (v6) {
		__u32 *dst = (__u32 *)t->dst, *src = (__u32 *)t->src;
		dst[0] = ctx->user_ip6[0];
		dst[1] = ctx->user_ip6[1];
		dst[2] = ctx->user_ip6[2];
		dst[3] = ctx->user_ip6[3];
		src[0] = sk->src_ip6[0];
		src[1] = sk->src_ip6[1];
		src[2] = sk->src_ip6[2];
		src[3] = sk->src_ip6[3];
		t->family = addr_is_v4mapped(t->dst) ? 4 : 6;
	} else {
		__u32 dst = ctx->user_ip4, src = sk->src_ip4;
		addr_v4(t->dst, &dst);
		addr_v4(t->src, &src);
		t->family = 4;
	}
	t->proto = ctx->protocol;
	/* other protocols than tcp and udp have no ports, as at the packet hooks */
	if (proto_ported(t->proto)) {
		t->dport = bpf_ntohs((__u16)ctx->user_port);
		t->sport = (__u16)sk->src_port;
	}
	sock_unspecified_dst(t);
	return 0;
}

/* a blocked or redirected connect()/sendmsg(): reported here, as no packet (or none the
 * packet hooks see) will be. A subprogram; its connection record is the hook's scratch one */
__noinline int report_sock(const struct tuple *t, const struct moat_sock *s,
			   const struct moat_rule *r, const struct ev_from *from, __u8 reason)
{
	struct moat_ct_key k __attribute__((aligned(8)));

	if (!t || !s || !r || !from)
		return -1;
	struct moat_ct *ct = ct_scratch_zeroed(from->hook);
	if (!ct)
		return -1;
	int side = ct_key(t, &k);
	ct->initiator = side;
	ct->direction = MOAT_DIR_EGRESS;
	ct->rule = s->rule;
	ct->generation = s->generation;
	ct->verdict = s->verdict;
	ct->mode = r->mode;
	ct->owner = s->owner;
	return emit(&k, ct, s->verdict, reason, from);
}

/* the per-cpu scratch record: a call's judging when the socket keeps none (generation 0, so
 * never taken for an earlier decision) */
static __always_inline struct moat_sock *sock_scratch_get(void)
{
	__u32 zero = 0;
	struct moat_sock *s = bpf_map_lookup_elem(&sock_scratch, &zero);

	if (s)
		s->generation = 0;
	return s;
}

/* the socket's record, made if it has none; NULL only if even the scratch one is missing */
static __always_inline struct moat_sock *sock_record(struct bpf_sock_addr *ctx)
{
	struct moat_sock *s = bpf_sk_storage_get(&socks, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);

	if (s)
		return s;
	count(MOAT_CNT_TABLE_MISS, 0);
	return sock_scratch_get();
}

/* whether the owner's executable is read: only when process rules may name it */
static __always_inline int sock_wants_exe(const struct moat_meta *m)
{
	return m->socket_image && !(m->lean & MOAT_LEAN_NO_EXE);
}

/* a lean policy's judging in scratch (`scratch` set) that something will read after all (a
 * reported, redirected or deferred connection): the owner read, and the socket's record made
 * from it. On no memory, the scratch record, as sock_record() */
static __always_inline struct moat_sock *sock_keep(struct bpf_sock_addr *ctx, struct moat_sock *s,
						   int *scratch, const struct moat_meta *m)
{
	if (!*scratch)
		return s;
	owner_now(&s->owner, sock_wants_exe(m));
	struct moat_sock *kept =
	    bpf_sk_storage_get(&socks, ctx->sk, s, BPF_SK_STORAGE_GET_F_CREATE);
	if (!kept) {
		count(MOAT_CNT_TABLE_MISS, 0);
		return s;
	}
	*scratch = 0;
	return kept;
}

/* a udp socket's record whose redirect's target was down at its last call (it went where it
 * was going, or was refused): the redirect is kept to look again, with no target (a redirect's
 * target port is never 0), so nothing takes the socket for one sent there */
static __always_inline int sock_redirect_down(const struct moat_sock *s)
{
	return s->redirect && !s->target_port;
}

/* The judging of a connect()/sendmsg() the socket's record does not answer: the rules, the
 * record, a redirect, the report, under the live slot's meta m. `how`: the family (bit 0), the
 * live slot (bit 1), judged in scratch (bit 2), a redirect's outage reported already (bit 3). In
 * global functions, one a hook (a hook's family and helpers are its own): the verifier checks it
 * once, whatever the paths to it; the hook pays one call */
static __always_inline int judge_sock_rules(struct bpf_sock_addr *ctx, const struct tuple *t,
					    struct moat_sock *s, const struct moat_meta *m,
					    __u32 how, int v6, __u8 hook)
{
	__u32 slot = how >> 1 & 1;
	int scratch = how >> 2 & 1, down_reported = how >> 3 & 1;
	/* the family as the verifier knows it: the redirect is the hook's family's */
	how = (how & 2) | (v6 ? 1 : 0);

	struct facts f = {.dir = MOAT_DIR_EGRESS, .family = t->family, .proto = t->proto};
	__builtin_memcpy(f.remote, t->dst, 16);
	__builtin_memcpy(f.local, t->src, 16);
	f.server_port = t->dport;
	f.client_port = t->sport;
	/* a ping socket sends echo requests only (the kernel refuses other types) */
	if (t->proto == IPPROTO_ICMP)
		f.icmp_type = 8;
	else if (t->proto == IPPROTO_ICMPV6_)
		f.icmp_type = 128;
	struct moat_rule r;
	struct ev_from from = {.hook = hook};
	__builtin_memset(s, 0, sizeof(*s));
	s->generation = m->generation;
	s->rule = MOAT_RULE_NONE;
	s->protocol = t->proto;
	s->port = t->dport;
	__builtin_memcpy(s->addr, t->dst, 16);
	if (!scratch)
		owner_now(&s->owner, sock_wants_exe(m));

	/* with process rules, the process class takes the client port's place (never known
	 * here then); the memo keeps both for the owner's identity: docs/socket-hooks.md */
	__u32 image = m->socket_image;
	__u32 rule =
	    image ? classify_owner_memo_get(slot, m, s, &f) : classify_memo_get(slot, 0, m, &f);
	/* rules naming hosts: by the caller's name bindings (docs/socket-hooks.md, "Names") */
	if (image) {
		__u32 named = classify_names(slot, m, &f, &s->owner, f.client_port);
		if (named < rule)
			rule = named;
	}

	/* the source is chosen after connect() unless bound to an address and port (a socket
	 * bound to the any-address has a port, not its address): a rule that needs it is left to
	 * the tc hook */
	int local_known = t->sport && !addr_is_unspecified(t->src);
	if ((image || !local_known) && rule >= m->first_local_rule) {
		s->verdict = MOAT_EV_ALLOWED;
		s = sock_keep(ctx, s, &scratch, m);
		post_route_arm(ctx, m, s);
		return SOCK_ALLOW;
	}
	rule_get(slot, rule, &r);
	if (r.flags & MOAT_RULE_LAYER7) {
		/* a DNS query the proxy judges by name: let through to be redirected to it, not
		 * reported; one that is not redirected is left to the tc hook */
		s->verdict = MOAT_EV_ALLOWED;
	} else {
		s->rule = rule;
		s->verdict = verdict_of(&r);
	}
	if (s->verdict == MOAT_EV_BLOCKED) {
		count(MOAT_CNT_BLOCKED, 0);
		/* the rule's connection: no packet of it reaches a packet hook to count it */
		count_rule_as(slot, m, rule, 0, 0, 1);
		/* refused here: the event names the owner, nothing reads a record later */
		if (scratch)
			owner_now(&s->owner, sock_wants_exe(m));
		report_sock(t, s, &r, &from, MOAT_REASON_NEW);
		return SOCK_DENY;
	}

	/* a reported QUIC flow (detected, or a rule with log): its first datagrams go to the
	 * daemon, which reports their ClientHello (quic.h) */
	if (t->proto == IPPROTO_UDP && t->dport == MOAT_QUIC_PORT &&
	    (s->verdict == MOAT_EV_DETECTED || r.log))
		s->quic = MOAT_QUIC_DATAGRAMS;

	/* redirects are for tcp and udp; the L7 relay's only for connections an L7 rule judges */
	__u32 idx = proto_ported(t->proto) ? redirect_of(slot, m, &f, &s->owner) : MOAT_RULE_NONE;
	if (idx != MOAT_RULE_NONE && !(r.flags & MOAT_RULE_LAYER7) &&
	    redirect_layer7_only(slot, idx))
		idx = MOAT_RULE_NONE;
	/* the tc hook reports what is not allowed silently, with the record's owner; a redirect
	 * and the post-route check read the record later */
	if (s->verdict != MOAT_EV_ALLOWED || r.log || (r.flags & MOAT_RULE_LAYER7) ||
	    idx != MOAT_RULE_NONE || m->post_route)
		s = sock_keep(ctx, s, &scratch, m);
	int sent = idx != MOAT_RULE_NONE ? redirect_sock(ctx, s, how | idx << 2) : REDIRECT_NONE;
	if (hook == MOAT_HOOK_CONNECT && t->proto == IPPROTO_UDP &&
	    (sent == REDIRECT_QUIET || sent == REDIRECT_SENT))
		connected_udp_original(ctx, s, v6);
	if (sent == REDIRECT_QUIET) {
		count(MOAT_CNT_REDIRECTED, 0);
	} else if (sent == REDIRECT_SENT) {
		from.redirect = s->redirect;
		count(MOAT_CNT_REDIRECTED, 0);
		report_sock(t, s, &r, &from, MOAT_REASON_REDIRECTED);
	} else if (sent > REDIRECT_SENT) {
		/* the target does not listen: refused (detected in detect mode) or let through to
		 * where it was going, always reported */
		from.redirect = idx + 1;
		count(MOAT_CNT_UNAVAILABLE, 0);
		int prevent = r.mode == MOAT_MODE_PREVENT;
		if (sent == REDIRECT_DOWN_BLOCK)
			s->verdict = prevent ? MOAT_EV_BLOCKED : MOAT_EV_DETECTED;
		if (!down_reported)
			report_sock(t, s, &r, &from, MOAT_REASON_UNAVAILABLE);
		/* judged again at the next call: the target may be back */
		if (t->proto == IPPROTO_UDP)
			s->redirect = idx + 1;
		else if (s->verdict == MOAT_EV_BLOCKED)
			s->generation = 0;
		if (s->verdict == MOAT_EV_BLOCKED)
			return SOCK_DENY;
	}
	/* a redirected connection leaves for its target on purpose: no interface check */
	if (!s->redirect || sock_redirect_down(s))
		post_route_arm(ctx, m, s);
	return SOCK_ALLOW;
}

__noinline int judge_sock_connect4(struct bpf_sock_addr *ctx __arg_ctx, const struct tuple *t,
				   struct moat_sock *s, const struct moat_meta *m, __u32 how)
{
	return t && s && m ? judge_sock_rules(ctx, t, s, m, how, 0, MOAT_HOOK_CONNECT) : SOCK_ALLOW;
}

__noinline int judge_sock_connect6(struct bpf_sock_addr *ctx __arg_ctx, const struct tuple *t,
				   struct moat_sock *s, const struct moat_meta *m, __u32 how)
{
	return t && s && m ? judge_sock_rules(ctx, t, s, m, how, 1, MOAT_HOOK_CONNECT) : SOCK_ALLOW;
}

__noinline int judge_sock_sendmsg4(struct bpf_sock_addr *ctx __arg_ctx, const struct tuple *t,
				   struct moat_sock *s, const struct moat_meta *m, __u32 how)
{
	return t && s && m ? judge_sock_rules(ctx, t, s, m, how, 0, MOAT_HOOK_SENDMSG) : SOCK_ALLOW;
}

__noinline int judge_sock_sendmsg6(struct bpf_sock_addr *ctx __arg_ctx, const struct tuple *t,
				   struct moat_sock *s, const struct moat_meta *m, __u32 how)
{
	return t && s && m ? judge_sock_rules(ctx, t, s, m, how, 1, MOAT_HOOK_SENDMSG) : SOCK_ALLOW;
}

/* judges a connect()/sendmsg() of any protocol (tcp, udp, udp-lite, a ping socket's icmp...), and
 * redirects a tcp or udp one if a redirect matches what the rules let through. The decision goes
 * into the socket's record, where the tc program, the post-route check, getpeername, recvmsg and
 * sock_ops find it */
static __always_inline int judge_sock(struct bpf_sock_addr *ctx, int v6, __u8 hook)
{
	struct tuple t;
	__u32 zero = 0;

	if (sock_facts(ctx, v6, &t))
		return SOCK_ALLOW;
	struct moat_state *st = bpf_map_lookup_elem(&state, &zero);
	if (!st)
		return SOCK_ALLOW;
	__u32 slot = *(volatile __u32 *)&st->active & 1;
	const struct moat_meta *m = &st->meta[slot];
	if (!m->generation)
		return SOCK_ALLOW;
	if (daemon_gone(m)) {
		count(MOAT_CNT_DAEMON_GONE, 0);
		return SOCK_ALLOW;
	}
	/* basic networking (the dhcp client's udp) passes unjudged, as at the packet hooks */
	if (basics_pass(m, basics_class(t.family, t.proto, 0, 0, t.sport, t.dport)))
		return SOCK_ALLOW;
	__u32 how = (v6 ? 1 : 0) | slot << 1;
	/* a lean policy reads an earlier record if the socket has one, else judges in scratch and
	 * makes the record only for a connection something will read it for (sock_keep) */
	int scratch = 0;
	struct moat_sock *s;
	if (m->lean & MOAT_LEAN_RECORD) {
		s = bpf_sk_storage_get(&socks, ctx->sk, 0, 0);
		if (!s) {
			s = sock_scratch_get();
			scratch = 1;
		}
	} else {
		s = sock_record(ctx);
	}
	if (!s)
		return SOCK_ALLOW;
	if (t.proto == IPPROTO_UDP && m->redirect_count)
		udp_direct_to_target(ctx, &t, v6, hook);

	/* an unconnected udp socket's owner sends to the same destination again: judged already,
	 * unless its redirect's target has stopped since or was down at the last call; then judged
	 * in full, which does what the rule's mode and failure.helper say, or redirects it again.
	 * An outage is reported once for the socket: at the call that finds the target down */
	int down_reported = 0;
	if (s->generation == m->generation && s->port == t.dport && s->protocol == t.proto &&
	    !__builtin_memcmp(s->addr, t.dst, 16) && owner_is_caller(&s->owner)) {
		down_reported = sock_redirect_down(s);
		if (s->verdict == MOAT_EV_BLOCKED && !down_reported)
			return SOCK_DENY;
		if (!s->redirect ||
		    (!down_reported &&
		     redirect_sock(ctx, s, how | (s->redirect - 1) << 2) <= REDIRECT_SENT))
			return SOCK_ALLOW;
	}

	how |= scratch << 2 | down_reported << 3;
	int verdict;
	if (hook == MOAT_HOOK_CONNECT)
		verdict = v6 ? judge_sock_connect6(ctx, &t, s, m, how)
			     : judge_sock_connect4(ctx, &t, s, m, how);
	else
		verdict = v6 ? judge_sock_sendmsg6(ctx, &t, s, m, how)
			     : judge_sock_sendmsg4(ctx, &t, s, m, how);
	/* a hook returns 0 or 1, and the verifier knows nothing of a global function's value
	 * (the barrier: the compiler knows it, and would leave the test out) */
	barrier_var(verdict);
	return verdict == SOCK_DENY ? SOCK_DENY : SOCK_ALLOW;
}

#endif /* MOAT_SOCK_HOOKS_H */
