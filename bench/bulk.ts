// B14 (docs/performance.md): bulk TCP through an interface moat guards. A lab of two namespaces
// joined by a veth pair; iperf3's server in namespace b, its client in a: one TCP stream for a
// few seconds into b (b's ingress) and out of b (-R: b's egress), with one filter at a time on b's
// veth: none; nftables with the same policy (netdev ingress and egress chains: a block list of
// 1,000 CIDRs, the traffic not in it); moat as it attaches by default (`ingress: auto`, which
// chooses tcx ingress on a veth) and tc egress; moat with XDP ingress forced (native) and tc
// egress. Each filter's policy blocks the same list and lets the stream
// through, so every packet is judged (moat: a connection-table hit). Rounds alternate the
// filters' order; medians of the rounds.
//
//   node bench/bulk.ts [--rounds=N] [--seconds=S]     writes bench/results/bulk.json
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLab } from "../test/helpers/netns.ts";
import { median, writeResult } from "./results.ts";

const arg = (name: string, fallback: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const ROUNDS = arg("rounds", 3);
const SECONDS = arg("seconds", 5);

const lab = createLab("bench-bulk");
const dir = mkdtempSync(join(tmpdir(), "moat-bulk-"));
const inB = (cmd: string, args: string[]) =>
  execFileSync("ip", ["netns", "exec", lab.b, cmd, ...args], { encoding: "utf8" });

/** 1,000 CIDRs in 200.0.0.0/5 and up: none holds the lab's 10.231.x addresses. */
function blockList(): string[] {
  let s = 7;
  const rand = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  return Array.from({ length: 1000 }, () => {
    const len = 16 + Math.floor(rand() * 17);
    const a = (200 * 2 ** 24 + Math.floor(rand() * 48 * 2 ** 24)) >>> 0;
    const base = len === 32 ? a : a - (a % 2 ** (32 - len));
    return `${[base >>> 24, (base >>> 16) & 255, (base >>> 8) & 255, base & 255].join(".")}/${len}`;
  });
}

interface Filter {
  name: string;
  setUp(): Promise<void>;
  tearDown(): Promise<void>;
}

const list = blockList();
/** The ingress hook a moat filter attached with, as it said (auto: "tc (auto: veth -> tc)"). */
const chosen = new Map<string, string>();
const listFile = join(dir, "list.txt");
writeFileSync(listFile, list.join("\n") + "\n");

const none: Filter = { name: "no filter", async setUp() {}, async tearDown() {} };

const nftables: Filter = {
  name: "nftables",
  async setUp() {
    const conf = join(dir, "nft.conf");
    writeFileSync(
      conf,
      [
        "table netdev moatbulk {",
        `  set bl { type ipv4_addr; flags interval; auto-merge; elements = { ${list.join(", ")} } }`,
        `  chain in { type filter hook ingress device ${lab.ifB} priority 0; ip saddr @bl drop; }`,
        `  chain out { type filter hook egress device ${lab.ifB} priority 0; ip daddr @bl drop; }`,
        "}",
      ].join("\n") + "\n",
    );
    inB("nft", ["-f", conf]);
  },
  async tearDown() {
    spawnSync("ip", ["netns", "exec", lab.b, "nft", "delete", "table", "netdev", "moatbulk"]);
  },
};

function moat(hook: "native" | "auto"): Filter {
  let child: ReturnType<typeof spawn> | null = null;
  const name = hook === "auto" ? "moat, ingress auto" : "moat, ingress xdp (native)";
  return {
    name,
    async setUp() {
      const c = spawn(
        "nsenter",
        [
          `--net=/run/netns/${lab.b}`,
          process.execPath,
          "--disable-warning=ExperimentalWarning",
          "bench/traffic-moat.ts",
          lab.ifB,
          listFile,
          hook,
        ],
        { stdio: ["pipe", "pipe", "inherit"] },
      );
      child = c;
      let text = "";
      c.stdout!.on("data", (d: Buffer) => (text += d.toString()));
      for (let i = 0; !text.includes("\n"); i++) {
        if (i > 600 || c.exitCode !== null) throw new Error(`moat said: ${text}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      // auto says which hook it chose, and why
      chosen.set(name, text.trim().replace(/^ready ?/, ""));
    },
    async tearDown() {
      const c = child;
      if (!c || c.exitCode !== null) return;
      const exited = new Promise((r) => c.once("exit", r));
      c.stdin?.end();
      await exited;
    },
  };
}

/** One iperf3 stream: Gbit/s received. `reverse`: b sends (b's egress). */
function stream(reverse: boolean): number {
  const r = spawnSync(
    "ip",
    [
      "netns",
      "exec",
      lab.a,
      "iperf3",
      "-c",
      lab.v4.b,
      "-t",
      String(SECONDS),
      "-J",
      ...(reverse ? ["-R"] : []),
    ],
    { encoding: "utf8", timeout: (SECONDS + 30) * 1000 },
  );
  if (r.status !== 0) throw new Error(`iperf3 failed: ${r.stdout.slice(-500)} ${r.stderr}`);
  const out = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
  return out.end.sum_received.bits_per_second / 1e9;
}

async function main(): Promise<void> {
  const server = spawn("ip", ["netns", "exec", lab.b, "iperf3", "-s"], { stdio: "ignore" });
  await new Promise((r) => setTimeout(r, 500));
  const filters = [none, nftables, moat("auto"), moat("native")];
  const runs = new Map(
    filters.map((f) => [f.name, { ingress: [] as number[], egress: [] as number[] }]),
  );
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 ? [...filters].reverse() : filters;
      for (const f of order) {
        console.error(`round ${round + 1}: ${f.name}`);
        await f.setUp();
        try {
          runs.get(f.name)!.ingress.push(stream(false));
          runs.get(f.name)!.egress.push(stream(true));
        } finally {
          await f.tearDown();
        }
      }
    }
  } finally {
    server.kill();
  }
  const base = runs.get(none.name)!;
  const rows = filters.map((f) => {
    const r = runs.get(f.name)!;
    return {
      filter: f.name + (chosen.get(f.name) ? `: ${chosen.get(f.name)}` : ""),
      "ingress Gbit/s": Number(median(r.ingress).toFixed(2)),
      "ingress / none": Number((median(r.ingress) / median(base.ingress)).toFixed(2)),
      "egress Gbit/s": Number(median(r.egress).toFixed(2)),
      "egress / none": Number((median(r.egress) / median(base.egress)).toFixed(2)),
    };
  });
  console.table(rows);
  writeResult("bulk", {
    seconds: SECONDS,
    rounds: ROUNDS,
    rows,
    raw: Object.fromEntries(runs),
  });
}

try {
  await main();
} finally {
  lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
}
