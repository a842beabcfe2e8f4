// Expiries of dynamic set entries are audited as adds and removals are: entries that expired
// while no daemon ran are said at the sets' first sweep (without compiling again the policy that
// already leaves them out), one line per set, naming the entries, or counting them when many.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dynamicSets } from "../../src/daemon/dynamic-sets.ts";
import type { PolicyModel } from "../../src/config/index.ts";
import { until } from "../helpers/until.ts";

/** A running policy whose dynamic set `banned` holds `entries`. */
const running = (entries: string[]) =>
  ({
    sets: new Map([
      [
        "banned",
        {
          name: "banned",
          kind: "addresses",
          entries: entries.map((text) => ({ text })),
          pos: { file: "p", line: 1, col: 1, path: "sets.banned" },
          origin: { kind: "dynamic" },
        },
      ],
    ]),
  }) as unknown as PolicyModel;

/** The sets over a store whose banned.dynamic holds `lines`; what they audit and refresh. */
function startSets(t: TestContext, lines: string[], inForce: string[]) {
  const dir = mkdtempSync(join(tmpdir(), `moat-dyn-expiry-${process.pid}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "banned.dynamic"), `${lines.join("\n")}\n`);
  const audit: string[] = [];
  const refreshes: string[] = [];
  const sets = dynamicSets({
    dir,
    model: () => running(inForce),
    refresh: (reason) => {
      refreshes.push(reason);
      return Promise.resolve();
    },
    generation: () => 3,
    audit: (line) => audit.push(line),
    log: () => {},
  });
  t.after(() => sets.close());
  sets.applied();
  const file = () => readFileSync(join(dir, "banned.dynamic"), "utf8");
  return { audit, refreshes, file };
}

const past = () => Math.floor(Date.now() / 1000) - 60;

test("entries that expired while no daemon ran are audited at the first sweep", async (t) => {
  const { audit, refreshes, file } = startSets(
    t,
    [`203.0.113.9 # expires ${past()}`, `192.0.2.5 # expires ${past()}`, "198.51.100.7"],
    ["198.51.100.7"],
  );
  await until("the expiry's audit line", () => audit[0]);
  assert.deepEqual(audit, ["set banned: expired 203.0.113.9, 192.0.2.5"]);
  await until("the file without them", () => (file() === "198.51.100.7\n" ? true : undefined));
  assert.deepEqual(refreshes, [], "the policy in force already leaves them out");
});

test("many entries expiring at once are one line, counted", async (t) => {
  const lines = Array.from(
    { length: 500 },
    (_, i) => `10.9.${i >> 8}.${i & 255} # expires ${past()}`,
  );
  const { audit } = startSets(t, lines, []);
  await until("the expiry's audit line", () => audit[0]);
  assert.equal(audit.length, 1);
  assert.match(
    audit[0] ?? "",
    /^set banned: expired 500 entries \(10\.9\.0\.0, 10\.9\.0\.1, .* and 490 more\)$/,
  );
});
