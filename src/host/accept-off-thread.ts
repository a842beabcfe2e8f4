// acceptPolicyAsync with the work (parsing, checking, compiling) on a worker thread, so the
// daemon's event loop keeps answering its API and draining events while a policy of 100k rules is
// accepted. The worker (accept-worker.ts) runs the same function; what process rules name on the
// host it asks this thread (which reads the host), and what it cannot carry back is accepted on
// this thread, as before.
import { MessageChannel, Worker, type MessagePort } from "node:worker_threads";
import { unpackAcceptance } from "./accept-handback.ts";
import { packedTable } from "./packed-table.ts";
import {
  acceptPolicyAsync,
  type AcceptOptions,
  type Acceptance,
  type UniverseReader,
} from "./accept-policy.ts";
import type {
  AcceptLocate,
  AcceptOffsets,
  AcceptReply,
  AcceptRequest,
  AcceptTables,
  HostAnswer,
  HostLine,
  HostQuery,
} from "./accept-worker.ts";
import type { PolicyModel, PositionTable } from "../config/index.ts";
import type { TableImage } from "../policy/index.ts";

type Pending = {
  resolve: (reply: AcceptReply) => void;
  reject: (err: Error) => void;
  /** What the worker asks when the policy's process rules name the host's users, files... */
  universe?: UniverseReader;
  /** Takes a big policy's packet tables ahead of the reply (AcceptTables). */
  tablesAhead?: (tables: TableImage) => void;
};

let worker: Worker | null = null;
const pending = new Map<number, Pending>();
let nextId = 1;
/** Acceptances the worker handed back, and ones this thread did itself (it could not carry them). */
const places = { worker: 0, here: 0 };
/** A model whose positions' table came without its offsets: the request, to ask for them. */
const tableOf = new WeakMap<PolicyModel, { id: number; table: PositionTable }>();
/** Tables whose offsets the worker was asked for, by request, until they come. */
const unlocated = new Map<number, PositionTable>();

/**
 * When an idle worker stops. It stops after `stopMs`, and its memory goes back to the system
 * instead of staying in the daemon's (the parse of a 100k-rule file leaves hundreds of megabytes
 * to collect), unless changes come in a row (its last answer came within `rowMs` of the one
 * before: a CrowdSec poll every 10 s, fail2ban's bans, a dynamic set's expiries) and its heap is
 * small (~35 MB of the daemon's memory): then it stays until `warmMs`, so that each change does
 * not start a worker, which costs about half a second of CPU and of waiting (its modules
 * loaded, the schema compiled, none of its code optimised yet).
 */
const idleTimes = { stopMs: 5_000, rowMs: 30_000, warmMs: 30_000, warmHeapBytes: 64 * 2 ** 20 };
/** When the worker's last acceptance was answered, and whether it came in a row of changes. */
let lastAnswer = -Infinity;
let inRow = false;
/** How long the worker waits for this thread's answer to a HostQuery (a new worker's). */
let hostWaitMs = 60_000;
/**
 * The worker's heap at most (MiB): a policy whose check would need more (a runaway in a reader)
 * ends the worker, not the daemon, and is refused. The largest policy file (16 MiB) read by the
 * yaml library takes about 2 GB.
 */
const HEAP_MB = 3072;
let heapMb = HEAP_MB;
/**
 * Entries of the address directories, the remote x Y table and the remote-only table from which a
 * policy's packet tables come ahead of it (AcceptTables; the two directories hold 131,072 at
 * least, 10k mixed rules ~190,000, 100k ~871,000): below, making them costs the daemon's thread a
 * few milliseconds, not worth a message.
 */
const AHEAD_ENTRIES = 250_000;
let aheadEntries = AHEAD_ENTRIES;
let idleTimer: ReturnType<typeof setTimeout> | null = null;
/** Bumped whenever the worker is asked something: a stop decided before that is void. */
let idleEpoch = 0;
let onStopped: (() => void) | undefined;

/**
 * `fn` runs each time the worker has stopped and its memory is freed (the daemon gives the C
 * heap's free pages back to the system then: src/datapath/trim-memory.ts).
 */
export function afterAcceptWorkerStops(fn: (() => void) | undefined): void {
  onStopped = fn;
}

function failAll(w: Worker, err: Error): void {
  if (worker !== w) return; // a worker stopped when idle had nothing pending
  worker = null;
  for (const p of pending.values()) p.reject(err);
  pending.clear();
  // what was not located by now is located where a line is read
  unlocated.clear();
}

/** Nothing is asked of the worker: no acceptance and no offsets to come. */
function idle(): boolean {
  return pending.size === 0 && unlocated.size === 0;
}

/**
 * The worker's packed copy of a table, with every offset: the table keeps it instead of its arrays,
 * and makes them again only when a position is read.
 */
function adopt({ located: id, packed }: AcceptOffsets): void {
  const table = unlocated.get(id);
  unlocated.delete(id);
  if (table && packed) table.keepPacked(packedTable(packed));
}

/**
 * Has the worker work out where each of `model`'s positions is in its file, if it came from the
 * worker without that (a file read the lean way): a line read afterwards costs this thread nothing
 * but the unpacking of what the worker sends (packed-table.ts), which the table keeps instead of
 * its arrays and of the text. Called once the policy is in place, so the work does not compete
 * with putting it there.
 */
export function locateOffThread(model: PolicyModel): void {
  const entry = tableOf.get(model);
  tableOf.delete(model);
  if (!entry || entry.table.located || !worker) return;
  cancelIdleStop();
  unlocated.set(entry.id, entry.table);
  const ask: AcceptLocate = { locate: entry.id };
  worker.postMessage(ask);
}

/** Shorter times (tests): the idle stops, and a new worker's wait for this thread's answers. */
export function setAcceptWorkerTimes(
  times: Partial<typeof idleTimes> & { hostWaitMs?: number },
): void {
  const { hostWaitMs: wait, ...idle } = times;
  Object.assign(idleTimes, idle);
  if (wait !== undefined) hostWaitMs = wait;
}

/** Another size from which tables come ahead (tests); undefined: the daemon's. */
export function setTablesAheadEntries(entries: number | undefined): void {
  aheadEntries = entries ?? AHEAD_ENTRIES;
}

/** Another bound on a new worker's heap (tests); undefined: the daemon's. */
export function setAcceptWorkerHeapMb(mb: number | undefined): void {
  heapMb = mb ?? HEAP_MB;
}

function cancelIdleStop(): void {
  idleEpoch++;
  if (idleTimer) clearTimeout(idleTimer);
  idleTimer = null;
}

/** Stops `w` once it has been idle long enough for its heap (a request cancels it). */
function stopWhenIdle(w: Worker): void {
  const epoch = ++idleEpoch;
  const still = () => worker === w && idle() && epoch === idleEpoch;
  const stop = () => {
    if (!still()) return;
    worker = null;
    void w.terminate();
  };
  idleTimer = setTimeout(() => {
    if (!still()) return;
    if (!inRow) return stop();
    w.getHeapStatistics().then((heap) => {
      if (!still()) return;
      if (heap.total_heap_size > idleTimes.warmHeapBytes) return stop();
      idleTimer = setTimeout(stop, Math.max(0, idleTimes.warmMs - idleTimes.stopMs)).unref();
    }, stop);
  }, idleTimes.stopMs).unref();
}

/**
 * Starts the worker before its first use: its modules load on its thread while this one does
 * other work (the daemon's start loads the programs meanwhile). Unused, it stops when idle.
 */
export function startAcceptWorker(): void {
  const w = acceptWorker();
  if (pending.size === 0) stopWhenIdle(w);
}

/** The worker, started on first use; it does not keep the process alive while idle. */
function acceptWorker(): Worker {
  cancelIdleStop();
  if (worker) return worker;
  const { port1, port2 } = new MessageChannel();
  const line: HostLine = {
    port: port2,
    signal: new Int32Array(new SharedArrayBuffer(4)),
    waitMs: hostWaitMs,
  };
  const limit = heapMb;
  const w = new Worker(new URL("./accept-worker.ts", import.meta.url), {
    workerData: line,
    transferList: [port2],
    resourceLimits: { maxOldGenerationSizeMb: limit },
  });
  w.on("message", (message: AcceptReply | AcceptOffsets | HostQuery | AcceptTables) => {
    if ("hostQuery" in message) return answerHost(port1, line.signal, message);
    if ("tablesOf" in message) return pending.get(message.tablesOf)?.tablesAhead?.(message.tables);
    if ("located" in message) adopt(message);
    else {
      const now = performance.now();
      inRow = now - lastAnswer < idleTimes.rowMs;
      lastAnswer = now;
      pending.get(message.id)?.resolve(message);
      pending.delete(message.id);
    }
    if (pending.size === 0) w.unref();
    if (idle()) stopWhenIdle(w);
  });
  w.on("error", (err) => {
    const oom = (err as NodeJS.ErrnoException).code === "ERR_WORKER_OUT_OF_MEMORY";
    const why = `checking the policy needed more memory than the ${limit} MiB it may use; it is refused`;
    failAll(w, oom ? new Error(why) : err);
  });
  w.on("exit", () => {
    failAll(w, new Error("the policy worker exited"));
    onStopped?.();
  });
  w.unref();
  worker = w;
  return w;
}

/** Answers the worker's HostQuery with the reader of the request it is compiling. */
function answerHost(
  port: MessagePort,
  signal: Int32Array,
  { hostQuery, ask, query }: HostQuery,
): void {
  const reader = pending.get(hostQuery)?.universe;
  let answer: HostAnswer;
  try {
    answer = reader
      ? { ask, universe: reader(query) }
      : { ask, error: "nothing here reads what the host has" };
  } catch (err) {
    answer = { ask, error: (err as Error).message };
  }
  port.postMessage(answer);
  Atomics.store(signal, 0, 1);
  Atomics.notify(signal, 0);
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

function ask(
  req: Omit<AcceptRequest, "id">,
  universe?: UniverseReader,
  tablesAhead?: (tables: TableImage) => void,
): Promise<AcceptReply> {
  const w = acceptWorker();
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, {
      resolve,
      reject,
      ...(universe ? { universe } : {}),
      ...(tablesAhead ? { tablesAhead } : {}),
    });
    w.ref(); // a pending acceptance keeps the process alive
    w.postMessage({ ...req, id });
  });
}

/** What acceptPolicyOffThread takes: acceptPolicyAsync's options but the host, and one of its own. */
export type OffThreadOptions = Omit<AcceptOptions, "host"> & {
  /**
   * Called with a big policy's packet tables (its image 0's) once it is compiled, before the rest
   * of the acceptance is handed back: the daemon makes the kernel's tables meanwhile. The policy
   * may still be refused after it (the plumbing, the caller's own checks).
   */
  tablesAhead?: (tables: TableImage) => void;
};

/** acceptPolicyAsync, run on the worker thread where it can be (options.host is not supported). */
export async function acceptPolicyOffThread(
  text: string,
  fileName: string,
  { tablesAhead, ...options }: OffThreadOptions = {},
): Promise<Acceptance> {
  // a progress callback cannot cross to the worker
  if (options.compile?.onPhase) return acceptPolicyAsync(text, fileName, options);
  const reply = await ask(
    {
      text,
      fileName,
      ...(options.compile ? { compile: options.compile } : {}),
      ...(options.decisions ? { decisions: options.decisions } : {}),
      ...(options.mode ? { mode: options.mode } : {}),
      universe: options.universe !== undefined,
      ...(tablesAhead ? { tablesAhead: aheadEntries } : {}),
    },
    options.universe,
    tablesAhead,
  );
  if ("packed" in reply) {
    places.worker++;
    // the message's copy, the unpacking (a part of a long list at a time) and the caller's apply
    // each hold the event loop: a turn between them lets the API, the events and the timers run
    await nextTurn();
    const { acceptance, table } = await unpackAcceptance(reply.packed, text, nextTurn);
    if (table && !table.located && acceptance.policy)
      tableOf.set(acceptance.policy.model, { id: reply.id, table });
    await nextTurn();
    return acceptance;
  }
  if ("error" in reply) throw new Error(reply.error);
  places.here++;
  return acceptPolicyAsync(text, fileName, options);
}

/** How many acceptances the worker handed back, and how many this thread did itself. */
export function acceptPlaces(): { worker: number; here: number } {
  return { ...places };
}

/** Stops the worker (tests and benchmarks that end their process cleanly). */
export async function stopAcceptWorker(): Promise<void> {
  const w = worker;
  cancelIdleStop();
  lastAnswer = -Infinity; // the next acceptance starts no row
  if (!w) return;
  failAll(w, new Error("the policy worker was stopped")); // what it had not answered fails
  await w.terminate();
}
