// A rate-limited rule under a real flood: `ping -f` from the peer namespace against moat's host.
// In prevent mode moat drops what is over the limit (ping sees losses, the counter and one
// aggregated report say so); in detect mode every ping is answered and the report says what
// prevent would have dropped.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import type { Lab } from "../helpers/netns.ts";
import { http } from "../helpers/api-client.ts";
import { storedEvents, until } from "../helpers/stored-events.ts";
import { guardedInterface } from "../helpers/ingress-mode.ts";

// pings a flood sends: ten times the burst, well over what the limit (10/s, burst 10) lets
// through in the second or so a flood of them lasts while most go unanswered
const FLOOD = 100;

function policy(lab: Lab & { auditPath: string }, mode: "detect" | "prevent"): string {
  return `version: 1
mode: ${mode}
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${guardedInterface(lab.ifB)}] }
logging: { audit: { path: ${lab.auditPath} } }
rules:
  - name: ping
    direction: ingress
    action: allow
    layer4: { protocol: icmp, icmp: { type: 8 } }
    rate_limit: { rate: 10/s, burst: 10 }
  - name: icmpv6
    direction: ingress
    action: allow
    layer4: { protocol: icmpv6 }
`;
}

/** ping -f from a: packets sent and answered. */
function flood(lab: Lab, target: string): { sent: number; answered: number } {
  const r = spawnSync(
    "ip",
    ["netns", "exec", lab.a, "ping", "-f", "-c", String(FLOOD), "-W", "1", target],
    { encoding: "utf8", timeout: 30_000 },
  );
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  assert.ok(m, `ping's summary: ${r.stdout}${r.stderr}`);
  return { sent: Number(m[1]), answered: Number(m[2]) };
}

/** A kernel counter from the daemon's /metrics. */
async function counter(lab: MoatLab, name: string): Promise<number> {
  const reply = await http({ socketPath: lab.apiSocket }, "GET", "/metrics");
  assert.equal(reply.status, 200, reply.body);
  const line = reply.body
    .split("\n")
    .find((l) => l.startsWith(`moat_datapath_packets_total{counter="${name}"}`));
  assert.ok(line, `${name} in /metrics`);
  return Number(line.split(" ")[1]);
}

interface StoredEvent {
  type: string;
  rule: string;
  reason: string;
  remote: { ip: string };
  aggregated?: { packets: number };
}

const limitReports = (lab: MoatLab): StoredEvent[] =>
  storedEvents<StoredEvent>(lab).filter((e) => e.reason === "rate_limit");

test("prevent: a ping flood is cut to the limit, counted and reported once", async (t) => {
  const lab = await startMoatLab(t.name, (l) => policy(l, "prevent"));
  try {
    const { sent, answered } = flood(lab, lab.v4.b);
    assert.equal(sent, FLOOD);
    assert.ok(answered >= 10, `the burst is answered (${answered})`);
    assert.ok(answered < sent, `over the limit is dropped (${answered} of ${sent} answered)`);
    const dropped = await counter(lab, "limitDropped");
    assert.equal(dropped, sent - answered, "every lost ping was dropped by the limit");
    const reports = await until("a rate limit report", () => {
      const r = limitReports(lab);
      return r.length ? r : undefined;
    });
    // aggregated: one report per source per 10 s, not one per packet
    assert.ok(reports.length <= 3, `${reports.length} reports for ${dropped} drops`);
    for (const e of reports) {
      assert.equal(e.type, "blocked");
      assert.equal(e.rule, "ping");
      assert.equal(e.remote.ip, lab.v4.a);
    }
    const reported = reports.reduce((n, e) => n + (e.aggregated?.packets ?? 0), 0);
    assert.ok(reported >= 1 && reported <= dropped, `${reported} of ${dropped} reported so far`);
    await lab.auditHas(/BLOCKED ingress icmp .* by rule ping \(over the rate limit: \d+ packets\)/);
  } finally {
    await lab.close();
  }
});

test("detect: a ping flood is answered in full and reported as what prevent would drop", async (t) => {
  const lab = await startMoatLab(t.name, (l) => policy(l, "detect"));
  try {
    const { sent, answered } = flood(lab, lab.v4.b);
    assert.equal(answered, sent, "nothing dropped in detect mode");
    const detected = await counter(lab, "limitDetected");
    assert.ok(detected > 0, "over-limit pings counted");
    assert.equal(await counter(lab, "limitDropped"), 0);
    const reports = await until("a rate limit report", () => {
      const r = limitReports(lab);
      return r.length ? r : undefined;
    });
    assert.ok(reports.length <= 3, `${reports.length} reports for ${detected} packets over`);
    assert.equal(reports[0]?.type, "detected");
    assert.equal(reports[0]?.rule, "ping");
  } finally {
    await lab.close();
  }
});
