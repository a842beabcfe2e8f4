// B1 / B2 (../shared/design/performance.md): what judging a NEW connection and passing an
// ESTABLISHED packet cost, for 10 .. 100k mixed rules, against a floor measured in the same run
// (the same program with no policy: parse, pass). BPF_PROG_TEST_RUN on the XDP program,
// 4096 distinct packets, median of 5 rounds. Checks the verdicts against the reference evaluator.
//
//   node bench/classifier.ts            writes bench/results/classifier.json
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, release } from "node:os";
import { Datapath } from "../src/datapath/datapath.ts";
import { compile } from "../src/policy/compile/compile.ts";
import { evaluate } from "../src/policy/evaluator.ts";
import type { PolicyModel } from "../src/config/index.ts";
import { packet } from "../test/helpers/packets.ts";
import { anchorXdp } from "../test/helpers/xdp-anchor.ts";
import { mixedModel } from "./compile.ts";

const DISTINCT = 4096;
const ROUNDS = 5;
const SIZES = [10, 1000, 10_000, 100_000];
const LOCAL = "10.0.0.1";

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/** Distinct SYNs from remote addresses spread over the whole space to well-known ports. */
function frames(seed: number): { data: Buffer; src: string; sport: number; dport: number }[] {
  const out = [];
  let s = seed;
  for (let i = 0; i < DISTINCT; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const src = `${(s >>> 24) & 255}.${(s >>> 16) & 255}.${(s >>> 8) & 255}.${s & 255}`;
    const sport = 1024 + (i % 60000);
    const dport = 1 + (s % 65000);
    out.push({
      data: packet({ src, dst: LOCAL, proto: "tcp", sport, dport, flags: "S" }),
      src,
      sport,
      dport,
    });
  }
  return out;
}

/** ns per packet: each distinct packet run once (NEW), median over packets and rounds. */
function newCost(dp: Datapath, packets: ReturnType<typeof frames>): number {
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    dp.clearConntrack();
    rounds.push(median(packets.map((p) => dp.xdp.testRun({ data: p.data, repeat: 1 }).duration)));
  }
  return median(rounds);
}

/** ns per packet of a tracked connection: 4096 connections, 25 repeats each, median. */
function establishedCost(dp: Datapath, packets: ReturnType<typeof frames>): number {
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    rounds.push(median(packets.map((p) => dp.xdp.testRun({ data: p.data, repeat: 25 }).duration)));
  }
  return median(rounds);
}

function checkVerdicts(dp: Datapath, model: PolicyModel, packets: ReturnType<typeof frames>): void {
  dp.clearConntrack();
  for (const p of packets.slice(0, 256)) {
    const want = evaluate(model, {
      direction: "ingress",
      family: 4,
      protocol: "tcp",
      local: { ip: LOCAL, port: p.dport },
      remote: { ip: p.src, port: p.sport },
    });
    const got = dp.xdp.testRun({ data: p.data }).retval === 1 ? "blocked" : "passed";
    const expected = want.verdict === "blocked" ? "blocked" : "passed";
    if (got !== expected) throw new Error(`verdict mismatch for ${p.src}:${p.sport} -> ${p.dport}`);
  }
}

const dp = Datapath.start({ interfaces: [], pinRoot: null });
const anchor = anchorXdp(dp.xdp);
const packets = frames(7);
console.error("measuring the floor");
const floorNew = newCost(dp, packets);
const floorEst = establishedCost(dp, packets);
const rows = [];
const raw: Record<string, unknown> = { floorNew, floorEst };
for (const n of SIZES) {
  console.error(`${n} rules`);
  const model = mixedModel(n);
  // random remotes mostly miss the rules: the kernel walks every table either way (no early exit)
  const image = compile(model);
  dp.apply(image);
  checkVerdicts(dp, model, packets);
  const nw = newCost(dp, packets);
  const est = establishedCost(dp, packets);
  rows.push({
    rules: n,
    "NEW ns": Math.round(nw),
    "NEW - floor": Math.round(nw - floorNew),
    "ESTABLISHED ns": Math.round(est),
    "EST - floor": Math.round(est - floorEst),
  });
}
anchor.release();
dp.stop();
const at10 = rows[0]?.["NEW ns"] ?? 1;
const at100k = rows.at(-1)?.["NEW ns"] ?? 0;
console.log(
  `floor (no policy): NEW ${Math.round(floorNew)} ns, ESTABLISHED ${Math.round(floorEst)} ns`,
);
console.table(rows);
console.log(`B1 ratio NEW(100k) / NEW(10) = ${(at100k / at10).toFixed(2)} (bar <= 1.5)`);

const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
mkdirSync("bench/results", { recursive: true });
writeFileSync(
  "bench/results/classifier.json",
  JSON.stringify(
    {
      bench: "B1/B2 classifier",
      commit,
      kernel: release(),
      cpu: cpus()[0]?.model,
      jit: readFileSync("/proc/sys/net/core/bpf_jit_enable", "utf8").trim(),
      rows,
      raw,
    },
    null,
    2,
  ),
);
