// The console pages' side of the API when the daemon serves them: the session's token, requests
// that carry it (every request the pages make goes through consoleFetch, streams included) and
// the session's scopes. The token comes in the login answer's
// body and is kept in sessionStorage, which is per scheme, host and port: unlike the session
// cookie (sent to every port of 127.0.0.1), no page on another port can read it, and the daemon
// answers no API request that has the cookie without it. A new tab has no token: it signs in
// again with a new link from `moat console`.

/** The header the daemon reads the session's token from. */
const TOKEN_HEADER = "x-moat-csrf";
/** Where this tab keeps the token. */
const TOKEN_KEY = "moat-console-token";

/** Keeps the token the login answer carried, for this tab only. */
export function saveSessionToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

/** The token this tab signed in with, or "" (no sign-in in this tab, or no storage: file://). */
export function sessionToken(): string {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? "";
  } catch {
    return "";
  }
}

/** Forgets the token (at sign-out). */
export function forgetSessionToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** fetch() of the daemon's API with the session's cookie and token: every request sends both. */
export function consoleFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set(TOKEN_HEADER, sessionToken());
  return fetch(path, { ...init, headers, credentials: "same-origin" });
}

/** The session's scopes; null when no daemon serves the page (file://) or there is no session. */
export async function sessionScopes(): Promise<Set<string> | null> {
  if (location.protocol !== "http:" && location.protocol !== "https:") return null;
  try {
    const res = await consoleFetch("/console/session");
    if (!res.ok) return null;
    return new Set(((await res.json()) as { scopes: string[] }).scopes);
  } catch {
    return null;
  }
}

export interface ApiAnswer<T> {
  ok: boolean;
  status: number;
  body: T | null;
  /** The API's error (message, details), when it refused. */
  error: { code: string; message: string; details?: string[] } | null;
}

/** A request with the session's cookie and token; the answer parsed, an error unwrapped. */
export async function send<T>(
  method: string,
  path: string,
  body?: string,
  type = "application/json",
): Promise<ApiAnswer<T>> {
  const res = await consoleFetch(path, {
    method,
    headers: { "content-type": type },
    ...(body === undefined ? {} : { body }),
  });
  const parsed = (await res.json().catch(() => null)) as
    (T & { error?: ApiAnswer<T>["error"] }) | null;
  const error = res.ok ? null : (parsed?.error ?? { code: "EHTTP", message: `HTTP ${res.status}` });
  return { ok: res.ok, status: res.status, body: res.ok ? parsed : null, error };
}

/** The API error's code in a refusal's body ("EHTTP" when it has none). */
export async function errorCode(res: Response): Promise<string> {
  const body = (await res.json().catch(() => null)) as { error?: { code?: string } } | null;
  return body?.error?.code ?? "EHTTP";
}

/**
 * The refusal means this tab must sign in again: no session (401), or this tab's token is not
 * the session's (403 ECSRF: a tab that never signed in, or the cookie of a later sign-in).
 */
export function needsSignIn(status: number, code: string): boolean {
  return status === 401 || code === "ECSRF";
}
