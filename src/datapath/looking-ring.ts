// A ring the packet programs fill, read on the event loop. The programs let a record wake the
// reader at most once in half a millisecond (bpf/include/ring_wake.h): a wakeup costs the sending
// cpu several microseconds, many times the record. A record sent without one is read by a look
// LOOK_MS after any record read, taken again while records keep coming: every record is read
// within about two milliseconds of its sending (plus the event loop's own delays), and an idle
// ring costs no timer.
import type { BpfMap, RingBuffer } from "./native.d.ts";
import { native } from "./addon.ts";

/** The reader's next look after a record read: twice the programs' RING_WAKE_NS. */
export const LOOK_MS = 1;

export class LookingRing {
  private readonly ring: RingBuffer;
  private timer: NodeJS.Timeout | undefined;
  /** performance.now() of the last record read. */
  private lastRead = -Infinity;
  private closed = false;

  /** `onBatch` gets the records as RingBuffer packs them (native.d.ts). */
  constructor(map: BpfMap, onBatch: (batch: Buffer, count: number) => void) {
    this.ring = new (native().RingBuffer)(map, (batch, count) => {
      this.lastRead = performance.now();
      this.arm();
      onBatch(batch, count);
    });
  }

  /** Reads every record in the ring now; returns how many. */
  drain(): number {
    return this.ring.drain();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.ring.close();
  }

  private arm(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => this.look(), LOOK_MS).unref();
  }

  /** Reads what came without a wakeup; looks again while a record was read in the LOOK_MS before
   * the drain began (one sent then may not have woken the reader). Timed from the drain's start:
   * a record sent after a drain that found the ring empty goes without a wakeup only within
   * RING_WAKE_NS of an earlier one's sending, and that one was read before the drain began, so
   * less than LOOK_MS before it. Timed after the drain, a pause of the thread between the drain
   * and the clock's read (a preemption) could end the looks with such a record unread; the
   * kernel wakes a reader only for the record at its position, so no later record would wake it,
   * and the ring would stay unread for good. */
  private look(): void {
    this.timer = undefined;
    if (this.closed) return;
    const began = performance.now();
    this.ring.drain();
    if (began - this.lastRead < LOOK_MS) this.arm();
  }
}
