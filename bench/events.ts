// B6 (docs/performance.md): the event pipeline, kernel -> ring buffer -> decode ->
// audit log + SQLite history + one live API subscriber (SSE, in another process), built from the
// daemon's own pieces as src/daemon.ts wires them. Events are real kernel events: test runs of
// the XDP program on the libuv pool (the event loop keeps draining meanwhile) with the bench
// knobs bench_keys = 4096, bench_fresh = 1, so every run is a new connection the policy blocks,
// one "blocked" event each. What was generated is the kernel's own count (counter blocked).
//
// Floor: the raw drain (a Datapath.subscribe callback that only counts). Then offered rates rise
// until something is lost, then the highest lossless rate again for SUSTAIN_S (the bar asks for
// 60 s; B6_SUSTAIN_S and B6_SUSTAIN_RATE set its length and rate; a minute that loses is tried
// again a step below the rate reached, up to three minutes), then an overload (the
// generator flat out). Every phase accounts for
// each generated event exactly: delivered to the pipeline or counted lost in the ring (eventLost),
// and for each sink delivered or dropped; the SSE client's count equals its sink's deliveries.
//
//   node bench/events.ts            writes bench/results/events.json
//   B6_SINKS=api node bench/events.ts  the API subscriber without the audit and history sinks
//                                   (a comma list of audit, history; the subscriber is always
//                                   there): what one sink keeps up with beside the others
//   node bench/events.ts --profile  also the CPU profiles of the event loop and of the history's
//                                   thread during the rising rates,
//                                   bench/results/events-main.cpuprofile and
//                                   events-history.cpuprofile (taken through the inspector once
//                                   the datapath is loaded: the profiler's signals make the
//                                   kernel's verifier fail with EAGAIN)
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parsePolicy } from "../src/config/index.ts";
import { Datapath } from "../src/datapath/datapath.ts";
import { decodeEvent } from "../src/datapath/events.ts";
import { compile } from "../src/policy/compile/compile.ts";
import { EventPipeline } from "../src/observe/pipeline.ts";
import { auditSink } from "../src/observe/audit-sink.ts";
import { HISTORY_LINGER_MS, historySink } from "../src/observe/history/sink.ts";
import { HistoryWorker } from "../src/observe/history/remote.ts";
import { snapshotSource } from "../src/observe/snapshot.ts";
import type { EventSink } from "../src/observe/sink.ts";
import { startApi } from "../src/api/server.ts";
import type { ApiControl } from "../src/api/control.ts";
import { packet } from "../test/helpers/packets.ts";
import { anchorXdp } from "../test/helpers/xdp-anchor.ts";
import { writeResult } from "./results.ts";

const RATES = [25_000, 50_000, 75_000, 100_000, 150_000, 200_000, 300_000, 400_000, 500_000];
const PHASE_S = 4;
/** The highest lossless rate is offered again this long (B6's bar: 60 s without loss). */
const SUSTAIN_S = Number(process.env.B6_SUSTAIN_S ?? 60);
/** The rate offered for SUSTAIN_S (default: the highest the rising rates found lossless). */
const SUSTAIN_RATE = Number(process.env.B6_SUSTAIN_RATE ?? 0);
/** Sustained minutes at most, each a step lower than the one that lost (none with B6_SUSTAIN_RATE). */
const SUSTAIN_TRIES = 3;
const OVERLOAD_S = 5;
/** The sinks beside the API subscriber (B6: both). */
const SINKS = (process.env.B6_SINKS ?? "audit,history").split(",");
/** Pacing step: one test run carries this much of a second's events. */
const STEP_S = 0.01;
const FLAT_OUT_CHUNK = 20_000;
const QUIET_TIMEOUT_MS = 60_000;

const tmp = mkdtempSync(join(tmpdir(), "moat-b6-"));
const policy = parsePolicy(
  "version: 1\nmode: prevent\ndefaults: { ingress: block, egress: allow }\n",
  "bench.yaml",
);
const image = compile(policy);
const dp = Datapath.start({
  interfaces: [],
  pinRoot: null,
  image: { packet: image },
  globals: { bench_keys: 4096, bench_fresh: 1 },
});
const anchor = anchorXdp(dp.xdp);
const profiling = process.argv.includes("--profile");
const inspector = profiling ? new Session() : null;
if (inspector) {
  inspector.connect();
  await inspector.post("Profiler.enable");
}
const syn = packet({
  src: "192.0.2.1",
  dst: "10.0.0.1",
  proto: "tcp",
  sport: 1000,
  dport: 8080,
  flags: "S",
});
const round2 = (n: number) => Math.round(n * 100) / 100;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A test run on the pool; a signal (EINTR) cuts long ones short, the kernel counts what ran. */
async function run(repeat: number): Promise<void> {
  try {
    await dp.xdp.testRunAsync({ data: syn, repeat });
  } catch (err) {
    if ((err as { code?: string }).code !== "EINTR") throw err;
  }
}

/** Offers `rate` events/s (null: as fast as test runs go) for `seconds`; returns the wall ms. */
async function generate(rate: number | null, seconds: number): Promise<number> {
  const t0 = performance.now();
  const chunk = rate === null ? FLAT_OUT_CHUNK : Math.max(1, Math.round(rate * STEP_S));
  let sent = 0;
  while (performance.now() - t0 < seconds * 1000) {
    await run(chunk);
    sent += chunk;
    if (rate !== null) {
      const due = t0 + (sent / rate) * 1000 - performance.now();
      if (due > 0) await sleep(due);
    }
  }
  return performance.now() - t0;
}

const kernel = () => {
  const c = dp.counters();
  return { generated: c.blocked.packets, lost: c.eventLost.packets };
};

/** CPU seconds of a thread of this process, from /proc. */
function threadCpu(tid: number | string): number {
  try {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** The main thread: the event loop (decode and every sink's part on it). */
const loopCpu = () => threadCpu(process.pid);

/** The history store's thread (HistoryWorker names it), found by its name. */
let historyTid: string | null = null;
function historyCpu(): number {
  historyTid ??=
    readdirSync("/proc/self/task").find(
      (t) => readFileSync(`/proc/self/task/${t}/comm`, "utf8").trim() === "moat-history",
    ) ?? null;
  return historyTid ? threadCpu(historyTid) : 0;
}

/** CPU seconds of the SSE client's process (all its threads), from /proc. */
function clientCpu(): number {
  try {
    const stat = readFileSync(`/proc/${child.pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/**
 * Waits until `done()` holds, polling; returns the ms it took. Past QUIET_TIMEOUT_MS it throws
 * with `missing()`: the counts the last poll saw, and what they lack.
 */
async function quiet(done: () => Promise<boolean>, missing: () => string): Promise<number> {
  const t0 = performance.now();
  while (!(await done())) {
    if (performance.now() - t0 > QUIET_TIMEOUT_MS)
      throw new Error(`the pipeline never settled in ${QUIET_TIMEOUT_MS} ms: ${missing()}`);
    await sleep(20);
  }
  return performance.now() - t0;
}

// ---- floor: the raw ring-buffer drain --------------------------------------------------------

async function floor() {
  let received = 0;
  const ring = dp.subscribe(() => received++);
  const k0 = kernel();
  const cpu0 = loopCpu();
  const ms = await generate(null, OVERLOAD_S);
  let last = -1;
  let seen = { generated: 0, lost: 0 };
  await quiet(
    async () => {
      const same = received === last;
      last = received;
      const k = kernel();
      seen = { generated: Number(k.generated - k0.generated), lost: Number(k.lost - k0.lost) };
      return same && received + seen.lost >= seen.generated;
    },
    () => {
      const { generated, lost } = seen;
      const before = received;
      // what the reader left in the ring: events sent and never read, or never sent at all
      const left = ring.drain();
      return `floor: ${generated} generated, ${before} received, ${lost} lost (${generated - before - lost} missing); a drain of the ring then read ${left}`;
    },
  );
  ring.close();
  const k1 = kernel();
  const generated = Number(k1.generated - k0.generated);
  const lost = Number(k1.lost - k0.lost);
  if (received + lost !== generated)
    throw new Error(`floor: ${received} received + ${lost} lost != ${generated} generated`);
  return {
    phase: "floor: drain only, generator flat out",
    offered: Math.round(generated / (ms / 1000)),
    received: Math.round(received / (ms / 1000)),
    generated,
    lost,
    loopCpu: Math.round(((loopCpu() - cpu0) / (ms / 1000)) * 100),
  };
}

// ---- the pipeline as the daemon builds it ----------------------------------------------------

interface Timed {
  ms: number;
}
const sinkMs = new Map<string, Timed>();

/** The sink with the synchronous part of each write() timed (what it costs the event loop). */
function timed(sink: EventSink): EventSink {
  const t: Timed = sinkMs.get(sink.name) ?? { ms: 0 };
  sinkMs.set(sink.name, t);
  return {
    name: sink.name,
    // the pipeline reads it off the sink: the history hands its thread several batches at once
    ...(sink.batchesInFlight ? { batchesInFlight: sink.batchesInFlight } : {}),
    write(batch) {
      const s = performance.now();
      try {
        return sink.write(batch);
      } finally {
        t.ms += performance.now() - s;
      }
    },
    ...(sink.fanout ? { fanout: () => sink.fanout?.() ?? { delivered: 0, dropped: 0 } } : {}),
    close: () => sink.close(),
  };
}

const pipeline = new EventPipeline();
if (SINKS.includes("audit")) {
  const audit = auditSink();
  audit.setPath(join(tmp, "audit.log"));
  pipeline.add(timed(audit));
}
// as the daemon does (src/daemon/daemon-sinks.ts): the store in its worker thread, batches that
// wait HISTORY_LINGER_MS for others
const store = SINKS.includes("history") ? new HistoryWorker(join(tmp, "history.db")) : null;
if (store) {
  await store.ready;
  pipeline.add(timed(historySink(store, (line) => console.error(line))), {
    lingerMs: HISTORY_LINGER_MS,
  });
}

/** The history thread's profiler, driven through the inspector's NodeWorker domain. */
async function historyProfiler(session: Session) {
  type Message = { params: { sessionId: string; message: string; workerInfo: { title: string } } };
  const attached = new Promise<string>((resolve) =>
    session.on("NodeWorker.attachedToWorker", (m: Message) => {
      if (m.params.workerInfo.title.includes("moat-history")) resolve(m.params.sessionId);
    }),
  );
  await session.post("NodeWorker.enable", { waitForDebuggerOnStart: false });
  const sessionId = await attached;
  let next = 1;
  const waiting = new Map<number, (result: unknown) => void>();
  session.on("NodeWorker.receivedMessageFromWorker", (m: Message) => {
    const reply = JSON.parse(m.params.message) as { id?: number; result?: unknown };
    if (reply.id !== undefined) waiting.get(reply.id)?.(reply.result);
  });
  const call = (method: string) =>
    new Promise<unknown>((resolve) => {
      const id = next++;
      waiting.set(id, resolve);
      void session.post("NodeWorker.sendMessageToWorker", {
        sessionId,
        message: JSON.stringify({ id, method, params: {} }),
      });
    });
  await call("Profiler.enable");
  return {
    start: () => call("Profiler.start"),
    stop: async () => ((await call("Profiler.stop")) as { profile: unknown }).profile,
  };
}
const historyProfile = inspector && store ? await historyProfiler(inspector) : null;

const wrapped = new Map<EventSink, EventSink>();
const refuse = () => {
  throw new Error("not part of this bench");
};
const control: ApiControl = {
  original: () => null,
  sshKeys: refuse,
  snapshot: snapshotSource(
    dp,
    {
      mode: () => "prevent",
      policyPath: "bench.yaml",
      policyHash: () => "",
      reloads: { ok: 0, refused: 0 },
    },
    pipeline,
  ),
  policy: refuse,
  validate: refuse,
  apply: refuse,
  confirm: refuse,
  setMode: refuse,
  replay: refuse,
  queryHistory: (q) => (store ? store.query(q) : refuse()),
  addSink: (sink, options) => {
    const w = timed(sink);
    wrapped.set(sink, w);
    pipeline.add(w, options);
  },
  removeSink: (sink) => pipeline.remove(wrapped.get(sink) ?? sink),
  log: (line) => console.error(line),
  audit: (line) => console.error(line),
};
const socket = join(tmp, "api.sock");
const api = await startApi(control, [{ listen: `unix:${socket}` }]);

const child = spawn(
  process.execPath,
  ["--disable-warning=ExperimentalWarning", "bench/events-client.ts", socket],
  { stdio: ["pipe", "pipe", "inherit"] },
);
const lines = createInterface({ input: child.stdout! });
const replies: ((line: string) => void)[] = [];
lines.on("line", (line) => replies.shift()?.(line));
const nextLine = () => new Promise<string>((resolve) => replies.push(resolve));
const subscribed = nextLine();
const clientCount = async () => {
  const reply = nextLine();
  child.stdin!.write("count\n");
  return Number(await reply);
};

const bootTimeMs = Date.now() - Number(process.hrtime.bigint() / 1_000_000n);
let pushed = 0;
let ring: ReturnType<Datapath["subscribe"]> | null = null;

const sinkTotals = () => {
  const out: Record<
    string,
    { delivered: number; dropped: number; failed: number; queued: number }
  > = {};
  for (const s of pipeline.stats()) out[s.name] = s;
  return out;
};

async function phase(label: string, rate: number | null, seconds: number) {
  const k0 = kernel();
  const p0 = pushed;
  const s0 = sinkTotals();
  const c0 = await clientCount();
  const cpu0 = loopCpu();
  const history0 = historyCpu();
  const client0 = clientCpu();
  const ms0 = new Map([...sinkMs].map(([n, t]) => [n, t.ms]));
  const ms = await generate(rate, seconds);
  // what the last poll saw, for a timeout's message
  let seen = { generated: 0, lost: 0, received: 0, queued: "", client: "" };
  const lagMs = await quiet(
    async () => {
      const s = sinkTotals();
      const k = kernel();
      const generated = Number(k.generated - k0.generated);
      const lost = Number(k.lost - k0.lost);
      const received = pushed - p0;
      const inRing = generated - lost - received;
      const busy = Object.values(s).some((x) => x.queued > 0);
      seen = { generated, lost, received, queued: "", client: "" };
      if (busy)
        seen.queued = Object.entries(s)
          .map(([n, x]) => `${n} ${x.queued}`)
          .join(", ");
      if (inRing > 0 || busy) return false;
      const client = (await clientCount()) - c0;
      const delivered = s["api-subscriber"]!.delivered - s0["api-subscriber"]!.delivered;
      seen.client = `${client} of the ${delivered} its sink delivered`;
      return client === delivered;
    },
    () =>
      `${label}: ${seen.generated} generated, ${seen.received} received, ${seen.lost} lost (${seen.generated - seen.received - seen.lost} missing)` +
      (seen.queued ? `; queued in the sinks: ${seen.queued}` : "") +
      (seen.client ? `; the SSE client has ${seen.client}` : ""),
  );
  const cpu = loopCpu() - cpu0;
  const historyCpuS = historyCpu() - history0;
  const clientCpuS = clientCpu() - client0;
  const k1 = kernel();
  const s1 = sinkTotals();
  const client = (await clientCount()) - c0;
  const generated = Number(k1.generated - k0.generated);
  const ringLost = Number(k1.lost - k0.lost);
  const received = pushed - p0;
  const sinks = Object.fromEntries(
    Object.keys(s1).map((n) => [
      n,
      {
        delivered: s1[n]!.delivered - (s0[n]?.delivered ?? 0),
        dropped: s1[n]!.dropped - (s0[n]?.dropped ?? 0),
        failed: s1[n]!.failed - (s0[n]?.failed ?? 0),
      },
    ]),
  );
  // the accounting: every generated event is received or lost in the ring; every received one
  // is delivered or dropped by each sink; the subscriber got what its sink delivered
  const exact =
    received + ringLost === generated &&
    Object.values(sinks).every((x) => x.failed === 0 && x.delivered + x.dropped === received) &&
    client === sinks["api-subscriber"]!.delivered;
  const dropped = Object.values(sinks).reduce((a, x) => a + x.dropped, 0);
  const sinkCpu = Object.fromEntries(
    [...sinkMs].map(([n, t]) => [
      n,
      Math.round(((t.ms - (ms0.get(n) ?? 0)) * 1e6) / Math.max(1, received)),
    ]),
  );
  return {
    phase: label,
    offered: Math.round(generated / (ms / 1000)),
    delivered: Math.round(
      Math.min(...Object.values(sinks).map((x) => x.delivered)) / ((ms + lagMs) / 1000),
    ),
    generated,
    ringLost,
    received,
    sinks,
    client,
    lagMs: Math.round(lagMs),
    lossless: ringLost === 0 && dropped === 0,
    exact,
    loopCpu: Math.round((cpu / ((ms + lagMs) / 1000)) * 100),
    // CPU per event received: what each thread could sustain on a core of its own is 1e6 / this
    loopUsPerEvent: round2((cpu * 1e6) / Math.max(1, received)),
    historyUsPerEvent: round2((historyCpuS * 1e6) / Math.max(1, received)),
    clientUsPerEvent: round2((clientCpuS * 1e6) / Math.max(1, received)),
    sinkNsPerEvent: sinkCpu,
  };
}

try {
  console.error("floor: raw ring-buffer drain");
  const floorRow = await floor();
  await subscribed;
  // one context for every record, as the daemon's event path has (src/daemon/event-path.ts)
  const context = {
    bootTimeMs,
    rule: (index: number) => image.rules[index],
    interfaceName: () => null,
  };
  ring = dp.subscribe((record) => {
    pushed++;
    pipeline.push(decodeEvent(record, context));
  });
  // correctness first: a small lossless run is accounted for exactly, event by event
  const warm = await phase("check", 20_000, 1);
  if (!warm.exact || !warm.lossless || warm.generated !== warm.received)
    throw new Error(`check failed: ${JSON.stringify(warm)}`);
  const rows = [];
  await inspector?.post("Profiler.start");
  await historyProfile?.start();
  let sustainRate = 0;
  for (const rate of RATES) {
    console.error(`offered ${rate} events/s`);
    const row = await phase(`${rate / 1000}k/s offered`, rate, PHASE_S);
    rows.push(row);
    if (!row.exact) throw new Error(`accounting is off: ${JSON.stringify(row)}`);
    if (!row.lossless) break;
    sustainRate = rate;
  }
  if (inspector) {
    const { profile } = await inspector.post("Profiler.stop");
    mkdirSync("bench/results", { recursive: true });
    writeFileSync("bench/results/events-main.cpuprofile", JSON.stringify(profile));
    const history = await historyProfile?.stop();
    if (history) writeFileSync("bench/results/events-history.cpuprofile", JSON.stringify(history));
  }
  // the bar: the highest rate found lossless, offered again for a minute; a minute that loses
  // is tried again at the rising rates' steps below it (at most SUSTAIN_TRIES minutes in all)
  let rate = SUSTAIN_RATE || sustainRate || (RATES[0] ?? 25_000);
  let sustained: Awaited<ReturnType<typeof phase>>;
  for (let tries = 1; ; tries++) {
    console.error(`sustained: ${rate} events/s offered for ${SUSTAIN_S} s`);
    sustained = await phase(`sustained ${SUSTAIN_S} s at ${rate / 1000}k/s`, rate, SUSTAIN_S);
    rows.push(sustained);
    if (!sustained.exact) throw new Error(`accounting is off: ${JSON.stringify(sustained)}`);
    // a step below what the generator reached, where it fell short of the rate asked
    const lower = RATES.filter((r) => r < Math.min(rate, sustained.offered)).at(-1);
    if (sustained.lossless || SUSTAIN_RATE || tries === SUSTAIN_TRIES || lower === undefined) break;
    rate = lower;
  }
  console.error("overload: generator flat out");
  const overload = await phase("overload (flat out)", null, OVERLOAD_S);
  rows.push(overload);

  console.log(
    `floor (drain only): ${floorRow.received} events/s received of ${floorRow.offered} offered, ${floorRow.lost} lost; event loop ${floorRow.loopCpu}% CPU`,
  );
  console.table(
    rows.map((r) => ({
      phase: r.phase,
      "offered /s": r.offered,
      "delivered /s": r.delivered,
      generated: r.generated,
      "ring lost": r.ringLost,
      "audit dropped": r.sinks.audit?.dropped,
      "history dropped": r.sinks.history?.dropped,
      "api dropped": r.sinks["api-subscriber"]?.dropped,
      "lag ms": r.lagMs,
      exact: r.exact,
      "loop CPU %": r.loopCpu,
      "loop us/event": r.loopUsPerEvent,
      "history us/event": r.historyUsPerEvent,
      "client us/event": r.clientUsPerEvent,
    })),
  );
  console.log(
    "wall ns per event in the synchronous part of each sink's write() (on the event loop):",
  );
  for (const r of rows) console.log(`  ${r.phase}: ${JSON.stringify(r.sinkNsPerEvent)}`);
  console.log(
    `B6: ${sustained.lossless ? sustained.delivered : 0} events/s sustained without loss for ${SUSTAIN_S} s (${sustained.phase}${sustained.lossless ? "" : ": lost some"}; bar >= 500000); overload accounted exactly: ${overload.exact}`,
  );
  writeResult("events", {
    bench: "B6 event pipeline",
    method: `XDP test runs (bench_keys 4096, bench_fresh 1) on the pool, paced in ${STEP_S * 1000} ms steps, ${PHASE_S} s per rate, the highest lossless rate again for ${SUSTAIN_S} s (a step lower after a loss, ${SUSTAIN_TRIES} tries at most), overload ${OVERLOAD_S} s flat out; sinks ${[...SINKS, "1 SSE subscriber"].join(" + ")}`,
    sustained,
    floor: floorRow,
    check: warm,
    rows,
  });
} finally {
  ring?.close();
  child.kill();
  await api.close();
  await pipeline.close();
  anchor.release();
  dp.stop();
  rmSync(tmp, { recursive: true, force: true });
}
