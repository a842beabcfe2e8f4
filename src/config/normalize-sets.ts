// sets: inline lists or { file } -> typed sets (address or port), each entry checked where it is written.

import {
  hostBitsWarning,
  isV4Mapped,
  parseAddressEntry,
  v4MappedWarning,
} from "./address-entry.ts";
import type { CheckContext } from "./check-context.ts";
import type { SourcePos } from "./diagnostics.ts";
import { parseDuration } from "./duration.ts";
import { liveEntries, parseDynamicSetFile, timeoutTooLong } from "./dynamic-set-file.ts";
import { commentAt, feedAddresses } from "./feed-parse.ts";
import type { AddressEntry, PolicySet, PortRange, SetOrigin } from "./model.ts";
import { looksLikePort, parsePortEntry } from "./port-entry.ts";
import type { PolicyDocument } from "./schema.ts";
import { byteOffset, nonUtf8At } from "./yaml-source.ts";

const SET_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** A dynamic set's entries at most when the policy says nothing. */
export const DEFAULT_MAX_ENTRIES = 65536;
/** A URL feed is fetched this often when the policy says nothing. */
export const DEFAULT_FEED_INTERVAL_SECONDS = 3600;
/**
 * The largest set file the loader reads (host/policy-files.ts reads set files with it), a feed's
 * stored body and a dynamic set's store file too: what moat stores must stay under it.
 */
export const MAX_SET_FILE_BYTES = 64 * 2 ** 20;
/** A URL feed's largest body when the policy says nothing, and the most it may say. */
export const DEFAULT_FEED_MAX_BYTES = MAX_SET_FILE_BYTES;
/**
 * The most entries a dynamic set holds: its store file, at the longest line an entry makes
 * (MAX_DYNAMIC_LINE_BYTES), stays under the set-file limit, so the loader reads back all of it.
 */
export const MAX_DYNAMIC_ENTRIES = 500_000;

type SetValue = Exclude<NonNullable<PolicyDocument["sets"]>[string], unknown[]>;
type DynamicValue = Extract<SetValue, { dynamic: true }>;
type FeedValue = Exclude<SetValue, DynamicValue>;

/** The built-in set of DNS-over-HTTPS resolvers (docs/dns.md, "Encrypted DNS"). */
export const DOH_SET = "doh-resolvers";

interface RawEntry {
  value: number | string;
  pos: SourcePos;
}

export interface SetsResult {
  sets: Map<string, PolicySet>;
  files: string[];
}

export function normalizeSets(ctx: CheckContext, doc: PolicyDocument): SetsResult {
  const sets = new Map<string, PolicySet>();
  const files: string[] = [];
  for (const [name, value] of Object.entries(doc.sets ?? {})) {
    const path = ["sets", name];
    if (!SET_NAME.test(name))
      ctx.report(
        ctx.source.keyPos(path),
        `set name '${name}' must be letters, digits, '_', '.' and '-', starting with a letter or digit`,
      );
    if (!ctx.clean(path)) continue;
    let raw: RawEntry[];
    let file: string | undefined;
    let origin: SetOrigin | undefined;
    if (Array.isArray(value)) {
      raw = value.map((v, i) => ({ value: v, pos: ctx.pos([...path, i]) }));
    } else if ("dynamic" in value) {
      origin = dynamicOrigin(ctx, path, value);
      raw = readDynamicSet(ctx, name);
    } else if ("url" in value || isFileFeed(value)) {
      const read = readFeed(ctx, name, path, value);
      if (!read) continue;
      ({ raw, origin } = read);
      file = read.file;
      if (file !== undefined && !("url" in value)) files.push(file);
    } else {
      file = ctx.host.resolve(ctx.source.file, value.file);
      const read = readSetFile(ctx, file, [...path, "file"], `sets.${name}`);
      if (!read) continue;
      files.push(file);
      raw = read;
    }
    const set = buildSet(ctx, name, raw, ctx.pos(path), file);
    if (set) sets.set(name, origin ? { ...set, origin } : set);
  }
  // the policy's own `doh-resolvers` replaces the built-in one
  if (doc.sets?.[DOH_SET] === undefined && needsDohSet(doc)) {
    const builtin = builtinDohSet(ctx, doc);
    if (builtin) {
      sets.set(DOH_SET, builtin.set);
      files.push(builtin.file);
    }
  } else if (doc.sets?.[DOH_SET] !== undefined && doc.dns?.doh_list !== undefined)
    ctx.warn(
      ["dns", "doh_list"],
      `'doh_list' is not read: the policy's own set '${DOH_SET}' replaces the built-in list`,
    );
  if (doc.dns?.doh === "block" && sets.get(DOH_SET)?.kind === "port")
    ctx.error(
      ["sets", DOH_SET],
      `set '${DOH_SET}' is a port set: with 'doh: block' it names the resolvers to block (addresses and hostnames)`,
    );
  return { sets, files };
}

/** dns.doh: block, or a rule or redirect naming set:doh-resolvers. */
function needsDohSet(doc: PolicyDocument): boolean {
  if (doc.dns?.doh === "block") return true;
  return namesDohSet(doc.rules) || namesDohSet(doc.redirect);
}

/** What a string naming the built-in set ends with (an address or port entry: `[!]set:NAME`). */
const DOH_REF = `set:${DOH_SET}`;
const namesDoh = (s: string): boolean => s.length >= DOH_REF.length && s.endsWith(DOH_REF);

/** Whether a string anywhere in `value` (keys included) ends with set:doh-resolvers. */
function namesDohSet(value: unknown): boolean {
  // strings are looked at where they are met: only mappings and lists wait on the stack
  const stack: object[] = [];
  let v: unknown = value;
  for (;;) {
    if (typeof v === "string") {
      if (namesDoh(v)) return true;
    } else if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const item: unknown = v[i];
        if (typeof item === "string") {
          if (namesDoh(item)) return true;
        } else if (typeof item === "object" && item !== null) stack.push(item);
      }
    } else if (typeof v === "object" && v !== null) {
      // for-in, not Object.entries: no pair arrays for every mapping of a 100k-rule file
      for (const key in v) {
        if (!Object.hasOwn(v, key)) continue;
        if (namesDoh(key)) return true;
        const item: unknown = (v as Record<string, unknown>)[key];
        if (typeof item === "string") {
          if (namesDoh(item)) return true;
        } else if (typeof item === "object" && item !== null) stack.push(item);
      }
    }
    const next = stack.pop();
    if (next === undefined) return false;
    v = next;
  }
}

/** The list of dns.doh_list, else the host's shipped one, read as a set file. */
function builtinDohSet(
  ctx: CheckContext,
  doc: PolicyDocument,
): { set: PolicySet; file: string } | undefined {
  const own = doc.dns?.doh_list;
  const at = own !== undefined ? ["dns", "doh_list"] : doc.dns?.doh ? ["dns", "doh"] : [];
  if (own !== undefined && !ctx.clean(at)) return undefined;
  const file =
    own !== undefined ? ctx.host.resolve(ctx.source.file, own) : ctx.host.builtinSets?.[DOH_SET];
  if (file === undefined) {
    ctx.error(
      at,
      `the built-in set '${DOH_SET}' is not available here: name a list with dns: { doh_list: FILE }`,
    );
    return undefined;
  }
  const raw = readSetFile(ctx, file, at, DOH_SET);
  if (!raw) return undefined;
  const pos: SourcePos = own !== undefined ? ctx.pos(at) : { file, line: 1, col: 1, path: DOH_SET };
  const set = buildSet(ctx, DOH_SET, raw, pos, file);
  return set ? { set, file } : undefined;
}

/** One entry a line; "#" starts a comment; blank lines are skipped. */
function readSetFile(
  ctx: CheckContext,
  file: string,
  at: (string | number)[],
  setPath: string,
): RawEntry[] | undefined {
  let text: string;
  try {
    text = ctx.host.readFile(file, "set");
  } catch (err) {
    ctx.error(at, `cannot read set file '${file}': ${(err as Error).message}`);
    return undefined;
  }
  const bad = nonUtf8At(text);
  if (bad >= 0) {
    const line = text.slice(0, bad).split("\n").length;
    const col = bad - text.lastIndexOf("\n", bad - 1);
    ctx.report(
      { file, line, col, path: setPath },
      `is not a text file (invalid UTF-8 at byte ${byteOffset(text, bad)})`,
    );
    return undefined;
  }
  const entries: RawEntry[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const content = line.slice(0, commentAt(line));
    const trimmed = content.trim();
    if (trimmed === "") return;
    const col = content.indexOf(trimmed) + 1;
    entries.push({ value: trimmed, pos: { file, line: i + 1, col, path: setPath } });
  });
  return entries;
}

function buildSet(
  ctx: CheckContext,
  name: string,
  raw: RawEntry[],
  pos: SourcePos,
  file: string | undefined,
): PolicySet | undefined {
  const first = raw[0];
  if (!first) return { name, kind: "empty", entries: [], file, pos };
  // a set file may be any file root can read (even /etc/shadow): its diagnostics give the
  // position (FILE:LINE:COL) and what is wrong, never what the line holds
  const say = (specific: string, generic: string) =>
    file === undefined ? specific : `${generic} (set-file lines are not quoted)`;
  const kind = looksLikePort(first.value) ? "port" : "address";
  const ports: PortRange[] = [];
  const addresses: AddressEntry[] = [];
  let ok = true;
  for (const entry of raw) {
    const entryKind = looksLikePort(entry.value) ? "port" : "address";
    if (entryKind !== kind) {
      ctx.report(
        entry.pos,
        say(
          `set '${name}' mixes ports and addresses: '${entry.value}' is ${article(entryKind)}, ` +
            `its first entry '${first.value}' is ${article(kind)}`,
          `set '${name}' mixes ports and addresses: this entry is ${article(entryKind)}, ` +
            `its first entry (line ${first.pos.line}) is ${article(kind)}`,
        ),
      );
      ok = false;
      continue;
    }
    if (kind === "port") {
      const port = parsePortEntry(entry.value);
      if (!port.ok) ctx.report(entry.pos, say(port.error, "not a port or port range"));
      else if (port.value.kind === "set")
        ctx.report(
          entry.pos,
          say(
            `'${entry.value}': sets cannot reference other sets`,
            "sets cannot reference other sets",
          ),
        );
      else ports.push({ ...port.value, text: String(entry.value), set: name, pos: entry.pos });
      ok &&= port.ok && port.value.kind === "range";
      continue;
    }
    const parsed = parseAddressEntry(String(entry.value));
    if (!parsed.ok) {
      ctx.report(entry.pos, say(parsed.error, 'not an IP address, CIDR, "a-b" range or hostname'));
      ok = false;
      continue;
    }
    const { negate, target } = parsed.value;
    const text = String(entry.value);
    if (target.kind === "set") {
      ctx.report(
        entry.pos,
        say(`'${text}': sets cannot reference other sets`, "sets cannot reference other sets"),
      );
      ok = false;
    } else if (target.kind === "interval") {
      if (target.hostBitsSet)
        ctx.report(
          entry.pos,
          say(hostBitsWarning(text, target.family, target.start), "a CIDR with host bits set"),
          "warning",
        );
      if (isV4Mapped(target))
        ctx.report(
          entry.pos,
          say(
            v4MappedWarning(text, target.start, target.end),
            "an IPv4-mapped IPv6 address: moat judges connections to such addresses as IPv4, so this entry never matches; write the IPv4 address it holds",
          ),
          "warning",
        );
      const { family, start, end } = target;
      addresses.push({ kind: "interval", text, negate, pos: entry.pos, family, start, end });
    } else {
      addresses.push({ ...target, text, negate, pos: entry.pos });
    }
  }
  if (!ok) return undefined;
  return kind === "port"
    ? { name, kind, entries: ports, file, pos }
    : { name, kind, entries: addresses, file, pos };
}

const article = (kind: string) => (kind === "port" ? "a port" : "an address");

function isFileFeed(value: FeedValue): boolean {
  return (
    value.format !== undefined || value.category !== undefined || value.confidence !== undefined
  );
}

function seconds(
  ctx: CheckContext,
  at: (string | number)[],
  value: number | string | undefined,
): number | undefined {
  if (value === undefined) return undefined;
  const parsed = parseDuration(value);
  if (!parsed.ok) {
    ctx.error(at, parsed.error);
    return undefined;
  }
  return parsed.value;
}

function dynamicOrigin(ctx: CheckContext, path: string[], value: DynamicValue): SetOrigin {
  let timeoutSeconds = seconds(ctx, [...path, "timeout"], value.timeout);
  const tooLong = timeoutSeconds === undefined ? undefined : timeoutTooLong(timeoutSeconds);
  if (tooLong) {
    ctx.error([...path, "timeout"], tooLong);
    timeoutSeconds = undefined;
  }
  const cs = value.crowdsec;
  let crowdsec: SetOrigin["crowdsec"];
  if (cs) {
    const url = cs.url ?? "http://127.0.0.1:8080";
    if (!/^https?:\/\//.test(url))
      ctx.error([...path, "crowdsec", "url"], `'${url}' is not an http:// or https:// URL`);
    crowdsec = {
      url: url.replace(/\/+$/, ""),
      keyFile: ctx.host.resolve(ctx.source.file, cs.key_file),
      intervalSeconds: seconds(ctx, [...path, "crowdsec", "interval"], cs.interval) ?? 10,
    };
  }
  return {
    kind: "dynamic",
    ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}),
    maxEntries: atMost(
      ctx,
      [...path, "max_entries"],
      value.max_entries,
      DEFAULT_MAX_ENTRIES,
      MAX_DYNAMIC_ENTRIES,
      `max_entries ${value.max_entries} is over the most a dynamic set holds, ${MAX_DYNAMIC_ENTRIES}`,
    ),
    ...(crowdsec ? { crowdsec } : {}),
  };
}

/** The file a dynamic set or URL feed is kept in (the daemon's state); undefined: none here. */
export function storeFile(
  ctx: { host: { setStore?: string } },
  name: string,
  kind: "dynamic" | "feed",
): string | undefined {
  const store = ctx.host.setStore;
  return store === undefined ? undefined : `${store.replace(/\/+$/, "")}/${name}.${kind}`;
}

/**
 * The URL the daemon fetched the stored body of a URL feed from (NAME.feed-meta beside it): a
 * body from the URL the set named before is not this feed's.
 */
function fetchedFrom(ctx: CheckContext, file: string): string | undefined {
  try {
    const meta = JSON.parse(ctx.host.readFile(`${file}-meta`, "set")) as { url?: unknown };
    return typeof meta.url === "string" ? meta.url : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A size a set's settings give (`value`, else `fallback`), refused past `max` with `why`: a URL
 * feed's max_bytes is at most what the loader reads of the stored body, a dynamic set's
 * max_entries at most what a store file the loader reads can hold (past them, what the daemon
 * stored would be read as nothing).
 */
function atMost(
  ctx: CheckContext,
  at: (string | number)[],
  value: number | undefined,
  fallback: number,
  max: number,
  why: string,
): number {
  if (value === undefined) return fallback;
  if (value <= max) return value;
  ctx.error(at, why);
  return max;
}

/**
 * The body the daemon last fetched for a URL feed. One that cannot be read is said, never taken
 * silently as an empty list: the daemon stores only bodies it can read back, so this is a file
 * changed or damaged outside moat.
 */
function readStoredFeed(ctx: CheckContext, name: string, path: string[], file: string): string {
  try {
    return ctx.host.readFile(file, "set");
  } catch (err) {
    ctx.warn(
      path,
      `feed '${name}': the stored list ${file} cannot be read (${(err as Error).message}): the set is empty here`,
    );
    return "";
  }
}

/** A dynamic set's live entries, as the daemon last stored them (none yet: empty). */
function readDynamicSet(ctx: CheckContext, name: string): RawEntry[] {
  const file = storeFile(ctx, name, "dynamic");
  if (file === undefined) return [];
  let text: string;
  try {
    text = ctx.host.readFile(file, "set");
  } catch (err) {
    // none stored yet is an empty set; one that cannot be read is said
    const missing =
      (err as { code?: unknown }).code === "ENOENT" ||
      /no such file|does not exist/i.test((err as Error).message);
    if (!missing)
      ctx.warn(["sets", name], `set '${name}' is empty here: ${(err as Error).message}`);
    return [];
  }
  // read a line at a time: a warning about an entry names the entry's own line
  const now = Date.now();
  const raw: RawEntry[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    for (const e of liveEntries(parseDynamicSetFile(line), now)) {
      const pos = { file, line: i + 1, col: line.indexOf(e.entry) + 1, path: `sets.${name}` };
      raw.push({ value: e.entry, pos });
    }
  });
  return raw;
}

/**
 * A feed's entries: a file's, or what the daemon last fetched from the URL (nothing yet: empty).
 * An entry that is not an address, CIDR or range is skipped and counted (a feed is someone
 * else's data: one bad line does not refuse the policy), and a warning says how many.
 */
function readFeed(
  ctx: CheckContext,
  name: string,
  path: string[],
  value: FeedValue,
): { raw: RawEntry[]; origin: SetOrigin; file: string | undefined } | undefined {
  const format = value.format ?? "plain";
  const isUrl = "url" in value;
  const origin: SetOrigin = {
    kind: "feed",
    format,
    ...(value.column !== undefined ? { column: value.column } : {}),
    ...(value.category !== undefined ? { category: value.category } : {}),
    ...(value.confidence !== undefined ? { confidence: value.confidence } : {}),
  };
  let file: string | undefined;
  let text = "";
  if (isUrl) {
    if (!/^https?:\/\//.test(value.url)) {
      ctx.error([...path, "url"], `'${value.url}' is not an http:// or https:// URL`);
      return undefined;
    }
    origin.url = value.url;
    origin.intervalSeconds =
      seconds(ctx, [...path, "interval"], value.interval) ?? DEFAULT_FEED_INTERVAL_SECONDS;
    origin.maxBytes = atMost(
      ctx,
      [...path, "max_bytes"],
      value.max_bytes,
      DEFAULT_FEED_MAX_BYTES,
      MAX_SET_FILE_BYTES,
      `max_bytes ${value.max_bytes} is over the largest a stored feed is read at, ${MAX_SET_FILE_BYTES} (64 MiB)`,
    );
    file = storeFile(ctx, name, "feed");
    if (file !== undefined && fetchedFrom(ctx, file) === value.url)
      text = readStoredFeed(ctx, name, path, file);
  } else {
    file = ctx.host.resolve(ctx.source.file, value.file);
    try {
      text = ctx.host.readFile(file, "set");
    } catch (err) {
      ctx.error([...path, "file"], `cannot read set file '${file}': ${(err as Error).message}`);
      return undefined;
    }
  }
  const parsed = feedAddresses(text, format, value.column ?? 1);
  const raw: RawEntry[] = [];
  let refused = 0;
  for (const n of parsed.refused.values()) refused += n;
  for (const e of parsed.entries) {
    const pos: SourcePos = { file: file ?? name, line: e.line, col: e.col, path: `sets.${name}` };
    raw.push({ value: e.value, pos });
  }
  origin.refused = refused;
  if (refused > 0)
    ctx.warn(
      path,
      `feed '${name}': ${refused} entr${refused === 1 ? "y" : "ies"} not taken (` +
        [...parsed.refused].map(([reason, n]) => `${n} ${reason}`).join(", ") +
        ")",
    );
  return { raw, origin, file };
}
