// A URL feed whose server sends no ETag and no Last-Modified answers every fetch with the whole
// body: the same body fetched again compiles nothing (the first one is applied, once).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import { spawnLines, type LineChild } from "../helpers/child.ts";
import { MOAT, NODE } from "../helpers/paths.ts";
import { until } from "../helpers/until.ts";
import { appliedGenerations, reloadBySignal, stateDir } from "../helpers/daemon-state.ts";
import { setBlockPolicy } from "../helpers/set-block-policy.ts";
import type { SetView } from "../../src/api/index.ts";

function feedView(lab: MoatLab): SetView | undefined {
  const r = spawnSync(MOAT, ["set", "list", "--json", "--api", `unix:${lab.apiSocket}`], {
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as { sets: SetView[] }).sets.find((s) => s.name === "ioc");
}

/**
 * A feed server in namespace `ns` on 127.0.0.1:`port` that sends `body` with status 200 and no
 * validators every time, and prints "GET" a request.
 */
async function startPlainFeed(ns: string, port: number, body: string): Promise<LineChild> {
  const script = `
const { createServer } = require("node:http");
createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/plain" }).end(${JSON.stringify(body)});
  console.log("GET");
}).listen(${port}, "127.0.0.1", () => console.log("listening"));
`;
  const server = spawnLines("ip", ["netns", "exec", ns, NODE, "-e", script]);
  await server.waitFor(/^listening$/);
  return server;
}

test("a feed served again without validators, unchanged, is applied once", async (t) => {
  stateDir(t);
  const port = 18_000 + Math.floor(Math.random() * 2000);
  let server: LineChild | undefined;
  t.after(() => server?.kill());
  const lab = await startMoatLab(
    t.name,
    setBlockPolicy("ioc", `{ url: "http://127.0.0.1:${port}/feed.txt", interval: 1s }`),
    undefined,
    {
      beforeDaemon: async (l) => {
        server = await startPlainFeed(l.b, port, `# iocs\n${l.v4.a}\n198.51.100.7\n`);
      },
    },
  );
  t.after(() => lab.close());
  const first = await until("the first fetch applied", () => {
    const view = feedView(lab);
    return view?.count === 2 ? view.feed?.lastChange : undefined;
  });
  assert.equal(lab.curl(`http://${lab.v4.b}:80/`, ["--max-time", "1"]).status, 28, "blocked");
  // three more fetches, each the whole body again
  const fetches = server!.lines.filter((l) => l === "GET").length;
  await until("three more fetches", () =>
    server!.lines.filter((l) => l === "GET").length >= fetches + 3 ? true : undefined,
  );

  // a reload, queued behind any compile the fetches asked for
  await reloadBySignal(lab);
  assert.deepEqual(
    appliedGenerations(lab),
    [1, 2, 3],
    `the start's policy, the first fetch's, then the reload's:\n${lab.daemon.lines.join("\n")}`,
  );
  assert.equal(feedView(lab)?.feed?.lastChange, first, "the list last changed at the first fetch");
  // no fetch failed: `moat status` names the feed, good
  const status = spawnSync(MOAT, ["status", "--api", `unix:${lab.apiSocket}`], {
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.match(status.stdout, /^feeds: ioc ok$/m, status.stdout + status.stderr);
  assert.equal(lab.curl(`http://${lab.v4.b}:80/`, ["--max-time", "1"]).status, 28, "blocked");
});
