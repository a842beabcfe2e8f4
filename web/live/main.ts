// The live view: aggregated flows from GET /v1/flows/stream (a snapshot, then deltas at most
// every 250 ms, whatever the event rate), filtered and drawn a few rows at a time; the panels
// are redrawn once a second. Writes (the mode switch) appear only when the session's scopes
// allow them, and carry the session's CSRF token.
import type { FlowDelta, FlowRow } from "../../src/api/flow-aggregator.ts";
import { FlowFilterError, matchesFlow, parseFlowFilter, type FilterTerm } from "./flow-filter.ts";
import { FlowTable } from "./flow-table.ts";
import { csrf } from "../shared/console-api.ts";
import { renderMap, renderRules, renderTalkers, type RuleCount } from "./summaries.ts";
import { startReviewPanel } from "./review.ts";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
/** Rule hits lists this many rules, the busiest first. */
const RULE_ROWS = 25;

const flows = new Map<number, FlowRow>();
let totals = { events: 0, flows: 0 };
let terms: FilterTerm[] = [];
let sortBy = "recent";
let dirty = true;
let connected = false;
const table = new FlowTable($("flows"), $<HTMLTableSectionElement>("flow-rows"));

function apply(delta: FlowDelta, snapshot: boolean): void {
  if (snapshot) flows.clear();
  for (const id of delta.removed) flows.delete(id);
  for (const r of delta.rows) flows.set(r.id, r);
  totals = { events: delta.events, flows: delta.flows };
  dirty = true;
}

function visible(): FlowRow[] {
  const out: FlowRow[] = [];
  for (const r of flows.values()) if (matchesFlow(r, terms)) out.push(r);
  if (sortBy === "count") out.sort((a, b) => b.count - a.count);
  else
    out.sort((a, b) => (a.lastSeen < b.lastSeen ? 1 : a.lastSeen > b.lastSeen ? -1 : b.id - a.id));
  return out;
}

let shown: FlowRow[] = [];
function redraw(): void {
  if (!dirty) return;
  dirty = false;
  shown = visible();
  table.show(shown);
  setText(
    $("summary"),
    connected
      ? `${totals.events} events in ${totals.flows} flows; ${shown.length} shown`
      : "Disconnected; reconnecting…",
  );
}

/** Writes only a change: an unchanged text costs no layout. */
function setText(el: HTMLElement, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

// the panels change slowly; redrawn in a task of their own, every 2 s
function redrawPanels(): void {
  renderTalkers($("talkers"), shown);
  renderMap($("map"), shown);
}

function connect(): void {
  const source = new EventSource("/v1/flows/stream");
  source.addEventListener("open", () => {
    connected = true;
    dirty = true;
  });
  source.addEventListener("snapshot", (m) =>
    apply(JSON.parse((m as MessageEvent<string>).data) as FlowDelta, true),
  );
  source.addEventListener("delta", (m) =>
    apply(JSON.parse((m as MessageEvent<string>).data) as FlowDelta, false),
  );
  source.addEventListener("error", () => {
    connected = false;
    dirty = true;
  });
}

async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(path, { credentials: "same-origin" });
  if (res.status === 401) location.replace("/console/login");
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

async function pollRules(): Promise<void> {
  try {
    // the busiest only: a policy of 100k rules would be a 7 MB answer and 100k rows every 2 s
    const r = await getJson<{ rules: RuleCount[]; total: number }>(`/v1/rules?top=${RULE_ROWS}`);
    renderRules($("rules").querySelector("tbody") as HTMLElement, r.rules, r.total);
  } catch {
    // shown as stale counters; the next poll tries again
  }
}

async function setUpWrites(): Promise<void> {
  const session = await getJson<{ scopes: string[] }>("/console/session");
  // the review queue: read with `events`, answered with `policy`
  if (session.scopes.includes("events")) {
    $("review").hidden = false;
    const canDecide = session.scopes.includes("policy");
    startReviewPanel($("review-list"), $("review-summary"), $("review-status"), canDecide);
  }
  if (!session.scopes.includes("mode")) return;
  const status = await getJson<{ mode: string }>("/v1/status");
  $("mode-control").hidden = false;
  $<HTMLSelectElement>("mode").value = status.mode;
  $("mode-apply").addEventListener("click", () => {
    const mode = $<HTMLSelectElement>("mode").value;
    void fetch("/v1/mode", {
      method: "PUT",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-moat-csrf": csrf() },
      body: JSON.stringify({ mode }),
    }).then(async (res) => {
      const body = (await res.json()) as { error?: { message: string }; generation?: number };
      $("mode-status").textContent = res.ok
        ? `mode ${mode} (generation ${body.generation})`
        : (body.error?.message ?? `HTTP ${res.status}`);
    });
  });
}

$<HTMLInputElement>("filter").addEventListener("input", (e) => {
  const text = (e.target as HTMLInputElement).value;
  try {
    terms = parseFlowFilter(text);
    $("filter-error").textContent = "";
  } catch (err) {
    if (!(err instanceof FlowFilterError)) throw err;
    $("filter-error").textContent = err.message;
  }
  dirty = true;
});
$<HTMLSelectElement>("sort").addEventListener("change", (e) => {
  sortBy = (e.target as HTMLSelectElement).value;
  dirty = true;
});
$("logout").addEventListener("click", () => {
  void fetch("/console/session", {
    method: "DELETE",
    credentials: "same-origin",
    headers: { "x-moat-csrf": csrf() },
  }).then(() => location.replace("/console/login"));
});

connect();
setInterval(redraw, 250);
setInterval(redrawPanels, 2000);
void pollRules();
setInterval(() => void pollRules(), 2000);
void setUpWrites().catch(() => undefined);
