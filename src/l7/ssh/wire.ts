// One direction of an SSH connection before its keys are in use (RFC 4253 sections 4.2 and 6):
// the version line (a server may send other lines before it), then binary packets in the clear
// (packet_length, padding_length, payload, padding; no MAC yet). Bounded: a peer that sends more
// than `maxBytes` before moat has what it needs, more than 8 KiB of lines before its version, or a
// malformed packet, is a protocol error.

import { printable } from "../../config/printable.ts";

/** Most characters of a peer's text an error message quotes. */
const QUOTED_CHARS = 40;

/**
 * What a peer sent, as an error message quotes it: escaped (printable) and cut, so a peer cannot
 * add a line to the daemon's output or make one long.
 */
export function peerText(text: string): string {
  const cut = text.length > QUOTED_CHARS ? `${text.slice(0, QUOTED_CHARS)}...` : text;
  return `'${printable(cut)}'`;
}

export class SshProtocolError extends Error {
  readonly code = "ESSHPROTO";
  constructor(message: string) {
    super(message);
    this.name = "SshProtocolError";
  }
}

export interface SshPacket {
  /** The message number (the payload's first byte). */
  type: number;
  payload: Buffer;
  /** Where the packet starts and ends in this direction's byte stream. */
  start: number;
  end: number;
}

/** RFC 4253 4.2: the version line is at most 255 bytes with its CR LF. */
const MAX_LINE = 255;
/**
 * The most a server's lines before its version may hold (they reach the client unjudged; servers
 * send a line or two, e.g. why they refuse the connection).
 */
const MAX_BEFORE_VERSION = 8 * 1024;
/** The largest packet moat reads in the clear (KEXINIT and post-quantum replies are ~2 KiB). */
const MAX_PACKET = 35_000;

export class SshStream {
  /** The peer's version line without CR LF, once seen (e.g. "SSH-2.0-OpenSSH_9.2p1"). */
  version: string | null = null;
  /** Bytes read into whole lines and packets so far. */
  consumed = 0;
  /**
   * The bytes received: the start of `store`, which grows by doubling, so that the bytes held
   * are copied a few times over at most, however small the pieces come.
   */
  private data: Buffer = Buffer.alloc(0);
  private store: Buffer = Buffer.alloc(0);
  private readonly maxBytes: number;
  /** The client's direction: its first line is its version (only a server sends others first). */
  private readonly versionFirst: boolean;

  constructor(maxBytes = 64 * 1024, versionFirst = false) {
    this.maxBytes = maxBytes;
    this.versionFirst = versionFirst;
  }

  push(chunk: Buffer): void {
    if (this.data.length + chunk.length > this.maxBytes)
      throw new SshProtocolError(`more than ${this.maxBytes} bytes before the host key`);
    const size = this.data.length + chunk.length;
    if (size > this.store.length) {
      const grown = Buffer.alloc(
        Math.min(this.maxBytes, Math.max(size, 2 * this.store.length, 1024)),
      );
      this.data.copy(grown);
      this.store = grown;
    }
    chunk.copy(this.store, this.data.length);
    this.data = this.store.subarray(0, size);
  }

  /** Bytes [from, to) of the stream as received. */
  bytes(from: number, to = this.data.length): Buffer {
    return this.data.subarray(from, to);
  }

  get length(): number {
    return this.data.length;
  }

  /** How many more bytes `push` takes. */
  get room(): number {
    return this.maxBytes - this.data.length;
  }

  /** The message number of the next packet once its first bytes are in, before it is whole. */
  nextType(): number | null {
    if (this.version === null || this.data.length - this.consumed < 6) return null;
    return this.data[this.consumed + 5] ?? null;
  }

  /** The next whole packet after the version line; null until more bytes arrive. */
  next(): SshPacket | null {
    while (this.version === null) if (!this.line()) return null;
    const at = this.consumed;
    if (this.data.length - at < 5) return null;
    const length = this.data.readUInt32BE(at);
    if (length < 5 || length > MAX_PACKET)
      throw new SshProtocolError(`packet length ${length} out of range`);
    const end = at + 4 + length;
    if (this.data.length < end) return null;
    const padding = this.data[at + 4] ?? 0;
    if (padding + 1 >= length) throw new SshProtocolError(`padding ${padding} too long`);
    const payload = this.data.subarray(at + 5, end - padding);
    this.consumed = end;
    return { type: payload[0] ?? 0, payload, start: at, end };
  }

  /** Reads one line; true when one was whole. */
  private line(): boolean {
    const nl = this.data.indexOf(0x0a, this.consumed);
    if (this.versionFirst) this.versionFirstOrThrow(nl);
    if (nl < 0) {
      if (this.data.length - this.consumed > MAX_LINE)
        throw new SshProtocolError("no version line in the first bytes");
      return false;
    }
    if (nl + 1 - this.consumed > MAX_LINE)
      throw new SshProtocolError("line too long before the version");
    if (nl + 1 > MAX_BEFORE_VERSION)
      throw new SshProtocolError(
        `more than ${MAX_BEFORE_VERSION} bytes of lines before the version`,
      );
    const text = this.data.toString("latin1", this.consumed, nl).replace(/\r$/, "");
    this.consumed = nl + 1;
    if (text.startsWith("SSH-")) {
      if (!/^SSH-(2\.0|1\.99)-/.test(text))
        throw new SshProtocolError(`not SSH version 2: ${peerText(text)}`);
      this.version = text;
    }
    return true;
  }

  /** Throws as soon as the first bytes cannot begin a version line (not once a whole line came). */
  private versionFirstOrThrow(nl: number): void {
    const end = Math.min(nl < 0 ? this.data.length : nl + 1, this.consumed + VERSION_PREFIX.length);
    const start = this.data.toString("latin1", this.consumed, end);
    if (!VERSION_PREFIX.startsWith(start) && !start.startsWith(VERSION_PREFIX))
      throw new SshProtocolError(`first line is not an SSH version: ${peerText(start)}`);
  }
}

const VERSION_PREFIX = "SSH-";

/** A reader of SSH's wire types (RFC 4251 5) over a payload. */
export class SshReader {
  private at = 0;
  private readonly buf: Buffer;
  constructor(buf: Buffer) {
    this.buf = buf;
  }

  byte(): number {
    this.need(1);
    return this.buf[this.at++] ?? 0;
  }

  uint32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }

  string(): Buffer {
    const n = this.uint32();
    this.need(n);
    const s = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return s;
  }

  text(): string {
    return this.string().toString("latin1");
  }

  nameList(): string[] {
    const t = this.text();
    return t === "" ? [] : t.split(",");
  }

  skip(n: number): void {
    this.need(n);
    this.at += n;
  }

  private need(n: number): void {
    if (this.at + n > this.buf.length) throw new SshProtocolError("truncated message");
  }
}
