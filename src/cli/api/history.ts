// Stored events through the API, oldest first: every page of a time window, or the newest N.
import type { MoatEvent } from "../../datapath/index.ts";
import type { HistoryPage } from "../../observe/index.ts";
import { call, type ApiTarget } from "./client.ts";

export interface StoredQuery {
  /** The filters (filterQuery). */
  filter: URLSearchParams;
  since?: number;
  until?: number;
  /** At most this many, the newest; absent: all in the window (or the API's default page). */
  limit?: number;
}

/** The API's largest page. */
const PAGE = 1000;

/** Events without the store's row id (a paging cursor, not part of the event), oldest first. */
export async function storedEvents(target: ApiTarget, q: StoredQuery): Promise<MoatEvent[]> {
  const out: MoatEvent[] = [];
  const windowed = q.since !== undefined || q.until !== undefined;
  let before: number | null = null;
  for (;;) {
    const params = new URLSearchParams(q.filter);
    if (q.since !== undefined) params.set("since", String(q.since));
    if (q.until !== undefined) params.set("until", String(q.until));
    const left = q.limit === undefined ? PAGE : Math.min(PAGE, q.limit - out.length);
    if (q.limit !== undefined || windowed) params.set("limit", String(left));
    if (before !== null) params.set("before", String(before));
    const page = await call<HistoryPage>(target, "GET", `/v1/events?${params.toString()}`);
    for (const { id, ...event } of page.events) if (id) out.push(event);
    before = page.next;
    const full = q.limit !== undefined && out.length >= q.limit;
    // without a window or a limit: one page, the API's default (the newest 100)
    if (before === null || full || (!windowed && q.limit === undefined)) break;
  }
  return out.reverse();
}
