// The post-route check across a reload (docs/route-aware.md): a connection judged by the interface
// its first packet really left by is judged again, by that interface, under the policy a reload
// brings. The lab of post-route.test.ts: namespace b reaches namespace a over its veth and over
// evil0, which a rule forbids; one uid is policy-routed out of evil0, which the route mirror does
// not see. Each client keeps one socket open across the reload.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { addEvil0Route } from "../helpers/evil0-route.ts";
import { reloadPolicy } from "../helpers/policy-reload.ts";
import { startReroutedClient, step, type ReroutedClient } from "../helpers/rerouted-client.ts";

test("post-route check: a reload judges a connection again by its real interface", async (t) => {
  const cg = cgroupForTest(t, "postreload");
  const policy = (mode: string, ifB: string) => `version: 1
mode: ${mode}
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${ifB}], cgroup: ${cg.cgroup} }
rules:
  - { name: no-evil, direction: egress, action: block, interface: { name: [evil0] } }
`;
  const lab = await startCgroupLab(
    cg,
    "post-route reload",
    (l) => {
      addEvil0Route(l);
      return policy("prevent", l.ifB);
    },
    ["tcp:80", "udp:53,5353"],
  );
  const a = lab.v4.a.replaceAll(".", "\\.");
  const reload = async (mode: string) => {
    await reloadPolicy(lab, policy(mode, lab.ifB));
  };
  const event = (verdict: string, proto: string, port: number, c: ReroutedClient) =>
    lab.daemon.waitFor(
      new RegExp(
        `${verdict} egress ${proto} \\S+ -> ${a}:${port} on evil0 by rule no-evil \\(python3 pid ${c.pid}\\)`,
      ),
    );

  await t.test(
    "prevent -> detect: a blocked UDP socket sends again, reported detected",
    async () => {
      const udp = await startReroutedClient(cg, lab, 53, "udp");
      assert.equal(udp.connected, "connected");
      assert.equal(await step(udp, "send"), "EPERM");
      await event("BLOCKED", "udp", 53, udp);
      await reload("detect");
      assert.equal(await step(udp, "send"), "sent", "blocked under the old policy, detected now");
      await event("DETECTED", "udp", 53, udp);
      udp.child.kill();
    },
  );

  await t.test(
    "detect -> prevent: a UDP socket that sent is refused, reported blocked",
    async () => {
      // another port than above: the daemon's output folds repeated detections of one kind
      const udp = await startReroutedClient(cg, lab, 5353, "udp");
      assert.equal(await step(udp, "send"), "sent");
      await event("DETECTED", "udp", 5353, udp);
      await reload("prevent");
      assert.equal(await step(udp, "send"), "EPERM", "detected under the old policy, blocked now");
      await event("BLOCKED", "udp", 5353, udp);
      udp.child.kill();
    },
  );

  await t.test("detect -> prevent: an open TCP connection is cut, reported blocked", async () => {
    await reload("detect");
    const tcp = await startReroutedClient(cg, lab, 80, "tcp");
    assert.equal(tcp.connected, "connected");
    await event("DETECTED", "tcp", 80, tcp);
    assert.equal(await step(tcp, "head"), "sent");
    await reload("prevent");
    // the segment is dropped and the daemon destroys the socket: the read fails at once
    assert.equal(await step(tcp, "end"), "ECONNABORTED");
    await event("BLOCKED", "tcp", 80, tcp);
    tcp.child.kill();
  });
});
