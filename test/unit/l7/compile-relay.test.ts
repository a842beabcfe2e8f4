// L7 rules in the kernel image: unmatchable for the packet hooks, their match without layer7 over
// TCP flagged "let through, the relay decides" for the socket hooks, and one quiet `l7-relay`
// redirect each (after the DNS proxy's, before the policy's own) that the kernel takes only when
// the rule chosen at connect() is that L7 rule.

import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicy } from "../../../src/config/index.ts";
import { compilePolicy } from "../../../src/policy/index.ts";
import { lookupImage } from "../../../src/policy/compile/lookup.ts";
import { processClass } from "../../../src/policy/compile/process.ts";
import type { ClassifierImage, PacketFacts } from "../../../src/policy/compile/image.ts";

const POLICY = `version: 1
attach: { cgroup: / }
defaults: { ingress: block, egress: block }
rules:
  - { name: plain-web, direction: egress, action: allow, layer3: { remote: [192.0.2.80] } }
  - { name: web, direction: egress, action: allow, layer4: { port: [443] }, layer7: { tls: { sni: [good.example] } } }
redirect:
  - { name: proxy, match: { direction: egress, layer4: { protocol: tcp, port: [3128] } }, to: "127.0.0.1:3129" }
`;

const v4 = (ip: string): Uint8Array => Uint8Array.from(ip.split(".").map(Number));

test("an L7 rule: unmatchable for packets, flagged for sockets, redirected quietly to the relay", () => {
  const img = compilePolicy(parsePolicy(POLICY, "p.yaml"), null, {
    dnsProxy: { udp: { ip: "127.0.0.1", port: 5300 }, tcp: { ip: "127.0.0.1", port: 5301 } },
    l7Relay: { ip: "127.0.0.1", port: 7443 },
  });
  const facts = (ip: string, protocol: number, port: number, clientPort: number): PacketFacts => ({
    direction: "egress",
    family: 4,
    protocol,
    remote: v4(ip),
    local: v4("10.0.0.1"),
    serverPort: port,
    clientPort,
    icmpType: 0,
    icmpCode: 0,
  });
  const name = (image: ClassifierImage, f: PacketFacts) => image.rules[lookupImage(image, f)]!;
  // the packet hooks never find the L7 rule
  assert.equal(name(img.packet, facts("203.0.113.7", 6, 443, 40000)).name, "default");
  assert.ok(img.socket, "L7 rules need the socket hooks' image");
  const p = processClass(img.socket.process, {
    dev: 0,
    ino: 0n,
    comm: "curl",
    uid: 0,
    cgroupId: 1n,
  });
  const chosen = name(img.socket.image, facts("203.0.113.7", 6, 443, p));
  assert.deepEqual([chosen.name, chosen.layer7], ["web", true]);
  // over TCP only: a UDP datagram to 443 is the default's
  assert.equal(name(img.socket.image, facts("203.0.113.7", 17, 443, p)).name, "default");
  // an earlier rule still decides first
  assert.equal(name(img.socket.image, facts("192.0.2.80", 6, 443, p)).name, "plain-web");
  const targets = img.redirect!.targets;
  assert.deepEqual(
    targets.map((t) => [t.name, t.port, t.quiet ?? false, t.layer7Only ?? false]),
    [
      ["dns-proxy", 5300, true, false],
      ["dns-proxy", 5301, true, false],
      ["l7-relay", 7443, true, true],
      ["proxy", 3129, false, false],
    ],
  );
  const redirect = (ip: string, port: number) =>
    lookupImage(img.redirect!.image, facts(ip, 6, port, p));
  assert.equal(redirect("203.0.113.7", 443), 2);
  // the relay's redirect matches the earlier rule's connection too: the kernel skips it there
  // (not an L7 rule), which the e2e test shows
  assert.equal(redirect("203.0.113.7", 3128), 3);
});

test("without L7 rules nothing goes to the relay", () => {
  const img = compilePolicy(
    parsePolicy(
      "version: 1\nattach: { cgroup: / }\nrules:\n  - { name: a, direction: egress, action: allow, layer4: { port: [443] } }\n",
      "p.yaml",
    ),
    null,
    { l7Relay: { ip: "127.0.0.1", port: 7443 } },
  );
  assert.equal(img.redirect, undefined);
});
