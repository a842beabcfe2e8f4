// `moat events` time windows and negated filters on a running daemon's real events, as a user
// types them, `moat rules` counting the same connections, and `--follow --since`: the stored events since then, then the live ones, each
// printed once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import { spawnLines } from "../helpers/child.ts";
import { MOAT } from "../helpers/paths.ts";
import { storedEvents, until } from "../helpers/stored-events.ts";
import type { Lab } from "../helpers/netns.ts";

const policy = (lab: Lab & { auditPath: string }) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${lab.ifB}] }
logging: { audit: { path: ${lab.auditPath} } }
rules:
  - name: alt
    direction: ingress
    action: allow
    log: true
    layer4: { protocol: tcp, port: [8080] }
`;

interface Ev {
  type: string;
  rule: string;
  local: { port: number };
}

function events(lab: MoatLab, ...args: string[]): Ev[] {
  const r = spawnSync(MOAT, ["events", "--json", ...args, "--api", `unix:${lab.apiSocket}`], {
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Ev);
}

const ports = (list: Ev[]) => [...new Set(list.map((e) => `${e.type} ${e.local.port}`))].sort();

test("events --since/--until windows and --not filters; rules counts them", async (t) => {
  const lab = await startMoatLab(t.name, policy);
  t.after(() => lab.close());
  assert.notEqual(lab.curl(`http://${lab.v4.b}:80/`).status, 0);
  assert.equal(lab.curl(`http://${lab.v4.b}:8080/`).status, 0);
  await until("both events stored", () => {
    const seen = ports(storedEvents<Ev>(lab));
    return seen.includes("blocked 80") && seen.includes("allowed 8080") ? seen : undefined;
  });
  const types = ["--type", "allowed,blocked"];
  assert.deepEqual(ports(events(lab, ...types, "--since", "10m")), ["allowed 8080", "blocked 80"]);
  assert.deepEqual(events(lab, ...types, "--until", "1h"), [], "nothing older than an hour");
  assert.deepEqual(events(lab, ...types, "--since", "2000-01-01", "--until", "2000-01-02"), []);
  assert.deepEqual(ports(events(lab, ...types, "--not", "rule=default")), ["allowed 8080"]);
  assert.deepEqual(ports(events(lab, ...types, "--not", "type=allowed")), ["blocked 80"]);
  assert.deepEqual(
    events(lab, ...types, "--not", "type=allowed", "--not", "rule=default"),
    [],
    "each --not leaves out what it matches",
  );

  // the same connections in the per-rule counters, with each rule's verdict
  const rules = spawnSync(MOAT, ["rules", "--json", "--api", `unix:${lab.apiSocket}`], {
    encoding: "utf8",
  });
  assert.equal(rules.status, 0, rules.stderr);
  const counted = JSON.parse(rules.stdout) as {
    rules: { name: string; verdict?: string; line?: number; connections: number }[];
  };
  const alt = counted.rules.find((r) => r.name === "alt");
  const ingress = counted.rules.find((r) => r.name === "defaults.ingress");
  assert.equal(alt?.verdict, "allowed");
  assert.equal(alt.line, 7);
  assert.ok(alt.connections >= 1, JSON.stringify(alt));
  assert.equal(ingress?.verdict, "blocked");
  assert.ok(ingress.connections >= 1, JSON.stringify(ingress));
  const table = spawnSync(MOAT, ["rules", "--api", `unix:${lab.apiSocket}`], { encoding: "utf8" });
  assert.match(table.stdout, /^RULE +ACTION +VERDICT +CONNECTIONS +PACKETS +BYTES +LINE$/m);
  assert.match(table.stdout, /^alt +allow +allowed +\d+ +\d+ +\d+ +7$/m);
  assert.match(
    table.stdout,
    /^generation \d+: connections by verdict \d+ allowed, \d+ blocked, 0 detected/m,
  );

  const top = spawnSync(MOAT, ["top", "--once", "--json", "--api", `unix:${lab.apiSocket}`], {
    encoding: "utf8",
  });
  assert.equal(top.status, 0, top.stderr);
  const frame = JSON.parse(top.stdout) as { remotes: { name: string; blocked: number }[] };
  assert.ok(
    frame.remotes.some((r) => r.name === lab.v4.a && r.blocked >= 1),
    top.stdout,
  );

  const bad = spawnSync(MOAT, ["events", "--not", "colour=red", "--api", `unix:${lab.apiSocket}`], {
    encoding: "utf8",
  });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^moat: --not 'colour=red': give KEY=VALUE with KEY one of type, /);
  const when = spawnSync(
    MOAT,
    ["events", "--since", "yesterday", "--api", `unix:${lab.apiSocket}`],
    {
      encoding: "utf8",
    },
  );
  assert.equal(when.status, 2);
  assert.match(when.stderr, /--since 'yesterday' is not a time/);
});

test("events --follow --since: the stored events since then, then live ones, each once", async (t) => {
  const lab = await startMoatLab(t.name, policy);
  t.after(() => lab.close());
  assert.equal(lab.curl(`http://${lab.v4.b}:8080/`).status, 0);
  await until("the first event stored", () =>
    storedEvents<Ev>(lab).find((e) => e.type === "allowed"),
  );
  const follow = spawnLines(MOAT, [
    "events",
    "--follow",
    "--json",
    "--since",
    "10m",
    "--type",
    "allowed",
    "--api",
    `unix:${lab.apiSocket}`,
  ]);
  t.after(() => follow.kill("SIGKILL"));
  await follow.waitFor(/"port":8080/);
  await until("the subscription", () =>
    follow.stderr.some((l) => l.startsWith("following live events")) ? true : undefined,
  );
  assert.equal(lab.curl(`http://${lab.v4.b}:8080/`).status, 0);
  await until("the live event", () =>
    follow.lines.filter((l) => l.includes('"port":8080')).length >= 2 ? true : undefined,
  );
  await new Promise((r) => setTimeout(r, 1500)); // anything printed twice would be by now
  const lines = follow.lines.filter(Boolean);
  assert.equal(lines.length, 2, lines.join("\n"));
  assert.equal(new Set(lines).size, lines.length, "no event printed twice");
  const stored = storedEvents<Ev>(lab).filter((e) => e.type === "allowed");
  assert.equal(stored.length, 2, "both connections are in the history too");
});
