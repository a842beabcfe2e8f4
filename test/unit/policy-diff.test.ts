// What a new policy changes against the running one, in the words the audit line and the web
// console use: mode, defaults, rules and sets by name; moved text alone is no change.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicy } from "../../src/config/index.ts";
import { changeSummary, policyChanges } from "../../src/policy/index.ts";

const BASE = `version: 1
mode: detect
defaults: { ingress: block, egress: allow }
sets:
  corp: [10.0.0.0/8]
rules:
  - name: ssh
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [22] }
  - name: web
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [80, 443] }
`;
const model = (text: string) => parsePolicy(text, "p.yaml");

test("rules added, removed, changed and reordered; mode and defaults; sets", () => {
  const next = `version: 1
mode: prevent
defaults: { ingress: block, egress: block }
sets:
  corp: [10.0.0.0/8, 192.168.0.0/16]
rules:
  - name: web
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [443] }
  - name: telnet
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [23] }
`;
  assert.deepEqual(policyChanges(model(BASE), model(next)), [
    "mode detect -> prevent",
    "defaults.egress allow -> block",
    "rules added: telnet",
    "rules removed: ssh",
    "rules changed: web",
    "sets changed: corp",
  ]);
  const swapped = BASE.replace(/ {2}- name: ssh[^]*?(?= {2}- name: web)/, "").concat(
    "  - name: ssh\n    direction: ingress\n    action: allow\n    layer4: { protocol: tcp, port: [22] }\n",
  );
  assert.deepEqual(policyChanges(model(BASE), model(swapped)), ["rules reordered"]);
});

test("comments, blank lines and a mode switch alone change no rule", () => {
  const moved = `# a comment\n\n${BASE}`;
  assert.equal(changeSummary(model(BASE), model(moved)), "no change to what is enforced");
  assert.deepEqual(
    policyChanges(model(BASE), model(BASE.replace("mode: detect", "mode: prevent"))),
    ["mode detect -> prevent"],
  );
});
