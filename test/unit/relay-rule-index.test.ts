// The relay's socket record names its deciding rule by index in the generation it was judged
// under: the first rule of that name, the egress default for "default", -1 for a name the
// generation does not have (the defaults' own names are not rules).

import { test } from "node:test";
import assert from "node:assert/strict";
import { relayRuleIndex } from "../../src/datapath/relay-socket.ts";
import type { GenerationContents } from "../../src/datapath/generations.ts";
import type { ImageRule } from "../../src/policy/compile/image.ts";

const rules = (...names: string[]): GenerationContents => ({
  rules: names.map((name) => ({ name }) as ImageRule),
  redirects: [],
});

test("a rule is found by name, the first of a name, the defaults apart", () => {
  const g = rules("web", "dns", "web", "default", "default");
  assert.equal(relayRuleIndex(g, "web"), 0);
  assert.equal(relayRuleIndex(g, "dns"), 1);
  assert.equal(relayRuleIndex(g, "default"), 4);
  assert.equal(relayRuleIndex(g, "ssh"), -1);
  assert.equal(relayRuleIndex(rules("default", "default"), "web"), -1);
});

test("each generation answers from its own rules", () => {
  const a = rules("web", "default", "default");
  const b = rules("dns", "web", "default", "default");
  assert.equal(relayRuleIndex(a, "web"), 0);
  assert.equal(relayRuleIndex(b, "web"), 1);
  assert.equal(relayRuleIndex(a, "dns"), -1);
});
