// Progress of long work for a person at a terminal: one line on stderr, rewritten as the work
// moves on and erased when it ends, so the output that stays is the same with or without it.
// Nothing is shown when stderr is not a terminal (pipes, logs, tests), nor for work that ends
// within SHOW_AFTER_MS: a small policy's check prints what it always printed.

/** Work done sooner than this shows no progress line. */
export const SHOW_AFTER_MS = 300;

export interface Progress {
  /** The step now under way ("compiling 100000 rules"). */
  step(text: string): void;
  /** Erases the line, if one was shown. */
  done(): void;
}

interface Terminal {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
}

export function terminalProgress(
  stream: Terminal = process.stderr,
  now: () => number = () => performance.now(),
): Progress {
  if (stream.isTTY !== true) return { step() {}, done() {} };
  const start = now();
  let shown = false;
  let last = "";
  const draw = (text: string) => {
    const width = Math.max(20, (stream.columns || 80) - 1); // a pty without a size says 0
    // carriage return, erase to the end of the line: the step replaces the previous one
    stream.write(`\r\x1b[K${text.length > width ? `${text.slice(0, width - 1)}…` : text}`);
    shown = true;
  };
  return {
    step(text) {
      last = text;
      if (shown || now() - start >= SHOW_AFTER_MS) draw(`${last} …`);
    },
    done() {
      if (shown) stream.write("\r\x1b[K");
      shown = false;
    },
  };
}
