// The post-route check across a reload (docs/route-aware.md): a connection it judged by the
// interface its packets really leave by is judged again by that interface, and the connection's
// entry takes that verdict too, so its peer's packets and its close go by it. The lab of
// post-route-reload.test.ts: one uid is policy-routed out of evil0, which the route mirror does
// not see; a rule names evil0.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { spawnLines } from "../helpers/child.ts";
import { addEvil0Route } from "../helpers/evil0-route.ts";
import type { MoatLab } from "../helpers/moat-lab.ts";
import { MOAT } from "../helpers/paths.ts";
import { reloadPolicy } from "../helpers/policy-reload.ts";
import { startReroutedClient, step, type ReroutedClient } from "../helpers/rerouted-client.ts";

const ECHO_PORT = 5356;

/** A UDP peer in namespace a: remembers who sent to it; "tick" sends that one a datagram. */
const PEER = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("listening", flush=True)
_, client = s.recvfrom(100)
print("heard", flush=True)
for _ in sys.stdin:
    s.sendto(b"tick", client)
    print("ticked", flush=True)
`;

test("post-route check: a reload's verdict is the connection's too", async (t) => {
  const cg = cgroupForTest(t, "postentry");
  const policy = (ifB: string, audit: string, rule: string) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${ifB}, evil0], cgroup: ${cg.cgroup} }
logging: { audit: { path: ${audit} } }
rules:
  - { name: no-evil, direction: egress, action: block, interface: { name: [evil0] }, ${rule} }
`;
  const lab = await startCgroupLab(
    cg,
    "post-route entry",
    (l) => {
      addEvil0Route(l);
      return policy(l.ifB, l.auditPath, "layer4: { protocol: tcp, port: [9999] }");
    },
    ["tcp:80"],
  );
  /** The policy with `rule`, once the daemon enforces it (by its hash: the daemon also compiles
   * the running text again at a route change, evil0's IPv6 address once its DAD is done, which
   * may take the next generation number first). */
  const reload = (rule: string) => reloadPolicy(lab, policy(lab.ifB, lab.auditPath, rule));

  /** Once the daemon has compiled the running policy again after `change`: its next generation. */
  const recompiledBy = async (change: () => unknown) => {
    const last = lab.daemon.lines.findLast((l) => /applied: generation \d+,/.test(l)) ?? "";
    const next = Number(/applied: generation (\d+),/.exec(last)?.[1] ?? 0) + 1;
    change();
    await lab.daemon.waitFor(new RegExp(`applied: generation ${next}, \\d+ rules, mode prevent`));
  };

  const a = lab.v4.a.replaceAll(".", "\\.");
  await t.test("made detected by a reload: its close is reported", async () => {
    const tcp = await startReroutedClient(cg, lab, 80, "tcp");
    assert.equal(tcp.connected, "connected");
    assert.equal(await step(tcp, "head"), "sent");
    await reload("mode: detect, layer4: { protocol: tcp, port: [80] }");
    assert.equal(await step(tcp, "end"), "answered");
    await lab.daemon.waitFor(
      new RegExp(
        `DETECTED egress tcp \\S+ -> ${a}:80 on evil0 by rule no-evil \\(python3 pid ${tcp.pid}\\)`,
      ),
    );
    assert.equal(await step(tcp, "close"), "closed");
    await lab.daemon.waitFor(
      new RegExp(`CLOSED egress tcp \\S+ -> ${a}:80 .*\\(python3 pid ${tcp.pid}\\)`),
    );
    tcp.child.kill();
  });

  await t.test("made blocked by a reload: its peer's datagrams are dropped too", async () => {
    await reload("layer4: { protocol: udp, port: [9999] }");
    const peer = spawnLines("nsenter", [
      `--net=/run/netns/${lab.a}`,
      "python3",
      "-c",
      PEER,
      lab.v4.a,
      String(ECHO_PORT),
    ]);
    cg.onClose(() => peer.kill());
    await peer.waitFor(/^listening$/);
    const udp = await startReroutedClient(cg, lab, ECHO_PORT, "udp");
    assert.equal(udp.connected, "connected");
    assert.equal(await step(udp, "send"), "sent");
    await peer.waitFor(/^heard$/);
    peer.send("tick");
    await peer.waitFor(/^ticked$/);
    assert.equal(await arrives(lab, udp), "received", "allowed: the peer's datagram arrives");

    await reload(`layer4: { protocol: udp, port: [${ECHO_PORT}] }`);
    assert.equal(await step(udp, "send"), "EPERM", "blocked by the reload");
    const before = blockedPackets(lab);
    peer.send("tick");
    await peer.waitFor(/^ticked$/);
    assert.equal(await arrives(lab, udp, before), "dropped", "the peer's datagram after the block");

    // a route change compiles the running policy again, a generation of its own: the entry is
    // judged again by the interface the connection leaves by, not by the route mirror's
    await recompiledBy(() =>
      execFileSync("ip", ["-n", lab.b, "route", "add", "10.98.0.0/24", "dev", "evil0"]),
    );
    const again = blockedPackets(lab);
    peer.send("tick");
    await peer.waitFor(/^ticked$/);
    assert.equal(
      await arrives(lab, udp, again),
      "dropped",
      "the peer's datagram after a recompile",
    );
    udp.child.kill();
    peer.kill();
  });
});

/** The kernel's blocked-packet counter. */
function blockedPackets(lab: MoatLab): number {
  const r = spawnSync(MOAT, ["status", "--json", "--api", `unix:${lab.apiSocket}`], {
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as { counters: { blocked: { packets: number } } }).counters.blocked
    .packets;
}

/**
 * What became of a datagram the peer sent: "received" once the client reads it, "dropped" once a
 * packet hook counted a blocked packet more than `blockedBefore` (given) and the client has none.
 */
async function arrives(
  lab: MoatLab,
  client: ReroutedClient,
  blockedBefore?: number,
): Promise<string> {
  for (let tries = 0; tries < 100; tries++) {
    const dropped = blockedBefore !== undefined && blockedPackets(lab) > blockedBefore;
    if ((await step(client, "poll")) === "received") return "received";
    if (dropped) return "dropped";
    await new Promise((r) => setTimeout(r, 100));
  }
  return "neither";
}
