// The clear-text key exchange (RFC 4253 7): both KEXINITs, the negotiated algorithm (the first of
// the client's that the server also offers), and which server message carries the host key:
// 31 for Diffie-Hellman groups, ECDH, curve25519 and the hybrid post-quantum exchanges
// (sntrup761x25519, mlkem768x25519), 33 for Diffie-Hellman group exchange, whose 31 is the group.
// Before that reply, each side may send only the messages of the exchange (RFC 4253 8, RFC 4419 3,
// RFC 5656 4, RFC 8731 3): the relay holds or refuses any other.
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
  if (isGroupExchange(kex)) return MSG_KEX_GEX_REPLY;
  return REPLY_31.some((p) => kex.startsWith(p)) ? MSG_KEX_REPLY : null;
}

const NONE: ReadonlySet<number> = new Set();
/** RFC 4419: the client's request (34, or 30 in its old form) and its share (32). */
const GEX_CLIENT: ReadonlySet<number> = new Set([30, 32, 34]);
/** The client's init of the other exchanges (30), and of group exchange as a guess (34). */
const FIRST_CLIENT: ReadonlySet<number> = new Set([30, 34]);
const INIT_CLIENT: ReadonlySet<number> = new Set([30]);
/** RFC 4419: the group (31) the server sends before its reply (33). */
const GEX_SERVER: ReadonlySet<number> = new Set([31]);

const isGroupExchange = (kex: string) => kex.startsWith("diffie-hellman-group-exchange-");

/**
 * The messages a client may send before the server's reply: those of `kex`, or (undefined: not
 * negotiated yet) the first message of any exchange moat reads (the guess of RFC 4253 7.1).
 */
export function clientKexMessages(kex: string | null | undefined): ReadonlySet<number> {
  if (kex === undefined) return FIRST_CLIENT;
  if (kex === null) return NONE;
  return isGroupExchange(kex) ? GEX_CLIENT : INIT_CLIENT;
}

/** The messages of `kex` a server sends before its reply (the client needs them to go on). */
export function serverKexMessages(kex: string | null): ReadonlySet<number> {
  return kex !== null && isGroupExchange(kex) ? GEX_SERVER : NONE;
}

/** The host key blob (K_S), the first field of both replies. */
export function hostKeyOfReply(payload: Buffer): Buffer {
  const r = new SshReader(payload);
  r.byte();
  const blob = r.string();
  if (blob.length === 0) throw new SshProtocolError("empty host key");
  return blob;
}
