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
