// Encrypted DNS control as a user sees it (docs/dns.md, "Encrypted DNS"): with
// `dns: { doh: block }` Firefox's canary use-application-dns.net gets NXDOMAIN from moat's proxy
// and a connection to a DoH resolver of the list (here a lab address, named by dns.doh_list) on
// port 443 fails with EPERM, reported by rule dns:doh with reason doh; with `doh: allow` neither
// happens. In detect mode neither is refused: the canary gets the server's own answer and both
// are reported detected by rule dns:doh with reason doh.
//
// Run time: about 25 s on 2 cores (the daemon's start, two reloads).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { dnsZone, startDnsPeers } from "../helpers/dns-lab.ts";
import { dig, pyConnect, type Where } from "../helpers/dns-clients.ts";
import type { Lab } from "../helpers/netns.ts";
import { storedEvents, until } from "../helpers/stored-events.ts";

const CANARY = "use-application-dns.net";

function policy(
  l: Lab & { auditPath: string },
  cgroup: string,
  list: string,
  doh: string,
  mode = "prevent",
  more = "",
) {
  return `version: 1
mode: ${mode}
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
logging: { audit: { path: ${l.auditPath} } }
dns: { doh: ${doh}, doh_list: ${list} }
rules:
  - { name: web, direction: egress, action: allow, layer4: { protocol: tcp, port: [443] } }
${more}`;
}

interface EventJson {
  type: string;
  verdict?: string;
  rule?: string;
  reason?: string;
  remote?: { ip: string; port: number };
  dns?: { query: string; rcode: string };
  layer7?: { dns?: { name: string } } | null;
}

test("dns.doh: block answers the canary NXDOMAIN and refuses the list's resolvers; allow does not", async (t) => {
  const cg = cgroupForTest(t, "doh");
  const files = mkdtempSync(join(tmpdir(), "moat-doh-list-"));
  cg.onClose(() => rmSync(files, { recursive: true, force: true }));
  const list = join(files, "doh.txt");
  let resolver = "";
  let labShape: (Lab & { auditPath: string }) | undefined;
  const lab = await startCgroupLab(
    cg,
    "dns encrypted",
    (l) => {
      // a lab address (it answers on 443) stands for a public DoH resolver
      resolver = dnsZone(l).unlisted;
      writeFileSync(list, `# the lab's DoH resolver\n${resolver}\n`);
      labShape = l;
      return policy(l, cg.cgroup, list, "block");
    },
    ["tcp:443"],
  );
  const dns = await startDnsPeers(lab);
  cg.onClose(() => dns.close());
  const { zone: z, resolv } = dns;
  let n = 0;
  const fresh = (): Where => {
    const dir = join(cg.dir, `c${n++}`);
    mkdirSync(dir);
    return { ns: lab.b, cgroupDir: dir };
  };

  await t.test(
    "block: the canary is NXDOMAIN (moat answers it), reported as a dns event",
    async () => {
      const d = dig(fresh(), z.upstream, CANARY);
      assert.equal(d.rcode, "NXDOMAIN", d.stdout);
      const event = await until("the canary's dns event", () =>
        storedEvents<EventJson>(lab).find((e) => e.type === "dns" && e.dns?.query === CANARY),
      );
      assert.equal(event.dns?.rcode, "NXDOMAIN");
    },
  );

  await t.test(
    "block: a connection to the list's resolver on 443 is EPERM, rule dns:doh",
    async () => {
      const c = pyConnect(fresh(), resolv.stub, resolver, 443);
      assert.equal(c.result, "EPERM", JSON.stringify(c));
      await lab.daemon.waitFor(
        new RegExp(
          `BLOCKED egress tcp \\S+ -> ${resolver.replaceAll(".", "\\.")}:443 .*by rule dns:doh`,
        ),
      );
      const event = await until("the blocked connection's event", () =>
        storedEvents<EventJson>(lab).find((e) => e.type === "blocked" && e.remote?.ip === resolver),
      );
      assert.equal(event.rule, "dns:doh");
      assert.equal(event.reason, "doh");
      // the rules after it still apply to other addresses
      assert.equal(pyConnect(fresh(), resolv.stub, z.allowed, 443).result, "connected");
    },
  );

  await t.test("allow: the canary goes upstream and the resolver is reachable", async () => {
    lab.writePolicy(policy(labShape!, cg.cgroup, list, "allow"));
    await lab.daemon.waitFor(/applied: generation 2/);
    const d = dig(fresh(), z.upstream, CANARY);
    // the lab's upstream knows no such name and asks nobody: REFUSED, not moat's NXDOMAIN
    assert.notEqual(d.rcode, "NXDOMAIN", d.stdout);
    assert.equal(pyConnect(fresh(), resolv.stub, resolver, 443).result, "connected");
  });

  await t.test(
    "block in detect mode: the canary gets the server's answer and is reported detected, rule dns:doh",
    async () => {
      lab.writePolicy(policy(labShape!, cg.cgroup, list, "block", "detect"));
      await lab.daemon.waitFor(/applied: generation 3/);
      const d = dig(fresh(), z.upstream, CANARY);
      assert.notEqual(d.rcode, "NXDOMAIN", d.stdout);
      const detected = await until("the canary's detected event", () =>
        storedEvents<EventJson>(lab).find(
          (e) => e.type === "detected" && e.layer7?.dns?.name === CANARY,
        ),
      );
      assert.equal(detected.rule, "dns:doh");
      assert.equal(detected.reason, "doh");
      const asked = storedEvents<EventJson>(lab).filter(
        (e) => e.type === "dns" && e.dns?.query === CANARY,
      );
      // the query's own event carries the answer the client got
      assert.equal(asked.at(-1)?.dns?.rcode, d.rcode);
      assert.equal(asked.at(-1)?.verdict, "detected");
    },
  );

  await t.test(
    "block in detect mode: a connection to the list's resolver goes through, reported detected",
    async () => {
      assert.equal(pyConnect(fresh(), resolv.stub, resolver, 443).result, "connected");
      await lab.daemon.waitFor(
        new RegExp(
          `DETECTED egress tcp \\S+ -> ${resolver.replaceAll(".", "\\.")}:443 .*by rule dns:doh`,
        ),
      );
    },
  );

  await t.test(
    "block in prevent mode, the query judged by a detect rule of its own: the canary is NXDOMAIN",
    async () => {
      const watch =
        "  - { name: dns-watch, direction: egress, action: block, mode: detect, layer4: { protocol: udp, port: [53] } }\n";
      lab.writePolicy(policy(labShape!, cg.cgroup, list, "block", "prevent", watch));
      await lab.daemon.waitFor(/applied: generation 4/);
      const d = dig(fresh(), z.upstream, CANARY);
      assert.equal(d.rcode, "NXDOMAIN", `dns:doh runs in the policy's mode: ${d.stdout}`);
    },
  );
});
