// A bound on the compression pointers one DNS name follows. dns-packet follows a name's pointers
// for as long as each points further back, so a name of a 64 KB message can follow thousands of
// them, and thousands of records can each name the end of such a chain: time squared in the
// message's length, for any datagram a local client (or the server it asked) sends. A name of at
// most 255 bytes has at most 127 labels, so no name needs more pointers than that; one that
// follows more is refused before dns-packet reads it, as dns-packet refuses a bad pointer.
import dnsPacket from "dns-packet";

const MAX_POINTERS = 127;
/** A name's bytes (labels and their lengths) past which dns-packet refuses it as too long. */
const MAX_NAME_BYTES = 255;

type NameDecode = ((buf: Buffer, offset?: number, options?: { mail?: boolean }) => string) & {
  bytes: number;
};
/** dns-packet's name codec (its type declarations leave it out); its records read names through it. */
const codec = (dnsPacket as unknown as { name: { decode: NameDecode } }).name;

/** Whether the name at `offset` follows more compression pointers than any name needs. */
export function tooManyPointers(buf: Buffer, offset: number): boolean {
  let at = offset;
  let jumps = 0;
  let bytes = 0;
  while (at < buf.length) {
    const len = buf[at] ?? 0;
    if (len === 0) return false;
    if ((len & 0xc0) === 0xc0) {
      if (++jumps > MAX_POINTERS) return true;
      at = ((len & 0x3f) << 8) | (buf[at + 1] ?? 0);
    } else {
      // too long, or a bad label: dns-packet refuses it itself
      bytes += len + 1;
      if (bytes > MAX_NAME_BYTES) return false;
      at += len + 1;
    }
  }
  return false;
}

let bounded = false;

/** Makes dns-packet refuse a name that follows too many pointers (once; every read after). */
export function boundNamePointers(): void {
  if (bounded) return;
  bounded = true;
  const plain = codec.decode;
  // dns-packet sets `name.decode.bytes` on whichever function is installed: the wrapper's
  codec.decode = Object.assign(
    (buf: Buffer, offset = 0, options?: { mail?: boolean }): string => {
      if (tooManyPointers(buf, offset)) throw new Error("Cannot decode name (too many pointers)");
      return plain(buf, offset, options);
    },
    { bytes: 0 },
  );
}
