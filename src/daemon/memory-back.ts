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

/**
 * Collects the heap's garbage and gives its free pages back, then the C heap's. It holds the event
 * loop once, ~200-250 ms for a 100k-rule daemon, ~5 s after a policy change (the kernel's ring
 * buffers hold the events meanwhile).
 */
export function giveMemoryBack(): void {
  collect ??= collectFunction();
  collect({ type: "major", execution: "sync", flavor: "last-resort" });
  trimMemory();
}
