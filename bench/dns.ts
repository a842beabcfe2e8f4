// B9 (docs/performance.md): what moat's DNS proxy adds to a DNS query, and the queries/s it
// sustains. A network-namespace lab: dnsmasq in namespace a answers a zone of NAMES host names from
// memory; the moat daemon runs in namespace b with a policy that uses names (a hostname rule), so
// every port-53 query of a process under attach.cgroup goes to the proxy, which binds each answer
// to the asker before answering. In the same run, from namespace b:
//   direct   the client outside the attached cgroup: straight to dnsmasq (the floor)
//   proxied  the same client inside the attached cgroup: redirected to moat's proxy
// Clients: bench/dns-latency-client.ts (one query at a time from one unconnected UDP socket,
// hrtime per query: p50/p99) and dnsperf (one unconnected UDP socket, 100 queries outstanding:
// queries/s, mean latency). Rounds alternate the order of direct and proxied.
//
// Checked first and after: every answer is NOERROR (the zone answers every name); the proxied
// runs went through the proxy (its events in the history, with the names bound) and the direct
// ones did not.
//
//   node bench/dns.ts [--profile] [--rounds=N] [--blocklist=N]
//                                   writes bench/results/dns.json (3 rounds)
//                                   (--profile: the daemon's CPU profile during a proxied dnsperf run,
//                                   bench/results/dns-daemon.cpuprofile; --blocklist: the policy
//                                   first blocks a set of N addresses, none of the lab's, as a big
//                                   block list does: bench/results/dns-blocklist-N.json)
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnLines, type LineChild } from "../test/helpers/child.ts";
import { testCgroup } from "../test/helpers/cgroup-run.ts";
import { startMoatLab, type MoatLab } from "../test/helpers/moat-lab.ts";
import { MOAT, NODE, ROOT } from "../test/helpers/paths.ts";
import { runIn } from "./ns-run.ts";
import { cpuUs, threadCpuUs } from "./proc-cpu.ts";
import { median, quantile, writeResult } from "./results.ts";

const NAMES = 1000;
const ROUNDS = Number(
  /^--rounds=(\d+)$/.exec(process.argv.find((a) => a.startsWith("--rounds=")) ?? "")?.[1] ?? 3,
);
const LATENCY_QUERIES = 5000;
const DNSPERF_SECONDS = 10;
const PROFILE = process.argv.includes("--profile");
const INSPECT_PORT = 9239;
const BLOCKLIST = Number(
  /^--blocklist=(\d+)$/.exec(process.argv.find((a) => a.startsWith("--blocklist=")) ?? "")?.[1] ??
    0,
);
/** The block list's addresses: 100.64.0.0/10, which the lab does not use. */
const blockedAddress = (i: number) => `100.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;

const nameOf = (i: number) => `h${i}.bench.test`;
const addressOf = (i: number) => `10.240.${Math.floor(i / 250)}.${1 + (i % 250)}`;

interface Latency {
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  samples: number;
  rcodes: Record<string, number>;
}

async function latency(lab: MoatLab, cgroupDir: string | null): Promise<Latency> {
  const names = Array.from({ length: 100 }, (_, i) => nameOf(i * 7));
  const r = await runIn(lab.b, cgroupDir, [
    NODE,
    `${ROOT}bench/dns-latency-client.ts`,
    lab.v4.a,
    String(LATENCY_QUERIES),
    ...names,
  ]);
  if (r.status !== 0) throw new Error(`the latency client failed:\n${r.stderr}`);
  const out = JSON.parse(r.stdout) as { latencyUs: number[]; rcodes: Record<string, number> };
  const sorted = [...out.latencyUs].sort((a, b) => a - b);
  return {
    p50: quantile(sorted, 0.5),
    p90: quantile(sorted, 0.9),
    p99: quantile(sorted, 0.99),
    mean: sorted.reduce((s, x) => s + x, 0) / Math.max(1, sorted.length),
    samples: sorted.length,
    rcodes: out.rcodes,
  };
}

interface Perf {
  qps: number;
  /** CPU the moat daemon and dnsmasq used per completed query during the run. */
  daemonCpuUsPerQuery: number;
  dnsmasqCpuUsPerQuery: number;
  /** The daemon's CPU per query by thread name. */
  daemonThreadsUsPerQuery: Record<string, number>;
  sent: number;
  completed: number;
  lost: number;
  meanUs: number;
  stddevUs: number;
  rcodes: Record<string, number>;
}

async function dnsperf(
  lab: MoatLab,
  cgroupDir: string | null,
  file: string,
  dnsmasqPid: number | undefined,
): Promise<Perf> {
  const daemonPid = lab.daemon.proc.pid;
  const cpu0 = [cpuUs(daemonPid), cpuUs(dnsmasqPid)];
  const threads0 = threadCpuUs(daemonPid);
  const r = await runIn(lab.b, cgroupDir, [
    "dnsperf",
    "-s",
    lab.v4.a,
    "-d",
    file,
    "-l",
    String(DNSPERF_SECONDS),
    "-t",
    "2",
  ]);
  const num = (label: string) => Number(new RegExp(`${label}:\\s+([\\d.]+)`).exec(r.stdout)?.[1]);
  const qps = num("Queries per second");
  if (r.status !== 0 || !Number.isFinite(qps))
    throw new Error(`dnsperf failed:\n${r.stdout}\n${r.stderr}`);
  const cpu1 = [cpuUs(daemonPid), cpuUs(dnsmasqPid)];
  const threads1 = threadCpuUs(daemonPid);
  const rcodes: Record<string, number> = {};
  const codes = /Response codes:\s+(.*)/.exec(r.stdout)?.[1] ?? "";
  for (const m of codes.matchAll(/([A-Z]+) (\d+)/g)) rcodes[m[1] ?? ""] = Number(m[2]);
  const completed = num("Queries completed");
  return {
    qps,
    daemonCpuUsPerQuery: ((cpu1[0] ?? 0) - (cpu0[0] ?? 0)) / completed,
    dnsmasqCpuUsPerQuery: ((cpu1[1] ?? 0) - (cpu0[1] ?? 0)) / completed,
    daemonThreadsUsPerQuery: Object.fromEntries(
      Object.entries(threads1)
        .map(([name, us]) => [name, (us - (threads0[name] ?? 0)) / completed] as const)
        .filter(([, us]) => us >= 1),
    ),
    sent: num("Queries sent"),
    completed,
    lost: num("Queries lost"),
    meanUs: num("Average Latency \\(s\\)") * 1e6,
    stddevUs: num("Latency StdDev \\(s\\)") * 1e6,
    rcodes,
  };
}

/** Only NOERROR answers, nothing lost (the zone has every name asked). */
function checkAnswers(what: string, rcodes: Record<string, number>, lost = 0): void {
  const other = Object.entries(rcodes).filter(([code, n]) => code !== "NOERROR" && n > 0);
  if (other.length > 0 || lost > 0)
    throw new Error(`${what}: answers other than NOERROR ${JSON.stringify(rcodes)}, lost ${lost}`);
}

interface DnsEventJson {
  type: string;
  process?: { name: string } | null;
  dns?: { query: string; rcode: string; trusted: boolean; names?: string[] };
}

/** The last `limit` stored events (the history). */
async function storedDns(lab: MoatLab, limit: number): Promise<DnsEventJson[]> {
  const r = await runIn(lab.b, null, [
    MOAT,
    "events",
    "--json",
    "--limit",
    String(limit),
    "--api",
    `unix:${lab.apiSocket}`,
  ]);
  return r.stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as DnsEventJson)
    .filter((e) => e.type === "dns");
}

/**
 * The proxy's DNS events after the marker query, among the newest 200 stored; null when the
 * marker is not among them (more than that came after it).
 */
async function proxiedSince(lab: MoatLab, marker: string): Promise<DnsEventJson[] | null> {
  const events = await storedDns(lab, 200);
  const at = events.findIndex((e) => e.dns?.query === marker);
  return at < 0 ? null : events.slice(at + 1);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function policy(
  l: { ifB: string; v4: { a: string }; auditPath: string },
  cgroup: string,
  blocklist: string | null,
): string {
  return `version: 1
mode: prevent
defaults: { ingress: allow, egress: block }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
logging: { audit: { path: ${l.auditPath} } }
dns: { resolvers: [${l.v4.a}] }
${blocklist ? `sets: { blocklist: { file: ${blocklist} } }\n` : ""}rules:
${blocklist ? "  - { name: blocklist, direction: egress, action: block, layer3: { remote: [set:blocklist] } }\n" : ""}  - { name: dns, direction: egress, action: allow, layer4: { protocol: udp, port: [53] } }
  - { name: dns-tcp, direction: egress, action: allow, layer4: { protocol: tcp, port: [53] } }
  - { name: web, direction: egress, action: allow, layer3: { remote: ["**.bench.test"] }, layer4: { protocol: tcp, port: [80] } }
`;
}

const work = mkdtempSync(join(tmpdir(), "moat-b9-"));
const cg = testCgroup("dnsbench");
let lab: MoatLab | null = null;
let upstream: LineChild | null = null;
mkdirSync("bench/results", { recursive: true });
try {
  const hosts = join(work, "zone.hosts");
  writeFileSync(
    hosts,
    Array.from({ length: NAMES }, (_, i) => `${addressOf(i)} ${nameOf(i)}\n`).join(""),
  );
  const queries = join(work, "queries.txt");
  writeFileSync(queries, Array.from({ length: NAMES }, (_, i) => `${nameOf(i)} A\n`).join(""));

  // --profile: the daemon's inspector listens (its own namespace's loopback); profiling starts
  // only during a proxied dnsperf run
  const blocklist = BLOCKLIST > 0 ? join(work, "blocklist.txt") : null;
  if (blocklist)
    writeFileSync(
      blocklist,
      Array.from({ length: BLOCKLIST }, (_, i) => `${blockedAddress(i)}\n`).join(""),
    );
  lab = await startMoatLab("bench-dns", (l) => policy(l, cg.cgroup, blocklist), [], {
    beforeDaemon: () => {
      if (PROFILE) process.env.NODE_OPTIONS = `--inspect=127.0.0.1:${INSPECT_PORT}`;
      return Promise.resolve();
    },
  });
  delete process.env.NODE_OPTIONS;
  const l = lab;
  upstream = spawnLines("ip", [
    "netns",
    "exec",
    l.a,
    "dnsmasq",
    "--keep-in-foreground",
    "--no-resolv",
    "--no-hosts",
    "--bind-interfaces",
    `--listen-address=${l.v4.a}`,
    "--port=53",
    "--user=root",
    `--pid-file=${join(work, "dnsmasq.pid")}`,
    "--local=/bench.test/",
    "--local-ttl=300",
    `--addn-hosts=${hosts}`,
    "--log-facility=-",
  ]);
  for (let i = 0; ; i++) {
    const probe = await latencyOnce(l);
    if (probe) break;
    if (i > 50) throw new Error(`dnsmasq does not answer:\n${upstream.stderr.join("\n")}`);
    await sleep(100);
  }

  const rounds: { direct: Latency; proxied: Latency; perfDirect: Perf; perfProxied: Perf }[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? [null, cg.dir] : [cg.dir, null];
    const lat: Record<string, Latency> = {};
    const perf: Record<string, Perf> = {};
    for (const where of order) {
      const key = where ? "proxied" : "direct";
      console.error(`round ${r + 1}: latency, ${key}`);
      lat[key] = await latency(l, where);
      checkAnswers(`latency ${key}`, lat[key].rcodes);
    }
    for (const where of order) {
      const key = where ? "proxied" : "direct";
      console.error(`round ${r + 1}: dnsperf, ${key}`);
      const marker = `m${r}${key}.bench.test`;
      await runIn(l.b, cg.dir, ["dig", "+tries=1", "+time=2", `@${l.v4.a}`, marker, "A"]);
      const profiling =
        PROFILE && where !== null && r === 0
          ? runIn(l.b, null, [
              NODE,
              `${ROOT}bench/cpu-profile.ts`,
              String(INSPECT_PORT),
              String(DNSPERF_SECONDS - 3),
              `${ROOT}bench/results/dns-daemon.cpuprofile`,
            ])
          : null;
      perf[key] = await dnsperf(l, where, queries, upstream?.proc.pid);
      if (profiling) console.error((await profiling).stderr);
      checkAnswers(`dnsperf ${key}`, perf[key].rcodes, perf[key].lost);
      // what the proxy saw during the run: the history's newest events after the marker
      await sleep(1500);
      const seen = await proxiedSince(l, marker);
      const ofDnsperf = (seen ?? (await storedDns(l, 200))).filter(
        (e) => e.process?.name === "dnsperf",
      );
      if (where === null && (seen === null || ofDnsperf.length > 0))
        throw new Error(`direct dnsperf went through the proxy (${ofDnsperf.length} events)`);
      if (where !== null) {
        const bound = ofDnsperf.filter((e) => e.dns?.trusted && (e.dns.names?.length ?? 0) > 0);
        if (bound.length === 0) throw new Error("proxied dnsperf: no bound answers in the history");
      }
    }
    rounds.push({
      direct: lat.direct as Latency,
      proxied: lat.proxied as Latency,
      perfDirect: perf.direct as Perf,
      perfProxied: perf.proxied as Perf,
    });
  }

  const med = (f: (x: (typeof rounds)[number]) => number) => median(rounds.map(f));
  const summary = {
    p50DirectUs: med((x) => x.direct.p50),
    p50ProxiedUs: med((x) => x.proxied.p50),
    p50AddedUs: med((x) => x.proxied.p50 - x.direct.p50),
    p99DirectUs: med((x) => x.direct.p99),
    p99ProxiedUs: med((x) => x.proxied.p99),
    p99AddedUs: med((x) => x.proxied.p99 - x.direct.p99),
    qpsDirect: med((x) => x.perfDirect.qps),
    qpsProxied: med((x) => x.perfProxied.qps),
    qpsRatio: med((x) => x.perfProxied.qps / x.perfDirect.qps),
    dnsperfMeanDirectUs: med((x) => x.perfDirect.meanUs),
    daemonCpuUsPerProxiedQuery: med((x) => x.perfProxied.daemonCpuUsPerQuery),
    dnsmasqCpuUsPerQuery: med((x) => x.perfDirect.dnsmasqCpuUsPerQuery),
    dnsperfMeanProxiedUs: med((x) => x.perfProxied.meanUs),
  };
  console.log(
    "| round | p50 direct / proxied us | p99 direct / proxied us | qps direct / proxied | CPU us/query: dnsmasq / moat |",
  );
  console.log("|---:|---|---|---|---|");
  rounds.forEach((x, i) =>
    console.log(
      `| ${i + 1} | ${x.direct.p50.toFixed(0)} / ${x.proxied.p50.toFixed(0)} | ${x.direct.p99.toFixed(0)} / ${x.proxied.p99.toFixed(0)} | ${x.perfDirect.qps.toFixed(0)} / ${x.perfProxied.qps.toFixed(0)} | ${x.perfDirect.dnsmasqCpuUsPerQuery.toFixed(1)} / ${x.perfProxied.daemonCpuUsPerQuery.toFixed(0)} |`,
    ),
  );
  console.log(JSON.stringify(summary, null, 2));
  writeResult(BLOCKLIST > 0 ? `dns-blocklist-${BLOCKLIST}` : "dns", {
    names: NAMES,
    latencyQueries: LATENCY_QUERIES,
    dnsperfSeconds: DNSPERF_SECONDS,
    summary,
    rounds,
    proxyLog: l.daemon.lines.filter((x) => /dns/i.test(x)).slice(-20),
  });
} finally {
  upstream?.kill("SIGKILL");
  await lab?.close();
  cg.remove();
  rmSync(work, { recursive: true, force: true });
}

/** One query from outside the cgroup: true once dnsmasq answers NOERROR. */
async function latencyOnce(l: MoatLab): Promise<boolean> {
  const r = await runIn(l.b, null, [
    "dig",
    "+tries=1",
    "+time=1",
    "+short",
    `@${l.v4.a}`,
    nameOf(0),
  ]);
  return r.status === 0 && r.stdout.trim() === addressOf(0);
}
