// A name reached through a CNAME is judged as a name asked: the lab's cname.moat.test is an alias
// of allowed.moat.test, whose lookup a layer7.dns.name rule refuses. In prevent mode the alias's
// answer is refused too (the client never learns the address, and nothing is bound); in detect
// mode it is answered and reported with the blocked name.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { STUB } from "../helpers/dns-lab.ts";
import { curl, dig, pySteps } from "../helpers/dns-clients.ts";
import { startDnsIdentities } from "../helpers/dns-identities.ts";
import type { Lab } from "../helpers/netns.ts";
import { reloadPolicy } from "../helpers/policy-reload.ts";
import { storedEvents, until } from "../helpers/stored-events.ts";

/** The policy: the lookup of allowed.moat.test judged by `mode`, its address open by name. */
function policy(l: Lab & { auditPath: string }, cgroup: string, mode: string): string {
  return `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
logging: { audit: { path: ${l.auditPath} } }
rules:
  - { name: no-allowed-lookup, direction: egress, action: block, mode: ${mode}, layer7: { dns: { name: [allowed.moat.test] } } }
  - { name: to-allowed, direction: egress, action: allow, log: true, layer3: { remote: [allowed.moat.test] }, layer4: { protocol: tcp, port: [8080] } }
  - { name: other-8080, direction: egress, action: block, layer4: { protocol: tcp, port: [8080] } }
`;
}

interface EventJson {
  type: string;
  rule?: string;
  layer7?: { dns?: { name: string } } | null;
  dns?: { query: string; rcode: string; answers: string[]; names?: string[] };
}

test("DNS names: a blocked name is judged in the CNAME chain of another name's answer", async (t) => {
  const cg = cgroupForTest(t, "cname-judged");
  const lab = await startCgroupLab(cg, "dns cname", (l) => policy(l, cg.cgroup, "prevent"), [
    "tcp:8080",
  ]);
  const { zone: z, resolv, fresh } = await startDnsIdentities(cg, lab);
  const events = () => storedEvents<EventJson>(lab);

  await t.test("prevent: the alias is REFUSED as the blocked name is; nothing binds", async () => {
    const where = fresh("prevent");
    assert.equal(dig(where, STUB, "allowed.moat.test").rcode, "REFUSED", "the name itself");
    const alias = dig(where, STUB, "cname.moat.test");
    assert.equal(alias.rcode, "REFUSED", alias.stdout);
    assert.deepEqual(alias.addresses, []);
    assert.deepEqual(alias.cnames, []);
    assert.equal(dig(where, STUB, "cname.moat.test", ["+tcp"]).rcode, "REFUSED", "over TCP");
    await lab.daemon.waitFor(
      /BLOCKED egress udp .*:53 .*DNS query allowed\.moat\.test .*by rule no-allowed-lookup \(dig pid \d+\)/,
    );
    // 6: curl could not resolve the host
    const c = curl(where, resolv.stub, "http://cname.moat.test:8080/");
    assert.equal(c.status, 6, `curl: ${c.status} ${c.stdout}${c.stderr}`);
    // the same program looks the alias up, then connects by address: nothing was bound for it
    const steps = pySteps(fresh("prevent-py"), resolv.stub, 8080, [
      "L:cname.moat.test",
      `C:${z.allowed}`,
    ]);
    assert.deepEqual(steps, [
      { step: "L:cname.moat.test", ok: false, addrs: [] },
      { step: `C:${z.allowed}`, result: "EPERM" },
    ]);
    const blocked = await until("the alias's blocked event", () =>
      events().find(
        (e) => e.type === "blocked" && e.layer7?.dns?.name === "allowed.moat.test" && !!e.rule,
      ),
    );
    assert.equal(blocked.rule, "no-allowed-lookup");
    const query = await until("the alias's dns event", () =>
      events().find((e) => e.type === "dns" && e.dns?.query === "cname.moat.test"),
    );
    assert.equal(query.dns?.rcode, "REFUSED");
    assert.deepEqual(query.dns?.answers, []);
    assert.equal(query.dns?.names, undefined, "nothing bound");
  });

  await reloadPolicy(lab, policy(lab, cg.cgroup, "detect"));

  await t.test(
    "detect: the alias is answered and bound, and reported by the blocked name",
    async () => {
      const where = fresh("detect");
      const alias = dig(where, STUB, "cname.moat.test");
      assert.equal(alias.rcode, "NOERROR", alias.stdout);
      assert.deepEqual(alias.cnames, ["cname.moat.test -> allowed.moat.test"]);
      assert.deepEqual(alias.addresses, [z.allowed]);
      await lab.daemon.waitFor(
        /DETECTED egress udp .*:53 .*DNS query allowed\.moat\.test .*by rule no-allowed-lookup \(dig pid \d+\)/,
      );
      const c = curl(where, resolv.stub, "http://cname.moat.test:8080/");
      assert.equal(c.status, 0, `curl: ${c.status} ${c.stderr}`);
      await lab.daemon.waitFor(/ALLOWED egress tcp .* by rule to-allowed \(curl pid \d+\)/);
    },
  );
});
