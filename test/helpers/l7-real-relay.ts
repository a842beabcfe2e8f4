// moat's real L7Relay on loopback with the kernel's part given: every client it accepts is
// taken as redirected from 127.0.0.1:`port` by one process (pid 4242, `comm`), and its events
// and log lines land in lists.
import type { PolicyModel } from "../../src/config/index.ts";
import type { MoatEvent } from "../../src/datapath/index.ts";
import { L7Relay, type L7RelayOptions } from "../../src/l7/index.ts";

export interface RealRelayOptions {
  /** The original destination's port on 127.0.0.1 (the upstream server). */
  port: number;
  policy: PolicyModel | (() => PolicyModel);
  comm?: string;
  names?: () => string[];
  headerTimeoutMs?: number;
  /** In place of copying both ways in the process (the daemon's kernel splice). */
  splice?: L7RelayOptions["splice"];
  /** In place of a plain connect to the original destination (to see what an upstream carries). */
  connectUpstream?: L7RelayOptions["connectUpstream"];
}

export async function openRealRelay(o: RealRelayOptions) {
  const events: MoatEvent[] = [];
  const logs: string[] = [];
  const comm = o.comm ?? "curl";
  const policy = o.policy;
  const relay = await L7Relay.open({
    original: () => ({
      original: { ip: "127.0.0.1", port: o.port },
      protocol: "tcp",
      redirect: 0,
      generation: 1,
      target: { ip: "127.0.0.1", port: 1 },
      owner: { pid: 4242, uid: 1000, cgroupId: 7n, comm },
    }),
    process: () => ({ pid: 4242, name: comm }) as never,
    names: o.names ?? (() => []),
    policy: typeof policy === "function" ? policy : () => policy,
    generation: () => 1,
    report: (e) => events.push(e),
    log: (line) => logs.push(line),
    ...(o.headerTimeoutMs !== undefined ? { headerTimeoutMs: o.headerTimeoutMs } : {}),
    ...(o.splice ? { splice: o.splice } : {}),
    ...(o.connectUpstream ? { connectUpstream: o.connectUpstream } : {}),
  });
  return { relay, events, logs };
}
