// layer7.http, tls and ssh through the one acceptance path: accepted for egress rules of
// processes under attach.cgroup, refused elsewhere at FILE:LINE:COL with the reason; and names
// are not taken on trust: an SNI or Host header matches only a name this identity resolved to
// the address, unless the rule says trust_sni / trust_host.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatDiagnostic, parsePolicy } from "../../../src/config/index.ts";
import { acceptPolicy } from "../../../src/host/accept-policy.ts";
import { evaluate, usesNames, type ConnectionFacts } from "../../../src/policy/index.ts";

function accepted(text: string): string[] {
  const dir = mkdtempSync(join(tmpdir(), "moat-l7-"));
  try {
    const path = join(dir, "p.yaml");
    writeFileSync(path, text);
    return acceptPolicy(text, path).diagnostics.map((d) =>
      formatDiagnostic(d).replace(`${dir}/`, ""),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const HEAD = "version: 1\nmode: prevent\nattach: { cgroup: / }\n";

test("egress rules with layer7.http, tls and ssh under attach.cgroup are accepted", () => {
  const lines = accepted(
    HEAD +
      `rules:
  - { name: api, direction: egress, action: allow, layer7: { http: { host: [api.example.org], method: [GET] } } }
  - { name: web, direction: egress, action: allow, layer4: { protocol: tcp, port: [443] }, layer7: { tls: { sni: ["**.example.org"], trust_sni: true } } }
  - { name: git, direction: egress, action: allow, layer7: { ssh: { version: ["SSH-2.0-*"] } } }
  - { name: any-host, direction: egress, action: block, layer7: { http: { host: ["*.example.net"], trust_host: true } } }
`,
  );
  assert.deepEqual(
    lines.filter((l) => !l.includes("warning")),
    [],
  );
});

test("L7 rules that do not judge this host's own TCP connections are refused where written", () => {
  const lines = accepted(
    HEAD +
      `rules:
  - { name: in-web, direction: ingress, action: allow, layer7: { http: { host: [example.org] } } }
  - { name: any-tls, direction: any, action: allow, layer7: { tls: { sni: [example.org] } } }
  - { name: in-ssh, direction: ingress, action: allow, layer7: { ssh: { host_key: ["SHA256:abc"] } } }
  - { name: udp-web, direction: egress, action: allow, layer4: { protocol: udp }, layer7: { http: { method: [GET] } } }
  - { name: local-tls, direction: egress, action: allow, layer3: { local: [10.0.0.1] }, layer7: { tls: { sni: [example.org] } } }
  - { name: mixed, direction: egress, action: allow, layer7: { dns: { name: [example.org] }, tls: { sni: [example.org] } } }
`,
  ).filter((l) => !l.includes("warning") && !l.includes("names hosts after"));
  assert.deepEqual(lines, [
    "p.yaml:5:72 rules[0].layer7.http: rule 'in-web': layer7.http judges connections this host opens (moat's relay); use 'direction: egress'",
    "p.yaml:6:68 rules[1].layer7.tls: rule 'any-tls': layer7.tls judges connections this host opens (moat's relay); use 'direction: egress'",
    "p.yaml:7:71 rules[2].layer7.ssh: rule 'in-ssh': layer7.ssh judges connections this host opens (moat's relay); use 'direction: egress'",
    "p.yaml:8:64 rules[3].layer4: rule 'udp-web': layer7.http with protocol udp: moat's relay judges TCP connections",
    "p.yaml:9:75 rules[4].layer3.local: rule 'local-tls': layer7.tls with a local address: connections go to moat's relay at connect(), which knows neither the local address nor the source port; leave 'local' out of this rule",
    "p.yaml:10:62 rules[5].layer7: rule 'mixed': layer7.dns with layer7.tls in one rule: DNS queries and relayed connections are judged apart; write them as rules of their own",
  ]);
});

test("L7 rules need attach.cgroup: the relay judges the connections of processes it sees", () => {
  assert.deepEqual(
    accepted(`version: 1
mode: prevent
rules:
  - { name: web, direction: egress, action: allow, layer7: { tls: { sni: [example.org] } } }
`),
    [
      "p.yaml:4:67 rules[0].layer7.tls: rule 'web': layer7.tls is judged by moat's relay, for processes under attach.cgroup: set attach.cgroup (e.g. \"/\")",
    ],
  );
});

test("http.host and tls.sni without trust_* use names (the DNS proxy runs); with it they do not", () => {
  const policy = (l7: string) =>
    parsePolicy(
      `${HEAD}rules:\n  - { name: r, direction: egress, action: allow, layer7: ${l7} }\n`,
      "p.yaml",
    );
  assert.equal(usesNames(policy("{ tls: { sni: [example.org] } }")), true);
  assert.equal(usesNames(policy("{ http: { host: [example.org] } }")), true);
  assert.equal(usesNames(policy("{ tls: { sni: [example.org], trust_sni: true } }")), false);
  assert.equal(usesNames(policy("{ http: { host: [example.org], trust_host: true } }")), false);
  assert.equal(usesNames(policy("{ http: { method: [GET] } }")), false);
});

const SNI_POLICY = parsePolicy(
  `${HEAD}defaults: { egress: block }
rules:
  - { name: checked, direction: egress, action: allow, layer7: { tls: { sni: [good.example] } } }
  - { name: trusted, direction: egress, action: allow, layer7: { tls: { sni: [trusted.example], trust_sni: true } } }
  - { name: host-checked, direction: egress, action: allow, layer7: { http: { host: ["*.example"] } } }
`,
  "p.yaml",
);

function tlsTo(sni: string, names?: string[]): ConnectionFacts {
  return {
    direction: "egress",
    protocol: "tcp",
    family: 4,
    local: { ip: "10.0.0.1", port: 40000 },
    remote: { ip: "203.0.113.7", port: 443, ...(names ? { names } : {}) },
    layer7: { tls: { sni, version: "1.3" } },
  };
}

const verdict = (facts: ConnectionFacts) => {
  const e = evaluate(SNI_POLICY, facts);
  return e.verdict === "deferred" ? ["deferred", e.rule] : [e.verdict, e.rule, e.reason];
};

test("an SNI matches only when this identity resolved that name to the address", () => {
  assert.deepEqual(verdict(tlsTo("good.example", ["good.example"])).slice(0, 2), [
    "allowed",
    "checked",
  ]);
  // sent to an address the name was never resolved to: the rule does not match
  assert.deepEqual(verdict(tlsTo("good.example", ["other.example"])).slice(0, 2), [
    "blocked",
    "default",
  ]);
  assert.deepEqual(verdict(tlsTo("good.example", [])).slice(0, 2), ["blocked", "default"]);
  // names unknown (moat explain without them): the answer depends on them
  const unknown = evaluate(SNI_POLICY, tlsTo("good.example"));
  assert.equal(unknown.verdict, "deferred");
});

test("trust_sni takes the name as sent; http.host is checked the same way", () => {
  assert.deepEqual(verdict(tlsTo("trusted.example", [])).slice(0, 2), ["allowed", "trusted"]);
  const http = (host: string, names: string[]): ConnectionFacts => ({
    ...tlsTo("x", names),
    remote: { ip: "203.0.113.7", port: 80, names },
    layer7: { http: { host, method: "GET", path: "/", headers: {}, version: "1.1" } },
  });
  assert.deepEqual(verdict(http("a.example:80", ["a.example"])).slice(0, 2), [
    "allowed",
    "host-checked",
  ]);
  assert.deepEqual(verdict(http("a.example", ["b.example"])).slice(0, 2), ["blocked", "default"]);
});
