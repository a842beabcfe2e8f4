// moat explain FILE PROTO CLIENT '->' SERVER: which rule decides a connection, and why.
// Runs the reference evaluator, the same one the datapath is tested against.

import type { Command, Io } from "../command.ts";
import { UsageError } from "../command.ts";
import { formatDiagnostic, PolicyError, type Mode, type PolicyModel } from "../../config/index.ts";
import {
  bootId,
  checkPolicyFile,
  DEFAULT_DECISIONS,
  readDecisionsFile,
  type DecisionsRead,
} from "../../host/index.ts";
import {
  evaluate,
  explanationLines,
  parseConnectionText,
  PROCESS_FIELDS,
} from "../../policy/index.ts";
import { verdictExit } from "../exit-codes.ts";
import { jsonLine } from "../json-line.ts";
import { colourExplainLine, colourFor } from "../colour.ts";
import { addContext } from "./explain-context.ts";
import { addNames, DNS_PORT, isDnsQuery } from "./explain-names.ts";
import { addLayer7, isLayer7, L7_HELP, L7_OPTIONS, L7_USAGE } from "./explain-layer7.ts";

const USAGE = `moat explain FILE PROTO CLIENT '->' SERVER [type N [code N]] [--direction ingress|egress]
             [--process KEY=VALUE,...] [--interface NAME] [--tunnel | --no-tunnel]
             [--hop-limit N] [--name NAME]... [--dns-query NAME] [--decisions FILE | none]
             [--json] ${L7_USAGE}

  Exit status by verdict: 0 allowed, 3 blocked, 4 detected, 5 deferred (the verdict needs
  facts not given); 1 the policy has errors, 2 usage.
  --json: one JSON object: the connection's facts and the evaluation (verdict, action, rule,
    mode, reason, line; for deferred: needs and possible).
  The left side opened the connection; the right side is the server.
  --direction ingress (default): the right side is this host (a peer connects in).
  --direction egress: the left side is this host (it connects out).
  Quote the arrow in a shell ('->'), write 'to', or leave it out.
  --process: the local process owning the socket; keys ${PROCESS_FIELDS.join(", ")}
    (user is a uid or a name; container=none = not in a container). Keys left out are unknown.
    --process none: no process on this host owns it (a packet the host forwards).
  --interface: the interface the connection is routed by (not a tunnel unless --tunnel).
  --hop-limit: the first packet's IPv6 hop limit (IPv4 TTL); neighbour and router discovery
    with 255 is basic networking, which passes unjudged (docs/datapath.md).
  --name: a name DNS gave the remote address to this process (repeat for several); without it
    the names are unknown and hostname entries cannot decide.
  --dns-query: the connection is a DNS query for NAME (layer7.dns rules); egress, and PROTO
    (udp) and the server's port (53) may be left out.
  --decisions: the local decisions judged before the policy's rules (default: the daemon's,
    ${DEFAULT_DECISIONS}, when it exists; none: without them).
${L7_HELP}

  moat explain policy.yaml tcp 203.0.113.9:51514 '->' 10.0.0.1:22
  moat explain policy.yaml udp 10.0.0.1:40000 to 9.9.9.9:53 --direction egress
  moat explain policy.yaml tcp [2001:db8::9]:50000 '->' [2001:db8::1]:443
  moat explain policy.yaml icmp 10.0.0.2 '->' 10.0.0.1 type 8 code 0
  moat explain policy.yaml tcp 10.0.0.1:40000 '->' 1.2.3.4:443 --direction egress \\
    --process path=/usr/bin/curl,name=curl,user=1000,cgroup=/user.slice --interface wg0 --tunnel
  moat explain policy.yaml tcp 10.0.0.1:40000 '->' 140.82.112.3:443 --direction egress \\
    --name github.com
  moat explain policy.yaml 10.0.0.1:40000 '->' 9.9.9.9 --dns-query ads.example.com
  moat explain policy.yaml tcp 10.0.0.1:40000 '->' 93.184.215.14:443 --direction egress \\
    --sni example.org --name example.org`;

export const explainCommand: Command = {
  name: "explain",
  summary: "show which rule decides a connection, the verdict and why",
  usage: USAGE,
  options: {
    direction: { type: "string" },
    process: { type: "string", multiple: true },
    interface: { type: "string" },
    tunnel: { type: "boolean" },
    "no-tunnel": { type: "boolean" },
    "hop-limit": { type: "string" },
    name: { type: "string", multiple: true },
    "dns-query": { type: "string" },
    decisions: { type: "string" },
    json: { type: "boolean" },
    ...L7_OPTIONS,
    // an unquoted-by-parseArgs "->" reads as the short option ">": accept it as the arrow
    arrow: { type: "boolean", short: ">", multiple: true },
  },
  async run({ values, positionals }, io) {
    const [file, ...words] = positionals;
    if (!file || words.length === 0) throw new UsageError(`missing arguments\nusage: ${USAGE}`);
    const query = isDnsQuery(values);
    const direction = values.direction ?? (query || isLayer7(values) ? "egress" : "ingress");
    if (direction !== "ingress" && direction !== "egress")
      throw new UsageError(`--direction must be ingress or egress, got '${String(direction)}'`);
    if (query && direction !== "egress")
      throw new UsageError(
        "--dns-query: the queries moat judges are the ones this host sends (--direction egress)",
      );
    const defaults = query ? { protocol: "udp" as const, serverPort: DNS_PORT } : {};
    const parsed = parseConnectionText(words, direction, defaults);
    if (!parsed.ok) throw new UsageError(`${parsed.error}\nusage: ${USAGE}`);
    addContext(parsed.value, values);
    addNames(parsed.value, values);
    if (isLayer7(values) && query)
      throw new UsageError("--dns-query: a DNS query has no other layer7 facts");
    addLayer7(parsed.value, values);
    const hopLimit = values["hop-limit"];
    if (hopLimit !== undefined) {
      const text = String(hopLimit);
      if (!/^\d{1,3}$/.test(text) || Number(text) > 255)
        throw new UsageError(`--hop-limit must be an integer 0-255, got '${text}'`);
      parsed.value.hopLimit = Number(text);
    }
    const stored = storedDecisions(values.decisions);
    const written = loadForExplain(file, io, stored.mode?.mode);
    if (!written) return 1;
    const model = stored.decisions.length ? { ...written, decisions: stored.decisions } : written;
    const defaulted = values.direction === undefined && !query && !isLayer7(values);
    const result = evaluate(model, parsed.value);
    if (values.json) io.out(jsonLine({ facts: parsed.value, ...result }));
    else {
      const colour = colourFor(process.stdout);
      for (const line of explanationLines(model, parsed.value, defaulted))
        io.out(colour ? colourExplainLine(line) : line);
    }
    return verdictExit(result.verdict);
  },
};

function loadForExplain(file: string, io: Io, mode?: Mode): PolicyModel | undefined {
  let result;
  try {
    result = checkPolicyFile(file, undefined, mode);
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    result = { diagnostics: err.diagnostics, model: undefined };
  }
  if (result.model) return result.model;
  for (const d of result.diagnostics) if (d.severity === "error") io.err(formatDiagnostic(d));
  io.err(`${file}: the policy has errors; run 'moat check ${file}'`);
  return undefined;
}

/** The local decisions (and `moat mode`'s) of `option`: a file, "none", or the daemon's default. */
function storedDecisions(option: unknown): Pick<DecisionsRead, "decisions" | "mode"> {
  if (option === "none") return { decisions: [] };
  const path = typeof option === "string" ? option : DEFAULT_DECISIONS;
  try {
    return readDecisionsFile(path, bootId(), Date.now());
  } catch (err) {
    throw new UsageError(`--decisions ${path}: ${(err as Error).message}`, 1);
  }
}
