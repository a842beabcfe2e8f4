// NATS publishing against a real nats-server (Debian package) started here on a free port:
// events arrive on the subject; a server stopped mid-stream costs counted drops, and once it is
// back the sink reconnects and delivers again.
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, type NatsConnection, type Subscription } from "nats";
import { NatsSink } from "../../src/observe/publish/nats.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";
import { moatEvent } from "../helpers/moat-events.ts";
import { flushes, startNatsServer, stopNatsServer } from "../helpers/nats-server.ts";
import { freePort } from "../helpers/ports.ts";
import { untilTrue } from "../helpers/until.ts";

/** How long a wait for the server, the sink or the subscriber may take. */
const WAIT_MS = 5000;

/** Collects what a subscriber gets, decoded. */
function collect(sub: Subscription): MoatEvent[] {
  const got: MoatEvent[] = [];
  void (async () => {
    for await (const m of sub) got.push(JSON.parse(new TextDecoder().decode(m.data)) as MoatEvent);
  })();
  return got;
}

const ev = (i: number) =>
  moatEvent({ type: "blocked", verdict: "blocked", connection: i.toString(16) }, i);

test("events are published to the subject, survive a server restart, and losses are counted", async () => {
  const port = await freePort();
  const url = `nats://127.0.0.1:${port}`;
  let server = await startNatsServer(port, [], WAIT_MS);
  let sink: NatsSink | undefined;
  let client: NatsConnection | undefined;
  try {
    client = await connect({ servers: url, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
    const got = collect(client.subscribe("moat.events"));
    const other = collect(client.subscribe("other.subject"));
    await client.flush();

    sink = new NatsSink({
      url,
      subject: "moat.events",
      reconnectWaitMs: 100,
      flushTimeoutMs: 1000,
    });
    const s = sink;
    await untilTrue("the sink to connect", () => s.stats.connected, WAIT_MS);
    await s.write([ev(1), ev(2)]);
    await s.write([ev(3)]);
    await untilTrue("three events", () => got.length === 3, WAIT_MS);
    assert.deepEqual(got, [ev(1), ev(2), ev(3)], "each event's JSON, in order");
    assert.equal(other.length, 0);

    // the server goes away mid-stream: writes fail fast and are counted as drops
    await stopNatsServer(server);
    await untilTrue("the sink to notice", () => !s.stats.connected, WAIT_MS);
    await assert.rejects(
      async () => s.write([ev(4), ev(5)]),
      /nats 127\.0\.0\.1:\d+ moat\.events: not connected; dropped 2 events/,
    );
    assert.equal(s.stats.dropped, 2);

    // back on the same port: the sink and the subscriber reconnect, delivery resumes
    server = await startNatsServer(port, [], WAIT_MS);
    await untilTrue(
      "the sink to reconnect",
      () => s.stats.connected && s.stats.reconnects === 1,
      WAIT_MS,
    );
    await untilTrue("the subscriber to reconnect", () => flushes(client), WAIT_MS);
    await new Promise((r) => setTimeout(r, 200)); // the subscriber resubscribes after reconnecting
    await s.write([ev(6)]);
    await untilTrue("the event after the restart", () => got.length === 4, WAIT_MS);
    assert.deepEqual(
      got.map((e) => e.connection),
      ["1", "2", "3", "6"],
      "the dropped events are gone, not replayed",
    );
    assert.deepEqual(s.stats, {
      published: 4,
      dropped: 2,
      unconfirmed: 0,
      reconnects: 1,
      connected: true,
    });
  } finally {
    await sink?.close();
    await client?.close();
    await stopNatsServer(server);
  }
});

test("a NATS sink whose server never comes up drops and counts, and closes promptly", async () => {
  const port = await freePort();
  const sink = new NatsSink({
    url: `nats://127.0.0.1:${port}`,
    subject: "moat.events",
    reconnectWaitMs: 50,
  });
  await new Promise((r) => setTimeout(r, 150));
  await assert.rejects(async () => sink.write([ev(1)]), /not connected; dropped 1 events/);
  assert.deepEqual(sink.stats, {
    published: 0,
    dropped: 1,
    unconfirmed: 0,
    reconnects: 0,
    connected: false,
  });
  // were close() to wait on the reconnect loop, the runner's per-test timeout would fail this test
  await sink.close();
});
