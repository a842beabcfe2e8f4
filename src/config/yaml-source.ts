// A policy file parsed as YAML with positions: the plain data, plus "where is this path?" answers.

import {
  type Alias,
  Document as YamlDocument,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  Lexer,
  LineCounter,
  parseDocument,
  visit,
  type Document,
  type Node,
  type Pair,
} from "yaml";
import { diagnostic, type Diagnostic, type SourcePos } from "./diagnostics.ts";
import type { Locator, PositionTableParts } from "./positions.ts";

export type PathSegment = string | number;

/** ["rules", 2, "layer4", "port", 0] -> "rules[2].layer4.port[0]"; [] -> "(root)". */
export function formatPath(path: readonly PathSegment[]): string {
  let text = "";
  for (const seg of path) text += typeof seg === "number" ? `[${seg}]` : text ? `.${seg}` : seg;
  return text || "(root)";
}

interface Located {
  node: Node | null;
  pair: Pair | null;
}

/** What the checks read from a parsed policy file: the data, and where each path is written. */
export interface CheckedSource {
  readonly file: string;
  readonly data: unknown;
  readonly parsed: boolean;
  readonly diagnostics: Diagnostic[];
  /** Position of the value at `path`, or of the nearest ancestor that exists. */
  pos(path: readonly PathSegment[]): SourcePos;
  /** Position of the key of the mapping entry at `path` (for "unknown property"). */
  keyPos(path: readonly PathSegment[]): SourcePos;
  /** Whether the scalar at `path` is written in quotes (its text then starts one column on). */
  quoted?(path: readonly PathSegment[]): boolean;
}

export class PolicySource implements CheckedSource, Locator {
  readonly file: string;
  /** The document as plain data (what the schema validates). */
  readonly data: unknown;
  /** False when the YAML syntax itself is broken: then there is no data to check. */
  readonly parsed: boolean = false;
  /** YAML syntax errors and warnings, and YAML-isms that would silently change meaning. */
  readonly diagnostics: Diagnostic[] = [];
  private readonly doc: Document;
  private readonly lines = new LineCounter();
  private readonly text: string;
  /** What each alias names, found in one walk when first asked (see aliasTargets). */
  private targets: Map<Alias, Node | null> | undefined;

  constructor(file: string, text: string) {
    this.file = file;
    this.text = text;
    const binary = notTextAt(text);
    if (binary >= 0) {
      this.doc = new YamlDocument(null);
      this.diagnostics.push(
        diagnostic(
          { file, ...lineColAt(text, binary), path: "(file)" },
          `is not a text file (a NUL byte or invalid UTF-8 at byte ${byteOffset(text, binary)})`,
        ),
      );
      return;
    }
    // js-yaml (the other readers) ends a line at a carriage return alone, the yaml library does
    // not: what such a file means would depend on which reader read it
    const cr = loneCrAt(text);
    if (cr >= 0) {
      this.doc = new YamlDocument(null);
      this.diagnostics.push(diagnostic({ file, ...lineColAt(text, cr), path: "(yaml)" }, LONE_CR));
      return;
    }
    // the yaml library builds the whole tree before its depth can be checked: megabytes of `[`
    // would take gigabytes and a minute
    const deepAt = tooDeepAt(text);
    if (deepAt >= 0) {
      this.doc = new YamlDocument(null);
      this.diagnostics.push(
        diagnostic({ file, ...lineColAt(text, deepAt), path: "(yaml)" }, TOO_DEEP),
      );
      return;
    }
    this.doc = parseDocument(text, { lineCounter: this.lines, prettyErrors: false });
    // one diagnostic for a document the parser gives up on (it may report the same thing often)
    const fatal = this.doc.errors.find((e) => e.code === "MULTIPLE_DOCS" || isTooDeep(e.message));
    // once each: an unclosed bracket is reported by every level it leaves open
    const reported = new Set<string>();
    for (const e of fatal ? [fatal] : this.doc.errors) {
      const { line, col } = this.lines.linePos(e.pos[0]);
      const key = `${e.pos[0]} ${e.code} ${e.message}`;
      if (reported.has(key)) continue;
      reported.add(key);
      this.diagnostics.push(diagnostic({ file, line, col, path: "(yaml)" }, yamlMessage(e)));
    }
    for (const w of this.doc.warnings) {
      if (w.code === "TAG_RESOLVE_FAILED") continue; // reported by path in fixTags
      const { line, col } = this.lines.linePos(w.pos[0]);
      this.diagnostics.push(
        diagnostic({ file, line, col, path: "(yaml)" }, firstLine(w.message), "warning"),
      );
    }
    if (this.doc.errors.length > 0) return;
    const deep = tooDeep(this.doc.contents);
    if (deep) {
      const { line, col } = this.lines.linePos(deep.range?.[0] ?? 0);
      this.diagnostics.push(diagnostic({ file, line, col, path: "(yaml)" }, TOO_DEEP));
      return;
    }
    const endless = aliasInsideItsNode(this.doc, this.aliasTargets());
    if (endless) {
      const { line, col } = this.lines.linePos(endless.range?.[0] ?? 0);
      this.diagnostics.push(
        diagnostic(
          { file, line, col, path: "(yaml)" },
          `the alias *${endless.source} is inside the node it names (a document without end); write the value out`,
        ),
      );
      return;
    }
    this.fixTags(this.doc.contents, []);
    try {
      this.data = this.doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) as unknown;
    } catch (err) {
      // the yaml library refuses an alias bomb ("billion laughs") this way
      if (!(err instanceof ReferenceError)) throw err;
      const { line, col } = this.lines.linePos(firstAlias(this.doc.contents)?.range?.[0] ?? 0);
      this.diagnostics.push(
        diagnostic(
          { file, line, col, path: "(yaml)" },
          `the document expands aliases too often (at most ${MAX_ALIAS_COUNT}); write the values out`,
        ),
      );
      return;
    }
    this.parsed = true;
  }

  /** Position of the value at `path`, or of the nearest ancestor that exists. */
  pos(path: readonly PathSegment[]): SourcePos {
    return this.at(path, "value");
  }

  /** Position of the key of the mapping entry at `path` (for "unknown property"). */
  keyPos(path: readonly PathSegment[]): SourcePos {
    return this.at(path, "key");
  }

  quoted(path: readonly PathSegment[]): boolean {
    let here: Located = { node: this.doc.contents, pair: null };
    for (const seg of path) {
      const next = this.child(here.node, seg);
      if (!next) return false;
      here = next;
    }
    return (
      isScalar(here.node) &&
      (here.node.type === "QUOTE_DOUBLE" || here.node.type === "QUOTE_SINGLE")
    );
  }

  private at(path: readonly PathSegment[], want: "key" | "value"): SourcePos {
    let here: Located = { node: this.doc.contents, pair: null };
    let offset = this.offsetOf(here, want) ?? 0;
    for (const seg of path) {
      const next = this.child(here.node, seg);
      if (!next) break;
      here = next;
      offset = this.offsetOf(here, want) ?? offset;
    }
    const { line, col } = this.lines.linePos(offset);
    return { file: this.file, line, col, path: formatPath(path) };
  }

  /**
   * The offsets of a lazy table's entries (src/config/positions.ts), as pos() and keyPos() find
   * them: where the faster readers' node table cannot say (src/config/lean-source.ts).
   */
  locate(parts: PositionTableParts, from: number, to: number, out: Int32Array): void {
    const root: Located = { node: this.doc.contents, pair: null };
    const rootOffset = this.offsetOf(root, "value") ?? 0;
    if (from === 0) out[0] = out[1] = rootOffset;
    const places = this.entryPlaces;
    for (let e = from; e < to; e++) {
      const up = parts.parent[e] ?? -1;
      const s = parts.segment[e] ?? 0;
      const seg = s >= 0 ? s : (parts.names[-s - 1] ?? "");
      const above = up < 0 ? root : places[up];
      // a path not in the file is where its nearest part is: nothing under it is looked for
      const here = above ? this.child(above.node, seg) : undefined;
      places[e] = here ?? null;
      const value = up < 0 ? rootOffset : (out[2 * up + 2] ?? rootOffset);
      const key = up < 0 ? rootOffset : (out[2 * up + 3] ?? rootOffset);
      out[2 * e + 2] = (here && this.offsetOf(here, "value")) ?? value;
      out[2 * e + 3] = (here && this.offsetOf(here, "key")) ?? key;
    }
  }

  /** What locate() found for each entry (null: not in the file). */
  private readonly entryPlaces: (Located | null)[] = [];

  private offsetOf(here: Located, want: "key" | "value"): number | undefined {
    const keyOffset = here.pair && isScalar(here.pair.key) ? here.pair.key.range?.[0] : undefined;
    if (want === "key" && keyOffset !== undefined) return keyOffset;
    const range = here.node?.range;
    // an empty value ("port:" with nothing after it) points at its key
    if (!range || (isScalar(here.node) && here.node.value === null && range[0] === range[1]))
      return keyOffset ?? range?.[0];
    return range[0];
  }

  private aliasTargets(): Map<Alias, Node | null> {
    return (this.targets ??= aliasTargets(this.doc));
  }

  private child(node: Node | null, seg: PathSegment): Located | undefined {
    const target = node && isAlias(node) ? (this.aliasTargets().get(node) ?? null) : node;
    if (isMap(target)) {
      const pair = target.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      return pair ? { node: (pair.value as Node | null) ?? null, pair } : undefined;
    }
    if (isSeq(target) && typeof seg === "number") {
      const item = target.items[seg] as Node | undefined;
      return item ? { node: item, pair: null } : undefined;
    }
    return undefined;
  }

  /**
   * An unquoted `!10.0.0.0/8` is a YAML tag, not an excluded address: report it with the fix,
   * then read it as the string the user meant so the rest of the file is still checked.
   */
  private fixTags(node: unknown, path: PathSegment[]): void {
    if (isPair(node)) return;
    if (isScalar(node)) {
      const tag = node.tag;
      if (tag?.startsWith("!") && !tag.startsWith("!!")) {
        const meant =
          node.value === null || node.value === "" ? tag : `${tag} ${String(node.value)}`;
        // the node's range starts after the tag: point at the tag, where the user typed '!'
        const after = node.range?.[0] ?? 0;
        const at = this.text.lastIndexOf(tag, after);
        const { line, col } = this.lines.linePos(at >= 0 ? at : after);
        this.diagnostics.push(
          diagnostic(
            { file: this.file, line, col, path: formatPath(path) },
            `YAML reads a leading '!' as a tag: quote it, e.g. "${meant}"`,
          ),
        );
        node.tag = undefined;
        node.value = meant;
      }
      return;
    }
    if (isMap(node)) {
      for (const pair of node.items)
        if (isScalar(pair.key)) this.fixTags(pair.value, [...path, String(pair.key.value)]);
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => this.fixTags(item, [...path, i]));
    }
  }
}

/** Mappings and lists inside each other, at most (the schema is a few levels deep). */
const MAX_DEPTH = 64;
const TOO_DEEP = `the document is nested more than ${MAX_DEPTH} levels deep`;
const LONE_CR =
  "a carriage return not followed by a line feed: YAML readers disagree on whether it ends a line; end lines with LF or CRLF";
/** Alias expansions toJS allows, weighted by their size (the yaml library's own guard). */
const MAX_ALIAS_COUNT = 1000;

/** A lone surrogate: what textOfBytes makes of a byte that is not UTF-8 (nothing UTF-8 is one). */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Whether `text` holds a byte that was not UTF-8 (see textOfBytes). */
export function hasNonUtf8(text: string): boolean {
  return LONE_SURROGATE.test(text);
}

/** The offset in `text` of the first byte that was not UTF-8 (see textOfBytes), or -1. */
export function nonUtf8At(text: string): number {
  return text.search(LONE_SURROGATE);
}

/** The offset in `text` of a NUL or of a byte that was not UTF-8 (see textOfBytes), or -1. */
function notTextAt(text: string): number {
  const nul = text.indexOf("\u0000");
  const bad = nonUtf8At(text);
  return nul < 0 ? bad : bad < 0 ? nul : Math.min(nul, bad);
}

/** How many bytes of the file come before `at` in `text` (nothing before it is a stand-in byte). */
export function byteOffset(text: string, at: number): number {
  return new TextEncoder().encode(text.slice(0, at)).length;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * A policy or set file's bytes as text. A byte that is not part of UTF-8 becomes a lone surrogate
 * (U+DC00 + the byte), which no UTF-8 decodes to: the checks then refuse it at its line and
 * column, while U+FFFD written in UTF-8 is a character like any other. (Decoding with
 * replacement would make both U+FFFD.)
 */
export function textOfBytes(bytes: Uint8Array): string {
  try {
    return UTF8.decode(bytes);
  } catch {
    let text = "";
    let from = 0;
    for (let i = 0; i < bytes.length;) {
      const n = utf8Length(bytes, i);
      if (n > 0) {
        i += n;
        continue;
      }
      text += UTF8.decode(bytes.subarray(from, i)) + String.fromCharCode(0xdc00 + (bytes[i] ?? 0));
      from = ++i;
    }
    return text + UTF8.decode(bytes.subarray(from));
  }
}

/** The length of the UTF-8 sequence at `i` (WHATWG's rules: no overlong form, no surrogate), or 0. */
function utf8Length(bytes: Uint8Array, i: number): number {
  const b = bytes[i] ?? 0;
  if (b < 0x80) return 1;
  const next = (k: number, lo = 0x80, hi = 0xbf) => {
    const c = bytes[i + k];
    return c !== undefined && c >= lo && c <= hi;
  };
  if (b >= 0xc2 && b <= 0xdf) return next(1) ? 2 : 0;
  if (b >= 0xe0 && b <= 0xef) {
    const [lo, hi] = b === 0xe0 ? [0xa0, 0xbf] : b === 0xed ? [0x80, 0x9f] : [0x80, 0xbf];
    return next(1, lo, hi) && next(2) ? 3 : 0;
  }
  if (b >= 0xf0 && b <= 0xf4) {
    const [lo, hi] = b === 0xf0 ? [0x90, 0xbf] : b === 0xf4 ? [0x80, 0x8f] : [0x80, 0xbf];
    return next(1, lo, hi) && next(2) && next(3) ? 4 : 0;
  }
  return 0;
}

/** The offset of the first carriage return not followed by a line feed, or -1. */
export function loneCrAt(text: string): number {
  for (let at = text.indexOf("\r"); at >= 0; at = text.indexOf("\r", at + 1))
    if (text.charCodeAt(at + 1) !== 0x0a) return at;
  return -1;
}

/** Line and column (from 1) of `offset`, lines ending at a line feed (the yaml library's). */
function lineColAt(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  for (let i = text.indexOf("\n"); i >= 0 && i < offset; i = text.indexOf("\n", i + 1)) line++;
  return { line, col: offset - text.lastIndexOf("\n", offset - 1) };
}

/**
 * The offset of the first collection nested deeper than MAX_DEPTH, or -1, from the yaml library's
 * tokens alone (its quotes, comments and block scalars, no tree): flow brackets, and the block
 * collections a stack of columns gives (a `- ` or key more indented than the one it is under
 * starts one; a list may start at its key's column). Whatever it misses (a `[a: 1]` pair, a flow
 * key's map) is bounded, and tooDeep finds it once the tree is built.
 */
function tooDeepAt(text: string): number {
  const cols: number[] = [];
  const isSeq: boolean[] = [];
  let flow = 0;
  let offset = 0;
  let lineStart = 0;
  let atLineStart = true;
  /** Where the node this line's last indicator started begins (-1: not yet). */
  let nodeCol = -1;
  let nodeAt = 0;
  /** Where the key of a mapping too deep starts (its `:` found it). */
  let deepAt = -1;
  const close = (col: number) => {
    while (cols.length > 0 && (cols[cols.length - 1] ?? 0) > col) {
      cols.pop();
      isSeq.pop();
    }
  };
  const open = (col: number, seq: boolean): boolean => {
    close(col);
    const n = cols.length;
    if (n > 0 && cols[n - 1] === col) {
      if (isSeq[n - 1] === seq) return false; // the same collection's next entry
      if (!seq) {
        // a key at a list's column: the list was its key's value; the mapping above goes on
        cols.pop();
        isSeq.pop();
        if (cols.length > 0 && cols[cols.length - 1] === col && !isSeq[cols.length - 1])
          return false;
      }
    }
    cols.push(col);
    isSeq.push(seq);
    return cols.length > MAX_DEPTH;
  };
  /** Whether `token`, at `at` (column `col`), opens a collection past MAX_DEPTH. */
  const tooDeepHere = (token: string, c: number, at: number, col: number): boolean => {
    const opens = c === 0x5b || c === 0x7b; // [ {
    if (flow > 0) {
      atLineStart = false;
      if (opens) return cols.length + ++flow > MAX_DEPTH;
      if (c === 0x5d || c === 0x7d) flow--;
      return false;
    }
    if (atLineStart) {
      close(col);
      atLineStart = false;
    }
    if (token === "-" || token === "?" || token === ":") {
      const key = token === ":" && nodeCol >= 0;
      const deep = open(key ? nodeCol : col, token === "-");
      if (deep && key) deepAt = nodeAt;
      nodeCol = -1;
      return deep;
    }
    if (token === "---" || token === "...") {
      cols.length = isSeq.length = 0;
      nodeCol = -1;
      return false;
    }
    if (nodeCol < 0) {
      nodeCol = col;
      nodeAt = at;
    }
    return opens && cols.length + ++flow > MAX_DEPTH;
  };
  for (const token of new Lexer().lex(text)) {
    const c = token.charCodeAt(0);
    // the lexer's markers (document, scalar, flow's end) are not in the text
    if (token.length === 1 && (c === 0x02 || c === 0x1f || c === 0x18)) {
      if (c === 0x18) flow = 0;
      continue;
    }
    const at = offset;
    offset += token.length;
    if (c === 0x0a || c === 0x0d) {
      lineStart = offset;
      atLineStart = true;
      nodeCol = -1;
      continue;
    }
    // blanks and comments open nothing
    if (c !== 0x20 && c !== 0x09 && c !== 0x23 && tooDeepHere(token, c, at, at - lineStart))
      return deepAt >= 0 ? deepAt : at;
    // a quoted or block scalar over several lines
    const nl = token.lastIndexOf("\n");
    if (nl >= 0) {
      lineStart = at + nl + 1;
      if (nl === token.length - 1) {
        atLineStart = true;
        nodeCol = -1;
      }
    }
  }
  return -1;
}

const isTooDeep = (message: string) => message.includes("Maximum call stack size exceeded");

function yamlMessage(e: { code: string; message: string }): string {
  if (e.code === "MULTIPLE_DOCS")
    return "a policy file holds one YAML document; remove the '---' and what follows";
  if (isTooDeep(e.message)) return TOO_DEEP;
  return firstLine(e.message);
}

/** The first node deeper than MAX_DEPTH collections, walked without recursion. */
function tooDeep(root: unknown): Node | null {
  const stack: [unknown, number][] = [[root, 0]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop() ?? [null, 0];
    if (!isMap(node) && !isSeq(node)) continue;
    if (depth >= MAX_DEPTH) return node;
    for (const item of node.items) {
      if (isPair(item)) stack.push([item.key, depth + 1], [item.value, depth + 1]);
      else stack.push([item, depth + 1]);
    }
  }
  return null;
}

/**
 * The node each alias names: the last node before it with its anchor, as Alias.resolve finds it.
 * That walks the whole document on every call; positions are asked for through an alias once per
 * entry of what it names, so a list shared by a hundred rules would be walked for each of them.
 */
function aliasTargets(doc: Document): Map<Alias, Node | null> {
  const anchored = new Map<string, Node>();
  const targets = new Map<Alias, Node | null>();
  visit(doc, {
    Node: (_key, node) => {
      if (isAlias(node)) targets.set(node, anchored.get(node.source) ?? null);
      else if (node.anchor) anchored.set(node.anchor, node);
    },
  });
  return targets;
}

/** Pushed after a collection on the walk's stack: the collection is left when it is popped. */
const LEAVE = Symbol("leave");

/**
 * The first alias inside the node it names (`&r {x: *r}`): toJS would make a value that holds
 * itself, which no policy can be and which every walk of the data would follow without end.
 * Walked without recursion, with the collections the walk is inside.
 */
function aliasInsideItsNode(doc: Document, targets: Map<Alias, Node | null>): Alias | null {
  const inside = new Set<unknown>();
  const stack: unknown[] = [doc.contents];
  while (stack.length > 0) {
    const node = stack.pop();
    if (node === LEAVE) {
      inside.delete(stack.pop());
      continue;
    }
    if (isAlias(node)) {
      if (inside.has(targets.get(node))) return node;
      continue;
    }
    if (!isMap(node) && !isSeq(node)) continue;
    inside.add(node);
    stack.push(node, LEAVE);
    for (let i = node.items.length - 1; i >= 0; i--) {
      const item = node.items[i];
      if (isPair(item)) stack.push(item.value, item.key);
      else stack.push(item);
    }
  }
  return null;
}

function firstAlias(root: unknown): Node | null {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const node = stack.pop();
    if (isAlias(node)) return node;
    if (isMap(node)) for (const p of node.items) stack.push(p.value, p.key);
    // one by one: a sequence can hold more items than a call takes arguments
    else if (isSeq(node))
      for (let i = node.items.length - 1; i >= 0; i--) stack.push(node.items[i]);
  }
  return null;
}

function firstLine(message: string): string {
  return message.split("\n")[0]?.replace(/ at line \d+, column \d+:?$/, "") ?? message;
}
