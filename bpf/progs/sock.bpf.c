// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The socket hooks' programs (docs/socket-hooks.md): connect4/6 and sendmsg4/6 judge a local
 * process's connect() or unconnected sendmsg() before anything leaves; sock_create records the
 * owner of sockets no such hook sees (the judging: include/sock_hooks.h). Part of moat.bpf.o:
 * built by bpf/moat.bpf.c, which includes it. */
#include "sock_hooks.h"

/* Sockets some of whose sends reach no connect()/sendmsg() hook: raw sockets (none do), and other
 * protocols than tcp and udp (a connected udp-lite socket's, a ping socket's sendto()). Their owner
 * is recorded when they are made, with no decision, so the tc program judges their packets with
 * their process (decide_new). Packet sockets (AF_PACKET) are not inet sockets and are not seen
 * here: docs/socket-hooks.md */
SEC("cgroup/sock_create")
int moat_sock_create(struct bpf_sock *sk)
{
	if (sk->type != SOCK_RAW && (sk->protocol == IPPROTO_TCP || sk->protocol == IPPROTO_UDP))
		return SOCK_ALLOW;
	struct moat_sock *s = bpf_sk_storage_get(&socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!s)
		return SOCK_ALLOW;
	s->rule = MOAT_RULE_NONE;
	s->generation = 0;
	s->protocol = sk->protocol;
	owner_now(&s->owner, 1);
	return SOCK_ALLOW;
}

SEC("cgroup/connect4")
int moat_connect4(struct bpf_sock_addr *ctx)
{
	return judge_sock(ctx, 0, MOAT_HOOK_CONNECT);
}

SEC("cgroup/connect6")
int moat_connect6(struct bpf_sock_addr *ctx)
{
	return judge_sock(ctx, 1, MOAT_HOOK_CONNECT);
}

SEC("cgroup/sendmsg4")
int moat_sendmsg4(struct bpf_sock_addr *ctx)
{
	return judge_sock(ctx, 0, MOAT_HOOK_SENDMSG);
}

SEC("cgroup/sendmsg6")
int moat_sendmsg6(struct bpf_sock_addr *ctx)
{
	return judge_sock(ctx, 1, MOAT_HOOK_SENDMSG);
}
