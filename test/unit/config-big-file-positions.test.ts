// A policy file over the size the loader reads again with the yaml library's positions (1 MiB)
// reports every error at the same line and column as the same policy in a small file does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkPolicySource, textOnlyHost } from "../../src/config/index.ts";

const messages = (text: string) =>
  checkPolicySource(text, "p.yaml", textOnlyHost).diagnostics.map(
    (d) => `${d.line}:${d.col} ${d.severity} ${d.path}: ${d.message}`,
  );

const POLICY =
  "version: 1\nmode: prevent\nrules:\n  - name: web\n    direction: egress\n    action: allow\n";

/** The messages about `text` after a comment line of 1.1 MB, as about `text` alone. */
function afterLongComment(text: string): string[] {
  const big = `# ${"x".repeat(1_100_000)}\n${text}`;
  assert.ok(big.length > 2 ** 20);
  return messages(big).map((m) =>
    m.replace(/^(\d+):/, (_, line: string) => `${Number(line) - 1}:`),
  );
}

test("errors in a flow mapping with a key and no value are where they are in a small file", () => {
  const text = `${POLICY}    process: { pa, th: [/usr/bin/curl] }\n`;
  const small = messages(text);
  assert.ok(
    small.some((m) => m.startsWith("7:20 error rules[0].process.th: ")),
    small.join("\n"),
  );
  assert.deepEqual(afterLongComment(text), small);
});

test("errors in a policy the fast readers read are where they are in a small file", () => {
  const text = `${POLICY}    layer4: { protocol: tcp, port: [80, 70000] }\n    process: { nam: curl }\n`;
  const small = messages(text);
  assert.ok(small.length >= 2, small.join("\n"));
  assert.deepEqual(afterLongComment(text), small);
});
