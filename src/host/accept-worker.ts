// The worker thread side of acceptPolicyOffThread (accept-off-thread.ts): it runs the one
// acceptance (acceptPolicy) and hands the result back. Its set files are read here as it goes:
// this thread's waits hold no one's event loop, and reading them first (acceptPolicyAsync) would
// check a policy that names one twice. What process rules name on the host
// (users, executables, cgroups, routes) is the daemon's to read: the compile asks the daemon's
// thread and waits for its answer. Name classes cross as their patterns (accept-handback.ts).
import {
  parentPort,
  receiveMessageOnPort,
  workerData,
  type MessagePort,
} from "node:worker_threads";
import type { PositionTable } from "../config/index.ts";
import { validatePolicy } from "../config/policy-validator.ts";
import {
  relayRule,
  tableImage,
  usesNames,
  type ProcessUniverse,
  type TableImage,
  type UniverseQuery,
} from "../policy/index.ts";
import { packAcceptance, type PackedAcceptance } from "./accept-handback.ts";
import { acceptPolicy, type Acceptance, type AcceptOptions } from "./accept-policy.ts";
import { packTable } from "./packed-table.ts";

// the schema's validator made as the worker starts, while its heap is small: made at the first
// check instead, after a big policy's parse has filled the heap, its collections cost more
validatePolicy(null);

export interface AcceptRequest {
  id: number;
  text: string;
  fileName: string;
  compile?: AcceptOptions["compile"];
  decisions?: AcceptOptions["decisions"];
  mode?: AcceptOptions["mode"];
  /** The caller reads what process rules name on the host: the compile asks it (HostQuery). */
  universe: boolean;
  /**
   * The caller makes a big policy's packet tables while the rest is handed back (AcceptTables):
   * sent when the address directories, the remote x Y and the remote-only tables hold at least
   * this many entries.
   */
  tablesAhead?: number;
}

/**
 * A big policy's packet tables (its image 0's), sent as soon as it is compiled, before the
 * acceptance is packed: the daemon makes the kernel's tables from them meanwhile, on its own
 * thread, and its swap takes them (src/datapath/table-reuse.ts). The reply follows.
 */
export interface AcceptTables {
  tablesOf: number;
  tables: TableImage;
}

/** Asks the daemon's thread what request `hostQuery`'s process rules name on the host. */
export interface HostQuery {
  hostQuery: number;
  /** This ask's number, which the answer repeats: one that gave up waiting gets none taken. */
  ask: number;
  query: UniverseQuery;
}

/** The daemon's answer to a HostQuery, on the host line's port. */
export type HostAnswer = { ask: number } & ({ universe: ProcessUniverse } | { error: string });

/**
 * How the worker waits for a HostAnswer while a compile is under way (synchronously: the
 * compiler asks in the middle of its work): the answer comes on `port`, and `signal[0]` is set to
 * 1 and notified once it is there.
 */
export interface HostLine {
  port: MessagePort;
  signal: Int32Array;
  /** The longest wait for an answer (60 s): the daemon's thread may be busy, not for this long. */
  waitMs: number;
}

export type AcceptReply =
  | { id: number; packed: PackedAcceptance }
  | { id: number; here: true }
  | { id: number; error: string };

/**
 * Asks for the offsets of request `locate`'s table (a file read the lean way), once the daemon has
 * put its policy in place: they are worked out here, so reading a line there (a message, `moat
 * explain`, a relay decision) never reads the whole file again on the daemon's thread.
 */
export interface AcceptLocate {
  locate: number;
}

/**
 * The answer to an AcceptLocate: the table's arrays with every offset, packed (packed-table.ts),
 * which the daemon keeps instead of the arrays; none when this worker no longer has that table.
 */
export interface AcceptOffsets {
  /** The request whose table these are. */
  located: number;
  packed?: Uint8Array;
}

/**
 * Whether the daemon judges this policy's connections in user space (its DNS proxy, its relay):
 * then big sets cross with their lookup index, which the daemon's thread need not build.
 */
const judgedInUserSpace = ({ policy }: Acceptance): boolean =>
  policy !== undefined && (usesNames(policy.model) || policy.model.rules.some(relayRule));

const line = workerData as HostLine | undefined;

let asks = 0;

/** What the daemon's thread says `query` resolves to on the host (request `id`'s reader). */
function askHost(id: number, query: UniverseQuery): ProcessUniverse {
  if (!line || !parentPort) throw new Error("no daemon to ask what the host has");
  const ask: HostQuery = { hostQuery: id, ask: ++asks, query };
  Atomics.store(line.signal, 0, 0);
  parentPort.postMessage(ask);
  const deadline = Date.now() + line.waitMs;
  for (;;) {
    for (let got = receiveMessageOnPort(line.port); got; got = receiveMessageOnPort(line.port)) {
      const answer = got.message as HostAnswer;
      if (answer.ask !== ask.ask) continue; // an earlier ask's, which gave up waiting
      if ("error" in answer) throw new Error(answer.error);
      return answer.universe;
    }
    if (Date.now() > deadline)
      throw new Error(`the daemon did not say what the host has within ${line.waitMs / 1000} s`);
    // in slices, so the deadline is looked at
    Atomics.wait(line.signal, 0, 0, 100);
    Atomics.store(line.signal, 0, 0); // what set it is read above, at the next turn
  }
}

function answer(req: AcceptRequest): {
  reply: AcceptReply;
  transfer?: ArrayBuffer[];
  unlocated?: PositionTable;
} {
  const options: AcceptOptions = {
    ...(req.compile ? { compile: req.compile } : {}),
    ...(req.decisions ? { decisions: req.decisions } : {}),
    ...(req.mode ? { mode: req.mode } : {}),
    ...(req.universe ? { universe: (query: UniverseQuery) => askHost(req.id, query) } : {}),
  };
  try {
    const acceptance = acceptPolicy(req.text, req.fileName, options);
    if (req.tablesAhead !== undefined) sendTables(req.id, acceptance, req.tablesAhead);
    try {
      const indexSets = judgedInUserSpace(acceptance);
      const { packed, transfer, unlocated } = packAcceptance(acceptance, undefined, indexSets);
      return { reply: { id: req.id, packed }, transfer, ...(unlocated ? { unlocated } : {}) };
    } catch {
      return { reply: { id: req.id, here: true } }; // accepted again there
    }
  } catch (err) {
    return { reply: { id: req.id, error: (err as Error).message } };
  }
}

/** `acceptance`'s packet tables ahead of its reply, when they are big (AcceptTables). */
function sendTables(id: number, { policy }: Acceptance, from: number): void {
  const image = policy?.image.packet;
  if (!image) return;
  const entries =
    image.remote4.length + image.local4.length + image.remoteY.r.length + image.remoteOnly.length;
  if (entries < from) return;
  // copied, not moved: the reply carries the image too
  const message: AcceptTables = { tablesOf: id, tables: tableImage(image) };
  try {
    parentPort?.postMessage(message);
  } catch {
    // the swap makes its tables itself: nothing is refused for this
  }
}

/** The last reply's table, when its offsets were not worked out: the daemon may ask for them. */
let unlocated: { id: number; table: PositionTable } | undefined;

/** The offsets of request `id`'s table, as AcceptLocate asked. */
function sendOffsets(id: number): void {
  const table = unlocated?.id === id ? unlocated.table : undefined;
  unlocated = undefined;
  let packed: Uint8Array | undefined;
  try {
    if (table) packed = table.withArrays(packTable);
  } catch {
    // the daemon's thread works them out itself when it reads a line
  }
  const message: AcceptOffsets = { located: id, ...(packed ? { packed } : {}) };
  const transfer = packed?.buffer instanceof ArrayBuffer ? [packed.buffer] : [];
  parentPort?.postMessage(message, transfer);
}

parentPort?.on("message", (req: AcceptRequest | AcceptLocate) => {
  if ("locate" in req) return sendOffsets(req.locate);
  unlocated = undefined; // a newer policy: the daemon will not ask for the older one's
  const { reply, transfer, unlocated: table } = answer(req);
  if (table) unlocated = { id: req.id, table };
  parentPort?.postMessage(reply, transfer);
});
