// How long loading moat's programs takes (the kernel's verifier: most of a daemon's start), and
// the verifier's work per program: the instructions it processed, a count that is the same on a
// busy machine as on a quiet one (bench/verifier-stats.c, built here with cc and libbpf).
// Usage: node bench/program-load.ts [loads, default 3] [object, default build/bpf/moat.bpf.o]
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const loads = Number(process.argv[2] ?? 3);
const object = process.argv[3] ?? "build/bpf/moat.bpf.o";
const dir = mkdtempSync(join(tmpdir(), "moat-verifier-stats-"));
try {
  const exe = join(dir, "verifier-stats");
  execFileSync("cc", ["-O2", "-Wall", "-o", exe, "bench/verifier-stats.c", "-lbpf", "-lelf"]);
  const walls: number[] = [];
  for (let i = 0; i < loads; i++) {
    const out = execFileSync(exe, [object], { encoding: "utf8" });
    if (i === 0) process.stdout.write(out);
    walls.push(Number(/object load (\d+) ms/.exec(out)?.[1]));
  }
  walls.sort((a, b) => a - b);
  console.log(
    `object load: ${walls.join(", ")} ms; median ${walls[Math.floor(walls.length / 2)]} ms`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
