// The daemon prints the warnings of the policy it applies, as `moat check` prints them
// (FILE:LINE:COL PATH: warning: ...): at start and on each reload; a recompile of the same text
// (a set changed, a feed fetched) prints them only when they changed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startMoatLab } from "../helpers/moat-lab.ts";
import { MOAT } from "../helpers/paths.ts";
import { reloadBySignal, stateDir } from "../helpers/daemon-state.ts";
import { until } from "../helpers/until.ts";

const NOT_TAKEN = /^\S+policy\.yaml:\d+:\d+ sets\.ioc: warning: feed 'ioc': 1 entry not taken/;

test("the daemon prints its policy's warnings at start and on reload, not on each recompile", async (t) => {
  // the set store made: a store not made yet is a warning of its own until the first set change
  mkdirSync(join(stateDir(t), "sets"), { mode: 0o700 });
  let feedFile = "";
  const lab = await startMoatLab(t.name, (l) => {
    feedFile = join(l.auditPath, "..", "..", "ioc.txt");
    writeFileSync(feedFile, "not-an-address!\n198.51.100.7\n");
    return `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}] }
logging: { audit: { path: ${l.auditPath} } }
sets:
  ioc: { file: ${feedFile}, format: plain }
  banned: { dynamic: true }
rules:
  - name: iocs
    direction: ingress
    action: block
    layer3: { remote: [set:ioc, set:banned] }
`;
  });
  t.after(() => lab.close());
  const printed = () => lab.daemon.lines.filter((l) => NOT_TAKEN.test(l)).length;
  await until("the start's warning", () => (printed() === 1 ? true : undefined), 10_000, 50);

  // a set change compiles the same text again: its warnings are the same, not printed again
  const add = spawnSync(
    MOAT,
    ["set", "add", "banned", "192.0.2.1", "--api", `unix:${lab.apiSocket}`],
    { encoding: "utf8", timeout: 30_000 },
  );
  assert.equal(add.status, 0, add.stderr);
  assert.equal(printed(), 1, lab.daemon.lines.join("\n"));

  await reloadBySignal(lab);
  await until("the reload's warning", () => (printed() === 2 ? true : undefined), 10_000, 50);
});
