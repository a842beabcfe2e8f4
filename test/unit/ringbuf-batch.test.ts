// A packed ring-buffer batch (u32 LE length, record, pad to 8) read record by record: the event
// path's callback form gives the same records, in order, as the generator.
import { test } from "node:test";
import assert from "node:assert/strict";
import { forEachRecord, records } from "../../src/datapath/ringbuf-batch.ts";

/** A batch packed as the addon packs it. */
function pack(parts: Buffer[]): Buffer {
  const out: Buffer[] = [];
  for (const p of parts) {
    const len = Buffer.alloc(4);
    len.writeUInt32LE(p.length);
    const padded = (4 + p.length + 7) & ~7;
    out.push(len, p, Buffer.alloc(padded - 4 - p.length));
  }
  return Buffer.concat(out);
}

test("forEachRecord gives each record of a packed batch, as records() does", () => {
  const parts = [
    Buffer.from("a"),
    Buffer.alloc(0),
    Buffer.from("0123456789abcdef"),
    Buffer.from("xyz"),
  ];
  const batch = pack(parts);
  const seen: string[] = [];
  forEachRecord(batch, (r) => seen.push(r.toString("hex")));
  assert.deepEqual(
    seen,
    parts.map((p) => p.toString("hex")),
  );
  assert.deepEqual(
    seen,
    [...records(batch)].map((r) => r.toString("hex")),
  );
  forEachRecord(Buffer.alloc(0), () => assert.fail("an empty batch has no record"));
});
