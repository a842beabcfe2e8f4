// Suggestions written into the policy text itself: the yaml Document API finds where the `rules`
// list and each rule's `mode` are, and the text is edited there and nowhere else, so every
// comment, blank line, key order and flow layout already in the file stays byte for byte (a
// re-serialised document would re-space them). Proposed rules are appended to `rules` (after
// every rule already there, so they only ever decide what the defaults decided), each under a
// comment saying what justified it; promotion rewrites a proposed rule's `mode` value in place.
import { isMap, isScalar, isSeq, parseDocument, stringify, type YAMLMap } from "yaml";
import type { ProposedRule } from "./propose.ts";
import { INVISIBLE } from "../../config/printable.ts";

/** Every proposed rule's name starts with this; promotion looks only at these. */
export const SUGGESTED_PREFIX = "suggest-";

const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const time = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

/** The rule's comment: the facts that justify it, one line each (without the `#`). */
export function annotation(rule: ProposedRule, now: number): string[] {
  const head =
    rule.action === "allow"
      ? `moat suggest ${day(now)}: ${rule.hits} connections, first seen ${time(rule.firstMs)}, last seen ${time(rule.lastMs)}, ${rule.processes} process${rule.processes === 1 ? "" : "es"}`
      : `moat suggest ${day(now)}: the rest of this identity's ${rule.direction} connections`;
  return [head, ...rule.because.map((b) => `  ${b}`)];
}

/** Text YAML keeps as one plain scalar in a flow collection. */
const SAFE_PLAIN = /^[A-Za-z0-9_./:+-][A-Za-z0-9_./:@+*-]*$/;

// the invisible characters printable() escapes (C1, bidi, zero-width, tags...): JSON keeps them
// raw, and a terminal showing the diff would obey them (or hide or reorder what the line says).
// YAML's double-quoted scalar reads \uXXXX and \UXXXXXXXX back as the character.
const escaped = (c: string) => {
  const code = c.codePointAt(0) ?? 0;
  return code > 0xffff
    ? `\\U${code.toString(16).padStart(8, "0")}`
    : `\\u${code.toString(16).padStart(4, "0")}`;
};

/** A comment line's text: no line break or control character can end the comment. */
const commentText = (text: string) =>
  [...text]
    .map((c) => (c.charCodeAt(0) < 0x20 || c === "\u007f" ? "?" : c))
    .join("")
    .replace(INVISIBLE, escaped);

/** A value in flow style, spaced as the shipped examples are: `{ a: [1, 2] }`. */
function flowText(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(flowText).join(", ")}]`;
  if (typeof value === "object" && value !== null)
    return `{ ${Object.entries(value)
      .map(([k, v]) => `${k}: ${flowText(v)}`)
      .join(", ")} }`;
  if (typeof value !== "string") return stringify(value).trimEnd();
  // plain where YAML reads it back as the same string in a flow list, else double-quoted (a
  // JSON string is one): a path or name with a comma, a bracket or a newline stays one value.
  // Compared whole: trimming the line's end would drop a trailing U+00A0 or U+FEFF of the value
  const plain = stringify(value, { lineWidth: 0 }) === `${value}\n` && SAFE_PLAIN.test(value);
  // a YAML double-quoted scalar reads \uXXXX back as the character
  return plain ? value : JSON.stringify(value).replace(INVISIBLE, escaped);
}

/** A rule as list-item lines at `indent` (the column of the list's `-`), its comment above. */
function itemLines(rule: ProposedRule, now: number, indent: string): string[] {
  const lines = annotation(rule, now).map((c) => `${indent}# ${commentText(c)}`);
  Object.entries(rule.yaml).forEach(([key, value], i) =>
    lines.push(`${indent}${i === 0 ? "- " : "  "}${key}: ${flowText(value)}`),
  );
  return lines;
}

const lineStart = (text: string, at: number) => text.lastIndexOf("\n", at - 1) + 1;

/** Just past the line that holds `at` (the text's end, a newline added, on its last line). */
function lineEnd(text: string, at: number): { at: number; newline: boolean } {
  if (at > 0 && text[at - 1] === "\n") return { at, newline: false };
  const nl = text.indexOf("\n", at);
  return nl < 0 ? { at: text.length, newline: true } : { at: nl + 1, newline: false };
}

/** The text with the rules appended to `rules` (the list created when missing). */
export function withProposedRules(
  text: string,
  rules: readonly ProposedRule[],
  now: number,
): string {
  if (!rules.length) return text;
  const doc = parseDocument(text);
  const seq = doc.get("rules", true);
  if (isSeq(seq) && !seq.flow && seq.items.length && seq.range) {
    const first = seq.items[0] as { range?: [number, number, number] };
    const start = first.range?.[0] ?? seq.range[0];
    const indent = /^[ ]*/.exec(text.slice(lineStart(text, start)))?.[0] ?? "";
    const end = lineEnd(text, seq.range[1]);
    const lines = rules.flatMap((r) => itemLines(r, now, indent));
    const added = `${end.newline ? "\n" : ""}${lines.join("\n")}\n`;
    return text.slice(0, end.at) + added + text.slice(end.at);
  }
  const lines = rules.flatMap((r) => itemLines(r, now, "  "));
  if (isSeq(seq) && seq.flow && !seq.items.length && seq.range) {
    // `rules: []`: the empty list becomes the new rules
    return `${text.slice(0, seq.range[0]).trimEnd()}\n${lines.join("\n")}${text.slice(seq.range[1])}`;
  }
  if (seq !== undefined && seq !== null && !(isScalar(seq) && seq.value === null))
    throw new Error("`rules` is written in flow style: write it as a block list to add rules");
  if (isScalar(seq) && seq.range) {
    // `rules:` with nothing after it
    const end = lineEnd(text, seq.range[1]);
    return `${text.slice(0, end.at)}${end.newline ? "\n" : ""}${lines.join("\n")}\n${text.slice(end.at)}`;
  }
  const sep = text === "" || text.endsWith("\n") ? "" : "\n";
  return `${text}${sep}rules:\n${lines.join("\n")}\n`;
}

/** A proposed rule as it stands in the file. */
export interface SuggestedInFile {
  name: string;
  mode: string | undefined;
  /** The UTC day it was proposed (ms), from the `moat suggest DATE:` comment above it. */
  proposedMs: number | undefined;
}

/** The day in the `moat suggest DATE:` line of the comment right above `at`'s line. */
function proposedDay(text: string, at: number): number | undefined {
  let end = lineStart(text, at);
  while (end > 0) {
    const start = lineStart(text, end - 1);
    const line = text.slice(start, end).trim();
    if (!line.startsWith("#")) return undefined;
    const m = /^#\s*moat suggest (\d{4}-\d\d-\d\d):/.exec(line);
    if (m) {
      const ms = Date.parse(`${m[1]}T00:00:00Z`);
      return Number.isNaN(ms) ? undefined : ms;
    }
    end = start;
  }
  return undefined;
}

function ruleItems(text: string): YAMLMap[] {
  const seq = parseDocument(text).get("rules", true);
  return isSeq(seq) ? seq.items.filter((i): i is YAMLMap => isMap(i)) : [];
}

/** The proposed rules (name SUGGESTED_PREFIX...) in the text, in file order. */
export function suggestedRules(text: string): SuggestedInFile[] {
  const out: SuggestedInFile[] = [];
  for (const item of ruleItems(text)) {
    const name = item.get("name");
    if (typeof name !== "string" || !name.startsWith(SUGGESTED_PREFIX)) continue;
    const mode = item.get("mode");
    out.push({
      name,
      mode: typeof mode === "string" ? mode : undefined,
      proposedMs: item.range ? proposedDay(text, item.range[0]) : undefined,
    });
  }
  return out;
}

/** The text with the named rules' `mode` value made `prevent`, a comment line saying why. */
export function withPromoted(text: string, promote: ReadonlyMap<string, string>): string {
  const edits: { at: number; end: number; text: string }[] = [];
  for (const item of ruleItems(text)) {
    const why = promote.get(String(item.get("name")));
    const mode = item.get("mode", true);
    if (!why || !isScalar(mode) || !mode.range || !item.range) continue;
    edits.push({ at: mode.range[0], end: mode.range[1], text: "prevent" });
    const line = lineStart(text, item.range[0]);
    const indent = /^[ ]*/.exec(text.slice(line))?.[0] ?? "";
    edits.push({ at: line, end: line, text: `${indent}# ${why}\n` });
  }
  let out = text;
  for (const e of edits.sort((a, b) => b.at - a.at))
    out = out.slice(0, e.at) + e.text + out.slice(e.end);
  return out;
}
