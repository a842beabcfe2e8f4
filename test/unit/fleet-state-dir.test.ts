// The fleet follower's state file lies only in a directory no one but root can change: a user
// who could rename entries there could put back an older state and have revisions re-applied.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePolicy } from "../../src/config/index.ts";
import { fleetFollow } from "../../src/daemon/fleet-follow.ts";

test("a fleet state file in a directory others may write is refused with the reason", async () => {
  const dir = mkdtempSync(join(tmpdir(), "moat-fleet-dir-"));
  try {
    chmodSync(dir, 0o777);
    const stateFile = join(dir, "fleet-policy.json");
    const text = `version: 1\nmode: prevent\nfleet: { url: "nats://127.0.0.1:1", policy: { bucket: b, state_file: ${stateFile} } }\n`;
    const model = parsePolicy(text, "p.yaml");
    const lines: string[] = [];
    const follow = fleetFollow({
      policyPath: "p.yaml",
      apply: () => Promise.reject(new Error("not applied in this test")),
      running: () => ({ text, model, hash: "" }),
      log: (line) => lines.push(line),
    });
    follow.update(model);
    const follower = await follow.follower;
    await follow.close();
    assert.equal(follower, null, "no follower");
    assert.ok(
      lines.some((l) => l.startsWith("fleet: not following b:") && l.includes("writable")),
      lines.join("\n"),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
