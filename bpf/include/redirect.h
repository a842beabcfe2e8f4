/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Redirects (docs/redirect.md): a connect() or unconnected sendmsg() that the rules let through
 * and a redirect matches goes to the redirect's target instead. Which redirect matches is one
 * more table walk (image 2), as rules are judged: no per-redirect loop.
 * The original destination is kept in the socket's record (for getpeername and recvmsg, which
 * show it to the client again) and by the client's address as the proxy sees it (for the
 * proxy's lookup: sock_ops adds it once tcp has chosen the client port).
 * No loop: a connection to a target, or from the process that owns the socket its redirect
 * would reach, or from moat itself (or a resolver), is never redirected. The programs that show a
 * redirected client its original destination (getpeername4/6, recvmsg4/6, sock_ops):
 * progs/redirect.bpf.c. */
#ifndef MOAT_REDIRECT_H
#define MOAT_REDIRECT_H

#include "judge.h"

#define AF_INET_ 2
#define AF_INET6_ 10

static __always_inline int is_target(const __u8 *addr, __u16 port, __u8 proto)
{
	struct moat_endpoint e = {.port = port, .protocol = proto};

	__builtin_memcpy(e.addr, addr, 16);
	return bpf_map_lookup_elem(&redirect_targets, &e) != NULL;
}

static __always_inline int is_loopback(const struct moat_redirect *to)
{
	const __u32 *w = (const __u32 *)to->addr;

	if (to->family == 4)
		return to->addr[12] == 127;
	return !w[0] && !w[1] && !w[2] && w[3] == bpf_htonl(1);
}

/* whether a 16-byte address (ipv4 mapped) is a loopback one: 127.0.0.0/8 or ::1 */
static __always_inline int addr_is_loopback(const __u8 *a)
{
	for (int i = 0; i < 10; i++)
		if (a[i])
			return 0;
	if (a[10] == 0xff && a[11] == 0xff)
		return a[12] == 127;
	return !a[10] && !a[11] && !a[12] && !a[13] && !a[14] && a[15] == 1;
}

/* moat_client.netns of a client redirected to `target` from the network namespace `cookie`:
 * that namespace when the target is its own loopback (moat's proxy sockets there) and it is not
 * moat's; else 0, where proxies in moat's namespace read it */
static __always_inline __u64 client_netns(__u64 cookie, const __u8 *target)
{
	return addr_is_loopback(target) && cookie != home_netns_cookie() ? cookie : 0;
}

/* sets `addr` (all zero) to the address a datagram to a loopback target carries from a socket
 * bound to no address: 127.0.0.1 (ipv4 mapped) for an ipv4 target, else ::1 */
static __always_inline void loopback_source(__u8 *addr, int v4)
{
	if (v4) {
		addr[10] = 0xff;
		addr[11] = 0xff;
		addr[12] = 127;
	}
	addr[15] = 1;
}

/* whether `e` is keyed by its port alone (its socket bound to no address) */
static __always_inline int port_alone(const struct moat_client *e)
{
	for (int i = 0; i < 16; i++)
		if (e->addr[i])
			return 0;
	return 1;
}

/* a udp client's record: by its address, and, when its socket is bound to no address and its
 * target is a loopback one, under the address its datagrams carry there too. The proxy looks
 * that key up first: a record another socket left under it (one bound to that address itself,
 * gone since) is not this client's, and this one is found in one lookup */
static __always_inline void record_udp_client(struct moat_client *e, const __u8 *target,
					      const struct moat_original *o)
{
	bpf_map_update_elem(&originals, e, o, BPF_ANY);
	if (!port_alone(e) || !addr_is_loopback(target))
		return;
	loopback_source(e->addr, target[10] == 0xff);
	bpf_map_update_elem(&originals, e, o, BPF_ANY);
}

/* deletes the record keyed `e` in moat's namespace and in the namespace `own` */
static __always_inline void drop_records(struct moat_client *e, __u64 own)
{
	e->netns = 0;
	bpf_map_delete_elem(&originals, e);
	e->netns = own;
	bpf_map_delete_elem(&originals, e);
}

/* where socket `sk` is bound (an unbound address, any, is all zero), in namespace `netns` */
static __always_inline void bound_endpoint(const struct bpf_sock *sk, int v6, __u64 netns,
					   struct moat_client *e)
{
	__builtin_memset(e, 0, sizeof(*e));
	e->netns = netns;
	e->port = (__u16)sk->src_port;
	e->protocol = (__u8)sk->protocol;
	if (v6) {
		__u32 *a = (__u32 *)e->addr;
		a[0] = sk->src_ip6[0];
		a[1] = sk->src_ip6[1];
		a[2] = sk->src_ip6[2];
		a[3] = sk->src_ip6[3];
	} else if (sk->src_ip4) {
		__u32 a = sk->src_ip4;
		addr_v4(e->addr, &a);
	}
}

/* the socket address the caller passed, as a 16-byte address and a port */
static __always_inline void sock_addr_read(const struct bpf_sock_addr *ctx, int v6, __u8 *addr,
					   __u16 *port)
{
	if (v6) {
		__u32 *a = (__u32 *)addr;
		a[0] = ctx->user_ip6[0];
		a[1] = ctx->user_ip6[1];
		a[2] = ctx->user_ip6[2];
		a[3] = ctx->user_ip6[3];
	} else {
		__u32 a = ctx->user_ip4;
		addr_v4(addr, &a);
	}
	*port = bpf_ntohs((__u16)ctx->user_port);
}

/* rewrites the caller's socket address; an ipv4 socket cannot take an ipv6 one (-1) */
static __always_inline int sock_addr_write(struct bpf_sock_addr *ctx, int v6, const __u8 *addr,
					   __u16 port)
{
	if (v6) {
		const __u32 *a = (const __u32 *)addr;
		ctx->user_ip6[0] = a[0];
		ctx->user_ip6[1] = a[1];
		ctx->user_ip6[2] = a[2];
		ctx->user_ip6[3] = a[3];
	} else {
		if (!addr_is_v4mapped(addr))
			return -1;
		__u32 a;
		__builtin_memcpy(&a, addr + 12, 4);
		ctx->user_ip4 = a;
	}
	ctx->user_port = bpf_htons(port);
	return 0;
}

/* a redirected socket's record as its proxy's lookup gives it */
static __always_inline void original_of(const struct moat_sock *s, struct moat_original *o)
{
	__builtin_memcpy(o->addr, s->addr, 16);
	o->port = s->port;
	o->family = addr_is_v4mapped(s->addr) ? 4 : 6;
	o->protocol = s->protocol;
	o->redirect = s->redirect - 1;
	o->generation = s->generation;
	__builtin_memcpy(o->target.addr, s->target, 16);
	o->target.port = s->target_port;
	o->target.family = addr_is_v4mapped(s->target) ? 4 : 6;
	o->target.unavailable = 0;
	o->owner = s->owner;
}

#define BPF_F_CURRENT_NETNS_ (-1)

/* what redirect_sock did */
enum {
	/* sent to a quiet redirect's target (MOAT_REDIRECT_QUIET): not reported */
	REDIRECT_QUIET = -2,
	REDIRECT_NONE = -1,
	REDIRECT_SENT = 0,
	/* the target does not listen: the caller goes where it was going, or is refused */
	REDIRECT_DOWN_ALLOW = 1,
	REDIRECT_DOWN_BLOCK = 2,
};

/* what target_listens found on a loopback target */
enum {
	TARGET_DOWN = 0,
	TARGET_LISTENS = 1,
	/* the caller bound the socket there (post_bind4/6's owner record): it is the proxy */
	TARGET_OWN = 2,
};

/* whether a socket listens on a loopback target, in the caller's network namespace (a target
 * elsewhere cannot be asked here), and whether the caller's process bound it */
static __always_inline int target_listens(struct bpf_sock_addr *ctx, const struct moat_redirect *to,
					  __u16 port, __u8 proto)
{
	struct bpf_sock_tuple tup = {};
	__u32 size;

	if (to->family == 4) {
		__builtin_memcpy(&tup.ipv4.daddr, to->addr + 12, 4);
		tup.ipv4.dport = bpf_htons(port);
		size = sizeof(tup.ipv4);
	} else {
		__builtin_memcpy(tup.ipv6.daddr, to->addr, 16);
		tup.ipv6.dport = bpf_htons(port);
		size = sizeof(tup.ipv6);
	}
	struct bpf_sock *sk = proto == IPPROTO_UDP
				  ? bpf_sk_lookup_udp(ctx, &tup, size, BPF_F_CURRENT_NETNS_, 0)
				  : bpf_sk_lookup_tcp(ctx, &tup, size, BPF_F_CURRENT_NETNS_, 0);
	if (!sk)
		return TARGET_DOWN;
	/* the very socket a redirect would reach, so only its proxy: never one bound on the
	 * port with another protocol or address, and only while it is open */
	const struct moat_owner *o = bpf_sk_storage_get(&owners, sk, 0, 0);
	int own = o && o->pid == bpf_get_current_pid_tgid() >> 32;
	bpf_sk_release(sk);
	return own ? TARGET_OWN : TARGET_LISTENS;
}

/* sends the caller (its socket's record `s`, judged and let through) to a redirect's target;
 * REDIRECT_SENT if it did, REDIRECT_DOWN_* if the target does not listen. `how`: bit 0 the
 * socket is ipv6, bit 1 the policy slot, the rest the redirect index. A subprogram: the
 * original destination stays off the hook's stack */
static __always_inline int redirect_sock_in(struct bpf_sock_addr *ctx, struct moat_sock *s,
					    __u32 how)
{
	__u32 v6 = how & 1, slot = (how >> 1) & 1, idx = how >> 2;
	void *targets = bpf_map_lookup_elem(&tbl_redirects, &slot);
	const struct moat_redirect *to = targets ? bpf_map_lookup_elem(targets, &idx) : NULL;

	if (!ctx || !s || !to)
		return -1;
	/* the target's port; in another network namespace, the port of moat's socket there */
	__u16 port = to->port;
	int down = (to->unavailable & 1) == MOAT_UNAVAILABLE_ALLOW ? REDIRECT_DOWN_ALLOW
								   : REDIRECT_DOWN_BLOCK;
	/* a loopback target means moat's host: only from moat's network namespace, unless moat
	 * serves the target in the caller's namespace too (the DNS proxy) */
	if (is_loopback(to)) {
		if (!sock_in_home_netns(ctx)) {
			__u64 cookie = bpf_get_netns_cookie(ctx);
			if (!(to->unavailable & MOAT_REDIRECT_NETNS))
				return -1;
			/* no proxy socket in this namespace yet: failure.helper decides */
			struct moat_netns_ports *p = bpf_map_lookup_elem(&netns_targets, &cookie);
			port = !p ? 0 : s->protocol == IPPROTO_UDP ? p->udp : p->tcp;
			if (!port)
				return down;
		}
		/* moat's relay or a local proxy that is not there: failure.helper decides; the
		 * proxy's own connections go where they were going */
		int listens = target_listens(ctx, to, port, s->protocol);
		if (listens == TARGET_DOWN)
			return down;
		if (listens == TARGET_OWN)
			return REDIRECT_NONE;
	}
	if (sock_addr_write(ctx, v6, to->addr, port))
		return -1;
	s->redirect = idx + 1;
	__builtin_memcpy(s->target, to->addr, 16);
	s->target_port = port;

	int sent = to->unavailable & MOAT_REDIRECT_QUIET ? REDIRECT_QUIET : REDIRECT_SENT;

	/* udp has its port by now (sendmsg binds first): the proxy can look the client up. A
	 * connected udp socket may have none yet: connected_udp_original() */
	struct bpf_sock *sk = ctx->sk;
	if (s->protocol != IPPROTO_UDP || !sk || !sk->src_port)
		return sent;
	struct moat_client e;
	struct moat_original o;
	bound_endpoint(sk, v6, client_netns(bpf_get_netns_cookie(ctx), s->target), &e);
	original_of(s, &o);
	record_udp_client(&e, s->target, &o);
	return sent;
}

/* redirect_sock_in as a global function of each family: verified once in each hook, not once
 * for every path that reaches a call, and with the family known (a hook writes only its own
 * family's address) */
__noinline int redirect_sock4(struct bpf_sock_addr *ctx __arg_ctx, struct moat_sock *s, __u32 how)
{
	return redirect_sock_in(ctx, s, how & ~1u);
}

__noinline int redirect_sock6(struct bpf_sock_addr *ctx __arg_ctx, struct moat_sock *s, __u32 how)
{
	return redirect_sock_in(ctx, s, how | 1);
}

static __always_inline int redirect_sock(struct bpf_sock_addr *ctx, struct moat_sock *s, __u32 how)
{
	return how & 1 ? redirect_sock6(ctx, s, how) : redirect_sock4(ctx, s, how);
}

#define EPHEMERAL_LOW 32768
#define EPHEMERAL_SPAN 28232 /* 32768-60999, the kernel's default ip_local_port_range */
#define BIND_TRIES 4

/* binds the connect hook's unbound socket to a port of the ephemeral range (bpf_bind with port 0
 * would leave it unchosen until after the hook); whether it has a port now. bpf_bind is a connect
 * hook's helper: call this from connect4/6 only */
static __always_inline int bind_ephemeral(struct bpf_sock_addr *ctx, int v6)
{
	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return 0;
	for (int i = 0; i < BIND_TRIES; i++) {
		__u16 port = bpf_htons(EPHEMERAL_LOW + bpf_get_prandom_u32() % EPHEMERAL_SPAN);
		int err;
		if (v6) {
			struct sockaddr_in6 sa = {.sin6_family = AF_INET6_, .sin6_port = port};
			err = bpf_bind(ctx, (struct sockaddr *)&sa, sizeof(sa));
		} else {
			struct sockaddr_in sa = {.sin_family = AF_INET_, .sin_port = port};
			err = bpf_bind(ctx, (struct sockaddr *)&sa, sizeof(sa));
		}
		if (!err)
			break;
	}
	/* the verifier refuses an address computed into the socket: read the field afresh */
	asm volatile("" : "+r"(sk));
	return sk->src_port != 0;
}

/* connect() of a udp socket (glibc's resolver connects its socket) runs before the kernel picks
 * the port, and no later hook sees the sends, so the proxy could not look the client up. The hook
 * binds the socket itself (bind_ephemeral), then records the original by it. A subprogram: its
 * record stays off the judging's stack (judge_sock_rules) */
static __noinline void connected_udp_original(struct bpf_sock_addr *ctx, struct moat_sock *s,
					      int v6)
{
	struct bpf_sock *sk = ctx->sk;
	if (!s || !sk || sk->src_port)
		return;
	if (!bind_ephemeral(ctx, v6))
		return; /* the kernel binds it after this hook: not found by its proxy, as before */
	struct moat_client e;
	struct moat_original o;
	bound_endpoint(sk, v6, client_netns(bpf_get_netns_cookie(ctx), s->target), &e);
	original_of(s, &o);
	record_udp_client(&e, s->target, &o);
}

/* a udp connect()/sendmsg() straight to a target: whatever record an earlier socket left on this
 * socket's address (udp records outlive their sockets) is not this one's, so its proxy must
 * find none. A socket still unbound at connect() is bound here, so that its port is known */
static __always_inline void udp_direct_to_target(struct bpf_sock_addr *ctx, const struct tuple *t,
						 int v6, __u8 hook)
{
	struct bpf_sock *sk = ctx->sk;
	if (!sk || !is_target(t->dst, t->dport, IPPROTO_UDP))
		return;
	if (!sk->src_port && (hook != MOAT_HOOK_CONNECT || !bind_ephemeral(ctx, v6)))
		return;
	/* afresh: the verifier refuses an address computed into the socket on either path */
	sk = ctx->sk;
	asm volatile("" : "+r"(sk));
	if (!sk)
		return;
	/* every key a record of this address may have (record_udp_client): by the address, by the
	 * port alone, and (bound to no address) under a loopback source; each kept for moat's
	 * namespace or the socket's own (client_netns) */
	__u64 own = bpf_get_netns_cookie(ctx);
	struct moat_client e;
	bound_endpoint(sk, v6, 0, &e);
	int unbound = port_alone(&e);
	drop_records(&e, own);
	__builtin_memset(e.addr, 0, sizeof(e.addr));
	drop_records(&e, own);
	if (!unbound)
		return;
	loopback_source(e.addr, 1);
	drop_records(&e, own);
	__builtin_memset(e.addr, 0, sizeof(e.addr));
	loopback_source(e.addr, 0);
	drop_records(&e, own);
}

/* whether redirect `idx` is moat's L7 relay's, taken only for connections an L7 rule judges */
static __always_inline int redirect_layer7_only(__u32 slot, __u32 idx)
{
	void *targets = bpf_map_lookup_elem(&tbl_redirects, &slot);
	const struct moat_redirect *to = targets ? bpf_map_lookup_elem(targets, &idx) : NULL;

	return to && (to->unavailable & MOAT_REDIRECT_LAYER7);
}

#define CAP_NET_BIND_SERVICE_ 10

/* the caller's process (its thread group leader), for per-process storage */
static __always_inline struct task_struct *current_process(void)
{
	return bpf_get_current_task_btf()->group_leader;
}

/* whether the caller's process bound port 53 with the privilege to (note_proxy) */
static __always_inline int is_resolver(void)
{
	return bpf_task_storage_get(&resolvers, current_process(), 0, 0) != NULL;
}

/* the redirect for a connection the rules let through: its index, or MOAT_RULE_NONE */
static __always_inline __u32 redirect_of(__u32 slot, const struct moat_meta *m,
					 const struct facts *f, const struct moat_owner *owner)
{
	if (!m->redirect_count)
		return MOAT_RULE_NONE;
	/* no loop: never from moat or a resolver, never to a target (a proxy: redirect_sock) */
	if (is_target(f->remote, f->server_port, f->proto) ||
	    bpf_map_lookup_elem(&redirect_exempt, &owner->pid) || is_resolver())
		return MOAT_RULE_NONE;
	__u32 idx = classify(slot, 2, m, f);
	return idx < m->redirect_count ? idx : MOAT_RULE_NONE;
}

/* getpeername and recvmsg: a redirected socket's peer is shown as the original destination */
static __always_inline void restore_peer(struct bpf_sock_addr *ctx, int v6)
{
	struct bpf_sock *sk = ctx->sk;
	const struct moat_sock *s = sk ? bpf_sk_storage_get(&socks, sk, 0, 0) : NULL;
	__u8 addr[16];
	__u16 port;

	if (!s || !s->redirect)
		return;
	sock_addr_read(ctx, v6, addr, &port);
	if (port != s->target_port || __builtin_memcmp(addr, s->target, 16))
		return;
	sock_addr_write(ctx, v6, s->addr, s->port);
}

/* post_bind4/6 (accept_hooks.h): a process that binds port 53 with the privilege to (the
 * capability in the host's user namespace, not a lowered ip_unprivileged_port_start) is a
 * resolver: its queries to its upstreams are not the DNS proxy's. Kept in the process's task
 * storage, so it ends with the process (no pid reuse). A proxy is recognised by the socket its
 * redirect reaches instead (target_listens), never by what it binds */
static __always_inline void note_proxy(struct bpf_sock *sk, int v6)
{
	if (sk->src_port != 53)
		return;
	struct task_struct *task = bpf_get_current_task_btf();
	const struct cred *cred = task->cred;
	if (cred->user_ns->level || !(cred->cap_effective.val & (1ULL << CAP_NET_BIND_SERVICE_)))
		return;
	bpf_task_storage_get(&resolvers, task->group_leader, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
}

#endif /* MOAT_REDIRECT_H */
