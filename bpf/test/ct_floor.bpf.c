// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The table floor of bench/classifier.ts (B1/B2) in moat's table kind: an LRU hash with common
 * lists, as `conntrack` is (bpf/include/ct_floor.h). */
#include "ct_floor.h"
