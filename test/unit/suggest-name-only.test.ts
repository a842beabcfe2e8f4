// A process known only by its name (comm: what it calls itself, set by prctl(PR_SET_NAME), a
// slash included) is marked as such from the flow summary to `moat suggest`: the roll-ups keep it
// apart from an executable with the same text, statistics say it is a name, and suggest never
// names it by `path` (a name with a slash, which exec never gives, by nothing at all). A real
// executable path still becomes a path rule; stored roll-ups from before the mark read a row a
// comm could have written (no leading slash, or 15 characters at most) as a name.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { acceptPolicy, nodeHost } from "../../src/host/index.ts";
import { HistoryReader } from "../../src/observe/history/reader.ts";
import { HistoryStore } from "../../src/observe/history/store.ts";
import { FlowAggregator } from "../../src/observe/flows/aggregate.ts";
import { promotePolicy, suggestPolicy } from "../../src/observe/learn/index.ts";
import type { PolicyModel } from "../../src/config/index.ts";
import { DAY, HOUR, NOW, proc, summaries, type GenFlow } from "../helpers/learn-history.ts";

const POLICY = readFileSync(join(import.meta.dirname, "../fixtures/suggest/policy.yaml"), "utf8");

function model(text: string): PolicyModel {
  const { diagnostics, policy } = acceptPolicy(text, "/etc/moat/policy.yaml", { host: nodeHost });
  assert.deepEqual(
    diagnostics.filter((d) => d.severity === "error"),
    [],
  );
  return policy!.model;
}

const request = (text: string) => ({
  text,
  model: model(text),
  fileName: "policy.yaml",
  now: NOW,
  since: NOW - 7 * DAY - HOUR,
});

/** A process that exited before its executable was read, named like an executable. */
const named = { ...proc("/usr/bin/ssh", 1000), name: "/usr/bin/ssh", path: "" };
const ssh = proc("/usr/bin/ssh", 1000);

const flow = (process: GenFlow["process"], ip: string): GenFlow => ({
  process,
  direction: "egress",
  protocol: "tcp",
  peer: { ip },
  port: 22,
  verdict: "detected",
});

function tempDir(t: { after: (f: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), "moat-name-only-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The flows written through the store, and what suggest proposes from them. */
function suggestFrom(t: { after: (f: () => void) => void }, flows: GenFlow[]) {
  const path = join(tempDir(t), "history.db");
  const store = new HistoryStore(path);
  store.insertFlows(summaries(flows));
  const stats = store.flowStats({ since: NOW - 7 * DAY - HOUR, until: NOW }, NOW);
  const bySsh = store.flowStats({ since: NOW - 7 * DAY - HOUR, until: NOW, process: "ssh" }, NOW);
  store.close();
  const reader = new HistoryReader(path);
  const learn = reader.learnRows(NOW - 7 * DAY - HOUR, NOW);
  reader.close();
  const s = suggestPolicy(request(POLICY), learn);
  const rules = model(s.text).rules.filter((r) => r.name.startsWith("suggest-"));
  return { s, rules, stats, bySsh };
}

const byProcess = (rules: PolicyModel["rules"]) =>
  rules.map((r) => ({ path: r.process?.path, name: r.process?.name, user: r.process?.user }));

test("suggest: a comm that reads like a path never becomes a path rule", (t) => {
  const { s, rules } = suggestFrom(t, [flow(named, "203.0.113.9")]);
  assert.deepEqual(byProcess(rules), [], "no rule: exec never gives a name with a slash");
  assert.equal(s.notProposed.pathLikeName, 56, "counted, with why");
});

test("suggest: a comm exec could have given is proposed by name and user, said so", (t) => {
  const agent = { ...named, name: "backup-agent" };
  const { s, rules } = suggestFrom(t, [flow(agent, "203.0.113.9")]);
  assert.deepEqual(byProcess(rules), [{ path: undefined, name: ["backup-agent"], user: [1000] }]);
  assert.deepEqual(s.rules[0]!.identity, {
    exe: "backup-agent",
    nameOnly: true,
    user: 1000,
    container: "",
  });
  assert.match(s.rules[0]!.because.join("\n"), /known by its name only/);
});

test("suggest: a real executable path still becomes a path rule, kept apart from the comm", (t) => {
  const { s, rules, stats, bySsh } = suggestFrom(t, [
    flow(ssh, "198.51.100.7"),
    flow(named, "203.0.113.9"),
  ]);
  assert.deepEqual(byProcess(rules), [{ path: ["/usr/bin/ssh"], name: undefined, user: [1000] }]);
  assert.deepEqual(s.rules[0]!.remote, ["198.51.100.7"], "the executable's peer only");
  assert.equal(s.notProposed.pathLikeName, 56);
  // statistics mark which identity is a name; --process ssh is the executable's file name only
  assert.deepEqual(stats.rows.map((r) => [r.identity.exe, r.identity.nameOnly, r.peer]).sort(), [
    ["/usr/bin/ssh", false, "198.51.100.7"],
    ["/usr/bin/ssh", true, "203.0.113.9"],
  ]);
  assert.deepEqual(
    bySsh.rows.map((r) => r.peer),
    ["198.51.100.7"],
  );
});

test("suggest: the flow aggregator keeps a comm and an executable of the same text apart", () => {
  const agg = new FlowAggregator();
  for (const p of [ssh, named])
    agg.add({
      timeMs: NOW,
      connection: summaries([flow(p, "198.51.100.7")])[0]!.connection,
      packets: 1,
      bytes: 10,
      durationMs: 1,
      first: true,
      end: "fin",
    });
  assert.deepEqual(
    agg.flush().map((s) => s.connection.process?.path),
    ["/usr/bin/ssh", ""],
  );
});

/** flow_stats as stores made before the name-only mark created it. */
const OLD_ROLLUP_SQL = `
CREATE TABLE flow_stats (
  level TEXT NOT NULL, bucket_ms INTEGER NOT NULL, exe TEXT NOT NULL, user INTEGER NOT NULL,
  cgroup TEXT NOT NULL, container TEXT NOT NULL, peer TEXT NOT NULL, port INTEGER NOT NULL,
  protocol TEXT NOT NULL, direction TEXT NOT NULL, connections INTEGER NOT NULL,
  closed INTEGER NOT NULL, packets INTEGER NOT NULL, bytes INTEGER NOT NULL,
  duration_sum_ms REAL NOT NULL, duration_max_ms REAL NOT NULL, first_ms INTEGER NOT NULL,
  last_ms INTEGER NOT NULL, allowed INTEGER NOT NULL, blocked INTEGER NOT NULL,
  detected INTEGER NOT NULL,
  PRIMARY KEY (level, bucket_ms, exe, user, cgroup, container, peer, port, protocol, direction)
) WITHOUT ROWID;`;

function oldStore(path: string, exes: string[]): void {
  const db = new Database(path);
  db.exec(OLD_ROLLUP_SQL);
  const insert = db.prepare(
    "INSERT INTO flow_stats VALUES ('hour', ?, ?, 1000, '/', '', ?, 443, 'tcp', 'egress', 3, 3, 30, 3000, 3, 1, ?, ?, 0, 0, 3)",
  );
  const bucket = NOW - 3 * DAY - ((NOW - 3 * DAY) % HOUR);
  exes.forEach((exe, i) => insert.run(bucket, exe, `192.0.2.${i + 1}`, NOW - 5 * DAY, bucket));
  db.close();
}

test("suggest: roll-ups stored before the mark read a row a comm could have written as a name", (t) => {
  const dir = tempDir(t);
  const long = "/opt/company/bin/agent"; // 22 characters: no comm is that long
  // "/usr/bin/python3": 16 characters, a path however short it looks
  const exes = ["/usr/bin/ssh", long, "curl", "/usr/bin/python3"];
  for (const open of ["reader", "store"] as const) {
    const path = join(dir, `${open}.db`);
    oldStore(path, exes);
    if (open === "store") new HistoryStore(path).close(); // the stored rows are marked once
    const reader = new HistoryReader(path);
    const learn = reader.learnRows(NOW - 7 * DAY, NOW);
    reader.close();
    assert.deepEqual(
      learn.rows.map((r) => [r.exe, r.nameOnly]).sort(),
      [
        [long, false],
        ["/usr/bin/python3", false],
        ["/usr/bin/ssh", true],
        ["curl", true],
      ],
      open,
    );
    const s = suggestPolicy(request(POLICY), learn);
    const rules = model(s.text).rules.filter((r) => r.name.startsWith("suggest-"));
    assert.deepEqual(
      byProcess(rules).sort((a, b) =>
        String(a.path ?? a.name).localeCompare(String(b.path ?? b.name)),
      ),
      [
        { path: [long], name: undefined, user: [1000] },
        { path: ["/usr/bin/python3"], name: undefined, user: [1000] },
        { path: undefined, name: ["curl"], user: [1000] },
      ],
      open,
    );
    assert.equal(s.notProposed.pathLikeName, 3, open);
  }
});

test("suggest --promote: a comm's clean days never count for the path it reads as", () => {
  const text = POLICY.replace(
    "# the end of the rules\n",
    `  # moat suggest 2026-11-21: 10 connections
  - name: suggest-ssh-out-1
    direction: egress
    action: allow
    mode: detect
    process: { path: /usr/bin/ssh, user: [1000] }
    layer4: { protocol: tcp, port: [22] }
`,
  );
  const days = Array.from({ length: 8 }, (_, i) => ({
    exe: "/usr/bin/ssh",
    nameOnly: true,
    user: 1000,
    container: "",
    dayMs: NOW - (NOW % DAY) - i * DAY,
    connections: 5,
    unclean: 0,
  }));
  const p = promotePolicy(request(text), days, "day");
  assert.deepEqual(
    p.promotions.map((c) => [c.name, c.cleanDays, c.promoted]),
    [["suggest-ssh-out-1", 0, false]],
  );
});
