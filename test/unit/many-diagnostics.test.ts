// A policy may carry hundreds of thousands of findings: a block list of 300,000 CIDRs written with
// their host bits set warns once per line. The check gathers them all and still accepts the
// policy (warnings never refuse it); gathering them by spreading one list into another's
// arguments overflowed the stack past ~120,000 findings ("Maximum call stack size exceeded",
// reported as moat's internal error by `moat check` and by a reload).
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkPolicySource, type PolicyHost } from "../../src/config/index.ts";

const LINES = 300_000;

/** 10.x.y.z/24 with host bits set: a warning each. */
const setFile = Array.from(
  { length: LINES },
  (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${1 + (i & 127)}/24`,
).join("\n");

const host: PolicyHost = {
  readFile: () => setFile,
  resolve: (_, path) => path,
};

test("a set file with a warning on each of 300,000 lines is accepted, every warning kept", () => {
  const text = `version: 1
mode: prevent
sets: { blocklist: { file: blocklist.txt } }
rules:
  - { name: blocklist, direction: any, action: block, layer3: { remote: [set:blocklist] } }
`;
  const { model, diagnostics } = checkPolicySource(text, "p.yaml", host);
  assert.ok(model, "accepted");
  const hostBits = diagnostics.filter((d) => d.message.startsWith("a CIDR with host bits set"));
  assert.equal(hostBits.length, LINES);
  assert.ok(diagnostics.every((d) => d.severity === "warning"));
});
