/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-CPU packet counters and per-rule counters. */
#ifndef MOAT_COUNTERS_H
#define MOAT_COUNTERS_H

#include "maps.h"

/* this cpu's counters (looked up once per packet by the judge) */
static __always_inline struct moat_counters *counters_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&counters, &zero);
}

static __always_inline void count_in(struct moat_counters *c, __u32 which, __u32 bytes)
{
	if (c && which < MOAT_CNT_MAX) {
		c->c[which].packets += 1;
		c->c[which].bytes += bytes;
	}
}

/* for the rare paths */
static __always_inline void count(__u32 which, __u32 bytes)
{
	count_in(counters_get(), which, bytes);
}

/* adds `packets` packets (and a connection if `judged`) to the rule's row for this cpu */
static __always_inline void count_rule_as(__u32 slot, const struct moat_meta *m, __u32 rule,
					  __u32 packets, __u32 bytes, int judged)
{
	__u32 rows = m->stats_rows;
	__u32 stride = m->rule_count + 2;

	if (!rows || rule >= stride)
		return;
	void *table = bpf_map_lookup_elem(&tbl_rule_stats, &slot);
	if (!table)
		return;
	__u32 cpu = bpf_get_smp_processor_id();
	__u32 idx = (cpu < rows ? cpu : cpu % rows) * stride + rule;
	struct moat_rule_stats *s = bpf_map_lookup_elem(table, &idx);
	if (!s)
		return;
	/* one row per cpu: plain adds; rows shared by cpus (a huge policy): atomic ones */
	if (!m->stats_atomic) {
		s->packets += packets;
		s->bytes += bytes;
		s->connections += judged;
		return;
	}
	if (packets)
		__sync_fetch_and_add(&s->packets, packets);
	__sync_fetch_and_add(&s->bytes, bytes);
	if (judged)
		__sync_fetch_and_add(&s->connections, 1);
}

/* adds a packet (and a connection if `judged`) to the rule's row for this cpu */
static __always_inline void count_rule(__u32 slot, const struct moat_meta *m, __u32 rule,
				       __u32 bytes, int judged)
{
	count_rule_as(slot, m, rule, 1, bytes, judged);
}

#endif /* MOAT_COUNTERS_H */
