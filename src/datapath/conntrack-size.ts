// The connection table's size (docs/datapath.md, "Connection tracking"): the connections it is
// sized for, what `DatapathOptions.conntrackEntries` sets (65,536 by default: bpf/include/maps.h)
// and status and metrics report, and the kernel table's max_entries, one more. The kernel gives
// an LRU hash its max_entries rounded up to a power of two as buckets: at a power of two one entry
// more doubles them, and a full table's new connection, a miss before its insert, walks half as
// many entries (docs/performance.md). The fragment records (`frags`) are sized at the capacity.

/** The kernel table's max_entries for a capacity. */
export const conntrackMaxEntries = (capacity: number): number => capacity + 1;

/** The capacity of a kernel table of `maxEntries`. */
export const conntrackCapacity = (maxEntries: number): number => maxEntries - 1;
