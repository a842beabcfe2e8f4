// B9's proxy alone (docs/performance.md): moat's DNS proxy in this process, with the real policy
// judge and no kernel (the client's record and the bindings map are stand-ins; events are kept
// or dropped); a local DNS server and the client in processes of their own
// (bench/dns-proxy-peer.ts). Two modes:
//
//   node bench/dns-proxy-cpu.ts [--root=DIR] [--seconds=5]   the CPU of this process per query,
//        50 queries outstanding, after a 3 s warm-up (the JIT)
//   node bench/dns-proxy-cpu.ts [--root=DIR] --alloc         the bytes the JavaScript heap takes
//        per query in the same window (V8's sampling heap profiler, objects collected since
//        included): steadier than the CPU on a busy machine; the CPU figure is then left out
//   node bench/dns-proxy-cpu.ts [--root=DIR] --sequence      600 fixed queries one at a time on
//        a fixed clock: digests of the answers, events (times and ports left out) and bindings,
//        to compare two trees' proxies (the same digests: the same answers, events, bindings)
//
// --root: the tree whose src/dns is measured (default: this one), e.g. a copy of an older commit.
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { daemonStandIns } from "../test/helpers/dns-proxy-stand-ins.ts";
import { NODE, ROOT } from "../test/helpers/paths.ts";

const arg = (name: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const root = (arg("root") ?? ROOT).replace(/\/?$/, "/");
const seconds = Number(arg("seconds") ?? 5);
const sequence = process.argv.includes("--sequence");
const alloc = process.argv.includes("--alloc") || arg("alloc") !== undefined;
/** --alloc=FILE: the sampled allocation profile is also written there (for DevTools). */
const allocFile = arg("alloc");

interface SampledNode {
  selfSize: number;
  callFrame: { url: string };
  children: SampledNode[];
}

/**
 * Starts V8's sampling heap profiler on this thread; `stop` gives the bytes allocated since (an
 * estimate from samples every 128 bytes on average), in all and by moat's DNS code (src/dns/).
 */
async function allocationSampling(): Promise<{ stop(): Promise<{ all: number; dns: number }> }> {
  const session = new Session();
  session.connect();
  await session.post("HeapProfiler.startSampling", {
    samplingInterval: 128,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  return {
    async stop() {
      const { profile } = (await session.post("HeapProfiler.stopSampling")) as {
        profile: { head: SampledNode };
      };
      session.disconnect();
      if (allocFile) writeFileSync(allocFile, JSON.stringify(profile));
      const sum = { all: 0, dns: 0 };
      const walk = (n: SampledNode) => {
        sum.all += n.selfSize;
        if (n.callFrame.url.includes("/src/dns/")) sum.dns += n.selfSize;
        for (const c of n.children) walk(c);
      };
      walk(profile.head);
      return sum;
    },
  };
}

const dns = (await import(`${root}src/dns/index.ts`)) as typeof import("../src/dns/index.ts");
const config = (await import(
  `${root}src/config/index.ts`
)) as typeof import("../src/config/index.ts");

const POLICY = `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
rules:
  - name: no-ads
    direction: egress
    action: block
    layer7: { dns: { name: [ads.moat.test] } }
`;
const model = config.checkPolicySource(POLICY, "policy.yaml", config.textOnlyHost).model;
if (!model) throw new Error("the bench's policy does not check");
const judge = dns.policyJudge(() => model);

function peer(args: string[]): { child: ChildProcess; line: Promise<string> } {
  const child = spawn(
    NODE,
    ["--disable-warning=ExperimentalWarning", `${ROOT}bench/dns-proxy-peer.ts`, ...args],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const line = new Promise<string>((resolve) => {
    let out = "";
    child.stdout?.on("data", (d: Buffer) => {
      out += String(d);
      if (out.includes("\n")) resolve(out.trim());
    });
  });
  return { child, line };
}

const server = peer(["upstream"]);
const serverPort = Number(await server.line);
const owner = {
  pid: 4321,
  uid: 1000,
  cgroupId: 77n,
  comm: "dig",
  exeIno: 123456n,
  exeDev: 0x800001,
};
const events: unknown[] = [];
const written: unknown[] = [];
const start = process.hrtime.bigint();
const proxy = await dns.DnsProxy.open({
  original: () => ({ original: { ip: "127.0.0.1", port: serverPort }, owner }),
  binder: {
    bindNames: (bindings) => {
      if (sequence) written.push(...bindings);
      return { written: bindings.length, full: 0 };
    },
    unbindNames: () => {},
    // a fixed clock in the sequence: both trees' expiries are the same
    monotonicNs: () => (sequence ? 1_000_000_000_000n : process.hrtime.bigint() - start),
  },
  // judged as asked of port 53 off this host (the local server is neither)
  judge: (facts) => judge({ ...facts, remote: { ...facts.remote, ip: "192.0.2.53", port: 53 } }),
  ...daemonStandIns("/usr/bin/dig"),
  report: (e) => {
    if (sequence) events.push(e);
  },
  log: (line) => console.error(line),
  settings: { resolvers: [], minTtlSeconds: 5, graceSeconds: 30, doh: "block", ech: "keep" },
});
proxy.setClasses((names) => (names.some((n) => n.endsWith("bench.test")) ? 3 : 0));
const port = String(proxy.addresses().udp.port);

const text = (x: unknown) =>
  JSON.stringify(x, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v));
const digest = (s: string) => createHash("sha256").update(s).digest("hex").slice(0, 16);
try {
  if (sequence) {
    const answers = await peer(["sequence", port]).line;
    const stable = events.map((e) => ({ ...(e as object), time: "", local: null, remote: null }));
    console.log(
      `answers ${digest(answers)} events ${digest(text(stable))} bindings ${digest(text(written))}` +
        ` (${events.length} events, ${written.length} bindings, ${JSON.stringify(proxy.stats)})`,
    );
  } else {
    await peer(["load", port, "3"]).line;
    const sampling = alloc ? await allocationSampling() : null;
    const cpu0 = process.cpuUsage();
    const answered = Number(await peer(["load", port, String(seconds)]).line);
    const cpu = process.cpuUsage(cpu0);
    const per = (us: number) => (us / answered).toFixed(1);
    if (sampling) {
      const bytes = await sampling.stop();
      const kib = (b: number) => (b / answered / 1024).toFixed(2);
      console.log(
        `${answered} queries in ${seconds} s: ${kib(bytes.all)} KiB allocated a query (${kib(bytes.dns)} KiB of it in src/dns)`,
      );
    } else
      console.log(
        `${answered} queries in ${seconds} s: ${per(cpu.user + cpu.system)} us of CPU a query (user ${per(cpu.user)}, system ${per(cpu.system)})`,
      );
  }
} finally {
  proxy.close();
  server.child.kill();
}
