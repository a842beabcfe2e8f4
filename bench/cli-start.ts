// How long each `moat` command takes from exec to exit (wall time), as a user runs it through
// bin/moat: `moat COMMAND --help` for every command, and a typical invocation of each (the ones
// that talk to the daemon ask an API server this bench runs on a unix socket, answering from a
// real event pipeline and history). With the CLI bundle (`make build`) and from src/ (types
// stripped at load), against `node -e 0`, the floor. A benchmark, not a test:
// bench/results/cli-start.json and docs/performance.md.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startApi } from "../src/api/index.ts";
import { commands } from "../src/cli/commands/index.ts";
import { EventPipeline } from "../src/observe/index.ts";
import { HistoryStore } from "../src/observe/history/store.ts";
import { testControl } from "../test/helpers/api-control.ts";
import { fakeEvent } from "../test/helpers/events.ts";
import { median, quantile, writeResult } from "./results.ts";

const RUNS = Number(process.env.RUNS ?? 15);
const tmp = mkdtempSync(join(tmpdir(), "moat-cli-start-"));
const socket = join(tmp, "api.sock");
const api = ["--api", `unix:${socket}`];

const built = spawnSync("make", ["-s", "cli-bundle"], { encoding: "utf8" });
if (built.status !== 0) throw new Error(`make cli-bundle: ${built.stderr}`);

// the API: 500 stored events, the examples' server policy running
const store = new HistoryStore(":memory:");
store.insert(
  Array.from({ length: 500 }, (_, i) =>
    fakeEvent({ time: new Date(Date.now() - i * 1000).toISOString(), connection: i.toString(16) }),
  ),
);
const policyText = "version: 1\nmode: prevent\n";
const pipeline = new EventPipeline();
const server = await startApi(
  testControl(pipeline, {
    queryHistory: (q) => store.query(q),
    policy: () => ({
      path: "/etc/moat/policy.yaml",
      text: policyText,
      hash: "0",
      generation: 1,
      mode: "prevent",
    }),
    validate: () => ({ ok: true, errors: [], warnings: [] }),
    setMode: () => ({ ok: true, generation: 2, errors: [] }),
  }),
  [{ listen: `unix:${socket}` }],
);
const newPolicy = join(tmp, "new.yaml");
writeFileSync(newPolicy, "version: 1\nmode: detect\n");

/** Typical invocations; each must exit with the status given. */
const TYPICAL: { args: string[]; code: number }[] = [
  { args: ["--version"], code: 0 },
  { args: ["check", "examples/server.yaml"], code: 0 },
  { args: ["check", "examples/default.yaml"], code: 0 },
  {
    args: ["explain", "examples/server.yaml", "tcp", "203.0.113.9:1", "->", "10.0.0.1:22"],
    code: 3,
  },
  { args: ["status", ...api], code: 0 },
  { args: ["events", "--limit", "100", ...api], code: 0 },
  { args: ["events", "--since", "10m", "--not", "rule=ssh", "--json", ...api], code: 0 },
  { args: ["top", "--once", ...api], code: 0 },
  { args: ["policy", "show", ...api], code: 0 },
  { args: ["policy", "apply", newPolicy, "--dry-run", ...api], code: 0 },
  { args: ["mode", "detect", ...api], code: 0 },
  {
    args: ["cleanup", "--pin-dir", join(tmp, "no-pins"), "--api", `unix:${join(tmp, "none.sock")}`],
    code: 0,
  },
  // loads the nats client and connects (refused at once: no cluster here)
  { args: ["fleet", "status", "--server", "nats://127.0.0.1:1"], code: 1 },
];

/** Wall milliseconds of `cmd args` (spawnSync's own cost included, as a shell's would be). */
function timed(cmd: string, args: string[], code: number): number[] {
  const ms: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    const r = spawnSync(cmd, args, { encoding: "utf8" });
    ms.push(performance.now() - t);
    if (r.status !== code) throw new Error(`${args.join(" ")}: exit ${r.status}: ${r.stderr}`);
  }
  return ms.sort((a, b) => a - b);
}

// spawnSync blocks this thread, and with it the API server: each command runs in a child that
// spawns, so the server keeps answering
async function measure(args: string[], code: number): Promise<{ median: number; p90: number }> {
  const { spawn } = await import("node:child_process");
  const child = spawn(
    process.execPath,
    [
      "--disable-warning=ExperimentalWarning",
      "-e",
      `const { spawnSync } = require("node:child_process");
       const ms = [];
       for (let i = 0; i < ${RUNS}; i++) {
         const t = performance.now();
         const r = spawnSync(process.argv[1], JSON.parse(process.argv[2]), { encoding: "utf8" });
         ms.push(performance.now() - t);
         if (r.status !== ${code}) { console.error(r.stderr); process.exit(1); }
       }
       console.log(JSON.stringify(ms));`,
      "bin/moat",
      JSON.stringify(args),
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  const status = await new Promise<number | null>((r) => child.on("exit", r));
  if (status !== 0) throw new Error(`moat ${args.join(" ")} did not exit ${code}`);
  const ms = (JSON.parse(out) as number[]).sort((a, b) => a - b);
  return { median: Math.round(median(ms)), p90: Math.round(quantile(ms, 0.9)) };
}

const floor = timed(process.execPath, ["-e", "0"], 0);
const rows: {
  command: string;
  bundle: { median: number; p90: number };
  source: { median: number; p90: number };
}[] = [];
const stamp = join("build/cli/BUILT");
const { atime, mtime } = statSync(stamp);
// the stamp is made old while the source is measured: an interrupted run puts it back
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.once(signal, () => {
    utimesSync(stamp, atime, mtime);
    rmSync(tmp, { recursive: true, force: true });
    process.exit(130);
  });
const cases = [...commands.map((c) => ({ args: [c.name, "--help"], code: 0 })), ...TYPICAL];
for (const { args, code } of cases) {
  const newer = spawnSync("find", ["src", "-newer", stamp, "-print", "-quit"], {
    encoding: "utf8",
  });
  if (newer.stdout.trim()) throw new Error(`${newer.stdout.trim()} changed: the bundle is stale`);
  const bundle = await measure(args, code);
  utimesSync(stamp, 0, 0); // older than src/: bin/moat runs the source
  let source;
  try {
    source = await measure(args, code);
  } finally {
    utimesSync(stamp, atime, mtime);
  }
  const command = `moat ${args.map((a) => a.replaceAll(tmp, "$TMP")).join(" ")}`;
  rows.push({ command, bundle, source });
  console.log(
    `${command.padEnd(72).slice(0, 72)} bundle ${String(bundle.median).padStart(4)} ms (p90 ${bundle.p90})   src ${String(source.median).padStart(5)} ms`,
  );
}
const nodeFloor = Math.round(median(floor));
console.log(`node -e 0: ${nodeFloor} ms (the floor); ${RUNS} runs each, median and p90 wall time`);
writeResult("cli-start", { runs: RUNS, nodeFloorMs: nodeFloor, rows });
await server.close();
store.close();
rmSync(tmp, { recursive: true, force: true });
