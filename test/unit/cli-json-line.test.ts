// --json output: one function writes every CLI JSON document, with every character outside
// printable ASCII (those a terminal would obey or hide among them) written as \uXXXX escapes
// (the same JSON value).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { jsonLine } from "../../src/cli/json-line.ts";

const HOSTILE =
  "a\u007f\u0085\u009b\u00ad\u061c\u180e\u200b\u200f\u2028\u202e\u2060\u2066\u2069\ufe0f\ufeff\ufff9\u{e0001}\u{e007f}z";

test("C1, bidi, invisible and all other non-ASCII characters are escaped, the value unchanged", () => {
  const text = jsonLine({ name: HOSTILE, n: 1n, s: new Set(["x"]) });
  assert.match(text, /^[\u0020-\u007e]*$/, text);
  assert.deepEqual(JSON.parse(text), { name: HOSTILE, n: 1, s: ["x"] });
  assert.ok(text.includes("\\u202e") && text.includes("\\u061c") && text.includes("\\u0085"));
  assert.equal(jsonLine("ünï ✓"), '"\\u00fcn\\u00ef \\u2713"');
  assert.equal(JSON.parse(jsonLine("ünï ✓")), "ünï ✓");
});

test("indented documents are escaped the same way", () => {
  const text = jsonLine({ a: "\u202e" }, 2);
  assert.equal(text, '{\n  "a": "\\u202e"\n}');
});

test("the CLI's commands print --json through jsonLine", () => {
  const dir = join(import.meta.dirname, "../../src/cli/commands");
  for (const f of ["status", "stats", "anomalies", "suggest", "policy-replay", "fleet-rollout"]) {
    const src = readFileSync(join(dir, `${f}.ts`), "utf8");
    assert.doesNotMatch(src, /out\(JSON\.stringify/, `${f}.ts`);
  }
});
