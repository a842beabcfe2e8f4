// A policy accepted on the worker thread comes back as the same policy the daemon's thread would
// accept: every position (FILE:LINE:COL and path, as messages and `moat explain` show them), the
// model and the kernel tables; and its problems are the same lines. The positions cross as numbers
// with their table (src/host/accept-handback.ts).
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { acceptPolicy } from "../../src/host/accept-policy.ts";
import type { Acceptance } from "../../src/host/accept-policy.ts";
import { packAcceptance, unpackAcceptance } from "../../src/host/accept-handback.ts";
import { PART_ITEMS } from "../../src/host/handback-lists.ts";
import { letRulesGo, rulesSoon } from "../../src/host/kept-rules.ts";
import { EntriesWriter, lazyEntries } from "../../src/host/handback-entries.ts";
import {
  acceptPlaces,
  acceptPolicyOffThread,
  afterAcceptWorkerStops,
  locateOffThread,
  setAcceptWorkerTimes,
  setTablesAheadEntries,
  stopAcceptWorker,
} from "../../src/host/accept-off-thread.ts";
import {
  formatDiagnostic,
  plainPos,
  setPackedHoldMs,
  TablePos,
  type AddressEntry,
  type IntervalEntry,
  type SourcePos,
} from "../../src/config/index.ts";
import { NameClasses, tableImage, type TableImage } from "../../src/policy/index.ts";
import { addressIndex, knownAddressIndex } from "../../src/policy/address-index.ts";
import { Attribution } from "../../src/attribution/index.ts";
import { readQueriedUniverse } from "../../src/host/process-universe.ts";
import type { ProcessUniverse, UniverseQuery } from "../../src/policy/index.ts";
import { mixedPolicy } from "../../bench/compile.ts";

/** Every value as JSON would write it, positions resolved, bigints spelled out, byte arrays as
 * their length and digest (an image's tables are megabytes: spelled out number by number, the
 * comparison took most of this file's time). */
function spelled(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === "bigint") return `${v}n`;
    if (ArrayBuffer.isView(v)) return bytesOf(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    if (v instanceof Map) return [...v.entries()];
    if (v instanceof Set) return [...v.values()];
    // a Buffer writes itself as { type, data } (its toJSON); a copy of it arrives as a Uint8Array
    if (v && typeof v === "object" && (v as { type?: unknown }).type === "Buffer")
      return bytesOf(Uint8Array.from((v as { data: number[] }).data));
    return v;
  });
}

function bytesOf(bytes: Uint8Array): string {
  return `${bytes.length} bytes, sha256 ${createHash("sha256").update(bytes).digest("hex")}`;
}

/** The positions of a value, in the order met, as plain positions. */
function positions(value: unknown, out: SourcePos[] = []): SourcePos[] {
  if (typeof value !== "object" || value === null || ArrayBuffer.isView(value)) return out;
  if (value instanceof TablePos) return out;
  const items = value instanceof Map ? [...value.values()] : Object.values(value);
  const pos = (value as { pos?: unknown }).pos;
  if (pos && typeof pos === "object") out.push(plainPos(pos as SourcePos));
  for (const item of items) positions(item, out);
  return out;
}

const SETS = `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
sets:
  corp: ["10.0.0.0/8", "192.0.2.0/24"]
  web: [80, "8000-8099"]
rules:
  - name: corp-in
    direction: ingress
    action: allow
    layer3: { remote: [set:corp, "!10.9.0.0/16"] }
    layer4: { protocol: tcp, port: [set:web, 22] }
  - name: ping
    direction: any
    action: allow
    layer4: { protocol: icmp, icmp: { type: 8 } }
`;

test("the worker hands back the model, its positions and the image unchanged", async (t) => {
  t.after(() => stopAcceptWorker());
  for (const [name, text] of [
    ["sets.yaml", SETS],
    ["mixed.yaml", mixedPolicy(300)],
    ...["server", "l7", "ids", "rate-limits", "flood", "workstation"].map(
      (f) => [`examples/${f}.yaml`, readFileSync(`examples/${f}.yaml`, "utf8")] as const,
    ),
  ] as const) {
    const here = acceptPolicy(text, name);
    const there = await acceptPolicyOffThread(text, name);
    assert.ok(here.policy && there.policy, `${name}: accepted`);
    const [a, b] = [positions(here.policy.model), positions(there.policy.model)];
    assert.ok(a.length > 0, `${name}: has positions`);
    assert.deepEqual(b, a, `${name}: positions`);
    assert.equal(spelled(there.policy), spelled(here.policy), `${name}: model and image`);
    assert.deepEqual(
      there.diagnostics.map(formatDiagnostic),
      here.diagnostics.map(formatDiagnostic),
    );
  }
});

test("a big policy's packet tables come ahead of it, as its image has them; a small one's do not", async (t) => {
  t.after(() => {
    setTablesAheadEntries(undefined);
    return stopAcceptWorker();
  });
  const big = mixedPolicy(2000); // its tables hold ~140,000 entries
  setTablesAheadEntries(135_000);
  const came: TableImage[] = [];
  let answered = false;
  const tablesAhead = (tables: TableImage) => {
    assert.equal(answered, false, "the tables come before the acceptance");
    came.push(tables);
  };
  const acceptance = await acceptPolicyOffThread(big, "big.yaml", { tablesAhead });
  answered = true;
  assert.ok(acceptance.policy, "accepted");
  assert.equal(came.length, 1);
  assert.deepEqual(came[0], tableImage(acceptance.policy.image.packet));
  assert.deepEqual(came[0], tableImage(acceptPolicy(big, "big.yaml").policy!.image.packet));
  // under the size: nothing ahead, the same acceptance
  const small = mixedPolicy(300);
  const none: TableImage[] = [];
  const after = await acceptPolicyOffThread(small, "small.yaml", {
    tablesAhead: (tables) => none.push(tables),
  });
  assert.ok(after.policy, "accepted");
  assert.equal(none.length, 0);
  // a refused policy sends none
  const refused = await acceptPolicyOffThread("version: 1\nrules: 3\n", "bad.yaml", {
    tablesAhead: (tables) => none.push(tables),
  });
  assert.equal(refused.policy, undefined);
  assert.equal(none.length, 0);
});

/**
 * A folder with many.txt, a set file of 3,000 lines: IPv4 and IPv6 (bounds past 64 bits), single
 * addresses and prefixes. Removed after the test, and the worker stopped.
 */
function setFileFolder(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "moat-handback-"));
  t.after(() => {
    rmSync(dir, { recursive: true, force: true });
    return stopAcceptWorker();
  });
  const lines = Array.from({ length: 3000 }, (_, i) =>
    i % 3 === 2
      ? `2001:db8:${((i * 7919) % 65536).toString(16)}::/48`
      : `${10 + (i % 200)}.${(i * 31) % 256}.${(i * 17) % 256}.${i % 256}${i % 2 ? "/32" : ""}`,
  );
  writeFileSync(join(dir, "many.txt"), lines.join("\n") + "\n");
  return dir;
}

test("a set file's thousands of entries come back as the same entries, each at its line", async (t) => {
  const dir = setFileFolder(t);
  const file = join(dir, "policy.yaml");
  const text = `${SETS.replace("sets:\n", "sets:\n  many: { file: many.txt }\n")}  - name: many-out
    direction: egress
    action: block
    layer3: { remote: [set:many] }
  - name: many-in
    direction: ingress
    action: block
    layer3: { remote: [set:many] }
`;
  writeFileSync(file, text);
  const here = acceptPolicy(text, file);
  const there = await acceptPolicyOffThread(text, file);
  // what crossed: the set's entries as columns (packing replaces them in the acceptance it packs)
  const { packed } = packAcceptance(acceptPolicy(text, file));
  assert.equal(packed.entries?.length, 1, "one list went as columns");
  assert.equal(packed.entries?.[0]?.negate.length, 3000);
  assert.ok(here.policy && there.policy, here.diagnostics.map(formatDiagnostic).join("\n"));
  const many = (p: typeof here.policy) => p?.model.sets.get("many");
  assert.equal(many(there.policy)?.entries.length, 3000);
  const at = positions(many(there.policy)?.entries).map((p) => `${p.file}:${p.line}:${p.col}`);
  assert.equal(at[2999], `${join(dir, "many.txt")}:3000:1`);
  assert.deepEqual(positions(there.policy.model), positions(here.policy.model));
  assert.equal(spelled(there.policy), spelled(here.policy));
});

test("a big policy's rules cross in parts, the daemon's thread reading one a turn", async (t) => {
  t.after(() => stopAcceptWorker());
  const rules = 2 * PART_ITEMS + 100;
  const text = mixedPolicy(rules);
  const here = acceptPolicy(text, "big.yaml");
  const there = await acceptPolicyOffThread(text, "big.yaml");
  assert.ok(here.policy && there.policy, "accepted");
  assert.equal(there.policy.model.rules.length, rules);
  assert.deepEqual(positions(there.policy.model), positions(here.policy.model));
  assert.equal(spelled(there.policy), spelled(here.policy));
  // what crossed: the model's rules and the image's, three parts each, read between turns
  const { packed } = packAcceptance(acceptPolicy(text, "big.yaml"));
  assert.deepEqual(
    packed.lists?.map((l) => [l.length, l.parts.length]).sort(),
    [
      [rules + 2, 3], // the image's rules and its two defaults
      [rules, 3],
    ].sort(),
  );
  let turns = 0;
  const back = await unpackAcceptance(packed, text, async () => {
    turns++;
    await new Promise((resolve) => setImmediate(resolve));
  });
  assert.equal(turns, 6);
  assert.equal(spelled(back.acceptance.policy), spelled(here.policy));
});

test("a big model's rules are kept as their columns: made while read, let go unread, made again the same", async () => {
  const rules = PART_ITEMS + 50;
  const text =
    mixedPolicy(rules).replace(
      "rules:\n",
      `sets:\n  corp: ["10.0.0.0/8", "192.0.2.0/24"]\nrules:\n`,
    ) + "  - { name: corp, direction: ingress, action: allow, layer3: { remote: [set:corp] } }\n";
  const here = acceptPolicy(text, "kept.yaml");
  assert.ok(here.policy, here.diagnostics.map(formatDiagnostic).join("\n"));
  const { packed } = packAcceptance(acceptPolicy(text, "kept.yaml"));
  const back = await unpackAcceptance(packed, text, undefined, { from: rules, idleMs: 50 });
  const model = back.acceptance.policy!.model;
  const first = model.rules;
  assert.equal(first.length, rules + 1);
  assert.equal(model.rules, first, "read again while made: the same rules");
  assert.equal(spelled(back.acceptance.policy), spelled(here.policy));
  await new Promise((resolve) => setTimeout(resolve, 150));
  const again = model.rules;
  assert.notEqual(again, first, "let go once unread, and made again");
  assert.equal(spelled(again), spelled(first));
  assert.deepEqual(positions(again), positions(here.policy.model.rules));
  // made ahead of a read to come, a part a turn: the read then finds them made
  await new Promise((resolve) => setTimeout(resolve, 150));
  let turns = 0;
  await rulesSoon(model, async () => void turns++);
  assert.equal(turns, 2, "two parts, a turn each");
  const soon = model.rules;
  assert.notEqual(soon, again);
  assert.equal(spelled(soon), spelled(first));
  await rulesSoon(model, async () => void turns++);
  assert.equal(turns, 2, "made already: nothing to do");
  // made again after being let go, they stay twice as long: still made after the first idle time
  await new Promise((resolve) => setTimeout(resolve, 150));
  assert.equal(model.rules, soon, "read again within twice the idle time: the same rules");
  // a policy replaced lets its rules go at once
  letRulesGo(model);
  assert.notEqual(model.rules, soon);
  // a copy of the model carries its rules; a value assigned replaces them
  assert.equal(spelled({ ...model }.rules), spelled(first));
  model.rules = [];
  assert.deepEqual(model.rules, []);
  await rulesSoon(model, async () => void turns++);
  assert.equal(turns, 2);
});

test("addresses in a list that crossed in parts keep only their bytes, not the parts", async () => {
  // a trie's entries: views into one buffer of addresses
  const count = PART_ITEMS + 904;
  const addresses = new Uint8Array(16 * count);
  const remote6 = Array.from({ length: count }, (_, i) => {
    addresses[16 * i] = 0x20;
    addresses[16 * i + 15] = i & 255;
    return { prefixlen: 128, addr: addresses.subarray(16 * i, 16 * i + 16), cls: i + 1 };
  });
  const policy = { model: { rules: [] }, image: { packet: { remote6 } } };
  const { packed } = packAcceptance({
    diagnostics: [],
    policy: policy as unknown as NonNullable<Acceptance["policy"]>,
  });
  assert.equal(packed.lists?.[0]?.parts.length, 2, "in two parts");
  const back = await unpackAcceptance(packed);
  const entries = (back.acceptance.policy?.image.packet.remote6 ?? []) as typeof remote6;
  assert.equal(entries.length, count);
  assert.deepEqual(
    entries.map((e) => [e.prefixlen, e.addr[0], e.addr[15], e.cls]),
    remote6.map((e, i) => [128, 0x20, i & 255, i + 1]),
  );
  // the parts' other bytes (keys, numbers) are not kept alive by the addresses
  const kept = new Set(entries.map((e) => e.addr.buffer));
  const bytes = [...kept].reduce((n, b) => n + b.byteLength, 0);
  assert.ok(bytes <= 16 * count, `${bytes} bytes kept for ${16 * count} bytes of addresses`);
});

test("a list of 100k entries comes back as the same entries in the same order, each made when read", () => {
  const pos = (i: number): SourcePos => ({ file: "f.txt", line: i + 1, col: 1, path: "sets.f" });
  const list: IntervalEntry[] = Array.from({ length: 100_000 }, (_, i) => ({
    kind: "interval",
    text:
      i % 5 === 0 ? `2001:db8::${i.toString(16)}` : `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`,
    negate: i % 7 === 0,
    pos: pos(i),
    family: i % 5 === 0 ? 6 : 4,
    start: i % 5 === 0 ? (0x20010db8n << 96n) | BigInt(i) : 0x0a000000n + BigInt(i),
    end: i % 5 === 0 ? (0x20010db8n << 96n) | BigInt(i) : 0x0a000000n + BigInt(i),
  }));
  const writer = new EntriesWriter((p) => (p as SourcePos).line - 1);
  assert.ok(writer.ref(list), "packed as columns");
  const back = lazyEntries(writer.lists[0]!, pos);
  assert.ok(Array.isArray(back));
  assert.equal(back.length, 100_000);
  assert.deepEqual(back[99_999], list[99_999]);
  assert.deepEqual(back.at(-5), list.at(-5));
  assert.equal(back[100_000], undefined);
  assert.ok(0 in back && !(100_000 in back));
  assert.equal(back.indexOf(back[70_000]!), 70_000, "an entry read twice is one object");
  assert.deepEqual(
    back.filter((e) => e.negate).map((e) => e.text),
    list.filter((e) => e.negate).map((e) => e.text),
  );
  assert.deepEqual([...back].slice(0, 3), list.slice(0, 3));
  assert.equal(
    JSON.stringify(back, (_, v: unknown) => (typeof v === "bigint" ? `${v}` : v)),
    JSON.stringify(list, (_, v: unknown) => (typeof v === "bigint" ? `${v}` : v)),
  );
  assert.deepEqual(Object.keys(back), Object.keys(list));
  assert.deepEqual(back, list);
});

/**
 * An acceptance whose set's entries crossed as columns, unpacked, and a weak ref to those columns.
 * Made in a function of its own: a suspended async function keeps its temporaries (the message,
 * the columns) in its saved frame, and the test's frame must hold nothing of the message.
 */
async function unpackedSets(): Promise<{
  back: Awaited<ReturnType<typeof unpackAcceptance>>;
  columns: WeakRef<object>;
}> {
  const file = "/etc/moat/policy.yaml";
  const entries: IntervalEntry[] = Array.from({ length: 2 * 1024 }, (_, i) => ({
    kind: "interval",
    text: `10.0.${i >> 8}.${i & 255}`,
    negate: false,
    pos: { file: "/etc/moat/list.txt", line: i + 1, col: 1, path: "sets.list" },
    family: 4,
    start: 0x0a000000n + BigInt(i),
    end: 0x0a000000n + BigInt(i),
  }));
  const accepted = acceptPolicy(SETS, file);
  assert.ok(accepted.policy);
  accepted.policy.model.sets.get("corp")!.entries = entries;
  const { packed } = packAcceptance(accepted);
  assert.equal(packed.entries?.length, 1, "the entries went as columns");
  const columns = new WeakRef(packed.entries![0]!.bounds);
  return { back: await unpackAcceptance(packed, SETS), columns };
}

test("what crossed is let go once every entry is read: the policy keeps its entries, not the message's columns", async () => {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const { back, columns } = await unpackedSets();
  const entries = back.acceptance.policy?.model.sets.get("corp")?.entries ?? [];
  assert.equal(entries[2047]?.text, "10.0.7.255");
  assert.equal(entries.filter((e) => e.text.startsWith("10.0.")).length, 2048);
  // a collection can leave what became garbage meanwhile to the next one
  for (let i = 0; i < 10 && columns.deref(); i++) {
    await new Promise((resolve) => setImmediate(resolve));
    gc();
  }
  assert.equal(back.acceptance.policy?.model.sets.get("corp")?.entries.length, 2048);
  assert.equal(columns.deref(), undefined, "the columns are garbage");
});

test("the worker's problems are the same lines, FILE:LINE:COL and path", async (t) => {
  t.after(() => stopAcceptWorker());
  for (const file of ["semantic-errors.yaml", "schema-errors.yaml", "shadowed.yaml", "full.yaml"]) {
    const path = `test/fixtures/policies/${file}`;
    const text = readFileSync(path, "utf8");
    const here = acceptPolicy(text, path).diagnostics.map(formatDiagnostic);
    const there = (await acceptPolicyOffThread(text, path)).diagnostics.map(formatDiagnostic);
    assert.ok(here.length > 0, `${file}: has diagnostics`);
    assert.deepEqual(there, here, file);
  }
});

test("the daemon hears when the worker has stopped, to give its freed memory back", async (t) => {
  let stops = 0;
  const stopped = new Promise<void>((resolve) =>
    afterAcceptWorkerStops(() => {
      stops++;
      resolve();
    }),
  );
  t.after(() => afterAcceptWorkerStops(undefined));
  const accepted = await acceptPolicyOffThread(SETS, "sets.yaml");
  assert.ok(accepted.policy, "accepted");
  assert.equal(stops, 0, "not while it is running");
  await stopAcceptWorker();
  await stopped;
  assert.equal(stops, 1);
});

/** Counts the worker's stops from now on; undone after the test. */
function countStops(t: TestContext): { stops: () => number } {
  let stops = 0;
  afterAcceptWorkerStops(() => stops++);
  t.after(() => afterAcceptWorkerStops(undefined));
  return { stops: () => stops };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `stops()` reaches `count` or `deadlineMs` passes; when it ended. */
async function waitForStops(stops: () => number, count: number, deadlineMs: number) {
  const start = performance.now();
  while (stops() < count && performance.now() - start < deadlineMs) await sleep(20);
  return performance.now();
}

test("a worker stays while changes come in a row and its heap is small, then stops", async (t) => {
  await stopAcceptWorker();
  // a row as wide as a slow machine's worker start needs; a short stay
  const warmMs = 5_000;
  setAcceptWorkerTimes({ stopMs: 100, rowMs: 60_000, warmMs });
  t.after(() => setAcceptWorkerTimes({ stopMs: 5_000, rowMs: 30_000, warmMs: 30_000 }));
  const { stops } = countStops(t);
  assert.ok((await acceptPolicyOffThread(SETS, "sets.yaml")).policy);
  await waitForStops(stops, 1, warmMs - 1_000);
  assert.equal(
    stops(),
    1,
    "a change on its own (as the daemon's start): stopped at the first wait",
  );
  assert.ok((await acceptPolicyOffThread(SETS, "sets.yaml")).policy);
  await sleep(300);
  assert.equal(stops(), 1, "the second of a row: still there past the first wait");
  assert.ok((await acceptPolicyOffThread(SETS, "sets.yaml")).policy);
  const third = performance.now();
  await sleep(300);
  assert.equal(stops(), 1, "the third found it, and its wait began again");
  const stayed = (await waitForStops(stops, 2, warmMs * 3)) - third;
  assert.equal(stops(), 2, "stopped once idle past the warm time");
  assert.ok(stayed >= warmMs - 100, `it stayed the warm time: ${stayed} ms after the third`);
});

test("a worker whose heap is big stops at the first wait, even in a row of changes", async (t) => {
  await stopAcceptWorker();
  // every heap counts as big
  setAcceptWorkerTimes({ stopMs: 100, rowMs: 60_000, warmMs: 10_000, warmHeapBytes: 0 });
  t.after(() =>
    setAcceptWorkerTimes({
      stopMs: 5_000,
      rowMs: 30_000,
      warmMs: 30_000,
      warmHeapBytes: 64 * 2 ** 20,
    }),
  );
  const { stops } = countStops(t);
  assert.ok((await acceptPolicyOffThread(SETS, "sets.yaml")).policy);
  assert.ok((await acceptPolicyOffThread(SETS, "sets.yaml")).policy);
  await waitForStops(stops, 1, 8_000);
  assert.equal(stops(), 1, "stopped before the warm time");
});

test("the worker works out where each rule is, so the daemon's thread never reads the file again", async (t) => {
  t.after(() => stopAcceptWorker());
  const text = mixedPolicy(300);
  const there = await acceptPolicyOffThread(text, "mixed.yaml");
  const pos = there.policy?.model.rules[0]?.pos;
  assert.ok(there.policy && pos instanceof TablePos, "a position of the worker's table");
  // as the daemon does once the policy is in place; a read of a line now would work the offsets
  // out on this thread: none is made until they came
  locateOffThread(there.policy.model);
  for (let i = 0; i < 200 && !pos.table.located; i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(pos.table.located, "the worker sent the offsets of every entry");
  const here = acceptPolicy(text, "mixed.yaml");
  assert.deepEqual(positions(there.policy?.model), positions(here.policy?.model));
});

test("a policy from the worker holds its position table packed: made when a position is read, let go after", async (t) => {
  setPackedHoldMs(200);
  t.after(() => {
    setPackedHoldMs(undefined);
    return stopAcceptWorker();
  });
  const text = mixedPolicy(300);
  const there = await acceptPolicyOffThread(text, "mixed.yaml");
  const model = there.policy?.model;
  const pos = model?.rules[0]?.pos;
  assert.ok(model && pos instanceof TablePos, "a position of the worker's table");
  locateOffThread(model); // as the daemon does once the policy is in place
  for (let i = 0; i < 200 && !pos.table.located; i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(pos.table.located, "the worker sent where every entry is");
  assert.equal(pos.table.made, false, "held packed while no position is read");
  const here = positions(acceptPolicy(text, "mixed.yaml").policy?.model);
  assert.deepEqual(positions(model), here, "every FILE:LINE:COL and path as read here");
  assert.equal(pos.table.made, true, "made when a position was read");
  for (let i = 0; i < 100 && pos.table.made; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(pos.table.made, false, "let go once none was read for a while");
  assert.deepEqual(positions(model), here, "and made again, the same, when read again");
});

test("a policy that names hosts crosses from the worker with its name classes", async () => {
  const text = `version: 1
mode: prevent
attach: { cgroup: / }
rules:
  - { name: web, direction: egress, action: allow, layer3: { remote: ["**.example.org", "api.test"] } }
  - { name: one, direction: egress, action: block, layer3: { remote: ["*.ads.example.org"] } }
`;
  const here = acceptPolicy(text, "names.yaml");
  assert.ok(here.policy?.image.names, here.diagnostics.map(formatDiagnostic).join("\n"));
  // as a message carries it: packed, copied (structured clone, buffers moved), unpacked
  const { packed, transfer } = packAcceptance(acceptPolicy(text, "names.yaml"));
  const back = await unpackAcceptance(structuredClone(packed, { transfer }), text);
  const names = back.acceptance.policy?.image.names;
  assert.ok(names?.classes instanceof NameClasses, "a class again, with its lookups");
  assert.equal(spelled(back.acceptance.policy), spelled(here.policy));
  assert.equal(names.classes.signature, here.policy.image.names.classes.signature);
  for (const seen of [["www.example.org"], ["api.test"], ["x.ads.example.org"], ["other.test"]])
    assert.equal(
      names.classes.classOf(seen),
      here.policy.image.names.classes.classOf(seen),
      `${seen}`,
    );
});

test("a big set's lookup index is built on the worker when the daemon judges in user space", async (t) => {
  const dir = setFileFolder(t);
  const file = join(dir, "policy.yaml");
  const policy = (names: string) => `version: 1
mode: prevent
attach: { cgroup: / }
sets: { many: { file: many.txt } }
rules:
  - { name: many, direction: any, action: block, layer3: { remote: [set:many] } }
${names}`;
  // names in use: the DNS proxy judges each query with the evaluator
  const web =
    '  - { name: web, direction: egress, action: allow, layer3: { remote: ["**.example.org"] } }\n';
  const named = await acceptPolicyOffThread(policy(web), file);
  assert.deepEqual(named.diagnostics.map(formatDiagnostic), []);
  const entries = named.policy?.model.sets.get("many")?.entries as AddressEntry[] | undefined;
  assert.ok(entries);
  const index = knownAddressIndex(entries);
  assert.ok(index, "the index came with the entries");
  // the same as the daemon's thread would build from the entries
  assert.equal(spelled(index), spelled(addressIndex([...entries])));
  // no judging in user space: nothing is built for it
  const plain = await acceptPolicyOffThread(policy(""), file);
  const plainEntries = plain.policy?.model.sets.get("many")?.entries as AddressEntry[] | undefined;
  assert.ok(plainEntries);
  assert.equal(knownAddressIndex(plainEntries), undefined);
});

test("a policy with process rules is accepted on the worker, which asks this thread what the host has", async () => {
  const text = `version: 1
mode: prevent
attach: { cgroup: / }
rules:
  - name: curl
    direction: egress
    action: allow
    layer4: { protocol: tcp, port: [443] }
    process: { path: ["/usr/bin/cur*"], user: [root, 1000] }
  - name: services
    direction: egress
    action: block
    layer4: { protocol: udp }
    process: { name: ["nc*"], cgroup: ["/system.slice"] }
  - name: loopback
    direction: egress
    action: allow
    layer4: { protocol: tcp }
    interface: { name: [lo] }
`;
  const attribution = new Attribution();
  const asked: UniverseQuery[] = [];
  const universe = (query: UniverseQuery) => {
    asked.push(query);
    return readQueriedUniverse(query, attribution);
  };
  const before = acceptPlaces();
  const there = await acceptPolicyOffThread(text, "process.yaml", { universe });
  const after = acceptPlaces();
  assert.equal(after.worker - before.worker, 1, "the worker accepted it");
  assert.equal(after.here - before.here, 0, "this thread did not accept it again");
  // the host was asked once, for what the rules name
  assert.deepEqual(asked, [
    { users: ["root"], paths: ["/usr/bin/cur*"], routes: true, cgroups: true },
  ]);
  const here = acceptPolicy(text, "process.yaml", { universe });
  assert.ok(here.policy, here.diagnostics.map(formatDiagnostic).join("\n"));
  assert.equal(spelled(there.policy), spelled(here.policy));
  assert.ok((there.policy?.image.socket?.process.count ?? 0) > 1, "process classes were compiled");
});

test("what the host has cannot be read: the worker's acceptance fails with the reader's error", async () => {
  const text = `version: 1
attach: { cgroup: / }
rules:
  - { name: u, direction: egress, action: allow, layer4: { protocol: tcp }, process: { user: [root] } }
`;
  const universe = (): never => {
    throw new Error("the host is gone");
  };
  await assert.rejects(acceptPolicyOffThread(text, "gone.yaml", { universe }), /the host is gone/);
  // the worker still answers after it
  const ok = await acceptPolicyOffThread(SETS, "sets.yaml");
  assert.ok(ok.policy);
});

test("an answer that came after its ask gave up is not taken for the next acceptance's", async (t) => {
  await stopAcceptWorker();
  setAcceptWorkerTimes({ hostWaitMs: 1_000 });
  t.after(async () => {
    setAcceptWorkerTimes({ hostWaitMs: 60_000 });
    await stopAcceptWorker();
  });
  const policy = (user: string) => `version: 1
attach: { cgroup: / }
rules:
  - { name: u, direction: egress, action: allow, layer4: { protocol: tcp }, process: { user: [${user}] } }
`;
  const universe =
    (users: Map<string, number>, busyMs = 0) =>
    (): ProcessUniverse => {
      const end = Date.now() + busyMs;
      while (Date.now() < end); // this thread is busy past the worker's wait
      return {
        executables: [],
        users,
        cgroups: [],
        routes: { image: { v4: [], v6: [] }, links: [], notes: [] },
      };
    };
  const slow = acceptPolicyOffThread(policy("alice"), "a.yaml", {
    universe: universe(new Map([["alice", 1111]]), 1_500),
  });
  const next = acceptPolicyOffThread(policy("bob"), "b.yaml", {
    universe: universe(new Map([["bob", 2222]])),
  });
  await assert.rejects(slow, /did not say what the host has within 1 s/);
  const accepted = await next;
  assert.ok(accepted.policy, accepted.diagnostics.map(formatDiagnostic).join("\n"));
  assert.deepEqual(
    accepted.policy.image.socket?.process.uid.map((u) => u.uid),
    [2222],
    "bob's own answer",
  );
});

test("an acceptance under way when the worker is stopped fails, it does not wait for ever", async () => {
  const text = mixedPolicy(20_000);
  const pendingAccept = acceptPolicyOffThread(text, "big.yaml");
  const failed = assert.rejects(pendingAccept, /the policy worker was stopped/);
  await sleep(50);
  await stopAcceptWorker();
  await failed;
  // a new worker takes the next one
  assert.ok((await acceptPolicyOffThread(SETS, "sets.yaml")).policy);
});
