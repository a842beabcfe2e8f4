// The kernel's clock as user space reads it. Kernel programs stamp times with bpf_ktime_get_ns:
// CLOCK_MONOTONIC as the kernel keeps it, which a time namespace (a CRIU-restored container)
// does not shift, though it shifts this process's CLOCK_MONOTONIC. Event times turn kernel times
// into wall-clock times through the offset between the two clocks, which changes when the wall
// clock steps (NTP after a boot with a wrong clock) or monotonic time stops (suspend).
import { readFileSync } from "node:fs";

/** The CLOCK_MONOTONIC offset in /proc/self/timens_offsets text, in ns (no file or line: 0). */
export function monotonicOffsetNs(offsets: string | null): bigint {
  const m = /^monotonic\s+(-?\d+)\s+(\d+)\s*$/m.exec(offsets ?? "");
  return m ? BigInt(m[1] ?? 0) * 1_000_000_000n + BigInt(m[2] ?? 0) : 0n;
}

function readTimeNamespaceOffsets(): string | null {
  try {
    return readFileSync("/proc/self/timens_offsets", "utf8");
  } catch {
    return null; // a kernel without time namespaces
  }
}

let namespaceOffsetNs: bigint | undefined;

/** Now on the kernel's clock (bpf_ktime_get_ns), in ns: what kernel times are compared with. */
export function kernelMonotonicNs(): bigint {
  namespaceOffsetNs ??= monotonicOffsetNs(readTimeNamespaceOffsets());
  return process.hrtime.bigint() - namespaceOffsetNs;
}

/** How often the offset between the wall clock and the kernel's is read again, at most. */
const REREAD_MS = 1000;

/**
 * Kernel times (ms on the kernel's clock) as wall-clock times (ms since the epoch). The offset
 * between the clocks is read again when a kernel time is a second past the last reading: events
 * after a step of the wall clock get the stepped time, and no clock is read per event (the event
 * path decodes tens of thousands a second).
 */
export class KernelWallClock {
  private readonly readWallMs: () => number;
  private readonly readKernelMs: () => number;
  /** The kernel time of the last reading. */
  private readAtMs: number;
  /** The wall-clock time of kernel time 0, as last read. */
  private bootMs: number;

  constructor(
    wallMs: () => number = () => Date.now(),
    kernelMs: () => number = () => Number(kernelMonotonicNs() / 1_000_000n),
  ) {
    this.readWallMs = wallMs;
    this.readKernelMs = kernelMs;
    this.readAtMs = this.readKernelMs();
    this.bootMs = this.readWallMs() - this.readAtMs;
  }

  /** The wall-clock time of kernel time `kernelMs`. */
  wallMs(kernelMs: number): number {
    if (kernelMs - this.readAtMs >= REREAD_MS) {
      this.readAtMs = this.readKernelMs();
      this.bootMs = this.readWallMs() - this.readAtMs;
    }
    return this.bootMs + kernelMs;
  }
}

let daemonClock: KernelWallClock | undefined;

/** Where an event's time comes from: a clock (default: the daemon's), or a fixed boot time. */
export interface WallTimeSource {
  clock?: KernelWallClock;
  /** A fixed wall-clock time of kernel time 0, in ms (tests): the clocks are not read. */
  bootTimeMs?: number;
}

/**
 * The wall-clock time (ms since the epoch) of kernel time `kernelMs`: every event source's
 * conversion, by one clock for the whole daemon unless `from` names another.
 */
export function wallTimeMs(kernelMs: number, from: WallTimeSource = {}): number {
  if (from.bootTimeMs !== undefined) return from.bootTimeMs + kernelMs;
  return (from.clock ?? (daemonClock ??= new KernelWallClock())).wallMs(kernelMs);
}
