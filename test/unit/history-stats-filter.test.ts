// moat stats' --process and --peer through GET /v1/stats on a real API server: matched as the live
// filter matches names, a letter's case counts in a path and `%` and `_` are no wildcards; a
// peer's DNS name is matched in lower case, as events' names are kept.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startApi } from "../../src/api/server.ts";
import type { ApiControl } from "../../src/api/control.ts";
import { HistoryStore } from "../../src/observe/history/store.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import type { StatsPage } from "../../src/observe/history/rollup.ts";
import { statsCommand } from "../../src/cli/commands/stats.ts";
import { fakeEvent, fakeSnapshot } from "../helpers/events.ts";

test("moat stats --process and --peer match whole names with their case, no wildcards", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-stats-filter-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = new HistoryStore(join(dir, "h.db"));
  t.after(() => store.close());
  const now = Date.now();
  const flow = (path: string, name: string, peer: string) => ({
    connection: fakeEvent({
      type: "allowed",
      verdict: "allowed",
      direction: "egress",
      rule: "web",
      remote: { ip: "93.184.216.34", port: 443, names: [peer] },
      process: { pid: 7, name, path, user: 1000, cgroup: "/", container: null },
    }),
    connections: 1,
    closed: 1,
    packets: 10,
    bytes: 100,
    durationMsSum: 10,
    durationMsMax: 10,
    firstMs: now - 2000,
    lastMs: now - 1000,
  });
  store.insertFlows([
    flow("/usr/bin/curl", "curl", "example.com"),
    flow("/opt/x/CURL", "CURL", "a.example.com"),
    flow("/usr/bin/cur1", "cur1", "examplexcom"),
    flow("", "curl", "github.com"),
    flow("/usr/bin/50%_off", "50%_off", "api.github.com"),
  ]);
  const control = {
    snapshot: () => fakeSnapshot(new EventPipeline()),
    flowStats: (q) => store.flowStats(q),
    log: () => {},
  } as Partial<ApiControl> as ApiControl;
  const socket = join(dir, "api.sock");
  const api = await startApi(control, [{ listen: `unix:${socket}` }]);
  t.after(() => api.close());

  const rows = async (option: "process" | "peer", value: string) => {
    const out: string[] = [];
    const code = await statsCommand.run(
      {
        values: { api: `unix:${socket}`, json: true, since: "1h", [option]: value },
        positionals: [],
      },
      { out: (l) => out.push(l), err: () => {} },
    );
    assert.equal(code, 0);
    const page = JSON.parse(out.join("\n")) as StatsPage;
    return page.rows.map((r) => `${r.identity.exe} ${r.peer}`).sort();
  };
  // a path's file name, with its case; a comm where no path is known
  assert.deepEqual(await rows("process", "curl"), ["/usr/bin/curl example.com", "curl github.com"]);
  assert.deepEqual(await rows("process", "CURL"), ["/opt/x/CURL a.example.com"]);
  assert.deepEqual(await rows("process", "Curl"), []);
  assert.deepEqual(await rows("process", "cur_"), []);
  assert.deepEqual(await rows("process", "%"), []);
  assert.deepEqual(await rows("process", "50%_off"), ["/usr/bin/50%_off api.github.com"]);
  assert.deepEqual(await rows("process", "/usr/bin/curl"), ["/usr/bin/curl example.com"]);
  // a name and its subdomains, as `remote=` matches a name: in lower case
  assert.deepEqual(await rows("peer", "example.com"), [
    "/opt/x/CURL a.example.com",
    "/usr/bin/curl example.com",
  ]);
  assert.deepEqual(await rows("peer", "GitHub.com"), [
    "/usr/bin/50%_off api.github.com",
    "curl github.com",
  ]);
  assert.deepEqual(await rows("peer", "example_com"), []);
  assert.deepEqual(await rows("peer", "%"), []);
});
