// Events as the history's rows: ROW_WIDTH values per event in the order of ROW_COLUMNS, in
// blocks of ROWS_PER_INSERT rows, each the values one multi-row INSERT binds. Built on the
// daemon's thread and handed to the store's thread as they are (arrays of strings and numbers
// clone far cheaper than the events' nested objects); the JSON is the event's shared
// serialisation (eventJson), the same text the live subscribers get.
import { eventJson } from "../../datapath/event-json.ts";
import type { MoatEvent } from "../../datapath/event.ts";
import { remoteAddress } from "../filter.ts";
import { addressKey } from "./where.ts";

export const ROW_COLUMNS = [
  "time_ms",
  "type",
  "verdict",
  "rule",
  "direction",
  "protocol",
  "remote_family",
  "remote_key",
  "remote_ip",
  "process_name",
  "process_pid",
  "container_id",
  "container_name",
  "connection",
  "json",
] as const;

export const ROW_WIDTH = ROW_COLUMNS.length;

/**
 * A row value. remote_key is its bytes in hex: a small Buffer is a view of Node's shared 8 KiB
 * pool, which a structured clone would copy whole for every event; the store binds the bytes.
 */
export type RowValue = string | number | null;

/** Where remote_key is in a row. */
export const REMOTE_KEY = ROW_COLUMNS.indexOf("remote_key");

/** Rows per INSERT statement: one call into SQLite binds this many events (a block). */
export const ROWS_PER_INSERT = 32;

/** The batch's rows as one flat array. */
export function eventRows(batch: readonly MoatEvent[]): RowValue[] {
  const out = new Array<RowValue>(batch.length * ROW_WIDTH);
  let i = 0;
  for (let at = 0; at < batch.length; at += ROWS_PER_INSERT) {
    const rows = derive(batch, at);
    for (let row = 0; row < rows; row++)
      for (let column = 0; column < ROW_WIDTH; column++)
        out[i++] = value(batch[at + row]!, row, column);
  }
  return out;
}

/**
 * Rows as one INSERT binds them: `rows` rows, the values of the columns of the groups of
 * SHARED_GROUPS in `shared` (bits; a full block's only) once for all of them (each row has the
 * same), the other columns' row after row. A flood's rows share most of their columns (one rule,
 * one kind, no process, a burst's millisecond): handed over and bound once, not per row.
 */
export interface RowBlock {
  rows: number;
  shared: number;
  /** The values of sharedColumns(shared).once. */
  once: RowValue[];
  /** The values of sharedColumns(shared).each, row after row. */
  each: RowValue[];
}

/**
 * Groups of columns whose values all the rows of a block may share: the kind of event, the
 * process (none, for most floods), the millisecond, the connection, the remote. The json is
 * each event's own.
 */
export const SHARED_GROUPS: readonly (readonly number[])[] = [
  ["type", "verdict", "rule", "direction", "protocol", "remote_family"],
  ["process_name", "process_pid", "container_id", "container_name"],
  ["time_ms"],
  ["connection"],
  ["remote_key", "remote_ip"],
].map((names) => names.map((name) => ROW_COLUMNS.indexOf(name as (typeof ROW_COLUMNS)[number])));

/** The columns bound once and the columns bound per row of a block sharing the groups of `mask`. */
export function sharedColumns(mask: number): { once: number[]; each: number[] } {
  let columns = sharedByMask[mask];
  if (!columns) {
    const once = SHARED_GROUPS.filter((_, g) => mask & (1 << g)).flat();
    const each = ROW_COLUMNS.map((_, c) => c).filter((c) => !once.includes(c));
    columns = sharedByMask[mask] = { once, each };
  }
  return columns;
}
const sharedByMask: { once: number[]; each: number[] }[] = [];

/**
 * The batch's rows in blocks of ROWS_PER_INSERT rows (the last one the rest), as the store binds
 * them. Many small arrays, not one large one: an array of a whole batch (60k values for 4096
 * events) is made in the old generation, where every string stored into it costs the write
 * barrier's slow path and the next scavenge; a block's are made in the young one. Each is packed
 * (filled by push, never made with holes): a structured clone copies a packed array as a list,
 * an array with holes as index and value pairs, set one by one where it arrives.
 */
export function eventBlocks(batch: readonly MoatEvent[]): RowBlock[] {
  const blocks: RowBlock[] = [];
  for (let at = 0; at < batch.length; at += ROWS_PER_INSERT) {
    const rows = derive(batch, at);
    const shared = rows === ROWS_PER_INSERT ? sharedMask(batch, at) : 0;
    const { once: onceColumns, each: eachColumns } = sharedColumns(shared);
    const once: RowValue[] = [];
    for (const column of onceColumns) once.push(value(batch[at]!, 0, column));
    const each: RowValue[] = [];
    for (let row = 0; row < rows; row++)
      for (const column of eachColumns) each.push(value(batch[at + row]!, row, column));
    blocks.push({ rows, shared, once, each });
  }
  return blocks;
}

/** The groups of SHARED_GROUPS whose values every row of the block at `at` has the same, as bits. */
function sharedMask(batch: readonly MoatEvent[], at: number): number {
  let mask = 0;
  const first = batch[at]!;
  for (let g = 0; g < SHARED_GROUPS.length; g++) {
    let same = true;
    for (const column of SHARED_GROUPS[g]!) {
      const value0 = value(first, 0, column);
      for (let row = 1; same && row < ROWS_PER_INSERT; row++)
        same = value(batch[at + row]!, row, column) === value0;
      if (!same) break;
    }
    if (same) mask |= 1 << g;
  }
  return mask;
}

/**
 * The values of a block's rows made from more than a field (derive), by row: typed and small
 * arrays kept between blocks, so that no array of the block is made in the old generation.
 */
const timesMs: number[] = Array.from({ length: ROWS_PER_INSERT }, () => Number.NaN);
const families: (number | null)[] = Array.from({ length: ROWS_PER_INSERT }, () => null);
const keys: (string | null)[] = Array.from({ length: ROWS_PER_INSERT }, () => null);

/** Derives the values of the block of rows at `at` (up to ROWS_PER_INSERT); returns its rows. */
function derive(batch: readonly MoatEvent[], at: number): number {
  const rows = Math.min(ROWS_PER_INSERT, batch.length - at);
  for (let row = 0; row < rows; row++) {
    const e = batch[at + row]!;
    const v4 = dottedQuadHex(e.remote.ip);
    const remote = v4 === null ? remoteAddress(e) : null;
    timesMs[row] = timeMs(e.time);
    families[row] = v4 !== null ? 4 : (remote?.family ?? null);
    keys[row] = v4 ?? (remote ? addressKey(remote.family, remote.value).toString("hex") : null);
  }
  return rows;
}

/** The value of `column` of the event in `row` of the block derived last. */
function value(e: MoatEvent, row: number, column: number): RowValue {
  // processOf and containerOf (filter.ts), read in place
  switch (column) {
    case 0:
      return timesMs[row]!;
    case 1:
      return e.type;
    case 2:
      return e.verdict;
    case 3:
      return e.rule;
    case 4:
      return e.direction;
    case 5:
      return e.protocol;
    case 6:
      return families[row]!;
    case 7:
      return keys[row]!;
    case 8:
      return e.remote.ip;
    case 9:
      return e.process?.name ?? null;
    case 10:
      return e.process?.pid ?? null;
    case 11:
      return e.process?.container?.id ?? null;
    case 12:
      return e.process?.container?.name ?? null;
    case 13:
      return e.connection;
    default:
      return eventJson(e);
  }
}
// value()'s cases are ROW_COLUMNS' order
if (
  ROW_COLUMNS.join() !==
  "time_ms,type,verdict,rule,direction,protocol,remote_family,remote_key,remote_ip," +
    "process_name,process_pid,container_id,container_name,connection,json"
)
  throw new Error("rows.ts: value() does not follow ROW_COLUMNS");

/** Events of a burst share their time text: it is parsed once. */
let lastTime = "";
let lastMs = Number.NaN;
function timeMs(time: string): number {
  if (time !== lastTime) {
    lastMs = Date.parse(time);
    lastTime = time;
  }
  return lastMs;
}

const HEX = Array.from({ length: 256 }, (_, n) => n.toString(16).padStart(2, "0"));

/**
 * The index key (addressKey, in hex) of a dotted quad in canonical form, as the decoder writes
 * it; null for anything else (IPv6, an IPv4-mapped IPv6), which the general parser reads.
 */
function dottedQuadHex(ip: string): string | null {
  let hex = "";
  let n = 0;
  let digits = 0;
  let parts = 0;
  for (let i = 0; i <= ip.length; i++) {
    const c = i < ip.length ? ip.charCodeAt(i) : 46; // a final "."
    if (c === 46) {
      // no empty part, no leading zero, at most 255
      if (digits === 0 || n > 255 || parts === 4) return null;
      hex += HEX[n];
      parts++;
      n = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && n === 0) return null;
      n = n * 10 + (c - 48);
      if (++digits > 3) return null;
    } else return null;
  }
  return parts === 4 ? hex : null;
}
