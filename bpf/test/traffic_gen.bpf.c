// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The traffic generator of bench/traffic.ts: run with BPF_PROG_TEST_RUN in live-frames mode, it
 * gives each copy of an IPv4 UDP frame the next source of `sources` (the IP checksum updated) and
 * sends it out of the device the test run names (XDP_TX), so a veth's peer receives it through
 * native XDP. trafgen cannot feed a native-XDP veth: the peer's ring pushes back. */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define SOURCES 4096

/* key: i; value: a source address (network order); written by the bench */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SOURCES);
	__type(key, __u32);
	__type(value, __u32);
} sources SEC(".maps");

/* key: 0; value: the frames this cpu made */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} made SEC(".maps");

SEC("xdp")
int traffic_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	__u32 zero = 0;

	if ((void *)(ip + 1) > end)
		return XDP_ABORTED;
	__u64 *n = bpf_map_lookup_elem(&made, &zero);
	if (!n)
		return XDP_ABORTED;
	__u32 i = (*n)++ % SOURCES;
	__u32 *src = bpf_map_lookup_elem(&sources, &i);
	if (!src)
		return XDP_ABORTED;
	ip->saddr = *src;
	/* the header's checksum from scratch: 10 words */
	__u16 *w = (__u16 *)ip;
	__u32 sum = 0;
	ip->check = 0;
#pragma unroll
	for (int k = 0; k < 10; k++)
		sum += w[k];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	ip->check = ~sum;
	return XDP_TX;
}
