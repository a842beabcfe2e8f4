// The policy diff (`moat policy apply --dry-run`, `moat suggest`): hunks as diff(1) writes them,
// and a big file's diff made whatever its size.
import { test } from "node:test";
import assert from "node:assert/strict";
import { unifiedDiff } from "../../src/policy/index.ts";

test("a changed line is one hunk with its context", () => {
  const a = "a\nb\nc\nd\ne\nf\ng\n";
  const b = "a\nb\nc\nD\ne\nf\ng\n";
  assert.deepEqual(unifiedDiff(a, b, "old", "new"), [
    "--- old",
    "+++ new",
    "@@ -1,7 +1,7 @@",
    " a",
    " b",
    " c",
    "-d",
    "+D",
    " e",
    " f",
    " g",
  ]);
  assert.deepEqual(unifiedDiff(a, a, "old", "new"), []);
});

test("a policy of 200,000 lines replaced whole is diffed, not a stack overflow", () => {
  const lines = (tag: string) =>
    Array.from({ length: 200_000 }, (_, i) => `  - ${tag}${i}`).join("\n");
  const out = unifiedDiff(`rules:\n${lines("a")}\n`, `rules:\n${lines("b")}\n`, "old", "new");
  assert.equal(out.length, 2 + 1 + 1 + 400_000);
  assert.equal(out[2], "@@ -1,200001 +1,200001 @@");
  assert.equal(out[4], "-  - a0");
  assert.equal(out.at(-1), "+  - b199999");
});
