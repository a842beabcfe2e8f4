// B6's history sink on its own, behind the pipeline as the daemon adds it (src/daemon/
// daemon-sinks.ts: the store on its thread, HISTORY_LINGER_MS): how fast it takes a backlog.
// EVENTS kernel-shaped events (bench/events-cpu.ts's records, decoded) are pushed in batches of
// 4096, one batch a turn of the event loop, which also spends BUSY_US of CPU an event (the other
// sinks' share of the daemon's thread); the queue holds them all, so none is dropped. Printed:
// the wall time until the history delivered the last one, the events/s that makes, and the
// history thread's CPU an event. What it shows is how long the history's thread waits for the
// daemon's between two batches: a thread that never waits delivers at its own CPU's rate.
//
//   node bench/events-history.ts [EVENTS] [BUSY_US] [ROUNDS]
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeEvent } from "../src/datapath/events.ts";
import { syntheticContext, syntheticRecords } from "./synthetic-events.ts";
import { EventPipeline } from "../src/observe/pipeline.ts";
import { HistoryWorker } from "../src/observe/history/remote.ts";
import { HISTORY_LINGER_MS, historySink } from "../src/observe/history/sink.ts";

const EVENTS = Number(process.argv[2] ?? 400_000);
const BUSY_US = Number(process.argv[3] ?? 2);
const ROUNDS = Number(process.argv[4] ?? 3);
const BATCH = 4096;

const records = syntheticRecords(2 * BATCH);
const ctx = syntheticContext();

/** CPU seconds of the history's thread (HistoryWorker names it). */
function historyCpu(): number {
  for (const t of readdirSync("/proc/self/task"))
    if (readFileSync(`/proc/self/task/${t}/comm`, "utf8").trim() === "moat-history") {
      const f = readFileSync(`/proc/self/task/${t}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
      return (Number(f[11]) + Number(f[12])) / 100;
    }
  return Number.NaN;
}

/** The other sinks' CPU on the daemon's thread. */
function spin(us: number): void {
  const end = performance.now() + us / 1000;
  while (performance.now() < end);
}

const tmp = mkdtempSync(join(tmpdir(), "moat-b6-history-"));
try {
  for (let round = 0; round < ROUNDS; round++) {
    const store = new HistoryWorker(join(tmp, `history-${round}.db`));
    await store.ready;
    const pipeline = new EventPipeline();
    pipeline.add(
      historySink(store, (line) => console.error(line)),
      {
        lingerMs: HISTORY_LINGER_MS,
        capacity: EVENTS,
      },
    );
    const cpu0 = historyCpu();
    const t0 = performance.now();
    for (let at = 0; at < EVENTS; at += BATCH) {
      const n = Math.min(BATCH, EVENTS - at);
      for (let k = 0; k < n; k++)
        pipeline.push(decodeEvent(records[(at + k) % records.length]!, ctx));
      spin(n * BUSY_US);
      await new Promise((resolve) => setImmediate(resolve));
    }
    const pushedMs = performance.now() - t0;
    await pipeline.flush();
    const wallS = (performance.now() - t0) / 1000;
    const s = pipeline.stats()[0]!;
    if (s.delivered !== EVENTS)
      throw new Error(`delivered ${s.delivered} of ${EVENTS}: ${JSON.stringify(s)}`);
    console.log(
      `round ${round + 1}: ${EVENTS} events pushed in ${(pushedMs / 1000).toFixed(2)} s, delivered in ${wallS.toFixed(2)} s = ${Math.round(EVENTS / wallS)} events/s; history thread ${(((historyCpu() - cpu0) * 1e6) / EVENTS).toFixed(2)} µs CPU an event`,
    );
    await pipeline.close();
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
