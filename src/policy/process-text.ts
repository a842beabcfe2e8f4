// Process facts written the way `moat explain --process` takes them:
//   path=/usr/bin/curl,name=curl,user=1000,cgroup=/user.slice,container.id=3f2a...
// A backslash keeps a `,` or `=` in a value (path=/a\,b). Fields left out stay unknown (a rule
// that needs one is "maybe"). `container=none` says the process is not in a container. Pure:
// user names and uids are resolved by the caller.

import type { Parsed } from "./connection-text.ts";
import type { KnownProcess } from "./facts.ts";

const FIELDS = [
  "pid",
  "path",
  "name",
  "user",
  "cgroup",
  "container",
  "container.id",
  "container.name",
  "container.image",
];

export const PROCESS_FIELDS: readonly string[] = FIELDS;

/** `value` written so it stays one value: `\`, `,` and `=` escaped with a backslash. */
export function processTextValue(value: string): string {
  return value.replace(/[\\,=]/g, (c) => `\\${c}`);
}

/**
 * The KEY=VALUE items of a list: split at each `,` and at an item's first `=`, except where a
 * backslash escapes it (`\,` `\=` `\\`; a backslash before anything else is itself).
 */
function items(text: string): { key: string; value: string | undefined; item: string }[] {
  const out: { key: string; value: string | undefined; item: string }[] = [];
  let key = "";
  let value: string | undefined;
  let start = 0;
  const end = (at: number) => {
    if (at > start) out.push({ key, value, item: text.slice(start, at) });
    [key, value, start] = ["", undefined, at + 1];
  };
  for (let i = 0; i < text.length; i++) {
    let c = text[i] as string;
    if (c === ",") {
      end(i);
      continue;
    }
    if (c === "=" && value === undefined) {
      value = "";
      continue;
    }
    if (c === "\\" && /[\\,=]/.test(text[i + 1] ?? "")) c = text[++i] as string;
    if (value === undefined) key += c;
    else value += c;
  }
  end(text.length);
  return out;
}

/** One or more comma-separated KEY=VALUE lists (an option given several times adds up). */
export function parseProcessText(texts: readonly string[]): Parsed<KnownProcess> {
  const seen = new Map<string, string>();
  for (const text of texts) {
    for (const { key, value, item } of items(text)) {
      if (value === undefined || !FIELDS.includes(key))
        return {
          ok: false,
          error: `--process: expected KEY=VALUE with KEY one of ${FIELDS.join(", ")}; got '${item}'`,
        };
      if (seen.has(key)) return { ok: false, error: `--process: '${key}' is given twice` };
      seen.set(key, value);
    }
  }
  return build(seen);
}

function build(seen: Map<string, string>): Parsed<KnownProcess> {
  const facts: KnownProcess = {};
  for (const [key, value] of seen) {
    switch (key) {
      case "pid":
        if (!/^\d+$/.test(value)) return { ok: false, error: `--process: pid '${value}'` };
        facts.pid = Number(value);
        break;
      case "path":
      case "cgroup":
        if (!value.startsWith("/"))
          return { ok: false, error: `--process: ${key} '${value}' must start with '/'` };
        if (key === "path") facts.path = value;
        else facts.cgroup = value;
        break;
      case "name":
        facts.name = value;
        break;
      case "user":
        if (/^\d+$/.test(value)) facts.user = Number(value);
        else if (value !== "") facts.userName = value;
        else return { ok: false, error: "--process: user is empty" };
        break;
    }
  }
  const container = seen.get("container");
  const fields = ["id", "name", "image"] as const;
  const given = fields.filter((f) => seen.has(`container.${f}`));
  if (container !== undefined) {
    if (container !== "none")
      return {
        ok: false,
        error: `--process: container=${container}: write container=none, or container.id=..., container.name=..., container.image=...`,
      };
    if (given.length > 0)
      return { ok: false, error: "--process: container=none with container.* fields" };
    facts.container = null;
  } else if (given.length > 0) {
    facts.container = {};
    for (const f of given) facts.container[f] = seen.get(`container.${f}`) ?? "";
  }
  return { ok: true, value: facts };
}

/** The facts back in words, for the explain output. */
export function formatProcess(p: KnownProcess): string {
  const words: string[] = [];
  if (p.pid !== undefined) words.push(`pid=${p.pid}`);
  if (p.path !== undefined) words.push(`path=${p.path}`);
  if (p.name !== undefined) words.push(`name=${p.name}`);
  if (p.user !== undefined) words.push(`user=${p.user}${p.userName ? ` (${p.userName})` : ""}`);
  else if (p.userName) words.push(`user=${p.userName}`);
  if (p.cgroup !== undefined) words.push(`cgroup=${p.cgroup}`);
  if (p.container === null) words.push("container=none");
  else if (p.container)
    for (const [k, v] of Object.entries(p.container)) words.push(`container.${k}=${v}`);
  return words.join(" ") || "(nothing known)";
}
