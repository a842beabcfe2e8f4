// A connection written the way `moat explain` and the playground take it:
//   tcp 203.0.113.9:51514 -> 10.0.0.1:22
//   udp [2001:db8::1]:5353 -> [2001:db8::2]:53
//   icmp 10.0.0.2 -> 10.0.0.1 type 8 code 0
// The LEFT side opened the connection (the client), the RIGHT side is the server. Which of them is
// this host is the direction: ingress (the default) = the right side is this host; egress = the
// left side is. Pure.

import { parseIp, type Family } from "../config/ip.ts";
import type { ConnectionFacts, EndpointFacts, ProtocolFact } from "./facts.ts";

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

interface Endpoint {
  ip: string;
  family: Family;
  port?: number;
}

const PROTOCOLS = ["tcp", "udp", "icmp", "icmpv6"];

const isProtocol = (word: string): boolean =>
  PROTOCOLS.includes(word) || (/^\d{1,3}$/.test(word) && Number(word) <= 255);

/** "1.2.3.4:5", "[2001:db8::1]:443", "1.2.3.4", "2001:db8::1". */
export function parseEndpointText(text: string): Parsed<Endpoint> {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  const v4 = /^([0-9.]+)(?::(\d+))?$/.exec(text);
  const [ip, port] = bracketed
    ? [bracketed[1], bracketed[2]]
    : v4
      ? [v4[1], v4[2]]
      : [text, undefined];
  const parsed = parseIp(ip ?? "");
  if (!parsed.ok) return { ok: false, error: parsed.error };
  const endpoint: Endpoint = { ip: ip ?? "", family: parsed.value.family };
  if (port !== undefined) {
    const n = Number(port);
    if (n > 65535) return { ok: false, error: `port ${n} in '${text}' is out of range 0-65535` };
    endpoint.port = n;
  }
  return { ok: true, value: endpoint };
}

/** What may be left out, and is then taken as given (a DNS query: udp, server port 53). */
export interface ConnectionDefaults {
  protocol?: "tcp" | "udp";
  serverPort?: number;
}

/**
 * words: PROTO CLIENT [-> | to] SERVER [type N [code N]]. The arrow may be left out (a shell needs
 * it quoted anyway); so may PROTO and the server's port where `defaults` gives them.
 */
export function parseConnectionText(
  words: readonly string[],
  direction: "ingress" | "egress",
  defaults: ConnectionDefaults = {},
): Parsed<ConnectionFacts> {
  if (words.includes("-"))
    return {
      ok: false,
      error:
        "a lone '-': an unquoted -> in a shell is '-' plus a '>' that redirected the output " +
        "to a file named after the server; quote the arrow ('->') or write 'to'",
    };
  const named = isProtocol(words[0] ?? "") || !defaults.protocol;
  const [proto = "", ...rest] = named ? words : [defaults.protocol ?? "", ...words];
  const args = rest.filter((w) => w !== "->" && w !== "to");
  const [clientText, serverText, ...tail] = args;
  if (!clientText || !serverText)
    return {
      ok: false,
      error: "expected PROTO CLIENT -> SERVER, e.g. tcp 203.0.113.9:51514 -> 10.0.0.1:22",
    };
  const protocol: ProtocolFact | undefined = PROTOCOLS.includes(proto)
    ? (proto as ProtocolFact)
    : /^\d{1,3}$/.test(proto) && Number(proto) <= 255
      ? Number(proto)
      : undefined;
  if (protocol === undefined)
    return {
      ok: false,
      error: `'${proto}' is not a protocol (tcp, udp, icmp, icmpv6 or a number)`,
    };
  const client = parseEndpointText(clientText);
  if (!client.ok) return client;
  const server = parseEndpointText(serverText);
  if (!server.ok) return server;
  if (server.value.port === undefined && defaults.serverPort !== undefined)
    server.value.port = defaults.serverPort;
  if (client.value.family !== server.value.family)
    return { ok: false, error: `'${clientText}' and '${serverText}' are not the same IP version` };
  const ported = protocol === "tcp" || protocol === "udp";
  for (const [side, e, text] of [
    ["client", client.value, clientText],
    ["server", server.value, serverText],
  ] as const) {
    if (ported && e.port === undefined)
      return { ok: false, error: `the ${side} '${text}' needs a port (${protocol} has ports)` };
    if (!ported && e.port !== undefined)
      return { ok: false, error: `'${text}': ${String(protocol)} has no ports` };
  }
  const icmp = parseIcmp(tail, protocol);
  if (!icmp.ok) return icmp;
  const endpoint = (e: Endpoint): EndpointFacts =>
    e.port === undefined ? { ip: e.ip } : { ip: e.ip, port: e.port };
  const [local, remote] =
    direction === "ingress" ? [server.value, client.value] : [client.value, server.value];
  const facts: ConnectionFacts = {
    direction,
    protocol,
    family: client.value.family,
    local: endpoint(local),
    remote: endpoint(remote),
  };
  if (icmp.value) facts.icmp = icmp.value;
  return { ok: true, value: facts };
}

/** "type 8 code 0"; ICMP without them is an echo request (type 8, or 128 for icmpv6), code 0. */
function parseIcmp(
  tail: string[],
  protocol: ProtocolFact,
): Parsed<{ type: number; code: number } | undefined> {
  const isIcmp = protocol === "icmp" || protocol === "icmpv6";
  if (!isIcmp) {
    return tail.length === 0
      ? { ok: true, value: undefined }
      : { ok: false, error: `unexpected '${tail.join(" ")}'` };
  }
  const fields: Record<string, number> = { type: protocol === "icmp" ? 8 : 128, code: 0 };
  for (let i = 0; i < tail.length; i += 2) {
    const key = tail[i] ?? "";
    const value = tail[i + 1] ?? "";
    if (!(key in fields) || !/^\d{1,3}$/.test(value) || Number(value) > 255)
      return {
        ok: false,
        error: `expected 'type N' and/or 'code N' (0-255), got '${tail.join(" ")}'`,
      };
    fields[key] = Number(value);
  }
  return { ok: true, value: { type: fields.type ?? 0, code: fields.code ?? 0 } };
}
