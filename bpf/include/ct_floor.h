/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The table floor of bench/classifier.ts (B1/B2), for the test programs bpf/test/ct_floor*.bpf.c
 * only (never part of moat.bpf.o): what the connection table alone costs a packet,
 * with nothing of moat's judging around it. The frame's source is rotated as moat's own bench
 * knobs rotate it (bench.h), the 40-byte connection key built, and one lookup made in an LRU hash
 * of moat's sizes (struct moat_ct_key -> struct moat_ct, 65,537 entries: maps.h); with `fresh`
 * every run is a new connection, looked up and then inserted, as a NEW packet's is. With `fill` as
 * well, only the first `fill` runs insert: the later ones are the lookup alone, a miss in a full
 * table. CT_FLOOR_TYPE and CT_FLOOR_FLAGS, defined before this header, give the table's kind:
 * bpf/test/ct_floor.bpf.c is moat's (an LRU hash with common lists), ct_floor_*.bpf.c the others
 * bench/table-kinds.ts compares with it. */
#ifndef MOAT_CT_FLOOR_H
#define MOAT_CT_FLOOR_H

#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "moat_abi.h"

char LICENSE[] SEC("license") = "GPL";

#ifndef CT_FLOOR_TYPE
#define CT_FLOOR_TYPE BPF_MAP_TYPE_LRU_HASH
#endif
#ifndef CT_FLOOR_FLAGS
#define CT_FLOOR_FLAGS 0
#endif

const volatile __u32 keys = 4096; /* distinct source addresses to rotate over */
const volatile __u32 fresh = 0;	  /* 1: every run a new source port, inserted */
const volatile __u32 fill = 0;	  /* with fresh: runs that insert; 0: all */

struct {
	__uint(type, CT_FLOOR_TYPE);
	__uint(map_flags, CT_FLOOR_FLAGS);
	__uint(max_entries, 65536 + 1);
	__type(key, struct moat_ct_key);
	__type(value, struct moat_ct);
} table SEC(".maps");

static __u64 seq;

/* bench.h's bench_address(): the same addresses moat's programs rotate over */
static __always_inline __u32 address_of(__u32 n)
{
	__u32 a = n * 0x9e3779b1u;

	a ^= a >> 15;
	a *= 0x85ebca77u;
	a ^= a >> 13;
	return a;
}

SEC("xdp")
int ct_floor(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct tcphdr *th = (void *)(ip + 1);
	struct moat_ct_key k __attribute__((aligned(8))) = {};

	if ((void *)(th + 1) > end || eth->h_proto != bpf_htons(0x0800))
		return XDP_PASS;
	__u64 i = seq++;
	__be32 src = bpf_htonl(address_of((__u32)i % keys));
	k.addr0[10] = k.addr0[11] = k.addr1[10] = k.addr1[11] = 0xff;
	__builtin_memcpy(k.addr0 + 12, &src, 4);
	__builtin_memcpy(k.addr1 + 12, &ip->daddr, 4);
	k.port0 = fresh ? (__u16)(1024 + (__u32)i / keys % 64000) : bpf_ntohs(th->source);
	k.port1 = bpf_ntohs(th->dest);
	k.family = 4;
	k.protocol = ip->protocol;

	__u64 now = bpf_ktime_get_ns();
	struct moat_ct *ct = bpf_map_lookup_elem(&table, &k);
	if (ct) {
		ct->last_ns = now;
		ct->packets[0] += 1;
		ct->bytes[0] += end - data;
		return XDP_PASS;
	}
	if (fill && i >= fill)
		return XDP_PASS;
	struct moat_ct v = {.id = i, .created_ns = now, .last_ns = now};
	bpf_map_update_elem(&table, &k, &v, BPF_ANY);
	return XDP_PASS;
}

#endif
