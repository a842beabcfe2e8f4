// A big policy handed back by the worker keeps its rules' positions as numbers of the position
// table (src/config/positions.ts: PositionTable.keepPos, src/host/handback-pos-maker.ts): `pos` is
// a getter in its place among the keys, and what it reads, spreads, serializes and takes are what
// a plain property holding the position gives.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { acceptPolicy, type Acceptance } from "../../src/host/accept-policy.ts";
import { packAcceptance, unpackAcceptance } from "../../src/host/accept-handback.ts";
import { plainPos, TablePos, type PolicyModel, type SourcePos } from "../../src/config/index.ts";
import { mixedPolicy } from "../../bench/compile.ts";

setFlagsFromString("--expose-gc");
setFlagsFromString("--allow-natives-syntax");
const gc = runInNewContext("gc") as () => void;
/** Whether the engine keeps `o` in a shape shared with its kind (not a dictionary of its own). */
const hasFastProperties = new Function("o", "return %HasFastProperties(o)") as (
  o: object,
) => boolean;

/** `text` accepted and handed back, its lists of more than 16 items in parts (as columns). */
async function handedBack(text: string, file: string): Promise<Acceptance> {
  const { packed, transfer } = packAcceptance(acceptPolicy(text, file), 16);
  return (await unpackAcceptance(structuredClone(packed, { transfer }), text)).acceptance;
}

/** The objects of a rule that hold a position: rule, layer3, list, entry, layer4, port. */
function holders(model: PolicyModel, i: number): Record<string, { pos: SourcePos }> {
  const rule = model.rules[i]!;
  return {
    rule,
    layer3: rule.layer3!,
    remote: rule.layer3!.remote!,
    entry: rule.layer3!.remote!.entries[0]!,
    layer4: rule.layer4!,
    port: rule.layer4!.ports![0]!,
  };
}

const where = (pos: SourcePos) => `${pos.file}:${pos.line}:${pos.col} ${pos.path}`;

const json = (v: unknown) =>
  JSON.stringify(v, (_, x: unknown) => (typeof x === "bigint" ? `${x}n` : x));

/** The line (1-based) of rule `i` of a mixedPolicy. */
const ruleLine = (text: string, i: number) => text.split("\n").indexOf(`  - name: r${i}`) + 1;

test("a handed-back policy's positions are numbers read as positions, in their place", async () => {
  const text = mixedPolicy(300);
  const reference = acceptPolicy(text, "big.yaml").policy!.model;
  const model = (await handedBack(text, "big.yaml")).policy!.model;
  for (const i of [0, 5, 150, 299]) {
    const back = holders(model, i);
    const ref = holders(reference, i);
    for (const [kind, obj] of Object.entries(back)) {
      const refObj = ref[kind]!;
      const property = Object.getOwnPropertyDescriptor(obj, "pos");
      assert.equal(typeof property?.get, "function", `${kind}: no position object is kept`);
      assert.equal(property?.enumerable, true);
      assert.ok(obj.pos instanceof TablePos);
      assert.equal(where(obj.pos), where(refObj.pos), kind);
      assert.deepEqual(Object.keys(obj), Object.keys(refObj), kind);
      assert.equal(json(obj), json(refObj), kind);
      const copy = { ...obj };
      assert.deepEqual(Object.keys(copy), Object.keys(refObj), kind);
      assert.deepEqual(plainPos(copy.pos), plainPos(refObj.pos), kind);
    }
  }
  assert.equal(where(model.rules[7]!.pos), `big.yaml:${ruleLine(text, 7)}:5 rules[7]`);
});

test("assigning a kept position makes it a plain property, in the same place", async () => {
  const text = mixedPolicy(50);
  const model = (await handedBack(text, "a.yaml")).policy!.model;
  const rule = model.rules[3]!;
  const keys = Object.keys(rule);
  const pos = { file: "other.yaml", line: 9, col: 2, path: "rules[0]" };
  rule.pos = pos;
  assert.equal(rule.pos, pos);
  assert.deepEqual(Object.getOwnPropertyDescriptor(rule, "pos"), {
    value: pos,
    writable: true,
    enumerable: true,
    configurable: true,
  });
  assert.deepEqual(Object.keys(rule), keys);
  assert.equal(where(model.rules[4]!.pos), `a.yaml:${ruleLine(text, 4)}:5 rules[4]`);
});

test("policies handed back in turn read their own table, kept by their objects", async () => {
  const [textA, textB] = [mixedPolicy(60), mixedPolicy(80)];
  const a = (await handedBack(textA, "a.yaml")).policy!.model;
  const b = (await handedBack(textB, "b.yaml")).policy!.model;
  gc();
  for (const [model, file, text] of [
    [a, "a.yaml", textA],
    [b, "b.yaml", textB],
  ] as const) {
    for (const [kind, obj] of Object.entries(holders(model, 40))) {
      assert.equal(obj.pos.file, file, kind);
      assert.ok(hasFastProperties(obj), `${file} ${kind}: a shape of its own`);
    }
    const line = ruleLine(text, 40) + 4;
    assert.equal(where(model.rules[40]!.layer4!.pos), `${file}:${line}:13 rules[40].layer4`);
  }
});
