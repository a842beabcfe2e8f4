// The daemon's feed fetcher against a local HTTP server: a 200 is kept in the set store and
// re-applied, the next fetch sends If-None-Match / If-Modified-Since and a 304 changes nothing, a
// failure (an HTTP error, a body over max_bytes) keeps the last good content and is reported:
// logged, counted (status, metrics), a notice when the failures start and one when they end. A
// list with no entry that says so (a CSV header alone, a STIX bundle with no objects) is taken.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { IncomingHttpHeaders, ServerResponse } from "node:http";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { feedAddresses } from "../../src/config/feed-parse.ts";
import { MAX_FILE_BYTES } from "../../src/host/policy-files.ts";
import { feedModel, feedServer, watchFeeds } from "../helpers/feed-fetching.ts";
import { untilTrue } from "../helpers/until.ts";
import { snapshotSource } from "../../src/observe/snapshot.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { formatStatus } from "../../src/cli/commands/status.ts";
import { prometheusText } from "../../src/api/metrics.ts";
import { formatNoticeLine } from "../../src/observe/notice.ts";
import { fakeDatapath, state, statusJson } from "../helpers/status-snapshot.ts";

test("feed fetches: 200 kept, 304 honoured, failures keep the last good content", async (t) => {
  const seen: IncomingHttpHeaders[] = [];
  // what the server answers, request by request (then 304: the stored list is current)
  const plan: ((res: ServerResponse) => void)[] = [
    (res) =>
      res
        .writeHead(200, { etag: '"v1"', "last-modified": "Wed, 02 Dec 2026 10:00:00 GMT" })
        .end("203.0.113.9\n"),
    (res) => res.writeHead(304, { etag: '"v1"' }).end(),
    (res) => res.writeHead(500).end("oops"),
    (res) => res.writeHead(200, { etag: '"v2"' }).end("x".repeat(200)),
  ];
  const { dir, base } = await feedServer(t, (req, res) => {
    seen.push(req.headers);
    const answer = plan[seen.length - 1];
    if (answer) answer(res);
    else res.writeHead(304).end();
  });
  const url = `${base}/feed.txt`;
  const model = feedModel(url, { maxBytes: 100 });
  const { feeds, refreshes, logs, notices } = watchFeeds(t, dir, () => model);
  await untilTrue("the fourth fetch's result", () => seen.length >= 4 && logs.length >= 2, 15_000);

  assert.equal(seen[0]?.["if-none-match"], undefined, "the first fetch is unconditional");
  assert.equal(seen[1]?.["if-none-match"], '"v1"');
  assert.equal(seen[1]?.["if-modified-since"], "Wed, 02 Dec 2026 10:00:00 GMT");
  assert.deepEqual(refreshes, ["feed ioc updated"], "only the 200 re-applies");
  assert.equal(readFileSync(join(dir, "ioc.feed"), "utf8"), "203.0.113.9\n", "last good content");
  assert.equal(logs.length, 2, logs.join("\n"));
  assert.equal(logs[0], `feed ioc: fetching ${url} failed (HTTP 500); the last good content stays`);
  // no Content-Length here: the body is cut while it streams in
  assert.equal(
    logs[1],
    `feed ioc: fetching ${url} failed (the body is over max_bytes 100); the last good content stays`,
  );
  const failing = feeds.status("ioc");
  assert.match(failing?.lastResult ?? "", /^failed: the body/);
  assert.ok(failing?.lastChange, "when the content last changed");
  // a user sees the feed going stale: how often, since when, and why, beside the last result
  assert.equal(failing?.failures, 2);
  assert.equal(failing?.lastError, "the body is over max_bytes 100");
  assert.ok(
    failing?.failingSince && failing.lastErrorAt && failing.failingSince <= failing.lastErrorAt,
  );
  const snapshot = snapshotSource(
    fakeDatapath(),
    { ...state, feeds: () => feeds.stats() },
    new EventPipeline(),
  );
  const shown = formatStatus(statusJson(snapshot()));
  assert.ok(
    shown.includes(
      `feeds: ioc failing since ${failing.failingSince} (2 failed fetches, the last at ${failing.lastErrorAt}: the body is over max_bytes 100)`,
    ),
    shown.join("\n"),
  );
  assert.match(
    prometheusText(snapshot(), { requests: 0, unauthorized: 0 }),
    /^moat_feed_fetch_failures_total\{feed="ioc"\} 2$/m,
  );
  // one notice when it starts failing, none for the failures after
  assert.deepEqual(
    notices.map(({ time: _, ...n }) => n),
    [{ type: "feed_failing", feed: "ioc", error: "HTTP 500", failures: 1 }],
  );

  // the next fetch (a 304: the list kept is the server's): one notice that it recovered
  await untilTrue("the recovery", () => notices.length >= 2, 15_000);
  assert.deepEqual(
    notices.map(({ time: _, ...n }) => n),
    [
      { type: "feed_failing", feed: "ioc", error: "HTTP 500", failures: 1 },
      { type: "feed_recovered", feed: "ioc", failures: 2 },
    ],
  );
  // as the daemon's output and the audit log write them
  assert.deepEqual(notices.map(formatNoticeLine), [
    "NOTICE feed ioc: fetching failed (HTTP 500); its last good list stays in force",
    "NOTICE feed ioc: fetched again (2 failed fetches since the start)",
  ]);
  const recovered = feeds.status("ioc");
  assert.equal(recovered?.lastResult, "304 not modified");
  assert.equal(recovered?.failingSince, undefined);
  assert.equal(recovered?.failures, 2, "failures are counted since the daemon started");
  assert.equal(recovered?.lastError, "the body is over max_bytes 100", "the last error stays");
  assert.ok(
    formatStatus(statusJson(snapshot())).includes(
      `feeds: ioc ok (2 failed fetches, the last at ${failing.lastErrorAt}: the body is over max_bytes 100)`,
    ),
  );
});

test("a fetch still running when the feed's URL changes does not overwrite the new URL's list", async (t) => {
  const { dir, base } = await feedServer(t, (req, res) => {
    // the old URL answers late, after the new one
    if (req.url === "/old") setTimeout(() => res.writeHead(200).end("198.51.100.1\n"), 600);
    else res.writeHead(200).end("203.0.113.9\n");
  });
  let model = feedModel(`${base}/old`);
  const { feeds, refreshes } = watchFeeds(t, dir, () => model);
  await new Promise((r) => setTimeout(r, 100));
  model = feedModel(`${base}/new`);
  feeds.applied();
  await new Promise((r) => setTimeout(r, 900));
  assert.equal(readFileSync(join(dir, "ioc.feed"), "utf8"), "203.0.113.9\n");
  assert.equal(
    (JSON.parse(readFileSync(join(dir, "ioc.feed-meta"), "utf8")) as { url: string }).url,
    `${base}/new`,
  );
  assert.deepEqual(refreshes, ["feed ioc updated"]);
});

test("a new list the policy cannot take is stored, and its status and log say it is not in force", async (t) => {
  const { dir, base } = await feedServer(t, (_req, res) => res.writeHead(200).end("203.0.113.9\n"));
  const url = `${base}/feed.txt`;
  const { feeds, logs } = watchFeeds(
    t,
    dir,
    () => feedModel(url),
    () =>
      Promise.reject(new Error("the policy could not be compiled again: corp.txt:1:1: bad entry")),
  );
  const end = Date.now() + 5000;
  while (logs.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  assert.equal(
    logs[0],
    "feed ioc: the new list is stored but not in force: the policy could not be compiled again: corp.txt:1:1: bad entry",
  );
  assert.equal(
    feeds.status("ioc")?.lastResult,
    "200, not in force: the policy could not be compiled again: corp.txt:1:1: bad entry",
  );
  assert.equal(readFileSync(join(dir, "ioc.feed"), "utf8"), "203.0.113.9\n");
});

test("a 200 whose body has no address to take (an error page) keeps the last good list", async (t) => {
  const bodies = [
    "203.0.113.9\n",
    "<html>\n<body>quota exceeded</body>\n</html>\n",
    "# none today\n",
  ];
  let served = 0;
  const { dir, base } = await feedServer(t, (_req, res) =>
    res.writeHead(200).end(bodies[served++] ?? ""),
  );
  const url = `${base}/feed.txt`;
  const { logs } = watchFeeds(t, dir, () => feedModel(url));
  const end = Date.now() + 5000;
  while (served < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(logs, [
    `feed ioc: fetching ${url} failed (no entry of the body could be taken: 3 not an address, CIDR or range); the last good content stays`,
  ]);
  assert.equal(readFileSync(join(dir, "ioc.feed"), "utf8"), "203.0.113.9\n");
  // a list that is empty now (no line refused) is taken: the feed has nothing today
  while (served < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(readFileSync(join(dir, "ioc.feed"), "utf8"), "# none today\n");
});

test("a CSV feed down to its header empties the set; a one-word page does not", async (t) => {
  const bodies = ["ip,score\n203.0.113.9,90\n", '"ip","score"\r\n', "Forbidden\n"];
  let served = 0;
  const { dir, base } = await feedServer(t, (_req, res) =>
    res.writeHead(200).end(bodies[served++] ?? bodies[2]),
  );
  const model = feedModel(`${base}/feed.csv`);
  const origin = model.sets.get("ioc")?.origin;
  if (origin) Object.assign(origin, { format: "csv" });
  const { refreshes, logs } = watchFeeds(t, dir, () => model);
  await untilTrue("three fetches", () => served >= 3 && logs.length > 0, 10_000);
  // a header alone is a well-formed list with no entry: nothing is listed now
  assert.deepEqual(refreshes, ["feed ioc updated", "feed ioc updated"]);
  assert.equal(readFileSync(join(dir, "ioc.feed"), "utf8"), bodies[1]);
  assert.deepEqual(feedAddresses(bodies[1] ?? "", "csv"), {
    entries: [],
    refused: new Map(),
    notInForce: new Map(),
  });
  // one cell that is no address may be an error page: the list before stays
  assert.match(logs[0] ?? "", /failed \(no entry of the body could be taken: 1 not an address/);
});

test("a STIX bundle with no objects is a list with no entry; JSON that is no bundle is refused", () => {
  const empty = feedAddresses(JSON.stringify({ type: "bundle", id: "bundle--1" }), "stix");
  assert.deepEqual([empty.entries, empty.refused], [[], new Map()]);
  const other = feedAddresses(JSON.stringify({ error: "quota" }), "stix");
  assert.deepEqual([...other.refused], [["not a STIX bundle (no objects)", 1]]);
});

test("a body bigger than the loader reads is a failed fetch, whatever max_bytes says", async (t) => {
  const limit = MAX_FILE_BYTES.set;
  const { dir, base } = await feedServer(t, (_req, res) =>
    res.writeHead(200, { "content-length": String(limit + 1) }).end("#".repeat(limit + 1)),
  );
  const url = `${base}/feed.txt`;
  const { logs } = watchFeeds(t, dir, () => feedModel(url, { maxBytes: 2 * limit }));
  const end = Date.now() + 10_000;
  while (logs.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  assert.equal(
    logs[0],
    `feed ioc: fetching ${url} failed (the body (${limit + 1} bytes) is over max_bytes ${limit}); the last good content stays`,
  );
  assert.equal(existsSync(join(dir, "ioc.feed")), false);
});

test("a STIX feed is read again when an indicator it took passes its valid_until", async (t) => {
  const soon = new Date(Date.now() + 1500).toISOString();
  const bundle = JSON.stringify({
    objects: [
      { type: "indicator", pattern: "[ipv4-addr:value = '203.0.113.9']", valid_until: soon },
      { type: "indicator", pattern: "[ipv4-addr:value = '198.51.100.7']" },
    ],
  });
  const { dir, base } = await feedServer(t, (_req, res) => res.writeHead(200).end(bundle));
  const model = feedModel(`${base}/feed.json`);
  const origin = model.sets.get("ioc")?.origin;
  if (origin) Object.assign(origin, { format: "stix", intervalSeconds: 3600 });
  const { refreshes } = watchFeeds(t, dir, () => model);
  const end = Date.now() + 5000;
  while (refreshes.length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(refreshes, [
    "feed ioc updated",
    "feed ioc: an indicator's validity began or ended",
  ]);
});

test("a STIX body whose indicators are all revoked or expired is a good body: the set empties", async (t) => {
  const bodies = [
    JSON.stringify({
      objects: [{ type: "indicator", pattern: "[ipv4-addr:value = '203.0.113.9']" }],
    }),
    JSON.stringify({
      objects: [
        { type: "indicator", pattern: "[ipv4-addr:value = '203.0.113.9']", revoked: true },
        {
          type: "indicator",
          pattern: "[ipv4-addr:value = '198.51.100.7']",
          valid_until: "2001-01-01T00:00:00Z",
        },
      ],
    }),
  ];
  let served = 0;
  const { dir, base } = await feedServer(t, (_req, res) =>
    res.writeHead(200).end(bodies[Math.min(served++, 1)]),
  );
  const model = feedModel(`${base}/feed.json`);
  const origin = model.sets.get("ioc")?.origin;
  if (origin) Object.assign(origin, { format: "stix" });
  const { feeds, refreshes, logs } = watchFeeds(t, dir, () => model);
  const end = Date.now() + 5000;
  while (refreshes.length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(logs, []);
  assert.deepEqual(refreshes, ["feed ioc updated", "feed ioc updated"]);
  assert.equal(readFileSync(join(dir, "ioc.feed"), "utf8"), bodies[1]);
  assert.match(feeds.status("ioc")?.lastResult ?? "", /^200/);
});

test("a STIX indicator not yet valid is put in force at its valid_from, with no new body", async (t) => {
  const from = new Date(Date.now() + 1500).toISOString();
  const bundle = JSON.stringify({
    objects: [
      { type: "indicator", pattern: "[ipv4-addr:value = '203.0.113.9']", valid_from: from },
    ],
  });
  const { dir, base } = await feedServer(t, (_req, res) => res.writeHead(200).end(bundle));
  const model = feedModel(`${base}/feed.json`);
  const origin = model.sets.get("ioc")?.origin;
  if (origin) Object.assign(origin, { format: "stix", intervalSeconds: 3600 });
  const { refreshes, logs } = watchFeeds(t, dir, () => model);
  const end = Date.now() + 5000;
  while (refreshes.length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(logs, []);
  assert.equal(refreshes.length, 2, "stored, then compiled again at valid_from");
  const stored = feedAddresses(readFileSync(join(dir, "ioc.feed"), "utf8"), "stix");
  assert.deepEqual(
    stored.entries.map((e) => e.value),
    ["203.0.113.9"],
  );
});
