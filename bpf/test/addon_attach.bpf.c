// Addon tests only: trivial programs for every attach path (XDP, tc/tcx, cgroup, uprobe).
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define TC_ACT_OK 0

// connect4_deny refuses connect() to this TCP/UDP port (host order; 0 = allow all).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} deny_port SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} uprobe_hits SEC(".maps");

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("tc")
int tc_pass(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

SEC("cgroup/connect4")
int connect4_deny(struct bpf_sock_addr *ctx)
{
	__u32 zero = 0;
	__u32 *port = bpf_map_lookup_elem(&deny_port, &zero);

	/* user_port: network order in the low 16 bits */
	if (port && *port && ctx->user_port == bpf_htons((__u16)*port))
		return 0; /* connect() fails with EPERM */
	return 1;
}

SEC("uprobe")
int uprobe_count(void *ctx)
{
	__u32 zero = 0;
	__u64 *hits = bpf_map_lookup_elem(&uprobe_hits, &zero);

	if (hits)
		__sync_fetch_and_add(hits, 1);
	return 0;
}
