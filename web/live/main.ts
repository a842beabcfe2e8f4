// The live view: aggregated flows from GET /v1/flows/stream (a snapshot, then deltas at most
// every 250 ms, whatever the event rate), filtered and drawn a few rows at a time; the panels
// are redrawn once a second. Writes (the mode switch) appear only when the session's scopes
// allow them. Every request, the stream included, carries the session's token (console-api.ts):
// a tab that did not sign in has none, and goes to the login page.
import type { FlowDelta, FlowRow } from "../../src/api/flow-aggregator.ts";
import { FlowFilterError, matchesFlow, parseFlowFilter, type FilterTerm } from "./flow-filter.ts";
import { FlowTable } from "./flow-table.ts";
import {
  consoleFetch,
  errorCode,
  forgetSessionToken,
  needsSignIn,
  send,
  sessionToken,
} from "../shared/console-api.ts";
import { readEvents } from "./sse.ts";
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

/** A dropped stream is opened again after this long. */
const RECONNECT_MS = 3000;

function setConnected(live: boolean): void {
  connected = live;
  dirty = true;
}

/** The flow stream, read through fetch() so it carries the token; reopened when it drops. */
function connect(): void {
  readFlows()
    .catch(() => undefined) // a dropped connection: reopened below
    .finally(() => {
      setConnected(false);
      setTimeout(connect, RECONNECT_MS);
    });
}

async function readFlows(): Promise<void> {
  const res = await consoleFetch("/v1/flows/stream", { headers: { accept: "text/event-stream" } });
  if (!res.ok || !res.body) {
    if (needsSignIn(res.status, await errorCode(res))) signIn();
    return;
  }
  setConnected(true);
  await readEvents(res.body, (type, data) => {
    if (type === "snapshot" || type === "delta")
      apply(JSON.parse(data) as FlowDelta, type === "snapshot");
  });
}

/** No session, or none in this tab: the login page says to run `moat console` for a link. */
function signIn(): void {
  location.replace("/console/login");
}

async function getJson<T>(path: string): Promise<T> {
  const r = await send<T>("GET", path);
  if (!r.ok && needsSignIn(r.status, r.error?.code ?? "")) signIn();
  if (!r.ok || r.body === null) throw new Error(`${path}: HTTP ${r.status}`);
  return r.body;
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
    void send<{ generation: number }>("PUT", "/v1/mode", JSON.stringify({ mode })).then((r) => {
      $("mode-status").textContent = r.ok
        ? `mode ${mode} (generation ${r.body?.generation})`
        : (r.error?.message ?? `HTTP ${r.status}`);
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
  void send("DELETE", "/console/session").then(() => {
    forgetSessionToken();
    signIn();
  });
});

function start(): void {
  connect();
  setInterval(redraw, 250);
  setInterval(redrawPanels, 2000);
  void pollRules();
  setInterval(() => void pollRules(), 2000);
  void setUpWrites().catch(() => undefined);
}

if (sessionToken()) start();
else signIn();
