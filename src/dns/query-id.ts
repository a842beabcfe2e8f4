// A DNS message's id: read and written by hand, and drawn at random for the queries moat asks
// servers (the client's id is put back in the answer), so that only a server that saw the query
// can answer it.
import { randomFillSync } from "node:crypto";

/** Uniform random 16-bit ids, drawn from the kernel's random source a few thousand at a time. */
export class RandomIds {
  private readonly ids = new Uint16Array(4096);
  private at = this.ids.length;

  next(): number {
    if (this.at === this.ids.length) {
      randomFillSync(this.ids);
      this.at = 0;
    }
    return this.ids[this.at++] ?? 0;
  }
}

/**
 * A message's id (its first two bytes; the caller knows there are two), read and written by hand:
 * Buffer's readers and writers check their arguments through validators that allocate, per query.
 */
export const idOf = (message: Buffer): number => (message[0]! << 8) | message[1]!;
export function setId(message: Buffer, id: number): void {
  message[0] = id >>> 8;
  message[1] = id & 0xff;
}
