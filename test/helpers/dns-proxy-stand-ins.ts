// What the daemon gives moat's DNS proxy, stood in for when a test or a bench opens the proxy in
// its own process. Type imports only: a bench that measures another tree's proxy loads nothing of
// this one.
import type { DnsProxyOptions } from "../../src/dns/proxy.ts";

/**
 * The daemon's side of the proxy's options: every client runs `path` in cgroup /lab, a full
 * bindings map blocks the answer (failure.helper), and the policy is generation 1.
 */
export function daemonStandIns(
  path: string,
): Pick<DnsProxyOptions, "process" | "failureHelper" | "generation"> {
  return {
    process: (o) => ({
      pid: o.pid,
      name: o.comm,
      path,
      user: o.uid,
      cgroup: "/lab",
      container: null,
    }),
    failureHelper: () => "block",
    generation: () => 1,
  };
}
