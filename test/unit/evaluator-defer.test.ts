// Sections packet facts cannot decide (process, interface, layer7, hostnames): matched when the
// facts are there, "deferred" (never a guess) when they are not.

import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicy } from "../../src/config/index.ts";
import { evaluate, type ConnectionFacts } from "../../src/policy/evaluator.ts";

const policy = parsePolicy(
  `version: 1
mode: prevent
defaults: { ingress: block, egress: block }
rules:
  - name: known-bad
    direction: egress
    action: block
    layer3: { remote: [198.51.100.0/24] }
  - name: curl-to-api
    direction: egress
    action: allow
    process: { path: /usr/bin/curl, user: [1000, alice] }
    layer4: { protocol: tcp, port: [443] }
  - name: web-ui
    direction: egress
    action: allow
    layer7:
      http: { host: ["*.example.org"], method: [GET], path: ["/v1/*"], headers: { User-Agent: "curl/*" } }
      tls: { sni: ["*.example.org"], version: [">=1.2"] }
  - name: over-vpn
    direction: egress
    action: allow
    interface: { name: ["wg*"], tunnel: true }
  - name: nginx
    direction: egress
    action: allow
    process: { cgroup: /system.slice/nginx.service, container: { image: "nginx:*" } }
  - name: tracker
    direction: egress
    action: block
    layer3: { remote: ["*.tracker.example"] }
`,
  "p.yaml",
);

const out = (
  remote: string,
  port: number,
  extra: Partial<ConnectionFacts> = {},
): ConnectionFacts => ({
  direction: "egress",
  protocol: "tcp",
  family: 4,
  local: { ip: "10.0.0.5", port: 40000 },
  remote: { ip: remote, port },
  ...extra,
});

const curl = {
  path: "/usr/bin/curl",
  name: "curl",
  user: 1000,
  cgroup: "/user.slice",
  container: null,
};

test("without process facts a process rule is 'maybe': the result is deferred, with every possible outcome", () => {
  const result = evaluate(policy, out("203.0.113.9", 443));
  assert.equal(result.verdict, "deferred");
  assert.ok(result.verdict === "deferred");
  assert.equal(result.rule, "curl-to-api");
  assert.deepEqual(result.needs, [
    "process",
    "layer7",
    "interface",
    "DNS names of the remote address",
  ]);
  assert.deepEqual(
    result.possible.map((d) => `${d.verdict} by ${d.rule}`),
    [
      "allowed by curl-to-api",
      "allowed by web-ui",
      "allowed by over-vpn",
      "allowed by nginx",
      "blocked by tracker",
      "blocked by default",
    ],
  );
  assert.equal(
    result.possible[0]?.reason,
    "rule curl-to-api (line 9): tcp port 443, if process match",
  );
  assert.equal(
    result.reason,
    "cannot decide without process, layer7, interface, DNS names of the remote address: rule curl-to-api (line 9), web-ui (line 14), over-vpn (line 20), nginx (line 24), tracker (line 28) may match; allowed by curl-to-api, else allowed by web-ui, else allowed by over-vpn, else allowed by nginx, else blocked by tracker, else blocked by default",
  );
});

test("a rule that surely matches before any 'maybe' decides, whatever is unknown", () => {
  const result = evaluate(policy, out("198.51.100.7", 443));
  assert.deepEqual([result.verdict, result.rule], ["blocked", "known-bad"]);
});

test("a known 'no' in a packet section settles a rule even when its process is unknown", () => {
  // port 80: curl-to-api cannot match (port 443 only), so only later rules are in question
  const result = evaluate(policy, out("203.0.113.9", 80));
  assert.ok(result.verdict === "deferred");
  assert.equal(result.rule, "web-ui");
});

test("with the process known, the process rule decides", () => {
  const full = {
    process: curl,
    interface: { name: "eth0", tunnel: false },
    layer7: {},
    remote: { ip: "203.0.113.9", port: 443, names: [] },
  };
  const result = evaluate(policy, out("203.0.113.9", 443, full));
  assert.deepEqual(
    [result.verdict, result.rule, result.reason],
    [
      "allowed",
      "curl-to-api",
      "rule curl-to-api (line 9): tcp port 443, process /usr/bin/curl, uid 1000",
    ],
  );
  const wget = evaluate(
    policy,
    out("203.0.113.9", 443, { ...full, process: { ...curl, path: "/usr/bin/wget" } }),
  );
  assert.deepEqual([wget.verdict, wget.rule], ["blocked", "default"]);
});

test("user names need the name fact; without it a named user is unknown", () => {
  const bob = { ...curl, user: 1001 };
  const known = {
    interface: { name: "eth0", tunnel: false },
    layer7: {},
    remote: { ip: "203.0.113.9", port: 443, names: [] },
  };
  const unknownName = evaluate(policy, out("203.0.113.9", 443, { ...known, process: bob }));
  assert.ok(unknownName.verdict === "deferred");
  assert.deepEqual(unknownName.needs, ["user name"]);
  const alice = evaluate(
    policy,
    out("203.0.113.9", 443, { ...known, process: { ...bob, userName: "alice" } }),
  );
  assert.deepEqual([alice.verdict, alice.rule], ["allowed", "curl-to-api"]);
});

test("layer7: the connection matches the sub-section of its own protocol", () => {
  const base = {
    process: { ...curl, path: "/bin/x" },
    interface: { name: "eth0", tunnel: false },
    remote: { ip: "203.0.113.9", port: 443, names: [] },
  };
  const http = evaluate(
    policy,
    out("203.0.113.9", 443, {
      ...base,
      // a Host matches the names this identity resolved to the address
      remote: { ...base.remote, names: ["api.example.org"] },
      layer7: {
        http: {
          host: "api.example.org:443",
          method: "get",
          path: "/v1/items",
          headers: { "user-agent": "curl/8.5" },
          version: "1.1",
        },
      },
    }),
  );
  assert.deepEqual(
    [http.verdict, http.rule, http.reason],
    [
      "allowed",
      "web-ui",
      "rule web-ui (line 14): http host api.example.org, api.example.org resolved to the address, http method get, http path /v1/items, header user-agent: curl/8.5",
    ],
  );
  const oldTls = evaluate(
    policy,
    out("203.0.113.9", 443, {
      ...base,
      layer7: { tls: { sni: "www.example.org", version: "1.1" } },
    }),
  );
  assert.deepEqual([oldTls.verdict, oldTls.rule], ["blocked", "default"]);
  const ssh = evaluate(
    policy,
    out("203.0.113.9", 443, { ...base, layer7: { ssh: { version: "SSH-2.0-OpenSSH_9.6" } } }),
  );
  assert.equal(ssh.rule, "default");
});

test("interface: name glob and tunnel", () => {
  const base = {
    process: { ...curl, path: "/bin/x" },
    layer7: {},
    remote: { ip: "203.0.113.9", port: 22, names: [] },
  };
  const vpn = evaluate(
    policy,
    out("203.0.113.9", 22, { ...base, interface: { name: "wg0", tunnel: true } }),
  );
  assert.deepEqual(
    [vpn.verdict, vpn.rule, vpn.reason],
    ["allowed", "over-vpn", "rule over-vpn (line 20): interface wg0, tunnelled"],
  );
});

test("cgroup matches the cgroup and everything under it; container fields are globs", () => {
  const base = {
    interface: { name: "eth0", tunnel: false },
    layer7: {},
    remote: { ip: "203.0.113.9", port: 22, names: [] },
  };
  const nginx = {
    path: "/usr/sbin/nginx",
    name: "nginx",
    user: 33,
    cgroup: "/system.slice/nginx.service/worker",
    container: { id: "3f2a", name: "web", image: "nginx:1.27" },
  };
  assert.equal(evaluate(policy, out("203.0.113.9", 22, { ...base, process: nginx })).rule, "nginx");
  const other = { ...nginx, container: { ...nginx.container, image: "httpd:2" } };
  assert.equal(
    evaluate(policy, out("203.0.113.9", 22, { ...base, process: other })).rule,
    "default",
  );
  const host = { ...nginx, container: null };
  assert.equal(
    evaluate(policy, out("203.0.113.9", 22, { ...base, process: host })).rule,
    "default",
  );
});

test("hostname entries match the DNS names learned for the address", () => {
  const base = {
    process: { ...curl, path: "/bin/x" },
    interface: { name: "eth0", tunnel: false },
    layer7: {},
  };
  const tracked = evaluate(
    policy,
    out("203.0.113.50", 22, {
      ...base,
      remote: { ip: "203.0.113.50", port: 22, names: ["ads.tracker.example"] },
    }),
  );
  assert.deepEqual(
    [tracked.verdict, tracked.rule, tracked.reason],
    [
      "blocked",
      "tracker",
      "rule tracker (line 28): remote 203.0.113.50 in *.tracker.example (DNS)",
    ],
  );
  const apex = evaluate(
    policy,
    out("203.0.113.50", 22, {
      ...base,
      remote: { ip: "203.0.113.50", port: 22, names: ["tracker.example"] },
    }),
  );
  assert.equal(apex.rule, "default");
});
