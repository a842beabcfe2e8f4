// A stand-in for moat's L7 relay in tests of protocol handlers: a loopback listener whose
// connections go to one handler with an L7Context around the REAL evaluator (the whole policy,
// first match), an upstream straight to the original destination, reports kept in a list and
// splice as a copy both ways. The kernel redirect is not involved: each listener stands for one
// original destination.
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import type { PolicyModel } from "../../src/config/index.ts";
import { evaluate, type ConnectionFacts } from "../../src/policy/index.ts";
import type { Layer7Facts } from "../../src/policy/facts.ts";
import type { L7Decision, L7Handler, SpliceMode } from "../../src/l7/types.ts";

export interface L7Report {
  decision: L7Decision;
  layer7: Layer7Facts;
  splice?: SpliceMode;
}

export interface TestRelay {
  port: number;
  reports: L7Report[];
  logs: string[];
  /** Resolves when the handler of the next connection has returned. */
  handled(): Promise<void>;
  close(): Promise<void>;
}

/** Judges as the relay does: the whole policy; undecided (deferred) is refused. */
export function judgeWith(model: PolicyModel, facts: ConnectionFacts) {
  return (layer7: Layer7Facts): L7Decision => {
    const e = evaluate(model, { ...facts, layer7 });
    if (e.verdict === "deferred")
      return { verdict: "blocked", rule: e.rule, forward: false, explanation: [e.reason] };
    return {
      verdict: e.verdict,
      rule: e.rule,
      forward: e.verdict !== "blocked",
      explanation: [e.reason],
    };
  };
}

export async function startTestRelay(
  model: PolicyModel,
  handler: L7Handler,
  original: { ip: string; port: number },
): Promise<TestRelay> {
  const reports: L7Report[] = [];
  const logs: string[] = [];
  const waiting: (() => void)[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer({ pauseOnConnect: true }, (client) => {
    sockets.add(client);
    client.on("error", () => {});
    client.once("readable", () => {
      const head = (client.read() as Buffer | null) ?? Buffer.alloc(0);
      client.pause();
      const facts: ConnectionFacts = {
        direction: "egress",
        protocol: "tcp",
        family: 4,
        local: { ip: client.remoteAddress ?? "127.0.0.1", port: client.remotePort ?? 0 },
        remote: { ip: original.ip, port: original.port, names: [] },
      };
      void handler({
        client,
        head,
        original: { ...original, family: 4 },
        facts,
        judge: judgeWith(model, facts),
        connectUpstream: () =>
          new Promise<Socket>((resolve, reject) => {
            const up = connect(original.port, original.ip, () => resolve(up));
            sockets.add(up);
            up.once("error", reject);
          }),
        report: (decision, layer7, extra) =>
          reports.push({ decision, layer7, ...(extra?.splice ? { splice: extra.splice } : {}) }),
        splice: (a, b) => {
          a.on("error", () => {});
          b.on("error", () => {});
          a.pipe(b);
          b.pipe(a);
          a.resume();
          b.resume();
          return Promise.resolve("copy");
        },
        log: (line) => logs.push(line),
      }).finally(() => waiting.shift()?.());
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as AddressInfo).port,
    reports,
    logs,
    handled: () => new Promise<void>((r) => waiting.push(r)),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
