// moat's subset of the Suricata/Snort rule language (docs/policy.md, "ids"): one signature's
// text -> what it matches, or why it is malformed, or which of its keywords moat refuses. Pure:
// positions are offsets into the text, turned into FILE:LINE:COL by the caller.
import { parseAddressEntry, type IntervalTarget } from "./address-entry.ts";
import { fail, ok, type Parsed } from "./parsed.ts";

/** An address side of a signature's header. */
export type IdsAddress =
  | { kind: "any" }
  /** $HOME_NET: this host's side of the connection; $EXTERNAL_NET: the peer's. */
  | { kind: "home" | "external" }
  | { kind: "list"; entries: { cidr: string; negated: boolean }[] };

/** A port side: any, or ranges (all inclusive); negated ranges leave those ports out. */
export type IdsPorts = { kind: "any" } | { kind: "list"; ranges: IdsPortRange[] };
export interface IdsPortRange {
  lo: number;
  hi: number;
  negated: boolean;
}

export interface IdsContent {
  /** The bytes to find, one char a byte (latin1). */
  pattern: string;
  nocase: boolean;
  /** content:!"...": the signature matches only where this is absent. */
  negated: boolean;
  /** Absolute window in the stream direction: starts at `offset`, ends `depth` bytes later. */
  offset?: number;
  depth?: number;
  /** Relative to the end of the previous content's match. */
  distance?: number;
  within?: number;
}

export interface IdsSignature {
  /** alert reports; drop and reject cut the connection under ids.mode prevent. */
  action: "alert" | "drop" | "reject";
  protocol: "tcp" | "udp" | "ip";
  source: { addresses: IdsAddress; ports: IdsPorts };
  target: { addresses: IdsAddress; ports: IdsPorts };
  /** `<>`: either way. */
  bidirectional: boolean;
  /** flow:to_server (from the initiator) / to_client; absent: both. */
  flow?: "to_server" | "to_client";
  /**
   * flow:established: a UDP datagram fits once both directions of its flow were seen (as
   * Suricata); every TCP copy does (moat reads flows seen from their start).
   */
  established?: true;
  /** flow:only_stream: TCP only (a UDP datagram is never a stream, as in Suricata). */
  onlyStream?: true;
  sid: number;
  rev?: number;
  msg: string;
  classtype?: string;
  contents: IdsContent[];
}

/** A problem at an offset of the signature's text. */
export interface IdsProblem {
  at: number;
  message: string;
  /** refused: well formed, but outside moat's subset (the signature is skipped, a warning). */
  kind: "malformed" | "refused";
}

export type IdsParse =
  { ok: true; signature: IdsSignature } | { ok: false; problems: IdsProblem[] };

/** The most contents a signature takes: the matcher tries them one within the other. */
const MAX_CONTENTS = 64;
const ACTIONS = new Set(["alert", "drop", "reject"]);
const PROTOCOLS = new Set(["tcp", "udp", "ip"]);
/** Keywords that describe a signature without changing what it matches. */
const DESCRIPTIVE = new Set(["reference", "metadata", "priority", "gid", "target", "fast_pattern"]);
const CONTENT_MODIFIERS = new Set(["nocase", "offset", "depth", "distance", "within"]);
const FLOW_ACCEPTED = new Set([
  "to_server",
  "to_client",
  "from_server",
  "from_client",
  "established",
  "only_stream",
]);

const FLOW_DIRECTIONS = new Set(["to_server", "to_client", "from_server", "from_client"]);

interface Token {
  text: string;
  at: number;
}

class Malformed extends Error {
  readonly at: number;
  constructor(at: number, message: string) {
    super(message);
    this.at = at;
  }
}

/** Parses one signature. */
export function parseSignature(text: string): IdsParse {
  try {
    return parse(text);
  } catch (err) {
    if (err instanceof Malformed)
      return { ok: false, problems: [{ at: err.at, message: err.message, kind: "malformed" }] };
    throw err;
  }
}

function parse(text: string): IdsParse {
  const open = text.indexOf("(");
  if (open < 0)
    throw new Malformed(0, "a signature is 'action proto src sport -> dst dport (options)'");
  const header = words(text.slice(0, open));
  if (header.length !== 7)
    throw new Malformed(
      header[0]?.at ?? 0,
      `the header has ${header.length} words; it is 'action proto src sport -> dst dport'`,
    );
  const [action, proto, src, sport, arrow, dst, dport] = header as [
    Token,
    Token,
    Token,
    Token,
    Token,
    Token,
    Token,
  ];
  const problems: IdsProblem[] = [];
  if (!ACTIONS.has(action.text)) {
    if (/^(pass|rejectsrc|rejectdst|rejectboth|sdrop|log|activate|dynamic)$/.test(action.text))
      problems.push({
        at: action.at,
        kind: "refused",
        message: `action '${action.text}' is not supported (alert, drop, reject)`,
      });
    else throw new Malformed(action.at, `unknown action '${action.text}' (alert, drop, reject)`);
  }
  if (!PROTOCOLS.has(proto.text))
    problems.push({
      at: proto.at,
      kind: "refused",
      message: `protocol '${proto.text}' is not supported (tcp, udp, ip): moat matches the first bytes of a flow, not an application protocol`,
    });
  if (arrow.text !== "->" && arrow.text !== "<>")
    throw new Malformed(arrow.at, `the direction is '->' or '<>', not '${arrow.text}'`);
  const source = { addresses: address(src, problems), ports: ports(sport, problems) };
  const target = { addresses: address(dst, problems), ports: ports(dport, problems) };

  const close = text.lastIndexOf(")");
  if (close < open) throw new Malformed(open, "the options are not closed with ')'");
  const rest = text.slice(close + 1).trim();
  if (rest !== "") throw new Malformed(close + 1, "text after the closing ')'");
  const options = splitOptions(text, open + 1, close);

  const sig: IdsSignature = {
    action: action.text as IdsSignature["action"],
    protocol: proto.text as IdsSignature["protocol"],
    source,
    target,
    bidirectional: arrow.text === "<>",
    sid: 0,
    msg: "",
    contents: [],
  };
  let sidAt = -1;
  /** The modifiers the last content was given (Suricata refuses one given twice). */
  let given = new Set<string>();
  const flowGiven = new Map<string, string>();
  for (const o of options) {
    const last = sig.contents[sig.contents.length - 1];
    switch (o.name) {
      case "msg":
        sig.msg = unquote(o);
        break;
      case "sid":
        if (sidAt >= 0) throw new Malformed(o.at, "a signature has one sid");
        sig.sid = integer(o, 1, 2 ** 32 - 1);
        sidAt = o.at;
        break;
      case "rev":
        sig.rev = integer(o, 0, 2 ** 32 - 1);
        break;
      case "classtype":
        sig.classtype = value(o);
        break;
      case "content":
        sig.contents.push(content(o));
        given = new Set();
        break;
      case "flow":
        flow(o, sig, problems, flowGiven);
        break;
      default:
        if (CONTENT_MODIFIERS.has(o.name)) {
          if (!last) throw new Malformed(o.at, `'${o.name}' must follow a content`);
          if (given.has(o.name))
            throw new Malformed(o.at, `'${o.name}' is given twice for this content`);
          given.add(o.name);
          modifier(o, last);
        } else if (!DESCRIPTIVE.has(o.name)) {
          problems.push({
            at: o.at,
            kind: "refused",
            message: `keyword '${o.name}' is not supported (moat's subset: content, nocase, offset, depth, distance, within, flow, msg, sid)`,
          });
        }
    }
  }
  if (sidAt < 0) throw new Malformed(open, "a signature needs a sid");
  if (sig.contents.length > MAX_CONTENTS)
    throw new Malformed(
      open,
      `${sig.contents.length} contents: a signature takes at most ${MAX_CONTENTS}`,
    );
  if (sig.contents.length === 0 && problems.length === 0)
    throw new Malformed(open, "a signature needs at least one content");
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, signature: sig };
}

function words(s: string): Token[] {
  const out: Token[] = [];
  const re = /\S+/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s))) out.push({ text: m[0], at: m.index });
  // a bracketed list may hold spaces: [1.2.3.4, 5.6.7.8]; the open brackets of the last token
  // are kept as it grows (counted again over the whole token, a long list took time squared).
  // The spaces stay in the token, so its entries keep their places in the text.
  const merged: Token[] = [];
  let depth = 0;
  for (const t of out) {
    const prev = merged[merged.length - 1];
    if (prev && depth > 0) prev.text += s.slice(prev.at + prev.text.length, t.at) + t.text;
    else {
      merged.push({ ...t });
      depth = 0;
    }
    depth += depthOf(t.text);
  }
  return merged;
}

const DIGITS = /^\d*$/;

function depthOf(s: string): number {
  let d = 0;
  for (const c of s) d += c === "[" ? 1 : c === "]" ? -1 : 0;
  return d;
}

function address(t: Token, problems: IdsProblem[]): IdsAddress {
  if (t.text === "any") return { kind: "any" };
  if (t.text === "$HOME_NET") return { kind: "home" };
  if (t.text === "$EXTERNAL_NET") return { kind: "external" };
  const entries: { cidr: string; negated: boolean }[] = [];
  for (const { text: body, at, negated } of listItems(t)) {
    if (body.startsWith("$")) {
      problems.push({
        at,
        kind: "refused",
        message: `address '${body}' is not supported (any, $HOME_NET, $EXTERNAL_NET, IP, CIDR, [list], !negation)`,
      });
      continue;
    }
    const range = idsAddressRange(body);
    if (!range.ok) throw new Malformed(at, range.error);
    entries.push({ cidr: body, negated });
  }
  return { kind: "list", entries };
}

/** The shape of an IP or CIDR: what else moat reads as an address (a range, a name) is not one. */
const IP_OR_CIDR = /^[0-9a-fA-F:.]+(\/\d*)?$/;

/**
 * The addresses of a signature's IP or CIDR entry (without its '!'), read by moat's address
 * parser: the loader refuses what it cannot read, so the matcher reads only what it accepted.
 */
export function idsAddressRange(text: string): Parsed<IntervalTarget> {
  const notOne = `'${text}' is not an IP address or CIDR`;
  if (!IP_OR_CIDR.test(text)) return fail(notOne);
  const entry = parseAddressEntry(text);
  if (!entry.ok) return entry;
  const target = entry.value.target;
  return target.kind === "interval" ? ok(target) : fail(notOne);
}

function ports(t: Token, problems: IdsProblem[]): IdsPorts {
  if (t.text === "any") return { kind: "any" };
  const ranges: IdsPortRange[] = [];
  for (const item of listItems(t)) {
    const { text: body, negated } = item;
    if (body.startsWith("$")) {
      problems.push({
        at: item.at,
        kind: "refused",
        message: `port '${body}' is not supported (any, N, N:M, N:, :M, [list], !negation)`,
      });
      continue;
    }
    // split at the colon, then digits each side: one pattern over both sides tried every split
    // of a long run of digits (a rules file may come from anywhere)
    const colon = body.indexOf(":");
    const first = colon < 0 ? body : body.slice(0, colon);
    const last = colon < 0 ? "" : body.slice(colon + 1);
    if (!DIGITS.test(first) || !DIGITS.test(last) || body === ":" || body === "")
      throw new Malformed(item.at, `'${body}' is not a port or port range`);
    const lo = first === "" ? 0 : Number(first);
    const hi = colon < 0 ? lo : last === "" ? 65535 : Number(last);
    if (lo > 65535 || hi > 65535 || lo > hi)
      throw new Malformed(item.at, `'${body}' is not a port or port range`);
    ranges.push({ lo, hi, negated });
  }
  return { kind: "list", ranges };
}

/** A list's entry without its '!': negated by an odd number of them (its own and its lists'). */
interface ListItem extends Token {
  negated: boolean;
}

/** Lists within lists, at most (a rules file may come from anywhere). */
const MAX_LIST_DEPTH = 8;

/**
 * The entries of "a", "!a" or "[a, !b, ![c, d]]", lists within lists flattened: a '!' before a
 * list negates each of its entries (as Suricata reads it); offsets kept (an entry's own '!'
 * with it).
 */
function listItems(t: Token, negated = false, depthIn = 0): ListItem[] {
  if (t.text.startsWith("!")) {
    const rest = t.text.slice(1);
    const lead = rest.length - rest.trimStart().length;
    if (!rest.trimStart().startsWith("["))
      return [{ text: rest.trimStart(), at: t.at, negated: !negated }];
    return listItems({ text: rest.trimStart(), at: t.at + 1 + lead }, !negated, depthIn);
  }
  if (!t.text.startsWith("[")) return [{ ...t, negated }];
  if (depthIn >= MAX_LIST_DEPTH)
    throw new Malformed(t.at, `lists nested more than ${MAX_LIST_DEPTH} deep`);
  const out: ListItem[] = [];
  let depth = 0;
  let start = 1;
  const entry = (end: number) => {
    const part = t.text.slice(start, end);
    const text = part.trim();
    const at = t.at + start + part.length - part.trimStart().length;
    if (text === "") throw new Malformed(at, "an empty list entry");
    // one by one: a list of a million entries is more arguments than a call takes
    for (const item of listItems({ text, at }, negated, depthIn + 1)) out.push(item);
    start = end + 1;
  };
  for (let i = 1; i < t.text.length; i++) {
    const c = t.text[i];
    if (c === "[") depth++;
    else if (c === "]" && depth > 0) depth--;
    else if (c === "," && depth === 0) entry(i);
    else if (c === "]") {
      if (i !== t.text.length - 1) throw new Malformed(t.at + i + 1, "text after a list's ']'");
      entry(i);
      return out;
    }
  }
  throw new Malformed(t.at, "a list is not closed with ']'");
}

interface OptionToken {
  name: string;
  /** The raw value (after ':'), trimmed; undefined for a bare keyword. */
  value?: string;
  at: number;
  valueAt: number;
}

/** name[:value]; pairs, split at ';' outside quotes (\; and \" escape; a last '\' is kept). */
function splitOptions(text: string, from: number, to: number): OptionToken[] {
  const out: OptionToken[] = [];
  let start = from;
  let quoted = false;
  for (let i = from; i <= to; i++) {
    const c = text[i];
    // a backslash escapes the next character of the options, never their closing ')'
    if (c === "\\" && i + 1 < to) {
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (i === to && quoted) throw new Malformed(start, "a quoted value is not closed");
    if ((c === ";" && !quoted) || i === to) {
      const raw = text.slice(start, i);
      const lead = raw.length - raw.trimStart().length;
      const trimmed = raw.trim();
      if (trimmed !== "") {
        const colon = trimmed.indexOf(":");
        const name = (colon < 0 ? trimmed : trimmed.slice(0, colon)).trim();
        const at = start + lead;
        if (!/^[a-z_][a-z0-9_.-]*$/i.test(name))
          throw new Malformed(at, `'${name}' is not a keyword`);
        if (colon < 0) out.push({ name, at, valueAt: at });
        else {
          const v = trimmed.slice(colon + 1);
          const vLead = v.length - v.trimStart().length;
          out.push({ name, value: v.trim(), at, valueAt: at + colon + 1 + vLead });
        }
      } else if (i !== to) {
        throw new Malformed(start, "an empty option");
      }
      start = i + 1;
    }
  }
  return out;
}

function value(o: OptionToken): string {
  if (o.value === undefined || o.value === "")
    throw new Malformed(o.at, `'${o.name}' needs a value`);
  return o.value;
}

function unquote(o: OptionToken): string {
  const v = value(o);
  const body = v.startsWith('"') && v.endsWith('"') && v.length >= 2 ? v.slice(1, -1) : v;
  return body.replace(/\\(.)/g, "$1");
}

function integer(o: OptionToken, min: number, max: number): number {
  const v = value(o);
  if (!/^-?\d+$/.test(v)) throw new Malformed(o.valueAt, `'${o.name}' must be a whole number`);
  const n = Number(v);
  if (n < min || n > max) throw new Malformed(o.valueAt, `'${o.name}' must be ${min} to ${max}`);
  return n;
}

/** content:"text|0d 0a|"; with \" \; \\ escapes and |hex| runs. */
function content(o: OptionToken): IdsContent {
  let v = value(o);
  let at = o.valueAt;
  const negated = v.startsWith("!");
  if (negated) {
    v = v.slice(1).trimStart();
    at += 1;
  }
  if (!v.startsWith('"') || !v.endsWith('"') || v.length < 2)
    throw new Malformed(at, "a content is a quoted string");
  const body = v.slice(1, -1);
  let out = "";
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === "\\") {
      const next = body[i + 1];
      if (next === undefined || !'";\\:|'.includes(next))
        throw new Malformed(at + 1 + i, 'only \\" \\; \\\\ \\: and \\| are escapes in a content');
      out += next;
      i++;
    } else if (c === "|") {
      const end = body.indexOf("|", i + 1);
      if (end < 0) throw new Malformed(at + 1 + i, "a |hex| run is not closed");
      const hex = body.slice(i + 1, end).replace(/\s+/g, "");
      if (!/^([0-9a-fA-F]{2})*$/.test(hex))
        throw new Malformed(at + 1 + i, "a |hex| run holds pairs of hex digits");
      for (let h = 0; h < hex.length; h += 2)
        out += String.fromCharCode(parseInt(hex.slice(h, h + 2), 16));
      i = end;
    } else if (c === '"' || c === ";") {
      throw new Malformed(at + 1 + i, `'${c}' in a content must be escaped`);
    } else {
      const code = c.charCodeAt(0);
      if (code > 0xff)
        throw new Malformed(at + 1 + i, "a content holds bytes: write other characters as |hex|");
      out += c;
    }
  }
  if (out.length === 0) throw new Malformed(at, "a content is not empty");
  return { pattern: out, nocase: false, negated };
}

function modifier(o: OptionToken, c: IdsContent): void {
  switch (o.name) {
    case "nocase":
      if (o.value !== undefined) throw new Malformed(o.at, "'nocase' takes no value");
      c.nocase = true;
      return;
    case "offset":
      notMixed(o, c);
      c.offset = integer(o, 0, 65535);
      return;
    case "depth":
      notMixed(o, c);
      c.depth = integer(o, 1, 65535);
      notShorter(o, c.depth, c);
      return;
    case "distance":
      notMixed(o, c);
      c.distance = integer(o, -65535, 65535);
      return;
    case "within":
      notMixed(o, c);
      c.within = integer(o, 1, 65535);
      notShorter(o, c.within, c);
      return;
  }
}

/**
 * A content's window is either absolute (offset/depth, from the start of the bytes) or relative
 * (distance/within, after the previous content's match), never both: Suricata refuses the
 * signature, as moat does.
 */
function notMixed(o: OptionToken, c: IdsContent): void {
  const relative = o.name === "distance" || o.name === "within";
  const other = relative
    ? c.offset !== undefined
      ? "offset"
      : c.depth !== undefined
        ? "depth"
        : undefined
    : c.distance !== undefined
      ? "distance"
      : c.within !== undefined
        ? "within"
        : undefined;
  if (other === undefined) return;
  const start = "from the start of the bytes";
  const after = "after the previous content";
  const message = relative
    ? `'${o.name}' is ${after}, '${other}' ${start}`
    : `'${o.name}' is ${start}, '${other}' ${after}`;
  throw new Malformed(o.at, `${message}: a content takes one or the other`);
}

/** A depth or within shorter than the content: it never matches (Suricata refuses it). */
function notShorter(o: OptionToken, limit: number, c: IdsContent): void {
  if (limit < c.pattern.length)
    throw new Malformed(
      o.at,
      `${o.name} ${limit} is shorter than the content (${c.pattern.length} bytes): it never matches`,
    );
}

/**
 * A flow option's words; `given` holds the words of the signature's flow options so far (by what
 * they set: a direction, or the word itself), as Suricata refuses one set twice.
 */
function flow(
  o: OptionToken,
  sig: IdsSignature,
  problems: IdsProblem[],
  given: Map<string, string>,
): void {
  let at = o.valueAt;
  for (const raw of value(o).split(",")) {
    const word = raw.trim();
    const wordAt = at + (raw.length - raw.trimStart().length);
    at += raw.length + 1;
    const sets = FLOW_DIRECTIONS.has(word) ? "direction" : word;
    const before = given.get(sets);
    if (before === word) throw new Malformed(wordAt, `flow '${word}' is given twice`);
    if (before !== undefined)
      throw new Malformed(wordAt, `flow '${word}' and '${before}': a signature has one direction`);
    given.set(sets, word);
    if (!FLOW_ACCEPTED.has(word)) {
      problems.push({
        at: wordAt,
        kind: "refused",
        message: `flow '${word}' is not supported (to_server, to_client, from_server, from_client, established)`,
      });
      continue;
    }
    if (word === "to_server" || word === "from_client") sig.flow = "to_server";
    if (word === "to_client" || word === "from_server") sig.flow = "to_client";
    if (word === "established") sig.established = true;
    if (word === "only_stream") sig.onlyStream = true;
  }
}
