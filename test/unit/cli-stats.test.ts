// moat stats against a real API server over a unix socket, its store holding flow summaries:
// the table and --json show the roll-up, filters narrow it, bad options are usage errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HistoryStore } from "../../src/observe/history/store.ts";
import type { StatsPage } from "../../src/observe/history/rollup.ts";
import { statsCommand } from "../../src/cli/commands/stats.ts";
import { UsageError } from "../../src/cli/command.ts";
import { fakeEvent } from "../helpers/events.ts";
import { apiOverStore } from "../helpers/api-over-store.ts";

test("moat stats: table and --json from GET /v1/stats, with filters", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-stats-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = new HistoryStore(join(dir, "h.db"));
  t.after(() => store.close());
  const now = Date.now();
  const flow = (peer: string, path: string, bytes: number) => ({
    connection: fakeEvent({
      type: "allowed",
      verdict: "allowed",
      direction: "egress",
      rule: "web",
      remote: { ip: "93.184.216.34", port: 443, names: [peer] },
      process: { pid: 7, name: "x", path, user: 1000, cgroup: "/", container: null },
    }),
    connections: 1,
    closed: 1,
    packets: 10,
    bytes,
    durationMsSum: 1500,
    durationMsMax: 1500,
    firstMs: now - 2000,
    lastMs: now - 1000,
  });
  store.insertFlows([
    flow("example.com", "/usr/bin/curl", 5000),
    flow("api.github.com", "/usr/bin/git", 90_000),
  ]);
  const socket = await apiOverStore(t, store, dir);

  const run = async (...args: string[]) => {
    const out: string[] = [];
    const values: Record<string, string | boolean> = { api: `unix:${socket}` };
    for (let i = 0; i < args.length; i++) {
      const name = args[i]!.slice(2);
      if (name === "json") values.json = true;
      else values[name] = args[++i]!;
    }
    const code = await statsCommand.run(
      { values, positionals: [] },
      { out: (l) => out.push(l), err: () => {} },
    );
    assert.equal(code, 0);
    return out;
  };

  const page = JSON.parse((await run("--json", "--since", "1h")).join("\n")) as StatsPage;
  assert.equal(page.resolution, "minute");
  assert.deepEqual(
    page.rows.map((r) => [r.identity.exe, r.peer, r.port, r.bytes, r.verdicts.allowed]),
    [
      ["/usr/bin/git", "api.github.com", 443, 90_000, 1],
      ["/usr/bin/curl", "example.com", 443, 5000, 1],
    ],
  );
  const table = await run("--since", "1h", "--peer", "github.com");
  assert.match(table[0]!, /minute roll-ups\): 1 row/);
  assert.match(table[1]!, /^PROCESS +USER +PEER +PORT +PROTO +DIR +CONNS +BYTES/);
  assert.match(
    table[2]!,
    /^\/usr\/bin\/git +1000 +api\.github\.com +443 +tcp +egress +1 +90000 +1\.5s +1 +0 +0 /,
  );
  const curl = JSON.parse((await run("--json", "--process", "curl")).join("\n")) as StatsPage;
  assert.deepEqual(
    curl.rows.map((r) => r.peer),
    ["example.com"],
  );
  await assert.rejects(run("--limit", "ten"), UsageError);
});
