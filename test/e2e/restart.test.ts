// A daemon killed with SIGKILL, or handing over on SIGUSR2 (the signal a service manager's
// restart sends), and started again leaves no gap: its pinned links keep enforcing
// until the new daemon updates them in place, the new one adopts the pinned connection table
// and policy state, and generations continue. Seen from the peer namespace: a blocked port
// probed every 10 ms never accepts a connection, and an allowed connection the host opened,
// whose peer keeps sending under `defaults.ingress: block`, is never cut; not even by a restart
// that cannot adopt the connection table (its layout version differs).
import { test } from "node:test";
import assert from "node:assert/strict";
import { startMoatLab } from "../helpers/moat-lab.ts";
import { spawnLines, type LineChild } from "../helpers/child.ts";
import { NODE, ROOT } from "../helpers/paths.ts";
import type { Lab } from "../helpers/netns.ts";
import { native } from "../../src/datapath/addon.ts";
import { MAP_GROUPS } from "../../src/datapath/pinned-maps.ts";
import { guardedInterface } from "../helpers/ingress-mode.ts";

// each start loads and verifies the programs (2-4 s a start on a 2-core machine): each restart
// asserts the same things, so two of each kind (SIGKILL, SIGUSR2, in turn) cover both paths and
// each following the other (a SIGKILL after a start and after a hand-over, a hand-over after a
// SIGKILL), and the restart with an empty conntrack table below follows a hand-over
const RESTARTS = 4;
const FEED_PORT = 7070;
const TRAFFIC = `${ROOT}test/helpers/traffic.ts`;

function inNs(ns: string, args: string[]): LineChild {
  return spawnLines("ip", [
    "netns",
    "exec",
    ns,
    NODE,
    "--disable-warning=ExperimentalWarning",
    TRAFFIC,
    ...args,
  ]);
}

const policy = (lab: Lab & { auditPath: string }) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${guardedInterface(lab.ifB)}] }
logging: { audit: { path: ${lab.auditPath} } }
rules:
  - name: ssh
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [22] }
  - name: icmpv6
    direction: ingress
    action: allow
    layer4: { protocol: icmpv6 }
`;

/** The byte count `follow` last reported. */
const received = (f: LineChild) => {
  const last = f.lines.findLast((l) => l.startsWith("bytes "));
  return last ? Number(last.slice(6)) : 0;
};

/** Resolves once `follow` has received more than `after` bytes; fails if it closed. */
async function flowing(f: LineChild, after: number, what: string): Promise<void> {
  for (let i = 0; i < 60; i++) {
    const closed = f.lines.find((l) => l.startsWith("closed "));
    assert.equal(closed, undefined, `${what}: the stream was closed`);
    if (received(f) > after) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${what}: no byte arrived in 3 s (stuck at ${after}); the stream was cut`);
}

test(
  `kill -9 or SIGUSR2 and start ${RESTARTS} times: no blocked probe accepted, no allowed stream cut, generations continue`,
  { timeout: 240_000 },
  async (t) => {
    const lab = await startMoatLab(t.name, policy);
    const children: LineChild[] = [];
    try {
      // the peer (a) feeds a connection the host (b) opened: allowed egress, its inbound
      // packets pass only as part of the tracked connection
      const feed = inNs(lab.a, ["feed", String(FEED_PORT)]);
      children.push(feed);
      await feed.waitFor(/^listening$/);
      const follow = inNs(lab.b, ["follow", lab.v4.a, String(FEED_PORT)]);
      children.push(follow);
      await flowing(follow, 0, "before any restart");

      // port 80 listens on b and the policy blocks it
      const probe = inNs(lab.a, ["probe", lab.v4.b, "80"]);
      children.push(probe);
      await probe.waitFor(/^probing$/);

      const generation = (d: LineChild) =>
        Number(/ applied: generation (\d+)/.exec(d.lines.join("\n"))?.[1]);
      const generations = [generation(lab.daemon)];
      for (let i = 1; i <= RESTARTS; i++) {
        const signal = i % 2 ? "SIGKILL" : "SIGUSR2";
        const old = lab.daemon;
        generations.push(generation(await lab.restart(signal)));
        if (signal === "SIGUSR2") {
          assert.equal(await old.exited, 0, "a hand-over is a clean exit");
          assert.match(old.lines.join("\n"), /left the programs attached and pinned/);
        }
        await flowing(follow, received(follow), `after restart ${i} (${signal})`);
      }

      // a build whose conntrack layout differs: the table is not adopted but created empty, and
      // the stream's packets find its local socket established instead
      const record = native().BpfMap.openPinned(`${lab.pinDir}/abi`);
      const key = Buffer.alloc(16);
      key.write("conntrack");
      record.update(key, Buffer.alloc(8)); // layout version 0
      record.close();
      const upgraded = await lab.restart("SIGKILL");
      assert.match(
        upgraded.lines.join("\n"),
        new RegExp(
          `pinned conntrack maps not adopted \\(layout version 0, this build has ${MAP_GROUPS.conntrack?.version}; no converter\\): created empty`,
        ),
      );
      await flowing(follow, received(follow), "after a restart with an empty conntrack table");
      await new Promise((r) => setTimeout(r, 200));
      probe.kill("SIGTERM");
      const summary = await probe.waitFor(/^probes \d+ accepted \d+$/);
      const [, probes, accepted] = /^probes (\d+) accepted (\d+)$/.exec(summary) ?? [];
      assert.ok(Number(probes) > RESTARTS * 10, `probes ran throughout (${summary})`);
      assert.equal(Number(accepted), 0, `no blocked probe was accepted (${summary})`);
      for (let i = 1; i < generations.length; i++)
        assert.ok(
          (generations[i] ?? 0) > (generations[i - 1] ?? 0),
          `generations continue from the pinned state: ${generations.join(", ")}`,
        );
    } finally {
      for (const c of children) c.kill("SIGKILL");
      await lab.close();
    }
  },
);
