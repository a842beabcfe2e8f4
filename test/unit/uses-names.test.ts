// usesNames: whether the daemon needs its DNS proxy and the compiler the DNS redirect.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicy } from "../../src/config/index.ts";
import { usesNames } from "../../src/policy/index.ts";

const policy = (rules: string, sets = "") =>
  parsePolicy(`version: 1\nattach: { cgroup: / }\n${sets}rules:\n${rules}`, "p.yaml");

test("hostname entries in a rule's remote list, directly or through a set, use names", () => {
  assert.equal(
    usesNames(
      policy(
        "  - { name: a, direction: egress, action: allow, layer3: { remote: [api.example.org] } }\n",
      ),
    ),
    true,
  );
  assert.equal(
    usesNames(
      policy(
        "  - { name: a, direction: egress, action: allow, layer3: { remote: [10.0.0.1, set:apis] } }\n",
        "sets:\n  apis: [203.0.113.1, api.example.org]\n",
      ),
    ),
    true,
  );
});

test("layer7.dns.name uses names; over_tls alone, addresses and unused sets do not", () => {
  const dnsName =
    "  - { name: q, direction: egress, action: block, layer7: { dns: { name: [ads.example] } } }\n";
  assert.equal(usesNames(policy(dnsName)), true);
  const dot =
    "  - { name: dot, direction: egress, action: block, layer7: { dns: { over_tls: true } } }\n";
  assert.equal(usesNames(policy(dot)), false);
  const plain =
    "  - { name: a, direction: egress, action: allow, layer3: { remote: [10.0.0.0/8] } }\n";
  assert.equal(usesNames(policy(plain, "sets:\n  unused: [api.example.org]\n")), false);
  assert.equal(usesNames(parsePolicy("version: 1\nmode: detect\n", "p.yaml")), false);
});
