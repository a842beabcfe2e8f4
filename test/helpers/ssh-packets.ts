// Handcrafted SSH binary packets (RFC 4253) for tests of the SSH handler: a string field, a packet
// with its padding (no MAC: before the first key exchange ends), and a client's or server's
// KEXINIT offering one key exchange method and ssh-ed25519 host keys.

/** An SSH string: its length (uint32) and its bytes. */
export function sshString(s: string | Buffer): Buffer {
  const b = typeof s === "string" ? Buffer.from(s) : s;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(b.length);
  return Buffer.concat([length, b]);
}

/** `payload` as a binary packet: length, padding length, payload, then 9 to 16 padding bytes. */
export function sshPacket(payload: Buffer): Buffer {
  const pad = 8 - ((payload.length + 5) % 8) + 8;
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length + pad + 1);
  head[4] = pad;
  return Buffer.concat([head, payload, Buffer.alloc(pad)]);
}

/** A KEXINIT (message 20) offering `kex` and ssh-ed25519, "none" for every other list. */
export const kexinit = (kex: string): Buffer =>
  sshPacket(
    Buffer.concat([
      Buffer.from([20]),
      Buffer.alloc(16),
      sshString(kex),
      sshString("ssh-ed25519"),
      ...Array.from({ length: 8 }, () => sshString("none")),
      Buffer.alloc(5),
    ]),
  );
