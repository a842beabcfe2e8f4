// fleet.policy.report_within: how long an applied revision may go unreported before it is
// reverted. A duration from 5 s to 1 h; anything else is refused at its key.
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkPolicySource, formatDiagnostic, textOnlyHost } from "../../src/config/index.ts";

const policy = (within: string) => `version: 1
mode: prevent
fleet:
  url: nats://127.0.0.1:4222
  policy: { bucket: moat-policy, report_within: ${within} }
`;

const errors = (text: string) =>
  checkPolicySource(text, "p.yaml", textOnlyHost)
    .diagnostics.filter((d) => d.severity === "error")
    .map(formatDiagnostic);

test("report_within is read as a duration", () => {
  const r = checkPolicySource(policy("10s"), "p.yaml", textOnlyHost);
  assert.deepEqual(errors(policy("10s")), []);
  assert.equal(r.model?.fleet?.value.policy?.reportWithinSeconds, 10);
});

test("report_within out of range or not a duration is refused at its key", () => {
  for (const within of ["1s", "2h", "soon"]) {
    const [e] = errors(policy(within));
    assert.match(e ?? "", /^p\.yaml:5:\d+ fleet\.policy\.report_within: /, within);
  }
});
