// Encrypted DNS control (docs/dns.md, "Encrypted DNS"): the dns fields doh, doh_list and ech;
// the built-in set:doh-resolvers (the shipped list, or dns.doh_list, or the policy's own set);
// the implicit rule dns:doh that the evaluator and the compiled images agree on; and HTTPS/SVCB
// answers losing their ech parameter when the policy asks.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import dnsPacket from "dns-packet";
import { acceptPolicy } from "../../src/host/accept-policy.ts";
import { formatDiagnostic } from "../../src/config/index.ts";
import { usesNames } from "../../src/policy/index.ts";
import { lookupImage } from "../../src/policy/compile/lookup.ts";
import { stripHints } from "../../src/dns/answer.ts";
import {
  judgeNamed,
  socketRule,
  v4,
  type NamedConnection as Conn,
} from "../helpers/named-connection.ts";

const dir = mkdtempSync(join(tmpdir(), "moat-doh-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function accept(text: string) {
  const r = acceptPolicy(text, join(dir, "p.yaml"));
  return { ...r, lines: r.diagnostics.map((d) => formatDiagnostic(d).replaceAll(dir, "D")) };
}

const HEAD = "version: 1\nmode: prevent\nattach: { cgroup: / }\n";

test("dns.doh, dns.ech and dns.doh_list: defaults, values, and errors where they are written", () => {
  const none = accept(HEAD);
  assert.equal(none.policy?.model.dns.doh, "allow");
  assert.equal(none.policy?.model.dns.ech, "keep");
  const set = accept(HEAD + "dns: { doh: block, ech: strip }\n");
  assert.ok(set.policy, set.lines.join("\n"));
  assert.equal(set.policy.model.dns.doh, "block");
  assert.equal(set.policy.model.dns.ech, "strip");
  assert.equal(usesNames(set.policy.model), true, "doh: block runs the proxy (the canary)");
  const bad = accept(HEAD + "dns: { doh: off, ech: drop }\n");
  assert.deepEqual(bad.lines, [
    "D/p.yaml:4:13 dns.doh: must be one of allow, block, got 'off'",
    "D/p.yaml:4:23 dns.ech: must be one of strip, keep, got 'drop'",
  ]);
  const noCgroup = accept("version: 1\nmode: prevent\ndns:\n  doh: block\n");
  assert.deepEqual(noCgroup.lines, [
    "D/p.yaml:4:8 dns.doh: 'doh: block' needs attach.cgroup: moat's DNS proxy (which answers the canary use-application-dns.net and learns the resolvers' names) serves the processes under attach.cgroup",
  ]);
  const missing = accept(HEAD + "dns:\n  doh: block\n  doh_list: nowhere.txt\n");
  assert.equal(missing.policy, undefined);
  assert.equal(missing.lines.length, 1);
  assert.match(
    missing.lines[0]!,
    /^D\/p\.yaml:6:13 dns\.doh_list: cannot read set file 'D\/nowhere\.txt'/,
  );
});

test("a bad line in the doh list is an error at its FILE:LINE:COL, the line not quoted", () => {
  writeFileSync(join(dir, "bad-doh.txt"), "# mine\n192.0.2.1\n  not/an/address\n");
  const r = accept(HEAD + "dns: { doh: block, doh_list: bad-doh.txt }\n");
  assert.equal(r.policy, undefined);
  assert.deepEqual(r.lines, [
    'D/bad-doh.txt:3:3 doh-resolvers: not an IP address, CIDR, "a-b" range or hostname (set-file lines are not quoted)',
  ]);
});

test("set:doh-resolvers is built in: the shipped list, names egress-only, a policy's own set wins", () => {
  const rule = (direction: string) =>
    HEAD +
    "rules:\n" +
    `  - { name: no-doh, direction: ${direction}, action: block, layer3: { remote: [set:doh-resolvers] } }\n`;
  const r = accept(rule("egress"));
  assert.ok(r.policy, r.lines.join("\n"));
  const shipped = r.policy.model.sets.get("doh-resolvers");
  assert.equal(shipped?.kind, "address");
  const texts = shipped.kind === "address" ? shipped.entries.map((e) => e.text) : [];
  for (const known of ["1.1.1.1", "8.8.8.8", "9.9.9.9", "2606:4700:4700::1111", "dns.google"])
    assert.ok(texts.includes(known), known);
  assert.ok(r.policy.model.setFiles.some((f) => f.endsWith("data/doh-resolvers.txt")));
  // its names are hostname entries: an ingress rule cannot use them
  const ingress = accept(rule("ingress"));
  assert.equal(ingress.policy, undefined);
  assert.ok(
    ingress.lines.some((l) => l.startsWith("D/p.yaml:5:") && /egress/.test(l)),
    ingress.lines.join("\n"),
  );
  // the policy's own set replaces it (addresses only: usable in any direction)
  const own = accept(
    HEAD +
      "sets: { doh-resolvers: [192.0.2.53] }\n" +
      "dns: { doh_list: ignored.txt }\n" +
      "rules:\n" +
      "  - { name: no-doh, direction: any, action: block, layer3: { remote: [set:doh-resolvers] } }\n",
  );
  assert.ok(own.policy, own.lines.join("\n"));
  assert.deepEqual(own.lines, [
    "D/p.yaml:5:6 dns: warning: the dns section has no effect: no rule names a host (hostname entries in layer3.remote, or layer7.dns.name)",
    "D/p.yaml:5:18 dns.doh_list: warning: 'doh_list' is not read: the policy's own set 'doh-resolvers' replaces the built-in list",
  ]);
  const ports = accept(HEAD + "sets: { doh-resolvers: [443] }\ndns: { doh: block }\n");
  assert.deepEqual(ports.lines, [
    "D/p.yaml:4:24 sets.doh-resolvers: set 'doh-resolvers' is a port set: with 'doh: block' it names the resolvers to block (addresses and hostnames)",
  ]);
  const ownSet = own.policy.model.sets.get("doh-resolvers");
  assert.deepEqual(ownSet?.kind === "address" ? ownSet.entries.map((e) => e.text) : [], [
    "192.0.2.53",
  ]);
});

// --- dns:doh: the evaluator and the compiled images agree ------------------------------------

const DOH_POLICY = (doh: string) =>
  HEAD +
  "defaults: { ingress: block, egress: block }\n" +
  `dns: { doh: ${doh}, doh_list: doh.txt }\n` +
  "rules:\n" +
  "  - { name: web, direction: egress, action: allow, layer4: { protocol: tcp, port: [443, 853] } }\n" +
  "  - { name: quic, direction: egress, action: allow, layer4: { protocol: udp, port: [443] } }\n";

const CONNS: Conn[] = [
  { ip: "192.0.2.53", port: 443, protocol: "tcp", names: [] },
  { ip: "192.0.2.53", port: 853, protocol: "tcp", names: [] },
  { ip: "192.0.2.53", port: 443, protocol: "udp", names: [] },
  { ip: "192.0.2.53", port: 80, protocol: "tcp", names: [] },
  { ip: "198.51.100.9", port: 443, protocol: "tcp", names: [] },
  { ip: "198.51.100.9", port: 443, protocol: "tcp", names: ["doh.example.net"] },
  { ip: "198.51.100.9", port: 443, protocol: "tcp", names: ["a.resolvers.example.org"] },
  { ip: "198.51.100.9", port: 443, protocol: "tcp", names: ["example.org"] },
];

test("dns:doh comes first in the evaluator and in the compiled images, by address and by name", () => {
  writeFileSync(
    join(dir, "doh.txt"),
    "192.0.2.53 # a lab resolver\ndoh.example.net\n*.resolvers.example.org\n",
  );
  const expected = ["dns:doh", "dns:doh", "dns:doh", "default", "web", "dns:doh", "dns:doh", "web"];
  const block = accept(DOH_POLICY("block"));
  assert.ok(block.policy, block.lines.join("\n"));
  const { model, image } = block.policy;
  assert.equal(model.rules[0]?.name, "web", "the model keeps the policy's rules as written");
  assert.ok(model.setFiles.includes(join(dir, "doh.txt")), "dns.doh_list is reloaded on change");
  CONNS.forEach((c, i) => {
    const want = judgeNamed(model, c);
    assert.equal(want.rule, expected[i], JSON.stringify(c));
    const got = image.packet.rules[socketRule(image, c)]!;
    assert.equal(got.name, want.rule, `compiled vs evaluator: ${JSON.stringify(c)}`);
    if (want.rule === "dns:doh") {
      assert.equal(want.verdict, "blocked");
      assert.match(want.reason, /^rule dns:doh \(line 5\): remote .* in set:doh-resolvers/);
      assert.equal(got.reason, "doh", "its events say reason doh");
    }
  });
  assert.equal(image.packet.rules[0]?.name, "dns:doh");
  // the packet hooks see the address entries too
  const packet = lookupImage(image.packet, {
    direction: "egress",
    family: 4,
    protocol: 6,
    remote: v4("192.0.2.53"),
    local: v4("10.0.0.1"),
    serverPort: 443,
    clientPort: 40000,
    icmpType: 0,
    icmpCode: 0,
  });
  assert.equal(image.packet.rules[packet]?.name, "dns:doh");

  const allow = accept(DOH_POLICY("allow"));
  assert.ok(allow.policy, allow.lines.join("\n"));
  for (const c of CONNS) {
    const want = judgeNamed(allow.policy.model, c);
    assert.notEqual(want.rule, "dns:doh");
    assert.equal(
      allow.policy.image.packet.rules[socketRule(allow.policy.image, c)]!.name,
      want.rule,
    );
  }
});

test("a detect-mode policy's dns:doh detects; a user rule may be named doh", () => {
  const r = accept(
    DOH_POLICY("block").replace("mode: prevent", "mode: detect") +
      "  - { name: doh, direction: egress, action: allow }\n",
  );
  assert.ok(r.policy, r.lines.join("\n"));
  const d = judgeNamed(r.policy.model, CONNS[0]!);
  assert.deepEqual([d.rule, d.verdict], ["dns:doh", "detected"]);
});

// --- ech ---------------------------------------------------------------------------------------

/** HTTPS RDATA: priority 1, target ".", alpn h2, ech (a config), ipv6hint. */
function httpsWithEch(): Buffer {
  const param = (key: number, value: Buffer) => {
    const head = Buffer.alloc(4);
    head.writeUInt16BE(key, 0);
    head.writeUInt16BE(value.length, 2);
    return Buffer.concat([head, value]);
  };
  return Buffer.concat([
    Buffer.from([0, 1, 0]),
    param(1, Buffer.from([2, 0x68, 0x32])),
    param(5, Buffer.from("ech-config-list-bytes")),
    param(6, Buffer.alloc(16, 1)),
  ]);
}

const keysOf = (answer: Buffer): number[] => {
  const https = dnsPacket.decode(answer).answers?.[0] as { data: Buffer };
  const keys: number[] = [];
  for (let o = 3; o < https.data.length; o += 4 + https.data.readUInt16BE(o + 2))
    keys.push(https.data.readUInt16BE(o));
  return keys;
};

test("ech: strip removes the ech parameter from HTTPS answers; keep leaves it", () => {
  const answer = dnsPacket.encode({
    type: "response",
    id: 7,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
    questions: [{ type: "A", name: "ech.example.org" }],
    answers: [
      { type: "UNKNOWN_65", name: "ech.example.org", ttl: 60, data: httpsWithEch() } as never,
    ],
  });
  assert.deepEqual(keysOf(stripHints(answer, true)), [1], "alpn kept; ech and the hint gone");
  assert.deepEqual(keysOf(stripHints(answer)), [1, 5], "keep: only the hint goes");
});
