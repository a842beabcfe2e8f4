// A daemon told to stop while a URL feed's fetch or a CrowdSec poll hangs (a server that takes
// the connection and never answers) ends them and exits, well inside a service manager's stop
// timeout, not once the fetch's own timeout (60 s, 30 s) has passed.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import { spawnLines, type LineChild } from "../helpers/child.ts";
import { NODE } from "../helpers/paths.ts";
import { stateDir } from "../helpers/daemon-state.ts";
import { setBlockPolicy } from "../helpers/set-block-policy.ts";

/** Far below the fetch timeouts; far above what a stop takes. */
const EXIT_CAP_MS = 10_000;

/** A server in namespace `ns` on 127.0.0.1:`port` that takes connections and never answers. */
async function startSilentServer(ns: string, port: number): Promise<LineChild> {
  const script = `
const { createServer } = require("node:net");
const held = [];
createServer((socket) => {
  held.push(socket);
  console.log("connection");
}).listen(${port}, "127.0.0.1", () => console.log("listening"));
`;
  const server = spawnLines("ip", ["netns", "exec", ns, NODE, "-e", script]);
  await server.waitFor(/^listening$/);
  return server;
}

/**
 * A daemon whose set `name` (declared with `declaration(port)`) is fetched from a server that
 * never answers; resolves once a fetch hangs.
 */
async function daemonWithHangingFetch(
  t: TestContext,
  name: string,
  declaration: (port: number) => string,
): Promise<MoatLab> {
  stateDir(t);
  const port = 18_000 + Math.floor(Math.random() * 2000);
  let server: LineChild | undefined;
  t.after(() => server?.kill());
  const lab = await startMoatLab(t.name, setBlockPolicy(name, declaration(port)), undefined, {
    beforeDaemon: async (l) => {
      server = await startSilentServer(l.b, port);
    },
  });
  t.after(() => lab.close());
  await server!.waitFor(/^connection$/, 30_000);
  return lab;
}

/** Stops the daemon with SIGTERM: how it ended, or "still running" past EXIT_CAP_MS. */
async function stopDaemon(lab: MoatLab): Promise<number | string> {
  lab.daemon.kill("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const cap = new Promise<string>(
    (r) => (timer = setTimeout(() => r("still running"), EXIT_CAP_MS)),
  );
  const how = await Promise.race([lab.daemon.exited, cap]);
  clearTimeout(timer);
  return how;
}

test("a daemon stopped while a feed's fetch hangs exits", async (t) => {
  const lab = await daemonWithHangingFetch(
    t,
    "ioc",
    (port) => `{ url: "http://127.0.0.1:${port}/feed.txt", interval: 1h }`,
  );
  const how = await stopDaemon(lab);
  assert.equal(how, 0, `the daemon's output:\n${lab.daemon.lines.join("\n")}`);
  assert.ok(!lab.daemon.lines.some((l) => l.startsWith("feed ioc: fetching")), "no failure said");
});

test("a daemon stopped while a CrowdSec poll hangs exits", async (t) => {
  const keys = mkdtempSync(join(tmpdir(), `moat-cs-key-${process.pid}-`));
  t.after(() => rmSync(keys, { recursive: true, force: true }));
  const keyFile = join(keys, "bouncer.key");
  writeFileSync(keyFile, "a-bouncer-key", { mode: 0o600 });
  const lab = await daemonWithHangingFetch(
    t,
    "cs",
    (port) =>
      `{ dynamic: true, crowdsec: { url: "http://127.0.0.1:${port}", key_file: ${keyFile}, interval: 10s } }`,
  );
  const how = await stopDaemon(lab);
  assert.equal(how, 0, `the daemon's output:\n${lab.daemon.lines.join("\n")}`);
  assert.ok(
    !lab.daemon.lines.some((l) => l.startsWith("crowdsec: set cs: polling")),
    "no failure said",
  );
});
