// Interface rules and a container's own network namespace: its devices are numbered apart from
// the host's, so the post-route check (which compares a packet's ifindex with the host's route
// mirror) does not run for its sockets. Its connection is judged at connect() by the host's
// routes, which are the ones that forward it: a container whose eth0 has the ifindex of a host
// interface a rule forbids is not blocked for that.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn } from "../helpers/cgroup-run.ts";
import { addContainerBehindB, addSecondVeth, deleteNamespace } from "../helpers/lab-links.ts";

const ip = (...args: string[]) => execFileSync("ip", args, { encoding: "utf8" });
const ifindex = (ns: string, dev: string) =>
  (JSON.parse(ip("-n", ns, "-j", "link", "show", dev)) as { ifindex: number }[])[0]!.ifindex;

test("a container whose eth0 has a forbidden host interface's ifindex reaches what the host routes elsewhere", async (t) => {
  const cg = cgroupForTest(t, "ifnetns");
  const c = `moat-ifnetns-c-${process.pid}`;
  const wg = `mwg${process.pid % 100000}`;
  cg.onClose(() => deleteNamespace(c));
  const lab = await startCgroupLab(
    cg,
    "interface rules, other namespace",
    (l) => {
      // the host's second way out: 10.77.0.0/24 by `wg`, a veth into namespace a
      addSecondVeth(l, wg);
      // a container namespace c behind b, its eth0 numbered as b's guarded interface
      addContainerBehindB(l, c, `mc${process.pid % 100000}`, ifindex(l.b, l.ifB));
      ip("-n", l.a, "route", "add", "10.78.0.0/24", "via", "10.77.0.1");
      return `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cg.cgroup} }
rules:
  - { name: not-${l.ifB}, direction: egress, action: block, interface: { name: [${l.ifB}] } }
`;
    },
    ["tcp:80"],
  );
  assert.equal(ifindex(c, "eth0"), ifindex(lab.b, lab.ifB), "the set-up numbers eth0 so");
  const r = runIn(c, cg.dir, [
    "curl",
    "-sS",
    "-m",
    "5",
    "-o",
    "/dev/null",
    "-w",
    "%{http_code}",
    "http://10.77.0.5/",
  ]);
  assert.equal(r.stdout, "200", `curl from the container: ${r.stderr}`);
  const blocked = lab.daemon.lines.filter((l) => /BLOCKED/.test(l));
  assert.deepEqual(blocked, [], "no block for the container's connection");
});
