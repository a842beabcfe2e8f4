// Addon tests only: one of each map kind moat uses, plus XDP programs with known verdicts.
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP 0x0800

// Load-time knob: packets of this IP protocol are dropped by xdp_verdict (17 = UDP).
const volatile __u8 drop_proto = 17;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 128);
	__type(key, __u32);
	__type(value, __u64);
} hash_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} array_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} percpu_map SEC(".maps");

// Resized by the tests (setMaxEntries) before load.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} batch_map SEC(".maps");

struct lpm_v4_key {
	__u32 prefixlen; /* host order */
	__u32 addr;	 /* network order */
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v4_key);
	__type(value, __u32);
} lpm_map SEC(".maps");

struct inner_verdict {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} inner_default SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner_verdict);
} outer_map SEC(".maps") = {
    .values = {[0] = &inner_default},
};

// XDP_DROP for IPv4 packets whose protocol is drop_proto, XDP_PASS otherwise.
SEC("xdp")
int xdp_verdict(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;

	if ((void *)(eth + 1) > end)
		return XDP_ABORTED;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return XDP_ABORTED;
	return ip->protocol == drop_proto ? XDP_DROP : XDP_PASS;
}

// Returns the verdict stored at index 0 of the inner map found at outer_map[0].
SEC("xdp")
int xdp_inner(struct xdp_md *ctx)
{
	__u32 zero = 0;
	void *inner = bpf_map_lookup_elem(&outer_map, &zero);
	__u32 *verdict;

	if (!inner)
		return XDP_ABORTED;
	verdict = bpf_map_lookup_elem(inner, &zero);
	if (!verdict || *verdict > XDP_REDIRECT)
		return XDP_ABORTED;
	return *verdict;
}
