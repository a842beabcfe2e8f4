// Both directions of an SSH connection up to the server's host key: fed the bytes as they flow,
// it says how many of the server's bytes may reach the client (everything before the packet
// that carries the host key) and, once known, the server's version and host key.
import { hostKeyOf, type HostKey } from "./host-key.ts";
import {
  hostKeyOfReply,
  MSG_KEXINIT,
  negotiate,
  parseKexInit,
  replyMessage,
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

export class SshHandshake {
  readonly client: SshStream;
  readonly server: SshStream;
  private clientKex: KexInit | null = null;
  private serverKex: KexInit | null = null;
  /** Server bytes that may be forwarded (whole lines and packets before the host key). */
  private safe = 0;
  private seen: SshSeen | null = null;
  private agreed: Agreement | null = null;

  constructor(maxBytes = 64 * 1024) {
    this.client = new SshStream(maxBytes, true);
    this.server = new SshStream(maxBytes);
  }

  /** The client's bytes; throws SshProtocolError on bytes that are not SSH. */
  fromClient(chunk: Buffer): void {
    if (this.seen) return;
    this.client.push(chunk);
    while (!this.clientKex) {
      const p = this.client.next();
      if (!p) break;
      if (p.type === MSG_KEXINIT) this.clientKex = parseKexInit(p.payload);
    }
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

  /** The server's version and host key once the reply carrying it is read. */
  get result(): SshSeen | null {
    return this.seen;
  }

  private advance(): void {
    while (!this.seen) {
      const version = this.server.version;
      const reply = this.agreement()?.reply;
      if (version && reply === null) {
        // an exchange moat does not read: nothing more of the server's is forwarded unjudged
        const kex = this.agreement()?.kex ?? null;
        this.seen = { version, kex, hostKey: null };
        return;
      }
      const mark = this.server.consumed;
      const p = this.server.next();
      if (!p) {
        if (this.server.version) this.safe = this.server.consumed;
        return;
      }
      if (p.type === MSG_KEXINIT && !this.serverKex) this.serverKex = parseKexInit(p.payload);
      else if (reply === undefined && p.type >= 30 && p.type <= 49) {
        // a key exchange reply before the client's KEXINIT was read: hold it and read on later
        this.server.consumed = mark;
        this.safe = mark;
        return;
      } else if (reply !== undefined && p.type === reply && version) {
        const kex = this.agreement()?.kex ?? null;
        this.seen = { version, kex, hostKey: hostKeyOf(hostKeyOfReply(p.payload)) };
        this.safe = p.start;
        return;
      }
      this.safe = p.end;
    }
  }

  /** The reply message number: undefined while a KEXINIT is missing, null for an unknown exchange. */
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
