// The playground page: editor, problems, explain panel, rule list, tutorials and share links,
// wired together. Every check and verdict comes from moat's own loader and reference evaluator.
import { EXAMPLE_FILES } from "moat:examples";
import type { Diagnostic, PolicyModel } from "../../src/config/index.ts";
import {
  evaluate,
  explanationLines,
  ruleMisses,
  type ConnectionFacts,
} from "../../src/policy/index.ts";
import { consoleFetch } from "../shared/console-api.ts";
import { decodeExplainLink, encodeExplainLink } from "../shared/explain-link.ts";
import {
  FIELDS,
  factsOf,
  linkOfValues,
  PLACEHOLDER_PORT,
  portsMissing,
  valuesOfLink,
  type FormValues,
} from "./connection-form.ts";
import { createEditor } from "./editor.ts";
import { checkPolicy, problemText } from "./policy-check.ts";
import { ruleReach } from "./rule-reach.ts";
import { decodePolicy, encodePolicy, fragmentParams } from "./share.ts";
import { setUpWhatIf } from "./what-if.ts";
import { byId, el } from "../shared/dom.ts";

const TUTORIALS = Object.keys(EXAMPLE_FILES).filter((n) => n.endsWith(".yaml"));
const FIRST = TUTORIALS.includes("default.yaml") ? "default.yaml" : (TUTORIALS[0] ?? "");

/** The leading comment of an example: what it teaches. */
function introOf(text: string): string {
  const lines: string[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("#")) break;
    lines.push(line.replace(/^#\s?/, ""));
  }
  return lines.join(" ").trim();
}

let model: PolicyModel | undefined;
const form = byId<HTMLFormElement>("explain-form");
const editor = createEditor(byId("editor"), EXAMPLE_FILES[FIRST] ?? "version: 1\n", () =>
  schedule(),
);

let timer: ReturnType<typeof setTimeout> | undefined;
function schedule(): void {
  if (timer) clearTimeout(timer);
  timer = setTimeout(refresh, 150);
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

function showProblems(diagnostics: readonly Diagnostic[]): void {
  const list = byId("problems");
  list.replaceChildren(
    ...diagnostics.map((d) => {
      const button = el("button", { type: "button", textContent: problemText(d) });
      button.addEventListener("click", () => editor.goTo(d.line, d.col));
      return el("li", { className: d.severity }, button);
    }),
  );
  const errors = diagnostics.filter((d) => d.severity === "error").length;
  const warnings = diagnostics.length - errors;
  byId("check-summary").textContent = model
    ? `ok: ${plural(model.rules.length, "rule")}${warnings ? `, ${plural(warnings, "warning")}` : ""}`
    : `${plural(errors, "error")}${warnings ? `, ${plural(warnings, "warning")}` : ""}: the daemon would refuse this policy`;
}

function showRules(deciding?: string): void {
  const rules = model?.rules ?? [];
  byId("rules").replaceChildren(
    ...rules.map((r) => {
      const li = el(
        "li",
        { className: r.name === deciding ? "deciding" : "" },
        el("span", { className: "rule-name", textContent: r.name }),
        ` (line ${r.pos.line}): ${ruleReach(r)}`,
      );
      li.dataset.rule = r.name;
      return li;
    }),
  );
}

function formValues(): FormValues {
  const data = new FormData(form);
  return Object.fromEntries(FIELDS.map((f) => [f, String(data.get(f) ?? "")])) as FormValues;
}

function fillForm(values: FormValues): void {
  for (const f of FIELDS) {
    const input = form.elements.namedItem(f) as HTMLInputElement | HTMLSelectElement | null;
    if (input) input.value = values[f];
  }
  const more = ["process", "user", "name", "http-host", "http-path", "sni"] as const;
  if (more.some((f) => values[f])) form.querySelector("details")?.setAttribute("open", "");
}

function explain(): void {
  const verdict = byId("verdict");
  const lines = byId("explanation");
  const misses = byId("misses");
  const values = formValues();
  // a link from the running policy keeps saying so
  const running =
    fragmentParams(location.hash).get("policy") === "running" ? "&policy=running" : "";
  byId<HTMLAnchorElement>("explain-link").href =
    `#explain=${encodeExplainLink(linkOfValues(values))}${running}`;
  const show = (text: string, kind: string) => {
    verdict.textContent = text;
    verdict.className = kind;
    lines.replaceChildren();
    misses.replaceChildren();
    editor.setDeciding(null);
    showRules();
  };
  if (!model) return show("The policy has errors: fix them to explain a connection.", "");
  const parsed = factsOf(values);
  if (!parsed.ok) return show(parsed.error, "");
  let out: string[];
  try {
    out = explanationLines(model, parsed.facts);
  } catch (err) {
    return show((err as Error).message, "");
  }
  const result = evaluate(model, parsed.facts);
  const decider = result.verdict === "deferred" ? result.possible[0] : result;
  verdict.textContent =
    result.verdict === "deferred"
      ? `deferred: ${result.reason}`
      : `${result.verdict} by ${result.rule === "default" ? "the default" : `rule ${result.rule}`}`;
  verdict.className = result.verdict;
  lines.replaceChildren(...out.map((l) => el("li", { textContent: l })));
  misses.replaceChildren(
    ...ruleMisses(model, parsed.facts).map((m) =>
      el("li", { textContent: `${m.rule}${m.line ? ` (line ${m.line})` : ""}: ${m.why}` }),
    ),
  );
  editor.setDeciding(decider?.line ?? null);
  showRules(decider?.rule);
}

/** A short fingerprint of the text checked last (body[data-checked]), for scripts to wait on. */
function fingerprint(text: string): string {
  let h = 5381;
  for (let i = 0; i < text.length; i++) h = (Math.imul(h, 33) ^ text.charCodeAt(i)) >>> 0;
  return h.toString(36);
}

function refresh(): void {
  const text = editor.text();
  const acceptance = checkPolicy(text);
  model = acceptance.policy?.model;
  editor.setProblems(acceptance.diagnostics);
  showProblems(acceptance.diagnostics);
  showRules();
  explain();
  document.body.dataset.checked = fingerprint(text);
}

function setupTutorials(): void {
  const select = byId<HTMLSelectElement>("tutorial");
  select.replaceChildren(
    ...TUTORIALS.map((n) => el("option", { value: n, textContent: `examples/${n}` })),
  );
  select.value = FIRST;
  const intro = () =>
    (byId("tutorial-intro").textContent = introOf(EXAMPLE_FILES[select.value] ?? ""));
  intro();
  select.addEventListener("change", () => {
    editor.setText(EXAMPLE_FILES[select.value] ?? "");
    intro();
    refresh();
  });
}

async function share(): Promise<void> {
  const encoded = await encodePolicy(editor.text());
  const url = new URL(location.href);
  url.hash = `policy=${encoded}`;
  history.replaceState(null, "", url.hash);
  const field = byId<HTMLInputElement>("share-link");
  field.hidden = false;
  field.value = url.toString();
  field.select();
  let copied = false;
  try {
    await navigator.clipboard.writeText(url.toString());
    copied = true;
  } catch {
    // no clipboard (file://, no permission): the link is shown to copy by hand
  }
  byId("share-status").textContent = copied
    ? "Share link copied. The policy is in the link itself; no server keeps it."
    : "Copy the link below. The policy is in the link itself; no server keeps it.";
}

async function fromFragment(): Promise<void> {
  const params = fragmentParams(location.hash);
  const policy = params.get("policy");
  if (policy === "running") {
    try {
      const res = await consoleFetch("/v1/policy");
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      editor.setText(((await res.json()) as { text: string }).text);
      byId("tutorial-intro").textContent = "The policy the daemon is running.";
    } catch (err) {
      byId("share-status").textContent =
        `The running policy could not be read (${(err as Error).message}): open the page from the daemon's console.`;
    }
  } else if (policy) {
    try {
      editor.setText(await decodePolicy(policy));
      byId("tutorial-intro").textContent = "A shared policy, read from the link.";
    } catch {
      byId("share-status").textContent = "The link's policy could not be read (a damaged link?).";
    }
  }
  const link = params.get("explain");
  const decoded = link ? decodeExplainLink(link) : undefined;
  if (decoded) {
    fillForm(valuesOfLink(decoded));
    // a flow from the live view has no one client port: say which port was made up
    const missing = portsMissing(decoded).map((f) => f.replace("-", " "));
    if (missing.length)
      byId("explain-note").textContent =
        `The link has no ${missing.join(" or ")}: ${PLACEHOLDER_PORT} (an ephemeral port) is filled in.`;
  }
}

/** For scripts and tests: the same loader and evaluator the page uses. */
interface PlaygroundApi {
  text(): string;
  check(text: string): { problems: string[]; rules: number | null };
  verdicts(text: string, facts: ConnectionFacts[]): string[];
}
const api: PlaygroundApi = {
  text: () => editor.text(),
  check(text) {
    const a = checkPolicy(text);
    return {
      problems: a.diagnostics.map(problemText),
      rules: a.policy?.model.rules.length ?? null,
    };
  },
  verdicts(text, facts) {
    const m = checkPolicy(text).policy?.model;
    if (!m) return [];
    return facts.map((f) => {
      const r = evaluate(m, f);
      return `${r.verdict} ${r.rule}`;
    });
  },
};
(globalThis as unknown as { moatPlayground: PlaygroundApi }).moatPlayground = api;

form.addEventListener("submit", (e) => {
  e.preventDefault();
  explain();
});
form.addEventListener("input", () => explain());
form.addEventListener("change", () => explain());
byId("share").addEventListener("click", () => void share());
setupTutorials();
void fromFragment()
  .then(() => {
    refresh();
    return setUpWhatIf({
      text: () => editor.text(),
      applied: (generation) => {
        byId("tutorial-intro").textContent =
          `The daemon runs this policy (generation ${generation}).`;
      },
    });
  })
  .catch(() => undefined)
  .finally(() => {
    document.body.dataset.ready = "true";
  });
