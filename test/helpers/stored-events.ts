// What the e2e tests read back from a running daemon: its stored events (history, through
// `moat events --json`, oldest first, or the API), and waiting until a probe of them finds
// something (every 200 ms, for up to 20 s unless the test says).
import { spawnSync } from "node:child_process";
import type { MoatEvent } from "../../src/datapath/index.ts";
import { http } from "./api-client.ts";
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

/** The stored events with reason "ids" (the API's last 500), once `enough` of them are (or 5 s). */
export async function idsEvents(lab: MoatLab, enough: number): Promise<MoatEvent[]> {
  let found: MoatEvent[] = [];
  for (let i = 0; i < 50; i++) {
    const reply = await http({ socketPath: lab.apiSocket }, "GET", "/v1/events?limit=500");
    found = (JSON.parse(reply.body) as { events: MoatEvent[] }).events.filter(
      (e) => e.reason === "ids",
    );
    if (found.length >= enough) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
  return found;
}
