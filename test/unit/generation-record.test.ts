// The record of what each policy generation contains: the rules and redirects of the live one
// and of the few before it, by index; older ones are forgotten.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GenerationRecord, KEPT_GENERATIONS } from "../../src/datapath/generations.ts";
import { richRules, ruleName } from "../../src/datapath/kept-rules.ts";
import type { ImageRule } from "../../src/policy/compile/image.ts";

const rule = (name: string): ImageRule => ({
  name,
  action: "block",
  mode: "prevent",
  log: false,
  maxDurationSeconds: 0,
});

test("the rules and redirects of recent generations, by index", () => {
  const r = new GenerationRecord();
  r.record(1, {
    rules: [rule("a"), rule("b")],
    redirects: [{ name: "p", ip: "::1", family: 6, port: 8080, unavailable: "block" }],
  });
  r.record(2, { rules: [rule("c")], redirects: [] });
  assert.equal(r.rule(1, 1)?.name, "b");
  assert.equal(r.rule(0, 2)?.name, "c");
  assert.equal(r.rule(1, 2), null);
  assert.equal(r.redirect(0, 1)?.name, "p");
  assert.equal(r.redirect(0, 2), null);
  assert.equal(r.rule(0, 3), null, "a generation never recorded");
});

test(`the last ${KEPT_GENERATIONS} generations are kept`, () => {
  const r = new GenerationRecord();
  for (let g = 1; g <= KEPT_GENERATIONS + 2; g++)
    r.record(g, { rules: [rule(`r${g}`)], redirects: [] });
  assert.equal(r.of(2), null);
  assert.equal(r.rule(0, 3)?.name, "r3");
  assert.equal(r.rule(0, KEPT_GENERATIONS + 2)?.name, `r${KEPT_GENERATIONS + 2}`);
});

test("a rule a reload keeps is one object in every generation that has it, whatever its index", () => {
  const r = new GenerationRecord();
  const limit = {
    id: 7,
    algorithm: "token_bucket" as const,
    count: 10,
    burst: 20,
    periodNs: 1_000_000_000n,
    fillNs: 2_000_000_000n,
    reportNs: 0n,
    prefix4: 32,
    prefix6: 128,
    perPort: false,
  };
  r.record(1, { rules: [rule("a"), { ...rule("b"), limit }, rule("c")], redirects: [] });
  // a rule inserted before them, b's limit the same but a new object, c's mode changed
  const a2 = rule("a");
  r.record(2, {
    rules: [
      rule("new"),
      a2,
      { ...rule("b"), limit: { ...limit } },
      { ...rule("c"), mode: "detect" },
    ],
    redirects: [],
  });
  assert.equal(r.rule(1, 2), r.rule(0, 1), "a: the same object");
  assert.equal(r.rule(0, 1), a2, "the newest generation's object is the one kept");
  assert.equal(r.rule(2, 2), r.rule(1, 1), "b: the same object");
  assert.notEqual(r.rule(3, 2), r.rule(2, 1), "c changed: its own object");
  assert.equal(r.rule(3, 2)?.mode, "detect");
  assert.equal(r.rule(2, 1)?.mode, "prevent");
  // a changed limit is not shared
  r.record(3, { rules: [{ ...rule("b"), limit: { ...limit, count: 11 } }], redirects: [] });
  assert.notEqual(r.rule(0, 3), r.rule(2, 2));
  assert.equal(r.rule(0, 3)?.limit?.count, 11);
});

test("a rule that moved is compared with the first rule of its name only", () => {
  const r = new GenerationRecord();
  r.record(1, { rules: [rule("a"), rule("b")], redirects: [] });
  // both moved; a's name comes twice, its first an equal of the kept one
  const first = rule("a");
  r.record(2, {
    rules: [rule("x"), first, { ...rule("a"), mode: "detect" }, rule("y"), rule("b")],
    redirects: [],
  });
  assert.equal(r.rule(0, 1), first, "a: the first of its name");
  assert.equal(r.rule(1, 1), r.rule(4, 2), "b: the same object");
  // the first of a name that differs is not passed over for a later equal one
  r.record(3, { rules: [{ ...rule("b"), mode: "detect" }, rule("z"), rule("b")], redirects: [] });
  assert.notEqual(r.rule(4, 2), r.rule(0, 3));
  assert.notEqual(r.rule(4, 2), r.rule(2, 3));
});

test("a big policy's rules read back as they were recorded, by index, in order and by name", () => {
  // kept as names from 3 rules on: each rule reads as the object the image had
  const r = new GenerationRecord(KEPT_GENERATIONS, 3);
  const rules: ImageRule[] = [
    rule("a"),
    { ...rule("b"), action: "allow", mode: "detect", log: true },
    { ...rule("c"), maxDurationSeconds: 30 },
    { ...rule("d"), reason: "doh" },
    { ...rule("e"), layer7: true },
    { ...rule("default"), action: "allow" },
    rule("default"),
  ];
  const copies = structuredClone(rules);
  r.record(1, { rules, redirects: [] });
  const kept = r.of(1)!.rules;
  assert.equal(kept.length, rules.length);
  for (let i = 0; i < rules.length; i++) {
    const got = r.rule(i, 1);
    assert.deepEqual(got, copies[i], `rule ${i}`);
    assert.deepEqual(Object.keys(got!), Object.keys(copies[i]!), `rule ${i}: keys in order`);
    assert.equal(JSON.stringify(got), JSON.stringify(copies[i]));
    assert.deepEqual(kept.at(i), copies[i]);
  }
  assert.deepEqual([...kept], copies, "iterated in order");
  assert.equal(r.rule(rules.length, 1), null);
  assert.equal(r.rule(-1, 1), null, "no rule before the first");
  assert.equal(ruleName(kept, 3), "d");
  assert.deepEqual(
    [...richRules(kept)].map(([i, x]) => [i, x.name]),
    [
      [2, "c"],
      [3, "d"],
      [4, "e"],
    ],
    "the rules that are more than a name, action, mode and log",
  );
});

test("a big policy's older generations read their own rules after a reload moves and changes them", () => {
  const r = new GenerationRecord(KEPT_GENERATIONS, 3);
  const names = (g: number, list: string[]) => list.map((_, i) => r.rule(i, g)?.name ?? "(none)");
  r.record(1, { rules: ["a", "b", "c", "d"].map(rule), redirects: [] });
  r.record(2, {
    rules: [rule("x"), rule("a"), { ...rule("b"), mode: "detect" }, rule("d"), rule("c")],
    redirects: [],
  });
  r.record(3, { rules: [rule("d"), rule("y")], redirects: [] }); // small: kept as its objects
  r.record(4, { rules: ["c", "b", "a", "z"].map(rule), redirects: [] });
  assert.deepEqual(names(1, ["", "", "", ""]), ["a", "b", "c", "d"]);
  assert.deepEqual(names(2, ["", "", "", "", ""]), ["x", "a", "b", "d", "c"]);
  assert.equal(r.rule(2, 2)?.mode, "detect");
  assert.equal(r.rule(1, 1)?.mode, "prevent");
  assert.deepEqual(names(3, ["", ""]), ["d", "y"]);
  assert.deepEqual(names(4, ["", "", "", ""]), ["c", "b", "a", "z"]);
});
