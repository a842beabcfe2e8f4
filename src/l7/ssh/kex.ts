// The clear-text key exchange (RFC 4253 7): both KEXINITs, the negotiated algorithm (the first of
// the client's that the server also offers), and which server message carries the host key:
// 31 for Diffie-Hellman groups, ECDH, curve25519 and the hybrid post-quantum exchanges
// (sntrup761x25519, mlkem768x25519), 33 for Diffie-Hellman group exchange, whose 31 is the group.
import { SshProtocolError, SshReader } from "./wire.ts";

export const MSG_KEXINIT = 20;
export const MSG_KEX_REPLY = 31;
export const MSG_KEX_GEX_REPLY = 33;

export interface KexInit {
  kex: string[];
  hostKey: string[];
}

export function parseKexInit(payload: Buffer): KexInit {
  const r = new SshReader(payload);
  if (r.byte() !== MSG_KEXINIT) throw new SshProtocolError("not a KEXINIT");
  r.skip(16); // cookie
  const kex = r.nameList();
  const hostKey = r.nameList();
  return { kex, hostKey };
}

/** RFC 4253 7.1: the first algorithm of the client's list that the server supports. */
export function negotiate(client: string[], server: string[]): string | null {
  // a set: either side may offer thousands of names
  const offered = new Set(server);
  return client.find((name) => offered.has(name)) ?? null;
}

/** Families of key exchange whose server reply is message 31 (name prefixes). */
const REPLY_31 = [
  "curve25519-sha256",
  "curve448-sha512",
  "ecdh-sha2-",
  "diffie-hellman-group1-",
  "diffie-hellman-group14-",
  "diffie-hellman-group15-",
  "diffie-hellman-group16-",
  "diffie-hellman-group17-",
  "diffie-hellman-group18-",
  "sntrup761x25519-sha512",
  "mlkem768x25519-sha256",
  "mlkem768nistp256-sha256",
  "mlkem1024nistp384-sha384",
];

/** The server message that carries the host key for `kex`, or null for an exchange moat does not read. */
export function replyMessage(kex: string): number | null {
  if (kex.startsWith("diffie-hellman-group-exchange-")) return MSG_KEX_GEX_REPLY;
  return REPLY_31.some((p) => kex.startsWith(p)) ? MSG_KEX_REPLY : null;
}

/** The host key blob (K_S), the first field of both replies. */
export function hostKeyOfReply(payload: Buffer): Buffer {
  const r = new SshReader(payload);
  r.byte();
  const blob = r.string();
  if (blob.length === 0) throw new SshProtocolError("empty host key");
  return blob;
}
