// Route-aware rules at connect(): moat's host (namespace b) has its veth and a tun device with
// routes through it; `interface` rules decide by the interface the route mirror says the
// destination leaves by, before the SYN is sent, and follow a route added while moat runs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn } from "../helpers/cgroup-run.ts";
import { guardedInterface } from "../helpers/ingress-mode.ts";

const TUN_NET = "10.77.0.0/16";
const LATER_NET = "10.78.0.0/16";

test("interface rules: the route's interface and tunnel flag decide at connect()", async (t) => {
  const cg = cgroupForTest(t, "iface");
  const { cgroup, dir } = cg;
  const lab = await startCgroupLab(
    cg,
    "interface rules",
    (l) => {
      // the tun device and its route exist before moat starts (namespace b is moat's host)
      execFileSync("ip", ["-n", l.b, "tuntap", "add", "mode", "tun", "name", "tunx"]);
      execFileSync("ip", ["-n", l.b, "link", "set", "tunx", "up"]);
      execFileSync("ip", ["-n", l.b, "route", "add", TUN_NET, "dev", "tunx"]);
      return `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${guardedInterface(l.ifB)}], cgroup: ${cgroup} }
rules:
  - { name: no-tunnel-web, direction: egress, action: block, interface: { tunnel: true }, layer4: { protocol: tcp, port: [80] } }
  - { name: lan-8080, direction: egress, action: allow, interface: { name: ["${l.ifB}"] }, layer4: { protocol: tcp, port: [8080] } }
  - { name: no-8080, direction: egress, action: block, layer4: { protocol: tcp, port: [8080] } }
`;
    },
    ["tcp:80,8080"],
  );
  const curl = (host: string, port: number) =>
    runIn(lab.b, dir, ["curl", "-sS", "--max-time", "2", `http://${host}:${port}/`]);

  await t.test("over the veth: port 80 and 8080 pass", () => {
    assert.equal(curl(lab.v4.a, 80).status, 0);
    assert.equal(curl(lab.v4.a, 8080).status, 0);
  });

  await t.test(
    "into the tunnel: port 80 gets EPERM (tunnel), 8080 too (not the veth)",
    async () => {
      // -v prints connect()'s errno; a dropped SYN would end in curl's timeout (exit 28)
      const web = runIn(lab.b, dir, ["curl", "-sSv", "--max-time", "2", "http://10.77.0.5:80/"]);
      assert.equal(web.status, 7, web.stderr);
      assert.match(web.stderr, /Operation not permitted/);
      await lab.daemon.waitFor(/BLOCKED egress tcp .*10\.77\.0\.5:80 .*by rule no-tunnel-web/);
      assert.equal(curl("10.77.0.5", 8080).status, 7);
    },
  );

  await t.test("a route added while moat runs is followed", async () => {
    execFileSync("ip", ["-n", lab.b, "route", "add", LATER_NET, "dev", "tunx"]);
    let status = curl("10.78.0.9", 80).status;
    for (let i = 0; i < 40 && status !== 7; i++) {
      await new Promise((r) => setTimeout(r, 250));
      status = curl("10.78.0.9", 80).status;
    }
    assert.equal(status, 7, "a connection into the new tunnel route was not refused");
  });
});
