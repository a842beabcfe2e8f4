// A start applies its policy once: what the sets' sources do right after it (expired entries of a
// dynamic set pruned, a CrowdSec bouncer's first poll) compiles and applies the policy again only
// when the set's entries in force change. A daemon started on a policy reports generation 1.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import { spawnLines } from "../helpers/child.ts";
import { MOAT, NODE } from "../helpers/paths.ts";
import { untilTrue } from "../helpers/until.ts";
import { appliedGenerations, reloadBySignal, stateDir } from "../helpers/daemon-state.ts";
import { setBlockPolicy } from "../helpers/set-block-policy.ts";

/** A state folder of this test's own, its set store holding `files` (NAME.dynamic: text). */
function stateWith(t: TestContext, files: Record<string, string>): string {
  const dir = stateDir(t);
  mkdirSync(join(dir, "sets"), { mode: 0o700 });
  for (const [name, text] of Object.entries(files))
    writeFileSync(join(dir, "sets", name), text, { mode: 0o600 });
  return dir;
}

/** An expiry (seconds since the epoch, as the store writes it) `seconds` from now. */
const expiresIn = (seconds: number) => Math.ceil(Date.now() / 1000) + seconds;

function status(lab: MoatLab): { generation: number; reloads: { ok: number } } {
  const r = spawnSync(MOAT, ["status", "--json", "--api", `unix:${lab.apiSocket}`], {
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { generation: number; reloads: { ok: number } };
}

test("a start on a dynamic set that holds an entry expired while moat was down applies once", async (t) => {
  const state = stateWith(t, {
    "banned.dynamic": `203.0.113.9 # expires ${expiresIn(-3600)}\n203.0.113.10 # expires ${expiresIn(3600)}\n`,
  });
  const lab = await startMoatLab(t.name, setBlockPolicy("banned", "{ dynamic: true }"));
  t.after(() => lab.close());
  // the daemon drops the expired entry from its store
  await untilTrue(
    "the expired entry pruned",
    () => !readFileSync(join(state, "sets", "banned.dynamic"), "utf8").includes("203.0.113.9 "),
    20_000,
    100,
  );
  // a reload, queued behind any change the pruning asked for: the generation after the start's
  const reload = await reloadBySignal(lab);
  assert.equal(reload, 2, `the start's policy, then the reload's:\n${lab.daemon.lines.join("\n")}`);
  assert.deepEqual(appliedGenerations(lab), [1, 2]);
  const s = status(lab);
  assert.equal(s.generation, 2);
  assert.equal(s.reloads.ok, 1, "one change after the start: the reload");
});

/** The stand-in's port: the daemon's namespace is new, so any port is free there. */
const LAPI_PORT = 18_080;

/**
 * A stand-in for CrowdSec's local API in namespace `ns` (the daemon's): the startup poll of the
 * decision stream is answered with a ban on `ip`, the later ones with no change.
 */
async function startDecisionStream(ns: string, ip: string): Promise<() => void> {
  const script = `
const { createServer } = require("node:http");
const server = createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (url.pathname !== "/v1/decisions/stream") return void res.writeHead(404).end();
  const startup = url.searchParams.get("startup") === "true";
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify(startup
    ? { new: [{ value: ${JSON.stringify(ip)}, scope: "Ip", type: "ban", duration: "1h" }], deleted: [] }
    : { new: null, deleted: null }));
});
server.listen(${LAPI_PORT}, "127.0.0.1", () => console.log("listening"));
`;
  const server = spawnLines("ip", ["netns", "exec", ns, NODE, "-e", script]);
  await server.waitFor(/^listening$/);
  return () => server.kill();
}

test("a CrowdSec bouncer's first poll that brings the bans the set holds applies nothing more", async (t) => {
  // what the set held when the daemon before this one stopped
  stateWith(t, { "cs.dynamic": `203.0.113.9 # expires ${expiresIn(3600)}\n` });
  const keyDir = mkdtempSync(join(tmpdir(), "moat-cs-key-"));
  t.after(() => rmSync(keyDir, { recursive: true, force: true }));
  const keyFile = join(keyDir, "key");
  writeFileSync(keyFile, "s3cret\n", { mode: 0o600 });
  let stopStream = () => {};
  t.after(() => stopStream());
  const lab = await startMoatLab(
    t.name,
    setBlockPolicy(
      "cs",
      `{ dynamic: true, crowdsec: { url: "http://127.0.0.1:${LAPI_PORT}", key_file: ${keyFile}, interval: 1h } }`,
      "crowdsec-bans",
    ),
    undefined,
    {
      beforeDaemon: async (l) => {
        stopStream = await startDecisionStream(l.b, "203.0.113.9");
      },
    },
  );
  t.after(() => lab.close());
  // logged once the poll's change, and any apply it asked for, is done
  await lab.daemon.waitFor(/^crowdsec: set cs: \+1 -0 decisions, 1 entries$/, 30_000);
  assert.deepEqual(
    appliedGenerations(lab),
    [1],
    `the start's policy alone:\n${lab.daemon.lines.join("\n")}`,
  );
  assert.equal(status(lab).generation, 1);
});
