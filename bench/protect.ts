// B12 (docs/performance.md): what each protective function costs a packet, over the same program
// and policy without it, measured in the same run. BPF_PROG_TEST_RUN, the program's bench knobs
// rotating the source over 4096 addresses (bpf/include/bench.h): NEW runs make every run a new
// connection (a SYN judged by the policy, into a connection table kept full: each one evicts
// another), ESTABLISHED runs find the connection tracked.
// The baseline and the variant are loaded side by side, in two copies of the datapath (a
// connection table each), so their test runs alternate tightly (a pair of runs of 2e4 packets,
// the one run first alternating pair by pair) without a policy swap between them: a busy machine
// slows both runs of a pair alike. A round is B12_PAIRS such pairs (default 10); the two copies
// swap policies every round (each copy's own memory layout costs its NEW runs up to ~40 ns
// either way, whichever policy it runs), and a row's figure is the mean of the two
// assignments' medians of (variant - baseline) over their pairs. Run it pinned to one cpu
// (`taskset -c 1`) on a machine with other work.
// The ids rows send a SYN with 64 bytes of payload (to the baseline too): NEW is a flow's first
// packet judged for its copies (1 in `sample` flows; a SYN's payload is not copied: its stream
// starts after it), ESTABLISHED a flow past them; the ids rings are drained before each run.
// The "first data" rows measure the copy itself: each run of a pair, in the tracked copy, clears
// its connection table, sends every rotated source a SYN (unmeasured: it places the stream at
// ISN+1), drains the ids ring, then measures a run of the ACK that carries each flow's first
// data bytes (the run's packets are consecutive sources, at most bench_keys of them: each a
// flow's first data packet, copied whole into the ring under ids); the baseline gets the same
// SYNs and data packets. The ring (2 MiB) holds every record of such a run, so none is lost;
// the bench stops unless each variant run sent one record a packet and each baseline run none.
//
//   node bench/protect.ts            writes bench/results/protect.json
//   B12_ONLY=ids node bench/protect.ts   the variants whose name starts with "ids" only
//   B12_ROUNDS=N (even; default 8), B12_PAIRS=N   rounds, pairs of runs a round
import { cpus, release } from "node:os";
import { Datapath } from "../src/datapath/datapath.ts";
import { compile } from "../src/policy/compile/compile.ts";
import { parsePolicy } from "../src/config/index.ts";
import type { BpfProgram } from "../src/datapath/native.d.ts";
import { packet, type PacketSpec } from "../test/helpers/packets.ts";
import { benchDatapaths, testRunNs, type BenchDatapaths } from "./test-runs.ts";
import { writeResult } from "./results.ts";

const KEYS = 4096;
/** Packets of each measured test run. */
const REPEAT = 20_000;
/** Packets that fill a fresh connection table (65,536 entries) before any NEW run is measured. */
const FILL = 100_000;
/** NEW runs of the "every copy sent" row. */
const IDS_ROOM_REPEAT = 8192;
/** Rounds: each half with the baseline in one copy of the datapath, half in the other. */
const ROUNDS = Math.max(2, Number(process.env.B12_ROUNDS ?? 8));
const PAIRS = Math.max(1, Number(process.env.B12_PAIRS ?? 10));
const LOCAL = "10.0.0.1";

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/** The policy every variant starts from: port 80 allowed in, everything allowed out. */
const policy = (rule: string, top = "") => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
${top}
rules:
  - name: web
    direction: any
    action: allow
    layer4: { protocol: tcp, port: [80] }
${rule}
`;

interface Variant {
  name: string;
  /** The hook it is measured on. */
  hook: "xdp" | "tc";
  text: string;
  /** Payload bytes of the probe (its baseline's too). */
  payload?: number;
  /** NEW runs of this many packets (its baseline's too; default REPEAT). */
  freshRepeat?: number;
  /** A "first data" row: the measured run's packets (<= KEYS), each a flow's first data
   * packet of `payload` bytes, after the flow's SYN (no NEW or ESTABLISHED figures). */
  firstData?: number;
}

const IDS = (sample: number) => `ids:
  sample: ${sample}
  rules: ['alert tcp any any -> any 80 (msg:"probe"; content:"/admin"; sid:1;)']`;

const limit = (algorithm: string) =>
  `    rate_limit: { rate: 1000000/s, burst: 1000000, algorithm: ${algorithm} }`;
const VARIANTS: Variant[] = [
  ...["token_bucket", "fixed_window", "sliding_window", "leaky_bucket"].map((a): Variant => ({
    name: `rate_limit ${a}`,
    hook: "xdp",
    text: policy(limit(a)),
  })),
  { name: "scrub.mss", hook: "xdp", text: policy("", "scrub: { mss: 1200 }") },
  {
    name: "scrub.min_ttl + clear_df",
    hook: "xdp",
    text: policy("", "scrub: { min_ttl: 128, clear_df: true }"),
  },
  { name: "scrub.random_ip_id", hook: "tc", text: policy("", "scrub: { random_ip_id: true }") },
  { name: "ids sampling (1 in 8 flows)", hook: "xdp", text: policy("", IDS(8)), payload: 64 },
  { name: "ids (every flow)", hook: "xdp", text: policy("", IDS(1)), payload: 64 },
  // NEW runs as short as those in which every copy went into the ring (2 MiB: ~10k records of
  // 64 bytes)
  {
    name: "ids (every flow, every copy sent)",
    hook: "xdp",
    text: policy("", IDS(1)),
    payload: 64,
    freshRepeat: IDS_ROOM_REPEAT,
  },
  // the copy: records of 128 + 64 bytes (+ 8), 4096 of them in a run
  {
    name: "ids first data (64 bytes copied)",
    hook: "xdp",
    text: policy("", IDS(1)),
    payload: 64,
    firstData: KEYS,
  },
  // the default `bytes` (512) in one packet: 2048 records of 648 bytes (+ 8) in a run
  {
    name: "ids first data (512 bytes copied)",
    hook: "xdp",
    text: policy("", IDS(1)),
    payload: 512,
    firstData: KEYS / 2,
  },
];
const BASELINE = policy("");
/** B12_ONLY=ids: the variants whose name starts so (default: all). */
const ONLY = process.env.B12_ONLY;
const MEASURED = ONLY ? VARIANTS.filter((v) => v.name.startsWith(ONLY)) : VARIANTS;

/** A SYN to port 80 with an MSS option (so the clamp has work), TTL 64 and DF. */
const probe = (hook: "xdp" | "tc", payload = 0): Buffer => {
  const spec: PacketSpec = {
    ...(payload ? { payload } : {}),
    src: hook === "xdp" ? "192.0.2.1" : LOCAL,
    dst: hook === "xdp" ? LOCAL : "192.0.2.1",
    proto: "tcp",
    sport: 1000,
    dport: 80,
    flags: "S",
    tcpOptions: Buffer.from([2, 4, 0x05, 0xb4]),
    ttl: 64,
    df: true,
  };
  return packet(spec);
};

/** A flow's SYN (ISN 1000) and its first data packet (at ISN+1, acking the SYN-ACK). */
const SYN_SEQ = 1000;
const FLOW: PacketSpec = { src: "192.0.2.1", dst: LOCAL, proto: "tcp", sport: 1000, dport: 80 };
const flowSyn = (): Buffer => packet({ ...FLOW, flags: "S", seq: SYN_SEQ });
const firstData = (payload: number): Buffer =>
  packet({ ...FLOW, flags: "PA", seq: SYN_SEQ + 1, ack: 5001, payload });

const program = (dp: Datapath, hook: "xdp" | "tc"): BpfProgram => (hook === "xdp" ? dp.xdp : dp.tc);

/** ns per packet of one test run of `repeat` packets. */
const run = (dp: Datapath, hook: "xdp" | "tc", data: Buffer, repeat = REPEAT): number =>
  testRunNs(program(dp, hook), data, repeat);

// two copies of the datapath: the baseline in one, the variant in the other
const sides: BenchDatapaths[] = [benchDatapaths(KEYS), benchDatapaths(KEYS)];
// the ids copies, read away before each run so a full ring does not change what is measured
let idsRecords = 0;
const idsRings = sides.flatMap((s) => [
  s.fresh.subscribeIds(() => idsRecords++),
  s.tracked.subscribeIds(() => idsRecords++),
]);
const drain = () => {
  for (const r of idsRings) r.drain();
};

/** the copies whose NEW connection table is full */
const filled = new Set<BenchDatapaths>();

/** `image` in both datapaths of `side`; its tracked connections of every rotated source made,
 * past their first bytes (and packets); its NEW table full before its first measured run. */
function load(
  side: BenchDatapaths,
  image: ReturnType<typeof compile>,
  hook: "xdp" | "tc",
  data: Buffer,
): void {
  side.fresh.apply({ packet: image });
  side.tracked.apply({ packet: image });
  side.tracked.clearConntrack();
  for (let i = 0; i < 40; i++) {
    run(side.tracked, hook, data, KEYS);
    drain();
  }
  if (!filled.has(side)) run(side.fresh, hook, data, FILL);
  filled.add(side);
  drain();
}

/** ns per packet of a NEW run and an ESTABLISHED run of `side`, the ring drained before each. */
function measure(side: BenchDatapaths, hook: "xdp" | "tc", data: Buffer, freshRepeat: number) {
  drain();
  const f = run(side.fresh, hook, data, freshRepeat);
  drain();
  return { fresh: f, established: run(side.tracked, hook, data), first: 0, copies: 0 };
}

/** ns per packet of a run of `repeat` flows' first data packets in `side`'s tracked copy: its
 * table cleared, every rotated source's SYN sent (unmeasured), the ring drained before each;
 * and the records the run sent to the ids ring. */
function measureFirstData(side: BenchDatapaths, syn: Buffer, data: Buffer, repeat: number) {
  side.tracked.clearConntrack();
  run(side.tracked, "xdp", syn, KEYS);
  drain();
  const before = idsRecords;
  const first = run(side.tracked, "xdp", data, repeat);
  drain();
  return { fresh: 0, established: 0, first, copies: idsRecords - before };
}

interface Deltas {
  fresh: number[];
  established: number[];
  first: number[];
}

try {
  const baseImage = compile(parsePolicy(BASELINE, "bench.yaml"));
  const results = new Map<string, { fresh: number; established: number; first: number }>();
  const noDeltas = (): Deltas => ({ fresh: [], established: [], first: [] });
  const baselines: Record<string, Deltas> = { xdp: noDeltas(), tc: noDeltas() };
  for (const v of MEASURED) {
    console.error(v.name);
    const image = compile(parsePolicy(v.text, "bench.yaml"));
    const data = v.firstData ? flowSyn() : probe(v.hook, v.payload);
    const dataFirst = firstData(v.payload ?? 0);
    const freshRepeat = v.freshRepeat ?? REPEAT;
    const measureOf = (side: BenchDatapaths) =>
      v.firstData
        ? measureFirstData(side, data, dataFirst, v.firstData)
        : measure(side, v.hook, data, freshRepeat);
    // by the copy the baseline runs in
    const deltas: Deltas[] = [0, 1].map(noDeltas);
    for (let round = 0; round < ROUNDS; round++) {
      const b = round % 2;
      const baseSide = sides[b] as BenchDatapaths;
      const variantSide = sides[1 - b] as BenchDatapaths;
      load(baseSide, baseImage, v.hook, data);
      load(variantSide, image, v.hook, data);
      const d = deltas[b] as Deltas;
      for (let pair = 0; pair < PAIRS; pair++) {
        const baseFirst = pair % 2 === 0;
        const first = measureOf(baseFirst ? baseSide : variantSide);
        const second = measureOf(baseFirst ? variantSide : baseSide);
        const base = baseFirst ? first : second;
        const with_ = baseFirst ? second : first;
        // every measured packet copied under ids, none without
        if (v.firstData && (with_.copies !== v.firstData || base.copies !== 0))
          throw new Error(
            `${v.name}: ${with_.copies} and ${base.copies} records, not ${v.firstData}`,
          );
        d.fresh.push(with_.fresh - base.fresh);
        d.established.push(with_.established - base.established);
        d.first.push(with_.first - base.first);
        const floors = baselines[v.hook] as Deltas;
        if (v.firstData) floors.first.push(base.first);
        else {
          floors.fresh.push(base.fresh);
          floors.established.push(base.established);
        }
      }
    }
    const [d0, d1] = deltas as [Deltas, Deltas];
    const mean = (k: keyof Deltas) => (median(d0[k]) + median(d1[k])) / 2;
    results.set(v.name, {
      fresh: mean("fresh"),
      established: mean("established"),
      first: mean("first"),
    });
  }
  const tenth = (x: number) => Math.round(x * 10) / 10;
  const rows = MEASURED.map((v) => {
    const r = results.get(v.name) ?? { fresh: 0, established: 0, first: 0 };
    return {
      function: v.name,
      hook: v.hook === "xdp" ? "XDP ingress" : "TC egress",
      "NEW + ns": v.firstData ? null : tenth(r.fresh),
      "ESTABLISHED + ns": v.firstData ? null : tenth(r.established),
      "first data + ns": v.firstData ? tenth(r.first) : null,
    };
  });
  const floorOf = (xs: number[] | undefined) => (xs?.length ? Math.round(median(xs)) : null);
  const floor = (h: string) => ({
    "NEW ns": floorOf(baselines[h]?.fresh),
    "ESTABLISHED ns": floorOf(baselines[h]?.established),
    "first data ns": floorOf(baselines[h]?.first),
  });
  console.table([
    { function: "baseline (no function)", hook: "XDP ingress", ...floor("xdp") },
    { function: "baseline (no function)", hook: "TC egress", ...floor("tc") },
  ]);
  console.table(rows);
  const worst = Math.max(
    ...rows.flatMap((r) =>
      [r["NEW + ns"], r["ESTABLISHED + ns"], r["first data + ns"]].filter((x) => x !== null),
    ),
  );
  console.log(`B12: the costliest function adds ${worst} ns a packet (bar <= 30 ns each)`);
  writeResult("protect", {
    method: `BPF_PROG_TEST_RUN, bench_keys ${KEYS} rotating sources; baseline and variant in two copies of the datapath, runs of ${REPEAT} packets (first data rows: ${KEYS} flows' SYNs, then a measured run of their first data packets) alternated in pairs, ${PAIRS} pairs a round, ${ROUNDS} rounds with the copies swapping policies; the mean of the two assignments' medians of the differences`,
    kernel: release(),
    cpus: cpus().length,
    baselines: { xdp: floor("xdp"), tc: floor("tc") },
    rows,
  });
} finally {
  for (const side of sides) side.stop();
}
