// Text from outside (policy values, process names, interface names) made safe to print: control
// characters and the invisible characters that reorder or hide text (bidi overrides, zero-width)
// are shown escaped, so a value cannot move the cursor, clear a terminal, forge a log line or hide
// what it says. The backslash that starts an escape is itself written \\, so two texts never print
// alike. Long values are cut.

const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\" };

// the backslash; C0, DEL, C1; zero-width and direction marks; line/paragraph separators; bidi
// embeddings, overrides and isolates; the byte-order mark
// eslint-disable-next-line no-control-regex -- it looks for control characters
const UNPRINTABLE = /[\\\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;

function escape(ch: string): string {
  const named = NAMED[ch];
  if (named) return named;
  const code = ch.charCodeAt(0);
  return code <= 0xff
    ? `\\x${code.toString(16).padStart(2, "0")}`
    : `\\u${code.toString(16).padStart(4, "0")}`;
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
