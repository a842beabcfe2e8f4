// An IPv4-mapped IPv6 entry in a set file never matches (moat judges connections to such addresses
// as IPv4): `moat check` warns at the entry's line, as it does for the same entry in a rule.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const MOAT = new URL("../../bin/moat", import.meta.url).pathname;

test("a set file's IPv4-mapped entry is warned about at its line", () => {
  const dir = mkdtempSync(join(tmpdir(), "moat-mapped-"));
  try {
    writeFileSync(join(dir, "bad.txt"), "10.0.0.1\n::ffff:203.0.113.9\n");
    writeFileSync(
      join(dir, "p.yaml"),
      `version: 1
mode: prevent
sets:
  bad: { file: bad.txt }
rules:
  - { name: no-bad, direction: ingress, action: block, layer3: { remote: [set:bad] } }
`,
    );
    const r = spawnSync(MOAT, ["check", join(dir, "p.yaml")], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout + r.stderr,
      /bad\.txt:2:1 .*an IPv4-mapped IPv6 address: .*never matches; write the IPv4 address it holds/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
