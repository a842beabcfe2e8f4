// B3 (docs/performance.md): real traffic against an ingress block list of 1k..1M
// CIDRs, moat vs nftables (netdev ingress, interval set) vs iptables + ipset (hash:net), in
// the same run. A lab of two namespaces joined by a veth pair; a generator in one sends 64-byte
// UDP frames from 4096 sources, each inside a random entry of the list, to the other, where one
// filter at a time drops them. Two modes, side by side:
// - generic: trafgen (netsniff-ng) sends skbs; moat's XDP runs in generic (skb) mode;
// - native: an XDP program sends with BPF_PROG_TEST_RUN live frames (bench/traffic-gen.ts), which
//   a veth hands to its peer's NAPI: moat's XDP runs in native mode there, before any skb
//   exists; for nftables and ipset the receiving veth has GRO on (without XDP or GRO a veth
//   refuses XDP-sent frames).
// Sender and filter share the machine's 2 cores, so the figure is the drop rate of the whole
// path: frames the filter dropped per second of the generator's run; beside it the CPU the
// receive path used per dropped frame (softirq time of all CPUs, from /proc/stat's ticks).
// Generic runs check that every frame sent was dropped by the filter; native ones report how
// many the veth's ring lost before the filter.
//
//   node bench/traffic.ts [--mode=generic|native] [sizes...]     writes bench/results/traffic.json
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, release } from "node:os";
import { join } from "node:path";
import { createLab, sh } from "../test/helpers/netns.ts";

const SOURCES = 4096;
const FRAMES = 4_000_000;
const ROUNDS = 3;
const args = process.argv.slice(2);
const modeArg = args.find((a) => a.startsWith("--mode="))?.slice(7);
const MODES: Mode[] = modeArg ? [modeArg as Mode] : ["generic", "native"];
const sizes = args.filter((a) => !a.startsWith("--")).map(Number);
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

/** The generators' SOURCES source addresses, each inside a random entry of the list. */
function sourcesOf(list: ReturnType<typeof blockList>): string[] {
  const rand = random(7);
  return Array.from({ length: SOURCES }, () => {
    const k = Math.floor(rand() * list.starts.length);
    return dotted(list.starts[k]! + Math.floor(rand() * list.sizes[k]!));
  });
}

function trafgenConfig(sources: string[], dst: string, dmac: string): string {
  const blocks = sources.map(
    (src) =>
      `{ eth(da=${dmac}, type=0x0800), ipv4(saddr=${src}, daddr=${dst}, proto=17), udp(sport=40000, dport=9), fill(0x61, 18) }`,
  );
  return blocks.join("\n") + "\n";
}

type Mode = "generic" | "native";

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

function moat(mode: Mode): Filter {
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
    name: "moat XDP",
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
          mode,
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

/** What sends FRAMES frames from namespace a; resolves to the seconds the sending took. */
interface Sender {
  send(): Promise<number>;
  close(): Promise<void>;
}

function trafgen(conf: string): Sender {
  return {
    async send() {
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
      if (run.status !== 0) throw new Error(`trafgen failed: ${run.stderr}`);
      return (performance.now() - t) / 1000;
    },
    async close() {},
  };
}

/** The kernel refused the generator's live-frame test run: native runs cannot be measured. */
class LiveFramesRefused extends Error {}

/** bench/traffic-gen.ts in namespace a: live XDP frames, started once per block list. */
async function xdpGenerator(sourcesFile: string, dmac: string): Promise<Sender> {
  const amac = (
    JSON.parse(sh("ip", ["-n", lab.a, "-j", "link", "show", lab.ifA])) as {
      address: string;
    }[]
  )[0]!.address;
  const child = spawn(
    "nsenter",
    [
      `--net=/run/netns/${lab.a}`,
      process.execPath,
      "--disable-warning=ExperimentalWarning",
      "bench/traffic-gen.ts",
      lab.ifA,
      amac,
      dmac,
      lab.v4.b,
      sourcesFile,
    ],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  let text = "";
  child.stdout!.on("data", (d: Buffer) => (text += d.toString()));
  const line = async (want: (l: string) => boolean): Promise<string> => {
    for (let i = 0; i < 3000; i++) {
      const found = text.split("\n").find(want);
      if (found) return found;
      if (child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the XDP generator said: ${text}`);
  };
  const first = await line((l) => l === "ready" || l.startsWith("refused: "));
  if (first !== "ready") throw new LiveFramesRefused(first.slice("refused: ".length));
  return {
    async send() {
      text = "";
      child.stdin!.write(`${FRAMES}\n`);
      return (JSON.parse(await line((l) => l.startsWith("{"))) as { seconds: number }).seconds;
    },
    async close() {
      const exited = new Promise((r) => child.once("exit", r));
      child.stdin!.end();
      await exited;
    },
  };
}

/** Softirq time of all CPUs so far, in ns (/proc/stat counts it in ticks of 10 ms). */
function softirqNs(): number {
  const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/);
  return Number(cpu[7]) * 10_000_000;
}

interface Run {
  pps: number;
  dropped: bigint;
  /** receive-side CPU (softirq) per dropped frame */
  cpuNs: number;
}

/** One run of FRAMES frames: frames the filter dropped per second of the sending. */
async function measure(filter: Filter, sender: Sender): Promise<Run> {
  const before = await filter.dropped();
  const softirq = softirqNs();
  const seconds = await sender.send();
  const cpu = softirqNs() - softirq;
  const dropped = (await filter.dropped()) - before;
  return {
    pps: Number(dropped) / seconds,
    dropped,
    cpuNs: Math.round(cpu / Number(dropped || 1n)),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/** GRO on the receiving veth: on for native runs (so it takes XDP-sent frames without XDP of its own). */
function gro(mode: Mode): void {
  inB("ethtool", ["-K", lab.ifB, "gro", mode === "native" ? "on" : "off"]);
}

async function main(): Promise<void> {
  const dmac = sh("ip", ["-n", lab.b, "-j", "link", "show", lab.ifB]);
  const mac = (JSON.parse(dmac) as { address: string }[])[0]?.address ?? "";
  const rows: Record<string, string | number>[] = [];
  const raw: Record<string, unknown> = {};
  for (const n of SIZES) {
    const list = blockList(n);
    const listFile = join(dir, `list-${n}.txt`);
    writeFileSync(listFile, list.cidrs.join("\n") + "\n");
    const sources = sourcesOf(list);
    const sourcesFile = join(dir, `sources-${n}.txt`);
    writeFileSync(sourcesFile, sources.join("\n") + "\n");
    const conf = join(dir, `gen-${n}.cfg`);
    writeFileSync(conf, trafgenConfig(sources, lab.v4.b, mac));
    for (const mode of MODES) {
      gro(mode);
      const row: Record<string, string | number> = { entries: list.cidrs.length, mode };
      let sender: Sender;
      try {
        sender = mode === "native" ? await xdpGenerator(sourcesFile, mac) : trafgen(conf);
      } catch (err) {
        if (!(err instanceof LiveFramesRefused)) throw err;
        // the other modes still run: the row says why this one has no figures
        console.error(`${n} entries, native: not measured, live frames refused (${err.message})`);
        rows.push({ ...row, "not measured": `live-frame test runs refused: ${err.message}` });
        continue;
      }
      try {
        for (const filter of [moat(mode), nftables(), ipset()]) {
          console.error(`${n} entries, ${mode}: ${filter.name}`);
          const t = performance.now();
          await filter.setUp(listFile, list.cidrs);
          const loadMs = performance.now() - t;
          try {
            const runs: Run[] = [];
            for (let r = 0; r < ROUNDS; r++) runs.push(await measure(filter, sender));
            const short = runs.find((r) => r.dropped < (BigInt(FRAMES) * 9n) / 10n);
            if (short)
              console.error(
                `  ${filter.name}: ${short.dropped} of ${FRAMES} frames dropped by the filter (the rest were lost before it)`,
              );
            raw[`${n} ${mode} ${filter.name}`] = {
              loadMs,
              runs: runs.map((r) => ({ pps: r.pps, dropped: String(r.dropped), cpuNs: r.cpuNs })),
            };
            row[filter.name] = Math.round(median(runs.map((r) => r.pps)));
            row[`${filter.name} ns/frame`] = median(runs.map((r) => r.cpuNs));
          } finally {
            await filter.tearDown();
          }
        }
      } finally {
        await sender.close();
      }
      const m = Number(row["moat XDP"]);
      row["moat / nft"] = (m / Number(row["nftables netdev interval set"])).toFixed(2);
      row["moat / ipset"] = (m / Number(row["iptables + ipset hash:net"])).toFixed(2);
      rows.push(row);
    }
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
        load: readFileSync("/proc/loadavg", "utf8").trim(),
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
