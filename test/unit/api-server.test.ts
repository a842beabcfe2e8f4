// The API over real HTTP: the root-only unix socket and a TCP listener with bearer tokens
// (401s counted), the OpenAPI document, policy validation with positions, live SSE with filters,
// the history query, and Prometheus text.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { request } from "node:http";
import { join } from "node:path";
import { startApi } from "../../src/api/server.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { HistoryStore } from "../../src/observe/history/store.ts";
import { historySink } from "../../src/observe/history/sink.ts";
import { validatePolicyText } from "../../src/daemon/policy-text.ts";
import { mappedAddress } from "../../src/datapath/address.ts";
import { fakeEvent, fakeSnapshot } from "../helpers/events.ts";
import { testControl } from "../helpers/api-control.ts";
import { http, sse } from "../helpers/api-client.ts";

const TOKEN = "s3cret-token-for-tests-0123456789";

async function setUp(t: { after: (fn: () => Promise<void> | void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), "moat-api-"));
  const tokenFile = join(dir, "token");
  writeFileSync(tokenFile, `prometheus ${TOKEN}\n`, { mode: 0o600 });
  const pipeline = new EventPipeline();
  const store = new HistoryStore(join(dir, "history.db"));
  pipeline.add(historySink(store, () => {}));
  const applied: string[] = [];
  const control = testControl(pipeline, {
    // as the daemon's redirect maps do: the peer's address is parsed into a map key
    original: (peer) => (mappedAddress(peer.ip), null),
    policy: () => ({
      path: "/p.yaml",
      text: "version: 1\n",
      hash: "x",
      generation: 3,
      mode: "prevent",
    }),
    validate: (text) => validatePolicyText(text, "/p.yaml"),
    apply: async (text, who) => {
      const v = await validatePolicyText(text, "/p.yaml");
      if (v.ok) applied.push(who);
      return { ok: v.ok, generation: v.ok ? 4 : 3, errors: v.errors };
    },
    setMode: () => ({ ok: true, generation: 4, errors: [] }),
    queryHistory: (q) => store.query(q),
  });
  const socketPath = join(dir, "run", "api.sock");
  const api = await startApi(control, [
    { listen: `unix:${socketPath}` },
    { listen: "127.0.0.1:0", tokenFile },
  ]);
  t.after(async () => {
    await api.close();
    await pipeline.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const port = Number(api.addresses[1]?.split(":").at(-1));
  return { dir, api, pipeline, socketPath, port, applied, tokenFile };
}

test("the unix socket is root-only and needs no token; TCP needs one and counts refusals", async (t) => {
  const { api, socketPath, port, applied } = await setUp(t);
  assert.equal(statSync(socketPath).mode & 0o777, 0o600);
  assert.equal(statSync(join(socketPath, "..")).mode & 0o777, 0o700);

  const status = await http({ socketPath }, "GET", "/v1/status");
  assert.equal(status.status, 200);
  const body = JSON.parse(status.body) as { mode: string; counters: { drop: { packets: number } } };
  assert.equal(body.mode, "prevent");
  assert.equal(body.counters.drop.packets, 7);

  const missing = await http({ port }, "GET", "/v1/status");
  assert.equal(missing.status, 401);
  assert.equal(missing.headers["www-authenticate"], 'Bearer realm="moat"');
  assert.deepEqual(JSON.parse(missing.body), {
    error: { code: "EUNAUTHORIZED", message: "a valid bearer token is required" },
  });
  const wrong = await http({ port, token: `${TOKEN}x` }, "GET", "/v1/status");
  assert.equal(wrong.status, 401);
  assert.equal(api.counters.unauthorized, 2);
  assert.equal((await http({ port, token: TOKEN }, "GET", "/v1/status")).status, 200);
  assert.equal(api.counters.unauthorized, 2);

  const metrics = await http({ port, token: TOKEN }, "GET", "/metrics");
  assert.match(metrics.body, /^moat_api_unauthorized_requests_total 2$/m);
  assert.match(metrics.body, /^moat_datapath_packets_total\{counter="drop"\} 7$/m);
  assert.match(metrics.body, /^moat_rule_connections_total\{rule="ssh"\} 2$/m);

  const ok = await http({ port, token: TOKEN }, "PUT", "/v1/policy", "version: 1\nmode: prevent\n");
  assert.equal(ok.status, 200);
  const viaSocket = await http({ socketPath }, "PUT", "/v1/policy", "version: 1\nmode: prevent\n");
  assert.equal(viaSocket.status, 200);
  assert.deepEqual(applied, ["token prometheus", `unix uid 0 pid ${process.pid}`]);
});

test("a token file readable by others is refused at start", async (t) => {
  const { dir, tokenFile } = await setUp(t);
  chmodSync(tokenFile, 0o644);
  const control = testControl(new EventPipeline());
  await assert.rejects(startApi(control, [{ listen: "127.0.0.1:0", tokenFile }]), {
    code: "EAPICONFIG",
    message: `API token file ${tokenFile}: is readable by group or others (mode 0644); chmod 600 it`,
  });
  assert.ok(dir);
});

test("/openapi.json is an OpenAPI 3 document listing every endpoint", async (t) => {
  const { port } = await setUp(t);
  const doc = await http({ port }, "GET", "/openapi.json");
  assert.equal(doc.status, 200);
  const parsed = JSON.parse(doc.body) as { openapi: string; paths: Record<string, unknown> };
  assert.match(parsed.openapi, /^3\./);
  for (const path of [
    "/v1/status",
    "/v1/policy",
    "/v1/policy/validate",
    "/v1/mode",
    "/v1/events",
    "/v1/events/stream",
    "/v1/rules",
    "/metrics",
  ])
    assert.ok(path in parsed.paths, path);
});

test("/v1/rules lists every rule in policy order, or with top=N the N busiest", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-api-rules-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pipeline = new EventPipeline();
  const rule = (name: string, connections: bigint, packets: bigint) => ({
    name,
    connections,
    packets,
    bytes: packets * 100n,
  });
  const rules = [
    rule("ssh", 2n, 10n),
    rule("web", 90n, 900n),
    rule("dns", 90n, 300n),
    rule("idle", 0n, 0n),
    rule("defaults.ingress", 7n, 7n),
    rule("defaults.egress", 0n, 0n),
  ];
  const control = testControl(pipeline, { snapshot: () => ({ ...fakeSnapshot(pipeline), rules }) });
  const socketPath = join(dir, "api.sock");
  const api = await startApi(control, [{ listen: `unix:${socketPath}` }]);
  t.after(async () => {
    await api.close();
    await pipeline.close();
  });
  const get = async (path: string) => {
    const r = await http({ socketPath }, "GET", path);
    return { status: r.status, body: JSON.parse(r.body) as Record<string, unknown> };
  };
  const names = (body: Record<string, unknown>) =>
    (body.rules as { name: string }[]).map((r) => r.name);
  const all = await get("/v1/rules");
  assert.equal(all.status, 200);
  assert.equal(all.body.total, 6);
  assert.deepEqual(
    names(all.body),
    rules.map((r) => r.name),
  );
  const top = await get("/v1/rules?top=3");
  assert.equal(top.body.total, 6);
  assert.deepEqual(names(top.body), ["web", "dns", "defaults.ingress"]);
  assert.deepEqual(names((await get("/v1/rules?top=100")).body), [
    "web",
    "dns",
    "defaults.ingress",
    "ssh",
    "idle",
    "defaults.egress",
  ]);
  for (const bad of ["0", "-1", "x", "10001", "1.5"]) {
    const r = await get(`/v1/rules?top=${bad}`);
    assert.equal(r.status, 400, bad);
    assert.match(JSON.stringify(r.body), /top must be a count from 1 to 10000/);
  }
});

test("validate reports FILE:LINE:COL errors; apply of a bad policy is a 422 with them", async (t) => {
  const { socketPath } = await setUp(t);
  const bad = "version: 1\nrules:\n  - name: x\n    direction: sideways\n    action: allow\n";
  const v = await http({ socketPath }, "POST", "/v1/policy/validate", bad);
  assert.equal(v.status, 200);
  const result = JSON.parse(v.body) as { ok: boolean; errors: string[] };
  assert.equal(result.ok, false);
  assert.match(result.errors[0] ?? "", /^\/p\.yaml:4:16 rules\[0\]\.direction: /);
  const applied = await http({ socketPath }, "PUT", "/v1/policy", bad);
  assert.equal(applied.status, 422);
  const err = JSON.parse(applied.body) as { error: { code: string; details: string[] } };
  assert.equal(err.error.code, "EPOLICY");
  assert.deepEqual(err.error.details, result.errors);
});

test("SSE subscribers get live events matching their filter; history pages them", async (t) => {
  const { pipeline, socketPath, port } = await setUp(t);
  const blockedFromNet = sse(
    { socketPath },
    "/v1/events/stream?type=blocked&remote=198.51.100.0/24",
  );
  const all = sse({ port, token: TOKEN }, "/v1/events/stream");
  t.after(() => {
    blockedFromNet.close();
    all.close();
  });
  assert.equal(await blockedFromNet.opened, 200);
  assert.equal(await all.opened, 200);
  pipeline.push(
    fakeEvent({ type: "allowed", verdict: "allowed", remote: { ip: "198.51.100.7", port: 1 } }),
  );
  pipeline.push(fakeEvent({ remote: { ip: "198.51.100.8", port: 2 } }));
  pipeline.push(fakeEvent({ remote: { ip: "192.0.2.1", port: 3 } }));
  await all.waitFor(3);
  await blockedFromNet.waitFor(1);
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(
    blockedFromNet.events.map((e) => (e as { remote: { ip: string } }).remote.ip),
    ["198.51.100.8"],
  );

  const page = await http({ socketPath }, "GET", "/v1/events?remote=198.51.100.0/24&limit=1");
  const p = JSON.parse(page.body) as { events: { remote: { ip: string } }[]; next: number | null };
  assert.deepEqual(
    p.events.map((e) => e.remote.ip),
    ["198.51.100.8"],
  );
  assert.ok(p.next);
  const next = await http(
    { socketPath },
    "GET",
    `/v1/events?remote=198.51.100.0/24&before=${p.next}`,
  );
  assert.deepEqual(
    (JSON.parse(next.body) as typeof p).events.map((e) => e.remote.ip),
    ["198.51.100.7"],
  );
  // a name is a filter too (remote.names): a bad range is not
  const bad = await http({ socketPath }, "GET", "/v1/events/stream?remote=10.0.0.0/99");
  assert.equal(bad.status, 400);
});

test("a stalled SSE subscriber loses events in its own queue, counted; history gets all", async (t) => {
  const { pipeline, socketPath } = await setUp(t);
  const stalled = sse({ socketPath }, "/v1/events/stream");
  t.after(() => stalled.close());
  assert.equal(await stalled.opened, 200);
  stalled.pause();
  const total = 60_000;
  for (let i = 0; i < total; i++) {
    pipeline.push(fakeEvent({ connection: i.toString(16) }));
    if (i % 5000 === 0) await new Promise((r) => setImmediate(r)); // let the sinks run
  }
  await new Promise((r) => setTimeout(r, 200));
  const sinks = new Map(pipeline.stats().map((s) => [s.name, s]));
  const history = sinks.get("history");
  const subscriber = sinks.get("api-subscriber");
  assert.equal(history?.delivered, total, "history got every event");
  assert.equal(history?.dropped, 0);
  assert.ok(subscriber && subscriber.dropped > 0, "the stalled subscriber dropped events");
  assert.equal(
    subscriber.delivered + subscriber.dropped + subscriber.queued,
    total,
    "every event is delivered, dropped or queued: none unaccounted",
  );
  const status = JSON.parse((await http({ socketPath }, "GET", "/v1/status")).body) as {
    sinks: { name: string; dropped: number }[];
  };
  assert.ok(
    (status.sinks.find((s) => s.name === "api-subscriber")?.dropped ?? 0) >= subscriber.dropped,
  );
});

test("a WebSocket client (Node's own) gets filtered live events; without a token it is refused", async (t) => {
  const { api, pipeline, port } = await setUp(t);
  const url = `ws://127.0.0.1:${port}/v1/events/stream?type=detected`;
  const handshake = await new Promise<number>((resolve, reject) => {
    const req = request({
      host: "127.0.0.1",
      port,
      path: "/v1/events/stream",
      headers: {
        connection: "Upgrade",
        upgrade: "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        authorization: "Bearer wrong-token-wrong-token",
      },
    });
    req.on("response", (res) => resolve(res.statusCode ?? 0));
    req.on("upgrade", () => resolve(101));
    req.on("error", reject);
    req.end();
  });
  assert.equal(handshake, 401);
  assert.equal(api.counters.unauthorized, 1);
  const refused = new WebSocket(url);
  const refusal = await new Promise<string>((resolve) => {
    refused.onerror = () => resolve("error");
    refused.onopen = () => resolve("open");
  });
  assert.equal(refusal, "error", "Node's WebSocket without a token does not open");

  // undici's WebSocket takes request headers as a non-standard option
  const init = { headers: { authorization: `Bearer ${TOKEN}` } } as unknown as string[];
  const ws = new WebSocket(url, init);
  t.after(() => ws.close());
  const got: { type: string; connection: string }[] = [];
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error("the WebSocket did not open"));
  });
  const arrived = new Promise<void>((resolve) => {
    ws.onmessage = (m: MessageEvent) => {
      got.push(JSON.parse(String(m.data)) as (typeof got)[number]);
      if (got.length === 2) resolve();
    };
  });
  await new Promise((r) => setTimeout(r, 50)); // the server registers the subscriber on upgrade
  pipeline.push(fakeEvent({ type: "detected", verdict: "detected", connection: "d1" }));
  pipeline.push(fakeEvent({ type: "blocked", connection: "b1" }));
  pipeline.push(fakeEvent({ type: "detected", verdict: "detected", connection: "d2" }));
  await arrived;
  assert.deepEqual(
    got.map((e) => `${e.type} ${e.connection}`),
    ["detected d1", "detected d2"],
  );
});

test("a peer that is not an IP address is a 400 that says so, not a 500", async (t) => {
  const { socketPath } = await setUp(t);
  for (const peer of [
    "../../x:1",
    "example.com:80",
    "1.2.3.4.5:1",
    "[::1:80",
    "1.2.3.4:99999",
    "[1.2.3.4]x:1",
  ]) {
    const reply = await http(
      { socketPath },
      "GET",
      `/v1/redirects/original?peer=${encodeURIComponent(peer)}`,
    );
    assert.equal(reply.status, 400, peer);
    const body = JSON.parse(reply.body) as { error: { code: string; message: string } };
    assert.equal(body.error.code, "EBADPEER");
    assert.match(body.error.message, /peer=IP:PORT/);
  }
  for (const peer of ["[::1]:80", "::ffff:10.0.0.1:80", "10.0.0.1:80"]) {
    const unknown = await http({ socketPath }, "GET", `/v1/redirects/original?peer=${peer}`);
    assert.equal(unknown.status, 404, peer);
  }
});

test("a time no date can hold is a 400 that says so, not a 500", async (t) => {
  const { socketPath } = await setUp(t);
  // /v1/stats reads its times the same way
  for (const since of ["100000000000000000000", "9".repeat(400)]) {
    const reply = await http({ socketPath }, "GET", `/v1/events?since=${since}`);
    assert.equal(reply.status, 400, `since=${since.slice(0, 24)}`);
    assert.match(reply.body, /EBADTIME/);
  }
});
