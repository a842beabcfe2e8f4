// Decide later, end to end: in prevent mode with `review: { silent_block: true }`, a connection
// no rule names is blocked and waits in the review queue; `moat review allow` (the real CLI)
// turns it into a local decision, kept by moat (not in the policy file), and the next connection
// passes; when the decision's short lifetime runs out, the TCP session it let through (a held
// client) is reset, and a new connection is blocked again.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import { spawnLines } from "../helpers/child.ts";
import { MOAT, NODE } from "../helpers/paths.ts";
import type { ReviewView } from "../../src/api/index.ts";
import type { LocalDecision } from "../../src/config/index.ts";
import { until } from "../helpers/until.ts";

function moat(lab: MoatLab, ...args: string[]) {
  const r = spawnSync(MOAT, [...args, "--api", `unix:${lab.apiSocket}`], {
    encoding: "utf8",
    timeout: 20_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const HELD_CLIENT = `
const socket = require("node:net").connect(8080, process.argv[1]);
socket.on("connect", () => console.log("connected"));
socket.on("error", (err) => console.log("error " + err.code));
socket.on("close", () => console.log("closed"));
`;

const reaches = (lab: MoatLab) =>
  lab.curl(`http://${lab.v4.b}:8080/`, ["--max-time", "2"]).status === 0;

test("review queue -> local decision -> its expiry cuts the live connection", async (t) => {
  const lab = await startMoatLab(
    t.name,
    (l) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${l.ifB}] }
logging: { audit: { path: ${l.auditPath} } }
review: { silent_block: true }
rules:
  - name: ssh
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [22] }
`,
  );
  t.after(() => lab.close());
  const policyText = readFileSync(lab.policyPath, "utf8");

  assert.equal(reaches(lab), false, "an unknown connection is blocked");
  const entry = await until(
    "the review queue entry",
    () => {
      const r = moat(lab, "review", "list", "--json");
      const view = JSON.parse(r.stdout || "{}") as ReviewView;
      return view.entries?.find((e) => e.remote.ip === lab.v4.a && e.port === 8080);
    },
    15_000,
  );
  assert.equal(entry.direction, "ingress");
  assert.equal(entry.verdict, "blocked");
  const listed = moat(lab, "review", "list");
  assert.match(
    listed.stdout,
    new RegExp(`^${entry.id}  blocked ingress tcp ${lab.v4.a}:8080`, "m"),
  );

  const allowed = moat(lab, "review", "allow", entry.id, "--lifetime", "8s", "--json");
  assert.equal(allowed.code, 0, allowed.stderr);
  const made = JSON.parse(allowed.stdout) as { ok: true; decision: LocalDecision };
  assert.equal(made.decision.remote, lab.v4.a);
  assert.equal(made.decision.review, entry.id);
  assert.equal(reaches(lab), true, "the next connection passes by the decision");
  const decisions = moat(lab, "decisions");
  assert.match(
    decisions.stdout,
    new RegExp(`^decision:${made.decision.id}  allow ingress tcp ${lab.v4.a} port 8080`, "m"),
  );
  assert.equal(readFileSync(lab.policyPath, "utf8"), policyText, "the policy file is untouched");
  const stored = JSON.parse(readFileSync(join(lab.dir, "decisions.json"), "utf8")) as {
    decisions: LocalDecision[];
  };
  assert.deepEqual(
    stored.decisions.map((d) => d.id),
    [made.decision.id],
  );
  assert.equal(
    (JSON.parse(moat(lab, "review", "list", "--json").stdout) as ReviewView).entries.length,
    0,
    "the answered entry left the queue",
  );

  // a held session through the decision: a TCP client connected, sending nothing, that prints
  // how its connection ends
  const client = spawnLines("ip", ["netns", "exec", lab.a, NODE, "-e", HELD_CLIENT, lab.v4.b]);
  t.after(() => client.kill());
  await client.waitFor(/^connected$/);
  await until(
    "the decision to expire",
    () =>
      /decision \S+ expired: 1 connection\(s\) it allowed cut/.test(lab.daemon.lines.join("\n"))
        ? true
        : undefined,
    20_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; the daemon said:\n${lab.daemon.lines.slice(-15).join("\n")}`);
  });
  assert.equal(await client.waitFor(/^error|^closed/, 5_000), "error ECONNRESET");
  // the cut comes just before the policy without the decision goes in; once it is in, a new
  // connection is judged without it
  await lab.daemon.waitFor(
    new RegExp(`^DECISIONS decision ${made.decision.id} expired: generation`),
  );
  assert.equal(
    reaches(lab),
    false,
    `blocked again once the decision expired:\n${lab.daemon.lines.slice(-8).join("\n")}`,
  );
  assert.match(moat(lab, "decisions").stdout, /^no local decisions$/m);
  await lab.auditHas(new RegExp(`DECISIONS decision ${made.decision.id} expired`));
});
