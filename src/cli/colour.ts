// Colour for people at a terminal, never for programs: only when the output is a TTY, NO_COLOR is
// unset or empty (no-color.org) and TERM is not "dumb". Only verdict words are coloured; the text is the
// same with or without colour.

/** Whether output to `stream` may carry ANSI colour. */
export function colourFor(
  stream: { isTTY?: boolean },
  env: Record<string, string | undefined> = process.env,
): boolean {
  return stream.isTTY === true && !env.NO_COLOR && env.TERM !== "dumb";
}

const CODES: Record<string, string> = {
  allowed: "32", // green
  blocked: "31", // red
  detected: "33", // yellow
  deferred: "36", // cyan
};

const paint = (word: string) => {
  const code = CODES[word.toLowerCase()];
  return code ? `\x1b[${code}m${word}\x1b[0m` : word;
};

/** An event line ("TIME BLOCKED ...") with its verdict coloured. */
export function colourEventLine(line: string): string {
  return line.replace(
    /^(\S+ )(ALLOWED|BLOCKED|DETECTED)\b/,
    (_m, time: string, word: string) => `${time}${paint(word)}`,
  );
}

/** An explain line: "verdict: blocked" with the verdict coloured; others as they are. */
export function colourExplainLine(line: string): string {
  return line.replace(
    /^(verdict: )(\w+)$/,
    (_m, key: string, word: string) => `${key}${paint(word)}`,
  );
}
