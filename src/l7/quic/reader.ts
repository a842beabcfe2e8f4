// Bounds-checked reads over a Buffer: every read returns undefined past the end, so a truncated
// or hostile packet ends the parse instead of throwing or reading beyond it.
export class Reader {
  private readonly buf: Buffer;
  at: number;
  private readonly end: number;

  constructor(buf: Buffer, at = 0, end = buf.length) {
    this.buf = buf;
    this.at = at;
    this.end = end;
  }

  get left(): number {
    return this.end - this.at;
  }

  u8(): number | undefined {
    return this.at + 1 <= this.end ? this.buf[this.at++] : undefined;
  }

  u16(): number | undefined {
    if (this.at + 2 > this.end) return undefined;
    const v = this.buf.readUInt16BE(this.at);
    this.at += 2;
    return v;
  }

  u24(): number | undefined {
    if (this.at + 3 > this.end) return undefined;
    const v = this.buf.readUIntBE(this.at, 3);
    this.at += 3;
    return v;
  }

  u32(): number | undefined {
    if (this.at + 4 > this.end) return undefined;
    const v = this.buf.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }

  bytes(n: number): Buffer | undefined {
    if (n < 0 || this.at + n > this.end) return undefined;
    const v = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return v;
  }

  /** A QUIC variable-length integer (RFC 9000 section 16); above 2^53 is refused. */
  varint(): number | undefined {
    const first = this.u8();
    if (first === undefined) return undefined;
    const length = 1 << (first >> 6);
    let v = first & 0x3f;
    for (let i = 1; i < length; i++) {
      const b = this.u8();
      if (b === undefined) return undefined;
      v = v * 256 + b;
    }
    return Number.isSafeInteger(v) ? v : undefined;
  }

  /** A sub-reader over the next n bytes (this one moves past them). */
  sub(n: number): Reader | undefined {
    if (n < 0 || this.at + n > this.end) return undefined;
    const r = new Reader(this.buf, this.at, this.at + n);
    this.at += n;
    return r;
  }
}
