// B3 (docs/performance.md): real traffic against an ingress block list of 1k..1M
// CIDRs, moat vs nftables (netdev ingress, interval set) vs iptables + ipset (hash:net), in
// the same run. A lab of two namespaces joined by a veth pair; trafgen (netsniff-ng) in one
// sends 64-byte UDP frames from 4096 sources, each inside a random entry of the list, to the
// other, where one filter at a time drops them. Sender and filter share the machine's cores,
// so the figure is the drop rate of the whole path: packets the filter dropped per second of
// the trafgen run. Correctness first: every frame sent must be dropped by the filter.
//
//   node bench/traffic.ts [sizes...]     writes bench/results/traffic.json
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, release } from "node:os";
import { join } from "node:path";
import { createLab, sh } from "../test/helpers/netns.ts";

const SOURCES = 4096;
const FRAMES = 4_000_000;
const ROUNDS = 3;
const sizes = process.argv.slice(2).map(Number);
const SIZES = sizes.length > 0 ? sizes : [1000, 10_000, 100_000, 1_000_000];

function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const dotted = (a: number) => [a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255].join(".");

/**
 * `count` disjoint random CIDRs (nftables refuses overlapping intervals): /16../32, or /24../32
 * from 100k entries on, where /16s would cover too much of the space to leave room for them.
 */
function blockList(count: number): { cidrs: string[]; starts: number[]; sizes: number[] } {
  const rand = random(count);
  const shortest = count >= 100_000 ? 24 : 16;
  const picked = new Map<number, number>();
  while (picked.size < count * 1.2) {
    const len = shortest + Math.floor(rand() * (33 - shortest));
    const size = 2 ** (32 - len);
    const start = Math.floor((rand() * 2 ** 32) / size) * size;
    picked.set(start, Math.max(size, picked.get(start) ?? 0));
  }
  const sorted = [...picked].sort((a, b) => a[0] - b[0]);
  const starts: number[] = [];
  const lens: number[] = [];
  let end = -1;
  for (const [start, size] of sorted) {
    if (start <= end) continue;
    starts.push(start);
    lens.push(size);
    end = start + size - 1;
    if (starts.length === count) break;
  }
  const cidrs = starts.map((s, i) => `${dotted(s)}/${32 - Math.log2(lens[i]!)}`);
  return { cidrs, starts, sizes: lens };
}

function trafgenConfig(list: ReturnType<typeof blockList>, dst: string, dmac: string): string {
  const rand = random(7);
  const blocks: string[] = [];
  for (let i = 0; i < SOURCES; i++) {
    const k = Math.floor(rand() * list.starts.length);
    const src = list.starts[k]! + Math.floor(rand() * list.sizes[k]!);
    blocks.push(
      `{ eth(da=${dmac}, type=0x0800), ipv4(saddr=${dotted(src)}, daddr=${dst}, proto=17), udp(sport=40000, dport=9), fill(0x61, 18) }`,
    );
  }
  return blocks.join("\n") + "\n";
}

interface Filter {
  name: string;
  setUp(listFile: string, list: string[]): Promise<void>;
  /** Frames dropped so far. */
  dropped(): Promise<bigint>;
  tearDown(): Promise<void>;
}

const lab = createLab("bench-traffic");
const dir = mkdtempSync(join(tmpdir(), "moat-traffic-"));
const inB = (cmd: string, args: string[], input?: string) =>
  execFileSync("ip", ["netns", "exec", lab.b, cmd, ...args], {
    encoding: "utf8",
    input,
    maxBuffer: 1 << 30,
  });

function nftables(): Filter {
  return {
    name: "nftables netdev interval set",
    async setUp(_, list) {
      const script = [
        "table netdev moatbench {",
        "  set bl { type ipv4_addr; flags interval; }",
        // a named counter: listing it does not fetch the million-element set (listing the chain does)
        "  counter drops { }",
        `  chain ingress { type filter hook ingress device ${lab.ifB} priority -500; ip saddr @bl counter name drops drop; }`,
        "}",
      ];
      for (let i = 0; i < list.length; i += 10_000) {
        script.push(`add element netdev moatbench bl { ${list.slice(i, i + 10_000).join(", ")} }`);
      }
      writeFileSync(join(dir, "nft.conf"), script.join("\n") + "\n");
      inB("nft", ["-f", join(dir, "nft.conf")]);
    },
    async dropped() {
      const out = inB("nft", ["list", "counter", "netdev", "moatbench", "drops"]);
      return BigInt(/packets (\d+)/.exec(out)?.[1] ?? "0");
    },
    async tearDown() {
      spawnSync("ip", ["netns", "exec", lab.b, "nft", "delete", "table", "netdev", "moatbench"]);
    },
  };
}

function ipset(): Filter {
  return {
    name: "iptables + ipset hash:net",
    async setUp(_, list) {
      const lines = [
        `create moatbl hash:net family inet hashsize 65536 maxelem ${2 * list.length + 1024}`,
      ];
      for (const c of list) lines.push(`add moatbl ${c}`);
      inB("ipset", ["restore"], lines.join("\n") + "\n");
      inB("iptables", [
        "-t",
        "raw",
        "-A",
        "PREROUTING",
        "-i",
        lab.ifB,
        "-m",
        "set",
        "--match-set",
        "moatbl",
        "src",
        "-j",
        "DROP",
      ]);
    },
    async dropped() {
      const out = inB("iptables", ["-t", "raw", "-L", "PREROUTING", "-v", "-x", "-n"]);
      const row = out.split("\n").find((l) => l.includes("moatbl"));
      return BigInt(row?.trim().split(/\s+/)[0] ?? "0");
    },
    async tearDown() {
      spawnSync("ip", ["netns", "exec", lab.b, "iptables", "-t", "raw", "-F", "PREROUTING"]);
      spawnSync("ip", ["netns", "exec", lab.b, "ipset", "destroy", "moatbl"]);
    },
  };
}

function moat(): Filter {
  let child: ReturnType<typeof spawn> | null = null;
  let text = "";
  const line = async (want: (l: string) => boolean): Promise<string> => {
    for (let i = 0; i < 1200; i++) {
      const found = text.split("\n").find(want);
      if (found) return found;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`moat said: ${text}`);
  };
  return {
    name: "moat XDP (generic, veth)",
    async setUp(listFile) {
      text = "";
      child = spawn(
        "nsenter",
        [
          `--net=/run/netns/${lab.b}`,
          process.execPath,
          "--disable-warning=ExperimentalWarning",
          "bench/traffic-moat.ts",
          lab.ifB,
          listFile,
        ],
        { stdio: ["pipe", "pipe", "inherit"] },
      );
      child.stdout!.on("data", (d: Buffer) => (text += d.toString()));
      await line((l) => l === "ready");
    },
    async dropped() {
      text = "";
      child!.stdin!.write("count\n");
      const json = await line((l) => l.startsWith("{"));
      return BigInt((JSON.parse(json) as { dropped: string }).dropped);
    },
    async tearDown() {
      // the next filter is measured only once moat's XDP program is detached
      const c = child;
      if (!c || c.exitCode !== null) return;
      const exited = new Promise((r) => c.once("exit", r));
      c.stdin?.end();
      await exited;
    },
  };
}

/** One trafgen run of FRAMES frames: frames the filter dropped per second of the run. */
async function measure(filter: Filter, conf: string): Promise<{ pps: number; dropped: bigint }> {
  const before = await filter.dropped();
  const t = performance.now();
  const run = spawnSync(
    "ip",
    [
      "netns",
      "exec",
      lab.a,
      "trafgen",
      "--dev",
      lab.ifA,
      "--conf",
      conf,
      "--num",
      String(FRAMES),
      "--cpus",
      "1",
    ],
    { encoding: "utf8", timeout: 300_000 },
  );
  const seconds = (performance.now() - t) / 1000;
  if (run.status !== 0) throw new Error(`trafgen failed: ${run.stderr}`);
  const dropped = (await filter.dropped()) - before;
  return { pps: Number(dropped) / seconds, dropped };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

async function main(): Promise<void> {
  const dmac = sh("ip", ["-n", lab.b, "-j", "link", "show", lab.ifB]);
  const mac = (JSON.parse(dmac) as { address: string }[])[0]?.address ?? "";
  const rows: Record<string, string | number>[] = [];
  const raw: Record<string, unknown> = {};
  for (const n of SIZES) {
    const list = blockList(n);
    const listFile = join(dir, `list-${n}.txt`);
    writeFileSync(listFile, list.cidrs.join("\n") + "\n");
    const conf = join(dir, `gen-${n}.cfg`);
    writeFileSync(conf, trafgenConfig(list, lab.v4.b, mac));
    const row: Record<string, string | number> = { entries: list.cidrs.length };
    for (const filter of [moat(), nftables(), ipset()]) {
      console.error(`${n} entries: ${filter.name}`);
      const t = performance.now();
      await filter.setUp(listFile, list.cidrs);
      const loadMs = performance.now() - t;
      try {
        const runs = [];
        for (let r = 0; r < ROUNDS; r++) runs.push(await measure(filter, conf));
        const short = runs.find((r) => r.dropped < (BigInt(FRAMES) * 9n) / 10n);
        if (short)
          console.error(
            `  ${filter.name}: only ${short.dropped} of ${FRAMES} frames dropped by the filter (the rest were lost before it)`,
          );
        raw[`${n} ${filter.name}`] = {
          loadMs,
          runs: runs.map((r) => ({ pps: r.pps, dropped: String(r.dropped) })),
        };
        row[filter.name] = Math.round(median(runs.map((r) => r.pps)));
      } finally {
        await filter.tearDown();
      }
    }
    const m = Number(row["moat XDP (generic, veth)"]);
    row["moat / nft"] = (m / Number(row["nftables netdev interval set"])).toFixed(2);
    row["moat / ipset"] = (m / Number(row["iptables + ipset hash:net"])).toFixed(2);
    rows.push(row);
  }
  console.table(rows);
  const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
  mkdirSync("bench/results", { recursive: true });
  writeFileSync(
    "bench/results/traffic.json",
    JSON.stringify(
      {
        bench: "B3 traffic",
        commit,
        kernel: release(),
        frames: FRAMES,
        sources: SOURCES,
        rows,
        raw,
      },
      null,
      2,
    ),
  );
}

const cleanup = () => {
  lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
};
// an interrupted run leaves no namespaces behind (the moat child exits with its stdin)
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    cleanup();
    process.exit(130);
  });
}
try {
  await main();
} finally {
  cleanup();
}
