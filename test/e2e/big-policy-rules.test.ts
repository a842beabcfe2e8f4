// A policy of 10,000 rules and more: the daemon keeps its rules as the columns the policy worker
// sent them in, makes them into objects while they are read and lets them go 10 s after the last
// read. What a user sees does not change when they are let go and made again: the verdicts, the
// rules `moat policy show` lists with their lines, the change an apply's audit line names.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startMoatLab } from "../helpers/moat-lab.ts";
import { MOAT } from "../helpers/paths.ts";
import type { Lab } from "../helpers/netns.ts";
import { guardedInterface } from "../helpers/ingress-mode.ts";

/** Rules no lab traffic meets: UDP from a benchmarking range to high ports. */
const FILLER = 10_000;
/** A little more than the daemon keeps made rules unread. */
const LET_GO_MS = 12_000;

/** The policy, its filler rule `changed` blocking where the others allow. */
function policy(lab: Lab & { auditPath: string }, changed = -1): string {
  const lines = [
    "version: 1",
    "mode: prevent",
    "defaults: { ingress: block, egress: allow }",
    `attach: { interfaces: [${guardedInterface(lab.ifB)}] }`,
    `logging: { audit: { path: ${lab.auditPath} } }`,
    "rules:",
  ];
  for (let i = 0; i < FILLER; i++)
    lines.push(
      `  - { name: filler-${i}, direction: ingress, action: ${i === changed ? "block" : "allow"}, ` +
        `layer3: { remote: [198.18.${i >> 8}.${i & 255}] }, layer4: { protocol: udp, port: [${20000 + i}] } }`,
    );
  lines.push(
    "  - { name: web, direction: ingress, action: allow, layer4: { protocol: tcp, port: [80] } }",
  );
  return lines.join("\n") + "\n";
}

interface Shown {
  rules: { name: string; action: string; line?: number }[];
}

function moat(args: string[]): SpawnSyncReturns<string> {
  return spawnSync(MOAT, args, {
    encoding: "utf8",
    timeout: 30_000,
    // the policy's text comes with its rules: ~1 MB
    maxBuffer: 64 * 2 ** 20,
  });
}

function shown(apiSocket: string): Shown {
  const r = moat(["policy", "show", "--json", "--api", `unix:${apiSocket}`]);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Shown;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test("a 10k-rule policy's rules let go unread and made again: verdicts, listed rules and an apply's diff hold", async (t) => {
  const lab = await startMoatLab(t.name, (l) => policy(l), ["tcp:80,8080"]);
  t.after(() => lab.close());
  assert.equal(lab.curl(`http://${lab.v4.b}/`).status, 0, "port 80 allowed");
  const first = shown(lab.apiSocket);
  assert.equal(first.rules.length, FILLER + 1 + 2, "every rule and the two defaults");
  assert.deepEqual(first.rules[FILLER], { ...first.rules[FILLER], name: "web", line: FILLER + 7 });

  await sleep(LET_GO_MS);
  // read again after the daemon let its rules go: made again, the same
  assert.deepEqual(shown(lab.apiSocket), first);
  assert.equal(lab.curl(`http://${lab.v4.b}:8080/`).status, 28, "8080 still blocked");

  await sleep(LET_GO_MS);
  // an apply diffs the running policy's rules (let go by now) against the new ones
  const next = join(lab.dir, "next.yaml");
  writeFileSync(next, policy(lab, 4321));
  const applied = moat(["policy", "apply", next, "--api", `unix:${lab.apiSocket}`]);
  assert.equal(applied.status, 0, applied.stderr);
  await lab.auditHas(
    /POLICY APPLIED policy by unix uid 0 pid \d+: generation 2, mode prevent, sha256 [0-9a-f]{64}; rules changed: filler-4321$/m,
  );
  assert.equal(lab.curl(`http://${lab.v4.b}/`).status, 0, "port 80 allowed after the reload");
  const after = shown(lab.apiSocket);
  assert.equal(after.rules[4321]?.action, "block");
  assert.equal(after.rules.length, first.rules.length);
});
