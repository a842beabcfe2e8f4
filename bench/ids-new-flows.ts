// B12's IDS rows for new flows only (docs/performance.md): what a new flow's first packet costs
// with every flow's first bytes copied and with 1 flow in 8, over the same policy without ids.
// One datapath (bpf/include/bench.h: every packet a new connection from 4096 rotating sources),
// the three policies applied in turn before each run, runs short enough (8,192 packets, ~1.6 MiB
// of records) that every copy goes into the 2 MiB ring, drained before each run. An iteration
// runs baseline, every flow, 1 in 8, baseline; the figures are medians over the iterations of
// each run minus the mean of its iteration's two baselines. Fewer, longer processes than
// bench/protect.ts, so a busy machine's noise is spread over more pairs.
//
//   node bench/ids-new-flows.ts                 41 iterations
//   B12_PAIRS=61 node bench/ids-new-flows.ts
import { compile } from "../src/policy/compile/compile.ts";
import { parsePolicy } from "../src/config/index.ts";
import { Datapath } from "../src/datapath/datapath.ts";
import { packet } from "../test/helpers/packets.ts";
import { anchorXdp } from "../test/helpers/xdp-anchor.ts";
import { testRunNs } from "./test-runs.ts";

const KEYS = 4096;
const REPEAT = 8192;
const PAIRS = Number(process.env.B12_PAIRS ?? 41);

const policy = (top: string) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
${top}
rules:
  - name: web
    direction: any
    action: allow
    layer4: { protocol: tcp, port: [80] }
`;
const ids = (sample: number) => `ids:
  sample: ${sample}
  rules: ['alert tcp any any -> any 80 (msg:"probe"; content:"/admin"; sid:1;)']`;

const images = {
  baseline: compile(parsePolicy(policy(""), "bench.yaml")),
  every: compile(parsePolicy(policy(ids(1)), "bench.yaml")),
  sampled: compile(parsePolicy(policy(ids(8)), "bench.yaml")),
};
type Case = keyof typeof images;

// the SYN of bench/protect.ts's ids rows: 64 bytes of payload
const data = packet({
  payload: 64,
  src: "192.0.2.1",
  dst: "10.0.0.1",
  proto: "tcp",
  sport: 1000,
  dport: 80,
  flags: "S",
  tcpOptions: Buffer.from([2, 4, 0x05, 0xb4]),
  ttl: 64,
  df: true,
});

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const tenth = (x: number) => Math.round(x * 10) / 10;

const dp = Datapath.start({
  interfaces: [],
  pinRoot: null,
  globals: { bench_keys: KEYS, bench_fresh: 1 },
});
const anchor = anchorXdp(dp.xdp);
const ring = dp.subscribeIds(() => {});

/** ns per packet of one NEW run under `c`'s policy, the ring empty before it. */
const run = (c: Case): number => {
  dp.apply({ packet: images[c] });
  ring.drain();
  return testRunNs(dp.xdp, data, REPEAT);
};

try {
  const floor: number[] = [];
  const every: number[] = [];
  const sampled: number[] = [];
  for (let i = 0; i < PAIRS; i++) {
    const a = run("baseline");
    const e = run("every");
    const s = run("sampled");
    const base = (a + run("baseline")) / 2;
    floor.push(base);
    every.push(e - base);
    sampled.push(s - base);
  }
  console.log(
    JSON.stringify({
      pairs: PAIRS,
      "baseline NEW ns": Math.round(median(floor)),
      "ids every flow, every copy sent: NEW + ns": tenth(median(every)),
      "ids sampling 1 in 8: NEW + ns": tenth(median(sampled)),
    }),
  );
} finally {
  anchor.release();
  dp.stop();
}
