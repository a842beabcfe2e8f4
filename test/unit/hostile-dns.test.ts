// DNS messages come from the processes moat watches and from whatever server they ask: a name
// that follows a long chain of compression pointers (each pointing at the one before it) is
// refused, like a pointer loop. Read, a 65,000-byte message of 4,000 records each naming the end
// of an 8,000-pointer chain cost the proxy's event loop ~0.25 s (quadratic in the message's
// length: 16 KB 10 ms, 32 KB 40 ms, 64 KB 220 ms), for every datagram a client sent.
import { test } from "node:test";
import assert from "node:assert/strict";
import dnsPacket from "dns-packet";
import { readAnswer, readQuery, readReply } from "../../src/dns/answer.ts";

/**
 * Header, the root question, then a record whose data is a chain of pointers (each to the one
 * before it, the first to a root name), then records named by a pointer to the chain's end.
 */
function pointerChain(total: number, chainBytes: number, response: boolean): Buffer {
  const b = Buffer.alloc(total);
  let o = 12;
  b[o++] = 0; // question: the root, A, IN
  o = b.writeUInt16BE(1, o);
  o = b.writeUInt16BE(1, o);
  b[o++] = 0; // the chain's record: the root, type 65280, IN, TTL 0, its data
  o = b.writeUInt16BE(0xff00, o);
  o = b.writeUInt16BE(1, o);
  o = b.writeUInt32BE(0, o);
  o = b.writeUInt16BE(chainBytes, o);
  const start = o;
  b[o++] = 0;
  let last = start;
  while (o + 2 <= start + chainBytes) {
    b.writeUInt16BE(0xc000 | last, o);
    last = o;
    o += 2;
  }
  o = start + chainBytes;
  let records = 1;
  while (o + 12 <= total) {
    o = b.writeUInt16BE(0xc000 | last, o);
    o = b.writeUInt16BE(0xff00, o);
    o = b.writeUInt16BE(1, o);
    o = b.writeUInt32BE(0, o);
    o = b.writeUInt16BE(0, o);
    records++;
  }
  b.writeUInt16BE(0x1234, 0);
  b.writeUInt16BE(response ? 0x8180 : 0x0100, 2);
  b.writeUInt16BE(1, 4);
  b.writeUInt16BE(records, 6);
  return b.subarray(0, o);
}

test("a query whose names follow thousands of compression pointers is not read", () => {
  assert.equal(readQuery(pointerChain(65_000, 16_000, false)), null);
});

test("an answer whose names follow thousands of compression pointers is not read", () => {
  const answer = pointerChain(65_000, 16_000, true);
  assert.equal(readAnswer(answer, "."), null);
  const read = readReply(answer, ".");
  assert.equal(read.answer, null);
  assert.equal(read.reply, answer);
});

test("names compressed as encoders do (a few pointers) still read", () => {
  const answer = dnsPacket.encode({
    type: "response",
    id: 7,
    questions: [{ type: "A", name: "www.example.org" }],
    answers: [
      { type: "CNAME", name: "www.example.org", data: "cdn.example.net" },
      { type: "A", name: "cdn.example.net", data: "192.0.2.1", ttl: 60 },
    ],
  });
  assert.deepEqual(readAnswer(answer, "www.example.org")?.addresses, [
    { ip: "192.0.2.1", ttlSeconds: 60, ownerIndex: 1 },
  ]);
  // a record named by a pointer to another record's name, itself a pointer: legal, and read
  const name = Buffer.from("03777777076578616d706c65036f726700", "hex"); // www.example.org
  const record = (pointer: number, ip: number[]) =>
    Buffer.from([0xc0, pointer, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...ip]);
  const head = Buffer.from([0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0]);
  const question = Buffer.concat([name, Buffer.from([0, 1, 0, 1])]);
  const first = 12 + question.length; // where the first record (its name a pointer) starts
  const chained = Buffer.concat([
    head,
    question,
    record(12, [192, 0, 2, 1]),
    record(first, [192, 0, 2, 2]),
  ]);
  assert.deepEqual(
    readAnswer(chained, "www.example.org")?.addresses.map((a) => a.ip),
    ["192.0.2.1", "192.0.2.2"],
  );
});
