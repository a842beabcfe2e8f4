// The daemon's heartbeat to the kernel (failure.daemon, docs/policy.md "failure"): written
// every second while the daemon runs, so that hooks falling back to allow without a daemon
// know it is alive. Under enforce the kernel never reads it.
import type { Datapath } from "../datapath/index.ts";

/** Seconds between heartbeats; the kernel's grace period (daemon_grace_s) is 5. */
const EVERY_MS = 1000;

export function startHeartbeat(datapath: Pick<Datapath, "heartbeat">): { stop(): void } {
  datapath.heartbeat();
  const timer = setInterval(() => datapath.heartbeat(), EVERY_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
