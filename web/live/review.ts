// The review panel: the daemon's queue of unknown connections (GET /v1/review), polled; with the
// `policy` scope each entry gets Allow and Block, by host, domain or wildcard, for a lifetime
// (POST /v1/review/decide, the same answer `moat review` gives). Without it, the list only.
import type { DecisionOutcome, ReviewEntry, ReviewView } from "../../src/api/control.ts";
import { printable } from "../../src/config/printable.ts";
import { describe } from "./shown.ts";
import { send } from "../shared/console-api.ts";
import { el } from "../shared/dom.ts";

const LIFETIMES = [
  ["once", "once"],
  ["1h", "1 hour"],
  ["reboot", "until reboot"],
  ["forever", "forever"],
] as const;

function choice(label: string, options: readonly (readonly [string, string])[]) {
  const select = el("select", { "aria-label": label } as Partial<HTMLSelectElement>);
  select.setAttribute("aria-label", label);
  for (const [value, text] of options) select.append(el("option", { value }, text));
  return select;
}

function entryItem(e: ReviewEntry, canDecide: boolean, status: HTMLElement, done: () => void) {
  const parts = describe(e).map((p) =>
    typeof p === "string" ? p : el("bdi", { textContent: p.outside }),
  );
  const item = el("li", {}, el("span", { className: "what" }, ...parts));
  if (!canDecide) return item;
  const scopes: [string, string][] = [["host", "host"]];
  if (e.remote.names?.length) scopes.push(["domain", "domain"], ["wildcard", "wildcard"]);
  const scope = choice(`scope for ${e.id}`, scopes);
  const lifetime = choice(`lifetime for ${e.id}`, LIFETIMES);
  const answer = (action: "allow" | "block") => async () => {
    const r = await send<DecisionOutcome>(
      "POST",
      "/v1/review/decide",
      JSON.stringify({ id: e.id, action, scope: scope.value, lifetime: lifetime.value }),
    );
    status.textContent = printable(
      r.ok && r.body?.ok
        ? `${action} decision:${r.body.decision.id} (${r.body.decision.remote}, ${r.body.decision.lifetime})`
        : [r.error?.message, ...(r.error?.details ?? [])].filter(Boolean).join(": "),
    );
    done();
  };
  const allow = el("button", { type: "button" }, "Allow");
  const block = el("button", { type: "button" }, "Block");
  allow.addEventListener("click", () => void answer("allow")());
  block.addEventListener("click", () => void answer("block")());
  item.append(" ", scope, " ", lifetime, " ", allow, " ", block);
  return item;
}

/** Polls the queue into `list` (and counts into `summary`) every `everyMs`. */
export function startReviewPanel(
  list: HTMLElement,
  summary: HTMLElement,
  status: HTMLElement,
  canDecide: boolean,
  everyMs = 3000,
): void {
  const refresh = async (): Promise<void> => {
    const r = await send<ReviewView>("GET", "/v1/review").catch(() => null);
    if (!r?.ok || !r.body) return;
    const view = r.body;
    list.replaceChildren(
      ...view.entries.map((e) => entryItem(e, canDecide, status, () => void refresh())),
    );
    summary.textContent =
      `${view.entries.length} waiting` +
      (view.overflow ? `; ${view.overflow} not queued (at most ${view.max})` : "");
  };
  void refresh();
  setInterval(() => void refresh(), everyMs);
}
