// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* XDP ingress (foundation): drops packets whose destination falls in a
 * prefix of the deny tries, counts every verdict, reports drops. The L3/L4
 * classifier replaces the deny tries with compiled policy tables. */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "moat_abi.h"
#include "parse.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* keeps struct moat_event in this object's BTF for the user-space layout check */
struct moat_event *moat_event_btf __attribute__((unused));

/* report dropped packets through the ring buffer (load-time knob) */
const volatile __u8 report_drops = 1;

/* key: destination prefix (v4); value: unused marker; written by user space */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct moat_lpm4_key);
	__type(value, __u8);
} deny_v4 SEC(".maps");

/* key: destination prefix (v6); value: unused marker; written by user space */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct moat_lpm6_key);
	__type(value, __u8);
} deny_v6 SEC(".maps");

/* key: enum moat_counter; value: packets; written by this program */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MOAT_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* struct moat_event records; read by the daemon */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &which);
	if (v)
		*v += 1;
}

static __always_inline void report(struct xdp_md *ctx, const __u8 *src, const __u8 *dst,
				   __u8 family, __u8 proto)
{
	struct moat_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		count(MOAT_CNT_EVENT_LOST);
		return;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->ts_ns = bpf_ktime_get_ns();
	if (family == 4) {
		/* IPv4-mapped IPv6 */
		ev->saddr[10] = 0xff;
		ev->saddr[11] = 0xff;
		ev->daddr[10] = 0xff;
		ev->daddr[11] = 0xff;
		__builtin_memcpy(&ev->saddr[12], src, 4);
		__builtin_memcpy(&ev->daddr[12], dst, 4);
	} else {
		__builtin_memcpy(ev->saddr, src, 16);
		__builtin_memcpy(ev->daddr, dst, 16);
	}
	ev->ifindex = ctx->ingress_ifindex;
	ev->type = MOAT_EV_BLOCKED;
	ev->hook = MOAT_HOOK_XDP_INGRESS;
	ev->family = family;
	ev->protocol = proto;
	bpf_ringbuf_submit(ev, 0);
}

SEC("xdp")
int moat_xdp_ingress(struct xdp_md *ctx)
{
	struct cursor c = { .pos = (void *)(long)ctx->data, .end = (void *)(long)ctx->data_end };
	int eth_proto = parse_eth(&c);

	if (eth_proto == ETH_P_IP) {
		struct iphdr *ip;
		int proto = parse_ipv4(&c, &ip);
		if (proto < 0) {
			count(MOAT_CNT_MALFORMED);
			return XDP_DROP;
		}
		struct moat_lpm4_key key = { .prefixlen = 32 };
		__builtin_memcpy(key.addr, &ip->daddr, 4);
		if (bpf_map_lookup_elem(&deny_v4, &key)) {
			count(MOAT_CNT_DROP);
			if (report_drops)
				report(ctx, (__u8 *)&ip->saddr, (__u8 *)&ip->daddr, 4, proto);
			return XDP_DROP;
		}
	} else if (eth_proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6;
		int proto = parse_ipv6(&c, &ip6);
		if (proto < 0) {
			count(MOAT_CNT_MALFORMED);
			return XDP_DROP;
		}
		struct moat_lpm6_key key = { .prefixlen = 128 };
		__builtin_memcpy(key.addr, &ip6->daddr, 16);
		if (bpf_map_lookup_elem(&deny_v6, &key)) {
			count(MOAT_CNT_DROP);
			if (report_drops)
				report(ctx, (__u8 *)&ip6->saddr, (__u8 *)&ip6->daddr, 6, proto);
			return XDP_DROP;
		}
	} else {
		/* ARP and other non-IP frames pass: the classifier judges IP only */
		count(MOAT_CNT_NON_IP);
		return XDP_PASS;
	}
	count(MOAT_CNT_PASS);
	return XDP_PASS;
}
