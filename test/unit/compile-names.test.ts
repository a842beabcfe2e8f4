// Name classes (src/policy/compile/names.ts) and the names image (policy-image.ts): a name set's
// class holds exactly the patterns hostMatch says its names match, and the socket hooks' walk
// (image 1, then image 3 with the bound class, the first rule of either) decides what the
// reference evaluator decides with the remote address's names.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parsePolicy } from "../../src/config/index.ts";
import { usesNames, type Decision } from "../../src/policy/index.ts";
import { hostMatch } from "../../src/policy/glob.ts";
import { NameClasses } from "../../src/policy/compile/names.ts";
import { compilePolicy } from "../../src/policy/compile/policy-image.ts";
import { lookupImage } from "../../src/policy/compile/lookup.ts";
import { processClass } from "../../src/policy/compile/process.ts";
import type { ClassifierImage, PacketFacts } from "../../src/policy/compile/image.ts";
import {
  judgeNamed,
  socketRule,
  v4,
  type NamedConnection as Conn,
} from "../helpers/named-connection.ts";

const LABELS = ["a", "b", "c", "zz0", "example", "org"];
const label = fc.constantFrom(...LABELS);
const base = fc.array(label, { minLength: 1, maxLength: 3 }).map((l) => l.join("."));
const pattern = fc
  .tuple(fc.constantFrom("", "*.", "**."), base)
  .map(([prefix, name]) => prefix + name);
const host = fc
  .array(label, { minLength: 1, maxLength: 5 })
  .map((l) => l.join("."))
  .chain((n) => fc.constantFrom(n, `${n}.`, n.toUpperCase()));

const brute = (patterns: readonly string[], names: readonly string[]): string[] =>
  patterns.filter((p) => names.some((n) => hostMatch(p, n)));

const patternsOf = (c: NameClasses, cls: number): string[] =>
  cls === 0 ? [] : c.classes[cls - 1]!.map((i) => c.patterns[i]!);

test("a name's class holds exactly the patterns hostMatch says it matches", () => {
  fc.assert(
    fc.property(fc.uniqueArray(pattern, { minLength: 1, maxLength: 8 }), host, (patterns, name) => {
      const classes = new NameClasses(patterns);
      assert.deepEqual(
        patternsOf(classes, classes.classOf([name])).sort(),
        brute(classes.patterns, [name]).sort(),
      );
    }),
    { numRuns: 2000 },
  );
});

test("a name set's class is the union of its names' patterns (within the budget)", () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(pattern, { minLength: 1, maxLength: 6 }),
      fc.array(host, { minLength: 1, maxLength: 4 }),
      (patterns, names) => {
        const classes = new NameClasses(patterns);
        assert.equal(classes.truncated, false);
        assert.deepEqual(
          patternsOf(classes, classes.classOf(names)).sort(),
          brute(classes.patterns, names).sort(),
        );
      },
    ),
    { numRuns: 1000 },
  );
});

test("past the budget, a union not enumerated gives the first name's class, counted", () => {
  const classes = new NameClasses(["a.org", "b.org", "c.org"], 3);
  assert.equal(classes.count, 3);
  assert.equal(classes.truncated, true);
  const a = classes.classOf(["a.org"]);
  assert.notEqual(a, 0);
  assert.equal(classes.classOf(["x.net", "a.org", "b.org"]), a);
  assert.equal(classes.overBudget, 1);
  assert.equal(classes.classOf(["nothing.net"]), 0);
});

test("every name alone has its class, even past the budget", () => {
  const patterns = Array.from({ length: 50 }, (_, i) => `h${i}.org`);
  const classes = new NameClasses(patterns, 10);
  assert.equal(classes.count, 50);
  for (const p of patterns) assert.deepEqual(patternsOf(classes, classes.classOf([p])), [p]);
});

test("the apex is not matched by its wildcards, and * is one label", () => {
  const classes = new NameClasses(["*.example.org", "**.example.org", "example.org"]);
  const of = (n: string) => patternsOf(classes, classes.classOf([n])).sort();
  assert.deepEqual(of("example.org"), ["example.org"]);
  assert.deepEqual(of("a.example.org"), ["**.example.org", "*.example.org"]);
  assert.deepEqual(of("a.b.example.org"), ["**.example.org"]);
  assert.deepEqual(of("EXAMPLE.org."), ["example.org"]);
});

// --- the images -------------------------------------------------------------------------------

const HOSTS = ["github.com", "api.github.com", "a.b.github.com", "example.org", "x.example.org"];
const HOST_PATTERNS = [
  "github.com",
  "*.github.com",
  "**.github.com",
  "example.org",
  "*.example.org",
];
const IPS = ["192.0.2.1", "192.0.2.2", "198.51.100.7"];
const CIDRS = ["192.0.2.1", "198.51.100.0/24"];

function judge(text: string, c: Conn): Decision {
  return judgeNamed(parsePolicy(text, "p.yaml"), c);
}

const ruleArb = fc.record({
  action: fc.constantFrom("allow", "block"),
  remote: fc.uniqueArray(fc.constantFrom(...HOST_PATTERNS, ...CIDRS), {
    minLength: 1,
    maxLength: 3,
  }),
  port: fc.option(fc.constantFrom(443, 80), { nil: undefined }),
});

function policyText(rules: { action: string; remote: string[]; port?: number }[]): string {
  const lines = [
    "version: 1",
    "attach: { cgroup: / }",
    "defaults: { ingress: block, egress: block }",
    "rules:",
  ];
  rules.forEach((r, i) => {
    lines.push(`  - name: r${i}`, "    direction: egress", `    action: ${r.action}`);
    lines.push(`    layer3: { remote: [${r.remote.map((e) => JSON.stringify(e)).join(", ")}] }`);
    if (r.port) lines.push(`    layer4: { protocol: tcp, port: [${r.port}] }`);
  });
  return lines.join("\n") + "\n";
}

test("hostname rules: the socket hooks' walk decides what the evaluator decides with names", () => {
  fc.assert(
    fc.property(
      fc.array(ruleArb, { minLength: 1, maxLength: 5 }),
      fc.array(
        fc.record({
          ip: fc.constantFrom(...IPS),
          port: fc.constantFrom(443, 80, 22),
          protocol: fc.constant("tcp" as const),
          names: fc.uniqueArray(fc.constantFrom(...HOSTS), { maxLength: 2 }),
        }),
        { minLength: 1, maxLength: 10 },
      ),
      (rules, conns) => {
        const text = policyText(rules);
        const model = parsePolicy(text, "p.yaml");
        const img = compilePolicy(model, null);
        for (const c of conns) {
          const want = judge(text, c);
          const got = img.packet.rules[socketRule(img, c)]!;
          assert.equal(got.name, want.rule, `${JSON.stringify(c)}\n${text}`);
        }
      },
    ),
    { numRuns: 150 },
  );
});

const MIXED = `version: 1
attach: { cgroup: / }
defaults: { ingress: block, egress: block }
rules:
  - name: gh
    direction: egress
    action: allow
    layer3: { remote: [github.com, 198.51.100.0/24] }
    layer4: { protocol: tcp, port: [443] }
`;

test("the packet image keeps a mixed list's addresses; a hostname-only rule matches nothing there", () => {
  const model = parsePolicy(MIXED, "p.yaml");
  assert.equal(usesNames(model), true);
  const img = compilePolicy(model, null);
  const packet = (ip: string) =>
    lookupImage(img.packet, {
      direction: "egress",
      family: 4,
      protocol: 6,
      remote: v4(ip),
      local: v4("10.0.0.1"),
      serverPort: 443,
      clientPort: 40000,
      icmpType: 0,
      icmpCode: 0,
    });
  assert.equal(img.packet.rules[packet("198.51.100.9")]!.name, "gh");
  assert.equal(img.packet.rules[packet("192.0.2.1")]!.name, "default");
  assert.ok(img.names, "a names image");
  assert.equal(img.names.classes.classOf(["github.com"]), 1);
});

const DNS = `version: 1
attach: { cgroup: / }
defaults: { ingress: block, egress: block }
rules:
  - name: dot
    direction: egress
    action: allow
    layer7: { dns: { over_tls: true } }
  - name: queries
    direction: egress
    action: block
    layer7: { dns: { name: ["**.evil.example"] } }
`;

test("layer7.dns: over_tls is tcp 853, names are the proxy's (flagged, port 53, socket image only)", () => {
  const model = parsePolicy(DNS, "p.yaml");
  assert.equal(usesNames(model), true);
  const img = compilePolicy(model, null, {
    dnsProxy: { udp: { ip: "127.0.0.1", port: 5300 }, tcp: { ip: "127.0.0.1", port: 5301 } },
  });
  const facts = (protocol: number, port: number, clientPort: number): PacketFacts => ({
    direction: "egress",
    family: 4,
    protocol,
    remote: v4("192.0.2.53"),
    local: v4("10.0.0.1"),
    serverPort: port,
    clientPort,
    icmpType: 0,
    icmpCode: 0,
  });
  const name = (image: ClassifierImage, f: PacketFacts) => image.rules[lookupImage(image, f)]!.name;
  assert.equal(name(img.packet, facts(6, 853, 40000)), "dot");
  assert.equal(name(img.packet, facts(17, 853, 40000)), "default");
  assert.equal(name(img.packet, facts(17, 53, 40000)), "default");
  const p = processClass(img.socket!.process, {
    dev: 0,
    ino: 0n,
    comm: "dig",
    uid: 0,
    cgroupId: 1n,
  });
  assert.equal(name(img.socket!.image, facts(17, 53, p)), "queries");
  assert.equal(name(img.socket!.image, facts(6, 53, p)), "queries");
  assert.equal(name(img.socket!.image, facts(6, 443, p)), "default");
  assert.equal(img.packet.rules[1]!.layer7, true);
  assert.equal(img.packet.rules[0]!.layer7, undefined);
  // the dns-proxy redirects come first, quiet; the policy's own follow
  const targets = img.redirect!.targets;
  assert.deepEqual(
    targets.map((t) => [t.name, t.port, t.quiet ?? false]),
    [
      ["dns-proxy", 5300, true],
      ["dns-proxy", 5301, true],
    ],
  );
  const redirect = (protocol: number) =>
    lookupImage(img.redirect!.image, { ...facts(protocol, 53, p) });
  assert.equal(redirect(17), 0);
  assert.equal(redirect(6), 1);
});

const SETS = `version: 1
attach: { cgroup: / }
defaults: { ingress: block, egress: block }
sets:
  forge: ["*.github.com", 198.51.100.0/24]
rules:
  - name: forge
    direction: egress
    action: allow
    layer3: { remote: [set:forge] }
`;

test("hostname entries in a set: the set's names go to the names image, its addresses stay", () => {
  const model = parsePolicy(SETS, "p.yaml");
  assert.equal(usesNames(model), true);
  const img = compilePolicy(model, null);
  assert.deepEqual(img.names?.classes.patterns, ["*.github.com"]);
  const conn = (ip: string, names: string[]): Conn => ({ ip, port: 443, protocol: "tcp", names });
  const rule = (c: Conn) => img.packet.rules[socketRule(img, c)]!.name;
  assert.equal(rule(conn("192.0.2.1", ["api.github.com"])), "forge");
  assert.equal(rule(conn("192.0.2.1", ["github.com"])), "default");
  assert.equal(rule(conn("198.51.100.4", [])), "forge");
});
