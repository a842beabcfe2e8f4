// Events as the history's rows: one flat array, ROW_WIDTH values per event in the order of
// ROW_COLUMNS. Built on the daemon's thread and handed to the store's thread as it is (a flat
// array of strings and numbers clones far cheaper than the events' nested objects); the JSON is
// the event's shared serialisation (eventJson), the same text the live subscribers get.
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

export function eventRows(batch: readonly MoatEvent[]): RowValue[] {
  const out: RowValue[] = new Array<RowValue>(batch.length * ROW_WIDTH);
  let i = 0;
  for (const e of batch) {
    // processOf and containerOf (filter.ts), read in place
    const process = e.process;
    const container = process?.container;
    const v4 = dottedQuadHex(e.remote.ip);
    const remote = v4 === null ? remoteAddress(e) : null;
    out[i++] = timeMs(e.time);
    out[i++] = e.type;
    out[i++] = e.verdict;
    out[i++] = e.rule;
    out[i++] = e.direction;
    out[i++] = e.protocol;
    out[i++] = v4 !== null ? 4 : (remote?.family ?? null);
    out[i++] = v4 ?? (remote ? addressKey(remote.family, remote.value).toString("hex") : null);
    out[i++] = e.remote.ip;
    out[i++] = process?.name ?? null;
    out[i++] = process?.pid ?? null;
    out[i++] = container?.id ?? null;
    out[i++] = container?.name ?? null;
    out[i++] = e.connection;
    out[i++] = eventJson(e);
  }
  return out;
}

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
