// The live view's aggregation: events fold into one row per (identity, remote, port, protocol,
// verdict, rule); a delta carries only the rows changed since the last; the table is bounded and
// says which rows it evicted.
import { test } from "node:test";
import assert from "node:assert/strict";
import { FlowAggregator } from "../../src/api/flow-aggregator.ts";
import { fakeEvent } from "../helpers/events.ts";

const curl = {
  pid: 42,
  name: "curl",
  path: "/usr/bin/curl",
  user: 1000,
  cgroup: "/user.slice",
  container: null,
};

test("events of one flow fold into a row with its count, last time and names", () => {
  const a = new FlowAggregator();
  for (let i = 0; i < 1000; i++)
    a.add(
      fakeEvent({
        direction: "egress",
        process: curl,
        remote: { ip: "192.0.2.7", port: 443, names: ["example.com"] },
        local: { ip: "10.0.0.1", port: 40000 + i },
        time: `2026-01-01T00:00:${String(i % 60).padStart(2, "0")}.000Z`,
        rule: "web",
      }),
    );
  const d = a.drain();
  assert.ok(d);
  assert.equal(d.rows.length, 1);
  const [row] = d.rows;
  assert.equal(row?.identity, "curl");
  assert.equal(row?.port, 443, "egress: the remote's port, not the ephemeral local one");
  assert.equal(row?.count, 1000);
  assert.deepEqual(row?.types, { blocked: 1000 });
  assert.deepEqual(row?.names, ["example.com"]);
  assert.equal(row?.lastSeen, "2026-01-01T00:00:39.000Z");
  assert.equal(d.events, 1000);
  assert.equal(a.drain(), null, "nothing changed since");
});

test("verdict, rule, port and container each make a row of their own; ingress keys on the local port", () => {
  const a = new FlowAggregator();
  a.add(fakeEvent({ rule: "a" }));
  a.add(fakeEvent({ rule: "b" }));
  a.add(fakeEvent({ rule: "a", verdict: "detected", type: "detected" }));
  a.add(fakeEvent({ rule: "a", remote: { ip: "203.0.113.9", port: 1 } }));
  a.add(
    fakeEvent({
      rule: "a",
      process: { ...curl, container: { id: "c".repeat(64), name: "web", image: "nginx" } },
    }),
  );
  const rows = a.drain()?.rows ?? [];
  assert.equal(rows.length, 4, "the ingress row with another remote port is the same flow");
  assert.ok(rows.every((r) => r.port === 22));
  assert.ok(rows.some((r) => r.identity === "web/curl" && r.container === "web"));
  a.add(fakeEvent({ rule: "b" }));
  const d = a.drain();
  assert.deepEqual(
    d?.rows.map((r) => [r.rule, r.count]),
    [["b", 2]],
  );
});

test("the table is bounded: the least recently seen row goes and the delta names it", () => {
  const a = new FlowAggregator(3);
  for (let i = 0; i < 3; i++) a.add(fakeEvent({ rule: `r${i}` }));
  const first = a.drain();
  a.add(fakeEvent({ rule: "r0" })); // r0 is now the most recent
  a.add(fakeEvent({ rule: "r3" }));
  const d = a.drain();
  assert.equal(a.size, 3);
  const r1 = first?.rows.find((r) => r.rule === "r1");
  assert.deepEqual(d?.removed, [r1?.id]);
  assert.deepEqual(
    a
      .snapshot()
      .rows.map((r) => r.rule)
      .sort(),
    ["r0", "r2", "r3"],
  );
});

test("a flood of distinct flows reaches the browser a bounded slice per delta, all in the end", () => {
  const a = new FlowAggregator(5000);
  for (let i = 0; i < 50_000; i++)
    a.add(fakeEvent({ remote: { ip: `198.51.${(i >> 8) & 255}.${i & 255}`, port: 1 } }));
  const seen = new Set<number>();
  let deltas = 0;
  for (let d = a.drain(400); d; d = a.drain(400)) {
    deltas++;
    assert.ok(d.rows.length <= 400);
    assert.equal(d.flows, 5000);
    assert.equal(d.events, 50_000);
    for (const r of d.rows) seen.add(r.id);
  }
  assert.equal(deltas, 13, "5000 rows, 400 a delta (the first also names the evicted)");
  assert.equal(seen.size, 5000);
});
