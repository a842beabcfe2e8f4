// A UDP datagram's client Initial packets, decrypted: the long header read, header protection
// removed (AES-128-ECB mask), the payload opened (AES-128-GCM with the header as associated
// data). Coalesced packets are walked; 0-RTT and Handshake packets are skipped (their keys are
// not public); a packet that does not authenticate is dropped, never guessed at.
import { createCipheriv, createDecipheriv } from "node:crypto";
import { clientInitialKeys, quicVersion } from "./initial-keys.ts";
import { Reader } from "./reader.ts";

export interface InitialPacket {
  version: "v1" | "v2";
  dcid: Buffer;
  scid: Buffer;
  packetNumber: number;
  /** The decrypted frames. */
  payload: Buffer;
}

const TAG = 16;
const SAMPLE = 16;

/** RFC 9000 14.1: a server discards a client's Initial in a datagram shorter than this. */
const MIN_INITIAL_DATAGRAM = 1200;

/** The client Initial packets in one datagram, decrypted, in order. */
export function readInitials(datagram: Buffer): InitialPacket[] {
  const out: InitialPacket[] = [];
  // what no server reads must not name the flow (a decoy ClientHello before the real one)
  if (datagram.length < MIN_INITIAL_DATAGRAM) return out;
  let at = 0;
  while (at < datagram.length) {
    const next = readLongPacket(datagram, at, out);
    if (next === undefined) break;
    at = next;
  }
  return out;
}

/** Reads the long-header packet at `start`; returns where the next one starts (undefined: stop). */
function readLongPacket(d: Buffer, start: number, out: InitialPacket[]): number | undefined {
  const r = new Reader(d, start);
  const first = r.u8();
  // a short header (1-RTT) runs to the end of the datagram
  if (first === undefined || (first & 0x80) === 0) return undefined;
  const versionNumber = r.u32();
  const version = versionNumber === undefined ? undefined : quicVersion(versionNumber);
  if (versionNumber === undefined || !version) return undefined;
  const dcidLength = r.u8();
  if (dcidLength === undefined || dcidLength > 20) return undefined;
  const dcid = r.bytes(dcidLength);
  const scidLength = r.u8();
  if (!dcid || scidLength === undefined || scidLength > 20) return undefined;
  const scid = r.bytes(scidLength);
  const type = (first >> 4) & 3;
  const initial = type === version.initialType;
  if (initial) {
    const tokenLength = r.varint();
    if (tokenLength === undefined || !r.bytes(tokenLength)) return undefined;
  }
  const length = r.varint();
  if (!scid || length === undefined) return undefined;
  const pnOffset = r.at;
  const end = pnOffset + length;
  if (end > d.length) return undefined;
  if (!initial) return end;
  const packet = openInitial(d, start, pnOffset, end, versionNumber, dcid);
  if (packet) out.push({ version: version.name, dcid, scid, ...packet });
  return end;
}

function openInitial(
  d: Buffer,
  start: number,
  pnOffset: number,
  end: number,
  version: number,
  dcid: Buffer,
): { packetNumber: number; payload: Buffer } | undefined {
  const keys = clientInitialKeys(version, dcid);
  if (!keys || pnOffset + 4 + SAMPLE > end) return undefined;
  const sample = d.subarray(pnOffset + 4, pnOffset + 4 + SAMPLE);
  const ecb = createCipheriv("aes-128-ecb", keys.hp, null).setAutoPadding(false);
  const mask = ecb.update(sample);
  const header = Buffer.from(d.subarray(start, pnOffset + 4));
  header[0] = header[0]! ^ (mask[0]! & 0x0f);
  const pnLength = (header[0]! & 3) + 1;
  let packetNumber = 0;
  const pnAt = pnOffset - start;
  for (let i = 0; i < pnLength; i++) {
    header[pnAt + i] = header[pnAt + i]! ^ mask[1 + i]!;
    packetNumber = packetNumber * 256 + header[pnAt + i]!;
  }
  const aad = header.subarray(0, pnAt + pnLength);
  const body = d.subarray(pnOffset + pnLength, end);
  if (body.length < TAG) return undefined;
  const nonce = Buffer.from(keys.iv);
  // the first packets' numbers are small: the truncated number is the full one
  for (let i = 0, n = packetNumber; i < 6; i++, n = Math.floor(n / 256))
    nonce[11 - i] = nonce[11 - i]! ^ (n & 0xff);
  try {
    const gcm = createDecipheriv("aes-128-gcm", keys.key, nonce);
    gcm.setAAD(aad);
    gcm.setAuthTag(body.subarray(body.length - TAG));
    const payload = Buffer.concat([gcm.update(body.subarray(0, body.length - TAG)), gcm.final()]);
    return { packetNumber, payload };
  } catch {
    return undefined;
  }
}
