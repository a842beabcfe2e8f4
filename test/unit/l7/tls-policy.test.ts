// layer7.tls rules in the reference evaluator: ALPN, ECH, certificate SANs, time left, fingerprint,
// the versions a ClientHello offers, and `unknown` for what moat cannot see.

import { test } from "node:test";
import assert from "node:assert/strict";
import { checkPolicySource, parsePolicy, textOnlyHost } from "../../../src/config/index.ts";
import { evaluate, type ConnectionFacts } from "../../../src/policy/evaluator.ts";
import type { TlsFacts } from "../../../src/policy/facts.ts";

const policy = parsePolicy(
  `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { cgroup: /moat-test }
rules:
  - name: modern-only
    direction: egress
    action: block
    layer7: { tls: { version: ["<1.2"] } }
  - name: pinned
    direction: egress
    action: allow
    layer7:
      tls:
        certificate:
          fingerprint: ["ab:cd:${"00:".repeat(29)}ef"]
  - name: no-h2c-offer
    direction: egress
    action: block
    layer7: { tls: { alpn: [h2c] } }
  - name: no-ech
    direction: egress
    action: block
    layer7: { tls: { ech: true } }
  - name: expiring
    direction: egress
    action: block
    layer7: { tls: { certificate: { not_after: "<30d" } } }
  - name: our-sans
    direction: egress
    action: allow
    layer7: { tls: { certificate: { san: ["*.corp.example"], valid: true } } }
  - name: sure-block
    direction: egress
    action: block
    layer7: { tls: { certificate: { issuer: "*Evil CA*" }, unknown: block } }
`,
  "tls.yaml",
);

const DAY = 86_400_000;
const facts = (tls: TlsFacts): ConnectionFacts => ({
  direction: "egress",
  protocol: "tcp",
  family: 4,
  local: { ip: "10.0.0.5", port: 40000 },
  remote: { ip: "203.0.113.9", port: 443, names: [] },
  process: { pid: 1 },
  layer7: { tls },
});
const cert = (over: Partial<NonNullable<TlsFacts["certificate"]>> = {}) => ({
  subject_cn: "www.corp.example",
  sans: ["www.corp.example", "api.corp.example"],
  issuer: "C=US, O=Corp, CN=Corp CA",
  valid: true,
  not_after: new Date(Date.now() + 90 * DAY).toISOString(),
  fingerprint: "11:22",
  source: "handshake" as const,
  ...over,
});
const hello: TlsFacts = { sni: "www.corp.example", version: "1.3", alpn: ["h2"], ech: false };
const rule = (tls: TlsFacts) => {
  const e = evaluate(policy, facts(tls));
  return e.verdict === "deferred" ? `deferred:${e.needs.join(",")}` : `${e.verdict}:${e.rule}`;
};

test("the fingerprint in openssl's colon form matches in any case", () => {
  const fp = `AB:CD:${"00:".repeat(29)}EF`;
  assert.equal(rule({ ...hello, certificate: cert({ fingerprint: fp }) }), "allowed:pinned");
  assert.equal(rule({ ...hello, certificate: cert() }), "allowed:our-sans");
});

test("alpn matches when the client offers one of the ids; ech when the ClientHello offers it", () => {
  assert.equal(
    rule({ ...hello, alpn: ["h2c", "http/1.1"], certificate: cert() }),
    "blocked:no-h2c-offer",
  );
  assert.equal(rule({ ...hello, ech: true, certificate: cert() }), "blocked:no-ech");
});

test("not_after compares the days left; a SAN glob matches any SAN", () => {
  const soon = cert({ not_after: new Date(Date.now() + 5 * DAY).toISOString() });
  assert.equal(rule({ ...hello, certificate: soon }), "blocked:expiring");
  assert.equal(
    rule({ ...hello, certificate: cert({ sans: ["other.example"] }) }),
    "allowed:default",
  );
});

test("offered versions decide when every one agrees; a mix waits for the ServerHello", () => {
  const { version: _chosen, ...offered } = hello;
  void _chosen;
  const c = cert();
  assert.equal(
    rule({ ...offered, offered: ["1.0", "1.1"], certificate: c }),
    "blocked:modern-only",
  );
  assert.equal(rule({ ...offered, offered: ["1.2", "1.3"], certificate: c }), "allowed:our-sans");
  assert.equal(
    rule({ ...offered, offered: ["1.1", "1.2"], certificate: c }),
    "deferred:TLS version",
  );
});

test("pending facts count as matching or not, so the relay learns whether it must wait", () => {
  const early = { ...hello };
  assert.equal(rule(early), "deferred:server certificate");
  assert.equal(rule({ ...early, pending: "match" }), "allowed:pinned");
  assert.equal(rule({ ...early, pending: "no-match" }), "allowed:default");
});

test("unknown: an unseen certificate matches a rule whose action its unknown names", () => {
  // pinned (allow; unknown defaults to block) is skipped, expiring (block) blocks
  assert.equal(rule({ ...hello, unseen: ["certificate"] }), "blocked:expiring");
  const lenient = parsePolicy(
    `version: 1
mode: prevent
defaults: { ingress: block, egress: block }
attach: { cgroup: /moat-test }
rules:
  - name: corp
    direction: egress
    action: allow
    layer7: { tls: { sni: [www.corp.example], trust_sni: true, certificate: { issuer: "*Corp CA*" }, unknown: allow } }
`,
    "lenient.yaml",
  );
  const judged = (tls: TlsFacts) => {
    const e = evaluate(lenient, facts(tls));
    return e.verdict === "deferred" ? "deferred" : `${e.verdict}:${e.rule}`;
  };
  assert.equal(judged({ ...hello, unseen: ["certificate"] }), "allowed:corp");
  // ECH: the outer name is not the one the client reaches; unknown decides
  assert.equal(
    judged({
      ...hello,
      sni: "public.ech.example",
      ech: true,
      unseen: ["sni"],
      certificate: cert(),
    }),
    "allowed:corp",
  );
  assert.equal(
    judged({ ...hello, sni: "public.ech.example", certificate: cert() }),
    "blocked:default",
  );
});

test("bad values are refused at their line", () => {
  const check = (tls: string) =>
    checkPolicySource(
      `version: 1\nmode: prevent\nattach: { cgroup: /x }\nrules:\n  - name: r\n    direction: egress\n    action: allow\n    layer7: { tls: ${tls} }\n`,
      "bad.yaml",
      textOnlyHost,
    ).diagnostics.map((d) => `${d.line}: ${d.message}`);
  assert.match(check("{ certificate: { not_after: 30d } }").join(), /8: .*"<30d"/);
  assert.match(check("{ certificate: { fingerprint: [AB:CD] } }").join(), /8: .*SHA-256/);
  assert.match(check("{ unknown: maybe }").join(), /8: .*allow.*block/);
  assert.deepEqual(
    check(
      '{ alpn: [h2], ech: false, certificate: { san: ["*.x"], not_after: ">7d" }, unknown: allow }',
    ),
    [],
  );
});
