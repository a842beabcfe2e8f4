// Event filters shared by the live subscription (match in memory) and the history query (SQL):
// type, verdict, rule, direction, remote (a CIDR or a DNS name), process, container. Every given
// field must match, and no `not` filter may (each one excludes what it matches on its own).
import type { MoatEvent } from "../datapath/event.ts";
import { parseIp, unmapIpv4, type IpAddress } from "../config/ip.ts";

export interface RemoteRange {
  text: string;
  family: 4 | 6;
  start: bigint;
  end: bigint;
}

export interface EventFilter {
  types?: MoatEvent["type"][];
  verdict?: MoatEvent["verdict"];
  rule?: string;
  direction?: MoatEvent["direction"];
  remote?: RemoteRange;
  /** A DNS name: the event's remote.names contain it (lower case, no trailing dot). */
  remoteName?: string;
  /** Process name or pid. */
  process?: string;
  /** Container id prefix or name. */
  container?: string;
  /** Events any of these match are left out (`not=rule%3Dssh&not=type%3Dclosed`). */
  not?: EventFilter[];
}

export class FilterError extends Error {
  readonly code = "EFILTER";
  constructor(message: string) {
    super(message);
    this.name = "FilterError";
  }
}

const TYPES = [
  "allowed",
  "blocked",
  "detected",
  "closed",
  "dns",
  "flow",
  "anomaly",
  "exe_changed",
] as const;
const VERDICTS = ["allowed", "blocked", "detected"] as const;

/** The query-string form: type=blocked,detected&rule=x&direction=ingress&remote=10.0.0.0/8&... */
export function parseFilter(params: URLSearchParams): EventFilter {
  const filter: EventFilter = {};
  const type = params.get("type");
  if (type) {
    const types = type.split(",").map((t) => t.trim());
    for (const t of types)
      if (!(TYPES as readonly string[]).includes(t))
        throw new FilterError(`type '${t}' is not one of ${TYPES.join(", ")}`);
    filter.types = types as MoatEvent["type"][];
  }
  const verdict = params.get("verdict");
  if (verdict) {
    if (!(VERDICTS as readonly string[]).includes(verdict))
      throw new FilterError(`verdict '${verdict}' is not one of ${VERDICTS.join(", ")}`);
    filter.verdict = verdict as MoatEvent["verdict"];
  }
  const direction = params.get("direction");
  if (direction) {
    if (direction !== "ingress" && direction !== "egress")
      throw new FilterError(`direction '${direction}' is not ingress or egress`);
    filter.direction = direction;
  }
  const remote = params.get("remote");
  if (remote) {
    const name = remoteNameOf(remote);
    if (name) filter.remoteName = name;
    else filter.remote = parseRange(remote);
  }
  for (const key of ["rule", "process", "container"] as const) {
    const value = params.get(key);
    if (value) filter[key] = value;
  }
  const not = params.getAll("not").map(negated);
  if (not.length) filter.not = not;
  return filter;
}

/** One `not` parameter: a filter in query-string form ("rule=ssh"), itself without `not`. */
function negated(text: string): EventFilter {
  const params = new URLSearchParams(text);
  if (params.has("not")) throw new FilterError(`not '${text}': a negated filter has no 'not'`);
  const filter = parseFilter(params);
  if (Object.keys(filter).length === 0)
    throw new FilterError(`not '${text}': give a filter to leave out, e.g. not=rule%3Dssh`);
  return filter;
}

/** The inverse of parseFilter, for clients. */
export function filterParams(filter: EventFilter): URLSearchParams {
  const params = new URLSearchParams();
  if (filter.types?.length) params.set("type", filter.types.join(","));
  if (filter.verdict) params.set("verdict", filter.verdict);
  if (filter.direction) params.set("direction", filter.direction);
  if (filter.remote) params.set("remote", filter.remote.text);
  else if (filter.remoteName) params.set("remote", filter.remoteName);
  if (filter.rule) params.set("rule", filter.rule);
  if (filter.process) params.set("process", filter.process);
  if (filter.container) params.set("container", filter.container);
  for (const n of filter.not ?? []) params.append("not", filterParams(n).toString());
  return params;
}

const HOSTNAME = /^(?=.*[a-z])[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*$/;

/** A `remote` that is a DNS name (it has a letter, and is no address), normalized; else null. */
export function remoteNameOf(text: string): string | null {
  const name = text.toLowerCase().replace(/\.$/, "");
  if (name.includes(":") || name.includes("/") || parseIp(name).ok) return null;
  return HOSTNAME.test(name) ? name : null;
}

/** "10.0.0.0/8", "2001:db8::/32" or a single address. */
export function parseRange(text: string): RemoteRange {
  const [ipText = "", prefixText] = text.split("/");
  const ip = parseIp(ipText);
  if (!ip.ok) throw new FilterError(`remote '${text}': ${ip.error}`);
  const address = unmapIpv4(ip.value);
  const bits = address.family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? bits : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits || prefixText === "")
    throw new FilterError(`remote '${text}': prefix length must be 0-${bits}`);
  const host = (1n << BigInt(bits - prefix)) - 1n;
  const start = address.value & ~host;
  return { text, family: address.family, start, end: start | host };
}

/** The event's remote address as a number (IPv4-mapped IPv6 reads as IPv4), or null. */
export function remoteAddress(event: MoatEvent): IpAddress | null {
  const ip = parseIp(event.remote.ip);
  return ip.ok ? unmapIpv4(ip.value) : null;
}

export function matchesFilter(filter: EventFilter, event: MoatEvent): boolean {
  if (filter.types && !filter.types.includes(event.type)) return false;
  if (filter.verdict && event.verdict !== filter.verdict) return false;
  if (filter.rule && event.rule !== filter.rule) return false;
  if (filter.direction && event.direction !== filter.direction) return false;
  if (filter.remote) {
    const ip = remoteAddress(event);
    const r = filter.remote;
    if (!ip || ip.family !== r.family || ip.value < r.start || ip.value > r.end) return false;
  }
  if (filter.remoteName && !event.remote.names?.includes(filter.remoteName)) return false;
  if (filter.process) {
    const p = processOf(event);
    if (!p || (p.name !== filter.process && String(p.pid) !== filter.process)) return false;
  }
  if (filter.container) {
    const c = containerOf(event);
    if (!c || (c.name !== filter.container && !c.id.startsWith(filter.container))) return false;
  }
  if (filter.not?.some((n) => matchesFilter(n, event))) return false;
  return true;
}

/** The event's process (pid and name), or null when no socket hook saw its socket. */
export function processOf(event: MoatEvent): { pid: number; name: string } | null {
  return event.process ? { pid: event.process.pid, name: event.process.name } : null;
}

/** The event's container (id and name), or null when its process is not in one. */
export function containerOf(event: MoatEvent): { id: string; name: string } | null {
  const c = event.process?.container;
  return c ? { id: c.id, name: c.name } : null;
}
