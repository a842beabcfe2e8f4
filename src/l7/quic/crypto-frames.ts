// The CRYPTO frames of a decrypted Initial payload (RFC 9000 section 19.6), and their bytes put
// back in order across packets and datagrams. The other frames an Initial may hold (PADDING,
// PING, ACK, CONNECTION_CLOSE) are skipped; any other frame ends the walk.
import { Reader } from "./reader.ts";

export interface CryptoChunk {
  offset: number;
  data: Buffer;
}

const PADDING = 0x00;
const PING = 0x01;
const ACK = 0x02;
const ACK_ECN = 0x03;
const CRYPTO = 0x06;
const CLOSE = 0x1c;
const CLOSE_APP = 0x1d;

/** The CRYPTO frames of one packet's payload, in the order they appear. */
export function cryptoFrames(payload: Buffer): CryptoChunk[] {
  const out: CryptoChunk[] = [];
  const r = new Reader(payload);
  while (r.left > 0) {
    const type = r.varint();
    if (type === PADDING || type === PING) continue;
    if (type === CRYPTO) {
      const offset = r.varint();
      const length = r.varint();
      const data = length === undefined ? undefined : r.bytes(length);
      if (offset === undefined || !data) break;
      out.push({ offset, data });
    } else if (type === ACK || type === ACK_ECN) {
      if (!skipAck(r, type === ACK_ECN)) break;
    } else if (type === CLOSE || type === CLOSE_APP) {
      r.varint();
      if (type === CLOSE) r.varint();
      const n = r.varint();
      if (n === undefined || !r.bytes(n)) break;
    } else break;
  }
  return out;
}

function skipAck(r: Reader, ecn: boolean): boolean {
  const fields = [r.varint(), r.varint()]; // largest acknowledged, delay
  const ranges = r.varint();
  if (ranges === undefined || ranges > 1024 || r.varint() === undefined) return false;
  for (let i = 0; i < ranges * 2; i++) fields.push(r.varint());
  if (ecn) fields.push(r.varint(), r.varint(), r.varint());
  return fields.every((f) => f !== undefined);
}

/**
 * CRYPTO bytes from offset 0, reassembled from chunks in any order (repeats and overlaps
 * allowed), up to `limit` bytes: a hostile client cannot make moat hold more. A byte received
 * twice keeps its first value, as a server's reassembly does: a later copy that differs cannot
 * show moat another ClientHello than the server reads.
 */
export class CryptoStream {
  private readonly buf: Buffer;
  private readonly have: Uint8Array;
  private contiguous = 0;
  private readonly limit: number;

  constructor(limit = 65536) {
    this.limit = limit;
    this.buf = Buffer.alloc(limit);
    this.have = new Uint8Array(limit);
  }

  add(chunk: CryptoChunk): void {
    const end = Math.min(chunk.offset + chunk.data.length, this.limit);
    for (let i = chunk.offset; i < end; i++) {
      if (this.have[i]) continue;
      this.buf[i] = chunk.data[i - chunk.offset]!;
      this.have[i] = 1;
    }
    while (this.contiguous < this.limit && this.have[this.contiguous]) this.contiguous++;
  }

  /** The bytes received without a gap, from offset 0. */
  prefix(): Buffer {
    return this.buf.subarray(0, this.contiguous);
  }
}
