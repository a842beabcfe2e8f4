// B11: a SYN flood (hping3 --flood, spoofed sources) against a server with an accept queue of 4,
// through moat, twice in one run: first with no `flood` section (the kernel's own syncookies
// answer once the SYN queue overflows), then with `flood.syn` (moat answers at XDP with its
// cookies). For each, per flood SYN that arrived on moat's interface:
// - xdpNsPerSyn: moat's XDP program (kernel.bpf_stats_enabled run time over its runs): judging the
//   SYN, and with cookies building and sending the SYN-ACK;
// - generatorNsPerSyn: the CPU time of the generator process (hping3). On a veth the receiving
//   side's softirq work (the kernel's SYN handling, its syncookie and SYN-ACK; or moat's XDP and
//   XDP_TX) mostly runs in the sender's context and is charged to it; its own sending costs the
//   same in both phases, so the difference between the phases is the difference of the defences;
// - busyNsPerSyn: the machine's busy time less the generator's (other load on the machine counts);
// and the connect success of a real client (curl) during the flood.
// Then the same two phases with the interface's ingress at tc (`ingress: tc`, no program on the
// peer: the SYN-ACK is an skb redirected back out), timing moat's tc ingress program per SYN and
// its tc egress program (which lets each cookie SYN-ACK out unjudged) per SYN.
// Results: bench/results/syn-flood.json; docs/performance.md, "B11".
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { startMoatLab, type MoatLab } from "../test/helpers/moat-lab.ts";
import type { Lab } from "../test/helpers/netns.ts";
import { ROOT } from "../test/helpers/paths.ts";
import { cpuUs } from "./proc-cpu.ts";
import { enableBpfStats, programStats } from "./bpf-stats.ts";
import { writeResult } from "./results.ts";
import { tcpExt } from "../test/helpers/netstat.ts";

const PORT = 8080;
const FLOOD_MS = Number(process.env.FLOOD_MS ?? 5000);
const CLIENTS = 20;
const TICK_US = 1e6 / Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout);

type Ingress = "xdp" | "tc";

const policy = (lab: Lab, flood: boolean, ingress: Ingress) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [{ name: ${lab.ifB}, ingress: ${ingress} }] }
rules:
  - { name: web, direction: ingress, action: allow, layer4: { protocol: tcp, port: [${PORT}] } }
${flood ? `flood:\n  syn: { ports: [${PORT}], rate: 100/s, burst: 3, hold: 2s }\n` : ""}`;

/** Busy CPU time of the whole machine (every state but idle and iowait), in microseconds. */
function busyUs(): number {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.split(/\s+/).slice(1).map(Number);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return (f.slice(0, 8).reduce((a, b) => a + b, 0) - idle) * TICK_US;
}

/** Packets received on moat's interface so far. */
function rxPackets(lab: Lab): number {
  const r = spawnSync(
    "ip",
    ["netns", "exec", lab.b, "cat", `/sys/class/net/${lab.ifB}/statistics/rx_packets`],
    {
      encoding: "utf8",
    },
  );
  return Number(r.stdout.trim());
}

/** curl from a, one after another, while the flood runs: how many connected. */
async function clients(lab: MoatLab): Promise<number> {
  let ok = 0;
  for (let i = 0; i < CLIENTS; i++) {
    const r = await new Promise<number>((resolve) =>
      spawn(
        "ip",
        [
          "netns",
          "exec",
          lab.a,
          "curl",
          "-sS",
          "-o",
          "/dev/null",
          "--max-time",
          "2",
          `http://${lab.v4.b}:${PORT}/`,
        ],
        {
          stdio: "ignore",
        },
      ).on("exit", (code) => resolve(code ?? -1)),
    );
    if (r === 0) ok += 1;
    await new Promise((r2) => setTimeout(r2, FLOOD_MS / CLIENTS / 2));
  }
  return ok;
}

/** The id of the XDP program on moat's interface. */
function xdpProgramId(lab: Lab): number {
  const r = spawnSync("ip", ["-n", lab.b, "-d", "link", "show", lab.ifB], { encoding: "utf8" });
  return Number(/prog\/xdp id (\d+)/.exec(r.stdout)?.[1] ?? 0);
}

/** The id of moat's tcx program on `direction` of its interface, from the link the daemon pinned. */
function tcProgramId(lab: MoatLab, direction: "ingress" | "egress"): number {
  const name = `link_tc-${direction}_${lab.ifB}`;
  const pin = spawnSync("find", [lab.pinDir, "-name", name], { encoding: "utf8" }).stdout.trim();
  const r = spawnSync("bpftool", ["-j", "link", "show", "pinned", pin.split("\n")[0] ?? ""], {
    encoding: "utf8",
  });
  const id = (JSON.parse(r.stdout || "{}") as { prog_id?: number }).prog_id;
  if (!id) throw new Error(`no pinned link ${name} under ${lab.pinDir}: ${r.stdout}${r.stderr}`);
  return id;
}

/** Nanoseconds of program `id`'s run time since `before`, per SYN arrived. */
const nsPerSyn = (id: number, before: { runTimeNs: number }, syns: number) =>
  Math.round((programStats(id).runTimeNs - before.runTimeNs) / syns);

async function phase(lab: MoatLab, name: string, ingress: Ingress) {
  const xdp = ingress === "xdp" ? xdpProgramId(lab) : 0;
  const tcIn = ingress === "tc" ? tcProgramId(lab, "ingress") : 0;
  const tcOut = ingress === "tc" ? tcProgramId(lab, "egress") : 0;
  const stats0 = programStats(xdp || tcIn);
  const out0 = ingress === "tc" ? programStats(tcOut) : undefined;
  const ext0 = tcpExt(lab.b);
  const rx0 = rxPackets(lab);
  const busy0 = busyUs();
  const hping = spawn(
    "ip",
    [
      "netns",
      "exec",
      lab.a,
      "hping3",
      "-q",
      "-S",
      "-p",
      String(PORT),
      "--flood",
      "--rand-source",
      lab.v4.b,
    ],
    { stdio: "ignore" },
  );
  const start = performance.now();
  const connected = await clients(lab);
  const left = FLOOD_MS - (performance.now() - start);
  if (left > 0) await new Promise((r) => setTimeout(r, left));
  const hpingUs = cpuUs(hping.pid);
  const exited = new Promise((r) => hping.once("exit", r));
  hping.kill("SIGKILL");
  await exited;
  const busy = busyUs() - busy0;
  const syns = rxPackets(lab) - rx0;
  const ext = tcpExt(lab.b);
  const stats = programStats(xdp || tcIn);
  const perRun = Math.round((stats.runTimeNs - stats0.runTimeNs) / (stats.runCnt - stats0.runCnt));
  const result = {
    phase: name,
    ingress,
    seconds: (performance.now() - start) / 1000,
    synsArrived: syns,
    synsPerSecond: Math.round(syns / ((performance.now() - start) / 1000)),
    ...(ingress === "xdp"
      ? { xdpNsPerSyn: perRun }
      : { tcIngressNsPerSyn: perRun, tcEgressNsPerSyn: out0 ? nsPerSyn(tcOut, out0, syns) : 0 }),
    generatorNsPerSyn: Math.round((hpingUs * 1000) / syns),
    busyNsPerSyn: Math.round(((busy - hpingUs) * 1000) / syns),
    generatorCpuMs: Math.round(hpingUs / 1000),
    clientsConnected: `${connected}/${CLIENTS}`,
    kernelSyncookiesSent: (ext.SyncookiesSent ?? 0) - (ext0.SyncookiesSent ?? 0),
    kernelListenOverflows: (ext.ListenOverflows ?? 0) - (ext0.ListenOverflows ?? 0),
  };
  console.log(JSON.stringify(result));
  return result;
}

/** Both phases with the interface's ingress at `ingress`. */
async function run(ingress: Ingress) {
  const lab = await startMoatLab(`bench-syn-flood-${ingress}`, (l) => policy(l, false, ingress), [
    `tcp:${PORT}`,
    "backlog:4",
  ]);
  try {
    // SYN-ACKs to spoofed sources leave by the default route; XDP_TX on veth needs the peer's NAPI
    lab.inB("ip", ["route", "add", "default", "via", lab.v4.a]);
    if (ingress === "xdp")
      lab.inA("ip", [
        "link",
        "set",
        "dev",
        lab.ifA,
        "xdpdrv",
        "obj",
        `${ROOT}build/bpf/test/addon_attach.bpf.o`,
        "sec",
        "xdp",
      ]);
    const kernel = await phase(lab, "kernel syncookies", ingress);
    lab.writePolicy(policy(lab, true, ingress));
    await lab.daemon.waitFor(/applied: generation 2/, 30_000);
    await new Promise((r) => setTimeout(r, 3000)); // the kernel's half-open requests time out
    const moat = await phase(lab, "moat cookies", ingress);
    return { kernel, moat };
  } finally {
    await lab.close();
  }
}

const restoreStats = enableBpfStats();
try {
  const xdp = await run("xdp");
  const tc = await run("tc");
  writeResult("syn-flood", { floodMs: FLOOD_MS, clients: CLIENTS, ...xdp, tc });
} finally {
  restoreStats();
}
