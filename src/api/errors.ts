// One error type for every HTTP failure and one place that turns errors into responses.
import type { ServerResponse } from "node:http";

export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  /** Extra lines for the client (policy diagnostics as FILE:LINE:COL). */
  readonly details: string[];
  constructor(status: number, code: string, message: string, details: string[] = []) {
    super(message);
    this.name = "HttpError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export interface ErrorBody {
  error: { code: string; message: string; details?: string[] };
}

/** Expected failures keep their status and words; anything else is a 500 and gets logged. */
export function sendError(res: ServerResponse, err: unknown, log: (line: string) => void): void {
  const http =
    err instanceof HttpError
      ? err
      : new HttpError(500, "EINTERNAL", "internal error; see the daemon's log");
  if (!(err instanceof HttpError))
    log(`api: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body: ErrorBody = { error: { code: http.code, message: http.message } };
  if (http.details.length) body.error.details = http.details;
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (http.status === 401) {
    headers["www-authenticate"] = 'Bearer realm="moat"';
    // an unauthenticated client keeps no connection open
    headers.connection = "close";
  }
  res.writeHead(http.status, headers).end(`${JSON.stringify(body)}\n`);
}
