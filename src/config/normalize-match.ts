// The matching part of a rule or redirect (layer3, layer4, process, interface, layer7) -> model,
// with the checks that need more than the schema: address and port syntax, set references, and which
// layer4 fields make sense with which protocol.

import {
  hostBitsWarning,
  ipv4Target,
  isV4Mapped,
  namePattern,
  parseAddressEntry,
  parseHostname,
  type AddressTarget,
  v4MappedWarning,
} from "./address-entry.ts";
import { childPath, type CheckContext } from "./check-context.ts";
import { parseDuration } from "./duration.ts";
import {
  PROTOCOL_NUMBERS,
  type AddressEntry,
  type AddressList,
  type Layer3,
  type Layer4,
  type Layer7Match,
  type Match,
  type PolicySet,
  type PortRange,
  type ProcessMatch,
  type TlsMatch,
} from "./model.ts";
import { normalizeSsh } from "./normalize-ssh.ts";
import { parsePortEntry, plainPortRange } from "./port-entry.ts";
import { DOH_SET } from "./normalize-sets.ts";
import type { Layer4Document, Layer7Document, MatchDocument } from "./schema-rule.ts";
import type { PathSegment } from "./yaml-source.ts";
import { MAX_UID } from "./process-user.ts";

const TCP: number = PROTOCOL_NUMBERS.tcp;
const UDP: number = PROTOCOL_NUMBERS.udp;
const ICMPS: number[] = [PROTOCOL_NUMBERS.icmp, PROTOCOL_NUMBERS.icmpv6];

/** ICMP written as a number: one protocol per IP family, which the name says and 1 or 58 hides. */
const ICMP_NAMES: Record<number, string> = {
  [PROTOCOL_NUMBERS.icmp]:
    "protocol 1 is icmp (IPv4 only): write 'icmp'; ICMP over IPv6 is 'icmpv6' (58)",
  [PROTOCOL_NUMBERS.icmpv6]:
    "protocol 58 is icmpv6 (IPv6 only): write 'icmpv6'; ICMP over IPv4 is 'icmp' (1)",
};

/** The kernel keeps max_duration in 32-bit seconds. */
const MAX_DURATION_SECONDS = 2 ** 32 - 1;

/** Every address, excluded: what an empty list matches (nothing), in the evaluator and the tables. */
const NOTHING = [
  {
    kind: "interval" as const,
    text: "!*",
    negate: true,
    family: 4 as const,
    start: 0n,
    end: (1n << 32n) - 1n,
  },
  {
    kind: "interval" as const,
    text: "!*",
    negate: true,
    family: 6 as const,
    start: 0n,
    end: (1n << 128n) - 1n,
  },
];

/** An empty list matches nothing (docs/policy.md): the safer reading of a list left empty. */
function emptyListWarning(ctx: CheckContext, path: PathSegment[]): void {
  const field = String(path.at(-1));
  ctx.warn(
    path,
    `an empty list matches nothing, so this rule never matches (leave '${field}' out to match any)`,
  );
}

/** Builds the match at `path`; returns undefined if anything in it was wrong (already reported). */
export function normalizeMatch(
  ctx: CheckContext,
  doc: MatchDocument,
  path: PathSegment[],
  sets: ReadonlyMap<string, PolicySet>,
): Match | undefined {
  const before = ctx.diagnostics.length;
  const { direction } = doc;
  const layer3 =
    doc.layer3 && ctx.typedChild(path, "layer3")
      ? layer3Match(ctx, doc.layer3, path, sets)
      : undefined;
  const l4 =
    doc.layer4 && ctx.typedChild(path, "layer4")
      ? layer4(ctx, doc.layer4, childPath(path, "layer4"), sets)
      : undefined;
  // whole literals, not properties added one by one, where they can be: what a rule keeps of a
  // big file is copied by the collector while it is young, and added properties cost another array
  let match: Match;
  if (layer3) match = l4 ? { direction, layer3, layer4: l4 } : { direction, layer3 };
  else match = l4 ? { direction, layer4: l4 } : { direction };
  if (doc.process && ctx.clean([...path, "process"]))
    match.process = process(ctx, doc.process, path);
  if (doc.interface && ctx.clean([...path, "interface"]))
    match.interface = { ...doc.interface, pos: ctx.pos([...path, "interface"]) };
  if (doc.layer7 && ctx.typed([...path, "layer7"]))
    match.layer7 = layer7(ctx, doc.layer7, [...path, "layer7"], doc.direction);
  const { diagnostics } = ctx;
  for (let i = before; i < diagnostics.length; i++)
    if (diagnostics[i]?.severity === "error") return undefined;
  return match;
}

function layer3Match(
  ctx: CheckContext,
  doc: NonNullable<MatchDocument["layer3"]>,
  path: PathSegment[],
  sets: ReadonlyMap<string, PolicySet>,
): Layer3 {
  const at = childPath(path, "layer3");
  const pos = ctx.pos(at);
  const { remote, local } = doc;
  const r =
    remote && ctx.typedChild(at, "remote")
      ? addressList(ctx, remote, childPath(at, "remote"), sets)
      : undefined;
  const l =
    local && ctx.typedChild(at, "local")
      ? addressList(ctx, local, childPath(at, "local"), sets)
      : undefined;
  if (r) return l ? { pos, remote: r, local: l } : { pos, remote: r };
  return l ? { pos, local: l } : { pos };
}

function addressList(
  ctx: CheckContext,
  entries: string[],
  path: PathSegment[],
  sets: ReadonlyMap<string, PolicySet>,
): AddressList {
  const pos = ctx.pos(path);
  if (entries.length === 0) {
    emptyListWarning(ctx, path);
    return { entries: NOTHING.map((e) => ({ ...e, pos })), pos };
  }
  // arrays of their length: one grown by push keeps room for 16 or more, which a rule of a big
  // file would then keep (and the collector copy) for its one entry
  if (entries.length === 1) {
    const only = addressEntry(ctx, entries[0] as string, childPath(path, 0), sets);
    return { entries: only ? [only] : [], pos };
  }
  const out: AddressEntry[] = [];
  // a loop, not forEach with a closure: this runs for every rule of a big file
  for (let i = 0; i < entries.length; i++) {
    const entry = addressEntry(ctx, entries[i] as string, childPath(path, i), sets);
    if (entry) out.push(entry);
  }
  return { entries: out.slice(), pos };
}

/** The entry `text` at `at` of an address list; undefined if it is wrong (reported). */
function addressEntry(
  ctx: CheckContext,
  text: string,
  at: PathSegment[],
  sets: ReadonlyMap<string, PolicySet>,
): AddressEntry | undefined {
  if (!ctx.clean(at)) return undefined;
  // most entries are a plain IPv4 address or CIDR: read without parseAddressEntry's wrappers
  const c = text.charCodeAt(0);
  let target: AddressTarget | undefined = c >= 48 && c <= 57 ? ipv4Target(text) : undefined;
  let negate = false;
  if (!target) {
    const parsed = parseAddressEntry(text);
    if (!parsed.ok) {
      ctx.error(at, parsed.error);
      return undefined;
    }
    ({ negate, target } = parsed.value);
  }
  const pos = ctx.pos(at);
  if (target.kind === "interval") {
    if (target.hostBitsSet) ctx.warn(at, hostBitsWarning(text, target.family, target.start));
    if (isV4Mapped(target)) ctx.warn(at, v4MappedWarning(text, target.start, target.end));
    const { family, start, end } = target;
    return { kind: "interval", text, negate, pos, family, start, end };
  }
  if (target.kind === "hostname") return { ...target, text, negate, pos };
  const set = lookupSet(ctx, at, target.set, "address", sets);
  return set ? { kind: "set", set: target.set, text, negate, pos, entries: set } : undefined;
}

/** A set reference must name a set of the kind the field needs (an empty set fits either). */
function lookupSet(
  ctx: CheckContext,
  at: PathSegment[],
  name: string,
  kind: "address",
  sets: ReadonlyMap<string, PolicySet>,
): AddressEntry[] | undefined;
function lookupSet(
  ctx: CheckContext,
  at: PathSegment[],
  name: string,
  kind: "port",
  sets: ReadonlyMap<string, PolicySet>,
): PortRange[] | undefined;
function lookupSet(
  ctx: CheckContext,
  at: PathSegment[],
  name: string,
  kind: "address" | "port",
  sets: ReadonlyMap<string, PolicySet>,
): AddressEntry[] | PortRange[] | undefined {
  const set = sets.get(name);
  if (!set) {
    // a set that exists but had errors is not in `sets`: do not call it unknown
    if (ctx.source.data && hasSet(ctx.source.data, name)) return undefined;
    // the built-in set's list could not be read: said where it is named (dns.doh_list)
    if (name === DOH_SET) return undefined;
    ctx.error(at, `unknown set '${name}'`);
    return undefined;
  }
  if (set.kind === "empty") return [];
  if (set.kind !== kind) {
    const field = kind === "address" ? "addresses" : "ports";
    const article = set.kind === "address" ? "an" : "a";
    ctx.error(at, `set '${name}' is ${article} ${set.kind} set; this field needs ${field}`);
    return undefined;
  }
  return set.entries;
}

function hasSet(data: unknown, name: string): boolean {
  const sets = (data as { sets?: unknown }).sets;
  return typeof sets === "object" && sets !== null && Object.hasOwn(sets, name);
}

function portList(
  ctx: CheckContext,
  entries: (number | string)[],
  path: PathSegment[],
  sets: ReadonlyMap<string, PolicySet>,
): PortRange[] {
  if (entries.length === 0) emptyListWarning(ctx, path);
  // arrays of their length, as in addressList
  if (entries.length === 1) {
    const only = portEntry(ctx, entries[0] as number | string, childPath(path, 0), sets);
    return only === undefined ? [] : Array.isArray(only) ? only : [only];
  }
  const ranges: PortRange[] = [];
  for (let i = 0; i < entries.length; i++) {
    const entry = portEntry(ctx, entries[i] as number | string, childPath(path, i), sets);
    if (Array.isArray(entry)) for (const r of entry) ranges.push(r);
    else if (entry) ranges.push(entry);
  }
  return ranges.slice();
}

/** The range of a port list's entry, or the ranges of the set it names; undefined: wrong (reported). */
function portEntry(
  ctx: CheckContext,
  entry: number | string,
  at: PathSegment[],
  sets: ReadonlyMap<string, PolicySet>,
): PortRange | PortRange[] | undefined {
  if (!ctx.clean(at)) return undefined;
  // a port written as a number (most are): what parsePortEntry reads it as, without its objects
  if (typeof entry === "number" && Number.isInteger(entry) && entry >= 0 && entry <= MAX_PORT)
    return { lo: entry, hi: entry, text: String(entry), pos: ctx.pos(at) };
  // a range written plainly ("8000-8999"): the same, without parsePortEntry's strings and objects
  const plain = typeof entry === "string" ? plainPortRange(entry) : -1;
  if (plain >= 0)
    return {
      lo: Math.floor(plain / 65536),
      hi: plain % 65536,
      text: entry as string,
      pos: ctx.pos(at),
    };
  const parsed = parsePortEntry(entry);
  if (!parsed.ok) {
    ctx.error(at, parsed.error);
    return undefined;
  }
  const pos = ctx.pos(at);
  if (parsed.value.kind === "range")
    return { lo: parsed.value.lo, hi: parsed.value.hi, text: String(entry), pos };
  const set = lookupSet(ctx, at, parsed.value.set, "port", sets);
  const text = `set:${parsed.value.set}`;
  return (set ?? []).map((r) => ({ ...r, text, pos }));
}

const PORT_FIELDS = ["port", "source_port"] as const;
const MAX_PORT = 65535;

function layer4(
  ctx: CheckContext,
  doc: Layer4Document,
  path: PathSegment[],
  sets: ReadonlyMap<string, PolicySet>,
): Layer4 {
  // a protocol the schema rejected is unknown: skip the checks that depend on it
  const known = ctx.cleanChild(path, "protocol");
  const protocol =
    !known || doc.protocol === undefined || doc.protocol === "any"
      ? null
      : typeof doc.protocol === "number"
        ? doc.protocol
        : PROTOCOL_NUMBERS[doc.protocol];
  const name = doc.protocol === undefined ? "any" : String(doc.protocol);
  const pos = ctx.pos(path);
  if (known && typeof doc.protocol === "number" && ICMP_NAMES[doc.protocol])
    ctx.warn([...path, "protocol"], ICMP_NAMES[doc.protocol] ?? "");
  // ports exist for tcp and udp; "any" with ports means "tcp or udp on these ports"
  let ports: PortRange[] | undefined;
  let sourcePorts: PortRange[] | undefined;
  for (const field of PORT_FIELDS) {
    const entries = doc[field];
    if (!entries || !ctx.typedChild(path, field)) continue;
    if (protocol !== null && protocol !== TCP && protocol !== UDP) {
      ctx.error(
        [...path, field],
        `'${field}' needs protocol tcp, udp or any (protocol is ${name})`,
      );
      continue;
    }
    const ranges = portList(ctx, entries, childPath(path, field), sets);
    if (field === "port") ports = ranges;
    else sourcePorts = ranges;
  }
  // the usual layer4 as one literal (see normalizeMatch); the rest field by field, in this order
  if (!sourcePorts && !doc.icmp && doc.max_duration === undefined)
    return ports ? { protocol, pos, ports } : { protocol, pos };
  const result: Layer4 = { protocol, pos };
  if (ports) result.ports = ports;
  if (sourcePorts) result.sourcePorts = sourcePorts;
  if (doc.icmp && known && ctx.cleanChild(path, "icmp")) {
    if (protocol === null || !ICMPS.includes(protocol))
      ctx.error([...path, "icmp"], `'icmp' needs protocol icmp or icmpv6 (protocol is ${name})`);
    else result.icmp = { ...doc.icmp, pos: ctx.pos([...path, "icmp"]) };
  }
  if (doc.max_duration !== undefined && ctx.cleanChild(path, "max_duration")) {
    const at = [...path, "max_duration"];
    const seconds = parseDuration(doc.max_duration);
    if (known && protocol !== TCP)
      ctx.error(at, `'max_duration' needs protocol tcp (protocol is ${name})`);
    else if (!seconds.ok) ctx.error(at, seconds.error);
    else if (seconds.value > MAX_DURATION_SECONDS)
      ctx.error(
        at,
        `'${String(doc.max_duration)}' is longer than moat can hold (at most ${MAX_DURATION_SECONDS} seconds, about 136 years)`,
      );
    else result.maxDuration = { seconds: seconds.value, pos: ctx.pos(at) };
  }
  return result;
}

const list = (v: string | string[] | undefined) => (v === undefined ? undefined : [v].flat());

function process(
  ctx: CheckContext,
  doc: NonNullable<MatchDocument["process"]>,
  path: PathSegment[],
): ProcessMatch {
  const at = [...path, "process"];
  const cgroups = list(doc.cgroup);
  cgroups?.forEach((c, i) => {
    if (!c.startsWith("/"))
      ctx.error(
        typeof doc.cgroup === "string" ? [...at, "cgroup"] : [...at, "cgroup", i],
        `cgroup '${c}' must start with '/'`,
      );
  });
  const result: ProcessMatch = { pos: ctx.pos(at) };
  if (doc.path !== undefined) result.path = list(doc.path);
  if (doc.name !== undefined) result.name = list(doc.name);
  doc.user?.forEach((u, i) => {
    // "1000" is a uid too (as the matcher reads it)
    const uid = typeof u === "number" ? u : /^\d+$/.test(u) ? Number(u) : null;
    if (uid !== null && uid > MAX_UID)
      ctx.error([...at, "user", i], `a uid is at most ${MAX_UID}, got ${String(u)}`);
  });
  if (doc.user !== undefined) result.user = doc.user;
  if (cgroups) result.cgroup = cgroups;
  if (doc.container) result.container = doc.container;
  return result;
}

/** Name patterns as hostname entries read them (lower-case, A-labels); bad ones are errors. */
function hostPatterns(
  ctx: CheckContext,
  names: string[] | undefined,
  at: PathSegment[],
): string[] | undefined {
  if (!names || !ctx.typed(at)) return names;
  if (names.length === 0) emptyListWarning(ctx, at);
  return names.map((name, i) => {
    if (!ctx.clean([...at, i])) return name;
    const host = parseHostname(name);
    if (!host.ok) ctx.error([...at, i], `${host.error} (write a name or "*.domain")`);
    return host.ok ? namePattern(host.value) : name;
  });
}

function layer7(
  ctx: CheckContext,
  doc: Layer7Document,
  path: PathSegment[],
  direction: Match["direction"],
): Layer7Match {
  const result: Layer7Match = { pos: ctx.pos(path) };
  const pos = (key: string) => ctx.pos([...path, key]);
  if (Object.keys(doc).length === 0)
    ctx.error(path, "an empty 'layer7' matches no protocol; name http, tls, dns or ssh");
  if (doc.http && ctx.typed([...path, "http"])) {
    const host = hostPatterns(ctx, doc.http.host, [...path, "http", "host"]);
    const headers = doc.http.headers
      ? Object.fromEntries(Object.entries(doc.http.headers).map(([k, v]) => [k.toLowerCase(), v]))
      : undefined;
    result.http = {
      ...doc.http,
      ...(host ? { host } : {}),
      ...(headers ? { headers } : {}),
      pos: pos("http"),
    };
    if (doc.http.method && ctx.clean([...path, "http", "method"]))
      result.http.method = doc.http.method.map((m) => m.toUpperCase());
  }
  if (doc.tls && ctx.typed([...path, "tls"])) {
    const sni = hostPatterns(ctx, doc.tls.sni, [...path, "tls", "sni"]);
    const { version, certificate, ...rest } = doc.tls;
    const tls: TlsMatch = { ...rest, ...(sni ? { sni } : {}), pos: pos("tls") };
    if (version && ctx.clean([...path, "tls", "version"])) tls.version = version.map(tlsVersion);
    if (certificate && ctx.clean([...path, "tls", "certificate"]))
      tls.certificate = tlsCertificate(certificate);
    result.tls = tls;
  }
  if (doc.dns && ctx.typed([...path, "dns"])) {
    const name = hostPatterns(ctx, doc.dns.name, [...path, "dns", "name"]);
    result.dns = { ...doc.dns, ...(name ? { name } : {}), pos: pos("dns") };
  }
  if (doc.ssh && ctx.typed([...path, "ssh"]))
    result.ssh = normalizeSsh(ctx, doc.ssh, [...path, "ssh"], direction);
  return result;
}

type TlsVersion = NonNullable<TlsMatch["version"]>[number];

/** ">=1.2" -> { op: ">=", version: "1.2" } (the schema already checked the shape). */
function tlsVersion(text: string): TlsVersion {
  const op =
    (["=", ">=", "<=", ">", "<"] as const).find(
      (o) => text.startsWith(o) && !text.startsWith(`${o}=`),
    ) ?? "=";
  return { op, version: text.replace(/^[<>=]+/, "") };
}

type CertificateDocument = NonNullable<NonNullable<Layer7Document["tls"]>["certificate"]>;

/** Fingerprints upper-cased; "<30d" -> { op: "<", days: 30 } (the schema checked the shapes). */
function tlsCertificate(doc: CertificateDocument): NonNullable<TlsMatch["certificate"]> {
  const { not_after, fingerprint, ...rest } = doc;
  const result: NonNullable<TlsMatch["certificate"]> = { ...rest };
  if (fingerprint) result.fingerprint = fingerprint.map((f) => f.toUpperCase());
  if (not_after)
    result.not_after = {
      op: not_after.startsWith("<") ? "<" : ">",
      days: parseInt(not_after.slice(1), 10),
    };
  return result;
}
