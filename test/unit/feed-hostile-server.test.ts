// The feed fetcher against a broken or hostile server: an empty 200 is not an empty list, a
// redirect from https to http or to anything but http(s) is refused, a redirect to an address more
// local than the feed's own (loopback, link-local, private) too, and a failure says why.
// Feed contents that would block every address are refused line by line.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:https";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import { execFileSync, spawnSync } from "node:child_process";
import { feedAddresses } from "../../src/config/feed-parse.ts";
import { feedModel, feedServer, watchFeeds } from "../helpers/feed-fetching.ts";
import { makeCertificates } from "../helpers/test-certificates.ts";

const settle = async (done: () => boolean) => {
  const end = Date.now() + 5000;
  while (!done() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 100));
};

test("a 200 with an empty body keeps the last good list: it is not a feed with no entry", async (t) => {
  const bodies = ["203.0.113.9\n", "", " \r\n\n"];
  let served = 0;
  const { dir, base } = await feedServer(t, (_req, res) =>
    res.writeHead(200).end(bodies[served++] ?? ""),
  );
  const url = `${base}/feed.txt`;
  const { logs, refreshes } = watchFeeds(t, dir, () => feedModel(url));
  await settle(() => served >= 3);
  assert.deepEqual(refreshes, ["feed ioc updated"]);
  assert.equal(readFileSync(join(dir, "ioc.feed"), "utf8"), "203.0.113.9\n");
  assert.equal(
    logs[0],
    `feed ioc: fetching ${url} failed (the body is empty: a list with no entry says so in a comment); the last good content stays`,
  );
  assert.equal(logs[1], logs[0], "blanks only are empty too");
});

test("an https feed redirected to http, or to another scheme, or in a loop, is refused and says why", async (t) => {
  const certs = makeCertificates([{ name: "feed", cn: "localhost", selfSigned: true }]);
  t.after(() => certs.remove());
  // the test's own self-signed server: what is checked is the redirect, not the certificate
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
  t.after(() => delete process.env.NODE_TLS_REJECT_UNAUTHORIZED);
  const plain = await feedServer(t, (_req, res) => res.writeHead(200).end("198.51.100.7\n"));
  const { cert, key } = certs.leaf("feed");
  const secure = createServer({ cert: readFileSync(cert), key: readFileSync(key) }, (req, res) => {
    if (req.url === "/down") res.writeHead(302, { location: `${plain.base}/feed.txt` }).end();
    else if (req.url === "/file") res.writeHead(301, { location: "file:///etc/passwd" }).end();
    else res.writeHead(302, { location: "/loop" }).end();
  });
  await new Promise<void>((r) => secure.listen(0, "127.0.0.1", r));
  t.after(() => secure.close());
  const base = `https://127.0.0.1:${(secure.address() as AddressInfo).port}`;
  for (const [path, why] of [
    ["/down", `a redirect from https to ${plain.base} is refused`],
    ["/file", "a redirect to file: is refused (http and https only)"],
    ["/loop", "more than 5 redirects"],
  ]) {
    const url = `${base}${path}`;
    const { logs } = watchFeeds(t, plain.dir, () => feedModel(url));
    await settle(() => logs.length > 0);
    assert.equal(logs[0], `feed ioc: fetching ${url} failed (${why}); the last good content stays`);
    assert.equal(existsSync(join(plain.dir, "ioc.feed")), false);
  }
});

test("a feed not on loopback redirected to loopback, link-local or private addresses is refused", async (t) => {
  // a public feed server: an address of TEST-NET-3 on a veth of this run's own, whatever
  // addresses the host has (a host on a private network would make its own address "private")
  const external = `203.0.113.${(process.pid % 250) + 1}`;
  const link = `mfeed${process.pid % 100_000}`;
  execFileSync("ip", ["link", "add", link, "type", "veth", "peer", "name", `${link}p`]);
  t.after(() => spawnSync("ip", ["link", "del", link]));
  execFileSync("ip", ["addr", "add", `${external}/32`, "dev", link]);
  execFileSync("ip", ["link", "set", link, "up"]);
  // what a redirect to loopback would reach: a list the feed's publisher never wrote
  const local = await feedServer(t, (_req, res) => res.writeHead(200).end("198.51.100.7\n"));
  const port = new URL(local.base).port;
  const targets: [string, string][] = [
    [`http://127.0.0.1:${port}/feed.txt`, "loopback"],
    [`http://localhost:${port}/feed.txt`, "loopback"],
    [`http://[::1]:${port}/feed.txt`, "loopback"],
    [`http://0.0.0.0:${port}/feed.txt`, "loopback"],
    [`http://[::ffff:127.0.0.1]:${port}/feed.txt`, "loopback"],
    ["http://169.254.169.254/latest/meta-data/", "link-local"],
    ["http://10.1.2.3/feed.txt", "private"],
  ];
  let asked = "";
  const server = createHttpServer((req, res) => {
    asked = req.url ?? "";
    res.writeHead(302, { location: targets[Number(req.url?.slice(1))]?.[0] }).end();
  });
  await new Promise<void>((r) => server.listen(0, external, r));
  t.after(() => server.close());
  const base = `http://${external}:${(server.address() as AddressInfo).port}`;
  for (const [i, [target, scope]] of targets.entries()) {
    const url = `${base}/${i}`;
    const { logs } = watchFeeds(t, local.dir, () => feedModel(url, { intervalSeconds: 3600 }));
    await settle(() => logs.length > 0);
    assert.equal(asked, `/${i}`);
    assert.equal(
      logs[0],
      `feed ioc: fetching ${url} failed (a redirect to ${new URL(target).origin} is refused: a ${scope} address, more local than the feed's own); the last good content stays`,
    );
    assert.equal(existsSync(join(local.dir, "ioc.feed")), false);
  }
});

test("a feed on loopback may be redirected within loopback", async (t) => {
  const { dir, base } = await feedServer(t, (req, res) => {
    if (req.url === "/feed.txt") res.writeHead(200).end("198.51.100.7\n");
    else
      res.writeHead(302, { location: `${base.replace("127.0.0.1", "localhost")}/feed.txt` }).end();
  });
  const { feeds } = watchFeeds(t, dir, () => feedModel(`${base}/moved`));
  await settle(() => feeds.status("ioc")?.lastResult !== undefined);
  assert.equal(feeds.status("ioc")?.lastResult, "200");
  assert.equal(readFileSync(join(dir, "ioc.feed"), "utf8"), "198.51.100.7\n");
});

test("a body ended only by the server's close is refused when it ends mid-line (cut short)", async (t) => {
  // no Content-Length, no chunks: the body ends where the connection does
  const bodies = ["203.0.113.9\n198.51.100.7\n", "203.0.113.9\n198.51.10"];
  let served = 0;
  const server = createNetServer((socket) =>
    socket.once("data", () =>
      socket.end(`HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n${bodies[served++] ?? ""}`),
    ),
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => server.close());
  const { dir } = await feedServer(t, (_req, res) => res.end());
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/feed.txt`;
  const { logs, refreshes } = watchFeeds(t, dir, () => feedModel(url));
  await settle(() => served >= 2 && logs.length > 0);
  assert.deepEqual(refreshes, ["feed ioc updated"], "a body ending at a line's end is taken");
  assert.equal(
    logs[0],
    `feed ioc: fetching ${url} failed (the body ended with the connection, in the middle of a line: it may be cut short); the last good content stays`,
  );
  assert.equal(readFileSync(join(dir, "ioc.feed"), "utf8"), bodies[0]);
});

test("a server that cannot be reached is named with the reason, not only 'fetch failed'", async (t) => {
  const { dir } = await feedServer(t, (_req, res) => res.end());
  // a port just closed: nothing listens there
  const closed = createHttpServer();
  await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
  const { port } = closed.address() as AddressInfo;
  await new Promise((r) => closed.close(r));
  const url = `http://127.0.0.1:${port}/feed.txt`;
  const { logs } = watchFeeds(t, dir, () => feedModel(url));
  await settle(() => logs.length > 0);
  assert.equal(
    logs[0],
    `feed ioc: fetching ${url} failed (fetch failed: connect ECONNREFUSED 127.0.0.1:${port}); the last good content stays`,
  );
});

test("a feed entry covering every address of its family is refused, counted by reason", () => {
  const r = feedAddresses(
    "0.0.0.0/0\n::/0\n0.0.0.0-255.255.255.255\n::ffff:0.0.0.0/96\n0.0.0.0/1\n203.0.113.9\n",
    "plain",
  );
  assert.deepEqual(
    r.entries.map((e) => e.value),
    ["0.0.0.0/1", "203.0.113.9"],
  );
  assert.deepEqual([...r.refused], [["covers every address of its family", 4]]);
  const stix = feedAddresses(
    JSON.stringify({
      type: "bundle",
      objects: [{ type: "indicator", pattern: "[ipv4-addr:value = '0.0.0.0/0']" }],
    }),
    "stix",
  );
  assert.deepEqual(stix.entries, []);
  assert.deepEqual([...stix.refused], [["covers every address of its family", 1]]);
});

test("a 304 to a fetch that named no stored list is a failed fetch, not 'not modified'", async (t) => {
  const { dir, base } = await feedServer(t, (_req, res) => res.writeHead(304).end());
  const url = `${base}/feed.txt`;
  const { feeds, logs } = watchFeeds(t, dir, () => feedModel(url));
  await settle(() => logs.length > 0);
  assert.equal(
    logs[0],
    `feed ioc: fetching ${url} failed (HTTP 304 to a fetch that named no stored list); the last good content stays`,
  );
  assert.equal(
    feeds.status("ioc")?.lastResult,
    "failed: HTTP 304 to a fetch that named no stored list",
  );
});
