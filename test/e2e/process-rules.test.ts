// Process rules enforced by the socket hooks, seen by real clients: the same destination is open
// to curl and closed to wget (by executable path), closed to user nobody (by user), to python3 (by
// name) and to one cgroup (by cgroup); the tc hook keeps the socket hooks' decision, so the
// packet-level block of port 80 does not stop curl's connection.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn, udpSend } from "../helpers/cgroup-run.ts";

test("process rules: path, user, name and cgroup decide at connect()", async (t) => {
  const cg = cgroupForTest(t, "proc");
  const { cgroup, dir } = cg;
  const sub = join(dir, "batch");
  const late = join(dir, "late");
  mkdirSync(sub);
  const lab = await startCgroupLab(
    cg,
    "process rules",
    (l) => `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
logging: { audit: { path: ${l.auditPath} } }
rules:
  - { name: curl-web, direction: egress, action: allow, log: true, process: { path: /usr/bin/curl }, layer4: { protocol: tcp, port: [80] } }
  - { name: no-web, direction: egress, action: block, layer4: { protocol: tcp, port: [80] } }
  - { name: not-nobody, direction: egress, action: block, process: { user: [nobody] }, layer4: { protocol: tcp, port: [8080] } }
  - { name: no-python-dns, direction: egress, action: block, process: { name: [python3*] }, layer4: { protocol: udp, port: [53] } }
  - { name: batch-no-tls, direction: egress, action: block, process: { cgroup: ${cgroup}/batch }, layer4: { protocol: tcp, port: [443] } }
  - { name: late-no-8080, direction: egress, action: block, process: { cgroup: ${cgroup}/late }, layer4: { protocol: tcp, port: [8080] } }
`,
    ["tcp:80,443,8080", "udp:53"],
  );
  const url = (port: number) => `http://${lab.v4.a}:${port}/`;
  const curl = (port: number, where = dir, as: string[] = []) =>
    runIn(lab.b, where, [...as, "curl", "-sS", "--max-time", "3", url(port)]);

  await t.test("curl reaches port 80, through the packet-level block", async () => {
    const r = curl(80);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "port 80\n");
    await lab.daemon.waitFor(/ALLOWED egress tcp .*:80 .*by rule curl-web \(curl pid \d+\)/);
  });

  await t.test("wget to the same destination gets EPERM at once", async () => {
    const r = runIn(lab.b, dir, ["wget", "-nv", "-O", "-", "-T", "3", "-t", "1", url(80)]);
    assert.equal(r.status, 4, "wget: network failure");
    // refused by connect(), not timed out
    assert.match(r.stderr, /Operation not permitted/);
    await lab.daemon.waitFor(/BLOCKED egress tcp .*:80 .*by rule no-web \(wget pid \d+\)/);
  });

  await t.test("user nobody is refused port 8080, root is not", () => {
    const nobody = curl(8080, dir, ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]);
    assert.equal(nobody.status, 7, nobody.stderr);
    const root = curl(8080);
    assert.equal(root.status, 0, root.stderr);
  });

  await t.test("python3's UDP sendto gets EPERM by name", async () => {
    assert.equal(runIn(lab.b, dir, udpSend(lab.v4.a, 53)).stdout.trim(), "EPERM");
    await lab.daemon.waitFor(/BLOCKED egress udp .*:53 .*by rule no-python-dns \(python3 pid/);
  });

  await t.test("the batch cgroup is refused port 443, its parent is not", () => {
    assert.equal(curl(443, sub).status, 7);
    assert.equal(curl(443, dir).status, 0);
  });

  await t.test("a cgroup made while moat runs is found, and its rule applies", async () => {
    mkdirSync(late);
    let status = curl(8080, late).status;
    for (let i = 0; i < 40 && status !== 7; i++) {
      await new Promise((r) => setTimeout(r, 250));
      status = curl(8080, late).status;
    }
    assert.equal(status, 7, "curl from the new cgroup still reaches port 8080");
    await lab.daemon.waitFor(/BLOCKED egress tcp .*:8080 .*by rule late-no-8080 \(curl pid/);
  });
});
