// What the e2e tests read back from a running daemon: its stored events (history, through
// `moat events --json`, oldest first), and waiting until a probe of them finds something (every
// 200 ms, for up to 20 s unless the test says).
import { spawnSync } from "node:child_process";
import type { MoatLab } from "./moat-lab.ts";
import { MOAT } from "./paths.ts";

export { until } from "./until.ts";

/** The daemon's stored events, each as the JSON `moat events --json` prints (shape: T). */
export function storedEvents<T>(lab: MoatLab): T[] {
  const r = spawnSync(
    MOAT,
    ["events", "--json", "--limit", "1000", "--api", `unix:${lab.apiSocket}`],
    { encoding: "utf8", timeout: 20_000 },
  );
  return r.stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as T);
}
