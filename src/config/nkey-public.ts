// Whether a text is a public user nkey, checked as NATS reads one: base32 of a prefix byte
// ('U': 20 << 3), the 32-byte ed25519 key and a CRC-16 (XMODEM, little-endian) of the two. The
// policy check runs without the NATS client; a key with a bad checksum would be refused only
// when the first signed revision arrives, and then every revision would be.
const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const USER_PREFIX = 20 << 3;

function base32Bytes(text: string): Uint8Array | null {
  const out = new Uint8Array(Math.floor((text.length * 5) / 8));
  let bits = 0;
  let value = 0;
  let at = 0;
  for (const c of text) {
    const v = BASE32.indexOf(c);
    if (v < 0) return null;
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out[at++] = (value >>> (bits - 8)) & 0xff;
      bits -= 8;
    }
  }
  return out;
}

function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const b of bytes) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

export function isPublicUserNkey(text: string): boolean {
  if (!/^U[A-Z2-7]{55}$/.test(text)) return false;
  const raw = base32Bytes(text);
  if (!raw || raw.length !== 35 || raw[0] !== USER_PREFIX) return false;
  return crc16(raw.subarray(0, 33)) === (raw[33]! | (raw[34]! << 8));
}
