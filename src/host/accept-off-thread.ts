// acceptPolicyAsync with the work (parsing, checking, compiling) on a worker thread, so the
// daemon's event loop keeps answering its API and draining events while a policy of 100k rules is
// accepted. The worker (accept-worker.ts) runs the same function; what it cannot carry back
// (process rules, name classes) is accepted on this thread, as before.
import { Worker } from "node:worker_threads";
import { unpackAcceptance } from "./accept-handback.ts";
import { acceptPolicyAsync, type AcceptOptions, type Acceptance } from "./accept-policy.ts";
import type { AcceptOffsets, AcceptReply, AcceptRequest } from "./accept-worker.ts";
import type { PositionTable } from "../config/index.ts";

type Pending = { resolve: (reply: AcceptReply) => void; reject: (err: Error) => void };

let worker: Worker | null = null;
const pending = new Map<number, Pending>();
let nextId = 1;
/** Tables handed back without their offsets, by request, until the worker sends them. */
const unlocated = new Map<number, PositionTable>();
/** Offsets that came before their table was unpacked. */
const early = new Map<number, AcceptOffsets>();

/**
 * A worker idle this long is stopped: its heap (the parse of a 100k-rule file leaves hundreds of
 * megabytes to collect) goes back to the system instead of staying in the daemon's memory.
 */
const IDLE_STOP_MS = 5_000;
let idleTimer: ReturnType<typeof setTimeout> | null = null;
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
  early.clear();
}

/** Nothing is asked of the worker: no acceptance and no offsets to come. */
function idle(): boolean {
  return pending.size === 0 && unlocated.size === 0;
}

/** The worker's offsets of request `id`'s table, put in place (or kept until it is unpacked). */
function adopt(sent: AcceptOffsets): void {
  const table = unlocated.get(sent.id);
  if (!table) {
    early.set(sent.id, sent);
    return;
  }
  unlocated.delete(sent.id);
  table.adoptOffsets(sent.offsets, sent.lineStarts);
}

/** Request `id`'s table, to get the offsets the worker works out after its reply. */
function awaitOffsets(id: number, table: PositionTable): void {
  const sent = early.get(id);
  early.delete(id);
  if (sent) table.adoptOffsets(sent.offsets, sent.lineStarts);
  else if (worker) unlocated.set(id, table);
}

/** Stops `w` once it has been idle IDLE_STOP_MS (a request cancels the timer). */
function stopWhenIdle(w: Worker): void {
  idleTimer = setTimeout(() => {
    if (worker !== w || !idle()) return;
    worker = null;
    void w.terminate();
  }, IDLE_STOP_MS).unref();
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
  if (idleTimer) clearTimeout(idleTimer);
  idleTimer = null;
  if (worker) return worker;
  const w = new Worker(new URL("./accept-worker.ts", import.meta.url));
  w.on("message", (message: AcceptReply | AcceptOffsets) => {
    if ("offsets" in message) adopt(message);
    else {
      pending.get(message.id)?.resolve(message);
      pending.delete(message.id);
    }
    if (pending.size === 0) w.unref();
    if (idle()) stopWhenIdle(w);
  });
  w.on("error", (err) => failAll(w, err));
  w.on("exit", () => {
    failAll(w, new Error("the policy worker exited"));
    onStopped?.();
  });
  w.unref();
  worker = w;
  return w;
}

function ask(req: Omit<AcceptRequest, "id">): Promise<AcceptReply> {
  const w = acceptWorker();
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    w.ref(); // a pending acceptance keeps the process alive
    w.postMessage({ ...req, id });
  });
}

/** acceptPolicyAsync, run on the worker thread where it can be (options.host is not supported). */
export async function acceptPolicyOffThread(
  text: string,
  fileName: string,
  options: Omit<AcceptOptions, "host"> = {},
): Promise<Acceptance> {
  // a progress callback cannot cross to the worker
  if (options.compile?.onPhase) return acceptPolicyAsync(text, fileName, options);
  const reply = await ask({
    text,
    fileName,
    ...(options.compile ? { compile: options.compile } : {}),
    ...(options.decisions ? { decisions: options.decisions } : {}),
    ...(options.mode ? { mode: options.mode } : {}),
    universe: options.universe !== undefined,
  });
  if ("packed" in reply) {
    const { acceptance, table } = unpackAcceptance(reply.packed, text);
    if (table && !table.located) awaitOffsets(reply.id, table);
    return acceptance;
  }
  if ("error" in reply) throw new Error(reply.error);
  return acceptPolicyAsync(text, fileName, options);
}

/** Stops the worker (tests and benchmarks that end their process cleanly). */
export async function stopAcceptWorker(): Promise<void> {
  const w = worker;
  worker = null;
  if (idleTimer) clearTimeout(idleTimer);
  idleTimer = null;
  if (w) await w.terminate();
}
