// The keys of a client's QUIC Initial packets: public by design, derived from the connection ID
// the client chose (RFC 9001 section 5.2 for QUIC v1, RFC 9369 section 3.3 for v2). Anyone on
// the path can read an Initial; moat reads the ClientHello in it and nothing after.
import { createHmac } from "node:crypto";

export const QUIC_V1 = 0x00000001;
export const QUIC_V2 = 0x6b3343cf;

interface VersionKeys {
  salt: Buffer;
  /** HKDF-Expand-Label labels of the key, iv and header-protection key. */
  labels: { key: string; iv: string; hp: string };
  /** The long-header packet type of an Initial (bits 4-5 of the first byte). */
  initialType: number;
  name: "v1" | "v2";
}

const VERSIONS = new Map<number, VersionKeys>([
  [
    QUIC_V1,
    {
      salt: Buffer.from("38762cf7f55934b34d179ae6a4c80cadccbb7f0a", "hex"),
      labels: { key: "quic key", iv: "quic iv", hp: "quic hp" },
      initialType: 0,
      name: "v1",
    },
  ],
  [
    QUIC_V2,
    {
      salt: Buffer.from("0dede3def700a6db819381be6e269dcbf9bd2ed9", "hex"),
      labels: { key: "quicv2 key", iv: "quicv2 iv", hp: "quicv2 hp" },
      initialType: 1,
      name: "v2",
    },
  ],
]);

/** The versions moat can read, with their Initial packet type; undefined for any other. */
export function quicVersion(
  version: number,
): { initialType: number; name: "v1" | "v2" } | undefined {
  return VERSIONS.get(version);
}

export interface InitialKeys {
  /** AES-128-GCM key. */
  key: Buffer;
  /** 12-byte nonce base. */
  iv: Buffer;
  /** AES-128 header-protection key. */
  hp: Buffer;
}

const hmac = (key: Buffer, data: Buffer): Buffer => createHmac("sha256", key).update(data).digest();

/** TLS 1.3's HKDF-Expand-Label with an empty context, for lengths up to one SHA-256 block. */
export function expandLabel(secret: Buffer, label: string, length: number): Buffer {
  const full = Buffer.from(`tls13 ${label}`, "ascii");
  const info = Buffer.concat([
    Buffer.from([length >> 8, length & 0xff, full.length]),
    full,
    Buffer.from([0]),
  ]);
  return hmac(secret, Buffer.concat([info, Buffer.from([1])])).subarray(0, length);
}

/** The client's Initial keys for a QUIC version and the destination connection ID it chose. */
/** The keys last derived, with what they were derived from. */
let last: { version: number; dcid: Buffer; keys: InitialKeys } | undefined;

export function clientInitialKeys(version: number, dcid: Buffer): InitialKeys | undefined {
  const v = VERSIONS.get(version);
  if (!v) return undefined;
  // a datagram's coalesced packets, and a connection's next datagrams, share the version and
  // DCID: their keys are derived once (a datagram of dozens of tiny Initials cost dozens)
  if (last && last.version === version && last.dcid.equals(dcid)) return last.keys;
  const initial = hmac(v.salt, dcid); // HKDF-Extract(salt, dcid)
  const client = expandLabel(initial, "client in", 32);
  const keys = {
    key: expandLabel(client, v.labels.key, 16),
    iv: expandLabel(client, v.labels.iv, 12),
    hp: expandLabel(client, v.labels.hp, 16),
  };
  last = { version, dcid: Buffer.from(dcid), keys };
  return keys;
}
