// Work that pauses (a generator that yields) run in one go, or with a turn of the daemon's event
// loop at each pause: its API, its events and its timers run between the parts.

/** A turn of the event loop: what is waiting (I/O, timers) runs before this resolves. */
export const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Runs `work` to its end without pausing. */
export function drain<T>(work: Generator<void, T>): T {
  let step = work.next();
  while (!step.done) step = work.next();
  return step.value;
}

/**
 * Runs `work` to its end, awaiting `between` at each pause. When `between` throws, the error is
 * thrown into `work` at its pause, so it lets go of what it made so far.
 */
export async function inTurns<T>(
  work: Generator<void, T>,
  between: () => Promise<void> = nextTurn,
): Promise<T> {
  let step = work.next();
  while (!step.done) {
    try {
      await between();
    } catch (err) {
      step = work.throw(err);
      continue;
    }
    step = work.next();
  }
  return step.value;
}
