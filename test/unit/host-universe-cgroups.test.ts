// Which policies a cgroup coming or going changes (the daemon's host watch compiles the running
// policy again when `changed` says so): those whose rules or redirects name a cgroup or a
// container, moat's own `l7:quic` for an L7 rule without a process section included (it names
// attach.cgroup); never one whose process rules name executables, users or names only. Read from
// this host's cgroup tree, in a cgroup of the test's own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import { Attribution } from "../../src/attribution/index.ts";
import { parsePolicy } from "../../src/config/index.ts";
import { hostUniverse } from "../../src/daemon/host-universe.ts";
import { universeQuery } from "../../src/policy/index.ts";
import { testCgroup } from "../helpers/cgroup-run.ts";

const policy = (cgroup: string, rules: string) =>
  parsePolicy(
    `version: 1\nmode: prevent\nattach: { cgroup: ${cgroup} }\n` +
      `defaults: { ingress: allow, egress: allow }\nrules:\n${rules}`,
    "p.yaml",
  );

/**
 * Whether a cgroup made, after a read, under the test's own (attach.cgroup) changes what `rules`
 * (given that cgroup's path) resolve to.
 */
function changedByNewCgroup(
  t: { after: (fn: () => void) => void },
  rules: (cgroup: string) => string,
): boolean {
  const cg = testCgroup("universe");
  t.after(() => cg.remove());
  const model = policy(cg.cgroup, rules(cg.cgroup));
  const universe = hostUniverse(new Attribution());
  universe.read(universeQuery(model));
  const scope = join(cg.dir, `scope-${process.pid}`);
  mkdirSync(scope);
  try {
    return universe.changed(model);
  } finally {
    rmdirSync(scope);
  }
}

test("a new cgroup changes nothing for rules that name processes by name, path or user", (t) => {
  const rules = () =>
    "  - { name: no-curl, direction: egress, action: block, process: { name: [curl], path: [/usr/bin/curl], user: [root] } }\n";
  assert.equal(changedByNewCgroup(t, rules), false);
});

test("a new cgroup under one a rule names changes the policy", (t) => {
  const rules = (cgroup: string) =>
    `  - { name: batch, direction: egress, action: block, process: { name: [curl], cgroup: ${cgroup} } }\n`;
  assert.equal(changedByNewCgroup(t, rules), true);
});

test("a new cgroup under attach.cgroup changes a policy with an L7 rule without a process section", (t) => {
  const rules = () =>
    "  - { name: web, direction: egress, action: allow, layer7: { tls: { sni: [example.org] } } }\n";
  assert.equal(changedByNewCgroup(t, rules), true);
});
