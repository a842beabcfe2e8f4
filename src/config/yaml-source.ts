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
  type Document,
  type Node,
  type Pair,
} from "yaml";
import { diagnostic, type Diagnostic, type SourcePos } from "./diagnostics.ts";

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

export class PolicySource implements CheckedSource {
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

  constructor(file: string, text: string) {
    this.file = file;
    this.text = text;
    const binary = binaryAt(text);
    if (binary >= 0) {
      this.doc = new YamlDocument(null);
      this.diagnostics.push(
        diagnostic(
          { file, line: 1, col: 1, path: "(file)" },
          `is not a text file (a NUL byte or invalid UTF-8 at byte ${binary})`,
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
    const endless = aliasInsideItsNode(this.doc);
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

  private offsetOf(here: Located, want: "key" | "value"): number | undefined {
    const keyOffset = here.pair && isScalar(here.pair.key) ? here.pair.key.range?.[0] : undefined;
    if (want === "key" && keyOffset !== undefined) return keyOffset;
    const range = here.node?.range;
    // an empty value ("port:" with nothing after it) points at its key
    if (!range || (isScalar(here.node) && here.node.value === null && range[0] === range[1]))
      return keyOffset ?? range?.[0];
    return range[0];
  }

  private child(node: Node | null, seg: PathSegment): Located | undefined {
    const target = node && isAlias(node) ? (node.resolve(this.doc) ?? null) : node;
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

/** The byte offset of a NUL or of bytes that were not UTF-8 (read as U+FFFD), or -1. */
function binaryAt(text: string): number {
  // eslint-disable-next-line no-control-regex -- it looks for control characters
  const at = text.search(/[\u0000\ufffd]/);
  return at < 0 ? -1 : Buffer.byteLength(text.slice(0, at));
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

/** Pushed after a collection on the walk's stack: the collection is left when it is popped. */
const LEAVE = Symbol("leave");

/**
 * The first alias inside the node it names (`&r {x: *r}`): toJS would make a value that holds
 * itself, which no policy can be and which every walk of the data would follow without end.
 * Walked without recursion, with the collections the walk is inside.
 */
function aliasInsideItsNode(doc: Document): Alias | null {
  const inside = new Set<unknown>();
  const stack: unknown[] = [doc.contents];
  while (stack.length > 0) {
    const node = stack.pop();
    if (node === LEAVE) {
      inside.delete(stack.pop());
      continue;
    }
    if (isAlias(node)) {
      if (inside.has(node.resolve(doc))) return node;
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
