// What-if replay against a real daemon: curl and nc from the peer namespace are blocked (by the
// default and by a rule) and detected (a detect-mode rule), the daemon stores the events, then a
// draft that allows them is replayed over that history: `moat policy replay` and POST
// /v1/policy/replay both show each as newly allowed, grouped by remote and port, with what it
// was. Applying the draft is audited with what it changed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startMoatLab } from "../helpers/moat-lab.ts";
import { MOAT } from "../helpers/paths.ts";
import { storedEvents, until } from "../helpers/stored-events.ts";
import { http } from "../helpers/api-client.ts";
import type { Lab } from "../helpers/netns.ts";
import type { ReplayGroup, ReplayReport } from "../../src/policy/index.ts";

function policy(lab: Lab & { auditPath: string }, draft: boolean): string {
  return `version: 1
mode: prevent
defaults: { ingress: ${draft ? "allow" : "block"}, egress: allow }
attach: { interfaces: [${lab.ifB}] }
logging: { audit: { path: ${lab.auditPath} } }
rules:
  - name: ssh
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [22] }
  - name: no-telnet
    direction: ingress
    action: ${draft ? "allow" : "block"}
    layer4: { protocol: tcp, port: [23] }
  - name: watch-8080
    direction: ingress
    action: ${draft ? "allow" : "block"}
    mode: detect
    layer4: { protocol: tcp, port: [8080] }
`;
}

interface Ev {
  type: string;
  rule: string;
  remote: { ip: string };
  local: { port: number };
}

test("a draft replayed over a daemon's stored blocks and detections shows them newly allowed", async (t) => {
  const lab = await startMoatLab(t.name, (l) => policy(l, false));
  t.after(() => lab.close());
  // real clients from the peer: port 80 (the default blocks), 23 (no-telnet), 8080 (detected)
  assert.notEqual(lab.curl(`http://${lab.v4.b}:80/`, ["--max-time", "1"]).status, 0);
  assert.notEqual(lab.inA("nc", ["-z", "-w", "1", lab.v4.b, "23"]), 0);
  assert.equal(lab.curl(`http://${lab.v4.b}:8080/`).status, 0, "detect mode lets it through");
  const seen = (port: number, type: string) => (e: Ev) =>
    e.local.port === port && e.type === type && e.remote.ip === lab.v4.a;
  await until("the three stored", () => {
    const events = storedEvents<Ev>(lab);
    const all = [seen(80, "blocked"), seen(23, "blocked"), seen(8080, "detected")];
    return all.every((f) => events.some(f)) ? true : undefined;
  });

  const draft = join(lab.dir, "draft.yaml");
  writeFileSync(draft, policy(lab, true));
  const cli = spawnSync(
    MOAT,
    ["policy", "replay", draft, "--since", "1h", "--json", "--api", `unix:${lab.apiSocket}`],
    { encoding: "utf8", timeout: 60_000 },
  );
  assert.equal(cli.status, 0, cli.stderr);
  const report = JSON.parse(cli.stdout) as ReplayReport;
  const group = (r: ReplayReport, port: number): ReplayGroup | undefined =>
    r.changes.allowed.groups.find((g) => g.remote === lab.v4.a && g.port === port);
  for (const [port, was, rule] of [
    [80, "blocked", "default"],
    [23, "blocked", "no-telnet"],
    [8080, "detected", "watch-8080"],
  ] as const) {
    const g = group(report, port);
    assert.ok(g, `port ${port} is newly allowed: ${JSON.stringify(report.changes)}`);
    assert.ok((g.was[was] ?? 0) >= 1, `port ${port} was ${was}: ${JSON.stringify(g.was)}`);
    assert.equal(g.samples[0]?.was.rule, rule);
    assert.equal(g.direction, "ingress");
  }
  assert.equal(report.changes.blocked.count, 0);

  // the same through the API, against the running policy; and in words from the CLI
  const api = await http(
    { socketPath: lab.apiSocket },
    "POST",
    "/v1/policy/replay",
    JSON.stringify({ text: policy(lab, true), since: "1h", baseline: "running" }),
  );
  assert.equal(api.status, 200, api.body);
  const running = JSON.parse(api.body) as ReplayReport;
  assert.equal(running.baseline, "running");
  assert.ok(group(running, 23) && group(running, 80) && group(running, 8080));
  const words = spawnSync(
    MOAT,
    ["policy", "replay", draft, "--since", "1h", "--api", `unix:${lab.apiSocket}`],
    { encoding: "utf8", timeout: 60_000 },
  );
  assert.equal(words.status, 0, words.stderr);
  assert.match(words.stdout, /^newly allowed: \d+ connections?$/m);
  assert.match(
    words.stdout,
    new RegExp(
      `- <- ${lab.v4.a.replaceAll(".", "\\.")} 23/tcp \\(was blocked \\d+\\) by no-telnet`,
    ),
  );

  // applied: the audit line says who and what changed
  const applied = await http({ socketPath: lab.apiSocket }, "PUT", "/v1/policy", policy(lab, true));
  assert.equal(applied.status, 200, applied.body);
  await until("the audit line", () =>
    /POLICY APPLIED policy by unix uid 0 pid \d+: generation \d+, mode prevent, sha256 [0-9a-f]+; defaults\.ingress block -> allow; rules changed: no-telnet, watch-8080$/m.test(
      lab.audit(),
    )
      ? true
      : undefined,
  );
});
