// The daemon's dynamic sets: entries added and removed (refused with a reason when the set is
// unknown, not dynamic, full, or the entry is not an address), kept in the set store so a new
// daemon finds them, and removed by themselves at their expiry (one re-apply).
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  dynamicSets,
  type DynamicSetOptions,
  type DynamicSets,
} from "../../src/daemon/dynamic-sets.ts";
import { loadPolicyFile, nodeHost } from "../../src/host/index.ts";
import { evaluate } from "../../src/policy/evaluator.ts";
import { dynamicSet, plainSet, setsModel } from "../helpers/set-models.ts";

const model = setsModel([dynamicSet("banned", { maxEntries: 2 }), plainSet("corp")]);

test("dynamic sets: add, del, refusals, kept across instances, expiry", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-dyn-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const refreshes: string[] = [];
  const audit: string[] = [];
  const open = () =>
    dynamicSets({
      dir,
      model: () => model,
      refresh: (reason) => {
        refreshes.push(reason);
        return Promise.resolve();
      },
      generation: () => 7,
      audit: (line) => audit.push(line),
      log: () => {},
    });
  const sets = open();
  t.after(() => sets.close());

  assert.deepEqual(await sets.change({ op: "add", set: "banned", entry: "203.0.113.9" }, "root"), {
    ok: true,
    generation: 7,
    entries: 1,
  });
  await sets.change(
    { op: "add", set: "banned", entry: "2001:db8::/64", timeoutSeconds: 1 },
    "root",
  );
  assert.deepEqual(await sets.change({ op: "add", set: "banned", entry: "192.0.2.1" }, "root"), {
    ok: false,
    status: 409,
    code: "ESETFULL",
    message: "set 'banned' is full (max_entries 2): nothing was evicted",
  });
  const refused = async (set: string, entry: string) => {
    const r = await sets.change({ op: "add", set, entry }, "root");
    return r.ok ? "ok" : `${r.code}: ${r.message}`;
  };
  assert.equal(await refused("nope", "192.0.2.1"), "ENOSET: the running policy has no set 'nope'");
  assert.equal(
    await refused("corp", "192.0.2.1"),
    "ENOSET: set 'corp' is not dynamic (declare it as { dynamic: true })",
  );
  assert.match(
    await refused("banned", "!192.0.2.1"),
    /^EBADENTRY: '!192.0.2.1': a dynamic set holds/,
  );
  assert.match(await refused("banned", "example.com"), /^EBADENTRY: /);
  assert.deepEqual(audit, [
    "set banned: add 203.0.113.9 by root",
    "set banned: add 2001:db8::/64 by root",
  ]);
  assert.match(
    readFileSync(join(dir, "banned.dynamic"), "utf8"),
    /^203\.0\.113\.9\n2001:db8::\/64 # expires \d+\n$/,
  );

  // a new daemon finds them
  const again = open();
  t.after(() => again.close());
  assert.deepEqual(
    again.list()[0]?.entries?.map((e) => [e.entry, e.expires === null]),
    [
      ["203.0.113.9", true],
      ["2001:db8::/64", false],
    ],
  );

  // the 1 s entry goes by itself, with one re-apply
  refreshes.length = 0;
  const end = Date.now() + 5000;
  while (!refreshes.includes("dynamic set entries expired") && Date.now() < end)
    await new Promise((r) => setTimeout(r, 50));
  assert.ok(refreshes.includes("dynamic set entries expired"), refreshes.join(", "));
  assert.deepEqual(
    sets.list()[0]?.entries?.map((e) => e.entry),
    ["203.0.113.9"],
  );
  assert.equal(
    (await sets.change({ op: "del", set: "banned", entry: "203.0.113.9" }, "root")).ok,
    true,
  );
  const gone = await sets.change({ op: "del", set: "banned", entry: "203.0.113.9" }, "root");
  assert.equal(gone.ok ? "" : gone.code, "ENOENTRY");
});

/** Dynamic sets in a new store folder, removed after the test; `options` replace the defaults. */
function openSets(
  t: TestContext,
  options: Partial<Pick<DynamicSetOptions, "refresh" | "log">>,
): { sets: DynamicSets; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), "moat-dyn-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const sets = dynamicSets({
    dir,
    model: () => model,
    refresh: () => Promise.resolve(),
    generation: () => 7,
    audit: () => {},
    log: () => {},
    ...options,
  });
  t.after(() => sets.close());
  return { sets, dir };
}

test("a change the policy cannot take is refused as not in force, and kept for the next policy", async (t) => {
  const { sets, dir } = openSets(t, {
    refresh: () =>
      Promise.reject(new Error("the policy could not be compiled again: ioc.txt:2:1: bad entry")),
  });
  assert.deepEqual(await sets.change({ op: "add", set: "banned", entry: "203.0.113.9" }, "root"), {
    ok: false,
    status: 500,
    code: "ENOTAPPLIED",
    message:
      "set 'banned': the change is stored but not in force: the policy could not be compiled again: ioc.txt:2:1: bad entry",
  });
  assert.equal(readFileSync(join(dir, "banned.dynamic"), "utf8"), "203.0.113.9\n");
});

test("a timeout no date can hold is refused", async (t) => {
  const { sets } = openSets(t, {});
  const r = await sets.change(
    { op: "add", set: "banned", entry: "203.0.113.9", timeoutSeconds: 10_000_000_000_000 },
    "root",
  );
  assert.equal(
    r.ok ? "ok" : `${r.code}: ${r.message}`,
    "EBADTIMEOUT: a timeout of 10000000000000 s is over the longest, 100 years (3155760000 s); leave it out for an entry that does not expire",
  );
  assert.deepEqual(sets.list()[0]?.entries, []);
});

test("an expiry whose file cannot be written is logged and tried again, the daemon goes on", async (t) => {
  const logs: string[] = [];
  const { sets, dir } = openSets(t, { log: (line) => logs.push(line) });
  await sets.change({ op: "add", set: "banned", entry: "203.0.113.9", timeoutSeconds: 1 }, "root");
  // the file's next version cannot be written: others can now write in the set store
  chmodSync(dir, 0o777);
  const end = Date.now() + 5000;
  while (logs.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  assert.match(
    logs[0] ?? "",
    /^dynamic sets: expired entries could not be removed \(dynamic set file .*: directory .* is writable by group or others .*\); trying again in 60 s$/,
  );
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(logs.length, 1, "no retry loop");
});

test("a renewal (a quarantine's match) never shortens an entry: a permanent or longer one stays", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-dyn-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const now = 1_000_000_000;
  let refreshes = 0;
  const sets = dynamicSets({
    dir,
    model: () => model,
    refresh: () => {
      refreshes++;
      return Promise.resolve();
    },
    generation: () => 7,
    audit: () => {},
    log: () => {},
    now: () => now,
  });
  t.after(() => sets.close());
  await sets.change({ op: "add", set: "banned", entry: "10.0.0.5" }, "root"); // no expiry
  await sets.change({ op: "add", set: "banned", entry: "10.0.0.6", timeoutSeconds: 3600 }, "root");
  const renew = (entry: string, expires: number) =>
    sets.bulk("banned", { adds: [{ entry, expires }], dels: [], replace: false, renew: true }, "q");
  const applied = refreshes;
  await renew("10.0.0.5", now + 60_000);
  await renew("10.0.0.6", now + 60_000);
  assert.equal(refreshes, applied, "nothing changed: no re-apply");
  const expiries = () =>
    Object.fromEntries((sets.list()[0]?.entries ?? []).map((e) => [e.entry, e.expires]));
  assert.deepEqual(expiries(), {
    "10.0.0.5": null,
    "10.0.0.6": new Date(now + 3_600_000).toISOString(),
  });
  await renew("10.0.0.6", now + 7_200_000);
  assert.equal(
    expiries()["10.0.0.6"],
    new Date(now + 7_200_000).toISOString(),
    "a later one renews",
  );
});

/**
 * Dynamic sets over a running policy that blocks what comes in from set `banned` (and from the
 * set file ioc.txt, written with `ioc`): each refresh compiles the policy again, the set store
 * read. `ahead` moves the daemon's clock forward (past an expiry, before its timer has run).
 */
function runningPolicy(t: TestContext, ioc = "198.51.100.1\n") {
  const dir = mkdtempSync(join(tmpdir(), "moat-dyn-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const host = { ...nodeHost, setStore: join(dir, "sets") };
  const policyPath = join(dir, "policy.yaml");
  const iocPath = join(dir, "ioc.txt");
  writeFileSync(iocPath, ioc);
  writeFileSync(
    policyPath,
    `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
sets:
  banned: { dynamic: true }
  ioc: { file: ${iocPath} }
rules:
  - name: banned
    direction: ingress
    action: block
    layer3: { remote: [set:banned, set:ioc] }
`,
  );
  let running = loadPolicyFile(policyPath, host);
  const clock = { ahead: 0 };
  const sets = dynamicSets({
    dir: host.setStore,
    model: () => running,
    refresh: () => {
      running = loadPolicyFile(policyPath, host);
      return Promise.resolve();
    },
    generation: () => 1,
    audit: () => {},
    log: () => {},
    now: () => Date.now() + clock.ahead,
  });
  t.after(() => sets.close());
  const verdict = (ip: string) =>
    evaluate(running, {
      family: 4,
      direction: "ingress",
      protocol: "tcp",
      local: { ip: "10.0.0.1", port: 80 },
      remote: { ip, port: 40000 },
    }).verdict;
  return { sets, verdict, clock, writeIoc: (text: string) => writeFileSync(iocPath, text) };
}

test("an entry that expired just before a change that keeps the others is lifted from the policy in force", async (t) => {
  const { sets, verdict, clock } = runningPolicy(t);
  await sets.change({ op: "add", set: "banned", entry: "192.0.2.10", timeoutSeconds: 1 }, "root");
  await sets.change({ op: "add", set: "banned", entry: "192.0.2.20", timeoutSeconds: 60 }, "root");
  assert.equal(verdict("192.0.2.10"), "blocked");

  // the 1 s ban has expired; a bouncer's poll renews the other ban
  clock.ahead = 3000;
  await sets.bulk(
    "banned",
    {
      adds: [{ entry: "192.0.2.20", expires: Date.now() + clock.ahead + 3_600_000 }],
      dels: [],
      replace: false,
    },
    "crowdsec decisions for set banned",
  );
  assert.equal(verdict("192.0.2.10"), "allowed", "the expired ban is lifted");
  assert.equal(verdict("192.0.2.20"), "blocked");
  assert.deepEqual(
    sets.list().map((s) => [s.count, s.entries?.map((e) => e.entry)]),
    [[1, ["192.0.2.20"]]],
    "moat set list: the entries in force, then the entries stored",
  );
});

test("a stored change the policy could not take comes into force with the next bulk change", async (t) => {
  const { sets, verdict, writeIoc } = runningPolicy(t);
  writeIoc("10.0.0.0/33\n");
  const added = await sets.change(
    { op: "add", set: "banned", entry: "192.0.2.10", timeoutSeconds: 60 },
    "root",
  );
  assert.equal(added.ok ? "ok" : added.code, "ENOTAPPLIED");
  assert.equal(verdict("192.0.2.10"), "allowed");
  writeIoc("198.51.100.1\n");
  // a bouncer's poll that brings the same ban, expiring later
  await sets.bulk(
    "banned",
    { adds: [{ entry: "192.0.2.10", expires: Date.now() + 3_600_000 }], dels: [], replace: false },
    "crowdsec decisions for set banned",
  );
  assert.equal(verdict("192.0.2.10"), "blocked", "the ban stored before is in force");
});
