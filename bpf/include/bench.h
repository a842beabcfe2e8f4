/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Benchmark-only knobs (docs/performance.md, B1/B2). Both are .rodata and 0 in production,
 * so the verifier removes this code from the daemon's programs. With them set, one test run
 * of one packet with repeat = R judges R packets from bench_keys distinct remote addresses
 * (and, with bench_fresh, R distinct connections), the way real traffic would. */
#ifndef MOAT_BENCH_H
#define MOAT_BENCH_H

#include "packet.h"

const volatile __u32 bench_keys = 0;  /* distinct source addresses to rotate over; 0: off */
const volatile __u32 bench_fresh = 0; /* 1: every run gets a new source port (a NEW connection) */

/* runs so far; test runs of one program do not overlap, a plain counter is enough */
static __u64 bench_seq;

/* the address of key n: a 32-bit mix, so keys spread over the whole v4 space. bench/ computes
 * the same (benchAddress) to check the verdicts */
static __always_inline __u32 bench_address(__u32 n)
{
	__u32 a = n * 0x9e3779b1u;

	a ^= a >> 15;
	a *= 0x85ebca77u;
	a ^= a >> 13;
	return a;
}

/* rewrites the parsed remote address of an ipv4 packet: its source on ingress (`dir`), its
 * destination on egress */
static __always_inline void bench_rotate(struct pkt *p, int kind, __u8 dir)
{
	if (!bench_keys || kind != PKT_IP || p->t.family != 4)
		return;
	__u64 i = bench_seq++;
	__u32 n = (__u32)i % bench_keys;
	__be32 a = bpf_htonl(bench_address(n));

	__builtin_memcpy((dir == MOAT_DIR_INGRESS ? p->t.src : p->t.dst) + 12, &a, 4);
	if (bench_fresh)
		p->t.sport = (__u16)(1024 + (__u32)i / bench_keys % 64000);
}

#endif /* MOAT_BENCH_H */
