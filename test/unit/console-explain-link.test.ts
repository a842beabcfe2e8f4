// The live view's explain link: the playground judges the flow's own process (a value cannot add
// a fact of its choosing), and an egress link judges without the local port it does not carry.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { FlowRow } from "../../src/api/flow-aggregator.ts";
import { parseProcessText } from "../../src/policy/process-text.ts";
import { evaluate } from "../../src/policy/index.ts";
import { acceptPolicy, nodeHost } from "../../src/host/index.ts";
import { explainHref } from "../../web/live/explain-href.ts";
import { decodeExplainLink, encodeExplainLink } from "../../web/shared/explain-link.ts";
import { factsOf, valuesOfLink } from "../../web/playground/connection-form.ts";

const row = (over: Partial<FlowRow> = {}): FlowRow => ({
  id: 1,
  identity: "evil",
  process: "evil",
  path: "/usr/bin/curl",
  container: null,
  direction: "egress",
  remote: "203.0.113.9",
  names: [],
  port: 443,
  local: "10.0.0.1",
  protocol: "tcp",
  verdict: "blocked",
  rule: "default",
  types: {},
  count: 1,
  lastSeen: "2026-01-01T00:00:00.000Z",
  ...over,
});

/** The facts the playground judges for a live row's explain link. */
function factsOfHref(href: string) {
  const m = /#explain=([^&]+)/.exec(href);
  const link = decodeExplainLink(m![1]!);
  assert.ok(link);
  const parsed = factsOf(valuesOfLink(link));
  assert.ok(parsed.ok, parsed.ok ? "" : parsed.error);
  return parsed.facts;
}

const POLICY = `version: 1
mode: prevent
attach: { cgroup: / }
defaults: { ingress: block, egress: block }
rules:
  - name: root-may-reach-backup
    direction: egress
    action: allow
    process: { user: [0] }
    layer3: { remote: [203.0.113.9] }
    layer4: { protocol: tcp, port: [443] }
`;

test("a process path with ',KEY=VALUE' stays the path: it adds no fact", () => {
  const path = "/tmp/evil,user=0,cgroup=/system.slice/backup.service";
  const name = "n,container=none=x\\";
  const facts = factsOfHref(explainHref(row({ path, process: name, container: "c,pid=1" })));
  assert.deepEqual(facts.process, { path, name, container: { name: "c,pid=1" } });
  const { policy } = acceptPolicy(POLICY, "/etc/moat/policy.yaml", { host: nodeHost });
  const verdict = evaluate(policy!.model, facts);
  assert.notEqual(verdict.verdict, "allowed");
});

test("an egress link without the local port is judged, its placeholder said", () => {
  const facts = factsOfHref(explainHref(row()));
  assert.equal(facts.remote.port, 443);
  assert.equal(typeof facts.local.port, "number");
  const { policy } = acceptPolicy(POLICY, "/etc/moat/policy.yaml", { host: nodeHost });
  assert.doesNotThrow(() => evaluate(policy!.model, facts));
});

test("an old link's comma-joined process is still read", () => {
  const link = decodeExplainLink(
    encodeExplainLink({
      direction: "egress",
      protocol: "tcp",
      local: "10.0.0.1",
      remote: "203.0.113.9",
      ports: { local: 40000, remote: 443 },
      process: "path=/usr/bin/curl,name=curl",
    }),
  );
  const parsed = factsOf(valuesOfLink(link!));
  assert.ok(parsed.ok);
  assert.deepEqual(parsed.facts.process, { path: "/usr/bin/curl", name: "curl" });
});

test("--process: a backslash escapes ',' '=' and itself", () => {
  const r = parseProcessText(["path=/a\\,b\\=c\\\\,name=x"]);
  assert.ok(r.ok);
  assert.deepEqual(r.value, { path: "/a,b=c\\", name: "x" });
  // a backslash before another character is itself
  const plain = parseProcessText(["path=/a\\b"]);
  assert.ok(plain.ok);
  assert.deepEqual(plain.value, { path: "/a\\b" });
});
