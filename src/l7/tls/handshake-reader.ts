// TLS records -> handshake messages, for one direction of a connection. Handshake messages may
// span records and records may span TCP segments (a post-quantum key share makes a ClientHello
// larger than one segment, and some clients split it over several records). The reader holds at
// most `limit` bytes: more than that without a complete message is malformed.

export const HANDSHAKE_LIMIT = 64 * 1024;

const RECORD_HEADER = 5;
/** RFC 8446 5.1: a record's plaintext is at most 2^14 bytes; ciphertext may add 256 (1.3), 2048 (1.2). */
const MAX_RECORD = 2 ** 14 + 2048;

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

export class HandshakeReader {
  private records = Buffer.alloc(0);
  private messages = Buffer.alloc(0);
  private total = 0;
  private stopped: HandshakeRead | null = null;

  private readonly limit: number;

  constructor(limit = HANDSHAKE_LIMIT) {
    this.limit = limit;
  }

  push(chunk: Buffer): void {
    this.total += chunk.length;
    this.records = Buffer.concat([this.records, chunk]);
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
      const type = this.records[0] ?? 0;
      const major = this.records[1] ?? 0;
      const length = this.records.readUInt16BE(3);
      if (major !== 3) return this.stop({ kind: "malformed", reason: "not a TLS record" });
      if (length > MAX_RECORD)
        return this.stop({ kind: "malformed", reason: `record of ${length} bytes` });
      if (type === CONTENT.applicationData) return this.stop({ kind: "encrypted" });
      if (this.records.length < RECORD_HEADER + length) return { kind: "more" };
      const payload = this.records.subarray(RECORD_HEADER, RECORD_HEADER + length);
      this.records = this.records.subarray(RECORD_HEADER + length);
      if (type === CONTENT.handshake) {
        // RFC 8446 5.1 forbids an empty handshake record, yet OpenSSL reads past one: so does
        // moat, to judge the ClientHello the server goes on to read
        this.messages = Buffer.concat([this.messages, payload]);
      } else if (type === CONTENT.alert) {
        return this.stop({ kind: "alert", description: payload[1] ?? 0 });
      } else if (type !== CONTENT.changeCipherSpec) {
        return this.stop({ kind: "malformed", reason: `record type ${type}` });
      }
    }
  }

  private message(): HandshakeRead | null {
    if (this.messages.length < 4) return null;
    const length = this.messages.readUIntBE(1, 3);
    if (length > this.limit)
      return this.stop({ kind: "malformed", reason: `handshake message of ${length} bytes` });
    if (this.messages.length < 4 + length) return null;
    const type = this.messages[0] ?? 0;
    const body = this.messages.subarray(4, 4 + length);
    this.messages = this.messages.subarray(4 + length);
    return { kind: "message", type, body };
  }

  private stop(read: HandshakeRead): HandshakeRead {
    this.stopped = read;
    return read;
  }
}
