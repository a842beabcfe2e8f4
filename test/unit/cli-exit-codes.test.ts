// The exit codes docs/operations.md documents are the ones the CLI uses (src/cli/exit-codes.ts,
// which the man pages' EXIT STATUS comes from), row for row.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { EXIT_TABLE, verdictExit } from "../../src/cli/exit-codes.ts";
import { ROOT } from "../helpers/paths.ts";

test("docs/operations.md lists every exit code with the CLI's own words", () => {
  const doc = readFileSync(`${ROOT}docs/operations.md`, "utf8");
  const section = doc.slice(doc.indexOf("## CLI exit codes"));
  const rows = [...section.matchAll(/^\| (\d+) \| (.+) \|$/gm)].map((m): [number, string] => [
    Number(m[1]),
    m[2] ?? "",
  ]);
  assert.deepEqual(rows.slice(0, EXIT_TABLE.length), EXIT_TABLE);
});

test("moat explain's exit code by verdict: allowed is success, each other verdict its own", () => {
  const codes = (["allowed", "blocked", "detected", "deferred"] as const).map(verdictExit);
  assert.deepEqual(codes, [0, 3, 4, 5]);
});
