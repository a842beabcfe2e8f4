// B12 (docs/performance.md): what each protective function costs a packet, over the same program
// and policy without it, measured in the same run. BPF_PROG_TEST_RUN with repeat = 1e5, the
// program's bench knobs rotating the source over 4096 addresses (bpf/include/bench.h): NEW runs
// make every run a new connection (a SYN judged by the policy), ESTABLISHED runs find the
// connection tracked. A round measures the baseline and every variant back to back, so a busy
// machine slows them alike; the figures are medians over the rounds of (variant - baseline).
// The ids rows send a SYN with 64 bytes of payload (to the baseline too): NEW is a flow's first
// bytes copied (1 in `sample` flows), ESTABLISHED a flow past them; the ids ring is drained
// before each run, and fills after ~10k copies of a NEW run (a copy that finds it full costs a
// check of its room); the "every copy sent" row's NEW runs are short enough that none does.
//
//   node bench/protect.ts            writes bench/results/protect.json
//   B12_ONLY=ids node bench/protect.ts   the variants whose name starts with "ids" only
import { cpus, release } from "node:os";
import { Datapath } from "../src/datapath/datapath.ts";
import { compile } from "../src/policy/compile/compile.ts";
import { parsePolicy } from "../src/config/index.ts";
import type { BpfProgram } from "../src/datapath/native.d.ts";
import { packet, type PacketSpec } from "../test/helpers/packets.ts";
import { benchDatapaths, testRunNs } from "./test-runs.ts";
import { writeResult } from "./results.ts";

const KEYS = 4096;
const REPEAT = 100_000;
/** NEW runs of the ids row whose copies all fit in the ring. */
const IDS_ROOM_REPEAT = 8192;
const ROUNDS = Number(process.env.B12_ROUNDS ?? 7);
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
  // a run short enough that every copy goes into the ring (2 MiB: ~10k records of 64 bytes);
  // in the rows above most NEW packets find it full, as in a flood the daemon does not keep up with
  {
    name: "ids (every flow, every copy sent)",
    hook: "xdp",
    text: policy("", IDS(1)),
    payload: 64,
    freshRepeat: IDS_ROOM_REPEAT,
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

const program = (dp: Datapath, hook: "xdp" | "tc"): BpfProgram => (hook === "xdp" ? dp.xdp : dp.tc);

/** ns per packet of one repeat = 1e5 test run. */
const run = (dp: Datapath, hook: "xdp" | "tc", data: Buffer, repeat = REPEAT): number =>
  testRunNs(program(dp, hook), data, repeat);

const bench = benchDatapaths(KEYS);
const { fresh, tracked } = bench;
// the ids copies, read away before each run so a full ring does not change what is measured
const idsRings = [fresh.subscribeIds(() => {}), tracked.subscribeIds(() => {})];
const drain = () => {
  for (const r of idsRings) r.drain();
};

/** One measurement of `text` on `hook`: NEW and ESTABLISHED ns per packet. */
function measure(
  text: string,
  hook: "xdp" | "tc",
  payload = 0,
  freshRepeat = REPEAT,
): { fresh: number; established: number } {
  const image = compile(parsePolicy(text, "bench.yaml"));
  fresh.apply({ packet: image });
  tracked.apply({ packet: image });
  tracked.clearConntrack();
  const data = probe(hook, payload);
  // the connections of every rotated source exist, past their first bytes (and packets)
  for (let i = 0; i < 40; i++) {
    run(tracked, hook, data, KEYS);
    drain();
  }
  drain();
  const f = run(fresh, hook, data, freshRepeat);
  drain();
  return { fresh: f, established: run(tracked, hook, data) };
}

try {
  const deltas = new Map<string, { fresh: number[]; established: number[] }>();
  const baselines: Record<string, { fresh: number[]; established: number[] }> = {
    xdp: { fresh: [], established: [] },
    tc: { fresh: [], established: [] },
  };
  for (let round = 0; round < ROUNDS; round++) {
    console.error(`round ${round + 1} of ${ROUNDS}`);
    for (const v of MEASURED) {
      const base = measure(BASELINE, v.hook, v.payload, v.freshRepeat);
      const with_ = measure(v.text, v.hook, v.payload, v.freshRepeat);
      const d = deltas.get(v.name) ?? { fresh: [], established: [] };
      d.fresh.push(with_.fresh - base.fresh);
      d.established.push(with_.established - base.established);
      deltas.set(v.name, d);
      baselines[v.hook]?.fresh.push(base.fresh);
      baselines[v.hook]?.established.push(base.established);
    }
  }
  const rows = MEASURED.map((v) => {
    const d = deltas.get(v.name) ?? { fresh: [], established: [] };
    return {
      function: v.name,
      hook: v.hook === "xdp" ? "XDP ingress" : "TC egress",
      "NEW + ns": Math.round(median(d.fresh) * 10) / 10,
      "ESTABLISHED + ns": Math.round(median(d.established) * 10) / 10,
    };
  });
  const floor = (h: string) => ({
    "NEW ns": Math.round(median(baselines[h]?.fresh ?? [])),
    "ESTABLISHED ns": Math.round(median(baselines[h]?.established ?? [])),
  });
  console.table([
    { function: "baseline (no function)", hook: "XDP ingress", ...floor("xdp") },
    { function: "baseline (no function)", hook: "TC egress", ...floor("tc") },
  ]);
  console.table(rows);
  const worst = Math.max(...rows.map((r) => Math.max(r["NEW + ns"], r["ESTABLISHED + ns"])));
  console.log(`B12: the costliest function adds ${worst} ns a packet (bar <= 30 ns each)`);
  writeResult("protect", {
    method: `BPF_PROG_TEST_RUN repeat ${REPEAT}, bench_keys ${KEYS} rotating sources, ${ROUNDS} rounds, each variant against the same policy without it, back to back; medians of the differences`,
    kernel: release(),
    cpus: cpus().length,
    baselines: { xdp: floor("xdp"), tc: floor("tc") },
    rows,
  });
} finally {
  bench.stop();
}
