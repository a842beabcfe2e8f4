// B5 (docs/performance.md): how long a reload takes to reach the atomic swap for
// 100k rules and for a set of 1M CIDRs, and whether any packet judged during the swap gets a
// verdict that neither the old nor the new policy gives.
//
// While Datapath.apply() builds and flips the tables on the main thread, the libuv pool keeps
// test-running the XDP program (testRunAsync, long repeats): every run is a NEW connection
// (bench knobs bench_keys = 1, bench_fresh = 1) from one remote to ports that both policies
// block. Any packet the kernel counts as allowed or detected over the swap is misjudged.
//
//   node bench/reload.ts            writes bench/results/reload.json
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { release } from "node:os";
import { Datapath } from "../src/datapath/datapath.ts";
import { compile } from "../src/policy/compile/compile.ts";
import { classify } from "../src/policy/compile/lookup.ts";
import type { ClassifierImage } from "../src/policy/compile/image.ts";
import type { PolicyModel } from "../src/config/index.ts";
import { packet } from "../test/helpers/packets.ts";
import { anchorXdp } from "../test/helpers/xdp-anchor.ts";
import { bigSetModel, mixedModel } from "./compile.ts";

/** bench_address(0) of bpf/include/bench.h (0.0.0.0): the remote of every run. */
const REMOTE = new Uint8Array([0, 0, 0, 0]);
const CANDIDATE_PORTS = Array.from({ length: 64 }, (_, i) => 1 + i * 1009);
/** Long test runs queued on the pool before the swap: they span it. */
const RUNS = 24;
const REPEAT = 200_000;

const verdict = (image: ClassifierImage, dport: number) =>
  classify(image, {
    direction: "ingress",
    family: 4,
    protocol: 6,
    remote: REMOTE,
    local: new Uint8Array([10, 0, 0, 1]),
    serverPort: dport,
    clientPort: 1024,
    icmpType: 0,
    icmpCode: 0,
  }).verdict;

interface Swap {
  case: string;
  compileMs: number;
  applyMs: number;
  totalMs: number;
  probePorts: number;
  judgedBeforeSwapEnd: string;
  judgedDuringSwap: string;
  misjudged: string;
}

const syn = (dport: number) =>
  packet({ src: "192.0.2.1", dst: "10.0.0.1", proto: "tcp", sport: 1000, dport, flags: "S" });

async function swap(dp: Datapath, name: string, from: PolicyModel, to: () => PolicyModel) {
  const oldImage = compile(from);
  dp.apply({ packet: oldImage });
  const model = to();
  const t0 = performance.now();
  const image = compile(model);
  const compileMs = performance.now() - t0;
  const ports = CANDIDATE_PORTS.filter(
    (p) => verdict(oldImage, p) === "blocked" && verdict(image, p) === "blocked",
  );
  if (ports.length === 0) throw new Error("no port that both policies block");

  const before = dp.counters();
  const runs = Array.from({ length: RUNS }, (_, i) =>
    dp.xdp.testRunAsync({ data: syn(ports[i % ports.length]!), repeat: REPEAT }).catch(() => null),
  );
  const { ms: applyMs } = dp.apply({ packet: image });
  // packets judged by the time apply() returned (the flip is its last step): between 0 and
  // all of them means the runs straddled the swap
  const atSwap = dp.counters();
  await Promise.all(runs);
  const after = dp.counters();
  const delta = (k: "allowed" | "blocked" | "detected") => after[k].packets - before[k].packets;
  const row: Swap = {
    case: name,
    compileMs: Math.round(compileMs),
    applyMs: Math.round(applyMs),
    totalMs: Math.round(compileMs + applyMs),
    probePorts: ports.length,
    judgedBeforeSwapEnd: String(atSwap.blocked.packets - before.blocked.packets),
    judgedDuringSwap: String(delta("allowed") + delta("blocked") + delta("detected")),
    misjudged: String(delta("allowed") + delta("detected")),
  };
  return row;
}

const dp = Datapath.start({
  interfaces: [],
  pinRoot: null,
  globals: { bench_keys: 1, bench_fresh: 1 },
});
const anchor = anchorXdp(dp.xdp);
try {
  const rows = [
    await swap(dp, "100k rules -> other 100k rules", mixedModel(100_000), () => mixedModel(99_999)),
    await swap(dp, "100k rules -> set of 1M CIDRs", mixedModel(100_000), () =>
      bigSetModel(1_000_000, 16),
    ),
  ];
  console.table(rows);
  const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
  mkdirSync("bench/results", { recursive: true });
  writeFileSync(
    "bench/results/reload.json",
    JSON.stringify({ bench: "B5 reload", commit, kernel: release(), rows }, null, 2),
  );
} finally {
  anchor.release();
  dp.stop();
}
