// A kernel tunnel's own packets (here VXLAN's, sent from a kernel socket no socket hook sees) are
// judged by the packet rules, as before interface rules judged packets without a local socket: a
// rule that keeps an address range off untunnelled paths does not cut the tunnel that carries
// the range.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn } from "../helpers/cgroup-run.ts";
import { guardedInterface } from "../helpers/ingress-mode.ts";

const ip = (...args: string[]) => execFileSync("ip", args, { encoding: "utf8" });

test("a vxlan tunnel to an address only tunnels may reach carries the host's connection", async (t) => {
  const cg = cgroupForTest(t, "carrier");
  const vx = `mvx${process.pid % 100000}`;
  const lab = await startCgroupLab(
    cg,
    "tunnel carrier",
    (l) => {
      for (const [ns, local, remote, dev, addr] of [
        [l.b, l.v4.b, l.v4.a, l.ifB, "10.99.0.1/24"],
        [l.a, l.v4.a, l.v4.b, l.ifA, "10.99.0.5/24"],
      ] as const) {
        ip(
          "-n",
          ns,
          "link",
          "add",
          vx,
          "type",
          "vxlan",
          "id",
          "42",
          "remote",
          remote,
          "local",
          local,
          "dstport",
          "4789",
          "dev",
          dev,
        );
        ip("-n", ns, "addr", "add", addr, "dev", vx);
        ip("-n", ns, "link", "set", vx, "up");
      }
      return `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${guardedInterface(l.ifB)}], cgroup: ${cg.cgroup} }
logging: { audit: { path: ${l.auditPath} } }
rules:
  - { name: peer-only-over-vpn, direction: egress, action: block, layer3: { remote: [${l.v4.a}] }, interface: { tunnel: false } }
`;
    },
    ["tcp:80", "udp:53"],
  );
  const curl = (url: string) =>
    runIn(lab.b, cg.dir, ["curl", "-sS", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}", url]);

  await t.test("straight to the address: refused at connect()", () => {
    const r = curl(`http://${lab.v4.a}/`);
    assert.equal(r.status, 7, `curl: ${r.stderr}`);
  });

  await t.test("through the tunnel: the connection and its carrier pass", () => {
    const r = curl("http://10.99.0.5/");
    assert.equal(r.stdout, "200", `curl over the vxlan: ${r.stderr}`);
    assert.doesNotMatch(lab.audit(), /BLOCKED egress udp .*:4789/);
  });

  await t.test("a udp datagram through the tunnel, and its answer", () => {
    // the peer's udp port echoes
    const r = runIn(lab.b, cg.dir, [
      "python3",
      "-c",
      `import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.connect(("10.99.0.5", 53))
s.send(b"ping")
print(s.recv(100).decode())`,
    ]);
    assert.equal(r.stdout, "ping\n", `udp over the vxlan: ${r.stderr}`);
    assert.doesNotMatch(lab.audit(), /BLOCKED egress udp .*:4789/);
  });
});
