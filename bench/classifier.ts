// B1 / B2 (docs/performance.md): what judging a NEW connection and passing an
// ESTABLISHED packet cost, for 10 .. 100k mixed rules, against a floor measured in the same run
// (the same program with no policy: parse, count, pass). BPF_PROG_TEST_RUN of the XDP program
// with repeat = 1e5, the program's bench knobs rotating the source over 4096 addresses spread
// over the whole v4 space (bpf/include/bench.h); NEW runs make every run a new connection.
// Median of 5 rounds. Beside them, the table floor: the same probes through the connection table
// alone (bench/table-floor.ts), what no judging can go below, and its lookup alone (a miss in
// the full table, no insert). The same for the TC egress program (the same rules as egress rules, the
// knobs rotating the destination), which also looks up the sending socket's record: a test run's
// skb has the kernel's dummy socket, with none. First, the kernel's verdict counters over every
// rotated address are checked against the compiled tables, and the tables against the
// reference evaluator.
//
//   node bench/classifier.ts            writes bench/results/classifier.json
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, release } from "node:os";
import { Datapath } from "../src/datapath/datapath.ts";
import { compile } from "../src/policy/compile/compile.ts";
import { classify } from "../src/policy/compile/lookup.ts";
import type { ClassifierImage } from "../src/policy/compile/image.ts";
import { evaluate } from "../src/policy/evaluator.ts";
import type { PolicyModel } from "../src/config/index.ts";
import type { BpfProgram } from "../src/datapath/native.d.ts";
import { packet } from "../test/helpers/packets.ts";
import { benchDatapaths, testRunNs } from "./test-runs.ts";
import { mixedModel } from "./compile.ts";
import { FILL, tableFloor } from "./table-floor.ts";

const KEYS = 4096;
const REPEAT = 100_000;
const ROUNDS = 5;
const SIZES = [10, 1000, 10_000, 100_000];
const LOCAL = "10.0.0.1";
/** Server ports of the probe packets: rules' ports are random, so these are hit and missed alike. */
const DPORTS = [22, 80, 443, 3306, 8080, 20_000, 40_000, 60_000];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** bench_address() of bpf/include/bench.h: the remote address of rotation key n. */
function benchAddress(n: number): number {
  let a = Math.imul(n, 0x9e3779b1) >>> 0;
  a = (a ^ (a >>> 15)) >>> 0;
  a = Math.imul(a, 0x85ebca77) >>> 0;
  return (a ^ (a >>> 13)) >>> 0;
}

const dotted = (a: number) => [a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255].join(".");
const bytes4 = (a: number) =>
  new Uint8Array([a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255]);

/** A program judged: XDP on ingress, TC on egress, with its probe packets (the remote rotated). */
interface Hook {
  name: string;
  direction: "ingress" | "egress";
  program: (dp: Datapath) => BpfProgram;
  probes: Buffer[];
}
const syn = (dport: number) =>
  packet({ src: "192.0.2.1", dst: LOCAL, proto: "tcp", sport: 1000, dport, flags: "S" });
const synOut = (dport: number) =>
  packet({ src: LOCAL, dst: "192.0.2.1", proto: "tcp", sport: 1000, dport, flags: "S" });
const XDP: Hook = {
  name: "XDP ingress",
  direction: "ingress",
  program: (dp) => dp.xdp,
  probes: DPORTS.map(syn),
};
const TC: Hook = {
  name: "TC egress",
  direction: "egress",
  program: (dp) => dp.tc,
  probes: DPORTS.map(synOut),
};

/** The bench rules as the hook's direction judges them. */
const modelFor = (model: PolicyModel, hook: Hook): PolicyModel => ({
  ...model,
  rules: model.rules.map((r) => ({ ...r, direction: hook.direction })),
});

/** A test run of the hook's program. */
function run(dp: Datapath, hook: Hook, data: Buffer, repeat: number): number {
  return testRunNs(hook.program(dp), data, repeat);
}

/** ns per packet: per round, the mean over the probe packets of a repeat = 1e5 run each. */
function cost(dp: Datapath, hook: Hook): { median: number; rounds: number[] } {
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    rounds.push(mean(hook.probes.map((data) => run(dp, hook, data, REPEAT))));
  }
  return { median: median(rounds), rounds };
}

/** Keys whose verdict the reference evaluator itself gives (it walks the rules one by one). */
const EVALUATED = 64;

/**
 * Every rotated address to every probe port is judged in the kernel as the compiled tables say
 * (counted by verdict), and the tables agree with the reference evaluator on a sample.
 */
function checkVerdicts(dp: Datapath, hook: Hook, model: PolicyModel, image: ClassifierImage): void {
  for (const [i, dport] of DPORTS.entries()) {
    const want = { allowed: 0n, blocked: 0n, detected: 0n };
    for (let n = 0; n < KEYS; n++) {
      const remote = benchAddress(n);
      const v = classify(image, {
        direction: hook.direction,
        family: 4,
        protocol: 6,
        remote: bytes4(remote),
        local: bytes4(0x0a000001),
        serverPort: dport,
        clientPort: 1024,
        icmpType: 0,
        icmpCode: 0,
      }).verdict;
      want[v]++;
      if (n >= EVALUATED) continue;
      const reference = evaluate(model, {
        direction: hook.direction,
        family: 4,
        protocol: "tcp",
        local: { ip: LOCAL, port: dport },
        remote: { ip: dotted(remote), port: 1024 },
      }).verdict;
      if (reference !== v)
        throw new Error(`${dotted(remote)} -> ${dport}: tables ${v}, evaluator ${reference}`);
    }
    const before = dp.counters();
    run(dp, hook, hook.probes[i] ?? syn(dport), KEYS);
    const after = dp.counters();
    for (const v of ["allowed", "blocked", "detected"] as const) {
      const got = after[v].packets - before[v].packets;
      if (got !== want[v])
        throw new Error(`${hook.name} port ${dport}: kernel ${v} ${got}, tables ${want[v]}`);
    }
  }
}

/** One object makes every run a new connection, the other keeps KEYS connections per port. */
const bench = benchDatapaths(KEYS);
const { fresh, tracked } = bench;

const table = tableFloor(KEYS);

/**
 * The table floor: the XDP probes through the connection table alone (bench/table-floor.ts):
 * NEW (a lookup that misses, then the insert into the full LRU table), the lookup alone (a miss
 * in a full table) and ESTABLISHED.
 */
function tableCost(): { new: number; lookup: number; established: number } {
  const of = (program: BpfProgram) =>
    median(
      Array.from({ length: ROUNDS }, () =>
        mean(XDP.probes.map((data) => testRunNs(program, data, REPEAT))),
      ),
    );
  const nw = of(table.fresh);
  testRunNs(table.lookup, XDP.probes[0] ?? syn(80), FILL);
  const lookup = of(table.lookup);
  table.clear();
  for (const data of XDP.probes) testRunNs(table.tracked, data, KEYS);
  return { new: nw, lookup, established: of(table.tracked) };
}

/** ESTABLISHED: the KEYS connections of every probe port exist before timing. */
function establishedCost(hook: Hook): { median: number; rounds: number[] } {
  tracked.clearConntrack();
  for (const data of hook.probes) run(tracked, hook, data, KEYS);
  return cost(tracked, hook);
}

try {
  const rows: {
    hook: string;
    rules: string;
    "NEW ns": number;
    "NEW - floor": number;
    "ESTABLISHED ns": number;
    "EST - floor": number;
  }[] = [];
  console.error("XDP ingress: measuring the connection table alone");
  const alone = tableCost();
  const raw: Record<string, unknown> = {};
  // the floors: each program before any policy is applied (parse, rotate, count, pass)
  const floors = new Map(
    [XDP, TC].map((hook) => {
      console.error(`${hook.name}: measuring the floor (no policy)`);
      return [hook, { floorNew: cost(fresh, hook), floorEst: establishedCost(hook) }];
    }),
  );
  for (const hook of [XDP, TC]) {
    const { floorNew, floorEst } = floors.get(hook) ?? {
      floorNew: { median: 0 },
      floorEst: { median: 0 },
    };
    raw[hook.name] = floors.get(hook);
    if (hook === XDP) raw["the table alone"] = alone;
    /** A row against this hook's floors; `est` null where ESTABLISHED was not measured (0). */
    const row = (rules: string, nw: number, est: number | null) => ({
      hook: hook.name,
      rules,
      "NEW ns": Math.round(nw),
      "NEW - floor": Math.round(nw - floorNew.median),
      "ESTABLISHED ns": est === null ? 0 : Math.round(est),
      "EST - floor": est === null ? 0 : Math.round(est - floorEst.median),
    });
    rows.push(row("floor", floorNew.median, floorEst.median));
    if (hook === XDP)
      rows.push(
        row("the table alone", alone.new, alone.established),
        row("its lookup alone", alone.lookup, null),
      );
    for (const n of SIZES) {
      console.error(`${hook.name}: ${n} rules`);
      const model = modelFor(mixedModel(n), hook);
      const image = compile(model);
      fresh.apply({ packet: image });
      tracked.apply({ packet: image });
      checkVerdicts(fresh, hook, model, image);
      const nw = cost(fresh, hook);
      const est = establishedCost(hook);
      raw[`${hook.name} rules${n}`] = { new: nw, established: est };
      rows.push(row(String(n), nw.median, est.median));
    }
  }
  console.table(rows);
  for (const hook of [XDP, TC]) {
    const of = (n: number) => rows.find((r) => r.hook === hook.name && r.rules === String(n));
    const ratio = (of(100_000)?.["NEW ns"] ?? 0) / (of(10)?.["NEW ns"] ?? 1);
    console.log(`${hook.name}: B1 ratio NEW(100k) / NEW(10) = ${ratio.toFixed(2)}`);
  }

  const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
  mkdirSync("bench/results", { recursive: true });
  writeFileSync(
    "bench/results/classifier.json",
    JSON.stringify(
      {
        bench: "B1/B2 classifier",
        method: `test-run repeat ${REPEAT}, ${KEYS} rotating sources, ${DPORTS.length} ports, median of ${ROUNDS}`,
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
} finally {
  bench.stop();
  table.stop();
}
