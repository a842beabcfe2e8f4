// The FILE:LINE:COL of a problem in an inline signature written as a quoted YAML string with
// escapes (\" in double quotes, '' in single quotes) is where the keyword is in the policy file,
// not its offset in the unescaped text added to the string's column.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkPolicySource } from "../../src/config/parse.ts";
import { nodeHost } from "../../src/host/index.ts";

test("inline signatures in quoted YAML strings with escapes: each problem at the column it is written at", () => {
  const dir = mkdtempSync(join(tmpdir(), "moat-ids-cols-"));
  try {
    const lines = [
      "version: 1",
      "mode: detect",
      "ids:",
      "  rules:",
      String.raw`    - "alert tcp any any -> any 80 (msg:\"a\"; content:\"a\"; byte_test:1,>,2,0; sid:1;)"`,
      `    - 'alert tcp any any -> any 80 (msg:"it''s"; content:"''"; pcre:"/x/"; sid:2;)'`,
      String.raw`    - "alert tcp any any -> any 80 (msg:\"a\\\\b\"; content:\"b\"; depth:0; sid:3;)"`,
      `    - 'alert tcp any any -> any 80 (msg:"plain"; content:"c"; dsize:3; sid:4;)'`,
      "",
    ];
    const text = lines.join("\n");
    const policy = join(dir, "p.yaml");
    writeFileSync(policy, text);
    const got = checkPolicySource(text, policy, nodeHost).diagnostics.map(
      (d) => `${d.line}:${d.col} ${d.severity}: ${d.message.split(" (")[0]}`,
    );
    const col = (line: number, word: string) => lines[line - 1]!.indexOf(word) + 1;
    assert.deepEqual(got, [
      `5:${col(5, "byte_test")} warning: keyword 'byte_test' is not supported`,
      `6:${col(6, "pcre")} warning: keyword 'pcre' is not supported`,
      `7:${col(7, "0; sid")} error: 'depth' must be 1 to 65535`,
      `8:${col(8, "dsize")} warning: keyword 'dsize' is not supported`,
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("hex escapes take their width; a policy that cannot be read again keeps the string's columns", () => {
  const line = String.raw`    - "alert tcp any any -> any 80 (msg:\x22a\u0022; content:\"a\"; dsize:3; sid:4;)"`;
  const text = `version: 1\nmode: detect\nids:\n  rules:\n${line}\n`;
  const unread = checkPolicySource(text, "/nonexistent/p.yaml", nodeHost).diagnostics;
  const dir = mkdtempSync(join(tmpdir(), "moat-ids-cols-"));
  try {
    const policy = join(dir, "p.yaml");
    writeFileSync(policy, text);
    const read = checkPolicySource(text, policy, nodeHost).diagnostics;
    assert.deepEqual(
      read.map((d) => [d.line, d.col]),
      [[5, line.indexOf("dsize") + 1]],
    );
    // written as it reads: 10 columns of escapes less
    assert.deepEqual(
      unread.map((d) => [d.line, d.col]),
      [[5, line.indexOf("dsize") + 1 - 10]],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
