// B6's stages by CPU time per event, without the kernel: what each stage of the event path costs
// the thread it runs on, measured with the thread's own CPU clock, so that a machine shared with
// other work changes the figures less than it changes wall-clock rates. Records are made as
// the kernel makes them in B6 (abi.ts's struct, 4096 remote addresses spread over the IPv4 space,
// a new source port each), then, in batches of 4096 as the pipeline hands them over: decode,
// the audit sink (a temp file), the history (rows handed to its thread: the event loop's part,
// and the history thread's inserts) and the API's live subscribers (one SSE subscriber whose
// connection takes every byte at once). 1e6 / (CPU per event) is what the thread could keep up
// with on a core of its own.
//
//   node bench/events-cpu.ts [EVENTS] [ROUNDS] [BATCH]
// prints µs per event by stage, median of rounds; BATCH (4096) events are handed over at a time
// (a few per batch: the pipeline at a low rate)
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeEvent } from "../src/datapath/events.ts";
import { syntheticContext, syntheticRecords } from "./synthetic-events.ts";
import type { MoatEvent } from "../src/datapath/event.ts";
import { auditSink } from "../src/observe/audit-sink.ts";
import { HistoryWorker } from "../src/observe/history/remote.ts";
import { SubscriberHub } from "../src/api/subscribers.ts";

const EVENTS = Number(process.argv[2] ?? 100_000);
const ROUNDS = Number(process.argv[3] ?? 3);
const BATCH = Number(process.argv[4] ?? 4096);

const records = syntheticRecords(EVENTS);
const ctx = syntheticContext();

/** µs of this thread's CPU. */
const cpu = () => {
  const u = process.threadCpuUsage();
  return u.user + u.system;
};
function historyThreadCpu(): number {
  for (const t of readdirSync("/proc/self/task"))
    if (readFileSync(`/proc/self/task/${t}/comm`, "utf8").trim() === "moat-history") {
      const f = readFileSync(`/proc/self/task/${t}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
      return ((Number(f[11]) + Number(f[12])) / 100) * 1e6;
    }
  return Number.NaN;
}

const tmp = mkdtempSync(join(tmpdir(), "moat-b6cpu-"));
const results: Record<string, number[]> = {};
const note = (stage: string, us: number) => (results[stage] ??= []).push(us / EVENTS);

try {
  for (let round = 0; round < ROUNDS; round++) {
    const audit = auditSink();
    audit.setPath(join(tmp, `audit-${round}.log`));
    const history = new HistoryWorker(join(tmp, `history-${round}.db`));
    await history.ready;
    const hub = new SubscriberHub();
    let bytes = 0;
    hub.add(
      {},
      {
        framing: "sse",
        write: (b) => void (bytes += b.length),
        buffered: () => 0,
        keepalive: () => {},
        end: () => {},
      },
    );
    const stage = { decode: 0, audit: 0, "history (event loop)": 0, "api-subscriber": 0 };
    const h0 = historyThreadCpu();
    const pending: Promise<void>[] = [];
    for (let at = 0; at < EVENTS; at += BATCH) {
      let t = cpu();
      const batch: MoatEvent[] = [];
      for (const r of records.slice(at, at + BATCH)) batch.push(decodeEvent(r, ctx));
      let t2 = cpu();
      stage.decode += t2 - t;
      t = t2;
      audit.write(batch);
      t2 = cpu();
      stage.audit += t2 - t;
      t = t2;
      pending.push(history.insert(batch));
      t2 = cpu();
      stage["history (event loop)"] += t2 - t;
      t = t2;
      await hub.write(batch);
      stage["api-subscriber"] += cpu() - t;
    }
    await Promise.all(pending);
    const historyUs = historyThreadCpu() - h0;
    for (const [k, v] of Object.entries(stage)) note(k, v);
    note(
      "event loop, all stages",
      Object.values(stage).reduce((a, b) => a + b, 0),
    );
    note("history thread (inserts)", historyUs);
    if (bytes === 0) throw new Error("the subscriber got nothing");
    hub.close();
    audit.close();
    await history.close();
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? Number.NaN;
console.log(
  `B6 stages, ${EVENTS} events x ${ROUNDS} rounds, ${BATCH} a batch, CPU µs per event (median; all rounds):`,
);
for (const [k, v] of Object.entries(results))
  console.log(
    `  ${k.padEnd(26)} ${median(v).toFixed(2).padStart(7)}   (${v.map((x) => x.toFixed(2)).join(", ")})`,
  );
