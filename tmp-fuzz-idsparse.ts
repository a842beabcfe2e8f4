import { parseSignature } from "./src/config/ids-signature.ts";
const cases: [string, (n: number) => string][] = [
  ["open bracket then many words", (n) => "alert tcp [" + " 1".repeat(n) + " (sid:1;)"],
  ["port digits + x", (n) => "alert tcp any " + "1".repeat(n) + "x -> any any (sid:1;)"],
  ["port digits:digits+x", (n) => "alert tcp any " + "1".repeat(n) + ":" + "1".repeat(n) + "x -> any any (sid:1;)"],
  ["many options", (n) => "alert tcp any any -> any any (" + "nocase;".repeat(n) + "sid:1;)"],
  ["many contents", (n) => "alert tcp any any -> any any (" + 'content:"a";'.repeat(n) + "sid:1;)"],
  ["hex", (n) => 'alert tcp any any -> any any (content:"|' + "0".repeat(2 * n + 1) + '|"; sid:1;)'],
  ["escapes", (n) => 'alert tcp any any -> any any (content:"' + "\\".repeat(2 * n) + '"; sid:1;)'],
  ["unclosed quote", (n) => 'alert tcp any any -> any any (msg:"' + "\\;".repeat(n) + ' sid:1;)'],
];
for (const [name, f] of cases) {
  for (const n of [1000, 10000, 50000]) {
    const s = f(n);
    const t0 = performance.now();
    let r: any;
    try { r = parseSignature(s); } catch (e) { r = "THREW " + (e as Error).name + ": " + (e as Error).message; }
    const ms = performance.now() - t0;
    console.log(name, n, s.length, ms.toFixed(1) + " ms", typeof r === "string" ? r : r.ok ? "ok" : r.problems[0].message.slice(0, 60));
    if (ms > 10000) break;
  }
}
