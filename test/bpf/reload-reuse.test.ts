// A swap hands out again the tables the running or the previous policy holds with the same
// content (src/datapath/table-reuse.ts): reloading a policy builds nothing new, and switching
// back and forth between two policies judges every packet by the policy applied last.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { KernelLab } from "../helpers/kernel-lab.ts";

const policy = (blocked: string) => `
version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
rules:
  - name: no-web-from
    direction: ingress
    action: block
    layer3: { remote: [${blocked}] }
    layer4: { protocol: tcp, port: [80] }
`;
const A = policy("10.1.0.0/16");
const B = policy("192.168.0.0/16");

const lab = new KernelLab();
after(() => lab.close());

const verdicts = () => ({
  ten: lab.run("xdp", { src: "10.1.2.3", dst: "10.0.0.1", proto: "tcp", dport: 80 }).verdict,
  lan: lab.run("xdp", { src: "192.168.4.5", dst: "10.0.0.1", proto: "tcp", dport: 80 }).verdict,
});

test("reloading and switching policies: unchanged tables reused, verdicts by the last policy", () => {
  lab.policy(A);
  assert.deepEqual(verdicts(), { ten: "drop", lan: "pass" });
  const before = lab.dp.tablesReused;
  lab.policy(A);
  const reused = lab.dp.tablesReused - before;
  assert.ok(reused >= 10, `the same policy again: ${reused} tables reused`);
  assert.deepEqual(verdicts(), { ten: "drop", lan: "pass" });
  for (const [text, want] of [
    [B, { ten: "pass", lan: "drop" }],
    [A, { ten: "drop", lan: "pass" }],
    [B, { ten: "pass", lan: "drop" }],
    [B, { ten: "pass", lan: "drop" }],
    [A, { ten: "drop", lan: "pass" }],
  ] as const) {
    lab.policy(text);
    assert.deepEqual(verdicts(), want);
  }
});
