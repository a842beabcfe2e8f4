// What the flow path's periodic walk of the connection table costs the daemon's event loop
// (docs/performance.md, "Flow records"): a table of N tracked connections (one XDP test run with
// the bench knobs rotating the source over N addresses), then the flow path's flush timed: the
// first (every connection new: N records, N distinct peers, so the 10,000-summary cap and its
// overflow), and a second one (nothing changed: the walk alone): wall time, and the longest the
// event loop was held (the walk yields between pages). Median of 5 of each.
//
//   node bench/flow-scan.ts [N]      prints one JSON line
import { Datapath } from "../src/datapath/datapath.ts";
import { compile } from "../src/policy/compile/compile.ts";
import { parsePolicy } from "../src/config/index.ts";
import { startFlowPath } from "../src/daemon/flow-path.ts";
import { packet } from "../test/helpers/packets.ts";
import { anchorXdp } from "../test/helpers/xdp-anchor.ts";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { median } from "./results.ts";

const N = Number(process.argv[2] ?? 65_536);
const ROUNDS = 5;

const dp = Datapath.start({
  interfaces: [],
  pinRoot: null,
  conntrackEntries: 2 * N,
  globals: { bench_keys: N },
});
const anchor = anchorXdp(dp.xdp);
try {
  const image = compile(
    parsePolicy(
      `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - { name: web, direction: ingress, action: allow, layer4: { protocol: tcp, port: [443] } }
`,
      "bench.yaml",
    ),
  );
  dp.apply({ packet: image });
  const syn = packet({ src: "192.0.2.1", dst: "10.0.0.1", proto: "tcp", sport: 1000, dport: 443 });
  const first: number[] = [];
  const again: number[] = [];
  // the longest the event loop waited during each (ms)
  const firstBlock: number[] = [];
  const againBlock: number[] = [];
  let summaries = 0;
  for (let r = 0; r < ROUNDS; r++) {
    dp.clearConntrack();
    dp.xdp.testRun({ data: syn, repeat: N });
    const flows = startFlowPath({
      conntrack: () => dp.conntrackCounts(),
      rule: (i, g) => dp.contents.rule(i, g)?.name,
      interfaceName: () => null,
      process: (o) => ({
        pid: o.pid,
        name: o.comm,
        path: "",
        user: o.uid,
        cgroup: "",
        container: null,
      }),
      store: (s) => {
        summaries = s.length;
        return Promise.resolve();
      },
      intervalMs: 3_600_000,
      log: () => {},
    });
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    let t = performance.now();
    await flows.flush();
    first.push(performance.now() - t);
    firstBlock.push(delay.max / 1e6);
    delay.reset();
    t = performance.now();
    await flows.flush();
    again.push(performance.now() - t);
    againBlock.push(delay.max / 1e6);
    delay.disable();
    await flows.close();
  }
  console.log(
    JSON.stringify({
      entries: N,
      firstFlushMs: Math.round(median(first)),
      firstRounds: first.map(Math.round),
      unchangedFlushMs: Math.round(median(again)),
      unchangedRounds: again.map(Math.round),
      firstLongestBlockMs: Math.round(median(firstBlock)),
      unchangedLongestBlockMs: Math.round(median(againBlock)),
      summariesFirst: summaries,
    }),
  );
} finally {
  anchor.release();
  dp.stop();
}
