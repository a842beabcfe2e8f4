// Reading a connection's first bytes before anything is forwarded: until `enough` says so, the
// client ends, the header timeout passes, or `max` bytes are buffered (a bound, never more).
import type { Socket } from "node:net";

export interface HeadRead {
  head: Buffer;
  /** Why reading stopped. */
  end: "enough" | "timeout" | "closed" | "full";
}

/** The smallest store a head grows into once a second read comes. */
const FIRST_STORE = 1024;

/**
 * A head as it grows: the start of a store that doubles when full (at most `max`), so a client
 * sending a byte per segment costs copies in proportion to its bytes, not their square. The
 * first read is the head as it came (no copy).
 */
class GrowingHead {
  bytes: Buffer;
  private store: Buffer | null = null;
  private readonly max: number;

  constructor(head: Buffer, max: number) {
    this.bytes = head;
    this.max = max;
  }

  append(part: Buffer): void {
    if (this.bytes.length === 0) {
      this.bytes = part;
      return;
    }
    const size = this.bytes.length + part.length;
    if (!this.store || size > this.store.length) {
      const room = Math.max(size, 2 * (this.store?.length ?? 0), FIRST_STORE);
      const grown = Buffer.allocUnsafe(Math.min(this.max, room));
      this.bytes.copy(grown);
      this.store = grown;
    }
    part.copy(this.store, this.bytes.length);
    this.bytes = this.store.subarray(0, size);
  }
}

/** Reads from the paused `socket` onto `head`; leaves it paused. */
export function readHead(
  socket: Socket,
  head: Buffer,
  enough: (head: Buffer) => boolean,
  timeoutMs: number,
  max: number,
): Promise<HeadRead> {
  if (enough(head)) return Promise.resolve({ head, end: "enough" });
  if (head.length >= max) return Promise.resolve({ head, end: "full" });
  return new Promise((resolve) => {
    const got = new GrowingHead(head, max);
    const done = (end: HeadRead["end"]) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onClosed);
      socket.off("close", onClosed);
      socket.off("error", onClosed);
      socket.pause();
      resolve({ head: got.bytes, end });
    };
    const onData = (chunk: Buffer) => {
      const room = max - got.bytes.length;
      const surplus = chunk.length > room ? chunk.subarray(room) : null;
      got.append(surplus ? chunk.subarray(0, room) : chunk);
      if (enough(got.bytes)) done("enough");
      else if (got.bytes.length >= max) done("full");
      // what is past `max` goes back to the socket's buffer once reading stopped (done pauses
      // it): unshifted into a flowing socket it would come back as 'data' at once, before `got`
      if (surplus) socket.unshift(surplus);
    };
    const onClosed = () => done("closed");
    const timer = setTimeout(() => done("timeout"), timeoutMs);
    socket.on("data", onData);
    socket.once("end", onClosed);
    socket.once("close", onClosed);
    socket.once("error", onClosed);
    socket.resume();
  });
}
