// The reference evaluator on packet facts: first match, defaults, directions, ports, negation,
// ranges, sets, modes, and the reason a user reads.

import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicy } from "../../src/config/index.ts";
import {
  evaluate,
  FactsError,
  type ConnectionFacts,
  type Evaluation,
} from "../../src/policy/evaluator.ts";

const policy = parsePolicy(
  `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
sets:
  corp: [10.0.0.0/8, "192.168.1.10-192.168.1.20", "fd00::/8", "!10.66.0.0/16"]
  web-ports: [80, 443, "8000-8999"]
rules:
  - name: ssh-from-corp
    direction: ingress
    action: allow
    layer3: { remote: [set:corp] }
    layer4: { protocol: tcp, port: [22] }
  - name: web
    direction: ingress
    action: allow
    layer4: { port: [set:web-ports] }
  - name: ping
    direction: ingress
    action: allow
    layer4: { protocol: icmp, icmp: { type: 8 } }
  - name: no-telnet-anywhere
    direction: any
    action: block
    layer4: { protocol: tcp, port: ["23"] }
  - name: not-to-corp-dns
    direction: egress
    action: block
    mode: detect
    layer3: { remote: ["!10.0.0.0/8", "!fd00::/8"] }
    layer4: { protocol: udp, port: [53], source_port: ["1024-65535"] }
  - name: only-local-10
    direction: egress
    action: block
    layer3: { local: [10.0.0.1] , remote: [203.0.113.0/24] }
`,
  "policy.yaml",
);

function tcp(
  direction: "ingress" | "egress",
  local: string,
  remote: string,
  protocol: ConnectionFacts["protocol"] = "tcp",
): ConnectionFacts {
  const split = (s: string) => {
    const i = s.lastIndexOf(":");
    return { ip: s.slice(0, i).replace(/^\[|\]$/g, ""), port: Number(s.slice(i + 1)) };
  };
  const l = split(local);
  return {
    direction,
    protocol,
    family: l.ip.includes(":") ? 6 : 4,
    local: l,
    remote: split(remote),
  };
}

const brief = (e: Evaluation) =>
  e.verdict === "deferred"
    ? [e.verdict, e.rule, e.reason]
    : [e.verdict, e.action, e.rule, e.mode, e.reason];

test("first match wins; the reason names the rule, its line and what matched", () => {
  assert.deepEqual(brief(evaluate(policy, tcp("ingress", "10.0.0.1:22", "10.1.2.3:51514"))), [
    "allowed",
    "allow",
    "ssh-from-corp",
    "prevent",
    "rule ssh-from-corp (line 8): remote 10.1.2.3 in set:corp, tcp port 22",
  ]);
  assert.deepEqual(brief(evaluate(policy, tcp("ingress", "10.0.0.1:8080", "203.0.113.9:40000"))), [
    "allowed",
    "allow",
    "web",
    "prevent",
    "rule web (line 13): tcp port 8080 in set:web-ports",
  ]);
});

test("no match: defaults.<direction>, rule 'default'", () => {
  assert.deepEqual(brief(evaluate(policy, tcp("ingress", "10.0.0.1:22", "203.0.113.9:51514"))), [
    "blocked",
    "block",
    "default",
    "prevent",
    "no rule matched; defaults.ingress = block",
  ]);
  assert.deepEqual(brief(evaluate(policy, tcp("egress", "10.0.0.1:40000", "198.51.100.1:22"))), [
    "allowed",
    "allow",
    "default",
    "prevent",
    "no rule matched; defaults.egress = allow",
  ]);
});

test("set and list exclusions: a '!' entry excludes, a list of only '!' entries matches the rest", () => {
  // 10.66.0.0/16 is excluded from set corp
  assert.equal(evaluate(policy, tcp("ingress", "10.0.0.1:22", "10.66.1.1:51514")).rule, "default");
  assert.equal(
    evaluate(policy, tcp("ingress", "10.0.0.1:22", "192.168.1.15:51514")).rule,
    "ssh-from-corp",
  );
  assert.equal(
    evaluate(policy, tcp("ingress", "10.0.0.1:22", "192.168.1.21:51514")).rule,
    "default",
  );
  assert.equal(
    evaluate(policy, tcp("ingress", "[fd00::1]:22", "[fd00::2]:51514")).rule,
    "ssh-from-corp",
  );
  const dns = evaluate(policy, tcp("egress", "10.0.0.5:40000", "9.9.9.9:53", "udp"));
  assert.deepEqual(brief(dns), [
    "detected",
    "block",
    "not-to-corp-dns",
    "detect",
    "rule not-to-corp-dns (line 25): remote 9.9.9.9 not in 10.0.0.0/8 or fd00::/8, udp port 53, source port 40000 in 1024-65535; detect mode: reported, not dropped",
  ]);
  assert.equal(
    evaluate(policy, tcp("egress", "10.0.0.5:40000", "10.0.0.53:53", "udp")).rule,
    "default",
  );
});

test("port is the server side: local for ingress, remote for egress", () => {
  // egress to remote port 23 matches the any-direction telnet rule; ingress from remote port 23 does not
  assert.equal(
    evaluate(policy, tcp("egress", "10.0.0.1:40000", "198.51.100.1:23")).rule,
    "no-telnet-anywhere",
  );
  assert.equal(
    evaluate(policy, tcp("ingress", "10.0.0.1:40000", "198.51.100.1:23")).rule,
    "default",
  );
  assert.equal(
    evaluate(policy, tcp("ingress", "10.0.0.1:23", "198.51.100.1:40000")).rule,
    "no-telnet-anywhere",
  );
  // source_port is the client side: a DNS query from a privileged port does not match
  assert.equal(evaluate(policy, tcp("egress", "10.0.0.5:53", "9.9.9.9:53", "udp")).rule, "default");
});

test("protocol any with ports matches tcp and udp only; icmp type and code", () => {
  assert.equal(evaluate(policy, tcp("ingress", "10.0.0.1:443", "1.2.3.4:5000", "udp")).rule, "web");
  const ping = evaluate(policy, {
    direction: "ingress",
    protocol: "icmp",
    family: 4,
    local: { ip: "10.0.0.1" },
    remote: { ip: "203.0.113.9" },
    icmp: { type: 8, code: 0 },
  });
  assert.deepEqual(brief(ping), [
    "allowed",
    "allow",
    "ping",
    "prevent",
    "rule ping (line 17): icmp type 8 code 0",
  ]);
  const reply = evaluate(policy, {
    direction: "ingress",
    protocol: "icmp",
    family: 4,
    local: { ip: "10.0.0.1" },
    remote: { ip: "203.0.113.9" },
    icmp: { type: 0, code: 0 },
  });
  assert.equal(reply.rule, "default");
  // a protocol number that is neither tcp nor udp never matches a rule with ports
  const gre = evaluate(policy, {
    direction: "ingress",
    protocol: 47,
    family: 4,
    local: { ip: "10.0.0.1" },
    remote: { ip: "1.2.3.4" },
  });
  assert.equal(gre.rule, "default");
});

test("layer3 local and remote must both match", () => {
  assert.equal(
    evaluate(policy, tcp("egress", "10.0.0.1:40000", "203.0.113.7:443")).rule,
    "only-local-10",
  );
  assert.equal(
    evaluate(policy, tcp("egress", "10.0.0.2:40000", "203.0.113.7:443")).rule,
    "default",
  );
});

test("an IPv4-mapped IPv6 connection is judged as IPv4", () => {
  const mapped = tcp("ingress", "[::ffff:10.0.0.1]:22", "[::ffff:10.1.2.3]:51514");
  assert.equal(evaluate(policy, mapped).rule, "ssh-from-corp");
});

const detect = parsePolicy(
  `version: 1
mode: detect
defaults: { ingress: block, egress: block }
rules:
  - name: enforce-ssh-block
    direction: ingress
    action: block
    mode: prevent
    layer4: { protocol: tcp, port: [22] }
  - name: open-web
    direction: ingress
    action: allow
    log: true
    layer4: { protocol: tcp, port: [80] }
  - name: session
    direction: egress
    action: allow
    layer4: { protocol: tcp, port: [443], max_duration: 8h }
`,
  "detect.yaml",
);

test("detect mode: a block is 'detected' (never dropped), the defaults included; a rule's mode overrides", () => {
  assert.deepEqual(brief(evaluate(detect, tcp("ingress", "10.0.0.1:25", "1.2.3.4:5000"))), [
    "detected",
    "block",
    "default",
    "detect",
    "no rule matched; defaults.ingress = block; detect mode: reported, not dropped",
  ]);
  assert.deepEqual(brief(evaluate(detect, tcp("ingress", "10.0.0.1:22", "1.2.3.4:5000"))), [
    "blocked",
    "block",
    "enforce-ssh-block",
    "prevent",
    "rule enforce-ssh-block (line 5): tcp port 22",
  ]);
  const web = evaluate(detect, tcp("ingress", "10.0.0.1:80", "1.2.3.4:5000"));
  assert.equal(web.verdict, "allowed");
});

test("report: blocks and detections always, allowed matches only with log: true; max_duration", () => {
  const web = evaluate(detect, tcp("ingress", "10.0.0.1:80", "1.2.3.4:5000"));
  const session = evaluate(detect, tcp("egress", "10.0.0.1:40000", "1.2.3.4:443"));
  const dropped = evaluate(detect, tcp("ingress", "10.0.0.1:22", "1.2.3.4:5000"));
  assert.ok(
    web.verdict === "allowed" && session.verdict === "allowed" && dropped.verdict === "blocked",
  );
  assert.deepEqual([web.report, session.report, dropped.report], [true, false, true]);
  assert.equal(session.maxDurationSeconds, 28800);
  assert.equal(session.reason, "rule session (line 15): tcp port 443; reported (detect) after 8h");
  const prevent = parsePolicy(
    `version: 1
mode: prevent
rules:
  - { name: session, direction: egress, action: allow, layer4: { protocol: tcp, port: [443], max_duration: 8h } }
`,
    "p.yaml",
  );
  const cut = evaluate(prevent, tcp("egress", "10.0.0.1:40000", "1.2.3.4:443"));
  assert.equal(cut.reason, "rule session (line 4): tcp port 443; reset after 8h");
  const allowedByDefault = evaluate(
    parsePolicy("version: 1\nmode: prevent\n", "p.yaml"),
    tcp("egress", "10.0.0.1:1", "1.1.1.1:2"),
  );
  assert.ok(allowedByDefault.verdict === "allowed" && !allowedByDefault.report);
});

test("a rule with no conditions matches every connection of its direction", () => {
  const all = parsePolicy(
    "version: 1\nmode: prevent\nrules:\n  - { name: everything-out, direction: egress, action: block }\n",
    "p.yaml",
  );
  assert.deepEqual(brief(evaluate(all, tcp("egress", "10.0.0.1:1", "1.1.1.1:2"))), [
    "blocked",
    "block",
    "everything-out",
    "prevent",
    "rule everything-out (line 4): matches every egress connection",
  ]);
  assert.equal(evaluate(all, tcp("ingress", "10.0.0.1:1", "1.1.1.1:2")).rule, "default");
});

test("facts that cannot describe a connection throw FactsError (code EFACTS)", () => {
  const bad: [ConnectionFacts, string][] = [
    [
      tcp("ingress", "10.0.0.300:22", "1.2.3.4:5"),
      "local address: '10.0.0.300' is not an IPv4 address (300 > 255)",
    ],
    [
      { ...tcp("ingress", "10.0.0.1:22", "1.2.3.4:5"), family: 6 },
      "local address 10.0.0.1 is not IPv6",
    ],
    [
      { ...tcp("ingress", "10.0.0.1:22", "1.2.3.4:5"), protocol: "sctp" as "tcp" },
      "'sctp' is not a protocol (tcp, udp, icmp, icmpv6 or 0-255)",
    ],
    [
      {
        direction: "ingress",
        protocol: "tcp",
        family: 4,
        local: { ip: "10.0.0.1" },
        remote: { ip: "1.2.3.4", port: 5 },
      },
      "local port is missing (tcp has ports)",
    ],
  ];
  for (const [facts, message] of bad)
    assert.throws(
      () => evaluate(policy, facts),
      (err: unknown) =>
        err instanceof FactsError && err.code === "EFACTS" && err.message === message,
    );
});

const names = parsePolicy(
  `version: 1
mode: prevent
defaults: { ingress: block, egress: block }
attach: { cgroup: / }
rules:
  - name: no-ads-lookups
    direction: egress
    action: block
    layer7: { dns: { name: ["**.ads.example"] } }
  - name: resolvers
    direction: egress
    action: allow
    layer3: { remote: [10.0.0.53] }
    layer4: { port: [53] }
  - name: no-dot
    direction: egress
    action: block
    layer7: { dns: { over_tls: true } }
  - name: api-or-corp
    direction: egress
    action: allow
    layer3: { remote: [api.example.org, "*.cdn.example", 10.0.0.0/8] }
    layer4: { protocol: tcp, port: [443] }
  - name: api-any-protocol
    direction: egress
    action: allow
    layer3: { remote: [api.example.org] }
`,
  "names.yaml",
);

/** A query from 10.0.0.5; the server's address has no names for this process. */
const query = (server: string, name?: string, protocol: "udp" | "tcp" = "udp"): ConnectionFacts => {
  const facts = tcp("egress", "10.0.0.5:40000", server, protocol);
  facts.remote.names = [];
  if (name) facts.layer7 = { dns: { name } };
  return facts;
};

test("layer7.dns.name judges DNS queries (port 53) by the queried name; without it, deferred", () => {
  assert.deepEqual(brief(evaluate(names, query("9.9.9.9:53", "x.Ads.example."))), [
    "blocked",
    "block",
    "no-ads-lookups",
    "prevent",
    "rule no-ads-lookups (line 6): dns query x.Ads.example.",
  ]);
  // the apex is not below itself; a query over TCP is a query too
  assert.equal(evaluate(names, query("10.0.0.53:53", "ads.example")).rule, "resolvers");
  assert.equal(
    evaluate(names, query("9.9.9.9:53", "a.b.ads.example", "tcp")).rule,
    "no-ads-lookups",
  );
  const unknown = evaluate(names, query("10.0.0.53:53"));
  assert.ok(unknown.verdict === "deferred");
  assert.deepEqual(unknown.needs, ["DNS query name"]);
  assert.deepEqual(
    unknown.possible.map((d) => `${d.verdict} by ${d.rule}`),
    ["blocked by no-ads-lookups", "allowed by resolvers"],
  );
  // moat's proxy sees queries to port 53 only: elsewhere a name rule never matches
  assert.equal(evaluate(names, query("9.9.9.9:5353", "x.ads.example")).rule, "default");
  // a connection known to carry something else is not a query
  const http = { http: { host: "x", method: "GET", path: "/", headers: {}, version: "1.1" } };
  assert.equal(evaluate(names, { ...query("10.0.0.53:53"), layer7: http }).rule, "resolvers");
});

test("layer7.dns.over_tls is decided by ports alone: DNS over TLS is TCP port 853", () => {
  assert.deepEqual(brief(evaluate(names, query("1.1.1.1:853", undefined, "tcp"))), [
    "blocked",
    "block",
    "no-dot",
    "prevent",
    "rule no-dot (line 15): DNS over TLS (tcp port 853)",
  ]);
  assert.equal(evaluate(names, query("1.1.1.1:853", undefined, "udp")).rule, "default");
});

test("hostname entries: the remote address's names for this identity decide; unknown names defer", () => {
  const https = (ip: string, known?: string[]): ConnectionFacts => {
    const facts = tcp("egress", "10.0.0.5:40000", `${ip}:443`);
    if (known) facts.remote.names = known;
    return facts;
  };
  const unknown = evaluate(names, https("203.0.113.5"));
  assert.ok(unknown.verdict === "deferred");
  assert.deepEqual(unknown.needs, ["DNS names of the remote address"]);
  assert.deepEqual(brief(evaluate(names, https("203.0.113.5", ["api.example.org"]))), [
    "allowed",
    "allow",
    "api-or-corp",
    "prevent",
    "rule api-or-corp (line 19): remote 203.0.113.5 in api.example.org (DNS), tcp port 443",
  ]);
  // one label below only; names sharing an address merge (any of them matches)
  assert.equal(evaluate(names, https("203.0.113.5", ["a.b.cdn.example"])).rule, "default");
  assert.equal(
    evaluate(names, https("203.0.113.5", ["other.example", "x.cdn.example"])).rule,
    "api-or-corp",
  );
  // a list of names and addresses is either: the address decides without the names
  assert.equal(evaluate(names, https("10.1.2.3")).rule, "api-or-corp");
});

test("hostname entries match connections this host opens over TCP or UDP, never other protocols", () => {
  const ping: ConnectionFacts = {
    direction: "egress",
    protocol: "icmp",
    family: 4,
    local: { ip: "10.0.0.5" },
    remote: { ip: "203.0.113.5", names: ["api.example.org"] },
    icmp: { type: 8, code: 0 },
  };
  assert.equal(evaluate(names, ping).rule, "default");
  // with the names unknown too: nothing to wait for
  const remote = { ip: ping.remote.ip };
  assert.equal(evaluate(names, { ...ping, remote }).rule, "default");
  const udp = { ...tcp("egress", "10.0.0.5:40000", "203.0.113.5:5000", "udp") };
  udp.remote.names = ["api.example.org"];
  assert.equal(evaluate(names, udp).rule, "api-any-protocol");
});
