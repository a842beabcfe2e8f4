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
  "hostname rule under attach.cgroup": `version: 1
mode: prevent
attach: { cgroup: / }
sets:
  apis: [203.0.113.10, api.example.com]
rules:
  - { name: apis, direction: egress, action: allow, layer3: { remote: [set:apis, "*.cdn.example"] } }
  - { name: queries, direction: egress, action: block, layer7: { dns: { name: ["**.ads.example"] } } }
  - { name: dot, direction: egress, action: block, layer7: { dns: { over_tls: true } } }
dns: { resolvers: [10.0.0.53], min_ttl: 10s, grace: 1m }
`,
  "names moat cannot enforce as written": `version: 1
mode: prevent
attach: { cgroup: / }
rules:
  - { name: not-ads, direction: egress, action: allow, layer3: { remote: ["!ads.example"] } }
  - { name: inbound, direction: ingress, action: allow, layer3: { remote: [api.example.com] } }
  - { name: dot-names, direction: egress, action: block, layer7: { dns: { name: [x.example], over_tls: true } } }
  - { name: web, direction: egress, action: allow, layer7: { http: { host: [x.example] } } }
`,
  "a bad dns section": `version: 1
mode: prevent
dns: { resolvers: [10.0.0.0/8], grace: 2d }
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
