// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* map_count.bpf.o: how many entries each BPF map holds, as the kernel counts them on every insert,
 * delete and LRU eviction (bpf_map_sum_elem_count). Read through an iterator link: one line
 * "<map id> <entries>" a map, so the daemon never walks a 65,536-entry table to count it. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

extern __s64 bpf_map_sum_elem_count(const struct bpf_map *map) __ksym;

SEC("iter/bpf_map")
int map_counts(struct bpf_iter__bpf_map *ctx)
{
	struct bpf_map *map = ctx->map;

	if (map)
		BPF_SEQ_PRINTF(ctx->meta->seq, "%u %lld\n", map->id, bpf_map_sum_elem_count(map));
	return 0;
}
