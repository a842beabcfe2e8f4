// What the daemon's thread pays for the first LINE:COL it reads after a big policy was accepted on
// the worker (a message, `moat explain`, a relay decision): the daemon asks the worker for the
// positions' offsets once the policy is in place (locateOffThread); a read before they arrived
// works them out here.
// Each case runs in a fresh process (this thread's CPU time, so a busy machine still compares).
//
//   node bench/first-line.ts [RULES]     (default 100000)
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import {
  acceptPolicyOffThread,
  locateOffThread,
  stopAcceptWorker,
} from "../src/host/accept-off-thread.ts";
import { TablePos } from "../src/config/index.ts";
import { mixedPolicy } from "./compile.ts";

const rules = Number(process.argv[2] ?? 100_000);
const threadMs = (): number => process.threadCpuUsage().user / 1000;

/** One case: accept, optionally wait for the worker's offsets, then read the last rule's line. */
async function measure(wait: boolean): Promise<void> {
  const policy = await acceptPolicyOffThread(mixedPolicy(rules), "policy.yaml");
  const list = policy.policy?.model.rules ?? [];
  const pos = list[0]?.pos;
  let waitedMs = 0;
  if (wait && policy.policy && pos instanceof TablePos) {
    const t = performance.now();
    locateOffThread(policy.policy.model);
    while (!pos.table.located) await new Promise((r) => setTimeout(r, 5));
    waitedMs = Math.round(performance.now() - t);
  }
  const t = threadMs();
  const line = list[list.length - 1]?.pos.line;
  const readMs = Math.round(threadMs() - t);
  console.log(JSON.stringify({ wait, waitedMs, readMs, line }));
  await stopAcceptWorker();
}

const which = process.argv[3];
if (which === "wait" || which === "now") await measure(which === "wait");
else {
  console.log(`${rules} rules: the first line read on the daemon's thread (thread CPU ms)`);
  for (const c of ["now", "wait"]) {
    const run = spawnSync(
      process.execPath,
      ["--disable-warning=ExperimentalWarning", fileURLToPath(import.meta.url), `${rules}`, c],
      { encoding: "utf8" },
    );
    const row = JSON.parse(run.stdout.trim().split("\n").pop() ?? "{}") as Record<string, unknown>;
    console.log(
      c === "now"
        ? `  read at once: ${row.readMs} ms`
        : `  after the worker's offsets (${row.waitedMs} ms after they were asked for): ${row.readMs} ms`,
    );
  }
}
