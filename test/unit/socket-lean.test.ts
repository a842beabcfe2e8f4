// What the socket hooks may leave out under a policy (socketLean, moat_meta.lean): a silently
// allowed connect() keeps no socket record only when no rule judges by process, host name or
// layer 7, none logs and nothing is redirected; the executable inode is read only when a
// process rule's path names an executable on the host (or names or redirects identify the
// caller by it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicy } from "../../src/config/index.ts";
import { compilePolicy } from "../../src/policy/compile/policy-image.ts";
import { socketLean } from "../../src/policy/compile/kernel-image.ts";
import type { ProcessUniverse } from "../../src/policy/compile/process.ts";

const universe: ProcessUniverse = {
  executables: [{ dev: 7, ino: 100n, path: "/usr/bin/curl" }],
  users: new Map([["nobody", 65534]]),
  cgroups: [{ id: 500n, path: "/", container: null }],
  routes: { image: { v4: [], v6: [] }, links: [], notes: [] },
};

const leanOf = (rules: string) =>
  socketLean(
    compilePolicy(
      parsePolicy(`version: 1\nattach: { cgroup: / }\nrules:\n${rules}`, "p.yaml"),
      universe,
    ),
  );

test("an L3/L4 policy without log keeps no record of silent connections, nor reads executables", () => {
  assert.deepEqual(
    leanOf(
      "  - { name: a, direction: egress, action: block, layer3: { remote: [192.0.2.0/24] } }\n",
    ),
    { skipRecord: true, skipExe: true },
  );
});

test("a rule with log makes every connection keep its record (its owner names the event)", () => {
  assert.deepEqual(
    leanOf(
      "  - { name: a, direction: egress, action: allow, log: true, layer3: { remote: [192.0.2.0/24] } }\n",
    ),
    { skipRecord: false, skipExe: true },
  );
});

test("process rules keep the record; the executable is read only when a path names one here", () => {
  assert.deepEqual(
    leanOf("  - { name: a, direction: egress, action: allow, process: { user: [nobody] } }\n"),
    { skipRecord: false, skipExe: true },
  );
  assert.deepEqual(
    leanOf(
      "  - { name: a, direction: egress, action: allow, process: { path: [/usr/bin/curl] } }\n",
    ),
    { skipRecord: false, skipExe: false },
  );
});
