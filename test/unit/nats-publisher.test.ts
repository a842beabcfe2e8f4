// NATS publishing against a real nats-server (Debian package) started here on a free port:
// events arrive on the subject; a server stopped mid-stream costs counted drops, and once it is
// back the sink reconnects and delivers again.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createServer, connect as tcpConnect, type AddressInfo } from "node:net";
import { connect, type NatsConnection, type Subscription } from "nats";
import { NatsSink } from "../../src/observe/publish/nats.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";
import { moatEvent } from "../helpers/moat-events.ts";

const NATS_SERVER = "/usr/sbin/nats-server";

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = tcpConnect(port, "127.0.0.1");
    c.once("connect", () => (c.destroy(), resolve(true)));
    c.once("error", () => resolve(false));
  });
}

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function startServer(port: number): Promise<ChildProcess> {
  const child = spawn(NATS_SERVER, ["-a", "127.0.0.1", "-p", String(port)], { stdio: "ignore" });
  await until("nats-server to listen", () => accepts(port));
  return child;
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  if (child.pid !== undefined) process.kill(child.pid, "SIGKILL");
  await exited;
}

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
  let server = await startServer(port);
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
    await until("the sink to connect", () => s.stats.connected);
    await s.write([ev(1), ev(2)]);
    await s.write([ev(3)]);
    await until("three events", () => got.length === 3);
    assert.deepEqual(got, [ev(1), ev(2), ev(3)], "each event's JSON, in order");
    assert.equal(other.length, 0);

    // the server goes away mid-stream: writes fail fast and are counted as drops
    await stopServer(server);
    await until("the sink to notice", () => !s.stats.connected);
    await assert.rejects(
      async () => s.write([ev(4), ev(5)]),
      /nats 127\.0\.0\.1:\d+ moat\.events: not connected; dropped 2 events/,
    );
    assert.equal(s.stats.dropped, 2);

    // back on the same port: the sink and the subscriber reconnect, delivery resumes
    server = await startServer(port);
    await until("the sink to reconnect", () => s.stats.connected && s.stats.reconnects === 1);
    await until("the subscriber to reconnect", async () => {
      try {
        await client?.flush();
        return true;
      } catch {
        return false;
      }
    });
    await new Promise((r) => setTimeout(r, 200)); // the subscriber resubscribes after reconnecting
    await s.write([ev(6)]);
    await until("the event after the restart", () => got.length === 4);
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
    await stopServer(server);
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
