// The relay's minimal TLS reading: the server name (SNI) and the highest version a ClientHello
// offers, from a ClientHello in a single handshake record. Bounds are checked at every step: a
// malformed hello is null, never an exception or a read past the record.

/** The bytes a complete first record needs (header included); null until the header is in. */
export function recordLength(head: Buffer): number | null {
  if (head.length < 5) return null;
  return 5 + head.readUInt16BE(3);
}

export interface ClientHello {
  sni?: string;
  /** "1.0".."1.3": the highest offered (supported_versions, else the legacy version). */
  version: string;
}

const VERSIONS: Record<number, string> = {
  0x0301: "1.0",
  0x0302: "1.1",
  0x0303: "1.2",
  0x0304: "1.3",
};

class Reader {
  private readonly b: Buffer;
  at: number;
  private readonly end: number;
  constructor(b: Buffer, at: number, end: number) {
    this.b = b;
    this.at = at;
    this.end = end;
  }
  need(n: number): boolean {
    return this.at + n <= this.end;
  }
  u8(): number {
    if (!this.need(1)) throw new RangeError("short");
    return this.b[this.at++]!;
  }
  u16(): number {
    if (!this.need(2)) throw new RangeError("short");
    const v = this.b.readUInt16BE(this.at);
    this.at += 2;
    return v;
  }
  u24(): number {
    return (this.u8() << 16) | this.u16();
  }
  skip(n: number): void {
    if (!this.need(n)) throw new RangeError("short");
    this.at += n;
  }
  sub(n: number): Reader {
    if (!this.need(n)) throw new RangeError("short");
    const r = new Reader(this.b, this.at, this.at + n);
    this.at += n;
    return r;
  }
  text(n: number): string {
    if (!this.need(n)) throw new RangeError("short");
    const s = this.b.toString("latin1", this.at, this.at + n);
    this.at += n;
    return s;
  }
  get left(): number {
    return this.end - this.at;
  }
}

/** The ClientHello of a complete first record; null if it is not one or is malformed. */
export function parseClientHello(record: Buffer): ClientHello | null {
  try {
    const length = recordLength(record);
    if (length === null || record[0] !== 0x16 || record.length < length) return null;
    const r = new Reader(record, 5, length);
    if (r.u8() !== 1) return null; // not a ClientHello
    const body = r.sub(r.u24());
    const legacy = body.u16();
    body.skip(32); // random
    body.skip(body.u8()); // session id
    body.skip(body.u16()); // cipher suites
    body.skip(body.u8()); // compression methods
    const hello: ClientHello = { version: VERSIONS[legacy] ?? "1.2" };
    if (body.left === 0) return hello;
    const exts = body.sub(body.u16());
    while (exts.left > 0) {
      const type = exts.u16();
      const ext = exts.sub(exts.u16());
      if (type === 0) {
        const list = ext.sub(ext.u16());
        while (list.left > 0) {
          const kind = list.u8();
          const name = list.text(list.u16());
          if (kind === 0) hello.sni = name.toLowerCase();
        }
      } else if (type === 43) {
        const versions = ext.sub(ext.u8());
        let best = 0;
        while (versions.left >= 2) {
          const v = versions.u16();
          if (VERSIONS[v] && v > best) best = v;
        }
        if (best) hello.version = VERSIONS[best]!;
      }
    }
    return hello;
  } catch {
    return null;
  }
}
