// A DNS query judged by the policy as a connection with layer7 dns {name}: a rule on the name
// decides; a rule the proxy cannot decide (it names an interface) is taken as matching; a query
// no rule decides gets defaults.egress; detect mode reports instead of refusing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkPolicySource, textOnlyHost } from "../../src/config/index.ts";
import { policyJudge, queryFacts } from "../../src/dns/query-judge.ts";

function judge(rules: string, mode = "prevent", egress = "allow") {
  const text = `version: 1\nmode: ${mode}\ndefaults: { ingress: allow, egress: ${egress} }\nrules:${rules ? `\n${rules}` : " []\n"}`;
  const checked = checkPolicySource(text, "p.yaml", textOnlyHost);
  assert.ok(checked.model, JSON.stringify(checked.diagnostics));
  const model = checked.model;
  const j = policyJudge(() => model);
  return (name: string, server = "10.0.0.53") =>
    j(
      queryFacts({
        protocol: "udp",
        client: { ip: "10.66.0.2", port: 40000 },
        server: { ip: server, port: 53 },
        name,
        process: {
          pid: 812,
          name: "curl",
          path: "/usr/bin/curl",
          user: 1000,
          cgroup: "/",
          container: null,
        },
      }),
    );
}

const NO_ADS = `  - name: no-ads
    direction: egress
    action: block
    layer7: { dns: { name: ["*.ads.example"] } }
`;

test("a rule on the query's name decides; others get defaults.egress", () => {
  const j = judge(NO_ADS);
  assert.deepEqual(
    [
      j("x.ads.example").verdict,
      j("x.ads.example").rule,
      j("github.com").verdict,
      j("github.com").rule,
    ],
    ["blocked", "no-ads", "allowed", "default"],
  );
  assert.equal(judge("", "prevent", "block")("github.com").verdict, "blocked");
});

test("detect mode: a blocked name is detected (answered and reported)", () => {
  const d = judge(NO_ADS, "detect")("a.ads.example");
  assert.deepEqual([d.verdict, d.mode], ["detected", "detect"]);
});

test("the process, the server and the protocol are facts of the query", () => {
  const j = judge(`  - name: curl-dns-only-to-corp
    direction: egress
    action: block
    layer3: { remote: ["!10.0.0.0/8"] }
    layer4: { protocol: udp, port: [53] }
`);
  assert.equal(j("github.com", "10.0.0.53").verdict, "allowed");
  assert.equal(j("github.com", "8.8.8.8").verdict, "blocked");
});

test("a rule naming an interface is taken as matching (the proxy does not know the route)", () => {
  const j = judge(`  - name: vpn-dns
    direction: egress
    action: block
    interface: { name: [wg0] }
    layer4: { protocol: udp, port: [53] }
`);
  assert.deepEqual([j("github.com").verdict, j("github.com").rule], ["blocked", "vpn-dns"]);
});

test("a query is judged as the evaluator decides it, without reading any rule's position", () => {
  const text = `version: 1
mode: prevent
defaults: { ingress: allow, egress: block }
rules:
${NO_ADS}  - name: vpn-dns
    direction: egress
    action: block
    interface: { name: [wg0] }
    layer3: { remote: [10.9.0.0/16] }
  - name: dns
    direction: egress
    action: allow
    layer4: { protocol: udp, port: [53] }
`;
  const checked = checkPolicySource(text, "p.yaml", textOnlyHost);
  assert.ok(checked.model, JSON.stringify(checked.diagnostics));
  // each rule's position counted as read: a first read makes a big policy's position table
  let reads = 0;
  const rules = checked.model.rules.map((r) => {
    const pos = r.pos;
    return Object.defineProperty({ ...r }, "pos", {
      get: () => {
        reads++;
        return pos;
      },
    });
  });
  const model = { ...checked.model, rules };
  const j = policyJudge(() => model);
  const asked = (name: string, server: string) =>
    queryFacts({
      protocol: "udp",
      client: { ip: "10.66.0.2", port: 40000 },
      server: { ip: server, port: 53 },
      name,
      process: null,
    });
  const seen = [
    ["x.ads.example", "10.0.0.53"],
    ["github.com", "10.0.0.53"],
    ["github.com", "10.9.0.53"],
  ].map(([name = "", server = ""]) => j(asked(name, server)));
  assert.equal(reads, 0);
  assert.deepEqual(
    seen.map((v) => [v.verdict, v.rule, v.mode]),
    [
      ["blocked", "no-ads", "prevent"],
      ["allowed", "dns", "prevent"],
      ["blocked", "vpn-dns", "prevent"],
    ],
  );
});
