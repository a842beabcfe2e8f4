// A policy's rule by the name events carry: the first rule of that name, for the policy asked
// about (a reloaded policy is looked up in its own rules, not the index of the one before).
import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicy } from "../../src/config/index.ts";
import { quarantinesAny, ruleNamed } from "../../src/policy/index.ts";

const policy = (rules: string) =>
  parsePolicy(
    `version: 1\nmode: prevent\nsets:\n  hold: { dynamic: true }\nrules:\n${rules}`,
    "p.yaml",
  );

test("the rule of an event's name, in the policy asked about", () => {
  const before = policy(
    "  - { name: ssh, direction: ingress, action: allow, layer4: { protocol: tcp, port: [22] } }\n",
  );
  const after = policy(
    "  - { name: web, direction: ingress, action: allow, layer4: { protocol: tcp, port: [80] } }\n" +
      "  - { name: ssh, direction: ingress, action: block, quarantine: { set: hold, timeout: 1h }, layer4: { protocol: tcp, port: [22] } }\n",
  );
  assert.equal(ruleNamed(before, "ssh")?.action, "allow");
  assert.equal(ruleNamed(after, "ssh")?.action, "block");
  assert.equal(ruleNamed(after, "web")?.layer4?.ports?.[0]?.lo, 80);
  assert.equal(ruleNamed(before, "web"), undefined);
  assert.equal(ruleNamed(after, "default"), undefined, "the defaults are not rules");
  assert.equal(quarantinesAny(before), false);
  assert.equal(quarantinesAny(after), true);
});
