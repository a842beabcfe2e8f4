// DNS over TLS as a user sees it (docs/policy.md, layer7.dns.over_tls): unbound in the lab serves
// DNS over TLS on port 853 (a self-signed certificate made for the run) and plain DNS on 53; in
// prevent mode a rule with `over_tls: true` lets kdig +tls get its answer, and a rule with
// `over_tls: false` blocks kdig's plain query to the same server. Each is reported by its rule.
//
// Run time: about 15 s on 2 cores (the daemon's start, the resolvers', two lookups).
import { test } from "node:test";
import assert from "node:assert/strict";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { DOT_PORT, dnsZone, startDnsPeers } from "../helpers/dns-lab.ts";
import { kdig, type Where } from "../helpers/dns-clients.ts";
import type { Lab } from "../helpers/netns.ts";

/** The rules name unbound only: the lab's stub (namespace b) still asks its upstream. */
function policy(l: Lab & { auditPath: string }, cgroup: string): string {
  const unbound = dnsZone(l).unbound;
  return `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
logging: { audit: { path: ${l.auditPath} } }
rules:
  - { name: dot, direction: egress, action: allow, log: true, layer3: { remote: [${unbound}] }, layer7: { dns: { over_tls: true } } }
  - { name: plain-dns, direction: egress, action: block, layer3: { remote: [${unbound}] }, layer7: { dns: { over_tls: false } } }
`;
}

test("layer7.dns.over_tls: DNS over TLS allowed, plain DNS blocked", async (t) => {
  const cg = cgroupForTest(t, "dot");
  const lab = await startCgroupLab(cg, t.name, (l) => policy(l, cg.cgroup), []);
  const dns = await startDnsPeers(lab);
  cg.onClose(() => dns.close());
  const where: Where = { ns: lab.b, cgroupDir: cg.dir };
  const server = dns.zone.unbound;
  const at = (port: number) => `${server.replaceAll(".", "\\.")}:${port}`;

  await t.test("kdig +tls gets its answer over port 853 (rule dot)", async () => {
    const r = kdig(where, server, "allowed.moat.test", ["+tls", "-p", String(DOT_PORT)]);
    assert.equal(r.rcode, "NOERROR", r.stdout + r.stderr);
    assert.deepEqual(r.addresses, [dns.zone.allowed]);
    await lab.daemon.waitFor(
      new RegExp(`ALLOWED egress tcp \\S+ -> ${at(DOT_PORT)} .*by rule dot \\(kdig pid \\d+\\)`),
    );
  });

  await t.test("kdig's plain query to the same server is blocked (rule plain-dns)", async () => {
    const r = kdig(where, server, "allowed.moat.test");
    assert.equal(r.rcode, undefined, `an answer came: ${r.stdout}`);
    assert.deepEqual(r.addresses, []);
    await lab.daemon.waitFor(
      new RegExp(`BLOCKED egress udp \\S+ -> ${at(53)} .*by rule plain-dns \\(kdig pid \\d+\\)`),
    );
  });
});
