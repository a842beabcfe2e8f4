// A TablePos is its number alone: its table is on the prototype of the table's own class
// (src/config/positions.ts). What a position says, and how it is told apart, is as before.
import { test } from "node:test";
import assert from "node:assert/strict";
import { plainPos, PositionTable, TablePos } from "../../src/config/index.ts";

const TEXT = "rules:\n  - name: ssh\n    action: allow\n";

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
