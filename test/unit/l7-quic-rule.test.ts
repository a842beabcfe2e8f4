// QUIC under L7 web rules (docs/l7-quic.md): each egress rule with layer7.http or layer7.tls is
// preceded by the implicit rule `l7:quic`, which blocks UDP 443 for the same processes,
// interfaces and remotes, so clients fall back to TCP (where moat's relay sees them). The
// reference evaluator and the compiled socket image agree; events say reason "quic".
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatDiagnostic, textOnlyHost } from "../../src/config/index.ts";
import { acceptPolicyText } from "../../src/policy/accept-text.ts";
import { evaluate, QUIC_RULE, withImplicitRules, type Decision } from "../../src/policy/index.ts";
import { lookupImage } from "../../src/policy/compile/lookup.ts";
import { processClass, type ProcessUniverse } from "../../src/policy/compile/process.ts";
import type { PolicyModel } from "../../src/config/model.ts";
import { egressFacts } from "../helpers/egress-facts.ts";

const dir = mkdtempSync(join(tmpdir(), "moat-quic-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const UNIVERSE: ProcessUniverse = {
  executables: [],
  users: new Map(),
  cgroups: [
    { id: 1n, path: "/", container: null },
    { id: 9n, path: "/lab", container: null },
  ],
  routes: { image: { v4: [], v6: [] }, links: [], notes: [] },
};

function accept(text: string) {
  // a made-up host: its cgroups are the universe's, not this machine's
  const r = acceptPolicyText(text, join(dir, "p.yaml"), {
    host: textOnlyHost,
    universe: () => UNIVERSE,
  });
  const lines = r.diagnostics.map((d) => formatDiagnostic(d).replaceAll(dir, "D"));
  assert.ok(r.policy, lines.join("\n"));
  return r.policy;
}

const POLICY =
  "version: 1\nmode: prevent\nattach: { cgroup: / }\n" +
  "defaults: { ingress: block, egress: allow }\n" +
  "rules:\n" +
  "  - { name: early, direction: egress, action: allow, log: true, process: { name: [early] }, layer4: { protocol: udp, port: [443] } }\n" +
  "  - { name: curl-web, direction: egress, action: allow, process: { name: [curl] }, layer7: { tls: { sni: [example.org] } } }\n" +
  "  - { name: watch, direction: egress, action: block, mode: detect, process: { name: [wget] }, layer3: { remote: [192.0.2.0/24] }, layer7: { http: { method: [GET] } } }\n" +
  "  - { name: plain-http, direction: egress, action: allow, process: { name: [nc] }, layer4: { protocol: tcp, port: [80] }, layer7: { http: { method: [GET] } } }\n" +
  "  - { name: quic-log, direction: egress, action: allow, log: true, layer4: { protocol: udp, port: [443] } }\n";

interface Conn {
  comm: string;
  ip: string;
  port: number;
  protocol: "tcp" | "udp";
}

function judge(model: PolicyModel, c: Conn): Decision {
  const d = evaluate(model, {
    direction: "egress",
    family: 4,
    protocol: c.protocol,
    local: { ip: "10.0.0.1", port: 40000 },
    remote: { ip: c.ip, port: c.port },
    process: { pid: 1, name: c.comm, path: "", user: 0, cgroup: "/lab", container: null },
  });
  assert.notEqual(d.verdict, "deferred", JSON.stringify(c));
  return d as Decision;
}

test("l7:quic comes before each L7 web rule: UDP 443 of its processes is blocked, others pass", () => {
  const { model, image } = accept(POLICY);
  const judged = withImplicitRules(model);
  assert.deepEqual(
    judged.rules.map((r) => r.name),
    ["early", QUIC_RULE, "curl-web", QUIC_RULE, "watch", QUIC_RULE, "plain-http", "quic-log"],
    "one l7:quic before each rule judging HTTP or TLS (the port-80 one too: on UDP 80)",
  );
  const cases: [Conn, string, string][] = [
    [{ comm: "curl", ip: "198.51.100.1", port: 443, protocol: "udp" }, QUIC_RULE, "blocked"],
    [{ comm: "wget", ip: "192.0.2.7", port: 443, protocol: "udp" }, QUIC_RULE, "detected"],
    [{ comm: "wget", ip: "198.51.100.1", port: 443, protocol: "udp" }, "quic-log", "allowed"],
    [{ comm: "early", ip: "198.51.100.1", port: 443, protocol: "udp" }, "early", "allowed"],
    [{ comm: "python3", ip: "198.51.100.1", port: 443, protocol: "udp" }, "quic-log", "allowed"],
    [{ comm: "nc", ip: "198.51.100.1", port: 443, protocol: "udp" }, "quic-log", "allowed"],
    [{ comm: "nc", ip: "198.51.100.1", port: 80, protocol: "udp" }, QUIC_RULE, "blocked"],
    [{ comm: "curl", ip: "198.51.100.1", port: 8443, protocol: "udp" }, QUIC_RULE, "blocked"],
  ];
  const socket = image.socket!;
  for (const [c, rule, verdict] of cases) {
    const d = judge(model, c);
    assert.equal(d.rule, rule, JSON.stringify(c));
    assert.equal(d.verdict, verdict, JSON.stringify(c));
    if (rule === QUIC_RULE) assert.match(d.reason, /QUIC|quic/);
    const p = processClass(socket.process, {
      dev: 1,
      ino: 2n,
      comm: c.comm,
      uid: 0,
      cgroupId: 9n,
    });
    const got = socket.image.rules[lookupImage(socket.image, egressFacts(c, p))]!;
    assert.equal(got.name, rule, `compiled vs evaluator: ${JSON.stringify(c)}`);
    if (rule === QUIC_RULE) assert.equal(got.reason, "quic");
  }
});

test("an L7 web rule without a process section blocks QUIC for processes under attach.cgroup only", () => {
  const { model, image } = accept(
    "version: 1\nmode: prevent\nattach: { cgroup: /lab }\n" +
      "rules:\n" +
      "  - { name: web, direction: egress, action: allow, layer7: { tls: { sni: [example.org] } } }\n",
  );
  const quic = withImplicitRules(model).rules[0]!;
  assert.equal(quic.name, QUIC_RULE);
  assert.deepEqual(quic.process?.cgroup, ["/lab"]);
  // the packet hooks (no process known) never apply it: traffic outside the cgroup is untouched
  const packet =
    image.packet.rules[
      lookupImage(
        image.packet,
        egressFacts({ ip: "198.51.100.1", port: 443, protocol: "udp" }, 40000),
      )
    ]!;
  assert.equal(packet.name, "default");
  const unknown = evaluate(model, {
    direction: "egress",
    family: 4,
    protocol: "udp",
    local: { ip: "10.0.0.1", port: 40000 },
    remote: { ip: "198.51.100.1", port: 443 },
  });
  assert.equal(unknown.verdict, "deferred", "moat explain without a process: it depends");
  assert.equal(
    judge(model, { comm: "x", ip: "198.51.100.1", port: 443, protocol: "udp" }).rule,
    QUIC_RULE,
  );
});

test("l7:quic blocks QUIC on the L7 rule's own ports, and on every UDP port but 53 without a port list", () => {
  const { model } = accept(
    "version: 1\nmode: prevent\nattach: { cgroup: / }\n" +
      "defaults: { ingress: allow, egress: allow }\n" +
      "rules:\n" +
      "  - { name: no-evil-web, direction: egress, action: block, process: { name: [curl] }, layer4: { protocol: tcp, port: [443, 8443] }, layer7: { tls: { sni: [evil.example], trust_sni: true } } }\n" +
      "  - { name: wget-web, direction: egress, action: allow, process: { name: [wget] }, layer7: { tls: { sni: [example.org] } } }\n",
  );
  const cases: [Conn, string][] = [
    [{ comm: "curl", ip: "198.51.100.7", port: 443, protocol: "udp" }, QUIC_RULE],
    [{ comm: "curl", ip: "198.51.100.7", port: 8443, protocol: "udp" }, QUIC_RULE],
    [{ comm: "curl", ip: "198.51.100.7", port: 4433, protocol: "udp" }, "default"],
    [{ comm: "wget", ip: "198.51.100.7", port: 4433, protocol: "udp" }, QUIC_RULE],
    [{ comm: "wget", ip: "198.51.100.7", port: 8443, protocol: "udp" }, QUIC_RULE],
  ];
  for (const [c, rule] of cases) assert.equal(judge(model, c).rule, rule, JSON.stringify(c));
  // DNS is left to the DNS proxy and the policy's rules
  const dns = withImplicitRules(model).rules.find(
    (r) => r.name === QUIC_RULE && !r.layer4?.ports?.some((p) => p.lo === 443),
  );
  assert.ok(dns);
  assert.ok(!dns.layer4!.ports!.some((p) => p.lo <= 53 && 53 <= p.hi));
});
