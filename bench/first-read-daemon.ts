// The first GET /v1/policy a daemon answers after starting on a 100k-rule file (the answer lists
// each rule's line): it waits for nothing the daemon's thread must work out once the worker has
// sent where the rules are. The daemon runs in a network namespace of its own; the policy is
// bench/compile.ts's mixed policy.
//
//   node bench/first-read-daemon.ts [RULES] [WAIT_S]     (default 100000 rules, 8 s after the start)
import { spawn, spawnSync } from "node:child_process";
import { request } from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { mixedPolicy } from "./compile.ts";

const rules = Number(process.argv[2] ?? 100_000);
const waitS = Number(process.argv[3] ?? 8);
const dir = mkdtempSync(join(tmpdir(), `moat-first-read-${process.pid}-`));
const ns = `moat-bench-first-read-${process.pid}`;
const policy = join(dir, "policy.yaml");
const socket = join(dir, "api.sock");
writeFileSync(policy, mixedPolicy(rules));

/** Seconds until the whole answer to GET `path` came. */
function get(path: string): Promise<number> {
  const t = performance.now();
  return new Promise((resolve, reject) => {
    request({ socketPath: socket, path }, (res) => {
      res.on("data", () => {});
      res.on("end", () => resolve((performance.now() - t) / 1000));
    })
      .on("error", reject)
      .end();
  });
}

/** Nothing kept beside the bench's own directory: no history, no local decisions. */
const NO_STATE = ["--history", "none", "--decisions", "none"];

spawnSync("ip", ["netns", "add", ns]);
const args = ["--disable-warning=ExperimentalWarning", "src/cli/main.ts", "run", "--policy"];
const daemon = spawn(
  "ip",
  [
    "netns",
    "exec",
    ns,
    process.execPath,
    ...args,
    policy,
    "--no-pin",
    "--api",
    `unix:${socket}`,
    ...NO_STATE,
  ],
  { stdio: ["ignore", "pipe", "inherit"] },
);
try {
  let out = "";
  daemon.stdout.on("data", (d: Buffer) => (out += d.toString()));
  const t = performance.now();
  while (!out.includes("moat is running")) {
    if (performance.now() - t > 120_000 || daemon.exitCode !== null)
      throw new Error(`the daemon did not start:\n${out}`);
    await sleep(100);
  }
  await sleep(waitS * 1000);
  const first = await get("/v1/policy");
  const second = await get("/v1/policy");
  console.log(
    `${rules} rules, ${waitS} s after the start: GET /v1/policy ${first.toFixed(2)} s, then ${second.toFixed(2)} s`,
  );
} finally {
  daemon.kill("SIGTERM");
  await new Promise((r) => daemon.once("exit", r));
  spawnSync("ip", ["netns", "del", ns]);
  rmSync(dir, { recursive: true, force: true });
}
