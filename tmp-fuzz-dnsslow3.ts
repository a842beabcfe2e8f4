import { readReply, readQuery } from "./src/dns/answer.ts";
import dnsPacket from "dns-packet";
const CH = [...Array(94).keys()].map((x) => x + 0x21).filter((c) => c !== 0x2e && !(c >= 0x41 && c <= 0x5a));
const alpha = "abcdefghijklmnopqrstuvwxyz0123456789";
function build(N: number): Buffer {
  const b: number[] = [];
  const hdr = Buffer.alloc(12);
  hdr.writeUInt16BE(7, 0); hdr.writeUInt16BE(0x8180, 2); hdr.writeUInt16BE(1, 4); hdr.writeUInt16BE(N, 6);
  b.push(...hdr);
  b.push(1, 0x71, 1, 0x65, 0, 0, 1, 0, 1); // q: aa.e A IN ; "e" label at 15
  let prevName = 12;
  for (let i = 0; i < N; i++) {
    if (i === 0) b.push(0xc0, 12); else b.push(2, CH[i % CH.length]!, CH[Math.floor(i / CH.length)]!, 0xc0, 14);
    b.push(0, 5, 0, 1, 0, 0, 0, 60, 0, 5);
    const rd = b.length;
    b.push(2, CH[(i + 1) % CH.length]!, CH[Math.floor((i + 1) / CH.length)]!, 0xc0, 14);
    prevName = rd;
  }
  return Buffer.from(b);
}
const N = Number(process.argv[2] ?? 3850);
const buf = build(N);
console.log("bytes", buf.length, CH.length);
try { dnsPacket.decode(buf); } catch (e) { console.log(e); }
for (let k = 0; k < 3; k++) {
  const t0 = performance.now();
  const r = readReply(buf, "q.e");
  console.log((performance.now() - t0).toFixed(1), "ms chain", r.answer?.names.length);
}
console.log(buf.subarray(0, 60).toString("hex"));
const m: any = dnsPacket.decode(buf);
const r = readReply(buf, "q.e").answer!;
const last = r.names[r.names.length - 1];
console.log(JSON.stringify(last), m.answers.filter((a: any) => a.data === last || a.name.toLowerCase() === last).map((a: any) => [a.name, a.data]));
