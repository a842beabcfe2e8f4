// fleet.events.subject: a subject starting with '$' is the server's own (JetStream's API, a
// bucket's keys: $KV.moat-policy.policy.web1); `moat check` refuses it at its position.
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatDiagnostic, parsePolicy, PolicyError } from "../../src/config/index.ts";

function errors(text: string): string[] {
  try {
    parsePolicy(text, "p.yaml");
  } catch (err) {
    assert.ok(err instanceof PolicyError);
    return err.diagnostics.map(formatDiagnostic);
  }
  return [];
}

test("an events subject starting with '$' is refused at its position", () => {
  const policy = (subject: string) =>
    `version: 1\nmode: prevent\nfleet:\n  url: "nats://n0:4222"\n  events:\n    subject: "${subject}"\n`;
  for (const subject of ["$KV.moat-policy.policy", "$JS.API", "$SYS"])
    assert.deepEqual(errors(policy(subject)), [
      `p.yaml:6:14 fleet.events.subject: '${subject}' starts with '$': subjects starting with '$' are the server's own (JetStream's API, a bucket's keys)`,
    ]);
  assert.deepEqual(errors(policy("moat.$events")), []);
});
