// A question to the event history and a page of its answer: what the API, the CLI and the
// store agree on (the store answers it in SQL, where.ts).
import type { MoatEvent } from "../../datapath/event.ts";
import type { EventFilter } from "../filter.ts";

export interface HistoryQuery extends EventFilter {
  /** ISO time or ms since the epoch; inclusive. */
  since?: number;
  until?: number;
  /** Page cursor: only events older than this id (from a previous page's `next`). */
  before?: number;
  /** Page size (default 100, at most 1000). */
  limit?: number;
}

export interface HistoryPage {
  events: (MoatEvent & { id: number })[];
  /** Pass as `before` for the next (older) page; null on the last page. */
  next: number | null;
}
