// Bounds-checked reading of TLS structures: every read past the end throws TlsParseError.

export class TlsParseError extends Error {
  readonly code = "ETLSPARSE";
  constructor(message: string) {
    super(message);
    this.name = "TlsParseError";
  }
}

export class Cursor {
  private at = 0;
  private readonly data: Buffer;

  constructor(data: Buffer) {
    this.data = data;
  }

  get left(): number {
    return this.data.length - this.at;
  }

  uint(bytes: 1 | 2 | 3): number {
    this.need(bytes);
    const value = this.data.readUIntBE(this.at, bytes);
    this.at += bytes;
    return value;
  }

  bytes(length: number): Buffer {
    this.need(length);
    const slice = this.data.subarray(this.at, this.at + length);
    this.at += length;
    return slice;
  }

  /** A length-prefixed vector (the prefix is `bytes` long) as its own cursor. */
  vector(bytes: 1 | 2 | 3): Cursor {
    return new Cursor(this.bytes(this.uint(bytes)));
  }

  private need(length: number): void {
    if (length > this.left)
      throw new TlsParseError(`truncated: ${length} bytes wanted, ${this.left} left`);
  }
}
