// The sniffer's byte-at-a-time scan tells the same as the grammar it implements, written the
// longer way (the head read as latin1 text, regular expressions): every prefix of each start,
// random extensions and corruptions; and a connection's sniffer resuming where it stopped
// answers as sniff from the start does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { sniff, sniffer } from "../../../src/l7/sniff.ts";
import { sniffAsText } from "../../helpers/sniff-model.ts";

const STARTS = [
  "SSH-2.0-x\r\n",
  "GET / HTTP/1.1\r\n",
  "GET  /admin HTTP/1.1\r\n",
  "GET\t/admin HTTP/1.1\r\n",
  "GET /admin HTTP/1.1 \r\n",
  " GET /admin HTTP/1.1\r\n",
  "\r\rGET /admin HTTP/1.1\r\n",
  "GET /admin\r\n",
  "POST /admin\r\n",
  "PUT /a b HTTP/1.0\n",
  "X /a\xa0HTTP/1.1\x85\n",
  "PRI * HTTP/2.0\r\n\r\nSM",
  "OPTIONS * x",
  "\r\n\nPROPFIND /a HTTP/1.0\n",
  "HELO x\r\n",
  "GET / HTTP/11\r\n",
  "\x80\x3e\x01\x03\x03",
  "\xa0GET / HTTP/1.1\n",
];

test("sniff tells every prefix and extension of each start, and other bytes, as the grammar does", () => {
  const heads: Buffer[] = [];
  for (const t of STARTS)
    for (let n = 0; n <= t.length; n++) heads.push(Buffer.from(t.slice(0, n), "latin1"));
  let seed = 11;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < 8000; i++) {
    const base = STARTS[Math.floor(random() * STARTS.length)] ?? "";
    const cut = base.slice(0, Math.floor(random() * (base.length + 1)));
    const bytes = Buffer.from(cut, "latin1");
    const out = Buffer.concat([bytes, Buffer.from([Math.floor(random() * 256)])]);
    if (random() < 0.3) out[Math.floor(random() * out.length)] = Math.floor(random() * 256);
    heads.push(out, Buffer.concat([out, Buffer.from("\n")]));
  }
  for (const h of heads)
    assert.equal(sniff(h), sniffAsText(h), JSON.stringify(h.toString("latin1")));
});

test("a connection's sniffer, fed its head as it grows a byte at a time, answers as sniff does", () => {
  for (const t of [...STARTS, "GET /a HTTP/1.1\r\nHost: a\r\n", "G(x"]) {
    const grown = sniffer();
    for (let n = 1; n <= t.length; n++) {
      const head = Buffer.from(t.slice(0, n), "latin1");
      assert.equal(grown(head), sniff(head), JSON.stringify(t.slice(0, n)));
    }
  }
});
