// "What if": when the daemon serves the playground, the editor's draft is replayed over the
// daemon's stored events (POST /v1/policy/replay, the reference evaluator on the daemon) and the
// connections it would newly block, allow or detect are listed by process and remote. "Apply"
// (only for a session that may apply policy) sends the draft replayed through PUT /v1/policy,
// the daemon's one install path: the same checks, the audit line naming the session and what
// changed. It asks for a confirmation first, and a draft edited since its replay must be
// replayed again.
import type { ReplayGroup, ReplayReport, ReplaySample } from "../../src/policy/index.ts";
import { send, sessionScopes } from "../shared/console-api.ts";
import { byId, el } from "../shared/dom.ts";

type Answer = ReplayReport & { warnings: string[]; policyChanges: string[] };

const HEADINGS = {
  blocked: "Newly blocked",
  allowed: "Newly allowed",
  detected: "Newly detected",
} as const;

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

function sampleText(s: ReplaySample): string {
  const [from, to] = s.direction === "ingress" ? [s.remote, s.local] : [s.local, s.remote];
  const who = s.process ? ` (${s.process})` : "";
  return `${s.time} ${from} → ${to}${who}: was ${s.was.verdict} by ${s.was.rule}; now ${s.now.reason}`;
}

function groupItem(g: ReplayGroup): HTMLLIElement {
  const arrow = g.direction === "ingress" ? "←" : "→";
  const port = g.port === null ? g.protocol : `${g.port}/${g.protocol}`;
  const was = Object.entries(g.was)
    .map(([v, n]) => `${v} ${n}`)
    .join(", ");
  const rules = g.rules.map((r) => r.rule).join(", ");
  const li = el(
    "li",
    {},
    el("span", { className: "group-count", textContent: plural(g.count, "connection") }),
    ` ${g.process} ${arrow} ${g.remote} ${port} (was ${was}), by ${rules}`,
  );
  if (g.samples.length)
    li.append(
      el(
        "details",
        {},
        el("summary", { textContent: "sample events" }),
        el("ul", {}, ...g.samples.map((s) => el("li", { textContent: sampleText(s) }))),
      ),
    );
  return li;
}

function showReport(r: Answer): void {
  const out = byId("whatif-result");
  const parts: HTMLElement[] = [
    el("p", {
      id: "whatif-summary",
      textContent:
        `${plural(r.replayed, "connection")} replayed from ${plural(r.scanned, "stored event")} ` +
        `(${r.since} to ${r.until}), compared with the ${r.baseline === "running" ? "running policy" : "verdicts recorded"}.` +
        (r.notScanned ? ` ${r.notScanned} older events were not read (limit ${r.limit}).` : ""),
    }),
  ];
  for (const change of ["blocked", "allowed", "detected"] as const) {
    const list = r.changes[change];
    const section = el("section", { className: `change ${change}` });
    section.dataset.change = change;
    section.append(el("h3", { textContent: `${HEADINGS[change]}: ${list.count}` }));
    if (list.groups.length) section.append(el("ul", {}, ...list.groups.map(groupItem)));
    if (list.unlisted)
      section.append(el("p", { textContent: `… and ${list.unlisted} more in smaller groups` }));
    parts.push(section);
  }
  const rest = [`unchanged: ${r.unchanged}`];
  if (r.undecided.count) {
    const needs = Object.entries(r.undecided.needs)
      .map(([need, n]) => `${need} ${n}`)
      .join(", ");
    rest.push(`undecided (the stored events lack ${needs}): ${r.undecided.count}`);
  }
  parts.push(el("p", { textContent: rest.join("; ") }));
  out.replaceChildren(...parts);
}

export interface WhatIfPage {
  /** The editor's text now. */
  text(): string;
  /** The draft was applied: the page may say so. */
  applied(generation: number): void;
}

/** Shows the panel when the daemon serves the page and the session may read events. */
export async function setUpWhatIf(page: WhatIfPage): Promise<void> {
  const scopes = await sessionScopes();
  if (!scopes?.has("events")) return;
  byId("whatif-pane").hidden = false;
  byId("lede-where").textContent =
    "Checks and explanations run in this page; What if and Apply below ask the daemon that serves it.";
  const status = byId("whatif-status");
  const run = byId<HTMLButtonElement>("whatif-run");
  const applyBox = byId("apply-box");
  const apply = byId<HTMLButtonElement>("apply");
  const cancel = byId<HTMLButtonElement>("apply-cancel");
  const applyStatus = byId("apply-status");
  const mayApply = scopes.has("policy");
  /** The text last replayed: the one Apply sends. */
  let replayed: string | null = null;
  let armed = false;

  const disarm = () => {
    armed = false;
    apply.textContent = "Apply this policy…";
    cancel.hidden = true;
  };

  byId("whatif-form").addEventListener("submit", (e) => e.preventDefault());
  run.addEventListener("click", () => {
    const text = page.text();
    const form = new FormData(byId<HTMLFormElement>("whatif-form"));
    status.textContent = "Replaying the stored events…";
    run.disabled = true;
    applyBox.hidden = true;
    disarm();
    void send<Answer>(
      "POST",
      "/v1/policy/replay",
      JSON.stringify({ text, since: form.get("since"), baseline: form.get("baseline") }),
    )
      .then((a) => {
        if (!a.ok || !a.body) {
          const details = a.error?.details ?? [];
          status.textContent = `${a.error?.message ?? "refused"}${details.length ? `: ${details.join("; ")}` : ""}`;
          byId("whatif-result").replaceChildren();
          replayed = null;
          return;
        }
        status.textContent = "Replayed.";
        showReport(a.body);
        replayed = text;
        if (!mayApply) return;
        applyBox.hidden = false;
        byId("apply-changes").replaceChildren(
          ...(a.body.policyChanges.length
            ? a.body.policyChanges.map((c) => el("li", { textContent: c }))
            : [el("li", { textContent: "nothing enforced changes" })]),
        );
        applyStatus.textContent = "";
      })
      .catch((err: unknown) => {
        status.textContent = `The replay failed: ${(err as Error).message}`;
      })
      .finally(() => {
        run.disabled = false;
      });
  });

  cancel.addEventListener("click", () => {
    disarm();
    applyStatus.textContent = "Not applied.";
  });

  apply.addEventListener("click", () => {
    if (replayed === null) return;
    if (page.text() !== replayed) {
      applyStatus.textContent = "The policy changed since its replay: replay it again first.";
      return;
    }
    if (!armed) {
      armed = true;
      apply.textContent = "Confirm: apply to the running daemon";
      cancel.hidden = false;
      applyStatus.textContent = "Apply the changes listed above? The daemon checks it again.";
      return;
    }
    disarm();
    apply.disabled = true;
    applyStatus.textContent = "Applying…";
    void send<{ generation: number }>("PUT", "/v1/policy", replayed, "application/yaml")
      .then((a) => {
        if (a.ok && a.body) {
          applyStatus.textContent = `Applied: generation ${a.body.generation}.`;
          page.applied(a.body.generation);
          return;
        }
        const details = a.error?.details ?? [];
        applyStatus.textContent = `Not applied: ${a.error?.message ?? "refused"}${details.length ? `: ${details.join("; ")}` : ""}`;
      })
      .catch((err: unknown) => {
        applyStatus.textContent = `Not applied: ${(err as Error).message}`;
      })
      .finally(() => {
        apply.disabled = false;
      });
  });
}
