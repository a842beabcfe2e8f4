// Least privilege on the API: each token carries scopes and each endpoint needs one (a
// metrics-only token reads /metrics and changes nothing); old-format token lines keep every
// scope; every change and every refused change is audited with its principal: the token's name
// on TCP, the peer's uid and pid (SO_PEERCRED) on the unix socket.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { request } from "node:http";
import { join } from "node:path";
import { startApi } from "../../src/api/server.ts";
import { readTokenFile } from "../../src/api/auth.ts";
import { ROUTES } from "../../src/api/routes.ts";
import { OPENAPI } from "../../src/api/openapi.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { validatePolicyText } from "../../src/daemon/policy-text.ts";
import { testControl } from "../helpers/api-control.ts";
import { http } from "../helpers/api-client.ts";

const OPS = "ops-token-0123456789abcdef";
const PROM = "prometheus-token-0123456789";
const OLD = "old-format-token-0123456789";
const PROXY = "proxy-token-0123456789abcd";
const VIEWER = "viewer-token-0123456789abc";
const SSHD = "sshd-token-0123456789abcdef";

async function setUp(t: { after: (fn: () => Promise<void> | void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), "moat-scopes-"));
  const tokenFile = join(dir, "tokens");
  writeFileSync(
    tokenFile,
    [
      "# name scopes token",
      `ops read,events,policy,mode ${OPS}`,
      `prometheus metrics ${PROM}`,
      `proxy redirects ${PROXY}`,
      `viewer read,events ${VIEWER}`,
      `sshd ssh ${SSHD}`,
      `legacy ${OLD}`,
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  const pipeline = new EventPipeline();
  const changes: string[] = [];
  const audit: string[] = [];
  const control = testControl(pipeline, {
    policy: () => ({
      path: "/p.yaml",
      text: "version: 1\n",
      hash: "x",
      generation: 3,
      mode: "prevent",
    }),
    validate: (text) => validatePolicyText(text, "/p.yaml"),
    apply: (_text, who) => {
      changes.push(`policy by ${who}`);
      return { ok: true, generation: 4, errors: [] };
    },
    setMode: (mode, who) => {
      changes.push(`mode ${mode} by ${who}`);
      return { ok: true, generation: 4, errors: [] };
    },
    decisions: () => ({ path: "/d.json", decisions: [] }),
    addDecision: (body, who) => {
      changes.push(`decision ${body.action} ${body.remote} by ${who}`);
      return Promise.resolve({
        ok: true,
        generation: 5,
        decision: { ...body, id: "d1", created: new Date().toISOString(), by: who },
      });
    },
    removeDecision: (id, who) => {
      changes.push(`remove ${id} by ${who}`);
      return Promise.resolve({ ok: false, errors: [`no decision ${id}`] });
    },
    review: () => ({ entries: [], overflow: 0, max: 1000 }),
    sshKeys: (login) => {
      changes.push(`ssh login ${login.user} from ${login.client.ip}`);
      return { generation: 3, keys: [], verdicts: [] };
    },
    answerReview: (answer, who) => {
      changes.push(`review ${answer.id} by ${who}`);
      return Promise.resolve({ ok: false, errors: [`no review queue entry ${answer.id}`] });
    },

    audit: (line) => audit.push(line),
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
  return { dir, socketPath, port, changes, audit, tokenFile };
}

test("a metrics-only token reads /metrics and nothing else, and changes nothing", async (t) => {
  const { port, changes, audit } = await setUp(t);
  const as = { port, token: PROM };
  assert.equal((await http(as, "GET", "/metrics")).status, 200);
  for (const [method, path, body] of [
    ["GET", "/v1/status"],
    ["GET", "/v1/rules"],
    ["GET", "/v1/policy"],
    ["GET", "/v1/events"],
    ["GET", "/v1/events/stream"],
    ["GET", "/v1/redirects/original?peer=10.0.0.1:1"],
    ["POST", "/v1/policy/validate", "version: 1\n"],
    ["PUT", "/v1/policy", "version: 1\n"],
    ["PUT", "/v1/mode", '{"mode":"detect"}'],
  ] as const) {
    const reply = await http(as, method, path, body);
    assert.equal(reply.status, 403, `${method} ${path}`);
    const err = JSON.parse(reply.body) as { error: { code: string; message: string } };
    assert.equal(err.error.code, "EFORBIDDEN");
    assert.match(
      err.error.message,
      /^token 'prometheus' lacks the scope '[a-z]+' this endpoint needs$/,
    );
  }
  assert.deepEqual(changes, [], "nothing changed");
  // the refused changes are audited with who tried them
  assert.deepEqual(audit, [
    "API REFUSED PUT /v1/policy by token prometheus: lacks scope 'policy'",
    "API REFUSED PUT /v1/mode by token prometheus: lacks scope 'mode'",
  ]);
});

test("local decisions and review answers need the policy scope; reading them does not", async (t) => {
  const { port, changes, audit } = await setUp(t);
  const viewer = { port, token: VIEWER };
  assert.equal((await http(viewer, "GET", "/v1/decisions")).status, 200);
  assert.equal((await http(viewer, "GET", "/v1/review")).status, 200);
  const decision = JSON.stringify({
    action: "allow",
    direction: "egress",
    remote: "192.0.2.1",
    lifetime: "1h",
  });
  const answer = JSON.stringify({ id: "abc", action: "allow", lifetime: "1h" });
  for (const [method, path, body] of [
    ["POST", "/v1/decisions", decision],
    ["DELETE", "/v1/decisions?id=d1", undefined],
    ["POST", "/v1/review/decide", answer],
  ] as const)
    assert.equal((await http(viewer, method, path, body)).status, 403, `${method} ${path}`);
  assert.deepEqual(changes, [], "nothing changed");
  assert.deepEqual(audit, [
    "API REFUSED POST /v1/decisions by token viewer: lacks scope 'policy'",
    "API REFUSED DELETE /v1/decisions by token viewer: lacks scope 'policy'",
    "API REFUSED POST /v1/review/decide by token viewer: lacks scope 'policy'",
  ]);
  const ops = { port, token: OPS };
  const made = await http(ops, "POST", "/v1/decisions", decision);
  assert.equal(made.status, 200, made.body);
  assert.equal((await http(ops, "DELETE", "/v1/decisions?id=d9")).status, 404);
  assert.equal((await http(ops, "POST", "/v1/review/decide", answer)).status, 404);
  assert.equal(
    (await http(ops, "POST", "/v1/review/decide", '{"id":"abc","action":"maybe"}')).status,
    400,
  );
  assert.deepEqual(changes, [
    "decision allow 192.0.2.1 by token ops",
    "remove d9 by token ops",
    "review abc by token ops",
  ]);
});

test("judging an ssh login needs the ssh scope: each judgement is an event, so read may not", async (t) => {
  const { port, changes } = await setUp(t);
  const login = "/v1/ssh/authorized-keys?user=root&client=203.0.113.9";
  for (const token of [VIEWER, OPS]) {
    const reply = await http({ port, token }, "GET", login);
    assert.equal(reply.status, 403);
    assert.match(reply.body, /lacks the scope 'ssh' this endpoint needs/);
  }
  assert.deepEqual(changes, [], "no login was judged, so no event was made");
  const sshd = await http({ port, token: SSHD }, "GET", login);
  assert.equal(sshd.status, 200);
  assert.deepEqual(changes, ["ssh login root from 203.0.113.9"]);
  // the sshd token reads nothing else
  assert.equal((await http({ port, token: SSHD }, "GET", "/v1/status")).status, 403);
});

test("a WebSocket subscription needs the events scope too", async (t) => {
  const { port } = await setUp(t);
  const status = (token: string) =>
    new Promise<number>((resolve, reject) => {
      const req = request({
        host: "127.0.0.1",
        port,
        path: "/v1/events/stream",
        headers: {
          connection: "Upgrade",
          upgrade: "websocket",
          "sec-websocket-version": "13",
          "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
          authorization: `Bearer ${token}`,
        },
      });
      req.on("response", (res) => resolve(res.statusCode ?? 0));
      req.on("upgrade", (_res, socket) => {
        socket.destroy();
        resolve(101);
      });
      req.on("error", reject);
      req.end();
    });
  assert.equal(await status(PROM), 403);
  assert.equal(await status(OPS), 101);
});

test("scoped tokens do what their scopes allow; an old-format line keeps every scope", async (t) => {
  const { port, changes } = await setUp(t);
  assert.equal((await http({ port, token: OPS }, "GET", "/v1/status")).status, 200);
  assert.equal((await http({ port, token: OPS }, "GET", "/metrics")).status, 403);
  assert.equal(
    (await http({ port, token: PROXY }, "GET", "/v1/redirects/original?peer=10.0.0.1:1")).status,
    404,
  );
  assert.equal((await http({ port, token: PROXY }, "GET", "/v1/status")).status, 403);
  assert.equal(
    (await http({ port, token: OPS }, "PUT", "/v1/mode", '{"mode":"detect"}')).status,
    200,
  );
  assert.equal((await http({ port, token: OLD }, "PUT", "/v1/policy", "version: 1\n")).status, 200);
  assert.equal((await http({ port, token: OLD }, "GET", "/metrics")).status, 200);
  assert.deepEqual(changes, ["mode detect by token ops", "policy by token legacy"]);
});

test("the token file: scopes are checked, with the line that is wrong", async (t) => {
  const { tokenFile } = await setUp(t);
  const tokens = readTokenFile(tokenFile);
  assert.deepEqual(
    tokens.map((k) => `${k.name}: ${[...k.scopes].sort().join(",")}`),
    [
      "ops: events,mode,policy,read",
      "prometheus: metrics",
      "proxy: redirects",
      "viewer: events,read",
      "sshd: ssh",
      "legacy: events,metrics,mode,policy,read,redirects,ssh",
    ],
  );
  writeFileSync(tokenFile, `ops read,root ${OPS}\n`, { mode: 0o600 });
  assert.throws(() => readTokenFile(tokenFile), {
    code: "EAPICONFIG",
    message: `API token file ${tokenFile}:1: unknown scope 'root' (scopes: read, events, metrics, policy, mode, redirects, ssh, all)`,
  });
  writeFileSync(tokenFile, `a b c ${OPS}\n`, { mode: 0o600 });
  assert.throws(() => readTokenFile(tokenFile), {
    message: `API token file ${tokenFile}:1: a line is "TOKEN", "NAME TOKEN" or "NAME SCOPES TOKEN"`,
  });
});

test("every endpoint declares its scope, and the OpenAPI document says which", () => {
  const paths = OPENAPI.paths as Record<string, Record<string, { "x-moat-scope"?: string | null }>>;
  for (const [path, methods] of Object.entries(ROUTES))
    for (const [method, route] of Object.entries(methods)) {
      assert.ok(route, `${method} ${path}`);
      const doc = paths[path]?.[method.toLowerCase()];
      assert.ok(doc, `${method} ${path} is in the OpenAPI document`);
      assert.equal(doc["x-moat-scope"], route.scope, `${method} ${path}`);
    }
});

test("changes over the unix socket are made by the peer's uid and pid (SO_PEERCRED)", async (t) => {
  const { socketPath, changes } = await setUp(t);
  const curl = spawn("curl", [
    "-sS",
    "--unix-socket",
    socketPath,
    "-X",
    "PUT",
    "-d",
    '{"mode":"prevent"}',
    "http://moat/v1/mode",
  ]);
  const code = await new Promise<number | null>((resolve) => curl.once("exit", resolve));
  assert.equal(code, 0);
  assert.deepEqual(changes, [`mode prevent by unix uid 0 pid ${curl.pid}`]);
});
