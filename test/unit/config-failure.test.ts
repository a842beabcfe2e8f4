// The failure section: what moat does when a helper it relies on is not there. Defaults, the
// per-redirect override, what `moat check` says, and what reaches the kernel's redirect table.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePolicy } from "../../src/config/index.ts";
import { redirectTargets } from "../../src/policy/compile/redirect.ts";

const policy = (failure: string, extra = "") => `version: 1
mode: prevent
attach: { cgroup: / }
${failure}
redirect:
  - name: plain
    match: { direction: egress, layer4: { protocol: tcp, port: [80] } }
    to: 127.0.0.1:8080
  - name: own
    match: { direction: egress, layer4: { protocol: tcp, port: [81] } }
    to: 127.0.0.1:8081
    on_unavailable: allow
${extra}`;

test("failure.helper defaults to block; a redirect's on_unavailable overrides it", () => {
  const unavailable = (text: string) =>
    redirectTargets(parsePolicy(text, "p.yaml")).map((t) => [t.name, t.unavailable]);
  assert.deepEqual(parsePolicy(policy(""), "p.yaml").failure, {
    daemon: "enforce",
    helper: "block",
    eventsLost: "report",
  });
  assert.deepEqual(unavailable(policy("")), [
    ["plain", "block"],
    ["own", "allow"],
  ]);
  assert.deepEqual(unavailable(policy("failure: { helper: allow }")), [
    ["plain", "allow"],
    ["own", "allow"],
  ]);
});

test("moat check: bad choices are errors, a choice that can never apply is a warning", () => {
  const dir = mkdtempSync(join(tmpdir(), "moat-failure-"));
  try {
    const file = join(dir, "p.yaml");
    const check = (text: string) => {
      writeFileSync(file, text);
      const r = spawnSync("bin/moat", ["check", file], { encoding: "utf8" });
      return { code: r.status, lines: r.stdout.split("\n").filter(Boolean) };
    };
    assert.deepEqual(check(policy("failure: { helper: drop, relay: x, events_lost: shout }")), {
      code: 1,
      lines: [
        `${file}:4:20 failure.helper: must be one of block, allow, got 'drop'`,
        `${file}:4:26 failure.relay: unknown property 'relay' (expected one of: daemon, helper, events_lost)`,
        `${file}:4:49 failure.events_lost: must be one of report, notify, got 'shout'`,
        `${file}: 3 errors`,
      ],
    });
    const remote = `  - name: far
    match: { direction: egress, layer4: { protocol: tcp, port: [82] } }
    to: 10.1.2.3:3128
    on_unavailable: allow
`;
    const r = check(policy("failure: { helper: allow }", remote));
    assert.equal(r.code, 0);
    assert.deepEqual(r.lines.slice(0, 1), [
      `${file}:16:21 redirect[2].on_unavailable: warning: 10.1.2.3:3128 is not a loopback address: moat cannot tell whether it listens, so on_unavailable never applies`,
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
