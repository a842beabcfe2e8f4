// `moat explain --name NAME --dns-query NAME`: the facts moat's DNS proxy adds. --name gives the
// names the remote address was resolved from for this process (its bindings); --dns-query says
// the connection is a DNS query for NAME, judged by layer7.dns rules. Names are read as the
// policy reads them: lower-cased, without the trailing dot, non-ASCII labels as A-labels.

import { UsageError, type OptionValues } from "../command.ts";
import { parseHostname } from "../../config/index.ts";
import type { ConnectionFacts } from "../../policy/index.ts";

/** The port moat's DNS proxy judges queries on. */
export const DNS_PORT = 53;

function nameArg(option: string, text: string): string {
  const parsed = parseHostname(text);
  if (!parsed.ok) throw new UsageError(`${option}: ${parsed.error}`);
  if (parsed.value.wildcard !== null)
    throw new UsageError(`${option}: '${text}' is a pattern; give a name`);
  return parsed.value.name;
}

export const isDnsQuery = (values: OptionValues): boolean =>
  typeof values["dns-query"] === "string";

export function addNames(facts: ConnectionFacts, values: OptionValues): void {
  const names = values.name;
  if (Array.isArray(names) && names.length > 0) {
    if (facts.direction !== "egress")
      throw new UsageError(
        "--name: names are learned for the addresses this host connects to (--direction egress)",
      );
    facts.remote.names = [...new Set(names.map((n) => nameArg("--name", n)))];
  }
  const query = values["dns-query"];
  if (typeof query !== "string") return;
  const port = facts.remote.port;
  if ((facts.protocol !== "udp" && facts.protocol !== "tcp") || port !== DNS_PORT)
    throw new UsageError(
      `--dns-query: moat's DNS proxy judges queries sent to port ${DNS_PORT} over udp or tcp, not ${String(facts.protocol)}${port === undefined ? "" : ` port ${port}`} (DNS over TLS, tcp port 853, is judged by its ports: leave --dns-query out)`,
    );
  facts.layer7 = { dns: { name: nameArg("--dns-query", query) } };
}
