// A browser's requests: the session cookie and the session's token together stand in for a bearer
// token, on the listeners that accept the cookie (the loopback console listener, a TLS listener, a
// TCP listener on loopback). A browser sends 127.0.0.1's cookies to every port of that host, so
// a page on another port gets the cookie: every request with it must also carry the token
// (reads too), which only the console's own page holds. Only the console's pages, which hold no
// data and load by navigation (no header), take the cookie alone. A cross-origin request is
// refused.
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

/** Requests for a console page: the cookie alone lets them through (see pageRequest). */
const pageRequests = new WeakSet<IncomingMessage>();

/**
 * Marks `req` as a request for one of the console's files, before the caller is identified: a
 * browser navigating to a page sends no header, and a page holds no data (what it shows, it asks
 * the API for, with the token).
 */
export function pageRequest(req: IncomingMessage): void {
  pageRequests.add(req);
}

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

/** The session's principal, after the origin and token checks (403 when either fails). */
export function sessionPrincipal(
  session: ConsoleSession,
  req: IncomingMessage,
  listener: CookieListener,
): Principal {
  checkOrigin(req, listener);
  if (!pageRequests.has(req)) checkToken(session, req);
  return { kind: "console", mintedBy: session.mintedBy, scopes: session.scopes };
}

/** An Origin header, when the browser sends one, must be the listener's own. */
function checkOrigin(req: IncomingMessage, listener: CookieListener): void {
  const origin = req.headers.origin;
  const own = `${listener.secure ? "https" : "http"}://${req.headers.host ?? ""}`;
  if (origin !== undefined && origin !== own)
    throw new HttpError(403, "EORIGIN", `requests from ${origin} are refused`);
}

/** The session's token in the header, on every method: the cookie alone leaks to other ports. */
function checkToken(session: ConsoleSession, req: IncomingMessage): void {
  if (!csrfMatches(session, req.headers[CSRF_HEADER]))
    throw new HttpError(
      403,
      "ECSRF",
      `a request from the console needs the session's token in the ${CSRF_HEADER} header (a new tab signs in again: run 'moat console' for a link)`,
    );
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
