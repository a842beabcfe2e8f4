// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The redirects' programs (docs/redirect.md): getpeername4/6 and recvmsg4/6 show a redirected
 * client its original destination, sock_ops indexes that destination by the client's address
 * for the proxy while the client's socket is open (the redirect itself: include/redirect.h, called
 * by the socket hooks). Part of moat.bpf.o: built by bpf/moat.bpf.c, which includes it. */
#include "redirect.h"

SEC("cgroup/getpeername4")
int moat_getpeername4(struct bpf_sock_addr *ctx)
{
	restore_peer(ctx, 0);
	return 1;
}

SEC("cgroup/getpeername6")
int moat_getpeername6(struct bpf_sock_addr *ctx)
{
	restore_peer(ctx, 1);
	return 1;
}

SEC("cgroup/recvmsg4")
int moat_recvmsg4(struct bpf_sock_addr *ctx)
{
	restore_peer(ctx, 0);
	return 1;
}

SEC("cgroup/recvmsg6")
int moat_recvmsg6(struct bpf_sock_addr *ctx)
{
	restore_peer(ctx, 1);
	return 1;
}

/* the client's address as its proxy sees it, in namespace `netns` (client_netns) */
static __always_inline void sockops_local(const struct bpf_sock_ops *skops, __u64 netns,
					  struct moat_client *e)
{
	__builtin_memset(e, 0, sizeof(*e));
	e->netns = netns;
	e->port = (__u16)skops->local_port;
	e->protocol = IPPROTO_TCP;
	if (skops->family == AF_INET6_) {
		__u32 *a = (__u32 *)e->addr;
		a[0] = skops->local_ip6[0];
		a[1] = skops->local_ip6[1];
		a[2] = skops->local_ip6[2];
		a[3] = skops->local_ip6[3];
	} else {
		__u32 a = skops->local_ip4;
		addr_v4(e->addr, &a);
	}
}

/* tcp has chosen the client's port: index the original destination by the client's address,
 * until the socket closes (a later socket on the same address is another client) */
SEC("sockops")
int moat_sockops(struct bpf_sock_ops *skops)
{
	__u32 op = skops->op;
	if (op != BPF_SOCK_OPS_TCP_CONNECT_CB &&
	    (op != BPF_SOCK_OPS_STATE_CB || skops->args[1] != BPF_TCP_CLOSE))
		return 1;
	struct bpf_sock *sk = skops->sk;
	const struct moat_sock *s = sk ? bpf_sk_storage_get(&socks, sk, 0, 0) : NULL;
	if (!s || !s->redirect)
		return 1;
	struct moat_client e;
	sockops_local(skops, client_netns(bpf_get_netns_cookie(skops), s->target), &e);
	if (op == BPF_SOCK_OPS_STATE_CB) {
		/* only its own record: another socket may share the address (SO_REUSEADDR) */
		const struct moat_original *o = bpf_map_lookup_elem(&originals, &e);
		if (o && o->target.port == s->target_port &&
		    !__builtin_memcmp(o->target.addr, s->target, 16))
			bpf_map_delete_elem(&originals, &e);
		return 1;
	}
	struct moat_original o;
	original_of(s, &o);
	bpf_map_update_elem(&originals, &e, &o, BPF_ANY);
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
	return 1;
}
