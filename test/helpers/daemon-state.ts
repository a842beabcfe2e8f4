// A daemon's own state folder for one test (its set store, feeds, decisions), and the
// generations its policy was applied as: what tests of needless recompiles count.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MoatLab } from "./moat-lab.ts";
import { until } from "./until.ts";

/**
 * A state folder of this test (MOAT_STATE_DIR for the daemons it starts), removed, and the
 * variable put back, when the test ends.
 */
export function stateDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), "moat-state-"));
  const before = process.env.MOAT_STATE_DIR;
  process.env.MOAT_STATE_DIR = dir;
  t.after(() => {
    if (before === undefined) delete process.env.MOAT_STATE_DIR;
    else process.env.MOAT_STATE_DIR = before;
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** The generations the daemon said it applied, in order. */
export const appliedGenerations = (lab: MoatLab): number[] =>
  lab.daemon.lines.flatMap((l) => {
    const m = / applied: generation (\d+)/.exec(l);
    return m ? [Number(m[1])] : [];
  });

/**
 * Reloads the daemon by SIGHUP (queued behind any change it is making) and waits until that
 * reload was applied; the reload's generation.
 */
export async function reloadBySignal(lab: MoatLab): Promise<number> {
  lab.daemon.kill("SIGHUP");
  const generation = await until(
    "the reload's audit line",
    () => /POLICY APPLIED reload by signal SIGHUP: generation (\d+)/.exec(lab.audit())?.[1],
    30_000,
    100,
  );
  await lab.daemon.waitFor(new RegExp(` applied: generation ${generation}\\b`));
  return Number(generation);
}
