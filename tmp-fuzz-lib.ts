// shared mutators + runner
let seed = Number(process.env.SEED ?? 12345) >>> 0;
export function rnd(n: number): number {
  seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0;
  return seed % n;
}
const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0x3f, 0x40, 0xc0, 0xfe];
export function mutate(src: Buffer, dict: Buffer[] = []): Buffer {
  let b = Buffer.from(src);
  const rounds = 1 + rnd(4);
  for (let r = 0; r < rounds; r++) {
    const op = rnd(12);
    const at = b.length ? rnd(b.length) : 0;
    switch (op) {
      case 0: if (b.length) b[at] ^= 1 << rnd(8); break;
      case 1: if (b.length) b[at] = rnd(256); break;
      case 2: if (b.length) b[at] = INTERESTING[rnd(INTERESTING.length)]!; break;
      case 3: b = b.subarray(0, rnd(b.length + 1)); break; // truncate
      case 4: { // delete range
        const n = rnd(Math.min(32, b.length - at) + 1);
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + n)]); break;
      }
      case 5: { // duplicate range
        const n = rnd(Math.min(64, b.length - at) + 1);
        const to = rnd(b.length + 1);
        b = Buffer.concat([b.subarray(0, to), b.subarray(at, at + n), b.subarray(to)]); break;
      }
      case 6: { // insert random bytes
        const n = 1 + rnd(16);
        const ins = Buffer.alloc(n); for (let i = 0; i < n; i++) ins[i] = rnd(256);
        b = Buffer.concat([b.subarray(0, at), ins, b.subarray(at)]); break;
      }
      case 7: { // 16-bit length edit
        if (b.length >= 2) { const p = rnd(b.length - 1); const v = [0, 1, 0xffff, 0x7fff, 0x8000, b.readUInt16BE(p) + 1, b.readUInt16BE(p) - 1, rnd(65536)][rnd(8)]!; b.writeUInt16BE(v & 0xffff, p); }
        break;
      }
      case 8: { // 24-bit length edit
        if (b.length >= 3) { const p = rnd(b.length - 2); const v = [0, 0xffffff, b.readUIntBE(p, 3) + 1, rnd(1 << 24)][rnd(4)]!; b.writeUIntBE(v & 0xffffff, p, 3); }
        break;
      }
      case 9: { // 32-bit edit
        if (b.length >= 4) { const p = rnd(b.length - 3); b.writeUInt32BE([0, 0xffffffff, 0x7fffffff, rnd(2 ** 32)][rnd(4)]! >>> 0, p); }
        break;
      }
      case 10: if (dict.length) { // splice dictionary token
        const d = dict[rnd(dict.length)]!;
        b = Buffer.concat([b.subarray(0, at), d, b.subarray(rnd(2) ? at : Math.min(b.length, at + d.length))]);
      } break;
      case 11: { // random bytes tail
        const n = rnd(64); const ins = Buffer.alloc(n); for (let i = 0; i < n; i++) ins[i] = rnd(256);
        b = Buffer.concat([b, ins]); break;
      }
    }
  }
  return b;
}
export interface Stats { iters: number; slow: { ms: number; hex: string; note?: string }[]; errors: Map<string, { count: number; hex: string }> }
export function run(name: string, seconds: number, gen: () => Buffer, target: (b: Buffer) => void, slowMs = 50): Stats {
  const st: Stats = { iters: 0, slow: [], errors: new Map() };
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    const input = gen();
    const t0 = performance.now();
    try { target(input); } catch (e) {
      const err = e as Error;
      const key = `${err?.name}: ${String(err?.message).slice(0, 100)} @ ${String(err?.stack).split("\n")[1]?.trim()}`;
      const cur = st.errors.get(key);
      if (cur) cur.count++; else st.errors.set(key, { count: 1, hex: input.toString("hex").slice(0, 400) });
    }
    const ms = performance.now() - t0;
    if (ms > slowMs && st.slow.length < 20) st.slow.push({ ms, hex: input.toString("hex").slice(0, 400) });
    st.iters++;
  }
  console.log(`== ${name}: ${st.iters} iterations`);
  for (const [k, v] of st.errors) console.log(`  THROW x${v.count}: ${k}\n    input: ${v.hex}`);
  for (const s of st.slow.slice(0, 5)) console.log(`  SLOW ${s.ms.toFixed(1)} ms: ${s.hex.slice(0, 200)}`);
  return st;
}
