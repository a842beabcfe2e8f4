// POST /v1/decisions over the API's unix socket, with the daemon's decision store and decisions
// layer (each decision compiled into the policy before it is kept): a key a decision does not have
// (a misspelt `ports`, or `expires`, `boot`, `id`, `created` that moat sets itself) is refused
// with its name, and what is stored is built from the decision's own fields only. A decisions
// file written before is read as it was; a stored entry with a key no decision has keeps its
// fields and loses the key, said in a warning.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePolicy, textOnlyHost } from "../../src/config/index.ts";
import { startApi } from "../../src/api/server.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { acceptPolicyText } from "../../src/policy/index.ts";
import { DecisionStore } from "../../src/daemon/decision-store.ts";
import { LocalDecisions } from "../../src/daemon/local-decisions.ts";
import { testControl } from "../helpers/api-control.ts";
import { http } from "../helpers/api-client.ts";

const POLICY =
  "version: 1\nmode: prevent\nattach: { cgroup: / }\ndefaults: { ingress: block, egress: allow }\n";

async function setUp(t: { after: (fn: () => Promise<void> | void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), "moat-decision-keys-"));
  const path = join(dir, "state", "decisions.json");
  const logs: string[] = [];
  const store = new DecisionStore({ path, log: (l) => logs.push(l) });
  const model = parsePolicy(POLICY, "p.yaml");
  const decisions = new LocalDecisions({
    store,
    // the policy compiled again with the store's decisions, as the daemon's install does
    install: (why) => {
      const accepted = acceptPolicyText(POLICY, "p.yaml", {
        host: textOnlyHost,
        decisions: store.list(),
      });
      const errors = accepted.diagnostics.map((d) => `${d.message} (${why})`);
      return Promise.resolve({ ok: accepted.policy !== undefined, generation: 2, errors });
    },
    model: () => model,
    cut: () => 0,
    audit: () => {},
    log: () => {},
  });
  const pipeline = new EventPipeline();
  const control = testControl(pipeline, {
    decisions: () => decisions.view(),
    addDecision: (body, who) => decisions.add(body, who),
    removeDecision: (id, who) => decisions.remove(id, who),
    review: () => decisions.review(),
    answerReview: (answer, who) => decisions.answer(answer, who),
  });
  const socketPath = join(dir, "api.sock");
  const api = await startApi(control, [{ listen: `unix:${socketPath}` }]);
  t.after(async () => {
    decisions.close();
    await api.close();
    await pipeline.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const post = async (body: string) => {
    const r = await http({ socketPath }, "POST", "/v1/decisions", body);
    return { status: r.status, body: JSON.parse(r.body) as Record<string, unknown> };
  };
  const stored = async () => {
    const r = await http({ socketPath }, "GET", "/v1/decisions");
    return (JSON.parse(r.body) as { decisions: Record<string, unknown>[] }).decisions;
  };
  return { post, stored, path, logs };
}

const ALLOW = '"action":"allow","direction":"ingress","remote":"10.231.206.1","protocol":"tcp"';

test("a decision request with a key a decision does not have is refused, naming the key", async (t) => {
  const { post, stored } = await setUp(t);
  const refusals: [string, string][] = [
    [`{${ALLOW},"ports":[8080],"lifetime":"1h"}`, "ports"],
    [`{${ALLOW},"port":8080,"lifetime":"forever","expires":"2001-01-01T00:00:00Z"}`, "expires"],
    [`{${ALLOW},"port":8080,"lifetime":"forever","boot":"b"}`, "boot"],
    [`{${ALLOW},"port":8080,"lifetime":"1h","id":"mine"}`, "id"],
    [`{${ALLOW},"port":8080,"lifetime":"1h","created":"2001-01-01T00:00:00Z"}`, "created"],
    [`{${ALLOW},"port":8080,"lifetime":"1h","__proto__":{"port":22}}`, "__proto__"],
    [`{${ALLOW},"port":8080,"lifetime":"1h","constructor":"x"}`, "constructor"],
    [`{${ALLOW},"port":8080,"lifetime":"1h","process":{"path":"/usr/bin/x","pid":3}}`, "pid"],
  ];
  for (const [body, key] of refusals) {
    const r = await post(body);
    assert.equal(r.status, 422, body);
    const error = r.body.error as { code: string; details: string[] };
    assert.equal(error.code, "EDECISION", body);
    const errors = error.details.join("; ");
    assert.match(errors, new RegExp(`\\b${key}\\b`), `${body}: ${errors}`);
  }
  assert.deepEqual(await stored(), []);
});

test("a stored decision holds the request's fields and what moat computes, nothing else", async (t) => {
  const { post, stored } = await setUp(t);
  const r = await post(`{${ALLOW},"port":8080,"lifetime":"1h"}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const [d] = await stored();
  assert.deepEqual(Object.keys(d ?? {}).sort(), [
    "action",
    "by",
    "created",
    "direction",
    "expires",
    "id",
    "lifetime",
    "port",
    "protocol",
    "remote",
  ]);
  assert.equal(d?.port, 8080);
  assert.equal(
    Date.parse(d?.expires as string) - Date.parse(d?.created as string),
    3600_000,
    "expires is an hour after created",
  );
});

test("a decisions file written before is read as it was; a key no decision has is dropped, said", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-decision-file-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "decisions.json");
  const boot = "3f0c5b1e-boot";
  const kept = [
    {
      id: "a1",
      action: "allow",
      direction: "egress",
      remote: "api.example.org",
      protocol: "tcp",
      port: 443,
      process: { path: "/usr/bin/curl" },
      lifetime: "reboot",
      created: "2026-12-01T10:00:00.000Z",
      boot,
      by: "unix uid 0 pid 7",
      review: "r1",
    },
    {
      id: "b2",
      action: "block",
      direction: "ingress",
      remote: "192.0.2.9",
      lifetime: "2h",
      created: "2026-12-01T10:00:00.000Z",
      expires: "2126-12-01T12:00:00.000Z",
      by: "unix uid 0 pid 7",
    },
  ];
  const widened = {
    id: "c3",
    action: "block",
    direction: "ingress",
    remote: "192.0.2.10",
    protocol: "tcp",
    ports: [8080],
    lifetime: "forever",
    created: "2026-12-01T10:00:00.000Z",
    by: "unix uid 0 pid 7",
  };
  // a process key no decision has goes; the user stays (without it the decision would hold for
  // every user)
  const userPid = {
    id: "d4",
    action: "allow",
    direction: "egress",
    remote: "192.0.2.11",
    process: { path: "/usr/bin/curl", user: 1000, pid: 3 },
    lifetime: "forever",
    created: "2026-12-01T10:00:00.000Z",
    by: "unix uid 0 pid 7",
  };
  const mode = { mode: "detect", by: "unix uid 0 pid 7", created: "2026-12-01T10:00:00.000Z" };
  writeFileSync(
    path,
    JSON.stringify({ version: 1, decisions: [...kept, widened, userPid], mode }),
    { mode: 0o600 },
  );
  const logs: string[] = [];
  const store = new DecisionStore({ path, boot, log: (l) => logs.push(l) });
  const withoutPorts = Object.fromEntries(Object.entries(widened).filter(([k]) => k !== "ports"));
  const withoutPid = { ...userPid, process: { path: "/usr/bin/curl", user: 1000 } };
  assert.deepEqual(store.list(), [...kept, withoutPorts, withoutPid]);
  assert.deepEqual(store.mode(), mode);
  assert.ok(
    logs.some((l) => /^warning: .*decision c3.*\bports\b/.test(l)),
    logs.join("\n"),
  );
  const file = JSON.parse(readFileSync(path, "utf8")) as { decisions: unknown[] };
  assert.deepEqual(file.decisions, [...kept, withoutPorts, withoutPid]);
});

test("a request's process user is kept; one that is not a user is refused", async (t) => {
  const { post, stored } = await setUp(t);
  const EGRESS = '"action":"allow","direction":"egress","remote":"10.231.206.2","lifetime":"1h"';
  const bad = await post(`{${EGRESS},"process":{"path":"/usr/bin/curl","user":-1}}`);
  assert.equal(bad.status, 422);
  const error = bad.body.error as { code: string; details: string[] };
  assert.match(error.details.join("; "), /process\.user: a uid or a user name/);
  const r = await post(`{${EGRESS},"process":{"path":"/usr/bin/curl","user":"1000"}}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const [d] = await stored();
  assert.deepEqual(d?.process, { path: "/usr/bin/curl", user: "1000" });
});
