// QUIC's CRYPTO stream carries TLS handshake messages without TLS records: its ClientHello is
// read by the same parser as a TLS connection's (../tls/hello.ts), so a name, an ALPN or an ECH
// offer means the same over QUIC as over TCP.
import { TlsParseError } from "../tls/cursor.ts";
import { HANDSHAKE, parseClientHello as parseBody, type ClientHello } from "../tls/hello.ts";

export type ClientHelloFacts = ClientHello;

/** Whether `bytes` start with a whole ClientHello message: its length, else undefined. */
export function clientHelloLength(bytes: Buffer): number | undefined {
  if (bytes.length < 4 || bytes[0] !== HANDSHAKE.clientHello) return undefined;
  const length = 4 + bytes.readUIntBE(1, 3);
  return bytes.length >= length ? length : undefined;
}

/** Parses a whole ClientHello handshake message (type, u24 length, body); undefined if malformed. */
export function parseClientHello(message: Buffer): ClientHelloFacts | undefined {
  const length = clientHelloLength(message);
  if (length === undefined) return undefined;
  try {
    return parseBody(message.subarray(4, length));
  } catch (err) {
    if (err instanceof TlsParseError) return undefined;
    throw err;
  }
}
