// `moat check`, the daemon's load (file, SIGHUP, API) and POST /v1/policy/validate accept a policy
// through one function: on each text below they agree on ok / refused, and name the same errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkCommand } from "../../src/cli/commands/check.ts";
import { compilePolicyText, validatePolicyText } from "../../src/daemon/policy-text.ts";
import { PolicyError } from "../../src/config/index.ts";

const CASES: Record<string, string> = {
  "plain l4": `version: 1
mode: prevent
rules:
  - { name: ssh, direction: ingress, action: allow, layer4: { protocol: tcp, port: [22] } }
`,
  "redirect without attach.cgroup": `version: 1
mode: detect
redirect:
  - name: web
    match: { direction: egress, layer4: { protocol: tcp, port: [80] } }
    to: 127.0.0.1:8888
`,
  "ingress redirect": `version: 1
mode: detect
attach: { cgroup: / }
redirect:
  - name: web
    match: { direction: ingress, layer4: { protocol: tcp, port: [80] } }
    to: 127.0.0.1:8888
`,
  "layer7 rule": `version: 1
mode: detect
rules:
  - name: api
    direction: egress
    action: allow
    layer4: { protocol: tcp, port: [443] }
    layer7: { host: [api.example.com] }
`,
  "hostname rule": `version: 1
mode: detect
rules:
  - { name: tracker, direction: egress, action: block, layer3: { remote: ["*.tracker.example"] } }
`,
  "process rule without attach.cgroup": `version: 1
mode: detect
rules:
  - { name: curl, direction: egress, action: allow, process: { name: [curl] } }
`,
};

async function check(path: string): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
  const code = await checkCommand.run({ values: {}, positionals: [path] }, io);
  return { code, lines };
}

async function daemonLoad(text: string, path: string): Promise<string[]> {
  try {
    await compilePolicyText(text, path);
    return [];
  } catch (err) {
    if (err instanceof PolicyError)
      return err.diagnostics.filter((d) => d.severity === "error").map((d) => d.message);
    return [(err as Error).message];
  }
}

for (const [name, text] of Object.entries(CASES)) {
  test(`check, the daemon and validate agree: ${name}`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "moat-one-path-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, "policy.yaml");
    writeFileSync(path, text);
    const checked = await check(path);
    const daemon = await daemonLoad(text, path);
    const api = await validatePolicyText(text, path);
    const checkErrors = checked.lines.filter((l) => /^\S+:\d+:\d+ \S+: (?!warning:)/.test(l));
    assert.equal(
      checked.code === 0,
      daemon.length === 0,
      `check:\n${checked.lines.join("\n")}\ndaemon:\n${daemon.join("\n")}`,
    );
    assert.equal(api.ok, daemon.length === 0, `validate:\n${api.errors.join("\n")}`);
    assert.deepEqual(checkErrors, api.errors);
    assert.equal(checkErrors.length, daemon.length);
  });
}
