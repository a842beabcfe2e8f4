// Webhooks against real local HTTP receivers: signature, type filter, retry with backoff, and
// dead receivers that cost bounded time and counted drops without holding up another webhook.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { createServer as createTcpServer, type AddressInfo, type Socket } from "node:net";
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WebhookSink } from "../../src/observe/publish/webhook.ts";
import { readSecretFile } from "../../src/observe/publish/secret.ts";
import { verify } from "../../src/observe/publish/signature.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";
import { closeOf, moatEvent } from "../helpers/moat-events.ts";

interface Delivery {
  headers: IncomingHttpHeaders;
  body: string;
  status: number;
}

/** Answers with `statuses` in turn, then 200; keeps every request. */
async function receiver(
  statuses: number[] = [],
): Promise<{ url: string; got: Delivery[]; close(): Promise<void> }> {
  const got: Delivery[] = [];
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString("utf8")));
    req.on("end", () => {
      const status = statuses.shift() ?? 200;
      got.push({ headers: req.headers, body, status });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    got,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

const KEY = Buffer.from("s3cret-key-for-tests");
const blocked = moatEvent({ type: "blocked", verdict: "blocked", connection: "b1" });
const detected = moatEvent({
  type: "detected",
  verdict: "detected",
  mode: "detect",
  connection: "d1",
});
const allowed = moatEvent({ connection: "a1" });
const fast = { backoffMs: 10, requestTimeoutMs: 1000 };

test("a webhook gets the types it asked for, signed with HMAC-SHA256 over timestamp and body", async () => {
  const r = await receiver();
  const hook = new WebhookSink({
    url: r.url,
    types: ["blocked", "detected"],
    secret: KEY,
    ...fast,
  });
  try {
    await hook.write([allowed]);
    assert.equal(r.got.length, 0, "nothing it wants, nothing sent");
    await hook.write([allowed, blocked, closeOf(allowed, 5), detected]);
    assert.equal(r.got.length, 1, "one POST per batch");
    const [d] = r.got;
    assert.ok(d);
    assert.equal(d.headers["content-type"], "application/json");
    const events = (JSON.parse(d.body) as { events: MoatEvent[] }).events;
    assert.deepEqual(events, [blocked, detected]);

    // what a receiver computes on its own
    const ts = Number(d.headers["x-moat-timestamp"]);
    assert.ok(Math.abs(ts - Date.now() / 1000) < 5, "a current unix timestamp");
    const mac = createHmac("sha256", KEY).update(`${ts}.${d.body}`).digest("hex");
    assert.equal(d.headers["x-moat-signature"], `sha256=${mac}`);
    assert.match(String(d.headers["x-moat-delivery"]), /^[0-9a-f-]{36}$/);

    const headers = { signature: String(d.headers["x-moat-signature"]), timestamp: String(ts) };
    assert.equal(verify(KEY, headers, d.body), true);
    assert.equal(
      verify(KEY, headers, d.body.replace("blocked", "allowed")),
      false,
      "a changed body fails",
    );
    assert.equal(verify(Buffer.from("other"), headers, d.body), false, "another key fails");
    assert.equal(verify(KEY, headers, d.body, ts + 600), false, "a replay 10 minutes later fails");
    assert.deepEqual(hook.stats, { delivered: 2, dropped: 0, requests: 1 });
  } finally {
    hook.close();
    await r.close();
  }
});

test("a receiver failing twice then answering 200 gets the batch once more, with the same delivery id", async () => {
  const r = await receiver([500, 503]);
  const hook = new WebhookSink({ url: r.url, secret: KEY, ...fast });
  try {
    await hook.write([blocked]);
    assert.deepEqual(
      r.got.map((d) => d.status),
      [500, 503, 200],
    );
    assert.equal(
      new Set(r.got.map((d) => d.headers["x-moat-delivery"])).size,
      1,
      "one delivery id",
    );
    assert.equal(r.got.filter((d) => d.status === 200).length, 1, "delivered once");
    for (const d of r.got) {
      const headers = {
        signature: String(d.headers["x-moat-signature"]),
        timestamp: String(d.headers["x-moat-timestamp"]),
      };
      assert.ok(verify(KEY, headers, d.body), "every attempt is signed");
    }
    assert.deepEqual(hook.stats, { delivered: 1, dropped: 0, requests: 3 });
  } finally {
    hook.close();
    await r.close();
  }
});

test("a 4xx answer is not retried: the batch is dropped and counted", async () => {
  const r = await receiver([400]);
  const hook = new WebhookSink({ url: r.url, ...fast });
  try {
    await assert.rejects(
      async () => hook.write([blocked, detected]),
      /webhook http:\/\/127\.0\.0\.1:\d+\/hook: dropped 2 events: HTTP 400/,
    );
    assert.equal(r.got.length, 1);
    assert.equal(r.got[0]?.headers["x-moat-signature"], undefined, "no key, no signature");
    assert.deepEqual(hook.stats, { delivered: 0, dropped: 2, requests: 1 });
  } finally {
    hook.close();
    await r.close();
  }
});

test("dead webhooks (refused, never answering) give bounded retries and counted drops; a live one is not held up", async () => {
  // refused: a port nothing listens on any more
  const gone = await receiver();
  await gone.close();
  // never answers: accepts the connection, reads, says nothing
  const sockets = new Set<Socket>();
  const silent = createTcpServer((s) => (sockets.add(s), s.resume()));
  await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
  const silentUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/hook`;
  const live = await receiver();

  const refused = new WebhookSink({ url: gone.url, maxAttempts: 3, backoffMs: 20 });
  const hanging = new WebhookSink({
    url: silentUrl,
    requestTimeoutMs: 300,
    maxTimeMs: 1000,
    backoffMs: 20,
  });
  const healthy = new WebhookSink({ url: live.url, ...fast });
  try {
    const dead = [
      assert.rejects(
        async () => refused.write([blocked]),
        /dropped 1 events: connect ECONNREFUSED/,
      ),
      assert.rejects(async () => hanging.write([blocked, detected]), /dropped 2 events:/),
    ];
    let deadSettled = false;
    void Promise.allSettled(dead).then(() => (deadSettled = true));
    const liveEvents = Array.from({ length: 5 }, (_, i) =>
      moatEvent({ type: "blocked", verdict: "blocked", connection: `l${i}` }),
    );
    for (const ev of liveEvents) await healthy.write([ev]);
    assert.equal(live.got.length, 5);
    assert.ok(!deadSettled, "the live webhook finished while the dead ones still retry");

    // they give up (maxTimeMs); were they to retry for ever, the runner's timeout would fail this
    await Promise.all(dead);
    assert.deepEqual(refused.stats, { delivered: 0, dropped: 1, requests: 3 });
    assert.equal(hanging.stats.dropped, 2);
    assert.ok(
      hanging.stats.requests >= 2 && hanging.stats.requests <= 4,
      `${hanging.stats.requests} requests in 1 s`,
    );
  } finally {
    for (const h of [refused, hanging, healthy]) h.close();
    for (const s of sockets) s.destroy();
    silent.close();
    await live.close();
  }
});

test("close() stops a webhook's retries at once and counts the batch as dropped", async () => {
  const r = await receiver([503, 503, 503, 503]);
  const hook = new WebhookSink({ url: r.url, backoffMs: 5000 });
  try {
    const pending = assert.rejects(async () => hook.write([blocked]), /dropped 1 events: closed/);
    while (r.got.length === 0) await new Promise((res) => setTimeout(res, 5));
    hook.close();
    // rejected with "closed" (not after its 5 s backoff and more 503s), and no retry went out
    await pending;
    assert.equal(hook.stats.dropped, 1);
    assert.equal(r.got.length, 1);
  } finally {
    hook.close();
    await r.close();
  }
});

test("the HMAC key file must be private: symlinks and files others can read are refused", () => {
  const dir = mkdtempSync(join(tmpdir(), "moat-secret-"));
  try {
    const key = join(dir, "key");
    writeFileSync(key, "k3y\n", { mode: 0o600 });
    assert.deepEqual(readSecretFile(key), Buffer.from("k3y"));
    const link = join(dir, "link");
    symlinkSync(key, link);
    assert.throws(() => readSecretFile(link), /secret file .*link is a symlink; refusing it/);
    chmodSync(key, 0o644);
    assert.throws(
      () => readSecretFile(key),
      /readable or writable by others \(mode 644\); chmod 600 it/,
    );
    writeFileSync(join(dir, "empty"), "\n", { mode: 0o600 });
    assert.throws(() => readSecretFile(join(dir, "empty")), /is empty/);
    assert.throws(() => readSecretFile(join(dir, "absent")), /cannot read secret file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a redirect is a final answer: not followed, not retried", async () => {
  const target = await receiver();
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(302, { location: `${target.url}/elsewhere` }).end());
  });
  let requests = 0;
  server.on("request", () => requests++);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  const hook = new WebhookSink({ url: `http://127.0.0.1:${port}/hook`, ...fast });
  try {
    await assert.rejects(
      async () => hook.write([blocked]),
      /webhook http:\/\/127\.0\.0\.1:\d+\/hook: dropped 1 events: HTTP 302 \(redirects are not followed\)$/,
    );
    assert.equal(requests, 1, "one request: a 3xx is final");
    assert.equal(target.got.length, 0, "the redirect's target is never contacted");
    assert.deepEqual(hook.stats, { delivered: 0, dropped: 1, requests: 1 });
  } finally {
    hook.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    await target.close();
  }
});

test("a webhook URL with credentials is refused, and the refusal does not repeat them", () => {
  assert.throws(
    () => new WebhookSink({ url: "http://moat:S3cretPW@127.0.0.1:9/hook?token=QTOKEN", ...fast }),
    (e: Error) =>
      e.message.startsWith("webhook http://127.0.0.1:9/hook: a URL with a user name or password") &&
      !/S3cretPW|QTOKEN|moat:/.test(e.message),
  );
});
