// `moat policy apply --confirm` and `--dry-run` against a running daemon, as a user types them:
// a policy on trial takes effect at once, is not saved, and reverts by itself (the port it opened
// is blocked again) unless `moat policy confirm` comes in time; a confirmed one stays and is
// saved; a dry run shows the diff and changes nothing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import { MOAT } from "../helpers/paths.ts";
import type { Lab } from "../helpers/netns.ts";
import { until } from "../helpers/until.ts";

function policy(lab: Lab & { auditPath: string }, web: boolean): string {
  return `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${lab.ifB}] }
logging: { audit: { path: ${lab.auditPath} } }
rules:
  - name: ssh
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [22] }
${web ? "  - name: web\n    direction: ingress\n    action: allow\n    layer4: { protocol: tcp, port: [80] }\n" : ""}`;
}

function moat(lab: MoatLab, ...args: string[]) {
  const r = spawnSync(MOAT, [...args, "--api", `unix:${lab.apiSocket}`], {
    encoding: "utf8",
    timeout: 20_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface Shown {
  generation: number;
  text: string;
  trial?: { revertAt: string; by: string };
}
const shown = (lab: MoatLab) => JSON.parse(moat(lab, "policy", "show", "--json").stdout) as Shown;

const web = (lab: MoatLab) => lab.curl(`http://${lab.v4.b}:80/`).status === 0;

test("policy apply --confirm: on trial at once, reverted by itself when not confirmed", async (t) => {
  const lab = await startMoatLab(t.name, (l) => policy(l, false));
  t.after(() => lab.close());
  const saved = readFileSync(lab.policyPath, "utf8");
  const before = shown(lab).generation;
  assert.equal(web(lab), false, "port 80 is blocked");

  const file = join(lab.dir, "web.yaml");
  writeFileSync(file, policy(lab, true));
  // long enough for the checks below on a loaded machine, before the revert
  const applied = moat(lab, "policy", "apply", file, "--confirm", "10s");
  assert.equal(applied.code, 0, applied.stderr);
  assert.match(
    applied.stdout,
    new RegExp(
      `^applied ${file} on trial: generation ${before + 1}; it reverts at \\S+ unless 'moat policy confirm' comes first`,
    ),
  );
  assert.equal(web(lab), true, "the policy on trial runs");
  assert.equal(readFileSync(lab.policyPath, "utf8"), saved, "not saved while on trial");
  assert.match(shown(lab).trial?.by ?? "", /^unix uid 0 pid \d+$/);

  const after = await until(
    "the revert",
    () => {
      const s = shown(lab);
      return s.trial === undefined ? s : undefined;
    },
    15_000,
  );
  assert.equal(after.generation, before + 2, "the revert is a new generation");
  assert.equal(after.text, saved);
  assert.equal(web(lab), false, "port 80 is blocked again");
  await lab.auditHas(
    new RegExp(
      `POLICY APPLIED revert by moat \\(not confirmed in time; applied by unix uid 0 pid \\d+\\): generation ${before + 2}`,
    ),
  );
  const late = moat(lab, "policy", "confirm");
  assert.equal(late.code, 1);
  assert.match(
    late.stderr,
    /^moat: no policy is on trial: it was reverted, confirmed or replaced already$/m,
  );
});

test("policy confirm keeps and saves the policy on trial; --dry-run shows the diff, applies nothing", async (t) => {
  const lab = await startMoatLab(t.name, (l) => policy(l, false));
  t.after(() => lab.close());
  const file = join(lab.dir, "web.yaml");
  writeFileSync(file, policy(lab, true));

  const dry = moat(lab, "policy", "apply", file, "--dry-run");
  assert.equal(dry.code, 0, dry.stderr);
  const generation = shown(lab).generation;
  assert.deepEqual(dry.stdout.trim().split("\n"), [
    `--- running (${lab.policyPath}, generation ${generation})`,
    `+++ ${file}`,
    "@@ -8,3 +8,7 @@",
    "     direction: ingress",
    "     action: allow",
    "     layer4: { protocol: tcp, port: [22] }",
    "+  - name: web",
    "+    direction: ingress",
    "+    action: allow",
    "+    layer4: { protocol: tcp, port: [80] }",
    `${file}: ok (dry run: nothing applied)`,
  ]);
  assert.equal(shown(lab).generation, generation, "a dry run applies nothing");
  assert.equal(web(lab), false);
  const bad = join(lab.dir, "bad.yaml");
  writeFileSync(bad, "version: 1\nrules:\n  - name: Web\n");
  const refused = moat(lab, "policy", "apply", bad, "--dry-run", "--json");
  assert.equal(refused.code, 1);
  const parsed = JSON.parse(refused.stdout) as { ok: boolean; errors: string[] };
  assert.equal(parsed.ok, false);
  assert.ok(
    parsed.errors.some((e) => /rules\[0\]\.name: must be lowercase/.test(e)),
    parsed.errors.join("\n"),
  );

  const applied = moat(lab, "policy", "apply", file, "--confirm", "10m", "--json");
  assert.equal(applied.code, 0, applied.stderr);
  assert.ok((JSON.parse(applied.stdout) as { revertAt?: string }).revertAt);
  const confirmed = moat(lab, "policy", "confirm");
  assert.equal(confirmed.code, 0, confirmed.stderr);
  assert.equal(
    confirmed.stdout.trim(),
    `confirmed: generation ${generation + 1} stays and is saved`,
  );
  assert.equal(shown(lab).trial, undefined);
  assert.equal(readFileSync(lab.policyPath, "utf8"), policy(lab, true), "saved once confirmed");
  assert.equal(web(lab), true);
  await lab.auditHas(/POLICY CONFIRMED policy by unix uid 0 pid \d+/);
});
