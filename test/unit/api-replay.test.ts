// POST /v1/policy/replay against a real history file: the daemon's replayer (a worker thread
// reading the store on its own connection) answers what a draft would newly allow or block, by
// process and remote; the window and the read limit hold; a bad draft is refused with moat
// check's lines; a caller with only the events scope may replay, but not read set files.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { startApi } from "../../src/api/server.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { HistoryStore } from "../../src/observe/history/store.ts";
import { HistoryReader } from "../../src/observe/history/reader.ts";
import { historyReplayer } from "../../src/daemon/history-replay.ts";
import type { ReplayReport } from "../../src/policy/index.ts";
import type { ReplayAnswer } from "../../src/api/index.ts";
import { testControl } from "../helpers/api-control.ts";
import { fakeEvent } from "../helpers/events.ts";
import { http } from "../helpers/api-client.ts";
import { policyCommand } from "../../src/cli/commands/policy.ts";

const RUNNING = `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - name: ssh
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [22] }
`;
const ALLOW_TELNET = `${RUNNING}  - name: telnet
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [23] }
`;
const EVENTS_TOKEN = "events-only-token-0123456789";
const HOUR = 3_600_000;

async function setUp(t: { after: (fn: () => Promise<void> | void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), "moat-replay-"));
  const historyPath = join(dir, "history.db");
  const store = new HistoryStore(historyPath);
  const now = Date.now();
  const at = (ms: number) => new Date(now - ms).toISOString();
  const probes = [1, 2, 3].map((n) =>
    fakeEvent({
      time: at(n * 1000),
      local: { ip: "10.0.0.1", port: 23 },
      remote: { ip: "203.0.113.9", port: 40000 + n },
      connection: `c${n}`,
    }),
  );
  // two days old: outside a 24 h window
  const old = fakeEvent({
    time: at(48 * HOUR),
    local: { ip: "10.0.0.1", port: 23 },
    remote: { ip: "198.51.100.1", port: 40000 },
    connection: "c0",
  });
  store.insert([old, ...probes.reverse()]);
  store.close();
  const tokenFile = join(dir, "tokens");
  writeFileSync(tokenFile, `grafana read,events ${EVENTS_TOKEN}\n`, { mode: 0o600 });
  const policyPath = join(dir, "policy.yaml");
  writeFileSync(join(dir, "corp.txt"), "203.0.113.0/24\n");
  const pipeline = new EventPipeline();
  const control = testControl(pipeline, {
    replay: historyReplayer({ historyPath, policyPath, runningText: () => RUNNING }),
  });
  const socketPath = join(dir, "api.sock");
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
  return { socketPath, port, historyPath };
}

test("replay: a draft that allows what was blocked shows it as newly allowed, in its window", async (t) => {
  const { socketPath } = await setUp(t);
  const r = await http(
    { socketPath },
    "POST",
    "/v1/policy/replay",
    JSON.stringify({ text: ALLOW_TELNET, since: "24h" }),
  );
  assert.equal(r.status, 200, r.body);
  const report = JSON.parse(r.body) as ReplayAnswer;
  assert.equal(report.baseline, "recorded");
  assert.deepEqual(report.policyChanges, ["rules added: telnet"]);
  assert.equal(report.scanned, 3, "the event two days old is outside the window");
  assert.equal(report.changes.allowed.count, 3);
  const [g] = report.changes.allowed.groups;
  assert.deepEqual(
    [g?.remote, g?.port, g?.rules],
    ["203.0.113.9", 23, [{ rule: "telnet", count: 3 }]],
  );
  // newest first: the first sample is the latest probe
  assert.equal(g?.samples[0]?.remote, "203.0.113.9:40001");

  const week = await http(
    { socketPath },
    "POST",
    "/v1/policy/replay",
    JSON.stringify({ text: ALLOW_TELNET, since: "7d", limit: 2, baseline: "running" }),
  );
  const w = JSON.parse(week.body) as ReplayReport;
  assert.deepEqual([w.scanned, w.notScanned, w.limit, w.baseline], [2, 2, 2, "running"]);

  // the CLI: moat policy replay FILE --since 24h, in words and as JSON
  const draft = join(dirname(socketPath), "draft.yaml");
  writeFileSync(draft, ALLOW_TELNET);
  const run = async (...more: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const values: Record<string, string | boolean> = { api: `unix:${socketPath}`, since: "24h" };
    for (const m of more) values[m] = true;
    const code = await policyCommand.run(
      { values, positionals: ["replay", draft] },
      { out: (l) => out.push(l), err: (l) => err.push(l) },
    );
    return { code, out, err };
  };
  const words = await run();
  assert.equal(words.code, 0, words.err.join("\n"));
  assert.match(
    words.out[0] ?? "",
    /^replayed 3 connections from 3 stored events, .* against the verdicts recorded$/,
  );
  assert.ok(words.out.includes("newly allowed: 3 connections"), words.out.join("\n"));
  assert.ok(words.out.includes("applying it changes: rules added: telnet"), words.out.join("\n"));
  assert.match(
    words.out.join("\n"),
    /^ +3 {2}- <- 203\.0\.113\.9 23\/tcp \(was blocked 3\) by telnet$/m,
  );
  const json = await run("json");
  assert.equal((JSON.parse(json.out[0] ?? "") as ReplayReport).changes.allowed.count, 3);
  writeFileSync(draft, "version: 1\nmode: sometimes\n");
  const refused = await run();
  assert.equal(refused.code, 1);
  assert.match(refused.err.join("\n"), /policy\.yaml:2:7 mode: [^]*the draft policy is refused/);
});

test("replay: a refused draft answers moat check's lines; bad windows are 400", async (t) => {
  const { socketPath } = await setUp(t);
  const bad = await http(
    { socketPath },
    "POST",
    "/v1/policy/replay",
    JSON.stringify({ text: "version: 1\nmode: sometimes\n" }),
  );
  assert.equal(bad.status, 422, bad.body);
  const body = JSON.parse(bad.body) as { error: { code: string; details: string[] } };
  assert.equal(body.error.code, "EPOLICY");
  assert.match(body.error.details[0] ?? "", /policy\.yaml:2:7 mode: /);
  const time = await http(
    { socketPath },
    "POST",
    "/v1/policy/replay",
    JSON.stringify({ text: RUNNING, since: "yesterday" }),
  );
  assert.equal(time.status, 400);
  assert.match(time.body, /EBADTIME/);
});

test("replay: the events scope replays, but a draft's set files need the policy scope", async (t) => {
  const { port, socketPath } = await setUp(t);
  const withSet = `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
sets:
  corp: { file: corp.txt }
rules:
  - name: corp
    direction: ingress
    action: allow
    layer3: { remote: [set:corp] }
`;
  const asToken = await http(
    { port, token: EVENTS_TOKEN },
    "POST",
    "/v1/policy/replay",
    JSON.stringify({ text: ALLOW_TELNET }),
  );
  assert.equal(asToken.status, 200, asToken.body);
  const refused = await http(
    { port, token: EVENTS_TOKEN },
    "POST",
    "/v1/policy/replay",
    JSON.stringify({ text: withSet }),
  );
  assert.equal(refused.status, 422, refused.body);
  assert.match(refused.body, /reads set files only for callers with the 'policy' scope/);
  const root = await http(
    { socketPath },
    "POST",
    "/v1/policy/replay",
    JSON.stringify({ text: withSet }),
  );
  assert.equal(root.status, 200, root.body);
  assert.equal((JSON.parse(root.body) as ReplayReport).changes.allowed.count, 3);
});

test("the history reader walks the time index newest first, without sorting", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-reader-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "h.db");
  const store = new HistoryStore(path);
  const base = Date.parse("2026-01-01T00:00:00Z");
  store.insert(
    Array.from({ length: 10 }, (_, n) =>
      fakeEvent({ time: new Date(base + n * 1000).toISOString(), connection: `c${n}` }),
    ),
  );
  const reader = new HistoryReader(path);
  t.after(() => reader.close());
  const w = reader.window(base + 2000, base + 8000, 3);
  assert.equal(w.total, 7);
  assert.deepEqual(
    [...w.events].map((e) => e.connection),
    ["c8", "c7", "c6"],
  );
  store.close();
});
