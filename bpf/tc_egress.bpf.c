// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* TC egress (foundation): counts outgoing packets by kind and passes them.
 * The L3/L4 classifier adds egress judging and connection tracking here. */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "moat_abi.h"
#include "parse.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TC_ACT_OK 0

/* key: enum moat_counter; value: packets; written by this program */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MOAT_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &which);
	if (v)
		*v += 1;
}

SEC("tc")
int moat_tc_egress(struct __sk_buff *skb)
{
	struct cursor c = { .pos = (void *)(long)skb->data, .end = (void *)(long)skb->data_end };
	int eth_proto = parse_eth(&c);

	if (eth_proto == ETH_P_IP) {
		struct iphdr *ip;
		if (parse_ipv4(&c, &ip) < 0) {
			count(MOAT_CNT_MALFORMED);
			return TC_ACT_OK;
		}
	} else if (eth_proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6;
		if (parse_ipv6(&c, &ip6) < 0) {
			count(MOAT_CNT_MALFORMED);
			return TC_ACT_OK;
		}
	} else {
		count(MOAT_CNT_NON_IP);
		return TC_ACT_OK;
	}
	count(MOAT_CNT_PASS);
	return TC_ACT_OK;
}
