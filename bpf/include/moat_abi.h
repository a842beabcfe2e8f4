/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Every struct and enum shared between moat's BPF programs and user space.
 * Fixed-width types, explicit padding, sizes asserted; user space codecs are
 * checked against the BTF of the built objects (test/unit/abi.test.ts). */
#ifndef MOAT_ABI_H
#define MOAT_ABI_H

#define MOAT_ABI_VERSION 1

/* LPM trie key for IPv4: prefixlen in host order, address in network order. */
struct moat_lpm4_key {
	__u32 prefixlen;
	__u8 addr[4];
};
_Static_assert(sizeof(struct moat_lpm4_key) == 8, "moat_lpm4_key");

/* LPM trie key for IPv6. */
struct moat_lpm6_key {
	__u32 prefixlen;
	__u8 addr[16];
};
_Static_assert(sizeof(struct moat_lpm6_key) == 20, "moat_lpm6_key");

/* Per-CPU packet counters, indexed by enum moat_counter. */
enum moat_counter {
	MOAT_CNT_PASS = 0,
	MOAT_CNT_DROP = 1,
	MOAT_CNT_NON_IP = 2,
	MOAT_CNT_MALFORMED = 3,
	MOAT_CNT_EVENT_LOST = 4,
	MOAT_CNT_MAX = 8,
};

enum moat_event_type {
	MOAT_EV_ALLOWED = 1,
	MOAT_EV_BLOCKED = 2,
	MOAT_EV_DETECTED = 3,
	MOAT_EV_CLOSED = 4,
};

enum moat_hook {
	MOAT_HOOK_XDP_INGRESS = 1,
	MOAT_HOOK_TC_EGRESS = 2,
};

/* One judged packet, reported through the events ring buffer.
 * Addresses are IPv4-mapped IPv6 (::ffff:a.b.c.d) for IPv4; ports in host order. */
struct moat_event {
	__u64 ts_ns; /* bpf_ktime_get_ns() */
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u32 ifindex;
	__u32 rule; /* rule index, or MOAT_RULE_DEFAULT_* */
	__u8 type; /* enum moat_event_type */
	__u8 hook; /* enum moat_hook */
	__u8 family; /* 4 or 6 */
	__u8 protocol; /* IPPROTO_* */
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 pad[6];
};
_Static_assert(sizeof(struct moat_event) == 64, "moat_event");

#endif /* MOAT_ABI_H */
