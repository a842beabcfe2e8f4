// What `moat status` shows: packet counters labelled as packets, the two default pseudo-rules
// named for the direction they decide, and each interface's ingress hook with why it was chosen
// (a snapshot of a datapath stand-in).
import { test } from "node:test";
import assert from "node:assert/strict";
import { snapshotSource } from "../../src/observe/snapshot.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { formatStatus } from "../../src/cli/commands/status.ts";
import type { Attachment } from "../../src/datapath/datapath.ts";
import { fakeDatapath, state, statusJson } from "../helpers/status-snapshot.ts";

test("status lists the two default pseudo-rules by the direction they decide", () => {
  const snap = snapshotSource(fakeDatapath(), state, new EventPipeline())();
  assert.deepEqual(
    snap.rules.map((r) => r.name),
    ["ssh", "defaults.ingress", "defaults.egress"],
  );
});

test("status labels the verdict counters as packets, and counts connections apart", () => {
  const snap = snapshotSource(fakeDatapath(), state, new EventPipeline())();
  const json = statusJson(snap);
  const lines = formatStatus(json);
  const packets = lines.find((l) => l.startsWith("packets:"));
  assert.equal(
    packets,
    "packets: 90 passed, 10 dropped; of allowed connections 80, of blocked 10, of detected 10",
  );
  assert.ok(lines.includes("connections: 4 tracked"), lines.join("\n"));
  assert.ok(!lines.some((l) => /connections: \d+ allowed/.test(l)), lines.join("\n"));
});

test("status names each interface's ingress hook and why it was chosen, a line per interface", () => {
  const at = { linkId: 1, pin: null, updated: false };
  const attachments: Attachment[] = [
    {
      ...at,
      program: "moat_tc_ingress",
      hook: "tc-ingress",
      interface: "veth1",
      ifindex: 5,
      mode: "tcx",
      why: "auto: veth -> tc",
    },
    {
      ...at,
      program: "moat_tc_egress",
      hook: "tc-egress",
      interface: "veth1",
      ifindex: 5,
      mode: "tcx",
    },
    {
      ...at,
      program: "moat_xdp_ingress",
      hook: "xdp",
      interface: "eth1",
      ifindex: 6,
      mode: "native",
      why: "ingress: xdp",
    },
    ...(["connect4", "connect6"] as const).map((hook) => ({
      ...at,
      program: `moat_${hook}`,
      hook,
      interface: "/sys/fs/cgroup/moat",
      ifindex: 0,
      mode: "cgroup",
    })),
  ];
  const dp = { ...fakeDatapath(), attachments };
  const snap = snapshotSource(dp, state, new EventPipeline())();
  const json = statusJson(snap);
  assert.deepEqual(json.attached[0], {
    interface: "veth1",
    hook: "tc-ingress",
    mode: "tcx",
    why: "auto: veth -> tc",
  });
  assert.deepEqual(
    formatStatus(json).filter((l) => l.startsWith("attached:")),
    [
      "attached: veth1 tc-ingress tcx (auto: veth -> tc), tc-egress tcx",
      "attached: eth1 xdp native (ingress: xdp)",
      "attached: cgroup /sys/fs/cgroup/moat: connect4, connect6",
    ],
  );
});
