// A dynamic set on a host where the daemon has stored nothing yet (no set store folder): the set
// is empty, and `moat check` says nothing about it (the daemon prints the same warnings).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const MOAT = new URL("../../bin/moat", import.meta.url).pathname;

test("a dynamic set with no store folder yet is empty, without a warning", () => {
  const dir = mkdtempSync(join(tmpdir(), "moat-fresh-"));
  try {
    const policy = join(dir, "p.yaml");
    writeFileSync(
      policy,
      `version: 1
mode: prevent
sets:
  banned: { dynamic: true }
rules:
  - { name: no-banned, direction: ingress, action: block, layer3: { remote: [set:banned] } }
`,
    );
    const r = spawnSync(MOAT, ["check", policy], {
      encoding: "utf8",
      env: { ...process.env, MOAT_STATE_DIR: join(dir, "state") },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /ok, 1 rule, 1 set$/m);
    assert.doesNotMatch(r.stdout + r.stderr, /warning/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
