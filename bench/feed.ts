// B12's feed lookup (docs/performance.md): what a feed of 1M CIDRs costs a packet, over the same
// policy without it, measured in the same run. The feed is a URL feed's content as the daemon
// keeps it (a set of 1M random CIDRs /24-/32, read from the set store through the policy
// loader) used by a rule ahead of the policy's rules, so every new connection is looked up in
// it. The rule allows what the next rule allows (port 80): a probe in the feed and one not in it
// get the same verdict and the same event, so the difference is the lookup, not the reporting.
// A third image, the same rule on a feed of one entry, tells the rule's cost from the feed's
// size. BPF_PROG_TEST_RUN of the XDP program, repeat = 1e5, the bench knobs rotating the source
// over 4096 addresses spread over the whole v4 space (some in the feed, most not); NEW runs make
// every run a new connection. Each round measures the three back to back; medians.
//
//   node bench/feed.ts            writes bench/results/feed.json
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Datapath } from "../src/datapath/datapath.ts";
import { compile } from "../src/policy/compile/compile.ts";
import { parsePolicyWith } from "../src/config/index.ts";
import { nodeHost } from "../src/host/policy-files.ts";
import { packet } from "../test/helpers/packets.ts";
import { anchorXdp } from "../test/helpers/xdp-anchor.ts";
import { median, writeResult } from "./results.ts";

const KEYS = 4096;
const REPEAT = 100_000;
const ROUNDS = Number(process.env.B12_ROUNDS ?? 7);
const ENTRIES = Number(process.env.FEED_ENTRIES ?? 1_000_000);

const policy = (feed: boolean) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
sets:
  ioc: { url: "http://127.0.0.1/feed.txt", category: bench }
rules:
${feed ? "  - { name: ioc, direction: ingress, action: allow, layer3: { remote: [set:ioc] }, layer4: { protocol: tcp, port: [80] } }\n" : ""}  - name: web
    direction: any
    action: allow
    layer4: { protocol: tcp, port: [80] }
`;

/** 1M random CIDRs /24-/32 (a deterministic generator: the same feed every run). */
function feedText(n: number): string {
  let x = 0x2545f491;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const len = 24 + (next() % 9);
    const a = (next() >>> (32 - len)) << (32 - len);
    const ip = [a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255].join(".");
    lines.push(`${ip}/${len}`);
  }
  return lines.join("\n") + "\n";
}

const dir = mkdtempSync(join(tmpdir(), "moat-feed-bench-"));
mkdirSync(join(dir, "sets"));
writeFileSync(join(dir, "sets", "ioc.feed"), feedText(ENTRIES));
const host = { ...nodeHost, setStore: join(dir, "sets") };
const started = Date.now();
const withFeed = parsePolicyWith(policy(true), join(dir, "bench.yaml"), host);
const feedImage = compile(withFeed);
const compileMs = Date.now() - started;
const baseImage = compile(parsePolicyWith(policy(false), join(dir, "bench.yaml"), host));
// the same rule on a feed of one entry: only the feed's size differs from feedImage
writeFileSync(join(dir, "sets", "ioc.feed"), "192.0.2.0/24\n");
const smallImage = compile(parsePolicyWith(policy(true), join(dir, "bench.yaml"), host));
console.error(
  `feed of ${withFeed.sets.get("ioc")?.entries.length} entries compiled in ${compileMs} ms`,
);

const dp = Datapath.start({
  interfaces: [],
  pinRoot: null,
  globals: { bench_keys: KEYS, bench_fresh: 1 },
});
const anchor = anchorXdp(dp.xdp);
const syn = packet({
  src: "192.0.2.1",
  dst: "10.0.0.1",
  proto: "tcp",
  sport: 1000,
  dport: 80,
  flags: "S",
});

function run(): number {
  for (let tries = 0; ; tries++) {
    try {
      return dp.xdp.testRun({ data: syn, repeat: REPEAT }).duration;
    } catch (err) {
      if ((err as { code?: string }).code !== "EINTR" || tries >= 10) throw err;
    }
  }
}

try {
  const base: number[] = [];
  const small: number[] = [];
  const feed: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    console.error(`round ${round + 1} of ${ROUNDS}`);
    dp.apply({ packet: baseImage });
    base.push(run());
    dp.apply({ packet: smallImage });
    small.push(run());
    dp.apply({ packet: feedImage });
    feed.push(run());
    console.error(`  ${base.at(-1)} / ${small.at(-1)} / ${feed.at(-1)} ns`);
  }
  const deltas = feed.map((f, i) => f - (base[i] ?? 0));
  const sizeDeltas = feed.map((f, i) => f - (small[i] ?? 0));
  const row = {
    entries: ENTRIES,
    "baseline NEW ns": Math.round(median(base)),
    "1-entry feed NEW ns": Math.round(median(small)),
    "with feed NEW ns": Math.round(median(feed)),
    "feed lookup + ns": Math.round(median(deltas) * 10) / 10,
    "over a 1-entry feed + ns": Math.round(median(sizeDeltas) * 10) / 10,
  };
  console.table([row]);
  console.log(
    `B12: a ${ENTRIES}-entry feed adds ${row["feed lookup + ns"]} ns a new connection (bar <= 60 ns)`,
  );
  writeResult("feed", {
    method: `BPF_PROG_TEST_RUN XDP repeat ${REPEAT}, bench_keys ${KEYS} rotating sources, NEW connections, ${ROUNDS} rounds, the policy with and without a rule on a ${ENTRIES}-CIDR feed (/24-/32, allowing what the next rule allows), back to back; medians`,
    compileMs,
    ...row,
    rounds: { base, small, feed },
  });
} finally {
  anchor.release();
  dp.stop();
  rmSync(dir, { recursive: true, force: true });
}
