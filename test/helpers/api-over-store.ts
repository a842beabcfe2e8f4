// The daemon's API over a history store alone, on a unix socket in `dir`: what the CLI's history
// commands (events, stats, top) read, without a daemon.
import { join } from "node:path";
import { startApi } from "../../src/api/server.ts";
import type { ApiControl } from "../../src/api/control.ts";
import type { HistoryStore } from "../../src/observe/history/store.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { fakeSnapshot } from "./events.ts";

/** Starts the API over `store`; its socket's path. Both stop when the test ends. */
export async function apiOverStore(
  t: { after(fn: () => unknown): void },
  store: HistoryStore,
  dir: string,
): Promise<string> {
  const pipeline = new EventPipeline();
  t.after(() => pipeline.close());
  const control = {
    snapshot: () => fakeSnapshot(pipeline),
    queryHistory: (q) => store.query(q),
    flowStats: (q) => store.flowStats(q),
    log: () => {},
  } as Partial<ApiControl> as ApiControl;
  const socket = join(dir, "api.sock");
  const api = await startApi(control, [{ listen: `unix:${socket}` }]);
  t.after(() => api.close());
  return socket;
}
