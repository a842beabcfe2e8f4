// What one judgement in user space costs at a big policy: the DNS proxy judges each query, the
// L7 relay each connection (one to three times), `moat explain` and the playground each
// connection asked about, all with the reference evaluator. CPU µs a judgement (the median of
// rounds, each the mean of a batch), and the first judgement of a policy on its own (the indexes
// are built then), for:
//   - bench/compile.ts's mixed policy at 100 / 10k / 100k rules, its directions mixed (ingress,
//     egress, any in turn): a DNS query (egress udp 53) and an ingress tcp connection from an
//     address and to a port of the rules' kind;
//   - a block list rule on a set of 1M CIDRs (bigSetModel): a DNS query.
//
//   node bench/user-judge.ts [--root=DIR]   --root: the tree whose evaluator is measured
//                                           (default: this one), e.g. a copy of an older commit
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { PolicyModel } from "../src/config/index.ts";
import type { ConnectionFacts } from "../src/policy/index.ts";
import { bigSetModel, mixedModel } from "./compile.ts";
import { writeResult } from "./results.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const root = (process.argv.find((a) => a.startsWith("--root="))?.slice(7) ?? ROOT).replace(
  /\/?$/,
  "/",
);
const { evaluate } = (await import(
  `${root}src/policy/index.ts`
)) as typeof import("../src/policy/index.ts");

const ROUNDS = 7;
/** Judgements a round takes at least this long. */
const ROUND_MS = 200;

const dnsQuery: ConnectionFacts = {
  direction: "egress",
  protocol: "udp",
  family: 4,
  local: { ip: "10.0.0.2", port: 40_000 },
  remote: { ip: "10.0.0.53", port: 53 },
  layer7: { dns: { name: "h1.bench.test", over_tls: false } },
};

/** An ingress tcp connection to the port of rule `r` of the mixed policy, from outside its CIDR. */
function ingressTo(model: PolicyModel, r: number): ConnectionFacts {
  const port = model.rules[r]?.layer4?.ports?.[0]?.lo ?? 443;
  return {
    direction: "ingress",
    protocol: "tcp",
    family: 4,
    local: { ip: "10.0.0.2", port },
    remote: { ip: "198.51.100.7", port: 40_000 },
  };
}

function mixedDirections(count: number): PolicyModel {
  const model = mixedModel(count);
  const turn = ["ingress", "egress", "any"] as const;
  model.rules.forEach((r, i) => (r.direction = turn[i % 3]!));
  return model;
}

const cpuUs = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

function measure(model: PolicyModel, facts: ConnectionFacts) {
  const before = cpuUs();
  const verdict = evaluate(model, facts);
  const firstUs = cpuUs() - before;
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const start = cpuUs();
    const deadline = performance.now() + ROUND_MS;
    let n = 0;
    do {
      evaluate(model, facts);
      n++;
    } while (performance.now() < deadline);
    rounds.push((cpuUs() - start) / n);
  }
  rounds.sort((a, b) => a - b);
  const decided =
    verdict.verdict === "deferred" ? "deferred" : `${verdict.verdict} by ${verdict.rule}`;
  return { firstUs: Math.round(firstUs), us: Number(rounds[ROUNDS >> 1]!.toFixed(2)), decided };
}

const rows: Record<string, unknown>[] = [];
const report = (policy: string, judged: string, m: ReturnType<typeof measure>) => {
  rows.push({ policy, judged, ...m });
  console.log(
    `${policy.padEnd(24)} ${judged.padEnd(18)} first ${m.firstUs} µs, then ${m.us} µs (${m.decided})`,
  );
};

for (const count of [100, 10_000, 100_000]) {
  const model = mixedDirections(count);
  report(`mixed ${count} rules`, "DNS query", measure(model, dnsQuery));
  report(`mixed ${count} rules`, "ingress tcp", measure(model, ingressTo(model, count - 2)));
}
const blocklist = bigSetModel(1_000_000, 8);
report("set of 1M CIDRs", "DNS query", measure(blocklist, dnsQuery));

writeResult("user-judge", { root, rounds: ROUNDS, roundMs: ROUND_MS, rows });
