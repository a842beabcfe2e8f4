// `moat explain` with the facts moat's L7 relay reads (--http, --sni, --ssh-key): the verdict of
// the whole policy, and "deferred" when the names a Host or SNI is checked against are unknown.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";

const P = "test/fixtures/policies/l7.yaml";
const KEY = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";

function moat(...args: string[]) {
  const run = spawnSync("bin/moat", ["explain", P, "tcp", "10.0.0.1:40000", "->", ...args], {
    encoding: "utf8",
  });
  return { code: run.status, stdout: run.stdout.split("\n").filter(Boolean), stderr: run.stderr };
}

test("--http with the name resolved: allowed by the HTTP rule; another path falls to the default", () => {
  const ok = moat(
    "192.0.2.1:80",
    "--http",
    "GET,api.example.org,/v1/x",
    "--name",
    "api.example.org",
  );
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(ok.stdout.slice(0, 5), [
    "connection: egress tcp 10.0.0.1:40000 -> 192.0.2.1:80 (local -> remote)",
    "remote names: api.example.org",
    "http: GET api.example.org /v1/x (HTTP/1.1)",
    "verdict: allowed",
    "action: allow",
  ]);
  const other = moat(
    "192.0.2.1:80",
    "--http",
    "GET,api.example.org,/v2",
    "--name",
    "api.example.org",
  );
  assert.ok(other.stdout.includes("rule: default"), other.stdout.join("\n"));
});

test("--sni: without --name the names are unknown (deferred); with another name it does not match", () => {
  const unknown = moat("192.0.2.1:443", "--sni", "www.example.org");
  assert.ok(unknown.stdout.includes("verdict: deferred"), unknown.stdout.join("\n"));
  assert.ok(unknown.stdout.includes("needs: DNS names of the remote address"));
  const resolved = moat("192.0.2.1:443", "--sni", "www.example.org", "--name", "www.example.org");
  assert.ok(resolved.stdout.includes("rule: web"), resolved.stdout.join("\n"));
  const elsewhere = moat("192.0.2.1:443", "--sni", "www.example.org", "--name", "cdn.example.net");
  assert.ok(elsewhere.stdout.includes("verdict: blocked"), elsewhere.stdout.join("\n"));
});

test("--ssh-key: the pinned host key is allowed; a malformed one is a usage error", () => {
  const ok = moat("192.0.2.1:22", "--ssh-key", KEY);
  assert.ok(ok.stdout.includes("rule: git"), ok.stdout.join("\n"));
  const bad = moat("192.0.2.1:22", "--ssh-key", "MD5:aa");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--ssh-key: give the host key's SHA256 fingerprint/);
  const two = moat("192.0.2.1:22", "--ssh-key", KEY, "--sni", "a.example");
  assert.equal(two.code, 2);
  assert.match(two.stderr, /one protocol/);
});
