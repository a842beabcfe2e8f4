// B7's CPU side alone: the daemon's CPU per relayed HTTP request and per TLS handshake (certificate
// cached), warm (the client's executable already hashed, the certificate probed), split by thread
// and into user and system time; no direct or HAProxy path, no transfer. Quicker than
// bench/l7.ts, for before/after comparisons of the relay's per-connection cost.
//
//   node bench/l7-cpu.ts [--rounds=N] [--profile=OUT.cpuprofile] [--perf=OUT.data] [--strace]
//     --profile: the daemon's CPU profile (inspector) during the last round's requests and
//                handshakes (the inspector's sampling doubles the daemon's CPU and skews it
//                towards small JS functions)
//     --perf:    `perf record -g` of the daemon (started with --perf-basic-prof) during the last
//                round's requests (OUT.data) and handshakes (OUT.data.tls): the undistorted split
//     --strace:  strace -c -f of the daemon during the last round's requests (slows them down)
//     --idle=S:  with --loop, first the loop of the warm daemon left idle for S seconds (its
//                periodic work alone)
//     --nice=N:  the daemon's threads at nice N (how much of the tail is waiting for a CPU)
//     --strace-slow: the main thread's system calls that took over 1 ms (epoll waits aside)
//                during the last round's requests, with their wall-clock time
//     --loop:    the daemon's event-loop delay (bench/loop-probe.ts) during each round's requests
//                and handshakes: percentiles, its stalls over 2 ms, GC pauses, and which of the
//                client's slow connections (over 4 ms) overlapped a stall
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LineChild } from "../test/helpers/child.ts";
import { testCgroup } from "../test/helpers/cgroup-run.ts";
import { startMoatLab, type MoatLab } from "../test/helpers/moat-lab.ts";
import { NODE, ROOT } from "../test/helpers/paths.ts";
import { formatWindow, probeEnv, probeRead, probeReset, type Samples } from "./loop-probe-read.ts";
import { benchCertificate, l7Client, l7Policy, SNI, startL7Server } from "./l7-lab.ts";
import { runIn } from "./ns-run.ts";
import { median } from "./results.ts";

const arg = (name: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const ROUNDS = Number(arg("rounds") ?? 3);
const PROFILE = arg("profile");
const STRACE = process.argv.includes("--strace");
const STRACE_SLOW = process.argv.includes("--strace-slow");
const PERF = arg("perf");
const LOOP = process.argv.includes("--loop");
const NICE = arg("nice");
const IDLE = Number(arg("idle") ?? 0);
const INSPECT_PORT = 9249;
const REQUESTS = 500;
const HANDSHAKES = 300;
const WARMUP = 20;

const TICKS = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
/** user and system µs of each thread name of a process. */
function threads(pid: number): Record<string, { user: number; sys: number }> {
  const out: Record<string, { user: number; sys: number }> = {};
  for (const tid of execFileSync("ls", [`/proc/${pid}/task`], { encoding: "utf8" }).split(/\s+/)) {
    if (!tid) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const t = (out[name] ??= { user: 0, sys: 0 });
      t.user += (Number(f[11]) * 1e6) / TICKS;
      t.sys += (Number(f[12]) * 1e6) / TICKS;
    } catch {
      // ended
    }
  }
  return out;
}
function diff(a: ReturnType<typeof threads>, b: ReturnType<typeof threads>, n: number) {
  const out: Record<string, string> = {};
  let user = 0;
  let sys = 0;
  for (const [name, t] of Object.entries(b)) {
    const u = (t.user - (a[name]?.user ?? 0)) / n;
    const s = (t.sys - (a[name]?.sys ?? 0)) / n;
    user += u;
    sys += s;
    if (u + s > 1) out[name] = `${u.toFixed(0)}+${s.toFixed(0)}`;
  }
  return { total: user + sys, user, sys, threads: out };
}

const p = (us: number[], q: number): number =>
  [...us].sort((a, b) => a - b)[Math.floor(q * (us.length - 1))] ?? 0;

const work = mkdtempSync(join(tmpdir(), "moat-b7cpu-"));
const cg = testCgroup("l7cpu");
const probeFile = join(work, "loop.json");
const probeResetIf = () => (LOOP ? probeReset(probeFile) : Promise.resolve());
let lab: MoatLab | null = null;
const children: LineChild[] = [];
try {
  const certificate = benchCertificate(work);
  lab = await startMoatLab("bench-l7cpu", (l) => l7Policy(l, cg.cgroup), [], {
    beforeDaemon: () => {
      if (PROFILE) process.env.NODE_OPTIONS = `--inspect=127.0.0.1:${INSPECT_PORT}`;
      if (PERF) process.env.NODE_OPTIONS = "--perf-basic-prof";
      if (LOOP) probeEnv(probeFile);
      return Promise.resolve();
    },
  });
  delete process.env.NODE_OPTIONS;
  delete process.env.MOAT_LOOP_PROBE;
  const l = lab;
  await startL7Server(l, certificate, children);
  const pid = l.daemon.proc.pid!;
  // setpriority on a pid sets one thread's nice: each of the daemon's threads
  if (NICE)
    for (const tid of execFileSync("ls", [`/proc/${pid}/task`], { encoding: "utf8" }).split(/\s+/))
      if (tid) execFileSync("renice", ["-n", NICE, "-p", tid], { stdio: "ignore" });
  const http = ["http", l.v4.a, "80", String(REQUESTS)];
  const tls = ["tls", l.v4.a, "443", SNI, String(HANDSHAKES)];
  // warm: the client's executable hashed, the certificate probed and cached
  for (let i = 0; i < 2; i++) {
    await l7Client<Samples>(l, cg.dir, ["http", l.v4.a, "80", "200"]);
    await l7Client<Samples>(l, cg.dir, ["tls", l.v4.a, "443", SNI, "200"]);
  }
  if (LOOP && IDLE > 0) {
    await probeReset(probeFile);
    await new Promise((res) => setTimeout(res, IDLE * 1000));
    console.log(
      `idle ${IDLE} s: ${formatWindow(await probeRead(probeFile, { us: [], slow: [] }))}`,
    );
  }
  const rows: { http: number; tls: number }[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const profiling =
      PROFILE && r === ROUNDS - 1
        ? runIn(l.b, null, [
            NODE,
            `${ROOT}bench/cpu-profile.ts`,
            String(INSPECT_PORT),
            "8",
            PROFILE,
          ])
        : null;
    const strace =
      (STRACE || STRACE_SLOW) && r === ROUNDS - 1
        ? spawn(
            "strace",
            STRACE
              ? ["-c", "-f", "-p", String(pid), "-o", `${work}/strace.txt`]
              : [
                  "-T",
                  "-tt",
                  "-e",
                  "trace=!epoll_pwait,epoll_wait",
                  "-p",
                  String(pid),
                  "-o",
                  `${work}/strace.txt`,
                ],
          )
        : null;
    const perf =
      PERF && r === ROUNDS - 1
        ? spawn("perf", ["record", "-F", "2000", "-g", "-p", String(pid), "-o", PERF], {
            stdio: "ignore",
          })
        : null;
    if (profiling || strace || perf) await new Promise((res) => setTimeout(res, 500));
    await probeResetIf();
    const t0 = threads(pid);
    const hs = await l7Client<Samples>(l, cg.dir, http);
    const h = hs.us;
    const t1 = threads(pid);
    if (LOOP) console.log(`round ${r + 1} HTTP: ${formatWindow(await probeRead(probeFile, hs))}`);
    if (strace) {
      strace.kill("SIGINT");
      await new Promise((res) => strace.once("close", res));
      const lines = readFileSync(`${work}/strace.txt`, "utf8").split("\n");
      const slowCalls = lines.filter((x) => Number(/<([\d.]+)>$/.exec(x)?.[1] ?? 0) > 0.001);
      console.log((STRACE ? lines.slice(0, 30) : slowCalls).join("\n"));
    }
    const perfTls =
      PERF && r === ROUNDS - 1
        ? spawn("perf", ["record", "-F", "2000", "-g", "-p", String(pid), "-o", `${PERF}.tls`], {
            stdio: "ignore",
          })
        : null;
    if (perf) {
      perf.kill("SIGINT");
      await new Promise((res) => perf.once("close", res));
    }
    await probeResetIf();
    const t1b = threads(pid);
    const ts = await l7Client<Samples>(l, cg.dir, tls);
    const t = ts.us;
    const t2 = threads(pid);
    if (LOOP) console.log(`round ${r + 1} TLS: ${formatWindow(await probeRead(probeFile, ts))}`);
    if (perfTls) {
      perfTls.kill("SIGINT");
      await new Promise((res) => perfTls.once("close", res));
    }
    if (profiling) console.error((await profiling).stderr);
    const dh = diff(t0, t1, REQUESTS + WARMUP);
    const dt = diff(t1b, t2, HANDSHAKES + WARMUP);
    rows.push({ http: dh.total, tls: dt.total });
    console.log(
      `round ${r + 1}: HTTP ${dh.total.toFixed(0)} µs/request (user ${dh.user.toFixed(0)}, sys ${dh.sys.toFixed(0)}; ${JSON.stringify(dh.threads)}) p50/p99 ${p(h, 0.5).toFixed(0)}/${p(h, 0.99).toFixed(0)} µs; ` +
        `TLS ${dt.total.toFixed(0)} µs/handshake (user ${dt.user.toFixed(0)}, sys ${dt.sys.toFixed(0)}; ${JSON.stringify(dt.threads)}) p50/p99 ${p(t, 0.5).toFixed(0)}/${p(t, 0.99).toFixed(0)} µs`,
    );
  }
  console.log(
    JSON.stringify({
      cpuUsPerRequest: median(rows.map((x) => x.http)),
      cpuUsPerHandshake: median(rows.map((x) => x.tls)),
    }),
  );
} finally {
  for (const c of children) c.kill("SIGKILL");
  await lab?.close();
  cg.remove();
  rmSync(work, { recursive: true, force: true });
}
