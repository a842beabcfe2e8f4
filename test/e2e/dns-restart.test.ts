// DNS name bindings survive a daemon killed with SIGKILL: a program that looked a name up
// before the restart connects to its address again after it, without a new lookup, and the
// hostname rule still allows it (the same process, and a new process of the same identity);
// an address whose binding expired before the restart is refused.
//
// Run time: about 20-25 s on 2 cores (two daemon starts, a 3 s wait for the short binding).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { startDnsmasq } from "../helpers/dns-lab.ts";
import { pyHold, pySteps, type StepResult, type Where } from "../helpers/dns-clients.ts";
import { sh, type Lab } from "../helpers/netns.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The lab's addresses of the two names, beside the resolver (lab.v4.a). */
function addresses(l: Lab): { kept: string; brief: string } {
  const net = l.v4.a.replace(/\.1$/, "");
  return { kept: `${net}.40`, brief: `${net}.41` };
}

function policy(l: Lab & { auditPath: string }, cgroup: string): string {
  return `version: 1
mode: prevent
defaults: { ingress: allow, egress: block }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
logging: { audit: { path: ${l.auditPath} } }
dns: { resolvers: [${l.v4.a}], min_ttl: 1s, grace: 1s }
rules:
  - { name: dns, direction: egress, action: allow, layer4: { protocol: udp, port: [53] } }
  - { name: dns-tcp, direction: egress, action: allow, layer4: { protocol: tcp, port: [53] } }
  - name: web
    direction: egress
    action: allow
    layer3: { remote: [kept.moat.test, brief.moat.test] }
    layer4: { protocol: tcp, port: [80] }
    process: { name: ["python3*"] }
`;
}

test("DNS names: bindings survive kill -9 and a start, within their TTL", async (t) => {
  const cg = cgroupForTest(t, "names-restart");
  const lab = await startCgroupLab(cg, "dns restart", (l) => policy(l, cg.cgroup), ["tcp:80"]);
  const ip = addresses(lab);
  const dir = mkdtempSync(join(tmpdir(), `moat-dns-restart-${lab.tag}-`));
  cg.onClose(() => rmSync(dir, { recursive: true, force: true }));
  for (const a of [ip.kept, ip.brief])
    sh("ip", ["-n", lab.a, "addr", "add", `${a}/32`, "dev", lab.ifA]);
  // kept.moat.test lives 600 s, brief.moat.test 1 s (+ 1 s grace)
  const resolver = startDnsmasq(lab.a, lab.v4.a, dir, [
    "--local=/moat.test/",
    `--host-record=kept.moat.test,${ip.kept},600`,
    `--host-record=brief.moat.test,${ip.brief},1`,
  ]);
  cg.onClose(() => resolver.kill("SIGKILL"));
  const resolv = join(dir, "resolv.conf");
  writeFileSync(resolv, `nameserver ${lab.v4.a}\noptions attempts:3 timeout:1\n`);
  const where: Where = { ns: lab.b, cgroupDir: join(cg.dir, "app") };
  mkdirSync(where.cgroupDir as string);

  // the resolver answers once it has bound its address
  let looked: StepResult[] = [];
  for (let i = 0; i < 20 && !looked[0]?.ok; i++) {
    if (i > 0) await sleep(200);
    looked = pySteps(where, resolv, 80, ["L:brief.moat.test", `C:${ip.brief}`, "L:kept.moat.test"]);
  }
  assert.deepEqual(
    looked.map((s) => ("ok" in s ? s.ok : s.result)),
    [true, "connected", true],
    "before the restart: brief.moat.test is allowed, kept.moat.test looked up",
  );
  // a second identity: pyHold's python3 (another executable than /usr/bin/python3, maybe)
  const holder = await pyHold(where, resolv, "kept.moat.test", 80);
  cg.onClose(() => holder.close());
  assert.deepEqual(holder.first, { result: "connected", addr: ip.kept });
  // brief.moat.test's binding ends (1 s TTL + 1 s grace) before the daemon dies
  await sleep(3000);

  await lab.restart("SIGKILL");

  assert.deepEqual(
    await holder.again(),
    { result: "connected", addr: ip.kept },
    "the process that looked kept.moat.test up connects again, no new lookup",
  );
  const after = pySteps(where, resolv, 80, [`C:${ip.kept}`, `C:${ip.brief}`]);
  assert.deepEqual(
    after.map((s) => s.result),
    ["connected", "EPERM"],
    "a new process of the first identity: kept is still bound, brief had expired",
  );
});
