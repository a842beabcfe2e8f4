// What becomes of a connection a local allow decision let through once the decision goes
// (src/daemon/local-decisions.ts blockedWithout): cut and reported blocked (reason rejudged) only
// when the policy without the decision surely blocks it; one it detects, allows, or may let
// through on facts the connection's event does not carry, goes on.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicy } from "../../src/config/index.ts";
import { blockedWithout } from "../../src/daemon/local-decisions.ts";
import type { MoatEvent } from "../../src/datapath/index.ts";

const policy = (mode: string, egress: string, rules = "") =>
  parsePolicy(
    `version: 1\nmode: ${mode}\ndefaults: { ingress: allow, egress: ${egress} }\n${rules}`,
    "p.yaml",
  );

const decided: MoatEvent = {
  time: new Date().toISOString(),
  type: "allowed",
  verdict: "allowed",
  mode: "detect",
  rule: "decision:d1",
  direction: "egress",
  protocol: "tcp",
  local: { ip: "10.0.0.1", port: 40000 },
  remote: { ip: "192.0.2.7", port: 7777 },
  interface: "eth0",
  process: null,
  layer7: null,
  connection: "1a",
  reason: "new",
  hook: "tc",
  generation: 3,
};

test("blocked in prevent: the connection's event as blocked by the policy's rule", () => {
  const event = blockedWithout(policy("prevent", "block"), decided);
  assert.deepEqual(event, {
    ...decided,
    type: "blocked",
    verdict: "blocked",
    rule: "default",
    mode: "prevent",
    reason: "rejudged",
  });
});

test("detected or allowed without the decision: it goes on", () => {
  assert.equal(blockedWithout(policy("detect", "block"), decided), null);
  assert.equal(blockedWithout(policy("prevent", "allow"), decided), null);
  // a rule's own detect mode in a prevent policy
  const own = `rules:\n  - { name: watch, direction: egress, action: block, mode: detect, layer4: { protocol: tcp, port: [7777] } }\n`;
  assert.equal(blockedWithout(policy("prevent", "block", own), decided), null);
});

test("a verdict hanging on facts the event lacks: it goes on unless every outcome blocks", () => {
  const byProcess = (action: string) =>
    `rules:\n  - { name: tool, direction: egress, action: ${action}, process: { path: [/usr/bin/tool] } }\n`;
  // the process is unknown: the rule may allow it
  assert.equal(blockedWithout(policy("prevent", "block", byProcess("allow")), decided), null);
  // whichever rule decides, it is blocked
  assert.equal(
    blockedWithout(policy("prevent", "block", byProcess("block")), decided)?.rule,
    "tool",
  );
});
