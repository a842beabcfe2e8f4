// B5 (docs/performance.md): how long a reload takes to reach the atomic swap for
// 100k rules and for a set of 1M CIDRs, and whether any packet judged during the swap gets a
// verdict that neither the old nor the new policy gives.
//
// While Datapath.applyInTurns() builds the tables on the main thread (a turn of the event loop
// after each part, as the daemon does) and flips them, the libuv pool keeps
// test-running the XDP program (testRunAsync, long repeats): every run is a NEW connection
// (bench knobs bench_keys = 1, bench_fresh = 1) from one remote to ports that both policies
// block. Any packet the kernel counts as allowed or detected over the swap is misjudged.
//
// The "from the file" cases time what a file-driven reload does end to end: the policy file (100k
// rules; or a rule on a set file of 1M CIDRs) read, checked and compiled the daemon's way (on the
// worker thread, acceptPolicyOffThread, the packet tables made as soon as they are compiled),
// then applied; with the event loop's longest stall over
// that time and the process's peak RSS after it (the file cases run first, from a small policy).
//
//   node bench/reload.ts            writes bench/results/reload.json
//   node bench/reload.ts file       the file cases only
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { release, tmpdir } from "node:os";
import { join } from "node:path";
import { acceptedOrThrow, acceptPolicyOffThread, stopAcceptWorker } from "../src/host/index.ts";
import { readPolicyFileTextAsync } from "../src/host/policy-files.ts";
import { Datapath } from "../src/datapath/datapath.ts";
import { compile } from "../src/policy/compile/compile.ts";
import { classify } from "../src/policy/compile/lookup.ts";
import type { ClassifierImage, TableImage } from "../src/policy/compile/image.ts";
import type { PolicyModel } from "../src/config/index.ts";
import { packet } from "../test/helpers/packets.ts";
import { anchorXdp } from "../test/helpers/xdp-anchor.ts";
import { bigSetModel, cidr, mixedModel, mixedPolicy, random } from "./compile.ts";

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
  /** The event loop's longest stall from the start of loading to the end of apply(). */
  longestStallMs: number;
  /** The longest stall while loading (reading, checking, compiling, the hand-back). */
  loadStallMs: number;
  peakRssMiB: number;
  probePorts: number;
  judgedBeforeSwapEnd: string;
  judgedDuringSwap: string;
  misjudged: string;
}

const syn = (dport: number) =>
  packet({ src: "192.0.2.1", dst: "10.0.0.1", proto: "tcp", sport: 1000, dport, flags: "S" });

/** The new policy's image, and what getting it cost the event loop. */
interface Loaded {
  image: ClassifierImage;
  /** Reading, checking and compiling (ms). */
  loadMs: number;
}

async function swap(
  dp: Datapath,
  name: string,
  from: PolicyModel,
  to: () => Promise<Loaded> | Loaded,
): Promise<Swap> {
  const oldImage = compile(from);
  dp.apply({ packet: oldImage });
  const stalls = watchStalls();
  const { image, loadMs } = await to();
  const loadStallMs = stalls.sofar();
  const ports = CANDIDATE_PORTS.filter(
    (p) => verdict(oldImage, p) === "blocked" && verdict(image, p) === "blocked",
  );
  if (ports.length === 0) throw new Error("no port that both policies block");

  const before = dp.counters();
  const runs = Array.from({ length: RUNS }, (_, i) =>
    dp.xdp.testRunAsync({ data: syn(ports[i % ports.length]!), repeat: REPEAT }).catch(() => null),
  );
  const { ms: applyMs } = await dp.applyInTurns({ packet: image });
  const longestStallMs = stalls.stop();
  // packets judged by the time the apply returned (the flip is its last step): between 0 and
  // all of them means the runs straddled the swap
  const atSwap = dp.counters();
  await Promise.all(runs);
  const after = dp.counters();
  const delta = (k: "allowed" | "blocked" | "detected") => after[k].packets - before[k].packets;
  return {
    case: name,
    compileMs: Math.round(loadMs),
    applyMs: Math.round(applyMs),
    totalMs: Math.round(loadMs + applyMs),
    longestStallMs: Math.round(longestStallMs),
    loadStallMs: Math.round(loadStallMs),
    peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
    probePorts: ports.length,
    judgedBeforeSwapEnd: String(atSwap.blocked.packets - before.blocked.packets),
    judgedDuringSwap: String(delta("allowed") + delta("blocked") + delta("detected")),
    misjudged: String(delta("allowed") + delta("detected")),
  };
}

/** Starts watching the event loop: the longest gap between 5 ms ticks so far, and at the end. */
function watchStalls(): { sofar: () => number; stop: () => number } {
  let last = performance.now();
  let longest = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 5);
  const sofar = () => Math.max(longest, performance.now() - last);
  return {
    sofar,
    stop: () => {
      clearInterval(timer);
      return sofar();
    },
  };
}

/** compile() of a model built directly (the loader is not in the figure). */
function fromModel(build: () => PolicyModel): () => Loaded {
  return () => {
    const model = build();
    const t0 = performance.now();
    const image = compile(model);
    return { image, loadMs: performance.now() - t0 };
  };
}

/**
 * The daemon's reload of `path`: read off the loop, accepted on the worker thread, a big policy's
 * packet tables made while the rest of it is handed back (src/daemon.ts `tablesAhead`).
 */
function fromFile(path: string): () => Promise<Loaded> {
  return async () => {
    const t0 = performance.now();
    const text = await readPolicyFileTextAsync(path);
    const tablesAhead = (tables: TableImage) => dp.buildAhead(tables);
    const loaded = acceptedOrThrow(await acceptPolicyOffThread(text, path, { tablesAhead }));
    return { image: loaded.image.packet, loadMs: performance.now() - t0 };
  };
}

/** A policy file of 100k mixed rules, and one of a block rule on a set file of 1M CIDRs. */
function writeFiles(dir: string): { rules: string; set: string } {
  const rules = join(dir, "rules-100k.yaml");
  writeFileSync(rules, mixedPolicy(100_000));
  const rand = random(7);
  const lines: string[] = [];
  for (let i = 0; i < 1_000_000; i++) lines.push(cidr(rand, 16));
  writeFileSync(join(dir, "blocklist.txt"), lines.join("\n") + "\n");
  const set = join(dir, "set-1m.yaml");
  writeFileSync(
    set,
    `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
sets:
  blocklist: { file: blocklist.txt }
rules:
  - name: blocklist
    direction: any
    action: block
    layer3: { remote: [set:blocklist] }
  - name: ssh
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [22] }
`,
  );
  return { rules, set };
}

const dp = Datapath.start({
  interfaces: [],
  pinRoot: null,
  globals: { bench_keys: 1, bench_fresh: 1 },
});
const anchor = anchorXdp(dp.xdp);
const dir = mkdtempSync(join(tmpdir(), `moat-b5-${process.pid}-`));
try {
  const files = writeFiles(dir);
  const small = mixedModel(1000);
  const rows = [
    await swap(dp, "1k rules -> 100k rules from the file", small, fromFile(files.rules)),
    await swap(dp, "1k rules -> set of 1M CIDRs from the file", small, fromFile(files.set)),
  ];
  if (process.argv[2] !== "file")
    rows.push(
      await swap(
        dp,
        "100k rules -> other 100k rules",
        mixedModel(100_000),
        fromModel(() => mixedModel(99_999)),
      ),
      await swap(
        dp,
        "100k rules -> set of 1M CIDRs",
        mixedModel(100_000),
        fromModel(() => bigSetModel(1_000_000, 16)),
      ),
    );
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
  rmSync(dir, { recursive: true, force: true });
  await stopAcceptWorker();
}
