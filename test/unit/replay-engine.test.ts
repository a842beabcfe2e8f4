// What-if replay: stored events through a draft with the reference evaluator, compared with the
// verdict recorded or the running policy's, grouped by process and remote.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicy } from "../../src/config/index.ts";
import { Replay, type ReplayReport } from "../../src/policy/index.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";
import { fakeEvent } from "../helpers/events.ts";

const WINDOW = {
  since: "2026-01-01T00:00:00.000Z",
  until: "2026-01-02T00:00:00.000Z",
  limit: 1000,
  notScanned: 0,
};

const RUNNING = parsePolicy(
  `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - name: ssh
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [22] }
`,
  "running.yaml",
);

const curl = {
  pid: 40,
  name: "curl",
  path: "/usr/bin/curl",
  user: 1000,
  cgroup: "/user.slice",
  container: null,
};

function replay(draft: string, events: MoatEvent[], running?: boolean): ReplayReport {
  const r = new Replay({
    draft: parsePolicy(draft, "draft.yaml"),
    ...(running ? { running: RUNNING } : {}),
  });
  for (const e of events) r.add(e);
  return r.report(WINDOW);
}

const telnetProbe = (n: number) =>
  fakeEvent({
    rule: "default",
    local: { ip: "10.0.0.1", port: 23 },
    remote: { ip: "203.0.113.9", port: 40000 + n },
    connection: `c${n}`,
  });

test("a draft that allows what was blocked: newly allowed, grouped by process and remote", () => {
  const r = replay(
    `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - name: telnet
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [23] }
`,
    [telnetProbe(1), telnetProbe(2), telnetProbe(3)],
  );
  assert.equal(r.scanned, 3);
  assert.equal(r.replayed, 3);
  assert.equal(r.changes.allowed.count, 3);
  assert.equal(r.changes.blocked.count, 0);
  const [g] = r.changes.allowed.groups;
  assert.ok(g);
  assert.deepEqual(
    { process: g.process, remote: g.remote, port: g.port, protocol: g.protocol, count: g.count },
    { process: "-", remote: "203.0.113.9", port: 23, protocol: "tcp", count: 3 },
  );
  assert.deepEqual(g.was, { blocked: 3 });
  assert.deepEqual(g.rules, [{ rule: "telnet", count: 3 }]);
  assert.equal(g.samples.length, 3);
  assert.deepEqual(g.samples[0]?.was, { verdict: "blocked", rule: "default" });
  assert.equal(g.samples[0]?.now.verdict, "allowed");
  assert.match(g.samples[0]?.now.reason ?? "", /rule telnet \(line 5\): tcp port 23/);
  assert.equal(g.samples[0]?.local, "10.0.0.1:23");
});

test("newly blocked and newly detected: egress by process, a remote by its DNS name", () => {
  const out = fakeEvent({
    type: "allowed",
    verdict: "allowed",
    rule: "default",
    direction: "egress",
    local: { ip: "10.0.0.1", port: 51000 },
    remote: { ip: "140.82.112.3", port: 443, names: ["github.com"] },
    process: curl,
    hook: "connect",
  });
  const draft = (mode: string) => `version: 1
mode: ${mode}
defaults: { ingress: block, egress: block }
rules:
  - name: ssh
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [22] }
`;
  const blocked = replay(draft("prevent"), [out]);
  assert.equal(blocked.changes.blocked.count, 1);
  const [g] = blocked.changes.blocked.groups;
  assert.deepEqual(
    [g?.direction, g?.process, g?.remote, g?.port, g?.rules],
    ["egress", "curl", "github.com", 443, [{ rule: "default", count: 1 }]],
  );
  assert.equal(g?.samples[0]?.process, "curl pid 40");
  assert.deepEqual(g?.samples[0]?.names, ["github.com"]);
  const detected = replay(draft("detect"), [out]);
  assert.equal(detected.changes.detected.count, 1);
  assert.equal(detected.changes.blocked.count, 0);
  // the same verdict is unchanged
  const same = replay(draft("prevent"), [telnetProbe(1)]);
  assert.equal(same.unchanged, 1);
  assert.equal(same.changes.allowed.count + same.changes.blocked.count, 0);
});

test("a connection counts once (its latest event); DNS exchanges are not replayed", () => {
  const closed = { ...telnetProbe(1), type: "closed" as const, reason: "rst" as const };
  const dns = fakeEvent({
    type: "allowed",
    verdict: "allowed",
    direction: "egress",
    protocol: "udp",
    connection: null,
    hook: "dns_proxy",
    dns: { query: "example.org", qtype: "A", rcode: "NOERROR", answers: [], trusted: true },
  });
  const r = replay(
    `version: 1
defaults: { ingress: allow, egress: allow }
`,
    [closed, telnetProbe(1), dns, telnetProbe(2)],
  );
  assert.deepEqual(r.skipped, { repeats: 1, dns: 1, summaries: 0, unreadable: 0 });
  assert.equal(r.scanned, 4);
  assert.equal(r.replayed, 2);
  assert.equal(r.changes.allowed.count, 2);
});

test("a fact the event lacks: undecided with what it needs, unless every outcome agrees", () => {
  const draft = (second: string) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - name: sshd-only
    direction: ingress
    action: allow
    process: { path: /usr/sbin/sshd }
  - name: telnet
    direction: ingress
    action: ${second}
    layer4: { protocol: tcp, port: [23] }
`;
  // no process in the event: the process rule may match (allowed), else telnet blocks
  const open = replay(draft("block"), [telnetProbe(1)]);
  assert.equal(open.undecided.count, 1);
  assert.deepEqual(open.undecided.needs, { process: 1 });
  assert.equal(open.undecided.samples[0]?.now.verdict, "undecided");
  assert.match(open.undecided.samples[0]?.now.reason ?? "", /cannot decide without process/);
  // both outcomes allow: decided
  const agreed = replay(draft("allow"), [telnetProbe(1)]);
  assert.equal(agreed.undecided.count, 0);
  assert.equal(agreed.changes.allowed.count, 1);
  assert.deepEqual(agreed.changes.allowed.groups[0]?.rules, [
    { rule: "sshd-only or telnet", count: 1 },
  ]);
});

test("the running policy as the baseline: its verdict, not the one recorded", () => {
  // recorded as allowed by an older policy; the running one blocks it, as does the draft
  const old = { ...telnetProbe(1), type: "allowed" as const, verdict: "allowed" as const };
  const draft = `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
`;
  const recorded = replay(draft, [old]);
  assert.equal(recorded.baseline, "recorded");
  assert.equal(recorded.changes.blocked.count, 1);
  const running = replay(draft, [old], true);
  assert.equal(running.baseline, "running");
  assert.equal(running.changes.blocked.count, 0);
  assert.equal(running.unchanged, 1);
});

test("stored HTTP requests carry no headers: a header rule leaves them undecided", () => {
  const request = fakeEvent({
    type: "blocked",
    verdict: "blocked",
    rule: "default",
    direction: "egress",
    local: { ip: "10.0.0.1", port: 51000 },
    remote: { ip: "198.51.100.7", port: 80, names: ["api.example.org"] },
    process: curl,
    connection: null,
    hook: "l7_relay",
    layer7: { http: { method: "GET", host: "api.example.org", path: "/v1", version: "1.1" } },
  });
  const draft = (http: string) => `version: 1
mode: prevent
defaults: { ingress: block, egress: block }
rules:
  - name: api
    direction: egress
    action: allow
    layer4: { protocol: tcp, port: [80] }
    layer7: { http: ${http} }
`;
  const byPath = replay(draft("{ host: [api.example.org], path: [/v1] }"), [request]);
  assert.equal(byPath.changes.allowed.count, 1, JSON.stringify(byPath.undecided));
  const byHeader = replay(draft('{ host: [api.example.org], headers: { x-token: "s3cret" } }'), [
    request,
  ]);
  assert.equal(byHeader.undecided.count, 1);
  assert.deepEqual(byHeader.undecided.needs, { "HTTP headers": 1 });
});

test("groups past the list limit are counted, samples are bounded", () => {
  const events = Array.from({ length: 120 }, (_, n) =>
    fakeEvent({
      rule: "default",
      local: { ip: "10.0.0.1", port: 23 },
      remote: { ip: `203.0.113.${n % 60}`, port: 40000 + n },
      connection: `c${n}`,
    }),
  );
  const r = new Replay({
    draft: parsePolicy(
      `version: 1
defaults: { ingress: allow, egress: allow }
`,
      "draft.yaml",
    ),
    groups: 10,
    samples: 1,
  });
  for (const e of events) r.add(e);
  const report = r.report(WINDOW);
  assert.equal(report.changes.allowed.count, 120);
  assert.equal(report.changes.allowed.groups.length, 10);
  assert.equal(report.changes.allowed.unlisted, 100);
  assert.ok(report.changes.allowed.groups.every((g) => g.count === 2 && g.samples.length === 1));
});

test("a summary of several connections counts as that many; reported ones are not counted twice", () => {
  const summary = (verdict: "allowed" | "blocked", connections: number) => ({
    ...fakeEvent({
      type: verdict,
      verdict,
      rule: verdict === "allowed" ? "web" : "default",
      direction: "egress",
      local: { ip: "10.0.0.1", port: 0 },
      remote: { ip: "198.51.100.7", port: 443 },
      process: curl,
      connection: null,
    }),
    type: "flow",
    flow: { connections },
  });
  const r = new Replay({
    draft: parsePolicy(
      `version: 1
mode: prevent
defaults: { ingress: block, egress: block }
`,
      "draft.yaml",
    ),
  });
  for (const e of [summary("allowed", 40), summary("allowed", 0), summary("blocked", 5)]) r.add(e);
  const report = r.report(WINDOW);
  assert.equal(report.scanned, 3);
  assert.equal(report.replayed, 40);
  assert.equal(report.skipped.summaries, 2);
  assert.equal(report.changes.blocked.count, 40);
  const [g] = report.changes.blocked.groups;
  assert.deepEqual(
    [g?.process, g?.remote, g?.port, g?.count, g?.was],
    ["curl", "198.51.100.7", 443, 40, { allowed: 40 }],
  );
  assert.equal(g?.samples.length, 1);
});
