// B4 (docs/performance.md): what the socket hooks add to connect() with 10k process
// rules, against no program attached (the floor) and against 10k L3/L4-only rules, in the same
// run. A C client in a cgroup v2 directory made here does non-blocking TCP connect()s to a closed
// port on 127.0.0.1 (each on a new socket), timing connect() alone with clock_gettime; the
// program's own cost comes from kernel.bpf_stats_enabled (run_time_ns / run_cnt of connect4).
// Median of 5 rounds; each round runs the cases in turn. Each policy is measured twice: every call
// to 127.0.0.1 (a repeated call: the socket hooks' memo answers it), and the calls turning through
// 4,096 addresses after it (each a miss in the memo's 256 entries: the tables walked). First, the
// verdicts: the probe port is allowed (for the process policy only to the client's own name and
// cgroup), every other port is blocked by default and gets EPERM.
//
//   node bench/connect.ts            writes bench/results/connect.json
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Attribution } from "../src/attribution/index.ts";
import { Datapath } from "../src/datapath/datapath.ts";
import { cgroup2Mount } from "../src/datapath/prerequisites.ts";
import { compilePolicy } from "../src/policy/compile/policy-image.ts";
import { readProcessUniverse } from "../src/host/process-universe.ts";
import { enableBpfStats, programStats, type RunStats } from "./bpf-stats.ts";
import { connectModel } from "./connect-model.ts";
import { median, quantile, writeResult } from "./results.ts";

const RULES = 10_000;
const CALLS = 20_000;
const WARMUP = 1000;
const ROUNDS = 5;
/** Closed ports on 127.0.0.1 (checked below): the probe port is allowed, the other blocked. */
const PROBE_PORT = 9;
const BLOCKED_PORT = 7;
const EPERM = 1;
const CLIENT = "moat-b4-connect";
/** The same executable under another name: the process policy does not allow it. */
const OTHER = "moat-b4-other";
/** Destinations the turning cases go through: 16 times the memo's entries. */
const TURNING = 4096;

const mount = cgroup2Mount();
if (!mount) throw new Error("the cgroup v2 hierarchy is not mounted");
const root = join(mount, `moat-b4-${process.pid}`);
const rel = (dir: string) => dir.slice(mount.length);
const dirs = {
  floor: join(root, "floor"),
  l4: join(root, "l4"),
  proc: join(root, "proc"),
};
/** The cgroups the process rules name: the client's and seven others. */
const pool = [dirs.proc, ...Array.from({ length: 7 }, (_, i) => join(root, `c${i}`))];
const tmp = mkdtempSync(join(tmpdir(), "moat-b4-"));
const datapaths: Datapath[] = [];
let restoreStats = () => {};

function cleanup(): void {
  restoreStats();
  for (const dp of datapaths.splice(0)) dp.stop();
  for (const d of [...Object.values(dirs), ...pool.slice(1), root]) {
    try {
      rmdirSync(d);
    } catch {
      // never made, or already gone
    }
  }
  rmSync(tmp, { recursive: true, force: true });
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    cleanup();
    process.exit(130);
  });
}

interface Call {
  ns: number;
  errno: number;
}

/** `count` timed connect()s by `exe` from inside cgroup `dir`, to `dests` addresses in turn. */
function client(exe: string, dir: string, port: number, count: number, dests = 1): Call[] {
  const args = [exe, String(port), String(count), String(dests)];
  const r = spawnSync("sh", ["-c", `echo $$ > ${dir}/cgroup.procs && exec "$@"`, "sh", ...args], {
    encoding: "utf8",
    maxBuffer: 64 << 20,
    timeout: 120_000,
  });
  if (r.status !== 0) throw new Error(`client failed (${r.status}): ${r.stderr}`);
  return r.stdout
    .trim()
    .split("\n")
    .map((line) => {
      const [ns = "0", errno = "0"] = line.split(" ");
      return { ns: Number(ns), errno: Number(errno) };
    });
}

const oneCall = (exe: string, dir: string, port: number) => client(exe, dir, port, 1)[0]!.errno;

/** The verdicts under measurement: EPERM exactly where the policy blocks. */
function check(exe: string, other: string): void {
  const expect = (what: string, errno: number, eperm: boolean) => {
    if ((errno === EPERM) !== eperm)
      throw new Error(`${what}: errno ${errno}, expected ${eperm ? "EPERM" : "not EPERM"}`);
  };
  for (const port of [PROBE_PORT, BLOCKED_PORT]) {
    // closed: every timed call sends a SYN and gets a RST, none completes a handshake
    const listening = execFileSync("ss", ["-ltnH", `sport = :${port}`], { encoding: "utf8" });
    if (listening.trim()) throw new Error(`something listens on port ${port}`);
    expect(`floor port ${port}`, oneCall(exe, dirs.floor, port), false);
  }
  expect("l4 probe", oneCall(exe, dirs.l4, PROBE_PORT), false);
  expect("l4 blocked port", oneCall(exe, dirs.l4, BLOCKED_PORT), true);
  expect("process probe", oneCall(exe, dirs.proc, PROBE_PORT), false);
  expect("process blocked port", oneCall(exe, dirs.proc, BLOCKED_PORT), true);
  expect("process probe from another name", oneCall(other, dirs.proc, PROBE_PORT), true);
}

interface Sample {
  p50: number;
  p99: number;
  mean: number;
  /** connect4's ns per run over the timed calls (bpf_stats), null without a program. */
  programNs: number | null;
  runs: number | null;
  raw: number[];
}

function measure(exe: string, dir: string, program: number | null, dests: number): Sample {
  client(exe, dir, PROBE_PORT, WARMUP, dests);
  const before: RunStats | null = program === null ? null : programStats(program);
  const calls = client(exe, dir, PROBE_PORT, CALLS, dests);
  const after: RunStats | null = program === null ? null : programStats(program);
  // EINPROGRESS, or ECONNREFUSED when the RST was already processed
  const bad = calls.find((c) => c.errno !== 115 && c.errno !== 111);
  if (bad) throw new Error(`a timed connect() ended with errno ${bad.errno}`);
  const raw = calls.map((c) => c.ns);
  const sorted = [...raw].sort((a, b) => a - b);
  const runs = before && after ? after.runCnt - before.runCnt : null;
  return {
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    mean: raw.reduce((a, b) => a + b, 0) / raw.length,
    programNs: before && after && runs ? (after.runTimeNs - before.runTimeNs) / runs : null,
    runs,
    raw,
  };
}

try {
  for (const d of [root, ...Object.values(dirs), ...pool.slice(1)]) mkdirSync(d);
  const exe = join(tmp, CLIENT);
  execFileSync("cc", ["-O2", "-Wall", "-o", exe, "bench/connect-client.c"]);
  copyFileSync(exe, join(tmp, OTHER));
  execFileSync("chmod", ["755", tmp, exe, join(tmp, OTHER)]);

  const probe = { name: CLIENT, cgroup: rel(dirs.proc), port: PROBE_PORT };
  const cgroups = pool.map(rel);
  console.error(`compiling ${RULES} L3/L4 rules and ${RULES} process rules`);
  const l4Model = connectModel(RULES, probe, cgroups, false);
  const procModel = connectModel(RULES, probe, cgroups, true);
  const universe = readProcessUniverse(procModel, new Attribution());
  let t = performance.now();
  const l4Image = compilePolicy(l4Model, null);
  const l4CompileMs = performance.now() - t;
  t = performance.now();
  const procImage = compilePolicy(procModel, universe);
  const procCompileMs = performance.now() - t;
  const processClasses = procImage.socket?.process.count ?? 0;
  if (processClasses === 0) throw new Error("the process policy compiled without process classes");

  const start = (image: typeof l4Image, cgroup: string) => {
    const dp = Datapath.start({ interfaces: [], pinRoot: null, image, cgroup });
    datapaths.push(dp);
    const prog = dp.object.program("moat_connect4");
    const id = prog.id();
    prog.close();
    return id;
  };
  const programs = { floor: null, l4: start(l4Image, dirs.l4), proc: start(procImage, dirs.proc) };
  check(exe, join(tmp, OTHER));
  console.error("verdicts checked: EPERM exactly where the policies block");

  restoreStats = enableBpfStats();
  const cases = ["floor", "l4", "proc", "floorTurning", "l4Turning", "procTurning"] as const;
  type Case = (typeof cases)[number];
  const runs: Record<Case, { policy: keyof typeof dirs; dests: number }> = {
    floor: { policy: "floor", dests: 1 },
    l4: { policy: "l4", dests: 1 },
    proc: { policy: "proc", dests: 1 },
    floorTurning: { policy: "floor", dests: TURNING },
    l4Turning: { policy: "l4", dests: TURNING },
    procTurning: { policy: "proc", dests: TURNING },
  };
  const samples = Object.fromEntries(cases.map((c) => [c, [] as Sample[]])) as Record<
    Case,
    Sample[]
  >;
  for (let r = 0; r < ROUNDS; r++) {
    console.error(`round ${r + 1} of ${ROUNDS}`);
    for (const c of cases) {
      const { policy, dests } = runs[c];
      samples[c].push(measure(exe, dirs[policy], programs[policy], dests));
    }
  }
  restoreStats();

  const summary = (c: Case) => {
    const s = samples[c];
    const ns = s.flatMap((x) => (x.programNs === null ? [] : [x.programNs]));
    return {
      p50: median(s.map((x) => x.p50)),
      p99: median(s.map((x) => x.p99)),
      programNs: ns.length ? median(ns) : null,
    };
  };
  const labels: Record<Case, string> = {
    floor: "no program (floor)",
    l4: `${RULES} L3/L4 rules`,
    proc: `${RULES} process rules`,
    floorTurning: `no program (floor), ${TURNING} destinations`,
    l4Turning: `${RULES} L3/L4 rules, ${TURNING} destinations (memo misses)`,
    procTurning: `${RULES} process rules, ${TURNING} destinations (memo misses)`,
  };
  const rows = cases.map((c) => {
    const s = summary(c);
    const floor = summary(runs[c].dests === 1 ? "floor" : "floorTurning");
    return {
      case: labels[c],
      "connect p50 ns": s.p50,
      "p50 - floor": s.p50 - floor.p50,
      "connect p99 ns": s.p99,
      "p99 - floor": s.p99 - floor.p99,
      "program ns/run": s.programNs === null ? "-" : Math.round(s.programNs),
    };
  });
  console.table(rows);
  const floor = summary("floor");
  const proc = summary("proc");
  console.log(
    `B4: program ${Math.round(proc.programNs ?? 0)} ns/run (bar <= 150), connect() p50 +${proc.p50 - floor.p50} ns over the floor (bar <= +2000); ` +
      `${processClasses} process classes; compile ${Math.round(l4CompileMs)} ms (L3/L4), ${Math.round(procCompileMs)} ms (process)`,
  );
  writeResult("connect", {
    bench: "B4 connect() with socket hooks",
    method: `${CALLS} non-blocking connect()s to closed 127.0.0.1:${PROBE_PORT}, or to ${TURNING} addresses from it in turn, per case and round (after ${WARMUP} untimed), ${ROUNDS} rounds, medians; bpf_stats on during the timed calls`,
    rules: RULES,
    processClasses,
    compileMs: { l4: Math.round(l4CompileMs), process: Math.round(procCompileMs) },
    rows,
    raw: Object.fromEntries(
      cases.map((c) => [c, samples[c].map(({ raw, ...rest }) => ({ ...rest, ns: raw }))]),
    ),
  });
} finally {
  cleanup();
}
