// A policy file read the leanest way: js-yaml builds the plain data and nothing else. A position
// asked for is an entry of a lazy table (positions.ts): its path, and whether it names the value or
// the key; where in the text that is gets worked out by a second read, with the fast reader's node
// table (fast-source.ts), only when a line or column is read (a message, `moat explain`). Accepting a
// policy with no message reads the file once, without the node table's cost.
//
// It gives up (readLean answers undefined, and the fast reader then decides) wherever the data could
// differ from the yaml library's, by checks that need no node table: a character that could start a
// tag, anchor, alias, complex key or directive; a key that YAML reads as a number, boolean or null.
// Numbers are read as YAML 1.2's core schema reads them (the yaml library's): anything else is a
// string, as it is there. Text the yaml library may refuse (yamlMayRefuse) is left to it too.

import { FAILSAFE_SCHEMA, load, Type } from "js-yaml";
import type { Diagnostic, SourcePos } from "./diagnostics.ts";
import { readBlockYaml } from "./block-yaml.ts";
import { coreNumber, stringKey } from "./core-scalar.ts";
import { CORE_NUMBER, readPositions, yamlMayRefuse, type FastSource } from "./fast-source.ts";
import { PositionTable } from "./positions.ts";
import {
  hasNonUtf8,
  loneCrAt,
  PolicySource,
  type CheckedSource,
  type PathSegment,
} from "./yaml-source.ts";

/** js-yaml with the core schema's null, booleans and numbers, nothing more. */
export const LEAN_SCHEMA = FAILSAFE_SCHEMA.extend({
  implicit: [
    new Type("tag:yaml.org,2002:null", {
      kind: "scalar",
      resolve: (s: string) => /^(?:~|null|Null|NULL)?$/.test(s),
      construct: () => null,
    }),
    new Type("tag:yaml.org,2002:bool", {
      kind: "scalar",
      resolve: (s: string) => /^(?:true|True|TRUE|false|False|FALSE)$/.test(s),
      construct: (s: string) => s[0] === "t" || s[0] === "T",
    }),
    new Type("tag:yaml.org,2002:float", {
      kind: "scalar",
      resolve: (s: string) => CORE_NUMBER.test(s),
      construct: coreNumber,
    }),
  ],
});

/**
 * What the fast reader checks node by node, looked for in the text: a byte-order mark, a NUL, a
 * directive; a ! & * ? or % where a node's properties or a complex key could start:
 * after a blank, [ { or , or a quoted key's colon (a quoted value or a comment with one there gives
 * up too, which only costs time); a key of "~" or none (looked for back from each colon: forward
 * from each blank, a long run of them would take quadratic time). A carriage return alone (js-yaml ends a
 * line there, the yaml library does not) is looked for apart (loneCrAt), and so are bytes that
 * are not UTF-8 (hasNonUtf8).
 */
const UNSAFE_TEXT =
  // eslint-disable-next-line no-control-regex -- it looks for control characters
  /^\ufeff|\u0000|^%|(?:^|[\s[{,]|["']:)[!&*?%]|:(?<=(?:^|[\s[{,])~?[ \t]*:)(?:[ \t\r\n]|$)/m;

/** Whether every mapping key in `data` is one the lean reader keeps as it is (stringKey). */
function keysAreStrings(data: unknown): boolean {
  const stack: unknown[] = [data];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== "object" || v === null) continue;
    if (Array.isArray(v)) {
      for (const item of v) if (typeof item === "object" && item !== null) stack.push(item);
      continue;
    }
    const obj = v as Record<string, unknown>;
    for (const key in obj) {
      if (!stringKey(key)) return false;
      const item = obj[key];
      if (typeof item === "object" && item !== null) stack.push(item);
    }
  }
  return true;
}

/** Under a path the data does not hold. */
const MISSING = Symbol("missing");

export class LeanSource implements CheckedSource {
  readonly file: string;
  readonly data: unknown;
  readonly parsed = true;
  readonly diagnostics: Diagnostic[] = [];
  readonly table: PositionTable;
  private readonly text: string;
  private fullSource: FastSource | PolicySource | undefined;
  /**
   * The last path answered, as far as the data holds it: the segments, and each prefix's value and
   * table entry. The checks ask for paths one after another that share most of their segments: only
   * the rest is walked.
   */
  private trailLength = 0;
  private readonly trailSegs: PathSegment[] = [];
  private readonly trailValues: unknown[] = [];
  private readonly trailEntries: number[] = [];

  constructor(file: string, text: string, data: unknown) {
    this.file = file;
    this.text = text;
    this.data = data;
    // the locator holds the text only, not this source's data (the model keeps the table)
    this.table = PositionTable.lazy(file, { text, locator: () => positionsReader(file, text) });
  }

  pos(path: readonly PathSegment[]): SourcePos {
    return this.at(path, 0);
  }

  keyPos(path: readonly PathSegment[]): SourcePos {
    return this.at(path, 1);
  }

  quoted(path: readonly PathSegment[]): boolean {
    return this.full().quoted(path);
  }

  /** The check is over: the table's positions stay, what worked them out goes. */
  done(): void {
    this.table.seal();
    this.fullSource = undefined;
  }

  /** The file read again with its node table (once). */
  private full(): FastSource | PolicySource {
    return (this.fullSource ??= positionsReader(this.file, this.text));
  }

  private at(path: readonly PathSegment[], side: 0 | 1): SourcePos {
    const segs = this.trailSegs;
    const values = this.trailValues;
    const entries = this.trailEntries;
    let depth = 0;
    const same = Math.min(path.length, this.trailLength);
    while (depth < same && segs[depth] === path[depth]) depth++;
    let value = depth > 0 ? values[depth - 1] : this.data;
    for (; depth < path.length; depth++) {
      const seg = path[depth] ?? "";
      let next: unknown = MISSING;
      if (Array.isArray(value)) {
        if (typeof seg === "number" && seg >= 0 && seg < value.length) next = value[seg];
      } else if (
        typeof value === "object" &&
        value !== null &&
        typeof seg === "string" &&
        Object.hasOwn(value, seg)
      )
        next = (value as Record<string, unknown>)[seg];
      // a path the data does not hold gets its entry too: it is located where its nearest part is
      // (a message about what is missing points there)
      segs[depth] = seg;
      values[depth] = next;
      entries[depth] = this.table.add(depth > 0 ? (entries[depth - 1] ?? -1) : -1, seg);
      value = next;
    }
    this.trailLength = depth;
    return this.table.at(depth > 0 ? (entries[depth - 1] ?? -1) : -1, side);
  }
}

/**
 * The file read the lean way, or undefined where the fast reader must decide. The block reader
 * (block-yaml.ts) reads the plain layouts policies are written in; js-yaml reads the rest.
 */
export function readLean(file: string, text: string): LeanSource | undefined {
  const data = readBlockYaml(text) ?? readLeanData(text);
  return data === undefined ? undefined : new LeanSource(file, text, data);
}

/** The file's data as js-yaml reads it the lean way, or undefined where the fast reader must decide. */
export function readLeanData(text: string): unknown {
  if (UNSAFE_TEXT.test(text) || loneCrAt(text) >= 0 || hasNonUtf8(text) || yamlMayRefuse(text))
    return undefined;
  let data: unknown;
  try {
    data = load(text, { schema: LEAN_SCHEMA });
  } catch {
    return undefined;
  }
  if (data === null || data === undefined || !keysAreStrings(data)) return undefined;
  return data;
}

/**
 * What a lazy table of a file read the lean way works its offsets out with (another thread's copy):
 * the fast reader's node table, or the yaml library's where that table cannot place every node
 * (a flow mapping's key with no value, `{ a, b: 1 }`, has no node for its value), at any size.
 */
export function positionsReader(file: string, text: string): FastSource | PolicySource {
  return readPositions(file, text, LEAN_SCHEMA) ?? new PolicySource(file, text);
}
