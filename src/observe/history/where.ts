// A history query's filters as an SQL WHERE clause with bound parameters (never interpolated).
import type { EventFilter } from "../filter.ts";
import type { HistoryQuery } from "./query.ts";

/**
 * The query's WHERE clause, and whether an index other than time's narrows it: a rule or a
 * process name (schema.ts; a pid or a container is an OR with a column of no index). `time`:
 * "index" lets the time bounds use the time index; "filter" keeps them out of it (a unary +),
 * for a statement that reads a range of ids.
 */
export function whereClause(
  q: HistoryQuery,
  time: "index" | "filter" = "index",
): {
  sql: string;
  params: unknown[];
  indexed: boolean;
} {
  const { terms, params } = filterTerms(q);
  const indexed = Boolean(q.rule) || Boolean(q.process && !isPid(q.process));
  const column = time === "index" ? "time_ms" : "+time_ms";
  if (q.since !== undefined) {
    terms.push(`${column} >= ?`);
    params.push(q.since);
  }
  if (q.until !== undefined) {
    terms.push(`${column} <= ?`);
    params.push(q.until);
  }
  if (q.before !== undefined) {
    terms.push("id < ?");
    params.push(q.before);
  }
  return { sql: terms.length ? `WHERE ${terms.join(" AND ")}` : "", params, indexed };
}

/**
 * An event filter's terms (ANDed); a `not` filter is a term that is true unless all its own are.
 * `inner`: a `not` filter's, which leaves the kinds of rows listed to the query it is part of.
 */
function filterTerms(q: EventFilter, inner = false): { terms: string[]; params: unknown[] } {
  const terms: string[] = [];
  const params: unknown[] = [];
  const add = (term: string, ...values: unknown[]) => {
    terms.push(term);
    params.push(...values);
  };
  // flow summaries are listed when asked for by type, never among the events
  if (q.types?.length) add(`type IN (${q.types.map(() => "?").join(", ")})`, ...q.types);
  else if (!inner) add("type != 'flow'");
  if (q.verdict) add("verdict = ?", q.verdict);
  if (q.rule) add("rule = ?", q.rule);
  if (q.direction) add("direction = ?", q.direction);
  if (q.remote) {
    const r = q.remote;
    add(
      "remote_family = ? AND remote_key BETWEEN ? AND ?",
      r.family,
      addressKey(r.family, r.start),
      addressKey(r.family, r.end),
    );
  }
  // the remote's names live in the event's JSON (few events have them)
  if (q.remoteName)
    add(
      "EXISTS (SELECT 1 FROM json_each(events.json, '$.remote.names') WHERE value = ?)",
      q.remoteName,
    );
  if (q.process) {
    if (isPid(q.process))
      add("(process_name = ? OR process_pid = ?)", q.process, Number(q.process));
    else add("process_name = ?", q.process);
  }
  // an id's prefix, compared as the live filter does (LIKE would ignore case)
  if (q.container)
    add(
      "(container_name = ? OR substr(container_id, 1, length(?)) = ?)",
      q.container,
      q.container,
      q.container,
    );
  for (const n of q.not ?? []) {
    const inner = filterTerms(n, true);
    // a column that is NULL (no process, no container) does not match: the event stays
    if (inner.terms.length) add(`NOT ifnull((${inner.terms.join(" AND ")}), 0)`, ...inner.params);
  }
  return { terms, params };
}

/**
 * A process filter that can name a pid: a pid's decimal form, as the live filter compares it
 * (String(pid)); "0123" is a name only, never pid 123.
 */
const isPid = (text: string): boolean => /^(?:0|[1-9]\d{0,9})$/.test(text);

/** Big-endian bytes: memcmp order is numeric order, so a CIDR is a BETWEEN of two keys. */
export function addressKey(family: 4 | 6, value: bigint): Buffer {
  const bytes = family === 4 ? 4 : 16;
  const out = Buffer.alloc(bytes);
  let v = value;
  for (let i = bytes - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}
