// A big set handed back from the accept worker holds addresses only, and its entries are made
// when read (a million objects): the checks that look for hostnames in a policy's sets ask
// whether a list is known to hold addresses only, and leave such a list's entries unmade.
import { test } from "node:test";
import assert from "node:assert/strict";
import { markAddressOnly, parsePolicy, type PolicyModel } from "../../src/config/index.ts";
import { nameRuleProblems, nameRuleWarnings, usesNames } from "../../src/policy/index.ts";
import { firstNameUse } from "../../src/host/name-service.ts";

/** The policy with its set's entries replaced by a list that fails when an entry is read. */
function withUnreadableSet(): PolicyModel {
  const model = parsePolicy(
    `version: 1
attach: { cgroup: / }
sets:
  big: [203.0.113.0/24, 198.51.100.7]
rules:
  - { name: out, direction: egress, action: block, layer3: { remote: [set:big] } }
  - { name: in, direction: ingress, action: block, layer3: { remote: [set:big] } }
`,
    "p.yaml",
  );
  for (const rule of model.rules)
    for (const entry of rule.layer3?.remote?.entries ?? [])
      if (entry.kind === "set") {
        const unreadable = new Proxy(entry.entries, {
          get(t, key, receiver) {
            if (typeof key === "string" && /^\d+$/.test(key)) throw new Error(`entry ${key} read`);
            return Reflect.get(t, key, receiver);
          },
        });
        markAddressOnly(unreadable);
        (entry as { entries: unknown }).entries = unreadable;
      }
  return model;
}

test("a set known to hold addresses only is not read to look for hostnames", () => {
  const model = withUnreadableSet();
  assert.equal(usesNames(model), false);
  assert.equal(firstNameUse(model), null);
  assert.deepEqual(nameRuleProblems(model), []);
  assert.deepEqual(nameRuleWarnings(model), []);
});
