// Names are not taken on trust: a rule's http.host matches only a Host this identity resolved to
// the address it connects to (the DNS proxy's bindings), unless the rule says trust_host: true.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { httpHandler } from "../../../src/l7/http/index.ts";
import { parsePolicy } from "../../../src/config/index.ts";
import { usesNames } from "../../../src/policy/index.ts";
import { startL7Relay, type L7Relay } from "../../helpers/l7-http-relay.ts";
import { startHttpEcho, type Upstream } from "../../helpers/http-echo.ts";

const POLICY = `version: 1
mode: prevent
attach: { cgroup: / }
defaults: { ingress: block, egress: block }
rules:
  - name: api-only
    direction: egress
    action: allow
    layer7: { http: { host: [api.example.org] } }
  - name: any-docs
    direction: egress
    action: allow
    layer7: { http: { host: ["**.docs.example"], trust_host: true } }
`;

let upstream: Upstream;
let resolved: L7Relay;
let unresolved: L7Relay;
before(async () => {
  upstream = await startHttpEcho();
  resolved = await startL7Relay(POLICY, upstream.port, httpHandler(), ["api.example.org"]);
  unresolved = await startL7Relay(POLICY, upstream.port, httpHandler(), ["other.example.org"]);
});
after(async () => {
  await resolved.close();
  await unresolved.close();
  await upstream.close();
});

function status(relay: L7Relay, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port: relay.port, path: "/", headers: { host }, agent: false },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

test("a Host the identity resolved to this address matches", async () => {
  assert.equal(await status(resolved, "api.example.org"), 200);
  assert.equal(resolved.reports.at(-1)?.rule, "api-only");
});

test("the same Host sent to an address it was not resolved to does not match: the default blocks", async () => {
  assert.equal(await status(unresolved, "api.example.org"), 403);
  assert.equal(unresolved.reports.at(-1)?.rule, "default");
});

test("trust_host: true takes the Host as sent", async () => {
  assert.equal(await status(unresolved, "v2.docs.example"), 200);
  assert.equal(unresolved.reports.at(-1)?.rule, "any-docs");
});

test("an http.host not taken on trust needs names: the policy starts the DNS proxy", () => {
  assert.equal(usesNames(parsePolicy(POLICY, "p.yaml")), true);
  const trusted = POLICY.replace(
    "host: [api.example.org]",
    "host: [api.example.org], trust_host: true",
  );
  assert.equal(usesNames(parsePolicy(trusted, "p.yaml")), false);
});
