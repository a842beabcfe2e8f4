// The live view's filter words, negation included.
import { test } from "node:test";
import assert from "node:assert/strict";
import { FlowFilterError, matchesFlow, parseFlowFilter } from "../../web/live/flow-filter.ts";
import type { FlowRow } from "../../src/api/flow-aggregator.ts";

const row = (over: Partial<FlowRow> = {}): FlowRow => ({
  id: 1,
  identity: "web/curl",
  process: "curl",
  path: "/usr/bin/curl",
  container: "web",
  direction: "egress",
  remote: "10.1.2.3",
  names: ["api.example.com"],
  port: 443,
  local: "10.0.0.1",
  protocol: "tcp",
  verdict: "blocked",
  rule: "default",
  types: { blocked: 3, closed: 1 },
  count: 4,
  lastSeen: "2026-01-01T00:00:00.000Z",
  ...over,
});

test("each word must hold; ! negates", () => {
  const m = (text: string, r = row()) => matchesFlow(r, parseFlowFilter(text));
  assert.equal(m(""), true);
  assert.equal(m("type:blocked rule:default"), true);
  assert.equal(m("type:dns"), false);
  assert.equal(m("type:closed"), true);
  assert.equal(m("!process:curl"), false);
  assert.equal(m("-process:wget"), true);
  assert.equal(m("container:web port:400-500"), true);
  assert.equal(m("port:22"), false);
  assert.equal(m("remote:10.0.0.0/8 name:example"), true);
  assert.equal(m("remote:10.2.0.0/16"), false);
  assert.equal(m("!verdict:allowed api"), true);
  assert.equal(m("proto:udp"), false);
});

test("an unknown word or a bad port is an error naming it", () => {
  assert.throws(() => parseFlowFilter("colour:red"), FlowFilterError);
  assert.throws(() => parseFlowFilter("port:http"), /port 'http' is not a port/);
  assert.throws(() => parseFlowFilter("rule:"), /gives no value/);
});
