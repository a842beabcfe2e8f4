// The ids copies' ring (ids_records), read on the event loop. The packet programs let a copy wake
// the reader at most once a millisecond (bpf/include/ids.h, ids_wake): a wakeup costs the sending
// cpu several microseconds, many times the copy. A copy sent without one is read by a look
// IDS_LOOK_MS after any copy read, taken again while copies keep coming: every copy is read
// within about two milliseconds of being sent, and an idle ring costs no timer.
import type { BpfMap, RingBuffer } from "./native.d.ts";
import { native } from "./addon.ts";
import { records } from "./ringbuf-batch.ts";

/** The reader's next look after a copy read: at least the programs' IDS_WAKE_NS. */
export const IDS_LOOK_MS = 1;

export class IdsRing {
  private readonly ring: RingBuffer;
  private timer: NodeJS.Timeout | undefined;
  /** performance.now() of the last copy read. */
  private lastRead = -Infinity;
  private closed = false;

  constructor(map: BpfMap, onRecord: (record: Buffer) => void) {
    this.ring = new (native().RingBuffer)(map, (batch) => {
      this.lastRead = performance.now();
      this.arm();
      for (const record of records(batch)) onRecord(record);
    });
  }

  /** Reads every copy in the ring now; returns how many. */
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
    this.timer = setTimeout(() => this.look(), IDS_LOOK_MS).unref();
  }

  /** Reads what came without a wakeup; looks again while a copy was read in the last
   * IDS_LOOK_MS (one sent then may not have woken the reader). */
  private look(): void {
    this.timer = undefined;
    if (this.closed) return;
    this.ring.drain();
    if (performance.now() - this.lastRead < IDS_LOOK_MS) this.arm();
  }
}
