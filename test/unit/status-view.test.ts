// What `moat status` shows: packet counters labelled as packets, the two default pseudo-rules
// named for the direction they decide, and each interface's ingress hook with why it was chosen
// (a snapshot of a datapath stand-in).
import { test } from "node:test";
import assert from "node:assert/strict";
import { snapshotSource, type SnapshotDatapath } from "../../src/observe/snapshot.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { formatStatus, type StatusJson } from "../../src/cli/commands/status.ts";
import { Counter, type CounterName } from "../../src/datapath/abi.ts";
import type { Attachment } from "../../src/datapath/datapath.ts";

function fakeDatapath(): SnapshotDatapath {
  const counters = Object.fromEntries(
    Object.keys(Counter)
      .filter((k) => k !== "max")
      .map((k) => [k, { packets: 0n, bytes: 0n }]),
  ) as Record<CounterName, { packets: bigint; bytes: bigint }>;
  counters.pass = { packets: 90n, bytes: 9000n };
  counters.drop = { packets: 10n, bytes: 1000n };
  counters.allowed = { packets: 80n, bytes: 8000n };
  counters.blocked = { packets: 10n, bytes: 1000n };
  counters.detected = { packets: 10n, bytes: 1000n };
  counters.ctCreated = { packets: 4n, bytes: 0n };
  const rule = (index: number, name: string) => ({
    index,
    name,
    packets: 1n,
    bytes: 1n,
    connections: 1n,
  });
  return {
    attachments: [],
    generation: 2,
    counters: () => counters,
    ruleCounters: () => ({
      generation: 2,
      rules: [rule(0, "ssh"), rule(1, "default"), rule(2, "default")],
    }),
    conntrackMap: { maxEntries: 1024 },
    conntrackEntries: () => 0,
  };
}

const state = {
  mode: () => "detect" as const,
  policyPath: "/etc/moat/policy.yaml",
  policyHash: () => "ab".repeat(32),
  reloads: { ok: 0, refused: 0 },
};

test("status lists the two default pseudo-rules by the direction they decide", () => {
  const snap = snapshotSource(fakeDatapath(), state, new EventPipeline())();
  assert.deepEqual(
    snap.rules.map((r) => r.name),
    ["ssh", "defaults.ingress", "defaults.egress"],
  );
});

test("status labels the verdict counters as packets, and counts connections apart", () => {
  const snap = snapshotSource(fakeDatapath(), state, new EventPipeline())();
  const json = JSON.parse(
    JSON.stringify(snap, (_k, v: unknown) => (typeof v === "bigint" ? Number(v) : v)),
  ) as StatusJson;
  const lines = formatStatus(json);
  const packets = lines.find((l) => l.startsWith("packets:"));
  assert.equal(
    packets,
    "packets: 90 passed, 10 dropped; of allowed connections 80, of blocked 10, of detected 10",
  );
  assert.ok(lines.includes("connections: 4 tracked"), lines.join("\n"));
  assert.ok(!lines.some((l) => /connections: \d+ allowed/.test(l)), lines.join("\n"));
});

test("status names each interface's ingress hook and why it was chosen", () => {
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
  ];
  const dp = { ...fakeDatapath(), attachments };
  const snap = snapshotSource(dp, state, new EventPipeline())();
  const json = JSON.parse(
    JSON.stringify(snap, (_k, v: unknown) => (typeof v === "bigint" ? Number(v) : v)),
  ) as StatusJson;
  assert.deepEqual(json.attached[0], {
    interface: "veth1",
    hook: "tc-ingress",
    mode: "tcx",
    why: "auto: veth -> tc",
  });
  assert.equal(
    formatStatus(json).find((l) => l.startsWith("attached:")),
    "attached: veth1 tc-ingress tcx (auto: veth -> tc), veth1 tc-egress tcx, eth1 xdp native (ingress: xdp)",
  );
});
