// A local allow decision's expiry, end to end, with a held TCP session from moat's host (b) to an
// echo server on the peer (a): the policy without the decision decides what becomes of it. A
// detect-mode policy that would block it only reports it: the session goes on, reported
// `detected` once; a prevent-mode one cuts it (the client gets ECONNABORTED), reported blocked;
// a policy that allows it leaves it alone, unreported.
//
// Run time: about 35 s on 2 cores (the daemon's start, three decisions expiring, two reloads).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import { spawnLines, type LineChild } from "../helpers/child.ts";
import { MOAT, NODE } from "../helpers/paths.ts";
import { storedEvents, until } from "../helpers/stored-events.ts";
import type { Lab } from "../helpers/netns.ts";
import { reloadPolicy } from "../helpers/policy-reload.ts";

const PORT = 7777;

const ECHO_SERVER = `
const server = require("node:net").createServer((s) => { s.on("error", () => {}); s.pipe(s); });
server.listen(${PORT}, () => console.log("listening"));
`;

// a held session: each line read is sent, each echo printed; says how the connection ends
const HELD_CLIENT = `
const socket = require("node:net").connect(${PORT}, process.argv[1]);
socket.on("connect", () => console.log("connected " + socket.localPort));
socket.on("data", (d) => console.log("echo " + d.toString().trim()));
socket.on("error", (err) => console.log("error " + err.code));
socket.on("close", () => console.log("closed"));
require("node:readline").createInterface({ input: process.stdin })
  .on("line", (line) => socket.write(line + "\\n"));
`;

function policy(l: Lab & { auditPath: string }, mode: string, egress: string): string {
  return `version: 1
mode: ${mode}
defaults: { ingress: allow, egress: ${egress} }
attach: { interfaces: [${l.ifB}] }
logging: { audit: { path: ${l.auditPath} } }
`;
}

interface EventJson {
  type: string;
  verdict: string;
  rule: string;
  reason: string;
  local: { ip: string; port: number };
  remote: { ip: string; port: number };
}

function moat(lab: MoatLab, ...args: string[]) {
  const r = spawnSync(MOAT, [...args, "--api", `unix:${lab.apiSocket}`], {
    encoding: "utf8",
    timeout: 20_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Allows tcp to the peer's echo port for a few seconds; returns the decision's id. */
function allowBriefly(lab: MoatLab): string {
  const r = moat(
    lab,
    "decisions",
    "add",
    "allow",
    lab.v4.a,
    "--protocol",
    "tcp",
    "--port",
    String(PORT),
    "--lifetime",
    "6s",
    "--json",
  );
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { decision: { id: string } }).decision.id;
}

/** A held session to the echo server, its first line echoed; with its local port. */
async function heldSession(lab: MoatLab): Promise<{ client: LineChild; port: number }> {
  const client = spawnLines("ip", ["netns", "exec", lab.b, NODE, "-e", HELD_CLIENT, lab.v4.a]);
  const connected = await client.waitFor(/^connected \d+$|^error|^closed/);
  assert.match(connected, /^connected/);
  client.send("before");
  assert.equal(await client.waitFor(/^echo before$|^error|^closed/), "echo before");
  return { client, port: Number(connected.split(" ")[1]) };
}

async function expired(lab: MoatLab, id: string): Promise<void> {
  await lab.daemon.waitFor(new RegExp(`^DECISIONS decision ${id} expired: generation`), 20_000);
}

/** What the session's next line meets once the decision is gone: its echo, or its end. */
async function afterExpiry(client: LineChild, line: string): Promise<string> {
  client.send(line);
  return client.waitFor(new RegExp(`^echo ${line}$|^error|^closed`));
}

const VERDICTS = new Set(["allowed", "blocked", "detected"]);

/** The verdict events of the session from local `port` (not its close, nor flow summaries). */
const verdictsOf = (lab: MoatLab, port: number) =>
  storedEvents<EventJson>(lab).filter(
    (e) =>
      VERDICTS.has(e.type) &&
      e.local.port === port &&
      e.remote.ip === lab.v4.a &&
      e.remote.port === PORT,
  );

test("a decision's expiry: the policy without it decides its connections", async (t) => {
  const lab = await startMoatLab(t.name, (l) => policy(l, "detect", "block"), []);
  t.after(() => lab.close());
  const server = spawnLines("ip", ["netns", "exec", lab.a, NODE, "-e", ECHO_SERVER]);
  t.after(() => server.kill());
  await server.waitFor(/^listening$/);

  await t.test("detect: the session goes on, reported detected once", async (st) => {
    const id = allowBriefly(lab);
    const { client, port } = await heldSession(lab);
    st.after(() => client.kill());
    await expired(lab, id);
    assert.equal(await afterExpiry(client, "after"), "echo after");
    const detected = await until("the session's detected event", () =>
      verdictsOf(lab, port).find((e) => e.type === "detected"),
    );
    assert.equal(detected.rule, "default");
    assert.equal(detected.reason, "rejudged");
    assert.equal(await afterExpiry(client, "later"), "echo later");
    const judged = verdictsOf(lab, port);
    assert.deepEqual(
      judged.map((e) => e.type),
      ["detected"],
    );
  });

  await t.test("prevent: the session is cut, reported blocked", async (st) => {
    await reloadPolicy(lab, policy(lab, "prevent", "block"));
    const id = allowBriefly(lab);
    const { client, port } = await heldSession(lab);
    st.after(() => client.kill());
    await expired(lab, id);
    assert.equal(await client.waitFor(/^error|^closed/), "error ECONNABORTED");
    const blocked = await until("the cut session's blocked event", () =>
      verdictsOf(lab, port).find((e) => e.type === "blocked"),
    );
    assert.equal(blocked.rule, "default");
    assert.equal(blocked.reason, "rejudged");
  });

  await t.test("allowed without it: the session goes on, unreported", async (st) => {
    await reloadPolicy(lab, policy(lab, "prevent", "allow"));
    const id = allowBriefly(lab);
    const { client, port } = await heldSession(lab);
    st.after(() => client.kill());
    await expired(lab, id);
    assert.equal(await afterExpiry(client, "after"), "echo after");
    assert.equal(await afterExpiry(client, "later"), "echo later");
    assert.deepEqual(
      verdictsOf(lab, port).map((e) => e.type),
      [],
    );
  });
});
