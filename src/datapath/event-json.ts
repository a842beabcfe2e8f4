// An event's JSON, computed once and shared by every sink that sends or keeps it (the history's
// rows, the API's live subscribers, publishers): the text is the same wherever it appears. Kept
// on the event itself under a symbol, not enumerable, so the event's own fields, JSON and
// structured clones are unchanged; an event is not changed after it is pushed to the pipeline.
import type { MoatEvent } from "./event.ts";

const JSON_TEXT = Symbol("moat.event.json");

type WithJson = MoatEvent & { [JSON_TEXT]?: string };

/** The event as JSON: bigint values (none today) as numbers, past 2^53 as strings. */
export function eventJson(event: MoatEvent): string {
  const held = (event as WithJson)[JSON_TEXT];
  if (held !== undefined) return held;
  const text = serialise(event);
  Object.defineProperty(event, JSON_TEXT, { value: text, enumerable: false });
  return text;
}

// JSON.stringify escapes only C0: for a terminal (`moat run --json`), every other character
// outside printable ASCII (DEL, C1, bidi and zero-width controls, all else) is written \uXXXX
// too, as the CLI's --json outputs write it (cli/json-line.ts): the same JSON value.
const OUTSIDE_ASCII = /[^\u0020-\u007e]/g;
const escaped = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;

/** JSON text, every character outside printable ASCII written \uXXXX (astral: a surrogate pair). */
export function asciiJson(text: string): string {
  return text.replace(OUTSIDE_ASCII, escaped);
}

function serialise(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
  }
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === "bigint" ? (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString()) : v,
  );
}
