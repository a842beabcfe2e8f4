// What a policy change left behind, given back to the system once the policy worker has stopped.
// The policy before it and the hand-back's copies are garbage in the daemon's V8 heap by then, but
// V8 keeps the pages they took mapped (its memory reducer shrinks the heap only after minutes of
// quiet): a 100k-rule daemon read ~430 MB for two minutes after a reload, ~280 before it. A
// collection that compacts and releases the heap, then the C heap's free pages (the worker's
// arena), bring it back to what the daemon holds.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { trimMemory } from "../datapath/index.ts";

/** V8's collection function (`--expose-gc`), with the options the daemon uses. */
type Collect = (options: { type: "major"; execution: "sync"; flavor: "last-resort" }) => void;

let collect: Collect | undefined;

/** V8's `gc`, made available at run time: a context created after the flag is set has it. */
function collectFunction(): Collect {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as Collect;
}

/** When the C heap is trimmed again after giving memory back (a trim is a few ms). */
export const TRIM_AGAIN_MS = [2_000, 15_000, 30_000];

/**
 * Collects the heap's garbage and gives its free pages back, then the C heap's (`trim`), and that
 * again later (TRIM_AGAIN_MS). It holds the event loop once, ~200-250 ms for a 100k-rule daemon,
 * ~5 s after a policy change (the kernel's ring buffers hold the events meanwhile).
 */
export function giveMemoryBack(trim: () => unknown = trimMemory): void {
  collect ??= collectFunction();
  collect({ type: "major", execution: "sync", flavor: "last-resort" });
  trim();
  // what is freed after this (the stopped worker's isolate is torn down seconds after its exit,
  // and V8 frees dead array buffers on a thread of its own) stayed in the C heap: ~25 MB in one
  // reading of two after a 100k-rule reload
  for (const ms of TRIM_AGAIN_MS) setTimeout(trim, ms).unref();
}
