// A policy file read the fast way: js-yaml builds the plain data, and a listener notes where each
// node starts in compact arrays (no syntax tree), so a 100k-rule file loads in a fraction of the
// time and memory the yaml library's Document needs. Positions answer as PolicySource's do, as
// compact TablePos numbers (positions.ts) where the whole path is in the file. Any
// YAML feature whose data or positions could differ between the two libraries (tags, anchors,
// aliases, complex keys, directives, non-string keys, numbers YAML 1.2's core schema does not
// know) makes readFast give up; parse.ts then reads the file with PolicySource, as it also does
// whenever there is an error to report, so every YAML message comes from one place.

import { CORE_SCHEMA, load, type Schema, type State } from "js-yaml";
import type { Diagnostic, SourcePos } from "./diagnostics.ts";
import { OFFSET_LIMIT, PositionTable, type Locator, type PositionTableParts } from "./positions.ts";
import {
  formatPath,
  hasNonUtf8,
  loneCrAt,
  type CheckedSource,
  type PathSegment,
} from "./yaml-source.ts";

const EMPTY = 0;
const SCALAR = 1;
const SEQUENCE = 2;
const MAPPING = 3;

/** js-yaml's plain numbers that YAML 1.2's core schema (the yaml library's) also reads as numbers. */
export const CORE_NUMBER =
  /^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/;

/** The node table: one entry per YAML node, in document order. */
class Nodes {
  count = 0;
  start = new Int32Array(1024);
  kind = new Uint8Array(1024);
  firstChild = new Int32Array(1024).fill(-1);
  nextSibling = new Int32Array(1024).fill(-1);
  lastChild = new Int32Array(1024).fill(-1);
  children = new Int32Array(1024);
  /** String keys, by the index of their node (only nodes that may be keys are noted). */
  readonly key: (string | undefined)[] = [];
  unsafe = false;
  private lastResult: unknown = undefined;
  private readonly stack: number[] = [];
  private readonly text: string;

  constructor(text: string) {
    this.text = text;
  }

  readonly listener = (event: string, state: State): void => {
    if (event === "open") this.open(state.position);
    else this.close(state);
  };

  private open(position: number): void {
    const n = this.count++;
    if (n === this.start.length) this.grow();
    this.start[n] = position;
    this.key.push(undefined); // one entry per node, so the array stays dense
    const c = this.text.charCodeAt(skipSpace(this.text, position));
    // ! tag, & anchor, * alias, ? complex key, % directive: the slow path handles these
    if (c === 0x21 || c === 0x26 || c === 0x2a || c === 0x3f || c === 0x25) this.unsafe = true;
    const parent = this.stack[this.stack.length - 1];
    if (parent !== undefined) {
      const last = this.lastChild[parent] ?? -1;
      if (last < 0) this.firstChild[parent] = n;
      else this.nextSibling[last] = n;
      this.lastChild[parent] = n;
      this.children[parent] = (this.children[parent] ?? 0) + 1;
    }
    this.stack.push(n);
  }

  private close(state: State): void {
    const n = this.stack.pop() ?? 0;
    const result: unknown = state.result;
    const only = this.firstChild[n] ?? -1;
    if (this.children[n] === 1 && typeof result === "object" && result === this.lastResult) {
      // a list item that is a flow collection is composed twice, the second inside the first:
      // the outer node takes the inner one's children
      this.kind[n] = this.kind[only] ?? EMPTY;
      this.children[n] = this.children[only] ?? 0;
      this.firstChild[n] = this.firstChild[only] ?? -1;
      return;
    }
    this.lastResult = result;
    switch (state.kind) {
      case "scalar":
        this.kind[n] = SCALAR;
        if (typeof result === "string") {
          this.key[n] = result;
          // js-yaml's core schema reads -.5 or +.5e3 as a string, YAML 1.2's as a number: a plain
          // one (its text starts as its value does, unlike a quoted one) is left to PolicySource
          const c = result.charCodeAt(0);
          if (
            c <= 0x39 &&
            CORE_NUMBER.test(result) &&
            this.text.charCodeAt(skipSpace(this.text, this.start[n] ?? 0)) === c
          )
            this.unsafe = true;
        } else if (typeof result === "number") {
          const raw = this.text.slice(skipSpace(this.text, this.start[n] ?? 0), state.position);
          if (!CORE_NUMBER.test(raw.trimEnd())) this.unsafe = true;
        }
        break;
      case "sequence":
        this.kind[n] = SEQUENCE;
        if (!Array.isArray(result) || result.length !== this.children[n]) this.unsafe = true;
        break;
      case "mapping": {
        this.kind[n] = MAPPING;
        const size = result && typeof result === "object" ? Object.keys(result).length : -1;
        if (size * 2 !== this.children[n]) this.unsafe = true;
        for (
          let k = this.firstChild[n] ?? -1;
          k >= 0;
          k = this.nextSibling[this.nextSibling[k] ?? -1] ?? -1
        )
          if (this.key[k] === undefined) this.unsafe = true;
        break;
      }
      default:
        this.kind[n] = EMPTY;
    }
  }

  private grow(): void {
    const size = this.start.length * 2;
    const more = <T extends Int32Array | Uint8Array>(a: T, fill?: number): T => {
      const b = new (a.constructor as new (n: number) => T)(size);
      if (fill !== undefined) b.fill(fill);
      b.set(a);
      return b;
    };
    this.start = more(this.start);
    this.kind = more(this.kind);
    this.firstChild = more(this.firstChild, -1);
    this.nextSibling = more(this.nextSibling, -1);
    this.lastChild = more(this.lastChild, -1);
    this.children = more(this.children);
  }
}

/** The offset of the first character at or after `at` that is not blank, a line break or a comment. */
function skipSpace(text: string, at: number): number {
  let i = at;
  for (;;) {
    const c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
    else if (c === 0x23) {
      while (i < text.length && text.charCodeAt(i) !== 0x0a) i++;
    } else return i;
  }
}

export class FastSource implements CheckedSource, Locator {
  readonly file: string;
  readonly data: unknown;
  readonly parsed = true;
  readonly diagnostics: Diagnostic[] = [];
  private readonly text: string;
  private readonly nodes: Nodes;
  /** Children of large collections, by node: list items in order, mapping entries' key nodes by key. */
  private readonly items = new Map<number, number[]>();
  private readonly entries = new Map<number, Map<string, number>>();
  /**
   * The last path answered, as far as it was found (its first trailLength segments): the segments,
   * and the value node, key node (-1 for a list item) and formatPath of each prefix. The checks ask
   * for paths one after another that share most of their segments (rules[7], rules[7].layer4,
   * rules[7].layer4.port[0]): only the rest is walked. Written in place (no array is resized).
   */
  private trailLength = 0;
  private readonly trailSegs: PathSegment[] = [];
  private readonly trailNodes: number[] = [];
  private readonly trailKeys: number[] = [];
  private readonly trailTexts: string[] = [];
  /** What child() found: the value node and its key node. */
  private foundNode = 0;
  private foundKey = -1;
  /** The positions handed out (src/config/positions.ts), and each node's entry there (-1: none). */
  private readonly table: PositionTable;
  private entryOf: Int32Array | undefined;

  constructor(file: string, text: string, data: unknown, nodes: Nodes) {
    this.file = file;
    this.text = text;
    this.data = data;
    this.nodes = nodes;
    this.table = PositionTable.of(file, text);
  }

  pos(path: readonly PathSegment[]): SourcePos {
    return this.at(path, "value");
  }

  keyPos(path: readonly PathSegment[]): SourcePos {
    return this.at(path, "key");
  }

  quoted(path: readonly PathSegment[]): boolean {
    let node = 0;
    let key = -1;
    for (const seg of path) {
      if (!this.child(node, seg)) return false;
      node = this.foundNode;
      key = this.foundKey;
    }
    const c = this.text[this.offsetOf(node, key, "value")];
    return this.nodes.kind[node] === SCALAR && (c === '"' || c === "'");
  }

  private at(path: readonly PathSegment[], want: "key" | "value"): SourcePos {
    const segs = this.trailSegs;
    const nodes = this.trailNodes;
    const keys = this.trailKeys;
    const texts = this.trailTexts;
    let depth = 0;
    const same = Math.min(path.length, this.trailLength);
    while (depth < same && segs[depth] === path[depth]) depth++;
    let node = depth > 0 ? (nodes[depth - 1] ?? 0) : 0;
    for (; depth < path.length; depth++) {
      const seg = path[depth] ?? "";
      if (!this.child(node, seg)) break;
      node = this.foundNode;
      const before = depth > 0 ? (texts[depth - 1] ?? "") : "";
      segs[depth] = seg;
      nodes[depth] = node;
      keys[depth] = this.foundKey;
      texts[depth] =
        typeof seg === "number" ? `${before}[${seg}]` : before ? `${before}.${seg}` : seg;
    }
    this.trailLength = depth;
    const key = depth > 0 ? (keys[depth - 1] ?? -1) : -1;
    const offset = this.offsetOf(node, key, want);
    if (depth === path.length && offset < OFFSET_LIMIT) {
      const entry = this.entry(depth);
      if (entry !== undefined) return this.table.at(entry, offset);
    }
    const { line, col } = this.table.linePos(offset);
    const text = depth > 0 && depth === path.length ? (texts[depth - 1] ?? "") : formatPath(path);
    return { file: this.file, line, col, path: text };
  }

  /**
   * The table entry of the trail's first `depth` segments (-1: the root), made on first use;
   * undefined where the table would write the path differently (a number naming a mapping's key).
   */
  private entry(depth: number): number | undefined {
    if (depth === 0) return -1;
    const entryOf = (this.entryOf ??= new Int32Array(this.nodes.count).fill(-1));
    const node = this.trailNodes[depth - 1] ?? 0;
    const known = entryOf[node] ?? -1;
    if (known >= 0) return known;
    const parent = this.entry(depth - 1);
    if (parent === undefined) return undefined;
    const seg = this.trailSegs[depth - 1] ?? "";
    const above = depth > 1 ? (this.trailNodes[depth - 2] ?? 0) : 0;
    if (typeof seg === "number" && this.nodes.kind[above] !== SEQUENCE) return undefined;
    const entry = this.table.add(parent, seg);
    entryOf[node] = entry;
    return entry;
  }

  private offsetOf(node: number, key: number, want: "key" | "value"): number {
    const at = key >= 0 && (want === "key" || this.nodes.kind[node] === EMPTY) ? key : node;
    return skipSpace(this.text, this.nodes.start[at] ?? 0);
  }

  /**
   * The offsets of a lazy table's entries (src/config/positions.ts) in this file: an entry's value
   * and key are found under its parent's, as pos() and keyPos() find them.
   */
  locate(parts: PositionTableParts, from: number, to: number, out: Int32Array): void {
    const { parent, segment, names } = parts;
    let nodeOf = this.entryNode;
    if (nodeOf.length < 2 * to + 2) {
      nodeOf = new Int32Array(Math.max(2 * to + 2, 2 * nodeOf.length));
      nodeOf.set(this.entryNode);
      this.entryNode = nodeOf;
    }
    if (from === 0) {
      nodeOf[0] = 0;
      nodeOf[1] = -1;
      out[0] = out[1] = this.offsetOf(0, -1, "value");
    }
    for (let e = from; e < to; e++) {
      const up = (parent[e] ?? -1) + 1;
      const s = segment[e] ?? 0;
      const seg = s >= 0 ? s : (names[-s - 1] ?? "");
      let node = nodeOf[2 * up] ?? 0;
      let key = nodeOf[2 * up + 1] ?? -1;
      // a path not in the file is where its nearest part is (as pos() answers): a node below -1
      // notes that what is under it is not looked for
      if (node >= 0 && this.child(node, seg)) {
        node = this.foundNode;
        key = this.foundKey;
      } else if (node >= 0) node = -2 - node;
      nodeOf[2 * e + 2] = node;
      nodeOf[2 * e + 3] = key;
      const at = node >= 0 ? node : -2 - node;
      out[2 * e + 2] = this.offsetOf(at, key, "value");
      out[2 * e + 3] = this.offsetOf(at, key, "key");
    }
  }

  /** locate()'s node and key node of each entry, as `out` holds their offsets. */
  private entryNode = new Int32Array(0);

  /** Finds `seg` under `node` into foundNode/foundKey; false when it is not there. */
  private child(node: number, seg: PathSegment): boolean {
    const { kind, firstChild, nextSibling, children } = this.nodes;
    if (kind[node] === MAPPING) {
      const name = String(seg);
      let k = -1;
      if ((children[node] ?? 0) <= 32) {
        for (let c = firstChild[node] ?? -1; c >= 0; c = nextSibling[nextSibling[c] ?? -1] ?? -1)
          if (this.nodes.key[c] === name) {
            k = c;
            break;
          }
      } else {
        let byKey = this.entries.get(node);
        if (!byKey) {
          byKey = new Map();
          for (let c = firstChild[node] ?? -1; c >= 0; c = nextSibling[nextSibling[c] ?? -1] ?? -1)
            byKey.set(this.nodes.key[c] ?? "", c);
          this.entries.set(node, byKey);
        }
        k = byKey.get(name) ?? -1;
      }
      if (k < 0) return false;
      this.foundKey = k;
      this.foundNode = nextSibling[k] ?? -1;
      return true;
    }
    if (kind[node] === SEQUENCE && typeof seg === "number") {
      let list = this.items.get(node);
      if (!list) {
        list = [];
        for (let k = firstChild[node] ?? -1; k >= 0; k = nextSibling[k] ?? -1) list.push(k);
        this.items.set(node, list);
      }
      const item = list[seg];
      if (item === undefined) return false;
      this.foundKey = -1;
      this.foundNode = item;
      return true;
    }
    return false;
  }
}

/** The file read the fast way, or undefined where only PolicySource can read it faithfully. */
export function readFast(file: string, text: string): FastSource | undefined {
  // a byte-order mark, a NUL or a byte not UTF-8, a directive, a carriage return alone:
  // PolicySource reports or positions these
  // eslint-disable-next-line no-control-regex -- it looks for control characters
  if (/^\ufeff|\u0000|^%/m.test(text) || loneCrAt(text) >= 0 || hasNonUtf8(text)) return undefined;
  // js-yaml reads some text the yaml library refuses: that reader decides what is valid YAML
  if (yamlMayRefuse(text)) return undefined;
  const read = readNodes(file, text, CORE_SCHEMA);
  return read && !read.unsafe ? read.source : undefined;
}

/**
 * The node table of a file another reader has found safe (src/config/lean-source.ts), read with
 * its schema: where that reader's positions are looked up when one is asked for. Undefined where
 * the table may not place every node where the yaml library does.
 */
export function readPositions(file: string, text: string, schema: Schema): FastSource | undefined {
  const read = readNodes(file, text, schema);
  return read && !read.unsafe ? read.source : undefined;
}

function readNodes(
  file: string,
  text: string,
  schema: Schema,
): { source: FastSource; unsafe: boolean } | undefined {
  const nodes = new Nodes(text);
  let data: unknown;
  try {
    data = load(text, { schema, listener: nodes.listener });
  } catch {
    return undefined;
  }
  if (nodes.count === 0 || data === null || data === undefined) return undefined;
  nodes.lastChild = new Int32Array(0); // only needed while reading
  return { source: new FastSource(file, text, data, nodes), unsafe: nodes.unsafe };
}

const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const HASH = 0x23;
const COLON = 0x3a;
const COMMA = 0x2c;
const DASH = 0x2d;

/** YAML's limit on how far an implicit key's colon may be from the key's start. */
const MAX_IMPLICIT_KEY = 1024;

/**
 * Whether the yaml library may refuse text that js-yaml reads: js-yaml is lenient where the yaml
 * library is not, and what is valid YAML must not depend on which reader read the file (the yaml
 * library reads it whenever there is an error to report). Found in one pass over the text: a flow
 * collection or quoted scalar continued on a line indented no more than the block it is in (a
 * closing bracket may be at that column), a tab among a line's leading blanks, a comment right
 * after a closing bracket, a quote or a flow collection's comma, content on a `---` or `...` line,
 * a quoted key over several lines, a key's colon more than 1024 characters after its start. It
 * answers true for more than the yaml library refuses (that only costs the slower read), never
 * false for these.
 */
export function yamlMayRefuse(text: string): boolean {
  const n = text.length;
  /** Depth of flow collections at `i`. */
  let flow = 0;
  /** Lines continuing the flow collection `i` is in are indented more than this. */
  let floor = 0;
  /** This block line's: the column its content starts at past any entries' dashes, where. */
  let keyCol = 0;
  let contentAt = 0;
  /** This block line's last dash's column (-1: none), and the content column of the line above. */
  let dashCol = -1;
  let aboveCol = -1;
  /**
   * The column of the block collection a node starting at `at` is in: the lines continuing it are
   * indented more. A line's first node is an entry of its last dash, or the value of the key above.
   */
  const blockFloor = (at: number): number =>
    at !== contentAt ? keyCol : dashCol >= 0 ? dashCol : aboveCol;
  /** Where the key a colon at `i` would end starts. */
  let keyStart = 0;
  /** The character before `i` ended a quoted scalar or flow collection, or is a flow comma. */
  let closed = false;
  /** `i` is inside a plain scalar. */
  let plain = false;
  let i = 0;
  /** From a line's start: checks its indentation; false once the text ends. */
  const lineStart = (): boolean | "refuse" => {
    for (;;) {
      const at = i;
      while (text.charCodeAt(i) === SPACE) i++;
      const c = text.charCodeAt(i);
      if (c === TAB) return "refuse";
      if (i >= n) return false;
      if (c === LF || c === CR || c === HASH) {
        const eol = text.indexOf("\n", i);
        if (eol < 0) return false;
        i = eol + 1;
        continue;
      }
      const indent = i - at;
      plain = false;
      closed = false;
      if (flow > 0) {
        const closing = c === 0x5d || c === 0x7d;
        if (indent < floor || (indent === floor && !closing)) return "refuse";
        keyStart = i;
        return true;
      }
      if (
        indent === 0 &&
        (c === DASH || c === 0x2e) &&
        text.startsWith(c === DASH ? "---" : "...", i)
      ) {
        let j = i + 3;
        const after = text.charCodeAt(j);
        if (after === SPACE || after === TAB) {
          while (text.charCodeAt(j) === SPACE || text.charCodeAt(j) === TAB) j++;
          const d = text.charCodeAt(j);
          if (j < n && d !== LF && d !== CR && d !== HASH) return "refuse";
        } else if (j < n && after !== LF && after !== CR) return true; // a plain scalar "---x"
        i = j;
        return true;
      }
      // past the dashes of block sequence entries: where the entry's own block starts
      let j = i;
      dashCol = -1;
      while (text.charCodeAt(j) === DASH && isBlank(text.charCodeAt(j + 1), j + 1 >= n)) {
        dashCol = j - at;
        j++;
        while (text.charCodeAt(j) === SPACE) j++;
      }
      aboveCol = keyCol;
      keyCol = j - at;
      contentAt = j;
      keyStart = j;
      i = j;
      return true;
    }
  };
  /** Past a block scalar's header at `i` and its lines (indented more than `indent`); false where it gives an indentation. */
  const blockScalar = (indent: number): boolean => {
    const eol = text.indexOf("\n", i);
    const header = text.slice(i, eol < 0 ? n : eol);
    if (/[0-9]/.test(header.split(" #")[0] ?? "")) return false; // an explicit indentation
    if (eol < 0) {
      i = n;
      return true;
    }
    i = eol + 1;
    let content = -1;
    while (i < n) {
      let j = i;
      while (text.charCodeAt(j) === SPACE) j++;
      const c = text.charCodeAt(j);
      const blank = j >= n || c === LF || c === CR;
      if (!blank) {
        if (content < 0) content = j - i > indent ? j - i : n;
        if (j - i < content) return true;
      }
      const next = text.indexOf("\n", j);
      i = next < 0 ? n : next + 1;
    }
    return true;
  };
  for (;;) {
    const start = lineStart();
    if (start === "refuse") return true;
    if (start === false) return false;
    // the tokens of this line
    for (;;) {
      if (i >= n) return flow > 0;
      const c = text.charCodeAt(i);
      if (c === LF) {
        i++;
        break;
      }
      if (c === SPACE || c === TAB || c === CR) {
        closed = false;
        i++;
        continue;
      }
      const before = text.charCodeAt(i - 1);
      if (c === HASH) {
        if (closed) return true;
        if (i === 0 || before === SPACE || before === TAB || before === LF) {
          const eol = text.indexOf("\n", i);
          if (eol < 0) return flow > 0;
          i = eol + 1;
          break;
        }
        i++;
        continue;
      }
      closed = false;
      if (!plain && (c === 0x22 || c === 0x27)) {
        const quoted = quotedEnd(text, i, c, flow > 0 ? floor : blockFloor(i));
        if (quoted < 0) return true;
        const lines = text.lastIndexOf("\n", quoted) > i;
        i = quoted + 1;
        closed = true;
        if (lines) {
          let j = i;
          while (text.charCodeAt(j) === SPACE || text.charCodeAt(j) === TAB) j++;
          if (text.charCodeAt(j) === COLON) return true;
        }
        continue;
      }
      if (flow > 0 && (c === 0x5b || c === 0x7b)) {
        flow++;
        keyStart = i + 1;
        plain = false;
      } else if (!plain && (c === 0x5b || c === 0x7b)) {
        flow = 1;
        floor = blockFloor(i);
        keyStart = i + 1;
      } else if (flow > 0 && (c === 0x5d || c === 0x7d)) {
        flow--;
        plain = false;
        closed = true;
      } else if (flow > 0 && c === COMMA) {
        plain = false;
        closed = true;
        keyStart = i + 1;
      } else if (c === COLON && isKeyColon(text, i, flow > 0, before)) {
        if (i - firstNonBlank(text, keyStart) > MAX_IMPLICIT_KEY) return true;
        plain = false;
        keyStart = i + 1;
        let j = i + 1;
        while (text.charCodeAt(j) === SPACE) j++;
        const v = text.charCodeAt(j);
        if (flow === 0 && (v === 0x7c || v === 0x3e)) {
          i = j;
          if (!blockScalar(keyCol)) return true;
          break;
        }
      } else if (!plain && flow === 0 && (c === 0x7c || c === 0x3e)) {
        if (!blockScalar(blockFloor(i))) return true;
        break;
      } else plain = true;
      i++;
    }
  }
}

/** Whether `c` (or the text's end) may follow a block sequence's dash or a key's colon. */
function isBlank(c: number, end: boolean): boolean {
  return end || c === SPACE || c === TAB || c === LF || c === CR;
}

/** Whether the colon at `at` ends a key (in a flow collection: also before , [ ] { } or after a quote). */
function isKeyColon(text: string, at: number, flow: boolean, before: number): boolean {
  const c = text.charCodeAt(at + 1);
  if (isBlank(c, at + 1 >= text.length)) return true;
  return (
    flow &&
    (c === COMMA ||
      c === 0x5b ||
      c === 0x5d ||
      c === 0x7b ||
      c === 0x7d ||
      before === 0x22 ||
      before === 0x27)
  );
}

function firstNonBlank(text: string, at: number): number {
  let i = at;
  while (text.charCodeAt(i) === SPACE || text.charCodeAt(i) === TAB) i++;
  return i;
}

/**
 * The offset of the quote closing the quoted scalar opened at `at`, or -1 where the yaml library may
 * refuse it: unclosed, or a line of it indented `floor` or less, or by a tab.
 */
function quotedEnd(text: string, at: number, quote: number, floor: number): number {
  const n = text.length;
  for (let i = at + 1; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === quote) {
      if (quote === 0x27 && text.charCodeAt(i + 1) === 0x27) i++;
      else return i;
    } else if (c === 0x5c && quote === 0x22) {
      // an escaped character, not an escaped line break (its next line is checked as any other)
      if (text.charCodeAt(i + 1) !== LF) i++;
    } else if (c === LF) {
      let j = i + 1;
      while (text.charCodeAt(j) === SPACE) j++;
      const d = text.charCodeAt(j);
      if (d === TAB) return -1;
      if (d !== LF && d !== CR && j - i - 1 <= floor) return -1;
      i = j - 1;
    }
  }
  return -1;
}
