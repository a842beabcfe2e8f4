// Both directions of an SSH connection up to the server's host key: fed the bytes as they flow,
// it says how many bytes of each side may reach the other before the verdict, and, once known,
// the server's version and host key. Only the key exchange's first messages pass: the client's
// version line, KEXINIT and the exchange's init (a client that sends any other message, or more
// than a small budget, is refused); the server's lines before its version, its version, KEXINIT
// and the messages of the exchange before its reply (group exchange's group). Any other server
// message is held, with all after it, until the verdict.
import { hostKeyOf, type HostKey } from "./host-key.ts";
import {
  clientKexMessages,
  hostKeyOfReply,
  MSG_KEXINIT,
  negotiate,
  parseKexInit,
  replyMessage,
  serverKexMessages,
  type KexInit,
} from "./kex.ts";
import { SshStream } from "./wire.ts";

export interface SshSeen {
  /** The server's version line, e.g. "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u6". */
  version: string;
  /** The negotiated key exchange; null when the lists share none. */
  kex: string | null;
  /** null: the key exchange is one moat does not read (the key is not seen). */
  hostKey: HostKey | null;
}

interface Agreement {
  kex: string | null;
  reply: number | null;
}

/**
 * The most a client may send before the verdict: its version line, KEXINIT (~1.5 KiB from
 * OpenSSH) and the exchange's init (at most ~1.7 KiB, mlkem1024nistp384), a guess included.
 */
export const CLIENT_BYTES_BEFORE_VERDICT = 16 * 1024;

export class SshHandshake {
  readonly client: SshStream;
  readonly server: SshStream;
  private clientKex: KexInit | null = null;
  private serverKex: KexInit | null = null;
  /** Server bytes that may be forwarded (whole lines and packets before the host key). */
  private safe = 0;
  /** A server message that may not reach the client before the verdict was read. */
  private holding = false;
  private refusal: string | null = null;
  /** Client bytes that may be forwarded (its version line and vetted packets). */
  private clientSafe = 0;
  private seen: SshSeen | null = null;
  private agreed: Agreement | null = null;

  constructor(maxBytes = 64 * 1024, clientBytes = CLIENT_BYTES_BEFORE_VERDICT) {
    this.client = new SshStream(clientBytes, true);
    this.server = new SshStream(maxBytes);
  }

  /**
   * The client's bytes; throws SshProtocolError on bytes that are not SSH. A message other than
   * the key exchange's, or more than the budget, sets `refused` and ends the reading.
   */
  fromClient(chunk: Buffer): void {
    if (this.seen || this.refusal) return;
    const room = this.client.room;
    this.client.push(room < chunk.length ? chunk.subarray(0, room) : chunk);
    // an exchange moat does not read is judged at once: its messages wait for the verdict
    while (!this.refusal && this.agreement()?.reply !== null) {
      const p = this.client.next();
      if (!p) break;
      this.refuseUnless(p.type);
      if (p.type === MSG_KEXINIT && !this.clientKex) this.clientKex = parseKexInit(p.payload);
    }
    // a message refused as soon as its first bytes say what it is
    const next = this.client.nextType();
    if (next !== null && this.agreement()?.reply !== null) this.refuseUnless(next);
    if (!this.refusal && room < chunk.length)
      this.refusal = `more than ${this.client.length} bytes before the host key`;
    if (!this.refusal && this.client.version !== null) this.clientSafe = this.client.consumed;
    this.advance();
  }

  /** The server's bytes; throws SshProtocolError on bytes that are not SSH. */
  fromServer(chunk: Buffer): void {
    if (this.seen) return;
    this.server.push(chunk);
    this.advance();
  }

  /** How many of the server's bytes (from its first) may reach the client now. */
  get forwardable(): number {
    return this.safe;
  }

  /** How many of the client's bytes (from its first) may reach the server now: whole and vetted. */
  get clientForwardable(): number {
    return this.clientSafe;
  }

  /** The server's version and host key once the reply carrying it is read. */
  get result(): SshSeen | null {
    return this.seen;
  }

  /** Why the client's bytes may not all reach the server (the connection is refused), or null. */
  get refused(): string | null {
    return this.refusal;
  }

  /** A client's message before the verdict: its KEXINIT once, then the exchange's messages. */
  private refuseUnless(type: number): void {
    if (this.refusal) return;
    const allowed =
      type === MSG_KEXINIT ? !this.clientKex : clientKexMessages(this.agreement()?.kex).has(type);
    if (!allowed) this.refusal = `message ${type} before the host key`;
  }

  private advance(): void {
    while (!this.seen) {
      const version = this.server.version;
      const agreed = this.agreement();
      const reply = agreed?.reply;
      if (version && reply === null) {
        // an exchange moat does not read: nothing more of the server's is forwarded unjudged
        this.seen = { version, kex: agreed?.kex ?? null, hostKey: null };
        return;
      }
      const mark = this.server.consumed;
      const p = this.server.next();
      if (!p) {
        if (this.server.version && !this.holding) this.safe = this.server.consumed;
        return;
      }
      // the lines, version and packets before this one may go on (none was held)
      if (!this.holding) this.safe = p.start;
      if (reply === undefined && p.type >= 30 && p.type <= 49) {
        // a key exchange message before the client's KEXINIT was read: read it again later
        this.server.consumed = mark;
        return;
      }
      if (agreed && p.type === reply && version) {
        this.seen = { version, kex: agreed.kex, hostKey: hostKeyOf(hostKeyOfReply(p.payload)) };
        return;
      }
      // the server's KEXINIT, and what the exchange sends before the reply, reach the client
      if (p.type === MSG_KEXINIT && !this.serverKex) this.serverKex = parseKexInit(p.payload);
      else if (!agreed || !serverKexMessages(agreed.kex).has(p.type)) this.holding = true;
      if (!this.holding) this.safe = p.end;
    }
  }

  /**
   * The exchange both sides' KEXINITs agree on and its reply's message (null: one moat does not
   * read), worked out once both are read: not again for each packet after them (a side may send
   * thousands of names, and of packets).
   */
  private agreement(): Agreement | null {
    if (!this.agreed && this.clientKex && this.serverKex) {
      const kex = negotiate(this.clientKex.kex, this.serverKex.kex);
      this.agreed = { kex, reply: kex ? replyMessage(kex) : null };
    }
    return this.agreed;
  }
}
