// What a worker thread freed goes back to the system once the daemon gives memory back, even after
// glibc saw a big block unmapped. Left to glibc, that raises its thresholds: the worker's 30 MiB
// come from its arena, end in the arena's free top when the worker stops, and stay resident (the
// trim does not reach a thread arena's top): 14 processes of 14 kept ~36 MiB that way.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const helper = fileURLToPath(new URL("../helpers/worker-frees.ts", import.meta.url));

function keptMiB(mode: "held" | "glibc"): number {
  const out = execFileSync(process.execPath, ["--expose-gc", helper, mode], { encoding: "utf8" });
  return (JSON.parse(out) as { keptMiB: number }).keptMiB;
}

test("30 MiB a worker freed are given back after it stops, with the daemon's thresholds", () => {
  for (let run = 1; run <= 2; run++) {
    const kept = keptMiB("held");
    assert.ok(
      kept < 12,
      `process ${run} kept ${kept.toFixed(1)} MiB more after its worker stopped`,
    );
  }
});
