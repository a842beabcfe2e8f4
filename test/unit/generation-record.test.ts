// The record of what each policy generation contains: the rules and redirects of the live one
// and of the few before it, by index; older ones are forgotten.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GenerationRecord, KEPT_GENERATIONS } from "../../src/datapath/generations.ts";
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
