// Fleet events against a real 3-node nats-server cluster with JetStream (test/helpers/nats-cluster.ts),
// each host connecting with its own nkey: events acknowledged before a node died are all in the
// stream (replicas 3) and stored once; a publish retried with its id within the duplicate window is
// stored once; a host's credentials cannot write another host's subject or key. Without a server,
// the sink drops and counts after its retry horizon; `moat fleet nkey` makes a host's key.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nkeyAuthenticator, nkeys, connect, type NatsConnection } from "nats";
import { JetStreamSink, RETRY_HORIZON_MS } from "../../src/observe/publish/jetstream.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";
import { moatEvent } from "../helpers/moat-events.ts";
import { startNatsCluster, type NatsCluster } from "../helpers/nats-cluster.ts";
import { MOAT } from "../helpers/paths.ts";
import { untilTrue } from "../helpers/until.ts";

const BUCKET = "moat-policy";
const SUBJECT = "moat.events";
const STREAM = "MOAT_EVENTS";

/**
 * `ask` once the cluster answers: after a server is killed, the stream's replicas elect a new
 * leader first (seconds, on a busy machine), and requests meanwhile time out.
 */
async function settled<T>(ask: () => Promise<T>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await ask();
    } catch (err) {
      if (Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** The events stream as docs/fleet.md creates it: every host's subject, 3 replicas. */
async function createStream(cluster: NatsCluster): Promise<NatsConnection> {
  const admin = await cluster.connectAdmin();
  const jsm = await admin.jetstreamManager();
  await jsm.streams.add({
    name: STREAM,
    subjects: [`${SUBJECT}.>`],
    num_replicas: 3,
    duplicate_window: 120 * 1e9, // ns: 2 min, the default, stated
  });
  // the bucket too, while all three servers run (a later test kills one)
  await admin.jetstream().views.kv(BUCKET, { replicas: 3, history: 5 });
  return admin;
}

/** Every event in the stream, with its subject. */
async function storedEvents(admin: NatsConnection): Promise<{ subject: string; e: MoatEvent }[]> {
  const jsm = await settled(() => admin.jetstreamManager());
  const info = await settled(() => jsm.streams.info(STREAM));
  const out: { subject: string; e: MoatEvent }[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages; seq++) {
    const m = await settled(() => jsm.streams.getMessage(STREAM, { seq }));
    out.push({ subject: m.subject, e: m.json<MoatEvent>() });
  }
  return out;
}

const hostConnect = (cluster: NatsCluster, host: string) =>
  connect({
    servers: cluster.urls,
    authenticator: nkeyAuthenticator(new TextEncoder().encode(cluster.hosts.get(host)?.seed)),
    inboxPrefix: `_INBOX_${host}`,
  });

test("fleet cluster", async (t) => {
  const cluster = await startNatsCluster({
    hosts: ["web1", "web2"],
    bucket: BUCKET,
    subject: SUBJECT,
  });
  // closed in one hook, the admin's connection first: closed after the servers are gone, a
  // connection that retries for ever (maxReconnectAttempts -1) can keep close() waiting
  const closing: (() => Promise<void>)[] = [() => cluster.close()];
  t.after(async () => {
    for (const close of closing.reverse()) await close();
  });
  const admin = await createStream(cluster);
  closing.push(() => admin.close());

  await t.test(
    "every event acknowledged before a node was killed mid-stream is in the stream, once",
    async () => {
      const sink = new JetStreamSink({
        // one server named: the client learns the others from the cluster
        connection: {
          url: cluster.urls[0] ?? "",
          host: "web1",
          seed: cluster.hosts.get("web1")?.seed ?? "",
          reconnectWaitMs: 100,
        },
        host: "web1",
        subject: SUBJECT,
        ackTimeoutMs: 1000,
      });
      try {
        await untilTrue("the sink to connect", () => sink.stats.connected, 15_000);
        const acked: string[] = [];
        let refused = 0;
        let n = 0;
        const batch = () =>
          Array.from({ length: 20 }, () => moatEvent({ connection: (++n).toString(16) }, n));
        for (let i = 0; i < 30; i++) {
          const events = batch();
          const write = sink.write(events);
          // the server the sink is connected to dies while a batch is on its way
          if (i === 10) await cluster.kill(0);
          try {
            await write;
            acked.push(...events.map((e) => e.connection ?? ""));
          } catch {
            refused += events.length;
          }
        }
        assert.ok(acked.length > 400, `most batches acknowledged (${acked.length} events)`);
        assert.equal(sink.stats.dropped, refused, "every event given up on is counted");

        const stored = await storedEvents(admin);
        const ids = stored.map((s) => s.e.connection);
        const missing = acked.filter((id) => !ids.includes(id));
        assert.deepEqual(missing, [], "acknowledged events are all stored");
        assert.equal(new Set(ids).size, ids.length, "no event stored twice, retries included");
        assert.ok(
          stored.every((s) => s.subject === "moat.events.web1"),
          "the host's own subject",
        );
      } finally {
        await sink.close();
      }
    },
  );

  await t.test(
    "a publish retried with the same id within the duplicate window is stored once",
    async () => {
      const jsm = await settled(() => admin.jetstreamManager());
      const { config } = await settled(() => jsm.streams.info(STREAM));
      assert.ok(
        config.duplicate_window / 1e6 >= RETRY_HORIZON_MS,
        `the duplicate window (${config.duplicate_window / 1e9} s) covers the sink's retry horizon (${RETRY_HORIZON_MS / 1000} s)`,
      );
      const nc = await hostConnect(cluster, "web2");
      try {
        const js = nc.jetstream();
        const data = JSON.stringify(moatEvent({ connection: "retried" }));
        const first = await settled(() =>
          js.publish("moat.events.web2", data, { msgID: "web2-retry-1" }),
        );
        await new Promise((r) => setTimeout(r, 1500)); // a retry, later
        const again = await settled(() =>
          js.publish("moat.events.web2", data, { msgID: "web2-retry-1" }),
        );
        assert.equal(again.duplicate, true);
        assert.equal(again.seq, first.seq, "the stream acknowledges the stored copy");
        const stored = (await storedEvents(admin)).filter((s) => s.e.connection === "retried");
        assert.equal(stored.length, 1);
      } finally {
        await nc.close();
      }
    },
  );

  await t.test(
    "a host's credentials cannot write another host's subject or policy key",
    async () => {
      const nc = await hostConnect(cluster, "web1");
      try {
        // long timeouts: what is checked is the permission error, not how fast it comes
        const hjs = nc.jetstream({ timeout: 15_000 });
        const kv = await settled(() => hjs.views.kv(BUCKET, { bindOnly: true }));
        await assert.rejects(
          () => kv.put("policy.web2", "version: 1\n"),
          /Permissions Violation for Publish to "\$KV\.moat-policy\.policy\.web2"/,
        );
        await assert.rejects(
          () => kv.put("policy.web1", "version: 1\n"),
          /Permissions Violation for Publish to "\$KV\.moat-policy\.policy\.web1"/,
          "nor its own policy",
        );
        await assert.rejects(() => kv.put("status.web2", "{}"), /Permissions Violation/);
        await assert.rejects(
          () => hjs.publish("moat.events.web2", "{}", { timeout: 15_000 }),
          /Permissions Violation for Publish to "moat\.events\.web2"/,
        );
        // what it may do: report its own status (once the bucket's stream has its leader again
        // after the node killed above: until then JetStream answers 503, no responders)
        assert.ok((await settled(() => kv.put("status.web1", "{}"))) > 0);
      } finally {
        await nc.close();
      }
    },
  );
});

test("moat fleet nkey writes a root-only seed, never over a file, and prints its public key", () => {
  const dir = mkdtempSync(join(tmpdir(), "moat-nkey-"));
  try {
    const file = join(dir, "web1.nk");
    const r = spawnSync(MOAT, ["fleet", "nkey", file], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const seed = readFileSync(file, "utf8").trim();
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(r.stdout.trim(), nkeys.fromSeed(new TextEncoder().encode(seed)).getPublicKey());
    assert.match(r.stdout, /^U[A-Z2-7]{55}\n$/);
    const again = spawnSync(MOAT, ["fleet", "nkey", file], { encoding: "utf8" });
    assert.equal(again.status, 1);
    assert.match(again.stderr, /EEXIST/);
    assert.equal(readFileSync(file, "utf8").trim(), seed, "the first seed stays");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a JetStream sink that never reaches a server drops and counts after its retry horizon, and closes promptly", async () => {
  const sink = new JetStreamSink({
    connection: { url: "nats://127.0.0.1:1", host: "web1", reconnectWaitMs: 50 },
    host: "web1",
    subject: SUBJECT,
    retryHorizonMs: 300,
  });
  await assert.rejects(
    () => sink.write([moatEvent({ connection: "a" }), moatEvent({ connection: "b" })]),
    /jetstream 127\.0\.0\.1:1 moat\.events\.web1: 2 of 2 events not acknowledged in time/,
  );
  assert.equal(sink.stats.dropped, 2);
  assert.equal(sink.stats.published, 0);
  // were close() to wait on the connection loop, the runner's per-test timeout would fail this
  await sink.close();
});
