// The history read on its own connection (read-only; WAL lets it read while the store writes):
// a time window's events newest first, one row at a time, at most `limit` of them, and how many
// the window holds (what replay reads), and the flow roll-ups suggestions learn from. The
// store's thread never waits for it.
import Database from "better-sqlite3";
import type { MoatEvent } from "../../datapath/event.ts";
import type { LearnInput } from "../learn/index.ts";
import { identityDays, learnRows, type IdentityDays } from "./learn.ts";

export interface HistoryWindow {
  /** Events in the window (read or not). */
  total: number;
  /** The window's events newest first, parsed as they are read; at most the limit. */
  events: IterableIterator<MoatEvent & { id: number }>;
}

export class HistoryReader {
  readonly #db: Database.Database;

  constructor(path: string) {
    this.#db = new Database(path, { readonly: true, fileMustExist: true });
  }

  /** Events with since <= time <= until (ms since the epoch), newest first, `limit` at most. */
  window(since: number, until: number, limit: number): HistoryWindow {
    const total = (
      this.#db
        .prepare("SELECT count(*) AS n FROM events WHERE time_ms BETWEEN ? AND ?")
        .get(since, until) as { n: number }
    ).n;
    // the time index, walked backwards: no sort, rows read as they are asked for
    const rows = this.#db
      .prepare(
        "SELECT id, json FROM events WHERE time_ms BETWEEN ? AND ? ORDER BY time_ms DESC, id DESC LIMIT ?",
      )
      .iterate(since, until, limit) as IterableIterator<{ id: number; json: string }>;
    function* events(): Generator<MoatEvent & { id: number }> {
      for (const r of rows) yield { ...(JSON.parse(r.json) as MoatEvent), id: r.id };
    }
    return { total, events: events() };
  }

  /** The flow roll-ups of a window as `moat suggest` learns from them (learn.ts). */
  learnRows(since: number, until: number, maxRows?: number): LearnInput {
    return learnRows(this.#db, since, until, maxRows);
  }

  /** Each identity's connections per day, and the blocked or detected ones (--promote). */
  identityDays(since: number, until: number): IdentityDays {
    return identityDays(this.#db, since, until);
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}
