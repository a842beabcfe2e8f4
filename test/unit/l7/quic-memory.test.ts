// What a QUIC flow waiting for its ClientHello holds (docs/l7-quic.md): nothing until an Initial
// decrypts, then about what the ClientHello announces (at most 16 KiB of CRYPTO bytes and their
// map), and nothing again once the ClientHello is read or cannot be.
import { test } from "node:test";
import assert from "node:assert/strict";
import { QuicInitialReader } from "../../../src/l7/quic/index.ts";
import { clientHello, cryptoFrame, datagram, sealInitial } from "../../helpers/quic-initial.ts";

const dcid = Buffer.from("0011223344556677", "hex");
const LIMIT = 16384;
/** CRYPTO bytes plus a bit per byte for which ones came. */
const cost = (n: number) => n + Math.ceil(n / 8);

test("a flow holds nothing before an Initial decrypts, and what its ClientHello needs after", () => {
  const junk = new QuicInitialReader();
  junk.feed(Buffer.alloc(1200, 0x41));
  junk.feed(Buffer.alloc(1200, 0x41));
  assert.equal(junk.heldBytes, 0, "an unreadable flow");

  const hello = clientHello("example.org", ["h3"], 2500);
  const r = new QuicInitialReader();
  assert.equal(
    r.feed(datagram(sealInitial(dcid, 0, cryptoFrame(0, hello.subarray(0, 1000))))),
    undefined,
  );
  assert.ok(r.heldBytes > 0, "the first part is held");
  assert.ok(
    r.heldBytes <= cost(hello.length),
    `${r.heldBytes} for a ${hello.length}-byte ClientHello`,
  );
  const second = datagram(sealInitial(dcid, 1, cryptoFrame(1000, hello.subarray(1000))));
  assert.equal(r.feed(second)?.sni, "example.org");
  assert.equal(r.heldBytes, 0, "read: released");
});

test("a ClientHello over the bound: given up at once, nothing held", () => {
  const hello = clientHello("example.org", ["h3"], LIMIT + 100);
  const r = new QuicInitialReader();
  r.feed(datagram(sealInitial(dcid, 0, cryptoFrame(0, hello.subarray(0, 1100)))));
  assert.equal(r.hopeless, true);
  assert.equal(r.heldBytes, 0);
});

test("4096 unreadable flows hold nothing; a stream never holds more than its bound", () => {
  let total = 0;
  for (let i = 0; i < 4096; i++) {
    const r = new QuicInitialReader();
    r.feed(Buffer.alloc(1200, 0x41));
    total += r.heldBytes;
  }
  assert.equal(total, 0);
  const r = new QuicInitialReader();
  // a chunk far out (a gap before it) is held only within the bound
  r.feed(datagram(sealInitial(dcid, 0, cryptoFrame(LIMIT - 10, Buffer.alloc(1000, 1)))));
  assert.ok(r.heldBytes <= cost(LIMIT), String(r.heldBytes));
});
