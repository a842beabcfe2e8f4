// A URL feed whose stored list went missing (or cannot be read) while its validators stayed: the
// next fetch asks for the whole list (no If-None-Match / If-Modified-Since), so a server that
// answers 304 to the old validators does not leave the set empty for good.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { IncomingHttpHeaders } from "node:http";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { feedModel, feedServer, watchFeeds } from "../helpers/feed-fetching.ts";
import { until } from "../helpers/until.ts";

test("a feed whose stored list is gone is fetched whole, though its server would answer 304", async (t) => {
  const seen: IncomingHttpHeaders[] = [];
  const { dir, base } = await feedServer(t, (req, res) => {
    seen.push(req.headers);
    if (req.headers["if-none-match"] === '"v1"') res.writeHead(304, { etag: '"v1"' }).end();
    else res.writeHead(200, { etag: '"v1"' }).end("203.0.113.9\n");
  });
  const url = `${base}/feed.txt`;
  // what a daemon left: the validators of its last fetch, its list (ioc.feed) deleted since
  writeFileSync(
    join(dir, "ioc.feed-meta"),
    JSON.stringify({ url, etag: '"v1"', lastChange: "2026-12-01T00:00:00.000Z" }),
  );
  const model = feedModel(url, { intervalSeconds: 3600 });
  const { feeds, refreshes } = watchFeeds(t, dir, () => model);
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
