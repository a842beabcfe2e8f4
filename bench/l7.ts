// B7 (docs/performance.md): what moat's L7 relay adds to a connection, and what a long transfer
// keeps once the relay has spliced it. A network-namespace lab: bench/l7-server.ts in namespace a
// serves HTTP (80) and HTTPS (443); the moat daemon runs in namespace b with a policy whose
// `web` and `tls` rules judge HTTP requests and TLS handshakes, so connections of processes under
// attach.cgroup to a's ports 80 and 443 go to the relay. In the same run, from namespace b:
//   direct    the client outside the attached cgroup, straight to the server (the floor)
//   relayed   the same client inside the attached cgroup: judged by moat's relay
//   haproxy   the client outside the cgroup through HAProxy on b's loopback (HTTP mode for
//             port 80, TCP mode for 443), the peer proxy
// Measured (bench/l7-client.ts, a new connection each time): a small HTTP request, p50/p99; a
// TLS 1.3 handshake whose certificate moat has cached (the relay judges `certificate`), p50/p99;
// the same with a new SNI each time (a certificate-cache miss: moat's probe handshake first);
// and a 1 GB transfer over TLS after the handshake (MB/s), with the daemon's CPU time during it.
// Rounds alternate the order of the paths. The daemon's CPU time is read during the relayed
// requests and handshakes too (per connection).
//
//   node bench/l7.ts [--rounds=N] [--profile] [--loop]   writes bench/results/l7.json (3 rounds)
//                    (--profile: the daemon's CPU profile during round 1's relayed requests and
//                    handshakes, bench/results/l7-daemon.cpuprofile; --loop: the daemon's
//                    event-loop delay during the relayed requests and handshakes, with
//                    bench/loop-probe.ts)
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnLines, type LineChild } from "../test/helpers/child.ts";
import { testCgroup } from "../test/helpers/cgroup-run.ts";
import { startMoatLab, type MoatLab } from "../test/helpers/moat-lab.ts";
import { NODE, ROOT } from "../test/helpers/paths.ts";
import {
  formatWindow,
  probeEnv,
  probeRead,
  probeReset,
  type LoopWindow,
  type Samples,
} from "./loop-probe-read.ts";
import { benchCertificate, l7Client, l7Policy, SNI, startL7Server } from "./l7-lab.ts";
import { runIn } from "./ns-run.ts";
import { cpuUs } from "./proc-cpu.ts";
import { median, quantile, writeResult } from "./results.ts";

const ROUNDS = Number(
  /^--rounds=(\d+)$/.exec(process.argv.find((a) => a.startsWith("--rounds=")) ?? "")?.[1] ?? 3,
);
const PROFILE = process.argv.includes("--profile");
const LOOP = process.argv.includes("--loop");
const INSPECT_PORT = 9249;
const REQUESTS = 500;
const HANDSHAKES = 300;
/** bench/l7-client.ts's warm-up connections before it measures. */
const WARMUP = 20;
const MISSES = 100;
const TRANSFER_BYTES = 1e9;
const HAPROXY_HTTP = 8080;
const HAPROXY_TLS = 8443;
const PATHS = ["direct", "relayed", "haproxy"] as const;
type Path = (typeof PATHS)[number];

interface Spread {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  n: number;
}
const spread = (us: number[]): Spread => {
  const s = [...us].sort((a, b) => a - b);
  const q = (x: number) => quantile(s, x);
  return { p50: q(0.5), p90: q(0.9), p99: q(0.99), max: s.at(-1) ?? 0, n: s.length };
};

/** Host, ports and cgroup of one path. */
function route(
  lab: MoatLab,
  path: Path,
  cgroupDir: string,
): { host: string; http: number; tls: number; where: string | null } {
  if (path === "haproxy")
    return { host: "127.0.0.1", http: HAPROXY_HTTP, tls: HAPROXY_TLS, where: null };
  return { host: lab.v4.a, http: 80, tls: 443, where: path === "relayed" ? cgroupDir : null };
}

function haproxyConfig(server: string): string {
  return `global
  maxconn 4096
defaults
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend http
  bind 127.0.0.1:${HAPROXY_HTTP}
  mode http
  default_backend web
backend web
  mode http
  server a ${server}:80
frontend tls
  bind 127.0.0.1:${HAPROXY_TLS}
  mode tcp
  default_backend tls
backend tls
  mode tcp
  server a ${server}:443
`;
}

const work = mkdtempSync(join(tmpdir(), "moat-b7-"));
const probeFile = join(work, "loop.json");
// --profile writes its profile there before the results
mkdirSync(`${ROOT}bench/results`, { recursive: true });
const cg = testCgroup("l7bench");
let lab: MoatLab | null = null;
const children: LineChild[] = [];
try {
  const certificate = benchCertificate(work);
  // --profile: the daemon's inspector listens on its namespace's loopback; profiling starts only
  // once it runs (the profiler's signals would break loading the BPF programs)
  lab = await startMoatLab("bench-l7", (l) => l7Policy(l, cg.cgroup), [], {
    beforeDaemon: () => {
      if (PROFILE) process.env.NODE_OPTIONS = `--inspect=127.0.0.1:${INSPECT_PORT}`;
      if (LOOP) probeEnv(probeFile);
      return Promise.resolve();
    },
  });
  delete process.env.NODE_OPTIONS;
  delete process.env.MOAT_LOOP_PROBE;
  const l = lab;
  await startL7Server(l, certificate, children);
  const haproxyCfg = join(work, "haproxy.cfg");
  writeFileSync(haproxyCfg, haproxyConfig(l.v4.a));
  children.push(spawnLines("ip", ["netns", "exec", l.b, "haproxy", "-db", "-f", haproxyCfg]));
  for (let i = 0; ; i++) {
    const r = await runIn(l.b, null, [
      "curl",
      "-s",
      "-m",
      "2",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      `http://127.0.0.1:${HAPROXY_HTTP}/small`,
    ]);
    if (r.stdout === "200") break;
    if (i > 50) throw new Error("haproxy does not answer");
    await new Promise((r) => setTimeout(r, 100));
  }
  // nsenter execs bin/moat, which execs node: the same pid is the daemon
  const daemonPid = l.daemon.proc.pid;

  type Round = Record<
    Path,
    {
      http: Spread;
      tls: Spread;
      miss?: Spread;
      mbps: number;
      daemonCpuS?: number;
      /** The daemon's CPU per relayed request / handshake (µs). */
      cpuPerConnectionUs?: { http: number; tls: number };
      /** --loop: the daemon's event loop during the relayed requests / handshakes. */
      loop?: { http: LoopWindow; tls: LoopWindow };
    }
  >;
  // the relayed path warm before anything is measured: the client's executable hashed once (moat
  // reads the 126 MB node binary behind a new process's first connection), the certificate
  // probed and cached, the daemon's code compiled; else round 1's relayed figures carry them
  const relayedRoute = route(l, "relayed", cg.dir);
  for (let i = 0; i < 2; i++) {
    await l7Client(l, relayedRoute.where, ["http", relayedRoute.host, "80", String(200)]);
    await l7Client(l, relayedRoute.where, ["tls", relayedRoute.host, "443", SNI, String(200)]);
  }
  const rounds: Round[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? PATHS : [...PATHS].reverse();
    const round: Partial<Round> = {};
    for (const path of order) {
      const to = route(l, path, cg.dir);
      console.error(`round ${r + 1}: ${path}`);
      const profiling =
        PROFILE && path === "relayed" && r === 0
          ? runIn(l.b, null, [
              NODE,
              `${ROOT}bench/cpu-profile.ts`,
              String(INSPECT_PORT),
              "6",
              `${ROOT}bench/results/l7-daemon.cpuprofile`,
            ])
          : null;
      const probing = LOOP && path === "relayed";
      if (probing) await probeReset(probeFile);
      const cpuHttp0 = cpuUs(daemonPid);
      const httpSamples = await l7Client<Samples>(l, to.where, [
        "http",
        to.host,
        String(to.http),
        String(REQUESTS),
      ]);
      const http = spread(httpSamples.us);
      const cpuTls0 = cpuUs(daemonPid);
      const loopHttp = probing ? await probeRead(probeFile, httpSamples) : null;
      if (probing) await probeReset(probeFile);
      const cpuTls0b = cpuUs(daemonPid);
      const tlsSamples = await l7Client<Samples>(l, to.where, [
        "tls",
        to.host,
        String(to.tls),
        SNI,
        String(HANDSHAKES),
      ]);
      const tls = spread(tlsSamples.us);
      const cpuTls1 = cpuUs(daemonPid);
      const loopTls = probing ? await probeRead(probeFile, tlsSamples) : null;
      const loop = loopHttp && loopTls ? { http: loopHttp, tls: loopTls } : undefined;
      if (loop) console.error(`HTTP: ${formatWindow(loop.http)}\nTLS: ${formatWindow(loop.tls)}`);
      if (profiling) console.error((await profiling).stderr);
      const cpuPerConnectionUs =
        path === "relayed"
          ? {
              http: (cpuTls0 - cpuHttp0) / (REQUESTS + WARMUP),
              tls: (cpuTls1 - cpuTls0b) / (HANDSHAKES + WARMUP),
            }
          : undefined;
      const miss =
        path === "relayed"
          ? spread(
              (
                await l7Client<Samples>(l, to.where, [
                  "tls",
                  to.host,
                  String(to.tls),
                  SNI,
                  String(MISSES),
                  "fresh",
                ])
              ).us,
            )
          : undefined;
      const cpu0 = cpuUs(daemonPid);
      const { mbps } = await l7Client<{ mbps: number }>(l, to.where, [
        "transfer",
        to.host,
        String(to.tls),
        String(TRANSFER_BYTES),
        "tls",
        SNI,
      ]);
      const daemonCpuS = path === "relayed" ? (cpuUs(daemonPid) - cpu0) / 1e6 : undefined;
      round[path] = { http, tls, miss, mbps, daemonCpuS, cpuPerConnectionUs, loop };
    }
    rounds.push(round as Round);
  }
  const med = (f: (x: Round) => number) => median(rounds.map(f));
  const summary = {
    httpP50AddedUs: med((x) => x.relayed.http.p50 - x.direct.http.p50),
    httpP90AddedUs: med((x) => x.relayed.http.p90 - x.direct.http.p90),
    httpP99AddedUs: med((x) => x.relayed.http.p99 - x.direct.http.p99),
    httpMaxAddedUs: med((x) => x.relayed.http.max - x.direct.http.max),
    haproxyHttpP50AddedUs: med((x) => x.haproxy.http.p50 - x.direct.http.p50),
    haproxyHttpP99AddedUs: med((x) => x.haproxy.http.p99 - x.direct.http.p99),
    tlsP50AddedUs: med((x) => x.relayed.tls.p50 - x.direct.tls.p50),
    tlsP90AddedUs: med((x) => x.relayed.tls.p90 - x.direct.tls.p90),
    tlsP99AddedUs: med((x) => x.relayed.tls.p99 - x.direct.tls.p99),
    tlsMaxAddedUs: med((x) => x.relayed.tls.max - x.direct.tls.max),
    haproxyTlsP50AddedUs: med((x) => x.haproxy.tls.p50 - x.direct.tls.p50),
    haproxyTlsP99AddedUs: med((x) => x.haproxy.tls.p99 - x.direct.tls.p99),
    tlsMissP50AddedUs: med((x) => (x.relayed.miss?.p50 ?? 0) - x.direct.tls.p50),
    mbpsDirect: med((x) => x.direct.mbps),
    mbpsRelayed: med((x) => x.relayed.mbps),
    mbpsHaproxy: med((x) => x.haproxy.mbps),
    relayedShareOfDirect: med((x) => x.relayed.mbps / x.direct.mbps),
    haproxyShareOfDirect: med((x) => x.haproxy.mbps / x.direct.mbps),
    daemonCpuSecondsPerGB: med((x) => x.relayed.daemonCpuS ?? 0),
    daemonCpuUsPerRequest: med((x) => x.relayed.cpuPerConnectionUs?.http ?? 0),
    daemonCpuUsPerHandshake: med((x) => x.relayed.cpuPerConnectionUs?.tls ?? 0),
    loopDelayMs: LOOP
      ? Object.fromEntries(
          (["http", "tls"] as const).flatMap((k) =>
            ["p50", "p90", "p99", "max"].map((q) => [
              `${k}${q}`,
              med((x) => x.relayed.loop?.[k].delayMs[q] ?? 0),
            ]),
          ),
        )
      : undefined,
  };
  console.log(
    "| round | HTTP p50/p99 µs: direct / relayed / haproxy | TLS p50/p99 µs: direct / relayed / haproxy | TLS miss p50/p99 | MB/s: direct / relayed / haproxy | daemon CPU s / GB | daemon CPU µs / request, handshake |",
  );
  console.log("|---:|---|---|---|---|---:|---:|");
  const pp = (s: Spread) => `${s.p50.toFixed(0)}/${s.p99.toFixed(0)}`;
  rounds.forEach((x, i) =>
    console.log(
      `| ${i + 1} | ${pp(x.direct.http)} / ${pp(x.relayed.http)} / ${pp(x.haproxy.http)} | ${pp(x.direct.tls)} / ${pp(x.relayed.tls)} / ${pp(x.haproxy.tls)} | ${x.relayed.miss ? pp(x.relayed.miss) : "-"} | ${x.direct.mbps.toFixed(0)} / ${x.relayed.mbps.toFixed(0)} / ${x.haproxy.mbps.toFixed(0)} | ${(x.relayed.daemonCpuS ?? 0).toFixed(2)} | ${(x.relayed.cpuPerConnectionUs?.http ?? 0).toFixed(0)}, ${(x.relayed.cpuPerConnectionUs?.tls ?? 0).toFixed(0)} |`,
    ),
  );
  console.log(JSON.stringify(summary, null, 2));
  writeResult("l7", {
    requests: REQUESTS,
    handshakes: HANDSHAKES,
    misses: MISSES,
    transferBytes: TRANSFER_BYTES,
    summary,
    rounds,
    relayLog: l.daemon.lines.filter((x) => /relay|l7/i.test(x)).slice(-20),
  });
} finally {
  for (const c of children) c.kill("SIGKILL");
  await lab?.close();
  cg.remove();
  rmSync(work, { recursive: true, force: true });
}
