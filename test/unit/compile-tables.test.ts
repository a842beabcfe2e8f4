// Compiler step 5 and the whole: the final rule tables (remoteOnly, anyRemote, remoteY), the
// image's rule list and defaults, the decision a user sees, budgets (EPOLICYSIZE) and what the
// packet classifier cannot compile (EPOLICYUNSUPPORTED).

import { dir4Lookup, DIR4_BITMAP } from "../../src/policy/compile/dir4.ts";
import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicy } from "../../src/config/index.ts";
import { parseIp } from "../../src/config/ip.ts";
import { compile } from "../../src/policy/compile/compile.ts";
import { RULE_NONE, type PacketFacts } from "../../src/policy/compile/image.ts";
import { classify, imageDecision, lookupImage } from "../../src/policy/compile/lookup.ts";

const HEADER = `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
`;

const policy = (rules: string, header = HEADER) =>
  parsePolicy(`${header}rules:\n${rules}`, "p.yaml");

function bytes(ip: string): Uint8Array {
  const parsed = parseIp(ip);
  assert.ok(parsed.ok);
  const { family, value } = parsed.value;
  const n = family === 4 ? 4 : 16;
  return Uint8Array.from({ length: n }, (_, i) =>
    Number((value >> BigInt(8 * (n - 1 - i))) & 0xffn),
  );
}

function packet(
  p: Partial<Omit<PacketFacts, "remote" | "local">> & { remote: string; local?: string },
): PacketFacts {
  const family = p.remote.includes(":") ? 6 : 4;
  return {
    direction: p.direction ?? "ingress",
    family,
    protocol: p.protocol ?? 6,
    remote: bytes(p.remote),
    local: bytes(p.local ?? (family === 4 ? "192.0.2.1" : "2001:db8::1")),
    serverPort: p.serverPort ?? 22,
    clientPort: p.clientPort ?? 40000,
    icmpType: p.icmpType ?? 0,
    icmpCode: p.icmpCode ?? 0,
  };
}

const ruleOf = (image: ReturnType<typeof compile>, facts: PacketFacts) =>
  imageDecision(image, lookupImage(image, facts)).rule;

test("image rules: the policy's rules in order, then default ingress and default egress", () => {
  const image = compile(
    policy(
      `  - { name: ssh, direction: ingress, action: allow, log: true, layer4: { protocol: tcp, port: [22], max_duration: 8h } }
  - { name: watch, direction: egress, action: block, mode: detect, layer4: { protocol: udp } }
`,
    ),
  );
  assert.equal(image.ruleCount, 2);
  assert.deepEqual(image.defaultRule, { ingress: 2, egress: 3 });
  assert.deepEqual(image.rules, [
    { name: "ssh", action: "allow", mode: "prevent", log: true, maxDurationSeconds: 8 * 3600 },
    { name: "watch", action: "block", mode: "detect", log: false, maxDurationSeconds: 0 },
    { name: "default", action: "block", mode: "prevent", log: false, maxDurationSeconds: 0 },
    { name: "default", action: "allow", mode: "prevent", log: false, maxDurationSeconds: 0 },
  ]);
});

test("decisions read like the evaluator's: a block in detect mode is 'detected'", () => {
  const image = compile(
    policy(
      `  - { name: watch, direction: egress, action: block, mode: detect, layer4: { protocol: udp } }
  - { name: web, direction: ingress, action: allow, layer4: { port: [443] } }
`,
      HEADER.replace("mode: prevent", "mode: detect"),
    ),
  );
  assert.deepEqual(
    classify(image, packet({ remote: "198.51.100.7", direction: "egress", protocol: 17 })),
    {
      verdict: "detected",
      action: "block",
      rule: "watch",
      mode: "detect",
      report: true,
      maxDurationSeconds: 0,
    },
  );
  assert.equal(
    classify(image, packet({ remote: "198.51.100.7", serverPort: 443 })).verdict,
    "allowed",
  );
  const fallback = classify(image, packet({ remote: "198.51.100.7", serverPort: 444 }));
  assert.deepEqual(
    [fallback.verdict, fallback.rule, fallback.mode],
    ["detected", "default", "detect"],
  );
  assert.throws(() => imageDecision(image, 99), RangeError);
});

test("a block list goes to remoteOnly, per direction, and never into remoteY", () => {
  const image = compile(
    policy(
      `  - { name: bad-in, direction: ingress, action: block, layer3: { remote: [203.0.113.0/24] } }
  - { name: ssh, direction: ingress, action: allow, layer3: { remote: [203.0.0.0/16] }, layer4: { protocol: tcp, port: [22] } }
`,
    ),
  );
  const inList = packet({ remote: "203.0.113.9" });
  assert.equal(ruleOf(image, inList), "bad-in");
  assert.equal(ruleOf(image, { ...inList, direction: "egress" }), "default");
  assert.equal(ruleOf(image, packet({ remote: "203.0.1.1" })), "ssh");
  // the ssh entry for the block list's class can never win, so it is not stored
  assert.equal(image.remoteY.r.length, 1);
  const blocked = dir4Lookup(image.remote4, (203 * 2 ** 24 + 113 * 2 ** 8) >>> 0);
  assert.equal(image.remoteOnly[blocked * 2], 0);
  assert.equal(image.remoteOnly[blocked * 2 + 1], RULE_NONE);
});

test("rules without a remote constraint go to anyRemote; remoteY holds only winning pairs", () => {
  const image = compile(
    policy(
      `  - { name: web, direction: ingress, action: allow, layer4: { protocol: tcp, port: [80] } }
  - { name: corp-web, direction: ingress, action: block, layer3: { remote: [10.0.0.0/8] }, layer4: { protocol: tcp, port: [80] } }
  - { name: corp-ssh, direction: ingress, action: allow, layer3: { remote: [10.0.0.0/8] }, layer4: { protocol: tcp, port: [22] } }
`,
    ),
  );
  assert.equal(ruleOf(image, packet({ remote: "10.1.1.1", serverPort: 80 })), "web");
  assert.equal(ruleOf(image, packet({ remote: "10.1.1.1", serverPort: 22 })), "corp-ssh");
  assert.equal(ruleOf(image, packet({ remote: "11.1.1.1", serverPort: 22 })), "default");
  // corp-web is shadowed by web on port 80: only corp-ssh is in remoteY
  assert.deepEqual([...image.remoteY.rule], [2]);
  assert.equal(image.anyRemote.filter((r) => r === 0).length, 1);
});

test("local address, client port and icmp combine through X and Y", () => {
  const image = compile(
    policy(
      `  - { name: dns, direction: ingress, action: allow, layer3: { local: [192.0.2.53] }, layer4: { protocol: udp, port: [53], source_port: ["1024-65535"] } }
  - { name: ping, direction: ingress, action: allow, layer4: { protocol: icmp, icmp: { type: 8 } } }
  - { name: ping6, direction: any, action: allow, layer3: { remote: ["2001:db8::/32"] }, layer4: { protocol: icmpv6, icmp: { type: 128, code: 0 } } }
`,
    ),
  );
  const dns = packet({
    remote: "198.51.100.1",
    local: "192.0.2.53",
    protocol: 17,
    serverPort: 53,
    clientPort: 5353,
  });
  assert.equal(ruleOf(image, dns), "dns");
  assert.equal(ruleOf(image, { ...dns, clientPort: 53 }), "default");
  assert.equal(ruleOf(image, { ...dns, local: bytes("192.0.2.54") }), "default");
  assert.equal(
    ruleOf(image, packet({ remote: "198.51.100.1", protocol: 1, icmpType: 8, icmpCode: 7 })),
    "ping",
  );
  assert.equal(
    ruleOf(image, packet({ remote: "198.51.100.1", protocol: 1, icmpType: 0 })),
    "default",
  );
  const ping6 = packet({ remote: "2001:db8::9", protocol: 58, icmpType: 128, direction: "egress" });
  assert.equal(ruleOf(image, ping6), "ping6");
  assert.equal(ruleOf(image, { ...ping6, icmpCode: 1 }), "default");
  assert.ok(image.nl >= 2 && image.ns >= 2 && image.nx >= 2);
  assert.equal(image.lx.length, image.nl * image.ns);
  assert.equal(image.px.length, image.np * image.nx);
});

test("other protocols are judged by number", () => {
  const image = compile(
    policy(`  - { name: gre, direction: any, action: allow, layer4: { protocol: 47 } }
  - { name: no-ports, direction: ingress, action: allow, layer4: { port: ["0-65535"] } }
`),
  );
  assert.equal(ruleOf(image, packet({ remote: "198.51.100.1", protocol: 47 })), "gre");
  assert.equal(ruleOf(image, packet({ remote: "198.51.100.1", protocol: 50 })), "default");
  assert.equal(
    ruleOf(image, packet({ remote: "198.51.100.1", protocol: 17, serverPort: 9 })),
    "no-ports",
  );
});

test("an IPv6 rule never matches a packet the kernel reports as IPv4 (mapped addresses)", () => {
  const image = compile(
    policy(`  - { name: mapped, direction: any, action: allow, layer3: { remote: ["::ffff:10.0.0.0/104"] } }
`),
  );
  assert.equal(dir4Lookup(image.remote4, 10 * 2 ** 24 + 1), 0, "no IPv4 address has a class");
  assert.equal(ruleOf(image, packet({ remote: "10.0.0.1" })), "default");
});

test("compiling is deterministic", () => {
  const text = `  - { name: a, direction: any, action: allow, layer3: { remote: [10.0.0.0/8, "!10.1.0.0/16"] }, layer4: { port: [80, 443] } }
  - { name: b, direction: egress, action: block, layer3: { local: ["fd00::/8"] } }
`;
  assert.deepEqual(compile(policy(text)), compile(policy(text)));
});

test("a policy over a budget is refused with the dimension, the count and the rules", () => {
  const text = `  - { name: many, direction: ingress, action: allow, layer3: { remote: [10.0.0.1, 10.0.0.3, 10.0.0.5, 10.0.0.7] }, layer4: { protocol: tcp, port: [1, 3, 5] } }
  - { name: few, direction: ingress, action: allow, layer3: { remote: [10.0.0.9], local: [192.0.2.1, 192.0.2.3] }, layer4: { protocol: udp, source_port: [7] } }
`;
  const refuse = (budgets: Parameters<typeof compile>[1], pattern: RegExp) =>
    assert.throws(
      () => compile(policy(text), budgets),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, "EPOLICYSIZE");
        assert.match(err.message, pattern);
        return true;
      },
    );
  refuse(
    { budgets: { lpmEntries: 65_540 } },
    /the remote IPv4 address table needs 65,547 entries \(limit 65,540\); most come from rule many \(line \d+\): 4 address ranges, rule few/,
  );
  refuse(
    { budgets: { portX: 3 } },
    /port x \(local, client port\) table \(3 x 2 classes\) needs 6 entries \(limit 3\); most come from rule few \(line 6\): 2 classes, rule many \(line 5\): 1 class$/,
  );
  refuse(
    { budgets: { localSport: 2 } },
    /local address x client port table \(2 x 2 classes\) needs 4 entries \(limit 2\); most come from rule few \(line 6\): 2 classes$/,
  );
  refuse(
    { budgets: { remoteY: 1 } },
    /the remote x Y hash needs 2 entries \(limit 1\); most come from rule many \(line 5\): 1 entry, rule few \(line 6\): 1 entry$/,
  );
  assert.doesNotThrow(() => compile(policy(text)));
});

test("IPv4 /24 blocks over the budget: the directory falls back to segments, same classes", () => {
  // 40 /32s in 10.0/16: a /16 of 81 runs, a block of 5 + 40 entries + 40 x 3 runs
  const hosts = Array.from({ length: 40 }, (_, i) => `10.0.${i * 5}.${i + 1}`);
  const text = `  - { name: hosts, direction: ingress, action: block, layer3: { remote: [${hosts.join(", ")}] } }
`;
  const blocks = compile(policy(text));
  const segments = compile(policy(text), { budgets: { lpmEntries: 65_536 + 81 } });
  assert.equal(blocks.remote4.words[2 * 10 * 256 + 1], DIR4_BITMAP);
  assert.equal(segments.remote4.words[2 * 10 * 256 + 1], 81, "a segment of 81 runs");
  assert.equal(segments.remote4.length, 65_536 + 81);
  for (let a = 10 * 2 ** 24; a < 10 * 2 ** 24 + 65536; a += 7)
    assert.equal(dir4Lookup(segments.remote4, a), dir4Lookup(blocks.remote4, a));
  assert.throws(
    () => compile(policy(text), { budgets: { lpmEntries: 65_536 + 80 } }),
    /the remote IPv4 address table needs 65,617 entries \(limit 65,616\)/,
  );
});

test("the remote x Y budget stops counting early and says so", () => {
  // nested remotes and ports: remote class k x port class j is first matched by rule max(j, k),
  // so every one of the 40 x 40 pairs is an entry
  const rules = Array.from(
    { length: 40 },
    (_, i) =>
      `  - { name: r${i}, direction: ingress, action: allow, layer3: { remote: ["10.0.0.0-10.${i}.255.255"] }, layer4: { protocol: tcp, port: ["1-${i + 1}"] } }`,
  ).join("\n");
  assert.throws(
    () => compile(policy(`${rules}\n`), { budgets: { remoteY: 100 } }),
    /the remote x Y hash needs more than 1,024 entries \(limit 100\); most come from rule r\d+ \(line \d+\): \d+ entries, rule r\d+/,
  );
  assert.equal(compile(policy(`${rules}\n`)).remoteY.r.length, 40 * 40);
});

test("what packet hooks cannot judge is refused, not guessed", () => {
  const refused = (rules: string, pattern: RegExp) =>
    assert.throws(
      () => compile(policy(rules)),
      (err: Error & { code?: string }) =>
        err.code === "EPOLICYUNSUPPORTED" && pattern.test(err.message),
    );
  refused(
    `  - { name: curl, direction: egress, action: allow, process: { name: curl } }\n`,
    /rule curl \(line 5\): 'process'/,
  );
  refused(
    `  - { name: web, direction: egress, action: allow, layer3: { remote: ["*.example.org"] } }\n`,
    /hostname '\*\.example\.org'/,
  );
});
