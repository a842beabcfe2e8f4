// An L7Context for protocol handler tests, around the real evaluator and a parsed policy: a local
// listener stands in for the relay (its first connection is the client), `original` is a real
// server, judge() is src/policy evaluate with the connection's facts, report() records events, and
// splice() copies both ways.

import { createServer, connect, type AddressInfo, type Socket } from "node:net";
import type { PolicyModel } from "../../src/config/index.ts";
import { evaluate, type ConnectionFacts } from "../../src/policy/evaluator.ts";
import type { Layer7Facts } from "../../src/policy/facts.ts";
import type { L7Context, L7Decision, L7Handler, SpliceMode } from "../../src/l7/types.ts";

export interface Reported {
  decision: L7Decision;
  layer7: Layer7Facts;
  splice?: SpliceMode;
}

export interface HandledConnection {
  reports: Reported[];
  /** How many connections the handler opened to the original destination (probes included). */
  upstreams: number;
  logs: string[];
  /** Settles when the handler returns. */
  done: Promise<void>;
}

export interface RelayStandIn {
  port: number;
  /** The next connection to the stand-in is handled with this policy and destination. */
  next(
    policy: PolicyModel,
    original: { ip: string; port: number },
    names?: string[],
  ): HandledConnection;
  close(): Promise<void>;
}

export async function relayStandIn(handler: L7Handler): Promise<RelayStandIn> {
  const waiting: ((client: Socket) => void)[] = [];
  const server = createServer({ pauseOnConnect: true }, (client) => {
    const take = waiting.shift();
    if (take) take(client);
    else client.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const sockets = new Set<Socket>();
  return {
    port,
    next(policy, original, names = []) {
      const reports: Reported[] = [];
      const logs: string[] = [];
      const handled: HandledConnection = { reports, logs, upstreams: 0, done: Promise.resolve() };
      handled.done = new Promise<void>((resolve, reject) => {
        waiting.push((client) => {
          sockets.add(client);
          client.once("readable", () => {
            const head = (client.read() as Buffer | null) ?? Buffer.alloc(0);
            client.pause();
            const facts: ConnectionFacts = {
              direction: "egress",
              protocol: "tcp",
              family: 4,
              local: { ip: "127.0.0.1", port: client.remotePort ?? 0 },
              remote: { ip: original.ip, port: original.port, names },
              process: { pid: process.pid, name: "client" },
            };
            const ctx: L7Context = {
              client,
              head,
              original: { ...original, family: 4 },
              facts,
              judge: (layer7) => judged(policy, { ...facts, layer7 }),
              connectUpstream: () =>
                new Promise((ok, fail) => {
                  handled.upstreams++;
                  const s = connect(original.port, original.ip, () => ok(s));
                  s.pause();
                  sockets.add(s);
                  s.once("error", fail);
                }),
              report: (decision, layer7, extra) => reports.push({ decision, layer7, ...extra }),
              splice: (a, b) => {
                a.pipe(b);
                b.pipe(a);
                a.resume();
                b.resume();
                return Promise.resolve("copy");
              },
              log: (line) => logs.push(line),
            };
            handler(ctx).then(resolve, reject);
          });
        });
      });
      return handled;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The evaluator's answer as the relay's decision; a deferred one is a test failure to see. */
function judged(policy: PolicyModel, facts: ConnectionFacts): L7Decision {
  const e = evaluate(policy, facts);
  if (e.verdict === "deferred")
    return {
      verdict: "blocked",
      rule: `deferred:${e.needs.join(",")}`,
      forward: false,
      explanation: [e.reason],
    };
  return {
    verdict: e.verdict,
    rule: e.rule,
    forward: e.verdict !== "blocked",
    explanation: [e.reason],
  };
}
