// Text from outside (policy values, process names, interface names) made safe to print: control
// characters and the invisible characters that reorder or hide text (bidi overrides, zero-width)
// are shown escaped, so a value cannot move the cursor, clear a terminal, forge a log line or hide
// what it says. The backslash that starts an escape is itself written \\, so two texts never print
// alike. Long values are cut.

const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\" };

/**
 * The characters a terminal or a browser obeys or shows as nothing, as a regular-expression class
 * body (u flag): DEL and C1 controls; soft hyphen; Arabic letter mark; Mongolian vowel separator;
 * zero-width and direction marks; line/paragraph separators; bidi embeddings, overrides and
 * isolates; word joiner and invisible operators; variation selectors; the byte-order mark;
 * interlinear annotation marks; tag characters. Every place that escapes such text uses this one.
 */
export const INVISIBLE_CLASS =
  "\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2069\\ufe00-\\ufe0f\\ufeff\\ufff9-\\ufffb\\u{e0000}-\\u{e007f}";

/** One INVISIBLE_CLASS character (global, for replace). */
// eslint-disable-next-line no-misleading-character-class -- variation selectors are matched alone, on purpose
export const INVISIBLE = new RegExp(`[${INVISIBLE_CLASS}]`, "gu");

// the backslash, C0 and the invisible characters
// eslint-disable-next-line no-misleading-character-class -- variation selectors are matched alone, on purpose
const UNPRINTABLE = new RegExp(`[\\\\\\u0000-\\u001f${INVISIBLE_CLASS}]`, "gu");

function escape(ch: string): string {
  const named = NAMED[ch];
  if (named) return named;
  const code = ch.codePointAt(0) ?? 0;
  if (code <= 0xff) return `\\x${code.toString(16).padStart(2, "0")}`;
  return code <= 0xffff ? `\\u${code.toString(16).padStart(4, "0")}` : `\\u{${code.toString(16)}}`;
}

/**
 * `text` with every control or invisible character written as an escape (\x1b, \n, \u202e) and
 * every backslash doubled (\\).
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, escape);
}

/** Quoted values ('...') longer than this are cut in messages. */
export const MAX_VALUE_CHARS = 60;
/** A whole message longer than this is cut (a value with spaces in it, quoted or not). */
export const MAX_MESSAGE_CHARS = 1000;

/**
 * Every quoted value in `message` (a quoted span without spaces: prose between two quotes has
 * them) cut to MAX_VALUE_CHARS, saying how long it was; then the message to MAX_MESSAGE_CHARS.
 * A value already cut is not cut again.
 */
export function capQuotedValues(message: string): string {
  const capped = message.replace(
    new RegExp(`'([^'\\s]{${MAX_VALUE_CHARS + 4},})'`, "g"),
    (_all, value: string) => `'${value.slice(0, MAX_VALUE_CHARS)}...' (${value.length} characters)`,
  );
  // room for the note, so a message already cut is not cut again
  return capped.length <= MAX_MESSAGE_CHARS + 40
    ? capped
    : `${capped.slice(0, MAX_MESSAGE_CHARS)}... (${capped.length} characters)`;
}
