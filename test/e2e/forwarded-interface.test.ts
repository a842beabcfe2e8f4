// Interface rules and forwarded traffic: a container's packets reach moat's host (namespace b)
// without a socket there, and the host routes them out of one of its interfaces. The TC hook of
// that interface judges them by it: an egress rule naming the interface applies to them as to
// the host's own connections, and no process rule matches them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn } from "../helpers/cgroup-run.ts";
import { guardedInterface } from "../helpers/ingress-mode.ts";
import {
  addContainerBehindB,
  addMacvlan,
  addSecondVeth,
  deleteNamespace,
} from "../helpers/lab-links.ts";

const ip = (...args: string[]) => execFileSync("ip", args, { encoding: "utf8" });

test("a container's forwarded connection leaving by an interface an egress rule names", async (t) => {
  const cg = cgroupForTest(t, "fwdif");
  const c = `moat-fwdif-c-${process.pid}`;
  const wg = `mfw${process.pid % 100000}`;
  const mc = `mfc${process.pid % 100000}`;
  cg.onClose(() => deleteNamespace(c));
  const lab = await startCgroupLab(
    cg,
    "forwarded interface",
    (l) => {
      addSecondVeth(l, wg);
      // a container namespace c behind b, by an interface moat does not guard
      addContainerBehindB(l, c, mc);
      // a answers the container by the way it came: the veth's, or wg's
      ip("-n", l.a, "route", "add", "10.78.0.0/24", "via", l.v4.b);
      return `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${guardedInterface(l.ifB)}, ${wg}], cgroup: ${cg.cgroup} }
logging: { audit: { path: ${l.auditPath} } }
rules:
  - { name: nothing-by-${wg}, direction: egress, action: block, interface: { name: [${wg}] } }
  - { name: no-root-web, direction: egress, action: block, process: { user: [0] }, layer4: { protocol: tcp, port: [8080] } }
`;
    },
    ["tcp:80,8080"],
  );
  const curl = (url: string) =>
    runIn(c, null, ["curl", "-sS", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}", url]);

  await t.test("out by the veth no rule names: it passes", () => {
    const r = curl(`http://${lab.v4.a}/`);
    assert.equal(r.stdout, "200", `curl from the container: ${r.stderr}`);
  });

  await t.test("out by the interface the rule names: dropped, and reported", async () => {
    const r = curl("http://10.77.0.5/");
    // the SYN is dropped at the host's interface: curl waits until its own timeout (exit 28)
    assert.equal(r.status, 28, `curl from the container: ${r.stdout} ${r.stderr}`);
    await lab.daemon.waitFor(
      new RegExp(`BLOCKED egress tcp .*10\\.77\\.0\\.5:80 .*by rule nothing-by-${wg}`),
    );
    await lab.auditHas(
      new RegExp(`BLOCKED egress tcp .* -> 10\\.77\\.0\\.5:80 .*nothing-by-${wg}`),
    );
  });

  await t.test("a process rule does not match a packet without a process", () => {
    // curl in the container runs as root, but its packets reach the host without a socket
    const r = curl(`http://${lab.v4.a}:8080/`);
    assert.equal(r.stdout, "200", `curl from the container: ${r.stderr}`);
  });
});

test("a container's connection forwarded out of a macvlan on an attached interface is judged as the macvlan", async (t) => {
  const cg = cgroupForTest(t, "fwdmv");
  const c = `moat-fwdmv-c-${process.pid}`;
  const mv = `mfm${process.pid % 100000}`;
  const mc = `mfn${process.pid % 100000}`;
  cg.onClose(() => deleteNamespace(c));
  const lab = await startCgroupLab(
    cg,
    "forwarded macvlan",
    (l) => {
      // the macvlan's frames leave by the lower veth's hook; only the veth is attached
      addMacvlan(l, mv);
      addContainerBehindB(l, c, mc);
      ip("-n", l.a, "route", "add", "10.78.0.0/24", "via", "10.89.0.1");
      return `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${guardedInterface(l.ifB)}], cgroup: ${cg.cgroup} }
rules:
  - { name: no-web-by-macvlan, direction: egress, action: block, layer4: { protocol: tcp, port: [80] }, interface: { name: [${mv}] } }
  - { name: no-8080-by-veth, direction: egress, action: block, layer4: { protocol: tcp, port: [8080] }, interface: { name: [${l.ifB}] } }
`;
    },
    ["tcp:80,8080"],
  );
  const curl = (url: string) =>
    runIn(c, null, ["curl", "-sS", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}", url]);

  const web = curl("http://10.89.0.5/");
  assert.equal(web.status, 28, `port 80 out of the macvlan: ${web.stdout} ${web.stderr}`);
  await lab.daemon.waitFor(
    new RegExp(
      `BLOCKED egress tcp 10\\.78\\.0\\.2:\\d+ -> 10\\.89\\.0\\.5:80 on ${mv} by rule no-web-by-macvlan`,
    ),
  );
  const other = curl("http://10.89.0.5:8080/");
  assert.equal(other.stdout, "200", `port 8080 out of the macvlan, not the veth: ${other.stderr}`);
});
