// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The table floor as a plain preallocated hash: no LRU lists to keep, and an insert into a full
 * table fails instead of evicting. For reference beside ct_floor.bpf.c (bench/table-kinds.ts). */
#define CT_FLOOR_TYPE BPF_MAP_TYPE_HASH
#include "ct_floor.h"
