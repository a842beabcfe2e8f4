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
 * show moat another ClientHello than the server reads. The buffer grows to what the chunks (and
 * the handshake message's own length) need: many flows waiting cost what they hold, not `limit`.
 */
export class CryptoStream {
  private buf: Buffer = Buffer.alloc(0);
  /** One bit per byte of `buf`: received. */
  private have: Uint8Array = new Uint8Array(0);
  private contiguous = 0;
  private readonly limit: number;

  constructor(limit = 65536) {
    this.limit = limit;
  }

  /** Bytes allocated for the stream. */
  get heldBytes(): number {
    return this.buf.length + this.have.length;
  }

  add(chunk: CryptoChunk): void {
    const end = Math.min(chunk.offset + chunk.data.length, this.limit);
    if (end <= chunk.offset) return;
    this.reserve(end);
    for (let i = chunk.offset; i < end; i++) {
      if (this.received(i)) continue;
      this.buf[i] = chunk.data[i - chunk.offset]!;
      this.have[i >> 3] = this.have[i >> 3]! | (1 << (i & 7));
    }
    while (this.contiguous < this.buf.length && this.received(this.contiguous)) this.contiguous++;
    // the handshake message's length is known: room for all of it at once (within the limit)
    if (this.contiguous >= 4) this.reserve(Math.min(4 + this.buf.readUIntBE(1, 3), this.limit));
  }

  /** The bytes received without a gap, from offset 0. */
  prefix(): Buffer {
    return this.buf.subarray(0, this.contiguous);
  }

  private received(i: number): boolean {
    return ((this.have[i >> 3] ?? 0) & (1 << (i & 7))) !== 0;
  }

  private reserve(size: number): void {
    if (size <= this.buf.length) return;
    const buf = Buffer.alloc(size);
    this.buf.copy(buf);
    const have = new Uint8Array(Math.ceil(size / 8));
    have.set(this.have);
    this.buf = buf;
    this.have = have;
  }
}
