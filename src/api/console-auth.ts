// A browser's requests: the session cookie and the session's token together stand in for a bearer
// token, on the listeners that accept the cookie (the loopback console listener, a TLS listener, a
// TCP listener on loopback). A browser sends 127.0.0.1's cookies to every port of that host, and
// lets a page on any port set them, so a page on another port gets the cookie and can plant one
// of the same name: every request with it must also carry the token (reads too), which only the
// console's own page holds, and the session is the one whose token came. Only the console's
// pages, which hold no data and load by navigation (no header), take the cookie alone; such a
// load is no use of the session. A cross-origin request, a login included, is refused.
import type { IncomingMessage } from "node:http";
import {
  cookieValues,
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

/** A page loaded with the cookie alone: its connection is not the session's (see pageRequest). */
export function isPageRequest(req: IncomingMessage): boolean {
  return pageRequests.has(req);
}

/**
 * The live console session of the request's cookies, or null: of several cookies of that name
 * (one planted by a page on another port), the one whose token the request carries, else the
 * first live one.
 */
export function sessionOf(
  sessions: ConsoleSessions,
  req: IncomingMessage,
  listener: CookieListener,
): ConsoleSession | null {
  if (!listener.cookies) return null;
  const live: ConsoleSession[] = [];
  for (const id of cookieValues(req.headers.cookie, SESSION_COOKIE)) {
    const s = sessions.peek(id);
    if (s) live.push(s);
  }
  return live.find((s) => csrfMatches(s, req.headers[CSRF_HEADER])) ?? live[0] ?? null;
}

/**
 * The principal of the request's console session, null without one; 403 when the origin or the
 * token check fails. A request with the token uses the session (its idle clock restarts) and
 * ties its connection to it (cut when the session ends); a page loaded with the cookie alone
 * does neither.
 */
export function consolePrincipal(
  sessions: ConsoleSessions,
  req: IncomingMessage,
  listener: CookieListener,
): Principal | null {
  const session = sessionOf(sessions, req, listener);
  if (!session) return null;
  checkOrigin(req, listener);
  const principal: Principal = {
    kind: "console",
    mintedBy: session.mintedBy,
    scopes: session.scopes,
  };
  if (pageRequests.has(req)) return principal;
  checkToken(session, req);
  sessions.used(session, req.socket);
  return principal;
}

/** An Origin header, when the browser sends one, must be the listener's own. */
export function checkOrigin(req: IncomingMessage, listener: CookieListener): void {
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
