// A TablePos is its number alone: its table is on the prototype of the table's own class
// (src/config/positions.ts). What a position says, and how it is told apart, is as before.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { plainPos, PositionTable, TablePos } from "../../src/config/index.ts";
import type { LazySource, PackedTable } from "../../src/config/positions.ts";

const TEXT = "rules:\n  - name: ssh\n    action: allow\n";

/** A locator for a table whose offsets are known: none is asked of it. */
const noLocator = (): never => {
  throw new Error("the text was read again");
};

/** A table with the entries rules, rules[0], rules[0].name. */
function table(file: string): { table: PositionTable; name: number } {
  const t = PositionTable.of(file, TEXT);
  const rules = t.add(-1, "rules");
  const first = t.add(rules, 0);
  return { table: t, name: t.add(first, "name") };
}

test("a table's positions say where they are, as plain positions do", () => {
  const { table: t, name } = table("p.yaml");
  const pos = t.at(name, TEXT.indexOf("ssh"));
  assert.ok(pos instanceof TablePos);
  assert.equal(pos.table, t);
  assert.deepEqual([pos.file, pos.line, pos.col, pos.path], ["p.yaml", 2, 11, "rules[0].name"]);
  assert.deepEqual(pos.toJSON(), { file: "p.yaml", line: 2, col: 11, path: "rules[0].name" });
  assert.equal(JSON.stringify({ pos }), JSON.stringify({ pos: plainPos(pos) }));
  assert.equal(pos.constructor.name, "TablePos");
});

test("new TablePos(table, code) is the table's own position of that number", () => {
  const { table: t, name } = table("p.yaml");
  const pos = t.at(name, TEXT.indexOf("ssh"));
  const made = new TablePos(t, pos.code);
  assert.ok(made instanceof TablePos);
  assert.equal(Object.getPrototypeOf(made), Object.getPrototypeOf(pos));
  assert.equal(made.table, t);
  assert.deepEqual(made.toJSON(), pos.toJSON());
  assert.deepEqual(t.pos(pos.code).toJSON(), pos.toJSON());
});

test("a position holds its number only; positions of two tables keep their own table", () => {
  const a = table("a.yaml");
  const b = table("b.yaml");
  const pa = a.table.at(a.name, 0);
  const pb = b.table.at(b.name, 0);
  assert.deepEqual(Object.keys(pa), ["code"]);
  assert.equal(pa.table, a.table);
  assert.equal(pb.table, b.table);
  assert.equal(pa.file, "a.yaml");
  assert.equal(pb.file, "b.yaml");
  assert.ok(pb instanceof TablePos);
});

/**
 * Collects until `ref` is garbage (a collection may leave it to the next), or 10 tries; each in a
 * turn of its own (a WeakRef's target is held until the turn that made it ends).
 */
async function collected(ref: WeakRef<object>): Promise<boolean> {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  for (let i = 0; i < 10 && ref.deref(); i++) {
    await new Promise((resolve) => setImmediate(resolve));
    gc();
  }
  return ref.deref() === undefined;
}

test("a sealed table lets its text go once it knows where every line starts", async () => {
  const { table: t, name } = table("p.yaml");
  const parts = t.parts();
  delete parts.lineStarts; // worked out from the text when a line is first read
  let source: LazySource | undefined = { text: TEXT, locator: noLocator, sealed: true };
  const ref = new WeakRef(source);
  const kept = new PositionTable(parts, undefined, source);
  source = undefined;
  const pos = kept.pos(t.at(name, TEXT.indexOf("ssh")).code);
  assert.deepEqual([pos.line, pos.col, pos.path], [2, 11, "rules[0].name"]);
  assert.ok(await collected(ref), "the text is not held once the line starts are known");
  assert.deepEqual([pos.line, pos.col], [2, 11]);
});

test("a sealed lazy table lets its text go once it keeps another thread's packed copy", async () => {
  const names = ["rules", "name"];
  const parts = {
    file: "p.yaml",
    parent: Int32Array.of(-1, 0, 1),
    segment: Int32Array.of(-1, 0, -2),
    names,
    lazy: true,
  };
  let source: LazySource | undefined = { text: TEXT, locator: noLocator, sealed: true };
  const ref = new WeakRef(source);
  const kept = new PositionTable(parts, undefined, source);
  source = undefined;
  // value and key of the root, then of each entry: rules[0].name's value is "ssh"
  const offsets = Int32Array.of(0, 0, 7, 0, 9, 9, TEXT.indexOf("ssh"), TEXT.indexOf("name"));
  const packed: PackedTable = {
    entries: 3,
    unpack: () => ({ ...parts, offsets, lineStarts: Int32Array.of(0, 7, 21) }),
  };
  assert.equal(kept.keepPacked(packed), true);
  assert.ok(await collected(ref), "the text is not held once the packed copy is kept");
  const pos = kept.at(2, 0);
  assert.deepEqual([pos.line, pos.col, pos.path], [2, 11, "rules[0].name"]);
  assert.deepEqual(kept.at(2, 1).toJSON(), {
    file: "p.yaml",
    line: 2,
    col: 5,
    path: "rules[0].name",
  });
});
