// A browser's requests: the session cookie stands in for a bearer token, on the listeners that
// accept it (the loopback console listener, a TLS listener, a TCP listener on loopback). A
// cross-origin request is refused, and so is a write without the session's CSRF token.
import type { IncomingMessage } from "node:http";
import {
  cookieValue,
  csrfMatches,
  CSRF_HEADER,
  SESSION_COOKIE,
  type ConsoleSession,
  type ConsoleSessions,
} from "./console-sessions.ts";
import { HttpError } from "./errors.ts";
import type { Principal } from "./principal.ts";

export interface CookieListener {
  /** The session cookie counts here. */
  cookies: boolean;
  /** TLS: the cookie is Secure. */
  secure: boolean;
  /** The loopback console listener's port: Host must name it (no DNS rebinding). */
  loopbackPort: number | null;
}

const SAFE = new Set(["GET", "HEAD"]);

/** The console session the request's cookie names, or null (no cookie, unknown or expired). */
export function sessionOf(
  sessions: ConsoleSessions,
  req: IncomingMessage,
  listener: CookieListener,
): ConsoleSession | null {
  if (!listener.cookies) return null;
  const id = cookieValue(req.headers.cookie, SESSION_COOKIE);
  return id ? sessions.lookup(id) : null;
}

/** The session's principal, after the origin and CSRF checks (403 when either fails). */
export function sessionPrincipal(
  session: ConsoleSession,
  req: IncomingMessage,
  listener: CookieListener,
): Principal {
  const origin = req.headers.origin;
  const own = `${listener.secure ? "https" : "http"}://${req.headers.host ?? ""}`;
  if (origin !== undefined && origin !== own)
    throw new HttpError(403, "EORIGIN", `requests from ${origin} are refused`);
  if (!SAFE.has(req.method ?? "GET") && !csrfMatches(session, req.headers[CSRF_HEADER]))
    throw new HttpError(
      403,
      "ECSRF",
      `a write from the console needs the session's CSRF token in the ${CSRF_HEADER} header`,
    );
  return { kind: "console", mintedBy: session.mintedBy, scopes: session.scopes };
}

/** On the loopback console listener, Host must be 127.0.0.1, localhost or [::1] with its port. */
export function checkHost(req: IncomingMessage, listener: CookieListener): void {
  if (listener.loopbackPort === null) return;
  const host = req.headers.host ?? "";
  const ok = ["127.0.0.1", "localhost", "[::1]"].some(
    (h) => host === `${h}:${listener.loopbackPort}`,
  );
  if (!ok) throw new HttpError(421, "EHOST", `the console listener does not serve host '${host}'`);
}
