// /console/...: the login exchange, the session's own view, logout and the console's files; and
// minting a login URL (POST /v1/console/url, routes.ts) for `moat console`.
import type { IncomingMessage, ServerResponse } from "node:http";
import { checkOrigin, pageRequest, sessionOf, type CookieListener } from "./console-auth.ts";
import { sessionCookie, SESSION_COOKIE, type ConsoleSessions } from "./console-sessions.ts";
import { consoleFile, CONSOLE_HEADERS, PUBLIC_FILES, sendConsoleFile } from "./console-static.ts";
import { HttpError } from "./errors.ts";
import { readBody, readJson } from "./json.ts";
import { describePrincipal, type Principal } from "./principal.ts";
import { parseScopes, ScopeError, type Scope } from "./scopes.ts";

export const DEFAULT_CONSOLE_SCOPES: readonly Scope[] = ["read", "events"];

export interface ConsoleRequest {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  listener: CookieListener;
  sessions: ConsoleSessions;
  /** The caller, or a 401/403 HttpError (cookie, origin and CSRF checks included). */
  identify(): Principal;
  log(line: string): void;
}

function json(
  res: ServerResponse,
  status: number,
  value: unknown,
  extra: Record<string, string | string[]> = {},
): void {
  res
    .writeHead(status, { ...CONSOLE_HEADERS, "content-type": "application/json", ...extra })
    .end(`${JSON.stringify(value)}\n`);
}

export async function serveConsole(c: ConsoleRequest): Promise<void> {
  const { req, res, url } = c;
  const method = req.method ?? "GET";
  if (url.pathname === "/console/session") {
    if (!c.listener.cookies)
      throw new HttpError(
        403,
        "ECONSOLE",
        "this listener serves no console (plain TCP off loopback: use the TLS listener)",
      );
    if (method === "POST") return login(c);
    const principal = c.identify();
    if (principal.kind !== "console")
      throw new HttpError(400, "ECONSOLE", "this request carries no console session");
    if (method === "GET")
      return json(res, 200, { scopes: [...principal.scopes], who: describePrincipal(principal) });
    if (method === "DELETE") {
      // the cookie and token were checked by identify(); end that session, clear the cookie
      const session = sessionOf(c.sessions, req, c.listener);
      if (session) c.sessions.end(session.id, req.socket);
      return json(
        res,
        200,
        { ended: true },
        { "set-cookie": `${SESSION_COOKIE}=; Path=/; Max-Age=0` },
      );
    }
    throw new HttpError(405, "EMETHOD", `${method} is not allowed on /console/session`);
  }
  if (method !== "GET" && method !== "HEAD")
    throw new HttpError(405, "EMETHOD", `${method} is not allowed on ${url.pathname}`);
  const file = consoleFile(url.pathname);
  if (!PUBLIC_FILES.has(file)) {
    // a page holds no data and a navigation sends no header: the cookie alone loads it
    pageRequest(req);
    const principal = c.identify();
    if (!principal.scopes.has("read"))
      throw new HttpError(403, "EFORBIDDEN", "the console needs the scope 'read'");
  }
  sendConsoleFile(res, file);
}

/** A login's body: the secret, read before the caller is known, so no more than this. */
const LOGIN_MAX_BODY = 4096;

/**
 * POST /console/session {"secret": "..."}: the one-time secret for a session: its HttpOnly
 * cookie, and its token in the body (`csrf`), which the page keeps in sessionStorage and sends
 * in the x-moat-csrf header with every API request.
 */
async function login(c: ConsoleRequest): Promise<void> {
  // a page elsewhere must not sign the browser into a session of the secret's minter
  checkOrigin(c.req, c.listener);
  const body = readJson(await readBody(c.req, LOGIN_MAX_BODY)) as { secret?: unknown } | null;
  const secret = typeof body?.secret === "string" ? body.secret : "";
  const session = secret ? c.sessions.exchange(secret) : null;
  if (!session)
    throw new HttpError(
      401,
      "ELOGIN",
      "this login link is unknown, used or expired; run 'moat console' for a new one",
    );
  c.log(
    `api: console session opened (login minted by ${session.mintedBy}; scopes ${[...session.scopes].join(",")})`,
  );
  json(
    c.res,
    200,
    {
      scopes: [...session.scopes],
      expiresAt: new Date(session.expiresAt).toISOString(),
      csrf: session.csrf,
    },
    { "set-cookie": sessionCookie(session, c.listener.secure) },
  );
}

/** The scopes asked for in a mint request's body ({"scopes": ["read", ...]}), default read+events. */
export function requestedScopes(text: string, caller: Principal): Set<Scope> {
  const body = text.trim() ? (readJson(text) as { scopes?: unknown } | null) : null;
  const asked = body?.scopes;
  if (asked !== undefined && !(Array.isArray(asked) && asked.every((s) => typeof s === "string")))
    throw new HttpError(
      400,
      "ESCOPE",
      'scopes must be an array of scope names: {"scopes": ["read"]}',
    );
  let scopes: Set<Scope>;
  try {
    scopes = asked ? parseScopes((asked as string[]).join(",")) : new Set(DEFAULT_CONSOLE_SCOPES);
  } catch (err) {
    if (err instanceof ScopeError) throw new HttpError(400, "ESCOPE", err.message);
    throw err;
  }
  if (caller.kind === "console")
    throw new HttpError(403, "EFORBIDDEN", "a console session cannot mint console logins");
  for (const s of scopes)
    if (!caller.scopes.has(s))
      throw new HttpError(
        403,
        "EFORBIDDEN",
        `${describePrincipal(caller)} lacks the scope '${s}' it asked the console to have`,
      );
  return scopes;
}
