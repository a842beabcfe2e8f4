// The socket hooks seen by real clients: processes in the attach.cgroup subtree get EPERM from
// connect() and sendto() at once for a blocked destination, detect mode lets them through and
// reports them, and every event names the process (comm and pid) behind the connection.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn, udpSend } from "../helpers/cgroup-run.ts";

test("connect() and sendto() from the attached cgroup are judged at the socket", async (t) => {
  const cg = cgroupForTest(t, "sock");
  const { cgroup, dir } = cg;
  const run = (ns: string, inCgroup: boolean, cmd: string[]) =>
    runIn(ns, inCgroup ? dir : null, cmd);
  const lab = await startCgroupLab(
    cg,
    "socket hooks",
    (l) => `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
logging: { audit: { path: ${l.auditPath} } }
rules:
  - { name: web, direction: egress, action: allow, log: true, layer3: { remote: [${l.v4.a}] }, layer4: { protocol: tcp, port: [80] } }
  - { name: no-8080, direction: egress, action: block, layer4: { protocol: tcp, port: [8080] } }
  - { name: watch-443, direction: egress, action: block, mode: detect, layer4: { protocol: tcp, port: [443] } }
  - { name: no-dns, direction: egress, action: block, layer4: { protocol: udp, port: [53] } }
`,
    ["tcp:80,443,8080", "udp:53"],
  );
  const curl = (port: number, inCgroup = true, host = lab.v4.a) =>
    run(lab.b, inCgroup, ["curl", "-sS", "--max-time", "3", `http://${host}:${port}/`]);

  await t.test("an allowed connection names its process", async () => {
    const r = curl(80);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "port 80\n");
    await lab.daemon.waitFor(/ALLOWED egress tcp .* -> .*:80 .*by rule web \(curl pid \d+\)/);
  });

  await t.test("a blocked connect() fails at once with EPERM, and is reported", async () => {
    // -v prints connect()'s errno; a dropped SYN would end in curl's timeout (exit 28) instead
    const r = run(lab.b, true, ["curl", "-sSv", "--max-time", "3", `http://${lab.v4.a}:8080/`]);
    assert.equal(r.status, 7, `curl: ${r.stderr}`);
    assert.match(r.stderr, /Operation not permitted/);
    const line = await lab.daemon.waitFor(/BLOCKED egress tcp .*:8080 .*by rule no-8080 \(curl/);
    assert.match(line, /\(curl pid \d+\)/);
    await lab.auditHas(/BLOCKED egress tcp .* -> .*:8080 .*no-8080 \(curl pid \d+\)/);
  });

  await t.test("IPv6 connect() is judged the same way", () => {
    const r = run(lab.b, true, ["curl", "-sSv", "--max-time", "3", `http://[${lab.v6.a}]:8080/`]);
    assert.equal(r.status, 7, `curl: ${r.stderr}`);
    assert.match(r.stderr, /Operation not permitted/);
  });

  await t.test("outside the cgroup the packet hook still blocks, without EPERM", () => {
    const r = curl(8080, false);
    // the SYN is dropped by the tc hook: curl times out instead of failing at once
    assert.equal(r.status, 28, `curl: ${r.stderr}`);
  });

  await t.test("an unconnected UDP sendto() gets EPERM", async () => {
    const r = run(lab.b, true, udpSend(lab.v4.a, 53));
    assert.equal(r.stdout.trim(), "EPERM", r.stderr);
    await lab.daemon.waitFor(/BLOCKED egress udp .*:53 .*by rule no-dns \(python3 pid \d+\)/);
  });

  await t.test("detect mode lets the connection through and reports its process", async () => {
    const r = curl(443);
    assert.equal(r.status, 0, r.stderr);
    await lab.daemon.waitFor(/DETECTED egress tcp .*:443 .*by rule watch-443 \(curl pid \d+\)/);
  });
});
