// A policy whose rules share a list through a YAML alias (`remote: &big [...]`, then `*big`) is
// read with the yaml library's positions: it means what the same policy written out does, and the
// position of every entry reached through an alias is where the anchored list is written.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  checkPolicySource,
  formatDiagnostic,
  textOnlyHost,
  type Rule,
} from "../../src/config/index.ts";

const ADDRESSES = 1000;
const RULES = 100;

function policy(shared: boolean): string {
  const list = Array.from({ length: ADDRESSES }, (_, i) => `10.${i >> 8}.${i & 255}.1`).join(", ");
  let text = "version: 1\nmode: prevent\nrules:\n";
  for (let r = 0; r < RULES; r++) {
    text += `  - name: r${r}\n    direction: egress\n    action: allow\n`;
    const remote = !shared ? `[${list}]` : r === 0 ? `&big [${list}]` : "*big";
    text += `    layer3: { remote: ${remote} }\n`;
  }
  return text;
}

test("a list shared by alias among 100 rules is accepted as the list written out is", () => {
  const flat = checkPolicySource(policy(false), "p.yaml", textOnlyHost);
  const shared = checkPolicySource(policy(true), "p.yaml", textOnlyHost);
  assert.ok(flat.model, flat.diagnostics.map(formatDiagnostic).join("\n"));
  assert.ok(shared.model, shared.diagnostics.map(formatDiagnostic).join("\n"));
  // the rules are on the same lines in both: so are the warnings about them
  assert.deepEqual(
    shared.diagnostics.map(formatDiagnostic),
    flat.diagnostics.map(formatDiagnostic),
  );
  assert.equal(shared.model.rules.length, RULES);
  const flatRules: Rule[] = flat.model.rules;
  for (const [r, rule] of shared.model.rules.entries()) {
    const entries = rule.layer3?.remote?.entries ?? [];
    const written = flatRules[r]?.layer3?.remote?.entries ?? [];
    assert.deepEqual(
      entries.map((e) => e.text),
      written.map((e) => e.text),
      `rule r${r}`,
    );
    // through the alias, an entry is where the anchored list writes it (line 7)
    assert.equal(entries[ADDRESSES - 1]?.pos.line, 7, `rule r${r}`);
  }
});
