// moat suggest: least-privilege rules learnt from a generated week of flow roll-ups. The replay
// check: the history replayed through the old and the suggested policy changes only detected
// to allowed, for the flows that justified each rule, never allowed to blocked, and every
// proposed rule has hits; a golden diff is the second check. Each widening step, the caps and
// promotion are tested on their own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { acceptPolicy, nodeHost } from "../../src/host/index.ts";
import { HistoryReader } from "../../src/observe/history/reader.ts";
import { HistoryStore } from "../../src/observe/history/store.ts";
import { FlowRollups } from "../../src/observe/history/rollup.ts";
import { learnRows } from "../../src/observe/history/learn.ts";
import { Replay } from "../../src/policy/index.ts";
import {
  generalisePeers,
  portRanges,
  promotePolicy,
  suggestPolicy,
  type IdentityDay,
  type LearnInput,
} from "../../src/observe/learn/index.ts";
import type { PolicyModel } from "../../src/config/index.ts";
import { historySuggester } from "../../src/daemon/history-suggest.ts";
import {
  DAY,
  HOUR,
  NOW,
  proc,
  storedEvents,
  summaries,
  type GenFlow,
} from "../helpers/learn-history.ts";

const FIXTURES = join(import.meta.dirname, "../fixtures/suggest");
const POLICY = readFileSync(join(FIXTURES, "policy.yaml"), "utf8");
const UPDATE = process.env.MOAT_UPDATE_GOLDEN === "1";

const curl = proc("/usr/bin/curl", 1000);
const app = proc("/usr/bin/node", 33, "web");
const sshd = proc("/usr/sbin/sshd", 0);

/** A week of a few identities: what each flow should become is in its comment. */
const FLOWS: GenFlow[] = [
  // three sibling names under example.co.uk (a multi-label public suffix) -> *.example.co.uk
  ...["a", "b", "c"].map((l, i) => ({
    process: curl,
    direction: "egress" as const,
    protocol: "tcp" as const,
    peer: { ip: `198.51.100.${i + 1}`, name: `${l}.example.co.uk` },
    port: 443,
    verdict: "detected" as const,
  })),
  // one name: itself, in the same rule (same port)
  {
    process: curl,
    direction: "egress",
    protocol: "tcp",
    peer: { ip: "140.82.112.6", name: "api.github.com" },
    port: 443,
    verdict: "detected",
  },
  // nine addresses in one /24 -> the prefix
  ...Array.from({ length: 9 }, (_, i) => ({
    process: app,
    direction: "egress" as const,
    protocol: "tcp" as const,
    peer: { ip: `10.1.2.${i + 1}` },
    port: 5432,
    verdict: "detected" as const,
  })),
  // adjacent ports -> a range
  ...[8000, 8001, 8002, 8003].map((port) => ({
    process: app,
    direction: "egress" as const,
    protocol: "tcp" as const,
    peer: { ip: "10.9.0.5" },
    port,
    verdict: "detected" as const,
  })),
  // a rule of the policy decides it already: nothing proposed
  {
    process: sshd,
    direction: "ingress",
    protocol: "tcp",
    peer: { ip: "192.0.2.10" },
    port: 22,
    verdict: "allowed",
    rule: "ssh-in",
  },
  // first seen an hour ago: within the stability period, held back
  {
    process: proc("/usr/bin/wget", 1000),
    direction: "egress",
    protocol: "tcp",
    peer: { ip: "203.0.113.7", name: "new.example.net" },
    port: 443,
    verdict: "detected",
    firstAgoMs: HOUR,
  },
  // only ever blocked: a decision already made
  {
    process: proc("/usr/bin/nc", 1000),
    direction: "egress",
    protocol: "tcp",
    peer: { ip: "203.0.113.5" },
    port: 4444,
    verdict: "blocked",
  },
];

function model(text: string): PolicyModel {
  const { diagnostics, policy } = acceptPolicy(text, "/etc/moat/policy.yaml", { host: nodeHost });
  const errors = diagnostics.filter((d) => d.severity === "error");
  assert.deepEqual(errors, [], "the policy is accepted");
  return policy!.model;
}

/** The generated history written through the store, and its roll-ups read back. */
function history(t: { after: (f: () => void) => void }, flows: readonly GenFlow[]) {
  const dir = mkdtempSync(join(tmpdir(), "moat-suggest-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "history.db");
  const store = new HistoryStore(path);
  const list = summaries(flows);
  store.insertFlows(list);
  store.close();
  const reader = new HistoryReader(path);
  const learn = reader.learnRows(NOW - 7 * DAY - HOUR, NOW);
  reader.close();
  return { path, list, learn };
}

const request = (text: string, m: PolicyModel) => ({
  text,
  model: m,
  fileName: "policy.yaml",
  now: NOW,
  since: NOW - 7 * DAY - HOUR,
});

test("suggest: replaying history through the suggested policy only turns detected into allowed", (t) => {
  const { list, learn } = history(t, FLOWS);
  const old = model(POLICY);
  const s = suggestPolicy(request(POLICY, old), learn);
  const draft = model(s.text);

  const replay = new Replay({ draft, running: old, samples: 1, groups: 1000 });
  for (const e of storedEvents(list)) replay.add(e);
  const report = replay.report({ since: "", until: "", limit: 0, notScanned: 0 });
  assert.equal(report.changes.blocked.count, 0, "nothing newly blocked");
  assert.equal(report.changes.detected.count, 0, "nothing newly detected");
  assert.equal(report.undecided.count, 0);
  // every change is detected -> allowed, by a proposed rule
  for (const g of report.changes.allowed.groups) {
    assert.deepEqual(Object.keys(g.was), ["detected"], `${g.process} ${g.remote}`);
    for (const r of g.rules) assert.match(r.rule, /^suggest-/);
  }
  // the flows that justified the rules are the ones that changed: curl's and the app's
  const changed = new Set(
    report.changes.allowed.groups.map((g) => `${g.process} ${g.remote}:${g.port}`),
  );
  const justified = FLOWS.filter((f) => f.process === curl || f.process === app).map(
    (f) =>
      `${f.process!.container ? "web/" : ""}${f.process!.name} ${f.peer.name ?? f.peer.ip}:${f.port}`,
  );
  assert.deepEqual([...changed].sort(), [...new Set(justified)].sort());
  // every proposed rule has hits, in the roll-ups and in the replay
  const hit = new Set(report.changes.allowed.groups.flatMap((g) => g.rules.map((r) => r.rule)));
  assert.ok(s.rules.length > 0);
  for (const r of s.rules) {
    assert.ok(r.hits > 0, `${r.name} has hits`);
    assert.ok(hit.has(r.name), `${r.name} decides replayed connections`);
  }
  // what was not proposed, and why
  assert.deepEqual(
    {
      covered: s.notProposed.covered > 0,
      unstable: s.notProposed.unstable > 0,
      blocked: s.notProposed.blocked > 0,
    },
    { covered: true, unstable: true, blocked: true },
  );
  assert.deepEqual(s.overflow, { rows: 0, connections: 0, rolledUp: 0 });

  // the golden diff: the file's comments and layout kept, the rules appended with their reasons
  const golden = join(FIXTURES, "golden.diff");
  const diff = `${s.diff.join("\n")}\n`;
  if (UPDATE) writeFileSync(golden, diff);
  assert.equal(diff, readFileSync(golden, "utf8"));
  assert.ok(
    s.diff.every((l) => !l.startsWith("-") || l.startsWith("---")),
    "only lines added",
  );
});

test("suggest: each widening step, stated", () => {
  // sibling subdomains under a registrable domain, by the Public Suffix List
  const names = generalisePeers(["a.example.co.uk", "b.example.co.uk", "c.example.co.uk"]);
  assert.deepEqual(
    names.map((d) => d.entry),
    ["*.example.co.uk"],
  );
  assert.match(names[0]!.because!, /3 sibling subdomains of the registrable domain example.co.uk/);
  // fewer than k: each name as it is
  assert.deepEqual(
    generalisePeers(["a.example.com", "b.example.com"]).map((d) => d.entry),
    ["a.example.com", "b.example.com"],
  );
  // deeper than one label: `**.`
  assert.deepEqual(
    generalisePeers(["x.a.example.com", "b.example.com", "c.example.com"]).map((d) => d.entry),
    ["**.example.com"],
  );
  // a private suffix (github.io) is a suffix: its sites are not siblings
  assert.deepEqual(
    generalisePeers(["a.github.io", "b.github.io", "c.github.io"]).map((d) => d.entry),
    ["a.github.io", "b.github.io", "c.github.io"],
  );
  // names under a public suffix alone (co.uk) never make `*.co.uk`
  assert.deepEqual(
    generalisePeers(["a.co.uk", "b.co.uk", "c.co.uk"]).map((d) => d.entry),
    ["a.co.uk", "b.co.uk", "c.co.uk"],
  );
  // adjacent ports: a range; the rest as they are
  assert.deepEqual(portRanges([443, 8002, 80, 8000, 8001, 8004]), [80, 443, "8000-8002", 8004]);
  // many addresses in one prefix: the prefix (IPv4 /24, IPv6 /64); fewer: each address
  const v4 = Array.from({ length: 8 }, (_, i) => `192.0.2.${i * 10}`);
  assert.deepEqual(
    generalisePeers(v4).map((d) => d.entry),
    ["192.0.2.0/24"],
  );
  assert.equal(generalisePeers(v4.slice(1)).length, 7);
  const v6 = Array.from({ length: 8 }, (_, i) => `2001:db8:0:1::${i + 1}`);
  assert.deepEqual(
    generalisePeers(v6).map((d) => d.entry),
    ["2001:db8:0:1::/64"],
  );
});

test("suggest: the caps, overflow counted", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-suggest-caps-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const db = new Database(join(dir, "h.db"));
  t.after(() => db.close());
  // a bucket keeps 3 keys: the rest of its flows go to its overflow row (peer "*")
  const rollups = new FlowRollups(db, { maxKeysPerBucket: 3 });
  const flows: GenFlow[] = Array.from({ length: 6 }, (_, i) => ({
    process: curl,
    direction: "egress",
    protocol: "tcp",
    peer: { ip: `203.0.113.${i + 1}` },
    port: 443,
    verdict: "detected",
    firstAgoMs: 3 * DAY,
    connections: i + 1,
  }));
  rollups.add(summaries(flows));
  const all = learnRows(db, NOW - 7 * DAY, NOW);
  assert.ok(all.overflow.rolledUp > 0, "the roll-ups' own overflow is counted");
  // reading at most 2 rows: the smallest are left out and counted
  const two = learnRows(db, NOW - 7 * DAY, NOW, 2);
  assert.equal(two.rows.length, 2);
  assert.equal(two.overflow.rows, all.rows.length - 2);
  const left = all.rows.slice(2).reduce((n, r) => n + r.connections, 0);
  assert.equal(two.overflow.connections, left);
  assert.ok(two.rows[0]!.connections >= two.rows[1]!.connections, "largest first");
});

test("suggest: an allowing default gets each identity's rest flagged, never blocked", (t) => {
  const allowing = POLICY.replace("egress: block # reported as detected", "egress: allow");
  const flows = FLOWS.map((f) =>
    f.verdict === "detected" ? { ...f, verdict: "allowed" as const } : f,
  );
  const { list, learn } = history(t, flows);
  const old = model(allowing);
  const s = suggestPolicy(request(allowing, old), learn);
  const rest = s.rules
    .filter((r) => r.action === "block")
    .map((r) => r.name)
    .sort();
  assert.deepEqual(rest, ["suggest-curl-out-rest", "suggest-web-node-out-rest"]);
  const draft = model(s.text);
  assert.ok(draft.rules.filter((r) => rest.includes(r.name)).every((r) => r.mode === "detect"));
  const replay = new Replay({ draft, running: old, groups: 1000 });
  for (const e of storedEvents(list))
    replay.add({ ...e, flow: { connections: 1 }, verdict: e.verdict });
  const report = replay.report({ since: "", until: "", limit: 0, notScanned: 0 });
  assert.equal(report.changes.blocked.count, 0, "nothing newly blocked");
  // wget (held back, same identity family as nothing proposed) stays allowed by the default
  assert.equal(report.changes.detected.count, 0, "every connection in the history stays allowed");
});

test("suggest --promote: N clean days make a proposed rule prevent; an unclean day keeps it", (t) => {
  const { learn } = history(t, FLOWS);
  const suggestion = suggestPolicy(request(POLICY, model(POLICY)), learn);
  // proposed 9 days ago: only the days after that count
  const s = {
    text: suggestion.text.replaceAll("moat suggest 2026-11-30:", "moat suggest 2026-11-21:"),
  };
  const proposed = model(s.text);
  const days = (exe: string, user: number, container: string, unclean: number[]): IdentityDay[] =>
    Array.from({ length: 8 }, (_, i) => ({
      exe,
      nameOnly: false,
      user,
      container,
      dayMs: NOW - (NOW % DAY) - i * DAY,
      connections: 5,
      unclean: unclean.includes(i) ? 1 : 0,
    }));
  const history7 = [
    ...days("/usr/bin/curl", 1000, "", []),
    // the app's connections were detected 2 days ago: its run is 2 days
    ...days("/usr/bin/node", 33, "web", [2]),
  ];
  const p = promotePolicy(request(s.text, proposed), history7, "day");
  const byName = new Map(p.promotions.map((c) => [c.name, c]));
  assert.equal(byName.get("suggest-curl-out-1")?.promoted, true);
  assert.equal(byName.get("suggest-curl-out-1")?.cleanDays, 8);
  assert.equal(byName.get("suggest-web-node-out-1")?.promoted, false);
  assert.equal(byName.get("suggest-web-node-out-1")?.cleanDays, 2);
  const after = model(p.text);
  const modes = Object.fromEntries(
    after.rules.filter((r) => r.name.startsWith("suggest-")).map((r) => [r.name, r.mode]),
  );
  assert.equal(modes["suggest-curl-out-1"], "prevent");
  assert.equal(modes["suggest-web-node-out-1"], "detect");
  // the diff: each promoted rule's mode line and a comment saying why, nothing else
  const changed = p.diff.filter((l) => /^[-+][^-+]/.test(l));
  assert.deepEqual(
    changed.map((l) => l.replace(/\d{4}-\d\d-\d\d/, "DATE")),
    [
      "+  # moat suggest --promote DATE: 8 clean days since it was proposed (connections, none blocked or detected)",
      "-    mode: detect",
      "+    mode: prevent",
    ],
  );
  // promoting again changes nothing
  assert.deepEqual(promotePolicy(request(p.text, after), history7, "day").diff, []);
  // days past the read cap may be unclean ones: nothing is promoted, and the answer says why
  const partial = promotePolicy(request(s.text, proposed), history7, "day", 12);
  assert.deepEqual(partial.diff, []);
  assert.ok(partial.promotions.every((c) => !c.promoted));
  assert.equal(partial.overflow.rows, 12);
});

test("suggest: the daemon's suggester reads the history on a worker thread", async (t) => {
  const { path } = history(t, FLOWS);
  const suggest = historySuggester({
    historyPath: path,
    policyPath: "/etc/moat/policy.yaml",
    runningText: () => POLICY,
  });
  const outcome = await suggest({
    since: NOW - 7 * DAY - HOUR,
    now: NOW,
    promote: false,
    setFiles: false,
  });
  assert.ok(outcome?.ok);
  assert.deepEqual(outcome.problems, []);
  const direct = suggestPolicy(
    request(POLICY, model(POLICY)),
    history(t, FLOWS).learn as LearnInput,
  );
  assert.deepEqual(outcome.suggestion.diff, direct.diff);
});

const row = (exe: string, detected: number, peer = "203.0.113.9", nameOnly = false) => ({
  exe,
  nameOnly,
  user: 1000,
  container: "",
  peer,
  port: 443,
  protocol: "tcp",
  direction: "egress",
  connections: detected,
  allowed: 0,
  blocked: 0,
  detected,
  firstMs: NOW - 5 * DAY,
  lastMs: NOW - DAY,
  processes: 1,
});

test("suggest: a process known by name only joins the executable of that name", () => {
  const learn: LearnInput = {
    rows: [row("/usr/bin/curl", 4), row("curl", 2, undefined, true)],
    overflow: { rows: 0, connections: 0, rolledUp: 0 },
    resolution: "hour",
  };
  const s = suggestPolicy(request(POLICY, model(POLICY)), learn);
  assert.deepEqual(
    s.rules.map((r) => [r.name, r.identity.exe, r.hits]),
    [["suggest-curl-out-1", "/usr/bin/curl", 6]],
  );
});

test("suggest: odd executable paths and names stay one value, comments one line", () => {
  const exe = "/opt/a,b [x]/run\n- name: injected";
  const learn: LearnInput = {
    rows: [row(exe, 3), row(exe, 2, "odd\nname.example.com")],
    overflow: { rows: 0, connections: 0, rolledUp: 0 },
    resolution: "hour",
  };
  const s = suggestPolicy(request(POLICY, model(POLICY)), learn);
  const rules = model(s.text).rules.filter((r) => r.name.startsWith("suggest-"));
  assert.deepEqual(
    rules.map((r) => r.process?.path),
    [[exe]],
  );
  assert.ok(!s.text.includes("\n- name: injected"), "no line of the file comes from a name");
  // a peer that is neither an address nor a hostname cannot be written: counted, not proposed
  assert.equal(s.notProposed.inexpressible, 2);
});
