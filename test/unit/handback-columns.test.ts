// What the daemon's thread makes of an accepted policy handed back by the worker (packed, copied as
// a message copies, unpacked: src/host/accept-handback.ts) is what a copy of the worker's own
// result would be: the same values, keys in the same order, positions pointing at the same places.
// Long lists go as columns (handback-columns.ts) or serialized (handback-lists.ts); both are
// compared against the acceptance that was never handed back, for every example, every policy
// fixture and generated policies, with parts of one item (every list in parts) and of PART_ITEMS.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { acceptPolicy, type Acceptance } from "../../src/host/accept-policy.ts";
import { packAcceptance, unpackAcceptance } from "../../src/host/accept-handback.ts";
import { PART_ITEMS } from "../../src/host/handback-lists.ts";
import { plainPos, TablePos } from "../../src/config/index.ts";
import { cidr, mixedPolicy, random } from "../../bench/compile.ts";

/**
 * `value` as a message's copy of it compares: positions as where they point, a typed array as its
 * kind and bytes (a Buffer arrives as a Uint8Array), an object as its keys in order with their
 * values, an array with its holes. A value reached twice is made once (a set's entries, shared by
 * the rules that name it, are not spelled out for each).
 */
function canon(value: unknown, made = new Map<object, unknown>()): unknown {
  if (typeof value !== "object" || value === null) return value;
  const known = made.get(value);
  if (known !== undefined) return known;
  let out: unknown;
  if (value instanceof TablePos) out = { "@pos": plainPos(value) };
  else if (ArrayBuffer.isView(value)) {
    const kind = value instanceof Buffer ? "Uint8Array" : value.constructor.name;
    out = { "@view": kind, bytes: digest(value) };
  } else if (value instanceof ArrayBuffer) out = { "@buffer": digest(new Uint8Array(value)) };
  else if (value instanceof Map) {
    const entries: unknown[] = [];
    made.set(value, (out = { "@map": entries }));
    for (const [k, v] of value) entries.push([canon(k, made), canon(v, made)]);
  } else if (value instanceof Set) {
    const items: unknown[] = [];
    made.set(value, (out = { "@set": items }));
    for (const v of value) items.push(canon(v, made));
  } else if (Array.isArray(value)) {
    const items: unknown[] = new Array(value.length);
    made.set(value, (out = items));
    for (let i = 0; i < value.length; i++) items[i] = i in value ? canon(value[i], made) : "@hole";
  } else {
    const keys: unknown[] = [];
    made.set(value, (out = { "@obj": keys }));
    for (const k of Object.keys(value))
      keys.push([k, canon((value as Record<string, unknown>)[k], made)]);
  }
  made.set(value, out);
  return out;
}

/**
 * Where `a` and `b` (canon()'s) first differ, or undefined: assert's own diff of two policies of
 * thousands of rules takes minutes to write.
 */
function difference(a: unknown, b: unknown, at = "", seen = new Set<object>()): string | undefined {
  if (typeof a !== "object" || a === null || typeof b !== "object" || b === null)
    return Object.is(a, b) ? undefined : `${at}: ${show(a)} != ${show(b)}`;
  if (seen.has(a)) return undefined;
  seen.add(a);
  if (Array.isArray(a) !== Array.isArray(b)) return `${at}: ${show(a)} != ${show(b)}`;
  const keys = Object.keys(a);
  if (keys.join() !== Object.keys(b).join())
    return `${at}: keys ${keys.join()} != ${Object.keys(b).join()}`;
  for (const k of keys) {
    const found = difference(
      (a as Record<string, unknown>)[k],
      (b as Record<string, unknown>)[k],
      `${at}.${k}`,
      seen,
    );
    if (found) return found;
  }
  return undefined;
}

const show = (v: unknown): string =>
  typeof v === "bigint" ? `${v}n` : typeof v === "object" ? JSON.stringify(v) : String(v);

function digest(v: ArrayBufferView): string {
  const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  return `${bytes.length}:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** `acceptance` handed back as the worker and the daemon's thread do (postMessage's copy). */
async function handedBack(
  acceptance: Acceptance,
  text?: string,
  partItems?: number,
): Promise<Acceptance> {
  const { packed, transfer } = packAcceptance(acceptance, partItems);
  const copy = structuredClone(packed, { transfer });
  return (await unpackAcceptance(copy, text)).acceptance;
}

type Policy = NonNullable<Acceptance["policy"]>;

/** An acceptance of a made-up policy (packing reads it as any object). */
const accepted = (policy: object): Acceptance => ({
  diagnostics: [],
  policy: policy as Policy,
});

/** Accepts `text` twice: one to hand back, one to compare with. */
async function assertSameAfterHandBack(
  label: string,
  text: string,
  file: string,
  partItems: number,
): Promise<void> {
  const reference = acceptPolicy(text, file);
  // the worker answers these with "accept it there" (accept-worker.ts): never handed back
  if (!reference.policy || reference.policy.image.names) return;
  const back = await handedBack(acceptPolicy(text, file), text, partItems);
  const found = difference(canon(back.policy), canon(reference.policy));
  assert.equal(found, undefined, `${label}, parts of ${partItems}`);
}

const policyFiles = [
  ...readdirSync("examples")
    .filter((f) => f.endsWith(".yaml"))
    .map((f) => `examples/${f}`),
  ...readdirSync("test/fixtures/policies")
    .filter((f) => f.endsWith(".yaml"))
    .map((f) => `test/fixtures/policies/${f}`),
  "test/fixtures/suggest/policy.yaml",
];

test("every example and policy fixture comes back as it was accepted, every list in parts", async () => {
  let handed = 0;
  for (const file of policyFiles) {
    const text = readFileSync(file, "utf8");
    for (const partItems of [1, 2, PART_ITEMS]) {
      await assertSameAfterHandBack(file, text, file, partItems);
    }
    if (acceptPolicy(text, file).policy) handed++;
  }
  assert.ok(handed >= 10, `${handed} policies handed back`);
});

/** `count` egress HTTP rules, each matching a header of its own name (an object keyed by names). */
function headerPolicy(count: number): string {
  const lines = ["version: 1", "mode: prevent", "defaults: { ingress: block, egress: allow }"];
  lines.push("attach: { cgroup: / }", "rules:");
  for (let i = 0; i < count; i++)
    lines.push(
      `  - name: h${i}`,
      "    direction: egress",
      "    action: block",
      "    layer4: { protocol: tcp, port: [80] }",
      `    layer7: { http: { headers: { x-h${i % 3 ? i : 0}: "v${i}*" } } }`,
    );
  return lines.join("\n") + "\n";
}

/** `count` rules naming a set file of `entries` CIDRs (columns of their own) and a short set. */
function setPolicy(dir: string, count: number, entries: number): { text: string; file: string } {
  const rand = random(entries);
  const cidrs = Array.from({ length: entries }, () => cidr(rand, 16));
  writeFileSync(join(dir, "many.txt"), cidrs.join("\n") + "\n");
  const lines = ["version: 1", "mode: prevent", "defaults: { ingress: block, egress: allow }"];
  lines.push("sets:", "  many: { file: many.txt }", '  few: ["192.0.2.0/24", "2001:db8::/32"]');
  lines.push("rules:");
  for (let i = 0; i < count; i++)
    lines.push(
      `  - name: s${i}`,
      `    direction: ${i % 2 ? "egress" : "ingress"}`,
      `    action: ${i % 3 ? "block" : "allow"}`,
      `    layer3: { remote: [${i % 2 ? "set:many" : "set:few"}, ${cidr(rand, 20)}] }`,
      `    layer4: { protocol: tcp, port: [${1 + i}] }`,
    );
  const file = join(dir, "policy.yaml");
  const text = lines.join("\n") + "\n";
  writeFileSync(file, text);
  return { text, file };
}

test("generated policies of thousands of rules come back as they were accepted", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-handback-columns-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const mixed = mixedPolicy(PART_ITEMS + 1000);
  await assertSameAfterHandBack("mixed", mixed, "mixed.yaml", PART_ITEMS);
  const headers = headerPolicy(PART_ITEMS + 200);
  await assertSameAfterHandBack("headers", headers, "headers.yaml", PART_ITEMS);
  const sets = setPolicy(dir, PART_ITEMS + 200, 2000);
  await assertSameAfterHandBack("sets", sets.text, sets.file, PART_ITEMS);
});

/** Values a list's items can hold, each kind once or more. */
function oddValues(): Record<string, unknown>[] {
  const shared = [1, 2, 3];
  const cyclic: unknown[] = ["self"];
  cyclic.push(cyclic);
  const holes = [1, , 3]; // eslint-disable-line no-sparse-arrays
  const frozen = Object.freeze(["frozen", shared]);
  const bytes = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  return [
    { n: 0, neg: -0, nan: NaN, inf: -Infinity, big: 2 ** 40, frac: 0.5, min: -(2 ** 31) },
    { t: true, f: false, u: undefined, z: null, s: "", long: "x".repeat(100) },
    { b: -(2n ** 63n), w: 2n ** 127n + 5n, z: 0n },
    { shared, again: shared, cyclic, holes, empty: [], frozen, nested: [[[]], [[1]]] },
    { buf: Buffer.from("abc"), sub: bytes.subarray(3, 7), f64: new Float64Array([1.5, -0]) },
    { i16: new Int16Array([-2, 7]), u64: new BigUint64Array([2n ** 64n - 1n]) },
    { "2": "integer key first", a: 1, "1": "then", pos: { file: "f", line: 1, col: 2, path: "p" } },
    { shared, holes: [, , "x"] }, // eslint-disable-line no-sparse-arrays
  ];
}

test("a list's odd values come back as a copy gives them", async () => {
  const make = () => ({
    model: { rules: Array.from({ length: 40 }, (_, i) => oddValues()[i % 8]) },
    image: {
      strings: Array.from({ length: 5000 }, (_, i) => ({ s: `s${i}`, k: i % 2 ? "a" : "b" })),
    },
  });
  // (a list not in parts is walked, and the walk takes the model for one without cycles)
  for (const partItems of [1, 3]) {
    const back = await handedBack(accepted(make()), undefined, partItems);
    assert.equal(difference(canon(back.policy), canon(make())), undefined, `parts of ${partItems}`);
  }
});

test("a list that goes serialized after parts as columns leaves the lists after it whole", async () => {
  // the first list's first part is columns (noting "shape" and its key); its second holds a Map
  const make = () => ({
    model: {
      first: [{ key: "shape" }, { key: "shape" }, { key: new Map([[1, 2]]) }],
      second: [{ key: "shape" }, { key: "shape" }, { key: "shape" }],
    },
    image: {},
  });
  const back = await handedBack(accepted(make()), undefined, 2);
  assert.equal(difference(canon(back.policy), canon(make())), undefined);
});

test("a name in lists dropped to serialized is not taken for one the reader has", async () => {
  // names are numbered across lists: the second list's first part numbers "n3" and "n4", then
  // its second part holds a Map and the list goes serialized; the third list has the first's
  // names at the same places, then "n3" and "n4" where the second list numbered them
  const make = () => ({
    model: {
      first: [{ name: "n1" }, { name: "n2" }, { name: "n1" }],
      second: [{ name: "n3" }, { name: "n4" }, { name: new Map([[1, 2]]) }],
      third: [
        ...[{ name: "n1" }, { name: "n2" }, { name: "n3" }, { name: "n4" }],
        ...[{ name: "n1" }, { name: 5 }, { name: null }],
      ],
    },
    image: {},
  });
  for (const partItems of [1, 2]) {
    const back = await handedBack(accepted(make()), undefined, partItems);
    assert.equal(difference(canon(back.policy), canon(make())), undefined, `parts of ${partItems}`);
  }
});

/** Keys a literal must spell with care, and a shape of more keys than a literal is made for. */
function manyShapes(i: number): Record<string, unknown> {
  const wide: Record<string, unknown> = {};
  for (let k = 0; k < 130; k++) wide[`k${k}`] = k === 0 ? i : `v${k}`;
  const shapes: Record<string, unknown>[] = [
    { name: `rule-${i}`, a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, pos: undefined },
    { 'a"b': i, "with space": "x", "back\\slash": 1, "\u2028": 2, "`${x}`": 3, "": 4 },
    { constructor: i, toString: "s", hasOwnProperty: null, valueOf: [i], then: { name: "t" } },
    { "10": "ten", "2": "two", z: i, "-1": "minus", "1.5": "frac", "007": "bond" },
    wide,
  ];
  return shapes[i % shapes.length]!;
}

test("objects of a shape met again and again come back with their keys in order, plain", async () => {
  const make = () => ({
    model: { rules: Array.from({ length: 200 }, (_, i) => manyShapes(i)) },
    image: { rules: Array.from({ length: 100 }, (_, i) => ({ name: `rule-${i * 5}`, x: i })) },
  });
  for (const partItems of [1, 7, PART_ITEMS]) {
    const back = await handedBack(accepted(make()), undefined, partItems);
    assert.equal(difference(canon(back.policy), canon(make())), undefined, `parts of ${partItems}`);
    const model = back.policy as unknown as { model: { rules: object[] } };
    for (const rule of model.model.rules)
      assert.equal(Object.getPrototypeOf(rule), Object.prototype, `parts of ${partItems}`);
  }
});
