// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The table floor with per-CPU LRU lists (BPF_F_NO_COMMON_LRU): each CPU evicts from its own
 * share of the entries (max_entries / possible CPUs), without the common lists' lock. Compared
 * with ct_floor.bpf.c's common LRU by bench/table-kinds.ts. */
#define CT_FLOOR_FLAGS BPF_F_NO_COMMON_LRU
#include "ct_floor.h"
