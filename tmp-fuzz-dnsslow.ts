import { readQuery, readReply } from "./src/dns/answer.ts";

// header + chain of K pointers (each pointing at the previous) + Q questions each pointing at the chain end
function chainQuery(K: number, Q: number, response = false): Buffer {
  const parts: number[] = [];
  const hdr = Buffer.alloc(12);
  hdr.writeUInt16BE(0x1234, 0);
  hdr.writeUInt16BE(response ? 0x8180 : 0x0100, 2);
  hdr.writeUInt16BE(Q, 4);
  parts.push(...hdr);
  // first question: a real name "a" at offset 12 then the chain lives inside question 1? Simpler:
  // question 1 name: \x01a\x00 at 12..14, type/class
  parts.push(1, 0x61, 0, 0, 1, 0, 1); // offsets 12..18
  let prev = 12;
  // chain: extra questions whose names are pointers? pointers must be part of a parsed name; but
  // dns-packet only parses names it reaches. Put the chain as names of questions 2..K+1? Instead
  // put the chain inside question 2's name is impossible. So: questions i = pointer to prev pointer.
  for (let i = 0; i < K; i++) {
    const at = parts.length;
    parts.push(0xc0 | (prev >> 8), prev & 0xff, 0, 1, 0, 1);
    prev = at;
  }
  for (let i = 0; i < Q; i++) parts.push(0xc0 | (prev >> 8), prev & 0xff, 0, 1, 0, 1);
  const b = Buffer.from(parts);
  b.writeUInt16BE(1 + K + Q, 4);
  return b;
}
for (const [K, Q] of [[1000, 1000], [5000, 5000], [5450, 5450]]) {
  const q = chainQuery(K, Q);
  const t0 = performance.now();
  const r = readQuery(q);
  console.log("query", q.length, "bytes", (performance.now() - t0).toFixed(1), "ms", r?.name);
}
