// How deep a JSON text nests, found by one linear scan before JSON.parse: a text of a few
// megabytes of `[` would otherwise hold the thread (and its memory) for seconds in the parse.

/** Whether arrays and objects in `text` nest deeper than `max` (strings skipped). */
export function jsonNestsDeeper(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}
