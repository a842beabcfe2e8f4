// Builds client QUIC Initial packets (the inverse of src/l7/quic's reader), for tests that
// need a ClientHello split across packets and datagrams, as clients with large key shares send.
import { createCipheriv } from "node:crypto";
import { clientInitialKeys, QUIC_V1 } from "../../src/l7/quic/index.ts";

const varint = (v: number): Buffer =>
  v < 64
    ? Buffer.from([v])
    : v < 16384
      ? Buffer.from([0x40 | (v >> 8), v & 0xff])
      : Buffer.from([0x80 | (v >>> 24), (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff]);

/** A CRYPTO frame carrying `data` at `offset`. */
export const cryptoFrame = (offset: number, data: Buffer): Buffer =>
  Buffer.concat([Buffer.from([0x06]), varint(offset), varint(data.length), data]);

/** One protected client Initial packet (v1, 2-byte packet number, no token). */
export function sealInitial(dcid: Buffer, packetNumber: number, frames: Buffer, pad = 0): Buffer {
  const keys = clientInitialKeys(QUIC_V1, dcid)!;
  const payload = Buffer.concat([frames, Buffer.alloc(pad)]);
  const pnLength = 2;
  const head = Buffer.concat([
    Buffer.from([0xc0 | (pnLength - 1), 0, 0, 0, 1, dcid.length]),
    dcid,
    Buffer.from([0, 0]), // no source connection id, no token
    varint(pnLength + payload.length + 16).length === 1
      ? Buffer.from([0x40, pnLength + payload.length + 16])
      : varint(pnLength + payload.length + 16),
  ]);
  const header = Buffer.concat([head, Buffer.from([packetNumber >> 8, packetNumber & 0xff])]);
  const nonce = Buffer.from(keys.iv);
  nonce[11] = nonce[11]! ^ (packetNumber & 0xff);
  nonce[10] = nonce[10]! ^ (packetNumber >> 8);
  const gcm = createCipheriv("aes-128-gcm", keys.key, nonce);
  gcm.setAAD(header);
  const sealed = Buffer.concat([gcm.update(payload), gcm.final(), gcm.getAuthTag()]);
  const sample = sealed.subarray(4 - pnLength, 4 - pnLength + 16);
  const mask = createCipheriv("aes-128-ecb", keys.hp, null).setAutoPadding(false).update(sample);
  const out = Buffer.concat([header, sealed]);
  out[0] = out[0]! ^ (mask[0]! & 0x0f);
  for (let i = 0; i < pnLength; i++) out[head.length + i] = out[head.length + i]! ^ mask[1 + i]!;
  return out;
}

/** A ClientHello message with these extensions' contents (SNI, ALPN, TLS 1.3) and filler. */
export function clientHello(sni: string, alpn: string[], filler = 0): Buffer {
  const ext = (type: number, body: Buffer) =>
    Buffer.concat([
      Buffer.from([type >> 8, type & 0xff, body.length >> 8, body.length & 0xff]),
      body,
    ]);
  const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
  const name = Buffer.from(sni, "ascii");
  const sniBody = Buffer.concat([u16(name.length + 3), Buffer.from([0]), u16(name.length), name]);
  const protos = Buffer.concat(
    alpn.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p)])),
  );
  const exts = Buffer.concat([
    ext(0x0000, sniBody),
    ext(0x0010, Buffer.concat([u16(protos.length), protos])),
    ext(0x002b, Buffer.from([2, 3, 4])),
    // a large key share stands in for a post-quantum one
    ext(0x0033, Buffer.alloc(filler)),
  ]);
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32, 7),
    Buffer.from([0]),
    u16(2),
    Buffer.from([0x13, 0x01]),
    Buffer.from([1, 0]),
    u16(exts.length),
    exts,
  ]);
  return Buffer.concat([
    Buffer.from([1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]),
    body,
  ]);
}

/** A datagram of coalesced packets padded to 1200 bytes, as a client sends its Initials. */
export const datagram = (...packets: Buffer[]): Buffer => {
  const d = Buffer.concat(packets);
  return d.length >= 1200 ? d : Buffer.concat([d, Buffer.alloc(1200 - d.length)]);
};
