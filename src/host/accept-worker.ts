// The worker thread side of acceptPolicyOffThread (accept-off-thread.ts): it runs the one
// acceptance (acceptPolicyAsync) and hands the result back. What needs the daemon's own objects
// stays on the main thread: a policy whose process rules need the host's universe, or whose image
// holds name classes (a class with private state that a message cannot carry), is answered with
// `here: true` and accepted there.
import { parentPort } from "node:worker_threads";
import type { PositionTable } from "../config/index.ts";
import { packAcceptance, type PackedAcceptance } from "./accept-handback.ts";
import { acceptPolicyAsync, type AcceptOptions } from "./accept-policy.ts";

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
 * Sent after a reply whose table came without its offsets (a file read the lean way): the offsets,
 * worked out here once the daemon has its policy, so reading a line there (a message, `moat
 * explain`, a relay decision) never reads the whole file again on the daemon's thread.
 */
export interface AcceptOffsets {
  id: number;
  offsets: Int32Array;
  lineStarts: Int32Array;
}

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
    if (acceptance.policy?.image.names) return { reply: { id: req.id, here: true } };
    try {
      const { packed, transfer, unlocated } = packAcceptance(acceptance);
      return { reply: { id: req.id, packed }, transfer, ...(unlocated ? { unlocated } : {}) };
    } catch {
      return { reply: { id: req.id, here: true } }; // accepted again there
    }
  } catch (err) {
    if (err instanceof NeedsHost) return { reply: { id: req.id, here: true } };
    return { reply: { id: req.id, error: (err as Error).message } };
  }
}

/** The offsets of `table`, sent after the reply to request `id` (nothing when they cannot be read). */
function sendOffsets(id: number, table: PositionTable): void {
  let message: AcceptOffsets;
  try {
    message = { id, ...table.offsetsNow() };
  } catch {
    return; // the daemon's thread works them out itself when it reads a line
  }
  const transfer = [message.offsets.buffer, message.lineStarts.buffer] as ArrayBuffer[];
  parentPort?.postMessage(message, transfer);
}

parentPort?.on("message", (req: AcceptRequest) => {
  void answer(req).then(({ reply, transfer, unlocated }) => {
    parentPort?.postMessage(reply, transfer);
    if (unlocated) setImmediate(() => sendOffsets(req.id, unlocated));
  });
});
