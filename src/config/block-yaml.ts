// The YAML policy files are written in, read in one pass over the text: block mappings and
// sequences, single-line plain and quoted scalars, flow collections of those (`port: [80, 443]`,
// `layer3: { remote: [10.0.0.0/8] }`, over several lines too, as formatters write them), comments,
// a leading `---`. It builds the same data as the lean reader's js-yaml (lean-source.ts: YAML
// 1.2's core schema for null, booleans and numbers) in a fraction of the time, and gives up
// (answers undefined, so js-yaml reads the file as before) on everything else: tags, anchors,
// aliases, block scalars, scalars over several lines, escapes, complex or duplicate keys, keys
// YAML reads as something other than a string, tabs, a carriage return not before a line feed,
// more than one document, any text the lean reader gives up on. Giving up only costs time.

import { plainScalar, stringKey } from "./core-scalar.ts";
import { leanUnsafe } from "./lean-unsafe.ts";
import { hasNonUtf8 } from "./yaml-source.ts";

/** Thrown to stop reading: the text is not one this reader reads. */
const GIVE_UP = new Error("not read by the block reader");

/** Deeper than this, js-yaml (maxDepth 100) could refuse what this reader takes. */
const MAX_DEPTH = 60;

/** YAML's limit on an implicit key's length. */
const MAX_KEY = 1024;

/** The size of the table of keys read (a power of two). */
const KEY_SLOTS = 256;

const LF = 0x0a;
const SPACE = 0x20;
const HASH = 0x23;
const COLON = 0x3a;
const DASH = 0x2d;
const COMMA = 0x2c;

class BlockReader {
  private readonly text: string;
  private readonly end: number;
  /** The reading position. */
  private at = 0;
  /** The indent of the content line `at` is on (after nextLine), -1 at the end of the text. */
  private indent = -1;
  private depth = 0;
  /** A flow collection's lines after its first are indented more than this (its block's indent). */
  private floor = 0;

  constructor(text: string) {
    this.text = text;
    this.end = text.length;
  }

  /** The document: a block mapping at the first column, after an optional `---` line. */
  read(): Record<string, unknown> {
    this.nextLine(true);
    const t = this.text;
    const a = this.at;
    const dashes =
      t.charCodeAt(a) === DASH && t.charCodeAt(a + 1) === DASH && t.charCodeAt(a + 2) === DASH;
    if (this.indent === 0 && dashes) {
      this.at = a + 3;
      this.endLine();
    } else this.checkMarker();
    if (this.indent !== 0) throw GIVE_UP;
    const root = this.mapping(0);
    if (this.at < this.end) throw GIVE_UP;
    return root;
  }

  /**
   * From the start of a line, past blank and comment lines to the first character of the next
   * content line, noting its indent (-1: the text ended).
   */
  private nextLine(first = false): void {
    const t = this.text;
    const end = this.end;
    let i = this.at;
    for (;;) {
      const start = i;
      while (i < end && t.charCodeAt(i) === SPACE) i++;
      if (i >= end) {
        this.at = end;
        this.indent = -1;
        return;
      }
      const c = t.charCodeAt(i);
      if (c === LF) {
        i++;
      } else if (c === HASH) {
        const eol = t.indexOf("\n", i);
        i = eol < 0 ? end : eol + 1;
      } else {
        this.at = i;
        this.indent = i - start;
        if (!first && this.indent === 0) this.checkMarker();
        return;
      }
    }
  }

  /** A `---` or `...` at a line's start would start or end a document. */
  private checkMarker(): void {
    const t = this.text;
    const a = this.at;
    const c = t.charCodeAt(a);
    if ((c === DASH || c === 0x2e) && t.charCodeAt(a + 1) === c && t.charCodeAt(a + 2) === c)
      throw GIVE_UP;
  }

  /** After a value: blanks, maybe a comment, the line's end; then on to the next content line. */
  private endLine(): void {
    const t = this.text;
    let i = this.at;
    while (t.charCodeAt(i) === SPACE) i++;
    const c = t.charCodeAt(i);
    if (c === HASH) {
      if (t.charCodeAt(i - 1) !== SPACE) throw GIVE_UP;
      const eol = t.indexOf("\n", i);
      i = eol < 0 ? this.end : eol + 1;
    } else if (c === LF) i++;
    else if (i < this.end) throw GIVE_UP;
    this.at = i;
    this.nextLine();
  }

  private enter(): void {
    if (++this.depth > MAX_DEPTH) throw GIVE_UP;
  }

  /** Whether `at` is a block sequence entry's dash. */
  private atDash(at: number): boolean {
    const t = this.text;
    if (t.charCodeAt(at) !== DASH) return false;
    const n = t.charCodeAt(at + 1);
    return n === SPACE || n === LF || at + 1 >= this.end;
  }

  /**
   * A block mapping on lines indented `indent`, from the key at `at` (or from its value, the first
   * key `first` read already).
   */
  private mapping(indent: number, first?: string): Record<string, unknown> {
    this.enter();
    const t = this.text;
    const out: Record<string, unknown> = {};
    let key = first ?? this.key();
    for (;;) {
      if (Object.hasOwn(out, key)) throw GIVE_UP;
      // past the colon: a value on this line, or below it, or none
      let i = this.at + 1;
      while (t.charCodeAt(i) === SPACE) i++;
      const c = t.charCodeAt(i);
      this.at = i;
      if (c === LF || c === HASH || i >= this.end) {
        this.endLine();
        if (this.indent > indent) out[key] = this.below(indent);
        else if (this.indent === indent && this.atDash(this.at)) out[key] = this.sequence(indent);
        else out[key] = null;
      } else {
        this.floor = indent;
        out[key] = this.inline();
        this.endLine();
      }
      if (this.indent !== indent) break;
      key = this.key();
    }
    if (this.indent > indent) throw GIVE_UP;
    this.depth--;
    return out;
  }

  /**
   * A value on the lines below its key or dash, from the content line at `at`, indented more than
   * the collection it is in (`parent`): a block collection, or a flow collection or scalar alone
   * (its next content line is then back at `parent` or less, the caller checks).
   */
  private below(parent: number): unknown {
    const c = this.text.charCodeAt(this.at);
    if (this.atDash(this.at)) return this.sequence(this.indent);
    if (c === 0x5b || c === 0x7b) {
      this.floor = parent;
      const value = this.inline();
      this.endLine();
      return value;
    }
    return this.mappingOrScalar(this.indent);
  }

  /** A block sequence whose first dash is at `at`, indented `indent`. */
  private sequence(indent: number): unknown[] {
    this.enter();
    const t = this.text;
    const out: unknown[] = [];
    for (;;) {
      // past the dash
      const lineStart = this.at - indent;
      let i = this.at + 1;
      while (t.charCodeAt(i) === SPACE) i++;
      const c = t.charCodeAt(i);
      this.at = i;
      if (c === LF || c === HASH || i >= this.end) {
        this.endLine();
        out.push(this.indent > indent ? this.below(indent) : null);
      } else if (c === 0x5b || c === 0x7b) {
        this.floor = indent;
        out.push(this.inline());
        this.endLine();
      } else if (this.atDash(i)) {
        throw GIVE_UP;
      } else out.push(this.mappingOrScalar(i - lineStart));
      if (this.indent !== indent || !this.atDash(this.at)) break;
    }
    if (this.indent > indent) throw GIVE_UP;
    this.depth--;
    return out;
  }

  /**
   * From the scalar at `at`: a block mapping at its column `indent` if a colon follows it (it is
   * the first key), else the scalar alone on its line.
   */
  private mappingOrScalar(indent: number): unknown {
    const t = this.text;
    const start = this.at;
    const c = t.charCodeAt(start);
    if (c === 0x22 || c === 0x27) {
      const text = this.quoted(c);
      if (t.charCodeAt(this.at) === COLON) return this.mapping(indent, this.checkKey(text, start));
      this.endLine();
      return text;
    }
    const end = this.plainEnd(false);
    if (t.charCodeAt(this.at) === COLON)
      return this.mapping(indent, this.checkKey(this.keyText(start, end), start));
    this.endLine();
    return this.valueOf(start, end);
  }

  /** A block mapping's key at `at`, and its colon (left at `at`). */
  private key(): string {
    const t = this.text;
    const start = this.at;
    const c = t.charCodeAt(start);
    const key = c === 0x22 || c === 0x27 ? this.quoted(c) : this.plainKey(false);
    if (t.charCodeAt(this.at) !== COLON) throw GIVE_UP;
    return this.checkKey(key, start);
  }

  /** `key`, read from `start` to the colon at `at`, if it is one this reader takes. */
  private checkKey(key: string, start: number): string {
    const n = this.text.charCodeAt(this.at + 1);
    if (n !== SPACE && n !== LF && this.at + 1 < this.end) throw GIVE_UP;
    if (this.at - start > MAX_KEY || !stringKey(key)) throw GIVE_UP;
    return key;
  }

  /** A plain key's text from `at`. */
  private plainKey(flow: boolean): string {
    const start = this.at;
    return this.keyText(start, this.plainEnd(flow));
  }

  /**
   * The text from `start` to `end` as a key: the same few keys come back again and again, so each
   * is kept (by a hash of its characters) and handed out again instead of a new copy.
   */
  private keyText(start: number, end: number): string {
    const t = this.text;
    let h = end - start;
    for (let i = start; i < end; i++) h = (h * 31 + t.charCodeAt(i)) | 0;
    const slot = h & (KEY_SLOTS - 1);
    const known = this.keys[slot];
    if (known !== undefined && known.length === end - start && t.startsWith(known, start))
      return known;
    const key = t.slice(start, end);
    this.keys[slot] = key;
    return key;
  }

  /** Keys read, by a hash of their text. */
  private readonly keys: (string | undefined)[] = new Array<string | undefined>(KEY_SLOTS);

  /** A value on one line in block context: a flow collection or a scalar. */
  private inline(): unknown {
    const c = this.text.charCodeAt(this.at);
    if (c === 0x5b) return this.flowSequence();
    if (c === 0x7b) return this.flowMapping();
    if (c === 0x22 || c === 0x27) return this.quoted(c);
    const value = this.plainValue(false);
    if (this.text.charCodeAt(this.at) === COLON) throw GIVE_UP;
    return value;
  }

  /** A value inside a flow collection. */
  private flowItem(): unknown {
    const c = this.text.charCodeAt(this.at);
    if (c === 0x5b) return this.flowSequence();
    if (c === 0x7b) return this.flowMapping();
    if (c === 0x22 || c === 0x27) return this.quoted(c);
    return this.plainValue(true);
  }

  private skipBlanks(): number {
    const t = this.text;
    let i = this.at;
    while (t.charCodeAt(i) === SPACE) i++;
    this.at = i;
    return t.charCodeAt(i);
  }

  /**
   * Between a flow collection's items: blanks, comments and line breaks (each next content line
   * indented more than `floor`, as the yaml library wants it; js-yaml takes any); the next character.
   */
  private flowSpace(): number {
    const t = this.text;
    let i = this.at;
    for (;;) {
      let c = t.charCodeAt(i);
      while (c === SPACE) c = t.charCodeAt(++i);
      if (c === HASH) {
        const p = t.charCodeAt(i - 1);
        if (p !== SPACE && p !== LF) throw GIVE_UP;
        i = t.indexOf("\n", i);
        if (i < 0) throw GIVE_UP;
        c = LF;
      }
      if (c !== LF) {
        this.at = i;
        return c;
      }
      const start = ++i;
      while (t.charCodeAt(i) === SPACE) i++;
      const d = t.charCodeAt(i);
      if (i >= this.end) throw GIVE_UP;
      // (a closing bracket may be at the block's indent, as the yaml library has it)
      if (d !== LF && d !== HASH && i - start <= this.floor) {
        if (i - start < this.floor || (d !== 0x5d && d !== 0x7d)) throw GIVE_UP;
      }
    }
  }

  /** `[a, b]`, on one line or several. */
  private flowSequence(): unknown[] {
    this.enter();
    const out: unknown[] = [];
    this.at++;
    let c = this.flowSpace();
    while (c !== 0x5d) {
      out.push(this.flowItem());
      c = this.flowSpace();
      if (c === COMMA) {
        this.at++;
        c = this.flowSpace();
      } else if (c !== 0x5d) throw GIVE_UP; // a colon (a pair), more of a plain scalar
    }
    this.at++;
    this.depth--;
    return out;
  }

  /** `{ a: b, c: [d] }`, on one line or several (no line break between a key and its value). */
  private flowMapping(): Record<string, unknown> {
    this.enter();
    const t = this.text;
    const out: Record<string, unknown> = {};
    this.at++;
    let c = this.flowSpace();
    while (c !== 0x7d) {
      const start = this.at;
      const key = c === 0x22 || c === 0x27 ? this.quoted(c) : this.plainKey(true);
      if (
        t.charCodeAt(this.at) !== COLON ||
        t.charCodeAt(this.at + 1) !== SPACE ||
        this.at - start > MAX_KEY ||
        !stringKey(key) ||
        Object.hasOwn(out, key)
      )
        throw GIVE_UP;
      this.at += 2;
      this.skipBlanks();
      out[key] = this.flowItem();
      c = this.flowSpace();
      if (c === COMMA) {
        this.at++;
        c = this.flowSpace();
      } else if (c !== 0x7d) throw GIVE_UP;
    }
    this.at++;
    this.depth--;
    return out;
  }

  /** A plain scalar's value, on one line, from `at` (see plainEnd). */
  private plainValue(flow: boolean): unknown {
    const start = this.at;
    return this.valueOf(start, this.plainEnd(flow));
  }

  /** The value of the plain scalar from `start` to `end` (a port, a run of digits: read in place). */
  private valueOf(start: number, end: number): unknown {
    const t = this.text;
    if (end - start <= 15) {
      let value = 0;
      let i = start;
      for (; i < end; i++) {
        const d = t.charCodeAt(i) - 0x30;
        if (d < 0 || d > 9) break;
        value = value * 10 + d;
      }
      if (i === end) return value;
    }
    return plainScalar(t.slice(start, end));
  }

  /**
   * Where a plain scalar's text from `at` ends (before any trailing blanks), on one line; `at` is
   * left where it stopped: at a colon before a blank, a comment, the line's end, or (in a flow
   * collection) , [ ] { }.
   */
  private plainEnd(flow: boolean): number {
    const t = this.text;
    const end = this.end;
    const start = this.at;
    const c0 = t.charCodeAt(start);
    // what cannot start a plain scalar, or starts one js-yaml and the yaml library might read apart
    if (start >= end || NOT_PLAIN_START[c0] === 1) throw GIVE_UP;
    if (c0 === DASH) {
      const n = t.charCodeAt(start + 1);
      if (n === SPACE || n === LF || start + 1 >= end || (flow && FLOW[n] === 1)) throw GIVE_UP;
    }
    let last = start;
    let i = start;
    for (; i < end; i++) {
      const c = t.charCodeAt(i);
      if (c === SPACE) continue;
      if (c === COLON) {
        const n = t.charCodeAt(i + 1);
        if (n === SPACE || n === LF || i + 1 >= end || (flow && FLOW[n] === 1)) break;
      } else if (c === HASH) {
        if (t.charCodeAt(i - 1) === SPACE) break;
      } else if (c === LF) break;
      else if (flow && c < 0x80 && FLOW[c] === 1) break;
      else if (c < SPACE || (c >= 0x7f && oddChar(c))) throw GIVE_UP;
      last = i + 1;
    }
    // a blank before a colon (`a : b`): js-yaml reads a key there, the lean reader gives up
    if (last !== i && t.charCodeAt(i) === COLON) throw GIVE_UP;
    this.at = i;
    return last;
  }

  /** A quoted scalar on one line, with no escapes ('' in single quotes); `at` is left after it. */
  private quoted(quote: number): string {
    const t = this.text;
    const end = this.end;
    let i = this.at + 1;
    let from = i;
    let out = "";
    for (;;) {
      if (i >= end) throw GIVE_UP;
      const c = t.charCodeAt(i);
      if (c === quote) {
        if (quote === 0x27 && t.charCodeAt(i + 1) === 0x27) {
          out += t.slice(from, i + 1);
          i += 2;
          from = i;
          continue;
        }
        break;
      }
      if (c < SPACE || c === 0x5c || (c >= 0x7f && oddChar(c))) throw GIVE_UP;
      i++;
    }
    this.at = i + 1;
    return out === "" ? t.slice(from, i) : out + t.slice(from, i);
  }
}

/** Characters given up on inside a scalar: C1 controls, surrogates, line separators, BOM, specials. */
function oddChar(c: number): boolean {
  return (
    c <= 0x9f ||
    (c >= 0xd800 && c <= 0xdfff) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0xfeff ||
    c >= 0xfff0
  );
}

/** ASCII characters by code: 1 where flow collections end an item (, [ ] { }). */
const FLOW = new Uint8Array(128);
for (const c of ",[]{}") FLOW[c.charCodeAt(0)] = 1;

/** 1 where a plain scalar may not start here: indicators, quotes, blanks, and ? : (complex keys). */
const NOT_PLAIN_START = new Uint8Array(128);
for (const c of " \n,[]{}#&*!|>'\"%@`?:") NOT_PLAIN_START[c.charCodeAt(0)] = 1;

/**
 * The data of a policy file in the block subset this reader reads (a mapping at the top), or
 * undefined where js-yaml must read it.
 */
export function readBlockYaml(text: string): Record<string, unknown> | undefined {
  const lf = text.includes("\r") ? withLf(text) : text;
  // a comment is not read: a byte not UTF-8 in one must still make the file go to PolicySource
  if (lf === undefined || leanUnsafe(lf) || hasNonUtf8(lf)) return undefined;
  try {
    return new BlockReader(lf).read();
  } catch (e) {
    if (e === GIVE_UP) return undefined;
    throw e;
  }
}

/**
 * A text with CRLF line ends as one with LF ones (js-yaml reads both as one line break, and the
 * data holds no positions), or undefined where a carriage return stands alone.
 */
function withLf(text: string): string | undefined {
  for (let at = text.indexOf("\r"); at >= 0; at = text.indexOf("\r", at + 1))
    if (text.charCodeAt(at + 1) !== LF) return undefined;
  return text.replaceAll("\r\n", "\n");
}
