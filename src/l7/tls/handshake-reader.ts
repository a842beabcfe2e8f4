// TLS records -> handshake messages, for one direction of a connection. Handshake messages may
// span records and records may span TCP segments (a post-quantum key share makes a ClientHello
// larger than one segment, and some clients split it over several records). The reader holds at
// most `limit` bytes: more than that without a complete message is malformed.

export const HANDSHAKE_LIMIT = 64 * 1024;

const RECORD_HEADER = 5;
/** RFC 8446 5.1: a record's plaintext is at most 2^14 bytes; ciphertext may add 256 (1.3), 2048 (1.2). */
const MAX_RECORD = 2 ** 14 + 2048;
/** Empty handshake records in a row OpenSSL reads past (its MAX_EMPTY_RECORDS). */
const MAX_EMPTY_IN_A_ROW = 32;

export const CONTENT = { changeCipherSpec: 20, alert: 21, handshake: 22, applicationData: 23 };

export type HandshakeRead =
  | { kind: "message"; type: number; body: Buffer }
  /** More bytes are needed. */
  | { kind: "more" }
  /** The peer sent an alert in clear. */
  | { kind: "alert"; description: number }
  /** Encrypted records follow: nothing more can be read in clear. */
  | { kind: "encrypted" }
  | { kind: "malformed"; reason: string };

/**
 * Bytes received in pieces, kept as the pieces (a list and a count): each is copied once, when
 * the bytes it is part of are taken, however small the pieces come.
 */
class ByteQueue {
  private chunks: Buffer[] = [];
  length = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** The first `n` bytes (n <= length), left in the queue. */
  peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first && first.length >= n) return first.subarray(0, n);
    this.chunks = [Buffer.concat(this.chunks)];
    return (this.chunks[0] ?? Buffer.alloc(0)).subarray(0, n);
  }

  /** The first `n` bytes (n <= length), taken out of the queue. */
  take(n: number): Buffer {
    const bytes = this.peek(n);
    this.length -= n;
    let left = n;
    while (left > 0) {
      const first = this.chunks[0] ?? Buffer.alloc(0);
      if (first.length > left) {
        this.chunks[0] = first.subarray(left);
        break;
      }
      left -= first.length;
      this.chunks.shift();
    }
    return bytes;
  }
}

export class HandshakeReader {
  private readonly records = new ByteQueue();
  private readonly messages = new ByteQueue();
  private total = 0;
  private recordsRead = 0;
  /** Empty handshake records since the last one that carried bytes. */
  private emptyInARow = 0;
  private stopped: HandshakeRead | null = null;

  private readonly limit: number;

  constructor(limit = HANDSHAKE_LIMIT) {
    this.limit = limit;
  }

  /**
   * How many bytes the whole records read so far take. Records are read only while no message is
   * complete: after next() returns a message, this is where the record holding its end ends.
   */
  get recordBytes(): number {
    return this.recordsRead;
  }

  push(chunk: Buffer): void {
    this.total += chunk.length;
    this.records.push(chunk);
  }

  /** The next complete handshake message, or why there is none. */
  next(): HandshakeRead {
    if (this.stopped) return this.stopped;
    for (;;) {
      const message = this.message();
      if (message) return message;
      if (this.messages.length + this.records.length > this.limit || this.total > this.limit * 4)
        return this.stop({
          kind: "malformed",
          reason: `no complete message in ${this.limit} bytes`,
        });
      if (this.records.length < RECORD_HEADER) return { kind: "more" };
      const header = this.records.peek(RECORD_HEADER);
      const type = header[0] ?? 0;
      const major = header[1] ?? 0;
      const length = header.readUInt16BE(3);
      if (major !== 3) return this.stop({ kind: "malformed", reason: "not a TLS record" });
      if (length > MAX_RECORD)
        return this.stop({ kind: "malformed", reason: `record of ${length} bytes` });
      if (type === CONTENT.applicationData) return this.stop({ kind: "encrypted" });
      if (this.records.length < RECORD_HEADER + length) return { kind: "more" };
      const payload = this.records.take(RECORD_HEADER + length).subarray(RECORD_HEADER);
      this.recordsRead += RECORD_HEADER + length;
      if (type === CONTENT.handshake) {
        const refused = this.handshakeFragment(payload);
        if (refused) return this.stop(refused);
      } else if (type === CONTENT.alert) {
        return this.stop({ kind: "alert", description: payload[1] ?? 0 });
      } else if (type !== CONTENT.changeCipherSpec) {
        return this.stop({ kind: "malformed", reason: `record type ${type}` });
      }
    }
  }

  /**
   * A handshake record's bytes onto the messages. RFC 8446 5.1 forbids an empty one, yet OpenSSL
   * reads past up to MAX_EMPTY_IN_A_ROW of them: so does moat, to judge the ClientHello the
   * server goes on to read; more is malformed, as OpenSSL refuses it.
   */
  private handshakeFragment(payload: Buffer): HandshakeRead | null {
    if (payload.length > 0) {
      this.emptyInARow = 0;
      this.messages.push(payload);
      return null;
    }
    if (++this.emptyInARow <= MAX_EMPTY_IN_A_ROW) return null;
    return {
      kind: "malformed",
      reason: `more than ${MAX_EMPTY_IN_A_ROW} empty handshake records in a row`,
    };
  }

  private message(): HandshakeRead | null {
    if (this.messages.length < 4) return null;
    const header = this.messages.peek(4);
    const length = header.readUIntBE(1, 3);
    if (length > this.limit)
      return this.stop({ kind: "malformed", reason: `handshake message of ${length} bytes` });
    if (this.messages.length < 4 + length) return null;
    const type = header[0] ?? 0;
    const body = this.messages.take(4 + length).subarray(4);
    return { kind: "message", type, body };
  }

  private stop(read: HandshakeRead): HandshakeRead {
    this.stopped = read;
    return read;
  }
}
