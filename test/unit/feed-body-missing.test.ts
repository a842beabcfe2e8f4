// A URL feed whose stored list went missing (or cannot be read) while its validators stayed: the
// next fetch asks for the whole list (no If-None-Match / If-Modified-Since), so a server that
// answers 304 to the old validators does not leave the set empty for good.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders } from "node:http";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { startFeeds } from "../../src/daemon/feed-fetch.ts";
import type { PolicyModel } from "../../src/config/index.ts";
import { until } from "../helpers/until.ts";

test("a feed whose stored list is gone is fetched whole, though its server would answer 304", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), `moat-feed-gone-${process.pid}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const seen: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers);
    if (req.headers["if-none-match"] === '"v1"') res.writeHead(304, { etag: '"v1"' }).end();
    else res.writeHead(200, { etag: '"v1"' }).end("203.0.113.9\n");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/feed.txt`;
  // what a daemon left: the validators of its last fetch, its list (ioc.feed) deleted since
  writeFileSync(
    join(dir, "ioc.feed-meta"),
    JSON.stringify({ url, etag: '"v1"', lastChange: "2026-12-01T00:00:00.000Z" }),
  );
  const refreshes: string[] = [];
  const model = {
    sets: new Map([
      [
        "ioc",
        {
          name: "ioc",
          kind: "empty",
          entries: [],
          pos: { file: "p", line: 1, col: 1, path: "sets.ioc" },
          origin: { kind: "feed", url, intervalSeconds: 3600, maxBytes: 1000, format: "plain" },
        },
      ],
    ]),
  } as unknown as PolicyModel;
  const feeds = startFeeds({
    dir,
    model: () => model,
    refresh: (reason) => {
      refreshes.push(reason);
      return Promise.resolve();
    },
    log: () => {},
  });
  t.after(() => feeds.close());
  await until("the first fetch's result", () => feeds.status("ioc")?.lastResult, 10_000, 20);
  assert.equal(seen[0]?.["if-none-match"], undefined, "no list stored: the fetch is unconditional");
  assert.equal(feeds.status("ioc")?.lastResult, "200");
  assert.equal(
    readFileSync(join(dir, "ioc.feed"), "utf8"),
    "203.0.113.9\n",
    "the list stored again",
  );
  assert.deepEqual(refreshes, ["feed ioc updated"]);
});
