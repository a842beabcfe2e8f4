// OpenTelemetry export against a real OTLP/HTTP receiver started here (no collector installs on
// this machine): what arrives is decoded with the OTLP protobuf definitions and checked as a
// backend would show it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { hostname } from "node:os";
import { readFileSync } from "node:fs";
import { createOtelExport } from "../../src/observe/otel/sink.ts";
import { startOtlpReceiver, withReceiver } from "../helpers/otlp-receiver.ts";
import { closeOf, moatEvent, snapshot } from "../helpers/moat-events.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";

const VERSION = (JSON.parse(readFileSync("package.json", "utf8")) as { version: string }).version;
const NS_PER_MS = 1_000_000n;

test("every event becomes a log record with semantic-convention and moat attributes", () =>
  withReceiver(async (r) => {
    const otel = createOtelExport({ endpoint: r.url, snapshot: () => snapshot() });
    try {
      const ssh = moatEvent({
        type: "blocked",
        verdict: "blocked",
        rule: "default",
        direction: "ingress",
        local: { ip: "10.0.0.1", port: 22 },
        remote: { ip: "203.0.113.9", port: 51514 },
        connection: "2b",
        hook: "xdp",
      });
      const dns = moatEvent({
        type: "detected",
        verdict: "detected",
        mode: "detect",
        rule: "no-dns",
        protocol: "udp",
        local: { ip: "2001:db8::1", port: 5353 },
        remote: { ip: "2001:db8::53", port: 53 },
        connection: "3c",
      });
      await otel.sink.write([ssh, dns]);

      assert.equal(r.logs.length, 2, "write() resolves once its records were exported");
      const [blocked, detected] = r.logs;
      assert.ok(blocked && detected);
      assert.deepEqual(blocked.resource, {
        "service.name": "moat",
        "service.version": VERSION,
        "host.name": hostname(),
      });
      assert.equal(blocked.severityText, "WARN2");
      assert.equal(detected.severityText, "WARN");
      assert.ok(blocked.severityNumber > detected.severityNumber);
      assert.equal(blocked.eventName, "moat.connection.blocked");
      assert.match(
        String(blocked.body),
        /BLOCKED ingress tcp 203\.0\.113\.9:51514 -> 10\.0\.0\.1:22 on eth0 by rule default/,
      );
      assert.equal(blocked.timeNs, BigInt(Date.parse(ssh.time)) * NS_PER_MS);
      // ingress: the remote peer opened it, so it is the source and the client
      assert.deepEqual(
        pick(blocked.attributes, [
          "network.transport",
          "network.type",
          "source.address",
          "source.port",
          "destination.address",
          "destination.port",
          "client.address",
          "server.port",
          "network.interface.name",
          "moat.verdict",
          "moat.rule",
          "moat.direction",
          "moat.mode",
          "moat.connection.id",
          "moat.event.type",
          "moat.hook",
        ]),
        {
          "network.transport": "tcp",
          "network.type": "ipv4",
          "source.address": "203.0.113.9",
          "source.port": 51514,
          "destination.address": "10.0.0.1",
          "destination.port": 22,
          "client.address": "203.0.113.9",
          "server.port": 22,
          "network.interface.name": "eth0",
          "moat.verdict": "blocked",
          "moat.rule": "default",
          "moat.direction": "ingress",
          "moat.mode": "prevent",
          "moat.connection.id": "2b",
          "moat.event.type": "blocked",
          "moat.hook": "xdp",
        },
      );
      // egress: this host is the source
      assert.equal(detected.attributes["network.type"], "ipv6");
      assert.equal(detected.attributes["source.address"], "2001:db8::1");
      assert.equal(detected.attributes["destination.port"], 53);
      assert.equal(detected.attributes["moat.mode"], "detect");
      assert.equal(detected.attributes["process.pid"], undefined, "no process facts yet");
    } finally {
      await otel.shutdown();
    }
  }));

test("process attribution maps to process.* and the container's id to container.id", () =>
  withReceiver(async (r) => {
    const otel = createOtelExport({ endpoint: r.url, snapshot: () => snapshot() });
    try {
      const id = "4f2a9c" + "0".repeat(58);
      const process = {
        pid: 812,
        name: "sshd",
        path: "/usr/sbin/sshd",
        user: 0,
        cgroup: `/system.slice/docker-${id}.scope`,
        container: { id, name: "web", image: "nginx:1.27" },
      };
      const ev: MoatEvent = { ...moatEvent({ connection: "p1" }), process };
      await otel.sink.write([ev]);
      assert.deepEqual(
        pick(r.logs[0]?.attributes ?? {}, [
          "process.pid",
          "process.executable.name",
          "process.executable.path",
          "process.user.id",
          "process.linux.cgroup",
          "container.id",
        ]),
        {
          "process.pid": 812,
          "process.executable.name": "sshd",
          "process.executable.path": "/usr/sbin/sshd",
          "process.user.id": 0,
          "process.linux.cgroup": `/system.slice/docker-${id}.scope`,
          "container.id": id,
        },
      );
    } finally {
      await otel.shutdown();
    }
  }));

test("a span per connection from its verdict to its close; blocked and untracked ones are zero-length", () =>
  withReceiver(async (r) => {
    const otel = createOtelExport({ endpoint: r.url, snapshot: () => snapshot() });
    try {
      const web = moatEvent({ connection: "a1", rule: "web" }, 0);
      const blocked = moatEvent(
        { type: "blocked", verdict: "blocked", rule: "default", connection: "b2" },
        100,
      );
      const untracked = moatEvent(
        { connection: null, reason: "untracked", local: { ip: "10.0.0.1", port: 40999 } },
        200,
      );
      await otel.sink.write([web, blocked, untracked]);
      await r.waitFor("two zero-length spans", () => r.spans.length === 2);
      assert.deepEqual(
        r.spans.map((s) => [
          s.attributes["moat.connection.id"] ?? null,
          s.endNs - s.startNs,
          s.attributes["moat.span.ended_by"],
        ]),
        [
          ["b2", 0n, "verdict"],
          [null, 0n, "verdict"],
        ],
        "the open connection's span waits for its close",
      );

      await otel.sink.write([closeOf(web, 1500)]);
      await r.waitFor("the connection's span", () => r.spans.length === 3);
      const span = r.spans[2];
      assert.ok(span);
      assert.equal(span.name, "egress tcp");
      assert.equal(span.startNs, BigInt(Date.parse(web.time)) * NS_PER_MS);
      assert.equal(span.endNs - span.startNs, 1500n * NS_PER_MS, "verdict to close: 1.5 s");
      assert.deepEqual(
        pick(span.attributes, [
          "moat.verdict",
          "moat.rule",
          "moat.connection.id",
          "moat.close.reason",
          "moat.connection.bytes",
          "moat.span.ended_by",
          "destination.address",
        ]),
        {
          "moat.verdict": "allowed",
          "moat.rule": "web",
          "moat.connection.id": "a1",
          "moat.close.reason": "fin",
          "moat.connection.bytes": 3456,
          "moat.span.ended_by": "closed",
          "destination.address": "198.51.100.7",
        },
      );
      assert.equal(span.resource["service.name"], "moat");
      // the verdict's and the close's log records carry the span's ids
      const linked = r.logs.filter((l) => l.attributes["moat.connection.id"] === "a1");
      assert.deepEqual(
        linked.map((l) => [l.attributes["moat.event.type"], l.traceId, l.spanId]),
        [
          ["allowed", span.traceId, span.spanId],
          ["closed", span.traceId, span.spanId],
        ],
      );
    } finally {
      await otel.shutdown();
    }
  }));

test("open spans are bounded: the oldest is ended and marked evicted; shutdown ends the rest", () =>
  withReceiver(async (r) => {
    const otel = createOtelExport({ endpoint: r.url, snapshot: () => snapshot(), maxOpenSpans: 2 });
    await otel.sink.write(
      ["c1", "c2", "c3"].map((connection, i) => moatEvent({ connection }, i * 10)),
    );
    await r.waitFor("the evicted span", () => r.spans.length === 1);
    assert.equal(r.spans[0]?.attributes["moat.connection.id"], "c1");
    assert.equal(r.spans[0]?.attributes["moat.span.ended_by"], "evicted");
    await otel.shutdown();
    assert.deepEqual(
      r.spans.map((s) => [s.attributes["moat.connection.id"], s.attributes["moat.span.ended_by"]]),
      [
        ["c1", "evicted"],
        ["c2", "shutdown"],
        ["c3", "shutdown"],
      ],
    );
  }));

test("metrics: connections by verdict, rule and direction, and the snapshot's counters", () =>
  withReceiver(async (r) => {
    const snap = snapshot({
      rules: [{ name: "web", packets: 40n, bytes: 51200n, connections: 4n }],
      ringLost: 7n,
      reloads: { ok: 2, refused: 1 },
      conntrack: { entries: 42, capacity: 65536 },
      sinks: [{ name: "webhook", delivered: 10, dropped: 5, failed: 1, lost: 10, queued: 0 }],
      feeds: [
        { name: "ioc", failures: 2, failingSince: "2026-12-07T01:00:00.000Z" },
        { name: "spam", failures: 1 },
      ],
    });
    snap.counters.limitDropped.packets = 120n;
    snap.counters.limitFull.packets = 3n;
    snap.counters.tcpFlagsDropped.packets = 9n;
    const otel = createOtelExport({ endpoint: r.url, snapshot: () => snap });
    const blocked = {
      type: "blocked",
      verdict: "blocked",
      rule: "ssh",
      direction: "ingress",
    } as const;
    await otel.sink.write([
      moatEvent({ ...blocked, connection: "1" }),
      moatEvent({ ...blocked, connection: "2" }),
      moatEvent({ ...blocked, connection: "3" }),
      moatEvent({ connection: "4" }),
      closeOf(moatEvent({ connection: "4" }), 10),
      moatEvent({ ...blocked, connection: "4", reason: "rejudged" }),
      // reports about a connection's packets or an attack: no new connection
      moatEvent({ ...blocked, connection: "1", reason: "rate_limit" }),
      moatEvent({ ...blocked, connection: "2", reason: "ids" }),
      moatEvent({ ...blocked, connection: "", reason: "tcp_flags" }),
      moatEvent({ ...blocked, connection: "", reason: "syn_flood" }),
      moatEvent({ connection: "4", type: "detected", reason: "max_duration" }),
    ]);
    await otel.shutdown(); // flushes the metric reader once more
    const point = (metric: string, attributes: Record<string, string> = {}) =>
      r.points
        .filter((p) => p.metric === metric)
        .filter((p) => Object.entries(attributes).every(([k, v]) => p.attributes[k] === v))
        .at(-1)?.value;
    assert.equal(
      point("moat.connections", {
        "moat.verdict": "blocked",
        "moat.rule": "ssh",
        "moat.direction": "ingress",
      }),
      3,
    );
    assert.equal(
      point("moat.connections", {
        "moat.verdict": "allowed",
        "moat.rule": "web",
        "moat.direction": "egress",
      }),
      1,
      "closes, re-judgements and reports are not new connections",
    );
    assert.equal(point("moat.rule.bytes", { "moat.rule": "web" }), 51200);
    assert.equal(point("moat.rule.packets", { "moat.rule": "web" }), 40);
    assert.equal(point("moat.events.lost"), 7);
    assert.equal(point("moat.sink.dropped", { "moat.sink": "webhook" }), 5);
    assert.equal(point("moat.sink.failed_events", { "moat.sink": "webhook" }), 10);
    assert.equal(point("moat.policy.reloads", { "moat.result": "ok" }), 2);
    assert.equal(point("moat.policy.reloads", { "moat.result": "refused" }), 1);
    assert.equal(point("moat.conntrack.entries"), 42);
    assert.equal(point("moat.ratelimit.packets", { "moat.outcome": "dropped" }), 120);
    assert.equal(point("moat.ratelimit.packets", { "moat.outcome": "table_full" }), 3);
    assert.equal(point("moat.scrub.packets", { "moat.outcome": "dropped" }), 9);
    assert.equal(point("moat.otel.lost", { "moat.otel.signal": "logs" }), 0);
    assert.equal(point("moat.feed.fetch_failures", { "moat.feed.name": "ioc" }), 2);
    assert.equal(point("moat.feed.fetch_failures", { "moat.feed.name": "spam" }), 1);
    assert.equal(point("moat.feed.failing", { "moat.feed.name": "ioc" }), 1);
    assert.equal(point("moat.feed.failing", { "moat.feed.name": "spam" }), 0);
    assert.equal(
      r.points.find((p) => p.metric === "moat.connections")?.resource["service.name"],
      "moat",
    );
  }));

test("a collector refusing an export makes write() reject, names the endpoint, and counts the loss", () =>
  withReceiver(async (r) => {
    const otel = createOtelExport({ endpoint: `${r.url}/`, snapshot: () => snapshot() });
    try {
      r.failNext(1, 400, "/v1/logs");
      await assert.rejects(
        async () =>
          otel.sink.write([moatEvent({ type: "blocked", verdict: "blocked", connection: "f1" })]),
        (e: Error) => e.message.includes(`otel: ${r.url}/ did not take 1 `),
      );
      await otel.sink.write([moatEvent({ type: "blocked", verdict: "blocked", connection: "f2" })]);
      assert.deepEqual(
        r.logs.map((l) => l.attributes["moat.connection.id"]),
        ["f2"],
        "the next batch still goes out, to /v1/logs despite the trailing slash",
      );
    } finally {
      await otel.shutdown();
    }
    const lost = r.points.filter((p) => p.metric === "moat.otel.lost");
    assert.equal(lost.findLast((p) => p.attributes["moat.otel.signal"] === "logs")?.value, 1);
  }));

// were write() to hang, the runner's per-test timeout would fail this test
test("an endpoint nobody listens on fails write() with the refusal", async () => {
  const r = await startOtlpReceiver();
  const endpoint = r.url;
  await r.close(); // the port is free again: connection refused
  const otel = createOtelExport({ endpoint, snapshot: () => snapshot(), timeoutMs: 1000 });
  await assert.rejects(
    async () => otel.sink.write([moatEvent({ connection: null })]),
    /otel: .* did not take 2 log records\/spans: connect ECONNREFUSED/,
  );
  await otel.shutdown();
});

function pick(o: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((k) => [k, o[k]]));
}
