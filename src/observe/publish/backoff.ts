// Retry delays: exponential from `firstMs`, capped, with up to 25% jitter so that many moat
// hosts retrying one receiver do not hit it in lockstep.
export function backoffMs(attempt: number, firstMs: number, capMs: number): number {
  const base = Math.min(capMs, firstMs * 2 ** (attempt - 1));
  return Math.round(base * (1 + Math.random() * 0.25));
}

/** Resolves after `ms`, or at once (false) when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      resolve(ok);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal.addEventListener("abort", onAbort);
  });
}
