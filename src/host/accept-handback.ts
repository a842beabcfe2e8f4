// What the accept worker sends back, made cheap to send. A message is copied value by value (the
// structured clone): for a 100k-rule policy that was ~600k position objects with a path string
// each. Here every position of the file's table (src/config/positions.ts) goes as its one number,
// the table as a few typed arrays, positions in other files (a set file's entries) as columns, and
// the image's tables and the positions' arrays are moved (transferred), not copied. The daemon's
// thread puts the positions back in place. Long lists of objects (a big policy's rules) go in
// parts that the daemon's thread reads a turn of its event loop each (handback-lists.ts), as
// columns of typed arrays whose items come back whole, positions and all (handback-columns.ts):
// they are neither walked nor serialized here, nor walked there.
import {
  PositionTable,
  positionsReader,
  TablePos,
  type IntervalEntry,
  type PositionTableParts,
  type SourcePos,
} from "../config/index.ts";
import { addressIndexBuffers, NameClasses } from "../policy/index.ts";
import type { Acceptance } from "./accept-policy.ts";
import { EntriesWriter, isEntriesRef, lazyEntries, type EntryColumns } from "./handback-entries.ts";
import { ColumnsReader, ColumnsWriter, type ColumnReadHooks } from "./handback-columns.ts";
import { keepRules } from "./kept-rules.ts";
import {
  isListRef,
  ListsReader,
  ListsWriter,
  PartViews,
  type ListParts,
} from "./handback-lists.ts";

/** Lists at least this long are noted when walked, so a shared one is walked once. */
const SHARED_LENGTH = 16;
/** A bound on the walk (the model and image hold no cycles; this makes sure one cannot hang it). */
const MAX_OBJECTS = 200_000_000;

/** An acceptance as it crosses: its positions as numbers, with their table. */
export interface PackedAcceptance {
  acceptance: Acceptance;
  table?: PositionTableParts;
  /** Positions in other files (a set file's entries): a negative number -(i + 1) is entry i. */
  others?: OtherPositions;
  /** Big lists of address entries, as columns (handback-entries.ts). */
  entries?: EntryColumns[];
  /** Long lists of objects, in parts: as columns, or serialized (handback-lists.ts). */
  lists?: ListParts[];
}

/**
 * Plain positions as columns: a set file of 1M entries gave 1M objects, each with its own copy of
 * the file's name and the set's path once copied (185 MB to send; 6-7 s to receive).
 */
export interface OtherPositions {
  files: string[];
  paths: string[];
  /** file index, path index, line, col: four a position */
  columns: Int32Array;
}

/** A plain position object ({ file, line, col, path } and nothing else), which packs as columns. */
function isPlainPos(v: unknown): v is SourcePos {
  if (typeof v !== "object" || v === null || v instanceof TablePos) return false;
  const p = v as Record<string, unknown>;
  return (
    Object.keys(p).length === 4 &&
    typeof p.file === "string" &&
    typeof p.path === "string" &&
    typeof p.line === "number" &&
    typeof p.col === "number"
  );
}

/** Builds OtherPositions, a position at a time. */
class OtherPositionsWriter {
  private readonly files = new Map<string, number>();
  private readonly paths = new Map<string, number>();
  private columns = new Int32Array(1024);
  private count = 0;

  /** The code that stands for `pos` in the message. */
  add(pos: SourcePos): number {
    if ((this.count + 1) * 4 > this.columns.length) {
      const grown = new Int32Array(this.columns.length * 2);
      grown.set(this.columns);
      this.columns = grown;
    }
    const at = this.count * 4;
    this.columns[at] = indexOf(this.files, pos.file);
    this.columns[at + 1] = indexOf(this.paths, pos.path);
    this.columns[at + 2] = pos.line;
    this.columns[at + 3] = pos.col;
    return -++this.count;
  }

  parts(): OtherPositions | undefined {
    if (this.count === 0) return undefined;
    return {
      files: [...this.files.keys()],
      paths: [...this.paths.keys()],
      columns: this.columns.slice(0, this.count * 4),
    };
  }
}

function indexOf(map: Map<string, number>, key: string): number {
  let i = map.get(key);
  if (i === undefined) map.set(key, (i = map.size));
  return i;
}

/** The plain position that code -(i + 1) stands for (its file and path shared with the others). */
function otherPos(others: OtherPositions, code: number): SourcePos {
  const at = (-code - 1) * 4;
  const c = others.columns;
  return {
    file: others.files[c[at]!] ?? "",
    line: c[at + 2]!,
    col: c[at + 3]!,
    path: others.paths[c[at + 1]!] ?? "",
  };
}

/** What walk() calls on what it meets. */
interface Visitor {
  /** every plain object */
  visit: (obj: Record<string, unknown>) => void;
  /** every typed array */
  view?: (v: ArrayBufferView) => void;
  /**
   * every long list (handback-lists.ts), with the object and key it is the value of: not walked
   * (what is in it is packed where it is put in parts)
   */
  longList?: (obj: Record<string, unknown>, key: string, list: unknown[]) => void;
  /** which lists are long */
  isLong?: (v: unknown) => v is unknown[];
}

/**
 * Calls the visitor on what is reachable from `root`, but `skip`. Lists of many items and maps are
 * walked once (a set's entries are shared by the rules that name it); a small object reached twice
 * is visited twice, which costs less than noting every one.
 */
function walk(
  root: unknown,
  { visit, view, longList, isLong }: Visitor,
  skip?: WeakSet<object>,
): void {
  const seen = new Set<object>();
  const stack: unknown[] = [root];
  let objects = 0;
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== "object" || v === null || v instanceof TablePos || skip?.has(v)) continue;
    if (ArrayBuffer.isView(v)) {
      view?.(v);
      continue;
    }
    if (v instanceof ArrayBuffer) continue;
    if (Array.isArray(v)) {
      if (v.length >= SHARED_LENGTH) {
        if (seen.has(v)) continue;
        seen.add(v);
      }
      for (const item of v) if (typeof item === "object" && item !== null) stack.push(item);
    } else if (v instanceof Map || v instanceof Set) {
      if (seen.has(v)) continue;
      seen.add(v);
      for (const item of v.values()) stack.push(item);
      if (v instanceof Map) for (const k of v.keys()) stack.push(k);
    } else {
      if (++objects > MAX_OBJECTS) throw new Error("the accepted policy is too large to hand back");
      const obj = v as Record<string, unknown>;
      visit(obj);
      for (const key in obj) {
        const item = obj[key];
        if (typeof item !== "object" || item === null) continue;
        if (longList && isLong?.(item)) longList(obj, key, item);
        else stack.push(item);
      }
    }
  }
}

/**
 * Name classes (a class with private state, which a message cannot carry) cross as their
 * patterns; the daemon's thread makes the same classes from them (names.ts: the classes follow
 * from the patterns alone).
 */
interface PackedNameClasses {
  namePatterns: string[];
}

function packNames({ policy }: Acceptance): void {
  const names = policy?.image.names as { classes: NameClasses | PackedNameClasses } | undefined;
  if (names?.classes instanceof NameClasses)
    names.classes = { namePatterns: [...names.classes.patterns] };
}

function namesBack({ policy }: Acceptance): void {
  const names = policy?.image.names as { classes: NameClasses | PackedNameClasses } | undefined;
  if (names && !(names.classes instanceof NameClasses))
    names.classes = new NameClasses(names.classes.namePatterns);
}

/**
 * The acceptance ready for postMessage (its positions replaced in place: it is not used after)
 * and what to transfer with it.
 */
export function packAcceptance(
  acceptance: Acceptance,
  /** the items of a long list's part (tests: fewer, so a small policy's lists go in parts) */
  partItems?: number,
  /** big sets go with their lookup index (the daemon judges the policy in user space) */
  indexSets = false,
): {
  packed: PackedAcceptance;
  transfer: ArrayBuffer[];
  /** The table the positions went with, when its offsets are still to be worked out. */
  unlocated?: PositionTable;
} {
  packNames(acceptance);
  let table: PositionTable | undefined;
  const others = new OtherPositionsWriter();
  const posCode = (pos: unknown): number | undefined => {
    if (pos instanceof TablePos) {
      table ??= pos.table;
      // one table per acceptance; a position of another goes as the plain one it stands for
      return pos.table === table ? pos.code : others.add(pos.toJSON());
    }
    return isPlainPos(pos) ? others.add(pos) : undefined;
  };
  const entries = new EntriesWriter(posCode, indexSets);
  const lists = new ListsWriter(partItems);
  const buffers = new Set<ArrayBuffer>();
  const visitor: Visitor = {
    visit: (obj) => {
      const code = posCode(obj.pos);
      if (code !== undefined) obj.pos = code;
      const ref = entries.ref(obj.entries);
      if (ref) obj.entries = ref;
    },
    view: (v) => {
      // a whole buffer of its own (not a slice of Node's shared pool) can be moved
      if (
        v.buffer instanceof ArrayBuffer &&
        v.byteOffset === 0 &&
        v.byteLength === v.buffer.byteLength &&
        v.byteLength > 0
      )
        buffers.add(v.buffer);
    },
    longList: (obj, key, list) => lists.note(obj, key, list),
    isLong: (v): v is unknown[] => lists.isLong(v),
  };
  walk(acceptance.policy, visitor);
  const columns = new ColumnsWriter({
    pos: posCode,
    entries: (list) => (isEntriesRef(list) ? list.packedEntries : entries.ref(list)?.packedEntries),
  });
  for (const b of lists.split(columns, (list) => walk(list, visitor))) buffers.add(b);
  const parts = table?.parts();
  if (parts)
    for (const a of [parts.lineStarts, parts.parent, parts.segment, parts.located])
      if (a && a.buffer instanceof ArrayBuffer) buffers.add(a.buffer);
  const otherParts = others.parts();
  if (otherParts) buffers.add(otherParts.columns.buffer as ArrayBuffer);
  for (const list of entries.lists) {
    for (const a of [list.negate, list.family, list.bounds, list.pos])
      buffers.add(a.buffer as ArrayBuffer);
    for (const b of list.index ? addressIndexBuffers(list.index) : [])
      buffers.add(b as ArrayBuffer);
  }
  return {
    packed: {
      acceptance,
      ...(parts ? { table: parts } : {}),
      ...(otherParts ? { others: otherParts } : {}),
      ...(entries.lists.length ? { entries: entries.lists } : {}),
      ...(lists.lists.length ? { lists: lists.lists } : {}),
    },
    transfer: [...buffers],
    ...(table && !table.located ? { unlocated: table } : {}),
  };
}

/** Strings up to this long are kept once each ("allow", "ingress", a mode, a set's name). */
const INTERN_LENGTH = 32;
/**
 * Distinct strings noted for that. The ones that repeat (a direction, an action, a mode, an entry's
 * kind) are among the first seen; past this many, the rest are unique (rule names, addresses), and
 * noting each cost more than it saved: a 1M-entry set noted 2M strings, ~1 s of the daemon's thread.
 */
const INTERN_MAX = 4096;

/**
 * The message's copy gives every string value its own copy (a 100k-rule model arrived with
 * 100k "ingress", 200k "prevent", ...: ~19 MB): `obj`'s short ones are replaced by the first
 * copy of each seen.
 */
function internString(
  obj: Record<string, unknown>,
  key: string,
  strings: Map<string, string>,
): void {
  const v = obj[key] as string;
  if (v.length > INTERN_LENGTH) return;
  const kept = strings.get(v);
  if (kept !== undefined) obj[key] = kept;
  else if (strings.size < INTERN_MAX) strings.set(v, v);
}

const noPause = (): Promise<void> => Promise.resolve();

/** A position's number of the file's table (a negative one is of another file: OtherPositions). */
const isTableCode = (code: number): boolean => code >= 0;

/**
 * The table's way to work its offsets out from the text. Made here, not in unpackAcceptance: a
 * closure keeps its whole scope alive, and the table lives as long as the policy, while the
 * message's columns and parts in that scope are garbage once unpacked.
 */
function locatorOf(file: string, text: string): () => ReturnType<typeof positionsReader> {
  return () => positionsReader(file, text);
}

/**
 * The position a code stands for. Made apart from unpackAcceptance's scope, for the same reason as
 * locatorOf: a big set's lazy list (lazyEntries) keeps it as long as the policy.
 */
function positionOf(
  others: OtherPositions | undefined,
  table: PositionTable | undefined,
  file: string,
): (code: number) => SourcePos {
  return (code) =>
    code < 0 && others
      ? otherPos(others, code)
      : table
        ? table.pos(code)
        : { file, line: 0, col: 0, path: "" };
}

/**
 * The list of entries each index of the message stands for, made once each (lazyEntries). Made
 * apart from unpackAcceptance's scope, as positionOf: a big policy's rules made again from their
 * columns (kept-rules.ts) read entries through it as long as the policy runs.
 */
function entriesMaker(
  entries: EntryColumns[] | undefined,
  posOf: (code: number) => SourcePos,
  made: WeakSet<object>,
): (index: number) => IntervalEntry[] | undefined {
  const lists = new Map<number, IntervalEntry[]>();
  return (index) => {
    const columns = entries?.[index];
    if (!columns) return undefined;
    let list = lists.get(index);
    if (!list) {
      list = lazyEntries(columns, posOf);
      lists.set(index, list);
      made.add(list);
    }
    return list;
  };
}

/** How the daemon's thread makes a long list's items whole (apart from unpackAcceptance's scope). */
function readHooks(
  posOf: (code: number) => SourcePos,
  table: PositionTable | undefined,
  entriesOf: (index: number) => IntervalEntry[] | undefined,
): ColumnReadHooks {
  return {
    pos: posOf,
    // the long lists' objects (a big policy's rules and what is in them) keep their positions as
    // numbers of the table: a lazy table's are small integers, which an object holds in itself
    ...(table?.lazy ? { keptPos: { table, keeps: isTableCode } } : {}),
    entries: (index) => entriesOf(index) ?? { packedEntries: index },
  };
}

/** A model's rules from this many on are kept as their columns (kept-rules.ts). */
export const KEEP_RULES_FROM = 10_000;

/**
 * The acceptance with its positions back in place, and their table. `text` is the policy's text,
 * which a table whose offsets were not worked out yet (a file read the lean way) works them out
 * from when one is read, unless the sender's packed copy comes first (PositionTable.keepPacked).
 * `between` is awaited after each part of a long list (the daemon's thread: a turn of its loop).
 */
export async function unpackAcceptance(
  packed: PackedAcceptance,
  text?: string,
  between: () => Promise<void> = noPause,
  /** a model's rules from `from` on are kept as columns, let go `idleMs` unread (tests: fewer) */
  keep: { from?: number; idleMs?: number } = {},
): Promise<{ acceptance: Acceptance; table?: PositionTable }> {
  const { acceptance, table: parts, others, entries } = packed;
  namesBack(acceptance);
  if (!parts && !others && !entries && !packed.lists) return { acceptance };
  const file = parts?.file ?? "";
  const table =
    parts &&
    new PositionTable(
      parts,
      undefined,
      text === undefined ? undefined : { text, locator: locatorOf(file, text), sealed: true },
    );
  const posOf = positionOf(others, table, file);
  const strings = new Map<string, string>();
  // a list reached twice is one list; a list made here needs no walk (its entries are made when
  // read: lazyEntries)
  const made = new WeakSet<object>();
  const inParts = new ListsReader(packed.lists);
  const views = new PartViews();
  const entriesOf = entriesMaker(entries, posOf, made);
  // a big model's rules, kept as their columns once made
  const model = acceptance.policy?.model as Record<string, unknown> | undefined;
  const rules = model?.rules;
  const keptRules =
    isListRef(rules) &&
    (packed.lists?.[rules.packedList]?.length ?? 0) >= (keep.from ?? KEEP_RULES_FROM)
      ? inParts.keep(rules) && rules
      : false;
  const visitor: Visitor = {
    visit: (obj) => {
      if (typeof obj.pos === "number") obj.pos = posOf(obj.pos);
      const ref = obj.entries;
      if (isEntriesRef(ref)) {
        const list = entriesOf(ref.packedEntries);
        if (list) obj.entries = list;
      }
      for (const key in obj) {
        const v = obj[key];
        if (typeof v === "string") internString(obj, key, strings);
        else if (ArrayBuffer.isView(v)) views.note(obj, key, v);
        else if (isListRef(v)) {
          // filled below, its parts walked as they are read
          const list = inParts.list(v);
          if (list) {
            obj[key] = list;
            made.add(list);
          }
        }
      }
    },
  };
  walk(acceptance.policy, visitor, made);
  // what a list as columns holds is made whole: positions, entries and strings (kept once each)
  const columns = new ColumnsReader(readHooks(posOf, table, entriesOf));
  await inParts.fill(
    columns,
    (items, part) => {
      views.reading(part);
      walk(items, visitor, made);
      views.settle();
    },
    between,
  );
  const again = keptRules && inParts.ready(keptRules);
  if (model && again)
    keepRules(model as { rules: unknown }, again, model.rules as unknown[], keep.idleMs);
  return table ? { acceptance, table } : { acceptance };
}
