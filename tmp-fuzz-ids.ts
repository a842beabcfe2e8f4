import { parseSignature } from "./src/config/ids-signature.ts";
import { IdsMatcher } from "./src/policy/ids-match.ts";

function sig(text: string) {
  const p = parseSignature(text);
  if (!p.ok) throw new Error(JSON.stringify(p.problems));
  return { ...p.signature, text, pos: { file: "x", line: 1, col: 1 } } as any;
}
const stream = (data: string) => ({
  protocol: "tcp" as const, toServer: true,
  sender: { ip: "203.0.113.9", port: 40000 }, receiver: { ip: "10.0.0.1", port: 80 },
  senderLocal: false, data,
});
for (const [n, text] of [
  [2, 'alert tcp any any -> any any (msg:"x"; content:"|00|"; content:"|00|"; content:"ZZ"; sid:1;)'],
  [3, 'alert tcp any any -> any any (msg:"x"; content:"|00|"; content:"|00|"; content:"|00|"; content:"ZZ"; sid:1;)'],
  [3, 'alert tcp any any -> any any (msg:"x"; content:"A"; nocase; content:"A"; nocase; content:"A"; nocase; content:"ZZ"; sid:1;)'],
  [3, 'alert tcp any any -> any any (msg:"x"; content:"|00|"; content:"|00|"; distance:0; content:"|00|"; distance:0; content:"ZZ"; distance:0; sid:1;)'],
] as const) {
  const m = new IdsMatcher([sig(text)]);
  for (const len of [128, 256, 512, 1024]) {
    const data = (text.includes('"A"') ? "a" : "\0").repeat(len);
    const t0 = performance.now();
    const r = m.match(stream(data));
    const ms = performance.now() - t0;
    console.log(n, len, r.length, ms.toFixed(1) + " ms");
    if (ms > 20000) break;
  }
}
