// Events as the history's rows: one flat array, ROW_WIDTH values per event in the order of
// ROW_COLUMNS. Built on the daemon's thread and handed to the store's thread as it is (a flat
// array of strings and numbers clones far cheaper than the events' nested objects); the JSON is
// the event's shared serialisation (eventJson), the same text the live subscribers get.
import { eventJson } from "../../datapath/event-json.ts";
import type { MoatEvent } from "../../datapath/event.ts";
import { containerOf, processOf, remoteAddress } from "../filter.ts";
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
    const remote = remoteOf(e);
    const process = processOf(e);
    const container = containerOf(e);
    out[i++] = timeMs(e.time);
    out[i++] = e.type;
    out[i++] = e.verdict;
    out[i++] = e.rule;
    out[i++] = e.direction;
    out[i++] = e.protocol;
    out[i++] = remote?.family ?? null;
    out[i++] = remote?.key.toString("hex") ?? null;
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

/**
 * The remote's family and index key (addressKey). A dotted quad in canonical form, as the
 * decoder writes it, is read directly; anything else goes through the general parser.
 */
function remoteOf(e: MoatEvent): { family: 4 | 6; key: Buffer } | null {
  const parts = e.remote.ip.split(".");
  if (parts.length === 4) {
    const key = Buffer.allocUnsafe(4);
    let ok = true;
    for (let i = 0; i < 4; i++) {
      const part = parts[i] ?? "";
      const n = Number(part);
      if (!(n >= 0 && n <= 255) || String(n) !== part) ok = false;
      key[i] = n;
    }
    if (ok) return { family: 4, key };
  }
  const remote = remoteAddress(e);
  return remote ? { family: remote.family, key: addressKey(remote.family, remote.value) } : null;
}
