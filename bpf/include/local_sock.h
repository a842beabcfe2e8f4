/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Whether a packet belongs to a flow a local socket has open, and how that socket came to be: a
 * tcp connection it connect()ed or accepted, a udp socket connected to the packet's peer. Asked
 * before a packet with no conntrack entry that the policy would block as new is judged so (the
 * table was lost with a restart that could not adopt it, or the lru evicted the entry). */
#ifndef MOAT_LOCAL_SOCK_H
#define MOAT_LOCAL_SOCK_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "moat_abi.h"
#include "packet.h"

/* tcp states in which a socket exchanges data (include/net/tcp_states.h) */
#define TCPS_ESTABLISHED 1
#define TCPS_FIN_WAIT1 4
#define TCPS_FIN_WAIT2 5
#define TCPS_CLOSE_WAIT 8
#define TCPS_LAST_ACK 9
#define TCPS_CLOSING 11

static __always_inline int tcp_state_flows(__u32 state)
{
	return state == TCPS_ESTABLISHED || state == TCPS_FIN_WAIT1 || state == TCPS_FIN_WAIT2 ||
	       state == TCPS_CLOSE_WAIT || state == TCPS_LAST_ACK || state == TCPS_CLOSING;
}

/* the tuple as a packet arriving from the peer carries it; `dir` says which way the packet goes
 * (ingress: it arrives, its source is the peer); returns the tuple's size */
static __always_inline __u32 peer_tuple(const struct pkt *p, __u8 dir, struct bpf_sock_tuple *t)
{
	const __u8 *remote = dir == MOAT_DIR_INGRESS ? p->t.src : p->t.dst;
	const __u8 *local = dir == MOAT_DIR_INGRESS ? p->t.dst : p->t.src;
	__u16 rport = dir == MOAT_DIR_INGRESS ? p->t.sport : p->t.dport;
	__u16 lport = dir == MOAT_DIR_INGRESS ? p->t.dport : p->t.sport;

	if (p->t.family == 4) {
		__builtin_memcpy(&t->ipv4.saddr, remote + 12, 4);
		__builtin_memcpy(&t->ipv4.daddr, local + 12, 4);
		t->ipv4.sport = bpf_htons(rport);
		t->ipv4.dport = bpf_htons(lport);
		return sizeof(t->ipv4);
	}
	__builtin_memcpy(t->ipv6.saddr, remote, 16);
	__builtin_memcpy(t->ipv6.daddr, local, 16);
	t->ipv6.sport = bpf_htons(rport);
	t->ipv6.dport = bpf_htons(lport);
	return sizeof(t->ipv6);
}

/* 1 when a local tcp socket of this namespace is connected to the packet's peer on these
 * ports and still exchanging data */
static __always_inline int local_tcp_flows(void *ctx, const struct pkt *p, __u8 dir)
{
	struct bpf_sock_tuple t = {};
	__u32 size = peer_tuple(p, dir, &t);
	struct bpf_sock *sk = bpf_skc_lookup_tcp(ctx, &t, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	__u32 state = sk->state;
	bpf_sk_release(sk);
	return tcp_state_flows(state);
}

/* how a local tcp socket of this namespace that is connected to the packet's peer on these ports
 * and still exchanging data came to be */
enum local_tcp_origin {
	LOCAL_TCP_NONE = 0, /* no such socket, or one no longer exchanging data */
	LOCAL_TCP_CONNECTED,
	LOCAL_TCP_ACCEPTED,
};

/* An accepted socket is made as a copy of its listener (inet_csk_clone_lock) and keeps the
 * listen() backlog; a connect()ed socket never listened and has none. (A listener with a backlog
 * of 0 leaves its sockets looking connect()ed: listen(fd, 0) is rare.) */
static __always_inline enum local_tcp_origin local_tcp_origin(void *ctx, const struct pkt *p,
							      __u8 dir)
{
	struct bpf_sock_tuple t = {};
	__u32 size = peer_tuple(p, dir, &t);
	struct bpf_sock *sk = bpf_skc_lookup_tcp(ctx, &t, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return LOCAL_TCP_NONE;
	enum local_tcp_origin origin = LOCAL_TCP_NONE;
	if (tcp_state_flows(sk->state)) {
		struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
		if (tp && tp->inet_conn.icsk_inet.sk.sk_max_ack_backlog)
			origin = LOCAL_TCP_ACCEPTED;
		else if (tp)
			origin = LOCAL_TCP_CONNECTED;
	}
	bpf_sk_release(sk);
	return origin;
}

/* 1 when a local udp socket of this namespace is connected (connect(), as most clients do) to
 * the packet's peer on these ports. The lookup also finds a socket that is only bound (a
 * server), which takes datagrams from anyone and says nothing about who opened the flow: such a
 * socket is unconnected (its state is not established) and does not count. */
static __always_inline int local_udp_connected(void *ctx, const struct pkt *p, __u8 dir)
{
	struct bpf_sock_tuple t = {};
	__u32 size = peer_tuple(p, dir, &t);
	struct bpf_sock *sk = bpf_sk_lookup_udp(ctx, &t, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	/* a connected socket matches only its own peer, so established says it is this one */
	__be16 rport = bpf_htons(dir == MOAT_DIR_INGRESS ? p->t.sport : p->t.dport);
	int connected = sk->state == TCPS_ESTABLISHED && sk->dst_port == rport;
	bpf_sk_release(sk);
	return connected;
}

/* 1 when a local socket of this namespace serves the packet's local port: a tcp listener, or a
 * udp socket bound to it and connected to no one. Looked up with remote port 0, which no
 * connected socket has, so only such a socket matches. A flow on that port was opened by its
 * peer (accepted), not by this host */
static __always_inline int local_serves(void *ctx, const struct pkt *p, __u8 dir)
{
	struct bpf_sock_tuple t = {};
	__u32 size = peer_tuple(p, dir, &t);
	struct bpf_sock *sk;

	if (p->t.family == 4)
		t.ipv4.sport = 0;
	else
		t.ipv6.sport = 0;
	if (p->t.proto == IPPROTO_TCP)
		sk = bpf_skc_lookup_tcp(ctx, &t, size, BPF_F_CURRENT_NETNS, 0);
	else
		sk = bpf_sk_lookup_udp(ctx, &t, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	bpf_sk_release(sk);
	return 1;
}

#endif /* MOAT_LOCAL_SOCK_H */
