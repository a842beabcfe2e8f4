// moat's relay and the request forms lenient servers read, end to end: curl and python3 raw
// sockets under the attached cgroup reach python's http.server and a legacy TLS stand-in in the
// peer namespace. An absolute-form target's host is the Host the server receives; request lines
// python reads past extra whitespace, or without a version (HTTP/0.9), are judged or refused by
// moat, never passed on raw; an SSLv2-format ClientHello is TLS, blocked by a `tls: {}` rule.
//
// Run time: about 20 s on an idle machine (the daemon's start is most of it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn } from "../helpers/cgroup-run.ts";
import { spawnLines } from "../helpers/child.ts";

const HTTP_PORT = 80;
const TLS_PORT = 443;

function policy(cgroup: string): string {
  return `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { cgroup: ${cgroup} }
rules:
  - name: no-admin
    direction: egress
    action: block
    layer4: { protocol: tcp, port: [${HTTP_PORT}] }
    layer7: { http: { path: ["/admin", "/admin/*"] } }
  - name: web-allowed
    direction: egress
    action: allow
    log: true
    layer4: { protocol: tcp, port: [${HTTP_PORT}] }
    layer7: { http: { host: [allowed.moat.test], trust_host: true } }
  - { name: other-web, direction: egress, action: block, layer4: { protocol: tcp, port: [${HTTP_PORT}] }, layer7: { http: {} } }
  - { name: no-tls, direction: egress, action: block, layer4: { protocol: tcp, port: [${TLS_PORT}] }, layer7: { tls: {} } }
`;
}

/** python's http.server, answering with the Host it received; each request printed. */
const WEB = `
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        host = self.headers.get("Host")
        print(f"seen {host} {self.path}", flush=True)
        body = f"served host={host} path={self.path}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
server = HTTPServer((sys.argv[1], int(sys.argv[2])), H)
print("listening", flush=True)
server.serve_forever()
`;

/** A legacy TLS server stand-in: prints what it got, answers with a ServerHello's first bytes. */
const LEGACY_TLS = `
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen()
print("listening", flush=True)
while True:
    c, _ = s.accept()
    data = c.recv(4096)
    print(f"got {len(data)} bytes", flush=True)
    c.sendall(bytes([0x16, 3, 3, 0, 4, 2, 0, 0, 0]))
    c.close()
`;

/**
 * Sends argv[3] (escapes decoded) to argv[1]:argv[2], ends its side when argv[4] is "end" (a
 * server then reads the line without headers), prints all it got back.
 */
const RAW_CLIENT = `
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=15)
s.sendall(sys.argv[3].encode("latin1").decode("unicode_escape").encode("latin1"))
if sys.argv[4:] == ["end"]:
    s.shutdown(socket.SHUT_WR)
got = b""
try:
    while True:
        d = s.recv(4096)
        if not d:
            break
        got += d
except ConnectionResetError:
    print("RESET")
print(got.decode("latin1"))
`;

/** The SSLv2-format hello: 2-byte header, type 1, version 0303, 3-byte cipher specs, challenge. */
const SSLV2_CLIENT = `
import os, socket, sys
specs = bytes.fromhex("00c02b00c02f00c02c00c03000009c00002f0000ff")
challenge = os.urandom(32)
body = bytes([1, 3, 3]) + len(specs).to_bytes(2, "big") + (0).to_bytes(2, "big") + len(challenge).to_bytes(2, "big") + specs + challenge
hello = bytes([0x80 | (len(body) >> 8), len(body) & 0xff]) + body
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=15)
s.sendall(hello)
try:
    d = s.recv(4096)
    print("answered", d.hex() if d else "nothing (closed)")
except ConnectionResetError:
    print("RESET")
`;

function script(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

test("L7 relay: absolute-form hosts, lenient request lines, SSLv2-format ClientHellos", async (t) => {
  const cg = cgroupForTest(t, "l7forms");
  const dir = mkdtempSync(join(tmpdir(), "moat-l7forms-"));
  cg.onClose(() => rmSync(dir, { recursive: true, force: true }));
  const lab = await startCgroupLab(cg, "l7 request forms", () => policy(cg.cgroup), []);
  const peer = (file: string, port: number) => {
    const server = spawnLines("ip", [
      "netns",
      "exec",
      lab.a,
      "python3",
      "-u",
      file,
      lab.v4.a,
      String(port),
    ]);
    cg.onClose(() => server.kill());
    return server;
  };
  const web = peer(script(dir, "web.py", WEB), HTTP_PORT);
  const legacy = peer(script(dir, "legacy.py", LEGACY_TLS), TLS_PORT);
  await web.waitFor(/^listening$/);
  await legacy.waitFor(/^listening$/);
  const raw = script(dir, "raw.py", RAW_CLIENT);
  const sslv2 = script(dir, "sslv2.py", SSLV2_CLIENT);
  const inCgroup = (cmd: string[]) => runIn(lab.b, cg.dir, cmd);

  await t.test(
    "an absolute-form target with another Host: the server serves the judged host",
    async () => {
      const r = inCgroup([
        "curl",
        "-sS",
        "-w",
        "\\n%{http_code}",
        "--request-target",
        "http://allowed.moat.test/",
        "-H",
        "Host: other.moat.test",
        `http://${lab.v4.a}/`,
      ]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(
        r.stdout,
        /^served host=allowed\.moat\.test path=http:\/\/allowed\.moat\.test\/\n\n200$/,
      );
      await lab.daemon.waitFor(
        /ALLOWED egress tcp .* HTTP GET allowed\.moat\.test\S* by rule web-allowed/,
      );
      assert.ok(!web.lines.some((l) => l.includes("other.moat.test")), web.lines.join("\n"));
    },
  );

  await t.test(
    "request lines python reads are judged or refused by moat, never served",
    async () => {
      const host = "Host: allowed.moat.test\\r\\nConnection: close\\r\\n\\r\\n";
      for (const [line, answer, end = ""] of [
        [
          `GET  /admin HTTP/1.1\\r\\n${host}`,
          /^HTTP\/1\.1 403 [^]*moat: blocked by rule no-admin\n/,
        ],
        [`GET\\t/admin HTTP/1.1\\r\\n${host}`, /^HTTP\/1\.1 400 [^]*moat: malformed request\n/],
        [`GET /admin HTTP/1.1 \\r\\n${host}`, /^HTTP\/1\.1 400 [^]*moat: malformed request\n/],
        [` GET /admin HTTP/1.1\\r\\n${host}`, /^HTTP\/1\.1 400 [^]*moat: malformed request\n/],
        ["GET /admin\\r\\n", /^HTTP\/1\.1 400 [^]*moat: malformed request\n/, "end"],
      ] as const) {
        const r = inCgroup(["python3", raw, lab.v4.a, String(HTTP_PORT), line, end]);
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stdout, answer, JSON.stringify(line));
      }
      await lab.daemon.waitFor(/BLOCKED egress tcp .* HTTP GET \S+\/admin by rule no-admin/);
      assert.ok(!web.lines.some((l) => l.includes("/admin")), web.lines.join("\n"));
    },
  );

  await t.test(
    "an SSLv2-format ClientHello is blocked by a tls: {} rule before the server",
    async () => {
      const r = inCgroup(["python3", sslv2, lab.v4.a, String(TLS_PORT)]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^(RESET|answered nothing \(closed\))$/m);
      await lab.daemon.waitFor(/BLOCKED egress tcp .*:443 .*by rule no-tls \(python3/);
      assert.deepEqual(legacy.lines, ["listening"]);
    },
  );
});
