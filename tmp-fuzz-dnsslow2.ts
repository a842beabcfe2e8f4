import { readReply } from "./src/dns/answer.ts";
import dnsPacket from "dns-packet";
// CNAME chain n0 -> n1 -> ... using 2-char labels under a base, records listed in reverse order
const N = Number(process.argv[2] ?? 3000);
const alpha = "abcdefghijklmnopqrstuvwxyz0123456789";
const lab = (i: number) => alpha[Math.floor(i / 36) % 36]! + alpha[i % 36]! + (i >= 1296 ? alpha[Math.floor(i / 1296)]! : "");
const answers = [] as any[];
for (let i = N - 1; i >= 0; i--) answers.push({ type: "CNAME", name: `${lab(i)}.e`, ttl: 60, data: `${lab(i + 1)}.e` });
const buf = dnsPacket.encode({ id: 7, type: "response", flags: 0x8180, questions: [{ type: "A", name: `${lab(0)}.e` }], answers } as any);
console.log("bytes", buf.length);
const t0 = performance.now();
const r = readReply(buf, `${lab(0)}.e`);
console.log((performance.now() - t0).toFixed(1), "ms", r.answer?.names.length);
