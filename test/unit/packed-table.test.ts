// A position table kept packed (src/host/packed-table.ts, PositionTable.keepPacked): the same
// FILE:LINE:COL and paths as the table it was packed from, with nothing held until one is read.
import { test } from "node:test";
import assert from "node:assert/strict";
import { plainPos, PositionTable, type SourcePos } from "../../src/config/index.ts";
import { readLean } from "../../src/config/lean-source.ts";
import { packedTable, packTable } from "../../src/host/packed-table.ts";

const TEXT = `version: 1
mode: prevent
rules:
  - name: ssh
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [22] }
  - { name: "web", direction: egress, action: block, layer3: { remote: [10.0.0.0/8, "::1"] } }
`;

/** The paths a check would ask for, each value's and key's position. */
const PATHS = [
  ["version"],
  ["rules", 0, "name"],
  ["rules", 0, "layer4", "port", 0],
  ["rules", 1, "layer3", "remote", 1],
  ["rules", 1, "action"],
  ["missing", "deeper"],
  ["mode"],
];

/** A lazy table as the worker has it: the file read the lean way, its positions asked, sealed. */
function workerTable(): { table: PositionTable; codes: number[] } {
  const source = readLean("p.yaml", TEXT);
  assert.ok(source, "read the lean way");
  const codes: number[] = [];
  for (const path of PATHS) {
    codes.push((source.pos(path) as unknown as { code: number }).code);
    codes.push((source.keyPos(path) as unknown as { code: number }).code);
  }
  source.done();
  return { table: source.table, codes };
}

const read = (table: PositionTable, codes: number[]): SourcePos[] =>
  codes.map((code) => plainPos(table.pos(code)));

test("a table kept packed reads every position as the table it was packed from", () => {
  const { table: worker, codes } = workerTable();
  const expected = read(worker, codes); // worked out from the text
  assert.ok(
    expected.some((p) => p.line === 8 && p.col > 1),
    expected.map((p) => p.path).join(),
  );
  const parts = worker.parts();
  // the daemon's copy: the parts without offsets, no text; then the worker's packed copy
  const daemon = new PositionTable({ ...parts, located: undefined, lineStarts: undefined });
  const packed = worker.withArrays(packTable); // as the worker does
  assert.equal(daemon.keepPacked(packedTable(packed)), true);
  assert.equal(daemon.made, false, "nothing made until a position is read");
  assert.deepEqual(read(daemon, codes), expected);
  assert.equal(daemon.made, true);
  daemon.letMadeGo();
  assert.equal(daemon.made, false);
  assert.equal(daemon.pos(codes[5]!).path, "rules[0].layer4.port[0]", "its path made again");
  assert.deepEqual(read(daemon, codes), expected);
});

test("a packed copy of another table is not kept", () => {
  const { table: worker } = workerTable();
  const parts = worker.parts();
  const packed = worker.withArrays(packTable);
  const other = new PositionTable({
    ...parts,
    parent: parts.parent.subarray(1),
    segment: parts.segment.subarray(1),
  });
  assert.equal(other.keepPacked(packedTable(packed)), false, "another count of entries");
  assert.equal(other.made, true);
});
