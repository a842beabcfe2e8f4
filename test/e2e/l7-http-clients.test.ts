// HTTP rules through the daemon's relay with several real clients: curl speaking HTTP/2 with
// prior knowledge (h2c), curl over HTTP/1.1, wget and python3's urllib, all under the attached
// cgroup, reach one server in the peer namespace that speaks both versions on port 80. Each
// request is judged by method, path and version: an allowed one gets the server's page, a
// refused one moat's 403 naming the rule (the server never sees it). A request that expects
// 100-continue is judged before anyone answers it: refused, it gets the 403 alone; allowed, the
// server's own 100 Continue. The server's 103 Early Hints reach the client before its answer. A
// reload that puts the refusing rule in detect mode lets the same
// requests through and reports them as detected.
//
// Run time: about 20 s on an idle machine (the daemon's start is most of it); keep it under 60 s.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cgroupForTest, startCgroupLab, startHttpPeer } from "../helpers/cgroup-lab.ts";
import { runIn, type Run } from "../helpers/cgroup-run.ts";
import { daemonSaid, storedEvents, until } from "../helpers/l7-lab.ts";
import type { Lab } from "../helpers/netns.ts";
import { reloadPolicy } from "../helpers/policy-reload.ts";

/** The refusing rule's line: prevent by default, `detect` puts it in detect mode. */
function policy(l: Lab, cgroup: string, otherMode = ""): string {
  return `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
rules:
  - { name: h2-pages, direction: egress, action: allow, log: true, layer4: { protocol: tcp, port: [80] }, layer7: { http: { version: ["2"], method: [GET], path: ["/h2/*"] } } }
  - { name: reads, direction: egress, action: allow, log: true, layer4: { protocol: tcp, port: [80] }, layer7: { http: { method: [GET, HEAD], path: ["/pub/*"] } } }
  - { name: uploads, direction: egress, action: allow, log: true, layer4: { protocol: tcp, port: [80] }, layer7: { http: { method: [POST], path: ["/upload/*"] } } }
  - { name: other-http, direction: egress, action: block, ${otherMode}layer4: { protocol: tcp, port: [80] }, layer7: { http: {} } }
`;
}

/** urllib: prints the status, then the body (a 403's too). */
const URLLIB = `
import sys, urllib.request, urllib.error
data = sys.argv[2].encode() if len(sys.argv) > 2 else None
try:
    r = urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=data), timeout=5)
    print(r.status)
    print(r.read().decode(), end="")
except urllib.error.HTTPError as e:
    print(e.code)
    print(e.read().decode(), end="")
`;

const BLOCKED = "moat: blocked by rule other-http\n";

test("L7 relay: h2c, HTTP/1.1, wget and python judged per request", async (t) => {
  const cg = cgroupForTest(t, "l7clients");
  const lab = await startCgroupLab(cg, "l7 clients", (l) => policy(l, cg.cgroup), []);
  const server = await startHttpPeer(cg, lab);
  const url = (path: string) => `http://${lab.v4.a}${path}`;
  const inCgroup = (cmd: string[]): Run => runIn(lab.b, cg.dir, cmd);
  /** curl: the body, then the status on a line of its own. */
  const curl = (path: string, extra: string[] = []) =>
    inCgroup(["curl", "-sS", "--max-time", "5", "-w", "\n%{http_code}", ...extra, url(path)]);
  const h2c = (path: string, extra: string[] = []) =>
    curl(path, ["--http2-prior-knowledge", ...extra]);
  const wget = (path: string) =>
    inCgroup(["wget", "-q", "-O", "-", "--content-on-error", "-T", "5", "-t", "1", url(path)]);
  const python = (path: string, body?: string) =>
    inCgroup(["python3", "-c", URLLIB, url(path), ...(body === undefined ? [] : [body])]);
  /** The server printed this request (its line may come a moment after the answer). */
  const serverSaw = (line: string) =>
    until(`the server to see ${line}`, () => (server.lines.includes(line) ? true : undefined));
  const said = (pattern: RegExp) => daemonSaid(lab, pattern);

  await t.test("h2c: an allowed GET gets the server's page over HTTP/2", async () => {
    const r = h2c("/pub/hello");
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "hello over HTTP/2.0\n\n200");
    await serverSaw("seen 2.0 GET /pub/hello");
    await said(/ALLOWED egress tcp .* HTTP GET \S+\/pub\/hello by rule reads \(curl pid/);
  });

  await t.test("h2c: another method or path gets moat's 403", async () => {
    const post = h2c("/pub/hello", ["--data", "x=1"]);
    assert.equal(post.stdout, `${BLOCKED}\n403`, post.stderr);
    const path = h2c("/secret.txt");
    assert.equal(path.stdout, `${BLOCKED}\n403`, path.stderr);
    await said(/BLOCKED egress tcp .* HTTP POST \S+\/pub\/hello by rule other-http \(curl pid/);
    await said(/BLOCKED egress tcp .* HTTP GET \S+\/secret\.txt by rule other-http \(curl pid/);
  });

  await t.test("the version is judged: /h2/ pages over HTTP/2 only", async () => {
    const two = h2c("/h2/page");
    assert.equal(two.stdout, "hello over HTTP/2.0\n\n200", two.stderr);
    await said(/ALLOWED egress tcp .* HTTP GET \S+\/h2\/page by rule h2-pages \(curl pid/);
    const one = curl("/h2/page", ["--http1.1"]);
    assert.equal(one.stdout, `${BLOCKED}\n403`, one.stderr);
  });

  await t.test("wget: allowed page, and moat's 403 for another path", async () => {
    const ok = wget("/pub/by-wget");
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(ok.stdout, "hello over HTTP/1.1\n");
    await said(/ALLOWED egress tcp .* HTTP GET \S+\/pub\/by-wget by rule reads \(wget pid/);
    const refused = wget("/private/by-wget");
    assert.equal(refused.status, 8, "wget: the server answered an error"); // 8 = error response
    assert.equal(refused.stdout, BLOCKED);
    await said(/BLOCKED egress tcp .* HTTP GET \S+\/private\/by-wget by rule other-http \(wget/);
  });

  await t.test("python urllib: allowed GET, refused POST", async () => {
    const ok = python("/pub/by-python");
    assert.equal(ok.stdout, "200\nhello over HTTP/1.1\n", ok.stderr);
    await said(/ALLOWED egress tcp .* HTTP GET \S+\/pub\/by-python by rule reads \(python3/);
    const post = python("/pub/by-python", "x=1");
    assert.equal(post.stdout, `403\n${BLOCKED}`, post.stderr);
    await said(/BLOCKED egress tcp .* HTTP POST \S+\/pub\/by-python by rule other-http \(python3/);
  });

  await t.test(
    "Expect: 100-continue: a refused POST gets the 403 alone, an allowed one the server's 100",
    async () => {
      /** curl -v with a body that waits for 100 Continue: the body and status, the heads read. */
      const expecting = (path: string, version: string) => {
        const r = curl(path, ["-v", "-H", "Expect: 100-continue", "--data", "x=1", version]);
        const heads = r.stderr
          .split("\n")
          .filter((l) => l.startsWith("< HTTP/"))
          .map((l) => l.trim());
        return { out: r.stdout, heads, stderr: r.stderr };
      };
      const refused = expecting("/private/upload", "--http1.1");
      assert.equal(refused.out, `${BLOCKED}\n403`, refused.stderr);
      assert.deepEqual(refused.heads, ["< HTTP/1.1 403 Forbidden"]);
      const allowed = expecting("/upload/by-curl", "--http1.1");
      assert.equal(allowed.out, "hello over HTTP/1.1\n\n200", allowed.stderr);
      assert.deepEqual(allowed.heads, ["< HTTP/1.1 100 Continue", "< HTTP/1.1 200 OK"]);
      await serverSaw("seen 1.1 POST /upload/by-curl");
      const refusedH2 = expecting("/private/upload", "--http2-prior-knowledge");
      assert.equal(refusedH2.out, `${BLOCKED}\n403`, refusedH2.stderr);
      assert.deepEqual(refusedH2.heads, ["< HTTP/2 403"]);
      const allowedH2 = expecting("/upload/over-h2", "--http2-prior-knowledge");
      assert.equal(allowedH2.out, "hello over HTTP/2.0\n\n200", allowedH2.stderr);
      assert.deepEqual(allowedH2.heads, ["< HTTP/2 100", "< HTTP/2 200"]);
      await serverSaw("seen 2.0 POST /upload/over-h2");
    },
  );

  await t.test("the server's 103 Early Hints reach the client before its answer", async () => {
    /** curl -v: the body and status, the heads read, the Link fields seen. */
    const hinted = (version: string) => {
      const r = curl("/pub/hints", ["-v", version]);
      const lines = r.stderr.split("\n").map((l) => l.trim());
      const heads = lines.filter((l) => l.startsWith("< HTTP/"));
      const links = lines.filter((l) => /^< link:/i.test(l)).map((l) => l.slice(8));
      return { out: r.stdout, heads, links, stderr: r.stderr };
    };
    const one = hinted("--http1.1");
    assert.equal(one.out, "hello over HTTP/1.1\n\n200", one.stderr);
    assert.deepEqual(one.heads, ["< HTTP/1.1 103 Early Hints", "< HTTP/1.1 200 OK"]);
    assert.deepEqual(one.links, ["</style.css>; rel=preload; as=style"]);
    const two = hinted("--http2-prior-knowledge");
    assert.equal(two.out, "hello over HTTP/2.0\n\n200", two.stderr);
    assert.deepEqual(two.heads, ["< HTTP/2 103", "< HTTP/2 200"]);
    assert.deepEqual(two.links, ["</style.css>; rel=preload; as=style"]);
    await serverSaw("seen 2.0 GET /pub/hints");
  });

  await t.test("detect: the refusing rule forwards and reports instead", async () => {
    await reloadPolicy(lab, policy(lab, cg.cgroup, "mode: detect, "));
    const path = h2c("/detected.txt");
    assert.equal(path.stdout, "hello over HTTP/2.0\n\n200", path.stderr);
    await serverSaw("seen 2.0 GET /detected.txt");
    await said(/DETECTED egress tcp .* HTTP GET \S+\/detected\.txt by rule other-http \(curl pid/);
    const post = python("/pub/detected", "x=1");
    assert.equal(post.stdout, "200\nhello over HTTP/1.1\n", post.stderr);
    await serverSaw("seen 1.1 POST /pub/detected");
    await said(/DETECTED egress tcp .* HTTP POST \S+\/pub\/detected by rule other-http \(python3/);
  });

  await t.test("the server saw exactly the requests moat forwarded", () => {
    // its lines come in order: the detected ones (awaited above) are the last
    assert.deepEqual(server.lines, [
      "listening",
      "seen 2.0 GET /pub/hello",
      "seen 2.0 GET /h2/page",
      "seen 1.1 GET /pub/by-wget",
      "seen 1.1 GET /pub/by-python",
      "seen 1.1 POST /upload/by-curl",
      "seen 2.0 POST /upload/over-h2",
      "seen 1.1 GET /pub/hints",
      "seen 2.0 GET /pub/hints",
      "seen 2.0 GET /detected.txt",
      "seen 1.1 POST /pub/detected",
    ]);
  });

  await t.test("the stored events: method, path, version and the status each got", async () => {
    const relayed = await until("the relay's events in the history", () => {
      const all = storedEvents(lab).filter((e) => e.hook === "l7_relay");
      return all.length >= 17 ? all : undefined;
    }).catch(() => storedEvents(lab).filter((e) => e.hook === "l7_relay"));
    const brief = relayed.map((e) => {
      const h = e.layer7?.http;
      return [e.type, e.rule, h?.method, h?.path, h?.version, h?.status];
    });
    assert.deepEqual(brief, [
      ["allowed", "reads", "GET", "/pub/hello", "2", 200],
      ["blocked", "other-http", "POST", "/pub/hello", "2", 403],
      ["blocked", "other-http", "GET", "/secret.txt", "2", 403],
      ["allowed", "h2-pages", "GET", "/h2/page", "2", 200],
      ["blocked", "other-http", "GET", "/h2/page", "1.1", 403],
      ["allowed", "reads", "GET", "/pub/by-wget", "1.1", 200],
      ["blocked", "other-http", "GET", "/private/by-wget", "1.1", 403],
      ["allowed", "reads", "GET", "/pub/by-python", "1.1", 200],
      ["blocked", "other-http", "POST", "/pub/by-python", "1.1", 403],
      ["blocked", "other-http", "POST", "/private/upload", "1.1", 403],
      ["allowed", "uploads", "POST", "/upload/by-curl", "1.1", 200],
      ["blocked", "other-http", "POST", "/private/upload", "2", 403],
      ["allowed", "uploads", "POST", "/upload/over-h2", "2", 200],
      ["allowed", "reads", "GET", "/pub/hints", "1.1", 200],
      ["allowed", "reads", "GET", "/pub/hints", "2", 200],
      ["detected", "other-http", "GET", "/detected.txt", "2", 200],
      ["detected", "other-http", "POST", "/pub/detected", "1.1", 200],
    ]);
  });
});
