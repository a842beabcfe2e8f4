// A real DNS client (dig) through the socket hooks: its unconnected UDP sendmsg() is judged by
// process rules (user nobody gets EPERM at once, root gets the answer) and redirected to a local
// resolver; dig accepts the local resolver's reply only because recvmsg shows it as coming from
// the server it asked (dig drops replies from an unexpected source).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn } from "../helpers/cgroup-run.ts";
import { startDnsmasq } from "../helpers/dns-lab.ts";

const LOCAL_RESOLVER = 5300;

test("dig's UDP queries: judged by process, redirected, answered as if from the server asked", async (t) => {
  const cg = cgroupForTest(t, "dns");
  const { cgroup, dir: cgroupDir } = cg;
  const dir = mkdtempSync(join(tmpdir(), "moat-dns-"));
  cg.onClose(() => rmSync(dir, { recursive: true, force: true }));
  const lab = await startCgroupLab(
    cg,
    "dns clients",
    (l) => `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
logging: { audit: { path: ${l.auditPath} } }
rules:
  - name: no-dns-for-nobody
    direction: egress
    action: block
    layer4: { protocol: udp, port: [53] }
    process: { user: [nobody] }
redirect:
  - name: dns-to-local
    match: { direction: egress, layer3: { remote: [${l.v4.a}] }, layer4: { protocol: udp, port: [53] }, process: { name: [dig] } }
    to: 127.0.0.1:${LOCAL_RESOLVER}
`,
    [],
  );
  for (const resolver of [
    startDnsmasq(lab.a, lab.v4.a, dir, ["--address=/moat.test/10.7.7.7"], 53),
    startDnsmasq(lab.a, lab.v6.a, dir, ["--address=/moat.test/10.7.7.7"], 53),
    startDnsmasq(lab.b, "127.0.0.1", dir, ["--address=/moat.test/10.8.8.8"], LOCAL_RESOLVER),
  ])
    cg.onClose(() => resolver.kill());

  const dig = (server: string, asNobody = false) =>
    runIn(lab.b, cgroupDir, [
      ...(asNobody ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] : []),
      "dig",
      "+tries=1",
      "+time=2",
      `@${server}`,
      "moat.test",
      "A",
    ]);
  const answer = (out: string) => /^moat\.test\.\s+\d+\s+IN\s+A\s+(\S+)$/m.exec(out)?.[1];
  const server = (out: string) => /^;; SERVER: (\S+)/m.exec(out)?.[1];

  // the resolvers take a moment: the one over IPv6 is the first not redirected
  for (let i = 0; i < 50 && answer(dig(lab.v6.a).stdout) === undefined; i++)
    await new Promise((r) => setTimeout(r, 100));

  await t.test("a query not redirected gets the remote server's answer", () => {
    const r = dig(lab.v6.a);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(answer(r.stdout), "10.7.7.7");
  });

  await t.test("a redirected query is answered locally, from the server dig asked", async () => {
    const r = dig(lab.v4.a);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(answer(r.stdout), "10.8.8.8");
    assert.equal(server(r.stdout), `${lab.v4.a}#53(${lab.v4.a})`);
    await lab.daemon.waitFor(
      /ALLOWED egress udp .*:53 .*\(dig pid \d+\), redirected to 127\.0\.0\.1:5300 by redirect dns-to-local/,
    );
  });

  await t.test("user nobody's query fails at once: sendmsg gets EPERM", async () => {
    const r = dig(lab.v4.a, true);
    assert.notEqual(r.status, 0, r.stdout);
    assert.match(r.stdout + r.stderr, /permission denied|not permitted/i);
    await lab.daemon.waitFor(
      /BLOCKED egress udp .*:53 .*by rule no-dns-for-nobody \(dig pid \d+\)/,
    );
  });
});
