// The C heap's free memory back to the system. glibc keeps what a thread's arena freed (the accept
// worker's parse of a big policy, buffers of a large apply) mapped in the process; the daemon asks
// for it back after such work, so its resident size follows what it holds, not its peak.
import { native } from "./addon.ts";
import type { NativeAddon } from "./native.d.ts";

/**
 * Returns the C heap's free pages to the system; false where there was nothing (or no glibc, or an
 * addon built before it had this: it runs from an event handler, where a throw would end moat).
 */
export function trimMemory(): boolean {
  const addon: Partial<Pick<NativeAddon, "trimMemory">> = native();
  return addon.trimMemory?.() ?? false;
}

/**
 * glibc's thresholds as the daemon holds them. A thread's arena gives the free memory at its top
 * back once it passes `trimBytes`; a block of `mmapBytes` or more has a mapping of its own, unmapped
 * when it is freed. Left to glibc, both start at 128 KiB and rise with the largest block unmapped
 * (the mmap one up to 32 MiB, the trim one to twice that): after a big policy's worker, one arena
 * then kept a free top of ~45 MB resident, which `trimMemory` does not reach (it gives back a
 * thread arena's free blocks, not its top).
 */
export const MALLOC_THRESHOLDS = { trimBytes: 2 * 2 ** 20, mmapBytes: 2 ** 20 };

/**
 * Fixes glibc's thresholds (process-wide) at `thresholds`; false where they could not be (no glibc,
 * or an addon built before it had this).
 */
export function holdMallocThresholds(thresholds = MALLOC_THRESHOLDS): boolean {
  const addon: Partial<Pick<NativeAddon, "mallocThresholds">> = native();
  return addon.mallocThresholds?.(thresholds.trimBytes, thresholds.mmapBytes) ?? false;
}
