// The bounds a client connection lives within before a request is judged.
export interface HttpLimits {
  /** From the connection's start (or the end of the last response) to a complete request head. */
  headersTimeoutMs: number;
  /** The request line and headers together. */
  maxHeaderBytes: number;
}

export const DEFAULT_LIMITS: HttpLimits = { headersTimeoutMs: 10_000, maxHeaderBytes: 16 * 1024 };

/**
 * A server's status line and headers together, at most: larger than a request's, as servers send
 * long heads (many cookies, CSP) that clients read directly (Node's client alone stops at 16 KiB).
 */
export const MAX_ANSWER_HEADER_BYTES = 64 * 1024;

/** A timer for "no complete request head yet": started while idle, stopped by each request. */
export function headersClock(ms: number, expired: () => void): { start(): void; stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  const stop = () => clearTimeout(timer);
  return {
    start: () => {
      stop();
      timer = setTimeout(expired, ms);
    },
    stop,
  };
}
