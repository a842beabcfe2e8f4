// The policy loader on arbitrary input: random bytes, random YAML, and real policies with random
// values spliced in. It never throws, every diagnostic has a position and prints without control
// characters, at most 100 are shown, and an accepted policy has no error.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { stringify } from "yaml";
import { acceptPolicy } from "../../src/host/accept-policy.ts";
import { diagnosticLines, type PolicyHost } from "../../src/config/index.ts";

// set files come from the test, not the disk
const host: PolicyHost = {
  readFile: (path) => {
    if (path.endsWith("ok.txt")) return "10.0.0.0/8\n192.0.2.1\n";
    throw new Error("no such file or directory");
  },
  resolve: (_policy, path) => path,
};

function accepts(text: string): void {
  const { diagnostics, policy } = acceptPolicy(text, "/fuzz/policy.yaml", { host });
  for (const d of diagnostics) {
    assert.ok(d.line >= 1 && d.col >= 1, JSON.stringify(d));
    assert.ok(d.message.length > 0);
  }
  const lines = diagnosticLines(diagnostics, "/fuzz/policy.yaml");
  assert.ok(lines.length <= 101);
  for (const line of lines)
    // eslint-disable-next-line no-control-regex -- it looks for control characters
    assert.doesNotMatch(line, /[\u0000-\u001f\u007f-\u009f\u202a-\u202e]/, line);
  if (policy) assert.ok(!diagnostics.some((d) => d.severity === "error"));
}

const RUNS = { numRuns: 300 };

test("arbitrary bytes never make the loader throw", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
      accepts(Buffer.from(bytes).toString("utf8"));
    }),
    RUNS,
  );
});

test("arbitrary YAML documents never make the loader throw", () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 6 }), (value) => {
      accepts(stringify(value));
      accepts(stringify({ version: 1, ...(typeof value === "object" ? { rules: value } : {}) }));
    }),
    RUNS,
  );
});

const scalar = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom("tcp", "udp", "icmp", "any", "10.0.0.0/8", "::ffff:1.2.3.4", "set:s", "!*"),
);
const value = fc.oneof(scalar, fc.array(scalar, { maxLength: 4 }));

test("real policies with random values in every field never make the loader throw", () => {
  const rule = fc.record(
    {
      name: fc.oneof(fc.constant("r"), fc.string({ maxLength: 20 })),
      direction: fc.oneof(fc.constantFrom("ingress", "egress", "any"), scalar),
      action: fc.oneof(fc.constantFrom("allow", "block"), scalar),
      log: value,
      layer3: fc.record({ remote: value, local: value }, { requiredKeys: [] }),
      layer4: fc.record(
        { protocol: value, port: value, source_port: value, max_duration: value },
        { requiredKeys: [] },
      ),
      process: fc.record({ name: value, user: value, path: value }, { requiredKeys: [] }),
    },
    { requiredKeys: ["name", "direction", "action"] },
  );
  const policy = fc.record({
    version: fc.oneof(fc.constant(1), scalar),
    mode: fc.oneof(fc.constantFrom("detect", "prevent"), scalar),
    defaults: fc.record({ ingress: value, egress: value }, { requiredKeys: [] }),
    attach: fc.record({ interfaces: value, cgroup: value }, { requiredKeys: [] }),
    sets: fc.dictionary(
      fc.stringMatching(/^[a-z]{1,6}$/),
      fc.oneof(
        fc.array(scalar, { maxLength: 4 }),
        fc.record({ file: fc.constantFrom("ok.txt", "no.txt") }),
      ),
      { maxKeys: 2 },
    ),
    rules: fc.array(rule, { maxLength: 4 }),
  });
  fc.assert(
    fc.property(policy, (p) => accepts(stringify(p))),
    RUNS,
  );
});
