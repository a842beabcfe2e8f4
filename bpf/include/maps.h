/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Every map of moat.bpf.o, each with its key, its value and who writes it; no other file
 * defines one. Policy tables are inner maps of two-slot array-of-maps, built by user space for
 * each generation (src/datapath/policy-maps.ts); the state map says which slot is live.
 * Conntrack, fragments, counters and events are shared by every program of the object. */
#ifndef MOAT_MAPS_H
#define MOAT_MAPS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "moat_abi.h"
#include "packet.h"

/* complete types in the object's BTF (map definitions alone leave some as forward
 * declarations): libbpf sizes the inner maps from them, test/unit/abi.test.ts checks
 * the user-space codecs against them */
struct moat_lpm6_key *moat_btf_lpm6 __attribute__((unused));
struct moat_stacked_key *moat_btf_stacked __attribute__((unused));
struct moat_ry_key *moat_btf_ry __attribute__((unused));
struct moat_rule *moat_btf_rule __attribute__((unused));
struct moat_rule_stats *moat_btf_rule_stats __attribute__((unused));
struct moat_event *moat_btf_event __attribute__((unused));
struct moat_quic_initial *moat_btf_quic_initial __attribute__((unused));
struct moat_owner *moat_btf_owner __attribute__((unused));
struct moat_exe_key *moat_btf_exe __attribute__((unused));
struct moat_name_key *moat_btf_name_key __attribute__((unused));
struct moat_name_binding *moat_btf_name_binding __attribute__((unused));
struct moat_splice_peer *moat_btf_splice_peer __attribute__((unused));
struct moat_limit *moat_btf_limit __attribute__((unused));
struct moat_limit_key *moat_btf_limit_key __attribute__((unused));
struct moat_limit_state *moat_btf_limit_state __attribute__((unused));
struct moat_flood_port *moat_btf_flood_port __attribute__((unused));
struct moat_flood_state *moat_btf_flood_state __attribute__((unused));
struct moat_flood_udp *moat_btf_flood_udp __attribute__((unused));
struct moat_flood_icmp *moat_btf_flood_icmp __attribute__((unused));
struct moat_flood_secret *moat_btf_flood_secret __attribute__((unused));
struct moat_limit_lease *moat_btf_limit_lease __attribute__((unused));
struct moat_scrub *moat_btf_scrub __attribute__((unused));
struct moat_ids *moat_btf_ids __attribute__((unused));
struct moat_ids_record *moat_btf_ids_record __attribute__((unused));

/* the enums user space copies, so that they are in the BTF too (test/unit/abi.test.ts) */
struct moat_btf_enums {
	enum moat_abi_const abi_const;
	enum moat_lpm_table lpm_table;
	enum moat_u32_table u32_table;
	enum moat_direction direction;
	enum moat_basics basics;
	enum moat_action action;
	enum moat_mode mode;
	enum moat_counter_index counter_index;
	enum moat_event_type event_type;
	enum moat_hook hook;
	enum moat_post_flag post_flag;
	enum moat_reason reason;
	enum moat_tcp_state tcp_state;
	enum moat_ct_flag ct_flag;
	enum moat_unavailable unavailable;
	enum moat_rule_flag rule_flag;
	enum moat_redirect_flag redirect_flag;
	enum moat_limit_algorithm limit_algorithm;
	enum moat_limit_key_flag limit_key_flag;
	enum moat_scrub_flag scrub_flag;
	enum moat_flood_counter flood_counter;
	enum moat_flood_on flood_on;
	enum moat_ids_const ids_const;
};
struct moat_btf_enums *moat_btf_enums __attribute__((unused));

/* inner map templates: user space creates maps of the same type, sizes and flags */
/* an ipv4 address directory (docs/classifier.md); each generation sizes its own.
 * BPF_F_MMAPABLE (here, inner_u32, inner_rules): user space writes a new array through a
 * mapping of its values before it goes in, not an entry at a time through the syscall */
struct inner_dir4 {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
};

struct inner_lpm6 {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1);
	__type(key, struct moat_lpm6_key);
	__type(value, __u32);
};

/* BPF_F_INNER_MAP: each generation's array may have its own size */
struct inner_u32 {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
};

/* preallocated: filled in one batch at every reload, and never grows after */
struct inner_ry {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct moat_ry_key);
	__type(value, __u32);
};

struct inner_exe {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct moat_exe_key);
	__type(value, __u32);
};

struct inner_uid {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
};

struct inner_cgroup {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u64);
	__type(value, __u32);
};

struct inner_rules {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct moat_rule);
};

struct inner_stats {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct moat_rule_stats);
};

/* key: 0; value: live slot and both slots' meta; written by user space (apply) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct moat_state);
} state SEC(".maps");

/* the tables of one generation (enum moat_lpm_table, enum moat_u32_table) live at index
 * table * 2 + slot of the outer map of their kind: one outer map per kind, so a reload writes
 * six of them (each write of a map-in-map waits for an rcu grace period). With MOAT_IMAGES
 * images per slot, a table's outer index is (image * tables + table) * 2 + slot. */
static __always_inline __u32 outer_index(__u32 image, __u32 tables, __u32 table, __u32 slot)
{
	return ((image < MOAT_IMAGES ? image : 0) * tables + table) * 2 + (slot & 1);
}

/* key: outer_index(image, 2, table, slot); value: an ipv4 directory (enum moat_lpm_table);
 * written by user space */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 4 * MOAT_IMAGES);
	__type(key, __u32);
	__array(values, struct inner_dir4);
} tbl_dir4 SEC(".maps");

/* key: outer_index(image, 2, table, slot); value: an ipv6 trie (enum moat_lpm_table);
 * written by user space */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 4 * MOAT_IMAGES);
	__type(key, __u32);
	__array(values, struct inner_lpm6);
} tbl_lpm6 SEC(".maps");

/* key: outer_index(image, T_U32_TABLES, table, slot); value: a u32 array (enum
 * moat_u32_table); written by user space */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2 * T_U32_TABLES * MOAT_IMAGES);
	__type(key, __u32);
	__array(values, struct inner_u32);
} tbl_u32 SEC(".maps");

/* key: outer_index(image, 1, 0, slot); value: (remote class, Y) -> first rule naming
 * remotes; written by user space */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2 * MOAT_IMAGES);
	__type(key, __u32);
	__array(values, struct inner_ry);
} tbl_remote_y SEC(".maps");

/* key: slot; value: executable (inode, device) -> path class; written by user space */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner_exe);
} tbl_proc_exe SEC(".maps");

/* key: slot; value: uid -> user class; written by user space */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner_uid);
} tbl_proc_uid SEC(".maps");

/* key: slot; value: cgroup id -> cgroup class; written by user space */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner_cgroup);
} tbl_proc_cgroup SEC(".maps");

/* key: slot; value: comm (as a 128-bit lpm key) -> name class; written by user space */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner_lpm6);
} tbl_proc_comm SEC(".maps");

/* key: slot; value: destination (128-bit, ipv4 mapped) -> ifindex its route leaves by, the
 * route mirror (src/route); written by user space */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner_lpm6);
} tbl_proc_route SEC(".maps");

/* key: slot; value: ifindex -> interface class; written by user space */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner_uid);
} tbl_proc_iface SEC(".maps");

struct inner_stacked {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct moat_stacked_key);
	__type(value, __u32);
};

/* key: slot; value: (lower ifindex, a macvlan's MAC address) -> the macvlan's ifindex; written
 * by user space */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner_stacked);
} tbl_proc_stacked SEC(".maps");

/* names (docs/classifier.md, "Names"): a hash, not an lru (a binding is never evicted, a full map
 * is counted by its writer); allocated as bindings come */
struct inner_names {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MOAT_NAME_BINDINGS);
	__type(key, struct moat_name_key);
	__type(value, struct moat_name_binding);
};

/* key: slot; value: (identity, address) -> the address's name class for that identity; written
 * by user space (the DNS proxy's answers, and each reload's idle slot) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner_names);
} tbl_names SEC(".maps");

/* key: one name of one binding (identity, address, name); value: its expiry (__u64,
 * CLOCK_MONOTONIC ns). No program reads it: the DNS proxy journals its store here, so a daemon
 * that starts after a crash or an upgrade binds the names the last one knew (pinned as the
 * `names` group, apart from the policy's) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MOAT_NAME_JOURNAL);
	__type(key, struct moat_name_journal_key);
	__type(value, __u64);
} name_journal SEC(".maps");

/* key: slot; value: rule index -> struct moat_rule; written by user space */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner_rules);
} tbl_rules SEC(".maps");

/* key: slot; value: row * (rule_count + 2) + rule -> struct moat_rule_stats; created by
 * user space, written by the programs */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner_stats);
} tbl_rule_stats SEC(".maps");

/* key: normalized 5-tuple; value: struct moat_ct; written by both programs (and the
 * daemon when it re-judges); resized by user space before load. The LRU's common lists: per-CPU
 * lists (BPF_F_NO_COMMON_LRU) made a full table's insert no cheaper at this size, and dearer at
 * the same entries a CPU (docs/performance.md, "B1: the connection table's kind"). One entry
 * more than the connections it is sized for (65,536; src/datapath/conntrack-size.ts): the kernel
 * gives an LRU hash its entries rounded up to a power of two as buckets, so a full table has
 * half an entry a bucket, not one, and a new connection's miss walks half as many */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536 + 1);
	__type(key, struct moat_ct_key);
	__type(value, struct moat_ct);
} conntrack SEC(".maps");

/* key: datagram of a first fragment that passed; value: when, under which generation; written
 * by both programs; sized by user space before load as the connections conntrack is sized for
 * (not its one entry more: a later fragment's lookup is rare) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct moat_frag_key);
	__type(value, struct moat_frag);
} frags SEC(".maps");

/* key: 0; value: every counter (packets, bytes); written by both programs */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct moat_counters);
} counters SEC(".maps");

/* the last tick's time (bpf_ktime_get_coarse_ns) as this cpu last read it, and the jiffy it was
 * read in (conntrack.h, tick_ns); written by the packet programs */
struct tick_time {
	__u64 jiffy;
	__u64 ns;
};

/* key: 0; value: this cpu's struct tick_time */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tick_time);
} tick_cache SEC(".maps");

/* the state of this cpu's generator of ipv4 ids (scrub.h, scrub_ip_id); 0 until its first use */
struct ip_id_state {
	__u64 next;
};

/* key: 0; value: this cpu's struct ip_id_state */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ip_id_state);
} ip_id_rng SEC(".maps");

/* key: enum moat_hook & 7; value: a connection record being built (per cpu: a packet hook
 * never interrupts itself on one cpu); written by the packet programs and, for their events,
 * the socket hooks and the post-route check. Those run in process context: a kernel with full
 * preemption could interleave two on one cpu (and a packet sent from softirq could run the
 * post-route check inside another's report), which would mix the facts of an event, never a
 * verdict */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct moat_ct);
} ct_scratch SEC(".maps");

/* key: a local socket; value: its owner and the socket hooks' decision for its latest
 * destination (struct moat_sock); written by connect4/6, sendmsg4/6 and the post-route check,
 * read by the tc program (to attribute the connection it tracks), getpeername4/6, recvmsg4/6
 * and sock_ops. Per socket: found through the socket, gone with it, no hashing, no lru */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct moat_sock);
} socks SEC(".maps");

/* struct moat_event records; written by both programs, read by the daemon */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

/* struct moat_event records of type MOAT_EV_FLOW: the closes of connections whose opening was
 * not reported, for the daemon's flow records; a ring of their own, so a flood of them never
 * crowds out a decision in `events`. Written by both programs, read by the daemon */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 21);
} flow_records SEC(".maps");

/* struct moat_quic_initial records (quic.h): the first datagrams of udp 443 flows, read by the
 * daemon for their ClientHello */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} quic_initials SEC(".maps");

/* the accept side (accept.h, accept_hooks.h) */
/* key: a socket (bpf_sk_storage); value: who bound it; written by post_bind4/6, read by the
 * accept hook */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct moat_owner);
} owners SEC(".maps");

/* key: socket cookie; value: the owner of a socket bound before moat attached; written by
 * user space (from sock_diag), read by the accept hook */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct moat_owner);
} owner_cookies SEC(".maps");

/* failure.daemon: allow (heartbeat.h) */
/* key: 0; value: CLOCK_MONOTONIC ns of the daemon's latest heartbeat (0: none yet); written
 * by user space, read by every hook under failure.daemon allow */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} heartbeat SEC(".maps");

/* redirects (redirect.h, docs/redirect.md) */
struct inner_redirects {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct moat_redirect);
};

/* key: slot; value: redirect index -> where it sends connections; written by user space */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner_redirects);
} tbl_redirects SEC(".maps");

/* key: every target (address and port, and the same with an all-zero address); written by
 * user space */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct moat_endpoint);
	__type(value, __u8);
} redirect_targets SEC(".maps");

/* key: tgid of a process never redirected (moat's daemon, which registers itself); written by
 * user space */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} redirect_exempt SEC(".maps");

/* key: a process (its thread group leader's task storage); value: present when it bound port 53
 * with the privilege to, a resolver whose queries are never redirected; written by
 * post_bind4/6, gone with the process */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u8);
} resolvers SEC(".maps");

/* key: a process (task storage of its thread group leader); value: the executable it exec'd,
 * by inode (struct moat_exe_key). Written at exec and copied to a fork child (progs/exe.bpf.c),
 * read by task_exe() (exe.h): unlike mm->exe_file, PR_SET_MM cannot change it */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct moat_exe_key);
} exe_ids SEC(".maps");

/* key: 0; value: the cookie of moat's network namespace, where a loopback target is moat's
 * host (0: not told, the initial namespace); written by user space */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} home_netns SEC(".maps");

/* the cookie of moat's network namespace */
static __always_inline __u64 home_netns_cookie(void)
{
	__u32 zero = 0;
	__u64 *home = bpf_map_lookup_elem(&home_netns, &zero);

	return home && *home ? *home : bpf_get_netns_cookie(NULL);
}

/* whether the socket of a sock_addr hook's `ctx` is in moat's network namespace */
static __always_inline int sock_in_home_netns(struct bpf_sock_addr *ctx)
{
	return bpf_get_netns_cookie(ctx) == home_netns_cookie();
}

/* key: a network namespace's cookie (bpf_get_netns_cookie); value: the ports of the DNS proxy's
 * sockets in it, for redirects flagged MOAT_REDIRECT_NETNS; written by user space */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct moat_netns_ports);
} netns_targets SEC(".maps");

/* key: the redirected client as its proxy sees it (an all-zero address when the client's
 * socket was bound to none; its network namespace when its proxy's socket is in that one:
 * moat_client); value: its original destination; written by sock_ops (tcp) and sendmsg4/6
 * (udp), read by user space */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct moat_client);
	__type(value, struct moat_original);
} originals SEC(".maps");

/* the socket hooks (sock_hooks.h) */
/* key: 0; value: a socket record for a socket whose storage could not be made (no memory):
 * judged all the same, not remembered */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct moat_sock);
} sock_scratch SEC(".maps");

/* the packet programs (progs/packet.bpf.c) */
/* key: 0 for xdp, 1 for tc egress, 2 for tc ingress, 3 for the cookie check; value: the packet
 * being judged, kept off the 512-byte stack that the judging and classifying subprograms share;
 * written by the packet programs */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct pkt);
} scratch SEC(".maps");

/* the kernel splice (progs/splice.bpf.c, docs/l7-splice.md); not pinned: the daemon owns the
 * spliced sockets, so a pair ends with it anyway */
/* key: socket cookie; value: the socket. Every socket of a spliced pair, before either is
 * judged by the verdict program: what bpf_sk_redirect_hash sends to. No program attached */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} splice_targets SEC(".maps");

/* key: socket cookie; value: the socket, whose received bytes moat_splice_verdict sends to its
 * peer; written by user space once the pair is in splice_targets */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} splice_socks SEC(".maps");

/* key: socket cookie; value: its peer and the bytes sent on; written by user space, the
 * verdict program adds the bytes */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct moat_splice_peer);
} splice_peers SEC(".maps");

/* rate limits (ratelimit.h, docs/policy.md "rate_limit") */
struct inner_limits {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct moat_limit);
};

/* key: slot; value: rule index -> its rate limit (id 0: none); written by user space */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner_limits);
} tbl_limits SEC(".maps");

/* key: (limit id, source prefix, port); value: the source's state. Shared by both slots: a
 * limit a reload leaves unchanged keeps its id, so its sources keep their state. A hash, not an
 * lru: nothing is evicted behind the policy's back; a full table is counted and the source
 * judged by its limit's overflow bucket (written by user space with each policy). Written by
 * the packet programs; user space removes idle entries and those of limits gone. Resized by
 * user space before load */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct moat_limit_key);
	__type(value, struct moat_limit_state);
} limit_state SEC(".maps");

/* key: as limit_state; value: this cpu's lease and over-limit cache for the source (struct
 * moat_limit_lease); allocated as sources come; a full map only means the shared state is asked
 * every packet. Written by the packet programs; resized with limit_state */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct moat_limit_key);
	__type(value, struct moat_limit_lease);
} limit_leases SEC(".maps");

/* every cpu's leases of recent sources, in front of limit_leases: each cpu has its own
 * MOAT_LIMIT_CACHE_SETS sets (cpu * MOAT_LIMIT_CACHE_SETS + set; the loader sizes the array for
 * the machine's possible cpus), a source's set by a hash of the source (ratelimit.h,
 * limit_cache_set), each of its slots holding the source it is for and its lease, so a source
 * admitted by its lease costs one array lookup and no hash lookup. A slot is taken over only from
 * a lease that admits nothing more (no credit, or past its end); a source that finds every slot
 * of its set busy keeps its lease in limit_leases. One array, not a per-cpu one, and mmapable:
 * its values start on a page, so each 64-byte slot is one cache line (a per-cpu array's values
 * are 8-byte aligned, two lines each, behind a read of the value's per-cpu pointer). Written by
 * the packet programs */
#define MOAT_LIMIT_CACHE_WAYS 4
#define MOAT_LIMIT_CACHE_SET_BITS 11
#define MOAT_LIMIT_CACHE_SETS (1 << MOAT_LIMIT_CACHE_SET_BITS)
struct limit_cached {
	struct moat_limit_key key; /* id 0: empty */
	struct moat_limit_lease lease;
};
_Static_assert(sizeof(struct limit_cached) == 64, "limit_cached");

struct limit_cache_set {
	struct limit_cached way[MOAT_LIMIT_CACHE_WAYS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, MOAT_LIMIT_CACHE_SETS); /* one cpu's: the loader multiplies it */
	__type(key, __u32);
	__type(value, struct limit_cache_set);
} limit_lease_cache SEC(".maps");

/* a new source's state or lease, built off the stack (the judging chain has 512 bytes) */
struct limit_scratch {
	__u64 w[7];
};
_Static_assert(sizeof(struct limit_scratch) >= sizeof(struct moat_limit_state), "limit_scratch");
_Static_assert(sizeof(struct limit_scratch) >= sizeof(struct moat_limit_lease), "limit_scratch");

/* key: 0; value: scratch for ratelimit.h; written by the packet programs */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct limit_scratch);
} limit_scratch SEC(".maps");

/* key: 0; value: the time the rate limits read instead of bpf_ktime_get_ns() when the load-time
 * knob limit_test_clock is 1 (the bpf tests' windows); written by the tests */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} limit_clock SEC(".maps");

/* scrubbing (scrub.h) */
/* invalid tcp flag reports of one cpu: the latest report and the packets since */
struct scrub_tally {
	__u64 reported_ns;
	__u64 packets;
};

/* key: slot; value: that generation's scrubbing settings (struct moat_scrub); written by user
 * space before the flip */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct moat_scrub);
} scrub_config SEC(".maps");

/* ids (ids.h, docs/policy.md "ids") */
/* key: slot; value: that generation's ids settings (struct moat_ids); written by user space
 * before the flip */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct moat_ids);
} ids_config SEC(".maps");

/* the ids_records ring's bytes: a constant, so ids_room need not ask the ring */
#define MOAT_IDS_RING_SIZE (1u << 21)

/* struct moat_ids_record copies (header and data), read by the daemon's signatures */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, MOAT_IDS_RING_SIZE);
} ids_records SEC(".maps");

/* key: the hook (as scratch's); value: the record being built, off the stack */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct moat_ids_record);
} ids_scratch SEC(".maps");

/* key: 0; value: this cpu's invalid tcp flag reports (one a second at most); written by the
 * packet programs */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scrub_tally);
} scrub_reports SEC(".maps");

/* SYN flood defence (syncookie.h) */
/* key: port (0: every port without its own entry); value: struct moat_flood_port; written by
 * user space with each policy */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct moat_flood_port);
} flood_ports SEC(".maps");

/* key: as flood_ports; value: the port's SYN bucket and attack; written by the packet programs */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct moat_flood_state);
} flood_state SEC(".maps");

/* key: 0; value: the cookies' key; written by user space at start */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct moat_flood_secret);
} flood_secret SEC(".maps");

/* key: 0; value: the udp amplification limit (struct moat_flood_udp); written by user space
 * with each policy */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct moat_flood_udp);
} flood_udp SEC(".maps");

/* key: 0; value: enum moat_flood_on bits of the live policy; written by user space */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} flood_on SEC(".maps");

/* key: udp source port; value: 1 (an amplification port); written by user space */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u8);
} flood_udp_ports SEC(".maps");

/* key: (limit id, source, source port); value: the source's state (ratelimit.h's algorithms). A
 * hash, not an lru: a full table is counted and its sources share the overflow bucket; user
 * space removes idle entries */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct moat_limit_key);
	__type(value, struct moat_limit_state);
} flood_udp_state SEC(".maps");

/* key: 0; value: the oversized ICMP limit (struct moat_flood_icmp); written by user space */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct moat_flood_icmp);
} flood_icmp SEC(".maps");

/* key: 0; value: this cpu's oversized ICMP reports (one a second at most) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scrub_tally);
} flood_icmp_reports SEC(".maps");

/* key: enum moat_flood_counter; value: this cpu's count */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MOAT_FLOOD_MAX);
	__type(key, __u32);
	__type(value, __u64);
} flood_counters SEC(".maps");

#endif /* MOAT_MAPS_H */
