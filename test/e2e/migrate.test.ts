// A daemon that finds the connection table pinned in an older layout migrates it: a new table
// in this build's layout, filled by the registered converter before load, taken over by the new
// programs when their links are updated. Seen from the host: an allowed UDP flow the host opened
// from an unconnected socket, whose peer keeps sending under `defaults.ingress: block`, still
// passes after the restart; an empty table would judge the peer's next datagram as a new
// ingress flow and block it (nothing says the host opened it). Then the same from a table a
// daemon of layout 6 left (65,536 entries, this build's holds one more): copied as it is, the flow
// still passes, and status reports the table's size as before.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { startMoatLab } from "../helpers/moat-lab.ts";
import { spawnLines, type LineChild } from "../helpers/child.ts";
import { MOAT, NODE, ROOT } from "../helpers/paths.ts";
import type { Lab } from "../helpers/netns.ts";
import { native } from "../../src/datapath/addon.ts";
import { ct } from "../../src/datapath/abi.ts";
import { conntrackEntries } from "../../src/datapath/conntrack.ts";
import { OLD_CT_VERSION, oldCt, toOldCt } from "../helpers/ct-layout-fixture.ts";
import { MAP_GROUPS } from "../../src/datapath/pinned-maps.ts";
import { LAYOUT6_ENTRIES, plantConntrack, plantLayout6 } from "../helpers/ct-layout6.ts";

const FEED_PORT = 7071;
const TRAFFIC = `${ROOT}test/helpers/traffic.ts`;
const MIGRATING = `${ROOT}test/helpers/moat-migrating.ts`;

const inNs = (ns: string, args: string[]): LineChild =>
  spawnLines("ip", [
    "netns",
    "exec",
    ns,
    NODE,
    "--disable-warning=ExperimentalWarning",
    TRAFFIC,
    ...args,
  ]);

const policy = (lab: Lab & { auditPath: string }) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${lab.ifB}] }
logging: { audit: { path: ${lab.auditPath} } }
rules: []
`;

const received = (f: LineChild) => {
  const last = f.lines.findLast((l) => l.startsWith("bytes "));
  return last ? Number(last.slice(6)) : 0;
};

/** Resolves once more than `after` bytes arrived; fails after 2 s without any. */
async function flowing(f: LineChild, after: number, what: string): Promise<void> {
  for (let i = 0; i < 40; i++) {
    if (received(f) > after) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${what}: no datagram arrived in 2 s (stuck at ${after} bytes); the flow was cut`);
}

/** Replaces the pinned conntrack table with one in layout 0 holding the same entries. */
const plantOldLayout = (pinDir: string): number =>
  plantConntrack(pinDir, { version: OLD_CT_VERSION, valueSize: oldCt.size, convert: toOldCt });

test("a connection table pinned in an older layout, or in layout 6, is migrated: its flows are judged as before", async (t) => {
  const lab = await startMoatLab(t.name, policy, ["tcp:22"], {
    moat: [NODE, "--disable-warning=ExperimentalWarning", MIGRATING],
  });
  const children: LineChild[] = [];
  try {
    const feed = inNs(lab.a, ["feed-udp", String(FEED_PORT)]);
    children.push(feed);
    await feed.waitFor(/^listening$/);
    const hello = inNs(lab.b, ["hello-udp", lab.v4.a, String(FEED_PORT)]);
    children.push(hello);
    await flowing(hello, 0, "before the restart");

    const flow = (map: Parameters<typeof conntrackEntries>[0]) =>
      [...conntrackEntries(map)].find((e) => e.protocol === 17 && e.remote.port === FEED_PORT);
    const before = native().BpfMap.openPinned(`${lab.pinDir}/maps/conntrack`);
    const tracked = flow(before);
    before.close();
    assert.ok(tracked, "the flow is tracked");

    // the daemon killed, an older layout's pins planted (planting returns the entries), and the
    // daemon started again: every planted entry is copied into this build's layout
    const restartOver = async (from: number, plant: (pinDir: string) => number) => {
      lab.daemon.kill("SIGKILL");
      await lab.daemon.exited;
      const planted = plant(lab.pinDir);
      assert.ok(planted >= 1);
      const log = (await lab.restart("SIGKILL")).lines.join("\n");
      const copied = new RegExp(
        `pinned conntrack maps migrated from layout ${from} to ${MAP_GROUPS.conntrack!.version}: (\\d+) entries copied`,
      ).exec(log);
      assert.ok(copied, `the layout ${from} table was migrated:\n${log}`);
      assert.equal(Number(copied[1]), planted);
    };
    await restartOver(0, plantOldLayout);

    // the new table: this build's layout, the flow's entry as it was
    const after = native().BpfMap.openPinned(`${lab.pinDir}/maps/conntrack`);
    assert.equal(after.valueSize, ct.size);
    const carried = flow(after);
    after.close();
    assert.ok(carried, "the flow's entry is in the new table");
    assert.equal(carried.id, tracked.id);
    assert.equal(carried.createdNs, tracked.createdNs);
    assert.equal(carried.direction, "egress");
    assert.equal(carried.verdict, "allowed");

    // the peer's datagrams still pass, for a good while after the new programs took over
    for (let i = 0; i < 5; i++) await flowing(hello, received(hello), `after the restart (${i})`);

    // layout 6: the same entries in a table of 65,536, copied as they are into one of 65,537
    await restartOver(6, plantLayout6);
    const larger = native().BpfMap.openPinned(`${lab.pinDir}/maps/conntrack`);
    assert.equal(larger.maxEntries, LAYOUT6_ENTRIES + 1);
    assert.equal(flow(larger)?.id, tracked.id, "the flow's entry, as it was");
    larger.close();
    for (let i = 0; i < 3; i++) await flowing(hello, received(hello), `after layout 6 (${i})`);
    const status = spawnSync(MOAT, ["status", "--json", "--api", `unix:${lab.apiSocket}`], {
      encoding: "utf8",
      timeout: 20_000,
    });
    assert.equal(status.status, 0, status.stderr);
    const shown = JSON.parse(status.stdout) as { conntrack: { capacity: number } };
    assert.equal(shown.conntrack.capacity, LAYOUT6_ENTRIES, "status: the size it is given");
  } finally {
    for (const c of children) c.kill("SIGKILL");
    await lab.close();
  }
});
