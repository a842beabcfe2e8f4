import { readFileSync } from "node:fs";
import { rnd, mutate, run } from "./tmp-fuzz-lib.ts";
import { HandshakeReader } from "./src/l7/tls/handshake-reader.ts";
import { parseClientHello, parseServerHello, parseCertificates } from "./src/l7/tls/hello.ts";
import { certificateFacts } from "./src/l7/tls/certificate-facts.ts";
import { clientHello } from "./test/helpers/quic-initial.ts";

const SECS = Number(process.env.SECS ?? 20);
const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const ext = (type: number, body: Buffer) => Buffer.concat([u16(type), u16(body.length), body]);
function withExt(msg: Buffer, extra: Buffer): Buffer {
  // append extension to a clientHello() message (rebuild lengths)
  const body = msg.subarray(4);
  const extStart = 2 + 32 + 1 + 2 + 2 + 2; // legacy, random, sid(0), suites(2), comp
  const extsLen = body.readUInt16BE(extStart);
  const exts = Buffer.concat([body.subarray(extStart + 2, extStart + 2 + extsLen), extra]);
  const nb = Buffer.concat([body.subarray(0, extStart), u16(exts.length), exts]);
  return Buffer.concat([Buffer.from([1, nb.length >> 16, (nb.length >> 8) & 0xff, nb.length & 0xff]), nb]);
}
const hellos = [
  clientHello("example.com", ["h2", "http/1.1"]),
  clientHello("a.b", [], 1200),
  withExt(clientHello("x.test", ["h3"]), ext(0xfe0d, Buffer.alloc(40, 1))),
  withExt(clientHello("y.test", ["h2"]), ext(0x002b, Buffer.from([4, 0x0a, 0x0a, 3, 4]))),
];
function records(msg: Buffer, size: number): Buffer {
  const out: Buffer[] = [];
  for (let at = 0; at < msg.length; at += size) {
    const p = msg.subarray(at, at + size);
    out.push(Buffer.from([22, 3, 1]), u16(p.length), p);
  }
  return Buffer.concat(out);
}
const dict = [Buffer.from([22, 3, 1]), Buffer.from([20, 3, 3, 0, 1, 1]), Buffer.from([21, 3, 3, 0, 2, 2, 40]), Buffer.from([23, 3, 3]), ext(0, Buffer.alloc(0)), ext(16, Buffer.from([0, 0])), ext(43, Buffer.from([0])), Buffer.from([0, 0, 0, 0])];

// 1. HandshakeReader as Flight drives it (no try/catch around next() in the daemon)
run("HandshakeReader(client stream)", SECS, () => {
  const h = hellos[rnd(hellos.length)]!;
  const r = records(h, 1 + rnd(h.length + 10));
  return rnd(3) === 0 ? Buffer.concat([r, records(hellos[rnd(hellos.length)]!, 300)]) : mutate(r, dict);
}, (b) => {
  const reader = new HandshakeReader();
  const step = 1 + rnd(b.length + 1);
  for (let at = 0; at < b.length; at += step) {
    reader.push(b.subarray(at, at + step));
    for (let k = 0; k < 3; k++) {
      const read = reader.next();
      if (read.kind === "message") {
        try { parseClientHello(read.body); } catch (e) { if ((e as Error).name !== "TlsParseError") throw e; }
      } else break;
    }
  }
});

// 2. parseClientHello directly on mutated bodies (handler catches all; look for hangs / non-TlsParseError)
run("parseClientHello(body)", SECS, () => mutate(hellos[rnd(hellos.length)]!.subarray(4), dict), (b) => {
  try { parseClientHello(b); } catch (e) { if ((e as Error).name !== "TlsParseError") throw e; }
});

// 3. ServerHello
const sh = Buffer.concat([u16(0x0303), Buffer.alloc(32, 9), Buffer.from([0]), u16(0x1301), Buffer.from([0]), u16(6), ext(43, u16(0x0304))]);
run("parseServerHello", SECS / 2, () => mutate(sh, dict), (b) => {
  try { parseServerHello(b); } catch (e) { if ((e as Error).name !== "TlsParseError") throw e; }
});

// 4. Certificate message -> certificateFacts (caller wraps both in try; look for hangs)
const der = readFileSync("/tmp/fuzz/c.der");
const u24 = (n: number) => Buffer.from([n >> 16, (n >> 8) & 0xff, n & 0xff]);
const certMsg = Buffer.concat([u24(der.length * 2 + 6), u24(der.length), der, u24(der.length), der]);
let facts = 0;
run("parseCertificates+certificateFacts", SECS / 2, () => mutate(certMsg, [der.subarray(0, 30)]), (b) => {
  let chain: Buffer[];
  try { chain = parseCertificates(b); } catch (e) { if ((e as Error).name !== "TlsParseError") throw e; return; }
  try { certificateFacts(chain, "handshake", []); facts++; } catch { /* caller: unseen */ }
});
console.log("cert facts ok:", facts);
