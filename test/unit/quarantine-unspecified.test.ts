// A connection refused at connect() has no local address yet (the event says 0.0.0.0 or ::):
// a quarantine never puts that in its set (a rule on `local: [set:NAME]` would then match every
// unbound socket's connect(), or nothing), and the daemon's log says once why nothing was put.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PolicyModel } from "../../src/config/index.ts";
import { dynamicSets } from "../../src/daemon/dynamic-sets.ts";
import { quarantiner } from "../../src/daemon/quarantine.ts";
import type { MoatEvent } from "../../src/datapath/index.ts";

const model = {
  rules: [{ name: "ioc", quarantine: { set: "held", seconds: 600 } }],
  sets: new Map([
    [
      "held",
      {
        name: "held",
        kind: "empty",
        entries: [],
        pos: { file: "p", line: 1, col: 1, path: "sets.held" },
        origin: { kind: "dynamic" },
      },
    ],
  ]),
} as unknown as PolicyModel;

const refused = (local: string) =>
  ({
    type: "blocked",
    hook: "connect",
    rule: "ioc",
    local: { ip: local, port: 0 },
    remote: { ip: "203.0.113.9", port: 443 },
  }) as unknown as MoatEvent;

test("a connection with no local address yet quarantines nothing, and says so once", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-quarantine-any-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const logs: string[] = [];
  const sets = dynamicSets({
    dir,
    model: () => model,
    refresh: () => Promise.resolve(),
    generation: () => 1,
    audit: () => {},
    log: (line) => logs.push(line),
  });
  t.after(() => sets.close());
  const onEvent = quarantiner({ model: () => model, sets, log: (line) => logs.push(line) });
  for (const local of ["0.0.0.0", "::", "0.0.0.0", "::ffff:0.0.0.0"]) onEvent(refused(local));
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(sets.list()[0]?.entries, []);
  assert.deepEqual(logs, [
    "quarantine: rule ioc matched a connection refused at connect(), before it had a local address: nothing put in set held (remote 203.0.113.9)",
  ]);
});
