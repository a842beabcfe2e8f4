// B8 (docs/performance.md): moat's footprint, what the daemon costs a host that runs it.
// The daemon runs as the package installs it (Node with a 2 MiB young generation on the bundle,
// build/dist/cli-main.mjs: plain JavaScript, no type stripping) in a lab namespace on its veth,
// with the API and the history on; for each case: its resident memory once started (VmRSS, split into anonymous and file
// pages by smaps_rollup), the kernel memory of its BPF maps (memlock in each map fd's fdinfo:
// not in RSS), and its CPU time (utime + stime of every thread, /proc/PID/stat) over an idle
// 30 s, or over a 60 s flood of blocked frames (trafgen in the peer namespace, each frame from
// a new source port, so each is a new connection the policy blocks, one event each).
//
//   idle       a small policy
//   rules-100k 100k mixed rules (bench/compile.ts) from the policy file
//   set-1m     a block list of 1M CIDRs /16../32 from a file
//   reload-100k the rules-100k daemon after its file is replaced by another 100k rules (a reload;
//              reloadS: from the SIGHUP to the new generation applied)
//   flood      the small policy, 60 s of frames to a port it blocks
//
//   node bench/footprint.ts [CASE...]  writes bench/results/footprint.json (every case, or those named)
//
// FOOTPRINT_BUNDLE=DIR: the daemon from another bundle of the same tree (`node scripts/bundle.ts
// DIR`), to compare two builds with the same bench.
// FOOTPRINT_V8_FLAGS="--flag ...": the daemon with these V8 flags instead of the launcher's.
// FOOTPRINT_HEAP_SNAPSHOT=DIR: after each case's reading, the daemon also writes a heap snapshot
// of its main thread into DIR (--heapsnapshot-signal), and its /proc/PID/smaps (CASE.smaps: which
// mappings the resident pages are in), to see what the memory read is made of.
import { spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { spawnLines, type LineChild } from "../test/helpers/child.ts";
import { createLab, sh } from "../test/helpers/netns.ts";
import { NODE, ROOT } from "../test/helpers/paths.ts";
import { cidr, mixedPolicy, random } from "./compile.ts";
import { cpuUs } from "./proc-cpu.ts";
import { writeResult } from "./results.ts";

const IDLE_S = 30;
const FLOOD_S = 60;
/** After start: let the daemon settle (first history writes, GC) before measuring. */
const SETTLE_S = 15;
const START_TIMEOUT_MS = 240_000;

/** moat as the package's launcher runs it (scripts/install.sh). */
const BUNDLE = process.env.FOOTPRINT_BUNDLE
  ? join(resolve(process.env.FOOTPRINT_BUNDLE), "cli-main.mjs")
  : `${ROOT}build/dist/cli-main.mjs`;
/** The launcher's V8 flags; FOOTPRINT_V8_FLAGS (space-separated) replaces them, to compare others. */
const V8_FLAGS = process.env.FOOTPRINT_V8_FLAGS?.split(" ").filter(Boolean) ?? [
  "--max-semi-space-size=2",
];
const INSTALLED_MOAT = [NODE, ...V8_FLAGS, BUNDLE];
const SNAPSHOT_DIR = process.env.FOOTPRINT_HEAP_SNAPSHOT
  ? resolve(process.env.FOOTPRINT_HEAP_SNAPSHOT)
  : undefined;
const SNAPSHOT_FLAGS = SNAPSHOT_DIR
  ? ["--heapsnapshot-signal=SIGPWR", `--diagnostic-dir=${SNAPSHOT_DIR}`]
  : [];
if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run 'make build'`);

const lab = createLab("bench-footprint");
const dir = mkdtempSync(join(tmpdir(), "moat-b8-"));
mkdirSync(join(dir, "log"));

function policy(extra = ""): string {
  return `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${lab.ifB}] }
logging: { audit: { path: ${join(dir, "log", "audit.log")} } }
${extra}rules:
  - { name: flood-port, direction: ingress, action: block, layer4: { protocol: udp, port: [9] } }
  - { name: ssh, direction: ingress, action: allow, layer4: { protocol: tcp, port: [22] } }
`;
}

const kib = (text: string, key: string): number =>
  Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? 0);

interface Memory {
  rssMiB: number;
  anonMiB: number;
  fileMiB: number;
  /** BPF maps the process holds: kernel memory, not in RSS */
  bpfMapsMiB: number;
}

function memory(pid: number): Memory {
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  let memlock = 0;
  for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
    try {
      const info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8");
      if (/^map_type:/m.test(info)) memlock += Number(/^memlock:\s+(\d+)/m.exec(info)?.[1] ?? 0);
    } catch {
      // closed meanwhile
    }
  }
  const mib = (k: number) => Math.round(k / 102.4) / 10;
  return {
    rssMiB: mib(kib(rollup, "Rss")),
    anonMiB: mib(kib(rollup, "Anonymous")),
    fileMiB: mib(kib(rollup, "Rss") - kib(rollup, "Anonymous")),
    bpfMapsMiB: Math.round(memlock / 2 ** 20 / 0.1) / 10,
  };
}

const sleep = (s: number) => new Promise((r) => setTimeout(r, s * 1000));

/** CPU the process used over `seconds`, as a % of one core. */
async function cpuOver(pid: number, seconds: number): Promise<number> {
  const before = cpuUs(pid);
  await sleep(seconds);
  return Math.round(((cpuUs(pid) - before) / (seconds * 1e6)) * 1e4) / 100;
}

function startDaemon(policyText: string): LineChild {
  const path = join(dir, "policy.yaml");
  writeFileSync(path, policyText);
  return spawnLines("nsenter", [
    `--net=/run/netns/${lab.b}`,
    INSTALLED_MOAT[0]!,
    ...SNAPSHOT_FLAGS,
    ...INSTALLED_MOAT.slice(1),
    "run",
    "--policy",
    path,
    "--no-pin",
    "--api",
    `unix:${join(dir, "api.sock")}`,
    "--history",
    join(dir, "history.db"),
  ]);
}

async function stop(child: LineChild): Promise<void> {
  const gone = new Promise((r) => child.proc.once("exit", r));
  child.kill("SIGTERM");
  await gone;
}

type Row = Record<string, string | number>;

/** Asks the daemon for a heap snapshot and waits until it is written (its size stops growing). */
async function heapSnapshot(pid: number, into: string): Promise<void> {
  mkdirSync(into, { recursive: true });
  const before = new Set(readdirSync(into));
  process.kill(pid, "SIGPWR");
  let size = -1;
  for (let i = 0; i < 240; i++) {
    await sleep(1);
    const file = readdirSync(into).find((f) => f.endsWith(".heapsnapshot") && !before.has(f));
    if (!file) continue;
    const now = statSync(join(into, file)).size;
    if (now > 0 && now === size) return;
    size = now;
  }
  throw new Error(`no heap snapshot in ${into} after 240 s`);
}

async function daemonCase(
  name: string,
  text: string,
  load: (pid: number, daemon: LineChild) => Promise<Row>,
) {
  const t = performance.now();
  const daemon = startDaemon(text);
  await daemon.waitFor(/^moat is running/, START_TIMEOUT_MS);
  const startS = Math.round((performance.now() - t) / 100) / 10;
  try {
    await sleep(SETTLE_S);
    const pid = daemon.proc.pid ?? 0;
    const row = await load(pid, daemon);
    const read = { case: name, startS, ...memory(pid), ...row };
    if (SNAPSHOT_DIR) {
      mkdirSync(SNAPSHOT_DIR, { recursive: true });
      writeFileSync(join(SNAPSHOT_DIR, `${name}.smaps`), readFileSync(`/proc/${pid}/smaps`));
      await heapSnapshot(pid, SNAPSHOT_DIR);
    }
    return read;
  } finally {
    await stop(daemon);
  }
}

const idle = async (pid: number): Promise<Row> => ({ cpuPct: await cpuOver(pid, IDLE_S) });

/** trafgen in namespace a: blocked frames to port 9, every frame a new source port. */
function trafgen(): ReturnType<typeof spawn> {
  const mac = (
    JSON.parse(sh("ip", ["-n", lab.b, "-j", "link", "show", lab.ifB])) as {
      address: string;
    }[]
  )[0]?.address;
  const conf = join(dir, "flood.trafgen");
  writeFileSync(
    conf,
    `{ eth(da=${mac}, type=0x0800), ipv4(saddr=${lab.v4.a}, daddr=${lab.v4.b}, proto=17), udp(sport=dinc(1024, 65000), dport=9), fill(0x61, 18) }\n`,
  );
  // a gap between frames: a steady ~20k frames/s, not the generator starving both cores
  // its own process group: trafgen's worker is a child of its own, and both must stop
  return spawn(
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
      "--gap",
      "50us",
      "--cpus",
      "1",
    ],
    { detached: true, stdio: "ignore" },
  );
}

async function flood(pid: number): Promise<Row> {
  const rssBeforeMiB = memory(pid).rssMiB;
  const audit = join(dir, "log", "audit.log");
  const linesBefore = readFileSync(audit, "utf8").split("\n").length;
  const gen = trafgen();
  let peakRss = 0;
  const before = cpuUs(pid);
  const end = performance.now() + FLOOD_S * 1000;
  while (performance.now() < end) {
    await sleep(1);
    peakRss = Math.max(peakRss, memory(pid).rssMiB);
  }
  const cpuPct = Math.round(((cpuUs(pid) - before) / (FLOOD_S * 1e6)) * 1e4) / 100;
  const exited = new Promise((r) => gen.once("exit", r));
  process.kill(-(gen.pid ?? 0), "SIGINT");
  await exited;
  const auditLines = readFileSync(audit, "utf8").split("\n").length - linesBefore;
  return { rssBeforeMiB, cpuPct, peakRssMiB: peakRss, auditLines };
}

/** A policy file of `count` mixed rules (with the idle case's attach and logging). */
function rulesText(count: number): string {
  const head = policy()
    .split("\n")
    .filter((l) => /^(attach|logging):/.test(l))
    .join("\n");
  return mixedPolicy(count).replace("rules:\n", `${head}\nrules:\n`);
}

/** The daemon on a policy file of `count` mixed rules. */
async function rulesCase(count: number): Promise<Row> {
  return daemonCase(`rules-${count / 1000}k`, rulesText(count), idle);
}

/**
 * The daemon on `count` rules whose file is then replaced by `count` others (each rule's address
 * moved): what it holds once the reload is done and settled, against the one policy it runs.
 */
async function reloadCase(count: number): Promise<Row> {
  const next = rulesText(count).replace(/remote: \[(\d+)\./g, (_, a: string) => {
    return `remote: [${(Number(a) + 1) % 224}.`;
  });
  return daemonCase(`reload-${count / 1000}k`, rulesText(count), async (pid, daemon) => {
    writeFileSync(join(dir, "policy.yaml"), next);
    const t = performance.now();
    process.kill(pid, "SIGHUP");
    await daemon.waitFor(/applied: generation 2\b/, START_TIMEOUT_MS);
    const reloadS = Math.round((performance.now() - t) / 100) / 10;
    await sleep(SETTLE_S);
    return { reloadS, ...(await idle(pid)) };
  });
}

const SET_POLICY = policy("sets:\n  blocklist: { file: blocklist.txt }\n").replace(
  "rules:\n",
  "rules:\n  - { name: blocklist, direction: any, action: block, layer3: { remote: [set:blocklist] } }\n",
);

async function setCase(): Promise<Row> {
  const rand = random(7);
  const list = Array.from({ length: 1_000_000 }, () => cidr(rand, 16));
  writeFileSync(join(dir, "blocklist.txt"), list.join("\n") + "\n");
  return daemonCase("set-1m", SET_POLICY, idle);
}

const CASES: Record<string, () => Promise<Row>> = {
  idle: () => daemonCase("idle", policy(), idle),
  "rules-100k": () => rulesCase(100_000),
  "set-1m": setCase,
  "reload-100k": () => reloadCase(100_000),
  flood: () => daemonCase("flood", policy(), flood),
};

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const rows: Row[] = [];
  const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  for (const [name, run] of Object.entries(CASES)) {
    if (only.length > 0 && !only.includes(name)) continue;
    const row = await run();
    rows.push(row);
    console.log(JSON.stringify(row));
  }
  const loadAfter = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  writeResult("footprint", { loadBefore: load, loadAfter, rows });
}

try {
  await main();
} finally {
  lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
}
