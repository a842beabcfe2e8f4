// NATS and JetStream publishing to a real nats-server that stalls (SIGSTOP: its TCP connection
// stays open, nothing is read or answered). What a sink counts as dropped is never sent, so it
// never arrives after the server resumes; the client holds at most the one batch whose
// confirmation is awaited, and JetStream does not pile retries on a connection that is not read.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import { NatsSink } from "../../src/observe/publish/nats.ts";
import { JetStreamSink } from "../../src/observe/publish/jetstream.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";
import { moatEvent } from "../helpers/moat-events.ts";
import { flushes, startNatsServer, stopNatsServer } from "../helpers/nats-server.ts";
import { freePort } from "../helpers/ports.ts";
import { untilTrue } from "../helpers/until.ts";

/** How long a wait for the server, the sink or the subscriber may take, unless a step says. */
const WAIT_MS = 10_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A nats-server on a free port, ended (resumed first) by its PID. */
async function startServer(args: string[] = []) {
  const port = await freePort();
  const child = await startNatsServer(port, args, WAIT_MS);
  const pid = child.pid ?? 0;
  return {
    url: `nats://127.0.0.1:${port}`,
    /** Stops the server and waits until every thread of it has stopped (kill only queues it). */
    async stall() {
      process.kill(pid, "SIGSTOP");
      const stopped = () =>
        readdirSync(`/proc/${pid}/task`).every((t) =>
          / T /.test(readFileSync(`/proc/${pid}/task/${t}/stat`, "utf8").replace(/^.*\)/, "")),
        );
      await untilTrue("nats-server to stop", stopped, WAIT_MS);
    },
    resume: () => process.kill(pid, "SIGCONT"),
    stop: () => stopNatsServer(child),
  };
}

/** The connection ids of the events `client` gets on moat.events, as they arrive. */
async function received(client: NatsConnection): Promise<string[]> {
  const got: string[] = [];
  const sub = client.subscribe("moat.events");
  void (async () => {
    for await (const m of sub) got.push((JSON.parse(m.string()) as MoatEvent).connection ?? "");
  })();
  await client.flush();
  return got;
}

const PATH = `/opt/${"x".repeat(1000)}`;
const batchOf = (from: number, n: number): MoatEvent[] =>
  Array.from({ length: n }, (_, i) =>
    moatEvent(
      {
        connection: (from + i).toString(16),
        process: { pid: i, name: "curl", path: PATH, user: 0, cgroup: "/", container: null },
      },
      i,
    ),
  );

test("NATS: batches written while the server stalls are dropped unsent; the one awaiting confirmation is counted once it settles", async () => {
  const server = await startServer();
  let client: NatsConnection | undefined;
  const sink = new NatsSink({ url: server.url, subject: "moat.events", flushTimeoutMs: 300 });
  try {
    client = await connect({ servers: server.url });
    const got = await received(client);
    await untilTrue("the sink to connect", () => sink.stats.connected, WAIT_MS);
    await sink.write(batchOf(0, 10));
    await untilTrue("the first batch", () => got.length === 10, WAIT_MS);

    await server.stall();
    const n = 500;
    await assert.rejects(
      () => sink.write(batchOf(1000, n)),
      /server has not confirmed 500 events in 300 ms/,
    );
    assert.equal(sink.stats.unconfirmed, n);
    for (let i = 0; i < 8; i++)
      await assert.rejects(
        () => sink.write(batchOf(2000 + i * n, n)),
        /dropped 500 events: the server has not confirmed earlier ones/,
      );
    assert.equal(sink.stats.dropped, 8 * n, "dropped: never sent");

    server.resume();
    await untilTrue("the unconfirmed batch to settle", () => sink.stats.unconfirmed === 0, WAIT_MS);
    await sleep(300);
    assert.deepEqual(
      { published: sink.stats.published, dropped: sink.stats.dropped },
      { published: 10 + n, dropped: 8 * n },
    );
    assert.equal(got.length, 10 + n, "what arrived is what was counted published");
    assert.ok(
      got.every((c) => parseInt(c, 16) < 2000),
      "no event counted dropped arrived",
    );
    await sink.write(batchOf(9000, 3)); // and delivery goes on
    await untilTrue("delivery after the stall", () => got.length === 10 + n + 3, WAIT_MS);
  } finally {
    server.resume(); // a test failed mid-stall: closing drains through the server
    await sink.close();
    await client?.close();
    await server.stop();
  }
});

test("NATS: a server that stays stalled is given up as stale; the unconfirmed batch is counted dropped, and delivery resumes", async () => {
  const server = await startServer();
  let client: NatsConnection | undefined;
  const sink = new NatsSink({
    url: server.url,
    subject: "moat.events",
    flushTimeoutMs: 200,
    pingIntervalMs: 300,
    reconnectWaitMs: 100,
  });
  try {
    client = await connect({
      servers: server.url,
      reconnectTimeWait: 100,
      maxReconnectAttempts: -1,
    });
    const got = await received(client);
    await untilTrue("the sink to connect", () => sink.stats.connected, WAIT_MS);

    await server.stall();
    await assert.rejects(() => sink.write(batchOf(0, 50)), /has not confirmed 50 events/);
    await untilTrue(
      "the stale connection to be given up",
      () => sink.stats.unconfirmed === 0,
      WAIT_MS,
    );
    assert.equal(sink.stats.dropped, 50);
    assert.equal(sink.stats.published, 0);
    await assert.rejects(() => sink.write(batchOf(100, 5)), /not connected; dropped 5 events/);

    server.resume();
    await untilTrue("the sink to reconnect", () => sink.stats.connected, 30_000);
    await untilTrue("the subscriber to reconnect", () => flushes(client), WAIT_MS);
    await sleep(300);
    const before = got.length;
    await sink.write(batchOf(1000, 3));
    await untilTrue("delivery after the stall", () => got.length === before + 3, WAIT_MS);
    assert.equal(sink.stats.published, 3);
  } finally {
    server.resume();
    await sink.close();
    await client?.close();
    await server.stop();
  }
});

test("JetStream: no retry piles up on a stalled server; a batch written meanwhile is dropped unsent", async () => {
  const store = mkdtempSync(join(tmpdir(), "moat-js-stall-"));
  const server = await startServer(["-js", "-sd", store]);
  let admin: NatsConnection | undefined;
  const sink = new JetStreamSink({
    connection: { url: server.url, host: "h1", reconnectWaitMs: 100 },
    subject: "moat.events",
    host: "h1",
    retryHorizonMs: 1500,
    ackTimeoutMs: 200,
  });
  try {
    admin = await connect({ servers: server.url });
    const jsm = await admin.jetstreamManager();
    await jsm.streams.add({ name: "MOAT", subjects: ["moat.events.>"] });
    await untilTrue("the sink to connect", () => sink.stats.connected, WAIT_MS);
    await sink.write(batchOf(0, 10));
    assert.equal(sink.stats.published, 10);

    await server.stall();
    const n = 200;
    const started = Date.now();
    await assert.rejects(
      () => sink.write(batchOf(1000, n)),
      /200 of 200 events not acknowledged in time/,
    );
    assert.ok(Date.now() - started < 5000, "given up at the horizon");
    assert.equal(sink.stats.retries, 0, "nothing sent again while the first send is unread");
    await assert.rejects(
      () => sink.write(batchOf(2000, n)),
      /dropped 200 events: the server has not confirmed earlier ones/,
    );
    assert.equal(sink.stats.dropped, 2 * n);

    server.resume();
    await sleep(1000);
    const stored = await jsm.streams.info("MOAT");
    // the batch given up on while unread may still be stored, once each by its id; the batch
    // dropped unsent never is
    assert.ok(stored.state.messages <= 10 + n, `${stored.state.messages} stored`);
    const last = await jsm.streams.getMessage("MOAT", { seq: stored.state.last_seq });
    assert.ok(parseInt((last.json() as MoatEvent).connection ?? "", 16) < 2000);
  } finally {
    server.resume();
    await sink.close();
    await admin?.close();
    await server.stop();
    rmSync(store, { recursive: true, force: true });
  }
});
