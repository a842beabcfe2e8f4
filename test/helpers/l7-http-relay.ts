// An L7Context around the real reference evaluator, for driving one protocol handler on
// loopback: a listener stands in for the relay (it reads the first bytes and hands the socket
// over), the policy is parsed from YAML, every judge() is `evaluate` on the connection's facts
// plus the handler's layer7 facts, and every report lands in `reports`.
import { createServer, connect, type AddressInfo, type Server, type Socket } from "node:net";
import { once } from "node:events";
import { parsePolicy, type PolicyModel } from "../../src/config/index.ts";
import { evaluate, type ConnectionFacts } from "../../src/policy/index.ts";
import type { Layer7Facts } from "../../src/policy/facts.ts";
import type { L7Context, L7Decision, L7Handler, SpliceMode } from "../../src/l7/types.ts";

export interface Report {
  verdict: L7Decision["verdict"];
  rule: string;
  layer7: Layer7Facts;
  splice?: SpliceMode;
}

export interface L7Relay {
  /** Where clients connect (the relay's listener). */
  port: number;
  reports: Report[];
  /** What the handler logged (why it closed a connection, for one). */
  logs: string[];
  /** How many times the handler handed a pair of sockets to splice. */
  splices: number;
  close(): Promise<void>;
}

/** The judgement the relay makes: the whole policy, first match; a deferral refuses. */
function judgeWith(policy: PolicyModel, base: ConnectionFacts) {
  return (layer7: Layer7Facts): L7Decision => {
    const result = evaluate(policy, { ...base, layer7 });
    if (result.verdict === "deferred")
      return {
        verdict: "blocked",
        rule: result.rule,
        forward: false,
        explanation: [result.reason],
      };
    return {
      verdict: result.verdict,
      rule: result.rule,
      forward: result.verdict !== "blocked",
      explanation: [result.reason],
    };
  };
}

/** A relay listener on 127.0.0.1 whose connections go to `handler`, upstream 127.0.0.1:`upstreamPort`. */
export async function startL7Relay(
  policyText: string,
  upstreamPort: number,
  handler: L7Handler,
  /** The names this identity resolved to the upstream's address (the DNS proxy's bindings). */
  names: string[] = [],
): Promise<L7Relay> {
  const policy = parsePolicy(policyText, "policy.yaml");
  const reports: Report[] = [];
  const logs: string[] = [];
  const sockets = new Set<Socket>();
  const state = { splices: 0 };
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => {});
    client.once("data", (head: Buffer) => {
      client.pause();
      const base: ConnectionFacts = {
        direction: "egress",
        protocol: "tcp",
        family: 4,
        local: { ip: "127.0.0.1", port: client.remotePort ?? 0 },
        remote: { ip: "127.0.0.1", port: upstreamPort, names },
      };
      const ctx: L7Context = {
        client,
        head,
        original: { ip: "127.0.0.1", port: upstreamPort, family: 4 },
        facts: base,
        judge: judgeWith(policy, base),
        connectUpstream: async () => {
          const upstream = connect(upstreamPort, "127.0.0.1");
          sockets.add(upstream);
          upstream.on("close", () => sockets.delete(upstream));
          await once(upstream, "connect");
          return upstream;
        },
        report: (decision, layer7, extra) =>
          reports.push({ verdict: decision.verdict, rule: decision.rule, layer7, ...extra }),
        splice: async (a, b) => {
          state.splices++;
          a.pipe(b);
          b.pipe(a);
          a.resume();
          b.resume();
          return "copy";
        },
        log: (line) => logs.push(line),
      };
      void handler(ctx);
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as AddressInfo).port,
    reports,
    logs,
    get splices() {
      return state.splices;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, "close");
    },
  };
}
