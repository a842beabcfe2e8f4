// The worker thread side of acceptPolicyOffThread (accept-off-thread.ts): it runs the one
// acceptance (acceptPolicyAsync) and hands the result back. What needs the daemon's own objects
// stays on the main thread: a policy whose process rules need the host's universe is answered
// with `here: true` and accepted there. Name classes cross as their patterns (accept-handback.ts).
import { parentPort } from "node:worker_threads";
import type { PositionTable } from "../config/index.ts";
import { relayRule, usesNames } from "../policy/index.ts";
import { packAcceptance, type PackedAcceptance } from "./accept-handback.ts";
import { acceptPolicyAsync, type Acceptance, type AcceptOptions } from "./accept-policy.ts";

export interface AcceptRequest {
  id: number;
  text: string;
  fileName: string;
  compile?: AcceptOptions["compile"];
  decisions?: AcceptOptions["decisions"];
  mode?: AcceptOptions["mode"];
  /** The caller has a universe reader: process rules must be compiled where it is. */
  universe: boolean;
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

/** The answer to an AcceptLocate: no offsets when this worker no longer has that table. */
export interface AcceptOffsets {
  /** The request whose table these are. */
  located: number;
  offsets?: Int32Array;
  lineStarts?: Int32Array;
}

/**
 * Whether the daemon judges this policy's connections in user space (its DNS proxy, its relay):
 * then big sets cross with their lookup index, which the daemon's thread need not build.
 */
const judgedInUserSpace = ({ policy }: Acceptance): boolean =>
  policy !== undefined && (usesNames(policy.model) || policy.model.rules.some(relayRule));

/** Thrown by the stand-in universe reader: the policy names processes. */
class NeedsHost extends Error {}

async function answer(
  req: AcceptRequest,
): Promise<{ reply: AcceptReply; transfer?: ArrayBuffer[]; unlocated?: PositionTable }> {
  const options: AcceptOptions = {
    ...(req.compile ? { compile: req.compile } : {}),
    ...(req.decisions ? { decisions: req.decisions } : {}),
    ...(req.mode ? { mode: req.mode } : {}),
    ...(req.universe
      ? {
          universe: () => {
            throw new NeedsHost();
          },
        }
      : {}),
  };
  try {
    const acceptance = await acceptPolicyAsync(req.text, req.fileName, options);
    try {
      const indexSets = judgedInUserSpace(acceptance);
      const { packed, transfer, unlocated } = packAcceptance(acceptance, undefined, indexSets);
      return { reply: { id: req.id, packed }, transfer, ...(unlocated ? { unlocated } : {}) };
    } catch {
      return { reply: { id: req.id, here: true } }; // accepted again there
    }
  } catch (err) {
    if (err instanceof NeedsHost) return { reply: { id: req.id, here: true } };
    return { reply: { id: req.id, error: (err as Error).message } };
  }
}

/** The last reply's table, when its offsets were not worked out: the daemon may ask for them. */
let unlocated: { id: number; table: PositionTable } | undefined;

/** The offsets of request `id`'s table, as AcceptLocate asked. */
function sendOffsets(id: number): void {
  const table = unlocated?.id === id ? unlocated.table : undefined;
  unlocated = undefined;
  let message: AcceptOffsets = { located: id };
  try {
    if (table) message = { located: id, ...table.offsetsNow() };
  } catch {
    // the daemon's thread works them out itself when it reads a line
  }
  const transfer = [message.offsets?.buffer, message.lineStarts?.buffer].filter(
    (b): b is ArrayBuffer => b instanceof ArrayBuffer,
  );
  parentPort?.postMessage(message, transfer);
}

parentPort?.on("message", (req: AcceptRequest | AcceptLocate) => {
  if ("locate" in req) return sendOffsets(req.locate);
  unlocated = undefined; // a newer policy: the daemon will not ask for the older one's
  void answer(req).then(({ reply, transfer, unlocated: table }) => {
    if (table) unlocated = { id: req.id, table };
    parentPort?.postMessage(reply, transfer);
  });
});
