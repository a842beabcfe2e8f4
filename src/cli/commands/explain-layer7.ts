// `moat explain --http METHOD,HOST,PATH | --sni NAME | --ssh-key SHA256:...`: the facts moat's L7
// relay adds to a connection this host opens (docs/l7.md). One protocol per connection. The
// names the relay checks a Host or SNI against are given with --name (absent: unknown, so a rule
// that does not take the name on trust is "maybe").

import { UsageError, type OptionValues } from "../command.ts";
import type { ConnectionFacts } from "../../policy/index.ts";

export const L7_OPTIONS = {
  http: { type: "string" },
  "http-version": { type: "string" },
  sni: { type: "string" },
  "tls-version": { type: "string" },
  "ssh-key": { type: "string" },
  "ssh-version": { type: "string" },
} as const;

export const L7_USAGE = `[--http METHOD,HOST,PATH [--http-version 1.1]] [--sni NAME [--tls-version 1.3]]
             [--ssh-key SHA256:... [--ssh-version SSH-2.0-...]]`;

export const L7_HELP = `  --http, --sni, --ssh-key: what moat's L7 relay reads in the connection's first bytes (an
      HTTP request, a TLS ClientHello's server name, an SSH server's host key); egress tcp.
      A Host or SNI matches only the names given with --name unless the rule trusts it.`;

export const isLayer7 = (values: OptionValues): boolean =>
  ["http", "sni", "ssh-key"].some((k) => typeof values[k] === "string");

const text = (values: OptionValues, key: string): string | undefined =>
  typeof values[key] === "string" ? values[key] : undefined;

export function addLayer7(facts: ConnectionFacts, values: OptionValues): void {
  const given = ["http", "sni", "ssh-key"].filter((k) => text(values, k) !== undefined);
  if (given.length === 0) return;
  if (given.length > 1)
    throw new UsageError(`--${given.join(", --")}: a connection speaks one protocol; give one`);
  if (facts.direction !== "egress" || facts.protocol !== "tcp")
    throw new UsageError(
      `--${given[0]}: moat's L7 relay judges the tcp connections this host opens (--direction egress, tcp)`,
    );
  const http = text(values, "http");
  if (http !== undefined) {
    const [method, host, ...rest] = http.split(",");
    const path = rest.join(",");
    if (!method || !host || !path.startsWith("/"))
      throw new UsageError(`--http: give METHOD,HOST,PATH, e.g. GET,example.org,/v1/x`);
    facts.layer7 = {
      http: {
        method: method.toUpperCase(),
        host: host.toLowerCase(),
        path,
        headers: {},
        version: text(values, "http-version") ?? "1.1",
      },
    };
  }
  const sni = text(values, "sni");
  if (sni !== undefined)
    facts.layer7 = {
      tls: {
        sni: sni.toLowerCase().replace(/\.$/, ""),
        version: text(values, "tls-version") ?? "1.3",
      },
    };
  const key = text(values, "ssh-key");
  if (key !== undefined) {
    if (!/^SHA256:[A-Za-z0-9+/]{43}=?$/.test(key))
      throw new UsageError(
        `--ssh-key: give the host key's SHA256 fingerprint, as ssh-keygen -l prints it`,
      );
    facts.layer7 = { ssh: { host_key: key, version: text(values, "ssh-version") ?? "" } };
  }
}
