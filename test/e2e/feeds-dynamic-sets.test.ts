// Dynamic sets and feeds against a running daemon, with real clients: `moat set add` blocks a
// client at once, the entry expiring lets it through again, an entry without expiry survives a
// restart; a URL feed served in the lab and changed while probes run swaps the filter with no
// probe misjudged, and an unchanged feed is answered 304 (ETag).
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startMoatLab, startPeerServers, type MoatLab } from "../helpers/moat-lab.ts";
import { spawnLines } from "../helpers/child.ts";
import { MOAT, NODE, ROOT } from "../helpers/paths.ts";
import type { SetView } from "../../src/api/index.ts";
import { until } from "../helpers/until.ts";
import { appliedGenerations, stateDir } from "../helpers/daemon-state.ts";
import type { Lab } from "../helpers/netns.ts";
import { setBlockPolicy } from "../helpers/set-block-policy.ts";

function moat(lab: MoatLab, ...args: string[]) {
  const r = spawnSync(MOAT, [...args, "--api", `unix:${lab.apiSocket}`], {
    encoding: "utf8",
    timeout: 20_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const sets = (lab: MoatLab) =>
  (JSON.parse(moat(lab, "set", "list", "--json").stdout) as { sets: SetView[] }).sets;

test("moat set add blocks a client at once; the entry expiring lets it through; entries survive a restart", async (t) => {
  stateDir(t);
  const lab = await startMoatLab(
    t.name,
    setBlockPolicy("banned", "{ dynamic: true, max_entries: 100 }"),
  );
  t.after(() => lab.close());
  const web = () => lab.curl(`http://${lab.v4.b}:80/`, ["--max-time", "1"]).status === 0;
  assert.equal(web(), true, "not banned yet");

  const added = moat(lab, "set", "add", "banned", lab.v4.a, "--timeout", "3s");
  assert.equal(added.code, 0, added.stderr);
  assert.match(
    added.stdout,
    new RegExp(`^set banned: added ${lab.v4.a} \\(1 entries, generation \\d+\\)`),
  );
  assert.equal(web(), false, "blocked at once");
  const listed = sets(lab).find((s) => s.name === "banned");
  assert.equal(listed?.entries?.[0]?.entry, lab.v4.a);
  assert.ok(listed?.entries?.[0]?.expires, "the entry has an expiry");
  const event = await until("the blocked event", () => {
    const r = moat(lab, "events", "--json", "--type", "blocked", "--rule", "banned");
    return r.stdout.split("\n").find((l) => l.includes('"feed"'));
  });
  assert.deepEqual((JSON.parse(event) as { feed?: unknown }).feed, {
    name: "banned",
    kind: "dynamic",
  });

  await until("the entry to expire", () => (web() ? true : undefined));
  assert.deepEqual(sets(lab).find((s) => s.name === "banned")?.entries, []);

  assert.equal(moat(lab, "set", "add", "banned", `${lab.v4.a}/32`).code, 0);
  assert.equal(web(), false);
  await lab.restart("SIGTERM");
  assert.equal(web(), false, "still banned after a restart");
  const removed = moat(lab, "set", "del", "banned", `${lab.v4.a}/32`);
  assert.equal(removed.code, 0, removed.stderr);
  assert.equal(web(), true, "let through at once");

  const bad = moat(lab, "set", "add", "banned", "not-an-address!");
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^moat: 'not-an-address!'/m);
  const unknown = moat(lab, "set", "add", "nope", lab.v4.a);
  assert.match(unknown.stderr, /the running policy has no set 'nope'/);
});

/** A feed of `n` documentation-range /32s plus `extra`. */
function feedText(version: number, extra: string[]): string {
  const lines = [`# feed version ${version}`];
  for (let i = 0; i < 20_000; i++)
    lines.push(`198.${18 + (i >> 16)}.${(i >> 8) & 255}.${(i + version) & 255}`);
  return [...lines, ...extra].join("\n") + "\n";
}

test("a URL feed changed while probes run: no probe misjudged during the swaps; 304 when unchanged", async (t) => {
  stateDir(t);
  const files = mkdtempSync(join(tmpdir(), "moat-feed-"));
  t.after(() => rmSync(files, { recursive: true, force: true }));
  const feedFile = join(files, "feed.txt");
  const port = 18_000 + Math.floor(Math.random() * 2000);
  let server: ReturnType<typeof spawnLines> | undefined;
  const lab = await startMoatLab(
    t.name,
    setBlockPolicy(
      "ioc",
      `{ url: "http://127.0.0.1:${port}/feed.txt", interval: 1s, category: botnet, confidence: 90 }`,
    ),
    undefined,
    {
      beforeDaemon: async (l) => {
        writeFileSync(feedFile, feedText(0, [l.v6.a]));
        server = spawnLines("ip", [
          "netns",
          "exec",
          l.b,
          NODE,
          "--disable-warning=ExperimentalWarning",
          `${ROOT}test/helpers/feed-server.ts`,
          feedFile,
          String(port),
        ]);
        await server.waitFor(/^listening$/);
      },
    },
  );
  t.after(async () => {
    await lab.close();
    server?.kill();
  });
  const feed = () => sets(lab).find((s) => s.name === "ioc");
  await until("the first fetch applied", () => ((feed()?.count ?? 0) > 20_000 ? true : undefined));
  await server?.waitFor(/^GET 304$/, 10_000);

  // probes from a: v4 is never in the feed (allowed), v6 always is (blocked)
  const probes = spawnLines("ip", [
    "netns",
    "exec",
    lab.a,
    "sh",
    "-c",
    `while :; do
       curl -s -o /dev/null --max-time 1 http://${lab.v4.b}:80/ && echo v4 pass || echo v4 stopped
       curl -s -o /dev/null --max-time 0.3 "http://[${lab.v6.b}]:80/" && echo v6 pass || echo v6 stopped
     done`,
  ]);
  t.after(() => probes.kill());
  let changes = 0;
  for (let version = 1; version <= 3; version++) {
    const before = feed()?.feed?.lastChange;
    writeFileSync(feedFile, feedText(version, [lab.v6.a]));
    await until(`feed version ${version} applied`, () =>
      feed()?.feed?.lastChange !== before ? true : undefined,
    );
    changes++;
  }
  await new Promise((r) => setTimeout(r, 500));
  probes.kill();
  const v4 = probes.lines.filter((l) => l.startsWith("v4"));
  const v6 = probes.lines.filter((l) => l.startsWith("v6"));
  assert.equal(changes, 3);
  assert.ok(v4.length >= 3 && v6.length >= 3, `probes ran: ${probes.lines.length}`);
  assert.deepEqual(
    v4.filter((l) => l !== "v4 pass"),
    [],
    "no allowed probe stopped",
  );
  assert.deepEqual(
    v6.filter((l) => l !== "v6 stopped"),
    [],
    "no blocked probe passed",
  );
  const view = feed();
  assert.equal(view?.feed?.category, "botnet");
  assert.equal(view?.feed?.confidence, 90);
  assert.equal(view?.count, 20_001);
  const event = await until("a blocked probe's event", () => {
    const r = moat(lab, "events", "--json", "--type", "blocked", "--rule", "ioc");
    return r.stdout.split("\n").find((l) => l.includes('"feed"'));
  });
  assert.deepEqual((JSON.parse(event) as { feed?: unknown }).feed, {
    name: "ioc",
    kind: "feed",
    category: "botnet",
    confidence: 90,
  });
});

/** The quarantine rule's policy: the host quarantined for `timeout` once it contacts the IOC. */
const quarantinePolicy = (timeout: string) => (l: Lab & { auditPath: string }) => `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}] }
sets:
  ioc: [${l.v4.a}]
  quarantined: { dynamic: true }
rules:
  - name: ioc-contact
    direction: egress
    action: block
    layer3: { remote: [set:ioc] }
    layer4: { protocol: tcp, port: [8080] }
    quarantine: { set: quarantined, timeout: ${timeout} }
  - name: quarantined
    direction: egress
    action: block
    layer3: { local: [set:quarantined] }
`;

/** What ends the quarantine tests' lab, once the file's tests are done. */
const closing: (() => unknown)[] = [];
after(async () => {
  for (const close of closing.reverse()) await close();
});
let quarantine: Promise<MoatLab> | undefined;

/**
 * The quarantine tests' lab (one daemon for them all: each start costs a program load): its rule
 * quarantines the host (lab.b) for `timeout` when it contacts the IOC (lab.a's port 8080), its
 * other connections then blocked; `out(port)` is whether curl from it gets through, `held()` the
 * quarantine set's entries. A later test's `timeout` is applied with a reload, once the set is
 * empty.
 */
async function quarantineLab(timeout: string) {
  const fresh = !quarantine;
  quarantine ??= (async () => {
    stateDir({ after: (fn) => closing.push(fn) });
    const lab = await startMoatLab("quarantine", quarantinePolicy(timeout));
    closing.push(() => lab.close());
    const peer = await startPeerServers(lab, ["tcp:80,8080"]);
    closing.push(() => peer.kill());
    return lab;
  })();
  const lab = await quarantine;
  const held = () =>
    sets(lab)
      .find((s) => s.name === "quarantined")
      ?.entries?.map((e) => e.entry);
  if (!fresh) {
    await until("no host quarantined when the test begins", () =>
      held()?.length === 0 ? true : undefined,
    );
    const next = Math.max(...appliedGenerations(lab)) + 1;
    lab.writePolicy(quarantinePolicy(timeout)({ ...lab, auditPath: lab.auditPath }));
    await lab.daemon.waitFor(new RegExp(` applied: generation ${next},`));
  }
  const out = (port: number) =>
    spawnSync(
      "ip",
      ["netns", "exec", lab.b, "curl", "-s", "-o", "/dev/null", "--max-time", "1"].concat(
        `http://${lab.v4.a}:${port}/`,
      ),
      { timeout: 10_000 },
    ).status === 0;
  const quarantined = () =>
    lab.daemon.waitFor(/^quarantine: \S+ in set quarantined until \S+ \(rule ioc-contact/);
  return { lab, out, held, quarantined };
}

test("quarantine: a host that contacted an IOC gets the stricter rules of the set until it expires", async () => {
  const { lab, out, held, quarantined } = await quarantineLab("6s");
  assert.equal(out(80), true, "not quarantined yet");
  assert.equal(out(8080), false, "the IOC contact is blocked");
  await quarantined();
  // the set first: on a busy machine the curl below can take a good part of the quarantine
  assert.deepEqual(held(), [lab.v4.b]);
  assert.equal(out(80), false, "quarantined: its other connections are blocked");
  await until("the quarantine to end", () => (out(80) ? true : undefined));
});

test("quarantine: lifted early with moat set del, the host's next IOC contact quarantines it again", async () => {
  const { lab, out, held, quarantined } = await quarantineLab("1h");
  assert.equal(out(8080), false, "the IOC contact is blocked");
  await quarantined();
  assert.deepEqual(held(), [lab.v4.b]);
  assert.equal(moat(lab, "set", "del", "quarantined", lab.v4.b).code, 0);
  assert.deepEqual(held(), [], "lifted");
  assert.equal(out(80), true, "lifted: its other connections pass");
  assert.equal(out(8080), false, "the IOC contact again");
  await quarantined();
  assert.deepEqual(held(), [lab.v4.b], "quarantined again");
  assert.equal(out(80), false, "quarantined again: its other connections are blocked");
});
