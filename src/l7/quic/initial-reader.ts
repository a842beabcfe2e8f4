// One QUIC flow's first client datagrams -> its ClientHello: Initial packets decrypted, CRYPTO
// frames reassembled across packets and datagrams (a ClientHello with post-quantum key shares
// spans two), the ClientHello read once it is whole.
import { clientHelloLength, parseClientHello, type ClientHelloFacts } from "./client-hello.ts";
import { CryptoStream, cryptoFrames } from "./crypto-frames.ts";
import { readInitials } from "./initial-packet.ts";

export interface QuicClientHello extends ClientHelloFacts {
  /** The QUIC version of the Initial packets. */
  quicVersion: "v1" | "v2";
}

/** The most CRYPTO bytes held per flow (a ClientHello is a few KiB). */
const CRYPTO_LIMIT = 16384;

export class QuicInitialReader {
  /** Made by the first Initial that decrypts, dropped once the flow is read or given up. */
  private stream: CryptoStream | undefined;
  private version: "v1" | "v2" | undefined;
  private dcid: Buffer | undefined;
  private done = false;
  private givenUp = false;
  private unread = false;

  /** Adds one datagram; the ClientHello once it is whole (once), else undefined. */
  feed(datagram: Buffer): QuicClientHello | undefined {
    if (this.done || this.givenUp) return undefined;
    for (const packet of readInitials(datagram)) {
      // the client's first Initials share the destination connection ID it chose
      if (this.dcid && !this.dcid.equals(packet.dcid)) continue;
      this.dcid ??= Buffer.from(packet.dcid);
      this.version ??= packet.version;
      this.stream ??= new CryptoStream(CRYPTO_LIMIT);
      for (const chunk of cryptoFrames(packet.payload)) this.stream.add(chunk);
    }
    if (!this.stream) return undefined;
    const bytes = this.stream.prefix();
    if (hopeless(bytes)) {
      this.givenUp = true;
      this.unread = true;
      this.stream = undefined;
      return undefined;
    }
    const length = clientHelloLength(bytes);
    if (length === undefined || !this.version) return undefined;
    this.done = true;
    this.stream = undefined;
    const hello = parseClientHello(bytes.subarray(0, length));
    if (!hello) this.unread = true;
    return hello ? { ...hello, quicVersion: this.version } : undefined;
  }

  /**
   * Initials decrypted, but what they carry is no ClientHello moat can read (malformed, two server
   * names, another handshake message first, or more than it holds): its facts are unseen.
   */
  get unreadable(): boolean {
    return this.unread;
  }

  /** The CRYPTO stream cannot hold a whole ClientHello: nothing more will come of this flow. */
  get hopeless(): boolean {
    return this.givenUp;
  }

  /** Bytes this flow holds for its CRYPTO stream. */
  get heldBytes(): number {
    return this.stream?.heldBytes ?? 0;
  }
}

const hopeless = (bytes: Buffer): boolean =>
  bytes.length >= 4 && (bytes[0] !== 1 || 4 + bytes.readUIntBE(1, 3) > CRYPTO_LIMIT);

/** The ClientHello of datagrams that hold a whole one (a test's or a capture's). */
export function readQuicClientHello(datagrams: Buffer[]): QuicClientHello | undefined {
  const reader = new QuicInitialReader();
  for (const d of datagrams) {
    const hello = reader.feed(d);
    if (hello) return hello;
  }
  return undefined;
}
