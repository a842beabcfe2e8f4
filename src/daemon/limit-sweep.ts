// The rate limits' state sweep (docs/policy.md, "rate_limit"): every few seconds, the state of
// sources idle long enough to count as new, and of limits gone from the policy, is removed, so
// the table keeps room for the sources that send now.
import type { Datapath } from "../datapath/index.ts";

const EVERY_MS = 5000;

export function startLimitSweep(datapath: Pick<Datapath, "sweepLimits">): { stop(): void } {
  const timer = setInterval(() => datapath.sweepLimits(), EVERY_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
