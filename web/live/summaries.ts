// The live view's side panels: top talkers and the map of who reaches what (processes and
// containers to the remotes they reach, blocked and detected edges marked in words, not only
// colour), both from the aggregated flows; and the per-rule counters from GET /v1/rules.
import type { FlowRow } from "../../src/api/flow-aggregator.ts";
import { printable } from "../../src/config/printable.ts";

const MAP_WHO = 12;
const MAP_REMOTES = 8;

export interface RuleCount {
  name: string;
  packets: number;
  connections: number;
}

export function topTalkers(
  rows: readonly FlowRow[],
  n = 10,
): { identity: string; count: number }[] {
  const by = new Map<string, number>();
  for (const r of rows) by.set(r.identity, (by.get(r.identity) ?? 0) + r.count);
  return [...by]
    .map(([identity, count]) => ({ identity, count }))
    .sort((a, b) => b.count - a.count)
    .slice(0, n);
}

interface Edge {
  remote: string;
  blocked: number;
  detected: number;
  allowed: number;
}

/** identity -> the remotes it reaches ("name (ip):port"), with events per verdict. */
export function reachMap(rows: readonly FlowRow[]): Map<string, Map<string, Edge>> {
  const map = new Map<string, Map<string, Edge>>();
  for (const r of rows) {
    let edges = map.get(r.identity);
    if (!edges) map.set(r.identity, (edges = new Map()));
    const remote = `${r.names[0] ? `${r.names[0]} (${r.remote})` : r.remote}:${r.port}/${r.protocol}`;
    let e = edges.get(remote);
    if (!e) edges.set(remote, (e = { remote, blocked: 0, detected: 0, allowed: 0 }));
    e[r.verdict] += r.count;
  }
  return map;
}

// names from processes and the network: escaped as moat's CLI prints them, and isolated (CSS)
const li = (text: string, className = ""): HTMLLIElement => {
  const el = document.createElement("li");
  el.textContent = printable(text);
  if (className) el.className = className;
  return el;
};

/** Replaces the list's items only when their text changed (no layout otherwise). */
function replaceIfChanged(list: HTMLElement, items: HTMLElement[]): void {
  const next = items.map((i) => i.textContent).join("\n");
  if (list.dataset.text === next) return;
  list.dataset.text = next;
  list.replaceChildren(...items);
}

export function renderTalkers(list: HTMLElement, rows: readonly FlowRow[]): void {
  replaceIfChanged(
    list,
    topTalkers(rows).map((t) => li(`${t.identity}: ${t.count} events`)),
  );
}

export function renderMap(list: HTMLElement, rows: readonly FlowRow[]): void {
  const map = reachMap(rows);
  const total = (edges: Map<string, Edge>) => {
    let n = 0;
    for (const e of edges.values()) n += e.blocked + e.detected + e.allowed;
    return n;
  };
  const who = [...map].sort((a, b) => total(b[1]) - total(a[1])).slice(0, MAP_WHO);
  replaceIfChanged(
    list,
    who.map(([identity, edges]) => {
      const item = li(identity);
      const sub = document.createElement("ul");
      const sorted = [...edges.values()].sort(
        (a, b) => b.blocked + b.detected - (a.blocked + a.detected),
      );
      for (const e of sorted.slice(0, MAP_REMOTES)) {
        const marks = [
          e.blocked ? `blocked ${e.blocked}` : "",
          e.detected ? `detected ${e.detected}` : "",
          e.allowed ? `allowed ${e.allowed}` : "",
        ].filter(Boolean);
        const cls = e.blocked ? "v-blocked" : e.detected ? "v-detected" : "";
        sub.append(li(`→ ${e.remote}: ${marks.join(", ")}`, cls));
      }
      if (sorted.length > MAP_REMOTES) sub.append(li(`and ${sorted.length - MAP_REMOTES} more`));
      item.append(sub);
      return item;
    }),
  );
}

/** The busiest rules (GET /v1/rules?top=N), and a last row saying how many more the policy has. */
export function renderRules(body: HTMLElement, rules: readonly RuleCount[], total: number): void {
  const rows = rules.map((r) => {
    const tr = document.createElement("tr");
    for (const text of [printable(r.name), String(r.connections), String(r.packets)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  });
  if (total > rules.length) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = 3;
    td.textContent = `and ${total - rules.length} more rules (the ${rules.length} busiest are listed)`;
    tr.append(td);
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}
